"""Gossip: the node's topics, the validation pipeline into `on_gossip`, and publishing.

`Gossip` holds the four topics on a running pubsub; `TopicPipeline` is one topic's way in.

py-libp2p runs a topic validator on every message before it marks it seen, hands it to the
subscription channel and forwards it. We use the validator as the single entry point into the node:

    pubsub push_msg task --> TopicPipeline.validate() --bounded queue--> worker --> handler.on_gossip
                         <-------------------- verdict (ACCEPT forwards) <-------------------

Why this shape:

* "validate before forwarding" falls out of it: only ACCEPT makes the validator return True.
* Backpressure is ours, not py-libp2p's: each topic has a bounded queue; when it is full the message
  is IGNOREd at once (counted in `dropped`) instead of piling up validator tasks or being dropped
  silently by the 32-slot subscription channel further down.
* One worker per topic calls the handler sequentially, so blocks arrive in order and a slow block
  import does not hold up transactions or votes.
* Duplicates are filtered here. py-libp2p marks a message seen only after validation, so copies of
  one message arriving from several mesh peers would all be validated (and delivered) while the
  first copy is still in the queue. We key messages by content (sha256 of the data, the same id
  GossipSub uses) and let only the first copy through.
* A validator that raises would crash py-libp2p's Pubsub service and with it the node, so nothing
  from the handler escapes: exceptions become REJECT plus a penalty.

On the way out, py-libp2p drops silently what does not fit: messages over its 1 MiB RPC limit
(`Gossip.publish` refuses them above `max_gossip_bytes` instead) and RPCs beyond a peer's outbound
queue (`publish` waits, briefly, for a nearly full queue to drain).
"""

from __future__ import annotations

import hashlib
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import trio
from libp2p.peer.id import ID

from node.p2p.api import GossipTooLarge, NetworkNotRunning, UnknownTopic, Verdict
from node.p2p.config import NetworkConfig
from node.p2p.host import GuardedPubsub
from node.p2p.scoring import PENALTY_HANDLER_ERROR, PENALTY_INVALID_GOSSIP, PENALTY_OVERSIZED

__all__ = ["TOPICS", "Gossip", "GossipCounters", "TopicPipeline", "full_topic", "short_topic"]

log = logging.getLogger(__name__)

# PROTOCOL section 12. `tickets` is listed there for mining tickets; the node may leave it unused.
TOPICS: tuple[str, ...] = ("blocks", "tx", "votes", "tickets")

# How many recent message ids per topic we remember for duplicate filtering. GossipSub's own seen
# cache takes over once a message is validated; this only needs to cover messages in flight and
# REJECTed ones (which py-libp2p never marks seen, so peers can keep sending them).
_RECENT_IDS = 8192
# publish() waits while a recipient's outbound queue is this full (see _wait_for_outbound_room).
_QUEUE_HIGH_WATER = 0.75
_PUBLISH_WAIT_MAX = 2.0
_STALL_AFTER = 0.25  # a full queue that has not shrunk for this long belongs to a stalled peer


def full_topic(genesis_hash: bytes, name: str) -> str:
    """``/imagechain/<genesis hex>/<name>``: nodes of different chains never share a mesh."""
    if name not in TOPICS:
        raise UnknownTopic(f"unknown topic {name!r}; expected one of {', '.join(TOPICS)}")
    return f"/imagechain/{genesis_hash.hex()}/{name}"


def short_topic(topic: str) -> str:
    """Inverse of `full_topic` (last path component)."""
    return topic.rsplit("/", 1)[-1]


@dataclass
class GossipCounters:
    """Per-topic message counts, for tests (count what arrived) and Prometheus.

    received:   messages from peers that reached the validator (not counting own publishes)
    duplicates: copies of a message already being or already validated
    accepted / ignored / rejected: handler verdicts (oversize and handler errors count as rejected)
    dropped:    IGNOREd without calling the handler because the topic queue was full
    published:  messages this node published
    publish_waits: publishes that first waited for a recipient's outbound queue to drain
    delivered:  messages drained from py-libp2p's subscription channel (own publishes included)
    """

    received: int = 0
    duplicates: int = 0
    accepted: int = 0
    ignored: int = 0
    rejected: int = 0
    dropped: int = 0
    published: int = 0
    publish_waits: int = 0
    delivered: int = 0

    def as_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


@dataclass
class _Pending:
    data: bytes
    peer_id: str
    done: trio.Event = field(default_factory=trio.Event)
    verdict: Verdict = Verdict.IGNORE
    abandoned: bool = False


Penalise = Callable[[str, int, str], None]
Refuses = Callable[[str], bool]
OnGossip = Callable[[str, bytes, str], Awaitable[Verdict]]


class TopicPipeline:
    """Validation queue, worker and counters of one topic."""

    def __init__(
        self,
        name: str,
        *,
        on_gossip: OnGossip,
        penalise: Penalise,
        refuses: Refuses,
        max_bytes: int,
        queue_size: int,
    ) -> None:
        self.name = name
        self.counters = GossipCounters()
        self._on_gossip = on_gossip
        self._penalise = penalise
        self._refuses = refuses
        self._max_bytes = max_bytes
        self._send, self._receive = trio.open_memory_channel[_Pending](queue_size)
        # msg id -> in-flight entry, or the final ACCEPT/REJECT verdict
        self._recent: OrderedDict[bytes, _Pending | Verdict] = OrderedDict()

    @property
    def queued(self) -> int:
        """Messages waiting for the worker (for stats and tests)."""
        return self._receive.statistics().current_buffer_used

    async def validate(self, peer_id: str, data: bytes) -> bool:
        """py-libp2p async topic validator body: True means ACCEPT (deliver and forward).

        Never raises; `Network` wraps it once more anyway because a raising validator is fatal.
        """
        self.counters.received += 1
        if self._refuses(peer_id):
            # Banned a moment ago with messages still in flight: drop quietly, no extra penalty.
            self.counters.ignored += 1
            return False
        if len(data) > self._max_bytes:
            self.counters.rejected += 1
            self._penalise(peer_id, PENALTY_OVERSIZED, f"oversized {self.name} gossip ({len(data)} bytes)")
            return False
        msg_id = hashlib.sha256(data).digest()
        known = self._recent.get(msg_id)
        if known is not None:
            self.counters.duplicates += 1
            if known is Verdict.REJECT:
                self._penalise(peer_id, PENALTY_INVALID_GOSSIP, f"repeated invalid {self.name} gossip")
            return False
        pending = _Pending(data, peer_id)
        try:
            self._send.send_nowait(pending)
        except trio.WouldBlock:
            self.counters.dropped += 1
            return False
        self._remember(msg_id, pending)
        try:
            await pending.done.wait()
        except BaseException:
            # py-libp2p's validation timeout (or shutdown) cancelled us: the worker skips the entry
            # if it has not started it, and a later copy of the message may be validated afresh.
            pending.abandoned = True
            self._forget(msg_id, pending)
            raise
        if pending.verdict is Verdict.IGNORE:
            self._forget(msg_id, pending)  # may become valid later (e.g. parent block arrived)
        else:
            self._remember(msg_id, pending.verdict)
        return pending.verdict is Verdict.ACCEPT

    async def run_worker(self) -> None:
        """Feed queued messages to the handler one at a time, until cancelled."""
        async for pending in self._receive:
            if pending.abandoned:
                continue
            pending.verdict = await self._judge(pending)
            pending.done.set()

    async def _judge(self, pending: _Pending) -> Verdict:
        try:
            verdict = await self._on_gossip(self.name, pending.data, pending.peer_id)
            if not isinstance(verdict, Verdict):
                raise TypeError(f"on_gossip returned {verdict!r}, not a Verdict")
        except Exception as exc:  # a raising validator would kill the node
            log.exception("on_gossip(%s) from %s raised; treating as REJECT", self.name, pending.peer_id)
            self.counters.rejected += 1
            self._penalise(
                pending.peer_id, PENALTY_HANDLER_ERROR, f"{self.name} gossip made the handler fail: {exc!r}"
            )
            return Verdict.REJECT
        if verdict is Verdict.ACCEPT:
            self.counters.accepted += 1
        elif verdict is Verdict.IGNORE:
            self.counters.ignored += 1
        else:
            self.counters.rejected += 1
            self._penalise(pending.peer_id, PENALTY_INVALID_GOSSIP, f"invalid {self.name} gossip")
        return verdict

    def _remember(self, msg_id: bytes, value: _Pending | Verdict) -> None:
        self._recent[msg_id] = value
        self._recent.move_to_end(msg_id)
        while len(self._recent) > _RECENT_IDS:
            self._recent.popitem(last=False)

    def _forget(self, msg_id: bytes, pending: _Pending) -> None:
        if self._recent.get(msg_id) is pending:
            del self._recent[msg_id]


class Gossip:
    """The node's topics on one pubsub: validation on the way in, backpressure on the way out.

    Created with the node, started (`start`) once the pubsub service runs; per-topic counters
    exist from the start, so they can be read before, during and after a run.
    """

    def __init__(
        self,
        config: NetworkConfig,
        local_peer_id: str,
        *,
        on_gossip: OnGossip,
        penalise: Penalise,
        refuses: Refuses,
    ) -> None:
        self.config = config
        self._local_peer_id = local_peer_id
        self._topics = {name: full_topic(config.genesis_hash, name) for name in TOPICS}
        self._pipelines = {
            name: TopicPipeline(
                name,
                on_gossip=on_gossip,
                penalise=penalise,
                refuses=refuses,
                max_bytes=config.max_gossip_bytes,
                queue_size=config.gossip_queue_size,
            )
            for name in TOPICS
        }
        self._stalled: set[ID] = set()  # peers whose outbound gossip queue stopped draining
        self._pubsub: GuardedPubsub | None = None

    async def start(self, pubsub: GuardedPubsub, nursery: trio.Nursery) -> None:
        """Validate, subscribe to and drain every topic on a running pubsub (workers in ``nursery``)."""
        self._pubsub = pubsub
        for name, topic in self._topics.items():
            pipeline = self._pipelines[name]
            pubsub.set_topic_validator(topic, self._validator(pipeline), is_async_validator=True)
            subscription = await pubsub.subscribe(topic)
            nursery.start_soon(pipeline.run_worker)
            nursery.start_soon(self._drain_subscription, subscription, pipeline.counters)

    def detach(self) -> None:
        """The pubsub stopped: publishing fails with `NetworkNotRunning` until the next `start`."""
        self._pubsub = None

    def topic(self, name: str) -> str:
        """Full topic string of a short name ("blocks" -> "/imagechain/<genesis>/blocks")."""
        try:
            return self._topics[name]
        except KeyError:
            raise UnknownTopic(f"unknown topic {name!r}; expected one of {', '.join(TOPICS)}") from None

    async def publish(self, topic: str, data: bytes) -> None:
        """Sign and gossip ``data`` on a topic; see `Network.publish`."""
        full = self.topic(topic)
        if len(data) > self.config.max_gossip_bytes:
            raise GossipTooLarge(
                f"{len(data)}-byte {topic} message exceeds max_gossip_bytes={self.config.max_gossip_bytes}; "
                "send it over request-response"
            )
        if self._pubsub is None:
            raise NetworkNotRunning("the network is not running")
        pubsub = self._pubsub
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
        own_id = ID.from_base58(self._local_peer_id)

        async def validate(forwarder: ID, msg: Any) -> bool:
            if forwarder == own_id:
                return True  # our own publish: the node made it
            try:
                return await pipeline.validate(forwarder.to_base58(), msg.data)
            except Exception:
                log.exception("gossip validator failed; rejecting")
                return False

        return validate

    @staticmethod
    async def _drain_subscription(subscription: Any, counters: GossipCounters) -> None:
        """Empty py-libp2p's 32-slot subscription channel promptly (it drops when full).

        The node already saw each message in `on_gossip`; this only keeps the channel empty and
        counts deliveries, which tests compare against the handler's count.
        """
        async for _msg in subscription:
            counters.delivered += 1

    @property
    def counters(self) -> dict[str, GossipCounters]:
        """Per-topic counters keyed by short topic name."""
        return {name: p.counters for name, p in self._pipelines.items()}

    def queued(self) -> dict[str, int]:
        """Messages waiting for each topic's worker."""
        return {name: p.queued for name, p in self._pipelines.items()}

    @property
    def outbound_drops(self) -> int:
        """RPCs py-libp2p dropped because a peer's outbound queue was full (0 when not running)."""
        return self._pubsub.outbound_drops if self._pubsub is not None else 0

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
