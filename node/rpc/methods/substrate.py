"""Substrate's methods: system_*, chain_*, state_*, author_*, with Substrate's names and JSON shapes.

Reads go straight to the chain database (fast, synchronous LMDB lookups); writes go through
`node.submit_extrinsic`, the same entry the network uses, so an RPC transaction is checked by
exactly the pool's rules. "Not found" is a `null` result; an unknown block given as the `at` of a
state query is error 4003; a transaction the pool refuses is one of the author errors (1001,
1010-1016) with the pool's reason as `data`.
"""

from __future__ import annotations

import inspect
from typing import Annotated, Any

from node.core.chain import StatePruned
from node.core.txpool import PoolRejected
from node.keys import NETWORK_PREFIX
from node.rpc.encoding import block_to_json, from_hex, from_quantity, header_to_json, jsonable, to_hex
from node.rpc.errors import pool_rejection, state_discarded
from node.rpc.jsonrpc import JSON, CallContext, MethodTable, ParamType
from node.rpc.params import HASH_SCHEMA, HEX_SCHEMA, NUMBER_SCHEMA, AccountId, Hash
from node.rpc.render import event_json, metadata_json
from node.rpc.state_at import block_at
from node.runtime.runtime import RUNTIME
from node.runtime.system import KEY_EVENTS
from node.state.trie import MissingNode
from node.types import MAX_EXTRINSIC_BYTES, Header, extrinsic_hash
from node.units import DECIMALS

METHODS = MethodTable()

MAX_STORAGE_KEY_BYTES = 4096
MAX_PROOF_KEYS = 1000
MAX_BLOCK_NUMBERS = 1000
MAX_SUBSCRIPTION_ID_LEN = 64

# What `system_properties` says of addresses (`node.keys.encode_address`): not SS58.
ADDRESS_FORMAT = {
    "name": "imagechain-base58check",
    "prefix": NETWORK_PREFIX,
    "layout": "base58(prefix (1 byte) || account id (32 bytes) || checksum (4 bytes)), Bitcoin's alphabet",
    "checksum": 'blake2b-512("IMGADDR" || prefix || account id), first 4 bytes',
}

# Watch statuses after which a transaction's story is over (Substrate closes the subscription).
FINAL_TX_STATUSES = frozenset({"finalized", "dropped", "invalid", "usurped", "finalityTimeout"})

# ---------------------------------------------------------------------------------------------
# Parameter types
# ---------------------------------------------------------------------------------------------


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


def _subscription_id(value: JSON) -> str:
    if not isinstance(value, str) or len(value) > MAX_SUBSCRIPTION_ID_LEN:
        raise ValueError("expected a subscription id string")
    return value


ExtrinsicBytes = Annotated[bytes, ParamType(_extrinsic, HEX_SCHEMA)]
StorageKey = Annotated[bytes, ParamType(_storage_key, HEX_SCHEMA)]
StorageKeys = Annotated[list[bytes], ParamType(_storage_keys, {"type": "array", "items": HEX_SCHEMA})]
BlockNumbers = Annotated[
    int | list[int],
    ParamType(_block_numbers, {"oneOf": [NUMBER_SCHEMA, {"type": "array", "items": NUMBER_SCHEMA}]}),
]
SubscriptionId = Annotated[str, ParamType(_subscription_id, {"type": "string"})]

# Result schemas, for rpc.discover.
_HEADER_RESULT = {"type": ["object", "null"], "description": "header: parentHash, number, stateRoot, ..."}
_SUBSCRIPTION_RESULT = {"type": "string", "description": "subscription id"}

# ---------------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------------


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


@METHODS.method("system_name", result={"type": "string"})
async def system_name(ctx: CallContext) -> str:
    """The node implementation's name (what `--name` set)."""
    return ctx.node.name


@METHODS.method("system_version", result={"type": "string"})
async def system_version(ctx: CallContext) -> str:
    """The node implementation's version."""
    return ctx.node.version


@METHODS.method("system_chain", result={"type": "string"})
async def system_chain(ctx: CallContext) -> str:
    """The chain's name from the chain spec."""
    return ctx.node.spec.name


@METHODS.method("system_chainType", result={"oneOf": [{"type": "string"}, {"type": "object"}]})
async def system_chainType(ctx: CallContext) -> JSON:
    """The chain type as Substrate spells it: "Development", "Local", "Live" or {"Custom": name}."""
    kind = str(ctx.node.spec.chain_type)
    known = {"development": "Development", "local": "Local", "live": "Live"}
    return known.get(kind.lower(), {"Custom": kind})


@METHODS.method(
    "system_properties",
    result={"type": "object", "description": "{tokenSymbol, tokenDecimals, addressFormat: {name, prefix, layout, checksum}}"},
)
async def system_properties(ctx: CallContext) -> JSON:
    """Token symbol and decimals and the address format, so wallets can display amounts and addresses.

    No `ss58Format`: addresses are not SS58 (whose checksum is 2 bytes of blake2b-512 over
    "SS58PRE"), and a Substrate wallet told they were would reject every one of them. They are
    imagechain's own base58check, described in `addressFormat` (`node.keys.encode_address`)."""
    token = (
        ctx.node.spec.raw.get("token", {}) if isinstance(getattr(ctx.node.spec, "raw", None), dict) else {}
    )
    return {
        "tokenSymbol": token.get("symbol", "IMG"),
        "tokenDecimals": int(token.get("decimals", DECIMALS)),
        "addressFormat": ADDRESS_FORMAT,
    }


@METHODS.method("system_health", result={"type": "object"})
async def system_health(ctx: CallContext) -> JSON:
    """Peers, whether the node is syncing, and whether it should have peers (not on a dev chain)."""
    return {
        "peers": len(ctx.node.peers()),
        "isSyncing": bool(ctx.node.is_syncing()),
        "shouldHavePeers": str(ctx.node.spec.chain_type).lower() != "development",
    }


@METHODS.method("system_peers", result={"type": "array"})
async def system_peers(ctx: CallContext) -> JSON:
    """The connected peers (peerId, roles, bestHash, bestNumber)."""
    return jsonable(ctx.node.peers())


@METHODS.method("system_localPeerId", result={"type": "string"})
async def system_localPeerId(ctx: CallContext) -> str:
    """This node's libp2p peer id (empty when the node runs without networking)."""
    network = getattr(ctx.node, "network", None)
    return network.network.peer_id if network is not None else ""


@METHODS.method("system_localListenAddresses", result={"type": "array"})
async def system_localListenAddresses(ctx: CallContext) -> JSON:
    """The multiaddrs (ending in /p2p/<peer id>) other nodes can use as bootnodes."""
    network = getattr(ctx.node, "network", None)
    return list(network.network.listen_addrs) if network is not None else []


@METHODS.method("system_syncState", result={"type": "object"})
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


@METHODS.method("system_accountNextIndex", result={"type": "integer"})
async def system_accountNextIndex(ctx: CallContext, account: AccountId) -> int:
    """The nonce to sign the account's next transaction with: its state nonce, past its pooled ones."""
    return int(ctx.node.next_nonce(account))


# ---------------------------------------------------------------------------------------------
# chain_*
# ---------------------------------------------------------------------------------------------


@METHODS.method("chain_getHeader", result=_HEADER_RESULT)
async def chain_getHeader(ctx: CallContext, hash: Hash | None = None) -> JSON:
    """The header of a block (the best block by default); null if the node does not have it."""
    header = ctx.node.chain.best_header() if hash is None else ctx.node.chain.header(hash)
    return None if header is None else header_to_json(header)


@METHODS.method("chain_getBlock", result={"type": ["object", "null"]})
async def chain_getBlock(ctx: CallContext, hash: Hash | None = None) -> JSON:
    """A block with its justifications (the best block by default); null if unknown."""
    block_hash = ctx.node.chain.best_header().hash if hash is None else hash
    block = ctx.node.chain.block(block_hash)
    if block is None:
        return None
    return block_to_json(block, ctx.node.chain.justification(block_hash))


@METHODS.method("chain_getBlockHash", result={"oneOf": [{"type": ["string", "null"]}, {"type": "array"}]})
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


@METHODS.method("chain_getFinalizedHead", result=HASH_SCHEMA)
async def chain_getFinalizedHead(ctx: CallContext) -> str:
    """The hash of the last finalized block."""
    return to_hex(ctx.node.chain.finalized_header().hash)


@METHODS.method("chain_subscribeNewHeads", result=_SUBSCRIPTION_RESULT, websocket_only=True)
async def chain_subscribeNewHeads(ctx: CallContext) -> str:
    """Notify `chain_newHead` with each new best header, starting with the current one."""
    return _subscribe_heads(
        ctx, "chain_newHead", ctx.node.notifier.subscribe_new_heads, ctx.node.chain.best_header
    )


@METHODS.method("chain_unsubscribeNewHeads", result={"type": "boolean"}, websocket_only=True)
async def chain_unsubscribeNewHeads(ctx: CallContext, subscription: SubscriptionId) -> bool:
    """Stop a `chain_subscribeNewHeads` subscription; false if there was none with this id."""
    return _require_session(ctx).unsubscribe("chain_newHead", subscription)


@METHODS.method("chain_subscribeFinalizedHeads", result=_SUBSCRIPTION_RESULT, websocket_only=True)
async def chain_subscribeFinalizedHeads(ctx: CallContext) -> str:
    """Notify `chain_finalizedHead` with each newly finalized header, starting with the current one."""
    node = ctx.node
    return _subscribe_heads(
        ctx, "chain_finalizedHead", node.notifier.subscribe_finalized_heads, node.chain.finalized_header
    )


@METHODS.method("chain_unsubscribeFinalizedHeads", result={"type": "boolean"}, websocket_only=True)
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


@METHODS.method("state_getStorage", result={"type": ["string", "null"]})
async def state_getStorage(ctx: CallContext, key: StorageKey, at: Hash | None = None) -> JSON:
    """The raw value of a storage key after block `at` (the best block by default); null if unset."""
    block_hash = block_at(ctx, at)
    try:
        value = ctx.node.chain.state_get(block_hash, key)
    except (StatePruned, MissingNode):
        raise state_discarded(block_hash) from None
    return None if value is None else to_hex(value)


@METHODS.method("state_getMetadata", result={"type": "object"})
async def state_getMetadata(ctx: CallContext) -> JSON:
    """The runtime's modules and what each declares: calls, events and errors (with their typed
    fields and docs) and storage items (Substrate's metadata, as JSON)."""
    return metadata_json(RUNTIME)


@METHODS.method("state_getEvents", result={"type": "array"})
async def state_getEvents(ctx: CallContext, at: Hash | None = None) -> JSON:
    """The events of block `at` (the best block by default), decoded by the runtime's declarations:
    [{phase, module, name, fields}], `phase` the extrinsic index or null (block initialization and
    finalization); a failed call's fields name its declared error and detail. Unknown block: 4003."""
    block_hash = block_at(ctx, at)
    try:
        raw = ctx.node.chain.state_get(block_hash, KEY_EVENTS)
    except (StatePruned, MissingNode):
        raise state_discarded(block_hash) from None
    return [event_json(event) for event in RUNTIME.decode_events(raw)]


@METHODS.method("state_getReadProof", result={"type": "object"})
async def state_getReadProof(ctx: CallContext, keys: StorageKeys, at: Hash | None = None) -> JSON:
    """A Merkle proof of the keys' values (or absence) against block `at`'s state root."""
    block_hash = block_at(ctx, at)
    try:
        proof = ctx.node.chain.read_proof(block_hash, keys)
    except (StatePruned, MissingNode):
        raise state_discarded(block_hash) from None
    return {"at": to_hex(block_hash), "proof": [to_hex(node) for node in proof]}


# ---------------------------------------------------------------------------------------------
# author_*
# ---------------------------------------------------------------------------------------------


@METHODS.method("author_submitExtrinsic", result=HASH_SCHEMA)
async def author_submitExtrinsic(ctx: CallContext, extrinsic: ExtrinsicBytes) -> str:
    """Submit an encoded signed extrinsic to the pool; returns its hash."""
    return to_hex(await _submit(ctx, extrinsic))


@METHODS.method("author_pendingExtrinsics", result={"type": "array", "items": HEX_SCHEMA})
async def author_pendingExtrinsics(ctx: CallContext) -> JSON:
    """Every extrinsic in the pool, ready or future, in arrival order."""
    return [to_hex(encoded) for encoded in ctx.node.pool.pending()]


@METHODS.method("author_submitAndWatchExtrinsic", result=_SUBSCRIPTION_RESULT, websocket_only=True)
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


@METHODS.method("author_unwatchExtrinsic", result={"type": "boolean"}, websocket_only=True)
async def author_unwatchExtrinsic(ctx: CallContext, subscription: SubscriptionId) -> bool:
    """Stop watching an extrinsic; false if there was no such watch on this connection."""
    return _require_session(ctx).unsubscribe("author_extrinsicUpdate", subscription)
