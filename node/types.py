"""Protocol data: headers, blocks, extrinsics and digest items (PROTOCOL sections 4 and 5).

Each type is a frozen dataclass with `encode()` producing the canonical bytes and a
`decode(data)` classmethod that accepts exactly those bytes and nothing else. Encodings are
fixed-order msgpack arrays (`node.codec`); amounts are 16-byte big-endian.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum
from functools import cached_property
from typing import Any

from node.codec import (
    U32_MAX,
    U64_MAX,
    U128_MAX,
    DecodeError,
    blake2b_256,
    decode,
    encode,
    expect_bytes,
    expect_int,
    expect_list,
    expect_str,
    u128_from_bytes,
    u128_to_bytes,
)
from node.keys import PublicKey

HASH_LEN = 32
SIGNATURE_LEN = 64
ENGINE_AURA = b"aura"
# Domain separator of every Aura seal (finality votes have their own, `node.primitives.votes`).
SEAL_CONTEXT = b"imagechain-aura-seal"
ENGINE_FINALITY = b"FRNK"

# Upper bound on a single encoded extrinsic before any parsing; the chain spec may set a lower one.
MAX_EXTRINSIC_BYTES = 4 * 1024 * 1024
MAX_DIGEST_ITEMS = 16
MAX_DIGEST_ITEM_BYTES = 64 * 1024
MAX_HEADER_BYTES = 256 * 1024
MAX_BLOCK_BYTES = 16 * 1024 * 1024
MAX_CALL_ARGS = 16

EXTRINSIC_VERSION = 4
SIGNED_FLAG = 0x80


# ---------------------------------------------------------------------------------------------
# Digest
# ---------------------------------------------------------------------------------------------


class DigestKind(IntEnum):
    PRE_RUNTIME = 0
    SEAL = 1
    CONSENSUS = 2


@dataclass(frozen=True)
class DigestItem:
    """A tagged piece of consensus data carried in the header (Substrate's DigestItem)."""

    kind: DigestKind
    engine: bytes
    data: bytes

    def to_wire(self) -> list[Any]:
        return [int(self.kind), self.engine, self.data]

    @classmethod
    def from_wire(cls, obj: Any) -> DigestItem:
        kind, engine, data = expect_list(obj, 3, "digest item")
        kind_value = expect_int(kind, 2, "digest kind")
        return cls(
            DigestKind(kind_value),
            expect_bytes(engine, 4, what="digest engine"),
            expect_bytes(data, max_len=MAX_DIGEST_ITEM_BYTES, what="digest data"),
        )


def aura_pre_digest(slot: int) -> DigestItem:
    return DigestItem(DigestKind.PRE_RUNTIME, ENGINE_AURA, slot.to_bytes(8, "big"))


def aura_seal(signature: bytes) -> DigestItem:
    return DigestItem(DigestKind.SEAL, ENGINE_AURA, signature)


# ---------------------------------------------------------------------------------------------
# Header and block
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Header:
    parent_hash: bytes
    number: int
    state_root: bytes
    extrinsics_root: bytes
    digest: tuple[DigestItem, ...] = ()

    def to_wire(self) -> list[Any]:
        return [
            self.parent_hash,
            self.number,
            self.state_root,
            self.extrinsics_root,
            [item.to_wire() for item in self.digest],
        ]

    def encode(self) -> bytes:
        return encode(self.to_wire())

    @cached_property
    def hash(self) -> bytes:
        """Block hash: blake2b-256 of the whole encoded header, seal included."""
        return blake2b_256(self.encode())

    @classmethod
    def from_wire(cls, obj: Any) -> Header:
        parent, number, state_root, ext_root, digest = expect_list(obj, 5, "header")
        items = expect_list(digest, what="digest")
        if len(items) > MAX_DIGEST_ITEMS:
            raise DecodeError("digest: too many items")
        return cls(
            expect_bytes(parent, HASH_LEN, what="parent_hash"),
            expect_int(number, U32_MAX, "number"),
            expect_bytes(state_root, HASH_LEN, what="state_root"),
            expect_bytes(ext_root, HASH_LEN, what="extrinsics_root"),
            tuple(DigestItem.from_wire(item) for item in items),
        )

    @classmethod
    def decode(cls, data: bytes) -> Header:
        return cls.from_wire(decode(data, MAX_HEADER_BYTES))

    # -- consensus helpers --------------------------------------------------------------------

    def pre_runtime(self, engine: bytes) -> bytes | None:
        for item in self.digest:
            if item.kind == DigestKind.PRE_RUNTIME and item.engine == engine:
                return item.data
        return None

    @property
    def slot(self) -> int | None:
        """The Aura slot this header claims, or None for genesis / malformed headers."""
        data = self.pre_runtime(ENGINE_AURA)
        if data is None or len(data) != 8:
            return None
        return int.from_bytes(data, "big")

    @property
    def seal(self) -> DigestItem | None:
        if self.digest and self.digest[-1].kind == DigestKind.SEAL:
            return self.digest[-1]
        return None

    def without_seal(self) -> Header:
        if self.seal is None:
            return self
        return Header(self.parent_hash, self.number, self.state_root, self.extrinsics_root, self.digest[:-1])

    def with_seal(self, signature: bytes) -> Header:
        return Header(
            self.parent_hash,
            self.number,
            self.state_root,
            self.extrinsics_root,
            self.digest + (aura_seal(signature),),
        )

    def pre_hash(self) -> bytes:
        """blake2b-256 of the header without its seal."""
        return blake2b_256(self.without_seal().encode())

    def seal_payload(self, genesis_hash: bytes) -> bytes:
        """What the author signs: a domain tag, the chain's genesis hash and the pre-hash.

        The genesis hash makes a seal valid on one chain only: an authority whose key also signs
        on another chain (a test network, a fork of the spec) cannot be shown to equivocate
        here with headers from there.
        """
        return encode([SEAL_CONTEXT, genesis_hash, self.pre_hash()])


@dataclass(frozen=True)
class Block:
    header: Header
    extrinsics: tuple[bytes, ...] = field(default=())

    def to_wire(self) -> list[Any]:
        return [self.header.to_wire(), list(self.extrinsics)]

    def encode(self) -> bytes:
        return encode(self.to_wire())

    @property
    def hash(self) -> bytes:
        return self.header.hash

    @classmethod
    def from_wire(cls, obj: Any) -> Block:
        header, body = expect_list(obj, 2, "block")
        extrinsics = expect_list(body, what="block body")
        return cls(
            Header.from_wire(header),
            tuple(expect_bytes(x, max_len=MAX_EXTRINSIC_BYTES, what="extrinsic") for x in extrinsics),
        )

    @classmethod
    def decode(cls, data: bytes) -> Block:
        return cls.from_wire(decode(data, MAX_BLOCK_BYTES))


def merkle_root(leaves: list[bytes]) -> bytes:
    """Binary Merkle root of byte strings (extrinsics_root).

    Leaves are hashed with a 0x00 prefix and inner nodes with 0x01 (no second-preimage
    confusion between a leaf and a node); an odd node is carried up unchanged. The root of no
    leaves is blake2b-256 of the empty string.
    """
    if not leaves:
        return blake2b_256(b"")
    level = [blake2b_256(b"\x00" + leaf) for leaf in leaves]
    while len(level) > 1:
        paired = [blake2b_256(b"\x01" + level[i] + level[i + 1]) for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            paired.append(level[-1])
        level = paired
    return level[0]


# ---------------------------------------------------------------------------------------------
# Calls and extrinsics
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Call:
    """A dispatchable call: `module.function(args...)`; the runtime checks the argument types."""

    module: str
    function: str
    args: tuple[Any, ...] = ()

    def to_wire(self) -> list[Any]:
        return [self.module, self.function, list(self.args)]

    @classmethod
    def from_wire(cls, obj: Any) -> Call:
        module, function, args = expect_list(obj, 3, "call")
        arg_list = expect_list(args, what="call args")
        if len(arg_list) > MAX_CALL_ARGS:
            raise DecodeError("call: too many arguments")
        return cls(expect_str(module, 32, "call module"), expect_str(function, 48, "call function"), tuple(arg_list))

    @property
    def name(self) -> str:
        return f"{self.module}.{self.function}"


# The longest a transaction may live, in blocks: the runtime keeps this many block hashes
# (`system:block_hash`), and a transaction names its birth block by hash.
MAX_MORTAL_PERIOD = 4096


@dataclass(frozen=True)
class Mortality:
    """When a transaction may be included: in blocks `birth < number < birth + period`.

    `birth_hash` is the hash of block `birth` on the signer's chain (Substrate's `CheckMortality`
    signs it too): the transaction is bound to that history, so it dies on any other fork or
    chain, and it cannot outlive `period` blocks. Every signed transaction is mortal (PROTOCOL
    refinement, `docs/protocol-notes.md`): an immortal one could be replayed once its account
    is reaped and its nonce starts again at 0. One born at genesis (`from_genesis`) is what a
    signer that knows nothing but the chain's genesis hash can make.
    """

    birth: int
    period: int
    birth_hash: bytes

    def to_wire(self) -> list[Any]:
        return [self.birth, self.period, self.birth_hash]

    @classmethod
    def from_wire(cls, obj: Any) -> Mortality:
        birth, period, birth_hash = expect_list(obj, 3, "mortality")
        return cls(
            expect_int(birth, U32_MAX, "mortality birth"),
            expect_int(period, U32_MAX, "mortality period"),
            expect_bytes(birth_hash, HASH_LEN, what="mortality birth hash"),
        )

    @classmethod
    def from_genesis(cls, genesis_hash: bytes, period: int = MAX_MORTAL_PERIOD) -> Mortality:
        """Born at block 0: valid in blocks 1 .. period - 1."""
        return cls(0, period, genesis_hash)

    @property
    def death(self) -> int:
        """The first block number at which the transaction is dead."""
        return self.birth + self.period

    def is_alive_at(self, number: int) -> bool:
        return self.birth < number < self.death


@dataclass(frozen=True)
class SignedExtra:
    """The data a signature binds besides the call (PROTOCOL section 4).

    `genesis_hash` and `spec_version` travel in the extrinsic (as Ethereum's EIP-155 chain id does)
    rather than only inside the signed payload, so that a transaction for another chain or an old
    runtime is rejected with its own reason instead of a generic bad signature.
    """

    genesis_hash: bytes
    spec_version: int
    nonce: int
    tip: int
    mortality: Mortality

    def to_wire(self) -> list[Any]:
        return [self.genesis_hash, self.spec_version, self.nonce, u128_to_bytes(self.tip), self.mortality.to_wire()]

    @classmethod
    def from_wire(cls, obj: Any) -> SignedExtra:
        genesis, spec, nonce, tip, mortality = expect_list(obj, 5, "signed extra")
        return cls(
            expect_bytes(genesis, HASH_LEN, what="genesis_hash"),
            expect_int(spec, U32_MAX, "spec_version"),
            expect_int(nonce, U64_MAX, "nonce"),
            u128_from_bytes(tip),
            Mortality.from_wire(mortality),
        )


def signing_payload(extra: SignedExtra, call: Call) -> bytes:
    """The bytes a signer signs: (genesis_hash, spec_version, nonce, tip, mortality, call)."""
    return encode([*extra.to_wire(), call.to_wire()])


@dataclass(frozen=True)
class Extrinsic:
    """A signed transaction or an unsigned extrinsic (inherent or self-proving)."""

    call: Call
    signer: PublicKey | None = None
    signature: bytes = b""
    extra: SignedExtra | None = None

    @property
    def is_signed(self) -> bool:
        return self.signer is not None

    def to_wire(self) -> list[Any]:
        if self.signer is None or self.extra is None:
            return [EXTRINSIC_VERSION, self.call.to_wire()]
        return [
            EXTRINSIC_VERSION | SIGNED_FLAG,
            self.signer.to_wire(),
            self.signature,
            self.extra.to_wire(),
            self.call.to_wire(),
        ]

    def encode(self) -> bytes:
        return encode(self.to_wire())

    @classmethod
    def decode(cls, data: bytes, max_len: int = MAX_EXTRINSIC_BYTES) -> Extrinsic:
        obj = expect_list(decode(data, max_len), what="extrinsic")
        if not obj:
            raise DecodeError("extrinsic: empty")
        version = expect_int(obj[0], 255, "extrinsic version")
        if version == EXTRINSIC_VERSION:
            _, call = expect_list(obj, 2, "unsigned extrinsic")
            return cls(Call.from_wire(call))
        if version == EXTRINSIC_VERSION | SIGNED_FLAG:
            _, signer, signature, extra, call = expect_list(obj, 5, "signed extrinsic")
            return cls(
                Call.from_wire(call),
                PublicKey.from_wire(signer),
                expect_bytes(signature, SIGNATURE_LEN, what="signature"),
                SignedExtra.from_wire(extra),
            )
        raise DecodeError(f"extrinsic: unsupported version {version}")

    def signing_payload(self) -> bytes:
        assert self.extra is not None
        return signing_payload(self.extra, self.call)

    def verify_signature(self) -> bool:
        return self.signer is not None and self.signer.verify(self.signing_payload(), self.signature)


def extrinsic_hash(encoded: bytes) -> bytes:
    return blake2b_256(encoded)


def sign_extrinsic(keypair: Any, call: Call, extra: SignedExtra) -> Extrinsic:
    """Build a signed extrinsic with `keypair` (a `node.keys.Keypair`)."""
    return Extrinsic(call, keypair.public, keypair.sign(signing_payload(extra, call)), extra)


def check_amount(value: int) -> int:
    if not 0 <= value <= U128_MAX:
        raise ValueError("amount out of u128 range")
    return value
