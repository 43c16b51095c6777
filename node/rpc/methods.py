"""The RPC methods: Substrate's names and JSON shapes over imagechain's node (PROTOCOL section 13).

Each method is a small `async def` taking the `CallContext` and typed parameters; `TABLE` holds
them all and is what the server dispatches on. Reads go straight to the chain database (fast,
synchronous LMDB lookups); writes go through `node.submit_extrinsic`, the same entry the network
uses, so an RPC transaction is checked by exactly the pool's rules.

"Not found" is a `null` result, as in Substrate; an unknown block given as the `at` of a state
query is error 4003; a transaction the pool refuses is one of the author errors (1001, 1010-1016)
with the pool's reason as `data`.
"""

from __future__ import annotations

import base64
import inspect
import re
import weakref
from typing import Annotated, Any

import trio

from node.codec import U64_MAX
from node.core.chain import StatePruned
from node.core.txpool import PoolRejected
from node.keys import NETWORK_PREFIX, AddressError, decode_address, encode_address
from node.rpc.encoding import (
    block_to_json,
    from_hex,
    from_quantity,
    header_to_json,
    jsonable,
    to_hex,
)
from node.rpc.errors import (
    METHOD_NOT_FOUND,
    RpcError,
    invalid_params,
    pool_rejection,
    state_discarded,
    unknown_block,
)
from node.rpc.jsonrpc import JSON, CallContext, MethodTable, ParamType
from node.runtime import copyright, emission, licensing, timestamp
from node.state.trie import MissingNode
from node.types import HASH_LEN, MAX_EXTRINSIC_BYTES, Header, extrinsic_hash
from node.units import DECIMALS, format_img

TABLE = MethodTable()
RPC_METHODS_VERSION = 1
OPENRPC_VERSION = "1.2.6"

MAX_STORAGE_KEY_BYTES = 4096
MAX_PROOF_KEYS = 1000
MAX_BLOCK_NUMBERS = 1000
MAX_SUBSCRIPTION_ID_LEN = 64

# Watch statuses after which a transaction's story is over (Substrate closes the subscription).
FINAL_TX_STATUSES = frozenset({"finalized", "dropped", "invalid", "usurped", "finalityTimeout"})

# ---------------------------------------------------------------------------------------------
# Parameter types
# ---------------------------------------------------------------------------------------------

_HEX_SCHEMA = {"type": "string", "pattern": "^0x([0-9a-fA-F]{2})*$"}
_HASH_SCHEMA = {"type": "string", "pattern": "^0x[0-9a-fA-F]{64}$"}
_NUMBER_SCHEMA = {
    "oneOf": [{"type": "integer", "minimum": 0}, {"type": "string", "pattern": "^0x[0-9a-fA-F]+$"}]
}


def _hash(value: JSON) -> bytes:
    return from_hex(value, length=HASH_LEN, what="hash")


def _extrinsic(value: JSON) -> bytes:
    return from_hex(value, max_len=MAX_EXTRINSIC_BYTES, what="extrinsic")


def _storage_key(value: JSON) -> bytes:
    return from_hex(value, max_len=MAX_STORAGE_KEY_BYTES, what="storage key")


def _storage_keys(value: JSON) -> list[bytes]:
    if not isinstance(value, list):
        raise ValueError("expected an array of 0x hex storage keys")
    if len(value) > MAX_PROOF_KEYS:
        raise ValueError(f"at most {MAX_PROOF_KEYS} keys per proof")
    return [_storage_key(key) for key in value]


def _block_numbers(value: JSON) -> int | list[int]:
    """One block number, or a list of them (Substrate's `ListOrValue<NumberOrHex>`)."""
    if isinstance(value, list):
        if len(value) > MAX_BLOCK_NUMBERS:
            raise ValueError(f"at most {MAX_BLOCK_NUMBERS} block numbers per call")
        return [from_quantity(item) for item in value]
    return from_quantity(value)


def _account(value: JSON) -> bytes:
    """A text address, or a raw 32-byte account id in 0x hex."""
    if isinstance(value, str) and value.startswith("0x"):
        return from_hex(value, length=32, what="account id")
    try:
        return decode_address(value)
    except AddressError as exc:
        raise ValueError(str(exc)) from None


def _subscription_id(value: JSON) -> str:
    if not isinstance(value, str) or len(value) > MAX_SUBSCRIPTION_ID_LEN:
        raise ValueError("expected a subscription id string")
    return value


Hash = Annotated[bytes, ParamType(_hash, _HASH_SCHEMA)]
ExtrinsicBytes = Annotated[bytes, ParamType(_extrinsic, _HEX_SCHEMA)]
StorageKey = Annotated[bytes, ParamType(_storage_key, _HEX_SCHEMA)]
StorageKeys = Annotated[list[bytes], ParamType(_storage_keys, {"type": "array", "items": _HEX_SCHEMA})]
BlockNumbers = Annotated[
    int | list[int],
    ParamType(_block_numbers, {"oneOf": [_NUMBER_SCHEMA, {"type": "array", "items": _NUMBER_SCHEMA}]}),
]
AccountId = Annotated[
    bytes, ParamType(_account, {"type": "string", "description": "address or 0x account id"})
]
SubscriptionId = Annotated[str, ParamType(_subscription_id, {"type": "string"})]


def _peer_id(value: JSON) -> str:
    if not isinstance(value, str) or not 1 <= len(value) <= 128 or not value.isalnum():
        raise ValueError("expected a base58 libp2p peer id")
    return value


PeerId = Annotated[str, ParamType(_peer_id, {"type": "string"})]

# Result schemas, for rpc.discover.
_HEADER_RESULT = {"type": ["object", "null"], "description": "header: parentHash, number, stateRoot, ..."}
_SUBSCRIPTION_RESULT = {"type": "string", "description": "subscription id"}

# ---------------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------------


def _block_at(ctx: CallContext, at: bytes | None) -> bytes:
    """The block a state query reads: `at`, which must be known, or the best block."""
    if at is None:
        return ctx.node.chain.best_header().hash
    if ctx.node.chain.header(at) is None:
        raise unknown_block(at)
    return at


async def _submit(ctx: CallContext, encoded: bytes) -> bytes:
    """Hand an extrinsic to the pool; a refusal becomes the matching author error.

    The core may check signatures in a worker thread, in which case `submit_extrinsic` is a
    coroutine function; both forms are accepted.
    """
    try:
        result = ctx.node.submit_extrinsic(encoded)
        if inspect.isawaitable(result):
            result = await result
    except PoolRejected as exc:
        raise pool_rejection(exc.reason, exc.detail) from None
    return result


def _require_session(ctx: CallContext) -> Any:
    assert ctx.session is not None, "websocket_only methods always have a session"
    return ctx.session


def _render_tx_status(update: tuple[str, bytes | None]) -> JSON:
    """Substrate's TransactionStatus JSON: "ready", or {"inBlock": "0x..."} when a hash comes with it."""
    status, block_hash = update
    return status if block_hash is None else {status: to_hex(block_hash)}


def _is_final_tx_status(update: tuple[str, bytes | None]) -> bool:
    return update[0] in FINAL_TX_STATUSES


# ---------------------------------------------------------------------------------------------
# system_*
# ---------------------------------------------------------------------------------------------


@TABLE.method("system_name", result={"type": "string"})
async def system_name(ctx: CallContext) -> str:
    """The node implementation's name (what `--name` set)."""
    return ctx.node.name


@TABLE.method("system_version", result={"type": "string"})
async def system_version(ctx: CallContext) -> str:
    """The node implementation's version."""
    return ctx.node.version


@TABLE.method("system_chain", result={"type": "string"})
async def system_chain(ctx: CallContext) -> str:
    """The chain's name from the chain spec."""
    return ctx.node.spec.name


@TABLE.method("system_chainType", result={"oneOf": [{"type": "string"}, {"type": "object"}]})
async def system_chainType(ctx: CallContext) -> JSON:
    """The chain type as Substrate spells it: "Development", "Local", "Live" or {"Custom": name}."""
    kind = str(ctx.node.spec.chain_type)
    known = {"development": "Development", "local": "Local", "live": "Live"}
    return known.get(kind.lower(), {"Custom": kind})


@TABLE.method("system_properties", result={"type": "object"})
async def system_properties(ctx: CallContext) -> JSON:
    """Token symbol and decimals and the address format, so wallets can display amounts and addresses."""
    token = (
        ctx.node.spec.raw.get("token", {}) if isinstance(getattr(ctx.node.spec, "raw", None), dict) else {}
    )
    return {
        "tokenSymbol": token.get("symbol", "IMG"),
        "tokenDecimals": int(token.get("decimals", DECIMALS)),
        "ss58Format": NETWORK_PREFIX,
    }


@TABLE.method("system_health", result={"type": "object"})
async def system_health(ctx: CallContext) -> JSON:
    """Peers, whether the node is syncing, and whether it should have peers (not on a dev chain)."""
    return {
        "peers": len(ctx.node.peers()),
        "isSyncing": bool(ctx.node.is_syncing()),
        "shouldHavePeers": str(ctx.node.spec.chain_type).lower() != "development",
    }


@TABLE.method("system_peers", result={"type": "array"})
async def system_peers(ctx: CallContext) -> JSON:
    """The connected peers (peerId, roles, bestHash, bestNumber)."""
    return jsonable(ctx.node.peers())


@TABLE.method("system_localPeerId", result={"type": "string"})
async def system_localPeerId(ctx: CallContext) -> str:
    """This node's libp2p peer id (empty when the node runs without networking)."""
    network = getattr(ctx.node, "network", None)
    return network.network.peer_id if network is not None else ""


@TABLE.method("system_localListenAddresses", result={"type": "array"})
async def system_localListenAddresses(ctx: CallContext) -> JSON:
    """The multiaddrs (ending in /p2p/<peer id>) other nodes can use as bootnodes."""
    network = getattr(ctx.node, "network", None)
    return list(network.network.listen_addrs) if network is not None else []


def _unsafe_network(ctx: CallContext) -> Any:
    """Operator methods (peer blocking) are only served when the node allows unsafe RPC methods
    (Substrate's `--rpc-methods unsafe`; the default when RPC listens on loopback only)."""
    if not getattr(ctx.node.config, "rpc_unsafe", False):
        raise RpcError(METHOD_NOT_FOUND, "Method not found", "unsafe RPC methods are disabled on this node")
    network = getattr(ctx.node, "network", None)
    if network is None:
        raise RpcError(METHOD_NOT_FOUND, "Method not found", "this node runs without networking")
    return network.network


@TABLE.method("network_blockPeer", result={"type": "boolean"})
async def network_blockPeer(ctx: CallContext, peer_id: PeerId) -> bool:
    """Disconnect a peer and refuse it until unblocked (operators, partition tests). Unsafe."""
    _unsafe_network(ctx).block_peer(peer_id)
    return True


@TABLE.method("network_unblockPeer", result={"type": "boolean"})
async def network_unblockPeer(ctx: CallContext, peer_id: PeerId) -> bool:
    """Accept a blocked peer again. Unsafe."""
    _unsafe_network(ctx).unblock_peer(peer_id)
    return True


@TABLE.method("system_syncState", result={"type": "object"})
async def system_syncState(ctx: CallContext) -> JSON:
    """Block numbers: where this sync started, where the node is, the highest a peer announced."""
    state = ctx.node.sync_state()

    def pick(name: str, short: str) -> JSON:
        return state.get(name, state.get(short))

    return {
        "startingBlock": pick("startingBlock", "starting"),
        "currentBlock": pick("currentBlock", "current"),
        "highestBlock": pick("highestBlock", "highest"),
    }


@TABLE.method("system_accountNextIndex", result={"type": "integer"})
async def system_accountNextIndex(ctx: CallContext, account: AccountId) -> int:
    """The nonce to sign the account's next transaction with: its state nonce, past its pooled ones."""
    return int(ctx.node.next_nonce(account))


# ---------------------------------------------------------------------------------------------
# chain_*
# ---------------------------------------------------------------------------------------------


@TABLE.method("chain_getHeader", result=_HEADER_RESULT)
async def chain_getHeader(ctx: CallContext, hash: Hash | None = None) -> JSON:
    """The header of a block (the best block by default); null if the node does not have it."""
    header = ctx.node.chain.best_header() if hash is None else ctx.node.chain.header(hash)
    return None if header is None else header_to_json(header)


@TABLE.method("chain_getBlock", result={"type": ["object", "null"]})
async def chain_getBlock(ctx: CallContext, hash: Hash | None = None) -> JSON:
    """A block with its justifications (the best block by default); null if unknown."""
    block_hash = ctx.node.chain.best_header().hash if hash is None else hash
    block = ctx.node.chain.block(block_hash)
    if block is None:
        return None
    return block_to_json(block, ctx.node.chain.justification(block_hash))


@TABLE.method("chain_getBlockHash", result={"oneOf": [{"type": ["string", "null"]}, {"type": "array"}]})
async def chain_getBlockHash(ctx: CallContext, number: BlockNumbers | None = None) -> JSON:
    """The canonical block hash at a height (or at each of a list of heights); the best by default."""

    def lookup(height: int) -> str | None:
        found = ctx.node.chain.hash_at(height)
        return None if found is None else to_hex(found)

    if number is None:
        return to_hex(ctx.node.chain.best_header().hash)
    if isinstance(number, list):
        return [lookup(height) for height in number]
    return lookup(number)


@TABLE.method("chain_getFinalizedHead", result=_HASH_SCHEMA)
async def chain_getFinalizedHead(ctx: CallContext) -> str:
    """The hash of the last finalized block."""
    return to_hex(ctx.node.chain.finalized_header().hash)


@TABLE.method("chain_subscribeNewHeads", result=_SUBSCRIPTION_RESULT, websocket_only=True)
async def chain_subscribeNewHeads(ctx: CallContext) -> str:
    """Notify `chain_newHead` with each new best header, starting with the current one."""
    return _subscribe_heads(
        ctx, "chain_newHead", ctx.node.notifier.subscribe_new_heads, ctx.node.chain.best_header
    )


@TABLE.method("chain_unsubscribeNewHeads", result={"type": "boolean"}, websocket_only=True)
async def chain_unsubscribeNewHeads(ctx: CallContext, subscription: SubscriptionId) -> bool:
    """Stop a `chain_subscribeNewHeads` subscription; false if there was none with this id."""
    return _require_session(ctx).unsubscribe("chain_newHead", subscription)


@TABLE.method("chain_subscribeFinalizedHeads", result=_SUBSCRIPTION_RESULT, websocket_only=True)
async def chain_subscribeFinalizedHeads(ctx: CallContext) -> str:
    """Notify `chain_finalizedHead` with each newly finalized header, starting with the current one."""
    node = ctx.node
    return _subscribe_heads(
        ctx, "chain_finalizedHead", node.notifier.subscribe_finalized_heads, node.chain.finalized_header
    )


@TABLE.method("chain_unsubscribeFinalizedHeads", result={"type": "boolean"}, websocket_only=True)
async def chain_unsubscribeFinalizedHeads(ctx: CallContext, subscription: SubscriptionId) -> bool:
    """Stop a `chain_subscribeFinalizedHeads` subscription; false if there was none with this id."""
    return _require_session(ctx).unsubscribe("chain_finalizedHead", subscription)


def _subscribe_heads(ctx: CallContext, notification: str, open_channel: Any, current: Any) -> str:
    session = _require_session(ctx)
    session.ensure_capacity()
    channel = open_channel()
    first: Header = current()
    return session.subscribe(
        notification,
        channel,
        header_to_json,
        release=lambda: ctx.node.notifier.unsubscribe(channel),
        initial=[first],
    )


# ---------------------------------------------------------------------------------------------
# state_*
# ---------------------------------------------------------------------------------------------


@TABLE.method("state_getStorage", result={"type": ["string", "null"]})
async def state_getStorage(ctx: CallContext, key: StorageKey, at: Hash | None = None) -> JSON:
    """The raw value of a storage key after block `at` (the best block by default); null if unset."""
    block_hash = _block_at(ctx, at)
    try:
        value = ctx.node.chain.state_get(block_hash, key)
    except (StatePruned, MissingNode):
        raise state_discarded(block_hash) from None
    return None if value is None else to_hex(value)


@TABLE.method("state_getReadProof", result={"type": "object"})
async def state_getReadProof(ctx: CallContext, keys: StorageKeys, at: Hash | None = None) -> JSON:
    """A Merkle proof of the keys' values (or absence) against block `at`'s state root."""
    block_hash = _block_at(ctx, at)
    try:
        proof = ctx.node.chain.read_proof(block_hash, keys)
    except (StatePruned, MissingNode):
        raise state_discarded(block_hash) from None
    return {"at": to_hex(block_hash), "proof": [to_hex(node) for node in proof]}


# ---------------------------------------------------------------------------------------------
# author_*
# ---------------------------------------------------------------------------------------------


@TABLE.method("author_submitExtrinsic", result=_HASH_SCHEMA)
async def author_submitExtrinsic(ctx: CallContext, extrinsic: ExtrinsicBytes) -> str:
    """Submit an encoded signed extrinsic to the pool; returns its hash."""
    return to_hex(await _submit(ctx, extrinsic))


@TABLE.method("author_pendingExtrinsics", result={"type": "array", "items": _HEX_SCHEMA})
async def author_pendingExtrinsics(ctx: CallContext) -> JSON:
    """Every extrinsic in the pool, ready or future, in arrival order."""
    return [to_hex(encoded) for encoded in ctx.node.pool.pending()]


@TABLE.method("author_submitAndWatchExtrinsic", result=_SUBSCRIPTION_RESULT, websocket_only=True)
async def author_submitAndWatchExtrinsic(ctx: CallContext, extrinsic: ExtrinsicBytes) -> str:
    """Submit, then notify `author_extrinsicUpdate` with each status until a final one.

    The watch is opened before the submission so that not even the first status ("ready" or
    "future", which the pool reports while admitting) can be missed.
    """
    session = _require_session(ctx)
    session.ensure_capacity()
    notifier = ctx.node.notifier
    channel = notifier.watch_extrinsic(extrinsic_hash(extrinsic))
    try:
        await _submit(ctx, extrinsic)
    except BaseException:
        notifier.unsubscribe(channel)
        raise
    return session.subscribe(
        "author_extrinsicUpdate",
        channel,
        _render_tx_status,
        release=lambda: notifier.unsubscribe(channel),
        is_final=_is_final_tx_status,
    )


@TABLE.method("author_unwatchExtrinsic", result={"type": "boolean"}, websocket_only=True)
async def author_unwatchExtrinsic(ctx: CallContext, subscription: SubscriptionId) -> bool:
    """Stop watching an extrinsic; false if there was no such watch on this connection."""
    return _require_session(ctx).unsubscribe("author_extrinsicUpdate", subscription)


# ---------------------------------------------------------------------------------------------
# rpc_*
# ---------------------------------------------------------------------------------------------


@TABLE.method("rpc_methods", result={"type": "object"})
async def rpc_methods(ctx: CallContext) -> JSON:
    """The names of every method this server answers."""
    return {"methods": TABLE.names(), "version": RPC_METHODS_VERSION}


@TABLE.method("rpc.discover", result={"type": "object"})
async def rpc_discover(ctx: CallContext) -> JSON:
    """The OpenRPC document describing every method, generated from this table."""
    return {
        "openrpc": OPENRPC_VERSION,
        "info": {"title": "imagechain JSON-RPC", "version": ctx.node.version},
        "methods": [
            {
                "name": method.name,
                "summary": method.summary,
                "params": [
                    {"name": param.name, "required": param.required, "schema": param.type.schema}
                    for param in method.params
                ],
                "result": {"name": "result", "schema": method.result_schema},
                **({"x-websocket-only": True} if method.websocket_only else {}),
            }
            for method in TABLE
        ],
    }


# ---------------------------------------------------------------------------------------------
# copyright_*, licensing_*, emission_* (PROTOCOL sections 9-11; white paper 2.1.3.2 and 3)
# ---------------------------------------------------------------------------------------------
#
# Reads of the runtime's state through its own helpers (`copyright.get_registration`,
# `search_similar`, `licensing.offers_of`, ...), at the best block or at `at`. Accounts are
# SS58 addresses; hashes, pHashes and payloads 0x hex; amounts both ways: a decimal string in
# IMG ("12.5") and the raw integer in base units ("...Raw", a JSON integer that may exceed 2**53:
# parse it with a big-integer JSON reader). Timestamps are milliseconds since the Unix epoch.
#
# `copyright_verifyImage` is the one method that does real CPU work (decode, rendition, watermark
# extraction with the resynchronisation search: up to ~1 s for a large unmarked photo). It runs
# in a worker thread so the node's trio loop keeps authoring and importing, and at most
# MAX_IMAGE_JOBS run at once per node, so a burst of requests queues instead of starving the
# chain. (The numba kernels hold the GIL while they run, ~1-30 ms at a time; the thread bounds
# the loop's stalls to that, not to the whole verification.)

MAX_VERIFY_IMAGE_BYTES = 7 * 1024 * 1024  # base64 of this fits the default 10 MiB request limit
MAX_IMAGE_JOBS = 2
MAX_PAGE = 1000
DEFAULT_PAGE = 100
MAX_SIMILAR_RESULTS = 1000
MAX_VERIFY_SIMILAR = 20

_image_limiters: weakref.WeakKeyDictionary[Any, trio.CapacityLimiter] = weakref.WeakKeyDictionary()
_BASE64 = re.compile(r"[A-Za-z0-9+/]*={0,2}")
_DATA_URI = re.compile(r"data:[\w.+-]+/[\w.+-]+;base64,", re.IGNORECASE)


def _u64(value: JSON) -> int:
    return from_quantity(value, max_value=U64_MAX, what="id")


def _sha256(value: JSON) -> bytes:
    return from_hex(value, length=HASH_LEN, what="sha256")


def _phash(value: JSON) -> int:
    """A 64-bit pHash: a JSON integer, or 0x and 1-16 hex digits (leading zeros welcome)."""
    if isinstance(value, bool):
        raise ValueError("expected a 64-bit pHash as an integer or 0x hex")
    if isinstance(value, int):
        number = value
    elif isinstance(value, str) and re.fullmatch(r"0x[0-9a-fA-F]{1,16}", value):
        number = int(value, 16)
    else:
        raise ValueError("expected a 64-bit pHash as an integer or 0x followed by up to 16 hex digits")
    if not 0 <= number <= U64_MAX:
        raise ValueError("a pHash is an unsigned 64-bit number")
    return number


def _radius(value: JSON) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError("expected an integer radius")
    if not 0 <= value <= copyright.MAX_SEARCH_RADIUS:
        raise ValueError(
            f"radius must be in 0..{copyright.MAX_SEARCH_RADIUS} (the index is exact up to there)"
        )
    return value


def _count(value: JSON) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError("expected a non-negative integer")
    return value


def _image_base64(value: JSON) -> bytes:
    """Standard base64 (optionally as a data: URI; line breaks ignored), at most MAX_VERIFY_IMAGE_BYTES
    once decoded."""
    if not isinstance(value, str):
        raise ValueError("expected the image file as a base64 string")
    prefix = _DATA_URI.match(value)
    text = "".join((value[prefix.end() :] if prefix else value).split())
    if len(text) > 4 * ((MAX_VERIFY_IMAGE_BYTES + 2) // 3):
        raise ValueError(f"image larger than {MAX_VERIFY_IMAGE_BYTES // (1024 * 1024)} MiB")
    if len(text) % 4 or not _BASE64.fullmatch(text):
        raise ValueError("not valid base64 (standard alphabet, padded)")
    data = base64.b64decode(text)
    if not data:
        raise ValueError("empty image")
    return data


RegistrationId = Annotated[int, ParamType(_u64, _NUMBER_SCHEMA)]
OfferId = RegistrationId
Sha256 = Annotated[bytes, ParamType(_sha256, _HASH_SCHEMA)]
PHash = Annotated[
    int,
    ParamType(
        _phash,
        {
            "oneOf": [
                {"type": "integer", "minimum": 0},
                {"type": "string", "pattern": "^0x[0-9a-fA-F]{1,16}$"},
            ]
        },
    ),
]
Radius = Annotated[
    int, ParamType(_radius, {"type": "integer", "minimum": 0, "maximum": copyright.MAX_SEARCH_RADIUS})
]
Count = Annotated[int, ParamType(_count, {"type": "integer", "minimum": 0})]
ImageData = Annotated[
    bytes,
    ParamType(
        _image_base64,
        {
            "type": "string",
            "contentEncoding": "base64",
            "description": "the image file, base64 (data: URI allowed)",
        },
    ),
]

_REGISTRATION_RESULT = {
    "type": ["object", "null"],
    "description": "registration: id, owner, title, creator, description, sha256, phash, width, height, "
    "format, isRaw, block, timestamp, versions[], tags[]",
}
_OFFERS_RESULT = {
    "type": "array",
    "description": "open offers: id, registrationId, seller, kind (RF|RM), price, priceRaw, fee, feeRaw, terms",
}


def _read_state(ctx: CallContext, at: bytes | None, read: Any) -> Any:
    """`read(get)` over the state after block `at` (best by default); pruned state is error 4003."""
    block_hash = _block_at(ctx, at)
    try:
        return read(ctx.node.chain.state_reader(block_hash))
    except (StatePruned, MissingNode):
        raise state_discarded(block_hash) from None


def _img(value: int) -> str:
    return format_img(value)


def _version_json(index: int, version: copyright.Version) -> dict[str, Any]:
    return {
        "index": index,
        "sha256": to_hex(version.sha256),
        "phash": f"0x{version.phash:016x}",
        "width": version.width,
        "height": version.height,
        "format": copyright.FORMATS.get(version.format_code, "unknown"),
        "formatCode": version.format_code,
        "isRaw": version.is_raw,
        "uploader": encode_address(version.uploader),
        "block": version.block,
        "timestamp": version.timestamp_ms,
        "extrinsicIndex": version.ext_index,
        "watermark": to_hex(version.wm_payload),
        "blobRoots": [to_hex(root) for root in version.blob_roots],
    }


def _registration_json(get: Any, registration: copyright.Registration) -> dict[str, Any]:
    original = registration.original
    return {
        "id": registration.id,
        "owner": encode_address(registration.owner),
        "title": registration.title,
        "creator": registration.creator,
        "description": registration.description,
        "sha256": to_hex(original.sha256),
        "phash": f"0x{original.phash:016x}",
        "width": original.width,
        "height": original.height,
        "format": copyright.FORMATS.get(original.format_code, "unknown"),
        "isRaw": original.is_raw,
        "block": original.block,
        "timestamp": original.timestamp_ms,
        "versions": [_version_json(i, v) for i, v in enumerate(registration.versions)],
        "tags": [
            {"tag": t.tag, "tagger": encode_address(t.tagger), "block": t.block}
            for t in copyright.tags_of(get, registration.id)
        ],
    }


def _offer_json(offer: licensing.Offer, params: licensing.LicensingParams) -> dict[str, Any]:
    fee = licensing.licence_fee(params, offer.price)
    return {
        "id": offer.id,
        "registrationId": offer.registration_id,
        "seller": encode_address(offer.seller),
        "kind": licensing.KIND_NAMES.get(offer.kind, str(offer.kind)),
        "price": _img(offer.price),
        "priceRaw": offer.price,
        "fee": _img(fee),  # burned, paid by the buyer on top of the price
        "feeRaw": fee,
        "maxResolution": offer.max_resolution,
        "use": offer.use,
        "territory": offer.territory,
        "runSize": offer.run_size,
        "durationMs": offer.duration_ms,
        "exclusive": offer.exclusive,
        "createdBlock": offer.created_block,
    }


def _licence_json(licence: licensing.Licence, now_ms: int) -> dict[str, Any]:
    return {
        "id": licence.id,
        "offerId": licence.offer_id,
        "registrationId": licence.registration_id,
        "licensee": encode_address(licence.licensee),
        "licensor": encode_address(licence.licensor),
        "kind": licensing.KIND_NAMES.get(licence.kind, str(licence.kind)),
        "price": _img(licence.price),
        "priceRaw": licence.price,
        "fee": _img(licence.fee),
        "feeRaw": licence.fee,
        "maxResolution": licence.max_resolution,
        "use": licence.use,
        "territory": licence.territory,
        "runSize": licence.run_size,
        "exclusive": licence.exclusive,
        "grantedAt": licence.granted_at_ms,
        "expiresAt": licence.expires_at_ms,
        "block": licence.block,
        "active": licence.is_active(now_ms),
    }


def _fraction(numerator: int, denominator: int) -> str:
    """numerator / denominator as an exact decimal string, for a power-of-ten denominator."""
    digits = len(str(denominator)) - 1
    assert denominator == 10**digits
    whole, rest = divmod(numerator, denominator)
    return str(whole) if rest == 0 else f"{whole}.{str(rest).rjust(digits, '0').rstrip('0')}"


def _image_limiter(node: Any) -> trio.CapacityLimiter:
    limiter = _image_limiters.get(node)
    if limiter is None:
        limiter = _image_limiters[node] = trio.CapacityLimiter(MAX_IMAGE_JOBS)
    return limiter


@TABLE.method("copyright_getRegistration", result=_REGISTRATION_RESULT)
async def copyright_getRegistration(ctx: CallContext, id: RegistrationId, at: Hash | None = None) -> JSON:
    """A registration with all its versions and tags; null if there is none with this id."""

    def read(get: Any) -> JSON:
        registration = copyright.get_registration(get, id)
        return None if registration is None else _registration_json(get, registration)

    return _read_state(ctx, at, read)


@TABLE.method("copyright_findBySha256", result=_REGISTRATION_RESULT)
async def copyright_findBySha256(ctx: CallContext, sha256: Sha256, at: Hash | None = None) -> JSON:
    """The registration one of whose versions is exactly this file (its SHA-256); null if none."""

    def read(get: Any) -> JSON:
        found = copyright.find_by_sha256(get, sha256)
        registration = None if found is None else copyright.get_registration(get, found)
        return None if registration is None else _registration_json(get, registration)

    return _read_state(ctx, at, read)


@TABLE.method(
    "copyright_searchSimilar",
    result={"type": "array", "description": "[{id, distance}] by distance, then id"},
)
async def copyright_searchSimilar(
    ctx: CallContext, phash: PHash, radius: Radius | None = None, at: Hash | None = None
) -> JSON:
    """Registrations with a version within `radius` (default: the chain's) of a pHash, nearest first.

    Exact up to radius 16 (the on-chain multi-index); at most 1,000 results.
    """

    def read(get: Any) -> JSON:
        r = copyright.read_params(get).phash_radius if radius is None else radius
        found = copyright.search_similar(get, phash, r)[:MAX_SIMILAR_RESULTS]
        return [{"id": rid, "distance": distance} for rid, distance in found]

    return _read_state(ctx, at, read)


@TABLE.method(
    "copyright_verifyImage",
    result={
        "type": "object",
        "description": "{width, height, phash, watermark, watermarks, matches: [{kind: exact|similar, "
        "distance, version, registration, offers}]}",
    },
)
async def copyright_verifyImage(ctx: CallContext, image: ImageData, at: Hash | None = None) -> JSON:
    """Who owns this image? A copy found anywhere (base64 file, at most 7 MiB and 40 megapixels).

    The watermark first: the payload extracted under the chain's key names the registration
    exactly (`kind: "exact"`), even after JPEG re-encoding, resizing, a crop or a small
    rotation. A copy can carry several marks (`watermarks`; `watermark` is the one the
    validators' path reads): one cropped from a registered image and marked again for another
    registration keeps the first mark, so every registration found this way is an exact match,
    the earliest registered first. Then the pHash: registrations within the chain's radius
    (`kind: "similar"`, nearest first, at most 20). Each match has its distance, the version
    it is closest to, the registration (owner, block, versions) and its open licence offers.
    """
    from node.pod_mining.verify import ImageDecodeError, analyse_image_bytes

    block_hash = _block_at(ctx, at)
    key = copyright.watermark_key_for(ctx.node.genesis_hash)
    try:
        facts = await trio.to_thread.run_sync(
            analyse_image_bytes, image, key, limiter=_image_limiter(ctx.node)
        )
    except ImageDecodeError as exc:
        raise invalid_params(f"image: {exc}") from None

    def read(get: Any) -> JSON:
        licence_params = licensing.read_params(get)
        exact: dict[int, bytes] = {}  # registration id -> the payload that named it
        for payload in facts.payloads:
            rid = copyright.find_by_payload(get, payload)
            if rid is not None and rid not in exact:
                exact[rid] = payload
        candidates: list[tuple[str, int]] = [("exact", rid) for rid in sorted(exact)]
        similar = copyright.search_similar(get, facts.phash, copyright.read_params(get).phash_radius)
        candidates += [("similar", rid) for rid, _ in similar if rid not in exact][:MAX_VERIFY_SIMILAR]
        matches = []
        for kind, rid in candidates:
            registration = copyright.get_registration(get, rid)
            if registration is None:
                continue
            distances = [(v.phash ^ facts.phash).bit_count() for v in registration.versions]
            if kind == "exact":
                version = next(
                    (i for i, v in enumerate(registration.versions) if v.wm_payload == exact[rid]), 0
                )
            else:
                version = min(range(len(distances)), key=lambda i: (distances[i], i))
            matches.append(
                {
                    "kind": kind,
                    "distance": distances[version],
                    "version": version,
                    "registration": _registration_json(get, registration),
                    "offers": [_offer_json(o, licence_params) for o in licensing.offers_of(get, rid)],
                }
            )
        return {
            "width": facts.width,
            "height": facts.height,
            "phash": f"0x{facts.phash:016x}",
            "watermark": None if facts.payload is None else to_hex(facts.payload),
            "watermarks": [to_hex(p) for p in facts.payloads],
            "matches": matches,
        }

    return _read_state(ctx, block_hash, read)


@TABLE.method("copyright_registrationsOf", result={"type": "array", "items": {"type": "integer"}})
async def copyright_registrationsOf(
    ctx: CallContext,
    account: AccountId,
    start: Count | None = None,
    limit: Count | None = None,
    at: Hash | None = None,
) -> JSON:
    """Ids of the registrations an account owns: page [start, start + limit) of its list (limit <= 1000).

    The list is kept in no meaningful order (removal swaps the last entry in); each page is
    sorted. A page shorter than `limit` is the last.
    """
    page = DEFAULT_PAGE if limit is None else min(limit, MAX_PAGE)
    return _read_state(ctx, at, lambda get: copyright.registrations_of(get, account, start or 0, page))


@TABLE.method("licensing_offers", result=_OFFERS_RESULT)
async def licensing_offers(ctx: CallContext, id: RegistrationId, at: Hash | None = None) -> JSON:
    """The open licence offers of a registration, by offer id (fee: what a buyer burns on top)."""

    def read(get: Any) -> JSON:
        params = licensing.read_params(get)
        return [_offer_json(offer, params) for offer in licensing.offers_of(get, id)]

    return _read_state(ctx, at, read)


@TABLE.method(
    "licensing_licensesOf",
    result={"type": "array", "description": "licences bought, in purchase order, with `active` at the block"},
)
async def licensing_licensesOf(
    ctx: CallContext,
    account: AccountId,
    start: Count | None = None,
    limit: Count | None = None,
    at: Hash | None = None,
) -> JSON:
    """Licences an account bought, in purchase order: page [start, start + limit) (limit <= 1000)."""
    page = DEFAULT_PAGE if limit is None else min(limit, MAX_PAGE)

    def read(get: Any) -> JSON:
        raw_now = get(timestamp.KEY_NOW)
        now_ms = 0 if raw_now is None else int.from_bytes(raw_now, "big")
        return [
            _licence_json(licence, now_ms)
            for licence in licensing.licences_of(get, account, start or 0, page)
        ]

    return _read_state(ctx, at, read)


@TABLE.method(
    "emission_status",
    result={
        "type": ["object", "null"],
        "description": "generated, rate, remaining, nextReward, cap (IMG strings and ...Raw integers); "
        "null without mining rewards",
    },
)
async def emission_status(ctx: CallContext, at: Hash | None = None) -> JSON:
    """The mined supply so far, the current reward rate and what remains below the cap."""

    def read(get: Any) -> JSON:
        status = emission.emission_status(get)
        params = emission.read_params(get)
        if status is None or params is None:
            return None
        return {
            "generated": _img(status.generated),
            "generatedRaw": status.generated,
            "rate": _fraction(status.rate_numerator, status.rate_denominator),
            "rateNumerator": status.rate_numerator,
            "rateDenominator": status.rate_denominator,
            "remaining": _img(status.remaining),
            "remainingRaw": status.remaining,
            "nextReward": _img(status.next_reward),
            "nextRewardRaw": status.next_reward,
            "cap": _img(params.cap),
            "capRaw": params.cap,
        }

    return _read_state(ctx, at, read)
