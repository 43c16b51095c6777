import io

import numpy as np
import pytest
from PIL import Image

from node.imaging import verify as vf
from node.imaging import watermark as wm
from node.imaging.rendition import verification_rendition
from tests.imaging.conftest import natural_image

KEY = bytes.fromhex("00112233445566778899")
PAYLOAD = bytes.fromhex("0123456789abcdef")


def _psnr(a, b):
    return 10 * np.log10(255**2 / np.mean((a.astype(float) - b.astype(float)) ** 2))


def _jpeg(a, q):
    b = io.BytesIO()
    Image.fromarray(a).save(b, "JPEG", quality=q)
    return np.asarray(Image.open(b).convert("RGB"))


@pytest.fixture(scope="module")
def marked(photo):
    return wm.embed(photo, KEY, PAYLOAD)


def test_roundtrip_full_image_and_rendition(photo, marked):
    assert marked.shape == photo.shape and marked.dtype == np.uint8
    assert _psnr(photo, marked) > 40.0
    assert wm.extract(marked, KEY) == PAYLOAD
    r = verification_rendition(marked)
    assert vf.extract_from_rendition(r, KEY) == PAYLOAD
    assert wm.extract(r, KEY) == PAYLOAD


def test_numba_path_equals_numpy_reference(photo, marked):
    for img in (marked, photo, np.random.default_rng(0).integers(0, 256, (256, 256), dtype=np.uint8)):
        r = verification_rendition(img)
        assert np.array_equal(vf.coded_soft(r, KEY), vf.coded_soft(r, KEY, reference=True))
        assert vf.extract_from_rendition(r, KEY) == vf.extract_from_rendition_ref(r, KEY)
        c = vf.slot_coefficients(r)
        unit, sign = wm.layout(KEY, vf.N_SLOTS, 208)
        assert np.array_equal(vf.unit_sums(c, unit, sign, 208), vf.unit_sums_ref(c, unit, sign, 208))


def test_survives_common_edits(marked):
    h, w = marked.shape[:2]
    rng = np.random.default_rng(5)
    attacked = {
        "jpeg70": _jpeg(marked, 70),
        "jpeg50": _jpeg(marked, 50),
        "resize": np.asarray(Image.fromarray(marked).resize((w // 2, h // 2), Image.BILINEAR).resize((w, h))),
        "noise5": np.clip(marked + rng.normal(0, 5, marked.shape), 0, 255).round().astype(np.uint8),
        "brightness": np.clip(marked * 1.2, 0, 255).round().astype(np.uint8),
        "contrast": np.clip((marked - marked.mean()) * 0.8 + marked.mean(), 0, 255).round().astype(np.uint8),
    }
    for name, img in attacked.items():
        assert wm.extract(img, KEY, sync=False) == PAYLOAD, name


def test_wrong_key_and_unmarked_give_none(photo, marked):
    rng = np.random.default_rng(9)
    r_marked = verification_rendition(marked)
    r_plain = verification_rendition(photo)
    for _ in range(100):
        k = rng.bytes(10)
        assert vf.extract_from_rendition(r_marked, k) is None
        assert vf.extract_from_rendition(r_plain, k) is None
    assert vf.extract_from_rendition(r_plain, KEY) is None


def test_grey_and_small_images():
    g = natural_image(4, 256, 256)[:, :, 0]
    m = wm.embed(g, KEY, PAYLOAD)
    assert m.shape == g.shape and vf.extract_from_rendition(m, KEY) == PAYLOAD
    small = natural_image(6, 200, 150)
    assert wm.extract(wm.embed(small, KEY, PAYLOAD), KEY) == PAYLOAD
    smallest = natural_image(7, wm.MIN_EMBED_SIDE, 3 * wm.MIN_EMBED_SIDE)
    marked = wm.embed(smallest, KEY, PAYLOAD)
    assert wm.extract(marked, KEY, sync=False) == PAYLOAD
    assert _psnr(smallest, marked) > 40.0
    for shape in ((wm.MIN_EMBED_SIDE - 1, 500), (500, 17), (1, 1)):
        with pytest.raises(ValueError, match="at least"):
            wm.embed(np.zeros((*shape, 3), np.uint8), KEY, PAYLOAD)


def test_different_payloads_and_keys(photos):
    rng = np.random.default_rng(3)
    for img in photos[:2]:
        k, p = rng.bytes(10), rng.bytes(8)
        m = wm.embed(img, k, p)
        assert wm.extract(m, k, sync=False) == p
        assert wm.extract(m, KEY, sync=False) is None


def test_bad_arguments(photo):
    with pytest.raises(ValueError):
        wm.embed(photo, b"short", PAYLOAD)
    with pytest.raises(ValueError):
        wm.embed(photo, KEY, b"\x00" * 7)
    with pytest.raises(ValueError):
        vf.extract_from_rendition(np.zeros((128, 128), np.uint8), KEY)


def ssim_reference(a: np.ndarray, b: np.ndarray) -> float:
    """scikit-image's default `structural_similarity` (7x7 uniform window, sample covariance,
    borders cropped) written out with numpy/scipy, so the test needs no scikit-image."""
    from scipy.ndimage import uniform_filter

    x, y = a.astype(np.float64), b.astype(np.float64)
    w = 7
    cov_norm = w * w / (w * w - 1)
    ux, uy = uniform_filter(x, w), uniform_filter(y, w)
    vx = cov_norm * (uniform_filter(x * x, w) - ux * ux)
    vy = cov_norm * (uniform_filter(y * y, w) - uy * uy)
    vxy = cov_norm * (uniform_filter(x * y, w) - ux * uy)
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    s = ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux * ux + uy * uy + c1) * (vx + vy + c2))
    return float(s[3:-3, 3:-3].mean())


def test_image_ssim_matches_the_standard_definition_on_grey():
    a = natural_image(8, 96, 128)[:, :, 0]
    b = np.clip(a.astype(int) + np.random.default_rng(1).integers(-6, 7, a.shape), 0, 255).astype(np.uint8)
    assert wm.image_ssim(a, b) == pytest.approx(ssim_reference(a, b), abs=2e-3)


def test_adaptive_strength_spends_headroom_within_the_floor(photo):
    plain = wm.embed(photo, KEY, PAYLOAD, psnr_target=None)
    adaptive = wm.embed(photo, KEY, PAYLOAD)
    assert vf.extract_from_rendition(verification_rendition(adaptive), KEY) == PAYLOAD
    p_plain, p_adaptive = _psnr(photo, plain), _psnr(photo, adaptive)
    if np.array_equal(plain, adaptive):
        return
    assert p_adaptive < p_plain
    assert p_adaptive >= wm.ADAPTIVE_PSNR - wm.ADAPTIVE_TOLERANCE
    assert wm.image_ssim(photo, adaptive, wm.ADAPTIVE_SSIM_STRIDE) >= wm.ADAPTIVE_SSIM


def test_no_headroom_no_boost(photo):
    plain = wm.embed(photo, KEY, PAYLOAD, psnr_target=None)
    assert np.array_equal(plain, wm.embed(photo, KEY, PAYLOAD, psnr_target=_psnr(photo, plain) + 0.5))


def test_image_psnr_matches_numpy(photo):
    other = np.clip(photo.astype(int) + 3, 0, 255).astype(np.uint8)
    assert wm.image_psnr(photo, other) == pytest.approx(_psnr(photo, other), abs=1e-9)


def test_adaptive_strength_boosts_a_quiet_image():
    img = natural_image(5, 256, 256)
    plain = wm.embed(img, KEY, PAYLOAD, psnr_target=None)
    low = wm.embed(img, KEY, PAYLOAD, psnr_target=_psnr(img, plain) - 2.0)
    assert _psnr(img, low) < _psnr(img, plain)
    assert wm.extract(low, KEY, sync=False) == PAYLOAD


def test_image_ssim_on_a_stride_estimates_every_window(photo):
    marked = wm.embed(photo, KEY, PAYLOAD, psnr_target=None)
    full = wm.image_ssim(photo, marked)
    assert full < 0.999  # the mark is there to measure
    for stride in (2, 3):
        assert wm.image_ssim(photo, marked, stride) == pytest.approx(full, abs=5e-4)
    assert wm.image_ssim(photo, photo, 2) == pytest.approx(1.0)


def _apply_delta_reference(img: np.ndarray, delta: np.ndarray) -> np.ndarray:
    """apply_delta written with numpy: bilinear upsampling (same products), round half up, clip."""
    h, w = img.shape[:2]
    yi0, yi1, yf = wm._axis_bilinear(h)
    xi0, xi1, xf = wm._axis_bilinear(w)
    rows = delta[:, xi0] * (1.0 - xf) + delta[:, xi1] * xf
    up = rows[yi0] * (1.0 - yf)[:, None] + rows[yi1] * yf[:, None]
    return np.clip(np.floor(img + up[:, :, None] + 0.5), 0, 255).astype(np.uint8)


@pytest.mark.parametrize("shape", [(1080, 1920), (300, 451), (256, 256), (100, 37)])
def test_apply_delta_matches_numpy_and_the_model_predicts_its_rendition(shape):
    h, w = shape
    rng = np.random.default_rng(h + w)
    img = natural_image(h, h, w)
    delta = rng.normal(0.0, 2.0, (256, 256))
    out = wm.apply_delta(img, delta)
    assert np.array_equal(out, _apply_delta_reference(img, delta))
    # The linear model: what the change does to the rendition, and to the image's MSE.
    model = wm.RenditionModel(h, w)
    real = verification_rendition(out).astype(np.float64) - verification_rendition(img)
    predicted = model.change(delta)
    assert np.sqrt(np.mean((real - predicted) ** 2)) < 0.6  # rounding of two renditions: ~0.41
    assert (real * predicted).sum() / (predicted * predicted).sum() == pytest.approx(1.0, abs=0.03)
    mse = np.mean((out.astype(np.float64) - img) ** 2)
    assert mse == pytest.approx(model.mse(delta) + wm.ROUNDING_MSE, rel=0.05)
    # Slot gains: how much of a change of a slot's own coefficient the model passes on, per
    # coefficient position (regressed over all blocks).
    blocks = np.zeros((vf.N_BLOCKS, 8, 8))
    sent = rng.normal(0.0, 1.0, (vf.N_BLOCKS, len(vf.POSITIONS)))
    blocks[:, vf.US, vf.VS] = sent
    got = wm._slot_coefficients_float(model.change(wm.block_idct_float(blocks, 256, 256)))
    got = got.reshape(vf.N_BLOCKS, len(vf.POSITIONS))
    gain = (got * sent).sum(axis=0) / (sent * sent).sum(axis=0)
    expected = model.slot_gain.reshape(vf.N_BLOCKS, len(vf.POSITIONS)).mean(axis=0)
    assert np.abs(gain - expected).max() < 0.05


def test_informed_embedding_reaches_the_goal_on_every_unit(photo):
    """Measured on the validators' path: every coded bit's mean signed coefficient is pushed to
    the goal (rounding leaves a few within a few percent of it)."""
    from node.imaging.chaos import layout, scramble_bits
    from node.imaging.ecc import CODED_BITS, encode, pack

    marked = wm.embed(photo, KEY, PAYLOAD, psnr_target=None)
    coeffs = vf.slot_coefficients(verification_rendition(marked)) / 16.0
    unit, sign = layout(KEY, vf.N_SLOTS, CODED_BITS)
    means = np.bincount(unit, weights=sign * coeffs, minlength=CODED_BITS) / np.bincount(unit)
    targets = 2.0 * (encode(pack(PAYLOAD, KEY)) ^ scramble_bits(KEY, CODED_BITS)) - 1.0
    reached = targets * means / wm.DEFAULT_STRENGTH
    assert reached.min() > 0.9
    assert np.mean(reached >= 0.99) > 0.95


def test_an_image_that_drowns_the_mark_is_refused():
    """A hard-edged pattern with its energy in the mark's band: no strength the embedder can
    afford reads back, so embed refuses instead of returning a ruined, unmarked copy."""
    yy, xx = np.mgrid[0:600, 0:800]
    checker = (((xx // 16 + yy // 16) % 2) * 255).astype(np.uint8)
    for img in (checker, np.stack([checker] * 3, axis=-1)):
        with pytest.raises(ValueError, match="does not survive"):
            wm.embed(img, KEY, PAYLOAD)
    # Flat and saturated images are no problem.
    for value in (0, 128, 255):
        flat = np.full((300, 400, 3), value, np.uint8)
        assert wm.extract(wm.embed(flat, KEY, PAYLOAD), KEY, sync=False) == PAYLOAD
