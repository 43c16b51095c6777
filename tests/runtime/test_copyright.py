"""`copyright`: registration, the ownership rules of white paper 2.1.2.3, transfers, tags, bad input.

Written as (state before, extrinsic, state after, events) over a dict state (`Chain`), with
uploads watermarked by `node.imaging.watermark.embed` exactly as the PoD client will do.
"""

from __future__ import annotations

import pytest

from node.runtime import copyright, licensing, system
from node.runtime.executive import InvalidReason, InvalidTransaction
from node.types import Call
from tests.runtime.copyright_util import GENESIS, IMG, Chain, make_upload, u128


def snapshot(chain: Chain) -> dict[bytes, bytes]:
    return dict(chain.state)


def invalid(chain: Chain, who, call: Call) -> InvalidTransaction:
    """The call is refused by the pool *and* by block execution, and changes nothing."""
    before = snapshot(chain)
    with pytest.raises(InvalidTransaction) as pool:
        chain.validate(who, call)
    with pytest.raises(InvalidTransaction) as block:
        chain.block(chain.sign(who, call))
    assert block.value.reason is pool.value.reason
    assert chain.state == before
    return pool.value


# ---------------------------------------------------------------------------------------------
# Registration
# ---------------------------------------------------------------------------------------------


def test_register_creates_the_record_and_its_indexes(chain, bob):
    up = make_upload(bob.account_id, 1)
    result = chain.run(bob, up.call())
    assert result.ok
    event = result.event("copyright", "Registered")
    assert event.fields == (1, bob.account_id, up.sha256, up.phash)

    r = chain.registration(1)
    assert (r.id, r.owner, r.sha256, r.phash, r.width, r.height) == (
        1,
        bob.account_id,
        up.sha256,
        up.phash,
        512,
        384,
    )
    assert (r.format_code, r.title, r.creator, r.description) == (1, "title", "creator", "description")
    assert r.block == chain.number and r.timestamp_ms == chain.now_ms and r.original.ext_index == 1
    assert len(r.versions) == 1 and r.original.wm_payload == up.payload
    assert copyright.find_by_sha256(chain.get, up.sha256) == 1
    assert copyright.find_by_payload(chain.get, up.payload) == 1
    assert copyright.search_similar(chain.get, up.phash, 8) == [(1, 0)]
    assert copyright.registrations_of(chain.get, bob.account_id) == [1]
    assert copyright.registration_count(chain.get) == 1

    second = chain.run(bob, make_upload(bob.account_id, 2).call())
    assert second.event("copyright", "Registered").fields[0] == 2  # sequential ids
    assert copyright.registrations_of(chain.get, bob.account_id) == [1, 2]


def test_same_sha256_is_rejected_naming_the_registration(chain, bob, charlie):
    up = make_upload(bob.account_id, 1)
    assert chain.run(bob, up.call()).ok
    # Another uploader with the very same file (same SHA-256), properly marked for them.
    again = make_upload(charlie.account_id, 1, tag=f"scene 1 {512}x{384} raw=False flat=False")
    assert again.sha256 == up.sha256
    before_records = copyright.registration_count(chain.get)
    free = chain.free(charlie)
    result = chain.run(charlie, again.call())
    assert not result.ok
    assert result.failure == ("copyright.DuplicateSha256", 1)
    assert chain.free(charlie) == free - result.fee  # the fee is paid, nothing else moves
    assert copyright.registration_count(chain.get) == before_records


def test_lower_resolution_duplicate_is_rejected_naming_the_original(chain, bob, charlie):
    assert chain.run(bob, make_upload(bob.account_id, 1).call()).ok
    smaller = make_upload(charlie.account_id, 1, 256, 192)  # a resized copy, re-marked by Charlie
    result = chain.run(charlie, smaller.call())
    assert not result.ok
    name, existing, distance = result.failure
    assert (name, existing) == ("copyright.NearDuplicate", 1) and distance <= 8
    # The same resolution is not enough either (a version must be strictly larger).
    same = make_upload(charlie.account_id, 1, tag="same size, other file")
    assert chain.run(charlie, same.call()).failure[:2] == ("copyright.NearDuplicate", 1)
    assert copyright.registration_count(chain.get) == 1 and len(chain.registration(1).versions) == 1


def test_higher_resolution_upload_becomes_a_version(chain, bob, charlie):
    original = make_upload(bob.account_id, 3, 256, 192)
    assert chain.run(bob, original.call()).ok
    bigger = make_upload(charlie.account_id, 3, 512, 384)
    result = chain.run(charlie, bigger.call())
    assert result.ok
    assert result.event("copyright", "VersionAdded").fields == (1, 1, charlie.account_id, 512, 384)
    assert ("pod", "Rewarded") not in result.names()  # not novel: no PoD reward

    r = chain.registration(1)
    assert r.owner == bob.account_id  # a version does not move ownership
    assert [v.pixels for v in r.versions] == [256 * 192, 512 * 384]
    assert r.highest.uploader == charlie.account_id
    # Every version's file and payload now name the registration.
    assert copyright.find_by_sha256(chain.get, bigger.sha256) == 1
    assert copyright.find_by_payload(chain.get, bigger.payload) == 1
    # And the next version must beat the new highest.
    middle = make_upload(charlie.account_id, 3, 384, 288)
    assert chain.run(charlie, middle.call()).failure[:2] == ("copyright.NearDuplicate", 1)
    assert copyright.registration_count(chain.get) == 1


def test_raw_upload_at_the_highest_resolution_takes_ownership(chain, bob, charlie):
    assert chain.run(bob, make_upload(bob.account_id, 4, 512, 384).call()).ok
    offer = chain.run(bob, Call("licensing", "offer_rf", (1, u128(5 * IMG), 0)))
    assert offer.ok
    # RAW below the highest resolution: rejected like any smaller duplicate.
    small_raw = make_upload(charlie.account_id, 4, 256, 192, is_raw=True, format_code=64)
    assert chain.run(charlie, small_raw.call()).failure[:2] == ("copyright.NearDuplicate", 1)
    # RAW at the same resolution (>=): takes the copyright.
    raw = make_upload(charlie.account_id, 4, 512, 384, is_raw=True, format_code=64)
    result = chain.run(charlie, raw.call())
    assert result.ok
    assert result.event("copyright", "OwnershipTakenOver").fields == (1, bob.account_id, charlie.account_id)
    assert result.event("copyright", "VersionAdded").fields[:3] == (1, 1, charlie.account_id)
    assert result.event("licensing", "OffersCleared").fields == (1, 1)  # Bob's offers are withdrawn
    r = chain.registration(1)
    assert r.owner == charlie.account_id and r.versions[-1].is_raw
    assert copyright.registrations_of(chain.get, bob.account_id) == []
    assert copyright.registrations_of(chain.get, charlie.account_id) == [1]
    assert licensing.offers_of(chain.get, 1) == []


def test_raw_by_the_owner_is_just_a_version(chain, bob):
    assert chain.run(bob, make_upload(bob.account_id, 5, 256, 192).call()).ok
    raw = make_upload(bob.account_id, 5, 512, 384, is_raw=True, format_code=70)
    result = chain.run(bob, raw.call())
    assert result.ok and ("copyright", "OwnershipTakenOver") not in result.names()
    assert chain.registration(1).owner == bob.account_id


def test_versions_are_bounded(chain, bob, monkeypatch):
    monkeypatch.setattr(copyright, "MAX_VERSIONS", 2)
    assert chain.run(bob, make_upload(bob.account_id, 6, 256, 192).call()).ok
    assert chain.run(bob, make_upload(bob.account_id, 6, 384, 288).call()).ok
    result = chain.run(bob, make_upload(bob.account_id, 6, 512, 384).call())
    assert result.failure == ("copyright.TooManyVersions", 1)


def test_nearest_registration_is_the_one_named(chain, bob, charlie):
    assert chain.run(bob, make_upload(bob.account_id, 7).call()).ok
    assert chain.run(bob, make_upload(bob.account_id, 8).call()).ok
    copy = make_upload(charlie.account_id, 8, 256, 192)
    assert chain.run(charlie, copy.call()).failure[:2] == ("copyright.NearDuplicate", 2)


# ---------------------------------------------------------------------------------------------
# Claims that do not prove themselves: invalid (pool and block), nothing changes
# ---------------------------------------------------------------------------------------------


def test_rendition_not_matching_the_phash_is_invalid(chain, bob):
    up = make_upload(bob.account_id, 9)
    error = invalid(chain, bob, up.call(phash=up.phash ^ 1))
    assert error.reason is InvalidReason.BAD_CALL and "pHash" in error.detail


def test_rendition_without_the_watermark_is_invalid(chain, bob):
    from node.imaging.phash import phash_from_rendition
    from node.imaging.rendition import verification_rendition
    from tests.runtime.copyright_util import scene

    plain = verification_rendition(scene(9))  # never marked
    up = make_upload(bob.account_id, 9)
    error = invalid(chain, bob, up.call(rendition=plain.tobytes(), phash=phash_from_rendition(plain)))
    assert error.reason is InvalidReason.BAD_CALL and "carries no payload" in error.detail
    # Marked, but for another file: the payload extracted is not the one claimed.
    other = make_upload(bob.account_id, 9, tag="another file")
    error = invalid(chain, bob, up.call(rendition=other.rendition, phash=other.phash))
    assert "not the claimed watermark" in error.detail


def test_registration_of_someone_elses_upload_is_invalid(chain, bob, charlie):
    # Charlie replays Bob's (still pending) registration under his own signature.
    bobs = make_upload(bob.account_id, 10)
    error = invalid(chain, charlie, bobs.call())
    assert error.reason is InvalidReason.BAD_CALL and "another uploader" in error.detail
    # Claiming Bob's payload for a file of his own does not help either.
    error = invalid(chain, charlie, make_upload(charlie.account_id, 10).call(payload=bobs.payload))
    assert error.reason is InvalidReason.BAD_CALL


@pytest.mark.parametrize(
    ("changes", "reason", "text"),
    [
        ({"format_code": 0}, InvalidReason.BAD_CALL, "unknown image format code 0"),
        ({"format_code": 200}, InvalidReason.BAD_CALL, "unknown image format code 200"),
        ({"format_code": 1000}, InvalidReason.BAD_ARGUMENTS, "format code"),
        ({"width": 0}, InvalidReason.BAD_CALL, "zero-size image (0x384)"),
        ({"height": 0}, InvalidReason.BAD_CALL, "zero-size image (512x0)"),
        ({"width": 2**21}, InvalidReason.BAD_CALL, "exceeds"),
        ({"is_raw": True}, InvalidReason.BAD_CALL, "is_raw=True but format jpeg"),
        ({"format_code": 64}, InvalidReason.BAD_CALL, "is_raw=False but format dng"),
        ({"is_raw": 1}, InvalidReason.BAD_ARGUMENTS, "bool"),
        ({"rendition": b"\x00" * 65537}, InvalidReason.BAD_ARGUMENTS, "exactly 65536 bytes"),
        ({"rendition": b"\x00" * 65535}, InvalidReason.BAD_ARGUMENTS, "got 65535"),
        ({"rendition": b""}, InvalidReason.BAD_ARGUMENTS, "got 0"),
        ({"rendition": "not bytes"}, InvalidReason.BAD_ARGUMENTS, "expected bytes"),
        ({"sha256": b"\x01" * 31}, InvalidReason.BAD_ARGUMENTS, "32 bytes"),
        ({"payload": b"\x01" * 9}, InvalidReason.BAD_ARGUMENTS, "8 bytes"),
        ({"phash": -1}, InvalidReason.BAD_ARGUMENTS, "out of range"),
        ({"blobs": [[0, b"\x00" * 32, 1]] * 3}, InvalidReason.BAD_ARGUMENTS, "longer than 2"),
        ({"blobs": [[0, b"\x00" * 31, 1]]}, InvalidReason.BAD_ARGUMENTS, "32 bytes"),
        ({"blobs": []}, InvalidReason.BAD_CALL, "one published file"),
        ({"blobs": [[1, b"\x00" * 32, 1]]}, InvalidReason.BAD_CALL, "one published file"),
        ({"blobs": [[0, b"\x00" * 32, 1], [0, b"\x01" * 32, 1]]}, InvalidReason.BAD_CALL, "one published file"),
        ({"blobs": [[0, b"\x00" * 32, 0]]}, InvalidReason.BAD_CALL, "a blob of 0 bytes"),
        ({"title": "x" * 257}, InvalidReason.BAD_ARGUMENTS, "longer than 256"),
        ({"description": "x" * 2049}, InvalidReason.BAD_ARGUMENTS, "longer than 2048"),
    ],
)
def test_bad_input_is_refused_with_a_clear_error(chain, bob, changes, reason, text):
    up = make_upload(bob.account_id, 11)
    error = invalid(chain, bob, up.call(**changes))
    assert error.reason is reason
    assert text in error.detail


def test_wrong_argument_count_is_refused(chain, bob):
    up = make_upload(bob.account_id, 11)
    error = invalid(chain, bob, Call("copyright", "register", up.args()[:-1]))
    assert error.reason is InvalidReason.BAD_ARGUMENTS


def test_known_formats_and_raw_flags(chain, bob):
    assert copyright.format_code_for_extension(".JPG") == 1
    assert copyright.format_code_for_extension("nef") == 68
    assert copyright.format_code_for_extension(".xyz") is None
    assert all(copyright.is_raw_format(code) == (code >= 64) for code in copyright.FORMATS)
    up = make_upload(bob.account_id, 12, is_raw=True, format_code=65)
    assert chain.run(bob, up.call()).ok


def test_a_nested_call_cannot_skip_the_claim_check(chain, alice, bob):
    # sudo dispatches as root, which `register` refuses; the claim is re-checked at dispatch anyway.
    bad = make_upload(bob.account_id, 13).call(phash=0)
    result = chain.run(alice, Call("sudo", "sudo", (bad.to_wire(),)))
    assert result.ok and result.event("sudo", "Sudid").fields == (b"system.BadOrigin",)
    assert copyright.registration_count(chain.get) == 0


# ---------------------------------------------------------------------------------------------
# Transfers
# ---------------------------------------------------------------------------------------------


def test_owner_transfers_a_registration(chain, bob, charlie):
    for seed in (14, 15, 16):
        assert chain.run(bob, make_upload(bob.account_id, seed).call()).ok
    assert chain.run(bob, Call("licensing", "offer_rf", (1, u128(IMG), 0))).ok
    result = chain.run(bob, Call("copyright", "transfer_ownership", (1, charlie.account_id)))
    assert result.ok
    assert result.event("copyright", "OwnershipTransferred").fields == (1, bob.account_id, charlie.account_id)
    assert ("licensing", "OffersCleared") in result.names()
    assert chain.registration(1).owner == charlie.account_id
    assert copyright.registrations_of(chain.get, bob.account_id) == [2, 3]  # swap-removed
    assert copyright.registrations_of(chain.get, charlie.account_id) == [1]
    # Back again, and the last one too: the enumerable index stays consistent.
    assert chain.run(charlie, Call("copyright", "transfer_ownership", (1, bob.account_id))).ok
    assert chain.run(bob, Call("copyright", "transfer_ownership", (3, charlie.account_id))).ok
    assert copyright.registrations_of(chain.get, bob.account_id) == [1, 2]
    assert copyright.owned_count(chain.get, bob.account_id) == 2


def test_only_the_owner_can_transfer(chain, bob, charlie):
    assert chain.run(bob, make_upload(bob.account_id, 17).call()).ok
    before = chain.registration(1)
    result = chain.run(charlie, Call("copyright", "transfer_ownership", (1, charlie.account_id)))
    assert result.failure == ("copyright.NotOwner", 1)
    assert chain.run(bob, Call("copyright", "transfer_ownership", (1, bob.account_id))).failure == (
        "copyright.AlreadyOwner", 1,
    )  # fmt: skip
    assert chain.run(bob, Call("copyright", "transfer_ownership", (99, charlie.account_id))).failure == (
        "copyright.UnknownRegistration", 99,
    )  # fmt: skip
    assert chain.registration(1) == before


# ---------------------------------------------------------------------------------------------
# Tags
# ---------------------------------------------------------------------------------------------


def test_tag_burns_the_fee(chain, bob, charlie):
    assert chain.run(bob, make_upload(bob.account_id, 18).call()).ok
    fee = copyright.read_params(chain.get).tag_fee
    assert fee == IMG // 100  # genesis.json: 0.01 IMG
    issuance, free = chain.issuance(), chain.free(charlie)
    result = chain.run(charlie, Call("copyright", "tag", (1, "风景")))
    assert result.ok
    assert result.event("copyright", "Tagged").fields == (1, charlie.account_id, "风景", fee)
    assert chain.free(charlie) == free - fee - result.fee
    # The transaction fee goes to the author; the tag fee is destroyed.
    assert chain.issuance() == issuance - fee == chain.total_balances()
    assert [t.tag for t in copyright.tags_of(chain.get, 1)] == ["风景"]


def test_tag_rules(chain, bob, charlie, monkeypatch):
    assert chain.run(bob, make_upload(bob.account_id, 19).call()).ok
    assert chain.run(charlie, Call("copyright", "tag", (1, "sea"))).ok
    assert chain.run(charlie, Call("copyright", "tag", (1, "sea"))).failure == ("copyright.TagExists", 1)
    assert chain.run(charlie, Call("copyright", "tag", (1, ""))).failure == ("copyright.BadTag",)
    assert chain.run(charlie, Call("copyright", "tag", (1, "a\nb"))).failure == ("copyright.BadTag",)
    assert chain.run(charlie, Call("copyright", "tag", (2, "sea"))).failure == (
        "copyright.UnknownRegistration",
        2,
    )
    with pytest.raises(InvalidTransaction):
        chain.validate(charlie, Call("copyright", "tag", (1, "x" * 33)))
    monkeypatch.setattr(copyright, "MAX_TAGS", 2)
    assert chain.run(charlie, Call("copyright", "tag", (1, "sky"))).ok
    assert chain.run(charlie, Call("copyright", "tag", (1, "sun"))).failure == ("copyright.TooManyTags", 1)
    # Only the owner removes tags; nothing is refunded.
    assert chain.run(charlie, Call("copyright", "untag", (1, "sea"))).failure == ("copyright.NotOwner", 1)
    assert chain.run(bob, Call("copyright", "untag", (1, "sea"))).ok
    assert chain.run(bob, Call("copyright", "untag", (1, "sea"))).failure == ("copyright.UnknownTag", 1)
    assert [t.tag for t in copyright.tags_of(chain.get, 1)] == ["sky"]


def test_tag_needs_the_fee(chain, bob, mallory):
    assert chain.run(bob, make_upload(bob.account_id, 20).call()).ok
    # Mallory can pay the transaction fee but not also the tag fee above the existential deposit.
    ed = system.read_params(chain.get).existential_deposit
    assert chain.run(bob, Call("balances", "transfer", (mallory.account_id, u128(ed + IMG // 200)))).ok
    issuance = chain.issuance()
    result = chain.run(mallory, Call("copyright", "tag", (1, "mine")))
    assert result.failure == ("balances.KeepAlive",)
    assert copyright.tags_of(chain.get, 1) == [] and chain.issuance() == issuance


def test_watermark_derivations_are_public_and_fixed():
    # Pinned: the PoD client and every validator must derive exactly these bytes.
    key = copyright.watermark_key_for(GENESIS)
    payload = copyright.watermark_payload_for(GENESIS, b"\x01" * 32, b"\x02" * 32)
    assert len(key) == 10 and len(payload) == 8
    from node.codec import blake2b_256

    assert key == blake2b_256(b"imagechain/watermark-key" + GENESIS)[:10]
    assert payload == blake2b_256(b"imagechain/watermark-payload" + GENESIS + b"\x01" * 32 + b"\x02" * 32)[:8]
    assert copyright.watermark_key_for(b"\x22" * 32) != key  # one key per chain


def test_dispatch_rechecks_the_claim(chain, bob):
    """A register reaching dispatch without the validity hook (nested calls) fails, changing nothing."""
    from node.runtime.runtime import RUNTIME
    from node.runtime.support import DispatchError, Origin
    from node.types import Header, aura_pre_digest

    up = make_upload(bob.account_id, 13)
    ctx = RUNTIME.initialize_block(
        chain.get, Header(b"\x01" * 32, chain.number + 1, b"", b"", (aura_pre_digest(chain.slot + 1),))
    )
    spec = copyright.register.call_spec
    with pytest.raises(DispatchError) as info:
        spec.function(ctx, Origin.signed(bob.account_id), *spec.parse_args(up.args(phash=up.phash ^ 4)))
    assert info.value.error == "InvalidClaim"
    spec.function(ctx, Origin.signed(bob.account_id), *spec.parse_args(up.args()))  # the honest claim passes
    assert copyright.get_registration(ctx.state.get, 1) is not None


def test_payload_collision_is_refused_naming_the_holder(chain, bob):
    up = make_upload(bob.account_id, 21)
    chain.state[copyright.BY_PAYLOAD.key(up.payload)] = (7).to_bytes(8, "big")  # as if registration 7 had it
    assert chain.run(bob, up.call()).failure == ("copyright.PayloadTaken", 7)


def test_untagging_the_last_tag_clears_the_list(chain, bob):
    assert chain.run(bob, make_upload(bob.account_id, 22).call()).ok
    assert chain.run(bob, Call("copyright", "tag", (1, "only"))).ok
    assert chain.run(bob, Call("copyright", "untag", (1, "only"))).ok
    assert copyright.TAGS.key(1) not in chain.state
