"""`aura`: the authority set that takes turns authoring slots (PROTOCOL section 6).

The client reads the set from the parent state to check a header's seal: the author of slot s
is `authorities[s % len(authorities)]` (`node.primitives.aura`). Fees go to that author's
account (its public key).

Set changes (PROTOCOL section 6) are scheduled by root (`schedule_change`, sudo on a devnet) and
take effect at a later block N, in N's `on_initialize`: N itself is still authored and finalized
by the old set (its parent's state names the set), blocks after it by the new one, and the
finality gadget switches voter sets once N is final. Clients read the set from state (there are
no light clients yet, so the change is not repeated in a header digest). A new set is announced
(`NEW_AUTHORITY_SET`) so other modules can start it afresh (`offences` re-enables everyone).

At the start of every block, before anything changes, aura names the block's author
(`ctx.author`, who is paid the fees) and announces it (`BLOCK_AUTHOR`): a module that refuses
that author (`offences`: a disabled equivocator) fails the hook, which makes the block invalid.

Storage
  aura:authorities    -> [ed25519 public key, ...] in authoring order
  aura:set_id         -> u64, the number of set changes so far (0 at genesis)
  aura:set_start_slot -> u64, the first slot the current set authors (0 at genesis)
  aura:pending_change -> [enact at block number, [key, ...]] while a change is scheduled
Calls
  schedule_change(authorities, delay)   root
Events
  NewAuthorities(set_id), ChangeScheduled(at)
Errors
  DelayTooShort, ChangePending, NoAuthorities
"""

from __future__ import annotations

from typing import Any

from node.codec import DecodeError, decode, encode, expect_bytes, expect_int, expect_list
from node.primitives.aura import author_of_slot
from node.runtime.support import (
    MSGPACK,
    U64,
    BlockContext,
    DispatchError,
    GenesisState,
    Notification,
    Origin,
    OriginKind,
    RuntimeModule,
    StateGet,
    StorageValue,
    arg_u32,
    call,
    ensure,
    ensure_root,
    error,
    event,
    resolve_authority,
)

NAME = "aura"
MAX_AUTHORITIES = 100

# Announced in the block where a scheduled set takes over: `()`.
NEW_AUTHORITY_SET = Notification("aura.new_authority_set")
# Announced at the start of every block: `(author)`. A handler may refuse the author.
BLOCK_AUTHOR = Notification("aura.block_author")

AUTHORITIES: StorageValue[Any] = StorageValue(b"aura:authorities", MSGPACK)
SET_ID: StorageValue[int] = StorageValue(b"aura:set_id", U64, 0)
SET_START_SLOT: StorageValue[int] = StorageValue(b"aura:set_start_slot", U64, 0)
PENDING_CHANGE: StorageValue[Any] = StorageValue(b"aura:pending_change", MSGPACK)
KEY_AUTHORITIES = AUTHORITIES.key


def read_authorities(get: StateGet) -> list[bytes]:
    raw = get(KEY_AUTHORITIES)
    if raw is None:
        return []
    return [expect_bytes(key, 32, what="authority") for key in expect_list(decode(raw), what="authorities")]


def encode_authorities(authorities: list[bytes]) -> bytes:
    return encode(list(authorities))


def read_set_id(get: StateGet) -> int:
    return SET_ID.value(get)


def read_set_start_slot(get: StateGet) -> int:
    return SET_START_SLOT.value(get)


def arg_authorities(value: Any) -> list[bytes]:
    keys = [expect_bytes(key, 32, what="authority") for key in expect_list(value, what="authorities")]
    if not 0 < len(keys) <= MAX_AUTHORITIES:
        raise DecodeError(f"an authority set has 1 to {MAX_AUTHORITIES} members")
    if len(set(keys)) != len(keys):
        raise DecodeError("an authority appears twice")
    return keys


def on_initialize(ctx: BlockContext) -> None:
    """Name the slot's author from the parent's set, then enact a change scheduled for this block."""
    authorities = read_authorities(ctx.state.get)
    ensure(bool(authorities), NoAuthorities)
    ctx.author = author_of_slot(authorities, ctx.slot)
    ctx.notify(BLOCK_AUTHOR, ctx.author)
    pending = PENDING_CHANGE.get(ctx)
    if pending is None:
        return
    at, keys = expect_list(pending, 2, "pending change")
    if expect_int(at) != ctx.number:
        return
    AUTHORITIES.put(ctx, arg_authorities(keys))
    set_id = read_set_id(ctx.state.get) + 1
    SET_ID.put(ctx, set_id)
    SET_START_SLOT.put(ctx, ctx.slot + 1)  # this block is still the old set's
    PENDING_CHANGE.delete(ctx)
    ctx.deposit_event(NewAuthorities(set_id))
    ctx.notify(NEW_AUTHORITY_SET)


def build_genesis(genesis: GenesisState) -> None:
    authorities = [resolve_authority(text) for text in genesis.spec["authorities"]]
    if not authorities:
        raise ValueError("no authorities")
    AUTHORITIES.put(genesis, authorities)


@call(NAME, "schedule_change", arg_authorities, arg_u32, weight=100_000, origin=OriginKind.ROOT)
def schedule_change(ctx: BlockContext, origin: Origin, authorities: list[bytes], delay: int) -> None:
    """Root: the set becomes `authorities` at block `number + delay` (delay >= 1)."""
    ensure_root(origin)
    ensure(delay >= 1, DelayTooShort)
    ensure(not PENDING_CHANGE.exists(ctx), ChangePending)
    PENDING_CHANGE.put(ctx, [ctx.number + delay, list(authorities)])
    ctx.deposit_event(ChangeScheduled(ctx.number + delay))


@event(NAME)
class NewAuthorities:
    """A scheduled authority set took over; `set_id` counts the changes."""

    set_id: int


@event(NAME)
class ChangeScheduled:
    """The authority set changes at block `at`."""

    at: int


@error(NAME)
class DelayTooShort(DispatchError):
    """A change must take effect at a later block (delay >= 1)."""


@error(NAME)
class ChangePending(DispatchError):
    """A change is already scheduled."""


@error(NAME)
class NoAuthorities(DispatchError):
    """The state names no authority set."""


MODULE = RuntimeModule(
    NAME,
    calls=(schedule_change,),
    events=(NewAuthorities, ChangeScheduled),
    errors=(DelayTooShort, ChangePending, NoAuthorities),
    storage=(AUTHORITIES, SET_ID, SET_START_SLOT, PENDING_CHANGE),
    genesis=build_genesis,
    on_initialize=on_initialize,
)
