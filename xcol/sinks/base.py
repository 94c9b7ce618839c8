"""The sink interface the fan-out drives.

A sink receives *batches*: newline-delimited JSON records, already serialized once by the
hot path, many records per batch.  Records are opaque bytes to sinks that store lines
(JSONL, stdout); sinks that need fields parse what they need.

Each sink is driven by one consumer task of :class:`xcol.fanout.FanOut`, so its methods are
never called concurrently.  A method that raises marks the sink down: the fan-out closes it,
waits with backoff, opens it again and retries the same batch (at-least-once: a batch that
failed half-written may be written twice).
"""

from __future__ import annotations

import abc
import asyncio
import concurrent.futures
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from xcol._fast.hdr import HdrHistogram

__all__ = ["Sink", "ThreadedSink"]

T = TypeVar("T")


class Sink(abc.ABC):
    """A destination for serialized records.

    :param name: label used in metrics and logs (unique per fan-out).
    """

    def __init__(self, name: str) -> None:
        self.name = name

    @property
    @abc.abstractmethod
    def healthy(self) -> bool:
        """Whether the sink is open and its last operation succeeded."""

    @abc.abstractmethod
    async def open(self) -> None:
        """Connect / open files.  Called before the first write and after a failure."""

    @abc.abstractmethod
    async def write(self, batch: bytes, n_records: int) -> None:
        """Accept ``n_records`` newline-terminated records; raise if they were not taken."""

    @abc.abstractmethod
    async def flush(self) -> None:
        """Make everything written so far durable (fsync, producer flush...)."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Flush and release resources; must tolerate being called when not open."""

    def stats(self) -> dict[str, Any]:
        """The sink's own counters for ``/stats`` and ``/metrics`` (numbers, or mappings
        of numbers such as percentiles); the fan-out's queue counters come separately."""
        return {}

    def histograms(self) -> dict[str, HdrHistogram]:
        """The sink's HDR histograms by name, unit-suffixed (``write_ns``...), for
        ``/histograms``; the same objects whose percentiles :meth:`stats` reports."""
        return {}

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r}>"


class ThreadedSink(Sink):
    """A sink whose blocking I/O runs on its own single worker thread.

    File and pipe writes can block (page-cache throttling, a full pipe, fsync) and must not
    stall the event loop that reads the sockets; one thread per sink keeps the sink's
    operations in order.
    """

    #: a call still running after this many seconds makes the sink :attr:`stuck`
    stuck_after_s: float = 30.0

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self._executor: concurrent.futures.ThreadPoolExecutor | None = None
        self._inflight_since: float | None = None
        #: the last operation run through :meth:`_guard` succeeded (False until one has)
        self._ok = False

    @property
    def stuck(self) -> bool:
        """A call (a write, a flush) has been running for over :attr:`stuck_after_s`: a
        hung file system or a full pipe nobody reads.  The sink is then not healthy,
        though no call failed."""
        t = self._inflight_since
        return t is not None and time.monotonic() - t > self.stuck_after_s

    async def _call(self, fn: Callable[[], T]) -> T:
        self._inflight_since = time.monotonic()
        try:
            return await self._call_on_thread(fn)
        finally:
            self._inflight_since = None

    async def _guard(self, fn: Callable[[], None]) -> None:
        """Run a file operation on the sink thread and keep :attr:`_ok`: unhealthy from a
        failed operation until one succeeds.  (Not for the time of every call: ``/ready``
        would answer 503 whenever a write was in flight; a call that hangs shows as
        :attr:`stuck` instead.)"""
        try:
            await self._call(fn)
        except BaseException:
            self._ok = False
            raise
        self._ok = True

    async def _call_on_thread(self, fn: Callable[[], T]) -> T:
        if self._executor is None:
            from xcol.runtime import move_thread_off_hot_cpus

            # the writer thread runs off the collector's pinned CPU (when there is another)
            self._executor = concurrent.futures.ThreadPoolExecutor(
                max_workers=1, thread_name_prefix=f"xcol-sink-{self.name}",
                initializer=move_thread_off_hot_cpus)
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn)

    def _shutdown_executor(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=False)
            self._executor = None
