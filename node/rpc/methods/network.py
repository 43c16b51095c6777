"""Operator methods, network_*: block and unblock peers (operators, partition tests). Unsafe."""

from __future__ import annotations

from typing import Annotated, Any

from node.rpc.errors import METHOD_NOT_FOUND, RpcError
from node.rpc.jsonrpc import JSON, CallContext, MethodTable, ParamType

METHODS = MethodTable()


def _peer_id(value: JSON) -> str:
    if not isinstance(value, str) or not 1 <= len(value) <= 128 or not value.isalnum():
        raise ValueError("expected a base58 libp2p peer id")
    return value


PeerId = Annotated[str, ParamType(_peer_id, {"type": "string"})]


def _unsafe_network(ctx: CallContext) -> Any:
    """Operator methods (peer blocking) are only served when the node allows unsafe RPC methods
    (Substrate's `--rpc-methods unsafe`; the default when RPC listens on loopback only)."""
    if not getattr(ctx.node.config, "rpc_unsafe", False):
        raise RpcError(METHOD_NOT_FOUND, "Method not found", "unsafe RPC methods are disabled on this node")
    network = getattr(ctx.node, "network", None)
    if network is None:
        raise RpcError(METHOD_NOT_FOUND, "Method not found", "this node runs without networking")
    return network.network


@METHODS.method("network_blockPeer", result={"type": "boolean"})
async def network_blockPeer(ctx: CallContext, peer_id: PeerId) -> bool:
    """Disconnect a peer and refuse it until unblocked (operators, partition tests). Unsafe."""
    _unsafe_network(ctx).block_peer(peer_id)
    return True


@METHODS.method("network_unblockPeer", result={"type": "boolean"})
async def network_unblockPeer(ctx: CallContext, peer_id: PeerId) -> bool:
    """Accept a blocked peer again. Unsafe."""
    _unsafe_network(ctx).unblock_peer(peer_id)
    return True
