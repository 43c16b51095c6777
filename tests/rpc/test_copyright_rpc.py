"""copyright_*, licensing_*, emission_* against the real dev node in this process, and the typed
client and CLI commands built on them (`image register|verify`, `license offer|buy|list`).

Uploads are small synthetic photos (512x384; 1024x768 where a PoD reward is wanted), marked by
the real pipeline (`node.pod_mining`). Blocks are authored on demand (`author`) or as soon as
the pool has something (`auto_author`), so nothing waits for a slot.
"""

from __future__ import annotations

import base64
import hashlib
import io
import struct
import time
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import httpx
import numpy as np
import pytest
import trio
from click.testing import CliRunner, Result
from PIL import Image

import node.commands.copyright  # noqa: F401 - attaches `register` and `verify` to the image group
from node.client import RpcClient
from node.client.licensing import buy_licence, offer_licence_rf, offer_licence_rm
from node.commands.copyright import license_group
from node.commands.image import image_group
from node.core.node import Node
from node.keys import Keypair, encode_address
from node.pod_mining.pipeline import PreparedUpload, prepare_image, sign_registration
from node.pod_mining.upload import RegistrationRejected, submit_registration
from node.rpc import errors
from node.rpc.methods.copyright import MAX_VERIFY_IMAGE_BYTES
from node.runtime import copyright, emission, licensing
from node.runtime.runtime import SPEC_VERSION
from node.types import Call, Mortality, SignedExtra, sign_extrinsic
from node.units import format_img
from tests.imaging.conftest import natural_image
from tests.rpc.helpers import ALICE, BOB, CHARLIE, Server, author, error, result

T = TypeVar("T")
IMG = 10**18
METHODS = {
    "copyright_getRegistration", "copyright_findBySha256", "copyright_searchSimilar", "copyright_verifyImage",
    "copyright_registrationsOf", "licensing_offers", "licensing_licensesOf", "emission_status",
}  # fmt: skip


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    return natural_image(31, 384, 512)


@pytest.fixture(scope="module")
def other_photo() -> np.ndarray:
    return natural_image(32, 384, 512)


def jpeg(rgb: np.ndarray, quality: int = 50) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def submit_upload(
    node: Node, signer: Keypair, rgb: np.ndarray, tag: str, out: Path | None = None, title: str = "t"
) -> PreparedUpload:
    """Mark `rgb` as a JPEG file whose hash comes from `tag`, and put its registration in the pool."""
    up = prepare_image(
        rgb, genesis_hash=node.genesis_hash, uploader=signer.account_id, sha256=hashlib.sha256(tag.encode()).digest(),
        format_code=1, is_raw=False, title=title, creator="c", description="d", out=out,
    )  # fmt: skip
    extra = SignedExtra(node.genesis_hash, SPEC_VERSION, node.next_nonce(signer.account_id), 0, Mortality.from_genesis(node.genesis_hash))
    node.submit_extrinsic(sign_registration(signer, up, extra))
    return up


def submit_call(node: Node, signer: Keypair, call: Call) -> None:
    extra = SignedExtra(node.genesis_hash, SPEC_VERSION, node.next_nonce(signer.account_id), 0, Mortality.from_genesis(node.genesis_hash))
    node.submit_extrinsic(sign_extrinsic(signer, call, extra).encode())


async def in_thread(function: Callable[[], T]) -> T:
    return await trio.to_thread.run_sync(function)


async def invoke(group: object, *args: str) -> Result:
    runner = CliRunner()
    return await trio.to_thread.run_sync(lambda: runner.invoke(group, list(args)))  # type: ignore[arg-type]


def lines(output: str) -> dict[str, str]:
    """`key: value` lines of a command's output (the first of each key)."""
    found: dict[str, str] = {}
    for line in output.splitlines():
        key, sep, value = line.partition(": ")
        if sep and key not in found:
            found[key] = value
    return found


# ---------------------------------------------------------------------------------------------
# Listing and reads
# ---------------------------------------------------------------------------------------------


async def test_methods_are_listed_and_described(http: httpx.AsyncClient) -> None:
    assert METHODS <= set((await result(http, "rpc_methods"))["methods"])
    document = {m["name"]: m for m in (await result(http, "rpc.discover"))["methods"]}
    params = {name: [(p["name"], p["required"]) for p in document[name]["params"]] for name in METHODS}
    assert params["copyright_searchSimilar"] == [("phash", True), ("radius", False), ("at", False)]
    assert params["copyright_verifyImage"] == [("image", True), ("at", False)]
    assert params["copyright_registrationsOf"] == [
        ("account", True),
        ("start", False),
        ("limit", False),
        ("at", False),
    ]
    assert all(document[name]["summary"] for name in METHODS)


async def test_registration_reads(http: httpx.AsyncClient, server: Server, photo: np.ndarray) -> None:
    node = server.node
    author(node)
    up = submit_upload(node, BOB, photo, "photo A", title="Harbour")
    block = author(node)
    reg = await result(http, "copyright_getRegistration", [1])
    assert reg["id"] == 1 and reg["owner"] == encode_address(BOB.account_id)
    assert (reg["title"], reg["creator"], reg["description"]) == ("Harbour", "c", "d")
    assert reg["sha256"] == "0x" + up.sha256.hex() and reg["phash"] == f"0x{up.phash:016x}"
    assert (reg["width"], reg["height"], reg["format"], reg["isRaw"], reg["block"]) == (
        512,
        384,
        "jpeg",
        False,
        2,
    )
    assert reg["tags"] == [] and len(reg["versions"]) == 1
    version = reg["versions"][0]
    assert version["watermark"] == "0x" + up.payload.hex() and version["extrinsicIndex"] == 1
    assert version["uploader"] == reg["owner"]
    assert version["blobs"] == [{"kind": 0, "root": "0x" + up.blobs[0].root.hex(), "size": len(up.published)}]
    assert await result(http, "copyright_getRegistration", ["0x1"]) == reg
    assert await result(http, "copyright_getRegistration", [2]) is None
    assert await result(http, "copyright_getRegistration", [1, "0x" + node.genesis_hash.hex()]) is None

    assert await result(http, "copyright_findBySha256", ["0x" + up.sha256.hex()]) == reg
    assert await result(http, "copyright_findBySha256", ["0x" + "00" * 32]) is None

    near = up.phash ^ 0b101  # two bits away
    assert await result(http, "copyright_searchSimilar", [f"0x{near:x}"]) == [{"id": 1, "distance": 2}]
    assert await result(http, "copyright_searchSimilar", [near, 1]) == []
    assert await result(http, "copyright_searchSimilar", [f"0x{up.phash:016x}", 0]) == [
        {"id": 1, "distance": 0}
    ]

    assert await result(http, "copyright_registrationsOf", [encode_address(BOB.account_id)]) == [1]
    assert await result(http, "copyright_registrationsOf", ["0x" + BOB.account_id.hex(), 1, 10]) == []
    assert await result(http, "copyright_registrationsOf", [encode_address(ALICE.account_id)]) == []

    def typed() -> None:
        with RpcClient(server.url) as client:
            state = node.chain.state_reader(block.hash)
            assert client.get_registration(1) == copyright.get_registration(state, 1)
            assert client.find_by_sha256(up.sha256) == copyright.get_registration(state, 1)
            assert client.get_registration(7) is None
            assert client.search_similar(near) == [(1, 2)]
            assert client.registrations_of(BOB.account_id) == [1]

    await in_thread(typed)


@pytest.mark.parametrize(
    ("method", "params", "message"),
    [
        ("copyright_getRegistration", [-1], "id"),
        ("copyright_getRegistration", ["one"], "id"),
        ("copyright_findBySha256", ["0x1234"], "sha256: expected 32 bytes"),
        ("copyright_searchSimilar", ["0x" + "f" * 17], "up to 16 hex digits"),
        ("copyright_searchSimilar", [2**64], "unsigned 64-bit"),
        ("copyright_searchSimilar", ["fff"], "0x"),
        ("copyright_searchSimilar", [1, 17], "radius must be in 0..16"),
        ("copyright_searchSimilar", [1, True], "integer radius"),
        ("copyright_registrationsOf", ["5notanaddress"], "account"),
        ("copyright_registrationsOf", [encode_address(BOB.account_id), -1], "start"),
        ("licensing_offers", [None], "missing required parameter"),
        ("copyright_verifyImage", ["not base64!"], "not valid base64"),
        ("copyright_verifyImage", [12], "base64 string"),
        ("copyright_verifyImage", [b64(b"GIF89a" + bytes(30))], "image: cannot decode the image"),
        ("copyright_verifyImage", [""], "empty image"),
    ],
)
async def test_bad_params_are_invalid_params(
    http: httpx.AsyncClient, method: str, params: Any, message: str
) -> None:
    err = await error(http, method, params)
    assert err["code"] == errors.INVALID_PARAMS and message in err["data"], err


async def test_verify_image_limits(http: httpx.AsyncClient) -> None:
    ihdr = struct.pack(">IIBBBBB", 9000, 9000, 8, 2, 0, 0, 0)  # an 81-megapixel PNG header, no pixels
    chunks = [(b"IHDR", ihdr), (b"IEND", b"")]
    png = b"\x89PNG\r\n\x1a\n" + b"".join(
        struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        for kind, data in chunks
    )
    err = await error(http, "copyright_verifyImage", [b64(png)])
    assert err["code"] == errors.INVALID_PARAMS and "at most 12,582,912 pixels" in err["data"]
    too_big = "A" * (4 * ((MAX_VERIFY_IMAGE_BYTES + 2) // 3) + 4)
    err = await error(http, "copyright_verifyImage", [too_big])
    assert err["code"] == errors.INVALID_PARAMS and "larger than 7 MiB" in err["data"]


async def test_verify_image_exact_then_similar(
    http: httpx.AsyncClient, server: Server, photo: np.ndarray, other_photo: np.ndarray, tmp_path: Path
) -> None:
    node = server.node
    author(node)
    up = submit_upload(node, BOB, photo, "photo A", out=tmp_path / "a.png")
    author(node)
    submit_call(node, BOB, Call("licensing", "offer_rf", (1, (5 * IMG).to_bytes(16, "big"), 0)))
    author(node)
    assert up.watermarked is not None
    marked = np.asarray(Image.open(up.watermarked).convert("RGB"))

    # A JPEG-50 copy of the published file: the watermark names registration 1.
    found = await result(http, "copyright_verifyImage", [b64(jpeg(marked))])
    assert found["watermark"] == "0x" + up.payload.hex() and (found["width"], found["height"]) == (512, 384)
    (match,) = found["matches"]
    assert (match["kind"], match["version"], match["registration"]["id"]) == ("exact", 0, 1)
    assert match["distance"] <= 4 and match["registration"]["owner"] == encode_address(BOB.account_id)
    (offer,) = match["offers"]
    assert (offer["kind"], offer["price"], offer["priceRaw"], offer["fee"]) == ("RF", "5", str(5 * IMG), "0.005")

    # The unmarked original, resized: no watermark, found by its pHash (a wrapped data: URI is fine).
    small = np.asarray(Image.fromarray(photo).resize((384, 288), Image.LANCZOS))
    wrapped = base64.encodebytes(_png(small)).decode()  # 76-character lines, as `base64` writes them
    uri = "data:image/png;base64," + wrapped
    found = await result(http, "copyright_verifyImage", [uri])
    assert found["watermark"] is None
    (match,) = found["matches"]
    assert match["kind"] == "similar" and match["registration"]["id"] == 1 and match["distance"] <= 8

    # Another photo: nobody's.
    found = await result(http, "copyright_verifyImage", [b64(jpeg(other_photo, 90))])
    assert found == {**found, "watermark": None, "matches": []}

    def typed() -> None:
        with RpcClient(server.url) as client:
            verified = client.verify_image(jpeg(marked))
            assert verified.best is not None and verified.best.kind == "exact"
            assert verified.best.registration == copyright.get_registration(node.chain.best_state(), 1)
            assert verified.best.offers == licensing.offers_of(node.chain.best_state(), 1)

    await in_thread(typed)


async def test_verify_image_shows_every_mark_of_a_copy_marked_again(
    http: httpx.AsyncClient, server: Server, tmp_path: Path
) -> None:
    """Charlie crops Bob's published photo (so its pHash no longer matches) and registers it as
    his own. The chain cannot tell (its check sees only the new rendition), but verifying
    Charlie's copy shows Bob's mark under Charlie's, and Bob's registration comes first."""
    node = server.node
    author(node)
    bob_up = submit_upload(node, BOB, natural_image(34, 384, 512), "bob's original", out=tmp_path / "bob.png")
    author(node)
    assert bob_up.watermarked is not None
    published = np.asarray(Image.open(bob_up.watermarked).convert("RGB"))
    cropped = np.ascontiguousarray(published[20:346, 30:465])  # 15% off each side, off centre
    charlie_up = submit_upload(node, CHARLIE, cropped, "charlie's copy", out=tmp_path / "charlie.png")
    author(node)
    state = node.chain.best_state()
    bob_id = copyright.find_by_payload(state, bob_up.payload)
    charlie_id = copyright.find_by_payload(state, charlie_up.payload)
    assert bob_id is not None and charlie_id is not None and bob_id < charlie_id

    assert charlie_up.watermarked is not None
    charlies = np.asarray(Image.open(charlie_up.watermarked).convert("RGB"))
    found = await result(http, "copyright_verifyImage", [b64(jpeg(charlies, 90))])
    assert found["watermark"] == "0x" + charlie_up.payload.hex()
    assert found["watermarks"] == ["0x" + charlie_up.payload.hex(), "0x" + bob_up.payload.hex()]
    exact = [m for m in found["matches"] if m["kind"] == "exact"]
    assert [m["registration"]["id"] for m in exact] == [bob_id, charlie_id]
    assert exact[0]["registration"]["owner"] == encode_address(BOB.account_id)

    # Bob's own copy carries one mark: one exact match.
    found = await result(http, "copyright_verifyImage", [b64(jpeg(published, 90))])
    assert found["watermarks"] == ["0x" + bob_up.payload.hex()]
    assert [m["registration"]["id"] for m in found["matches"] if m["kind"] == "exact"] == [bob_id]

    verified = await invoke(image_group, "verify", str(charlie_up.watermarked), "--url", server.url)
    assert verified.exit_code == 0, verified.output
    assert "marked more than once" in verified.output
    assert f"registration: {bob_id}\n" in verified.output and f"exact registration {charlie_id} " in verified.output


def _png(rgb: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format="PNG")
    return buffer.getvalue()


async def test_image_work_runs_off_the_event_loop(http: httpx.AsyncClient, server: Server) -> None:
    """A real verification at the pixel cap (a flat 4096 x 3072 PNG, ~0.4 s) runs in a worker
    thread: the node answers other calls while it runs."""
    flat = _png(np.full((3072, 4096, 3), 128, dtype=np.uint8))
    finished: list[str] = []

    async def verify_big() -> None:
        found = await result(http, "copyright_verifyImage", [b64(flat)])
        assert (found["width"], found["height"]) == (4096, 3072)
        finished.append("verify")

    async with trio.open_nursery() as nursery:
        nursery.start_soon(verify_big)
        with trio.fail_after(10):
            while not server.state.image_jobs.running:
                await trio.sleep(0.005)
        await result(http, "system_health")
        finished.append("health")
    assert finished == ["health", "verify"]


# ---------------------------------------------------------------------------------------------
# Licensing, emission, and the wallet commands
# ---------------------------------------------------------------------------------------------


async def test_cli_register_verify_and_license(
    server: Server, auto_author: None, photo: np.ndarray, tmp_path: Path
) -> None:
    node = server.node
    url = server.url
    big = np.asarray(Image.fromarray(photo).resize((1024, 768), Image.LANCZOS))  # large enough for a reward
    original = tmp_path / "harbour.jpg"
    Image.fromarray(big).save(original, quality=90)

    registered = await invoke(
        image_group, "register", str(original), "--title", "Harbour", "--creator", "Bob", "--from", "//Bob",
        "--url", url,
    )  # fmt: skip
    assert registered.exit_code == 0, registered.output
    out = lines(registered.output)
    assert out["registration"] == "1" and out["result"] == "new registration"
    assert out["watermarked"] == str(tmp_path / "harbour.imagechain.jpg")
    assert out["reward"] == "1 IMG"
    state = node.chain.best_state()
    assert copyright.get_registration(state, 1).owner == BOB.account_id  # type: ignore[union-attr]

    # The same file again, then a smaller copy: both refused, naming registration 1; no stray copy.
    again = await invoke(
        image_group, "register", str(original), "--title", "x", "--from", "//Bob", "--url", url
    )
    assert again.exit_code == 1 and "already registered as registration #1" in again.output
    assert Path(out["watermarked"]).exists()  # checked before anything was written: the copy stays
    smaller = tmp_path / "harbour-small.png"
    Image.fromarray(big).resize((800, 600), Image.LANCZOS).save(smaller)
    near = await invoke(
        image_group, "register", str(smaller), "--title", "x", "--from", "//Charlie", "--url", url
    )
    assert near.exit_code == 1 and "near-duplicate of registration #1" in near.output, near.output
    assert not (tmp_path / "harbour-small.imagechain.png").exists()

    # Anyone can trace the published copy, even re-encoded.
    copy = tmp_path / "found.jpg"
    Image.open(out["watermarked"]).save(copy, quality=50)
    verified = await invoke(image_group, "verify", str(copy), "--url", url)
    assert verified.exit_code == 0, verified.output
    found = lines(verified.output)
    assert (found["match"], found["registration"]) == ("exact", "1")
    assert found["owner"] == encode_address(BOB.account_id) and found["block"].startswith("#")
    nobody = tmp_path / "nobody.png"
    Image.fromarray(natural_image(33, 384, 512)).save(nobody)
    unknown = await invoke(image_group, "verify", str(nobody), "--url", url)
    assert unknown.exit_code == 1 and "match: none" in unknown.output

    # A licence: offer, list, buy. The owner gets the price, the fee is burned.
    offered = await invoke(license_group, "offer", "1", "--price", "12.5", "--from", "//Bob", "--url", url)
    assert offered.exit_code == 0 and lines(offered.output)["offer"] == "1", offered.output
    listed = await invoke(license_group, "list", "1", "--url", url)
    assert "offer: #1 RF 12.5 IMG (+ 0.0125 IMG fee, burned)" in listed.output, listed.output
    chain = node.chain
    before = chain.best_header().hash
    bought = await invoke(license_group, "buy", "1", "--from", "//Charlie", "--url", url)
    assert bought.exit_code == 0, bought.output
    receipt = lines(bought.output)
    assert (receipt["licence"], receipt["price"], receipt["licence fee"]) == ("1", "12.5 IMG", "0.0125 IMG (burned)")
    assert receipt["block"].startswith("#")
    after = bytes.fromhex(receipt["block"].split(" 0x")[1])
    assert chain.header(after).parent_hash == before  # nothing else happened in between

    def totals(block_hash: bytes) -> tuple[int, int]:
        with RpcClient(url) as client:
            return client.total_issuance(block_hash), client.account(BOB.account_id, block_hash).free

    (issued_0, bob_0), (issued_1, bob_1) = (
        await in_thread(lambda: totals(before)),
        await in_thread(lambda: totals(after)),
    )
    assert bob_1 - bob_0 == 25 * IMG // 2
    assert issued_0 - issued_1 == 125 * IMG // 10_000  # 0.1% of 12.5 IMG, burned

    held = await invoke(license_group, "list", "--holder", "//Charlie", "--url", url)
    assert "licence: #1 registration 1 RF 12.5 IMG, perpetual, active" in held.output, held.output
    usage = await invoke(license_group, "list", "--url", url)
    assert usage.exit_code == 2


async def test_typed_licensing_and_emission(server: Server, auto_author: None, photo: np.ndarray) -> None:
    node = server.node
    submit_upload(node, BOB, photo, "photo A")

    def body() -> None:
        with RpcClient(server.url) as client:
            deadline = time.monotonic() + 20
            while client.get_registration(1) is None and time.monotonic() < deadline:
                time.sleep(0.05)
            rm = offer_licence_rm(
                client, BOB, 1, 40 * IMG, use="editorial", territory="EU", duration_ms=86_400_000, exclusive=True
            )
            rf = offer_licence_rf(client, BOB, 1, 2 * IMG, 1_000_000)
            offers = client.licence_offers(1)
            assert [o.id for o in offers] == [rm, rf] and offers == licensing.offers_of(
                node.chain.best_state(), 1
            )
            bought = buy_licence(client, CHARLIE, rm)
            assert (bought.price, bought.fee, bought.registration_id) == (40 * IMG, 40 * IMG // 1000, 1)
            assert bought.expires_at_ms > 0
            # The exclusive licence blocks everyone else.
            with pytest.raises(Exception, match="ExclusiveLicenceActive") as refused:
                buy_licence(client, ALICE, rf)
            assert refused.value.detail[0] == bought.licence_id  # type: ignore[attr-defined]
            (licence,) = client.licences_of(CHARLIE.account_id)
            assert licence == licensing.get_licence(node.chain.best_state(), bought.licence_id)
            assert client.licences_of(ALICE.account_id) == []
            status = client.emission_status()
            assert status == emission.emission_status(node.chain.best_state())
            with pytest.raises(RegistrationRejected) as duplicate:
                up = prepare_image(
                    photo, genesis_hash=node.genesis_hash, uploader=CHARLIE.account_id,
                    sha256=hashlib.sha256(b"photo A").digest(), format_code=1, is_raw=False, title="mine",
                )  # fmt: skip
                submit_registration(client, CHARLIE, up)
            assert (
                duplicate.value.registration_id == 1 and duplicate.value.error == "copyright.DuplicateSha256"
            )

    await in_thread(body)


async def test_emission_status_json(http: httpx.AsyncClient, server: Server) -> None:
    status = await result(http, "emission_status")
    params = emission.read_params(server.node.chain.best_state())
    assert params is not None
    assert status == {
        "generated": "0", "generatedRaw": "0", "rate": "1", "rateNumerator": 10**36, "rateDenominator": 10**36,
        "remaining": format_img(params.cap), "remainingRaw": str(params.cap), "nextReward": "1",
        "nextRewardRaw": str(IMG), "cap": "525000000", "capRaw": str(params.cap),
    }  # fmt: skip
    assert await result(http, "licensing_offers", [1]) == []
    assert await result(http, "licensing_licensesOf", [encode_address(CHARLIE.account_id)]) == []


async def test_cli_progress_large_verify_and_rm_offers(
    server: Server, auto_author: None, photo: np.ndarray, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import node.commands.copyright as commands

    url = server.url
    monkeypatch.setattr(commands, "BIG_FILE_BYTES", 1)  # every file is "big": the progress bar shows
    monkeypatch.setattr(commands, "VERIFY_UPLOAD_LIMIT", 1000)  # and too big to send as is
    source = tmp_path / "pier.png"
    Image.fromarray(photo).save(source)
    registered = await invoke(
        image_group, "register", str(source), "--title", "Pier", "--out", str(tmp_path / "out" / "pier.jpg"),
        "--from", "//Bob", "--url", url,
    )  # fmt: skip
    assert registered.exit_code == 0, registered.output
    assert "Reading pier.png" in registered.output
    out = lines(registered.output)
    assert out["watermarked"] == str(tmp_path / "out" / "pier.jpg") and out["reward"] == "none (TooSmall: 512x384 < 1024x576 (long x short edge))"
    with Image.open(out["watermarked"]) as written:
        assert written.format == "JPEG"  # --out's extension decides

    verified = await invoke(image_group, "verify", out["watermarked"], "--url", url)
    assert verified.exit_code == 0, verified.output
    assert "sending a 512x384 JPEG rendering of pier.jpg" in verified.output
    assert lines(verified.output)["match"] == "exact"

    rm = await invoke(
        license_group, "offer", "1", "--kind", "rm", "--price", "100", "--use", "editorial", "--territory", "EU",
        "--duration", "30d", "--run-size", "5000", "--exclusive", "--from", "//Bob", "--url", url,
    )  # fmt: skip
    assert rm.exit_code == 0, rm.output
    listed = await invoke(license_group, "list", "1", "--url", url)
    assert (
        "RM 100 IMG (+ 0.1 IMG fee, burned), use: editorial, territory: EU, 5,000 copies, 30 days, exclusive"
        in listed.output
    ), listed.output
    for bad, message in (
        (["--kind", "rm", "--duration", "30"], "expected a number with a unit"),
        (["--kind", "rm"], "needs --duration"),
        (["--exclusive"], "need --kind rm"),
    ):
        refused = await invoke(
            license_group, "offer", "1", "--price", "1", *bad, "--from", "//Bob", "--url", url
        )
        assert refused.exit_code == 2 and message in refused.output, refused.output
    not_owner = await invoke(license_group, "offer", "1", "--price", "1", "--from", "//Charlie", "--url", url)
    assert not_owner.exit_code == 1 and "not sent: licensing.NotOwner: Only the owner of registration 1" in not_owner.output
