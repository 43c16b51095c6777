"""A fixed sequence of blocks on the dev chain, replayed by `tests/test_golden_chain.py`.

The sequence touches every module the dev runtime has: transfers (success, failure, reaping),
vesting, sudo, burning, image registration (new, version, RAW takeover) with PoD rewards,
licence offers and purchases, tags and ownership transfer. Its genesis hash and the state root
of every block are recorded in the test: a refactoring of the runtime must leave them unchanged
(or bump `spec_version` and say why in `docs/protocol-notes.md`).

The three uploads' renditions are stored as PNG files in `tests/data/golden/` (the embedder is
float code, so its output may differ between machines; the recorded chain must not).
`python -m tests.golden_chain --write-renditions` recreates them.
"""

from __future__ import annotations

import hashlib
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from node.codec import u128_to_bytes
from node.core.node import Node
from node.imaging.verify import rendition_facts
from node.keys import Keypair, dev_keypair
from node.runtime import copyright
from node.types import Call
from tests.chainutil import IMG, signed, transfer_call

DATA = Path(__file__).parent / "data" / "golden"
SLOT_MS = 2000
GENESIS_TIME_MS = 1767225600000
FIRST_SLOT = GENESIS_TIME_MS // SLOT_MS + 1
MONTH_SLOTS = 30 * 24 * 3600 * 1000 // SLOT_MS


@dataclass(frozen=True)
class GoldenUpload:
    name: str
    uploader: str
    seed: int
    width: int
    height: int
    format_code: int

    @property
    def sha256(self) -> bytes:
        return hashlib.sha256(f"golden upload {self.name}".encode()).digest()

    @property
    def path(self) -> Path:
        return DATA / f"{self.name}.png"


UPLOADS = (
    GoldenUpload("original", "//Bob", 7, 1024, 768, 1),
    GoldenUpload("version", "//Dave", 7, 2048, 1536, 2),
    GoldenUpload("raw", "//Ferdie", 7, 2048, 1536, 64),
)


def write_renditions(genesis_hash: bytes) -> None:
    from node.imaging.rendition import verification_rendition
    from node.imaging.watermark import embed
    from tests.imaging.conftest import natural_image

    DATA.mkdir(parents=True, exist_ok=True)
    key = copyright.watermark_key_for(genesis_hash)
    for upload in UPLOADS:
        uploader = dev_keypair(upload.uploader).account_id
        payload = copyright.watermark_payload_for(genesis_hash, upload.sha256, uploader)
        rgb = natural_image(upload.seed, 384, 512)
        rendition = verification_rendition(embed(rgb, key, payload))
        Image.fromarray(rendition).save(upload.path, optimize=True)


def register_call(upload: GoldenUpload, genesis_hash: bytes) -> Call:
    rendition = np.asarray(Image.open(upload.path), dtype=np.uint8)
    uploader = dev_keypair(upload.uploader).account_id
    payload = copyright.watermark_payload_for(genesis_hash, upload.sha256, uploader)
    phash = rendition_facts(rendition.tobytes(), copyright.watermark_key_for(genesis_hash)).phash
    is_raw = copyright.is_raw_format(upload.format_code)
    published = [copyright.BLOB_PUBLISHED, hashlib.blake2b(upload.sha256, digest_size=32).digest(), 123_456]
    return Call("copyright", "register", (
        upload.sha256, upload.width, upload.height, upload.format_code, is_raw, phash, payload, [published],
        rendition.tobytes(), f"golden {upload.name}", "creator", "a registration of the golden chain",
    ))  # fmt: skip


def u128(value: int) -> bytes:
    return u128_to_bytes(value)


class Driver:
    """Submit signed calls to a dev node and author blocks at chosen slots."""

    def __init__(self, node: Node) -> None:
        self.node = node
        self.genesis = node.genesis_hash
        self.slot = FIRST_SLOT
        self.roots: list[bytes] = []

    def submit(self, who: Keypair, call: Call, tip: int = 0) -> None:
        nonce = self.node.next_nonce(who.account_id)
        self.node.submit_extrinsic(signed(who, call, self.genesis, nonce, tip=tip))

    def block(self, skip_slots: int = 0) -> None:
        self.slot += 1 + skip_slots
        built = self.node.author_block(self.slot)
        assert not built.invalid, "every golden extrinsic must be includable"
        self.roots.append(built.block.header.state_root)


def run(node: Node) -> Driver:
    """The golden sequence; returns the driver (with the state root of every block)."""
    d = Driver(node)
    alice, bob, charlie, dave, eve, ferdie = (
        dev_keypair(f"//{n}") for n in ("Alice", "Bob", "Charlie", "Dave", "Eve", "Ferdie")
    )
    newcomer = dev_keypair("//Newcomer")
    other = dev_keypair("//Other")
    # 1: transfers, a keep-alive transfer, an endowment
    d.submit(bob, transfer_call(charlie.account_id, 10 * IMG))
    d.submit(charlie, transfer_call(bob.account_id, IMG, keep_alive=True), tip=IMG // 100)
    d.submit(alice, transfer_call(newcomer.account_id, IMG // 50))
    d.block()
    # 2: failures (too much, below the existential deposit), reaping of the newcomer's dust
    d.submit(dave, transfer_call(bob.account_id, 5 * IMG))  # all of Dave's funds are vesting
    d.submit(bob, transfer_call(other.account_id, 10**12))
    d.submit(newcomer, transfer_call(other.account_id, IMG * 15 // 1000))
    d.block()
    # 3: an original registration (PoD reward), vesting before the cliff
    d.submit(bob, register_call(UPLOADS[0], d.genesis))
    d.submit(eve, Call("vesting", "vest", ()))
    d.block()
    # 4: offers and a tag
    d.submit(bob, Call("licensing", "offer_rf", (1, u128(5 * IMG), 0)))
    d.submit(bob, Call("licensing", "offer_rm", (1, u128(50 * IMG), "print", "EU", 1000, 86_400_000, True)))
    d.submit(charlie, Call("copyright", "tag", (1, "sunset")))
    d.block()
    # 5: purchases (the exclusive RM, then an RF refused while it runs), a version
    d.submit(charlie, Call("licensing", "purchase", (2,)))
    d.submit(alice, Call("licensing", "purchase", (1,)))
    d.submit(dave, register_call(UPLOADS[1], d.genesis))
    d.block()
    # 6: a RAW takeover clears the offers; sudo sets a balance
    d.submit(ferdie, register_call(UPLOADS[2], d.genesis))
    d.submit(alice, Call("sudo", "sudo", (Call("balances", "force_set_balance", (other.account_id, u128(5 * IMG))).to_wire(),)))
    d.block()
    # 7 months later: vesting releases half of Eve's funds; ownership moves; tags; burning
    d.submit(eve, Call("vesting", "vest", ()))
    d.submit(ferdie, Call("copyright", "transfer_ownership", (1, bob.account_id)))
    d.submit(bob, Call("balances", "burn", (u128(IMG),)))
    d.block(skip_slots=7 * MONTH_SLOTS)
    d.submit(bob, Call("copyright", "untag", (1, "sunset")))
    d.submit(eve, transfer_call(other.account_id, 1000 * IMG))
    d.submit(other, Call("system", "remark", (b"golden",)))
    d.block()
    return d


if __name__ == "__main__":
    if "--write-renditions" in sys.argv:
        from node.chain_spec import genesis_block, load_chain_spec

        write_renditions(genesis_block(load_chain_spec("dev")).hash)
        print("wrote", *(u.path for u in UPLOADS))
