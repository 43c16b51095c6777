"""A hostile peer speaking raw GossipSub RPCs: the honest node bans it and keeps delivering.

Each evil peer is a bare py-libp2p host (no pubsub) that opens a ``/meshsub/1.1.0`` stream to the
node under test and writes hand-made RPC frames, so it can send what a well-behaved py-libp2p
would refuse to: undecodable protobuf, oversized data, forged signatures, frames over 1 MiB,
malformed keys, and well-formed gossip the node's handler rejects. Several of these crash an
unguarded py-libp2p 0.8.1 node outright (one undecodable RPC fails the whole swarm).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import multiaddr
import trio
from libp2p.abc import IHost, INetStream
from libp2p.crypto.ed25519 import create_new_key_pair
from libp2p.peer.id import ID
from libp2p.peer.peerinfo import info_from_p2p_addr
from libp2p.pubsub.gossipsub import PROTOCOL_ID_V11
from libp2p.pubsub.pb import rpc_pb2
from libp2p.pubsub.validators import PUBSUB_SIGNING_PREFIX
from libp2p.utils.varint import encode_uvarint, encode_varint_prefixed

from node.p2p.host import ByteMeter, build_host
from node.p2p.network import Network, Verdict
from tests.p2p.helpers import RecordingHandler, connect_line, start_network, wait_for_mesh, wait_until


class EvilPeer:
    """A raw libp2p host that writes arbitrary pubsub RPC frames to one target."""

    def __init__(self) -> None:
        self.key_pair = create_new_key_pair()
        self.peer_id = ID.from_pubkey(self.key_pair.public_key)
        self.host: IHost = build_host(
            self.key_pair,
            [multiaddr.Multiaddr("/ip4/127.0.0.1/tcp/0")],
            gate=lambda peer, direction: None,
            meter=ByteMeter(),
            max_connections=10,
            enable_mdns=False,
        )
        self._seqno = 0

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        async with self.host.run([multiaddr.Multiaddr("/ip4/127.0.0.1/tcp/0")]):
            task_status.started()
            await trio.sleep_forever()

    async def open(self, target: Network) -> INetStream:
        await self.host.connect(info_from_p2p_addr(multiaddr.Multiaddr(target.listen_addrs[0])))
        return await self.host.new_stream(ID.from_base58(target.peer_id), [PROTOCOL_ID_V11])

    def message(self, topic: str, data: bytes, *, forge: bool = False) -> rpc_pb2.Message:
        self._seqno += 1
        msg = rpc_pb2.Message(
            data=data, topicIDs=[topic], from_id=self.peer_id.to_bytes(), seqno=self._seqno.to_bytes(8, "big")
        )
        signature = self.key_pair.private_key.sign(PUBSUB_SIGNING_PREFIX.encode() + msg.SerializeToString())
        if forge:
            signature = bytes([signature[0] ^ 1]) + signature[1:]
        msg.key = self.key_pair.public_key.serialize()
        msg.signature = signature
        return msg

    @staticmethod
    def frame(*messages: rpc_pb2.Message) -> bytes:
        return encode_varint_prefixed(rpc_pb2.RPC(publish=list(messages)).SerializeToString())


async def attack(
    nursery: trio.Nursery, target: Network, script: Callable[[EvilPeer, INetStream], object]
) -> EvilPeer:
    evil = EvilPeer()
    await nursery.start(evil.run)
    stream = await evil.open(target)
    await script(evil, stream)  # type: ignore[misc]
    return evil


async def test_evil_peers_are_banned_and_honest_gossip_keeps_flowing(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    def judge(topic: str, data: bytes, peer: str) -> Verdict:
        return Verdict.REJECT if data.startswith(b"garbage") else Verdict.ACCEPT

    honest, _ = await start_network(nursery, tmp_path)
    node, node_handler = await start_network(nursery, tmp_path, RecordingHandler(judge=judge))
    observer, observer_handler = await start_network(nursery, tmp_path, RecordingHandler(judge=judge))
    await connect_line([honest, node, observer])
    await wait_for_mesh([honest, node, observer], "tx", {honest: 1, node: 2, observer: 1})
    topic = node.topic("tx")
    sent: list[bytes] = []

    async def honest_traffic() -> None:
        for k in range(60):
            payload = f"honest tx {k}".encode()
            await honest.publish("tx", payload)
            sent.append(payload)
            await trio.sleep(0.01)

    async def undecodable(evil: EvilPeer, stream: INetStream) -> None:
        await stream.write(encode_varint_prefixed(b"\xff\xff\xff\xff not a protobuf"))

    async def oversized(evil: EvilPeer, stream: INetStream) -> None:
        for _ in range(2):  # 600 KB: under py-libp2p's 1 MiB RPC limit, over our 512 KiB gossip limit
            await stream.write(evil.frame(evil.message(topic, os.urandom(600_000))))

    async def forged(evil: EvilPeer, stream: INetStream) -> None:
        for k in range(4):
            await stream.write(evil.frame(evil.message(topic, f"forged {k}".encode(), forge=True)))

    async def malformed_key(evil: EvilPeer, stream: INetStream) -> None:
        # An unparseable key under a from_id that does not embed one makes py-libp2p's signature
        # check raise inside a background task, which would stop the Pubsub service.
        msg = rpc_pb2.Message(
            data=b"x",
            topicIDs=[topic],
            from_id=b"\x01" * 40,
            seqno=b"\x00" * 8,
            key=b"junk",
            signature=b"s" * 64,
        )
        await stream.write(evil.frame(msg))

    async def rejected_content(evil: EvilPeer, stream: INetStream) -> None:
        for k in range(5):
            await stream.write(evil.frame(evil.message(topic, f"garbage {k}".encode())))
            await trio.sleep(0.01)

    async def huge_frames(evil: EvilPeer, stream: INetStream) -> None:
        # A length prefix over 1 MiB: py-libp2p resets the stream; the peer reopens and repeats.
        for _ in range(2):
            try:
                await stream.write(encode_uvarint(2 * 1024 * 1024) + b"\x00" * 1024)
            except Exception:
                pass
            await trio.sleep(0.05)
            try:
                stream = await evil.host.new_stream(ID.from_base58(node.peer_id), [PROTOCOL_ID_V11])
            except Exception:
                return

    async with trio.open_nursery() as scene:
        scene.start_soon(honest_traffic)
        evils: dict[str, EvilPeer] = {}
        for name, script in [
            ("undecodable", undecodable),
            ("oversized", oversized),
            ("forged", forged),
            ("malformed_key", malformed_key),
            ("rejected_content", rejected_content),
            ("huge_frames", huge_frames),
        ]:
            evils[name] = await attack(nursery, node, script)

    banned = {name: node.is_banned(evil.peer_id.to_base58()) for name, evil in evils.items()}
    await wait_until(
        lambda: all(node.is_banned(e.peer_id.to_base58()) for n, e in evils.items() if n != "malformed_key"),
        what=f"bans {banned}",
    )
    assert node.score(evils["malformed_key"].peer_id.to_base58()) < 0
    assert node.running

    # Every honest message reached the node and, through it, the observer, exactly once.
    await wait_until(
        lambda: len(observer_handler.received("tx")) == 60, what="honest traffic at the observer"
    )
    # The node's handler saw the honest messages once each, plus only the well-formed evil
    # messages it rejected itself: nothing forged, oversized or undecodable got that far.
    assert node_handler.received("tx") == {p: 1 for p in sent} | {
        f"garbage {k}".encode(): 1 for k in range(5)
    }
    assert observer_handler.received("tx") == {p: 1 for p in sent}
    assert node.gossip_counters["tx"].rejected >= 2 + 5  # oversized + rejected content

    # Banned peers stay out.
    evil = evils["undecodable"]
    try:
        await evil.host.connect(info_from_p2p_addr(multiaddr.Multiaddr(node.listen_addrs[0])))
    except Exception:
        pass
    await trio.sleep(0.2)
    assert not node.is_connected(evil.peer_id.to_base58())
    still_there = {honest.peer_id, observer.peer_id, evils["malformed_key"].peer_id.to_base58()}
    assert {p.peer_id for p in node.peers()} == still_there  # one penalty is not a ban
