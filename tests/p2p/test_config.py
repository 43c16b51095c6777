"""Node key persistence, config validation, multiaddr parsing; no network needed except one restart."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
import trio

from node.p2p.config import NetworkConfig, load_or_create_node_key, node_key_path, peer_id_of
from node.p2p.network import Network, parse_peer_multiaddr
from tests.p2p.helpers import GENESIS, RecordingHandler, make_config, start_network


def test_node_key_is_created_once_with_mode_0600(tmp_path: Path) -> None:
    first = load_or_create_node_key(tmp_path)
    path = node_key_path(tmp_path)
    assert path == tmp_path / "network" / "secret_ed25519"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(path.read_bytes()) == 32
    again = load_or_create_node_key(tmp_path)
    assert peer_id_of(again) == peer_id_of(first)
    assert peer_id_of(first).startswith("12D3KooW")  # ed25519 identity
    assert peer_id_of(load_or_create_node_key(tmp_path / "other")) != peer_id_of(first)


def test_a_damaged_key_file_is_an_error_not_a_new_identity(tmp_path: Path) -> None:
    path = node_key_path(tmp_path)
    path.parent.mkdir(parents=True)
    path.write_bytes(b"short")
    with pytest.raises(ValueError, match="32-byte"):
        load_or_create_node_key(tmp_path)
    assert path.read_bytes() == b"short"


async def test_restart_keeps_the_peer_id_and_frees_the_port(nursery: trio.Nursery, tmp_path: Path) -> None:
    """A node stopped by cancellation (with a live connection) can restart on the same port at
    once, under the same peer id, and its peers reconnect to it."""
    other, _ = await start_network(nursery, tmp_path)
    ids, listen = [], ["/ip4/127.0.0.1/tcp/0"]
    for _ in range(2):
        async with trio.open_nursery() as inner:
            network, _ = await start_network(inner, tmp_path, name="restart", listen_addrs=listen)
            ids.append(network.peer_id)
            assert network.listen_addrs[0].endswith(f"/p2p/{network.peer_id}")
            await other.connect(network.listen_addrs[0])
            listen = [network.listen_addrs[0].split("/p2p/")[0]]
            inner.cancel_scope.cancel()
        assert not network.running and network.listen_addrs == []
    assert ids[0] == ids[1] == Network(make_config(tmp_path, name="restart"), RecordingHandler()).peer_id


def test_config_validation(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        NetworkConfig(base_path=tmp_path, genesis_hash=b"short")
    with pytest.raises(ValueError, match="1 MiB"):
        NetworkConfig(base_path=tmp_path, genesis_hash=GENESIS, max_gossip_bytes=2 * 1024 * 1024)
    config = NetworkConfig(base_path=str(tmp_path), genesis_hash=GENESIS)  # type: ignore[arg-type]
    assert config.base_path == tmp_path
    assert config.listen_addrs == ["/ip4/127.0.0.1/tcp/30333"]
    with pytest.raises(ValueError, match="/p2p/"):
        Network(make_config(tmp_path, bootnodes=["/ip4/127.0.0.1/tcp/30333"]), RecordingHandler())


def test_parse_peer_multiaddr() -> None:
    peer = "12D3KooWEjk1WpKmJ9R2jLfYGT8AHBXGsJBS82CtppFaRJz5wNQg"
    peer_id, addr = parse_peer_multiaddr(f"/ip4/127.0.0.1/tcp/4001/p2p/{peer}")
    assert peer_id == peer and str(addr) == "/ip4/127.0.0.1/tcp/4001"
    for bad in ("garbage", "/ip4/127.0.0.1/tcp/4001", "/ip4/127.0.0.1/tcp/4001/p2p/notapeer"):
        with pytest.raises(ValueError):
            parse_peer_multiaddr(bad)


async def test_a_busy_port_is_an_error(nursery: trio.Nursery, tmp_path: Path) -> None:
    """py-libp2p binds with SO_REUSEPORT and would happily share the port with another node."""
    first, _ = await start_network(nursery, tmp_path)
    port = first.listen_addrs[0].split("/tcp/")[1].split("/")[0]
    second = Network(make_config(tmp_path, listen_addrs=[f"/ip4/127.0.0.1/tcp/{port}"]), RecordingHandler())
    with pytest.raises(OSError, match="Address already in use"):
        await second.run()
    assert not second.running
