"""JSON-RPC error codes: the standard ones, the server's limits, and the application's.

The standard codes are JSON-RPC 2.0's. The server-limit codes (-32006 .. -32011) are the ones
jsonrpsee, Substrate's RPC server, uses, and -32999 is Substrate's rate limit, so that tools
written against a Substrate node read ours the same way; -32012 and -32013 are our own. Application codes follow Substrate's per-API blocks: `author_*` errors from 1000,
`system_*` from 2000, `chain_*` from 3000, `state_*` from 4000.

Where Substrate answers "not found" with a `null` result (an unknown block hash, a storage key with
no value, a block number past the head) we do the same: absence is an answer, not an error. An
unknown block named as the `at` of a state query is an error (4003), because the question itself
cannot be asked.
"""

from __future__ import annotations

from typing import Any

# ---------------------------------------------------------------------------------------------
# JSON-RPC 2.0
# ---------------------------------------------------------------------------------------------

PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603

# ---------------------------------------------------------------------------------------------
# Server limits (jsonrpsee's numbering)
# ---------------------------------------------------------------------------------------------

TOO_MANY_SUBSCRIPTIONS = -32006
OVERSIZED_REQUEST = -32007
OVERSIZED_RESPONSE = -32008
SERVER_IS_BUSY = -32009
TOO_BIG_BATCH = -32010
TOO_BIG_BATCH_RESPONSE = -32011
# Not in jsonrpsee (which answers a subscription over HTTP with a bare internal error); a code of
# its own tells the caller exactly what to change.
SUBSCRIPTION_NEEDS_WEBSOCKET = -32012
# Substrate's rate-limit middleware (`--rpc-rate-limit`).
RATE_LIMITED = -32999
# Not in jsonrpsee: a browser page from an origin `--rpc-cors` does not allow (HTTP 403).
ORIGIN_NOT_ALLOWED = -32013

# ---------------------------------------------------------------------------------------------
# Application (Substrate's blocks)
# ---------------------------------------------------------------------------------------------

AUTHOR_BAD_FORMAT = 1001
POOL_INVALID_TX = 1010
POOL_UNKNOWN_VALIDITY = 1011
POOL_TEMPORARILY_BANNED = 1012
POOL_ALREADY_IMPORTED = 1013
POOL_TOO_LOW_PRIORITY = 1014
POOL_IMMEDIATELY_DROPPED = 1016

STATE_CLIENT_ERROR = 4003

STANDARD_MESSAGES: dict[int, str] = {
    PARSE_ERROR: "Parse error",
    INVALID_REQUEST: "Invalid request",
    METHOD_NOT_FOUND: "Method not found",
    INVALID_PARAMS: "Invalid params",
    INTERNAL_ERROR: "Internal error",
    TOO_MANY_SUBSCRIPTIONS: "Too many subscriptions on the connection",
    OVERSIZED_REQUEST: "Request is too big",
    OVERSIZED_RESPONSE: "Response is too big",
    SERVER_IS_BUSY: "Server is busy, try again later",
    TOO_BIG_BATCH: "The batch request was too large",
    TOO_BIG_BATCH_RESPONSE: "The batch response was too large",
    SUBSCRIPTION_NEEDS_WEBSOCKET: "Subscriptions need a WebSocket connection",
    RATE_LIMITED: "RPC rate limit exceeded",
    ORIGIN_NOT_ALLOWED: "Origin not allowed",
}


class RpcError(Exception):
    """An error a method returns to its caller as the JSON-RPC `error` object.

    Methods raise it; the dispatcher turns it into `{"code", "message", "data"?}`. Anything else a
    method raises is a bug and becomes a bare internal error, with the traceback logged, never sent.
    """

    def __init__(self, code: int, message: str | None = None, data: Any = None) -> None:
        self.code = code
        self.message = message if message is not None else STANDARD_MESSAGES.get(code, "Server error")
        self.data = data
        super().__init__(f"{self.code}: {self.message}" + (f" ({data})" if data is not None else ""))

    def to_json(self) -> dict[str, Any]:
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.data is not None:
            error["data"] = self.data
        return error


def invalid_params(detail: str) -> RpcError:
    return RpcError(INVALID_PARAMS, data=detail)


def unknown_block(block_hash: bytes) -> RpcError:
    """Substrate's wording for a state query at a block the node does not have."""
    return RpcError(
        STATE_CLIENT_ERROR, f"Client error: UnknownBlock: 0x{block_hash.hex()}", f"0x{block_hash.hex()}"
    )


def state_discarded(block_hash: bytes) -> RpcError:
    """The block is known but its state fell out of the pruning window (run an archive node)."""
    return RpcError(
        STATE_CLIENT_ERROR, f"State already discarded for 0x{block_hash.hex()}", f"0x{block_hash.hex()}"
    )


# ---------------------------------------------------------------------------------------------
# Transaction pool rejections
# ---------------------------------------------------------------------------------------------

# The pool's reasons that are not "this transaction is invalid" get Substrate's dedicated codes;
# every other reason (BadSignature, StaleNonce, Expired, ...) is an invalid transaction (1010).
_POOL_CODES: dict[str, tuple[int, str]] = {
    "BadFormat": (AUTHOR_BAD_FORMAT, "Extrinsic has invalid format"),
    "AlreadyImported": (POOL_ALREADY_IMPORTED, "Transaction Already Imported"),
    "TooLowPriority": (POOL_TOO_LOW_PRIORITY, "Priority is too low"),
    "TemporarilyBanned": (POOL_TEMPORARILY_BANNED, "Transaction is temporarily banned"),
    "Banned": (POOL_TEMPORARILY_BANNED, "Transaction is temporarily banned"),
    "PoolFull": (POOL_IMMEDIATELY_DROPPED, "Immediately Dropped"),
    "ImmediatelyDropped": (POOL_IMMEDIATELY_DROPPED, "Immediately Dropped"),
    "UnknownValidity": (POOL_UNKNOWN_VALIDITY, "Unknown Transaction Validity"),
}


def pool_rejection(reason: str, detail: str = "") -> RpcError:
    """The error for an extrinsic the pool refused.

    `data` is the bare reason string ("StaleNonce", "BadSignature", ...) so that programs can switch
    on it; the human-readable detail (which nonce, which balance) goes after the message, which
    keeps Substrate's fixed text as its prefix.
    """
    code, message = _POOL_CODES.get(reason, (POOL_INVALID_TX, "Invalid Transaction"))
    if detail:
        message = f"{message}: {detail}"
    return RpcError(code, message, reason)
