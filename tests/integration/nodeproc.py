"""Run a real node as a subprocess for integration tests (RPC on a free loopback port)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from devnet.harness import free_port
from node.client import RpcClient


class NodeProcess:
    def __init__(self, base_path: Path, *extra_args: str, port: int | None = None) -> None:
        self.base_path = base_path
        self.port = port or free_port()
        self.extra_args = extra_args
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = base_path.parent / f"{base_path.name}.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60.0) -> RpcClient:
        log = open(self.log_path, "ab")
        args = [sys.executable, "-m", "node", "--dev", "--base-path", str(self.base_path),
                "--rpc-port", str(self.port), *self.extra_args]
        self.process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env={**os.environ})
        client = RpcClient(self.url, timeout=10)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"node exited with {self.process.returncode}; log:\n{self.log()}")
            try:
                client.health()
                return client
            except (httpx.HTTPError, OSError, Exception):  # noqa: BLE001 - still starting
                time.sleep(0.2)
        raise TimeoutError(f"node did not answer RPC within {timeout} s; log:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-5000:]

    def kill9(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> int:
        if self.process is None or self.process.poll() is not None:
            return self.process.returncode if self.process else 0
        self.process.send_signal(signal.SIGINT)
        try:
            return self.process.wait(15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait(5)
