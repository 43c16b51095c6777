"""Read proofs: they verify for present and absent keys, and any tampering raises InvalidProof."""

from __future__ import annotations

import msgpack
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from node.codec import DecodeError, blake2b_256, encode
from node.state.trie import (
    EMPTY_ROOT,
    InvalidProof,
    decode_node,
    hash_node,
    trie_prove,
    trie_update,
    verify_proof,
)

PROPERTY = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])

keys = st.binary(max_size=2)
values = st.binary(max_size=3)


def build(model: dict[bytes, bytes]) -> tuple[bytes, dict[bytes, bytes]]:
    nodes: dict[bytes, bytes] = {}
    update = trie_update(nodes.get, EMPTY_ROOT, model)
    nodes.update(update.inserted)
    return update.root, nodes


# A fixed trie big enough for paths of three to four nodes.
MODEL = {i.to_bytes(2, "big"): b"value-%d" % i for i in range(600)}
ROOT, NODES = build(MODEL)
PRESENT = b"\x00\x07"
ABSENT = b"not there"


def test_present_and_absent_keys_verify() -> None:
    for key in [PRESENT, ABSENT, b"", b"\x02\x57"]:
        proof = trie_prove(NODES.get, ROOT, [key])
        assert verify_proof(ROOT, proof, key) == MODEL.get(key)
    assert len(trie_prove(NODES.get, ROOT, [PRESENT])) >= 3


def test_empty_trie() -> None:
    assert trie_prove({}.get, EMPTY_ROOT, [b"k"]) == []
    assert verify_proof(EMPTY_ROOT, [], b"k") is None
    with pytest.raises(InvalidProof):
        verify_proof(EMPTY_ROOT, trie_prove(NODES.get, ROOT, [PRESENT]), PRESENT)


@PROPERTY
@given(st.dictionaries(keys, values, max_size=60), st.lists(keys, min_size=1, max_size=6))
def test_multi_key_proofs_verify_every_key(model: dict[bytes, bytes], queried: list[bytes]) -> None:
    root, nodes = build(model)
    proof = trie_prove(nodes.get, root, queried)
    # Deterministic and order independent; each node once.
    assert proof == trie_prove(nodes.get, root, list(reversed(queried)))
    assert len(proof) == len(set(proof))
    for key in queried:
        assert verify_proof(root, proof, key) == model.get(key)
        single = trie_prove(nodes.get, root, [key])
        assert verify_proof(root, single, key) == model.get(key)


@pytest.mark.parametrize("key", [PRESENT, ABSENT])
def test_every_flipped_byte_in_every_node_is_detected(key: bytes) -> None:
    proof = trie_prove(NODES.get, ROOT, [key])
    for index, node in enumerate(proof):
        for position in range(len(node)):
            for mask in (0x01, 0x80):
                tampered = bytearray(node)
                tampered[position] ^= mask
                forged = proof[:index] + [bytes(tampered)] + proof[index + 1 :]
                with pytest.raises(InvalidProof):
                    verify_proof(ROOT, forged, key)


@PROPERTY
@given(st.data())
def test_flipped_byte_in_multi_key_proof_is_detected(data: st.DataObject) -> None:
    queried = data.draw(st.lists(st.sampled_from(sorted(MODEL)) | keys, min_size=2, max_size=5))
    proof = trie_prove(NODES.get, ROOT, queried)
    index = data.draw(st.integers(0, len(proof) - 1))
    position = data.draw(st.integers(0, len(proof[index]) - 1))
    mask = data.draw(st.integers(1, 255))
    tampered = bytearray(proof[index])
    tampered[position] ^= mask
    forged = proof[:index] + [bytes(tampered)] + proof[index + 1 :]
    with pytest.raises(InvalidProof):
        verify_proof(ROOT, forged, data.draw(st.sampled_from(queried)))


def test_wrong_value_is_detected() -> None:
    proof = trie_prove(NODES.get, ROOT, [PRESENT])
    leaf = proof[-1]
    assert msgpack.unpackb(leaf) == [0, PRESENT, MODEL[PRESENT]]
    for value in [b"forged", b"", MODEL[PRESENT] + b"\x00"]:
        with pytest.raises(InvalidProof):
            verify_proof(ROOT, proof[:-1] + [encode([0, PRESENT, value])], PRESENT)
    # Nor can the leaf be swapped for a genuine leaf of another key.
    other = trie_prove(NODES.get, ROOT, [b"\x01\x00"])[-1]
    with pytest.raises(InvalidProof):
        verify_proof(ROOT, proof[:-1] + [other], PRESENT)


@pytest.mark.parametrize("key", [PRESENT, ABSENT])
def test_dropped_or_extra_or_duplicate_nodes_are_detected(key: bytes) -> None:
    proof = trie_prove(NODES.get, ROOT, [key])
    for index in range(len(proof)):
        with pytest.raises(InvalidProof):
            verify_proof(ROOT, proof[:index] + proof[index + 1 :], key)
    with pytest.raises(InvalidProof):
        verify_proof(ROOT, proof + [proof[-1]], key)
    # A genuine node that is not under the proven path's nodes.
    stranger = build({b"elsewhere": b"x", b"other": b"y"})[1]
    with pytest.raises(InvalidProof):
        verify_proof(ROOT, proof + list(stranger.values()), key)
    with pytest.raises(InvalidProof):
        verify_proof(blake2b_256(b"another root"), proof, key)


def test_non_canonical_node_encoding_is_rejected() -> None:
    proof = trie_prove(NODES.get, ROOT, [PRESENT])
    tag, bitmap, hashes = msgpack.unpackb(proof[0])
    # Same content with the bitmap packed as uint32 instead of the canonical width.
    wide = b"\x93" + msgpack.packb(tag) + b"\xce" + bitmap.to_bytes(4, "big") + msgpack.packb(hashes)
    assert msgpack.unpackb(wide) == [tag, bitmap, hashes]
    with pytest.raises(InvalidProof):
        verify_proof(ROOT, [wide] + proof[1:], PRESENT)


def test_malformed_inputs() -> None:
    proof = trie_prove(NODES.get, ROOT, [PRESENT])
    bad_proofs: list[object] = [
        None,
        b"".join(proof),
        proof[0],
        {0: proof[0]},
        [1, 2],
        ["text"],
        [bytearray(proof[0])],
        [encode([0, b"k"])],
        [encode([2, b"k", b"v"])],
        [encode([1, 0, []])],
        [encode([1, 3, [ROOT]])],
        [encode([1, 1, [b"short"]])],
        [encode([1, True, [ROOT]])],
        [encode([0, "k", b"v"])],
    ]
    for bad in bad_proofs:
        with pytest.raises(InvalidProof):
            verify_proof(ROOT, bad, PRESENT)  # type: ignore[arg-type]
    for bad_root in [b"", b"\x00" * 31, "root", None, 7]:
        with pytest.raises(InvalidProof):
            verify_proof(bad_root, proof, PRESENT)  # type: ignore[arg-type]


msgpack_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.binary(max_size=40)
    | st.text(max_size=5),
    lambda children: st.lists(children, max_size=17),
    max_leaves=40,
)


@PROPERTY
@given(
    st.binary(min_size=0, max_size=40),
    st.lists(st.binary(max_size=200) | msgpack_values.map(msgpack.packb), max_size=6),
    st.binary(max_size=8),
)
def test_garbage_only_ever_raises_invalid_proof(root: bytes, proof: list[bytes], key: bytes) -> None:
    for candidate_root in (root, ROOT, EMPTY_ROOT):
        try:
            verify_proof(candidate_root, proof, key)
        except InvalidProof:
            pass


@PROPERTY
@given(st.lists(st.binary(max_size=300), min_size=1, max_size=4))
def test_random_bytes_never_prove_anything(proof: list[bytes]) -> None:
    with pytest.raises(InvalidProof):
        verify_proof(ROOT, proof, PRESENT)


hashes32 = st.binary(min_size=32, max_size=32)
plausible_nodes = st.one_of(
    st.tuples(st.just(0), st.binary(max_size=3), st.binary(max_size=3)).map(list),
    st.integers(0, 0xFFFF).flatmap(
        lambda bitmap: st.tuples(
            st.just(1),
            st.just(bitmap),
            st.lists(hashes32, min_size=bitmap.bit_count(), max_size=bitmap.bit_count()),
        ).map(list)
    ),
)


@PROPERTY
@given(st.lists(plausible_nodes, min_size=1, max_size=5), st.binary(max_size=3))
def test_well_formed_but_unrelated_nodes_never_crash(raw_nodes: list[list[object]], key: bytes) -> None:
    """Nodes that decode fine, rooted at the first one, reach the reachability and walk checks."""
    proof = [encode(node) for node in raw_nodes]
    try:
        root = hash_node(decode_node(proof[0]))
    except DecodeError:  # e.g. a bitmap of 0: still must not crash below
        root = ROOT
    try:
        verify_proof(root, proof, key)
    except InvalidProof:
        pass
