"""`system`: accounts (nonce and balances record), block number, events and chain parameters.

The executive calls `initialize` first and `finalize` last in every block (FRAME's System):
everything else a block does happens between them.

Nonces survive reaping. An account that falls to nothing is removed (`balances`), but its
nonce is remembered for `BLOCK_HASH_HISTORY` blocks, the longest any transaction lives: if the
account is funded again meanwhile its nonce goes on from there, so none of the transactions it
signed before can be replayed; once they are all dead (mortality), the memory goes too.

Params (genesis `params` section)
  system:params              -> ChainParams (changed by root: `set_params`)
Storage
  system:account:<id>        -> [nonce, free(u128), reserved(u128), frozen(u128)]
  system:number              -> current block number (u32 big-endian)
  system:parent_hash         -> parent block hash
  system:events              -> the events of the block (cleared at the start of each block)
  system:block_hash:<n u32>  -> hash of block n (kept for the last 4,096 blocks: mortality
                                checks; the genesis hash, block 0, is kept for ever)
  system:genesis_spec_version -> u32, the spec version that built the genesis state
  system:reaped:<id>         -> [nonce, block]: the nonce of an account reaped at `block`, kept
                                while any transaction it signed before could still be alive
  system:reaped_in:<n u32>   -> [id, ...]: the accounts reaped in block n (to forget them)
Calls
  remark(data)               anyone; the extrinsic alone records the bytes
  set_params(params)         root
Events
  ExtrinsicSuccess, ExtrinsicFailed(error, detail...), ParamsChanged
Errors
  BadOrigin
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

from node.codec import decode, decode_trusted, encode, expect_int, expect_list, u128_from_bytes, u128_to_bytes
from node.runtime.support import (
    BYTES,
    MSGPACK,
    U32,
    BadOrigin,
    BlockContext,
    GenesisState,
    Origin,
    OriginKind,
    Record,
    RuntimeModule,
    StateGet,
    StorageMap,
    StorageValue,
    arg_bytes,
    call,
    ensure_root,
    ensure_signed,
    event,
)
from node.types import MAX_MORTAL_PERIOD
from node.units import parse_img

NAME = "system"
BLOCK_HASH_HISTORY = MAX_MORTAL_PERIOD  # a transaction's birth block is always still known

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

    @classmethod
    def from_spec(cls, section: Any) -> ChainParams:
        """From the chain spec's `params` object (fees and the deposit in IMG as decimal text)."""
        return cls(
            slot_ms=int(section["slot_ms"]),
            max_block_bytes=int(section["max_block_bytes"]),
            max_block_weight=int(section["max_block_weight"]),
            max_extrinsic_bytes=int(section["max_extrinsic_bytes"]),
            base_fee=parse_img(section["base_fee"]),
            byte_fee=parse_img(section["byte_fee"]),
            weight_fee=parse_img(section["weight_fee"]),
            existential_deposit=parse_img(section["existential_deposit"]),
        )


def fee_for(params: ChainParams, length: int, weight: int) -> int:
    """PROTOCOL section 4: base + per_byte * len + call_weight (weight priced by weight_fee)."""
    return params.base_fee + params.byte_fee * length + params.weight_fee * weight


# ---------------------------------------------------------------------------------------------
# Storage
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


class _AccountCodec:
    def encode(self, value: Account) -> bytes:
        return value.encode()

    def decode(self, raw: bytes) -> Account:
        return Account.decode(raw)


PARAMS: StorageValue[ChainParams] = StorageValue(b"system:params", Record(ChainParams))
ACCOUNTS: StorageMap[Account] = StorageMap(b"system:account:", (BYTES,), _AccountCodec())
NUMBER: StorageValue[int] = StorageValue(b"system:number", U32, 0)
PARENT_HASH: StorageValue[bytes] = StorageValue(b"system:parent_hash", BYTES)
EVENTS: StorageValue[Any] = StorageValue(b"system:events", MSGPACK)
BLOCK_HASH: StorageMap[bytes] = StorageMap(b"system:block_hash:", (U32,), BYTES)
GENESIS_SPEC_VERSION: StorageValue[int] = StorageValue(b"system:genesis_spec_version", U32)
REAPED: StorageMap[Any] = StorageMap(b"system:reaped:", (BYTES,), MSGPACK)
REAPED_IN: StorageMap[Any] = StorageMap(b"system:reaped_in:", (U32,), MSGPACK)

# Raw keys that readers outside the runtime (RPC, wallet) fetch with `state_getStorage`.
KEY_PARAMS = PARAMS.key
KEY_EVENTS = EVENTS.key
KEY_NUMBER = NUMBER.key


def account_key(account_id: bytes) -> bytes:
    return ACCOUNTS.key(account_id)


def read_params(get: StateGet) -> ChainParams:
    raw = get(KEY_PARAMS)
    if raw is None:
        raise RuntimeError("state has no system:params (not a genesis-initialised state)")
    return _params_from(raw)


@functools.lru_cache(maxsize=8)
def _params_from(raw: bytes) -> ChainParams:
    """Parameters change rarely (root calls) but are read for every block and transaction."""
    return ChainParams.from_wire(decode(raw))


def read_account(get: StateGet, account_id: bytes) -> Account:
    """An account's record; a recently reaped one reads as empty with its remembered nonce."""
    raw = get(ACCOUNTS.key(account_id))
    if raw is not None:
        return Account.decode(raw)
    reaped = REAPED.get(get, account_id)
    return Account() if reaped is None else Account(nonce=reaped[0])


def get_account(ctx: BlockContext, account_id: bytes) -> Account:
    return read_account(ctx.state.get, account_id)


def put_account(ctx: BlockContext | GenesisState, account_id: bytes, account: Account) -> None:
    """Store an account, or remove it when it holds nothing; a removed account's nonce is
    remembered (module doc) so that its old transactions stay stale."""
    if account.free or account.reserved or account.frozen:
        ACCOUNTS.put(ctx, account_id, account)
        return
    ACCOUNTS.delete(ctx, account_id)
    if account.nonce and isinstance(ctx, BlockContext):
        REAPED.put(ctx, account_id, [account.nonce, ctx.number])
        REAPED_IN.put(ctx, ctx.number, [*(REAPED_IN.get(ctx, ctx.number) or []), account_id])


def genesis_hash(get: StateGet) -> bytes | None:
    """The chain's genesis hash, known to state from block 1 on."""
    return BLOCK_HASH.get(get, 0)


# ---------------------------------------------------------------------------------------------
# Block lifecycle (called by the executive, first and last)
# ---------------------------------------------------------------------------------------------


def initialize(ctx: BlockContext) -> None:
    NUMBER.put(ctx, ctx.number)
    PARENT_HASH.put(ctx, ctx.parent_hash)
    if ctx.number > 0:
        BLOCK_HASH.put(ctx, ctx.number - 1, ctx.parent_hash)
    if ctx.number - 1 - BLOCK_HASH_HISTORY > 0:  # the genesis hash (block 0) is kept for ever
        BLOCK_HASH.delete(ctx, ctx.number - 1 - BLOCK_HASH_HISTORY)
        _forget_reaped(ctx, ctx.number - 1 - BLOCK_HASH_HISTORY)


def _forget_reaped(ctx: BlockContext, number: int) -> None:
    """Every transaction signed before block `number` is dead now: forget who was reaped in it
    (unless reaped again later, which the stored block number tells)."""
    for account_id in REAPED_IN.get(ctx, number) or []:
        reaped = REAPED.get(ctx, account_id)
        if reaped is not None and reaped[1] == number:
            REAPED.delete(ctx, account_id)
    REAPED_IN.delete(ctx, number)


def finalize(ctx: BlockContext) -> None:
    EVENTS.put(ctx, [record.to_wire() for record in ctx.events])


def build_genesis(genesis: GenesisState) -> None:
    PARAMS.put(genesis, ChainParams.from_spec(genesis.spec["params"]))
    NUMBER.put(genesis, 0)
    GENESIS_SPEC_VERSION.put(genesis, genesis.spec_version)


# ---------------------------------------------------------------------------------------------
# Calls
# ---------------------------------------------------------------------------------------------


@call(NAME, "remark", arg_bytes(1024), weight=1_000)
def remark(ctx: BlockContext, origin: Origin, data: bytes) -> None:
    """Put arbitrary bytes on chain (only the extrinsic records them)."""
    ensure_signed(origin)


@call(NAME, "set_params", ChainParams.from_wire, weight=10_000, origin=OriginKind.ROOT)
def set_params(ctx: BlockContext, origin: Origin, params: ChainParams) -> None:
    ensure_root(origin)
    PARAMS.put(ctx, params)
    ctx.deposit_event(ParamsChanged())


# ---------------------------------------------------------------------------------------------
# Events
# ---------------------------------------------------------------------------------------------


@event(NAME)
class ExtrinsicSuccess:
    """The extrinsic's call succeeded."""


@event(NAME)
class ExtrinsicFailed:
    """The call failed by the rules (its fee was paid): `error` names the declared error as
    "module.Name", `detail` carries that error's fields."""

    error: str
    detail: tuple[Any, ...]


@event(NAME)
class ParamsChanged:
    """Root changed the chain parameters."""


MODULE = RuntimeModule(
    NAME,
    calls=(remark, set_params),
    events=(ExtrinsicSuccess, ExtrinsicFailed, ParamsChanged),
    errors=(BadOrigin,),
    storage=(PARAMS, ACCOUNTS, NUMBER, PARENT_HASH, EVENTS, BLOCK_HASH, GENESIS_SPEC_VERSION, REAPED, REAPED_IN),
    genesis=build_genesis,
)
