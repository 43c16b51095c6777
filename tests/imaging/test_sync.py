import numpy as np
from PIL import Image

from node.imaging import watermark as wm
from node.imaging.rendition import verification_rendition
from node.imaging.sync import candidate_angles, unrotate
from tests.imaging.conftest import natural_image

KEY = bytes.fromhex("a1b2c3d4e5f60718293a")
PAYLOAD = bytes.fromhex("feedfacecafebeef")


def test_unrotate_identity_and_angles():
    r = verification_rendition(natural_image(3, 300, 400))
    assert np.array_equal(unrotate(r, 0.0, 300, 400), r)
    a = candidate_angles()
    assert a[:2] == [0.25, -0.25] and max(a) == 3.0 and 0.0 not in a


def test_rotated_copy_is_resynchronised():
    img = natural_image(12, 900, 900)
    marked = wm.embed(img, KEY, PAYLOAD)
    rotated = np.asarray(Image.fromarray(marked).rotate(2.0, resample=Image.BILINEAR))
    assert wm.extract(rotated, KEY, sync=False) is None
    assert wm.extract(rotated, KEY) == PAYLOAD
    assert wm.extract(img, KEY) is None  # the search never invents a payload
