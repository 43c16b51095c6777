"""Block sync over `/imagechain/sync/1`: status, block ranges and blocks by hash.

Requests and responses are canonical msgpack arrays:

    STATUS        [0]                                   -> [genesis, best_n, best_hash, fin_n, fin_hash]
    BLOCKS        [1, from_number, max_count]           -> [[block, justification | nil], ...]
    BLOCK_BY_HASH [2, hash]                             -> [[block, justification | nil]] or []
    CATCH_UP      [3]                                   -> the finality voter's catch-up, or b""

A range answer follows the server's best chain upward from `from_number`, stops at `max_count`
blocks or at `MAX_RESPONSE_BYTES`. Everything received is verified as if it were new: blocks
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

from node.codec import DecodeError, decode, encode, expect_bytes, expect_int, expect_list
from node.core.chain import Chain
from node.types import HASH_LEN, MAX_BLOCK_BYTES, Block

log = logging.getLogger("imagechain.sync")

PROTOCOL = "/imagechain/sync/1"
STATUS, BLOCKS, BLOCK_BY_HASH, CATCH_UP = 0, 1, 2, 3
MAX_BLOCKS_PER_REQUEST = 512
MAX_RESPONSE_BYTES = 8 * 1024 * 1024
MAX_REQUEST_BYTES = 256


class BadRequest(ValueError):
    pass


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
        return cls(
            expect_bytes(genesis, HASH_LEN, what="genesis"),
            expect_int(best_n),
            expect_bytes(best_h, HASH_LEN, what="best hash"),
            expect_int(fin_n),
            expect_bytes(fin_h, HASH_LEN, what="finalized hash"),
        )


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


def decode_blocks_response(data: bytes) -> list[tuple[Block, bytes | None]]:
    items = expect_list(decode(data, MAX_RESPONSE_BYTES + MAX_BLOCK_BYTES), what="blocks response")
    result = []
    for item in items:
        block, justification = expect_list(item, 2, "block entry")
        if justification is not None:
            justification = expect_bytes(justification, max_len=1024 * 1024, what="justification")
        result.append((Block.from_wire(block), justification))
    return result


def serve_request(chain: Chain, data: bytes, catch_up: Callable[[], bytes]) -> bytes:
    """Answer one sync request from our chain; BadRequest for malformed ones (the peer pays).

    ``catch_up`` gives the finality voter's catch-up (b"" when there is none to give).
    """
    try:
        request = expect_list(decode(data, MAX_REQUEST_BYTES), what="sync request")
        kind = expect_int(request[0] if request else None, 3, "request kind")
    except DecodeError as exc:
        raise BadRequest(str(exc)) from exc
    if kind == STATUS:
        return encode(local_status(chain).to_wire())
    if kind == CATCH_UP:
        return catch_up()
    if kind == BLOCKS:
        try:
            _, start, count = expect_list(request, 3, "blocks request")
            start, count = expect_int(start), expect_int(count)
        except DecodeError as exc:
            raise BadRequest(str(exc)) from exc
        entries: list[Any] = []
        size = 0
        for number in range(start, start + min(count, MAX_BLOCKS_PER_REQUEST)):
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
    try:
        _, block_hash = expect_list(request, 2, "block-by-hash request")
        block_hash = expect_bytes(block_hash, HASH_LEN, what="hash")
    except DecodeError as exc:
        raise BadRequest(str(exc)) from exc
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
