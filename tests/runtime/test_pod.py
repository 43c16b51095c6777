"""`pod`: one emission reward per novel, screened upload; versions, takeovers and rejects earn nothing."""

from __future__ import annotations

import numpy as np
import pytest

from node.chain_spec import genesis_storage
from node.codec import encode
from node.runtime import balances, emission, pod, system
from node.runtime.executive import InvalidReason, InvalidTransaction
from node.types import Call
from tests.chainutil import signed
from tests.runtime.copyright_util import DAY_MS, GENESIS, IMG, Chain, make_upload, scene, u128


def rewarded(result) -> int | None:
    names = result.names()
    if ("pod", "Rewarded") in names:
        return result.event("pod", "Rewarded").fields[2]
    return None


def not_rewarded_reason(result) -> str:
    return result.event("pod", "NotRewarded").fields[2]


def test_dev_genesis_screening_params(dev_spec):
    params = pod.read_params(genesis_storage(dev_spec).get)
    assert params == pod.PodParams(min_long_edge=1024, min_short_edge=576, min_detail=250, daily_limit=10)


def test_novel_upload_earns_one_reward(chain, bob):
    issuance, free = chain.issuance(), chain.free(bob)
    result = chain.run(bob, make_upload(bob.account_id, 50).call())
    assert result.ok
    assert result.event("pod", "Rewarded").fields == (bob.account_id, 1, IMG)  # rate(0) = 1: one reward unit
    assert result.event("emission", "Minted").fields == (bob.account_id, IMG, IMG)
    assert chain.free(bob) == free - result.fee + IMG
    assert chain.issuance() == issuance + IMG == chain.total_balances()
    assert chain.generated() == IMG
    # The next reward is already a little smaller.
    second = chain.run(bob, make_upload(bob.account_id, 51).call())
    assert rewarded(second) == emission.reward_amount(emission.read_params(chain.get), IMG) < IMG
    assert chain.generated() == IMG + rewarded(second)


def test_full_size_upload_under_the_dev_genesis(dev_spec, bob):
    chain = Chain.new(dev_spec)  # 1024 x 576 minimum
    small = chain.run(bob, make_upload(bob.account_id, 52, 512, 384).call())
    assert small.ok and not_rewarded_reason(small) == "TooSmall"
    portrait = chain.run(bob, make_upload(bob.account_id, 53, 576, 1024).call())
    assert rewarded(portrait) == IMG  # orientation does not matter


def test_versions_takeovers_and_rejects_earn_nothing(chain, bob, charlie):
    assert rewarded(chain.run(bob, make_upload(bob.account_id, 54, 256, 192).call())) == IMG
    generated = chain.generated()
    version = chain.run(charlie, make_upload(charlie.account_id, 54, 384, 288).call())
    raw = chain.run(
        charlie, make_upload(charlie.account_id, 54, 512, 384, is_raw=True, format_code=64).call()
    )
    duplicate = chain.run(charlie, make_upload(charlie.account_id, 54, 160, 128).call())
    assert version.ok and raw.ok and not duplicate.ok
    for result in (version, raw, duplicate):
        assert ("pod", "Rewarded") not in result.names() and ("pod", "NotRewarded") not in result.names()
    assert chain.generated() == generated


def test_blurred_images_fail_the_detail_screen_and_flat_ones_are_refused(chain, bob):
    blurred = chain.run(bob, make_upload(bob.account_id, 0, blurred=True).call())
    assert blurred.ok  # registered all the same
    assert not_rewarded_reason(blurred) == "TooLittleDetail"
    assert chain.generated() == 0
    # A flat image is not even registered (issue 11): at the pHash's scale it has no structure,
    # so it would "match" every other flat image.
    with pytest.raises(InvalidTransaction) as info:
        chain.run(bob, make_upload(bob.account_id, 0, flat=True).call())
    assert info.value.reason is InvalidReason.BAD_CALL and "flat at the pHash's scale" in info.value.detail


def test_detail_measure():
    from PIL import Image, ImageFilter

    from node.imaging.rendition import verification_rendition

    photo = verification_rendition(scene(55)).tobytes()
    flat = np.full((256, 256), 90, dtype=np.uint8).tobytes()
    blurred = np.asarray(Image.fromarray(scene(55)).filter(ImageFilter.GaussianBlur(8)))
    assert pod.detail_of(flat) == 0
    assert pod.detail_of(verification_rendition(blurred).tobytes()) < 250 < pod.detail_of(photo)
    # Integer and exact: a checkerboard of 0/255 has |Laplacian| = 4 * 255 everywhere.
    board = ((np.indices((256, 256)).sum(axis=0) % 2) * 255).astype(np.uint8).tobytes()
    assert pod.detail_of(board) == 4 * 255 * 100


def test_daily_limit_by_block_timestamp(dev_spec, bob, charlie):
    chain = Chain.new(dev_spec, min_long_edge=256, min_short_edge=192, daily_limit=2)
    # Start right after a day boundary so the whole test runs within one day.
    chain.advance(DAY_MS - chain.now_ms % DAY_MS)
    results = [chain.run(bob, make_upload(bob.account_id, seed).call()) for seed in (56, 57, 58)]
    assert [rewarded(r) is not None for r in results] == [True, True, False]
    assert not_rewarded_reason(results[2]) == "DailyLimit"
    assert pod.rewards_on_day(chain.get, bob.account_id, chain.now_ms // DAY_MS) == 2
    # Per account: Charlie still has his two.
    assert rewarded(chain.run(charlie, make_upload(charlie.account_id, 59).call())) is not None
    # The next day (block timestamps, not a clock) the limit resets.
    chain.advance(DAY_MS)
    assert rewarded(chain.run(bob, make_upload(bob.account_id, 60).call())) is not None


def test_no_emission_params_means_no_reward(chain, bob):
    del chain.state[emission.KEY_PARAMS]
    result = chain.run(bob, make_upload(bob.account_id, 61).call())
    assert result.ok and not_rewarded_reason(result) == "NoEmission"


def test_exhausted_emission_still_registers(chain, bob):
    params = emission.read_params(chain.get)
    chain.state[emission.GENERATED.key] = u128(params.cap - 1)
    result = chain.run(bob, make_upload(bob.account_id, 62).call())
    assert result.ok and not_rewarded_reason(result) == "EmissionExhausted"
    assert chain.generated() == params.cap - 1


def test_mint_refused_at_the_supply_limit_still_registers(chain, alice, bob):
    # Root raises issuance to the maximum supply: minting must be refused, not exceed it.
    def set_alice(free: int) -> Call:
        inner = Call("balances", "force_set_balance", (alice.account_id, u128(free)))
        return Call("sudo", "sudo", (inner.to_wire(),))

    # During dispatch the sudo call's own fee is already out of Alice's balance (and still in
    # the issuance, until the author, Alice, is paid at the end of the block).
    fee = system.fee_for(system.read_params(chain.get), len(signed(alice, set_alice(0), GENESIS, 0)), 20_000)
    target = chain.free(alice) - fee + balances.MAX_SUPPLY - chain.issuance()
    result = chain.run(alice, set_alice(target))
    assert result.event("sudo", "Sudid").fields == (b"ok",)
    assert chain.issuance() == balances.MAX_SUPPLY
    result = chain.run(bob, make_upload(bob.account_id, 63).call())
    assert result.ok and not_rewarded_reason(result) == "MintRefused"
    assert chain.issuance() == balances.MAX_SUPPLY == chain.total_balances()
    assert chain.generated() == 0


def test_pod_params_from_state(chain):
    chain.state[pod.KEY_PARAMS] = encode(pod.PodParams(1, 2, 3, 4).to_wire())
    assert pod.read_params(chain.get) == pod.PodParams(1, 2, 3, 4)
    del chain.state[pod.KEY_PARAMS]
    assert pod.read_params(chain.get) == pod.PodParams()


def test_genesis_sections_are_checked(dev_spec):
    import pytest

    from node.chain_spec import ChainSpecError, parse_chain_spec
    from node.runtime import copyright, licensing

    def storage(**sections):
        return genesis_storage(parse_chain_spec({**dev_spec.raw, **sections}))

    base = storage()
    assert copyright.read_params(base.get) == copyright.CopyrightParams(phash_radius=8, tag_fee=IMG // 100)
    assert licensing.read_params(base.get) == licensing.LicensingParams(fee_ppm=1000, min_fee=IMG // 1000)
    # Missing sections keep the defaults; partial ones override field by field.
    raw = {k: v for k, v in dev_spec.raw.items() if k not in ("copyright", "licensing", "pod")}
    bare = genesis_storage(parse_chain_spec(raw))
    assert pod.read_params(bare.get) == pod.PodParams()
    assert pod.read_params(storage(pod={"daily_limit": 3}).get).daily_limit == 3
    with pytest.raises(ChainSpecError, match="phash_radius"):
        storage(copyright={"phash_radius": 17})
    with pytest.raises(ChainSpecError, match="fee_ppm"):
        storage(licensing={"fee_ppm": 2_000_000})
    with pytest.raises(ChainSpecError, match="reach the cap"):
        storage(emission={"cap": "10", "reward_unit": "1", "constant": 5})
    with pytest.raises(ChainSpecError, match="maximum supply"):
        storage(emission={"cap": "600000000", "reward_unit": "1", "constant": 5})
