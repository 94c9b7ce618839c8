"""Fan-out: blocking and lossy policies, retries, drain, and counters that reconcile."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import pytest

from xcol.fanout import FanOut, QueueSpec, SinkStats
from xcol.net.backoff import Backoff
from xcol.sinks.base import Sink
from xcol.sinks.jsonl import JsonlSink

Runner = Callable[[Coroutine[Any, Any, None]], None]


@pytest.fixture(params=["asyncio", "uvloop"])
def run(request: pytest.FixtureRequest) -> Runner:
    """Run a coroutine on the default loop and on uvloop."""
    if request.param == "uvloop":
        uvloop = pytest.importorskip("uvloop")
        return uvloop.run  # type: ignore[no-any-return]
    return asyncio.run


def rec(i: int) -> bytes:
    return b'{"i":%d}\n' % i


def batch(start: int, n: int) -> bytes:
    return b"".join(rec(i) for i in range(start, start + n))


class MemorySink(Sink):
    """Keeps what it was given; ``gate`` (when set) must open before a write completes;
    ``fail_writes`` makes that many writes raise first."""

    def __init__(self, name: str = "mem", *, gate: asyncio.Event | None = None,
                 fail_writes: int = 0) -> None:
        super().__init__(name)
        self.gate = gate
        self.fail_writes = fail_writes
        self.data: list[bytes] = []
        self.records = 0
        self.writes = 0
        self.opens = 0
        self.closes = 0
        self.flushes = 0
        self.is_open = False

    @property
    def healthy(self) -> bool:
        return self.is_open

    async def open(self) -> None:
        self.opens += 1
        self.is_open = True

    async def write(self, batch: bytes, n_records: int) -> None:
        self.writes += 1
        if self.gate is not None:
            await self.gate.wait()
        if self.fail_writes > 0:
            self.fail_writes -= 1
            raise OSError("connection refused")
        assert batch.count(b"\n") == n_records
        self.data.append(batch)
        self.records += n_records

    async def flush(self) -> None:
        self.flushes += 1

    async def close(self) -> None:
        self.closes += 1
        self.is_open = False


def fast_backoff() -> Backoff:
    return Backoff(0.001, 0.005, reset_after_s=0.0)


def reconciles(s: SinkStats) -> bool:
    return s.offered == s.published + s.dropped_total + s.queued


async def until(cond: object, timeout: float = 5.0) -> None:
    assert callable(cond)
    t0 = time.monotonic()
    while not cond():
        assert time.monotonic() - t0 < timeout, "condition not reached"
        await asyncio.sleep(0.001)


def test_blocking_stalled_sink_pauses_then_resumes_without_drops(run: Runner) -> None:
    async def main() -> None:
        gate = asyncio.Event()
        sink = MemorySink(gate=gate)
        events: list[str] = []
        fo = FanOut(pause_reading=lambda: events.append("pause"),
                    resume_reading=lambda: events.append("resume"), backoff=fast_backoff)
        fo.add_sink(sink, QueueSpec("blocking", capacity=10, low_watermark=4))
        await fo.start()
        for k in range(20):  # 40 records into a queue of 10: it must not drop any
            fo.offer(batch(2 * k, 2), 2)
            if k == 4:
                assert events == ["pause"] and fo.paused
            await asyncio.sleep(0)
        st = fo.stats()["mem"]
        assert st.dropped_total == 0 and st.queued == 40 and st.published == 0
        assert st.holding_pause and st.pauses == 1 and reconciles(st)
        assert events == ["pause"]  # not repeated while still paused
        await asyncio.sleep(0.02)
        gate.set()
        await until(lambda: not fo.paused)
        assert events == ["pause", "resume"]
        assert fo.pauses == 1 and fo.paused_seconds >= 0.02
        st = fo.stats()["mem"]
        assert st.queued <= 4 and st.paused_s >= 0.02 and reconciles(st)
        report = await fo.drain_and_close(5.0)
        assert report.complete and report.published == {"mem": 40}
        st = fo.stats()["mem"]
        assert st.published == 40 and st.dropped_total == 0 and st.queued == 0
        assert st.high_water == 40 and reconciles(st)
        assert b"".join(sink.data) == batch(0, 40)  # every record, in order
        assert sink.closes == 1

    run(main())


def test_lossy_drops_and_counts_and_never_pauses(run: Runner) -> None:
    async def main() -> None:
        gate = asyncio.Event()
        sink = MemorySink(gate=gate)
        paused: list[int] = []
        fo = FanOut(pause_reading=lambda: paused.append(1), backoff=fast_backoff)
        fo.add_sink(sink, QueueSpec("lossy", capacity=10))
        await fo.start()
        # All offers from plain synchronous code: offer() never needs the loop to turn.
        for k in range(20):
            fo.offer(batch(2 * k, 2), 2)
        fo.offer(batch(0, 11), 11)  # bigger than the whole queue
        st = fo.stats()["mem"]
        assert st.queued == 10 and st.published == 0
        assert st.dropped == {"queue_full": 30, "too_large": 11}
        assert reconciles(st) and not paused and not fo.paused
        gate.set()
        report = await fo.drain_and_close(5.0)
        assert report.complete
        st = fo.stats()["mem"]
        assert st.published == 10 == sink.records and reconciles(st)

    run(main())


def test_failing_sink_is_retried_then_recovers(run: Runner) -> None:
    async def main() -> None:
        sink = MemorySink(fail_writes=3)
        fo = FanOut(backoff=fast_backoff)
        fo.add_sink(sink, QueueSpec("blocking", capacity=1000))
        await fo.start()
        for k in range(10):
            fo.offer(batch(5 * k, 5), 5)
        await until(lambda: sink.records == 50)
        st = fo.stats()["mem"]
        assert st.failures == 3 and st.healthy and st.dropped_total == 0
        assert st.last_error is not None and "connection refused" in st.last_error
        assert sink.opens == 4 and sink.closes == 3  # reopened after each failure
        assert b"".join(sink.data) == batch(0, 50)
        # every failed write was attempted again; each successful write counted and timed
        assert st.retries == 3
        assert st.batches == len(sink.data) >= 1
        assert st.write_us is not None and st.write_us["count"] == st.batches
        assert fo.histograms()["mem.write_ns"].total_count == st.batches
        assert (await fo.drain_and_close(5.0)).complete
        st = fo.stats()["mem"]
        assert st.flush_us is not None and st.flush_us["count"] >= 1
        assert st.retries == 3 and st.failures == 3

    run(main())


def test_lossy_sink_down_absorbs_then_drops_as_sink_down(run: Runner) -> None:
    async def main() -> None:
        sink = MemorySink(fail_writes=10**9)
        fo = FanOut(backoff=fast_backoff)
        fo.add_sink(sink, QueueSpec("lossy", capacity=6))
        await fo.start()
        fo.offer(batch(0, 2), 2)
        await until(lambda: fo.stats()["mem"].failures >= 1)
        for k in range(1, 6):
            fo.offer(batch(2 * k, 2), 2)
        st = fo.stats()["mem"]
        assert st.queued == 6 and st.dropped == {"sink_down": 6} and not st.healthy
        sink.fail_writes = 0  # the sink comes back: what the queue absorbed is delivered
        await until(lambda: fo.stats()["mem"].queued == 0)
        assert sink.records == 6 and reconciles(fo.stats()["mem"])
        await fo.drain_and_close(5.0)

    run(main())


def test_drain_and_close_writes_everything_to_jsonl(tmp_path: Path, run: Runner) -> None:
    path = tmp_path / "out" / "xcol.jsonl"

    async def main() -> None:
        fo = FanOut()
        fo.add_sink(JsonlSink(path, max_bytes=0), QueueSpec("blocking", capacity=1_000_000))
        fo.add_sink(MemorySink("mem"), QueueSpec("lossy", capacity=1_000_000))
        await fo.start()
        for k in range(1000):
            fo.offer(batch(10 * k, 10), 10)
        report = await fo.drain_and_close(10.0)
        assert report.complete and report.published == {"jsonl": 10_000, "mem": 10_000}
        for st in fo.stats().values():
            assert st.published == 10_000 and st.queued == 0 and reconciles(st)
        fo.offer(batch(0, 3), 3)  # after close: refused and counted
        assert all(s.dropped == {"closed": 3} and reconciles(s) for s in fo.stats().values())

    run(main())
    lines = path.read_bytes().splitlines()
    assert len(lines) == 10_000
    assert lines[0] == b'{"i":0}' and lines[-1] == b'{"i":9999}'


def test_drain_deadline_reports_what_was_left(run: Runner) -> None:
    async def main() -> None:
        sink = MemorySink(gate=asyncio.Event())  # never opens
        fo = FanOut()
        fo.add_sink(sink, QueueSpec("blocking", capacity=100))
        await fo.start()
        fo.offer(batch(0, 7), 7)
        report = await fo.drain_and_close(0.05)
        assert report.timed_out and report.left == {"mem": 7} and not report.complete
        st = fo.stats()["mem"]
        assert st.dropped == {"shutdown": 7} and st.queued == 0 and reconciles(st)

    run(main())


def test_pause_held_until_every_blocking_sink_drains(run: Runner) -> None:
    async def main() -> None:
        g1, g2 = asyncio.Event(), asyncio.Event()
        events: list[str] = []
        fo = FanOut(pause_reading=lambda: events.append("pause"),
                    resume_reading=lambda: events.append("resume"))
        fo.add_sink(MemorySink("a", gate=g1), QueueSpec("blocking", capacity=4))
        fo.add_sink(MemorySink("b", gate=g2), QueueSpec("blocking", capacity=4))
        await fo.start()
        for k in range(4):
            fo.offer(batch(k, 1), 1)
        assert events == ["pause"]
        g1.set()
        await until(lambda: fo.stats()["a"].queued == 0)
        assert events == ["pause"] and fo.paused  # b still full
        g2.set()
        await until(lambda: not fo.paused)
        assert events == ["pause", "resume"]
        assert (await fo.drain_and_close(5.0)).complete

    run(main())


def test_queue_spec_validation() -> None:
    with pytest.raises(ValueError):
        QueueSpec("lossy", capacity=0)
    with pytest.raises(ValueError):
        QueueSpec("blocking", capacity=10, low_watermark=10)
    assert QueueSpec(capacity=10).low == 5


def test_linger_batches_by_time_and_by_size(run: Runner) -> None:
    """With ``linger_s`` small batches wait to be joined into one write; a queue that
    reaches ``max_write_bytes`` is written without waiting."""

    async def main() -> None:
        sink = MemorySink()
        size = len(batch(100, 30))
        fo = FanOut()
        fo.add_sink(sink, QueueSpec(linger_s=0.3, max_write_bytes=size))
        await fo.start()
        t0 = time.monotonic()
        fo.offer(batch(0, 10), 10)
        fo.offer(batch(10, 10), 10)
        await asyncio.sleep(0.1)
        assert sink.writes == 0, "wrote before the linger time or the size was reached"
        while sink.writes == 0:
            await asyncio.sleep(0.01)
        assert time.monotonic() - t0 >= 0.29
        assert sink.writes == 1 and sink.data[0] == batch(0, 20)
        # By size: three batches reach max_write_bytes and go out well before 0.3 s.
        t1 = time.monotonic()
        for k in range(3):
            fo.offer(batch(100 + 10 * k, 10), 10)
        while sink.writes == 1:
            await asyncio.sleep(0.005)
        assert time.monotonic() - t1 < 0.2
        assert sink.data[1] == batch(100, 30)
        rep = await fo.drain_and_close(5.0)
        assert rep.complete and sink.records == 50

    run(main())
