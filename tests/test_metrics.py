"""Prometheus metrics of a real node, scraped over real HTTP."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest
import trio
from prometheus_client.parser import text_string_to_metric_families

from node.chain_spec import genesis_block, load_chain_spec
from node.core.node import Node
from node.keys import dev_keypair
from node.metrics import NodeMetrics, gossip_counts, serve_metrics
from node.p2p.config import NetworkConfig
from node.p2p.gossip import GossipCounters
from node.service import dev_node, run_node
from tests.chainutil import IMG, signed, transfer_call

SLOT = 10**8


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """{(sample name, sorted labels): value} of an exposition text (parsed strictly)."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


@pytest.fixture
def node(tmp_path: Path) -> Node:
    node = dev_node(tmp_path, rpc_port=None)
    yield node
    node.close()


@pytest.fixture
async def scrape_url(node: Node, nursery: trio.Nursery) -> AsyncIterator[str]:
    node.metrics = NodeMetrics(node)
    port = await nursery.start(serve_metrics, node.metrics, "127.0.0.1", 0)
    yield f"http://127.0.0.1:{port}/metrics"


async def scrape(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    async with httpx.AsyncClient() as client:
        response = await client.get(url)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return samples(response.text)


async def test_scrape_reads_heights_pool_and_peers_at_scrape_time(node: Node, scrape_url: str) -> None:
    before = await scrape(scrape_url)
    assert before[("imagechain_block_height", (("status", "best"),))] == 0

    node.author_block(SLOT)
    node.author_block(SLOT + 1)
    bob = dev_keypair("//Bob")
    node.submit_extrinsic(
        signed(dev_keypair("//Alice"), transfer_call(bob.account_id, IMG), node.genesis_hash, 0)
    )

    after = await scrape(scrape_url)
    assert after[("imagechain_block_height", (("status", "best"),))] == 2
    # One authority: every block is final at once.
    assert after[("imagechain_block_height", (("status", "finalized"),))] == 2
    assert after[("imagechain_ready_transactions_number", ())] == 1
    assert after[("imagechain_sync_peers", ())] == 0
    assert after[("imagechain_is_major_syncing", ())] == 0
    assert not [key for key in after if key[0] == "imagechain_gossip_messages_total"]  # no network


async def test_import_histogram_counts_observations(node: Node, scrape_url: str) -> None:
    node.metrics.observe_import(0.004)
    node.metrics.observe_import(0.2)
    values = await scrape(scrape_url)
    assert values[("imagechain_block_import_seconds_count", ())] == 2
    assert values[("imagechain_block_import_seconds_sum", ())] == pytest.approx(0.204)
    assert values[("imagechain_block_import_seconds_bucket", (("le", "0.005"),))] == 1
    assert values[("imagechain_block_import_seconds_bucket", (("le", "+Inf"),))] == 2


async def test_only_the_metrics_path_is_served(scrape_url: str) -> None:
    async with httpx.AsyncClient() as client:
        assert (await client.get(scrape_url.removesuffix("metrics") + "other")).status_code == 404
        assert (await client.post(scrape_url)).status_code == 405


async def test_openmetrics_when_the_scraper_asks(scrape_url: str) -> None:
    async with httpx.AsyncClient() as client:
        response = await client.get(scrape_url, headers={"accept": "application/openmetrics-text"})
    assert response.headers["content-type"].startswith("application/openmetrics-text")
    assert response.text.rstrip().endswith("# EOF")


def test_two_nodes_in_one_process_have_separate_registries(tmp_path: Path) -> None:
    first, second = dev_node(tmp_path / "a", rpc_port=None), dev_node(tmp_path / "b", rpc_port=None)
    try:
        first.author_block(SLOT)
        one, two = NodeMetrics(first), NodeMetrics(second)
        one.observe_import(0.01)
        best = ("imagechain_block_height", (("status", "best"),))
        assert samples(one.render()[0].decode())[best] == 1
        rendered = samples(two.render()[0].decode())
        assert rendered[best] == 0
        assert rendered[("imagechain_block_import_seconds_count", ())] == 0
    finally:
        first.close()
        second.close()


def test_gossip_counters_are_read_from_the_p2p_network(node: Node) -> None:
    blocks = GossipCounters(received=5, published=3, rejected=1, dropped=2, accepted=4)
    p2p = SimpleNamespace(gossip_counters={"blocks": blocks, "tx": GossipCounters()}, peers=lambda: [])
    node.network = SimpleNamespace(network=p2p, peer_status={}, is_major_syncing=lambda: False)
    values = samples(NodeMetrics(node).render()[0].decode())
    gossip = {key[1]: value for key, value in values.items() if key[0] == "imagechain_gossip_messages_total"}
    assert gossip[(("direction", "in"), ("topic", "blocks"))] == 5
    assert gossip[(("direction", "out"), ("topic", "blocks"))] == 3
    assert gossip[(("direction", "rejected"), ("topic", "blocks"))] == 1
    assert gossip[(("direction", "dropped"), ("topic", "blocks"))] == 2
    assert gossip[(("direction", "in"), ("topic", "tx"))] == 0
    assert len(gossip) == 8


def test_gossip_counts_tolerate_missing_counters() -> None:
    assert gossip_counts(None) == {}
    assert gossip_counts(SimpleNamespace()) == {}
    as_dicts = SimpleNamespace(gossip_counters={"votes": {"received": 2, "published": 1}})
    assert gossip_counts(as_dicts)[("votes", "in")] == 2
    assert gossip_counts(as_dicts)[("votes", "rejected")] == 0


async def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    with trio.move_on_after(timeout):
        while not condition():
            await trio.sleep(0.05)
        return
    pytest.fail(f"{what} within {timeout} s")


@pytest.mark.slow
async def test_gossip_counters_of_two_networked_nodes(tmp_path: Path, nursery: trio.Nursery) -> None:
    """Alice authors a block, a full node receives it over gossip: both sides count it."""
    genesis_hash = genesis_block(load_chain_spec("dev")).hash

    def network(name: str, bootnodes: list[str]) -> NetworkConfig:
        return NetworkConfig(
            base_path=tmp_path / name,
            genesis_hash=genesis_hash,
            listen_addrs=["/ip4/127.0.0.1/tcp/0"],
            bootnodes=bootnodes,
            enable_dht=False,
        )

    alice = dev_node(tmp_path / "alice", rpc_port=None, network=network("alice", []))
    await nursery.start(run_node, alice)
    full = dev_node(
        tmp_path / "full",
        rpc_port=None,
        authority=None,
        network=network("full", alice.network.network.listen_addrs),
    )
    await nursery.start(run_node, full)
    try:
        alice_metrics, full_metrics = NodeMetrics(alice), NodeMetrics(full)
        blocks_out = ("imagechain_gossip_messages_total", (("direction", "out"), ("topic", "blocks")))
        blocks_in = ("imagechain_gossip_messages_total", (("direction", "in"), ("topic", "blocks")))

        def full_node_got_a_block_by_gossip() -> bool:
            return samples(full_metrics.render()[0].decode())[blocks_in] >= 1

        # Alice authors on her slot clock (2 s); the first block may reach the full node by sync
        # if the gossip mesh is not formed yet, the next ones come by gossip.
        await wait_until(full_node_got_a_block_by_gossip, 15, "a block gossiped to the full node")
        sent, received = (
            samples(alice_metrics.render()[0].decode()),
            samples(full_metrics.render()[0].decode()),
        )
        assert sent[blocks_out] >= received[blocks_in] >= 1
        assert received[("imagechain_block_height", (("status", "best"),))] >= 1
        assert received[("imagechain_sync_peers", ())] == 1
        assert sent[("imagechain_sync_peers", ())] == 1
    finally:
        nursery.cancel_scope.cancel()
        alice.close()
        full.close()
