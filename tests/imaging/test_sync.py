import numpy as np
import pytest
from PIL import Image
from scipy.ndimage import gaussian_filter

from node.imaging import sync
from node.imaging import verify as vf
from node.imaging import watermark as wm
from node.imaging.ecc import INFO_BITS, list_viterbi, viterbi
from node.imaging.rendition import verification_rendition
from node.imaging.template import (
    TEMPLATE_AXIS_GUARD,
    TEMPLATE_MAX,
    TEMPLATE_MIN,
    TEMPLATE_PEAKS,
    TEMPLATE_R_HI,
    TEMPLATE_R_LO,
    activity_mask,
    template_amplitude,
    template_image,
    template_peaks,
)
from tests.imaging.conftest import natural_image

KEY = bytes.fromhex("a1b2c3d4e5f60718293a")
PAYLOAD = bytes.fromhex("feedfacecafebeef")


def smooth_photo() -> np.ndarray:
    """A synthetic photo with some smooth areas: a crop of 25% leaves only ~56% of every coded
    bit's slots, and on a uniformly busy texture that is below what the code can correct."""
    img = natural_image(12, 720, 960).astype(np.float64)
    return np.clip(gaussian_filter(img, (3, 3, 0)), 0, 255).round().astype(np.uint8)


@pytest.fixture(scope="module")
def marked() -> np.ndarray:
    return wm.embed(smooth_photo(), KEY, PAYLOAD)


def _crop(a: np.ndarray, frac: float, y: int, x: int) -> np.ndarray:
    h, w = a.shape[:2]
    kh, kw = round(h * (1 - frac)), round(w * (1 - frac))
    return np.ascontiguousarray(a[y : y + kh, x : x + kw])


def test_template_peaks_are_keyed_and_well_spread():
    f, ph = template_peaks(KEY)
    f2, ph2 = template_peaks(KEY)
    assert np.array_equal(f, f2) and np.array_equal(ph, ph2)  # deterministic (BLAKE2b only)
    assert f.shape == (TEMPLATE_PEAKS, 2) and np.all(f == np.round(f))
    assert len({tuple(v) for v in f}) == TEMPLATE_PEAKS
    r = np.hypot(f[:, 0], f[:, 1])
    assert np.all(r >= TEMPLATE_R_LO - 1) and np.all(r <= TEMPLATE_R_HI + 1)
    ang = np.degrees(np.arctan2(f[:, 1], f[:, 0]))
    assert np.all(np.minimum(np.abs(ang - 90), np.minimum(ang, 180 - ang)) >= TEMPLATE_AXIS_GUARD - 1)
    assert (ang < 90).sum() == (ang > 90).sum()  # both quadrants of the half plane
    f3, _ = template_peaks(bytes(10))
    assert not np.array_equal(f, f3)


def test_template_image_is_the_sum_of_the_peaks():
    f, ph = template_peaks(KEY)
    idx = np.arange(256.0)
    ref = sum(
        np.cos(2 * np.pi * (fx * idx[None, :] + fy * idx[:, None]) / 256 + p)
        for (fx, fy), p in zip(f, ph, strict=True)
    )
    assert np.allclose(template_image(KEY, 0.5), 0.5 * ref, atol=1e-9)


def test_template_amplitude_and_mask():
    flat = np.full((256, 256), 128, np.uint8)
    busy = verification_rendition(natural_image(3, 512, 512))
    a_flat, a_busy = template_amplitude(flat, KEY), template_amplitude(busy, KEY)
    assert TEMPLATE_MIN <= a_flat <= a_busy <= TEMPLATE_MAX
    m = activity_mask(busy)
    assert m.shape == (256, 256) and abs(m.mean() - 1) < 1e-9 and m.min() > 0


def test_realign_identity_reproduces_the_rendition():
    img = natural_image(4, 300, 500)
    r = verification_rendition(img)
    out, valid = sync.realign(sync.integral_image(img), np.eye(2), np.zeros(2))
    assert valid.all()
    assert np.abs(out - r).max() <= 0.5 + 1e-9  # the rendition is the same mean, rounded


def test_realign_undoes_a_known_rotation():
    img = natural_image(7, 480, 640)
    h, w = img.shape[:2]
    rotated = np.asarray(Image.fromarray(img).rotate(3.0, resample=Image.BICUBIC))
    # PIL turns the picture counter-clockwise about its centre: copy = c + R(-3 deg) (orig - c)
    t = np.deg2rad(-3.0)
    rot = np.array([[np.cos(t), -np.sin(t)], [np.sin(t), np.cos(t)]])
    centre = np.array([w / 2, h / 2])
    a = sync.linear_part(1.0, 1.0, t, w, h)
    b = (centre - rot @ centre) * np.array([256 / w, 256 / h])
    out, valid = sync.realign(sync.integral_image(rotated), a, b)
    r = verification_rendition(img).astype(np.float64)
    assert valid.mean() > 0.85 and not valid.all()  # the rotated-away corners are masked
    err = np.abs(out - r)[valid]
    assert err.mean() < 1.5, err.mean()  # resampling blur only, no misplacement


def test_list_viterbi_best_path_is_the_viterbi_path():
    rng = np.random.default_rng(1)
    for _ in range(3):
        soft = rng.integers(-50, 51, 208)
        paths = list_viterbi(soft.astype(np.float64), INFO_BITS, 8)
        assert paths.shape == (8, INFO_BITS)
        assert np.array_equal(paths[0], viterbi(soft, INFO_BITS))
        assert len({p.tobytes() for p in paths}) == 8


@pytest.mark.parametrize(("frac", "y", "x"), [(0.10, 30, 70), (0.25, 170, 20)])
def test_blind_crop_is_resynchronised(marked, frac, y, x):
    copy = _crop(marked, frac, y, x)
    assert wm.extract(copy, KEY, sync=False) is None
    assert wm.extract(copy, KEY) == PAYLOAD
    a, offsets, _ = next(sync.estimate_geometries(copy, KEY))
    h, w = copy.shape[:2]
    assert np.allclose(np.diag(a), [960 / w, 720 / h], rtol=3e-3)
    assert np.allclose(offsets[0], [-x * 256 / w, -y * 256 / h], atol=0.5)


def test_rotated_copy_is_resynchronised(marked):
    rotated = np.asarray(Image.fromarray(marked).rotate(2.0, resample=Image.BILINEAR))
    assert wm.extract(rotated, KEY, sync=False) is None
    assert wm.extract(rotated, KEY) == PAYLOAD


def test_crop_then_downscale_is_resynchronised(marked):
    copy = _crop(marked, 0.15, 40, 100)
    small = np.asarray(Image.fromarray(copy).resize((copy.shape[1] // 2, copy.shape[0] // 2), Image.LANCZOS))
    assert wm.extract(small, KEY) == PAYLOAD


def test_sync_never_invents_a_payload(marked):
    rng = np.random.default_rng(2)
    plain = smooth_photo()
    copy = _crop(marked, 0.2, 10, 10)
    for img in (plain, copy, marked):
        for _ in range(3):
            assert wm.extract(img, rng.bytes(10)) is None
    assert wm.extract(plain, KEY) is None


def test_template_free_mark_still_reads_on_the_validators_path():
    img = natural_image(5, 384, 512)
    m = wm.embed(img, KEY, PAYLOAD, template=False)
    assert vf.extract_from_rendition(verification_rendition(m), KEY) == PAYLOAD


def test_a_cropped_copy_marked_again_still_shows_the_first_mark(marked):
    """The theft this guards against: crop a registered image (so its pHash no longer matches)
    and mark it again for a registration of one's own. The new mark is what the validators'
    path reads; the resynchronisation still finds the first one at the old geometry."""
    other = bytes.fromhex("0badc0de0badc0de")
    remarked = wm.embed(_crop(marked, 0.10, 30, 50), KEY, other)
    assert wm.extract(remarked, KEY) == other  # stops at the first payload
    assert wm.extract_all(remarked, KEY) == [other, PAYLOAD]
    assert sync.extract_all_with_sync(remarked, KEY)[-1] == PAYLOAD
    # One mark, one payload; none, none; a wrong key sees nothing.
    assert wm.extract_all(marked, KEY) == [PAYLOAD]
    assert wm.extract_all(smooth_photo(), KEY) == []
    assert wm.extract_all(remarked, bytes(10)) == []


@pytest.mark.parametrize("shape", [(1, 1), (2, 3000), (3000, 2), (7, 7), (40, 40)])
def test_degenerate_copies_read_as_nothing(shape):
    """What copyright_verifyImage may be sent: tiny, sliver and blank images. A flat rendition
    has no spectrum to search (it used to end in a least-squares failure on NaN weights)."""
    rng = np.random.default_rng(sum(shape))
    for img in (rng.integers(0, 256, (*shape, 3), dtype=np.uint8), np.full((*shape, 3), 77, np.uint8)):
        assert wm.extract_all(img, KEY) == []
        assert wm.extract(img, KEY) is None
