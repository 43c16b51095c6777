"""The node's side of the network: gossip validation, block announcements and the sync loop.

`NodeNetwork` is the `NetworkHandler` the libp2p layer (`node.p2p`) calls. Every gossip
message is validated here before libp2p forwards it: blocks are imported (a block that fails
import is rejected and its sender penalised), transactions go through the pool's checks, and
finality votes go to the finality gadget. The sync loop pulls blocks from peers that are ahead
(see `node.core.sync`).

It reads the chain and asks for the rest through the protocols below: `BlockImport` and
`TransactionSubmit` (the node), `FinalityVotes` (the finality gadget, when there is one),
`BlobRequests` (the image store, which answers `/imagechain/blob/1`).
"""

from __future__ import annotations

import logging
from contextlib import AbstractContextManager
from typing import Protocol

import trio

from node.codec import DecodeError, decode, encode, expect_int, expect_list
from node.core import sync
from node.core.chain import Chain
from node.core.importer import (
    AlreadyKnown,
    ImportedBlock,
    ImportError_,
    NotOnFinalizedChain,
    UnknownParent,
    verify_range,
)
from node.core.txpool import PoolRejected
from node.p2p.network import Network, NetworkConfig, RequestFailed, RequestRejected, Verdict
from node.runtime import system
from node.storage.protocol import PROTOCOL as BLOB_PROTOCOL
from node.types import Block, Header

log = logging.getLogger("imagechain.network")

TOPIC_BLOCKS = "blocks"
TOPIC_TX = "tx"
TOPIC_VOTES = "votes"

ANNOUNCE_BLOCK, ANNOUNCE_HEADER = 0, 1
STATUS_REFRESH_S = 3.0

# Penalties (the p2p layer bans a peer whose score falls below its threshold).
PENALTY_BAD_BLOCK = 100
PENALTY_BAD_RESPONSE = 50
PENALTY_WRONG_GENESIS = 1000

# Pool rejections that say nothing bad about the sender (the transaction raced or is late).
# A downloaded range and the signature checks of each of its blocks.
Downloaded = tuple[list[tuple[Block, bytes | None]], list[list[bool]]]

BENIGN_TX_REASONS = frozenset(
    {
        "AlreadyImported", "StaleNonce", "FutureNonce", "TooLowPriority", "PoolFull", "AccountLimit", "Expired",
        "TemporarilyBanned", "RateLimited",
    }
)  # fmt: skip


class BlockImport(Protocol):
    """Import a block from a peer; `Node` does, keeping pool, finality and subscribers in step."""

    def import_block(self, block: Block, verified: list[bool] | None = None) -> ImportedBlock: ...

    def importing_batch(self) -> AbstractContextManager[None]:
        """Around the import of a synced range: one database flush (and finalization) for all."""
        ...


class TransactionSubmit(Protocol):
    """Admit a transaction to the pool; `Node` does, and gossips the ready ones not from the network."""

    def submit_extrinsic(self, encoded: bytes, from_network: bool = False, peer_id: str | None = None) -> bytes: ...

    def is_ready(self, ext_hash: bytes) -> bool:
        """Whether a pooled transaction is ready (only those are forwarded)."""
        ...


class FinalityVotes(Protocol):
    """The finality gadget as the network sees it (`FinalityService`)."""

    def on_vote_gossip(self, data: bytes, peer_id: str) -> Verdict: ...

    def on_justification(self, block_hash: bytes, justification: bytes, peer_id: str | None) -> None: ...

    def catch_up_response(self) -> bytes: ...


class BlobRequests(Protocol):
    """The image store as the network sees it (`node.storage.service.BlobService`)."""

    def serve(self, data: bytes, peer_id: str) -> bytes:
        """Answer one `/imagechain/blob/1` request; raises ValueError for a malformed one."""
        ...


class NodeNetwork:
    """The `NetworkHandler` of a node: validates gossip, serves and drives sync.

    ``finality`` is set by the composition root when the node runs a finality gadget (several
    authorities); without one, votes are ignored and catch-up requests answered with nothing.
    """

    def __init__(
        self,
        config: NetworkConfig,
        chain: Chain,
        *,
        blocks: BlockImport,
        transactions: TransactionSubmit,
        blobs: BlobRequests | None = None,
    ) -> None:
        self.chain = chain
        self.blocks = blocks
        self.transactions = transactions
        self.blobs = blobs
        self.finality: FinalityVotes | None = None
        self.network = Network(config, self)
        self.network.register_protocol(sync.PROTOCOL)
        if blobs is not None:
            self.network.register_protocol(BLOB_PROTOCOL)
        self.peer_status: dict[str, sync.PeerStatus] = {}
        self.progress = sync.SyncProgress()
        self._wakeup = trio.Event()
        self._nursery: trio.Nursery | None = None

    # -- service --------------------------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[NodeNetwork] = trio.TASK_STATUS_IGNORED) -> None:
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            await nursery.start(self.network.run)
            log.info("🏷  Local node identity is: %s", self.network.peer_id)
            for address in self.network.listen_addrs:
                log.info("Listening on %s", address)
            nursery.start_soon(self._sync_loop)
            nursery.start_soon(self._status_loop)
            task_status.started(self)

    def is_major_syncing(self) -> bool:
        best = self.chain.best_header().number
        return self.highest_known() > best + 2

    def highest_known(self) -> int:
        return max((s.best_number for s in self.peer_status.values()), default=0)

    # -- announcements ----------------------------------------------------------------------------
    # Gossiped in the background, as tasks of this service: the caller (authoring, RPC, finality)
    # never waits for the network, and a failed publish (no peers yet, queue full) is not its problem.

    def announce_block(self, block: Block) -> None:
        """Gossip a new block, or only its header when the block is too large for gossip."""
        message = encode([ANNOUNCE_BLOCK, block.to_wire()])
        if len(message) > self.network.config.max_gossip_bytes:
            message = encode([ANNOUNCE_HEADER, block.header.to_wire()])
        self._publish_soon(TOPIC_BLOCKS, message)

    def announce_transaction(self, encoded: bytes) -> None:
        self._publish_soon(TOPIC_TX, encoded)

    def publish_vote(self, encoded: bytes) -> None:
        self._publish_soon(TOPIC_VOTES, encoded)

    def _publish_soon(self, topic: str, data: bytes) -> None:
        if self._nursery is not None:  # before the service runs there is nobody to tell
            self._nursery.start_soon(self._publish, topic, data)

    async def _publish(self, topic: str, data: bytes) -> None:
        try:
            await self.network.publish(topic, data)
        except Exception as exc:  # noqa: BLE001 - no peers yet, queue full: never fatal
            log.debug("publish on %s failed: %s", topic, exc)

    # -- what the finality gadget asks of the network ---------------------------------------------

    def peer_ids(self) -> list[str]:
        """Connected peers, sorted."""
        return sorted(p.peer_id for p in self.network.peers())

    async def request_catch_up(self, peer_id: str) -> bytes:
        """The peer's finality catch-up (b"" if it has none); raises `RequestFailed`."""
        return await self.network.request(peer_id, sync.PROTOCOL, sync.catch_up_request(), timeout=5.0)

    def report(self, peer_id: str, penalty: int, reason: str) -> None:
        """Lower a peer's score (see `Network.report`)."""
        self.network.report(peer_id, penalty, reason)

    # -- NetworkHandler: gossip -------------------------------------------------------------------

    async def on_gossip(self, topic: str, data: bytes, peer_id: str) -> Verdict:
        if topic == TOPIC_BLOCKS:
            return await self._on_block_gossip(data, peer_id)
        if topic == TOPIC_TX:
            return self._on_tx_gossip(data, peer_id)
        if topic == TOPIC_VOTES:
            if self.finality is None:
                return Verdict.IGNORE
            return self.finality.on_vote_gossip(data, peer_id)
        return Verdict.REJECT

    async def _on_block_gossip(self, data: bytes, peer_id: str) -> Verdict:
        try:
            kind, payload = expect_list(decode(data), 2, "block announcement")
            kind = expect_int(kind, 1, "announcement kind")
            if kind == ANNOUNCE_HEADER:
                header = Header.from_wire(payload)
                self._note_peer_best(peer_id, header)
                if not self.chain.contains(header.hash):
                    self._wake()
                return Verdict.IGNORE if self.chain.contains(header.hash) else Verdict.ACCEPT
            block = Block.from_wire(payload)
        except DecodeError as exc:
            self.network.report(peer_id, PENALTY_BAD_BLOCK, f"malformed block announcement: {exc}")
            return Verdict.REJECT
        self._note_peer_best(peer_id, block.header)
        verdict = self._import(block, peer_id, source="gossip")
        return verdict

    def _import(self, block: Block, peer_id: str, source: str, verified: list[bool] | None = None) -> Verdict:
        try:
            self.blocks.import_block(block, verified)
        except (AlreadyKnown, NotOnFinalizedChain):
            return Verdict.IGNORE
        except UnknownParent:
            self._wake()  # the sync loop fetches the missing ancestors
            return Verdict.IGNORE
        except ImportError_ as exc:
            if "in the future" in exc.reason:
                return Verdict.IGNORE  # clock skew, not misbehaviour
            self.network.report(peer_id, PENALTY_BAD_BLOCK, f"invalid block #{block.header.number} ({source}): {exc.reason}")
            return Verdict.REJECT
        return Verdict.ACCEPT

    def _on_tx_gossip(self, data: bytes, peer_id: str) -> Verdict:
        try:
            ext_hash = self.transactions.submit_extrinsic(data, from_network=True, peer_id=peer_id)
        except PoolRejected as exc:
            if exc.reason in BENIGN_TX_REASONS:
                return Verdict.IGNORE
            log.debug("invalid transaction from %s: %s", peer_id, exc)
            return Verdict.REJECT  # the p2p layer lowers the sender's score for every REJECT
        # Only ready transactions travel on: one waiting for a nonce gap is kept, not forwarded
        # (the node gossips it itself if the gap is filled), so gaps cannot be used to flood.
        return Verdict.ACCEPT if self.transactions.is_ready(ext_hash) else Verdict.IGNORE

    def _note_peer_best(self, peer_id: str, header: Header) -> None:
        status = self.peer_status.get(peer_id)
        if status is not None and header.number > status.best_number:
            status.best_number, status.best_hash = header.number, header.hash

    # -- NetworkHandler: requests and peers --------------------------------------------------------

    async def on_request(self, protocol: str, data: bytes, peer_id: str) -> bytes:
        """Serve a sync or blob request. A bad one (malformed, a field out of range) is rejected:
        the p2p layer answers "bad request", logs the peer and lowers its score (`RequestRejected`)."""
        if protocol == BLOB_PROTOCOL and self.blobs is not None:
            try:
                return self.blobs.serve(data, peer_id)
            except ValueError as exc:  # protocol.BadRequest
                raise RequestRejected(str(exc)) from exc
        if protocol != sync.PROTOCOL:
            raise RequestRejected(f"unknown protocol {protocol}")
        try:
            return sync.serve_request(self.chain, data, self._catch_up_response)
        except sync.BadRequest as exc:
            raise RequestRejected(str(exc)) from exc

    def _catch_up_response(self) -> bytes:
        return self.finality.catch_up_response() if self.finality is not None else b""

    def on_peer_connected(self, peer_id: str) -> None:
        if self._nursery is not None:
            self._nursery.start_soon(self._refresh_status, peer_id)

    def on_peer_disconnected(self, peer_id: str) -> None:
        self.peer_status.pop(peer_id, None)

    # -- sync -------------------------------------------------------------------------------------

    def _wake(self) -> None:
        self._wakeup.set()

    async def _refresh_status(self, peer_id: str) -> None:
        try:
            reply = await self.network.request(peer_id, sync.PROTOCOL, sync.status_request(), timeout=5.0)
            status = sync.PeerStatus.from_wire(decode(reply))
        except RequestFailed as exc:
            log.debug("status from %s failed: %s", peer_id, exc)
            return
        except DecodeError as exc:
            self.network.report(peer_id, PENALTY_BAD_RESPONSE, f"malformed status: {exc}")
            return
        if status.genesis_hash != self.chain.genesis_hash:
            self.network.report(peer_id, PENALTY_WRONG_GENESIS, "peer is on another chain (genesis differs)")
            return
        self.peer_status[peer_id] = status
        if status.best_number > self.chain.best_header().number:
            self._wake()

    async def _status_loop(self) -> None:
        while True:
            await trio.sleep(STATUS_REFRESH_S)
            for peer in self.peer_ids():
                await self._refresh_status(peer)

    async def _sync_loop(self) -> None:
        while True:
            with trio.move_on_after(1.0):
                await self._wakeup.wait()
            self._wakeup = trio.Event()
            while await self._sync_step():
                await trio.sleep(0)

    def _pick_peer(self) -> tuple[str, sync.PeerStatus] | None:
        best = self.chain.best_header()
        candidates = [
            (status.best_number, peer, status)
            for peer, status in self.peer_status.items()
            if status.best_number > best.number
            or (status.best_number == best.number and not self.chain.contains(status.best_hash))
        ]
        if not candidates:
            return None
        _, peer, status = max(candidates, key=lambda c: (c[0], c[1]))
        return peer, status

    async def _fetch(self, peer: str, start: int, count: int) -> list[tuple[Block, bytes | None]] | None:
        """One range request; None (and the peer dropped or penalised) when it fails."""
        try:
            reply = await self.network.request(peer, sync.PROTOCOL, sync.blocks_request(start, count), timeout=30.0)
            return sync.decode_blocks_response(reply, start, count)
        except RequestFailed as exc:
            log.debug("block request to %s failed: %s", peer, exc)
        except DecodeError as exc:
            self.network.report(peer, PENALTY_BAD_RESPONSE, f"malformed blocks response: {exc}")
        self.peer_status.pop(peer, None)
        return None

    async def _sync_step(self) -> bool:
        """Download and import from the peer that is furthest ahead; True on progress.

        A pipeline of two stages: while one range is imported (this task, one core), the next
        is downloaded and its signatures verified (a worker thread, the other core).
        """
        picked = self._pick_peer()
        if picked is None:
            return False
        peer, status = picked
        chain = self.chain
        best = chain.best_header()
        start = best.number + 1
        if status.best_number <= best.number:
            start = chain.finalized_header().number + 1  # same height, other branch
        self.progress.target = max(self.progress.target, status.best_number)
        count = min(sync.MAX_BLOCKS_PER_REQUEST, max(1, status.best_number - start + 1))
        entries = await self._fetch(peer, start, count)
        if not entries:
            self.peer_status.pop(peer, None)  # it has nothing for us: ask again at the next refresh
            return False
        if not chain.contains(entries[0][0].header.parent_hash):
            if start > chain.finalized_header().number + 1:
                # The peer's chain forks below our best: fetch from the finalized block instead.
                status.best_number = max(status.best_number, best.number)
                start = chain.finalized_header().number + 1
                entries = await self._fetch(peer, start, count)
            if not entries or not chain.contains(entries[0][0].header.parent_hash):
                self.network.report(peer, PENALTY_BAD_RESPONSE, "blocks response does not connect to our chain")
                self.peer_status.pop(peer, None)
                return False
        current: Downloaded | None = (entries, await self._verify(entries))
        imported = 0
        async with trio.open_nursery() as nursery:
            while current is not None:
                entries, verified = current
                next_start = entries[-1][0].header.number + 1
                send, receive = trio.open_memory_channel[Downloaded | None](1)
                if next_start <= status.best_number:
                    nursery.start_soon(self._download_into, send, peer, next_start)
                else:
                    send.close()
                new, ok = await self._import_range(peer, entries, verified)
                imported += new
                if new:
                    self._log_progress()
                if not ok:
                    nursery.cancel_scope.cancel()
                    break
                try:
                    current = await receive.receive()
                except trio.EndOfChannel:
                    current = None
        return imported > 0

    async def _verify(self, entries: list[tuple[Block, bytes | None]]) -> list[list[bool]]:
        """All signatures of a range at once, in a worker thread on every core (libsodium
        releases the GIL)."""
        max_bytes = system.read_params(self.chain.best_state()).max_extrinsic_bytes
        return await trio.to_thread.run_sync(verify_range, [block for block, _ in entries], max_bytes)

    async def _download_into(self, send: trio.MemorySendChannel[Downloaded | None], peer: str, start: int) -> None:
        async with send:
            entries = await self._fetch(peer, start, sync.MAX_BLOCKS_PER_REQUEST)
            await send.send((entries, await self._verify(entries)) if entries else None)

    async def _import_range(
        self, peer: str, entries: list[tuple[Block, bytes | None]], verified: list[list[bool]]
    ) -> tuple[int, bool]:
        """Import downloaded blocks in order; (blocks imported, False if the peer sent a bad one)."""
        imported = 0
        with self.blocks.importing_batch():  # one flush (and finalization) for the batch
            for (block, justification), checks in zip(entries, verified, strict=True):
                verdict = self._import(block, peer, source="sync", verified=checks)
                if verdict is Verdict.REJECT:
                    self.peer_status.pop(peer, None)
                    return imported, False
                if verdict is Verdict.ACCEPT:
                    imported += 1
                if justification is not None and self.finality is not None:
                    self.finality.on_justification(block.hash, justification, peer)
                if imported % 16 == 0:
                    await trio.sleep(0)  # let RPC, gossip and the prefetch run between blocks
        self.progress.record(imported)
        return imported, True

    def _log_progress(self) -> None:
        if self.is_major_syncing():
            log.info(
                "⚙️  Syncing %.1f bps, target=#%d, best: #%d",
                self.progress.last_rate,
                self.progress.target,
                self.chain.best_header().number,
            )
