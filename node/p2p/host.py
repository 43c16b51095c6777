"""Construction of the py-libp2p host and pubsub with the settings LIBP2P-NOTES.md found to work.

Everything that bends py-libp2p 0.8.1 to our needs is in this module, each with the reason:

* Noise only (an explicit ``sec_opt``): a default host also accepts plaintext and secio dialers.
  Our Noise subclass is also the connection gate: it asks `Network` about the remote peer right
  after the handshake (inbound) or before it (outbound) and fails the upgrade if the peer is
  banned or blocked, or (inbound) no slot is free. Refusing there, before py-libp2p registers the
  connection, matters: bans then hold whoever dials, including dials py-libp2p makes on its own
  (DHT queries), and a refused connection never reaches pubsub, which would otherwise react to
  the short-lived connection by dialing the peer straight back.
* Yamux only; ``max_connections_per_peer=1`` (otherwise every dial waits 250 ms).
* py-libp2p's auto-connector is disabled: it dials every peer in the peerstore until it has ~150
  connections, which would ignore our limits, bans and partitions. `Network` tops up itself.
* Every stream handler is wrapped: an exception escaping any handler (one undecodable pubsub RPC
  from any peer is enough) otherwise cancels the connection's task group, fails the swarm service
  and takes the whole node down.
* Pubsub subclass: penalises undecodable RPCs, bad signatures and over-limit RPC frames, which
  py-libp2p drops without telling anyone, and guards ``push_msg`` (a malformed key in a message
  makes it raise inside a background task, which is as fatal as a raising validator).
* Per-peer outbound RPC queues are enlarged from 32 and their drops counted.
* The validation cache is off: it would cache a content hash's IGNORE ("parent unknown") as
  invalid for five minutes.
* Bytes in/out are counted on the Noise session (plaintext, i.e. what the muxer moves).
* Two hot spots of py-libp2p's gossip path are memoised (together about a quarter of the CPU
  time of a two-node gossip run in cProfile): the content-addressed message id (a pure-Python
  base58 of sha256, computed 4-5 times per message) and the host's advertised addresses (rebuilt
  from multiaddrs for the signed peer record attached to every RPC it sends).
* py-libp2p listens with SO_REUSEPORT and ignores listen failures, so a second node on a busy
  port "starts" and the kernel splits incoming connections between the two. `check_port_free`
  probes the port first (without SO_REUSEPORT, so it collides with any live listener).
* py-libp2p's own shutdown runs unshielded awaits in ``finally`` blocks: a cancelled host leaks
  its listening socket and closes connections one by one with a 0.1 s sleep each. `close_host`
  releases the port and closes connections in parallel, shielded.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import math
import socket
import time
from collections.abc import Awaitable, Callable
from typing import Any

import multiaddr
import multibase
import trio
from google.protobuf.message import DecodeError
from libp2p import new_host
from libp2p.abc import IHost, INetConn, INetStream, IRawConnection, ISecureConn
from libp2p.crypto.keys import KeyPair
from libp2p.crypto.x25519 import create_new_key_pair as create_x25519_key_pair
from libp2p.custom_types import TProtocol
from libp2p.encoding_config import get_default_encoding
from libp2p.io.exceptions import IOException
from libp2p.network.auto_connector import AutoConnector
from libp2p.network.config import ConnectionConfig, RetryConfig
from libp2p.peer.id import ID
from libp2p.pubsub.gossipsub import PROTOCOL_ID_V11, GossipSub
from libp2p.pubsub.pb import rpc_pb2
from libp2p.pubsub.pubsub import Pubsub, ValidationCache, ValidationResult
from libp2p.pubsub.rpc_queue import DefaultMaxMessageSize, RpcQueue
from libp2p.pubsub.validators import signature_validator
from libp2p.security.exceptions import HandshakeFailure
from libp2p.security.noise.transport import PROTOCOL_ID as NOISE_PROTOCOL_ID
from libp2p.security.noise.transport import Transport as NoiseTransport
from libp2p.stream_muxer.exceptions import MuxedStreamError
from libp2p.stream_muxer.yamux.yamux import PROTOCOL_ID as YAMUX_PROTOCOL_ID
from libp2p.stream_muxer.yamux.yamux import Yamux
from libp2p.utils.varint import decode_uvarint

from node.p2p.scoring import (
    PENALTY_BAD_SIGNATURE,
    PENALTY_HANDLER_ERROR,
    PENALTY_OVERSIZED,
    PENALTY_PROTOCOL_VIOLATION,
)

__all__ = [
    "ByteMeter",
    "GuardedPubsub",
    "build_gossipsub",
    "build_host",
    "cache_advertised_addrs",
    "check_port_free",
    "close_connection",
    "close_host",
    "content_msg_id",
    "guard_stream_handlers",
]

log = logging.getLogger(__name__)

Penalise = Callable[[str, int, str], None]
# (peer id, "inbound" | "outbound") -> reason to refuse the connection, or None to accept it
Gate = Callable[[str, str], str | None]

# GossipSub mesh degree: go-libp2p's D=6 and Dhi=12, with Dlo=4 (go: 5).
MESH_D, MESH_D_LOW, MESH_D_HIGH = 6, 4, 12
_SHUTDOWN_TIMEOUT = 3.0


class ByteMeter:
    """Counts plaintext bytes through every Noise session of one host."""

    def __init__(self) -> None:
        self.bytes_in = 0
        self.bytes_out = 0

    def attach(self, session: ISecureConn) -> None:
        """Wrap ``read``/``write`` of one session (instance attributes shadow the methods)."""
        read, write = session.read, session.write

        async def counted_read(n: int | None = None) -> bytes:
            data = await read(n)
            self.bytes_in += len(data)
            return data

        async def counted_write(data: bytes) -> None:
            await write(data)
            self.bytes_out += len(data)

        session.read = counted_read  # type: ignore[method-assign]
        session.write = counted_write  # type: ignore[method-assign]


class _GatedNoise(NoiseTransport):
    """Noise XX that consults the connection gate and meters the resulting sessions."""

    def __init__(self, key_pair: KeyPair, *, gate: Gate, meter: ByteMeter) -> None:
        super().__init__(key_pair, noise_privkey=create_x25519_key_pair().private_key)
        self._gate = gate
        self._meter = meter

    async def secure_inbound(self, conn: IRawConnection) -> ISecureConn:
        session = await super().secure_inbound(conn)
        remote = session.get_remote_peer().to_base58()
        refusal = self._gate(remote, "inbound")
        if refusal is not None:
            await session.close()
            raise HandshakeFailure(f"refusing inbound connection from {remote}: {refusal}")
        self._meter.attach(session)
        return session

    async def secure_outbound(self, conn: IRawConnection, peer_id: ID) -> ISecureConn:
        refusal = self._gate(peer_id.to_base58(), "outbound")
        if refusal is not None:
            raise HandshakeFailure(f"refusing to connect to {peer_id}: {refusal}")
        session = await super().secure_outbound(conn, peer_id)
        self._meter.attach(session)
        return session


class _NoAutoConnect(AutoConnector):
    """py-libp2p's background dialer, switched off (see module docstring)."""

    async def maybe_connect(self) -> None:
        return None


def build_host(
    key_pair: KeyPair,
    listen_addrs: list[multiaddr.Multiaddr],
    *,
    gate: Gate,
    meter: ByteMeter,
    max_connections: int,
    enable_mdns: bool,
) -> IHost:
    """A TCP + Noise + Yamux host; identify runs on every connection (BasicHost does that)."""
    connection_config = ConnectionConfig(
        max_connections=max_connections,
        min_connections=0,
        low_watermark=0,
        high_watermark=max_connections,
        max_connections_per_peer=1,
        dial_timeout=5.0,
    )
    host = new_host(
        key_pair=key_pair,
        sec_opt={NOISE_PROTOCOL_ID: _GatedNoise(key_pair, gate=gate, meter=meter)},
        muxer_opt={TProtocol(YAMUX_PROTOCOL_ID): Yamux},
        listen_addrs=listen_addrs,
        connection_config=connection_config,
        enable_mDNS=enable_mdns,
    )
    swarm: Any = host.get_network()
    # One quick retry; `Network` has its own per-peer backoff, and py-libp2p's default of three
    # retries makes every failed dial (dead or refusing peer) take 0.7 s.
    swarm.retry_config = RetryConfig(max_retries=1, initial_delay=0.05, max_delay=0.05)
    swarm.auto_connector = _NoAutoConnect(
        swarm, auto_connect_interval=connection_config.auto_connect_interval
    )
    return host


def check_port_free(addr: multiaddr.Multiaddr) -> None:
    """Raise OSError if a TCP listen address (with a fixed port) is already in use."""
    protocols = {p.name for p in addr.protocols()}
    if "tcp" not in protocols or int(addr.value_for_protocol("tcp")) == 0:
        return
    family, ip = (
        (socket.AF_INET6, addr.value_for_protocol("ip6"))
        if "ip6" in protocols
        else (socket.AF_INET, addr.value_for_protocol("ip4"))
    )
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # TIME_WAIT is fine
        try:
            probe.bind((ip, int(addr.value_for_protocol("tcp"))))
        except OSError as exc:
            raise OSError(exc.errno, f"cannot listen on {addr}: {exc.strerror}") from exc


async def close_host(host: IHost) -> None:
    """Release the listening port and close connections, even though we are being cancelled.

    Listeners first (a restarted node must be able to bind its port again), then connections in
    parallel (see the module docstring for what py-libp2p's own shutdown does).
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
                    nursery.start_soon(close_connection, conn)


async def close_connection(conn: INetConn) -> None:
    """Close one connection; a failure only means it was already going away."""
    try:
        await conn.close()
    except Exception:
        log.debug("closing a connection failed", exc_info=True)


def guard_stream_handlers(host: IHost, penalise: Penalise) -> None:
    """Make an exception escaping any protocol's stream handler reset the stream, not kill the node."""
    swarm: Any = host.get_network()
    inner: Callable[[INetStream], Awaitable[None]] = swarm.common_stream_handler

    async def guarded(stream: INetStream) -> None:
        try:
            await inner(stream)
        except Exception as exc:
            peer_id = stream.muxed_conn.peer_id.to_base58()
            protocol = stream.get_protocol()
            log.warning("%s stream from %s failed: %r", protocol, peer_id, exc)
            if not isinstance(exc, IOException | MuxedStreamError):  # a dropped connection is no offence
                penalise(peer_id, PENALTY_HANDLER_ERROR, f"{protocol} stream handler failed: {exc!r}")
            with trio.CancelScope(shield=True):
                try:
                    await stream.reset()
                except Exception:
                    pass

    swarm.set_stream_handler(guarded)


def build_gossipsub() -> GossipSub:
    """GossipSub v1.1 with the settings from LIBP2P-NOTES.md.

    Off, with reasons: spam protection (its 10 msg/s per peer per topic limit also throttles our
    own publishing); adaptive gossip (under "poor health" it stretches a 1 s heartbeat to 30-60 s);
    eclipse protection (its IP-diversity grafting misfires when every peer is on 127.0.0.1).
    """
    return GossipSub(
        protocols=[PROTOCOL_ID_V11],
        degree=MESH_D,
        degree_low=MESH_D_LOW,
        degree_high=MESH_D_HIGH,
        heartbeat_interval=1,
        heartbeat_initial_delay=0.1,
        spam_protection_enabled=False,
        adaptive_gossip_enabled=False,
        eclipse_protection_enabled=False,
    )


@functools.lru_cache(maxsize=16384)
def _encode_msg_id(digest: bytes, encoding: str) -> bytes:
    return multibase.encode(encoding, digest)


def content_msg_id(msg: rpc_pb2.Message) -> bytes:
    """Same bytes as py-libp2p's `get_content_addressed_msg_id`, with the encoding memoised."""
    return _encode_msg_id(hashlib.sha256(msg.data).digest(), get_default_encoding())


def cache_advertised_addrs(host: IHost, ttl: float = 1.0) -> None:
    """Memoise ``host.get_addrs()`` for ``ttl`` seconds (call once the host listens).

    Pubsub signs a peer record with these addresses into every RPC it sends and recomputes them
    each time (~0.3 ms); they only change when identify confirms a new observed address.
    """
    compute = host.get_addrs
    cached: list[multiaddr.Multiaddr] = []
    expires = -math.inf

    def get_addrs() -> list[multiaddr.Multiaddr]:
        nonlocal cached, expires
        now = time.monotonic()
        if now >= expires or not cached:
            cached, expires = compute(), now + ttl
        return list(cached)

    host.get_addrs = get_addrs  # type: ignore[method-assign]


class _NoValidationCache(ValidationCache):
    def get(self, msg_id: bytes) -> ValidationResult | None:
        return None

    def put(self, msg_id: bytes, result: ValidationResult) -> None:
        return None


class _TunedQueues(dict[ID, RpcQueue]):
    """``Pubsub.peer_queues`` replacement: enlarges each new per-peer queue and counts its drops.

    Pubsub creates ``RpcQueue()`` with fixed defaults inside a long method; adjusting the queue as
    it is stored is the least invasive hook.
    """

    def __init__(self, max_size: int, on_drop: Callable[[], None]) -> None:
        super().__init__()
        self._max_size = max_size
        self._on_drop = on_drop

    def __setitem__(self, peer_id: ID, queue: RpcQueue) -> None:
        queue._queue.max_size = self._max_size
        push = queue.push

        def counted_push(rpc: rpc_pb2.RPC, priority: bool = False) -> bool:
            ok = push(rpc, priority)
            if not ok and not queue.closed:
                self._on_drop()
            return ok

        queue.push = counted_push  # type: ignore[method-assign]
        super().__setitem__(peer_id, queue)


class _RpcFrameWatcher:
    """Proxy of an inbound pubsub stream that notices length prefixes above the RPC size limit.

    Pubsub resets such a stream and forgets the peer without any hook; watching the varint
    prefixes as they are read lets us penalise the sender as well.
    """

    def __init__(self, stream: INetStream, limit: int, on_oversize: Callable[[int], None]) -> None:
        self._stream = stream
        self._limit = limit
        self._on_oversize = on_oversize
        self._prefix = bytearray()
        self._body_left = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)

    async def read(self, n: int | None = None) -> bytes:
        data = await self._stream.read(n)
        self._observe(data)
        return data

    def _observe(self, data: bytes) -> None:
        i = 0
        while i < len(data):
            if self._body_left:
                step = min(self._body_left, len(data) - i)
                self._body_left -= step
                i += step
                continue
            byte = data[i]
            i += 1
            self._prefix.append(byte)
            if byte & 0x80 and len(self._prefix) < 10:
                continue
            try:
                length = decode_uvarint(bytes(self._prefix))
            except Exception:
                length = 0
            self._prefix.clear()
            if length > self._limit:
                self._on_oversize(length)
            self._body_left = length


class GuardedPubsub(Pubsub):
    """Pubsub that reports misbehaving peers and cannot be crashed by their messages."""

    def __init__(
        self,
        host: IHost,
        router: GossipSub,
        *,
        penalise: Penalise,
        outbound_queue_size: int,
        max_concurrent_validators: int,
        validation_timeout: float,
    ) -> None:
        super().__init__(
            host,
            router,
            strict_signing=True,
            msg_id_constructor=content_msg_id,
            max_concurrent_validator_count=max_concurrent_validators,
            validation_timeout=validation_timeout,
            max_inbound_rpc_size=DefaultMaxMessageSize,
        )
        self._penalise = penalise
        self.outbound_drops = 0
        self.peer_queues = _TunedQueues(outbound_queue_size, self._count_drop)
        self.validation_cache = _NoValidationCache()

    def _count_drop(self) -> None:
        self.outbound_drops += 1

    async def stream_handler(self, stream: INetStream) -> None:
        peer = stream.muxed_conn.peer_id
        peer_b58 = peer.to_base58()

        def oversize(length: int) -> None:
            self._penalise(peer_b58, PENALTY_OVERSIZED, f"pubsub RPC of {length} bytes over the 1 MiB limit")

        watched: Any = _RpcFrameWatcher(stream, self.max_inbound_rpc_size, oversize)
        try:
            await super().stream_handler(watched)
        except DecodeError as exc:
            self._penalise(peer_b58, PENALTY_PROTOCOL_VIOLATION, f"undecodable pubsub RPC: {exc}")
            await self._drop_stream(stream, peer)
        except Exception as exc:
            log.warning("pubsub stream from %s failed: %r", peer_b58, exc)
            if not isinstance(exc, IOException | MuxedStreamError):
                self._penalise(peer_b58, PENALTY_HANDLER_ERROR, f"pubsub RPC made the node fail: {exc!r}")
            await self._drop_stream(stream, peer)

    async def _drop_stream(self, stream: INetStream, peer: ID) -> None:
        with trio.CancelScope(shield=True):
            try:
                await stream.reset()
            except Exception:
                pass
        if self.manager.is_running:
            self._handle_dead_peer(peer)

    async def push_msg(self, msg_forwarder: ID, msg: rpc_pb2.Message) -> None:
        try:
            if msg_forwarder != self.my_id and not self._is_msg_seen(msg) and not _signature_ok(msg):
                self._penalise(
                    msg_forwarder.to_base58(), PENALTY_BAD_SIGNATURE, "gossip with an invalid signature"
                )
                return
            await super().push_msg(msg_forwarder, msg)
        except Exception as exc:
            log.warning("dropping gossip from %s: %r", msg_forwarder, exc)
            self._penalise(msg_forwarder.to_base58(), PENALTY_HANDLER_ERROR, f"malformed gossip: {exc!r}")


def _signature_ok(msg: rpc_pb2.Message) -> bool:
    """StrictSign check that cannot raise (py-libp2p's raises on an undecodable key)."""
    try:
        return bool(signature_validator(msg))
    except Exception:
        return False
