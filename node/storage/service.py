"""The image store's service: the node's `BlobStore`, served to and fetched from the network.

The white paper's distributed image host (2.2), over the node's own libp2p network:

* **Serving** (`serve`): `/imagechain/blob/1` (`node.storage.protocol`) answers a blob's size
  and segment roots, and any segment with its Merkle proof.
* **Fetching** (`fetch`): providers come from the Kademlia DHT (provider records keyed by the
  root's multihash, as IPFS keys them), then connected peers. Every answer is checked against
  the root before it is stored; a peer that sends bytes that do not match is penalised
  (`protocol.PENALTY_FORGED`, one line in the log naming it) and the next provider is tried.
  Segments are asked 8 at a time (`SEGMENTS`), up to `REQUESTS_IN_FLIGHT` requests at once. A blob is announced in the DHT once
  it is held whole (uploads, fetches, and every held blob at start-up), paced to stay under
  py-libp2p's ADD_PROVIDER rate limit.
* **Replication** (with a storer account, `BlobConfig.storer`): the runtime assigns each blob
  to `replication` (R) bonded storage miners by rendezvous hashing
  (`node.runtime.storage.assigned_storers`). This node walks the registrations on chain, fetches
  the blobs assigned to its account, and keeps them. Its repair loop checks, a few blobs per
  round, how many *live storers* a blob has: providers that answer INFO and say they keep it
  (a cache such as the uploader's or a gateway's copy is not counted). Below R, an assigned
  storer re-announces its copy, and the next miners in rendezvous order (ranks R to 2R-1,
  "standbys") take a copy over: the standby of rank R + i after i + 2 rounds in a row below R
  (`STANDBY_PATIENCE`: a new blob is below R until its storers have fetched it), so one dead
  standby is covered by the next without all of them copying at once. So a blob
  stays retrievable after its uploader goes offline, and goes back to R copies after a storer
  dies.
* **Garbage collection**: blobs that no registration in the best state references
  (`storage:blob:<root>`) and that were not written for `gc_grace_s` (an upload comes before
  its registration) are deleted.

Bad input never stops the service: malformed requests are rejected (the p2p layer penalises
the requester), forged answers penalise their sender, a full store is a log line and an error
for the uploader. Every background task runs in the service's nursery (`run`).
"""

from __future__ import annotations

import functools
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, Protocol

import trio

from node.codec import DecodeError
from node.p2p.api import NetworkError
from node.primitives.merkle import verify_inclusion
from node.runtime import copyright, storage
from node.runtime.support import StateGet
from node.state.trie import MissingNode
from node.storage.protocol import (
    INFO,
    MAX_BATCH,
    NOT_HELD,
    PENALTY_FORGED,
    PROTOCOL,
    SEGMENT,
    BadRequest,
    decode_info,
    decode_request,
    decode_segments,
    encode_info,
    encode_segment,
    encode_segments,
    info_request,
    segments_request,
)
from node.storage.store import MAX_BLOB_BYTES, BlobStore, QuotaExceeded, SegmentMismatch, StoreError

if TYPE_CHECKING:
    from node.p2p.api import PeerInfo

__all__ = ["BlobConfig", "BlobNetwork", "BlobService", "ProviderView", "provider_key"]

log = logging.getLogger("imagechain.blobs")

GIB = 1 << 30
MIB = 1 << 20

# The multihash prefix of a blake2b-256 digest (code 0xb220, length 32): provider records are
# keyed by multihash, so a blob root is announced as IPFS would announce a blake2b-256 block.
MULTIHASH_BLAKE2B_256 = bytes([0xA0, 0xE4, 0x02, 0x20])

REQUESTS_IN_FLIGHT = 3  # SEGMENTS requests at once to one provider (of up to 8 segments each)
REQUEST_TIMEOUT_S = 15.0
PROBE_TIMEOUT_S = 5.0  # an INFO probe of a provider, when counting live storers
UNRESPONSIVE_S = 30.0  # a provider whose probe failed counts as not live this long without asking
FIND_TIMEOUT_S = 5.0
FALLBACK_PEERS = 8  # connected peers asked when the DHT knows no (live) provider
DEMAND_FETCHES = 4  # fetches for the gateway and RPC at once; the replication worker is apart
LOOKUPS_AT_ONCE = 4  # provider lookups (DHT + probes) at once: RPC callers wait their turn
PROVIDE_BURST = 8  # provide() calls before pacing (receivers take 10 per 10 s from one sender)
PROVIDE_INTERVAL_S = 1.2
REPROVIDE_INTERVAL_S = 12 * 3600.0  # our own republish (records expire after 48 h)
PROGRESS_INTERVAL_S = 5.0
PROVIDERS_CACHE_S = 10.0
# Repair rounds in a row below R before the first standby copies a blob: one round is not enough,
# a freshly registered blob is below R until its assigned storers have fetched it.
STANDBY_PATIENCE = 2


def provider_key(root: bytes) -> bytes:
    return MULTIHASH_BLAKE2B_256 + root


def short_root(root: bytes) -> str:
    text = root.hex()
    return f"0x{text[:8]}…{text[-4:]}"


@dataclass(frozen=True)
class BlobConfig:
    """The image store's settings; the command line sets them (`--blob-*`, README "Security")."""

    # Bytes of blob segments the store may hold (`--blob-quota`, GiB).
    quota_bytes: int = 10 * GIB
    # The largest `PUT /blob` body (`--blob-max-upload`, MiB); the store takes at most 256 MiB.
    max_upload_bytes: int = MAX_BLOB_BYTES
    # An unreferenced blob is kept this long after it was last written (`--blob-gc-grace`, s).
    gc_grace_s: float = 3600.0
    gc_interval_s: float = 600.0
    # The bonded storage miner whose assigned blobs this node keeps (`--blob-storer`); None: the
    # node only serves what it holds and caches what its gateway fetches.
    storer: bytes | None = None
    # How often the repair loop runs (`--blob-repair-interval`, s), and how many blobs it checks
    # for live storers each time (each check is a DHT lookup and one INFO per provider).
    repair_interval_s: float = 60.0
    checks_per_round: int = 32
    # How often new registrations are looked at (assigned blobs are fetched at once).
    scan_interval_s: float = 2.0

    def __post_init__(self) -> None:
        if self.quota_bytes < 0:
            raise ValueError("the blob quota cannot be negative")
        if not 0 < self.max_upload_bytes <= MAX_BLOB_BYTES:
            raise ValueError(f"the upload limit must be 1 to {MAX_BLOB_BYTES} bytes")
        if self.storer is not None and len(self.storer) != 32:
            raise ValueError("a storer is a 32-byte account id")
        for name in ("gc_grace_s", "gc_interval_s", "repair_interval_s", "scan_interval_s"):
            if getattr(self, name) <= 0 and name != "gc_grace_s":
                raise ValueError(f"{name} must be positive")
        if self.gc_grace_s < 0 or self.checks_per_round < 1:
            raise ValueError("gc_grace_s >= 0 and checks_per_round >= 1")


class BlobNetwork(Protocol):
    """What the service uses of the p2p layer (`node.p2p.network.Network`)."""

    peer_id: str

    async def request(self, peer_id: str, protocol: str, data: bytes, timeout: float = 10.0) -> bytes: ...

    def report(self, peer_id: str, penalty: int, reason: str) -> None: ...

    async def provide(self, key: bytes) -> bool: ...

    def stop_providing(self, key: bytes) -> None: ...

    async def find_providers(self, key: bytes, count: int = 20, timeout: float = 10.0) -> list[str]: ...

    def peers(self) -> list[PeerInfo]: ...


@dataclass
class BlobStats:
    """Counters since start, for `storage_stats` and the tests."""

    uploads: int = 0
    fetches: int = 0
    fetched: int = 0
    fetch_failures: int = 0
    bytes_fetched: int = 0
    segments_served: int = 0
    bytes_served: int = 0
    forged_answers: int = 0
    provided: int = 0
    reprovided: int = 0
    repairs: int = 0
    repair_rounds: int = 0
    gc_deleted: int = 0
    gc_freed_bytes: int = 0


@dataclass(frozen=True)
class ProviderView:
    """A provider of a blob as a probe saw it: answering INFO (`live`) and keeping it as a storer."""

    peer_id: str
    live: bool
    keeps: bool


@dataclass
class _Duty:
    rank: int  # miners with a higher rendezvous score for this blob; < R: assigned
    deficit_rounds: int = 0  # repair rounds in a row that saw fewer than R live storers


class _Forged(Exception):
    """A provider answered with bytes that do not match the root."""


class _Gone(Exception):
    """A provider stopped answering, or no longer holds the blob."""


@dataclass
class _Pacer:
    """A token bucket: `burst` at once, then one every `interval` seconds."""

    burst: int
    interval: float
    tokens: float = field(default=0.0)
    updated: float = field(default=-math.inf)

    async def take(self) -> None:
        now = trio.current_time()
        self.tokens = min(self.burst, self.tokens + (now - self.updated) / self.interval)
        self.updated = now
        if self.tokens < 1:
            await trio.sleep((1 - self.tokens) * self.interval)
            self.tokens, self.updated = 1.0, trio.current_time()
        self.tokens -= 1


class BlobService:
    """The node's blob store and everything the network does with it (module doc).

    Built by the composition root (`node.service.open_node`) beside the chain; `attach` gives it
    the network, `run` its background work. Without a network it still stores uploads, serves
    the gateway and collects garbage.
    """

    def __init__(
        self,
        path: Path,
        config: BlobConfig,
        best_state: Callable[[], StateGet],
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.store = BlobStore(path, config.quota_bytes, clock=clock)
        self.best_state = best_state
        self.network: BlobNetwork | None = None
        self.stats = BlobStats()
        self._write_lock = trio.Lock()
        self._fetching: dict[bytes, trio.Event] = {}
        self._demand_slots = trio.CapacityLimiter(DEMAND_FETCHES)
        self._lookup_slots = trio.CapacityLimiter(LOOKUPS_AT_ONCE)
        self._nursery: trio.Nursery | None = None
        self._provide_queue: set[bytes] = set()
        self._provide_wakeup = trio.Event()
        self._pacer = _Pacer(PROVIDE_BURST, PROVIDE_INTERVAL_S)
        self._wanted: dict[bytes, str] = {}  # blobs the storer loop fetches, in order, with why
        self._wanted_wakeup = trio.Event()
        self._duties: dict[bytes, _Duty] = {}
        self._replication = storage.StorageParams().replication
        self._scanned_to = copyright.FIRST_ID  # registrations below this id have been looked at
        self._check_cursor = 0
        self._providers: dict[bytes, tuple[float, list[ProviderView]]] = {}
        self._unresponsive: dict[str, float] = {}  # peers whose probe failed, until when not to ask

    def close(self) -> None:
        self.store.close()

    def attach(self, network: BlobNetwork) -> None:
        """The network to serve and fetch on (the composition root, once libp2p runs)."""
        self.network = network

    # -- reads ----------------------------------------------------------------------------------

    def referenced(self, root: bytes) -> storage.Blob | None:
        """The blob's record in the best state: a registration references it."""
        try:
            return storage.get_blob(self.best_state(), root)
        except MissingNode:
            return None

    def keeps(self, root: bytes) -> bool:
        """Whether this node keeps `root` as a storer (assigned, or a standby that holds it)."""
        return root in self._duties and self.store.has(root)

    def duties(self) -> dict[str, int]:
        assigned = sum(1 for d in self._duties.values() if d.rank < self._replication)
        return {"assigned": assigned, "standby": len(self._duties) - assigned}

    def status(self) -> dict[str, object]:
        """The store and the counters since start, with JSON names (`storage_stats`)."""
        stats = self.stats
        return {
            "storedBytes": self.store.stored_bytes(),
            "quotaBytes": self.store.quota_bytes,
            "blobs": self.store.blob_count(),
            "fetching": len(self._fetching) + len(self._wanted),
            "uploads": stats.uploads,
            "fetches": stats.fetches,
            "fetched": stats.fetched,
            "fetchFailures": stats.fetch_failures,
            "bytesFetched": stats.bytes_fetched,
            "segmentsServed": stats.segments_served,
            "bytesServed": stats.bytes_served,
            "forgedAnswers": stats.forged_answers,
            "provided": stats.provided,
            "reprovided": stats.reprovided,
            "repairs": stats.repairs,
            "repairRounds": stats.repair_rounds,
            "gcDeleted": stats.gc_deleted,
            "gcFreedBytes": stats.gc_freed_bytes,
        }

    # -- serving (the `/imagechain/blob/1` handler) ----------------------------------------------

    def serve(self, data: bytes, peer_id: str) -> bytes:
        """Answer one request; BadRequest for a malformed one (the p2p layer penalises the peer)."""
        kind, root, first, count = decode_request(data)
        info = self.store.info(root)
        if kind == INFO:
            if info is None or not info.complete:
                return NOT_HELD
            return encode_info(info.size, info.segment_roots, self.keeps(root))
        if info is not None and first >= info.segment_count:
            raise BadRequest(f"segment {first} of a blob of {info.segment_count} segments")
        held = []
        for index in range(first, min(first + count, info.segment_count if info is not None else first + 1)):
            found = self.store.segment(root, index)
            if found is not None:
                held.append((index, *found))
        if not held:
            return NOT_HELD
        self.stats.segments_served += len(held)
        self.stats.bytes_served += sum(len(segment) for _, segment, _ in held)
        if kind == SEGMENT:
            _, segment, proof = held[0]
            return encode_segment(segment, proof)
        return encode_segments(held)

    # -- uploads --------------------------------------------------------------------------------

    async def upload(self, file: BinaryIO, size: int) -> tuple[bytes, bool]:
        """Store an uploaded blob (from a file, one segment in memory at a time) and announce it.
        Returns (root, whether it is new here). Raises QuotaExceeded / StoreError."""
        async with self._write_lock:
            before = self.store.stored_bytes()
            root = await trio.to_thread.run_sync(self.store.put_file, file, size)
            created = self.store.stored_bytes() != before
        self.stats.uploads += 1
        log.info("📤 Blob %s uploaded (%s)%s", short_root(root), _size(size), "" if created else ", already held")
        self._announce(root)
        return root, created

    # -- fetching -------------------------------------------------------------------------------

    async def fetch(self, root: bytes, timeout: float = 60.0) -> bool:
        """Make sure the blob is held whole, fetching it from the network if needed; False if no
        provider had it (or the time ran out). The fetch itself runs in the service's nursery,
        so a caller that gives up does not cancel it for others."""
        if self.store.has(root):
            return True
        if self.network is None:
            return False
        with trio.move_on_after(timeout):
            await self._demand(root)
        return self.store.has(root)

    async def _demand(self, root: bytes) -> None:
        running = self._fetching.get(root)
        if running is None:
            running = self._fetching[root] = trio.Event()
            if self._nursery is not None:
                self._nursery.start_soon(self._fetch_task, root, running, "requested here")
            else:
                await self._fetch_task(root, running, "requested here")
                return
        await running.wait()

    async def _fetch_task(self, root: bytes, done: trio.Event, why: str) -> None:
        try:
            async with self._demand_slots:
                await self._fetch(root, why)
        finally:
            self._fetching.pop(root, None)
            done.set()

    async def _fetch(self, root: bytes, why: str) -> bool:
        """`_try_providers`, and a bug in it is a log line, not the end of the service."""
        try:
            return await self._try_providers(root, why)
        except Exception:
            log.exception("fetching blob %s failed", short_root(root))
            return False

    async def _try_providers(self, root: bytes, why: str) -> bool:
        """Try the providers one after the other until the blob is whole."""
        network = self.network
        if network is None or self.store.has(root):
            return self.store.has(root)
        self.stats.fetches += 1
        started = trio.current_time()
        candidates = await self._candidates(root)
        for peer in candidates:
            try:
                if await self._fetch_from(peer, root):
                    info = self.store.info(root)
                    size = info.size if info is not None else 0
                    self.stats.fetched += 1
                    log.info(
                        "📥 Blob %s (%s) fetched from %s in %.1f s (%s)",
                        short_root(root), _size(size), peer, trio.current_time() - started, why,
                    )  # fmt: skip
                    self._announce(root)
                    return True
            except QuotaExceeded as exc:
                log.error("🗄  Blob %s not fetched: %s (--blob-quota)", short_root(root), exc)
                break
        self.stats.fetch_failures += 1
        log.warning(
            "Blob %s could not be fetched (%s): %d provider(s) tried, none served it",
            short_root(root), why, len(candidates),
        )  # fmt: skip
        return False

    async def _candidates(self, root: bytes) -> list[str]:
        """DHT providers first, then (a few) connected peers that announced nothing."""
        network = self.network
        assert network is not None
        try:
            found = await network.find_providers(provider_key(root), 20, FIND_TIMEOUT_S)
        except Exception:
            log.debug("provider lookup for %s failed", short_root(root), exc_info=True)
            found = []
        connected = [p.peer_id for p in network.peers() if p.peer_id not in found]
        ordered = [peer for peer in dict.fromkeys([*found, *connected[:FALLBACK_PEERS]]) if peer != network.peer_id]
        now = trio.current_time()
        return sorted(ordered, key=lambda peer: self._unresponsive.get(peer, -math.inf) > now)  # stable

    async def _fetch_from(self, peer: str, root: bytes) -> bool:
        """Fetch what is missing from one provider; True once the blob is whole. A forged or
        malformed answer penalises the peer and ends this attempt (False)."""
        network = self.network
        assert network is not None
        try:
            answer = decode_info(await network.request(peer, PROTOCOL, info_request(root), PROBE_TIMEOUT_S))
        except NetworkError as exc:
            log.debug("INFO %s from %s failed: %s", short_root(root), peer, exc)
            self._unresponsive[peer] = trio.current_time() + UNRESPONSIVE_S
            return False
        except DecodeError as exc:
            self._forged(peer, f"malformed INFO answer for blob {short_root(root)}: {exc}")
            return False
        if answer is None:
            return False
        try:
            async with self._write_lock:
                self.store.expect(root, answer.size, answer.segment_roots)
        except SegmentMismatch:
            self._forged(peer, f"segment roots that do not hash to blob {short_root(root)}")
            return False
        except StoreError as exc:
            log.debug("cannot expect %s: %s", short_root(root), exc)
            return False
        info = self.store.info(root)
        if info is None:  # deleted meanwhile (garbage collection)
            return False
        if info.complete:
            return True
        missing_list = self.store.missing_segments(root)
        batches = iter(_runs(missing_list, MAX_BATCH))
        total = info.segment_count
        done, logged = total - len(missing_list), trio.current_time()
        large = info.size >= 8 * MIB
        failure: list[Exception] = []

        async def get(first: int, count: int) -> None:
            nonlocal done, logged
            try:
                body = await network.request(peer, PROTOCOL, segments_request(root, first, count), REQUEST_TIMEOUT_S)
            except NetworkError as exc:
                raise _Gone(str(exc)) from None
            try:
                segments = decode_segments(body, first, count)
            except DecodeError as exc:
                raise _Forged(f"a malformed answer for segments {first}+{count} of blob {short_root(root)}: {exc}") from None
            if not segments:
                raise _Gone(f"segments {first}+{count} not held")
            for index, segment in segments:
                if not verify_inclusion(root, total, index, info.segment_roots[index], segment.proof):
                    raise _Forged(f"a wrong Merkle proof for segment {index} of blob {short_root(root)}")
            try:
                async with self._write_lock:
                    await trio.to_thread.run_sync(
                        self.store.put_segments, root, [(index, segment.data) for index, segment in segments]
                    )
            except SegmentMismatch as exc:
                raise _Forged(f"blob {short_root(root)}: {exc}") from None
            self.stats.bytes_fetched += sum(len(segment.data) for _, segment in segments)
            done += len(segments)
            now = trio.current_time()
            if large and now - logged >= PROGRESS_INTERVAL_S:
                logged = now
                log.info("📥 Fetching blob %s from %s: %d%% (%d/%d segments)",
                         short_root(root), peer, 100 * done // total, done, total)
            if len(segments) < count:
                raise _Gone(f"{count - len(segments)} of segments {first}+{count} not held")

        async def worker(cancel_scope: trio.CancelScope) -> None:
            for first, count in batches:
                try:
                    await get(first, count)
                except (_Forged, _Gone, StoreError) as exc:
                    failure.append(exc)
                    cancel_scope.cancel()
                    return

        async with trio.open_nursery() as nursery:
            for _ in range(REQUESTS_IN_FLIGHT):
                nursery.start_soon(worker, nursery.cancel_scope)
        if failure:
            error = failure[0]
            if isinstance(error, _Forged):
                self._forged(peer, str(error))
                return False
            if isinstance(error, QuotaExceeded):
                raise error
            log.debug("fetching %s from %s stopped: %s", short_root(root), peer, error)
        return self.store.has(root)

    def _forged(self, peer: str, reason: str) -> None:
        self.stats.forged_answers += 1
        if self.network is not None:
            self.network.report(peer, PENALTY_FORGED, reason)

    # -- providers --------------------------------------------------------------------------------

    async def providers(self, root: bytes, use_cache: bool = True) -> list[ProviderView]:
        """The providers the DHT names for `root`, each probed with INFO (live, keeps)."""
        network = self.network
        if network is None:
            return []
        cached = self._providers.get(root)
        if use_cache and cached is not None and trio.current_time() - cached[0] < PROVIDERS_CACHE_S:
            return cached[1]
        try:
            async with self._lookup_slots:
                peers = await network.find_providers(provider_key(root), 20, FIND_TIMEOUT_S)
        except NetworkError:  # the network stopped
            return []
        views: dict[str, ProviderView] = {}

        async def probe(peer: str) -> None:
            answer = None
            if self._unresponsive.get(peer, -math.inf) < trio.current_time():
                try:
                    answer = decode_info(await network.request(peer, PROTOCOL, info_request(root), PROBE_TIMEOUT_S))
                except NetworkError:
                    self._unresponsive[peer] = trio.current_time() + UNRESPONSIVE_S
                except DecodeError:
                    pass
            views[peer] = ProviderView(peer, answer is not None, answer is not None and answer.keeps)

        async with trio.open_nursery() as nursery:
            for peer in peers:
                if peer != network.peer_id:
                    nursery.start_soon(probe, peer)
        result = [views[p] for p in peers if p in views]
        self._providers[root] = (trio.current_time(), result)
        if len(self._providers) > 4096:
            self._providers.clear()
        if len(self._unresponsive) > 4096:
            now = trio.current_time()
            self._unresponsive = {p: until for p, until in self._unresponsive.items() if until > now}
        return result

    async def live_storers(self, root: bytes) -> int:
        """Storers that answer for `root` now, this node included."""
        others = sum(1 for view in await self.providers(root, use_cache=False) if view.live and view.keeps)
        return others + (1 if self.keeps(root) else 0)

    def _announce(self, root: bytes) -> None:
        """Queue a provider record for `root` (paced by the provide loop)."""
        if self.network is not None:
            self._provide_queue.add(root)
            self._provide_wakeup.set()

    async def _provide_loop(self) -> None:
        network = self.network
        assert network is not None
        while True:
            await self._provide_wakeup.wait()
            self._provide_wakeup = trio.Event()
            while self._provide_queue:
                root = min(self._provide_queue)  # any order; min keeps it deterministic
                self._provide_queue.discard(root)
                if not self.store.has(root):
                    continue
                await self._pacer.take()
                try:
                    took = await network.provide(provider_key(root))
                except NetworkError as exc:
                    log.debug("providing %s failed: %s", short_root(root), exc)
                    continue
                if took:
                    self.stats.provided += 1
                else:
                    log.debug("no peer took the provider record of %s yet", short_root(root))

    async def _announce_held(self) -> None:
        """Announce every blob held whole, now and every REPROVIDE_INTERVAL_S (records expire
        after 48 h); progress goes to the log for large stores."""
        while True:
            held = [info.root for info in self.store.roots() if info.complete]
            if held:
                log.info("📣 Announcing %d held blob(s) in the DHT (%.0f s at the paced rate)",
                         len(held), max(0, len(held) - PROVIDE_BURST) * PROVIDE_INTERVAL_S)
            for root in held:
                self._announce(root)
            await trio.sleep(REPROVIDE_INTERVAL_S)

    # -- replication ------------------------------------------------------------------------------

    def _rank(self, root: bytes, miners: list[bytes]) -> int:
        storer = self.config.storer
        assert storer is not None
        mine = storage.rendezvous_score(root, storer)
        return sum(1 for miner in miners if miner != storer and storage.rendezvous_score(root, miner) > mine)

    async def _scan(self, full: bool) -> None:
        """Look at registrations (all of them, or those since the last scan) for the blobs this
        storer is assigned or stands by for; wants the assigned ones it does not hold."""
        state = self.best_state()
        miners = storage.miner_set(state)
        replication = storage.read_params(state).replication
        storer = self.config.storer
        if storer not in miners:
            if self._duties:
                log.info("🗄  %s is no longer a bonded storage miner: no assigned blobs", _account(storer))
            self._duties.clear()
            self._scanned_to = copyright.FIRST_ID
            return
        end = copyright.FIRST_ID + copyright.registration_count(state)
        start = copyright.FIRST_ID if full else self._scanned_to
        duties = {} if full else self._duties
        window = replication + replication  # assigned ranks, then as many standbys
        for rid in range(start, end):
            registration = copyright.get_registration(state, rid)
            if registration is None:
                continue
            for version in registration.versions:
                for blob in version.blobs:
                    rank = self._rank(blob.root, miners)
                    if rank < window:
                        previous = self._duties.get(blob.root)
                        duties[blob.root] = _Duty(rank, previous.deficit_rounds if previous else 0)
                        if rank < replication and not self.store.has(blob.root):
                            self._want(blob.root, f"assigned to this storer, rank {rank}")
            if (rid - start) % 64 == 63:
                await trio.sleep(0)
        if full:
            before = (len(self._duties), sum(1 for d in self._duties.values() if d.rank < self._replication))
            after = (len(duties), sum(1 for d in duties.values() if d.rank < replication))
            if after != before:
                log.info("🗄  Storer duties: %d blob(s) assigned, %d as a standby (%d registrations scanned)",
                         after[1], after[0] - after[1], end - start)
        self._duties, self._scanned_to, self._replication = duties, end, replication

    def _want(self, root: bytes, why: str) -> None:
        if root not in self._wanted and not self.store.has(root):
            self._wanted[root] = why
            self._wanted_wakeup.set()

    async def _replication_loop(self) -> None:
        """Fetch the blobs the storer wants, one at a time (gateway fetches run beside it)."""
        while True:
            await self._wanted_wakeup.wait()
            self._wanted_wakeup = trio.Event()
            while self._wanted:
                root, why = next(iter(self._wanted.items()))
                if not self.store.has(root):
                    running = self._fetching.get(root)
                    if running is not None:
                        await running.wait()
                    else:
                        done = self._fetching[root] = trio.Event()
                        try:
                            await self._fetch(root, why)
                        finally:
                            self._fetching.pop(root, None)
                            done.set()
                self._wanted.pop(root, None)

    async def _repair_round(self) -> None:
        """Check a few duties for live storers: re-announce a held blob below R, take one over as
        a standby after enough rounds below R (module doc)."""
        self.stats.repair_rounds += 1
        roots = sorted(self._duties)
        if not roots:
            return
        count = min(self.config.checks_per_round, len(roots))
        start = self._check_cursor % len(roots)
        batch = [roots[(start + i) % len(roots)] for i in range(count)]
        self._check_cursor = start + count
        replication = self._replication
        below, taken = 0, 0
        for root in batch:
            duty = self._duties.get(root)
            if duty is None:
                continue
            held = self.store.has(root)
            if duty.rank < replication and not held:
                self._want(root, f"assigned to this storer, rank {duty.rank}")
                continue
            live = await self.live_storers(root)
            if live >= replication:
                duty.deficit_rounds = 0
                continue
            below += 1
            duty.deficit_rounds += 1
            if held:
                self.stats.reprovided += 1
                log.info("🛠  Blob %s has %d of %d live storers: announcing this copy again",
                         short_root(root), live, replication)
                self._announce(root)
            elif duty.deficit_rounds >= duty.rank - replication + STANDBY_PATIENCE:
                taken += 1
                self.stats.repairs += 1
                log.info("🛠  Blob %s has %d of %d live storers: standby (rank %d) takes a copy",
                         short_root(root), live, replication, duty.rank)
                self._want(root, f"repair: {live} of {replication} live storers")
        (log.info if below else log.debug)(
            "🛠  Blob repair round: %d of %d duties checked, %d below %d live storers, %d taken over",
            len(batch), len(roots), below, replication, taken,
        )  # fmt: skip

    async def _storer_loop(self) -> None:
        """New registrations every `scan_interval_s`; a full scan and a repair round every
        `repair_interval_s`."""
        next_round = trio.current_time()
        while True:
            try:
                now = trio.current_time()
                if now >= next_round:
                    await self._scan(full=True)
                    await self._repair_round()
                    next_round = trio.current_time() + self.config.repair_interval_s
                else:
                    await self._scan(full=False)
            except MissingNode:
                log.debug("the state moved under a blob scan (pruned); scanning again later")
            except Exception:
                log.exception("blob replication step failed")
            await trio.sleep(self.config.scan_interval_s)

    async def _resume_partial(self) -> None:
        """Blobs left incomplete (a fetch cut short, a kill -9) that the chain still references."""
        partial = [info.root for info in self.store.roots() if not info.complete]
        for root in partial:
            if self.referenced(root) is not None:
                self._want(root, "resuming a fetch cut short")

    # -- garbage collection -----------------------------------------------------------------------

    async def collect_garbage(self) -> int:
        """Delete blobs no registration of the best state references, unwritten for the grace
        period; returns the bytes freed."""
        cutoff = self.store.clock() - self.config.gc_grace_s
        candidates = [info.root for info in self.store.roots() if info.last_used < cutoff]
        doomed = []
        for i, root in enumerate(candidates):
            if self.referenced(root) is None:
                doomed.append(root)
            if i % 256 == 255:
                await trio.sleep(0)
        freed = deleted = 0
        for root in doomed:
            async with self._write_lock:
                gone = await trio.to_thread.run_sync(functools.partial(self.store.delete, root, unused_before=cutoff))
            if gone or self.store.info(root) is None:
                deleted += 1
                freed += gone
                self._duties.pop(root, None)
                if self.network is not None:
                    self.network.stop_providing(provider_key(root))
        self.stats.gc_deleted += deleted
        self.stats.gc_freed_bytes += freed
        if deleted:
            log.info("🧹 Blob GC: %d unreferenced blob(s) deleted, %s freed", deleted, _size(freed))
        return freed

    async def _gc_loop(self) -> None:
        while True:
            await trio.sleep(self.config.gc_interval_s)
            try:
                await self.collect_garbage()
            except Exception:
                log.exception("blob garbage collection failed")

    # -- running ----------------------------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Background work until cancelled: announcing, replication and repair (with a network
        and a storer account), garbage collection."""
        stored, quota = self.store.stored_bytes(), self.store.quota_bytes
        log.info("🗄  Blob store %s: %d blob(s), %s of %s", self.store.path, self.store.blob_count(),
                 _size(stored), _size(quota))
        if stored > quota:
            log.warning("🗄  The blob store holds more than its quota (--blob-quota): new blobs are refused")
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            nursery.start_soon(self._gc_loop)
            if self.network is not None:
                nursery.start_soon(self._provide_loop)
                nursery.start_soon(self._announce_held)
                nursery.start_soon(self._replication_loop)
                await self._resume_partial()
                if self.config.storer is not None:
                    log.info("🗄  Keeping the blobs assigned to storage miner %s", _account(self.config.storer))
                    nursery.start_soon(self._storer_loop)
            task_status.started()
            try:
                await trio.sleep_forever()
            finally:
                self._nursery = None


def _runs(indexes: list[int], longest: int) -> list[tuple[int, int]]:
    """Sorted indexes as (first, count) runs of consecutive ones, none longer than `longest`."""
    runs: list[tuple[int, int]] = []
    for index in indexes:
        if runs and runs[-1][0] + runs[-1][1] == index and runs[-1][1] < longest:
            runs[-1] = (runs[-1][0], runs[-1][1] + 1)
        else:
            runs.append((index, 1))
    return runs


def _size(count: int) -> str:
    if count >= GIB:
        return f"{count / GIB:.2f} GiB"
    if count >= MIB:
        return f"{count / MIB:.1f} MiB"
    return f"{count / 1024:.1f} KiB"


def _account(account_id: bytes | None) -> str:
    from node.keys import encode_address

    return "none" if account_id is None else encode_address(account_id)
