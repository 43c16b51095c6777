"""The verifier's side: what a copy found in the wild says about itself.

`analyse_image_bytes` decodes an image given as bytes (an RPC upload, a download) and returns
its size, pHash and the watermark payload it carries under the chain's key, if any. It is pure
CPU work with no chain access, so the RPC server runs it in a worker thread and then looks the
payload and pHash up in state (`copyright_verifyImage`).

The input is untrusted: the byte size is bounded by the caller, the pixel count is checked from
the header *before* anything is decoded (a 1 KB PNG can claim 10^10 pixels), and any failure of
the decoder becomes `ImageDecodeError` with a message, never another exception type.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np

from node.imaging.io import pil_to_rgb

__all__ = [
    "MAX_PIXELS",
    "ImageDecodeError",
    "ImageFacts",
    "analyse_image",
    "analyse_image_bytes",
    "decode_image_bytes",
]

# 40 megapixels: every current camera but medium format. The resynchronisation search of an
# unmarked 24 MP copy takes ~0.7 s and ~100 MB, so this bounds one verification's cost.
MAX_PIXELS = 40_000_000


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

    try:
        with Image.open(io.BytesIO(data)) as im:
            width, height = im.size
            if width <= 0 or height <= 0:
                raise ImageDecodeError(f"zero-size image ({width}x{height})")
            if width * height > max_pixels:
                raise ImageDecodeError(
                    f"image is {width}x{height}; at most {max_pixels:,} pixels are accepted"
                )
            im.load()
            return pil_to_rgb(ImageOps.exif_transpose(im))
    except ImageDecodeError:
        raise
    except Image.DecompressionBombError as exc:  # Pillow's own limit, checked while opening
        raise ImageDecodeError(
            f"image too large: at most {max_pixels:,} pixels are accepted ({exc})"
        ) from None
    except Exception as exc:  # noqa: BLE001 - a decoder fed hostile bytes fails in many ways; all mean "not an image"
        raise ImageDecodeError(f"cannot decode the image: {type(exc).__name__}: {exc}") from None


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
