"""Who may connect, and how fast they may call: connection counts, call rate, refusal logs.

* `ConnectionGate` counts open connections in total and per IP address. ASGI shows the server
  requests, not TCP connections, so a connection counts while it does something: a WebSocket
  session for its whole life, an HTTP request while its body is read and its answer built and
  sent. Idle keep-alive connections cost the server little and hypercorn closes them after 5 s.
* `RateLimit` is Substrate's `--rpc-rate-limit`: N calls a minute with bursts of N (governor's
  GCRA, `Quota::per_minute`). A call over the quota sleeps until it conforms (plus up to 50 ms
  of jitter, so that waiting calls do not all wake at once), up to 10 times, then fails with
  -32999. A WebSocket session has its own; over HTTP, where a client can open a new connection
  for every request, the connection is the client's IP address (`RateLimits`).
* `LimitLog` writes the log line of a refusal, naming the client, at most once a second per
  limit: a flood of refusals must not turn the log into the amplifier.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Iterator
from contextlib import contextmanager

import trio

from node.rpc.errors import RATE_LIMITED, RpcError

__all__ = ["ConnectionGate", "LimitLog", "RateLimit", "RateLimits"]

RATE_LIMIT_RETRIES = 10
RATE_LIMIT_JITTER_S = 0.05


class ConnectionGate:
    """Open connections, in total and per IP address."""

    def __init__(self, total: int, per_ip: int) -> None:
        self.total = total
        self.per_ip = per_ip
        self.open = 0
        self._by_ip: dict[str, int] = {}

    def refusal(self, ip: str) -> str | None:
        """Why one more connection from `ip` is refused, or None if it may open."""
        if self.open >= self.total:
            return f"the node serves at most {self.total} connections (--rpc-max-connections)"
        if self._by_ip.get(ip, 0) >= self.per_ip:
            return f"at most {self.per_ip} connections from one address (--rpc-max-connections-per-ip)"
        return None

    def enter(self, ip: str) -> None:
        """Count a connection from `ip` (`refusal` was None); `leave` when it ends."""
        self.open += 1
        self._by_ip[ip] = self._by_ip.get(ip, 0) + 1

    def leave(self, ip: str) -> None:
        self.open -= 1
        left = self._by_ip[ip] - 1
        if left:
            self._by_ip[ip] = left
        else:
            del self._by_ip[ip]

    @contextmanager
    def hold(self, ip: str) -> Iterator[None]:
        """Count a connection from `ip` while the block runs."""
        self.enter(ip)
        try:
            yield
        finally:
            self.leave(ip)

    def from_ip(self, ip: str) -> int:
        return self._by_ip.get(ip, 0)


class RateLimit:
    """N calls a minute, bursts of N: the generic cell rate algorithm, one float of state."""

    def __init__(self, per_minute: int) -> None:
        if per_minute < 1:
            raise ValueError("a rate limit is at least 1 call a minute")
        self.per_minute = per_minute
        self.interval = 60.0 / per_minute
        self._tolerance = (per_minute - 1) * self.interval
        self._tat = 0.0  # theoretical arrival time of the next call

    def check(self, now: float) -> float:
        """0.0 if a call at `now` conforms (and count it), else how long until one would."""
        tat = max(self._tat, now)
        if tat - now <= self._tolerance:
            self._tat = tat + self.interval
            return 0.0
        return tat - self._tolerance - now

    def idle(self, now: float) -> bool:
        """True when the limit has fully refilled: forgetting it changes nothing."""
        return self._tat <= now

    async def admit(self) -> None:
        """Wait until a call conforms; -32999 after `RATE_LIMIT_RETRIES` waits that lost the race."""
        for attempt in range(RATE_LIMIT_RETRIES + 1):
            wait = self.check(trio.current_time())
            if wait <= 0.0:
                return
            if attempt < RATE_LIMIT_RETRIES:
                await trio.sleep(wait + random.uniform(0.0, RATE_LIMIT_JITTER_S))
        raise RpcError(RATE_LIMITED, data=f"at most {self.per_minute} calls a minute (--rpc-rate-limit)")


class RateLimits:
    """One `RateLimit` per key (an HTTP client's IP address); full ones are forgotten."""

    def __init__(self, per_minute: int) -> None:
        self.per_minute = per_minute
        self._limits: dict[str, RateLimit] = {}
        self._sweep_at = 1024

    def of(self, key: str) -> RateLimit:
        limit = self._limits.get(key)
        if limit is None:
            if len(self._limits) >= self._sweep_at:
                now = trio.current_time()
                self._limits = {k: v for k, v in self._limits.items() if not v.idle(now)}
                self._sweep_at = max(1024, 2 * len(self._limits))
            limit = self._limits[key] = RateLimit(self.per_minute)
        return limit

    def __len__(self) -> int:
        return len(self._limits)


class LimitLog:
    """Warnings for refusals: one line per limit and `interval_s` at most, naming the client, with
    how many refusals of that limit were not logged since the last line."""

    def __init__(self, logger: logging.Logger, interval_s: float = 1.0) -> None:
        self._log = logger
        self._interval_s = interval_s
        self._last: dict[str, float] = {}
        self._unlogged: dict[str, int] = {}

    def refused(self, limit: str, client: str, detail: str) -> None:
        now = time.monotonic()
        if now - self._last.get(limit, -self._interval_s) < self._interval_s:
            self._unlogged[limit] = self._unlogged.get(limit, 0) + 1
            return
        self._last[limit] = now
        unlogged = self._unlogged.pop(limit, 0)
        more = f" ({unlogged} more refused since the last line)" if unlogged else ""
        self._log.warning("RPC %s refused for %s: %s%s", limit, client, detail, more)
