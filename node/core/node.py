"""The node: the operations that touch several parts of the client at once.

Submit a transaction (pool, then gossip), author a slot (builder, chain, pool, gossip, finality),
import a block (importer, equivocation check, pool, subscribers, finality), finalize (chain,
subscribers), and the status that RPC, metrics and the informant read. The parts are built and the
services run by the composition root, `node.service`; the services reach the node through the
narrow protocols declared next to each of them.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import trio

from node import __version__
from node.chain_spec import ChainSpec
from node.consensus.aura import slot_at
from node.core.authoring import BuiltBlock, build_block
from node.core.chain import Chain, HeadChange
from node.core.importer import ImportedBlock, import_block
from node.core.notifier import Notifier
from node.core.txpool import PoolLimits, PoolRejected, TxPool
from node.core.verification import VerificationCache
from node.keys import Keypair
from node.primitives.aura import author_of_slot
from node.runtime import aura, offences, system
from node.types import Block, Call, DigestItem, DigestKind, Extrinsic, Header, extrinsic_hash

if TYPE_CHECKING:  # networking is imported only by nodes that network (py-libp2p is heavy)
    from node.core.finality_service import FinalityService
    from node.core.network_service import NodeNetwork
    from node.metrics import NodeMetrics
    from node.p2p.network import NetworkConfig
    from node.rpc.limits import RpcLimits
    from node.storage.service import BlobConfig, BlobService

log = logging.getLogger("imagechain")

INFORMANT_INTERVAL_S = 5.0
SLOT_MEMORY = 256  # slots of headers kept to spot equivocations


@dataclass
class NodeConfig:
    base_path: Path
    spec: ChainSpec
    name: str = "imagechain-node"
    pruning: int | None = 256
    authority: Keypair | None = None
    rpc_host: str = "127.0.0.1"
    rpc_port: int | None = 9944
    pool_limits: PoolLimits | None = None
    informant_interval_s: float = INFORMANT_INTERVAL_S
    network: NetworkConfig | None = None  # None: no networking (a lone dev node, tests)
    prometheus_port: int | None = None
    test_equivocate: bool = False  # TEST ONLY: author two different blocks per slot
    rpc_unsafe: bool = False  # serve operator methods (peer blocking); only on loopback by default
    rpc_limits: RpcLimits | None = None  # the RPC server's limits and --rpc-cors; None: the defaults
    blobs: BlobConfig | None = None  # the image store's quota, GC and storer (--blob-*); None: the defaults


class Node:
    """A node's chain, pool and subscribers, and the operations over several of them.

    Built by `node.service.open_node`. `network`, `finality` and `metrics` are set by the
    composition root when those services exist; None means the node runs without them.
    """

    def __init__(
        self, config: NodeConfig, chain: Chain, pool: TxPool, notifier: Notifier, verification: VerificationCache
    ) -> None:
        self.config = config
        self.spec = config.spec
        self.name = config.name
        self.version = __version__
        self.chain = chain
        self.db = chain.db
        self.genesis_hash = chain.genesis_hash
        self.pool = pool
        self.notifier = notifier
        self.verification = verification  # the runtime's host: shared by pool, builder and import
        self.authority = config.authority
        self.role = "authority" if config.authority is not None else "full"
        self.blocks_authored = 0
        self.network: NodeNetwork | None = None
        self.finality: FinalityService | None = None  # with a network and several authorities
        self.metrics: NodeMetrics | None = None
        self.blobs: BlobService | None = None  # the image store (`node.storage.service`), set by open_node
        self._headers_by_slot: dict[int, Header] = {}
        self._batch_depth = 0

    def close(self) -> None:
        if self.blobs is not None:
            self.blobs.close()
        self.db.close()

    # -- what RPC and the network call ----------------------------------------------------------

    def submit_extrinsic(self, encoded: bytes, from_network: bool = False, peer_id: str | None = None) -> bytes:
        """Admit a transaction to the pool; a ready local one (RPC) is then gossiped to peers
        (one from the network is forwarded by gossip itself once its validator accepts it).
        `peer_id` names the gossip peer it came from, whose budget pays for expensive checks."""
        best = self.chain.best_header()
        ext_hash = self.pool.submit(encoded, self.chain.best_state(), best.number, best.hash, source=peer_id)
        if not from_network and self.network is not None and self.pool.is_ready(ext_hash):
            self.network.announce_transaction(encoded)
        self._announce_promoted()
        return ext_hash

    def is_ready(self, ext_hash: bytes) -> bool:
        return self.pool.is_ready(ext_hash)

    def _announce_promoted(self) -> None:
        """Transactions that waited for a nonce gap are gossiped once they are ready."""
        promoted = self.pool.take_promoted()
        if self.network is not None:
            for encoded in promoted:
                self.network.announce_transaction(encoded)

    def next_nonce(self, account_id: bytes) -> int:
        state_nonce = system.read_account(self.chain.best_state(), account_id).nonce
        return self.pool.next_nonce(account_id, state_nonce)

    def peers(self) -> list[dict[str, Any]]:
        if self.network is None:
            return []
        result = []
        for peer in self.network.network.peers():
            status = self.network.peer_status.get(peer.peer_id)
            result.append({
                "peerId": peer.peer_id,
                "roles": "FULL",
                "bestHash": "0x" + status.best_hash.hex() if status else None,
                "bestNumber": status.best_number if status else None,
            })
        return result

    def is_syncing(self) -> bool:
        return self.network is not None and self.network.is_major_syncing()

    def sync_state(self) -> dict[str, int]:
        best = self.chain.best_header().number
        highest = max(best, self.network.highest_known()) if self.network is not None else best
        starting = self.network.progress.starting_block if self.network is not None else 0
        return {"startingBlock": starting, "currentBlock": best, "highestBlock": highest}

    def import_block(self, block: Block, verified: list[bool] | None = None) -> ImportedBlock:
        """Import a block from the network (or a test); raises ImportError_ with a reason.
        `verified`: its signature checks when done ahead (`importer.verify_range`)."""
        imported = import_block(self.chain, block, verified=verified, host=self.verification)
        self._check_slot_equivocation(block)  # only blocks that passed import (valid seals) count
        if self.metrics is not None:
            self.metrics.observe_import(imported.seconds)
        self._after_import(imported.change)
        self._after_new_block(block)
        return imported

    def _after_new_block(self, block: Block) -> None:
        """Finality: the gadget when it runs; with a single authority every best block is final
        (once per batch while importing a batch: finalizing the last block covers the rest)."""
        if self.finality is not None:
            self.finality.on_block_imported()
        elif not self._batch_depth and self.single_authority() and self.chain.best_header().hash == block.hash:
            self.finalize(block.hash)

    @contextmanager
    def importing_batch(self) -> Iterator[None]:
        """Import many blocks (sync): one database flush and one finalization for the batch."""
        self._batch_depth += 1
        try:
            with self.db.deferred_flush():
                yield
        finally:
            self._batch_depth -= 1
            if not self._batch_depth and self.finality is None and self.single_authority():
                best = self.chain.best_header()
                if best.hash != self.chain.finalized_header().hash:
                    self.finalize(best.hash)

    def _check_slot_equivocation(self, block: Block) -> None:
        """Remember one sealed header per slot; a second, different one proves equivocation."""
        header = block.header
        slot = header.slot
        if slot is None or header.seal is None:
            return
        seen = self._headers_by_slot.get(slot)
        if seen is None:
            self._headers_by_slot[slot] = header
            for old in [s for s in self._headers_by_slot if s < slot - SLOT_MEMORY]:
                del self._headers_by_slot[old]
            return
        if seen.hash == header.hash:
            return
        report = Extrinsic(Call("offences", "report_aura_equivocation", (seen.encode(), header.encode()))).encode()
        try:
            self.submit_extrinsic(report)
            log.warning("🚨 Equivocation: two blocks for slot %d (#%d); report submitted", slot, header.number)
        except PoolRejected as exc:
            log.debug("equivocation report for slot %d not pooled: %s", slot, exc)

    def single_authority(self) -> bool:
        """With one authority there is nothing to agree on: every best block is final."""
        return len(aura.read_authorities(self.chain.best_state())) == 1

    def finalize(self, block_hash: bytes, justification: bytes | None = None) -> None:
        previous = self.chain.finalized_header()
        change = self.chain.finalize(block_hash, justification)
        self._after_import(change)
        finalized = self.chain.finalized_header()
        if finalized.hash == previous.hash:
            return
        watched = set(self.notifier.watching())  # membership only
        for number in range(previous.number + 1, finalized.number + 1):
            canonical = self.chain.hash_at(number)
            body = self.chain.db.body(canonical) if canonical else None
            for ext_hash in (extrinsic_hash(x) for x in body or []):
                if ext_hash in watched:
                    self.notifier.tx_status(ext_hash, "finalized", canonical)
        self.notifier.finalized(finalized)

    # -- authoring ------------------------------------------------------------------------------

    def is_our_slot(self, slot: int) -> bool:
        if self.authority is None:
            return False
        state = self.chain.best_state()
        authorities = aura.read_authorities(state)
        if not authorities or author_of_slot(authorities, slot) != self.authority.public.data:
            return False
        return self.authority.public.data not in offences.read_disabled(state)

    def author_block(self, slot: int) -> BuiltBlock:
        """Build, seal and store a block for `slot` (which must be ours)."""
        assert self.authority is not None
        slot_ms = self.spec.params.slot_ms
        built = build_block(
            self.chain, self.pool, slot, self.authority, time_budget_s=slot_ms / 3000, host=self.verification
        )
        change = self.chain.add_block(built.block, built.update)
        for ext_hash in built.invalid:
            self.pool.remove_invalid(ext_hash)
        self.blocks_authored += 1
        header = built.block.header
        log.info(
            "✨ Prepared block #%d (%s) with %d extrinsics in %.0f ms",
            header.number,
            short_hash(header.hash),
            len(built.block.extrinsics),
            built.seconds * 1000,
        )
        self._headers_by_slot.setdefault(slot, header)
        self._after_import(change)
        if self.network is not None:
            self.network.announce_block(built.block)
        self._after_new_block(built.block)
        if self.config.test_equivocate and self.network is not None:
            self.network.announce_block(self._equivocating_twin(built.block))
        return built

    def _equivocating_twin(self, block: Block) -> Block:
        """TEST ONLY (--test-equivocate): a second valid block for the same slot, told apart by an
        extra digest item, so that peers see this authority sign two headers in one slot."""
        assert self.authority is not None
        unsealed = block.header.without_seal()
        twin = Header(unsealed.parent_hash, unsealed.number, unsealed.state_root, unsealed.extrinsics_root,
                      unsealed.digest + (DigestItem(DigestKind.PRE_RUNTIME, b"twin", b"\x01"),))
        return Block(twin.with_seal(self.authority.sign(twin.seal_payload(self.genesis_hash))), block.extrinsics)

    def _after_import(self, change: HeadChange) -> None:
        """Keep the pool and the subscribers in step with a new best chain (reorgs included)."""
        if not change.new_best:
            return
        best = self.chain.best_header()
        state = self.chain.best_state()
        for header in change.enacted:
            body = self.chain.db.body(header.hash) or []
            self.pool.on_block(header.hash, [extrinsic_hash(x) for x in body], state, best.number)
        readmitted = 0
        for header in change.retracted:
            for encoded in (self.chain.db.body(header.hash) or [])[1:]:  # skip the inherent
                try:
                    self.pool.readmit(encoded, state, best.number, best.hash)
                    readmitted += 1
                except PoolRejected:
                    pass  # included on the new branch, or no longer valid
        if change.retracted:
            log.info("♻️  Reorg: retracted %d, enacted %d blocks; %d transactions back in the pool",
                     len(change.retracted), len(change.enacted), readmitted)
        self._announce_promoted()
        self.notifier.new_head(best)

    async def run_authoring(self) -> None:
        """Aura slot loop: wake at each slot start, author if the slot is ours."""
        slot_ms = self.spec.params.slot_ms
        last_slot = self.chain.best_header().slot or 0
        while True:
            now_ms = int(time.time() * 1000)
            slot = slot_at(now_ms, slot_ms) + 1
            await trio.sleep(max(0.0, (slot * slot_ms - now_ms) / 1000))
            if slot <= last_slot or not self.is_our_slot(slot):
                continue
            try:
                self.author_block(slot)
                last_slot = slot
            except Exception:  # a bug in building must not stop the slot loop
                log.exception("failed to author a block for slot %d", slot)

    # -- informant ------------------------------------------------------------------------------

    def status_line(self, seconds: float = 0.0, previous_bytes: tuple[int, int] = (0, 0)) -> str:
        best = self.chain.best_header()
        finalized = self.chain.finalized_header()
        ready, future = self.pool.counts()
        peers = len(self.network.network.peers()) if self.network is not None else 0
        if self.network is not None and self.network.is_major_syncing():
            progress = self.network.progress
            state = f"⚙️  Syncing {progress.last_rate:.1f} bps, target=#{progress.target}"
        else:
            state = "💤 Idle"
        down, up = self.bandwidth()
        rate_down = (down - previous_bytes[0]) / seconds if seconds else 0.0
        rate_up = (up - previous_bytes[1]) / seconds if seconds else 0.0
        return (
            f"{state} ({peers} peers), best: #{best.number} ({short_hash(best.hash)}), "
            f"finalized #{finalized.number} ({short_hash(finalized.hash)}), "
            f"txpool: ready {ready} future {future}, ⬇ {_rate(rate_down)} ⬆ {_rate(rate_up)}"
        )

    def bandwidth(self) -> tuple[int, int]:
        if self.network is None:
            return 0, 0
        return self.network.network.bytes_in, self.network.network.bytes_out

    async def run_informant(self) -> None:
        interval = self.config.informant_interval_s
        previous = self.bandwidth()
        while True:
            await trio.sleep(interval)
            log.info(self.status_line(interval, previous))
            previous = self.bandwidth()


def _rate(bytes_per_second: float) -> str:
    if bytes_per_second >= 1024 * 1024:
        return f"{bytes_per_second / 1024 / 1024:.1f}MiB/s"
    return f"{bytes_per_second / 1024:.1f}kiB/s"


def short_hash(block_hash: bytes) -> str:
    """``0x1234…abcd``, as block hashes appear in the logs."""
    text = block_hash.hex()
    return f"0x{text[:4]}…{text[-4:]}"
