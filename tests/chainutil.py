"""Helpers for tests: signed transfers and blocks built against a plain dict state."""

from __future__ import annotations

from node.chain_spec import genesis_block, load_chain_spec
from node.keys import Keypair
from node.runtime.runtime import SPEC_VERSION
from node.types import Call, Mortality, SignedExtra, sign_extrinsic

IMG = 10**18
DEV_GENESIS = genesis_block(load_chain_spec("dev")).hash


def transfer_call(dest: bytes, amount: int, keep_alive: bool = False) -> Call:
    name = "transfer_keep_alive" if keep_alive else "transfer"
    return Call("balances", name, (dest, amount.to_bytes(16, "big")))


def signed(
    keypair: Keypair,
    call: Call,
    genesis_hash: bytes,
    nonce: int,
    tip: int = 0,
    mortality: Mortality | None = None,
    spec_version: int = SPEC_VERSION,
) -> bytes:
    """A signed extrinsic; by default born at genesis (valid through block 4095)."""
    extra = SignedExtra(genesis_hash, spec_version, nonce, tip, mortality or Mortality.from_genesis(genesis_hash))
    return sign_extrinsic(keypair, call, extra).encode()
