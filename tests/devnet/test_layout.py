"""The devnet's chain spec and manifest (no processes)."""

from __future__ import annotations

import json
from pathlib import Path

from devnet.layout import DEVNET_ID, Devnet, devnet_spec, validator_keys
from node.chain_spec import genesis_block, genesis_storage, load_chain_spec, parse_chain_spec
from node.keys import dev_keypair
from node.runtime.system import Account, account_key
from node.units import parse_img


def test_validator_keys_are_the_well_known_names_then_numbered() -> None:
    assert validator_keys(3) == ["//Alice", "//Bob", "//Charlie"]
    assert validator_keys(8)[5:] == ["//Ferdie", "//Validator7", "//Validator8"]


def test_devnet_spec_is_the_dev_genesis_with_n_authorities() -> None:
    raw = devnet_spec(4, 1000)
    spec = parse_chain_spec(raw)
    assert spec.id == DEVNET_ID
    assert spec.params.slot_ms == 1000
    assert spec.authorities == tuple(dev_keypair(uri).public.data for uri in validator_keys(4))
    assert spec.chain_type == "local"  # a devnet node without peers is unhealthy
    dev = load_chain_spec("dev")
    assert spec.sudo_key == dev.sudo_key
    assert sum(a.amount for a in spec.allocations) == sum(a.amount for a in dev.allocations)
    # Deterministic: a restarted devnet finds the same genesis in its databases.
    assert genesis_block(parse_chain_spec(devnet_spec(4, 1000))).hash == genesis_block(spec).hash
    assert genesis_block(parse_chain_spec(devnet_spec(3, 1000))).hash != genesis_block(spec).hash
    assert json.loads(json.dumps(raw)) == raw


def test_every_devnet_validator_can_pay_its_bond_at_genesis() -> None:
    spec = parse_chain_spec(devnet_spec(8, 1000))
    storage = genesis_storage(spec)  # raises if an authority cannot pay its bond
    bond = parse_img(spec.raw["authority_bond"])
    for uri in validator_keys(8):
        account = Account.decode(storage[account_key(dev_keypair(uri).account_id)])
        assert account.reserved == bond
        assert account.free - account.frozen > 0  # and has some left for fees


def test_plan_puts_validators_first_and_offsets_every_port(tmp_path: Path) -> None:
    devnet = Devnet.plan(
        tmp_path, validators=2, full_nodes=1, rpc_port=9944, p2p_port=30333, prometheus_port=9615
    )
    assert [(n.name, n.role, n.key) for n in devnet.nodes] == [
        ("node0", "validator", "//Alice"),
        ("node1", "validator", "//Bob"),
        ("node2", "full", None),
    ]
    last = devnet.nodes[2]
    assert (last.rpc_port, last.p2p_port, last.prometheus_port) == (9946, 30335, 9617)
    assert last.rpc_url == "http://127.0.0.1:9946"
    assert devnet.pid_path(last) == tmp_path / "node2" / "pid"
    assert devnet.log_path(last) == tmp_path / "node2" / "log"


def test_manifest_round_trips(tmp_path: Path) -> None:
    devnet = Devnet.plan(
        tmp_path, validators=3, full_nodes=2, rpc_port=1000, p2p_port=2000, prometheus_port=3000
    )
    devnet.save()
    assert Devnet.load(tmp_path) == devnet
