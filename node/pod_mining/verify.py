"""The verifier's side: what a copy found in the wild says about itself.

`analyse_image_bytes` decodes an image given as bytes (an RPC upload, a download) and returns
its size, pHash and the watermark payload it carries under the chain's key, if any. It is pure
CPU work with no chain access, so the RPC server runs it in a worker thread and then looks the
payload and pHash up in state (`copyright_verifyImage`).

The input is untrusted: the byte size is bounded by the caller, only the formats the chain
registers are opened (no EPS, which would run Ghostscript, nor any other decoder Pillow happens
to have), the pixel count is checked from the header *before* anything is decoded (a 50 kB flat
PNG can claim 40 megapixels, a 1 kB one 10^10), and any failure of the decoder becomes
`ImageDecodeError` with a message, never another exception type.

Memory is what a hostile upload buys, so decoding keeps it near the floor: Pillow's decoded
image (up to 4 bytes a pixel) and the uint8 RGB result (3 bytes a pixel), converted a band of
rows at a time. Converting the whole image at once (a transposed copy, `convert`, `tobytes`)
cost ~17 bytes a pixel: 677 MB for a 50 kB flat 39.5 MP PNG.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any

import numpy as np

from node.imaging.io import pil_to_rgb

__all__ = [
    "ACCEPTED_FORMATS",
    "MAX_PIXELS",
    "ImageDecodeError",
    "ImageFacts",
    "analyse_image",
    "analyse_image_bytes",
    "decode_image_bytes",
]

# 40 megapixels: every current camera but medium format; the ceiling of this decoder. The RPC
# server passes its own, lower cap (`RpcLimits.max_image_pixels`).
MAX_PIXELS = 40_000_000

# Pillow's names of the formats the chain registers (`pipeline._PIL_FORMATS`; HEIF and AVIF only
# when their plugins are installed). Nothing else is handed to a decoder.
ACCEPTED_FORMATS = ("JPEG", "MPO", "PNG", "TIFF", "WEBP", "GIF", "BMP", "JPEG2000", "AVIF", "HEIF")

# Rows are converted in bands of about this many bytes of RGB (see `_to_rgb`).
_BAND_BYTES = 4 * 1024 * 1024
_INTEGER_MODES = ("I;16", "I;16B", "I;16L", "I")


class ImageDecodeError(ValueError):
    """The bytes are not an image this node can decode (or are too large to)."""


@dataclass(frozen=True)
class ImageFacts:
    width: int
    height: int
    phash: int
    payload: bytes | None  # the watermark payload under the chain's key, None if there is none
    # Every payload found (payload first): a copy cropped and marked again carries two.
    payloads: tuple[bytes, ...] = ()


def decode_image_bytes(data: bytes, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """Decode to uint8 RGB (H, W, 3) as `node.imaging.io.load_rgb` does for files.

    Same conversions (EXIF orientation, 16-bit grey scaled down, transparency over white), so a
    file verified over RPC hashes as it does on the command line. Camera RAW is not accepted
    here (LibRaw on untrusted input inside the node is a risk not worth taking): send a JPEG or
    PNG rendering of it.
    """
    if not data:
        raise ImageDecodeError("empty image")
    from PIL import Image, ImageOps

    Image.init()
    formats = [name for name in ACCEPTED_FORMATS if name in Image.OPEN]
    try:
        with Image.open(io.BytesIO(data), formats=formats) as im:
            width, height = im.size
            if width <= 0 or height <= 0:
                raise ImageDecodeError(f"zero-size image ({width}x{height})")
            if width * height > max_pixels:
                raise ImageDecodeError(
                    f"image is {width}x{height}; at most {max_pixels:,} pixels are accepted"
                    " (send a smaller copy: the watermark and the pHash survive downscaling)"
                )
            im.load()
            ImageOps.exif_transpose(im, in_place=True)  # a copy only when there is a rotation
            return _to_rgb(im)
    except ImageDecodeError:
        raise
    except Image.UnidentifiedImageError:
        raise ImageDecodeError(
            f"cannot decode the image: not in an accepted format ({', '.join(f.lower() for f in formats)})"
        ) from None
    except Image.DecompressionBombError as exc:  # Pillow's own limit, checked while opening
        raise ImageDecodeError(
            f"image too large: at most {max_pixels:,} pixels are accepted ({exc})"
        ) from None
    except Exception as exc:  # noqa: BLE001 - a decoder fed hostile bytes fails in many ways; all mean "not an image"
        raise ImageDecodeError(f"cannot decode the image: {type(exc).__name__}: {exc}") from None


def _to_rgb(im: Any, band_bytes: int = _BAND_BYTES) -> np.ndarray:
    """`pil_to_rgb(im)`, pixel for pixel, converted a band of rows at a time.

    `pil_to_rgb` works pixel by pixel (palette, CMYK, transparency over white) but for one
    whole-image decision: 16-bit grey is shifted down when any value passes 255. That decision
    is taken first, over every band, and applied to each.
    """
    width, height = im.size
    rows = max(1, band_bytes // (3 * width))
    out = np.empty((height, width, 3), dtype=np.uint8)
    bands = [(top, min(height, top + rows)) for top in range(0, height, rows)]
    if im.mode in _INTEGER_MODES:
        shift = any(
            int(np.asarray(im.crop((0, top, width, bottom)), dtype=np.uint32).max()) > 255
            for top, bottom in bands
        )
        for top, bottom in bands:
            values = np.asarray(im.crop((0, top, width, bottom)), dtype=np.uint32)
            if shift:
                values = (values >> 8).clip(0, 255)
            out[top:bottom] = values.astype(np.uint8)[:, :, None]
        return out
    for top, bottom in bands:
        out[top:bottom] = pil_to_rgb(im.crop((0, top, width, bottom)))
    return out


def analyse_image(rgb: np.ndarray, key: bytes, sync: bool = True) -> ImageFacts:
    """pHash and watermark of decoded pixels (JPEG, resizing; with `sync`, also crops, small
    rotations and every earlier mark of a copy marked again: `extract_all`)."""
    from node.imaging.phash import phash
    from node.imaging.watermark import extract, extract_all

    height, width = rgb.shape[:2]
    if sync:
        payloads = tuple(extract_all(rgb, key))
    else:
        only = extract(rgb, key, sync=False)
        payloads = () if only is None else (only,)
    return ImageFacts(width, height, phash(rgb), payloads[0] if payloads else None, payloads)


def analyse_image_bytes(
    data: bytes, key: bytes, max_pixels: int = MAX_PIXELS, sync: bool = True
) -> ImageFacts:
    return analyse_image(decode_image_bytes(data, max_pixels), key, sync=sync)
