"""Issue 4 acceptance with real node processes on 127.0.0.1 (slow).

* 4 validators finalize continuously with a small lag; a transaction sent to one node is
  included exactly once;
* kill 1 of 4: authoring and finality go on; kill 2 of 4: authoring goes on, finality stops;
  restart one: finality resumes and covers the gap;
* a full node started later syncs from genesis (verifying justifications), follows the head
  and reaches the validators' state root;
* a 2|2 partition never finalizes conflicting blocks, and the halves converge after healing;
* an equivocating validator is reported on chain and disabled, with no safety violation;
* an authority-set change (sudo) hands finality to the new set, and a late node syncs through it.
"""

from __future__ import annotations

import statistics
import time

import pytest

from devnet.harness import Network, eventually
from node.client import submit_call
from node.consensus.finality import Justification, verify_justification
from node.keys import dev_keypair
from node.runtime import aura, offences
from node.runtime.runtime import SPEC_VERSION
from node.types import Call, Mortality, SignedExtra, extrinsic_hash, sign_extrinsic
from tests.chainutil import IMG, transfer_call

pytestmark = pytest.mark.slow


def assert_no_conflicting_finality(net: Network) -> int:
    """Every pair of running nodes agrees on every block up to the lower finalized height."""
    alive = [n for n in net.nodes if n.alive]
    finalized = {n.index: net.heads(n)[1] for n in alive}
    common = min(finalized.values())
    chains = {n.index: net.finalized_hashes(n, common) for n in alive}
    reference = chains[alive[0].index]
    for index, chain in chains.items():
        assert chain == reference, f"node{index} finalized a different chain"
    return common


def test_validators_finalize_survive_faults_and_a_late_node_syncs(tmp_path):
    net = Network(tmp_path, validators=4, full_nodes=1, slot_ms=1000)
    try:
        net.start_all(count=4)
        v = net.nodes
        eventually(lambda: all(net.heads(n)[1] >= 5 for n in v[:4]), 60, "finality on all validators")

        # Steady state: finality trails authoring by at most 3 blocks.
        lags = []
        for _ in range(12):
            best, finalized = net.heads(v[0])
            lags.append(best - finalized)
            time.sleep(0.5)
        assert statistics.median(lags) <= 3 and max(lags) <= 4, lags

        # A transaction sent to one node is included exactly once.
        bob = dev_keypair("//Bob")
        client = v[2].client
        best = client.header()
        extra = SignedExtra(client.genesis_hash(), SPEC_VERSION, client.next_nonce(bob.account_id), 0,
                            Mortality(best.number, 64, best.hash))
        encoded = sign_extrinsic(bob, transfer_call(dev_keypair("//Eve").account_id, IMG), extra).encode()
        start = client.header().number
        ext_hash = client.submit(encoded)
        eventually(lambda: net.heads(v[0])[1] >= start + 4, 30, "blocks after the transfer")
        end = net.heads(v[0])[1]
        found = [n for n in range(start, end + 1)
                 if any(extrinsic_hash(x) == ext_hash for x in v[0].client.block(v[0].client.block_hash(n)).extrinsics)]
        assert len(found) == 1, found

        # Kill 1 of 4: authoring and finality go on.
        net.kill(v[3])
        _, finalized = net.heads(v[0])
        eventually(lambda: net.heads(v[0])[1] >= finalized + 4, 30, "finality with 3 of 4")

        # Kill 2 of 4: authoring goes on, finality stops.
        net.kill(v[2])
        time.sleep(3)
        best, stalled = net.heads(v[0])
        time.sleep(5)
        best_after, finalized_after = net.heads(v[0])
        assert best_after > best, "authoring stopped with 2 of 4"
        assert finalized_after <= stalled + 1, "finality went on without a supermajority"

        # Restart one: finality resumes and covers the gap.
        net.start(v[2])
        target = net.heads(v[0])[0]
        eventually(lambda: net.heads(v[0])[1] >= target, 60, "finality covering the gap")

        # A full node started now syncs from genesis and reaches the validators' state.
        net.start(v[4])
        eventually(lambda: net.heads(v[4])[1] >= target, 90, "the late full node catching up")
        finalized_hash = v[4].client.finalized_head()
        assert v[4].client.header(finalized_hash).state_root == v[0].client.header(finalized_hash).state_root
        # Its finalized head carries a justification that checks out against the voter set.
        justifications = v[4].client.call("chain_getBlock", "0x" + finalized_hash.hex())["justifications"]
        assert justifications is not None
        justification = Justification.decode(bytes.fromhex(justifications[0][1][2:]))
        assert justification.target_hash == finalized_hash
        voters = [dev_keypair(f"//{name}").public.data for name in ("Alice", "Bob", "Charlie", "Dave")]
        verify_justification(justification, voters, 0, v[4].client.genesis_hash())
        best_full = net.heads(v[4])[0]
        eventually(lambda: net.heads(v[4])[0] >= best_full + 3, 30, "the full node following the head")
        assert_no_conflicting_finality(net)
    finally:
        net.stop_all()


def test_partition_never_finalizes_conflicts_and_heals(tmp_path):
    net = Network(tmp_path, validators=4, slot_ms=1000)
    try:
        net.start_all()
        v = net.nodes
        eventually(lambda: all(net.heads(n)[1] >= 3 for n in v), 60, "finality before the partition")
        ids = [net.peer_id(n) for n in v]
        for a, b in [(0, 2), (0, 3), (1, 2), (1, 3)]:
            v[a].client.call("network_blockPeer", ids[b])
            v[b].client.call("network_blockPeer", ids[a])
        time.sleep(8)
        # Each half authored its own branch; with 2 of 4 neither can finalize past the split.
        assert_no_conflicting_finality(net)
        split_best = [net.heads(n)[0] for n in v]
        for a, b in [(0, 2), (0, 3), (1, 2), (1, 3)]:
            v[a].client.call("network_unblockPeer", ids[b])
            v[b].client.call("network_unblockPeer", ids[a])
        # Heal: everyone converges on one chain and finality moves on past the split.
        height = max(split_best)
        eventually(lambda: all(net.heads(n)[1] >= height for n in v), 90, "finality after healing")
        common = assert_no_conflicting_finality(net)
        assert common >= height
    finally:
        net.stop_all()


def test_equivocating_validator_is_reported_and_disabled(tmp_path):
    net = Network(tmp_path, validators=4, slot_ms=1000)
    net.nodes[3].extra = ["--test-equivocate"]
    try:
        net.start_all()
        v = net.nodes
        dave = dev_keypair("//Dave").public.data

        def disabled_everywhere() -> bool:
            for node in v[:3]:
                raw = node.client.storage(offences.DISABLED.key)
                if raw is None or dave not in offences.read_disabled(lambda key, raw=raw: raw):
                    return False
            return True

        eventually(disabled_everywhere, 60, "Dave disabled on every honest node")
        _, finalized = net.heads(v[0])
        eventually(lambda: net.heads(v[0])[1] >= finalized + 3, 40, "finality going on without Dave")
        assert_no_conflicting_finality(net)
    finally:
        net.stop_all()


def test_authority_set_change_hands_finality_to_the_new_set(tmp_path):
    net = Network(tmp_path, validators=4, full_nodes=1, slot_ms=1000)
    try:
        net.start_all(count=4)
        v = net.nodes
        eventually(lambda: all(net.heads(n)[1] >= 3 for n in v[:4]), 60, "finality before the change")
        # Root (sudo: Alice) drops Dave from the set, effective 3 blocks later.
        new_set = [dev_keypair(f"//{name}").public.data for name in ("Alice", "Bob", "Charlie")]
        change = Call("aura", "schedule_change", (new_set, 3))
        submit_call(v[0].client, dev_keypair("//Alice"), Call("sudo", "sudo", (change.to_wire(),)))
        eventually(lambda: aura.read_set_id(lambda key: v[0].client.storage(key)) == 1, 30, "the change enacted")
        enacted_at = v[0].client.header().number
        # The new set finalizes past the change; Dave is no longer needed, so killing him changes nothing.
        eventually(lambda: net.heads(v[0])[1] >= enacted_at, 40, "finality reaching the change block")
        net.kill(v[3])
        target = net.heads(v[0])[0] + 3
        eventually(lambda: all(net.heads(n)[1] >= target for n in v[:3]), 40, "finality by the new set of 3")
        # A node syncing from genesis verifies justifications of both sets and catches up.
        net.start(v[4])
        eventually(lambda: net.heads(v[4])[1] >= target, 60, "a late node finalizing through the change")
        assert_no_conflicting_finality(net)
    finally:
        net.stop_all()
