"""Finality messages: votes, justifications, equivocation proofs, catch-ups (PROTOCOL section 6).

Everything a finality voter sends or stores, with its canonical encoding and the check a node
runs on it without any local state: `verify_justification` (is this block final?), a pure
function of the message, the voter set and the genesis hash. Votes, equivocation proofs and
their check (`check_equivocation_proof`) live in `node.primitives.votes`, because the runtime's
offence reports must share that one definition of validity; they are re-exported here.

Order: constants, containers, helpers, then the justification check.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NoReturn

from node.codec import (
    U32_MAX,
    U64_MAX,
    DecodeError,
    decode,
    encode,
    expect_bytes,
    expect_int,
    expect_list,
)
from node.keys import verify_batch
from node.primitives.votes import (
    HASH_LEN,
    MAX_VOTE_BYTES,
    MAX_VOTERS,
    EquivocationProof,
    InvalidEquivocation,
    InvalidEquivocationProof,
    SignedVote,
    Stage,
    Vote,
    check_equivocation_proof,
    vote_signing_payload,
    voter_table,
)
from node.types import MAX_HEADER_BYTES, Header

__all__ = [
    "CatchUp",
    "EquivocationProof",
    "InvalidEquivocation",
    "InvalidEquivocationProof",
    "InvalidJustification",
    "Justification",
    "SignedVote",
    "Stage",
    "Vote",
    "VoterState",
    "check_equivocation_proof",
    "threshold",
    "verify_justification",
    "vote_signing_payload",
]

# ---------------------------------------------------------------------------------------------
# Constants
# ---------------------------------------------------------------------------------------------

# Ceilings that bound decoding work before any signature is checked. A set larger than
# MAX_VOTERS cannot be expressed; a justification carries at most two precommits per voter
# (an equivocator's pair) and a bounded ancestry.
MAX_VOTES_PER_STAGE = 2 * MAX_VOTERS
MAX_ANCESTRY_HEADERS = 4096
MAX_CATCH_UP_BYTES = 2 * MAX_VOTES_PER_STAGE * MAX_VOTE_BYTES
MAX_JUSTIFICATION_BYTES = 8 * 1024 * 1024


# ---------------------------------------------------------------------------------------------
# Containers
# ---------------------------------------------------------------------------------------------


def _expect_votes(obj: Any, what: str) -> tuple[SignedVote, ...]:
    items = expect_list(obj, what=what)
    if len(items) > MAX_VOTES_PER_STAGE:
        raise DecodeError(f"{what}: {len(items)} votes exceeds {MAX_VOTES_PER_STAGE}")
    return tuple(SignedVote.from_wire(item) for item in items)


@dataclass(frozen=True)
class Justification:
    """Proof that `target` is final: threshold precommits of one round for it or its descendants.

    `ancestry` holds the encoded headers that link every precommit target down to the target
    (GRANDPA's votes_ancestries), so a verifier needs no chain of its own: exactly the headers
    strictly between a precommit target (included) and the justified block (excluded), each once.
    """

    round: int
    set_id: int
    target_hash: bytes
    target_number: int
    precommits: tuple[SignedVote, ...]
    ancestry: tuple[bytes, ...] = ()

    def to_wire(self) -> list[Any]:
        return [
            self.round,
            self.set_id,
            self.target_hash,
            self.target_number,
            [vote.to_wire() for vote in self.precommits],
            list(self.ancestry),
        ]

    def encode(self) -> bytes:
        return encode(self.to_wire())

    @classmethod
    def from_wire(cls, obj: Any) -> Justification:
        round_number, set_id, target_hash, target_number, precommits, ancestry = expect_list(
            obj, 6, "justification"
        )
        headers = expect_list(ancestry, what="justification ancestry")
        if len(headers) > MAX_ANCESTRY_HEADERS:
            raise DecodeError(
                f"justification ancestry: {len(headers)} headers exceeds {MAX_ANCESTRY_HEADERS}"
            )
        encoded = tuple(expect_bytes(h, max_len=MAX_HEADER_BYTES, what="ancestry header") for h in headers)
        for raw in encoded:
            Header.decode(raw)  # shape check now, so a stored justification is always parseable
        return cls(
            expect_int(round_number, U64_MAX, "round"),
            expect_int(set_id, U64_MAX, "set id"),
            expect_bytes(target_hash, HASH_LEN, what="justification target hash"),
            expect_int(target_number, U32_MAX, "justification target number"),
            _expect_votes(precommits, "justification precommits"),
            encoded,
        )

    @classmethod
    def decode(cls, data: bytes) -> Justification:
        return cls.from_wire(decode(data, MAX_JUSTIFICATION_BYTES))


@dataclass(frozen=True)
class CatchUp:
    """All votes of a round the sender has completed, for a voter that fell behind.

    GRANDPA's catch-up message: a voter may only start round r+1 knowing round r's estimate,
    and only a completable round r gives one, so a lagging voter needs the votes, not just a
    justification (which carries precommits only).
    """

    set_id: int
    round: int
    prevotes: tuple[SignedVote, ...]
    precommits: tuple[SignedVote, ...]

    def to_wire(self) -> list[Any]:
        return [
            self.set_id,
            self.round,
            [vote.to_wire() for vote in self.prevotes],
            [vote.to_wire() for vote in self.precommits],
        ]

    def encode(self) -> bytes:
        return encode(self.to_wire())

    @classmethod
    def from_wire(cls, obj: Any) -> CatchUp:
        set_id, round_number, prevotes, precommits = expect_list(obj, 4, "catch-up")
        return cls(
            expect_int(set_id, U64_MAX, "set id"),
            expect_int(round_number, U64_MAX, "round"),
            _expect_votes(prevotes, "catch-up prevotes"),
            _expect_votes(precommits, "catch-up precommits"),
        )

    @classmethod
    def decode(cls, data: bytes) -> CatchUp:
        return cls.from_wire(decode(data, MAX_CATCH_UP_BYTES))


@dataclass(frozen=True)
class VoterState:
    """What a voter must persist to restart without ever signing twice, and knowing E(r-1).

    `round` is the round it is in, `own_votes` the votes it cast there, `last_completed` the
    votes of the round before (its `CatchUp`), and `base` a finalized block every vote of those
    rounds descends from (the graph root to rebuild them on; GRANDPA persists it too). Written by
    the node before each vote is sent.
    """

    set_id: int
    round: int
    base_hash: bytes
    base_number: int
    own_votes: tuple[SignedVote, ...]
    last_completed: CatchUp | None

    def to_wire(self) -> list[Any]:
        last = None if self.last_completed is None else self.last_completed.to_wire()
        votes = [vote.to_wire() for vote in self.own_votes]
        return [self.set_id, self.round, self.base_hash, self.base_number, votes, last]

    def encode(self) -> bytes:
        return encode(self.to_wire())

    @classmethod
    def from_wire(cls, obj: Any) -> VoterState:
        set_id, round_number, base_hash, base_number, own_votes, last = expect_list(obj, 6, "voter state")
        votes = expect_list(own_votes, what="own votes")
        if len(votes) > 2:
            raise DecodeError("voter state: more than two own votes")
        return cls(
            expect_int(set_id, U64_MAX, "set id"),
            expect_int(round_number, U64_MAX, "round"),
            expect_bytes(base_hash, HASH_LEN, what="base hash"),
            expect_int(base_number, U32_MAX, "base number"),
            tuple(SignedVote.from_wire(vote) for vote in votes),
            None if last is None else CatchUp.from_wire(last),
        )

    @classmethod
    def decode(cls, data: bytes) -> VoterState:
        return cls.from_wire(decode(data, MAX_CATCH_UP_BYTES + 4 * MAX_VOTE_BYTES))


# ---------------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------------


class InvalidJustification(Exception):
    """A justification that does not prove finality; the message says which rule it breaks."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def threshold(voter_count: int) -> int:
    """Votes needed for a supermajority: n - floor((n - 1) / 3), GRANDPA's threshold.

    With f = floor((n - 1) / 3) faulty voters tolerated, any two sets of this size share at
    least f + 1 voters, so at least one honest voter is in both.
    """
    if voter_count <= 0:
        raise ValueError("a voter set cannot be empty")
    return voter_count - (voter_count - 1) // 3


def _fail(reason: str) -> NoReturn:
    raise InvalidJustification(reason)


# ---------------------------------------------------------------------------------------------
# Justification and equivocation checks
# ---------------------------------------------------------------------------------------------


def verify_justification(
    justification: Justification, voters: list[bytes], set_id: int, genesis_hash: bytes
) -> None:
    """Raise `InvalidJustification` unless `justification` proves its target final for this set.

    The rules, as GRANDPA's validate_commit plus Substrate's ancestry checks:

    * every precommit is of this set and round, by a voter of the set, with a valid signature;
    * a voter with one precommit counts iff the ancestry proves its target is the justified
      block or a descendant (numbers included);
    * a voter with two different precommits has equivocated and counts for every block, but
      once (GRANDPA: equivocators are Byzantine, and the threshold already allows for them);
      a third different precommit by one voter is redundant and refused; an exact duplicate
      counts once;
    * at least `threshold(n)` voters count;
    * every ancestry header lies on some proven path (no padding), and appears once.
    """
    j = justification
    if j.set_id != set_id:
        _fail(f"justification is for set {j.set_id}, expected set {set_id}")
    index, keys = voter_table(voters)
    if not j.precommits:
        _fail("justification has no precommits")
    if len(j.precommits) > 2 * len(voters):
        _fail(f"{len(j.precommits)} precommits for {len(voters)} voters")

    by_voter: dict[int, list[SignedVote]] = {}
    for vote in j.precommits:
        if vote.stage != Stage.PRECOMMIT:
            _fail("justification contains a prevote")
        if vote.round != j.round or vote.set_id != j.set_id:
            _fail(f"precommit of round {vote.round} set {vote.set_id} in a justification of round {j.round}")
        position = index.get(vote.voter)
        if position is None:
            _fail(f"precommit by {vote.voter.hex()}, who is not a voter of set {set_id}")
        previous = by_voter.setdefault(position, [])
        if any(other.vote == vote.vote for other in previous):
            continue  # a duplicate proves nothing new; its signature is still checked below
        if len(previous) == 2:
            _fail(f"voter {vote.voter.hex()} has more than two different precommits")
        previous.append(vote)

    checks = [(keys[index[vote.voter]], vote.payload(genesis_hash), vote.signature) for vote in j.precommits]
    if not all(verify_batch(checks)):
        _fail("a precommit signature does not verify")

    headers: dict[bytes, Header] = {}
    for raw in j.ancestry:
        try:
            header = Header.decode(raw)
        except DecodeError as exc:
            _fail(f"undecodable ancestry header: {exc}")
        if header.hash in headers:
            _fail("an ancestry header appears twice")
        headers[header.hash] = header

    used: set[bytes] = set()
    proven: dict[bytes, bool] = {}

    def descends(vote: Vote) -> bool:
        """Walk parent links from the vote's target down to the justified block."""
        block_hash, number = vote.target_hash, vote.target_number
        path: list[bytes] = []
        while True:
            if block_hash == j.target_hash:
                result = number == j.target_number
                break
            header = headers.get(block_hash)
            if number <= j.target_number or header is None or header.number != number:
                result = False
                break
            if block_hash in proven:
                result = proven[block_hash]
                break
            path.append(block_hash)
            block_hash, number = header.parent_hash, number - 1
        for step in path:
            proven[step] = result
        if result:
            used.update(path)
        return result

    counted = 0
    for position in sorted(by_voter):
        votes = by_voter[position]
        if len(votes) == 2:
            for vote in votes:
                descends(vote.vote)  # an equivocator counts regardless; a proven path is still "used"
            counted += 1
        elif descends(votes[0].vote):
            counted += 1
        else:
            target_number = votes[0].vote.target_number
            _fail(
                f"precommit by {voters[position].hex()} for block {target_number} is not proven to "
                f"descend from the justified block {j.target_number} (ancestry gap or wrong fork)"
            )
    if used != set(headers):
        _fail(f"{len(set(headers) - used)} ancestry headers are not on any precommit's path")
    needed = threshold(len(voters))
    if counted < needed:
        _fail(f"only {counted} of {len(voters)} voters precommitted the target; {needed} are needed")
