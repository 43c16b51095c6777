"""Accounts, keys and signatures (PROTOCOL section 3).

Two signature schemes are supported and always carried tagged with their `Scheme`:

* ``ed25519`` (libsodium via pynacl): 32-byte public keys, 64-byte signatures over the raw message.
  Validators sign blocks and finality votes with this scheme.
* ``secp256k1`` (libsecp256k1 via coincurve): 33-byte compressed public keys, 64-byte compact
  ``r || s`` signatures over ``blake2b_256(message)``. Only low-S signatures are valid, so a
  signature cannot be turned into a second valid signature of the same message by negating S
  (which would otherwise change a transaction's hash without the signer's consent).

An account is named by a 32-byte AccountId: the ed25519 public key itself, or the blake2b-256 hash of
the compressed secp256k1 key. People see AccountIds as SS58-like base58 text addresses that carry a
network prefix and a checksum, so that a mistyped address is rejected instead of sending funds into
the void.

Everything in this module that checks untrusted input (`PublicKey.from_wire`, `PublicKey.verify`,
`verify_batch`, `decode_address`) fails in one documented way (an exception type or ``False``) and
never leaks a library-specific exception to the caller.
"""

from __future__ import annotations

import enum
import functools
import hashlib
import os
import re
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import coincurve
import nacl.bindings
import nacl.exceptions
import nacl.signing

from node.codec import DecodeError, blake2b_256, expect_bytes, expect_int, expect_list

__all__ = [
    "DEV_NAMES",
    "NETWORK_PREFIX",
    "AddressError",
    "Keypair",
    "PublicKey",
    "Scheme",
    "decode_address",
    "dev_keypair",
    "encode_address",
    "parse_key_uri",
    "verify_batch",
]


class Scheme(enum.IntEnum):
    """Signature scheme tag; the integer value is what goes on the wire, so never renumber."""

    ED25519 = 0
    SECP256K1 = 1

    @property
    def label(self) -> str:
        """Lower-case name used in text formats (keystore files, CLI options, dev-key derivation)."""
        return self.name.lower()

    @classmethod
    def from_label(cls, text: str) -> Scheme:
        """Inverse of `label`; raises ValueError naming the accepted spellings."""
        for scheme in cls:
            if scheme.label == text.strip().lower():
                return scheme
        raise ValueError(f"unknown signature scheme {text!r}; expected one of {[s.label for s in cls]}")


SIGNATURE_LEN = 64
ED25519_PUBLIC_LEN = 32
SECP256K1_PUBLIC_LEN = 33
SEED_LEN = 32
ACCOUNT_ID_LEN = 32

# Order of the secp256k1 group. A compact signature is valid only with 0 < r < N and 0 < s <= N // 2.
_SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
_SECP256K1_HALF_N = _SECP256K1_N // 2


# ---------------------------------------------------------------------------------------------
# Public keys
# ---------------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=65536)
def _ed25519_point_is_valid(data: bytes) -> bool:
    """libsodium's full point check: canonical encoding, on the curve, prime-order subgroup, not small order.

    It costs about as much as a signature verification (~33 us), and the same keys (validators, busy
    senders, a transaction seen first in the pool and then in a block) are decoded over and over, so
    results are memoised. Rejecting torsion and small-order keys at decode time means every ed25519
    `PublicKey` in the system is one that some secret scalar generates.
    """
    return bool(nacl.bindings.crypto_core_ed25519_is_valid_point(data))


@functools.lru_cache(maxsize=16384)
def _parse_secp256k1(data: bytes) -> coincurve.PublicKey | None:
    """Parse a compressed secp256k1 point, or return None if it is not exactly that.

    Memoised like the ed25519 check: the same keys verify again and again, and skipping the parse
    (decompression needs a square root) saves ~5 us of each ~33 us verification. coincurve key
    objects are only read by `verify`, so sharing them between threads is safe.
    """
    if len(data) != SECP256K1_PUBLIC_LEN or data[0] not in (2, 3):
        return None
    try:
        return coincurve.PublicKey(data)
    except ValueError:
        return None


def _der_integer(value: bytes) -> bytes:
    """DER INTEGER for a non-negative big-endian value (minimal length, sign byte when needed)."""
    body = value.lstrip(b"\x00") or b"\x00"
    if body[0] & 0x80:
        body = b"\x00" + body
    return b"\x02" + bytes([len(body)]) + body


def _compact_to_der(signature: bytes) -> bytes:
    """Re-encode a 64-byte compact signature as DER, the only form coincurve's public verify takes."""
    body = _der_integer(signature[:32]) + _der_integer(signature[32:])
    return b"\x30" + bytes([len(body)]) + body


@dataclass(frozen=True)
class PublicKey:
    """A scheme-tagged public key. Construction validates it, so an instance is always a usable key.

    The constructor (and therefore `from_wire`) raises `DecodeError` (a ValueError) for a wrong type,
    length or an invalid curve point, because public keys almost always arrive from the network.
    """

    scheme: Scheme
    data: bytes

    def __post_init__(self) -> None:
        if not isinstance(self.scheme, Scheme):
            raise DecodeError(f"public key: unknown scheme {self.scheme!r}")
        if not isinstance(self.data, bytes):
            raise DecodeError("public key: expected bytes")
        if self.scheme is Scheme.ED25519:
            if len(self.data) != ED25519_PUBLIC_LEN:
                raise DecodeError(f"ed25519 public key: expected 32 bytes, got {len(self.data)}")
            if not _ed25519_point_is_valid(self.data):
                raise DecodeError("ed25519 public key: not a valid point of the prime-order subgroup")
        else:
            if len(self.data) != SECP256K1_PUBLIC_LEN:
                raise DecodeError(f"secp256k1 public key: expected 33 bytes, got {len(self.data)}")
            if _parse_secp256k1(self.data) is None:
                raise DecodeError("secp256k1 public key: not a valid compressed curve point")

    def account_id(self) -> bytes:
        """The 32-byte AccountId that state is keyed by (PROTOCOL 3)."""
        if self.scheme is Scheme.ED25519:
            return self.data
        return blake2b_256(self.data)

    def address(self, prefix: int | None = None) -> str:
        """Text address of this key's account, for display."""
        return encode_address(self.account_id(), NETWORK_PREFIX if prefix is None else prefix)

    def verify(self, message: bytes, signature: bytes) -> bool:
        """True iff `signature` is a valid signature of `message` by this key.

        Returns False, never raises, for any garbage input (wrong types, wrong lengths, high-S or
        out-of-range secp256k1 scalars, non-canonical ed25519 signatures), because callers run it
        on untrusted data and a stray exception there would be a denial-of-service bug.
        """
        try:
            message = bytes(message) if isinstance(message, (bytearray, memoryview)) else message
            signature = bytes(signature) if isinstance(signature, (bytearray, memoryview)) else signature
            if not isinstance(message, bytes) or not isinstance(signature, bytes):
                return False
            if len(signature) != SIGNATURE_LEN:
                return False
            if self.scheme is Scheme.ED25519:
                return _verify_ed25519(self.data, message, signature)
            return _verify_secp256k1(self.data, message, signature)
        except Exception:  # noqa: BLE001 - the contract is "never raises on garbage"
            return False

    def to_wire(self) -> list[Any]:
        """Canonical wire form ``[scheme, data]`` for `node.codec.encode`."""
        return [int(self.scheme), self.data]

    @classmethod
    def from_wire(cls, obj: Any) -> PublicKey:
        """Inverse of `to_wire`; raises `DecodeError` for any malformed value or invalid point."""
        fields = expect_list(obj, 2, what="public key")
        scheme_value = expect_int(fields[0], max_value=max(Scheme), what="public key scheme")
        data = expect_bytes(fields[1], max_len=SECP256K1_PUBLIC_LEN, what="public key data")
        return cls(Scheme(scheme_value), data)

    def __repr__(self) -> str:
        return f"PublicKey({self.scheme.label}, 0x{self.data.hex()})"


def _verify_ed25519(public: bytes, message: bytes, signature: bytes) -> bool:
    # pynacl exposes no detached verify; crypto_sign_open over signature || message is the same
    # libsodium check (canonical S, no small-order R or A), and the extra copy is noise next to the
    # ~40 us of curve arithmetic. It releases the GIL, which `verify_batch` relies on.
    try:
        nacl.bindings.crypto_sign_open(signature + message, public)
    except nacl.exceptions.BadSignatureError:
        return False
    return True


def _verify_secp256k1(public: bytes, message: bytes, signature: bytes) -> bool:
    r = int.from_bytes(signature[:32], "big")
    s = int.from_bytes(signature[32:], "big")
    # Enforce range and low-S here, explicitly, rather than relying on libsecp256k1 happening to
    # reject high-S too: malleability is a consensus rule and must not change with a library bump.
    if not (0 < r < _SECP256K1_N and 0 < s <= _SECP256K1_HALF_N):
        return False
    key = _parse_secp256k1(public)
    if key is None:
        return False
    return key.verify(_compact_to_der(signature), blake2b_256(message), hasher=None)


# ---------------------------------------------------------------------------------------------
# Keypairs
# ---------------------------------------------------------------------------------------------


class Keypair:
    """A secret key with its public half. Signs deterministically in both schemes.

    The secret is a 32-byte `seed`: the ed25519 seed, or the secp256k1 secret scalar. `repr` never
    shows it.
    """

    __slots__ = ("_scheme", "_seed", "_signer", "_public")

    def __init__(self, scheme: Scheme, seed: bytes) -> None:
        """Prefer `from_seed`, `generate` or `dev_keypair`; this validates the same way."""
        scheme = Scheme(scheme)
        if not isinstance(seed, (bytes, bytearray)) or len(seed) != SEED_LEN:
            raise ValueError("a seed must be 32 bytes")
        seed = bytes(seed)
        self._scheme = scheme
        self._seed = seed
        if scheme is Scheme.ED25519:
            signing_key = nacl.signing.SigningKey(seed)
            self._signer: nacl.signing.SigningKey | coincurve.PrivateKey = signing_key
            self._public = PublicKey(scheme, bytes(signing_key.verify_key))
        else:
            if not 0 < int.from_bytes(seed, "big") < _SECP256K1_N:
                raise ValueError("seed is not a valid secp256k1 secret key (must be in 1..n-1)")
            private_key = coincurve.PrivateKey(seed)
            self._signer = private_key
            self._public = PublicKey(scheme, private_key.public_key.format(compressed=True))

    @classmethod
    def from_seed(cls, scheme: Scheme, seed: bytes) -> Keypair:
        """Rebuild a keypair from its 32-byte secret."""
        return cls(scheme, seed)

    @classmethod
    def generate(cls, scheme: Scheme = Scheme.ED25519) -> Keypair:
        """A fresh random keypair from the OS CSPRNG."""
        while True:
            seed = os.urandom(SEED_LEN)
            try:
                return cls(scheme, seed)
            except ValueError:  # secp256k1 secret out of range: probability ~2**-128
                continue

    @property
    def scheme(self) -> Scheme:
        return self._scheme

    @property
    def public(self) -> PublicKey:
        return self._public

    @property
    def seed(self) -> bytes:
        """The 32-byte secret. Whoever has it controls the account."""
        return self._seed

    @property
    def account_id(self) -> bytes:
        return self._public.account_id()

    @property
    def address(self) -> str:
        return self._public.address()

    def sign(self, message: bytes) -> bytes:
        """64-byte signature of `message` (secp256k1: compact, low-S, RFC 6979 over blake2b_256)."""
        message = bytes(message)
        if isinstance(self._signer, nacl.signing.SigningKey):
            return self._signer.sign(message).signature
        # libsecp256k1 always emits low-S signatures with RFC 6979 nonces; the recoverable form is
        # the public API that hands back compact r || s (its 65th byte, the recovery id, is dropped).
        return self._signer.sign_recoverable(blake2b_256(message), hasher=None)[:SIGNATURE_LEN]

    def __repr__(self) -> str:
        return f"Keypair({self._scheme.label}, {self.address})"


# ---------------------------------------------------------------------------------------------
# Batch verification
# ---------------------------------------------------------------------------------------------

# pynacl and coincurve are cffi modules, and cffi releases the GIL around every C call, so plain
# threads verify in parallel: measured 1,000 ed25519 verifications in 42 ms on one thread and 22.5 ms
# on two (1.87x), with almost no gain from more chunks. Below this many items per chunk the thread
# hand-off costs more than it saves.
_MIN_ITEMS_PER_CHUNK = 16
_CHUNKS_PER_WORKER = 2
_POOL_THREAD_PREFIX = "imagechain-verify"

_pool: ThreadPoolExecutor | None = None
_pool_size = 0
_pool_lock = threading.Lock()


def _cpu_count() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def _get_pool() -> tuple[ThreadPoolExecutor, int]:
    """The module's shared verification pool, created on first use (importing starts no threads)."""
    global _pool, _pool_size
    with _pool_lock:
        if _pool is None:
            _pool_size = _cpu_count()
            _pool = ThreadPoolExecutor(max_workers=_pool_size, thread_name_prefix=_POOL_THREAD_PREFIX)
        return _pool, _pool_size


def _forget_pool_after_fork() -> None:
    # A forked child inherits the pool object but none of its threads; let it build its own.
    global _pool, _pool_lock
    _pool = None
    _pool_lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pool_after_fork)


def _verify_chunk(items: Sequence[tuple[PublicKey, bytes, bytes]]) -> list[bool]:
    results: list[bool] = []
    for item in items:
        try:
            public, message, signature = item
            results.append(isinstance(public, PublicKey) and public.verify(message, signature))
        except Exception:  # noqa: BLE001 - a malformed item is just an invalid signature
            results.append(False)
    return results


def verify_batch(items: Sequence[tuple[PublicKey, bytes, bytes]], workers: int = 0) -> list[bool]:
    """Verify many ``(public_key, message, signature)`` triples, in parallel across cores.

    Returns one bool per item, in order, exactly as `PublicKey.verify` would (so a malformed item is
    just False). ``workers=0`` uses every core this process may run on; ``workers=1`` verifies on the
    calling thread. Parallelism is capped by the shared pool's size (the core count).

    This blocks the calling thread; from trio, call it through `trio.to_thread.run_sync`.
    """
    items = list(items)
    if workers < 0:
        raise ValueError("workers must be >= 0")
    if workers == 1 or threading.current_thread().name.startswith(_POOL_THREAD_PREFIX):
        # On a pool thread already (nested call): running inline avoids waiting on ourselves.
        return _verify_chunk(items)
    pool, pool_size = _get_pool()
    effective = min(workers or pool_size, pool_size)
    chunk_count = min(effective * _CHUNKS_PER_WORKER, len(items) // _MIN_ITEMS_PER_CHUNK)
    if effective <= 1 or chunk_count <= 1:
        return _verify_chunk(items)
    size = -(-len(items) // chunk_count)
    chunks = [items[start : start + size] for start in range(0, len(items), size)]
    results: list[bool] = []
    for chunk_result in pool.map(_verify_chunk, chunks):
        results.extend(chunk_result)
    return results


# ---------------------------------------------------------------------------------------------
# Addresses
# ---------------------------------------------------------------------------------------------

# The network prefix byte leads every text address, so addresses of different imagechain networks
# cannot be confused with each other. 42 is SS58's "generic substrate" value, used here for every
# network until mainnet/testnet get their own; changing it changes every displayed address, but no
# on-chain data (chain state holds raw 32-byte AccountIds only).
NETWORK_PREFIX = 42

_ADDRESS_CHECKSUM_CONTEXT = b"IMGADDR"
# Four checksum bytes (Base58Check's length) rather than SS58's two for 32-byte ids: with two, about
# 1 in 65,536 single-character typos still decodes, to another account.
_ADDRESS_CHECKSUM_LEN = 4
_ADDRESS_LEN = 1 + ACCOUNT_ID_LEN + _ADDRESS_CHECKSUM_LEN
_MAX_ADDRESS_TEXT = 64  # a 37-byte address is 50-51 characters; bounds the base58 big-int work

_B58_ALPHABET = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
_B58_INDEX = {char: index for index, char in enumerate(_B58_ALPHABET)}


class AddressError(ValueError):
    """A text address that cannot be used: the message says why (for showing to a person)."""


def _b58encode(data: bytes) -> str:
    """Bitcoin-alphabet base58; each leading zero byte becomes a leading '1'."""
    value = int.from_bytes(data, "big")
    digits: list[str] = []
    while value:
        value, remainder = divmod(value, 58)
        digits.append(_B58_ALPHABET[remainder])
    leading_zeros = len(data) - len(data.lstrip(b"\x00"))
    return "1" * leading_zeros + "".join(reversed(digits))


def _b58decode(text: str) -> bytes:
    value = 0
    for position, char in enumerate(text):
        digit = _B58_INDEX.get(char)
        if digit is None:
            raise AddressError(f"invalid character {char!r} at position {position + 1}: not base58")
        value = value * 58 + digit
    leading_ones = len(text) - len(text.lstrip("1"))
    body = value.to_bytes((value.bit_length() + 7) // 8, "big") if value else b""
    return b"\x00" * leading_ones + body


def _address_checksum(prefix: int, account_id: bytes) -> bytes:
    digest = hashlib.blake2b(_ADDRESS_CHECKSUM_CONTEXT + bytes([prefix]) + account_id, digest_size=64)
    return digest.digest()[:_ADDRESS_CHECKSUM_LEN]


def encode_address(account_id: bytes, prefix: int = NETWORK_PREFIX) -> str:
    """Text address of an AccountId.

    base58(prefix || account_id || checksum), checksum = first 4 bytes of
    blake2b_512(b"IMGADDR" || prefix || account_id). Like SS58, but with our own checksum context and 4 bytes of it.
    """
    if not isinstance(account_id, bytes) or len(account_id) != ACCOUNT_ID_LEN:
        raise ValueError("an account id must be 32 bytes")
    if not 0 <= prefix <= 255:
        raise ValueError(f"network prefix {prefix} does not fit in one byte")
    return _b58encode(bytes([prefix]) + account_id + _address_checksum(prefix, account_id))


def decode_address(text: str, prefix: int = NETWORK_PREFIX) -> bytes:
    """The 32-byte AccountId of a text address; `AddressError` says what is wrong with a bad one.

    The checksum is checked before the prefix so that a typo is reported as a typo, and a good
    address of another network as exactly that.
    """
    if not isinstance(text, str):
        raise AddressError("an address must be text")
    text = text.strip()
    if not text:
        raise AddressError("empty address")
    if len(text) > _MAX_ADDRESS_TEXT:
        raise AddressError(f"address is {len(text)} characters long; addresses are at most 48")
    raw = _b58decode(text)
    if len(raw) != _ADDRESS_LEN:
        raise AddressError(
            f"address decodes to {len(raw)} bytes, expected {_ADDRESS_LEN} (truncated or mistyped?)"
        )
    found_prefix, account_id, checksum = raw[0], raw[1:-_ADDRESS_CHECKSUM_LEN], raw[-_ADDRESS_CHECKSUM_LEN:]
    if checksum != _address_checksum(found_prefix, account_id):
        raise AddressError("address checksum mismatch: the address is mistyped or corrupted")
    if found_prefix != prefix:
        raise AddressError(f"address is for network prefix {found_prefix}, expected {prefix}")
    return account_id


# ---------------------------------------------------------------------------------------------
# Dev keys and key URIs
# ---------------------------------------------------------------------------------------------

DEV_NAMES: tuple[str, ...] = ("Alice", "Bob", "Charlie", "Dave", "Eve", "Ferdie")

_DEV_KEY_CONTEXT = b"imagechain-dev-key:"
_DEV_URI = re.compile(r"//[^\s]+")
_HEX_SEED = re.compile(r"0x[0-9a-fA-F]{64}")


def dev_keypair(uri: str, scheme: Scheme = Scheme.ED25519) -> Keypair:
    """Well-known development key for a URI such as ``//Alice``. THESE KEYS ARE PUBLIC.

    seed = blake2b_256(b"imagechain-dev-key:" + scheme label + b":" + uri as UTF-8), so anyone can
    recompute every dev secret: use them only on ``--dev`` chains, devnets and in tests. Any
    ``//Name`` works (``//Alice//stash`` is just another name); the derivation is imagechain's own and
    does not reproduce Substrate's keys for the same URIs.
    """
    if not isinstance(uri, str) or not _DEV_URI.fullmatch(uri):
        raise ValueError(f"not a dev key URI: {uri!r} (expected //Name, e.g. //Alice)")
    scheme = Scheme(scheme)
    seed = blake2b_256(_DEV_KEY_CONTEXT + scheme.label.encode() + b":" + uri.encode("utf-8"))
    return Keypair.from_seed(scheme, seed)


def parse_key_uri(uri_or_hex: str, scheme: Scheme = Scheme.ED25519) -> Keypair:
    """Keypair from a dev URI (``//Alice``) or a raw secret (``0x`` + 64 hex digits)."""
    text = uri_or_hex.strip() if isinstance(uri_or_hex, str) else ""
    if text.startswith("//"):
        return dev_keypair(text, scheme)
    if _HEX_SEED.fullmatch(text):
        return Keypair.from_seed(scheme, bytes.fromhex(text[2:]))
    if text.lower().startswith("0x"):
        raise ValueError("a hex seed must be 0x followed by exactly 64 hex digits")
    raise ValueError("expected a dev key URI like //Alice or a 0x-prefixed 32-byte hex seed")
