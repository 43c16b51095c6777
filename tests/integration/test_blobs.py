"""Issue #12's image-store acceptance with real node processes on 127.0.0.1 (slow).

A devnet of five processes (one validator, one uploader, three storage miners' nodes) on a
chain whose `storage.replication` is 2:

1. three accounts bond as storage miners; the uploader's node receives the published file by
   `PUT /blob` and the registration is made on chain;
2. the two storers the chain assigns fetch the file, checked segment by segment;
3. the uploader's node is stopped, and one assigned storer is killed (-9);
4. the third miner's node (the standby in rendezvous order) sees one live storer of two and
   takes a copy: the blob is back at R = 2 live storers;
5. the validator's node, which never held the file, serves it on `GET /img/1` byte for byte,
   fetched from the storers.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

import httpx
import pytest

from devnet.harness import Network, eventually
from devnet.layout import devnet_spec
from node.client import submit_call
from node.client.transactions import sign_call, submit_signed
from node.fsutil import write_atomic
from node.keys import dev_keypair, encode_address
from node.pod_mining.pipeline import prepare_image, register_call
from node.primitives.bls import BlsKey
from node.storage.client import upload_blob
from node.types import Call
from tests.runtime.copyright_util import scene

pytestmark = pytest.mark.slow

MINERS = [dev_keypair(uri) for uri in ("//Alice", "//Bob", "//Charlie")]
UPLOADER = dev_keypair("//Bob")


def blob_view(node, root: bytes) -> dict:
    return node.client.call("storage_blob", f"0x{root.hex()}")


def test_a_blob_outlives_its_uploader_and_a_storer_and_any_gateway_serves_it(tmp_path: Path) -> None:
    net = Network(tmp_path, validators=1, full_nodes=4, slot_ms=1000)
    spec = devnet_spec(1, 1000)
    spec["storage"] = {"replication": 2, "miner_bond": "10"}
    write_atomic(net.chain_path, json.dumps(spec).encode())
    validator, uploader, *storers = net.nodes
    for node, miner in zip(storers, MINERS, strict=True):
        node.extra = ["--blob-storer", encode_address(miner.account_id), "--blob-repair-interval", "2"]
    try:
        net.start_all()
        client = validator.client
        eventually(lambda: all(len(n.client.call("system_peers")) >= 1 for n in net.nodes), 60, "peers")

        # 1. Three storage miners; the uploader's node stores the file; the registration.
        for miner in MINERS:
            key = BlsKey(hashlib.blake2b(b"bls" + miner.account_id, digest_size=32).digest())
            submit_call(client, miner, Call("storage", "register_miner", (key.public,)))
        up = prepare_image(
            scene(41), genesis_hash=client.genesis_hash(), uploader=UPLOADER.account_id,
            sha256=hashlib.sha256(b"the photo").digest(), format_code=2, is_raw=False, title="photo",
            creator="c", description="d",
        )  # fmt: skip
        root = up.blobs[0].root
        assert upload_blob(f"http://127.0.0.1:{uploader.rpc_port}", up.published).root == root
        submit_signed(client, sign_call(client, UPLOADER, register_call(up)))
        registration = client.call("copyright_getRegistration", 1)
        assert registration["versions"][0]["blobs"] == [{"kind": 0, "root": f"0x{root.hex()}", "size": len(up.published)}]

        # 2. The two assigned storers fetch it.
        view = blob_view(validator, root)
        assert view["recorded"] and view["replication"] == 2 and len(view["assignedStorers"]) == 2
        assigned = [n for n, m in zip(storers, MINERS, strict=True) if encode_address(m.account_id) in view["assignedStorers"]]
        (standby,) = [n for n in storers if n not in assigned]
        eventually(lambda: all(blob_view(n, root)["held"] for n in assigned), 60, "the assigned storers' copies")
        assert all(blob_view(n, root)["keeps"] for n in assigned)

        # 3. The uploader's node stops; one assigned storer is killed.
        uploader.process.send_signal(2)  # SIGINT: a clean stop
        uploader.process.wait(20)
        net.kill(assigned[1])

        # 4. The standby takes a copy: back at two live storers.
        eventually(lambda: blob_view(standby, root)["held"], 90, "the standby's copy")
        survivor = assigned[0]
        eventually(lambda: blob_view(survivor, root)["liveStorers"] == 2, 60, "two live storers again")
        stats = standby.client.call("storage_stats")
        assert stats["repairs"] >= 1 and stats["fetched"] >= 1 and stats["duties"]["standby"] >= 1
        assert "takes a copy" in standby.log()

        # 5. A node that never held the file serves it, byte for byte.
        assert not blob_view(validator, root)["held"]
        started = time.monotonic()
        answer = httpx.get(f"http://127.0.0.1:{validator.rpc_port}/img/1", timeout=60)
        assert answer.status_code == 200, answer.text
        assert answer.content == up.published and answer.headers["content-type"] == "image/png"
        assert blob_view(validator, root)["held"] and time.monotonic() - started < 60
    finally:
        net.stop_all()
