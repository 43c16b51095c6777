"""Decoders of untrusted bytes: random and mutated input gives DecodeError, never anything else."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from node.codec import DecodeError, decode, encode, u128_from_bytes, u128_to_bytes
from node.keys import dev_keypair
from node.types import Block, Call, Extrinsic, Header, Mortality, SignedExtra, aura_pre_digest, sign_extrinsic

GENESIS = b"\x42" * 32


def sample_extrinsic() -> bytes:
    call = Call("balances", "transfer", (b"\x01" * 32, (10**20).to_bytes(16, "big")))
    return sign_extrinsic(dev_keypair("//Bob"), call, SignedExtra(GENESIS, 1, 7, 3, Mortality(5, 64, b"\x05" * 32))).encode()


def sample_header() -> bytes:
    header = Header(b"\x01" * 32, 9, b"\x02" * 32, b"\x03" * 32, (aura_pre_digest(123),))
    return header.with_seal(dev_keypair("//Alice").sign(header.seal_payload(GENESIS))).encode()


def sample_block() -> bytes:
    return Block(Header.decode(sample_header()), (sample_extrinsic(), sample_extrinsic()[:-1] + b"\x00")).encode()


DECODERS = [Extrinsic.decode, Header.decode, Block.decode]
SAMPLES = [sample_extrinsic(), sample_header(), sample_block()]


def test_samples_roundtrip():
    assert Extrinsic.decode(SAMPLES[0]).encode() == SAMPLES[0]
    assert Header.decode(SAMPLES[1]).encode() == SAMPLES[1]
    assert Block.decode(SAMPLES[2]).encode() == SAMPLES[2]
    assert Extrinsic.decode(SAMPLES[0]).verify_signature()


@pytest.mark.parametrize("decoder", DECODERS)
@given(data=st.binary(max_size=512))
@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
def test_random_bytes(decoder, data):
    try:
        decoder(data)
    except DecodeError:
        pass


@pytest.mark.parametrize("index", range(3))
@given(st.data())
@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
def test_mutated_valid_encodings(index, data):
    original = bytearray(SAMPLES[index])
    mutation = data.draw(st.sampled_from(["flip", "truncate", "insert", "delete", "append"]))
    position = data.draw(st.integers(0, len(original) - 1))
    if mutation == "flip":
        original[position] ^= data.draw(st.integers(1, 255))
    elif mutation == "truncate":
        del original[position:]
    elif mutation == "insert":
        original[position:position] = data.draw(st.binary(min_size=1, max_size=8))
    elif mutation == "delete":
        del original[position]
    else:
        original += data.draw(st.binary(min_size=1, max_size=8))
    try:
        value = DECODERS[index](bytes(original))
    except DecodeError:
        return
    # If it still decodes, it is canonical: it re-encodes to exactly the same bytes.
    assert value.encode() == bytes(original)


def test_strictness():
    with pytest.raises(DecodeError, match="trailing"):
        decode(encode([1, 2]) + b"\x00")
    with pytest.raises(DecodeError, match="non-canonical"):
        decode(b"\xcd\x00\x05")  # 5 as uint16
    with pytest.raises(DecodeError):
        decode(b"\x81\x01\x02")  # maps are never used
    with pytest.raises(DecodeError):
        decode(b"\xdd\xff\xff\xff\xff")  # a 4-billion-element array, refused before allocation
    with pytest.raises(DecodeError):
        decode(b"\x91" * 5000 + b"\x00")  # nesting bomb
    with pytest.raises(DecodeError):
        Extrinsic.decode(encode([0x84, [0, b"\x00" * 32], b"\x00" * 64, [GENESIS, 1, 0, 1.5, [0, 0]], ["a", "b", []]]))


def test_u128():
    assert u128_from_bytes(u128_to_bytes(2**128 - 1)) == 2**128 - 1
    with pytest.raises(ValueError):
        u128_to_bytes(2**128)
    with pytest.raises(DecodeError):
        u128_from_bytes(b"\x00" * 15)
