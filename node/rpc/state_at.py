"""The block a query reads (`at`, or the best block) and the state after it, for every family.

Substrate's rule, one place: an unknown block given as `at` is error 4003, and so is a known
block whose state was pruned; absence of a value is not an error (the method answers null).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from node.core.chain import StatePruned
from node.rpc.errors import state_discarded, unknown_block
from node.rpc.jsonrpc import CallContext
from node.state.trie import MissingNode

__all__ = ["block_at", "read_state"]

T = TypeVar("T")


def block_at(ctx: CallContext, at: bytes | None) -> bytes:
    """The block a state query reads: `at`, which must be known, or the best block."""
    if at is None:
        return ctx.node.chain.best_header().hash
    if ctx.node.chain.header(at) is None:
        raise unknown_block(at)
    return at


def read_state(ctx: CallContext, at: bytes | None, read: Callable[[Any], T]) -> T:
    """`read(get)` over the state after block `at` (best by default); pruned state is error 4003."""
    block_hash = block_at(ctx, at)
    try:
        return read(ctx.node.chain.state_reader(block_hash))
    except (StatePruned, MissingNode):
        raise state_discarded(block_hash) from None
