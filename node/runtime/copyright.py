"""`copyright`: image registrations, versions, ownership and tags (PROTOCOL section 10, white paper 2.1).

Registration
------------
`register` carries the claim about one image file: its SHA-256, width, height, format (and
whether it is camera RAW), the pHash, the 64-bit watermark payload, the blobs it stored in the
image store (`BlobRef`: kind, Merkle root, size; the published file is required, the original
sealed to the owner optional; recorded by `storage`), the **verification rendition** (the watermarked image's 256x256 integer luma
thumbnail, exactly 65,536 raw bytes, row-major) and free text (title, creator, description).

Two kinds of check, on purpose:

* **The claim must prove itself** (:func:`validate_call`, run by the executive for the pool
  *and* for every extrinsic of an imported block, like a signature): known format, non-zero
  size, RAW flag consistent with the format, the payload equal to
  ``watermark_payload_for(genesis, sha256, signer)``, the pHash recomputed from the rendition
  equal to the claim, and the watermark extracted from the rendition (the validators' bit-exact
  integer path) equal to the payload. A claim that fails can never become valid, so the
  extrinsic is *invalid*: the pool refuses it with the reason, and a block that carries it is
  rejected at import. Nothing is charged and nothing changes. The heavy part (pHash + watermark,
  about 1 ms, `node.imaging.verify`) is a pure function of the rendition, asked of the host
  (`ctx.host`), which the client memoises: pool entry, block building and import verify each
  rendition once per node.
* **The ownership rules read the chain state** (dispatch; a failure is a `DispatchError`, the
  fee is paid and `ExtrinsicFailed` names the error *and* the existing registration):
  - the SHA-256 of any registered version -> ``DuplicateSha256(existing id)``;
  - within ``phash_radius`` of a registration (any of its versions; the nearest, then the
    oldest, is the one that counts) the upload is accepted only
    - as RAW with pixels >= the highest registered version: a new version, and ownership moves
      to the uploader (``OwnershipTakenOver``), or
    - with strictly more pixels than the highest registered version: a new version
      (``VersionAdded``), ownership unchanged;
    - otherwise ``NearDuplicate(existing id, distance)``;
  - otherwise a new registration with the next sequential id (``Registered``), announced as
    `NOVEL_REGISTRATION` (`pod` decides whether its uploader earns a mining reward).
  A change of owner is announced as `OWNER_CHANGED` (`licensing` withdraws the open offers).

Watermark key and payload (public derivations; the PoD client uses these functions)
-----------------------------------------------------------------------------------
* key = ``blake2b-256(b"imagechain/watermark-key" || genesis_hash)[:10]``: one 80-bit key per
  chain. It must be known *before* anything about a found copy is known: a verifier extracts the
  payload from any image with this key and looks the payload up (``copyright:payload:``), which
  is the white paper's "when a copy is found, its watermark traces it back to the chain"
  (2.1.3.2). A per-image key would need the image's identity to find the image's identity.
* payload = ``blake2b-256(b"imagechain/watermark-payload" || genesis_hash || sha256 || uploader)[:8]``:
  binds the mark to this chain, this file and this uploader, so a watermarked rendition copied
  from someone else's registration does not verify under another signer. Payloads are unique
  in state (a second one is ``PayloadTaken``; a collision needs ~2**32 registrations).

Near-duplicate index (consensus: chain state only, exact)
---------------------------------------------------------
Multi-index hashing in storage. The 64-bit pHash is cut into 5 chunks (13, 13, 13, 13 and 12
bits, most significant first). Every indexed (pHash, id) pair is stored in one bucket per
chunk, keyed by the chunk's value. Two hashes within distance r differ in at most
``s = r // 5`` bits in at least one chunk (pigeonhole), so probing, for each chunk, every value
within s bits of the query's chunk finds every registration within r; each candidate's full
distance is then checked exactly. For the dev radius 8, s = 1: 69 bucket reads per search.
Results are ``[(id, distance)]`` sorted by (distance, id). Buckets are paged (256 entries per
page) so an insert rewrites at most one 4 KiB page however skewed the hash distribution.
Every version's pHash is indexed (under the registration's id), so a chain of small edits cannot
walk away from a registration one version at a time.

Params (genesis `copyright` section: phash_radius, tag_fee in IMG, min_phash_energy)
  copyright:params                   -> [phash_radius, tag_fee(u128), min_phash_energy]
Storage
  copyright:next_id                  -> u64, the next registration id (ids start at 1)
  copyright:registration:<id u64>    -> Registration (see `Registration.to_wire`)
  copyright:sha256:<sha256>          -> id (u64): every version's file hash
  copyright:payload:<payload 8>      -> id (u64): every version's watermark payload
  copyright:phash:<c u8><v u16>      -> number of pages (u32) of bucket v of chunk c
  copyright:phash:<c><v><page u32>   -> entries, 16 bytes each: pHash (u64) || id (u64)
  copyright:owned_count:<acct>       -> u32, registrations owned by acct
  copyright:owned:<acct><index u32>  -> id (u64), index < owned_count (order not meaningful)
  copyright:owned_pos:<id>           -> u32, the id's index in its owner's list
  copyright:tags:<id>                -> [[tag, tagger, block], ...] in tagging order (<= 32)
Calls
  register(sha256, width, height, format_code, is_raw, phash, wm_payload, blobs,
           rendition, title, creator, description)
  transfer_ownership(id, new_owner)              owner only
  tag(id, tag)                                   anyone; burns `tag_fee` (white paper 3.3.1)
  untag(id, tag)                                 owner only; no refund
Events
  Registered(id, owner, sha256, phash)
  VersionAdded(id, version index, uploader, width, height)
  OwnershipTakenOver(id, previous owner, new owner)
  OwnershipTransferred(id, from, to)
  Tagged(id, who, tag, fee) / Untagged(id, tag)
Errors (dispatch)
  DuplicateSha256(id), NearDuplicate(id, distance), PayloadTaken(id), TooManyVersions(id),
  UnknownRegistration(id), NotOwner(id), AlreadyOwner(id), BadTag, TagExists(id),
  TooManyTags(id), UnknownTag(id),
  InvalidClaim (a claim reaching dispatch without the validity hook, e.g. nested)
"""

from __future__ import annotations

import functools
import struct
from dataclasses import dataclass
from itertools import combinations
from typing import Any

from node.codec import (
    U64_MAX,
    DecodeError,
    blake2b_256,
    expect_bytes,
    expect_int,
    expect_list,
    expect_str,
    u128_from_bytes,
    u128_to_bytes,
)
from node.runtime import balances, system, timestamp
from node.runtime.support import (
    BYTES,
    MSGPACK,
    PURE_HOST,
    U8,
    U16,
    U32,
    U64,
    AccountId,
    Balance,
    BlockContext,
    DispatchError,
    GenesisState,
    Host,
    InvalidCall,
    Notification,
    Origin,
    Record,
    RuntimeModule,
    StateGet,
    StorageMap,
    StorageValue,
    arg_account,
    arg_bool,
    arg_list,
    arg_str,
    arg_u32,
    arg_u64,
    call,
    ensure,
    ensure_signed,
    error,
    event,
)
from node.units import parse_img

NAME = "copyright"

# A registration that is no version of an earlier one: `(who, id, width, height, rendition)`.
NOVEL_REGISTRATION = Notification("copyright.novel_registration")
# A registration or version stored blobs in the image store: `(registration id, (BlobRef, ...))`.
BLOBS_ADDED = Notification("copyright.blobs_added")
# A registration changed hands (transfer or takeover): `(registration_id)`.
OWNER_CHANGED = Notification("copyright.owner_changed")

# ---------------------------------------------------------------------------------------------
# Params and constants
# ---------------------------------------------------------------------------------------------

RENDITION_SIZE = 256
RENDITION_BYTES = RENDITION_SIZE * RENDITION_SIZE
WATERMARK_KEY_BYTES = 10
WATERMARK_PAYLOAD_BYTES = 8
MAX_DIMENSION = 1 << 20  # pixels per side; larger claims are refused as malformed
MAX_TITLE_CHARS = 256
MAX_CREATOR_CHARS = 128
MAX_DESCRIPTION_CHARS = 2048
# The blobs a registration stores (`BlobRef.kind`): the published (watermarked) file, public, and
# optionally the original, sealed to the owner (pynacl SealedBox), which only the owner opens.
BLOB_PUBLISHED = 0
BLOB_SEALED_ORIGINAL = 1
BLOB_KINDS = (BLOB_PUBLISHED, BLOB_SEALED_ORIGINAL)
MAX_BLOB_BYTES = 256 * 1024 * 1024  # a RAW original fits
MAX_VERSIONS = 64
MAX_TAGS = 32
MAX_TAG_CHARS = 32
# Largest radius the index answers (s = 3: at most 5 * 378 bucket reads). Genesis must stay below.
MAX_SEARCH_RADIUS = 16

# Format codes (u8). 1-31: ordinary formats; 64-127: camera RAW (is_raw must be true exactly
# for these). 0 and anything unlisted are refused.
FORMATS: dict[int, str] = {
    1: "jpeg", 2: "png", 3: "tiff", 4: "webp", 5: "heif", 6: "avif", 7: "gif", 8: "bmp", 9: "jpeg2000",
    64: "dng", 65: "cr2", 66: "cr3", 67: "crw", 68: "nef", 69: "nrw", 70: "arw", 71: "srf", 72: "sr2",
    73: "raf", 74: "orf", 75: "rw2", 76: "pef", 77: "srw", 78: "x3f", 79: "iiq", 80: "3fr", 81: "erf",
    82: "kdc", 83: "mos", 84: "mrw", 85: "rwl", 127: "raw",
}  # fmt: skip
RAW_FORMAT_MIN = 64
FORMAT_BY_NAME: dict[str, int] = {name: code for code, name in FORMATS.items()}
FORMAT_BY_NAME.update({"jpg": 1, "jpe": 1, "tif": 3, "heic": 5, "jp2": 9, "raw": 127})


def is_raw_format(format_code: int) -> bool:
    return format_code in FORMATS and format_code >= RAW_FORMAT_MIN


def format_code_for_extension(extension: str) -> int | None:
    """The format code for a file extension (``".JPG"`` -> 1), or None if unknown (PoD client)."""
    return FORMAT_BY_NAME.get(extension.lower().lstrip("."))


@dataclass(frozen=True)
class CopyrightParams:
    phash_radius: int = 8
    tag_fee: int = 10**16  # 0.01 IMG, burned
    # The least low-frequency structure an image needs to be registered (`verify.RenditionFacts
    # .energy`). Measured: flat images (watermarked or not, JPEG'd) 0, flat + noise 3.8e8, a faint
    # sky (+-6 grey levels) 1.4e9, photos 1e10 and up.
    min_phash_energy: int = 1 << 30

    def to_wire(self) -> list[Any]:
        return [self.phash_radius, u128_to_bytes(self.tag_fee), self.min_phash_energy]

    @classmethod
    def from_wire(cls, obj: Any) -> CopyrightParams:
        radius, fee, energy = expect_list(obj, 3, "copyright params")
        return cls(expect_int(radius, MAX_SEARCH_RADIUS, "phash radius"), u128_from_bytes(fee), expect_int(energy))


# ---------------------------------------------------------------------------------------------
# Records
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class BlobRef:
    """A file a registration keeps in the image store, named by its Merkle root and size."""

    kind: int
    root: bytes
    size: int

    def to_wire(self) -> list[Any]:
        return [self.kind, self.root, self.size]

    @classmethod
    def from_wire(cls, obj: Any) -> BlobRef:
        kind, root, size = expect_list(obj, 3, "blob")
        return cls(expect_int(kind, 255, "blob kind"), expect_bytes(root, 32, what="blob root"), expect_int(size, U64_MAX, "blob size"))


@dataclass(frozen=True)
class Version:
    """One uploaded file of an image: the original is version 0."""

    sha256: bytes
    phash: int
    width: int
    height: int
    format_code: int
    is_raw: bool
    uploader: bytes
    block: int
    timestamp_ms: int
    ext_index: int  # the register extrinsic's index in `block` (its rendition is there)
    wm_payload: bytes
    blobs: tuple[BlobRef, ...]

    @property
    def pixels(self) -> int:
        return self.width * self.height

    def to_wire(self) -> list[Any]:
        return [
            self.sha256, self.phash, self.width, self.height, self.format_code, self.is_raw, self.uploader,
            self.block, self.timestamp_ms, self.ext_index, self.wm_payload, [b.to_wire() for b in self.blobs],
        ]  # fmt: skip

    @classmethod
    def from_wire(cls, obj: Any) -> Version:
        sha, ph, w, h, fmt, raw, uploader, block, ts, idx, payload, blobs = expect_list(obj, 12, "version")
        return cls(sha, ph, w, h, fmt, bool(raw), uploader, block, ts, idx, payload, tuple(BlobRef.from_wire(b) for b in blobs))


@dataclass(frozen=True)
class Registration:
    """An image's copyright record. The original's fields are `versions[0]`'s."""

    id: int
    owner: bytes
    title: str
    creator: str
    description: str
    versions: tuple[Version, ...]

    # The record's headline fields, as the white paper lists them.
    @property
    def original(self) -> Version:
        return self.versions[0]

    @property
    def sha256(self) -> bytes:
        return self.original.sha256

    @property
    def phash(self) -> int:
        return self.original.phash

    @property
    def width(self) -> int:
        return self.original.width

    @property
    def height(self) -> int:
        return self.original.height

    @property
    def format_code(self) -> int:
        return self.original.format_code

    @property
    def block(self) -> int:
        return self.original.block

    @property
    def timestamp_ms(self) -> int:
        return self.original.timestamp_ms

    @property
    def highest(self) -> Version:
        """The version with the most pixels (the earliest among equals)."""
        return max(self.versions, key=lambda v: v.pixels)

    def to_wire(self) -> list[Any]:
        return [
            self.id,
            self.owner,
            self.title,
            self.creator,
            self.description,
            [v.to_wire() for v in self.versions],
        ]

    @classmethod
    def from_wire(cls, obj: Any) -> Registration:
        rid, owner, title, creator, description, versions = expect_list(obj, 6, "registration")
        return cls(rid, owner, title, creator, description, tuple(Version.from_wire(v) for v in versions))


@dataclass(frozen=True)
class Tag:
    tag: str
    tagger: bytes
    block: int


# ---------------------------------------------------------------------------------------------
# Storage
# ---------------------------------------------------------------------------------------------

FIRST_ID = 1

PARAMS: StorageValue[CopyrightParams] = StorageValue(b"copyright:params", Record(CopyrightParams), CopyrightParams())
NEXT_ID: StorageValue[int] = StorageValue(b"copyright:next_id", U64, FIRST_ID)
REGISTRATIONS: StorageMap[Registration] = StorageMap(b"copyright:registration:", (U64,), Record(Registration))
BY_SHA256: StorageMap[int] = StorageMap(b"copyright:sha256:", (BYTES,), U64)
BY_PAYLOAD: StorageMap[int] = StorageMap(b"copyright:payload:", (BYTES,), U64)
# The pHash index (module doc): bucket (chunk, value) -> its page count, and its pages.
PHASH_PAGE_COUNT: StorageMap[int] = StorageMap(b"copyright:phash:", (U8, U16), U32, 0)
PHASH_PAGES: StorageMap[bytes] = StorageMap(b"copyright:phash:", (U8, U16, U32), BYTES)
OWNED_COUNT: StorageMap[int] = StorageMap(b"copyright:owned_count:", (BYTES,), U32, 0)
OWNED: StorageMap[int] = StorageMap(b"copyright:owned:", (BYTES, U32), U64)
OWNED_POS: StorageMap[int] = StorageMap(b"copyright:owned_pos:", (U64,), U32)
TAGS: StorageMap[Any] = StorageMap(b"copyright:tags:", (U64,), MSGPACK)
KEY_PARAMS = PARAMS.key


def read_params(get: StateGet) -> CopyrightParams:
    """The genesis values; a chain spec without a `copyright` section gets the defaults."""
    return PARAMS.value(get)


# ---------------------------------------------------------------------------------------------
# Reads (the RPC builds on these; each takes a plain `get(key)` over some block's state)
# ---------------------------------------------------------------------------------------------


def get_registration(get: StateGet, registration_id: int) -> Registration | None:
    return REGISTRATIONS.get(get, registration_id)


def registration_count(get: StateGet) -> int:
    """Number of registrations ever created (ids are FIRST_ID .. FIRST_ID + count - 1)."""
    next_id = NEXT_ID.value(get)
    return next_id - FIRST_ID


def find_by_sha256(get: StateGet, sha256: bytes) -> int | None:
    return BY_SHA256.get(get, sha256)


def find_by_payload(get: StateGet, payload: bytes) -> int | None:
    """The registration whose watermark carries `payload` (an exact match of a found copy)."""
    return BY_PAYLOAD.get(get, payload)


def owned_count(get: StateGet, account_id: bytes) -> int:
    return OWNED_COUNT.value(get, account_id)


def registrations_of(get: StateGet, account_id: bytes, start: int = 0, limit: int = 100) -> list[int]:
    """Ids owned by `account_id`, page [start, start + limit) of its list, sorted ascending."""
    end = min(owned_count(get, account_id), start + limit)
    ids = (OWNED.get(get, (account_id, index)) for index in range(start, end))
    return sorted(rid for rid in ids if rid is not None)


def tags_of(get: StateGet, registration_id: int) -> list[Tag]:
    stored = TAGS.get(get, registration_id)
    return [] if stored is None else [Tag(t, who, block) for t, who, block in stored]


# --- the pHash index --------------------------------------------------------------------------

# (shift, bits) of each chunk, most significant first: 13 + 13 + 13 + 13 + 12 = 64.
PHASH_CHUNKS: tuple[tuple[int, int], ...] = ((51, 13), (38, 13), (25, 13), (12, 13), (0, 12))
PAGE_ENTRIES = 256
ENTRY_BYTES = 16
_ENTRY = struct.Struct(">QQ")


@functools.lru_cache(maxsize=64)
def _flip_masks(bits: int, max_flips: int) -> tuple[int, ...]:
    """Every XOR mask of `bits` bits with at most `max_flips` ones, fewest first, then ascending."""
    masks: list[int] = []
    for k in range(max_flips + 1):
        masks.extend(sorted(sum(1 << b for b in chosen) for chosen in combinations(range(bits), k)))
    return tuple(masks)


def _chunk_values(phash: int) -> list[int]:
    return [(phash >> shift) & ((1 << bits) - 1) for shift, bits in PHASH_CHUNKS]


def search_similar(get: StateGet, phash: int, radius: int) -> list[tuple[int, int]]:
    """Every registration with a version within `radius` of `phash`: [(id, distance)] by (distance, id).

    Exact (pigeonhole, module doc) and reads nothing but `get`, so it is the same on every node.
    """
    if not 0 <= phash <= U64_MAX:
        raise ValueError("pHash must be an unsigned 64-bit integer")
    if not 0 <= radius <= MAX_SEARCH_RADIUS:
        raise ValueError(f"radius must be in 0..{MAX_SEARCH_RADIUS}")
    flips = radius // len(PHASH_CHUNKS)
    best: dict[int, int] = {}
    for chunk, ((_, bits), value) in enumerate(zip(PHASH_CHUNKS, _chunk_values(phash), strict=True)):
        for mask in _flip_masks(bits, flips):
            pages = PHASH_PAGE_COUNT.get(get, (chunk, value ^ mask))
            for page in range(pages or 0):
                entries = PHASH_PAGES.get(get, (chunk, value ^ mask, page)) or b""
                for entry_hash, entry_id in _ENTRY.iter_unpack(entries):
                    distance = (entry_hash ^ phash).bit_count()
                    if distance <= radius and distance < best.get(entry_id, 65):
                        best[entry_id] = distance
    return sorted(((rid, d) for rid, d in best.items()), key=lambda item: (item[1], item[0]))


def _index_phash(ctx: BlockContext, phash: int, registration_id: int) -> None:
    entry = _ENTRY.pack(phash, registration_id)
    for chunk, value in enumerate(_chunk_values(phash)):
        pages = PHASH_PAGE_COUNT.get(ctx, (chunk, value)) or 0
        last = PHASH_PAGES.get(ctx, (chunk, value, pages - 1)) if pages else None
        if last is not None and len(last) < PAGE_ENTRIES * ENTRY_BYTES:
            PHASH_PAGES.put(ctx, (chunk, value, pages - 1), last + entry)
        else:
            PHASH_PAGES.put(ctx, (chunk, value, pages), entry)
            PHASH_PAGE_COUNT.put(ctx, (chunk, value), pages + 1)


# ---------------------------------------------------------------------------------------------
# Claim verification (pure; the validity hook and the PoD client use it)
# ---------------------------------------------------------------------------------------------


def watermark_key_for(genesis_hash: bytes) -> bytes:
    """The chain's 80-bit watermark key for on-chain payloads (module doc: why one per chain)."""
    return blake2b_256(b"imagechain/watermark-key" + genesis_hash)[:WATERMARK_KEY_BYTES]


def watermark_payload_for(genesis_hash: bytes, sha256: bytes, uploader: bytes) -> bytes:
    """The 64-bit payload an upload of file `sha256` by `uploader` must carry on this chain."""
    return blake2b_256(b"imagechain/watermark-payload" + genesis_hash + sha256 + uploader)[
        :WATERMARK_PAYLOAD_BYTES
    ]


@dataclass(frozen=True)
class Claim:
    """The arguments of `register`, parsed."""

    sha256: bytes
    width: int
    height: int
    format_code: int
    is_raw: bool
    phash: int
    wm_payload: bytes
    blobs: tuple[BlobRef, ...]
    rendition: bytes
    title: str
    creator: str
    description: str


def check_claim(
    genesis_hash: bytes,
    signer: bytes,
    claim: Claim,
    host: Host = PURE_HOST,
    min_phash_energy: int = CopyrightParams.min_phash_energy,
) -> None:
    """Raise InvalidCall unless the claim proves itself (module doc). Cheap checks first."""
    if claim.format_code not in FORMATS:
        raise InvalidCall(f"unknown image format code {claim.format_code}")
    if claim.width == 0 or claim.height == 0:
        raise InvalidCall(f"zero-size image ({claim.width}x{claim.height})")
    if claim.width > MAX_DIMENSION or claim.height > MAX_DIMENSION:
        raise InvalidCall(f"image size {claim.width}x{claim.height} exceeds {MAX_DIMENSION} pixels per side")
    kinds = [blob.kind for blob in claim.blobs]
    if BLOB_PUBLISHED not in kinds or len(set(kinds)) != len(kinds) or not set(kinds) <= set(BLOB_KINDS):
        raise InvalidCall(f"blobs of kinds {kinds}: one published file (kind 0) and at most one sealed original (kind 1)")
    for blob in claim.blobs:
        if not 0 < blob.size <= MAX_BLOB_BYTES:
            raise InvalidCall(f"a blob of {blob.size} bytes (1 to {MAX_BLOB_BYTES} allowed)")
    if claim.is_raw != is_raw_format(claim.format_code):
        kind = "a RAW" if is_raw_format(claim.format_code) else "not a RAW"
        raise InvalidCall(f"is_raw={claim.is_raw} but format {FORMATS[claim.format_code]} is {kind} format")
    expected = watermark_payload_for(genesis_hash, claim.sha256, signer)
    if claim.wm_payload != expected:
        raise InvalidCall(
            f"watermark payload {claim.wm_payload.hex()} is not this upload's "
            f"({expected.hex()} = payload_for(genesis, sha256, signer)): another uploader's image?"
        )
    if len(claim.rendition) != RENDITION_BYTES:
        raise InvalidCall(f"a rendition is exactly {RENDITION_BYTES} bytes")
    facts = host.rendition_facts(claim.rendition, watermark_key_for(genesis_hash))
    if facts.energy < min_phash_energy:
        raise InvalidCall(
            f"the image is flat at the pHash's scale (structure {facts.energy:,} < {min_phash_energy:,}): "
            "a flat image matches every other flat image, so it cannot be told apart"
        )
    if facts.phash != claim.phash:
        raise InvalidCall(f"pHash claim {claim.phash:016x} does not match the rendition's {facts.phash:016x}")
    if facts.payload != claim.wm_payload:
        found = "no payload" if facts.payload is None else f"payload {facts.payload.hex()}"
        raise InvalidCall(
            f"the rendition carries {found}, not the claimed watermark {claim.wm_payload.hex()}"
        )


def validate_call(
    get: StateGet, genesis_hash: bytes, signer: bytes, function: str, args: list[Any], host: Host
) -> None:
    """The executive's validity hook: a `register` claim must prove itself (pool and import)."""
    if function == "register":
        sha, width, height, fmt, raw, phash, payload, blobs, rendition, title, creator, description = args
        check_claim(
            genesis_hash, signer,
            Claim(sha, width, height, fmt, raw, phash, payload, tuple(blobs), rendition, title, creator, description),
            host, read_params(get).min_phash_energy,
        )  # fmt: skip


# ---------------------------------------------------------------------------------------------
# Argument types
# ---------------------------------------------------------------------------------------------


def arg_hash32(value: Any) -> bytes:
    return expect_bytes(value, 32, what="hash")


def arg_blob(value: Any) -> BlobRef:
    return BlobRef.from_wire(value)


def arg_payload(value: Any) -> bytes:
    return expect_bytes(value, WATERMARK_PAYLOAD_BYTES, what="watermark payload")


def arg_format(value: Any) -> int:
    return expect_int(value, 255, "format code")


def arg_rendition(value: Any) -> bytes:
    if not isinstance(value, bytes):
        raise DecodeError("rendition: expected bytes")
    if len(value) != RENDITION_BYTES:
        raise DecodeError(
            f"rendition: expected exactly {RENDITION_BYTES} bytes (256x256 luma), got {len(value)}"
        )
    return value


def arg_tag(value: Any) -> str:
    return expect_str(value, MAX_TAG_CHARS, "tag")


# ---------------------------------------------------------------------------------------------
# State helpers
# ---------------------------------------------------------------------------------------------


def _load(ctx: BlockContext, registration_id: int) -> Registration:
    registration = get_registration(ctx.state.get, registration_id)
    ensure(registration is not None, UnknownRegistration, registration_id)
    assert registration is not None
    return registration


def _store(ctx: BlockContext, registration: Registration) -> None:
    REGISTRATIONS.put(ctx, registration.id, registration)


def _owned_add(ctx: BlockContext, account_id: bytes, registration_id: int) -> None:
    count = owned_count(ctx.state.get, account_id)
    OWNED.put(ctx, (account_id, count), registration_id)
    OWNED_POS.put(ctx, registration_id, count)
    OWNED_COUNT.put(ctx, account_id, count + 1)


def _owned_remove(ctx: BlockContext, account_id: bytes, registration_id: int) -> None:
    """Swap-remove: the last id of the list takes the removed one's index (O(1) writes)."""
    count = owned_count(ctx.state.get, account_id)
    pos = OWNED_POS.get(ctx, registration_id) or 0
    last = count - 1
    if pos != last:
        moved = OWNED.get(ctx, (account_id, last))
        assert moved is not None
        OWNED.put(ctx, (account_id, pos), moved)
        OWNED_POS.put(ctx, moved, pos)
    OWNED.delete(ctx, (account_id, last))
    OWNED_POS.delete(ctx, registration_id)
    if last:
        OWNED_COUNT.put(ctx, account_id, last)
    else:
        OWNED_COUNT.delete(ctx, account_id)


def _set_owner(ctx: BlockContext, registration: Registration, new_owner: bytes) -> Registration:
    _owned_remove(ctx, registration.owner, registration.id)
    _owned_add(ctx, new_owner, registration.id)
    ctx.notify(OWNER_CHANGED, registration.id)
    return Registration(
        registration.id, new_owner, registration.title, registration.creator, registration.description,
        registration.versions,
    )  # fmt: skip


def _index_version(
    ctx: BlockContext, registration_id: int, version: Version, known_phashes: set[int]
) -> None:
    BY_SHA256.put(ctx, version.sha256, registration_id)
    BY_PAYLOAD.put(ctx, version.wm_payload, registration_id)
    if version.phash not in known_phashes:
        _index_phash(ctx, version.phash, registration_id)


def build_genesis(genesis: GenesisState) -> None:
    section, default = genesis.section("copyright"), CopyrightParams()
    params = CopyrightParams(
        phash_radius=int(section.get("phash_radius", default.phash_radius)),
        tag_fee=parse_img(section["tag_fee"]) if "tag_fee" in section else default.tag_fee,
        min_phash_energy=int(section.get("min_phash_energy", default.min_phash_energy)),
    )
    if not 0 <= params.phash_radius <= MAX_SEARCH_RADIUS:
        raise ValueError(f"phash_radius must be in 0..{MAX_SEARCH_RADIUS}")
    PARAMS.put(genesis, params)


# ---------------------------------------------------------------------------------------------
# Calls
# ---------------------------------------------------------------------------------------------

REGISTER_WEIGHT = 5_000_000  # ~1 ms verification + index reads and writes, with margin (1 weight ~ 1 ns)


@call(
    NAME, "register",
    arg_hash32, arg_u32, arg_u32, arg_format, arg_bool, arg_u64, arg_payload, arg_list(arg_blob, len(BLOB_KINDS)),
    arg_rendition, arg_str(MAX_TITLE_CHARS), arg_str(MAX_CREATOR_CHARS), arg_str(MAX_DESCRIPTION_CHARS),
    weight=REGISTER_WEIGHT,
)  # fmt: skip
def register(
    ctx: BlockContext,
    origin: Origin,
    sha256: bytes,
    width: int,
    height: int,
    format_code: int,
    is_raw: bool,
    phash: int,
    wm_payload: bytes,
    blobs: list[BlobRef],
    rendition: bytes,
    title: str,
    creator: str,
    description: str,
) -> None:
    """Register an image, add a version of a registered one, or take it over as RAW (module doc)."""
    who = ensure_signed(origin)
    claim = Claim(
        sha256, width, height, format_code, is_raw, phash, wm_payload, tuple(blobs), rendition, title, creator,
        description,
    )  # fmt: skip
    genesis_hash = system.genesis_hash(ctx.state.get)
    ensure(genesis_hash is not None, InvalidClaim)
    assert genesis_hash is not None
    try:  # already checked by the validity hook; repeated (memoised by the host) for nested calls
        check_claim(genesis_hash, who, claim, ctx.host, read_params(ctx.state.get).min_phash_energy)
    except InvalidCall:
        raise InvalidClaim() from None
    get = ctx.state.get
    existing = find_by_sha256(get, claim.sha256)
    ensure(existing is None, DuplicateSha256, existing)
    taken = find_by_payload(get, claim.wm_payload)
    ensure(taken is None, PayloadTaken, taken)

    version = Version(
        claim.sha256, claim.phash, claim.width, claim.height, claim.format_code, claim.is_raw, who,
        ctx.number, timestamp.now(ctx), ctx.phase or 0, claim.wm_payload, claim.blobs,
    )  # fmt: skip
    matches = search_similar(get, claim.phash, read_params(get).phash_radius)
    if not matches:
        registration_id = registration_count(get) + FIRST_ID
        NEXT_ID.put(ctx, registration_id + 1)
        registration = Registration(
            registration_id, who, claim.title, claim.creator, claim.description, (version,)
        )
        _store(ctx, registration)
        _index_version(ctx, registration_id, version, set())
        _owned_add(ctx, who, registration_id)
        ctx.deposit_event(Registered(registration_id, who, claim.sha256, claim.phash))
        ctx.notify(BLOBS_ADDED, registration_id, claim.blobs)
        ctx.notify(NOVEL_REGISTRATION, who, registration_id, claim.width, claim.height, claim.rendition)
        return

    registration_id, distance = matches[0]
    registration = _load(ctx, registration_id)
    highest = registration.highest.pixels
    takes_over = claim.is_raw and version.pixels >= highest
    ensure(takes_over or version.pixels > highest, NearDuplicate, registration_id, distance)
    ensure(len(registration.versions) < MAX_VERSIONS, TooManyVersions, registration_id)
    known = {v.phash for v in registration.versions}
    registration = Registration(
        registration.id, registration.owner, registration.title, registration.creator, registration.description,
        (*registration.versions, version),
    )  # fmt: skip
    _index_version(ctx, registration_id, version, known)
    ctx.deposit_event(
        VersionAdded(registration_id, len(registration.versions) - 1, who, claim.width, claim.height)
    )
    ctx.notify(BLOBS_ADDED, registration_id, claim.blobs)
    if takes_over and registration.owner != who:
        previous = registration.owner
        registration = _set_owner(ctx, registration, who)
        ctx.deposit_event(OwnershipTakenOver(registration_id, previous, who))
    _store(ctx, registration)


@call(NAME, "transfer_ownership", arg_u64, arg_account, weight=200_000)
def transfer_ownership(ctx: BlockContext, origin: Origin, registration_id: int, new_owner: bytes) -> None:
    """The owner hands a registration to another account; open licence offers are withdrawn."""
    who = ensure_signed(origin)
    registration = _load(ctx, registration_id)
    ensure(registration.owner == who, NotOwner, registration_id)
    ensure(new_owner != who, AlreadyOwner, registration_id)
    _store(ctx, _set_owner(ctx, registration, new_owner))
    ctx.deposit_event(OwnershipTransferred(registration_id, who, new_owner))


def _tag_ok(tag: str) -> bool:
    # No normalisation (case mapping depends on the Unicode tables of the Python build, and the
    # runtime must not): a tag is any non-empty text without control characters.
    return bool(tag) and all(ord(ch) >= 32 and ord(ch) != 127 for ch in tag)


@call(NAME, "tag", arg_u64, arg_tag, weight=150_000)
def tag(ctx: BlockContext, origin: Origin, registration_id: int, text: str) -> None:
    """Attach a tag to any registration; the tag fee is burned (white paper 3.3.1)."""
    who = ensure_signed(origin)
    _load(ctx, registration_id)
    ensure(_tag_ok(text), BadTag)
    tags = tags_of(ctx.state.get, registration_id)
    ensure(all(t.tag != text for t in tags), TagExists, registration_id)
    ensure(len(tags) < MAX_TAGS, TooManyTags, registration_id)
    fee = read_params(ctx.state.get).tag_fee
    if fee:
        balances.burn_from(ctx, who, fee, keep_alive=True)
    tags.append(Tag(text, who, ctx.number))
    TAGS.put(ctx, registration_id, [[t.tag, t.tagger, t.block] for t in tags])
    ctx.deposit_event(Tagged(registration_id, who, text, fee))


@call(NAME, "untag", arg_u64, arg_tag, weight=100_000)
def untag(ctx: BlockContext, origin: Origin, registration_id: int, text: str) -> None:
    """The owner removes a tag (spam control; the burned fee is not returned)."""
    who = ensure_signed(origin)
    registration = _load(ctx, registration_id)
    ensure(registration.owner == who, NotOwner, registration_id)
    tags = tags_of(ctx.state.get, registration_id)
    kept = [t for t in tags if t.tag != text]
    ensure(len(kept) < len(tags), UnknownTag, registration_id)
    if kept:
        TAGS.put(ctx, registration_id, [[t.tag, t.tagger, t.block] for t in kept])
    else:
        TAGS.delete(ctx, registration_id)
    ctx.deposit_event(Untagged(registration_id, text))


# ---------------------------------------------------------------------------------------------
# Events
# ---------------------------------------------------------------------------------------------


@event(NAME)
class Registered:
    """A new image record, owned by its uploader."""

    registration_id: int
    owner: AccountId
    sha256: bytes
    phash: int


@event(NAME)
class VersionAdded:
    """A higher-resolution (or RAW) upload of a registered image became version `index`."""

    registration_id: int
    index: int
    uploader: AccountId
    width: int
    height: int


@event(NAME)
class OwnershipTakenOver:
    """A RAW upload at least as large as every version took the copyright (white paper 2.1.2.3)."""

    registration_id: int
    previous: AccountId
    new: AccountId


@event(NAME)
class OwnershipTransferred:
    registration_id: int
    source: AccountId
    dest: AccountId


@event(NAME)
class Tagged:
    registration_id: int
    who: AccountId
    tag: str
    fee: Balance


@event(NAME)
class Untagged:
    registration_id: int
    tag: str


# ---------------------------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------------------------


@error(NAME)
class DuplicateSha256(DispatchError):
    """A version of registration `registration_id` is this very file."""

    registration_id: int


@error(NAME)
class NearDuplicate(DispatchError):
    """The image is `distance` bits from `registration_id` and is neither larger nor a RAW takeover."""

    registration_id: int
    distance: int


@error(NAME)
class PayloadTaken(DispatchError):
    """Registration `registration_id` already carries this watermark payload."""

    registration_id: int


@error(NAME)
class TooManyVersions(DispatchError):
    registration_id: int


@error(NAME)
class UnknownRegistration(DispatchError):
    registration_id: int


@error(NAME)
class NotOwner(DispatchError):
    registration_id: int


@error(NAME)
class AlreadyOwner(DispatchError):
    registration_id: int


@error(NAME)
class BadTag(DispatchError):
    """A tag must be non-empty text without control characters."""


@error(NAME)
class TagExists(DispatchError):
    registration_id: int


@error(NAME)
class TooManyTags(DispatchError):
    registration_id: int


@error(NAME)
class UnknownTag(DispatchError):
    registration_id: int


@error(NAME)
class InvalidClaim(DispatchError):
    """A claim that does not prove itself reached dispatch (nested in another call)."""


MODULE = RuntimeModule(
    NAME,
    calls=(register, transfer_ownership, tag, untag),
    events=(Registered, VersionAdded, OwnershipTakenOver, OwnershipTransferred, Tagged, Untagged),
    errors=(
        DuplicateSha256, NearDuplicate, PayloadTaken, TooManyVersions, UnknownRegistration, NotOwner, AlreadyOwner,
        BadTag, TagExists, TooManyTags, UnknownTag, InvalidClaim,
    ),  # fmt: skip
    storage=(
        PARAMS, NEXT_ID, REGISTRATIONS, BY_SHA256, BY_PAYLOAD, PHASH_PAGE_COUNT, PHASH_PAGES, OWNED_COUNT, OWNED,
        OWNED_POS, TAGS,
    ),  # fmt: skip
    genesis=build_genesis,
    validate_call=validate_call,
)
