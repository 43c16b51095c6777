"""Whole-network behaviour in the deterministic simulation (tests/consensus/sim.py).

Every run also checks, as it goes: each justification produced verifies, each node's finality
only moves forward along its own chain, and no honest node signs two different votes for one
round and stage (restarts included).
"""

from __future__ import annotations

import os

import pytest

from tests.consensus.scenarios import byzantine_partition_run
from tests.consensus.sim import Sim, SimConfig, SimNode

WARMUP_MS = 5_000
# More seeds for a soak: FINALITY_SIM_SEEDS=200 pytest tests/consensus (or run scenarios.py).
EXTRA_SEEDS = int(os.environ.get("FINALITY_SIM_SEEDS", "0"))


def finalized_at(node: SimNode, time: int) -> int:
    numbers = [number for t, _, number in node.finalized_log if t <= time]
    return numbers[-1] if numbers else 0


@pytest.mark.parametrize("voters", [4, 7, 10])
def test_honest_voters_finalize_continuously_with_small_lag(voters: int) -> None:
    sim = Sim(SimConfig(voters=voters, observers=1, seed=voters, drop=0.02, fork=0.2))
    sim.run_until(30_000)
    sim.assert_safety()
    for node in sim.honest_voters:
        steady = node.lag_samples[WARMUP_MS // sim.config.tick_ms :]
        assert max(steady) <= 3, f"node {node.index}: finality lagged {max(steady)} blocks"
        times = [t for t, _, _ in node.finalized_log if t >= WARMUP_MS]
        assert max(b - a for a, b in zip(times, times[1:], strict=False)) <= 3 * sim.config.slot_ms
    observer = sim.nodes[-1]
    assert observer.index >= voters and observer.finalized_number >= sim.min_finalized(sim.honest_voters) - 1
    assert sim.min_finalized() >= sim.best_number() - 3


@pytest.mark.parametrize("restart", [None, "resume", "replay"], ids=["frozen", "resumed", "replayed"])
def test_one_of_four_offline_keeps_finality_two_stop_it_and_one_back_resumes(restart: str | None) -> None:
    sim = Sim(SimConfig(voters=4, seed=11, drop=0.05))
    sim.run_until(8_000)
    start = sim.min_finalized()
    assert start >= 5

    sim.set_online(3, False)
    sim.run_until(20_000)
    three = sim.nodes[:3]
    assert sim.min_finalized(three) >= start + 8, "finality must go on with 3 of 4"

    sim.set_online(2, False)
    two = sim.nodes[:2]
    sim.run_until(23_000)  # votes already in flight may still land
    stalled = max(node.finalized_number for node in two)
    sim.run_until(38_000)
    assert max(node.finalized_number for node in two) == stalled, "2 of 4 must not finalize"
    best_at_return = sim.best_number()
    assert best_at_return >= stalled + 10  # authoring went on

    if restart is not None:
        sim.restart(2, replay=restart == "replay")  # a new voter from its persisted state
    sim.set_online(2, True)
    sim.run_until(46_000)
    assert sim.min_finalized(three) >= best_at_return, "finality must resume and cover the gap"

    sim.set_online(3, True)
    sim.run_until(56_000)
    assert sim.min_finalized() >= sim.best_number() - 3
    sim.assert_safety()


def test_a_voter_that_missed_many_rounds_catches_up() -> None:
    sim = Sim(SimConfig(voters=4, seed=5))
    sim.set_online(3, False)
    sim.run_until(30_000)
    behind = sim.nodes[3].voter.round
    sim.set_online(3, True)
    sim.run_until(36_000)
    node = sim.nodes[3]
    assert node.voter.round >= sim.nodes[0].voter.round - 1 > behind + 5
    assert node.finalized_number >= sim.min_finalized(sim.nodes[:3]) - 2
    assert any(v.round > behind + 5 for v in node.sent_votes), "it votes again after catching up"


def test_runs_are_deterministic() -> None:
    def run() -> list[object]:
        sim = Sim(SimConfig(voters=4, byzantine=(3,), seed=21, drop=0.1, fork=0.3, byzantine_mode="mixed"))
        sim.run_until(15_000)
        return [node.finalized_log for node in sim.nodes] + [node.sent_votes for node in sim.nodes]

    assert run() == run()


SEEDS = [(4, seed) for seed in range(6 + EXTRA_SEEDS)] + [(7, seed) for seed in range(3 + EXTRA_SEEDS // 2)]
SEEDS += [(10, seed) for seed in range(1 + EXTRA_SEEDS // 8)]


@pytest.mark.parametrize(("voters", "seed"), SEEDS, ids=[f"n{n}-seed{s}" for n, s in SEEDS])
@pytest.mark.parametrize("mode", ["equivocate", "conflict", "mixed"])
def test_byzantine_voters_and_partitions_never_break_safety(voters: int, seed: int, mode: str) -> None:
    """f Byzantine voters (equivocating to two halves, or voting for conflicting forks, and
    authoring two blocks per slot) while the honest nodes are split three times over."""
    outcome = byzantine_partition_run(voters, seed, mode)  # asserts safety and honest-only reports
    if mode != "conflict":
        assert outcome.equivocated_while_connected and outcome.accused >= outcome.equivocated_while_connected
    # liveness: once healed, the honest nodes finalize at least everything authored meanwhile
    assert outcome.finalized_after >= outcome.best_at_heal > outcome.finalized_before


def test_disabling_a_reported_equivocator_keeps_finality_going() -> None:
    """What the runtime does with a report: the offender's votes are ignored from then on."""
    sim = Sim(SimConfig(voters=4, byzantine=(3,), seed=8, drop=0.02))
    sim.run_until(6_000)
    offenders = {proof.offender for node in sim.honest for proof in node.reports}
    assert offenders == {sim.voter_keys[3]}
    for node in sim.honest:
        node.voter.disabled |= offenders
    before = sim.min_finalized()
    sim.run_until(20_000)
    assert sim.min_finalized() >= before + 10
    assert sim.min_finalized() >= sim.best_number() - 3
    sim.assert_safety()
