"""What a devnet is on disk: its chain spec, its nodes, and where each node keeps its files.

A devnet directory holds everything needed to inspect or stop it later from another shell:

    DIR/chain.json        the chain spec every node runs (dev genesis, N dev authorities)
    DIR/devnet.json       the manifest: each node's role, key and ports (read by status and down)
    DIR/node<i>/          node i's base path (database, node key) with
    DIR/node<i>/pid       the pid of its process while it runs
    DIR/node<i>/log       its log (appended to across restarts)

Nothing here starts or stops processes (that is `devnet.control`); it only names things.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from node.fsutil import write_atomic
from node.units import format_img, parse_img

__all__ = [
    "CHAIN_FILE",
    "DEVNET_ID",
    "MANIFEST_FILE",
    "Devnet",
    "NodeEntry",
    "ManifestError",
    "devnet_spec",
    "validator_keys",
]

CHAIN_FILE = "chain.json"
MANIFEST_FILE = "devnet.json"
DEVNET_ID = "imagechain_devnet"
DEV_NAMES = ("Alice", "Bob", "Charlie", "Dave", "Eve", "Ferdie")
LOOPBACK = "127.0.0.1"
TREASURY = "//Charlie"  # the dev chain's unvested community treasury
STAKE_BONDS = 10  # a validator's genesis stake, in authority bonds (the rest pays fees)


class ManifestError(Exception):
    """DIR holds no devnet, or one this version cannot read."""


def validator_keys(count: int) -> list[str]:
    """Dev key URIs of the first `count` validators: //Alice ... //Ferdie, then //Validator7, ...

    The well-known names come first so that a devnet's authorities are the accounts people
    already know from `--dev` and from Substrate tutorials (and hold the genesis allocations).
    """
    return [f"//{DEV_NAMES[i]}" if i < len(DEV_NAMES) else f"//Validator{i + 1}" for i in range(count)]


def devnet_spec(validators: int, slot_ms: int) -> dict[str, Any]:
    """The dev genesis with `validators` dev authorities; deterministic, so a restart reuses the data.

    The chain type is "local" (Substrate's local testnet), not "development": a devnet node
    without peers is unhealthy, and `system_health` says so (`shouldHavePeers`).

    Genesis reserves each authority's bond from its free balance, and most dev accounts cannot pay
    it (//Dave's to //Ferdie's allocations are vested, //Validator7 has none). So every validator
    gets a stake of `STAKE_BONDS` bonds, carved out of the community treasury (//Charlie): the
    total supply stays that of the dev chain.
    """
    raw: dict[str, Any] = json.loads(resources.files("node.specs").joinpath("dev.json").read_text())
    raw["name"] = f"imagechain devnet ({validators} validators)"
    raw["id"] = DEVNET_ID
    raw["chain_type"] = "local"
    raw["params"]["slot_ms"] = slot_ms
    raw["authorities"] = validator_keys(validators)
    stake = parse_img(raw.get("authority_bond", "0")) * STAKE_BONDS
    if stake:
        treasury = next(a for a in raw["allocations"] if a["account"] == TREASURY)
        treasury["amount"] = format_img(parse_img(treasury["amount"]) - stake * validators)
        raw["allocations"] += [
            {"name": f"devnet validator stake ({uri})", "account": uri, "amount": format_img(stake)}
            for uri in raw["authorities"]
        ]
    return raw


@dataclass(frozen=True)
class NodeEntry:
    """One node of the devnet as the manifest records it."""

    index: int
    role: str  # "validator" | "full"
    key: str | None  # the authority's dev URI, for validators
    rpc_port: int
    p2p_port: int
    prometheus_port: int

    @property
    def name(self) -> str:
        return f"node{self.index}"

    @property
    def rpc_url(self) -> str:
        return f"http://{LOOPBACK}:{self.rpc_port}"

    @property
    def listen_addr(self) -> str:
        return f"/ip4/{LOOPBACK}/tcp/{self.p2p_port}"


@dataclass(frozen=True)
class Devnet:
    """A devnet directory and its nodes (validators first)."""

    dir: Path
    nodes: tuple[NodeEntry, ...]

    @classmethod
    def plan(
        cls,
        dir: Path,
        validators: int,
        full_nodes: int,
        rpc_port: int,
        p2p_port: int,
        prometheus_port: int,
    ) -> Devnet:
        """Node i serves on base port + i for each port kind, validators first."""
        keys = validator_keys(validators)
        nodes = tuple(
            NodeEntry(
                index=i,
                role="validator" if i < validators else "full",
                key=keys[i] if i < validators else None,
                rpc_port=rpc_port + i,
                p2p_port=p2p_port + i,
                prometheus_port=prometheus_port + i,
            )
            for i in range(validators + full_nodes)
        )
        return cls(dir, nodes)

    # -- paths ----------------------------------------------------------------------------------

    @property
    def chain_path(self) -> Path:
        return self.dir / CHAIN_FILE

    @property
    def manifest_path(self) -> Path:
        return self.dir / MANIFEST_FILE

    def base_path(self, node: NodeEntry) -> Path:
        return self.dir / node.name

    def pid_path(self, node: NodeEntry) -> Path:
        return self.base_path(node) / "pid"

    def log_path(self, node: NodeEntry) -> Path:
        return self.base_path(node) / "log"

    # -- the manifest ---------------------------------------------------------------------------

    def save(self) -> None:
        manifest = {"version": 1, "nodes": [asdict(node) for node in self.nodes]}
        write_atomic(self.manifest_path, (json.dumps(manifest, indent=2) + "\n").encode())

    @classmethod
    def load(cls, dir: Path) -> Devnet:
        path = dir / MANIFEST_FILE
        try:
            manifest = json.loads(path.read_text())
            nodes = tuple(NodeEntry(**entry) for entry in manifest["nodes"])
        except FileNotFoundError as exc:
            raise ManifestError(
                f"no devnet in {dir} (no {MANIFEST_FILE}); start one with `imagechain devnet up`"
            ) from exc
        except (ValueError, KeyError, TypeError) as exc:
            raise ManifestError(f"{path} is not a devnet manifest: {exc}") from exc
        return cls(dir, nodes)

    def read_pid(self, node: NodeEntry) -> int | None:
        """The pid recorded for a node, or None if it has no (readable) pid file."""
        try:
            return int(self.pid_path(node).read_text().strip())
        except (OSError, ValueError):
            return None
