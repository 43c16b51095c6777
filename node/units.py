"""IMG amounts in text: 18 decimals, parsed and printed exactly (no floats)."""

from __future__ import annotations

import re

from node.codec import U128_MAX

DECIMALS = 18
PLANCK_PER_IMG = 10**DECIMALS

_AMOUNT = re.compile(r"^(\d{1,30})(?:\.(\d{1,18}))?$")


def parse_img(text: str) -> int:
    """'12.5' -> 12_500_000_000_000_000_000 base units; rejects anything not exact."""
    match = _AMOUNT.match(text.strip().replace("_", ""))
    if match is None:
        raise ValueError(f"not an IMG amount: {text!r} (digits, optionally '.' and up to 18 decimals)")
    whole, fraction = match.group(1), match.group(2) or ""
    value = int(whole) * PLANCK_PER_IMG + int(fraction.ljust(DECIMALS, "0") or "0")
    if value > U128_MAX:
        raise ValueError(f"amount {text} is too large")
    return value


def format_img(value: int) -> str:
    """Base units -> '12.5' (trailing zeros trimmed, always exact)."""
    whole, fraction = divmod(value, PLANCK_PER_IMG)
    if fraction == 0:
        return str(whole)
    return f"{whole}.{str(fraction).rjust(DECIMALS, '0').rstrip('0')}"
