"""Aura equivocation: detected at import, reported on chain, offender disabled and slashed."""

from __future__ import annotations

import pytest

from node.chain_spec import parse_chain_spec
from node.core.node import NodeConfig
from node.keys import dev_keypair
from node.runtime import balances, offences, system
from node.runtime.executive import InvalidBlock, InvalidReason, InvalidTransaction
from node.runtime.runtime import RUNTIME
from node.service import open_node
from node.types import Call, Extrinsic
from tests.chainutil import IMG

SLOT = 10**8  # even: Alice's slots; odd: Bob's


@pytest.fixture
def nodes(tmp_path, dev_spec):
    spec = parse_chain_spec(dict(dev_spec.raw, id="equivocation", authorities=["//Alice", "//Bob"]))
    alice = open_node(NodeConfig(tmp_path / "a", spec, authority=dev_keypair("//Alice"), rpc_port=None, test_equivocate=True))
    bob = open_node(NodeConfig(tmp_path / "b", spec, authority=dev_keypair("//Bob"), rpc_port=None))
    yield alice, bob
    alice.close()
    bob.close()


def test_equivocation_is_reported_disabled_and_slashed(nodes):
    alice, bob = nodes
    alice_id = dev_keypair("//Alice").account_id
    block = alice.author_block(SLOT).block
    twin = alice._equivocating_twin(block)
    assert twin.hash != block.hash and twin.header.slot == block.header.slot

    bob.import_block(block)
    issuance = int.from_bytes(bob.chain.best_state()(balances.KEY_TOTAL_ISSUANCE), "big")
    reserved = system.read_account(bob.chain.best_state(), alice_id).reserved
    assert reserved == 1000 * IMG  # the genesis bond
    bob.import_block(twin)  # a valid block, but the second for one slot: Bob reports it
    assert len(bob.pool) == 1

    included = bob.author_block(SLOT + 1).block
    state = bob.chain.best_state()
    assert len(included.extrinsics) == 2
    assert offences.read_disabled(state) == [alice_id]
    assert system.read_account(state, alice_id).reserved == 0
    assert int.from_bytes(state(balances.KEY_TOTAL_ISSUANCE), "big") == issuance - 1000 * IMG
    assert len(bob.pool) == 0

    # A second report of the same offence is refused; so are Alice's next blocks.
    report = Extrinsic(Call("offences", "report_aura_equivocation", (block.header.encode(), twin.header.encode())))
    with pytest.raises(InvalidTransaction) as info:
        RUNTIME.validate_transaction(
            state, bob.genesis_hash, report.encode(), included.header.number, included.header.hash
        )
    assert info.value.reason is InvalidReason.BAD_UNSIGNED
    alice.import_block(included)
    assert not alice.is_our_slot(SLOT + 2)
    with pytest.raises(InvalidBlock, match="disabled"):  # the runtime refuses her blocks (build or import)
        alice.author_block(SLOT + 2)


def test_false_reports_are_refused(nodes):
    alice, bob = nodes
    first = alice.author_block(SLOT).block
    second = bob.author_block(SLOT + 1).block  # different slots: no offence
    for pair in [(first.header.encode(), second.header.encode()), (first.header.encode(), first.header.encode()),
                 (b"junk", first.header.encode())]:
        report = Extrinsic(Call("offences", "report_aura_equivocation", pair)).encode()
        with pytest.raises(InvalidTransaction) as info:
            RUNTIME.validate_transaction(bob.chain.best_state(), bob.genesis_hash, report, 0, bob.genesis_hash)
        assert info.value.reason is InvalidReason.BAD_UNSIGNED


def _report(first, second) -> bytes:
    return Extrinsic(Call("offences", "report_aura_equivocation", (first.header.encode(), second.header.encode()))).encode()


def _refusal(node, report: bytes) -> InvalidTransaction:
    best = node.chain.best_header()
    with pytest.raises(InvalidTransaction) as info:
        RUNTIME.validate_transaction(node.chain.best_state(), node.genesis_hash, report, best.number, best.hash)
    return info.value


def test_equivocation_reports_from_another_chain_are_refused(tmp_path, dev_spec, nodes):
    """Security #10.6: Alice's key also authors on another chain (same authorities, another
    genesis). Two headers she signed there for one slot prove nothing here: seals sign the genesis
    hash. The same pair from this chain does prove it."""
    alice, bob = nodes
    other_spec = parse_chain_spec(
        dict(dev_spec.raw, id="elsewhere", authorities=["//Alice", "//Bob"], genesis_time_ms=dev_spec.genesis_time_ms + 1)
    )
    elsewhere = open_node(NodeConfig(tmp_path / "x", other_spec, authority=dev_keypair("//Alice"), rpc_port=None))
    try:
        assert elsewhere.genesis_hash != bob.genesis_hash
        bob.author_block(SLOT - 1)  # this chain reaches the slot before
        foreign = elsewhere.author_block(SLOT).block
        refused = _refusal(bob, _report(foreign, elsewhere._equivocating_twin(foreign)))
        assert refused.reason is InvalidReason.BAD_UNSIGNED and "on this chain" in refused.detail
        alice.import_block(bob.chain.block(bob.chain.best_header().hash))
        ours = alice.author_block(SLOT).block
        best = bob.chain.best_header()
        RUNTIME.validate_transaction(  # the same offence on this chain is reportable
            bob.chain.best_state(), bob.genesis_hash, _report(ours, alice._equivocating_twin(ours)), best.number, best.hash
        )
    finally:
        elsewhere.close()


def test_old_slots_cannot_be_reported(nodes):
    """Security #10.6: a report must be about a recent slot of the current authority set."""
    alice, bob = nodes
    block = alice.author_block(SLOT).block
    twin = alice._equivocating_twin(block)
    bob.import_block(block)
    bob.author_block(SLOT + 1 + 2 * offences.REPORT_WINDOW_SLOTS)
    refused = _refusal(bob, _report(block, twin))
    assert refused.reason is InvalidReason.BAD_UNSIGNED and "not within" in refused.detail
