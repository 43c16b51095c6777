"""Helpers for the p2p tests: a recording handler, node configs on port 0, polling waits.

Every test runs real py-libp2p hosts on 127.0.0.1 inside the test's own trio run. Nothing sleeps
for a fixed time to "let things settle": tests poll a condition with a deadline (`wait_until`), so
they are as fast as the network allows and fail with a clear message when it never happens.
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import trio

from node.p2p.config import NetworkConfig
from node.p2p.network import Network, RequestRejected, Verdict

GENESIS = bytes(range(32))
SYNC = "/imagechain/sync/1"

_names = itertools.count()


@dataclass
class RecordingHandler:
    """A `NetworkHandler` that records what it sees and decides verdicts with `judge`."""

    name: str = "node"
    judge: Callable[[str, bytes, str], Verdict] = lambda topic, data, peer: Verdict.ACCEPT
    respond: Callable[[str, bytes, str], Awaitable[bytes]] | None = None
    gossip: list[tuple[str, bytes, str]] = field(default_factory=list)
    connected: list[str] = field(default_factory=list)
    disconnected: list[str] = field(default_factory=list)
    gossip_delay: float = 0.0

    async def on_gossip(self, topic: str, data: bytes, peer_id: str) -> Verdict:
        if self.gossip_delay:
            await trio.sleep(self.gossip_delay)
        self.gossip.append((topic, data, peer_id))
        return self.judge(topic, data, peer_id)

    async def on_request(self, protocol: str, data: bytes, peer_id: str) -> bytes:
        if self.respond is not None:
            return await self.respond(protocol, data, peer_id)
        if data.startswith(b"bad"):
            raise RequestRejected("requests must not start with 'bad'")
        return b"echo:" + data

    def on_peer_connected(self, peer_id: str) -> None:
        self.connected.append(peer_id)

    def on_peer_disconnected(self, peer_id: str) -> None:
        self.disconnected.append(peer_id)

    def received(self, topic: str) -> Counter[bytes]:
        """How many times each payload reached the handler on a topic."""
        return Counter(data for t, data, _ in self.gossip if t == topic)


def make_config(tmp_path: Path, name: str | None = None, **overrides: object) -> NetworkConfig:
    """A config listening on a free port of 127.0.0.1, DHT off unless asked for (it turns small
    test networks into full meshes, which would hide topology effects)."""
    name = name or f"n{next(_names)}"
    settings: dict[str, object] = {
        "listen_addrs": ["/ip4/127.0.0.1/tcp/0"],
        "enable_dht": False,
        "maintenance_interval": 0.2,
    }
    settings.update(overrides)
    return NetworkConfig(base_path=tmp_path / name, genesis_hash=GENESIS, **settings)  # type: ignore[arg-type]


async def start_network(
    nursery: trio.Nursery, tmp_path: Path, handler: RecordingHandler | None = None, **overrides: object
) -> tuple[Network, RecordingHandler]:
    """Create a Network serving SYNC, start it in ``nursery`` and return it once it listens."""
    handler = handler or RecordingHandler()
    network = Network(make_config(tmp_path, **overrides), handler)
    network.register_protocol(SYNC)
    await nursery.start(network.run)
    return network, handler


async def wait_until(condition: Callable[[], bool], timeout: float = 10.0, what: str = "condition") -> None:
    """Poll ``condition`` every 10 ms until true; fail the test after ``timeout`` seconds."""
    with trio.move_on_after(timeout):
        while not condition():
            await trio.sleep(0.01)
        return
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


async def connect_line(networks: list[Network]) -> None:
    """Connect n0 - n1 - n2 - ... (each dials its predecessor)."""
    for previous, network in itertools.pairwise(networks):
        await network.connect(previous.listen_addrs[0])


async def wait_for_mesh(networks: list[Network], topic: str, degree: dict[Network, int]) -> None:
    """Wait until each network's GossipSub mesh on ``topic`` has the given number of peers."""
    await wait_until(
        lambda: all(len(n.mesh_peers(topic)) >= degree[n] for n in networks),
        what=f"{topic} mesh {[len(n.mesh_peers(topic)) for n in networks]}",
    )
