"""The wire: JSON-RPC 2.0 calls over HTTP (httpx) and subscriptions over a WebSocket (`websockets.sync`).

Everything a call can end in is an `RpcClientError` whose message is fit to show a person:
`RpcError` when the node answered with a JSON-RPC error (`code`, `message`, `data` as sent),
`NodeUnreachable` when nothing (or nothing speaking JSON-RPC) answered at the URL.
"""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI
from websockets.sync.client import ClientConnection, connect

__all__ = ["DEFAULT_URL", "NodeUnreachable", "RpcClientError", "RpcError", "Transport"]

DEFAULT_URL = "http://127.0.0.1:9944"
DEFAULT_TIMEOUT_S = 30.0
MAX_WS_MESSAGE_BYTES = 16 * 1024 * 1024


class RpcClientError(Exception):
    """Anything that kept a call from giving its result; the message is fit to show a person."""


class RpcError(RpcClientError):
    """The node answered with a JSON-RPC error object."""

    def __init__(self, code: int, message: str, data: Any = None) -> None:
        super().__init__(f"RPC error {code}: {message}" + (f" ({data})" if data is not None else ""))
        self.code = code
        self.message = message
        self.data = data


class NodeUnreachable(RpcClientError):
    """Nothing (or nothing speaking JSON-RPC) answered at the URL."""


def websocket_url(url: str) -> str:
    """The WebSocket URL of a node's HTTP URL: both are served on one port."""
    if url.startswith("https://"):
        return "wss://" + url[len("https://") :]
    if url.startswith("http://"):
        return "ws://" + url[len("http://") :]
    return url


class Transport:
    """JSON-RPC to one node: `call` over a kept-alive HTTP connection, `subscribe` over a WebSocket
    opened per subscription (a wallet holds at most one or two, briefly)."""

    def __init__(self, url: str = DEFAULT_URL, timeout: float = DEFAULT_TIMEOUT_S) -> None:
        self.url = url
        self.ws_url = websocket_url(url)
        self.timeout = timeout
        self._http = httpx.Client(timeout=timeout)
        self._ids = itertools.count(1)

    def close(self) -> None:
        self._http.close()

    def call(self, method: str, *params: Any) -> Any:
        """One JSON-RPC call over HTTP; returns `result` or raises `RpcClientError`."""
        request = {"jsonrpc": "2.0", "id": next(self._ids), "method": method, "params": list(params)}
        try:
            response = self._http.post(self.url, json=request)
        except httpx.InvalidURL as exc:
            raise NodeUnreachable(f"invalid node URL {self.url!r}: {exc}") from exc
        except httpx.HTTPError as exc:
            raise NodeUnreachable(
                f"cannot reach the imagechain node at {self.url}: {exc or type(exc).__name__}"
            ) from exc
        try:
            body = response.json()
        except ValueError:
            body = None
        if isinstance(body, dict) and isinstance(body.get("error"), dict):
            _raise_error(body["error"])
        if response.status_code != 200 or not isinstance(body, dict) or "result" not in body:
            raise NodeUnreachable(
                f"{self.url} did not answer as a JSON-RPC server (HTTP {response.status_code}) for {method}"
            )
        return body["result"]

    def subscribe(
        self, method: str, params: list[Any], notification: str, timeout: float | None
    ) -> Iterator[Any]:
        """Yield each notification's `result` for a subscription opened by `method`."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._open_websocket() as websocket:
            request_id = next(self._ids)
            websocket.send(
                json.dumps({"jsonrpc": "2.0", "id": request_id, "method": method, "params": params})
            )
            subscription: Any = None
            while True:
                remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
                try:
                    message = json.loads(websocket.recv(timeout=remaining))
                except TimeoutError as exc:
                    raise RpcClientError(
                        f"{method}: nothing heard from {self.ws_url} within {timeout} s"
                    ) from exc
                except ConnectionClosed as exc:
                    raise NodeUnreachable(f"{self.ws_url} closed the subscription connection: {exc}") from exc
                if not isinstance(message, dict):
                    continue
                if subscription is None and message.get("id") == request_id:
                    if isinstance(message.get("error"), dict):
                        _raise_error(message["error"])
                    subscription = message.get("result")
                    continue
                params_obj = message.get("params")
                if (
                    message.get("method") == notification
                    and isinstance(params_obj, dict)
                    and params_obj.get("subscription") == subscription
                ):
                    yield params_obj.get("result")

    def _open_websocket(self) -> ClientConnection:
        try:
            return connect(self.ws_url, open_timeout=self.timeout, max_size=MAX_WS_MESSAGE_BYTES)
        except (OSError, InvalidHandshake, InvalidURI, TimeoutError) as exc:
            raise NodeUnreachable(
                f"cannot open a WebSocket to the imagechain node at {self.ws_url}: {exc}"
            ) from exc


def _raise_error(error: dict[str, Any]) -> None:
    code = error.get("code")
    message = error.get("message")
    raise RpcError(
        code if isinstance(code, int) else 0, message if isinstance(message, str) else "", error.get("data")
    )
