"""The finality gadget inside the node: feeds the pure voter (`node.consensus.finality`) with
votes, imported blocks, justifications and clock ticks, and carries out what it answers.

Votes and commits (justifications of newly finalized blocks) travel on the `votes` gossip
topic as `[0, vote, resend]` or `[1, justification, 0]`. Gossip message ids are content hashes,
so a vote re-sent while a round is stuck (for peers that restarted or were cut off) carries a
new `resend` counter, or the network would drop it as already seen. A syncing node gets justifications with the blocks
it downloads and verifies each before finalizing, so finality is never taken on trust.

Before one of our votes leaves the node, the voter's persistent state (its round, our votes in
it, the round's base and the previous round's votes) is written and flushed to disk, even while
a sync batch defers the database's other flushes. A restarted validator resumes from it: it
never signs a second, different vote in a round (an equivocation) and knows the previous round's
estimate, so it can finish the round its peers wait in. A stored state that cannot be read
(damaged, or of a set ahead of the finalized one) is not replaced by a fresh one: the node does
not vote for the rest of that authority set, says so loudly, and only follows finality; the next
set's rounds are ones it cannot have voted in, so it votes again from there. A node whose
finality stalls asks its peers for their catch-up.

The service reads the chain and asks for the rest through the protocols below: `Finalizer` and
`TransactionSubmit` (the node), `VoteNetwork` (the network service). Its catch-up requests run
in the nursery it is given.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Protocol

import lmdb
import trio

from node.codec import DecodeError, decode, encode, expect_bytes, expect_int, expect_list
from node.consensus.finality import (
    Broadcast,
    CatchUp,
    FinalityVoter,
    Finalize,
    Justification,
    Penalize,
    ReportEquivocation,
    RequestCatchUp,
    SignedVote,
    VoterState,
)
from node.core.chain import Chain, NotDescendant
from node.core.network_service import TransactionSubmit
from node.keys import Keypair
from node.p2p.network import RequestFailed, Verdict
from node.runtime import aura, offences
from node.types import Call, Extrinsic, Header

log = logging.getLogger("imagechain.finality")

MESSAGE_VOTE, MESSAGE_COMMIT = 0, 1
TICK_S = 0.1
META_VOTER_STATE = b"finality_voter_state"
CATCH_UP_RETRY_S = 3.0
PENALTY_BAD_VOTE = 50
MAX_VOTE_MESSAGE_BYTES = 512 * 1024
NOT_VOTING_REMINDER_S = 60.0


class ChainAdapter:
    """The `ChainView` the voter of authority set `set_id` needs, over the node's fork-aware chain.

    A set votes on the blocks whose parent state names it: the block that enacts a change (its
    own state names the next set) is the last one the old set may finalize, so chains offered
    to the voter stop there, and the next set takes over once it is final.
    """

    def __init__(self, chain: Chain, set_id: int) -> None:
        self.chain = chain
        self.set_id = set_id

    def _set_of_state(self, block_hash: bytes) -> int:
        return aura.read_set_id(self.chain.state_reader(block_hash))

    def header(self, block_hash: bytes) -> Header | None:
        return self.chain.header(block_hash)

    def is_descendant(self, block_hash: bytes, ancestor_hash: bytes) -> bool:
        return self.chain.is_descendant(block_hash, ancestor_hash)

    def best_containing(self, block_hash: bytes) -> tuple[bytes, int] | None:
        head = self.chain.best_containing(block_hash)
        if head is None:
            return None
        if self._set_of_state(head.hash) > self.set_id:
            # A set change lies on this chain: stop at the block that enacts it.
            while head.hash != block_hash:
                parent = self.chain.header(head.parent_hash)
                if parent is None or self._set_of_state(parent.hash) <= self.set_id:
                    break
                head = parent
        return head.hash, head.number


def now_ms() -> int:
    return int(time.time() * 1000)


class Finalizer(Protocol):
    """Finalize a block; `Node` does, and updates the pool and subscribers with it."""

    def finalize(self, block_hash: bytes, justification: bytes | None = None) -> None: ...


class VoteNetwork(Protocol):
    """What the gadget needs of the network (`NodeNetwork`)."""

    def peer_ids(self) -> list[str]: ...

    def publish_vote(self, encoded: bytes) -> None:
        """Gossip a vote or commit in the background."""
        ...

    async def request_catch_up(self, peer_id: str) -> bytes:
        """The peer's catch-up, b"" if it has none; raises `RequestFailed`."""
        ...

    def report(self, peer_id: str, penalty: int, reason: str) -> None: ...


class FinalityService:
    """Drives the voter of the current authority set; `authority` votes, None only follows."""

    def __init__(
        self,
        chain: Chain,
        *,
        finalizer: Finalizer,
        transactions: TransactionSubmit,
        network: VoteNetwork,
        nursery: trio.Nursery,
        authority: Keypair | None,
        slot_ms: int,
    ) -> None:
        self.chain = chain
        self.finalizer = finalizer
        self.transactions = transactions
        self.network = network
        self._nursery = nursery
        self._authority = authority
        self._slot_ms = slot_ms
        self._peer: str | None = None  # the peer whose message is being handled
        self._resends = 0
        finalized = chain.finalized_header()
        self._last_progress = (finalized.number, time.monotonic())
        # The authority set in which we must not vote: our stored state for it was unreadable.
        self._no_vote_set: int | None = None
        self._no_vote_reason = ""
        self._next_reminder = 0.0
        state = self._load_state(aura.read_set_id(chain.state_reader(finalized.hash)))
        self.voter = self._new_voter(finalized, state)

    def _new_voter(self, finalized: Header, state: VoterState | None) -> FinalityVoter:
        """The voter for the set named by the finalized block's state (see `ChainAdapter`); an
        observer in the set whose stored state was unreadable."""
        chain = self.chain
        finalized_state = chain.state_reader(finalized.hash)
        set_id = aura.read_set_id(finalized_state)
        if state is not None and state.set_id != set_id:
            state = None  # persisted for an older set
        refused = self._authority is not None and set_id == self._no_vote_set
        voter = FinalityVoter(
            voters=aura.read_authorities(finalized_state),
            set_id=set_id,
            genesis_hash=chain.genesis_hash,
            chain=ChainAdapter(chain, set_id),
            last_finalized=(finalized.hash, finalized.number),
            keypair=None if refused else self._authority,
            round_duration_ms=2 * self._slot_ms,
            start_round=state.round if state is not None else 1,
        )
        voter.disabled = set(offences.read_disabled(chain.best_state()))
        self._resume_actions = voter.resume(state, now_ms()) if state is not None else []
        if self._no_vote_set is not None and set_id != self._no_vote_set:
            if voter.voter_index is not None:
                log.warning("🗳  Finality voting resumes with authority set %d (the unusable state was of set %d)",
                            set_id, self._no_vote_set)  # fmt: skip
            self._no_vote_set = None
        return voter

    def _load_state(self, set_id: int) -> VoterState | None:
        """The stored voter state; None if there is none (a new validator) or it is of an older
        set. One that cannot be read makes us refuse to vote in `set_id` (see the module doc)."""
        try:
            raw = self.chain.db.get_meta(META_VOTER_STATE)
        except lmdb.Error as exc:
            self._refuse_to_vote(set_id, f"the database could not read it: {exc}")
            return None
        if raw is None:
            return None
        try:
            state = VoterState.decode(raw)
        except DecodeError as exc:
            self._refuse_to_vote(set_id, f"it does not decode: {exc}")
            return None
        if state.set_id > set_id:
            self._refuse_to_vote(set_id, f"it is of authority set {state.set_id}, ahead of the finalized set {set_id}")
            return None
        return state

    def _refuse_to_vote(self, set_id: int, reason: str) -> None:
        if self._authority is None:
            log.warning("ignoring a stored finality voter state that cannot be used (%s): this node does not vote", reason)
            return
        self._no_vote_set, self._no_vote_reason = set_id, reason
        log.error(
            "🛑 The finality voter state stored in %s cannot be used (%s). This validator will NOT vote "
            "in authority set %d; it follows finality only. Without that state it cannot know which votes "
            "it already signed before it stopped, and signing a different one would be an equivocation "
            "(reported on chain, the validator disabled and its bond lost). It votes again from the next "
            "authority set. To vote sooner, restore this database from a copy taken while the node was "
            "stopped.",
            self.chain.db.path, reason, set_id,
        )  # fmt: skip

    def _save_state(self) -> None:
        """Written and flushed to disk before each of our votes is sent: round, our votes in it,
        its base and the previous round's votes, so a restart resumes without ever signing twice.
        Flushed even inside a sync batch's `deferred_flush`: a vote is only as safe as its record."""
        db = self.chain.db
        with db.write(durable=True) as txn:
            db.put_meta(txn, META_VOTER_STATE, self.voter.persistent_state().encode())

    # -- driving the voter ----------------------------------------------------------------------

    async def run(self) -> None:
        self._handle(self._resume_actions)
        while True:
            self._handle(self.voter.on_tick(now_ms()))
            self._maybe_ask_for_catch_up()
            self._remind_not_voting()
            await trio.sleep(TICK_S)

    def _remind_not_voting(self) -> None:
        """Repeat, now and then, that this validator does not vote: an operator reading only
        the recent log must not miss it."""
        if self._no_vote_set is None or time.monotonic() < self._next_reminder:
            return
        if self._next_reminder:
            log.error("🛑 Still NOT voting in authority set %d: the stored finality voter state cannot be "
                      "used (%s)", self._no_vote_set, self._no_vote_reason)  # fmt: skip
        self._next_reminder = time.monotonic() + NOT_VOTING_REMINDER_S

    def _maybe_ask_for_catch_up(self) -> None:
        """No finality for three rounds: peers may have completed rounds we missed (restart)."""
        finalized = self.chain.finalized_header().number
        now = time.monotonic()
        if finalized != self._last_progress[0]:
            self._last_progress = (finalized, now)
            return
        stalled_for = now - self._last_progress[1]
        if stalled_for < 3 * self.voter.round_duration_ms / 1000:
            return
        self._last_progress = (finalized, now - stalled_for + CATCH_UP_RETRY_S)
        for peer in self.network.peer_ids()[:4]:
            self._nursery.start_soon(self._request_catch_up, peer)

    def on_block_imported(self) -> None:
        self.voter.disabled = set(offences.read_disabled(self.chain.best_state()))
        self._handle(self.voter.on_block_imported(now_ms()))

    def on_vote_gossip(self, data: bytes, peer_id: str) -> Verdict:
        try:
            kind, payload, resend = expect_list(decode(data, MAX_VOTE_MESSAGE_BYTES), 3, "finality message")
            kind = expect_int(kind, 1, "finality message kind")
            expect_int(resend, what="resend counter")
            payload = expect_bytes(payload, what="finality message payload")
            if kind == MESSAGE_VOTE:
                vote = SignedVote.decode(payload)
                actions = self.voter.on_vote(vote, now_ms())
            else:
                actions = self.voter.on_justification(Justification.decode(payload), now_ms())
        except DecodeError as exc:
            self._penalize(peer_id, f"malformed finality message: {exc}")
            return Verdict.REJECT
        self._peer = peer_id
        try:
            rejected = any(isinstance(action, Penalize) for action in actions)
            self._handle(actions)
        finally:
            self._peer = None
        return Verdict.REJECT if rejected else Verdict.ACCEPT

    def on_justification(self, block_hash: bytes, data: bytes, peer_id: str | None) -> None:
        """A justification that came with a synced block: verified by the voter, then applied."""
        try:
            justification = Justification.decode(data)
        except DecodeError as exc:
            if peer_id is not None:
                self._penalize(peer_id, f"malformed justification: {exc}")
            return
        if justification.target_hash != block_hash:
            if peer_id is not None:
                self._penalize(peer_id, "justification for another block")
            return
        self._peer = peer_id
        try:
            self._handle(self.voter.on_justification(justification, now_ms()))
        finally:
            self._peer = None

    def catch_up_response(self) -> bytes:
        catch_up = self.voter.catch_up()
        return b"" if catch_up is None else catch_up.encode()

    # -- actions ----------------------------------------------------------------------------------

    def _handle(self, actions: list[Any]) -> None:
        for action in actions:
            if isinstance(action, Broadcast):
                self._broadcast(action)
            elif isinstance(action, Finalize):
                self._finalize(action)
            elif isinstance(action, ReportEquivocation):
                self._report(action)
            elif isinstance(action, Penalize):
                if self._peer is not None:
                    self._penalize(self._peer, action.reason)
            elif isinstance(action, RequestCatchUp) and self._peer is not None:
                self._nursery.start_soon(self._request_catch_up, self._peer)

    def _broadcast(self, action: Broadcast) -> None:
        vote = action.vote
        if not action.rebroadcast:
            try:
                self._save_state()  # before sending: never sign again in this stage after a restart
            except (lmdb.Error, OSError) as exc:
                # Unrecorded, the vote could be signed differently after a restart: not sent.
                log.error("🛑 finality vote of round %d not sent: its voter state could not be stored: %s",
                          vote.round, exc)  # fmt: skip
                return
        self._resends += 1 if action.rebroadcast else 0
        message = encode([MESSAGE_VOTE, vote.encode(), self._resends if action.rebroadcast else 0])
        self.network.publish_vote(message)

    def _finalize(self, action: Finalize) -> None:
        if action.number <= self.chain.finalized_header().number:
            return
        try:
            self.finalizer.finalize(action.hash, action.justification.encode())
        except (NotDescendant, KeyError) as exc:
            log.error("finality gadget asked to finalize #%d %s: %s", action.number, action.hash.hex(), exc)
            return
        log.debug("finalized #%d by round %d", action.number, action.justification.round)
        self.network.publish_vote(encode([MESSAGE_COMMIT, action.justification.encode(), 0]))
        self._maybe_switch_set()

    def _maybe_switch_set(self) -> None:
        """The finalized block enacted an authority-set change: vote with the new set from it."""
        finalized = self.chain.finalized_header()
        if aura.read_set_id(self.chain.state_reader(finalized.hash)) <= self.voter.set_id:
            return
        self.voter = self._new_voter(finalized, None)
        log.info("🔀 Finality voter set %d from block #%d: %d voters", self.voter.set_id, finalized.number,
                 len(self.voter.voters))
        self._handle(self._resume_actions)

    def _report(self, action: ReportEquivocation) -> None:
        report = Extrinsic(Call("offences", "report_finality_equivocation", (action.proof.encode(),))).encode()
        try:
            self.transactions.submit_extrinsic(report)
            log.warning("🚨 Finality equivocation by %s reported", action.proof.first.voter.hex())
        except Exception as exc:  # noqa: BLE001 - already reported or pool full: nothing to do
            log.debug("finality equivocation report not pooled: %s", exc)

    def _penalize(self, peer_id: str, reason: str) -> None:
        self.network.report(peer_id, PENALTY_BAD_VOTE, reason)

    async def _request_catch_up(self, peer_id: str) -> None:
        try:
            reply = await self.network.request_catch_up(peer_id)
        except RequestFailed:
            return
        if not reply:
            return
        try:
            catch_up = CatchUp.decode(reply)
        except DecodeError as exc:
            self._penalize(peer_id, f"malformed catch-up: {exc}")
            return
        self._peer = peer_id
        try:
            self._handle(self.voter.on_catch_up(catch_up, now_ms()))
        finally:
            self._peer = None
