"""Canonical encoding (PROTOCOL section 2).

Everything that is signed, hashed or stored goes through `encode` and `decode`:

* msgpack with `use_bin_type=True`; structs are fixed-order arrays, never maps;
* decoding is strict: trailing bytes, maps, floats, ext types and oversize containers are
  rejected before anything large is allocated;
* amounts are u128, carried as 16-byte big-endian `bytes` (msgpack ints stop at 2**64).

Decoders of protocol objects (`node.types`) build on `decode` and then check shapes with the
small `expect_*` helpers below, so that every malformed input ends in one exception type,
`DecodeError`, with a message that names what was wrong.
"""

from __future__ import annotations

import hashlib
from typing import Any

import msgpack

U128_MAX = 2**128 - 1
U64_MAX = 2**64 - 1
U32_MAX = 2**32 - 1

# Hard ceilings applied while unpacking, before any container is allocated.
MAX_DECODE_BYTES = 16 * 1024 * 1024
MAX_CONTAINER_LEN = 1_000_000


class DecodeError(ValueError):
    """Raised for any input that is not a canonical encoding of the expected shape."""


def blake2b_256(data: bytes) -> bytes:
    """The chain's hash: blake2b with a 32-byte digest."""
    return hashlib.blake2b(data, digest_size=32).digest()


def encode(obj: Any) -> bytes:
    """Canonical msgpack: bytes stay bytes, str stays str, tuples become arrays."""
    return msgpack.packb(obj, use_bin_type=True, strict_types=False)


def decode(data: bytes, max_len: int = MAX_DECODE_BYTES) -> Any:
    """Strictly decode one msgpack value that must span all of `data`.

    Maps and ext types are refused by the unpacker's limits, oversize containers before they
    are allocated, and the bytes must be the canonical encoding of the value (re-encoding gives
    the same bytes), so no two encodings of one extrinsic or header exist. Value types (no
    floats, no nil where bytes belong) are checked by the typed decoders built on this.
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise DecodeError("expected bytes")
    if len(data) > max_len:
        raise DecodeError(f"encoding of {len(data)} bytes exceeds the limit of {max_len}")
    data = bytes(data)
    unpacker = msgpack.Unpacker(
        raw=False,
        use_list=True,
        strict_map_key=True,
        max_buffer_size=max(len(data), 1),
        max_str_len=len(data),
        max_bin_len=len(data),
        max_array_len=min(len(data), MAX_CONTAINER_LEN),
        max_map_len=0,
        max_ext_len=0,
    )
    unpacker.feed(data)
    try:
        value = unpacker.unpack()
    except msgpack.OutOfData as exc:
        raise DecodeError("truncated encoding") from exc
    except (ValueError, msgpack.UnpackException, TypeError, RecursionError) as exc:
        raise DecodeError(f"malformed encoding: {exc}") from exc
    if unpacker.tell() != len(data):
        raise DecodeError("trailing bytes after encoding")
    try:
        canonical = encode(value) == data
    except (TypeError, ValueError, OverflowError) as exc:
        raise DecodeError(f"malformed encoding: {exc}") from exc
    if not canonical:
        raise DecodeError("non-canonical encoding")
    return value


def decode_trusted(data: bytes) -> Any:
    """Decode bytes this node wrote itself (its own database): no canonical-form checks."""
    return msgpack.unpackb(data, raw=False, use_list=True)


# ---------------------------------------------------------------------------------------------
# Fixed-width integers
# ---------------------------------------------------------------------------------------------


def u128_to_bytes(value: int) -> bytes:
    if not 0 <= value <= U128_MAX:
        raise ValueError(f"{value} is not a u128")
    return value.to_bytes(16, "big")


def u128_from_bytes(data: Any) -> int:
    if not isinstance(data, bytes) or len(data) != 16:
        raise DecodeError("a u128 must be 16 bytes")
    return int.from_bytes(data, "big")


# ---------------------------------------------------------------------------------------------
# Shape checks used by decoders
# ---------------------------------------------------------------------------------------------


def expect_list(value: Any, length: int | None = None, what: str = "value") -> list[Any]:
    if not isinstance(value, list):
        raise DecodeError(f"{what}: expected an array")
    if length is not None and len(value) != length:
        raise DecodeError(f"{what}: expected {length} fields, got {len(value)}")
    return value


def expect_bytes(value: Any, length: int | None = None, max_len: int | None = None, what: str = "value") -> bytes:
    if not isinstance(value, bytes):
        raise DecodeError(f"{what}: expected bytes")
    if length is not None and len(value) != length:
        raise DecodeError(f"{what}: expected {length} bytes, got {len(value)}")
    if max_len is not None and len(value) > max_len:
        raise DecodeError(f"{what}: {len(value)} bytes exceeds {max_len}")
    return value


def expect_int(value: Any, max_value: int = U64_MAX, what: str = "value") -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise DecodeError(f"{what}: expected an integer")
    if not 0 <= value <= max_value:
        raise DecodeError(f"{what}: {value} out of range")
    return value


def expect_str(value: Any, max_len: int = 1024, what: str = "value") -> str:
    if not isinstance(value, str):
        raise DecodeError(f"{what}: expected a string")
    if len(value) > max_len:
        raise DecodeError(f"{what}: string longer than {max_len}")
    return value
