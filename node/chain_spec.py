"""Chain specs: `genesis.json` -> genesis storage -> genesis block.

The spec names accounts by dev URI (`//Alice`) or by address; amounts are IMG in decimal text.
Everything here is deterministic, so every machine derives the same genesis hash from the same
file. `--dev` uses the spec shipped inside the package (`node/specs/dev.json`, the repository's
`genesis.json`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from node.codec import encode, u128_to_bytes
from node.keys import decode_address, dev_keypair
from node.runtime import aura, balances, copyright, emission, licensing, offences, pod, sudo, system, vesting
from node.runtime.executive import SPEC_VERSION
from node.state.trie import EMPTY_ROOT, trie_update
from node.types import Block, Header, merkle_root
from node.units import parse_img

ZERO_HASH = b"\x00" * 32
KEY_GENESIS_SPEC_VERSION = b"system:genesis_spec_version"
KEY_EMISSION_PARAMS = emission.KEY_PARAMS


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


def resolve_account(text: str) -> bytes:
    """A dev URI (`//Alice`) -> its ed25519 account id; anything else must be an address."""
    if text.startswith("//"):
        return dev_keypair(text).account_id
    return decode_address(text)


def resolve_authority(text: str) -> bytes:
    """Authorities sign with ed25519, so their account id is their public key."""
    if text.startswith("//"):
        return dev_keypair(text).public.data
    if text.startswith("0x") and len(text) == 66:
        return bytes.fromhex(text[2:])
    return decode_address(text)


def parse_chain_spec(raw: dict[str, Any]) -> ChainSpec:
    try:
        p = raw["params"]
        params = system.ChainParams(
            slot_ms=int(p["slot_ms"]),
            max_block_bytes=int(p["max_block_bytes"]),
            max_block_weight=int(p["max_block_weight"]),
            max_extrinsic_bytes=int(p["max_extrinsic_bytes"]),
            base_fee=parse_img(p["base_fee"]),
            byte_fee=parse_img(p["byte_fee"]),
            weight_fee=parse_img(p["weight_fee"]),
            existential_deposit=parse_img(p["existential_deposit"]),
        )
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
    """The genesis state as a plain key -> value map."""
    storage: dict[bytes, bytes] = {
        system.KEY_PARAMS: encode(spec.params.to_wire()),
        system.KEY_NUMBER: (0).to_bytes(4, "big"),
        KEY_GENESIS_SPEC_VERSION: SPEC_VERSION.to_bytes(4, "big"),
        aura.KEY_AUTHORITIES: aura.encode_authorities(list(spec.authorities)),
    }
    if spec.sudo_key is not None:
        storage[sudo.KEY_SUDO] = spec.sudo_key
    accounts: dict[bytes, system.Account] = {}
    for allocation in spec.allocations:
        account = accounts.setdefault(allocation.account, system.Account())
        account.free += allocation.amount
        if allocation.vesting:
            v = allocation.vesting
            tranches = vesting.monthly_schedule(
                allocation.amount,
                spec.genesis_time_ms,
                int(v["cliff_months"]),
                int(v["cliff_percent"]),
                int(v.get("monthly_percent", 0)),
            )
            account.frozen += allocation.amount
            storage[vesting.schedule_key(allocation.account)] = encode(vesting.encode_schedule(tranches))
    bond = parse_img(spec.raw.get("authority_bond", "0"))
    if bond:
        storage[offences.KEY_BOND] = u128_to_bytes(bond)
        for authority in spec.authorities:
            account = accounts.get(authority)
            if account is None or account.free - account.frozen < bond:
                raise ChainSpecError(f"authority {authority.hex()} has no free balance for its bond of {bond}")
            account.free -= bond
            account.reserved += bond
    for account_id in sorted(accounts):
        storage[system.account_key(account_id)] = accounts[account_id].encode()
    issuance = sum(a.amount for a in spec.allocations)
    storage[balances.KEY_TOTAL_ISSUANCE] = u128_to_bytes(issuance)
    if spec.emission:
        emission_params = emission.EmissionParams(
            parse_img(spec.emission["cap"]), parse_img(spec.emission["reward_unit"]), int(spec.emission["constant"])
        )
        try:
            emission_params.check()
        except ValueError as exc:
            raise ChainSpecError(f"invalid chain spec: {exc}") from exc
        if issuance + emission_params.cap > balances.MAX_SUPPLY:
            raise ChainSpecError("invalid chain spec: allocations plus the emission cap exceed the maximum supply")
        storage[KEY_EMISSION_PARAMS] = encode(emission_params.to_wire())
    storage.update(copyright_genesis(spec.raw))
    return storage


def copyright_genesis(raw: dict[str, Any]) -> dict[bytes, bytes]:
    """Params of `copyright`, `licensing` and `pod`; a missing section or field keeps the default."""
    try:
        c = raw.get("copyright", {})
        default_c = copyright.CopyrightParams()
        copyright_params = copyright.CopyrightParams(
            phash_radius=int(c.get("phash_radius", default_c.phash_radius)),
            tag_fee=parse_img(c["tag_fee"]) if "tag_fee" in c else default_c.tag_fee,
        )
        lic = raw.get("licensing", {})
        default_l = licensing.LicensingParams()
        licensing_params = licensing.LicensingParams(
            fee_ppm=int(lic.get("fee_ppm", default_l.fee_ppm)),
            min_fee=parse_img(lic["min_fee"]) if "min_fee" in lic else default_l.min_fee,
        )
        p = raw.get("pod", {})
        default_p = pod.PodParams()
        pod_params = pod.PodParams(
            **{name: int(p.get(name, getattr(default_p, name))) for name in pod.PodParams.__dataclass_fields__}
        )
    except (TypeError, ValueError) as exc:
        raise ChainSpecError(f"invalid chain spec: {exc!r}") from exc
    if not 0 <= copyright_params.phash_radius <= copyright.MAX_SEARCH_RADIUS:
        raise ChainSpecError(f"invalid chain spec: phash_radius must be in 0..{copyright.MAX_SEARCH_RADIUS}")
    if not 0 <= licensing_params.fee_ppm <= licensing.PPM:
        raise ChainSpecError("invalid chain spec: licensing fee_ppm must be in 0..1000000")
    if any(not 0 <= v < 2**32 for v in pod_params.to_wire()):
        raise ChainSpecError("invalid chain spec: pod params must be u32")
    return {
        copyright.KEY_PARAMS: encode(copyright_params.to_wire()),
        licensing.KEY_PARAMS: encode(licensing_params.to_wire()),
        pod.KEY_PARAMS: encode(pod_params.to_wire()),
    }


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
