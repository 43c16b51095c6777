"""`imagechain` as a user runs it, in its own process: `--tmp` leaves nothing behind, and a busy RPC
port under `--dev` ends in one line, not a nested traceback of the RPC service."""

from __future__ import annotations

import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from devnet.harness import free_port
from node.client import RpcClient

pytestmark = pytest.mark.slow


def test_tmp_runs_a_chain_and_removes_it(tmp_path: Path) -> None:
    port = free_port()
    log = tmp_path / "node.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "node", "node", "--chain", "dev", "--tmp", "--rpc-port", str(port), "--no-network",
             "--log", "info"],
            stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        with RpcClient(f"http://127.0.0.1:{port}", timeout=5) as client:
            while True:
                try:
                    assert client.chain_name() == "imagechain development"
                    break
                except Exception:  # noqa: BLE001 - still starting
                    assert time.monotonic() < deadline and process.poll() is None, log.read_text()
                    time.sleep(0.2)
    finally:
        process.send_signal(signal.SIGINT)
        assert process.wait(30) == 0
    found = re.search(r"(/\S*imagechain-tmp-\w+)", log.read_text())
    assert found is not None, log.read_text()
    assert not Path(found.group(1)).exists()


def test_a_busy_port_under_dev_is_one_line(tmp_path: Path) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        done = subprocess.run(
            [sys.executable, "-m", "node", "--dev", "--rpc-port", str(port)], capture_output=True, text=True, timeout=60
        )
    assert done.returncode == 1
    errors = [line for line in done.stderr.splitlines() if line.startswith("Error: ")]
    assert errors == [f"Error: cannot listen on 127.0.0.1:{port} (--rpc-port): it is in use (another node running?); "
                      "choose another --rpc-port"], done.stderr  # fmt: skip
    assert "Traceback" not in done.stderr
