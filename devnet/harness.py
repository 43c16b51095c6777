"""A small multi-node network of real `imagechain node` processes on 127.0.0.1 (tests, benches).

Unlike `devnet up`, the harness starts, kills and restarts single nodes with extra flags, which
the fault tests need. Node 0 is the bootnode of every other node.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from devnet.layout import devnet_spec, validator_keys
from node.client import RpcClient
from node.fsutil import write_atomic

_handed_out: set[int] = set()  # membership only: ports already given to a node of this process


def free_port() -> int:
    """A free loopback port, never one handed out before in this process (the OS may offer a
    port again as soon as the probing socket closes, and two nodes would then collide)."""
    while True:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        if port not in _handed_out:
            _handed_out.add(port)
            return port


def eventually(check: Callable[[], Any], timeout: float, what: str, interval: float = 0.3) -> Any:
    deadline = time.monotonic() + timeout
    value = None
    while time.monotonic() < deadline:
        try:
            value = check()
        except Exception as exc:  # noqa: BLE001 - a node may be restarting
            value = exc
        if value and not isinstance(value, Exception):
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}; last: {value!r}")


@dataclass
class NetNode:
    index: int
    base: Path
    key: str | None
    rpc_port: int = field(default_factory=free_port)
    p2p_port: int = field(default_factory=free_port)
    prometheus_port: int = field(default_factory=free_port)
    extra: list[str] = field(default_factory=list)
    process: subprocess.Popen[bytes] | None = None

    @property
    def client(self) -> RpcClient:
        return RpcClient(f"http://127.0.0.1:{self.rpc_port}", timeout=10)

    @property
    def log_path(self) -> Path:
        return self.base.parent / f"node{self.index}.log"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-6000:] if self.log_path.exists() else ""

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None


class Network:
    def __init__(self, root: Path, validators: int, full_nodes: int = 0, slot_ms: int = 1000) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self.chain_path = root / "chain.json"
        write_atomic(self.chain_path, json.dumps(devnet_spec(validators, slot_ms)).encode())
        keys = validator_keys(validators)
        self.nodes = [NetNode(i, root / f"node{i}", keys[i] if i < validators else None)
                      for i in range(validators + full_nodes)]
        self.bootnode: str | None = None

    def arguments(self, node: NetNode) -> list[str]:
        args = [sys.executable, "-m", "node", "node", "--chain", str(self.chain_path),
                "--base-path", str(node.base), "--rpc-port", str(node.rpc_port), "--port", str(node.p2p_port),
                "--prometheus-port", str(node.prometheus_port), "--name", f"node{node.index}", "--log", "info", "--pruning", "archive"]
        if node.key is not None:
            args += ["--validator", "--key", node.key]
        if self.bootnode is not None and node.index != 0:
            args += ["--bootnodes", self.bootnode]
        return args + node.extra

    def start(self, node: NetNode, wait: bool = True) -> None:
        log = open(node.log_path, "ab")  # noqa: SIM115 - the child owns it
        node.process = subprocess.Popen(self.arguments(node), stdout=log, stderr=subprocess.STDOUT,
                                        env={**os.environ}, start_new_session=True)
        if wait:
            try:
                eventually(lambda: node.client.health() is not None, 60, f"node{node.index} RPC")
            except AssertionError as exc:
                raise AssertionError(f"{exc}\n--- node{node.index} log ---\n{node.log()}") from None
            if node.index == 0 and self.bootnode is None:
                addresses = node.client.call("system_localListenAddresses")
                self.bootnode = addresses[0]

    def start_all(self, count: int | None = None) -> None:
        for node in self.nodes[: count if count is not None else len(self.nodes)]:
            self.start(node)

    def kill(self, node: NetNode) -> None:
        if node.process is not None and node.process.poll() is None:
            os.killpg(node.process.pid, signal.SIGKILL)
            node.process.wait(10)

    def stop_all(self) -> None:
        for node in self.nodes:
            if node.alive:
                assert node.process is not None
                node.process.send_signal(signal.SIGINT)
        for node in self.nodes:
            if node.process is not None:
                try:
                    node.process.wait(15)
                except subprocess.TimeoutExpired:
                    self.kill(node)

    # -- views --------------------------------------------------------------------------------------

    def heads(self, node: NetNode) -> tuple[int, int]:
        """(best, finalized) block numbers."""
        client = node.client
        best = client.header().number
        finalized = client.header(client.finalized_head()).number
        return best, finalized

    def finalized_hashes(self, node: NetNode, upto: int) -> list[bytes]:
        client = node.client
        return [client.block_hash(n) for n in range(upto + 1)]

    def peer_id(self, node: NetNode) -> str:
        return node.client.call("system_localPeerId")
