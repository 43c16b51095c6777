"""`timestamp`: the block's time, set by the mandatory first inherent.

The author puts `timestamp.set(now)` first in every block; `now` must be the start of the
block's Aura slot (slot * slot_ms), so time is a pure function of the header and never read
from a clock inside the runtime.

Storage
  timestamp:now        -> u64 milliseconds since the Unix epoch
  timestamp:did_update -> present while the current block has set the time
Calls
  set(now)             inherent, first in every block
Errors
  AlreadyUpdated, NotSlotStart, TimeWentBackwards, TimestampMissing
"""

from __future__ import annotations

from node.runtime.support import (
    BYTES,
    U64,
    BlockContext,
    DispatchError,
    Origin,
    OriginKind,
    RuntimeModule,
    StateGet,
    StorageValue,
    arg_u64,
    call,
    ensure,
    ensure_none,
    error,
)

NAME = "timestamp"

NOW: StorageValue[int] = StorageValue(b"timestamp:now", U64, 0)
DID_UPDATE: StorageValue[bytes] = StorageValue(b"timestamp:did_update", BYTES)
KEY_NOW = NOW.key


def now(ctx: BlockContext) -> int:
    return read_now(ctx.state.get)


def read_now(get: StateGet) -> int:
    """The timestamp of the block whose state `get` reads (ms)."""
    return NOW.value(get)


def on_finalize(ctx: BlockContext) -> None:
    ensure(DID_UPDATE.exists(ctx), TimestampMissing)
    DID_UPDATE.delete(ctx)


@call(NAME, "set", arg_u64, weight=10_000, origin=OriginKind.NONE, inherent=True)
def set_now(ctx: BlockContext, origin: Origin, moment: int) -> None:
    ensure_none(origin)
    ensure(not DID_UPDATE.exists(ctx), AlreadyUpdated)
    ensure(moment == ctx.slot * ctx.params.slot_ms, NotSlotStart)
    ensure(moment > now(ctx) or ctx.number == 0, TimeWentBackwards)
    NOW.put(ctx, moment)
    DID_UPDATE.put(ctx, b"\x01")
    ctx.timestamp = moment


@error(NAME)
class AlreadyUpdated(DispatchError):
    """A second `timestamp.set` in one block."""


@error(NAME)
class NotSlotStart(DispatchError):
    """The time is not the start of the block's slot."""


@error(NAME)
class TimeWentBackwards(DispatchError):
    """The time is not after the parent block's."""


@error(NAME)
class TimestampMissing(DispatchError):
    """The block ended without `timestamp.set`."""


MODULE = RuntimeModule(
    NAME,
    calls=(set_now,),
    errors=(AlreadyUpdated, NotSlotStart, TimeWentBackwards, TimestampMissing),
    storage=(NOW, DID_UPDATE),
    on_finalize=on_finalize,
)
