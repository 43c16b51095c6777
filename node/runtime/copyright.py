"""`copyright`: image registrations, versions, ownership and tags (PROTOCOL section 10, white paper 2.1).

Registration
------------
`register` carries the claim about one image file: its SHA-256, width, height, format (and
whether it is camera RAW), the pHash, the 64-bit watermark payload, the blob Merkle roots of
the stored files, the **verification rendition** (the watermarked image's 256x256 integer luma
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
  about 1 ms) is a pure function of the rendition, so its result is memoised by the rendition's
  blake2b digest: pool entry, block building and import verify each rendition once per node.
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
  - otherwise a new registration with the next sequential id (``Registered``), and `pod` decides
    whether its uploader earns a mining reward.

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

Params (genesis `copyright` section)
  copyright:params                   -> [phash_radius, tag_fee(u128)]
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
  register(sha256, width, height, format_code, is_raw, phash, wm_payload, blob_roots,
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
  UnknownRegistration, NotOwner, AlreadyOwner, BadTag, TagExists, TooManyTags, UnknownTag,
  InvalidClaim (a claim reaching dispatch without the validity hook, e.g. nested)
"""

from __future__ import annotations

import functools
import hashlib
import struct
import threading
from collections import OrderedDict
from dataclasses import dataclass
from itertools import combinations
from typing import Any

from node.codec import (
    U64_MAX,
    DecodeError,
    blake2b_256,
    decode,
    expect_bytes,
    expect_int,
    expect_list,
    expect_str,
    u128_from_bytes,
    u128_to_bytes,
)
from node.runtime import balances, pod, system, timestamp
from node.runtime.support import (
    BlockContext,
    DispatchError,
    InvalidCall,
    Origin,
    arg_account,
    arg_bool,
    arg_list,
    arg_str,
    arg_u32,
    arg_u64,
    call,
    ensure,
    ensure_signed,
    specs_of,
)

MODULE = "copyright"

# ---------------------------------------------------------------------------------------------
# Params and constants
# ---------------------------------------------------------------------------------------------

KEY_PARAMS = b"copyright:params"

RENDITION_SIZE = 256
RENDITION_BYTES = RENDITION_SIZE * RENDITION_SIZE
WATERMARK_KEY_BYTES = 10
WATERMARK_PAYLOAD_BYTES = 8
MAX_DIMENSION = 1 << 20  # pixels per side; larger claims are refused as malformed
MAX_TITLE_CHARS = 256
MAX_CREATOR_CHARS = 128
MAX_DESCRIPTION_CHARS = 2048
MAX_BLOB_ROOTS = 8
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

    def to_wire(self) -> list[Any]:
        return [self.phash_radius, u128_to_bytes(self.tag_fee)]

    @classmethod
    def from_wire(cls, obj: Any) -> CopyrightParams:
        radius, fee = expect_list(obj, 2, "copyright params")
        return cls(expect_int(radius, MAX_SEARCH_RADIUS, "phash radius"), u128_from_bytes(fee))


def read_params(get: Any) -> CopyrightParams:
    """The genesis values; a chain spec without a `copyright` section gets the defaults above."""
    raw = get(KEY_PARAMS)
    return CopyrightParams() if raw is None else CopyrightParams.from_wire(decode(raw))


# ---------------------------------------------------------------------------------------------
# Storage keys
# ---------------------------------------------------------------------------------------------

KEY_NEXT_ID = b"copyright:next_id"
FIRST_ID = 1


def _u64(value: int) -> bytes:
    return value.to_bytes(8, "big")


def registration_key(registration_id: int) -> bytes:
    return b"copyright:registration:" + _u64(registration_id)


def sha256_key(sha256: bytes) -> bytes:
    return b"copyright:sha256:" + sha256


def payload_key(payload: bytes) -> bytes:
    return b"copyright:payload:" + payload


def phash_bucket_key(chunk: int, value: int) -> bytes:
    return b"copyright:phash:" + bytes([chunk]) + value.to_bytes(2, "big")


def phash_page_key(chunk: int, value: int, page: int) -> bytes:
    return phash_bucket_key(chunk, value) + page.to_bytes(4, "big")


def owned_count_key(account_id: bytes) -> bytes:
    return b"copyright:owned_count:" + account_id


def owned_key(account_id: bytes, index: int) -> bytes:
    return b"copyright:owned:" + account_id + index.to_bytes(4, "big")


def owned_pos_key(registration_id: int) -> bytes:
    return b"copyright:owned_pos:" + _u64(registration_id)


def tags_key(registration_id: int) -> bytes:
    return b"copyright:tags:" + _u64(registration_id)


# ---------------------------------------------------------------------------------------------
# Records
# ---------------------------------------------------------------------------------------------


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
    blob_roots: tuple[bytes, ...]

    @property
    def pixels(self) -> int:
        return self.width * self.height

    def to_wire(self) -> list[Any]:
        return [
            self.sha256, self.phash, self.width, self.height, self.format_code, self.is_raw, self.uploader,
            self.block, self.timestamp_ms, self.ext_index, self.wm_payload, list(self.blob_roots),
        ]  # fmt: skip

    @classmethod
    def from_wire(cls, obj: Any) -> Version:
        sha, ph, w, h, fmt, raw, uploader, block, ts, idx, payload, roots = expect_list(obj, 12, "version")
        return cls(sha, ph, w, h, fmt, bool(raw), uploader, block, ts, idx, payload, tuple(roots))


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
# Reads (the RPC builds on these; each takes a plain `get(key)` over some block's state)
# ---------------------------------------------------------------------------------------------


def get_registration(get: Any, registration_id: int) -> Registration | None:
    raw = get(registration_key(registration_id))
    return None if raw is None else Registration.from_wire(decode(raw))


def registration_count(get: Any) -> int:
    """Number of registrations ever created (ids are FIRST_ID .. FIRST_ID + count - 1)."""
    raw = get(KEY_NEXT_ID)
    return 0 if raw is None else int.from_bytes(raw, "big") - FIRST_ID


def find_by_sha256(get: Any, sha256: bytes) -> int | None:
    raw = get(sha256_key(sha256))
    return None if raw is None else int.from_bytes(raw, "big")


def find_by_payload(get: Any, payload: bytes) -> int | None:
    """The registration whose watermark carries `payload` (an exact match of a found copy)."""
    raw = get(payload_key(payload))
    return None if raw is None else int.from_bytes(raw, "big")


def owned_count(get: Any, account_id: bytes) -> int:
    raw = get(owned_count_key(account_id))
    return 0 if raw is None else int.from_bytes(raw, "big")


def registrations_of(get: Any, account_id: bytes, start: int = 0, limit: int = 100) -> list[int]:
    """Ids owned by `account_id`, page [start, start + limit) of its list, sorted ascending."""
    end = min(owned_count(get, account_id), start + limit)
    ids = []
    for index in range(start, end):
        raw = get(owned_key(account_id, index))
        if raw is not None:
            ids.append(int.from_bytes(raw, "big"))
    return sorted(ids)


def tags_of(get: Any, registration_id: int) -> list[Tag]:
    raw = get(tags_key(registration_id))
    return [] if raw is None else [Tag(t, who, block) for t, who, block in decode(raw)]


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


def search_similar(get: Any, phash: int, radius: int) -> list[tuple[int, int]]:
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
            head = get(phash_bucket_key(chunk, value ^ mask))
            if head is None:
                continue
            for page in range(int.from_bytes(head, "big")):
                entries = get(phash_page_key(chunk, value ^ mask, page)) or b""
                for entry_hash, entry_id in _ENTRY.iter_unpack(entries):
                    distance = (entry_hash ^ phash).bit_count()
                    if distance <= radius and distance < best.get(entry_id, 65):
                        best[entry_id] = distance
    return sorted(((rid, d) for rid, d in best.items()), key=lambda item: (item[1], item[0]))


def _index_phash(ctx: BlockContext, phash: int, registration_id: int) -> None:
    entry = _ENTRY.pack(phash, registration_id)
    for chunk, value in enumerate(_chunk_values(phash)):
        head_key = phash_bucket_key(chunk, value)
        pages = ctx.get_int(head_key)
        last = ctx.state.get(phash_page_key(chunk, value, pages - 1)) if pages else None
        if last is not None and len(last) < PAGE_ENTRIES * ENTRY_BYTES:
            ctx.state.set(phash_page_key(chunk, value, pages - 1), last + entry)
        else:
            ctx.state.set(phash_page_key(chunk, value, pages), entry)
            ctx.state.set(head_key, (pages + 1).to_bytes(4, "big"))


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


def _compute_rendition_facts(rendition: bytes, key: bytes) -> tuple[int, bytes | None]:
    import numpy as np

    from node.imaging.phash import phash_from_rendition
    from node.imaging.watermark import extract_from_rendition

    r = np.frombuffer(rendition, dtype=np.uint8).reshape(RENDITION_SIZE, RENDITION_SIZE)
    return phash_from_rendition(r), extract_from_rendition(r, key)


# Memo of rendition_facts by blake2b(rendition || key): small values, no 64 KiB renditions kept.
_FACTS_CACHE_MAX = 8192
_facts_cache: OrderedDict[bytes, tuple[int, bytes | None]] = OrderedDict()
_facts_lock = threading.Lock()


def rendition_facts(rendition: bytes, key: bytes) -> tuple[int, bytes | None]:
    """(pHash, extracted payload or None) of a 65,536-byte rendition: what validators recompute.

    Memoised (a pure function of its input, so sharing the result is safe): the pool, the block
    builder and import each ask, and only the first pays the ~1 ms.
    """
    if len(rendition) != RENDITION_BYTES:
        raise ValueError(f"a rendition is exactly {RENDITION_BYTES} bytes")
    cache_key = hashlib.blake2b(rendition + key, digest_size=32).digest()
    with _facts_lock:
        facts = _facts_cache.get(cache_key)
        if facts is not None:
            _facts_cache.move_to_end(cache_key)
            return facts
    facts = _compute_rendition_facts(rendition, key)
    with _facts_lock:
        _facts_cache[cache_key] = facts
        if len(_facts_cache) > _FACTS_CACHE_MAX:
            _facts_cache.popitem(last=False)
    return facts


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
    blob_roots: tuple[bytes, ...]
    rendition: bytes
    title: str
    creator: str
    description: str


def check_claim(genesis_hash: bytes, signer: bytes, claim: Claim) -> None:
    """Raise InvalidCall unless the claim proves itself (module doc). Cheap checks first."""
    if claim.format_code not in FORMATS:
        raise InvalidCall(f"unknown image format code {claim.format_code}")
    if claim.width == 0 or claim.height == 0:
        raise InvalidCall(f"zero-size image ({claim.width}x{claim.height})")
    if claim.width > MAX_DIMENSION or claim.height > MAX_DIMENSION:
        raise InvalidCall(f"image size {claim.width}x{claim.height} exceeds {MAX_DIMENSION} pixels per side")
    if claim.is_raw != is_raw_format(claim.format_code):
        kind = "a RAW" if is_raw_format(claim.format_code) else "not a RAW"
        raise InvalidCall(f"is_raw={claim.is_raw} but format {FORMATS[claim.format_code]} is {kind} format")
    expected = watermark_payload_for(genesis_hash, claim.sha256, signer)
    if claim.wm_payload != expected:
        raise InvalidCall(
            f"watermark payload {claim.wm_payload.hex()} is not this upload's "
            f"({expected.hex()} = payload_for(genesis, sha256, signer)): another uploader's image?"
        )
    phash, extracted = rendition_facts(claim.rendition, watermark_key_for(genesis_hash))
    if phash != claim.phash:
        raise InvalidCall(f"pHash claim {claim.phash:016x} does not match the rendition's {phash:016x}")
    if extracted != claim.wm_payload:
        found = "no payload" if extracted is None else f"payload {extracted.hex()}"
        raise InvalidCall(
            f"the rendition carries {found}, not the claimed watermark {claim.wm_payload.hex()}"
        )


def validate_call(get: Any, genesis_hash: bytes, signer: bytes, function: str, args: list[Any]) -> None:
    """The executive's validity hook: a `register` claim must prove itself (pool and import)."""
    if function == "register":
        sha, width, height, fmt, raw, phash, payload, roots, rendition, title, creator, description = args
        check_claim(
            genesis_hash, signer,
            Claim(sha, width, height, fmt, raw, phash, payload, tuple(roots), rendition, title, creator, description),
        )  # fmt: skip


def _genesis_hash(ctx: BlockContext) -> bytes:
    genesis = ctx.state.get(system.block_hash_key(0))
    ensure(genesis is not None, MODULE, "InvalidClaim")
    assert genesis is not None
    return genesis


# ---------------------------------------------------------------------------------------------
# Argument types
# ---------------------------------------------------------------------------------------------


def arg_hash32(value: Any) -> bytes:
    return expect_bytes(value, 32, what="hash")


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
    ensure(registration is not None, MODULE, "UnknownRegistration", registration_id)
    assert registration is not None
    return registration


def _store(ctx: BlockContext, registration: Registration) -> None:
    ctx.put_obj(registration_key(registration.id), registration.to_wire())


def _owned_add(ctx: BlockContext, account_id: bytes, registration_id: int) -> None:
    count = owned_count(ctx.state.get, account_id)
    ctx.state.set(owned_key(account_id, count), _u64(registration_id))
    ctx.state.set(owned_pos_key(registration_id), count.to_bytes(4, "big"))
    ctx.state.set(owned_count_key(account_id), (count + 1).to_bytes(4, "big"))


def _owned_remove(ctx: BlockContext, account_id: bytes, registration_id: int) -> None:
    """Swap-remove: the last id of the list takes the removed one's index (O(1) writes)."""
    count = owned_count(ctx.state.get, account_id)
    pos = ctx.get_int(owned_pos_key(registration_id))
    last = count - 1
    if pos != last:
        moved = ctx.state.get(owned_key(account_id, last))
        assert moved is not None
        ctx.state.set(owned_key(account_id, pos), moved)
        ctx.state.set(owned_pos_key(int.from_bytes(moved, "big")), pos.to_bytes(4, "big"))
    ctx.state.delete(owned_key(account_id, last))
    ctx.state.delete(owned_pos_key(registration_id))
    if last:
        ctx.state.set(owned_count_key(account_id), last.to_bytes(4, "big"))
    else:
        ctx.state.delete(owned_count_key(account_id))


def _set_owner(ctx: BlockContext, registration: Registration, new_owner: bytes) -> Registration:
    from node.runtime import licensing  # licensing builds on copyright; import here, not at the top

    _owned_remove(ctx, registration.owner, registration.id)
    _owned_add(ctx, new_owner, registration.id)
    licensing.on_owner_changed(ctx, registration.id)
    return Registration(
        registration.id, new_owner, registration.title, registration.creator, registration.description,
        registration.versions,
    )  # fmt: skip


def _index_version(
    ctx: BlockContext, registration_id: int, version: Version, known_phashes: set[int]
) -> None:
    ctx.state.set(sha256_key(version.sha256), _u64(registration_id))
    ctx.state.set(payload_key(version.wm_payload), _u64(registration_id))
    if version.phash not in known_phashes:
        _index_phash(ctx, version.phash, registration_id)


# ---------------------------------------------------------------------------------------------
# Calls
# ---------------------------------------------------------------------------------------------

REGISTER_WEIGHT = 5_000_000  # ~1 ms verification + index reads and writes, with margin (1 weight ~ 1 ns)


@call(
    MODULE, "register",
    arg_hash32, arg_u32, arg_u32, arg_format, arg_bool, arg_u64, arg_payload, arg_list(arg_hash32, MAX_BLOB_ROOTS),
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
    blob_roots: list[bytes],
    rendition: bytes,
    title: str,
    creator: str,
    description: str,
) -> None:
    """Register an image, add a version of a registered one, or take it over as RAW (module doc)."""
    who = ensure_signed(origin)
    claim = Claim(
        sha256, width, height, format_code, is_raw, phash, wm_payload, tuple(blob_roots), rendition, title, creator,
        description,
    )  # fmt: skip
    try:  # already checked by the validity hook; repeated (memoised) for calls nested in others
        check_claim(_genesis_hash(ctx), who, claim)
    except InvalidCall:
        raise DispatchError(MODULE, "InvalidClaim") from None
    get = ctx.state.get
    existing = find_by_sha256(get, claim.sha256)
    ensure(existing is None, MODULE, "DuplicateSha256", existing)
    taken = find_by_payload(get, claim.wm_payload)
    ensure(taken is None, MODULE, "PayloadTaken", taken)

    version = Version(
        claim.sha256, claim.phash, claim.width, claim.height, claim.format_code, claim.is_raw, who,
        ctx.number, timestamp.now(ctx), ctx.phase or 0, claim.wm_payload, claim.blob_roots,
    )  # fmt: skip
    matches = search_similar(get, claim.phash, read_params(get).phash_radius)
    if not matches:
        registration_id = ctx.get_int(KEY_NEXT_ID, FIRST_ID)
        ctx.state.set(KEY_NEXT_ID, _u64(registration_id + 1))
        registration = Registration(
            registration_id, who, claim.title, claim.creator, claim.description, (version,)
        )
        _store(ctx, registration)
        _index_version(ctx, registration_id, version, set())
        _owned_add(ctx, who, registration_id)
        ctx.emit(MODULE, "Registered", registration_id, who, claim.sha256, claim.phash)
        pod.on_novel_registration(ctx, who, registration_id, claim.width, claim.height, claim.rendition)
        return

    registration_id, distance = matches[0]
    registration = _load(ctx, registration_id)
    highest = registration.highest.pixels
    takes_over = claim.is_raw and version.pixels >= highest
    ensure(takes_over or version.pixels > highest, MODULE, "NearDuplicate", registration_id, distance)
    ensure(len(registration.versions) < MAX_VERSIONS, MODULE, "TooManyVersions", registration_id)
    known = {v.phash for v in registration.versions}
    registration = Registration(
        registration.id, registration.owner, registration.title, registration.creator, registration.description,
        (*registration.versions, version),
    )  # fmt: skip
    _index_version(ctx, registration_id, version, known)
    ctx.emit(
        MODULE,
        "VersionAdded",
        registration_id,
        len(registration.versions) - 1,
        who,
        claim.width,
        claim.height,
    )
    if takes_over and registration.owner != who:
        previous = registration.owner
        registration = _set_owner(ctx, registration, who)
        ctx.emit(MODULE, "OwnershipTakenOver", registration_id, previous, who)
    _store(ctx, registration)


@call(MODULE, "transfer_ownership", arg_u64, arg_account, weight=200_000)
def transfer_ownership(ctx: BlockContext, origin: Origin, registration_id: int, new_owner: bytes) -> None:
    """The owner hands a registration to another account; open licence offers are withdrawn."""
    who = ensure_signed(origin)
    registration = _load(ctx, registration_id)
    ensure(registration.owner == who, MODULE, "NotOwner", registration_id)
    ensure(new_owner != who, MODULE, "AlreadyOwner", registration_id)
    _store(ctx, _set_owner(ctx, registration, new_owner))
    ctx.emit(MODULE, "OwnershipTransferred", registration_id, who, new_owner)


def _tag_ok(tag: str) -> bool:
    # No normalisation (case mapping depends on the Unicode tables of the Python build, and the
    # runtime must not): a tag is any non-empty text without control characters.
    return bool(tag) and all(ord(ch) >= 32 and ord(ch) != 127 for ch in tag)


@call(MODULE, "tag", arg_u64, arg_tag, weight=150_000)
def tag(ctx: BlockContext, origin: Origin, registration_id: int, text: str) -> None:
    """Attach a tag to any registration; the tag fee is burned (white paper 3.3.1)."""
    who = ensure_signed(origin)
    _load(ctx, registration_id)
    ensure(_tag_ok(text), MODULE, "BadTag")
    tags = tags_of(ctx.state.get, registration_id)
    ensure(all(t.tag != text for t in tags), MODULE, "TagExists", registration_id)
    ensure(len(tags) < MAX_TAGS, MODULE, "TooManyTags", registration_id)
    fee = read_params(ctx.state.get).tag_fee
    if fee:
        balances.burn_from(ctx, who, fee, keep_alive=True)
    tags.append(Tag(text, who, ctx.number))
    ctx.put_obj(tags_key(registration_id), [[t.tag, t.tagger, t.block] for t in tags])
    ctx.emit(MODULE, "Tagged", registration_id, who, text, fee)


@call(MODULE, "untag", arg_u64, arg_tag, weight=100_000)
def untag(ctx: BlockContext, origin: Origin, registration_id: int, text: str) -> None:
    """The owner removes a tag (spam control; the burned fee is not returned)."""
    who = ensure_signed(origin)
    registration = _load(ctx, registration_id)
    ensure(registration.owner == who, MODULE, "NotOwner", registration_id)
    tags = tags_of(ctx.state.get, registration_id)
    kept = [t for t in tags if t.tag != text]
    ensure(len(kept) < len(tags), MODULE, "UnknownTag", registration_id)
    if kept:
        ctx.put_obj(tags_key(registration_id), [[t.tag, t.tagger, t.block] for t in kept])
    else:
        ctx.state.delete(tags_key(registration_id))
    ctx.emit(MODULE, "Untagged", registration_id, text)


CALLS = specs_of(register, transfer_ownership, tag, untag)
