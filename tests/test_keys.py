"""Tests for node.keys: signatures, wire form, addresses, dev keys and batch verification."""

from __future__ import annotations

import hashlib
import os

import nacl.signing
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from node import keys
from node.codec import DecodeError, decode, encode
from node.keys import (
    DEV_NAMES,
    NETWORK_PREFIX,
    AddressError,
    Keypair,
    PublicKey,
    Scheme,
    decode_address,
    dev_keypair,
    encode_address,
    parse_key_uri,
    verify_batch,
)

SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
B58_ALPHABET = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
ALL_SCHEMES = list(Scheme)


def flip_bit(data: bytes, index: int) -> bytes:
    return data[:index] + bytes([data[index] ^ 0x01]) + data[index + 1 :]


def blake2b_256(data: bytes) -> bytes:
    return hashlib.blake2b(data, digest_size=32).digest()


# ---------------------------------------------------------------------------------------------
# Sign / verify
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("scheme", ALL_SCHEMES)
@pytest.mark.parametrize("message", [b"", b"x", b"transfer 10 to bob", os.urandom(10_000)])
def test_sign_verify_round_trip(scheme: Scheme, message: bytes) -> None:
    keypair = Keypair.generate(scheme)
    signature = keypair.sign(message)
    assert len(signature) == 64
    assert keypair.public.verify(message, signature)


@pytest.mark.parametrize("scheme", ALL_SCHEMES)
def test_signing_is_deterministic(scheme: Scheme) -> None:
    keypair = dev_keypair("//Alice", scheme)
    assert keypair.sign(b"block") == keypair.sign(b"block")
    assert keypair.sign(b"block") != keypair.sign(b"block2")


@pytest.mark.parametrize("scheme", ALL_SCHEMES)
def test_tampering_is_rejected(scheme: Scheme) -> None:
    keypair = Keypair.generate(scheme)
    message = b"pay 100 to //Bob"
    signature = keypair.sign(message)
    public = keypair.public
    for index in range(len(message)):
        assert not public.verify(flip_bit(message, index), signature)
    for index in range(len(signature)):
        assert not public.verify(message, flip_bit(signature, index))
    assert not public.verify(message + b"\x00", signature)
    assert not Keypair.generate(scheme).public.verify(message, signature)


@pytest.mark.parametrize("scheme", ALL_SCHEMES)
@pytest.mark.parametrize(
    "signature",
    [b"", b"\x00" * 63, b"\x00" * 64, b"\xff" * 64, b"\x00" * 65, None, "x" * 64, 12345, [b"\x00" * 64]],
)
def test_verify_never_raises_on_garbage(scheme: Scheme, signature: object) -> None:
    public = Keypair.generate(scheme).public
    assert public.verify(b"message", signature) is False  # type: ignore[arg-type]
    assert public.verify(None, b"\x00" * 64) is False  # type: ignore[arg-type]


def test_secp256k1_signs_over_blake2b_256_with_low_s() -> None:
    import coincurve

    keypair = dev_keypair("//Alice", Scheme.SECP256K1)
    message = b"hello"
    signature = keypair.sign(message)
    r, s = int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
    assert 0 < s <= SECP256K1_N // 2
    # Independently: the DER signature coincurve makes over blake2b_256(message) has the same r, s.
    der = coincurve.PrivateKey(keypair.seed).sign(blake2b_256(message), hasher=None)
    r_len = der[3]
    assert int.from_bytes(der[4 : 4 + r_len], "big") == r
    assert int.from_bytes(der[6 + r_len :], "big") == s


def test_secp256k1_high_s_is_rejected() -> None:
    keypair = Keypair.generate(Scheme.SECP256K1)
    for message in (b"a", b"b", b"c", b"d"):
        signature = keypair.sign(message)
        s = int.from_bytes(signature[32:], "big")
        high_s = signature[:32] + (SECP256K1_N - s).to_bytes(32, "big")
        assert keypair.public.verify(message, signature)
        assert not keypair.public.verify(message, high_s)


def test_secp256k1_out_of_range_scalars_rejected() -> None:
    keypair = Keypair.generate(Scheme.SECP256K1)
    signature = keypair.sign(b"m")
    n_bytes = SECP256K1_N.to_bytes(32, "big")
    for bad in (b"\x00" * 32 + signature[32:], n_bytes + signature[32:], signature[:32] + b"\x00" * 32):
        assert not keypair.public.verify(b"m", bad)


def test_ed25519_matches_plain_pynacl() -> None:
    seed = os.urandom(32)
    keypair = Keypair.from_seed(Scheme.ED25519, seed)
    reference = nacl.signing.SigningKey(seed)
    assert keypair.public.data == bytes(reference.verify_key)
    assert keypair.sign(b"abc") == reference.sign(b"abc").signature
    assert keypair.seed == seed


def test_account_ids() -> None:
    ed = Keypair.generate(Scheme.ED25519)
    assert ed.account_id == ed.public.data == ed.public.account_id()
    secp = Keypair.generate(Scheme.SECP256K1)
    assert len(secp.public.data) == 33 and secp.public.data[0] in (2, 3)
    assert secp.account_id == blake2b_256(secp.public.data)


def test_keypair_repr_hides_secret() -> None:
    keypair = Keypair.generate(Scheme.ED25519)
    assert keypair.seed.hex() not in repr(keypair)
    assert keypair.address in repr(keypair)


@pytest.mark.parametrize("seed", [b"", b"\x00" * 31, b"\x00" * 33])
def test_from_seed_rejects_wrong_length(seed: bytes) -> None:
    with pytest.raises(ValueError):
        Keypair.from_seed(Scheme.ED25519, seed)


@pytest.mark.parametrize("seed", [b"\x00" * 32, SECP256K1_N.to_bytes(32, "big"), b"\xff" * 32])
def test_secp256k1_from_seed_rejects_invalid_secret(seed: bytes) -> None:
    with pytest.raises(ValueError):
        Keypair.from_seed(Scheme.SECP256K1, seed)


# ---------------------------------------------------------------------------------------------
# Wire form
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("scheme", ALL_SCHEMES)
def test_wire_round_trip(scheme: Scheme) -> None:
    public = Keypair.generate(scheme).public
    wire = public.to_wire()
    assert wire == [int(scheme), public.data]
    assert PublicKey.from_wire(decode(encode(wire))) == public


ED25519_IDENTITY = (1).to_bytes(32, "little")  # the neutral point: small order
ED25519_ORDER_2 = (2**255 - 20).to_bytes(32, "little")  # y = -1, order 2


@pytest.mark.parametrize(
    "wire",
    [
        None,
        b"",
        [],
        [0],
        [0, b"\x00" * 32, b""],
        [True, b"\x00" * 32],
        ["0", b"\x00" * 32],
        [2, b"\x00" * 32],
        [-1, b"\x00" * 32],
        [0, "a" * 32],
        [0, b"\x00" * 31],
        [0, b"\x00" * 33],
        [1, b"\x00" * 32],
        [1, b"\x02" + b"\x00" * 32],  # x = 0 is not on secp256k1
        [1, b"\x04" + b"\x00" * 32],  # not a compressed prefix
        [1, b"\x02" + b"\xff" * 32],  # x >= p
        [0, ED25519_IDENTITY],
        [0, ED25519_ORDER_2],
        [0, b"\xff" * 32],  # non-canonical y
    ],
)
def test_from_wire_rejects_garbage(wire: object) -> None:
    with pytest.raises(DecodeError):
        PublicKey.from_wire(wire)


def test_from_wire_rejects_ed25519_torsion_component() -> None:
    """A valid key plus a small-order point is on the curve but outside the prime-order subgroup."""
    import nacl.bindings

    good = Keypair.generate(Scheme.ED25519).public.data
    # An order-8 point (a well-known libsodium blocklist entry).
    order_8 = bytes.fromhex("c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a")
    mixed = nacl.bindings.crypto_core_ed25519_add(good, order_8)
    with pytest.raises(DecodeError):
        PublicKey.from_wire([0, mixed])


msgpack_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**64), 2**64) | st.binary(max_size=40) | st.text(max_size=8),
    lambda children: st.lists(children, max_size=4),
    max_leaves=10,
)


@settings(max_examples=400)
@given(msgpack_values)
def test_from_wire_only_raises_decode_error_on_values(value: object) -> None:
    try:
        PublicKey.from_wire(value)
    except DecodeError:
        pass


@settings(max_examples=400)
@given(st.integers(0, 3), st.binary(min_size=30, max_size=35))
def test_from_wire_only_raises_decode_error_near_valid_shapes(scheme: int, data: bytes) -> None:
    try:
        public = PublicKey.from_wire([scheme, data])
    except DecodeError:
        return
    assert public.to_wire() == [scheme, data]


@settings(max_examples=400)
@given(st.binary(max_size=80))
def test_decoding_random_bytes_only_raises_decode_error(raw: bytes) -> None:
    try:
        PublicKey.from_wire(decode(raw))
    except DecodeError:
        pass


# ---------------------------------------------------------------------------------------------
# Batch verification
# ---------------------------------------------------------------------------------------------


def _mixed_batch(count: int) -> list[tuple[PublicKey, bytes, bytes]]:
    signers = [Keypair.generate(scheme) for scheme in ALL_SCHEMES for _ in range(3)]
    items: list[tuple[PublicKey, bytes, bytes]] = []
    for index in range(count):
        signer = signers[index % len(signers)]
        message = index.to_bytes(4, "big") * 5
        signature = signer.sign(message)
        kind = index % 5
        if kind == 1:
            signature = flip_bit(signature, index % 64)
        elif kind == 2:
            message = message + b"!"
        elif kind == 3:
            signature = signature[:63]
        items.append((signer.public, message, signature))
    return items


@pytest.mark.parametrize("workers", [0, 1, 2, 3])
@pytest.mark.parametrize("count", [0, 1, 15, 40, 257])
def test_verify_batch_agrees_with_single_verify(workers: int, count: int) -> None:
    items = _mixed_batch(count)
    expected = [public.verify(message, signature) for public, message, signature in items]
    assert verify_batch(items, workers=workers) == expected
    if count >= 5:
        assert any(expected) and not all(expected)


def test_verify_batch_treats_malformed_items_as_invalid() -> None:
    good = dev_keypair("//Alice")
    items: list = [(good.public, b"m", good.sign(b"m"))] * 40
    items += [("not a key", b"m", b"s"), (good.public, b"m"), None] * 10
    result = verify_batch(items)
    assert result == [True] * 40 + [False] * 30


def test_verify_batch_uses_threads_and_is_reentrant() -> None:
    """A verify_batch called from a pool thread runs inline instead of deadlocking on the pool."""
    items = _mixed_batch(64)
    expected = verify_batch(items, workers=1)
    pool, _ = keys._get_pool()
    nested = [pool.submit(verify_batch, items) for _ in range(8)]
    assert all(future.result(timeout=30) == expected for future in nested)


def test_verify_batch_rejects_negative_workers() -> None:
    with pytest.raises(ValueError):
        verify_batch([], workers=-1)


# ---------------------------------------------------------------------------------------------
# Addresses
# ---------------------------------------------------------------------------------------------


def expected_address(account_id: bytes, prefix: int) -> str:
    """Independent re-statement of the documented address format."""
    checksum = hashlib.blake2b(b"IMGADDR" + bytes([prefix]) + account_id, digest_size=64).digest()[:4]
    payload = bytes([prefix]) + account_id + checksum
    value = int.from_bytes(payload, "big")
    text = ""
    while value:
        value, digit = divmod(value, 58)
        text = B58_ALPHABET[digit] + text
    return "1" * (len(payload) - len(payload.lstrip(b"\x00"))) + text


@settings(max_examples=200)
@given(st.binary(min_size=32, max_size=32), st.integers(0, 255))
def test_address_round_trip(account_id: bytes, prefix: int) -> None:
    text = encode_address(account_id, prefix)
    assert text == expected_address(account_id, prefix)
    assert decode_address(text, prefix) == account_id
    assert decode_address(f"  {text}\n", prefix) == account_id


def test_address_defaults_to_network_prefix() -> None:
    account_id = bytes(range(32))
    assert NETWORK_PREFIX == 42
    assert encode_address(account_id) == encode_address(account_id, 42)
    assert decode_address(encode_address(account_id)) == account_id


def test_address_leading_zero_bytes_survive() -> None:
    text = encode_address(b"\x00" * 32, 0)
    assert text.startswith("1")
    assert decode_address(text, 0) == b"\x00" * 32


def _single_character_substitutions(text: str) -> list[str]:
    return [
        text[:index] + replacement + text[index + 1 :]
        for index, original in enumerate(text)
        for replacement in B58_ALPHABET
        if replacement != original
    ]


def test_every_single_character_typo_of_dev_addresses_is_rejected() -> None:
    """Exhaustive over all ~2,700 substitutions of each of the 12 dev addresses.

    With a 4-byte checksum a typo slips through with probability about 2**-32 (see the tests below).
    """
    for scheme in ALL_SCHEMES:
        for name in DEV_NAMES:
            text = dev_keypair(f"//{name}", scheme).address
            for typo in _single_character_substitutions(text):
                with pytest.raises(AddressError):
                    decode_address(typo)


def test_known_two_byte_checksum_collision_typo_is_rejected() -> None:
    """With SS58's 2-byte checksum, character 18 of this address changed from '1' to 'G' still
    decoded (to another account); the 4-byte checksum rejects it."""
    account_id = blake2b_256(b"fixed account 1")
    text = encode_address(account_id)
    typo = text[:17] + "G" + text[18:]
    assert typo != text
    with pytest.raises(AddressError):
        assert decode_address(typo) != account_id


def test_random_typos_slip_through_at_most_at_checksum_rate() -> None:
    accepted = attempted = 0
    for index in range(100):
        text = encode_address(blake2b_256(b"random account %d" % index))
        for typo in _single_character_substitutions(text):
            attempted += 1
            try:
                decode_address(typo)
                accepted += 1
            except AddressError:
                pass
    # Expected about attempted / 2**32 (~0.00006 of ~280,000): any accepted typo means a broken checksum.
    assert accepted == 0, f"{accepted} of {attempted} typos accepted"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty"),
        ("5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutQ0", "invalid character '0'"),
        ("5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutQl", "invalid character 'l'"),
        ("5GrwvaEF", "decodes to"),
        ("1" * 48, "decodes to"),
        ("5" * 100, "characters long"),
    ],
)
def test_decode_address_messages(text: str, message: str) -> None:
    with pytest.raises(AddressError, match=message):
        decode_address(text)


def test_wrong_prefix_and_checksum_are_distinguished() -> None:
    account_id = dev_keypair("//Alice").account_id
    other_network = encode_address(account_id, 7)
    with pytest.raises(AddressError, match="network prefix 7, expected 42"):
        decode_address(other_network)
    assert decode_address(other_network, 7) == account_id
    text = encode_address(account_id)
    typo = text[:10] + ("a" if text[10] != "a" else "b") + text[11:]
    with pytest.raises(AddressError, match="checksum"):
        decode_address(typo)


def test_address_error_is_a_value_error() -> None:
    assert issubclass(AddressError, ValueError)
    with pytest.raises(ValueError):
        decode_address(12345)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("account_id", "prefix"), [(b"\x00" * 31, 42), (b"\x00" * 32, 256), (b"\x00" * 32, -1)]
)
def test_encode_address_rejects_bad_input(account_id: bytes, prefix: int) -> None:
    with pytest.raises(ValueError):
        encode_address(account_id, prefix)


# ---------------------------------------------------------------------------------------------
# Dev keys and key URIs
# ---------------------------------------------------------------------------------------------


def test_dev_names() -> None:
    assert DEV_NAMES == ("Alice", "Bob", "Charlie", "Dave", "Eve", "Ferdie")


def test_alice_matches_documented_derivation() -> None:
    seed = hashlib.blake2b(b"imagechain-dev-key:ed25519://Alice", digest_size=32).digest()
    alice = dev_keypair("//Alice")
    assert alice.seed == seed
    assert alice.public.data == bytes(nacl.signing.SigningKey(seed).verify_key)


def test_secp256k1_dev_key_matches_documented_derivation() -> None:
    import coincurve

    seed = hashlib.blake2b(b"imagechain-dev-key:secp256k1://Alice", digest_size=32).digest()
    alice = dev_keypair("//Alice", Scheme.SECP256K1)
    assert alice.public.data == coincurve.PrivateKey(seed).public_key.format(compressed=True)


def test_dev_keys_are_deterministic_and_distinct() -> None:
    publics = set()
    for scheme in ALL_SCHEMES:
        for name in DEV_NAMES:
            first = dev_keypair(f"//{name}", scheme)
            assert dev_keypair(f"//{name}", scheme).seed == first.seed
            publics.add(first.public.data)
    publics.add(dev_keypair("//Alice//stash").public.data)
    assert len(publics) == 2 * len(DEV_NAMES) + 1


@pytest.mark.parametrize("uri", ["Alice", "/Alice", "//", "// Alice", "//Al ice", "", "0x12"])
def test_dev_keypair_rejects_non_uris(uri: str) -> None:
    with pytest.raises(ValueError):
        dev_keypair(uri)


def test_parse_key_uri() -> None:
    assert parse_key_uri("//Bob").seed == dev_keypair("//Bob").seed
    assert parse_key_uri("//Bob", Scheme.SECP256K1).public == dev_keypair("//Bob", Scheme.SECP256K1).public
    seed = os.urandom(32)
    assert parse_key_uri("0x" + seed.hex()).seed == seed
    assert parse_key_uri("0x" + seed.hex().upper()).seed == seed
    assert parse_key_uri(" 0x" + seed.hex() + "\n", Scheme.SECP256K1).scheme is Scheme.SECP256K1


@pytest.mark.parametrize("text", ["", "Alice", "0x", "0x" + "ab" * 31, "0x" + "ab" * 33, "0x" + "zz" * 32])
def test_parse_key_uri_rejects_garbage(text: str) -> None:
    with pytest.raises(ValueError):
        parse_key_uri(text)


def test_scheme_labels() -> None:
    assert [scheme.label for scheme in Scheme] == ["ed25519", "secp256k1"]
    assert Scheme.from_label("SECP256K1") is Scheme.SECP256K1
    with pytest.raises(ValueError, match="unknown signature scheme"):
        Scheme.from_label("rsa")
