"""Kademlia discovery: a late joiner that knows one bootnode finds and connects to the rest."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio

from tests.p2p.helpers import start_network, wait_for_mesh, wait_until


async def test_late_joiner_discovers_peers_through_one_bootnode(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    boot, _ = await start_network(nursery, tmp_path, enable_dht=True)
    others = [
        await start_network(nursery, tmp_path, enable_dht=True, bootnodes=[boot.listen_addrs[0]])
        for _ in range(2)
    ]
    for network, _ in others:
        await wait_until(lambda n=network: n.is_connected(boot.peer_id), what="bootnode connection")

    late, late_handler = await start_network(
        nursery, tmp_path, enable_dht=True, bootnodes=[boot.listen_addrs[0]]
    )
    everyone = {boot.peer_id} | {n.peer_id for n, _ in others}
    await wait_until(
        lambda: {p.peer_id for p in late.peers()} == everyone, what="discovery of the other peers"
    )
    # Every node was configured with the bootnode only, so these connections came from addresses
    # learnt through the DHT. (Which side's dial survives is not asserted: when two peers dial each
    # other, the connection dialed by the smaller peer id is kept.)

    # Discovered peers are full gossip peers.
    await wait_for_mesh([late], "tx", {late: 3})
    await others[1][0].publish("tx", b"hello late joiner")
    await wait_until(
        lambda: b"hello late joiner" in late_handler.received("tx"), what="gossip from a discovered peer"
    )


@pytest.mark.slow
async def test_discovery_respects_max_outbound(nursery: trio.Nursery, tmp_path: Path) -> None:
    boot, _ = await start_network(nursery, tmp_path, enable_dht=True)
    others = [
        await start_network(nursery, tmp_path, enable_dht=True, bootnodes=[boot.listen_addrs[0]])
        for _ in range(3)
    ]
    for network, _ in others:
        await wait_until(lambda n=network: n.is_connected(boot.peer_id), what="bootnode connection")

    late, _ = await start_network(
        nursery,
        tmp_path,
        enable_dht=True,
        bootnodes=[boot.listen_addrs[0]],
        max_outbound=2,
        max_inbound=0,
        outbound_grace_seconds=0.5,
    )
    await wait_until(lambda: len(late.known_peers()) >= 4, what="the DHT to reveal the other peers")
    await wait_until(lambda: late.stats()["outbound"] == 2, what="two outbound connections")
    await trio.sleep(1.0)  # past the grace period and several maintenance ticks
    assert late.stats()["outbound"] == 2
    assert len(late.peers()) == 2  # the others discovered us too, but max_inbound=0 turns them away
