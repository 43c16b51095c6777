"""The executive: the state transition function `execute_block(state, block) -> changes`.

Reads like the protocol (compare `state_transition` in Ethereum's execution specs):

1. `initialize_block`: open an overlay on the parent state, find the slot's author, let
   `system` record the block, then run each module's `on_initialize` in module order;
2. `apply_extrinsic` for each extrinsic: the inherents first (`timestamp.set`), then
   transactions: signed ones are checked (format, chain, runtime version, mortality, signature,
   nonce, fee, the module's own validity hook), charged, and dispatched in their own storage
   transaction; unsigned ones must prove themselves (`validate_unsigned` of their module);
3. `finalize_block`: each module's `on_finalize` (balances pays the author), then `system`
   stores the block's events; return the changes.

The client turns the returned changes into a trie version and compares its root with the
header (the runtime never sees the database). An invalid extrinsic makes the whole block
invalid; a call that fails by its own rules is recorded as `ExtrinsicFailed` and still pays.

The same checks serve the transaction pool (`validate_transaction`), so the pool admits only
what a block would accept, with one rejection reason per rule.

A `Runtime` is a list of module declarations (`node.runtime.support.RuntimeModule`) and the
tables derived from it; nothing here names a module except `system` (accounts, nonces, the
block record and its events) and `balances` (fees), the two roles every block has, as FRAME's
executive names `frame_system`. `node.runtime.runtime` lists the modules.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any

from node.codec import DecodeError
from node.runtime import balances, system
from node.runtime.overlay import Overlay
from node.runtime.support import (
    NONE,
    PURE_HOST,
    BlockContext,
    BlockQuotaReached,
    CallSpec,
    DispatchError,
    EventRecord,
    GenesisState,
    Host,
    InvalidCall,
    InvalidUnsigned,
    Notification,
    Origin,
    OriginKind,
    RuntimeModule,
    StateGet,
    decode_field_values,
)
from node.types import MAX_MORTAL_PERIOD, Block, Call, Extrinsic, Header, Mortality, merkle_root


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
    BAD_MORTALITY = "BadMortality"
    BLOCK_QUOTA = "BlockQuotaReached"
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
    expires_at: int | None  # first block number at which it is dead (None: unsigned)


@dataclass
class BlockExecution:
    changes: dict[bytes, bytes | None]
    events: list[EventRecord]


@dataclass(frozen=True)
class DecodedEvent:
    """An event read back from state: its phase and an instance of its declared event type."""

    phase: int | None
    event: Any
    # For `system.ExtrinsicFailed`: the declared error type and its detail, decoded.
    error: type[DispatchError] | None = None
    error_detail: tuple[Any, ...] = ()

    @property
    def module(self) -> str:
        return str(self.event.MODULE)

    @property
    def name(self) -> str:
        return str(self.event.NAME)


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


def check_mortality(
    get: StateGet, mortality: Mortality, number: int, parent_hash: bytes, genesis_hash: bytes
) -> None:
    """A transaction for block `number` must be born on this chain's history, and still alive.

    The birth block is named by number and hash (`Mortality`); its hash must be the one this
    chain has at that height: the parent's for the newest birth, the genesis hash for birth 0,
    else `system:block_hash`, which keeps exactly as many blocks as the longest period.
    """
    if not 0 < mortality.period <= MAX_MORTAL_PERIOD:
        raise InvalidTransaction(
            InvalidReason.BAD_MORTALITY,
            f"period {mortality.period}: every transaction lives 1 to {MAX_MORTAL_PERIOD} blocks",
        )
    if mortality.birth >= number:
        raise InvalidTransaction(InvalidReason.BIRTH_IN_FUTURE, f"birth block {mortality.birth}")
    if not mortality.is_alive_at(number):
        raise InvalidTransaction(InvalidReason.EXPIRED, f"mortal until block {mortality.death - 1}")
    if mortality.birth == 0:
        known = genesis_hash
    elif mortality.birth == number - 1:
        known = parent_hash
    else:
        known = system.BLOCK_HASH.get(get, mortality.birth)
    if known != mortality.birth_hash:
        raise InvalidTransaction(
            InvalidReason.BAD_MORTALITY, f"born at a block #{mortality.birth} that is not on this chain"
        )


class Runtime:
    """A runtime: its name, version and modules, with the lookup tables built from them once."""

    def __init__(self, spec_name: str, spec_version: int, modules: Sequence[RuntimeModule]) -> None:
        self.spec_name = spec_name
        self.spec_version = spec_version
        self.modules = tuple(modules)
        names = [module.name for module in self.modules]
        if len(set(names)) != len(names):
            raise ValueError(f"a module is listed twice: {names}")
        for module in self.modules:
            module.check()
        self.module_of = {module.name: module for module in self.modules}
        self.calls = {spec.full_name: spec for module in self.modules for spec in module.call_specs}
        self.events = {(e.MODULE, e.NAME): e for module in self.modules for e in module.events}  # type: ignore[attr-defined]
        self.errors = {e.qualified_name(): e for module in self.modules for e in module.errors}
        handlers: dict[Notification, list[Callable[..., Any]]] = {}
        for module in self.modules:
            for notification, handler in module.answers.items():
                handlers.setdefault(notification, []).append(handler)
        self.handlers = handlers

    # -- genesis --------------------------------------------------------------------------------

    def genesis_storage(self, spec: dict[str, Any]) -> dict[bytes, bytes]:
        """The genesis state of a chain spec: every module's genesis hook, in module order."""
        genesis = GenesisState(spec, self.spec_version)
        for module in self.modules:
            if module.genesis is not None:
                module.genesis(genesis)
        return genesis.storage

    # -- checks shared by block import and the pool ----------------------------------------------

    def lookup_call(self, call: Call) -> tuple[CallSpec, list[object]]:
        spec = self.calls.get(call.name)
        if spec is None:
            raise InvalidTransaction(InvalidReason.UNKNOWN_CALL, call.name)
        try:
            return spec, spec.parse_args(call.args)
        except (DecodeError, ValueError) as exc:
            raise InvalidTransaction(InvalidReason.BAD_ARGUMENTS, str(exc)) from exc

    def check_signed(
        self,
        get: StateGet,
        params: system.ChainParams,
        genesis_hash: bytes,
        extrinsic: Extrinsic,
        length: int,
        number: int,
        parent_hash: bytes,
        signature_ok: bool | None,
        exact_nonce: bool,
        host: Host,
    ) -> tuple[CheckedExtrinsic, system.Account]:
        """Every rule a signed transaction must pass to be included in block `number` (whose
        parent is `parent_hash`)."""
        assert extrinsic.signer is not None and extrinsic.extra is not None
        extra = extrinsic.extra
        spec, args = self.lookup_call(extrinsic.call)
        if spec.origin is not OriginKind.SIGNED:
            raise InvalidTransaction(InvalidReason.BAD_ORIGIN, f"{spec.full_name} cannot be signed")
        if extra.genesis_hash != genesis_hash:
            raise InvalidTransaction(InvalidReason.WRONG_GENESIS, "transaction is for another chain")
        if extra.spec_version != self.spec_version:
            raise InvalidTransaction(InvalidReason.OUTDATED_SPEC, f"signed for spec {extra.spec_version}")
        check_mortality(get, extra.mortality, number, parent_hash, genesis_hash)
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
        # The base fee may be paid from locked (vesting) funds, as in Polkadot: a holder of locked
        # tokens can still call `vesting.vest`. The tip is a gift to the author, so it comes from
        # transferable funds only (else a locked account could pay out its lock as tips to an
        # author it controls). The account must stay above the existential deposit.
        fee = system.fee_for(params, length, spec.weight) + extra.tip
        if extra.tip > account.usable:
            raise InvalidTransaction(
                InvalidReason.CANNOT_PAY, f"tip {extra.tip} exceeds the transferable balance {account.usable}"
            )
        if account.free < fee or account.free - fee < params.existential_deposit:
            raise InvalidTransaction(InvalidReason.CANNOT_PAY, f"fee {fee} exceeds free balance {account.free}")
        validate_call = self.module_of[spec.module].validate_call
        if validate_call is not None:
            try:
                validate_call(get, genesis_hash, sender, spec.name, args, host)
            except InvalidCall as exc:
                raise InvalidTransaction(InvalidReason.BAD_CALL, f"{spec.full_name}: {exc}") from exc
        return CheckedExtrinsic(extrinsic, spec, args, length, sender, fee), account

    def check_unsigned(
        self, get: StateGet, genesis_hash: bytes, number: int, spec: CallSpec, args: list[object]
    ) -> bytes:
        """Check a self-proving unsigned extrinsic for block `number`; returns its unique tag."""
        validate_unsigned = self.module_of[spec.module].validate_unsigned
        if spec.origin is not OriginKind.NONE or spec.inherent or validate_unsigned is None:
            raise InvalidTransaction(InvalidReason.BAD_ORIGIN, f"{spec.full_name} must be signed")
        try:
            return validate_unsigned(get, genesis_hash, number, spec.name, list(args))
        except BlockQuotaReached as exc:
            raise InvalidTransaction(InvalidReason.BLOCK_QUOTA, str(exc)) from exc
        except InvalidUnsigned as exc:
            raise InvalidTransaction(InvalidReason.BAD_UNSIGNED, str(exc)) from exc

    def validate_transaction(
        self,
        get: StateGet,
        genesis_hash: bytes,
        encoded: bytes,
        best_number: int,
        best_hash: bytes,
        signature_ok: bool | None = None,
        host: Host = PURE_HOST,
    ) -> ValidTransaction:
        """Pool entry check against the best block's state, for inclusion in block best + 1.

        A nonce ahead of the account's is valid here (it waits in the pool's future queue); the
        fee is checked against today's balance only, as Substrate does.
        """
        params = system.read_params(get)
        extrinsic = decode_extrinsic(encoded, params)
        if not extrinsic.is_signed:
            spec, args = self.lookup_call(extrinsic.call)
            tag = self.check_unsigned(get, genesis_hash, best_number + 1, spec, args)
            # Unsigned reports have no account: the pool files each under its own tag.
            return ValidTransaction(tag, 0, 0, 0, 0, len(encoded), None)
        checked, account = self.check_signed(
            get, params, genesis_hash, extrinsic, len(encoded), best_number + 1, best_hash, signature_ok, False, host
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
            expires_at=mortality.death,
        )

    # -- block execution ------------------------------------------------------------------------

    def initialize_block(self, get: StateGet, header: Header, host: Host = PURE_HOST) -> BlockContext:
        """Open the block's context and run the start-of-block hooks (`aura` names the author)."""
        slot = header.slot
        if slot is None:
            raise InvalidBlock("header has no Aura pre-runtime digest")
        ctx = BlockContext(
            state=Overlay(get),
            number=header.number,
            parent_hash=header.parent_hash,
            slot=slot,
            author=b"",
            params=system.read_params(get),
            host=host,
        )
        ctx.dispatch = lambda call, origin: self._dispatch_nested(ctx, call, origin)
        ctx.announce = self._announce
        system.initialize(ctx)
        for module in self.modules:
            if module.on_initialize is not None:
                try:
                    module.on_initialize(ctx)
                except DispatchError as failure:
                    raise InvalidBlock(f"{module.name}.on_initialize: {failure}") from failure
        return ctx

    def _announce(self, ctx: BlockContext, notification: Notification, args: tuple[Any, ...]) -> None:
        for handler in self.handlers.get(notification, ()):
            handler(ctx, *args)

    def _dispatch_nested(self, ctx: BlockContext, call: Call, origin: Origin) -> None:
        spec, args = self.lookup_call(call)
        ctx.state.begin()
        try:
            spec.function(ctx, origin, *args)
        except DispatchError:
            ctx.state.rollback()
            raise
        ctx.state.commit()

    def apply_extrinsic(
        self, ctx: BlockContext, genesis_hash: bytes, encoded: bytes, signature_ok: bool | None = None
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
            spec, args = self.lookup_call(extrinsic.call)
            if spec.inherent:
                if index != 0:
                    raise InvalidTransaction(InvalidReason.MANDATORY, f"inherent {spec.full_name} at index {index}")
            elif index == 0:
                raise InvalidTransaction(InvalidReason.MANDATORY, "the first extrinsic must be timestamp.set")
            else:
                self.check_unsigned(ctx.state.get, genesis_hash, ctx.number, spec, args)
            checked = CheckedExtrinsic(extrinsic, spec, args, length, None, 0)
        else:
            if index == 0:
                raise InvalidTransaction(InvalidReason.MANDATORY, "the first extrinsic must be timestamp.set")
            checked, account = self.check_signed(
                ctx.state.get, ctx.params, genesis_hash, extrinsic, length, ctx.number, ctx.parent_hash,
                signature_ok, True, ctx.host,
            )  # fmt: skip

        if ctx.weight_used + checked.spec.weight > ctx.params.max_block_weight:
            raise InvalidTransaction(InvalidReason.EXHAUSTS_RESOURCES, "block weight limit")
        ctx.weight_used += checked.spec.weight
        ctx.length_used += length
        ctx.phase = index
        if checked.sender is None:
            try:
                checked.spec.function(ctx, NONE, *checked.args)
            except DispatchError as failure:
                raise InvalidTransaction(InvalidReason.MANDATORY, str(failure)) from failure
            ctx.deposit_event(system.ExtrinsicSuccess())
            return True
        # Pay first: the fee and the nonce stay whatever the call does.
        account.nonce += 1
        balances.withdraw_fee(ctx, checked.sender, account, checked.fee)
        return self._dispatch(ctx, checked, Origin.signed(checked.sender))

    def _dispatch(self, ctx: BlockContext, checked: CheckedExtrinsic, origin: Origin) -> bool:
        """Run the call in its own storage transaction; roll back and record why if it fails."""
        events_before = len(ctx.events)
        ctx.state.begin()
        try:
            checked.spec.function(ctx, origin, *checked.args)
        except DispatchError as failure:
            ctx.state.rollback()
            del ctx.events[events_before:]
            ctx.deposit_event(system.ExtrinsicFailed(failure.full_name, failure.detail))
            return False
        ctx.state.commit()
        ctx.deposit_event(system.ExtrinsicSuccess())
        return True

    def finalize_block(self, ctx: BlockContext) -> dict[bytes, bytes | None]:
        ctx.phase = None
        for module in self.modules:
            if module.on_finalize is not None:
                try:
                    module.on_finalize(ctx)
                except DispatchError as failure:
                    raise InvalidBlock(str(failure)) from failure
        system.finalize(ctx)
        return ctx.state.changes()

    def execute_block(
        self,
        get: StateGet,
        block: Block,
        genesis_hash: bytes,
        signatures_ok: Sequence[bool | None] | None = None,
        host: Host = PURE_HOST,
    ) -> BlockExecution:
        """Apply `block` on the state read by `get`; raise InvalidBlock if any rule is broken.

        `signatures_ok[i]` may carry the result of verifying extrinsic i's signature ahead of
        time (the client verifies a block's signatures in parallel); None means verify here.
        """
        header = block.header
        if merkle_root(list(block.extrinsics)) != header.extrinsics_root:
            raise InvalidBlock("extrinsics root mismatch")
        ctx = self.initialize_block(get, header, host)
        for index, encoded in enumerate(block.extrinsics):
            signature_ok = signatures_ok[index] if signatures_ok is not None else None
            try:
                self.apply_extrinsic(ctx, genesis_hash, encoded, signature_ok)
            except InvalidTransaction as exc:
                raise InvalidBlock(f"extrinsic {index}: {exc}") from exc
        if not block.extrinsics:
            raise InvalidBlock("block has no timestamp inherent")
        return BlockExecution(self.finalize_block(ctx), ctx.events)

    # -- reading events back --------------------------------------------------------------------

    def decode_event(self, record: EventRecord) -> DecodedEvent:
        """The declared event (and, for a failure, the declared error) a stored record is."""
        event_type = self.events.get((record.module, record.name))
        if event_type is None:
            raise DecodeError(f"unknown event {record.module}.{record.name}")
        what = f"{record.module}.{record.name}"
        values = decode_field_values(event_type.FIELDS, list(record.fields), what)  # type: ignore[attr-defined]
        instance = event_type(*values)
        if event_type is not system.ExtrinsicFailed:
            return DecodedEvent(record.phase, instance)
        failure = self.errors.get(instance.error)
        if failure is None:
            return DecodedEvent(record.phase, instance)
        detail = decode_field_values(failure.FIELDS, list(instance.detail), instance.error)
        return DecodedEvent(record.phase, instance, failure, tuple(detail))

    def decode_events(self, raw: bytes | None) -> list[DecodedEvent]:
        """The events stored under `system:events` (None: a state without events)."""
        if raw is None:
            return []
        stored = system.EVENTS.codec.decode(raw)
        return [self.decode_event(EventRecord.from_wire(item)) for item in stored]


def timestamp_inherent(moment: int) -> bytes:
    return Extrinsic(Call("timestamp", "set", (moment,))).encode()
