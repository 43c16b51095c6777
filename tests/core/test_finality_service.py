"""The finality voter's persisted state (issue #10, finding 9).

A validator that restarts must know which votes it already cast, or it can sign a second, different
vote in the same round (an equivocation, slashed on chain). So the state goes to disk before each
vote leaves, even while a sync batch defers the database's flushes, and a state that cannot be read
back stops the node from voting instead of letting it start afresh.

Real parts: a node on a two-validator chain over real LMDB, the real `FinalityService` driven by its
own `run` loop and the real clock; the network is the recorder below (the service's `VoteNetwork`),
which looks at the database at the moment each vote is handed over to be sent.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import trio

from devnet.layout import devnet_spec
from node.chain_spec import parse_chain_spec
from node.codec import decode, expect_bytes, expect_list
from node.consensus.finality import SignedVote, VoterState
from node.core.db import ChainDB
from node.core.finality_service import MESSAGE_VOTE, META_VOTER_STATE, FinalityService
from node.core.node import Node, NodeConfig
from node.keys import dev_keypair
from node.p2p.network import RequestFailed
from node.service import open_node

SLOT_MS = 200  # rounds of 400 ms: a prevote within ~200 ms of the start


@dataclass
class Sent:
    vote: SignedVote
    durable: bool  # every committed transaction, the voter state's included, was on disk
    stored: VoterState  # what a restart would read at that moment


@dataclass
class VoteRecorder:
    """The gadget's network: no peers; records each vote with the database's state as it leaves."""

    db: ChainDB
    sent: list[Sent] = field(default_factory=list)

    def peer_ids(self) -> list[str]:
        return []

    def publish_vote(self, encoded: bytes) -> None:
        kind, payload, _ = expect_list(decode(encoded), 3)
        if kind != MESSAGE_VOTE:
            return
        raw = self.db.get_meta(META_VOTER_STATE)
        assert raw is not None, "a vote left before any voter state was written"
        durable = self.db.durable_txnid == self.db.last_txnid()
        self.sent.append(Sent(SignedVote.decode(expect_bytes(payload)), durable, VoterState.decode(raw)))

    async def request_catch_up(self, peer_id: str) -> bytes:
        raise RequestFailed("no peers")

    def report(self, peer_id: str, penalty: int, reason: str) -> None:
        raise AssertionError(f"nobody to report: {peer_id} {reason}")


def open_validator(base_path: Path) -> Node:
    """//Alice, one of two validators of a local chain with 200 ms slots."""
    spec = parse_chain_spec(devnet_spec(2, SLOT_MS))
    return open_node(NodeConfig(base_path=base_path, spec=spec, authority=dev_keypair("//Alice"), rpc_port=None))


@pytest.fixture
def node(tmp_path: Path) -> Iterator[Node]:
    validator = open_validator(tmp_path / "alice")
    yield validator
    validator.close()


async def run_gadget(node: Node, recorder: VoteRecorder, seconds: float) -> FinalityService:
    async with trio.open_nursery() as nursery:
        service = FinalityService(node.chain, finalizer=node, transactions=node, network=recorder,
                                  nursery=nursery, authority=node.authority, slot_ms=SLOT_MS)  # fmt: skip
        nursery.start_soon(service.run)
        await trio.sleep(seconds)
        nursery.cancel_scope.cancel()
    return service


async def test_voter_state_is_on_disk_before_the_vote_leaves_even_during_a_sync_batch(node: Node) -> None:
    recorder = VoteRecorder(node.db)
    with node.db.deferred_flush():  # as while a synced range is imported (Node.importing_batch)
        await run_gadget(node, recorder, 0.6)
    assert recorder.sent, "the voter never voted: the test tested nothing"
    for sent in recorder.sent:
        assert sent.durable, f"round {sent.vote.round} {sent.vote.stage.name} left before a flush"
        assert sent.vote in sent.stored.own_votes, "the stored state did not hold the vote being sent"


async def test_restart_resumes_from_the_stored_state(tmp_path: Path) -> None:
    first = open_validator(tmp_path / "alice")
    recorder = VoteRecorder(first.db)
    try:
        await run_gadget(first, recorder, 0.6)
    finally:
        first.close()
    assert recorder.sent
    last = recorder.sent[-1].stored
    again = open_validator(tmp_path / "alice")
    try:
        recorder = VoteRecorder(again.db)
        service = await run_gadget(again, recorder, 0.05)
        assert service.voter.is_voting
        assert service.voter.round >= last.round
    finally:
        again.close()


AHEAD = VoterState(set_id=7, round=3, base_hash=bytes(32), base_number=0, own_votes=(), last_completed=None)


@pytest.mark.parametrize(
    "garbage",
    [b"\x93\x01", b"", b"\xc1", bytes(64), AHEAD.encode()],
    ids=["truncated", "empty", "invalid", "zeros", "set-ahead-of-finalized"],
)
async def test_unreadable_voter_state_refuses_to_vote(
    node: Node, garbage: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    with node.db.write() as txn:
        node.db.put_meta(txn, META_VOTER_STATE, garbage)
    caplog.set_level(logging.WARNING)
    recorder = VoteRecorder(node.db)
    service = await run_gadget(node, recorder, 1.0)  # two and a half rounds
    assert recorder.sent == [], "a validator that lost its voter state voted"
    assert not service.voter.is_voting
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR and "voter state" in r.getMessage()]
    assert errors and "NOT vote" in errors[0].getMessage()
    assert node.db.get_meta(META_VOTER_STATE) == garbage, "the evidence must stay for the operator"
