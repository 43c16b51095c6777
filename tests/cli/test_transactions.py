"""Issue 11's transfers and licences, through the command line against a real dev node: a command
exits non-zero whenever nothing happened on chain, says why in one line, and no fee is taken for a
failure the wallet could see coming (the account's nonce and free balance are unchanged)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from node.keys import dev_keypair, encode_address
from node.runtime import system
from node.runtime.vesting import MONTH_MS
from node.units import parse_img
from tests.cli.helpers import as_json, failure, lines, run
from tests.imaging.conftest import natural_image
from tests.rpc.helpers import Server, author

ALICE, BOB, CHARLIE, DAVE, EVE = (dev_keypair(f"//{n}") for n in ("Alice", "Bob", "Charlie", "Dave", "Eve"))


def account(server: Server, who: bytes) -> system.Account:
    return system.read_account(server.node.chain.best_state(), who)


async def test_refused_transfers_cost_nothing(server: Server, auto_author: None) -> None:
    url = server.url
    author(server.node)  # a block of today: Eve's schedule has unlocked by its timestamp
    before = {k.account_id: account(server, k.account_id) for k in (ALICE, DAVE, EVE)}

    # More than the balance.
    too_much = failure(await run("tx", "transfer", "--from", "//Alice", "--to", "//Bob", "--amount", "9999999999", "--url", url))
    assert "not sent: balances.InsufficientBalance" in too_much and "can transfer 3149999000 IMG" in too_much  # 1,000 IMG reserved: the authority bond
    # 0.000001 IMG to an account that does not exist yet.
    dust = failure(await run("tx", "transfer", "--from", "//Alice", "--to", "//Newcomer", "--amount", "0.000001", "--url", url))
    assert "balances.ExistentialDeposit" in dust and "at least 0.01 IMG" in dust
    # Dave's funds all vest: frozen, and the message says until when.
    frozen = failure(await run("tx", "transfer", "--from", "//Dave", "--to", "//Bob", "--amount", "5", "--url", url))
    assert "can transfer 0 IMG of its free 2100000000 IMG" in frozen and "frozen by vesting" in frozen
    assert "2027-12-22" in frozen and "--force" in frozen
    # Eve's schedule has unlocked by time, but the lock stays until `vesting.vest`: the message says so.
    locked = failure(await run("tx", "transfer", "--from", "//Eve", "--to", "//Bob", "--amount", "5", "--url", url))
    assert "imagechain tx vest unfreezes it" in locked
    # A typo'd dev key derives an empty account of its own.
    typo = failure(await run("tx", "transfer", "--from", "//Bobb", "--to", "//Alice", "--amount", "1", "--url", url))
    assert "--from //Bobb: not one of the dev keys" in typo and "a typo?" in typo
    # To oneself: nothing would move but the fee.
    itself = failure(await run("tx", "transfer", "--from", "//Alice", "--to", "//Alice", "--amount", "1", "--url", url))
    assert "same account" in itself

    assert server.node.chain.best_header().number == 1  # nothing was ever sent
    for who, was in before.items():
        assert account(server, who) == was


async def test_forced_failure_names_the_fee_it_paid(server: Server, auto_author: None) -> None:
    before = account(server, DAVE.account_id)
    result = await run("tx", "transfer", "--from", "//Dave", "--to", "//Bob", "--amount", "5", "--force", "--url", server.url)
    message = failure(result)
    assert "failed in block #1 0x" in message and "balances.InsufficientBalance" in message
    fee = parse_img(message.rsplit("fee paid: ", 1)[1].removesuffix(" IMG"))
    after = account(server, DAVE.account_id)
    assert (after.nonce, before.free - after.free) == (before.nonce + 1, fee)  # exactly the fee it named


async def test_transfer_and_balance_as_json(server: Server, auto_author: None) -> None:
    sent = as_json(await run("tx", "transfer", "--from", "//Alice", "--to", "//Charlie", "--amount", "2.5", "--json", "--url", server.url))
    assert sent["amount"] == "2.5" and sent["block"]["number"] == 1 and sent["to"] == encode_address(CHARLIE.account_id)
    assert parse_img(sent["fee"]) > 0
    dave = as_json(await run("account", "balance", "//Dave", "--json", "--url", server.url))
    assert (dave["free"], dave["transferable"], dave["frozen"]) == ("2100000000", "0", "2100000000")
    (tranche,) = dave["vesting"]
    assert tranche == {"at": 1767225600000 + 24 * MONTH_MS, "amount": "2100000000", "unlocked": False}  # genesis + 24 months
    text = await run("account", "balance", "//Dave", "--url", server.url)
    shown = lines(text.output)
    assert shown["transferable"] == "0 IMG" and shown["frozen"].startswith("2100000000 IMG (vesting: next unlock 2027-12-22")
    head = as_json(await run("chain", "head", "--json", "--url", server.url))
    assert head["best"]["number"] == 1 and head["finalized"]["hash"].startswith("0x")
    emission = as_json(await run("chain", "emission", "--json", "--url", server.url))
    assert emission["generated"] == "0" and emission["reward"] == "1"


def photo_file(tmp_path: Path, seed: int, name: str, size: tuple[int, int] = (512, 384)) -> Path:
    path = tmp_path / name
    Image.fromarray(natural_image(seed, 384, 512)).resize(size, Image.LANCZOS).save(path, quality=92)
    return path


async def register(server: Server, path: Path, who: str, *extra: str) -> dict[str, str]:
    result = await run("image", "register", str(path), "--title", path.stem, "--from", who, "--url", server.url, *extra)
    assert result.exit_code == 0, result.output
    return lines(result.stdout)


async def test_licences_refused_before_any_fee(server: Server, auto_author: None, tmp_path: Path) -> None:
    url = server.url
    await register(server, photo_file(tmp_path, 51, "pier.jpg"), "//Bob")
    offered = lines((await run("licence", "offer", "1", "--price", "10", "--from", "//Bob", "--url", url)).stdout)
    assert offered["offer"] == "1"
    bob, charlie, eve = (account(server, k.account_id) for k in (BOB, CHARLIE, EVE))

    own = failure(await run("licence", "buy", "1", "--from", "//Bob", "--url", url))
    assert "not sent: licensing.CannotBuyOwn: Offer 1 is your own" in own and "fee of 0.00" in own
    unknown = failure(await run("licence", "buy", "7", "--from", "//Charlie", "--url", url))
    assert "licensing.UnknownOffer: There is no open offer 7" in unknown
    frozen = failure(await run("licence", "buy", "1", "--from", "//Eve", "--url", url))
    assert "balances.InsufficientBalance" in frozen and "can transfer 0 IMG" in frozen
    assert (account(server, BOB.account_id), account(server, CHARLIE.account_id), account(server, EVE.account_id)) == (bob, charlie, eve)

    bought = await run("license", "buy", "1", "--from", "//Charlie", "--url", url)  # the other spelling works too
    assert bought.exit_code == 0 and lines(bought.stdout)["licence"] == "1", bought.output
    paid = account(server, CHARLIE.account_id)
    again = failure(await run("licence", "buy", "1", "--from", "//Charlie", "--url", url))
    assert "you already hold licence #1 from offer #1 (RF, perpetual)" in again and "--force" in again
    assert account(server, CHARLIE.account_id) == paid
    forced = await run("licence", "buy", "1", "--from", "//Charlie", "--force", "--json", "--url", url)
    assert as_json(forced)["licence"] == 2

    held = as_json(await run("licence", "list", "--holder", "//Charlie", "--json", "--url", url))
    assert [lic["id"] for lic in held["licences"]] == [1, 2]
    withdrawn = await run("licence", "withdraw", "1", "--from", "//Bob", "--url", url)
    assert withdrawn.exit_code == 0, withdrawn.output
    gone = failure(await run("licence", "withdraw", "1", "--from", "//Bob", "--url", url))
    assert "UnknownOffer" in gone and "not sent" in gone


async def test_registration_commands(server: Server, auto_author: None, tmp_path: Path) -> None:
    url = server.url
    first = await register(server, photo_file(tmp_path, 61, "dune.jpg"), "//Bob")
    assert first["registration"] == "1" and first["block"].startswith("#")
    bigger = await register(server, photo_file(tmp_path, 61, "dune-big.jpg", (640, 480)), "//Bob")
    assert bigger["result"] == "version 1 of registration 1"

    shown = as_json(await run("image", "show", "1", "--json", "--url", url))
    assert shown["owner"] == encode_address(BOB.account_id) and shown["versions"] == 2
    history = await run("image", "history", "1", "--url", url)
    versions = [line for line in history.stdout.splitlines() if line.startswith("version: ")]
    assert len(versions) == 2 and versions[1].startswith("version: 1: 640x480 jpeg")
    mine = as_json(await run("image", "list", "//Bob", "--json", "--url", url))
    assert [r["id"] for r in mine["registrations"]] == [1]

    tagged = await run("image", "tag", "1", "sunset", "--from", "//Charlie", "--url", url)
    assert tagged.exit_code == 0, tagged.output
    twice = failure(await run("image", "tag", "1", "sunset", "--from", "//Charlie", "--url", url))
    assert "copyright.TagExists: Registration 1 has this tag already" in twice
    not_owner = failure(await run("image", "untag", "1", "sunset", "--from", "//Charlie", "--url", url))
    assert "copyright.NotOwner" in not_owner
    untagged = await run("image", "untag", "1", "sunset", "--from", "//Bob", "--url", url)
    assert untagged.exit_code == 0, untagged.output

    moved = await run("image", "transfer", "1", "--to", "//Charlie", "--from", "//Bob", "--url", url)
    assert moved.exit_code == 0, moved.output
    assert as_json(await run("image", "show", "1", "--json", "--url", url))["owner"] == encode_address(CHARLIE.account_id)
    nobody = failure(await run("image", "show", "9", "--url", url))
    assert "there is no registration 9" in nobody


async def test_registrations_the_chain_would_refuse_are_not_sent(server: Server, auto_author: None, tmp_path: Path) -> None:
    url = server.url
    original = photo_file(tmp_path, 71, "cliff.jpg", (640, 480))
    await register(server, original, "//Bob")
    charlie = account(server, CHARLIE.account_id)

    smaller = photo_file(tmp_path, 71, "cliff-small.jpg", (512, 384))
    near = failure(await run("image", "register", str(smaller), "--title", "mine", "--from", "//Charlie", "--url", url))
    assert "near-duplicate of registration #1" in near and "not sent, nothing paid" in near and "--force" in near
    assert not (tmp_path / "cliff-small.imagechain.jpg").exists()  # refused before watermarking

    grey = tmp_path / "grey.png"
    Image.fromarray(np.full((600, 800, 3), 128, dtype=np.uint8)).save(grey)
    flat = failure(await run("image", "register", str(grey), "--title", "grey", "--from", "//Charlie", "--url", url))
    assert "flat at the pHash's scale" in flat
    assert account(server, CHARLIE.account_id) == charlie

    # Forced, the near-duplicate is sent and fails on chain, naming the fee it paid.
    forced = failure(await run("image", "register", str(smaller), "--title", "mine", "--force", "--from", "//Charlie", "--url", url))
    assert "copyright.NearDuplicate" in forced and "failed in block #2" in forced and "fee paid" in forced
    assert account(server, CHARLIE.account_id).nonce == charlie.nonce + 1
