"""Aura's two rules that both the client (header checks) and the runtime (the block's author,
equivocation reports) apply: who authors a slot, and whether a header is sealed by them."""

from __future__ import annotations

from node.keys import PublicKey, Scheme
from node.types import ENGINE_AURA, Header


def author_of_slot(authorities: list[bytes], slot: int) -> bytes:
    """The authority whose turn slot `slot` is: round robin over the set, in order."""
    return authorities[slot % len(authorities)]


def is_sealed_by(header: Header, author: bytes, genesis_hash: bytes) -> bool:
    """Whether `header` carries an Aura seal that `author`'s ed25519 key signed for this chain."""
    seal = header.seal
    if seal is None or seal.engine != ENGINE_AURA:
        return False
    return PublicKey(Scheme.ED25519, author).verify(header.seal_payload(genesis_hash), seal.data)
