"""Issue #10, finding 7: a page on another site must not reach the node (`--rpc-cors`).

Browsers send `Origin` on every WebSocket upgrade and every cross-origin request; the node
refuses origins it does not allow with 403 before running anything, answers CORS preflights for
those it does, and serves requests without an Origin (not from a browser) as before.
"""

from __future__ import annotations

import json

import httpx
import pytest
from trio_websocket import ConnectionRejected, open_websocket_url

from node.cli import rpc_limits_from_options
from node.rpc import errors
from node.rpc.limits import DEFAULT_CORS
from node.rpc.origins import OriginPolicy, parse_cors
from node.rpc.server import RpcLimits
from tests.rpc.helpers import Server, StartServer

EVIL = "https://evil.example"
BLOCK_PEER = {"jsonrpc": "2.0", "id": 1, "method": "network_blockPeer", "params": ["12D3KooWabc"]}


async def websocket_status(server: Server, origin: str | None) -> int:
    """101 if the upgrade is accepted, else the HTTP status of the refusal."""
    headers = [(b"origin", origin.encode())] if origin is not None else []
    refusals: list[ConnectionRejected] = []
    try:
        async with open_websocket_url(server.ws_url, extra_headers=headers) as websocket:
            await websocket.send_message(json.dumps(BLOCK_PEER))
            answer = json.loads(await websocket.get_message())
            assert answer["error"]["data"] == "this node runs without networking"  # reached the method
            return 101
    except* ConnectionRejected as group:
        refusals.extend(e for e in group.exceptions if isinstance(e, ConnectionRejected))
    (refusal,) = refusals
    if refusal.status_code == 403:
        assert refusal.body is not None and json.loads(refusal.body)["error"]["code"] == errors.ORIGIN_NOT_ALLOWED
    return refusal.status_code


async def test_cross_site_websocket_refused_local_pages_allowed(server: Server) -> None:
    """The default policy, on a node serving unsafe methods (loopback): a page from another site
    cannot open a WebSocket, one from localhost can, and so can a client that is not a browser."""
    server.node.config.rpc_unsafe = True
    assert await websocket_status(server, EVIL) == 403
    assert await websocket_status(server, "http://localhost.evil.example:9944") == 403
    assert await websocket_status(server, "null") == 403  # a sandboxed iframe, a file:// page
    assert await websocket_status(server, "http://localhost:3000") == 101
    assert await websocket_status(server, "https://127.0.0.1") == 101
    assert await websocket_status(server, None) == 101


async def test_cross_site_http_refused_preflight_answered(server: Server) -> None:
    server.node.config.rpc_unsafe = True
    async with httpx.AsyncClient(base_url=server.url) as http:
        refused = await http.post("/", json=BLOCK_PEER, headers={"origin": EVIL})
        assert refused.status_code == 403
        assert refused.json()["error"] == {
            "code": errors.ORIGIN_NOT_ALLOWED,
            "message": "Origin not allowed",
            "data": f"{EVIL} is not allowed (--rpc-cors)",
        }
        assert "access-control-allow-origin" not in refused.headers

        preflight = {"access-control-request-method": "POST", "access-control-request-headers": "content-type"}
        assert (await http.options("/", headers={"origin": EVIL, **preflight})).status_code == 400
        allowed = await http.options("/", headers={"origin": "http://localhost:8000", **preflight})
        assert allowed.status_code == 200
        assert allowed.headers["access-control-allow-origin"] == "http://localhost:8000"
        assert "POST" in allowed.headers["access-control-allow-methods"]

        local = await http.post("/", json=BLOCK_PEER, headers={"origin": "http://localhost:8000"})
        assert local.headers["access-control-allow-origin"] == "http://localhost:8000"
        assert local.json()["error"]["data"] == "this node runs without networking"  # reached the method
        assert "error" in (await http.post("/", json=BLOCK_PEER)).json()  # no Origin: not a browser


async def test_cors_list_and_all(start_server: StartServer) -> None:
    listed = await start_server(RpcLimits(cors=("https://app.example",)))
    listed.node.config.rpc_unsafe = True
    assert await websocket_status(listed, "https://app.example") == 101
    assert await websocket_status(listed, "http://localhost:3000") == 403  # the list replaces the default
    anyone = await start_server(RpcLimits(cors=None))
    assert await websocket_status(anyone, EVIL) == 101
    async with httpx.AsyncClient(base_url=anyone.url) as http:
        answer = await http.post("/", json={"jsonrpc": "2.0", "id": 1, "method": "system_name"}, headers={"origin": EVIL})
        assert answer.headers["access-control-allow-origin"] == "*"


def test_parse_cors_flag() -> None:
    assert parse_cors("all") is None and parse_cors("*") is None and parse_cors("https://a.example, all") is None
    assert parse_cors("https://a.example, http://localhost:*") == ("https://a.example", "http://localhost:*")
    for bad in ("", "a.example", "https://a.example/path", "localhost:*"):
        with pytest.raises(ValueError):
            parse_cors(bad)
    policy = OriginPolicy(DEFAULT_CORS)
    assert policy.allows("http://localhost") and policy.allows("https://127.0.0.1:8443")
    assert not policy.allows("http://127.0.0.1.evil.example") and not policy.allows("http://[::1]:80")


def test_flags_make_the_limits() -> None:
    """`--dev` allows every origin unless --rpc-cors says otherwise; sizes are in MiB."""
    options = dict(
        max_connections=100, max_connections_per_ip=20, max_request_mib=10, max_response_mib=15,
        max_batch_len=1000, max_subscriptions_per_connection=256, max_subscriptions=4096,
        message_buffer_capacity=64, rate_limit=None, max_image_jobs=1, max_image_pixels=4096 * 3072,
    )  # fmt: skip
    dev = rpc_limits_from_options(dev=True, cors=None, **options)  # type: ignore[arg-type]
    live = rpc_limits_from_options(dev=False, cors=None, **options)  # type: ignore[arg-type]
    listed = rpc_limits_from_options(dev=True, cors="https://a.example", **options)  # type: ignore[arg-type]
    assert dev.cors is None and live.cors == DEFAULT_CORS and listed.cors == ("https://a.example",)
    assert live.max_response_bytes == 15 * 1024 * 1024 and live.max_buffered_response_bytes == 32 * 1024 * 1024
