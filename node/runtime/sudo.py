"""`sudo`: one key that may dispatch root calls (devnets only).

Genesis (`sudo`: an account, optional)
Storage
  sudo:key -> the account id allowed to call `sudo.sudo`
Calls
  sudo(call)        the sudo key; dispatches `call` as root
  set_key(new)      the sudo key
Events
  Sudid(result: b"ok" or the inner call's error name), KeyChanged(new)
Errors
  RequireSudo
"""

from __future__ import annotations

from node.runtime.support import (
    BYTES,
    ROOT,
    AccountId,
    BlockContext,
    DispatchError,
    GenesisState,
    Origin,
    RuntimeModule,
    StorageValue,
    arg_account,
    arg_call,
    call,
    ensure,
    ensure_signed,
    error,
    event,
    resolve_account,
)
from node.types import Call

NAME = "sudo"

KEY: StorageValue[bytes] = StorageValue(b"sudo:key", BYTES)


def build_genesis(genesis: GenesisState) -> None:
    if genesis.spec.get("sudo"):
        KEY.put(genesis, resolve_account(genesis.spec["sudo"]))


@call(NAME, "sudo", arg_call, weight=20_000)
def sudo(ctx: BlockContext, origin: Origin, inner: Call) -> None:
    """Dispatch `inner` as root. The inner call's failure is reported as an event, not an error."""
    who = ensure_signed(origin)
    ensure(KEY.get(ctx) == who, RequireSudo)
    assert ctx.dispatch is not None
    try:
        ctx.dispatch(inner, ROOT)
        ctx.deposit_event(Sudid(b"ok"))
    except DispatchError as failure:
        ctx.deposit_event(Sudid(failure.full_name.encode()))


@call(NAME, "set_key", arg_account, weight=20_000)
def set_key(ctx: BlockContext, origin: Origin, new: bytes) -> None:
    who = ensure_signed(origin)
    ensure(KEY.get(ctx) == who, RequireSudo)
    KEY.put(ctx, new)
    ctx.deposit_event(KeyChanged(new))


@event(NAME)
class Sudid:
    """A root call ran: `result` is b"ok" or the name of the error it failed with."""

    result: bytes


@event(NAME)
class KeyChanged:
    new: AccountId


@error(NAME)
class RequireSudo(DispatchError):
    """Only the sudo key may do this."""


MODULE = RuntimeModule(
    NAME,
    calls=(sudo, set_key),
    events=(Sudid, KeyChanged),
    errors=(RequireSudo,),
    storage=(KEY,),
    genesis=build_genesis,
)
