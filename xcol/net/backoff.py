"""Reconnect backoff and rate limiters.

:class:`Backoff` is exponential backoff with *full jitter*: the n-th delay (n from 0) is
``uniform(0, min(cap, base * 2**n))``.  Full jitter spreads the reconnects of many lines
that dropped together (an exchange restart) over the whole window instead of letting them
stampede in step.  A connection that stays healthy for ``reset_after_s`` earns a fresh
start: the next failure waits from ``base`` again.

:class:`TokenBucket` limits a rate with a burst (connections per second, inbound messages
per second, REST snapshots during a resync storm).  :class:`WindowLimiter` enforces "at most
N per window" exactly, for limits published that way (Binance: 300 connections per 5 min).

Both limiters take an injectable clock, and :class:`Backoff` an injectable RNG, for tests.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import deque
from collections.abc import Callable

__all__ = ["Backoff", "TokenBucket", "WindowLimiter"]

Clock = Callable[[], float]

# 2**64 * base already exceeds any sane cap; clamping keeps 2.0**n from overflowing.
_MAX_EXP = 64


class Backoff:
    """Exponential backoff with full jitter and a cap.

    Use: call :meth:`next_delay` after each failure and sleep that long; call
    :meth:`connected` when a connection (or sink) is up; when it fails again, the attempt
    count is reset first if it stayed up at least ``reset_after_s``.

    :param base_s: ceiling of the first delay, seconds (> 0).
    :param cap_s: largest delay ceiling, seconds (>= base_s).
    :param reset_after_s: healthy time that resets the attempt count.
    :param rng: source of jitter (default: a private :class:`random.Random`).
    :param clock: monotonic clock in seconds.
    """

    __slots__ = ("base_s", "cap_s", "reset_after_s", "attempt", "_rng", "_clock", "_up_since")

    def __init__(
        self,
        base_s: float = 0.25,
        cap_s: float = 30.0,
        reset_after_s: float = 60.0,
        *,
        rng: random.Random | None = None,
        clock: Clock = time.monotonic,
    ) -> None:
        if not base_s > 0:
            raise ValueError(f"base_s must be > 0, got {base_s}")
        if cap_s < base_s:
            raise ValueError(f"cap_s must be >= base_s, got {cap_s} < {base_s}")
        if reset_after_s < 0:
            raise ValueError(f"reset_after_s must be >= 0, got {reset_after_s}")
        self.base_s = base_s
        self.cap_s = cap_s
        self.reset_after_s = reset_after_s
        #: Failures since the last reset; the next delay's ceiling is base * 2**attempt.
        self.attempt = 0
        self._rng = rng if rng is not None else random.Random()
        self._clock = clock
        self._up_since: float | None = None

    def ceiling(self, attempt: int | None = None) -> float:
        """Upper bound of the delay for ``attempt`` (default: the next one)."""
        n = self.attempt if attempt is None else attempt
        return min(self.cap_s, self.base_s * 2.0 ** min(n, _MAX_EXP))

    def next_delay(self) -> float:
        """Record a failure; return how long to wait before the next try."""
        if self._up_since is not None:
            if self._clock() - self._up_since >= self.reset_after_s:
                self.attempt = 0
            self._up_since = None
        delay = self._rng.uniform(0.0, self.ceiling())
        self.attempt += 1
        return delay

    def connected(self) -> None:
        """Record that the connection is up (starts the healthy-time clock)."""
        self._up_since = self._clock()

    def reset(self) -> None:
        """Forget all failures."""
        self.attempt = 0
        self._up_since = None


class TokenBucket:
    """A token bucket: ``rate_per_s`` tokens a second, holding at most ``burst``.

    :meth:`try_acquire` never waits.  :meth:`acquire` reserves tokens (the balance may go
    negative) and sleeps until they would have accrued, so concurrent waiters are served
    first come, first served without a lock.

    :param rate_per_s: refill rate (> 0).
    :param burst: capacity, and the initial balance (>= 1).
    :param clock: monotonic clock in seconds.
    """

    __slots__ = ("rate_per_s", "burst", "_tokens", "_last", "_clock")

    def __init__(self, rate_per_s: float, burst: float = 1.0, *,
                 clock: Clock = time.monotonic) -> None:
        if not rate_per_s > 0:
            raise ValueError(f"rate_per_s must be > 0, got {rate_per_s}")
        if burst < 1:
            raise ValueError(f"burst must be >= 1, got {burst}")
        self.rate_per_s = float(rate_per_s)
        self.burst = float(burst)
        self._tokens = self.burst
        self._clock = clock
        self._last = clock()

    def _refill(self) -> None:
        now = self._clock()
        if now > self._last:
            self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate_per_s)
        self._last = now

    @property
    def tokens(self) -> float:
        """Tokens available now (negative while reservations are outstanding)."""
        self._refill()
        return self._tokens

    def try_acquire(self, n: float = 1.0) -> bool:
        """Take ``n`` tokens if available now; never waits."""
        self._refill()
        if self._tokens >= n:
            self._tokens -= n
            return True
        return False

    def delay_for(self, n: float = 1.0) -> float:
        """Seconds until ``n`` tokens would be available (0 if they are now)."""
        self._refill()
        return max(0.0, (n - self._tokens) / self.rate_per_s)

    def reserve(self, n: float = 1.0) -> float:
        """Take ``n`` tokens now, going into debt; return how long to wait before using them."""
        if n > self.burst:
            raise ValueError(f"cannot take {n} tokens from a bucket of {self.burst}")
        self._refill()
        self._tokens -= n
        return max(0.0, -self._tokens / self.rate_per_s)

    async def acquire(self, n: float = 1.0) -> None:
        """Wait until ``n`` tokens are granted."""
        delay = self.reserve(n)
        if delay > 0:
            await asyncio.sleep(delay)


class WindowLimiter:
    """At most ``limit`` events in any ``window_s`` seconds (a sliding log of timestamps).

    :param limit: events allowed per window (>= 1).
    :param window_s: window length, seconds (> 0).
    :param clock: monotonic clock in seconds.
    """

    __slots__ = ("limit", "window_s", "_times", "_clock")

    def __init__(self, limit: int, window_s: float, *, clock: Clock = time.monotonic) -> None:
        if limit < 1:
            raise ValueError(f"limit must be >= 1, got {limit}")
        if not window_s > 0:
            raise ValueError(f"window_s must be > 0, got {window_s}")
        self.limit = limit
        self.window_s = window_s
        self._times: deque[float] = deque()
        self._clock = clock

    def _expire(self, now: float) -> None:
        while self._times and now - self._times[0] >= self.window_s:
            self._times.popleft()

    def delay_for(self) -> float:
        """Seconds until one more event is allowed (0 if it is now)."""
        now = self._clock()
        self._expire(now)
        if len(self._times) < self.limit:
            return 0.0
        return self._times[0] + self.window_s - now

    def delay_after(self, n: int) -> float:
        """Roughly how long until ``n`` more events would all be allowed (0 if now):
        each waits for an older one to leave the window."""
        now = self._clock()
        self._expire(now)
        k = len(self._times) + n - self.limit     # events that must leave the window
        if k <= 0:
            return 0.0
        if k <= len(self._times):
            return self._times[k - 1] + self.window_s - now
        extra = k - len(self._times)
        base = self._times[-1] + self.window_s - now if self._times else 0.0
        return base + self.window_s * ((extra - 1) // self.limit)

    def try_acquire(self) -> bool:
        """Record an event if allowed now; never waits."""
        if self.delay_for() > 0:
            return False
        self._times.append(self._clock())
        return True

    async def acquire(self) -> None:
        """Wait until an event is allowed, then record it."""
        while True:
            delay = self.delay_for()
            if delay <= 0:
                self._times.append(self._clock())
                return
            await asyncio.sleep(delay)
