"""`pod`: proof-of-data rewards for novel uploads (PROTOCOL section 11, white paper 3 and 4).

A registration that creates a new image record (`copyright.register` found no registration
within the pHash radius: not a version, not a takeover) earns its uploader one emission reward
(`emission.reward`) if it passes quality screening, which exists to stop farming:

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

from node.codec import decode, expect_int, expect_list
from node.runtime import emission, timestamp
from node.runtime.support import BlockContext, CallSpec, DispatchError

MODULE = "pod"
DAY_MS = 86_400_000

# ---------------------------------------------------------------------------------------------
# Params
# ---------------------------------------------------------------------------------------------

KEY_PARAMS = b"pod:params"


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


def read_params(get: Any) -> PodParams:
    """The genesis values; a chain spec without a `pod` section gets the defaults above."""
    raw = get(KEY_PARAMS)
    return PodParams() if raw is None else PodParams.from_wire(decode(raw))


# ---------------------------------------------------------------------------------------------
# Storage
# ---------------------------------------------------------------------------------------------


def daily_key(account_id: bytes) -> bytes:
    return b"pod:daily:" + account_id


def rewards_on_day(get: Any, account_id: bytes, day: int) -> int:
    """How many PoD rewards `account_id` received on `day` (floor(timestamp / DAY_MS))."""
    raw = get(daily_key(account_id))
    if raw is None:
        return 0
    stored_day, count = decode(raw)
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
# The hook `copyright.register` calls for a novel registration
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
        ctx.state.begin()
        try:
            amount = emission.reward(ctx, who)
        except DispatchError:
            ctx.state.rollback()
            reason = "MintRefused"
        else:
            ctx.state.commit()
            if amount == 0:
                reason = "NoEmission" if emission.read_params(ctx.state.get) is None else "EmissionExhausted"
            else:
                ctx.put_obj(daily_key(who), [day, count + 1])
                ctx.emit(MODULE, "Rewarded", who, registration_id, amount)
                return amount
    ctx.emit(MODULE, "NotRewarded", who, registration_id, reason)
    return 0


CALLS: list[CallSpec] = []
