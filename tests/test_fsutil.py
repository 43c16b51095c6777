"""Durable file replacement (`node.fsutil`): what it leaves behind, and that devnet uses it."""

from __future__ import annotations

import stat
from pathlib import Path

from node.fsutil import fsync_dir, write_atomic


def test_write_atomic_replaces_whole_files_with_their_mode(tmp_path: Path) -> None:
    target = tmp_path / "chain.json"
    write_atomic(target, b"first")
    assert target.read_bytes() == b"first"
    write_atomic(target, b"second, longer than the first", mode=0o600)
    assert target.read_bytes() == b"second, longer than the first"
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["chain.json"], "no temporary file left behind"
    fsync_dir(tmp_path)  # a directory can be flushed on its own too


def test_devnet_files_are_written_atomically(tmp_path: Path) -> None:
    """The devnet harness writes its chain spec through `write_atomic` (nodes read it at each start)."""
    from devnet.harness import Network

    network = Network(tmp_path, validators=2)
    assert network.chain_path.read_text().startswith("{")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["chain.json"]
