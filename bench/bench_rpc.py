"""JSON-RPC throughput against a real dev node process: `chain_getHeader` and `author_submitExtrinsic`.

Each measurement runs a fixed number of requests from N client threads, each with its own
keep-alive HTTP connection, and prints requests per second.

    .venv/bin/python bench/bench_rpc.py [--requests 4000] [--clients 4]
"""

from __future__ import annotations

import argparse
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

from node.client import RpcClient
from node.keys import dev_keypair
from node.runtime.runtime import SPEC_VERSION
from node.types import Call, Mortality, SignedExtra, sign_extrinsic


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def run_clients(url: str, bodies: list[list[dict]], label: str) -> None:
    """Each client thread posts its list of request bodies sequentially over one connection."""
    errors = []

    def worker(requests: list[dict]) -> None:
        with httpx.Client(base_url=url, timeout=30) as http:
            for body in requests:
                reply = http.post("/", json=body).json()
                if "error" in reply:
                    errors.append(reply["error"])

    threads = [threading.Thread(target=worker, args=(b,)) for b in bodies]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    seconds = time.perf_counter() - started
    total = sum(len(b) for b in bodies)
    print(f"{label:<28} {total / seconds:8,.0f} req/s  ({total} requests, {len(bodies)} clients, "
          f"{len(errors)} errors)", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=4000)
    parser.add_argument("--clients", type=int, default=4)
    args = parser.parse_args()

    base = Path(tempfile.mkdtemp(prefix="bench-rpc-"))
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "node", "--dev", "--base-path", str(base), "--rpc-port", str(port), "--log", "warn"],
    )
    url = f"http://127.0.0.1:{port}"
    client = RpcClient(url)
    try:
        for _ in range(300):
            try:
                client.health()
                break
            except Exception:  # noqa: BLE001 - still starting
                time.sleep(0.1)
        genesis = client.genesis_hash()
        per_client = args.requests // args.clients

        header_bodies = [
            [{"jsonrpc": "2.0", "id": i, "method": "chain_getHeader", "params": []} for i in range(per_client)]
            for _ in range(args.clients)
        ]
        run_clients(url, header_bodies, "chain_getHeader")

        # Distinct senders per client so that nonces never collide; all signed before timing.
        print("signing transfers...", flush=True)
        dest = dev_keypair("//Ferdie").account_id
        submit_bodies = []
        for c in range(args.clients):
            sender = dev_keypair(["//Alice", "//Bob", "//Charlie", "//Eve"][c % 4] if c < 4 else f"//Rpc{c}")
            start = client.next_nonce(sender.account_id)
            body = []
            for i in range(per_client):
                extra = SignedExtra(genesis, SPEC_VERSION, start + i, 0, Mortality.from_genesis(genesis))
                call = Call("balances", "transfer", (dest, (10**15).to_bytes(16, "big")))
                encoded = sign_extrinsic(sender, call, extra).encode()
                body.append({"jsonrpc": "2.0", "id": i, "method": "author_submitExtrinsic",
                             "params": ["0x" + encoded.hex()]})
            submit_bodies.append(body)
        run_clients(url, submit_bodies, "author_submitExtrinsic")
    finally:
        process.terminate()
        process.wait(15)
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
