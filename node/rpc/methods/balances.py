"""balances_*: an account as a wallet shows it, with what can be spent and why the rest cannot.

`system:account` holds free, reserved and frozen; a wallet that shows only `free` shows money
its owner cannot move (vesting freezes it, a bond reserves it). `balances_account` says what is
transferable and, for a vesting account, its schedule at the block's timestamp.
"""

from __future__ import annotations

from typing import Any

from node.keys import encode_address
from node.rpc.jsonrpc import JSON, CallContext, MethodTable
from node.rpc.params import AccountId, Hash
from node.rpc.render import amount_json
from node.rpc.state_at import read_state
from node.runtime import system, timestamp, vesting
from node.runtime.support import StateGet

METHODS = MethodTable()

_ACCOUNT_RESULT = {
    "type": "object",
    "description": "address, nonce, free, reserved, frozen, transferable, existentialDeposit (IMG and ...Raw "
    "base units, strings), vesting: null or {locked, vestable, nextUnlockAt, fullyUnlockedAt, schedule[]}",
}


def account_json(get: StateGet, account_id: bytes) -> dict[str, Any]:
    """The account's balances at the state `get` reads, with its vesting schedule if it has one."""
    account = system.read_account(get, account_id)
    params = system.read_params(get)
    out: dict[str, Any] = {"address": encode_address(account_id), "nonce": account.nonce}
    for name, value in (
        ("free", account.free),
        ("reserved", account.reserved),
        ("frozen", account.frozen),
        ("transferable", account.usable),
        ("existentialDeposit", params.existential_deposit),
    ):
        out.update(amount_json(name, value))
    out["vesting"] = _vesting_json(get, account_id, account.frozen)
    return out


def _vesting_json(get: StateGet, account_id: bytes, frozen: int) -> dict[str, Any] | None:
    """The schedule at the block's timestamp: `locked` is what it still holds back, `vestable` what
    has unlocked but stays frozen until someone calls `vesting.vest` (the lock is not updated by time
    alone, as in Substrate)."""
    tranches = vesting.schedule_of(get, account_id)
    if not tranches:
        return None
    raw_now = get(timestamp.KEY_NOW)
    now_ms = 0 if raw_now is None else int.from_bytes(raw_now, "big")
    locked = vesting.locked_at(tranches, now_ms)
    pending = [t for t in tranches if t.unlock_at_ms > now_ms]
    return {
        **amount_json("locked", locked),
        **amount_json("vestable", max(0, frozen - locked)),
        "nextUnlockAt": pending[0].unlock_at_ms if pending else None,
        "fullyUnlockedAt": tranches[-1].unlock_at_ms,
        "schedule": [
            {"unlockAt": t.unlock_at_ms, **amount_json("amount", t.amount), "unlocked": t.unlock_at_ms <= now_ms}
            for t in tranches
        ],
    }


@METHODS.method("balances_account", result=_ACCOUNT_RESULT)
async def balances_account(ctx: CallContext, account: AccountId, at: Hash | None = None) -> JSON:
    """An account's balances after block `at` (the best by default): free, reserved (bonds), frozen
    (vesting), transferable = free - frozen, and the vesting schedule with what unlocks when.

    An account that does not exist reads as zeros (with its remembered nonce if it was reaped).
    `vesting.vestable` is unlocked by time but still frozen until a `vesting.vest` call."""
    return read_state(ctx, at, lambda get: account_json(get, account))
