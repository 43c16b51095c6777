"""rpc_*: the server describing itself. Built over the finished table, since it lists every family."""

from __future__ import annotations

from node.rpc.jsonrpc import JSON, CallContext, MethodTable

RPC_METHODS_VERSION = 1
OPENRPC_VERSION = "1.2.6"


def describing(table: MethodTable) -> MethodTable:
    """`rpc_methods` and `rpc.discover` over `table` (which lists them too, once it includes them)."""
    methods = MethodTable()

    @methods.method("rpc_methods", result={"type": "object"})
    async def rpc_methods(ctx: CallContext) -> JSON:
        """The names of every method this server answers."""
        return {"methods": table.names(), "version": RPC_METHODS_VERSION}

    @methods.method("rpc.discover", result={"type": "object"})
    async def rpc_discover(ctx: CallContext) -> JSON:
        """The OpenRPC document describing every method, generated from this table."""
        return {
            "openrpc": OPENRPC_VERSION,
            "info": {"title": "imagechain JSON-RPC", "version": ctx.node.version},
            "methods": [
                {
                    "name": method.name,
                    "summary": method.summary,
                    "params": [
                        {"name": param.name, "required": param.required, "schema": param.type.schema}
                        for param in method.params
                    ],
                    "result": {"name": "result", "schema": method.result_schema},
                    **({"x-websocket-only": True} if method.websocket_only else {}),
                }
                for method in table
            ],
        }

    return methods
