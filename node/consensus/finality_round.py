"""One finality round's vote accounting: the vote graph, the GHOSTs, the estimate, completability.

A pure data structure (finality-grandpa's `Round` and `VoteGraph`): it is fed signature-checked
votes and answers the questions the voter's state machine asks. It never signs, never reads a
clock and never decides when to vote.

Definitions (GRANDPA paper, section 3), for one stage's votes in this round:

* a voter *supports* block B if its single vote is for B or a descendant of B; a voter with two
  different votes (an equivocator) supports every block, but counts once;
* GHOST = the highest block with at least `threshold` supporters (unique while fewer than a
  third equivocate);
* the prevote GHOST is what honest voters precommit; the precommit GHOST is the highest block
  this round finalizes;
* a block is *possible* if the precommits still to come (plus the equivocations still tolerated)
  could give it `threshold` supporters; the estimate is the highest possible block on the chain
  of the prevote GHOST, and the round is *completable* once no block above the estimate is
  possible. Round r+1 builds on round r's estimate, which is what carries safety across rounds.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from typing import Protocol

from node.consensus.finality_messages import SignedVote, Stage, Vote, threshold
from node.types import Header

BlockId = tuple[bytes, int]


class ChainView(Protocol):
    """What the finality gadget needs from the node's fork-aware chain (implemented by the node)."""

    def header(self, block_hash: bytes) -> Header | None:
        """The header of an imported block, or None if the block is unknown (not yet imported)."""
        ...

    def is_descendant(self, block_hash: bytes, ancestor_hash: bytes) -> bool:
        """True if `block_hash` is `ancestor_hash` or one of its descendants."""
        ...

    def best_containing(self, block_hash: bytes) -> tuple[bytes, int] | None:
        """(hash, number) of the head of the best chain that contains `block_hash`."""
        ...


class AddResult(Enum):
    NEW = "new"  # first vote of this voter in this stage
    DUPLICATE = "duplicate"  # the same vote again
    REDUNDANT = "redundant"  # a third different vote: the voter already counts for everything
    EQUIVOCATION = "equivocation"  # a second different vote


@dataclass
class _Node:
    """A block in the vote graph: a vote target or an ancestor of one, down to the round base."""

    number: int
    parent: bytes | None
    children: list[bytes] = field(default_factory=list)
    # Per stage, a bitmask of the voters whose single vote is this block or a descendant.
    support: list[int] = field(default_factory=lambda: [0, 0])


class Round:
    """The votes of one round and what follows from them."""

    def __init__(self, number: int, voter_count: int, base: BlockId) -> None:
        self.number = number
        self.voter_count = voter_count
        self.threshold = threshold(voter_count)
        self.base = base
        self._graph: dict[bytes, _Node] = {base[0]: _Node(base[1], None)}
        # voter index -> the distinct votes received (at most two), per stage, in arrival order
        self._votes: tuple[dict[int, list[SignedVote]], dict[int, list[SignedVote]]] = ({}, {})
        self._voted = [0, 0]  # voters whose vote counts as cast (imported single, or equivocator)
        self._equivocators = [0, 0]
        self._pending: dict[tuple[int, int], SignedVote] = {}  # (stage, voter) -> vote awaiting its block
        self._dirty = True
        self._prevote_ghost: BlockId | None = None
        self._finalized: BlockId | None = None
        self._estimate: BlockId | None = None
        self._completable = False
        self._ever_completable = False
        self.vouched = False  # a peer sent it as a catch-up: a round it has completed and left

    # -- feeding votes ----------------------------------------------------------------------------

    def knows(self, voter: int, vote: SignedVote) -> bool:
        """True if adding `vote` could change nothing (a duplicate, or the voter already equivocated)."""
        existing = self._votes[vote.stage].get(voter)
        return bool(existing) and (len(existing) >= 2 or any(v.vote == vote.vote for v in existing))

    def add(self, voter: int, vote: SignedVote) -> AddResult:
        """Record a signature-checked vote; its block is looked up later by `import_pending`."""
        stage = int(vote.stage)
        existing = self._votes[stage].setdefault(voter, [])
        if any(v.vote == vote.vote for v in existing):
            return AddResult.DUPLICATE
        if len(existing) >= 2:
            return AddResult.REDUNDANT
        existing.append(vote)
        if len(existing) == 1:
            self._pending[(stage, voter)] = vote
            return AddResult.NEW
        # GRANDPA: mark the equivocator, who now supports everything; the first vote stays
        # counted where it was (the bitmask union counts the voter once either way).
        bit = 1 << voter
        self._equivocators[stage] |= bit
        self._voted[stage] |= bit
        self._pending.pop((stage, voter), None)
        self._dirty = True
        return AddResult.EQUIVOCATION

    def import_pending(self, chain: ChainView) -> bool:
        """Count the votes whose target blocks have been imported since; True if any changed."""
        changed = False
        for key in sorted(self._pending):
            stage, voter = key
            vote = self._pending[key]
            outcome = self._resolve(chain, vote.vote)
            if outcome is None:
                continue
            del self._pending[key]
            bit = 1 << voter
            self._voted[stage] |= bit
            if outcome:
                self._add_support(stage, bit, vote.vote.target_hash)
            changed = True
        if changed:
            self._dirty = True
        return changed

    def _resolve(self, chain: ChainView, vote: Vote) -> bool | None:
        """Insert the vote's target into the graph: None if unknown, False if it supports nothing.

        A vote for a block that is not a descendant of the base (or whose number does not match
        the block) has been cast, so it counts as a vote, but it supports no block of the graph:
        exactly how a justification verifier would count it.
        """
        base_hash, base_number = self.base
        node = self._graph.get(vote.target_hash)
        if node is not None:
            return node.number == vote.target_number
        header = chain.header(vote.target_hash)
        if header is None:
            return None
        if header.number != vote.target_number or header.number <= base_number:
            return False
        path: list[tuple[bytes, Header]] = []
        current_hash, current = vote.target_hash, header
        while True:
            path.append((current_hash, current))
            parent = self._graph.get(current.parent_hash)
            if parent is not None:
                if parent.number != current.number - 1:
                    return False
                break
            if current.number - 1 <= base_number:
                return False
            parent_header = chain.header(current.parent_hash)
            if parent_header is None or parent_header.number != current.number - 1:
                return False
            current_hash, current = current.parent_hash, parent_header
        for block_hash, block in reversed(path):
            self._graph[block_hash] = _Node(block.number, block.parent_hash)
            self._graph[block.parent_hash].children.append(block_hash)
        return True

    def _add_support(self, stage: int, bit: int, block_hash: bytes) -> None:
        current: bytes | None = block_hash
        while current is not None:
            node = self._graph[current]
            node.support[stage] |= bit
            current = node.parent if current != self.base[0] else None

    def rebased(self, base: BlockId) -> Round:
        """The same votes on another base: with a lower base the accounting is as exact and covers
        more blocks (every result at or above the old base is unchanged)."""
        fresh = Round(self.number, self.voter_count, base)
        fresh.vouched = self.vouched
        for stage in Stage:
            for voter in sorted(self._votes[stage]):
                for vote in self._votes[stage][voter]:
                    fresh.add(voter, vote)
        return fresh

    # -- reading votes ----------------------------------------------------------------------------

    def votes_of(self, stage: Stage, voter: int) -> list[SignedVote]:
        return list(self._votes[stage].get(voter, ()))

    def votes(self, stage: Stage) -> list[SignedVote]:
        """Every distinct vote received in `stage`, by voter index, in arrival order."""
        table = self._votes[stage]
        return [vote for voter in sorted(table) for vote in table[voter]]

    def voted_count(self, stage: Stage) -> int:
        return self._voted[stage].bit_count()

    def equivocators(self, stage: Stage) -> list[int]:
        mask = self._equivocators[stage]
        return [voter for voter in range(self.voter_count) if mask >> voter & 1]

    def participants(self) -> int:
        """Voters with any signature-checked vote in this round (block known or not)."""
        return len(self._votes[Stage.PREVOTE].keys() | self._votes[Stage.PRECOMMIT].keys())

    def pending_count(self) -> int:
        return len(self._pending)

    # -- derived state ----------------------------------------------------------------------------

    @property
    def prevote_ghost(self) -> BlockId | None:
        self._refresh()
        return self._prevote_ghost

    @property
    def finalized(self) -> BlockId | None:
        """The precommit GHOST: the highest block this round's precommits make final."""
        self._refresh()
        return self._finalized

    @property
    def estimate(self) -> BlockId | None:
        self._refresh()
        return self._estimate

    @property
    def completable(self) -> bool:
        self._refresh()
        return self._completable

    @property
    def ever_completable(self) -> bool:
        """Completable at some point: what the next round may build on (GRANDPA starts round r+1
        once r is completable, then follows r's live estimate)."""
        self._refresh()
        return self._ever_completable

    def _weight(self, node: _Node, stage: int) -> int:
        return (node.support[stage] | self._equivocators[stage]).bit_count()

    def _refresh(self) -> None:
        """Recompute GHOSTs, estimate and completability (finality-grandpa's `Round::update`)."""
        if not self._dirty:
            return
        self._dirty = False
        t, n = self.threshold, self.voter_count
        prevoted = self._voted[Stage.PREVOTE].bit_count()
        precommitted = self._voted[Stage.PRECOMMIT].bit_count()
        self._prevote_ghost = self._ghost(Stage.PREVOTE) if prevoted >= t else None
        self._finalized = self._ghost(Stage.PRECOMMIT) if precommitted >= t else None
        self._estimate, self._completable = None, False
        ghost = self._prevote_ghost
        if ghost is None:
            return
        if precommitted < t:
            # Until threshold precommits are in, any block could still get them.
            self._estimate = ghost
            return
        # Equivocations still to come can only be from voters already seen, and at most as many
        # as the threshold tolerates in total; unseen voters are assumed to vote for the block.
        additional_equivocations = max(0, (n - t) - self._equivocators[Stage.PRECOMMIT].bit_count())
        remaining = n - precommitted

        def possible(node: _Node) -> bool:
            weight = self._weight(node, Stage.PRECOMMIT)
            return weight + remaining + min(precommitted - weight, additional_equivocations) >= t

        self._estimate = self._find_ancestor(ghost[0], possible)
        if self._estimate is None:
            return
        self._completable = (
            self._estimate[0] != ghost[0] or self._descend(ghost[0], possible, Stage.PRECOMMIT) == ghost[0]
        )
        self._ever_completable = self._ever_completable or self._completable

    def _ghost(self, stage: int) -> BlockId | None:
        base = self._graph[self.base[0]]
        if self._weight(base, stage) < self.threshold:
            return None
        head = self._descend(self.base[0], lambda node: self._weight(node, stage) >= self.threshold, stage)
        return head, self._graph[head].number

    def _descend(self, start: bytes, accept: Callable[[_Node], bool], stage: int) -> bytes:
        """Follow accepted children upwards; ties (only possible with many equivocators) go to the
        heavier child, then the lower hash, so every node picks the same block."""
        current = start
        while True:
            children = [child for child in self._graph[current].children if accept(self._graph[child])]
            if not children:
                return current
            current = min(children, key=lambda child: (-self._weight(self._graph[child], stage), child))

    def _find_ancestor(self, start: bytes, accept: Callable[[_Node], bool]) -> BlockId | None:
        current: bytes | None = start
        while current is not None:
            node = self._graph[current]
            if accept(node):
                return current, node.number
            current = node.parent if current != self.base[0] else None
        return None

    # -- justification material -------------------------------------------------------------------

    def precommit_support(self, target: BlockId, max_headers: int) -> tuple[list[SignedVote], list[bytes]]:
        """Precommits that justify `target`, and the blocks linking them to it.

        Equivocators' votes go in as pairs (they count for everything, no ancestry needed);
        single votes go in if they descend from the target, lowest first, as long as their
        path keeps the ancestry within `max_headers`.
        """
        target_hash, target_number = target
        table = self._votes[Stage.PRECOMMIT]
        equivocators = self._equivocators[Stage.PRECOMMIT]
        chosen: list[SignedVote] = []
        singles: list[tuple[int, bytes, int, list[bytes]]] = []
        for voter in sorted(table):
            votes = table[voter]
            if equivocators >> voter & 1:
                chosen.extend(votes)
                continue
            if (Stage.PRECOMMIT, voter) in self._pending or not votes:
                continue
            vote = votes[0]
            node_hash = vote.vote.target_hash
            if node_hash not in self._graph:
                continue
            path: list[bytes] = []
            while self._graph[node_hash].number > target_number:
                path.append(node_hash)
                parent = self._graph[node_hash].parent
                if parent is None:
                    break
                node_hash = parent
            if node_hash == target_hash:
                singles.append((vote.vote.target_number, vote.vote.target_hash, voter, path))
        ancestry: set[bytes] = set()
        for _, _, voter, path in sorted(singles):
            extra = set(path) - ancestry
            if len(ancestry) + len(extra) > max_headers:
                continue
            ancestry |= extra
            chosen.append(table[voter][0])
        chosen.sort(key=lambda vote: (vote.voter, vote.vote.target_number, vote.vote.target_hash))
        ordered = sorted(ancestry, key=lambda block: (self._graph[block].number, block))
        return chosen, ordered
