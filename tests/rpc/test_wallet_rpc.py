"""The methods the wallet asks before it sends: balances_account, payment_queryInfo, system_dryRun;
and copyright_verifyImage on a query whose pHash has no structure (`node.rpc.matches`)."""

from __future__ import annotations

import httpx
import numpy as np

from node.codec import encode
from node.keys import dev_keypair, encode_address
from node.rpc.encoding import to_hex
from node.rpc.matches import nearest, rank_matches
from node.runtime import copyright, system
from node.runtime.vesting import MONTH_MS
from tests.rpc.helpers import ALICE, BOB, Server, author, error, result, transfer_extrinsic
from tests.runtime.copyright_util import Chain, make_upload, register_call

DAVE = dev_keypair("//Dave")
IMG = 10**18


async def test_balances_account_shows_what_can_move(http: httpx.AsyncClient, server: Server) -> None:
    dave = await result(http, "balances_account", [encode_address(DAVE.account_id)])
    assert (dave["free"], dave["freeRaw"], dave["transferable"], dave["frozen"]) == (
        "2100000000", str(2_100_000_000 * IMG), "0", "2100000000"
    )
    unlock = 1767225600000 + 24 * MONTH_MS
    assert dave["vesting"] == {
        "locked": "2100000000", "lockedRaw": str(2_100_000_000 * IMG), "vestable": "0", "vestableRaw": "0",
        "nextUnlockAt": unlock, "fullyUnlockedAt": unlock,
        "schedule": [{"unlockAt": unlock, "amount": "2100000000", "amountRaw": str(2_100_000_000 * IMG), "unlocked": False}],
    }  # fmt: skip
    alice = await result(http, "balances_account", [to_hex(ALICE.account_id)])
    assert (alice["reserved"], alice["transferable"], alice["vesting"]) == ("1000", "3149999000", None)
    assert alice["existentialDeposit"] == "0.01" and alice["nonce"] == 0
    nobody = await result(http, "balances_account", [encode_address(b"\x07" * 32)])
    assert (nobody["free"], nobody["nonce"]) == ("0", 0)


async def test_fee_and_dry_run(http: httpx.AsyncClient, server: Server) -> None:
    node = server.node
    author(node)
    good = transfer_extrinsic(node, ALICE, BOB.account_id, 3 * IMG, mortality=None)
    params = system.read_params(node.chain.best_state())
    expected = system.fee_for(params, len(good), 100_000)
    assert await result(http, "payment_queryInfo", [to_hex(good)]) == {
        "weight": 100_000, "class": "normal", "partialFee": str(expected)
    }  # fmt: skip

    ok = await result(http, "system_dryRun", [to_hex(good)])
    assert (ok["valid"], ok["applied"], ok["success"], ok["error"], ok["feeRaw"]) == (True, True, True, None, str(expected))
    assert [(e["module"], e["name"]) for e in ok["events"]] == [("balances", "Transfer"), ("system", "ExtrinsicSuccess")]
    frozen = transfer_extrinsic(node, DAVE, BOB.account_id, 5 * IMG)
    failing = await result(http, "system_dryRun", [to_hex(frozen)])
    assert (failing["valid"], failing["success"]) == (True, False)
    assert failing["error"]["name"] == "balances.InsufficientBalance" and "usable" in failing["error"]["docs"]
    broke = transfer_extrinsic(node, dev_keypair("//Nobody"), BOB.account_id, IMG)
    refused = await result(http, "system_dryRun", [to_hex(broke)])
    assert refused["valid"] is False and refused["invalid"]["reason"] == "InsufficientFunds"
    # Nothing of it was kept: no pool entry, no block, Dave's nonce untouched.
    assert node.pool.pending() == [] and node.chain.best_header().number == 1
    assert system.read_account(node.chain.best_state(), DAVE.account_id).nonce == 0
    garbage = await result(http, "system_dryRun", ["0x00"])
    assert garbage["valid"] is False and garbage["invalid"]["reason"] == "BadFormat"
    assert (await error(http, "payment_queryInfo", ["0x00"]))["code"] == -32602


async def test_licences_of_in_both_spellings(http: httpx.AsyncClient) -> None:
    who = encode_address(BOB.account_id)
    assert await result(http, "licensing_licencesOf", [who]) == await result(http, "licensing_licensesOf", [who]) == []


def test_a_flat_query_matches_no_flat_registration(dev_spec) -> None:  # type: ignore[no-untyped-def]
    """A grey image registered before flat images were refused (here: on a chain that allowed them)
    must not make every other flat image its "similar" copy; a photo's pHash still matches."""
    chain = Chain.new(dev_spec)
    lenient = copyright.read_params(chain.get).__class__(8, 10**16, 0)
    chain.state[copyright.KEY_PARAMS] = encode(lenient.to_wire())
    grey = make_upload(BOB.account_id, 0, 800, 600, flat=True)
    photo = make_upload(BOB.account_id, 5, 512, 384)
    assert chain.run(BOB, register_call(grey)).ok and chain.run(BOB, register_call(photo)).ok
    chain.state[copyright.KEY_PARAMS] = encode(copyright.CopyrightParams().to_wire())  # today's rule
    get = chain.get

    from node.imaging.phash import low_frequency_energy, phash_from_rendition
    from node.imaging.rendition import verification_rendition

    for rgb in (np.full((300, 400, 3), 255, np.uint8), np.zeros((1, 1, 3), np.uint8)):
        rendition = verification_rendition(rgb)
        energy, phash = low_frequency_energy(rendition), phash_from_rendition(rendition)
        assert energy == 0 and copyright.search_similar(get, phash, 8)  # the pHash alone would match
        assert rank_matches(get, [], phash, 20, energy) == [] and nearest(get, phash, energy) is None
    textured = [m for m in rank_matches(get, [], photo.phash, 20, 10**12) if m.kind == "similar"]
    assert [m.registration.id for m in textured] == [2]
