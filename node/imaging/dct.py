"""Integer DCT-II tables and transforms.

Validators recompute the pHash and extract the watermark inside block validation, so the
transforms they run must give the same integers on every machine. The DCT here is a matrix
product with fixed-point cosine tables held as integer literals (orthonormal DCT-II basis scaled
by 2**DCT_SHIFT and rounded half up; ``tests/imaging/test_dct.py`` regenerates them with 50-digit
mpmath), so every product and sum is exact int64 arithmetic and no libm ``cos`` is consulted.

Embedding (done once by the uploader, never validated) uses the float orthonormal DCT.
"""

from __future__ import annotations

import numpy as np
from numba import njit

DCT_SHIFT = 12
# Block coefficients are returned in units of 1/2**COEFF_FRAC_BITS of the orthonormal DCT.
COEFF_FRAC_BITS = 4
_BLOCK_SHIFT = 2 * DCT_SHIFT - COEFF_FRAC_BITS

# fmt: off
C8_Q12: tuple[tuple[int, ...], ...] = (
    (1448, 1448, 1448, 1448, 1448, 1448, 1448, 1448),
    (2009, 1703, 1138, 400, -400, -1138, -1703, -2009),
    (1892, 784, -784, -1892, -1892, -784, 784, 1892),
    (1703, -400, -2009, -1138, 1138, 2009, 400, -1703),
    (1448, -1448, -1448, 1448, 1448, -1448, -1448, 1448),
    (1138, -2009, 400, 1703, -1703, -400, 2009, -1138),
    (784, -1892, 1892, -784, -784, 1892, -1892, 784),
    (400, -1138, 1703, -2009, 2009, -1703, 1138, -400),
)

C32_Q12: tuple[tuple[int, ...], ...] = (
    (
        724, 724, 724, 724, 724, 724, 724, 724, 724, 724, 724, 724, 724, 724, 724, 724,
        724, 724, 724, 724, 724, 724, 724, 724, 724, 724, 724, 724, 724, 724, 724, 724,
    ),
    (
        1023, 1013, 993, 964, 926, 878, 822, 759, 688, 610, 526, 438, 345, 249, 150, 50,
        -50, -150, -249, -345, -438, -526, -610, -688, -759, -822, -878, -926, -964, -993, -1013, -1023,
    ),
    (
        1019, 980, 903, 792, 650, 483, 297, 100, -100, -297, -483, -650, -792, -903, -980, -1019,
        -1019, -980, -903, -792, -650, -483, -297, -100, 100, 297, 483, 650, 792, 903, 980, 1019,
    ),
    (
        1013, 926, 759, 526, 249, -50, -345, -610, -822, -964, -1023, -993, -878, -688, -438, -150,
        150, 438, 688, 878, 993, 1023, 964, 822, 610, 345, 50, -249, -526, -759, -926, -1013,
    ),
    (
        1004, 851, 569, 200, -200, -569, -851, -1004, -1004, -851, -569, -200, 200, 569, 851, 1004,
        1004, 851, 569, 200, -200, -569, -851, -1004, -1004, -851, -569, -200, 200, 569, 851, 1004,
    ),
    (
        993, 759, 345, -150, -610, -926, -1023, -878, -526, -50, 438, 822, 1013, 964, 688, 249,
        -249, -688, -964, -1013, -822, -438, 50, 526, 878, 1023, 926, 610, 150, -345, -759, -993,
    ),
    (
        980, 650, 100, -483, -903, -1019, -792, -297, 297, 792, 1019, 903, 483, -100, -650, -980,
        -980, -650, -100, 483, 903, 1019, 792, 297, -297, -792, -1019, -903, -483, 100, 650, 980,
    ),
    (
        964, 526, -150, -759, -1023, -822, -249, 438, 926, 993, 610, -50, -688, -1013, -878, -345,
        345, 878, 1013, 688, 50, -610, -993, -926, -438, 249, 822, 1023, 759, 150, -526, -964,
    ),
)
# fmt: on


C8 = np.array(C8_Q12, dtype=np.int64)
C32 = np.array(C32_Q12, dtype=np.int64)


def dct_low_32(x32: np.ndarray) -> np.ndarray:
    """The 8x8 lowest-frequency DCT-II coefficients of a 32x32 block, exact, scaled by 2**24.

    No rounding shift: the pHash only compares coefficients with each other, so the full
    int64 value (at most 32*32*255*2**24 < 2**43) is kept and nothing can round differently.
    """
    x = np.asarray(x32, dtype=np.int64)
    assert x.shape == (32, 32)
    return C32 @ x @ C32.T


def block_dct_ref(img: np.ndarray, us: np.ndarray, vs: np.ndarray) -> np.ndarray:
    """Selected coefficients (u, v) of every 8x8 block, row-major block order (numpy reference).

    Returns int64 (n_blocks, n_positions) in units of 2**-COEFF_FRAC_BITS, rounded half up by an
    arithmetic shift (floor), which numpy and numba both implement exactly.
    """
    h, w = img.shape
    blocks = (
        np.asarray(img, dtype=np.int64).reshape(h // 8, 8, w // 8, 8).transpose(0, 2, 1, 3).reshape(-1, 8, 8)
    )
    full = C8 @ blocks @ C8.T
    sel = full[:, np.asarray(us), np.asarray(vs)]
    return (sel + (1 << (_BLOCK_SHIFT - 1))) >> _BLOCK_SHIFT


@njit(cache=True, nogil=True)
def _block_dct_kernel(img, c8, us, vs, shift):  # pragma: no cover - compiled
    h, w = img.shape
    nbx = w // 8
    nblocks = (h // 8) * nbx
    npos = us.shape[0]
    out = np.empty((nblocks, npos), dtype=np.int64)
    umax = 0
    for p in range(npos):
        umax = max(umax, us[p])
    rowt = np.empty((8, 8), dtype=np.int64)
    half = np.int64(1) << (shift - 1)
    for b in range(nblocks):
        by = (b // nbx) * 8
        bx = (b % nbx) * 8
        # rowt[u, x] = sum_y C[u, y] * img[by + y, bx + x]
        for u in range(umax + 1):
            for x in range(8):
                acc = np.int64(0)
                for y in range(8):
                    acc += c8[u, y] * np.int64(img[by + y, bx + x])
                rowt[u, x] = acc
        for p in range(npos):
            u = us[p]
            v = vs[p]
            acc = np.int64(0)
            for x in range(8):
                acc += rowt[u, x] * c8[v, x]
            out[b, p] = (acc + half) >> shift
    return out


def block_dct(img: np.ndarray, us: np.ndarray, vs: np.ndarray) -> np.ndarray:
    """Fast path of :func:`block_dct_ref` (numba); identical integers by construction and test."""
    return _block_dct_kernel(
        np.ascontiguousarray(img, dtype=np.uint8),
        C8,
        np.asarray(us, dtype=np.int64),
        np.asarray(vs, dtype=np.int64),
        _BLOCK_SHIFT,
    )


def dct_matrix(n: int) -> np.ndarray:
    """Float orthonormal DCT-II matrix, for the (unvalidated) embedding side only."""
    k = np.arange(n)[:, None]
    x = np.arange(n)[None, :]
    m = np.cos((2 * x + 1) * k * np.pi / (2 * n)) * np.sqrt(2.0 / n)
    m[0] /= np.sqrt(2.0)
    return m


D8 = dct_matrix(8)


def block_idct_float(coeffs: np.ndarray, h: int, w: int) -> np.ndarray:
    """Inverse of the 8x8 block DCT: (n_blocks, 8, 8) float coefficients -> (h, w) image."""
    pix = D8.T @ coeffs @ D8
    return pix.reshape(h // 8, w // 8, 8, 8).transpose(0, 2, 1, 3).reshape(h, w)
