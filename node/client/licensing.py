"""Licensing's calls from a wallet: offer, withdraw, buy; each result read from the call's events.

`tx` in each function: tip, mortal_period, timeout, as `transactions.submit_call` takes them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from node.client.rpc import RpcClient
from node.client.transactions import CallOutcome, submit_call
from node.client.transport import RpcClientError
from node.codec import u128_to_bytes
from node.keys import Keypair
from node.runtime import licensing
from node.types import Call

__all__ = ["Purchase", "buy_licence", "offer_licence_rf", "offer_licence_rm", "withdraw_offer"]


@dataclass(frozen=True)
class Purchase:
    licence_id: int
    offer_id: int
    registration_id: int
    seller: bytes
    price: int
    fee: int  # burned
    expires_at_ms: int  # 0: perpetual
    outcome: CallOutcome


def offer_licence_rf(
    client: RpcClient, signer: Keypair, registration_id: int, price: int, max_resolution: int = 0, **tx: Any
) -> int:
    """Offer a royalty-free licence (perpetual, non-exclusive, up to `max_resolution` pixels, 0 = any);
    returns the offer id."""
    call = Call("licensing", "offer_rf", (registration_id, u128_to_bytes(price), max_resolution))
    return _offered(submit_call(client, signer, call, **tx))


def offer_licence_rm(
    client: RpcClient,
    signer: Keypair,
    registration_id: int,
    price: int,
    *,
    use: str,
    territory: str,
    duration_ms: int,
    run_size: int = 0,
    exclusive: bool = False,
    **tx: Any,
) -> int:
    """Offer a rights-managed licence with terms; it expires `duration_ms` after each purchase."""
    args = (registration_id, u128_to_bytes(price), use, territory, run_size, duration_ms, exclusive)
    return _offered(submit_call(client, signer, Call("licensing", "offer_rm", args), **tx))


def withdraw_offer(client: RpcClient, signer: Keypair, offer_id: int, **tx: Any) -> CallOutcome:
    return submit_call(client, signer, Call("licensing", "withdraw_offer", (offer_id,)), **tx)


def buy_licence(client: RpcClient, signer: Keypair, offer_id: int, **tx: Any) -> Purchase:
    """Buy a licence: the price goes to the owner in full, the licence fee is burned."""
    outcome = submit_call(client, signer, Call("licensing", "purchase", (offer_id,)), **tx)
    event = outcome.find(licensing.Purchased)
    if event is None:
        raise RpcClientError("the purchase was included but reported no Purchased event")
    return Purchase(
        licence_id=event.licence_id, offer_id=event.offer_id, registration_id=event.registration_id,
        seller=event.seller, price=event.price, fee=event.fee, expires_at_ms=event.expires_at_ms, outcome=outcome,
    )  # fmt: skip


def _offered(outcome: CallOutcome) -> int:
    event = outcome.find(licensing.Offered)
    if event is None:
        raise RpcClientError("the offer was included but reported no Offered event")
    return event.offer_id
