"""Each method against the real dev node, over HTTP: shapes as Substrate's, values from the chain."""

from __future__ import annotations

from pathlib import Path

import httpx
import trio

from node.codec import blake2b_256
from node.keys import dev_keypair, encode_address
from node.rpc import errors
from node.rpc.encoding import block_from_json, header_from_json, to_hex
from node.rpc.methods import (
    FAMILIES,
    TABLE,
    balances,
    copyright,
    emission,
    licensing,
    network,
    payment,
    storage,
    substrate,
)
from node.rpc.server import serve_rpc
from node.runtime.executive import timestamp_inherent
from node.runtime.system import KEY_NUMBER, Account, account_key
from node.service import dev_node
from node.state.trie import verify_proof
from node.types import Mortality
from tests.rpc.helpers import ALICE, BOB, CHARLIE, Server, author, error, result, transfer_extrinsic


async def test_system_methods(http: httpx.AsyncClient, server: Server) -> None:
    assert await result(http, "system_name") == server.node.name
    assert await result(http, "system_version") == server.node.version
    assert await result(http, "system_chain") == "imagechain development"
    assert await result(http, "system_chainType") == "Development"
    assert await result(http, "system_properties") == {
        "tokenSymbol": "IMG",
        "tokenDecimals": 18,
        "addressFormat": substrate.ADDRESS_FORMAT,
    }
    # Not SS58 (a Substrate wallet told so would reject every address): the format is described.
    assert substrate.ADDRESS_FORMAT["name"] == "imagechain-base58check" and substrate.ADDRESS_FORMAT["prefix"] == 42
    assert await result(http, "system_health") == {"peers": 0, "isSyncing": False, "shouldHavePeers": False}
    assert await result(http, "system_peers") == []
    author(server.node)
    assert await result(http, "system_syncState") == {
        "startingBlock": 0,
        "currentBlock": 1,
        "highestBlock": 1,
    }


async def test_rpc_methods_lists_the_table(http: httpx.AsyncClient) -> None:
    listed = await result(http, "rpc_methods")
    assert listed["version"] == 1
    required = {
        "system_health", "system_name", "system_version", "system_chain", "system_chainType",
        "system_properties", "system_peers", "system_syncState", "system_accountNextIndex",
        "chain_getHeader", "chain_getBlock", "chain_getBlockHash", "chain_getFinalizedHead",
        "chain_subscribeNewHeads", "chain_unsubscribeNewHeads", "chain_subscribeFinalizedHeads",
        "chain_unsubscribeFinalizedHeads", "state_getStorage", "state_getReadProof",
        "author_submitExtrinsic", "author_pendingExtrinsics", "author_submitAndWatchExtrinsic",
        "rpc_methods",
    }  # fmt: skip
    assert required <= set(listed["methods"])
    assert listed["methods"] == sorted(listed["methods"])


async def test_openrpc_document_describes_every_method(http: httpx.AsyncClient) -> None:
    document = await result(http, "rpc.discover")
    assert document["openrpc"].startswith("1.")
    names = [method["name"] for method in document["methods"]]
    assert names == (await result(http, "rpc_methods"))["methods"]
    storage = next(method for method in document["methods"] if method["name"] == "state_getStorage")
    assert [(p["name"], p["required"]) for p in storage["params"]] == [("key", True), ("at", False)]


async def test_headers_and_blocks(http: httpx.AsyncClient, server: Server) -> None:
    node = server.node
    genesis = await result(http, "chain_getHeader", [to_hex(node.genesis_hash)])
    assert genesis["number"] == "0x0" and genesis["digest"] == {"logs": []}
    assert header_from_json(genesis).hash == node.genesis_hash

    block = author(node)
    best = await result(http, "chain_getHeader")
    assert best["number"] == "0x1"
    assert best["parentHash"] == to_hex(node.genesis_hash)
    decoded = header_from_json(best)
    assert decoded == block.header and decoded.hash == block.hash
    assert len(best["digest"]["logs"]) == 2  # Aura pre-runtime slot and seal

    full = await result(http, "chain_getBlock", [to_hex(block.hash)])
    assert set(full) == {"block", "justifications"}
    assert full["justifications"] is None
    assert block_from_json(full) == block
    assert full["block"]["extrinsics"][0] == to_hex(block.extrinsics[0])
    assert await result(http, "chain_getBlock") == full

    assert await result(http, "chain_getBlockHash", [1]) == to_hex(block.hash)
    assert await result(http, "chain_getBlockHash", ["0x1"]) == to_hex(block.hash)
    assert await result(http, "chain_getBlockHash", [[0, "0x1", 2]]) == [
        to_hex(node.genesis_hash),
        to_hex(block.hash),
        None,
    ]
    assert await result(http, "chain_getFinalizedHead") == to_hex(block.hash)  # one authority: final at once


async def test_unknown_blocks_are_null(http: httpx.AsyncClient) -> None:
    unknown = to_hex(blake2b_256(b"nowhere"))
    assert await result(http, "chain_getHeader", [unknown]) is None
    assert await result(http, "chain_getBlock", [unknown]) is None
    assert await result(http, "chain_getBlockHash", [99]) is None


async def test_storage_and_read_proof(http: httpx.AsyncClient, server: Server) -> None:
    node = server.node
    genesis = node.genesis_hash
    author(node)
    raw = await result(http, "state_getStorage", [to_hex(account_key(BOB.account_id))])
    assert Account.decode(bytes.fromhex(raw[2:])).free == 4_200_000_000 * 10**18
    assert await result(http, "state_getStorage", [to_hex(KEY_NUMBER)]) == "0x00000001"
    assert await result(http, "state_getStorage", [to_hex(KEY_NUMBER), to_hex(genesis)]) == "0x00000000"
    assert await result(http, "state_getStorage", ["0x" + b"no such key".hex()]) is None

    unknown = blake2b_256(b"nowhere")
    err = await error(http, "state_getStorage", [to_hex(KEY_NUMBER), to_hex(unknown)])
    assert err["code"] == errors.STATE_CLIENT_ERROR and err["data"] == to_hex(unknown)

    keys = [KEY_NUMBER, account_key(ALICE.account_id), b"absent"]
    proof = await result(http, "state_getReadProof", [[to_hex(k) for k in keys], to_hex(genesis)])
    assert proof["at"] == to_hex(genesis)
    nodes = [bytes.fromhex(item[2:]) for item in proof["proof"]]
    root = node.chain.header(genesis).state_root
    assert verify_proof(root, nodes, KEY_NUMBER) == (0).to_bytes(4, "big")
    assert verify_proof(root, nodes, b"absent") is None
    assert (await result(http, "state_getReadProof", [[]]))["at"] == to_hex(node.chain.best_header().hash)
    err = await error(http, "state_getReadProof", [[to_hex(KEY_NUMBER)], to_hex(unknown)])
    assert err["code"] == errors.STATE_CLIENT_ERROR


async def test_submit_pending_and_next_index(http: httpx.AsyncClient, server: Server) -> None:
    node = server.node
    alice = encode_address(ALICE.account_id)
    assert await result(http, "system_accountNextIndex", [alice]) == 0
    first = transfer_extrinsic(node, nonce=0)
    second = transfer_extrinsic(node, nonce=1)
    assert await result(http, "author_submitExtrinsic", [to_hex(first)]) == to_hex(blake2b_256(first))
    assert await result(http, "author_submitExtrinsic", [to_hex(second)]) == to_hex(blake2b_256(second))
    assert await result(http, "author_pendingExtrinsics") == [to_hex(first), to_hex(second)]
    # pool-aware: past both pooled transactions; a raw account id works as well as an address
    assert await result(http, "system_accountNextIndex", [alice]) == 2
    assert await result(http, "system_accountNextIndex", [to_hex(ALICE.account_id)]) == 2

    block = author(node)
    assert block.extrinsics[1:] == (first, second)
    assert await result(http, "author_pendingExtrinsics") == []
    assert await result(http, "system_accountNextIndex", [alice]) == 2


async def submit_error(http: httpx.AsyncClient, encoded: bytes) -> dict[str, object]:
    return await error(http, "author_submitExtrinsic", [to_hex(encoded)])


async def test_pool_rejections_map_to_author_errors(http: httpx.AsyncClient, server: Server) -> None:
    node = server.node
    err = await submit_error(http, b"\x01\x02\x03")
    assert err["code"] == errors.AUTHOR_BAD_FORMAT and err["data"] == "BadFormat"
    assert str(err["message"]).startswith("Extrinsic has invalid format")

    good = transfer_extrinsic(node)
    await result(http, "author_submitExtrinsic", [to_hex(good)])
    err = await submit_error(http, good)
    assert err["code"] == errors.POOL_ALREADY_IMPORTED and err["data"] == "AlreadyImported"

    err = await submit_error(http, transfer_extrinsic(node, amount=7, nonce=0))  # same nonce, no higher tip
    assert err["code"] == errors.POOL_TOO_LOW_PRIORITY and err["data"] == "TooLowPriority"

    tampered = bytearray(transfer_extrinsic(node, CHARLIE))
    tampered[-1] ^= 1  # last byte of the amount: the signature no longer covers the call
    err = await submit_error(http, bytes(tampered))
    assert err == {"code": 1010, "message": "Invalid Transaction", "data": "BadSignature"}

    err = await submit_error(http, transfer_extrinsic(node, CHARLIE, genesis_hash=b"\x01" * 32))
    assert err["code"] == errors.POOL_INVALID_TX and err["data"] == "WrongGenesis"

    author(node)
    author(node)
    err = await submit_error(http, transfer_extrinsic(node, nonce=0, tip=5))
    assert err["code"] == errors.POOL_INVALID_TX and err["data"] == "StaleNonce"
    assert str(err["message"]).startswith("Invalid Transaction: nonce 0")

    err = await submit_error(http, transfer_extrinsic(node, CHARLIE, mortality=Mortality(0, 2, node.genesis_hash)))
    assert err["code"] == errors.POOL_INVALID_TX and err["data"] == "Expired"

    pauper = transfer_extrinsic(node, signer=dev_keypair("//Nobody"))
    err = await submit_error(http, pauper)
    assert err["code"] == errors.POOL_INVALID_TX and err["data"] == "InsufficientFunds"

    err = await submit_error(http, timestamp_inherent(1))
    assert err["code"] == errors.POOL_INVALID_TX and err["data"] == "BadOrigin"


async def test_state_of_pruned_blocks_is_an_error(tmp_path: Path) -> None:
    node = dev_node(tmp_path, rpc_port=None, pruning=2)
    try:
        async with trio.open_nursery() as nursery:
            port = await nursery.start(serve_rpc, node, "127.0.0.1", 0)
            for _ in range(5):
                author(node)
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
                genesis = to_hex(node.genesis_hash)
                err = await error(http, "state_getStorage", [to_hex(KEY_NUMBER), genesis])
                assert err == {
                    "code": 4003,
                    "message": f"State already discarded for {genesis}",
                    "data": genesis,
                }
                err = await error(http, "state_getReadProof", [[to_hex(KEY_NUMBER)], genesis])
                assert err["code"] == errors.STATE_CLIENT_ERROR
                assert await result(http, "state_getStorage", [to_hex(KEY_NUMBER)]) == "0x00000005"
                assert (await result(http, "chain_getHeader", [genesis]))["number"] == "0x0"  # headers stay
            nursery.cancel_scope.cancel()
    finally:
        node.close()


# The method table as it stood before `methods.py` was split by family (issue 9): the split must
# not add, drop or rename a method.
METHODS_BEFORE_THE_SPLIT = [
    "author_pendingExtrinsics", "author_submitAndWatchExtrinsic", "author_submitExtrinsic",
    "author_unwatchExtrinsic", "chain_getBlock", "chain_getBlockHash", "chain_getFinalizedHead",
    "chain_getHeader", "chain_subscribeFinalizedHeads", "chain_subscribeNewHeads",
    "chain_unsubscribeFinalizedHeads", "chain_unsubscribeNewHeads", "copyright_findBySha256",
    "copyright_getRegistration", "copyright_registrationsOf", "copyright_searchSimilar",
    "copyright_verifyImage", "emission_status", "licensing_licensesOf", "licensing_offers",
    "network_blockPeer", "network_unblockPeer", "rpc.discover", "rpc_methods", "state_getReadProof",
    "state_getStorage", "system_accountNextIndex", "system_chain", "system_chainType", "system_health",
    "system_localListenAddresses", "system_localPeerId", "system_name", "system_peers",
    "system_properties", "system_syncState", "system_version",
]  # fmt: skip


# Added since, on purpose: events and metadata read from the runtime's declarations (issue 9); what
# the wallet asks before it sends (fee, dry run, balances with vesting) and the one spelling of
# licence (issue 11); the image store's methods (issue 12).
METHODS_ADDED_SINCE = [
    "state_getEvents", "state_getMetadata", "payment_queryInfo", "system_dryRun", "balances_account",
    "licensing_licencesOf", "storage_blob", "storage_stats",
]  # fmt: skip


async def test_the_families_list_the_methods_served_before_the_split(http: httpx.AsyncClient) -> None:
    expected = sorted(METHODS_BEFORE_THE_SPLIT + METHODS_ADDED_SINCE)
    assert TABLE.names() == expected
    assert (await result(http, "rpc_methods"))["methods"] == expected
    document = await result(http, "rpc.discover")
    assert [method["name"] for method in document["methods"]] == expected


def test_each_family_holds_the_prefixes_it_is_named_for() -> None:
    prefixes = {
        substrate: {"system", "chain", "state", "author"},
        payment: {"payment", "system"},
        balances: {"balances"},
        network: {"network"},
        copyright: {"copyright"},
        licensing: {"licensing"},
        emission: {"emission"},
        storage: {"storage"},
    }
    assert set(FAMILIES) == set(prefixes)
    for family in FAMILIES:
        assert {name.split("_")[0] for name in family.METHODS.names()} == prefixes[family], family.__name__


async def test_events_are_decoded_by_the_runtime_declarations(http: httpx.AsyncClient, server: Server) -> None:
    node = server.node
    node.submit_extrinsic(transfer_extrinsic(node, ALICE, BOB.account_id, 3 * 10**18))
    node.submit_extrinsic(transfer_extrinsic(node, CHARLIE, BOB.account_id, 10**37))  # more than Charlie has
    block = author(node)
    events = await result(http, "state_getEvents", [to_hex(block.hash)])
    assert events == await result(http, "state_getEvents")  # the best block by default
    transfer = next(e for e in events if (e["module"], e["name"]) == ("balances", "Transfer"))
    assert transfer["phase"] == 1
    assert transfer["fields"] == {
        "source": encode_address(ALICE.account_id), "dest": encode_address(BOB.account_id),
        "amount": "3", "amountRaw": str(3 * 10**18),
    }  # fmt: skip
    failed = next(e for e in events if e["name"] == "ExtrinsicFailed")
    assert failed["phase"] == 2
    assert failed["fields"]["error"] == "balances.InsufficientBalance"
    assert failed["fields"]["detail"] == {} and "usable" in failed["fields"]["docs"]
    paid = events[-1]
    assert (paid["phase"], paid["module"], paid["name"]) == (None, "balances", "FeesPaid")
    assert paid["fields"]["author"] == encode_address(ALICE.account_id)
    err = await error(http, "state_getEvents", [to_hex(blake2b_256(b"nowhere"))])
    assert err["code"] == 4003


async def test_metadata_lists_every_declared_face(http: httpx.AsyncClient) -> None:
    from node.runtime.runtime import MODULES, SPEC_VERSION

    metadata = await result(http, "state_getMetadata")
    assert metadata["specVersion"] == SPEC_VERSION
    assert [m["name"] for m in metadata["modules"]] == [m.name for m in MODULES]
    copyright_module = next(m for m in metadata["modules"] if m["name"] == "copyright")
    near = next(e for e in copyright_module["errors"] if e["name"] == "NearDuplicate")
    assert near["fields"] == [{"name": "registration_id", "type": "int"}, {"name": "distance", "type": "int"}]
    transfer = next(e for e in metadata["modules"][3]["events"] if e["name"] == "Transfer")
    assert [f["type"] for f in transfer["fields"]] == ["AccountId", "AccountId", "Balance"]
    assert "register" in [c["name"] for c in copyright_module["calls"]]
    assert {"key": to_hex(b"copyright:next_id"), "kind": "StorageValue"} in copyright_module["storage"]
