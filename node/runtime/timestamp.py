"""`timestamp`: the block's time, set by the mandatory first inherent.

Storage
  timestamp:now -> u64 milliseconds since the Unix epoch.

The author puts `timestamp.set(now)` first in every block; `now` must be the start of the
block's Aura slot (slot * slot_ms), so time is a pure function of the header and never read
from a clock inside the runtime.
"""

from __future__ import annotations

from node.runtime.support import (
    BlockContext,
    Origin,
    OriginKind,
    arg_u64,
    call,
    ensure,
    ensure_none,
    specs_of,
)

MODULE = "timestamp"
KEY_NOW = b"timestamp:now"
KEY_DID_UPDATE = b"timestamp:did_update"


def now(ctx: BlockContext) -> int:
    return ctx.get_int(KEY_NOW)


def on_finalize(ctx: BlockContext) -> None:
    ensure(ctx.state.get(KEY_DID_UPDATE) is not None, MODULE, "TimestampMissing")
    ctx.state.delete(KEY_DID_UPDATE)


@call(MODULE, "set", arg_u64, weight=10_000, origin=OriginKind.NONE)
def set_now(ctx: BlockContext, origin: Origin, moment: int) -> None:
    ensure_none(origin)
    ensure(ctx.state.get(KEY_DID_UPDATE) is None, MODULE, "AlreadyUpdated")
    ensure(moment == ctx.slot * ctx.params.slot_ms, MODULE, "NotSlotStart")
    ensure(moment > now(ctx) or ctx.number == 0, MODULE, "TimeWentBackwards")
    ctx.state.set(KEY_NOW, moment.to_bytes(8, "big"))
    ctx.state.set(KEY_DID_UPDATE, b"\x01")
    ctx.timestamp = moment


CALLS = specs_of(set_now)
