"""A typed, synchronous Python client for a node's JSON-RPC (the wallet commands, scripts, tests).

Where to look:

* `transport`    -- JSON over HTTP for calls, a WebSocket for subscriptions; `RpcClientError`,
                   `RpcError`, `NodeUnreachable`.
* `rpc`          -- `RpcClient`: one typed method per RPC method; reads only, never signs.
* `results`      -- result types (`TxStatus`, `ReadProof`, `VerifyResult`) and the JSON readers
                   that turn answers back into the runtime's dataclasses.
* `events`       -- reading a block's or an extrinsic's events, decoded into the runtime's declared types.
* `transactions` -- signing a call (nonce, mortality, genesis hash), the node's dry run before
                   sending, submit-and-watch, `transfer`, `CallOutcome`, `CallRefused`
                   (`WouldFail` not sent, `CallFailed` fee paid), `Unsendable`, `TransactionFailed`.
* `explain`      -- a runtime error in words, from its declaration's docstring.
* `licensing`    -- offering and buying licences.

Registering an image is `node.pod_mining.upload.register_image(client, ...)`: the upload
pipeline uses the client, never the other way round.
"""

from node.client.events import DecodedEvent
from node.client.results import ReadProof, TxStatus, VerifyMatch, VerifyResult
from node.client.rpc import NotFound, RpcClient
from node.client.transactions import (
    CallFailed,
    CallOutcome,
    CallRefused,
    TransactionFailed,
    Unsendable,
    WouldFail,
    block_ref,
    check_signed,
    sign_call,
    submit_call,
    submit_signed,
    transfer,
)
from node.client.transport import DEFAULT_URL, NodeUnreachable, RpcClientError, RpcError

__all__ = [
    "DEFAULT_URL",
    "CallFailed",
    "CallOutcome",
    "CallRefused",
    "DecodedEvent",
    "NodeUnreachable",
    "NotFound",
    "ReadProof",
    "RpcClient",
    "RpcClientError",
    "RpcError",
    "TransactionFailed",
    "TxStatus",
    "Unsendable",
    "VerifyMatch",
    "VerifyResult",
    "WouldFail",
    "block_ref",
    "check_signed",
    "sign_call",
    "submit_call",
    "submit_signed",
    "transfer",
]
