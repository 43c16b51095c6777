import numpy as np
import pytest

from node.imaging.logo import embed_logo, extract_logo, logo_planes, text_logo
from tests.imaging.conftest import natural_image

KEY = bytes(range(10))


def test_text_logo_roundtrip():
    logo = text_logo("TEST", (32, 32))
    assert logo.dtype == np.uint8 and (logo < 128).any() and (logo >= 128).any()
    img = natural_image(8)
    marked = embed_logo(img, KEY, logo)
    out = extract_logo(marked, KEY, (32, 32))
    assert np.mean((out >= 128) != (logo >= 128)) < 0.01
    wrong = extract_logo(marked, bytes(10), (32, 32))
    assert np.mean((wrong >= 128) != (logo >= 128)) > 0.2


def test_grey_logo_keeps_top_planes():
    logo = np.arange(256, dtype=np.uint8).reshape(16, 16)
    assert logo_planes((16, 16)) == 4
    out = extract_logo(embed_logo(natural_image(9), KEY, logo), KEY, (16, 16))
    assert np.mean(np.abs(out.astype(int) - logo)) < 12


def test_logo_size_limit():
    with pytest.raises(ValueError):
        logo_planes((64, 64))
