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
GENESIS_HASH = "cbbd560910b801f5fcdf4e93ec74046c9ca56b54d3bc13f473f2abf3b88279b6"
STATE_ROOTS = [
    "f577803bfa23eb9ef6d7c4300652edfd9cd1cff64cc93e1ceda11112bfc91aec",
    "38b176b4226ebb5f2df6b15198806264d9ccef807cf3f2b3f0179ac3d37af5ca",
    "b0823c856346a88d6d41d47a9020da2c154ad700f0816b1b60cc819a12de1a59",
    "57e56c03bc183642f7d26ac7508cde6e8132a07eab6c28648aa4f516148641a2",
    "1a0ce8fee4fcd4fdb9e6c44b43bdbbdb3b54b6bfab375cd1a48b2416a6540b75",
    "bc0377a2acc45c4011603a81eb36f0eac558558a542e8783fdf1d8a9c1629be3",
    "8d94eb4a5e0a245986841485cbc4a5ccf908b0b90804de2204204b2ba5b336d8",
    "d80164323039685797ead2a839b00452c9524bde35859766b214e866d3f89a42",
]
BEST_HASH = "b0d947865bbfae097ceddf2f7e230df197caa80e214fcbc3c456c2839425ab99"


def test_the_golden_chain_is_unchanged(tmp_path: Path) -> None:
    node = dev_node(tmp_path, rpc_port=None)
    try:
        assert node.genesis_hash.hex() == GENESIS_HASH
        driver = golden_chain.run(node)
        assert [root.hex() for root in driver.roots] == STATE_ROOTS
        assert node.chain.best_header().hash.hex() == BEST_HASH
    finally:
        node.close()
