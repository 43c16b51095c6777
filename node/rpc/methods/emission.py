"""emission_*: the mined supply against the white paper's curve (white paper 2.1.3.2)."""

from __future__ import annotations

from node.rpc.jsonrpc import JSON, CallContext, MethodTable
from node.rpc.params import Hash
from node.rpc.state_at import read_state
from node.runtime import emission
from node.runtime.support import StateGet
from node.units import format_img

METHODS = MethodTable()


def _fraction(numerator: int, denominator: int) -> str:
    """numerator / denominator as an exact decimal string, for a power-of-ten denominator."""
    digits = len(str(denominator)) - 1
    assert denominator == 10**digits
    whole, rest = divmod(numerator, denominator)
    return str(whole) if rest == 0 else f"{whole}.{str(rest).rjust(digits, '0').rstrip('0')}"


@METHODS.method(
    "emission_status",
    result={
        "type": ["object", "null"],
        "description": "generated, rate, remaining, nextReward, cap (IMG and ...Raw base units, both strings); "
        "null without mining rewards",
    },
)
async def emission_status(ctx: CallContext, at: Hash | None = None) -> JSON:
    """The mined supply so far, the current reward rate and what remains below the cap."""

    def read(get: StateGet) -> JSON:
        status = emission.emission_status(get)
        params = emission.read_params(get)
        if status is None or params is None:
            return None
        return {
            "generated": format_img(status.generated),
            "generatedRaw": str(status.generated),
            "rate": _fraction(status.rate_numerator, status.rate_denominator),
            "rateNumerator": status.rate_numerator,
            "rateDenominator": status.rate_denominator,
            "remaining": format_img(status.remaining),
            "remainingRaw": str(status.remaining),
            "nextReward": format_img(status.next_reward),
            "nextRewardRaw": str(status.next_reward),
            "cap": format_img(params.cap),
            "capRaw": str(params.cap),
        }

    return read_state(ctx, at, read)
