"""Block import: check the header, execute the body, compare roots, store (one transaction).

The pipeline, in order (a failure at any step rejects the block with a reason):

1. already known? parent known? number = parent + 1?
2. Aura: slot above the parent's, not in the future, seal by the slot's author;
3. signatures of all signed extrinsics, verified in parallel across cores;
4. the runtime's `execute_block` over the parent state (extrinsics root, inherent, every
   transaction rule, every call);
5. the new state root computed from the changes must equal the header's;
6. `Chain.add_block` writes everything in one LMDB transaction and applies the fork choice.
"""

from __future__ import annotations

import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

from node.codec import DecodeError
from node.consensus.aura import InvalidSeal, check_header, slot_at
from node.core.chain import Chain, HeadChange
from node.keys import verify_batch
from node.runtime import aura, system
from node.runtime.executive import InvalidBlock, decode_extrinsic_cached
from node.runtime.runtime import RUNTIME
from node.runtime.support import PURE_HOST, EventRecord, Host
from node.state.trie import TrieUpdate
from node.types import Block


class ImportError_(Exception):
    """A block that must not be imported; `reason` is one line for logs and peer scoring."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class AlreadyKnown(ImportError_):
    pass


class UnknownParent(ImportError_):
    pass


class NotOnFinalizedChain(ImportError_):
    pass


@dataclass
class ImportedBlock:
    block: Block
    events: list[EventRecord]
    update: TrieUpdate
    seconds: float
    change: HeadChange = field(default_factory=HeadChange)


def verify_range(blocks: list[Block], max_extrinsic_bytes: int) -> list[list[bool]]:
    """The `signature_jobs` results of many blocks, verified together on every core."""
    per_block = [signature_jobs(block.extrinsics, max_extrinsic_bytes)[1] for block in blocks]
    results = verify_batch([job for jobs in per_block for job in jobs])
    verified: list[list[bool]] = []
    for jobs in per_block:
        verified.append(results[: len(jobs)])
        results = results[len(jobs) :]
    return verified


def signature_jobs(extrinsics: tuple[bytes, ...], max_extrinsic_bytes: int) -> tuple[list[int], list[tuple]]:
    """(index, (public key, payload, signature)) of every decodable signed extrinsic.

    Undecodable ones are left to the runtime, which rejects them with the precise reason.
    """
    indexes: list[int] = []
    jobs: list[tuple] = []
    for index, encoded in enumerate(extrinsics):
        if len(encoded) > max_extrinsic_bytes:
            continue
        try:
            extrinsic = decode_extrinsic_cached(encoded)
        except DecodeError:
            continue
        if extrinsic.signer is not None:
            indexes.append(index)
            jobs.append((extrinsic.signer, extrinsic.signing_payload(), extrinsic.signature))
    return indexes, jobs


# One dispatcher thread hands signature batches to the key module's worker pool, so the C-level
# verification (which releases the GIL) overlaps the Python-level execution of the same block.
_dispatcher = ThreadPoolExecutor(max_workers=1, thread_name_prefix="imagechain-sigdispatch")
INLINE_SIGNATURES = 32


def execute_and_check(
    chain: Chain, block: Block, now_ms: int, verified: list[bool] | None = None, host: Host = PURE_HOST
) -> ImportedBlock:
    """Steps 1-5: everything but the write. Raises ImportError_ with the reason.

    `verified`, when given, holds the results of this block's `signature_jobs` checked ahead of
    time (sync verifies a whole downloaded range at once, on every core).
    """
    started = time.perf_counter()
    header = block.header
    if chain.contains(block.hash):
        raise AlreadyKnown("block already imported")
    parent = chain.header(header.parent_hash)
    if parent is None:
        raise UnknownParent(f"unknown parent {header.parent_hash.hex()}")
    if header.number != parent.number + 1:
        raise ImportError_(f"number {header.number} does not follow parent {parent.number}")
    finalized = chain.finalized_header()
    if header.number <= finalized.number or not chain.is_descendant(parent.hash, finalized.hash):
        raise NotOnFinalizedChain(f"block #{header.number} does not descend from finalized #{finalized.number}")
    parent_state = chain.state_reader(parent.hash)
    params = system.read_params(parent_state)
    try:
        check_header(
            header, parent, aura.read_authorities(parent_state), slot_at(now_ms, params.slot_ms), chain.genesis_hash
        )
    except InvalidSeal as exc:
        raise ImportError_(f"bad seal: {exc}") from exc
    # Verify signatures on the other cores while executing optimistically; any bad signature
    # invalidates the whole block, so the verdict is the same as checking first.
    indexes, jobs = signature_jobs(block.extrinsics, params.max_extrinsic_bytes)
    pending: Future[list[bool]] = Future()
    if verified is not None and len(verified) == len(jobs):
        pending.set_result(verified)
    elif len(jobs) < INLINE_SIGNATURES:
        pending.set_result(verify_batch(jobs, workers=1))  # a few: a thread round trip costs more
    else:
        pending = _dispatcher.submit(verify_batch, jobs)
    assumed: list[bool | None] = [None] * len(block.extrinsics)
    for index in indexes:
        assumed[index] = True
    try:
        execution = RUNTIME.execute_block(parent_state, block, chain.genesis_hash, assumed, host)
    except InvalidBlock as exc:
        pending.result()
        raise ImportError_(f"invalid block: {exc}") from exc
    for index, ok in zip(indexes, pending.result(), strict=True):
        if not ok:
            raise ImportError_(f"invalid block: extrinsic {index}: BadSignature")
    update = chain.db.state.update(parent.state_root, execution.changes)
    if update.root != header.state_root:
        raise ImportError_(
            f"state root mismatch: header {header.state_root.hex()}, computed {update.root.hex()}"
        )
    return ImportedBlock(block, execution.events, update, time.perf_counter() - started)


def import_block(
    chain: Chain,
    block: Block,
    now_ms: int | None = None,
    verified: list[bool] | None = None,
    host: Host = PURE_HOST,
) -> ImportedBlock:
    """Check and store `block`; `now_ms` is the importer's clock (for the future-slot rule)."""
    if now_ms is None:
        now_ms = int(time.time() * 1000)
    imported = execute_and_check(chain, block, now_ms, verified, host)
    imported.change = chain.add_block(block, imported.update)
    return imported
