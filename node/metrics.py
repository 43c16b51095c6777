"""Prometheus metrics: what an operator graphs to see that a node keeps up (`--prometheus-port`).

The names follow Substrate's where there is one (`substrate_block_height{status}` becomes
`imagechain_block_height{status}`), so dashboards and alerts written for Substrate nodes carry over
with a prefix change.

Most values are *read at scrape time* by a custom collector instead of being pushed as the node
runs: heights, peers, pool size and gossip counters already live in the node's own objects, and
reading them when Prometheus asks costs nothing between scrapes and cannot drift from the truth.
Only block import time is pushed (`observe_import`), because a duration exists only at the moment
it is measured.

Each `NodeMetrics` owns its own `CollectorRegistry` rather than using prometheus_client's global
one: tests and benchmarks run several nodes in one process, and the global registry refuses a
second metric of the same name.

What a scrape reads is `MetricsSource`, which `Node` satisfies.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol
from urllib.parse import urlsplit

import trio
from hypercorn.config import Config
from hypercorn.trio import serve
from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import choose_encoder
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

if TYPE_CHECKING:  # types only: a node without networking never imports py-libp2p
    from node.core.chain import Chain
    from node.core.network_service import NodeNetwork
    from node.core.txpool import TxPool

__all__ = [
    "DEFAULT_PORT",
    "IMPORT_BUCKETS",
    "MetricsSource",
    "NodeMetrics",
    "build_app",
    "gossip_counts",
    "serve_metrics",
]

DEFAULT_PORT = 9615  # Substrate's
# An empty block imports in a few milliseconds, a full one in up to a slot: log-spaced from 1 ms.
IMPORT_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
# Label `direction` -> the `node.p2p.gossip.GossipCounters` field it reports.
GOSSIP_DIRECTIONS = {"in": "received", "out": "published", "rejected": "rejected", "dropped": "dropped"}


class MetricsSource(Protocol):
    """What a scrape reads: heights from the chain, the ready count from the pool, peers and sync
    state, and the gossip counters of the p2p network under `network` (None without networking)."""

    chain: Chain
    pool: TxPool
    network: NodeNetwork | None

    def peers(self) -> list[dict[str, Any]]: ...

    def is_syncing(self) -> bool: ...


class NodeMetrics:
    """The metrics of one node: a registry with the scrape-time collector and the import histogram."""

    def __init__(self, node: MetricsSource) -> None:
        self.node = node
        self.registry = CollectorRegistry(auto_describe=True)
        self.registry.register(_NodeCollector(node))
        self.block_import_seconds = Histogram(
            "imagechain_block_import_seconds",
            "Time to verify and import a block received from the network",
            buckets=IMPORT_BUCKETS,
            registry=self.registry,
        )

    def observe_import(self, seconds: float) -> None:
        """Record one block import (called by the node around `import_block`)."""
        self.block_import_seconds.observe(seconds)

    def render(self, accept: str = "") -> tuple[bytes, str]:
        """The exposition text and its content type (OpenMetrics if the scraper asks for it)."""
        encoder, content_type = choose_encoder(accept)
        return encoder(self.registry), content_type


class _Families(NamedTuple):
    height: GaugeMetricFamily
    peers: GaugeMetricFamily
    ready: GaugeMetricFamily
    syncing: GaugeMetricFamily
    gossip: CounterMetricFamily

    @classmethod
    def empty(cls) -> _Families:
        return cls(
            GaugeMetricFamily(
                "imagechain_block_height",
                "Block height of the best and the finalized block",
                labels=["status"],
            ),
            GaugeMetricFamily("imagechain_sync_peers", "Number of connected peers"),
            GaugeMetricFamily("imagechain_ready_transactions_number", "Transactions ready for inclusion"),
            GaugeMetricFamily("imagechain_is_major_syncing", "1 while the node is far behind its peers"),
            CounterMetricFamily(
                "imagechain_gossip_messages",
                "Gossip messages received (in), published (out), rejected as invalid, dropped when the queue was full",
                labels=["topic", "direction"],
            ),
        )


class _NodeCollector:
    """Reads the node's live state on each scrape (see the module docstring for why)."""

    def __init__(self, node: MetricsSource) -> None:
        self.node = node

    def describe(self) -> list[Metric]:
        """Fixed metric names, so the registry can check for clashes without reading the node."""
        return list(_Families.empty())

    def collect(self) -> Iterator[Metric]:
        node = self.node
        families = _Families.empty()
        families.height.add_metric(["best"], node.chain.best_header().number)
        families.height.add_metric(["finalized"], node.chain.finalized_header().number)
        families.peers.add_metric([], len(node.peers()))
        families.ready.add_metric([], node.pool.counts()[0])
        families.syncing.add_metric([], 1 if node.is_syncing() else 0)
        p2p = node.network.network if node.network is not None else None
        for (topic, direction), count in sorted(gossip_counts(p2p).items()):
            families.gossip.add_metric([topic, direction], count)
        yield from families


def gossip_counts(network: Any) -> dict[tuple[str, str], int]:
    """The p2p `Network`'s gossip counters as {(topic, direction): count}; empty without a network.

    `Network.gossip_counters` maps each short topic name to a `GossipCounters`; the directions
    are its `received` (in), `published` (out), `rejected` (invalid: the sender lost score) and
    `dropped` (ignored unread because the node's queue for the topic was full: backpressure).
    Read with defaults, so a node without networking, or counters that change shape, never make
    a scrape fail.
    """
    per_topic = getattr(network, "gossip_counters", None) if network is not None else None
    if not isinstance(per_topic, Mapping):
        return {}
    counts: dict[tuple[str, str], int] = {}
    for topic, counters in per_topic.items():
        for direction, field in GOSSIP_DIRECTIONS.items():
            value = counters.get(field, 0) if isinstance(counters, Mapping) else getattr(counters, field, 0)
            counts[(str(topic), direction)] = int(value)
    return counts


# ---------------------------------------------------------------------------------------------
# Serving
# ---------------------------------------------------------------------------------------------


def build_app(metrics: NodeMetrics) -> Starlette:
    """`GET /metrics` and nothing else (separate from `serve_metrics` so tests can mount it)."""

    async def scrape(request: Request) -> Response:
        # Rendered on the event loop thread on purpose: the collector reads the chain, the pool and
        # the network, none of which is safe to touch from another thread; a render takes < 1 ms.
        body, content_type = metrics.render(request.headers.get("accept", ""))
        return Response(body, headers={"content-type": content_type})

    return Starlette(routes=[Route("/metrics", scrape, methods=["GET"])])


class _WithoutBanner(logging.Filter):
    """Drop hypercorn's "Running on ... (CTRL + C to quit)": the node logs its own line."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("Running on")


def _http_log() -> logging.Logger:
    logger = logging.getLogger("imagechain.metrics.http")
    if not any(isinstance(existing, _WithoutBanner) for existing in logger.filters):
        logger.addFilter(_WithoutBanner())
    return logger


async def serve_metrics(
    metrics: NodeMetrics,
    host: str = "127.0.0.1",
    port: int = DEFAULT_PORT,
    *,
    task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve `/metrics` until cancelled, as one more task in the node's nursery.

    Reports the bound port through `task_status` (the point of port 0 in tests and devnets).
    """
    config = Config()
    config.bind = [f"[{host}]:{port}" if ":" in host else f"{host}:{port}"]
    config.accesslog = None
    config.errorlog = _http_log()
    config.include_server_header = False
    async with trio.open_nursery() as nursery:
        binds: list[str] = await nursery.start(serve, build_app(metrics), config)
        bound_port = urlsplit(binds[0]).port
        assert bound_port is not None
        task_status.started(bound_port)
