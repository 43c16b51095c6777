"""Runtime events as the client reads them, decoded by the runtime's own declarations.

Events are stored under `system:events` as `(phase, module, name, fields)` records; the runtime
declares every event and error as a type (`@event`, `@error` in `node.runtime.support`), and
`Runtime.decode_events` turns a record back into an instance of its type, with named fields.
A failed call's `ExtrinsicFailed` carries its declared error and that error's decoded detail.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from node.client.results import decoded
from node.client.transport import RpcClientError
from node.rpc.encoding import to_hex
from node.runtime.executive import DecodedEvent
from node.runtime.runtime import RUNTIME
from node.runtime.system import KEY_EVENTS
from node.types import extrinsic_hash

if TYPE_CHECKING:
    from node.client.rpc import RpcClient

__all__ = ["DecodedEvent", "block_events", "extrinsic_events"]


def block_events(client: RpcClient, block_hash: bytes) -> list[DecodedEvent]:
    """Every event of a block (read from `system:events` in the block's state)."""
    raw = client.storage(KEY_EVENTS, block_hash)
    return [] if raw is None else decoded(RUNTIME.decode_events, raw)


def extrinsic_events(client: RpcClient, block_hash: bytes, ext_hash: bytes) -> list[DecodedEvent]:
    """The events of one extrinsic of a block (its phase is its index in the block)."""
    hashes = [extrinsic_hash(x) for x in client.block(block_hash).extrinsics]
    if ext_hash not in hashes:
        raise RpcClientError(f"block {to_hex(block_hash)} does not contain {to_hex(ext_hash)}")
    index = hashes.index(ext_hash)
    return [event for event in block_events(client, block_hash) if event.phase == index]
