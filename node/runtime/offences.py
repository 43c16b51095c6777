"""`offences`: equivocation reports, disabled authorities and slashed bonds (PROTOCOL section 6).

An authority that signs two different headers for one Aura slot, or two different finality
votes in one round and stage, has equivocated. Anyone who sees both signed messages submits
them as an unsigned extrinsic; the proof is checked here (cheap to reject: decode, compare,
two signature checks), and the offender

* is disabled: its blocks are refused and its finality votes ignored until the next
  authority-set change;
* loses its bond, reserved at genesis, which is burned (total issuance falls).

Storage
  offences:disabled      -> [authority key, ...] sorted
  offences:reported:<id> -> 1, so one offence is punished once
  offences:bond          -> u128, the bond each authority reserved at genesis
"""

from __future__ import annotations

from typing import Any

from node.codec import DecodeError, blake2b_256, decode, encode, expect_bytes, expect_list
from node.keys import PublicKey, Scheme
from node.runtime import aura, balances, system
from node.runtime.support import (
    BlockContext,
    Origin,
    OriginKind,
    arg_bytes,
    call,
    ensure,
    ensure_none,
    read_u128,
    specs_of,
)
from node.types import ENGINE_AURA, Header

MODULE = "offences"
KEY_DISABLED = b"offences:disabled"
KEY_BOND = b"offences:bond"
MAX_PROOF_BYTES = 64 * 1024


def reported_key(offence_id: bytes) -> bytes:
    return b"offences:reported:" + offence_id


def read_disabled(get: Any) -> list[bytes]:
    raw = get(KEY_DISABLED)
    if raw is None:
        return []
    return [expect_bytes(k, 32) for k in expect_list(decode(raw))]


class InvalidProof(ValueError):
    pass


# ---------------------------------------------------------------------------------------------
# Proof checks (pure; used by the pool's unsigned validation and by dispatch)
# ---------------------------------------------------------------------------------------------


def check_aura_equivocation(get: Any, first: bytes, second: bytes) -> tuple[bytes, bytes]:
    """Return (offender, offence id) if the two headers prove a slot equivocation."""
    try:
        a, b = Header.decode(first), Header.decode(second)
    except DecodeError as exc:
        raise InvalidProof(f"undecodable header: {exc}") from exc
    if a.hash == b.hash:
        raise InvalidProof("the two headers are the same")
    if a.slot is None or a.slot != b.slot:
        raise InvalidProof("the headers are not for the same slot")
    authorities = aura.read_authorities(get)
    if not authorities:
        raise InvalidProof("no authorities")
    offender = aura.author_of_slot(authorities, a.slot)
    key = PublicKey(Scheme.ED25519, offender)
    for header in (a, b):
        seal = header.seal
        if seal is None or seal.engine != ENGINE_AURA or not key.verify(header.seal_payload(), seal.data):
            raise InvalidProof("a header's seal is not the slot author's")
    return offender, blake2b_256(encode([b"aura", offender, a.slot]))


def check_finality_equivocation(get: Any, proof: bytes) -> tuple[bytes, bytes]:
    """Return (offender, offence id) for a valid finality equivocation proof."""
    from node.consensus.finality import EquivocationProof, InvalidEquivocation, check_equivocation_proof

    genesis_hash = get(system.block_hash_key(0))
    if genesis_hash is None:
        raise InvalidProof("genesis hash not yet in state")
    try:
        parsed = EquivocationProof.decode(proof)
        offender = check_equivocation_proof(parsed, aura.read_authorities(get), genesis_hash)
    except (DecodeError, InvalidEquivocation, ValueError) as exc:
        raise InvalidProof(str(exc)) from exc
    offence_id = blake2b_256(encode([b"finality", offender, parsed.set_id, parsed.round, int(parsed.stage)]))
    return offender, offence_id


def validate_report(get: Any, function: str, args: list[Any]) -> bytes:
    """Check a report before it enters the pool or a block; returns the offence id."""
    if function == "report_aura_equivocation":
        offender, offence_id = check_aura_equivocation(get, args[0], args[1])
    else:
        offender, offence_id = check_finality_equivocation(get, args[0])
    if get(reported_key(offence_id)) is not None:
        raise InvalidProof("offence already reported")
    return offence_id


# ---------------------------------------------------------------------------------------------
# Punishment
# ---------------------------------------------------------------------------------------------


def on_new_set(ctx: BlockContext) -> None:
    """A new authority set starts with nobody disabled (offenders were disabled until the change)."""
    ctx.state.delete(KEY_DISABLED)


def punish(ctx: BlockContext, offender: bytes, offence_id: bytes, kind: str) -> None:
    ctx.state.set(reported_key(offence_id), b"\x01")
    disabled = read_disabled(ctx.state.get)
    if offender not in disabled:
        ctx.state.set(KEY_DISABLED, encode(sorted([*disabled, offender])))
    bond = read_u128(ctx.state.get, KEY_BOND)
    account = system.get_account(ctx, offender)
    slashed = min(bond, account.reserved)
    if slashed:
        account.reserved -= slashed
        system.put_account(ctx, offender, account)
        ctx.put_u128(balances.KEY_TOTAL_ISSUANCE, balances.total_issuance(ctx) - slashed)
    ctx.emit(MODULE, "Offence", kind.encode(), offender, slashed)


@call(MODULE, "report_aura_equivocation", arg_bytes(MAX_PROOF_BYTES), arg_bytes(MAX_PROOF_BYTES),
      weight=500_000, origin=OriginKind.NONE)
def report_aura_equivocation(ctx: BlockContext, origin: Origin, first: bytes, second: bytes) -> None:
    ensure_none(origin)
    try:
        offender, offence_id = check_aura_equivocation(ctx.state.get, first, second)
    except InvalidProof:
        ensure(False, MODULE, "InvalidProof")
        return
    ensure(ctx.state.get(reported_key(offence_id)) is None, MODULE, "DuplicateReport")
    punish(ctx, offender, offence_id, "aura")


@call(MODULE, "report_finality_equivocation", arg_bytes(MAX_PROOF_BYTES), weight=500_000, origin=OriginKind.NONE)
def report_finality_equivocation(ctx: BlockContext, origin: Origin, proof: bytes) -> None:
    ensure_none(origin)
    try:
        offender, offence_id = check_finality_equivocation(ctx.state.get, proof)
    except InvalidProof:
        ensure(False, MODULE, "InvalidProof")
        return
    ensure(ctx.state.get(reported_key(offence_id)) is None, MODULE, "DuplicateReport")
    punish(ctx, offender, offence_id, "finality")


CALLS = specs_of(report_aura_equivocation, report_finality_equivocation)
UNSIGNED_CALLS = ("offences.report_aura_equivocation", "offences.report_finality_equivocation")
