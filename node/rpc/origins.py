"""`--rpc-cors`: which web pages may talk to the node (issue #10, finding 7).

A browser lets any page open a WebSocket to 127.0.0.1:9944 and post to it; only the `Origin`
header says whose page it is. Without a check, a page on any site reached `network_blockPeer`
(unsafe methods are served by default when RPC listens on loopback). So, as Substrate does:

* `--rpc-cors` is a comma-separated list of origins, `all` (or `*`) to allow every one; a port
  of `*` matches any port (and none). The default allows `http(s)://localhost:*` and
  `http(s)://127.0.0.1:*`; `--dev` allows all.
* A request or WebSocket upgrade whose `Origin` is not allowed is refused with HTTP 403 before
  anything runs. Browsers send `Origin` on every cross-origin request and on every WebSocket
  upgrade, so a request without one does not come from a page and is served.
* Allowed origins get the CORS headers and preflight answers (Starlette's `CORSMiddleware`).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

__all__ = ["ALL_ORIGINS", "OriginPolicy", "parse_cors"]

ALL_ORIGINS = ("all", "*")

_ORIGIN = re.compile(r"(?P<scheme>[a-z][a-z0-9+.-]*)://(?P<host>\[[0-9a-f:.]+\]|[^\s/:?#\[\]]+)(?::(?P<port>\d{1,5}|\*))?")


def parse_cors(value: str) -> tuple[str, ...] | None:
    """The `--rpc-cors` value as a tuple of origin patterns; None for `all` or `*`.

    Raises ValueError naming the first entry that is not an origin.
    """
    entries = [entry.strip() for entry in value.split(",") if entry.strip()]
    if not entries:
        raise ValueError("expected 'all' or a comma-separated list of origins")
    if any(entry.lower() in ALL_ORIGINS for entry in entries):
        return None
    for entry in entries:
        if entry != "null" and not _ORIGIN.fullmatch(entry.lower()):
            raise ValueError(f"{entry!r} is not an origin like https://example.org or http://localhost:*")
    return tuple(entries)


class OriginPolicy:
    """Whether a request's `Origin` header is allowed; `patterns` None allows every origin."""

    def __init__(self, patterns: Sequence[str] | None) -> None:
        self.patterns = None if patterns is None else tuple(patterns)
        self.regex = None if self.patterns is None else "|".join(_regex(p) for p in self.patterns)
        self._compiled = None if self.regex is None else re.compile(self.regex)

    @property
    def allows_all(self) -> bool:
        return self.patterns is None

    def allows(self, origin: str | None) -> bool:
        """A request without an Origin header is not from a browser page, and is allowed."""
        if origin is None or self._compiled is None:
            return True
        return self._compiled.fullmatch(origin.strip().lower()) is not None


def _regex(pattern: str) -> str:
    """`http://localhost:*` -> `http://localhost(?::\\d{1,5})?`; other origins match exactly."""
    pattern = pattern.strip().lower()
    if pattern.endswith(":*"):
        return re.escape(pattern[:-2]) + r"(?::\d{1,5})?"
    return re.escape(pattern)
