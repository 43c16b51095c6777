"""`node.client.RpcClient` (and `transfer`) round trips against the real node and server.

The client is synchronous, so each test body runs in a worker thread (`trio.to_thread`) while the
server keeps running in the test's trio loop; the thread reaches back into trio to author blocks.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Callable
from typing import Any, TypeVar

import httpx
import pytest
import trio

from node.client import NodeUnreachable, NotFound, RpcClient, RpcClientError, RpcError, TxStatus, transfer
from node.codec import blake2b_256
from node.core.node import Node
from node.rpc import errors
from node.runtime.system import KEY_NUMBER
from node.state.trie import verify_proof
from node.types import Extrinsic, extrinsic_hash
from tests.rpc.helpers import ALICE, BOB, CHARLIE, Server, author, transfer_extrinsic

T = TypeVar("T")
IMG = 10**18


async def in_thread(function: Callable[[], T]) -> T:
    return await trio.to_thread.run_sync(function)


def author_from_thread(node: Node) -> Any:
    """Author a block on the trio thread, from a worker thread."""
    return trio.from_thread.run_sync(author, node)


async def test_reads(server: Server) -> None:
    node = server.node
    block = author(node)

    def body() -> None:
        with RpcClient(server.url) as client:
            assert client.health() == {"peers": 0, "isSyncing": False, "shouldHavePeers": False}
            assert client.chain_name() == "imagechain development"
            assert client.genesis_hash() == node.genesis_hash
            assert client.header() == block.header
            assert client.header(node.genesis_hash).number == 0
            assert client.block() == block
            assert client.block(block.hash) == block
            assert client.block_hash(1) == block.hash
            assert client.block_hash(5) is None
            assert client.finalized_head() == block.hash
            assert client.storage(KEY_NUMBER) == (1).to_bytes(4, "big")
            assert client.storage(KEY_NUMBER, at=node.genesis_hash) == (0).to_bytes(4, "big")
            assert client.storage(b"nothing here") is None
            proof = client.read_proof([KEY_NUMBER], at=block.hash)
            assert proof.at == block.hash
            assert verify_proof(block.header.state_root, proof.proof, KEY_NUMBER) == (1).to_bytes(4, "big")
            assert client.account(BOB.account_id).free == 4_200_000_000 * IMG
            assert client.account(blake2b_256(b"nobody")).free == 0
            assert client.next_nonce(ALICE.account_id) == 0
            assert client.pending() == []
            with pytest.raises(NotFound):
                client.header(blake2b_256(b"unknown"))
            with pytest.raises(NotFound):
                client.block(blake2b_256(b"unknown"))

    await in_thread(body)


async def test_submit_and_errors(server: Server) -> None:
    node = server.node
    encoded = transfer_extrinsic(node)

    def body() -> None:
        with RpcClient(server.url) as client:
            assert client.submit(encoded) == extrinsic_hash(encoded)
            assert client.pending() == [encoded]
            assert client.next_nonce(ALICE.account_id) == 1
            with pytest.raises(RpcError) as rejected:
                client.submit(encoded)
            assert rejected.value.code == errors.POOL_ALREADY_IMPORTED
            assert rejected.value.data == "AlreadyImported"
            with pytest.raises(RpcError) as bad:
                client.submit(b"\x00")
            assert (bad.value.code, bad.value.data) == (errors.AUTHOR_BAD_FORMAT, "BadFormat")
            with pytest.raises(RpcError) as unknown:
                client.call("no_such_method")
            assert unknown.value.code == errors.METHOD_NOT_FOUND

    await in_thread(body)


async def test_transfer_waits_for_inclusion(server: Server, auto_author: None) -> None:
    node = server.node

    def body() -> None:
        with RpcClient(server.url) as client:
            before = client.account(CHARLIE.account_id).free
            outcome = transfer(client, ALICE, CHARLIE.account_id, 12 * IMG + IMG // 2, tip=3)
            ext_hash, block_hash = outcome.ext_hash, outcome.block_hash
            assert block_hash is not None and outcome.block_number == client.header(block_hash).number
            block = client.block(block_hash)
            assert ext_hash in [extrinsic_hash(x) for x in block.extrinsics]
            included = Extrinsic.decode(next(x for x in block.extrinsics if extrinsic_hash(x) == ext_hash))
            assert included.extra is not None
            assert included.extra.genesis_hash == node.genesis_hash
            assert included.extra.tip == 3 and included.extra.nonce == 0
            assert included.extra.mortality.period == 64
            assert client.account(CHARLIE.account_id).free == before + 12 * IMG + IMG // 2
            # the next transfer takes the next nonce by itself
            second = transfer(client, ALICE, CHARLIE.account_id, IMG, mortal_period=16).ext_hash
            assert client.account(ALICE.account_id).nonce == 2
            assert second != ext_hash

    await in_thread(body)


async def test_transfer_without_waiting(server: Server) -> None:
    def body() -> None:
        with RpcClient(server.url) as client:
            outcome = transfer(client, ALICE, BOB.account_id, IMG, wait=False)
            ext_hash = outcome.ext_hash
            assert outcome.block_hash is None
            assert [extrinsic_hash(x) for x in client.pending()] == [ext_hash]

    await in_thread(body)


async def test_watch_extrinsic_and_new_heads(server: Server) -> None:
    node = server.node
    encoded = transfer_extrinsic(node)

    def body() -> None:
        client = RpcClient(server.url)
        heads = client.subscribe_new_heads(timeout=5)
        assert next(heads).hash == node.genesis_hash
        statuses = client.watch_extrinsic(encoded, timeout=5)
        assert next(statuses) == TxStatus("ready")
        block = author_from_thread(node)
        assert next(heads) == block.header
        assert list(statuses) == [TxStatus("inBlock", block.hash), TxStatus("finalized", block.hash)]
        heads.close()
        client.close()

    await in_thread(body)


async def test_watch_reports_usurped(server: Server) -> None:
    node = server.node
    first = transfer_extrinsic(node, amount=1)
    replacement = transfer_extrinsic(node, amount=1, tip=10)

    def body() -> None:
        with RpcClient(server.url) as client:
            statuses = client.watch_extrinsic(first, timeout=5)
            assert next(statuses).kind == "ready"
            client.submit(replacement)
            usurped = next(statuses)
            assert usurped == TxStatus("usurped", extrinsic_hash(replacement))
            assert usurped.is_final
            assert list(statuses) == []

    await in_thread(body)


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def test_unreachable_node_names_the_url() -> None:
    url = f"http://127.0.0.1:{closed_port()}"

    def body() -> None:
        client = RpcClient(url, timeout=2)
        with pytest.raises(NodeUnreachable, match=f"127.0.0.1:{url.rsplit(':', 1)[1]}"):
            client.health()
        with pytest.raises(NodeUnreachable, match="ws://127.0.0.1"):
            next(client.subscribe_new_heads())
        client.close()

    await in_thread(body)


async def test_malformed_answers_are_client_errors(server: Server, monkeypatch: pytest.MonkeyPatch) -> None:
    """A node (or a proxy) that answers nonsense must not produce wrong data silently."""
    node = server.node
    genesis_header = {
        "parentHash": "0x" + "00" * 32,
        "number": "0x0",
        "stateRoot": "0x" + "11" * 32,
        "extrinsicsRoot": "0x" + "22" * 32,
        "digest": {"logs": []},
    }
    answers: dict[str, Any] = {"chain_getHeader": genesis_header, "chain_getBlockHash": "0x12"}

    def handler(request: httpx.Request) -> httpx.Response:
        call = json.loads(request.content)
        if call["method"] == "system_health":
            return httpx.Response(404, text="not here")
        return httpx.Response(
            200, json={"jsonrpc": "2.0", "id": call["id"], "result": answers[call["method"]]}
        )

    client = RpcClient(server.url)
    monkeypatch.setattr(client.transport, "_http", httpx.Client(transport=httpx.MockTransport(handler)))
    with pytest.raises(RpcClientError, match="does not hash to"):
        client.header(node.genesis_hash)  # the fake header hashes to something else
    with pytest.raises(RpcClientError, match="malformed"):
        client.block_hash(0)
    with pytest.raises(NodeUnreachable, match="HTTP 404"):
        client.health()
