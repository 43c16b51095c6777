"""Parameter types shared by several method families, and the JSON schemas they publish.

Each type is `Annotated[T, ParamType(parse, schema)]` (`node.rpc.jsonrpc`): the table parses
every call's parameters with `parse` before the method runs, and `rpc.discover` shows `schema`.
A type only one family takes lives in that family's module.
"""

from __future__ import annotations

from typing import Annotated

from node.codec import U64_MAX
from node.keys import AddressError, decode_address
from node.rpc.encoding import from_hex, from_quantity
from node.rpc.jsonrpc import JSON, ParamType
from node.types import HASH_LEN

__all__ = [
    "HASH_SCHEMA",
    "HEX_SCHEMA",
    "NUMBER_SCHEMA",
    "AccountId",
    "Count",
    "Hash",
    "RegistrationId",
    "page_size",
]

HEX_SCHEMA = {"type": "string", "pattern": "^0x([0-9a-fA-F]{2})*$"}
HASH_SCHEMA = {"type": "string", "pattern": "^0x[0-9a-fA-F]{64}$"}
NUMBER_SCHEMA = {
    "oneOf": [{"type": "integer", "minimum": 0}, {"type": "string", "pattern": "^0x[0-9a-fA-F]+$"}]
}

# Paged lists (registrations of an account, licences of an account).
MAX_PAGE = 1000
DEFAULT_PAGE = 100


def _hash(value: JSON) -> bytes:
    return from_hex(value, length=HASH_LEN, what="hash")


def _account(value: JSON) -> bytes:
    """A text address, or a raw 32-byte account id in 0x hex."""
    if isinstance(value, str) and value.startswith("0x"):
        return from_hex(value, length=32, what="account id")
    try:
        return decode_address(value)
    except AddressError as exc:
        raise ValueError(str(exc)) from None


def _u64(value: JSON) -> int:
    return from_quantity(value, max_value=U64_MAX, what="id")


def _count(value: JSON) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError("expected a non-negative integer")
    return value


Hash = Annotated[bytes, ParamType(_hash, HASH_SCHEMA)]
AccountId = Annotated[
    bytes, ParamType(_account, {"type": "string", "description": "address or 0x account id"})
]
RegistrationId = Annotated[int, ParamType(_u64, NUMBER_SCHEMA)]
Count = Annotated[int, ParamType(_count, {"type": "integer", "minimum": 0})]


def page_size(limit: int | None) -> int:
    """How many items one page holds: `limit`, at most MAX_PAGE, DEFAULT_PAGE when not given."""
    return DEFAULT_PAGE if limit is None else min(limit, MAX_PAGE)
