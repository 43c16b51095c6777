"""Block sync over `/imagechain/sync/1`: status, block ranges and blocks by hash.

Requests and responses are canonical msgpack arrays:

    STATUS        [0]                                   -> [genesis, best_n, best_hash, fin_n, fin_hash]
    BLOCKS        [1, from_number, max_count]           -> [[block, justification | nil], ...]
    BLOCK_BY_HASH [2, hash]                             -> [[block, justification | nil]] or []
    CATCH_UP      [3]                                   -> the finality voter's catch-up, or b""

A range answer follows the server's best chain upward from `from_number`, stops at `max_count`
blocks (at most `MAX_BLOCKS_PER_REQUEST`) or at `MAX_RESPONSE_BYTES`.

Every field of every message is checked before use, in both directions: block numbers and
counts are u32 (a block number is four bytes in the database), a request has exactly its
fields, a status's finalized block is not above its best, a range answer is the consecutive
range asked for. A request that breaks a rule is a `BadRequest` ("bad request: ..."); the
network answers it with the REJECTED status and lowers the sender's score. A response that
breaks one is a `DecodeError`, and the requester penalises the server. Everything received is verified as if it were new: blocks
go through the full import pipeline and justifications through the finality gadget's
verifier, so nothing is taken on trust.

The `Syncer` keeps each peer's last known status and pulls from whichever peer is ahead:
from our best block + 1, or, when the peer's chain forks below our best, from our finalized
block + 1 (the import pipeline skips blocks it already has).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from node.codec import U32_MAX, DecodeError, decode, encode, expect_bytes, expect_int, expect_list
from node.core.chain import Chain
from node.types import HASH_LEN, MAX_BLOCK_BYTES, Block

log = logging.getLogger("imagechain.sync")

PROTOCOL = "/imagechain/sync/1"
STATUS, BLOCKS, BLOCK_BY_HASH, CATCH_UP = 0, 1, 2, 3
MAX_BLOCKS_PER_REQUEST = 512
MAX_RESPONSE_BYTES = 8 * 1024 * 1024
MAX_REQUEST_BYTES = 256


class BadRequest(ValueError):
    """A malformed or out-of-range request: the peer that sent it is at fault."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"bad request: {reason}")


@dataclass
class PeerStatus:
    genesis_hash: bytes
    best_number: int
    best_hash: bytes
    finalized_number: int
    finalized_hash: bytes

    def to_wire(self) -> list[Any]:
        return [self.genesis_hash, self.best_number, self.best_hash, self.finalized_number, self.finalized_hash]

    @classmethod
    def from_wire(cls, obj: Any) -> PeerStatus:
        genesis, best_n, best_h, fin_n, fin_h = expect_list(obj, 5, "status")
        status = cls(
            expect_bytes(genesis, HASH_LEN, what="genesis"),
            expect_int(best_n, U32_MAX, "best number"),
            expect_bytes(best_h, HASH_LEN, what="best hash"),
            expect_int(fin_n, U32_MAX, "finalized number"),
            expect_bytes(fin_h, HASH_LEN, what="finalized hash"),
        )
        if status.finalized_number > status.best_number:
            raise DecodeError(f"status: finalized #{status.finalized_number} above best #{status.best_number}")
        return status


# ---------------------------------------------------------------------------------------------
# Requests
# ---------------------------------------------------------------------------------------------


def status_request() -> bytes:
    return encode([STATUS])


def blocks_request(from_number: int, max_count: int) -> bytes:
    return encode([BLOCKS, from_number, max_count])


def block_by_hash_request(block_hash: bytes) -> bytes:
    return encode([BLOCK_BY_HASH, block_hash])


def catch_up_request() -> bytes:
    return encode([CATCH_UP])


def decode_blocks_response(data: bytes, start: int, count: int) -> list[tuple[Block, bytes | None]]:
    """The answer to `blocks_request(start, count)`: blocks #start, #start+1, ... and no more than
    asked (a server that sends anything else is at fault, `DecodeError`)."""
    items = expect_list(decode(data, MAX_RESPONSE_BYTES + MAX_BLOCK_BYTES), what="blocks response")
    if len(items) > min(count, MAX_BLOCKS_PER_REQUEST):
        raise DecodeError(f"blocks response: {len(items)} blocks, more blocks than the {count} asked for")
    result = []
    for offset, item in enumerate(items):
        block, justification = expect_list(item, 2, "block entry")
        if justification is not None:
            justification = expect_bytes(justification, max_len=1024 * 1024, what="justification")
        decoded = Block.from_wire(block)
        number = decoded.header.number
        if offset == 0 and number != start:
            raise DecodeError(f"blocks response starts at #{number}, not at #{start} as asked")
        if offset > 0 and number != start + offset:
            raise DecodeError(f"blocks response: #{number} after #{start + offset - 1}, not consecutive")
        result.append((decoded, justification))
    return result


def _parse_request(data: bytes) -> tuple[int, list[Any]]:
    """(kind, fields) of a request whose every field is in range; `BadRequest` otherwise."""
    try:
        request = expect_list(decode(data, MAX_REQUEST_BYTES), what="sync request")
        kind = expect_int(request[0] if request else None, 3, "request kind")
        if kind in (STATUS, CATCH_UP):
            expect_list(request, 1, "status or catch-up request")
            return kind, []
        if kind == BLOCKS:
            _, start, count = expect_list(request, 3, "blocks request")
            return kind, [expect_int(start, U32_MAX, "from block number"), expect_int(count, U32_MAX, "max count")]
        _, block_hash = expect_list(request, 2, "block-by-hash request")
        return kind, [expect_bytes(block_hash, HASH_LEN, what="hash")]
    except DecodeError as exc:
        raise BadRequest(str(exc)) from exc


def serve_request(chain: Chain, data: bytes, catch_up: Callable[[], bytes]) -> bytes:
    """Answer one sync request from our chain; BadRequest for malformed ones (the peer pays).

    ``catch_up`` gives the finality voter's catch-up (b"" when there is none to give).
    """
    kind, fields = _parse_request(data)
    if kind == STATUS:
        return encode(local_status(chain).to_wire())
    if kind == CATCH_UP:
        return catch_up()
    if kind == BLOCKS:
        start, count = fields
        # Never past the last block number there can be (u32), however large `count` is.
        end = min(start + min(count, MAX_BLOCKS_PER_REQUEST), U32_MAX + 1)
        entries: list[Any] = []
        size = 0
        for number in range(start, end):
            block_hash = chain.hash_at(number)
            block = chain.block(block_hash) if block_hash is not None else None
            if block is None:
                break
            # Size from the parts (header, extrinsics): encoding each entry twice would double the cost.
            size += 64 + len(block.header.encode()) + sum(len(x) + 5 for x in block.extrinsics)
            if entries and size > MAX_RESPONSE_BYTES:
                break
            entries.append([block.to_wire(), chain.justification(block.hash)])
        return encode(entries)
    (block_hash,) = fields
    block = chain.block(block_hash)
    if block is None:
        return encode([])
    return encode([[block.to_wire(), chain.justification(block_hash)]])


def local_status(chain: Chain) -> PeerStatus:
    best = chain.best_header()
    finalized = chain.finalized_header()
    return PeerStatus(chain.genesis_hash, best.number, best.hash, finalized.number, finalized.hash)


# ---------------------------------------------------------------------------------------------
# Progress
# ---------------------------------------------------------------------------------------------


@dataclass
class SyncProgress:
    starting_block: int = 0
    target: int = 0
    imported: int = 0
    started_at: float = 0.0
    last_rate: float = 0.0

    def record(self, count: int) -> None:
        if not self.started_at:
            self.started_at = time.monotonic()
        self.imported += count
        elapsed = time.monotonic() - self.started_at
        self.last_rate = self.imported / elapsed if elapsed > 0 else 0.0
