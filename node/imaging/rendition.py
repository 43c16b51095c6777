"""Canonical luma and the verification rendition.

A registration carries the watermarked image's *verification rendition*: a 256x256 grey
thumbnail from which every validator recomputes the pHash and extracts the watermark. It is
defined with integer arithmetic only, so every machine derives the same bytes:

1. Luma, per pixel: ``Y = (77*R + 150*G + 29*B + 128) >> 8`` (BT.601 weights in 1/256,
   rounded half up; 77+150+29 = 256 so Y stays in 0..255). A 2-D uint8 input is taken as luma.
2. Area resize to 256x256, exact. Along an axis of n source pixels, output pixel i covers the
   source interval [i*n/256, (i+1)*n/256). In units of 1/256 of a source pixel, source pixel j
   covers [256*j, 256*(j+1)) and output i covers [n*i, n*(i+1)); their overlap
   ``w(i, j) = max(0, min(n*(i+1), 256*(j+1)) - max(n*i, 256*j))`` is an integer and the weights
   of one output sum to n. With weights wy (rows, sum H) and wx (columns, sum W):
   ``R[i, k] = floor((sum_j sum_l wy(i, j) * wx(k, l) * Y[j, l] + floor(H*W/2)) / (H*W))``,
   i.e. the exact mean over the covered area, rounded half up. Works for up- and down-scaling
   and any aspect ratio (the rendition is not aspect-preserving on purpose: it normalises the
   watermark domain). A 256x256 grey input is its own rendition.

The numba kernel and the numpy reference compute the same integers (exact int64; the largest
intermediate is 255*H*W, so images up to 3.5e13 pixels keep every value below 2**53).
"""

from __future__ import annotations

import numpy as np
from numba import njit

RENDITION_SIZE = 256

LUMA_R = 77
LUMA_G = 150
LUMA_B = 29


def luma_ref(img: np.ndarray) -> np.ndarray:
    """Canonical integer luma (uint8) of an RGB (or RGBA, alpha ignored) or grey uint8 image."""
    a = np.asarray(img)
    if a.dtype != np.uint8:
        raise TypeError(f"expected uint8 image, got {a.dtype}")
    if a.ndim == 2:
        return a
    if a.ndim != 3 or a.shape[2] not in (3, 4):
        raise ValueError(f"expected (H, W, 3) or (H, W) image, got shape {a.shape}")
    r = a[..., 0].astype(np.int32)
    g = a[..., 1].astype(np.int32)
    b = a[..., 2].astype(np.int32)
    return ((LUMA_R * r + LUMA_G * g + LUMA_B * b + 128) >> 8).astype(np.uint8)


def _area_axis_ref(a: np.ndarray, m: int) -> np.ndarray:
    """Weighted sums along axis 0 with the overlap weights w(i, j) above (sums scaled by n)."""
    n = a.shape[0]
    padded = np.concatenate([a, np.zeros((1,) + a.shape[1:], dtype=np.int64)], axis=0)
    prefix = np.concatenate([np.zeros((1,) + a.shape[1:], dtype=np.int64), np.cumsum(a, axis=0)])
    # F(t) = m * prefix[t // m] + (t % m) * a[t // m]: the integral of the step function up to t.
    t = np.arange(m + 1, dtype=np.int64) * n
    q, r = t // m, t % m
    f = m * prefix[q] + r.reshape((-1,) + (1,) * (a.ndim - 1)) * padded[q]
    return f[1:] - f[:-1]


def area_resize_ref(y: np.ndarray, size: int = RENDITION_SIZE) -> np.ndarray:
    """Exact integer area resize of a 2-D uint8 array to (size, size) (numpy reference)."""
    h, w = y.shape
    a = np.asarray(y, dtype=np.int64)
    rows = _area_axis_ref(a, size)  # (size, w), each scaled by h
    both = _area_axis_ref(rows.T, size).T  # (size, size), scaled by h*w
    den = np.int64(h) * np.int64(w)
    return ((both + den // 2) // den).astype(np.uint8)


def verification_rendition_ref(rgb: np.ndarray) -> np.ndarray:
    """Numpy reference of :func:`verification_rendition`."""
    return area_resize_ref(luma_ref(rgb))


@njit(cache=True, nogil=True)
def _spans(n, m):  # pragma: no cover - compiled
    """First and last source index covered by each of the m outputs of an n-pixel axis."""
    lo = np.empty(m, dtype=np.int64)
    hi = np.empty(m, dtype=np.int64)
    for i in range(m):
        lo[i] = (i * n) // m
        hi[i] = ((i + 1) * n - 1) // m
    return lo, hi


@njit(cache=True, nogil=True)
def _rendition_kernel(img, m):  # pragma: no cover - compiled
    h = img.shape[0]
    w = img.shape[1]
    grey = img.shape[2] == 1
    xlo, xhi = _spans(w, m)
    ylo, yhi = _spans(h, m)
    rows = np.zeros((h, m), dtype=np.int64)
    line = np.empty(w, dtype=np.int64)
    prefix = np.zeros(w + 1, dtype=np.int64)
    for y in range(h):
        if grey:
            for x in range(w):
                line[x] = np.int64(img[y, x, 0])
        else:
            for x in range(w):
                r = np.int64(img[y, x, 0])
                g = np.int64(img[y, x, 1])
                b = np.int64(img[y, x, 2])
                line[x] = (77 * r + 150 * g + 29 * b + 128) >> 8
        for x in range(w):
            prefix[x + 1] = prefix[x] + line[x]
        # Output i covers [i*w, (i+1)*w) in units of 1/m pixel: a partial first pixel, whole
        # pixels (weight m each, summed through the prefix) and a partial last pixel.
        for i in range(m):
            a0 = i * w
            a1 = a0 + w
            lo = xlo[i]
            hi = xhi[i]
            if lo == hi:
                rows[y, i] = w * line[lo]
            else:
                rows[y, i] = (
                    ((lo + 1) * m - a0) * line[lo]
                    + m * (prefix[hi] - prefix[lo + 1])
                    + (a1 - hi * m) * line[hi]
                )
    out = np.empty((m, m), dtype=np.uint8)
    den = np.int64(h) * np.int64(w)
    half = den // 2
    inv_den = 1.0 / np.float64(den)
    col = np.empty(m, dtype=np.int64)
    for i in range(m):
        for k in range(m):
            col[k] = 0
        a0 = i * h
        a1 = a0 + h
        for j in range(ylo[i], yhi[i] + 1):
            wt = min(a1, (j + 1) * m) - max(a0, j * m)
            for k in range(m):
                col[k] += wt * rows[j, k]
        for k in range(m):
            # floor((col + half) / den) exactly, without m*m slow int64 divisions: the float
            # quotient is within 1e-13 of the true one (the numerator, < 2**53, converts
            # exactly; the quotient is at most 255.5), so truncating it is off by at most one,
            # which the integer comparisons put right. Branch-free, so it vectorises.
            num = col[k] + half
            q = np.int64(np.float64(num) * inv_den)
            q += np.int64((q + 1) * den <= num) - np.int64(q * den > num)
            out[i, k] = q
    return out


def verification_rendition(rgb: np.ndarray) -> np.ndarray:
    """The 256x256 uint8 canonical grey rendition (module docstring has the exact rule)."""
    a = np.asarray(rgb)
    if a.dtype != np.uint8:
        raise TypeError(f"expected uint8 image, got {a.dtype}")
    if a.ndim == 3 and a.shape[2] == 4:
        a = a[..., :3]
    if not (a.ndim == 2 or (a.ndim == 3 and a.shape[2] == 3)):
        raise ValueError(f"expected (H, W, 3) or (H, W) image, got shape {a.shape}")
    if a.shape[0] < 1 or a.shape[1] < 1:
        raise ValueError("empty image")
    if a.ndim == 2 and a.shape == (RENDITION_SIZE, RENDITION_SIZE):
        return np.array(a, copy=True)
    if a.ndim == 2:
        a = a[:, :, None]
    return _rendition_kernel(np.ascontiguousarray(a), RENDITION_SIZE)
