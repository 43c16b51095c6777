"""State trie benchmark: batch updates into a 100k-key trie, and warm random reads.

    .venv/bin/python bench/bench_state.py [--keys 100000] [--batch 2000] [--rounds 30]

Targets (issue brief): update + commit of a 2,000-key batch well under 50 ms; warm reads under 10 us.
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


def ms(seconds: float) -> str:
    return f"{seconds * 1e3:7.2f} ms"


def run(keys: int, batch: int, rounds: int, pruning: int | None, sync: bool) -> None:
    rng = random.Random(42)
    with tempfile.TemporaryDirectory() as tmp:
        env = lmdb.open(os.path.join(tmp, "db"), map_size=8 << 30, max_dbs=32, sync=sync)
        store = StateStore(env, pruning=pruning)
        mode = "archive" if pruning is None else f"pruning={pruning}"
        print(f"\n== {keys:,} keys, batches of {batch:,}, {mode}, sync={sync}")

        model = {b"acct:%08d" % i: rng.randbytes(rng.randint(16, 48)) for i in range(keys)}
        started = time.perf_counter()
        update = store.update(EMPTY_ROOT, model)
        built = time.perf_counter()
        with env.begin(write=True) as txn:
            store.commit(txn, b"genesis", update)
        print(f"genesis: build {ms(built - started)}, commit {ms(time.perf_counter() - built)}, "
              f"{len(update.inserted):,} nodes")
        root = update.root
        blocks = [b"genesis"]

        next_key = keys
        live = list(model)
        update_times, commit_times, txn_times, totals, sizes = [], [], [], [], []
        for number in range(rounds):
            # Mostly rewrites of existing keys, plus some inserts and deletes (5% each).
            changes: dict[bytes, bytes | None] = {}
            while len(changes) < batch:
                roll = rng.random()
                if roll < 0.05:
                    changes[b"acct:%08d" % next_key] = rng.randbytes(32)
                    next_key += 1
                elif roll < 0.10:
                    changes[rng.choice(live)] = None
                else:
                    changes[rng.choice(live)] = rng.randbytes(32)
            block = b"block-%d" % number
            t0 = time.perf_counter()
            with env.begin(write=True) as txn:
                update = store.update(root, changes, txn=txn)
                t1 = time.perf_counter()
                store.commit(txn, block, update)
                blocks.append(block)
                if pruning is not None and len(blocks) > pruning:
                    store.prune(txn, blocks[-pruning])
                t2 = time.perf_counter()
            t3 = time.perf_counter()
            update_times.append(t1 - t0)
            commit_times.append(t2 - t1)
            txn_times.append(t3 - t2)
            totals.append(t2 - t0)
            sizes.append((len(update.inserted), len(update.dropped)))
            root = update.root
            for key, value in changes.items():
                if value is None:
                    model.pop(key, None)
                else:
                    model[key] = value
            live = list(model) if number % 10 == 9 else live
            live = [k for k in live if k in model] if number % 10 == 9 else live

        def summary(name: str, values: list[float]) -> None:
            values = sorted(values)
            print(f"  {name:34s} median {ms(statistics.median(values))}   p90 {ms(values[int(len(values) * 0.9)])}")

        print(f"batch of {batch:,} changes into {len(model):,} keys ({rounds} rounds; "
              f"~{statistics.mean(s[0] for s in sizes):,.0f} nodes inserted, "
              f"~{statistics.mean(s[1] for s in sizes):,.0f} dropped per batch):")
        summary("update (compute new root)", update_times)
        summary("commit (+prune) in the txn", commit_times)
        summary("update + commit (target < 50 ms)", totals)
        summary("lmdb txn.commit()", txn_times)

        # Reads: every node is in the decoded cache after one full pass.
        sample = rng.sample(list(model), 20_000)
        for key in model:
            store.get(root, key)
        started = time.perf_counter()
        for key in sample:
            store.get(root, key)
        warm = (time.perf_counter() - started) / len(sample)
        cold_store = StateStore(env, pruning=pruning)
        started = time.perf_counter()
        for key in sample:
            cold_store.get(root, key)
        cold = (time.perf_counter() - started) / len(sample)
        print(f"reads: warm cache {warm * 1e6:5.2f} us/key (target < 10 us); "
              f"fresh store, LMDB page cache warm {cold * 1e6:5.2f} us/key")
        print(f"stored nodes: {store.node_count():,}")
        env.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--keys", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=2_000)
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--sync", action="store_true", help="fsync on txn commit (measured separately)")
    args = parser.parse_args()
    run(args.keys, args.batch, args.rounds, pruning=256, sync=args.sync)
    run(args.keys, args.batch, args.rounds, pruning=None, sync=args.sync)


if __name__ == "__main__":
    main()
