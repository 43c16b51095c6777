"""The keyed synchronisation template: a faint constellation of sinusoids in the rendition.

The payload lives in 8x8 blocks of the 256x256 verification rendition, so it only decodes when
the copy's rendition lines up with the original's to a fraction of a pixel. A crop or a
rotation breaks that, and the payload itself cannot tell how: its block structure is invisible
in the spectrum (measured: marked and unmarked renditions have the same block periodicity).

So the embedder also adds TEMPLATE_PEAKS sinusoids ``a * cos(2*pi*(fx*x + fy*y)/256 + phase)``
to the rendition (before the payload's informed embedding, which then cancels whatever they
add to the payload's coefficients). Their integer frequencies (fx, fy) are keyed, spread in
angle and kept off the axes (where the edges of crops, black rotation corners and man-made
structures put their energy), in a band high enough that the host's 1/f spectrum is weak yet
low enough to survive the bilinear upsampling to the full image and JPEG. Under any affine map
of the image the peaks move by the inverse transpose of its linear part, and their phases
shift by the translation, which :mod:`.sync` reads off to re-align the copy.

Key derivation uses BLAKE2b only (no floating-point random generator whose stream could
change between library versions), so an image marked today can be re-synchronised anywhere.
"""

from __future__ import annotations

import hashlib
import math

import numpy as np

from .rendition import RENDITION_SIZE

TEMPLATE_PEAKS = 12
# Radius band of the peaks, in cycles per rendition width (Nyquist = 128).
TEMPLATE_R_LO = 80.0
TEMPLATE_R_HI = 100.0
# No peak within this many degrees of an axis.
TEMPLATE_AXIS_GUARD = 10.0
# Amplitude of each sinusoid in grey levels of the rendition.
TEMPLATE_AMPLITUDE = 0.35

_PERSON = b"imagechain-sync1"


def _unit_floats(key: bytes, i: int) -> tuple[float, float, float]:
    """Three keyed numbers in [0, 1) for peak i."""
    d = hashlib.blake2b(key + i.to_bytes(2, "big"), digest_size=24, person=_PERSON).digest()
    return tuple(int.from_bytes(d[8 * j : 8 * j + 8], "big") / 2.0**64 for j in range(3))  # type: ignore[return-value]


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


def template_image(key: bytes, amplitude: float = TEMPLATE_AMPLITUDE) -> np.ndarray:
    """The template as a 256x256 float rendition-domain change (pixel index coordinates)."""
    f, ph = template_peaks(key)
    n = RENDITION_SIZE
    idx = np.arange(n, dtype=np.float64)
    out = np.zeros((n, n), dtype=np.float64)
    for (fx, fy), p in zip(f, ph):
        out += np.cos(2.0 * np.pi * (fx * idx[None, :] + fy * idx[:, None]) / n + p)
    return amplitude * out
