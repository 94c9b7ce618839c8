"""Fan-out: serialized record batches → one bounded queue per sink → one consumer per sink.

The hot path serializes every normalized record once, as one line of JSON, and hands the
fan-out a *batch* per socket read (:meth:`FanOut.offer`).  The same ``bytes`` object goes
into every sink's queue; nothing is copied per sink.

Queue capacity is counted in records.  Each sink has a policy:

``lossy``
    A batch that does not fit is dropped and its records counted per reason
    (``queue_full``; ``sink_down`` while the sink is failing; ``too_large`` for a batch
    bigger than the whole queue).  :meth:`~FanOut.offer` never waits.

``blocking``
    Nothing is dropped.  When a queue reaches its capacity the fan-out calls
    ``pause_reading()`` (the collector stops reading its sockets and TCP pushes back on the
    exchange); when every such queue is back at or below its low watermark it calls
    ``resume_reading()``.  Reads already in flight still land, so a blocking queue can
    overshoot its capacity by what the sockets had buffered.

Counters reconcile at all times, per sink: ``offered = published + dropped + queued``
(``queued`` includes the batch being written).  A sink that raises is closed, waited on
with :class:`~xcol.net.backoff.Backoff`, reopened and given the same batch again, while its
queue absorbs the outage; once the queue is full the policy applies.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from xcol._fast.hdr import HdrHistogram
from xcol.net.backoff import Backoff
from xcol.obs.schema import LatencySummary, latency_summary
from xcol.sinks.base import Sink

__all__ = [
    "DROP_CLOSED",
    "DROP_QUEUE_FULL",
    "DROP_SHUTDOWN",
    "DROP_SINK_DOWN",
    "DROP_TOO_LARGE",
    "DrainReport",
    "FanOut",
    "QueueSpec",
    "SinkStats",
]

log = logging.getLogger("xcol.fanout")

DROP_QUEUE_FULL = "queue_full"
DROP_SINK_DOWN = "sink_down"
DROP_TOO_LARGE = "too_large"
#: Offered after :meth:`FanOut.drain_and_close` stopped accepting.
DROP_CLOSED = "closed"
#: Still queued when the drain deadline passed.
DROP_SHUTDOWN = "shutdown"

_WARN_EVERY_S = 10.0
_NEVER = 1 << 62


@dataclass(frozen=True)
class QueueSpec:
    """A sink's queue and policy.

    :param policy: ``"blocking"`` or ``"lossy"``.
    :param capacity: queue capacity in records.
    :param low_watermark: resume reading at or below this many records (default
        ``capacity // 2``).
    :param warn_ratio: log a warning (at most every 10 s) past this fill fraction.
    :param flush_interval_s: flush the sink at most this long after a write.
    :param max_write_bytes: queued batches are joined into writes of up to this size.
    :param linger_s: batching by time: with less than ``max_write_bytes`` queued, wait up
        to this long after the oldest queued batch arrived before writing (0: write as soon
        as anything is queued).  Shutdown writes at once.
    """

    policy: Literal["blocking", "lossy"] = "blocking"
    capacity: int = 200_000
    low_watermark: int | None = None
    warn_ratio: float = 0.8
    flush_interval_s: float = 1.0
    max_write_bytes: int = 1 << 20
    linger_s: float = 0.0

    def __post_init__(self) -> None:
        if self.policy not in ("blocking", "lossy"):
            raise ValueError(f"policy must be 'blocking' or 'lossy', got {self.policy!r}")
        if self.capacity <= 0:
            raise ValueError(f"capacity must be > 0, got {self.capacity}")
        if self.low_watermark is not None and not 0 <= self.low_watermark < self.capacity:
            raise ValueError(f"low_watermark must be in [0, capacity), got {self.low_watermark}")
        if self.linger_s < 0:
            raise ValueError(f"linger_s must be >= 0, got {self.linger_s}")
        if self.max_write_bytes <= 0:
            raise ValueError(f"max_write_bytes must be > 0, got {self.max_write_bytes}")

    @property
    def low(self) -> int:
        """The low watermark with its default applied."""
        return self.capacity // 2 if self.low_watermark is None else self.low_watermark


@dataclass(frozen=True)
class SinkStats:
    """A snapshot of one sink's queue counters (``offered = published + dropped + queued``)."""

    name: str
    policy: str
    capacity: int
    low_watermark: int
    offered: int
    published: int
    queued: int
    high_water: int
    dropped: dict[str, int]
    pauses: int
    paused_s: float
    holding_pause: bool
    healthy: bool
    failures: int
    last_error: str | None
    #: writes that succeeded (one per batch handed to the sink, joined batches count once)
    batches: int = 0
    #: operations (open, write, flush) attempted again after a failure
    retries: int = 0
    #: duration of each successful write / flush call, µs
    write_us: LatencySummary | None = None
    flush_us: LatencySummary | None = None

    @property
    def dropped_total(self) -> int:
        """Dropped records, all reasons."""
        return sum(self.dropped.values())

    def to_json(self) -> dict[str, Any]:
        """JSON-ready form for ``/stats``."""
        d = dict(self.__dict__)
        d["dropped_total"] = self.dropped_total
        return d


@dataclass(frozen=True)
class DrainReport:
    """Outcome of :meth:`FanOut.drain_and_close`.

    ``left`` maps sink name → records still queued at the deadline (counted as dropped
    with reason ``shutdown``); empty when everything was delivered.
    """

    elapsed_s: float
    deadline_s: float
    timed_out: bool
    left: dict[str, int]
    published: dict[str, int]
    errors: dict[str, str] = field(default_factory=dict)

    @property
    def complete(self) -> bool:
        """Every accepted record was written and every sink closed cleanly."""
        return not self.timed_out and not self.left and not self.errors


def _bind_write(sink: Sink, batch: bytes, n: int) -> Callable[[], Awaitable[None]]:
    def call() -> Awaitable[None]:
        return sink.write(batch, n)
    return call


class _Lane:
    """One sink's queue, counters and consumer state."""

    __slots__ = (
        "sink", "spec", "name", "blocking", "capacity", "low", "warn_level", "q", "queued",
        "offered", "published", "high_water", "dropped", "pauses", "paused_s", "holding",
        "hold_since", "down", "failures", "last_error", "wake", "wake_at", "task",
        "last_warn", "opened", "qbytes", "first_at", "batches", "retries", "write_ns",
        "flush_ns",
    )

    def __init__(self, sink: Sink, spec: QueueSpec) -> None:
        self.sink = sink
        self.spec = spec
        self.name = sink.name
        self.blocking = spec.policy == "blocking"
        self.capacity = spec.capacity
        self.low = spec.low
        self.warn_level = max(1, int(spec.capacity * spec.warn_ratio))
        self.q: deque[tuple[bytes, int]] = deque()
        self.queued = 0
        self.offered = 0
        self.published = 0
        self.high_water = 0
        self.dropped: dict[str, int] = {}
        self.pauses = 0
        self.paused_s = 0.0
        self.holding = False
        self.hold_since = 0.0
        self.down = False
        self.failures = 0
        self.last_error: str | None = None
        self.wake = asyncio.Event()
        #: queued bytes at which offer() wakes the consumer (_NEVER while it is busy)
        self.wake_at = _NEVER
        self.task: asyncio.Task[None] | None = None
        self.last_warn = -1e18
        self.opened = False
        self.qbytes = 0
        self.first_at = 0.0
        self.batches = 0
        self.retries = 0
        #: how long each successful write / flush took (monotonic ns)
        self.write_ns = HdrHistogram(1, 3_600_000_000_000, 3)
        self.flush_ns = HdrHistogram(1, 3_600_000_000_000, 3)

    def drop(self, n: int, reason: str) -> None:
        self.dropped[reason] = self.dropped.get(reason, 0) + n


class FanOut:
    """Bounded per-sink queues between the hot path and the sinks.

    :param pause_reading: called when a blocking queue reaches capacity.
    :param resume_reading: called when every blocking queue that paused has drained to its
        low watermark.
    :param backoff: factory of the retry policy for a failing sink (one per sink).
    :param clock: monotonic clock, seconds.
    """

    def __init__(
        self,
        *,
        pause_reading: Callable[[], None] | None = None,
        resume_reading: Callable[[], None] | None = None,
        backoff: Callable[[], Backoff] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._pause_cb = pause_reading
        self._resume_cb = resume_reading
        self._backoff = backoff if backoff is not None else Backoff
        self._clock = clock
        self._lanes: list[_Lane] = []
        self._holders = 0
        self._paused_since = 0.0
        self._paused_s = 0.0
        self._pauses = 0
        self._started = False
        self._closed = False

    # -- set-up ---------------------------------------------------------------------------

    def add_sink(self, sink: Sink, spec: QueueSpec | None = None) -> None:
        """Register ``sink`` with its queue ``spec`` (before :meth:`start`)."""
        if self._started:
            raise RuntimeError("add_sink() after start()")
        if any(lane.name == sink.name for lane in self._lanes):
            raise ValueError(f"duplicate sink name {sink.name!r}")
        self._lanes.append(_Lane(sink, spec if spec is not None else QueueSpec()))

    async def start(self) -> None:
        """Open every sink and start its consumer.  A sink that fails to open is retried
        with backoff by its consumer; its queue fills meanwhile."""
        if self._started:
            return
        self._started = True
        for lane in self._lanes:
            try:
                await lane.sink.open()
                lane.opened = True
            except Exception as exc:
                self._failed(lane, "open", exc)
            lane.task = asyncio.create_task(self._consume(lane), name=f"xcol-sink-{lane.name}")

    @property
    def sinks(self) -> list[Sink]:
        """The registered sinks, in order."""
        return [lane.sink for lane in self._lanes]

    # -- hot path -------------------------------------------------------------------------

    def offer(self, batch: bytes, n_records: int) -> None:
        """Queue one batch of ``n_records`` newline-terminated records for every sink.

        Never awaits and never raises for a full queue: lossy sinks drop, blocking sinks
        queue and ask the collector to pause reading.
        """
        if n_records <= 0:
            return
        if self._closed:
            for lane in self._lanes:
                lane.offered += n_records
                lane.drop(n_records, DROP_CLOSED)
            return
        for lane in self._lanes:
            lane.offered += n_records
            q = lane.queued + n_records
            if q > lane.capacity and not lane.blocking:
                if n_records > lane.capacity:
                    lane.drop(n_records, DROP_TOO_LARGE)
                else:
                    lane.drop(n_records, DROP_SINK_DOWN if lane.down else DROP_QUEUE_FULL)
                self._maybe_warn(lane)
                continue
            if not lane.q:
                lane.first_at = self._clock()
            lane.q.append((batch, n_records))
            lane.qbytes += len(batch)
            lane.queued = q
            if q > lane.high_water:
                lane.high_water = q
            if q >= lane.warn_level:
                if lane.blocking and q >= lane.capacity and not lane.holding:
                    self._hold(lane)
                self._maybe_warn(lane)
            if lane.qbytes >= lane.wake_at:
                lane.wake_at = _NEVER
                lane.wake.set()

    def _maybe_warn(self, lane: _Lane) -> None:
        now = self._clock()
        if now - lane.last_warn >= _WARN_EVERY_S:
            lane.last_warn = now
            dropped = sum(lane.dropped.values())
            log.warning("sink %s queue at %d%% (%d/%d records, high water %d, dropped %d)%s",
                        lane.name, 100 * lane.queued // lane.capacity, lane.queued,
                        lane.capacity, lane.high_water, dropped,
                        " - sink down" if lane.down else "")

    # -- pause / resume -----------------------------------------------------------------

    @property
    def paused(self) -> bool:
        """Whether the fan-out currently asks the collector not to read."""
        return self._holders > 0

    @property
    def paused_seconds(self) -> float:
        """Total time reading was paused, including a pause in progress."""
        extra = self._clock() - self._paused_since if self._holders else 0.0
        return self._paused_s + extra

    @property
    def pauses(self) -> int:
        """How many times reading was paused."""
        return self._pauses

    def _hold(self, lane: _Lane) -> None:
        now = self._clock()
        lane.holding = True
        lane.hold_since = now
        lane.pauses += 1
        self._holders += 1
        if self._holders == 1:
            self._paused_since = now
            self._pauses += 1
            log.info("sink %s queue full (%d records): pausing reads", lane.name, lane.queued)
            self._callback(self._pause_cb, "pause_reading")

    def _release(self, lane: _Lane) -> None:
        now = self._clock()
        lane.holding = False
        lane.paused_s += now - lane.hold_since
        self._holders -= 1
        if self._holders == 0:
            self._paused_s += now - self._paused_since
            if not self._closed:  # at shutdown the collector has stopped reading for good
                log.info("sink %s drained to %d records: resuming reads", lane.name,
                         lane.queued)
                self._callback(self._resume_cb, "resume_reading")

    @staticmethod
    def _callback(cb: Callable[[], None] | None, what: str) -> None:
        if cb is None:
            return
        try:
            cb()
        except Exception:
            log.exception("fan-out: %s callback failed", what)

    # -- consumers ------------------------------------------------------------------------

    def _failed(self, lane: _Lane, op: str, exc: BaseException) -> None:
        lane.failures += 1
        lane.last_error = f"{op}: {type(exc).__name__}: {exc}"
        if not lane.down:
            log.warning("sink %s failed (%s); retrying with backoff while its queue "
                        "absorbs the outage", lane.name, lane.last_error)
        lane.down = True

    async def _retry(self, lane: _Lane, backoff: Backoff, op: str,
                     call: Callable[[], Awaitable[None]], hist: HdrHistogram) -> None:
        """Run ``call`` until it succeeds, reopening the sink between attempts; the
        successful call's duration goes to ``hist``."""
        first = True
        while True:
            if not first:
                lane.retries += 1
            first = False
            try:
                if not lane.opened:
                    await lane.sink.open()
                    lane.opened = True
                t0 = time.monotonic_ns()
                await call()
                hist.record(max(1, time.monotonic_ns() - t0))
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self._failed(lane, op if lane.opened else "open", exc)
                if lane.opened:
                    lane.opened = False
                    with contextlib.suppress(Exception):
                        await lane.sink.close()
                await asyncio.sleep(backoff.next_delay())
                continue
            if lane.down:
                lane.down = False
                log.warning("sink %s recovered after %d failure(s)", lane.name, lane.failures)
                backoff.connected()
            return

    async def _consume(self, lane: _Lane) -> None:
        backoff = self._backoff()
        if lane.opened:
            backoff.connected()
        sink = lane.sink
        interval = lane.spec.flush_interval_s
        max_bytes = lane.spec.max_write_bytes
        linger = lane.spec.linger_s
        dirty = False
        last_flush = self._clock()
        while True:
            if not lane.q:
                if self._closed:
                    break
                lane.wake.clear()
                lane.wake_at = 1
                if dirty:
                    timeout = last_flush + interval - self._clock()
                    if timeout > 0:
                        with contextlib.suppress(TimeoutError):
                            await asyncio.wait_for(lane.wake.wait(), timeout)
                    if not lane.q:
                        await self._retry(lane, backoff, "flush", sink.flush, lane.flush_ns)
                        dirty = False
                        last_flush = self._clock()
                else:
                    await lane.wake.wait()
                lane.wake_at = _NEVER
                continue
            if linger > 0 and lane.qbytes < max_bytes and not self._closed:
                # Batching by time: let a small batch grow until it is big or old enough.
                wait = lane.first_at + linger - self._clock()
                if wait > 0:
                    lane.wake.clear()
                    lane.wake_at = max_bytes
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(lane.wake.wait(), wait)
                    lane.wake_at = _NEVER
                    continue
            # Join queued batches into one write: fewer syscalls / round trips per record.
            batch, n = lane.q.popleft()
            lane.qbytes -= len(batch)
            if lane.q and len(batch) < max_bytes:
                parts = [batch]
                size = len(batch)
                while lane.q and size + len(lane.q[0][0]) <= max_bytes:
                    b, k = lane.q.popleft()
                    lane.qbytes -= len(b)
                    parts.append(b)
                    size += len(b)
                    n += k
                batch = b"".join(parts)
            if lane.q:
                lane.first_at = self._clock()
            await self._retry(lane, backoff, "write", _bind_write(sink, batch, n),
                              lane.write_ns)
            lane.batches += 1
            lane.published += n
            lane.queued -= n
            dirty = True
            if lane.holding and lane.queued <= lane.low:
                self._release(lane)
            if self._clock() - last_flush >= interval:
                await self._retry(lane, backoff, "flush", sink.flush, lane.flush_ns)
                dirty = False
                last_flush = self._clock()
        if dirty:
            await self._retry(lane, backoff, "flush", sink.flush, lane.flush_ns)
        lane.opened = False
        await sink.close()

    # -- shutdown -------------------------------------------------------------------------

    async def drain_and_close(self, deadline_s: float) -> DrainReport:
        """Stop accepting, write out every queue, flush and close every sink.

        Sinks that are down keep being retried until ``deadline_s``; whatever is still
        queued then is reported in :attr:`DrainReport.left` and counted as dropped
        (``shutdown``).
        """
        t0 = self._clock()
        if not self._started:
            await self.start()
        self._closed = True
        for lane in self._lanes:
            lane.wake.set()
        tasks = [lane.task for lane in self._lanes if lane.task is not None]
        pending: set[asyncio.Task[None]] = set()
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=deadline_s)
        for t in pending:
            t.cancel()
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)
        errors: dict[str, str] = {}
        left: dict[str, int] = {}
        for lane in self._lanes:
            task = lane.task
            if task is not None and task in pending:
                # Best effort: release what can be released without waiting long.
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(lane.sink.close(), 1.0)
            elif task is not None and task.exception() is not None:
                errors[lane.name] = f"{type(task.exception()).__name__}: {task.exception()}"
            if lane.queued:
                left[lane.name] = lane.queued
                lane.drop(lane.queued, DROP_SHUTDOWN)
                lane.q.clear()
                lane.queued = 0
            if lane.holding:
                self._release(lane)
        elapsed = self._clock() - t0
        report = DrainReport(
            elapsed_s=elapsed, deadline_s=deadline_s, timed_out=bool(pending), left=left,
            published={lane.name: lane.published for lane in self._lanes}, errors=errors,
        )
        if report.complete:
            log.info("fan-out drained and closed in %.3f s", elapsed)
        else:
            log.warning("fan-out closed after %.3f s (deadline %.3f s): left %s, errors %s",
                        elapsed, deadline_s, left, errors)
        return report

    # -- metrics --------------------------------------------------------------------------

    def stats(self) -> dict[str, SinkStats]:
        """Per-sink counters, by sink name."""
        now = self._clock()
        out: dict[str, SinkStats] = {}
        for lane in self._lanes:
            paused_s = lane.paused_s + (now - lane.hold_since if lane.holding else 0.0)
            out[lane.name] = SinkStats(
                name=lane.name, policy=lane.spec.policy, capacity=lane.capacity,
                low_watermark=lane.low, offered=lane.offered, published=lane.published,
                queued=lane.queued, high_water=lane.high_water, dropped=dict(lane.dropped),
                pauses=lane.pauses, paused_s=paused_s, holding_pause=lane.holding,
                healthy=lane.opened and not lane.down and lane.sink.healthy,
                failures=lane.failures, last_error=lane.last_error,
                batches=lane.batches, retries=lane.retries,
                write_us=latency_summary(lane.write_ns, 1000.0),
                flush_us=latency_summary(lane.flush_ns, 1000.0),
            )
        return out

    def histograms(self) -> dict[str, HdrHistogram]:
        """Each sink's write and flush durations (ns), named ``<sink>.write_ns`` and
        ``<sink>.flush_ns``: the same histograms :meth:`stats` summarizes."""
        out: dict[str, HdrHistogram] = {}
        for lane in self._lanes:
            out[f"{lane.name}.write_ns"] = lane.write_ns
            out[f"{lane.name}.flush_ns"] = lane.flush_ns
        return out

    def stats_json(self) -> dict[str, Any]:
        """Everything :meth:`stats` reports plus the global pause state, JSON-ready."""
        return {
            "paused": self.paused,
            "pauses": self.pauses,
            "paused_s": self.paused_seconds,
            "sinks": {k: v.to_json() for k, v in self.stats().items()},
        }
