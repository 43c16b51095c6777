"""Property tests: no request body, however malformed, gets anything but a well-formed JSON-RPC answer.

Hypothesis drives a synchronous httpx client from a worker thread while the server runs in the
test's trio loop, so every example goes through the real HTTP stack.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import trio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from node.rpc.errors import INTERNAL_ERROR
from node.rpc.methods import TABLE
from tests.rpc.helpers import Server

SETTINGS = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    database=None,
)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=8), children, max_size=5)
    ),
    max_leaves=20,
)
hex_strings = st.binary(max_size=40).map(lambda data: "0x" + data.hex())
param_values = json_values | hex_strings | st.integers(min_value=-1, max_value=2**33)
method_names = st.sampled_from(TABLE.names()) | st.text(max_size=30)
requests = st.fixed_dictionaries(
    {"jsonrpc": st.just("2.0"), "method": method_names, "id": st.integers() | st.text(max_size=8)},
    optional={
        "params": st.lists(param_values, max_size=3) | st.dictionaries(st.text(max_size=8), param_values)
    },
)


def assert_well_formed(obj: Any, *, results_allowed: bool) -> None:
    assert isinstance(obj, dict), obj
    assert obj.get("jsonrpc") == "2.0" and "id" in obj, obj
    assert set(obj) in ({"jsonrpc", "id", "result"}, {"jsonrpc", "id", "error"}), obj
    if "result" in obj:
        assert results_allowed, obj
        return
    error = obj["error"]
    assert isinstance(error, dict) and set(error) <= {"code", "message", "data"}, error
    assert isinstance(error["code"], int) and isinstance(error["message"], str) and error["message"]
    assert error["code"] != INTERNAL_ERROR, obj


def check_answer(response: httpx.Response, *, results_allowed: bool = False) -> None:
    if 400 <= response.status_code < 500:
        return
    if response.status_code == 204:  # notifications only
        assert response.content == b""
        return
    assert response.status_code == 200, response
    answer = response.json()
    for obj in answer if isinstance(answer, list) else [answer]:
        assert_well_formed(obj, results_allowed=results_allowed)


async def run_property(server: Server, body: Any) -> None:
    def run() -> None:
        with httpx.Client(
            base_url=server.url, headers={"content-type": "application/json"}, timeout=10
        ) as http:
            body(http)

    await trio.to_thread.run_sync(run)


async def test_random_bytes(server: Server) -> None:
    def prop(http: httpx.Client) -> None:
        @SETTINGS
        @given(st.binary(max_size=300))
        def check(body: bytes) -> None:
            check_answer(http.post("/", content=body))

        check()

    await run_property(server, prop)


async def test_random_json(server: Server) -> None:
    def prop(http: httpx.Client) -> None:
        @SETTINGS
        @given(json_values | st.lists(json_values, max_size=4))
        def check(value: Any) -> None:
            # Random JSON can form a valid request only by luck; when it does, a result is fine.
            check_answer(http.post("/", content=json.dumps(value)), results_allowed=True)

        check()

    await run_property(server, prop)


async def test_request_shaped_bodies_never_hit_an_internal_error(server: Server) -> None:
    def prop(http: httpx.Client) -> None:
        @SETTINGS
        @given(requests | st.lists(requests, min_size=1, max_size=4))
        def check(value: Any) -> None:
            check_answer(http.post("/", content=json.dumps(value)), results_allowed=True)

        check()

    await run_property(server, prop)
