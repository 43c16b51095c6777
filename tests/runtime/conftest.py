"""Fixtures for the copyright, licensing, emission and PoD runtime tests."""

from __future__ import annotations

import pytest

from node.chain_spec import ChainSpec
from node.keys import Keypair, dev_keypair
from tests.runtime.copyright_util import Chain

# The test images are 512x384 and smaller: screening sizes low enough for them (the dev genesis
# values are checked in test_pod with a full-size image).
SMALL_POD = {"min_long_edge": 256, "min_short_edge": 192}


@pytest.fixture
def chain(dev_spec: ChainSpec) -> Chain:
    return Chain.new(dev_spec, **SMALL_POD)


@pytest.fixture(scope="session")
def dave() -> Keypair:
    return dev_keypair("//Dave")


@pytest.fixture(scope="session")
def mallory() -> Keypair:
    return dev_keypair("//Mallory")
