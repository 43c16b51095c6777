"""A typed, synchronous Python client for a node's JSON-RPC (the wallet commands, scripts, tests).

`RpcClient` speaks JSON over HTTP (httpx) for calls and over a WebSocket (`websockets.sync`) for
the two streams a wallet needs: watching a submitted transaction and following new heads. Results
come back as the node's own types (`Header`, `Block`, `Account`, bytes), decoded with the strict
decoders and checked where the client can check them: a header fetched by hash must hash to it,
a block's extrinsics must match its header's extrinsics root.

Errors are of three kinds, all `RpcClientError`: `RpcError` (the node answered with a JSON-RPC
error; `code`, `message`, `data` as sent), `NodeUnreachable` (no answer at that URL), and
`TransactionFailed` (a watched transaction ended as invalid, dropped or usurped).
"""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI
from websockets.sync.client import ClientConnection, connect

from node.codec import u128_to_bytes
from node.keys import Keypair
from node.rpc.encoding import block_from_json, from_hex, header_from_json, to_hex
from node.runtime.executive import SPEC_VERSION
from node.runtime.system import Account, account_key
from node.types import IMMORTAL, Block, Call, Header, Mortality, SignedExtra, extrinsic_hash, sign_extrinsic

__all__ = [
    "DEFAULT_URL",
    "NodeUnreachable",
    "NotFound",
    "ReadProof",
    "RpcClient",
    "RpcClientError",
    "RpcError",
    "TransactionFailed",
    "TxStatus",
]

DEFAULT_URL = "http://127.0.0.1:9944"
DEFAULT_TIMEOUT_S = 30.0
DEFAULT_INCLUSION_TIMEOUT_S = 120.0
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


class NotFound(RpcClientError, LookupError):
    """The node does not have the block asked for."""


class TransactionFailed(RpcClientError):
    """A watched transaction will never be included: invalid, dropped or usurped."""

    def __init__(self, ext_hash: bytes, status: TxStatus) -> None:
        super().__init__(f"transaction {to_hex(ext_hash)} was {status.kind}")
        self.ext_hash = ext_hash
        self.status = status


@dataclass(frozen=True)
class TxStatus:
    """One `author_extrinsicUpdate`: a kind ("ready", "inBlock", ...) and the hash that comes with
    some kinds (the block for inBlock/finalized/retracted, the replacement for usurped)."""

    kind: str
    hash: bytes | None = None

    FINAL = frozenset({"finalized", "dropped", "invalid", "usurped", "finalityTimeout"})
    FAILED = frozenset({"dropped", "invalid", "usurped"})

    @property
    def is_final(self) -> bool:
        return self.kind in self.FINAL

    @classmethod
    def from_json(cls, value: Any) -> TxStatus:
        if isinstance(value, str):
            return cls(value)
        if isinstance(value, dict) and len(value) == 1:
            ((kind, block_hash),) = value.items()
            return cls(
                kind, from_hex(block_hash, length=32, what=kind) if isinstance(block_hash, str) else None
            )
        raise RpcClientError(f"unexpected transaction status {value!r}")


@dataclass(frozen=True)
class ReadProof:
    at: bytes
    proof: list[bytes]


def _websocket_url(url: str) -> str:
    if url.startswith("https://"):
        return "wss://" + url[len("https://") :]
    if url.startswith("http://"):
        return "ws://" + url[len("http://") :]
    return url


class RpcClient:
    """Calls a node's JSON-RPC at `url`; usable as a context manager to close its connections."""

    def __init__(self, url: str = DEFAULT_URL, timeout: float = DEFAULT_TIMEOUT_S) -> None:
        self.url = url
        self.ws_url = _websocket_url(url)
        self.timeout = timeout
        self._http = httpx.Client(timeout=timeout)
        self._ids = itertools.count(1)
        self._genesis_hash: bytes | None = None

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> RpcClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- the wire -------------------------------------------------------------------------------

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

    def _open_websocket(self) -> ClientConnection:
        try:
            return connect(self.ws_url, open_timeout=self.timeout, max_size=MAX_WS_MESSAGE_BYTES)
        except (OSError, InvalidHandshake, InvalidURI, TimeoutError) as exc:
            raise NodeUnreachable(
                f"cannot open a WebSocket to the imagechain node at {self.ws_url}: {exc}"
            ) from exc

    def _subscribe(
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

    # -- system ---------------------------------------------------------------------------------

    def health(self) -> dict[str, Any]:
        return self.call("system_health")

    def chain_name(self) -> str:
        return self.call("system_chain")

    def genesis_hash(self) -> bytes:
        """Block 0's hash (asked once per client: it never changes)."""
        if self._genesis_hash is None:
            found = self.block_hash(0)
            if found is None:
                raise RpcClientError(f"{self.url} has no block 0")
            self._genesis_hash = found
        return self._genesis_hash

    def next_nonce(self, account_id: bytes) -> int:
        """The nonce for the account's next transaction, counting those already in the node's pool."""
        return int(self.call("system_accountNextIndex", to_hex(account_id)))

    # -- chain ----------------------------------------------------------------------------------

    def header(self, block_hash: bytes | None = None) -> Header:
        """The best header, or the header with this hash (checked to hash to it)."""
        result = self.call("chain_getHeader", *([] if block_hash is None else [to_hex(block_hash)]))
        if result is None:
            raise NotFound(f"the node has no block {to_hex(block_hash or b'')}")
        header = _decoded(header_from_json, result)
        if block_hash is not None and header.hash != block_hash:
            raise RpcClientError(f"the node answered a header that does not hash to {to_hex(block_hash)}")
        return header

    def block(self, block_hash: bytes | None = None) -> Block:
        """The best block, or the block with this hash (header hash and extrinsics root checked)."""
        result = self.call("chain_getBlock", *([] if block_hash is None else [to_hex(block_hash)]))
        if result is None:
            raise NotFound(f"the node has no block {to_hex(block_hash or b'')}")
        block = _decoded(block_from_json, result)
        if block_hash is not None and block.hash != block_hash:
            raise RpcClientError(f"the node answered a block that does not hash to {to_hex(block_hash)}")
        return block

    def block_hash(self, number: int) -> bytes | None:
        """The canonical block hash at a height, or None past the head."""
        result = self.call("chain_getBlockHash", number)
        return None if result is None else _decoded(lambda value: from_hex(value, length=32), result)

    def finalized_head(self) -> bytes:
        return _decoded(lambda value: from_hex(value, length=32), self.call("chain_getFinalizedHead"))

    def subscribe_new_heads(self, timeout: float | None = None) -> Iterator[Header]:
        """Each new best header, starting with the current one; `timeout` bounds each wait."""
        for result in self._subscribe("chain_subscribeNewHeads", [], "chain_newHead", timeout):
            yield _decoded(header_from_json, result)

    # -- state ----------------------------------------------------------------------------------

    def storage(self, key: bytes, at: bytes | None = None) -> bytes | None:
        """A raw storage value after block `at` (default: the best block); None if unset."""
        result = self.call("state_getStorage", to_hex(key), *([] if at is None else [to_hex(at)]))
        return None if result is None else _decoded(from_hex, result)

    def read_proof(self, keys: list[bytes], at: bytes | None = None) -> ReadProof:
        result = self.call(
            "state_getReadProof", [to_hex(key) for key in keys], *([] if at is None else [to_hex(at)])
        )
        return _decoded(
            lambda value: ReadProof(
                from_hex(value["at"], length=32), [from_hex(node) for node in value["proof"]]
            ),
            result,
        )

    def account(self, account_id: bytes, at: bytes | None = None) -> Account:
        """Nonce and balances of an account (all zero for an account that does not exist)."""
        raw = self.storage(account_key(account_id), at)
        return Account() if raw is None else _decoded(Account.decode, raw)

    # -- author ---------------------------------------------------------------------------------

    def submit(self, encoded: bytes) -> bytes:
        """Hand a signed extrinsic to the node's pool; returns its hash (RpcError if refused)."""
        return _decoded(
            lambda value: from_hex(value, length=32), self.call("author_submitExtrinsic", to_hex(encoded))
        )

    def pending(self) -> list[bytes]:
        return [_decoded(from_hex, item) for item in self.call("author_pendingExtrinsics")]

    def watch_extrinsic(self, encoded: bytes, timeout: float | None = None) -> Iterator[TxStatus]:
        """Submit and yield each status until a final one; `timeout` bounds each wait."""
        for result in self._subscribe(
            "author_submitAndWatchExtrinsic", [to_hex(encoded)], "author_extrinsicUpdate", timeout
        ):
            status = TxStatus.from_json(result)
            yield status
            if status.is_final:
                return

    def transfer(
        self,
        signer: Keypair,
        dest: bytes,
        amount: int,
        *,
        tip: int = 0,
        mortal_period: int = 64,
        wait: bool = True,
        timeout: float = DEFAULT_INCLUSION_TIMEOUT_S,
    ) -> tuple[bytes, bytes | None]:
        """Sign and submit `balances.transfer`; returns (extrinsic hash, block hash or None).

        The transaction is bound to this chain (genesis hash) and runtime (spec version), takes the
        next nonce the node's pool expects, and is mortal for `mortal_period` blocks from the
        current best block (0 makes it immortal), so a transfer stuck in a pool cannot be replayed
        much later. With `wait`, returns once a block includes it (raises `TransactionFailed` if
        it is dropped instead, `RpcClientError` after `timeout` seconds).
        """
        best = self.header()
        mortality = Mortality(best.number, mortal_period) if mortal_period else IMMORTAL
        extra = SignedExtra(
            self.genesis_hash(), SPEC_VERSION, self.next_nonce(signer.account_id), tip, mortality
        )
        call = Call("balances", "transfer", (dest, u128_to_bytes(amount)))
        encoded = sign_extrinsic(signer, call, extra).encode()
        ext_hash = extrinsic_hash(encoded)
        if not wait:
            return self.submit(encoded), None
        deadline = time.monotonic() + timeout
        for status in self.watch_extrinsic(encoded, timeout=timeout):
            if status.kind in ("inBlock", "finalized"):
                return ext_hash, status.hash
            if status.kind in TxStatus.FAILED:
                raise TransactionFailed(ext_hash, status)
            if time.monotonic() > deadline:
                break
        raise RpcClientError(f"transaction {to_hex(ext_hash)} was not included within {timeout} s")


def _raise_error(error: dict[str, Any]) -> None:
    code = error.get("code")
    message = error.get("message")
    raise RpcError(
        code if isinstance(code, int) else 0, message if isinstance(message, str) else "", error.get("data")
    )


def _decoded(decode: Any, value: Any) -> Any:
    """Apply a decoder to a result, turning a malformed answer into a client error."""
    try:
        return decode(value)
    except (ValueError, TypeError, KeyError) as exc:
        raise RpcClientError(f"malformed answer from the node: {exc}") from exc
