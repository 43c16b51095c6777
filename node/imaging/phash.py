"""Perceptual hash (white paper 2.1.2, PROTOCOL section 10).

The six steps, made bit-exact:

1-2. shrink to 32x32 grey: the canonical reduction is the verification rendition (integer luma,
     exact area resize to 256x256) followed by the exact 8x8 block mean
     ``r32[i, j] = (sum of the 8x8 block + 32) >> 6``. Going through the rendition means the hash a
     registrant claims is exactly the hash every validator recomputes from the on-chain rendition.
3-4. 2-D DCT-II of the 32x32 image, keep the 8x8 lowest frequencies: integer matrix products
     with the fixed-point cosine table of :mod:`node.imaging.dct` (exact int64, no rounding).
5.   threshold at the **median** of the 64 coefficients (PROTOCOL's correction of the mean):
     with the two middle values a <= b of the sorted coefficients, bit = ``2*c > a + b``.
6.   64 bits, row-major over (u, v), the first coefficient (DC, u = v = 0) in the most
     significant bit. Compare by Hamming distance.
"""

from __future__ import annotations

import numpy as np

from .dct import dct_low_32
from .rendition import RENDITION_SIZE, verification_rendition

_WEIGHTS = (np.uint64(1) << np.arange(63, -1, -1, dtype=np.uint64)).astype(np.uint64)


def reduce32(r256: np.ndarray) -> np.ndarray:
    """Exact 8x8 block mean of the 256x256 rendition, rounded half up (uint8 32x32)."""
    r = np.asarray(r256, dtype=np.int64)
    assert r.shape == (RENDITION_SIZE, RENDITION_SIZE)
    s = r.reshape(32, 8, 32, 8).sum(axis=(1, 3))
    return ((s + 32) >> 6).astype(np.uint8)


def phash_bits(r256: np.ndarray) -> np.ndarray:
    """The 64 hash bits (bool, row-major over the 8x8 low frequencies)."""
    c = dct_low_32(reduce32(r256)).ravel()
    s = np.sort(c)
    return 2 * c > s[31] + s[32]


def low_frequency_energy(r256: np.ndarray) -> int:
    """How much the pHash has to say: the sum of |AC| over its 8x8 lowest frequencies (exact int).

    A flat image (even a watermarked one: the mark lives at higher frequencies) has none, and
    its 64 bits are then set by rounding alone: every flat image would "match" every other.
    """
    c = dct_low_32(reduce32(r256)).ravel().astype(np.int64)
    return int(np.abs(c[1:]).sum())


def phash_from_rendition(r256: np.ndarray) -> int:
    """pHash of a 256x256 verification rendition: what validators recompute."""
    bits = phash_bits(r256)
    return int(np.bitwise_or.reduce(np.where(bits, _WEIGHTS, np.uint64(0))))


def phash(img: np.ndarray) -> int:
    """pHash of any uint8 RGB or grey image, via its verification rendition."""
    return phash_from_rendition(verification_rendition(img))


def hamming(a: int, b: int) -> int:
    """Hamming distance between two 64-bit hashes."""
    return (a ^ b).bit_count()
