"""The pure trie against a dict model and an independent from-scratch implementation of the spec."""

from __future__ import annotations

import random
from collections.abc import Callable

import msgpack
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from node.codec import blake2b_256, encode
from node.state.trie import (
    EMPTY_ROOT,
    MissingNode,
    TrieUpdate,
    iter_leaves,
    trie_get,
    trie_update,
)

PROPERTY = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])

Model = dict[bytes, bytes]
Changes = dict[bytes, bytes | None]


def _colliding_keys(prefix_nibbles: int, pairs: int) -> list[bytes]:
    """Keys whose paths share long prefixes, so tests reach deep splits and long collapses."""
    seen: dict[str, bytes] = {}
    found: list[bytes] = []
    index = 0
    while len(found) < 2 * pairs:
        key = b"deep" + index.to_bytes(4, "big")
        prefix = blake2b_256(key).hex()[:prefix_nibbles]
        if prefix in seen:
            found += [seen.pop(prefix), key]
        else:
            seen[prefix] = key
        index += 1
    return found


DEEP_KEYS = _colliding_keys(4, 4)
keys = st.one_of(st.binary(max_size=2), st.sampled_from(DEEP_KEYS))
# A tiny value alphabet makes same-value writes and A -> B -> A cycles common.
values = st.binary(max_size=2)
batches = st.lists(st.dictionaries(keys, st.none() | values, max_size=24), max_size=10)


def reference_root(model: Model) -> bytes:
    """The root computed from scratch, straight from the rules in the trie module docstring."""

    def subtree(items: list[tuple[str, bytes, bytes]], depth: int) -> bytes | None:
        if not items:
            return None
        if len(items) == 1:
            path, _, value = items[0]
            return blake2b_256(b"\x00" + bytes.fromhex(path) + blake2b_256(value))
        bitmap = 0
        hashes = b""
        for nib in range(16):
            child = subtree([item for item in items if int(item[0][depth], 16) == nib], depth + 1)
            if child is not None:
                bitmap |= 1 << nib
                hashes += child
        return blake2b_256(b"\x01" + bitmap.to_bytes(2, "big") + hashes)

    items = sorted((blake2b_256(key).hex(), key, value) for key, value in model.items())
    return subtree(items, 0) or bytes(32)


def reachable(nodes: dict[bytes, bytes], root: bytes) -> set[bytes]:
    """Hashes of every node of the version with this root (from the raw encodings)."""
    found: set[bytes] = set()
    pending = [] if root == EMPTY_ROOT else [root]
    while pending:
        node_hash = pending.pop()
        found.add(node_hash)
        raw = msgpack.unpackb(nodes[node_hash])
        if raw[0] == 1:
            pending.extend(raw[2])
    return found


class MemoryTrie:
    """A node dict maintained only from `inserted` / `dropped`, checking they are exact."""

    def __init__(self) -> None:
        self.nodes: dict[bytes, bytes] = {}
        self.root = EMPTY_ROOT
        self.get: Callable[[bytes], bytes | None] = self.nodes.get

    def apply(self, changes: Changes) -> TrieUpdate:
        update = trie_update(self.get, self.root, changes)
        for node_hash in update.dropped:
            assert node_hash in self.nodes, "dropped a node that is not in the old version"
            del self.nodes[node_hash]
        for node_hash, data in update.inserted.items():
            assert node_hash not in self.nodes, "inserted a node that is already in the old version"
            self.nodes[node_hash] = data
        assert len(update.dropped) == len(set(update.dropped))
        self.root = update.root
        return update


def apply_to_model(model: Model, changes: Changes) -> None:
    for key, value in changes.items():
        if value is None:
            model.pop(key, None)
        else:
            model[key] = value


@PROPERTY
@given(batches)
def test_matches_dict_model_and_reference(history: list[Changes]) -> None:
    trie = MemoryTrie()
    model: Model = {}
    for changes in history:
        trie.apply(changes)
        apply_to_model(model, changes)
        assert trie.root == reference_root(model)
        # The node set is exactly the new version's: nothing leaked, nothing missing.
        assert set(trie.nodes) == reachable(trie.nodes, trie.root)
        for key in list(model) + list(changes) + [b"absent", *DEEP_KEYS]:
            assert trie_get(trie.get, trie.root, key) == model.get(key)
        leaves = list(iter_leaves(trie.get, trie.root))
        assert leaves == sorted(model.items(), key=lambda item: blake2b_256(item[0]))


@PROPERTY
@given(st.dictionaries(keys, values, max_size=40), st.randoms(use_true_random=False), st.data())
def test_root_independent_of_order_and_batching(
    final: Model, rng: random.Random, data: st.DataObject
) -> None:
    one_batch = MemoryTrie()
    one_batch.apply(dict(final))

    # The same map reached through shuffled, split batches with detours through other values.
    items = list(final.items())
    rng.shuffle(items)
    stepwise = MemoryTrie()
    position = 0
    while position < len(items):
        size = data.draw(st.integers(1, 8))
        chunk = dict(items[position : position + size])
        detour = {key: value + b"~" for key, value in chunk.items()}
        stepwise.apply(detour)
        stepwise.apply(chunk)
        position += size
    assert stepwise.root == one_batch.root == reference_root(final)
    assert stepwise.nodes == one_batch.nodes

    # Deleting everything, in batches, returns to the empty trie and leaves no node behind.
    doomed = list(final)
    rng.shuffle(doomed)
    for start in range(0, len(doomed), 5):
        stepwise.apply(dict.fromkeys(doomed[start : start + 5]))
    assert stepwise.root == EMPTY_ROOT
    assert stepwise.nodes == {}


@PROPERTY
@given(st.dictionaries(keys, values, min_size=1, max_size=40), st.lists(keys, max_size=10))
def test_noop_changes_touch_nothing(model: Model, absent: list[bytes]) -> None:
    trie = MemoryTrie()
    trie.apply(dict(model))
    before = dict(trie.nodes)
    noop: Changes = {key: None for key in absent if key not in model}
    noop.update(model)
    update = trie.apply(noop)
    assert update.root == reference_root(model)
    assert update.inserted == {} and update.dropped == []
    assert trie.nodes == before
    assert trie.apply({}).root == update.root


def test_node_encodings_and_hashes_follow_the_spec() -> None:
    trie = MemoryTrie()
    assert trie.apply({}).root == EMPTY_ROOT == bytes(32)

    update = trie.apply({b"k": b"v"})
    leaf = blake2b_256(b"\x00" + blake2b_256(b"k") + blake2b_256(b"v"))
    assert update.root == leaf
    assert update.inserted == {leaf: encode([0, b"k", b"v"])}

    # Two keys that differ in the first nibble: one internal node over two leaves.
    first = next(bytes([i]) for i in range(256) if blake2b_256(bytes([i]))[0] >> 4 == 3)
    second = next(bytes([i]) for i in range(256) if blake2b_256(bytes([i]))[0] >> 4 == 12)
    trie = MemoryTrie()
    update = trie.apply({first: b"a", second: b"b"})
    a = blake2b_256(b"\x00" + blake2b_256(first) + blake2b_256(b"a"))
    b = blake2b_256(b"\x00" + blake2b_256(second) + blake2b_256(b"b"))
    bitmap = (1 << 3) | (1 << 12)
    assert update.root == blake2b_256(b"\x01" + bitmap.to_bytes(2, "big") + a + b)
    assert update.inserted[update.root] == encode([1, bitmap, [a, b]])


def test_deep_split_then_collapse() -> None:
    one, two = DEEP_KEYS[0], DEEP_KEYS[1]
    assert blake2b_256(one).hex()[:4] == blake2b_256(two).hex()[:4]
    trie = MemoryTrie()
    trie.apply({one: b"1"})
    update = trie.apply({two: b"2"})
    # Four single-child internal nodes down to the split, plus the split node and the new leaf.
    common = len([i for i in range(64) if blake2b_256(one).hex()[: i + 1] == blake2b_256(two).hex()[: i + 1]])
    assert len(update.inserted) == common + 2
    # The old root leaf moved down unchanged: it is neither dropped nor re-inserted.
    assert update.dropped == []
    # Deleting one key pulls the other's unchanged leaf all the way back up to the root.
    update = trie.apply({two: None})
    assert update.root == blake2b_256(b"\x00" + blake2b_256(one) + blake2b_256(b"1"))
    assert update.inserted == {}
    assert set(trie.nodes) == {update.root}


def test_missing_node_raises() -> None:
    trie = MemoryTrie()
    trie.apply({bytes([i]): b"x" for i in range(50)})
    with pytest.raises(MissingNode):
        trie_get({}.get, trie.root, b"\x01")
    with pytest.raises(MissingNode):
        trie_update({}.get, trie.root, {b"\x01": b"y"})


def test_rejects_non_bytes() -> None:
    with pytest.raises(TypeError):
        trie_update({}.get, EMPTY_ROOT, {"key": b"v"})  # type: ignore[dict-item]
    with pytest.raises(TypeError):
        trie_update({}.get, EMPTY_ROOT, {b"key": 5})  # type: ignore[dict-item]
