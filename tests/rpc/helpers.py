"""Helpers shared by the RPC tests (the fixtures that use them are in conftest.py)."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx

from node.codec import u128_to_bytes
from node.consensus.aura import slot_at
from node.core.node import Node
from node.keys import Keypair, dev_keypair
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
