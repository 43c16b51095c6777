"""Fixtures for the RPC tests: a real dev node, served on 127.0.0.1 port 0 inside the test's trio run.

The node runs without its slot timer; tests author blocks when they want them
(`tests.rpc.helpers.author`), so every test is deterministic and none waits for a 2-second slot.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
import trio

from node.core.node import Node
from node.rpc.server import RpcLimits, ServerState, serve_rpc
from node.service import dev_node
from tests.rpc.helpers import Server, StartServer, author


@pytest.fixture
def node(tmp_path: Path) -> Iterator[Node]:
    """The real chain core on the built-in dev spec, with //Alice as its authority."""
    dev = dev_node(tmp_path, rpc_port=None)
    yield dev
    dev.close()


@pytest.fixture
async def start_server(node: Node, nursery: trio.Nursery) -> StartServer:
    """Start `serve_rpc` for the node (optionally with other limits); stopped with the test. The
    `Server` it returns carries the server's live counts (`ServerState`)."""

    async def start(limits: RpcLimits | None = None) -> Server:
        state = ServerState(limits or RpcLimits())
        port = await nursery.start(
            lambda task_status: serve_rpc(node, "127.0.0.1", 0, state=state, task_status=task_status)
        )
        return Server(node, port, state)

    return start


@pytest.fixture
async def server(start_server: StartServer) -> Server:
    return await start_server()


@pytest.fixture
async def http(server: Server) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as client:
        yield client


@pytest.fixture
async def auto_author(server: Server, nursery: trio.Nursery) -> None:
    """Author a block soon after anything enters the pool (instant seal, for tests that wait)."""

    async def loop() -> None:
        while True:
            await trio.sleep(0.02)
            if server.node.pool.pending():
                author(server.node)

    nursery.start_soon(loop)
