"""Wallet commands: `imagechain tx`, `imagechain account`, `imagechain chain`.

They talk to a running node over JSON-RPC (`--url`, or the IMAGECHAIN_RPC_URL environment
variable) through `node.client.RpcClient`, so they work the same against a local `--dev` node and
a remote one. Amounts are typed and shown in IMG with exact decimals (`node.units`), never floats.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click

from node.client import DEFAULT_URL, RpcClient, RpcClientError, transfer
from node.keys import AddressError, Keypair, Scheme, decode_address, dev_keypair, encode_address
from node.keystore import (
    KeystoreError,
    check_dev_key,
    is_dev_uri,
    load_signer,
    read_password_file,
    well_known_dev_key,
)
from node.types import MAX_MORTAL_PERIOD
from node.units import format_img, parse_img

__all__ = ["account_group", "chain_group", "tx_group"]

URL_ENV = "IMAGECHAIN_RPC_URL"
_SCHEME_CHOICE = click.Choice([scheme.label for scheme in Scheme], case_sensitive=False)


def _url_option(function: Any) -> Any:
    return click.option(
        "--url",
        default=DEFAULT_URL,
        envvar=URL_ENV,
        show_default=True,
        help=f"The node's JSON-RPC URL (or set {URL_ENV}).",
    )(function)


@contextmanager
def _client(url: str) -> Iterator[RpcClient]:
    """An RPC client whose failures end the command with a one-line message, not a traceback."""
    try:
        with RpcClient(url) as client:
            yield client
    except RpcClientError as exc:
        raise click.ClickException(str(exc)) from exc


def _amount(text: str, what: str) -> int:
    try:
        return parse_img(text)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint=what) from exc


def _account_id(text: str, what: str) -> bytes:
    """An address, a raw 0x account id, or (for dev chains) a dev URI such as //Bob."""
    text = text.strip()
    try:
        if text.startswith("//"):
            return dev_keypair(text).account_id
        if text.lower().startswith("0x") and len(text) == 66:
            return bytes.fromhex(text[2:])
        return decode_address(text)
    except (AddressError, ValueError) as exc:
        raise click.BadParameter(str(exc), param_hint=what) from exc


def _signer(spec: str, scheme: str, password_file: Path | None, url: str | None = None) -> Keypair:
    """The `--from` keypair; a public dev key only if the node at `url` (default: the command's
    `--url`) runs a development or local chain, since anyone can sign as one elsewhere."""
    try:
        password = read_password_file(password_file) if password_file is not None else None
        keypair = load_signer(spec, password, scheme=Scheme.from_label(scheme))
        if is_dev_uri(spec) or well_known_dev_key(keypair) is not None:
            check_dev_key(spec, keypair, _chain_type(url), "--from")
        return keypair
    except KeystoreError as exc:
        raise click.ClickException(str(exc)) from exc
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--from") from exc


def _chain_type(url: str | None) -> str:
    """The node's chain type, lower case ("development", "local", "live" or a custom name)."""
    if url is None:
        url = click.get_current_context().params.get("url") or DEFAULT_URL
    with _client(url) as client:
        kind = client.call("system_chainType")
    if isinstance(kind, dict) and kind:
        return str(next(iter(kind.values()))).lower()  # {"Custom": name}
    return str(kind).lower()


def _hex(block_hash: bytes) -> str:
    return "0x" + block_hash.hex()


# ---------------------------------------------------------------------------------------------
# tx
# ---------------------------------------------------------------------------------------------


@click.group("tx")
def tx_group() -> None:
    """Sign and submit transactions."""


@tx_group.command("transfer")
@click.option("--from", "sender", required=True, help="Signer: keystore file, dev URI (//Alice) or 0x seed.")
@click.option("--to", "dest", required=True, help="Recipient address (or a dev URI such as //Bob).")
@click.option("--amount", required=True, help="Amount in IMG, e.g. 12.5.")
@click.option(
    "--tip", default="0", show_default=True, help="Tip in IMG, paid to the block author for priority."
)
@click.option(
    "--scheme",
    type=_SCHEME_CHOICE,
    default="ed25519",
    show_default=True,
    help="Scheme of a URI or seed signer.",
)
@click.option(
    "--password-file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Keystore password file (else IMAGECHAIN_PASSWORD, else a prompt).",
)
@click.option(
    "--mortality",
    default=64,
    show_default=True,
    type=click.IntRange(2, MAX_MORTAL_PERIOD),
    help=f"Valid for this many blocks from the current best (at most {MAX_MORTAL_PERIOD}: no transaction is immortal).",
)
@click.option(
    "--no-wait", is_flag=True, help="Return once the node accepted it, without waiting for a block."
)
@_url_option
def transfer_command(
    sender: str,
    dest: str,
    amount: str,
    tip: str,
    scheme: str,
    password_file: Path | None,
    mortality: int,
    no_wait: bool,
    url: str,
) -> None:
    """Transfer IMG to another account."""
    value = _amount(amount, "--amount")
    tip_value = _amount(tip, "--tip")
    if value == 0:
        raise click.BadParameter("the amount must be more than zero", param_hint="--amount")
    dest_id = _account_id(dest, "--to")
    signer = _signer(sender, scheme, password_file)
    with _client(url) as client:
        click.echo(f"From:      {signer.address}")
        click.echo(f"To:        {encode_address(dest_id)}")
        click.echo(
            f"Amount:    {format_img(value)} IMG"
            + (f" (tip {format_img(tip_value)} IMG)" if tip_value else "")
        )
        ext_hash, block_hash = transfer(
            client, signer, dest_id, value, tip=tip_value, mortal_period=mortality, wait=not no_wait
        )
        click.echo(f"Extrinsic: {_hex(ext_hash)}")
        if block_hash is None:
            click.echo("Submitted; not waiting for a block (--no-wait).")
        else:
            number = client.header(block_hash).number
            click.echo(f"In block:  #{number} {_hex(block_hash)}")


# ---------------------------------------------------------------------------------------------
# account
# ---------------------------------------------------------------------------------------------


@click.group("account")
def account_group() -> None:
    """Inspect accounts."""


@account_group.command("balance")
@click.argument("address")
@_url_option
def balance_command(address: str, url: str) -> None:
    """Show an account's balances and nonce at the best block."""
    account_id = _account_id(address, "ADDRESS")
    with _client(url) as client:
        account = client.account(account_id)
        click.echo(f"Address:   {encode_address(account_id)}")
        click.echo(f"Free:      {format_img(account.free)} IMG")
        click.echo(f"Reserved:  {format_img(account.reserved)} IMG")
        click.echo(f"Frozen:    {format_img(account.frozen)} IMG")
        click.echo(f"Nonce:     {account.nonce}")


# ---------------------------------------------------------------------------------------------
# chain
# ---------------------------------------------------------------------------------------------


@click.group("chain")
def chain_group() -> None:
    """Inspect the chain."""


@chain_group.command("head")
@_url_option
def head_command(url: str) -> None:
    """Show the best and the finalized block."""
    with _client(url) as client:
        best = client.header()
        finalized = client.header(client.finalized_head())
        click.echo(f"Best:      #{best.number} {_hex(best.hash)}")
        click.echo(f"Finalized: #{finalized.number} {_hex(finalized.hash)}")
