"""Image work requested over RPC runs in worker threads, at most MAX_IMAGE_JOBS at once per node.

Decoding an uploaded copy and searching it for a watermark takes up to ~1 s for a large unmarked
photo. In a worker thread the node's trio loop keeps authoring and importing meanwhile, and the
per-node limit makes a burst of requests queue instead of starving the chain. (The numba kernels
hold the GIL while they run, ~1-30 ms at a time; the thread bounds the loop's stalls to that,
not to the whole job.)
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import Any, TypeVar

import trio

__all__ = ["MAX_IMAGE_JOBS", "run_image_job"]

MAX_IMAGE_JOBS = 2

T = TypeVar("T")

# One limiter per node (weakly held: a node that is gone takes its limiter with it).
_limiters: weakref.WeakKeyDictionary[Any, trio.CapacityLimiter] = weakref.WeakKeyDictionary()


async def run_image_job(node: Any, job: Callable[..., T], *args: Any) -> T:
    """`job(*args)` in a worker thread, queued behind the node's other image jobs past the limit."""
    limiter = _limiters.get(node)
    if limiter is None:
        limiter = _limiters[node] = trio.CapacityLimiter(MAX_IMAGE_JOBS)
    return await trio.to_thread.run_sync(job, *args, limiter=limiter)
