"""Signing a call for a node's chain, checking what it would do, submitting it, and reading what
became of it.

A signed call is bound to this chain (genesis hash) and runtime (spec version), takes the next
nonce the node's pool expects, and is mortal for `mortal_period` blocks from the current best
block (whose hash it signs, so it lives on that chain only), so a transaction stuck in a pool
cannot be replayed much later.

Before it is sent, `submit_call` asks the node what it would do (`system_dryRun`, on top of the
best block): a call that would fail by its module's rules would still pay its fee, so it is not
sent (`WouldFail`) unless the caller forces it; one no block would take is refused (`Unsendable`)
with the reason in IMG, not base units.

Failures, all `RpcClientError`: `RpcError` when the pool refuses it, `TransactionFailed` when a
watched transaction ends as invalid, dropped or usurped, `CallRefused` when the call fails or
would fail by its module's rules: `WouldFail` (not sent, nothing paid) or `CallFailed` (included,
its fee paid). Their messages name the error in words (`node.client.explain`) and the fee in IMG.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, TypeVar

from node.client.events import DecodedEvent, extrinsic_events
from node.client.explain import describe, detail_from_json
from node.client.results import DryRun, TxStatus
from node.client.rpc import RpcClient
from node.client.transport import RpcClientError
from node.codec import u128_to_bytes
from node.keys import Keypair
from node.rpc.encoding import to_hex
from node.runtime import system
from node.runtime.runtime import SPEC_VERSION
from node.types import Call, Mortality, SignedExtra, extrinsic_hash, sign_extrinsic
from node.units import format_img

__all__ = [
    "DEFAULT_INCLUSION_TIMEOUT_S",
    "CallFailed",
    "CallOutcome",
    "CallRefused",
    "TransactionFailed",
    "Unsendable",
    "WouldFail",
    "block_ref",
    "check_signed",
    "sign_call",
    "submit_call",
    "submit_signed",
    "transfer",
]

DEFAULT_INCLUSION_TIMEOUT_S = 120.0
DEFAULT_MORTAL_PERIOD = 64

E = TypeVar("E")


def block_ref(number: int | None, block_hash: bytes | None) -> str:
    """A block as every command shows one: "#12 0x<full hash>"."""
    if block_hash is None:
        return "(not in a block)"
    return ("?" if number is None else f"#{number}") + f" {to_hex(block_hash)}"


class TransactionFailed(RpcClientError):
    """A watched transaction will never be included: invalid, dropped or usurped."""

    def __init__(self, ext_hash: bytes, status: TxStatus) -> None:
        super().__init__(f"transaction {to_hex(ext_hash)} was {status.kind}; nothing was charged")
        self.ext_hash = ext_hash
        self.status = status


@dataclass(frozen=True)
class CallOutcome:
    """A submitted extrinsic: its hash, the fee it pays (with its tip) and, once included, its
    block and events."""

    ext_hash: bytes
    block_hash: bytes | None
    events: tuple[DecodedEvent, ...] = ()
    block_number: int | None = None
    fee: int | None = None

    def find(self, event_type: type[E]) -> E | None:
        """The first event of the declared type `event_type` (e.g. `balances.Transfer`), or None."""
        return next((e.event for e in self.events if isinstance(e.event, event_type)), None)

    def failure(self) -> DecodedEvent | None:
        return next((e for e in self.events if isinstance(e.event, system.ExtrinsicFailed)), None)

    @property
    def block(self) -> str:
        """The block as commands show it ("#12 0x...")."""
        return block_ref(self.block_number, self.block_hash)

    @property
    def short_block(self) -> str:
        """The block's hash shortened for a message ("?" while not included)."""
        return "?" if self.block_hash is None else to_hex(self.block_hash)[:10] + "..."


class CallRefused(RpcClientError):
    """The call fails (or would fail) by its module's rules: `error` is "module.Error", `detail`
    what the rule ran into (e.g. the existing registration's id), `fee` what including it costs."""

    sent = False

    def __init__(self, error: str, detail: tuple[Any, ...], fee: int | None, message: str) -> None:
        super().__init__(message)
        self.error = error
        self.detail = detail
        self.fee = fee

    @property
    def reason(self) -> str:
        """The error in words, with its detail (`explain.describe`)."""
        return describe(self.error, self.detail)


class WouldFail(CallRefused):
    """The node's dry run says the call would fail; it was not sent and nothing was paid."""

    def __init__(self, error: str, detail: tuple[Any, ...] = (), fee: int | None = None, message: str = "") -> None:
        paid = f"; sent, it would still pay its fee of {format_img(fee)} IMG" if fee is not None else ""
        super().__init__(error, detail, fee, message or f"not sent: {describe(error, detail)}{paid}")


class CallFailed(CallRefused):
    """The extrinsic was included (and paid its fee) but its call failed."""

    sent = True

    def __init__(
        self, outcome: CallOutcome, error: str, detail: tuple[Any, ...] = (), message: str = ""
    ) -> None:
        paid = f"; fee paid: {format_img(outcome.fee)} IMG" if outcome.fee is not None else ""
        super().__init__(
            error, detail, outcome.fee, message or f"failed in block {outcome.block}: {describe(error, detail)}{paid}"
        )
        self.outcome = outcome

    @classmethod
    def from_event(cls, outcome: CallOutcome, event: DecodedEvent) -> CallFailed:
        """From an `ExtrinsicFailed`, with its error's detail decoded by the error's declaration."""
        return cls(outcome, event.event.error, event.error_detail)


class Unsendable(RpcClientError):
    """No block would take the transaction (the pool's reason, e.g. it cannot pay its fee); it was
    not sent. `reason` is the pool's ("InsufficientFunds", "BadSignature", ...)."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(f"not sent: {message}")
        self.reason = reason


def sign_call(
    client: RpcClient,
    signer: Keypair,
    call: Call,
    *,
    tip: int = 0,
    mortal_period: int = DEFAULT_MORTAL_PERIOD,
) -> bytes:
    """The encoded extrinsic, signed with the nonce, mortality and genesis hash the node gives."""
    best = client.header()
    mortality = Mortality(best.number, mortal_period, best.hash)
    extra = SignedExtra(
        client.genesis_hash(), SPEC_VERSION, client.next_nonce(signer.account_id), tip, mortality
    )
    return sign_extrinsic(signer, call, extra).encode()


def transfer(
    client: RpcClient,
    signer: Keypair,
    dest: bytes,
    amount: int,
    *,
    keep_alive: bool = False,
    tip: int = 0,
    mortal_period: int = DEFAULT_MORTAL_PERIOD,
    wait: bool = True,
    timeout: float = DEFAULT_INCLUSION_TIMEOUT_S,
    force: bool = False,
) -> CallOutcome:
    """Sign and submit `balances.transfer` (or `transfer_keep_alive`), as `submit_call` does.

    A transfer that fails by the rules (more than the transferable balance, too little to open a
    new account) is not sent (`WouldFail`), or, with `force`, fails on chain (`CallFailed`).
    """
    name = "transfer_keep_alive" if keep_alive else "transfer"
    call = Call("balances", name, (dest, u128_to_bytes(amount)))
    return submit_call(
        client, signer, call, tip=tip, mortal_period=mortal_period, wait=wait, timeout=timeout, force=force
    )


def check_signed(client: RpcClient, encoded: bytes, tip: int = 0) -> DryRun:
    """Ask the node what a signed extrinsic would do; raise `Unsendable` if no block would take it,
    `WouldFail` if its call would fail. Returns the dry run (its `fee` includes the tip)."""
    check = client.dry_run(encoded)
    if not check.valid:
        raise Unsendable(check.invalid_reason or "Invalid", _invalid_message(client, encoded, check, tip))
    if check.fails and check.error is not None:
        raise WouldFail(check.error, detail_from_json(check.error, check.error_detail), check.fee)
    return check


def _invalid_message(client: RpcClient, encoded: bytes, check: DryRun, tip: int) -> str:
    """The pool's reason, in IMG where it is about money (the pool's detail is in base units)."""
    if check.invalid_reason == "InsufficientFunds":
        from node.types import Extrinsic

        extrinsic = Extrinsic.decode(encoded)
        assert extrinsic.signer is not None
        account = client.account_info(extrinsic.signer.account_id())
        fee = client.query_fee(encoded) + tip
        if tip > account.transferable:
            return (
                f"InsufficientFunds: the tip of {format_img(tip)} IMG is more than the transferable "
                f"{format_img(account.transferable)} IMG"
            )
        return (
            f"InsufficientFunds: the fee of {format_img(fee)} IMG needs a free balance of at least "
            f"{format_img(fee + account.existential_deposit)} IMG (the fee and the existential deposit); "
            f"{account.address} has {format_img(account.free)} IMG"
        )
    detail = f": {check.invalid_detail}" if check.invalid_detail else ""
    return f"{check.invalid_reason}{detail}"


def submit_call(
    client: RpcClient,
    signer: Keypair,
    call: Call,
    *,
    tip: int = 0,
    mortal_period: int = DEFAULT_MORTAL_PERIOD,
    wait: bool = True,
    timeout: float = DEFAULT_INCLUSION_TIMEOUT_S,
    force: bool = False,
) -> CallOutcome:
    """Sign any call, check it with the node's dry run, submit it; with `wait`, return its events
    once included.

    Raises `WouldFail` (not sent, nothing paid) when the dry run says the call would fail, unless
    `force`; `Unsendable` when no block would take it; `CallFailed` if it was included but failed
    (the fee is paid then); `RpcError` if the pool refused it; `TransactionFailed` if it was dropped.
    """
    encoded = sign_call(client, signer, call, tip=tip, mortal_period=mortal_period)
    fee = client.query_fee(encoded) + tip if force else check_signed(client, encoded, tip).fee
    return submit_signed(client, encoded, wait=wait, timeout=timeout, fee=fee)


def submit_signed(
    client: RpcClient,
    encoded: bytes,
    *,
    wait: bool = True,
    timeout: float = DEFAULT_INCLUSION_TIMEOUT_S,
    fee: int | None = None,
) -> CallOutcome:
    """Submit an already signed extrinsic as it is (no dry run: see `check_signed`); `fee` is what
    it pays, for the outcome and the messages."""
    ext_hash = extrinsic_hash(encoded)
    if not wait:
        return CallOutcome(client.submit(encoded), None, fee=fee)
    deadline = time.monotonic() + timeout
    for status in client.watch_extrinsic(encoded, timeout=timeout):
        if status.kind in ("inBlock", "finalized") and status.hash is not None:
            outcome = CallOutcome(
                ext_hash,
                status.hash,
                tuple(extrinsic_events(client, status.hash, ext_hash)),
                client.header(status.hash).number,
                fee,
            )
            failure = outcome.failure()
            if failure is not None:
                raise CallFailed.from_event(outcome, failure)
            return outcome
        if status.kind in TxStatus.FAILED:
            raise TransactionFailed(ext_hash, status)
        if time.monotonic() > deadline:
            break
    raise RpcClientError(f"transaction {to_hex(ext_hash)} was not included within {timeout} s")
