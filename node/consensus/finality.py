"""GRANDPA-style finality gadget as a pure state machine (PROTOCOL section 6, issue 4 items 5-6).

The voter is fed events and answers with actions; it never does I/O, never reads a clock (every
handler takes `now_ms`) and never draws randomness, so a node, a test or a simulation drives it the
same way and two runs with the same inputs produce the same outputs.

    events                                   actions
    on_vote(SignedVote, now)          ->     Broadcast(SignedVote)          our vote, to gossip
    on_block_imported(now)            ->     Finalize(hash, number, Justification)
    on_tick(now)                      ->     ReportEquivocation(EquivocationProof)
    on_justification(Justification)   ->     Penalize(reason)               the sender sent junk
    on_catch_up(CatchUp, now)         ->     RequestCatchUp(round)          the sender is ahead

Protocol (the GRANDPA paper and the finality-grandpa crate), per round r, for a voter that knows
the estimate E(r-1) of the previous round:

1. prevote, at start + round_duration/2 or as soon as round r is completable, for the head of the
   best chain containing E(r-1);
2. precommit, once the prevote GHOST g(r) is known and descends from E(r-1), at start +
   round_duration, or as soon as round r is completable, or as soon as every voter has prevoted,
   for g(r);
3. move to round r+1 once round r is completable, we have precommitted, and E(r-1) is finalized
   (by round r-1 or r). Past rounds keep counting late votes, so their estimates and finality keep
   improving; any round whose precommit GHOST rises above the last finalized block finalizes it,
   with a justification built from that round's precommits.

Safety across rounds rests on E(r-1): no block above a completable round's estimate can ever be
finalized in that round, and honest voters only vote for chains containing it. A voter never
signs two different votes for one round and stage, and never votes in a round whose predecessor
it has not seen completable (a restarted voter abstains until it has).

A voter that fell behind catches up GRANDPA's way: a completable round R (ours or ahead of it)
makes us jump to round R+1, without casting the votes left in the rounds skipped, if we have
reason to believe honest voters have left R: R came in a `CatchUp` (a peer only sends rounds it
completed), or more than f voters (so at least one honest one) already vote in R+1. Future
rounds seen in gossip (within FUTURE_ROUNDS) without that evidence do not make us jump: we finish
our round and vote in R, because peers still in R may need our votes there to leave it.

Memory is bounded: rounds outside [current - PAST_ROUNDS, current + FUTURE_ROUNDS] (plus one
catch-up round and the round after it) are dropped, and each round holds at most two votes per
voter and stage, plus one pending justification.

What the node around it does (the contract the tests' simulation follows):

* gossip: hand every vote to `on_vote`, including copies already seen (duplicates cost no
  signature check); forward it unless the answer holds a `Penalize`. Send `Broadcast` votes; a
  `rebroadcast=True` one must reach peers even if they saw it before;
* persist `persistent_state().encode()` before sending each `Broadcast` that is not a
  rebroadcast (and, for a faster restart, whenever `round` changes); after a restart build the
  voter as usual and call `resume(VoterState.decode(blob), now)` before anything else: it
  re-enters the persisted round knowing E(r-1) and the votes it cast, so it never signs twice;
* `Finalize`: finalize the block, store the justification with it, gossip the justification
  (GRANDPA's commit message); justifications from sync or gossip go to `on_justification`;
* `RequestCatchUp`: ask the peer that sent the message being handled for `catch_up()` plus
  `round_votes(its round)`; deliver the former to `on_catch_up` and the latter to `on_vote`;
* `ReportEquivocation`: submit `proof.encode()` as `offences.report_finality_equivocation`;
  when the runtime disables an offender, add it to `disabled`;
* call `on_tick` every ~50 ms, and `on_block_imported` after imports;
* `ChainView.best_containing` should stop at a block that enacts an authority-set change, so that
  block gets its justification from the set that finalizes it (Substrate's voting limit); the
  next set runs a new voter with `set_id + 1`, `start_round=1`, based on that block.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import Any

from node.consensus.finality_messages import (
    MAX_ANCESTRY_HEADERS,
    CatchUp,
    EquivocationProof,
    InvalidEquivocation,
    InvalidEquivocationProof,
    InvalidJustification,
    Justification,
    SignedVote,
    Stage,
    Vote,
    VoterState,
    check_equivocation_proof,
    threshold,
    verify_justification,
    vote_signing_payload,
    voter_table,
)
from node.consensus.finality_round import AddResult, BlockId, ChainView, Round
from node.keys import Keypair, Scheme, verify_batch

__all__ = [
    "Action",
    "BlockId",
    "Broadcast",
    "CatchUp",
    "ChainView",
    "EquivocationProof",
    "Finalize",
    "FinalityVoter",
    "InvalidEquivocation",
    "InvalidEquivocationProof",
    "InvalidJustification",
    "Justification",
    "Penalize",
    "ReportEquivocation",
    "RequestCatchUp",
    "Round",
    "SignedVote",
    "Stage",
    "Step",
    "Vote",
    "VoterState",
    "check_equivocation_proof",
    "threshold",
    "verify_justification",
    "vote_signing_payload",
]

# ---------------------------------------------------------------------------------------------
# Constants
# ---------------------------------------------------------------------------------------------

# Round timer: prevote at half, precommit at the full duration (GRANDPA's 2T and 4T, T the gossip
# time). Two default slots (PROTOCOL 6: 2,000 ms); with honest, online voters a round ends as
# soon as every vote is in, so finality usually trails authoring by one or two blocks.
DEFAULT_ROUND_DURATION_MS = 4_000

# Rounds kept below the current one: the previous round gives E(r-1) and, like the one before,
# may still finalize from late precommits. GRANDPA keeps past rounds until their estimate is
# final; a fixed window keeps memory bounded whatever the network does.
PAST_ROUNDS = 2
# Rounds kept above the current one: votes of peers slightly ahead are kept rather than lost, and
# such a round turning completable is how a voter that fell a little behind catches up.
FUTURE_ROUNDS = 2

# A round running this long (in thousandths of a round duration) counts as stalled: votes from
# later rounds then ask for a catch-up, and a peer's first vote in it gets ours re-sent. A
# healthy round ends within one duration (the precommit timer), plus gossip time.
STALLED_PERMILLE = 1500

# How far below its base a round may be rebuilt to take in a catch-up's votes (see `_rebase`).
MAX_REBASE_DEPTH = MAX_ANCESTRY_HEADERS

# Each handler call advances at most this many state transitions (finalizations, votes,
# round changes); every transition is progress, so this only guards against a bug looping.
MAX_STEPS_PER_EVENT = 64


# ---------------------------------------------------------------------------------------------
# Actions
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Broadcast:
    """Gossip this vote of ours.

    `rebroadcast` marks a periodic re-send while the round is not moving (lost messages, peers
    that restarted or were partitioned): the gossip layer must send it even to peers that have
    seen it before (Substrate's PeriodicRebroadcast intent), or it is pointless.
    """

    vote: SignedVote
    rebroadcast: bool = False


@dataclass(frozen=True)
class Finalize:
    """Finalize `hash` (and its ancestors); store `justification` with it and gossip it as a commit."""

    hash: bytes
    number: int
    justification: Justification


@dataclass(frozen=True)
class ReportEquivocation:
    """Submit `proof` on chain (an unsigned `offences.report_finality_equivocation`)."""

    proof: EquivocationProof


@dataclass(frozen=True)
class Penalize:
    """The peer that delivered the message being handled sent invalid data: lower its score."""

    reason: str
    voter: bytes | None = None


@dataclass(frozen=True)
class RequestCatchUp:
    """The peer that delivered the message being handled is at `round`, ahead of us while we are
    stalled: ask it for `FinalityVoter.catch_up()` and hand the answer to `on_catch_up`."""

    round: int


Action = Broadcast | Finalize | ReportEquivocation | Penalize | RequestCatchUp


class Step(IntEnum):
    """Where the voter is in the current round."""

    START = 0
    PREVOTED = 1  # or past the prevote step without voting (observer, abstaining)
    PRECOMMITTED = 2


# ---------------------------------------------------------------------------------------------
# The voter
# ---------------------------------------------------------------------------------------------


class FinalityVoter:
    """One node's finality state machine for one voter set.

    `keypair=None` (or a key outside the set) makes an observer: it tracks rounds and
    finalizes from others' votes and justifications, but never votes.

    A new set starts at `start_round=1`, with its first block (`last_finalized`) as E(0). A node
    that restarts must never sign again in a round it voted in, and needs E(r-1) to vote in
    round r: it persists `persistent_state()` before sending each vote and calls `resume` on
    the new voter. A voter started at `start_round > 1` without that state abstains until it
    has seen a round complete (then votes from the next one), which is safe but, if its votes
    are needed for that round to complete, not live.
    """

    def __init__(
        self,
        voters: list[bytes],
        set_id: int,
        genesis_hash: bytes,
        chain: ChainView,
        last_finalized: BlockId,
        keypair: Keypair | None = None,
        round_duration_ms: int = DEFAULT_ROUND_DURATION_MS,
        start_round: int = 1,
        rebroadcast_ms: int | None = None,
    ) -> None:
        if start_round < 1:
            raise ValueError("rounds are numbered from 1")
        if round_duration_ms < 2:
            raise ValueError("round_duration_ms must be at least 2")
        self.voters = list(voters)
        self._index, self._keys = voter_table(self.voters)
        self.set_id = set_id
        self.genesis_hash = genesis_hash
        self.chain = chain
        self.threshold = threshold(len(self.voters))
        self.round_duration_ms = round_duration_ms
        self.prevote_delay_ms = round_duration_ms // 2
        self.precommit_delay_ms = round_duration_ms
        self.rebroadcast_ms = rebroadcast_ms if rebroadcast_ms is not None else round_duration_ms
        self._keypair: Keypair | None = None
        self._me: int | None = None
        if keypair is not None and keypair.scheme is Scheme.ED25519 and keypair.public.data in self._index:
            self._keypair = keypair
            self._me = self._index[keypair.public.data]
        self.disabled: set[bytes] = set()
        self.last_finalized: BlockId = (bytes(last_finalized[0]), int(last_finalized[1]))
        # The base of a new round r must be a block every honest vote of round r descends from:
        # anything finalized in a round before r is (GRANDPA's estimate lemma). Finality from our
        # own rounds always qualifies for the rounds we are in (finality-grandpa's
        # last_finalized_in_rounds); finality from a justification of round j qualifies for r > j.
        self._finalized_in_rounds: BlockId = self.last_finalized
        self._last_finalized_round = 0  # the round whose precommits finalized `last_finalized`
        self.start_round = start_round
        self._genesis_estimate: BlockId | None = self.last_finalized if start_round == 1 else None
        self.round = start_round
        self.step = Step.START
        self._round_start_ms: int | None = None
        self._last_broadcast_ms = 0
        self._next_catch_up_request_ms = 0
        self._catch_up_round: int | None = None
        self._pending_justification: Justification | None = None
        self._rounds: dict[int, Round] = {start_round: self._new_round(start_round)}
        # Valid justifications for blocks off our finalized chain: only possible if a third or
        # more of the voters are faulty. Counted for monitoring; never acted upon.
        self.conflicting_finality = 0

    # -- properties -------------------------------------------------------------------------------

    @property
    def voter_index(self) -> int | None:
        """Our index in the set, or None for an observer."""
        return self._me

    @property
    def is_voting(self) -> bool:
        return self._me is not None and self.voters[self._me] not in self.disabled

    def round_state(self, round_number: int) -> Round | None:
        """The vote accounting of a tracked round (read-only use: tests, RPC, the informant)."""
        return self._rounds.get(round_number)

    def tracked_rounds(self) -> list[int]:
        return sorted(self._rounds)

    def round_votes(self, round_number: int) -> list[SignedVote]:
        """Every vote we hold for a round: what to send a peer that just joined that round."""
        rnd = self._rounds.get(round_number)
        if rnd is None:
            return []
        return rnd.votes(Stage.PREVOTE) + rnd.votes(Stage.PRECOMMIT)

    def persistent_state(self) -> VoterState:
        """What to persist (before sending a vote) so a restart can `resume`."""
        rnd = self._rounds[self.round]
        own = [] if self._me is None else [v for stage in Stage for v in rnd.votes_of(stage, self._me)]
        last = self.catch_up()
        bases = [rnd.base] + ([self._rounds[last.round].base] if last is not None else [])
        base = min(bases, key=lambda block: block[1])  # finalized blocks: the lower one is the ancestor
        return VoterState(self.set_id, self.round, base[0], base[1], tuple(own), last)

    def resume(self, state: VoterState, now_ms: int) -> list[Action]:
        """Continue from a persisted `VoterState`. Call it on a new voter before any other event:
        the voter re-enters `state.round` knowing E(r-1) and the votes it already cast there."""
        if state.set_id != self.set_id:
            raise ValueError(f"state of set {state.set_id} given to a voter of set {self.set_id}")
        self._start_clock(now_ms)
        # Our finalized block may come from a later round than the persisted ones, whose votes
        # need not descend from it: rebuild those rounds on the persisted base.
        self._finalized_in_rounds = (state.base_hash, state.base_number)
        self._last_finalized_round = max(self._last_finalized_round, state.round)
        self._rounds.clear()
        self._advance(state.round, now_ms)
        actions: list[Action] = []
        if state.last_completed is not None:
            actions += self.on_catch_up(state.last_completed, now_ms)
        for vote in state.own_votes:
            actions += self.on_vote(vote, now_ms)
        return actions

    def catch_up(self) -> CatchUp | None:
        """The votes of our latest completed round, for a peer that is behind (and to persist)."""
        for number in sorted(self._rounds, reverse=True):
            rnd = self._rounds[number]
            if number < self.round and rnd.ever_completable:
                return CatchUp(
                    self.set_id, number, tuple(rnd.votes(Stage.PREVOTE)), tuple(rnd.votes(Stage.PRECOMMIT))
                )
        return None

    # -- events -----------------------------------------------------------------------------------

    def on_vote(self, vote: SignedVote, now_ms: int) -> list[Action]:
        """A vote from gossip (or one of our own, persisted before a restart)."""
        self._start_clock(now_ms)
        actions = self._receive(vote, now_ms, verified=False)
        actions += self._progress(now_ms)
        return actions

    def on_block_imported(self, now_ms: int) -> list[Action]:
        """New blocks: count the votes and justification that were waiting for them."""
        self._start_clock(now_ms)
        actions: list[Action] = []
        for number in sorted(self._rounds):
            self._rounds[number].import_pending(self.chain)
        pending = self._pending_justification
        if pending is not None and self.chain.header(pending.target_hash) is not None:
            self._pending_justification = None
            actions += self._apply_justification(pending)
        actions += self._progress(now_ms)
        return actions

    def on_tick(self, now_ms: int) -> list[Action]:
        """Timers: the round's prevote and precommit deadlines, and re-sending our votes when stalled."""
        self._start_clock(now_ms)
        actions = self._progress(now_ms)
        # Gossip is lossy and peers restart: a round that is not moving gets our votes again.
        return actions + self._rebroadcast(now_ms, self.rebroadcast_ms)

    def on_justification(self, justification: Justification, now_ms: int) -> list[Action]:
        """A justification from sync or commit gossip: verify it, learn its votes, finalize."""
        self._start_clock(now_ms)
        j = justification
        if j.set_id != self.set_id:
            return []
        if j.target_number <= self.last_finalized[1] and j.round not in self._rounds:
            return []  # nothing to learn from it
        try:
            verify_justification(j, self.voters, self.set_id, self.genesis_hash)
        except InvalidJustification as exc:
            return [Penalize(f"invalid justification: {exc.reason}")]
        actions: list[Action] = []
        if j.round in self._rounds:
            for vote in j.precommits:
                actions += self._receive(vote, now_ms, verified=True)
        elif j.round > self.round + FUTURE_ROUNDS:
            actions += self._request_catch_up(j.round, now_ms)
        header = self.chain.header(j.target_hash)
        if header is None:
            pending = self._pending_justification
            if pending is None or j.target_number > pending.target_number:
                self._pending_justification = j
        elif header.number != j.target_number:
            actions.append(Penalize("justification names a block with another number"))
        else:
            actions += self._apply_justification(j)
        actions += self._progress(now_ms)
        return actions

    def on_catch_up(self, catch_up: CatchUp, now_ms: int) -> list[Action]:
        """All votes of a round a peer completed: if it is ahead of ours and completable, join the
        round after it (GRANDPA catch-up). Also how a restarted voter restores E(r-1)."""
        self._start_clock(now_ms)
        if catch_up.set_id != self.set_id or catch_up.round < self.round - 1 or catch_up.round < 1:
            return []
        problem = self._check_catch_up(catch_up)
        if problem is not None:
            return [Penalize(f"invalid catch-up: {problem}")]
        if catch_up.round >= self.round + FUTURE_ROUNDS and catch_up.round != self._catch_up_round:
            # One catch-up round (and the round after it, for the evidence to jump) beyond the window.
            for stale in (self._catch_up_round, self._catch_up_next()):
                if stale is not None and stale > self.round + FUTURE_ROUNDS:
                    self._rounds.pop(stale, None)
            self._catch_up_round = catch_up.round
        if catch_up.round not in self._rounds:
            self._rounds[catch_up.round] = self._new_round(catch_up.round)
        self._rebase(catch_up.round, (*catch_up.prevotes, *catch_up.precommits))
        if catch_up.round >= self.round:
            self._rounds[catch_up.round].vouched = True  # the sender has left it
        actions: list[Action] = []
        for vote in (*catch_up.prevotes, *catch_up.precommits):
            actions += self._receive(vote, now_ms, verified=True)
        actions += self._progress(now_ms)
        return actions

    # -- receiving votes --------------------------------------------------------------------------

    def _receive(self, vote: SignedVote, now_ms: int, verified: bool) -> list[Action]:
        if vote.set_id != self.set_id:
            return []  # another set: the node routes it, or it is stale
        voter = self._index.get(vote.voter)
        if voter is None:
            return [Penalize("vote by a key outside the voter set", vote.voter)]
        if vote.round < 1:
            return [Penalize("vote for round 0", vote.voter)]
        if vote.voter in self.disabled:
            return []
        rnd = self._rounds.get(vote.round)
        if rnd is None:
            if vote.round < self.round - PAST_ROUNDS:
                return []  # too old to matter
            if vote.round > self.round + FUTURE_ROUNDS and vote.round != self._catch_up_next():
                if not verified and not self._signature_ok(voter, vote):
                    return [Penalize("bad vote signature", vote.voter)]
                return self._request_catch_up(vote.round, now_ms)
            rnd = self._rounds[vote.round] = self._new_round(vote.round)
        if rnd.knows(voter, vote):
            return self._note_peer_round(vote.round, now_ms)  # a re-sent vote still says where its sender is
        if not verified and not self._signature_ok(voter, vote):
            return [Penalize("bad vote signature", vote.voter)]
        actions: list[Action] = []
        added = rnd.add(voter, vote)
        if added is AddResult.EQUIVOCATION:
            first, second = rnd.votes_of(vote.stage, voter)
            actions.append(
                ReportEquivocation(EquivocationProof(self.set_id, vote.round, vote.stage, first, second))
            )
        elif (
            added is AddResult.NEW
            and vote.round == self.round
            and voter != self._me
            and self._stalled(now_ms)
        ):
            # A voter shows up in our stuck round (back online, restarted): it missed our votes.
            actions += self._rebroadcast(now_ms, self.prevote_delay_ms)
        rnd.import_pending(self.chain)
        return actions + self._note_peer_round(vote.round, now_ms)

    def _signature_ok(self, voter: int, vote: SignedVote) -> bool:
        return self._keys[voter].verify(vote.payload(self.genesis_hash), vote.signature)

    def _check_catch_up(self, catch_up: CatchUp) -> str | None:
        voters = len(self.voters)
        if len(catch_up.prevotes) > 2 * voters or len(catch_up.precommits) > 2 * voters:
            return "more than two votes per voter"
        for stage, votes in ((Stage.PREVOTE, catch_up.prevotes), (Stage.PRECOMMIT, catch_up.precommits)):
            for vote in votes:
                if vote.stage != stage or vote.round != catch_up.round or vote.set_id != self.set_id:
                    return "a vote of another stage, round or set"
                if vote.voter not in self._index:
                    return "a vote by a key outside the voter set"
            if len({vote.voter for vote in votes}) < self.threshold:
                return f"fewer than {self.threshold} voters in a stage"
        votes = (*catch_up.prevotes, *catch_up.precommits)
        checks = [
            (self._keys[self._index[v.voter]], v.payload(self.genesis_hash), v.signature) for v in votes
        ]
        if not all(verify_batch(checks)):
            return "a vote signature does not verify"
        return None

    def _note_peer_round(self, round_number: int, now_ms: int) -> list[Action]:
        """A peer votes in a later round while ours is stuck: we probably missed votes it has."""
        if round_number > self.round and self._stalled(now_ms):
            return self._request_catch_up(round_number, now_ms)
        return []

    def _request_catch_up(self, round_number: int, now_ms: int) -> list[Action]:
        if now_ms < self._next_catch_up_request_ms:
            return []
        self._next_catch_up_request_ms = now_ms + self.round_duration_ms
        return [RequestCatchUp(round_number)]

    def _stalled(self, now_ms: int) -> bool:
        start = self._round_start_ms if self._round_start_ms is not None else now_ms
        return (now_ms - start) * 1000 >= STALLED_PERMILLE * self.round_duration_ms

    def _rebroadcast(self, now_ms: int, min_interval_ms: int) -> list[Action]:
        if now_ms - self._last_broadcast_ms < min_interval_ms:
            return []
        self._last_broadcast_ms = now_ms
        return [Broadcast(vote, rebroadcast=True) for vote in self._own_votes()]

    # -- the state machine ------------------------------------------------------------------------

    def _progress(self, now_ms: int) -> list[Action]:
        """Apply every transition that the current state allows, in a fixed order."""
        actions: list[Action] = []
        for _ in range(MAX_STEPS_PER_EVENT):
            finalize = self._finalize_from_rounds()
            if finalize is not None:
                actions.append(finalize)
                continue
            if self._jump_to_completable_round(now_ms):
                continue
            if not self._step_current_round(now_ms, actions):
                break
        return actions

    def _step_current_round(self, now_ms: int, actions: list[Action]) -> bool:
        """One GRANDPA voting step of the current round; True if the state changed."""
        rnd = self._rounds[self.round]
        start = self._round_start_ms if self._round_start_ms is not None else now_ms
        prior = self._prior_estimate()
        if self.step is Step.START:
            if now_ms < start + self.prevote_delay_ms and not rnd.completable:
                return False
            if prior is not None and self._may_vote(rnd, Stage.PREVOTE):
                target = self.chain.best_containing(prior[0])
                if target is not None:
                    actions.append(self._cast(rnd, Stage.PREVOTE, target, now_ms))
            self.step = Step.PREVOTED
            return True
        if self.step is Step.PREVOTED:
            ghost = rnd.prevote_ghost
            if ghost is None:
                return False
            if prior is not None and not self.chain.is_descendant(ghost[0], prior[0]):
                return False  # wait until the prevote GHOST includes E(r-1)
            due = (
                now_ms >= start + self.precommit_delay_ms
                or rnd.completable
                # every prevote is in: waiting longer cannot change the GHOST (a latency shortcut)
                or rnd.voted_count(Stage.PREVOTE) == len(self.voters)
            )
            if not due:
                return False
            if prior is not None and self._may_vote(rnd, Stage.PRECOMMIT):
                actions.append(self._cast(rnd, Stage.PRECOMMIT, ghost, now_ms))
            self.step = Step.PRECOMMITTED
            return True
        if rnd.completable and self._prior_estimate_finalized(rnd):
            self._advance(self.round + 1, now_ms)
            return True
        return False

    def _prior_estimate(self) -> BlockId | None:
        """E(r-1) if we know it: from a round we saw completable, or the set's start for round 1."""
        prior = self._rounds.get(self.round - 1)
        if prior is not None and prior.ever_completable and prior.estimate is not None:
            return prior.estimate
        if self.round == self.start_round and self._genesis_estimate is not None:
            return self._genesis_estimate
        return None

    def _prior_estimate_finalized(self, rnd: Round) -> bool:
        """finality-grandpa's last rule for leaving a round: E(r-1) must be final by now."""
        prior = self._rounds.get(self.round - 1)
        estimate = prior.estimate if prior is not None else None
        if estimate is None:
            return True
        finalized = [self._finalized_in_rounds, prior.finalized if prior else None, rnd.finalized]
        return any(block is not None and estimate[1] <= block[1] for block in finalized)

    def _may_vote(self, rnd: Round, stage: Stage) -> bool:
        return self.is_voting and self._me is not None and not rnd.votes_of(stage, self._me)

    def _cast(self, rnd: Round, stage: Stage, target: BlockId, now_ms: int) -> Broadcast:
        assert self._keypair is not None and self._me is not None
        vote = SignedVote.sign(
            self._keypair, self.genesis_hash, self.set_id, rnd.number, stage, Vote(*target)
        )
        rnd.add(self._me, vote)
        rnd.import_pending(self.chain)
        self._last_broadcast_ms = now_ms
        return Broadcast(vote)

    def _jump_to_completable_round(self, now_ms: int) -> bool:
        """Catch up: a completable round R, ours or ahead of it, gives the estimate to vote on in
        R+1, once honest voters have left R (a catch-up of R, or more than f voters voting in R+1).

        R may be our own round: if we cannot finish it (say a vote we never received keeps our
        E(R-1) off its prevote GHOST's chain, so we cannot precommit), waiting in it is useless
        once the others have left, and skipping our remaining votes is always safe.
        """
        faulty = len(self.voters) - self.threshold
        for number in sorted(self._rounds, reverse=True):
            if number < self.round:
                return False
            rnd, after = self._rounds[number], self._rounds.get(number + 1)
            left = rnd.vouched or (after is not None and after.participants() > faulty)
            if rnd.completable and left:
                self._advance(number + 1, now_ms)
                return True
        return False

    def _catch_up_next(self) -> int | None:
        """Votes of the round after a catch-up round are kept: they are the evidence to jump."""
        return self._catch_up_round + 1 if self._catch_up_round is not None else None

    def _advance(self, round_number: int, now_ms: int) -> None:
        self.round = round_number
        self.step = Step.START
        self._round_start_ms = now_ms
        self._last_broadcast_ms = now_ms
        if round_number not in self._rounds:
            self._rounds[round_number] = self._new_round(round_number)
        if self._catch_up_round is not None and self._catch_up_round < round_number + FUTURE_ROUNDS:
            self._catch_up_round = None
        low, high = round_number - PAST_ROUNDS, round_number + FUTURE_ROUNDS
        keep = (self._catch_up_round, self._catch_up_next())
        for number in sorted(self._rounds):
            if number < low or (number > high and number not in keep):
                del self._rounds[number]

    def _rebase(self, round_number: int, votes: tuple[SignedVote, ...]) -> None:
        """Lower a round's base to the lowest vote target below it on its chain, if any.

        A base must be a block every honest vote of the round descends from. After a restart the
        voter only knows its finalized block, which a later round may have finalized, so the
        restored rounds can sit too high and never complete; a catch-up's votes (threshold
        signed) show how low they go. Votes off the chain are ignored, and so are targets more
        than MAX_REBASE_DEPTH below the base (bounding the graph).
        """
        rnd = self._rounds[round_number]
        base_hash, base_number = rnd.base
        lowest: BlockId | None = None
        for vote in (*votes, *rnd.votes(Stage.PREVOTE), *rnd.votes(Stage.PRECOMMIT)):
            target = (vote.vote.target_hash, vote.vote.target_number)
            if not base_number - MAX_REBASE_DEPTH <= target[1] < base_number:
                continue
            if (lowest is None or target[1] < lowest[1]) and self.chain.is_descendant(base_hash, target[0]):
                header = self.chain.header(target[0])
                if header is not None and header.number == target[1]:
                    lowest = target
        if lowest is not None:
            rebuilt = rnd.rebased(lowest)
            rebuilt.import_pending(self.chain)
            self._rounds[round_number] = rebuilt

    def _new_round(self, round_number: int) -> Round:
        """Track a round, based as high as is safe: a lower base only costs graph size."""
        base = self.last_finalized if self._last_finalized_round < round_number else self._finalized_in_rounds
        return Round(round_number, len(self.voters), base)

    # -- finality ---------------------------------------------------------------------------------

    def _finalize_from_rounds(self) -> Finalize | None:
        """Finalize the highest precommit GHOST of any tracked round above the last finalized block."""
        candidates: list[tuple[int, int, BlockId]] = []
        for number in sorted(self._rounds):
            block = self._rounds[number].finalized
            if block is None:
                continue
            if block[1] > self._finalized_in_rounds[1] and self.chain.is_descendant(
                block[0], self._finalized_in_rounds[0]
            ):
                self._finalized_in_rounds = block
            if block[1] > self.last_finalized[1]:
                candidates.append((block[1], number, block))
        for _, number, block in sorted(candidates, reverse=True):
            if not self.chain.is_descendant(block[0], self.last_finalized[0]):
                continue
            justification = self._justify(self._rounds[number], block)
            if justification is None:
                continue
            self.last_finalized, self._last_finalized_round = block, number
            return Finalize(block[0], block[1], justification)
        return None

    def _justify(self, rnd: Round, block: BlockId) -> Justification | None:
        votes, path = rnd.precommit_support(block, MAX_ANCESTRY_HEADERS)
        if len({vote.voter for vote in votes}) < self.threshold:
            return None
        ancestry: list[bytes] = []
        for block_hash in path:
            header = self.chain.header(block_hash)
            if header is None:
                return None
            ancestry.append(header.encode())
        return Justification(rnd.number, self.set_id, block[0], block[1], tuple(votes), tuple(ancestry))

    def _apply_justification(self, j: Justification) -> list[Action]:
        if j.target_number <= self.last_finalized[1]:
            return []
        if not self.chain.is_descendant(j.target_hash, self.last_finalized[0]):
            self.conflicting_finality += 1
            return []
        self.last_finalized, self._last_finalized_round = (j.target_hash, j.target_number), j.round
        return [Finalize(j.target_hash, j.target_number, j)]

    # -- helpers ----------------------------------------------------------------------------------

    def _start_clock(self, now_ms: int) -> None:
        """The first event starts the first round's timers (the constructor has no clock)."""
        if self._round_start_ms is None:
            self._round_start_ms = now_ms
            self._last_broadcast_ms = now_ms

    def _own_votes(self) -> list[SignedVote]:
        if self._me is None:
            return []
        votes: list[SignedVote] = []
        for number in (self.round - 1, self.round):
            rnd = self._rounds.get(number)
            if rnd is not None:
                for stage in Stage:
                    votes += rnd.votes_of(stage, self._me)
        return votes

    def summary(self) -> dict[str, Any]:
        """A plain snapshot for logs, RPC and the informant."""
        rnd = self._rounds[self.round]
        return {
            "set_id": self.set_id,
            "round": self.round,
            "step": self.step.name.lower(),
            "finalized": (self.last_finalized[0].hex(), self.last_finalized[1]),
            "prevotes": rnd.voted_count(Stage.PREVOTE),
            "precommits": rnd.voted_count(Stage.PRECOMMIT),
            "threshold": self.threshold,
            "voters": len(self.voters),
            "tracked_rounds": self.tracked_rounds(),
        }
