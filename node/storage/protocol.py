"""`/imagechain/blob/1`: the image store's request-response protocol (PROTOCOL section 12).

Carried by `node.p2p.reqresp` (one stream per request, a varint-length frame each way, a status
byte before the response body). Bodies are canonical msgpack (`node.codec`), fixed-order arrays:

    request  [0, root]                  INFO: the blob's size and segment roots
             [1, root, index]           SEGMENT: segment `index` (u32) and its Merkle proof
             [2, root, first, count]    SEGMENTS: up to 8 consecutive segments from `first`
    response INFO     nil | [size, [segment root, ...], keeps]
             SEGMENT  nil | [data, [sibling hash, ...]]
             SEGMENTS nil | [[index, data, [sibling hash, ...]], ...]  (those held, in order)

`nil` means "not held here" (not an error: provider records outlive what they announce). An
INFO answer comes only from a node holding the whole blob; `keeps` says whether that node keeps
it as a storer (assigned to it, or taken over by its repair loop), which the repair loops count,
rather than as a cache (an uploader's or a gateway's copy). SEGMENTS exists for speed: every
request opens a stream and negotiates its protocol first, which costs py-libp2p ~8 ms on a
loopback connection, more than sending a 256 KiB segment. Every answer is checked: segment
roots must hash to the root (`BlobStore.expect`), a segment must hash to its segment root and its
proof lead to the root (`verify_segment`). A malformed request is rejected (the requester loses
score in `node.p2p.reqresp`); a response that breaks the rules costs its sender
`PENALTY_FORGED` and the fetch moves on to another provider.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from node.codec import U32_MAX, DecodeError, decode, encode, expect_bytes, expect_int, expect_list
from node.primitives.merkle import SEGMENT_BYTES
from node.storage.store import MAX_BLOB_BYTES, segment_count

__all__ = [
    "INFO",
    "MAX_BATCH",
    "MAX_PROOF_HASHES",
    "PENALTY_FORGED",
    "PROTOCOL",
    "SEGMENT",
    "SEGMENTS",
    "BadRequest",
    "BlobInfoAnswer",
    "SegmentAnswer",
    "decode_info",
    "decode_request",
    "decode_segment",
    "decode_segments",
    "encode_info",
    "encode_segment",
    "encode_segments",
    "info_request",
    "segment_request",
    "segments_request",
]

PROTOCOL = "/imagechain/blob/1"
INFO, SEGMENT, SEGMENTS = 0, 1, 2
MAX_BATCH = 8  # segments in one SEGMENTS answer: 2 MiB, well below the 16 MiB response limit
ROOT_BYTES = 32
# A 256 MiB blob has 1,024 segments: an audit path holds at most 10 hashes; allow some slack.
MAX_PROOF_HASHES = 32
# Bytes that do not hash to the root they were asked for: a lie or a broken disk, never a race.
# At the default ban threshold (-100) one forged answer bans the peer for `ban_seconds`.
PENALTY_FORGED = 100


class BadRequest(ValueError):
    """A request that is not a well-formed `/imagechain/blob/1` request."""


@dataclass(frozen=True)
class BlobInfoAnswer:
    size: int
    segment_roots: list[bytes]
    keeps: bool


@dataclass(frozen=True)
class SegmentAnswer:
    data: bytes
    proof: list[bytes]


# -- requests ---------------------------------------------------------------------------------


def info_request(root: bytes) -> bytes:
    return encode([INFO, root])


def segment_request(root: bytes, index: int) -> bytes:
    return encode([SEGMENT, root, index])


def segments_request(root: bytes, first: int, count: int) -> bytes:
    return encode([SEGMENTS, root, first, count])


def decode_request(data: bytes) -> tuple[int, bytes, int, int]:
    """(kind, root, first segment or 0, segment count); raises BadRequest naming what is wrong."""
    try:
        obj = expect_list(decode(data, 256), what="blob request")
        if not obj:
            raise DecodeError("blob request: empty")
        kind = expect_int(obj[0], 255, "request kind")
        if kind == INFO:
            _, root = expect_list(obj, 2, "info request")
            return INFO, expect_bytes(root, ROOT_BYTES, what="blob root"), 0, 0
        if kind == SEGMENT:
            _, root, index = expect_list(obj, 3, "segment request")
            root = expect_bytes(root, ROOT_BYTES, what="blob root")
            return SEGMENT, root, expect_int(index, U32_MAX, "segment index"), 1
        if kind == SEGMENTS:
            _, root, first, count = expect_list(obj, 4, "segments request")
            root = expect_bytes(root, ROOT_BYTES, what="blob root")
            first = expect_int(first, U32_MAX, "first segment")
            count = expect_int(count, U32_MAX, "segment count")
            if not 1 <= count <= MAX_BATCH:
                raise DecodeError(f"segment count {count}: 1 to {MAX_BATCH} per request")
            return SEGMENTS, root, first, count
        raise DecodeError(f"unknown request kind {kind}")
    except DecodeError as exc:
        raise BadRequest(str(exc)) from None


# -- responses --------------------------------------------------------------------------------


def encode_info(size: int, segment_roots: list[bytes] | tuple[bytes, ...], keeps: bool) -> bytes:
    return encode([size, list(segment_roots), keeps])


def encode_segment(data: bytes, proof: list[bytes]) -> bytes:
    return encode([data, proof])


def encode_segments(segments: list[tuple[int, bytes, list[bytes]]]) -> bytes:
    return encode([[index, data, proof] for index, data, proof in segments])


NOT_HELD = encode(None)


def decode_info(body: bytes) -> BlobInfoAnswer | None:
    """An INFO answer, shape-checked (the roots are checked against the blob root by the caller)."""
    obj = decode(body, 64 * 1024)
    if obj is None:
        return None
    size, roots, keeps = expect_list(obj, 3, "blob info")
    size = expect_int(size, MAX_BLOB_BYTES, "blob size")
    roots = expect_list(roots, what="segment roots")
    if len(roots) != segment_count(size):
        raise DecodeError(f"a blob of {size} bytes has {segment_count(size)} segments, not {len(roots)}")
    if not isinstance(keeps, bool):
        raise DecodeError("keeps: expected a boolean")
    return BlobInfoAnswer(size, [expect_bytes(r, ROOT_BYTES, what="segment root") for r in roots], keeps)


def decode_segment(body: bytes) -> SegmentAnswer | None:
    obj: Any = decode(body, SEGMENT_BYTES + 4096)
    if obj is None:
        return None
    data, proof = expect_list(obj, 2, "segment")
    data = expect_bytes(data, max_len=SEGMENT_BYTES, what="segment data")
    proof = expect_list(proof, what="segment proof")
    if len(proof) > MAX_PROOF_HASHES:
        raise DecodeError(f"a proof of {len(proof)} hashes")
    return SegmentAnswer(data, [expect_bytes(h, ROOT_BYTES, what="proof hash") for h in proof])


def decode_segments(body: bytes, first: int, count: int) -> list[tuple[int, SegmentAnswer]] | None:
    """A SEGMENTS answer: (index, segment) pairs, each index within [first, first + count),
    strictly increasing."""
    obj: Any = decode(body, count * (SEGMENT_BYTES + 4096))
    if obj is None:
        return None
    items = expect_list(obj, what="segments")
    if len(items) > count:
        raise DecodeError(f"{len(items)} segments answered, {count} asked")
    result: list[tuple[int, SegmentAnswer]] = []
    for item in items:
        index, data, proof = expect_list(item, 3, "segment")
        index = expect_int(index, U32_MAX, "segment index")
        if not first <= index < first + count or (result and index <= result[-1][0]):
            raise DecodeError(f"segment {index} was not asked for, or is out of order")
        data = expect_bytes(data, max_len=SEGMENT_BYTES, what="segment data")
        proof = expect_list(proof, what="segment proof")
        if len(proof) > MAX_PROOF_HASHES:
            raise DecodeError(f"a proof of {len(proof)} hashes")
        result.append((index, SegmentAnswer(data, [expect_bytes(h, ROOT_BYTES, what="proof hash") for h in proof])))
    return result
