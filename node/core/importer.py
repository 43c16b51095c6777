"""Block import: check the header, execute the body, compare roots, store (one transaction).

The pipeline, in order (a failure at any step rejects the block with a reason):

1. already known? parent known? number = parent + 1?
2. Aura: slot above the parent's, not in the future, seal by the slot's author;
3. signatures of all signed extrinsics, verified in parallel across cores;
4. the runtime's `execute_block` over the parent state (extrinsics root, inherent, every
   transaction rule, every call);
5. the new state root computed from the changes must equal the header's;
6. `Chain.commit_block` writes everything in one LMDB transaction and moves the head.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from node.codec import DecodeError
from node.consensus.aura import InvalidSeal, check_header, slot_at
from node.core.chain import Chain
from node.keys import verify_batch
from node.runtime import aura, system
from node.runtime.executive import InvalidBlock, decode_extrinsic_cached, execute_block
from node.runtime.support import Event
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


@dataclass
class ImportedBlock:
    block: Block
    events: list[Event]
    update: TrieUpdate
    seconds: float


def verify_signatures(extrinsics: tuple[bytes, ...], max_extrinsic_bytes: int) -> list[bool | None]:
    """Verify every signed extrinsic's signature in parallel; None for unsigned or undecodable.

    Undecodable ones are left to the runtime, which rejects them with the precise reason.
    """
    jobs = []
    slots: list[int] = []
    results: list[bool | None] = [None] * len(extrinsics)
    for index, encoded in enumerate(extrinsics):
        if len(encoded) > max_extrinsic_bytes:
            continue
        try:
            extrinsic = decode_extrinsic_cached(encoded)
        except DecodeError:
            continue
        if extrinsic.signer is not None:
            jobs.append((extrinsic.signer, extrinsic.signing_payload(), extrinsic.signature))
            slots.append(index)
    for index, ok in zip(slots, verify_batch(jobs), strict=True):
        results[index] = ok
    return results


def execute_and_check(chain: Chain, block: Block, now_ms: int) -> ImportedBlock:
    """Steps 1-5: everything but the write. Raises ImportError_ with the reason."""
    started = time.perf_counter()
    header = block.header
    if chain.contains(block.hash):
        raise AlreadyKnown("block already imported")
    parent = chain.header(header.parent_hash)
    if parent is None:
        raise UnknownParent(f"unknown parent {header.parent_hash.hex()}")
    if header.number != parent.number + 1:
        raise ImportError_(f"number {header.number} does not follow parent {parent.number}")
    parent_state = chain.state_reader(parent.hash)
    params = system.read_params(parent_state)
    try:
        check_header(header, parent, aura.read_authorities(parent_state), slot_at(now_ms, params.slot_ms))
    except InvalidSeal as exc:
        raise ImportError_(f"bad seal: {exc}") from exc
    signatures = verify_signatures(block.extrinsics, params.max_extrinsic_bytes)
    try:
        execution = execute_block(parent_state, block, chain.genesis_hash, signatures)
    except InvalidBlock as exc:
        raise ImportError_(f"invalid block: {exc}") from exc
    update = chain.db.state.update(parent.state_root, execution.changes)
    if update.root != header.state_root:
        raise ImportError_(
            f"state root mismatch: header {header.state_root.hex()}, computed {update.root.hex()}"
        )
    return ImportedBlock(block, execution.events, update, time.perf_counter() - started)


def import_block(chain: Chain, block: Block, now_ms: int | None = None, finalize: bool = True) -> ImportedBlock:
    """Check and store `block`; `now_ms` is the importer's clock (for the future-slot rule)."""
    if now_ms is None:
        now_ms = int(time.time() * 1000)
    imported = execute_and_check(chain, block, now_ms)
    chain.commit_block(block, imported.update, finalize=finalize)
    return imported
