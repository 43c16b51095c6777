"""licensing_*: the open offers of an image and the licences an account bought (white paper 3)."""

from __future__ import annotations

from node.rpc.jsonrpc import JSON, CallContext, MethodTable
from node.rpc.params import AccountId, Count, Hash, RegistrationId, page_size
from node.rpc.render import licence_json, offer_json
from node.rpc.state_at import read_state
from node.runtime import licensing, timestamp
from node.runtime.support import StateGet

METHODS = MethodTable()

_OFFERS_RESULT = {
    "type": "array",
    "description": "open offers: id, registrationId, seller, kind (RF|RM), price, priceRaw, fee, feeRaw, terms",
}


@METHODS.method("licensing_offers", result=_OFFERS_RESULT)
async def licensing_offers(ctx: CallContext, id: RegistrationId, at: Hash | None = None) -> JSON:
    """The open licence offers of a registration, by offer id (fee: what a buyer burns on top)."""

    def read(get: StateGet) -> JSON:
        params = licensing.read_params(get)
        return [offer_json(offer, params) for offer in licensing.offers_of(get, id)]

    return read_state(ctx, at, read)


@METHODS.method(
    "licensing_licencesOf",
    result={"type": "array", "description": "licences bought, in purchase order, with `active` at the block"},
)
async def licensing_licencesOf(
    ctx: CallContext,
    account: AccountId,
    start: Count | None = None,
    limit: Count | None = None,
    at: Hash | None = None,
) -> JSON:
    """Licences an account bought, in purchase order: page [start, start + limit) (limit <= 1000)."""
    page = page_size(limit)

    def read(get: StateGet) -> JSON:
        raw_now = get(timestamp.KEY_NOW)
        now_ms = 0 if raw_now is None else int.from_bytes(raw_now, "big")
        return [
            licence_json(licence, now_ms) for licence in licensing.licences_of(get, account, start or 0, page)
        ]

    return read_state(ctx, at, read)


@METHODS.method("licensing_licensesOf", result={"type": "array", "description": "as licensing_licencesOf"})
async def licensing_licensesOf(
    ctx: CallContext,
    account: AccountId,
    start: Count | None = None,
    limit: Count | None = None,
    at: Hash | None = None,
) -> JSON:
    """The former spelling of `licensing_licencesOf`, answered the same for existing clients."""
    return await licensing_licencesOf(ctx, account, start, limit, at)
