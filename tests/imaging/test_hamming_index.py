import numpy as np

from node.imaging.hamming_index import HammingIndex, search_ref


def _near(rng, h: int, k: int) -> int:
    for b in rng.choice(64, k, replace=False):
        h ^= 1 << int(b)
    return h


def test_exact_against_linear_scan():
    rng = np.random.default_rng(0)
    n = 30_000
    hashes = rng.integers(0, 2**63, n, dtype=np.uint64) * np.uint64(2) + rng.integers(
        0, 2, n, dtype=np.uint64
    )
    # plant clusters of near-duplicates so every radius has answers
    for i in range(0, 3000, 3):
        hashes[i + 1] = np.uint64(_near(rng, int(hashes[i]), int(rng.integers(0, 12))))
        hashes[i + 2] = np.uint64(_near(rng, int(hashes[i]), int(rng.integers(0, 20))))
    ids = rng.permutation(n) + 1000
    idx = HammingIndex()
    idx.add_many(ids[:20_000], hashes[:20_000])
    for i in range(20_000, n):  # incremental inserts, some indexed by rebuilds, some in the tail
        idx.add(int(ids[i]), int(hashes[i]))
    assert len(idx) == n
    for _ in range(60):
        q = _near(rng, int(hashes[rng.integers(0, 3000)]), int(rng.integers(0, 10)))
        for r in (0, 1, 3, 4, 8, 12, 15, 16, 20):
            got = idx.search(q, r)
            assert got == search_ref(ids, hashes, q, r)
            assert got == sorted(got, key=lambda x: (x[1], x[0]))


def test_small_cases():
    idx = HammingIndex()
    assert idx.search(0, 10) == [] and len(idx) == 0
    idx.add(5, 0)
    idx.add(3, 0)  # duplicate hash
    idx.add(7, (1 << 64) - 1)
    idx.add(1, 0b111)
    assert idx.search(0, 0) == [(3, 0), (5, 0)]
    assert idx.search(0, 3) == [(3, 0), (5, 0), (1, 3)]
    assert idx.search((1 << 64) - 1, 64) == [(7, 0), (1, 61), (3, 64), (5, 64)]
    assert idx.search(0, -1) == []
