"""`pow`: storage-proof mining, Permacoin's local-POR lottery over sealed replicas (PROTOCOL 11).

A storage miner (`storage`) keeps sealed replicas of the blobs assigned to it. To mine, it picks
a recent block hash `h` and a nonce `s` and walks `steps` chunks of its own replicas, each chosen
by the previous step's signature (`ticket_walk`):

    seed      = H("imagechain-ticket" || h || miner || s)
    step i    : chunk chosen by H(previous), previous = seed, then sigma_(i-1)
                sigma_i = BLS_sign(H(h || miner || previous || sealed chunk))
    score     = H(sigma_1 || ... || sigma_k)          wins when score < target

Every step needs the sealed chunk (a miner without its replica must seal the chunk again, which
`storage.seal_rounds` makes slow) and the miner's key, in sequence, so neither the storage nor
the key can be far away. BLS signatures are unique (`node.primitives.bls`), so the walk and the
score cannot be ground. A winning ticket is an unsigned extrinsic `submit_ticket`, checked before
it enters the pool and again in the block (`validate_unsigned`), cheapest checks first: the
window of `h`, the miner, the spent set, the score; then per step the sealed chunk's path to the
committed replica root, the unsealed chunk's path to the blob root, and the signature.

Each accepted ticket pays one emission reward (`emission.reward`: PoD and PoW share the curve
and the cap). At most `tickets_per_block` are accepted in a block; every `epoch_blocks` the
target moves toward that many per block (by at most 4x).

Params (genesis `pow` section)
  pow:params           -> [steps, tickets_per_block, epoch_blocks, lookback_min, lookback_max,
                           initial_target (32 bytes)]
Storage
  pow:target           -> 32 bytes, big-endian: a ticket wins below it
  pow:epoch            -> [first block of the epoch, tickets accepted in it]
  pow:in_block         -> u32, tickets accepted in the current block (cleared at its end)
  pow:spent:<id>       -> u32, the block that accepted ticket id = H(h || miner || s)
  pow:spent_in:<n u32> -> [id, ...] (forgotten once h can no longer be in the window)
Calls (unsigned, self-proving)
  submit_ticket(ticket)
Events
  TicketAccepted(miner, ticket id, reward), TargetChanged(target, accepted last epoch)
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from node.codec import DecodeError, decode, encode, expect_bytes, expect_int, expect_list
from node.primitives import bls, merkle, seal
from node.runtime import emission, storage, system
from node.runtime.support import (
    BYTES,
    MSGPACK,
    U32,
    AccountId,
    Balance,
    BlockContext,
    BlockQuotaReached,
    DispatchError,
    GenesisState,
    InvalidUnsigned,
    Origin,
    OriginKind,
    Record,
    RuntimeModule,
    StateGet,
    StorageMap,
    StorageValue,
    arg_bytes,
    call,
    ensure_none,
    error,
    event,
)

NAME = "pow"
MAX_TARGET = (1 << 256) - 1
MAX_STEPS = 64
MAX_PATH = 40  # hashes in a Merkle path: trees of up to 2**40 leaves
MAX_TICKET_BYTES = MAX_STEPS * (seal.SEALED_CHUNK_BYTES + 2 * MAX_PATH * 33 + 100) + 200
RETARGET_LIMIT = 4

# ---------------------------------------------------------------------------------------------
# Params
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PowParams:
    steps: int = 20
    tickets_per_block: int = 2
    epoch_blocks: int = 600
    lookback_min: int = 2  # h is at least this many blocks old (past likely reorgs)
    lookback_max: int = 64  # and at most this many
    initial_target: int = 1 << 248

    def to_wire(self) -> list[Any]:
        return [
            self.steps, self.tickets_per_block, self.epoch_blocks, self.lookback_min, self.lookback_max,
            self.initial_target.to_bytes(32, "big"),
        ]  # fmt: skip

    @classmethod
    def from_wire(cls, obj: Any) -> PowParams:
        steps, per_block, epoch, lo, hi, target = expect_list(obj, 6, "pow params")
        return cls(
            expect_int(steps, MAX_STEPS), expect_int(per_block, 1000), expect_int(epoch, 1 << 20),
            expect_int(lo, 4096), expect_int(hi, 4096), int.from_bytes(expect_bytes(target, 32), "big"),
        )  # fmt: skip


# ---------------------------------------------------------------------------------------------
# Storage
# ---------------------------------------------------------------------------------------------

PARAMS: StorageValue[PowParams] = StorageValue(b"pow:params", Record(PowParams))
TARGET: StorageValue[bytes] = StorageValue(b"pow:target", BYTES)
EPOCH: StorageValue[Any] = StorageValue(b"pow:epoch", MSGPACK)
IN_BLOCK: StorageValue[int] = StorageValue(b"pow:in_block", U32, 0)
SPENT: StorageMap[int] = StorageMap(b"pow:spent:", (BYTES,), U32)
SPENT_IN: StorageMap[Any] = StorageMap(b"pow:spent_in:", (U32,), MSGPACK)


def read_params(get: StateGet) -> PowParams | None:
    return PARAMS.get(get)


def read_target(get: StateGet) -> int:
    raw = TARGET.get(get)
    return MAX_TARGET if raw is None else int.from_bytes(raw, "big")


# ---------------------------------------------------------------------------------------------
# Tickets (pure: the miner builds them with these functions, validators check with them)
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Step:
    sealed_chunk: bytes
    replica_path: tuple[bytes, ...]
    chunk_path: tuple[bytes, ...]
    signature: bytes

    def to_wire(self) -> list[Any]:
        return [self.sealed_chunk, list(self.replica_path), list(self.chunk_path), self.signature]

    @classmethod
    def from_wire(cls, obj: Any) -> Step:
        sealed, replica_path, chunk_path, signature = expect_list(obj, 4, "ticket step")
        return cls(
            expect_bytes(sealed, seal.SEALED_CHUNK_BYTES, what="sealed chunk"),
            _path(replica_path),
            _path(chunk_path),
            expect_bytes(signature, bls.SIGNATURE_BYTES, what="step signature"),
        )


def _path(obj: Any) -> tuple[bytes, ...]:
    items = expect_list(obj, what="merkle path")
    if len(items) > MAX_PATH:
        raise DecodeError("merkle path too long")
    return tuple(expect_bytes(item, 32, what="path hash") for item in items)


@dataclass(frozen=True)
class Ticket:
    number: int  # of the block whose hash seeds the walk
    block_hash: bytes
    miner: bytes
    nonce: int
    steps: tuple[Step, ...]

    @property
    def id(self) -> bytes:
        return ticket_id(self.block_hash, self.miner, self.nonce)

    def to_wire(self) -> list[Any]:
        return [self.number, self.block_hash, self.miner, self.nonce, [s.to_wire() for s in self.steps]]

    def encode(self) -> bytes:
        return encode(self.to_wire())

    @classmethod
    def decode(cls, data: bytes) -> Ticket:
        number, block_hash, miner, nonce, steps = expect_list(decode(data, MAX_TICKET_BYTES), 5, "ticket")
        items = expect_list(steps, what="ticket steps")
        if not 0 < len(items) <= MAX_STEPS:
            raise DecodeError(f"a ticket has 1 to {MAX_STEPS} steps")
        return cls(
            expect_int(number, 1 << 32), expect_bytes(block_hash, 32, what="block hash"),
            expect_bytes(miner, 32, what="miner"), expect_int(nonce), tuple(Step.from_wire(s) for s in items),
        )  # fmt: skip


def _h(*parts: bytes) -> bytes:
    return hashlib.blake2b(b"".join(parts), digest_size=32).digest()


def ticket_id(block_hash: bytes, miner: bytes, nonce: int) -> bytes:
    return _h(b"imagechain-ticket-id", block_hash, miner, nonce.to_bytes(8, "big"))


def walk_seed(block_hash: bytes, miner: bytes, nonce: int) -> bytes:
    return _h(b"imagechain-ticket", block_hash, miner, nonce.to_bytes(8, "big"))


def choose_chunk(previous: bytes, replica_count: int) -> tuple[int, bytes]:
    """Which of the miner's replicas (by index) the next step reads, and the selector for its chunk."""
    selector = _h(b"imagechain-ticket-step", previous)
    return int.from_bytes(selector[:8], "big") % replica_count, selector[8:16]


def chunk_of(selector: bytes, size: int) -> int:
    return int.from_bytes(selector, "big") % merkle.leaf_count(size)


def step_message(block_hash: bytes, miner: bytes, previous: bytes, sealed_chunk: bytes) -> bytes:
    return _h(b"imagechain-ticket-sign", block_hash, miner, previous, sealed_chunk)


def score(signatures: Sequence[bytes]) -> int:
    return int.from_bytes(_h(b"imagechain-ticket-score", *signatures), "big")


def check_ticket(get: StateGet, ticket: Ticket, current: int) -> None:
    """Raise InvalidUnsigned unless `ticket` is a winning, unspent ticket for block `current`.

    Cheap checks first (the window, the miner, the spent set, the score), then every step.
    """
    params = read_params(get)
    if params is None:
        raise InvalidUnsigned("storage mining is off on this chain")
    if len(ticket.steps) != params.steps:
        raise InvalidUnsigned(f"a ticket walks {params.steps} steps, this one {len(ticket.steps)}")
    if not current - params.lookback_max <= ticket.number <= current - params.lookback_min:
        raise InvalidUnsigned(
            f"block #{ticket.number} is outside the window #{current - params.lookback_max}..#{current - params.lookback_min}"
        )
    if system.BLOCK_HASH.get(get, ticket.number) != ticket.block_hash:
        raise InvalidUnsigned(f"{ticket.block_hash.hex()} is not block #{ticket.number} of this chain")
    miner = storage.get_miner(get, ticket.miner)
    if miner is None or miner.since >= ticket.number:
        raise InvalidUnsigned("the miner was not bonded before the ticket's block")
    if SPENT.exists(get, ticket.id):
        raise InvalidUnsigned("ticket already accepted")
    if score([s.signature for s in ticket.steps]) >= read_target(get):
        raise InvalidUnsigned("the ticket's score is not below the target")
    count = storage.replica_count(get, ticket.miner)
    if count == 0:
        raise InvalidUnsigned("the miner has no committed replicas")
    rounds = storage.read_params(get).seal_rounds
    previous = walk_seed(ticket.block_hash, ticket.miner, ticket.nonce)
    for index, step in enumerate(ticket.steps):
        position, selector = choose_chunk(previous, count)
        root = storage.replica_at(get, ticket.miner, position)
        blob = storage.get_blob(get, root) if root is not None else None
        replica = storage.replica_root(get, ticket.miner, root) if root is not None else None
        if root is None or blob is None or replica is None:
            raise InvalidUnsigned(f"step {index}: the miner's replica {position} is gone")
        chunk_index = chunk_of(selector, blob.size)
        chunks = merkle.leaf_count(blob.size)
        if not merkle.verify_inclusion(replica, chunks, chunk_index, merkle.leaf_hash(step.sealed_chunk), step.replica_path):
            raise InvalidUnsigned(f"step {index}: the sealed chunk is not in the committed replica")
        length = min(merkle.LEAF_BYTES, blob.size - chunk_index * merkle.LEAF_BYTES)
        chunk = seal.unseal_chunk(step.sealed_chunk, seal.chunk_key(ticket.miner, root, chunk_index), rounds, length)
        if chunk is None or not merkle.verify_inclusion(root, chunks, chunk_index, merkle.leaf_hash(chunk), step.chunk_path):
            raise InvalidUnsigned(f"step {index}: the chunk is not the blob's")
        message = step_message(ticket.block_hash, ticket.miner, previous, step.sealed_chunk)
        if not bls.verify(miner.bls_key, message, step.signature):
            raise InvalidUnsigned(f"step {index}: the signature is not the miner's")
        previous = step.signature


# ---------------------------------------------------------------------------------------------
# Hooks
# ---------------------------------------------------------------------------------------------


def validate_unsigned(get: StateGet, genesis_hash: bytes, number: int, function: str, args: list[Any]) -> bytes:
    """A ticket proves itself for block `number`; a full block defers it to the next."""
    try:
        ticket = Ticket.decode(args[0])
    except DecodeError as exc:
        raise InvalidUnsigned(f"malformed ticket: {exc}") from exc
    check_ticket(get, ticket, number)
    params = read_params(get)
    if params is not None and (IN_BLOCK.get(get) or 0) >= params.tickets_per_block:
        raise BlockQuotaReached(f"the block holds {params.tickets_per_block} tickets already")
    return ticket.id


def on_initialize(ctx: BlockContext) -> None:
    params = read_params(ctx.state.get)
    if params is None:
        return
    forget = ctx.number - params.lookback_max - 1
    if forget > 0:
        for spent in SPENT_IN.get(ctx, forget) or []:
            SPENT.delete(ctx, spent)
        SPENT_IN.delete(ctx, forget)
    start, accepted = EPOCH.get(ctx) or [ctx.number, 0]
    if ctx.number - start >= params.epoch_blocks:
        wanted = params.epoch_blocks * params.tickets_per_block
        old = read_target(ctx.state.get)
        new = old * wanted // max(1, accepted)
        new = max(old // RETARGET_LIMIT, min(new, old * RETARGET_LIMIT, MAX_TARGET), 1)
        TARGET.put(ctx, new.to_bytes(32, "big"))
        EPOCH.put(ctx, [ctx.number, 0])
        ctx.deposit_event(TargetChanged(new.to_bytes(32, "big"), accepted))


def on_finalize(ctx: BlockContext) -> None:
    IN_BLOCK.delete(ctx)


def build_genesis(genesis: GenesisState) -> None:
    section = genesis.section("pow")
    if not section:
        return
    default = PowParams()
    params = PowParams(
        steps=int(section.get("steps", default.steps)),
        tickets_per_block=int(section.get("tickets_per_block", default.tickets_per_block)),
        epoch_blocks=int(section.get("epoch_blocks", default.epoch_blocks)),
        lookback_min=int(section.get("lookback_min", default.lookback_min)),
        lookback_max=int(section.get("lookback_max", default.lookback_max)),
        initial_target=int(section["initial_target"], 16) if "initial_target" in section else default.initial_target,
    )
    if not (1 <= params.steps <= MAX_STEPS and 1 <= params.lookback_min <= params.lookback_max <= 4096
            and 0 < params.initial_target <= MAX_TARGET and params.epoch_blocks >= 1):  # fmt: skip
        raise ValueError("pow params: steps 1..64, 1 <= lookback_min <= lookback_max <= 4096, a positive target")
    PARAMS.put(genesis, params)
    TARGET.put(genesis, params.initial_target.to_bytes(32, "big"))
    EPOCH.put(genesis, [0, 0])


# ---------------------------------------------------------------------------------------------
# Calls
# ---------------------------------------------------------------------------------------------

TICKET_WEIGHT = 40_000_000  # ~25-30 ms of checks (one BLS verification per step dominates)


@call(NAME, "submit_ticket", arg_bytes(MAX_TICKET_BYTES), weight=TICKET_WEIGHT, origin=OriginKind.NONE)
def submit_ticket(ctx: BlockContext, origin: Origin, encoded: bytes) -> None:
    """Accept a winning ticket (already checked by `validate_unsigned`) and pay its miner."""
    ensure_none(origin)
    ticket = Ticket.decode(encoded)
    in_block = IN_BLOCK.get(ctx) or 0
    IN_BLOCK.put(ctx, in_block + 1)
    SPENT.put(ctx, ticket.id, ctx.number)
    SPENT_IN.put(ctx, ctx.number, [*(SPENT_IN.get(ctx, ctx.number) or []), ticket.id])
    start, accepted = EPOCH.get(ctx) or [ctx.number, 0]
    EPOCH.put(ctx, [start, accepted + 1])
    reward = emission.try_reward(ctx, ticket.miner) or 0
    ctx.deposit_event(TicketAccepted(ticket.miner, ticket.id, reward))


# ---------------------------------------------------------------------------------------------
# Events and errors
# ---------------------------------------------------------------------------------------------


@event(NAME)
class TicketAccepted:
    miner: AccountId
    ticket_id: bytes
    reward: Balance


@event(NAME)
class TargetChanged:
    """The target for the next epoch (32 bytes, big-endian) and the tickets the last one accepted."""

    target: bytes
    accepted: int


@error(NAME)
class TicketRefused(DispatchError):
    """A ticket that does not prove itself reached dispatch."""


MODULE = RuntimeModule(
    NAME,
    calls=(submit_ticket,),
    events=(TicketAccepted, TargetChanged),
    errors=(TicketRefused,),
    storage=(PARAMS, TARGET, EPOCH, IN_BLOCK, SPENT, SPENT_IN),
    genesis=build_genesis,
    on_initialize=on_initialize,
    on_finalize=on_finalize,
    validate_unsigned=validate_unsigned,
)
