"""The white paper's two logistic maps, in fixed point (2.1.3).

An 80-bit key is split into two 40-bit groups g0, g1 and transformed into the initial
conditions of two logistic maps ``x' = mu * x * (1 - x)``: sequence X scrambles the payload bits
by XOR, sequence Y chooses where each bit goes (which DCT coefficient of which block carries it).

Why fixed point: a float logistic map amplifies every last-bit difference (that is what chaos
means), and validators must agree on the positions bit for bit. So the state is an unsigned
64-bit fraction ``x = X / 2**64`` and one step is, exactly,

    t  = floor(X * (2**64 - X) / 2**64)          # x(1 - x), in Q64 (t <= 2**62)
    X' = floor(MU_Q61 * t / 2**61)               # mu = MU_Q61 / 2**61 = 4 - 2**-13

with 128-bit products formed from 32-bit limbs (numba) or Python integers (reference). The
period of the 64-bit map is far beyond the few thousand steps used, and the absorbing state
X = 0 (reachable only from X in {0, 1}) is replaced by a fixed constant.

Initial conditions: ``X0 = 2**63 | (g0 << 23) ^ g1`` and ``Y0 = 2**63 | (g1 << 23) ^ g0``
(each depends on all 80 key bits; the top bit puts x0 in [1/2, 1), where the map is
symmetric), followed by WARMUP discarded steps.
"""

from __future__ import annotations

import numpy as np
from numba import njit

KEY_BYTES = 10
MU_Q61 = (1 << 63) - (1 << 48)
WARMUP = 128
_MASK64 = (1 << 64) - 1
_REVIVE = 0x9E3779B97F4A7C15

_M32 = np.uint64(0xFFFFFFFF)
_S32 = np.uint64(32)
_S61 = np.uint64(61)
_S3 = np.uint64(3)
_ONE = np.uint64(1)
_ZERO = np.uint64(0)


def initial_conditions(key: bytes) -> tuple[int, int]:
    """(X0, Y0) of the two maps from an 80-bit key."""
    if len(key) != KEY_BYTES:
        raise ValueError(f"watermark key must be {KEY_BYTES} bytes (80 bits), got {len(key)}")
    k = int.from_bytes(key, "big")
    g0, g1 = k >> 40, k & ((1 << 40) - 1)
    x0 = (1 << 63) | ((g0 << 23) ^ g1)
    y0 = (1 << 63) | ((g1 << 23) ^ g0)
    return x0, y0


def step_ref(x: int) -> int:
    """One fixed-point logistic step with Python integers (the reference)."""
    t = (x * ((1 << 64) - x)) >> 64
    y = (MU_Q61 * t) >> 61
    return y if y != 0 else _REVIVE


def sequence_ref(x0: int, n: int) -> np.ndarray:
    """States X_{WARMUP+1} .. X_{WARMUP+n} (uint64) by the reference step."""
    x = x0
    for _ in range(WARMUP):
        x = step_ref(x)
    out = np.empty(n, dtype=np.uint64)
    for i in range(n):
        x = step_ref(x)
        out[i] = x
    return out


@njit(cache=True, nogil=True, inline="always")
def _mul128(a, b):  # pragma: no cover - compiled
    """(hi, lo) 64-bit halves of the 128-bit product of two uint64."""
    a_lo = a & _M32
    a_hi = a >> _S32
    b_lo = b & _M32
    b_hi = b >> _S32
    p0 = a_lo * b_lo
    p1 = a_lo * b_hi
    p2 = a_hi * b_lo
    p3 = a_hi * b_hi
    mid = (p0 >> _S32) + (p1 & _M32) + (p2 & _M32)
    lo = (p0 & _M32) | (mid << _S32)
    hi = p3 + (p1 >> _S32) + (p2 >> _S32) + (mid >> _S32)
    return hi, lo


@njit(cache=True, nogil=True)
def _sequence_kernel(x0, n, warmup, mu, revive):  # pragma: no cover - compiled
    out = np.empty(n, dtype=np.uint64)
    x = x0
    for i in range(warmup + n):
        t, _lo = _mul128(x, (~x) + _ONE)
        hi, lo = _mul128(mu, t)
        x = (hi << _S3) | (lo >> _S61)
        if x == _ZERO:
            x = revive
        if i >= warmup:
            out[i - warmup] = x
    return out


def sequence(x0: int, n: int) -> np.ndarray:
    """Fast path of :func:`sequence_ref` (numba); identical states by construction and test."""
    return _sequence_kernel(np.uint64(x0), n, WARMUP, np.uint64(MU_Q61), np.uint64(_REVIVE))


def scramble_bits(key: bytes, n: int) -> np.ndarray:
    """n scrambling bits from sequence X, eight per step (bits 24..31 of each state, LSB first)."""
    x0, _ = initial_conditions(key)
    states = sequence(x0, (n + 7) // 8)
    octets = ((states >> np.uint64(24)) & np.uint64(0xFF)).astype(np.uint8)
    return np.unpackbits(octets, bitorder="little")[:n]


def shuffle_ref(states: np.ndarray) -> np.ndarray:
    """Fisher-Yates permutation of range(len(states)) driven by the states (reference loop)."""
    n = states.shape[0]
    perm = np.arange(n, dtype=np.int64)
    for i in range(n - 1, 0, -1):
        j = int((int(states[i]) >> 11) & 0xFFFFFFFF) % (i + 1)
        perm[i], perm[j] = perm[j], perm[i]
    return perm


@njit(cache=True, nogil=True)
def _shuffle_kernel(states):  # pragma: no cover - compiled
    n = states.shape[0]
    perm = np.arange(n)
    for i in range(n - 1, 0, -1):
        j = np.int64((states[i] >> np.uint64(11)) & _M32) % (i + 1)
        tmp = perm[i]
        perm[i] = perm[j]
        perm[j] = tmp
    return perm


def shuffle(states: np.ndarray) -> np.ndarray:
    """Fast path of :func:`shuffle_ref`."""
    return _shuffle_kernel(np.ascontiguousarray(states, dtype=np.uint64)).astype(np.int64)


def layout(key: bytes, n_slots: int, n_units: int) -> tuple[np.ndarray, np.ndarray]:
    """Sequence Y's job: which coded bit ("unit") each embedding slot carries, and its sign.

    Slots are shuffled by a Y-driven Fisher-Yates permutation and dealt round-robin to the units,
    so every unit gets n_slots // n_units or one more slots spread over the whole image. The
    spreading sign of a slot is bit 40 of its Y state.
    """
    _, y0 = initial_conditions(key)
    states = sequence(y0, n_slots)
    perm = shuffle(states)
    unit = np.empty(n_slots, dtype=np.int64)
    unit[perm] = np.arange(n_slots, dtype=np.int64) % n_units
    sign = np.where((states >> np.uint64(40)) & np.uint64(1), 1, -1).astype(np.int64)
    return unit, sign
