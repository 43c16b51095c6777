"""Exact Hamming-radius search over 64-bit pHashes (multi-index hashing).

Why: the ownership rule (white paper 2.1.2.3) asks, for every upload, "is a registered image
within radius r?" over millions of hashes. A linear popcount scan costs ~1 ms per million;
multi-index hashing answers in tens of microseconds and is still exact.

Method (Norouzi et al., multi-index hashing): split each hash into four 16-bit chunks and keep,
per chunk, the entries grouped by chunk value (a counting-sorted CSR table). By the pigeonhole
principle, two hashes within distance r agree within ``s = r // 4`` bits on at least one chunk,
so probing every chunk value within distance s of the query's chunk (sum_{k<=s} C(16, k) keys per
chunk) finds every candidate; each candidate's full distance is then checked. A candidate found
through chunk t is reported only if no earlier chunk also qualifies it, so nothing is reported
twice. Radii above 15 fall back to the vectorised linear scan.

Inserts go to a small unindexed tail that is scanned linearly; once the tail outgrows
``max(4096, n/8)`` the tables are rebuilt in O(n) (amortised O(1) per insert).
"""

from __future__ import annotations

from itertools import combinations

import numpy as np
from numba import njit

CHUNKS = 4
CHUNK_BITS = 16
MAX_INDEXED_RADIUS = CHUNKS * 4 - 1  # s = r // 4 <= 3 keeps the probe count at <= 697 per chunk

_M1 = np.uint64(0x5555555555555555)
_M2 = np.uint64(0x3333333333333333)
_M4 = np.uint64(0x0F0F0F0F0F0F0F0F)
_H01 = np.uint64(0x0101010101010101)
_U1 = np.uint64(1)
_U2 = np.uint64(2)
_U4 = np.uint64(4)
_U56 = np.uint64(56)


def _chunk_masks(s: int) -> np.ndarray:
    """All 16-bit XOR masks with at most s bits set, fewest bits first."""
    out = [0]
    for k in range(1, s + 1):
        for bits in combinations(range(CHUNK_BITS), k):
            out.append(sum(1 << b for b in bits))
    return np.array(out, dtype=np.int64)


_MASKS = [_chunk_masks(s) for s in range(4)]


@njit(cache=True, nogil=True, inline="always")
def _popcount(x):  # pragma: no cover - compiled
    x = x - ((x >> _U1) & _M1)
    x = (x & _M2) + ((x >> _U2) & _M2)
    x = (x + (x >> _U4)) & _M4
    return np.int64((x * _H01) >> _U56)


@njit(cache=True, nogil=True)
def _chunk(h, c):  # pragma: no cover - compiled
    return np.int64((h >> np.uint64(16 * c)) & np.uint64(0xFFFF))


@njit(cache=True, nogil=True)
def _build_kernel(hashes, n):  # pragma: no cover - compiled
    """Counting sort of the first n hashes by each 16-bit chunk: CSR starts and sorted copies."""
    starts = np.zeros((4, 65537), dtype=np.int64)
    pos = np.empty((4, n), dtype=np.int32)
    sorted_h = np.empty((4, n), dtype=np.uint64)
    for c in range(4):
        for i in range(n):
            starts[c, _chunk(hashes[i], c) + 1] += 1
        for k in range(65536):
            starts[c, k + 1] += starts[c, k]
        fill = starts[c, :65536].copy()
        for i in range(n):
            k = _chunk(hashes[i], c)
            j = fill[k]
            fill[k] = j + 1
            pos[c, j] = i
            sorted_h[c, j] = hashes[i]
    return starts, pos, sorted_h


@njit(cache=True, nogil=True)
def _mih_kernel(q, r, s, masks, starts, pos, sorted_h, out_pos, out_dist):  # pragma: no cover
    qc = np.empty(4, dtype=np.int64)
    for c in range(4):
        qc[c] = _chunk(q, c)
    found = 0
    for c in range(4):
        for m in range(masks.shape[0]):
            key = qc[c] ^ masks[m]
            for j in range(starts[c, key], starts[c, key + 1]):
                h = sorted_h[c, j]
                x = h ^ q
                d = _popcount(x)
                if d > r:
                    continue
                dup = False
                for c2 in range(c):
                    if _popcount((x >> np.uint64(16 * c2)) & np.uint64(0xFFFF)) <= s:
                        dup = True
                        break
                if dup:
                    continue
                if found == out_pos.shape[0]:
                    return -1
                out_pos[found] = pos[c, j]
                out_dist[found] = d
                found += 1
    return found


@njit(cache=True, nogil=True)
def _scan_kernel(hashes, lo, hi, q, r, out_pos, out_dist, found):  # pragma: no cover
    for i in range(lo, hi):
        d = _popcount(hashes[i] ^ q)
        if d <= r:
            if found == out_pos.shape[0]:
                return -1
            out_pos[found] = i
            out_dist[found] = d
            found += 1
    return found


def search_ref(ids: np.ndarray, hashes: np.ndarray, h: int, radius: int) -> list[tuple[int, int]]:
    """Reference linear scan with numpy's popcount: [(id, distance)] sorted by (distance, id)."""
    d = np.bitwise_count(np.asarray(hashes, dtype=np.uint64) ^ np.uint64(h)).astype(np.int64)
    sel = np.nonzero(d <= radius)[0]
    order = np.lexsort((np.asarray(ids)[sel], d[sel]))
    return [(int(ids[sel[i]]), int(d[sel[i]])) for i in order]


class HammingIndex:
    """Incremental, exact Hamming-radius index over (id, 64-bit hash) pairs."""

    def __init__(self, capacity: int = 1024) -> None:
        self._ids = np.empty(capacity, dtype=np.int64)
        self._hashes = np.empty(capacity, dtype=np.uint64)
        self._n = 0
        self._built = 0
        self._starts = np.zeros((4, 65537), dtype=np.int64)
        self._pos = np.empty((4, 0), dtype=np.int32)
        self._sorted = np.empty((4, 0), dtype=np.uint64)
        self._buf_pos = np.empty(4096, dtype=np.int64)
        self._buf_dist = np.empty(4096, dtype=np.int64)

    def __len__(self) -> int:
        return self._n

    def _reserve(self, extra: int) -> None:
        need = self._n + extra
        if need > self._ids.shape[0]:
            cap = max(need, 2 * self._ids.shape[0])
            self._ids = np.resize(self._ids, cap)
            self._hashes = np.resize(self._hashes, cap)

    def add(self, id: int, h: int) -> None:  # noqa: A002 - the chain's name for it
        """Insert one entry (duplicates allowed; each is reported)."""
        if not 0 <= h < 1 << 64:
            raise ValueError("hash must be an unsigned 64-bit integer")
        self._reserve(1)
        self._ids[self._n] = id
        self._hashes[self._n] = np.uint64(h)
        self._n += 1
        self._maybe_rebuild()

    def add_many(self, ids: np.ndarray, hashes: np.ndarray) -> None:
        """Bulk insert (same result as repeated :meth:`add`)."""
        ids = np.asarray(ids, dtype=np.int64)
        hashes = np.asarray(hashes, dtype=np.uint64)
        assert ids.shape == hashes.shape and ids.ndim == 1
        self._reserve(ids.shape[0])
        self._ids[self._n : self._n + ids.shape[0]] = ids
        self._hashes[self._n : self._n + ids.shape[0]] = hashes
        self._n += ids.shape[0]
        self._maybe_rebuild()

    def _maybe_rebuild(self) -> None:
        if self._n - self._built > max(4096, self._built // 8):
            self.rebuild()

    def rebuild(self) -> None:
        """Index every entry (O(n) counting sort per chunk)."""
        self._starts, self._pos, self._sorted = _build_kernel(self._hashes, self._n)
        self._built = self._n

    def _run(self, fn) -> int:
        while True:
            found = fn(self._buf_pos, self._buf_dist)
            if found >= 0:
                return found
            self._buf_pos = np.empty(2 * self._buf_pos.shape[0], dtype=np.int64)
            self._buf_dist = np.empty(2 * self._buf_dist.shape[0], dtype=np.int64)

    def search(self, h: int, radius: int) -> list[tuple[int, int]]:
        """Every (id, distance) with distance <= radius, sorted by (distance, id)."""
        if radius < 0 or self._n == 0:
            return []
        q = np.uint64(h)
        r = int(min(radius, 64))
        if r <= MAX_INDEXED_RADIUS:
            s = r // CHUNKS
            masks = _MASKS[s]

            def go(bp: np.ndarray, bd: np.ndarray) -> int:
                f = _mih_kernel(q, r, s, masks, self._starts, self._pos, self._sorted, bp, bd)
                if f < 0:
                    return f
                return _scan_kernel(self._hashes, self._built, self._n, q, r, bp, bd, f)

        else:

            def go(bp: np.ndarray, bd: np.ndarray) -> int:
                return _scan_kernel(self._hashes, 0, self._n, q, r, bp, bd, 0)

        found = self._run(go)
        pos = self._buf_pos[:found]
        dist = self._buf_dist[:found]
        ids = self._ids[pos]
        order = np.lexsort((ids, dist))
        return [(int(ids[i]), int(dist[i])) for i in order]

    def scan(self, h: int, radius: int) -> list[tuple[int, int]]:
        """Same answer as :meth:`search` by the numpy reference scan (for tests and benches)."""
        return search_ref(self._ids[: self._n], self._hashes[: self._n], h, radius)
