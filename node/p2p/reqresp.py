"""Request-response over libp2p streams (``/imagechain/sync/1``, ``/imagechain/blob/1``, ...).

One stream per request, like Substrate's request-response protocols. Wire format, both directions
varint-length-prefixed (unsigned LEB128, as everywhere in libp2p):

    request:  <varint len> <request bytes>
    response: <varint len> <status byte> <body>
              status 0 = OK, body is the response
              status 1 = REJECTED, body is a UTF-8 reason (the requester sent a bad request)
              status 2 = ERROR, body is a UTF-8 reason (the server failed; nobody is blamed)

The status byte exists so a requester can tell "you asked something invalid" from a dead or broken
peer; a bare stream reset could be either. Limits are checked against the length prefix before the
body is read, so an oversized frame costs the receiver a few bytes, not memory.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

import trio
from libp2p.abc import INetStream
from libp2p.custom_types import TProtocol
from libp2p.exceptions import BaseLibp2pError
from libp2p.host.exceptions import StreamFailure
from libp2p.io.exceptions import MessageTooLarge
from libp2p.peer.id import ID
from libp2p.utils.varint import encode_varint_prefixed, read_varint_prefixed_bytes_limited

from node.p2p.api import (
    NetworkHandler,
    RequestFailed,
    RequestRejected,
    RequestRejectedByPeer,
    RequestTimeout,
    UnsupportedProtocol,
)
from node.p2p.scoring import PENALTY_BAD_REQUEST, PENALTY_OVERSIZED

__all__ = ["STATUS_ERROR", "STATUS_OK", "STATUS_REJECTED", "RequestServer", "send_request"]

log = logging.getLogger(__name__)

STATUS_OK = 0
STATUS_REJECTED = 1
STATUS_ERROR = 2
_MAX_REASON = 512
# Closing or resetting a stream is shielded from cancellation (it must not be skipped), but bounded:
# on a connection whose peer died, py-libp2p's close can wait forever for a window or a lock.
_CLOSE_TIMEOUT = 2.0

NewStream = Callable[[ID, list[TProtocol]], Awaitable[INetStream]]


async def send_request(
    new_stream: NewStream,
    peer_id: str,
    protocol: str,
    data: bytes,
    *,
    timeout: float,
    max_request_bytes: int,
    max_response_bytes: int,
) -> bytes:
    """Open a stream, send one request, return the response body or raise a `RequestFailed`."""
    if len(data) > max_request_bytes:
        raise RequestFailed(f"request of {len(data)} bytes exceeds the {max_request_bytes}-byte limit")
    try:
        remote = ID.from_base58(peer_id)
    except Exception as exc:
        raise RequestFailed(f"invalid peer id {peer_id!r}") from exc
    stream: INetStream | None = None
    ok = False
    try:
        with trio.fail_after(timeout):
            stream = await new_stream(remote, [TProtocol(protocol)])
            await stream.write(encode_varint_prefixed(data))
            frame = await read_varint_prefixed_bytes_limited(stream, max_response_bytes + 1)
        ok = True
    except trio.TooSlowError as exc:
        raise RequestTimeout(f"{protocol} request to {peer_id} timed out after {timeout} s") from exc
    except StreamFailure as exc:
        raise UnsupportedProtocol(f"{peer_id} does not serve {protocol}") from exc
    except MessageTooLarge as exc:
        raise RequestFailed(f"{protocol} response from {peer_id} exceeds {max_response_bytes} bytes") from exc
    except Exception as exc:  # dial errors, resets, EOF mid-frame: all mean "no response"
        raise RequestFailed(f"{protocol} request to {peer_id} failed: {exc or type(exc).__name__}") from exc
    finally:
        if stream is not None:
            with trio.CancelScope(shield=True), trio.move_on_after(_CLOSE_TIMEOUT):
                await _finish(stream, ok)
    if not frame:
        raise RequestFailed(f"empty {protocol} response from {peer_id}")
    status, body = frame[0], frame[1:]
    if status == STATUS_OK:
        return body
    reason = body[:_MAX_REASON].decode("utf-8", "replace")
    if status == STATUS_REJECTED:
        raise RequestRejectedByPeer(f"{peer_id} rejected the {protocol} request: {reason}")
    raise RequestFailed(f"{peer_id} failed to serve the {protocol} request: {reason}")


class RequestServer:
    """Serves registered protocols by calling `NetworkHandler.on_request`.

    The stream handler never raises: in py-libp2p an exception escaping a stream handler tears down
    the connection's task group and with it the whole swarm.
    """

    def __init__(
        self,
        handler: NetworkHandler,
        *,
        penalise: Callable[[str, int, str], None],
        refuses: Callable[[str], bool],
        timeout: float,
        max_request_bytes: int,
        max_response_bytes: int,
        max_concurrent: int,
    ) -> None:
        self._handler = handler
        self._penalise = penalise
        self._refuses = refuses
        self._timeout = timeout
        self._max_request = max_request_bytes
        self._max_response = max_response_bytes
        self._limiter = trio.CapacityLimiter(max_concurrent)
        self.served = 0
        self.rejected = 0
        self.failed = 0
        self.busy = 0

    async def handle_stream(self, stream: INetStream) -> None:
        try:
            await self._serve(stream)
        except BaseException as exc:
            # Cancellation (shutdown) propagates; anything else is logged and swallowed.
            await _reset(stream)
            if not isinstance(exc, Exception):
                raise
            log.exception("request stream handler failed")

    async def _serve(self, stream: INetStream) -> None:
        peer_id = stream.muxed_conn.peer_id.to_base58()
        protocol = str(stream.get_protocol())
        if self._refuses(peer_id):
            await _reset(stream)
            return
        try:
            self._limiter.acquire_nowait()
        except trio.WouldBlock:
            # Overloaded: the requester sees a failure and can ask someone else; not its fault.
            self.busy += 1
            await _reset(stream)
            return
        try:
            try:
                with trio.fail_after(self._timeout):
                    request = await read_varint_prefixed_bytes_limited(stream, self._max_request)
            except MessageTooLarge:
                self._penalise(peer_id, PENALTY_OVERSIZED, f"oversized {protocol} request")
                await _reset(stream)
                return
            except (trio.TooSlowError, BaseLibp2pError, OSError):
                await _reset(stream)
                return
            status, body = await self._answer(protocol, request, peer_id)
            if len(body) > self._max_response:
                log.error("%s response of %d bytes exceeds max_response_bytes; not sent", protocol, len(body))
                status, body = STATUS_ERROR, b"response too large"
            with trio.move_on_after(self._timeout) as scope:
                await stream.write(encode_varint_prefixed(bytes([status]) + body))
            if scope.cancelled_caught:
                await _reset(stream)
                return
            await stream.close()
        except (BaseLibp2pError, OSError):
            await _reset(stream)
        finally:
            self._limiter.release()

    async def _answer(self, protocol: str, request: bytes, peer_id: str) -> tuple[int, bytes]:
        try:
            response = await self._handler.on_request(protocol, request, peer_id)
            if not isinstance(response, bytes | bytearray | memoryview):
                raise TypeError(f"on_request returned {type(response).__name__}, not bytes")
        except RequestRejected as exc:
            self.rejected += 1
            self._penalise(peer_id, PENALTY_BAD_REQUEST, f"bad {protocol} request: {exc.reason}")
            return STATUS_REJECTED, exc.reason.encode()[:_MAX_REASON]
        except Exception:
            self.failed += 1
            log.exception("on_request(%s) from %s failed", protocol, peer_id)
            return STATUS_ERROR, b"internal error"
        self.served += 1
        return STATUS_OK, bytes(response)


async def _finish(stream: INetStream, ok: bool) -> None:
    try:
        if ok:
            await stream.close()
        else:
            await stream.reset()
    except Exception:
        log.debug("closing request stream failed", exc_info=True)


async def _reset(stream: INetStream) -> None:
    with trio.CancelScope(shield=True), trio.move_on_after(_CLOSE_TIMEOUT):
        try:
            await stream.reset()
        except Exception:
            log.debug("stream reset failed", exc_info=True)
