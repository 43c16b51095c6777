"""Import: a block carrying a registration whose rendition does not match its pHash or watermark is
rejected; an honest one imports on a second node to the same state (PROTOCOL section 10).
"""

from __future__ import annotations

import dataclasses

import pytest

from node.core.importer import ImportError_
from node.core.txpool import PoolRejected
from node.keys import dev_keypair
from node.runtime import copyright
from node.runtime.executive import InvalidBlock
from node.runtime.runtime import RUNTIME
from node.types import Block, merkle_root
from tests.chainutil import DEV_GENESIS, signed
from tests.runtime.copyright_util import make_upload

SLOT = 10**8




def with_extrinsics(block: Block, extrinsics: list[bytes]) -> Block:
    """The block with another body, its header's extrinsics root updated and resealed by Alice."""
    header = dataclasses.replace(block.header.without_seal(), extrinsics_root=merkle_root(extrinsics))
    return Block(header.with_seal(dev_keypair("//Alice").sign(header.seal_payload(DEV_GENESIS))), tuple(extrinsics))


def test_honest_registration_imports_to_the_same_state(author, follower, bob):
    up = make_upload(bob.account_id, 70, genesis=author.genesis_hash)
    author.submit_extrinsic(signed(bob, up.call(), author.genesis_hash, 0))
    block = author.author_block(SLOT).block
    assert len(block.extrinsics) == 2
    follower.import_block(block)
    assert follower.chain.best_header() == author.chain.best_header()  # same state root
    registration = copyright.get_registration(follower.chain.best_state(), 1)
    assert registration is not None and registration.owner == bob.account_id
    assert registration.original.ext_index == 1 and registration.block == 1


@pytest.mark.parametrize("tamper", ["phash", "watermark", "payload"])
def test_block_with_a_mismatching_rendition_is_rejected(author, follower, bob, tamper):
    genesis = author.genesis_hash
    up = make_upload(bob.account_id, 71, genesis=genesis)
    if tamper == "phash":
        call = up.call(phash=up.phash ^ (1 << 17))
    elif tamper == "watermark":  # a genuine rendition, but marked for another file
        other = make_upload(bob.account_id, 71, tag="another file", genesis=genesis)
        call = up.call(rendition=other.rendition, phash=other.phash)
    else:  # marked with a payload under the wrong chain's key
        other = make_upload(bob.account_id, 71, genesis=b"\x33" * 32)
        call = up.call(rendition=other.rendition, phash=other.phash)
    bad = signed(bob, call, genesis, 0)

    # The pool refuses it with the reason...
    with pytest.raises(PoolRejected) as info:
        author.submit_extrinsic(bad)
    assert info.value.reason == "InvalidCall"

    # ...so build the block directly: the author's empty block for the slot plus the extrinsic.
    empty = author.author_block(SLOT).block
    forged = with_extrinsics(empty, [*empty.extrinsics, bad])
    parent_state = follower.chain.best_state()
    with pytest.raises(InvalidBlock, match="InvalidCall"):
        RUNTIME.execute_block(parent_state, forged, genesis)
    with pytest.raises(ImportError_) as refused:
        follower.import_block(forged)
    assert "invalid block: extrinsic 1: InvalidCall" in refused.value.reason
    assert follower.chain.best_header().number == 0
    assert copyright.get_registration(follower.chain.best_state(), 1) is None
    follower.import_block(empty)  # the honest block of that slot still imports


def test_block_of_several_registrations_imports(author, follower, bob, charlie):
    genesis = author.genesis_hash
    for nonce, seed in enumerate((72, 73, 74)):
        author.submit_extrinsic(
            signed(bob, make_upload(bob.account_id, seed, genesis=genesis).call(), genesis, nonce)
        )
    # A lower-resolution copy by Charlie fails by the rules (fee paid), in the same block.
    copy = make_upload(charlie.account_id, 72, 256, 192, genesis=genesis)
    author.submit_extrinsic(signed(charlie, copy.call(), genesis, 0))
    block = author.author_block(SLOT).block
    assert len(block.extrinsics) == 5
    imported = follower.import_block(block)
    failed = [e for e in imported.events if e.name == "ExtrinsicFailed"]
    assert [f.fields[:2] for f in failed] == [("copyright.NearDuplicate", 1)]
    assert copyright.registration_count(follower.chain.best_state()) == 3
