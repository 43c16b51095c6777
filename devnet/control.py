"""Start, inspect and stop a devnet's node processes (the logic behind `imagechain devnet`).

Nodes run detached (their own session), so a devnet outlives the shell that started it and is
found again through its directory: the manifest says which ports each node serves, the pid file
which process is the node. Two rules keep that safe:

* A pid is believed only if that process's command line names the node's base path. A pid file
  left behind by a crash, whose pid now belongs to something else, is stale: `down` never
  signals it and `up` does not mistake it for a running devnet.
* `up` either leaves the whole devnet running or stops what it started: a half-started devnet
  would only confuse the next `status`.

These functions return data and raise `DevnetError`; `devnet.cli` prints.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import node as node_package
from devnet.layout import Devnet, ManifestError, NodeEntry, devnet_spec
from node.fsutil import write_atomic

__all__ = [
    "DevnetError",
    "ManifestError",
    "NodeStatus",
    "down",
    "find_running",
    "node_pid",
    "status",
    "up",
]

NODE_DIR = re.compile(r"node\d+")
POLL_S = 0.2
RPC_CALL_TIMEOUT_S = 2.0
LOG_TAIL_LINES = 25
KILL_WAIT_S = 5.0


class DevnetError(Exception):
    """Something the person running the devnet must act on; the message says what."""


# ---------------------------------------------------------------------------------------------
# Processes
# ---------------------------------------------------------------------------------------------


def _reap(pid: int) -> None:
    """Collect the exit status if `pid` is our own child, so an exited node does not linger as a
    zombie that still looks alive (the case when `up` and `down` run in one process, as in tests)."""
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass  # not our child: its parent (or init) reaps it


def _is_node_process(pid: int, base_path: Path) -> bool:
    """Whether `pid` is alive and is the node whose base path is `base_path` (see module docstring)."""
    _reap(pid)
    if not Path("/proc/self").exists():  # no procfs (macOS): trust the pid file
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    proc = Path(f"/proc/{pid}")
    try:
        state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
        arguments = (proc / "cmdline").read_bytes().split(b"\0")
    except (OSError, IndexError):
        return False
    if state in ("Z", "X"):  # exited between the reap above and now
        _reap(pid)
        return False
    return os.fsencode(str(base_path)) in arguments


def node_pid(devnet: Devnet, node: NodeEntry) -> int | None:
    """The pid of the node's running process, or None if it is not running."""
    pid = devnet.read_pid(node)
    if pid is None or not _is_node_process(pid, devnet.base_path(node)):
        return None
    return pid


def find_running(dir: Path) -> dict[str, int]:
    """{node name: pid} of every live node under `dir`, whatever the manifest says.

    Scans the node directories themselves, so a devnet whose manifest was lost or rewritten is
    still found.
    """
    running: dict[str, int] = {}
    for pid_file in sorted(dir.glob("node*/pid")):
        if not NODE_DIR.fullmatch(pid_file.parent.name):
            continue
        try:
            pid = int(pid_file.read_text().strip())
        except (OSError, ValueError):
            continue
        if _is_node_process(pid, pid_file.parent):
            running[pid_file.parent.name] = pid
    return running


def _log_tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:]) or "(empty log)"


def _node_arguments(
    devnet: Devnet, node: NodeEntry, python: str, bootnodes: list[str], log_spec: str, network: bool
) -> list[str]:
    arguments = [
        python, "-m", "node", "node",
        "--chain", str(devnet.chain_path),
        "--base-path", str(devnet.base_path(node)),
        "--name", node.name,
        "--rpc-port", str(node.rpc_port),
        "--port", str(node.p2p_port),
        "--prometheus-port", str(node.prometheus_port),
        "--log", log_spec,
    ]  # fmt: skip
    if node.key is not None:
        arguments += ["--validator", "--key", node.key]
    for address in bootnodes:
        arguments += ["--bootnodes", address]
    if not network:
        arguments.append("--no-network")
    return arguments


def _launch(devnet: Devnet, node: NodeEntry, arguments: list[str]) -> subprocess.Popen[bytes]:
    """Start one node detached from our session, its output appended to its log, its pid recorded."""
    base_path = devnet.base_path(node)
    base_path.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    # Run the node from the same source tree as this command, wherever the shell's cwd is.
    source_root = str(Path(node_package.__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (source_root, env.get("PYTHONPATH")) if p)
    env["PYTHONUNBUFFERED"] = "1"
    with open(devnet.log_path(node), "ab") as log:
        stamp = datetime.now().isoformat(timespec="seconds")
        log.write(f"---- devnet: {node.name} starting at {stamp}: {' '.join(arguments)}\n".encode())
        log.flush()
        process = subprocess.Popen(
            arguments,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,  # Ctrl-C in the shell that ran `up` must not reach the nodes
        )
    devnet.pid_path(node).write_text(f"{process.pid}\n")
    return process


def _wait_for_rpc(
    devnet: Devnet, node: NodeEntry, process: subprocess.Popen[bytes], method: str, deadline: float
) -> Any:
    """Call `method` on the node until it answers; fail fast if the process exits, or at `deadline`."""
    from node.client import NodeUnreachable, RpcClient, RpcError

    with RpcClient(node.rpc_url, timeout=RPC_CALL_TIMEOUT_S) as client:
        while True:
            if process.poll() is not None:
                raise DevnetError(
                    f"{node.name} exited with code {process.returncode} before its RPC answered; "
                    f"the end of {devnet.log_path(node)}:\n{_log_tail(devnet.log_path(node))}"
                )
            try:
                return client.call(method)
            except RpcError as exc:
                raise DevnetError(f"{node.name} answered {method} with an error: {exc}") from exc
            except NodeUnreachable:
                pass
            if time.monotonic() > deadline:
                raise DevnetError(
                    f"{node.name} did not answer RPC at {node.rpc_url} in time; "
                    f"the end of {devnet.log_path(node)}:\n{_log_tail(devnet.log_path(node))}"
                )
            time.sleep(POLL_S)


def _bootnode_address(node: NodeEntry, addresses: Any) -> str:
    """The address other nodes should dial: loopback, ending in /p2p/<peer id>."""
    candidates = (
        [a for a in addresses if isinstance(a, str) and "/p2p/" in a] if isinstance(addresses, list) else []
    )
    loopback = [a for a in candidates if a.startswith("/ip4/127.0.0.1/")]
    if not candidates:
        raise DevnetError(f"{node.name} reported no dialable listen address (got {addresses!r})")
    return (loopback or candidates)[0]


# ---------------------------------------------------------------------------------------------
# up
# ---------------------------------------------------------------------------------------------


def _check_ports_free(devnet: Devnet) -> None:
    """Fail before starting anything if the plan reuses a port (a mistake in the flags), then if a
    port is taken on this machine (a node would die with a bind error)."""
    planned = [
        (f"{node.name}'s {kind} port {port}", port)
        for node in devnet.nodes
        for kind, port in (("RPC", node.rpc_port), ("p2p", node.p2p_port), ("Prometheus", node.prometheus_port))
    ]
    seen: dict[int, str] = {}
    for what, port in planned:
        if not 0 < port < 65536:
            raise DevnetError(f"{what} is out of range")
        if port in seen:
            raise DevnetError(f"{what} is also {seen[port]}: choose base ports further apart")
        seen[port] = what
    for what, port in planned:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            # As the node's own listeners do, so a port in TIME_WAIT does not count as taken.
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(("127.0.0.1", port))
            except OSError as exc:
                raise DevnetError(f"{what} is in use ({exc.strerror})") from exc


def _prepare_dir(devnet: Devnet, spec_text: str, reset: bool) -> None:
    """Refuse to disturb a running devnet, or to mix a new chain spec with an old chain's data."""
    dir = devnet.dir
    running = find_running(dir) if dir.exists() else {}
    if running:
        listed = ", ".join(f"{name} (pid {pid})" for name, pid in running.items())
        raise DevnetError(
            f"a devnet is running in {dir}: {listed}; stop it with `imagechain devnet down --dir {dir}` first"
        )
    if reset and devnet.manifest_path.exists():
        # Only what the previous devnet's manifest names: DIR may hold other things of the user's.
        for old in Devnet.load(dir).nodes:
            shutil.rmtree(devnet.base_path(old), ignore_errors=True)
        devnet.chain_path.unlink(missing_ok=True)
        devnet.manifest_path.unlink(missing_ok=True)
    if devnet.chain_path.exists() and devnet.chain_path.read_text() != spec_text:
        raise DevnetError(
            f"{dir} holds a stopped devnet with a different chain spec (validator count or slot time); "
            "use --reset to delete its chain data, or another --dir"
        )
    dir.mkdir(parents=True, exist_ok=True)


def up(
    dir: Path,
    *,
    validators: int,
    full_nodes: int,
    rpc_port: int,
    p2p_port: int,
    prometheus_port: int,
    slot_ms: int,
    python: str = sys.executable,
    log_spec: str = "info",
    timeout: float = 60.0,
    reset: bool = False,
    network: bool = True,
    progress: Callable[[str], None] = lambda _message: None,
) -> Devnet:
    """Start a devnet in `dir` and return once every node answers RPC.

    Node 0 starts first and the others get its listen address as their bootnode; Kademlia
    discovery connects them with each other from there. A stopped devnet with the same spec is
    restarted on its existing chain data. On any failure, the nodes already started are stopped.
    """
    if validators < 1:
        raise DevnetError("a devnet needs at least one validator")
    if full_nodes < 0:
        raise DevnetError("--full-nodes cannot be negative")
    if slot_ms <= 0:
        raise DevnetError("--slot-ms must be positive")
    dir = dir.resolve()
    devnet = Devnet.plan(dir, validators, full_nodes, rpc_port, p2p_port, prometheus_port)
    spec_text = json.dumps(devnet_spec(validators, slot_ms), indent=2) + "\n"
    _prepare_dir(devnet, spec_text, reset)
    _check_ports_free(devnet)
    write_atomic(devnet.chain_path, spec_text.encode())  # every node reads it at each start
    devnet.save()

    deadline = time.monotonic() + timeout
    processes: dict[str, subprocess.Popen[bytes]] = {}
    try:
        first, rest = devnet.nodes[0], devnet.nodes[1:]
        progress(f"starting {first.name}")
        processes[first.name] = _launch(
            devnet, first, _node_arguments(devnet, first, python, [], log_spec, network)
        )
        bootnodes: list[str] = []
        if network:
            addresses = _wait_for_rpc(
                devnet, first, processes[first.name], "system_localListenAddresses", deadline
            )
            bootnodes = [_bootnode_address(first, addresses)]
            progress(f"{first.name} listens on {bootnodes[0]}")
        for node in rest:
            progress(f"starting {node.name}")
            arguments = _node_arguments(devnet, node, python, bootnodes, log_spec, network)
            processes[node.name] = _launch(devnet, node, arguments)
        for node in devnet.nodes:
            _wait_for_rpc(devnet, node, processes[node.name], "system_health", deadline)
    except BaseException:  # Ctrl-C included: leave no half-started devnet behind
        down(devnet, timeout=10.0)
        raise
    return devnet


# ---------------------------------------------------------------------------------------------
# status
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class NodeStatus:
    node: NodeEntry
    pid: int | None  # the recorded pid (alive or not)
    alive: bool
    best: int | None = None
    finalized: int | None = None
    peers: int | None = None
    error: str | None = None  # why the RPC columns are empty

    def to_json(self) -> dict[str, Any]:
        return {
            "node": self.node.name,
            "role": self.node.role,
            "key": self.node.key,
            "rpc": self.node.rpc_url,
            "pid": self.pid,
            "alive": self.alive,
            "best": self.best,
            "finalized": self.finalized,
            "peers": self.peers,
            "error": self.error,
        }


def _node_status(devnet: Devnet, node: NodeEntry) -> NodeStatus:
    from node.client import RpcClient, RpcClientError

    recorded = devnet.read_pid(node)
    alive = node_pid(devnet, node) is not None
    if not alive:
        return NodeStatus(node, recorded, False, error="not running")
    try:
        with RpcClient(node.rpc_url, timeout=RPC_CALL_TIMEOUT_S) as client:
            best = client.header().number
            finalized = client.header(client.finalized_head()).number
            peers = int(client.health()["peers"])
    except (RpcClientError, KeyError, TypeError, ValueError) as exc:
        return NodeStatus(node, recorded, True, error=str(exc))
    return NodeStatus(node, recorded, True, best, finalized, peers)


def status(dir: Path) -> list[NodeStatus]:
    """Every node's process and chain state, asked of all nodes at once (a hung one costs 2 s once)."""
    devnet = Devnet.load(dir.resolve())
    with ThreadPoolExecutor(max_workers=min(16, len(devnet.nodes)) or 1) as pool:
        return list(pool.map(lambda node: _node_status(devnet, node), devnet.nodes))


# ---------------------------------------------------------------------------------------------
# down
# ---------------------------------------------------------------------------------------------


def _kill_group(pid: int) -> None:
    """SIGKILL the node's whole process group (it leads its own session), helpers included."""
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def down(devnet: Devnet | Path, timeout: float = 15.0) -> dict[str, str]:
    """Stop every node: SIGTERM (a clean shutdown), SIGKILL after `timeout` s; remove the pid files.

    Returns {node name: "stopped" | "killed" | "not running"}; raises if a node survives SIGKILL.
    """
    if not isinstance(devnet, Devnet):
        devnet = Devnet.load(devnet.resolve())
    outcome: dict[str, str] = {}
    running: dict[str, tuple[NodeEntry, int]] = {}
    for node in devnet.nodes:
        pid = node_pid(devnet, node)
        if pid is None:
            outcome[node.name] = "not running"
            continue
        running[node.name] = (node, pid)
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass

    def still_running() -> dict[str, tuple[NodeEntry, int]]:
        return {
            name: (node, pid)
            for name, (node, pid) in running.items()
            if _is_node_process(pid, devnet.base_path(node))
        }

    deadline = time.monotonic() + timeout
    while still_running() and time.monotonic() < deadline:
        time.sleep(POLL_S)
    stubborn = still_running()
    for _node, pid in stubborn.values():
        _kill_group(pid)
    deadline = time.monotonic() + KILL_WAIT_S
    while still_running() and time.monotonic() < deadline:
        time.sleep(POLL_S)
    survivors = still_running()
    for name, (_node, pid) in running.items():
        _kill_group(pid)  # whatever the node left behind in its process group
        outcome[name] = "killed" if name in stubborn else "stopped"
    outcome = {node.name: outcome[node.name] for node in devnet.nodes}
    for node in devnet.nodes:
        if node.name not in survivors:
            devnet.pid_path(node).unlink(missing_ok=True)
    if survivors:
        listed = ", ".join(f"{name} (pid {pid})" for name, (_node, pid) in survivors.items())
        raise DevnetError(f"could not stop {listed}")
    return outcome
