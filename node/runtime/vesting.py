"""`vesting`: balances locked until block timestamps pass (PROTOCOL section 9).

Storage
  vesting:schedule:<id> -> [[unlock_at_ms, amount(u128)], ...] sorted by time.

An account with a schedule has `frozen` equal to the amounts whose time has not come. Like
Substrate's vesting pallet, the lock is brought up to date by the `vest` call (anyone may call
`vest_other`), which reads only the block timestamp, never a clock.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from node.codec import expect_int, expect_list, u128_from_bytes, u128_to_bytes
from node.runtime import system, timestamp
from node.runtime.support import BlockContext, Origin, arg_account, call, ensure, ensure_signed, specs_of

MODULE = "vesting"
MONTH_MS = 30 * 24 * 3600 * 1000


def schedule_key(account_id: bytes) -> bytes:
    return b"vesting:schedule:" + account_id


@dataclass(frozen=True)
class Tranche:
    unlock_at_ms: int
    amount: int


def encode_schedule(tranches: list[Tranche]) -> list[Any]:
    return [[t.unlock_at_ms, u128_to_bytes(t.amount)] for t in tranches]


def decode_schedule(obj: Any) -> list[Tranche]:
    tranches = []
    for item in expect_list(obj, what="vesting schedule"):
        at, amount = expect_list(item, 2, "tranche")
        tranches.append(Tranche(expect_int(at), u128_from_bytes(amount)))
    return tranches


def monthly_schedule(
    total: int, start_ms: int, cliff_months: int, cliff_percent: int, monthly_percent: int
) -> list[Tranche]:
    """`cliff_percent` unlocks `cliff_months` after `start_ms`, then `monthly_percent` each month.

    Integer arithmetic: each tranche is total * percent // 100, the last one takes the remainder.
    """
    assert 0 < cliff_percent <= 100 and (cliff_percent == 100 or monthly_percent > 0)
    tranches = []
    unlocked_percent = cliff_percent
    tranches.append(Tranche(start_ms + cliff_months * MONTH_MS, total * cliff_percent // 100))
    month = cliff_months
    while unlocked_percent < 100:
        month += 1
        step = min(monthly_percent, 100 - unlocked_percent)
        unlocked_percent += step
        tranches.append(Tranche(start_ms + month * MONTH_MS, total * step // 100))
    remainder = total - sum(t.amount for t in tranches)
    last = tranches[-1]
    tranches[-1] = Tranche(last.unlock_at_ms, last.amount + remainder)
    return tranches


def locked_at(tranches: list[Tranche], now_ms: int) -> int:
    return sum(t.amount for t in tranches if t.unlock_at_ms > now_ms)


def _vest(ctx: BlockContext, who: bytes) -> None:
    obj = ctx.get_obj(schedule_key(who))
    ensure(obj is not None, MODULE, "NotVesting")
    tranches = decode_schedule(obj)
    locked = locked_at(tranches, timestamp.now(ctx))
    account = system.get_account(ctx, who)
    account.frozen = locked
    system.put_account(ctx, who, account)
    if locked == 0:
        ctx.state.delete(schedule_key(who))
        ctx.emit(MODULE, "VestingCompleted", who)
    else:
        ctx.emit(MODULE, "VestingUpdated", who, locked)


@call(MODULE, "vest", weight=50_000)
def vest(ctx: BlockContext, origin: Origin) -> None:
    """Release whatever the block timestamp has unlocked for the caller."""
    _vest(ctx, ensure_signed(origin))


@call(MODULE, "vest_other", arg_account, weight=50_000)
def vest_other(ctx: BlockContext, origin: Origin, target: bytes) -> None:
    ensure_signed(origin)
    _vest(ctx, target)


CALLS = specs_of(vest, vest_other)
