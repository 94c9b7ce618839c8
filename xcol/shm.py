"""Reading the shared-memory ring that the ``shm`` sink writes.

The collector (``[sinks.shm] name = "xcol"``) appends every record to the ring file
``/dev/shm/xcol``; any number of processes on the same machine follow it with a
:class:`Reader`, each at its own position, without slowing the collector down::

    from xcol.shm import Reader

    with Reader("xcol") as r:                  # attaches to /dev/shm/xcol
        for rec in r.follow():                 # bytes: one JSON record, no newline
            if rec.startswith(b'{"type":"bbo"'):
                ...

The writer never waits for readers.  A reader that falls more than a ring behind (it is
*lapped*) counts an ``overrun``, jumps forward to the oldest records still in the ring and
counts what it skipped in ``lost``; it never returns a torn, half-overwritten or
out-of-order record.  docs/sinks.md describes the file layout and the protocol.
"""

from __future__ import annotations

import contextlib
import os
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import TracebackType
from typing import Literal

from xcol._fast.shm import RingError, RingNotFoundError, RingReader, ring_info

__all__ = ["DEFAULT_DIR", "Reader", "RingError", "RingNotFoundError", "check_ring_name",
           "ring_info", "ring_path"]

#: Where rings live by default: tmpfs, shared by every process of the machine.
DEFAULT_DIR = "/dev/shm"

_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,200}")

Start = Literal["latest", "oldest"]


def check_ring_name(name: str) -> str | None:
    """Why ``name`` cannot name a ring file, or ``None`` when it can."""
    if not _NAME_RE.fullmatch(name):
        return (f"ring name {name!r} must be 1-201 letters, digits, '.', '_' or '-', "
                "starting with a letter or digit")
    return None


def ring_path(name: str = "xcol", dir: str | os.PathLike[str] = DEFAULT_DIR) -> Path:
    """The file of ring ``name`` in ``dir``; :class:`ValueError` for a bad name."""
    reason = check_ring_name(name)
    if reason:
        raise ValueError(reason)
    return Path(dir) / name


class Reader(RingReader):
    """Follow the ring ``name`` (the ``[sinks.shm]`` ``name``) from another process.

    :param name: ring name; the file is ``<dir>/<name>``.
    :param dir: ring directory (``/dev/shm`` unless the sink sets ``dir``).
    :param path: the ring file itself (overrides ``name`` and ``dir``).
    :param start: ``"latest"``: only records written from now on; ``"oldest"``: first
        the records still in the ring.
    :raises RingNotFoundError: no ring file there (the writer has not started).
    :raises RingError: the file is not an xcol ring, another format version, or damaged.

    Methods from the core: :meth:`next` (one record or ``None``), :meth:`read_batch`,
    :meth:`read_numbered` (with record numbers), :meth:`stats`, :meth:`close`; counters
    ``records``, ``lost``, ``overruns``, ``abandoned``, ``restarts``; ``lag`` (slots
    behind the writer), ``writer_state``, ``writer_pid``.
    """

    def __init__(self, name: str = "xcol", *, dir: str | os.PathLike[str] = DEFAULT_DIR,
                 path: str | os.PathLike[str] | None = None, start: Start = "latest") -> None:
        self._attach(ring_path(name, dir) if path is None else path, start)

    def __iter__(self) -> Iterator[bytes]:
        """The records available now, in order; stops when caught up (see :meth:`follow`)."""
        while True:
            batch = self.read_batch(1024)
            if not batch:
                return
            yield from batch

    def replaced(self) -> bool:
        """Whether a writer replaced the file under this name (a ring of another geometry,
        or a new one after the old file was removed): :meth:`reattach` to follow it.
        Costs a ``stat`` call; :meth:`follow` checks it only when idle."""
        if self.writer_state == "replaced":
            return True
        try:
            return os.stat(self.path).st_ino != self.inode
        except FileNotFoundError:
            return False

    def reattach(self, start: Start = "oldest") -> None:
        """Map the file now under this reader's path (counted in ``restarts``)."""
        self._attach(self.path, start)

    def follow(self, *, idle_sleep: float = 0.0005, batch: int = 1024,
               stop: Callable[[], bool] | None = None) -> Iterator[bytes]:
        """Yield records as the writer produces them, forever or until ``stop()`` returns
        true while caught up.  When caught up it sleeps ``idle_sleep`` seconds between
        polls (latency vs CPU: a reader that must react in microseconds calls
        :meth:`next` in its own busy loop instead) and follows a replaced ring file."""
        idle = 0
        while True:
            recs = self.read_batch(batch)
            if recs:
                idle = 0
                yield from recs
                continue
            if stop is not None and stop():
                return
            idle += 1
            if idle % 256 == 0 and self.replaced():
                # Mid-replacement (no file yet, or not renamed in): retry at the next check.
                with contextlib.suppress(RingError):
                    self.reattach()
            time.sleep(idle_sleep)

    def __enter__(self) -> Reader:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def __repr__(self) -> str:
        return (f"<Reader {self.path} position={self.position} records={self.records} "
                f"lost={self.lost} overruns={self.overruns}>")
