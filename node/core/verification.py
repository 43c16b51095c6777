"""The node's memo of registration checks: the runtime's `Host`, remembering its answers.

Checking a registration's rendition (its pHash and watermark, `node.imaging.verify`) takes about
a millisecond, and the same rendition is checked when the transaction enters the pool, when the
author builds the block and when every node imports it. The answer is a pure function of the
rendition and the key, so the node remembers it by their digest; a cached answer is the answer.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict

from node.imaging.verify import RenditionFacts, rendition_facts
from node.runtime.support import Host

DEFAULT_ENTRIES = 8192  # small values (a pHash and 8 bytes), never the 64 KiB renditions


class VerificationCache(Host):
    """A `Host` whose `rendition_facts` are memoised (LRU, thread-safe: import runs in threads)."""

    def __init__(self, max_entries: int = DEFAULT_ENTRIES) -> None:
        self.max_entries = max_entries
        self._facts: OrderedDict[bytes, RenditionFacts] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def rendition_facts(self, rendition: bytes, key: bytes) -> RenditionFacts:
        digest = hashlib.blake2b(rendition + key, digest_size=32).digest()
        with self._lock:
            facts = self._facts.get(digest)
            if facts is not None:
                self._facts.move_to_end(digest)
                self.hits += 1
                return facts
        facts = rendition_facts(rendition, key)
        with self._lock:
            self.misses += 1
            self._facts[digest] = facts
            if len(self._facts) > self.max_entries:
                self._facts.popitem(last=False)
        return facts
