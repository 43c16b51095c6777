import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from node.commands.image import image_group
from node.imaging import io as imio
from node.imaging.phash import phash
from tests.imaging.conftest import natural_image


@pytest.mark.parametrize("ext", ["png", "jpg", "tiff", "webp"])
def test_load_formats(tmp_path, ext):
    a = natural_image(2, 120, 160)
    p = tmp_path / f"x.{ext}"
    imio.save_rgb(p, a)
    b = imio.load_rgb(p)
    assert b.shape == a.shape and b.dtype == np.uint8
    if ext in ("png", "tiff"):
        assert np.array_equal(a, b)


def test_load_grey_and_alpha(tmp_path):
    Image.fromarray(np.full((10, 12), 77, np.uint8)).save(tmp_path / "g.png")
    assert (imio.load_rgb(tmp_path / "g.png") == 77).all()
    rgba = np.zeros((4, 4, 4), np.uint8)
    Image.fromarray(rgba).save(tmp_path / "t.png")
    assert (imio.load_rgb(tmp_path / "t.png") == 255).all()  # transparent -> white


def test_raw_detection(tmp_path):
    (tmp_path / "a.CR2").write_bytes(b"II*\x00\x10\x00\x00\x00CR\x02\x00")
    (tmp_path / "b.bin").write_bytes(b"FUJIFILMCCD-RAW 0201")
    (tmp_path / "c.bin").write_bytes(b"\x00\x00\x00\x18ftypcrx \x00\x00")
    (tmp_path / "d.bin").write_bytes(b"IIU\x00\x18\x00\x00\x00")
    imio.save_rgb(tmp_path / "e.png", np.zeros((4, 4, 3), np.uint8))
    for name in ("a.CR2", "b.bin", "c.bin", "d.bin"):
        assert imio.is_raw(tmp_path / name), name
    assert not imio.is_raw(tmp_path / "e.png")
    assert imio.is_raw("photo.nef") and imio.is_raw("x.DNG")
    try:
        import rawpy  # noqa: F401
    except ImportError:
        with pytest.raises(imio.UnsupportedRawError, match="rawpy"):
            imio.load_rgb(tmp_path / "b.bin")


def test_cli_roundtrip(tmp_path):
    a = natural_image(3, 240, 320)
    src = tmp_path / "in.png"
    imio.save_rgb(src, a)
    r = CliRunner()
    res = r.invoke(image_group, ["phash", str(src)])
    assert res.exit_code == 0 and int(res.output, 16) == phash(a)
    out = tmp_path / "out.jpg"
    key, payload = "00112233445566778899", "0123456789abcdef"
    res = r.invoke(image_group, ["watermark", str(src), str(out), "--key", key, "--payload", payload])
    assert res.exit_code == 0, res.output
    quality = dict(line.split(": ") for line in res.output.splitlines())
    assert float(quality["psnr"].split()[0]) > 40.0 and 0.97 < float(quality["ssim"]) < 1.0
    res = r.invoke(image_group, ["extract", str(out), "--key", key])
    assert res.exit_code == 0 and res.output.strip() == payload
    res = r.invoke(image_group, ["extract", str(src), "--key", key, "--no-sync"])
    assert res.exit_code == 1
    res = r.invoke(image_group, ["compare", str(src), str(out)])
    assert res.exit_code == 0 and "distance" in res.output
    assert int(res.output.split()[-1]) <= 4
    res = r.invoke(image_group, ["watermark", str(src), str(out), "--key", "abc", "--payload", payload])
    assert res.exit_code != 0
    tiny = tmp_path / "tiny.png"
    imio.save_rgb(tiny, natural_image(4, 60, 90))
    res = r.invoke(image_group, ["watermark", str(tiny), str(out), "--key", key, "--payload", payload])
    assert res.exit_code == 1 and "at least 128 pixels" in res.output and res.exception is not None
    assert isinstance(res.exception, SystemExit)  # a clean click error, not a traceback
    lo = tmp_path / "logo.png"
    res = r.invoke(image_group, ["logo", "embed", str(src), str(lo), "--key", key])
    assert res.exit_code == 0, res.output
    res = r.invoke(image_group, ["logo", "extract", str(lo), str(tmp_path / "l.png"), "--key", key])
    assert res.exit_code == 0 and Image.open(tmp_path / "l.png").size == (256, 256)
