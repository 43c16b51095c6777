"""The transaction pool: validated transactions waiting for a block.

Each transaction is validated by the runtime's own rules (`Runtime.validate_transaction`)
against the best state before it is admitted. Per sender, transactions are ordered by nonce:
those whose nonces run on without a gap from the account's nonce are *ready*, the rest wait in
the *future* queue until the gap is filled. Block building takes ready transactions by tip (then
by arrival), always in nonce order per sender. After each block the pool drops what was
included, what went stale (nonce used) and what expired, and promotes future transactions.

Nothing here can be filled for free (Substrate's pool is the model,
`shared/design/notes-substrate-patterns.md`):

* the two queues have their own limits (count and bytes); the future queue is small
  (`max_future`, a tenth of the ready one) and each sender may park only `max_future_per_sender`
  transactions in it, at most `max_per_sender` nonces ahead of its account;
* a future transaction that has not become ready within `future_lifetime_blocks` is dropped
  (Substrate relies on longevity alone; an explicit limit keeps nonce-gap spam from lingering);
* when the ready queue is full, a transaction with a higher tip evicts the lowest-tipped one
  that nothing depends on (the last of its sender's run); otherwise it is refused. When the
  future queue is full, its oldest transaction makes room;
* what was evicted, included or found invalid is banned for `ban_seconds`, so a peer cannot
  churn the same bytes through validation again;
* validating a transaction whose call is expensive to check (an image registration's rendition,
  about a millisecond) draws on a per-source budget (`expensive_per_second`, a token bucket per
  gossip peer), so one peer cannot make the node verify renditions for free;
* only ready transactions are gossiped; `take_promoted` hands the node the ones that became
  ready later, to announce then.

Every rejection has its own reason (`PoolRejected.reason`).
"""

from __future__ import annotations

import heapq
import itertools
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from node.codec import DecodeError
from node.runtime import system
from node.runtime.executive import InvalidTransaction, ValidTransaction, decode_extrinsic_cached
from node.runtime.runtime import RUNTIME
from node.runtime.support import PURE_HOST, Host, StateGet
from node.types import extrinsic_hash

Listener = Callable[[bytes, str, bytes | None], None]

# A call of at least this weight (1 weight ~ 1 ns) is expensive to validate: it draws on the
# source's budget (`copyright.register`, 5,000,000, checks a 64 KiB rendition).
EXPENSIVE_WEIGHT = 1_000_000


class PoolRejected(Exception):
    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}{': ' + detail if detail else ''}")
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class PoolLimits:
    """The pool's bounds; the defaults are Substrate's (`--pool-limit`, `--pool-kbytes`)."""

    max_transactions: int = 8192  # ready queue
    max_bytes: int = 20 * 1024 * 1024
    max_future: int = 819  # a tenth of the ready queue, as Substrate's CLI sets it
    max_future_bytes: int = 2 * 1024 * 1024
    max_per_sender: int = 1024  # pooled transactions of one sender; also how far ahead a nonce may be
    max_future_per_sender: int = 16
    future_lifetime_blocks: int = 64
    ban_seconds: float = 1800.0
    expensive_per_second: float = 20.0  # per gossip peer
    expensive_burst: int = 50


@dataclass
class PooledTransaction:
    hash: bytes
    encoded: bytes
    validity: ValidTransaction
    arrival: int
    admitted_at: int  # best block number when admitted (the future queue's clock)

    @property
    def sender(self) -> bytes:
        return self.validity.sender

    @property
    def nonce(self) -> int:
        return self.validity.nonce

    def outranks(self, other: PooledTransaction) -> bool:
        """Priority is the tip; among equal tips the earlier arrival ranks higher."""
        return (self.validity.tip, -self.arrival) > (other.validity.tip, -other.arrival)


@dataclass
class _Sender:
    account_nonce: int
    by_nonce: dict[int, PooledTransaction] = field(default_factory=dict)

    def ready_run(self) -> Iterator[PooledTransaction]:
        """Transactions whose nonces follow the account nonce without a gap."""
        nonce = self.account_nonce
        while nonce in self.by_nonce:
            yield self.by_nonce[nonce]
            nonce += 1

    def ready_end(self) -> int:
        """The first nonce past the ready run: a transaction with it would be ready."""
        nonce = self.account_nonce
        while nonce in self.by_nonce:
            nonce += 1
        return nonce


@dataclass
class _Bucket:
    """A token bucket: `rate` tokens a second up to `burst`."""

    tokens: float
    updated: float


class TxPool:
    def __init__(self, genesis_hash: bytes, limits: PoolLimits | None = None, host: Host = PURE_HOST) -> None:
        self.genesis_hash = genesis_hash
        self.limits = limits or PoolLimits()
        self.host = host  # the runtime's host: the node's memo of registration checks
        self._by_hash: dict[bytes, PooledTransaction] = {}
        self._senders: dict[bytes, _Sender] = {}
        self._ready: set[bytes] = set()  # hashes of ready transactions (membership only)
        self._ready_bytes = 0
        self._future_bytes = 0
        self._arrivals = itertools.count()
        self._banned: dict[bytes, float] = {}  # hash -> monotonic time the ban ends
        self._budgets: dict[str, _Bucket] = {}
        self._promoted: list[PooledTransaction] = []
        self.listeners: list[Listener] = []
        self.clock: Callable[[], float] = time.monotonic

    # -- queries --------------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._by_hash)

    def __contains__(self, ext_hash: bytes) -> bool:
        return ext_hash in self._by_hash

    def counts(self) -> tuple[int, int]:
        """(ready, future)."""
        return len(self._ready), len(self._by_hash) - len(self._ready)

    def is_ready(self, ext_hash: bytes) -> bool:
        return ext_hash in self._ready

    def pending(self) -> list[bytes]:
        return [tx.encoded for tx in sorted(self._by_hash.values(), key=lambda t: t.arrival)]

    def next_nonce(self, account_id: bytes, state_nonce: int) -> int:
        """The nonce a wallet should use next: past the sender's ready transactions."""
        sender = self._senders.get(account_id)
        if sender is None:
            return state_nonce
        nonce = max(state_nonce, sender.account_nonce)
        while nonce in sender.by_nonce:
            nonce += 1
        return nonce

    def ready(self) -> Iterator[PooledTransaction]:
        """Ready transactions, best tip first, nonce order kept within each sender."""
        heap: list[tuple[int, int, bytes, int]] = []
        for account, sender in self._senders.items():
            head = sender.by_nonce.get(sender.account_nonce)
            if head is not None:
                heapq.heappush(heap, (-head.validity.tip, head.arrival, account, head.nonce))
        while heap:
            _, _, account, nonce = heapq.heappop(heap)
            sender = self._senders[account]
            tx = sender.by_nonce.get(nonce)
            if tx is None:
                continue
            yield tx
            following = sender.by_nonce.get(nonce + 1)
            if following is not None:
                heapq.heappush(heap, (-following.validity.tip, following.arrival, account, following.nonce))

    def take_promoted(self) -> list[bytes]:
        """Encoded transactions that became ready since the last call (the node gossips them)."""
        promoted = [tx.encoded for tx in self._promoted if tx.hash in self._ready]
        self._promoted.clear()
        return promoted

    # -- admission ------------------------------------------------------------------------------

    def submit(
        self,
        encoded: bytes,
        state: StateGet,
        best_number: int,
        best_hash: bytes,
        signature_ok: bool | None = None,
        source: str | None = None,
    ) -> bytes:
        """Validate and admit; returns the extrinsic hash or raises PoolRejected.

        `source` names the gossip peer a transaction came from (None: this node's RPC, whose own
        limits apply): its budget pays for expensive validations.
        """
        ext_hash = extrinsic_hash(encoded)
        if ext_hash in self._by_hash:
            raise PoolRejected("AlreadyImported", "transaction is already in the pool")
        now = self.clock()
        if self._banned.get(ext_hash, 0.0) > now:
            raise PoolRejected("TemporarilyBanned", "the transaction was recently dropped or included")
        if source is not None and self._is_expensive(encoded):
            self._spend_budget(source, now)
        try:
            validity = RUNTIME.validate_transaction(
                state, self.genesis_hash, encoded, best_number, best_hash, signature_ok, self.host
            )
        except InvalidTransaction as exc:
            raise PoolRejected(exc.reason.value, exc.detail) from exc
        tx = PooledTransaction(ext_hash, encoded, validity, next(self._arrivals), best_number)
        self._admit(tx)
        return ext_hash

    def readmit(self, encoded: bytes, state: StateGet, best_number: int, best_hash: bytes) -> bytes:
        """Put back a transaction of a retracted block (a reorg): its inclusion ban no longer holds."""
        self._banned.pop(extrinsic_hash(encoded), None)
        return self.submit(encoded, state, best_number, best_hash)

    def _admit(self, tx: PooledTransaction) -> None:
        validity, limits = tx.validity, self.limits
        sender = self._senders.get(validity.sender) or _Sender(validity.account_nonce)
        sender.account_nonce = max(sender.account_nonce, validity.account_nonce)
        existing = sender.by_nonce.get(validity.nonce)
        if existing is not None and validity.tip <= existing.validity.tip:
            raise PoolRejected("TooLowPriority", "a transaction with this nonce and an equal or higher tip is pooled")
        if existing is None and len(sender.by_nonce) >= limits.max_per_sender:
            raise PoolRejected("AccountLimit", f"sender has {len(sender.by_nonce)} pooled transactions")
        if validity.nonce >= sender.account_nonce + limits.max_per_sender:
            raise PoolRejected("FutureNonce", f"nonce {validity.nonce} is too far ahead")
        will_be_ready = existing.hash in self._ready if existing is not None else validity.nonce == sender.ready_end()
        if will_be_ready:
            self._make_ready_room(tx, existing)
        else:
            parked = sum(1 for t in sender.by_nonce.values() if t.hash not in self._ready)
            if existing is None and parked >= limits.max_future_per_sender:
                raise PoolRejected("AccountLimit", f"sender has {parked} transactions waiting for a nonce gap")
            self._make_future_room(len(tx.encoded), existing)

        if existing is not None:
            self._remove(existing)
            self._notify(existing.hash, "usurped", tx.hash)
        self._senders[validity.sender] = sender
        sender.by_nonce[validity.nonce] = tx
        self._by_hash[tx.hash] = tx
        self._future_bytes += len(tx.encoded)
        newly_ready = self._promote(sender)
        self._notify(tx.hash, "ready" if tx in newly_ready else "future", None)
        for promoted in newly_ready:
            if promoted is not tx:
                self._promoted.append(promoted)
                self._notify(promoted.hash, "ready", None)
        self._enforce_ready_limits(protect=tx)

    def _make_ready_room(self, tx: PooledTransaction, replacing: PooledTransaction | None) -> None:
        """Evict lower-tipped ready tails until `tx` fits, or refuse it."""
        limits = self.limits
        freed = len(replacing.encoded) if replacing is not None and replacing.hash in self._ready else 0
        count = len(self._ready) - (1 if freed else 0)
        size = self._ready_bytes - freed
        victims: list[PooledTransaction] = []
        candidates = sorted(self._ready_tails(), key=lambda t: (t.validity.tip, -t.arrival))
        for candidate in candidates:
            if count + 1 <= limits.max_transactions and size + len(tx.encoded) <= limits.max_bytes:
                break
            if candidate is replacing or candidate.sender == tx.sender or not tx.outranks(candidate):
                continue
            victims.append(candidate)
            count -= 1
            size -= len(candidate.encoded)
        if count + 1 > limits.max_transactions or size + len(tx.encoded) > limits.max_bytes:
            raise PoolRejected("PoolFull", "the pool is full and this transaction's tip does not outrank any pooled one")
        for victim in victims:
            self._drop(victim, "dropped")

    def _ready_tails(self) -> Iterator[PooledTransaction]:
        """The last ready transaction of each sender: evicting it leaves no gap behind."""
        for sender in self._senders.values():
            last = None
            for last in sender.ready_run():  # noqa: B007 - we want the last one
                pass
            if last is not None:
                yield last

    def _make_future_room(self, size: int, replacing: PooledTransaction | None) -> None:
        """The future queue makes room by dropping its oldest transactions (Substrate's rule)."""
        limits = self.limits
        freed = len(replacing.encoded) if replacing is not None else 0
        future = sorted((t for t in self._by_hash.values() if t.hash not in self._ready), key=lambda t: t.arrival)
        count = len(future) - (1 if replacing is not None else 0)
        total = self._future_bytes - freed
        for oldest in future:
            if count + 1 <= limits.max_future and total + size <= limits.max_future_bytes:
                return
            if oldest is replacing:
                continue
            self._drop(oldest, "dropped")
            count -= 1
            total -= len(oldest.encoded)
        if count + 1 > limits.max_future or total + size > limits.max_future_bytes:
            raise PoolRejected("PoolFull", "the future queue is full")

    def _promote(self, sender: _Sender) -> list[PooledTransaction]:
        """Mark the sender's gap-free run ready; returns the transactions that just became ready."""
        newly = []
        for tx in sender.ready_run():
            if tx.hash not in self._ready:
                self._ready.add(tx.hash)
                self._future_bytes -= len(tx.encoded)
                self._ready_bytes += len(tx.encoded)
                newly.append(tx)
        return newly

    def _enforce_ready_limits(self, protect: PooledTransaction | None = None) -> None:
        """Promotion can carry the ready queue past its limits: drop the lowest tails until not."""
        limits = self.limits
        while len(self._ready) > limits.max_transactions or self._ready_bytes > limits.max_bytes:
            tails = [t for t in self._ready_tails() if t is not protect]
            if not tails:
                return
            self._drop(min(tails, key=lambda t: (t.validity.tip, -t.arrival)), "dropped")

    def _is_expensive(self, encoded: bytes) -> bool:
        try:
            call = decode_extrinsic_cached(encoded).call
        except DecodeError:
            return False  # the runtime refuses it at once
        spec = RUNTIME.calls.get(call.name)
        return spec is not None and spec.weight >= EXPENSIVE_WEIGHT

    def _spend_budget(self, source: str, now: float) -> None:
        limits = self.limits
        bucket = self._budgets.get(source)
        if bucket is None:
            if len(self._budgets) > 4096:  # forget idle sources rather than grow without bound
                self._budgets = {k: b for k, b in self._budgets.items() if b.tokens < limits.expensive_burst}
            bucket = self._budgets[source] = _Bucket(float(limits.expensive_burst), now)
        bucket.tokens = min(limits.expensive_burst, bucket.tokens + (now - bucket.updated) * limits.expensive_per_second)
        bucket.updated = now
        if bucket.tokens < 1:
            raise PoolRejected("RateLimited", f"peer {source} sent more expensive transactions than its budget")
        bucket.tokens -= 1

    # -- removal --------------------------------------------------------------------------------

    def _remove(self, tx: PooledTransaction) -> None:
        self._by_hash.pop(tx.hash, None)
        if tx.hash in self._ready:
            self._ready.discard(tx.hash)
            self._ready_bytes -= len(tx.encoded)
        else:
            self._future_bytes -= len(tx.encoded)
        sender = self._senders.get(tx.sender)
        if sender is not None and sender.by_nonce.get(tx.nonce) is tx:
            del sender.by_nonce[tx.nonce]
            if not sender.by_nonce:
                del self._senders[tx.sender]
            else:
                self._demote_after_gap(sender)

    def _demote_after_gap(self, sender: _Sender) -> None:
        """Ready transactions after a removed nonce wait in the future queue again."""
        run = {tx.hash for tx in sender.ready_run()}
        for tx in sender.by_nonce.values():
            if tx.hash in self._ready and tx.hash not in run:
                self._ready.discard(tx.hash)
                self._ready_bytes -= len(tx.encoded)
                self._future_bytes += len(tx.encoded)

    def _drop(self, tx: PooledTransaction, status: str) -> None:
        self._remove(tx)
        self._ban(tx.hash)
        self._notify(tx.hash, status, None)

    def _ban(self, ext_hash: bytes) -> None:
        now = self.clock()
        if len(self._banned) > 2 * (self.limits.max_transactions + self.limits.max_future):
            self._banned = {h: end for h, end in self._banned.items() if end > now}
        self._banned[ext_hash] = now + self.limits.ban_seconds

    def remove_invalid(self, ext_hash: bytes) -> None:
        """Drop a transaction that failed when a block was built with it."""
        tx = self._by_hash.get(ext_hash)
        if tx is not None:
            self._drop(tx, "invalid")

    # -- maintenance after a block ---------------------------------------------------------------

    def on_block(self, block_hash: bytes, ext_hashes: list[bytes], state: StateGet, number: int) -> None:
        """Remove included transactions, then stale, expired and overdue ones; promote the rest."""
        for ext_hash in ext_hashes:
            tx = self._by_hash.get(ext_hash)
            self._ban(ext_hash)
            if tx is not None:
                self._remove(tx)
                self._notify(ext_hash, "inBlock", block_hash)
        for account in sorted(self._senders):
            sender = self._senders.get(account)
            if sender is None:
                continue
            sender.account_nonce = system.read_account(state, account).nonce
            for nonce in sorted(sender.by_nonce):
                tx = sender.by_nonce.get(nonce)
                if tx is None:
                    continue
                expires = tx.validity.expires_at
                overdue = tx.hash not in self._ready and number - tx.admitted_at > self.limits.future_lifetime_blocks
                if nonce < sender.account_nonce or (expires is not None and number + 1 >= expires) or overdue:
                    self._drop(tx, "dropped")
            if account in self._senders:
                for promoted in self._promote(sender):
                    self._promoted.append(promoted)
                    self._notify(promoted.hash, "ready", None)
        self._enforce_ready_limits()

    def _notify(self, ext_hash: bytes, status: str, block_hash: bytes | None) -> None:
        for listener in self.listeners:
            listener(ext_hash, status, block_hash)
