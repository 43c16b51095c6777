"""Image work requested over RPC: a few worker-thread slots, and "busy" rather than a queue.

Decoding an uploaded copy and searching it for a watermark takes up to a few seconds and
~11 bytes a pixel. In a worker thread the node's trio loop keeps authoring and importing
meanwhile (the numba kernels hold the GIL ~1-30 ms at a time, which bounds the loop's stalls).
The slots are tried, not waited for: when they are all taken the call fails at once with -32009
"Server is busy, try again later" and a retry hint, instead of queueing. A queue grows without
bound under a flood and only moves the cost to later (the issue's 50 kB flat 39.5 MP PNG cost
4.2 s and ~570 MB each, queued one after another).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import trio

from node.rpc.errors import SERVER_IS_BUSY, RpcError

__all__ = ["ImageJobs"]

T = TypeVar("T")

_FIRST_ESTIMATE_S = 1.0


class ImageJobs:
    """At most `slots` image jobs at once; `max_pixels` is the cap the jobs decode under."""

    def __init__(self, slots: int, max_pixels: int) -> None:
        if slots < 1:
            raise ValueError("at least one image job slot")
        self.slots = slots
        self.max_pixels = max_pixels
        self.running = 0
        self._typical_s = _FIRST_ESTIMATE_S  # moving average of job durations, for the retry hint

    async def run(self, job: Callable[..., T], *args: object) -> T:
        """`job(*args)` in a worker thread if a slot is free, else RpcError(SERVER_IS_BUSY).

        Cancelling the caller (the client went away) waits for the thread to finish, so a slot
        is never given back while its job still runs.
        """
        if self.running >= self.slots:
            retry_ms = max(100, round(self._typical_s * 1000))
            raise RpcError(
                SERVER_IS_BUSY,
                data={
                    "reason": f"all {self.slots} image job slots are in use (--rpc-max-image-jobs)",
                    "retryAfterMs": retry_ms,
                },
            )
        self.running += 1
        started = trio.current_time()
        try:
            return await trio.to_thread.run_sync(job, *args)
        finally:
            self.running -= 1
            self._typical_s = 0.8 * self._typical_s + 0.2 * (trio.current_time() - started)
