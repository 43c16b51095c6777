"""`balances`: IMG balances, the existential deposit, fees, burning and total issuance.

Balances live in `system:account:<id>` next to the nonce, as in Substrate; this module owns
every change to them. Invariants kept by every function here: sum of balances == total issuance
<= 21e9 IMG; an account below the existential deposit does not exist (its dust is burned when
it is reaped).

Fees (PROTOCOL section 4): the executive charges each signed extrinsic with `withdraw_fee`
before dispatch, and `on_finalize` pays the block's fees to its author (or burns them when the
author's account cannot receive them).

Genesis (`allocations`: [{name, account, amount}], amounts in IMG)
Storage
  balances:total_issuance -> u128, the sum of every account's free + reserved balance
Calls
  transfer(dest, amount)              may reap the sender
  transfer_keep_alive(dest, amount)   fails instead of reaping the sender
  burn(amount)
  force_set_balance(who, free)        root
Events
  Transfer(source, dest, amount), Endowed(who, amount), Reaped(who), DustLost(who, amount),
  Burned(who, amount), BalanceSet(who, free), Reserved(who, amount), Unreserved(who, amount),
  FeesPaid(author, amount), FeesBurned(amount)
Errors
  InsufficientBalance, KeepAlive, ExistentialDeposit, ZeroAmount, Overflow, IssuanceOverflow
"""

from __future__ import annotations

from node.codec import U128_MAX
from node.runtime import system
from node.runtime.support import (
    U128,
    AccountId,
    Balance,
    BlockContext,
    DispatchError,
    GenesisState,
    Origin,
    OriginKind,
    RuntimeModule,
    StateGet,
    StorageValue,
    arg_account,
    arg_u128,
    call,
    ensure,
    ensure_root,
    ensure_signed,
    error,
    event,
    resolve_account,
)
from node.units import parse_img

NAME = "balances"

IMG = 10**18
MAX_SUPPLY = 21_000_000_000 * IMG

TOTAL_ISSUANCE: StorageValue[int] = StorageValue(b"balances:total_issuance", U128, 0)
KEY_TOTAL_ISSUANCE = TOTAL_ISSUANCE.key


def total_issuance(state: BlockContext | StateGet) -> int:
    return TOTAL_ISSUANCE.value(state)


def _set_total_issuance(ctx: BlockContext, value: int) -> None:
    ensure(0 <= value <= MAX_SUPPLY, IssuanceOverflow)
    TOTAL_ISSUANCE.put(ctx, value)


def _store(ctx: BlockContext, who: bytes, account: system.Account) -> None:
    """Store `account`, reaping it (and burning its dust) if it fell below the existential deposit."""
    if account.total < ctx.params.existential_deposit and account.reserved == 0 and account.frozen == 0:
        dust = account.free
        if dust:
            _set_total_issuance(ctx, total_issuance(ctx) - dust)
            ctx.deposit_event(DustLost(who, dust))
        system.put_account(ctx, who, system.Account(nonce=account.nonce))  # the nonce is remembered
        ctx.deposit_event(Reaped(who))
        return
    system.put_account(ctx, who, account)


# ---------------------------------------------------------------------------------------------
# Functions other modules use (fees, rewards, licence payments, slashing)
# ---------------------------------------------------------------------------------------------


def withdraw(ctx: BlockContext, who: bytes, amount: int, keep_alive: bool) -> None:
    """Take `amount` from `who`'s usable balance (issuance unchanged: the caller deposits it)."""
    account = system.get_account(ctx, who)
    ensure(account.usable >= amount, InsufficientBalance)
    remaining = account.free - amount
    if keep_alive:
        ensure(remaining >= ctx.params.existential_deposit, KeepAlive)
    account.free = remaining
    _store(ctx, who, account)


def deposit(ctx: BlockContext, who: bytes, amount: int) -> None:
    """Credit `amount` that was withdrawn elsewhere (issuance unchanged)."""
    account = system.get_account(ctx, who)
    ensure(account.free + amount <= U128_MAX, Overflow)
    if account.total == 0:
        ensure(amount >= ctx.params.existential_deposit, ExistentialDeposit)
        ctx.deposit_event(Endowed(who, amount))
    account.free += amount
    system.put_account(ctx, who, account)


def transfer_funds(ctx: BlockContext, source: bytes, dest: bytes, amount: int, keep_alive: bool) -> None:
    ensure(amount > 0, ZeroAmount)
    if source == dest:
        account = system.get_account(ctx, source)
        ensure(account.usable >= amount, InsufficientBalance)
        return
    withdraw(ctx, source, amount, keep_alive)
    deposit(ctx, dest, amount)
    ctx.deposit_event(Transfer(source, dest, amount))


def mint(ctx: BlockContext, who: bytes, amount: int) -> None:
    """Create new IMG (mining rewards); fails rather than exceed the maximum supply."""
    _set_total_issuance(ctx, total_issuance(ctx) + amount)
    deposit(ctx, who, amount)


def burn_from(ctx: BlockContext, who: bytes, amount: int, keep_alive: bool) -> None:
    """Destroy IMG (licence fees, tag fees, burn call): balance and issuance both fall."""
    withdraw(ctx, who, amount, keep_alive)
    _set_total_issuance(ctx, total_issuance(ctx) - amount)
    ctx.deposit_event(Burned(who, amount))


def reserve(ctx: BlockContext, who: bytes, amount: int) -> None:
    """Set `amount` of `who`'s usable balance aside (a bond): it stays theirs but cannot move."""
    account = system.get_account(ctx, who)
    ensure(account.usable >= amount, InsufficientBalance)
    account.free -= amount
    account.reserved += amount
    system.put_account(ctx, who, account)
    ctx.deposit_event(Reserved(who, amount))


def unreserve(ctx: BlockContext, who: bytes, amount: int) -> int:
    """Return up to `amount` of a bond to the free balance; returns what was returned."""
    account = system.get_account(ctx, who)
    returned = min(amount, account.reserved)
    if returned:
        account.reserved -= returned
        account.free += returned
        system.put_account(ctx, who, account)
        ctx.deposit_event(Unreserved(who, returned))
    return returned


def slash_reserved(ctx: BlockContext, who: bytes, amount: int) -> int:
    """Burn up to `amount` of `who`'s reserved balance (a bond); returns what was slashed."""
    account = system.get_account(ctx, who)
    slashed = min(amount, account.reserved)
    if slashed:
        account.reserved -= slashed
        system.put_account(ctx, who, account)
        TOTAL_ISSUANCE.put(ctx, total_issuance(ctx) - slashed)
    return slashed


def withdraw_fee(ctx: BlockContext, who: bytes, account: system.Account, fee: int) -> None:
    """Charge an extrinsic's fee to `account` (already checked affordable, nonce already bumped),
    store the account and hold the fee for the block's author until `on_finalize`."""
    account.free -= fee
    system.put_account(ctx, who, account)
    ctx.fees_collected += fee


def on_finalize(ctx: BlockContext) -> None:
    """Pay the block's fees to its author, or burn them if its account cannot receive them."""
    if not ctx.fees_collected:
        return
    try:
        deposit(ctx, ctx.author, ctx.fees_collected)
        ctx.deposit_event(FeesPaid(ctx.author, ctx.fees_collected))
    except DispatchError:  # the author's account cannot receive it (below the existential deposit)
        TOTAL_ISSUANCE.put(ctx, total_issuance(ctx) - ctx.fees_collected)
        ctx.deposit_event(FeesBurned(ctx.fees_collected))


def build_genesis(genesis: GenesisState) -> None:
    """Endow every allocation; total issuance is their sum."""
    issuance = 0
    for allocation in genesis.spec["allocations"]:
        who = resolve_account(allocation["account"])
        amount = parse_img(allocation["amount"])
        account = system.read_account(genesis.get, who)
        account.free += amount
        system.put_account(genesis, who, account)
        issuance += amount
    if issuance > MAX_SUPPLY:
        raise ValueError(f"allocations exceed the maximum supply ({issuance})")
    TOTAL_ISSUANCE.put(genesis, issuance)


# ---------------------------------------------------------------------------------------------
# Calls
# ---------------------------------------------------------------------------------------------


@call(NAME, "transfer", arg_account, arg_u128, weight=100_000)
def transfer(ctx: BlockContext, origin: Origin, dest: bytes, amount: int) -> None:
    """Move `amount` to `dest`; the sender may fall below the existential deposit and be reaped."""
    transfer_funds(ctx, ensure_signed(origin), dest, amount, keep_alive=False)


@call(NAME, "transfer_keep_alive", arg_account, arg_u128, weight=100_000)
def transfer_keep_alive(ctx: BlockContext, origin: Origin, dest: bytes, amount: int) -> None:
    """Like `transfer`, but fails instead of reaping the sender."""
    transfer_funds(ctx, ensure_signed(origin), dest, amount, keep_alive=True)


@call(NAME, "burn", arg_u128, weight=50_000)
def burn(ctx: BlockContext, origin: Origin, amount: int) -> None:
    ensure(amount > 0, ZeroAmount)
    burn_from(ctx, ensure_signed(origin), amount, keep_alive=False)


@call(NAME, "force_set_balance", arg_account, arg_u128, weight=50_000, origin=OriginKind.ROOT)
def force_set_balance(ctx: BlockContext, origin: Origin, who: bytes, free: int) -> None:
    """Root only (devnet sudo): set a free balance, adjusting total issuance by the difference."""
    ensure_root(origin)
    account = system.get_account(ctx, who)
    _set_total_issuance(ctx, total_issuance(ctx) - account.free + free)
    account.free = free
    _store(ctx, who, account)
    ctx.deposit_event(BalanceSet(who, free))


# ---------------------------------------------------------------------------------------------
# Events
# ---------------------------------------------------------------------------------------------


@event(NAME)
class Transfer:
    source: AccountId
    dest: AccountId
    amount: Balance


@event(NAME)
class Endowed:
    """A new account came into existence with `amount`."""

    who: AccountId
    amount: Balance


@event(NAME)
class Reaped:
    """An account fell below the existential deposit and was removed (nonce included)."""

    who: AccountId


@event(NAME)
class DustLost:
    """What a reaped account still held, burned."""

    who: AccountId
    amount: Balance


@event(NAME)
class Burned:
    who: AccountId
    amount: Balance


@event(NAME)
class BalanceSet:
    who: AccountId
    free: Balance


@event(NAME)
class Reserved:
    """`amount` was set aside as a bond."""

    who: AccountId
    amount: Balance


@event(NAME)
class Unreserved:
    who: AccountId
    amount: Balance


@event(NAME)
class FeesPaid:
    """The block's fees went to its author."""

    author: AccountId
    amount: Balance


@event(NAME)
class FeesBurned:
    """The block's fees were burned: its author's account could not receive them."""

    amount: Balance


# ---------------------------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------------------------


@error(NAME)
class InsufficientBalance(DispatchError):
    """The usable (unfrozen) balance is too low."""


@error(NAME)
class KeepAlive(DispatchError):
    """The payment would take the account below the existential deposit."""


@error(NAME)
class ExistentialDeposit(DispatchError):
    """A new account must receive at least the existential deposit."""


@error(NAME)
class ZeroAmount(DispatchError):
    """An amount of zero."""


@error(NAME)
class Overflow(DispatchError):
    """The balance would exceed u128."""


@error(NAME)
class IssuanceOverflow(DispatchError):
    """Total issuance would exceed the maximum supply (21 billion IMG) or fall below zero."""


MODULE = RuntimeModule(
    NAME,
    calls=(transfer, transfer_keep_alive, burn, force_set_balance),
    events=(Transfer, Endowed, Reaped, DustLost, Burned, BalanceSet, Reserved, Unreserved, FeesPaid, FeesBurned),
    errors=(InsufficientBalance, KeepAlive, ExistentialDeposit, ZeroAmount, Overflow, IssuanceOverflow),
    storage=(TOTAL_ISSUANCE,),
    genesis=build_genesis,
    on_finalize=on_finalize,
)
