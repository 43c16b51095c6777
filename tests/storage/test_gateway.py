"""The image gateway and uploads on the RPC port: real HTTP against a real dev node (no network).

Status codes and headers as the module doc of `node.rpc.gateway` promises them: uploads (201,
200 again, 413 from Content-Length and from a streamed body, 400 empty, 507 past the quota),
raw blobs (ETag, immutable caching, Range/206, 416, 304, HEAD, 400, 404), published files byte
for byte with their Content-Type, versions, resized copies, the verification rendition, and
JSON errors for everything malformed or unknown.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
import trio
from PIL import Image

from node.core.node import Node
from node.keys import dev_keypair
from node.pod_mining.pipeline import prepare_image, sign_registration
from node.primitives.merkle import SEGMENT_BYTES, blob_root
from node.rpc.server import RpcLimits, ServerState, serve_rpc
from node.runtime import copyright
from node.runtime.runtime import SPEC_VERSION
from node.service import dev_node
from node.storage.service import BlobConfig
from node.types import Mortality, SignedExtra
from tests.rpc.helpers import author
from tests.runtime.copyright_util import scene
from tests.storage.blobnet import random_blob, wait_until

BOB = dev_keypair("//Bob")
MAX_UPLOAD = 3 * SEGMENT_BYTES


@pytest.fixture
def node(tmp_path: Path) -> Iterator[Node]:
    dev = dev_node(tmp_path / "node", rpc_port=None, blobs=BlobConfig(quota_bytes=8 * SEGMENT_BYTES, max_upload_bytes=MAX_UPLOAD))
    yield dev
    dev.close()


@pytest.fixture
def state() -> ServerState:
    return ServerState(RpcLimits())


@pytest.fixture
async def http(node: Node, nursery: trio.Nursery, state: ServerState) -> AsyncIterator[httpx.AsyncClient]:
    port = await nursery.start(lambda task_status: serve_rpc(node, "127.0.0.1", 0, state=state, task_status=task_status))
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
        yield client


def assert_json_error(response: httpx.Response, status: int, text: str = "") -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    error = response.json()["error"]
    assert error["status"] == status and text in error["message"], error
    assert "Traceback" not in response.text


def register(node: Node, rgb: np.ndarray, tag: str, out: Path | None = None) -> tuple[bytes, copyright.BlobRef]:
    """Register a watermarked copy of `rgb` by Bob; returns the published file and its blob."""
    up = prepare_image(
        rgb, genesis_hash=node.genesis_hash, uploader=BOB.account_id, sha256=hashlib.sha256(tag.encode()).digest(),
        format_code=1 if out is not None else 2, is_raw=False, title=tag, creator="c", description="d", out=out,
        jpeg_output=out is not None,
    )  # fmt: skip
    extra = SignedExtra(node.genesis_hash, SPEC_VERSION, node.next_nonce(BOB.account_id), 0, Mortality.from_genesis(node.genesis_hash))
    node.submit_extrinsic(sign_registration(BOB, up, extra))
    author(node)
    return up.published, up.blobs[0]


async def test_upload_and_raw_blob_headers(http: httpx.AsyncClient, state: ServerState) -> None:
    data = random_blob(SEGMENT_BYTES + 5000, seed=3)
    root = blob_root(data)
    put = await http.put("/blob", content=data)
    assert put.status_code == 201 and put.json() == {"root": f"0x{root.hex()}", "size": len(data)}
    assert put.headers["location"] == f"/blob/0x{root.hex()}"
    assert (await http.put("/blob", content=data)).status_code == 200  # held already

    got = await http.get(f"/blob/0x{root.hex()}")
    assert got.status_code == 200 and got.content == data
    etag = f'"{root.hex()}"'
    assert got.headers["etag"] == etag
    assert got.headers["cache-control"] == "public, max-age=29030400, immutable"
    assert got.headers["content-type"] == "application/octet-stream"
    assert got.headers["x-content-type-options"] == "nosniff" and "sandbox" in got.headers["content-security-policy"]
    assert got.headers["accept-ranges"] == "bytes" and got.headers["content-length"] == str(len(data))
    assert (await http.get(f"/blob/{root.hex()}")).content == data  # without 0x too

    part = await http.get(f"/blob/0x{root.hex()}", headers={"Range": f"bytes={SEGMENT_BYTES - 10}-{SEGMENT_BYTES + 9}"})
    assert part.status_code == 206 and part.content == data[SEGMENT_BYTES - 10 : SEGMENT_BYTES + 10]
    assert part.headers["content-range"] == f"bytes {SEGMENT_BYTES - 10}-{SEGMENT_BYTES + 9}/{len(data)}"
    tail = await http.get(f"/blob/0x{root.hex()}", headers={"Range": "bytes=-100"})
    assert tail.status_code == 206 and tail.content == data[-100:]
    start = await http.get(f"/blob/0x{root.hex()}", headers={"Range": f"bytes={len(data) - 7}-"})
    assert start.status_code == 206 and start.content == data[-7:]
    several = await http.get(f"/blob/0x{root.hex()}", headers={"Range": "bytes=0-1,5-6"})
    assert several.status_code == 200 and several.content == data  # several ranges: the whole file
    beyond = await http.get(f"/blob/0x{root.hex()}", headers={"Range": f"bytes={len(data)}-"})
    assert_json_error(beyond, 416, "outside")
    assert beyond.headers["content-range"] == f"bytes */{len(data)}"
    stale = await http.get(f"/blob/0x{root.hex()}", headers={"Range": "bytes=0-9", "If-Range": '"other"'})
    assert stale.status_code == 200 and stale.content == data

    cached = await http.get(f"/blob/0x{root.hex()}", headers={"If-None-Match": etag})
    assert cached.status_code == 304 and cached.content == b"" and cached.headers["etag"] == etag
    head = await http.head(f"/blob/0x{root.hex()}")
    assert head.status_code == 200 and head.content == b"" and head.headers["content-length"] == str(len(data))

    assert_json_error(await http.get("/blob/0x1234"), 400, "not a blob root")
    assert_json_error(await http.get("/blob/" + "zz" * 32), 400, "not a blob root")
    assert_json_error(await http.get(f"/blob/0x{'ab' * 32}"), 404, "not held here")
    await wait_until(lambda: state.gate.open == 0, what="connection slots given back once answered")


async def test_upload_limits(http: httpx.AsyncClient, node: Node) -> None:
    assert_json_error(await http.put("/blob", content=b"x" * (MAX_UPLOAD + 1)), 413, "at most")

    async def streamed() -> AsyncIterator[bytes]:  # no Content-Length: refused once past the limit
        for _ in range(8):
            yield b"y" * SEGMENT_BYTES

    assert_json_error(await http.put("/blob", content=streamed()), 413, "--blob-max-upload")
    assert_json_error(await http.put("/blob", content=b""), 400, "empty")
    assert node.blobs is not None and node.blobs.store.stored_bytes() == 0

    # The quota: 8 segments. Two uploads of 3 fit, the third does not (507, nothing stored).
    for seed in (1, 2):
        assert (await http.put("/blob", content=random_blob(MAX_UPLOAD, seed))).status_code == 201
    assert_json_error(await http.put("/blob", content=random_blob(MAX_UPLOAD, 3)), 507, "quota")
    assert node.blobs.store.stored_bytes() == 2 * MAX_UPLOAD


async def test_published_files_versions_widths_and_renditions(
    http: httpx.AsyncClient, node: Node, tmp_path: Path
) -> None:
    author(node)
    png, blob = register(node, scene(11), "a PNG photo")
    jpeg, jpeg_blob = register(node, scene(12), "a JPEG photo", out=tmp_path / "photo.jpg")
    assert (await http.put("/blob", content=png)).json()["root"] == f"0x{blob.root.hex()}"
    assert (await http.put("/blob", content=jpeg)).status_code == 201

    # Byte for byte, with the type read from the bytes; immutable once the block is final.
    first = await http.get("/img/1")
    assert first.status_code == 200 and first.content == png
    assert first.headers["content-type"] == "image/png" and first.headers["etag"] == f'"{blob.root.hex()}"'
    assert first.headers["cache-control"] == "public, max-age=29030400, immutable"
    assert first.headers["content-disposition"] == 'inline; filename="1-v0.png"'
    assert (await http.get("/img/1", params={"v": 0})).content == png
    second = await http.get("/img/2")
    assert second.content == jpeg and second.headers["content-type"] == "image/jpeg"
    assert jpeg == (tmp_path / "photo.jpg").read_bytes()  # the file `image register --out` wrote
    part = await http.get("/img/2", headers={"Range": "bytes=0-1"})
    assert part.status_code == 206 and part.content == b"\xff\xd8"
    assert (await http.get("/img/2", headers={"If-None-Match": f'"{jpeg_blob.root.hex()}"'})).status_code == 304

    # A copy 64 pixels wide, cached; a width at or past the file's is the file itself.
    small = await http.get("/img/1", params={"w": 64})
    assert small.status_code == 200 and small.headers["content-type"] == "image/png"
    assert small.headers["etag"] == f'"{blob.root.hex()}-w64"'
    with Image.open(io.BytesIO(small.content)) as image:
        assert image.width == 64 and image.height == round(384 * 64 / 512)
    assert (await http.get("/img/1", params={"w": 64})).content == small.content
    small_jpeg = await http.get("/img/2", params={"w": 100})
    assert small_jpeg.headers["content-type"] == "image/jpeg" and Image.open(io.BytesIO(small_jpeg.content)).width == 100
    assert (await http.get("/img/1", params={"w": 4096})).content == png

    # The verification rendition, from the registering extrinsic.
    rendition = await http.get("/img/1/rendition.png")
    assert rendition.status_code == 200 and rendition.headers["content-type"] == "image/png"
    registration = copyright.get_registration(node.chain.best_state(), 1)
    assert registration is not None
    with Image.open(io.BytesIO(rendition.content)) as image:
        assert image.size == (256, 256) and image.mode == "L"
        block = node.chain.block(node.chain.hash_at(registration.original.block))  # type: ignore[arg-type]
        assert block is not None
        assert image.tobytes() == bytes(_register_args(block.extrinsics[registration.original.ext_index])[8])

    # Everything malformed or unknown: JSON errors.
    assert_json_error(await http.get("/img/99"), 404, "no registration 99")
    assert_json_error(await http.get("/img/0"), 400, "registration id")
    assert_json_error(await http.get("/img/abc"), 400, "registration id")
    assert_json_error(await http.get("/img/" + "9" * 30), 400, "registration id")
    assert_json_error(await http.get("/img/1", params={"v": 1}), 404, "no version 1")
    assert_json_error(await http.get("/img/1", params={"v": "x"}), 400, "v (a version")
    assert_json_error(await http.get("/img/1", params={"w": 15}), 400, "w (a width")
    assert_json_error(await http.get("/img/1", params={"w": 4097}), 400, "w (a width")
    assert_json_error(await http.get("/img/1", params={"w": "-3"}), 400, "w (a width")
    assert_json_error(await http.get("/img/99/rendition.png"), 404, "no registration")
    assert_json_error(await http.get("/img/x/rendition.png"), 400, "registration id")


async def test_a_registered_file_the_node_does_not_hold_and_cannot_fetch(http: httpx.AsyncClient, node: Node) -> None:
    author(node)
    _, blob = register(node, scene(13), "never uploaded")
    assert_json_error(await http.get("/img/1"), 404, "no network")
    assert_json_error(await http.get(f"/blob/0x{blob.root.hex()}"), 404, "no network")


async def test_origins_follow_rpc_cors(http: httpx.AsyncClient) -> None:
    data = random_blob(1000, seed=4)
    root = (await http.put("/blob", content=data, headers={"Origin": "http://localhost:3000"})).json()["root"]
    allowed = await http.get(f"/blob/{root}", headers={"Origin": "http://localhost:3000"})
    assert allowed.status_code == 200 and allowed.headers["access-control-allow-origin"] == "http://localhost:3000"
    assert "etag" in allowed.headers["access-control-expose-headers"].lower()
    assert_json_error(await http.get(f"/blob/{root}", headers={"Origin": "https://evil.example"}), 403, "not allowed")
    assert_json_error(await http.put("/blob", content=data, headers={"Origin": "https://evil.example"}), 403, "not allowed")
    preflight = await http.options(
        "/blob", headers={"Origin": "http://localhost:3000", "Access-Control-Request-Method": "PUT"}
    )
    assert preflight.status_code == 200 and "PUT" in preflight.headers["access-control-allow-methods"]


def _register_args(extrinsic: bytes) -> tuple:
    from node.types import Extrinsic

    call = Extrinsic.decode(extrinsic).call
    assert call.name == "copyright.register"
    return call.args
