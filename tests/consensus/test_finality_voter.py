"""The voter state machine, one event at a time: validation, buffering, reports, finality inputs."""

from __future__ import annotations

import dataclasses

from node.consensus.finality import (
    FUTURE_ROUNDS,
    PAST_ROUNDS,
    Broadcast,
    CatchUp,
    FinalityVoter,
    Finalize,
    Justification,
    Penalize,
    ReportEquivocation,
    RequestCatchUp,
    SignedVote,
    Stage,
    Step,
    Vote,
    VoterState,
    check_equivocation_proof,
    verify_justification,
)
from node.types import Header
from tests.consensus.sim import GENESIS, GENESIS_HASH, Sim, SimConfig, chain_with, extend, sim_keypair

ROUND_MS = 1000
A = extend(GENESIS, 6)
B = extend(A[1], 3, variant=1)  # fork off A2
KEYS = [sim_keypair(i) for i in range(5)]
VOTERS = [k.public.data for k in KEYS[:4]]


def block_id(block: Header) -> tuple[bytes, int]:
    return block.hash, block.number


def make_voter(index: int | None = 0, blocks: tuple[list[Header], ...] = (A, B), **kwargs) -> FinalityVoter:
    keypair = KEYS[index] if index is not None else None
    return FinalityVoter(
        VOTERS,
        0,
        GENESIS_HASH,
        chain_with(*blocks),
        (GENESIS_HASH, 0),
        keypair=keypair,
        round_duration_ms=ROUND_MS,
        **kwargs,
    )


def vote(voter: int, stage: Stage, block: Header, round_number: int = 1, set_id: int = 0) -> SignedVote:
    return SignedVote.sign(
        KEYS[voter], GENESIS_HASH, set_id, round_number, stage, Vote(block.hash, block.number)
    )


def of(kind: type, actions: list) -> list:
    return [a for a in actions if isinstance(a, kind)]


# -- timers and votes ------------------------------------------------------------------------------


def test_a_lone_voter_finalizes_its_best_block() -> None:
    keypair = KEYS[0]
    voter = FinalityVoter(
        [keypair.public.data],
        0,
        GENESIS_HASH,
        chain_with(A),
        (GENESIS_HASH, 0),
        keypair=keypair,
        round_duration_ms=ROUND_MS,
    )
    assert voter.on_tick(0) == []  # the first event starts the round's clock
    actions = voter.on_tick(ROUND_MS // 2)
    broadcasts = of(Broadcast, actions)
    assert [b.vote.stage for b in broadcasts] == [Stage.PREVOTE, Stage.PRECOMMIT]
    assert all(b.vote.vote == Vote(A[5].hash, 6) for b in broadcasts)
    (final,) = of(Finalize, actions)
    assert (final.hash, final.number) == block_id(A[5])
    verify_justification(final.justification, [keypair.public.data], 0, GENESIS_HASH)
    assert voter.round == 2 and voter.last_finalized == block_id(A[5])


def test_prevote_waits_for_the_timer_and_targets_the_best_chain_containing_the_estimate() -> None:
    voter = make_voter(0)
    voter.on_tick(0)
    assert voter.on_tick(ROUND_MS // 2 - 1) == []
    (prevote,) = of(Broadcast, voter.on_tick(ROUND_MS // 2))
    assert prevote.vote.stage is Stage.PREVOTE and prevote.vote.vote.target_hash == A[5].hash  # longest chain
    assert voter.step is Step.PREVOTED
    # no precommit before a prevote GHOST exists, however late (only our prevote is re-sent)
    assert [b.rebroadcast for b in of(Broadcast, voter.on_tick(10 * ROUND_MS))] == [True]
    voter.on_vote(vote(1, Stage.PREVOTE, A[4]), 10 * ROUND_MS)
    (precommit,) = of(Broadcast, voter.on_vote(vote(2, Stage.PREVOTE, A[3]), 10 * ROUND_MS))
    assert precommit.vote.stage is Stage.PRECOMMIT and precommit.vote.vote.target_hash == A[3].hash


def test_precommit_early_once_every_prevote_is_in() -> None:
    voter = make_voter(0)
    voter.on_tick(0)
    voter.on_tick(ROUND_MS // 2)
    voter.on_vote(vote(1, Stage.PREVOTE, A[5]), 600)
    assert of(Broadcast, voter.on_vote(vote(2, Stage.PREVOTE, A[5]), 600)) == []  # 3 of 4: wait for the timer
    (precommit,) = of(Broadcast, voter.on_vote(vote(3, Stage.PREVOTE, A[4]), 601))
    assert precommit.vote.vote == Vote(A[5].hash, 6)  # A6 has three of four prevotes: the GHOST


def test_an_observer_tracks_rounds_and_finalizes_without_voting() -> None:
    observer = make_voter(None)
    outsider = FinalityVoter(VOTERS, 0, GENESIS_HASH, chain_with(A), (GENESIS_HASH, 0), keypair=KEYS[4])
    actions = []
    for voter in range(4):
        for stage in Stage:
            actions += observer.on_vote(vote(voter, stage, A[4]), 100)
            outsider.on_vote(vote(voter, stage, A[4]), 100)
    actions += observer.on_tick(5 * ROUND_MS)
    assert of(Broadcast, actions) == []
    (final,) = of(Finalize, actions)
    assert final.number == 5 and observer.round == 2
    assert outsider.voter_index is None and of(Broadcast, outsider.on_tick(10 * ROUND_MS)) == []


# -- validation -------------------------------------------------------------------------------------


def test_votes_are_validated_before_they_count() -> None:
    voter = make_voter(0)
    good = vote(1, Stage.PREVOTE, A[3])
    assert voter.on_vote(dataclasses.replace(good, set_id=1), 0) == []  # another set: not ours
    (penalty,) = voter.on_vote(vote(4, Stage.PREVOTE, A[3]), 0)  # key outside the set
    assert isinstance(penalty, Penalize) and penalty.voter == KEYS[4].public.data
    forged = dataclasses.replace(good, signature=bytes(64))
    assert of(Penalize, voter.on_vote(forged, 0))
    moved = dataclasses.replace(good, vote=Vote(A[4].hash, 5))  # signature over another target
    assert of(Penalize, voter.on_vote(moved, 0))
    assert of(Penalize, voter.on_vote(vote(1, Stage.PREVOTE, A[3], round_number=0), 0))
    assert voter.on_vote(good, 0) == []
    assert voter.round_state(1).voted_count(Stage.PREVOTE) == 1
    assert voter.on_vote(good, 0) == []  # duplicate
    voter.disabled.add(VOTERS[2])
    voter.on_vote(vote(2, Stage.PREVOTE, A[3]), 0)
    assert voter.round_state(1).voted_count(Stage.PREVOTE) == 1  # disabled voters are ignored


def test_round_window_and_catch_up_requests() -> None:
    voter = make_voter(0)
    voter.on_tick(0)
    far = vote(1, Stage.PREVOTE, A[3], round_number=1 + FUTURE_ROUNDS + 1)
    assert voter.on_vote(far, 0) == [RequestCatchUp(far.round)]
    assert voter.on_vote(vote(2, Stage.PREVOTE, A[3], round_number=far.round), 10) == []  # rate-limited
    assert far.round not in voter.tracked_rounds()
    forged = dataclasses.replace(vote(3, Stage.PREVOTE, A[3], round_number=far.round), signature=bytes(64))
    assert of(Penalize, voter.on_vote(forged, 5 * ROUND_MS))  # a hint needs a valid signature
    near = vote(1, Stage.PREVOTE, A[3], round_number=1 + FUTURE_ROUNDS)
    assert voter.on_vote(near, 0) == [] and near.round in voter.tracked_rounds()


def test_memory_stays_bounded_under_a_flood_of_rounds() -> None:
    voter = make_voter(None)
    now = 0
    for round_number in range(1, 60):
        for index in range(4):
            for stage in Stage:
                for block in (A[5], B[2], A[2]):  # every voter equivocates too
                    voter.on_vote(vote(index, stage, block, round_number), now)
        now += 10
        assert len(voter.tracked_rounds()) <= PAST_ROUNDS + 1 + FUTURE_ROUNDS
        for number in voter.tracked_rounds():
            rnd = voter.round_state(number)
            assert all(len(rnd.votes_of(stage, i)) <= 2 for stage in Stage for i in range(4))
    assert voter.round > 50  # it followed the rounds (each completable from the flood)


def test_equivocations_are_reported_once_with_a_valid_proof() -> None:
    voter = make_voter(0)
    first, second, third = (vote(2, Stage.PRECOMMIT, block) for block in (A[4], B[2], A[1]))
    assert voter.on_vote(first, 0) == []
    (report,) = of(ReportEquivocation, voter.on_vote(second, 0))
    assert check_equivocation_proof(report.proof, VOTERS, GENESIS_HASH) == VOTERS[2]
    assert (report.proof.first, report.proof.second) == (first, second)
    assert of(ReportEquivocation, voter.on_vote(third, 0)) == []
    assert of(ReportEquivocation, voter.on_vote(second, 0)) == []
    assert voter.round_state(1).equivocators(Stage.PRECOMMIT) == [2]
    # prevotes are a separate stage: a prevote and a precommit for different blocks are fine
    assert of(ReportEquivocation, voter.on_vote(vote(2, Stage.PREVOTE, A[0]), 0)) == []


def test_votes_for_blocks_not_yet_imported_are_buffered() -> None:
    late = extend(A[5], 2)
    chain = chain_with(A)
    voter = FinalityVoter(VOTERS, 0, GENESIS_HASH, chain, (GENESIS_HASH, 0), round_duration_ms=ROUND_MS)
    for index in range(4):
        for stage in Stage:
            assert of(Finalize, voter.on_vote(vote(index, stage, late[1]), 0)) == []
    assert voter.round_state(1).pending_count() == 8
    chain.import_header(late[0])
    assert of(Finalize, voter.on_block_imported(1)) == []
    chain.import_header(late[1])
    (final,) = of(Finalize, voter.on_block_imported(2))
    assert (final.hash, final.number) == block_id(late[1])


# -- justifications and catch-ups --------------------------------------------------------------------


def justification_for(block: Header, voters: range = range(3), round_number: int = 4) -> Justification:
    votes = tuple(vote(i, Stage.PRECOMMIT, block, round_number) for i in voters)
    return Justification(round_number, 0, block.hash, block.number, votes, ())


def test_a_valid_justification_finalizes_and_a_bad_one_is_penalized() -> None:
    voter = make_voter(0)
    (final,) = of(Finalize, voter.on_justification(justification_for(A[3]), 0))
    assert final.number == 4 and voter.last_finalized == block_id(A[3])
    assert voter.on_justification(justification_for(A[2]), 0) == []  # old news
    (penalty,) = voter.on_justification(justification_for(A[5], range(2)), 0)
    assert isinstance(penalty, Penalize) and "2 of 4" in penalty.reason
    # a justification for a block on a fork of the finalized chain is never applied
    assert of(Finalize, voter.on_justification(justification_for(B[2]), 0)) == []
    assert voter.conflicting_finality == 1 and voter.last_finalized == block_id(A[3])


def test_a_justification_for_an_unknown_block_waits_for_it() -> None:
    late = extend(A[5], 1)[0]
    chain = chain_with(A)
    voter = FinalityVoter(VOTERS, 0, GENESIS_HASH, chain, (GENESIS_HASH, 0))
    assert of(Finalize, voter.on_justification(justification_for(late), 0)) == []
    chain.import_header(late)
    (final,) = of(Finalize, voter.on_block_imported(1))
    assert final.hash == late.hash


def completed_round(round_number: int, block: Header) -> CatchUp:
    return CatchUp(
        0,
        round_number,
        tuple(vote(i, Stage.PREVOTE, block, round_number) for i in range(1, 4)),
        tuple(vote(i, Stage.PRECOMMIT, block, round_number) for i in range(1, 4)),
    )


def test_a_catch_up_moves_a_lagging_voter_to_the_round_after_it() -> None:
    voter = make_voter(0)
    voter.on_tick(0)
    (final,) = of(Finalize, voter.on_catch_up(completed_round(40, A[4]), 100))
    assert final.number == 5
    assert voter.round == 41 and voter.step is Step.START  # a peer sends only rounds it has left
    # it votes in round 41 on top of round 40's estimate, never in the rounds it skipped
    (prevote,) = of(Broadcast, voter.on_tick(100 + ROUND_MS // 2))
    assert prevote.vote.round == 41 and prevote.vote.vote.target_hash == A[5].hash
    assert voter.on_catch_up(completed_round(30, A[4]), 200) == []  # behind us: ignored


def test_a_completable_future_round_from_gossip_needs_evidence_that_voters_moved_on() -> None:
    voter = make_voter(0)
    voter.on_tick(0)
    for index in range(1, 4):  # round 2 completes in gossip while we are still in round 1
        for stage in Stage:
            voter.on_vote(vote(index, stage, A[4], round_number=2), 10)
    assert voter.round_state(2).completable and voter.round == 1
    voter.on_vote(vote(1, Stage.PREVOTE, A[5], round_number=3), 10)
    assert voter.round == 1  # one voter in round 3 may be the Byzantine one
    voter.on_vote(vote(2, Stage.PREVOTE, A[5], round_number=3), 10)
    assert voter.round == 3  # two (more than f = 1): honest voters have left round 2


def test_a_voter_that_cannot_finish_its_round_leaves_it_once_the_others_have() -> None:
    # Our view of round 1 (its estimate on the B fork) differs from the others', whose round 2
    # prevote GHOST is on the A fork: we may not precommit in round 2, ever.
    voter = make_voter(0)
    precommits = (
        vote(1, Stage.PRECOMMIT, B[2]),
        vote(2, Stage.PRECOMMIT, B[2]),
        vote(3, Stage.PRECOMMIT, A[1]),
    )
    round_one = CatchUp(0, 1, tuple(vote(i, Stage.PREVOTE, B[2]) for i in range(1, 4)), precommits)
    voter.on_catch_up(round_one, 0)
    assert voter.round == 2 and voter.last_finalized == block_id(A[1])
    assert voter.round_state(1).estimate == block_id(B[2])  # B5 may still have been finalized
    voter.on_tick(ROUND_MS)  # prevote on the B fork
    for index in range(1, 4):
        for stage in Stage:
            voter.on_vote(vote(index, stage, A[5], round_number=2), ROUND_MS)
    rnd = voter.round_state(2)
    assert rnd.completable and voter.step is Step.PREVOTED
    voter.on_tick(10 * ROUND_MS)
    assert voter.round == 2 and voter.step is Step.PREVOTED  # stuck: GHOST A6 is not above B5
    voter.on_catch_up(completed_round(2, A[5]), 10 * ROUND_MS)  # a peer has left round 2
    assert voter.round == 3
    (prevote,) = [b for b in of(Broadcast, voter.on_tick(12 * ROUND_MS)) if not b.rebroadcast]
    assert prevote.vote.round == 3 and prevote.vote.vote.target_hash == A[5].hash


def test_invalid_catch_ups_are_penalized() -> None:
    voter = make_voter(0)
    good = completed_round(9, A[4])
    thin = dataclasses.replace(good, precommits=good.precommits[:2])
    assert "fewer than 3" in voter.on_catch_up(thin, 0)[0].reason
    forged = dataclasses.replace(
        good, prevotes=(dataclasses.replace(good.prevotes[0], signature=bytes(64)), *good.prevotes[1:])
    )
    assert "signature" in voter.on_catch_up(forged, 0)[0].reason
    swapped = dataclasses.replace(good, prevotes=good.precommits)
    assert "stage" in voter.on_catch_up(swapped, 0)[0].reason
    assert voter.round == 1
    # a catch-up whose blocks are unknown waits for them, then applies
    late = extend(A[5], 1)[0]
    chain = chain_with(A)
    lagging = FinalityVoter(VOTERS, 0, GENESIS_HASH, chain, (GENESIS_HASH, 0), keypair=KEYS[0])
    lagging.on_catch_up(completed_round(9, late), 0)
    for index in (1, 2):
        lagging.on_vote(vote(index, Stage.PREVOTE, late, round_number=10), 0)
    assert lagging.round == 1
    chain.import_header(late)
    lagging.on_block_imported(1)
    assert lagging.round == 10


def test_a_resumed_voter_keeps_its_votes_and_its_round() -> None:
    voter = make_voter(0)
    voter.on_catch_up(completed_round(6, A[3]), 0)  # a catch-up of round 6 puts us in round 7
    assert voter.round == 7
    (prevote,) = of(Broadcast, voter.on_tick(ROUND_MS))
    blob = voter.persistent_state().encode()  # what the node writes before sending the prevote
    state = VoterState.decode(blob)
    assert state.round == 7 and state.own_votes == (prevote.vote,) and state.last_completed.round == 6
    restarted = make_voter(0)
    assert of(Broadcast, restarted.resume(state, 5 * ROUND_MS)) == []
    assert restarted.round == 7 and restarted.step is Step.START
    actions = restarted.on_tick(6 * ROUND_MS)  # timer due: the prevote is not signed again
    assert [b.vote for b in of(Broadcast, actions)] == [prevote.vote]  # re-sent as is
    for index in (1, 2):
        actions = restarted.on_vote(vote(index, Stage.PREVOTE, A[5], round_number=7), 6 * ROUND_MS)
    (precommit,) = [b for b in of(Broadcast, actions) if not b.rebroadcast]
    assert precommit.vote.stage is Stage.PRECOMMIT and precommit.vote.round == 7


def test_a_restarted_voter_abstains_until_it_knows_the_previous_estimate() -> None:
    voter = make_voter(0, start_round=7)
    voter.on_tick(0)
    assert of(Broadcast, voter.on_tick(5 * ROUND_MS)) == []  # E(6) unknown: no vote
    # the persisted catch-up of round 6 restores it; a persisted own prevote is not signed again
    voter = make_voter(0, start_round=7)
    voter.on_catch_up(completed_round(6, A[3]), 0)
    assert voter.round == 7
    own = vote(0, Stage.PREVOTE, A[4], round_number=7)
    voter.on_vote(own, 0)
    actions = voter.on_tick(ROUND_MS)
    assert [b.vote for b in of(Broadcast, actions)] == [own]  # re-sent, not signed again
    assert all(b.rebroadcast for b in of(Broadcast, actions))
    for index in (1, 2):
        actions += voter.on_vote(vote(index, Stage.PREVOTE, A[5], round_number=7), ROUND_MS)
    (precommit,) = [b for b in of(Broadcast, actions) if not b.rebroadcast]
    assert precommit.vote.stage is Stage.PRECOMMIT and precommit.vote.round == 7


def test_a_replayed_restart_rebuilds_rounds_below_a_later_finalized_block() -> None:
    # Restarted in round 7 knowing only its finalized block A5 (finalized by round 7 itself);
    # round 6's votes are for A4, below it. Its persisted catch-up shows that, and the round is
    # rebuilt on a lower base, so E(6) is known again and the voter can vote in round 7.
    voter = FinalityVoter(
        VOTERS,
        0,
        GENESIS_HASH,
        chain_with(A, B),
        block_id(A[4]),
        keypair=KEYS[0],
        start_round=7,
        round_duration_ms=ROUND_MS,
    )
    voter.on_catch_up(completed_round(6, A[3]), 0)
    restored = voter.round_state(6)
    assert restored.base[1] <= 4 and restored.completable and restored.estimate == block_id(A[3])
    (prevote,) = [b for b in of(Broadcast, voter.on_tick(ROUND_MS)) if not b.rebroadcast]
    assert prevote.vote.round == 7 and prevote.vote.vote.target_hash == A[5].hash


def test_catch_up_and_round_votes_serve_what_a_lagging_peer_needs() -> None:
    sim = Sim(SimConfig(voters=4, seed=3))
    sim.run_until(8_200)  # mid-round: round 7 has votes, round 6 is complete
    voter = sim.nodes[0].voter
    catch_up = voter.catch_up()
    assert catch_up is not None and catch_up.round == voter.round - 1
    assert CatchUp.decode(catch_up.encode()) == catch_up
    assert len({v.voter for v in catch_up.prevotes}) >= 3 and len({v.voter for v in catch_up.precommits}) >= 3
    assert all(v.round == voter.round for v in voter.round_votes(voter.round))
    fresh = FinalityVoter(sim.voter_keys, 0, GENESIS_HASH, sim.nodes[0].chain, (GENESIS_HASH, 0))
    fresh.on_catch_up(catch_up, sim.now)
    for current in voter.round_votes(voter.round):  # the answer to a catch-up request carries both
        fresh.on_vote(current, sim.now)
    assert len({v.voter for v in voter.round_votes(voter.round)}) > 1
    assert fresh.round == voter.round
    summary = voter.summary()
    assert summary["round"] == voter.round and summary["threshold"] == 3
