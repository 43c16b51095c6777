"""Which registrations a copy found in the wild matches, in the order `copyright_verifyImage` reports.

The watermark first: each payload the copy carries that names a registration is an exact match,
the earliest registration first (a copy cropped from a registered image and marked again keeps
the first mark). Then the pHash: registrations within the chain's radius that no payload named,
nearest first, at most `max_similar`. Each match names the version it is about: for an exact
match the version that carries the payload, for a similar one the nearest version.

A copy whose pHash carries no structure (`phash.low_frequency_energy` below the chain's
`copyright.min_phash_energy`, the bar registrations must pass) is matched by its watermark only:
the 64 bits of a flat image are set by rounding, and would "match" every other flat image (a
white 400x300 and a 1x1 black one were `similar` to a grey registration). The watermark is
keyed and error-checked, so a payload that names a registration still does.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from node.pod_mining.verify import ImageFacts, decode_image_bytes
from node.runtime import copyright
from node.runtime.support import StateGet

__all__ = ["Match", "QueryFacts", "analyse_query", "has_structure", "nearest", "rank_matches"]


@dataclass(frozen=True)
class Match:
    kind: str  # "exact" or "similar"
    registration: copyright.Registration
    version: int
    distance: int  # pHash distance of the copy to `version`


@dataclass(frozen=True)
class QueryFacts:
    """What a copy says about itself: size, pHash, payloads, and how much structure its pHash sees."""

    image: ImageFacts
    energy: int


def analyse_query(data: bytes, key: bytes, max_pixels: int) -> QueryFacts:
    """Decode a found copy and read its pHash, its structure and every watermark payload under `key`
    (pure CPU work: the server runs it as an image job, in a worker thread)."""
    from node.imaging.phash import low_frequency_energy, phash_from_rendition
    from node.imaging.rendition import verification_rendition
    from node.imaging.watermark import extract_all

    rgb = decode_image_bytes(data, max_pixels)
    rendition = verification_rendition(rgb)
    payloads = tuple(extract_all(rgb, key))
    height, width = rgb.shape[:2]
    facts = ImageFacts(width, height, phash_from_rendition(rendition), payloads[0] if payloads else None, payloads)
    return QueryFacts(facts, low_frequency_energy(rendition))


def has_structure(get: StateGet, energy: int) -> bool:
    """Whether a pHash with this much structure may be compared: the bar registrations pass."""
    return energy >= copyright.read_params(get).min_phash_energy


def nearest(get: StateGet, phash: int, energy: int) -> tuple[int, int] | None:
    """(registration id, distance) of the nearest registration within the index's reach
    (`copyright.MAX_SEARCH_RADIUS`), for telling a user how far "no match" was; None when there is
    none, or the pHash has no structure to compare."""
    if not has_structure(get, energy):
        return None
    found = copyright.search_similar(get, phash, copyright.MAX_SEARCH_RADIUS)
    return found[0] if found else None


def rank_matches(
    get: StateGet, payloads: Sequence[bytes], phash: int, max_similar: int, energy: int
) -> list[Match]:
    """The matches of a copy with these watermark payloads, this pHash and this much structure in
    it, read with `get`."""
    exact: dict[int, bytes] = {}  # registration id -> the payload that named it
    for payload in payloads:
        rid = copyright.find_by_payload(get, payload)
        if rid is not None and rid not in exact:
            exact[rid] = payload
    candidates: list[tuple[str, int]] = [("exact", rid) for rid in sorted(exact)]
    similar = (
        copyright.search_similar(get, phash, copyright.read_params(get).phash_radius) if has_structure(get, energy) else []
    )
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
