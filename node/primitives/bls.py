"""BLS12-381 signatures (chia_rs's `AugSchemeMPL`): the unique signatures of mining tickets.

Why BLS and not ed25519 (`shared/design/notes-storage-mining.md` section 5): a ticket's walk and
its score are computed from the miner's signatures, so there must be exactly one valid signature
per key and message. An ed25519 key holder can make any number of valid signatures (the nonce
is not checkable) and would grind the walk without reading storage; a BLS signature is a
deterministic function of key and message. The augmented scheme signs `public key || message`,
so no proof of possession is needed against rogue keys.

Each signature of a ticket is verified on its own: an aggregate check would accept signatures
that are individually wrong but sum correctly, which would make them grindable again.
"""

from __future__ import annotations

from chia_rs import AugSchemeMPL, G1Element, G2Element, PrivateKey

PUBLIC_KEY_BYTES = 48
SIGNATURE_BYTES = 96
SEED_BYTES = 32

__all__ = ["PUBLIC_KEY_BYTES", "SIGNATURE_BYTES", "BlsKey", "public_key_ok", "verify"]


class BlsKey:
    """A miner's BLS key, derived from a 32-byte seed (keep the seed as secret as the account key)."""

    def __init__(self, seed: bytes) -> None:
        if len(seed) < SEED_BYTES:
            raise ValueError(f"a BLS seed has at least {SEED_BYTES} bytes")
        self._secret: PrivateKey = AugSchemeMPL.key_gen(seed)
        self.public = bytes(self._secret.get_g1())

    def sign(self, message: bytes) -> bytes:
        return bytes(AugSchemeMPL.sign(self._secret, message))


def public_key_ok(public: bytes) -> bool:
    """Whether `public` is a valid compressed G1 point (not the identity)."""
    if len(public) != PUBLIC_KEY_BYTES:
        return False
    try:
        point = G1Element.from_bytes(public)
    except (ValueError, RuntimeError):
        return False
    return point != G1Element()


def verify(public: bytes, message: bytes, signature: bytes) -> bool:
    if len(public) != PUBLIC_KEY_BYTES or len(signature) != SIGNATURE_BYTES:
        return False
    try:
        return bool(AugSchemeMPL.verify(G1Element.from_bytes(public), message, G2Element.from_bytes(signature)))
    except (ValueError, RuntimeError):
        return False
