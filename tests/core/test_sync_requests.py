"""Hostile sync requests and responses (issue #10, finding 8).

Every integer a peer sends on `/imagechain/sync/1` is bounded before it is used: a block number
past u32 once raised `OverflowError` in the server (an "internal error" answer, nobody blamed).
Now the server answers "bad request" (the REJECTED status), logs the peer by id and lowers its
score; the requesting side checks that a range answer is the range it asked for.

The server is a real node's `NodeNetwork` on a real libp2p host on 127.0.0.1; the attacker is a
second real host that speaks the protocol.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import trio

from node.codec import DecodeError, encode
from node.core import sync
from node.core.network_service import NodeNetwork
from node.core.node import Node
from node.p2p.config import NetworkConfig
from node.p2p.network import Network, RequestRejectedByPeer
from node.service import dev_node
from tests.p2p.helpers import RecordingHandler, wait_until
from tests.rpc.helpers import author

U32_MAX = 2**32 - 1
U64_MAX = 2**64 - 1

EVIL_REQUESTS: list[list[Any]] = [
    [sync.BLOCKS, 2**32, 5],  # the audit's request: a block number one past u32
    [sync.BLOCKS, U64_MAX, 1],
    [sync.BLOCKS, U32_MAX, U64_MAX],  # a count no node would ask for
    [sync.BLOCKS, 1, 2**32],
    [sync.STATUS, 1],  # extra fields are not "the same request"
    [sync.CATCH_UP, 2**40],
    [sync.BLOCK_BY_HASH, b"\x00" * 32, 7],
]


def config(tmp_path: Path, name: str, genesis_hash: bytes) -> NetworkConfig:
    """A host on a free port of 127.0.0.1 for the node's chain, no DHT."""
    return NetworkConfig(base_path=tmp_path / name, genesis_hash=genesis_hash,
                         listen_addrs=["/ip4/127.0.0.1/tcp/0"], enable_dht=False)  # fmt: skip


@pytest.fixture
def node(tmp_path: Path) -> Iterator[Node]:
    """A dev chain with three blocks, served over sync."""
    dev = dev_node(tmp_path / "node", rpc_port=None)
    for _ in range(3):
        author(dev)
    yield dev
    dev.close()


# ---------------------------------------------------------------------------------------------
# The server's decoder
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("request_", EVIL_REQUESTS, ids=repr)
def test_out_of_range_requests_are_bad_requests(node: Node, request_: list[Any]) -> None:
    with pytest.raises(sync.BadRequest, match="bad request"):
        sync.serve_request(node.chain, encode(request_), lambda: b"")


def test_honest_requests_still_served(node: Node) -> None:
    blocks = sync.decode_blocks_response(sync.serve_request(node.chain, sync.blocks_request(1, 10), lambda: b""), 1, 10)
    assert [block.header.number for block, _ in blocks] == [1, 2, 3]
    # A range that starts at the last block number there can ever be ends there, without overflow.
    assert sync.serve_request(node.chain, sync.blocks_request(U32_MAX, 512), lambda: b"") == encode([])
    # A large count is clamped to the server's own limit, as before.
    assert len(sync.decode_blocks_response(
        sync.serve_request(node.chain, encode([sync.BLOCKS, 0, U32_MAX]), lambda: b""), 0, U32_MAX)) == 4


# ---------------------------------------------------------------------------------------------
# The requester's decoders: answers from a hostile server
# ---------------------------------------------------------------------------------------------


def test_status_numbers_are_block_numbers() -> None:
    genesis = b"\x01" * 32
    assert sync.PeerStatus.from_wire([genesis, U32_MAX, genesis, 5, genesis]).best_number == U32_MAX
    with pytest.raises(DecodeError):
        sync.PeerStatus.from_wire([genesis, 2**32, genesis, 0, genesis])
    with pytest.raises(DecodeError, match="finalized"):
        sync.PeerStatus.from_wire([genesis, 5, genesis, 6, genesis])  # finalized above best


def test_blocks_response_must_be_the_range_asked_for(node: Node) -> None:
    chain = node.chain
    entries = [[chain.block(chain.hash_at(n)).to_wire(), None] for n in (1, 2, 3)]  # type: ignore[union-attr]
    assert len(sync.decode_blocks_response(encode(entries), 1, 3)) == 3
    with pytest.raises(DecodeError, match="more blocks"):
        sync.decode_blocks_response(encode(entries), 1, 2)
    with pytest.raises(DecodeError, match="starts at #1"):
        sync.decode_blocks_response(encode(entries), 2, 3)
    with pytest.raises(DecodeError, match="not consecutive"):
        sync.decode_blocks_response(encode([entries[0], entries[2]]), 1, 3)
    with pytest.raises(DecodeError):
        sync.decode_blocks_response(encode(entries * 200), 1, U32_MAX)  # over MAX_BLOCKS_PER_REQUEST


# ---------------------------------------------------------------------------------------------
# Over libp2p
# ---------------------------------------------------------------------------------------------


def same_chain(node: Node) -> Callable[[str, bytes, str], Awaitable[bytes]]:
    """A peer's sync answers as an honest peer on the node's chain gives them (its status)."""

    async def respond(protocol: str, data: bytes, peer_id: str) -> bytes:
        return encode(sync.local_status(node.chain).to_wire())

    return respond



async def test_overflowing_request_is_answered_bad_request_and_penalised(
    node: Node, tmp_path: Path, nursery: trio.Nursery, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    server = NodeNetwork(config(tmp_path, "server", node.genesis_hash), node.chain,
                         blocks=node, transactions=node)  # fmt: skip
    await nursery.start(server.run)
    evil = Network(config(tmp_path, "evil", node.genesis_hash), RecordingHandler(respond=same_chain(node)))
    evil.register_protocol(sync.PROTOCOL)
    await nursery.start(evil.run)
    await evil.connect(server.network.listen_addrs[0])
    await wait_until(lambda: evil.peer_id in server.peer_status, what="the server to learn our status")
    assert server.network.score(evil.peer_id) == 0

    with pytest.raises(RequestRejectedByPeer, match="bad request"):
        await evil.request(server.network.peer_id, sync.PROTOCOL, encode([sync.BLOCKS, 2**32, 5]))
    assert server.network.score(evil.peer_id) < 0
    assert any(evil.peer_id in r.getMessage() and "bad request" in r.getMessage() for r in caplog.records)
    assert server.network.stats()["requests"]["failed"] == 0, "no 'internal error': the server did not crash"

    # The server is unharmed and still serves honest requests from other peers.
    honest = Network(config(tmp_path, "honest", node.genesis_hash), RecordingHandler(respond=same_chain(node)))
    honest.register_protocol(sync.PROTOCOL)
    await nursery.start(honest.run)
    await honest.connect(server.network.listen_addrs[0])
    reply = await honest.request(server.network.peer_id, sync.PROTOCOL, sync.blocks_request(1, 8))
    assert [b.header.number for b, _ in sync.decode_blocks_response(reply, 1, 8)] == [1, 2, 3]

    # Enough of them get the attacker banned (the p2p layer's threshold).
    for request_ in EVIL_REQUESTS:
        if server.network.is_banned(evil.peer_id):
            break
        try:
            await evil.request(server.network.peer_id, sync.PROTOCOL, encode(request_))
        except Exception:  # noqa: BLE001 - rejected, or cut off once banned: both are the point
            pass
    assert server.network.is_banned(evil.peer_id)
