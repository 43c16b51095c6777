"""Helpers for devnet tests: free loopback port ranges and stand-in node processes."""

from __future__ import annotations

import random
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest


def _free(port: int) -> bool:
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port_bases(count: int, kinds: int = 3) -> list[int]:
    """`kinds` base ports, each the start of `count` free consecutive ports, the ranges disjoint."""
    rng = random.Random()
    for _attempt in range(200):
        start = rng.randrange(20000, 60000 - kinds * count * 2, 2 * count)
        bases = [start + i * 2 * count for i in range(kinds)]
        if all(_free(base + i) for base in bases for i in range(count)):
            return bases
    raise RuntimeError("no free port ranges on 127.0.0.1")


STAND_IN = """
import signal, sys, time
if sys.argv[1] == "ignore-term":
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
print("ready", flush=True)
time.sleep(60)
"""


@pytest.fixture
def stand_in() -> Iterator:
    """Start a process that looks like a node of a base path (its command line names it).

    `down` and `up` recognise node processes by their command line, so a sleeping Python process
    with `--base-path <path>` in its arguments stands in for a node without the cost of one.
    """
    started: list[subprocess.Popen[bytes]] = []

    def start(base_path: Path, ignore_term: bool = False) -> subprocess.Popen[bytes]:
        mode = "ignore-term" if ignore_term else "normal"
        process = subprocess.Popen(
            [sys.executable, "-c", STAND_IN, mode, "--base-path", str(base_path)],
            stdout=subprocess.PIPE,
            start_new_session=True,
        )
        started.append(process)
        assert process.stdout is not None
        assert process.stdout.readline() == b"ready\n"  # its SIGTERM handler is in place
        base_path.mkdir(parents=True, exist_ok=True)
        (base_path / "pid").write_text(f"{process.pid}\n")
        return process

    yield start
    for process in started:
        if process.poll() is None:
            process.kill()
        process.wait(5)
        if process.stdout is not None:
            process.stdout.close()
