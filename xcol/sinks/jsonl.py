"""The JSONL sink: append records to a file, rotate by size and/or age, keep N old files.

Rotation renames the live file to ``<path>.<UTC timestamp>`` (``xcol.jsonl.
20260521T101500.123456Z``) or, with ``naming="numbered"``, shifts ``<path>.1`` (newest) …
``<path>.N`` and renames the live file to ``<path>.1``; then a fresh file is opened.  A
rotated file was fsynced before the rename.  Size rotation happens *before* a write that
would push the file past ``max_bytes`` (a single batch larger than ``max_bytes`` gets a file
of its own); age rotation on the first write or flush after ``max_age_s``; an empty file is
never rotated.  All file I/O runs on the sink's own thread.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from xcol.sinks.base import ThreadedSink

__all__ = ["JsonlSink"]

_STAMP_RE = r"\d{8}T\d{6}\.\d{6}Z(?:-\d+)?"


class JsonlSink(ThreadedSink):
    """Append newline-delimited JSON to ``path``.

    :param path: live file; parent directories are created on open.
    :param max_bytes: rotate before the file would exceed this size (0: never by size).
    :param max_age_s: rotate a file older than this, by the monotonic clock (0: never).
    :param keep: rotated files to keep, oldest deleted first (0: keep all).
    :param naming: ``"timestamp"`` or ``"numbered"`` rotated names.
    :param fsync: fsync on flush, rotation and close.
    :param name: metrics label.
    :param clock: monotonic clock (file age).
    :param wallclock: wall clock for rotated names (UTC).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        max_bytes: int = 0,
        max_age_s: float = 0.0,
        keep: int = 0,
        naming: Literal["timestamp", "numbered"] = "timestamp",
        fsync: bool = True,
        name: str = "jsonl",
        clock: Callable[[], float] = time.monotonic,
        wallclock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(name)
        self.path = Path(path)
        self.max_bytes = max_bytes
        self.max_age_s = max_age_s
        self.keep = keep
        self.naming = naming
        self.fsync = fsync
        self._clock = clock
        self._wallclock = wallclock
        self._fd: int | None = None
        self._size = 0
        self._opened_at = 0.0
        self._dirty = False
        #: Files this sink rotated, in order (most recent last).
        self.rotated: list[Path] = []

    @property
    def healthy(self) -> bool:
        return self._fd is not None and self._ok and not self.stuck

    @property
    def size(self) -> int:
        """Bytes in the live file."""
        return self._size

    # -- async API (each hop runs on the sink thread) --------------------------------

    async def open(self) -> None:
        await self._guard(self._open_sync)

    async def write(self, batch: bytes, n_records: int) -> None:
        await self._guard(lambda: self._write_sync(batch))

    async def flush(self) -> None:
        await self._guard(self._flush_sync)

    async def close(self) -> None:
        try:
            if self._fd is not None:
                await self._guard(self._close_sync)
        finally:
            self._shutdown_executor()


    # -- file operations (sink thread) ------------------------------------------------

    def _open_sync(self) -> None:
        if self._fd is not None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o644)
        self._fd = fd
        self._size = os.fstat(fd).st_size
        self._opened_at = self._clock()
        self._dirty = False

    def _due_by_age(self) -> bool:
        return (self.max_age_s > 0 and self._size > 0
                and self._clock() - self._opened_at >= self.max_age_s)

    def _write_sync(self, batch: bytes) -> None:
        if self._fd is None:
            raise RuntimeError(f"jsonl sink {self.path} is not open")
        if self._size > 0 and (
            (self.max_bytes > 0 and self._size + len(batch) > self.max_bytes)
            or self._due_by_age()
        ):
            self._rotate_sync()
        fd = self._fd
        assert fd is not None
        view = memoryview(batch)
        while view:
            written = os.write(fd, view)
            view = view[written:]
            self._size += written
        self._dirty = True

    def _flush_sync(self) -> None:
        if self._fd is None:
            return
        if self._due_by_age():
            self._rotate_sync()
        elif self._dirty and self.fsync:
            os.fsync(self._fd)
        self._dirty = False

    def _close_sync(self) -> None:
        fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            if self.fsync and self._dirty:
                os.fsync(fd)
        finally:
            os.close(fd)
            self._dirty = False

    def _rotate_sync(self) -> None:
        self._close_sync()
        target = self._numbered_shift() if self.naming == "numbered" else self._stamp_name()
        os.rename(self.path, target)
        self.rotated.append(target)
        self._prune()
        self._open_sync()

    def _stamp_name(self) -> Path:
        stamp = datetime.fromtimestamp(self._wallclock(), UTC).strftime("%Y%m%dT%H%M%S.%fZ")
        target = self.path.with_name(f"{self.path.name}.{stamp}")
        n = 0
        while target.exists():
            n += 1
            target = self.path.with_name(f"{self.path.name}.{stamp}-{n}")
        return target

    def _numbered(self) -> dict[int, Path]:
        pat = re.compile(re.escape(self.path.name) + r"\.(\d+)")
        found: dict[int, Path] = {}
        for p in self.path.parent.iterdir():
            m = pat.fullmatch(p.name)
            if m:
                found[int(m.group(1))] = p
        return found

    def _numbered_shift(self) -> Path:
        for k in sorted(self._numbered(), reverse=True):
            os.rename(self.path.with_name(f"{self.path.name}.{k}"),
                      self.path.with_name(f"{self.path.name}.{k + 1}"))
        return self.path.with_name(f"{self.path.name}.1")

    def rotated_files(self) -> list[Path]:
        """Rotated files on disk, oldest first."""
        if self.naming == "numbered":
            found = self._numbered()
            return [found[k] for k in sorted(found, reverse=True)]
        pat = re.compile(re.escape(self.path.name) + r"\." + _STAMP_RE)
        # Fixed-width stamps sort by time; a "-n" collision suffix sorts after its base.
        return sorted((p for p in self.path.parent.iterdir() if pat.fullmatch(p.name)),
                      key=lambda p: p.name)

    def _prune(self) -> None:
        if self.keep <= 0:
            return
        old = self.rotated_files()
        for p in old[: max(0, len(old) - self.keep)]:
            p.unlink(missing_ok=True)
