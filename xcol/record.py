"""``xcol record``: raw frames with their receive time, in a file ``xcol replay`` reads.

The recorder is the collector (same connections, subscriptions, heartbeats, REST
snapshots, reconnects) on the **first endpoint** of every feed, with each text frame and
each Binance REST snapshot body also written as one line of the hftbacktest-style format
``<receive time, ns since the epoch> <payload>`` (gzip when the file name ends in ``.gz``;
one file per instrument when there are several, see :class:`Recorder`).
Only one line per feed is recorded: a capture is the exchange's stream as one connection
saw it, so that replaying it is the same as receiving it.

Frames are written by a Python subclass of the collector's Cython listener, so recording
costs a Python call per frame; that is fine for a recorder and keeps the collector's own
hot path untouched.  The sinks configured in the file still run (a recorder can publish
too).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import gzip
import logging
import sys
import time
from pathlib import Path
from typing import IO, Any

from picows import WSFrame, WSListener, WSMsgType, WSTransport

from xcol._fast.listener import FeedListener

__all__ = ["Recorder", "add_arguments", "run"]

log = logging.getLogger("xcol.record")


class Recorder:
    """Append ``<ns> <payload>`` lines to ``path`` (gzip for ``*.gz``).

    With several ``symbols`` every instrument gets its own file,
    ``<stem>-<SYMBOL><suffixes>`` beside ``path`` (a Binance REST snapshot body names no
    instrument, so a file must hold one instrument for replay to know whose it is); a
    frame goes to the file of the instrument it names and frames naming none (acks,
    heartbeats) are not recorded.
    """

    def __init__(self, path: str | Path, symbols: tuple[str, ...] = ()) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.symbols = tuple(symbols)
        self._keys = [(b'"' + sym.encode() + b'"', sym) for sym in self.symbols]
        self._files: dict[str, tuple[IO[bytes], IO[bytes] | gzip.GzipFile]] = {}
        self.lines = 0
        self.bytes = 0
        self.skipped = 0

    def path_of(self, symbol: str) -> Path:
        """The file ``symbol`` is recorded to."""
        if len(self.symbols) <= 1:
            return self.path
        name = self.path.name
        stem, dot, rest = name.partition(".")
        safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in symbol)
        return self.path.with_name(f"{stem}-{safe}{dot}{rest}")

    def _fh(self, symbol: str) -> IO[bytes] | gzip.GzipFile:
        got = self._files.get(symbol)
        if got is None:
            p = self.path_of(symbol)
            raw: IO[bytes] = open(p, "ab")  # noqa: SIM115 - closed in close()
            fh: IO[bytes] | gzip.GzipFile = (
                gzip.GzipFile(fileobj=raw, mode="ab", compresslevel=3)
                if p.suffix == ".gz" else raw)
            got = self._files[symbol] = (raw, fh)
        return got[1]

    def symbol_of(self, payload: bytes) -> str | None:
        """The configured instrument ``payload`` names (first 400 bytes), if any."""
        head = payload[:400]
        for key, sym in self._keys:
            if key in head:
                return sym
        return None

    def write(self, payload: bytes, symbol: str | None = None, ns: int | None = None) -> None:
        """One line: receive time (ns since the epoch) and the payload as received.
        Payloads with a newline cannot be stored in this format and are skipped."""
        sym = symbol if symbol is not None else self.symbol_of(payload)
        if sym is None or b"\n" in payload:
            self.skipped += 1
            return
        line = b"%d %s\n" % (time.time_ns() if ns is None else ns, payload)
        self._fh(sym).write(line)
        self.lines += 1
        self.bytes += len(line)

    def close(self) -> None:
        """Flush and close every file (gzip members are finished)."""
        for raw, fh in self._files.values():
            fh.close()
            if fh is not raw:
                raw.close()
        self._files.clear()


def recording_listener(recorder: Recorder) -> Any:
    """A listener factory with the FeedListener signature whose listeners write every
    text frame, then hand it to a FeedListener (attributes are the FeedListener's)."""

    class RecordingListener(WSListener):
        def __init__(self, *args: Any, **kw: Any) -> None:
            super().__init__()
            self.inner = FeedListener(*args, **kw)

        def on_ws_connected(self, transport: WSTransport) -> None:
            self.inner.on_ws_connected(transport)

        def on_ws_disconnected(self, transport: WSTransport) -> None:
            self.inner.on_ws_disconnected(transport)

        def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
            if frame.msg_type == WSMsgType.TEXT:
                recorder.write(frame.get_payload_as_bytes())
            self.inner.on_ws_frame(transport, frame)

        def __getattr__(self, name: str) -> Any:
            return getattr(self.inner, name)

    return RecordingListener


async def _record(cfg: Any, out: Path, duration: float) -> int:
    from xcol.app import Collector

    rec = Recorder(out, tuple(s for f in cfg.feeds for s in f.symbols))
    col = Collector(cfg, listener_cls=recording_listener(rec),
                    on_snapshot=lambda sym, body: rec.write(body, sym))
    stop = asyncio.get_running_loop().call_later(duration, col.request_stop) \
        if duration > 0 else None
    try:
        report = await col.run()
    finally:
        if stop is not None:
            stop.cancel()
        rec.close()
    files = sorted({str(rec.path_of(s)) for s in rec.symbols})
    log.info("recorded %d lines (%d bytes) to %s", rec.lines, rec.bytes, ", ".join(files))
    print(f"xcol record: {rec.lines:,} lines to {', '.join(files)}", file=sys.stderr)
    return 0 if report.complete else 1


def add_arguments(p: argparse.ArgumentParser) -> None:
    """``xcol record`` flags: the config flags of ``xcol run`` plus the output file."""
    from xcol.config import add_config_arguments

    add_config_arguments(p)
    p.add_argument("-o", "--out", required=True, metavar="FILE",
                   help="capture to append to (<ns> <json> lines; gzip if it ends in .gz)")
    p.add_argument("--duration", type=float, default=0.0,
                   help="stop after this many seconds (0: until SIGINT/SIGTERM)")


def run(args: argparse.Namespace) -> int:
    """Entry point of ``xcol record``."""
    from xcol.config import ConfigError, config_from_args
    from xcol.runtime import run as run_loop

    try:
        cfg = config_from_args(args)
    except ConfigError as exc:
        print(f"xcol record: {exc}", file=sys.stderr)
        return 2
    feeds = tuple(dataclasses.replace(f, endpoints=f.endpoints[:1]) for f in cfg.feeds)
    cfg = dataclasses.replace(cfg, feeds=feeds)
    logging.basicConfig(level=cfg.runtime.log_level.upper(), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        return run_loop(_record(cfg, Path(args.out), args.duration))
    except ConfigError as exc:    # found at start-up, e.g. a symbol the exchange lacks
        print(f"xcol record: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"xcol record: cannot write {args.out}: {exc}", file=sys.stderr)
        return 2
