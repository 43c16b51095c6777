"""Finality votes and equivocation proofs: what the client's finality gadget and the runtime's
offence reports must agree on, so both import it from here (PROTOCOL section 6).

A vote's signing payload, the signed vote, the proof that one voter signed two different votes
for one (set, round, stage), and the pure check of such a proof. Nothing here keeps state.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

from node.codec import U32_MAX, U64_MAX, decode, encode, expect_bytes, expect_int, expect_list
from node.keys import PublicKey, Scheme

# Domain separator of every finality signature: a vote can never be replayed as a block seal,
# a transaction or a vote of another chain (the genesis hash is in the payload too).
SIGNING_CONTEXT = b"imagechain-finality"

HASH_LEN = 32
VOTER_KEY_LEN = 32  # ed25519 public key
SIGNATURE_LEN = 64

HASH_LEN = 32
VOTER_KEY_LEN = 32  # ed25519 public key
SIGNATURE_LEN = 64
# A set larger than MAX_VOTERS cannot be expressed; decoding is bounded before any signature check.
MAX_VOTERS = 1024
MAX_VOTE_BYTES = 512
MAX_EQUIVOCATION_PROOF_BYTES = 2 * MAX_VOTE_BYTES + 64


class Stage(IntEnum):
    """Vote stage; the integer is what is signed and sent, so never renumber."""

    PREVOTE = 0
    PRECOMMIT = 1


def _expect_stage(value: Any) -> Stage:
    return Stage(expect_int(value, max(Stage), "stage"))


@dataclass(frozen=True)
class Vote:
    """A vote for a chain, named by its head: it counts for that block and all its ancestors."""

    target_hash: bytes
    target_number: int

    def to_wire(self) -> list[Any]:
        return [self.target_hash, self.target_number]

    @classmethod
    def from_wire(cls, obj: Any) -> Vote:
        target_hash, target_number = expect_list(obj, 2, "vote")
        return cls(
            expect_bytes(target_hash, HASH_LEN, what="vote target hash"),
            expect_int(target_number, U32_MAX, "vote target number"),
        )


def vote_signing_payload(
    genesis_hash: bytes, set_id: int, round_number: int, stage: Stage, vote: Vote
) -> bytes:
    """The bytes a voter signs.

    Round, stage and set id are all inside: a signature is valid for exactly one (chain, set,
    round, stage), which is what makes two different signed votes for one of those a proof of
    equivocation.
    """
    return encode(
        [
            SIGNING_CONTEXT,
            genesis_hash,
            set_id,
            round_number,
            int(stage),
            vote.target_hash,
            vote.target_number,
        ]
    )


@dataclass(frozen=True)
class SignedVote:
    """A prevote or precommit with its voter and signature (GRANDPA's SignedMessage)."""

    round: int
    set_id: int
    stage: Stage
    vote: Vote
    voter: bytes
    signature: bytes

    def payload(self, genesis_hash: bytes) -> bytes:
        return vote_signing_payload(genesis_hash, self.set_id, self.round, self.stage, self.vote)

    def to_wire(self) -> list[Any]:
        return [self.round, self.set_id, int(self.stage), self.vote.to_wire(), self.voter, self.signature]

    def encode(self) -> bytes:
        return encode(self.to_wire())

    @classmethod
    def from_wire(cls, obj: Any) -> SignedVote:
        round_number, set_id, stage, vote, voter, signature = expect_list(obj, 6, "signed vote")
        return cls(
            expect_int(round_number, U64_MAX, "round"),
            expect_int(set_id, U64_MAX, "set id"),
            _expect_stage(stage),
            Vote.from_wire(vote),
            expect_bytes(voter, VOTER_KEY_LEN, what="voter"),
            expect_bytes(signature, SIGNATURE_LEN, what="vote signature"),
        )

    @classmethod
    def decode(cls, data: bytes) -> SignedVote:
        return cls.from_wire(decode(data, MAX_VOTE_BYTES))

    @classmethod
    def sign(
        cls, keypair: Any, genesis_hash: bytes, set_id: int, round_number: int, stage: Stage, vote: Vote
    ) -> SignedVote:
        """Sign a vote with an ed25519 `node.keys.Keypair`."""
        payload = vote_signing_payload(genesis_hash, set_id, round_number, stage, vote)
        return cls(round_number, set_id, Stage(stage), vote, keypair.public.data, keypair.sign(payload))


@dataclass(frozen=True)
class EquivocationProof:
    """Two different signed votes by one voter for one (set, round, stage)."""

    set_id: int
    round: int
    stage: Stage
    first: SignedVote
    second: SignedVote

    @property
    def offender(self) -> bytes:
        return self.first.voter

    def to_wire(self) -> list[Any]:
        return [self.set_id, self.round, int(self.stage), self.first.to_wire(), self.second.to_wire()]

    def encode(self) -> bytes:
        return encode(self.to_wire())

    @classmethod
    def from_wire(cls, obj: Any) -> EquivocationProof:
        set_id, round_number, stage, first, second = expect_list(obj, 5, "equivocation proof")
        return cls(
            expect_int(set_id, U64_MAX, "set id"),
            expect_int(round_number, U64_MAX, "round"),
            _expect_stage(stage),
            SignedVote.from_wire(first),
            SignedVote.from_wire(second),
        )

    @classmethod
    def decode(cls, data: bytes) -> EquivocationProof:
        return cls.from_wire(decode(data, MAX_EQUIVOCATION_PROOF_BYTES))


class InvalidEquivocation(ValueError):
    """An equivocation proof that proves nothing; the message says why."""


InvalidEquivocationProof = InvalidEquivocation



InvalidEquivocationProof = InvalidEquivocation


@functools.lru_cache(maxsize=64)
def _voter_table(voters: tuple[bytes, ...]) -> tuple[dict[bytes, int], tuple[PublicKey, ...]]:
    """Index and parsed keys of a voter set; sets change rarely, so this is memoised."""
    if not voters or len(voters) > MAX_VOTERS:
        raise ValueError(f"a voter set has 1..{MAX_VOTERS} voters, got {len(voters)}")
    index: dict[bytes, int] = {}
    for position, voter in enumerate(voters):
        if voter in index:
            raise ValueError(f"voter {voter.hex()} appears twice in the set")
        index[voter] = position
    return index, tuple(PublicKey(Scheme.ED25519, voter) for voter in voters)


def voter_table(voters: list[bytes] | tuple[bytes, ...]) -> tuple[dict[bytes, int], tuple[PublicKey, ...]]:
    """(voter -> index, index -> PublicKey) for a voter set; raises ValueError on a malformed set."""
    return _voter_table(tuple(voters))


def check_equivocation_proof(proof: EquivocationProof, voters: list[bytes], genesis_hash: bytes) -> bytes:
    """Return the offender if `proof` shows two different signed votes for one (set, round, stage).

    Cheap to reject, as an unsigned extrinsic must be: field comparisons, then two signature
    checks. The caller checks that `voters` is the set `proof.set_id` names and that the
    offence was not reported before.
    """
    first, second = proof.first, proof.second
    if first.voter != second.voter:
        raise InvalidEquivocation("the two votes are by different voters")
    for vote in (first, second):
        if vote.set_id != proof.set_id or vote.round != proof.round or vote.stage != proof.stage:
            raise InvalidEquivocation("a vote is not of the proof's set, round and stage")
    if first.vote == second.vote:
        raise InvalidEquivocation("the two votes are for the same block")
    index, keys = voter_table(voters)
    position = index.get(first.voter)
    if position is None:
        raise InvalidEquivocation(f"{first.voter.hex()} is not a voter of the set")
    key = keys[position]
    for vote in (first, second):
        if not key.verify(vote.payload(genesis_hash), vote.signature):
            raise InvalidEquivocation("a vote's signature does not verify")
    return first.voter
