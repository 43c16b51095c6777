"""`emission`: the mined supply and its decreasing reward rate (PROTOCOL section 9, white paper 4).

Every mining reward (PoD now, PoW later) pays ``reward_unit * rate(generated)``, where
``generated`` is all IMG minted by mining so far and

    rate(g) = c ** (-g / (cap - g))

(the white paper's ``c * (1/c) ** (cap / (cap - g))`` rewritten): 1 at g = 0, strictly decreasing,
tending to 0 as g approaches the cap, so the mined supply approaches ``cap`` asymptotically.

Determinism. The rate is computed with Python's `decimal` under a fixed, private context (60
significant digits, ROUND_HALF_EVEN, explicit exponent limits): ``x = ln(c) * g / (cap - g)``,
``rate = exp(-x)``. `Decimal.ln`, `Decimal.exp`, `multiply` and `divide` are each correctly
rounded by specification (libmpdec and the pure-Python `_pydecimal` agree), so every machine
computes the same digits; the thread's ambient decimal context is never used. The reward is
``floor(reward_unit * rate)`` in base units (1e-18 IMG), the product first rounded to 1e-20 of a
base unit so that exact values (g = 3/4 cap gives 5**-3 = 0.008) are not floored one unit low.
Relative error of the rate is below 1e-50 (tested against mpmath at 1e-12); every reward is
within one base unit of the exact value.

Why ``generated`` never reaches ``cap`` (with d = cap - g the remaining amount, c >= 2 and the
genesis condition ``reward_unit * c ** (1 - cap / reward_unit) < 1``, checked by
:meth:`EmissionParams.check`):

* rate(g) = c ** (1 - cap / d) <= 1, so reward(g) <= reward_unit;
* if d > reward_unit: reward(g) <= reward_unit < d, so g + reward(g) < cap;
* if d <= reward_unit: cap / d >= cap / reward_unit, so rate(g) <= c ** (1 - cap / reward_unit)
  and reward_unit * rate(g) < 1 by the genesis condition: the reward floors to 0 and g stays.

By induction from g = 0 < cap, g < cap after every reward. The code also clamps the reward to
``d - 1`` so the invariant holds even for parameters that skip the check; with the dev
parameters (cap 525,000,000 IMG, unit 1 IMG, c = 5) the clamp never binds. Together with a
genesis issuance of at most ``21e9 IMG - cap`` (the community's 25% is the treasury plus the
cap), total issuance stays below 21,000,000,000 IMG; `balances.mint` refuses anything above.

Params (genesis `emission` section: cap and reward_unit in IMG, constant; absent: no rewards)
  emission:params    -> [cap(u128), reward_unit(u128), constant]   (absent: no mining rewards)
Storage
  emission:generated -> u128, all IMG minted by mining so far
Events
  Minted(who, amount, generated_after)
"""

from __future__ import annotations

import decimal
from dataclasses import dataclass
from decimal import ROUND_FLOOR, ROUND_HALF_EVEN, Decimal
from typing import Any

from node.codec import expect_int, expect_list, u128_from_bytes, u128_to_bytes
from node.runtime import balances
from node.runtime.support import (
    U128,
    AccountId,
    Balance,
    BlockContext,
    DispatchError,
    GenesisState,
    Record,
    RuntimeModule,
    StateGet,
    StorageValue,
    event,
)
from node.units import parse_img

NAME = "emission"

# ---------------------------------------------------------------------------------------------
# Params
# ---------------------------------------------------------------------------------------------

# Fixed point used to report the rate (emission_status): rate = numerator / RATE_SCALE.
RATE_SCALE = 10**36
DECIMAL_DIGITS = 60
# exp(-230) < 1e-99: below this the rate is reported (and paid) as exactly 0.
MAX_EXPONENT = 230
# Products are rounded to this before flooring (see `_floor`); values stay below 1e37, so the
# 60-digit context holds them exactly at this quantum.
GUARD = Decimal("1E-20")


@dataclass(frozen=True)
class EmissionParams:
    cap: int  # base units
    reward_unit: int  # base units
    constant: int

    def to_wire(self) -> list[Any]:
        return [u128_to_bytes(self.cap), u128_to_bytes(self.reward_unit), self.constant]

    @classmethod
    def from_wire(cls, obj: Any) -> EmissionParams:
        cap, unit, constant = expect_list(obj, 3, "emission params")
        return cls(
            u128_from_bytes(cap), u128_from_bytes(unit), expect_int(constant, 2**32, "emission constant")
        )

    def check(self) -> None:
        """Raise ValueError unless the parameters make the no-reach proof (module doc) hold."""
        if self.constant < 2:
            raise ValueError("emission constant must be an integer >= 2")
        if not 0 < self.reward_unit < self.cap:
            raise ValueError("emission needs 0 < reward_unit < cap")
        ctx = _context()
        # reward_unit * c ** (1 - cap / reward_unit) < 1  <=>  ln(unit) + (1 - cap/unit) ln(c) < 0
        exponent = ctx.subtract(Decimal(1), ctx.divide(Decimal(self.cap), Decimal(self.reward_unit)))
        if (
            ctx.add(ctx.ln(Decimal(self.reward_unit)), ctx.multiply(exponent, ctx.ln(Decimal(self.constant))))
            >= 0
        ):
            raise ValueError("emission reward_unit is too large for its cap: generated could reach the cap")


# ---------------------------------------------------------------------------------------------
# Storage
# ---------------------------------------------------------------------------------------------

PARAMS: StorageValue[EmissionParams] = StorageValue(b"emission:params", Record(EmissionParams))
GENERATED: StorageValue[int] = StorageValue(b"emission:generated", U128, 0)
KEY_PARAMS = PARAMS.key


def read_params(get: StateGet) -> EmissionParams | None:
    return PARAMS.get(get)


def generated(get: StateGet) -> int:
    return GENERATED.value(get)


# ---------------------------------------------------------------------------------------------
# The rate (pure functions; the RPC and tests use them too)
# ---------------------------------------------------------------------------------------------


def _context() -> decimal.Context:
    """A fresh, fully specified context: results never depend on the thread's decimal settings."""
    return decimal.Context(
        prec=DECIMAL_DIGITS,
        rounding=ROUND_HALF_EVEN,
        Emin=-999_999,
        Emax=999_999,
        capitals=1,
        clamp=0,
        flags=[],
        traps=[decimal.InvalidOperation, decimal.DivisionByZero, decimal.Overflow],
    )


def rate(params: EmissionParams, g: int) -> Decimal:
    """c ** (-g / (cap - g)) to 60 significant digits (exactly 1 at g = 0, 0 once below 1e-99)."""
    if not 0 <= g < params.cap:
        raise ValueError(f"generated {g} outside [0, cap)")
    if g == 0:
        return Decimal(1)
    ctx = _context()
    x = ctx.multiply(ctx.ln(Decimal(params.constant)), ctx.divide(Decimal(g), Decimal(params.cap - g)))
    if x > MAX_EXPONENT:
        return Decimal(0)
    return ctx.exp(ctx.minus(x))


def _floor(ctx: decimal.Context, value: Decimal) -> int:
    """floor(value) after rounding it to 1e-20: the 60-digit value of an exact integer such as
    1 IMG * 5**-3 may lie 1e-40 below it, and flooring that directly would lose one unit."""
    return int(ctx.quantize(value, GUARD).to_integral_value(rounding=ROUND_FLOOR))


def rate_fixed(params: EmissionParams, g: int) -> int:
    """floor(rate(g) * RATE_SCALE): the rate as an integer numerator over RATE_SCALE."""
    ctx = _context()
    return _floor(ctx, ctx.multiply(rate(params, g), Decimal(RATE_SCALE)))


def reward_amount(params: EmissionParams, g: int) -> int:
    """floor(reward_unit * rate(g)) base units, clamped to keep g below the cap (module doc)."""
    ctx = _context()
    amount = _floor(ctx, ctx.multiply(Decimal(params.reward_unit), rate(params, g)))
    return max(0, min(amount, params.cap - g - 1))


@dataclass(frozen=True)
class EmissionStatus:
    generated: int
    rate_numerator: int  # rate = rate_numerator / RATE_SCALE
    rate_denominator: int
    remaining: int  # cap - generated
    next_reward: int


def emission_status(get: StateGet) -> EmissionStatus | None:
    """What `emission_status` (RPC) reports; None on a chain without mining rewards."""
    params = read_params(get)
    if params is None:
        return None
    g = generated(get)
    return EmissionStatus(g, rate_fixed(params, g), RATE_SCALE, params.cap - g, reward_amount(params, g))


# ---------------------------------------------------------------------------------------------
# Minting (called by pod, later pow)
# ---------------------------------------------------------------------------------------------


def reward(ctx: BlockContext, who: bytes) -> int:
    """Mint one mining reward to `who`; returns the amount (0: nothing minted, nothing written).

    Raises DispatchError if `balances.mint` refuses (the caller decides whether that fails its
    call); run it inside a storage transaction if a partial write must not survive.
    """
    params = read_params(ctx.state.get)
    if params is None:
        return 0
    g = generated(ctx.state.get)
    amount = reward_amount(params, g)
    if amount == 0:
        return 0
    balances.mint(ctx, who, amount)
    GENERATED.put(ctx, g + amount)
    ctx.deposit_event(Minted(who, amount, g + amount))
    return amount


def try_reward(ctx: BlockContext, who: bytes) -> int | None:
    """`reward` in its own storage transaction: the amount (0: nothing to mint), or None if
    minting was refused (the supply limit), in which case nothing it wrote survives."""
    ctx.state.begin()
    try:
        amount = reward(ctx, who)
    except DispatchError:
        ctx.state.rollback()
        return None
    ctx.state.commit()
    return amount


def build_genesis(genesis: GenesisState) -> None:
    """Mining rewards exist when the spec has an `emission` section; its cap must fit the supply."""
    section = genesis.section("emission")
    if not section:
        return
    params = EmissionParams(parse_img(section["cap"]), parse_img(section["reward_unit"]), int(section["constant"]))
    params.check()
    if balances.total_issuance(genesis.get) + params.cap > balances.MAX_SUPPLY:
        raise ValueError("allocations plus the emission cap exceed the maximum supply")
    PARAMS.put(genesis, params)


@event(NAME)
class Minted:
    """A mining reward of `amount` was created for `who`; `generated` is the mined total after it."""

    who: AccountId
    amount: Balance
    generated: Balance


MODULE = RuntimeModule(
    NAME, events=(Minted,), storage=(PARAMS, GENERATED), genesis=build_genesis
)
