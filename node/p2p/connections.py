"""`Connections`: the peers we keep a connection with, and the rules for who may connect.

Peer management is ours rather than py-libp2p's connection manager's, because the rules are
specific: limits per direction, reserved nodes exempt from them, a reserved-only mode, and score
bans and manual blocks that refuse connections in both directions. Two places apply them:

* the gate (`gate`), which `node.p2p.host` asks during the Noise handshake, before py-libp2p
  registers the connection;
* the connection events (`on_connected`), which apply the inbound limit at once and admit the
  connection. Only then does the node hear about the peer, and only admitted connections count
  against the limits.

What the maintenance tick does with this state (trim outbound connections py-libp2p opened on its
own) is `trim_outbound`; whom to dial and when is `node.p2p.discovery`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass

import multiaddr
import trio
from libp2p.abc import IHost, INetConn, INetStream, INetwork, INotifee
from libp2p.peer.id import ID
from libp2p.rcmgr import Direction

from node.p2p.config import NetworkConfig
from node.p2p.host import close_connection
from node.p2p.scoring import PeerScores

__all__ = ["Connection", "Connections"]

log = logging.getLogger(__name__)


@dataclass
class Connection:
    """A connected peer that passed admission (the handler has been told about it)."""

    conn: INetConn  # the one connection we keep with this peer
    direction: str
    since: float  # unix time, for display
    since_mono: float
    requested: bool  # we dialed it on purpose (bootnode, reserved, top-up, connect())
    closing: bool = False  # we decided to close it; no longer counts against the limits


class _Notifee(INotifee):
    def __init__(self, connections: Connections) -> None:
        self._connections = connections

    async def connected(self, network: INetwork, conn: INetConn) -> None:
        self._connections.on_connected(conn)

    async def disconnected(self, network: INetwork, conn: INetConn) -> None:
        self._connections.on_disconnected(conn)

    async def opened_stream(self, network: INetwork, stream: INetStream) -> None:
        return None

    async def closed_stream(self, network: INetwork, stream: INetStream) -> None:
        return None

    async def listen(self, network: INetwork, multiaddr: multiaddr.Multiaddr) -> None:
        return None

    async def listen_close(self, network: INetwork, multiaddr: multiaddr.Multiaddr) -> None:
        return None


class Connections:
    """Admitted connections, the peers being dialed, and the admission rules.

    ``on_admitted(peer_id)`` is called when a connection passes admission, ``on_closed(peer_id,
    seconds it lived)`` when the last connection with an admitted peer goes away.
    """

    def __init__(
        self,
        config: NetworkConfig,
        local_peer_id: str,
        *,
        reserved: Collection[str],
        scores: PeerScores,
        on_admitted: Callable[[str], None],
        on_closed: Callable[[str, float], None],
    ) -> None:
        self.config = config
        self._local_peer_id = local_peer_id
        self._reserved = reserved
        self._scores = scores
        self._on_admitted = on_admitted
        self._on_closed = on_closed
        self._conns: dict[str, Connection] = {}
        # Peers we are dialing right now: a connection that comes up with one of them was requested.
        self.dialing: set[str] = set()
        self._host: IHost | None = None
        self._nursery: trio.Nursery | None = None

    def notifee(self) -> INotifee:
        """The py-libp2p notifee that feeds connection events in (register it before the host runs)."""
        return _Notifee(self)

    def attach(self, host: IHost, nursery: trio.Nursery) -> None:
        """The host is running: closing connections now has a host and a nursery to do it in."""
        self._host, self._nursery = host, nursery

    def detach(self) -> None:
        """The host stopped: every connection and dial went with it."""
        self._host = self._nursery = None
        self._conns.clear()
        self.dialing.clear()

    # ----------------------------------------------------------------- queries

    def is_connected(self, peer_id: str) -> bool:
        return peer_id in self._conns

    def peer_ids(self) -> list[str]:
        """Admitted peers, in the order they were admitted."""
        return list(self._conns)

    def items(self) -> list[tuple[str, Connection]]:
        """Admitted connections by peer id, sorted by peer id."""
        return sorted(self._conns.items())

    def refuses(self, peer_id: str) -> bool:
        """Banned or blocked, or not reserved while only reserved nodes are allowed."""
        if self._scores.refuses(peer_id):
            return True
        return self.config.reserved_only and peer_id not in self._reserved

    def outbound_count(self) -> int:
        return self._count("outbound")

    def _inbound_count(self) -> int:
        return self._count("inbound")

    def _count(self, direction: str) -> int:
        """Connections of one direction that count against the limit (reserved ones do not)."""
        return sum(
            1
            for p, c in self._conns.items()
            if c.direction == direction and not c.closing and p not in self._reserved
        )

    # ----------------------------------------------------------------- admission

    def gate(self, peer_id: str, direction: str) -> str | None:
        """Connection gate, asked during the security handshake (see `node.p2p.host`).

        Outbound connections are only refused for banned/blocked peers: py-libp2p dials for DHT
        queries, which discovery needs; `trim_outbound` closes the surplus afterwards.
        """
        if peer_id in self._conns and not self.refuses(peer_id):
            return None  # a second connection to a connected peer; `_resolve_duplicate` decides
        if direction == "outbound":
            return "banned or blocked" if self.refuses(peer_id) else None
        return self._admission_refusal(peer_id, direction)

    def _admission_refusal(self, peer_id: str, direction: str) -> str | None:
        if self.refuses(peer_id):
            return "banned or blocked"
        if peer_id in self._reserved:
            return None
        if direction == "inbound" and self._inbound_count() >= self.config.max_inbound:
            return f"inbound limit ({self.config.max_inbound}) reached"
        return None

    # ----------------------------------------------------------------- connection events

    def on_connected(self, conn: INetConn) -> None:
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
        self._conns[peer_id] = Connection(
            conn, direction, time.time(), time.monotonic(), requested=peer_id in self.dialing
        )
        log.debug("connected to %s (%s)", peer_id, direction)
        self._on_admitted(peer_id)

    def _resolve_duplicate(self, peer_id: str, state: Connection, conn: INetConn, direction: str) -> None:
        """Two connections with one peer (both dialed at once): keep the same one on both sides.

        py-libp2p keeps both for its 20 s grace period. Both ends apply this rule, which depends
        only on who dialed: the connection dialed by the smaller peer id survives. The peer keeps
        the direction it was admitted with, so the swap cannot bypass the per-direction limits.
        """

        def dialer(d: str) -> str:
            return self._local_peer_id if d == "outbound" else peer_id

        if dialer(direction) < dialer(state.direction):
            old, state.conn = state.conn, conn
            self._close_conn_soon(old)
        else:
            self._close_conn_soon(conn)

    def on_disconnected(self, conn: INetConn) -> None:
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
        self._on_closed(peer_id, time.monotonic() - state.since_mono)

    # ----------------------------------------------------------------- closing

    def trim_outbound(self) -> None:
        """Close outbound connections py-libp2p opened on its own beyond the limit, after a grace."""
        excess = self.outbound_count() - self.config.max_outbound
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
            self.disconnect_soon(peer_id, "outbound limit")

    def disconnect_soon(self, peer_id: str, reason: str) -> None:
        """Stop counting the peer against the limits now and close its connection in the background."""
        state = self._conns.get(peer_id)
        if state is not None:
            state.closing = True
        if self._nursery is not None:
            self._nursery.start_soon(self._close_peer, peer_id, reason)

    def _close_conn_soon(self, conn: INetConn) -> None:
        if self._nursery is not None:
            self._nursery.start_soon(close_connection, conn)

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
