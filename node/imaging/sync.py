"""Geometric resynchronisation for copies found in the wild (not used by validators).

A small rotation moves the 8x8 block grid of the rendition by several pixels at the corners, so
the payload no longer decodes. The copy's rendition is rotated back by each candidate angle
(small angles first) and decoded; the keyed check bits accept only the right one (each extra
candidate adds 2**-32 to the false-acceptance probability). Rotation about the image centre in
pixel space becomes the affine map ``S R(angle) S^-1`` in the rendition, with S the rendition's
per-axis scale, so non-square images are handled exactly.

Not covered yet: blind crops (unknown scale and offset need a keyed pilot/template search).
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from .rendition import RENDITION_SIZE, verification_rendition
from .watermark import extract_from_rendition

MAX_ANGLE = 3.0
ANGLE_STEP = 0.25


def candidate_angles() -> list[float]:
    """Search order: +-ANGLE_STEP, +-2*ANGLE_STEP, ... up to MAX_ANGLE degrees."""
    n = int(round(MAX_ANGLE / ANGLE_STEP))
    return [s * k * ANGLE_STEP for k in range(1, n + 1) for s in (1, -1)]


def unrotate(r256: np.ndarray, angle: float, height: int, width: int) -> np.ndarray:
    """The rendition of the image before a rotation by ``angle`` degrees (counter-clockwise)."""
    t = np.deg2rad(angle)
    sx, sy = RENDITION_SIZE / width, RENDITION_SIZE / height
    # PIL's rotate(angle) maps output pixel (x, y) to input (cx + c*dx - s*dy, cy + s*dx + c*dy)
    # with y downwards; to undo it, sample the rotated copy at the forward-rotated position.
    c, s = np.cos(t), np.sin(t)
    m = np.array([[c, s], [-s, c]])
    a = np.diag([sx, sy]) @ m @ np.diag([1 / sx, 1 / sy])
    ctr = RENDITION_SIZE / 2
    off = np.array([ctr, ctr]) - a @ np.array([ctr, ctr])
    # rendition pixel centres sit at integer + 0.5
    coeffs = (a[0, 0], a[0, 1], off[0], a[1, 0], a[1, 1], off[1])
    im = Image.fromarray(np.asarray(r256, dtype=np.float32), mode="F")
    out = im.transform((RENDITION_SIZE, RENDITION_SIZE), Image.AFFINE, coeffs, resample=Image.BICUBIC)
    return np.clip(np.asarray(out) + 0.5, 0, 255).astype(np.uint8)


def extract_with_sync(img: np.ndarray, key: bytes) -> bytes | None:
    """Try small rotations of the copy's rendition; the payload or None."""
    a = np.asarray(img)
    r = verification_rendition(a)
    h, w = a.shape[:2]
    for angle in candidate_angles():
        payload = extract_from_rendition(unrotate(r, angle, h, w), key)
        if payload is not None:
            return payload
    return None
