"""The chain as the client sees it: stored blocks, the best and finalized heads, state by block.

`Chain` is the only writer of the database. Every block goes through `commit_block`, which
writes the block, its state version, the canonical index and the head pointers in one LMDB
transaction, and prunes state that fell out of the pruning window.
"""

from __future__ import annotations

from collections.abc import Callable

import lmdb

from node.chain_spec import ChainSpec, genesis_block, genesis_storage
from node.core.db import ChainDB
from node.state.trie import EMPTY_ROOT, TrieUpdate
from node.types import Block, Header, extrinsic_hash

META_GENESIS = b"genesis"
META_BEST = b"best"
META_FINALIZED = b"finalized"
META_SPEC = b"spec"


class StatePruned(KeyError):
    """The state of that block fell out of the pruning window."""


class ChainMismatch(Exception):
    """The database at the base path was created for another chain spec."""


class Chain:
    def __init__(self, db: ChainDB, spec: ChainSpec) -> None:
        self.db = db
        self.spec = spec
        self.genesis = genesis_block(spec)
        self.genesis_hash = self.genesis.hash
        stored = db.get_meta(META_GENESIS)
        if stored is None:
            self._write_genesis()
        elif stored != self.genesis_hash:
            raise ChainMismatch(
                f"database genesis {stored.hex()} differs from chain spec genesis {self.genesis_hash.hex()}"
            )
        best = db.get_meta(META_BEST)
        finalized = db.get_meta(META_FINALIZED)
        assert best is not None and finalized is not None, "database lost its head pointers"
        self._best = self._require_header(best)
        self._finalized = self._require_header(finalized)

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
            self.db.put_meta(txn, META_SPEC, self.spec.id.encode())

    def _require_header(self, block_hash: bytes) -> Header:
        header = self.db.header(block_hash)
        if header is None:
            raise RuntimeError(f"block {block_hash.hex()} missing from the database")
        return header

    # -- reads ----------------------------------------------------------------------------------

    def best_header(self) -> Header:
        return self._best

    def finalized_header(self) -> Header:
        return self._finalized

    def header(self, block_hash: bytes) -> Header | None:
        return self.db.header(block_hash)

    def block(self, block_hash: bytes) -> Block | None:
        return self.db.block(block_hash)

    def hash_at(self, number: int) -> bytes | None:
        return self.db.hash_at(number)

    def justification(self, block_hash: bytes) -> bytes | None:
        return self.db.justification(block_hash)

    def contains(self, block_hash: bytes) -> bool:
        return self.db.header(block_hash) is not None

    def state_available(self, header: Header) -> bool:
        window = self.db.pruning
        return window is None or header.number >= self._finalized.number - window

    def _state_header(self, block_hash: bytes) -> Header:
        header = self.db.header(block_hash)
        if header is None:
            raise KeyError(f"unknown block {block_hash.hex()}")
        if not self.state_available(header):
            raise StatePruned(f"state of block #{header.number} was pruned")
        return header

    def state_reader(self, block_hash: bytes) -> Callable[[bytes], bytes | None]:
        """A `get(key)` over the state after block `block_hash` (KeyError if unknown or pruned)."""
        root = self._state_header(block_hash).state_root
        state = self.db.state
        return lambda key: state.get(root, key)

    def best_state(self) -> Callable[[bytes], bytes | None]:
        root = self._best.state_root
        state = self.db.state
        return lambda key: state.get(root, key)

    def state_get(self, block_hash: bytes, key: bytes) -> bytes | None:
        return self.state_reader(block_hash)(key)

    def read_proof(self, block_hash: bytes, keys: list[bytes]) -> list[bytes]:
        return self.db.state.prove(self._state_header(block_hash).state_root, keys)

    # -- writes ---------------------------------------------------------------------------------

    def commit_block(self, block: Block, update: TrieUpdate, finalize: bool) -> None:
        """Store an executed block that extends the best chain, in one transaction.

        With a single authority (until the finality gadget runs) every new best block is
        final; the state of blocks older than the pruning window is pruned in the same write.
        """
        header = block.header
        if header.parent_hash != self._best.hash:
            raise ValueError("commit_block: block does not extend the best chain (forks: finality issue)")
        ext_hashes = [extrinsic_hash(x) for x in block.extrinsics]
        block_hash = block.hash
        with self.db.write() as txn:
            self.db.put_block(txn, block, ext_hashes)
            self.db.commit_state(txn, block_hash, update)
            self.db.set_canonical(txn, block, ext_hashes)
            self.db.put_meta(txn, META_BEST, block_hash)
            if finalize:
                self.db.put_meta(txn, META_FINALIZED, block_hash)
                self._prune(txn, header.number)
        self._best = header
        if finalize:
            self._finalized = header

    def _prune(self, txn: lmdb.Transaction, finalized_number: int) -> None:
        window = self.db.pruning
        if window is None or finalized_number - window < 1:
            return
        with_state_dropped = self.db.hash_at_txn(txn, finalized_number - window)
        if with_state_dropped is not None:
            self.db.state.prune(txn, with_state_dropped)
