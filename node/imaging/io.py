"""Reading and writing image files.

Decoding is not part of consensus (validators work on the on-chain rendition), so it may use
Pillow. RAW formats matter to the ownership rule (white paper 2.1.2.3: a RAW upload with the
highest resolution takes ownership), so they are recognised by extension and by magic bytes and
decoded with ``rawpy`` (LibRaw) when it is installed; otherwise a clear error says so.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

RAW_EXTENSIONS = frozenset(
    {
        ".3fr", ".ari", ".arw", ".bay", ".cr2", ".cr3", ".crw", ".dcr", ".dng", ".erf", ".fff",
        ".iiq", ".k25", ".kdc", ".mef", ".mos", ".mrw", ".nef", ".nrw", ".orf", ".pef", ".raf",
        ".raw", ".rw2", ".rwl", ".sr2", ".srf", ".srw", ".x3f",
    }
)  # fmt: skip

# (offset, magic) of RAW containers that are not plain TIFF.
_RAW_MAGIC: tuple[tuple[int, bytes], ...] = (
    (0, b"FUJIFILMCCD-RAW"),  # RAF
    (0, b"IIRO"),  # Olympus ORF
    (0, b"IIRS"),  # Olympus ORF
    (0, b"MMOR"),  # Olympus ORF (big-endian)
    (0, b"IIU\x00"),  # Panasonic RW2
    (0, b"FOVb"),  # Sigma X3F
    (0, b"\x00MRM"),  # Minolta MRW
    (4, b"ftypcrx "),  # Canon CR3
    (0, b"II\x1a\x00\x00\x00HEAPCCDR"),  # Canon CRW
)
_TIFF_MAGIC = (b"II*\x00", b"MM\x00*")
_DNG_VERSION_TAG = 0xC612


class UnsupportedRawError(RuntimeError):
    """A RAW file was given but no RAW decoder (rawpy) is installed."""


def is_raw(path: str | Path) -> bool:
    """True for camera RAW files (by extension or by magic bytes, including DNG and CR2)."""
    p = Path(path)
    if p.suffix.lower() in RAW_EXTENSIONS:
        return True
    try:
        with open(p, "rb") as f:
            head = f.read(16)
    except OSError:
        return False
    if any(head[off : off + len(m)] == m for off, m in _RAW_MAGIC):
        return True
    if head[:4] in _TIFF_MAGIC:
        if head[8:10] == b"CR":  # Canon CR2 is a TIFF with this marker
            return True
        return _tiff_has_dng_tag(p)
    return False


def _tiff_has_dng_tag(path: Path) -> bool:
    try:
        from PIL import Image

        with Image.open(path) as im:
            tags = getattr(im, "tag_v2", {})
            return _DNG_VERSION_TAG in tags
    except Exception:
        return False


def _load_raw(path: Path) -> np.ndarray:
    try:
        import rawpy  # type: ignore[import-not-found]
    except ImportError as e:
        raise UnsupportedRawError(
            f"{path} is a camera RAW file; install 'rawpy' (LibRaw) to decode RAW formats"
        ) from e
    with rawpy.imread(str(path)) as raw:
        return np.ascontiguousarray(raw.postprocess(output_bps=8, use_camera_wb=True))


def load_rgb(path: str | Path) -> np.ndarray:
    """Decode an image file to uint8 RGB (H, W, 3), applying the EXIF orientation."""
    from PIL import Image, ImageOps

    p = Path(path)
    if is_raw(p):
        return _load_raw(p)
    with Image.open(p) as im:
        return pil_to_rgb(ImageOps.exif_transpose(im))


def pil_to_rgb(im: Any) -> np.ndarray:
    """A decoded Pillow image -> uint8 RGB: 16-bit grey scaled down, transparency over white."""
    from PIL import Image

    if im.mode in ("I;16", "I;16B", "I;16L", "I"):
        a = np.asarray(im, dtype=np.uint32)
        a = (a >> 8).clip(0, 255).astype(np.uint8) if a.max() > 255 else a.astype(np.uint8)
        return np.repeat(a[:, :, None], 3, axis=2)
    if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
        rgba = im.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        im = Image.alpha_composite(white, rgba)
    return np.ascontiguousarray(np.asarray(im.convert("RGB"), dtype=np.uint8))


def save_rgb(path: str | Path, rgb: np.ndarray, quality: int = 95) -> None:
    """Encode an RGB or grey uint8 array; the format follows the extension (PNG is lossless)."""
    from PIL import Image

    p = Path(path)
    im = Image.fromarray(np.asarray(rgb, dtype=np.uint8))
    if p.suffix.lower() in (".jpg", ".jpeg", ".webp"):
        im.save(p, quality=quality)
    else:
        im.save(p)
