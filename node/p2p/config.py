"""Network configuration, the persistent node key, and peer multiaddrs as the configuration gives them.

The node key is the libp2p identity (PROTOCOL section 3: "libp2p peer identities are ed25519 keys
persisted under the node's base path"). It is stored like Substrate stores it: the raw 32-byte
ed25519 seed in ``<base_path>/network/secret_ed25519``, mode 0600, created on first run. Keeping the
key means a restarted node keeps its peer id, so bootnode and reserved-node multiaddrs (which end in
``/p2p/<peer id>``) stay valid across restarts.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import multiaddr
from libp2p.crypto.ed25519 import create_new_key_pair
from libp2p.crypto.keys import KeyPair
from libp2p.peer.id import ID
from libp2p.peer.peerinfo import info_from_p2p_addr

from node.fsutil import replace_durably

__all__ = [
    "DEFAULT_PORT",
    "NODE_KEY_FILE",
    "NetworkConfig",
    "load_or_create_node_key",
    "node_key_path",
    "parse_peer_multiaddr",
    "peer_id_of",
]

DEFAULT_PORT = 30333
NODE_KEY_FILE = "secret_ed25519"
_SEED_LEN = 32


@dataclass
class NetworkConfig:
    """Everything `Network` needs to know; the CLI maps its flags onto these fields.

    Limits are deliberately small and explicit: py-libp2p's own connection manager is tuned for
    public IPFS-style swarms (hundreds of connections, auto-dialing everything in the peerstore),
    which is the wrong shape for a validator network where every connection costs CPU on 2 cores.
    """

    base_path: Path
    genesis_hash: bytes
    listen_addrs: list[str] = field(default_factory=lambda: [f"/ip4/127.0.0.1/tcp/{DEFAULT_PORT}"])
    bootnodes: list[str] = field(default_factory=list)
    reserved_nodes: list[str] = field(default_factory=list)
    reserved_only: bool = False
    max_inbound: int = 25
    max_outbound: int = 15
    enable_dht: bool = True
    enable_mdns: bool = False
    # Well below py-libp2p's 1 MiB per-RPC limit, above which it drops silently at the sender and
    # resets the stream at the receiver; larger data (full blocks, image segments) goes over
    # request-response instead.
    max_gossip_bytes: int = 512 * 1024
    max_request_bytes: int = 64 * 1024
    max_response_bytes: int = 16 * 1024 * 1024
    # Reputation: penalties lower a peer's score; at or below `ban_threshold` it is disconnected and
    # refused in both directions for `ban_seconds`. Scores decay back towards 0 with this half-life,
    # so occasional mistakes by an honest peer are forgiven while a stream of garbage is not.
    ban_threshold: int = -100
    ban_seconds: float = 300.0
    score_half_life: float = 60.0
    # Per-topic inbound queue between py-libp2p's validator and the node's handler: when the node
    # falls this far behind, further gossip on that topic is IGNOREd (not forwarded, counted).
    gossip_queue_size: int = 1024
    # Outbound RPCs py-libp2p may queue per peer before dropping silently (its default is 32).
    outbound_queue_size: int = 512
    # How often peer maintenance runs: reserved-node redial, outbound top-up from discovery,
    # score decay, ban expiry, trimming connections above the limits.
    maintenance_interval: float = 1.0
    # A connection py-libp2p itself opened (a DHT query) may exceed max_outbound this long before
    # it is trimmed, so the query it serves can finish.
    outbound_grace_seconds: float = 10.0
    request_timeout: float = 10.0
    max_concurrent_requests: int = 64

    def __post_init__(self) -> None:
        self.base_path = Path(self.base_path)
        if len(self.genesis_hash) != 32:
            raise ValueError(f"genesis_hash must be 32 bytes, got {len(self.genesis_hash)}")
        if not self.listen_addrs:
            raise ValueError("at least one listen address is required")
        if self.max_inbound < 0 or self.max_outbound < 0:
            raise ValueError("peer limits must be >= 0")
        if not 0 < self.max_gossip_bytes < 1024 * 1024 - 4096:
            raise ValueError("max_gossip_bytes must stay below py-libp2p's 1 MiB RPC limit")


def node_key_path(base_path: Path) -> Path:
    """Where the node key lives for a given base path."""
    return Path(base_path) / "network" / NODE_KEY_FILE


def load_or_create_node_key(base_path: Path) -> KeyPair:
    """Load the ed25519 node key, generating and persisting it (0600) on first run.

    A file of the wrong size is an error rather than silently replaced: replacing it would give
    the node a new peer id and break every multiaddr that other nodes were configured with.
    """
    path = node_key_path(base_path)
    if path.exists():
        seed = path.read_bytes()
        if len(seed) != _SEED_LEN:
            raise ValueError(f"{path}: expected a {_SEED_LEN}-byte ed25519 seed, found {len(seed)} bytes")
        return create_new_key_pair(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    key_pair = create_new_key_pair()
    seed = key_pair.private_key.to_bytes()
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, seed)
        os.fsync(fd)
    finally:
        os.close(fd)
    replace_durably(tmp, path)  # and flush the directory: the peer id must survive a power cut
    return key_pair


def peer_id_of(key_pair: KeyPair) -> str:
    """Base58 peer id (``12D3KooW...``) of a key pair."""
    return ID.from_pubkey(key_pair.public_key).to_base58()


def parse_peer_multiaddr(addr: str) -> tuple[str, multiaddr.Multiaddr]:
    """Split ``/ip4/1.2.3.4/tcp/30333/p2p/12D3KooW...`` into (peer id, transport address)."""
    try:
        info = info_from_p2p_addr(multiaddr.Multiaddr(addr))
    except Exception as exc:
        raise ValueError(f"{addr!r} is not a multiaddr ending in /p2p/<peer id>: {exc}") from exc
    return info.peer_id.to_base58(), info.addrs[0]
