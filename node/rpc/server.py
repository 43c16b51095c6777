"""The JSON-RPC server: HTTP POST and WebSocket on one port, inside the node's `trio.run`.

Starlette routes the two transports; hypercorn's trio worker serves them, so the server is just
one more task in the node's nursery (`serve_rpc`) and stops when the node stops. Both transports
hand each message to the same `Dispatcher`; what differs is around it:

* HTTP: one request body in, one response out. The body is read in chunks and refused with
  413 as soon as it passes the limit, before it is all in memory. Only `application/json` is
  accepted (as Substrate's server does), which also keeps browsers from posting to a local node
  from another site without a CORS preflight.
* WebSocket: each connection is a `WebSocketSession` with its own nursery: the reader loop, and
  one task per subscription forwarding items from a node channel. When the socket closes, the
  nursery is cancelled and every subscription releases its node channel on the way out, so a
  client that vanishes leaves nothing behind.

The methods see the node as `RpcNode`: chain reads, the pool, the notifier, transaction
submission, and the network status and operator controls.
"""

from __future__ import annotations

import json
import logging
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import urlsplit

import trio
from hypercorn.config import Config
from hypercorn.trio import serve
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket

from node.rpc.errors import INVALID_REQUEST, OVERSIZED_REQUEST, TOO_MANY_SUBSCRIPTIONS, RpcError
from node.rpc.jsonrpc import JSON, CallContext, Dispatcher, error_response
from node.rpc.methods import TABLE
from node.rpc.methods.substrate import system_health

if TYPE_CHECKING:  # types only: the server does not depend on how the node is built
    from node.chain_spec import ChainSpec
    from node.core.chain import Chain
    from node.core.network_service import NodeNetwork
    from node.core.node import NodeConfig
    from node.core.notifier import Notifier
    from node.core.txpool import TxPool

log = logging.getLogger("node.rpc")

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 9944

WS_CLOSE_MESSAGE_TOO_BIG = 1009
WS_CLOSE_TRY_AGAIN_LATER = 1013


class RpcNode(Protocol):
    """What the RPC methods read and call on the node (`Node`).

    Reads go to the chain, the pool and the notifier directly; writes go through
    `submit_extrinsic`, the entry the network uses too. `network` is None without networking;
    `config.rpc_unsafe` decides whether operator methods are served.
    """

    name: str
    version: str
    spec: ChainSpec
    config: NodeConfig
    genesis_hash: bytes
    chain: Chain
    pool: TxPool
    notifier: Notifier
    network: NodeNetwork | None

    def submit_extrinsic(self, encoded: bytes, from_network: bool = False) -> bytes: ...

    def next_nonce(self, account_id: bytes) -> int: ...

    def peers(self) -> list[dict[str, Any]]: ...

    def is_syncing(self) -> bool: ...

    def sync_state(self) -> dict[str, int]: ...


@dataclass(frozen=True)
class RpcLimits:
    """Bounds on what one client can make the server hold or do (jsonrpsee's defaults, mostly)."""

    max_request_bytes: int = 10 * 1024 * 1024
    max_ws_message_bytes: int = 10 * 1024 * 1024
    max_batch_len: int = 1000
    max_subscriptions_per_connection: int = 1024
    max_ws_connections: int = 100


# ---------------------------------------------------------------------------------------------
# WebSocket sessions and subscriptions
# ---------------------------------------------------------------------------------------------


@dataclass(eq=False)
class _Subscription:
    id: str
    notification: str
    source: trio.MemoryReceiveChannel[Any]
    render: Callable[[Any], JSON]
    release: Callable[[], None]
    initial: Sequence[Any]
    is_final: Callable[[Any], bool] | None
    cancel_scope: trio.CancelScope = field(default_factory=trio.CancelScope)
    _released: bool = False

    def close(self) -> None:
        """Give the node channel back, exactly once, whichever way the subscription ended."""
        if not self._released:
            self._released = True
            try:
                self.release()
            except Exception:  # a failing release must not take the connection down with it
                log.exception("releasing subscription %s failed", self.id)


class WebSocketSession:
    """One WebSocket connection: sends are serialised, subscriptions run in `nursery`."""

    def __init__(self, websocket: WebSocket, nursery: trio.Nursery, limits: RpcLimits) -> None:
        self._websocket = websocket
        self._nursery = nursery
        self._limits = limits
        self._send_lock = trio.Lock()
        self._subscriptions: dict[str, _Subscription] = {}
        self._pending: list[_Subscription] = []

    async def send(self, text: str) -> None:
        """Send one message; if the socket is gone, end the whole session instead of raising."""
        try:
            async with self._send_lock:
                await self._websocket.send_text(text)
        except Exception:  # WebSocketDisconnect, RuntimeError after close, OSError: all mean "gone"
            self._nursery.cancel_scope.cancel()

    async def close(self, code: int) -> None:
        """Close the socket with `code` (best effort: the peer may already be gone)."""
        try:
            async with self._send_lock:
                await self._websocket.close(code)
        except Exception:  # already closed from the other side: nothing left to tell it
            pass
        self._nursery.cancel_scope.cancel()

    # -- the Session protocol that methods use ------------------------------------------------

    def ensure_capacity(self) -> None:
        if len(self._subscriptions) >= self._limits.max_subscriptions_per_connection:
            raise RpcError(
                TOO_MANY_SUBSCRIPTIONS, data=f"the limit is {self._limits.max_subscriptions_per_connection}"
            )

    def subscribe(
        self,
        notification: str,
        source: trio.MemoryReceiveChannel[Any],
        render: Callable[[Any], JSON],
        *,
        release: Callable[[], None],
        initial: Sequence[Any] = (),
        is_final: Callable[[Any], bool] | None = None,
    ) -> str:
        try:
            self.ensure_capacity()
        except RpcError:
            release()
            raise
        subscription_id = secrets.token_hex(8)
        while subscription_id in self._subscriptions:
            subscription_id = secrets.token_hex(8)
        subscription = _Subscription(
            subscription_id, notification, source, render, release, initial, is_final
        )
        self._subscriptions[subscription_id] = subscription
        # Started only after the response carrying the id has been sent (`start_pending`), so a
        # client never sees a notification for a subscription it has not been told about.
        self._pending.append(subscription)
        return subscription_id

    def unsubscribe(self, notification: str, subscription_id: str) -> bool:
        subscription = self._subscriptions.get(subscription_id)
        if subscription is None or subscription.notification != notification:
            return False
        del self._subscriptions[subscription_id]
        subscription.cancel_scope.cancel()
        if subscription in self._pending:
            self._pending.remove(subscription)
            subscription.close()
        return True

    # -- running --------------------------------------------------------------------------------

    def start_pending(self) -> None:
        for subscription in self._pending:
            self._nursery.start_soon(self._forward, subscription)
        self._pending.clear()

    def close_all(self) -> None:
        """Release every subscription (the connection is ending)."""
        for subscription in list(self._subscriptions.values()):
            subscription.cancel_scope.cancel()
            subscription.close()
        self._subscriptions.clear()
        self._pending.clear()

    async def _forward(self, subscription: _Subscription) -> None:
        try:
            with subscription.cancel_scope:
                for item in subscription.initial:
                    await self._notify(subscription, item)
                async for item in subscription.source:
                    await self._notify(subscription, item)
                    if subscription.is_final is not None and subscription.is_final(item):
                        break
        finally:
            self._subscriptions.pop(subscription.id, None)
            subscription.close()

    async def _notify(self, subscription: _Subscription, item: Any) -> None:
        try:
            result = subscription.render(item)
            message = _dumps_notification(subscription.notification, subscription.id, result)
        except Exception:
            log.exception("could not render a %s notification", subscription.notification)
            return
        await self.send(message)


def _dumps_notification(method: str, subscription_id: str, result: JSON) -> str:
    params = {"subscription": subscription_id, "result": result}
    return json.dumps(
        {"jsonrpc": "2.0", "method": method, "params": params}, separators=(",", ":"), allow_nan=False
    )


# ---------------------------------------------------------------------------------------------
# The ASGI application
# ---------------------------------------------------------------------------------------------


def _json_error(status: int, error: RpcError) -> Response:
    return Response(error_response(error), status_code=status, media_type="application/json")


def _is_json_content_type(value: str) -> bool:
    return value.split(";", 1)[0].strip().lower() == "application/json"


def build_app(node: RpcNode, limits: RpcLimits | None = None) -> Starlette:
    """The Starlette app serving `node` (separate from `serve_rpc` so tests can mount it anywhere)."""
    limits = limits or RpcLimits()
    dispatcher = Dispatcher(TABLE, max_batch_len=limits.max_batch_len)

    async def http_rpc(request: Request) -> Response:
        if not _is_json_content_type(request.headers.get("content-type", "")):
            return _json_error(415, RpcError(INVALID_REQUEST, "Supplied content type is not allowed"))
        too_big = RpcError(OVERSIZED_REQUEST, data=f"the limit is {limits.max_request_bytes} bytes")
        declared = request.headers.get("content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > limits.max_request_bytes):
            return _json_error(413, too_big)
        body = bytearray()
        try:
            async for chunk in request.stream():
                body += chunk
                if len(body) > limits.max_request_bytes:
                    return _json_error(413, too_big)
        except ClientDisconnect:
            return Response(status_code=400)
        answer = await dispatcher.handle(bytes(body), CallContext(node))
        if answer is None:  # only notifications: nothing to say
            return Response(status_code=204)
        return Response(answer, media_type="application/json")

    open_sessions = 0

    async def websocket_rpc(websocket: WebSocket) -> None:
        nonlocal open_sessions
        if open_sessions >= limits.max_ws_connections:
            # Refused during the handshake (the client sees HTTP 403): each session holds
            # subscriptions and node channels, so their number is bounded like jsonrpsee's.
            await websocket.close(WS_CLOSE_TRY_AGAIN_LATER)
            return
        open_sessions += 1
        try:
            await websocket.accept()
            async with trio.open_nursery() as nursery:
                session = WebSocketSession(websocket, nursery, limits)
                try:
                    await _read_loop(websocket, session, dispatcher, node, limits)
                finally:
                    session.close_all()
                    nursery.cancel_scope.cancel()
        finally:
            open_sessions -= 1

    async def health(request: Request) -> Response:
        """Substrate's `GET /health`: system_health as plain JSON, for load balancers and probes."""
        return JSONResponse(await system_health(CallContext(node)))

    async def readiness(request: Request) -> Response:
        """Substrate's `GET /health/readiness`: 200 when synced and connected as it should be."""
        status = await system_health(CallContext(node))
        ready = not status["isSyncing"] and (status["peers"] > 0 or not status["shouldHavePeers"])
        return Response(status_code=200 if ready else 500)

    return Starlette(
        routes=[
            Route("/", http_rpc, methods=["POST"]),
            WebSocketRoute("/", websocket_rpc),
            Route("/health", health, methods=["GET"]),
            Route("/health/readiness", readiness, methods=["GET"]),
        ]
    )


async def _read_loop(
    websocket: WebSocket, session: WebSocketSession, dispatcher: Dispatcher, node: RpcNode, limits: RpcLimits
) -> None:
    """Answer each message in turn until the client goes away or breaks a limit."""
    context = CallContext(node, session)
    while True:
        message = await websocket.receive()
        if message["type"] == "websocket.disconnect":
            return
        payload: str | bytes | None = message.get("text")
        if payload is None:
            payload = message.get("bytes") or b""
        if len(payload) > limits.max_ws_message_bytes:
            await session.close(WS_CLOSE_MESSAGE_TOO_BIG)
            return
        answer = await dispatcher.handle(payload, context)
        if answer is not None:
            await session.send(answer)
        session.start_pending()


# ---------------------------------------------------------------------------------------------
# Serving
# ---------------------------------------------------------------------------------------------


class _WithoutBanner(logging.Filter):
    """Drop hypercorn's "Running on ... (CTRL + C to quit)": the node logs its own line."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("Running on")


def _http_log() -> logging.Logger:
    logger = logging.getLogger("node.rpc.http")
    if not any(isinstance(existing, _WithoutBanner) for existing in logger.filters):
        logger.addFilter(_WithoutBanner())
    return logger


def _bind_address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


async def serve_rpc(
    node: RpcNode,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    *,
    limits: RpcLimits | None = None,
    task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve JSON-RPC for `node` until cancelled; reports the bound port (useful with port 0)."""
    limits = limits or RpcLimits()
    config = Config()
    config.bind = [_bind_address(host, port)]
    config.accesslog = None
    config.errorlog = _http_log()
    config.include_server_header = False
    # hypercorn closes a connection with 1009 itself when one message passes this size.
    config.websocket_max_message_size = limits.max_ws_message_bytes
    app = build_app(node, limits)
    async with trio.open_nursery() as nursery:
        binds: list[str] = await nursery.start(serve, app, config)
        bound_port = urlsplit(binds[0]).port
        assert bound_port is not None
        task_status.started(bound_port)
