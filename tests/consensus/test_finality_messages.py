"""Finality messages: canonical encodings, the signing payload, the threshold, strict decoding."""

from __future__ import annotations

import msgpack
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from node.codec import DecodeError, encode
from node.consensus.finality import (
    CatchUp,
    EquivocationProof,
    Justification,
    SignedVote,
    Stage,
    Vote,
    threshold,
    vote_signing_payload,
)
from tests.consensus.sim import GENESIS, GENESIS_HASH, extend, sim_keypair

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
CONTAINERS = (SignedVote, Justification, EquivocationProof, CatchUp)

BLOCKS = extend(GENESIS, 3)
KEYS = [sim_keypair(i) for i in range(4)]


def signed(voter: int, stage: Stage, block_index: int, round_number: int = 3, set_id: int = 1) -> SignedVote:
    block = BLOCKS[block_index]
    return SignedVote.sign(
        KEYS[voter], GENESIS_HASH, set_id, round_number, stage, Vote(block.hash, block.number)
    )


def samples() -> list[object]:
    prevote, precommit = signed(0, Stage.PREVOTE, 2), signed(1, Stage.PRECOMMIT, 1)
    justification = Justification(
        3,
        1,
        BLOCKS[0].hash,
        1,
        (precommit, signed(2, Stage.PRECOMMIT, 2)),
        (BLOCKS[1].encode(), BLOCKS[2].encode()),
    )
    proof = EquivocationProof(1, 3, Stage.PREVOTE, prevote, signed(0, Stage.PREVOTE, 1))
    catch_up = CatchUp(1, 3, (prevote,), (precommit,))
    return [prevote, justification, proof, catch_up]


def test_threshold_is_grandpas() -> None:
    assert [threshold(n) for n in range(1, 11)] == [1, 2, 3, 3, 4, 5, 5, 6, 7, 7]
    for n in range(1, 200):
        faulty = (n - 1) // 3
        assert threshold(n) == n - faulty
        assert 2 * threshold(n) - n > faulty  # two quorums share an honest voter
    with pytest.raises(ValueError):
        threshold(0)


def test_signing_payload_is_the_documented_array() -> None:
    vote = Vote(b"\x07" * 32, 42)
    payload = vote_signing_payload(GENESIS_HASH, 5, 9, Stage.PRECOMMIT, vote)
    assert payload == encode([b"imagechain-finality", GENESIS_HASH, 5, 9, 1, b"\x07" * 32, 42])
    signed_vote = SignedVote.sign(KEYS[0], GENESIS_HASH, 5, 9, Stage.PRECOMMIT, vote)
    assert KEYS[0].public.verify(payload, signed_vote.signature)
    # every field is bound: another stage, round, set or chain gives another payload
    others = [
        vote_signing_payload(GENESIS_HASH, 5, 9, Stage.PREVOTE, vote),
        vote_signing_payload(GENESIS_HASH, 5, 10, Stage.PRECOMMIT, vote),
        vote_signing_payload(GENESIS_HASH, 6, 9, Stage.PRECOMMIT, vote),
        vote_signing_payload(b"\x01" * 32, 5, 9, Stage.PRECOMMIT, vote),
        vote_signing_payload(GENESIS_HASH, 5, 9, Stage.PRECOMMIT, Vote(b"\x07" * 32, 43)),
    ]
    assert all(not KEYS[0].public.verify(other, signed_vote.signature) for other in others)


@pytest.mark.parametrize("message", samples(), ids=lambda m: type(m).__name__)
def test_round_trip(message: object) -> None:
    encoded = message.encode()  # type: ignore[attr-defined]
    decoded = type(message).decode(encoded)  # type: ignore[attr-defined]
    assert decoded == message
    assert decoded.encode() == encoded


def test_encodings_are_fixed_order_arrays() -> None:
    vote = signed(0, Stage.PREVOTE, 2)
    assert msgpack.unpackb(vote.encode()) == [
        3,
        1,
        0,
        [BLOCKS[2].hash, 3],
        KEYS[0].public.data,
        vote.signature,
    ]


@pytest.mark.parametrize(
    "wire",
    [
        [3, 1, 2, [b"\x00" * 32, 1], b"\x00" * 32, b"\x00" * 64],  # stage 2
        [3, 1, 0, [b"\x00" * 31, 1], b"\x00" * 32, b"\x00" * 64],  # short hash
        [3, 1, 0, [b"\x00" * 32, 2**32], b"\x00" * 32, b"\x00" * 64],  # number beyond u32
        [3, 1, 0, [b"\x00" * 32, -1], b"\x00" * 32, b"\x00" * 64],
        [3, 1, 0, [b"\x00" * 32, 1], b"\x00" * 33, b"\x00" * 64],  # long key
        [3, 1, 0, [b"\x00" * 32, 1], b"\x00" * 32, b"\x00" * 63],  # short signature
        [3, 1, True, [b"\x00" * 32, 1], b"\x00" * 32, b"\x00" * 64],  # bool is not an int
        [3, 1, 0, [b"\x00" * 32, 1], "x" * 32, b"\x00" * 64],  # str is not bytes
        [3, 1, 0, [b"\x00" * 32, 1], b"\x00" * 32],  # missing field
    ],
)
def test_malformed_votes_are_refused(wire: list[object]) -> None:
    with pytest.raises(DecodeError):
        SignedVote.decode(msgpack.packb(wire, use_bin_type=True))


def test_trailing_bytes_and_non_canonical_forms_are_refused() -> None:
    encoded = signed(0, Stage.PREVOTE, 2).encode()
    with pytest.raises(DecodeError):
        SignedVote.decode(encoded + b"\x00")
    # 3 as a uint16 instead of a positive fixint: same value, another encoding
    with pytest.raises(DecodeError):
        SignedVote.decode(b"\x96\xcd\x00\x03" + encoded[2:])


def test_justification_ancestry_must_be_headers() -> None:
    sample = samples()[1]
    assert isinstance(sample, Justification)
    wire = sample.to_wire()
    wire[5] = [b"not a header"]
    with pytest.raises(DecodeError):
        Justification.decode(encode(wire))


@FUZZ
@given(data=st.binary(max_size=600))
def test_random_bytes_only_raise_decode_error(data: bytes) -> None:
    for container in CONTAINERS:
        try:
            container.decode(data)
        except DecodeError:
            pass


@FUZZ
@given(
    which=st.integers(0, 3),
    position=st.integers(0, 10_000),
    value=st.integers(0, 255),
    cut=st.integers(0, 10_000),
    mode=st.sampled_from(["flip", "truncate", "insert", "delete"]),
)
def test_mutated_messages_decode_to_a_valid_message_or_raise_decode_error(
    which: int, position: int, value: int, cut: int, mode: str
) -> None:
    message = samples()[which]
    data = bytearray(message.encode())  # type: ignore[attr-defined]
    position %= len(data)
    if mode == "flip":
        data[position] ^= value or 1
    elif mode == "truncate":
        del data[cut % len(data) :]
    elif mode == "insert":
        data.insert(position, value)
    else:
        del data[position]
    try:
        decoded = type(message).decode(bytes(data))  # type: ignore[attr-defined]
    except DecodeError:
        return
    assert decoded.encode() == bytes(data)  # anything accepted is canonical


msgpack_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**64), 2**64) | st.binary(max_size=40) | st.text(max_size=8),
    lambda children: st.lists(children, max_size=7),
    max_leaves=30,
)


@FUZZ
@given(value=msgpack_values)
def test_structured_garbage_only_raises_decode_error(value: object) -> None:
    try:
        data = msgpack.packb(value, use_bin_type=True)
    except (OverflowError, ValueError):
        return
    for container in CONTAINERS:
        try:
            container.decode(data)
        except DecodeError:
            pass


@FUZZ
@given(field=st.integers(0, 5), replacement=msgpack_values)
def test_a_vote_with_any_field_replaced_decodes_or_raises_decode_error(
    field: int, replacement: object
) -> None:
    wire = signed(0, Stage.PREVOTE, 2).to_wire()
    wire[field] = replacement
    try:
        data = msgpack.packb(wire, use_bin_type=True)
    except (OverflowError, ValueError):
        return
    try:
        SignedVote.decode(data)
    except DecodeError:
        pass
