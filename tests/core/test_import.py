"""Block import: valid blocks from an author import on a second node; each broken rule is refused."""

from __future__ import annotations

import dataclasses
import subprocess
import sys

import pytest

from node.core.chain import StatePruned
from node.core.importer import AlreadyKnown, ImportError_, UnknownParent
from node.core.node import Node
from node.keys import dev_keypair
from node.runtime import system
from node.service import dev_node
from node.state.trie import InvalidProof, verify_proof
from node.types import Block, Header, aura_pre_digest, merkle_root
from tests.chainutil import DEV_GENESIS, IMG, signed, transfer_call

SLOT = 10**8




def authored(author: Node, bob, transfers: int = 3, slot: int = SLOT) -> Block:
    dest = dev_keypair("//Charlie").account_id
    start = author.next_nonce(bob.account_id)
    for nonce in range(start, start + transfers):
        author.submit_extrinsic(signed(bob, transfer_call(dest, IMG), author.genesis_hash, nonce))
    return author.author_block(slot).block


def resealed(block: Block, **changes) -> Block:
    """A block with header fields changed and a valid seal by Alice (the only authority)."""
    header = dataclasses.replace(block.header.without_seal(), **changes)
    sealed = header.with_seal(dev_keypair("//Alice").sign(header.seal_payload(DEV_GENESIS)))
    return Block(sealed, block.extrinsics)


def test_follower_imports_and_reaches_the_same_state(author, follower, bob):
    for i in range(3):
        block = authored(author, bob, slot=SLOT + i)
        follower.import_block(block)
    assert follower.chain.best_header() == author.chain.best_header()
    bob_state = system.read_account(follower.chain.best_state(), bob.account_id)
    assert bob_state.nonce == 9
    with pytest.raises(AlreadyKnown):
        follower.import_block(block)


def test_broken_blocks_are_refused_with_reasons(author, follower, bob):
    block = authored(author, bob)
    h = block.header

    def refused(bad: Block) -> str:
        with pytest.raises(ImportError_) as info:
            follower.import_block(bad)
        assert follower.chain.best_header().number == 0
        return info.value.reason

    assert "state root" in refused(resealed(block, state_root=b"\x01" * 32))
    assert "extrinsics root" in refused(resealed(block, extrinsics_root=b"\x01" * 32))
    assert "number" in refused(resealed(block, number=5))
    with pytest.raises(UnknownParent):
        follower.import_block(resealed(block, parent_hash=b"\x07" * 32))
    # Seal by someone else, or over other contents.
    header = h.without_seal()
    bad_seal = Block(header.with_seal(dev_keypair("//Bob").sign(header.seal_payload(DEV_GENESIS))), block.extrinsics)
    assert "seal" in refused(bad_seal)
    assert "seal" in refused(Block(header, block.extrinsics))
    # A slot far in the future.
    far = resealed(block, digest=(aura_pre_digest(10**12),))
    assert "future" in refused(far)
    # A body that differs from the header, or a transaction removed, or duplicated.
    assert "extrinsics root" in refused(Block(h, block.extrinsics[:-1]))
    dup = list(block.extrinsics) + [block.extrinsics[-1]]
    assert "invalid block" in refused(resealed(Block(h, tuple(dup)), extrinsics_root=merkle_root(dup)))
    # No timestamp inherent.
    body = list(block.extrinsics[1:])
    assert "invalid block" in refused(resealed(Block(h, tuple(body)), extrinsics_root=merkle_root(body)))
    follower.import_block(block)  # the original still imports


def test_read_proof_verifies_against_the_header(author, bob):
    authored(author, bob)
    best = author.chain.best_header()
    key = system.account_key(bob.account_id)
    absent = system.account_key(b"\x55" * 32)
    proof = author.chain.read_proof(best.hash, [key, absent])
    value = verify_proof(best.state_root, proof, key)
    assert value == author.chain.state_get(best.hash, key)
    assert system.Account.decode(value).nonce == 3
    assert verify_proof(best.state_root, proof, absent) is None
    with pytest.raises(InvalidProof):
        verify_proof(best.state_root, [p[:-1] + bytes([p[-1] ^ 1]) for p in proof], key)
    with pytest.raises(InvalidProof):
        verify_proof(b"\x01" * 32, proof, key)


def test_pruning_keeps_the_window(tmp_path, bob):
    node = dev_node(tmp_path, rpc_port=None, pruning=2)
    try:
        roots = []
        for i in range(6):
            authored(node, bob, transfers=1, slot=SLOT + i)
            roots.append(node.chain.best_header().hash)
        key = system.account_key(bob.account_id)
        assert node.chain.state_get(roots[-1], key) is not None
        assert node.chain.state_get(roots[-3], key) is not None  # inside the window
        with pytest.raises(StatePruned):
            node.chain.state_get(roots[0], key)
        with pytest.raises(StatePruned):
            node.chain.read_proof(roots[0], [key])
        # The nodes are really gone from the database, not just hidden.
        old_root = node.chain.header(roots[0]).state_root
        assert not node.db.state.has_root(old_root)
    finally:
        node.close()


def test_restart_keeps_chain_and_state(tmp_path, bob):
    node = dev_node(tmp_path, rpc_port=None)
    authored(node, bob, transfers=2)
    best = node.chain.best_header()
    node.close()
    again = dev_node(tmp_path, rpc_port=None)
    try:
        assert again.chain.best_header() == best
        assert again.chain.finalized_header() == best
        assert system.read_account(again.chain.best_state(), bob.account_id).nonce == 2
    finally:
        again.close()


def test_genesis_hash_is_the_same_in_a_fresh_interpreter(dev_genesis_hash):
    code = "from node.chain_spec import load_chain_spec, genesis_block; print(genesis_block(load_chain_spec()).hash.hex())"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={"PYTHONHASHSEED": "123", "PATH": ""})
    assert out.stdout.strip() == dev_genesis_hash.hex()


def test_header_roundtrip(author, bob):
    block = authored(author, bob)
    assert Header.decode(block.header.encode()) == block.header
    assert Block.decode(block.encode()) == block
