"""``xcol record``: raw frames with their receive time, in a file ``xcol replay`` reads.

The recorder is the collector (same connections, subscriptions, heartbeats, REST
snapshots, reconnects) on the **first endpoint** of every feed, with each text frame and
each Binance REST snapshot body also written as one line of the hftbacktest-style format
``<receive time, ns since the epoch> <payload>`` (gzip when the file name ends in ``.gz``;
one file per market and instrument when there are several, see :class:`Recorder`).
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
from collections.abc import Iterable
from pathlib import Path
from typing import IO, Any

from picows import WSFrame, WSListener, WSMsgType, WSTransport

from xcol._fast.listener import FeedListener

__all__ = ["Recorder", "add_arguments", "capture_path", "run"]

log = logging.getLogger("xcol.record")


def capture_path(out: Path, market: str, symbol: str, *, several: bool) -> Path:
    """The file ``xcol record -o out`` writes ``symbol`` of ``market`` to: ``out`` itself
    when it records one instrument, else ``<stem>-<market>-<SYMBOL><suffixes>`` beside it
    (characters other than letters, digits, ``-`` and ``_`` become ``_``)."""
    if not several:
        return out
    stem, dot, rest = out.name.partition(".")
    # market ids are [a-z-]; symbols may hold '/' or ':' on some venues
    safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in f"{market}-{symbol}")
    return out.with_name(f"{stem}-{safe}{dot}{rest}")


class Recorder:
    """Append ``<ns> <payload>`` lines to ``path`` (gzip for ``*.gz``).

    ``instruments`` are the ``(market, symbol)`` pairs recorded.  With several, every
    instrument gets its own file, ``<stem>-<market>-<SYMBOL><suffixes>`` beside ``path``
    (:meth:`path_of`): a Binance REST snapshot body names no instrument, and spot and
    USD-M both have a ``BTCUSDT``, so a file must hold one instrument of one market for
    replay to know whose snapshot and which book rules apply.  A frame goes to the file
    of the instrument it names among its market's; frames naming none (acks, heartbeats)
    are not recorded.

    :raises ValueError: two instruments would be written to the same file.
    """

    def __init__(self, path: str | Path, instruments: Iterable[tuple[str, str]] = ()) -> None:
        self.path = Path(path)
        self.instruments = tuple(instruments)
        self._paths: dict[tuple[str, str], Path] = {}
        owner: dict[Path, tuple[str, str]] = {}
        for inst in self.instruments:
            p = capture_path(self.path, *inst, several=len(self.instruments) > 1)
            if p in owner:
                raise ValueError(f"{inst[0]} {inst[1]} would be recorded to {p}, like "
                                 f"{owner[p][0]} {owner[p][1]}")
            owner[p] = inst
            self._paths[inst] = p
        self._keys: dict[str, list[tuple[bytes, str]]] = {}
        for market, sym in self.instruments:
            self._keys.setdefault(market, []).append((b'"' + sym.encode() + b'"', sym))
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._files: dict[tuple[str, str], tuple[IO[bytes], IO[bytes] | gzip.GzipFile]] = {}
        self.lines = 0
        self.bytes = 0
        self.skipped = 0

    def path_of(self, market: str, symbol: str) -> Path:
        """The file ``symbol`` of ``market`` is recorded to."""
        return self._paths[(market, symbol)]

    @property
    def paths(self) -> list[Path]:
        """Every file this recorder writes, in the order of ``instruments``."""
        return list(self._paths.values())

    def _fh(self, key: tuple[str, str]) -> IO[bytes] | gzip.GzipFile:
        got = self._files.get(key)
        if got is None:
            p = self._paths[key]
            raw: IO[bytes] = open(p, "ab")  # noqa: SIM115 - closed in close()
            fh: IO[bytes] | gzip.GzipFile = (
                gzip.GzipFile(fileobj=raw, mode="ab", compresslevel=3)
                if p.suffix == ".gz" else raw)
            got = self._files[key] = (raw, fh)
        return got[1]

    def symbol_of(self, market: str, payload: bytes) -> str | None:
        """The instrument of ``market`` that ``payload`` names (first 400 bytes), if any."""
        head = payload[:400]
        for key, sym in self._keys.get(market, ()):
            if key in head:
                return sym
        return None

    def write(self, market: str, payload: bytes, symbol: str | None = None,
              ns: int | None = None) -> None:
        """One line to the file of ``symbol`` (default: the instrument the payload names)
        of ``market``: receive time (ns since the epoch) and the payload as received.
        Payloads with a newline cannot be stored in this format and are skipped."""
        sym = symbol if symbol is not None else self.symbol_of(market, payload)
        if sym is None or b"\n" in payload or (market, sym) not in self._paths:
            self.skipped += 1
            return
        line = b"%d %s\n" % (time.time_ns() if ns is None else ns, payload)
        self._fh((market, sym)).write(line)
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
            self.market: str = args[0].market    # the feed's Engine

        def on_ws_connected(self, transport: WSTransport) -> None:
            self.inner.on_ws_connected(transport)

        def on_ws_disconnected(self, transport: WSTransport) -> None:
            self.inner.on_ws_disconnected(transport)

        def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
            if frame.msg_type == WSMsgType.TEXT:
                recorder.write(self.market, frame.get_payload_as_bytes())
            self.inner.on_ws_frame(transport, frame)

        def __getattr__(self, name: str) -> Any:
            return getattr(self.inner, name)

    return RecordingListener


async def _record(cfg: Any, rec: Recorder, duration: float) -> int:
    from xcol.app import Collector

    col = Collector(cfg, listener_cls=recording_listener(rec),
                    on_snapshot=lambda market, sym, body: rec.write(market, body, sym))
    stop = asyncio.get_running_loop().call_later(duration, col.request_stop) \
        if duration > 0 else None
    try:
        report = await col.run()
    finally:
        if stop is not None:
            stop.cancel()
        rec.close()
    files = [str(p) for p in rec.paths]
    log.info("recorded %d lines (%d bytes) to %s", rec.lines, rec.bytes, ", ".join(files))
    print(f"xcol record: {rec.lines:,} lines to {', '.join(files)}", file=sys.stderr)
    return 0 if report.complete else 1


def recorder_for(cfg: Any, out: Path) -> Recorder:
    """The :class:`Recorder` of ``cfg``'s feeds.

    :raises ConfigError: two feeds would write the same file: the same instrument of the
        same market in two feeds (e.g. one feed for depth and one for trades), or two
        symbols that differ only in characters a file name cannot hold."""
    from xcol.config import ConfigError

    instruments = [(f.exchange, s) for f in cfg.feeds for s in f.symbols]
    feed_of = [i for i, f in enumerate(cfg.feeds) for _ in f.symbols]
    try:
        return Recorder(out, instruments)
    except ValueError as exc:
        # name the feeds: the operator fixes the config, not the recorder
        seen: dict[Path, int] = {}
        for inst, i in zip(instruments, feed_of, strict=True):
            p = capture_path(out, *inst, several=True)
            if p in seen:
                raise ConfigError(f"feeds.{i}.symbols", f"{exc} (feeds.{seen[p]}); "
                                  "`xcol record` writes one file per market and instrument: "
                                  "list each instrument in one feed") from None
            seen[p] = i
        raise ConfigError("feeds", str(exc)) from None


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
        # before connecting: a config whose feeds would share a file is refused at once
        rec = recorder_for(cfg, Path(args.out))
    except ConfigError as exc:
        print(f"xcol record: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"xcol record: cannot write {args.out}: {exc}", file=sys.stderr)
        return 2
    feeds = tuple(dataclasses.replace(f, endpoints=f.endpoints[:1]) for f in cfg.feeds)
    cfg = dataclasses.replace(cfg, feeds=feeds)
    logging.basicConfig(level=cfg.runtime.log_level.upper(), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        return run_loop(_record(cfg, rec, args.duration))
    except ConfigError as exc:    # found at start-up, e.g. a symbol the exchange lacks
        print(f"xcol record: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"xcol record: cannot write {args.out}: {exc}", file=sys.stderr)
        return 2
