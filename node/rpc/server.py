"""The JSON-RPC server: HTTP POST and WebSocket on one port, inside the node's `trio.run`.

Starlette routes the two transports; hypercorn's trio worker serves them, so the server is just
one more task in the node's nursery (`serve_rpc`) and stops when the node stops. Both transports
hand each message to the same `Dispatcher`; what differs is around it:

* HTTP: one request body in, one response out. The body is read in chunks and refused with
  413 as soon as it passes the limit, before it is all in memory. Only `application/json` is
  accepted (as Substrate's server does), which also keeps browsers from posting to a local node
  from another site without a CORS preflight.
* WebSocket: each connection is a `WebSocketSession` with its own nursery: the reader loop, one
  writer that owns the socket's sends, and one task per subscription forwarding items from a
  node channel into the writer's bounded queue. When the socket closes, the nursery is
  cancelled and every subscription releases its node channel on the way out, so a client that
  vanishes leaves nothing behind.

Around both, the server's limits (`RpcLimits`, `node.rpc.limits`): the `Origin` of browser
requests (`--rpc-cors`, `node.rpc.origins`), connections in total and per IP address and the
call rate (`node.rpc.admission`), the bytes of answers (`node.rpc.budget`), subscriptions per
connection and in total, and image jobs (`node.rpc.image_jobs`). Every refusal is a JSON-RPC
error and a log line naming the client (`LimitLog`).

The methods see the node as `RpcNode`: chain reads, the pool, the notifier, transaction
submission, and the network status and operator controls. The image gateway and uploads
(`node.rpc.gateway`) share the port and the same limits.
"""

from __future__ import annotations

import functools
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
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import ClientDisconnect, HTTPConnection, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket

from node.rpc.admission import ConnectionGate, LimitLog, RateLimit, RateLimits
from node.rpc.budget import ResponseBudget, ResponseMemory
from node.rpc.errors import (
    INVALID_REQUEST,
    ORIGIN_NOT_ALLOWED,
    OVERSIZED_REQUEST,
    SERVER_IS_BUSY,
    TOO_MANY_SUBSCRIPTIONS,
    RpcError,
)
from node.rpc.gateway import gateway_routes
from node.rpc.image_jobs import ImageJobs
from node.rpc.jsonrpc import JSON, CallContext, Dispatcher, error_response
from node.rpc.limits import RpcLimits
from node.rpc.methods import TABLE
from node.rpc.methods.substrate import system_health
from node.rpc.origins import OriginPolicy

if TYPE_CHECKING:  # types only: the server does not depend on how the node is built
    from node.chain_spec import ChainSpec
    from node.core.chain import Chain
    from node.core.network_service import NodeNetwork
    from node.core.node import NodeConfig
    from node.core.notifier import Notifier
    from node.core.txpool import TxPool

__all__ = ["RpcLimits", "RpcNode", "ServerState", "build_app", "serve_rpc"]

log = logging.getLogger("node.rpc")

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 9944

WS_CLOSE_POLICY_VIOLATION = 1008
WS_CLOSE_MESSAGE_TOO_BIG = 1009
# How long a closing WebSocket may take to send its close frame before it is simply dropped.
WS_CLOSE_GRACE_S = 2.0


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


class ServerState:
    """What every connection of one server shares: its limits and the counts they bound."""

    def __init__(self, limits: RpcLimits) -> None:
        self.limits = limits
        self.origins = OriginPolicy(limits.cors)
        self.gate = ConnectionGate(limits.max_connections, limits.max_connections_per_ip)
        self.memory = ResponseMemory(limits.max_buffered_response_bytes)
        self.image_jobs = ImageJobs(limits.max_image_jobs, limits.max_image_pixels)
        self.http_rates = (
            RateLimits(limits.rate_limit_per_minute) if limits.rate_limit_per_minute is not None else None
        )
        self.limits_log = LimitLog(log)
        self.subscriptions = 0  # live, over every connection
        # The last item each render function turned into JSON text: a new head goes to every
        # subscriber, and is rendered once for all of them.
        self.rendered: dict[Callable[[Any], JSON], tuple[Any, str]] = {}

    def budget(self) -> ResponseBudget:
        return ResponseBudget(self.limits.max_response_bytes, self.memory)

    def render(self, render: Callable[[Any], JSON], item: Any) -> str:
        cached = self.rendered.get(render)
        if cached is not None and cached[0] is item:
            return cached[1]
        text = json.dumps(render(item), separators=(",", ":"), allow_nan=False)
        self.rendered[render] = (item, text)
        return text


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

    @functools.cached_property
    def prefix(self) -> str:
        """A notification's text up to its result (each notification adds the result and "}}")."""
        return (
            '{"jsonrpc":"2.0","method":' + json.dumps(self.notification)
            + ',"params":{"subscription":' + json.dumps(self.id) + ',"result":'
        )

    def close(self) -> None:
        """Give the node channel back, exactly once, whichever way the subscription ended."""
        if not self._released:
            self._released = True
            try:
                self.release()
            except Exception:  # a failing release must not take the connection down with it
                log.exception("releasing subscription %s failed", self.id)


class WebSocketSession:
    """One WebSocket connection: one writer owns the socket, subscriptions run in `nursery`.

    Everything sent goes through a queue of `message_buffer_capacity` messages. Answers wait for
    room in it, so a client that does not read its answers stops being read (backpressure).
    Notifications wait too, but not for long: a subscriber that leaves the queue full for
    `slow_subscriber_timeout_s` is disconnected with 1008 and its subscriptions are released at
    once, rather than buffered for without bound.
    """

    def __init__(self, websocket: WebSocket, nursery: trio.Nursery, state: ServerState, client: str) -> None:
        self._websocket = websocket
        self._nursery = nursery
        self._state = state
        self._limits = state.limits
        self.client = client
        self._subscriptions: dict[str, _Subscription] = {}
        self._pending: list[_Subscription] = []
        self._outbox, self._queued = trio.open_memory_channel[tuple[str, ResponseBudget | None]](
            self._limits.message_buffer_capacity
        )
        self._close_code: int | None = None
        self._close_reason = ""
        self.writer_done = trio.Event()
        self.read_scope = trio.CancelScope()  # the read loop's: cancelled when the session closes

    @property
    def closing(self) -> bool:
        return self._close_code is not None

    async def send(self, text: str, budget: ResponseBudget | None = None) -> bool:
        """Queue an answer, waiting for room; False if the session is closing (the budget is
        then released here, else by the writer once the answer is sent)."""
        try:
            await self._outbox.send((text, budget))
            return True
        except (trio.ClosedResourceError, trio.BrokenResourceError):
            if budget is not None:
                budget.release()
            return False
        except BaseException:  # cancelled while waiting: the answer was not queued
            if budget is not None:
                budget.release()
            raise

    def close(self, code: int, reason: str = "") -> None:
        """End the session with `code`: subscriptions stop and are released now, the writer
        drops what is queued and sends the close frame; `run` drops the connection if that
        takes longer than WS_CLOSE_GRACE_S."""
        if self._close_code is not None:
            return
        self._close_code, self._close_reason = code, reason
        self.close_all()
        self._outbox.close()
        self.read_scope.cancel()

    async def run_writer(self) -> None:
        """Send what is queued, in order; then the close frame if one was asked for. Ends the
        session when it ends (the socket is gone, or closed).

        A send to a client that does not read waits until it reads or goes away: hypercorn
        shields its socket writes from cancellation. What such a client holds is this one
        message and the queue; its subscriptions are released as soon as the queue is full.
        """
        try:
            async for text, budget in self._queued:
                try:
                    if self._close_code is None:
                        await self._websocket.send_text(text)
                finally:
                    if budget is not None:
                        budget.release()
            if self._close_code is not None:
                await self._websocket.close(self._close_code, self._close_reason)
        except Exception:  # WebSocketDisconnect, RuntimeError after close, OSError: all mean "gone"
            pass
        finally:
            self._drop_queued()
            self.writer_done.set()
            self._nursery.cancel_scope.cancel()

    def _drop_queued(self) -> None:
        """Give back the bytes of answers that will not be sent now."""
        while True:
            try:
                _, budget = self._queued.receive_nowait()
            except (trio.WouldBlock, trio.EndOfChannel, trio.ClosedResourceError):
                return
            if budget is not None:
                budget.release()

    # -- the Session protocol that methods use ------------------------------------------------

    def ensure_capacity(self) -> None:
        limits = self._limits
        if len(self._subscriptions) >= limits.max_subscriptions_per_connection:
            self._state.limits_log.refused(
                "subscription", self.client, f"{len(self._subscriptions)} open on the connection"
            )
            raise RpcError(
                TOO_MANY_SUBSCRIPTIONS,
                data=f"the limit is {limits.max_subscriptions_per_connection} per connection",
            )
        if self._state.subscriptions >= limits.max_subscriptions:
            self._state.limits_log.refused(
                "subscription", self.client, f"{self._state.subscriptions} open on the node"
            )
            raise RpcError(
                TOO_MANY_SUBSCRIPTIONS,
                "Too many subscriptions on the node",
                f"the node serves at most {limits.max_subscriptions} subscriptions",
            )
        if self.closing:
            raise RpcError(SERVER_IS_BUSY, data="the connection is closing")

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
        state = self._state

        def release_slot() -> None:
            state.subscriptions -= 1
            release()

        subscription = _Subscription(
            subscription_id, notification, source, render, release_slot, initial, is_final
        )
        state.subscriptions += 1
        self._subscriptions[subscription_id] = subscription
        # Started only after the response carrying the id has been queued (`start_pending`), so
        # a client never sees a notification for a subscription it has not been told about.
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
        """Queue one notification, waiting for room; a client that leaves the queue full for
        `slow_subscriber_timeout_s` is disconnected (1008), its subscriptions released.

        Waiting (rather than failing at once) lets the bursts the server makes itself, such as
        the first head of 256 subscriptions opened in one batch, drain at the socket's pace;
        meanwhile the node's own channel keeps what is still to come.
        """
        if self.closing:
            return
        try:
            result = self._state.render(subscription.render, item)
        except Exception:
            log.exception("could not render a %s notification", subscription.notification)
            return
        message = subscription.prefix + result + "}}"
        try:
            self._outbox.send_nowait((message, None))  # the usual case: room in the queue
            return
        except trio.WouldBlock:
            pass
        except (trio.ClosedResourceError, trio.BrokenResourceError):
            return
        timeout_s = self._limits.slow_subscriber_timeout_s
        try:
            with trio.move_on_after(timeout_s) as waited:
                await self._outbox.send((message, None))
        except (trio.ClosedResourceError, trio.BrokenResourceError):
            return
        if waited.cancelled_caught:
            capacity = self._limits.message_buffer_capacity
            detail = f"{capacity} messages unread for {timeout_s:g} s; disconnected (1008)"
            self._state.limits_log.refused("slow subscriber", self.client, detail)
            self.close(WS_CLOSE_POLICY_VIOLATION, f"too slow: {capacity} messages unread for {timeout_s:g} s")


# ---------------------------------------------------------------------------------------------
# The ASGI application
# ---------------------------------------------------------------------------------------------


def _json_error(status: int, error: RpcError, headers: dict[str, str] | None = None) -> Response:
    return Response(error_response(error), status_code=status, media_type="application/json", headers=headers)


def _is_json_content_type(value: str) -> bool:
    return value.split(";", 1)[0].strip().lower() == "application/json"


def _client(connection: HTTPConnection) -> tuple[str, str]:
    """(IP address, "ip:port") of the peer, as the ASGI server saw it."""
    if connection.client is None:
        return "unknown", "unknown"
    host, port = connection.client.host, connection.client.port
    return host, (f"[{host}]:{port}" if ":" in host else f"{host}:{port}")


class _Answer(Response):
    """A response that calls `finished` once it has been sent, or has failed to be: the HTTP
    request holds its connection slot and its answer's bytes until then."""

    def __init__(
        self, finished: Callable[[], None], body: str | None = None, status_code: int = 200
    ) -> None:
        self._finished = finished
        super().__init__(body, status_code=status_code, media_type="application/json")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._finished()


def build_app(node: RpcNode, limits: RpcLimits | None = None, state: ServerState | None = None) -> Starlette:
    """The Starlette app serving `node` (separate from `serve_rpc` so tests can mount it anywhere).

    `state` (made from `limits` if not given) holds the live counts; tests read them.
    """
    if state is None:
        state = ServerState(limits or RpcLimits())
    limits = state.limits
    dispatcher = Dispatcher(
        TABLE,
        max_batch_len=limits.max_batch_len,
        max_response_bytes=limits.max_response_bytes,
        limits_log=state.limits_log,
        call_slots=trio.CapacityLimiter(limits.calls_at_once),
    )

    def origin_refused(connection: HTTPConnection, client: str) -> RpcError | None:
        origin = connection.headers.get("origin")
        if state.origins.allows(origin):
            return None
        state.limits_log.refused("origin", client, f"{origin!r} is not allowed by --rpc-cors")
        return RpcError(ORIGIN_NOT_ALLOWED, data=f"{origin} is not allowed (--rpc-cors)")

    def connection_refused(ip: str, client: str) -> RpcError | None:
        reason = state.gate.refusal(ip)
        if reason is None:
            return None
        state.limits_log.refused("connection", client, reason)
        return RpcError(SERVER_IS_BUSY, data=reason)

    async def http_rpc(request: Request) -> Response:
        ip, client = _client(request)
        refused = origin_refused(request, client)
        if refused is not None:
            return _json_error(403, refused)
        if not _is_json_content_type(request.headers.get("content-type", "")):
            return _json_error(415, RpcError(INVALID_REQUEST, "Supplied content type is not allowed"))
        refused = connection_refused(ip, client)
        if refused is not None:
            return _json_error(429, refused, {"Retry-After": "1"})
        budget = state.budget()
        state.gate.enter(ip)

        def finished() -> None:
            budget.release()
            state.gate.leave(ip)

        too_big = RpcError(OVERSIZED_REQUEST, data=f"the limit is {limits.max_request_bytes} bytes")
        try:
            declared = request.headers.get("content-length")
            if declared is not None and (not declared.isdigit() or int(declared) > limits.max_request_bytes):
                state.limits_log.refused("request", client, f"Content-Length {declared}")
                return _Answer(finished, error_response(too_big), 413)
            body = bytearray()
            try:
                async for chunk in request.stream():
                    body += chunk
                    if len(body) > limits.max_request_bytes:
                        state.limits_log.refused("request", client, f"body past {limits.max_request_bytes} bytes")
                        return _Answer(finished, error_response(too_big), 413)
            except ClientDisconnect:
                finished()
                return Response(status_code=400)
            rate = state.http_rates.of(ip) if state.http_rates is not None else None
            context = CallContext(node, client=client, rate=rate, image_jobs=state.image_jobs)
            answer = await dispatcher.handle(bytes(body), context, budget)
            # None: only notifications, nothing to say
            return _Answer(finished, answer, 200 if answer is not None else 204)
        except BaseException:
            finished()
            raise

    async def websocket_rpc(websocket: WebSocket) -> None:
        ip, client = _client(websocket)
        refused = origin_refused(websocket, client)
        if refused is not None:
            await websocket.send_denial_response(_json_error(403, refused))
            return
        refused = connection_refused(ip, client)
        if refused is not None:
            # Refused during the handshake: each session holds subscriptions and node channels.
            await websocket.send_denial_response(_json_error(429, refused, {"Retry-After": "1"}))
            return
        with state.gate.hold(ip):
            await websocket.accept()
            async with trio.open_nursery() as nursery:
                session = WebSocketSession(websocket, nursery, state, client)
                nursery.start_soon(session.run_writer)
                try:
                    with session.read_scope:
                        await _read_loop(websocket, session, dispatcher, node, state)
                finally:
                    session.close_all()
                    if session.closing:  # let the writer send the close frame, briefly
                        with trio.move_on_after(WS_CLOSE_GRACE_S):
                            await session.writer_done.wait()
                    nursery.cancel_scope.cancel()

    async def health(request: Request) -> Response:
        """Substrate's `GET /health`: system_health as plain JSON, for load balancers and probes."""
        return JSONResponse(await system_health(CallContext(node)))

    async def readiness(request: Request) -> Response:
        """Substrate's `GET /health/readiness`: 200 when synced and connected as it should be."""
        status = await system_health(CallContext(node))
        ready = not status["isSyncing"] and (status["peers"] > 0 or not status["shouldHavePeers"])
        return Response(status_code=200 if ready else 500)

    cors = Middleware(
        _CorsForBrowsers,  # type: ignore[arg-type]  # Starlette's factory typing
        allow_origins=["*"] if state.origins.allows_all else [],
        allow_origin_regex=state.origins.regex,
        allow_methods=["GET", "POST", "PUT"],  # PUT: blob uploads (`node.rpc.gateway`)
        allow_headers=["content-type", "range", "if-none-match", "if-range"],
        expose_headers=["etag", "content-range", "accept-ranges", "content-length"],
        allow_private_network=True,  # the origins allowed may reach a node on a private address
    )
    return Starlette(
        routes=[
            Route("/", http_rpc, methods=["POST"]),
            WebSocketRoute("/", websocket_rpc),
            Route("/health", health, methods=["GET"]),
            Route("/health/readiness", readiness, methods=["GET"]),
            *gateway_routes(node, state),  # PUT /blob, GET /blob/<root>, /img/<id>: the image gateway
        ],
        middleware=[cors],
    )


class _CorsForBrowsers(CORSMiddleware):
    """Starlette's CORS handling, skipped for requests without an `Origin` header: those are not
    from a browser (wallets, the CLI, other nodes' tools) and need no CORS headers, and most
    requests are such."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and any(name == b"origin" for name, _ in scope["headers"]):
            await super().__call__(scope, receive, send)
        else:
            await self.app(scope, receive, send)


async def _read_loop(
    websocket: WebSocket, session: WebSocketSession, dispatcher: Dispatcher, node: RpcNode, state: ServerState
) -> None:
    """Answer each message in turn until the client goes away, breaks a limit, or is closed."""
    limits = state.limits
    rate = RateLimit(limits.rate_limit_per_minute) if limits.rate_limit_per_minute is not None else None
    context = CallContext(node, session, client=session.client, rate=rate, image_jobs=state.image_jobs)
    while not session.closing:
        message = await websocket.receive()
        if message["type"] == "websocket.disconnect":
            return
        payload: str | bytes | None = message.get("text")
        if payload is None:
            payload = message.get("bytes") or b""
        if len(payload) > limits.max_request_bytes:
            state.limits_log.refused("request", session.client, f"a {len(payload)}-byte WebSocket message")
            session.close(WS_CLOSE_MESSAGE_TOO_BIG)
            return
        budget = state.budget()
        try:
            answer = await dispatcher.handle(payload, context, budget)
        except BaseException:
            budget.release()
            raise
        if answer is None:
            budget.release()
        elif not await session.send(answer, budget):
            return
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
    state: ServerState | None = None,
    task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve JSON-RPC for `node` until cancelled; reports the bound port (useful with port 0).

    The limits are `state`'s, else `limits`, else the node's `config.rpc_limits`, else the
    defaults.
    """
    if state is None:
        state = ServerState(limits or getattr(node.config, "rpc_limits", None) or RpcLimits())
    limits = state.limits
    if limits.cors is None:
        log.info("RPC CORS is off (--rpc-cors all, or --dev): pages from any site may call this node")
    config = Config()
    config.bind = [_bind_address(host, port)]
    config.accesslog = None
    config.errorlog = _http_log()
    config.include_server_header = False
    # hypercorn closes a connection with 1009 itself when one message passes this size.
    config.websocket_max_message_size = limits.max_request_bytes
    app = build_app(node, state=state)
    async with trio.open_nursery() as nursery:
        binds: list[str] = await nursery.start(serve, app, config)
        bound_port = urlsplit(binds[0]).port
        assert bound_port is not None
        task_status.started(bound_port)
