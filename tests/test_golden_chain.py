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
# transactions can live (block 2 reaps one). The genesis state records the spec version
# that built it, so the genesis hash changed too; the block sequence and its events did not.
GENESIS_HASH = "dc69a0338cb7ec27463adc79742e97358c02d3521b186adfe7f82f513ceb5422"
STATE_ROOTS = [
    "854dd324c65e8dfacb45d727c9b5185da63ba3ec2bb0ffc5c516644147531925",
    "1fcf2457dc7aa4ea03750b1e192b2e165e1351357af6797d1ee421d61c1860eb",
    "e7823867615487708d3f5b9dfb03d3fe1f4d3fb6d198ce057ae15f55f814a584",
    "a4c48c901a41a47af32185a900f89252f4785f4c46e67523a98aa9e8c9550c28",
    "ba8ca978d709077f392439765c41e11c93fd5c20985b96f085bd1b939fb5b7d9",
    "f1b5c451cde35c5f1a8cb14be3d9d79a856eb6d69b1b5a13e9ed514e57227f08",
    "0c10356842e494d8fe00a0eef9f9175b5ca345711c0ae5128469c0dbdb86cdf6",
    "c0b2c4adf2ab4de65a501a275e270485ac4b4a0c0eb80a59a13aa7ca8742aa90",
]
BEST_HASH = "94514b1a0763a15a284df3d2aca34c1f8ca6759502db47306e0ddfc823f1e5bc"


def test_the_golden_chain_is_unchanged(tmp_path: Path) -> None:
    node = dev_node(tmp_path, rpc_port=None)
    try:
        assert node.genesis_hash.hex() == GENESIS_HASH
        driver = golden_chain.run(node)
        assert [root.hex() for root in driver.roots] == STATE_ROOTS
        assert node.chain.best_header().hash.hex() == BEST_HASH
    finally:
        node.close()
