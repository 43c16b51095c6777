"""Devnet numbers: finality latency, block propagation, and catch-up sync speed.

1. A devnet of 4 validators (real processes, 127.0.0.1) runs for `--seconds`; a WebSocket
   subscriber per node records when each new head and each finalized head arrives.
   * finality latency: time from a block's slot start (its authoring time) until node 0 reports
     it final (directly or through a finalized descendant); median and p95, also in slots;
   * propagation: time from slot start until a block is the new head on each node; median and
     p95 over blocks of the slowest node (all nodes have it).
2. Catch-up: a chain of `--blocks` blocks (each with a few transfers) is built in-process; a node
   serves it and a fresh full node syncs it from genesis over libp2p, verifying everything;
   prints blocks/s.

    .venv/bin/python bench/bench_devnet.py [--seconds 30] [--blocks 5000]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import threading
import time
from pathlib import Path

from devnet.harness import Network, eventually
from node.core.node import NodeConfig
from node.keys import dev_keypair
from node.runtime.runtime import SPEC_VERSION
from node.service import open_node
from node.types import Call, Mortality, SignedExtra, sign_extrinsic

IMG = 10**18


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def watch_heads(url: str, kind: str, seen: dict[bytes, float], headers: dict[bytes, object], stop: threading.Event) -> None:
    from node.client import RpcClient

    client = RpcClient(url)
    subscribe = client.subscribe_new_heads if kind == "new" else client.subscribe_finalized_heads
    try:
        for header in subscribe(timeout=None):
            now = time.time()
            seen.setdefault(header.hash, now)
            headers[header.hash] = header
            if stop.is_set():
                return
    except Exception:  # noqa: BLE001 - the subscription ends with the devnet
        return


def bench_latency(seconds: float, slot_ms: int) -> None:
    root = Path(tempfile.mkdtemp(prefix="bench-devnet-"))
    net = Network(root, validators=4, slot_ms=slot_ms)
    net.start_all()
    try:
        eventually(lambda: net.heads(net.nodes[0])[1] >= 3, 60, "finality to start")
        stop = threading.Event()
        new_seen: list[dict[bytes, float]] = [{} for _ in net.nodes]
        headers: dict[bytes, object] = {}
        finalized_seen: dict[bytes, float] = {}
        threads = [threading.Thread(target=watch_heads, args=(n.client.url, "new", new_seen[i], headers, stop), daemon=True)
                   for i, n in enumerate(net.nodes)]
        threads.append(threading.Thread(target=watch_heads, args=(net.nodes[0].client.url, "finalized", finalized_seen, headers, stop), daemon=True))
        for t in threads:
            t.start()
        print(f"running 4 validators for {seconds:.0f} s...", flush=True)
        time.sleep(seconds)
        stop.set()
        client = net.nodes[0].client
        finalized_number = client.header(client.finalized_head()).number
        # Finality time of block n: the first finalized notification at or above n.
        finals = sorted((headers[h].number, t) for h, t in finalized_seen.items())  # type: ignore[attr-defined]
        latencies, propagation = [], []
        for number in range(1, finalized_number + 1):
            block_hash = client.block_hash(number)
            header = client.header(block_hash)
            slot_start = header.slot * slot_ms / 1000
            final_at = next((t for n, t in finals if n >= number), None)
            if final_at is not None and final_at > slot_start and number > finals[0][0]:
                latencies.append(final_at - slot_start)
            arrivals = [seen.get(block_hash) for seen in new_seen]
            if all(a is not None for a in arrivals):
                propagation.append(max(arrivals) - slot_start)  # type: ignore[type-var]
        print(f"finality latency    median {statistics.median(latencies) * 1000:.0f} ms "
              f"({statistics.median(latencies) * 1000 / slot_ms:.2f} slots), "
              f"p95 {percentile(latencies, 0.95) * 1000:.0f} ms over {len(latencies)} blocks")
        print(f"block propagation   to all 4 nodes, from slot start: median {statistics.median(propagation) * 1000:.0f} ms, "
              f"p95 {percentile(propagation, 0.95) * 1000:.0f} ms over {len(propagation)} blocks")
    finally:
        net.stop_all()


def build_chain(base: Path, spec_path: Path, blocks: int, transfers: int) -> None:
    from node.chain_spec import load_chain_spec

    spec = load_chain_spec(spec_path)
    node = open_node(NodeConfig(base, spec, authority=dev_keypair("//Alice"), rpc_port=None, pruning=None))
    bob = dev_keypair("//Bob")
    dest = dev_keypair("//Charlie").account_id
    slot = int(time.time() * 1000) // spec.params.slot_ms - blocks - 10
    started = time.perf_counter()
    nonce = 0
    for i in range(blocks):
        for _ in range(transfers):
            parent = node.chain.best_header()  # thousands of blocks: born at the parent, not genesis
            extra = SignedExtra(node.genesis_hash, SPEC_VERSION, nonce, 0, Mortality(parent.number, 64, parent.hash))
            call = Call("balances", "transfer", (dest, IMG.to_bytes(16, "big")))
            node.submit_extrinsic(sign_extrinsic(bob, call, extra).encode())
            nonce += 1
        node.author_block(slot + i)
        if (i + 1) % 1000 == 0:
            print(f"  built {i + 1} blocks ({(i + 1) / (time.perf_counter() - started):.0f} blocks/s)", flush=True)
    node.close()


def bench_catch_up(blocks: int, transfers: int) -> None:
    root = Path(tempfile.mkdtemp(prefix="bench-sync-"))
    net = Network(root, validators=1, full_nodes=1, slot_ms=2000)
    print(f"building a chain of {blocks} blocks with {transfers} transfers each...", flush=True)
    build_chain(net.nodes[0].base, net.chain_path, blocks, transfers)
    source, fresh = net.nodes
    source.key = None  # serve the chain without authoring on top of it
    net.start(source)
    started = time.perf_counter()
    net.start(fresh)
    first_seen: tuple[float, int] | None = None  # when the first synced block showed up
    last = 0
    while True:
        best = net.heads(fresh)[0]
        if best and first_seen is None:
            first_seen = (time.perf_counter(), best)
        if best != last:
            print(f"  synced #{best} ({best / (time.perf_counter() - started):.0f} blocks/s)", flush=True)
            last = best
        if best >= blocks:
            break
        time.sleep(0.25)
    seconds = time.perf_counter() - started
    assert first_seen is not None
    steady = (blocks - first_seen[1]) / max(1e-9, time.perf_counter() - first_seen[0])
    print(f"catch-up sync       {blocks} blocks of {transfers} transfers in {seconds:.1f} s: "
          f"{blocks / seconds:.0f} blocks/s including process start and connection; "
          f"{steady:.0f} blocks/s from the first synced block on")
    net.stop_all()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--slot-ms", type=int, default=1000)
    parser.add_argument("--blocks", type=int, default=5000)
    parser.add_argument("--transfers", type=int, default=3)
    parser.add_argument("--skip-latency", action="store_true")
    args = parser.parse_args()
    if not args.skip_latency:
        bench_latency(args.seconds, args.slot_ms)
    bench_catch_up(args.blocks, args.transfers)


if __name__ == "__main__":
    main()
