"""The on-chain pHash index: exact Hamming-radius search from state alone (multi-index hashing)."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from node.runtime import copyright
from node.runtime.overlay import Overlay
from node.runtime.support import BlockContext


def context(state: dict[bytes, bytes]) -> BlockContext:
    return BlockContext(
        state=Overlay(state.get), number=1, parent_hash=b"\x00" * 32, slot=0, author=b"", params=None
    )


def indexed(entries: list[tuple[int, int]]) -> dict[bytes, bytes]:
    """A state holding the index of (id, pHash) entries (as `register` builds it)."""
    ctx = context({})
    for registration_id, phash in entries:
        copyright._index_phash(ctx, phash, registration_id)
    return {k: v for k, v in ctx.state.changes().items() if v is not None}


def brute_force(entries: list[tuple[int, int]], query: int, radius: int) -> list[tuple[int, int]]:
    best: dict[int, int] = {}
    for registration_id, phash in entries:
        d = (phash ^ query).bit_count()
        if d <= radius:
            best[registration_id] = min(d, best.get(registration_id, 65))
    return sorted(best.items(), key=lambda item: (item[1], item[0]))


def flip(h: int, bits: list[int]) -> int:
    for b in bits:
        h ^= 1 << b
    return h


def test_chunks_cover_the_hash_exactly():
    covered = 0
    for shift, bits in copyright.PHASH_CHUNKS:
        mask = ((1 << bits) - 1) << shift
        assert covered & mask == 0
        covered |= mask
    assert covered == (1 << 64) - 1
    assert copyright._flip_masks(13, 1) == (0, *(1 << b for b in range(13)))


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.integers(0, 2**64 - 1), min_size=1, max_size=40),
    st.randoms(use_true_random=False),
    st.integers(0, copyright.MAX_SEARCH_RADIUS),
)
def test_search_equals_brute_force(bases, rnd, radius):
    # Plant neighbours at every distance up to 20 bits so each radius has hits and near misses.
    entries = []
    for i, base in enumerate(bases):
        entries.append((i + 1, base))
        for j in range(3):
            entries.append((100 + 3 * i + j, flip(base, rnd.sample(range(64), rnd.randint(0, 20)))))
    state = indexed(entries)
    for query in (bases[0], flip(bases[-1], rnd.sample(range(64), rnd.randint(0, 10))), rnd.getrandbits(64)):
        assert copyright.search_similar(state.get, query, radius) == brute_force(entries, query, radius)


def test_every_distance_up_to_the_radius_is_found_whatever_the_bits():
    """Adversarial: all flipped bits packed into as few chunks as possible."""
    rnd = random.Random(5)
    base = rnd.getrandbits(64)
    entries = [(1, base)]
    for radius in range(copyright.MAX_SEARCH_RADIUS + 1):
        state = indexed(entries)
        for start in range(0, 64 - radius + 1, 3):
            query = flip(base, list(range(start, start + radius)))  # contiguous: concentrated in 1-2 chunks
            assert copyright.search_similar(state.get, query, radius) == [(1, radius)]
            if radius:
                assert copyright.search_similar(state.get, query, radius - 1) == []


def test_buckets_page_and_keep_every_entry():
    # 600 hashes sharing every chunk value but the last: one bucket per chunk overflows 2 pages.
    base = 0xFFFF_0000_AAAA_5000
    entries = [(i + 1, base | i) for i in range(600)]
    state = indexed(entries)
    head = state[copyright.PHASH_PAGE_COUNT.key((0, base >> 51))]
    assert int.from_bytes(head, "big") == 3
    assert (
        len(state[copyright.PHASH_PAGES.key((0, base >> 51, 0))])
        == copyright.PAGE_ENTRIES * copyright.ENTRY_BYTES
    )
    for query, radius in ((base, 0), (base | 7, 3), (base | 0x3FF, 8)):
        assert copyright.search_similar(state.get, query, radius) == brute_force(entries, query, radius)


def test_one_registration_is_reported_once_at_its_nearest_version():
    base = 0x0123_4567_89AB_CDEF
    entries = [(1, base), (1, flip(base, [0, 1, 2])), (2, flip(base, [5]))]
    state = indexed(entries)
    assert copyright.search_similar(state.get, flip(base, [0, 1]), 8) == [(1, 1), (2, 3)]


def test_search_refuses_out_of_range_queries():
    with pytest.raises(ValueError):
        copyright.search_similar({}.get, 0, copyright.MAX_SEARCH_RADIUS + 1)
    with pytest.raises(ValueError):
        copyright.search_similar({}.get, 2**64, 4)
    assert copyright.search_similar({}.get, 0, 8) == []


def test_reads_per_search_at_the_dev_radius():
    """Radius 8 -> s = 1 flipped bit per chunk: 4 * 14 + 13 = 69 bucket heads, whatever the state."""
    reads: list[bytes] = []

    def get(key: bytes) -> bytes | None:
        reads.append(key)
        return None

    copyright.search_similar(get, 0x5555_5555_5555_5555, 8)
    assert len(reads) == 69
    reads.clear()
    copyright.search_similar(get, 0, 10)  # s = 2
    assert len(reads) == 4 * (1 + 13 + 78) + (1 + 12 + 66)
