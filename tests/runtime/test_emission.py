"""`emission`: rate(g) = c ** (-g / (cap - g)), deterministic, and `generated` never reaches the cap."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from decimal import Decimal

import mpmath
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from node.codec import encode
from node.runtime import balances, emission
from node.runtime.emission import EmissionParams
from tests.runtime.copyright_util import IMG

DEV = EmissionParams(cap=525_000_000 * IMG, reward_unit=IMG, constant=5)
# A tiny cap that still satisfies the genesis condition (cap / unit > 1 + ln(unit) / ln(c) = 26.7):
# rewards fall fast, so tests can walk right up to the cap.
SMALL = EmissionParams(cap=30 * IMG, reward_unit=IMG, constant=5)


def reference(params: EmissionParams, g: int) -> mpmath.mpf:
    with mpmath.workdps(80):
        return mpmath.power(params.constant, -mpmath.mpf(g) / (mpmath.mpf(params.cap) - g))


# 24 points from the first base unit to 99% of the cap (the rate there is ~1e-97).
POINTS = [0, 1, 10**9, IMG, 1000 * IMG, 10**6 * IMG, 10**7 * IMG]
POINTS += [DEV.cap * k // 100 for k in (1, 5, 10, 20, 25, 33, 40, 50, 60, 66, 75, 80, 90, 95, 98, 99)]
POINTS += [DEV.cap * 993 // 1000]
POINTS.sort()


def test_dev_parameters_match_the_protocol(dev_spec):
    params = emission.read_params(__import__("node.chain_spec", fromlist=["genesis_storage"]).genesis_storage(
        dev_spec).get)  # fmt: skip
    assert params == DEV
    params.check()


@pytest.mark.parametrize("g", POINTS)
def test_rate_matches_mpmath(g):
    ours = emission.rate(DEV, g)
    ref = reference(DEV, g)
    with mpmath.workdps(80):
        relative = abs(mpmath.mpf(str(ours)) - ref) / ref
    assert relative < mpmath.mpf("1e-12")
    assert relative < mpmath.mpf("1e-50")  # what the 60-digit context actually achieves


def test_twenty_or_more_reference_points():
    assert len(set(POINTS)) >= 20


def test_rate_starts_at_one_and_strictly_decreases():
    assert emission.rate(DEV, 0) == 1
    assert emission.reward_amount(DEV, 0) == IMG
    assert emission.rate_fixed(DEV, 0) == emission.RATE_SCALE
    rates = [emission.rate(DEV, g) for g in POINTS]
    assert all(a > b for a, b in zip(rates, rates[1:], strict=False))
    # Neighbouring integers too, where the change is ~1e-27 relative.
    for g in (0, 1, IMG, DEV.cap // 2):
        assert emission.rate(DEV, g) > emission.rate(DEV, g + 1)
    rewards = [emission.reward_amount(DEV, g) for g in POINTS]
    assert all(a >= b for a, b in zip(rewards, rewards[1:], strict=False))


@settings(max_examples=200, deadline=None)
@given(st.integers(min_value=0, max_value=DEV.cap - 2), st.integers(min_value=1, max_value=DEV.cap // 3))
def test_rate_is_monotonic_everywhere(g, step):
    h = min(g + step, DEV.cap - 1)
    assert emission.rate(DEV, g) >= emission.rate(DEV, h)
    assert emission.rate(DEV, g) > emission.rate(DEV, h) or emission.rate(DEV, h) == 0


def test_the_rate_beyond_the_cutoff_is_negligible():
    g = DEV.cap * 995 // 1000
    assert emission.rate(DEV, g) == 0
    assert reference(DEV, g) < mpmath.mpf("1e-99")


@pytest.mark.parametrize("params", [DEV, SMALL], ids=["dev", "small"])
def test_generated_never_reaches_the_cap(params):
    """Both cases of the proof (module doc), at the boundary d = reward_unit and around it."""
    u = params.reward_unit
    remaining = [1, 2, 10, u // 2, u - 1, u, u + 1, 2 * u, 3 * u, 10 * u, params.cap // 2, params.cap]
    for d in remaining:
        g = params.cap - d
        ctx = emission._context()
        assert emission._floor(
            ctx, ctx.multiply(Decimal(u), emission.rate(params, g))
        ) == emission.reward_amount(params, g)
        assert g + emission.reward_amount(params, g) < params.cap
    for d in (1, u // 2, u):  # the second case: nothing at all is paid any more
        assert emission.reward_amount(params, params.cap - d) == 0


@settings(max_examples=300, deadline=None)
@given(st.integers(min_value=1, max_value=SMALL.cap))
def test_generated_stays_below_the_cap_from_any_point(d):
    g = SMALL.cap - d
    assert g + emission.reward_amount(SMALL, g) < SMALL.cap


def test_walking_up_to_the_cap():
    g, steps = 0, 0
    while steps < 5000:
        amount = emission.reward_amount(SMALL, g)
        assert g + amount < SMALL.cap
        if amount == 0:
            break
        g += amount
        steps += 1
    assert 0 < SMALL.cap - g < 27 * IMG


def test_parameters_that_could_reach_the_cap_are_refused_and_still_clamped():
    bad = EmissionParams(cap=10 * IMG, reward_unit=IMG, constant=5)
    with pytest.raises(ValueError, match="reach the cap"):
        bad.check()
    with pytest.raises(ValueError):
        EmissionParams(cap=10 * IMG, reward_unit=IMG, constant=1).check()
    with pytest.raises(ValueError):
        EmissionParams(cap=IMG, reward_unit=IMG, constant=5).check()
    with pytest.raises(ValueError):
        emission.rate(SMALL, SMALL.cap)
    for d in range(1, 2 * IMG, IMG // 7):
        assert bad.cap - d + emission.reward_amount(bad, bad.cap - d) < bad.cap


def test_identical_integers_in_a_fresh_process_with_another_decimal_context():
    points = POINTS + [SMALL.cap - k * IMG // 3 for k in range(1, 80)]
    code = (
        "import decimal, json, sys\n"
        "decimal.getcontext().prec = 5\n"
        "decimal.getcontext().rounding = decimal.ROUND_UP\n"
        "from node.runtime import emission\n"
        "from tests.runtime.test_emission import DEV, SMALL\n"
        "pts = json.loads(sys.stdin.read())\n"
        "print(json.dumps([[emission.reward_amount(p, g), emission.rate_fixed(p, g)]\n"
        "                  for p in (DEV, SMALL) for g in pts if g < p.cap]))\n"
    )
    env = dict(os.environ, PYTHONHASHSEED="987")
    out = subprocess.run([sys.executable, "-c", code], input=json.dumps(points), capture_output=True, text=True,
                         check=True, env=env)  # fmt: skip
    here = [
        [emission.reward_amount(p, g), emission.rate_fixed(p, g)]
        for p in (DEV, SMALL)
        for g in points
        if g < p.cap
    ]
    assert json.loads(out.stdout) == here
    # Pinned values: a change here is a consensus change.
    assert emission.reward_amount(DEV, DEV.cap // 2) == IMG // 5
    assert emission.reward_amount(DEV, 10**6 * IMG) == 996_933_265_668_191_646


@pytest.mark.parametrize("params", [DEV, SMALL], ids=["dev", "small"])
def test_rewards_are_within_one_base_unit_of_exact(params):
    for g in [x for x in POINTS if x < params.cap] + [params.cap - 2 * IMG, params.cap - 5 * IMG]:
        with mpmath.workdps(80):
            exact = params.reward_unit * reference(params, g)
            assert abs(emission.reward_amount(params, g) - exact) < 1
            assert emission.reward_amount(params, g) == int(mpmath.floor(exact))


def test_reward_mints_and_tracks_generated(chain, bob):
    from node.runtime.runtime import RUNTIME
    from node.types import Header, aura_pre_digest

    ctx = RUNTIME.initialize_block(
        chain.get, Header(b"\x01" * 32, chain.number + 1, b"", b"", (aura_pre_digest(chain.slot + 1),))
    )
    before = balances.total_issuance(ctx)
    assert emission.reward(ctx, bob.account_id) == IMG
    assert emission.reward(ctx, bob.account_id) == emission.reward_amount(DEV, IMG)
    assert emission.generated(ctx.state.get) == balances.total_issuance(ctx) - before
    status = emission.emission_status(ctx.state.get)
    assert status.generated == emission.generated(ctx.state.get)
    assert status.remaining == DEV.cap - status.generated
    assert status.rate_denominator == emission.RATE_SCALE
    assert status.rate_numerator == emission.rate_fixed(DEV, status.generated)
    assert [e.name for e in ctx.events] == ["Minted", "Minted"]


def test_no_rewards_without_emission_params(chain, bob):
    from node.runtime.runtime import RUNTIME
    from node.types import Header, aura_pre_digest

    del chain.state[emission.KEY_PARAMS]
    ctx = RUNTIME.initialize_block(
        chain.get, Header(b"\x01" * 32, chain.number + 1, b"", b"", (aura_pre_digest(chain.slot + 1),))
    )
    assert emission.reward(ctx, bob.account_id) == 0
    assert emission.emission_status(ctx.state.get) is None
    assert ctx.state.changes().keys() == {b"system:number", b"system:parent_hash",
                                          b"system:block_hash:" + chain.number.to_bytes(4, "big")}  # fmt: skip


def test_small_params_in_state(chain):
    chain.state[emission.KEY_PARAMS] = encode(SMALL.to_wire())
    assert emission.read_params(chain.get) == SMALL
