"""`sudo`: one key that may dispatch root calls (devnets only).

Storage
  sudo:key -> the account id allowed to call `sudo.sudo`.
"""

from __future__ import annotations

from node.runtime.support import (
    ROOT,
    BlockContext,
    DispatchError,
    Origin,
    arg_account,
    arg_call,
    call,
    ensure,
    ensure_signed,
    specs_of,
)
from node.types import Call

MODULE = "sudo"
KEY_SUDO = b"sudo:key"


@call(MODULE, "sudo", arg_call, weight=20_000)
def sudo(ctx: BlockContext, origin: Origin, inner: Call) -> None:
    """Dispatch `inner` as root. The inner call's failure is reported as an event, not an error."""
    who = ensure_signed(origin)
    ensure(ctx.state.get(KEY_SUDO) == who, MODULE, "RequireSudo")
    assert ctx.dispatch is not None
    try:
        ctx.dispatch(inner, ROOT)
        ctx.emit(MODULE, "Sudid", b"ok")
    except DispatchError as error:
        ctx.emit(MODULE, "Sudid", f"{error.module}.{error.error}".encode())


@call(MODULE, "set_key", arg_account, weight=20_000)
def set_key(ctx: BlockContext, origin: Origin, new: bytes) -> None:
    who = ensure_signed(origin)
    ensure(ctx.state.get(KEY_SUDO) == who, MODULE, "RequireSudo")
    ctx.state.set(KEY_SUDO, new)
    ctx.emit(MODULE, "KeyChanged", new)


CALLS = specs_of(sudo, set_key)
