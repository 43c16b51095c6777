"""Block import throughput: blocks of 1,000 signed transfers into a state of 100,000 accounts.

An authoring node builds the blocks from its pool; a second node with the same genesis imports
them through the full pipeline (seal, parallel signature checks, execution, state root, one
LMDB transaction per block). Prints transfers/s and ms per block, state root included.

    .venv/bin/python bench/bench_import.py [--accounts 100000] [--blocks 10] [--per-block 1000]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
from importlib import resources
from pathlib import Path

from node.chain_spec import parse_chain_spec
from node.core.node import NodeConfig
from node.core.txpool import PoolLimits
from node.keys import Keypair, Scheme, dev_keypair, encode_address
from node.runtime.executive import decode_extrinsic_cached
from node.runtime.runtime import SPEC_VERSION
from node.service import open_node
from node.types import Call, Mortality, SignedExtra, sign_extrinsic


def make_spec(accounts: int, senders: list[Keypair]) -> dict:
    raw = json.loads(resources.files("node.specs").joinpath("dev.json").read_text())
    rng = random.Random(7)
    allocations = [{"name": f"sender {i}", "account": encode_address(k.account_id), "amount": "1000"} for i, k in enumerate(senders)]
    for i in range(accounts - len(senders)):
        allocations.append({"name": f"a{i}", "account": encode_address(rng.randbytes(32)), "amount": "1"})
    raw["allocations"] = raw["allocations"][:1] + allocations
    raw["id"] = "bench"
    return raw


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--accounts", type=int, default=100_000)
    parser.add_argument("--blocks", type=int, default=10)
    parser.add_argument("--per-block", type=int, default=1000)
    args = parser.parse_args()

    print(f"generating {args.per_block} sender keys and a genesis of {args.accounts:,} accounts...", flush=True)
    senders = [Keypair.from_seed(Scheme.ED25519, i.to_bytes(32, "big")) for i in range(1, args.per_block + 1)]
    spec = parse_chain_spec(make_spec(args.accounts, senders))
    base = Path(tempfile.mkdtemp(prefix="bench-import-"))
    limits = PoolLimits(max_transactions=args.per_block * 2, max_per_sender=64)
    started = time.perf_counter()
    author = open_node(NodeConfig(base / "a", spec, authority=dev_keypair("//Alice"), rpc_port=None, pool_limits=limits))
    importer = open_node(NodeConfig(base / "b", spec, rpc_port=None))
    print(f"genesis built twice in {time.perf_counter() - started:.1f} s", flush=True)

    rng = random.Random(11)
    receivers = [rng.randbytes(32) for _ in range(1000)]
    genesis = author.genesis_hash
    slot = int(time.time() * 1000) // spec.params.slot_ms - 10 * args.blocks
    blocks = []
    build_times = []
    for number in range(args.blocks):
        for sender in senders:
            extra = SignedExtra(genesis, SPEC_VERSION, number, 0, Mortality.from_genesis(genesis))
            call = Call("balances", "transfer", (rng.choice(receivers), (10**17).to_bytes(16, "big")))
            author.submit_extrinsic(sign_extrinsic(sender, call, extra).encode())
        slot += 1
        built = author.author_block(slot)
        blocks.append(built.block)
        build_times.append(built.seconds)
        print(f"  built block #{built.block.header.number} with {len(built.block.extrinsics) - 1} transfers "
              f"in {built.seconds * 1000:.0f} ms", flush=True)

    # The importer must not profit from the author's decode cache (same process here).
    decode_extrinsic_cached.cache_clear()
    import_times = []
    for block in blocks:
        t0 = time.perf_counter()
        importer.import_block(block)
        import_times.append(time.perf_counter() - t0)
        print(f"  imported block #{block.header.number} in {import_times[-1] * 1000:.0f} ms", flush=True)
    assert importer.chain.best_header().hash == author.chain.best_header().hash

    transfers = sum(len(b.extrinsics) - 1 for b in blocks)
    total = sum(import_times)
    print()
    print(f"accounts in state        {args.accounts:,}")
    print(f"blocks x transfers       {len(blocks)} x {args.per_block}")
    print(f"import ms/block          median {statistics.median(import_times) * 1000:.1f}, "
          f"max {max(import_times) * 1000:.1f}")
    print(f"import transfers/s       {transfers / total:,.0f}")
    print(f"build ms/block (author)  median {statistics.median(build_times) * 1000:.1f}")
    author.close()
    importer.close()


if __name__ == "__main__":
    sys.exit(main())
