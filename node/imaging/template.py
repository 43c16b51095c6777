"""The keyed synchronisation template: a faint constellation of sinusoids in the rendition.

The payload lives in 8x8 blocks of the 256x256 verification rendition, so it only decodes when
the copy's rendition lines up with the original's to a fraction of a pixel. A crop or a
rotation breaks that, and the payload itself cannot tell how: its block structure is invisible
in the spectrum (measured: marked and unmarked renditions have the same block periodicity).

So the embedder also adds TEMPLATE_PEAKS sinusoids ``a * cos(2*pi*(fx*x + fy*y)/256 + phase)``
to the rendition (before the payload's informed embedding, which then cancels whatever they
add to the payload's coefficients). Their integer frequencies (fx, fy) are keyed, spread in
angle and kept off the axes (where the edges of crops, black rotation corners and man-made
structures put their energy), in a band high enough that the host's 1/f spectrum is weak
(measured: detection SNR per unit of distortion still rises up to ~110 cycles) yet below
Nyquist for copies up to ``sync.SCALE_MIN`` times smaller. Under any affine map of the image the peaks move
by the inverse transpose of its linear part, and their phases shift by the translation, which
:mod:`.sync` reads off to re-align the copy.

How strong: the detector whitens the spectrum, so what matters is each peak's amplitude over
the host's spectral background there, which varies ~3x between photos. The amplitude is set
per image so that the predicted whitened template energy reaches TEMPLATE_TARGET (clipped to
[TEMPLATE_MIN, TEMPLATE_MAX]): a smooth photo gets a faint template, a busy one a stronger one.
And where: SSIM is hurt by added variance in flat windows (roughly ``var_t / (2 var_x + C2)``),
so the template is modulated by local activity, ``((2 var + C2) / (2 median + C2)) ** 1/2``
normalised to mean 1 (the peaks keep their height; measured on the busiest photo at the same
detection score: SSIM 0.9791 -> 0.9823).

Key derivation uses BLAKE2b only (no floating-point random generator whose stream could
change between library versions), so an image marked today can be re-synchronised anywhere.
"""

from __future__ import annotations

import hashlib
import math

import numpy as np
from scipy.ndimage import uniform_filter

from .rendition import RENDITION_SIZE

TEMPLATE_PEAKS = 12
# Radius band of the peaks, in cycles per rendition width (Nyquist = 128).
TEMPLATE_R_LO = 88.0
TEMPLATE_R_HI = 112.0
# No peak within this many degrees of an axis.
TEMPLATE_AXIS_GUARD = 10.0
# Per-image amplitude of each sinusoid (grey levels of the rendition change, before masking):
# enough for a predicted whitened template energy (sum over the peaks of the squared
# peak-to-background ratio) of TEMPLATE_TARGET, within [TEMPLATE_MIN, TEMPLATE_MAX]. The cap is
# what the busiest bench photo affords at PSNR >= 40.5 dB (astronaut: 40.66 dB, and its 25%
# crops still rank the true geometry first on 12 offsets of 12).
TEMPLATE_TARGET = 330.0
TEMPLATE_MIN = 0.2
TEMPLATE_MAX = 0.5
# Fraction of a rendition-domain sinusoid in this band that reaches the rendition of the marked
# image after bilinear upsampling, rounding and area downsampling (measured 0.45-0.55).
TEMPLATE_TRANSFER = 0.5
MASK_WINDOW = 5
MASK_LO = 0.4
MASK_HI = 2.5
_SSIM_C2 = (0.03 * 255) ** 2
TAPER = RENDITION_SIZE // 16
BACKGROUND = 9

_PERSON = b"imagechain-sync1"


def _unit_floats(key: bytes, i: int) -> tuple[float, float, float]:
    """Three keyed numbers in [0, 1) for peak i."""
    d = hashlib.blake2b(key + i.to_bytes(2, "big"), digest_size=24, person=_PERSON).digest()
    u = [int.from_bytes(d[8 * j : 8 * j + 8], "big") / 2.0**64 for j in range(3)]
    return u[0], u[1], u[2]


def template_peaks(key: bytes) -> tuple[np.ndarray, np.ndarray]:
    """The keyed peaks: integer frequencies (M, 2) as (fx, fy) with fy > 0, and phases (M,).

    Half of the peaks lie in each quadrant of the upper half plane (angles in (0, 90) and
    (90, 180) degrees), evenly spaced with a keyed jitter, so every direction constrains the
    affine estimate; radii are keyed within the band.
    """
    m = TEMPLATE_PEAKS
    per = m // 2
    span = 90.0 - 2 * TEMPLATE_AXIS_GUARD
    freqs: list[tuple[int, int]] = []
    phases: list[float] = []
    i = 0
    attempt = 0
    while len(freqs) < m:
        u_ang, u_rad, u_ph = _unit_floats(key, attempt)
        attempt += 1
        slot = i % per
        quadrant = i // per
        ang = TEMPLATE_AXIS_GUARD + span * (slot + 0.15 + 0.7 * u_ang) / per + 90.0 * quadrant
        rad = TEMPLATE_R_LO + (TEMPLATE_R_HI - TEMPLATE_R_LO) * u_rad
        fx = int(round(rad * math.cos(math.radians(ang))))
        fy = int(round(rad * math.sin(math.radians(ang))))
        if (fx, fy) in freqs or fy <= 0:
            continue
        freqs.append((fx, fy))
        phases.append(2.0 * math.pi * u_ph)
        i += 1
    return np.array(freqs, dtype=np.float64), np.array(phases, dtype=np.float64)


def analysis_window() -> np.ndarray:
    """Separable Tukey window (cosine tapers of TAPER pixels) for the template's spectrum.

    A narrow taper keeps most of the rendition (a Hann window costs ~2 dB of template SNR)
    while still suppressing the leakage of the host's strong low frequencies from the borders.
    """
    n = RENDITION_SIZE
    t = np.ones(n)
    ramp = 0.5 - 0.5 * np.cos(np.pi * (np.arange(TAPER) + 0.5) / TAPER)
    t[:TAPER] = ramp
    t[-TAPER:] = ramp[::-1]
    return np.outer(t, t)


def template_amplitude(r256: np.ndarray, key: bytes) -> float:
    """The per-image amplitude from the host's spectral background at the template's peaks."""
    w = analysis_window()
    r = np.asarray(r256, dtype=np.float64)
    mag = np.abs(np.fft.rfft2((r - r.mean()) * w))
    bg = uniform_filter(mag, BACKGROUND, mode=("wrap", "mirror"))
    f, _ = template_peaks(key)
    fi = f.astype(np.int64)
    background = bg[fi[:, 1] % RENDITION_SIZE, fi[:, 0]] + 1.0  # a flat image has none
    gain = TEMPLATE_TRANSFER * w.sum() / 2 / background  # whitened peak height per unit amplitude
    a = np.sqrt(TEMPLATE_TARGET / np.sum(gain * gain))
    return float(np.clip(a, TEMPLATE_MIN, TEMPLATE_MAX))


def activity_mask(r256: np.ndarray) -> np.ndarray:
    """Local modulation of the template (mean 1): stronger where the host is busy."""
    r = np.asarray(r256, dtype=np.float64)
    m1 = uniform_filter(r, MASK_WINDOW, mode="reflect")
    var = np.maximum(uniform_filter(r * r, MASK_WINDOW, mode="reflect") - m1 * m1, 0.0)
    m = np.sqrt((2 * var + _SSIM_C2) / (2 * np.median(var) + _SSIM_C2))
    m = np.clip(m, MASK_LO, MASK_HI)
    return m / m.mean()


def template_delta(r256: np.ndarray, key: bytes) -> np.ndarray:
    """The rendition-domain change the embedder applies for a host with rendition r256."""
    return template_image(key, template_amplitude(r256, key)) * activity_mask(r256)


def template_image(key: bytes, amplitude: float = 1.0) -> np.ndarray:
    """The template as a 256x256 float rendition-domain change (pixel index coordinates)."""
    f, ph = template_peaks(key)
    n = RENDITION_SIZE
    idx = np.arange(n, dtype=np.float64)
    # sum_i cos(2 pi (fx_i x + fy_i y) / n + phase_i) = Re sum_i e^{i(2 pi fy_i y / n + phase_i)} e^{2 pi i fx_i x / n}
    ex = np.exp(2j * np.pi * np.outer(f[:, 0], idx) / n)
    ey = np.exp(1j * (2 * np.pi * np.outer(f[:, 1], idx) / n + ph[:, None]))
    return amplitude * np.real(ey.T @ ex)
