"""1,000 transfers among 10 accounts through the RPC client against a real node process."""

from __future__ import annotations

import random
import time

import pytest

from node.codec import decode
from node.keys import dev_keypair
from node.runtime import balances, system
from node.runtime.runtime import SPEC_VERSION
from node.types import Mortality, SignedExtra, sign_extrinsic
from tests.chainutil import IMG, transfer_call
from tests.integration.nodeproc import NodeProcess

pytestmark = pytest.mark.slow

DEV_NAMES = ["Alice", "Bob", "Charlie", "Dave", "Eve", "Ferdie"]


def wait_until(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}")


def test_thousand_transfers_among_ten_accounts(tmp_path):
    proc = NodeProcess(tmp_path / "node", "--log", "warn")
    client = proc.start()
    try:
        genesis = client.genesis_hash()
        params = system.ChainParams.from_wire(decode(client.storage(system.KEY_PARAMS)))
        issuance_before = int.from_bytes(client.storage(balances.KEY_TOTAL_ISSUANCE), "big")
        accounts = [dev_keypair(f"//Test{i}") for i in range(10)]
        alice = dev_keypair("//Alice")
        expected = {k.account_id: 0 for k in accounts}
        nonces = {k.account_id: 0 for k in accounts}

        def submit(signer, call, nonce) -> int:
            extra = SignedExtra(genesis, SPEC_VERSION, nonce, 0, Mortality.from_genesis(genesis))
            encoded = sign_extrinsic(signer, call, extra).encode()
            client.submit(encoded)
            weight = 100_000
            return system.fee_for(params, len(encoded), weight)

        # Alice funds the ten accounts.
        alice_nonce = client.next_nonce(alice.account_id)
        for i, keypair in enumerate(accounts):
            submit(alice, transfer_call(keypair.account_id, 1000 * IMG), alice_nonce + i)
            expected[keypair.account_id] += 1000 * IMG
        wait_until(lambda: client.account(accounts[-1].account_id).free == 1000 * IMG, 60, "funding")

        rng = random.Random(2024)
        for _ in range(1000):
            sender, receiver = rng.sample(accounts, 2)
            amount = rng.randrange(1, 5 * IMG)
            fee = submit(sender, transfer_call(receiver.account_id, amount), nonces[sender.account_id])
            nonces[sender.account_id] += 1
            expected[sender.account_id] -= amount + fee
            expected[receiver.account_id] += amount
        wait_until(lambda: not client.pending(), 120, "the pool to drain")
        wait_until(lambda: all(client.account(k.account_id).nonce == nonces[k.account_id] for k in accounts),
                   60, "all nonces")

        for keypair in accounts:
            account = client.account(keypair.account_id)
            assert account.free == expected[keypair.account_id]
            assert account.nonce == nonces[keypair.account_id]
        issuance_after = int.from_bytes(client.storage(balances.KEY_TOTAL_ISSUANCE), "big")
        assert issuance_after == issuance_before
        everyone = [dev_keypair(f"//{n}").account_id for n in DEV_NAMES] + [k.account_id for k in accounts]
        assert sum(client.account(a).total for a in everyone) == issuance_after
    finally:
        assert proc.stop() == 0, proc.log()
