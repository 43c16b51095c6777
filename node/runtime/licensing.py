"""`licensing`: licence offers and purchases in IMG (white paper 3, 3.3.2; PROTOCOL section 4).

The owner of a registration offers licences in the white paper's two forms:

* **RF** (royalty free): a fixed price for a perpetual, non-exclusive licence of any use up to a
  resolution (``max_resolution`` in pixels, width x height; 0 = any resolution);
* **RM** (rights managed): a price with terms: ``use`` and ``territory`` (free text),
  ``run_size`` (copies; 0 = unlimited), ``duration_ms`` (> 0; the licence expires at the
  purchase block's timestamp + duration) and optional exclusivity.

`purchase(offer_id)` pays **100% of the price to the owner** (peer to peer, no platform cut,
white paper 3.1.1) and **burns the licence fee** on top: ``max(min_fee, price * fee_ppm / 1e6)``,
so total issuance falls by exactly the fee (white paper 3.3.2's "fuel"). Both come from the
buyer, who must stay above the existential deposit. Expiry is by block timestamp only.

Rules worth knowing:

* Offers are immutable (change one = withdraw it and offer again under a new id), so a buyer
  who names an offer id knows the exact price and terms; no price slippage is possible.
* An offer stays open for any number of buyers until withdrawn. Offers belong to the owner who
  made them: when ownership changes (transfer or RAW takeover) all open offers of the image are
  withdrawn (``OffersCleared``); licences already sold remain valid.
* While an exclusive RM licence runs (now < its expiry), no other account can buy any licence of
  that image (``ExclusiveLicenceActive(licence id, expires_at)``); its holder may (to renew).
* Bounded storage: at most 16 open offers per image; the licences an account holds are an
  enumerable list (count + one key per index), so no value grows without bound.

Params (genesis `licensing` section)
  licensing:params                      -> [fee_ppm, min_fee(u128)]
Storage
  licensing:next_offer_id               -> u64 (offer ids start at 1)
  licensing:offer:<offer id u64>        -> Offer (`Offer.to_wire`)
  licensing:offers:<registration id>    -> [offer id, ...] open offers, ascending (<= 16)
  licensing:next_licence_id             -> u64 (licence ids start at 1)
  licensing:licence:<licence id u64>    -> Licence (`Licence.to_wire`)
  licensing:held_count:<acct>           -> u32, licences bought by acct
  licensing:held:<acct><index u32>      -> licence id (u64), in purchase order
  licensing:exclusive:<registration id> -> [licence id, holder, expires_at_ms] of the latest
                                           exclusive licence (stale once expired)
Calls
  offer_rf(registration id, price, max_resolution)
  offer_rm(registration id, price, use, territory, run_size, duration_ms, exclusive)
  withdraw_offer(offer id)                 the offer's seller
  purchase(offer id)
Events
  Offered(offer id, registration id, seller, kind, price)
  OfferWithdrawn(offer id, registration id)
  OffersCleared(registration id, count)
  Purchased(licence id, offer id, registration id, buyer, seller, price, fee, expires_at_ms)
Errors
  UnknownRegistration, NotOwner, TooManyOffers, UnknownOffer, NotSeller, OfferStale,
  CannotBuyOwn, ExclusiveLicenceActive(licence id, expires_at), ZeroDuration, DurationTooLong
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from node.codec import decode, expect_int, expect_list, u128_from_bytes, u128_to_bytes
from node.runtime import balances, copyright, timestamp
from node.runtime.support import (
    BlockContext,
    Origin,
    arg_bool,
    arg_str,
    arg_u64,
    arg_u128,
    call,
    ensure,
    ensure_signed,
    specs_of,
)

MODULE = "licensing"

KIND_RF = 0
KIND_RM = 1
KIND_NAMES = {KIND_RF: "RF", KIND_RM: "RM"}

MAX_OFFERS_PER_IMAGE = 16
MAX_USE_CHARS = 128
MAX_TERRITORY_CHARS = 64
MAX_DURATION_MS = 100 * 365 * 86_400_000  # a century
PPM = 1_000_000

# ---------------------------------------------------------------------------------------------
# Params
# ---------------------------------------------------------------------------------------------

KEY_PARAMS = b"licensing:params"


@dataclass(frozen=True)
class LicensingParams:
    fee_ppm: int = 1_000  # 0.1% of the price
    min_fee: int = 10**15  # 0.001 IMG

    def to_wire(self) -> list[Any]:
        return [self.fee_ppm, u128_to_bytes(self.min_fee)]

    @classmethod
    def from_wire(cls, obj: Any) -> LicensingParams:
        ppm, min_fee = expect_list(obj, 2, "licensing params")
        return cls(expect_int(ppm, PPM, "fee_ppm"), u128_from_bytes(min_fee))


def read_params(get: Any) -> LicensingParams:
    """The genesis values; a chain spec without a `licensing` section gets the defaults above."""
    raw = get(KEY_PARAMS)
    return LicensingParams() if raw is None else LicensingParams.from_wire(decode(raw))


def licence_fee(params: LicensingParams, price: int) -> int:
    """The burned fee for a purchase at `price` (integer; rounds down, then the floor applies)."""
    return max(params.min_fee, price * params.fee_ppm // PPM)


# ---------------------------------------------------------------------------------------------
# Storage keys
# ---------------------------------------------------------------------------------------------

KEY_NEXT_OFFER_ID = b"licensing:next_offer_id"
KEY_NEXT_LICENCE_ID = b"licensing:next_licence_id"
FIRST_ID = 1


def _u64(value: int) -> bytes:
    return value.to_bytes(8, "big")


def offer_key(offer_id: int) -> bytes:
    return b"licensing:offer:" + _u64(offer_id)


def offers_key(registration_id: int) -> bytes:
    return b"licensing:offers:" + _u64(registration_id)


def licence_key(licence_id: int) -> bytes:
    return b"licensing:licence:" + _u64(licence_id)


def held_count_key(account_id: bytes) -> bytes:
    return b"licensing:held_count:" + account_id


def held_key(account_id: bytes, index: int) -> bytes:
    return b"licensing:held:" + account_id + index.to_bytes(4, "big")


def exclusive_key(registration_id: int) -> bytes:
    return b"licensing:exclusive:" + _u64(registration_id)


# ---------------------------------------------------------------------------------------------
# Records
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Offer:
    id: int
    registration_id: int
    seller: bytes
    kind: int  # KIND_RF or KIND_RM
    price: int
    max_resolution: int  # RF: pixels, 0 = any; RM: 0
    use: str  # RM terms ("" for RF)
    territory: str
    run_size: int
    duration_ms: int  # RF: 0 (perpetual)
    exclusive: bool
    created_block: int

    def to_wire(self) -> list[Any]:
        return [
            self.id, self.registration_id, self.seller, self.kind, u128_to_bytes(self.price), self.max_resolution,
            self.use, self.territory, self.run_size, self.duration_ms, self.exclusive, self.created_block,
        ]  # fmt: skip

    @classmethod
    def from_wire(cls, obj: Any) -> Offer:
        oid, rid, seller, kind, price, max_res, use, territory, run, duration, excl, block = expect_list(
            obj, 12
        )
        return cls(
            oid,
            rid,
            seller,
            kind,
            u128_from_bytes(price),
            max_res,
            use,
            territory,
            run,
            duration,
            excl,
            block,
        )


@dataclass(frozen=True)
class Licence:
    id: int
    offer_id: int
    registration_id: int
    licensee: bytes
    licensor: bytes
    kind: int
    price: int
    fee: int
    max_resolution: int
    use: str
    territory: str
    run_size: int
    exclusive: bool
    granted_at_ms: int
    expires_at_ms: int  # 0 = perpetual (RF)
    block: int

    def is_active(self, now_ms: int) -> bool:
        return self.expires_at_ms == 0 or now_ms < self.expires_at_ms

    def to_wire(self) -> list[Any]:
        return [
            self.id, self.offer_id, self.registration_id, self.licensee, self.licensor, self.kind,
            u128_to_bytes(self.price), u128_to_bytes(self.fee), self.max_resolution, self.use, self.territory,
            self.run_size, self.exclusive, self.granted_at_ms, self.expires_at_ms, self.block,
        ]  # fmt: skip

    @classmethod
    def from_wire(cls, obj: Any) -> Licence:
        f = expect_list(obj, 16, "licence")
        return cls(
            f[0], f[1], f[2], f[3], f[4], f[5], u128_from_bytes(f[6]), u128_from_bytes(f[7]), f[8], f[9], f[10],
            f[11], f[12], f[13], f[14], f[15],
        )  # fmt: skip


@dataclass(frozen=True)
class Exclusive:
    licence_id: int
    holder: bytes
    expires_at_ms: int


# ---------------------------------------------------------------------------------------------
# Reads (for the RPC)
# ---------------------------------------------------------------------------------------------


def get_offer(get: Any, offer_id: int) -> Offer | None:
    raw = get(offer_key(offer_id))
    return None if raw is None else Offer.from_wire(decode(raw))


def open_offer_ids(get: Any, registration_id: int) -> list[int]:
    raw = get(offers_key(registration_id))
    return [] if raw is None else list(decode(raw))


def offers_of(get: Any, registration_id: int) -> list[Offer]:
    """The open offers of a registration, by id."""
    offers = (get_offer(get, oid) for oid in open_offer_ids(get, registration_id))
    return [o for o in offers if o is not None]


def get_licence(get: Any, licence_id: int) -> Licence | None:
    raw = get(licence_key(licence_id))
    return None if raw is None else Licence.from_wire(decode(raw))


def licence_count_of(get: Any, account_id: bytes) -> int:
    raw = get(held_count_key(account_id))
    return 0 if raw is None else int.from_bytes(raw, "big")


def licences_of(get: Any, account_id: bytes, start: int = 0, limit: int = 100) -> list[Licence]:
    """Licences bought by `account_id`, in purchase order, page [start, start + limit)."""
    out = []
    for index in range(start, min(licence_count_of(get, account_id), start + limit)):
        raw = get(held_key(account_id, index))
        licence = None if raw is None else get_licence(get, int.from_bytes(raw, "big"))
        if licence is not None:
            out.append(licence)
    return out


def active_exclusive(get: Any, registration_id: int, now_ms: int) -> Exclusive | None:
    """The exclusive licence running on an image at time `now_ms`, if any."""
    raw = get(exclusive_key(registration_id))
    if raw is None:
        return None
    licence_id, holder, expires = decode(raw)
    return Exclusive(licence_id, holder, expires) if now_ms < expires else None


# ---------------------------------------------------------------------------------------------
# Hooks
# ---------------------------------------------------------------------------------------------


def on_owner_changed(ctx: BlockContext, registration_id: int) -> None:
    """Called by `copyright` when an image changes hands: the old owner's offers are withdrawn."""
    ids = open_offer_ids(ctx.state.get, registration_id)
    if not ids:
        return
    for offer_id in ids:
        ctx.state.delete(offer_key(offer_id))
    ctx.state.delete(offers_key(registration_id))
    ctx.emit(MODULE, "OffersCleared", registration_id, len(ids))


# ---------------------------------------------------------------------------------------------
# Calls
# ---------------------------------------------------------------------------------------------


def _add_offer(ctx: BlockContext, who: bytes, registration_id: int, **terms: Any) -> None:
    registration = copyright.get_registration(ctx.state.get, registration_id)
    ensure(registration is not None, MODULE, "UnknownRegistration", registration_id)
    assert registration is not None
    ensure(registration.owner == who, MODULE, "NotOwner", registration_id)
    ids = open_offer_ids(ctx.state.get, registration_id)
    ensure(len(ids) < MAX_OFFERS_PER_IMAGE, MODULE, "TooManyOffers", registration_id)
    offer_id = ctx.get_int(KEY_NEXT_OFFER_ID, FIRST_ID)
    ctx.state.set(KEY_NEXT_OFFER_ID, _u64(offer_id + 1))
    offer = Offer(id=offer_id, registration_id=registration_id, seller=who, created_block=ctx.number, **terms)
    ctx.put_obj(offer_key(offer_id), offer.to_wire())
    ctx.put_obj(offers_key(registration_id), [*ids, offer_id])
    ctx.emit(MODULE, "Offered", offer_id, registration_id, who, KIND_NAMES[offer.kind], offer.price)


@call(MODULE, "offer_rf", arg_u64, arg_u128, arg_u64, weight=150_000)
def offer_rf(
    ctx: BlockContext, origin: Origin, registration_id: int, price: int, max_resolution: int
) -> None:
    """Offer a royalty-free licence: perpetual, non-exclusive, up to `max_resolution` pixels (0 = any)."""
    who = ensure_signed(origin)
    _add_offer(
        ctx, who, registration_id, kind=KIND_RF, price=price, max_resolution=max_resolution, use="", territory="",
        run_size=0, duration_ms=0, exclusive=False,
    )  # fmt: skip


@call(
    MODULE, "offer_rm", arg_u64, arg_u128, arg_str(MAX_USE_CHARS), arg_str(MAX_TERRITORY_CHARS), arg_u64, arg_u64,
    arg_bool, weight=150_000,
)  # fmt: skip
def offer_rm(
    ctx: BlockContext,
    origin: Origin,
    registration_id: int,
    price: int,
    use: str,
    territory: str,
    run_size: int,
    duration_ms: int,
    exclusive: bool,
) -> None:
    """Offer a rights-managed licence with terms; it expires `duration_ms` after each purchase."""
    who = ensure_signed(origin)
    ensure(duration_ms > 0, MODULE, "ZeroDuration")
    ensure(duration_ms <= MAX_DURATION_MS, MODULE, "DurationTooLong")
    _add_offer(
        ctx, who, registration_id, kind=KIND_RM, price=price, max_resolution=0, use=use, territory=territory,
        run_size=run_size, duration_ms=duration_ms, exclusive=exclusive,
    )  # fmt: skip


@call(MODULE, "withdraw_offer", arg_u64, weight=100_000)
def withdraw_offer(ctx: BlockContext, origin: Origin, offer_id: int) -> None:
    who = ensure_signed(origin)
    offer = get_offer(ctx.state.get, offer_id)
    ensure(offer is not None, MODULE, "UnknownOffer", offer_id)
    assert offer is not None
    ensure(offer.seller == who, MODULE, "NotSeller", offer_id)
    ids = [i for i in open_offer_ids(ctx.state.get, offer.registration_id) if i != offer_id]
    ctx.state.delete(offer_key(offer_id))
    if ids:
        ctx.put_obj(offers_key(offer.registration_id), ids)
    else:
        ctx.state.delete(offers_key(offer.registration_id))
    ctx.emit(MODULE, "OfferWithdrawn", offer_id, offer.registration_id)


@call(MODULE, "purchase", arg_u64, weight=250_000)
def purchase(ctx: BlockContext, origin: Origin, offer_id: int) -> None:
    """Buy a licence: the price goes to the owner in full, the licence fee is burned."""
    buyer = ensure_signed(origin)
    get = ctx.state.get
    offer = get_offer(get, offer_id)
    ensure(offer is not None, MODULE, "UnknownOffer", offer_id)
    assert offer is not None
    registration = copyright.get_registration(get, offer.registration_id)
    ensure(registration is not None and registration.owner == offer.seller, MODULE, "OfferStale", offer_id)
    ensure(buyer != offer.seller, MODULE, "CannotBuyOwn", offer_id)
    now = timestamp.now(ctx)
    running = active_exclusive(get, offer.registration_id, now)
    if running is not None:
        ensure(
            running.holder == buyer,
            MODULE,
            "ExclusiveLicenceActive",
            running.licence_id,
            running.expires_at_ms,
        )

    fee = licence_fee(read_params(get), offer.price)
    if offer.price:
        balances.transfer_funds(ctx, buyer, offer.seller, offer.price, keep_alive=True)
    balances.burn_from(ctx, buyer, fee, keep_alive=True)

    licence_id = ctx.get_int(KEY_NEXT_LICENCE_ID, FIRST_ID)
    ctx.state.set(KEY_NEXT_LICENCE_ID, _u64(licence_id + 1))
    expires = now + offer.duration_ms if offer.kind == KIND_RM else 0
    licence = Licence(
        licence_id, offer_id, offer.registration_id, buyer, offer.seller, offer.kind, offer.price, fee,
        offer.max_resolution, offer.use, offer.territory, offer.run_size, offer.exclusive, now, expires, ctx.number,
    )  # fmt: skip
    ctx.put_obj(licence_key(licence_id), licence.to_wire())
    count = licence_count_of(get, buyer)
    ctx.state.set(held_key(buyer, count), _u64(licence_id))
    ctx.state.set(held_count_key(buyer), (count + 1).to_bytes(4, "big"))
    if offer.exclusive:
        until = max(expires, running.expires_at_ms if running is not None else 0)
        ctx.put_obj(exclusive_key(offer.registration_id), [licence_id, buyer, until])
    ctx.emit(
        MODULE,
        "Purchased",
        licence_id,
        offer_id,
        offer.registration_id,
        buyer,
        offer.seller,
        offer.price,
        fee,
        expires,
    )


CALLS = specs_of(offer_rf, offer_rm, withdraw_offer, purchase)
