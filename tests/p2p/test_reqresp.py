"""Request-response over real streams: round trips, every failure mode, and a server that survives."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio

from node.p2p.network import (
    RequestFailed,
    RequestRejectedByPeer,
    RequestTimeout,
    UnsupportedProtocol,
)
from tests.p2p.helpers import SYNC, RecordingHandler, start_network


async def slow_or_big(protocol: str, data: bytes, peer: str) -> bytes:
    if data == b"slow":
        await trio.sleep(5)
    if data.startswith(b"big:"):
        return b"z" * int(data[4:])
    if data == b"crash":
        raise ValueError("handler bug")
    if data == b"not bytes":
        return "text"  # type: ignore[return-value]
    return b"echo:" + data


async def test_round_trip_and_concurrent_requests(nursery: trio.Nursery, tmp_path: Path) -> None:
    server, _ = await start_network(nursery, tmp_path)
    client, _ = await start_network(nursery, tmp_path)
    await client.connect(server.listen_addrs[0])
    assert await client.request(server.peer_id, SYNC, b"hello") == b"echo:hello"
    assert await client.request(server.peer_id, SYNC, b"") == b"echo:"

    results: dict[int, bytes] = {}

    async def one(i: int) -> None:
        results[i] = await client.request(server.peer_id, SYNC, f"r{i}".encode())

    async with trio.open_nursery() as requests:
        for i in range(50):
            requests.start_soon(one, i)
    assert results == {i: f"echo:r{i}".encode() for i in range(50)}
    assert server.stats()["requests"]["served"] == 52


async def test_large_response_within_limit(nursery: trio.Nursery, tmp_path: Path) -> None:
    server, _ = await start_network(nursery, tmp_path, RecordingHandler(respond=slow_or_big))
    client, _ = await start_network(nursery, tmp_path)
    await client.connect(server.listen_addrs[0])
    response = await client.request(server.peer_id, SYNC, b"big:3000000")
    assert response == b"z" * 3_000_000


async def test_rejected_request_penalises_the_requester(nursery: trio.Nursery, tmp_path: Path) -> None:
    server, _ = await start_network(nursery, tmp_path)
    client, _ = await start_network(nursery, tmp_path)
    await client.connect(server.listen_addrs[0])
    with pytest.raises(RequestRejectedByPeer, match="must not start with 'bad'"):
        await client.request(server.peer_id, SYNC, b"bad request")
    assert server.score(client.peer_id) < 0
    assert await client.request(server.peer_id, SYNC, b"ok") == b"echo:ok"  # still served


async def test_handler_failure_is_an_error_response_not_a_penalty(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    server, _ = await start_network(nursery, tmp_path, RecordingHandler(respond=slow_or_big))
    client, _ = await start_network(nursery, tmp_path)
    await client.connect(server.listen_addrs[0])
    for payload in (b"crash", b"not bytes"):
        with pytest.raises(RequestFailed, match="failed to serve") as info:
            await client.request(server.peer_id, SYNC, payload)
        assert not isinstance(info.value, RequestRejectedByPeer)
    assert server.score(client.peer_id) == 0
    assert server.stats()["requests"]["failed"] == 2


async def test_unknown_protocol(nursery: trio.Nursery, tmp_path: Path) -> None:
    server, _ = await start_network(nursery, tmp_path)
    client, _ = await start_network(nursery, tmp_path)
    await client.connect(server.listen_addrs[0])
    with pytest.raises(UnsupportedProtocol):
        await client.request(server.peer_id, "/imagechain/blob/1", b"x")
    server.register_protocol("/imagechain/blob/1")  # registering while running takes effect at once
    assert await client.request(server.peer_id, "/imagechain/blob/1", b"x") == b"echo:x"


async def test_timeout_leaves_both_sides_working(nursery: trio.Nursery, tmp_path: Path) -> None:
    server, _ = await start_network(nursery, tmp_path, RecordingHandler(respond=slow_or_big))
    client, _ = await start_network(nursery, tmp_path)
    await client.connect(server.listen_addrs[0])
    with trio.fail_after(3):
        with pytest.raises(RequestTimeout):
            await client.request(server.peer_id, SYNC, b"slow", timeout=0.3)
    assert await client.request(server.peer_id, SYNC, b"next") == b"echo:next"


async def test_size_limits(nursery: trio.Nursery, tmp_path: Path) -> None:
    server, _ = await start_network(
        nursery, tmp_path, RecordingHandler(respond=slow_or_big), max_request_bytes=1000
    )
    client, _ = await start_network(nursery, tmp_path, max_request_bytes=10_000, max_response_bytes=5000)
    await client.connect(server.listen_addrs[0])
    # Refused locally before anything is sent.
    with pytest.raises(RequestFailed, match="exceeds the 10000-byte limit"):
        await client.request(server.peer_id, SYNC, b"q" * 10_001)
    # Within our limit but over the server's: the server resets and blames us.
    with pytest.raises(RequestFailed):
        await client.request(server.peer_id, SYNC, b"q" * 2000)
    assert server.score(client.peer_id) < 0
    # A response over our max_response_bytes is refused from its length prefix.
    with pytest.raises(RequestFailed, match="exceeds 5000 bytes"):
        await client.request(server.peer_id, SYNC, b"big:6000")
    assert await client.request(server.peer_id, SYNC, b"big:4000") == b"z" * 4000


async def test_dead_or_unknown_peer(nursery: trio.Nursery, tmp_path: Path) -> None:
    client, _ = await start_network(nursery, tmp_path)
    async with trio.open_nursery() as short_lived:
        server, _ = await start_network(short_lived, tmp_path)
        await client.connect(server.listen_addrs[0])
        assert await client.request(server.peer_id, SYNC, b"alive") == b"echo:alive"
        short_lived.cancel_scope.cancel()
    with trio.fail_after(5):
        with pytest.raises(RequestFailed):
            await client.request(server.peer_id, SYNC, b"anyone there?")
    with pytest.raises(RequestFailed, match="invalid peer id"):
        await client.request("not-a-peer-id", SYNC, b"x")
