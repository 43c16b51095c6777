"""Geometric resynchronisation for copies found in the wild (not used by validators).

The payload sits in 8x8 blocks of the 256x256 verification rendition and only decodes when the
copy's rendition lines up with the original's to ~0.15 pixel. A blind crop changes the scale of
the rendition (the visible window is stretched to 256x256) and its offset; a rotation turns it.
Both are undone here with the keyed template of :mod:`.template`:

1. **Spectrum.** The copy's rendition, Tukey-windowed (narrow taper: a Hann window costs ~2 dB
   of template SNR) and zero-padded 2x, is Fourier transformed; each magnitude is divided by
   its local mean, which whitens the host's 1/f spectrum.
2. **Search.** With (w, h) the copy's size, (sx, sy) how many times larger the original was
   along each axis and theta the rotation, the original rendition maps to the copy's by the
   linear part ``A = diag(1/w, 1/h) R(theta) diag(sx*w, sy*h)`` and every template peak f moves
   to ``A^-T f``. The whitened energy at the moved peaks is summed over a coarse grid (on a
   blurred map, so off-grid peaks still count), the best local maxima are refined on the exact
   map, and each peak is then located to a fraction of a bin by evaluating the DFT around it;
   a weighted least-squares fit of the three parameters to those positions gives ~0.1% scale.
3. **Translation.** With A known, each peak's phase gives the translation modulo its period; the
   coherent sum over all peaks, evaluated on a half-pixel grid (one complex matrix product)
   over the offsets a crop, a border or a small rotation allow, and refined by Newton steps,
   gives it absolutely. Its sidelobes come within ~10% of the main lobe, so the best few
   maxima are kept as candidates.
4. **Decode.** The full-resolution copy is resampled into the original rendition's frame: exact
   area means from its summed-area table, not a resampling of the small rendition, which loses
   the mark's mid-frequencies (the old rotation search did that: 62% after a 2 degree rotation).
   Blocks not fully inside the copy are masked out. After a crop the embedder's cancellation of
   host interference no longer holds (it was made for whole units), so each block's
   coefficients are divided by their RMS before the signed sums: quiet blocks, where the mark
   dominates, weigh more. A list Viterbi decoder then offers its LIST_SIZE best paths to the
   same keyed check as the validators' path.

False acceptance: each decode attempt tests LIST_SIZE paths, 2**-32 each; an extract makes at
most MAX_CANDIDATES + TRANSLATIONS - 1 attempts (5 x 16 = 80 paths, ~1.9e-8 per extract, on top
of the validators' path's 2**-32). Not validated by consensus: floats, numpy and scipy are fine.

Limit, measured: a 25% crop keeps ~56% of every coded bit's slots and the host interference
in them is no longer cancelled, so what decodes depends on how the embedder spread the mark:
with the masking of :func:`.watermark.block_weights` at power 0.3, 47 of 48 blind 25% crops
decode (8 bench photos x 6 offsets; 36 of 48 at power 1.0, which piled the mark into busy
blocks). Scale, rotation and offset are found on all of them.
"""

from __future__ import annotations

from collections.abc import Iterator
from itertools import islice

import numpy as np
from numba import njit
from scipy.ndimage import gaussian_filter, maximum_filter, uniform_filter

from .chaos import layout, scramble_bits
from .dct import D8
from .ecc import CODED_BITS, INFO_BITS, list_viterbi, unpack
from .rendition import LUMA_B, LUMA_G, LUMA_R, RENDITION_SIZE, verification_rendition
from .template import analysis_window, template_peaks
from .verify import N_SLOTS, US, VS

N = RENDITION_SIZE
PAD = 2  # zero-padding factor of the search spectrum (half-bin resolution)
BACKGROUND = 17  # local-mean window (in half bins) that whitens the spectrum

# Search range: the original was SCALE_MIN..SCALE_MAX times the copy's size along each axis
# (a crop keeping 75% of the width is 1.33; a copy with a small border added is < 1) and rotated
# by at most MAX_ANGLE degrees. Larger crops are not searched: the payload itself does not
# survive them (a 25% crop is already at the limit of what the code corrects), and a smaller
# search space has fewer false maxima and costs less (the coarse grid is most of the search).
SCALE_MIN = 0.9
SCALE_MAX = 1.6
MAX_ANGLE = 5.0
COARSE_LOG_STEP = 0.01
COARSE_ANGLE_STEP = 0.5
COARSE_BLUR = 1.5
FINE_LOG_STEP = 0.002
FINE_ANGLE_STEP = 0.1
CANDIDATES = 6  # coarse local maxima refined
MAX_CANDIDATES = 3  # geometries decoded, best search score first
LIST_SIZE = 16  # Viterbi paths tested against the keyed check per attempt


# ---------------------------------------------------------------- geometry


def linear_part(sx: float, sy: float, theta: float, w: int, h: int) -> np.ndarray:
    """A: original rendition coordinates -> copy rendition coordinates (continuous)."""
    c, s = np.cos(theta), np.sin(theta)
    return np.array([[c * sx, -s * sy * h / w], [s * sx * w / h, c * sy]])


def moved_peaks(a: np.ndarray, f: np.ndarray) -> np.ndarray:
    """Where the template frequencies f (rows fx, fy) appear in the copy: A^-T f."""
    return f @ np.linalg.inv(a)


# ---------------------------------------------------------------- spectrum and search


_WINDOW = analysis_window()


def whitened_power(rw: np.ndarray, pad: int, background: int) -> np.ndarray:
    """Squared magnitude of the pad-times zero-padded half spectrum over its local mean.

    Real input: only kx >= 0 is kept (rfft); lookups mirror (kx, ky) -> (-kx, -ky).
    """
    mag = np.abs(np.fft.rfft2(rw, s=(pad * N, pad * N)))
    bg = uniform_filter(mag, background, mode=("wrap", "mirror"))
    z = mag / (bg + 1e-9)
    return (z * z).astype(np.float32)


@njit(cache=True, nogil=True)
def _grid_scores(power, pad, f, log_sx, log_sy, thetas, aspect):  # pragma: no cover - compiled
    """Sum of power at the moved peaks for every (theta, sx, sy) on the grid (half spectrum).

    With c, s = cos, sin(theta), ``A^-T = [[c/sx, -s*aspect/sy], [s/(aspect*sx), c/sy]]``: the
    moved peak is linear in 1/sx and 1/sy.
    """
    n = power.shape[0]
    width = power.shape[1]
    m = f.shape[0]
    out = np.zeros((thetas.shape[0], log_sx.shape[0], log_sy.shape[0]))
    px = np.exp(-log_sx) * pad
    py = np.exp(-log_sy) * pad
    ax = np.empty(m)
    ay = np.empty(m)
    bx = np.empty(m)
    by = np.empty(m)
    for it in range(thetas.shape[0]):
        c = np.cos(thetas[it])
        s = np.sin(thetas[it])
        for k in range(m):
            ax[k] = c * f[k, 0]
            ay[k] = s * f[k, 0] / aspect
            bx[k] = -s * aspect * f[k, 1]
            by[k] = c * f[k, 1]
        for ix in range(log_sx.shape[0]):
            p = px[ix]
            for iy in range(log_sy.shape[0]):
                q = py[iy]
                acc = 0.0
                for k in range(m):
                    kx = int(np.floor(ax[k] * p + bx[k] * q + 0.5))
                    ky = int(np.floor(ay[k] * p + by[k] * q + 0.5))
                    if kx < 0:
                        kx = -kx
                        ky = -ky
                    if kx < width:
                        acc += power[ky % n, kx]
                out[it, ix, iy] = acc
    return out


def _local_maxima(scores: np.ndarray, k: int) -> list[tuple[int, int, int]]:
    """The k best grid points that are not within 2 steps of a better one."""
    flat = scores.ravel()
    top = np.argpartition(flat, -64 * k)[-64 * k :]
    top = top[np.argsort(flat[top])[::-1]]
    chosen: list[tuple[int, int, int]] = []
    for i in top:
        p = np.unravel_index(int(i), scores.shape)
        if all(max(abs(p[d] - q[d]) for d in range(3)) > 2 for q in chosen):
            chosen.append(tuple(int(v) for v in p))
            if len(chosen) == k:
                break
    return chosen


def search(rw: np.ndarray, f: np.ndarray, w: int, h: int) -> list[tuple[float, float, float, float]]:
    """Candidate (score, log sx, log sy, theta), best first: coarse grid then local refinement.

    The coarse grid (1% in scale, 0.5 degree) runs on a blurred 1x spectrum, so that a peak
    between grid points still counts; the refinement on the 2x spectrum, unblurred.
    """
    aspect = w / h
    log_s = np.arange(np.log(SCALE_MIN), np.log(SCALE_MAX) + 1e-9, COARSE_LOG_STEP)
    thetas = np.deg2rad(np.arange(-MAX_ANGLE, MAX_ANGLE + 1e-9, COARSE_ANGLE_STEP))
    blurred = gaussian_filter(whitened_power(rw, 1, BACKGROUND // PAD), COARSE_BLUR / PAD, mode="wrap")
    coarse = _grid_scores(blurred, 1, f, log_s, log_s, thetas, aspect)
    power = whitened_power(rw, PAD, BACKGROUND)
    out = []
    half = COARSE_LOG_STEP
    fine = np.arange(-half, half + 1e-9, FINE_LOG_STEP)
    fine_t = np.deg2rad(np.arange(-COARSE_ANGLE_STEP, COARSE_ANGLE_STEP + 1e-9, FINE_ANGLE_STEP))
    for it, ix, iy in _local_maxima(coarse, CANDIDATES):
        lx, ly, t = log_s[ix] + fine, log_s[iy] + fine, thetas[it] + fine_t
        sc = _grid_scores(power, PAD, f, lx, ly, t, aspect)
        jt, jx, jy = np.unravel_index(int(np.argmax(sc)), sc.shape)
        out.append((float(sc[jt, jx, jy]), float(lx[jx]), float(ly[jy]), float(t[jt])))
    out.sort(reverse=True)
    return out


# ---------------------------------------------------------------- sub-bin refinement


def dft_at(rw: np.ndarray, g: np.ndarray) -> np.ndarray:
    """The DFT of rw at arbitrary (non-integer) frequencies g (rows gx, gy), cycles per N."""
    idx = np.arange(N)
    ex = np.exp(-2j * np.pi * np.outer(g[:, 0], idx) / N)
    return np.sum(_row_dft(rw, g[:, 1]) * ex, axis=1)


def _row_dft(rw: np.ndarray, gy: np.ndarray) -> np.ndarray:
    """sum_y rw[y, :] * exp(-2 pi i gy y / N) for each gy, as two real matrix products."""
    ang = 2 * np.pi * np.outer(gy, np.arange(N)) / N
    return np.cos(ang) @ rw - 1j * (np.sin(ang) @ rw)


REFINE_OFFSET = 0.3  # bins: spacing of the 3x3 DFT probe around each peak


def peak_positions(rw: np.ndarray, g: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each peak's sub-bin position (parabolic fit of |X|^2 on a 3x3 probe) and its energy."""
    d = REFINE_OFFSET
    steps = np.array([-d, 0.0, d])
    idx = np.arange(N)
    gy = (g[:, 1, None] + steps[None, :]).ravel()  # (3M,)
    gx = g[:, 0, None] + steps[None, :]  # (M, 3)
    rows = _row_dft(rw, gy).reshape(-1, 3, N)  # sum over y
    ex = np.exp(-2j * np.pi * gx[:, :, None] * idx[None, None, :] / N)  # (M, 3, N)
    e = np.abs(np.einsum("myn,mxn->myx", rows, ex)) ** 2  # [peak, dy, dx]
    pos = g.copy()
    for axis, col in ((2, 0), (1, 1)):
        lo = np.take(e, 0, axis=axis).mean(axis=1)
        mid = np.take(e, 1, axis=axis).mean(axis=1)
        hi = np.take(e, 2, axis=axis).mean(axis=1)
        curv = lo - 2 * mid + hi
        step = np.where(curv < 0, 0.5 * (lo - hi) / np.where(curv < 0, curv, -1.0), 0.0)
        pos[:, col] += d * np.clip(step, -1.0, 1.0)
    return pos, e[:, 1, 1]


def fit_parameters(
    f: np.ndarray, pos: np.ndarray, weight: np.ndarray, start: tuple[float, float, float], w: int, h: int
) -> tuple[float, float, float]:
    """Weighted least squares of (log sx, log sy, theta) to the measured peak positions."""
    p = np.array(start, dtype=np.float64)
    if not (np.all(np.isfinite(weight)) and weight.max() > 0.0):
        return float(p[0]), float(p[1]), float(p[2])  # no peak measured: nothing to fit
    sw = np.sqrt(weight / weight.max())
    for _ in range(4):
        base = moved_peaks(linear_part(np.exp(p[0]), np.exp(p[1]), p[2], w, h), f)
        jac = np.empty((f.shape[0] * 2, 3))
        for j in range(3):
            q = p.copy()
            q[j] += 1e-5
            moved = moved_peaks(linear_part(np.exp(q[0]), np.exp(q[1]), q[2], w, h), f)
            jac[:, j] = ((moved - base) / 1e-5).ravel()
        res = (pos - base).ravel()
        ww = np.repeat(sw, 2)
        delta, *_ = np.linalg.lstsq(jac * ww[:, None], res * ww, rcond=None)
        p += delta
        if np.max(np.abs(delta)) < 1e-6:
            break
    return float(p[0]), float(p[1]), float(p[2])


# ---------------------------------------------------------------- translation


TRANSLATION_STEP = 0.5
# Slack (rendition pixels) around the offsets a crop, a border or a <= 5 degree rotation allow.
TRANSLATION_MARGIN = 8.0
# The coherent sum of 12 peaks in one band has sidelobes within ~10% of its main lobe over a
# large search range, and noise sometimes promotes one (measured: 1 crop in 64 landed 27 pixels
# off). Up to TRANSLATIONS local maxima within TRANSLATION_RATIO of the best are returned and
# the keyed check decides.
TRANSLATIONS = 3
TRANSLATION_RATIO = 0.9


def translation_range(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Offsets b for which, per axis, the copy lies inside the original or the original inside
    the copy (a crop or a border), widened by TRANSLATION_MARGIN (rotated corners)."""
    corners = a @ np.array([[0, N, 0, N], [0, 0, N, N]], dtype=np.float64)
    ends = np.stack([N - corners.max(axis=1), -corners.min(axis=1)])
    return ends.min(axis=0) - TRANSLATION_MARGIN, ends.max(axis=0) + TRANSLATION_MARGIN


def translations(rw: np.ndarray, a: np.ndarray, f: np.ndarray, phases: np.ndarray) -> list[np.ndarray]:
    """Candidate offsets b of ``copy = A @ original + b`` (continuous rendition coordinates).

    The template's phase at moved peak g is ``phase + 2*pi*(g.(1/2 - b) - f/2)/N``, so
    ``J(b) = Re sum_i X_i conj(expected_i(0)) exp(2*pi*i g_i.b/N)`` peaks at the true b. J is
    evaluated on a half-pixel grid over :func:`translation_range` as one complex matrix product;
    its best local maxima are refined by Newton steps.
    """
    g = moved_peaks(a, f)
    x = dft_at(rw, g)
    c = x * np.exp(-1j * (phases + 2 * np.pi * ((g - f) @ np.full(2, 0.5)) / N))
    lo, hi = translation_range(a)
    bx = np.arange(lo[0], hi[0] + TRANSLATION_STEP, TRANSLATION_STEP)
    by = np.arange(lo[1], hi[1] + TRANSLATION_STEP, TRANSLATION_STEP)
    ex = np.exp(2j * np.pi * np.outer(bx, g[:, 0]) / N)  # (nx, M)
    ey = np.exp(2j * np.pi * np.outer(g[:, 1], by) / N)  # (M, ny)
    j = np.real((ex * c[None, :]) @ ey)  # (nx, ny)
    peaks = np.argwhere(j == maximum_filter(j, size=5, mode="nearest"))
    values = j[peaks[:, 0], peaks[:, 1]]
    order = np.argsort(values)[::-1][:TRANSLATIONS]
    out = []
    for ix, iy in peaks[order[values[order] >= TRANSLATION_RATIO * values[order[0]]]]:
        b = np.array([bx[ix], by[iy]])
        for _ in range(3):  # sub-pixel: Newton steps on the smooth coherent sum
            ph = c * np.exp(2j * np.pi * (g @ b) / N)
            k = 2 * np.pi * g / N
            grad = -(np.imag(ph)[:, None] * k).sum(axis=0)
            hess = -(np.real(ph)[:, None, None] * k[:, :, None] * k[:, None, :]).sum(axis=0)
            try:
                step = np.linalg.solve(hess, -grad)
            except np.linalg.LinAlgError:
                break
            if np.max(np.abs(step)) > TRANSLATION_STEP:
                break
            b = b + step
        out.append(b)
    return out


# ---------------------------------------------------------------- re-alignment and decoding


@njit(cache=True, nogil=True)
def _integral_kernel(img, sat):  # pragma: no cover - compiled
    """Summed-area table of the canonical luma into sat (zeroed): sat[y, x] = sum of luma[:y, :x]."""
    h, w, ch = img.shape
    for y in range(h):
        row = 0
        for x in range(w):
            if ch == 1:
                v = np.int64(img[y, x, 0])
            else:
                v = (
                    LUMA_R * np.int64(img[y, x, 0])
                    + LUMA_G * np.int64(img[y, x, 1])
                    + LUMA_B * np.int64(img[y, x, 2])
                    + 128
                ) >> 8
            row += v
            sat[y + 1, x + 1] = sat[y, x + 1] + row


@njit(cache=True, nogil=True, inline="always")
def _integral_at(sat, x, y):  # pragma: no cover - compiled
    """Integral of the piecewise-constant image over [0, x] x [0, y]: bilinear in the table."""
    h = sat.shape[0] - 1
    w = sat.shape[1] - 1
    x = min(max(x, 0.0), np.float64(w))
    y = min(max(y, 0.0), np.float64(h))
    x0 = min(int(x), w - 1)
    y0 = min(int(y), h - 1)
    fx = x - x0
    fy = y - y0
    top = np.float64(sat[y0, x0]) * (1.0 - fx) + np.float64(sat[y0, x0 + 1]) * fx
    bot = np.float64(sat[y0 + 1, x0]) * (1.0 - fx) + np.float64(sat[y0 + 1, x0 + 1]) * fx
    return top * (1.0 - fy) + bot * fy


@njit(cache=True, nogil=True)
def _realign_kernel(sat, m, b, n):  # pragma: no cover - compiled
    """Mean luma over each original rendition cell mapped into the copy by ``m @ u + b``.

    Each cell becomes the axis-aligned box of the same centre and of size (m00, m11) copy
    pixels, whose mean the summed-area table gives exactly: exact for crops and rescales, within
    a fraction of a pixel at the edges for the few-degree rotations searched. (Taking the table
    at the rotated corners instead is wrong: the row strips between them do not cancel.)
    ``valid`` is False where the box leaves the copy.
    """
    h = sat.shape[0] - 1
    w = sat.shape[1] - 1
    out = np.empty((n, n))
    valid = np.ones((n, n), dtype=np.bool_)
    hx = 0.5 * abs(m[0, 0])
    hy = 0.5 * abs(m[1, 1])
    area = 4.0 * hx * hy
    tol = 1e-6
    for i in range(n):
        for k in range(n):
            cx = m[0, 0] * (k + 0.5) + m[0, 1] * (i + 0.5) + b[0]
            cy = m[1, 0] * (k + 0.5) + m[1, 1] * (i + 0.5) + b[1]
            x0 = cx - hx
            x1 = cx + hx
            y0 = cy - hy
            y1 = cy + hy
            if x0 < -tol or y0 < -tol or x1 > w + tol or y1 > h + tol:
                valid[i, k] = False
            s = (
                _integral_at(sat, x1, y1)
                - _integral_at(sat, x0, y1)
                - _integral_at(sat, x1, y0)
                + _integral_at(sat, x0, y0)
            )
            out[i, k] = s / area
    return out, valid


def integral_image(img: np.ndarray) -> np.ndarray:
    """Summed-area table of the copy's canonical luma, (h + 1) x (w + 1) integers.

    int32 when 255 * h * w fits (up to ~8.4 megapixels), int64 beyond: exact either way, and
    half the memory of a float table (8 MB for a 1920x1080 copy).
    """
    arr = np.asarray(img)
    arr3 = arr[:, :, None] if arr.ndim == 2 else arr[:, :, :3]
    h, w = arr3.shape[:2]
    dtype = np.int32 if 255 * h * w < 2**31 else np.int64
    sat = np.zeros((h + 1, w + 1), dtype=dtype)
    _integral_kernel(np.ascontiguousarray(arr3), sat)
    return sat


def realign(sat: np.ndarray, a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The original's rendition frame resampled from the full-resolution copy, and its validity.

    Sampling the full-resolution copy (its summed-area table ``sat``, not its small rendition)
    keeps the mark's mid-frequencies: the re-aligned cells are area means like the original's.
    """
    h, w = sat.shape[0] - 1, sat.shape[1] - 1
    dc = np.diag([w / N, h / N])
    return _realign_kernel(sat, dc @ a, dc @ b, N)


VARIANCE_FLOOR = 1.0  # grey levels^2: keeps flat blocks from dividing by ~0
NEIGHBOUR_SHARE = 0.5  # weight of the 3x3 neighbourhood in a block's variance estimate


def aligned_soft(
    r: np.ndarray,
    valid: np.ndarray,
    key: bytes,
    keyed: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
) -> np.ndarray:
    """Descrambled float soft values of the coded bits from a re-aligned rendition.

    Every slot coefficient is divided by its block's RMS (own 15 coefficients, half-blended
    with the valid 3x3 neighbours for a steadier estimate) before the signed sums. Measured on
    25% crops with perfect alignment: 14/24 decodes with plain sums, 16/24 with this weighting
    (24 = 8 photos x 3 crop offsets).
    """
    nb = N // 8
    bvalid = valid.reshape(nb, 8, nb, 8).all(axis=(1, 3))
    blocks = r.reshape(nb, 8, nb, 8).transpose(0, 2, 1, 3).reshape(-1, 8, 8)
    c = (D8 @ blocks @ D8.T)[:, US, VS]
    var = (c * c).mean(axis=1).reshape(nb, nb)
    count = uniform_filter(bvalid.astype(np.float64), 3, mode="constant")
    around = uniform_filter(np.where(bvalid, var, 0.0), 3, mode="constant") / np.maximum(count, 1e-9)
    var = (1 - NEIGHBOUR_SHARE) * var + NEIGHBOUR_SHARE * around
    z = c / np.sqrt(var.ravel() + VARIANCE_FLOOR)[:, None] * bvalid.ravel()[:, None]
    unit, sign, scramble = keyed_layout(key) if keyed is None else keyed
    soft = np.bincount(unit, weights=sign * z.ravel(), minlength=CODED_BITS)
    return np.where(scramble == 1, -soft, soft)


def keyed_layout(key: bytes) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The key's slot units, slot signs and coded-bit scrambling (computed once per extract)."""
    unit, sign = layout(key, N_SLOTS, CODED_BITS)
    return unit, sign, scramble_bits(key, CODED_BITS)


def decode_aligned(
    r: np.ndarray,
    valid: np.ndarray,
    key: bytes,
    keyed: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
) -> bytes | None:
    """The payload of a re-aligned rendition, or None.

    The LIST_SIZE best Viterbi paths are tested against the keyed check (16 -> 18 of the 24
    perfect-alignment 25% crops above, no further gain up to 64 paths; each path adds 2**-32
    to the false-acceptance chance).
    """
    if not valid.any():
        return None
    for bits in list_viterbi(aligned_soft(r, valid, key, keyed), INFO_BITS, LIST_SIZE):
        payload = unpack(bits, key)
        if payload is not None:
            return payload
    return None


# ---------------------------------------------------------------- entry point


def estimate_geometries(
    img: np.ndarray, key: bytes, r256: np.ndarray | None = None
) -> Iterator[tuple[np.ndarray, list[np.ndarray], float]]:
    """Candidate (A, offsets b, search score) mappings original rendition -> copy rendition.

    Best search score first; lazy: each candidate is refined and its offsets found only when
    asked for. ``r256`` is the copy's rendition if already computed.
    """
    a_img = np.asarray(img)
    h, w = a_img.shape[:2]
    r = (verification_rendition(a_img) if r256 is None else np.asarray(r256)).astype(np.float64)
    if np.ptp(r) == 0:
        return  # a flat rendition (a 1x1 copy, a blank page) has no spectrum to search
    rw = (r - r.mean()) * _WINDOW
    f, phases = template_peaks(key)
    for score, lx, ly, t in search(rw, f, w, h):
        a = linear_part(np.exp(lx), np.exp(ly), t, w, h)
        pos, energy = peak_positions(rw, moved_peaks(a, f))
        lx, ly, t = fit_parameters(f, pos, energy, (lx, ly, t), w, h)
        a = linear_part(np.exp(lx), np.exp(ly), t, w, h)
        yield a, translations(rw, a, f, phases), score


def _payloads_with_sync(img: np.ndarray, key: bytes, r256: np.ndarray | None = None) -> Iterator[bytes]:
    """Payloads decoded at the candidate geometries, best search score first (one per geometry).

    The best geometry's offsets are all tried (see TRANSLATIONS), the next ones' best offset
    only: the true geometry has ranked first in every measured case, and each attempt costs
    ~5 ms and LIST_SIZE * 2**-32 of false acceptance.
    """
    sat = integral_image(img)
    keyed = keyed_layout(key)
    for rank, (a, offsets, _) in enumerate(islice(estimate_geometries(img, key, r256), MAX_CANDIDATES)):
        for b in offsets if rank == 0 else offsets[:1]:
            payload = decode_aligned(*realign(sat, a, b), key, keyed)
            if payload is not None:
                yield payload
                break


def extract_with_sync(img: np.ndarray, key: bytes, r256: np.ndarray | None = None) -> bytes | None:
    """Find the template, re-align the copy and decode; the payload or None."""
    return next(_payloads_with_sync(img, key, r256), None)


def extract_all_with_sync(img: np.ndarray, key: bytes, r256: np.ndarray | None = None) -> list[bytes]:
    """Every distinct payload the candidate geometries decode, best search score first.

    A copy can carry more than one mark: one cropped from a marked image and marked again (for
    another registration) keeps the first template and payload at the old geometry, which the
    search finds as its second candidate (measured: after a 10% crop and a new mark, the first
    payload decodes on 8 of 8 bench photos; after a 25% crop on 6 of 8). Same attempts, and so
    the same false-acceptance bound, as :func:`extract_with_sync`.
    """
    found: list[bytes] = []
    for payload in _payloads_with_sync(img, key, r256):
        if payload not in found:
            found.append(payload)
    return found
