"""Runtime events as the client reads them: every event decoding on the client side is here.

Events travel as `(phase, module, name, fields)` in `system:events` (`Event.to_wire`), with
integer fields as 16-byte big-endian u128. `ChainEvent` keeps that generic shape, so a caller
finds an event by `(module, name)` and reads its fields by position; when the runtime declares
its events as types, decoding into them replaces `ChainEvent.from_wire` here and nowhere else.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from node.client.results import decoded
from node.client.transport import RpcClientError
from node.codec import decode
from node.rpc.encoding import to_hex
from node.runtime.system import KEY_EVENTS
from node.types import extrinsic_hash

if TYPE_CHECKING:
    from node.client.rpc import RpcClient

__all__ = ["ChainEvent", "block_events", "extrinsic_events"]


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


def block_events(client: RpcClient, block_hash: bytes) -> list[ChainEvent]:
    """Every event of a block (read from `system:events` in the block's state)."""
    raw = client.storage(KEY_EVENTS, block_hash)
    return [] if raw is None else decoded(lambda data: [ChainEvent.from_wire(e) for e in decode(data)], raw)


def extrinsic_events(client: RpcClient, block_hash: bytes, ext_hash: bytes) -> list[ChainEvent]:
    """The events of one extrinsic of a block (its phase is its index in the block)."""
    hashes = [extrinsic_hash(x) for x in client.block(block_hash).extrinsics]
    if ext_hash not in hashes:
        raise RpcClientError(f"block {to_hex(block_hash)} does not contain {to_hex(ext_hash)}")
    index = hashes.index(ext_hash)
    return [event for event in block_events(client, block_hash) if event.phase == index]
