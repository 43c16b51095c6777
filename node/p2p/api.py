"""The contract between `Network` and the node: verdicts, the handler protocol, peer info, errors.

Kept in its own module so the gossip and request-response pieces can use these types without
importing `network.py`; `node.p2p.network` re-exports all of them.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Protocol

__all__ = [
    "GossipTooLarge",
    "NetworkError",
    "NetworkHandler",
    "NetworkNotRunning",
    "PeerInfo",
    "PeerRefused",
    "RequestFailed",
    "RequestRejected",
    "RequestRejectedByPeer",
    "RequestTimeout",
    "UnknownTopic",
    "UnsupportedProtocol",
    "Verdict",
]


class Verdict(enum.Enum):
    """What the node decided about one gossip message.

    ACCEPT: valid and new, forward it to the mesh. IGNORE: not forwarded, sender not blamed (a
    duplicate, a block whose parent is unknown yet, the node is overloaded). REJECT: invalid, not
    forwarded, and the peer that sent it to us loses score.
    """

    ACCEPT = "accept"
    IGNORE = "ignore"
    REJECT = "reject"


class NetworkHandler(Protocol):
    """Implemented by the node; `Network` calls it and never lets its exceptions escape.

    `on_gossip` runs before forwarding, one message at a time per topic (a per-topic worker), so a
    slow block import delays block gossip but not transactions or votes.
    """

    async def on_gossip(self, topic: str, data: bytes, peer_id: str) -> Verdict: ...

    async def on_request(self, protocol: str, data: bytes, peer_id: str) -> bytes: ...

    def on_peer_connected(self, peer_id: str) -> None: ...

    def on_peer_disconnected(self, peer_id: str) -> None: ...


@dataclass(frozen=True)
class PeerInfo:
    """A connected peer as `Network.peers()` reports it (for RPC `system_peers` and the informant)."""

    peer_id: str
    addrs: list[str]
    direction: str  # "inbound" | "outbound"
    score: int
    connected_since: float  # unix time
    reserved: bool = False


class NetworkError(Exception):
    """Base class of every error `Network` raises on purpose."""


class NetworkNotRunning(NetworkError):
    """`publish`/`request`/`connect` called before `run()` started listening, or after it ended."""


class UnknownTopic(NetworkError, ValueError):
    """A topic short name that is not one of `TOPICS`."""


class GossipTooLarge(NetworkError, ValueError):
    """`publish` refused data over `max_gossip_bytes`; send it over request-response instead."""


class PeerRefused(NetworkError):
    """The peer is banned or blocked, or a limit forbids the connection."""


class RequestFailed(NetworkError):
    """A request did not produce a response: dead peer, unknown protocol, timeout, oversize, reset."""


class RequestTimeout(RequestFailed):
    """No complete response within the timeout."""


class UnsupportedProtocol(RequestFailed):
    """The peer does not serve this request-response protocol."""


class RequestRejectedByPeer(RequestFailed):
    """The peer's handler refused our request and said why (the reason is in the message)."""


class RequestRejected(Exception):
    """Raised by `NetworkHandler.on_request` for a bad request; the requesting peer is penalised.

    Not a `NetworkError`: it travels from the node to `Network`, which turns it into an error
    response carrying `reason`, so the remote side gets `RequestRejectedByPeer(reason)`.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
