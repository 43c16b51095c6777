"""The JSON shapes (`node.rpc.encoding`) and the method table's typed parameters, without a server."""

from __future__ import annotations

from typing import Annotated, Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from node.rpc.encoding import (
    block_from_json,
    block_to_json,
    from_hex,
    from_quantity,
    header_from_json,
    header_to_json,
    jsonable,
    to_quantity,
)
from node.rpc.jsonrpc import CallContext, MethodTable, ParamType
from node.types import Block, Header, aura_pre_digest, aura_seal, merkle_root

HASHES = st.binary(min_size=32, max_size=32)
# Parameter types must be module-level names: the table resolves annotations with get_type_hints.
Number = Annotated[int, ParamType(int, {"type": "integer"})]


@given(
    HASHES, st.integers(0, 2**32 - 1), HASHES, st.integers(0, 2**64 - 1), st.binary(min_size=64, max_size=64)
)
def test_header_round_trip(parent: bytes, number: int, root: bytes, slot: int, signature: bytes) -> None:
    header = Header(parent, number, root, merkle_root([]), (aura_pre_digest(slot), aura_seal(signature)))
    as_json = header_to_json(header)
    assert as_json["number"] == hex(number)
    assert header_from_json(as_json) == header
    assert header_from_json(as_json).hash == header.hash


def test_block_round_trip_checks_the_extrinsics_root() -> None:
    extrinsics = (b"\x01\x02", b"\x03")
    header = Header(b"\x00" * 32, 1, b"\x11" * 32, merkle_root(list(extrinsics)), ())
    block = Block(header, extrinsics)
    as_json = block_to_json(block, justification=b"\xaa")
    assert as_json["justifications"] == [[list(b"FRNK"), "0xaa"]]
    assert block_from_json(as_json) == block
    as_json["block"]["extrinsics"].append("0x04")
    with pytest.raises(ValueError, match="extrinsics root"):
        block_from_json(as_json)


@pytest.mark.parametrize(
    "bad",
    [
        None,
        {},
        {"digest": {"logs": []}},
        {"parentHash": "0x00", "number": "0x0", "stateRoot": "0x00", "extrinsicsRoot": "0x00", "digest": {}},
        {**header_to_json(Header(b"\x00" * 32, 0, b"\x00" * 32, b"\x00" * 32)), "number": "0x"},
        {**header_to_json(Header(b"\x00" * 32, 0, b"\x00" * 32, b"\x00" * 32)), "number": "0x01"},
        {**header_to_json(Header(b"\x00" * 32, 0, b"\x00" * 32, b"\x00" * 32)), "digest": {"logs": ["0x00"]}},
    ],
)
def test_malformed_headers_are_value_errors(bad: Any) -> None:
    with pytest.raises(ValueError):
        header_from_json(bad)


def test_hex_and_quantities() -> None:
    assert from_hex("0x") == b""
    assert from_hex("0xABcd") == b"\xab\xcd"
    for bad in ("", "0x1", "abcd", "0xgg", 12, None, "0X12"):
        with pytest.raises(ValueError):
            from_hex(bad)
    with pytest.raises(ValueError, match="longer than 2 bytes"):
        from_hex("0x" + "00" * 3, max_len=2)
    with pytest.raises(ValueError, match="expected 2 bytes"):
        from_hex("0x00", length=2)
    assert [to_quantity(n) for n in (0, 26)] == ["0x0", "0x1a"]
    assert from_quantity("0x1a") == from_quantity(26) == 26
    for bad_number in ("0x", "0x01", "26", -1, True, 1.0, 2**32, None):
        with pytest.raises(ValueError):
            from_quantity(bad_number)


def test_jsonable() -> None:
    class PeerId:
        def __str__(self) -> str:
            return "12D3KooW"

    assert jsonable({"peerId": PeerId(), "best": b"\x01", "n": [1, (b"", None)]}) == {
        "peerId": "12D3KooW",
        "best": "0x01",
        "n": [1, ["0x", None]],
    }


def test_method_table_reads_typed_parameters() -> None:
    table = MethodTable()

    @table.method("demo_add")
    async def add(ctx: CallContext, a: Number, b: Number | None = None) -> int:
        """Add two numbers.

        More text that is not the summary."""
        return a + (b or 0)

    method = table.get("demo_add")
    assert method is not None
    assert [(p.name, p.required) for p in method.params] == [("a", True), ("b", False)]
    assert method.summary == "Add two numbers."
    assert method.bind([1, 2]) == [1, 2] and method.bind({"a": 1}) == [1, None]

    with pytest.raises(TypeError, match="Annotated"):

        @table.method("demo_untyped")
        async def untyped(ctx: CallContext, a: int) -> int:
            return a

    with pytest.raises(TypeError, match="optional"):

        @table.method("demo_not_nullable")
        async def not_nullable(ctx: CallContext, a: Number = 3) -> int:
            return a

    with pytest.raises(ValueError, match="twice"):
        table.method("demo_add")(add)
