"""`vesting`: balances locked until block timestamps pass (PROTOCOL section 9).

An account with a schedule has `frozen` equal to the amounts whose time has not come. Like
Substrate's vesting pallet, the lock is brought up to date by the `vest` call (anyone may call
`vest_other`), which reads only the block timestamp, never a clock.

Genesis (`allocations[].vesting`: {cliff_months, cliff_percent, monthly_percent}; a month is
30 days of block timestamps, counted from `genesis_time_ms`)
Storage
  vesting:schedule:<id> -> [[unlock_at_ms, amount(u128)], ...] sorted by time
Calls
  vest()                 the caller's own schedule
  vest_other(target)     anyone's
Events
  VestingUpdated(who, locked), VestingCompleted(who)
Errors
  NotVesting
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from node.codec import expect_int, expect_list, u128_from_bytes, u128_to_bytes
from node.runtime import system, timestamp
from node.runtime.support import (
    BYTES,
    MSGPACK,
    AccountId,
    Balance,
    BlockContext,
    DispatchError,
    GenesisState,
    Origin,
    RuntimeModule,
    StateGet,
    StorageMap,
    arg_account,
    call,
    ensure,
    ensure_signed,
    error,
    event,
    resolve_account,
)
from node.units import parse_img

NAME = "vesting"
MONTH_MS = 30 * 24 * 3600 * 1000


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


SCHEDULES: StorageMap[Any] = StorageMap(b"vesting:schedule:", (BYTES,), MSGPACK)


def schedule_key(account_id: bytes) -> bytes:
    return SCHEDULES.key(account_id)


def schedule_of(get: StateGet, account_id: bytes) -> list[Tranche]:
    """An account's unlock schedule (empty when it has none)."""
    raw = SCHEDULES.get(get, account_id)
    return [] if raw is None else decode_schedule(raw)


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
    ensure(SCHEDULES.exists(ctx, who), NotVesting)
    locked = locked_at(schedule_of(ctx.state.get, who), timestamp.now(ctx))
    account = system.get_account(ctx, who)
    account.frozen = locked
    system.put_account(ctx, who, account)
    if locked == 0:
        SCHEDULES.delete(ctx, who)
        ctx.deposit_event(VestingCompleted(who))
    else:
        ctx.deposit_event(VestingUpdated(who, locked))


def build_genesis(genesis: GenesisState) -> None:
    """Freeze each vesting allocation and store its monthly schedule."""
    for allocation in genesis.spec["allocations"]:
        terms = allocation.get("vesting")
        if not terms:
            continue
        who, amount = resolve_account(allocation["account"]), parse_img(allocation["amount"])
        tranches = monthly_schedule(
            amount,
            int(genesis.spec["genesis_time_ms"]),
            int(terms["cliff_months"]),
            int(terms["cliff_percent"]),
            int(terms.get("monthly_percent", 0)),
        )
        account = system.read_account(genesis.get, who)
        account.frozen += amount
        system.put_account(genesis, who, account)
        SCHEDULES.put(genesis, who, encode_schedule(tranches))


@call(NAME, "vest", weight=50_000)
def vest(ctx: BlockContext, origin: Origin) -> None:
    """Release whatever the block timestamp has unlocked for the caller."""
    _vest(ctx, ensure_signed(origin))


@call(NAME, "vest_other", arg_account, weight=50_000)
def vest_other(ctx: BlockContext, origin: Origin, target: bytes) -> None:
    ensure_signed(origin)
    _vest(ctx, target)


@event(NAME)
class VestingUpdated:
    """`who`'s lock now holds `locked` (what has not unlocked yet)."""

    who: AccountId
    locked: Balance


@event(NAME)
class VestingCompleted:
    """Everything of `who`'s schedule has unlocked."""

    who: AccountId


@error(NAME)
class NotVesting(DispatchError):
    """The account has no vesting schedule."""


MODULE = RuntimeModule(
    NAME,
    calls=(vest, vest_other),
    events=(VestingUpdated, VestingCompleted),
    errors=(NotVesting,),
    storage=(SCHEDULES,),
    genesis=build_genesis,
)
