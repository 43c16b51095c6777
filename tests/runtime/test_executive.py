"""Runtime tests written as (state before, extrinsic, state after, events), over a plain dict.

No database and no client: the runtime is a pure function of state and block.
"""

from __future__ import annotations

import pytest

from node.chain_spec import ChainSpec, genesis_storage
from node.codec import encode
from node.keys import Keypair, dev_keypair
from node.runtime import balances, system, vesting
from node.runtime.executive import InvalidReason, InvalidTransaction, timestamp_inherent
from node.runtime.runtime import RUNTIME
from node.runtime.support import BlockContext
from node.types import Call, Header, Mortality, aura_pre_digest
from tests.chainutil import IMG, signed, transfer_call

GENESIS = b"\x11" * 32
PARENT = b"\x00" * 32  # the parent hash of every block `open_block` opens


@pytest.fixture
def state(dev_spec: ChainSpec) -> dict[bytes, bytes]:
    return dict(genesis_storage(dev_spec))


def open_block(state: dict[bytes, bytes], number: int = 1, slot: int = 1000) -> BlockContext:
    header = Header(b"\x00" * 32, number, b"\x00" * 32, b"\x00" * 32, (aura_pre_digest(slot),))
    ctx = RUNTIME.initialize_block(state.get, header)
    RUNTIME.apply_extrinsic(ctx, GENESIS, timestamp_inherent(slot * ctx.params.slot_ms))
    return ctx


def close_block(state: dict[bytes, bytes], ctx: BlockContext) -> None:
    for key, value in RUNTIME.finalize_block(ctx).items():
        if value is None:
            state.pop(key, None)
        else:
            state[key] = value


def account(state: dict[bytes, bytes], who: Keypair | bytes) -> system.Account:
    account_id = who if isinstance(who, bytes) else who.account_id
    return system.read_account(state.get, account_id)


def issuance(state: dict[bytes, bytes]) -> int:
    return int.from_bytes(state[balances.KEY_TOTAL_ISSUANCE], "big")


def total_balances(state: dict[bytes, bytes]) -> int:
    return sum(
        system.Account.decode(v).total for k, v in state.items() if k.startswith(b"system:account:")
    )


def test_transfer_moves_amount_charges_fee_and_pays_author(state, alice, bob):
    before_alice, before_bob, before_issuance = account(state, alice), account(state, bob), issuance(state)
    ctx = open_block(state)
    ext = signed(bob, transfer_call(alice.account_id, 5 * IMG), GENESIS, nonce=0)
    assert RUNTIME.apply_extrinsic(ctx, GENESIS, ext) is True
    fee = system.fee_for(ctx.params, len(ext), 100_000)
    close_block(state, ctx)

    assert account(state, bob).free == before_bob.free - 5 * IMG - fee
    assert account(state, bob).nonce == 1
    # Alice is the only authority: she receives the transfer and the fee.
    assert account(state, alice).free == before_alice.free + 5 * IMG + fee
    assert issuance(state) == before_issuance == total_balances(state)
    names = [(e.module, e.name) for e in ctx.events]
    assert ("balances", "Transfer") in names and ("balances", "FeesPaid") in names


def test_failed_call_rolls_back_but_pays_fee_and_nonce(state, alice, bob):
    before = account(state, bob)
    ctx = open_block(state)
    too_much = before.free * 2
    ext = signed(bob, transfer_call(alice.account_id, too_much), GENESIS, nonce=0)
    assert RUNTIME.apply_extrinsic(ctx, GENESIS, ext) is False
    close_block(state, ctx)
    after = account(state, bob)
    assert after.nonce == 1
    assert after.free == before.free - system.fee_for(ctx.params, len(ext), 100_000)
    failed = [e for e in ctx.events if e.name == "ExtrinsicFailed"]
    assert failed and failed[0].fields == ("balances.InsufficientBalance",)
    assert issuance(state) == total_balances(state)


def test_existential_deposit_and_reaping(state, bob):
    newcomer = dev_keypair("//Newcomer")
    ctx = open_block(state)
    ed = ctx.params.existential_deposit
    below = signed(bob, transfer_call(newcomer.account_id, ed - 1), GENESIS, nonce=0)
    assert RUNTIME.apply_extrinsic(ctx, GENESIS, below) is False  # cannot create an account below the ED
    fund = signed(bob, transfer_call(newcomer.account_id, 1 * IMG), GENESIS, nonce=1)
    assert RUNTIME.apply_extrinsic(ctx, GENESIS, fund) is True
    close_block(state, ctx)
    assert account(state, newcomer).free == 1 * IMG

    # The newcomer sends almost everything with keep-alive: refused; with transfer: reaped.
    ctx = open_block(state, number=2, slot=1001)
    fee = system.fee_for(ctx.params, 200, 100_000)
    send_all = 1 * IMG - fee * 2
    keep = signed(newcomer, transfer_call(bob.account_id, send_all, keep_alive=True), GENESIS, nonce=0)
    assert RUNTIME.apply_extrinsic(ctx, GENESIS, keep) is False
    close_block(state, ctx)
    before_issuance = issuance(state)
    remaining = account(state, newcomer).free
    ctx = open_block(state, number=3, slot=1002)
    ext = signed(newcomer, transfer_call(bob.account_id, remaining // 2), GENESIS, nonce=1)
    fee = system.fee_for(ctx.params, len(ext), 100_000)
    ext = signed(newcomer, transfer_call(bob.account_id, remaining - fee - ed // 2), GENESIS, nonce=1)
    assert RUNTIME.apply_extrinsic(ctx, GENESIS, ext) is True
    close_block(state, ctx)
    assert system.account_key(newcomer.account_id) not in state  # reaped
    assert issuance(state) == before_issuance - ed // 2  # the dust was burned
    assert issuance(state) == total_balances(state)


def test_burn_lowers_issuance(state, bob):
    before = issuance(state)
    ctx = open_block(state)
    assert RUNTIME.apply_extrinsic(ctx, GENESIS, signed(bob, Call("balances", "burn", ((7 * IMG).to_bytes(16, "big"),)), GENESIS, 0))
    close_block(state, ctx)
    assert issuance(state) == before - 7 * IMG == total_balances(state)


def test_vesting_releases_by_block_timestamp(state, dev_spec):
    eve = dev_keypair("//Eve")
    assert account(state, eve).frozen == account(state, eve).free  # fully locked at genesis
    slot_ms = dev_spec.params.slot_ms
    month_slots = vesting.MONTH_MS // slot_ms
    genesis_slot = dev_spec.genesis_time_ms // slot_ms

    # Before 6 months nothing unlocks; a transfer of locked funds fails.
    ctx = open_block(state, slot=genesis_slot + 5 * month_slots)
    assert RUNTIME.apply_extrinsic(ctx, GENESIS, signed(eve, Call("vesting", "vest", ()), GENESIS, 0))
    close_block(state, ctx)
    grant = 3_150_000_000 * IMG
    assert account(state, eve).frozen == grant

    # Six months after genesis: 50% unlocked; one month later 60%.
    ctx = open_block(state, number=2, slot=genesis_slot + 6 * month_slots + 1)
    assert RUNTIME.apply_extrinsic(ctx, GENESIS, signed(eve, Call("vesting", "vest", ()), GENESIS, 1))
    close_block(state, ctx)
    assert account(state, eve).frozen == grant - grant // 2
    ctx = open_block(state, number=3, slot=genesis_slot + 7 * month_slots + 1)
    assert RUNTIME.apply_extrinsic(ctx, GENESIS, signed(eve, Call("vesting", "vest", ()), GENESIS, 2))
    close_block(state, ctx)
    assert account(state, eve).frozen == grant - grant // 2 - grant // 10

    # Eleven months: everything is free and the schedule is gone.
    ctx = open_block(state, number=4, slot=genesis_slot + 11 * month_slots + 1)
    assert RUNTIME.apply_extrinsic(ctx, GENESIS, signed(eve, Call("vesting", "vest", ()), GENESIS, 3))
    close_block(state, ctx)
    assert account(state, eve).frozen == 0
    assert vesting.schedule_key(eve.account_id) not in state


def test_locked_funds_cannot_move(state, alice):
    dave = dev_keypair("//Dave")  # team: locked for two years
    ctx = open_block(state)
    # Fees may come from locked funds (so `vest` can be called), transfers may not.
    assert RUNTIME.apply_extrinsic(ctx, GENESIS, signed(dave, transfer_call(alice.account_id, IMG), GENESIS, 0)) is False
    failed = [e for e in ctx.events if e.name == "ExtrinsicFailed"]
    assert failed[0].fields == ("balances.InsufficientBalance",)


def test_sudo_dispatches_root_calls_only_for_the_key(state, alice, bob):
    target = dev_keypair("//Target").account_id
    inner = Call("balances", "force_set_balance", (target, (5 * IMG).to_bytes(16, "big")))
    before = issuance(state)
    ctx = open_block(state)
    assert RUNTIME.apply_extrinsic(ctx, GENESIS, signed(bob, Call("sudo", "sudo", (inner.to_wire(),)), GENESIS, 0)) is False
    assert RUNTIME.apply_extrinsic(ctx, GENESIS, signed(alice, Call("sudo", "sudo", (inner.to_wire(),)), GENESIS, 0)) is True
    close_block(state, ctx)
    assert account(state, target).free == 5 * IMG
    assert issuance(state) == before + 5 * IMG == total_balances(state)


def test_root_call_cannot_be_signed_directly(state, alice):
    call = Call("balances", "force_set_balance", (alice.account_id, (1).to_bytes(16, "big")))
    with pytest.raises(InvalidTransaction) as info:
        RUNTIME.validate_transaction(state.get, GENESIS, signed(alice, call, GENESIS, 0), 0, GENESIS)
    assert info.value.reason is InvalidReason.BAD_ORIGIN


def test_each_invalid_transaction_has_its_own_reason(state, alice, bob):
    call = transfer_call(alice.account_id, IMG)
    poor = dev_keypair("//Poor")

    def reason(encoded: bytes, best: int = 0) -> InvalidReason:
        with pytest.raises(InvalidTransaction) as info:
            RUNTIME.validate_transaction(state.get, GENESIS, encoded, best, PARENT)
        return info.value.reason

    good = signed(bob, call, GENESIS, 0)
    RUNTIME.validate_transaction(state.get, GENESIS, good, 0, GENESIS)
    tampered = bytearray(good)
    tampered[-3] ^= 1  # inside the call's amount: the signature no longer matches
    assert reason(bytes(tampered)) is InvalidReason.BAD_PROOF
    assert reason(signed(bob, call, b"\x22" * 32, 0)) is InvalidReason.WRONG_GENESIS
    assert reason(signed(bob, call, GENESIS, 0, spec_version=99)) is InvalidReason.OUTDATED_SPEC
    assert reason(signed(poor, call, GENESIS, 0)) is InvalidReason.CANNOT_PAY
    assert reason(signed(bob, call, GENESIS, 0, mortality=Mortality(1, 4, PARENT)), best=10) is InvalidReason.EXPIRED
    assert reason(signed(bob, call, GENESIS, 0, mortality=Mortality(50, 4, PARENT)), best=10) is InvalidReason.BIRTH_IN_FUTURE
    assert reason(b"\x93garbage") is InvalidReason.BAD_FORMAT
    assert reason(signed(bob, Call("nope", "nothing", ()), GENESIS, 0)) is InvalidReason.UNKNOWN_CALL
    assert reason(signed(bob, Call("balances", "transfer", (b"short", b"x")), GENESIS, 0)) is InvalidReason.BAD_ARGUMENTS

    # Stale nonce: after bob's nonce 0 is used.
    ctx = open_block(state)
    RUNTIME.apply_extrinsic(ctx, GENESIS, good)
    close_block(state, ctx)
    assert reason(signed(bob, call, GENESIS, 0)) is InvalidReason.STALE
    # A future nonce is valid for the pool (it waits) but not in a block.
    assert RUNTIME.validate_transaction(state.get, GENESIS, signed(bob, call, GENESIS, 5), 1, PARENT).nonce == 5
    ctx = open_block(state, number=2, slot=1001)
    with pytest.raises(InvalidTransaction) as info:
        RUNTIME.apply_extrinsic(ctx, GENESIS, signed(bob, call, GENESIS, 5))
    assert info.value.reason is InvalidReason.FUTURE


def test_inherent_rules(state, bob, alice):
    header = Header(b"\x00" * 32, 1, b"\x00" * 32, b"\x00" * 32, (aura_pre_digest(1000),))
    ctx = RUNTIME.initialize_block(state.get, header)
    # A signed transaction cannot come first, and the timestamp must be the slot's start.
    with pytest.raises(InvalidTransaction):
        RUNTIME.apply_extrinsic(ctx, GENESIS, signed(bob, transfer_call(alice.account_id, IMG), GENESIS, 0))
    ctx = RUNTIME.initialize_block(state.get, header)
    with pytest.raises(InvalidTransaction):
        RUNTIME.apply_extrinsic(ctx, GENESIS, timestamp_inherent(1000 * ctx.params.slot_ms + 1))
    ctx = open_block(state)
    with pytest.raises(InvalidTransaction):  # a second inherent is refused
        RUNTIME.apply_extrinsic(ctx, GENESIS, timestamp_inherent(1000 * ctx.params.slot_ms))


def test_authority_set_change_takes_effect_at_its_block(state, alice, bob):
    from node.runtime import aura, offences

    new_set = [alice.public.data, bob.public.data]
    schedule = Call("aura", "schedule_change", (new_set, 2))
    ctx = open_block(state, number=1, slot=1000)
    # Only root may schedule: a signed call is not even a valid transaction; through sudo it works.
    with pytest.raises(InvalidTransaction):
        RUNTIME.apply_extrinsic(ctx, GENESIS, signed(bob, schedule, GENESIS, 0))
    assert RUNTIME.apply_extrinsic(ctx, GENESIS, signed(alice, Call("sudo", "sudo", (schedule.to_wire(),)), GENESIS, 0))
    close_block(state, ctx)
    state[offences.DISABLED.key] = encode([bob.public.data])
    assert aura.read_set_id(state.get) == 0
    ctx = open_block(state, number=2, slot=1001)
    close_block(state, ctx)
    assert len(aura.read_authorities(state.get)) == 1  # not yet
    ctx = open_block(state, number=3, slot=1002)  # enacted here
    close_block(state, ctx)
    assert aura.read_authorities(state.get) == new_set
    assert aura.read_set_id(state.get) == 1
    assert offences.DISABLED.key not in state  # a new set starts with nobody disabled
    assert ("aura", "NewAuthorities") in [(e.module, e.name) for e in ctx.events]


def test_a_tip_comes_from_transferable_funds_only(state, alice):
    """Security #10.2: Eve's funds are all locked (vesting); she may pay a base fee from them
    (to call `vesting.vest`), but not a tip: a locked account could otherwise pay its whole lock
    to an author it controls. Once some of the lock is released, tips up to that amount pass."""
    eve = dev_keypair("//Eve")
    remark = Call("system", "remark", (b"x",))
    assert account(state, eve).usable == 0
    RUNTIME.validate_transaction(state.get, GENESIS, signed(eve, remark, GENESIS, 0), 0, GENESIS)  # base fee: fine
    for tip in (1, 2_099_999_999 * IMG):
        with pytest.raises(InvalidTransaction) as info:
            RUNTIME.validate_transaction(state.get, GENESIS, signed(eve, remark, GENESIS, 0, tip=tip), 0, GENESIS)
        assert info.value.reason is InvalidReason.CANNOT_PAY and "transferable" in info.value.detail
    ctx = open_block(state)
    with pytest.raises(InvalidTransaction):  # and no block may carry it
        RUNTIME.apply_extrinsic(ctx, GENESIS, signed(eve, remark, GENESIS, 0, tip=IMG))
    eve_account = account(state, eve)
    eve_account.frozen -= 5 * IMG
    state[system.account_key(eve.account_id)] = eve_account.encode()
    RUNTIME.validate_transaction(state.get, GENESIS, signed(eve, remark, GENESIS, 0, tip=5 * IMG), 0, GENESIS)


def test_a_reaped_accounts_old_transactions_cannot_be_replayed(state, alice, bob):
    """Security #10.4: Poor sends everything away (and is reaped), is funded again, and the very
    same signed bytes are sent again. The nonce survives reaping, so they are stale; every
    transaction is mortal, so once the memory of the nonce is gone they are long dead."""
    poor = dev_keypair("//Poor")
    ctx = open_block(state, number=1, slot=1000)
    RUNTIME.apply_extrinsic(ctx, GENESIS, signed(bob, transfer_call(poor.account_id, IMG), GENESIS, 0))
    close_block(state, ctx)
    fee = system.fee_for(system.read_params(state.get), 200, 100_000)
    everything = signed(poor, transfer_call(alice.account_id, IMG - 2 * fee), GENESIS, 0)  # born at genesis
    ctx = open_block(state, number=2, slot=1001)
    assert RUNTIME.apply_extrinsic(ctx, GENESIS, everything)
    close_block(state, ctx)
    assert ("balances", "Reaped") in [(e.module, e.name) for e in ctx.events]
    assert system.ACCOUNTS.key(poor.account_id) not in state
    ctx = open_block(state, number=3, slot=1002)
    RUNTIME.apply_extrinsic(ctx, GENESIS, signed(bob, transfer_call(poor.account_id, 5 * IMG), GENESIS, 1))
    close_block(state, ctx)
    assert account(state, poor).nonce == 1  # funded again: the nonce goes on
    with pytest.raises(InvalidTransaction) as info:
        RUNTIME.validate_transaction(state.get, GENESIS, everything, 3, PARENT)
    assert info.value.reason is InvalidReason.STALE
    # Long after, the memory of the reaping is dropped: by then the transaction is dead anyway.
    forgotten = 2 + system.BLOCK_HASH_HISTORY + 1
    ctx = open_block(state, number=forgotten, slot=2000)
    close_block(state, ctx)
    assert system.REAPED.key(poor.account_id) not in state and system.REAPED_IN.key(2) not in state
    assert account(state, poor).nonce == 1  # the account itself lives on
    with pytest.raises(InvalidTransaction) as info:
        RUNTIME.validate_transaction(state.get, GENESIS, everything, forgotten, PARENT)
    assert info.value.reason is InvalidReason.EXPIRED


def test_every_transaction_is_mortal_and_born_on_this_chain(state, alice, bob):
    """Security #10.4: no immortal transaction, no period past the kept block hashes, and the
    birth block's hash must be this chain's."""
    call = transfer_call(alice.account_id, IMG)

    def reason(mortality: Mortality, best: int = 0, best_hash: bytes = GENESIS) -> InvalidTransaction:
        with pytest.raises(InvalidTransaction) as info:
            RUNTIME.validate_transaction(state.get, GENESIS, signed(bob, call, GENESIS, 0, mortality=mortality), best, best_hash)
        return info.value

    assert reason(Mortality(0, 0, GENESIS)).reason is InvalidReason.BAD_MORTALITY  # "immortal"
    assert reason(Mortality(0, 4097, GENESIS)).reason is InvalidReason.BAD_MORTALITY
    assert reason(Mortality(0, 64, b"\x33" * 32)).reason is InvalidReason.BAD_MORTALITY  # another chain's genesis
    other_fork = reason(Mortality(5, 64, b"\x44" * 32), best=5, best_hash=b"\x55" * 32)
    assert other_fork.reason is InvalidReason.BAD_MORTALITY and "not on this chain" in other_fork.detail
    RUNTIME.validate_transaction(state.get, GENESIS, signed(bob, call, GENESIS, 0, mortality=Mortality(5, 64, b"\x55" * 32)), 5, b"\x55" * 32)
    RUNTIME.validate_transaction(state.get, GENESIS, signed(bob, call, GENESIS, 0, mortality=Mortality(0, 64, GENESIS)), 0, GENESIS)
