"""Gossip and request-response over `node.p2p.Network`, one node per process, in a line.

    node0 - node1 - node2 - node3        (node0 publishes; node k is k hops away)

Measures, for each hop: latency of small messages sent at a steady rate (p50/p99), and throughput
of a burst (how long until the node has every message). Then request-response round trips and
bulk transfer between neighbours. Every hop runs the real validation path (`on_gossip` before
forwarding), like a node would.

    .venv/bin/python bench/bench_p2p.py [--nodes 4] [--latency-msgs 300] [--burst 2000] [--size 1024]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import statistics
import struct
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import trio

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from node.p2p.config import NetworkConfig  # noqa: E402
from node.p2p.network import Network, Verdict  # noqa: E402

SYNC = "/imagechain/sync/1"
_HEADER = struct.Struct(">dII")  # send time, phase, sequence number


class BenchHandler:
    def __init__(self) -> None:
        self.received: dict[int, list[tuple[int, float]]] = {}  # phase -> [(seq, latency)]
        self.last_arrival: dict[int, float] = {}

    async def on_gossip(self, topic: str, data: bytes, peer_id: str) -> Verdict:
        sent, phase, seq = _HEADER.unpack_from(data)
        now = time.time()
        self.received.setdefault(phase, []).append((seq, now - sent))
        self.last_arrival[phase] = now
        return Verdict.ACCEPT

    async def on_request(self, protocol: str, data: bytes, peer_id: str) -> bytes:
        if data.startswith(b"bulk:"):
            return b"b" * int(data[5:])
        return data

    def on_peer_connected(self, peer_id: str) -> None:
        pass

    def on_peer_disconnected(self, peer_id: str) -> None:
        pass


def payload(phase: int, seq: int, size: int) -> bytes:
    head = _HEADER.pack(time.time(), phase, seq)
    return head + b"\0" * max(0, size - len(head))


def node_main(index: int, base: str, commands: Any, results: Any) -> None:
    trio.run(_node, index, base, commands, results)


async def _node(index: int, base: str, commands: Any, results: Any) -> None:
    handler = BenchHandler()
    config = NetworkConfig(
        base_path=Path(base) / f"node{index}",
        genesis_hash=bytes(32),
        listen_addrs=["/ip4/127.0.0.1/tcp/0"],
        enable_dht=False,
    )
    network = Network(config, handler)
    network.register_protocol(SYNC)
    async with trio.open_nursery() as nursery:
        await nursery.start(network.run)
        results.put(("addr", index, network.listen_addrs[0]))
        while True:
            command, *args = await trio.to_thread.run_sync(commands.get)
            if command == "connect":
                await network.connect(args[0])
                results.put(("ok", index, None))
            elif command == "wait_mesh":
                while len(network.mesh_peers("tx")) < args[0]:
                    await trio.sleep(0.01)
                results.put(("ok", index, None))
            elif command == "publish":
                phase, count, size, interval = args
                start = time.time()
                for seq in range(count):
                    await network.publish("tx", payload(phase, seq, size))
                    if interval:
                        await trio.sleep(interval)
                results.put(("ok", index, start))
            elif command == "requests":
                peer, count, size = args
                start = time.perf_counter()
                rtts = []
                for _ in range(count):
                    t = time.perf_counter()
                    await network.request(peer, SYNC, b"q" * size)
                    rtts.append(time.perf_counter() - t)
                total = time.perf_counter() - start
                t = time.perf_counter()
                response = await network.request(peer, SYNC, b"bulk:%d" % (8 * 1024 * 1024))
                bulk = (len(response), time.perf_counter() - t)
                results.put(("ok", index, (rtts, total, bulk)))
            elif command == "report":
                counts = {
                    phase: (len(items), handler.last_arrival[phase])
                    for phase, items in handler.received.items()
                }
                latencies = {phase: [lat for _, lat in items] for phase, items in handler.received.items()}
                results.put(("report", index, (counts, latencies, network.stats()["outbound_rpc_drops"])))
            elif command == "peer_id":
                results.put(("peer_id", index, network.peer_id))
            elif command == "stop":
                nursery.cancel_scope.cancel()
                return


def percentile(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--nodes", type=int, default=4)
    parser.add_argument("--latency-msgs", type=int, default=300)
    parser.add_argument("--latency-size", type=int, default=200)
    parser.add_argument("--burst", type=int, default=2000)
    parser.add_argument("--size", type=int, default=1024)
    args = parser.parse_args()

    ctx = mp.get_context("spawn")
    results = ctx.Queue()
    commands = [ctx.Queue() for _ in range(args.nodes)]
    with tempfile.TemporaryDirectory() as base:
        procs = [
            ctx.Process(target=node_main, args=(i, base, commands[i], results)) for i in range(args.nodes)
        ]
        for proc in procs:
            proc.start()

        def collect(kind: str, n: int) -> dict[int, Any]:
            got = {}
            while len(got) < n:
                what, index, value = results.get(timeout=120)
                assert what == kind, (what, kind)
                got[index] = value
            return got

        def ask(index: int, *command: Any) -> Any:
            commands[index].put(command)
            return collect("ok", 1)[index]

        addrs = collect("addr", args.nodes)
        for i in range(1, args.nodes):
            ask(i, "connect", addrs[i - 1])
        for i in range(args.nodes):
            ask(i, "wait_mesh", 1 if i in (0, args.nodes - 1) else 2)

        # Phase 1: latency at a steady, moderate rate.
        ask(0, "publish", 1, args.latency_msgs, args.latency_size, 0.01)
        # Phase 2: a burst as fast as publish() allows.
        burst_start = ask(0, "publish", 2, args.burst, args.size, 0)
        time.sleep(1.0)
        deadline = time.time() + 60
        while True:
            for i in range(1, args.nodes):
                commands[i].put(("report",))
            reports = collect("report", args.nodes - 1)
            if all(r[0].get(2, (0, 0))[0] >= args.burst for r in reports.values()) or time.time() > deadline:
                break
            time.sleep(0.5)

        print(f"gossip over a line of {args.nodes} processes (meshsub/1.1, validation at every hop)")
        print(f"  latency, {args.latency_msgs} x {args.latency_size} B at 100 msg/s:")
        for hop in range(1, args.nodes):
            lat = reports[hop][1].get(1, [])
            if lat:
                print(
                    f"    hop {hop}: p50 {1000 * statistics.median(lat):.1f} ms  p99 {1000 * percentile(lat, 0.99):.1f} ms"
                    f"  ({len(lat)}/{args.latency_msgs} received)"
                )
        print(f"  burst, {args.burst} x {args.size} B:")
        for hop in range(1, args.nodes):
            count, last = reports[hop][0].get(2, (0, burst_start))
            elapsed = last - burst_start
            print(f"    hop {hop}: {count}/{args.burst} in {elapsed:.2f} s = {count / elapsed:.0f} msg/s")
        print(f"  outbound RPCs dropped by py-libp2p: {sum(r[2] for r in reports.values())}")

        commands[1].put(("peer_id",))
        peer1 = collect("peer_id", 1)[1]
        rtts, total, (bulk_len, bulk_time) = ask(0, "requests", peer1, 500, 1024)
        print("request-response, neighbours:")
        print(
            f"  500 x 1 KiB sequential: {500 / total:.0f} req/s, rtt p50 {1000 * statistics.median(rtts):.2f} ms"
            f"  p99 {1000 * percentile(rtts, 0.99):.2f} ms"
        )
        print(f"  one {bulk_len // (1024 * 1024)} MiB response: {bulk_time * 1000:.0f} ms")

        for queue in commands:
            queue.put(("stop",))
        for proc in procs:
            proc.join(timeout=10)


if __name__ == "__main__":
    main()
