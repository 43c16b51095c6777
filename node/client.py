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

import base64
import itertools
import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI
from websockets.sync.client import ClientConnection, connect

from node.codec import decode, u128_to_bytes
from node.keys import Keypair, decode_address, encode_address
from node.rpc.encoding import block_from_json, from_hex, header_from_json, to_hex
from node.runtime import licensing
from node.runtime.balances import KEY_TOTAL_ISSUANCE
from node.runtime.copyright import Registration, Version
from node.runtime.emission import EmissionStatus
from node.runtime.licensing import Licence, LicensingParams, Offer
from node.runtime.runtime import SPEC_VERSION
from node.runtime.system import KEY_EVENTS, Account, account_key
from node.types import IMMORTAL, Block, Call, Header, Mortality, SignedExtra, extrinsic_hash, sign_extrinsic

if TYPE_CHECKING:  # the imaging stack (numpy, numba) loads only when an image is registered
    from node.pod_mining.pipeline import PreparedUpload, Progress

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

    def subscribe_finalized_heads(self, timeout: float | None = None) -> Iterator[Header]:
        """Each newly finalized header, starting with the current one; `timeout` bounds each wait."""
        for result in self._subscribe("chain_subscribeFinalizedHeads", [], "chain_finalizedHead", timeout):
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

    # -- copyright, licensing, emission -----------------------------------------------------------

    def submit_call(
        self,
        signer: Keypair,
        call: Call,
        *,
        tip: int = 0,
        mortal_period: int = 64,
        wait: bool = True,
        timeout: float = DEFAULT_INCLUSION_TIMEOUT_S,
    ) -> CallOutcome:
        """Sign and submit any call, as `transfer` does; with `wait`, return its events once included.

        Raises `CallFailed` if the call was included but failed by its module's rules (the fee is
        paid then), `RpcError` if the pool refused it, `TransactionFailed` if it was dropped.
        """
        best = self.header()
        mortality = Mortality(best.number, mortal_period) if mortal_period else IMMORTAL
        extra = SignedExtra(
            self.genesis_hash(), SPEC_VERSION, self.next_nonce(signer.account_id), tip, mortality
        )
        encoded = sign_extrinsic(signer, call, extra).encode()
        return self.submit_signed(encoded, wait=wait, timeout=timeout)

    def submit_signed(
        self, encoded: bytes, *, wait: bool = True, timeout: float = DEFAULT_INCLUSION_TIMEOUT_S
    ) -> CallOutcome:
        """Submit an already signed extrinsic (see `submit_call`)."""
        ext_hash = extrinsic_hash(encoded)
        if not wait:
            return CallOutcome(self.submit(encoded), None)
        deadline = time.monotonic() + timeout
        for status in self.watch_extrinsic(encoded, timeout=timeout):
            if status.kind in ("inBlock", "finalized") and status.hash is not None:
                outcome = CallOutcome(
                    ext_hash, status.hash, tuple(self.extrinsic_events(status.hash, ext_hash))
                )
                failure = outcome.find("system", "ExtrinsicFailed")
                if failure is not None:
                    raise CallFailed.from_event(outcome, failure)
                return outcome
            if status.kind in TxStatus.FAILED:
                raise TransactionFailed(ext_hash, status)
            if time.monotonic() > deadline:
                break
        raise RpcClientError(f"transaction {to_hex(ext_hash)} was not included within {timeout} s")

    def events(self, block_hash: bytes) -> list[ChainEvent]:
        """Every event of a block (read from `system:events` in the block's state)."""
        raw = self.storage(KEY_EVENTS, block_hash)
        return (
            [] if raw is None else _decoded(lambda data: [ChainEvent.from_wire(e) for e in decode(data)], raw)
        )

    def extrinsic_events(self, block_hash: bytes, ext_hash: bytes) -> list[ChainEvent]:
        """The events of one extrinsic of a block (its phase is its index in the block)."""
        hashes = [extrinsic_hash(x) for x in self.block(block_hash).extrinsics]
        if ext_hash not in hashes:
            raise RpcClientError(f"block {to_hex(block_hash)} does not contain {to_hex(ext_hash)}")
        index = hashes.index(ext_hash)
        return [event for event in self.events(block_hash) if event.phase == index]

    def register_image(
        self,
        signer: Keypair,
        path: str | os.PathLike[str],
        title: str,
        creator: str = "",
        description: str = "",
        *,
        raw: bool = False,
        out: str | os.PathLike[str] | None = None,
        progress: Progress | None = None,
        wait: bool = True,
        tip: int = 0,
        timeout: float = DEFAULT_INCLUSION_TIMEOUT_S,
    ) -> RegistrationOutcome:
        """Run the PoD pipeline on a file (`node.pod_mining`), submit the registration, and with
        `wait` report what the chain made of it.

        The watermarked copy is written before anything is submitted (to `out`, or next to the
        file as <name>.imagechain.png/.jpg); publish that copy, not the original. Raises
        `PodError` before submission for a file that cannot be registered (including a file the
        chain already has: checked right after hashing), `RegistrationRejected` (naming the
        existing registration) when the chain refuses it, e.g. as a near-duplicate.
        """
        from node.pod_mining.pipeline import PodError, prepare_file

        def preflight(sha256: bytes) -> None:
            """Stop before the slow steps (and the fee) when the chain already has this exact file."""
            existing = self.find_by_sha256(sha256)
            if existing is not None:
                raise PodError(
                    f"this exact file is already registered as registration #{existing.id} "
                    f"(owner {encode_address(existing.owner)})",
                    existing.id,
                )

        upload = prepare_file(
            path, genesis_hash=self.genesis_hash(), uploader=signer.account_id, title=title, creator=creator,
            description=description, raw=raw, out=out, progress=progress, preflight=preflight,
        )  # fmt: skip
        return self.submit_registration(signer, upload, wait=wait, tip=tip, timeout=timeout)

    def submit_registration(
        self,
        signer: Keypair,
        upload: PreparedUpload,
        *,
        wait: bool = True,
        tip: int = 0,
        timeout: float = DEFAULT_INCLUSION_TIMEOUT_S,
    ) -> RegistrationOutcome:
        """Submit a prepared upload (`node.pod_mining.prepare_file` / `prepare_image`)."""
        from node.pod_mining.pipeline import register_call

        try:
            outcome = self.submit_call(signer, register_call(upload), tip=tip, wait=wait, timeout=timeout)
        except CallFailed as exc:
            raise RegistrationRejected(exc.outcome, exc.error, exc.detail) from None
        return RegistrationOutcome.from_outcome(outcome, upload)

    def get_registration(self, registration_id: int, at: bytes | None = None) -> Registration | None:
        """A registration with all its versions; None if there is none with this id."""
        result = self.call("copyright_getRegistration", registration_id, *_at(at))
        return None if result is None else _decoded(_registration_from_json, result)

    def find_by_sha256(self, sha256: bytes, at: bytes | None = None) -> Registration | None:
        """The registration one of whose versions is exactly the file with this SHA-256."""
        result = self.call("copyright_findBySha256", to_hex(sha256), *_at(at))
        return None if result is None else _decoded(_registration_from_json, result)

    def search_similar(
        self, phash: int, radius: int | None = None, at: bytes | None = None
    ) -> list[tuple[int, int]]:
        """[(registration id, distance)] within `radius` (default: the chain's) of a pHash, nearest first."""
        result = self.call("copyright_searchSimilar", f"0x{phash:016x}", radius, *_at(at))
        return _decoded(lambda items: [(int(i["id"]), int(i["distance"])) for i in items], result)

    def verify_image(self, image: bytes | str | os.PathLike[str], at: bytes | None = None) -> VerifyResult:
        """Who owns this image? `image` is a file's bytes or its path (module `copyright_verifyImage`)."""
        data = image if isinstance(image, bytes) else Path(image).read_bytes()
        result = self.call("copyright_verifyImage", base64.b64encode(data).decode("ascii"), *_at(at))
        return _decoded(VerifyResult.from_json, result)

    def registrations_of(
        self, account_id: bytes, start: int = 0, limit: int = 100, at: bytes | None = None
    ) -> list[int]:
        """Ids of the registrations an account owns (one page; see `copyright_registrationsOf`)."""
        result = self.call("copyright_registrationsOf", to_hex(account_id), start, limit, *_at(at))
        return _decoded(lambda items: [int(i) for i in items], result)

    def licence_offers(self, registration_id: int, at: bytes | None = None) -> list[Offer]:
        """The open licence offers of a registration."""
        result = self.call("licensing_offers", registration_id, *_at(at))
        return _decoded(lambda items: [_offer_from_json(i) for i in items], result)

    def licences_of(
        self, account_id: bytes, start: int = 0, limit: int = 100, at: bytes | None = None
    ) -> list[Licence]:
        """Licences an account bought, in purchase order (one page)."""
        result = self.call("licensing_licensesOf", to_hex(account_id), start, limit, *_at(at))
        return _decoded(lambda items: [_licence_from_json(i) for i in items], result)

    def emission_status(self, at: bytes | None = None) -> EmissionStatus | None:
        """Mined supply, current reward rate and what remains; None on a chain without mining."""
        result = self.call("emission_status", *_at(at))
        return None if result is None else _decoded(_emission_from_json, result)

    def licensing_params(self, at: bytes | None = None) -> LicensingParams:
        """The chain's licence fee rule (to show a buyer the fee before buying)."""
        return licensing.read_params(lambda key: self.storage(key, at))

    def total_issuance(self, at: bytes | None = None) -> int:
        """All IMG in existence, in base units (`balances:total_issuance`)."""
        raw = self.storage(KEY_TOTAL_ISSUANCE, at)
        return 0 if raw is None else int.from_bytes(raw, "big")

    def offer_licence_rf(
        self, signer: Keypair, registration_id: int, price: int, max_resolution: int = 0, **tx: Any
    ) -> int:
        """Offer a royalty-free licence (perpetual, non-exclusive, up to `max_resolution` pixels, 0 = any);
        returns the offer id. `tx`: tip, mortal_period, timeout as for `submit_call`."""
        call = Call("licensing", "offer_rf", (registration_id, u128_to_bytes(price), max_resolution))
        return self._offered(self.submit_call(signer, call, **tx))

    def offer_licence_rm(
        self,
        signer: Keypair,
        registration_id: int,
        price: int,
        *,
        use: str,
        territory: str,
        duration_ms: int,
        run_size: int = 0,
        exclusive: bool = False,
        **tx: Any,
    ) -> int:
        """Offer a rights-managed licence with terms; it expires `duration_ms` after each purchase."""
        args = (registration_id, u128_to_bytes(price), use, territory, run_size, duration_ms, exclusive)
        return self._offered(self.submit_call(signer, Call("licensing", "offer_rm", args), **tx))

    def withdraw_offer(self, signer: Keypair, offer_id: int, **tx: Any) -> CallOutcome:
        return self.submit_call(signer, Call("licensing", "withdraw_offer", (offer_id,)), **tx)

    def buy_licence(self, signer: Keypair, offer_id: int, **tx: Any) -> Purchase:
        """Buy a licence: the price goes to the owner in full, the licence fee is burned."""
        outcome = self.submit_call(signer, Call("licensing", "purchase", (offer_id,)), **tx)
        event = outcome.find("licensing", "Purchased")
        if event is None:
            raise RpcClientError("the purchase was included but reported no Purchased event")
        return Purchase(
            licence_id=event.int(0), offer_id=event.int(1), registration_id=event.int(2), seller=event.fields[4],
            price=event.int(5), fee=event.int(6), expires_at_ms=event.int(7), outcome=outcome,
        )  # fmt: skip

    def _offered(self, outcome: CallOutcome) -> int:
        event = outcome.find("licensing", "Offered")
        if event is None:
            raise RpcClientError("the offer was included but reported no Offered event")
        return event.int(0)


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


# ---------------------------------------------------------------------------------------------
# Copyright, licensing and emission results
# ---------------------------------------------------------------------------------------------


def _at(at: bytes | None) -> list[str]:
    return [] if at is None else [to_hex(at)]


@dataclass(frozen=True)
class ChainEvent:
    """One runtime event. Integer fields travel as 16-byte big-endian u128 (`Event.to_wire`):
    read them with `int(i)`; account ids and hashes are bytes, names are str."""

    phase: int | None  # extrinsic index in the block; None for block initialisation/finalisation
    module: str
    name: str
    fields: tuple[Any, ...]

    @classmethod
    def from_wire(cls, obj: Any) -> ChainEvent:
        phase, module, name, fields = obj
        return cls(None if phase == -1 else int(phase), str(module), str(name), tuple(fields))

    def int(self, index: int) -> int:
        value = self.fields[index]
        return int.from_bytes(value, "big") if isinstance(value, bytes) else int(value)


@dataclass(frozen=True)
class CallOutcome:
    """A submitted extrinsic: its hash and, once included, its block and events."""

    ext_hash: bytes
    block_hash: bytes | None
    events: tuple[ChainEvent, ...] = ()

    def find(self, module: str, name: str) -> ChainEvent | None:
        return next((e for e in self.events if (e.module, e.name) == (module, name)), None)


class CallFailed(RpcClientError):
    """The extrinsic was included (and paid its fee) but its call failed: `error` is
    "module.Error", `detail` what the rule ran into (e.g. the existing registration's id)."""

    def __init__(
        self, outcome: CallOutcome, error: str, detail: tuple[Any, ...] = (), message: str = ""
    ) -> None:
        shown = ", ".join(str(d) for d in detail)
        super().__init__(
            message or f"{error}" + (f" ({shown})" if shown else "") + f" in block {_short(outcome)}"
        )
        self.outcome = outcome
        self.error = error
        self.detail = detail

    @classmethod
    def from_event(cls, outcome: CallOutcome, event: ChainEvent) -> CallFailed:
        error = str(event.fields[0]) if event.fields else "unknown"
        # The runtime's error details are ids and counts (u128 on the wire); anything else stays bytes.
        detail = tuple(
            int.from_bytes(f, "big") if isinstance(f, bytes) and len(f) == 16 else f for f in event.fields[1:]
        )
        return cls(outcome, error, detail)


_REJECTIONS = {
    "copyright.DuplicateSha256": "this exact file is already registered as registration #{0}",
    "copyright.NearDuplicate": (
        "the image is a near-duplicate of registration #{0} (pHash distance {1}); only a version with more "
        "pixels than its largest, or the RAW original, can be added"
    ),
    "copyright.PayloadTaken": "its watermark payload is already used by registration #{0}",
    "copyright.TooManyVersions": "registration #{0} already has the maximum number of versions",
}


class RegistrationRejected(CallFailed):
    """The chain refused a registration by its ownership rules; `registration_id` is the image it
    collided with (None for errors that name none)."""

    def __init__(self, outcome: CallOutcome, error: str, detail: tuple[Any, ...] = ()) -> None:
        template = _REJECTIONS.get(error)
        reason = template.format(*detail) if template and len(detail) >= template.count("{") else error
        super().__init__(outcome, error, detail, f"registration rejected: {reason} ({error})")

    @property
    def registration_id(self) -> int | None:
        return self.detail[0] if self.detail and isinstance(self.detail[0], int) else None


@dataclass(frozen=True)
class RegistrationOutcome:
    """What the chain made of an upload (`kind`: "registered", "version", "takeover"; "submitted"
    without waiting). A novel registration may earn a PoD `reward` (base units), or a
    `not_rewarded` reason (TooSmall, TooLittleDetail, DailyLimit, ...)."""

    upload: PreparedUpload
    outcome: CallOutcome
    kind: str
    registration_id: int | None = None
    version_index: int | None = None
    previous_owner: bytes | None = None
    reward: int | None = None
    not_rewarded: str | None = None

    @property
    def watermarked(self) -> Path | None:
        return self.upload.watermarked

    @classmethod
    def from_outcome(cls, outcome: CallOutcome, upload: PreparedUpload) -> RegistrationOutcome:
        if outcome.block_hash is None:
            return cls(upload, outcome, "submitted")
        registered = outcome.find("copyright", "Registered")
        version = outcome.find("copyright", "VersionAdded")
        takeover = outcome.find("copyright", "OwnershipTakenOver")
        rewarded = outcome.find("pod", "Rewarded")
        skipped = outcome.find("pod", "NotRewarded")
        if registered is not None:
            return cls(
                upload, outcome, "registered", registered.int(0), 0,
                reward=rewarded.int(2) if rewarded is not None else None,
                not_rewarded=str(skipped.fields[2]) if skipped is not None else None,
            )  # fmt: skip
        if version is not None:
            return cls(
                upload, outcome, "takeover" if takeover is not None else "version", version.int(0), version.int(1),
                previous_owner=takeover.fields[1] if takeover is not None else None,
            )  # fmt: skip
        raise RpcClientError(f"registration included in {_short(outcome)} without a copyright event")


@dataclass(frozen=True)
class Purchase:
    licence_id: int
    offer_id: int
    registration_id: int
    seller: bytes
    price: int
    fee: int  # burned
    expires_at_ms: int  # 0: perpetual
    outcome: CallOutcome


@dataclass(frozen=True)
class VerifyMatch:
    kind: str  # "exact" (the watermark names it) or "similar" (pHash within the chain's radius)
    distance: int  # pHash distance to `version`
    version: int  # the version the copy matched (exact) or is nearest to (similar)
    registration: Registration
    offers: list[Offer]

    @property
    def owner(self) -> bytes:
        return self.registration.owner


@dataclass(frozen=True)
class VerifyResult:
    width: int
    height: int
    phash: int
    watermark: bytes | None  # the payload the validators' path reads
    matches: list[VerifyMatch]
    watermarks: list[bytes]  # every payload found: more than one if the copy was marked again

    @property
    def best(self) -> VerifyMatch | None:
        """The earliest exact match if there is one, else the nearest similar one."""
        return self.matches[0] if self.matches else None

    @classmethod
    def from_json(cls, obj: Any) -> VerifyResult:
        watermark = obj["watermark"]
        return cls(
            int(obj["width"]),
            int(obj["height"]),
            int(obj["phash"], 16),
            None if watermark is None else from_hex(watermark, length=8, what="watermark"),
            [
                VerifyMatch(
                    str(m["kind"]),
                    int(m["distance"]),
                    int(m["version"]),
                    _registration_from_json(m["registration"]),
                    [_offer_from_json(o) for o in m["offers"]],
                )  # fmt: skip
                for m in obj["matches"]
            ],
            [from_hex(w, length=8, what="watermark") for w in obj["watermarks"]],
        )


def _short(outcome: CallOutcome) -> str:
    return "?" if outcome.block_hash is None else to_hex(outcome.block_hash)[:10] + "..."


def _address(value: Any) -> bytes:
    return decode_address(value)


def _version_from_json(obj: Any) -> Version:
    return Version(
        from_hex(obj["sha256"], length=32, what="sha256"), int(obj["phash"], 16), int(obj["width"]),
        int(obj["height"]), int(obj["formatCode"]), bool(obj["isRaw"]), _address(obj["uploader"]),
        int(obj["block"]), int(obj["timestamp"]), int(obj["extrinsicIndex"]),
        from_hex(obj["watermark"], length=8, what="watermark"),
        tuple(from_hex(r, length=32, what="blob root") for r in obj["blobRoots"]),
    )  # fmt: skip


def _registration_from_json(obj: Any) -> Registration:
    return Registration(
        int(obj["id"]), _address(obj["owner"]), str(obj["title"]), str(obj["creator"]), str(obj["description"]),
        tuple(_version_from_json(v) for v in obj["versions"]),
    )  # fmt: skip


_KINDS = {name: kind for kind, name in licensing.KIND_NAMES.items()}


def _offer_from_json(obj: Any) -> Offer:
    return Offer(
        int(obj["id"]), int(obj["registrationId"]), _address(obj["seller"]), _KINDS[obj["kind"]],
        int(obj["priceRaw"]), int(obj["maxResolution"]), str(obj["use"]), str(obj["territory"]),
        int(obj["runSize"]), int(obj["durationMs"]), bool(obj["exclusive"]), int(obj["createdBlock"]),
    )  # fmt: skip


def _licence_from_json(obj: Any) -> Licence:
    return Licence(
        int(obj["id"]), int(obj["offerId"]), int(obj["registrationId"]), _address(obj["licensee"]),
        _address(obj["licensor"]), _KINDS[obj["kind"]], int(obj["priceRaw"]), int(obj["feeRaw"]),
        int(obj["maxResolution"]), str(obj["use"]), str(obj["territory"]), int(obj["runSize"]),
        bool(obj["exclusive"]), int(obj["grantedAt"]), int(obj["expiresAt"]), int(obj["block"]),
    )  # fmt: skip


def _emission_from_json(obj: Any) -> EmissionStatus:
    return EmissionStatus(
        int(obj["generatedRaw"]), int(obj["rateNumerator"]), int(obj["rateDenominator"]),
        int(obj["remainingRaw"]), int(obj["nextRewardRaw"]),
    )  # fmt: skip
