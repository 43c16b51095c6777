"""The chain as the client sees it: a block tree above the finalized block, heads, state by block.

`Chain` is the only writer of the database. Each change is one LMDB write transaction:

* `add_block` stores an executed block and its state version; if it makes a longer chain that
  contains the finalized block (the fork-choice rule, PROTOCOL section 6) it becomes the best
  block, and the canonical index is rewritten along the route from the old best (a reorg:
  blocks *retracted* from the old branch, blocks *enacted* on the new one);
* `finalize` records a justification and moves the finalized block forward (never back); the
  best chain must contain it; branches that do not are discarded with their state; canonical
  state older than the pruning window is pruned. State above the finalized block is never
  pruned.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import lmdb

from node.chain_spec import ChainSpec, genesis_block, genesis_storage
from node.codec import DecodeError, decode, decode_trusted, encode, expect_bytes, expect_list
from node.core.db import ChainDB, DatabaseDamaged
from node.runtime.support import StateGet
from node.state.trie import EMPTY_ROOT, TrieUpdate
from node.types import Block, Header, extrinsic_hash

META_GENESIS = b"genesis"
META_BEST = b"best"
META_FINALIZED = b"finalized"
META_LEAVES = b"leaves"
META_SPEC = b"spec"

HEADER_CACHE_SIZE = 4096


class StatePruned(KeyError):
    """The state of that block fell out of the pruning window."""


class ChainMismatch(Exception):
    """The database at the base path was created for another chain spec."""


class NotDescendant(ValueError):
    """A block (or finality target) that does not descend from the finalized block."""


@dataclass
class HeadChange:
    """What `add_block` or `finalize` did to the best chain."""

    new_best: bool = False
    retracted: list[Header] = field(default_factory=list)  # old branch, highest first
    enacted: list[Header] = field(default_factory=list)  # new branch, lowest first


class Chain:
    def __init__(self, db: ChainDB, spec: ChainSpec) -> None:
        self.db = db
        self.spec = spec
        self.genesis = genesis_block(spec)
        self.genesis_hash = self.genesis.hash
        self._headers: dict[bytes, Header] = {}
        try:
            stored = db.get_meta(META_GENESIS)
            if stored is None and self._has_blocks():
                raise DatabaseDamaged(db.path, "it holds blocks but no genesis pointer")
        except lmdb.Error as exc:
            raise DatabaseDamaged(db.path, f"its metadata cannot be read ({exc})") from exc
        if stored is None:
            self._write_genesis()
        elif stored != self.genesis_hash:
            raise ChainMismatch(
                f"database genesis {stored.hex()} differs from chain spec genesis {self.genesis_hash.hex()}"
            )
        self._best, self._finalized, self._leaves = self._check_heads()

    def _has_blocks(self) -> bool:
        with self.db.env.begin() as txn:
            return txn.stat(self.db.headers)["entries"] > 0

    def _check_heads(self) -> tuple[Header, Header, list[bytes]]:
        """Best, finalized and leaves, checked as a restart relies on them (`DatabaseDamaged`).

        The pointers name stored blocks, both are on the canonical index, the finalized block is
        not above the best, and the best block's (and finalized block's) state is in the trie. A
        crash never breaks these (each change is one transaction); a damaged disk or file can,
        and a node started on such a database would fail later, somewhere less clear.
        """
        db = self.db
        try:
            best = self._check_head(META_BEST, "best")
            finalized = self._check_head(META_FINALIZED, "finalized")
            raw_leaves = db.get_meta(META_LEAVES)
            if raw_leaves is None:
                raise DatabaseDamaged(db.path, "the pointer to the chain's leaves is missing")
            leaves = [expect_bytes(leaf, 32, what="leaf") for leaf in expect_list(decode(raw_leaves), what="leaves")]
            for leaf in leaves:
                if self.header(leaf) is None:
                    raise DatabaseDamaged(db.path, f"the leaf block 0x{leaf.hex()} is not stored")
            if finalized.number > best.number:
                raise DatabaseDamaged(db.path, f"the finalized block #{finalized.number} is above the best block #{best.number}")
            if db.body(best.hash) is None:
                raise DatabaseDamaged(db.path, f"the body of the best block #{best.number} is not stored")
            for header, what in ((best, "best"), (finalized, "finalized")):
                if db.hash_at(header.number) != header.hash:
                    raise DatabaseDamaged(db.path, f"the {what} block #{header.number} is not on the canonical index")
                if not db.state.has_root(header.state_root):
                    raise DatabaseDamaged(
                        db.path,
                        f"the state of the {what} block #{header.number} (root 0x{header.state_root.hex()}) "
                        "is missing from the state trie",
                    )
        except (DecodeError, lmdb.Error) as exc:
            raise DatabaseDamaged(db.path, f"its block index cannot be read ({exc})") from exc
        return best, finalized, leaves

    def _check_head(self, key: bytes, what: str) -> Header:
        block_hash = self.db.get_meta(key)
        if block_hash is None:
            raise DatabaseDamaged(self.db.path, f"the {what} block pointer is missing")
        header = self.header(block_hash)
        if header is None:
            raise DatabaseDamaged(self.db.path, f"the {what} block 0x{block_hash.hex()} is not stored")
        return header

    def _write_genesis(self) -> None:
        update = self.db.state.update(EMPTY_ROOT, genesis_storage(self.spec))
        assert update.root == self.genesis.header.state_root
        with self.db.write() as txn:
            self.db.put_block(txn, self.genesis, [])
            self.db.commit_state(txn, self.genesis_hash, update)
            self.db.set_canonical(txn, self.genesis, [])
            self.db.put_meta(txn, META_GENESIS, self.genesis_hash)
            self.db.put_meta(txn, META_BEST, self.genesis_hash)
            self.db.put_meta(txn, META_FINALIZED, self.genesis_hash)
            self.db.put_meta(txn, META_LEAVES, encode([self.genesis_hash]))
            self.db.put_meta(txn, META_SPEC, self.spec.id.encode())

    def _require_header(self, block_hash: bytes) -> Header:
        header = self.header(block_hash)
        if header is None:
            raise RuntimeError(f"block {block_hash.hex()} missing from the database")
        return header

    # -- reads ----------------------------------------------------------------------------------

    def best_header(self) -> Header:
        return self._best

    def finalized_header(self) -> Header:
        return self._finalized

    def leaves(self) -> list[bytes]:
        return list(self._leaves)

    def header(self, block_hash: bytes) -> Header | None:
        header = self._headers.get(block_hash)
        if header is None:
            header = self.db.header(block_hash)
            if header is not None:
                if len(self._headers) >= HEADER_CACHE_SIZE:
                    self._headers.pop(next(iter(self._headers)))
                self._headers[block_hash] = header
        return header

    def block(self, block_hash: bytes) -> Block | None:
        return self.db.block(block_hash)

    def hash_at(self, number: int) -> bytes | None:
        """The canonical (best chain) block at `number`."""
        return self.db.hash_at(number)

    def justification(self, block_hash: bytes) -> bytes | None:
        return self.db.justification(block_hash)

    def contains(self, block_hash: bytes) -> bool:
        return self.header(block_hash) is not None

    def ancestor_at(self, block_hash: bytes, number: int) -> Header | None:
        """The ancestor of `block_hash` (or itself) at height `number`, walking parent links."""
        header = self.header(block_hash)
        while header is not None and header.number > number:
            if self.hash_at(header.number) == header.hash:
                # On the canonical chain: jump straight to the index.
                canonical = self.hash_at(number)
                return self.header(canonical) if canonical is not None else None
            header = self.header(header.parent_hash)
        if header is None or header.number != number:
            return None
        return header

    def is_descendant(self, block_hash: bytes, ancestor_hash: bytes) -> bool:
        """True if `block_hash` is `ancestor_hash` or one of its descendants."""
        ancestor = self.header(ancestor_hash)
        if ancestor is None:
            return False
        found = self.ancestor_at(block_hash, ancestor.number)
        return found is not None and found.hash == ancestor_hash

    def best_containing(self, block_hash: bytes) -> Header | None:
        """The head of the longest known chain that contains `block_hash`."""
        best: Header | None = None
        for leaf in self._leaves:
            header = self.header(leaf)
            if header is not None and self.is_descendant(leaf, block_hash):
                if best is None or header.number > best.number:
                    best = header
        return best

    def state_available(self, header: Header) -> bool:
        window = self.db.pruning
        return window is None or header.number >= self._finalized.number - window

    def _state_header(self, block_hash: bytes) -> Header:
        header = self.header(block_hash)
        if header is None:
            raise KeyError(f"unknown block {block_hash.hex()}")
        if not self.state_available(header):
            raise StatePruned(f"state of block #{header.number} was pruned")
        return header

    def state_reader(self, block_hash: bytes) -> StateGet:
        """A `get(key)` over the state after block `block_hash` (KeyError if unknown or pruned)."""
        root = self._state_header(block_hash).state_root
        state = self.db.state
        return lambda key: state.get(root, key)

    def best_state(self) -> StateGet:
        root = self._best.state_root
        state = self.db.state
        return lambda key: state.get(root, key)

    def state_get(self, block_hash: bytes, key: bytes) -> bytes | None:
        return self.state_reader(block_hash)(key)

    def read_proof(self, block_hash: bytes, keys: list[bytes]) -> list[bytes]:
        return self.db.state.prove(self._state_header(block_hash).state_root, keys)

    # -- writes ---------------------------------------------------------------------------------

    def add_block(self, block: Block, update: TrieUpdate) -> HeadChange:
        """Store an executed block whose parent is known and descends from the finalized block."""
        header = block.header
        parent = self.header(header.parent_hash)
        if parent is None:
            raise ValueError("add_block: unknown parent")
        if header.number <= self._finalized.number or not self.is_descendant(parent.hash, self._finalized.hash):
            raise NotDescendant(f"block #{header.number} does not descend from the finalized block")
        block_hash = block.hash
        change = HeadChange()
        leaves = [leaf for leaf in self._leaves if leaf != parent.hash] + [block_hash]
        with self.db.write() as txn:
            self.db.put_block(txn, block, [])
            self.db.commit_state(txn, block_hash, update)
            if header.number > self._best.number:
                change = self._set_best(txn, header)
            self.db.put_meta(txn, META_LEAVES, encode(leaves))
        self._leaves = leaves
        self._headers[block_hash] = header
        if change.new_best:
            self._best = header
        return change

    def _route(self, old: Header, new: Header) -> tuple[list[Header], list[Header]]:
        """Blocks to retract from `old` and enact toward `new` (through their common ancestor)."""
        retracted: list[Header] = []
        enacted: list[Header] = []
        while old.hash != new.hash:
            if old.number >= new.number:
                retracted.append(old)
                old = self._require_header(old.parent_hash)
            else:
                enacted.append(new)
                new = self._require_header(new.parent_hash)
        enacted.reverse()
        return retracted, enacted

    def _set_best(self, txn: lmdb.Transaction, new_best: Header) -> HeadChange:
        retracted, enacted = self._route(self._best, new_best)
        for header in retracted:
            body = self.db.body(header.hash) or []
            self.db.unset_canonical(txn, header.number, [extrinsic_hash(x) for x in body])
        for header in enacted:
            block = self.db.block(header.hash)
            if block is None:  # added in this very transaction
                block = Block(header, tuple(self._body_in_txn(txn, header.hash)))
            self.db.set_canonical(txn, block, [extrinsic_hash(x) for x in block.extrinsics])
        self.db.put_meta(txn, META_BEST, new_best.hash)
        return HeadChange(True, retracted, enacted)

    def _body_in_txn(self, txn: lmdb.Transaction, block_hash: bytes) -> list[bytes]:
        raw = txn.get(block_hash, db=self.db.bodies)
        return list(decode_trusted(raw)) if raw is not None else []

    def finalize(self, block_hash: bytes, justification: bytes | None = None) -> HeadChange:
        """Make `block_hash` final: it must descend from the current finalized block."""
        target = self.header(block_hash)
        if target is None:
            raise KeyError(f"unknown block {block_hash.hex()}")
        if target.hash == self._finalized.hash:
            if justification is not None and self.db.justification(block_hash) is None:
                with self.db.write() as txn:
                    self.db.put_justification(txn, block_hash, justification)
            return HeadChange()
        if not self.is_descendant(block_hash, self._finalized.hash):
            raise NotDescendant(f"block #{target.number} does not descend from the finalized block")
        change = HeadChange()
        previous = self._finalized
        stale = [leaf for leaf in self._leaves if not self.is_descendant(leaf, block_hash)]
        with self.db.write() as txn:
            if justification is not None:
                self.db.put_justification(txn, block_hash, justification)
            if not self.is_descendant(self._best.hash, block_hash):
                head = self._best_containing_excluding(block_hash, stale)
                change = self._set_best(txn, head)
                self._best = head
            self.db.put_meta(txn, META_FINALIZED, block_hash)
            leaves = self._discard_stale(txn, stale, target)
            self.db.put_meta(txn, META_LEAVES, encode(leaves))
            self._prune(txn, previous.number, target.number)
        self._finalized = target
        self._leaves = leaves
        return change

    def _best_containing_excluding(self, block_hash: bytes, stale: list[bytes]) -> Header:
        best = self._require_header(block_hash)
        for leaf in self._leaves:
            if leaf in stale:
                continue
            header = self._require_header(leaf)
            if header.number > best.number:
                best = header
        return best

    def _discard_stale(self, txn: lmdb.Transaction, stale: list[bytes], finalized: Header) -> list[bytes]:
        """Delete the branches that cannot contain the new finalized block, with their state.

        Walk back from each stale leaf until reaching an ancestor of the finalized block (shared
        history, which stays). Reads see the snapshot before this transaction, hence `discarded`.
        """
        discarded: set[bytes] = set()  # membership only, never iterated
        for leaf in stale:
            header = self.header(leaf)
            while (
                header is not None
                and header.hash not in discarded
                and not self.is_descendant(finalized.hash, header.hash)
            ):
                self.db.state.discard(txn, header.hash)
                self.db.delete_block(txn, header.hash)
                discarded.add(header.hash)
                self._headers.pop(header.hash, None)
                header = self.header(header.parent_hash)
        return [leaf for leaf in self._leaves if leaf not in stale]

    def _prune(self, txn: lmdb.Transaction, previous_finalized: int, finalized: int) -> None:
        """Drop canonical state versions that fell out of the window `[finalized - N, finalized]`."""
        window = self.db.pruning
        if window is None:
            return
        for number in range(max(0, previous_finalized - window + 1), finalized - window + 1):
            block_hash = txn.get(number.to_bytes(4, "big"), db=self.db.canonical)
            if block_hash is not None:
                self.db.state.prune(txn, block_hash)
