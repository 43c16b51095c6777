"""State trie benchmark: 2,000-key batches into a 100k-key trie, and random reads.

    .venv/bin/python bench/bench_state.py [--keys 100000] [--batch 2000] [--rounds 40]
                                          [--pruning 16 | --archive] [--sync] [--writemap]

Each round is one block: `update` + `commit` (+ `prune` of the block that leaves the window, once
the window is full) in one LMDB write transaction, timed separately, and the transaction commit
(LMDB writing the dirty pages) timed on its own. Targets from the brief: update + commit well
under 50 ms; reads under 10 us with a warm cache.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import tempfile
import time

import lmdb

from node.state.store import StateStore
from node.state.trie import EMPTY_ROOT


def report(name: str, seconds: list[float], unit: float = 1e3, suffix: str = "ms") -> None:
    ordered = sorted(seconds)
    median = statistics.median(ordered) * unit
    p90 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.9))] * unit
    print(
        f"  {name:38s} median {median:7.2f} {suffix}   p90 {p90:7.2f} {suffix}   min {ordered[0] * unit:7.2f} {suffix}"
    )


def random_batch(
    rng: random.Random, keys: list[bytes], size: int, fresh: list[int]
) -> dict[bytes, bytes | None]:
    """Mostly rewrites of existing keys, with 5% new keys and 5% deletes (like a busy block)."""
    changes: dict[bytes, bytes | None] = {}
    while len(changes) < size:
        roll = rng.random()
        if roll < 0.05:
            changes[b"acct:%08d" % fresh[0]] = rng.randbytes(32)
            fresh[0] += 1
        elif roll < 0.10:
            changes[rng.choice(keys)] = None
        else:
            changes[rng.choice(keys)] = rng.randbytes(32)
    return changes


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--keys", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=2_000)
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--pruning", type=int, default=16, help="window in blocks (default 16)")
    parser.add_argument("--archive", action="store_true", help="no pruning")
    parser.add_argument("--sync", action="store_true", help="fsync every transaction (the node's setting)")
    parser.add_argument("--writemap", action="store_true", help="open LMDB with writemap=True")
    args = parser.parse_args()
    pruning = None if args.archive else args.pruning

    rng = random.Random(42)
    with tempfile.TemporaryDirectory() as tmp:
        env = lmdb.open(
            os.path.join(tmp, "db"),
            map_size=16 << 30,
            max_dbs=32,
            sync=args.sync,
            metasync=False,
            writemap=args.writemap,
        )
        store = StateStore(env, pruning=pruning)
        print(
            f"{args.keys:,} keys, batches of {args.batch:,}, "
            f"{'archive' if pruning is None else f'pruning window {pruning}'}, "
            f"sync={args.sync}, writemap={args.writemap}"
        )

        model = {b"acct:%08d" % i: rng.randbytes(rng.randint(16, 48)) for i in range(args.keys)}
        started = time.perf_counter()
        genesis = store.update(EMPTY_ROOT, model)
        built = time.perf_counter()
        with env.begin(write=True) as txn:
            store.commit(txn, b"genesis", genesis)
        print(
            f"genesis: {len(genesis.inserted):,} nodes, build {(built - started) * 1e3:.0f} ms, "
            f"commit {(time.perf_counter() - built) * 1e3:.0f} ms"
        )
        root = genesis.root
        blocks = [b"genesis"]
        keys = list(model)
        fresh = [args.keys]

        timings: dict[str, list[float]] = {"update": [], "commit": [], "both": [], "prune": [], "txn": []}
        inserted, dropped, deleted = [], [], []
        for number in range(args.rounds):
            changes = random_batch(rng, keys, args.batch, fresh)
            block = b"block-%d" % number
            blocks.append(block)
            t0 = time.perf_counter()
            with env.begin(write=True) as txn:
                update = store.update(root, changes, txn=txn)
                t1 = time.perf_counter()
                store.commit(txn, block, update)
                t2 = time.perf_counter()
                pruned = None
                if pruning is not None and len(blocks) > pruning:
                    pruned = store.prune(txn, blocks[-pruning])
                t3 = time.perf_counter()
            t4 = time.perf_counter()
            timings["update"].append(t1 - t0)
            timings["commit"].append(t2 - t1)
            timings["both"].append(t2 - t0)
            if pruned is not None:
                timings["prune"].append(t3 - t2)
                deleted.append(pruned)
            timings["txn"].append(t4 - t3)
            inserted.append(len(update.inserted))
            dropped.append(len(update.dropped))
            root = update.root
            for key, value in changes.items():
                if value is None:
                    model.pop(key, None)
                elif key not in model:
                    keys.append(key)
                    model[key] = value
                else:
                    model[key] = value
            keys = [key for key in keys if key in model] if number % 10 == 9 else keys

        print(
            f"per block ({args.rounds} blocks into ~{len(model):,} keys): {statistics.mean(inserted):,.0f} "
            f"nodes inserted, {statistics.mean(dropped):,.0f} dropped"
            + (f", {statistics.mean(deleted):,.0f} deleted by prune" if deleted else "")
        )
        report("update (new root, nodes encoded)", timings["update"])
        report("commit (write nodes, refs, journal)", timings["commit"])
        report("update + commit", timings["both"])
        if timings["prune"]:
            report("prune (block leaving the window)", timings["prune"])
        report("lmdb txn commit", timings["txn"])

        sample = rng.sample([key for key in keys if key in model], 20_000)
        cold_store = StateStore(env, pruning=pruning)
        started = time.perf_counter()
        for key in sample:
            cold_store.get(root, key)
        cold = (time.perf_counter() - started) / len(sample)
        for key in model:  # warm every node of the newest version
            store.get(root, key)
        started = time.perf_counter()
        for key in sample:
            store.get(root, key)
        warm = (time.perf_counter() - started) / len(sample)
        print(
            f"reads of random keys: warm cache {warm * 1e6:.2f} us/key; "
            f"fresh store (empty node cache, OS page cache warm) {cold * 1e6:.2f} us/key"
        )
        print(f"stored nodes: {store.node_count():,}")
        env.close()


if __name__ == "__main__":
    main()
