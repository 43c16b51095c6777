"""The white paper's logo mode: a small grey-level image hidden under a private key (2.1.3).

As in the paper, the logo's pixels are expanded bitwise (most significant bit first), the bit
stream is XOR-scrambled by chaos sequence X, and sequence Y places each bit in mid-frequency
DCT coefficients of 8x8 blocks; extraction is blind and gives back a visible image. It reuses
the payload watermark's machinery (resolution-normalised domain, informed embedding), without
error correction: a wrong bit is a visible speck, not a wrong registration.

Why only the top bit planes: every embedded bit costs host-interference cancellation, so the
budget is MAX_LOGO_UNITS bits (each spread over >= 15 coefficients). A 32x32 logo keeps its
most significant plane (a two-level image, like the paper's "TEST" demo); a 16x16 logo keeps
four planes.
"""

from __future__ import annotations

import numpy as np

from .chaos import layout, scramble_bits
from .rendition import verification_rendition
from .verify import N_SLOTS, slot_coefficients, unit_sums
from .watermark import DEFAULT_STRENGTH, embed_units

MAX_LOGO_UNITS = 1024
LOGO_STRENGTH = DEFAULT_STRENGTH


def logo_planes(shape: tuple[int, int]) -> int:
    """How many of the most significant bit planes a logo of this shape keeps."""
    pixels = int(shape[0]) * int(shape[1])
    if pixels < 1 or pixels > MAX_LOGO_UNITS:
        raise ValueError(f"logo must have 1..{MAX_LOGO_UNITS} pixels (e.g. 32x32), got {shape}")
    return min(8, MAX_LOGO_UNITS // pixels)


def _scrambled_targets(logo: np.ndarray, key: bytes) -> np.ndarray:
    planes = logo_planes(logo.shape)
    bits = np.unpackbits(logo.reshape(-1, 1), axis=1)[:, :planes].ravel()
    x = scramble_bits(key, bits.shape[0])
    return 2.0 * (bits ^ x).astype(np.float64) - 1.0


def embed_logo(
    rgb: np.ndarray, key: bytes, logo_grey: np.ndarray, strength: float = LOGO_STRENGTH
) -> np.ndarray:
    """Hide a grey uint8 logo (at most 1024 pixels) in an image under an 80-bit key."""
    logo = np.asarray(logo_grey)
    if logo.dtype != np.uint8 or logo.ndim != 2:
        raise ValueError("logo must be a 2-D uint8 grey image")
    return embed_units(rgb, key, _scrambled_targets(logo, key), strength)


def extract_logo(img: np.ndarray, key: bytes, shape: tuple[int, int]) -> np.ndarray:
    """Recover the logo of the given shape (uint8); dropped low planes read as mid-grey."""
    planes = logo_planes(shape)
    n = int(shape[0]) * int(shape[1]) * planes
    unit, sign = layout(key, N_SLOTS, n)
    soft = unit_sums(slot_coefficients(verification_rendition(np.asarray(img))), unit, sign, n)
    bits = (soft > 0).astype(np.uint8) ^ scramble_bits(key, n)
    full = np.zeros((n // planes, 8), dtype=np.uint8)
    full[:, :planes] = bits.reshape(-1, planes)
    if planes < 8:
        full[:, planes] = 1  # the middle of the range the dropped planes could span
    return np.packbits(full, axis=1).reshape(shape)


def text_logo(text: str = "TEST", shape: tuple[int, int] = (32, 32)) -> np.ndarray:
    """The paper's demo logo: black text on white, Pillow's built-in bitmap font, no files."""
    from PIL import Image, ImageDraw, ImageFont

    h, w = shape
    im = Image.new("L", (w, h), 255)
    draw = ImageDraw.Draw(im)
    font = ImageFont.load_default(size=max(6, h // 2)) if hasattr(ImageFont, "load_default") else None
    box = draw.textbbox((0, 0), text, font=font)
    x = (w - (box[2] - box[0])) // 2 - box[0]
    y = (h - (box[3] - box[1])) // 2 - box[1]
    draw.text((x, y), text, fill=0, font=font)
    return np.array(im, dtype=np.uint8)
