"""Running a command and reading what it printed, for the CLI tests."""

from __future__ import annotations

import json
from typing import Any

import trio
from click.testing import CliRunner, Result

from node.cli import _register_groups, cli

_register_groups()


async def run(*args: str) -> Result:
    """`imagechain ARGS...` in a worker thread (it makes blocking RPC calls to this trio run's node)."""
    runner = CliRunner()
    return await trio.to_thread.run_sync(lambda: runner.invoke(cli, list(args)))


def lines(output: str) -> dict[str, str]:
    """The `key: value` lines of an output (the first of each key)."""
    found: dict[str, str] = {}
    for line in output.splitlines():
        key, sep, value = line.partition(": ")
        if sep:
            found.setdefault(key, value)
    return found


def failure(result: Result) -> str:
    """The one line a failed command printed: exit status 1, one `Error:` line, no traceback."""
    assert result.exit_code == 1, (result.exit_code, result.output)
    assert "Traceback" not in result.output and result.exception is None or isinstance(result.exception, SystemExit)
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error: ")]
    assert len(errors) == 1, result.stderr
    return errors[0]


def as_json(result: Result) -> Any:
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


__all__ = ["as_json", "failure", "lines", "run"]
