"""Justifications and equivocation proofs: what verifies, and every way a tampered one fails.

Chain used throughout (4 voters, threshold 3):

    genesis - A1 - A2 - A3 - A4 - A5
                     \\
                      B3 - B4
"""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from node.codec import DecodeError
from node.consensus.finality import (
    EquivocationProof,
    InvalidEquivocation,
    InvalidJustification,
    Justification,
    SignedVote,
    Stage,
    Vote,
    check_equivocation_proof,
    verify_justification,
)
from node.runtime.support import InvalidUnsigned
from node.types import Header
from tests.consensus.sim import GENESIS, GENESIS_HASH, extend, sim_keypair

A = extend(GENESIS, 5)  # A[0] = A1 ... A[4] = A5
B = extend(A[1], 2, variant=1)  # B[0] = B3, B[1] = B4
KEYS = [sim_keypair(i) for i in range(5)]
VOTERS = [key.public.data for key in KEYS[:4]]
OUTSIDER = KEYS[4]
SET_ID, ROUND = 7, 12
HEADERS = {h.hash: h for h in A + B}


def precommit(
    voter: int, block: Header, round_number: int = ROUND, set_id: int = SET_ID, key=None
) -> SignedVote:
    keypair = key or KEYS[voter]
    return SignedVote.sign(
        keypair, GENESIS_HASH, set_id, round_number, Stage.PRECOMMIT, Vote(block.hash, block.number)
    )


def ancestry_for(target: Header, votes: list[SignedVote]) -> tuple[bytes, ...]:
    """Headers from each vote target down to the target, exclusive, each once, as a producer would."""
    needed: dict[bytes, Header] = {}
    for vote in votes:
        path: list[Header] = []
        current = HEADERS.get(vote.vote.target_hash)
        while current is not None and current.number > target.number:
            path.append(current)
            current = HEADERS.get(current.parent_hash)
        if current is not None and current.hash == target.hash:
            needed.update((h.hash, h) for h in path)
    return tuple(h.encode() for h in sorted(needed.values(), key=lambda h: (h.number, h.hash)))


def justification(
    target: Header, votes: list[SignedVote], ancestry: tuple[bytes, ...] | None = None
) -> Justification:
    if ancestry is None:
        ancestry = ancestry_for(target, votes)
    return Justification(ROUND, SET_ID, target.hash, target.number, tuple(votes), ancestry)


def valid() -> Justification:
    """A3 justified by precommits for A5, A4 and A3."""
    return justification(A[2], [precommit(0, A[4]), precommit(1, A[3]), precommit(2, A[2])])


def verify(j: Justification) -> None:
    verify_justification(j, VOTERS, SET_ID, GENESIS_HASH)


def rejected(j: Justification, reason: str) -> None:
    with pytest.raises(InvalidJustification) as info:
        verify(j)
    assert reason in info.value.reason, info.value.reason


# -- valid justifications --------------------------------------------------------------------------


def test_a_justification_with_threshold_precommits_on_descendants_verifies() -> None:
    verify(valid())
    verify(Justification.decode(valid().encode()))  # survives the wire


def test_all_four_precommits_and_precommits_exactly_on_the_target() -> None:
    verify(justification(A[4], [precommit(i, A[4]) for i in range(4)]))
    verify(
        justification(A[0], [precommit(0, A[0]), precommit(1, A[1]), precommit(2, B[1]), precommit(3, A[4])])
    )


def test_precommits_on_sibling_forks_justify_their_common_ancestor() -> None:
    # GRANDPA's commit GHOST: two votes on the A fork and one on the B fork support A2.
    verify(justification(A[1], [precommit(0, A[4]), precommit(1, A[3]), precommit(2, B[1])]))


def test_an_equivocator_counts_for_everything_but_once() -> None:
    # voters 0 and 1 support A3; voter 3 equivocated between two blocks off A3's chain
    equivocation = [precommit(3, B[0]), precommit(3, B[1])]
    verify(justification(A[2], [precommit(0, A[4]), precommit(1, A[2]), *equivocation]))
    # ... but counts once: with only one honest supporter it is two of three
    rejected(justification(A[2], [precommit(0, A[4]), *equivocation]), "only 2 of 4")
    # a third different precommit by one voter is refused outright
    rejected(
        justification(A[2], [precommit(0, A[4]), precommit(1, A[2]), *equivocation, precommit(3, A[0])]),
        "more than two",
    )


def test_duplicates_count_once() -> None:
    vote = precommit(0, A[4])
    rejected(justification(A[2], [vote, vote, vote, precommit(1, A[3])]), "only 2 of 4")
    verify(justification(A[2], [vote, vote, precommit(1, A[3]), precommit(2, A[2])]))


# -- tampering ---------------------------------------------------------------------------------------


def test_missing_votes() -> None:
    j = valid()
    short = dataclasses.replace(j, precommits=j.precommits[:2])
    rejected(dataclasses.replace(short, ancestry=ancestry_for(A[2], list(short.precommits))), "only 2 of 4")
    rejected(dataclasses.replace(j, precommits=(), ancestry=()), "no precommits")


def test_bad_signature() -> None:
    j = valid()
    vote = j.precommits[0]
    forged = dataclasses.replace(vote, signature=bytes([vote.signature[0] ^ 1]) + vote.signature[1:])
    rejected(dataclasses.replace(j, precommits=(forged, *j.precommits[1:])), "signature")
    # a valid signature over another target does not transfer
    moved = dataclasses.replace(vote, vote=Vote(A[3].hash, A[3].number))
    rejected(dataclasses.replace(j, precommits=(moved, *j.precommits[1:])), "signature")


def test_voter_outside_the_set() -> None:
    j = valid()
    outsider = precommit(0, A[3], key=OUTSIDER)
    rejected(dataclasses.replace(j, precommits=(*j.precommits[:2], outsider)), "not a voter")


def test_wrong_set_id() -> None:
    with pytest.raises(InvalidJustification, match="expected set"):
        verify_justification(valid(), VOTERS, SET_ID + 1, GENESIS_HASH)
    # votes signed for another set inside a justification claiming ours
    votes = [precommit(i, A[2], set_id=SET_ID + 1) for i in range(3)]
    rejected(justification(A[2], votes), "set")
    # and a whole justification of another set presented as ours
    other = Justification(ROUND, SET_ID + 1, A[2].hash, A[2].number, tuple(votes), ())
    with pytest.raises(InvalidJustification):
        verify_justification(dataclasses.replace(other, set_id=SET_ID), VOTERS, SET_ID, GENESIS_HASH)


def test_wrong_round_wrong_stage_and_wrong_chain() -> None:
    j = valid()
    other_round = precommit(0, A[4], round_number=ROUND + 1)
    rejected(dataclasses.replace(j, precommits=(other_round, *j.precommits[1:])), "round")
    prevote = SignedVote.sign(
        KEYS[0], GENESIS_HASH, SET_ID, ROUND, Stage.PREVOTE, Vote(A[4].hash, A[4].number)
    )
    rejected(dataclasses.replace(j, precommits=(prevote, *j.precommits[1:])), "prevote")
    with pytest.raises(InvalidJustification, match="signature"):
        verify_justification(j, VOTERS, SET_ID, b"\x09" * 32)  # signed for another genesis


def test_ancestry_gap() -> None:
    j = valid()  # ancestry = A4, A5
    rejected(dataclasses.replace(j, ancestry=j.ancestry[1:]), "not proven")  # A4 missing: A5 hangs
    rejected(dataclasses.replace(j, ancestry=()), "not proven")


def test_precommit_on_another_fork_is_not_support() -> None:
    votes = [precommit(0, A[4]), precommit(1, A[3]), precommit(2, B[1])]
    rejected(justification(A[2], votes), "not proven")  # B4 does not descend from A3


def test_unused_or_duplicated_ancestry() -> None:
    j = valid()
    rejected(dataclasses.replace(j, ancestry=(*j.ancestry, B[0].encode())), "not on any")
    rejected(dataclasses.replace(j, ancestry=(*j.ancestry, j.ancestry[0])), "twice")
    # a header below the target is never on a path
    rejected(dataclasses.replace(j, ancestry=(*j.ancestry, A[0].encode())), "not on any")


def test_numbers_must_match_the_headers() -> None:
    j = valid()
    lying_target = dataclasses.replace(j, target_number=j.target_number + 1)
    rejected(lying_target, "")
    vote = SignedVote.sign(KEYS[0], GENESIS_HASH, SET_ID, ROUND, Stage.PRECOMMIT, Vote(A[4].hash, 99))
    rejected(dataclasses.replace(j, precommits=(vote, *j.precommits[1:])), "not proven")


def test_forged_ancestry_cannot_graft_a_fork() -> None:
    # A header claiming B3 as a child of A3 has another hash, so B4's parent link does not reach it.
    fake_b3 = Header(A[2].hash, 4, B[0].state_root, B[0].extrinsics_root, B[0].digest)
    votes = [precommit(0, A[4]), precommit(1, A[3]), precommit(2, B[1])]
    ancestry = (*ancestry_for(A[2], votes[:2]), fake_b3.encode(), B[1].encode())
    rejected(justification(A[2], votes, ancestry), "not proven")


FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(position=st.integers(0, 100_000), value=st.integers(1, 255))
def test_a_flipped_byte_never_passes_unless_nothing_changed(position: int, value: int) -> None:
    encoded = bytearray(valid().encode())
    encoded[position % len(encoded)] ^= value
    try:
        mutated = Justification.decode(bytes(encoded))
    except DecodeError:
        return
    try:
        verify(mutated)
    except InvalidJustification:
        return
    assert mutated == valid()  # a flip that decodes and still verifies must be a no-op


# -- equivocation proofs --------------------------------------------------------------------------


def proof(first: SignedVote, second: SignedVote) -> EquivocationProof:
    return EquivocationProof(first.set_id, first.round, first.stage, first, second)


def test_an_equivocation_proof_names_the_offender() -> None:
    good = proof(precommit(2, A[3]), precommit(2, B[0]))
    assert check_equivocation_proof(good, VOTERS, GENESIS_HASH) == VOTERS[2]
    decoded = EquivocationProof.decode(good.encode())
    assert check_equivocation_proof(decoded, VOTERS, GENESIS_HASH) == VOTERS[2]


@pytest.mark.parametrize(
    ("first", "second", "reason"),
    [
        (precommit(2, A[3]), precommit(2, A[3]), "same block"),
        (precommit(2, A[3]), precommit(1, B[0]), "different voters"),
        (precommit(2, A[3]), precommit(2, B[0], round_number=ROUND + 1), "round"),
        (precommit(2, A[3]), precommit(2, B[0], set_id=SET_ID + 1), "set"),
        (
            precommit(2, A[3]),
            SignedVote.sign(
                KEYS[2], GENESIS_HASH, SET_ID, ROUND, Stage.PREVOTE, Vote(B[0].hash, B[0].number)
            ),
            "stage",
        ),
        (precommit(0, A[3], key=OUTSIDER), precommit(0, B[0], key=OUTSIDER), "not a voter"),
    ],
)
def test_invalid_equivocation_proofs(first: SignedVote, second: SignedVote, reason: str) -> None:
    with pytest.raises(InvalidEquivocation, match=reason):
        check_equivocation_proof(proof(first, second), VOTERS, GENESIS_HASH)


def test_an_equivocation_proof_with_a_forged_signature_is_refused() -> None:
    second = precommit(2, B[0])
    forged = dataclasses.replace(second, signature=bytes(64))
    with pytest.raises(InvalidEquivocation, match="signature"):
        check_equivocation_proof(proof(precommit(2, A[3]), forged), VOTERS, GENESIS_HASH)
    with pytest.raises(InvalidEquivocation, match="signature"):
        check_equivocation_proof(proof(precommit(2, A[3]), second), VOTERS, b"\x01" * 32)


def test_the_runtime_offence_check_accepts_our_proofs() -> None:
    """`offences.check_finality_equivocation` is the on-chain consumer of these proofs."""
    from node.runtime import aura, offences, system

    good = proof(precommit(2, A[3]), precommit(2, B[0]))
    state = {
        system.BLOCK_HASH.key(0): GENESIS_HASH,
        aura.KEY_AUTHORITIES: aura.encode_authorities(VOTERS),
        aura.SET_ID.key: (7).to_bytes(8, "big"),  # the set the proof's votes are of
    }
    offender, offence_id = offences.check_finality_equivocation(state.get, GENESIS_HASH, good.encode())
    assert offender == VOTERS[2] and len(offence_id) == 32
    with pytest.raises(InvalidUnsigned):
        offences.check_finality_equivocation(
            state.get, GENESIS_HASH, proof(precommit(2, A[3]), precommit(2, A[3])).encode()
        )
    with pytest.raises(InvalidUnsigned):
        offences.check_finality_equivocation(state.get, GENESIS_HASH, b"\x93garbage")
