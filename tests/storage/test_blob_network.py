"""The image store over libp2p: real hosts on 127.0.0.1 with the Kademlia DHT, in one trio run.

* a forged segment costs its sender its score (banned) and the blob comes from another provider;
* malformed requests are rejected, and the requester penalised, without harming the server;
* the storers a real chain assigns fetch a registered blob; it is still served after the uploader
  stops; after one storer is killed the next miner in rendezvous order takes a copy, back to R.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import pytest
import trio

from node.core.node import Node
from node.keys import dev_keypair
from node.p2p.api import RequestFailed, RequestRejectedByPeer
from node.primitives.merkle import SEGMENT_BYTES, blob_root
from node.runtime import storage
from node.service import dev_node
from node.storage.protocol import (
    PROTOCOL,
    SEGMENTS,
    decode_info,
    decode_request,
    decode_segment,
    decode_segments,
    encode_segments,
    info_request,
    segment_request,
    segments_request,
)
from node.storage.service import BlobService
from tests.chainutil import IMG
from tests.rpc.helpers import author, transfer_extrinsic
from tests.runtime.copyright_util import scene
from tests.storage.blobnet import (
    bond_miner,
    random_blob,
    register_with_blobs,
    start_peer,
    wait_for_value,
    wait_until,
)

BOB = dev_keypair("//Bob")
MINERS = [dev_keypair(f"//Miner{i}") for i in range(4)]


@pytest.fixture
def chain(tmp_path: Path) -> Iterator[Node]:
    node = dev_node(tmp_path / "chain", rpc_port=None)
    yield node
    node.close()


def forging(segment_index: int):
    """An evil provider: honest INFO, but segment `segment_index` with one byte flipped."""

    def make(blobs: BlobService):
        def serve(data: bytes, peer_id: str) -> bytes:
            answer = blobs.serve(data, peer_id)
            kind, _, first, count = decode_request(data)
            if kind != SEGMENTS or not first <= segment_index < first + count:
                return answer
            segments = decode_segments(answer, first, count) or []
            return encode_segments([
                (i, bytes([s.data[0] ^ 0xFF]) + s.data[1:] if i == segment_index else s.data, s.proof)
                for i, s in segments
            ])  # fmt: skip

        return serve

    return make


async def upload(blobs: BlobService, data: bytes) -> bytes:
    root, _ = await blobs.upload(io.BytesIO(data), len(data))
    return root


async def test_a_forged_segment_bans_its_sender_and_another_provider_serves_the_blob(
    nursery: trio.Nursery, tmp_path: Path, chain: Node
) -> None:
    state = chain.chain.best_state
    honest = await start_peer(nursery, tmp_path, "honest", state)
    evil = await start_peer(nursery, tmp_path, "evil", state, bootnodes=[honest.addr], serve=forging(1))
    fetcher = await start_peer(nursery, tmp_path, "fetcher", state, bootnodes=[honest.addr, evil.addr])
    await wait_until(lambda: len(fetcher.network.peers()) == 2 and len(evil.network.peers()) == 2, what="a full mesh")
    data = random_blob(3 * SEGMENT_BYTES + 1234, seed=1)
    root = await upload(evil.blobs, data)  # the evil peer announces first: it is asked first
    await wait_until(lambda: fetcher.blobs.stats.fetches == 0 and _knows(fetcher, root, evil), what="evil's record")
    assert await upload(honest.blobs, data) == root == blob_root(data)
    await wait_until(lambda: _knows(fetcher, root, honest), what="honest's record")

    assert await fetcher.blobs.fetch(root, timeout=30)
    assert fetcher.blobs.store.read(root) == data
    assert fetcher.blobs.stats.forged_answers == 1
    assert fetcher.network.is_banned(evil.network.peer_id)  # one forged answer: banned at once
    assert honest.blobs.stats.segments_served >= 1
    assert not fetcher.network.is_banned(honest.network.peer_id)
    # The fetcher now provides it too, and serves what it checked.
    await wait_until(lambda: fetcher.blobs.stats.provided >= 1, what="the fetcher's provider record")


def _knows(peer, root: bytes, provider) -> bool:
    from node.storage.service import provider_key

    dht = peer.network._discovery._dht  # the peer's own record store: what a lookup starts from
    records = dht.provider_store.get_providers(provider_key(root)) if dht is not None else []
    return any(r.peer_id.to_base58() == provider.network.peer_id for r in records)


async def test_malformed_requests_are_rejected_and_cost_the_requester(
    nursery: trio.Nursery, tmp_path: Path, chain: Node
) -> None:
    state = chain.chain.best_state
    server = await start_peer(nursery, tmp_path, "server", state)
    client = await start_peer(nursery, tmp_path, "client", state, bootnodes=[server.addr])
    await wait_until(lambda: server.network.is_connected(client.network.peer_id), what="connection")
    data = random_blob(SEGMENT_BYTES + 10, seed=2)
    root = await upload(server.blobs, data)
    peer = server.network.peer_id
    info = decode_info(await client.network.request(peer, PROTOCOL, info_request(root)))
    assert info is not None and info.size == len(data) and not info.keeps
    assert decode_info(await client.network.request(peer, PROTOCOL, info_request(b"\x01" * 32))) is None
    for bad, reason in [
        (b"\xc1", "malformed"),
        (b"\x92\x00\xa3abc", "blob root"),
        (segment_request(root, 9), "segment 9 of a blob of 2"),
        (segments_request(root, 0, 9), "1 to 8 per request"),
    ]:
        with pytest.raises(RequestRejectedByPeer, match=reason):
            await client.network.request(peer, PROTOCOL, bad)
    assert server.network.score(client.network.peer_id) < 0
    # The server is unharmed and still serves.
    segment = decode_segment(await client.network.request(peer, PROTOCOL, segment_request(root, 1)))
    assert segment is not None and segment.data == data[SEGMENT_BYTES:]
    both = decode_segments(await client.network.request(peer, PROTOCOL, segments_request(root, 0, 8)), 0, 8)
    assert both is not None and [i for i, _ in both] == [0, 1] and b"".join(s.data for _, s in both) == data
    # A fifth bad request (20 points each) reaches the ban threshold: the server drops the peer
    # (its answer may or may not make it out before the connection closes).
    with pytest.raises(RequestFailed):
        await client.network.request(peer, PROTOCOL, b"\x93\x07\xc4\x20" + b"\x00" * 32 + b"\x00")
    assert server.network.is_banned(client.network.peer_id)


async def test_storers_keep_a_registered_blob_after_the_uploader_leaves_and_repair_to_r(
    nursery: trio.Nursery, tmp_path: Path, chain: Node
) -> None:
    # The chain: four bonded storage miners (replication 3: three assigned, one standby).
    author(chain)
    for miner in MINERS:
        chain.submit_extrinsic(transfer_extrinsic(chain, BOB, miner.account_id, 5_000 * IMG))
    author(chain)
    for miner in MINERS:
        bond_miner(chain, miner)
    author(chain)
    state = chain.chain.best_state
    assert sorted(storage.miner_set(state())) == sorted(m.account_id for m in MINERS)

    uploader = await start_peer(nursery, tmp_path, "uploader", state)
    storers = [
        await start_peer(nursery, tmp_path, f"storer{i}", state, bootnodes=[uploader.addr], storer=m.account_id)
        for i, m in enumerate(MINERS)
    ]
    await wait_until(lambda: all(len(s.network.peers()) == 4 for s in storers), what="a full mesh")

    # The uploader stores the published file, then registers it on chain.
    up = register_with_blobs(chain, BOB, scene(7), "a registered photo")
    root = up.blobs[0].root
    assert await upload(uploader.blobs, up.published) == root
    assigned = storage.assigned_storers(state(), root)
    keepers = [s for s, m in zip(storers, MINERS, strict=True) if m.account_id in assigned]
    (standby,) = [s for s in storers if s not in keepers]
    await wait_until(lambda: all(s.blobs.store.has(root) for s in keepers), 30, "the assigned storers' copies")
    assert not standby.blobs.store.has(root)

    # The uploader goes offline; a node that never held the blob still gets it.
    await uploader.stop()
    gateway = await start_peer(nursery, tmp_path, "gateway", state, bootnodes=[keepers[0].addr])
    assert await gateway.blobs.fetch(root, timeout=30)
    assert gateway.blobs.store.read(root) == up.published
    # The gateway's cached copy is no storer's: three live storers.
    await wait_for_value(lambda: keepers[0].blobs.live_storers(root), 3, what="live storers")

    # One storer dies: the standby takes a copy over, and the blob is back at R live storers.
    await keepers[1].stop()
    async def standby_has() -> bool:
        return standby.blobs.store.has(root)

    await wait_for_value(standby_has, True, 60, "the standby's copy")
    assert standby.blobs.stats.repairs == 1 and standby.blobs.keeps(root)
    await wait_for_value(lambda: keepers[0].blobs.live_storers(root), 3, 40, "live storers after the repair")


async def test_a_fetch_cut_short_resumes_at_start_for_a_referenced_blob(
    nursery: trio.Nursery, tmp_path: Path, chain: Node
) -> None:
    """As after a kill -9 in the middle of a fetch: the store holds the blob's segment roots and
    some segments (each write was one transaction); at start the service fetches the rest."""
    from node.storage.store import BlobStore, segment_roots_of

    author(chain)
    up = register_with_blobs(chain, BOB, scene(8), "cut short")
    data, root = up.published, up.blobs[0].root
    assert len(data) > SEGMENT_BYTES
    left = BlobStore(tmp_path / "resumer" / "blobs", 64 << 20)
    left.expect(root, len(data), segment_roots_of(data))
    left.put_segment(root, 0, data[:SEGMENT_BYTES])
    left.close()

    state = chain.chain.best_state
    provider = await start_peer(nursery, tmp_path, "provider", state)
    assert await upload(provider.blobs, data) == root
    resumer = await start_peer(nursery, tmp_path, "resumer", state, bootnodes=[provider.addr])
    await wait_until(lambda: resumer.blobs.store.has(root), 30, "the resumed fetch")
    assert resumer.blobs.store.read(root) == data
    assert resumer.blobs.stats.bytes_fetched == len(data) - SEGMENT_BYTES  # only what was missing
