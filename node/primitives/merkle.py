"""Blob Merkle trees: RFC 6962's tree over 1 KiB leaves, blake2b-256 (PROTOCOL sections 2 and 7).

A blob (an image file, or its sealed original) is cut into 1 KiB leaves; its root is the Merkle
Tree Hash of RFC 6962 section 2.1 with blake2b-256, leaves hashed as `H(0x00 || leaf)` and nodes
as `H(0x01 || left || right)` (distinct prefixes: a leaf can never pass for a node). The split
rule puts every aligned run of 2**j full leaves under one node, so the 256 KiB transfer
segments are subtrees: one root proves both a segment on the wire and a single chunk in a mining
ticket. Inclusion proofs are RFC 6962 audit paths, checked with RFC 9162's algorithm.
"""

from __future__ import annotations

from collections.abc import Sequence

from node.codec import blake2b_256

LEAF_BYTES = 1024
SEGMENT_LEAVES = 256
SEGMENT_BYTES = LEAF_BYTES * SEGMENT_LEAVES  # 256 KiB
EMPTY_ROOT = blake2b_256(b"")  # RFC 6962: the hash of an empty tree is the hash of nothing

__all__ = [
    "EMPTY_ROOT", "LEAF_BYTES", "SEGMENT_BYTES", "SEGMENT_LEAVES", "audit_path", "blob_root", "leaf_count",
    "leaf_hash", "leaf_hashes", "node_hash", "root_of", "verify_inclusion",
]  # fmt: skip


def leaf_hash(leaf: bytes) -> bytes:
    return blake2b_256(b"\x00" + leaf)


def node_hash(left: bytes, right: bytes) -> bytes:
    return blake2b_256(b"\x01" + left + right)


def leaf_count(size: int, leaf_bytes: int = LEAF_BYTES) -> int:
    return -(-size // leaf_bytes)


def leaf_hashes(data: bytes, leaf_bytes: int = LEAF_BYTES) -> list[bytes]:
    return [leaf_hash(data[i : i + leaf_bytes]) for i in range(0, len(data), leaf_bytes)]


def _split(n: int) -> int:
    """The largest power of two strictly below n (n >= 2)."""
    return 1 << ((n - 1).bit_length() - 1)


def root_of(hashes: Sequence[bytes]) -> bytes:
    """RFC 6962's Merkle Tree Hash over already hashed leaves (or over aligned subtree roots)."""
    if not hashes:
        return EMPTY_ROOT
    level = list(hashes)
    if len(level) == 1:
        return level[0]
    k = _split(len(level))
    return node_hash(root_of(level[:k]), root_of(level[k:]))


def blob_root(data: bytes) -> bytes:
    return root_of(leaf_hashes(data))


def audit_path(hashes: Sequence[bytes], index: int) -> list[bytes]:
    """RFC 6962 PATH(index, D[n]): the sibling hashes from the leaf up to the root."""
    if not 0 <= index < len(hashes):
        raise IndexError(f"leaf {index} of {len(hashes)}")
    if len(hashes) == 1:
        return []
    k = _split(len(hashes))
    if index < k:
        return [*audit_path(hashes[:k], index), root_of(hashes[k:])]
    return [*audit_path(hashes[k:], index - k), root_of(hashes[:k])]


def verify_inclusion(root: bytes, size: int, index: int, leaf: bytes, path: Sequence[bytes]) -> bool:
    """Whether `leaf` (a leaf hash, or an aligned subtree's root with `size` and `index` counted in
    subtrees) sits at `index` of a tree of `size` entries with `root` (RFC 9162 section 2.1.3.2)."""
    if not 0 <= index < size:
        return False
    fn, sn, r = index, size - 1, leaf
    for sibling in path:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = node_hash(sibling, r)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            r = node_hash(r, sibling)
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == root
