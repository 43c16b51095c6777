"""`Network`: the node's libp2p service (gossip, request-response, discovery, peer management).

The node runs ``Network.run`` in its trio nursery and talks to it through a handful of methods;
everything py-libp2p-specific stays behind this class (see `node.p2p.host` for the workarounds).

Peer management is ours rather than py-libp2p's connection manager's, because the rules are
specific: limits per direction, reserved nodes exempt from them and redialed with backoff, a
reserved-only mode, score bans and manual blocks that refuse connections in both directions, and a
top-up of outbound connections from discovered peers (Kademlia DHT, server mode). A maintenance
tick (``maintenance_interval``) applies them; connection events apply the inbound limit at once.
"""

from __future__ import annotations

import logging
import math
import random
import time
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import Any

import multiaddr
import trio
from libp2p.abc import IHost, INetConn, INetStream, INetwork, INotifee
from libp2p.custom_types import TProtocol
from libp2p.kad_dht import DHTMode, KadDHT
from libp2p.peer.id import ID
from libp2p.peer.peerinfo import PeerInfo as Libp2pPeerInfo
from libp2p.peer.peerinfo import info_from_p2p_addr
from libp2p.peer.peerstore import PERMANENT_ADDR_TTL
from libp2p.rcmgr import Direction
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
from node.p2p.config import NetworkConfig, load_or_create_node_key, peer_id_of
from node.p2p.gossip import TOPICS, GossipCounters, TopicPipeline, full_topic
from node.p2p.host import (
    ByteMeter,
    GuardedPubsub,
    build_gossipsub,
    build_host,
    cache_advertised_addrs,
    check_port_free,
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

_DIAL_TIMEOUT = 5.0
_REDIAL_BACKOFF_MIN = 1.0
_REDIAL_BACKOFF_MAX = 30.0
_SHORT_LIVED = 10.0
_SHUTDOWN_TIMEOUT = 3.0
_DHT_REFRESH_INTERVAL = 30.0
_DHT_REFRESH_TIMEOUT = 15.0
# Extra connections py-libp2p may hold beyond our limits (DHT queries in their grace period).
_CONNECTION_SLACK = 16
# publish() waits while a recipient's outbound queue is this full (see _wait_for_outbound_room).
_QUEUE_HIGH_WATER = 0.75
_PUBLISH_WAIT_MAX = 2.0
_STALL_AFTER = 0.25  # a full queue that has not shrunk for this long belongs to a stalled peer


async def _close_host(host: IHost) -> None:
    """Release the listening port and close connections, even though we are being cancelled.

    py-libp2p's own shutdown runs unshielded awaits in ``finally`` blocks, so a cancelled host
    leaks its listening socket (a restarted node then cannot bind its port) and closes
    connections one by one with a 0.1 s sleep each. Listeners first, then connections in parallel.
    """
    swarm: Any = host.get_network()
    with trio.move_on_after(_SHUTDOWN_TIMEOUT, shield=True):
        for listener in list(swarm.listeners.values()):
            try:
                await listener.close()
            except Exception:
                log.debug("closing a listener failed", exc_info=True)
        swarm.listeners.clear()
        async with trio.open_nursery() as nursery:
            for conns in list(swarm.connections.values()):
                for conn in list(conns):
                    nursery.start_soon(Network._close_conn, conn)


def parse_peer_multiaddr(addr: str) -> tuple[str, multiaddr.Multiaddr]:
    """Split ``/ip4/1.2.3.4/tcp/30333/p2p/12D3KooW...`` into (peer id, transport address)."""
    try:
        info = info_from_p2p_addr(multiaddr.Multiaddr(addr))
    except Exception as exc:
        raise ValueError(f"{addr!r} is not a multiaddr ending in /p2p/<peer id>: {exc}") from exc
    return info.peer_id.to_base58(), info.addrs[0]


@dataclass
class _Conn:
    """A connected peer that passed admission (the handler has been told about it)."""

    conn: INetConn  # the one connection we keep with this peer
    direction: str
    since: float  # unix time, for display
    since_mono: float
    requested: bool  # we dialed it on purpose (bootnode, reserved, top-up, connect())
    closing: bool = False  # we decided to close it; no longer counts against the limits


@dataclass
class _Backoff:
    next_attempt: float = 0.0
    delay: float = _REDIAL_BACKOFF_MIN


class _Notifee(INotifee):
    def __init__(self, network: Network) -> None:
        self._network = network

    async def connected(self, network: INetwork, conn: INetConn) -> None:
        self._network._on_connected(conn)

    async def disconnected(self, network: INetwork, conn: INetConn) -> None:
        self._network._on_disconnected(conn)

    async def opened_stream(self, network: INetwork, stream: INetStream) -> None:
        return None

    async def closed_stream(self, network: INetwork, stream: INetStream) -> None:
        return None

    async def listen(self, network: INetwork, multiaddr: multiaddr.Multiaddr) -> None:
        return None

    async def listen_close(self, network: INetwork, multiaddr: multiaddr.Multiaddr) -> None:
        return None


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
        self._bootnodes = [parse_peer_multiaddr(a) for a in config.bootnodes]
        self._reserved = dict(parse_peer_multiaddr(a) for a in config.reserved_nodes)
        self._known_addrs: dict[str, set[multiaddr.Multiaddr]] = {}
        for peer, addr in [*self._bootnodes, *self._reserved.items()]:
            self._known_addrs.setdefault(peer, set()).add(addr)
        self._scores = PeerScores(
            ban_threshold=config.ban_threshold,
            ban_seconds=config.ban_seconds,
            half_life=config.score_half_life,
        )
        self._meter = ByteMeter()
        self._topics = {name: full_topic(config.genesis_hash, name) for name in TOPICS}
        self._pipelines = {
            name: TopicPipeline(
                name,
                on_gossip=self._on_gossip,
                penalise=self.report,
                refuses=self._refuses,
                max_bytes=config.max_gossip_bytes,
                queue_size=config.gossip_queue_size,
            )
            for name in TOPICS
        }
        self._protocols: set[str] = set()
        self._requests = RequestServer(
            handler,
            penalise=self.report,
            refuses=self._refuses,
            timeout=config.request_timeout,
            max_request_bytes=config.max_request_bytes,
            max_response_bytes=config.max_response_bytes,
            max_concurrent=config.max_concurrent_requests,
        )
        self._conns: dict[str, _Conn] = {}
        self._dialing: set[str] = set()
        self._backoff: dict[str, _Backoff] = {}
        self._stalled: set[ID] = set()  # peers whose outbound gossip queue stopped draining
        self._host: IHost | None = None
        self._pubsub: GuardedPubsub | None = None
        self._dht: KadDHT | None = None
        self._nursery: trio.Nursery | None = None
        self._last_dht_refresh = -math.inf
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
            gate=self._gate,
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
        host.get_network().register_notifee(_Notifee(self))
        try:
            async with AsyncExitStack() as stack:
                await stack.enter_async_context(host.run(self._listen_maddrs))
                stack.push_async_callback(_close_host, host)  # after pubsub/DHT stop, before host.run exits
                if not host.get_transport_addrs():  # py-libp2p logs listen failures and carries on
                    raise OSError(f"could not listen on any of {', '.join(cfg.listen_addrs)}")
                cache_advertised_addrs(host)
                await stack.enter_async_context(background_trio_service(pubsub))
                await stack.enter_async_context(background_trio_service(gossipsub))
                if dht is not None:
                    await stack.enter_async_context(background_trio_service(dht))
                await pubsub.wait_until_ready()
                async with trio.open_nursery() as nursery:
                    self._host, self._pubsub, self._dht, self._nursery = host, pubsub, dht, nursery
                    for name, topic in self._topics.items():
                        pipeline = self._pipelines[name]
                        pubsub.set_topic_validator(topic, self._validator(pipeline), is_async_validator=True)
                        subscription = await pubsub.subscribe(topic)
                        nursery.start_soon(pipeline.run_worker)
                        nursery.start_soon(self._drain_subscription, subscription, pipeline.counters)
                    self.listen_addrs = [str(a) for a in host.get_addrs()]
                    log.info("p2p listening on %s", ", ".join(self.listen_addrs))
                    task_status.started()
                    nursery.start_soon(self._bootstrap)
                    nursery.start_soon(self._maintenance_loop)
                    await trio.sleep_forever()
        finally:
            self._host = self._pubsub = self._dht = self._nursery = None
            self._conns.clear()
            self._dialing.clear()
            self.listen_addrs = []

    @property
    def running(self) -> bool:
        return self._nursery is not None

    # ----------------------------------------------------------------- gossip

    def topic(self, name: str) -> str:
        """Full topic string of a short name ("blocks" -> "/imagechain/<genesis>/blocks")."""
        try:
            return self._topics[name]
        except KeyError:
            raise UnknownTopic(f"unknown topic {name!r}; expected one of {', '.join(TOPICS)}") from None

    async def publish(self, topic: str, data: bytes) -> None:
        """Sign and gossip ``data`` on a topic ("blocks", "tx", "votes", "tickets").

        Raises `GossipTooLarge` over `max_gossip_bytes` (py-libp2p would drop it silently). If a
        recipient's outbound queue is nearly full, waits (up to 2 s) for it to drain instead of
        letting py-libp2p drop the message. Identical data published twice travels once (message
        ids are content hashes).
        """
        full = self.topic(topic)
        if len(data) > self.config.max_gossip_bytes:
            raise GossipTooLarge(
                f"{len(data)}-byte {topic} message exceeds max_gossip_bytes={self.config.max_gossip_bytes}; "
                "send it over request-response"
            )
        pubsub = self._require_running()
        await self._wait_for_outbound_room(pubsub, full, self._pipelines[topic].counters)
        await pubsub.publish(full, bytes(data))
        self._pipelines[topic].counters.published += 1

    async def _wait_for_outbound_room(
        self, pubsub: GuardedPubsub, topic: str, counters: GossipCounters
    ) -> None:
        """Wait while a recipient's py-libp2p outbound queue is nearly full and draining.

        A peer whose queue stops draining (a stalled or hostile reader) is marked stalled and no
        longer waited for, until its queue has room again; otherwise one such peer would throttle
        all our publishing. Messages to a stalled peer are dropped by py-libp2p (and counted).
        """
        router: Any = pubsub.router
        high_water = max(1, int(self.config.outbound_queue_size * _QUEUE_HIGH_WATER))
        recipients = set(router.mesh.get(topic, ())) | set(router.fanout.get(topic, ()))
        started = last_progress = trio.current_time()
        previous: dict[ID, int] = {}
        waited = False
        while True:
            full = {}
            for peer in recipients:
                queued = len(pubsub.peer_queues.get(peer, ()))
                if queued < high_water:
                    self._stalled.discard(peer)
                elif peer not in self._stalled:
                    full[peer] = queued
            if not full:
                break
            now = trio.current_time()
            if any(queued < previous.get(peer, queued + 1) for peer, queued in full.items()):
                last_progress = now
            previous = full
            if now - last_progress > _STALL_AFTER or now - started > _PUBLISH_WAIT_MAX:
                log.debug("outbound queues of %s are not draining; no longer waiting for them", list(full))
                self._stalled.update(full)
                break
            waited = True
            await trio.sleep(0.002)
        if waited:
            counters.publish_waits += 1

    def _validator(self, pipeline: TopicPipeline) -> Any:
        own_id = ID.from_base58(self.peer_id)

        async def validate(forwarder: ID, msg: Any) -> bool:
            if forwarder == own_id:
                return True  # our own publish: the node made it
            try:
                return await pipeline.validate(forwarder.to_base58(), msg.data)
            except Exception:
                log.exception("gossip validator failed; rejecting")
                return False

        return validate

    async def _on_gossip(self, topic: str, data: bytes, peer_id: str) -> Verdict:
        return await self._handler.on_gossip(topic, data, peer_id)

    @staticmethod
    async def _drain_subscription(subscription: Any, counters: GossipCounters) -> None:
        """Empty py-libp2p's 32-slot subscription channel promptly (it drops when full).

        The node already saw each message in `on_gossip`; this only keeps the channel empty and
        counts deliveries, which tests compare against the handler's count.
        """
        async for _msg in subscription:
            counters.delivered += 1

    @property
    def gossip_counters(self) -> dict[str, GossipCounters]:
        """Per-topic counters keyed by short topic name."""
        return {name: p.counters for name, p in self._pipelines.items()}

    def topic_peers(self, topic: str) -> list[str]:
        """Connected peers subscribed to a topic (GossipSub knows them from their announcements)."""
        if self._pubsub is None:
            return []
        return sorted(p.to_base58() for p in self._pubsub.peer_topics.get(self.topic(topic), ()))

    def mesh_peers(self, topic: str) -> list[str]:
        """Peers in our GossipSub mesh for a topic (they receive everything we publish on it)."""
        if self._pubsub is None:
            return []
        router: Any = self._pubsub.router
        return sorted(p.to_base58() for p in router.mesh.get(self.topic(topic), ()))

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
        if self._refuses(peer_id):
            raise RequestFailed(f"peer {peer_id} is banned or blocked")
        self._add_known_addrs_to_peerstore(peer_id)
        return await send_request(
            host.new_stream,
            peer_id,
            protocol,
            data,
            timeout=timeout,
            max_request_bytes=self.config.max_request_bytes,
            max_response_bytes=self.config.max_response_bytes,
        )

    # ----------------------------------------------------------------- peers

    def peers(self) -> list[PeerInfo]:
        """Connected peers that passed admission, with direction, score and addresses."""
        result = []
        for peer_id, conn in sorted(self._conns.items()):
            result.append(
                PeerInfo(
                    peer_id=peer_id,
                    addrs=self._peer_addrs(peer_id),
                    direction=conn.direction,
                    score=self._scores.score(peer_id),
                    connected_since=conn.since,
                    reserved=peer_id in self._reserved,
                )
            )
        return result

    def is_connected(self, peer_id: str) -> bool:
        return peer_id in self._conns

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
            self._forget_in_dht(peer_id)
            self._disconnect_soon(peer_id, "banned")

    def unban(self, peer_id: str) -> None:
        """Lift a score ban early (operator action)."""
        self._scores.unban(peer_id)
        self._clear_dial_failures(peer_id)

    def block_peer(self, peer_id: str) -> None:
        """Disconnect and refuse the peer in both directions until `unblock_peer` (partition tests)."""
        self._scores.block(peer_id)
        self._disconnect_soon(peer_id, "blocked")

    def unblock_peer(self, peer_id: str) -> None:
        """Allow the peer again and redial it at once if we know where it is."""
        self._scores.unblock(peer_id)
        self._clear_dial_failures(peer_id)
        if self._nursery is not None and not self._refuses(peer_id) and self._dialable_addrs(peer_id):
            self._nursery.start_soon(self._try_dial, peer_id)

    async def connect(self, addr: str) -> str:
        """Dial a full multiaddr (ending in /p2p/<id>) and return the peer id once connected.

        Counts as an outbound connection: refused with `PeerRefused` when the peer is banned or
        blocked or the outbound limit is reached (reserved nodes are exempt).
        """
        peer_id, maddr = parse_peer_multiaddr(addr)
        self._require_host()
        if peer_id == self.peer_id:
            raise ValueError("cannot connect to ourselves")
        if self._refuses(peer_id):
            raise PeerRefused(f"peer {peer_id} is banned or blocked")
        self._known_addrs.setdefault(peer_id, set()).add(maddr)
        if self.is_connected(peer_id):
            return peer_id
        if peer_id not in self._reserved and self._outbound_count() >= self.config.max_outbound:
            raise PeerRefused(f"outbound peer limit ({self.config.max_outbound}) reached")
        self._clear_dial_failures(peer_id)
        error = await self._dial(peer_id)
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
            "gossip_queued": {name: p.queued for name, p in self._pipelines.items()},
            "outbound_rpc_drops": self._pubsub.outbound_drops if self._pubsub is not None else 0,
            "requests": {
                "served": self._requests.served,
                "rejected": self._requests.rejected,
                "failed": self._requests.failed,
                "busy": self._requests.busy,
            },
        }

    # ----------------------------------------------------------------- connection events

    def _on_connected(self, conn: INetConn) -> None:
        peer_id = conn.muxed_conn.peer_id.to_base58()
        direction = "outbound" if conn.direction == Direction.OUTBOUND else "inbound"
        existing = self._conns.get(peer_id)
        if existing is not None:
            self._resolve_duplicate(peer_id, existing, conn, direction)
            return
        refusal = self._admission_refusal(peer_id, direction)
        if refusal is not None:
            log.debug("closing %s connection with %s: %s", direction, peer_id, refusal)
            self._close_conn_soon(conn)
            return
        self._conns[peer_id] = _Conn(
            conn, direction, time.time(), time.monotonic(), requested=peer_id in self._dialing
        )
        log.debug("connected to %s (%s)", peer_id, direction)
        try:
            self._handler.on_peer_connected(peer_id)
        except Exception:
            log.exception("on_peer_connected(%s) raised", peer_id)
        if self._dht is not None and self._nursery is not None:
            self._nursery.start_soon(self._add_to_dht, peer_id)

    def _resolve_duplicate(self, peer_id: str, state: _Conn, conn: INetConn, direction: str) -> None:
        """Two connections with one peer (both dialed at once): keep the same one on both sides.

        py-libp2p keeps both for its 20 s grace period. Both ends apply this rule, which depends
        only on who dialed: the connection dialed by the smaller peer id survives. The peer keeps
        the direction it was admitted with, so the swap cannot bypass the per-direction limits.
        """

        def dialer(d: str) -> str:
            return self.peer_id if d == "outbound" else peer_id

        if dialer(direction) < dialer(state.direction):
            old, state.conn = state.conn, conn
            self._close_conn_soon(old)
        else:
            self._close_conn_soon(conn)

    def _on_disconnected(self, conn: INetConn) -> None:
        peer_id = conn.muxed_conn.peer_id.to_base58()
        state = self._conns.get(peer_id)
        if state is None or state.conn is not conn:
            return  # a refused or duplicate connection went away
        if self._host is not None:
            for other in self._host.get_network().get_connections(conn.muxed_conn.peer_id):
                if other is not conn and not other.is_closed:
                    state.conn = other  # py-libp2p still has another one: carry on with it
                    return
        del self._conns[peer_id]
        log.debug("disconnected from %s", peer_id)
        # A connection the other side (or we) closed soon after it opened, usually for lack of a
        # free slot, counts like a failed dial; otherwise both sides would redial every tick.
        backoff = self._backoff.setdefault(peer_id, _Backoff())
        if time.monotonic() - state.since_mono < _SHORT_LIVED:
            backoff.next_attempt = trio.current_time() + backoff.delay
            backoff.delay = min(backoff.delay * 2, _REDIAL_BACKOFF_MAX)
        else:
            backoff.next_attempt = trio.current_time() + _REDIAL_BACKOFF_MIN
            backoff.delay = _REDIAL_BACKOFF_MIN
        try:
            self._handler.on_peer_disconnected(peer_id)
        except Exception:
            log.exception("on_peer_disconnected(%s) raised", peer_id)

    def _admission_refusal(self, peer_id: str, direction: str) -> str | None:
        if self._refuses(peer_id):
            return "banned or blocked"
        if peer_id in self._reserved:
            return None
        if direction == "inbound" and self._inbound_count() >= self.config.max_inbound:
            return f"inbound limit ({self.config.max_inbound}) reached"
        return None

    def _gate(self, peer_id: str, direction: str) -> str | None:
        """Connection gate, asked during the security handshake (see `node.p2p.host`).

        Outbound connections are only refused for banned/blocked peers: py-libp2p dials for DHT
        queries, which discovery needs; `_trim_outbound` closes the surplus afterwards.
        """
        if peer_id in self._conns and not self._refuses(peer_id):
            return None  # a second connection to a connected peer; `_resolve_duplicate` decides
        if direction == "outbound":
            return "banned or blocked" if self._refuses(peer_id) else None
        return self._admission_refusal(peer_id, direction)

    def _refuses(self, peer_id: str) -> bool:
        if self._scores.refuses(peer_id):
            return True
        return self.config.reserved_only and peer_id not in self._reserved

    def _inbound_count(self) -> int:
        return self._count("inbound")

    def _outbound_count(self) -> int:
        return self._count("outbound")

    def _count(self, direction: str) -> int:
        """Connections of one direction that count against the limit (reserved ones do not)."""
        return sum(
            1
            for p, c in self._conns.items()
            if c.direction == direction and not c.closing and p not in self._reserved
        )

    def _disconnect_soon(self, peer_id: str, reason: str) -> None:
        state = self._conns.get(peer_id)
        if state is not None:
            state.closing = True
        if self._nursery is not None:
            self._nursery.start_soon(self._close_peer, peer_id, reason)

    def _close_conn_soon(self, conn: INetConn) -> None:
        if self._nursery is not None:
            self._nursery.start_soon(self._close_conn, conn)

    @staticmethod
    async def _close_conn(conn: INetConn) -> None:
        try:
            await conn.close()
        except Exception:
            log.debug("closing a connection failed", exc_info=True)

    async def _close_peer(self, peer_id: str, reason: str) -> None:
        if self._host is None:
            return
        try:
            await self._host.disconnect(ID.from_base58(peer_id))
        except Exception:
            log.debug("closing connection to %s (%s) failed", peer_id, reason, exc_info=True)
            state = self._conns.get(peer_id)
            if state is not None:
                state.closing = False  # still connected: count it again, retry next time

    # ----------------------------------------------------------------- dialing and discovery

    async def _bootstrap(self) -> None:
        """Dial reserved nodes and as many bootnodes as the outbound limit allows, then seed and
        refresh the DHT (which dials the peers the bootnodes know about)."""
        bootnodes = [p for p, _ in self._bootnodes if p not in self._reserved and p != self.peer_id]
        if self.config.reserved_only:
            bootnodes = []
        random.shuffle(bootnodes)  # so that a fleet of nodes does not all pick the same ones
        wanted = list(self._reserved) + bootnodes[: self.config.max_outbound]
        async with trio.open_nursery() as nursery:
            for peer_id in wanted:
                if not self._refuses(peer_id):
                    nursery.start_soon(self._try_dial, peer_id)
        await self._refresh_dht()

    async def _maintenance_loop(self) -> None:
        while True:
            try:
                await self._maintain()
            except Exception:
                log.exception("peer maintenance failed")
            await trio.sleep(self.config.maintenance_interval)

    async def _maintain(self) -> None:
        assert self._nursery is not None
        for peer_id in self._scores.expire():
            log.info("ban of peer %s expired", peer_id)
            self._clear_dial_failures(peer_id)
        now = trio.current_time()
        for peer_id in self._reserved:
            if not self.is_connected(peer_id) and self._may_dial(peer_id, now):
                self._nursery.start_soon(self._try_dial, peer_id)
        self._trim_outbound()
        if self.config.reserved_only:
            return
        room = self.config.max_outbound - self._outbound_count() - len(self._dialing - set(self._reserved))
        if room > 0:
            for peer_id in self._dial_candidates(now)[:room]:
                self._nursery.start_soon(self._try_dial, peer_id)
        if (
            self._dht is not None
            and self._outbound_count() < self.config.max_outbound
            and now - self._last_dht_refresh > _DHT_REFRESH_INTERVAL
        ):
            self._nursery.start_soon(self._refresh_dht)

    def _trim_outbound(self) -> None:
        """Close outbound connections py-libp2p opened on its own beyond the limit, after a grace."""
        excess = self._outbound_count() - self.config.max_outbound
        if excess <= 0:
            return
        grace_end = time.monotonic() - self.config.outbound_grace_seconds
        victims = sorted(
            (
                (c.since_mono, p)
                for p, c in self._conns.items()
                if c.direction == "outbound"
                and not c.closing
                and not c.requested
                and p not in self._reserved
                and c.since_mono < grace_end
            ),
            reverse=True,
        )
        for _, peer_id in victims[:excess]:
            log.debug("trimming outbound connection to %s (limit %d)", peer_id, self.config.max_outbound)
            self._disconnect_soon(peer_id, "outbound limit")

    def _dial_candidates(self, now: float) -> list[str]:
        """Known and discovered peers we could dial: bootnodes first, then DHT/peerstore peers."""
        ordered: list[str] = [p for p, _ in self._bootnodes]
        if self._dht is not None:
            ordered += [p.to_base58() for p in self._dht.routing_table.get_peer_ids()]
        if self._host is not None:
            ordered += [p.to_base58() for p in self._host.get_peerstore().peers_with_addrs()]
        seen: set[str] = set()
        result = []
        for peer_id in ordered:
            if peer_id in seen or peer_id == self.peer_id:
                continue
            seen.add(peer_id)
            if (
                peer_id in self._conns
                or peer_id in self._dialing
                or self._refuses(peer_id)
                or not self._may_dial(peer_id, now)
                or not self._dialable_addrs(peer_id)
            ):
                continue
            result.append(peer_id)
        return result

    def _may_dial(self, peer_id: str, now: float) -> bool:
        backoff = self._backoff.get(peer_id)
        return peer_id not in self._dialing and (backoff is None or now >= backoff.next_attempt)

    async def _try_dial(self, peer_id: str) -> None:
        error = await self._dial(peer_id)
        if error is not None:
            log.debug("dial to %s failed: %s", peer_id, error)

    async def _dial(self, peer_id: str) -> str | None:
        """Dial with our own backoff bookkeeping; return an error description or None."""
        if self._host is None or peer_id in self._dialing or self._refuses(peer_id):
            return "not dialable now"
        addrs = self._dialable_addrs(peer_id)
        if not addrs:
            return "no known address"
        self._dialing.add(peer_id)
        try:
            remote = ID.from_base58(peer_id)
            # py-libp2p's negative cache would refuse for 60 s after a failure; our backoff rules.
            self._host.get_network().unblock_peer(remote)
            with trio.fail_after(_DIAL_TIMEOUT):
                await self._host.connect(Libp2pPeerInfo(remote, addrs))
            return None
        except Exception as exc:
            backoff = self._backoff.setdefault(peer_id, _Backoff())
            backoff.next_attempt = trio.current_time() + backoff.delay
            backoff.delay = min(backoff.delay * 2, _REDIAL_BACKOFF_MAX)
            return str(exc) or type(exc).__name__
        finally:
            self._dialing.discard(peer_id)

    def _dialable_addrs(self, peer_id: str) -> list[multiaddr.Multiaddr]:
        addrs = set(self._known_addrs.get(peer_id, ()))
        if self._host is not None:
            try:
                addrs.update(self._host.get_peerstore().addrs(ID.from_base58(peer_id)))
            except Exception:
                pass
        return sorted(addrs, key=str)

    def _add_known_addrs_to_peerstore(self, peer_id: str) -> None:
        known = self._known_addrs.get(peer_id)
        if known and self._host is not None:
            self._host.get_peerstore().add_addrs(ID.from_base58(peer_id), list(known), PERMANENT_ADDR_TTL)

    def _clear_dial_failures(self, peer_id: str) -> None:
        self._backoff.pop(peer_id, None)
        if self._host is not None:
            self._host.get_network().unblock_peer(ID.from_base58(peer_id))

    def _peer_addrs(self, peer_id: str) -> list[str]:
        """Transport addresses of a peer (without the /p2p/ suffix), deduplicated."""
        addrs = set(self._known_addrs.get(peer_id, ()))
        if self._host is not None:
            try:
                addrs.update(self._host.get_peerstore().addrs(ID.from_base58(peer_id)))
            except Exception:
                pass
        return sorted({str(a).split("/p2p/", 1)[0] for a in addrs})

    async def _add_to_dht(self, peer_id: str) -> None:
        if self._dht is None:
            return
        try:
            await self._dht.add_peer(ID.from_base58(peer_id))
        except Exception:
            log.debug("adding %s to the DHT routing table failed", peer_id, exc_info=True)

    async def _refresh_dht(self) -> None:
        """Look ourselves and random keys up in the DHT, which teaches us about more peers."""
        if self._dht is None:
            return
        self._last_dht_refresh = trio.current_time()
        for peer_id in list(self._conns):
            await self._add_to_dht(peer_id)
        with trio.move_on_after(_DHT_REFRESH_TIMEOUT):
            try:
                await self._dht.refresh_routing_table()
            except Exception:
                log.debug("DHT refresh failed", exc_info=True)

    def _forget_in_dht(self, peer_id: str) -> None:
        if self._dht is not None:
            try:
                self._dht.routing_table.remove_peer(ID.from_base58(peer_id))
            except Exception:
                pass

    # ----------------------------------------------------------------- helpers

    def _require_host(self) -> IHost:
        if self._host is None:
            raise NetworkNotRunning("the network is not running")
        return self._host

    def _require_running(self) -> GuardedPubsub:
        if self._pubsub is None:
            raise NetworkNotRunning("the network is not running")
        return self._pubsub

    def known_peers(self) -> list[str]:
        """Peers we have an address for (bootnodes, reserved, connected, discovered)."""
        peers = set(self._known_addrs)
        if self._host is not None:
            peers.update(p.to_base58() for p in self._host.get_peerstore().peers_with_addrs())
        peers.discard(self.peer_id)
        return sorted(peers)
