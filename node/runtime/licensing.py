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
  withdrawn (``OffersCleared``, the answer to `copyright.OWNER_CHANGED`); licences already
  sold remain valid.
* While an exclusive RM licence runs (now < its expiry), no other account can buy any licence of
  that image (``ExclusiveLicenceActive(licence id, expires_at)``); its holder may (to renew).
* Bounded storage: at most 16 open offers per image; the licences an account holds are an
  enumerable list (count + one key per index), so no value grows without bound.

Params (genesis `licensing` section: fee_ppm, min_fee in IMG)
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
  UnknownRegistration(id), NotOwner(id), TooManyOffers(id), UnknownOffer(offer id),
  NotSeller(offer id), OfferStale(offer id), CannotBuyOwn(offer id),
  ExclusiveLicenceActive(licence id, expires_at), ZeroDuration, DurationTooLong
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from node.codec import expect_int, expect_list, u128_from_bytes, u128_to_bytes
from node.runtime import balances, copyright, timestamp
from node.runtime.support import (
    BYTES,
    MSGPACK,
    U32,
    U64,
    AccountId,
    Balance,
    BlockContext,
    DispatchError,
    GenesisState,
    Origin,
    Record,
    RuntimeModule,
    StateGet,
    StorageMap,
    StorageValue,
    arg_bool,
    arg_str,
    arg_u64,
    arg_u128,
    call,
    ensure,
    ensure_signed,
    error,
    event,
)
from node.units import parse_img

NAME = "licensing"

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


def licence_fee(params: LicensingParams, price: int) -> int:
    """The burned fee for a purchase at `price` (integer; rounds down, then the floor applies)."""
    return max(params.min_fee, price * params.fee_ppm // PPM)


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
# Storage
# ---------------------------------------------------------------------------------------------

FIRST_ID = 1

PARAMS: StorageValue[LicensingParams] = StorageValue(b"licensing:params", Record(LicensingParams), LicensingParams())
NEXT_OFFER_ID: StorageValue[int] = StorageValue(b"licensing:next_offer_id", U64, FIRST_ID)
OFFERS: StorageMap[Offer] = StorageMap(b"licensing:offer:", (U64,), Record(Offer))
OPEN_OFFERS: StorageMap[Any] = StorageMap(b"licensing:offers:", (U64,), MSGPACK)
NEXT_LICENCE_ID: StorageValue[int] = StorageValue(b"licensing:next_licence_id", U64, FIRST_ID)
LICENCES: StorageMap[Licence] = StorageMap(b"licensing:licence:", (U64,), Record(Licence))
HELD_COUNT: StorageMap[int] = StorageMap(b"licensing:held_count:", (BYTES,), U32, 0)
HELD: StorageMap[int] = StorageMap(b"licensing:held:", (BYTES, U32), U64)
EXCLUSIVE: StorageMap[Any] = StorageMap(b"licensing:exclusive:", (U64,), MSGPACK)
KEY_PARAMS = PARAMS.key


def read_params(get: StateGet) -> LicensingParams:
    """The genesis values; a chain spec without a `licensing` section gets the defaults above."""
    return PARAMS.value(get)


# ---------------------------------------------------------------------------------------------
# Reads (for the RPC)
# ---------------------------------------------------------------------------------------------


def get_offer(get: StateGet, offer_id: int) -> Offer | None:
    return OFFERS.get(get, offer_id)


def open_offer_ids(get: StateGet, registration_id: int) -> list[int]:
    return list(OPEN_OFFERS.get(get, registration_id) or [])


def offers_of(get: StateGet, registration_id: int) -> list[Offer]:
    """The open offers of a registration, by id."""
    offers = (get_offer(get, oid) for oid in open_offer_ids(get, registration_id))
    return [o for o in offers if o is not None]


def get_licence(get: StateGet, licence_id: int) -> Licence | None:
    return LICENCES.get(get, licence_id)


def licence_count_of(get: StateGet, account_id: bytes) -> int:
    return HELD_COUNT.value(get, account_id)


def licences_of(get: StateGet, account_id: bytes, start: int = 0, limit: int = 100) -> list[Licence]:
    """Licences bought by `account_id`, in purchase order, page [start, start + limit)."""
    out = []
    for index in range(start, min(licence_count_of(get, account_id), start + limit)):
        licence_id = HELD.get(get, (account_id, index))
        licence = None if licence_id is None else get_licence(get, licence_id)
        if licence is not None:
            out.append(licence)
    return out


def active_exclusive(get: StateGet, registration_id: int, now_ms: int) -> Exclusive | None:
    """The exclusive licence running on an image at time `now_ms`, if any."""
    stored = EXCLUSIVE.get(get, registration_id)
    if stored is None:
        return None
    licence_id, holder, expires = stored
    return Exclusive(licence_id, holder, expires) if now_ms < expires else None


# ---------------------------------------------------------------------------------------------
# Hooks
# ---------------------------------------------------------------------------------------------


def on_owner_changed(ctx: BlockContext, registration_id: int) -> None:
    """The answer to `copyright.OWNER_CHANGED`: the old owner's open offers are withdrawn."""
    ids = open_offer_ids(ctx.state.get, registration_id)
    if not ids:
        return
    for offer_id in ids:
        OFFERS.delete(ctx, offer_id)
    OPEN_OFFERS.delete(ctx, registration_id)
    ctx.deposit_event(OffersCleared(registration_id, len(ids)))


def build_genesis(genesis: GenesisState) -> None:
    section, default = genesis.section("licensing"), LicensingParams()
    params = LicensingParams(
        fee_ppm=int(section.get("fee_ppm", default.fee_ppm)),
        min_fee=parse_img(section["min_fee"]) if "min_fee" in section else default.min_fee,
    )
    if not 0 <= params.fee_ppm <= PPM:
        raise ValueError("licensing fee_ppm must be in 0..1000000")
    PARAMS.put(genesis, params)


# ---------------------------------------------------------------------------------------------
# Calls
# ---------------------------------------------------------------------------------------------


def _add_offer(ctx: BlockContext, who: bytes, registration_id: int, **terms: Any) -> None:
    registration = copyright.get_registration(ctx.state.get, registration_id)
    ensure(registration is not None, UnknownRegistration, registration_id)
    assert registration is not None
    ensure(registration.owner == who, NotOwner, registration_id)
    ids = open_offer_ids(ctx.state.get, registration_id)
    ensure(len(ids) < MAX_OFFERS_PER_IMAGE, TooManyOffers, registration_id)
    offer_id = NEXT_OFFER_ID.value(ctx)
    NEXT_OFFER_ID.put(ctx, offer_id + 1)
    offer = Offer(id=offer_id, registration_id=registration_id, seller=who, created_block=ctx.number, **terms)
    OFFERS.put(ctx, offer_id, offer)
    OPEN_OFFERS.put(ctx, registration_id, [*ids, offer_id])
    ctx.deposit_event(Offered(offer_id, registration_id, who, KIND_NAMES[offer.kind], offer.price))


@call(NAME, "offer_rf", arg_u64, arg_u128, arg_u64, weight=150_000)
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
    NAME, "offer_rm", arg_u64, arg_u128, arg_str(MAX_USE_CHARS), arg_str(MAX_TERRITORY_CHARS), arg_u64, arg_u64,
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
    ensure(duration_ms > 0, ZeroDuration)
    ensure(duration_ms <= MAX_DURATION_MS, DurationTooLong)
    _add_offer(
        ctx, who, registration_id, kind=KIND_RM, price=price, max_resolution=0, use=use, territory=territory,
        run_size=run_size, duration_ms=duration_ms, exclusive=exclusive,
    )  # fmt: skip


@call(NAME, "withdraw_offer", arg_u64, weight=100_000)
def withdraw_offer(ctx: BlockContext, origin: Origin, offer_id: int) -> None:
    who = ensure_signed(origin)
    offer = get_offer(ctx.state.get, offer_id)
    ensure(offer is not None, UnknownOffer, offer_id)
    assert offer is not None
    ensure(offer.seller == who, NotSeller, offer_id)
    ids = [i for i in open_offer_ids(ctx.state.get, offer.registration_id) if i != offer_id]
    OFFERS.delete(ctx, offer_id)
    if ids:
        OPEN_OFFERS.put(ctx, offer.registration_id, ids)
    else:
        OPEN_OFFERS.delete(ctx, offer.registration_id)
    ctx.deposit_event(OfferWithdrawn(offer_id, offer.registration_id))


@call(NAME, "purchase", arg_u64, weight=250_000)
def purchase(ctx: BlockContext, origin: Origin, offer_id: int) -> None:
    """Buy a licence: the price goes to the owner in full, the licence fee is burned."""
    buyer = ensure_signed(origin)
    get = ctx.state.get
    offer = get_offer(get, offer_id)
    ensure(offer is not None, UnknownOffer, offer_id)
    assert offer is not None
    registration = copyright.get_registration(get, offer.registration_id)
    ensure(registration is not None and registration.owner == offer.seller, OfferStale, offer_id)
    ensure(buyer != offer.seller, CannotBuyOwn, offer_id)
    now = timestamp.now(ctx)
    running = active_exclusive(get, offer.registration_id, now)
    if running is not None:
        ensure(running.holder == buyer, ExclusiveLicenceActive, running.licence_id, running.expires_at_ms)

    fee = licence_fee(read_params(get), offer.price)
    if offer.price:
        balances.transfer_funds(ctx, buyer, offer.seller, offer.price, keep_alive=True)
    balances.burn_from(ctx, buyer, fee, keep_alive=True)

    licence_id = NEXT_LICENCE_ID.value(ctx)
    NEXT_LICENCE_ID.put(ctx, licence_id + 1)
    expires = now + offer.duration_ms if offer.kind == KIND_RM else 0
    licence = Licence(
        licence_id, offer_id, offer.registration_id, buyer, offer.seller, offer.kind, offer.price, fee,
        offer.max_resolution, offer.use, offer.territory, offer.run_size, offer.exclusive, now, expires, ctx.number,
    )  # fmt: skip
    LICENCES.put(ctx, licence_id, licence)
    count = licence_count_of(get, buyer)
    HELD.put(ctx, (buyer, count), licence_id)
    HELD_COUNT.put(ctx, buyer, count + 1)
    if offer.exclusive:
        until = max(expires, running.expires_at_ms if running is not None else 0)
        EXCLUSIVE.put(ctx, offer.registration_id, [licence_id, buyer, until])
    ctx.deposit_event(
        Purchased(licence_id, offer_id, offer.registration_id, buyer, offer.seller, offer.price, fee, expires)
    )


# ---------------------------------------------------------------------------------------------
# Events
# ---------------------------------------------------------------------------------------------


@event(NAME)
class Offered:
    """`kind` is "RF" or "RM"."""

    offer_id: int
    registration_id: int
    seller: AccountId
    kind: str
    price: Balance


@event(NAME)
class OfferWithdrawn:
    offer_id: int
    registration_id: int


@event(NAME)
class OffersCleared:
    """The image changed owner: its `count` open offers were withdrawn."""

    registration_id: int
    count: int


@event(NAME)
class Purchased:
    """`price` went to the seller, `fee` was burned; `expires_at_ms` is 0 for a perpetual licence."""

    licence_id: int
    offer_id: int
    registration_id: int
    buyer: AccountId
    seller: AccountId
    price: Balance
    fee: Balance
    expires_at_ms: int


# ---------------------------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------------------------


@error(NAME)
class UnknownRegistration(DispatchError):
    registration_id: int


@error(NAME)
class NotOwner(DispatchError):
    registration_id: int


@error(NAME)
class TooManyOffers(DispatchError):
    registration_id: int


@error(NAME)
class UnknownOffer(DispatchError):
    offer_id: int


@error(NAME)
class NotSeller(DispatchError):
    offer_id: int


@error(NAME)
class OfferStale(DispatchError):
    """The offer's seller no longer owns the image."""

    offer_id: int


@error(NAME)
class CannotBuyOwn(DispatchError):
    offer_id: int


@error(NAME)
class ExclusiveLicenceActive(DispatchError):
    """Another account holds an exclusive licence of the image until `expires_at_ms`."""

    licence_id: int
    expires_at_ms: int


@error(NAME)
class ZeroDuration(DispatchError):
    """An RM licence needs a duration."""


@error(NAME)
class DurationTooLong(DispatchError):
    """An RM licence lasts at most a century."""


MODULE = RuntimeModule(
    NAME,
    calls=(offer_rf, offer_rm, withdraw_offer, purchase),
    events=(Offered, OfferWithdrawn, OffersCleared, Purchased),
    errors=(
        UnknownRegistration, NotOwner, TooManyOffers, UnknownOffer, NotSeller, OfferStale, CannotBuyOwn,
        ExclusiveLicenceActive, ZeroDuration, DurationTooLong,
    ),  # fmt: skip
    storage=(PARAMS, NEXT_OFFER_ID, OFFERS, OPEN_OFFERS, NEXT_LICENCE_ID, LICENCES, HELD_COUNT, HELD, EXCLUSIVE),
    genesis=build_genesis,
    answers={copyright.OWNER_CHANGED: on_owner_changed},
)
