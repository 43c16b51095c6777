"""The image store's benchmarks (issue #12): prints the figures; speed goals live here, not in tests.

Network section (`--network`, `network_benchmarks`):

* segment transfer over libp2p (Noise + Yamux, `/imagechain/blob/1`) between two processes, as a
  ratio of a raw loopback TCP copy of the same bytes between two processes (goal >= 0.5). Two
  figures: the requests alone (SEGMENTS requests of 8 segments, 3 in flight, answers decoded), and a whole
  `BlobService.fetch` (provider lookup, INFO, every segment checked against the root and written
  to LMDB);
* the gateway's `GET /img/<id>` of a 1 MB image, requests a second with keep-alive clients in
  another process, as a ratio of the same file served from disk by Starlette's `FileResponse`
  under the same server (hypercorn, trio) in the same process (goal >= 0.8).

The mining section (sealing, tickets) is added beside it as its own functions and switch.

    .venv/bin/python bench/bench_storage.py --network [--blob-mib 64] [--seconds 5] [--clients 4]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import io
import multiprocessing as mp
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import trio

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from node.primitives.merkle import SEGMENT_BYTES  # noqa: E402

# ---------------------------------------------------------------------------------------------
# Network: segment transfer
# ---------------------------------------------------------------------------------------------


def _blob(mib: int) -> bytes:
    import numpy as np

    return np.random.default_rng(12).integers(0, 256, mib * 1024 * 1024, dtype=np.uint8).tobytes()


def _tcp_server(mib: int, ready: Any) -> None:
    """Child: accept one connection and send the bytes, 256 KiB at a time."""
    data = _blob(mib)

    async def main() -> None:
        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        ready.put(listeners[0].socket.getsockname()[1])

        async def handle(stream: trio.SocketStream) -> None:
            view = memoryview(data)
            for start in range(0, len(data), SEGMENT_BYTES):
                await stream.send_all(view[start : start + SEGMENT_BYTES])
            await stream.aclose()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(trio.serve_listeners, handle, listeners)

    trio.run(main)


async def _tcp_copy(port: int, size: int) -> float:
    started = time.perf_counter()
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    received = 0
    while received < size:
        chunk = await stream.receive_some(1 << 20)
        if not chunk:
            break
        received += len(chunk)
    elapsed = time.perf_counter() - started
    assert received == size, (received, size)
    return elapsed


def _blob_provider(mib: int, base: str, ready: Any) -> None:
    """Child: a libp2p host with a blob service holding the blob."""
    from node.p2p.config import NetworkConfig
    from node.p2p.network import Network
    from node.storage.protocol import PROTOCOL
    from node.storage.service import BlobConfig, BlobService
    from tests.storage.blobnet import BlobHandler

    data = _blob(mib)

    async def main() -> None:
        blobs = BlobService(Path(base) / "provider", BlobConfig(quota_bytes=4 << 30), lambda: (lambda key: None))
        config = NetworkConfig(base_path=Path(base) / "p", genesis_hash=bytes(32), listen_addrs=["/ip4/127.0.0.1/tcp/0"])
        network = Network(config, BlobHandler(blobs.serve))
        network.register_protocol(PROTOCOL)
        async with trio.open_nursery() as nursery:
            await nursery.start(network.run)
            blobs.attach(network)
            await nursery.start(blobs.run)
            root, _ = await blobs.upload(io.BytesIO(data), len(data))
            ready.put((network.listen_addrs[0], root))

    trio.run(main)


async def _libp2p_transfer(addr: str, root: bytes, size: int, base: Path) -> tuple[float, float]:
    """(seconds for the segment requests alone, seconds for a whole verified fetch into LMDB)."""
    from node.p2p.config import NetworkConfig
    from node.p2p.network import Network
    from node.storage.protocol import MAX_BATCH, PROTOCOL, decode_segments, segments_request
    from node.storage.service import REQUESTS_IN_FLIGHT, BlobConfig, BlobService
    from tests.storage.blobnet import BlobHandler

    blobs = BlobService(base / "fetcher", BlobConfig(quota_bytes=4 << 30), lambda: (lambda key: None))
    config = NetworkConfig(base_path=base / "f", genesis_hash=bytes(32), listen_addrs=["/ip4/127.0.0.1/tcp/0"])
    network = Network(config, BlobHandler(blobs.serve))
    network.register_protocol(PROTOCOL)
    async with trio.open_nursery() as nursery:
        await nursery.start(network.run)
        blobs.attach(network)
        await nursery.start(blobs.run)
        peer = await network.connect(addr)
        count = -(-size // SEGMENT_BYTES)
        await network.request(peer, PROTOCOL, segments_request(root, 0, 1), 30)  # warm the connection

        batches = iter(range(0, count, MAX_BATCH))
        received = 0

        async def worker() -> None:
            nonlocal received
            for first in batches:
                n = min(MAX_BATCH, count - first)
                answer = decode_segments(await network.request(peer, PROTOCOL, segments_request(root, first, n), 30), first, n)
                assert answer is not None and len(answer) == n
                received += sum(len(segment.data) for _, segment in answer)

        started = time.perf_counter()
        async with trio.open_nursery() as workers:
            for _ in range(REQUESTS_IN_FLIGHT):
                workers.start_soon(worker)
        requests = time.perf_counter() - started
        assert received == size

        started = time.perf_counter()
        assert await blobs.fetch(root, timeout=600)
        fetch = time.perf_counter() - started
        assert blobs.store.stored_bytes() == size
        nursery.cancel_scope.cancel()
    blobs.close()
    return requests, fetch


def bench_segment_transfer(mib: int) -> dict[str, float]:
    size = mib * 1024 * 1024
    ctx = mp.get_context("spawn")
    with tempfile.TemporaryDirectory(prefix="bench-storage-") as tmp:
        ready = ctx.Queue()
        tcp = ctx.Process(target=_tcp_server, args=(mib, ready), daemon=True)
        tcp.start()
        port = ready.get(timeout=60)
        tcp_seconds = trio.run(_tcp_copy, port, size)
        tcp.terminate()

        provider = ctx.Process(target=_blob_provider, args=(mib, tmp, ready), daemon=True)
        provider.start()
        addr, root = ready.get(timeout=120)
        requests, fetch = trio.run(_libp2p_transfer, addr, root, size, Path(tmp))
        provider.terminate()
    mb = size / 1e6
    figures = {
        "tcp_mb_s": mb / tcp_seconds,
        "libp2p_requests_mb_s": mb / requests,
        "libp2p_fetch_mb_s": mb / fetch,
    }
    figures["requests_ratio"] = figures["libp2p_requests_mb_s"] / figures["tcp_mb_s"]
    figures["fetch_ratio"] = figures["libp2p_fetch_mb_s"] / figures["tcp_mb_s"]
    return figures


# ---------------------------------------------------------------------------------------------
# Network: the gateway
# ---------------------------------------------------------------------------------------------


def _load(port: int, path: str, seconds: float, clients: int, out: Any) -> None:
    """Child: `clients` keep-alive HTTP/1.1 connections asking for `path` for `seconds`; puts the
    number of complete answers (a bare asyncio client: it should cost less than the server)."""

    async def client(deadline: float) -> int:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        request = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode()
        done = 0
        while time.perf_counter() < deadline:
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 200"), head[:100]
            length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length"))
            await reader.readexactly(length)
            done += 1
        writer.close()
        return done

    async def main() -> int:
        deadline = time.perf_counter() + seconds
        return sum(await asyncio.gather(*(client(deadline) for _ in range(clients))))

    out.put(asyncio.run(main()))


def _image_file(tmp: Path) -> bytes:
    """A ~1 MB photo-like PNG (the published file of a registration)."""
    from PIL import Image

    from tests.imaging.conftest import natural_image

    rgb = natural_image(5, 600, 800)
    for side in (800, 700, 640, 600):
        buffer = io.BytesIO()
        Image.fromarray(rgb).resize((side, side * 3 // 4)).save(buffer, format="PNG")
        if buffer.tell() <= 1_100_000:
            break
    return buffer.getvalue()


async def _gateway(seconds: float, clients: int, tmp: Path) -> dict[str, float]:
    from hypercorn.config import Config
    from hypercorn.trio import serve
    from starlette.applications import Starlette
    from starlette.responses import FileResponse
    from starlette.routing import Route

    from node.keys import dev_keypair
    from node.pod_mining.pipeline import prepare_image, sign_registration
    from node.rpc.server import serve_rpc
    from node.runtime.runtime import SPEC_VERSION
    from node.service import dev_node
    from node.types import Mortality, SignedExtra
    from tests.rpc.helpers import author

    node = dev_node(tmp / "node", rpc_port=None)
    bob = dev_keypair("//Bob")
    author(node)
    import numpy as np
    from PIL import Image

    png = _image_file(tmp)
    rgb = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))
    up = prepare_image(
        rgb, genesis_hash=node.genesis_hash, uploader=bob.account_id, sha256=hashlib.sha256(png).digest(),
        format_code=2, is_raw=False, title="bench", creator="", description="",
    )  # fmt: skip
    extra = SignedExtra(node.genesis_hash, SPEC_VERSION, node.next_nonce(bob.account_id), 0, Mortality.from_genesis(node.genesis_hash))
    node.submit_extrinsic(sign_registration(bob, up, extra))
    author(node)
    assert node.blobs is not None
    await node.blobs.upload(io.BytesIO(up.published), len(up.published))
    path = tmp / "published.png"
    path.write_bytes(up.published)

    async def from_disk(request: Any) -> FileResponse:
        return FileResponse(path, media_type="image/png")

    config = Config()
    config.bind = ["127.0.0.1:0"]
    config.accesslog = None
    ctx = mp.get_context("spawn")
    figures: dict[str, float] = {"image_bytes": len(up.published)}
    async with trio.open_nursery() as nursery:
        gateway_port = await nursery.start(lambda task_status: serve_rpc(node, "127.0.0.1", 0, task_status=task_status))
        binds = await nursery.start(serve, Starlette(routes=[Route("/file", from_disk)]), config)
        disk_port = int(binds[0].rsplit(":", 1)[1])
        for name, port, url in (("disk", disk_port, "/file"), ("gateway", gateway_port, "/img/1")):
            out = ctx.Queue()
            load = ctx.Process(target=_load, args=(port, url, seconds, clients, out), daemon=True)
            load.start()
            while load.is_alive() and out.empty():
                await trio.sleep(0.05)
            figures[f"{name}_req_s"] = out.get(timeout=10) / seconds
            load.join()
        nursery.cancel_scope.cancel()
    node.close()
    figures["ratio"] = figures["gateway_req_s"] / figures["disk_req_s"]
    return figures


def bench_gateway(seconds: float, clients: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="bench-gateway-") as tmp:
        return trio.run(_gateway, seconds, clients, Path(tmp))


def network_benchmarks(args: argparse.Namespace) -> None:
    transfer = bench_segment_transfer(args.blob_mib)
    print(f"segment transfer, {args.blob_mib} MiB between two processes on 127.0.0.1:")
    print(f"  raw loopback TCP copy           {transfer['tcp_mb_s']:8.1f} MB/s")
    print(f"  libp2p segment requests         {transfer['libp2p_requests_mb_s']:8.1f} MB/s  "
          f"ratio {transfer['requests_ratio']:.2f} (goal >= 0.5)")
    print(f"  libp2p fetch, checked + stored  {transfer['libp2p_fetch_mb_s']:8.1f} MB/s  "
          f"ratio {transfer['fetch_ratio']:.2f}")
    gateway = bench_gateway(args.seconds, args.clients)
    print(f"gateway, a {gateway['image_bytes'] / 1e6:.2f} MB image, {args.clients} keep-alive clients, {args.seconds:g} s:")
    print(f"  Starlette FileResponse (disk)   {gateway['disk_req_s']:8.1f} req/s")
    print(f"  GET /img/1 (blob store)         {gateway['gateway_req_s']:8.1f} req/s  "
          f"ratio {gateway['ratio']:.2f} (goal >= 0.8)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--network", action="store_true", help="the image store's network and gateway figures")
    parser.add_argument("--blob-mib", type=int, default=64, help="size of the transferred blob")
    parser.add_argument("--seconds", type=float, default=5.0, help="length of each gateway load run")
    parser.add_argument("--clients", type=int, default=4, help="keep-alive clients of the gateway load")
    args = parser.parse_args()
    if not args.network:
        parser.error("choose a section: --network")
    if args.network:
        network_benchmarks(args)


if __name__ == "__main__":
    main()
