"""JSON-RPC 2.0 conformance over real HTTP: the specification's own examples and every error code."""

from __future__ import annotations

import json
import logging
from typing import Any

import httpx
import pytest

from node.rpc import errors
from node.rpc.methods import substrate
from node.rpc.server import RpcLimits
from tests.rpc.helpers import StartServer, error, rpc

JSON_HEADERS = {"content-type": "application/json"}


async def post_raw(
    http: httpx.AsyncClient, body: bytes | str, headers: dict[str, str] | None = None
) -> httpx.Response:
    return await http.post("/", content=body, headers=headers or JSON_HEADERS)


def assert_error(obj: Any, code: int, request_id: Any = None) -> dict[str, Any]:
    assert obj["jsonrpc"] == "2.0"
    assert obj["id"] == request_id
    assert "result" not in obj
    assert obj["error"]["code"] == code
    assert isinstance(obj["error"]["message"], str) and obj["error"]["message"]
    return obj["error"]


# ---------------------------------------------------------------------------------------------
# Requests and responses
# ---------------------------------------------------------------------------------------------


async def test_single_request_echoes_id_of_any_kind(http: httpx.AsyncClient) -> None:
    for request_id in (1, "abc", 0, -5, 2.5, None):
        body = await rpc(http, "system_name", [], request_id=request_id)
        assert body == {"jsonrpc": "2.0", "result": "imagechain-node", "id": request_id}


async def test_params_may_be_omitted_positional_or_named(http: httpx.AsyncClient) -> None:
    best = (await rpc(http, "chain_getBlockHash"))["result"]
    assert (await rpc(http, "chain_getBlockHash", [0]))["result"] == best
    assert (await rpc(http, "chain_getBlockHash", {"number": 0}))["result"] == best
    assert (await rpc(http, "chain_getBlockHash", {}))["result"] == best
    # null for an optional parameter means "not given", as Substrate reads it
    assert (await rpc(http, "chain_getBlockHash", [None]))["result"] == best
    assert (await rpc(http, "chain_getBlockHash", ["0x0"]))["result"] == best


async def test_notification_gets_no_response(http: httpx.AsyncClient) -> None:
    response = await post_raw(http, json.dumps({"jsonrpc": "2.0", "method": "system_name"}))
    assert response.status_code == 204 and response.content == b""
    # even a failing notification is silent
    response = await post_raw(http, json.dumps({"jsonrpc": "2.0", "method": "no_such_method", "params": [1]}))
    assert response.status_code == 204 and response.content == b""


async def test_batch_mixed_as_in_the_specification(http: httpx.AsyncClient) -> None:
    batch = [
        {"jsonrpc": "2.0", "method": "system_name", "id": "1"},
        {"jsonrpc": "2.0", "method": "system_chain"},  # notification
        {"jsonrpc": "2.0", "method": "chain_getBlockHash", "params": [0], "id": "2"},
        {"foo": "boo"},
        {"jsonrpc": "2.0", "method": "foo.get", "params": {"name": "myself"}, "id": "5"},
        {"jsonrpc": "2.0", "method": "system_chainType", "id": "9"},
    ]
    response = await post_raw(http, json.dumps(batch))
    assert response.status_code == 200
    answers = response.json()
    assert isinstance(answers, list) and len(answers) == 5
    by_id = {answer["id"]: answer for answer in answers}
    assert by_id["1"]["result"] == "imagechain-node"
    assert by_id["2"]["result"].startswith("0x") and len(by_id["2"]["result"]) == 66
    assert_error(by_id["5"], errors.METHOD_NOT_FOUND, "5")
    assert by_id["9"]["result"] == "Development"
    assert_error(by_id[None], errors.INVALID_REQUEST)


async def test_batch_of_notifications_gets_no_response(http: httpx.AsyncClient) -> None:
    batch = [
        {"jsonrpc": "2.0", "method": "system_name"},
        {"jsonrpc": "2.0", "method": "system_health", "params": []},
    ]
    response = await post_raw(http, json.dumps(batch))
    assert response.status_code == 204 and response.content == b""


async def test_empty_batch_is_one_invalid_request(http: httpx.AsyncClient) -> None:
    response = await post_raw(http, "[]")
    assert_error(response.json(), errors.INVALID_REQUEST)


async def test_batch_of_non_objects_gets_an_error_each(http: httpx.AsyncClient) -> None:
    response = await post_raw(http, "[1, 2, 3]")
    answers = response.json()
    assert len(answers) == 3
    for answer in answers:
        assert_error(answer, errors.INVALID_REQUEST)


async def test_batch_limit(start_server: StartServer) -> None:
    server = await start_server(RpcLimits(max_batch_len=3))
    async with httpx.AsyncClient(base_url=server.url) as http:
        request = {"jsonrpc": "2.0", "method": "system_name", "id": 1}
        ok = await post_raw(http, json.dumps([request] * 3))
        assert len(ok.json()) == 3
        too_many = await post_raw(http, json.dumps([request] * 4))
        assert too_many.status_code == 200
        assert_error(too_many.json(), errors.TOO_BIG_BATCH)


# ---------------------------------------------------------------------------------------------
# Error codes
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        b'{"jsonrpc": "2.0", "method": "foobar, "params": "bar", "baz]',
        b'[{"jsonrpc": "2.0", "method": "system_name", "id": 1},{"jsonrpc": "2.0", "method"]',
        b"",
        b"   ",
        b"\xff\xfe\x00garbage",
        b'{"jsonrpc": "2.0", "method": "system_name", "id": NaN}',
        b'{"jsonrpc": "2.0", "method": "system_name", "id": Infinity}',
        b"[" * 100_000,
        b'{"id": 1' + b"0" * 5000 + b"}",
    ],
)
async def test_parse_error(http: httpx.AsyncClient, body: bytes) -> None:
    response = await post_raw(http, body)
    assert response.status_code == 200
    assert_error(response.json(), errors.PARSE_ERROR)


@pytest.mark.parametrize(
    ("request_obj", "expected_id"),
    [
        (1, None),
        ("text", None),
        (None, None),
        ({"foo": "boo"}, None),
        ({"method": "system_name", "id": 7}, 7),
        ({"jsonrpc": "1.0", "method": "system_name", "id": 7}, 7),
        ({"jsonrpc": 2.0, "method": "system_name", "id": 7}, 7),
        ({"jsonrpc": "2.0", "method": 1, "params": "bar", "id": 7}, 7),
        ({"jsonrpc": "2.0", "id": "x"}, "x"),
        ({"jsonrpc": "2.0", "method": "system_name", "params": "bar", "id": 7}, 7),
        ({"jsonrpc": "2.0", "method": "system_name", "params": 3, "id": 7}, 7),
        ({"jsonrpc": "2.0", "method": "system_name", "id": True}, None),
        ({"jsonrpc": "2.0", "method": "system_name", "id": {"a": 1}}, None),
        ({"jsonrpc": "2.0", "method": "system_name", "id": [1]}, None),
    ],
)
async def test_invalid_request(http: httpx.AsyncClient, request_obj: Any, expected_id: Any) -> None:
    response = await post_raw(http, json.dumps(request_obj))
    assert_error(response.json(), errors.INVALID_REQUEST, expected_id)


async def test_method_not_found(http: httpx.AsyncClient) -> None:
    assert (await error(http, "no_such_method"))["code"] == errors.METHOD_NOT_FOUND
    assert (await error(http, "System_Name"))["code"] == errors.METHOD_NOT_FOUND


@pytest.mark.parametrize(
    ("method", "params", "fragment"),
    [
        ("system_name", [1], "at most 0"),
        ("chain_getHeader", ["0x00", "0x00"], "at most 1"),
        ("chain_getHeader", ["0x1234"], "hash"),
        ("chain_getHeader", ["0x" + "zz" * 32], "hash"),
        ("chain_getHeader", ["ab" * 32], "hash"),
        ("chain_getHeader", [12], "hash"),
        ("chain_getHeader", {"block": "0x" + "00" * 32}, "no parameter named 'block'"),
        ("chain_getBlockHash", [-1], "number"),
        ("chain_getBlockHash", [True], "number"),
        ("chain_getBlockHash", [1.5], "number"),
        ("chain_getBlockHash", ["12"], "number"),
        ("chain_getBlockHash", ["0x" + "f" * 100], "number"),
        ("chain_getBlockHash", [2**32], "number"),
        ("chain_getBlockHash", [list(range(substrate.MAX_BLOCK_NUMBERS + 1))], "at most"),
        ("state_getStorage", [], "missing required parameter 'key'"),
        ("state_getStorage", [None], "missing required parameter 'key'"),
        ("state_getStorage", {"at": None}, "missing required parameter 'key'"),
        ("state_getStorage", ["0x123"], "key"),
        ("state_getReadProof", ["0x00"], "array"),
        ("author_submitExtrinsic", [{"x": 1}], "extrinsic"),
        ("system_accountNextIndex", ["not an address"], "account"),
        ("system_accountNextIndex", ["0x" + "00" * 31], "account"),
    ],
)
async def test_invalid_params(http: httpx.AsyncClient, method: str, params: Any, fragment: str) -> None:
    err = await error(http, method, params)
    assert err["code"] == errors.INVALID_PARAMS
    assert err["message"] == "Invalid params"
    assert fragment in err["data"]


async def test_internal_error_is_logged_never_leaked(
    http: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def explode() -> list[dict[str, Any]]:
        raise RuntimeError("secret internal detail")

    monkeypatch.setattr("node.core.node.Node.peers", lambda self: explode())
    with caplog.at_level(logging.ERROR, logger="node.rpc"):
        response = await http.post("/", json={"jsonrpc": "2.0", "id": 3, "method": "system_peers"})
    err = assert_error(response.json(), errors.INTERNAL_ERROR, 3)
    assert err == {"code": errors.INTERNAL_ERROR, "message": "Internal error"}
    assert "secret" not in response.text
    assert any("secret internal detail" in (record.exc_text or "") for record in caplog.records)


async def test_subscription_over_http_is_refused(http: httpx.AsyncClient) -> None:
    for method, params in [
        ("chain_subscribeNewHeads", []),
        ("chain_unsubscribeNewHeads", ["abc"]),
        ("author_submitAndWatchExtrinsic", ["0x00"]),
    ]:
        err = await error(http, method, params)
        assert err["code"] == errors.SUBSCRIPTION_NEEDS_WEBSOCKET


# ---------------------------------------------------------------------------------------------
# HTTP around JSON-RPC
# ---------------------------------------------------------------------------------------------


async def test_request_size_limit(start_server: StartServer) -> None:
    server = await start_server(RpcLimits(max_request_bytes=1024))
    async with httpx.AsyncClient(base_url=server.url) as http:
        padding = "x" * 2000
        big = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "system_name", "pad": padding}).encode()
        response = await post_raw(http, big)
        assert response.status_code == 413
        assert_error(response.json(), errors.OVERSIZED_REQUEST)

        async def chunks() -> Any:  # no Content-Length: the limit holds while streaming
            for _ in range(10):
                yield b" " * 200

        response = await http.post("/", content=chunks(), headers=JSON_HEADERS)
        assert response.status_code == 413
        assert_error(response.json(), errors.OVERSIZED_REQUEST)

        small = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "system_name"}).encode()
        assert (await post_raw(http, small)).json()["result"] == "imagechain-node"


async def test_default_limit_is_ten_mebibytes(http: httpx.AsyncClient) -> None:
    assert RpcLimits().max_request_bytes == 10 * 1024 * 1024
    response = await post_raw(http, b" " * (10 * 1024 * 1024 + 1))
    assert response.status_code == 413


async def test_content_type_must_be_json(http: httpx.AsyncClient) -> None:
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "system_name"})
    for content_type in ("text/plain", "application/x-www-form-urlencoded", ""):
        response = await post_raw(http, body, {"content-type": content_type})
        assert response.status_code == 415
        assert_error(response.json(), errors.INVALID_REQUEST)
    response = await post_raw(http, body, {"content-type": "application/json; charset=utf-8"})
    assert response.json()["result"] == "imagechain-node"


async def test_other_http_methods_and_paths(http: httpx.AsyncClient) -> None:
    assert (await http.get("/")).status_code == 405
    assert (await http.put("/", content=b"{}")).status_code == 405
    assert (await http.post("/nowhere", json={})).status_code == 404


async def test_health_endpoints(http: httpx.AsyncClient) -> None:
    health = (await http.get("/health")).json()
    assert health == {"peers": 0, "isSyncing": False, "shouldHavePeers": False}
    assert (await http.get("/health/readiness")).status_code == 200
