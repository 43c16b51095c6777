"""A Jellyfish-style 16-ary sparse Merkle trie (PROTOCOL section 7).

The state is a map from arbitrary byte keys to byte values. Its commitment is the root hash of a
trie whose *path* for a key is ``blake2b_256(key)``, read as 64 nibbles (high nibble of each byte
first). Hashing the key spreads keys evenly, so the trie stays about ``log16(n)`` deep whatever the
keys look like, and nobody can cheaply build a deep path.

Shape (canonical, so the root depends only on the map, never on the order of updates):

* a subtree holding no key is *empty* and has no node;
* a subtree holding exactly one key is that key's *leaf*, placed as shallow as possible: a leaf
  sits at the first depth where its path prefix is unique;
* a subtree holding two or more keys is an *internal* node with one child subtree per nibble that
  occurs at that depth. An internal node may have a single child, but only if that child is
  itself internal (the keys share another nibble); a lone leaf is always pulled up into the
  parent's slot instead. So inserting splits a leaf into internal nodes as deep as the two paths
  agree, and deleting collapses a lone remaining leaf upward.

Node encodings (canonical msgpack arrays, `node.codec.encode`):

* leaf ``[0, key, value]`` -- the original key and value are stored inline, so a read is one
  lookup per level and a leaf can be checked against a key without a preimage table;
* internal ``[1, bitmap, [child_hash, ...]]`` -- bit ``i`` of ``bitmap`` (``1 << i``, an int in
  1..65535) is set when nibble ``i`` has a child; the child hashes follow in nibble order.

Node hashes (what parents, headers and proofs commit to):

* leaf: ``blake2b_256(b"\\x00" + blake2b_256(key) + blake2b_256(value))``;
* internal: ``blake2b_256(b"\\x01" + bitmap.to_bytes(2, "big") + b"".join(child_hashes))``;
* the empty trie's root is ``EMPTY_ROOT``, 32 zero bytes.

A leaf's hash does not depend on its depth, so moving a leaf up or down (collapse, split) reuses
the same node; the one-byte prefixes keep leaves and internal nodes from ever being confused.

The functions here are pure: they read nodes through a getter (hash -> encoding) and return what
changed, leaving storage to `node.state.store`. Each has two layers: ``trie_*`` functions take a
getter of *encodings* (the simple, storage-agnostic interface), and the loader-level functions
(`lookup`, `apply_changes`, `collect_proof`, `walk_leaves`) take a loader of *decoded* nodes, which
a store backs with a cache so that hot nodes are decoded once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeAlias

import msgpack

from node.codec import DecodeError, blake2b_256, decode, encode

EMPTY_ROOT = bytes(32)
HASH_LEN = 32
PATH_NIBBLES = 2 * HASH_LEN

LEAF = 0
INTERNAL = 1

# Decoded nodes are the encodings' arrays as tuples, because the hot loops create and inspect
# thousands of them and a tuple is what msgpack hands back for free:
#   leaf:     (LEAF, key, value)
#   internal: (INTERNAL, bitmap, child_hashes) -- the child for nibble n, if bit n is set, is
#             child_hashes[popcount(bitmap & ((1 << n) - 1))].
Node: TypeAlias = tuple[Any, ...]
NodeGetter = Callable[[bytes], bytes | None]
NodeLoader = Callable[[bytes], Node]

# `node.codec.encode` builds a new msgpack Packer per call; an update encodes thousands of nodes,
# so the hot path keeps one Packer with the very same options (byte-identical output, which the
# tests check) and saves about 40% of the encoding time.
_pack = msgpack.Packer(use_bin_type=True).pack


class MissingNode(KeyError):
    """A node that the trie refers to is not in storage (a pruned or never-written state)."""


class InvalidProof(ValueError):
    """A proof does not prove anything about the given root: tampered, incomplete or malformed."""


@dataclass
class TrieUpdate:
    """The result of applying a batch of changes to one version of the trie.

    `inserted` (hash -> encoding) and `dropped` (hashes) are exactly the difference between the
    old and the new version's node sets, which is what a store needs to write the new version
    and to count references for pruning. `decoded` has the decoded form of every inserted node,
    so that a store can cache what it writes without decoding it again.
    """

    root: bytes
    inserted: dict[bytes, bytes] = field(default_factory=dict)
    dropped: list[bytes] = field(default_factory=list)
    decoded: dict[bytes, Node] = field(default_factory=dict, repr=False, compare=False)


# ---------------------------------------------------------------------------------------------
# Nodes
# ---------------------------------------------------------------------------------------------


def key_path(key: bytes) -> bytes:
    """A key's position in the trie: 32 bytes, i.e. 64 nibbles."""
    return blake2b_256(key)


def nibble(path: bytes, depth: int) -> int:
    """The nibble of `path` at `depth` (0 is the high nibble of the first byte)."""
    byte = path[depth >> 1]
    return byte & 0x0F if depth & 1 else byte >> 4


def leaf_hash(path: bytes, value: bytes) -> bytes:
    """Hash of the leaf for a key whose path (the key's hash) is `path`."""
    return blake2b_256(b"\x00" + path + blake2b_256(value))


def internal_hash(bitmap: int, child_hashes: Sequence[bytes]) -> bytes:
    """Hash of an internal node."""
    return blake2b_256(b"\x01" + bitmap.to_bytes(2, "big") + b"".join(child_hashes))


def child_of(node: Node, nib: int) -> bytes | None:
    """The hash of an internal node's child at nibble `nib`, or None."""
    bitmap = node[1]
    if not bitmap >> nib & 1:
        return None
    return node[2][(bitmap & ((1 << nib) - 1)).bit_count()]


def encode_node(node: Node) -> bytes:
    """The canonical encoding of a decoded node."""
    return encode(node)


def hash_node(node: Node) -> bytes:
    """The hash of a decoded node (see the module docstring)."""
    if node[0] == LEAF:
        return leaf_hash(key_path(node[1]), node[2])
    return internal_hash(node[1], node[2])


def decode_stored_node(data: bytes) -> Node:
    """Decode a node read back from our own database.

    The bytes were produced by `encode_node` in this process or an earlier one, so this skips the
    strict checks of `node.codec.decode` (about 14x slower for an internal node, and node decoding
    dominates cold reads). Anything that comes from the network goes through `decode_node`.
    """
    node: Node = msgpack.unpackb(data, raw=False, use_list=False)
    return node


def decode_node(data: bytes) -> Node:
    """Strictly decode an untrusted node encoding; raises `DecodeError` unless it is canonical."""
    raw = decode(data)
    if not isinstance(raw, list) or len(raw) != 3 or type(raw[0]) is not int:
        raise DecodeError("a trie node is a 3-element array starting with its tag")
    tag = raw[0]
    if tag == LEAF:
        if not isinstance(raw[1], bytes) or not isinstance(raw[2], bytes):
            raise DecodeError("a leaf holds a bytes key and a bytes value")
        node: Node = (LEAF, raw[1], raw[2])
    elif tag == INTERNAL:
        bitmap, hashes = raw[1], raw[2]
        if type(bitmap) is not int or not 0 < bitmap <= 0xFFFF:
            raise DecodeError("an internal node's bitmap must be an int in 1..65535")
        if not isinstance(hashes, list) or len(hashes) != bitmap.bit_count():
            raise DecodeError("an internal node needs one child hash per bitmap bit")
        for child in hashes:
            if not isinstance(child, bytes) or len(child) != HASH_LEN:
                raise DecodeError("a child hash is 32 bytes")
        node = (INTERNAL, bitmap, tuple(hashes))
    else:
        raise DecodeError(f"unknown trie node tag {tag}")
    # The strict decoder accepts e.g. an int packed wider than necessary; only the one canonical
    # byte string per node is accepted, so that a proof node cannot be varied without detection.
    if encode_node(node) != data:
        raise DecodeError("non-canonical node encoding")
    return node


def loader_from_getter(get_node: NodeGetter) -> NodeLoader:
    """Adapt a getter of encodings to the loader interface (decoding on every call)."""

    def load(node_hash: bytes) -> Node:
        data = get_node(node_hash)
        if data is None:
            raise MissingNode(node_hash)
        return decode_stored_node(data)

    return load


# ---------------------------------------------------------------------------------------------
# Reads
# ---------------------------------------------------------------------------------------------


def lookup(load: NodeLoader, root: bytes, key: bytes) -> bytes | None:
    """The value stored under `key` in the version with this root, or None."""
    if root == EMPTY_ROOT:
        return None
    path = blake2b_256(key)
    node = load(root)
    depth = 0
    while node[0] == INTERNAL:
        byte = path[depth >> 1]
        nib = byte & 0x0F if depth & 1 else byte >> 4
        bitmap = node[1]
        if not bitmap >> nib & 1:
            return None
        node = load(node[2][(bitmap & ((1 << nib) - 1)).bit_count()])
        depth += 1
    return node[2] if node[1] == key else None


def walk_leaves(load: NodeLoader, root: bytes) -> Iterator[tuple[bytes, bytes]]:
    """Every (key, value) of a version, in path order (depth-first, nibble order)."""
    if root == EMPTY_ROOT:
        return
    stack = [root]
    while stack:
        node = load(stack.pop())
        if node[0] == LEAF:
            yield node[1], node[2]
        else:
            stack.extend(reversed(node[2]))


def collect_proof(load: NodeLoader, root: bytes, keys: Iterable[bytes]) -> list[bytes]:
    """Encodings of every node on the paths of `keys`, root first, each node once.

    Keys are visited in path order, so the proof is the same whatever order they are given in.
    """
    if root == EMPTY_ROOT:
        return []
    proof: dict[bytes, bytes] = {}
    for path in sorted({blake2b_256(key) for key in keys}):
        node_hash: bytes | None = root
        depth = 0
        while node_hash is not None:
            node = load(node_hash)
            if node_hash not in proof:
                proof[node_hash] = encode_node(node)
            if node[0] == LEAF:
                break
            node_hash = child_of(node, nibble(path, depth))
            depth += 1
    return list(proof.values())


def verify_proof(root: bytes, proof: list[bytes], key: bytes) -> bytes | None:
    """Check `proof` against `root` and return the value of `key` (None: proven absent).

    Needs no database: this is what a light client runs against a header's state root. Every
    node of the proof must be canonical and reachable from the root through hashes, so that any
    change to any byte of any node -- including nodes on other keys' paths in a multi-key proof
    -- is detected. Raises `InvalidProof`, and nothing else, for any input that proves nothing.
    """
    if not isinstance(key, bytes):
        raise TypeError("key must be bytes")
    if not isinstance(root, bytes) or len(root) != HASH_LEN:
        raise InvalidProof("a root is 32 bytes")
    if not isinstance(proof, list | tuple):
        raise InvalidProof("a proof is a list of node encodings")
    nodes: dict[bytes, Node] = {}
    for data in proof:
        if not isinstance(data, bytes):
            raise InvalidProof("a proof node must be bytes")
        try:
            node = decode_node(data)
        except DecodeError as exc:
            raise InvalidProof(f"malformed proof node: {exc}") from exc
        node_hash = hash_node(node)
        if node_hash in nodes:
            raise InvalidProof("duplicate proof node")
        nodes[node_hash] = node
    if root == EMPTY_ROOT:
        if nodes:
            raise InvalidProof("the empty trie has no nodes")
        return None
    if root not in nodes:
        raise InvalidProof("the proof does not contain the root node")
    # Reachability: a node whose hash no proven parent commits to was tampered with or is junk.
    reached = {root}
    pending = [root]
    while pending:
        node = nodes[pending.pop()]
        if node[0] == INTERNAL:
            for child in node[2]:
                if child in nodes and child not in reached:
                    reached.add(child)
                    pending.append(child)
    if len(reached) != len(nodes):
        raise InvalidProof("the proof contains nodes that are not under the root")

    path = blake2b_256(key)
    node = nodes[root]
    depth = 0
    while node[0] == INTERNAL:
        if depth == PATH_NIBBLES:
            raise InvalidProof("internal node below the last nibble")
        child = child_of(node, nibble(path, depth))
        if child is None:
            return None
        if child not in nodes:
            raise InvalidProof("the proof is missing a node on the key's path")
        node = nodes[child]
        depth += 1
    if node[1] == key:
        return node[2]
    # Another key's leaf in our slot proves absence, as that leaf is alone in the subtree; in a
    # well-formed trie it shares our path prefix, so anything else is not a trie under this root.
    other = blake2b_256(node[1])
    if any(nibble(other, level) != nibble(path, level) for level in range(depth)):
        raise InvalidProof("a leaf is not on its own path")
    return None


# ---------------------------------------------------------------------------------------------
# Updates
# ---------------------------------------------------------------------------------------------

# A change being applied: (path, key, value or None for delete, hash of the existing leaf or None).
# The last field lets an existing leaf that is only being moved (split or collapse) travel with
# the new ones without being re-created.
_Item: TypeAlias = tuple[bytes, bytes, bytes | None, bytes | None]


class _Batch:
    """Accumulates the nodes an update creates and removes while it recurses."""

    __slots__ = ("load", "inserted", "decoded", "dropped")

    def __init__(self, load: NodeLoader) -> None:
        self.load = load
        self.inserted: dict[bytes, bytes] = {}
        self.decoded: dict[bytes, Node] = {}
        self.dropped: list[bytes] = []

    def new_leaf(self, path: bytes, key: bytes, value: bytes) -> bytes:
        node = (LEAF, key, value)
        node_hash = blake2b_256(b"\x00" + path + blake2b_256(value))
        self.inserted[node_hash] = _pack(node)
        self.decoded[node_hash] = node
        return node_hash

    def new_internal(self, bitmap: int, child_hashes: list[bytes]) -> bytes:
        node = (INTERNAL, bitmap, tuple(child_hashes))
        node_hash = blake2b_256(b"\x01" + bitmap.to_bytes(2, "big") + b"".join(child_hashes))
        self.inserted[node_hash] = _pack(node)
        self.decoded[node_hash] = node
        return node_hash

    def is_leaf(self, node_hash: bytes) -> bool:
        """Whether a child is a leaf (only asked when a node is left with a single child)."""
        node = self.decoded.get(node_hash)
        if node is None:
            node = self.load(node_hash)
        return bool(node[0] == LEAF)


def apply_changes(load: NodeLoader, root: bytes, changes: Mapping[bytes, bytes | None]) -> TrieUpdate:
    """Apply a batch of sets (bytes) and deletes (None) to the version with this root.

    The changed paths are sorted and the trie is walked once, so each touched node is rebuilt
    once however many of the changes fall under it. Setting a key to its current value and
    deleting an absent key change nothing (no node is inserted or dropped for them).
    """
    items: list[_Item] = []
    for key, value in changes.items():
        if not isinstance(key, bytes) or not (value is None or isinstance(value, bytes)):
            raise TypeError("state keys are bytes and values are bytes or None")
        items.append((blake2b_256(key), key, value, None))
    # Paths are unique (one per key), so the sort never compares past the first field.
    items.sort()
    batch = _Batch(load)
    if not items:
        new_root: bytes | None = root
    elif root == EMPTY_ROOT:
        new_root = _build(batch, [item for item in items if item[2] is not None], 0)
    else:
        new_root = _update(batch, root, 0, items)
    return TrieUpdate(
        EMPTY_ROOT if new_root is None else new_root, batch.inserted, batch.dropped, batch.decoded
    )


def _groups(items: list[_Item], depth: int) -> list[tuple[int, list[_Item]]]:
    """Split path-sorted items into runs that share the nibble at `depth`, in nibble order."""
    shift = 0 if depth & 1 else 4
    index = depth >> 1
    if len(items) == 1:
        return [(items[0][0][index] >> shift & 0x0F, items)]
    groups = []
    start = 0
    current = items[0][0][index] >> shift & 0x0F
    for position in range(1, len(items)):
        nib = items[position][0][index] >> shift & 0x0F
        if nib != current:
            groups.append((current, items[start:position]))
            start = position
            current = nib
    groups.append((current, items[start:]))
    return groups


def _build(batch: _Batch, items: list[_Item], depth: int) -> bytes | None:
    """Build the canonical subtree at `depth` holding exactly `items` (none of them deletes)."""
    if not items:
        return None
    if len(items) == 1:
        path, key, value, existing = items[0]
        if existing is not None:
            return existing
        assert value is not None
        return batch.new_leaf(path, key, value)
    if depth == PATH_NIBBLES:
        raise ValueError("two keys with the same blake2b-256 hash")
    bitmap = 0
    child_hashes = []
    for nib, group in _groups(items, depth):
        bitmap |= 1 << nib
        child_hashes.append(_build(batch, group, depth + 1))
    return batch.new_internal(bitmap, child_hashes)  # type: ignore[arg-type]


def _update(batch: _Batch, node_hash: bytes, depth: int, items: list[_Item]) -> bytes | None:
    """Apply path-sorted `items` to the existing subtree `node_hash` at `depth`; new subtree hash."""
    if len(items) == 1:
        return _update_one(batch, node_hash, depth, items[0])
    node = batch.load(node_hash)
    if node[0] == LEAF:
        return _update_leaf(batch, node_hash, node, depth, items)

    _, bitmap, old_hashes = node
    new_bitmap = bitmap
    new_hashes: list[bytes] | None = None
    # Highest nibble first: inserting or removing a child then never shifts the list position
    # of a child still to be visited, which is its rank among the *old* bitmap's lower bits.
    for nib, group in reversed(_groups(items, depth)):
        bit = 1 << nib
        position = (bitmap & (bit - 1)).bit_count()
        if bitmap & bit:
            child: bytes | None = old_hashes[position]
            new_child = _update(batch, child, depth + 1, group)  # type: ignore[arg-type]
        else:
            child = None
            new_child = _build(batch, [item for item in group if item[2] is not None], depth + 1)
        if new_child == child:
            continue
        if new_hashes is None:
            new_hashes = list(old_hashes)
        if child is None:
            new_hashes.insert(position, new_child)  # type: ignore[arg-type]
            new_bitmap |= bit
        elif new_child is None:
            del new_hashes[position]
            new_bitmap &= ~bit
        else:
            new_hashes[position] = new_child
    if new_hashes is None:
        return node_hash

    batch.dropped.append(node_hash)
    if not new_hashes:
        return None
    if len(new_hashes) == 1 and batch.is_leaf(new_hashes[0]):
        # A lone leaf moves up into our slot; a lone internal child keeps us as its parent.
        return new_hashes[0]
    return batch.new_internal(new_bitmap, new_hashes)


def _update_one(batch: _Batch, node_hash: bytes, depth: int, item: _Item) -> bytes | None:
    """`_update` for a single change, the case below the top few levels of every batch.

    Same rules as `_update`, without the grouping machinery: it is most of the calls.
    """
    node = batch.load(node_hash)
    if node[0] == LEAF:
        return _update_leaf(batch, node_hash, node, depth, [item])
    _, bitmap, old_hashes = node
    byte = item[0][depth >> 1]
    bit = 1 << (byte & 0x0F if depth & 1 else byte >> 4)
    position = (bitmap & (bit - 1)).bit_count()
    if bitmap & bit:
        child = old_hashes[position]
        new_child = _update_one(batch, child, depth + 1, item)
        if new_child == child:
            return node_hash
    elif item[2] is None:
        return node_hash  # deleting an absent key
    else:
        child = None
        new_child = batch.new_leaf(item[0], item[1], item[2])

    batch.dropped.append(node_hash)
    hashes = list(old_hashes)
    if child is None:
        hashes.insert(position, new_child)  # type: ignore[arg-type]
        bitmap |= bit
    elif new_child is None:
        del hashes[position]
        bitmap &= ~bit
        if not hashes:
            return None
    else:
        hashes[position] = new_child
    if len(hashes) == 1 and batch.is_leaf(hashes[0]):
        return hashes[0]
    return batch.new_internal(bitmap, hashes)


def _update_leaf(batch: _Batch, leaf: bytes, node: Node, depth: int, items: list[_Item]) -> bytes | None:
    """Apply `items` to a subtree that currently holds the single leaf `node`."""
    key, value = node[1], node[2]
    if len(items) == 1 and items[0][1] == key:
        # The common case: a change to this very key (its path is the item's).
        new_value = items[0][2]
        if new_value == value:
            return leaf
        batch.dropped.append(leaf)
        return None if new_value is None else batch.new_leaf(items[0][0], key, new_value)

    path = blake2b_256(key)
    existing: _Item = (path, key, value, leaf)
    merged: list[_Item] = []
    kept = True
    placed = False
    for item in items:
        if not placed and item[0] >= path:
            placed = True
            if item[0] == path:
                if item[1] != key:
                    raise ValueError("two keys with the same blake2b-256 hash")
                # A change to the existing key itself: a no-op if it writes the same value.
                if item[2] == value:
                    merged.append(existing)
                else:
                    kept = False
                    if item[2] is not None:
                        merged.append(item)
                continue
            merged.append(existing)
        if item[2] is not None:
            merged.append(item)
    if not placed:
        merged.append(existing)
    if not kept:
        batch.dropped.append(leaf)
    elif len(merged) == 1:
        return leaf
    return _build(batch, merged, depth)


# ---------------------------------------------------------------------------------------------
# The storage-agnostic interface
# ---------------------------------------------------------------------------------------------


def trie_get(get_node: NodeGetter, root: bytes, key: bytes) -> bytes | None:
    """The value of `key` in the version with this root, or None if absent."""
    return lookup(loader_from_getter(get_node), root, key)


def trie_update(get_node: NodeGetter, root: bytes, changes: Mapping[bytes, bytes | None]) -> TrieUpdate:
    """Apply sets and deletes (None) to a version; see `apply_changes`."""
    return apply_changes(loader_from_getter(get_node), root, changes)


def trie_prove(get_node: NodeGetter, root: bytes, keys: Iterable[bytes]) -> list[bytes]:
    """A proof of the values (or absence) of `keys`; see `collect_proof` and `verify_proof`."""
    return collect_proof(loader_from_getter(get_node), root, keys)


def iter_leaves(get_node: NodeGetter, root: bytes) -> Iterator[tuple[bytes, bytes]]:
    """Every (key, value) of a version in path order; for debugging and genesis export."""
    return walk_leaves(loader_from_getter(get_node), root)
