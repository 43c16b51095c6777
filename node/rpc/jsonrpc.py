"""A JSON-RPC 2.0 dispatcher: request text in, response text out, for HTTP and WebSocket alike.

Written here rather than taken from a library because the libraries either run only on asyncio
(jsonrpcserver gathers batches with `asyncio.gather`) or bring a web framework of their own; the
node runs everything under trio. The rules followed, from https://www.jsonrpc.org/specification:

* A request is an object with `"jsonrpc": "2.0"`, a string `method`, optional `params` (an array
  for positional, an object for named parameters) and an optional `id` (string, number or null).
  Without an `id` it is a notification: it is run, and nothing is answered, not even an error.
* A batch is a non-empty array of requests, answered by an array of the responses that are due
  (none at all if every member was a notification). An empty array is one invalid request.
* Unparseable text is -32700 with `id: null`; a request of the wrong shape is -32600, with its id
  when the id itself could be read; an unknown method -32601; wrong parameters -32602; a bug in
  a method -32603, whose traceback goes to the log and never to the caller.

`handle` never raises for any input (only trio's cancellation passes through): a server that can
be crashed by a request body is a denial-of-service hole. Nor may a body make it work or hold
much more than its own size: the number of JSON values is bounded before parsing (10 MiB of
`[{},{},...]` would be ~3.5 million dicts), answers are counted against a `ResponseBudget` as
they are built (a batch stops at the first one past it), and the members of a batch yield to the
node's other tasks between them, so a batch of slow reads cannot hold back block authoring.

Methods are plain `async def` functions whose parameters are typed with `Annotated[T, ParamType]`
(see `ParamType`); the table reads those annotations once, at registration, and from then on
checks and converts every call's parameters before the method body runs.
"""

from __future__ import annotations

import inspect
import json
import logging
import types
import typing
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, Any, Protocol

import trio

from node.rpc.budget import ResponseBudget
from node.rpc.errors import (
    INTERNAL_ERROR,
    INVALID_REQUEST,
    METHOD_NOT_FOUND,
    OVERSIZED_REQUEST,
    OVERSIZED_RESPONSE,
    PARSE_ERROR,
    SERVER_IS_BUSY,
    SUBSCRIPTION_NEEDS_WEBSOCKET,
    TOO_BIG_BATCH,
    TOO_BIG_BATCH_RESPONSE,
    RpcError,
    invalid_params,
)

if TYPE_CHECKING:
    from node.rpc.admission import LimitLog, RateLimit
    from node.rpc.image_jobs import ImageJobs

log = logging.getLogger("node.rpc")

JSON = Any
DEFAULT_MAX_BATCH_LEN = 1000
DEFAULT_MAX_RESPONSE_BYTES = 10 * 1024 * 1024
# JSON values (objects, arrays, and members counted by their commas) in one body. A batch of
# 1,000 requests with a dozen values each uses 12,000; a 1,000-key `state_getReadProof` 1,000.
MAX_JSON_VALUES = 200_000


# ---------------------------------------------------------------------------------------------
# What a method sees of its caller
# ---------------------------------------------------------------------------------------------


class Session(Protocol):
    """A WebSocket connection, seen from a subscription method (`server.WebSocketSession`)."""

    def ensure_capacity(self) -> None:
        """Raise `RpcError(TOO_MANY_SUBSCRIPTIONS)` if one more subscription would exceed the limit."""

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
        """Forward `initial`, then every item of `source`, as `notification`s; returns the id."""

    def unsubscribe(self, notification: str, subscription_id: str) -> bool:
        """Stop a subscription of this kind on this connection; False if there is none."""


@dataclass
class CallContext:
    """Passed to every method: the node, the WebSocket session (None over HTTP), and the caller.

    `client` names the caller in logs ("ip:port"); `rate` is its connection's call rate limit
    (None: unlimited); `image_jobs` is the server's pool of image worker slots.
    """

    node: Any
    session: Session | None = None
    client: str = "local"
    rate: RateLimit | None = None
    image_jobs: ImageJobs | None = None


# ---------------------------------------------------------------------------------------------
# Typed parameters
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)  # compared by identity: typing hashes Annotated metadata
class ParamType:
    """How to read one JSON parameter: `parse` converts it (or raises ValueError/TypeError with a
    message for the caller) and `schema` describes what it accepts, for `rpc.discover`."""

    parse: Callable[[JSON], Any]
    schema: dict[str, Any]


_MISSING: Any = object()  # a parameter the call did not give (JSON has no "undefined")


@dataclass(frozen=True)
class Param:
    name: str
    type: ParamType
    required: bool
    default: Any = None


@dataclass(frozen=True)
class Method:
    name: str
    handler: Callable[..., Awaitable[JSON]]
    params: tuple[Param, ...]
    summary: str
    result_schema: dict[str, Any]
    websocket_only: bool = False
    # Does its heavy work in a worker thread and waits for it (`copyright_verifyImage`): it runs
    # without taking one of the dispatcher's call slots, which it would hold idle meanwhile.
    off_loop: bool = False

    def bind(self, params: JSON) -> list[Any]:
        """Check positional or named `params` against the signature and convert each one.

        A JSON `null` for an optional parameter means "not given", as Substrate reads it, so
        `chain_getHeader([null])` and `chain_getHeader([])` are the same call.
        """
        given: list[Any]
        if params is None:
            given = []
        elif isinstance(params, list):
            if len(params) > len(self.params):
                raise invalid_params(
                    f"{self.name} takes at most {len(self.params)} parameters, got {len(params)}"
                )
            given = list(params)
        else:
            unknown = sorted(set(params) - {p.name for p in self.params})
            if unknown:
                raise invalid_params(f"{self.name} has no parameter named {unknown[0]!r}")
            given = [params.get(p.name, _MISSING) for p in self.params]
        args: list[Any] = []
        for index, param in enumerate(self.params):
            value = given[index] if index < len(given) else _MISSING
            if value is _MISSING or value is None:
                if param.required:
                    raise invalid_params(f"missing required parameter {param.name!r}")
                args.append(param.default)
                continue
            try:
                args.append(param.type.parse(value))
            except (ValueError, TypeError, OverflowError) as exc:
                raise invalid_params(f"{param.name}: {exc}") from None
        return args


def _param_type_of(hint: Any, name: str, method: str) -> tuple[ParamType, bool]:
    """The `ParamType` inside `Annotated[T, ParamType]` (or `... | None`), and whether None is allowed."""
    nullable = False
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        members = [arg for arg in typing.get_args(hint) if arg is not type(None)]
        nullable = len(members) < len(typing.get_args(hint))
        if len(members) != 1:
            raise TypeError(f"{method}: parameter {name!r} must be one Annotated type, optionally | None")
        hint = members[0]
    if typing.get_origin(hint) is Annotated:
        for meta in hint.__metadata__:
            if isinstance(meta, ParamType):
                return meta, nullable
    raise TypeError(f"{method}: parameter {name!r} needs an Annotated[..., ParamType] type")


class MethodTable:
    """The RPC methods by name, each registered with `@table.method("name")`."""

    def __init__(self) -> None:
        self._methods: dict[str, Method] = {}

    def method(
        self,
        name: str,
        *,
        result: dict[str, Any] | None = None,
        websocket_only: bool = False,
        off_loop: bool = False,
    ) -> Callable[[Callable[..., Awaitable[JSON]]], Callable[..., Awaitable[JSON]]]:
        """Register `async def f(ctx: CallContext, p1: Annotated[...], ...)` under `name`.

        The annotations are resolved with `typing.get_type_hints`, so parameter types must be
        names the handler's module defines at module level (as the `node.rpc.methods` families
        do), not names local to a function.
        """

        def register(handler: Callable[..., Awaitable[JSON]]) -> Callable[..., Awaitable[JSON]]:
            if name in self._methods:
                raise ValueError(f"RPC method {name} registered twice")
            hints = typing.get_type_hints(handler, include_extras=True)
            params: list[Param] = []
            for parameter in list(inspect.signature(handler).parameters.values())[1:]:
                param_type, nullable = _param_type_of(hints[parameter.name], parameter.name, name)
                optional = parameter.default is not inspect.Parameter.empty
                if optional and not nullable:
                    raise TypeError(
                        f"{name}: optional parameter {parameter.name!r} must be typed `... | None`"
                    )
                default = parameter.default if optional else None
                params.append(Param(parameter.name, param_type, required=not optional, default=default))
            summary = (inspect.getdoc(handler) or name).split("\n\n")[0].replace("\n", " ")
            self._methods[name] = Method(
                name, handler, tuple(params), summary, result or {}, websocket_only, off_loop
            )
            return handler

        return register

    def include(self, other: MethodTable) -> None:
        """Add every method of another table (one family's); a name already here is an error."""
        for method in other:
            if method.name in self._methods:
                raise ValueError(f"RPC method {method.name} registered twice")
            self._methods[method.name] = method

    def get(self, name: str) -> Method | None:
        return self._methods.get(name)

    def names(self) -> list[str]:
        return sorted(self._methods)

    def __iter__(self) -> typing.Iterator[Method]:
        return iter(self._methods[name] for name in self.names())


# ---------------------------------------------------------------------------------------------
# Dispatch
# ---------------------------------------------------------------------------------------------


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not valid JSON")


def _is_valid_id(value: Any) -> bool:
    return (
        value is None
        or isinstance(value, str)
        or (isinstance(value, (int, float)) and not isinstance(value, bool))
    )


def error_response(error: RpcError, request_id: Any = None) -> str:
    return _dumps({"jsonrpc": "2.0", "error": error.to_json(), "id": request_id})


def _dumps(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"), allow_nan=False)


@dataclass
class Dispatcher:
    """Turns request bodies into response bodies using a `MethodTable`.

    `limits_log` (the server's) gets a line for each answer refused for its size.

    `call_slots` bounds the calls that run at once, over every connection. Methods are
    synchronous work on the node's one trio thread, so running more of them at once gains
    nothing, and each one runnable delays every other task, block authoring included, by its
    share of the loop: 20 clients each building a 4 MB `chain_getBlock` held authoring back by
    ~350 ms; with two slots, ~110 ms; with one (the default), ~50 ms. The other callers wait
    their turn, parked (at most one call per connection waits).
    """

    table: MethodTable
    max_batch_len: int = DEFAULT_MAX_BATCH_LEN
    max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES
    limits_log: LimitLog | None = None
    call_slots: trio.CapacityLimiter | None = None
    _log: logging.Logger = field(default=log, repr=False)

    async def handle(
        self, body: str | bytes, ctx: CallContext, budget: ResponseBudget | None = None
    ) -> str | None:
        """The response text for one HTTP body or WebSocket message; None when none is due.

        The answer's bytes are taken from `budget` (a private one of `max_response_bytes` if
        none is given); the caller releases it once the answer is sent.
        """
        budget = budget if budget is not None else ResponseBudget(self.max_response_bytes)
        values = _json_values_at_most(body)
        if values > MAX_JSON_VALUES:
            self._refused("request", ctx, f"{values:,} JSON values; the limit is {MAX_JSON_VALUES:,}")
            return error_response(
                RpcError(OVERSIZED_REQUEST, data=f"more than {MAX_JSON_VALUES:,} JSON values")
            )
        try:
            request = json.loads(body, parse_constant=_reject_constant)
        except (ValueError, RecursionError) as exc:  # UnicodeDecodeError and JSONDecodeError included
            return error_response(RpcError(PARSE_ERROR, data=_short(str(exc))))
        if isinstance(request, list):
            return await self._handle_batch(request, ctx, budget)
        answer = await self._handle_request(request, ctx)
        if answer is None:
            return None
        if not budget.fits(len(answer)):
            answer = self._too_big(answer, request, ctx, budget)
        if not budget.take(len(answer)):
            return self._busy(ctx, budget, request.get("id") if isinstance(request, dict) else None)
        return answer

    async def _handle_batch(self, batch: list[Any], ctx: CallContext, budget: ResponseBudget) -> str | None:
        """Answer the members in order, counting each answer against the budget as it is built.

        Past the budget the whole batch is refused (jsonrpsee's -32011, id null) and the members
        after it are not run: a batch is one answer, its parts are of little use to a client that
        asked for them together, and stopping at once is what bounds the work. Members already
        run keep their effects (a submitted extrinsic stays in the pool), as with jsonrpsee.
        """
        if not batch:
            return error_response(RpcError(INVALID_REQUEST, data="empty batch"))
        if len(batch) > self.max_batch_len:
            return error_response(
                RpcError(TOO_BIG_BATCH, data=f"{len(batch)} requests; the limit is {self.max_batch_len}")
            )
        answered: list[str] = []
        for index, member in enumerate(batch):
            if index and self.call_slots is None:
                await trio.lowlevel.checkpoint()  # let authoring and other clients run (a call slot yields too)
            answer = await self._handle_request(member, ctx)
            if answer is None:
                continue
            if len(answer) + 2 > budget.limit:  # too big even alone: an error in its place
                answer = self._too_big(answer, member, ctx, budget)
            if not budget.fits(len(answer) + 1):  # +1: the comma or bracket after it
                self._refused(
                    "batch response",
                    ctx,
                    f"{len(batch)} requests passed {budget.limit:,} bytes at request {index + 1}",
                )
                budget.release()
                return error_response(
                    RpcError(TOO_BIG_BATCH_RESPONSE, data=f"Exceeded max limit of {budget.limit}")
                )
            if not budget.take(len(answer) + 1):
                return self._busy(ctx, budget, None)
            answered.append(answer)
        return "[" + ",".join(answered) + "]" if answered else None

    def _too_big(self, answer: str, request: Any, ctx: CallContext, budget: ResponseBudget) -> str:
        """A single answer past the budget becomes jsonrpsee's -32008, with the request's id."""
        method = request.get("method") if isinstance(request, dict) else None
        self._refused("response", ctx, f"{method} answered {len(answer):,} bytes; the limit is {budget.limit:,}")
        request_id = request.get("id") if isinstance(request, dict) else None
        return error_response(
            RpcError(OVERSIZED_RESPONSE, data=f"Exceeded max limit of {budget.limit}"),
            request_id if _is_valid_id(request_id) else None,
        )

    def _busy(self, ctx: CallContext, budget: ResponseBudget, request_id: Any) -> str:
        """The answers waiting to be sent, over every connection, are at their bound."""
        budget.release()
        memory = budget.memory
        held = f"{memory.held:,} of {memory.limit:,}" if memory is not None else "all"
        self._refused("response (server busy)", ctx, f"answers waiting to be sent hold {held} bytes")
        return error_response(
            RpcError(SERVER_IS_BUSY, data="too many answers waiting for their clients to read them"),
            request_id if _is_valid_id(request_id) else None,
        )

    def _refused(self, limit: str, ctx: CallContext, detail: str) -> None:
        if self.limits_log is not None:
            self.limits_log.refused(limit, ctx.client, detail)

    async def _handle_request(self, request: Any, ctx: CallContext) -> str | None:
        if not isinstance(request, dict):
            return error_response(RpcError(INVALID_REQUEST, data="a request must be a JSON object"))
        has_id = "id" in request
        request_id = request.get("id")
        if not _is_valid_id(request_id):
            return error_response(RpcError(INVALID_REQUEST, data="id must be a string, a number or null"))
        problem = _shape_problem(request)
        if problem is not None:
            return error_response(RpcError(INVALID_REQUEST, data=problem), request_id)
        try:
            if ctx.rate is not None:
                try:
                    await ctx.rate.admit()
                except RpcError:
                    self._refused("call (rate limit)", ctx, f"{request['method']}: over {ctx.rate.per_minute} a minute")
                    raise
            method = self.table.get(request["method"])
            slots = self.call_slots
            if slots is None or (method is not None and method.off_loop):
                return self._answer(request, await self._call(method, request.get("params"), ctx))
            # Taking a slot yields to the scheduler while holding it, free or not: the callers
            # then waiting for a slot are parked, not runnable, so each pass of the loop runs at
            # most `calls_at_once` calls besides the node's own tasks.
            async with slots:
                return self._answer(request, await self._call(method, request.get("params"), ctx))
        except RpcError as error:
            return error_response(error, request_id) if has_id else None

    def _answer(self, request: dict[str, Any], result: JSON) -> str | None:
        """The response text of a call that returned `result` (None for a notification)."""
        if "id" not in request:
            return None
        request_id = request["id"]
        try:
            return _dumps({"jsonrpc": "2.0", "result": result, "id": request_id})
        except (TypeError, ValueError, RecursionError):
            # The result could not be written as JSON: a bug in the method, not in the request.
            self._log.exception("RPC method %s returned a result that is not JSON", request["method"])
            return error_response(RpcError(INTERNAL_ERROR), request_id)

    async def _call(self, method: Method | None, params: JSON, ctx: CallContext) -> JSON:
        if method is None:
            raise RpcError(METHOD_NOT_FOUND)
        name = method.name
        if method.websocket_only and ctx.session is None:
            raise RpcError(SUBSCRIPTION_NEEDS_WEBSOCKET, data=f"{name} is only available over WebSocket")
        try:
            return await method.handler(ctx, *method.bind(params))
        except RpcError:
            raise
        except Exception:
            self._log.exception("RPC method %s failed", name)
            raise RpcError(INTERNAL_ERROR) from None


def _shape_problem(request: dict[str, Any]) -> str | None:
    """Why `request` is not a JSON-RPC 2.0 request object, or None if it is one."""
    if request.get("jsonrpc") != "2.0":
        return 'jsonrpc must be exactly "2.0"'
    if not isinstance(request.get("method"), str):
        return "method must be a string"
    if "params" in request and not isinstance(request["params"], (list, dict)):
        return "params must be an array or an object"
    return None


def _json_values_at_most(body: str | bytes) -> int:
    """An upper bound on the JSON values in `body`, counted without parsing it (C speed)."""
    if isinstance(body, str):
        return body.count(",") + body.count("[") + body.count("{") + 1
    return body.count(b",") + body.count(b"[") + body.count(b"{") + 1


def _short(text: str, limit: int = 200) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."
