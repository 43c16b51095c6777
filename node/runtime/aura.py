"""`aura`: the authority set that takes turns authoring slots (PROTOCOL section 6).

Storage
  aura:authorities    -> [ed25519 public key, ...] in authoring order.
  aura:set_id         -> u64, the number of set changes so far (0 at genesis).
  aura:pending_change -> [enact at block number, [key, ...]] while a change is scheduled.

The client reads the set from the parent state to check a header's seal: the author of slot s
is `authorities[s % len(authorities)]`. Fees go to that author's account (its public key).

Set changes (PROTOCOL section 6) are scheduled by root (`schedule_change`, sudo on a devnet) and
take effect at a later block N, in N's `on_initialize`: N itself is still authored and finalized
by the old set (its parent's state names the set), blocks after it by the new one, and the
finality gadget switches voter sets once N is final. Clients read the set from state (there are
no light clients yet, so the change is not repeated in a header digest).
"""

from __future__ import annotations

from typing import Any

from node.codec import DecodeError, decode, encode, expect_bytes, expect_int, expect_list
from node.runtime.support import (
    BlockContext,
    Origin,
    OriginKind,
    arg_u32,
    call,
    ensure,
    ensure_root,
    specs_of,
)

MODULE = "aura"
KEY_AUTHORITIES = b"aura:authorities"
KEY_SET_ID = b"aura:set_id"
KEY_PENDING_CHANGE = b"aura:pending_change"
MAX_AUTHORITIES = 100


def read_authorities(get: Any) -> list[bytes]:
    raw = get(KEY_AUTHORITIES)
    if raw is None:
        return []
    return [expect_bytes(key, 32, what="authority") for key in expect_list(decode(raw), what="authorities")]


def encode_authorities(authorities: list[bytes]) -> bytes:
    return encode(list(authorities))


def author_of_slot(authorities: list[bytes], slot: int) -> bytes:
    return authorities[slot % len(authorities)]


def read_set_id(get: Any) -> int:
    raw = get(KEY_SET_ID)
    return 0 if raw is None else int.from_bytes(raw, "big")


def arg_authorities(value: Any) -> list[bytes]:
    keys = [expect_bytes(key, 32, what="authority") for key in expect_list(value, what="authorities")]
    if not 0 < len(keys) <= MAX_AUTHORITIES:
        raise DecodeError(f"an authority set has 1 to {MAX_AUTHORITIES} members")
    if len(set(keys)) != len(keys):
        raise DecodeError("an authority appears twice")
    return keys


def on_initialize(ctx: BlockContext) -> bool:
    """Enact a scheduled change at its block; True when a new set starts here."""
    raw = ctx.state.get(KEY_PENDING_CHANGE)
    if raw is None:
        return False
    at, keys = expect_list(decode(raw), 2, "pending change")
    if expect_int(at) != ctx.number:
        return False
    ctx.state.set(KEY_AUTHORITIES, encode_authorities(arg_authorities(keys)))
    set_id = read_set_id(ctx.state.get) + 1
    ctx.state.set(KEY_SET_ID, set_id.to_bytes(8, "big"))
    ctx.state.delete(KEY_PENDING_CHANGE)
    ctx.emit(MODULE, "NewAuthorities", set_id)
    return True


@call(MODULE, "schedule_change", arg_authorities, arg_u32, weight=100_000, origin=OriginKind.ROOT)
def schedule_change(ctx: BlockContext, origin: Origin, authorities: list[bytes], delay: int) -> None:
    """Root: the set becomes `authorities` at block `number + delay` (delay >= 1)."""
    ensure_root(origin)
    ensure(delay >= 1, MODULE, "DelayTooShort")
    ensure(ctx.state.get(KEY_PENDING_CHANGE) is None, MODULE, "ChangePending")
    ctx.state.set(KEY_PENDING_CHANGE, encode([ctx.number + delay, list(authorities)]))
    ctx.emit(MODULE, "ChangeScheduled", ctx.number + delay)


CALLS = specs_of(schedule_change)
