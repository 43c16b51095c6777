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
be crashed by a request body is a denial-of-service hole.

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
from typing import Annotated, Any, Protocol

import trio

from node.rpc.errors import (
    INTERNAL_ERROR,
    INVALID_REQUEST,
    METHOD_NOT_FOUND,
    PARSE_ERROR,
    SUBSCRIPTION_NEEDS_WEBSOCKET,
    TOO_BIG_BATCH,
    RpcError,
    invalid_params,
)

log = logging.getLogger("node.rpc")

JSON = Any
DEFAULT_MAX_BATCH_LEN = 1000


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
    """Passed to every method: the node, and the WebSocket session (None over HTTP)."""

    node: Any
    session: Session | None = None


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
            self._methods[name] = Method(name, handler, tuple(params), summary, result or {}, websocket_only)
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
    """Turns request bodies into response bodies using a `MethodTable`."""

    table: MethodTable
    max_batch_len: int = DEFAULT_MAX_BATCH_LEN
    _log: logging.Logger = field(default=log, repr=False)

    async def handle(self, body: str | bytes, ctx: CallContext) -> str | None:
        """The response text for one HTTP body or WebSocket message; None when none is due."""
        try:
            request = json.loads(body, parse_constant=_reject_constant)
        except (ValueError, RecursionError) as exc:  # UnicodeDecodeError and JSONDecodeError included
            return error_response(RpcError(PARSE_ERROR, data=_short(str(exc))))
        if isinstance(request, list):
            if not request:
                return error_response(RpcError(INVALID_REQUEST, data="empty batch"))
            if len(request) > self.max_batch_len:
                return error_response(
                    RpcError(
                        TOO_BIG_BATCH, data=f"{len(request)} requests; the limit is {self.max_batch_len}"
                    )
                )
            responses = [await self._handle_request(member, ctx) for member in request]
            answered = [response for response in responses if response is not None]
            return "[" + ",".join(answered) + "]" if answered else None
        return await self._handle_request(request, ctx)

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
            result = await self._call(request["method"], request.get("params"), ctx)
        except RpcError as error:
            return error_response(error, request_id) if has_id else None
        if not has_id:
            return None
        try:
            return _dumps({"jsonrpc": "2.0", "result": result, "id": request_id})
        except (TypeError, ValueError, RecursionError):
            # The result could not be written as JSON: a bug in the method, not in the request.
            self._log.exception("RPC method %s returned a result that is not JSON", request["method"])
            return error_response(RpcError(INTERNAL_ERROR), request_id) if has_id else None

    async def _call(self, name: str, params: JSON, ctx: CallContext) -> JSON:
        method = self.table.get(name)
        if method is None:
            raise RpcError(METHOD_NOT_FOUND)
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


def _short(text: str, limit: int = 200) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."
