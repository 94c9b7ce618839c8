"""The shared-memory ring sink: every record into ``/dev/shm/<name>`` for local readers.

Writing is a copy into shared memory, done in C (:class:`xcol._fast.shm.RingWriter`) with
the GIL released: no Python object per record, no syscall, no wait for any reader.  It runs
on the event loop itself (a batch of the ``realtime`` preset, 256 KiB, takes well under a
millisecond), because handing it to a thread would cost more than the copy.

Readers (:class:`xcol.shm.Reader`, other processes) are lossy by design: the writer
overwrites the oldest slots whatever readers are doing; a reader that falls a whole ring
behind is told (``overruns``, ``lost``) and never sees torn data.  See docs/sinks.md.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from typing import Any

from xcol._fast.hdr import HdrHistogram
from xcol._fast.shm import RingError, RingWriter
from xcol.shm import DEFAULT_DIR, ring_path
from xcol.sinks.base import Sink

__all__ = ["ShmSink"]

log = logging.getLogger(__name__)

_WARN_EVERY_S = 10.0


class ShmSink(Sink):
    """Append records to the shared-memory ring ``<dir>/<ring>``.

    :param ring: ring name (the ``[sinks.shm]`` ``name``); readers attach to it by name.
    :param dir: directory of the ring file (tmpfs: ``/dev/shm``).
    :param slots: slots in the ring, a power of two.
    :param slot_size: bytes per slot including its 24-byte header, a multiple of 64;
        a record longer than ``slot_size - 24`` spans consecutive slots.
    :param unlink_on_close: remove the file on close (default: leave it, so readers can
        drain it and a restarted collector continues the same ring).
    :param name: metrics label.
    """

    def __init__(self, ring: str = "xcol", *, dir: str | os.PathLike[str] = DEFAULT_DIR,
                 slots: int = 65536, slot_size: int = 512, unlink_on_close: bool = False,
                 name: str = "shm") -> None:
        super().__init__(name)
        self.path = ring_path(ring, dir)
        self.slots = slots
        self.slot_size = slot_size
        self.unlink_on_close = unlink_on_close
        self._w: RingWriter | None = None
        self._last_warn = 0.0
        #: Records offered to :meth:`write` (= :attr:`records` + :attr:`too_large`).
        self.accepted = 0
        #: Records copied into the ring.
        self.records = 0
        #: Records dropped because they are longer than the ring's ``max_record``.
        self.too_large = 0
        self.batches = 0
        self.bytes = 0
        self.failures = 0
        #: Duration of each :meth:`write`, ns.
        self.write_ns = HdrHistogram(1, 60_000_000, 3)

    @property
    def healthy(self) -> bool:
        return self._w is not None and self._w.is_open

    @property
    def writer(self) -> RingWriter | None:
        """The ring writer while open."""
        return self._w

    async def open(self) -> None:
        if self._w is not None and self._w.is_open:
            return
        # Creating a ring maps and pre-faults the whole file: off the loop.
        try:
            self._w = await asyncio.to_thread(
                RingWriter, self.path, self.slot_size, self.slots, self.unlink_on_close)
        except (OSError, RingError):
            self.failures += 1
            raise
        log.info("shm sink %s: ring %s, %d slots x %d bytes, generation %d, cursor %d",
                 self.name, self.path, self.slots, self.slot_size, self._w.generation,
                 self._w.cursor)

    async def write(self, batch: bytes, n_records: int) -> None:
        w = self._w
        if w is None or not w.is_open:
            self.failures += 1
            raise RingError(f"shm sink {self.name}: ring {self.path} is not open")
        t0 = time.perf_counter_ns()
        before = w.too_large
        k = w.write(batch)
        self.write_ns.record(time.perf_counter_ns() - t0)
        dropped = w.too_large - before
        self.accepted += k + dropped
        self.records += k
        self.batches += 1
        self.bytes += len(batch)
        if dropped:
            self.too_large += dropped
            now = time.monotonic()
            if now - self._last_warn >= _WARN_EVERY_S:
                self._last_warn = now
                log.warning("shm sink %s: %d record(s) longer than %d bytes dropped "
                            "(%d in total); raise slot_size or slots", self.name, dropped,
                            w.max_record, self.too_large)

    async def flush(self) -> None:
        """Nothing to do: readers see a record as soon as :meth:`write` returns."""

    async def close(self) -> None:
        w, self._w = self._w, None
        if w is not None:
            w.close()

    def histograms(self) -> dict[str, HdrHistogram]:
        """Batch write durations into the ring (ns)."""
        return {"write_ns": self.write_ns}

    def stats(self) -> dict[str, Any]:
        """Counters for /metrics: ``accepted = records + too_large``."""
        w = self._w
        h = self.write_ns
        return {
            "path": str(self.path), "healthy": self.healthy, "accepted": self.accepted,
            "records": self.records, "too_large": self.too_large, "batches": self.batches,
            "bytes": self.bytes, "failures": self.failures,
            "generation": w.generation if w is not None else 0,
            "cursor": w.cursor if w is not None else 0,
            "write_ns": {"count": h.total_count, "p50": h.value_at_percentile(50.0),
                         "p99": h.value_at_percentile(99.0), "max": h.max()},
        }
