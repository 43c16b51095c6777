"""The transaction pool: validated transactions waiting for a block.

Each transaction is validated by the runtime's own rules (`validate_transaction`) against the
best state before it is admitted. Per sender, transactions are ordered by nonce: those whose
nonces run on without a gap from the account's nonce are *ready*, the rest wait in the *future*
queue until the gap is filled. Block building takes ready transactions by tip (then by arrival),
always in nonce order per sender. After each block the pool drops what was included, what went
stale (nonce used) and what expired (mortality), and promotes future transactions.

Every rejection has its own reason (`PoolRejected.reason`).
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from node.runtime import system
from node.runtime.executive import InvalidTransaction, ValidTransaction
from node.runtime.runtime import RUNTIME
from node.runtime.support import PURE_HOST, Host, StateGet
from node.types import extrinsic_hash

Listener = Callable[[bytes, str, bytes | None], None]


class PoolRejected(Exception):
    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}{': ' + detail if detail else ''}")
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class PoolLimits:
    max_transactions: int = 8192
    max_per_sender: int = 1024  # also bounds how far ahead of the account nonce a nonce may be
    max_bytes: int = 64 * 1024 * 1024


@dataclass
class PooledTransaction:
    hash: bytes
    encoded: bytes
    validity: ValidTransaction
    arrival: int

    @property
    def sender(self) -> bytes:
        return self.validity.sender

    @property
    def nonce(self) -> int:
        return self.validity.nonce


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


class TxPool:
    def __init__(self, genesis_hash: bytes, limits: PoolLimits | None = None, host: Host = PURE_HOST) -> None:
        self.genesis_hash = genesis_hash
        self.limits = limits or PoolLimits()
        self.host = host  # the runtime's host: the node's memo of registration checks
        self._by_hash: dict[bytes, PooledTransaction] = {}
        self._senders: dict[bytes, _Sender] = {}
        self._arrivals = itertools.count()
        self._bytes = 0
        self.listeners: list[Listener] = []

    # -- queries --------------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._by_hash)

    def __contains__(self, ext_hash: bytes) -> bool:
        return ext_hash in self._by_hash

    def counts(self) -> tuple[int, int]:
        """(ready, future)."""
        ready = sum(sum(1 for _ in s.ready_run()) for s in self._senders.values())
        return ready, len(self._by_hash) - ready

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

    # -- admission ------------------------------------------------------------------------------

    def submit(self, encoded: bytes, state: StateGet, best_number: int, signature_ok: bool | None = None) -> bytes:
        """Validate and admit; returns the extrinsic hash or raises PoolRejected."""
        ext_hash = extrinsic_hash(encoded)
        if ext_hash in self._by_hash:
            raise PoolRejected("AlreadyImported", "transaction is already in the pool")
        try:
            validity = RUNTIME.validate_transaction(
                state, self.genesis_hash, encoded, best_number, signature_ok, self.host
            )
        except InvalidTransaction as exc:
            raise PoolRejected(exc.reason.value, exc.detail) from exc
        sender = self._senders.get(validity.sender)
        if sender is None:
            sender = _Sender(validity.account_nonce)
        else:
            sender.account_nonce = max(sender.account_nonce, validity.account_nonce)
        existing = sender.by_nonce.get(validity.nonce)
        if existing is not None and validity.tip <= existing.validity.tip:
            raise PoolRejected("TooLowPriority", "a transaction with this nonce and an equal or higher tip is pooled")
        if existing is None and len(sender.by_nonce) >= self.limits.max_per_sender:
            raise PoolRejected("AccountLimit", f"sender has {len(sender.by_nonce)} pooled transactions")
        if existing is None and len(self._by_hash) >= self.limits.max_transactions:
            raise PoolRejected("PoolFull", "the transaction pool is full")
        if self._bytes + len(encoded) > self.limits.max_bytes:
            raise PoolRejected("PoolFull", "the transaction pool is full (bytes)")
        if validity.nonce >= validity.account_nonce + self.limits.max_per_sender:
            raise PoolRejected("FutureNonce", f"nonce {validity.nonce} is too far ahead")

        if existing is not None:
            self._remove(existing)
            self._notify(existing.hash, "usurped", ext_hash)
        self._senders[validity.sender] = sender
        tx = PooledTransaction(ext_hash, encoded, validity, next(self._arrivals))
        sender.by_nonce[validity.nonce] = tx
        self._by_hash[ext_hash] = tx
        self._bytes += len(encoded)
        is_ready = any(t.hash == ext_hash for t in sender.ready_run())
        self._notify(ext_hash, "ready" if is_ready else "future", None)
        return ext_hash

    def _remove(self, tx: PooledTransaction) -> None:
        self._by_hash.pop(tx.hash, None)
        self._bytes -= len(tx.encoded)
        sender = self._senders.get(tx.sender)
        if sender is not None and sender.by_nonce.get(tx.nonce) is tx:
            del sender.by_nonce[tx.nonce]
            if not sender.by_nonce:
                del self._senders[tx.sender]

    def remove_invalid(self, ext_hash: bytes) -> None:
        """Drop a transaction that failed when a block was built with it."""
        tx = self._by_hash.get(ext_hash)
        if tx is not None:
            self._remove(tx)
            self._notify(ext_hash, "invalid", None)

    # -- maintenance after a block ---------------------------------------------------------------

    def on_block(self, block_hash: bytes, ext_hashes: list[bytes], state: StateGet, number: int) -> None:
        """Remove included transactions, then stale and expired ones; update account nonces."""
        for ext_hash in ext_hashes:
            tx = self._by_hash.get(ext_hash)
            if tx is not None:
                self._remove(tx)
                self._notify(ext_hash, "inBlock", block_hash)
        for account in sorted(self._senders):
            sender = self._senders[account]
            sender.account_nonce = system.read_account(state, account).nonce
            for nonce in sorted(sender.by_nonce):
                tx = sender.by_nonce[nonce]
                expires = tx.validity.expires_at
                if nonce < sender.account_nonce:
                    self._remove(tx)
                    self._notify(tx.hash, "dropped", None)
                elif expires is not None and number + 1 >= expires:
                    self._remove(tx)
                    self._notify(tx.hash, "dropped", None)

    def _notify(self, ext_hash: bytes, status: str, block_hash: bytes | None) -> None:
        for listener in self.listeners:
            listener(ext_hash, status, block_hash)
