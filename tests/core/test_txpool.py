"""Transaction pool: ready/future queues, tip priority, replacement, limits, maintenance."""

from __future__ import annotations

from pathlib import Path

import pytest

from node.core.node import Node
from node.core.txpool import PoolLimits, PoolRejected
from node.keys import dev_keypair
from node.service import dev_node
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
