"""Which registrations a copy found in the wild matches, in the order `copyright_verifyImage` reports.

The watermark first: each payload the copy carries that names a registration is an exact match,
the earliest registration first (a copy cropped from a registered image and marked again keeps
the first mark). Then the pHash: registrations within the chain's radius that no payload named,
nearest first, at most `max_similar`. Each match names the version it is about: for an exact
match the version that carries the payload, for a similar one the nearest version.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from node.runtime import copyright
from node.runtime.support import StateGet

__all__ = ["Match", "rank_matches"]


@dataclass(frozen=True)
class Match:
    kind: str  # "exact" or "similar"
    registration: copyright.Registration
    version: int
    distance: int  # pHash distance of the copy to `version`


def rank_matches(get: StateGet, payloads: Sequence[bytes], phash: int, max_similar: int) -> list[Match]:
    """The matches of a copy with these watermark payloads and this pHash, read with `get`."""
    exact: dict[int, bytes] = {}  # registration id -> the payload that named it
    for payload in payloads:
        rid = copyright.find_by_payload(get, payload)
        if rid is not None and rid not in exact:
            exact[rid] = payload
    candidates: list[tuple[str, int]] = [("exact", rid) for rid in sorted(exact)]
    similar = copyright.search_similar(get, phash, copyright.read_params(get).phash_radius)
    candidates += [("similar", rid) for rid, _ in similar if rid not in exact][:max_similar]
    matches = []
    for kind, rid in candidates:
        registration = copyright.get_registration(get, rid)
        if registration is None:
            continue
        distances = [(v.phash ^ phash).bit_count() for v in registration.versions]
        if kind == "exact":
            version = next((i for i, v in enumerate(registration.versions) if v.wm_payload == exact[rid]), 0)
        else:
            version = min(range(len(distances)), key=lambda i: (distances[i], i))
        matches.append(Match(kind, registration, version, distances[version]))
    return matches
