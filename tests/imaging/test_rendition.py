import numpy as np
import pytest

from node.imaging.rendition import (
    RENDITION_SIZE,
    area_resize_ref,
    luma_ref,
    verification_rendition,
    verification_rendition_ref,
)
from tests.imaging.conftest import natural_image


@pytest.mark.parametrize(
    "shape",
    [
        (256, 256, 3),
        (512, 512, 3),
        (300, 451, 3),
        (257, 255, 3),
        (100, 37, 3),
        (1, 1, 3),
        (720, 1280, 3),
        (1, 3000, 3),
        (3000, 2, 3),
        (513, 255),
    ],
)
def test_numba_equals_reference_random(shape):
    a = np.random.default_rng(sum(shape)).integers(0, 256, shape, dtype=np.uint8)
    assert np.array_equal(verification_rendition(a), verification_rendition_ref(a))


@pytest.mark.parametrize("seed", [1, 2])
def test_numba_equals_reference_photo(seed):
    a = natural_image(seed, 333, 517)
    assert np.array_equal(verification_rendition(a), verification_rendition_ref(a))
    g = a[:, :, 1]
    assert np.array_equal(verification_rendition(g), verification_rendition_ref(g))


def test_luma_rule():
    px = np.array(
        [[[255, 255, 255], [0, 0, 0], [255, 0, 0], [0, 255, 0], [0, 0, 255], [10, 20, 30]]], np.uint8
    )
    want = [
        255,
        0,
        (77 * 255 + 128) >> 8,
        (150 * 255 + 128) >> 8,
        (29 * 255 + 128) >> 8,
        (770 + 3000 + 870 + 128) >> 8,
    ]
    assert luma_ref(px).ravel().tolist() == want


def test_grey_256_is_its_own_rendition_and_rgb_grey_agree():
    g = np.random.default_rng(3).integers(0, 256, (256, 256), dtype=np.uint8)
    assert np.array_equal(verification_rendition(g), g)
    assert np.array_equal(verification_rendition(np.stack([g] * 3, -1)), g)


def test_integer_ratio_is_exact_block_mean():
    g = np.random.default_rng(4).integers(0, 256, (512, 768), dtype=np.uint8)
    r = verification_rendition(g)
    s = g.astype(np.int64).reshape(256, 2, 256, 3).sum(axis=(1, 3))
    assert np.array_equal(r, ((s + 3) // 6).astype(np.uint8))


def test_fractional_weights_by_hand():
    # 3 -> 256: output i covers [3i, 3i+3) in units of 1/256 pixel; pixel j covers [256j, 256j+256).
    g = np.array([[0, 100, 200]] * 3, np.uint8)
    r = area_resize_ref(g)
    assert r[0, 0] == 0 and r[0, 84] == 0 and r[0, 86] == 100 and r[0, 255] == 200
    # output 85 covers [255, 258): 1 unit of pixel 0 and 2 of pixel 1 -> 200/3 -> 67 (half up)
    assert r[0, 85] == 67
    # output 170 covers [510, 513): 2 units of pixel 1, 1 of pixel 2 -> 400/3 = 133.3 -> 133
    assert r[0, 170] == 133
    g2 = np.zeros((1, 512), np.uint8)
    g2[0, 1::2] = 255
    assert (verification_rendition(np.stack([g2] * 3, -1)) == 128).all()


def test_constant_images_stay_constant():
    for v in (0, 1, 128, 254, 255):
        a = np.full((123, 457, 3), v, np.uint8)
        assert (verification_rendition(a) == v).all()
    assert verification_rendition(np.zeros((5, 5, 3), np.uint8)).shape == (RENDITION_SIZE, RENDITION_SIZE)


def test_rejects_bad_input():
    with pytest.raises(TypeError):
        verification_rendition(np.zeros((8, 8, 3), np.float32))
    with pytest.raises(ValueError):
        verification_rendition(np.zeros((8, 8, 2), np.uint8))
