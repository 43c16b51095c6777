"""Garbage collection of the image store against a real chain: what a registration references stays.

Blobs no registration of the best state references are deleted once unwritten for the grace
period; referenced ones never are; an upload of the same bytes again restarts its grace. Also:
the RPC view of a blob and of the store (`storage_blob`, `storage_stats`).
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import trio

from node.core.node import Node
from node.keys import dev_keypair
from node.rpc.server import serve_rpc
from node.runtime import copyright
from node.service import open_node
from node.storage.service import BlobConfig, BlobService
from node.storage.store import segment_count
from tests.rpc.helpers import author, result
from tests.runtime.copyright_util import scene
from tests.storage.blobnet import random_blob, register_with_blobs

BOB = dev_keypair("//Bob")
GRACE = 3600.0


class Clock:
    """Wall-clock seconds the test moves forward (the store stamps writes with it)."""

    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def node(tmp_path: Path) -> Iterator[Node]:
    from node.service import dev_node

    dev = dev_node(tmp_path / "node", rpc_port=None)
    yield dev
    dev.close()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def blobs(node: Node, tmp_path: Path, clock: Clock) -> Iterator[BlobService]:
    service = BlobService(tmp_path / "gc-blobs", BlobConfig(gc_grace_s=GRACE), node.chain.best_state, clock=clock)
    yield service
    service.close()


async def put(blobs: BlobService, data: bytes) -> bytes:
    root, _ = await blobs.upload(io.BytesIO(data), len(data))
    return root


async def test_gc_keeps_referenced_blobs_and_deletes_the_rest_after_the_grace(
    node: Node, blobs: BlobService, clock: Clock
) -> None:
    author(node)
    up = register_with_blobs(node, BOB, scene(31), "kept")
    referenced = await put(blobs, up.published)
    assert referenced == up.blobs[0].root and blobs.referenced(referenced) is not None
    old = await put(blobs, random_blob(5000, seed=7))
    clock.now += GRACE / 2
    fresh = await put(blobs, random_blob(6000, seed=8))
    assert await blobs.collect_garbage() == 0  # nothing is past its grace yet

    clock.now += GRACE / 2 + 1  # `old` and the referenced blob are past it, `fresh` is not
    assert await blobs.collect_garbage() == 5000
    assert blobs.store.has(referenced) and blobs.store.has(fresh) and blobs.store.info(old) is None

    again = await put(blobs, random_blob(6000, seed=8))  # the same bytes, uploaded again
    assert again == fresh
    clock.now += GRACE / 2 + 1
    assert await blobs.collect_garbage() == 0  # its grace started again
    clock.now += GRACE
    assert await blobs.collect_garbage() == 6000
    assert blobs.store.has(referenced) and blobs.store.info(fresh) is None
    assert blobs.stats.gc_deleted == 2 and blobs.store.read(referenced) == up.published
    assert blobs.store.stored_bytes() == len(up.published)


async def test_storage_rpc_methods(node: Node, nursery: trio.Nursery) -> None:
    port = await nursery.start(lambda task_status: serve_rpc(node, "127.0.0.1", 0, task_status=task_status))
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as http:
        author(node)
        up = register_with_blobs(node, BOB, scene(32), "described")
        root = up.blobs[0].root
        unheld = await result(http, "storage_blob", [f"0x{root.hex()}"])
        assert unheld["recorded"] and unheld["kind"] == 0 and unheld["kindName"] == "published"
        assert unheld["size"] == len(up.published) and unheld["registration"] == 1
        assert not unheld["held"] and unheld["segments"] is None and unheld["providers"] == []
        assert unheld["assignedStorers"] == [] and unheld["replication"] == 3  # no miners bonded
        assert (await http.put("/blob", content=up.published)).status_code == 201
        held = await result(http, "storage_blob", [f"0x{root.hex()}"])
        segments = segment_count(len(up.published))
        assert held["held"] and held["segments"] == {"held": segments, "total": segments} and not held["keeps"]
        unknown = await result(http, "storage_blob", ["0x" + "11" * 32])
        assert not unknown["recorded"] and unknown["size"] is None and not unknown["held"]
        bad = (await http.post("/", json={"jsonrpc": "2.0", "id": 1, "method": "storage_blob", "params": ["0x12"]})).json()
        assert bad["error"]["code"] == -32602

        stats = await result(http, "storage_stats")
        assert stats["storedBytes"] == len(up.published) and stats["blobs"] == 1 and stats["uploads"] == 1
        assert stats["quotaBytes"] == 10 << 30 and stats["storer"] is None
        assert stats["duties"] == {"assigned": 0, "standby": 0}
        names = set((await result(http, "rpc_methods"))["methods"])
        assert {"storage_blob", "storage_stats"} <= names


def test_the_store_lives_under_the_base_path_and_survives_a_restart(tmp_path: Path) -> None:
    from node.chain_spec import load_chain_spec
    from node.core.node import NodeConfig

    config = NodeConfig(base_path=tmp_path / "base", spec=load_chain_spec("dev"), rpc_port=None,
                        blobs=BlobConfig(quota_bytes=1 << 20))
    first = open_node(config)
    assert first.blobs is not None
    root = first.blobs.store.put_blob(b"kept across restarts")
    assert first.blobs.store.path == tmp_path / "base" / "chains" / "imagechain_dev" / "blobs"
    first.close()
    second = open_node(config)
    try:
        assert second.blobs is not None and second.blobs.store.read(root) == b"kept across restarts"
        assert second.blobs.store.quota_bytes == 1 << 20
    finally:
        second.close()
    assert copyright.BLOB_PUBLISHED == 0
