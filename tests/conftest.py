"""Shared fixtures: the dev chain spec, dev keys, and an authoring and a following dev node."""

from __future__ import annotations

from pathlib import Path

import pytest

from node.chain_spec import ChainSpec, genesis_block, load_chain_spec
from node.keys import Keypair, dev_keypair
from node.service import dev_node


@pytest.fixture(scope="session")
def dev_spec() -> ChainSpec:
    return load_chain_spec("dev")


@pytest.fixture(scope="session")
def dev_genesis_hash(dev_spec: ChainSpec) -> bytes:
    return genesis_block(dev_spec).hash


@pytest.fixture(scope="session")
def alice() -> Keypair:
    return dev_keypair("//Alice")


@pytest.fixture(scope="session")
def bob() -> Keypair:
    return dev_keypair("//Bob")


@pytest.fixture(scope="session")
def charlie() -> Keypair:
    return dev_keypair("//Charlie")


@pytest.fixture
def author(tmp_path: Path):
    node = dev_node(tmp_path / "author", rpc_port=None)
    yield node
    node.close()


@pytest.fixture
def follower(tmp_path: Path):
    node = dev_node(tmp_path / "follower", rpc_port=None, authority=None)
    yield node
    node.close()
