"""`offences`: equivocation reports, disabled authorities and slashed bonds (PROTOCOL section 6).

An authority that signs two different headers for one Aura slot, or two different finality
votes in one round and stage, has equivocated. Anyone who sees both signed messages submits
them as an unsigned extrinsic; the proof is checked here (cheap to reject: decode, compare,
two signature checks, `validate_unsigned`), and the offender

* is disabled: its blocks are refused (the answer to `aura.BLOCK_AUTHOR`) and its finality
  votes ignored until the next authority-set change (the answer to `aura.NEW_AUTHORITY_SET`
  re-enables everyone);
* loses its bond, reserved at genesis, which is burned (total issuance falls).

Genesis (`authority_bond` in IMG: reserved from each authority's free balance)
Storage
  offences:disabled      -> [authority key, ...] sorted
  offences:reported:<id> -> 1, so one offence is punished once
  offences:bond          -> u128, the bond each authority reserved at genesis
Calls (unsigned, self-proving)
  report_aura_equivocation(first header, second header)
  report_finality_equivocation(proof)
Events
  Offence(kind, offender, slashed)
Errors
  InvalidProof, DuplicateReport, AuthorDisabled(author)
"""

from __future__ import annotations

from typing import Any

from node.codec import DecodeError, blake2b_256, encode, expect_bytes, expect_list
from node.primitives.aura import author_of_slot, is_sealed_by
from node.primitives.votes import EquivocationProof, InvalidEquivocation, check_equivocation_proof
from node.runtime import aura, balances, system, timestamp
from node.runtime.support import (
    BYTES,
    MSGPACK,
    U128,
    AccountId,
    Balance,
    BlockContext,
    DispatchError,
    GenesisState,
    InvalidUnsigned,
    Origin,
    OriginKind,
    RuntimeModule,
    StateGet,
    StorageMap,
    StorageValue,
    arg_bytes,
    call,
    ensure,
    ensure_none,
    error,
    event,
)
from node.types import Header
from node.units import parse_img

NAME = "offences"
MAX_PROOF_BYTES = 64 * 1024
# A slot equivocation is reportable for this many slots (2 h 16 min of 2 s slots): long enough to
# gossip and include a report, short enough that old headers cannot be dug up.
REPORT_WINDOW_SLOTS = 4096

DISABLED: StorageValue[Any] = StorageValue(b"offences:disabled", MSGPACK)
REPORTED: StorageMap[bytes] = StorageMap(b"offences:reported:", (BYTES,), BYTES)
BOND: StorageValue[int] = StorageValue(b"offences:bond", U128, 0)


def read_disabled(get: StateGet) -> list[bytes]:
    stored = DISABLED.get(get)
    if stored is None:
        return []
    return [expect_bytes(k, 32) for k in expect_list(stored)]


# ---------------------------------------------------------------------------------------------
# Proof checks (pure; used by the pool's unsigned validation and by dispatch)
# ---------------------------------------------------------------------------------------------


def check_aura_equivocation(get: StateGet, genesis_hash: bytes, first: bytes, second: bytes) -> tuple[bytes, bytes]:
    """Return (offender, offence id) if the two headers prove a slot equivocation on this chain.

    Both seals must verify for this chain (the seal signs the genesis hash), the slot must be one
    the current authority set authored (at or after its first slot) and recent (within
    `REPORT_WINDOW_SLOTS` of the state's own slot, not ahead of it by more than one): the
    offender is then named by the very set that was authoring.
    """
    try:
        a, b = Header.decode(first), Header.decode(second)
    except DecodeError as exc:
        raise InvalidUnsigned(f"undecodable header: {exc}") from exc
    if a.hash == b.hash:
        raise InvalidUnsigned("the two headers are the same")
    if a.slot is None or a.slot != b.slot:
        raise InvalidUnsigned("the headers are not for the same slot")
    now_slot = timestamp.read_now(get) // system.read_params(get).slot_ms
    if not now_slot - REPORT_WINDOW_SLOTS <= a.slot <= now_slot + 1:
        raise InvalidUnsigned(f"slot {a.slot} is not within {REPORT_WINDOW_SLOTS} slots of slot {now_slot}")
    if a.slot < aura.read_set_start_slot(get):
        raise InvalidUnsigned(f"slot {a.slot} was authored by an earlier authority set")
    authorities = aura.read_authorities(get)
    if not authorities:
        raise InvalidUnsigned("no authorities")
    offender = author_of_slot(authorities, a.slot)
    if not (is_sealed_by(a, offender, genesis_hash) and is_sealed_by(b, offender, genesis_hash)):
        raise InvalidUnsigned("a header's seal is not the slot author's on this chain")
    return offender, blake2b_256(encode([b"aura", offender, a.slot]))


def check_finality_equivocation(get: StateGet, genesis_hash: bytes, proof: bytes) -> tuple[bytes, bytes]:
    """Return (offender, offence id) for a valid finality equivocation proof of the current set
    (votes sign the genesis hash, so votes of another chain never verify here)."""
    try:
        parsed = EquivocationProof.decode(proof)
        set_id = aura.read_set_id(get)
        if parsed.set_id != set_id:
            raise InvalidEquivocation(f"the proof is for set {parsed.set_id}, the current set is {set_id}")
        offender = check_equivocation_proof(parsed, aura.read_authorities(get), genesis_hash)
    except (DecodeError, InvalidEquivocation, ValueError) as exc:
        raise InvalidUnsigned(str(exc)) from exc
    offence_id = blake2b_256(encode([b"finality", offender, parsed.set_id, parsed.round, int(parsed.stage)]))
    return offender, offence_id


def _check_report(get: StateGet, genesis_hash: bytes, function: str, args: list[Any]) -> tuple[bytes, bytes]:
    if function == "report_aura_equivocation":
        return check_aura_equivocation(get, genesis_hash, args[0], args[1])
    return check_finality_equivocation(get, genesis_hash, args[0])


def validate_unsigned(get: StateGet, genesis_hash: bytes, number: int, function: str, args: list[Any]) -> bytes:
    """Check a report before it enters the pool or a block; returns the offence id."""
    _, offence_id = _check_report(get, genesis_hash, function, args)
    if REPORTED.exists(get, offence_id):
        raise InvalidUnsigned("offence already reported")
    return offence_id


# ---------------------------------------------------------------------------------------------
# Punishment
# ---------------------------------------------------------------------------------------------


def on_block_author(ctx: BlockContext, author: bytes) -> None:
    """A disabled authority may not author blocks until the next set change."""
    ensure(author not in read_disabled(ctx.state.get), AuthorDisabled, author)


def on_new_authority_set(ctx: BlockContext) -> None:
    """A new authority set starts with nobody disabled (offenders were disabled until the change)."""
    DISABLED.delete(ctx)


def punish(ctx: BlockContext, offender: bytes, offence_id: bytes, kind: str) -> None:
    REPORTED.put(ctx, offence_id, b"\x01")
    disabled = read_disabled(ctx.state.get)
    if offender not in disabled:
        DISABLED.put(ctx, sorted([*disabled, offender]))
    bond = BOND.value(ctx)
    slashed = balances.slash_reserved(ctx, offender, bond)
    ctx.deposit_event(Offence(kind.encode(), offender, slashed))


def _report(ctx: BlockContext, function: str, args: list[Any], kind: str) -> None:
    genesis_hash = system.genesis_hash(ctx.state.get)
    ensure(genesis_hash is not None, InvalidProof)
    assert genesis_hash is not None
    try:
        offender, offence_id = _check_report(ctx.state.get, genesis_hash, function, args)
    except InvalidUnsigned:
        raise InvalidProof() from None
    ensure(not REPORTED.exists(ctx, offence_id), DuplicateReport)
    punish(ctx, offender, offence_id, kind)


def build_genesis(genesis: GenesisState) -> None:
    """Reserve the bond from every authority's usable balance."""
    bond = parse_img(genesis.spec.get("authority_bond", "0"))
    if not bond:
        return
    BOND.put(genesis, bond)
    for authority in aura.read_authorities(genesis.get):
        account = system.read_account(genesis.get, authority)
        if account.free - account.frozen < bond:
            raise ValueError(f"authority {authority.hex()} has no free balance for its bond of {bond}")
        account.free -= bond
        account.reserved += bond
        system.put_account(genesis, authority, account)


@call(NAME, "report_aura_equivocation", arg_bytes(MAX_PROOF_BYTES), arg_bytes(MAX_PROOF_BYTES),
      weight=500_000, origin=OriginKind.NONE)
def report_aura_equivocation(ctx: BlockContext, origin: Origin, first: bytes, second: bytes) -> None:
    ensure_none(origin)
    _report(ctx, "report_aura_equivocation", [first, second], "aura")


@call(NAME, "report_finality_equivocation", arg_bytes(MAX_PROOF_BYTES), weight=500_000, origin=OriginKind.NONE)
def report_finality_equivocation(ctx: BlockContext, origin: Origin, proof: bytes) -> None:
    ensure_none(origin)
    _report(ctx, "report_finality_equivocation", [proof], "finality")


@event(NAME)
class Offence:
    """`offender` equivocated (`kind` b"aura" or b"finality"), was disabled and lost `slashed`."""

    kind: bytes
    offender: AccountId
    slashed: Balance


@error(NAME)
class InvalidProof(DispatchError):
    """The report proves no equivocation."""


@error(NAME)
class DuplicateReport(DispatchError):
    """This offence was reported already."""


@error(NAME)
class AuthorDisabled(DispatchError):
    """The slot's author is disabled for equivocation."""

    author: AccountId


MODULE = RuntimeModule(
    NAME,
    calls=(report_aura_equivocation, report_finality_equivocation),
    events=(Offence,),
    errors=(InvalidProof, DuplicateReport, AuthorDisabled),
    storage=(DISABLED, REPORTED, BOND),
    genesis=build_genesis,
    validate_unsigned=validate_unsigned,
    answers={aura.BLOCK_AUTHOR: on_block_author, aura.NEW_AUTHORITY_SET: on_new_authority_set},
)
