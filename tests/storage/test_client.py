"""The wallet's blob functions against a real node over HTTP, and the sealed original.

The sealed original of a registration opens with the owner's key only: not with another
account's, not after a single flipped byte; a secp256k1 owner is refused with a clear error.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest
import trio

from node.core.node import Node
from node.keys import Keypair, Scheme, _ed25519_point_is_valid, dev_keypair
from node.rpc.server import serve_rpc
from node.runtime import copyright
from node.service import dev_node
from node.storage.client import (
    BlobClientError,
    BlobNotFound,
    SealedOriginalError,
    fetch_blob,
    fetch_published,
    open_original,
    seal_original,
    upload_blob,
)
from tests.rpc.helpers import author
from tests.runtime.copyright_util import scene
from tests.storage.blobnet import random_blob, register_with_blobs

ALICE, BOB = dev_keypair("//Alice"), dev_keypair("//Bob")


@pytest.fixture
def node(tmp_path: Path) -> Iterator[Node]:
    dev = dev_node(tmp_path / "node", rpc_port=None)
    yield dev
    dev.close()


@pytest.fixture
async def url(node: Node, nursery: trio.Nursery) -> str:
    port = await nursery.start(lambda task_status: serve_rpc(node, "127.0.0.1", 0, task_status=task_status))
    return f"http://127.0.0.1:{port}"


def test_a_sealed_original_opens_only_with_the_owners_key() -> None:
    original = random_blob(300_000, seed=5)
    sealed = seal_original(original, BOB.public)
    assert len(sealed) == len(original) + 48 and original[:1000] not in sealed
    assert open_original(sealed, BOB) == original
    assert seal_original(original, BOB.account_id) != sealed  # a fresh ephemeral key each time
    assert open_original(seal_original(original, BOB.account_id), BOB) == original
    with pytest.raises(SealedOriginalError, match="cannot open"):
        open_original(sealed, ALICE)
    with pytest.raises(SealedOriginalError, match="cannot open"):
        open_original(sealed[:100] + bytes([sealed[100] ^ 1]) + sealed[101:], BOB)


def test_secp256k1_accounts_are_refused_with_a_clear_error() -> None:
    secp = dev_keypair("//Bob", Scheme.SECP256K1)
    with pytest.raises(SealedOriginalError, match="ed25519 account"):
        seal_original(b"raw", secp.public)
    with pytest.raises(SealedOriginalError, match="ed25519"):
        open_original(seal_original(b"raw", BOB.public), secp)
    # A bare account id that is no ed25519 point (most secp256k1 ids) is refused too.
    seed = next(s for s in range(1, 100) if not _ed25519_point_is_valid(_secp(s).account_id))
    with pytest.raises(SealedOriginalError, match="not an ed25519 public key"):
        seal_original(b"raw", _secp(seed).account_id)


def _secp(seed: int) -> Keypair:
    return Keypair.from_seed(Scheme.SECP256K1, hashlib.sha256(seed.to_bytes(4, "big")).digest())


async def test_upload_fetch_and_the_sealed_original_of_a_registration(node: Node, url: str) -> None:
    original = random_blob(700_000, seed=6)  # stands for the camera file
    sealed = seal_original(original, BOB.public)
    seen: list[tuple[int, int]] = []
    uploaded = await trio.to_thread.run_sync(lambda: upload_blob(url, sealed, lambda d, t: seen.append((d, t))))
    assert uploaded.size == len(sealed) and uploaded.created
    assert seen[0] == (0, len(sealed)) and seen[-1] == (len(sealed), len(sealed)) and len(seen) == 4

    author(node)
    sealed_ref = copyright.BlobRef(copyright.BLOB_SEALED_ORIGINAL, uploaded.root, uploaded.size)
    up = register_with_blobs(node, BOB, scene(21), "sealed", (sealed_ref,))
    await trio.to_thread.run_sync(lambda: upload_blob(url, up.published))

    published = await trio.to_thread.run_sync(lambda: fetch_published(url, 1))
    assert published == up.published
    fetched = await trio.to_thread.run_sync(lambda: fetch_blob(url, uploaded.root))
    assert open_original(fetched, BOB) == original
    with pytest.raises(SealedOriginalError):
        open_original(fetched, ALICE)

    with pytest.raises(BlobNotFound):
        await trio.to_thread.run_sync(lambda: fetch_published(url, 7))
    with pytest.raises(BlobNotFound):
        await trio.to_thread.run_sync(lambda: fetch_published(url, 1, 3))
    with pytest.raises(BlobNotFound, match="404"):
        await trio.to_thread.run_sync(lambda: fetch_blob(url, b"\x07" * 32))
    with pytest.raises(BlobClientError, match="400"):
        await trio.to_thread.run_sync(lambda: upload_blob(url, b""))
