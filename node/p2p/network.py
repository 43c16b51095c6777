"""`Network`: the node's libp2p service, composed of one part per concern.

The node runs ``Network.run`` in its trio nursery and talks to it through a handful of methods;
everything py-libp2p-specific stays behind this class. The parts, each in its own module:

* `node.p2p.host`: building the py-libp2p host and pubsub, and every workaround they need;
* `node.p2p.connections`: the connections we keep, limits per direction, reserved nodes, the gate;
* `node.p2p.discovery`: the address book, dials with backoff, bootnodes and the Kademlia DHT;
* `node.p2p.gossip`: the topics, validation before forwarding, publishing with backpressure;
* `node.p2p.reqresp`: the request-response wire format, server and client;
* `node.p2p.scoring`: peer scores, timed bans and manual blocks.

This class builds and runs them, and does what touches several at once: a ban (score, DHT,
connection), a block or unblock, `connect`, a request, the maintenance tick (ban expiry, reserved
redial, trimming, top-up), the peer list and the stats.
"""

from __future__ import annotations

import logging
from contextlib import AsyncExitStack
from typing import Any

import multiaddr
import trio
from libp2p.abc import IHost
from libp2p.custom_types import TProtocol
from libp2p.kad_dht import DHTMode, KadDHT
from libp2p.peer.id import ID
from libp2p.tools.anyio_service import background_trio_service

from node.p2p.api import (
    GossipTooLarge,
    NetworkError,
    NetworkHandler,
    NetworkNotRunning,
    PeerInfo,
    PeerRefused,
    RequestFailed,
    RequestRejected,
    RequestRejectedByPeer,
    RequestTimeout,
    UnknownTopic,
    UnsupportedProtocol,
    Verdict,
)
from node.p2p.config import NetworkConfig, load_or_create_node_key, parse_peer_multiaddr, peer_id_of
from node.p2p.connections import Connections
from node.p2p.discovery import Discovery
from node.p2p.gossip import TOPICS, Gossip, GossipCounters
from node.p2p.host import (
    ByteMeter,
    GuardedPubsub,
    build_gossipsub,
    build_host,
    cache_advertised_addrs,
    check_port_free,
    close_host,
    guard_stream_handlers,
)
from node.p2p.reqresp import RequestServer, send_request
from node.p2p.scoring import PeerScores

__all__ = [
    "TOPICS",
    "GossipTooLarge",
    "Network",
    "NetworkConfig",
    "NetworkError",
    "NetworkHandler",
    "NetworkNotRunning",
    "PeerInfo",
    "PeerRefused",
    "RequestFailed",
    "RequestRejected",
    "RequestRejectedByPeer",
    "RequestTimeout",
    "UnknownTopic",
    "UnsupportedProtocol",
    "Verdict",
    "parse_peer_multiaddr",
]

log = logging.getLogger(__name__)

# Extra connections py-libp2p may hold beyond our limits (DHT queries in their grace period).
_CONNECTION_SLACK = 16


class Network:
    """The node's p2p service. Create it, run `run()` in a nursery, then use the methods.

    All methods are called from the same trio run as `run()`. Counters (`bytes_in`, `bytes_out`,
    `gossip_counters`, `stats()`) are plain attributes meant for the informant and Prometheus.
    """

    def __init__(self, config: NetworkConfig, handler: NetworkHandler) -> None:
        self.config = config
        self._handler = handler
        self._key_pair = load_or_create_node_key(config.base_path)
        self.peer_id: str = peer_id_of(self._key_pair)
        self._listen_maddrs = [multiaddr.Multiaddr(a) for a in config.listen_addrs]
        bootnodes = [parse_peer_multiaddr(a) for a in config.bootnodes]
        self._reserved = dict(parse_peer_multiaddr(a) for a in config.reserved_nodes)
        self._scores = PeerScores(
            ban_threshold=config.ban_threshold,
            ban_seconds=config.ban_seconds,
            half_life=config.score_half_life,
        )
        self._meter = ByteMeter()  # bandwidth, counted on every Noise session of the host
        self._connections = Connections(
            config,
            self.peer_id,
            reserved=self._reserved,
            scores=self._scores,
            on_admitted=self._on_admitted,
            on_closed=self._on_closed,
        )
        self._discovery = Discovery(
            config,
            self.peer_id,
            bootnodes=bootnodes,
            reserved=self._reserved,
            connections=self._connections,
        )
        self._gossip = Gossip(
            config,
            self.peer_id,
            on_gossip=handler.on_gossip,
            penalise=self.report,
            refuses=self._connections.refuses,
        )
        self._protocols: set[str] = set()
        self._requests = RequestServer(
            handler,
            penalise=self.report,
            refuses=self._connections.refuses,
            timeout=config.request_timeout,
            max_request_bytes=config.max_request_bytes,
            max_response_bytes=config.max_response_bytes,
            max_concurrent=config.max_concurrent_requests,
        )
        self._host: IHost | None = None
        self._nursery: trio.Nursery | None = None
        self._in_run = False
        self.listen_addrs: list[str] = []

    # ----------------------------------------------------------------- lifecycle

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Start host, pubsub, GossipSub, DHT and handlers; report started once listening; run until
        cancelled, then shut everything down (connections closed, port released)."""
        if self._in_run:
            raise RuntimeError("Network.run() is already running")
        self._in_run = True
        try:
            await self._run(task_status)
        finally:
            self._in_run = False

    async def _run(self, task_status: trio.TaskStatus[None]) -> None:
        cfg = self.config
        for addr in self._listen_maddrs:
            check_port_free(addr)
        host = build_host(
            self._key_pair,
            self._listen_maddrs,
            gate=self._connections.gate,
            meter=self._meter,
            max_connections=cfg.max_inbound + cfg.max_outbound + len(self._reserved) + _CONNECTION_SLACK,
            enable_mdns=cfg.enable_mdns,
        )
        gossipsub = build_gossipsub()
        pubsub = GuardedPubsub(
            host,
            gossipsub,
            penalise=self.report,
            outbound_queue_size=cfg.outbound_queue_size,
            max_concurrent_validators=cfg.gossip_queue_size * len(TOPICS) + 64,
            validation_timeout=max(30.0, cfg.request_timeout),
        )
        dht = KadDHT(host, DHTMode.SERVER) if cfg.enable_dht and not cfg.reserved_only else None
        for protocol in self._protocols:
            host.set_stream_handler(TProtocol(protocol), self._requests.handle_stream)
        guard_stream_handlers(host, self.report)
        host.get_network().register_notifee(self._connections.notifee())
        try:
            async with AsyncExitStack() as stack:
                await stack.enter_async_context(host.run(self._listen_maddrs))
                stack.push_async_callback(close_host, host)  # after pubsub/DHT stop, before host.run exits
                if not host.get_transport_addrs():  # py-libp2p logs listen failures and carries on
                    raise OSError(f"could not listen on any of {', '.join(cfg.listen_addrs)}")
                cache_advertised_addrs(host)
                await stack.enter_async_context(background_trio_service(pubsub))
                await stack.enter_async_context(background_trio_service(gossipsub))
                if dht is not None:
                    await stack.enter_async_context(background_trio_service(dht))
                await pubsub.wait_until_ready()
                async with trio.open_nursery() as nursery:
                    self._host, self._nursery = host, nursery
                    self._connections.attach(host, nursery)
                    self._discovery.attach(host, dht, nursery)
                    await self._gossip.start(pubsub, nursery)
                    self.listen_addrs = [str(a) for a in host.get_addrs()]
                    log.info("p2p listening on %s", ", ".join(self.listen_addrs))
                    task_status.started()
                    nursery.start_soon(self._discovery.bootstrap)
                    nursery.start_soon(self._maintenance_loop)
                    await trio.sleep_forever()
        finally:
            self._host = self._nursery = None
            self._gossip.detach()
            self._discovery.detach()
            self._connections.detach()
            self.listen_addrs = []

    @property
    def running(self) -> bool:
        return self._nursery is not None

    async def _maintenance_loop(self) -> None:
        while True:
            try:
                self._maintain()
            except Exception:
                log.exception("peer maintenance failed")
            await trio.sleep(self.config.maintenance_interval)

    def _maintain(self) -> None:
        """One tick: end expired bans, redial reserved nodes, trim and top up outbound connections."""
        for peer_id in self._scores.expire():
            log.info("ban of peer %s expired", peer_id)
            self._discovery.clear_dial_failures(peer_id)
        now = trio.current_time()
        self._discovery.redial_reserved(now)
        self._connections.trim_outbound()
        self._discovery.top_up(now)

    def _on_admitted(self, peer_id: str) -> None:
        try:
            self._handler.on_peer_connected(peer_id)
        except Exception:
            log.exception("on_peer_connected(%s) raised", peer_id)
        self._discovery.on_admitted(peer_id)

    def _on_closed(self, peer_id: str, lived: float) -> None:
        self._discovery.note_closed(peer_id, lived)
        try:
            self._handler.on_peer_disconnected(peer_id)
        except Exception:
            log.exception("on_peer_disconnected(%s) raised", peer_id)

    def _require_host(self) -> IHost:
        if self._host is None:
            raise NetworkNotRunning("the network is not running")
        return self._host

    # ----------------------------------------------------------------- gossip

    def topic(self, name: str) -> str:
        """Full topic string of a short name ("blocks" -> "/imagechain/<genesis>/blocks")."""
        return self._gossip.topic(name)

    async def publish(self, topic: str, data: bytes) -> None:
        """Sign and gossip ``data`` on a topic ("blocks", "tx", "votes", "tickets").

        Raises `GossipTooLarge` over `max_gossip_bytes` (py-libp2p would drop it silently). If a
        recipient's outbound queue is nearly full, waits (up to 2 s) for it to drain instead of
        letting py-libp2p drop the message. Identical data published twice travels once (message
        ids are content hashes).
        """
        await self._gossip.publish(topic, data)

    @property
    def gossip_counters(self) -> dict[str, GossipCounters]:
        """Per-topic counters keyed by short topic name."""
        return self._gossip.counters

    def topic_peers(self, topic: str) -> list[str]:
        """Connected peers subscribed to a topic (GossipSub knows them from their announcements)."""
        return self._gossip.topic_peers(topic)

    def mesh_peers(self, topic: str) -> list[str]:
        """Peers in our GossipSub mesh for a topic (they receive everything we publish on it)."""
        return self._gossip.mesh_peers(topic)

    # ----------------------------------------------------------------- request-response

    def register_protocol(self, protocol: str) -> None:
        """Serve a request-response protocol (e.g. "/imagechain/sync/1") via `handler.on_request`."""
        if not protocol.startswith("/"):
            raise ValueError(f"protocol ids start with '/': {protocol!r}")
        self._protocols.add(protocol)
        if self._host is not None:
            self._host.set_stream_handler(TProtocol(protocol), self._requests.handle_stream)

    async def request(self, peer_id: str, protocol: str, data: bytes, timeout: float = 10.0) -> bytes:
        """Send one request and return the response.

        Raises `RequestFailed` (or a subclass: `RequestTimeout`, `UnsupportedProtocol`,
        `RequestRejectedByPeer`) when no valid response arrives, for any reason.
        """
        host = self._require_host()
        if self._connections.refuses(peer_id):
            raise RequestFailed(f"peer {peer_id} is banned or blocked")
        self._discovery.add_known_addrs_to_peerstore(peer_id)
        return await send_request(
            host.new_stream,
            peer_id,
            protocol,
            data,
            timeout=timeout,
            max_request_bytes=self.config.max_request_bytes,
            max_response_bytes=self.config.max_response_bytes,
        )

    # ----------------------------------------------------------------- provider records (DHT)

    async def provide(self, key: bytes) -> bool:
        """Announce in the Kademlia DHT that this node holds `key` (a multihash; see
        `Discovery.provide`). False without a DHT or when no peer took the record."""
        self._require_host()
        return await self._discovery.provide(key) > 0

    def stop_providing(self, key: bytes) -> None:
        self._discovery.stop_providing(key)

    async def find_providers(self, key: bytes, count: int = 20, timeout: float = 10.0) -> list[str]:
        """Peer ids with a provider record for `key` (not checked to be alive), at most `count`."""
        self._require_host()
        return await self._discovery.find_providers(key, count, timeout)

    # ----------------------------------------------------------------- peers

    def peers(self) -> list[PeerInfo]:
        """Connected peers that passed admission, with direction, score and addresses."""
        return [
            PeerInfo(
                peer_id=peer_id,
                addrs=self._discovery.peer_addrs(peer_id),
                direction=conn.direction,
                score=self._scores.score(peer_id),
                connected_since=conn.since,
                reserved=peer_id in self._reserved,
            )
            for peer_id, conn in self._connections.items()
        ]

    def is_connected(self, peer_id: str) -> bool:
        return self._connections.is_connected(peer_id)

    def known_peers(self) -> list[str]:
        """Peers we have an address for (bootnodes, reserved, connected, discovered)."""
        return self._discovery.known_peers()

    async def connect(self, addr: str) -> str:
        """Dial a full multiaddr (ending in /p2p/<id>) and return the peer id once connected.

        Counts as an outbound connection: refused with `PeerRefused` when the peer is banned or
        blocked or the outbound limit is reached (reserved nodes are exempt).
        """
        peer_id, maddr = parse_peer_multiaddr(addr)
        self._require_host()
        if peer_id == self.peer_id:
            raise ValueError("cannot connect to ourselves")
        if self._connections.refuses(peer_id):
            raise PeerRefused(f"peer {peer_id} is banned or blocked")
        self._discovery.remember(peer_id, maddr)
        if self.is_connected(peer_id):
            return peer_id
        if peer_id not in self._reserved and self._connections.outbound_count() >= self.config.max_outbound:
            raise PeerRefused(f"outbound peer limit ({self.config.max_outbound}) reached")
        self._discovery.clear_dial_failures(peer_id)
        error = await self._discovery.dial(peer_id)
        if error is not None:
            raise NetworkError(f"could not connect to {addr}: {error}")
        # The limits are applied in the connection event; report a refusal there as an error.
        if not self.is_connected(peer_id):
            raise PeerRefused(f"connection to {peer_id} was closed right after it opened")
        return peer_id

    async def disconnect(self, peer_id: str) -> None:
        """Close the connection to a peer (it may reconnect; use `block_peer` to prevent that)."""
        host = self._require_host()
        await host.disconnect(ID.from_base58(peer_id))

    # ----------------------------------------------------------------- scores and bans

    def score(self, peer_id: str) -> int:
        return self._scores.score(peer_id)

    def is_banned(self, peer_id: str) -> bool:
        return self._scores.is_banned(peer_id)

    def banned_peers(self) -> list[str]:
        return self._scores.banned_peers()

    def report(self, peer_id: str, penalty: int, reason: str) -> None:
        """Lower a peer's score; at the ban threshold disconnect it and refuse it for `ban_seconds`."""
        if peer_id == self.peer_id or penalty <= 0:
            return
        if self._scores.is_banned(peer_id):
            return  # the rest of a burst already in flight; the ban stands
        log.warning("peer %s penalised: %s", peer_id, reason)
        if self._scores.penalise(peer_id, penalty):
            log.warning(
                "peer %s banned for %.0f s (score at or below %d)",
                peer_id,
                self.config.ban_seconds,
                self.config.ban_threshold,
            )
            self._discovery.forget_in_dht(peer_id)
            self._connections.disconnect_soon(peer_id, "banned")

    def unban(self, peer_id: str) -> None:
        """Lift a score ban early (operator action)."""
        self._scores.unban(peer_id)
        self._discovery.clear_dial_failures(peer_id)

    def block_peer(self, peer_id: str) -> None:
        """Disconnect and refuse the peer in both directions until `unblock_peer` (partition tests)."""
        self._scores.block(peer_id)
        self._connections.disconnect_soon(peer_id, "blocked")

    def unblock_peer(self, peer_id: str) -> None:
        """Allow the peer again and redial it at once if we know where it is."""
        self._scores.unblock(peer_id)
        self._discovery.clear_dial_failures(peer_id)
        self._discovery.redial_soon(peer_id)

    # ----------------------------------------------------------------- bandwidth and stats

    @property
    def bytes_in(self) -> int:
        """Plaintext bytes received over all connections since start (for bandwidth in the informant)."""
        return self._meter.bytes_in

    @property
    def bytes_out(self) -> int:
        return self._meter.bytes_out

    def stats(self) -> dict[str, Any]:
        """A snapshot for metrics: peers, bytes, gossip and request counters, drops."""
        peers = self.peers()
        return {
            "peers": len(peers),
            "inbound": sum(1 for p in peers if p.direction == "inbound"),
            "outbound": sum(1 for p in peers if p.direction == "outbound"),
            "banned": len(self._scores.banned_peers()),
            "bytes_in": self.bytes_in,
            "bytes_out": self.bytes_out,
            "gossip": {name: c.as_dict() for name, c in self.gossip_counters.items()},
            "gossip_queued": self._gossip.queued(),
            "outbound_rpc_drops": self._gossip.outbound_drops,
            "requests": {
                "served": self._requests.served,
                "rejected": self._requests.rejected,
                "failed": self._requests.failed,
                "busy": self._requests.busy,
            },
        }
