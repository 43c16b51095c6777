"""StateStore on a real LMDB environment: commits, reads, proofs, pruning and fork discard."""

from __future__ import annotations

import random
import tempfile
from pathlib import Path

import lmdb
import msgpack
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from node.codec import blake2b_256
from node.state.store import JOURNAL_DB, NODES_DB, REFS_DB, NodeCache, StateStore
from node.state.trie import EMPTY_ROOT, MissingNode, verify_proof

Model = dict[bytes, bytes]
Changes = dict[bytes, bytes | None]


def open_env(path: Path) -> lmdb.Environment:
    return lmdb.open(str(path), map_size=1 << 30, max_dbs=32, sync=False, metasync=False)


def reachable(store: StateStore, root: bytes) -> set[bytes]:
    """Hashes of every node of one version, read through the store."""
    found: set[bytes] = set()
    pending = [] if root == EMPTY_ROOT else [root]
    while pending:
        node_hash = pending.pop()
        found.add(node_hash)
        data = store.get_node(node_hash)
        assert data is not None, "a node of a live version is missing"
        raw = msgpack.unpackb(data)
        if raw[0] == 1:
            pending.extend(raw[2])
    return found


def db_contents(env: lmdb.Environment) -> dict[bytes, dict[bytes, bytes]]:
    contents = {}
    with env.begin() as txn:
        for name in (NODES_DB, REFS_DB, JOURNAL_DB):
            contents[name] = dict(txn.cursor(db=env.open_db(name, txn=txn)))
    return contents


def stored_nodes(env: lmdb.Environment) -> set[bytes]:
    return set(db_contents(env)[NODES_DB])


def apply_to(model: Model, changes: Changes) -> Model:
    new = dict(model)
    for key, value in changes.items():
        if value is None:
            new.pop(key, None)
        else:
            new[key] = value
    return new


def random_changes(rng: random.Random, key_space: int, size: int, alphabet: int) -> Changes:
    """Small key space and value alphabet: many rewrites, deletes and A -> B -> A cycles."""
    changes: Changes = {}
    for _ in range(size):
        key = b"k%d" % rng.randrange(key_space)
        changes[key] = None if rng.random() < 0.25 else b"v%d" % rng.randrange(alphabet)
    return changes


def commit_block(
    store: StateStore, env: lmdb.Environment, block: bytes, root: bytes, changes: Changes
) -> bytes:
    update = store.update(root, changes)
    with env.begin(write=True) as txn:
        store.commit(txn, block, update)
    return update.root


def assert_state(store: StateStore, root: bytes, model: Model) -> None:
    assert dict(store.iter_leaves(root)) == model
    for key, value in model.items():
        assert store.get(root, key) == value


def test_commit_get_prove_and_reopen(tmp_path: Path) -> None:
    env = open_env(tmp_path / "db")
    store = StateStore(env, pruning=None)
    model = {b"k%d" % i: b"v%d" % i for i in range(500)}
    root = commit_block(store, env, b"genesis", EMPTY_ROOT, dict(model))
    assert store.has_root(root) and store.has_root(EMPTY_ROOT)
    assert_state(store, root, model)
    assert store.get(root, b"nope") is None
    proof = store.prove(root, [b"k7", b"nope"])
    assert verify_proof(root, proof, b"k7") == b"v7"
    assert verify_proof(root, proof, b"nope") is None
    env.close()

    # A fresh process: cold cache, everything comes back from LMDB.
    env = open_env(tmp_path / "db")
    store = StateStore(env, pruning=None)
    assert_state(store, root, model)
    assert store.prove(root, [b"k7", b"nope"]) == proof
    env.close()


def test_small_cache_evicts_and_still_reads(env: lmdb.Environment) -> None:
    store = StateStore(env, pruning=None, cache_nodes=10)
    model = {b"k%d" % i: b"v%d" % i for i in range(300)}
    root = commit_block(store, env, b"genesis", EMPTY_ROOT, dict(model))
    assert len(store.cache) <= 10
    assert_state(store, root, model)
    changes: Changes = {b"k1": b"new", b"k2": None, b"k999": b"x"}
    root2 = commit_block(store, env, b"b1", root, changes)
    assert_state(store, root2, apply_to(model, changes))
    assert_state(store, root, model)  # archive: the old version is still there


def test_reads_inside_the_callers_write_transaction(env: lmdb.Environment) -> None:
    store = StateStore(env, pruning=4, cache_nodes=0)
    with env.begin(write=True) as txn:
        update = store.update(EMPTY_ROOT, {b"a": b"1", b"b": b"2"}, txn=txn)
        store.commit(txn, b"genesis", update)
        assert store.get(update.root, b"a", txn=txn) == b"1"
        # A block built on top in the same transaction (e.g. a batch import).
        second = store.update(update.root, {b"a": b"3"}, txn=txn)
        store.commit(txn, b"b1", second)
        with pytest.raises(MissingNode):
            store.get(second.root, b"a")  # not committed yet: invisible to other readers
    assert store.get(second.root, b"a") == b"3"


def test_archive_mode_keeps_everything(env: lmdb.Environment) -> None:
    store = StateStore(env, pruning=None)
    rng = random.Random(7)
    roots, models = [EMPTY_ROOT], [{}]
    for height in range(30):
        changes = random_changes(rng, 40, 10, 3)
        roots.append(commit_block(store, env, b"b%d" % height, roots[-1], changes))
        models.append(apply_to(models[-1], changes))
    with env.begin(write=True) as txn:
        assert store.prune(txn, b"b5") == 0
        assert store.discard(txn, b"b6") == 0
    contents = db_contents(env)
    assert contents[REFS_DB] == {} and contents[JOURNAL_DB] == {}
    for root, model in zip(roots, models, strict=True):
        assert_state(store, root, model)


def test_double_commit_is_refused(env: lmdb.Environment) -> None:
    store = StateStore(env, pruning=2)
    update = store.update(EMPTY_ROOT, {b"a": b"1"})
    with env.begin(write=True) as txn:
        store.commit(txn, b"genesis", update)
    with env.begin(write=True) as txn, pytest.raises(ValueError):
        store.commit(txn, b"genesis", update)


@pytest.mark.parametrize("window", [1, 3])
def test_value_cycle_survives_pruning(env: lmdb.Environment, window: int) -> None:
    """A -> B -> A: the leaf for A is dropped, then re-inserted before the first drop is pruned."""
    store = StateStore(env, pruning=window)
    blocks: list[bytes] = []
    roots = [EMPTY_ROOT]
    base: Model = {b"other%d" % i: b"x" for i in range(20)}
    history = [{**base, b"balance": b"A"}] + [
        {b"balance": v} for v in [b"B", b"A", b"B", b"A", b"A", b"B", b"A"]
    ]
    models: list[Model] = [{}]
    for height, changes in enumerate(history):
        block = b"b%d" % height
        update = store.update(roots[-1], changes)
        with env.begin(write=True) as txn:
            store.commit(txn, block, update)
            blocks.append(block)
            if len(blocks) > window:
                store.prune(txn, blocks[-window])
        roots.append(update.root)
        models.append(apply_to(models[-1], changes))
        live = range(max(0, len(roots) - window), len(roots))
        for index in live:
            assert_state(store, roots[index], models[index])
        assert stored_nodes(env) == set().union(*(reachable(store, roots[i]) for i in live))


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("window", [1, 2, 6])
def test_pruning_window_over_long_history(env: lmdb.Environment, seed: int, window: int) -> None:
    """Every state in the window stays readable and the store holds nothing else."""
    rng = random.Random(seed)
    store = StateStore(env, pruning=window, cache_nodes=rng.choice([0, 50, 100_000]))
    blocks: list[bytes] = []
    roots: list[bytes] = []
    models: list[Model] = []
    root, model = EMPTY_ROOT, {}
    for height in range(80):
        changes = random_changes(rng, key_space=60, size=rng.randint(0, 15), alphabet=3)
        if height % 37 == 36:
            changes = dict.fromkeys(model)  # wipe everything now and then
        block = b"block-%d" % height
        update = store.update(root, changes)
        blocks.append(block)
        with env.begin(write=True) as txn:
            store.commit(txn, block, update)
            if len(blocks) > window:
                # Keep the states of the last `window` blocks: drop the state before the oldest.
                store.prune(txn, blocks[-window])
        root, model = update.root, apply_to(model, changes)
        roots.append(root)
        models.append(model)

        live = range(max(0, len(roots) - window), len(roots))
        for index in live:
            assert_state(store, roots[index], models[index])
        expected = set().union(*(reachable(store, roots[i]) for i in live))
        assert stored_nodes(env) == expected
        # Pruned versions are unreadable (not served from the cache either), unless their root
        # node lives on in a kept version (a one-key state's root is just that key's leaf).
        for old_root in roots[: live.start]:
            if old_root not in expected and old_root != EMPTY_ROOT:
                assert not store.has_root(old_root)
                with pytest.raises(MissingNode):
                    store.get(old_root, b"k1")
    contents = db_contents(env)
    assert set(contents[REFS_DB]) <= set(contents[NODES_DB])
    assert len(contents[JOURNAL_DB]) <= window


def test_prune_returns_deleted_count_and_is_idempotent(env: lmdb.Environment) -> None:
    store = StateStore(env, pruning=1)
    root = commit_block(store, env, b"g", EMPTY_ROOT, {b"k%d" % i: b"v" for i in range(100)})
    before = stored_nodes(env)
    root2 = commit_block(store, env, b"b1", root, {b"k1": b"w"})
    garbage = before - reachable(store, root2)
    with env.begin(write=True) as txn:
        assert store.prune(txn, b"b1") == len(garbage) > 0
    with env.begin(write=True) as txn:
        assert store.prune(txn, b"b1") == 0
    assert stored_nodes(env) == reachable(store, root2)
    assert not store.has_root(root) and store.has_root(root2)
    with pytest.raises(MissingNode):
        store.get(root, b"k1")  # gone from the cache too, not only from LMDB


def test_discard_restores_the_node_set_exactly(env: lmdb.Environment) -> None:
    store = StateStore(env, pruning=4)
    model = {b"k%d" % i: b"v%d" % (i % 3) for i in range(200)}
    genesis = commit_block(store, env, b"g", EMPTY_ROOT, dict(model))
    canonical = commit_block(store, env, b"c1", genesis, {b"k1": b"v9", b"k2": None})
    snapshot = db_contents(env)

    # A fork off genesis, two blocks deep; it recreates nodes that exist elsewhere (the same
    # change as c1, then a revert to genesis values) as well as brand-new ones.
    fork1 = commit_block(store, env, b"f1", genesis, {b"k1": b"v9", b"k2": None})
    assert fork1 == canonical
    fork2 = commit_block(store, env, b"f2", fork1, {b"k1": model[b"k1"], b"new": b"n", b"k3": None})
    assert stored_nodes(env) > snapshot[NODES_DB].keys()
    assert_state(
        store,
        fork2,
        apply_to(apply_to(model, {b"k2": None}), {b"k1": model[b"k1"], b"new": b"n", b"k3": None}),
    )

    with env.begin(write=True) as txn:
        store.discard(txn, b"f2")
        store.discard(txn, b"f1")
    assert db_contents(env) == snapshot
    assert_state(store, canonical, apply_to(model, {b"k1": b"v9", b"k2": None}))
    assert_state(store, genesis, model)


blocks_strategy = st.lists(
    st.tuples(
        st.integers(0, 3),  # how many blocks back (from the tip) the new block's parent is
        st.dictionaries(
            st.sampled_from([b"k%d" % i for i in range(25)]),
            st.none() | st.sampled_from([b"A", b"B"]),
            max_size=8,
        ),
    ),
    min_size=1,
    max_size=25,
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(blocks_strategy, st.integers(1, 3))
def test_forks_discard_and_prune(plan: list[tuple[int, Changes]], window: int) -> None:
    """A block tree: canonical chain plus forks; finalizing discards forks and prunes the window.

    After every step the store holds exactly the union of the live versions' nodes.
    """
    with tempfile.TemporaryDirectory() as tmp:
        env = open_env(Path(tmp) / "db")
        store = StateStore(env, pruning=window)
        # block -> (parent, root, model, height)
        tree: dict[bytes, tuple[bytes | None, bytes, Model, int]] = {b"g": (None, EMPTY_ROOT, {}, 0)}
        update = store.update(EMPTY_ROOT, {b"k0": b"A"})
        with env.begin(write=True) as txn:
            store.commit(txn, b"g", update)
        tree[b"g"] = (None, update.root, {b"k0": b"A"}, 0)
        tip = b"g"
        finalized = b"g"
        for number, (back, changes) in enumerate(plan):
            parent = tip
            for _ in range(back):
                grand = tree[parent][0]
                if grand is None or tree[grand][3] < tree[finalized][3]:
                    break
                parent = grand
            _, parent_root, parent_model, height = tree[parent]
            block = b"x%d" % number
            update = store.update(parent_root, changes)
            with env.begin(write=True) as txn:
                store.commit(txn, block, update)
            tree[block] = (parent, update.root, apply_to(parent_model, changes), height + 1)
            # Longest chain wins; ties keep the old tip.
            if height + 1 > tree[tip][3]:
                tip = block

            # Finalize the canonical block that leaves `window` states on the canonical chain.
            chain = [tip]
            while tree[chain[-1]][0] is not None:
                chain.append(tree[chain[-1]][0])  # type: ignore[arg-type]
            chain.reverse()
            keep_from = max(0, len(chain) - window)
            with env.begin(write=True) as txn:
                for index in range(tree[finalized][3] + 1, keep_from + 1):
                    new_final = chain[index]
                    # Abandon every block not descending from the new finalized block.
                    for other in list(tree):
                        if other not in chain[: index + 1] and not _descends(tree, other, new_final):
                            store.discard(txn, other)
                            del tree[other]
                    store.prune(txn, new_final)
                    finalized = new_final

            live = [b for b in tree if tree[b][3] >= tree[finalized][3]]
            for b in live:
                assert_state(store, tree[b][1], tree[b][2])
            assert stored_nodes(env) == set().union(*(reachable(store, tree[b][1]) for b in live))
        env.close()


def _descends(
    tree: dict[bytes, tuple[bytes | None, bytes, Model, int]], block: bytes, ancestor: bytes
) -> bool:
    current: bytes | None = block
    while current is not None:
        if current == ancestor:
            return True
        current = tree[current][0]
    return False


def test_get_node_matches_encoding(env: lmdb.Environment) -> None:
    store = StateStore(env, pruning=None)
    update = store.update(EMPTY_ROOT, {b"a": b"1", b"b": b"2", b"c": b"3"})
    with env.begin(write=True) as txn:
        store.commit(txn, b"g", update)
    cold = StateStore(env, pruning=None)
    for node_hash, data in update.inserted.items():
        assert store.get_node(node_hash) == data  # from the decoded cache
        assert cold.get_node(node_hash) == data  # from LMDB
    assert store.get_node(blake2b_256(b"nothing")) is None


def test_node_cache_is_bounded_and_keeps_recent_entries() -> None:
    cache = NodeCache(100)
    hot = blake2b_256(b"hot")
    cache.put(hot, (0, b"hot", b"1"))
    for index in range(1_000):
        cache.put(blake2b_256(b"%d" % index), (0, b"k", b"v"))
        assert cache.get(hot) is not None  # used all the time: never evicted
        assert len(cache) <= 101
    cache.put_many({blake2b_256(b"batch%d" % i): (0, b"k", b"v") for i in range(500)})
    assert len(cache) <= 100  # a batch larger than the whole cache is not kept
    batch = [blake2b_256(b"batch%d" % i) for i in range(60)]
    cache.put_many(dict.fromkeys(batch, (0, b"k", b"v")))
    assert len(cache) <= 101 and all(cache.get(node_hash) for node_hash in batch)
    before = len(cache)
    cache.discard_many(batch[:10])
    assert len(cache) == before - 10 and cache.get(batch[0]) is None
    cache.discard(hot)
    assert cache.get(hot) is None
    empty = NodeCache(0)
    empty.put(hot, (0, b"hot", b"1"))
    assert len(empty) == 0 and empty.get(hot) is None


def test_unknown_root_raises_missing_node(env: lmdb.Environment) -> None:
    store = StateStore(env, pruning=None)
    with pytest.raises(MissingNode):
        store.get(blake2b_256(b"no such root"), b"k")
    assert not store.has_root(blake2b_256(b"no such root"))
    assert store.get(EMPTY_ROOT, b"k") is None


def test_journal_larger_than_the_default_decode_limit(env: lmdb.Environment) -> None:
    """A big genesis journals more than 16 MB of hashes; pruning it must still work."""
    store = StateStore(env, pruning=2)
    fake = b"".join(blake2b_256(i.to_bytes(4, "big")) for i in range(530_000))
    with env.begin(write=True) as txn:
        txn.put(b"big", msgpack.packb([b"", fake]), db=env.open_db(JOURNAL_DB, txn=txn))
        assert store.prune(txn, b"big") == 0
        assert store.prune(txn, b"big") == 0
