"""The rights metadata of the published copy: the photographer's EXIF kept, the chain's claim added.

A viewer shows who owns an image from its EXIF (Artist, Copyright) and XMP (dc:creator,
dc:rights, xmpRights:*); the watermark is invisible to it. So the copy `image register` writes
carries both: the original's EXIF (camera, artist, copyright, dates; orientation reset, since
the pixels are stored upright, and without the EXIF thumbnail, which would be an unmarked copy),
its ICC profile, and an XMP packet naming the claim.

What it cannot name is the registration id. The published file's bytes are committed on chain
(their Merkle root is the registration's published blob), so they are final before the
registration exists; the id is assigned when a block includes it. The packet names everything
else that identifies it, and a reference that resolves to it without the id:

* `imagechain:Chain`, `imagechain:GenesisHash`: which chain;
* `imagechain:Registrant`: the address that registers it (its owner unless it is a version of
  someone else's registration);
* `imagechain:WatermarkPayload`: what the invisible mark says (`copyright:payload:` names the
  registration);
* `imagechain:OriginalSha256` and `imagechain:VerifyReference`
  (`urn:imagechain:<genesis hash>:sha256:<original's sha256>`): `copyright_findBySha256` of that
  hash on that chain returns the registration; `imagechain image verify FILE` reads the mark.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape, quoteattr

import numpy as np

__all__ = [
    "NAMESPACE",
    "Rights",
    "SourceMetadata",
    "encode_published",
    "read_source_metadata",
    "rights_xmp",
    "verify_reference",
]

NAMESPACE = "urn:imagechain:xmp:1.0/"
JPEG_QUALITY = 95

_ORIENTATION = 0x0112
_ARTIST = 0x013B
_COPYRIGHT = 0x8298


@dataclass(frozen=True)
class SourceMetadata:
    """What the original file says about itself that the published copy keeps."""

    exif: bytes | None = None  # EXIF as Pillow writes it (IFD0 and its sub-IFDs; no thumbnail)
    icc_profile: bytes | None = None
    artist: str = ""
    copyright: str = ""


@dataclass(frozen=True)
class Rights:
    """The claim the published copy states (everything but the registration id: module doc)."""

    chain: str
    genesis_hash: bytes
    registrant: str  # address
    payload: bytes
    original_sha256: bytes
    title: str
    creator: str = ""


def verify_reference(genesis_hash: bytes, sha256: bytes) -> str:
    """A name for the registration that needs no id: `copyright_findBySha256(sha256)` on that chain."""
    return f"urn:imagechain:0x{genesis_hash.hex()}:sha256:0x{sha256.hex()}"


def read_source_metadata(path: Path) -> SourceMetadata:
    """The original's EXIF (orientation reset to 1: the decoded pixels are upright) and ICC profile;
    empty for a file Pillow cannot read metadata from (camera RAW, say)."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            exif = im.getexif()
            # An RGB profile only: the pixels are converted to RGB, and a CMYK or grey profile would
            # be wrong for them.
            icc = im.info.get("icc_profile") if im.mode in ("RGB", "RGBA") else None
            artist, notice = str(exif.get(_ARTIST, "")).strip(), str(exif.get(_COPYRIGHT, "")).strip()
            if _ORIENTATION in exif:
                exif[_ORIENTATION] = 1
            raw = exif.tobytes() if len(exif) else None  # IFD0 and sub-IFDs: the thumbnail (IFD1) is left out
    except Exception:  # noqa: BLE001 - metadata is a courtesy: a file the decoder reads is still registered
        return SourceMetadata()
    return SourceMetadata(raw, icc if isinstance(icc, bytes) else None, artist, notice)


def _notice(rights: Rights, source: SourceMetadata, symbol: str = "©") -> str:
    holder = rights.creator or source.artist or rights.registrant
    return f"{symbol} {holder}. Registered on imagechain ({rights.chain}) by {rights.registrant}"


def rights_xmp(rights: Rights, source: SourceMetadata) -> bytes:
    """The XMP packet: Dublin Core and XMP Rights for any viewer, the claim in imagechain's namespace."""
    creator = rights.creator or source.artist
    statement = source.copyright or _notice(rights, source)
    attributes = {
        "xmpRights:Marked": "True",
        "imagechain:Chain": rights.chain,
        "imagechain:GenesisHash": "0x" + rights.genesis_hash.hex(),
        "imagechain:Registrant": rights.registrant,
        "imagechain:WatermarkPayload": "0x" + rights.payload.hex(),
        "imagechain:OriginalSha256": "0x" + rights.original_sha256.hex(),
        "imagechain:VerifyReference": verify_reference(rights.genesis_hash, rights.original_sha256),
    }
    attrs = "".join(f"\n    {name}={quoteattr(value)}" for name, value in attributes.items())
    creator_xml = f"<dc:creator><rdf:Seq><rdf:li>{escape(creator)}</rdf:li></rdf:Seq></dc:creator>" if creator else ""
    usage = (
        "Licences are offered and sold on imagechain: imagechain licence list <registration id>, "
        "found with copyright_findBySha256 of imagechain:OriginalSha256"
    )
    packet = f"""<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>
<x:xmpmeta xmlns:x="adobe:ns:meta/">
 <rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">
  <rdf:Description rdf:about=""
    xmlns:dc="http://purl.org/dc/elements/1.1/"
    xmlns:xmpRights="http://ns.adobe.com/xap/1.0/rights/"
    xmlns:imagechain="{NAMESPACE}"{attrs}>
   <dc:title><rdf:Alt><rdf:li xml:lang="x-default">{escape(rights.title)}</rdf:li></rdf:Alt></dc:title>
   {creator_xml}
   <dc:rights><rdf:Alt><rdf:li xml:lang="x-default">{escape(statement)}</rdf:li></rdf:Alt></dc:rights>
   <xmpRights:Owner><rdf:Bag><rdf:li>{escape(rights.registrant)}</rdf:li></rdf:Bag></xmpRights:Owner>
   <xmpRights:UsageTerms><rdf:Alt><rdf:li xml:lang="x-default">{escape(usage)}</rdf:li></rdf:Alt></xmpRights:UsageTerms>
  </rdf:Description>
 </rdf:RDF>
</x:xmpmeta>
<?xpacket end="w"?>"""
    return packet.encode("utf-8")


def _exif(rights: Rights, source: SourceMetadata) -> bytes:
    """The original's EXIF, with Artist and Copyright filled in only where the photographer left
    them empty (theirs are kept as they are)."""
    from PIL import Image

    exif = Image.Exif()
    if source.exif:
        exif.load(source.exif)
    # EXIF's text fields are ASCII: "(c)" for the sign, and a name it cannot spell is left to XMP.
    if not str(exif.get(_ARTIST, "")).strip() and rights.creator.isascii() and rights.creator:
        exif[_ARTIST] = rights.creator
    notice = _notice(rights, source, "(c)")
    if not str(exif.get(_COPYRIGHT, "")).strip() and notice.isascii():
        exif[_COPYRIGHT] = notice
    return exif.tobytes()


def encode_published(
    marked: np.ndarray, *, jpeg: bool, rights: Rights | None = None, source: SourceMetadata | None = None
) -> bytes:
    """The published file's bytes: the marked pixels as JPEG 95 or PNG, with the rights metadata
    (without `rights`, the pixels alone, as before this metadata existed)."""
    from PIL import Image
    from PIL.PngImagePlugin import PngInfo

    image = Image.fromarray(np.ascontiguousarray(marked, dtype=np.uint8))
    options: dict[str, Any] = {}
    if rights is not None:
        source = source or SourceMetadata()
        xmp = rights_xmp(rights, source)
        options["exif"] = _exif(rights, source)
        if source.icc_profile:
            options["icc_profile"] = source.icc_profile
        if jpeg:
            options["xmp"] = xmp
        else:
            info = PngInfo()
            info.add_itxt("XML:com.adobe.xmp", xmp.decode("utf-8"))
            options["pnginfo"] = info
    buffer = io.BytesIO()
    if jpeg:
        image.save(buffer, format="JPEG", quality=JPEG_QUALITY, **options)
    else:
        image.save(buffer, format="PNG", **options)
    return buffer.getvalue()
