"""copyright_*: registrations, read from the runtime's state, and who owns a copy found anywhere
(PROTOCOL sections 9-11).

Reads go through the runtime's own helpers (`copyright.get_registration`, `search_similar`, ...)
at the best block or at `at`; records are rendered by `node.rpc.render`. `copyright_verifyImage`
is the one method that does real CPU work: it runs as an image job (`node.rpc.image_jobs`: a
free worker slot or "busy", and the server's pixel cap) and ranks what it found with
`node.rpc.matches`.
"""

from __future__ import annotations

import base64
import re
from typing import Annotated

from node.codec import U64_MAX
from node.rpc.encoding import from_hex, to_hex
from node.rpc.errors import invalid_params
from node.rpc.jsonrpc import JSON, CallContext, MethodTable, ParamType
from node.rpc.matches import analyse_query, nearest, rank_matches
from node.rpc.params import HASH_SCHEMA, AccountId, Count, Hash, RegistrationId, page_size
from node.rpc.render import offer_json, registration_json
from node.rpc.state_at import block_at, read_state
from node.runtime import copyright, licensing
from node.runtime.support import StateGet
from node.types import HASH_LEN

METHODS = MethodTable()

MAX_VERIFY_IMAGE_BYTES = 7 * 1024 * 1024  # base64 of this fits the default 10 MiB request limit
MAX_SIMILAR_RESULTS = 1000
MAX_VERIFY_SIMILAR = 20

_BASE64 = re.compile(r"[A-Za-z0-9+/]*={0,2}")
_DATA_URI = re.compile(r"data:[\w.+-]+/[\w.+-]+;base64,", re.IGNORECASE)


def _sha256(value: JSON) -> bytes:
    return from_hex(value, length=HASH_LEN, what="sha256")


def _phash(value: JSON) -> int:
    """A 64-bit pHash: a JSON integer, or 0x and 1-16 hex digits (leading zeros welcome)."""
    if isinstance(value, bool):
        raise ValueError("expected a 64-bit pHash as an integer or 0x hex")
    if isinstance(value, int):
        number = value
    elif isinstance(value, str) and re.fullmatch(r"0x[0-9a-fA-F]{1,16}", value):
        number = int(value, 16)
    else:
        raise ValueError("expected a 64-bit pHash as an integer or 0x followed by up to 16 hex digits")
    if not 0 <= number <= U64_MAX:
        raise ValueError("a pHash is an unsigned 64-bit number")
    return number


def _radius(value: JSON) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError("expected an integer radius")
    if not 0 <= value <= copyright.MAX_SEARCH_RADIUS:
        raise ValueError(
            f"radius must be in 0..{copyright.MAX_SEARCH_RADIUS} (the index is exact up to there)"
        )
    return value


def _image_base64(value: JSON) -> bytes:
    """Standard base64 (optionally as a data: URI; line breaks ignored), at most MAX_VERIFY_IMAGE_BYTES
    once decoded."""
    if not isinstance(value, str):
        raise ValueError("expected the image file as a base64 string")
    prefix = _DATA_URI.match(value)
    text = "".join((value[prefix.end() :] if prefix else value).split())
    if len(text) > 4 * ((MAX_VERIFY_IMAGE_BYTES + 2) // 3):
        raise ValueError(f"image larger than {MAX_VERIFY_IMAGE_BYTES // (1024 * 1024)} MiB")
    if len(text) % 4 or not _BASE64.fullmatch(text):
        raise ValueError("not valid base64 (standard alphabet, padded)")
    data = base64.b64decode(text)
    if not data:
        raise ValueError("empty image")
    return data


Sha256 = Annotated[bytes, ParamType(_sha256, HASH_SCHEMA)]
PHash = Annotated[
    int,
    ParamType(
        _phash,
        {
            "oneOf": [
                {"type": "integer", "minimum": 0},
                {"type": "string", "pattern": "^0x[0-9a-fA-F]{1,16}$"},
            ]
        },
    ),
]
Radius = Annotated[
    int, ParamType(_radius, {"type": "integer", "minimum": 0, "maximum": copyright.MAX_SEARCH_RADIUS})
]
ImageData = Annotated[
    bytes,
    ParamType(
        _image_base64,
        {
            "type": "string",
            "contentEncoding": "base64",
            "description": "the image file, base64 (data: URI allowed)",
        },
    ),
]

_REGISTRATION_RESULT = {
    "type": ["object", "null"],
    "description": "registration: id, owner, title, creator, description, sha256, phash, width, height, "
    "format, isRaw, block, timestamp, versions[], tags[]",
}


@METHODS.method("copyright_getRegistration", result=_REGISTRATION_RESULT)
async def copyright_getRegistration(ctx: CallContext, id: RegistrationId, at: Hash | None = None) -> JSON:
    """A registration with all its versions and tags; null if there is none with this id."""

    def read(get: StateGet) -> JSON:
        registration = copyright.get_registration(get, id)
        return None if registration is None else registration_json(get, registration)

    return read_state(ctx, at, read)


@METHODS.method("copyright_findBySha256", result=_REGISTRATION_RESULT)
async def copyright_findBySha256(ctx: CallContext, sha256: Sha256, at: Hash | None = None) -> JSON:
    """The registration one of whose versions is exactly this file (its SHA-256); null if none."""

    def read(get: StateGet) -> JSON:
        found = copyright.find_by_sha256(get, sha256)
        registration = None if found is None else copyright.get_registration(get, found)
        return None if registration is None else registration_json(get, registration)

    return read_state(ctx, at, read)


@METHODS.method(
    "copyright_searchSimilar",
    result={"type": "array", "description": "[{id, distance}] by distance, then id"},
)
async def copyright_searchSimilar(
    ctx: CallContext, phash: PHash, radius: Radius | None = None, at: Hash | None = None
) -> JSON:
    """Registrations with a version within `radius` (default: the chain's) of a pHash, nearest first.

    Exact up to radius 16 (the on-chain multi-index); at most 1,000 results.
    """

    def read(get: StateGet) -> JSON:
        r = copyright.read_params(get).phash_radius if radius is None else radius
        found = copyright.search_similar(get, phash, r)[:MAX_SIMILAR_RESULTS]
        return [{"id": rid, "distance": distance} for rid, distance in found]

    return read_state(ctx, at, read)


@METHODS.method(
    "copyright_verifyImage",
    result={
        "type": "object",
        "description": "{width, height, phash, phashEnergy, minPhashEnergy, radius, nearest: {id, distance} | "
        "null, watermark, watermarks, matches: [{kind: exact|similar, distance, version, registration, offers}]}",
    },
    off_loop=True,
)
async def copyright_verifyImage(ctx: CallContext, image: ImageData, at: Hash | None = None) -> JSON:
    """Who owns this image? A copy found anywhere (base64 file, at most 7 MiB and, by default,
    4096 x 3072 pixels: `--rpc-max-image-pixels`; -32009 "busy" with `retryAfterMs` while the
    node's image job slots are taken).

    The watermark first: the payload extracted under the chain's key names the registration
    exactly (`kind: "exact"`), even after JPEG re-encoding, resizing, a crop or a small
    rotation. A copy can carry several marks (`watermarks`; `watermark` is the one the
    validators' path reads): one cropped from a registered image and marked again for another
    registration keeps the first mark, so every registration found this way is an exact match,
    the earliest registered first. Then the pHash: registrations within the chain's radius
    (`kind: "similar"`, nearest first, at most 20). Each match has its distance, the version
    it is closest to, the registration (owner, block, versions) and its open licence offers.

    A copy whose pHash has no structure (`phashEnergy` below the chain's `minPhashEnergy`: a
    flat image) is matched by its watermark only, never by its pHash. `nearest` is the nearest
    registration within 16 bits (the index's reach) even past `radius`, so a "no match" can say
    how far it was; null for a flat copy.
    """
    from node.pod_mining.verify import ImageDecodeError

    jobs = ctx.image_jobs
    assert jobs is not None, "the server gives every call its image jobs"
    block_hash = block_at(ctx, at)
    key = copyright.watermark_key_for(ctx.node.genesis_hash)
    try:
        query = await jobs.run(analyse_query, image, key, jobs.max_pixels)
    except ImageDecodeError as exc:
        raise invalid_params(f"image: {exc}") from None
    facts = query.image

    def read(get: StateGet) -> JSON:
        licence_params = licensing.read_params(get)
        params = copyright.read_params(get)
        matches = rank_matches(get, facts.payloads, facts.phash, MAX_VERIFY_SIMILAR, query.energy)
        near = nearest(get, facts.phash, query.energy)
        return {
            "width": facts.width,
            "height": facts.height,
            "phash": f"0x{facts.phash:016x}",
            "phashEnergy": query.energy,
            "minPhashEnergy": params.min_phash_energy,
            "radius": params.phash_radius,
            "nearest": None if near is None else {"id": near[0], "distance": near[1]},
            "watermark": None if facts.payload is None else to_hex(facts.payload),
            "watermarks": [to_hex(p) for p in facts.payloads],
            "matches": [
                {
                    "kind": match.kind,
                    "distance": match.distance,
                    "version": match.version,
                    "registration": registration_json(get, match.registration),
                    "offers": [
                        offer_json(o, licence_params) for o in licensing.offers_of(get, match.registration.id)
                    ],
                }
                for match in matches
            ],
        }

    return read_state(ctx, block_hash, read)


@METHODS.method("copyright_registrationsOf", result={"type": "array", "items": {"type": "integer"}})
async def copyright_registrationsOf(
    ctx: CallContext,
    account: AccountId,
    start: Count | None = None,
    limit: Count | None = None,
    at: Hash | None = None,
) -> JSON:
    """Ids of the registrations an account owns: page [start, start + limit) of its list (limit <= 1000).

    The list is kept in no meaningful order (removal swaps the last entry in); each page is
    sorted. A page shorter than `limit` is the last.
    """
    return read_state(
        ctx, at, lambda get: copyright.registrations_of(get, account, start or 0, page_size(limit))
    )
