"""Signing a call for a node's chain, submitting it, and reading what became of it.

A signed call is bound to this chain (genesis hash) and runtime (spec version), takes the next
nonce the node's pool expects, and is mortal for `mortal_period` blocks from the current best
block (whose hash it signs, so it lives on that chain only), so a transaction stuck in a pool
cannot be replayed much later.

Failures, all `RpcClientError`: `RpcError` when the pool refuses it, `TransactionFailed` when a
watched transaction ends as invalid, dropped or usurped, `CallFailed` when it was included (and
paid its fee) but its call failed by its module's rules.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, TypeVar

from node.client.events import DecodedEvent, extrinsic_events
from node.client.results import TxStatus
from node.client.rpc import RpcClient
from node.client.transport import RpcClientError
from node.codec import u128_to_bytes
from node.keys import Keypair
from node.rpc.encoding import to_hex
from node.runtime import system
from node.runtime.runtime import SPEC_VERSION
from node.types import Call, Mortality, SignedExtra, extrinsic_hash, sign_extrinsic

__all__ = [
    "DEFAULT_INCLUSION_TIMEOUT_S",
    "CallFailed",
    "CallOutcome",
    "TransactionFailed",
    "sign_call",
    "submit_call",
    "submit_signed",
    "transfer",
]

DEFAULT_INCLUSION_TIMEOUT_S = 120.0
DEFAULT_MORTAL_PERIOD = 64

E = TypeVar("E")


class TransactionFailed(RpcClientError):
    """A watched transaction will never be included: invalid, dropped or usurped."""

    def __init__(self, ext_hash: bytes, status: TxStatus) -> None:
        super().__init__(f"transaction {to_hex(ext_hash)} was {status.kind}")
        self.ext_hash = ext_hash
        self.status = status


@dataclass(frozen=True)
class CallOutcome:
    """A submitted extrinsic: its hash and, once included, its block and events."""

    ext_hash: bytes
    block_hash: bytes | None
    events: tuple[DecodedEvent, ...] = ()

    def find(self, event_type: type[E]) -> E | None:
        """The first event of the declared type `event_type` (e.g. `balances.Transfer`), or None."""
        return next((e.event for e in self.events if isinstance(e.event, event_type)), None)

    def failure(self) -> DecodedEvent | None:
        return next((e for e in self.events if isinstance(e.event, system.ExtrinsicFailed)), None)

    @property
    def short_block(self) -> str:
        """The block's hash shortened for a message ("?" while not included)."""
        return "?" if self.block_hash is None else to_hex(self.block_hash)[:10] + "..."


class CallFailed(RpcClientError):
    """The extrinsic was included (and paid its fee) but its call failed: `error` is
    "module.Error", `detail` what the rule ran into (e.g. the existing registration's id)."""

    def __init__(
        self, outcome: CallOutcome, error: str, detail: tuple[Any, ...] = (), message: str = ""
    ) -> None:
        shown = ", ".join(str(d) for d in detail)
        super().__init__(
            message or f"{error}" + (f" ({shown})" if shown else "") + f" in block {outcome.short_block}"
        )
        self.outcome = outcome
        self.error = error
        self.detail = detail

    @classmethod
    def from_event(cls, outcome: CallOutcome, event: DecodedEvent) -> CallFailed:
        """From an `ExtrinsicFailed`, with its error's detail decoded by the error's declaration."""
        return cls(outcome, event.event.error, event.error_detail)


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
    tip: int = 0,
    mortal_period: int = DEFAULT_MORTAL_PERIOD,
    wait: bool = True,
    timeout: float = DEFAULT_INCLUSION_TIMEOUT_S,
) -> tuple[bytes, bytes | None]:
    """Sign and submit `balances.transfer`; returns (extrinsic hash, block hash or None).

    With `wait`, returns once a block includes it (raises `TransactionFailed` if it is dropped
    instead, `RpcClientError` after `timeout` seconds).
    """
    call = Call("balances", "transfer", (dest, u128_to_bytes(amount)))
    encoded = sign_call(client, signer, call, tip=tip, mortal_period=mortal_period)
    ext_hash = extrinsic_hash(encoded)
    if not wait:
        return client.submit(encoded), None
    deadline = time.monotonic() + timeout
    for status in client.watch_extrinsic(encoded, timeout=timeout):
        if status.kind in ("inBlock", "finalized"):
            return ext_hash, status.hash
        if status.kind in TxStatus.FAILED:
            raise TransactionFailed(ext_hash, status)
        if time.monotonic() > deadline:
            break
    raise RpcClientError(f"transaction {to_hex(ext_hash)} was not included within {timeout} s")


def submit_call(
    client: RpcClient,
    signer: Keypair,
    call: Call,
    *,
    tip: int = 0,
    mortal_period: int = DEFAULT_MORTAL_PERIOD,
    wait: bool = True,
    timeout: float = DEFAULT_INCLUSION_TIMEOUT_S,
) -> CallOutcome:
    """Sign and submit any call, as `transfer` does; with `wait`, return its events once included.

    Raises `CallFailed` if the call was included but failed by its module's rules (the fee is
    paid then), `RpcError` if the pool refused it, `TransactionFailed` if it was dropped.
    """
    encoded = sign_call(client, signer, call, tip=tip, mortal_period=mortal_period)
    return submit_signed(client, encoded, wait=wait, timeout=timeout)


def submit_signed(
    client: RpcClient, encoded: bytes, *, wait: bool = True, timeout: float = DEFAULT_INCLUSION_TIMEOUT_S
) -> CallOutcome:
    """Submit an already signed extrinsic (see `submit_call`)."""
    ext_hash = extrinsic_hash(encoded)
    if not wait:
        return CallOutcome(client.submit(encoded), None)
    deadline = time.monotonic() + timeout
    for status in client.watch_extrinsic(encoded, timeout=timeout):
        if status.kind in ("inBlock", "finalized") and status.hash is not None:
            outcome = CallOutcome(
                ext_hash, status.hash, tuple(extrinsic_events(client, status.hash, ext_hash))
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
