"""Block authoring: build a block from the pool for one of our Aura slots, then seal it.

The builder runs the same executive as import: the `timestamp.set` inherent for the slot's
start, then ready pool transactions in priority order until the block's size or weight limit
(or the proposal time budget) is reached. Transactions that turn out invalid are left out and
reported so the pool can drop them. The block is sealed with the authority's ed25519 key over
the header's pre-hash.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from node.core.chain import Chain
from node.core.txpool import TxPool
from node.keys import Keypair
from node.runtime import system
from node.runtime.executive import InvalidReason, InvalidTransaction, timestamp_inherent
from node.runtime.runtime import RUNTIME
from node.runtime.support import PURE_HOST, EventRecord, Host
from node.state.trie import TrieUpdate
from node.types import Block, Header, aura_pre_digest, merkle_root

ZERO_HASH = b"\x00" * 32


@dataclass
class BuiltBlock:
    block: Block
    update: TrieUpdate
    events: list[EventRecord]
    invalid: list[bytes] = field(default_factory=list)
    seconds: float = 0.0


def build_block(
    chain: Chain,
    pool: TxPool,
    slot: int,
    keypair: Keypair,
    time_budget_s: float = 1.0,
    max_transactions: int | None = None,
    host: Host = PURE_HOST,
) -> BuiltBlock:
    started = time.perf_counter()
    parent = chain.best_header()
    state = chain.state_reader(parent.hash)
    params = system.read_params(state)
    pre_digest = aura_pre_digest(slot)
    template = Header(parent.hash, parent.number + 1, ZERO_HASH, ZERO_HASH, (pre_digest,))
    ctx = RUNTIME.initialize_block(state, template, host)

    inherent = timestamp_inherent(slot * params.slot_ms)
    RUNTIME.apply_extrinsic(ctx, chain.genesis_hash, inherent)
    extrinsics = [inherent]
    invalid: list[bytes] = []
    for tx in pool.ready():
        if max_transactions is not None and len(extrinsics) > max_transactions:
            break
        if time.perf_counter() - started > time_budget_s:
            break
        try:
            RUNTIME.apply_extrinsic(ctx, chain.genesis_hash, tx.encoded, signature_ok=True)
        except InvalidTransaction as exc:
            if exc.reason is InvalidReason.EXHAUSTS_RESOURCES:
                break
            if exc.reason not in (InvalidReason.FUTURE, InvalidReason.BLOCK_QUOTA):
                invalid.append(tx.hash)
            continue
        extrinsics.append(tx.encoded)

    changes = RUNTIME.finalize_block(ctx)
    update = chain.db.state.update(parent.state_root, changes)
    header = Header(parent.hash, parent.number + 1, update.root, merkle_root(extrinsics), (pre_digest,))
    sealed = header.with_seal(keypair.sign(header.seal_payload(chain.genesis_hash)))
    return BuiltBlock(Block(sealed, tuple(extrinsics)), update, ctx.events, invalid, time.perf_counter() - started)
