"""A real devnet: 3 validators and 1 full node as background processes on 127.0.0.1.

One devnet serves the whole module (starting one costs a few seconds of both cores); the tests
run in file order and the last one takes it down.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner
from prometheus_client.parser import text_string_to_metric_families

from devnet.cli import devnet_group
from devnet.layout import Devnet
from tests.devnet.conftest import free_port_bases

pytestmark = pytest.mark.slow

VALIDATORS, FULL_NODES = 3, 1
REPO = Path(__file__).resolve().parents[2]


def run_devnet(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """`python -m devnet ...` in a process of its own, as a person would run it from a shell."""
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
    }
    return subprocess.run(
        [sys.executable, "-m", "devnet", *args], capture_output=True, text=True, timeout=timeout, env=env
    )


def status(dir: Path) -> list[dict[str, Any]]:
    result = CliRunner().invoke(devnet_group, ["status", "--dir", str(dir), "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def eventually(check: Callable[[], Any], timeout: float, what: str) -> Any:
    """Poll `check` until it returns something truthy; fail with its last value after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"{what} within {timeout} s; last: {value!r}")
        time.sleep(0.5)


def living_members(pgid: int) -> list[int]:
    """Pids of processes in process group `pgid` that are not zombies (from /proc)."""
    living = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # exited while we looked
        state, group = fields[0], int(fields[2])
        if group == pgid and state not in ("Z", "X"):
            living.append(int(stat.parent.name))
    return living


@pytest.fixture(scope="module")
def devnet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Devnet]:
    dir = tmp_path_factory.mktemp("devnet")
    rpc, p2p, prometheus = free_port_bases(VALIDATORS + FULL_NODES)
    result = run_devnet(
        "up", "--validators", str(VALIDATORS), "--full-nodes", str(FULL_NODES), "--dir", str(dir),
        "--rpc-port", str(rpc), "--p2p-port", str(p2p), "--prometheus-port", str(prometheus),
        "--slot-ms", "1000",
    )  # fmt: skip
    try:
        assert result.returncode == 0, result.stderr
        assert result.stdout.splitlines() == [
            f"node0   validator //Alice    http://127.0.0.1:{rpc}",
            f"node1   validator //Bob      http://127.0.0.1:{rpc + 1}",
            f"node2   validator //Charlie  http://127.0.0.1:{rpc + 2}",
            f"node3   full      -          http://127.0.0.1:{rpc + 3}",
        ]
        yield Devnet.load(dir)
    finally:
        run_devnet("down", "--dir", str(dir), "--timeout", "5")


def test_every_node_answers_with_peers_and_a_growing_chain(devnet: Devnet) -> None:
    def all_following() -> list[dict[str, Any]] | None:
        rows = status(devnet.dir)
        ok = all(row["alive"] and (row["best"] or 0) > 0 and (row["peers"] or 0) >= 1 for row in rows)
        return rows if ok else None

    rows = eventually(all_following, 30, "every node alive, at best > 0, with peers")
    assert [(row["node"], row["role"]) for row in rows] == [
        ("node0", "validator"),
        ("node1", "validator"),
        ("node2", "validator"),
        ("node3", "full"),
    ]
    # Blocks from all three validators reach the full node: its chain keeps growing.
    start = rows[3]["best"]
    eventually(lambda: status(devnet.dir)[3]["best"] >= start + 3, 15, "the full node follows the chain")


def test_finality_advances_on_every_node(devnet: Devnet) -> None:
    first = eventually(
        lambda: (rows := status(devnet.dir)) and all((row["finalized"] or 0) > 0 for row in rows) and rows,
        20,
        "every node finalizes a block",
    )
    eventually(
        lambda: all(
            row["finalized"] > before["finalized"]
            for row, before in zip(status(devnet.dir), first, strict=True)
        ),
        15,
        "finality keeps advancing",
    )


def test_metrics_endpoint_reports_heights_and_gossip(devnet: Devnet) -> None:
    node = devnet.nodes[3]
    response = httpx.get(f"http://127.0.0.1:{node.prometheus_port}/metrics", timeout=5)
    values = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }
    assert values[("imagechain_block_height", (("status", "best"),))] > 0
    assert values[("imagechain_sync_peers", ())] >= 1
    assert values[("imagechain_gossip_messages_total", (("direction", "in"), ("topic", "blocks")))] > 0
    assert values[("imagechain_block_import_seconds_count", ())] > 0


def test_down_stops_every_node_and_leaves_no_process(devnet: Devnet) -> None:
    pids = [devnet.read_pid(node) for node in devnet.nodes]
    assert all(pids)
    result = run_devnet("down", "--dir", str(devnet.dir))
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [
        "node0",
        "stopped",
        "node1",
        "stopped",
        "node2",
        "stopped",
        "node3",
        "stopped",
    ]
    assert not list(devnet.dir.glob("node*/pid"))
    # Neither a node nor anything it started in its process group lives on (zombies wait for init,
    # which reaps slowly in some containers, but they are dead).
    assert not [pid for pid in pids if living_members(pid)]
    assert all(not row["alive"] for row in status(devnet.dir))
