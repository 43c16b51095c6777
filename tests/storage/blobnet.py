"""Helpers for the image-store network tests: real libp2p hosts on 127.0.0.1 with the Kademlia DHT,
each with a `BlobService`, in the test's own trio run; a real dev chain whose state they all read.

A peer speaks only `/imagechain/blob/1` (its handler hands requests to `BlobService.serve`, as
`node.core.network_service.NodeNetwork` does in a node); `serve` can be replaced to make an evil
peer that answers with forged bytes. Each peer runs under its own cancel scope, so a test can
stop one (an uploader going offline, a storer killed) while the others go on.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import trio

from node.core.node import Node
from node.keys import Keypair
from node.p2p.network import Network, RequestRejected, Verdict
from node.pod_mining.pipeline import PreparedUpload, prepare_image, sign_registration
from node.primitives.bls import BlsKey
from node.primitives.merkle import blob_root
from node.runtime import copyright
from node.runtime.runtime import SPEC_VERSION
from node.storage.protocol import PROTOCOL, BadRequest
from node.storage.service import BlobConfig, BlobService
from node.types import Call, Mortality, SignedExtra, sign_extrinsic
from tests.p2p.helpers import make_config, wait_until
from tests.rpc.helpers import author

__all__ = ["BlobPeer", "bond_miner", "random_blob", "register_with_blobs", "start_peer", "wait_for_value", "wait_until"]


class BlobHandler:
    """A `NetworkHandler` that serves the blob protocol with `serve` and nothing else."""

    def __init__(self, serve: Callable[[bytes, str], bytes]) -> None:
        self.serve = serve

    async def on_gossip(self, topic: str, data: bytes, peer_id: str) -> Verdict:
        return Verdict.IGNORE

    async def on_request(self, protocol: str, data: bytes, peer_id: str) -> bytes:
        try:
            return self.serve(data, peer_id)
        except BadRequest as exc:
            raise RequestRejected(str(exc)) from exc

    def on_peer_connected(self, peer_id: str) -> None:
        pass

    def on_peer_disconnected(self, peer_id: str) -> None:
        pass


@dataclass
class BlobPeer:
    name: str
    network: Network
    blobs: BlobService
    scope: trio.CancelScope
    stopped: trio.Event = field(default_factory=trio.Event)

    @property
    def addr(self) -> str:
        return self.network.listen_addrs[0]

    async def stop(self) -> None:
        """Stop its network and service (the process went away; its store stays on disk)."""
        self.scope.cancel()
        await self.stopped.wait()


async def start_peer(
    nursery: trio.Nursery,
    tmp_path: Path,
    name: str,
    best_state: Callable[[], object],
    *,
    bootnodes: list[str] | None = None,
    serve: Callable[[BlobService], Callable[[bytes, str], bytes]] | None = None,
    **config: object,
) -> BlobPeer:
    settings: dict[str, object] = {"quota_bytes": 64 << 20, "scan_interval_s": 0.2, "repair_interval_s": 1.5}
    settings.update(config)
    blobs = BlobService(tmp_path / name / "blobs", BlobConfig(**settings), best_state)  # type: ignore[arg-type]
    handler = BlobHandler(serve(blobs) if serve is not None else blobs.serve)
    network = Network(
        make_config(tmp_path, name, enable_dht=True, bootnodes=bootnodes or [], ban_seconds=60.0), handler
    )
    network.register_protocol(PROTOCOL)
    peer = BlobPeer(name, network, blobs, trio.CancelScope())

    async def run(task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        try:
            with peer.scope:
                async with trio.open_nursery() as inner:
                    await inner.start(network.run)
                    blobs.attach(network)
                    await inner.start(blobs.run)
                    task_status.started()
        finally:
            blobs.close()
            peer.stopped.set()

    await nursery.start(run)
    return peer


async def wait_for_value(
    read: Callable[[], Awaitable[object]], expected: object, timeout: float = 20.0, what: str = "value"
) -> None:
    """Poll an async read every 200 ms until it equals `expected`; fail after `timeout` seconds."""
    value: object = None
    with trio.move_on_after(timeout):
        while (value := await read()) != expected:
            await trio.sleep(0.2)
        return
    _dump_tasks()
    raise AssertionError(f"timed out after {timeout} s waiting for {what} == {expected!r}; last {value!r}")


def _dump_tasks() -> None:
    """On a timeout, print where the storer loops and DHT lookups are waiting: a lookup held by a
    peer that stopped answering is otherwise invisible in the failure."""
    import sys

    def walk(task: trio.lowlevel.Task, depth: int = 0, show: bool = False) -> None:
        frames = [f"{f.f_code.co_filename.split('/')[-1]}:{lineno} {f.f_code.co_name}" for f, lineno in task.iter_await_frames()]
        text = " <- ".join(frames)
        show = show or "peer_routing" in text or "_storer_loop" in text
        if show:
            print("TASK", depth, task.name, "|", text, file=sys.stderr)
        for nursery in task.child_nurseries:
            for child in nursery.child_tasks:
                walk(child, depth + 1, show)

    walk(trio.lowlevel.current_root_task())


def random_blob(size: int, seed: int) -> bytes:
    return np.random.default_rng(seed).integers(0, 256, size, dtype=np.uint8).tobytes()


# -- the chain: storage miners and registrations -----------------------------------------------


def _submit(node: Node, signer: Keypair, call: Call) -> None:
    extra = SignedExtra(
        node.genesis_hash, SPEC_VERSION, node.next_nonce(signer.account_id), 0, Mortality.from_genesis(node.genesis_hash)
    )
    node.submit_extrinsic(sign_extrinsic(signer, call, extra).encode())


def bond_miner(node: Node, who: Keypair) -> None:
    """Pool `storage.register_miner` for `who` with a BLS key derived from its account."""
    key = BlsKey(hashlib.blake2b(b"test bls" + who.account_id, digest_size=32).digest())
    _submit(node, who, Call("storage", "register_miner", (key.public,)))


def register_with_blobs(
    node: Node, uploader: Keypair, rgb: np.ndarray, tag: str, extra_blobs: tuple[copyright.BlobRef, ...] = ()
) -> PreparedUpload:
    """Watermark `rgb`, pool its registration (published file + `extra_blobs`) and author it."""
    up = prepare_image(
        rgb, genesis_hash=node.genesis_hash, uploader=uploader.account_id, sha256=hashlib.sha256(tag.encode()).digest(),
        format_code=2, is_raw=False, title=tag, creator="c", description="d",
    )  # fmt: skip
    assert up.blobs[0].root == blob_root(up.published)
    up = dataclasses.replace(up, blobs=(*up.blobs, *extra_blobs))
    extra = SignedExtra(
        node.genesis_hash, SPEC_VERSION, node.next_nonce(uploader.account_id), 0, Mortality.from_genesis(node.genesis_hash)
    )
    node.submit_extrinsic(sign_registration(uploader, up, extra))
    author(node)
    return up


def urandom(size: int) -> bytes:
    return os.urandom(size)
