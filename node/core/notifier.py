"""Fan-out of chain events to subscribers (RPC subscriptions, tests).

Each subscriber gets its own bounded trio channel. A subscriber that falls behind is closed
rather than allowed to stall the node: block import never waits on a slow reader.
"""

from __future__ import annotations

import logging
from typing import Any

import trio

from node.types import Header

log = logging.getLogger("imagechain.notifier")

CHANNEL_CAPACITY = 1024


class Notifier:
    def __init__(self) -> None:
        self._new_heads: list[trio.MemorySendChannel[Header]] = []
        self._finalized: list[trio.MemorySendChannel[Header]] = []
        self._tx_watchers: dict[bytes, list[trio.MemorySendChannel[tuple[str, bytes | None]]]] = {}

    def subscribe_new_heads(self) -> trio.MemoryReceiveChannel[Header]:
        send, receive = trio.open_memory_channel[Header](CHANNEL_CAPACITY)
        self._new_heads.append(send)
        return receive

    def subscribe_finalized_heads(self) -> trio.MemoryReceiveChannel[Header]:
        send, receive = trio.open_memory_channel[Header](CHANNEL_CAPACITY)
        self._finalized.append(send)
        return receive

    def watch_extrinsic(self, ext_hash: bytes) -> trio.MemoryReceiveChannel[tuple[str, bytes | None]]:
        send, receive = trio.open_memory_channel[tuple[str, bytes | None]](64)
        self._tx_watchers.setdefault(ext_hash, []).append(send)
        return receive

    def unsubscribe(self, channel: trio.MemoryReceiveChannel[Any]) -> None:
        channel.close()

    # -- producers ------------------------------------------------------------------------------

    def new_head(self, header: Header) -> None:
        self._new_heads = _broadcast(self._new_heads, header)

    def finalized(self, header: Header) -> None:
        self._finalized = _broadcast(self._finalized, header)

    def tx_status(self, ext_hash: bytes, status: str, block_hash: bytes | None) -> None:
        watchers = self._tx_watchers.get(ext_hash)
        if not watchers:
            return
        alive = _broadcast(watchers, (status, block_hash))
        if alive and status not in ("finalized", "dropped", "invalid", "usurped"):
            self._tx_watchers[ext_hash] = alive
        else:
            for channel in alive:
                channel.close()
            self._tx_watchers.pop(ext_hash, None)

    def watching(self) -> list[bytes]:
        return list(self._tx_watchers)


def _broadcast(channels: list[trio.MemorySendChannel[Any]], item: Any) -> list[trio.MemorySendChannel[Any]]:
    alive = []
    for channel in channels:
        try:
            channel.send_nowait(item)
            alive.append(channel)
        except trio.WouldBlock:
            log.warning("closing a subscription that fell %d messages behind", CHANNEL_CAPACITY)
            channel.close()
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            channel.close()
    return alive
