"""Public dev keys stay on dev chains (issue #10, finding 5).

`//Alice` and friends are derived from their names, so anyone can sign as them. A validator key,
and the `--from` of a wallet command, must refuse them on any chain that is not of type
"development" or "local"; `--validator` needs an explicit `--key`; and `imagechain node` does not
guess a chain. The node is run as a real subprocess: the refusal must come before it starts.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from importlib import resources
from pathlib import Path
from typing import Any

import nacl.pwhash.argon2id as argon2id
import pytest
import trio
from click.testing import CliRunner, Result

from node.chain_spec import parse_chain_spec
from node.commands.wallet import tx_group
from node.core.node import Node, NodeConfig
from node.keys import Keypair, Scheme, dev_keypair
from node.keystore import save_keystore
from node.rpc.server import serve_rpc
from node.service import open_node

FAST = {"opslimit": argon2id.OPSLIMIT_MIN, "memlimit": argon2id.MEMLIMIT_MIN}


def spec_of_type(chain_type: str) -> dict[str, Any]:
    """The dev genesis under another chain type (and id, so its database is its own)."""
    raw: dict[str, Any] = json.loads(resources.files("node.specs").joinpath("dev.json").read_text())
    raw["chain_type"] = chain_type
    raw["id"] = f"imagechain_{chain_type}_test"
    raw["name"] = f"imagechain {chain_type} test"
    return raw


@pytest.fixture
def live_spec(tmp_path: Path) -> Path:
    path = tmp_path / "live.json"
    path.write_text(json.dumps(spec_of_type("live")))
    return path


def run_node(base: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`imagechain node ...` as a subprocess that must end on its own (a refusal) within 60 s.

    No network, RPC and metrics on port 0: if the refusal is missing, the node runs on ports
    nobody else uses until the timeout kills it (and the test fails).
    """
    command = [sys.executable, "-m", "node", "node", "--base-path", str(base), "--no-network",
               "--rpc-port", "0", "--prometheus-port", "0", "--log", "warn", *args]  # fmt: skip
    return subprocess.run(command, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)


# ---------------------------------------------------------------------------------------------
# The node
# ---------------------------------------------------------------------------------------------


def test_validator_without_key_is_refused(tmp_path: Path, live_spec: Path) -> None:
    result = run_node(tmp_path / "b", "--chain", str(live_spec), "--validator")
    assert result.returncode != 0
    assert "--validator needs --key" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "b" / "chains").exists(), "nothing may be created before the refusal"


@pytest.mark.parametrize("key", ["//Alice", "//Mallory"])
def test_dev_uri_validator_key_is_refused_on_a_live_chain(tmp_path: Path, live_spec: Path, key: str) -> None:
    result = run_node(tmp_path / "b", "--chain", str(live_spec), "--validator", "--key", key)
    assert result.returncode != 0
    assert f"--key {key} refused" in result.stderr
    assert "dev keys are public" in result.stderr and "'live'" in result.stderr
    assert "Traceback" not in result.stderr


def test_well_known_dev_seed_is_refused_on_a_live_chain(tmp_path: Path, live_spec: Path) -> None:
    """The //Alice secret typed as a hex seed is still //Alice."""
    seed = "0x" + dev_keypair("//Alice").seed.hex()
    result = run_node(tmp_path / "b", "--chain", str(live_spec), "--validator", "--key", seed)
    assert result.returncode != 0
    assert "the public dev key //Alice" in result.stderr


def test_node_without_chain_does_not_guess(tmp_path: Path) -> None:
    result = run_node(tmp_path / "b")
    assert result.returncode != 0
    assert "--chain" in result.stderr and "--dev" in result.stderr
    assert not (tmp_path / "b" / "chains").exists()


def test_dev_and_local_chains_take_dev_keys() -> None:
    """`--dev`, `--chain dev` and devnets (type local) keep their dev keys."""
    from node.keystore import check_dev_key

    check_dev_key("//Alice", None, "development", "--key")
    check_dev_key("//Alice", None, "local", "--key")
    check_dev_key("//Alice", None, "Local", "--from")  # system_chainType's spelling


# ---------------------------------------------------------------------------------------------
# The policy itself
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("chain_type", ["live", "Live", "staging", ""])
def test_policy_refuses_dev_keys_off_dev_chains(chain_type: str, tmp_path: Path) -> None:
    from node.keystore import DevKeyRefused, check_dev_key

    with pytest.raises(DevKeyRefused, match="dev keys are public"):
        check_dev_key("//Alice", None, chain_type, "--key")
    # A keystore holding //Bob's secret is //Bob.
    path = tmp_path / "bob.json"
    save_keystore(path, dev_keypair("//Bob", Scheme.SECP256K1), b"pw", **FAST)
    with pytest.raises(DevKeyRefused, match="the public dev key //Bob"):
        check_dev_key(str(path), dev_keypair("//Bob", Scheme.SECP256K1), chain_type, "--from")
    # A key of one's own is fine.
    check_dev_key(str(path), Keypair.generate(Scheme.ED25519), chain_type, "--from")


# ---------------------------------------------------------------------------------------------
# Wallet commands: --from
# ---------------------------------------------------------------------------------------------


async def invoke(group: Any, *args: str) -> Result:
    """Run a command in a worker thread (it makes blocking RPC calls to the server in this trio run)."""
    runner = CliRunner()
    return await trio.to_thread.run_sync(lambda: runner.invoke(group, list(args)))


@pytest.fixture
def live_node(tmp_path: Path) -> Iterator[Node]:
    """A real node on a live-type chain (no authority, no network)."""
    node = open_node(NodeConfig(base_path=tmp_path / "live", spec=parse_chain_spec(spec_of_type("live")), rpc_port=None))
    yield node
    node.close()


async def test_wallet_refuses_dev_signer_on_a_live_chain(live_node: Node, nursery: trio.Nursery) -> None:
    """The node's real RPC server; `tx transfer --from //Alice` asks it the chain type first."""
    port = await nursery.start(lambda task_status: serve_rpc(live_node, "127.0.0.1", 0, task_status=task_status))
    url = f"http://127.0.0.1:{port}"
    result = await invoke(tx_group, "transfer", "--from", "//Alice", "--to", "//Bob", "--amount", "1",
                          "--no-wait", "--url", url)  # fmt: skip
    assert result.exit_code != 0
    assert "--from //Alice refused" in result.output and "dev keys are public" in result.output
    assert live_node.pool.pending() == [], "nothing signed by a dev key may reach the pool"
    # A key of the user's own is not refused on that chain (it has no funds: the pool says so).
    own = "0x" + Keypair.generate(Scheme.ED25519).seed.hex()
    result = await invoke(tx_group, "transfer", "--from", own, "--to", "//Bob", "--amount", "1",
                          "--no-wait", "--url", url)  # fmt: skip
    assert "refused" not in result.output and "dev keys" not in result.output
