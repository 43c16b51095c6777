"""Error correction and integrity for the 64-bit watermark payload.

Why a convolutional code: the watermark channel hands the decoder *soft* values (a signed
correlation per coded bit, with reliability in its magnitude). A rate-1/2, constraint-length-9
code (generators 561, 753 octal, free distance 12) decoded by soft-decision Viterbi gains ~6 dB
over plain repetition at the same number of embedding slots. Rate 1/2 rather than 1/3: the
embedder pays for cancelling host interference once per coded bit, so fewer coded bits cost
less distortion at the same asymptotic coding gain.

Why a keyed check: the decoder always outputs *some* bit string. 32 check bits, a keyed
BLAKE2b of the payload, make a wrong key, an unmarked image or a decoding error yield ``None``
(false acceptance 2**-32 per attempt) instead of a wrong payload.

Everything here is integer: soft values are int64, path metrics are int64 sums, ties go to the
lower predecessor state, so the numba kernel and the numpy reference agree bit for bit.
"""

from __future__ import annotations

import hashlib

import numpy as np
from numba import njit

PAYLOAD_BITS = 64
CHECK_BITS = 32
INFO_BITS = PAYLOAD_BITS + CHECK_BITS
CONSTRAINT = 9
GENERATORS = (0o561, 0o753)
RATE_INV = len(GENERATORS)
MEMORY = CONSTRAINT - 1
STATES = 1 << MEMORY
CODED_BITS = (INFO_BITS + MEMORY) * RATE_INV  # 208
_NEG = -(1 << 60)


def check_bits(key: bytes, payload: bytes) -> bytes:
    """The 32-bit keyed integrity check of a payload."""
    return hashlib.blake2b(payload, digest_size=CHECK_BITS // 8, key=key, person=b"imagechain-wm-v1").digest()


def _parity(x: int) -> int:
    return x.bit_count() & 1


# _OUT[reg][k]: output k for the register reg = (previous MEMORY bits << 1) | input bit.
_OUT = np.array([[_parity(reg & g) for g in GENERATORS] for reg in range(1 << CONSTRAINT)], dtype=np.int64)


def encode(bits: np.ndarray) -> np.ndarray:
    """Zero-terminated convolutional encoding: len(bits) + MEMORY trellis steps."""
    state = 0
    out = []
    for b in list(np.asarray(bits, dtype=np.int64)) + [0] * MEMORY:
        reg = ((state << 1) | int(b)) & ((1 << CONSTRAINT) - 1)
        out.extend(_OUT[reg])
        state = reg & (STATES - 1)
    return np.array(out, dtype=np.uint8)


def _branch_tables() -> tuple[np.ndarray, np.ndarray]:
    """For each next state s and predecessor choice p in {0, 1}: the predecessor and the register."""
    pred = np.empty((STATES, 2), dtype=np.int64)
    reg = np.empty((STATES, 2), dtype=np.int64)
    for s in range(STATES):
        for p in range(2):
            prev = (s >> 1) | (p << (MEMORY - 1))
            pred[s, p] = prev
            reg[s, p] = ((prev << 1) | (s & 1)) & ((1 << CONSTRAINT) - 1)
    return pred, reg


_PRED, _REG = _branch_tables()
_SIGN = 2 * _OUT[_REG] - 1  # (STATES, 2, RATE_INV): +1 where the branch emits a 1


def viterbi_ref(soft: np.ndarray, n_info: int) -> np.ndarray:
    """Maximum-correlation path (numpy reference). soft > 0 favours a coded 1."""
    steps = n_info + MEMORY
    s = np.asarray(soft, dtype=np.int64).reshape(steps, RATE_INV)
    pm = np.full(STATES, _NEG, dtype=np.int64)
    pm[0] = 0
    choice = np.empty((steps, STATES), dtype=np.int64)
    for t in range(steps):
        cand = pm[_PRED] + (_SIGN * s[t]).sum(axis=2)  # (STATES, 2)
        c = (cand[:, 1] > cand[:, 0]).astype(np.int64)
        choice[t] = c
        pm = np.where(c == 1, cand[:, 1], cand[:, 0])
    bits = np.empty(steps, dtype=np.uint8)
    state = 0
    for t in range(steps - 1, -1, -1):
        bits[t] = state & 1
        state = int(_PRED[state, choice[t, state]])
    return bits[:n_info]


@njit(cache=True, nogil=True)
def _viterbi_kernel(soft, n_info, pred, sign, memory, neg):  # pragma: no cover - compiled
    nstates = pred.shape[0]
    rate = sign.shape[2]
    steps = n_info + memory
    pm = np.full(nstates, neg, dtype=np.int64)
    pm[0] = 0
    nxt = np.empty(nstates, dtype=np.int64)
    choice = np.empty((steps, nstates), dtype=np.int8)
    for t in range(steps):
        for st in range(nstates):
            best = np.int64(0)
            for p in range(2):
                m = pm[pred[st, p]]
                for k in range(rate):
                    m += sign[st, p, k] * soft[t * rate + k]
                if p == 0:
                    best = m
                    choice[t, st] = 0
                elif m > best:
                    best = m
                    choice[t, st] = 1
            nxt[st] = best
        for st in range(nstates):
            pm[st] = nxt[st]
    bits = np.empty(steps, dtype=np.uint8)
    state = 0
    for t in range(steps - 1, -1, -1):
        bits[t] = state & 1
        state = pred[state, choice[t, state]]
    return bits[:n_info]


def viterbi(soft: np.ndarray, n_info: int) -> np.ndarray:
    """Fast path of :func:`viterbi_ref` (numba)."""
    return _viterbi_kernel(np.ascontiguousarray(soft, dtype=np.int64), n_info, _PRED, _SIGN, MEMORY, _NEG)


def pack(payload: bytes, key: bytes) -> np.ndarray:
    """Info bits: the 64 payload bits then the 32 check bits, MSB first."""
    if len(payload) != PAYLOAD_BITS // 8:
        raise ValueError(f"payload must be {PAYLOAD_BITS // 8} bytes, got {len(payload)}")
    data = payload + check_bits(key, payload)
    return np.unpackbits(np.frombuffer(data, dtype=np.uint8))


def unpack(bits: np.ndarray, key: bytes) -> bytes | None:
    """The payload if the check bits verify under this key, else None."""
    data = np.packbits(np.asarray(bits, dtype=np.uint8)).tobytes()
    payload, check = data[: PAYLOAD_BITS // 8], data[PAYLOAD_BITS // 8 :]
    return payload if check_bits(key, payload) == check else None


# ---------------------------------------------------------------- list decoding (not consensus)


@njit(cache=True, nogil=True)
def _list_viterbi_kernel(soft, n_info, pred, sign, memory, size):  # pragma: no cover - compiled
    nstates = pred.shape[0]
    rate = sign.shape[2]
    steps = n_info + memory
    neg = -1e300
    pm = np.full((nstates, size), neg)
    pm[0, 0] = 0.0
    nxt = np.empty((nstates, size))
    from_p = np.zeros((steps, nstates, size), dtype=np.int8)
    from_l = np.zeros((steps, nstates, size), dtype=np.int16)
    for t in range(steps):
        for st in range(nstates):
            p0 = pred[st, 0]
            p1 = pred[st, 1]
            b0 = 0.0
            b1 = 0.0
            for k in range(rate):
                b0 += sign[st, 0, k] * soft[t * rate + k]
                b1 += sign[st, 1, k] * soft[t * rate + k]
            i = 0
            j = 0
            for rank in range(size):  # merge the two predecessors' sorted lists
                c0 = pm[p0, i] + b0 if i < size else neg
                c1 = pm[p1, j] + b1 if j < size else neg
                if c0 >= c1:
                    nxt[st, rank] = c0
                    from_p[t, st, rank] = 0
                    from_l[t, st, rank] = i
                    i += 1
                else:
                    nxt[st, rank] = c1
                    from_p[t, st, rank] = 1
                    from_l[t, st, rank] = j
                    j += 1
        pm, nxt = nxt, pm
    out = np.zeros((size, n_info), dtype=np.uint8)
    n_out = 0
    for rank0 in range(size):
        if pm[0, rank0] <= neg / 2:
            break
        state = 0
        rank = rank0
        for t in range(steps - 1, -1, -1):
            if t < n_info:
                out[rank0, t] = state & 1
            p = from_p[t, state, rank]
            rank = from_l[t, state, rank]
            state = pred[state, p]
        n_out += 1
    return out[:n_out]


def list_viterbi(soft: np.ndarray, n_info: int, size: int) -> np.ndarray:
    """The ``size`` (at most 32767) best paths (rows of info bits, best first), float soft values.

    Not used by validators: only the resynchronisation of copies found in the wild, where the
    soft values are weaker (a crop removes part of every coded bit's slots) and the keyed check
    can afford to test a few candidates, each adding 2**-32 to the false-acceptance chance.
    """
    return _list_viterbi_kernel(
        np.ascontiguousarray(soft, dtype=np.float64), n_info, _PRED, _SIGN, MEMORY, size
    )
