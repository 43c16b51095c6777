"""Helpers shared by the RPC tests (the fixtures that use them are in conftest.py)."""

from __future__ import annotations

import base64
import os
import socket
import struct
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import trio

from node.codec import u128_to_bytes
from node.consensus.aura import slot_at
from node.core.node import Node
from node.keys import Keypair, dev_keypair
from node.rpc.server import ServerState
from node.runtime.runtime import SPEC_VERSION
from node.types import Block, Call, Mortality, SignedExtra, sign_extrinsic

ALICE = dev_keypair("//Alice")
BOB = dev_keypair("//Bob")
CHARLIE = dev_keypair("//Charlie")


def author(node: Node) -> Block:
    """Author the next block now (the slot after the parent's, or the current slot if later)."""
    parent_slot = node.chain.best_header().slot or 0
    now_slot = slot_at(int(time.time() * 1000), node.spec.params.slot_ms)
    return node.author_block(max(parent_slot + 1, now_slot)).block


def transfer_extrinsic(
    node: Node,
    signer: Keypair = ALICE,
    dest: bytes = BOB.account_id,
    amount: int = 10**18,
    *,
    nonce: int | None = None,
    tip: int = 0,
    genesis_hash: bytes | None = None,
    mortality: Mortality | None = None,
) -> bytes:
    """An encoded, signed `balances.transfer` for the node's chain (born at genesis by default)."""
    genesis = genesis_hash if genesis_hash is not None else node.genesis_hash
    extra = SignedExtra(
        genesis,
        SPEC_VERSION,
        node.next_nonce(signer.account_id) if nonce is None else nonce,
        tip,
        mortality or Mortality.from_genesis(genesis),
    )
    return sign_extrinsic(signer, Call("balances", "transfer", (dest, u128_to_bytes(amount))), extra).encode()


@dataclass
class Server:
    node: Node
    port: int
    state: ServerState

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/"


StartServer = Callable[..., Awaitable[Server]]


async def rpc(
    http: httpx.AsyncClient, method: str, params: Any = None, request_id: Any = 1
) -> dict[str, Any]:
    """POST one request and return the decoded response object (asserting HTTP 200)."""
    request: dict[str, Any] = {"jsonrpc": "2.0", "id": request_id, "method": method}
    if params is not None:
        request["params"] = params
    response = await http.post("/", json=request)
    assert response.status_code == 200, response.text
    return response.json()


async def result(http: httpx.AsyncClient, method: str, params: Any = None) -> Any:
    body = await rpc(http, method, params)
    assert "error" not in body, body
    return body["result"]


async def error(http: httpx.AsyncClient, method: str, params: Any = None) -> dict[str, Any]:
    body = await rpc(http, method, params)
    assert "result" not in body, body
    assert set(body) == {"jsonrpc", "error", "id"}
    return body["error"]


# ---------------------------------------------------------------------------------------------
# Raw clients: a source address of our choosing, a small receive buffer, no reading at all
# ---------------------------------------------------------------------------------------------


async def tcp_stream(port: int, *, local_address: str = "127.0.0.1", rcvbuf: int | None = None) -> trio.SocketStream:
    """A TCP connection to 127.0.0.1:`port` from `local_address` (any of 127/8 is this host);
    `rcvbuf` shrinks its receive buffer (set before connecting, so the window starts small)."""
    sock = trio.socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if rcvbuf is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    await sock.bind((local_address, 0))
    await sock.connect(("127.0.0.1", port))
    return trio.SocketStream(sock)


async def raw_websocket(
    port: int, *, local_address: str = "127.0.0.1", rcvbuf: int | None = None, origin: str | None = None
) -> tuple[trio.SocketStream, bytes]:
    """Open a WebSocket by hand; returns the stream and the server's handshake answer (status
    line and headers; any bytes after them stay unread in the socket's buffer only if the server
    sent none)."""
    stream = await tcp_stream(port, local_address=local_address, rcvbuf=rcvbuf)
    key = base64.b64encode(os.urandom(16))
    extra = f"Origin: {origin}\r\n".encode() if origin is not None else b""
    await stream.send_all(
        b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: " + key + b"\r\nSec-WebSocket-Version: 13\r\n" + extra + b"\r\n"
    )
    answer = b""
    with trio.fail_after(5):
        while b"\r\n\r\n" not in answer:
            chunk = await stream.receive_some(1)  # byte by byte: leave the frames after it unread
            if not chunk:
                break
            answer += chunk
    return stream, answer


def masked_text_frame(text: str) -> bytes:
    """A client-to-server text frame (clients must mask), of any length."""
    payload = text.encode()
    mask = os.urandom(4)
    if len(payload) < 126:
        header = bytes([0x81, 0x80 | len(payload)])
    elif len(payload) < 1 << 16:
        header = bytes([0x81, 0x80 | 126]) + struct.pack(">H", len(payload))
    else:
        header = bytes([0x81, 0x80 | 127]) + struct.pack(">Q", len(payload))
    return header + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


async def read_frames_until_close(stream: trio.SocketStream, timeout_s: float = 10) -> tuple[int, int | None]:
    """Read server frames until a close frame or the end of the stream: (data frames seen, the
    close code, or None if the connection ended without a close frame)."""
    buffer = b""
    frames = 0
    with trio.fail_after(timeout_s):
        while True:
            while len(buffer) >= 2:
                opcode, length, offset = buffer[0] & 0x0F, buffer[1] & 0x7F, 2
                if length == 126:
                    if len(buffer) < 4:
                        break
                    length, offset = struct.unpack(">H", buffer[2:4])[0], 4
                elif length == 127:
                    if len(buffer) < 10:
                        break
                    length, offset = struct.unpack(">Q", buffer[2:10])[0], 10
                if len(buffer) < offset + length:
                    break
                payload, buffer = buffer[offset : offset + length], buffer[offset + length :]
                if opcode == 0x8:
                    return frames, struct.unpack(">H", payload[:2])[0] if len(payload) >= 2 else None
                frames += 1
            chunk = await stream.receive_some(65536)
            if not chunk:
                return frames, None
            buffer += chunk
