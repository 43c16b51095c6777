"""Trie nodes in LMDB, with a decoded-node cache and reference-counted pruning (PROTOCOL section 7).

Three named databases live in the caller's environment:

* ``trie_nodes``: node hash -> node encoding (`node.state.trie`). Nodes are content-addressed, so
  every version of the state shares the nodes it has in common with its parent.
* ``trie_refs``: node hash -> reference count (4 bytes, big-endian), only for counts above 1. A
  node with no entry here is referenced once; the great majority of nodes are only ever inserted
  by one block, so this saves a read-modify-write per inserted node.
* ``trie_journal``: block hash -> ``[inserted hashes, dropped hashes]`` (each a concatenation of
  32-byte hashes) for the blocks whose state is still inside the pruning window.

Reference counting. A node's count is the number of committed blocks that inserted it, minus the
ones whose insertion has since been undone (`discard`) or superseded (`prune` of a later block
that dropped it). When a block's parent state is no longer needed, `prune` decrements the nodes
that block dropped; when a block is abandoned, `discard` decrements the nodes it inserted. A node
is deleted when its count reaches zero. A node that disappears and comes back (a balance going
A -> B -> A) is simply inserted again while its first copy is still counted, so it survives the
pruning of the block that first dropped it.

Caching. Reads dominate, and decoding a node costs more than finding it, so decoded nodes are
kept in a `NodeCache`. `commit` puts the nodes it writes there and evicts the ones the block
replaced, since the next block's update and most reads start from the newest version; so a cache
larger than the live state ends up holding all of it. `prune` and `discard` evict what they delete,
so a pruned version reads as `MissingNode` (the RPC's "state discarded"). Nodes are
content-addressed, so a cached node is never wrong; if the caller aborts a transaction after
`commit`, its nodes merely stay cached until evicted (`has_root` asks LMDB, not the cache).

The caller owns write transactions (a block's header, body and state are written in one LMDB
transaction); every method that writes takes that ``txn``. Reads open their own short read
transaction unless given one (pass the write transaction to see its uncommitted writes). The
pruning mode must stay the same for the life of a database: archive mode keeps no counts.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping

import lmdb

from node.codec import decode, encode, expect_bytes, expect_list
from node.state.trie import (
    EMPTY_ROOT,
    HASH_LEN,
    MissingNode,
    Node,
    TrieUpdate,
    apply_changes,
    collect_proof,
    decode_stored_node,
    encode_node,
    lookup,
    walk_leaves,
)

# Decoded nodes kept in memory. A 100k-key state has ~140k nodes; a decoded internal node costs
# about 1.3 KB and a leaf a few hundred bytes, so the default bound is roughly 100-200 MB.
DEFAULT_CACHE_NODES = 200_000

NODES_DB = b"trie_nodes"
REFS_DB = b"trie_refs"
JOURNAL_DB = b"trie_journal"


class NodeCache:
    """A bounded, approximately least-recently-used map of node hash -> decoded node.

    Two generations of plain dicts: new and used entries live in `young`; when the cache is over
    capacity, `old` (everything not used since the previous rotation) is dropped whole and
    `young` becomes `old`. A hit in `old` moves the entry back to `young`. That is a one-bit
    CLOCK: what was used recently survives, at plain-dict cost. `collections.OrderedDict` made
    caching a block's thousands of new nodes, and evicting the ones it replaced, cost more than
    the LMDB writes themselves. Holds at most `capacity` entries (momentarily one more).
    """

    __slots__ = ("capacity", "young", "old")

    def __init__(self, capacity: int) -> None:
        self.capacity = max(capacity, 0)
        self.young: dict[bytes, Node] = {}
        self.old: dict[bytes, Node] = {}

    def __len__(self) -> int:
        return len(self.young) + len(self.old)

    def get(self, node_hash: bytes) -> Node | None:
        node = self.young.get(node_hash)
        if node is None:
            node = self.old.pop(node_hash, None)
            if node is not None:
                self.young[node_hash] = node
        return node

    def put(self, node_hash: bytes, node: Node) -> None:
        if self.capacity:
            if len(self.young) + len(self.old) >= self.capacity:
                self._rotate()
            self.young[node_hash] = node

    def put_many(self, nodes: Mapping[bytes, Node]) -> None:
        """Add a batch (a block's new nodes); a batch bigger than the whole cache is skipped."""
        if 0 < len(nodes) <= self.capacity:
            if len(self.young) + len(self.old) + len(nodes) > self.capacity:
                self._rotate()
            self.young.update(nodes)

    def discard(self, node_hash: bytes) -> None:
        self.young.pop(node_hash, None)
        self.old.pop(node_hash, None)

    def discard_many(self, node_hashes: Iterable[bytes]) -> None:
        young_pop = self.young.pop
        old_pop = self.old.pop
        for node_hash in node_hashes:
            young_pop(node_hash, None)
            old_pop(node_hash, None)

    def _rotate(self) -> None:
        self.old = self.young
        self.young = {}


class _Reader:
    """A node loader for one operation: the cache first, then LMDB through one read transaction.

    The read transaction is opened on the first cache miss only, so warm reads never touch LMDB.
    """

    __slots__ = ("store", "cache", "txn", "own_txn")

    def __init__(self, store: StateStore, txn: lmdb.Transaction | None) -> None:
        self.store = store
        self.cache = store.cache
        self.txn = txn
        self.own_txn: lmdb.Transaction | None = None

    def __call__(self, node_hash: bytes) -> Node:
        cache = self.cache
        node = cache.young.get(node_hash)
        if node is not None:
            return node
        node = cache.old.pop(node_hash, None)
        if node is not None:
            cache.young[node_hash] = node
            return node
        data = self.raw(node_hash)
        if data is None:
            raise MissingNode(node_hash)
        node = decode_stored_node(data)
        cache.put(node_hash, node)
        return node

    def raw(self, node_hash: bytes) -> bytes | None:
        txn = self.txn
        if txn is None:
            txn = self.own_txn
            if txn is None:
                txn = self.own_txn = self.store.env.begin(buffers=False)
        data: bytes | None = txn.get(node_hash, db=self.store._nodes)
        return data

    def close(self) -> None:
        if self.own_txn is not None:
            self.own_txn.abort()
            self.own_txn = None


class StateStore:
    """The state trie's persistent store; see the module docstring."""

    def __init__(
        self,
        env: lmdb.Environment,
        pruning: int | None,
        cache_nodes: int = DEFAULT_CACHE_NODES,
    ) -> None:
        """`pruning` is the number of recent states the chain keeps (None: archive, keep all).

        The store itself only needs to know whether to keep counts and journals; the chain
        decides when a state leaves the window and calls `prune` / `discard`.
        """
        if pruning is not None and pruning < 0:
            raise ValueError("pruning window must be >= 0 or None")
        self.env = env
        self.pruning = pruning
        self.cache = NodeCache(cache_nodes)
        self._nodes = env.open_db(NODES_DB)
        self._refs = env.open_db(REFS_DB)
        self._journal = env.open_db(JOURNAL_DB)

    # -----------------------------------------------------------------------------------------
    # Reads
    # -----------------------------------------------------------------------------------------

    def get_node(self, node_hash: bytes, txn: lmdb.Transaction | None = None) -> bytes | None:
        """The encoding of one node, or None if it is not stored."""
        node = self.cache.get(node_hash)
        if node is not None:
            return encode_node(node)
        reader = _Reader(self, txn)
        try:
            return reader.raw(node_hash)
        finally:
            reader.close()

    def has_root(self, root: bytes, txn: lmdb.Transaction | None = None) -> bool:
        """Whether the root node of this version is in the database (not pruned, committed).

        Asks LMDB, not the cache, which may still hold nodes of a pruned or aborted version.
        """
        if root == EMPTY_ROOT:
            return True
        reader = _Reader(self, txn)
        try:
            return reader.raw(root) is not None
        finally:
            reader.close()

    def get(self, root: bytes, key: bytes, txn: lmdb.Transaction | None = None) -> bytes | None:
        """The value of `key` in the version with this root; raises `MissingNode` if pruned."""
        reader = _Reader(self, txn)
        try:
            return lookup(reader, root, key)
        finally:
            reader.close()

    def update(
        self, root: bytes, changes: Mapping[bytes, bytes | None], txn: lmdb.Transaction | None = None
    ) -> TrieUpdate:
        """Compute the version after `changes` (None deletes); writes nothing, see `commit`."""
        reader = _Reader(self, txn)
        try:
            return apply_changes(reader, root, changes)
        finally:
            reader.close()

    def prove(self, root: bytes, keys: Iterable[bytes], txn: lmdb.Transaction | None = None) -> list[bytes]:
        """A proof for `keys` under `root`, checked by `node.state.trie.verify_proof`."""
        reader = _Reader(self, txn)
        try:
            return collect_proof(reader, root, keys)
        finally:
            reader.close()

    def iter_leaves(self, root: bytes, txn: lmdb.Transaction | None = None) -> Iterator[tuple[bytes, bytes]]:
        """Every (key, value) of a version in path order (debugging, genesis export)."""
        reader = _Reader(self, txn)
        try:
            yield from walk_leaves(reader, root)
        finally:
            reader.close()

    def node_count(self, txn: lmdb.Transaction | None = None) -> int:
        """Number of stored nodes (for metrics and tests)."""
        if txn is not None:
            return int(txn.stat(self._nodes)["entries"])
        with self.env.begin() as own:
            return int(own.stat(self._nodes)["entries"])

    # -----------------------------------------------------------------------------------------
    # Writes (inside the caller's write transaction)
    # -----------------------------------------------------------------------------------------

    def commit(self, txn: lmdb.Transaction, block_hash: bytes, update: TrieUpdate) -> None:
        """Store the nodes of `update`, the state change made by block `block_hash`.

        With pruning on, also counts a reference for every inserted node and journals what the
        block inserted and dropped, for a later `prune` or `discard` of that block.
        """
        nodes_db = self._nodes
        if self.pruning is None:
            with txn.cursor(db=nodes_db) as cursor:
                cursor.putmulti(update.inserted.items(), overwrite=False)
        else:
            if txn.get(block_hash, db=self._journal) is not None:
                raise ValueError(f"state of block {block_hash.hex()} is already committed")
            put = txn.put
            for node_hash, data in update.inserted.items():
                # overwrite=False reports whether the node was new: if not, another block still
                # counts it (e.g. A -> B -> A), so it gets one more reference.
                if not put(node_hash, data, db=nodes_db, overwrite=False):
                    self._add_ref(txn, node_hash, +1)
            journal = [b"".join(update.inserted), b"".join(update.dropped)]
            txn.put(block_hash, encode(journal), db=self._journal)
        # The next block and most reads start from this version: cache its new nodes, and make
        # room by forgetting the ones it replaced (still in LMDB while the window keeps them).
        self.cache.discard_many(update.dropped)
        self.cache.put_many(update.decoded)

    def prune(self, txn: lmdb.Transaction, block_hash: bytes) -> int:
        """Forget the state before `block_hash` (its parent's); returns the nodes deleted.

        Called when the parent's state leaves the window on the canonical chain. Every other
        child of that parent must have been discarded (before or in the same transaction),
        because their states still share the parent's nodes that this block dropped.
        A no-op in archive mode or if the block has no journal (already pruned).
        """
        journal = self._take_journal(txn, block_hash)
        return 0 if journal is None else self._release(txn, journal[1])

    def discard(self, txn: lmdb.Transaction, block_hash: bytes) -> int:
        """Undo the state insertions of an abandoned block; returns the nodes deleted.

        Discard a fork's blocks in any order (children first is natural); afterwards the node set
        is exactly what it was before they were committed.
        """
        journal = self._take_journal(txn, block_hash)
        return 0 if journal is None else self._release(txn, journal[0])

    # -----------------------------------------------------------------------------------------
    # Internals
    # -----------------------------------------------------------------------------------------

    def _take_journal(self, txn: lmdb.Transaction, block_hash: bytes) -> tuple[bytes, bytes] | None:
        """Read and delete a block's journal entry: (inserted hashes, dropped hashes)."""
        if self.pruning is None:
            return None
        data = txn.get(block_hash, db=self._journal)
        if data is None:
            return None
        txn.delete(block_hash, db=self._journal)
        # A genesis journal lists every genesis node, so it may exceed decode's default limit.
        fields = expect_list(decode(data, max_len=len(data)), 2, "state journal")
        inserted = expect_bytes(fields[0], what="journal inserted")
        dropped = expect_bytes(fields[1], what="journal dropped")
        return inserted, dropped

    def _add_ref(self, txn: lmdb.Transaction, node_hash: bytes, delta: int) -> int:
        """Change a node's reference count; returns the new count (absent entry means 1)."""
        data = txn.get(node_hash, db=self._refs)
        count = (1 if data is None else int.from_bytes(data, "big")) + delta
        if count <= 1:
            if data is not None:
                txn.delete(node_hash, db=self._refs)
        else:
            txn.put(node_hash, count.to_bytes(4, "big"), db=self._refs)
        return count

    def _release(self, txn: lmdb.Transaction, hashes: bytes) -> int:
        """Drop one reference to each node in a concatenation of hashes; delete those at zero."""
        refs_db = self._refs
        nodes_db = self._nodes
        evict = self.cache.discard
        deleted = 0
        for start in range(0, len(hashes), HASH_LEN):
            node_hash = hashes[start : start + HASH_LEN]
            if txn.get(node_hash, db=refs_db) is not None:
                self._add_ref(txn, node_hash, -1)
            elif txn.delete(node_hash, db=nodes_db):
                evict(node_hash)
                deleted += 1
        return deleted
