"""Aura: slot-based authoring by a round-robin authority set (PROTOCOL section 6).

Pure functions; the slot timer that calls them lives in `node.core.authoring`.

* slot = floor(unix_ms / slot_ms); the author of slot s is authorities[s % n];
* a header carries `PreRuntime(aura, slot)` and, last, `Seal(aura, signature)` where the
  signature is the author's ed25519 signature of the header's pre-hash (hash without the seal);
* import checks: the seal verifies against the slot's author, the slot is above the parent's
  and at most one slot ahead of the importer's clock.
"""

from __future__ import annotations

from node.primitives.aura import author_of_slot, is_sealed_by
from node.types import ENGINE_AURA, Header


class InvalidSeal(Exception):
    pass


def slot_at(unix_ms: int, slot_ms: int) -> int:
    return unix_ms // slot_ms


def slot_start_ms(slot: int, slot_ms: int) -> int:
    return slot * slot_ms


def check_header(
    header: Header, parent: Header, authorities: list[bytes], now_slot: int, genesis_hash: bytes
) -> bytes:
    """Check slot order and seal; return the author's public key or raise InvalidSeal."""
    slot = header.slot
    if slot is None:
        raise InvalidSeal("header has no Aura slot")
    parent_slot = parent.slot
    if parent_slot is not None and slot <= parent_slot:
        raise InvalidSeal(f"slot {slot} is not above the parent's slot {parent_slot}")
    if slot > now_slot + 1:
        raise InvalidSeal(f"slot {slot} is in the future (now {now_slot})")
    seal = header.seal
    if seal is None or seal.engine != ENGINE_AURA:
        raise InvalidSeal("header is not sealed")
    if not authorities:
        raise InvalidSeal("no authorities")
    author = author_of_slot(authorities, slot)
    if not is_sealed_by(header, author, genesis_hash):
        raise InvalidSeal(f"seal does not verify against slot {slot}'s author {author.hex()}")
    return author
