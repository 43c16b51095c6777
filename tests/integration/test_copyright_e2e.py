"""Issue 5's acceptance, end to end: a real dev node process, photo-like images, the wallet.

One story, in order (each step needs the state the previous ones left):

1. Bob registers a photo with `imagechain image register` and gets the watermarked copy.
2. A JPEG-50 re-encoding of that copy is found *exactly* by `copyright_verifyImage` (the
   watermark names the registration); a resized copy of the unmarked original is found by
   its pHash (*similar*).
3. Bob uploads a higher-resolution export of the same photo: it becomes a version.
4. Charlie uploads the camera RAW at an even higher resolution: he takes ownership (event).
5. Dave's lower-resolution copy is rejected, naming the original registration.
6. Charlie offers a licence and Bob buys it through the CLI: the price moves to Charlie
   exactly, and total issuance (read with `state_getStorage`) falls by exactly the burned fee.

The photos are generated (`natural_image`: 1/f spectrum, correlated colour, hard-edged objects),
deterministic and never downloaded. Blocks come every 2 s (the dev chain's slot), so the test
takes ~15 s, most of it waiting for six blocks.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner, Result
from PIL import Image

import node.commands.copyright  # noqa: F401 - attaches `register` and `verify` to the image group
from node.client import RpcClient
from node.commands.copyright import license_group
from node.commands.image import image_group
from node.keys import dev_keypair, encode_address
from node.pod_mining.pipeline import prepare_image
from node.pod_mining.upload import RegistrationRejected, register_image, submit_registration
from node.runtime import balances, copyright
from tests.imaging.conftest import natural_image
from tests.integration.nodeproc import NodeProcess

pytestmark = pytest.mark.slow

IMG = 10**18
BOB = dev_keypair("//Bob")
CHARLIE = dev_keypair("//Charlie")
DAVE = dev_keypair("//Dave")


@pytest.fixture(scope="module")
def scene() -> np.ndarray:
    """The photo at its "true" resolution, 2000x1500; every upload is a resampling of it."""
    return np.asarray(Image.fromarray(natural_image(41, 600, 800)).resize((2000, 1500), Image.LANCZOS))


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[NodeProcess, RpcClient]]:
    proc = NodeProcess(tmp_path_factory.mktemp("copyright-e2e") / "node", "--log", "warn")
    client = proc.start()
    try:
        yield proc, client
    finally:
        client.close()
        proc.stop()


def at_size(rgb: np.ndarray, width: int, height: int) -> np.ndarray:
    return np.asarray(Image.fromarray(rgb).resize((width, height), Image.LANCZOS))


def encoded(rgb: np.ndarray, fmt: str, **options: int) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format=fmt, **options)
    return buffer.getvalue()


def cli(group: object, *args: str) -> Result:
    return CliRunner().invoke(group, list(args))  # type: ignore[arg-type]


def fields(output: str) -> dict[str, str]:
    found: dict[str, str] = {}
    for line in output.splitlines():
        key, sep, value = line.partition(": ")
        if sep:
            found.setdefault(key, value)
    return found


def test_register_verify_version_takeover_reject_and_license(
    chain: tuple[NodeProcess, RpcClient], scene: np.ndarray, tmp_path: Path
) -> None:
    proc, client = chain
    url = proc.url

    # 1. Bob registers his 1200x900 JPEG with the CLI.
    original = at_size(scene, 1200, 900)
    photo = tmp_path / "harbour.jpg"
    photo.write_bytes(encoded(original, "JPEG", quality=92))
    registered = cli(image_group, "register", str(photo), "--title", "Harbour at dawn", "--creator", "Bob",
                     "--from", "//Bob", "--url", url)  # fmt: skip
    assert registered.exit_code == 0, registered.output + proc.log()
    out = fields(registered.output)
    assert out["registration"] == "1" and out["result"] == "new registration"
    watermarked = Path(out["watermarked"])
    assert watermarked == tmp_path / "harbour.imagechain.jpg"
    assert Image.open(watermarked).size == (1200, 900)
    assert out["reward"] == "1 IMG"  # a novel 1200x900 photo passes PoD screening
    registration = client.get_registration(1)
    assert registration is not None and registration.owner == BOB.account_id
    assert registration.original.sha256 == hashlib.sha256(photo.read_bytes()).digest()

    # 2. Found copies. A JPEG-50 re-encoding of the published copy: exact, by the watermark.
    marked = np.asarray(Image.open(watermarked).convert("RGB"))
    jpeg50 = tmp_path / "found-on-the-web.jpg"
    jpeg50.write_bytes(encoded(marked, "JPEG", quality=50))
    found = client.verify_image(jpeg50)
    assert found.best is not None and found.best.kind == "exact" and found.best.registration.id == 1
    assert found.watermark == registration.original.wm_payload
    verified = cli(image_group, "verify", str(jpeg50), "--url", url)
    assert verified.exit_code == 0, verified.output
    shown = fields(verified.output)
    assert (shown["match"], shown["registration"]) == ("exact", "1")
    assert shown["owner"] == encode_address(BOB.account_id)
    assert shown["block"].startswith(f"#{registration.block} ")
    # A resized copy of the unmarked original (a leak from before watermarking): similar, by pHash.
    resized = client.verify_image(encoded(at_size(original, 600, 450), "PNG"))
    assert resized.watermark is None
    assert resized.best is not None and resized.best.kind == "similar" and resized.best.registration.id == 1
    assert resized.best.distance <= 8

    # 3. Bob's 1600x1200 export of the same photo: a version of registration 1.
    export = tmp_path / "harbour-1600.png"
    export.write_bytes(encoded(at_size(scene, 1600, 1200), "PNG"))
    version = register_image(client, BOB, export, "Harbour at dawn (large)")
    assert (version.kind, version.registration_id, version.version_index) == ("version", 1, 1)
    assert version.watermarked == tmp_path / "harbour-1600.imagechain.png"

    # 4. Charlie's camera RAW, 2000x1500 (>= the highest version): ownership moves to him.
    # rawpy (LibRaw) is not installed, so no RAW file can be decoded here and the CLI would
    # refuse one. The runtime cannot see the RAW file either: it checks the claim (format code
    # in the RAW range, is_raw, the rendition's pHash and watermark). So the RAW upload is
    # built at the call level from the pixels a RAW decoder would have produced, with the
    # SHA-256 of the RAW file's bytes and the DNG format code, and submitted like any other.
    raw_file = b"II*\x00DNG stand-in " + hashlib.sha256(b"charlie's sensor data").digest()
    raw_upload = prepare_image(
        scene, genesis_hash=client.genesis_hash(), uploader=CHARLIE.account_id,
        sha256=hashlib.sha256(raw_file).digest(), format_code=copyright.FORMAT_BY_NAME["dng"], is_raw=True,
        title="Harbour at dawn (RAW)",
    )  # fmt: skip
    takeover = submit_registration(client, CHARLIE, raw_upload)
    assert (takeover.kind, takeover.registration_id, takeover.previous_owner) == (
        "takeover",
        1,
        BOB.account_id,
    )
    event = takeover.outcome.find(copyright.OwnershipTakenOver)
    assert (
        event is not None and event.registration_id == 1 and (event.previous, event.new) == (BOB.account_id, CHARLIE.account_id)
    )
    registration = client.get_registration(1)
    assert registration is not None and registration.owner == CHARLIE.account_id
    assert [v.pixels for v in registration.versions] == [1200 * 900, 1600 * 1200, 2000 * 1500]
    assert (
        client.registrations_of(CHARLIE.account_id) == [1] and client.registrations_of(BOB.account_id) == []
    )

    # 5. Dave's 800x600 copy: a near-duplicate with fewer pixels, rejected naming registration 1.
    small = tmp_path / "harbour-small.jpg"
    small.write_bytes(encoded(at_size(scene, 800, 600), "JPEG", quality=90))
    with pytest.raises(RegistrationRejected) as rejected:
        register_image(client, DAVE, small, "My harbour")
    assert rejected.value.registration_id == 1 and rejected.value.error == "copyright.NearDuplicate"
    assert "near-duplicate of registration #1" in str(rejected.value)
    assert client.registrations_of(DAVE.account_id) == []

    # 6. A licence through the CLI: Charlie offers, Bob buys.
    offered = cli(license_group, "offer", "1", "--price", "25", "--from", "//Charlie", "--url", url)
    assert offered.exit_code == 0, offered.output
    offer_id = fields(offered.output)["offer"]
    bought = cli(license_group, "buy", offer_id, "--from", "//Bob", "--url", url)
    assert bought.exit_code == 0, bought.output
    receipt = fields(bought.output)
    assert (receipt["price"], receipt["licence fee"]) == ("25 IMG", "0.025 IMG (burned)")
    block = bytes.fromhex(receipt["block"].split(" 0x")[1])
    parent = client.header(block).parent_hash

    def issuance(at: bytes) -> int:  # state_getStorage of balances:total_issuance
        raw = client.storage(balances.KEY_TOTAL_ISSUANCE, at)
        assert raw is not None
        return int.from_bytes(raw, "big")

    assert issuance(parent) - issuance(block) == 25 * IMG // 1000  # exactly the burned 0.1% fee
    assert (
        client.account(CHARLIE.account_id, block).free - client.account(CHARLIE.account_id, parent).free
        == 25 * IMG
    )
    (licence,) = client.licences_of(BOB.account_id)
    assert (licence.registration_id, licence.licensor, licence.price, licence.fee) == (
        1, CHARLIE.account_id, 25 * IMG, 25 * IMG // 1000,
    )  # fmt: skip
    held = cli(license_group, "list", "--holder", "//Bob", "--url", url)
    assert "registration 1 RF 25 IMG, perpetual, active" in held.output, held.output
