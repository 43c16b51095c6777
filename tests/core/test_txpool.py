"""Transaction pool: ready/future queues, tip priority, replacement, limits, maintenance."""

from __future__ import annotations

from pathlib import Path

import pytest

from node.core.node import Node
from node.core.txpool import PoolLimits, PoolRejected
from node.keys import dev_keypair
from node.service import dev_node
from node.types import Call
from tests.chainutil import IMG, signed, transfer_call


@pytest.fixture
def node(tmp_path: Path):
    n = dev_node(tmp_path, rpc_port=None, pool_limits=PoolLimits(max_transactions=8, max_per_sender=4))
    yield n
    n.close()


def submit(node: Node, keypair, nonce: int, tip: int = 0, amount: int = IMG) -> bytes:
    dest = dev_keypair("//Charlie").account_id
    return node.submit_extrinsic(signed(keypair, transfer_call(dest, amount), node.genesis_hash, nonce, tip=tip))


def rejection(fn) -> str:
    with pytest.raises(PoolRejected) as info:
        fn()
    return info.value.reason


def test_future_transactions_wait_for_the_gap(node, bob):
    h2 = submit(node, bob, 2)
    h1 = submit(node, bob, 1)
    assert node.pool.counts() == (0, 2)
    assert [t.hash for t in node.pool.ready()] == []
    h0 = submit(node, bob, 0)
    assert [t.hash for t in node.pool.ready()] == [h0, h1, h2]
    assert node.next_nonce(bob.account_id) == 3


def test_priority_by_tip_keeps_nonce_order(node, bob, alice):
    b0 = submit(node, bob, 0, tip=1)
    b1 = submit(node, bob, 1, tip=100)
    a0 = submit(node, alice, 0, tip=50)
    assert [t.hash for t in node.pool.ready()] == [a0, b0, b1]


def test_replacement_needs_a_higher_tip(node, bob):
    submit(node, bob, 0, tip=10)
    assert rejection(lambda: submit(node, bob, 0, tip=10, amount=2 * IMG)) == "TooLowPriority"
    replacement = submit(node, bob, 0, tip=11, amount=2 * IMG)
    assert [t.hash for t in node.pool.ready()] == [replacement]
    assert rejection(lambda: node.submit_extrinsic(node.pool.pending()[0])) == "AlreadyImported"


def test_limits(node, bob, alice):
    for nonce in range(4):
        submit(node, bob, nonce)
    assert rejection(lambda: submit(node, bob, 4)) == "AccountLimit"
    for nonce in range(4):
        submit(node, alice, nonce)
    assert rejection(lambda: submit(node, dev_keypair("//Charlie"), 0)) == "PoolFull"


def test_included_and_stale_transactions_leave_after_a_block(node, bob):
    included = [submit(node, bob, n) for n in range(3)]
    built = node.author_block(slot=10**8)
    assert len(built.block.extrinsics) == 4
    assert len(node.pool) == 0
    for h in included:
        assert node.db.tx_location(h)[0] == built.block.hash
    # A transaction whose nonce was used meanwhile is refused as stale.
    assert rejection(lambda: submit(node, bob, 1, tip=5)) == "StaleNonce"


def test_transactions_that_became_invalid_are_dropped_when_building(node, tmp_path):
    poor = dev_keypair("//Poor")
    dest = dev_keypair("//Charlie").account_id
    # Fund Poor with enough for two fees; the pool admits both transfers (each checked alone)...
    node.submit_extrinsic(signed(dev_keypair("//Bob"), transfer_call(poor.account_id, IMG // 20), node.genesis_hash, 0))
    node.author_block(slot=10**8)
    first = node.submit_extrinsic(signed(poor, transfer_call(dest, IMG // 50), node.genesis_hash, 0))
    second = node.submit_extrinsic(signed(poor, transfer_call(dest, IMG // 50), node.genesis_hash, 1))
    # ...then Poor replaces the first with one that leaves too little for the second's fee.
    drain = signed(poor, transfer_call(dest, IMG * 38 // 1000, keep_alive=True), node.genesis_hash, 0, tip=1)
    drain_hash = node.submit_extrinsic(drain)
    assert first not in node.pool  # usurped
    built = node.author_block(slot=10**8 + 1)
    assert built.invalid == [second]
    assert len(node.pool) == 0  # included or dropped as invalid, never left behind
    assert node.db.tx_location(drain_hash) is not None


# -- Security #10.1: nobody can fill the pool for free ------------------------------------------


def test_nonce_gap_spam_cannot_lock_the_pool(tmp_path):
    """The audit's attack: senders park transactions behind nonce gaps (nonces 1..N, never 0)
    until the pool is full; an honest transfer with a big tip must still get in, the parked spam
    stays bounded per sender and in total, and it leaves on its own."""
    limits = PoolLimits(max_transactions=64, max_future=40, max_future_per_sender=16, future_lifetime_blocks=8)
    node = dev_node(tmp_path, rpc_port=None, pool_limits=limits)
    try:
        spammers = [dev_keypair(uri) for uri in ("//Alice", "//Bob", "//Dave", "//Eve", "//Ferdie")]
        refused: dict[str, int] = {}
        for spammer in spammers:
            for nonce in range(1, 101):
                try:
                    submit(node, spammer, nonce)
                except PoolRejected as exc:
                    refused[exc.reason] = refused.get(exc.reason, 0) + 1
        ready, future = node.pool.counts()
        assert ready == 0 and future == limits.max_future  # the oldest parked ones made room, then...
        assert refused == {"AccountLimit": 5 * (100 - limits.max_future_per_sender)}  # ...16 per sender
        honest = submit(node, dev_keypair("//Charlie"), 0, tip=100 * IMG)
        assert node.pool.is_ready(honest)
        built = node.author_block(slot=10**8)
        assert len(built.block.extrinsics) == 2 and node.db.tx_location(honest) is not None
        for i in range(1, limits.future_lifetime_blocks + 2):
            node.author_block(slot=10**8 + i)
        assert node.pool.counts() == (0, 0)  # the parked spam is gone
        assert rejection(lambda: node.submit_extrinsic(node.chain.block(built.block.hash).extrinsics[1])) == "TemporarilyBanned"
    finally:
        node.close()


def test_a_full_ready_queue_makes_room_for_a_higher_tip(node, bob, alice):
    """With the ready queue full (8), a higher tip evicts the lowest-tipped tail; an equal tip is
    refused; the evicted transaction's hash is banned for a while."""
    low = [submit(node, bob, n, tip=1) for n in range(4)]
    for n in range(4):
        submit(node, alice, n, tip=5)
    charlie = dev_keypair("//Charlie")
    assert rejection(lambda: submit(node, charlie, 0, tip=1)) == "PoolFull"
    rich = submit(node, charlie, 0, tip=10)
    assert node.pool.is_ready(rich) and low[-1] not in node.pool and len(node.pool) == 8
    assert [t.hash for t in node.pool.ready()][:1] == [rich]


def test_only_ready_transactions_are_gossiped(tmp_path, bob):
    """A transaction waiting for a nonce gap is kept but not forwarded (IGNORE, no penalty); it
    is announced once the gap is filled."""
    from node.core.network_service import NodeNetwork
    from node.p2p.config import NetworkConfig
    from node.p2p.gossip import Verdict

    node = dev_node(tmp_path / "n", rpc_port=None)
    try:
        network = NodeNetwork(NetworkConfig(base_path=tmp_path / "p2p", genesis_hash=node.genesis_hash), node.chain,
                              blocks=node, transactions=node)  # fmt: skip
        dest = dev_keypair("//Charlie").account_id
        later = signed(bob, transfer_call(dest, IMG), node.genesis_hash, 1)
        now = signed(bob, transfer_call(dest, IMG), node.genesis_hash, 0)
        statuses: list[tuple[bytes, str]] = []
        node.pool.listeners.append(lambda ext_hash, status, _block: statuses.append((ext_hash, status)))
        assert network._on_tx_gossip(later, "peer-a") is Verdict.IGNORE
        assert len(node.pool) == 1 and node.pool.counts() == (0, 1)
        assert network._on_tx_gossip(now, "peer-a") is Verdict.ACCEPT
        assert [status for _, status in statuses] == ["future", "ready", "ready"]  # `later` promoted
        # The pool hands the node what became ready, for the node to gossip (once).
        state, best = node.chain.best_state(), node.chain.best_header()
        third = signed(bob, transfer_call(dest, IMG), node.genesis_hash, 3)
        node.pool.submit(third, state, best.number, best.hash)
        node.pool.submit(signed(bob, transfer_call(dest, IMG), node.genesis_hash, 2), state, best.number, best.hash)
        assert node.pool.take_promoted() == [third] and node.pool.take_promoted() == []
    finally:
        node.close()


def test_expensive_checks_draw_on_the_senders_budget(node):
    """Registrations cost about a millisecond to check: a gossip peer gets a budget of them, then
    is told to slow down without the node doing the work (before any signature or rendition)."""
    from node.core import txpool

    limits = node.pool.limits
    garbage_registration = signed(dev_keypair("//Bob"), Call("copyright", "register", ()), node.genesis_hash, 0)
    state, best = node.chain.best_state(), node.chain.best_header()
    reasons = []
    for _ in range(limits.expensive_burst + 5):
        reasons.append(rejection(lambda: node.pool.submit(garbage_registration, state, best.number, best.hash, source="peer-x")))
    assert reasons[: limits.expensive_burst] == ["BadArguments"] * limits.expensive_burst
    assert reasons[limits.expensive_burst :] == ["RateLimited"] * 5
    assert rejection(lambda: node.pool.submit(garbage_registration, state, best.number, best.hash, source="peer-y")) == "BadArguments"
    assert txpool.EXPENSIVE_WEIGHT <= node.pool.limits.expensive_burst * 10**6  # sanity of the constants
