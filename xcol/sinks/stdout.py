"""The stdout sink: records as newline-delimited JSON on standard output."""

from __future__ import annotations

import sys
from typing import BinaryIO

from xcol.sinks.base import ThreadedSink

__all__ = ["StdoutSink"]


class StdoutSink(ThreadedSink):
    """Write batches to ``sys.stdout.buffer`` (or ``stream``), off the event loop.

    :param stream: binary stream to write to (default: standard output, looked up at open).
    :param name: metrics label.
    """

    def __init__(self, stream: BinaryIO | None = None, *, name: str = "stdout") -> None:
        super().__init__(name)
        self._given = stream
        self._stream: BinaryIO | None = None
        self._ok = False

    @property
    def healthy(self) -> bool:
        return self._stream is not None and self._ok

    async def open(self) -> None:
        self._stream = self._given if self._given is not None else sys.stdout.buffer
        self._ok = True

    async def write(self, batch: bytes, n_records: int) -> None:
        stream = self._stream
        if stream is None:
            raise RuntimeError("stdout sink is not open")
        self._ok = False
        await self._call(lambda: stream.write(batch))
        self._ok = True

    async def flush(self) -> None:
        stream = self._stream
        if stream is not None:
            self._ok = False
            await self._call(stream.flush)
            self._ok = True

    async def close(self) -> None:
        try:
            await self.flush()
        finally:
            # Standard output stays open for the rest of the process.
            self._stream = None
            self._shutdown_executor()
