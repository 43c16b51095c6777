"""kill -9 under transfer load: the node restarts on a consistent database.

After every kill the node must restart on the same base path, its best block must be one it
had fully imported, and its state must be exactly what replaying the stored blocks from
genesis gives (an independent in-process node imports the chain over RPC and compares roots).
"""

from __future__ import annotations

import random
import threading
import time

import pytest

from node.keys import dev_keypair
from node.runtime import balances
from node.runtime.runtime import SPEC_VERSION
from node.service import dev_node
from node.types import Mortality, SignedExtra, sign_extrinsic
from tests.chainutil import IMG, transfer_call
from tests.integration.nodeproc import NodeProcess

pytestmark = pytest.mark.slow

DEV_NAMES = ["Alice", "Bob", "Charlie", "Dave", "Eve", "Ferdie"]


def load(client, stop: threading.Event, rng: random.Random) -> None:
    """Send transfers from Bob and Charlie as fast as the node takes them until stopped."""
    genesis = client.genesis_hash()
    senders = [dev_keypair("//Bob"), dev_keypair("//Charlie")]
    receivers = [dev_keypair(f"//Load{i}").account_id for i in range(5)]
    while not stop.is_set():
        sender = rng.choice(senders)
        try:
            nonce = client.next_nonce(sender.account_id)
            extra = SignedExtra(genesis, SPEC_VERSION, nonce, 0, Mortality.from_genesis(genesis))
            call = transfer_call(rng.choice(receivers), rng.randrange(IMG, 3 * IMG))
            client.submit(sign_extrinsic(sender, call, extra).encode())
        except Exception:  # noqa: BLE001 - the node is being killed under us
            time.sleep(0.05)


def test_kill9_under_load_restarts_consistently(tmp_path):
    rng = random.Random(99)
    base = tmp_path / "node"
    proc = NodeProcess(base, "--log", "warn", "--pruning", "archive")
    seen_best = 0
    for _round in range(4):
        client = proc.start()
        best = client.header()
        assert best.number >= seen_best, "a restarted node lost blocks it had reported"
        stop = threading.Event()
        worker = threading.Thread(target=load, args=(client, stop, rng), daemon=True)
        worker.start()
        time.sleep(rng.uniform(3.0, 7.0))
        seen_best = client.header().number
        proc.kill9()
        stop.set()
        worker.join(10)

    client = proc.start()
    try:
        best = client.header()
        assert best.number >= seen_best > 0
        # Replay the stored chain into a fresh node: every block imports, the roots agree.
        replay = dev_node(tmp_path / "replay", rpc_port=None, authority=None)
        try:
            transfers = 0
            for number in range(1, best.number + 1):
                block = client.block(client.block_hash(number))
                transfers += len(block.extrinsics) - 1
                replay.import_block(block)
            assert replay.chain.best_header() == best
            assert transfers > 0, "the load never reached a block: the test tested nothing"
        finally:
            replay.close()
        issuance = int.from_bytes(client.storage(balances.KEY_TOTAL_ISSUANCE), "big")
        everyone = [dev_keypair(f"//{n}").account_id for n in DEV_NAMES]
        everyone += [dev_keypair(f"//Load{i}").account_id for i in range(5)]
        assert sum(client.account(a).total for a in everyone) == issuance
    finally:
        assert proc.stop() == 0, proc.log()
