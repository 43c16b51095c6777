"""Test images: synthetic photo-like ones, and three real photographs from tests/data (no
downloads, no scikit-image)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image


def natural_image(seed: int, h: int = 384, w: int = 512) -> np.ndarray:
    """A uint8 RGB image with a photo-like 1/f spectrum, smooth regions and hard edges."""
    rng = np.random.default_rng(seed)
    fy = np.fft.fftfreq(h)[:, None]
    fx = np.fft.rfftfreq(w)[None, :]
    f = np.sqrt(fx**2 + fy**2)
    f[0, 0] = 1.0
    chans = []
    base = None
    for _ in range(3):
        spec = (rng.normal(size=f.shape) + 1j * rng.normal(size=f.shape)) / f**1.1
        spec[0, 0] = 0
        x = np.fft.irfft2(spec, s=(h, w))
        x = (x - x.mean()) / x.std()
        base = x if base is None else base
        chans.append(0.8 * base + 0.35 * x)  # correlated channels, like real colour
    img = np.stack(chans, axis=-1) * 38 + 120
    yy, xx = np.mgrid[0:h, 0:w]
    for _ in range(4):  # a few flat objects with sharp borders
        cy, cx = rng.uniform(0, h), rng.uniform(0, w)
        r = rng.uniform(0.08, 0.25) * min(h, w)
        mask = (yy - cy) ** 2 + (xx - cx) ** 2 < r**2
        img[mask] = 0.6 * img[mask] + 0.4 * rng.uniform(20, 235, size=3)
    return np.clip(np.round(img), 0, 255).astype(np.uint8)


@pytest.fixture(scope="session")
def photo() -> np.ndarray:
    return natural_image(1)


@pytest.fixture(scope="session")
def photos() -> list[np.ndarray]:
    return [natural_image(s, 300 + 40 * s, 420 + 30 * s) for s in range(2, 6)]


DATA = Path(__file__).resolve().parents[1] / "data"
REAL_PHOTOS = ("astronaut", "rocket", "hubble_deep_field")


def real_photo(name: str) -> np.ndarray:
    """A real photograph from tests/data (public domain; see its README), uint8 RGB."""
    with Image.open(DATA / f"{name}.jpg") as im:
        return np.asarray(im.convert("RGB"))


@pytest.fixture(scope="session", params=REAL_PHOTOS)
def real(request: pytest.FixtureRequest) -> np.ndarray:
    return real_photo(request.param)
