"""Simulation scenarios shared by the tests.

Runnable as a soak with many seeds: `python -m tests.consensus.scenarios 200`.
"""

from __future__ import annotations

import random
import sys
import time
from dataclasses import dataclass

from tests.consensus.sim import Sim, SimConfig


@dataclass
class ByzantineOutcome:
    finalized_before: int  # highest block finalized before the first partition
    best_at_heal: int
    finalized_after: int  # lowest finalized block over honest nodes at the end
    accused: int  # Byzantine voters reported by some honest node
    equivocated_while_connected: int  # Byzantine voters that sent conflicting pairs before any partition


def byzantine_partition_run(
    voters: int, seed: int, mode: str = "mixed", heal_ms: int = 20_000
) -> ByzantineOutcome:
    """f = floor((n-1)/3) Byzantine voters; honest nodes (and an observer) are split into two groups
    three times over (the Byzantine voters reach both), then the network heals.

    Asserts safety, valid reports and no false accusation; returns what the caller checks for liveness.
    """
    faulty = (voters - 1) // 3
    byzantine = tuple(range(voters - faulty, voters))
    sim = Sim(
        SimConfig(
            voters=voters,
            byzantine=byzantine,
            observers=1,
            seed=seed,
            drop=0.05,
            fork=0.2,
            byzantine_mode=mode,
        )
    )
    rng = random.Random(f"partitions:{seed}")
    now = 8_000
    sim.run_until(now)
    finalized_before = max(node.finalized_number for node in sim.honest)
    for _ in range(3):
        honest = [node.index for node in sim.honest]
        rng.shuffle(honest)
        cut = rng.randint(1, len(honest) - 1)
        sim.partition(honest[:cut] + list(byzantine), honest[cut:] + list(byzantine))
        now += rng.randint(3_000, 6_000)
        sim.run_until(now)
        sim.assert_safety()
    sim.heal()
    best_at_heal = sim.best_number()
    sim.run_until(now + heal_ms)
    sim.assert_safety()
    accused = sim.assert_reports_valid()
    connected = [sim.nodes[i] for i in byzantine if any(t < 7_000 for t in sim.nodes[i].equivocated_at)]
    for node in connected:
        assert sim.voter_keys[node.index] in accused, f"equivocations of voter {node.index} went unreported"
    return ByzantineOutcome(finalized_before, best_at_heal, sim.min_finalized(), len(accused), len(connected))


if __name__ == "__main__":  # a long soak: python -m tests.consensus.scenarios [seeds]
    seeds = int(sys.argv[1]) if len(sys.argv) > 1 else 50
    started = time.time()
    for voters in (4, 7, 10):
        for mode in ("equivocate", "conflict", "mixed"):
            for seed in range(seeds if voters < 10 else max(1, seeds // 4)):
                outcome = byzantine_partition_run(voters, seed, mode)
                stuck = outcome.finalized_after < outcome.best_at_heal
                print(voters, mode, seed, outcome, "STUCK" if stuck else "", flush=True)
    print(f"{time.time() - started:.1f}s")
