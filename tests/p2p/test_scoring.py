"""Reputation rules with a fake clock: penalties, decay, bans, expiry, blocks."""

from __future__ import annotations

import pytest

from node.p2p.scoring import PENALTY_INVALID_GOSSIP, PENALTY_PROTOCOL_VIOLATION, PeerScores


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def make(clock: Clock) -> PeerScores:
    return PeerScores(ban_threshold=-100, ban_seconds=60.0, half_life=10.0, clock=clock)


def test_five_invalid_messages_in_a_burst_ban() -> None:
    clock = Clock()
    scores = make(clock)
    for _ in range(4):
        assert not scores.penalise("p", PENALTY_INVALID_GOSSIP)
    assert scores.score("p") == -80 and not scores.is_banned("p")
    assert scores.penalise("p", PENALTY_INVALID_GOSSIP)
    assert scores.is_banned("p") and scores.refuses("p")
    assert not scores.penalise("p", PENALTY_INVALID_GOSSIP)  # no double ban / extension
    assert scores.ban_remaining("p") == pytest.approx(60.0)


def test_scores_decay_so_occasional_mistakes_are_forgiven() -> None:
    clock = Clock()
    scores = make(clock)
    scores.penalise("p", 80)
    clock.now += 10.0  # one half-life
    assert scores.score("p") == -40
    scores.penalise("p", 50)
    assert not scores.is_banned("p")  # -90: spread-out penalties do not add up to a ban
    clock.now += 100.0
    assert scores.expire() == []
    assert scores.score("p") == 0


def test_ban_expires_and_the_score_starts_over() -> None:
    clock = Clock()
    scores = make(clock)
    assert scores.penalise("p", PENALTY_PROTOCOL_VIOLATION)
    assert scores.banned_peers() == ["p"]
    clock.now += 59.0
    assert scores.is_banned("p") and scores.expire() == []
    clock.now += 1.0
    assert scores.expire() == ["p"]
    assert not scores.is_banned("p") and scores.score("p") == 0 and scores.banned_peers() == []


def test_unban_and_blocks() -> None:
    scores = make(Clock())
    scores.penalise("p", 100)
    scores.unban("p")
    assert not scores.refuses("p")
    scores.block("q")
    assert scores.refuses("q") and scores.is_blocked("q") and not scores.is_banned("q")
    scores.unblock("q")
    assert not scores.refuses("q")
    with pytest.raises(ValueError):
        scores.penalise("p", -1)
    with pytest.raises(ValueError):
        PeerScores(ban_threshold=0)
