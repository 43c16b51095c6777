"""Storage miners and storage-proof tickets, run through the executive over a dict state.

A registration stores a real blob; Charlie bonds as a storage miner, seals the blob under his
account, commits the replica root and mines a ticket on a recent block hash: it is accepted once
and paid from the emission curve. Forged, reused, stale and unbonded tickets are refused with
their reasons, and a miner without the replica cannot mine on it.
"""

from __future__ import annotations

import dataclasses
import os

import pytest

from node.chain_spec import parse_chain_spec
from node.pow_mining.tickets import Replica, seal_blob, try_ticket
from node.primitives import merkle
from node.primitives.bls import BlsKey
from node.runtime import copyright, emission, pow, storage, system
from node.runtime.executive import InvalidReason, InvalidTransaction
from node.runtime.runtime import RUNTIME
from node.types import Call, Extrinsic
from tests.chainutil import IMG
from tests.runtime.copyright_util import GENESIS, Chain, make_upload

ROUNDS = 2
STEPS = 4


@pytest.fixture
def chain(dev_spec) -> Chain:
    raw = {
        **dev_spec.raw,
        "storage": {"replication": 2, "miner_bond": "10", "seal_rounds": ROUNDS},
        "pow": {"steps": STEPS, "tickets_per_block": 1, "epoch_blocks": 5, "lookback_min": 1, "lookback_max": 8,
                "initial_target": f"{1 << 254:064x}"},
    }  # fmt: skip
    return Chain.new(parse_chain_spec(raw))


def _ticket_extrinsic(ticket: pow.Ticket) -> bytes:
    return Extrinsic(Call("pow", "submit_ticket", (ticket.encode(),))).encode()


def _refusal(chain: Chain, ticket: pow.Ticket) -> str:
    with pytest.raises(InvalidTransaction) as info:
        RUNTIME.validate_transaction(chain.get, GENESIS, _ticket_extrinsic(ticket), chain.number, b"\x00" * 32)
    assert info.value.reason is InvalidReason.BAD_UNSIGNED
    return info.value.detail


def _mine(chain: Chain, key: BlsKey, account: bytes, replicas: list[Replica], number: int) -> pow.Ticket:
    block_hash = system.BLOCK_HASH.get(chain.get, number)
    target = pow.read_target(chain.get)
    for nonce in range(500):
        ticket = try_ticket(
            key=key, account=account, replicas_in_chain_order=replicas, number=number, block_hash=block_hash,
            nonce=nonce, steps=STEPS, target=target,
        )  # fmt: skip
        if ticket is not None:
            return ticket
    raise AssertionError("no ticket in 500 attempts at a 1/4 target")


def test_a_miner_seals_commits_and_is_paid_for_a_ticket(chain: Chain, bob, charlie) -> None:
    data = os.urandom(5 * 1024 + 300)
    blob = copyright.BlobRef(copyright.BLOB_PUBLISHED, merkle.blob_root(data), len(data))
    up = dataclasses.replace(make_upload(bob.account_id, 41), blobs=(blob,))
    result = chain.run(bob, up.call())
    assert result.ok and ("storage", "BlobRecorded") in result.names()
    assert storage.get_blob(chain.get, blob.root) == storage.Blob(blob.root, 0, len(data), 1, chain.number)

    key = BlsKey(b"charlie's mining seed, 32 bytes.")
    free = chain.free(charlie)
    assert chain.run(charlie, Call("storage", "register_miner", (key.public,))).ok
    assert chain.free(charlie) < free - 10 * IMG + IMG // 100  # the bond is reserved
    assert storage.assigned_storers(chain.get, blob.root) == [charlie.account_id]
    replica = seal_blob(data, charlie.account_id, ROUNDS)
    assert chain.run(charlie, Call("storage", "commit_replica", (blob.root, replica.replica_root))).ok
    chain.block()
    chain.block()

    number = chain.number - 1  # at least lookback_min old; Charlie was bonded before it
    ticket = _mine(chain, key, charlie.account_id, [replica], number)
    generated = chain.generated()
    (accepted,) = chain.block(_ticket_extrinsic(ticket))
    event = accepted.event("pow", "TicketAccepted")
    assert event.fields[0] == charlie.account_id and event.fields[1] == ticket.id
    assert chain.generated() > generated and emission.generated(chain.get) == chain.generated()

    assert "already accepted" in _refusal(chain, ticket)
    for _ in range(10):
        chain.block()
    assert "outside the window" in _refusal(chain, dataclasses.replace(ticket, nonce=ticket.nonce + 1))


def test_forged_and_unbonded_tickets_are_refused(chain: Chain, bob, charlie, alice) -> None:
    data = os.urandom(3000)
    blob = copyright.BlobRef(copyright.BLOB_PUBLISHED, merkle.blob_root(data), len(data))
    chain.run(bob, dataclasses.replace(make_upload(bob.account_id, 42), blobs=(blob,)).call())
    key = BlsKey(b"charlie's mining seed, 32 bytes.")
    chain.run(charlie, Call("storage", "register_miner", (key.public,)))
    replica = seal_blob(data, charlie.account_id, ROUNDS)
    chain.run(charlie, Call("storage", "commit_replica", (blob.root, replica.replica_root)))
    chain.block()
    chain.block()
    number = chain.number - 1
    ticket = _mine(chain, key, charlie.account_id, [replica], number)

    # A sealed chunk that is not the committed one; a signature that is not the miner's.
    step = ticket.steps[1]
    bad_chunk = dataclasses.replace(step, sealed_chunk=bytes([step.sealed_chunk[0] ^ 1]) + step.sealed_chunk[1:])
    detail = _refusal(chain, dataclasses.replace(ticket, steps=(ticket.steps[0], bad_chunk, *ticket.steps[2:])))
    assert detail == "step 1: the sealed chunk is not in the committed replica"
    other_key = BlsKey(b"somebody else's seed, 32 bytes..")  # walks Charlie's replica with its own key
    assert _refusal(chain, _mine(chain, other_key, charlie.account_id, [replica], number)) == (
        "step 0: the signature is not the miner's"
    )
    # A hash that is not this chain's block, and a miner bonded after the block.
    assert "is not block" in _refusal(chain, dataclasses.replace(ticket, block_hash=b"\x99" * 32))
    late = dataclasses.replace(ticket, number=1, block_hash=system.BLOCK_HASH.get(chain.get, 1))
    assert "not bonded before" in _refusal(chain, late)
    # A registered miner without the replica (Alice) cannot present Charlie's walk as hers.
    alice_key = BlsKey(b"alice's mining seed, 32 bytes...")
    chain.run(alice, Call("storage", "register_miner", (alice_key.public,)))
    chain.block()
    chain.block()
    assert "no committed replicas" in _refusal(chain, dataclasses.replace(ticket, miner=alice.account_id, number=chain.number - 1,
                                                                           block_hash=system.BLOCK_HASH.get(chain.get, chain.number - 1)))  # fmt: skip


def test_a_miner_leaves_only_without_replicas_and_gets_its_bond_back(chain: Chain, bob, charlie) -> None:
    data = os.urandom(2000)
    blob = copyright.BlobRef(copyright.BLOB_PUBLISHED, merkle.blob_root(data), len(data))
    chain.run(bob, dataclasses.replace(make_upload(bob.account_id, 43), blobs=(blob,)).call())
    key = BlsKey(b"charlie's mining seed, 32 bytes.")
    before = chain.free(charlie)
    chain.run(charlie, Call("storage", "register_miner", (key.public,)))
    assert chain.run(charlie, Call("storage", "commit_replica", (blob.root, b"\x01" * 32))).ok
    assert chain.run(charlie, Call("storage", "leave", ())).failure[:2] == ("storage.ReplicasLeft", 1)
    assert chain.run(charlie, Call("storage", "drop_replica", (blob.root,))).ok
    assert chain.run(charlie, Call("storage", "leave", ())).ok
    assert storage.miner_set(chain.get) == [] and before - chain.free(charlie) < IMG  # only fees spent
    assert chain.run(charlie, Call("storage", "commit_replica", (blob.root, b"\x01" * 32))).failure[0] == "storage.NotMiner"
    assert chain.run(bob, Call("storage", "register_miner", (b"\x00" * 48,))).failure[0] == "storage.BadBlsKey"
