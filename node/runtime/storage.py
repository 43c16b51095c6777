"""`storage`: the image store's miners, the blobs registrations reference, and who keeps which.

The white paper's distributed image host (2.2) is kept by **storage miners**: accounts that
bond IMG and a BLS mining key (`register_miner`). Every blob a registration references (its
published file, its sealed original) is recorded here when the registration is made (the
answer to `copyright.BLOBS_ADDED`). Each blob is assigned to `replication` miners by rendezvous
hashing over the current miner set (`assigned_storers`: the miners with the highest
`H(root || miner)`), so assignments move only when the set changes. An assigned miner seals its
copy under its own account (`node.primitives.seal`) and commits the replica's Merkle root
(`commit_replica`); `pow` pays tickets that prove reading those replicas.

Nothing here iterates an unbounded set in a block: a miner leaves only after dropping its
replicas one call at a time (`drop_replica`), and the miner set is capped (`max_miners`).

Params (genesis `storage` section: replication, miner_bond in IMG, seal_rounds, max_miners)
  storage:params                   -> [replication, miner_bond(u128), seal_rounds, max_miners]
Storage
  storage:miner:<acct>             -> [bls public key (48), bond(u128), since block]
  storage:miners                   -> [acct, ...] sorted, the current miner set
  storage:bls_owner:<bls key>      -> acct (one key, one miner)
  storage:blob:<root>              -> [kind, size, registration id, since block]
  storage:replica:<acct><root>     -> replica root (32): the miner's sealed copy
  storage:replica_count:<acct>     -> u32
  storage:replica_at:<acct><u32>   -> blob root (a miner's replicas, enumerable by index)
  storage:replica_pos:<acct><root> -> u32 (its index, for swap-removal)
Calls
  register_miner(bls_key)                   reserves the bond
  commit_replica(blob root, replica root)   an assigned miner, for a recorded blob
  drop_replica(blob root)                   the miner
  leave()                                   a miner with no replicas left; the bond returns
Events
  MinerRegistered(miner), MinerLeft(miner), BlobRecorded(root, kind, size, registration id),
  ReplicaCommitted(miner, root, replica root), ReplicaDropped(miner, root)
Errors
  AlreadyMiner, NotMiner, BadBlsKey, BlsKeyTaken, TooManyMiners, UnknownBlob, NotAssigned,
  ReplicaExists, UnknownReplica, ReplicasLeft(count)
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from node.codec import expect_int, expect_list, u128_from_bytes, u128_to_bytes
from node.primitives import bls
from node.runtime import balances, copyright
from node.runtime.support import (
    BYTES,
    MSGPACK,
    U32,
    AccountId,
    BlockContext,
    DispatchError,
    GenesisState,
    Origin,
    Record,
    RuntimeModule,
    StateGet,
    StorageMap,
    StorageValue,
    arg_bytes,
    call,
    ensure,
    ensure_signed,
    error,
    event,
)
from node.units import parse_img

NAME = "storage"

# ---------------------------------------------------------------------------------------------
# Params
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StorageParams:
    replication: int = 3
    miner_bond: int = 1_000 * 10**18
    seal_rounds: int = 100  # Sloth rounds per sealed word (node.primitives.seal); devnets use fewer
    max_miners: int = 1_024

    def to_wire(self) -> list[Any]:
        return [self.replication, u128_to_bytes(self.miner_bond), self.seal_rounds, self.max_miners]

    @classmethod
    def from_wire(cls, obj: Any) -> StorageParams:
        replication, bond, rounds, max_miners = expect_list(obj, 4, "storage params")
        return cls(
            expect_int(replication, 64, "replication"),
            u128_from_bytes(bond),
            expect_int(rounds, 10_000, "seal rounds"),
            expect_int(max_miners, 100_000, "max miners"),
        )


# ---------------------------------------------------------------------------------------------
# Storage
# ---------------------------------------------------------------------------------------------

PARAMS: StorageValue[StorageParams] = StorageValue(b"storage:params", Record(StorageParams), StorageParams())
MINERS: StorageMap[Any] = StorageMap(b"storage:miner:", (BYTES,), MSGPACK)
MINER_SET: StorageValue[Any] = StorageValue(b"storage:miners", MSGPACK, [])
BLS_OWNER: StorageMap[bytes] = StorageMap(b"storage:bls_owner:", (BYTES,), BYTES)
BLOBS: StorageMap[Any] = StorageMap(b"storage:blob:", (BYTES,), MSGPACK)
REPLICAS: StorageMap[bytes] = StorageMap(b"storage:replica:", (BYTES, BYTES), BYTES)
REPLICA_COUNT: StorageMap[int] = StorageMap(b"storage:replica_count:", (BYTES,), U32, 0)
REPLICA_AT: StorageMap[bytes] = StorageMap(b"storage:replica_at:", (BYTES, U32), BYTES)
REPLICA_POS: StorageMap[int] = StorageMap(b"storage:replica_pos:", (BYTES, BYTES), U32)


@dataclass(frozen=True)
class Miner:
    account: bytes
    bls_key: bytes
    bond: int
    since: int


@dataclass(frozen=True)
class Blob:
    root: bytes
    kind: int
    size: int
    registration_id: int
    since: int


def read_params(get: StateGet) -> StorageParams:
    return PARAMS.value(get)


def get_miner(get: StateGet, account: bytes) -> Miner | None:
    stored = MINERS.get(get, account)
    if stored is None:
        return None
    key, bond, since = stored
    return Miner(account, key, u128_from_bytes(bond), since)


def miner_set(get: StateGet) -> list[bytes]:
    return list(MINER_SET.get(get) or [])


def get_blob(get: StateGet, root: bytes) -> Blob | None:
    stored = BLOBS.get(get, root)
    if stored is None:
        return None
    kind, size, registration_id, since = stored
    return Blob(root, kind, size, registration_id, since)


def replica_root(get: StateGet, miner: bytes, root: bytes) -> bytes | None:
    return REPLICAS.get(get, (miner, root))


def replica_count(get: StateGet, miner: bytes) -> int:
    return REPLICA_COUNT.value(get, miner)


def replica_at(get: StateGet, miner: bytes, index: int) -> bytes | None:
    return REPLICA_AT.get(get, (miner, index))


def rendezvous_score(root: bytes, miner: bytes) -> bytes:
    return hashlib.blake2b(b"imagechain-storer" + root + miner, digest_size=32).digest()


def assigned_storers(get: StateGet, root: bytes) -> list[bytes]:
    """The `replication` miners that keep blob `root`: highest rendezvous score first.

    Sorting by a hash of (blob, miner) spreads blobs evenly, and a miner joining or leaving
    moves only the blobs whose top set it enters or leaves (rendezvous hashing).
    """
    replication = read_params(get).replication
    ranked = sorted(miner_set(get), key=lambda miner: rendezvous_score(root, miner), reverse=True)
    return ranked[:replication]


# ---------------------------------------------------------------------------------------------
# Recording blobs (the answer to `copyright.BLOBS_ADDED`)
# ---------------------------------------------------------------------------------------------


def on_blobs_added(ctx: BlockContext, registration_id: int, blobs: tuple[copyright.BlobRef, ...]) -> None:
    for blob in blobs:
        if BLOBS.exists(ctx, blob.root):
            continue  # the same bytes referenced twice (re-registration is refused elsewhere)
        BLOBS.put(ctx, blob.root, [blob.kind, blob.size, registration_id, ctx.number])
        ctx.deposit_event(BlobRecorded(blob.root, blob.kind, blob.size, registration_id))


# ---------------------------------------------------------------------------------------------
# Calls
# ---------------------------------------------------------------------------------------------


def arg_bls_key(value: Any) -> bytes:
    return arg_bytes(bls.PUBLIC_KEY_BYTES)(value)


def arg_root(value: Any) -> bytes:
    return copyright.arg_hash32(value)


@call(NAME, "register_miner", arg_bls_key, weight=2_000_000)
def register_miner(ctx: BlockContext, origin: Origin, bls_key: bytes) -> None:
    """Become a storage miner: the bond is reserved, `bls_key` signs this account's tickets."""
    who = ensure_signed(origin)
    params = read_params(ctx.state.get)
    ensure(not MINERS.exists(ctx, who), AlreadyMiner)
    ensure(bls.public_key_ok(bls_key), BadBlsKey)
    ensure(not BLS_OWNER.exists(ctx, bls_key), BlsKeyTaken)
    miners = miner_set(ctx.state.get)
    ensure(len(miners) < params.max_miners, TooManyMiners)
    balances.reserve(ctx, who, params.miner_bond)
    MINERS.put(ctx, who, [bls_key, u128_to_bytes(params.miner_bond), ctx.number])
    BLS_OWNER.put(ctx, bls_key, who)
    MINER_SET.put(ctx, sorted([*miners, who]))
    ctx.deposit_event(MinerRegistered(who))


@call(NAME, "commit_replica", arg_root, arg_root, weight=1_000_000)
def commit_replica(ctx: BlockContext, origin: Origin, root: bytes, sealed_root: bytes) -> None:
    """An assigned miner commits the Merkle root of its sealed copy of blob `root`."""
    who = ensure_signed(origin)
    ensure(MINERS.exists(ctx, who), NotMiner)
    ensure(BLOBS.exists(ctx, root), UnknownBlob)
    ensure(who in assigned_storers(ctx.state.get, root), NotAssigned)
    ensure(not REPLICAS.exists(ctx, (who, root)), ReplicaExists)
    count = replica_count(ctx.state.get, who)
    REPLICAS.put(ctx, (who, root), sealed_root)
    REPLICA_AT.put(ctx, (who, count), root)
    REPLICA_POS.put(ctx, (who, root), count)
    REPLICA_COUNT.put(ctx, who, count + 1)
    ctx.deposit_event(ReplicaCommitted(who, root, sealed_root))


@call(NAME, "drop_replica", arg_root, weight=500_000)
def drop_replica(ctx: BlockContext, origin: Origin, root: bytes) -> None:
    """The miner stops mining on its replica of `root` (swap-removal: O(1) writes)."""
    who = ensure_signed(origin)
    position = REPLICA_POS.get(ctx, (who, root))
    ensure(position is not None, UnknownReplica)
    assert position is not None
    last = replica_count(ctx.state.get, who) - 1
    if position != last:
        moved = REPLICA_AT.get(ctx, (who, last))
        assert moved is not None
        REPLICA_AT.put(ctx, (who, position), moved)
        REPLICA_POS.put(ctx, (who, moved), position)
    REPLICA_AT.delete(ctx, (who, last))
    REPLICA_POS.delete(ctx, (who, root))
    REPLICAS.delete(ctx, (who, root))
    if last:
        REPLICA_COUNT.put(ctx, who, last)
    else:
        REPLICA_COUNT.delete(ctx, who)
    ctx.deposit_event(ReplicaDropped(who, root))


@call(NAME, "leave", weight=1_000_000)
def leave(ctx: BlockContext, origin: Origin) -> None:
    """Stop mining: allowed once every replica is dropped; the bond is returned."""
    who = ensure_signed(origin)
    miner = get_miner(ctx.state.get, who)
    ensure(miner is not None, NotMiner)
    assert miner is not None
    left = replica_count(ctx.state.get, who)
    ensure(left == 0, ReplicasLeft, left)
    balances.unreserve(ctx, who, miner.bond)
    MINERS.delete(ctx, who)
    BLS_OWNER.delete(ctx, miner.bls_key)
    MINER_SET.put(ctx, [m for m in miner_set(ctx.state.get) if m != who])
    ctx.deposit_event(MinerLeft(who))


def build_genesis(genesis: GenesisState) -> None:
    section, default = genesis.section("storage"), StorageParams()
    params = StorageParams(
        replication=int(section.get("replication", default.replication)),
        miner_bond=parse_img(section["miner_bond"]) if "miner_bond" in section else default.miner_bond,
        seal_rounds=int(section.get("seal_rounds", default.seal_rounds)),
        max_miners=int(section.get("max_miners", default.max_miners)),
    )
    if not 1 <= params.replication <= 64 or not 1 <= params.seal_rounds <= 10_000 or params.max_miners < 1:
        raise ValueError("storage params: replication 1..64, seal_rounds 1..10000, max_miners >= 1")
    PARAMS.put(genesis, params)


# ---------------------------------------------------------------------------------------------
# Events
# ---------------------------------------------------------------------------------------------


@event(NAME)
class MinerRegistered:
    miner: AccountId


@event(NAME)
class MinerLeft:
    miner: AccountId


@event(NAME)
class BlobRecorded:
    """A registration references blob `root` (kind 0: the published file, 1: the sealed original)."""

    root: bytes
    kind: int
    size: int
    registration_id: int


@event(NAME)
class ReplicaCommitted:
    miner: AccountId
    root: bytes
    replica_root: bytes


@event(NAME)
class ReplicaDropped:
    miner: AccountId
    root: bytes


# ---------------------------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------------------------


@error(NAME)
class AlreadyMiner(DispatchError):
    pass


@error(NAME)
class NotMiner(DispatchError):
    pass


@error(NAME)
class BadBlsKey(DispatchError):
    """Not a valid compressed BLS12-381 G1 public key."""


@error(NAME)
class BlsKeyTaken(DispatchError):
    """Another miner registered this BLS key."""


@error(NAME)
class TooManyMiners(DispatchError):
    pass


@error(NAME)
class UnknownBlob(DispatchError):
    """No registration references this blob."""


@error(NAME)
class NotAssigned(DispatchError):
    """This miner is not among the blob's assigned storers."""


@error(NAME)
class ReplicaExists(DispatchError):
    pass


@error(NAME)
class UnknownReplica(DispatchError):
    pass


@error(NAME)
class ReplicasLeft(DispatchError):
    """Drop every replica before leaving."""

    count: int


MODULE = RuntimeModule(
    NAME,
    calls=(register_miner, commit_replica, drop_replica, leave),
    events=(MinerRegistered, MinerLeft, BlobRecorded, ReplicaCommitted, ReplicaDropped),
    errors=(
        AlreadyMiner, NotMiner, BadBlsKey, BlsKeyTaken, TooManyMiners, UnknownBlob, NotAssigned, ReplicaExists,
        UnknownReplica, ReplicasLeft,
    ),  # fmt: skip
    storage=(PARAMS, MINERS, MINER_SET, BLS_OWNER, BLOBS, REPLICAS, REPLICA_COUNT, REPLICA_AT, REPLICA_POS),
    genesis=build_genesis,
    answers={copyright.BLOBS_ADDED: on_blobs_added},
)
