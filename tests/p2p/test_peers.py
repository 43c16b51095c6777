"""Peer management: bans, blocks (partitions), limits, reserved nodes, reserved-only mode."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import trio

from node.p2p.network import Network, NetworkError, PeerRefused, RequestFailed
from node.p2p.scoring import PENALTY_INVALID_GOSSIP
from tests.p2p.helpers import (
    SYNC,
    start_network,
    wait_for_mesh,
    wait_until,
)


async def try_connect(network: Network, addr: str) -> None:
    """Dial and ignore the outcome (the refusing side decides; the dialer may see either)."""
    try:
        await network.connect(addr)
    except NetworkError:
        pass


async def test_penalties_ban_a_peer_in_both_directions_until_the_ban_expires(
    nursery: trio.Nursery, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    a, a_handler = await start_network(nursery, tmp_path, ban_seconds=1.0)
    b, _ = await start_network(nursery, tmp_path)
    await b.connect(a.listen_addrs[0])
    await wait_until(lambda: a.is_connected(b.peer_id), what="A to see B")
    caplog.set_level(logging.WARNING, logger="node.p2p.network")

    for _ in range(4):
        a.report(b.peer_id, PENALTY_INVALID_GOSSIP, "test says so")
    assert not a.is_banned(b.peer_id) and a.is_connected(b.peer_id)
    assert f"peer {b.peer_id} penalised: test says so" in caplog.text
    a.report(b.peer_id, PENALTY_INVALID_GOSSIP, "fifth strike")
    assert a.is_banned(b.peer_id) and a.banned_peers() == [b.peer_id]
    await wait_until(
        lambda: not a.is_connected(b.peer_id) and not b.is_connected(a.peer_id), what="disconnect"
    )
    assert a_handler.disconnected == [b.peer_id]

    # Refused whoever dials, and no requests either way.
    with pytest.raises(PeerRefused):
        await a.connect(b.listen_addrs[0])
    await try_connect(b, a.listen_addrs[0])
    await trio.sleep(0.2)
    assert not a.is_connected(b.peer_id)
    assert a_handler.connected == [b.peer_id]
    with pytest.raises(RequestFailed, match="banned"):
        await a.request(b.peer_id, SYNC, b"x")

    await wait_until(lambda: not a.is_banned(b.peer_id), timeout=3, what="ban expiry")
    assert a.score(b.peer_id) == 0
    await b.connect(a.listen_addrs[0])
    await wait_until(lambda: a.is_connected(b.peer_id), what="reconnection after the ban")


async def test_block_peer_partitions_and_unblock_heals(nursery: trio.Nursery, tmp_path: Path) -> None:
    """A 2|2 partition of a full mesh: gossip stays on each side; after healing it reaches all."""
    nodes = [await start_network(nursery, tmp_path) for _ in range(4)]
    networks = [n for n, _ in nodes]
    for i, network in enumerate(networks):
        for other in networks[:i]:
            await network.connect(other.listen_addrs[0])
    await wait_for_mesh(networks, "blocks", {n: 3 for n in networks})
    left, right = networks[:2], networks[2:]

    for x in left:
        for y in right:
            x.block_peer(y.peer_id)
            y.block_peer(x.peer_id)
    await wait_until(lambda: all(len(n.peers()) == 1 for n in networks), what="the partition")
    await left[0].publish("blocks", b"left side")
    await right[0].publish("blocks", b"right side")
    await wait_until(lambda: b"left side" in nodes[1][1].received("blocks"), what="left gossip on the left")
    await wait_until(
        lambda: b"right side" in nodes[3][1].received("blocks"), what="right gossip on the right"
    )
    await trio.sleep(0.3)
    for _, handler in nodes[2:]:
        assert b"left side" not in handler.received("blocks")
    for _, handler in nodes[:2]:
        assert b"right side" not in handler.received("blocks")

    for x in left:
        for y in right:
            x.unblock_peer(y.peer_id)
            y.unblock_peer(x.peer_id)
    await wait_until(lambda: all(len(n.peers()) == 3 for n in networks), what="the heal")
    await wait_for_mesh(networks, "blocks", {n: 3 for n in networks})
    await left[0].publish("blocks", b"after heal")
    await wait_until(
        lambda: all(b"after heal" in h.received("blocks") for _, h in nodes[1:]),
        what="gossip across the heal",
    )


async def test_inbound_limit(nursery: trio.Nursery, tmp_path: Path) -> None:
    server, server_handler = await start_network(nursery, tmp_path, max_inbound=2)
    clients = [await start_network(nursery, tmp_path) for _ in range(3)]
    for client, _ in clients:
        await try_connect(client, server.listen_addrs[0])
    await wait_until(
        lambda: sum(c.is_connected(server.peer_id) for c, _ in clients) == 2, what="two clients connected"
    )
    await trio.sleep(0.3)
    assert len(server.peers()) == 2
    assert {p.direction for p in server.peers()} == {"inbound"}
    assert len(server_handler.connected) == 2  # the refused one was never announced to the node


async def test_reserved_node_is_exempt_from_limits_and_redialed(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    """A reserved node is dialed at start despite max_outbound=0, and redialed after it restarts."""
    reserved_nursery = trio.CancelScope()
    reserved_path = tmp_path / "reserved"

    async def run_reserved(port: int, task_status: trio.TaskStatus[Network]) -> None:
        with reserved_nursery:
            async with trio.open_nursery() as inner:
                network, _ = await start_network(
                    inner, reserved_path.parent, name="reserved", listen_addrs=[f"/ip4/127.0.0.1/tcp/{port}"]
                )
                task_status.started(network)
                await trio.sleep_forever()

    reserved: Network = await nursery.start(run_reserved, 0)
    addr = reserved.listen_addrs[0]
    port = int(addr.split("/tcp/")[1].split("/")[0])
    node, handler = await start_network(
        nursery, tmp_path, max_outbound=0, max_inbound=0, reserved_nodes=[addr]
    )
    await wait_until(lambda: node.is_connected(reserved.peer_id), what="the reserved node dialed at start")
    assert node.peers()[0].reserved

    reserved_nursery.cancel()
    await wait_until(lambda: not reserved.running, what="the reserved node to stop")
    await wait_until(lambda: not node.is_connected(reserved.peer_id), what="the reserved node to go away")
    reserved_nursery = trio.CancelScope()
    restarted: Network = await nursery.start(run_reserved, port)
    assert restarted.peer_id == reserved.peer_id  # same key from the same base path
    await wait_until(lambda: node.is_connected(reserved.peer_id), timeout=10, what="the redial")
    assert handler.connected == [reserved.peer_id, reserved.peer_id]


async def test_connect_respects_max_outbound(nursery: trio.Nursery, tmp_path: Path) -> None:
    node, _ = await start_network(nursery, tmp_path, max_outbound=1)
    a, _ = await start_network(nursery, tmp_path)
    b, _ = await start_network(nursery, tmp_path)
    assert await node.connect(a.listen_addrs[0]) == a.peer_id
    assert await node.connect(a.listen_addrs[0]) == a.peer_id  # already connected: fine
    with pytest.raises(PeerRefused, match="outbound peer limit"):
        await node.connect(b.listen_addrs[0])
    with pytest.raises(ValueError):
        await node.connect(node.listen_addrs[0])
    with pytest.raises(ValueError, match="/p2p/"):
        await node.connect("/ip4/127.0.0.1/tcp/1")


async def test_reserved_only_refuses_everyone_else(nursery: trio.Nursery, tmp_path: Path) -> None:
    friend, _ = await start_network(nursery, tmp_path)
    stranger, _ = await start_network(nursery, tmp_path)
    node, _ = await start_network(
        nursery, tmp_path, reserved_only=True, reserved_nodes=[friend.listen_addrs[0]]
    )
    await wait_until(lambda: node.is_connected(friend.peer_id), what="the reserved node")
    await try_connect(stranger, node.listen_addrs[0])
    with pytest.raises(PeerRefused):
        await node.connect(stranger.listen_addrs[0])
    await trio.sleep(0.2)
    assert [p.peer_id for p in node.peers()] == [friend.peer_id]
