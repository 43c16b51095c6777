"""The LMDB blob store: whole uploads, segment-by-segment receipt with proofs, quota, GC."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from node.primitives import merkle
from node.storage.store import (
    BlobStore,
    QuotaExceeded,
    SegmentMismatch,
    StoreError,
    segment_roots_of,
    verify_segment,
)

SIZE = 3 * merkle.SEGMENT_BYTES + 777


@pytest.fixture
def store(tmp_path: Path):
    s = BlobStore(tmp_path / "blobs", quota_bytes=4 * merkle.SEGMENT_BYTES)
    yield s
    s.close()


def test_a_blob_is_stored_read_and_served_by_segment(store: BlobStore) -> None:
    data = os.urandom(SIZE)
    root = store.put_blob(data)
    assert root == merkle.blob_root(data) and store.has(root)
    assert store.read(root) == data and store.read(root, 1000, 300_000) == data[1000:300_000]
    assert store.chunk(root, 5) == data[5 * 1024 : 6 * 1024]
    assert store.stored_bytes() == SIZE and store.put_blob(data) == root and store.stored_bytes() == SIZE
    for index in range(4):
        segment, proof = store.segment(root, index)  # type: ignore[misc]
        assert verify_segment(root, SIZE, index, segment, proof)
        assert not verify_segment(root, SIZE, index, segment[:-1] + bytes([segment[-1] ^ 1]), proof)
        assert not verify_segment(root, SIZE + 1, index, segment, proof) or index < 3
    assert store.segment(root, 4) is None and store.read(b"\x00" * 32) is None


def test_segments_from_peers_are_checked_and_a_blob_completes(tmp_path: Path, store: BlobStore) -> None:
    data = os.urandom(SIZE)
    root, roots = merkle.blob_root(data), segment_roots_of(data)
    with pytest.raises(SegmentMismatch):
        store.expect(root, SIZE, roots[::-1])
    store.expect(root, SIZE, roots)
    assert not store.has(root) and store.read(root) is None and store.missing_segments(root) == [0, 1, 2, 3]
    segments = [data[i * merkle.SEGMENT_BYTES : (i + 1) * merkle.SEGMENT_BYTES] for i in range(4)]
    with pytest.raises(SegmentMismatch):
        store.put_segment(root, 1, os.urandom(len(segments[1])))  # a forged segment is never stored
    assert store.stored_bytes() == 0
    for index in (3, 0, 2):
        assert store.put_segment(root, index, segments[index]) is False
    assert store.missing_segments(root) == [1]
    assert store.put_segment(root, 1, segments[1]) is True
    assert store.read(root) == data and store.stored_bytes() == SIZE


def test_the_quota_is_a_clear_error_and_gc_frees_what_nothing_needs(tmp_path: Path) -> None:
    clock = [1_000.0]
    store = BlobStore(tmp_path / "q", quota_bytes=2 * merkle.SEGMENT_BYTES, clock=lambda: clock[0])
    try:
        kept = store.put_blob(os.urandom(merkle.SEGMENT_BYTES))
        dropped = store.put_blob(os.urandom(merkle.SEGMENT_BYTES // 2))
        with pytest.raises(QuotaExceeded, match="quota"):
            store.put_blob(os.urandom(merkle.SEGMENT_BYTES))
        assert store.collect_garbage(lambda root: root == kept, grace_seconds=60) == 0  # too recent
        clock[0] += 120
        assert store.collect_garbage(lambda root: root == kept, grace_seconds=60) == merkle.SEGMENT_BYTES // 2
        assert store.has(kept) and not store.has(dropped)
        store.put_blob(os.urandom(merkle.SEGMENT_BYTES))  # room again
        with pytest.raises(StoreError):
            store.put_blob(b"\x00" * (257 * 1024 * 1024))
    finally:
        store.close()


@pytest.mark.slow
def test_kill_9_during_blob_writes_leaves_no_half_blob(tmp_path: Path) -> None:
    """A process writing blobs is killed at random moments; every blob the store then lists as
    complete reads back whole and hashes to its root."""
    script = f"""
import os, sys
sys.path.insert(0, {str(Path(__file__).resolve().parents[2])!r})
from node.storage.store import BlobStore
store = BlobStore(__import__("pathlib").Path({str(tmp_path / "k")!r}), quota_bytes=1 << 34)
print("ready", flush=True)
while True:
    store.put_blob(os.urandom(3 * 256 * 1024 + 5))
"""
    for _ in range(5):
        proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        import time

        time.sleep(0.3)
        proc.kill()
        proc.wait()
    store = BlobStore(tmp_path / "k", quota_bytes=1 << 34)
    try:
        infos = list(store.roots())
        assert infos and all(info.complete for info in infos)
        for info in infos:
            assert merkle.blob_root(store.read(info.root) or b"") == info.root
        assert store.stored_bytes() == sum(info.size for info in infos)
    finally:
        store.close()


def test_batches_and_files_are_stored_whole_or_not_at_all(tmp_path: Path, store: BlobStore) -> None:
    import io

    data = os.urandom(SIZE)
    root, roots = merkle.blob_root(data), segment_roots_of(data)
    segments = [data[i * merkle.SEGMENT_BYTES : (i + 1) * merkle.SEGMENT_BYTES] for i in range(4)]
    store.expect(root, SIZE, roots)
    forged = segments[2][:-1] + bytes([segments[2][-1] ^ 1])
    with pytest.raises(SegmentMismatch, match="segment 2"):
        store.put_segments(root, [(1, segments[1]), (2, forged)])
    assert store.missing_segments(root) == [0, 1, 2, 3] and store.stored_bytes() == 0  # none of the batch
    assert store.put_segments(root, [(0, segments[0]), (1, segments[1])]) is False
    assert store.put_segments(root, [(2, segments[2]), (3, segments[3])]) is True
    assert store.read(root) == data and store.stored_bytes() == SIZE

    files = BlobStore(tmp_path / "files", quota_bytes=2 * merkle.SEGMENT_BYTES)
    other = os.urandom(merkle.SEGMENT_BYTES + 10)
    with tmp_path.joinpath("upload").open("w+b") as file:
        file.write(other)
        assert files.put_file(file, len(other)) == merkle.blob_root(other)  # type: ignore[arg-type]
    assert files.read(merkle.blob_root(other)) == other
    with pytest.raises(StoreError, match="ended before"):
        files.put_file(io.BytesIO(b"short"), 100)
    with pytest.raises(QuotaExceeded):
        files.put_file(io.BytesIO(os.urandom(merkle.SEGMENT_BYTES)), merkle.SEGMENT_BYTES)
    assert files.blob_count() == 1 and store.blob_count() == 1
    files.close()
