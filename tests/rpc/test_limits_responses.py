"""Issue #10, finding 3: a small request must not make the server build or hold a huge answer.

The issue's attack: a 21 kB batch of 150 `chain_getBlock` for a 1.9 MB block built a 573 MB
answer. Here the block is ~240 kB of JSON (100 remarks of 1 kB), so 150 of them would be ~36 MB.
"""

from __future__ import annotations

import json
import logging
import socket

import httpx
import pytest
import trio

from node.core.node import Node
from node.rpc import errors
from node.rpc.jsonrpc import MAX_JSON_VALUES
from node.rpc.limits import MIB
from node.rpc.server import RpcLimits
from node.runtime.runtime import SPEC_VERSION
from node.types import Block, Call, Mortality, SignedExtra, sign_extrinsic
from tests.rpc.helpers import ALICE, Server, StartServer, author

JSON_HEADERS = {"content-type": "application/json"}


def big_block(node: Node, remarks: int = 100) -> Block:
    """Author a block of `remarks` 1 kB remarks signed by //Alice (~2.4 kB of JSON each)."""
    nonce = node.next_nonce(ALICE.account_id)
    for i in range(remarks):
        extra = SignedExtra(node.genesis_hash, SPEC_VERSION, nonce + i, 0, Mortality.from_genesis(node.genesis_hash))
        node.submit_extrinsic(sign_extrinsic(ALICE, Call("system", "remark", (bytes([i]) * 1024,)), extra).encode())
    block = author(node)
    assert len(block.extrinsics) == remarks + 1
    return block


def get_blocks(block: Block, count: int) -> str:
    return json.dumps(
        [{"jsonrpc": "2.0", "id": i, "method": "chain_getBlock", "params": ["0x" + block.hash.hex()]} for i in range(count)]
    )


async def test_oversize_batch_response_is_refused_within_the_budget(
    server: Server, caplog: pytest.LogCaptureFixture
) -> None:
    """Default limits: 150 x 240 kB is refused whole with -32011, and building stops at the
    member that passes 10 MiB instead of going on to ~36 MB."""
    block = big_block(server.node)
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        one = (await http.post("/", content=get_blocks(block, 1), headers=JSON_HEADERS)).content
        assert 200_000 < len(one) < 300_000
        with caplog.at_level(logging.WARNING, logger="node.rpc"):
            response = await http.post("/", content=get_blocks(block, 150), headers=JSON_HEADERS)
    assert response.status_code == 200 and len(response.content) < 1000
    answer = response.json()
    assert answer["id"] is None and answer["error"]["code"] == errors.TOO_BIG_BATCH_RESPONSE
    assert answer["error"]["data"] == f"Exceeded max limit of {10 * MIB}"
    stopped_at = 10 * MIB // len(one) + 1
    (line,) = [r.getMessage() for r in caplog.records if "batch response refused" in r.getMessage()]
    assert "127.0.0.1:" in line and f"at request {stopped_at}" in line, line
    assert server.state.memory.held == 0


async def test_single_oversize_result_is_an_error(start_server: StartServer) -> None:
    """An answer past the budget becomes -32008 with its request's id; in a batch, in its place."""
    server = await start_server(RpcLimits(max_response_bytes=100_000, max_buffered_response_bytes=200_000))
    block = big_block(server.node)
    request = {"jsonrpc": "2.0", "id": 7, "method": "chain_getBlock", "params": ["0x" + block.hash.hex()]}
    name = {"jsonrpc": "2.0", "id": 8, "method": "system_name"}
    async with httpx.AsyncClient(base_url=server.url) as http:
        single = (await http.post("/", json=request)).json()
        assert single["id"] == 7 and single["error"]["code"] == errors.OVERSIZED_RESPONSE
        assert single["error"]["message"] == "Response is too big"
        batch = (await http.post("/", json=[request, name])).json()
        assert [a["id"] for a in batch] == [7, 8]
        assert batch[0]["error"]["code"] == errors.OVERSIZED_RESPONSE and batch[1]["result"] == "imagechain-node"
        assert (await http.post("/", json=name)).json()["result"] == "imagechain-node"


async def test_answers_held_for_clients_that_do_not_read_are_bounded(start_server: StartServer) -> None:
    """A client that does not read holds its answer in the server; over all clients such answers
    are bounded (here 8 MiB): past it a large answer is "busy" (-32009), small ones still go, and
    the bytes come back when the client goes."""
    server = await start_server(RpcLimits(max_response_bytes=8 * MIB, max_buffered_response_bytes=8 * MIB))
    block = big_block(server.node)
    six_mb = get_blocks(block, 6 * MIB // 240_000)
    tiny_window = httpx.AsyncHTTPTransport(socket_options=[(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)])
    async with (
        httpx.AsyncClient(base_url=server.url, transport=tiny_window, timeout=30) as slow,
        httpx.AsyncClient(base_url=server.url, timeout=30) as other,
    ):
        async with slow.stream("POST", "/", content=six_mb, headers=JSON_HEADERS) as unread:
            assert unread.status_code == 200  # headers in; the body stays unread in the server
            assert server.state.memory.held > 5 * MIB
            busy = (await other.post("/", content=six_mb, headers=JSON_HEADERS)).json()
            assert busy["id"] is None and busy["error"]["code"] == errors.SERVER_IS_BUSY
            small = (await other.post("/", json={"jsonrpc": "2.0", "id": 1, "method": "system_name"})).json()
            assert small["result"] == "imagechain-node"
        with trio.fail_after(5):  # the slow client went away: its bytes are given back
            while server.state.memory.held:
                await trio.sleep(0.01)
        again = (await other.post("/", content=six_mb, headers=JSON_HEADERS)).json()
        assert isinstance(again, list) and all("result" in a for a in again)


async def test_request_with_too_many_json_values_is_refused(http: httpx.AsyncClient) -> None:
    """Parsing `[0,0,...]` or `[{},{},...]` costs far more memory than the bytes sent: the values
    are counted before parsing (250,000 here, in a 500 kB body)."""
    body = '{"jsonrpc":"2.0","id":1,"method":"system_name","params":[' + ",".join(["0"] * 250_000) + "]}"
    answer = (await http.post("/", content=body, headers=JSON_HEADERS)).json()
    assert answer["error"]["code"] == errors.OVERSIZED_REQUEST
    assert answer["error"]["data"] == f"more than {MAX_JSON_VALUES:,} JSON values"
    fine = '{"jsonrpc":"2.0","id":1,"method":"chain_getBlockHash","params":[[' + ",".join(["0"] * 999) + "]]}"
    assert len((await http.post("/", content=fine, headers=JSON_HEADERS)).json()["result"]) == 999
