"""The CLI tests run the commands (click's runner, in a worker thread) against a real dev node served
in the test's trio run: the RPC tests' fixtures, blocks authored as soon as the pool has something."""

from tests.rpc.conftest import auto_author, http, node, server, start_server

__all__ = ["auto_author", "http", "node", "server", "start_server"]
