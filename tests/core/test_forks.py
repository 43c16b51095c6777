"""Fork choice, reorgs and finalization on a two-authority chain (no network: blocks passed by hand)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from node.chain_spec import parse_chain_spec
from node.core.chain import NotDescendant
from node.core.importer import NotOnFinalizedChain
from node.core.node import Node, NodeConfig
from node.keys import dev_keypair
from node.runtime import system
from node.service import open_node
from node.types import extrinsic_hash
from tests.chainutil import IMG, signed, transfer_call


@pytest.fixture
def spec(dev_spec):
    raw = dict(dev_spec.raw, id="forktest", authorities=["//Alice", "//Bob"])
    return parse_chain_spec(raw)


def make_node(tmp_path: Path, spec, name: str, authority: str | None) -> Node:
    keypair = dev_keypair(authority) if authority else None
    return open_node(NodeConfig(tmp_path / name, spec, name=name, authority=keypair, rpc_port=None, pruning=4))


@pytest.fixture
def nodes(tmp_path, spec):
    made = [make_node(tmp_path, spec, "a", "//Alice"), make_node(tmp_path, spec, "b", "//Bob"),
            make_node(tmp_path, spec, "c", None)]
    yield made
    for node in made:
        node.close()


SLOT = 10**8  # even: Alice's; odd: Bob's


def test_longest_chain_wins_and_reorg_readmits_transactions(nodes, charlie):
    a, b, c = nodes
    tx = signed(charlie, transfer_call(dev_keypair("//Dave").account_id, IMG), a.genesis_hash, 0)
    a.submit_extrinsic(tx)
    a1 = a.author_block(SLOT).block  # Alice's branch includes the transfer
    b1 = b.author_block(SLOT + 1).block  # Bob did not see a1: a fork at height 1
    b2 = b.author_block(SLOT + 3).block

    c.import_block(a1)
    assert c.chain.best_header().hash == a1.hash
    assert system.read_account(c.chain.best_state(), charlie.account_id).nonce == 1
    c.import_block(b1)  # same height: the first seen stays best
    assert c.chain.best_header().hash == a1.hash
    assert sorted(c.chain.leaves()) == sorted([a1.hash, b1.hash])
    imported = c.import_block(b2)  # longer: reorg
    assert [h.hash for h in imported.change.retracted] == [a1.hash]
    assert [h.hash for h in imported.change.enacted] == [b1.hash, b2.hash]
    assert c.chain.best_header().hash == b2.hash
    assert c.chain.hash_at(1) == b1.hash and c.chain.hash_at(2) == b2.hash
    # State follows the new branch, and the retracted transfer is back in the pool.
    assert system.read_account(c.chain.best_state(), charlie.account_id).nonce == 0
    assert c.pool.pending() == [tx]
    assert c.chain.db.tx_location(extrinsic_hash(tx)) is None

    # Finalizing b2 discards Alice's branch and its state; blocks on it can no longer import.
    c.finalize(b2.hash)
    assert c.chain.finalized_header().hash == b2.hash
    assert c.chain.leaves() == [b2.hash]
    assert c.chain.header(a1.hash) is None
    assert not c.chain.db.state.has_root(a1.header.state_root)
    with pytest.raises(NotOnFinalizedChain):
        c.import_block(a1)


def test_finalizing_a_block_off_the_best_chain_moves_the_best_chain(nodes):
    a, b, c = nodes
    a1 = a.author_block(SLOT).block
    a2 = a.author_block(SLOT + 2).block
    b1 = b.author_block(SLOT + 1).block
    for block in (a1, a2, b1):
        c.import_block(block)
    assert c.chain.best_header().hash == a2.hash
    change = c.chain.finalize(b1.hash)
    assert change.new_best and c.chain.best_header().hash == b1.hash
    assert c.chain.hash_at(2) is None and c.chain.hash_at(1) == b1.hash
    assert c.chain.header(a2.hash) is None and c.chain.header(a1.hash) is None
    with pytest.raises(NotDescendant):
        c.chain.finalize(c.genesis_hash)  # finality never moves back


def test_state_above_finalized_is_never_pruned(nodes):
    a, _, c = nodes
    blocks = [a.author_block(SLOT + 2 * i).block for i in range(12)]
    for block in blocks:
        c.import_block(block)
    # Nothing finalized: every state is still readable despite pruning=4.
    for block in blocks:
        assert c.chain.state_get(block.hash, system.NUMBER.key) is not None
    c.finalize(blocks[-1].hash)
    assert c.chain.state_get(blocks[-1].hash, system.NUMBER.key) is not None
    assert c.chain.state_get(blocks[-5].hash, system.NUMBER.key) is not None
    assert not c.chain.db.state.has_root(blocks[0].header.state_root)


def test_finalized_head_survives_restart(tmp_path, spec):
    node = make_node(tmp_path, spec, "x", "//Alice")
    block = node.author_block(SLOT).block
    node.finalize(block.hash, b"justification-bytes")
    node.close()
    again = make_node(tmp_path, spec, "x", "//Alice")
    try:
        assert again.chain.finalized_header().hash == block.hash
        assert again.chain.justification(block.hash) == b"justification-bytes"
        assert dataclasses.asdict(again.chain.best_header()) == dataclasses.asdict(block.header)
    finally:
        again.close()
