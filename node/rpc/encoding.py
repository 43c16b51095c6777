"""JSON shapes of protocol data, as Substrate's RPC spells them.

Hashes and byte strings are `0x`-prefixed lower-case hex; block numbers inside headers are `0x`
hex quantities (Substrate's `"number": "0x1a"`); each digest item is the hex of its canonical
encoding, so a reader can rebuild the exact header bytes and check the block hash.

The `*_from_json` functions are the inverse, shared by the RPC server (parsing parameters) and the
typed client (parsing results). They raise `ValueError` for anything malformed; the server turns
that into "invalid params".
"""

from __future__ import annotations

import re
from typing import Any

from node.codec import U32_MAX, DecodeError, decode, encode
from node.types import ENGINE_FINALITY, HASH_LEN, Block, DigestItem, Header, merkle_root

_HEX = re.compile(r"0x(?:[0-9a-fA-F]{2})*")
_QUANTITY = re.compile(r"0x(?:0|[1-9a-fA-F][0-9a-fA-F]*)")


# ---------------------------------------------------------------------------------------------
# Hex
# ---------------------------------------------------------------------------------------------


def to_hex(data: bytes) -> str:
    return "0x" + data.hex()


def from_hex(
    value: Any, *, length: int | None = None, max_len: int | None = None, what: str = "value"
) -> bytes:
    """`0x`-prefixed hex -> bytes, checking the length before decoding anything large."""
    if not isinstance(value, str):
        raise ValueError(f"{what}: expected a 0x-prefixed hex string")
    if max_len is not None and len(value) > 2 + 2 * max_len:
        raise ValueError(f"{what}: longer than {max_len} bytes")
    if not _HEX.fullmatch(value):
        raise ValueError(f"{what}: not 0x-prefixed hex with an even number of digits")
    data = bytes.fromhex(value[2:])
    if length is not None and len(data) != length:
        raise ValueError(f"{what}: expected {length} bytes, got {len(data)}")
    return data


def to_quantity(value: int) -> str:
    """Minimal hex for a number, as Substrate writes header numbers: 0 -> "0x0", 26 -> "0x1a"."""
    return hex(value)


def from_quantity(value: Any, *, max_value: int = U32_MAX, what: str = "number") -> int:
    """A block number given as a JSON integer or a hex quantity ("0x1a"); Substrate takes both."""
    if isinstance(value, bool):
        raise ValueError(f"{what}: expected an integer or a 0x hex quantity")
    if isinstance(value, int):
        number = value
    elif isinstance(value, str) and len(value) <= 2 + 64 and _QUANTITY.fullmatch(value):
        number = int(value, 16)
    else:
        raise ValueError(f"{what}: expected an integer or a 0x hex quantity")
    if not 0 <= number <= max_value:
        raise ValueError(f"{what}: {number} is out of range")
    return number


# ---------------------------------------------------------------------------------------------
# Headers and blocks
# ---------------------------------------------------------------------------------------------


def header_to_json(header: Header) -> dict[str, Any]:
    return {
        "parentHash": to_hex(header.parent_hash),
        "number": to_quantity(header.number),
        "stateRoot": to_hex(header.state_root),
        "extrinsicsRoot": to_hex(header.extrinsics_root),
        "digest": {"logs": [to_hex(encode(item.to_wire())) for item in header.digest]},
    }


def header_from_json(obj: Any) -> Header:
    """Rebuild a `Header` exactly; every field is checked as the binary decoder would."""
    if not isinstance(obj, dict):
        raise ValueError("header: expected an object")
    digest = obj.get("digest")
    logs = digest.get("logs") if isinstance(digest, dict) else None
    if not isinstance(logs, list):
        raise ValueError("header: expected digest.logs to be a list")
    try:
        items = tuple(DigestItem.from_wire(decode(from_hex(log, what="digest log"))) for log in logs)
        header = Header(
            from_hex(obj.get("parentHash"), length=HASH_LEN, what="parentHash"),
            from_quantity(obj.get("number"), what="header number"),
            from_hex(obj.get("stateRoot"), length=HASH_LEN, what="stateRoot"),
            from_hex(obj.get("extrinsicsRoot"), length=HASH_LEN, what="extrinsicsRoot"),
            items,
        )
        # Round-trip through the strict binary decoder so a JSON header can never describe
        # something a binary one could not (too many digest items, oversize data).
        return Header.decode(header.encode())
    except (DecodeError, ValueError) as exc:
        raise ValueError(f"header: {exc}") from exc


def justifications_to_json(justification: bytes | None) -> list[Any] | None:
    """Substrate's `justifications`: a list of (engine id as a byte array, encoded proof)."""
    if justification is None:
        return None
    return [[list(ENGINE_FINALITY), to_hex(justification)]]


def block_to_json(block: Block, justification: bytes | None = None) -> dict[str, Any]:
    return {
        "block": {
            "header": header_to_json(block.header),
            "extrinsics": [to_hex(extrinsic) for extrinsic in block.extrinsics],
        },
        "justifications": justifications_to_json(justification),
    }


def block_from_json(obj: Any) -> Block:
    """Rebuild a `Block` from `chain_getBlock`'s result and check its body against the header."""
    inner = obj.get("block") if isinstance(obj, dict) else None
    if not isinstance(inner, dict) or not isinstance(inner.get("extrinsics"), list):
        raise ValueError("block: expected {'block': {'header': ..., 'extrinsics': [...]}}")
    header = header_from_json(inner.get("header"))
    extrinsics = tuple(from_hex(x, what="extrinsic") for x in inner["extrinsics"])
    if merkle_root(list(extrinsics)) != header.extrinsics_root:
        raise ValueError("block: extrinsics do not match the header's extrinsics root")
    return Block(header, extrinsics)


def jsonable(value: Any) -> Any:
    """Make node-side data JSON-ready: bytes become 0x hex, and any other object (a libp2p peer
    id, say) its text form, so a new field in the core cannot turn a method into an error."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (bytes, bytearray, memoryview)):
        return to_hex(bytes(value))
    if isinstance(value, dict):
        return {str(key): jsonable(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(item) for item in value]
    return str(value)
