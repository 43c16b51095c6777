"""JSON-RPC over WebSocket: calls, subscriptions, limits, and cleanup when a client goes away."""

from __future__ import annotations

import base64
import json
import os
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest
import trio
from trio_websocket import ConnectionClosed, HandshakeError, WebSocketConnection, open_websocket_url

from node.rpc import errors
from node.rpc.encoding import header_from_json, to_hex
from node.rpc.server import RpcLimits
from tests.rpc.helpers import Server, StartServer, author, transfer_extrinsic

TIMEOUT_S = 5


class Client:
    """A tiny async JSON-RPC client over trio-websocket, for tests.

    Notifications that arrive while a call waits for its answer are kept, in order, for the
    next `receive`/`notification`.
    """

    def __init__(self, websocket: WebSocketConnection) -> None:
        self.websocket = websocket
        self.next_id = 1
        self.stashed: list[Any] = []

    async def send(self, obj: Any) -> None:
        await self.websocket.send_message(json.dumps(obj))

    async def _read(self) -> Any:
        with trio.fail_after(TIMEOUT_S):
            return json.loads(await self.websocket.get_message())

    async def receive(self) -> Any:
        return self.stashed.pop(0) if self.stashed else await self._read()

    async def call(self, method: str, params: Any = None) -> dict[str, Any]:
        request_id = self.next_id
        self.next_id += 1
        request: dict[str, Any] = {"jsonrpc": "2.0", "id": request_id, "method": method}
        if params is not None:
            request["params"] = params
        await self.send(request)
        while True:
            message = await self._read()
            if isinstance(message, dict) and "id" in message:
                assert message["id"] == request_id, f"expected the answer to {request_id}, got {message}"
                return message
            self.stashed.append(message)

    async def result(self, method: str, params: Any = None) -> Any:
        answer = await self.call(method, params)
        assert "error" not in answer, answer
        return answer["result"]

    async def notification(self, method: str, subscription: str) -> Any:
        message = await self.receive()
        assert message["jsonrpc"] == "2.0" and "id" not in message, message
        assert message["method"] == method, message
        assert message["params"]["subscription"] == subscription
        return message["params"]["result"]

    async def assert_quiet(self) -> None:
        """Nothing is pending: no notification arrives before the answer to a fresh call."""
        await self.result("system_name")
        assert self.stashed == []


@asynccontextmanager
async def connect(server: Server) -> AsyncIterator[Client]:
    async with open_websocket_url(server.ws_url, max_message_size=16 * 1024 * 1024) as websocket:
        yield Client(websocket)


async def test_calls_batches_and_notifications(server: Server) -> None:
    async with connect(server) as client:
        assert await client.result("system_name") == "imagechain-node"
        await client.send(
            [{"jsonrpc": "2.0", "id": "a", "method": "system_chain"}, {"jsonrpc": "2.0", "method": "x"}]
        )
        batch = await client.receive()
        assert batch == [{"jsonrpc": "2.0", "result": "imagechain development", "id": "a"}]
        await client.send({"jsonrpc": "2.0", "method": "system_name"})  # notification: no answer
        await client.assert_quiet()
        await client.websocket.send_message("{not json")
        assert (await client.receive())["error"]["code"] == errors.PARSE_ERROR
        await client.websocket.send_message(
            b'{"jsonrpc":"2.0","id":5,"method":"system_chainType"}'
        )  # binary frame
        assert (await client.receive())["result"] == "Development"
        assert (await client.call("nope"))["error"]["code"] == errors.METHOD_NOT_FOUND


async def test_new_heads_subscription(server: Server) -> None:
    node = server.node
    async with connect(server) as client:
        subscription = await client.result("chain_subscribeNewHeads")
        assert isinstance(subscription, str) and subscription
        first = await client.notification("chain_newHead", subscription)
        assert header_from_json(first).hash == node.genesis_hash  # starts with the current best

        block = author(node)
        second = await client.notification("chain_newHead", subscription)
        assert header_from_json(second) == block.header

        assert await client.result("chain_unsubscribeFinalizedHeads", [subscription]) is False  # wrong kind
        assert await client.result("chain_unsubscribeNewHeads", [subscription]) is True
        assert await client.result("chain_unsubscribeNewHeads", [subscription]) is False
        author(node)
        await client.assert_quiet()


async def test_finalized_heads_subscription(server: Server) -> None:
    node = server.node
    async with connect(server) as client:
        subscription = await client.result("chain_subscribeFinalizedHeads")
        first = await client.notification("chain_finalizedHead", subscription)
        assert header_from_json(first).hash == node.genesis_hash
        block = author(node)
        assert (
            header_from_json(await client.notification("chain_finalizedHead", subscription)).hash
            == block.hash
        )
        assert await client.result("chain_unsubscribeFinalizedHeads", [subscription]) is True


async def test_two_subscriptions_on_one_connection(server: Server) -> None:
    async with connect(server) as client:
        heads = await client.result("chain_subscribeNewHeads")
        finals = await client.result("chain_subscribeFinalizedHeads")
        assert heads != finals
        seen: dict[str, int] = {}
        author(server.node)
        for _ in range(4):  # the initial header and the new block, on each subscription
            message = await client.receive()
            seen[message["params"]["subscription"]] = seen.get(message["params"]["subscription"], 0) + 1
        assert seen == {heads: 2, finals: 2}


async def test_submit_and_watch(server: Server) -> None:
    node = server.node
    encoded = transfer_extrinsic(node)
    async with connect(server) as client:
        subscription = await client.result("author_submitAndWatchExtrinsic", [to_hex(encoded)])
        assert await client.notification("author_extrinsicUpdate", subscription) == "ready"
        block = author(node)
        assert await client.notification("author_extrinsicUpdate", subscription) == {
            "inBlock": to_hex(block.hash)
        }
        assert await client.notification("author_extrinsicUpdate", subscription) == {
            "finalized": to_hex(block.hash)
        }
        # the story is over: the subscription is gone
        assert await client.result("author_unwatchExtrinsic", [subscription]) is False
        author(node)
        await client.assert_quiet()


async def test_submit_and_watch_future_then_ready(server: Server) -> None:
    node = server.node
    later = transfer_extrinsic(node, nonce=1)
    async with connect(server) as client:
        subscription = await client.result("author_submitAndWatchExtrinsic", [to_hex(later)])
        assert await client.notification("author_extrinsicUpdate", subscription) == "future"
        assert await client.result("author_unwatchExtrinsic", [subscription]) is True


async def test_submit_and_watch_rejected(server: Server) -> None:
    async with connect(server) as client:
        answer = await client.call("author_submitAndWatchExtrinsic", ["0x0102"])
        assert answer["error"]["code"] == errors.AUTHOR_BAD_FORMAT
        await client.assert_quiet()


async def test_subscription_limit(start_server: StartServer) -> None:
    server = await start_server(RpcLimits(max_subscriptions_per_connection=2))
    async with connect(server) as client:
        first = await client.result("chain_subscribeNewHeads")
        await client.notification("chain_newHead", first)
        second = await client.result("chain_subscribeFinalizedHeads")
        await client.notification("chain_finalizedHead", second)
        refused = await client.call("chain_subscribeNewHeads")
        assert refused["error"]["code"] == errors.TOO_MANY_SUBSCRIPTIONS
        watch = await client.call("author_submitAndWatchExtrinsic", [to_hex(transfer_extrinsic(server.node))])
        assert watch["error"]["code"] == errors.TOO_MANY_SUBSCRIPTIONS
        assert server.node.pool.pending() == []  # refused before it was submitted
        assert await client.result("chain_unsubscribeNewHeads", [first]) is True
        third = await client.result("chain_subscribeNewHeads")
        await client.notification("chain_newHead", third)
    async with connect(server) as other:  # the limit is per connection
        assert isinstance(await other.result("chain_subscribeNewHeads"), str)


async def test_message_size_limit_closes_with_1009(start_server: StartServer) -> None:
    server = await start_server(RpcLimits(max_request_bytes=1024))
    async with connect(server) as client:
        assert await client.result("system_name") == "imagechain-node"
        await client.send({"jsonrpc": "2.0", "id": 1, "method": "system_name", "pad": "x" * 2048})
        with pytest.raises(ConnectionClosed) as closed:
            await client.receive()
        assert closed.value.reason.code == 1009


async def test_connection_limit(start_server: StartServer) -> None:
    server = await start_server(RpcLimits(max_connections=1))
    async with connect(server) as client:
        assert await client.result("system_name") == "imagechain-node"
        with pytest.raises(HandshakeError):
            async with connect(server):
                pass
    with trio.fail_after(TIMEOUT_S):  # the slot frees when the first client leaves
        while True:
            try:
                async with connect(server) as again:
                    assert await again.result("system_name") == "imagechain-node"
                break
            except HandshakeError:
                await trio.sleep(0.01)


# ---------------------------------------------------------------------------------------------
# Cleanup when the client goes away
# ---------------------------------------------------------------------------------------------


def spy_on_notifier(server: Server, monkeypatch: pytest.MonkeyPatch) -> list[trio.MemoryReceiveChannel[Any]]:
    """Record every channel the RPC layer takes from the notifier."""
    notifier = server.node.notifier
    opened: list[trio.MemoryReceiveChannel[Any]] = []

    def recording(original: Callable[..., trio.MemoryReceiveChannel[Any]]) -> Callable[..., Any]:
        def wrapper(*args: Any) -> trio.MemoryReceiveChannel[Any]:
            channel = original(*args)
            opened.append(channel)
            return channel

        return wrapper

    for name in ("subscribe_new_heads", "subscribe_finalized_heads", "watch_extrinsic"):
        monkeypatch.setattr(notifier, name, recording(getattr(notifier, name)))
    return opened


async def wait_all_released(channels: list[trio.MemoryReceiveChannel[Any]]) -> None:
    with trio.fail_after(TIMEOUT_S):
        while any(channel.statistics().open_receive_channels for channel in channels):
            await trio.sleep(0.01)


async def test_subscriptions_released_on_close(server: Server, monkeypatch: pytest.MonkeyPatch) -> None:
    opened = spy_on_notifier(server, monkeypatch)
    async with connect(server) as client:
        await client.result("chain_subscribeNewHeads")
        await client.result("chain_subscribeFinalizedHeads")
        await client.result("author_submitAndWatchExtrinsic", [to_hex(transfer_extrinsic(server.node))])
        for _ in range(3):
            await client.receive()
    assert len(opened) == 3
    await wait_all_released(opened)
    author(server.node)  # the node's broadcast drops the dead channels without complaint
    assert server.node.chain.best_header().number == 1


async def test_subscriptions_released_when_the_tcp_connection_drops(
    server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No close handshake at all: the socket just vanishes mid-subscription."""
    opened = spy_on_notifier(server, monkeypatch)
    stream = await trio.open_tcp_stream("127.0.0.1", server.port)
    key = base64.b64encode(os.urandom(16))
    await stream.send_all(
        b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: " + key + b"\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    handshake = b""
    with trio.fail_after(TIMEOUT_S):
        while b"\r\n\r\n" not in handshake:
            handshake += await stream.receive_some(4096)
    assert handshake.startswith(b"HTTP/1.1 101")
    for request_id, method in enumerate(["chain_subscribeNewHeads", "chain_subscribeFinalizedHeads"]):
        await stream.send_all(
            _masked_text_frame(json.dumps({"jsonrpc": "2.0", "id": request_id, "method": method}))
        )
    with trio.fail_after(TIMEOUT_S):
        while len(opened) < 2:
            await trio.sleep(0.01)
    await stream.aclose()
    await wait_all_released(opened)


def _masked_text_frame(text: str) -> bytes:
    payload = text.encode()
    assert len(payload) < 126
    mask = os.urandom(4)
    return bytes([0x81, 0x80 | len(payload)]) + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
