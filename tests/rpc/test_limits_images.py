"""Issue #10, finding 3: `copyright_verifyImage` answers "busy" rather than queueing, and refuses
images over its pixel cap from their header, before decoding a pixel.

The issue's attack: a 50 kB flat 39.5 MP PNG cost 4.2 s and ~570 MB, and such jobs queued
without bound.
"""

from __future__ import annotations

import base64
import io
import struct
import threading
import zlib

import httpx
import numpy as np
import pytest
import trio
from PIL import Image, ImageOps

from node.imaging.io import pil_to_rgb
from node.pod_mining import verify
from node.rpc import errors
from tests.rpc.helpers import Server, error, result


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def png_header_only(width: int, height: int) -> bytes:
    """A PNG that claims width x height and has no pixel data at all."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunks = [(b"IHDR", ihdr), (b"IEND", b"")]
    return b"\x89PNG\r\n\x1a\n" + b"".join(
        struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        for kind, data in chunks
    )


async def test_image_job_busy_instead_of_queueing(http: httpx.AsyncClient, server: Server) -> None:
    """With the node's one slot taken, a verification fails at once with -32009 and a retry hint."""
    small = png(Image.new("RGB", (64, 48), (120, 130, 140)))
    release = threading.Event()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(server.state.image_jobs.run, release.wait)  # someone else's long job
        with trio.fail_after(5):
            while not server.state.image_jobs.running:
                await trio.sleep(0.005)
        busy = await error(http, "copyright_verifyImage", [b64(small)])
        assert busy["code"] == errors.SERVER_IS_BUSY and busy["message"] == "Server is busy, try again later"
        assert busy["data"]["retryAfterMs"] >= 100 and "--rpc-max-image-jobs" in busy["data"]["reason"]
        release.set()
    found = await result(http, "copyright_verifyImage", [b64(small)])  # the slot is free again
    assert (found["width"], found["height"]) == (64, 48)
    assert server.state.image_jobs.running == 0


async def test_pixel_cap_from_the_header(http: httpx.AsyncClient) -> None:
    """The issue's image: a flat 39.5 MP PNG of ~125 kB is refused (the cap is 4096 x 3072), and
    so is a header with no pixels behind it: the size is read before anything is decoded."""
    flat = png(Image.new("L", (7680, 5144), 128))
    assert len(flat) < 200_000
    for image, size in ((flat, "7680x5144"), (png_header_only(4097, 3072), "4097x3072")):
        err = await error(http, "copyright_verifyImage", [b64(image)])
        assert err["code"] == errors.INVALID_PARAMS
        assert f"image is {size}; at most 12,582,912 pixels are accepted" in err["data"]


async def test_only_the_chains_formats_are_decoded(http: httpx.AsyncClient) -> None:
    """An EPS file (Pillow would run Ghostscript on it) never reaches a decoder."""
    eps = b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\nshowpage\n"
    err = await error(http, "copyright_verifyImage", [b64(eps)])
    assert err["code"] == errors.INVALID_PARAMS and "not in an accepted format" in err["data"]


def _encoded(image: Image.Image, fmt: str = "PNG", **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def _images() -> list[tuple[str, bytes]]:
    """Small images in every mode the decoder meets, encoded in a format that keeps the mode."""
    rng = np.random.default_rng(7)
    rgb = rng.integers(0, 256, (37, 29, 3), dtype=np.uint8)
    rgba = rng.integers(0, 256, (37, 29, 4), dtype=np.uint8)
    grey16 = np.full((37, 29), 40, dtype=np.uint16)
    grey16[30:, :] = 40000  # only the last band passes 255: the shift is still the whole image's
    palette = Image.fromarray(rgb).convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to view"
    return [
        ("RGB", _encoded(Image.fromarray(rgb))),
        ("RGBA", _encoded(Image.fromarray(rgba, "RGBA"))),
        ("L", _encoded(Image.fromarray(rgb[:, :, 0]))),
        ("LA", _encoded(Image.fromarray(rgba[:, :, :2].copy(), "LA"))),
        ("P+transparency", _encoded(palette, transparency=3)),
        ("I;16", _encoded(Image.fromarray(grey16))),
        ("CMYK", _encoded(Image.fromarray(rgba, "RGBA").convert("CMYK"), "TIFF")),
        ("1", _encoded(Image.fromarray(rgb[:, :, 0]).convert("1"))),
        ("JPEG rotated by EXIF", _encoded(Image.fromarray(rgb), "JPEG", exif=exif.tobytes())),
    ]


@pytest.mark.parametrize(("name", "data"), _images(), ids=[name for name, _ in _images()])
def test_decoding_in_bands_gives_the_same_pixels(name: str, data: bytes) -> None:
    """The band-by-band conversion (~7 bytes a pixel instead of ~17) is `pil_to_rgb`, pixel for
    pixel, in every mode; bands of 3 rows here."""
    with Image.open(io.BytesIO(data)) as whole:
        expected = pil_to_rgb(ImageOps.exif_transpose(whole))
    with Image.open(io.BytesIO(data)) as banded:
        banded.load()
        ImageOps.exif_transpose(banded, in_place=True)
        assert np.array_equal(verify._to_rgb(banded, band_bytes=3 * 3 * banded.size[0]), expected)
    assert np.array_equal(verify.decode_image_bytes(data), expected)
