"""The composition root: builds every part of a node and runs its services in one trio nursery.

Substrate's `service.rs`, for imagechain; the one module that knows all the parts.

* `open_node` opens the database, the chain, the transaction pool, the memo of registration
  checks (`VerificationCache`, the runtime's host) and the image store (`BlobService`), and
  builds the `Node` around them (and its metrics registry). That is enough to author and import blocks by hand,
  as tests, benches and tools do.
* `run_node` builds the services around a node and runs them in one nursery, where they all
  stop together when it is cancelled (Ctrl-C):

      network (libp2p, gossip, sync)   when the configuration has a network
      image store (blobs)              always; serves and fetches blobs with a network
      finality gadget                  with a network and more than one authority
      JSON-RPC server                  unless `rpc_port` is None
      Prometheus exporter              when `prometheus_port` is set
      Aura authoring                   when the node has an authority key
      informant                        always

Each service gets the narrow part of the node it uses (the protocols next to each service:
`network_service.BlockImport`/`TransactionSubmit`/`FinalityVotes`,
`finality_service.Finalizer`/`VoteNetwork`, `rpc.server.RpcNode`, `metrics.MetricsSource`).
Networking, RPC and metrics are imported when first used, so a lone dev node never loads
py-libp2p and `imagechain --help` stays quick.
"""

from __future__ import annotations

import gc
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

import trio

from node.chain_spec import load_chain_spec
from node.core.chain import Chain
from node.core.db import ChainDB
from node.core.node import Node, NodeConfig, short_hash
from node.core.notifier import Notifier
from node.core.txpool import TxPool
from node.core.verification import VerificationCache
from node.keys import dev_keypair
from node.storage.service import BlobConfig, BlobService

if TYPE_CHECKING:
    from node.p2p.config import NetworkConfig

__all__ = ["dev_node", "open_node", "run_node"]

log = logging.getLogger("imagechain")


def open_node(config: NodeConfig) -> Node:
    """Open (or create) the database, chain and pool of ``config`` and build the node around them."""
    db = ChainDB(config.base_path / "chains" / config.spec.id / "db", config.pruning)
    chain = Chain(db, config.spec)
    verification = VerificationCache()  # the runtime's host, shared by pool, builder and import
    pool = TxPool(chain.genesis_hash, config.pool_limits, verification)
    notifier = Notifier()
    pool.listeners.append(notifier.tx_status)
    node = Node(config, chain, pool, notifier, verification)
    node.blobs = BlobService(
        config.base_path / "chains" / config.spec.id / "blobs", config.blobs or BlobConfig(), chain.best_state
    )
    if config.prometheus_port is not None:
        from node.metrics import NodeMetrics

        node.metrics = NodeMetrics(node)
    return node


def dev_node(base_path: Path, **overrides: Any) -> Node:
    """A single-node development chain with `//Alice` as the authority; ``overrides`` set
    `NodeConfig` fields."""
    config = NodeConfig(base_path=base_path, spec=load_chain_spec("dev"), authority=dev_keypair("//Alice"))
    for key, value in overrides.items():
        setattr(config, key, value)
    return open_node(config)


async def run_node(node: Node, *, task_status: trio.TaskStatus[Node] = trio.TASK_STATUS_IGNORED) -> None:
    """Run the node's services until cancelled; reports the node once they have all started."""
    config = node.config
    best = node.chain.best_header()
    log.info("🏷  Node name: %s, role: %s", node.name, node.role)
    if node.authority is not None:
        # The public side only: which key this validator signs with (to check against the chain's set).
        log.info("🔑 Authority key: %s (%s)", node.authority.address, node.authority.scheme.label)
    log.info("🔨 Chain: %s, genesis %s", node.spec.name, short_hash(node.genesis_hash))
    log.info("📦 Best block: #%d (%s), database %s", best.number, short_hash(best.hash), node.db.path)
    async with trio.open_nursery() as nursery:
        if config.network is not None:
            await _start_network(node, config.network, nursery)
        if node.blobs is not None:
            await nursery.start(node.blobs.run)
        if config.rpc_port is not None:
            from node.rpc.server import serve_rpc

            rpc_port = await nursery.start(serve_rpc, node, config.rpc_host, config.rpc_port)
            log.info("Running JSON-RPC server: addr=%s:%d", config.rpc_host, rpc_port)
        if node.metrics is not None:
            from node.metrics import serve_metrics

            prometheus_port = await nursery.start(
                serve_metrics, node.metrics, "127.0.0.1", config.prometheus_port
            )
            log.info("〽️ Prometheus exporter started at 127.0.0.1:%d/metrics", prometheus_port)
        if node.authority is not None:
            nursery.start_soon(node.run_authoring)
        nursery.start_soon(node.run_informant)
        # What start-up made lives as long as the node: keep it out of every full GC pass (they took
        # 120-170 ms with thousands of RPC subscriptions open, long enough to make a block late).
        gc.freeze()
        task_status.started(node)


async def _start_network(node: Node, config: NetworkConfig, nursery: trio.Nursery) -> None:
    """Start the network service, and the finality gadget when there is more than one authority
    (with one, every best block is final at once and the node finalizes it itself)."""
    from node.core.network_service import NodeNetwork

    network = NodeNetwork(config, node.chain, blocks=node, transactions=node, blobs=node.blobs)
    node.network = network
    await nursery.start(network.run)
    if node.blobs is not None:
        node.blobs.attach(network.network)
    if not node.single_authority():
        from node.core.finality_service import FinalityService

        finality = FinalityService(
            node.chain,
            finalizer=node,
            transactions=node,
            network=network,
            nursery=nursery,
            authority=node.authority,
            slot_ms=node.spec.params.slot_ms,
        )
        node.finality = network.finality = finality
        nursery.start_soon(finality.run)
