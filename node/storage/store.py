"""The node's blob store: content-addressed image files in their own LMDB environment.

A blob is named by its Merkle root (`node.primitives.merkle`) and size. It is kept as 256 KiB
segments, each one an aligned subtree of the blob's tree, so a segment received from a peer is
checked on its own against the root before it is stored (`put_segment`), and any segment can be
served with its proof (`segment`). A blob is *complete* once every segment is in; only then is it
listed, served whole and counted as stored. Every change is one LMDB write transaction: after a
`kill -9` the store holds exactly the segments whose transaction committed, never half of one.

Sub-databases
  blobs     root -> [size, segment count, segment roots..., complete, last used (unix s)]
  segments  root || segment index (u32) -> the segment's bytes

The quota bounds the bytes of all segments; `collect_garbage` deletes what the caller says no
registration needs (the chain decides that, not the store).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import lmdb

from node.codec import decode, encode
from node.primitives.merkle import (
    LEAF_BYTES,
    SEGMENT_BYTES,
    SEGMENT_LEAVES,
    audit_path,
    leaf_hashes,
    root_of,
    verify_inclusion,
)

MAP_SIZE = 1 << 40  # virtual; the file grows as needed
MAX_BLOB_BYTES = 256 * 1024 * 1024  # a RAW original fits; anything larger is refused


class StoreError(Exception):
    """A blob operation that cannot be done; the message says why, fit for a log line or a 4xx."""


class QuotaExceeded(StoreError):
    pass


class SegmentMismatch(StoreError):
    """Bytes that do not hash to the claimed root: the peer that sent them is lying or broken."""


@dataclass(frozen=True)
class BlobInfo:
    root: bytes
    size: int
    segment_roots: tuple[bytes, ...]
    complete: bool
    last_used: int

    @property
    def segment_count(self) -> int:
        return len(self.segment_roots)

    def segment_size(self, index: int) -> int:
        return min(SEGMENT_BYTES, self.size - index * SEGMENT_BYTES)


def segment_count(size: int) -> int:
    return max(1, -(-size // SEGMENT_BYTES))


def segment_roots_of(data: bytes) -> list[bytes]:
    hashes = leaf_hashes(data)
    return [root_of(hashes[i : i + SEGMENT_LEAVES]) for i in range(0, len(hashes), SEGMENT_LEAVES)] or [root_of([])]


def verify_segment(root: bytes, size: int, index: int, data: bytes, proof: list[bytes]) -> bool:
    """Whether `data` is segment `index` of the blob (`root`, `size`): right length, and its
    subtree root sits at `index` among the blob's segments."""
    count = segment_count(size)
    if not 0 <= index < count or not 0 <= size <= MAX_BLOB_BYTES:
        return False
    expected = min(SEGMENT_BYTES, size - index * SEGMENT_BYTES) if size else 0
    if len(data) != expected:
        return False
    return verify_inclusion(root, count, index, root_of(leaf_hashes(data)), proof)


class BlobStore:
    def __init__(self, path: Path, quota_bytes: int, clock: Callable[[], float] = time.time) -> None:
        path.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.quota_bytes = quota_bytes
        self.clock = clock
        self.env = lmdb.open(str(path), map_size=MAP_SIZE, max_dbs=4, subdir=True, readahead=False)
        self._blobs = self.env.open_db(b"blobs")
        self._segments = self.env.open_db(b"segments")
        self._meta = self.env.open_db(b"meta")

    def close(self) -> None:
        self.env.close()

    # -- reads ----------------------------------------------------------------------------------

    def info(self, root: bytes) -> BlobInfo | None:
        with self.env.begin() as txn:
            return self._info(txn, root)

    def has(self, root: bytes) -> bool:
        info = self.info(root)
        return info is not None and info.complete

    def roots(self) -> Iterator[BlobInfo]:
        """Every blob the store knows (complete or not), in root order."""
        with self.env.begin() as txn:
            for key, value in txn.cursor(self._blobs):
                yield _decode_info(bytes(key), bytes(value))

    def blob_count(self) -> int:
        """Blobs known to the store, complete or not (LMDB keeps the count: O(1))."""
        with self.env.begin() as txn:
            return int(txn.stat(self._blobs)["entries"])

    def stored_bytes(self) -> int:
        with self.env.begin() as txn:
            raw = txn.get(b"stored", db=self._meta)
            return 0 if raw is None else int.from_bytes(raw, "big")

    def segment(self, root: bytes, index: int) -> tuple[bytes, list[bytes]] | None:
        """Segment `index` of a blob and its proof against the root, or None if not held."""
        with self.env.begin() as txn:
            info = self._info(txn, root)
            if info is None or not 0 <= index < info.segment_count:
                return None
            data = txn.get(root + index.to_bytes(4, "big"), db=self._segments)
            if data is None:
                return None
            return bytes(data), audit_path(info.segment_roots, index)

    def read(self, root: bytes, start: int = 0, end: int | None = None) -> bytes | None:
        """Bytes [start, end) of a complete blob (all of it by default), or None if not held."""
        info = self.info(root)
        if info is None or not info.complete:
            return None
        end = info.size if end is None else min(end, info.size)
        if not 0 <= start <= end:
            raise StoreError(f"range {start}-{end} outside a blob of {info.size} bytes")
        out = bytearray()
        with self.env.begin() as txn:
            for index in range(start // SEGMENT_BYTES, -(-end // SEGMENT_BYTES)):
                data = txn.get(root + index.to_bytes(4, "big"), db=self._segments)
                if data is None:
                    return None
                offset = index * SEGMENT_BYTES
                out += bytes(data)[max(0, start - offset) : end - offset]
        return bytes(out)

    def chunk(self, root: bytes, index: int) -> bytes | None:
        """One 1 KiB leaf of a complete blob (what sealing and tickets read)."""
        return self.read(root, index * LEAF_BYTES, (index + 1) * LEAF_BYTES)

    # -- writes ---------------------------------------------------------------------------------

    def put_blob(self, data: bytes) -> bytes:
        """Store a whole blob (an upload); returns its root. Idempotent (a second upload of the
        same bytes refreshes its last-used time: its garbage-collection grace starts again)."""
        if len(data) > MAX_BLOB_BYTES:
            raise StoreError(f"a blob is at most {MAX_BLOB_BYTES} bytes, got {len(data)}")
        segment_roots = segment_roots_of(data)
        segments = (data[i * SEGMENT_BYTES : (i + 1) * SEGMENT_BYTES] for i in range(len(segment_roots)))
        return self._put_whole(len(data), segment_roots, segments)

    def put_file(self, file: BinaryIO, size: int) -> bytes:
        """Store the `size` bytes of `file` (from its start) as one blob, holding one segment in
        memory at a time: a pass to hash, a pass to write (in one transaction). For uploads
        spooled to disk; the file must not change in between."""
        if not 0 <= size <= MAX_BLOB_BYTES:
            raise StoreError(f"a blob is at most {MAX_BLOB_BYTES} bytes, got {size}")

        def segments() -> Iterator[bytes]:
            file.seek(0)
            for index in range(segment_count(size)):
                data = file.read(min(SEGMENT_BYTES, size - index * SEGMENT_BYTES))
                if len(data) != min(SEGMENT_BYTES, size - index * SEGMENT_BYTES):
                    raise StoreError(f"the file ended before {size} bytes")
                yield data

        segment_roots = [root_of(leaf_hashes(segment)) for segment in segments()] if size else segment_roots_of(b"")
        return self._put_whole(size, segment_roots, segments() if size else iter([b""]))

    def _put_whole(self, size: int, segment_roots: list[bytes], segments: Iterator[bytes]) -> bytes:
        root = root_of(segment_roots)
        with self.env.begin(write=True) as txn:
            existing = self._info(txn, root)
            if existing is not None and existing.complete:
                self._put_info(txn, BlobInfo(root, size, existing.segment_roots, True, int(self.clock())))
                return root
            held = self._held_bytes(txn, root, existing)
            self._charge(txn, size - held)
            for index, segment in enumerate(segments):
                txn.put(root + index.to_bytes(4, "big"), segment, db=self._segments)
            self._put_info(txn, BlobInfo(root, size, tuple(segment_roots), True, int(self.clock())))
        return root

    def expect(self, root: bytes, size: int, segment_roots: list[bytes]) -> None:
        """Prepare to receive a blob segment by segment: its segment roots must hash to `root`."""
        if not 0 <= size <= MAX_BLOB_BYTES or len(segment_roots) != segment_count(size):
            raise StoreError(f"a blob of {size} bytes has {segment_count(size)} segments")
        if root_of(segment_roots) != root:
            raise SegmentMismatch("the segment roots do not hash to the blob root")
        with self.env.begin(write=True) as txn:
            if self._info(txn, root) is None:
                self._put_info(txn, BlobInfo(root, size, tuple(segment_roots), size == 0, int(self.clock())))

    def put_segment(self, root: bytes, index: int, data: bytes) -> bool:
        """Store a received segment after checking it against the blob's segment roots (from
        `expect`). Returns whether the blob is complete now."""
        return self.put_segments(root, [(index, data)])

    def put_segments(self, root: bytes, segments: list[tuple[int, bytes]]) -> bool:
        """Store received segments (index, bytes) in one transaction, each checked as
        `put_segment` checks it; one that does not match stores none of them (SegmentMismatch).
        Returns whether the blob is complete now."""
        with self.env.begin(write=True) as txn:
            info = self._info(txn, root)
            if info is None:
                raise StoreError("unknown blob: call expect() first")
            if info.complete:
                return True
            for index, data in segments:
                if not 0 <= index < info.segment_count or len(data) != info.segment_size(index):
                    raise SegmentMismatch(f"segment {index} has the wrong length")
                if root_of(leaf_hashes(data)) != info.segment_roots[index]:
                    raise SegmentMismatch(f"segment {index} does not hash to its root")
            for index, data in segments:
                key = root + index.to_bytes(4, "big")
                if txn.get(key, db=self._segments) is None:
                    self._charge(txn, len(data))
                    txn.put(key, data, db=self._segments)
            complete = all(
                txn.get(root + i.to_bytes(4, "big"), db=self._segments) is not None for i in range(info.segment_count)
            )
            self._put_info(txn, BlobInfo(root, info.size, info.segment_roots, complete, int(self.clock())))
            return complete

    def missing_segments(self, root: bytes) -> list[int]:
        with self.env.begin() as txn:
            info = self._info(txn, root)
            if info is None:
                return []
            return [
                i for i in range(info.segment_count) if txn.get(root + i.to_bytes(4, "big"), db=self._segments) is None
            ]

    def delete(self, root: bytes, unused_before: float | None = None) -> int:
        """Remove a blob (complete or not); returns the bytes freed. With `unused_before`, only
        if it was not written since then (checked in the same transaction as the delete, so a
        blob uploaded again meanwhile survives a collection that chose it earlier)."""
        with self.env.begin(write=True) as txn:
            info = self._info(txn, root)
            if info is None or (unused_before is not None and info.last_used >= unused_before):
                return 0
            freed = self._held_bytes(txn, root, info)
            for index in range(info.segment_count):
                txn.delete(root + index.to_bytes(4, "big"), db=self._segments)
            txn.delete(root, db=self._blobs)
            self._add_stored(txn, -freed)
            return freed

    def collect_garbage(self, needed: Callable[[bytes], bool], grace_seconds: float) -> int:
        """Delete blobs that `needed(root)` says nothing references and that were not used for
        `grace_seconds` (an upload lands before its registration does). Returns bytes freed."""
        cutoff = self.clock() - grace_seconds
        doomed = [info.root for info in self.roots() if info.last_used < cutoff and not needed(info.root)]
        return sum(self.delete(root, unused_before=cutoff) for root in doomed)

    # -- internals ------------------------------------------------------------------------------

    def _info(self, txn: lmdb.Transaction, root: bytes) -> BlobInfo | None:
        raw = txn.get(root, db=self._blobs)
        return None if raw is None else _decode_info(root, bytes(raw))

    def _put_info(self, txn: lmdb.Transaction, info: BlobInfo) -> None:
        txn.put(info.root, encode([info.size, list(info.segment_roots), info.complete, info.last_used]), db=self._blobs)

    def _held_bytes(self, txn: lmdb.Transaction, root: bytes, info: BlobInfo | None) -> int:
        if info is None:
            return 0
        return sum(
            info.segment_size(i)
            for i in range(info.segment_count)
            if txn.get(root + i.to_bytes(4, "big"), db=self._segments) is not None
        )

    def _charge(self, txn: lmdb.Transaction, extra: int) -> None:
        raw = txn.get(b"stored", db=self._meta)
        stored = 0 if raw is None else int.from_bytes(raw, "big")
        if extra > 0 and stored + extra > self.quota_bytes:
            raise QuotaExceeded(
                f"the blob store is full: {stored + extra:,} bytes would exceed the quota of {self.quota_bytes:,}"
            )
        txn.put(b"stored", max(0, stored + extra).to_bytes(8, "big"), db=self._meta)

    def _add_stored(self, txn: lmdb.Transaction, delta: int) -> None:
        raw = txn.get(b"stored", db=self._meta)
        stored = 0 if raw is None else int.from_bytes(raw, "big")
        txn.put(b"stored", max(0, stored + delta).to_bytes(8, "big"), db=self._meta)


def _decode_info(root: bytes, raw: bytes) -> BlobInfo:
    size, segment_roots, complete, last_used = decode(raw)
    return BlobInfo(root, size, tuple(segment_roots), bool(complete), last_used)
