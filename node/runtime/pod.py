"""`pod`: proof-of-data rewards for novel uploads (PROTOCOL section 11, white paper 3 and 4).

A registration that creates a new image record (`copyright.register` found no registration
within the pHash radius: not a version, not a takeover; announced as
`copyright.NOVEL_REGISTRATION`) earns its uploader one emission reward (`emission.reward`) if
it passes quality screening, which exists to stop farming:

1. size: the claimed long edge >= ``min_long_edge`` and short edge >= ``min_short_edge``
   (orientation-free, so a portrait and a landscape of one camera are treated alike);
2. detail, measured on the on-chain verification rendition (so every validator agrees):
   ``detail = floor(100 * mean |4p - up - down - left - right|)`` over the interior pixels of
   the 256x256 rendition, i.e. the mean absolute Laplacian in 1/100 grey levels. Integer
   arithmetic only. Flat images, gradients and heavily blurred images score low; the watermark
   alone adds about 150, so ``min_detail`` must be set above that (dev: 250; the synthetic
   photos of the tests score 2,000-3,000);
3. a per-account limit of ``daily_limit`` rewards per day, a day being
   ``floor(block timestamp / 86,400,000)``.

A registration that fails screening still registers; it is simply not rewarded, and an
event says why, so an uploader can tell. The reward is minted in its own storage transaction:
if minting is refused (the supply limit) the registration stands and `NotRewarded` reports it.

Params (genesis `pod` section)
  pod:params       -> [min_long_edge, min_short_edge, min_detail, daily_limit]
Storage
  pod:daily:<acct> -> [day, rewards that day]
Events
  Rewarded(who, registration id, amount)
  NotRewarded(who, registration id, reason)  reason: TooSmall | TooLittleDetail | DailyLimit |
                                             EmissionExhausted | NoEmission | MintRefused
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from node.codec import expect_int, expect_list
from node.runtime import copyright, emission, timestamp
from node.runtime.support import (
    BYTES,
    MSGPACK,
    AccountId,
    Balance,
    BlockContext,
    GenesisState,
    Record,
    RuntimeModule,
    StateGet,
    StorageMap,
    StorageValue,
    event,
)

NAME = "pod"
DAY_MS = 86_400_000

# ---------------------------------------------------------------------------------------------
# Params
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class PodParams:
    min_long_edge: int = 1024
    min_short_edge: int = 576
    min_detail: int = 250
    daily_limit: int = 10

    def to_wire(self) -> list[Any]:
        return [self.min_long_edge, self.min_short_edge, self.min_detail, self.daily_limit]

    @classmethod
    def from_wire(cls, obj: Any) -> PodParams:
        return cls(*(expect_int(v, 2**32, "pod param") for v in expect_list(obj, 4, "pod params")))


# ---------------------------------------------------------------------------------------------
# Storage
# ---------------------------------------------------------------------------------------------

PARAMS: StorageValue[PodParams] = StorageValue(b"pod:params", Record(PodParams))
DAILY: StorageMap[Any] = StorageMap(b"pod:daily:", (BYTES,), MSGPACK)
KEY_PARAMS = PARAMS.key


def read_params(get: StateGet) -> PodParams:
    """The genesis values; a chain spec without a `pod` section gets the defaults above."""
    return PARAMS.get(get) or PodParams()


def rewards_on_day(get: StateGet, account_id: bytes, day: int) -> int:
    """How many PoD rewards `account_id` received on `day` (floor(timestamp / DAY_MS))."""
    stored = DAILY.get(get, account_id)
    if stored is None:
        return 0
    stored_day, count = stored
    return count if stored_day == day else 0


# ---------------------------------------------------------------------------------------------
# Screening (pure)
# ---------------------------------------------------------------------------------------------


def detail_of(rendition: bytes) -> int:
    """floor(100 * mean absolute Laplacian) over the interior of a 256x256 rendition (integers)."""
    import numpy as np

    p = np.frombuffer(rendition, dtype=np.uint8).reshape(256, 256).astype(np.int32)
    lap = 4 * p[1:-1, 1:-1] - p[:-2, 1:-1] - p[2:, 1:-1] - p[1:-1, :-2] - p[1:-1, 2:]
    return int(np.abs(lap).sum(dtype=np.int64)) * 100 // lap.size


def screen(params: PodParams, width: int, height: int, rendition: bytes) -> str | None:
    """The reason an upload fails the stateless quality checks, or None if it passes."""
    if max(width, height) < params.min_long_edge or min(width, height) < params.min_short_edge:
        return "TooSmall"
    if detail_of(rendition) < params.min_detail:
        return "TooLittleDetail"
    return None


# ---------------------------------------------------------------------------------------------
# The answer to `copyright.NOVEL_REGISTRATION`
# ---------------------------------------------------------------------------------------------


def on_novel_registration(
    ctx: BlockContext, who: bytes, registration_id: int, width: int, height: int, rendition: bytes
) -> int:
    """Screen a novel upload and pay its reward; returns the amount minted (0 if none)."""
    params = read_params(ctx.state.get)
    reason = screen(params, width, height, rendition)
    day = timestamp.now(ctx) // DAY_MS
    count = rewards_on_day(ctx.state.get, who, day)
    if reason is None and count >= params.daily_limit:
        reason = "DailyLimit"
    if reason is None:
        amount = emission.try_reward(ctx, who)
        if amount is None:
            reason = "MintRefused"
        elif amount == 0:
            reason = "NoEmission" if emission.read_params(ctx.state.get) is None else "EmissionExhausted"
        else:
            DAILY.put(ctx, who, [day, count + 1])
            ctx.deposit_event(Rewarded(who, registration_id, amount))
            return amount
    ctx.deposit_event(NotRewarded(who, registration_id, reason))
    return 0


def build_genesis(genesis: GenesisState) -> None:
    """The `pod` section's screening numbers; a missing field keeps its default."""
    section, default = genesis.section("pod"), PodParams()
    params = PodParams(**{name: int(section.get(name, getattr(default, name))) for name in PodParams.__dataclass_fields__})
    if any(not 0 <= value < 2**32 for value in params.to_wire()):
        raise ValueError("pod params must be u32")
    PARAMS.put(genesis, params)


# ---------------------------------------------------------------------------------------------
# Events
# ---------------------------------------------------------------------------------------------


@event(NAME)
class Rewarded:
    """A novel upload earned its uploader a mining reward."""

    who: AccountId
    registration_id: int
    amount: Balance


@event(NAME)
class NotRewarded:
    """A novel upload earned nothing; `reason` says why (module doc)."""

    who: AccountId
    registration_id: int
    reason: str


MODULE = RuntimeModule(
    NAME,
    events=(Rewarded, NotRewarded),
    storage=(PARAMS, DAILY),
    genesis=build_genesis,
    answers={copyright.NOVEL_REGISTRATION: on_novel_registration},
)
