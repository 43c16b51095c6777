"""The golden chain: the same blocks give the same genesis and the same state roots, release
after release (`tests/golden_chain.py` says what the sequence covers).

A change here means consensus changed: the new values go in together with a `spec_version`
bump and a note in `docs/protocol-notes.md` saying why.
"""

from __future__ import annotations

from pathlib import Path

from node.service import dev_node
from tests import golden_chain

# spec_version 2 (issue #10): a signed transaction names its birth block by hash and every one is
# mortal (replay after reaping), Aura seals sign the genesis hash (equivocation reports from
# other chains), tips come from transferable funds, a reaped account's nonce is remembered while its
# transactions can live (block 2 reaps one), registrations name their blobs (recorded by the new
# `storage` module), images flat at the pHash's scale are refused (new `copyright` param). The
# genesis state records the spec version that built it, so the genesis hash changed too; the block
# sequence and its events did not (besides `storage.BlobRecorded`).
GENESIS_HASH = "4e0dd6046a2dad56531542f0396947d3297f1420be7ce294cc134b26739e5323"
STATE_ROOTS = [
    "f13082dabfc476d46c2d145244733a2200eb3d11adae2ec2414537107e3312f2",
    "9cca64e00f8ae85337052edc0ede3d3a2fe152d55d16d0872e717ac41bc71446",
    "8184440dad4d1a37d4689cb2a80ea8afee16ee9c99a0a771c5de5beecfe281a8",
    "4862dba6ede2c60e81317e5714d860531deed293455809f7d6d1b0dd09539004",
    "91f89fc4da2d2c1d6d41f0973cfca6628075358453923d68454963d404090828",
    "a1bf8b3d7f29cd251a2639798a3b869187f7c05305a6f216e17ba203ffadccf2",
    "2363badf9400658625fe2c805ca11dd0aa1c5c74dd84e629e53c83c205466d52",
    "71ffab49297aeb7dea17c92b73e107ccd03a6b4723487b9bd818d3fdd240c673",
]
BEST_HASH = "9f770d0118ec7bd78ad557a423fafd3d131e8db52e518ed3394111763ed22947"


def test_the_golden_chain_is_unchanged(tmp_path: Path) -> None:
    node = dev_node(tmp_path, rpc_port=None)
    try:
        assert node.genesis_hash.hex() == GENESIS_HASH
        driver = golden_chain.run(node)
        assert [root.hex() for root in driver.roots] == STATE_ROOTS
        assert node.chain.best_header().hash.hex() == BEST_HASH
    finally:
        node.close()
