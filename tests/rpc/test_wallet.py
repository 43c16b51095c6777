"""The wallet commands (`tx transfer`, `account balance`, `chain head`) against a running node."""

from __future__ import annotations

from pathlib import Path

import nacl.pwhash.argon2id as argon2id
import trio
from click.testing import CliRunner, Result

from node.commands.wallet import account_group, chain_group, tx_group
from node.keys import encode_address
from node.keystore import save_keystore
from node.units import format_img
from tests.rpc.helpers import ALICE, BOB, Server, author


async def invoke(group: object, *args: str, env: dict[str, str] | None = None) -> Result:
    """Run a command in a worker thread (it makes blocking RPC calls to the server in this trio run)."""
    runner = CliRunner()
    return await trio.to_thread.run_sync(lambda: runner.invoke(group, list(args), env=env))  # type: ignore[arg-type]


async def test_transfer_prints_hash_and_block(server: Server, auto_author: None) -> None:
    bob = encode_address(BOB.account_id)
    result = await invoke(
        tx_group, "transfer", "--from", "//Alice", "--to", bob, "--amount", "12.5", "--url", server.url
    )
    assert result.exit_code == 0, result.output
    assert f"to: {bob}" in result.output
    assert "amount: 12.5 IMG" in result.output
    assert "extrinsic: 0x" in result.output and "fee: 0.00" in result.output
    assert "block: #1 0x" + server.node.chain.best_header().hash.hex() in result.output

    balance = await invoke(account_group, "balance", bob, "--url", server.url)
    assert balance.exit_code == 0, balance.output
    assert "free: 4200000012.5 IMG" in balance.output
    assert "nonce: 0" in balance.output

    alice = await invoke(account_group, "balance", "//Alice", env={"IMAGECHAIN_RPC_URL": server.url})
    assert "nonce: 1" in alice.output


async def test_transfer_no_wait_with_keystore(server: Server, tmp_path: Path) -> None:
    keystore = tmp_path / "alice.json"
    save_keystore(keystore, ALICE, b"pw", opslimit=argon2id.OPSLIMIT_MIN, memlimit=argon2id.MEMLIMIT_MIN)
    result = await invoke(
        tx_group,
        "transfer",
        "--from",
        str(keystore),
        "--to",
        "//Bob",
        "--amount",
        "1",
        "--tip",
        "0.001",
        "--no-wait",
        "--url",
        server.url,
        env={"IMAGECHAIN_PASSWORD": "pw"},
    )
    assert result.exit_code == 0, result.output
    assert "not waiting" in result.output
    assert f"tip: {format_img(10**15)} IMG" in result.output
    assert len(server.node.pool.pending()) == 1


async def test_chain_head(server: Server) -> None:
    block = author(server.node)
    result = await invoke(chain_group, "head", "--url", server.url)
    assert result.exit_code == 0, result.output
    assert f"best: #1 0x{block.hash.hex()}" in result.output
    assert f"finalized: #1 0x{block.hash.hex()}" in result.output


async def test_errors_are_one_line_messages(server: Server) -> None:
    unreachable = await invoke(chain_group, "head", "--url", "http://127.0.0.1:9")
    assert unreachable.exit_code == 1
    assert "http://127.0.0.1:9" in unreachable.output and "Traceback" not in unreachable.output

    bad_amount = await invoke(tx_group, "transfer", "--from", "//Alice", "--to", "//Bob", "--amount", "1.2.3")
    assert bad_amount.exit_code == 2 and "--amount" in bad_amount.output

    bad_address = await invoke(account_group, "balance", "5notanaddress", "--url", server.url)
    assert bad_address.exit_code == 2 and "ADDRESS" in bad_address.output

    broke = await invoke(
        tx_group, "transfer", "--from", "//Nobody", "--to", "//Bob", "--amount", "1", "--url", server.url
    )
    assert broke.exit_code == 1 and len(broke.output.strip().splitlines()) == 1
    assert "//Nobody: not one of the dev keys" in broke.output and "holds nothing" in broke.output
