"""Wallet commands: `imagechain tx`, `imagechain account`, `imagechain chain`.

They talk to a running node over JSON-RPC (`--url`, or the IMAGECHAIN_RPC_URL environment
variable) through `node.client.RpcClient`, so they work the same against a local `--dev` node and
a remote one. Amounts are typed and shown in IMG with exact decimals (`node.units`), never floats.
How a transaction is sent, checked and reported: `node.commands.common`.
"""

from __future__ import annotations

from pathlib import Path

import click

from node.client import RpcClient
from node.client.results import AccountInfo
from node.codec import u128_to_bytes
from node.commands.common import (
    Report,
    account_id,
    amount,
    balance_summary,
    client,
    json_option,
    send,
    signer,
    tx_options,
    url_option,
    when,
)
from node.keys import encode_address
from node.types import Call
from node.units import format_img

__all__ = ["account_group", "chain_group", "tx_group"]


# ---------------------------------------------------------------------------------------------
# tx
# ---------------------------------------------------------------------------------------------


@click.group("tx")
def tx_group() -> None:
    """Sign and submit transactions."""


def check_transfer(rpc: RpcClient, sender: bytes, dest: bytes, value: int) -> None:
    """Refuse, before signing, a transfer the chain would fail (its fee lost): more than the
    transferable balance (frozen funds named with their vesting dates), or too little to open a
    new account. The node's dry run checks the rest."""
    if sender == dest:
        raise click.ClickException("not sent: the sender and the recipient are the same account (it would only pay the fee)")
    info = rpc.account_info(sender)
    if value > info.transferable:
        raise click.ClickException(
            f"not sent: balances.InsufficientBalance: {format_img(value)} IMG asked; {balance_summary(info)}"
            " (--force sends it anyway)"
        )
    recipient = rpc.account_info(dest)
    if not recipient.exists and value < recipient.existential_deposit:
        raise click.ClickException(
            f"not sent: balances.ExistentialDeposit: {encode_address(dest)} has no account yet, and a new account "
            f"must receive at least {format_img(recipient.existential_deposit)} IMG (asked: {format_img(value)} IMG)"
            " (--force sends it anyway)"
        )


@tx_group.command("transfer")
@click.option("--to", "dest", required=True, help="Recipient address (or a dev URI such as //Bob).")
@click.option("--amount", "value_text", required=True, help="Amount in IMG, e.g. 12.5.")
@click.option("--keep-alive", is_flag=True, help="Fail rather than leave the sender below the existential deposit.")
@tx_options
def transfer_command(
    dest: str, value_text: str, keep_alive: bool, sender: str, scheme: str, password_file: Path | None, tip: str,
    mortality: int, no_wait: bool, force: bool, as_json: bool, url: str,
) -> None:  # fmt: skip
    """Transfer IMG to another account.

    Refused before anything is signed when the chain would fail it (more than the transferable
    balance, too little for a new account); --force sends it anyway."""
    value = amount(value_text, "--amount")
    tip_value = amount(tip, "--tip")
    if value == 0:
        raise click.BadParameter("the amount must be more than zero", param_hint="--amount")
    dest_id = account_id(dest, "--to")
    report = Report(as_json)
    with client(url) as rpc:
        keypair = signer(rpc, sender, scheme, password_file)
        if not force:
            check_transfer(rpc, keypair.account_id, dest_id, value)
        report.put("from", keypair.address)
        report.put("to", encode_address(dest_id))
        report.amount("amount", value)
        if tip_value:
            report.amount("tip", tip_value)
        name = "transfer_keep_alive" if keep_alive else "transfer"
        call = Call("balances", name, (dest_id, u128_to_bytes(value)))
        send(rpc, keypair, call, report, tip=tip_value, mortality=mortality, no_wait=no_wait, force=force)
    report.done()


@tx_group.command("vest")
@tx_options
def vest_command(
    sender: str, scheme: str, password_file: Path | None, tip: str, mortality: int, no_wait: bool, force: bool,
    as_json: bool, url: str,
) -> None:  # fmt: skip
    """Unfreeze what the signer's vesting schedule has unlocked so far (`vesting.vest`)."""
    tip_value = amount(tip, "--tip")
    report = Report(as_json)
    with client(url) as rpc:
        keypair = signer(rpc, sender, scheme, password_file)
        send(rpc, keypair, Call("vesting", "vest", ()), report, tip=tip_value, mortality=mortality,
             no_wait=no_wait, force=force)  # fmt: skip
        report.amount("frozen", rpc.account_info(keypair.account_id).frozen)
    report.done()


# ---------------------------------------------------------------------------------------------
# account
# ---------------------------------------------------------------------------------------------


@click.group("account")
def account_group() -> None:
    """Inspect accounts."""


def report_account(report: Report, info: AccountInfo) -> None:
    report.put("address", info.address)
    report.amount("free", info.free)
    report.amount("transferable", info.transferable)
    vesting = info.vesting
    why = ""
    if info.frozen and vesting is not None:
        why = " (vesting" + (f": next unlock {when(vesting.next_unlock_ms)}" if vesting.next_unlock_ms else "")
        why += f", all unlocked {when(vesting.fully_unlocked_ms)})"
    report.amount("frozen", info.frozen, why)
    report.amount("reserved", info.reserved, " (bonds)" if info.reserved else "")
    report.put("nonce", info.nonce)
    if vesting is None:
        return
    if vesting.vestable:
        report.amount("vestable", vesting.vestable, " (unlocked, still frozen: imagechain tx vest)")
    for unlock_ms, value, unlocked in vesting.schedule:
        state = "unlocked" if unlocked else "locked"
        report.add(
            "unlock", f"{when(unlock_ms)} {format_img(value)} IMG ({state})",
            {"at": unlock_ms, "amount": format_img(value), "unlocked": unlocked}, plural="vesting",
        )  # fmt: skip


@account_group.command("balance")
@click.argument("address")
@json_option
@url_option
def balance_command(address: str, as_json: bool, url: str) -> None:
    """Show an account's balances at the best block: what it can transfer, what is frozen and
    until when (vesting), what is reserved (bonds)."""
    who = account_id(address, "ADDRESS")
    report = Report(as_json)
    with client(url) as rpc:
        report_account(report, rpc.account_info(who))
    report.done()


# ---------------------------------------------------------------------------------------------
# chain
# ---------------------------------------------------------------------------------------------


@click.group("chain")
def chain_group() -> None:
    """Inspect the chain."""


@chain_group.command("head")
@json_option
@url_option
def head_command(as_json: bool, url: str) -> None:
    """Show the best and the finalized block."""
    report = Report(as_json)
    with client(url) as rpc:
        best = rpc.header()
        finalized = rpc.header(rpc.finalized_head())
        report.block("best", best.number, best.hash)
        report.block("finalized", finalized.number, finalized.hash)
    report.done()


@chain_group.command("emission")
@json_option
@url_option
def emission_command(as_json: bool, url: str) -> None:
    """Show the mining emission: IMG mined so far, the current reward, what remains below the cap."""
    report = Report(as_json)
    with client(url) as rpc:
        status = rpc.emission_status()
        if status is None:
            raise click.ClickException("this chain has no mining emission")
        report.amount("generated", status.generated)
        report.amount("reward", status.next_reward)
        report.put("rate", f"{status.rate_numerator / status.rate_denominator:.6g}",
                   f"{status.rate_numerator}/{status.rate_denominator}")  # fmt: skip
        report.amount("remaining", status.remaining)
    report.done()
