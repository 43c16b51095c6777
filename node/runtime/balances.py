"""`balances`: IMG balances, the existential deposit, burning and total issuance.

Storage
  balances:total_issuance -> u128: the sum of every account's free + reserved balance.
  (balances themselves live in `system:account:<id>`, next to the nonce, as in Substrate.)

Invariants kept by every function here: sum of balances == total issuance <= 21e9 IMG; an
account below the existential deposit does not exist (its dust is burned when it is reaped).
"""

from __future__ import annotations

from node.codec import U128_MAX
from node.runtime import system
from node.runtime.support import (
    BlockContext,
    DispatchError,
    Origin,
    OriginKind,
    arg_account,
    arg_u128,
    call,
    ensure,
    ensure_root,
    ensure_signed,
    read_u128,
    specs_of,
)

MODULE = "balances"
KEY_TOTAL_ISSUANCE = b"balances:total_issuance"

IMG = 10**18
MAX_SUPPLY = 21_000_000_000 * IMG


def total_issuance(ctx: BlockContext) -> int:
    return read_u128(ctx.state.get, KEY_TOTAL_ISSUANCE)


def _set_total_issuance(ctx: BlockContext, value: int) -> None:
    ensure(0 <= value <= MAX_SUPPLY, MODULE, "IssuanceOverflow")
    ctx.put_u128(KEY_TOTAL_ISSUANCE, value)


def _store(ctx: BlockContext, who: bytes, account: system.Account) -> None:
    """Store `account`, reaping it (and burning its dust) if it fell below the existential deposit."""
    if account.total < ctx.params.existential_deposit and account.reserved == 0 and account.frozen == 0:
        dust = account.free
        if dust:
            _set_total_issuance(ctx, total_issuance(ctx) - dust)
            ctx.emit(MODULE, "DustLost", who, dust)
        system.put_account(ctx, who, system.Account())
        ctx.emit(MODULE, "Reaped", who)
        return
    system.put_account(ctx, who, account)


# ---------------------------------------------------------------------------------------------
# Functions other modules use (fees, rewards, licence payments)
# ---------------------------------------------------------------------------------------------


def withdraw(ctx: BlockContext, who: bytes, amount: int, keep_alive: bool) -> None:
    """Take `amount` from `who`'s usable balance (issuance unchanged: the caller deposits it)."""
    account = system.get_account(ctx, who)
    ensure(account.usable >= amount, MODULE, "InsufficientBalance")
    remaining = account.free - amount
    if keep_alive:
        ensure(remaining >= ctx.params.existential_deposit, MODULE, "KeepAlive")
    account.free = remaining
    _store(ctx, who, account)


def deposit(ctx: BlockContext, who: bytes, amount: int) -> None:
    """Credit `amount` that was withdrawn elsewhere (issuance unchanged)."""
    account = system.get_account(ctx, who)
    ensure(account.free + amount <= U128_MAX, MODULE, "Overflow")
    if account.total == 0:
        ensure(amount >= ctx.params.existential_deposit, MODULE, "ExistentialDeposit")
        ctx.emit(MODULE, "Endowed", who, amount)
    account.free += amount
    system.put_account(ctx, who, account)


def transfer_funds(ctx: BlockContext, source: bytes, dest: bytes, amount: int, keep_alive: bool) -> None:
    ensure(amount > 0, MODULE, "ZeroAmount")
    if source == dest:
        account = system.get_account(ctx, source)
        ensure(account.usable >= amount, MODULE, "InsufficientBalance")
        return
    withdraw(ctx, source, amount, keep_alive)
    deposit(ctx, dest, amount)
    ctx.emit(MODULE, "Transfer", source, dest, amount)


def mint(ctx: BlockContext, who: bytes, amount: int) -> None:
    """Create new IMG (mining rewards); fails rather than exceed the maximum supply."""
    _set_total_issuance(ctx, total_issuance(ctx) + amount)
    deposit(ctx, who, amount)


def burn_from(ctx: BlockContext, who: bytes, amount: int, keep_alive: bool) -> None:
    """Destroy IMG (licence fees, tag fees, burn call): balance and issuance both fall."""
    withdraw(ctx, who, amount, keep_alive)
    _set_total_issuance(ctx, total_issuance(ctx) - amount)
    ctx.emit(MODULE, "Burned", who, amount)


# ---------------------------------------------------------------------------------------------
# Calls
# ---------------------------------------------------------------------------------------------


@call(MODULE, "transfer", arg_account, arg_u128, weight=100_000)
def transfer(ctx: BlockContext, origin: Origin, dest: bytes, amount: int) -> None:
    """Move `amount` to `dest`; the sender may fall below the existential deposit and be reaped."""
    transfer_funds(ctx, ensure_signed(origin), dest, amount, keep_alive=False)


@call(MODULE, "transfer_keep_alive", arg_account, arg_u128, weight=100_000)
def transfer_keep_alive(ctx: BlockContext, origin: Origin, dest: bytes, amount: int) -> None:
    """Like `transfer`, but fails instead of reaping the sender."""
    transfer_funds(ctx, ensure_signed(origin), dest, amount, keep_alive=True)


@call(MODULE, "burn", arg_u128, weight=50_000)
def burn(ctx: BlockContext, origin: Origin, amount: int) -> None:
    ensure(amount > 0, MODULE, "ZeroAmount")
    burn_from(ctx, ensure_signed(origin), amount, keep_alive=False)


@call(MODULE, "force_set_balance", arg_account, arg_u128, weight=50_000, origin=OriginKind.ROOT)
def force_set_balance(ctx: BlockContext, origin: Origin, who: bytes, free: int) -> None:
    """Root only (devnet sudo): set a free balance, adjusting total issuance by the difference."""
    ensure_root(origin)
    account = system.get_account(ctx, who)
    issuance = total_issuance(ctx) - account.free + free
    if issuance > MAX_SUPPLY:
        raise DispatchError(MODULE, "IssuanceOverflow")
    _set_total_issuance(ctx, issuance)
    account.free = free
    _store(ctx, who, account)
    ctx.emit(MODULE, "BalanceSet", who, free)


CALLS = specs_of(transfer, transfer_keep_alive, burn, force_set_balance)
