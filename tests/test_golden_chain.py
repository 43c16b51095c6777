"""The golden chain: the same blocks give the same genesis and the same state roots, release
after release (`tests/golden_chain.py` says what the sequence covers).

A change here means consensus changed: the new values go in together with a `spec_version`
bump and a note in `docs/protocol-notes.md` saying why.
"""

from __future__ import annotations

from pathlib import Path

from node.service import dev_node
from tests import golden_chain

GENESIS_HASH = "1175bc19d084b8fa519117fd9921573083b0e2443162672a5e1ab39f1e30693c"
STATE_ROOTS = [
    "1580890d9fd88a4353f3f4b8c0f015b1c3847e36e1b1ed922fe3b3dc6f2520ba",
    "eb89b58750a1bbef142bea7f15350b6e98525981d9cd6ab183acc4a76ce025de",
    "5df5c1c50808614d989899c130cebc519cd27d9fc3187e3100ad867c2bc70706",
    "d2a7b09b0fc0c2cac37fa051d3b8411758e20103fa9093d6a92cbf5212c93b82",
    "d0d2e4435f1ee3fc5fd294466352caf977b90c89836949c289ce63447a3ab42a",
    "19e955ce4d28b11da49fa1174e2d876a893906502b82b15d834b487192363abc",
    "eb3c70edf9b96feffb8cbcf6111f16a6cb7b2e36b99c775c190be5af0d15fada",
    "d14f68bdcccd20359b4f44cd1477b144e5e6bae0f6bf5fb48761d69b37c1d554",
]
BEST_HASH = "1c41a2b81e0bde988a26efb99367fdc0d4e0bc4d7572bbbebb18fad822edbb57"


def test_the_golden_chain_is_unchanged(tmp_path: Path) -> None:
    node = dev_node(tmp_path, rpc_port=None)
    try:
        assert node.genesis_hash.hex() == GENESIS_HASH
        driver = golden_chain.run(node)
        assert [root.hex() for root in driver.roots] == STATE_ROOTS
        assert node.chain.best_header().hash.hex() == BEST_HASH
    finally:
        node.close()
