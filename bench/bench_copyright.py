"""Copyright registration throughput: block import with claim verification, and the RPC path.

1. In process (`Node`): an authoring node builds one block of 50 `copyright.register`
   extrinsics (distinct photo-like images, each with its 64 KiB verification rendition); fresh
   nodes import it through the full pipeline. Import runs twice per repetition: with the claim
   memo cold (every rendition's pHash and watermark recomputed, as on a node that never saw the
   transactions) and warm (the verification skipped by the memo), so the difference is what
   verification adds. The per-rendition verification (`node.imaging.verify.rendition_facts`,
   what the node's `VerificationCache` computes on a miss) is also timed on its own. Goal (issue 5): verification adds <= 2 ms per registration.
2. Through the RPC: a `--dev` node process; the same registrations are submitted with
   `author_submitExtrinsic` (pool admission verifies each claim) and followed until all are in
   blocks. Prints submissions/s and end-to-end registrations/s (bounded by the 2 s slot).

The PoD client's own cost (embedding at full resolution) is printed too, for scale; it runs on
the uploader's machine, not on the chain.

    .venv/bin/python bench/bench_copyright.py [--count 50] [--repeat 5] [--size 512x384]
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from node.chain_spec import load_chain_spec
from node.client import RpcClient
from node.core import verification
from node.core.node import NodeConfig
from node.core.verification import VerificationCache
from node.keys import dev_keypair
from node.pod_mining.pipeline import PreparedUpload, prepare_image, sign_registration
from node.runtime import copyright
from node.runtime.executive import decode_extrinsic_cached
from node.runtime.runtime import SPEC_VERSION
from node.service import dev_node, open_node
from node.types import Block, Mortality, SignedExtra

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from tests.imaging.conftest import natural_image  # noqa: E402 - after the path is set
from tests.integration.nodeproc import free_port  # noqa: E402

BOB = dev_keypair("//Bob")
ALICE = dev_keypair("//Alice")


def make_uploads(count: int, width: int, height: int, genesis: bytes) -> tuple[list[PreparedUpload], float]:
    """`count` distinct marked photos by Bob; returns them and the pipeline's seconds per upload."""
    uploads = []
    seconds = []
    for seed in range(count):
        rgb = natural_image(1000 + seed, height, width)
        started = time.perf_counter()
        uploads.append(
            prepare_image(
                rgb,
                genesis_hash=genesis,
                uploader=BOB.account_id,
                sha256=hashlib.sha256(f"bench {seed}".encode()).digest(),
                format_code=1,
                is_raw=False,
                title=f"bench photo {seed}",
            )  # fmt: skip
        )
        seconds.append(time.perf_counter() - started)
    return uploads, statistics.median(seconds)


def signed(uploads: list[PreparedUpload], genesis: bytes, first_nonce: int) -> list[bytes]:
    return [
        sign_registration(BOB, up, SignedExtra(genesis, SPEC_VERSION, first_nonce + i, 0, Mortality.from_genesis(genesis)))
        for i, up in enumerate(uploads)
    ]


def clear_memos() -> None:
    """Forget what this process has decoded, as a node that never saw the block (each node has its
    own claim memo, `Node.verification`)."""
    decode_extrinsic_cached.cache_clear()


class VerificationClock:
    """Times every uncached claim verification (a `VerificationCache` miss: the pHash and
    watermark recomputed from a rendition) while installed: exactly what verification adds."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self.calls = 0
        self._original = verification.rendition_facts

    def _timed(self, rendition: bytes, key: bytes) -> object:
        started = time.perf_counter()
        try:
            return self._original(rendition, key)
        finally:
            self.seconds += time.perf_counter() - started
            self.calls += 1

    def __enter__(self) -> VerificationClock:
        verification.rendition_facts = self._timed  # type: ignore[assignment]
        return self

    def __exit__(self, *exc_info: object) -> None:
        verification.rendition_facts = self._original  # type: ignore[assignment]


def import_once(
    spec: object, base: Path, block: Block, warm_memo: VerificationCache | None
) -> tuple[float, float, int]:
    """(import seconds, seconds spent verifying claims, claims verified) on a fresh node; with
    `warm_memo`, the node's claim memo is one that has seen the block's registrations."""
    importer = open_node(NodeConfig(base, spec, rpc_port=None))  # type: ignore[arg-type]
    try:
        clear_memos()
        if warm_memo is not None:
            importer.verification = warm_memo
        with VerificationClock() as clock:
            started = time.perf_counter()
            importer.import_block(block)
            seconds = time.perf_counter() - started
        return seconds, clock.seconds, clock.calls
    finally:
        importer.close()
        shutil.rmtree(base, ignore_errors=True)


def bench_import(uploads: list[PreparedUpload], repeat: int, base: Path) -> None:
    spec = load_chain_spec("dev")
    author = open_node(NodeConfig(base / "author", spec, authority=ALICE, rpc_port=None))
    genesis = author.genesis_hash
    for encoded in signed(uploads, genesis, 0):
        author.submit_extrinsic(encoded)
    slot = int(time.time() * 1000) // spec.params.slot_ms - 10
    built = author.author_block(slot)
    block = built.block
    included = len(block.extrinsics) - 1
    warm_memo = author.verification  # it verified every claim at pool entry
    author.close()
    print(f"built block #{block.header.number}: {included} registrations, {len(block.encode()) / 1e6:.2f} MB, "
          f"in {built.seconds * 1000:.0f} ms (author)", flush=True)  # fmt: skip
    if included != len(uploads):
        raise SystemExit(f"only {included} of {len(uploads)} registrations fit the block")

    cold, verifying, warm = [], [], []
    for r in range(repeat):
        seconds, verify_s, calls = import_once(spec, base / f"cold{r}", block, None)
        assert calls == included, f"{calls} claims verified, expected {included}"
        cold.append(seconds)
        verifying.append(verify_s)
        warm.append(import_once(spec, base / f"warm{r}", block, warm_memo)[0])
        print(f"  import #{r + 1}: cold {seconds * 1000:.1f} ms (verifying {verify_s * 1000:.1f} ms), "
              f"claim memo warm {warm[-1] * 1000:.1f} ms", flush=True)  # fmt: skip

    n = included
    per_claim = statistics.median(verifying) / n
    print()
    print(f"import, block of {n} registrations (verification included)  "
          f"median {statistics.median(cold) * 1000:.1f} ms, min {min(cold) * 1000:.1f} ms "
          f"({statistics.median(cold) * 1000 / n:.2f} ms/registration)")  # fmt: skip
    print(f"  of which claim verification (pHash + watermark from the rendition)  "
          f"median {statistics.median(verifying) * 1000:.1f} ms = {per_claim * 1000:.2f} ms/registration "
          f"(goal <= 2 ms)")  # fmt: skip
    print(f"import, same block, claim memo warm (verification skipped)   "
          f"median {statistics.median(warm) * 1000:.1f} ms, min {min(warm) * 1000:.1f} ms")  # fmt: skip


def bench_rpc(uploads: list[PreparedUpload], base: Path) -> None:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "node", "--dev", "--base-path", str(base / "rpc-node"), "--rpc-port", str(port),
         "--log", "warn"],
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        client = RpcClient(url, timeout=60)
        for _ in range(600):
            try:
                client.health()
                break
            except Exception:  # noqa: BLE001 - still starting
                time.sleep(0.1)
        genesis = client.genesis_hash()
        extrinsics = signed(uploads, genesis, client.next_nonce(BOB.account_id))
        started = time.perf_counter()
        for encoded in extrinsics:
            client.submit(encoded)
        submitted = time.perf_counter() - started
        while copyright.registration_count(lambda key: client.storage(key)) < len(extrinsics):
            if time.perf_counter() - started > 300:
                raise SystemExit("registrations were not all included within 300 s")
            time.sleep(0.05)
        included = time.perf_counter() - started
        n = len(extrinsics)
        print()
        print(f"RPC author_submitExtrinsic, {n} registrations (pool verifies each claim)   "
              f"{n / submitted:,.1f} registrations/s ({submitted * 1000 / n:.1f} ms each, 131 KB of hex)")  # fmt: skip
        print(f"RPC end to end: submitted -> all in blocks (2 s slots)                   "
              f"{n / included:,.1f} registrations/s ({included:.1f} s for {n})")  # fmt: skip
        client.close()
    finally:
        process.terminate()
        process.wait(15)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--count", type=int, default=50, help="registrations per block / RPC run")
    parser.add_argument("--repeat", type=int, default=5, help="import repetitions")
    parser.add_argument("--size", default="512x384", help="WxH of the generated photos")
    parser.add_argument("--no-rpc", action="store_true", help="skip the node-process part")
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.lower().split("x"))

    base = Path(tempfile.mkdtemp(prefix="bench-copyright-"))
    try:
        genesis = dev_node(base / "probe", rpc_port=None)
        genesis_hash = genesis.genesis_hash
        genesis.close()
        print(f"marking {args.count} photos of {width}x{height} with the PoD pipeline...", flush=True)
        uploads, pipeline_s = make_uploads(args.count, width, height, genesis_hash)
        print(f"PoD client pipeline (embed + rendition + local check), {width}x{height}: "
              f"median {pipeline_s * 1000:.0f} ms per upload", flush=True)  # fmt: skip
        bench_import(uploads, args.repeat, base)
        if not args.no_rpc:
            bench_rpc(uploads, base)
    finally:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
