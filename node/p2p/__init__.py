"""Networking layer: py-libp2p host, GossipSub, request-response, Kademlia discovery, peer scoring.

The node uses `Network` (run it in the node's trio nursery) and implements `NetworkHandler`:

    network = Network(NetworkConfig(base_path=..., genesis_hash=...), handler)
    network.register_protocol("/imagechain/sync/1")
    await nursery.start(network.run)
    await network.publish("blocks", encoded_block)
    response = await network.request(peer_id, "/imagechain/sync/1", request_bytes)

See `node.p2p.network` for the service and the parts it is made of (`connections`, `discovery`,
`gossip`, `reqresp`, `scoring`), `node.p2p.host` for what had to be changed in py-libp2p 0.8.1 and
why, and `node.p2p.reqresp` for the request-response wire format.
"""

from node.p2p.api import (
    GossipTooLarge,
    NetworkError,
    NetworkHandler,
    NetworkNotRunning,
    PeerInfo,
    PeerRefused,
    RequestFailed,
    RequestRejected,
    RequestRejectedByPeer,
    RequestTimeout,
    UnknownTopic,
    UnsupportedProtocol,
    Verdict,
)
from node.p2p.config import (
    DEFAULT_PORT,
    NetworkConfig,
    load_or_create_node_key,
    node_key_path,
    parse_peer_multiaddr,
    peer_id_of,
)
from node.p2p.gossip import TOPICS, GossipCounters
from node.p2p.network import Network
from node.p2p.scoring import (
    PENALTY_BAD_REQUEST,
    PENALTY_BAD_SIGNATURE,
    PENALTY_HANDLER_ERROR,
    PENALTY_INVALID_GOSSIP,
    PENALTY_OVERSIZED,
    PENALTY_PROTOCOL_VIOLATION,
)

__all__ = [
    "DEFAULT_PORT",
    "PENALTY_BAD_REQUEST",
    "PENALTY_BAD_SIGNATURE",
    "PENALTY_HANDLER_ERROR",
    "PENALTY_INVALID_GOSSIP",
    "PENALTY_OVERSIZED",
    "PENALTY_PROTOCOL_VIOLATION",
    "TOPICS",
    "GossipCounters",
    "GossipTooLarge",
    "Network",
    "NetworkConfig",
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
    "load_or_create_node_key",
    "node_key_path",
    "parse_peer_multiaddr",
    "peer_id_of",
]
