import mpmath
import numpy as np

from node.imaging import dct
from tests.imaging.conftest import natural_image


def _table(n: int, rows: int) -> list[tuple[int, ...]]:
    mpmath.mp.dps = 50
    out = []
    for u in range(rows):
        a = mpmath.sqrt(mpmath.mpf(1) / n) if u == 0 else mpmath.sqrt(mpmath.mpf(2) / n)
        out.append(
            tuple(
                int(
                    mpmath.floor(
                        a * mpmath.cos((2 * x + 1) * u * mpmath.pi / (2 * n)) * 2**dct.DCT_SHIFT + 0.5
                    )
                )
                for x in range(n)
            )
        )
    return out


def test_tables_match_high_precision_cosines():
    assert tuple(_table(8, 8)) == dct.C8_Q12
    assert tuple(_table(32, 8)) == dct.C32_Q12


def test_block_dct_numba_equals_reference():
    rng = np.random.default_rng(0)
    us = np.array([0, 1, 2, 3, 4, 5, 7, 0, 2])
    vs = np.array([0, 2, 1, 0, 1, 0, 0, 7, 3])
    imgs = [rng.integers(0, 256, (256, 256), dtype=np.uint8) for _ in range(3)]
    imgs += [natural_image(7)[:256, :256, 0], np.zeros((64, 64), np.uint8), np.full((64, 64), 255, np.uint8)]
    for img in imgs:
        assert np.array_equal(dct.block_dct(img, us, vs), dct.block_dct_ref(img, us, vs))


def test_integer_dct_close_to_float_dct():
    rng = np.random.default_rng(1)
    img = rng.integers(0, 256, (16, 16), dtype=np.uint8)
    us, vs = np.repeat(np.arange(8), 8), np.tile(np.arange(8), 8)
    got = dct.block_dct_ref(img, us, vs) / 2**dct.COEFF_FRAC_BITS
    blocks = img.astype(float).reshape(2, 8, 2, 8).transpose(0, 2, 1, 3).reshape(4, 8, 8)
    want = (dct.D8 @ blocks @ dct.D8.T)[:, us, vs]
    assert np.max(np.abs(got - want)) < 0.5
    x = rng.integers(0, 256, (32, 32))
    d32 = dct.dct_matrix(32)[:8]
    assert np.allclose(
        dct.dct_low_32(x) / 2**24, d32 @ x @ d32.T, atol=2.0
    )  # DC is ~4000: 10-bit table precision


def test_block_idct_inverts():
    rng = np.random.default_rng(2)
    img = rng.normal(size=(16, 24))
    blocks = img.reshape(2, 8, 3, 8).transpose(0, 2, 1, 3).reshape(6, 8, 8)
    assert np.allclose(dct.block_idct_float(dct.D8 @ blocks @ dct.D8.T, 16, 24), img)
