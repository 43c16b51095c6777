"""What a signed transaction would cost and do, asked before it is sent: `payment_queryInfo` and
`system_dryRun` (Substrate's names).

A wallet that submits first and reads the events after learns of a failure once its fee is
gone. These two let it ask the node's view instead: the fee, and the outcome of applying the
extrinsic on top of a block (the best by default) in a block built just for the question,
with the runtime's own executive. Nothing is stored, gossiped or pooled.
"""

from __future__ import annotations

import time
from typing import Any

from node.codec import DecodeError
from node.consensus.aura import slot_at
from node.rpc.errors import invalid_params
from node.rpc.jsonrpc import JSON, CallContext, MethodTable
from node.rpc.methods.substrate import ExtrinsicBytes
from node.rpc.params import Hash
from node.rpc.render import amount_json, event_json
from node.rpc.state_at import block_at, read_state
from node.runtime import system
from node.runtime.executive import InvalidBlock, InvalidTransaction, timestamp_inherent
from node.runtime.runtime import RUNTIME
from node.runtime.support import PURE_HOST, EventRecord, StateGet
from node.types import Extrinsic, Header, aura_pre_digest

METHODS = MethodTable()

ZERO_HASH = b"\x00" * 32
# Slots tried for the question's block when one's author is disabled (an equivocator).
MAX_SLOTS_TRIED = 64


def _decode(encoded: bytes, params: system.ChainParams) -> Extrinsic:
    if len(encoded) > params.max_extrinsic_bytes:
        raise invalid_params(f"extrinsic: {len(encoded)} bytes, at most {params.max_extrinsic_bytes}")
    try:
        return Extrinsic.decode(encoded)
    except DecodeError as exc:
        raise invalid_params(f"extrinsic: {exc}") from None


@METHODS.method(
    "payment_queryInfo",
    result={"type": "object", "description": "{weight, class, partialFee}: partialFee in base units, a string"},
)
async def payment_queryInfo(ctx: CallContext, extrinsic: ExtrinsicBytes, at: Hash | None = None) -> JSON:
    """The fee an extrinsic pays at block `at` (the best by default), without its tip: base fee +
    per-byte fee x its length + weight fee x its call's weight (Substrate's `partialFee`, in base
    units as a decimal string). Checks nothing else: see `system_dryRun`."""

    def read(get: StateGet) -> JSON:
        params = system.read_params(get)
        decoded = _decode(extrinsic, params)
        try:
            spec, _ = RUNTIME.lookup_call(decoded.call)
        except InvalidTransaction as exc:
            raise invalid_params(f"extrinsic: {exc}") from None
        fee = system.fee_for(params, len(extrinsic), spec.weight)
        return {"weight": spec.weight, "class": "normal", "partialFee": str(fee)}

    return read_state(ctx, at, read)


@METHODS.method(
    "system_dryRun",
    result={
        "type": "object",
        "description": "{valid, invalid: {reason, detail} | null, applied, success, error: {name, detail, docs} "
        "| null, fee, feeRaw, tip, tipRaw, weight, events[]}",
    },
)
async def system_dryRun(ctx: CallContext, extrinsic: ExtrinsicBytes, at: Hash | None = None) -> JSON:
    """Apply a signed extrinsic on top of block `at` (the best by default) in a throw-away block
    for the next slot, and say what would happen; nothing is kept.

    `valid: false` with the pool's reason (`invalid`) when no block would take it (bad signature,
    a fee it cannot pay, ...). Otherwise `fee` (with the tip) and, when it could be applied,
    `success` and the events it would deposit; a failing call names its declared `error`, the
    error's `detail` and `docs`: its fee would be paid all the same. `applied: false` when the
    sender has earlier transactions waiting in the pool (its nonce is ahead of the state's)."""
    block_hash = block_at(ctx, at)
    return read_state(ctx, block_hash, lambda get: _dry_run(ctx, get, block_hash, extrinsic))


def _dry_run(ctx: CallContext, get: StateGet, block_hash: bytes, encoded: bytes) -> dict[str, Any]:
    node = ctx.node
    parent = node.chain.header(block_hash)
    host = getattr(node, "verification", None) or PURE_HOST
    out: dict[str, Any] = {"valid": True, "invalid": None, "applied": False, "success": None, "error": None}
    try:
        valid = RUNTIME.validate_transaction(get, node.genesis_hash, encoded, parent.number, parent.hash, host=host)
    except InvalidTransaction as exc:
        return {**out, "valid": False, "invalid": {"reason": exc.reason.value, "detail": exc.detail}}
    decoded = Extrinsic.decode(encoded)
    tip = decoded.extra.tip if decoded.extra is not None else 0
    spec, _ = RUNTIME.lookup_call(decoded.call)
    out.update(amount_json("fee", valid.fee), **amount_json("tip", tip), weight=spec.weight, events=[])
    if valid.nonce != valid.account_nonce:
        return out
    ctx_block = _question_block(node, get, parent, host)
    index = 1  # after the timestamp inherent
    try:
        RUNTIME.apply_extrinsic(ctx_block, node.genesis_hash, encoded)
    except InvalidTransaction as exc:
        return {**out, "valid": False, "invalid": {"reason": exc.reason.value, "detail": exc.detail}}
    # Through the wire form, as the events are stored: integers become u128 fields.
    events = [
        RUNTIME.decode_event(EventRecord.from_wire(record.to_wire()))
        for record in ctx_block.events
        if record.phase == index
    ]
    failed = next((e for e in events if isinstance(e.event, system.ExtrinsicFailed)), None)
    out.update(applied=True, success=failed is None, events=[event_json(e) for e in events])
    if failed is not None:
        fields = event_json(failed)["fields"]
        out["error"] = {"name": failed.event.error, "detail": fields.get("detail"), "docs": fields.get("docs", "")}
    return out


def _question_block(node: Any, get: StateGet, parent: Header, host: Any) -> Any:
    """A block context on `parent` for the next slot (or now, if later), its timestamp applied."""
    params = system.read_params(get)
    slot = max((parent.slot or 0) + 1, slot_at(int(time.time() * 1000), params.slot_ms))
    for attempt in range(MAX_SLOTS_TRIED):
        template = Header(parent.hash, parent.number + 1, ZERO_HASH, ZERO_HASH, (aura_pre_digest(slot + attempt),))
        try:
            block = RUNTIME.initialize_block(get, template, host)
        except InvalidBlock:
            continue  # that slot's author is disabled: the next slot's may not be
        RUNTIME.apply_extrinsic(block, node.genesis_hash, timestamp_inherent((slot + attempt) * params.slot_ms))
        return block
    raise invalid_params(f"no slot among the next {MAX_SLOTS_TRIED} has an author that may build a block")
