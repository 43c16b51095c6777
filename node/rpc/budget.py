"""How many bytes of answers a request may make the server build and hold.

A request is small and its answer need not be: `chain_getBlock` of a 1.9 MB block answers
3.8 MB, and a 21 kB batch of 150 of them built 573 MB. Each request or batch therefore gets a
`ResponseBudget` (`--rpc-max-response-size`) that its answers are counted against as the
dispatcher builds them; a batch stops at the first answer that would pass it.

Answers are held after they are built until the client has read them, and a client that does
not read holds its answer in the server (hypercorn cannot time a send out). `ResponseMemory`
bounds the bytes so held over every connection at once: a request whose answers would pass it is
answered "busy" (-32009) instead. The first SMALL_ANSWER_BYTES of every answer are always
granted (each connection holds at most one answer, so that overshoot is bounded by the
connection limit): clients that do not read can make the node refuse large answers, never the
everyday small ones.
"""

from __future__ import annotations

__all__ = ["SMALL_ANSWER_BYTES", "ResponseBudget", "ResponseMemory"]

SMALL_ANSWER_BYTES = 64 * 1024


class ResponseMemory:
    """Bytes of answers built and not yet sent, over all connections."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.held = 0


class ResponseBudget:
    """The answer bytes of one request or batch: at most `limit`, and taken from `memory`.

    `release` gives the bytes back once the answer has been sent (or dropped); it is safe to
    call more than once.
    """

    def __init__(self, limit: int, memory: ResponseMemory | None = None) -> None:
        self.limit = limit
        self.memory = memory
        self.used = 0

    def fits(self, size: int) -> bool:
        """Whether `size` more bytes stay within this request's own limit."""
        return self.used + size <= self.limit

    def take(self, size: int) -> bool:
        """Count `size` bytes against the budget and the shared memory; False (and nothing
        taken) if the shared memory would pass its limit, past this answer's first
        SMALL_ANSWER_BYTES."""
        if self.memory is not None:
            if self.used + size > SMALL_ANSWER_BYTES and self.memory.held + size > self.memory.limit:
                return False
            self.memory.held += size
        self.used += size
        return True

    def release(self) -> None:
        if self.memory is not None:
            self.memory.held -= self.used
        self.used = 0
