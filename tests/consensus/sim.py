"""A deterministic in-process network of finality voters, for tests.

Every node has its own block tree (`LocalChain`, the `ChainView` the voter sees) and its own
clock reading; a discrete-event loop delivers blocks, votes, justifications and catch-ups with
seeded random delays and drops, over an optional partition. Blocks are authored Aura-style (slot
s by node s % n), so forks come from late delivery and from Byzantine authors, and different
nodes can prefer different heads of equal length (each breaks ties with its own salt).

Byzantine nodes run an observer voter only to follow rounds, and sign their own votes: two
different votes per stage to two halves of the honest nodes, for heads of conflicting forks
when there are any.

The checks the tests need (safety across all honest nodes, lag, reports) are methods here.
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from node.codec import blake2b_256, encode
from node.consensus.finality import (
    Broadcast,
    CatchUp,
    EquivocationProof,
    FinalityVoter,
    Finalize,
    Justification,
    Penalize,
    ReportEquivocation,
    RequestCatchUp,
    SignedVote,
    Stage,
    Vote,
    VoterState,
    check_equivocation_proof,
    verify_justification,
)
from node.keys import Keypair, Scheme
from node.types import Header, aura_pre_digest

ZERO = b"\x00" * 32
GENESIS = Header(ZERO, 0, blake2b_256(b"sim genesis"), ZERO, ())
GENESIS_HASH = GENESIS.hash


def sim_keypair(index: int) -> Keypair:
    return Keypair.from_seed(Scheme.ED25519, blake2b_256(b"finality-sim-key" + index.to_bytes(4, "big")))


def make_block(parent: Header, slot: int, author: int, variant: int = 0) -> Header:
    state_root = blake2b_256(encode([author, slot, variant, parent.hash]))
    return Header(parent.hash, parent.number + 1, state_root, ZERO, (aura_pre_digest(slot),))


def extend(parent: Header, length: int, variant: int = 0) -> list[Header]:
    """`length` blocks on top of `parent`; different variants give different forks."""
    blocks: list[Header] = []
    for _ in range(length):
        parent = make_block(parent, parent.number + 1, 0, variant)
        blocks.append(parent)
    return blocks


def chain_with(*branches: list[Header]) -> LocalChain:
    """A LocalChain that has imported the given blocks (parents first)."""
    chain = LocalChain(salt=b"test")
    for branch in branches:
        for header in branch:
            chain.import_header(header)
    return chain


# ---------------------------------------------------------------------------------------------
# Block trees
# ---------------------------------------------------------------------------------------------


class BlockTree:
    """Every block any node ever made: the ground truth for safety checks."""

    def __init__(self) -> None:
        self.headers: dict[bytes, Header] = {GENESIS_HASH: GENESIS}

    def add(self, header: Header) -> None:
        self.headers[header.hash] = header

    def is_ancestor(self, ancestor: bytes, block: bytes) -> bool:
        target = self.headers[ancestor]
        current = self.headers[block]
        while current.number > target.number:
            current = self.headers[current.parent_hash]
        return current.hash == ancestor


class LocalChain:
    """One node's view: imported blocks, leaves, fork choice; implements `ChainView`."""

    def __init__(self, salt: bytes) -> None:
        self.salt = salt
        self.known: dict[bytes, Header] = {GENESIS_HASH: GENESIS}
        self.leaves: list[bytes] = [GENESIS_HASH]
        self.finalized: tuple[bytes, int] = (GENESIS_HASH, 0)

    # ChainView
    def header(self, block_hash: bytes) -> Header | None:
        return self.known.get(block_hash)

    def is_descendant(self, block_hash: bytes, ancestor_hash: bytes) -> bool:
        block, ancestor = self.known.get(block_hash), self.known.get(ancestor_hash)
        if block is None or ancestor is None:
            return False
        while block.number > ancestor.number:
            block = self.known[block.parent_hash]
        return block.hash == ancestor_hash

    def best_containing(self, block_hash: bytes) -> tuple[bytes, int] | None:
        header = self.known.get(block_hash)
        if header is None:
            return None
        candidates = [leaf for leaf in self.leaves if self.is_descendant(leaf, block_hash)]
        if not candidates:
            return block_hash, header.number
        best = max(candidates, key=lambda leaf: (self.known[leaf].number, blake2b_256(self.salt + leaf)))
        return best, self.known[best].number

    # node side
    def best(self) -> Header:
        head, _ = self.best_containing(self.finalized[0]) or self.finalized
        return self.known[head]

    def import_header(self, header: Header) -> bool:
        if header.hash in self.known or header.parent_hash not in self.known:
            return False
        self.known[header.hash] = header
        if header.parent_hash in self.leaves:
            self.leaves.remove(header.parent_hash)
        self.leaves.append(header.hash)
        return True

    def finalize(self, block_hash: bytes, number: int) -> None:
        self.finalized = (block_hash, number)
        self.leaves = [leaf for leaf in self.leaves if self.is_descendant(leaf, block_hash)] or [block_hash]


# ---------------------------------------------------------------------------------------------
# Nodes
# ---------------------------------------------------------------------------------------------


@dataclass
class SimNode:
    index: int
    keypair: Keypair | None
    chain: LocalChain
    voter: FinalityVoter
    byzantine: bool = False
    online: bool = True
    finalized_log: list[tuple[int, bytes, int]] = field(default_factory=list)  # (time, hash, number)
    reports: list[EquivocationProof] = field(default_factory=list)
    penalties: list[tuple[int | None, str]] = field(default_factory=list)
    seen: set[Any] = field(default_factory=set)
    orphans: dict[bytes, list[Header]] = field(default_factory=dict)
    lag_samples: list[int] = field(default_factory=list)
    # Byzantine bookkeeping: (round, stage) already equivocated, and when each round was first seen
    byz_done: set[tuple[int, int]] = field(default_factory=set)
    byz_round_seen: dict[int, int] = field(default_factory=dict)
    sent_votes: list[SignedVote] = field(default_factory=list)  # every vote it ever signed
    persisted: bytes | None = None  # `VoterState` blob, written before each vote is sent
    persisted_round: int = 0
    equivocated_at: list[int] = field(default_factory=list)  # Byzantine: times it sent conflicting pairs

    @property
    def finalized_number(self) -> int:
        return self.voter.last_finalized[1]


@dataclass
class SimConfig:
    voters: int = 4
    byzantine: tuple[int, ...] = ()
    observers: int = 0
    slot_ms: int = 1000
    round_ms: int = 2000
    tick_ms: int = 50
    delay_ms: tuple[int, int] = (10, 120)
    drop: float = 0.0
    late_block: float = 0.0  # chance a block reaches a node late (makes forks)
    late_block_ms: int = 1500
    fork: float = 0.0  # chance an honest author builds beside the head (as if it missed the last block)
    fanout: int = 3  # gossip: peers each node relays a new vote to
    # Byzantine voters per (round, stage): "equivocate" (different votes to two halves),
    # "conflict" (one vote for a head off the honest choice), or "mixed" (either, or silence)
    byzantine_mode: str = "equivocate"
    verify_justifications: bool = True
    seed: int = 0


class Sim:
    def __init__(self, config: SimConfig) -> None:
        self.config = config
        self.rng = random.Random(config.seed)
        self.now = 0
        self.queue: list[tuple[int, int, Callable[..., None], tuple[Any, ...]]] = []
        self.seq = 0
        self.tree = BlockTree()
        self.groups: list[set[int]] | None = None  # a partition, or None
        self.deferred_blocks: dict[int, list[Header]] = {}
        self.keys = [sim_keypair(i) for i in range(config.voters)]
        self.voter_keys = [kp.public.data for kp in self.keys]
        self.nodes: list[SimNode] = []
        total = config.voters + config.observers
        for index in range(total):
            is_voter = index < config.voters
            byzantine = index in config.byzantine
            chain = LocalChain(salt=index.to_bytes(4, "big") + config.seed.to_bytes(8, "big"))
            keypair = self.keys[index] if is_voter else None
            voter = FinalityVoter(
                self.voter_keys,
                0,
                GENESIS_HASH,
                chain,
                (GENESIS_HASH, 0),
                keypair=None if byzantine else keypair,
                round_duration_ms=config.round_ms,
            )
            self.nodes.append(SimNode(index, keypair, chain, voter, byzantine=byzantine))
        for node in self.nodes:
            self.at(self.rng.randrange(config.tick_ms), self._tick, node.index)
        self.at(config.slot_ms, self._slot, 1)

    # -- event loop -----------------------------------------------------------------------------

    def at(self, time: int, fn: Callable[..., None], *args: Any) -> None:
        self.seq += 1
        heapq.heappush(self.queue, (time, self.seq, fn, args))

    def run_until(self, end: int) -> None:
        while self.queue and self.queue[0][0] <= end:
            time, _, fn, args = heapq.heappop(self.queue)
            self.now = time
            fn(*args)
        self.now = end

    @property
    def honest(self) -> list[SimNode]:
        return [node for node in self.nodes if not node.byzantine]

    @property
    def honest_voters(self) -> list[SimNode]:
        return [node for node in self.honest if node.index < self.config.voters]

    # -- scenario controls ----------------------------------------------------------------------

    def set_online(self, index: int, online: bool) -> None:
        node = self.nodes[index]
        node.online = online
        if online:
            self._sync_blocks(index)

    def restart(self, index: int, replay: bool = False) -> None:
        """Replace a node's voter by a new one, as a node process restart does: from its finalized
        block and the `VoterState` it persisted before its last vote, given to `resume`; or, with
        `replay`, by starting in the persisted round and replaying the persisted catch-up and own
        votes through `on_catch_up` and `on_vote` (no persisted round base)."""
        node = self.nodes[index]
        state = VoterState.decode(node.persisted) if node.persisted is not None else None
        voter = FinalityVoter(
            self.voter_keys,
            0,
            GENESIS_HASH,
            node.chain,
            node.chain.finalized,
            keypair=node.keypair,
            round_duration_ms=self.config.round_ms,
            start_round=state.round if replay and state is not None else 1,
        )
        node.voter = voter
        if state is None:
            return
        if not replay:
            self._handle(node, voter.resume(state, self.now))
            return
        actions: list[Any] = []
        if state.last_completed is not None:
            actions += voter.on_catch_up(state.last_completed, self.now)
        for vote in state.own_votes:
            actions += voter.on_vote(vote, self.now)
        self._handle(node, actions)

    def partition(self, *groups: list[int]) -> None:
        self.groups = [set(group) for group in groups]

    def heal(self) -> None:
        self.groups = None
        for node in self.nodes:
            self._sync_blocks(node.index)

    def connected(self, a: int, b: int) -> bool:
        if not (self.nodes[a].online and self.nodes[b].online):
            return False
        if self.groups is None:
            return True
        return any(a in group and b in group for group in self.groups)

    # -- transport ------------------------------------------------------------------------------

    def _delay(self) -> int:
        low, high = self.config.delay_ms
        return self.rng.randint(low, high)

    def _send(self, src: int, dst: int, fn: Callable[..., None], *args: Any, lossy: bool = True) -> None:
        if src == dst or not self.connected(src, dst):
            return
        if lossy and self.rng.random() < self.config.drop:
            return
        self.at(self.now + self._delay(), self._deliver, src, dst, fn, args)

    def _deliver(self, src: int, dst: int, fn: Callable[..., None], args: tuple[Any, ...]) -> None:
        if self.connected(src, dst):  # the link may have gone down in flight
            fn(*args)

    def _send_block(self, src: int, dst: int, header: Header, extra_ms: int = 0) -> None:
        if src == dst:
            return
        if not self.connected(src, dst):
            self.deferred_blocks.setdefault(dst, []).append(header)  # sync will fetch it later
            return
        self.at(self.now + self._delay() + extra_ms, self._deliver_block, dst, header)

    def _deliver_block(self, dst: int, header: Header) -> None:
        node = self.nodes[dst]
        if not node.online:
            self.deferred_blocks.setdefault(dst, []).append(header)
            return
        self._import(node, [header])

    def _sync_blocks(self, index: int) -> None:
        """What block sync does after a partition heals or a node comes back: fetch what others have."""
        node = self.nodes[index]
        if not node.online:
            return
        headers = self.deferred_blocks.pop(index, [])
        for other in self.nodes:
            if other.index != index and self.connected(index, other.index):
                headers += [other.chain.known[h] for h in other.chain.leaves]
                headers += [other.chain.known[h] for h in self._ancestors_unknown_to(node, other)]
        self._import(node, headers)

    def _ancestors_unknown_to(self, node: SimNode, other: SimNode) -> list[bytes]:
        missing: list[bytes] = []
        for leaf in other.chain.leaves:
            current = other.chain.known[leaf]
            while current.hash not in node.chain.known and current.number > 0:
                missing.append(current.hash)
                current = other.chain.known[current.parent_hash]
        return missing

    def _import(self, node: SimNode, headers: list[Header]) -> None:
        imported = False
        queue = sorted(headers, key=lambda h: h.number)
        while queue:
            header = queue.pop(0)
            if header.hash in node.chain.known:
                continue
            if header.parent_hash not in node.chain.known:
                node.orphans.setdefault(header.parent_hash, []).append(header)
                continue
            node.chain.import_header(header)
            imported = True
            if not node.byzantine:  # announce new blocks to peers, as block gossip does
                for other in self.nodes:
                    if other.index != node.index and header.hash not in other.chain.known:
                        self._send_block(node.index, other.index, header)
            queue = node.orphans.pop(header.hash, []) + queue
        if imported:
            self._handle(node, node.voter.on_block_imported(self.now))

    # -- block production -----------------------------------------------------------------------

    def _slot(self, slot: int) -> None:
        self.at(self.now + self.config.slot_ms, self._slot, slot + 1)
        author = slot % self.config.voters
        node = self.nodes[author]
        if not node.online:
            return
        parent = node.chain.best()
        if node.byzantine and self.rng.random() < 0.7:
            # Equivocating author: two children of the same parent, one to each half.
            blocks = [make_block(parent, slot, author, variant) for variant in (0, 1)]
            for block in blocks:
                self.tree.add(block)
                node.chain.import_header(block)
            others = [n.index for n in self.nodes if n.index != author]
            self.rng.shuffle(others)
            half = len(others) // 2
            for position, dst in enumerate(others):
                self._send_block(author, dst, blocks[0] if position < half else blocks[1])
            return
        if parent.number > 0 and self.rng.random() < self.config.fork:
            parent = node.chain.known[parent.parent_hash]
        block = make_block(parent, slot, author)
        self.tree.add(block)
        self._import(node, [block])
        for other in self.nodes:
            late = self.config.late_block_ms if self.rng.random() < self.config.late_block else 0
            self._send_block(author, other.index, block, late)

    # -- votes, justifications, catch-ups ------------------------------------------------------

    def _tick(self, index: int) -> None:
        self.at(self.now + self.config.tick_ms, self._tick, index)
        node = self.nodes[index]
        if not node.online:
            return
        self._handle(node, node.voter.on_tick(self.now))
        if node.byzantine:
            self._byzantine_votes(node)
        if not node.byzantine and node.index < self.config.voters:
            node.lag_samples.append(node.chain.best().number - node.finalized_number)

    def _gossip_vote(self, src: int, vote: SignedVote, peers: list[int] | None = None) -> None:
        targets = peers if peers is not None else [n.index for n in self.nodes]
        for dst in targets:
            self._send(src, dst, self._receive_vote, dst, vote, src)

    def _receive_vote(self, dst: int, vote: SignedVote, src: int) -> None:
        # Every copy goes to the voter (it drops duplicates before any signature check); the
        # seen-set only decides whether to relay, as a gossip layer's message cache would.
        node = self.nodes[dst]
        actions = node.voter.on_vote(vote, self.now)
        self._handle(node, actions, sender=src)
        if vote in node.seen:
            return
        node.seen.add(vote)
        if not node.byzantine and not any(isinstance(a, Penalize) for a in actions):
            peers = [n.index for n in self.nodes if n.index not in (dst, src)]
            self.rng.shuffle(peers)
            self._gossip_vote(dst, vote, peers[: self.config.fanout])

    def _receive_justification(self, dst: int, justification: Justification, src: int) -> None:
        node = self.nodes[dst]
        key = ("j", justification.round, justification.target_hash)
        if key in node.seen:
            return
        node.seen.add(key)
        self._handle(node, node.voter.on_justification(justification, self.now), sender=src)

    def _serve_catch_up(self, server: int, client: int) -> None:
        node = self.nodes[server]
        catch_up = node.voter.catch_up()
        if catch_up is not None:
            self._send(server, client, self._receive_catch_up, client, catch_up, server, lossy=False)
        for vote in node.voter.round_votes(node.voter.round):
            self._send(server, client, self._receive_vote, client, vote, server)

    def _receive_catch_up(self, dst: int, catch_up: CatchUp, src: int) -> None:
        node = self.nodes[dst]
        self._handle(node, node.voter.on_catch_up(catch_up, self.now), sender=src)

    def _handle(self, node: SimNode, actions: list[Any], sender: int | None = None) -> None:
        if node.keypair is not None and not node.byzantine and node.voter.round != node.persisted_round:
            node.persisted_round = node.voter.round  # persist on round change (a faster restart)
            node.persisted = node.voter.persistent_state().encode()
        for action in actions:
            if isinstance(action, Broadcast):
                assert not node.byzantine, "an observer voter must never vote"
                if not action.rebroadcast:
                    vote = action.vote
                    assert not any((v.round, v.stage) == (vote.round, vote.stage) for v in node.sent_votes), (
                        f"node {node.index} signed twice in round {vote.round} {vote.stage.name}"
                    )
                    node.sent_votes.append(vote)
                    node.persisted = node.voter.persistent_state().encode()
                else:
                    assert action.vote in node.sent_votes, "a rebroadcast must re-send a vote already sent"
                node.seen.add(action.vote)
                self._gossip_vote(node.index, action.vote)
            elif isinstance(action, Finalize):
                self._on_finalize(node, action)
            elif isinstance(action, ReportEquivocation):
                node.reports.append(action.proof)
            elif isinstance(action, Penalize):
                node.penalties.append((sender, action.reason))
            elif isinstance(action, RequestCatchUp):
                if sender is not None:
                    self._send(node.index, sender, self._serve_catch_up, sender, node.index, lossy=False)
            else:  # pragma: no cover - a new action type the sim does not know
                raise AssertionError(f"unknown action {action!r}")

    def _on_finalize(self, node: SimNode, action: Finalize) -> None:
        previous = node.finalized_log[-1] if node.finalized_log else (0, GENESIS_HASH, 0)
        assert action.number > previous[2], "finality went backwards"
        assert node.chain.is_descendant(action.hash, previous[1]), (
            "a node finalized a block off its own chain"
        )
        if self.config.verify_justifications and not node.byzantine:
            verify_justification(action.justification, self.voter_keys, 0, GENESIS_HASH)
        node.finalized_log.append((self.now, action.hash, action.number))
        node.chain.finalize(action.hash, action.number)
        key = ("j", action.justification.round, action.justification.target_hash)
        node.seen.add(key)
        for other in self.nodes:
            self._send(
                node.index,
                other.index,
                self._receive_justification,
                other.index,
                action.justification,
                node.index,
            )

    # -- Byzantine behaviour --------------------------------------------------------------------

    def _byzantine_votes(self, node: SimNode) -> None:
        """Equivocate in every round the node follows: different votes to different halves."""
        assert node.keypair is not None
        voter = node.voter
        round_number = voter.round
        start = node.byz_round_seen.setdefault(round_number, self.now)
        honest = [n.index for n in self.honest]
        for stage, due in (
            (Stage.PREVOTE, start + self.config.round_ms // 4),
            (Stage.PRECOMMIT, start + self.config.round_ms // 2),
        ):
            if (round_number, stage) in node.byz_done or self.now < due:
                continue
            node.byz_done.add((round_number, stage))
            first, second = self._conflicting_targets(node, stage)
            rng = random.Random(f"{self.config.seed}:{node.index}:{round_number}:{int(stage)}")
            mode = self.config.byzantine_mode
            if mode == "mixed":
                mode = rng.choice(["equivocate", "equivocate", "conflict", "silent"])
            if mode == "silent":
                continue
            order = honest[:]
            rng.shuffle(order)
            half = len(order) // 2
            plan = (
                [(second, order)] if mode == "conflict" else [(first, order[:half]), (second, order[half:])]
            )
            if len(plan) == 2 and first != second:
                node.equivocated_at.append(self.now)
            for target, peers in plan:
                vote = SignedVote.sign(node.keypair, GENESIS_HASH, 0, round_number, stage, Vote(*target))
                for dst in peers:
                    self._send(node.index, dst, self._receive_vote, dst, vote, node.index)

    def _conflicting_targets(
        self, node: SimNode, stage: Stage
    ) -> tuple[tuple[bytes, int], tuple[bytes, int]]:
        chain = node.chain
        heads = sorted(chain.leaves, key=lambda leaf: (-chain.known[leaf].number, leaf))
        best = chain.best()
        first = (best.hash, best.number)
        if stage is Stage.PRECOMMIT:
            ghost = (voter_round := node.voter.round_state(node.voter.round)) and voter_round.prevote_ghost
            if ghost:
                first = ghost
        others = [
            leaf
            for leaf in heads
            if not chain.is_descendant(leaf, first[0]) and not chain.is_descendant(first[0], leaf)
        ]
        if others:
            second_hash = others[0]
        elif best.number > 0:
            second_hash = (
                best.parent_hash
                if best.parent_hash != first[0]
                else chain.known[best.parent_hash].parent_hash
            )
            if best.number < 2:
                second_hash = GENESIS_HASH
        else:
            second_hash = GENESIS_HASH
        second = (second_hash, chain.known[second_hash].number)
        if second == first:
            second = (GENESIS_HASH, 0) if first != (GENESIS_HASH, 0) else first
        return first, second

    # -- checks ---------------------------------------------------------------------------------

    def assert_safety(self) -> None:
        """Every block any honest node finalized lies on one chain."""
        finalized = sorted(
            {(number, block) for node in self.honest for _, block, number in node.finalized_log}
        )
        for (_, lower), (_, higher) in zip(finalized, finalized[1:], strict=False):
            assert self.tree.is_ancestor(lower, higher), "two honest nodes finalized conflicting blocks"

    def assert_reports_valid(self) -> set[bytes]:
        """Every equivocation report verifies and accuses a Byzantine voter; returns the accused."""
        accused: set[bytes] = set()
        byzantine = {self.voter_keys[i] for i in self.config.byzantine}
        for node in self.honest:
            for proof in node.reports:
                offender = check_equivocation_proof(proof, self.voter_keys, GENESIS_HASH)
                assert offender in byzantine, "an honest voter was accused of equivocation"
                accused.add(offender)
        return accused

    def min_finalized(self, nodes: list[SimNode] | None = None) -> int:
        return min(node.finalized_number for node in (nodes if nodes is not None else self.honest))

    def best_number(self) -> int:
        return max(node.chain.best().number for node in self.honest)
