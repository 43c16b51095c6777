"""The `imagechain` command line: the node itself and the tools around it.

`imagechain --dev` is short for `imagechain node --dev` (as Substrate's `node --dev`): the
first argument being an option means "run the node".
"""

from __future__ import annotations

import errno
import json
import logging
import shutil
import signal
import socket
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import click
import trio
from click.core import ParameterSource

from node import __version__

if TYPE_CHECKING:
    from node.core.node import Node, NodeConfig
    from node.keys import Keypair
    from node.rpc.limits import RpcLimits
    from node.storage.service import BlobConfig

LOG_FORMAT = "%(asctime)s %(levelname)-5s %(name)s: %(message)s"


def configure_logging(spec: str) -> None:
    """`--log info` or `--log info,imagechain.txpool=debug` (Substrate's `-l target=level`)."""
    parts = [p for p in spec.split(",") if p]
    root_level = "INFO"
    targets: dict[str, str] = {}
    for part in parts:
        if "=" in part:
            target, level = part.split("=", 1)
            targets[target] = level.upper()
        else:
            root_level = part.upper()
    logging.basicConfig(level=root_level, format=LOG_FORMAT, datefmt="%Y-%m-%d %H:%M:%S", stream=sys.stderr)
    for target, level in targets.items():
        logging.getLogger(target).setLevel(level)


def parse_cors_option(value: str | None) -> tuple[str, ...] | None:
    """`--rpc-cors` checked at the command line (None: every origin); see `node.rpc.origins`."""
    from node.rpc.origins import parse_cors

    if value is None:
        return None
    try:
        return parse_cors(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--rpc-cors") from exc


def rpc_limits_from_options(
    *,
    dev: bool,
    max_connections: int,
    max_connections_per_ip: int,
    max_request_mib: int,
    max_response_mib: int,
    max_batch_len: int,
    max_subscriptions_per_connection: int,
    max_subscriptions: int,
    message_buffer_capacity: int,
    rate_limit: int | None,
    max_image_jobs: int,
    max_image_pixels: int,
    cors: str | None,
) -> RpcLimits:
    """The RPC server's limits from the `--rpc-*` flags (sizes in MiB, as Substrate's).

    `--rpc-cors` defaults to the localhost origins, and to every origin with `--dev`. Answers
    held for clients that have not read them may take two answers' worth, at least 32 MiB.
    """
    from node.rpc.limits import DEFAULT_CORS, MIB, RpcLimits

    if cors is None:
        origins = None if dev else DEFAULT_CORS
    else:
        origins = parse_cors_option(cors)
    try:
        return RpcLimits(
            max_request_bytes=max_request_mib * MIB,
            max_response_bytes=max_response_mib * MIB,
            max_buffered_response_bytes=max(32 * MIB, 2 * max_response_mib * MIB),
            max_batch_len=max_batch_len,
            max_connections=max_connections,
            max_connections_per_ip=max_connections_per_ip,
            max_subscriptions_per_connection=max_subscriptions_per_connection,
            max_subscriptions=max_subscriptions,
            message_buffer_capacity=message_buffer_capacity,
            rate_limit_per_minute=rate_limit,
            max_image_jobs=max_image_jobs,
            max_image_pixels=max_image_pixels,
            cors=origins,
        )
    except ValueError as exc:
        raise click.UsageError(str(exc)) from exc


def blob_config_from_options(
    *, quota_gib: float, max_upload_mib: int, gc_grace_s: float, storer: str | None, repair_interval_s: float
) -> BlobConfig:
    """The image store's settings from the `--blob-*` flags (README "Security")."""
    from node.keys import AddressError, decode_address
    from node.storage.service import GIB, MIB, BlobConfig

    account = None
    if storer is not None:
        try:
            account = decode_address(storer)
        except AddressError as exc:
            raise click.BadParameter(str(exc), param_hint="--blob-storer") from exc
    try:
        return BlobConfig(
            quota_bytes=int(quota_gib * GIB),
            max_upload_bytes=max_upload_mib * MIB,
            gc_grace_s=gc_grace_s,
            storer=account,
            repair_interval_s=repair_interval_s,
        )
    except ValueError as exc:
        raise click.UsageError(str(exc)) from exc


def parse_pruning(value: str) -> int | None:
    if value == "archive":
        return None
    try:
        blocks = int(value)
    except ValueError as exc:
        raise click.BadParameter("expected 'archive' or a number of blocks") from exc
    if blocks < 1:
        raise click.BadParameter("the pruning window must be at least 1 block")
    return blocks


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="imagechain")
def cli() -> None:
    """imagechain: a blockchain node for image copyright."""


@cli.command("node")
@click.option("--dev", is_flag=True, help="Development chain: //Alice authors, temporary base path, RPC on 9944.")
@click.option("--chain", "chain_spec", default=None,
              help="Chain spec file, or 'dev' for the built-in dev spec. Required unless --dev (which implies 'dev').")
@click.option("--base-path", type=click.Path(path_type=Path), default=None, help="Where the database lives.")
@click.option("--tmp", "use_tmp", is_flag=True,
              help="Keep the database in a temporary directory, removed when the node stops (any chain).")
@click.option("--rpc-port", type=int, default=9944, show_default=True, help="JSON-RPC HTTP and WebSocket port.")
@click.option("--rpc-host", default="127.0.0.1", show_default=True, help="JSON-RPC listen address.")
@click.option("--name", default=None, help="Node name shown in logs and system_name.")
@click.option("--pruning", default="256", show_default=True, help="'archive' or the number of recent states to keep.")
@click.option("--validator", is_flag=True, help="Author blocks and vote on finality with the key given by --key.")
@click.option("--key", "authority_key", default=None,
              help="Authority key: keystore file or 0x seed; dev URIs (//Alice) only on development and local chains.")
@click.option("--password-file", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="Password of the --key keystore (else $IMAGECHAIN_PASSWORD, else a prompt).")
@click.option("--log", "log_spec", default="info", show_default=True, help="Log level, e.g. info,imagechain=debug.")
@click.option("--port", type=int, default=30333, show_default=True, help="libp2p TCP port (on 127.0.0.1 unless --listen-addr).")
@click.option("--listen-addr", "listen_addrs", multiple=True, help="libp2p listen multiaddr (repeatable).")
@click.option("--bootnodes", multiple=True, help="Bootnode multiaddr ending in /p2p/<peer id> (repeatable).")
@click.option("--reserved-nodes", multiple=True, help="Peers to stay connected to (repeatable).")
@click.option("--reserved-only", is_flag=True, help="Connect only to reserved nodes.")
@click.option("--in-peers", type=int, default=25, show_default=True, help="Maximum inbound peers.")
@click.option("--out-peers", type=int, default=15, show_default=True, help="Maximum outbound peers.")
@click.option("--no-network", is_flag=True, help="Run without libp2p (the --dev default).")
@click.option("--prometheus-port", type=int, default=None, help="Prometheus metrics port (default 9615, off for --dev).")
@click.option("--rpc-methods", type=click.Choice(["auto", "safe", "unsafe"]), default="auto", show_default=True,
              help="Unsafe (operator) RPC methods: 'auto' serves them only when RPC listens on loopback.")
@click.option("--rpc-cors", default=None,
              help="Origins whose pages may call RPC: comma-separated, 'all' or '*' for any "
                   "(default: http(s)://localhost:* and http(s)://127.0.0.1:*; all with --dev).")
@click.option("--rpc-max-connections", type=click.IntRange(min=1), default=100, show_default=True,
              help="Open RPC connections (WebSocket sessions, HTTP requests in progress).")
@click.option("--rpc-max-connections-per-ip", type=click.IntRange(min=1), default=20, show_default=True,
              help="Open RPC connections from one IP address.")
@click.option("--rpc-max-request-size", type=click.IntRange(min=1), default=10, show_default=True,
              help="Largest HTTP body or WebSocket message, in MiB.")
@click.option("--rpc-max-response-size", type=click.IntRange(min=1), default=10, show_default=True,
              help="Largest answer to one request or batch, in MiB.")
@click.option("--rpc-max-batch-request-len", type=click.IntRange(min=1), default=1000, show_default=True,
              help="Requests in one batch.")
@click.option("--rpc-max-subscriptions-per-connection", type=click.IntRange(min=1), default=256,
              show_default=True, help="Live subscriptions on one WebSocket connection.")
@click.option("--rpc-max-subscriptions-total", type=click.IntRange(min=1), default=4096, show_default=True,
              help="Live subscriptions on the node, over all connections.")
@click.option("--rpc-message-buffer-capacity-per-connection", type=click.IntRange(min=1), default=64,
              show_default=True, help="Messages queued for a WebSocket client before it is throttled "
                                      "(answers) or disconnected (notifications).")
@click.option("--rpc-rate-limit", type=click.IntRange(min=1), default=None,
              help="Calls a minute per connection (per IP address over HTTP); off by default.")
@click.option("--rpc-max-image-jobs", type=click.IntRange(min=1), default=1, show_default=True,
              help="copyright_verifyImage jobs at once; more are answered 'busy' (-32009).")
@click.option("--rpc-max-image-pixels", type=click.IntRange(min=1), default=4096 * 3072, show_default=True,
              help="Largest image copyright_verifyImage decodes, in pixels (checked from its header).")
@click.option("--blob-quota", type=click.FloatRange(min=0), default=10.0, show_default=True,
              help="Image store quota in GiB (blob segments held by this node).")
@click.option("--blob-max-upload", type=click.IntRange(min=1, max=256), default=256, show_default=True,
              help="Largest PUT /blob upload, in MiB.")
@click.option("--blob-gc-grace", type=click.FloatRange(min=0), default=3600.0, show_default=True,
              help="Seconds an unreferenced blob (an upload not yet registered) is kept.")
@click.option("--blob-storer", default=None,
              help="Keep the blobs the chain assigns to this bonded storage miner (an address).")
@click.option("--blob-repair-interval", type=click.FloatRange(min=0.1), default=60.0, show_default=True,
              help="Seconds between the storer's repair rounds (live storers of its blobs).")
@click.option("--test-equivocate", is_flag=True, hidden=True, help="TEST ONLY: sign two blocks per slot.")
def node_command(
    dev: bool,
    chain_spec: str | None,
    base_path: Path | None,
    use_tmp: bool,
    rpc_port: int,
    rpc_host: str,
    name: str | None,
    pruning: str,
    validator: bool,
    authority_key: str | None,
    password_file: Path | None,
    log_spec: str,
    port: int,
    listen_addrs: tuple[str, ...],
    bootnodes: tuple[str, ...],
    reserved_nodes: tuple[str, ...],
    reserved_only: bool,
    in_peers: int,
    out_peers: int,
    no_network: bool,
    prometheus_port: int | None,
    rpc_methods: str,
    rpc_cors: str | None,
    rpc_max_connections: int,
    rpc_max_connections_per_ip: int,
    rpc_max_request_size: int,
    rpc_max_response_size: int,
    rpc_max_batch_request_len: int,
    rpc_max_subscriptions_per_connection: int,
    rpc_max_subscriptions_total: int,
    rpc_message_buffer_capacity_per_connection: int,
    rpc_rate_limit: int | None,
    rpc_max_image_jobs: int,
    rpc_max_image_pixels: int,
    blob_quota: float,
    blob_max_upload: int,
    blob_gc_grace: float,
    blob_storer: str | None,
    blob_repair_interval: float,
    test_equivocate: bool,
) -> None:
    """Run a node."""
    from node.chain_spec import ChainSpecError, load_chain_spec
    from node.core.node import NodeConfig

    configure_logging(log_spec)
    if chain_spec is None and not dev:
        # As Substrate's --dev implies the dev chain; without it there is no safe guess: the dev
        # spec's authorities and accounts are public keys, and no live spec ships with the node.
        raise click.UsageError(
            "--chain is required: give the chain spec file of the network to join, or --dev for a development chain"
        )
    if validator and authority_key is None and not dev:
        raise click.UsageError(
            "--validator needs --key: a keystore file (imagechain key generate --out FILE) or a 0x seed; "
            "a validator never signs with a default key"
        )
    if authority_key is not None and not (validator or dev):
        raise click.UsageError("--key is the validator's key: use it with --validator")
    rpc_limits = rpc_limits_from_options(
        dev=dev,
        max_connections=rpc_max_connections,
        max_connections_per_ip=rpc_max_connections_per_ip,
        max_request_mib=rpc_max_request_size,
        max_response_mib=rpc_max_response_size,
        max_batch_len=rpc_max_batch_request_len,
        max_subscriptions_per_connection=rpc_max_subscriptions_per_connection,
        max_subscriptions=rpc_max_subscriptions_total,
        message_buffer_capacity=rpc_message_buffer_capacity_per_connection,
        rate_limit=rpc_rate_limit,
        max_image_jobs=rpc_max_image_jobs,
        max_image_pixels=rpc_max_image_pixels,
        cors=rpc_cors,
    )
    blobs = blob_config_from_options(
        quota_gib=blob_quota,
        max_upload_mib=blob_max_upload,
        gc_grace_s=blob_gc_grace,
        storer=blob_storer,
        repair_interval_s=blob_repair_interval,
    )
    try:
        spec = load_chain_spec(chain_spec if chain_spec else "dev")
    except (ChainSpecError, OSError) as exc:
        raise click.ClickException(str(exc)) from exc
    authority = _authority_key(authority_key or "//Alice", password_file, spec.chain_type) if dev or validator else None
    if use_tmp and base_path is not None:
        raise click.UsageError("--tmp and --base-path exclude each other: --tmp is a temporary base path")
    temporary = None
    if base_path is None:
        if not (dev or use_tmp):
            raise click.UsageError("--base-path is required (or --tmp for a temporary one, or --dev for a temporary chain)")
        temporary = Path(tempfile.mkdtemp(prefix="imagechain-dev-" if dev else "imagechain-tmp-"))
        base_path = temporary
    network = None
    # A --dev chain is a lone node unless networking is asked for (bootnodes, a port, listen addrs).
    port_given = click.get_current_context().get_parameter_source("port") is not ParameterSource.DEFAULT
    wants_network = not dev or bool(bootnodes or listen_addrs or reserved_nodes) or port_given
    if wants_network and not no_network:
        from node.chain_spec import genesis_block
        from node.p2p.network import NetworkConfig

        network = NetworkConfig(
            base_path=base_path,
            genesis_hash=genesis_block(spec).hash,
            listen_addrs=list(listen_addrs) or [f"/ip4/127.0.0.1/tcp/{port}"],
            bootnodes=list(bootnodes),
            reserved_nodes=list(reserved_nodes),
            reserved_only=reserved_only,
            max_inbound=in_peers,
            max_outbound=out_peers,
        )
    if prometheus_port is None and not dev:
        prometheus_port = 9615
    config = NodeConfig(
        base_path=base_path,
        spec=spec,
        name=name or ("Alice" if dev else "imagechain-node"),
        pruning=parse_pruning(pruning),
        authority=authority,
        rpc_host=rpc_host,
        rpc_port=rpc_port,
        network=network,
        prometheus_port=prometheus_port,
        test_equivocate=test_equivocate,
        rpc_unsafe=rpc_methods == "unsafe" or (rpc_methods == "auto" and rpc_host in ("127.0.0.1", "localhost", "::1")),
        rpc_limits=rpc_limits,
        blobs=blobs,
    )
    try:
        _check_ports(config)
        node = _open(config)
    except click.ClickException:
        if temporary is not None:
            shutil.rmtree(temporary, ignore_errors=True)
        raise
    try:
        trio.run(run_until_signal, node)
    except KeyboardInterrupt:
        logging.getLogger("imagechain").info("Shutting down (Ctrl-C)")
    except BaseExceptionGroup as group:
        busy = _address_in_use(group)
        if busy is None:
            raise
        raise click.ClickException(f"cannot listen: {busy} (another node running? choose other ports)") from None
    finally:
        node.close()
        if temporary is not None:
            shutil.rmtree(temporary, ignore_errors=True)


def _check_ports(config: NodeConfig) -> None:
    """Refuse at once, in one line, a port another program holds (RPC, Prometheus, libp2p), rather
    than start the services and end in a nested traceback of the one that could not bind."""
    wanted = [(config.rpc_host, config.rpc_port, "--rpc-port")] if config.rpc_port is not None else []
    if config.prometheus_port:
        wanted.append(("127.0.0.1", config.prometheus_port, "--prometheus-port"))
    if config.network is not None:
        for addr in config.network.listen_addrs:
            parts = addr.split("/")
            if len(parts) >= 5 and parts[1] == "ip4" and parts[3] == "tcp" and parts[4].isdigit():
                wanted.append((parts[2], int(parts[4]), "--port"))
    for host, port, flag in wanted:
        if port == 0:
            continue
        with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind((host, port))
            except OSError as exc:
                reason = "it is in use (another node running?)" if exc.errno == errno.EADDRINUSE else exc.strerror
                raise click.ClickException(
                    f"cannot listen on {host}:{port} ({flag}): {reason}; choose another {flag}"
                ) from None


def _address_in_use(group: BaseExceptionGroup) -> str | None:
    """The message of an "address in use" error anywhere in a service group, else None."""
    for exc in group.exceptions:
        if isinstance(exc, BaseExceptionGroup):
            found = _address_in_use(exc)
            if found is not None:
                return found
        elif isinstance(exc, OSError) and exc.errno == errno.EADDRINUSE:
            return str(exc)
    return None


def _open(config: NodeConfig) -> Node:
    """Open the node's database and chain, or end with a message that says what is wrong and
    what to do (a damaged database, one of another chain) instead of a traceback."""
    from node.core.chain import ChainMismatch
    from node.core.db import DatabaseError
    from node.service import open_node

    try:
        return open_node(config)
    except DatabaseError as exc:
        raise click.ClickException(str(exc)) from exc
    except ChainMismatch as exc:
        raise click.ClickException(
            f"the database under {config.base_path} belongs to another chain ({exc}); start with the "
            "--chain it was made for, or another --base-path"
        ) from exc


def _authority_key(key: str, password_file: Path | None, chain_type: str) -> Keypair:
    """The validator's keypair from --key, refused if it is a public dev key on a chain that is not
    a development or local one (anyone could author and vote as it there)."""
    from node.keystore import KeystoreError, check_dev_key, load_signer, read_password_file

    try:
        check_dev_key(key, None, chain_type, "--key")  # before any password prompt
        password = read_password_file(password_file) if password_file is not None else None
        keypair = load_signer(key, password)
        check_dev_key(key, keypair, chain_type, "--key")  # a seed or keystore holding //Alice
    except KeystoreError as exc:
        raise click.ClickException(str(exc)) from exc
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--key") from exc
    return keypair


async def run_until_signal(node: Node) -> None:
    """Run the node's services until SIGTERM or SIGINT, then stop them all and return."""
    from node.service import run_node

    async with trio.open_nursery() as nursery:
        with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
            await nursery.start(run_node, node)
            async for signum in signals:
                logging.getLogger("imagechain").info("Shutting down (%s)", signal.Signals(signum).name)
                nursery.cancel_scope.cancel()
                break


@cli.command("purge-chain")
@click.option("--chain", "chain_spec", default=None, help="Chain spec file, or 'dev'. Required unless --dev.")
@click.option("--dev", is_flag=True, help="The dev chain's database.")
@click.option("--base-path", type=click.Path(path_type=Path, file_okay=False), required=True,
              help="The node's base path.")
@click.option("-y", "--yes", is_flag=True, help="Do not ask for confirmation.")
def purge_chain_command(chain_spec: str | None, dev: bool, base_path: Path, yes: bool) -> None:
    """Remove a chain's database (BASE/chains/<id>/db), as Substrate's purge-chain; the node key and
    anything else under the base path stay. The node must be stopped."""
    from node.chain_spec import ChainSpecError, load_chain_spec

    if chain_spec is None and not dev:
        raise click.UsageError("--chain is required (or --dev): a base path may hold several chains")
    try:
        spec = load_chain_spec(chain_spec or "dev")
    except (ChainSpecError, OSError) as exc:
        raise click.ClickException(str(exc)) from exc
    db = base_path / "chains" / spec.id / "db"
    if not db.exists():
        raise click.ClickException(f"{db} does not exist: nothing to purge")
    if (db / "lock.mdb").exists() and _locked(db / "lock.mdb"):
        raise click.ClickException(f"{db} is open by a running node: stop it first")
    if not yes:
        click.confirm(f"Remove the {spec.name!r} database at {db}?", abort=True, err=True)
    shutil.rmtree(db)
    click.echo(f"{db} removed.")


def _locked(lock_file: Path) -> bool:
    """Whether another process holds LMDB's lock file (a running node): try its exclusive lock."""
    import fcntl

    with open(lock_file, "rb+") as handle:
        try:
            fcntl.lockf(handle, fcntl.LOCK_EX | fcntl.LOCK_NB, 1)
        except OSError:
            return True
        fcntl.lockf(handle, fcntl.LOCK_UN, 1)
    return False


@cli.command("build-spec")
@click.option("--chain", "chain_spec", default="dev", show_default=True, help="Chain spec file, or 'dev'.")
@click.option("--raw", is_flag=True,
              help="Print the genesis storage as hex keys and values, with the genesis hash (to inspect or compare).")
def build_spec_command(chain_spec: str, raw: bool) -> None:
    """Print a chain spec as JSON, as Substrate's build-spec: edit it and give it to `--chain` (the
    plain form is what nodes load)."""
    from node.chain_spec import ChainSpecError, genesis_block, genesis_storage, load_chain_spec

    try:
        spec = load_chain_spec(chain_spec)
    except (ChainSpecError, OSError) as exc:
        raise click.ClickException(str(exc)) from exc
    if not raw:
        click.echo(json.dumps(spec.raw, indent=2))
        return
    storage = genesis_storage(spec)
    document = {
        "name": spec.name, "id": spec.id, "chainType": spec.chain_type,
        "genesisHash": "0x" + genesis_block(spec).hash.hex(),
        "genesis": {"raw": {"top": {"0x" + k.hex(): "0x" + v.hex() for k, v in sorted(storage.items())}}},
    }  # fmt: skip
    click.echo(json.dumps(document, indent=2))


def _register_groups() -> None:
    """Subcommand groups that live next to their own code."""
    from devnet.cli import devnet_group
    from node.commands.copyright import licence_group, license_group  # also adds `image register`, ...
    from node.commands.image import image_group
    from node.commands.key import key_group
    from node.commands.wallet import account_group, chain_group, tx_group

    for group in (
        key_group, tx_group, account_group, chain_group, image_group, licence_group, license_group, devnet_group
    ):
        cli.add_command(group)


def main() -> None:
    _register_groups()
    args = sys.argv[1:]
    if args and args[0].startswith("-") and args[0] not in ("-h", "--help", "--version"):
        args = ["node", *args]
    cli.main(args=args, prog_name="imagechain")
