"""`Discovery`: where peers are and when to dial them.

Addresses come from the configuration (bootnodes, reserved nodes), from `Network.connect`, and
from the Kademlia DHT (server mode) and identify through py-libp2p's peerstore. We dial with our
own per-peer backoff (py-libp2p's auto-connector is off, see `node.p2p.host`):

* at start, the reserved nodes and as many bootnodes as the outbound limit allows, then a DHT
  refresh, which dials the peers the bootnodes know about;
* on each maintenance tick (`Network`), reserved nodes that are not connected, and discovered
  peers while there is room for outbound connections; the DHT is refreshed while there is not
  enough of them;
* a dial that fails, or a connection closed soon after it opened (usually for lack of a free slot
  on one side), doubles the peer's backoff; otherwise both sides would redial every tick.

The DHT does not add peers we are already connected to (see LIBP2P-NOTES.md), so every admitted
peer is added to its routing table here.

Provider records (the image store's "who holds blob X", `node.storage.service`) use the same DHT:
`provide`, `stop_providing` and `find_providers`, keyed by multihash as IPFS keys them, built on
py-libp2p 0.8.1's record store and single ADD_PROVIDER / GET_PROVIDERS exchanges. Its own
`provide` and `find_providers` are not used: `find_providers` answers from the local record store
alone whenever that holds any record (so a node that provides a blob itself never looks
further); `provide` sends nothing until its closest-peer lookup ends, which one peer that stopped
answering without closing its connection holds for up to 30 s; and its 22-hour republish sends
every key at once, past the receivers' rate limit of 10 ADD_PROVIDER per 10 s per sender (the
blob service republishes on its own, paced). Ours ask the peers we already know near the key
(and connected peers) first, then those a bounded network lookup finds.
"""

from __future__ import annotations

import logging
import math
import random
from dataclasses import dataclass

import multiaddr
import trio
from libp2p.abc import IHost
from libp2p.kad_dht import KadDHT
from libp2p.kad_dht.common import ALPHA, BUCKET_SIZE
from libp2p.peer.id import ID
from libp2p.peer.peerinfo import PeerInfo as Libp2pPeerInfo
from libp2p.peer.peerstore import PERMANENT_ADDR_TTL

from node.p2p.config import NetworkConfig
from node.p2p.connections import Connections

__all__ = ["Discovery"]

log = logging.getLogger(__name__)

_DIAL_TIMEOUT = 5.0
_REDIAL_BACKOFF_MIN = 1.0
_REDIAL_BACKOFF_MAX = 30.0
_SHORT_LIVED = 10.0
_DHT_REFRESH_INTERVAL = 30.0
_DHT_REFRESH_TIMEOUT = 15.0
# How long addresses learnt from a provider record stay in the peerstore (Kubo keeps them ~30 min).
_PROVIDER_ADDR_TTL = 30 * 60
# One ADD_PROVIDER or GET_PROVIDERS exchange with one peer.
_PROVIDER_RPC_TIMEOUT = 5.0


@dataclass
class _Backoff:
    next_attempt: float = 0.0
    delay: float = _REDIAL_BACKOFF_MIN


class Discovery:
    """The address book, dials with backoff, and the Kademlia DHT of one `Network`."""

    def __init__(
        self,
        config: NetworkConfig,
        local_peer_id: str,
        *,
        bootnodes: list[tuple[str, multiaddr.Multiaddr]],
        reserved: dict[str, multiaddr.Multiaddr],
        connections: Connections,
    ) -> None:
        self.config = config
        self._local_peer_id = local_peer_id
        self._bootnodes = bootnodes
        self._reserved = reserved
        self._connections = connections
        self._known_addrs: dict[str, set[multiaddr.Multiaddr]] = {}
        for peer, addr in [*bootnodes, *reserved.items()]:
            self._known_addrs.setdefault(peer, set()).add(addr)
        self._backoff: dict[str, _Backoff] = {}
        self._host: IHost | None = None
        self._dht: KadDHT | None = None
        self._nursery: trio.Nursery | None = None
        self._last_dht_refresh = -math.inf

    def attach(self, host: IHost, dht: KadDHT | None, nursery: trio.Nursery) -> None:
        """The host (and the DHT, if enabled) are running; dials run in ``nursery``."""
        self._host, self._dht, self._nursery = host, dht, nursery

    def detach(self) -> None:
        self._host = self._dht = self._nursery = None

    # ----------------------------------------------------------------- addresses

    def remember(self, peer_id: str, addr: multiaddr.Multiaddr) -> None:
        """Keep an address we were given (`Network.connect`) for later redials."""
        self._known_addrs.setdefault(peer_id, set()).add(addr)

    def known_peers(self) -> list[str]:
        """Peers we have an address for (bootnodes, reserved, connected, discovered)."""
        peers = set(self._known_addrs)
        if self._host is not None:
            peers.update(p.to_base58() for p in self._host.get_peerstore().peers_with_addrs())
        peers.discard(self._local_peer_id)
        return sorted(peers)

    def peer_addrs(self, peer_id: str) -> list[str]:
        """Transport addresses of a peer (without the /p2p/ suffix), deduplicated."""
        addrs = set(self._known_addrs.get(peer_id, ()))
        if self._host is not None:
            try:
                addrs.update(self._host.get_peerstore().addrs(ID.from_base58(peer_id)))
            except Exception:
                pass
        return sorted({str(a).split("/p2p/", 1)[0] for a in addrs})

    def add_known_addrs_to_peerstore(self, peer_id: str) -> None:
        """Give py-libp2p the addresses we know, so that a request can dial the peer."""
        known = self._known_addrs.get(peer_id)
        if known and self._host is not None:
            self._host.get_peerstore().add_addrs(ID.from_base58(peer_id), list(known), PERMANENT_ADDR_TTL)

    def _dialable_addrs(self, peer_id: str) -> list[multiaddr.Multiaddr]:
        addrs = set(self._known_addrs.get(peer_id, ()))
        if self._host is not None:
            try:
                addrs.update(self._host.get_peerstore().addrs(ID.from_base58(peer_id)))
            except Exception:
                pass
        return sorted(addrs, key=str)

    # ----------------------------------------------------------------- dialing

    async def bootstrap(self) -> None:
        """Dial reserved nodes and as many bootnodes as the outbound limit allows, then seed and
        refresh the DHT (which dials the peers the bootnodes know about)."""
        bootnodes = [p for p, _ in self._bootnodes if p not in self._reserved and p != self._local_peer_id]
        if self.config.reserved_only:
            bootnodes = []
        random.shuffle(bootnodes)  # so that a fleet of nodes does not all pick the same ones
        wanted = list(self._reserved) + bootnodes[: self.config.max_outbound]
        async with trio.open_nursery() as nursery:
            for peer_id in wanted:
                if not self._connections.refuses(peer_id):
                    nursery.start_soon(self._try_dial, peer_id)
        await self._refresh_dht()

    def redial_reserved(self, now: float) -> None:
        """Dial the reserved nodes we are not connected to, as their backoff allows."""
        assert self._nursery is not None
        for peer_id in self._reserved:
            if not self._connections.is_connected(peer_id) and self._may_dial(peer_id, now):
                self._nursery.start_soon(self._try_dial, peer_id)

    def top_up(self, now: float) -> None:
        """Dial discovered peers while outbound slots are free; refresh the DHT while some are."""
        assert self._nursery is not None
        if self.config.reserved_only:
            return
        connections = self._connections
        room = (
            self.config.max_outbound
            - connections.outbound_count()
            - len(connections.dialing - set(self._reserved))
        )
        if room > 0:
            for peer_id in self._dial_candidates(now)[:room]:
                self._nursery.start_soon(self._try_dial, peer_id)
        if (
            self._dht is not None
            and connections.outbound_count() < self.config.max_outbound
            and now - self._last_dht_refresh > _DHT_REFRESH_INTERVAL
        ):
            self._nursery.start_soon(self._refresh_dht)

    def redial_soon(self, peer_id: str) -> None:
        """Dial the peer in the background if it is allowed and we know where it is."""
        if (
            self._nursery is not None
            and not self._connections.refuses(peer_id)
            and self._dialable_addrs(peer_id)
        ):
            self._nursery.start_soon(self._try_dial, peer_id)

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
            if peer_id in seen or peer_id == self._local_peer_id:
                continue
            seen.add(peer_id)
            if (
                self._connections.is_connected(peer_id)
                or peer_id in self._connections.dialing
                or self._connections.refuses(peer_id)
                or not self._may_dial(peer_id, now)
                or not self._dialable_addrs(peer_id)
            ):
                continue
            result.append(peer_id)
        return result

    def _may_dial(self, peer_id: str, now: float) -> bool:
        backoff = self._backoff.get(peer_id)
        return peer_id not in self._connections.dialing and (backoff is None or now >= backoff.next_attempt)

    async def _try_dial(self, peer_id: str) -> None:
        error = await self.dial(peer_id)
        if error is not None:
            log.debug("dial to %s failed: %s", peer_id, error)

    async def dial(self, peer_id: str) -> str | None:
        """Dial with our own backoff bookkeeping; return an error description or None."""
        dialing = self._connections.dialing
        if self._host is None or peer_id in dialing or self._connections.refuses(peer_id):
            return "not dialable now"
        addrs = self._dialable_addrs(peer_id)
        if not addrs:
            return "no known address"
        dialing.add(peer_id)
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
            dialing.discard(peer_id)

    def note_closed(self, peer_id: str, lived: float) -> None:
        """A connection of ``lived`` seconds ended: schedule the earliest redial of the peer.

        One closed soon after it opened (usually for lack of a free slot on one side) counts like
        a failed dial; otherwise both sides would redial every tick.
        """
        backoff = self._backoff.setdefault(peer_id, _Backoff())
        if lived < _SHORT_LIVED:
            backoff.next_attempt = trio.current_time() + backoff.delay
            backoff.delay = min(backoff.delay * 2, _REDIAL_BACKOFF_MAX)
        else:
            backoff.next_attempt = trio.current_time() + _REDIAL_BACKOFF_MIN
            backoff.delay = _REDIAL_BACKOFF_MIN

    def clear_dial_failures(self, peer_id: str) -> None:
        """Forget the peer's backoff (and py-libp2p's negative cache): it may be dialed at once."""
        self._backoff.pop(peer_id, None)
        if self._host is not None:
            self._host.get_network().unblock_peer(ID.from_base58(peer_id))

    # ----------------------------------------------------------------- DHT

    def on_admitted(self, peer_id: str) -> None:
        """A new connection passed admission: add the peer to the DHT routing table."""
        if self._dht is not None and self._nursery is not None:
            self._nursery.start_soon(self._add_to_dht, peer_id)

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
        for peer_id in self._connections.peer_ids():
            await self._add_to_dht(peer_id)
        with trio.move_on_after(_DHT_REFRESH_TIMEOUT):
            try:
                await self._dht.refresh_routing_table()
            except Exception:
                log.debug("DHT refresh failed", exc_info=True)

    def forget_in_dht(self, peer_id: str) -> None:
        """Drop a banned peer from the routing table, so that lookups stop returning it."""
        if self._dht is not None:
            try:
                self._dht.routing_table.remove_peer(ID.from_base58(peer_id))
            except Exception:
                pass

    # ----------------------------------------------------------------- provider records

    def _near_peers(self, key: bytes) -> list[ID]:
        """The peers to ask first about `key`: the routing table's closest, then connected peers."""
        dht, host = self._dht, self._host
        assert dht is not None and host is not None
        local = dht.local_peer_id
        near = [*dht.routing_table.find_local_closest_peers(key, BUCKET_SIZE), *host.get_connected_peers()]
        return [peer for peer in dict.fromkeys(near) if peer != local and not self._connections.refuses(peer.to_base58())]

    async def provide(self, key: bytes, timeout: float = 15.0) -> int:
        """Announce that we hold `key` (a multihash): a local record, then ADD_PROVIDER to the
        peers we know closest to it and to connected peers at once, then to the closest ones a
        network lookup finds (within `timeout`). Returns how many peers took the record.

        Done here rather than by py-libp2p's `provide`, which sends nothing until its lookup
        ends: one peer that stopped answering without closing its connection holds that lookup
        for up to 30 s. The key is not put on py-libp2p's republish list (module doc)."""
        dht, host = self._dht, self._host
        if dht is None or host is None:
            return 0
        store = dht.provider_store
        store.add_provider(key, Libp2pPeerInfo(host.get_id(), list(host.get_addrs())))
        sent: set[ID] = set()
        limiter = trio.CapacityLimiter(ALPHA)

        async def send(peer: ID) -> None:
            async with limiter:
                with trio.move_on_after(_PROVIDER_RPC_TIMEOUT):
                    try:
                        # py-libp2p 0.8.1's one ADD_PROVIDER message (fire and forget)
                        if await store._send_add_provider(peer, key):
                            sent.add(peer)
                    except Exception:
                        log.debug("ADD_PROVIDER to %s failed", peer, exc_info=True)

        async def send_all(peers: list[ID]) -> None:
            async with trio.open_nursery() as nursery:
                for peer in peers:
                    if peer not in sent and peer != dht.local_peer_id:
                        nursery.start_soon(send, peer)

        await send_all(self._near_peers(key))
        with trio.move_on_after(timeout):
            try:
                closest = await dht.peer_routing.find_closest_peers_network(key)
            except Exception:
                log.debug("closest-peer lookup for %s failed", key.hex(), exc_info=True)
                closest = []
            await send_all(closest)
        return len(sent)

    def stop_providing(self, key: bytes) -> None:
        """Forget our own record of `key` (the blob is gone); records sent to peers expire (48 h)."""
        if self._dht is None:
            return
        store = self._dht.provider_store
        store.providing_keys.discard(key)
        records = store.providers.get(key)
        if records is not None:
            records.pop(str(self._dht.local_peer_id), None)
            if not records:
                del store.providers[key]

    async def find_providers(self, key: bytes, count: int = 20, timeout: float = 10.0) -> list[str]:
        """Peers with a provider record for `key`: our records, those of the peers we know
        closest to it and of connected peers, then of the closest peers a network lookup finds
        (within `timeout`); one GET_PROVIDERS each, deduplicated, ourselves left out. Their
        addresses go to the peerstore so that a request can dial them. Records outlive what
        they announce: the caller checks who really answers."""
        dht, host = self._dht, self._host
        if dht is None or host is None:
            return []
        store = dht.provider_store
        found: dict[str, list[multiaddr.Multiaddr]] = {}
        asked: set[ID] = {dht.local_peer_id}
        limiter = trio.CapacityLimiter(ALPHA)

        def note(infos: list[Libp2pPeerInfo]) -> None:
            for info in infos:
                peer = info.peer_id.to_base58()
                if peer != self._local_peer_id and (peer in found or len(found) < count):
                    found.setdefault(peer, []).extend(info.addrs)

        async def ask(peer: ID) -> None:
            async with limiter:
                with trio.move_on_after(_PROVIDER_RPC_TIMEOUT):
                    try:
                        # py-libp2p 0.8.1's one GET_PROVIDERS exchange (its public
                        # find_providers stops at local records; module doc)
                        providers, _ = await store._get_providers_from_peer_with_closers(peer, key)
                    except Exception:
                        return
                    note(providers)

        async def ask_all(peers: list[ID]) -> None:
            async with trio.open_nursery() as nursery:
                for peer in peers:
                    if peer not in asked:
                        asked.add(peer)
                        nursery.start_soon(ask, peer)

        note(store.get_providers(key))
        await ask_all(self._near_peers(key))
        if len(found) < count:
            with trio.move_on_after(timeout):
                try:
                    closest = await dht.peer_routing.find_closest_peers_network(key)
                except Exception:
                    log.debug("closest-peer lookup for %s failed", key.hex(), exc_info=True)
                    closest = []
                await ask_all(closest)
        peerstore = host.get_peerstore()
        for peer, addrs in found.items():
            plain = sorted({multiaddr.Multiaddr(str(a).split("/p2p/", 1)[0]) for a in addrs}, key=str)
            if plain:
                try:
                    peerstore.add_addrs(ID.from_base58(peer), plain, _PROVIDER_ADDR_TTL)
                except Exception:
                    log.debug("bad provider addresses for %s", peer, exc_info=True)
        return list(found)
