"""What every runtime module is built from (FRAME's support crate, in miniature).

A runtime module is one Python module that declares FRAME's five faces, in this order:

1. **parameters** it reads from genesis (a frozen dataclass and a `StorageValue` holding it);
2. **storage**: `StorageValue` and `StorageMap` items, each owning its key and its codec;
3. **calls**: plain functions ``(ctx, origin, *args) -> None`` marked with `@call`;
4. **events**: frozen dataclasses marked with `@event`, deposited with `ctx.deposit_event`;
5. **errors**: `DispatchError` subclasses marked with `@error`, raised (or `ensure`d);

and ends with its declaration, ``MODULE = RuntimeModule(...)``, which names those faces and the
hooks it has: genesis, start and end of block, validity checks, and the notifications of other
modules it answers. `node.runtime.runtime` lists the modules; the executive, the chain spec, the
RPC and the wallet all iterate that list, so a new module is its file plus one line there.

Everything here is deterministic: no clock, no randomness, no floats, no set iteration.
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, ClassVar, Generic, NewType, Protocol, TypeVar

from node.codec import (
    U32_MAX,
    U64_MAX,
    DecodeError,
    decode,
    encode,
    expect_bytes,
    expect_int,
    expect_list,
    expect_str,
    u128_from_bytes,
    u128_to_bytes,
)
from node.keys import decode_address, dev_keypair
from node.runtime.overlay import Overlay, StateGet
from node.types import Call

if typing.TYPE_CHECKING:
    from node.imaging.verify import RenditionFacts

__all__ = [
    "ACCOUNT_ID_LEN", "AccountId", "Balance", "BlockContext", "CallSpec", "DispatchError", "EventRecord",
    "GenesisState", "Host", "InvalidCall", "Notification", "NONE", "Origin", "OriginKind", "ROOT",
    "RuntimeModule", "StateGet", "StorageMap", "StorageValue", "call", "ensure", "ensure_none", "ensure_root",
    "ensure_signed", "error", "event",
]  # fmt: skip

ACCOUNT_ID_LEN = 32

# Field types of events and errors. On the wire every int is a u128 (16 bytes, big-endian); the
# declared type says how a reader shows it: an `AccountId` as an address, a `Balance` in IMG.
AccountId = NewType("AccountId", bytes)
Balance = NewType("Balance", int)

T = TypeVar("T")


# ---------------------------------------------------------------------------------------------
# Storage: items that own their keys and codecs
# ---------------------------------------------------------------------------------------------


class Codec(Protocol[T]):
    def encode(self, value: T) -> bytes: ...

    def decode(self, raw: bytes) -> T: ...


@dataclass(frozen=True)
class UInt:
    """An unsigned integer of `width` bytes, big-endian (keys sort in numeric order)."""

    width: int

    def encode(self, value: int) -> bytes:
        return value.to_bytes(self.width, "big")

    def decode(self, raw: bytes) -> int:
        return int.from_bytes(raw, "big")


class RawBytes:
    """Bytes stored as they are: hashes, account ids, flags."""

    def encode(self, value: bytes) -> bytes:
        return value

    def decode(self, raw: bytes) -> bytes:
        return raw


class Msgpack:
    """A plain msgpack value (lists, ints, bytes, strings) in the canonical encoding."""

    def encode(self, value: Any) -> bytes:
        return encode(value)

    def decode(self, raw: bytes) -> Any:
        return decode(raw)


@dataclass(frozen=True)
class Record(Generic[T]):
    """A record type with `to_wire()` / `from_wire(obj)`, stored as its canonical msgpack."""

    cls: Any

    def encode(self, value: T) -> bytes:
        return encode(value.to_wire())  # type: ignore[attr-defined]

    def decode(self, raw: bytes) -> T:
        return typing.cast(T, self.cls.from_wire(decode(raw)))


U8, U16, U32, U64, U128 = UInt(1), UInt(2), UInt(4), UInt(8), UInt(16)
BYTES = RawBytes()
MSGPACK = Msgpack()


class KeyValueState(Protocol):
    """Where storage items read and write: the block's overlay, or the genesis state."""

    def get(self, key: bytes) -> bytes | None: ...

    def set(self, key: bytes, value: bytes) -> None: ...

    def delete(self, key: bytes) -> None: ...


Readable = Any  # a `StateGet`, a `KeyValueState` or a `BlockContext` (see `_reader`)
Writable = Any  # a `KeyValueState` or a `BlockContext`


def _reader(state: Readable) -> StateGet:
    if isinstance(state, BlockContext):
        return state.state.get
    get = getattr(state, "get", None)
    return typing.cast(StateGet, get if get is not None else state)


def _writer(target: Writable) -> KeyValueState:
    return target.state if isinstance(target, BlockContext) else target


@dataclass(frozen=True)
class StorageValue(Generic[T]):
    """One value under a fixed key. Absent reads as `default` (FRAME's ValueQuery) or None."""

    key: bytes
    codec: Codec[T]
    default: T | None = None

    def get(self, state: Readable) -> T | None:
        raw = _reader(state)(self.key)
        return self.default if raw is None else self.codec.decode(raw)

    def value(self, state: Readable) -> T:
        """The stored value or the declared default: for items declared with one."""
        raw = _reader(state)(self.key)
        if raw is not None:
            return self.codec.decode(raw)
        if self.default is None:
            raise LookupError(f"{self.key!r} is unset and has no default")
        return self.default

    def exists(self, state: Readable) -> bool:
        return _reader(state)(self.key) is not None

    def put(self, target: Writable, value: T) -> None:
        _writer(target).set(self.key, self.codec.encode(value))

    def delete(self, target: Writable) -> None:
        _writer(target).delete(self.key)


@dataclass(frozen=True)
class StorageMap(Generic[T]):
    """Values under `prefix || encoded key`; a key of several parts is given as a tuple.

    `keys` are the codecs of the key's parts, concatenated in order (no hashing: the trie already
    spreads keys, and readable keys make state dumps and proofs easy to follow).
    """

    prefix: bytes
    keys: tuple[Codec[Any], ...]
    codec: Codec[T]
    default: T | None = None

    def key(self, key: Any) -> bytes:
        parts = key if len(self.keys) > 1 else (key,)
        if len(parts) != len(self.keys):
            raise ValueError(f"{self.prefix!r}: a key has {len(self.keys)} parts")
        return self.prefix + b"".join(codec.encode(part) for codec, part in zip(self.keys, parts, strict=True))

    def get(self, state: Readable, key: Any) -> T | None:
        raw = _reader(state)(self.key(key))
        return self.default if raw is None else self.codec.decode(raw)

    def value(self, state: Readable, key: Any) -> T:
        """The stored value or the declared default: for maps declared with one."""
        raw = _reader(state)(self.key(key))
        if raw is not None:
            return self.codec.decode(raw)
        if self.default is None:
            raise LookupError(f"{self.key(key)!r} is unset and has no default")
        return self.default

    def exists(self, state: Readable, key: Any) -> bool:
        return _reader(state)(self.key(key)) is not None

    def put(self, target: Writable, key: Any, value: T) -> None:
        _writer(target).set(self.key(key), self.codec.encode(value))

    def delete(self, target: Writable, key: Any) -> None:
        _writer(target).delete(self.key(key))


StorageItem = StorageValue[Any] | StorageMap[Any]


# ---------------------------------------------------------------------------------------------
# Events and errors: declared types, one wire form
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FieldSpec:
    """A declared field of an event or error: its name and type (int, Balance, AccountId, bytes,
    str), or `rest` for an error's detail spread over the remaining wire fields."""

    name: str
    type: Any
    rest: bool = False


def _field_specs(cls: type) -> tuple[FieldSpec, ...]:
    hints = typing.get_type_hints(cls)
    specs = []
    for name, hint in hints.items():
        if typing.get_origin(hint) is ClassVar:
            continue
        rest = typing.get_origin(hint) is tuple
        if not rest and hint not in (int, Balance, AccountId, bytes, str):
            raise TypeError(f"{cls.__name__}.{name}: field type {hint!r} is not int, Balance, AccountId, bytes or str")
        specs.append(FieldSpec(name, hint, rest))
    if any(spec.rest for spec in specs[:-1]):
        raise TypeError(f"{cls.__name__}: only the last field may be a tuple")
    return tuple(specs)


def _wire_value(value: Any) -> Any:
    """Integer fields are amounts or counters: always encoded as u128 (16 bytes, big-endian)."""
    return u128_to_bytes(value) if isinstance(value, int) else value


def decode_field_values(specs: tuple[FieldSpec, ...], wire: list[Any], what: str) -> list[Any]:
    """Turn wire fields back into values of the declared types (the `rest` field stays raw)."""
    values: list[Any] = []
    for index, spec in enumerate(specs):
        if spec.rest:
            values.append(tuple(wire[index:]))
            return values
        if index >= len(wire):
            raise DecodeError(f"{what}: missing field {spec.name}")
        raw = wire[index]
        if spec.type in (int, Balance):
            values.append(u128_from_bytes(raw))
        elif spec.type in (bytes, AccountId):
            values.append(expect_bytes(raw, what=f"{what}.{spec.name}"))
        else:
            values.append(expect_str(raw, 1 << 20, f"{what}.{spec.name}"))
    if len(wire) != len(specs):
        raise DecodeError(f"{what}: {len(wire)} fields, declared {len(specs)}")
    return values


def event(module: str) -> Callable[[type[T]], type[T]]:
    """Declare an event of `module`: the class becomes a frozen dataclass with typed fields."""

    def declare(cls: type[T]) -> type[T]:
        cls = dataclass(frozen=True)(cls)
        cls.MODULE = module  # type: ignore[attr-defined]
        cls.NAME = cls.__name__  # type: ignore[attr-defined]
        cls.FIELDS = _field_specs(cls)  # type: ignore[attr-defined]
        return cls

    return declare


@dataclass(frozen=True)
class EventRecord:
    """An event as stored in `system:events`: `phase` is the extrinsic index, or None for block
    initialization/finalization; `fields` are the event's values in declaration order."""

    phase: int | None
    module: str
    name: str
    fields: tuple[Any, ...] = ()

    @classmethod
    def of(cls, phase: int | None, event: Any) -> EventRecord:
        values: list[Any] = []
        for spec in event.FIELDS:
            value = getattr(event, spec.name)
            values.extend(value if spec.rest else (value,))
        return cls(phase, event.MODULE, event.NAME, tuple(values))

    def to_wire(self) -> list[Any]:
        return [-1 if self.phase is None else self.phase, self.module, self.name, [_wire_value(f) for f in self.fields]]

    @classmethod
    def from_wire(cls, obj: Any) -> EventRecord:
        phase, module, name, fields = expect_list(obj, 4, "event")
        if phase != -1:
            expect_int(phase, U32_MAX, "event phase")
        return cls(
            None if phase == -1 else phase,
            expect_str(module, 64, "event module"),
            expect_str(name, 64, "event name"),
            tuple(expect_list(fields, what="event fields")),
        )


class DispatchError(Exception):
    """A call failed by the rules: its changes are rolled back, its fee is still paid.

    Each module declares its errors as subclasses marked with `@error`; their fields (the
    *detail*) name what the rule ran into, e.g. the id of the registration an upload duplicates.
    The executive records them in the `ExtrinsicFailed` event (like the data of a Solidity revert).
    """

    MODULE: ClassVar[str] = ""
    NAME: ClassVar[str] = ""
    FIELDS: ClassVar[tuple[FieldSpec, ...]] = ()

    def __init__(self, *detail: Any) -> None:
        if len(detail) != len(self.FIELDS):
            raise TypeError(f"{self.full_name} takes {len(self.FIELDS)} detail fields, got {len(detail)}")
        summary = (self.__doc__ or "").strip().splitlines()[0] if self.__doc__ else ""
        shown = ", ".join(repr(d) if not isinstance(d, bytes) else "0x" + d.hex() for d in detail)
        super().__init__(self.full_name + (f"({shown})" if detail else "") + (f": {summary}" if summary else ""))
        self.detail = detail

    @classmethod
    def qualified_name(cls) -> str:
        return f"{cls.MODULE}.{cls.NAME}"

    @property
    def full_name(self) -> str:
        return self.qualified_name()

    @property
    def module(self) -> str:
        return self.MODULE

    @property
    def error(self) -> str:
        return self.NAME


E = TypeVar("E", bound=type[DispatchError])


def error(module: str) -> Callable[[E], E]:
    """Declare an error of `module`; annotated class attributes are its detail fields, in order."""

    def declare(cls: E) -> E:
        cls.MODULE = module
        cls.NAME = cls.__name__
        cls.FIELDS = _field_specs(cls)
        return cls

    return declare


class InvalidCall(ValueError):
    """A call whose own arguments can never be valid (a proof inside them fails to check).

    Raised by a module's `validate_call` hook; the executive turns it into an invalid
    transaction, so the pool refuses it and a block carrying it is rejected (like a bad signature).
    """


def ensure(condition: bool, failure: type[DispatchError], *detail: Any) -> None:
    """One-line validity checks next to the rule they enforce."""
    if not condition:
        raise failure(*detail)


# ---------------------------------------------------------------------------------------------
# Origins
# ---------------------------------------------------------------------------------------------


class OriginKind(Enum):
    SIGNED = "signed"
    ROOT = "root"
    NONE = "none"  # unsigned: inherents and self-proving extrinsics


@dataclass(frozen=True)
class Origin:
    kind: OriginKind
    account: bytes | None = None

    @staticmethod
    def signed(account: bytes) -> Origin:
        return Origin(OriginKind.SIGNED, account)


ROOT = Origin(OriginKind.ROOT)
NONE = Origin(OriginKind.NONE)


@error("system")
class BadOrigin(DispatchError):
    """The call needs another origin (signed, root or none)."""


def ensure_signed(origin: Origin) -> bytes:
    if origin.kind is not OriginKind.SIGNED or origin.account is None:
        raise BadOrigin()
    return origin.account


def ensure_root(origin: Origin) -> None:
    if origin.kind is not OriginKind.ROOT:
        raise BadOrigin()


def ensure_none(origin: Origin) -> None:
    if origin.kind is not OriginKind.NONE:
        raise BadOrigin()


# ---------------------------------------------------------------------------------------------
# The host: heavy pure functions the runtime asks of the client
# ---------------------------------------------------------------------------------------------


class Host:
    """Pure computations too heavy to repeat, asked of the client (Substrate's host functions).

    This default computes every time; the client passes one that memoises
    (`node.core.verification`), so the pool, the block builder and import verify a registration's
    rendition once per node. The answer never depends on which host gives it.
    """

    def rendition_facts(self, rendition: bytes, key: bytes) -> RenditionFacts:
        from node.imaging.verify import rendition_facts

        return rendition_facts(rendition, key)


PURE_HOST = Host()


# ---------------------------------------------------------------------------------------------
# Notifications: one module announces, others answer (FRAME's handler traits)
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Notification:
    """Something a module announces inside a block, e.g. "a registration changed owner".

    The announcing module declares it; modules that care list a handler for it in their
    `RuntimeModule.answers`. Handlers run in module order, inside the announcing call.
    """

    name: str


# ---------------------------------------------------------------------------------------------
# Block context: what a call can see and touch
# ---------------------------------------------------------------------------------------------


@dataclass
class BlockContext:
    state: Overlay
    number: int
    parent_hash: bytes
    slot: int
    author: bytes
    params: Any
    host: Host = PURE_HOST
    timestamp: int = 0
    phase: int | None = None
    events: list[EventRecord] = field(default_factory=list)
    fees_collected: int = 0
    weight_used: int = 0
    length_used: int = 0
    # Set by the executive: dispatch a nested call (sudo) with a given origin; announce to modules.
    dispatch: Callable[[Call, Origin], None] | None = None
    announce: Callable[[BlockContext, Notification, tuple[Any, ...]], None] | None = None

    def deposit_event(self, event: Any) -> None:
        self.events.append(EventRecord.of(self.phase, event))

    def notify(self, notification: Notification, *args: Any) -> None:
        """Let every module that answers `notification` act on it now (in module order)."""
        if self.announce is not None:
            self.announce(self, notification, args)


# ---------------------------------------------------------------------------------------------
# Genesis
# ---------------------------------------------------------------------------------------------


@dataclass
class GenesisState:
    """The genesis storage being built from a chain spec (a dict with the overlay's interface).

    `spec` is the chain spec's JSON; each module's genesis hook reads its own sections and writes
    through its storage items, in module order (so `balances` sees what `system` wrote).
    """

    spec: Mapping[str, Any]
    spec_version: int
    storage: dict[bytes, bytes] = field(default_factory=dict)

    def get(self, key: bytes) -> bytes | None:
        return self.storage.get(key)

    def set(self, key: bytes, value: bytes) -> None:
        self.storage[key] = value

    def delete(self, key: bytes) -> None:
        self.storage.pop(key, None)

    def section(self, name: str) -> Mapping[str, Any]:
        """A section of the spec, `{}` when absent (each module keeps its defaults then)."""
        value = self.spec.get(name, {})
        if not isinstance(value, Mapping):
            raise ValueError(f"chain spec section {name!r} must be an object")
        return value


def resolve_account(text: str) -> bytes:
    """A chain spec's account: a dev URI (`//Alice`) -> its ed25519 account id, else an address."""
    if text.startswith("//"):
        return dev_keypair(text).account_id
    return decode_address(text)


def resolve_authority(text: str) -> bytes:
    """A chain spec's authority: its ed25519 public key, from a dev URI, 0x-hex or an address."""
    if text.startswith("//"):
        return dev_keypair(text).public.data
    if text.startswith("0x") and len(text) == 66:
        return bytes.fromhex(text[2:])
    return decode_address(text)


# ---------------------------------------------------------------------------------------------
# Argument types and call registration
# ---------------------------------------------------------------------------------------------


def arg_account(value: Any) -> bytes:
    return expect_bytes(value, ACCOUNT_ID_LEN, what="account id")


def arg_u128(value: Any) -> int:
    return u128_from_bytes(value)


def arg_u64(value: Any) -> int:
    return expect_int(value, U64_MAX, "u64 argument")


def arg_u32(value: Any) -> int:
    return expect_int(value, U32_MAX, "u32 argument")


def arg_bool(value: Any) -> bool:
    if not isinstance(value, bool):
        raise DecodeError("bool argument: expected true or false")
    return value


def arg_bytes(max_len: int) -> Callable[[Any], bytes]:
    def parse(value: Any) -> bytes:
        return expect_bytes(value, max_len=max_len, what="bytes argument")

    return parse


def arg_str(max_len: int) -> Callable[[Any], str]:
    def parse(value: Any) -> str:
        return expect_str(value, max_len, "string argument")

    return parse


def arg_call(value: Any) -> Call:
    return Call.from_wire(value)


def arg_list(item: Callable[[Any], Any], max_items: int) -> Callable[[Any], list[Any]]:
    def parse(value: Any) -> list[Any]:
        items = expect_list(value, what="list argument")
        if len(items) > max_items:
            raise DecodeError(f"list argument longer than {max_items}")
        return [item(x) for x in items]

    return parse


@dataclass(frozen=True)
class CallSpec:
    module: str
    name: str
    function: Callable[..., None]
    arg_types: tuple[Callable[[Any], Any], ...]
    weight: int
    origin: OriginKind
    inherent: bool = False  # an unsigned call the block author must put in (timestamp.set)

    @property
    def full_name(self) -> str:
        return f"{self.module}.{self.name}"

    def parse_args(self, args: tuple[Any, ...]) -> list[Any]:
        if len(args) != len(self.arg_types):
            raise DecodeError(f"{self.full_name}: expected {len(self.arg_types)} arguments, got {len(args)}")
        return [parse(arg) for parse, arg in zip(self.arg_types, args, strict=True)]


def call(
    module: str,
    name: str,
    *arg_types: Callable[[Any], Any],
    weight: int,
    origin: OriginKind = OriginKind.SIGNED,
    inherent: bool = False,
) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """Mark a function as a dispatchable call; the module lists it in its declaration."""

    def register(function: Callable[..., None]) -> Callable[..., None]:
        function.call_spec = CallSpec(module, name, function, arg_types, weight, origin, inherent)  # type: ignore[attr-defined]
        return function

    return register


# ---------------------------------------------------------------------------------------------
# The module declaration
# ---------------------------------------------------------------------------------------------

# Hook signatures, named for what they are given.
BlockHook = Callable[[BlockContext], None]
GenesisHook = Callable[[GenesisState], None]
# validate_call(get, genesis_hash, signer, call name, parsed args, host): raise InvalidCall.
ValidateCall = Callable[[StateGet, bytes, bytes, str, list[Any], Host], None]
# validate_unsigned(get, genesis_hash, block number, call name, parsed args) -> the tag the
# extrinsic is unique by; `number` is the block it is checked for (the pool: best + 1).
ValidateUnsigned = Callable[[StateGet, bytes, int, str, list[Any]], bytes]


class InvalidUnsigned(ValueError):
    """An unsigned extrinsic whose proof does not hold (raised by `validate_unsigned`)."""


class BlockQuotaReached(InvalidUnsigned):
    """Valid, but this block holds as many of its kind as it may: a later block can take it."""


@dataclass(frozen=True)
class RuntimeModule:
    """A module's five faces and its hooks, in one declaration (FRAME's `#[pallet]`)."""

    name: str
    calls: tuple[Callable[..., None], ...] = ()
    events: tuple[type, ...] = ()
    errors: tuple[type[DispatchError], ...] = ()
    storage: tuple[StorageItem, ...] = ()
    genesis: GenesisHook | None = None
    on_initialize: BlockHook | None = None
    on_finalize: BlockHook | None = None
    validate_call: ValidateCall | None = None
    validate_unsigned: ValidateUnsigned | None = None
    answers: Mapping[Notification, Callable[..., Any]] = field(default_factory=dict)

    @property
    def call_specs(self) -> tuple[CallSpec, ...]:
        return tuple(function.call_spec for function in self.calls)  # type: ignore[attr-defined]

    def check(self) -> None:
        """Raise ValueError if a face is declared under another module's name."""
        for spec in self.call_specs:
            if spec.module != self.name:
                raise ValueError(f"call {spec.full_name} listed by module {self.name}")
        for declared in (*self.events, *self.errors):
            if declared.MODULE != self.name:  # type: ignore[attr-defined]
                raise ValueError(f"{declared.__name__} of {declared.MODULE} listed by module {self.name}")  # type: ignore[attr-defined]


def fields_of(value: Any) -> dict[str, Any]:
    """An event's fields by name (for renderers); works on any declared event instance."""
    return {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
