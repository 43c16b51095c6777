"""`devnet up|status|down` bookkeeping: refusals, stale pid files, stopping (stand-in processes)."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest
from click.testing import CliRunner

from devnet.cli import devnet_group
from devnet.control import DevnetError, down, find_running, up
from devnet.layout import Devnet
from tests.devnet.conftest import free_port_bases


def plan(dir: Path, validators: int = 2, full_nodes: int = 1) -> Devnet:
    rpc, p2p, prometheus = free_port_bases(validators + full_nodes)
    devnet = Devnet.plan(dir.resolve(), validators, full_nodes, rpc, p2p, prometheus)
    dir.mkdir(parents=True, exist_ok=True)
    devnet.save()
    return devnet


def up_options(devnet: Devnet, validators: int = 2, full_nodes: int = 1) -> dict[str, int]:
    first = devnet.nodes[0]
    return {
        "validators": validators,
        "full_nodes": full_nodes,
        "rpc_port": first.rpc_port,
        "p2p_port": first.p2p_port,
        "prometheus_port": first.prometheus_port,
        "slot_ms": 1000,
    }


def test_up_refuses_a_taken_port_before_starting_anything(tmp_path: Path) -> None:
    devnet = plan(tmp_path / "net")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", devnet.nodes[1].p2p_port))
        taken.listen()
        with pytest.raises(DevnetError, match=f"node1's p2p port {devnet.nodes[1].p2p_port} is in use"):
            up(tmp_path / "net", **up_options(devnet))
    assert not list((tmp_path / "net").glob("node*"))


def test_up_refuses_overlapping_port_ranges(tmp_path: Path) -> None:
    with pytest.raises(DevnetError, match="node1's RPC port 40001 is also node0's p2p port 40001"):
        up(
            tmp_path,
            validators=2,
            full_nodes=0,
            rpc_port=40000,
            p2p_port=40001,
            prometheus_port=41000,
            slot_ms=1000,
        )


def test_up_refuses_another_chain_spec_over_old_data_unless_reset(tmp_path: Path) -> None:
    devnet = plan(tmp_path)
    devnet.chain_path.write_text('{"an": "older devnet"}\n')
    (tmp_path / "node0" / "chains").mkdir(parents=True)
    (tmp_path / "mine").mkdir()  # not the devnet's: --reset must leave it alone
    with pytest.raises(DevnetError, match="different chain spec"):
        up(tmp_path, **up_options(devnet), timeout=0.1, python="/nonexistent/python")
    assert (tmp_path / "node0" / "chains").exists()
    # With --reset the old chain data goes; then the (deliberately) missing interpreter fails the
    # launch, which is enough to know `up` got past its checks.
    with pytest.raises(FileNotFoundError):
        up(tmp_path, **up_options(devnet), timeout=0.1, python="/nonexistent/python", reset=True)
    assert not (tmp_path / "node0" / "chains").exists()
    assert (tmp_path / "mine").exists()


def test_a_stale_pid_file_is_not_a_running_node_and_is_never_signalled(tmp_path: Path) -> None:
    devnet = plan(tmp_path)
    node0 = devnet.nodes[0]
    devnet.base_path(node0).mkdir()
    # This very process is alive but is not node0 (its command line does not name node0's base
    # path): a pid reused after a crash must not be taken for the node, let alone killed.
    devnet.pid_path(node0).write_text(f"{os.getpid()}\n")
    assert find_running(tmp_path) == {}
    assert down(tmp_path, timeout=0.1) == {
        "node0": "not running",
        "node1": "not running",
        "node2": "not running",
    }
    assert not devnet.pid_path(node0).exists()


def test_status_of_a_stopped_devnet(tmp_path: Path) -> None:
    devnet = plan(tmp_path)
    result = CliRunner().invoke(devnet_group, ["status", "--dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].split() == ["NODE", "ROLE", "KEY", "PID", "ALIVE", "BEST", "FINALIZED", "PEERS", "RPC"]
    assert lines[1].split() == [
        "node0",
        "validator",
        "//Alice",
        "-",
        "no",
        "-",
        "-",
        "-",
        devnet.nodes[0].rpc_url,
    ]
    assert lines[3].split()[:3] == ["node2", "full", "-"]


def test_status_and_down_without_a_devnet_say_so(tmp_path: Path) -> None:
    for command in ("status", "down"):
        result = CliRunner().invoke(devnet_group, [command, "--dir", str(tmp_path)])
        assert result.exit_code == 1
        assert f"no devnet in {tmp_path.resolve()}" in result.output


@pytest.mark.slow
def test_up_refuses_to_start_over_a_running_devnet(tmp_path: Path, stand_in) -> None:
    devnet = plan(tmp_path)
    process = stand_in(devnet.base_path(devnet.nodes[1]))
    assert find_running(tmp_path) == {"node1": process.pid}
    result = CliRunner().invoke(devnet_group, ["up", "--dir", str(tmp_path), "--validators", "2"])
    assert result.exit_code == 1
    assert f"a devnet is running in {tmp_path.resolve()}: node1 (pid {process.pid})" in result.output


@pytest.mark.slow
def test_down_terminates_then_kills_and_removes_pid_files(tmp_path: Path, stand_in) -> None:
    devnet = plan(tmp_path)
    polite = stand_in(devnet.base_path(devnet.nodes[0]))
    stubborn = stand_in(devnet.base_path(devnet.nodes[1]), ignore_term=True)
    result = CliRunner().invoke(devnet_group, ["down", "--dir", str(tmp_path), "--timeout", "1"])
    assert result.exit_code == 0, result.output
    assert result.output.split() == ["node0", "stopped", "node1", "killed", "node2", "not", "running"]
    # Both are gone (the stubborn one would sleep for a minute); `down` may have reaped them
    # already (they are our children here), so their exit codes are not there to check.
    polite.wait(5)
    stubborn.wait(5)
    assert not list(tmp_path.glob("node*/pid"))
