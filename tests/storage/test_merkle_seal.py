"""Blob Merkle trees (RFC 6962 over 1 KiB leaves) and sealed replicas (Sloth over p = 2**256 - 189)."""

from __future__ import annotations

import os
import random

import pytest

from node.primitives import merkle, seal


def _reference_root(hashes: list[bytes]) -> bytes:
    """RFC 6962 section 2.1 written out independently: MTH by recursion on the split point."""
    if not hashes:
        return merkle.EMPTY_ROOT
    if len(hashes) == 1:
        return hashes[0]
    k = 1
    while k * 2 < len(hashes):
        k *= 2
    return merkle.node_hash(_reference_root(hashes[:k]), _reference_root(hashes[k:]))


@pytest.mark.parametrize("size", [0, 1, 1023, 1024, 1025, 3 * 1024, 256 * 1024, 256 * 1024 + 1, 700_001])
def test_roots_and_every_audit_path(size: int) -> None:
    data = random.Random(size).randbytes(size)
    hashes = merkle.leaf_hashes(data)
    root = merkle.blob_root(data)
    assert root == _reference_root(hashes)
    indexes = range(len(hashes)) if len(hashes) <= 40 else random.Random(1).sample(range(len(hashes)), 40)
    for i in indexes:
        path = merkle.audit_path(hashes, i)
        assert merkle.verify_inclusion(root, len(hashes), i, hashes[i], path)
        assert not merkle.verify_inclusion(root, len(hashes), i, merkle.leaf_hash(b"x"), path)
        if len(hashes) > 1:
            assert not merkle.verify_inclusion(root, len(hashes), (i + 1) % len(hashes), hashes[i], path)


def test_segments_are_subtrees() -> None:
    """The root over the 256 KiB segments' roots is the blob root: one root proves a segment on
    the wire and a chunk in a ticket."""
    data = os.urandom(5 * merkle.SEGMENT_BYTES + 12_345)
    hashes = merkle.leaf_hashes(data)
    segments = [merkle.root_of(hashes[i : i + merkle.SEGMENT_LEAVES]) for i in range(0, len(hashes), merkle.SEGMENT_LEAVES)]
    root = merkle.root_of(hashes)
    assert merkle.root_of(segments) == root
    for j, segment in enumerate(segments):
        assert merkle.verify_inclusion(root, len(segments), j, segment, merkle.audit_path(segments, j))


def test_rho_is_a_permutation_whose_inverse_is_a_squaring() -> None:
    rng = random.Random(5)
    for x in [0, 1, 2, seal.P - 1, seal.P - 2, *(rng.randrange(seal.P) for _ in range(200))]:
        y = seal.rho(x)
        assert 0 <= y < seal.P and seal.rho_inverse(y) == x
    for y in [0, 1, seal.P - 1, *(rng.randrange(seal.P) for _ in range(200))]:
        assert seal.rho(seal.rho_inverse(y)) == y


@pytest.mark.parametrize("length", [1024, 1000, 1, 0])
def test_a_sealed_chunk_unseals_and_is_bound_to_its_key(length: int) -> None:
    chunk = os.urandom(length)
    key = seal.chunk_key(b"\x01" * 32, b"\x02" * 32, 7)
    sealed = seal.seal_chunk(chunk, key, rounds=3)
    assert len(sealed) == seal.SEALED_CHUNK_BYTES
    assert seal.unseal_chunk(sealed, key, 3, length) == chunk
    assert seal.unseal_chunk(sealed, key, 2, length) != chunk
    other = seal.chunk_key(b"\x09" * 32, b"\x02" * 32, 7)  # another miner's replica of the same chunk
    assert seal.seal_chunk(chunk, other, 3) != sealed and seal.unseal_chunk(sealed, other, 3, length) != chunk
    assert seal.unseal_chunk(sealed[:-1], key, 3, length) is None
    assert seal.unseal_chunk(b"\xff" * seal.SEALED_CHUNK_BYTES, key, 3, length) is None  # words >= p
