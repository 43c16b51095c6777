"""Peer reputation and bans, kept apart from libp2p so the rules are easy to read and test.

Why our own scoring instead of GossipSub's peer score: py-libp2p's `PeerScorer` only sees gossip
(and its weights default to 0), while misbehaviour we care about also happens on request-response
(bad sync requests) and at the protocol layer (undecodable RPCs). One score per peer, fed from all
of them, decides disconnects and bans.

Rules: every peer starts at 0. `penalise` subtracts; scores decay exponentially back towards 0
(half-life configurable) so an honest peer's occasional mistake is forgotten. At or below the ban
threshold the peer is banned for a fixed time; when the ban expires its score starts from 0 again.
Manual blocks (`block`) are separate from bans: they last until `unblock`, for partition tests and
operators.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

__all__ = [
    "PENALTY_BAD_REQUEST",
    "PENALTY_BAD_SIGNATURE",
    "PENALTY_HANDLER_ERROR",
    "PENALTY_INVALID_GOSSIP",
    "PENALTY_OVERSIZED",
    "PENALTY_PROTOCOL_VIOLATION",
    "PeerScores",
]

# Penalties for the default ban threshold of -100: five invalid gossip messages in quick succession,
# two oversized ones, or a single undecodable RPC get a peer banned.
PENALTY_INVALID_GOSSIP = 20
PENALTY_BAD_SIGNATURE = 25
PENALTY_OVERSIZED = 50
PENALTY_BAD_REQUEST = 20
PENALTY_HANDLER_ERROR = 20
PENALTY_PROTOCOL_VIOLATION = 100


@dataclass
class _Entry:
    score: float = 0.0
    updated: float = 0.0


class PeerScores:
    """Scores, timed bans and manual blocks of peers, keyed by base58 peer id.

    ``clock`` is injectable so tests can move time without sleeping.
    """

    def __init__(
        self,
        *,
        ban_threshold: int = -100,
        ban_seconds: float = 300.0,
        half_life: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if ban_threshold >= 0:
            raise ValueError("ban_threshold must be negative")
        self.ban_threshold = ban_threshold
        self.ban_seconds = ban_seconds
        self.half_life = half_life
        self._clock = clock
        self._entries: dict[str, _Entry] = {}
        self._banned_until: dict[str, float] = {}
        self._blocked: set[str] = set()

    def score(self, peer_id: str) -> int:
        """Current (decayed) score, rounded to an integer."""
        entry = self._entries.get(peer_id)
        if entry is None:
            return 0
        self._decay(entry)
        return round(entry.score)

    def penalise(self, peer_id: str, penalty: int) -> bool:
        """Lower the score by ``penalty``; return True if this crossed the threshold and banned the peer.

        Penalising an already banned peer does not extend the ban: the ban length is predictable
        and repeated reports of the same burst (a dozen queued bad messages) do not stack.
        """
        if penalty < 0:
            raise ValueError("penalty must be >= 0")
        if self.is_banned(peer_id):
            return False
        entry = self._entries.setdefault(peer_id, _Entry(0.0, self._clock()))
        self._decay(entry)
        entry.score -= penalty
        # Rounded like `score()`, so five 20-point penalties in quick succession reach -100 even
        # though a few milliseconds of decay leave the exact value at -99.99.
        if round(entry.score) <= self.ban_threshold:
            self._banned_until[peer_id] = self._clock() + self.ban_seconds
            return True
        return False

    def is_banned(self, peer_id: str) -> bool:
        """True while a score ban is in force (expired bans are cleared on the way)."""
        until = self._banned_until.get(peer_id)
        if until is None:
            return False
        if self._clock() >= until:
            self._expire(peer_id)
            return False
        return True

    def ban_remaining(self, peer_id: str) -> float:
        """Seconds left on a ban, 0 if none."""
        return (
            max(0.0, self._banned_until.get(peer_id, 0.0) - self._clock()) if self.is_banned(peer_id) else 0.0
        )

    def unban(self, peer_id: str) -> None:
        """Lift a ban early and forget the score."""
        self._expire(peer_id)

    def block(self, peer_id: str) -> None:
        self._blocked.add(peer_id)

    def unblock(self, peer_id: str) -> None:
        self._blocked.discard(peer_id)

    def is_blocked(self, peer_id: str) -> bool:
        return peer_id in self._blocked

    def refuses(self, peer_id: str) -> bool:
        """True if connections with this peer must be refused in either direction."""
        return peer_id in self._blocked or self.is_banned(peer_id)

    def banned_peers(self) -> list[str]:
        """Currently banned peers (expiring bans are cleared as a side effect)."""
        return [p for p in list(self._banned_until) if self.is_banned(p)]

    def expire(self) -> list[str]:
        """Clear expired bans and forget fully decayed scores; return peers whose ban just ended."""
        ended = [p for p, until in list(self._banned_until.items()) if self._clock() >= until]
        for peer_id in ended:
            self._expire(peer_id)
        for peer_id, entry in list(self._entries.items()):
            self._decay(entry)
            if peer_id not in self._banned_until and abs(entry.score) < 0.5:
                del self._entries[peer_id]
        return ended

    def _expire(self, peer_id: str) -> None:
        self._banned_until.pop(peer_id, None)
        self._entries.pop(peer_id, None)

    def _decay(self, entry: _Entry) -> None:
        now = self._clock()
        elapsed = now - entry.updated
        if elapsed > 0 and self.half_life > 0:
            entry.score *= math.pow(0.5, elapsed / self.half_life)
        entry.updated = now
