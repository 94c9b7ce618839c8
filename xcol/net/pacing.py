"""Pacing of what the collector sends: connection attempts per exchange host, and
client → server messages per connection, within the exchanges' published limits.

:class:`ConnectLimit` is one token bucket per (exchange, host): every connection attempt
of every feed that talks to that host (first connects, reconnects, make-before-break
replacements) takes a token first, so a restart of many lines, or a reconnect storm after
an exchange hiccup, opens connections at the allowed rate instead of all at once.

:class:`Outbox` queues the text messages of one connection behind a token bucket (burst
1: messages leave evenly spaced, so no one-second window holds more than the rate) and,
where the exchange counts subscriptions over a long window (OKX: 480 an hour), a
:class:`~xcol.net.backoff.WindowLimiter` for ordinary messages.  Two priorities:

* *urgent*: a Deribit ``test_request`` answer, an OKX keepalive ``ping``.  The exchange
  closes the connection when these are late, and they are tiny, so they jump ahead of any
  queued subscribe traffic: an urgent message waits at most for the next token
  (``1 / rate`` seconds), never behind a long queue, and it never breaks the rate either.
* *normal*: subscribe, unsubscribe, resubscribe.  First in, first out.

A message that may go now (tokens left, nothing queued ahead of it) is written at once,
from the caller; otherwise one task per outbox waits for the tokens.  Either way the
caller never waits: a control callback of the listener can call :meth:`Outbox.put` without
blocking the frame path.  Every wait is counted (:class:`WaitStats`) for ``/stats``.

WebSocket control frames (pong answers to a server's ping, written by the listener
itself) do not pass through here; the per-exchange rates leave room for them.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from xcol.net.backoff import Clock, TokenBucket, WindowLimiter

__all__ = ["ConnectLimit", "Outbox", "WaitStats"]


@dataclass(slots=True)
class WaitStats:
    """What a rate limit held back: the waits and their total length."""

    #: attempts or messages that could not go at once
    waits: int = 0
    #: seconds they waited, summed
    waited_s: float = 0.0

    def add(self, seconds: float) -> None:
        """Count one wait of ``seconds``."""
        self.waits += 1
        self.waited_s += seconds


class ConnectLimit:
    """Connection attempts to one exchange host: ``rate_per_s`` sustained, ``burst`` at once.

    :param exchange: the exchange id (for ``/stats``).
    :param host: the host name the limit applies to.
    :param rate_per_s: attempts a second (> 0).
    :param burst: attempts allowed at once (>= 1).
    """

    __slots__ = ("exchange", "host", "bucket", "stats")

    def __init__(self, exchange: str, host: str, rate_per_s: float, burst: int, *,
                 clock: Clock = time.monotonic) -> None:
        self.exchange = exchange
        self.host = host
        self.bucket = TokenBucket(rate_per_s, burst, clock=clock)
        self.stats = WaitStats()

    async def acquire(self) -> float:
        """Wait for a connection slot; returns the seconds waited (0.0: none).

        Slots are reserved first come, first served, so concurrent lines queue in order.
        """
        delay = self.bucket.reserve(1)
        if delay > 0:
            self.stats.add(delay)
            await asyncio.sleep(delay)
        return delay


class Outbox:
    """The paced client → server text messages of one connection.

    :param rate_per_s: messages a second (> 0); messages leave at most one per
        ``1 / rate_per_s`` once the first has gone.
    :param stats: where waits are counted (a line keeps one across its connections).
    :param window: ``(limit, seconds)``: at most ``limit`` normal messages in any
        ``seconds`` (OKX's subscriptions an hour); urgent messages are not counted.
    :param clock: monotonic clock in seconds.
    """

    __slots__ = ("rate_per_s", "stats", "sent", "dropped", "_bucket", "_window", "_send",
                 "_urgent", "_normal", "_task", "_wake", "_clock", "_closed")

    def __init__(self, rate_per_s: float, stats: WaitStats | None = None, *,
                 window: tuple[int, float] | None = None,
                 clock: Clock = time.monotonic) -> None:
        self.rate_per_s = float(rate_per_s)
        self.stats = stats if stats is not None else WaitStats()
        #: messages written
        self.sent = 0
        #: messages discarded unsent by :meth:`close` (their connection is gone)
        self.dropped = 0
        self._bucket = TokenBucket(rate_per_s, 1, clock=clock)
        self._window = WindowLimiter(window[0], window[1], clock=clock) if window else None
        self._send: Callable[[bytes], None] | None = None
        # (enqueued at, message)
        self._urgent: deque[tuple[float, bytes]] = deque()
        self._normal: deque[tuple[float, bytes]] = deque()
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._clock = clock
        self._closed = False

    @property
    def queued(self) -> int:
        """Messages waiting for a token."""
        return len(self._urgent) + len(self._normal)

    @property
    def backlog_s(self) -> float:
        """Roughly how long a normal message put now would wait."""
        wait = self.queued / self.rate_per_s + self._bucket.delay_for(1)
        if self._window is not None:
            # the window cap (OKX: 480 subscribes an hour) on the queue and this message
            wait = max(wait, self._window.delay_after(self.queued + 1))
        return wait

    def attach(self, send: Callable[[bytes], None]) -> None:
        """Start writing through ``send`` (the connection is open); messages put before
        are written in order, paced."""
        self._send = send
        # what may go now goes from here, the rest from the pacing task
        while self.queued and self._may_send(bool(self._urgent)):
            self._write_next()
        if self.queued:
            self._start()

    def put(self, msg: bytes, *, urgent: bool = False) -> None:
        """Write ``msg`` now if the limits allow, else queue it; never waits.

        :param urgent: a heartbeat answer or keepalive: goes ahead of queued normal
            messages (see the module docstring).
        """
        if self._closed:
            self.dropped += 1
            return
        if (self._send is not None and not self._urgent and (urgent or not self._normal)
                and self._may_send(urgent)):
            self._write(msg)
            return
        (self._urgent if urgent else self._normal).append((self._clock(), msg))
        self._wake.set()
        if self._send is not None:
            self._start()

    def close(self) -> None:
        """Discard what is queued (the connection is gone) and stop the pacing task."""
        self._closed = True
        self.dropped += self.queued
        self._urgent.clear()
        self._normal.clear()
        if self._task is not None:
            self._task.cancel()
            self._task = None

    # ------------------------------------------------------------------ internals

    def _may_send(self, urgent: bool) -> bool:
        # take a token only when every limit that applies allows the message now
        if not urgent and self._window is not None and self._window.delay_for() > 0:
            return False
        if not self._bucket.try_acquire(1):
            return False
        if not urgent and self._window is not None:
            self._window.try_acquire()
        return True

    def _delay(self) -> float:
        delay = self._bucket.delay_for(1)
        if not self._urgent and self._window is not None:
            delay = max(delay, self._window.delay_for())
        return delay

    def _write(self, msg: bytes) -> None:
        assert self._send is not None
        self.sent += 1
        self._send(msg)

    def _write_next(self) -> None:
        # the head of the urgent queue, else of the normal one; a token is already taken
        t, msg = (self._urgent or self._normal).popleft()
        self.stats.add(self._clock() - t)
        self._write(msg)

    def _start(self) -> None:
        if self._task is None and not self._closed:
            self._task = asyncio.get_running_loop().create_task(self._drain())

    async def _drain(self) -> None:
        try:
            while self._urgent or self._normal:
                delay = self._delay()
                if delay > 0:
                    # an urgent message put meanwhile wakes us: it may need a shorter wait
                    # than a normal one held by the window limit
                    self._wake.clear()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._wake.wait(), delay)
                    continue
                if not self._may_send(bool(self._urgent)):
                    # the clock moved under float rounding; take the next turn
                    await asyncio.sleep(0)
                    continue
                self._write_next()
        finally:
            self._task = None
