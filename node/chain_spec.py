"""Chain specs: `genesis.json` -> genesis storage -> genesis block.

The spec names accounts by dev URI (`//Alice`) or by address; amounts are IMG in decimal text.
`ChainSpec` is the client's view of it (name, type, slot length, authorities, allocations);
the genesis *state* is built by the runtime's modules, each from its own sections
(`Runtime.genesis_storage`). Everything here is deterministic, so every machine derives the
same genesis hash from the same file. `--dev` uses the spec shipped inside the package
(`node/specs/dev.json`, the repository's `genesis.json`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from node.runtime import balances, system
from node.runtime.runtime import RUNTIME
from node.runtime.support import resolve_account, resolve_authority
from node.state.trie import EMPTY_ROOT, trie_update
from node.types import Block, Header, merkle_root
from node.units import parse_img

ZERO_HASH = b"\x00" * 32


class ChainSpecError(ValueError):
    pass


@dataclass(frozen=True)
class Allocation:
    name: str
    account: bytes
    amount: int
    vesting: dict[str, int] | None


@dataclass(frozen=True)
class ChainSpec:
    name: str
    id: str
    chain_type: str
    genesis_time_ms: int
    params: system.ChainParams
    authorities: tuple[bytes, ...]
    sudo_key: bytes | None
    allocations: tuple[Allocation, ...]
    emission: dict[str, Any]
    raw: dict[str, Any]


def parse_chain_spec(raw: dict[str, Any]) -> ChainSpec:
    try:
        params = system.ChainParams.from_spec(raw["params"])
        allocations = tuple(
            Allocation(a["name"], resolve_account(a["account"]), parse_img(a["amount"]), a.get("vesting"))
            for a in raw["allocations"]
        )
        spec = ChainSpec(
            name=raw["name"],
            id=raw["id"],
            chain_type=raw.get("chain_type", "live"),
            genesis_time_ms=int(raw["genesis_time_ms"]),
            params=params,
            authorities=tuple(resolve_authority(a) for a in raw["authorities"]),
            sudo_key=resolve_account(raw["sudo"]) if raw.get("sudo") else None,
            allocations=allocations,
            emission=raw.get("emission", {}),
            raw=raw,
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ChainSpecError(f"invalid chain spec: {exc!r}") from exc
    if not spec.authorities:
        raise ChainSpecError("invalid chain spec: no authorities")
    if params.slot_ms <= 0:
        raise ChainSpecError("invalid chain spec: slot_ms must be positive")
    total = sum(a.amount for a in allocations)
    if total > balances.MAX_SUPPLY:
        raise ChainSpecError(f"invalid chain spec: allocations exceed the maximum supply ({total})")
    return spec


def load_chain_spec(path: str | Path | None = None) -> ChainSpec:
    """Load a spec file; None (or 'dev') means the development spec shipped with the node."""
    if path is None or str(path) == "dev":
        text = resources.files("node.specs").joinpath("dev.json").read_text()
    else:
        text = Path(path).read_text()
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ChainSpecError(f"chain spec is not JSON: {exc}") from exc
    return parse_chain_spec(raw)


def genesis_storage(spec: ChainSpec) -> dict[bytes, bytes]:
    """The genesis state as a plain key -> value map: each runtime module's genesis, in order."""
    try:
        return RUNTIME.genesis_storage(spec.raw)
    except (KeyError, TypeError, ValueError, AssertionError) as exc:
        raise ChainSpecError(f"invalid chain spec: {exc}") from exc


def genesis_state_root(storage: dict[bytes, bytes]) -> bytes:
    return trie_update(lambda _hash: None, EMPTY_ROOT, storage).root


def genesis_block(spec: ChainSpec) -> Block:
    storage = genesis_storage(spec)
    header = Header(
        parent_hash=ZERO_HASH,
        number=0,
        state_root=genesis_state_root(storage),
        extrinsics_root=merkle_root([]),
        digest=(),
    )
    return Block(header, ())
