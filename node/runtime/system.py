"""`system`: accounts (nonce and balances record), block number, events and chain parameters.

Storage
  system:account:<id>   -> [nonce, free(u128), reserved(u128), frozen(u128)]
  system:number         -> current block number (u32 big-endian)
  system:parent_hash    -> parent block hash
  system:events         -> the events of the block (cleared at the start of each block)
  system:params         -> ChainParams (set at genesis, changed by root)
  system:block_hash:<n> -> hash of block n (kept for the last 4,096 blocks: mortality checks)
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

from node.codec import (
    decode,
    decode_trusted,
    encode,
    expect_int,
    expect_list,
    u128_from_bytes,
    u128_to_bytes,
)
from node.runtime.support import (
    BlockContext,
    Origin,
    OriginKind,
    arg_bytes,
    call,
    ensure_root,
    ensure_signed,
    specs_of,
)

MODULE = "system"
BLOCK_HASH_HISTORY = 4096

KEY_NUMBER = b"system:number"
KEY_PARENT_HASH = b"system:parent_hash"
KEY_EVENTS = b"system:events"
KEY_PARAMS = b"system:params"


def account_key(account_id: bytes) -> bytes:
    return b"system:account:" + account_id


def block_hash_key(number: int) -> bytes:
    return b"system:block_hash:" + number.to_bytes(4, "big")


# ---------------------------------------------------------------------------------------------
# Parameters
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ChainParams:
    """Chain-wide numbers from genesis.json (PROTOCOL: every *(param)*)."""

    slot_ms: int
    max_block_bytes: int
    max_block_weight: int
    max_extrinsic_bytes: int
    base_fee: int
    byte_fee: int
    weight_fee: int
    existential_deposit: int

    def to_wire(self) -> list[Any]:
        return [
            self.slot_ms,
            self.max_block_bytes,
            self.max_block_weight,
            self.max_extrinsic_bytes,
            u128_to_bytes(self.base_fee),
            u128_to_bytes(self.byte_fee),
            u128_to_bytes(self.weight_fee),
            u128_to_bytes(self.existential_deposit),
        ]

    @classmethod
    def from_wire(cls, obj: Any) -> ChainParams:
        slot, max_bytes, max_weight, max_ext, base, per_byte, per_weight, ed = expect_list(obj, 8, "params")
        return cls(
            expect_int(slot),
            expect_int(max_bytes),
            expect_int(max_weight),
            expect_int(max_ext),
            u128_from_bytes(base),
            u128_from_bytes(per_byte),
            u128_from_bytes(per_weight),
            u128_from_bytes(ed),
        )


def read_params(get: Any) -> ChainParams:
    raw = get(KEY_PARAMS)
    if raw is None:
        raise RuntimeError("state has no system:params (not a genesis-initialised state)")
    return _params_from(raw)


@functools.lru_cache(maxsize=8)
def _params_from(raw: bytes) -> ChainParams:
    """Parameters change rarely (root calls) but are read for every block and transaction."""
    return ChainParams.from_wire(decode(raw))


def fee_for(params: ChainParams, length: int, weight: int) -> int:
    """PROTOCOL section 4: base + per_byte * len + call_weight (weight priced by weight_fee)."""
    return params.base_fee + params.byte_fee * length + params.weight_fee * weight


# ---------------------------------------------------------------------------------------------
# Accounts
# ---------------------------------------------------------------------------------------------


@dataclass
class Account:
    nonce: int = 0
    free: int = 0
    reserved: int = 0
    frozen: int = 0

    @property
    def usable(self) -> int:
        """Free balance not held by locks (vesting)."""
        return max(0, self.free - self.frozen)

    @property
    def total(self) -> int:
        return self.free + self.reserved

    def encode(self) -> bytes:
        return encode([self.nonce, u128_to_bytes(self.free), u128_to_bytes(self.reserved), u128_to_bytes(self.frozen)])

    @classmethod
    def decode(cls, raw: bytes) -> Account:
        nonce, free, reserved, frozen = decode_trusted(raw)
        return cls(nonce, int.from_bytes(free, "big"), int.from_bytes(reserved, "big"), int.from_bytes(frozen, "big"))


def read_account(get: Any, account_id: bytes) -> Account:
    raw = get(account_key(account_id))
    return Account() if raw is None else Account.decode(raw)


def get_account(ctx: BlockContext, account_id: bytes) -> Account:
    return read_account(ctx.state.get, account_id)


def put_account(ctx: BlockContext, account_id: bytes, account: Account) -> None:
    """Store an account, or remove it when it holds nothing (its nonce goes with it, as in Substrate)."""
    if account.free == 0 and account.reserved == 0 and account.frozen == 0:
        ctx.state.delete(account_key(account_id))
    else:
        ctx.state.set(account_key(account_id), account.encode())


# ---------------------------------------------------------------------------------------------
# Block lifecycle
# ---------------------------------------------------------------------------------------------


def on_initialize(ctx: BlockContext) -> None:
    ctx.state.set(KEY_NUMBER, ctx.number.to_bytes(4, "big"))
    ctx.state.set(KEY_PARENT_HASH, ctx.parent_hash)
    if ctx.number > 0:
        ctx.state.set(block_hash_key(ctx.number - 1), ctx.parent_hash)
    if ctx.number - 1 - BLOCK_HASH_HISTORY > 0:  # the genesis hash (block 0) is kept for ever
        ctx.state.delete(block_hash_key(ctx.number - 1 - BLOCK_HASH_HISTORY))


def on_finalize(ctx: BlockContext) -> None:
    ctx.state.set(KEY_EVENTS, encode([event.to_wire() for event in ctx.events]))


# ---------------------------------------------------------------------------------------------
# Calls
# ---------------------------------------------------------------------------------------------


@call(MODULE, "remark", arg_bytes(1024), weight=1_000)
def remark(ctx: BlockContext, origin: Origin, data: bytes) -> None:
    """Put arbitrary bytes on chain (only the extrinsic records them)."""
    ensure_signed(origin)


@call(MODULE, "set_params", ChainParams.from_wire, weight=10_000, origin=OriginKind.ROOT)
def set_params(ctx: BlockContext, origin: Origin, params: ChainParams) -> None:
    ensure_root(origin)
    ctx.put_obj(KEY_PARAMS, params.to_wire())
    ctx.emit(MODULE, "ParamsChanged")


CALLS = specs_of(remark, set_params)
