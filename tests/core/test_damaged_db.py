"""A damaged database at start (issue #10, finding 10).

A real dev chain is written to LMDB, then damaged the ways disks and people damage files: the data
file truncated, its meta pages zeroed, a head pointer naming a block that is gone, the best block's
state missing from the trie. The node, started on it as a real subprocess, must refuse with a
message that says what is wrong and what to do, and exit non-zero: no SIGBUS, no traceback, and no
node running on a database it cannot trust.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import lmdb
import pytest

from node.core.chain import META_BEST, META_FINALIZED
from node.core.db import ChainDB
from node.service import dev_node
from tests.rpc.helpers import author

DB_DIR = Path("chains") / "imagechain_dev" / "db"
PAGE = 4096


@pytest.fixture
def base(tmp_path: Path) -> Path:
    """A dev chain of five blocks, closed cleanly."""
    base = tmp_path / "base"
    node = dev_node(base, rpc_port=None)
    for _ in range(5):
        author(node)
    node.close()
    return base


def start_node(base: Path) -> subprocess.CompletedProcess[str]:
    """`imagechain --dev --base-path BASE` as a subprocess; it must end by itself, quickly."""
    command = [sys.executable, "-m", "node", "--dev", "--base-path", str(base), "--rpc-port", "0", "--log", "warn"]
    return subprocess.run(command, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)


def raw_env(base: Path) -> lmdb.Environment:
    return lmdb.open(str(base / DB_DIR), max_dbs=32, map_size=1 << 30)


def truncate(base: Path) -> None:
    data = base / DB_DIR / "data.mdb"
    os.truncate(data, data.stat().st_size // 2)


def truncate_to_meta_pages(base: Path) -> None:
    os.truncate(base / DB_DIR / "data.mdb", 2 * PAGE)


def zero_page(number: int) -> Callable[[Path], None]:
    def damage(base: Path) -> None:
        with open(base / DB_DIR / "data.mdb", "r+b") as handle:
            handle.seek(number * PAGE)
            handle.write(bytes(PAGE))

    return damage


def zero_both_meta_pages(base: Path) -> None:
    zero_page(0)(base)
    zero_page(1)(base)


def not_lmdb(base: Path) -> None:
    (base / DB_DIR / "data.mdb").write_bytes(os.urandom(3 * PAGE))


def forget_best_block(base: Path) -> None:
    env = raw_env(base)
    meta, headers = env.open_db(b"meta"), env.open_db(b"headers")
    with env.begin(write=True) as txn:
        txn.delete(txn.get(META_BEST, db=meta), db=headers)
    env.close()


def forget_best_pointer(base: Path) -> None:
    env = raw_env(base)
    meta = env.open_db(b"meta")  # outside the write transaction: opening a db is one of its own
    with env.begin(write=True) as txn:
        txn.delete(META_BEST, db=meta)
    env.close()


def finalized_ahead_of_best(base: Path) -> None:
    """The finalized pointer names a block that is not on the best chain (here: unknown)."""
    env = raw_env(base)
    meta = env.open_db(b"meta")
    with env.begin(write=True) as txn:
        txn.put(META_FINALIZED, b"\x42" * 32, db=meta)
    env.close()


def forget_best_state(base: Path) -> None:
    db = ChainDB(base / DB_DIR, None)
    with db.env.begin() as txn:
        best = txn.get(META_BEST, db=db.meta)
    header = db.header(best)
    assert header is not None
    env = db.env
    nodes = env.open_db(b"trie_nodes")
    with env.begin(write=True) as txn:
        assert txn.delete(header.state_root, db=nodes)
    db.close()


DAMAGES: dict[str, tuple[Callable[[Path], None], str]] = {
    "truncated": (truncate, "truncated"),
    "truncated-to-meta-pages": (truncate_to_meta_pages, "truncated"),
    "meta-page-0-zeroed": (zero_page(0), "meta page 0"),
    "meta-page-1-zeroed": (zero_page(1), "meta page 1"),
    "both-meta-pages-zeroed": (zero_both_meta_pages, "not an LMDB data file"),
    "not-lmdb": (not_lmdb, "not an LMDB data file"),
    "best-block-missing": (forget_best_block, "best block"),
    "best-pointer-missing": (forget_best_pointer, "best block"),
    "finalized-unknown": (finalized_ahead_of_best, "finalized block"),
    "best-state-missing": (forget_best_state, "state of the best block"),
}


@pytest.mark.parametrize("damage", list(DAMAGES))
def test_damaged_database_is_refused_with_a_clear_message(base: Path, damage: str) -> None:
    do, what = DAMAGES[damage]
    do(base)
    result = start_node(base)
    assert result.returncode != -signal.SIGBUS, "the node died of SIGBUS"
    assert result.returncode == 1, f"exit {result.returncode}: {result.stderr[-2000:]}"
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    assert "database" in result.stderr and what in result.stderr, result.stderr
    assert str(base / DB_DIR) in result.stderr, "the message names the database"
    assert "--base-path" in result.stderr and "resync" in result.stderr, "the message says what to do"


def test_sound_database_opens(base: Path) -> None:
    """The checks pass on a database that is fine: it reopens on its five blocks."""
    node = dev_node(base, rpc_port=None)
    try:
        assert node.chain.best_header().number == 5
    finally:
        node.close()


def test_check_runs_before_lmdb_maps_the_file(base: Path) -> None:
    """In-process too: a truncated file is refused by the header check (a SIGBUS would kill the
    test run itself)."""
    from node.core.db import DatabaseDamaged

    truncate(base)
    with pytest.raises(DatabaseDamaged, match="truncated"):
        ChainDB(base / DB_DIR, None)
