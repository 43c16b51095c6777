"""Shared fixtures for the state trie tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import lmdb
import pytest


@pytest.fixture
def env(tmp_path: Path) -> Iterator[lmdb.Environment]:
    """A real LMDB environment shaped like the chain store's: one file, many named databases."""
    environment = lmdb.open(str(tmp_path / "db"), map_size=1 << 30, max_dbs=32, sync=False, metasync=False)
    yield environment
    environment.close()
