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
        RUNTIME.validate_transaction(state, bob.genesis_hash, report.encode(), included.header.number)
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
            RUNTIME.validate_transaction(bob.chain.best_state(), bob.genesis_hash, report, 0)
        assert info.value.reason is InvalidReason.BAD_UNSIGNED
