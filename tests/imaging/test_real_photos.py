"""The verification kernels against their numpy references on real photographs (tests/data),
and the properties the chain relies on, measured on real content rather than synthetic images.

Validators recompute the pHash and read the watermark from a registration's rendition; a numba
kernel that disagreed with its reference on any input would split the network, so each is
compared on the photos themselves, on marked copies and on attacked ones.
"""

import io

import numpy as np
import pytest
from PIL import Image

from node.imaging import ecc, sync
from node.imaging import verify as vf
from node.imaging import watermark as wm
from node.imaging.dct import block_dct, block_dct_ref
from node.imaging.phash import hamming, phash, phash_from_rendition
from node.imaging.rendition import verification_rendition, verification_rendition_ref
from tests.imaging.conftest import REAL_PHOTOS, real_photo

KEY = bytes.fromhex("5eed5eed5eed5eed5eed")
PAYLOAD = bytes.fromhex("c0ffee00c0ffee00")


def _jpeg(a: np.ndarray, quality: int) -> np.ndarray:
    buffer = io.BytesIO()
    Image.fromarray(a).save(buffer, "JPEG", quality=quality)
    return np.asarray(Image.open(buffer).convert("RGB"))


@pytest.fixture(scope="module")
def marked(real: np.ndarray) -> np.ndarray:
    return wm.embed(real, KEY, PAYLOAD)


def _copies(real: np.ndarray, marked: np.ndarray) -> list[np.ndarray]:
    """The photo, its marked copy, and marked copies after JPEG 30 and a resize to 60%."""
    h, w = marked.shape[:2]
    small = np.asarray(Image.fromarray(marked).resize((w * 3 // 5, h * 3 // 5), Image.BILINEAR))
    return [real, marked, _jpeg(marked, 30), small]


def test_rendition_and_block_dct_equal_their_references(real, marked):
    for img in _copies(real, marked):
        r = verification_rendition(img)
        assert np.array_equal(r, verification_rendition_ref(img))
        assert np.array_equal(block_dct(r, vf.US, vf.VS), block_dct_ref(r, vf.US, vf.VS))
        grey = np.ascontiguousarray(img[:, :, 1])
        assert np.array_equal(verification_rendition(grey), verification_rendition_ref(grey))


def test_soft_values_viterbi_and_verdict_equal_their_references(real, marked):
    for img in _copies(real, marked):
        r = verification_rendition(img)
        soft = vf.coded_soft(r, KEY)
        assert np.array_equal(soft, vf.coded_soft(r, KEY, reference=True))
        clipped = vf.clip_soft(soft)
        assert np.array_equal(ecc.viterbi(clipped, ecc.INFO_BITS), ecc.viterbi_ref(clipped, ecc.INFO_BITS))
        assert vf.extract_from_rendition(r, KEY) == vf.extract_from_rendition_ref(r, KEY)
    # ... and the verdicts are right: the photo carries nothing, every marked copy the payload.
    verdicts = [vf.extract_from_rendition(verification_rendition(c), KEY) for c in _copies(real, marked)]
    assert verdicts == [None, PAYLOAD, PAYLOAD, PAYLOAD]
    assert vf.extract_from_rendition(verification_rendition(marked), bytes(10)) is None


def test_mark_quality_and_a_blind_crop(real, marked):
    assert wm.image_psnr(real, marked) >= 40.5
    assert wm.image_ssim(real, marked) >= 0.98
    h, w = marked.shape[:2]
    cropped = np.ascontiguousarray(marked[h // 10 : h // 10 + h * 4 // 5, w // 20 : w // 20 + w * 4 // 5])
    assert vf.extract_from_rendition(verification_rendition(cropped), KEY) is None  # needs re-alignment
    assert sync.extract_with_sync(cropped, KEY) == PAYLOAD


def test_phash_on_real_photos():
    photos = {name: real_photo(name) for name in REAL_PHOTOS}
    hashes = {name: phash(p) for name, p in photos.items()}
    for name, p in photos.items():
        assert phash_from_rendition(verification_rendition_ref(p)) == hashes[name]
        assert hamming(hashes[name], phash(_jpeg(p, 50))) <= 2
        assert hamming(hashes[name], phash(wm.embed(p, KEY, PAYLOAD))) <= 2
    names = list(photos)
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            assert hamming(hashes[a], hashes[b]) > 16
