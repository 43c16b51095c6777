"""The executive: the state transition function `execute_block(state, block) -> changes`.

Reads like the protocol (compare `state_transition` in Ethereum's execution specs):

1. `initialize_block`: open an overlay on the parent state, find the slot's author, run each
   module's start-of-block hook;
2. `apply_extrinsic` for each extrinsic: the `timestamp.set` inherent first, then signed
   transactions, each checked (format, chain, runtime version, mortality, signature, nonce, fee),
   charged, and dispatched in its own storage transaction;
3. `finalize_block`: pay the fees to the author, run the end-of-block hooks, return the changes.

The client turns the returned changes into a trie version and compares its root with the
header (the runtime never sees the database). An invalid extrinsic makes the whole block
invalid; a call that fails by its own rules is recorded as `ExtrinsicFailed` and still pays.

The same checks serve the transaction pool (`validate_transaction`), so the pool admits only
what a block would accept, with one rejection reason per rule.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum

from node.codec import DecodeError
from node.runtime import (
    aura,
    balances,
    copyright,
    emission,
    licensing,
    offences,
    pod,
    sudo,
    system,
    timestamp,
    vesting,
)
from node.runtime.overlay import BaseGet, Overlay
from node.runtime.support import (
    NONE,
    BlockContext,
    CallSpec,
    DispatchError,
    Event,
    InvalidCall,
    Origin,
    OriginKind,
)
from node.types import Block, Call, Extrinsic, Header, merkle_root

SPEC_NAME = "imagechain"
SPEC_VERSION = 1

# The runtime's modules, in dispatch and hook order. A new module is added here and nowhere else.
MODULES = (system, timestamp, aura, balances, vesting, offences, sudo, emission, pod, copyright, licensing)

CALLS: dict[str, CallSpec] = {spec.full_name: spec for module in MODULES for spec in module.CALLS}
# Validity hooks: `validate_call(get, genesis_hash, signer, function, args)` of the modules that
# have one, run for every signed call (pool and block) after the fee check. A call whose own
# arguments carry a proof that fails (a registration's rendition) is invalid, like a bad signature.
CALL_VALIDATORS = {module.MODULE: module.validate_call for module in MODULES if hasattr(module, "validate_call")}

INHERENT_CALLS = ("timestamp.set",)
# Unsigned extrinsics that prove themselves (their `validate_unsigned` check replaces a signature).
SELF_PROVING_CALLS = offences.UNSIGNED_CALLS


class InvalidReason(Enum):
    """Why an extrinsic can never be (or is not yet) valid; each rule has its own reason."""

    BAD_FORMAT = "BadFormat"
    UNKNOWN_CALL = "UnknownCall"
    BAD_ARGUMENTS = "BadArguments"
    BAD_ORIGIN = "BadOrigin"
    WRONG_GENESIS = "WrongGenesis"
    OUTDATED_SPEC = "SpecVersionMismatch"
    BAD_PROOF = "BadSignature"
    STALE = "StaleNonce"
    FUTURE = "FutureNonce"
    CANNOT_PAY = "InsufficientFunds"
    EXPIRED = "Expired"
    BIRTH_IN_FUTURE = "BirthInFuture"
    EXHAUSTS_RESOURCES = "ExhaustsResources"
    MANDATORY = "BadInherent"
    BAD_UNSIGNED = "InvalidUnsignedProof"
    BAD_CALL = "InvalidCall"


class InvalidTransaction(Exception):
    def __init__(self, reason: InvalidReason, detail: str = "") -> None:
        super().__init__(f"{reason.value}{': ' + detail if detail else ''}")
        self.reason = reason
        self.detail = detail


class InvalidBlock(Exception):
    pass


@dataclass(frozen=True)
class CheckedExtrinsic:
    """An extrinsic that passed every check against a given state, ready to dispatch."""

    extrinsic: Extrinsic
    spec: CallSpec
    args: list[object]
    length: int
    sender: bytes | None
    fee: int  # total charge: weight/length fee plus tip


@dataclass(frozen=True)
class ValidTransaction:
    """What the pool needs to order a transaction (Substrate's ValidTransaction)."""

    sender: bytes
    nonce: int
    account_nonce: int
    tip: int
    fee: int
    length: int
    expires_at: int | None  # first block number at which it is dead


# ---------------------------------------------------------------------------------------------
# Checks shared by block import and the pool
# ---------------------------------------------------------------------------------------------


def decode_extrinsic(encoded: bytes, params: system.ChainParams) -> Extrinsic:
    if len(encoded) > params.max_extrinsic_bytes:
        raise InvalidTransaction(InvalidReason.EXHAUSTS_RESOURCES, f"{len(encoded)} bytes")
    try:
        return decode_extrinsic_cached(encoded)
    except DecodeError as exc:
        raise InvalidTransaction(InvalidReason.BAD_FORMAT, str(exc)) from exc


@functools.lru_cache(maxsize=16384)
def decode_extrinsic_cached(encoded: bytes) -> Extrinsic:
    """Extrinsics are decoded at pool entry, in the builder and at import: decode each once.

    Safe to share: `Extrinsic` is immutable, and failures (exceptions) are never cached.
    """
    return Extrinsic.decode(encoded)


def lookup_call(call: Call) -> tuple[CallSpec, list[object]]:
    spec = CALLS.get(call.name)
    if spec is None:
        raise InvalidTransaction(InvalidReason.UNKNOWN_CALL, call.name)
    try:
        return spec, spec.parse_args(call.args)
    except (DecodeError, ValueError) as exc:
        raise InvalidTransaction(InvalidReason.BAD_ARGUMENTS, str(exc)) from exc


def check_signed(
    get: BaseGet,
    params: system.ChainParams,
    genesis_hash: bytes,
    extrinsic: Extrinsic,
    length: int,
    number: int,
    signature_ok: bool | None,
    exact_nonce: bool,
) -> tuple[CheckedExtrinsic, system.Account]:
    """Every rule a signed transaction must pass to be included in block `number`."""
    assert extrinsic.signer is not None and extrinsic.extra is not None
    extra = extrinsic.extra
    spec, args = lookup_call(extrinsic.call)
    if spec.origin is not OriginKind.SIGNED:
        raise InvalidTransaction(InvalidReason.BAD_ORIGIN, f"{spec.full_name} cannot be signed")
    if extra.genesis_hash != genesis_hash:
        raise InvalidTransaction(InvalidReason.WRONG_GENESIS, "transaction is for another chain")
    if extra.spec_version != SPEC_VERSION:
        raise InvalidTransaction(InvalidReason.OUTDATED_SPEC, f"signed for spec {extra.spec_version}")
    if extra.mortality.period and extra.mortality.birth > number:
        raise InvalidTransaction(InvalidReason.BIRTH_IN_FUTURE, f"birth block {extra.mortality.birth}")
    if not extra.mortality.is_alive_at(number):
        raise InvalidTransaction(InvalidReason.EXPIRED, f"mortal until block {extra.mortality.birth + extra.mortality.period}")
    if signature_ok is None:
        signature_ok = extrinsic.verify_signature()
    if not signature_ok:
        raise InvalidTransaction(InvalidReason.BAD_PROOF)
    sender = extrinsic.signer.account_id()
    account = system.read_account(get, sender)
    if extra.nonce < account.nonce:
        raise InvalidTransaction(InvalidReason.STALE, f"nonce {extra.nonce} < account nonce {account.nonce}")
    if exact_nonce and extra.nonce != account.nonce:
        raise InvalidTransaction(InvalidReason.FUTURE, f"nonce {extra.nonce} > account nonce {account.nonce}")
    # Fees may be paid from locked (vesting) funds, as in Polkadot: a holder of locked tokens
    # can still call `vesting.vest`. The account must stay above the existential deposit.
    fee = system.fee_for(params, length, spec.weight) + extra.tip
    if account.free < fee or account.free - fee < params.existential_deposit:
        raise InvalidTransaction(InvalidReason.CANNOT_PAY, f"fee {fee} exceeds free balance {account.free}")
    validator = CALL_VALIDATORS.get(spec.module)
    if validator is not None:
        try:
            validator(get, genesis_hash, sender, spec.name, args)
        except InvalidCall as exc:
            raise InvalidTransaction(InvalidReason.BAD_CALL, f"{spec.full_name}: {exc}") from exc
    return CheckedExtrinsic(extrinsic, spec, args, length, sender, fee), account


def validate_transaction(
    get: BaseGet,
    genesis_hash: bytes,
    encoded: bytes,
    best_number: int,
    signature_ok: bool | None = None,
) -> ValidTransaction:
    """Pool entry check against the best block's state, for inclusion in block best + 1.

    A nonce ahead of the account's is valid here (it waits in the pool's future queue); the fee
    is checked against today's balance only, as Substrate does.
    """
    params = system.read_params(get)
    extrinsic = decode_extrinsic(encoded, params)
    if not extrinsic.is_signed:
        spec, args = lookup_call(extrinsic.call)
        offence_id = validate_unsigned(get, spec, args)
        # Unsigned reports have no account: the pool files each under its own offence id.
        return ValidTransaction(offence_id, 0, 0, 0, 0, len(encoded), None)
    checked, account = check_signed(
        get, params, genesis_hash, extrinsic, len(encoded), best_number + 1, signature_ok, exact_nonce=False
    )
    assert extrinsic.extra is not None and checked.sender is not None
    mortality = extrinsic.extra.mortality
    return ValidTransaction(
        sender=checked.sender,
        nonce=extrinsic.extra.nonce,
        account_nonce=account.nonce,
        tip=extrinsic.extra.tip,
        fee=checked.fee,
        length=len(encoded),
        expires_at=mortality.birth + mortality.period if mortality.period else None,
    )


# ---------------------------------------------------------------------------------------------
# Block execution
# ---------------------------------------------------------------------------------------------


def validate_unsigned(get: BaseGet, spec: CallSpec, args: list[object]) -> bytes:
    """Check a self-proving unsigned extrinsic; returns what it is unique by (its offence id)."""
    if spec.full_name not in SELF_PROVING_CALLS:
        raise InvalidTransaction(InvalidReason.BAD_ORIGIN, f"{spec.full_name} must be signed")
    try:
        return offences.validate_report(get, spec.name, args)
    except offences.InvalidProof as exc:
        raise InvalidTransaction(InvalidReason.BAD_UNSIGNED, str(exc)) from exc


def initialize_block(get: BaseGet, header: Header) -> BlockContext:
    params = system.read_params(get)
    slot = header.slot
    if slot is None:
        raise InvalidBlock("header has no Aura pre-runtime digest")
    authorities = aura.read_authorities(get)
    if not authorities:
        raise InvalidBlock("no authorities in state")
    author = aura.author_of_slot(authorities, slot)
    if author in offences.read_disabled(get):
        raise InvalidBlock(f"author {author.hex()} is disabled for equivocation")
    ctx = BlockContext(
        state=Overlay(get),
        number=header.number,
        parent_hash=header.parent_hash,
        slot=slot,
        author=author,
        params=params,
    )
    ctx.dispatch = lambda call, origin: _dispatch_nested(ctx, call, origin)
    system.on_initialize(ctx)
    if aura.on_initialize(ctx):
        offences.on_new_set(ctx)
    return ctx


def _dispatch_nested(ctx: BlockContext, call: Call, origin: Origin) -> None:
    spec, args = lookup_call(call)
    ctx.state.begin()
    try:
        spec.function(ctx, origin, *args)
    except DispatchError:
        ctx.state.rollback()
        raise
    ctx.state.commit()


def _dispatch(ctx: BlockContext, checked: CheckedExtrinsic, origin: Origin) -> bool:
    """Run the call in its own storage transaction; roll back and record why if it fails."""
    events_before = len(ctx.events)
    ctx.state.begin()
    try:
        checked.spec.function(ctx, origin, *checked.args)
    except DispatchError as error:
        ctx.state.rollback()
        del ctx.events[events_before:]
        ctx.emit("system", "ExtrinsicFailed", f"{error.module}.{error.error}", *error.detail)
        return False
    ctx.state.commit()
    ctx.emit("system", "ExtrinsicSuccess")
    return True


def _check_weight(ctx: BlockContext, spec: CallSpec) -> None:
    if ctx.weight_used + spec.weight > ctx.params.max_block_weight:
        raise InvalidTransaction(InvalidReason.EXHAUSTS_RESOURCES, "block weight limit")


def apply_extrinsic(
    ctx: BlockContext, genesis_hash: bytes, encoded: bytes, signature_ok: bool | None = None
) -> bool:
    """Apply one extrinsic at index `len(applied so far)`; returns whether its call succeeded.

    Raises InvalidTransaction when the extrinsic may not be in this block at all.
    """
    index = 0 if ctx.phase is None else ctx.phase + 1
    extrinsic = decode_extrinsic(encoded, ctx.params)
    length = len(encoded)
    if ctx.length_used + length > ctx.params.max_block_bytes:
        raise InvalidTransaction(InvalidReason.EXHAUSTS_RESOURCES, "block size limit")

    if not extrinsic.is_signed:
        spec, args = lookup_call(extrinsic.call)
        if spec.full_name in INHERENT_CALLS:
            if index != 0:
                raise InvalidTransaction(InvalidReason.MANDATORY, f"inherent {spec.full_name} at index {index}")
        elif index == 0:
            raise InvalidTransaction(InvalidReason.MANDATORY, "the first extrinsic must be timestamp.set")
        else:
            validate_unsigned(ctx.state.get, spec, args)
        checked = CheckedExtrinsic(extrinsic, spec, args, length, None, 0)
        origin = NONE
    else:
        if index == 0:
            raise InvalidTransaction(InvalidReason.MANDATORY, "the first extrinsic must be timestamp.set")
        checked, account = check_signed(
            ctx.state.get, ctx.params, genesis_hash, extrinsic, length, ctx.number, signature_ok, exact_nonce=True
        )
        assert checked.sender is not None
        _check_weight(ctx, checked.spec)
        origin = Origin.signed(checked.sender)
        # Pay first: the fee and the nonce stay whatever the call does.
        account.nonce += 1
        account.free -= checked.fee
        system.put_account(ctx, checked.sender, account)
        ctx.fees_collected += checked.fee

    _check_weight(ctx, checked.spec)
    ctx.weight_used += checked.spec.weight
    ctx.length_used += length
    ctx.phase = index
    if not extrinsic.is_signed:
        try:
            checked.spec.function(ctx, origin, *checked.args)
        except DispatchError as error:
            raise InvalidTransaction(InvalidReason.MANDATORY, str(error)) from error
        ctx.emit("system", "ExtrinsicSuccess")
        return True
    return _dispatch(ctx, checked, origin)


def finalize_block(ctx: BlockContext) -> dict[bytes, bytes | None]:
    ctx.phase = None
    if ctx.fees_collected:
        try:
            balances.deposit(ctx, ctx.author, ctx.fees_collected)
            ctx.emit("balances", "FeesPaid", ctx.author, ctx.fees_collected)
        except DispatchError:
            # The author's account cannot receive it (below the existential deposit): burn it.
            issuance = balances.total_issuance(ctx) - ctx.fees_collected
            ctx.put_u128(balances.KEY_TOTAL_ISSUANCE, issuance)
            ctx.emit("balances", "FeesBurned", ctx.fees_collected)
    try:
        timestamp.on_finalize(ctx)
    except DispatchError as exc:
        raise InvalidBlock(str(exc)) from exc
    system.on_finalize(ctx)
    return ctx.state.changes()


@dataclass
class BlockExecution:
    changes: dict[bytes, bytes | None]
    events: list[Event]


def execute_block(
    get: BaseGet,
    block: Block,
    genesis_hash: bytes,
    signatures_ok: Sequence[bool | None] | None = None,
) -> BlockExecution:
    """Apply `block` on the state read by `get`; raise InvalidBlock if any rule is broken.

    `signatures_ok[i]` may carry the result of verifying extrinsic i's signature ahead of time
    (the client verifies a block's signatures in parallel); None means verify here.
    """
    header = block.header
    if merkle_root(list(block.extrinsics)) != header.extrinsics_root:
        raise InvalidBlock("extrinsics root mismatch")
    ctx = initialize_block(get, header)
    for index, encoded in enumerate(block.extrinsics):
        signature_ok = signatures_ok[index] if signatures_ok is not None else None
        try:
            apply_extrinsic(ctx, genesis_hash, encoded, signature_ok)
        except InvalidTransaction as exc:
            raise InvalidBlock(f"extrinsic {index}: {exc}") from exc
    if not block.extrinsics:
        raise InvalidBlock("block has no timestamp inherent")
    return BlockExecution(finalize_block(ctx), ctx.events)


def timestamp_inherent(moment: int) -> bytes:
    return Extrinsic(Call("timestamp", "set", (moment,))).encode()
