"""The node's database: one LMDB environment for blocks, indexes and state.

Sub-databases
  headers        block hash -> encoded header
  bodies         block hash -> encoded list of extrinsics
  justifications block hash -> encoded finality justification
  canonical      block number (u32 BE) -> hash of the canonical block at that height
  tx_index       extrinsic hash -> [block hash, index] (canonical blocks)
  meta           b"genesis" | b"best" | b"finalized" -> block hash; b"spec" -> chain spec id
  trie_*         the state trie (`node.state.store.StateStore`)

A block is imported in ONE write transaction (header, body, indexes, state nodes, head
pointers): after a crash, including `kill -9`, the database holds exactly the blocks whose
transaction committed, and the best pointer names one of them.

Durability: LMDB commits without its own fsync and the node flushes (`fdatasync`) right after
each commit, except while it imports a batch of blocks during major sync (`deferred_flush`),
where one flush covers the batch; a `write(durable=True)` (the finality voter's state) is
flushed at once even then.

Damage. LMDB maps the data file into memory, so a file shorter than its meta pages say kills the
process with SIGBUS at the first read past its end, and a damaged meta page is a raw `lmdb` error.
So before mapping, `check_data_file` reads LMDB's two meta pages itself (magic, version, page
size, map size, last page, transaction id) and compares the file's size with what the newest one
needs; `Chain` then checks the head pointers and the best block's state. Every problem is a
`DatabaseDamaged` whose message names the file, what is wrong and what to do; nothing is
written to a damaged database. A killed process loses nothing that committed (the pages are
in the OS cache); an operating-system crash or power loss can at worst lose the blocks since the
last flush, which sync fetches again (the same trade geth and Bitcoin Core make for block writes).
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import lmdb

from node.codec import decode, encode, expect_bytes, expect_int, expect_list
from node.state.store import StateStore
from node.state.trie import TrieUpdate
from node.types import Block, Header

MAP_SIZE = 1 << 40  # virtual; the file grows as needed
MAX_DBS = 32
DATA_FILE = "data.mdb"

# LMDB's on-disk meta pages (lmdb.h / mdb.c, 0.9.x, 64-bit): pages 0 and 1 each hold a page
# header (16 bytes: page number, pad, flags at offset 10, lower, upper) and then an MDB_meta:
# magic, format version, address, map size, the two root MDB_db records (48 bytes each; the
# first one's `md_pad` is the page size), last used page number, transaction id.
_META_MAGIC = 0xBEEFC0DE
_DATA_VERSION = 1
_P_META = 0x08
_META_LAYOUT = struct.Struct("<8xxxH4xIIQQI44x48xQQ")  # flags, magic, version, address, map size, page size, last page, txnid
_DEFAULT_PAGE = 4096

# Errors of `lmdb.open` that mean the files are damaged (others: permissions, disk, locks).
_DAMAGE_ERRORS = (lmdb.InvalidError, lmdb.CorruptedError, lmdb.VersionMismatchError, lmdb.PageNotFoundError,
                  lmdb.PanicError, lmdb.BadDbiError)  # fmt: skip


class DatabaseError(Exception):
    """The database cannot be opened; the message is meant for the operator."""


class DatabaseDamaged(DatabaseError):
    """The database's files are damaged or inconsistent: nothing in them can be trusted as is."""

    def __init__(self, path: Path, problem: str) -> None:
        self.path = path
        self.problem = problem
        super().__init__(
            f"the database at {path} is damaged: {problem}.\n"
            "The node did not start. What to do: start it with another --base-path "
            "(an empty directory) to resync the chain from its peers, or move the database directory away "
            "and start again to resync; keep the damaged copy if you want to look into it. A validator "
            "should rather restore a copy of the database taken while it was stopped: a resynced one has "
            "lost the record of its finality votes."
        )


def _number_key(number: int) -> bytes:
    return number.to_bytes(4, "big")


def _parse_meta(page: bytes) -> tuple[int, int, int, int] | None:
    """(page size, map size, last page, txnid) of a sound LMDB meta page, None otherwise."""
    if len(page) < _META_LAYOUT.size:
        return None
    flags, magic, version, _address, map_size, page_size, last_page, txnid = _META_LAYOUT.unpack_from(page)
    if not flags & _P_META or magic != _META_MAGIC or version != _DATA_VERSION:
        return None
    if page_size < 512 or page_size > 65536 or page_size & (page_size - 1):
        return None
    return page_size, map_size, last_page, txnid


def check_data_file(path: Path) -> None:
    """Refuse an LMDB data file that LMDB would choke on, before it is mapped (`DatabaseDamaged`).

    Both meta pages must be sound (LMDB refuses the file otherwise), and the file must be as long
    as the newest one's last page says: a shorter file is what SIGBUS comes from. A missing or
    empty file is a new database.
    """
    directory = path.parent
    try:
        size = path.stat().st_size
        if size == 0:
            return
        with path.open("rb") as handle:
            first = handle.read(_DEFAULT_PAGE)
            meta0 = _parse_meta(first)
            page_size = meta0[0] if meta0 is not None else _DEFAULT_PAGE
            handle.seek(page_size)
            meta1 = _parse_meta(handle.read(page_size))
    except FileNotFoundError:
        return
    except OSError as exc:
        raise DatabaseError(f"cannot read the database file {path}: {exc.strerror}") from exc
    if meta0 is None and meta1 is None:
        raise DatabaseDamaged(directory, f"{path.name} ({size} bytes) is not an LMDB data file: neither of its "
                                         "two meta pages is sound")  # fmt: skip
    if meta0 is None or meta1 is None:
        damaged = 0 if meta0 is None else 1
        raise DatabaseDamaged(directory, f"meta page {damaged} of {path.name} is damaged (zeroed or overwritten)")
    newest = max(meta0, meta1, key=lambda meta: meta[3])
    page_size, map_size, last_page, txnid = newest
    needed = (last_page + 1) * page_size
    if size < needed:
        raise DatabaseDamaged(
            directory,
            f"{path.name} is truncated: {size} bytes, but its newest meta page (transaction {txnid}) "
            f"uses {last_page + 1} pages of {page_size} bytes, {needed} bytes",
        )
    if map_size < needed:
        raise DatabaseDamaged(directory, f"the map size in {path.name}'s meta page ({map_size}) is smaller "
                                         f"than its data ({needed} bytes)")  # fmt: skip


class ChainDB:
    def __init__(self, path: Path, pruning: int | None) -> None:
        path.mkdir(parents=True, exist_ok=True)
        self.path = path
        check_data_file(path / DATA_FILE)
        try:
            self.env = lmdb.open(
                str(path),
                map_size=MAP_SIZE,
                max_dbs=MAX_DBS,
                subdir=True,
                lock=True,
                sync=False,  # flushed explicitly: see `write` and `deferred_flush`
                metasync=False,
                readahead=False,
            )
        except _DAMAGE_ERRORS as exc:
            raise DatabaseDamaged(path, f"LMDB cannot open it ({exc})") from exc
        except lmdb.Error as exc:
            raise DatabaseError(f"cannot open the database at {path}: {exc}") from exc
        try:
            self.headers = self.env.open_db(b"headers")
            self.bodies = self.env.open_db(b"bodies")
            self.justifications = self.env.open_db(b"justifications")
            self.canonical = self.env.open_db(b"canonical")
            self.tx_index = self.env.open_db(b"tx_index")
            self.meta = self.env.open_db(b"meta")
            self.state = StateStore(self.env, pruning)
        except lmdb.Error as exc:
            self.env.close()
            raise DatabaseDamaged(path, f"its tables cannot be opened ({exc})") from exc
        self.pruning = pruning
        self._defer_flush = 0
        # The last committed transaction known to be on disk (`flush`): what an operating-system
        # crash or power cut cannot take back.
        self.durable_txnid = self.last_txnid()

    def close(self) -> None:
        self.env.close()

    def last_txnid(self) -> int:
        """The id of the last committed write transaction."""
        return int(self.env.info()["last_txnid"])

    def flush(self) -> None:
        """Flush every committed transaction to disk (`fdatasync`)."""
        last = self.last_txnid()
        self.env.sync(True)
        self.durable_txnid = last

    @contextmanager
    def write(self, *, durable: bool = False) -> Iterator[lmdb.Transaction]:
        """One write transaction, flushed after it commits unless a `deferred_flush` is open.

        `durable` flushes even then: for what must be on disk before the node acts on it (the
        finality voter's state before its vote is sent), whatever batch is being imported.
        """
        with self.env.begin(write=True) as txn:
            yield txn
        if durable or not self._defer_flush:
            self.flush()

    @contextmanager
    def deferred_flush(self) -> Iterator[None]:
        """Import a batch of blocks with one flush at the end instead of one per commit."""
        self._defer_flush += 1
        try:
            yield
        finally:
            self._defer_flush -= 1
            if not self._defer_flush:
                self.flush()

    # -- reads ----------------------------------------------------------------------------------

    def get_meta(self, key: bytes) -> bytes | None:
        with self.env.begin() as txn:
            return txn.get(key, db=self.meta)

    def header(self, block_hash: bytes) -> Header | None:
        with self.env.begin() as txn:
            raw = txn.get(block_hash, db=self.headers)
        return None if raw is None else Header.decode(raw)

    def body(self, block_hash: bytes) -> list[bytes] | None:
        with self.env.begin() as txn:
            raw = txn.get(block_hash, db=self.bodies)
        if raw is None:
            return None
        return [expect_bytes(x) for x in expect_list(decode(raw))]

    def block(self, block_hash: bytes) -> Block | None:
        header = self.header(block_hash)
        body = self.body(block_hash)
        if header is None or body is None:
            return None
        return Block(header, tuple(body))

    def justification(self, block_hash: bytes) -> bytes | None:
        with self.env.begin() as txn:
            return txn.get(block_hash, db=self.justifications)

    def hash_at(self, number: int) -> bytes | None:
        with self.env.begin() as txn:
            return txn.get(_number_key(number), db=self.canonical)

    def hash_at_txn(self, txn: lmdb.Transaction, number: int) -> bytes | None:
        return txn.get(_number_key(number), db=self.canonical)

    def tx_location(self, ext_hash: bytes) -> tuple[bytes, int] | None:
        with self.env.begin() as txn:
            raw = txn.get(ext_hash, db=self.tx_index)
        if raw is None:
            return None
        block_hash, index = expect_list(decode(raw), 2)
        return expect_bytes(block_hash, 32), expect_int(index)

    # -- writes (inside one transaction per block) ---------------------------------------------

    def put_block(self, txn: lmdb.Transaction, block: Block, ext_hashes: list[bytes]) -> None:
        block_hash = block.hash
        txn.put(block_hash, block.header.encode(), db=self.headers)
        txn.put(block_hash, encode(list(block.extrinsics)), db=self.bodies)

    def set_canonical(self, txn: lmdb.Transaction, block: Block, ext_hashes: list[bytes]) -> None:
        block_hash = block.hash
        txn.put(_number_key(block.header.number), block_hash, db=self.canonical)
        for index, ext_hash in enumerate(ext_hashes):
            txn.put(ext_hash, encode([block_hash, index]), db=self.tx_index)

    def unset_canonical(self, txn: lmdb.Transaction, number: int, ext_hashes: list[bytes]) -> None:
        txn.delete(_number_key(number), db=self.canonical)
        for ext_hash in ext_hashes:
            txn.delete(ext_hash, db=self.tx_index)

    def delete_block(self, txn: lmdb.Transaction, block_hash: bytes) -> None:
        """Forget a block of a discarded branch (never a canonical one)."""
        txn.delete(block_hash, db=self.headers)
        txn.delete(block_hash, db=self.bodies)
        txn.delete(block_hash, db=self.justifications)

    def put_meta(self, txn: lmdb.Transaction, key: bytes, value: bytes) -> None:
        txn.put(key, value, db=self.meta)

    def put_justification(self, txn: lmdb.Transaction, block_hash: bytes, justification: bytes) -> None:
        txn.put(block_hash, justification, db=self.justifications)

    def commit_state(self, txn: lmdb.Transaction, block_hash: bytes, update: TrieUpdate) -> None:
        self.state.commit(txn, block_hash, update)
