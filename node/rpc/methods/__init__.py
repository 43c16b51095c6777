"""Every RPC method, one module per family; `TABLE` joins them and is what the server dispatches on.

Each method is a small `async def` taking the `CallContext` and typed parameters, registered in
its family's `METHODS` table:

* `substrate` -- system_*, chain_*, state_*, author_*: Substrate's names and JSON shapes.
* `payment`   -- payment_queryInfo and system_dryRun: a transaction's fee and outcome, asked before
                 it is sent (the wallet's preflight).
* `balances`  -- balances_account: free, reserved, frozen, transferable and the vesting schedule.
* `network`   -- network_*: operator methods (peer blocking), served only with unsafe methods on.
* `copyright`, `licensing`, `emission` -- the domain's reads, and `copyright_verifyImage`.
* `storage`   -- storage_*: the image store (a blob's record, holders and providers; the store's stats).
* `discovery` -- rpc_methods and rpc.discover, built over the joined table.

Shared pieces live beside the families: parameter types in `node.rpc.params`, JSON of the
runtime's records in `node.rpc.render`, the block a query reads in `node.rpc.state_at`.

A new family (mining_*, storage_*, ...) is a new module here with its own `METHODS`, and its name
in `FAMILIES`.
"""

from types import ModuleType

from node.rpc.jsonrpc import MethodTable
from node.rpc.methods import balances, copyright, emission, licensing, network, payment, storage, substrate
from node.rpc.methods.discovery import describing

__all__ = ["FAMILIES", "TABLE"]

FAMILIES: tuple[ModuleType, ...] = (
    substrate, payment, balances, network, copyright, licensing, emission, storage,
)


def _joined(families: tuple[ModuleType, ...]) -> MethodTable:
    table = MethodTable()
    for family in families:
        table.include(family.METHODS)
    table.include(describing(table))
    return table


TABLE = _joined(FAMILIES)
