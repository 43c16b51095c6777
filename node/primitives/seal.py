"""Sealed replicas: each storage miner keeps its blobs encoded under its own account.

Why (`shared/design/notes-storage-mining.md` section 2): with plain copies, one stored copy would
mine for any number of accounts, and a registrant could regenerate images it generated instead
of storing them. A sealed replica is bound to one account and costs real time to produce, so a
miner that does not keep it must pay that time again at every step of a mining ticket.

The permutation is Sloth's (Lenstra and Wesolowski): over the field of p = 2**256 - 189
(p = 3 mod 4), `rho` takes a square root, which costs an exponentiation, and its inverse is one
squaring. One 1 KiB chunk is read as 34 words of 31 bytes (zero-padded); each word is
CBC-chained with the previous sealed word and a key word derived from (account, blob root, chunk
index), then sent `rounds` times through `x -> rho(x + 1)` (the +1 keeps the rounds from folding
into a single exponentiation). The sealed chunk is 34 words of 32 bytes (1,088 bytes).

* sealing a chunk: 34 x rounds square roots, strictly sequential (every word needs the previous);
* unsealing it: 34 x rounds squarings (what a ticket's verifier does; integers, so exact).

`rounds` is a chain parameter (`storage.seal_rounds`): it is set so that producing a chunk on
demand is far slower than reading it (`bench/bench_storage.py` measures the ratio).
"""

from __future__ import annotations

import hashlib

try:  # GMP's exponentiation is ~10x CPython's; the result is the same integer either way
    from gmpy2 import mpz, powmod

    def _pow(base: int, exponent: int, modulus: int) -> int:
        return int(powmod(mpz(base), exponent, modulus))

except ImportError:  # pragma: no cover - gmpy2 is a dependency; this keeps the reference readable
    _pow = pow

P = 2**256 - 189
_SQRT_EXPONENT = (P + 1) // 4
WORD_IN = 31  # bytes of data per word (always below p)
WORD_OUT = 32  # bytes of a sealed word
CHUNK_BYTES = 1024
WORDS = -(-CHUNK_BYTES // WORD_IN)  # 34
SEALED_CHUNK_BYTES = WORDS * WORD_OUT  # 1,088

__all__ = ["CHUNK_BYTES", "P", "SEALED_CHUNK_BYTES", "chunk_key", "rho", "rho_inverse", "seal_chunk", "unseal_chunk"]


def rho(x: int) -> int:
    """Sloth's square-root permutation of F_p: the even root of x if x is a square, else the odd
    root of -x (exactly one of x, -x is a square since p = 3 mod 4)."""
    r = _pow(x, _SQRT_EXPONENT, P)
    square = r * r % P == x
    if (r & 1) != (0 if square else 1):
        r = P - r if r else 0
    return r


def rho_inverse(y: int) -> int:
    """One squaring: y even -> y**2, y odd -> -(y**2)."""
    s = y * y % P
    return s if y & 1 == 0 else (P - s) % P


def chunk_key(account: bytes, blob_root: bytes, index: int) -> list[int]:
    """The key words of one chunk of one replica: bound to the miner, the blob and the place."""
    seed = hashlib.blake2b(b"imagechain-seal" + account + blob_root + index.to_bytes(8, "big"), digest_size=32).digest()
    words = []
    for i in range(WORDS + 1):  # one more: the chain's starting value
        digest = hashlib.blake2b(seed + i.to_bytes(2, "big"), digest_size=32).digest()
        words.append(int.from_bytes(digest, "big") % P)
    return words


def seal_chunk(chunk: bytes, key: list[int], rounds: int) -> bytes:
    """The sealed form of one chunk (at most 1 KiB; shorter chunks are zero-padded)."""
    if len(chunk) > CHUNK_BYTES:
        raise ValueError(f"a chunk is at most {CHUNK_BYTES} bytes")
    padded = chunk.ljust(WORDS * WORD_IN, b"\x00")
    previous = key[WORDS]
    out = bytearray()
    for i in range(WORDS):
        word = int.from_bytes(padded[i * WORD_IN : (i + 1) * WORD_IN], "big")
        value = (word + previous + key[i]) % P
        for _ in range(rounds):
            value = rho((value + 1) % P)
        out += value.to_bytes(WORD_OUT, "big")
        previous = value
    return bytes(out)


def unseal_chunk(sealed: bytes, key: list[int], rounds: int, length: int = CHUNK_BYTES) -> bytes | None:
    """The chunk a sealed chunk holds (its first `length` bytes), or None if it is not a sealing
    of any chunk (a word out of range, or padding that is not zero)."""
    if len(sealed) != SEALED_CHUNK_BYTES or not 0 <= length <= CHUNK_BYTES:
        return None
    previous = key[WORDS]
    out = bytearray()
    for i in range(WORDS):
        value = int.from_bytes(sealed[i * WORD_OUT : (i + 1) * WORD_OUT], "big")
        if value >= P:
            return None
        sealed_word = value
        for _ in range(rounds):
            value = (rho_inverse(value) - 1) % P
        word = (value - previous - key[i]) % P
        if word >= 1 << (8 * WORD_IN):
            return None
        out += word.to_bytes(WORD_IN, "big")
        previous = sealed_word
    if any(out[length:]):
        return None
    return bytes(out[:length])
