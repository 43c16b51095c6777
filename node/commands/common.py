"""What every command that talks to a node shares: its options, its client, its output, and how a
transaction is sent and how its failure is told.

Output: `key: value` lines a person reads and a script parses, or with `--json` one JSON object
(amounts as exact IMG strings, blocks as {number, hash}). A block is always "#N 0x<hash>".

Failures: one line on stderr ("Error: ..."), exit status 1 (2 for a usage error), whenever
nothing happened on chain or the call failed there. Before a transaction is signed the command
checks what it can with the node's state (a typo'd dev key, an empty sender); before it is sent,
the node's dry run (`node.client.transactions.check_signed`): a call that would fail is not sent
unless `--force`, and every message names the fee in IMG.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from node.client import DEFAULT_URL, RpcClient, RpcClientError, WouldFail, block_ref
from node.client.results import AccountInfo
from node.client.transactions import CallOutcome, submit_call
from node.keys import DEV_NAMES, AddressError, Keypair, Scheme, decode_address, dev_keypair
from node.keystore import (
    KeystoreError,
    check_dev_key,
    is_dev_uri,
    load_signer,
    read_password_file,
    well_known_dev_key,
)
from node.types import MAX_MORTAL_PERIOD, Call
from node.units import format_img, parse_img

__all__ = [
    "Report",
    "SCHEME_CHOICE",
    "URL_ENV",
    "account_id",
    "amount",
    "client",
    "json_option",
    "send",
    "signer",
    "tx_options",
    "url_option",
    "when",
]

URL_ENV = "IMAGECHAIN_RPC_URL"
SCHEME_CHOICE = click.Choice([scheme.label for scheme in Scheme], case_sensitive=False)
_DEV_URIS = frozenset(f"//{name}" for name in DEV_NAMES)


def url_option(function: Any) -> Any:
    return click.option(
        "--url", default=DEFAULT_URL, envvar=URL_ENV, show_default=True,
        help=f"The node's JSON-RPC URL (or set {URL_ENV}).",
    )(function)  # fmt: skip


def json_option(function: Any) -> Any:
    return click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of lines.")(function)


def tx_options(function: Any) -> Any:
    """--from, --scheme, --password-file, --tip, --mortality, --no-wait, --force, --json, --url."""
    function = url_option(json_option(function))
    for option in reversed(
        [
            click.option("--from", "sender", required=True, help="Signer: keystore file, dev URI (//Alice) or 0x seed."),
            click.option("--scheme", type=SCHEME_CHOICE, default="ed25519", show_default=True,
                         help="Scheme of a URI or seed signer."),
            click.option("--password-file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
                         help="Keystore password file (else IMAGECHAIN_PASSWORD, else a prompt)."),
            click.option("--tip", default="0", show_default=True, help="Tip in IMG, paid to the block author for priority."),
            click.option("--mortality", default=64, show_default=True, type=click.IntRange(2, MAX_MORTAL_PERIOD),
                         help=f"Valid for this many blocks from the best one (at most {MAX_MORTAL_PERIOD}: none is immortal)."),
            click.option("--no-wait", is_flag=True, help="Return once the node accepted it, without waiting for a block."),
            click.option("--force", is_flag=True,
                         help="Send even when the node's dry run says the call would fail (its fee is paid all the same)."),
        ]
    ):  # fmt: skip
        function = option(function)
    return function


@contextmanager
def client(url: str) -> Iterator[RpcClient]:
    """An RPC client whose failures end the command with a one-line message, not a traceback."""
    try:
        with RpcClient(url) as rpc:
            yield rpc
    except WouldFail as exc:
        raise click.ClickException(f"{_one_line(str(exc))} (--force sends it anyway)") from exc
    except RpcClientError as exc:
        raise click.ClickException(_one_line(str(exc))) from exc


def _one_line(text: str) -> str:
    return " ".join(text.split())


def amount(text: str, what: str) -> int:
    try:
        return parse_img(text)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint=what) from exc


def account_id(text: str, what: str) -> bytes:
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


def when(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def signer(rpc: RpcClient, spec: str, scheme: str, password_file: Path | None) -> Keypair:
    """The `--from` keypair; a public dev key only on a development or local chain (anyone can sign
    as one elsewhere). A dev URI that is none of //Alice ... //Ferdie and whose account holds
    nothing is refused as the typo it most likely is (//Bobb derives a key of its own)."""
    try:
        password = read_password_file(password_file) if password_file is not None else None
        keypair = load_signer(spec, password, scheme=Scheme.from_label(scheme))
        if is_dev_uri(spec) or well_known_dev_key(keypair) is not None:
            check_dev_key(spec, keypair, rpc.chain_type(), "--from")
    except KeystoreError as exc:
        raise click.ClickException(_one_line(str(exc))) from exc
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--from") from exc
    if is_dev_uri(spec) and spec.strip() not in _DEV_URIS and not rpc.account_info(keypair.account_id).exists:
        raise click.ClickException(
            f"--from {spec.strip()}: not one of the dev keys ({', '.join(sorted(_DEV_URIS))}) and its account "
            f"{keypair.address} holds nothing: a typo? Nothing was sent"
        )
    return keypair


def balance_summary(info: AccountInfo) -> str:
    """"transferable X IMG of free Y IMG (Z IMG frozen by vesting until DATE)", for refusals."""
    text = f"{info.address} can transfer {format_img(info.transferable)} IMG of its free {format_img(info.free)} IMG"
    if info.frozen:
        why = ""
        if info.vesting is not None:
            nxt = info.vesting.next_unlock_ms
            why = " by vesting" + (f", next unlock {when(nxt)}" if nxt is not None else "")
            why += f", all unlocked {when(info.vesting.fully_unlocked_ms)}"
        text += f" ({format_img(info.frozen)} IMG frozen{why})"
        if info.vesting is not None and info.vesting.vestable:
            text += f"; {format_img(info.vesting.vestable)} IMG of it has unlocked: imagechain tx vest unfreezes it"
    return text


class Report:
    """A command's output: `key: value` lines, or with --json one object printed at the end."""

    def __init__(self, as_json: bool) -> None:
        self.as_json = as_json
        self.data: dict[str, Any] = {}

    def put(self, key: str, text: Any, value: Any = None) -> None:
        """One field: `text` for a person, `value` (default: `text`) for JSON."""
        if self.as_json:
            self.data[key] = text if value is None else value
        else:
            click.echo(f"{key}: {text}")

    def add(self, key: str, text: str, value: Any, plural: str | None = None) -> None:
        """One item of a list: a `key: text` line, or appended to JSON's list `plural` (key + "s")."""
        if self.as_json:
            self.data.setdefault(plural or key + "s", []).append(value)
        else:
            click.echo(f"{key}: {text}")

    def note(self, text: str) -> None:
        """A remark for a person (stderr with --json, so stdout stays one JSON object)."""
        click.echo(text, err=self.as_json)

    def block(self, key: str, number: int | None, block_hash: bytes | None) -> None:
        value = None if block_hash is None else {"number": number, "hash": "0x" + block_hash.hex()}
        self.put(key, block_ref(number, block_hash), value)

    def amount(self, key: str, value: int, suffix: str = "") -> None:
        self.put(key, f"{format_img(value)} IMG{suffix}", format_img(value))

    def done(self) -> None:
        if self.as_json:
            click.echo(json.dumps(self.data, indent=2, sort_keys=False))


def send(
    rpc: RpcClient,
    keypair: Keypair,
    call: Call,
    report: Report,
    *,
    tip: int,
    mortality: int,
    no_wait: bool,
    force: bool,
) -> CallOutcome:
    """Sign, dry-run (unless --force), submit and wait; report the extrinsic, block and fee.

    Failures raise (`client` turns them into one line): `WouldFail` not sent, `CallFailed`
    included with its fee paid, `Unsendable` or an RPC error refused by the node.
    """
    try:
        outcome = submit_call(
            rpc, keypair, call, tip=tip, mortal_period=mortality, wait=not no_wait, force=force
        )
    except WouldFail as exc:
        if exc.error in ("balances.InsufficientBalance", "balances.KeepAlive"):
            summary = balance_summary(rpc.account_info(keypair.account_id))
            raise click.ClickException(
                _one_line(f"{exc}; {summary} (--force sends it anyway)")
            ) from exc
        raise
    report.put("extrinsic", "0x" + outcome.ext_hash.hex())
    if outcome.fee is not None:
        report.amount("fee", outcome.fee)
    if outcome.block_hash is None:
        report.put("block", "pending (submitted; not waiting for a block: --no-wait)", None)
    else:
        report.block("block", outcome.block_number, outcome.block_hash)
    return outcome


def kernels_cached() -> bool:
    """Whether numba has compiled the imaging kernels on this machine already (its cache index of
    the validators' kernel is there: they are compiled together on first use)."""
    try:
        from node.imaging import verify

        cache = verify._unit_sums_kernel._cache  # type: ignore[attr-defined]
        folder = Path(cache._cache_path)
        return any(folder.glob("verify._unit_sums_kernel-*.nbi"))
    except (ImportError, AttributeError, OSError):
        return True  # cannot tell: say nothing rather than something wrong


@contextmanager
def first_run_notice(what: str = "the imaging kernels") -> Iterator[None]:
    """On the first run on a machine numba compiles the imaging kernels (~10 s, cached afterwards):
    say so on stderr if the work inside takes more than a second, with the seconds as they pass on
    a terminal, instead of silence."""
    if kernels_cached():
        yield
        return
    done = threading.Event()
    started = time.monotonic()

    def tell() -> None:
        if done.wait(1.0):
            return
        tty = sys.stderr.isatty()
        click.echo(f"compiling {what} for this machine (first run only; cached afterwards)...", err=True, nl=not tty)
        while not done.wait(1.0):
            if tty:
                click.echo(f"\rcompiling {what} for this machine (first run only)... {time.monotonic() - started:.0f} s",
                           err=True, nl=False)  # fmt: skip
        if tty:
            click.echo("", err=True)

    watcher = threading.Thread(target=tell, daemon=True)
    watcher.start()
    try:
        yield
    finally:
        done.set()
        watcher.join()


def call_or_usage(function: Callable[[], Any]) -> Any:
    """Run `function`, turning a ValueError into a one-line usage error."""
    try:
        return function()
    except ValueError as exc:
        raise click.UsageError(str(exc)) from exc
