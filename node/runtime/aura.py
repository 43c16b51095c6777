"""`aura`: the authority set that takes turns authoring slots (PROTOCOL section 6).

Storage
  aura:authorities -> [ed25519 public key, ...] in authoring order.

The client reads the set from the parent state to check a header's seal: the author of slot s
is `authorities[s % len(authorities)]`. Fees go to that author's account (its public key).
"""

from __future__ import annotations

from typing import Any

from node.codec import decode, encode, expect_bytes, expect_list

MODULE = "aura"
KEY_AUTHORITIES = b"aura:authorities"


def read_authorities(get: Any) -> list[bytes]:
    raw = get(KEY_AUTHORITIES)
    if raw is None:
        return []
    return [expect_bytes(key, 32, what="authority") for key in expect_list(decode(raw), what="authorities")]


def encode_authorities(authorities: list[bytes]) -> bytes:
    return encode(list(authorities))


def author_of_slot(authorities: list[bytes], slot: int) -> bytes:
    return authorities[slot % len(authorities)]


CALLS: list[Any] = []
