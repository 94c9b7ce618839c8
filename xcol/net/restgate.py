"""One REST host's request budget: its weight per minute and its 429/418 pauses.

Binance limits REST traffic per IP by *weight* (every endpoint has one; a depth snapshot
of 1000 levels weighs 20 on futures, 50 on spot) over one-minute windows.  A client over
the limit gets HTTP 429 with a ``Retry-After`` header; one that keeps asking after 429s
gets HTTP 418, an IP ban that grows from 2 minutes to 3 days for repeat offenders.  So a
rejected request must stop *every* request to that host, not just be retried later.

:class:`RestGate` is that stop: the collector keeps one per REST host (shared by every
feed that uses it), asks :meth:`RestGate.delay_for` before each snapshot request, records
the request's weight with :meth:`RestGate.spend`, and reports a 429/418 with
:meth:`RestGate.reject`, which pauses the host until the server's ``Retry-After`` (or a
default when the header is absent or unreadable).  Control plane only: a few
comparisons per request, nothing per frame.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from typing import Any

__all__ = ["BAN_PAUSE_S", "RATE_LIMIT_PAUSE_S", "RestGate"]

Clock = Callable[[], float]

#: pause after a 429 without a usable Retry-After: one whole weight window, so the
#: exchange's per-minute count has certainly started again
RATE_LIMIT_PAUSE_S = 60.0
#: pause after a 418 without a usable Retry-After: Binance's shortest IP ban
BAN_PAUSE_S = 120.0
#: the weight window (Binance counts REQUEST_WEIGHT per minute)
WINDOW_S = 60.0
#: bounds put on a server's Retry-After: at least a second (0 or a past date would resume
#: requests at once), at most three days (Binance's longest ban)
MIN_PAUSE_S = 1.0
MAX_PAUSE_S = 3 * 24 * 3600.0


class RestGate:
    """The request budget of one REST host.

    :param host: the host as ``scheme://host:port`` (for logs and ``/stats``).
    :param weight_per_minute: the most weight spent in any 60 s (0: no weight budget).
    :param clock: monotonic clock in seconds.
    """

    __slots__ = ("host", "weight_per_minute", "requests", "rate_limited", "banned",
                 "pauses", "paused_s", "_paused_until", "_spent", "_clock")

    def __init__(self, host: str, weight_per_minute: int = 0, *,
                 clock: Clock = time.monotonic) -> None:
        if weight_per_minute < 0:
            raise ValueError(f"weight_per_minute must be >= 0, got {weight_per_minute}")
        self.host = host
        self.weight_per_minute = weight_per_minute
        #: requests let through (weight spent)
        self.requests = 0
        #: HTTP 429 answers (over the limit: back off or be banned)
        self.rate_limited = 0
        #: HTTP 418 answers (the IP is banned)
        self.banned = 0
        #: pauses started (a rejection during a pause extends it, not counted again)
        self.pauses = 0
        #: seconds of pause imposed in total
        self.paused_s = 0.0
        self._paused_until = 0.0
        self._spent: deque[tuple[float, int]] = deque()
        self._clock = clock

    def _expire(self, now: float) -> None:
        while self._spent and now - self._spent[0][0] >= WINDOW_S:
            self._spent.popleft()

    @property
    def weight_used(self) -> int:
        """Weight spent in the last 60 s."""
        self._expire(self._clock())
        return sum(w for _, w in self._spent)

    @property
    def paused_for(self) -> float:
        """Seconds left in the current pause (0: not paused)."""
        return max(0.0, self._paused_until - self._clock())

    def delay_for(self, weight: int) -> float:
        """Seconds until a request of ``weight`` may be sent (0: now): the rest of a
        429/418 pause, else the time until enough weight leaves the 60 s window."""
        now = self._clock()
        wait = self._paused_until - now
        if wait > 0:
            return wait
        if self.weight_per_minute <= 0:
            return 0.0
        if weight > self.weight_per_minute:
            raise ValueError(f"{self.host}: a request of weight {weight} can never fit a "
                             f"budget of {self.weight_per_minute} a minute")
        self._expire(now)
        excess = sum(w for _, w in self._spent) + weight - self.weight_per_minute
        if excess <= 0:
            return 0.0
        # the oldest entries leave the window first; wait until enough of them have
        for t, w in self._spent:
            excess -= w
            if excess <= 0:
                return t + WINDOW_S - now
        return WINDOW_S  # unreachable: the whole window's weight always covers the excess

    def spend(self, weight: int) -> None:
        """Record a request of ``weight`` sent now (after :meth:`delay_for` said 0)."""
        self.requests += 1
        if self.weight_per_minute > 0:
            self._spent.append((self._clock(), weight))

    def reject(self, status: int, retry_after: float | None) -> tuple[float, bool]:
        """Record a 429 (rate limited) or 418 (banned) answer and pause the host.

        :param retry_after: the server's ``Retry-After`` in seconds (None: absent or
            unreadable, and the pause is :data:`RATE_LIMIT_PAUSE_S` after a 429,
            :data:`BAN_PAUSE_S` after a 418).
        :returns: the pause in seconds from now, and whether it is a new pause (False when
            the host was already paused: the caller logs once per pause).
        """
        if status == 418:
            self.banned += 1
            default = BAN_PAUSE_S
        else:
            self.rate_limited += 1
            default = RATE_LIMIT_PAUSE_S
        # A Retry-After of 0 (or a date already past) would let requests go on at once,
        # which is what turns 429s into a ban; an absurd one would stop snapshots for good.
        pause = (min(max(retry_after, MIN_PAUSE_S), MAX_PAUSE_S) if retry_after is not None
                 else default)
        now = self._clock()
        new = self._paused_until <= now
        until = now + pause
        if new:
            self.pauses += 1
            self.paused_s += pause
            self._paused_until = until
        elif until > self._paused_until:
            # a request that was already in flight was rejected too: keep the later end
            self.paused_s += until - self._paused_until
            self._paused_until = until
        return max(pause, self._paused_until - now), new

    def stats(self) -> dict[str, Any]:
        """The host's entry in ``/stats`` ``rest`` (see docs/observability.md)."""
        return {"host": self.host, "requests": self.requests,
                "weight_used_1m": self.weight_used,
                "weight_limit_1m": self.weight_per_minute,
                "rate_limited": self.rate_limited, "banned": self.banned,
                "pauses": self.pauses, "paused_s": self.paused_s,
                "paused_for_s": self.paused_for}
