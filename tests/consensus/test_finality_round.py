"""Vote accounting of one round: GHOSTs, estimate, completability, equivocators, pending blocks.

Chain (as in finality-grandpa's round tests, unit weights):

    genesis - A1 - A2 - A3 - A4 - A5 - A6 - A7 - A8 - A9
                                   \\
                                    E6 - E7 - E8
"""

from __future__ import annotations

from node.consensus.finality import Round, SignedVote, Stage, Vote
from node.consensus.finality_round import AddResult
from node.types import Header
from tests.consensus.sim import GENESIS, GENESIS_HASH, chain_with, extend, sim_keypair

A = extend(GENESIS, 9)
E = extend(A[4], 3, variant=1)  # forks off A5
KEYS = [sim_keypair(i) for i in range(10)]
CHAIN = chain_with(A, E)


def vote(voter: int, stage: Stage, block: Header, round_number: int = 1) -> SignedVote:
    return SignedVote.sign(KEYS[voter], GENESIS_HASH, 0, round_number, stage, Vote(block.hash, block.number))


def add(rnd: Round, voter: int, stage: Stage, block: Header) -> AddResult:
    result = rnd.add(voter, vote(voter, stage, block))
    rnd.import_pending(CHAIN)
    return result


def block_id(block: Header) -> tuple[bytes, int]:
    return block.hash, block.number


def test_prevote_ghost_is_the_highest_block_with_threshold_support() -> None:
    rnd = Round(1, 4, (GENESIS_HASH, 0))
    add(rnd, 0, Stage.PREVOTE, A[8])
    add(rnd, 1, Stage.PREVOTE, E[2])
    assert rnd.prevote_ghost is None  # two of four
    add(rnd, 2, Stage.PREVOTE, A[6])
    assert rnd.prevote_ghost == block_id(A[4])  # A5: everyone's chain passes through it
    assert rnd.estimate == block_id(A[4]) and not rnd.completable  # no precommits yet
    add(rnd, 3, Stage.PREVOTE, A[7])
    assert rnd.prevote_ghost == block_id(A[6])  # A7: three of four on the A fork


def test_completable_once_nothing_above_the_estimate_can_get_a_supermajority() -> None:
    rnd = Round(1, 4, (GENESIS_HASH, 0))
    for voter, block in enumerate([A[8], A[7], A[6], A[6]]):
        add(rnd, voter, Stage.PREVOTE, block)
    ghost = block_id(A[6])  # A7: all four
    assert rnd.prevote_ghost == ghost
    add(rnd, 0, Stage.PRECOMMIT, A[7])  # above the GHOST
    add(rnd, 1, Stage.PRECOMMIT, A[6])
    assert rnd.finalized is None and rnd.estimate == ghost and not rnd.completable  # two precommits
    add(rnd, 2, Stage.PRECOMMIT, A[6])
    assert rnd.finalized == ghost
    # A8 has one precommit; voter 3 plus one tolerated equivocation could still lift it to three
    assert rnd.estimate == ghost and not rnd.completable
    add(rnd, 3, Stage.PRECOMMIT, A[6])
    assert rnd.estimate == ghost and rnd.completable and rnd.ever_completable


def test_the_estimate_drops_below_the_ghost_when_the_ghost_became_impossible() -> None:
    rnd = Round(1, 4, (GENESIS_HASH, 0))
    for voter in range(4):
        add(rnd, voter, Stage.PREVOTE, A[8])
    add(rnd, 0, Stage.PRECOMMIT, A[8])
    add(rnd, 1, Stage.PRECOMMIT, A[3])
    add(rnd, 2, Stage.PRECOMMIT, A[3])
    # A9: one precommit + voter 3 + one equivocation = 3: still possible, and nothing is above it
    assert rnd.finalized == block_id(A[3])
    assert rnd.estimate == block_id(A[8]) and rnd.completable
    add(rnd, 3, Stage.PRECOMMIT, A[3])
    # now A5..A9 are out of reach: the estimate is A4, below the prevote GHOST A9
    assert rnd.estimate == block_id(A[3]) and rnd.completable
    assert rnd.prevote_ghost == block_id(A[8])


def test_round_completes_with_one_voter_missing_when_nothing_more_is_possible() -> None:
    rnd = Round(1, 4, (GENESIS_HASH, 0))
    for voter in range(3):
        add(rnd, voter, Stage.PREVOTE, A[5])
        add(rnd, voter, Stage.PRECOMMIT, A[5])
    assert rnd.finalized == block_id(A[5])
    assert rnd.estimate == block_id(A[5]) and rnd.completable


def test_an_equivocator_supports_everything_but_is_counted_once() -> None:
    rnd = Round(1, 4, (GENESIS_HASH, 0))
    assert add(rnd, 0, Stage.PREVOTE, A[8]) is AddResult.NEW
    assert add(rnd, 0, Stage.PREVOTE, E[2]) is AddResult.EQUIVOCATION
    assert add(rnd, 0, Stage.PREVOTE, A[1]) is AddResult.REDUNDANT
    assert add(rnd, 0, Stage.PREVOTE, E[2]) is AddResult.DUPLICATE
    assert rnd.voted_count(Stage.PREVOTE) == 1
    assert rnd.equivocators(Stage.PREVOTE) == [0]
    add(rnd, 1, Stage.PREVOTE, E[2])
    assert rnd.prevote_ghost is None  # two voters, however many votes
    add(rnd, 2, Stage.PREVOTE, E[1])
    # voter 0 counts for the E fork too: E7 has three supporters
    assert rnd.prevote_ghost == block_id(E[1])


def test_an_equivocation_counts_towards_finality() -> None:
    rnd = Round(1, 4, (GENESIS_HASH, 0))
    for voter in range(4):
        add(rnd, voter, Stage.PREVOTE, A[8])
    add(rnd, 0, Stage.PRECOMMIT, A[8])
    add(rnd, 1, Stage.PRECOMMIT, A[8])
    add(rnd, 2, Stage.PRECOMMIT, A[2])
    assert rnd.finalized == block_id(A[2])
    # voter 2 equivocating makes it a supporter of everything, A9 included: A9 is final
    assert add(rnd, 2, Stage.PRECOMMIT, E[0]) is AddResult.EQUIVOCATION
    assert rnd.finalized == block_id(A[8])
    assert rnd.voted_count(Stage.PRECOMMIT) == 3


def test_votes_for_unknown_blocks_wait_for_them() -> None:
    late = extend(A[8], 1)[0]
    chain = chain_with(A, E)
    rnd = Round(1, 4, (GENESIS_HASH, 0))
    for voter in range(3):
        rnd.add(voter, vote(voter, Stage.PREVOTE, late))
    assert not rnd.import_pending(chain)
    assert rnd.pending_count() == 3 and rnd.voted_count(Stage.PREVOTE) == 0
    chain.import_header(late)
    assert rnd.import_pending(chain)
    assert rnd.pending_count() == 0 and rnd.prevote_ghost == block_id(late)


def test_a_vote_off_the_base_counts_as_cast_but_supports_nothing() -> None:
    rnd = Round(1, 4, block_id(A[5]))  # base A6
    add(rnd, 0, Stage.PREVOTE, E[2])  # E fork: not a descendant of A6
    add(rnd, 1, Stage.PREVOTE, A[8])
    add(rnd, 2, Stage.PREVOTE, A[8])
    assert rnd.voted_count(Stage.PREVOTE) == 3
    assert rnd.prevote_ghost is None
    add(rnd, 3, Stage.PREVOTE, A[7])
    assert rnd.prevote_ghost == block_id(A[7])
    # a vote with a number that does not match its block supports nothing either
    rnd2 = Round(1, 4, (GENESIS_HASH, 0))
    rnd2.add(0, SignedVote.sign(KEYS[0], GENESIS_HASH, 0, 1, Stage.PREVOTE, Vote(A[3].hash, 7)))
    rnd2.import_pending(CHAIN)
    assert rnd2.voted_count(Stage.PREVOTE) == 1 and rnd2.pending_count() == 0


def test_precommit_support_builds_minimal_proofs() -> None:
    rnd = Round(3, 4, (GENESIS_HASH, 0))
    add(rnd, 0, Stage.PRECOMMIT, A[8])
    add(rnd, 1, Stage.PRECOMMIT, A[6])
    add(rnd, 2, Stage.PRECOMMIT, E[2])  # off the target's chain: left out
    add(rnd, 3, Stage.PRECOMMIT, A[5])
    add(rnd, 3, Stage.PRECOMMIT, E[0])  # voter 3 equivocates: both votes go in, no ancestry needed
    votes, path = rnd.precommit_support(block_id(A[5]), max_headers=100)
    assert sorted({v.voter for v in votes}) == sorted(KEYS[i].public.data for i in (0, 1, 3))
    assert len(votes) == 4
    assert path == [A[6].hash, A[7].hash, A[8].hash]
    # with a tight budget the longest path is dropped
    votes, path = rnd.precommit_support(block_id(A[5]), max_headers=1)
    assert {v.voter for v in votes} == {KEYS[1].public.data, KEYS[3].public.data}
    assert path == [A[6].hash]


def test_ten_voters_tolerate_three_equivocators() -> None:
    rnd = Round(1, 10, (GENESIS_HASH, 0))
    for voter in range(7):
        add(rnd, voter, Stage.PREVOTE, A[8])
    for voter in range(7, 10):
        add(rnd, voter, Stage.PREVOTE, E[2])
        add(rnd, voter, Stage.PREVOTE, A[0])
    assert rnd.prevote_ghost == block_id(A[8])  # 7 honest + 3 equivocators on A; E has only 3
    for voter in range(7):
        add(rnd, voter, Stage.PRECOMMIT, A[8])
    assert rnd.finalized == block_id(A[8])
    assert rnd.completable
