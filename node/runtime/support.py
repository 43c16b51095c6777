"""What every runtime module is built from (FRAME's support crate, in miniature).

A module declares, in order: its parameters, its storage keys, its calls (plain functions
`(ctx, origin, *args) -> None` registered with `@call`), its events and its errors. The
`Runtime` in `node.runtime.executive` collects the calls of the listed modules; nothing else
needs to know a module exists.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

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
from node.runtime.overlay import Overlay
from node.types import Call

ACCOUNT_ID_LEN = 32


# ---------------------------------------------------------------------------------------------
# Origins, errors and events
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


class DispatchError(Exception):
    """A call failed by the rules: its changes are rolled back, its fee is still paid.

    `detail` (optional ints or bytes) names what the rule ran into, e.g. the id of the existing
    registration an upload duplicates; the executive appends it to the `ExtrinsicFailed` event
    (like the data a Solidity revert carries).
    """

    def __init__(self, module: str, error: str, *detail: Any) -> None:
        super().__init__(f"{module}.{error}" + (f" {list(detail)}" if detail else ""))
        self.module = module
        self.error = error
        self.detail = detail


class InvalidCall(ValueError):
    """A call whose own arguments can never be valid (a proof inside them fails to check).

    Raised by a module's `validate_call` hook; the executive turns it into an invalid
    transaction, so the pool refuses it and a block carrying it is rejected (like a bad signature).
    """


def ensure(condition: bool, module: str, error: str, *detail: Any) -> None:
    """One-line validity checks next to the rule they enforce."""
    if not condition:
        raise DispatchError(module, error, *detail)


def ensure_signed(origin: Origin) -> bytes:
    if origin.kind is not OriginKind.SIGNED or origin.account is None:
        raise DispatchError("system", "BadOrigin")
    return origin.account


def ensure_root(origin: Origin) -> None:
    if origin.kind is not OriginKind.ROOT:
        raise DispatchError("system", "BadOrigin")


def ensure_none(origin: Origin) -> None:
    if origin.kind is not OriginKind.NONE:
        raise DispatchError("system", "BadOrigin")


@dataclass(frozen=True)
class Event:
    """`phase` is the extrinsic index, or None for block initialization/finalization."""

    phase: int | None
    module: str
    name: str
    fields: tuple[Any, ...] = ()

    def to_wire(self) -> list[Any]:
        """Integer fields are amounts or counters: always encoded as u128 (16 bytes, big-endian)."""
        fields = [u128_to_bytes(f) if isinstance(f, int) else f for f in self.fields]
        return [-1 if self.phase is None else self.phase, self.module, self.name, fields]


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
    timestamp: int = 0
    phase: int | None = None
    events: list[Event] = field(default_factory=list)
    fees_collected: int = 0
    weight_used: int = 0
    length_used: int = 0
    # Set by the executive: dispatch a nested call (sudo) with a given origin.
    dispatch: Callable[[Call, Origin], None] | None = None

    def emit(self, module: str, name: str, *fields: Any) -> None:
        self.events.append(Event(self.phase, module, name, tuple(fields)))

    # Storage helpers for the common value shapes --------------------------------------------

    def get_int(self, key: bytes, default: int = 0) -> int:
        raw = self.state.get(key)
        return default if raw is None else int.from_bytes(raw, "big")

    def put_u128(self, key: bytes, value: int) -> None:
        self.state.set(key, u128_to_bytes(value))

    def get_obj(self, key: bytes) -> Any | None:
        raw = self.state.get(key)
        return None if raw is None else decode(raw)

    def put_obj(self, key: bytes, value: Any) -> None:
        self.state.set(key, encode(value))


def read_u128(get: Callable[[bytes], bytes | None], key: bytes) -> int:
    raw = get(key)
    return 0 if raw is None else u128_from_bytes(raw)


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
) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """Mark a function as a dispatchable call; the module lists it in its `CALLS`."""

    def register(function: Callable[..., None]) -> Callable[..., None]:
        function.call_spec = CallSpec(module, name, function, arg_types, weight, origin)  # type: ignore[attr-defined]
        return function

    return register


def specs_of(*functions: Callable[..., None]) -> list[CallSpec]:
    return [function.call_spec for function in functions]  # type: ignore[attr-defined]
