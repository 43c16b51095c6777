"""``imagechain key``: create and inspect account keys.

Secrets are only ever shown when the user asked for a key without a keystore file to put it in, and
then with a warning on stderr, so that piping stdout into a log does not silently spread them.
"""

from __future__ import annotations

import os
from pathlib import Path

import click

from node.keys import NETWORK_PREFIX, AddressError, Keypair, Scheme, decode_address, encode_address
from node.keystore import PASSWORD_ENV, KeystoreError, load_signer, read_password_file, save_keystore

__all__ = ["key_group"]

_SCHEME_CHOICE = click.Choice([scheme.label for scheme in Scheme], case_sensitive=False)


@click.group("key")
def key_group() -> None:
    """Create and inspect account keys."""


def _print_identity(keypair: Keypair) -> None:
    public = keypair.public
    click.echo(f"Scheme:      {keypair.scheme.label}")
    click.echo(f"Public key:  0x{public.data.hex()}")
    click.echo(f"Account id:  0x{keypair.account_id.hex()}")
    click.echo(f"Address:     {keypair.address}")


def _new_password(password_file: Path | None) -> bytes:
    """Password for a new keystore: file, then environment, then a prompt typed twice."""
    if password_file is not None:
        password = read_password_file(password_file)
    else:
        from_env = os.environ.get(PASSWORD_ENV)
        if from_env is not None:
            password = from_env.encode("utf-8")
        else:
            typed = click.prompt("Keystore password", hide_input=True, confirmation_prompt=True, err=True)
            password = typed.encode("utf-8")
    if not password:
        raise click.UsageError("the keystore password must not be empty")
    return password


@key_group.command("generate")
@click.option("--scheme", "scheme_label", type=_SCHEME_CHOICE, default="ed25519", show_default=True)
@click.option(
    "--out",
    type=click.Path(dir_okay=False, writable=True, path_type=Path),
    help="Write an encrypted keystore file here instead of printing the secret seed.",
)
@click.option(
    "--password-file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help=f"Read the keystore password from this file (else ${PASSWORD_ENV}, else a prompt).",
)
def generate_command(scheme_label: str, out: Path | None, password_file: Path | None) -> None:
    """Generate a new random key."""
    if out is not None and os.path.lexists(out):
        raise click.ClickException(f"{out} already exists; refusing to overwrite a keystore")
    keypair = Keypair.generate(Scheme.from_label(scheme_label))
    if out is not None:
        try:
            save_keystore(out, keypair, _new_password(password_file))
        except KeystoreError as exc:
            raise click.ClickException(str(exc)) from exc
    _print_identity(keypair)
    if out is not None:
        click.echo(f"Keystore:    {out}")
    else:
        click.echo(
            "WARNING: the secret seed below controls this account. Anyone who sees it can spend "
            "its funds; store it offline, or use --out to keep it in an encrypted keystore.",
            err=True,
        )
        click.echo(f"Secret seed: 0x{keypair.seed.hex()}")


@key_group.command("inspect")
@click.argument("spec")
@click.option(
    "--scheme",
    "scheme_label",
    type=_SCHEME_CHOICE,
    default=None,
    help="Scheme of a dev URI or hex seed [default: ed25519]; a keystore file records its own.",
)
@click.option(
    "--password-file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help=f"Password of a keystore file (else ${PASSWORD_ENV}, else a prompt).",
)
def inspect_command(spec: str, scheme_label: str | None, password_file: Path | None) -> None:
    """Show the public key, account id and address of SPEC: //Name, 0x<seed>, a keystore file, or
    an address (its account id and network prefix; no secret is involved)."""
    if not (spec.strip().startswith(("//", "0x", "0X")) or Path(spec).expanduser().exists()):
        _inspect_address(spec)
        return
    scheme = Scheme.from_label(scheme_label) if scheme_label else Scheme.ED25519
    try:
        password = read_password_file(password_file) if password_file is not None else None
        keypair = load_signer(spec, password, scheme=scheme)
    except (KeystoreError, ValueError) as exc:
        raise click.ClickException(str(exc)) from exc
    if scheme_label is not None and keypair.scheme is not scheme:
        raise click.ClickException(
            f"{spec} holds a key of scheme {keypair.scheme.label}, not {scheme.label} as --scheme says"
        )
    _print_identity(keypair)


def _inspect_address(text: str) -> None:
    """An address decoded: the account id, and the public key where the account id is one (an
    ed25519 account's id is its public key; a secp256k1 account's is the key's blake2b hash)."""
    try:
        account_id = decode_address(text)
    except AddressError as exc:
        raise click.ClickException(
            f"{text.strip()!r} is not a dev key URI (//Alice), a 0x seed, a keystore file or a valid address: {exc}"
        ) from exc
    click.echo(f"Address:     {encode_address(account_id)}")
    click.echo(f"Account id:  0x{account_id.hex()}")
    click.echo(f"Network:     prefix {NETWORK_PREFIX} (imagechain base58check, not SS58)")
    click.echo(f"Public key:  0x{account_id.hex()} if ed25519; a secp256k1 account shows only its key's hash")
