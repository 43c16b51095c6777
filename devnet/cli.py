"""`imagechain devnet up|status|down`: a local multi-node network in the background, on loopback.

The commands are thin: they parse options, call `devnet.control` and print. Everything a later
command needs is in the devnet directory, so `status` and `down` work from any shell.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from devnet.control import DevnetError, ManifestError, NodeStatus, down, status, up

__all__ = ["devnet_group"]

DIR_OPTION = click.option(
    "--dir",
    "dir",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
    help="The devnet's directory: chain spec, manifest, and each node's base path, pid and log.",
)


@click.group("devnet")
def devnet_group() -> None:
    """A local network of dev validators and full nodes, run in the background."""


@devnet_group.command("up")
@click.option(
    "--validators",
    type=click.IntRange(min=1),
    default=4,
    show_default=True,
    help="Authorities //Alice, //Bob, ... (nodes 0..V-1).",
)
@click.option(
    "--full-nodes",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="Non-authoring nodes after the validators.",
)
@DIR_OPTION
@click.option(
    "--rpc-port", type=int, default=9944, show_default=True, help="Node i serves JSON-RPC on this + i."
)
@click.option(
    "--p2p-port", type=int, default=30333, show_default=True, help="Node i listens for libp2p on this + i."
)
@click.option(
    "--prometheus-port", type=int, default=9615, show_default=True, help="Node i serves metrics on this + i."
)
@click.option(
    "--slot-ms", type=click.IntRange(min=1), default=2000, show_default=True, help="Aura slot duration."
)
@click.option(
    "--python",
    "python",
    default=sys.executable,
    show_default="this interpreter",
    help="Python executable that runs the nodes.",
)
@click.option("--log", "log_spec", default="info", show_default=True, help="Each node's --log.")
@click.option(
    "--timeout", type=float, default=60.0, show_default=True, help="Seconds to wait for every node's RPC."
)
@click.option("--reset", is_flag=True, help="Delete the chain data of a stopped devnet in DIR first.")
@click.option("--no-network", is_flag=True, hidden=True, help="TEST ONLY: isolated nodes without libp2p.")
def up_command(
    validators: int,
    full_nodes: int,
    dir: Path,
    rpc_port: int,
    p2p_port: int,
    prometheus_port: int,
    slot_ms: int,
    python: str,
    log_spec: str,
    timeout: float,
    reset: bool,
    no_network: bool,
) -> None:
    """Start the devnet in DIR and return once every node answers RPC.

    A stopped devnet in DIR with the same validators and slot time resumes on its chain data.
    """
    try:
        devnet = up(
            dir,
            validators=validators,
            full_nodes=full_nodes,
            rpc_port=rpc_port,
            p2p_port=p2p_port,
            prometheus_port=prometheus_port,
            slot_ms=slot_ms,
            python=python,
            log_spec=log_spec,
            timeout=timeout,
            reset=reset,
            network=not no_network,
            progress=lambda message: click.echo(message, err=True),
        )
    except (DevnetError, ManifestError) as exc:
        raise click.ClickException(str(exc)) from exc
    for node in devnet.nodes:
        click.echo(f"{node.name:<7} {node.role:<9} {node.key or '-':<10} {node.rpc_url}")
    click.echo(
        f"Logs in {devnet.dir}/node<i>/log. Stop with: imagechain devnet down --dir {devnet.dir}", err=True
    )


def _cell(value: object) -> str:
    return "-" if value is None else str(value)


def _table(rows: list[NodeStatus]) -> str:
    header = ("NODE", "ROLE", "KEY", "PID", "ALIVE", "BEST", "FINALIZED", "PEERS", "RPC")
    lines = [header] + [
        (
            row.node.name,
            row.node.role,
            _cell(row.node.key),
            _cell(row.pid),
            "yes" if row.alive else "no",
            _cell(row.best),
            _cell(row.finalized),
            _cell(row.peers),
            row.node.rpc_url + (f"  ({row.error})" if row.alive and row.error else ""),
        )
        for row in rows
    ]
    widths = [max(len(line[i]) for line in lines) for i in range(len(header) - 1)]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=False)) + "  " + line[-1]
        for line in lines
    )


@devnet_group.command("status")
@DIR_OPTION
@click.option("--json", "as_json", is_flag=True, help="One JSON object per node, for scripts.")
def status_command(dir: Path, as_json: bool) -> None:
    """Each node's process, best and finalized block, and peer count."""
    try:
        rows = status(dir)
    except ManifestError as exc:
        raise click.ClickException(str(exc)) from exc
    if as_json:
        click.echo(json.dumps([row.to_json() for row in rows], indent=2))
    else:
        click.echo(_table(rows))


@devnet_group.command("down")
@DIR_OPTION
@click.option(
    "--timeout",
    type=float,
    default=15.0,
    show_default=True,
    help="Seconds to wait after SIGTERM before SIGKILL.",
)
def down_command(dir: Path, timeout: float) -> None:
    """Stop every node of the devnet (its data stays; `up` resumes it)."""
    try:
        outcome = down(dir, timeout=timeout)
    except (DevnetError, ManifestError) as exc:
        raise click.ClickException(str(exc)) from exc
    for name, result in outcome.items():
        click.echo(f"{name:<7} {result}")
