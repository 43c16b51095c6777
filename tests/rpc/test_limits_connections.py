"""Issue #10, finding 3: connections are bounded in total and per IP address, and
`--rpc-rate-limit` slows a caller down, then fails it with Substrate's -32999.

Every address in 127/8 is this host, so clients bind to 127.0.0.2, 127.0.0.3, ... to stand for
other machines.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest
import trio
from trio_websocket import ConnectionRejected, WebSocketConnection, wrap_client_stream

from node.rpc import errors
from node.rpc.admission import RateLimit
from node.rpc.server import RpcLimits
from tests.rpc.helpers import Server, StartServer, tcp_stream

NAME = {"jsonrpc": "2.0", "id": 1, "method": "system_name"}


@asynccontextmanager
async def websocket_from(server: Server, address: str) -> AsyncIterator[WebSocketConnection]:
    """A WebSocket to the server from source address `address`."""
    async with trio.open_nursery() as nursery:
        stream = await tcp_stream(server.port, local_address=address)
        websocket = await wrap_client_stream(nursery, stream, "127.0.0.1", "/")
        try:
            yield websocket
        finally:
            await websocket.aclose()


async def rejected(server: Server, address: str) -> ConnectionRejected:
    """The server's refusal of a WebSocket handshake from `address`."""
    refusals: list[ConnectionRejected] = []
    try:
        async with websocket_from(server, address):
            pass
    except* ConnectionRejected as group:
        refusals.extend(e for e in group.exceptions if isinstance(e, ConnectionRejected))
    assert refusals, f"a connection from {address} was accepted"
    return refusals[0]


async def test_connections_bounded_per_ip_and_in_total(start_server: StartServer) -> None:
    server = await start_server(RpcLimits(max_connections=3, max_connections_per_ip=2))
    async with (
        websocket_from(server, "127.0.0.1") as one,
        websocket_from(server, "127.0.0.1") as two,
    ):
        for websocket in (one, two):
            await websocket.send_message(json.dumps(NAME))
            assert json.loads(await websocket.get_message())["result"] == "imagechain-node"
        third = await rejected(server, "127.0.0.1")  # a third from the same address
        assert third.status_code == 429
        assert third.body is not None and json.loads(third.body)["error"]["code"] == errors.SERVER_IS_BUSY
        assert b"per-ip" in third.body
        # HTTP requests count while they run: this address has no room left either.
        async with httpx.AsyncClient(base_url=server.url) as http:
            refused = await http.post("/", json=NAME)
            assert refused.status_code == 429 and refused.headers["retry-after"] == "1"
            assert refused.json()["error"]["code"] == errors.SERVER_IS_BUSY
        async with websocket_from(server, "127.0.0.2") as other:  # another address may: 3 in all
            await other.send_message(json.dumps(NAME))
            assert json.loads(await other.get_message())["result"] == "imagechain-node"
            total = await rejected(server, "127.0.0.3")  # the node is full
            assert total.status_code == 429 and b"--rpc-max-connections)" in (total.body or b"")
    with trio.fail_after(5):  # the slots come back when the clients leave
        while server.state.gate.open:
            await trio.sleep(0.01)
    async with httpx.AsyncClient(base_url=server.url) as http:
        assert (await http.post("/", json=NAME)).json()["result"] == "imagechain-node"


def test_rate_limit_is_substrates_cell_rate() -> None:
    """N a minute in bursts of N: 60/min allows 60 at once, then one a second."""
    limit = RateLimit(60)
    assert all(limit.check(100.0) == 0.0 for _ in range(60))
    assert limit.check(100.0) == pytest.approx(1.0)
    assert limit.check(100.5) == pytest.approx(0.5)
    assert limit.check(101.0) == 0.0
    assert limit.check(101.0) == pytest.approx(1.0)
    assert not limit.idle(160.9) and limit.idle(161.0)  # full again 60 s after the last call


async def test_rate_limit_waits_then_fails_with_32999(start_server: StartServer) -> None:
    """600 calls a minute: a burst of 600, then one every 0.1 s. Over WebSocket a call past the
    burst waits for its turn and succeeds; over HTTP (one limit per IP address) 40 calls at once
    past the burst cannot all get a turn within 10 waits, and those that cannot fail with -32999."""
    server = await start_server(RpcLimits(rate_limit_per_minute=600, max_connections_per_ip=100))
    burst = json.dumps([dict(NAME, id=i) for i in range(600)])
    async with websocket_from(server, "127.0.0.1") as websocket:
        await websocket.send_message(burst)
        assert all("result" in a for a in json.loads(await websocket.get_message()))
        await websocket.send_message(json.dumps(NAME))  # past the burst: waits, then runs
        assert json.loads(await websocket.get_message())["result"] == "imagechain-node"

    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        answers = (await http.post("/", content=burst, headers={"content-type": "application/json"})).json()
        assert all("result" in a for a in answers)  # the address's own burst, spent
        outcomes: list[dict] = []

        async def call() -> None:
            outcomes.append((await http.post("/", json=NAME)).json())

        async with trio.open_nursery() as nursery:
            for _ in range(40):
                nursery.start_soon(call)
    failed = [o["error"] for o in outcomes if "error" in o]
    assert len(outcomes) == 40 and all("result" in o or "error" in o for o in outcomes)
    assert failed and all(e["code"] == errors.RATE_LIMITED for e in failed)
    assert failed[0]["message"] == "RPC rate limit exceeded"
