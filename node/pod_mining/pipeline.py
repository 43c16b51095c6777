"""The uploader's side of proof of data: from an image file to a signed `copyright.register`.

One function per step, in the order they run (`prepare_file` chains them):

1. `hash_file`: stream the file through SHA-256 (1 MiB chunks, a progress callback for big
   files). The claim is about *this file*; the watermark payload is derived from its hash, so
   the hash comes first.
2. `detect_format`: the format code from the file's content (Pillow's reading of the header),
   the extension only as a fallback, and whether it is camera RAW (`node.imaging.io.is_raw`).
3. decode with `node.imaging.io.load_rgb` (EXIF orientation applied; RAW through rawpy, or a
   clear error when rawpy is missing). The file's size and mtime are compared before and after,
   so the decoded pixels are the pixels of the hashed file.
   `screen(rgb, format_code, is_raw)` runs then, before the slow steps: `upload.register_image`
   uses it to stop an image the chain would refuse (flat, a near-duplicate) before it costs time
   or a fee.
4. `prepare_image`: derive the chain's watermark key and this upload's payload
   (`copyright.watermark_key_for`, `watermark_payload_for`), embed at full resolution,
   **write the watermarked copy** (PNG, or JPEG quality 95 when the input is a JPEG; same
   dimensions) with its rights metadata (`node.pod_mining.rights`: the original's EXIF kept,
   the claim added as XMP; written before the file's Merkle root is taken, since the root is
   the claim), then decode *the written file* again and compute its verification rendition:
   the copy the photographer publishes is the image the chain vouches for, JPEG rounding
   included.
5. check the claim locally with the runtime's own validity rule (`copyright.check_claim`: the
   validators' integer pHash and watermark extraction on the rendition, and the chain's
   `min_phash_energy` when the caller knows it). A claim that fails
   here would be refused by every pool, so it is never submitted (and never costs a fee).
6. `register_call` and `sign_registration` build and sign the extrinsic; through a node,
   `node.pod_mining.upload.register_image` fetches the nonce, mortality and genesis hash and
   submits it.

Nothing here talks to a node: the genesis hash comes in as an argument, so the pipeline can run
offline and be tested without a chain. The published file is the claim's first blob (`BlobRef`:
its Merkle root and size), which the uploader stores in the image store before registering.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from node.fsutil import write_atomic
from node.imaging import io as imio
from node.imaging.verify import rendition_facts
from node.keys import Keypair, encode_address
from node.pod_mining.rights import Rights, SourceMetadata, encode_published, read_source_metadata
from node.primitives.merkle import blob_root
from node.runtime import copyright
from node.runtime.support import InvalidCall
from node.types import Call, SignedExtra, sign_extrinsic

__all__ = [
    "PodError",
    "PreparedUpload",
    "Progress",
    "default_output_path",
    "detect_format",
    "hash_file",
    "prepare_file",
    "prepare_image",
    "register_call",
    "sign_registration",
]

CHUNK_BYTES = 1 << 20
JPEG_QUALITY = 95
OUTPUT_SUFFIX = ".imagechain"
OUTPUT_EXTENSIONS = (".png", ".jpg", ".jpeg")

# `progress(done_bytes, total_bytes)`, called while the file is read.
Progress = Callable[[int, int], None]
# `screen(rgb, format_code, is_raw)`, called once the file is decoded, before it is watermarked.
Screen = Callable[[np.ndarray, int, bool], None]

# Pillow's format names -> the runtime's format names (`copyright.FORMATS`).
_PIL_FORMATS = {
    "JPEG": "jpeg", "MPO": "jpeg", "PNG": "png", "TIFF": "tiff", "WEBP": "webp", "GIF": "gif",
    "BMP": "bmp", "JPEG2000": "jpeg2000", "HEIF": "heif", "AVIF": "avif",
}  # fmt: skip
JPEG_CODE = copyright.FORMAT_BY_NAME["jpeg"]
GENERIC_RAW_CODE = copyright.FORMAT_BY_NAME["raw"]


class PodError(Exception):
    """The upload cannot be registered as given; the message says why, fit to show a person.

    `registration_id` names the registration the file already is, when that is the reason.
    """

    def __init__(self, message: str, registration_id: int | None = None) -> None:
        super().__init__(message)
        self.registration_id = registration_id


@dataclass(frozen=True)
class PreparedUpload:
    """Everything `copyright.register` needs, plus where the watermarked copy was written."""

    sha256: bytes
    width: int
    height: int
    format_code: int
    is_raw: bool
    phash: int
    payload: bytes
    rendition: bytes  # 65,536 bytes: the watermarked copy's 256x256 luma rendition
    title: str
    creator: str
    description: str
    watermarked: Path | None
    published: bytes = b""  # the exact bytes of the published (watermarked) file
    blobs: tuple[copyright.BlobRef, ...] = ()

    @property
    def format_name(self) -> str:
        return copyright.FORMATS[self.format_code]


# ---------------------------------------------------------------------------------------------
# Steps
# ---------------------------------------------------------------------------------------------


def hash_file(path: Path, progress: Progress | None = None) -> tuple[bytes, int]:
    """(SHA-256, size) of a file, read in 1 MiB chunks so a 100 MB RAW never sits in memory twice."""
    total = path.stat().st_size
    digest = hashlib.sha256()
    done = 0
    if progress is not None:
        progress(0, total)
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK_BYTES):
            digest.update(chunk)
            done += len(chunk)
            if progress is not None:
                progress(done, total)
    return digest.digest(), done


def detect_format(path: Path) -> tuple[int, bool]:
    """(format code, is_raw) of an image file.

    RAW is recognised by `is_raw` (extension or magic bytes) and gets its own code when the
    runtime knows the extension, else the generic "raw". Other files are named by their content
    (a PNG called photo.jpg is a PNG), the extension only when Pillow cannot tell.
    """
    if imio.is_raw(path):
        code = copyright.format_code_for_extension(path.suffix)
        return (code if code is not None and copyright.is_raw_format(code) else GENERIC_RAW_CODE), True
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            name = _PIL_FORMATS.get(im.format or "")
    except (UnidentifiedImageError, OSError):
        name = None
    code = copyright.FORMAT_BY_NAME.get(name) if name else copyright.format_code_for_extension(path.suffix)
    if code is None or copyright.is_raw_format(code):
        raise PodError(f"{path}: not an image format the chain knows (known: {_known_formats()})")
    return code, False


def default_output_path(source: Path, format_code: int) -> Path:
    """photo.jpg -> photo.imagechain.jpg; anything else -> <stem>.imagechain.png."""
    suffix = ".jpg" if format_code == JPEG_CODE else ".png"
    return source.with_name(source.stem + OUTPUT_SUFFIX + suffix)


def _check_text(title: str, creator: str, description: str) -> None:
    for name, text, limit in (
        ("title", title, copyright.MAX_TITLE_CHARS),
        ("creator", creator, copyright.MAX_CREATOR_CHARS),
        ("description", description, copyright.MAX_DESCRIPTION_CHARS),
    ):
        if len(text) > limit:
            raise PodError(f"the {name} has {len(text)} characters; the chain takes at most {limit}")
    if not title.strip():
        raise PodError("a registration needs a title")


def prepare_image(
    rgb: np.ndarray,
    *,
    genesis_hash: bytes,
    uploader: bytes,
    sha256: bytes,
    format_code: int,
    is_raw: bool,
    title: str,
    creator: str = "",
    description: str = "",
    out: Path | None = None,
    jpeg_output: bool = False,
    chain_name: str = "",
    source_metadata: SourceMetadata | None = None,
    min_phash_energy: int = copyright.CopyrightParams.min_phash_energy,
) -> PreparedUpload:
    """Watermark a decoded image for `uploader` on this chain and build a checked claim.

    `sha256`, `format_code` and `is_raw` describe the uploaded file (its hash decides the
    payload). With `out`, the watermarked copy is written there (JPEG quality 95 if
    `jpeg_output`, else PNG) and the rendition is taken from the file as written; without it,
    from the watermarked pixels in memory. Either way the published file carries the rights
    metadata (`node.pod_mining.rights`: `source_metadata` is the original's EXIF to keep,
    `chain_name` names the chain). Raises PodError if the claim would be invalid on a chain whose
    registrations need `min_phash_energy`.
    """
    from node.imaging.rendition import verification_rendition
    from node.imaging.watermark import embed

    _check_text(title, creator, description)
    a = np.asarray(rgb)
    if a.dtype != np.uint8 or a.ndim not in (2, 3) or a.shape[0] == 0 or a.shape[1] == 0:
        raise PodError(f"expected a non-empty uint8 image, got {a.dtype} {a.shape}")
    height, width = a.shape[:2]
    key = copyright.watermark_key_for(genesis_hash)
    payload = copyright.watermark_payload_for(genesis_hash, sha256, uploader)
    try:
        marked = embed(a, key, payload)
    except ValueError as exc:  # too small to carry the watermark
        raise PodError(str(exc)) from None
    rights = Rights(chain_name, genesis_hash, encode_address(uploader), payload, sha256, title, creator)
    published_file = encode_published(marked, jpeg=jpeg_output, rights=rights, source=source_metadata)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(out, published_file)
        published = imio.load_rgb(out)  # what the world will see, JPEG rounding included
        if published.shape[:2] != (height, width):
            raise PodError(
                f"{out}: the written copy is {published.shape[1]}x{published.shape[0]}, not {width}x{height}"
            )
    else:
        from node.pod_mining.verify import decode_image_bytes

        published = decode_image_bytes(published_file) if jpeg_output else marked
    rendition = np.ascontiguousarray(verification_rendition(published), dtype=np.uint8).tobytes()
    phash = rendition_facts(rendition, key).phash
    upload = PreparedUpload(
        sha256,
        width,
        height,
        format_code,
        is_raw,
        phash,
        payload,
        rendition,
        title,
        creator,
        description,
        out,
        published_file,
        (copyright.BlobRef(copyright.BLOB_PUBLISHED, blob_root(published_file), len(published_file)),),
    )
    check_locally(genesis_hash, uploader, upload, min_phash_energy)
    return upload


def check_locally(
    genesis_hash: bytes,
    uploader: bytes,
    upload: PreparedUpload,
    min_phash_energy: int = copyright.CopyrightParams.min_phash_energy,
) -> None:
    """Run the validators' rule (`copyright.check_claim`) before anything is submitted."""
    claim = copyright.Claim(
        upload.sha256, upload.width, upload.height, upload.format_code, upload.is_raw, upload.phash,
        upload.payload, upload.blobs, upload.rendition, upload.title, upload.creator, upload.description,
    )  # fmt: skip
    try:
        copyright.check_claim(genesis_hash, uploader, claim, min_phash_energy=min_phash_energy)
    except InvalidCall as exc:
        where = f" ({upload.watermarked})" if upload.watermarked is not None else ""
        raise PodError(
            f"the watermarked copy{where} does not verify, so validators would refuse it: {exc}"
        ) from exc


def prepare_file(
    path: str | os.PathLike[str],
    *,
    genesis_hash: bytes,
    uploader: bytes,
    title: str,
    creator: str = "",
    description: str = "",
    raw: bool = False,
    out: str | os.PathLike[str] | None = None,
    progress: Progress | None = None,
    preflight: Callable[[bytes], None] | None = None,
    screen: Screen | None = None,
    chain_name: str = "",
    min_phash_energy: int = copyright.CopyrightParams.min_phash_energy,
) -> PreparedUpload:
    """The whole pipeline for one file (module doc); writes the watermarked copy.

    `raw=True` asserts the file is the camera RAW original (the upload that can take over
    ownership of a registered image): a file that is not RAW is refused rather than claimed
    as one. RAW files are recognised and claimed as RAW either way.

    The copy goes to `out` (overwritten if it exists: the caller chose it) or next to the file
    (<name>.imagechain.png/.jpg), which must not exist yet: it may be the published copy of an
    earlier registration. `preflight(sha256)` runs right after hashing, before the slow steps;
    `upload.register_image` uses it to stop at once when the chain already has this exact file;
    `screen(rgb, format_code, is_raw)` right after decoding. The original's EXIF and ICC profile
    go into the copy, with the claim (`chain_name`, module doc).
    """
    source = Path(path)
    if not source.is_file():
        raise PodError(f"{source}: no such file")
    _check_text(title, creator, description)
    format_code, is_raw = detect_format(source)
    if raw and not is_raw:
        raise PodError(
            f"{source} is not a camera RAW file (by extension or content), so it cannot be registered as RAW"
        )
    before = source.stat()
    sha256, size = hash_file(source, progress)
    if size == 0:
        raise PodError(f"{source} is empty")
    if preflight is not None:
        preflight(sha256)
    target = Path(out) if out is not None else default_output_path(source, format_code)
    if target.resolve() == source.resolve():
        raise PodError(f"the watermarked copy would overwrite the original {source}; choose another --out")
    if target.suffix.lower() not in OUTPUT_EXTENSIONS:
        raise PodError(f"{target}: the watermarked copy is written as PNG or JPEG; use a .png or .jpg name")
    if out is None and target.exists():
        raise PodError(
            f"{target} already exists (an earlier watermarked copy?); choose where to write with --out"
        )
    try:
        rgb = imio.load_rgb(source)
    except imio.UnsupportedRawError as exc:
        raise PodError(str(exc)) from exc
    except (OSError, ValueError, SyntaxError) as exc:  # Pillow's ways of saying "cannot decode"
        raise PodError(f"{source}: cannot decode the image: {exc}") from exc
    after = source.stat()
    if (before.st_size, before.st_mtime_ns) != (after.st_size, after.st_mtime_ns):
        raise PodError(f"{source} changed while it was being read; try again")
    if screen is not None:
        screen(rgb, format_code, is_raw)
    jpeg = target.suffix.lower() in (".jpg", ".jpeg") if out is not None else format_code == JPEG_CODE
    return prepare_image(
        rgb, genesis_hash=genesis_hash, uploader=uploader, sha256=sha256, format_code=format_code, is_raw=is_raw,
        title=title, creator=creator, description=description, out=target, jpeg_output=jpeg, chain_name=chain_name,
        source_metadata=read_source_metadata(source), min_phash_energy=min_phash_energy,
    )  # fmt: skip


def register_call(upload: PreparedUpload) -> Call:
    """The `copyright.register` call, arguments in the runtime's order."""
    args: tuple[Any, ...] = (
        upload.sha256, upload.width, upload.height, upload.format_code, upload.is_raw, upload.phash,
        upload.payload, [blob.to_wire() for blob in upload.blobs], upload.rendition, upload.title, upload.creator,
        upload.description,
    )  # fmt: skip
    return Call(copyright.NAME, "register", args)


def sign_registration(signer: Keypair, upload: PreparedUpload, extra: SignedExtra) -> bytes:
    """The encoded signed extrinsic. `signer` must be the uploader the payload was derived for."""
    return sign_extrinsic(signer, register_call(upload), extra).encode()


def _known_formats() -> str:
    return ", ".join(
        sorted({name for code, name in copyright.FORMATS.items() if code < copyright.RAW_FORMAT_MIN})
    )
