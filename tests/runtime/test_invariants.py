"""Random sequences of transfers, registrations (with PoD rewards), offers, purchases, tags, ownership
transfers and time, checking after every block:

* sum of balances == total issuance <= 21e9 IMG;
* total issuance moved exactly by what was minted (rewards) and destroyed (licence and tag
  fees, dust) according to the events;
* generated < cap, and generated grew by exactly the rewards paid;
* the ownership index agrees with the records.

A small emission cap (30 IMG, still satisfying the genesis condition) and a rule that jumps
`generated` close to the cap make the end of emission reachable in a short run.
"""

from __future__ import annotations

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from node.chain_spec import load_chain_spec
from node.codec import encode
from node.keys import dev_keypair
from node.runtime import balances, copyright, emission, licensing
from node.runtime.executive import InvalidReason, InvalidTransaction
from node.types import Call
from tests.runtime.copyright_util import IMG, Chain, Result, make_upload, u128
from tests.runtime.test_emission import SMALL

SPEC = load_chain_spec("dev")
ACTORS = [dev_keypair(uri) for uri in ("//Alice", "//Bob", "//Charlie", "//Ferdie", "//Zed")]
SIZES = [(160, 128), (256, 192), (384, 288)]
TAGS = ["sea", "city", "风景"]

actor = st.sampled_from(range(len(ACTORS)))


class CopyrightChain(RuleBasedStateMachine):
    @initialize()
    def start(self) -> None:
        self.chain = Chain.new(SPEC, min_long_edge=128, min_short_edge=96, min_detail=250, daily_limit=3)
        self.chain.state[emission.KEY_PARAMS] = encode(SMALL.to_wire())
        self.expected_issuance = self.chain.issuance()
        self.expected_generated = 0
        self.offers: list[int] = []
        # A registration with an RF and an exclusive RM offer, and some funds for Zed, to start from.
        bob = 1
        assert self.run(bob, make_upload(ACTORS[bob].account_id, 199, 256, 192).call()).ok
        assert self.run(bob, Call("licensing", "offer_rf", (1, u128(IMG), 0))).ok
        assert self.run(
            bob, Call("licensing", "offer_rm", (1, u128(3 * IMG), "print", "EU", 0, 7_200_000, True))
        ).ok
        assert self.run(bob, Call("balances", "transfer", (ACTORS[4].account_id, u128(100 * IMG)))).ok

    # -- helpers ----------------------------------------------------------------------------------

    def run(self, who: int, call: Call) -> Result | None:
        try:
            result = self.chain.run(ACTORS[who], call)
        except InvalidTransaction as exc:
            # Honest uploads are always valid; only an account that cannot pay the fee is refused.
            assert exc.reason is InvalidReason.CANNOT_PAY, exc
            return None
        for event in result.events:
            if (event.module, event.name) == ("emission", "Minted"):
                self.expected_issuance += event.fields[1]
                self.expected_generated += event.fields[1]
            elif (event.module, event.name) in (("balances", "Burned"), ("balances", "DustLost")):
                self.expected_issuance -= event.fields[1]
            elif (event.module, event.name) == ("licensing", "Offered"):
                self.offers.append(event.fields[0])
        return result

    def registrations(self) -> int:
        return copyright.registration_count(self.chain.get)

    # -- rules ------------------------------------------------------------------------------------

    @rule(sender=actor, receiver=actor, amount=st.sampled_from([1, 10**15, 10**16, IMG, 50 * IMG, 10**30]))
    def transfer(self, sender: int, receiver: int, amount: int) -> None:
        self.run(sender, Call("balances", "transfer", (ACTORS[receiver].account_id, u128(amount))))

    @rule(who=actor, seed=st.integers(0, 4), size=st.sampled_from(SIZES), raw=st.booleans())
    def register(self, who: int, seed: int, size: tuple[int, int], raw: bool) -> None:
        up = make_upload(
            ACTORS[who].account_id, 200 + seed, *size, is_raw=raw, format_code=64 if raw else 1,
            tag=f"{seed} {size} {raw} {who}",
        )  # fmt: skip
        self.run(who, up.call())

    @rule(who=actor, pick=st.integers(0, 50), price=st.sampled_from([0, 1, IMG, 40 * IMG]),
          kind=st.sampled_from(["rf", "rm", "rm-exclusive"]))  # fmt: skip
    def offer(self, who: int, pick: int, price: int, kind: str) -> None:
        count = self.registrations()
        if not count:
            return
        registration_id = 1 + pick % count
        owner = self.chain.registration(registration_id).owner
        seller = next((i for i, a in enumerate(ACTORS) if a.account_id == owner), who) if pick % 4 else who
        if kind == "rf":
            call = Call("licensing", "offer_rf", (registration_id, u128(price), 0))
        else:
            call = Call("licensing", "offer_rm", (registration_id, u128(price), "web", "world", 0, 3_600_000,
                                                  kind == "rm-exclusive"))  # fmt: skip
        self.run(seller, call)

    @rule(who=actor, pick=st.integers(0, 50))
    def purchase(self, who: int, pick: int) -> None:
        offer_id = self.offers[pick % len(self.offers)] if self.offers else 1
        self.run(who, Call("licensing", "purchase", (offer_id,)))

    @rule(who=actor, pick=st.integers(0, 50), text=st.sampled_from(TAGS))
    def tag(self, who: int, pick: int, text: str) -> None:
        self.run(who, Call("copyright", "tag", (1 + pick % max(1, self.registrations()), text)))

    @rule(pick=st.integers(0, 50), to=actor)
    def transfer_ownership(self, pick: int, to: int) -> None:
        count = self.registrations()
        if not count:
            return
        registration_id = 1 + pick % count
        owner = self.chain.registration(registration_id).owner
        who = next(i for i, a in enumerate(ACTORS) if a.account_id == owner)
        self.run(who, Call("copyright", "transfer_ownership", (registration_id, ACTORS[to].account_id)))

    @rule(hours=st.integers(1, 30))
    def advance_time(self, hours: int) -> None:
        self.chain.advance(hours * 3_600_000)

    @rule(remaining=st.sampled_from([SMALL.cap // 2, 5 * IMG, 2 * IMG, IMG + 1, IMG, IMG // 2, 1]))
    def approach_cap(self, remaining: int) -> None:
        """Harness jump: pretend most of the mined supply is out (only ever forward)."""
        target = SMALL.cap - remaining
        if target > self.chain.generated():
            self.expected_generated += target - self.chain.generated()
            self.chain.state[emission.GENERATED.key] = u128(target)

    # -- invariants -------------------------------------------------------------------------------

    @invariant()
    def supply(self) -> None:
        issuance = self.chain.issuance()
        assert self.chain.total_balances() == issuance <= balances.MAX_SUPPLY
        assert issuance == self.expected_issuance

    @invariant()
    def emission_below_cap(self) -> None:
        assert self.chain.generated() == self.expected_generated < SMALL.cap

    @invariant()
    def ownership_index(self) -> None:
        owned: dict[bytes, list[int]] = {}
        for registration_id in range(1, self.registrations() + 1):
            owned.setdefault(self.chain.registration(registration_id).owner, []).append(registration_id)
        for account in ACTORS:
            assert copyright.registrations_of(self.chain.get, account.account_id) == owned.get(
                account.account_id, []
            )
        for offer in (licensing.get_offer(self.chain.get, i) for i in self.offers):
            if offer is not None:  # open offers always belong to the current owner
                assert self.chain.registration(offer.registration_id).owner == offer.seller


CopyrightChain.TestCase.settings = settings(
    max_examples=40,
    stateful_step_count=50,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
TestCopyrightChain = CopyrightChain.TestCase
