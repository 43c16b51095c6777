"""Issue 11.8: the copy `image register` writes keeps the photographer's EXIF and carries the claim
as EXIF and XMP rights fields, read back with exiv2 (pyexiv2) as any viewer would; the metadata
is in the bytes whose Merkle root the registration commits to."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pyexiv2
from PIL import Image

from node.keys import dev_keypair
from node.pod_mining.pipeline import prepare_file
from node.pod_mining.rights import verify_reference
from node.primitives.merkle import blob_root
from node.runtime import copyright
from tests.imaging.conftest import natural_image

BOB = dev_keypair("//Bob")
GENESIS = b"\x42" * 32


def camera_jpeg(path: Path, orientation: int = 1) -> None:
    exif = Image.Exif()
    exif[0x010F], exif[0x0110] = "Canon", "EOS R5"  # Make, Model
    exif[0x013B], exif[0x8298] = "Ann Photographer", "(c) 2026 Ann Photographer"  # Artist, Copyright
    exif[0x0112] = orientation
    Image.fromarray(natural_image(91, 384, 512)).save(path, quality=92, exif=exif.tobytes())


def metadata(path: Path) -> tuple[dict[str, str], dict[str, object]]:
    with pyexiv2.Image(str(path)) as image:
        return image.read_exif(), image.read_xmp()


def test_the_published_copy_keeps_exif_and_names_the_claim(tmp_path: Path) -> None:
    source = tmp_path / "harbour.jpg"
    camera_jpeg(source)
    upload = prepare_file(
        source, genesis_hash=GENESIS, uploader=BOB.account_id, title="Harbour", creator="Ann",
        chain_name="imagechain development",
    )  # fmt: skip
    assert upload.watermarked == tmp_path / "harbour.imagechain.jpg"
    exif, xmp = metadata(upload.watermarked)
    assert (exif["Exif.Image.Make"], exif["Exif.Image.Model"]) == ("Canon", "EOS R5")
    assert exif["Exif.Image.Artist"] == "Ann Photographer"  # the photographer's own, kept
    assert exif["Exif.Image.Copyright"] == "(c) 2026 Ann Photographer"
    sha256 = hashlib.sha256(source.read_bytes()).digest()
    assert xmp["Xmp.imagechain.Chain"] == "imagechain development"
    assert xmp["Xmp.imagechain.GenesisHash"] == "0x" + GENESIS.hex()
    assert xmp["Xmp.imagechain.Registrant"] == BOB.address
    assert xmp["Xmp.imagechain.WatermarkPayload"] == "0x" + upload.payload.hex()
    assert xmp["Xmp.imagechain.OriginalSha256"] == "0x" + sha256.hex() == "0x" + upload.sha256.hex()
    assert xmp["Xmp.imagechain.VerifyReference"] == verify_reference(GENESIS, sha256)
    assert xmp["Xmp.xmpRights.Marked"] == "True" and xmp["Xmp.xmpRights.Owner"] == [BOB.address]
    assert xmp["Xmp.dc.creator"] == ["Ann"] and "Ann Photographer" in str(xmp["Xmp.dc.rights"])
    assert not any("Registration" in key or key.endswith(".Id") for key in xmp)  # no id exists yet
    # The metadata is part of the published file the registration commits to.
    published = upload.watermarked.read_bytes()
    assert upload.published == published
    assert upload.blobs == (copyright.BlobRef(copyright.BLOB_PUBLISHED, blob_root(published), len(published)),)


def test_a_png_copy_gets_the_claim_and_upright_pixels(tmp_path: Path) -> None:
    source = tmp_path / "rotated.jpg"
    camera_jpeg(source, orientation=6)  # stored sideways, shown upright
    out = tmp_path / "out.png"
    upload = prepare_file(source, genesis_hash=GENESIS, uploader=BOB.account_id, title="T", out=out, chain_name="c")
    exif, xmp = metadata(out)
    assert exif["Exif.Image.Orientation"] == "1"  # the pixels were turned upright: no second turn
    assert Image.open(out).size == (384, 512) == (upload.width, upload.height)
    assert xmp["Xmp.imagechain.Registrant"] == BOB.address

    bare = tmp_path / "bare.png"
    Image.fromarray(np.asarray(Image.open(source).convert("RGB"))).save(bare)
    marked = prepare_file(bare, genesis_hash=GENESIS, uploader=BOB.account_id, title="T", creator="Bo", chain_name="c")
    assert marked.watermarked is not None
    exif, _ = metadata(marked.watermarked)
    assert exif["Exif.Image.Artist"] == "Bo"  # no EXIF of its own: the claim's
    assert exif["Exif.Image.Copyright"].startswith("(c) Bo. Registered on imagechain (c) by " + BOB.address)
