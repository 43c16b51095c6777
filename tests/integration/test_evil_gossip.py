"""A hostile peer against a real node process: garbage, oversized and badly signed gossip.

The node (a networked single-authority chain, so it finalizes on its own) must keep authoring
and finalizing, log the offending peer by id, and ban it.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import trio
from libp2p.network.stream.exceptions import StreamError

from devnet.harness import Network, eventually
from node.keys import dev_keypair
from node.p2p.gossip import full_topic
from node.runtime.runtime import SPEC_VERSION
from node.types import Mortality, SignedExtra, sign_extrinsic
from tests.chainutil import IMG, transfer_call
from tests.p2p.test_evil import EvilPeer

pytestmark = pytest.mark.slow


@dataclass
class Target:
    """What `EvilPeer.open` needs to know about the node under attack."""

    peer_id: str
    listen_addrs: list[str]


async def test_hostile_gossip_is_rejected_and_its_sender_banned(tmp_path):
    net = Network(tmp_path, validators=1, slot_ms=1000)
    net.start_all()
    node = net.nodes[0]
    try:
        client = node.client
        genesis = client.genesis_hash()
        target = Target(net.peer_id(node), client.call("system_localListenAddresses"))
        blocks, txs = full_topic(genesis, "blocks"), full_topic(genesis, "tx")
        # A well-formed transaction with a broken signature.
        extra = SignedExtra(genesis, SPEC_VERSION, 0, 0, Mortality.from_genesis(genesis))
        good = sign_extrinsic(dev_keypair("//Bob"), transfer_call(dev_keypair("//Eve").account_id, IMG), extra)
        bad_signature = good.encode()[:-20] + bytes(20)
        finalized_before = net.heads(node)[1]

        async with trio.open_nursery() as nursery:
            evil = EvilPeer()
            await nursery.start(evil.run)
            stream = await evil.open(target)
            attacks = [
                evil.frame(evil.message(txs, bad_signature)),  # a transaction with a broken signature
                evil.frame(evil.message(txs, good.encode(), forge=True)),  # a forged gossip envelope
                evil.frame(evil.message(blocks, b"\x93not a block")),  # undecodable block
                evil.frame(evil.message(blocks, b"\x00" * (600 * 1024))),  # oversized
                *[evil.frame(evil.message(blocks, b"junk %d" % i)) for i in range(10)],
                b"\x05garbage",  # not a protobuf RPC at all
            ]
            sent = 0
            for attack in attacks:
                try:
                    await stream.write(attack)
                    sent += 1
                    await trio.sleep(0.05)
                except StreamError:
                    break  # the node cut us off: what it should do
            assert sent >= 3
            await trio.sleep(2)
            nursery.cancel_scope.cancel()

        evil_id = evil.peer_id.to_base58()
        eventually(lambda: f"peer {evil_id} banned" in node.log(), 20, "the ban to be logged")
        assert f"peer {evil_id} penalised" in node.log()
        assert evil_id not in [p["peerId"] for p in client.call("system_peers")]
        # The node is unharmed: it keeps authoring and finalizing, and takes honest transactions.
        eventually(lambda: net.heads(node)[1] >= finalized_before + 3, 30, "finality after the attack")
        client.submit(good.encode())
        eventually(lambda: client.next_nonce(dev_keypair("//Bob").account_id) == 1 and not client.pending(),
                   20, "an honest transfer after the attack")
    finally:
        net.stop_all()
