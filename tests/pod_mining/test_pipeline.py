"""The PoD client pipeline, offline: file in, watermarked copy and a claim validators accept out."""

from __future__ import annotations

import hashlib
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from node.imaging import io as imio
from node.imaging.verify import extract_from_rendition, rendition_facts
from node.imaging.watermark import extract
from node.keys import Keypair
from node.pod_mining.pipeline import (
    PodError,
    detect_format,
    hash_file,
    prepare_file,
    prepare_image,
    register_call,
    sign_registration,
)
from node.pod_mining.verify import ImageDecodeError, analyse_image_bytes, decode_image_bytes
from node.runtime import copyright
from node.runtime.runtime import RUNTIME, SPEC_VERSION
from node.types import Mortality, SignedExtra
from tests.imaging.conftest import natural_image
from tests.runtime.conftest import SMALL_POD
from tests.runtime.copyright_util import GENESIS, Chain

KEY = copyright.watermark_key_for(GENESIS)


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    return natural_image(21, 384, 512)


@pytest.fixture
def jpeg_file(tmp_path: Path, photo: np.ndarray) -> Path:
    path = tmp_path / "photo.jpg"
    Image.fromarray(photo).save(path, quality=92)
    return path


def test_jpeg_upload_writes_a_jpeg_copy_that_verifies(jpeg_file: Path, bob: Keypair) -> None:
    seen: list[tuple[int, int]] = []
    up = prepare_file(
        jpeg_file, genesis_hash=GENESIS, uploader=bob.account_id, title="Harbour", creator="B. Photographer",
        progress=lambda done, total: seen.append((done, total)),
    )  # fmt: skip
    size = jpeg_file.stat().st_size
    assert up.sha256 == hashlib.sha256(jpeg_file.read_bytes()).digest()
    assert seen[0] == (0, size) and seen[-1] == (size, size)
    assert (up.width, up.height, up.format_name, up.is_raw) == (512, 384, "jpeg", False)
    assert up.payload == copyright.watermark_payload_for(GENESIS, up.sha256, bob.account_id)
    assert up.watermarked == jpeg_file.with_name("photo.imagechain.jpg")
    with Image.open(up.watermarked) as written:
        assert written.format == "JPEG" and written.size == (512, 384)
    # The claim is the written file's: its rendition carries the payload on the validators' path.
    marked = imio.load_rgb(up.watermarked)
    assert extract(marked, KEY) == up.payload
    rendition = np.frombuffer(up.rendition, dtype=np.uint8).reshape(256, 256)
    assert extract_from_rendition(rendition, KEY) == up.payload
    assert rendition_facts(up.rendition, KEY).phash == up.phash
    assert jpeg_file.read_bytes() != up.watermarked.read_bytes()  # the original is untouched


def test_png_and_other_inputs_write_png(tmp_path: Path, photo: np.ndarray, bob: Keypair) -> None:
    src = tmp_path / "scan.tiff"
    Image.fromarray(photo).save(src)
    up = prepare_file(src, genesis_hash=GENESIS, uploader=bob.account_id, title="Scan")
    assert up.format_name == "tiff" and up.watermarked == tmp_path / "scan.imagechain.png"
    out = tmp_path / "sub" / "mine.png"
    up2 = prepare_file(src, genesis_hash=GENESIS, uploader=bob.account_id, title="Scan", out=out)
    assert up2.watermarked == out and out.exists()
    assert imio.load_rgb(out).shape == photo.shape


def test_format_comes_from_content_not_the_name(tmp_path: Path, photo: np.ndarray) -> None:
    liar = tmp_path / "really_a_png.jpg"
    Image.fromarray(photo).save(liar, format="PNG")
    assert detect_format(liar) == (copyright.FORMAT_BY_NAME["png"], False)
    raw = tmp_path / "DSC_0001.NEF"
    raw.write_bytes(b"II*\x00" + bytes(100))
    assert detect_format(raw) == (copyright.FORMAT_BY_NAME["nef"], True)
    odd_raw = tmp_path / "frame.k25"  # a RAW extension the runtime has no code for
    odd_raw.write_bytes(bytes(64))
    assert detect_format(odd_raw) == (copyright.FORMAT_BY_NAME["raw"], True)


def test_hash_is_streamed(tmp_path: Path) -> None:
    big = tmp_path / "big.bin"
    data = bytes(range(256)) * 20_000  # 5 MB: several chunks
    big.write_bytes(data)
    calls: list[int] = []
    digest, size = hash_file(big, lambda done, total: calls.append(done))
    assert digest == hashlib.sha256(data).digest() and size == len(data)
    assert len(calls) >= 5 and calls == sorted(calls)


@pytest.mark.parametrize(
    ("name", "content", "kwargs", "message"),
    [
        ("notes.txt", b"hello", {}, "not an image format"),
        ("broken.png", b"\x89PNG\r\n\x1a\n" + bytes(40), {}, "cannot decode"),
        ("DSC_0002.CR2", b"II*\x00\x10\x00\x00\x00CR" + bytes(64), {}, "rawpy"),
        ("photo.jpg", None, {"raw": True}, "not a camera RAW"),
        ("photo.jpg", None, {"title": "x" * 257}, "at most 256"),
        ("photo.jpg", None, {"title": "  "}, "needs a title"),
        ("small.png", "small", {}, "at least 128 pixels"),
    ],
)
def test_bad_inputs_are_clear_errors(
    tmp_path: Path,
    jpeg_file: Path,
    bob: Keypair,
    name: str,
    content: bytes | str | None,
    kwargs: dict,
    message: str,
) -> None:
    path = jpeg_file if content is None else tmp_path / name
    if content == "small":  # decodes, but too small to carry the watermark
        Image.fromarray(np.full((90, 120, 3), 128, np.uint8)).save(path)
    elif content is not None:
        path.write_bytes(content)
    args = {"genesis_hash": GENESIS, "uploader": bob.account_id, "title": "t", **kwargs}
    with pytest.raises(PodError, match=message):
        prepare_file(path, **args)


def test_where_the_copy_goes(jpeg_file: Path, bob: Keypair) -> None:
    args = {"genesis_hash": GENESIS, "uploader": bob.account_id, "title": "t"}
    with pytest.raises(PodError, match="overwrite the original"):
        prepare_file(jpeg_file, out=jpeg_file, **args)
    with pytest.raises(PodError, match="use a .png or .jpg name"):
        prepare_file(jpeg_file, out=jpeg_file.with_suffix(".webp"), **args)
    first = prepare_file(jpeg_file, **args)
    assert first.watermarked is not None and first.watermarked.exists()
    # The default name is never overwritten (it may be an earlier registration's published copy)...
    with pytest.raises(PodError, match="already exists"):
        prepare_file(jpeg_file, **args)
    # ...but an explicit --out is.
    again = prepare_file(jpeg_file, out=first.watermarked, **args)
    assert again.payload == first.payload and again.watermarked == first.watermarked


def test_preflight_stops_before_the_slow_steps(jpeg_file: Path, bob: Keypair) -> None:
    def known(sha256: bytes) -> None:
        raise PodError("already registered as registration #7", 7)

    with pytest.raises(PodError) as stopped:
        prepare_file(jpeg_file, genesis_hash=GENESIS, uploader=bob.account_id, title="t", preflight=known)
    assert stopped.value.registration_id == 7
    assert not jpeg_file.with_name("photo.imagechain.jpg").exists()


def test_a_claim_that_would_not_verify_is_never_built(
    photo: np.ndarray, bob: Keypair, monkeypatch: pytest.MonkeyPatch
) -> None:
    # If the mark did not survive (here: an embedder that does nothing), validators would refuse
    # the claim; the pipeline finds out first and refuses it locally instead of paying a fee.
    monkeypatch.setattr("node.imaging.watermark.embed", lambda rgb, key, payload: rgb)
    with pytest.raises(PodError, match="does not verify"):
        prepare_image(
            photo, genesis_hash=GENESIS, uploader=bob.account_id, sha256=b"\x01" * 32, format_code=2, is_raw=False,
            title="unmarked",
        )  # fmt: skip


def test_signed_registration_registers_on_a_chain(dev_spec, photo: np.ndarray, bob: Keypair) -> None:
    chain = Chain.new(dev_spec, **SMALL_POD)
    up = prepare_image(
        photo, genesis_hash=GENESIS, uploader=bob.account_id, sha256=b"\x02" * 32, format_code=1, is_raw=False,
        title="t", creator="c", description="d",
    )  # fmt: skip
    spec, args = RUNTIME.lookup_call(register_call(up))  # the runtime parses the arguments as built
    assert spec.full_name == "copyright.register" and args[8] == up.rendition
    ext = sign_registration(bob, up, SignedExtra(GENESIS, SPEC_VERSION, 0, 0, Mortality.from_genesis(GENESIS)))
    (result,) = chain.block(ext)
    assert result.ok, result.names()
    registration = chain.registration(result.event("copyright", "Registered").fields[0])
    assert registration.owner == bob.account_id and registration.original.wm_payload == up.payload
    assert (registration.title, registration.creator, registration.description) == ("t", "c", "d")


def test_raw_claims_are_built_at_the_call_level(dev_spec, photo: np.ndarray, bob: Keypair) -> None:
    """Without rawpy no RAW file decodes; the pipeline still builds a RAW claim from pixels."""
    up = prepare_image(
        photo, genesis_hash=GENESIS, uploader=bob.account_id, sha256=b"\x03" * 32,
        format_code=copyright.FORMAT_BY_NAME["dng"], is_raw=True, title="raw",
    )  # fmt: skip
    assert up.is_raw and up.format_name == "dng" and up.watermarked is None


# ---------------------------------------------------------------------------------------------
# The verifier's side
# ---------------------------------------------------------------------------------------------


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height (nothing to decode behind it)."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = struct.pack(">I", len(ihdr)) + b"IHDR" + ihdr + struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
    end = struct.pack(">I", 0) + b"IEND" + struct.pack(">I", zlib.crc32(b"IEND"))
    return b"\x89PNG\r\n\x1a\n" + chunk + end


def test_decoding_untrusted_bytes(photo: np.ndarray) -> None:
    for width, height in ((8000, 6000), (100_000, 100_000)):  # ours, then Pillow's bomb limit
        with pytest.raises(ImageDecodeError, match="at most 40,000,000 pixels"):
            decode_image_bytes(_png_header_only(width, height))
    for junk in (b"", b"GIF89a" + bytes(10), b"\xff\xd8\xff" + bytes(100), bytes(range(256))):
        with pytest.raises(ImageDecodeError):
            decode_image_bytes(junk)
    # Transparency over white, as load_rgb does for files.
    rgba = np.zeros((4, 4, 4), dtype=np.uint8)
    import io

    buffer = io.BytesIO()
    Image.fromarray(rgba, "RGBA").save(buffer, format="PNG")
    assert (decode_image_bytes(buffer.getvalue()) == 255).all()


def test_analyse_finds_the_payload_of_a_jpeg_copy(jpeg_file: Path, bob: Keypair) -> None:
    import io

    up = prepare_file(jpeg_file, genesis_hash=GENESIS, uploader=bob.account_id, title="t")
    assert up.watermarked is not None
    buffer = io.BytesIO()
    Image.open(up.watermarked).save(buffer, format="JPEG", quality=50)
    facts = analyse_image_bytes(buffer.getvalue(), KEY)
    assert facts.payload == up.payload and (facts.width, facts.height) == (512, 384)
    assert (facts.phash ^ up.phash).bit_count() <= 4
