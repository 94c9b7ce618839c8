"""The collector: redundant lines per feed, arbitration, books, fan-out, HTTP.

:class:`Collector` wires one :class:`~xcol._fast.engine.Engine` per feed to
its lines (one picows connection each, fed by the Cython
:class:`~xcol._fast.listener.FeedListener`), keeps Binance books synced from
REST snapshots (rate-limited), answers heartbeats, reconnects with backoff,
hands the encoded records to the :class:`~xcol.fanout.FanOut`, serves
``/health``, ``/ready``, ``/metrics`` and ``/stats``, and shuts down by
draining every sink.  At start-up, before any line connects, each feed reads
its instruments' tick and lot sizes from the exchange's instrument list
(:func:`~xcol.exchanges.meta.fetch_instruments`), so every book has its scales
before its first frame.  Everything here is control plane; the per-frame work is
in Cython.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from picows import WSMsgType, ws_connect

from xcol._fast.engine import Engine
from xcol._fast.hdr import HdrHistogram
from xcol._fast.listener import FeedListener, monotonic_ns
from xcol.config import Config, ConfigError, FeedConfig
from xcol.exchanges import protocols
from xcol.exchanges.meta import MetadataError, fetch_instruments
from xcol.fanout import DrainReport, FanOut
from xcol.net.backoff import Backoff, TokenBucket
from xcol.net.rest import RestError, get
from xcol.obs.http import ObsServer
from xcol.obs.schema import latency_summary
from xcol.sinks import build_sinks

log = logging.getLogger("xcol")

CHANNEL_NAMES = {1: "depth", 3: "bbo", 4: "trades"}
#: the engine's channels (xcol._fast.event Channel) each configured channel feeds
ENGINE_CHANNELS = {"depth": (1, 2), "bbo": (3,), "trades": (4, 5)}
#: OKX/Deribit: seconds before a book still out of sync is resubscribed again.
RESUBSCRIBE_RETRY_S = 2.0
#: Start-up: the longest wait for one instrument-list request.
INSTRUMENTS_TIMEOUT_S = 10.0


def _stream_counters(eng: Engine, sym: str, channel: str) -> dict[str, Any]:
    """The engine's measured counters of one configured stream (summed over the engine
    channels it is carried on): received, published, duplicates, dropped (and by
    reason), pending."""
    out: dict[str, Any] = {"received": 0, "published": 0, "in_snapshot": 0, "duplicates": 0,
                           "dropped": 0, "pending": 0}
    reasons: dict[str, int] = {}
    for ch in ENGINE_CHANNELS.get(channel, ()):
        c = eng.stream_counters(sym, ch)
        for k in out:
            out[k] += c[k]
        for k, v in c["dropped_by_reason"].items():
            reasons[k] = reasons.get(k, 0) + v
        if channel != "depth" and c["last_seq"] is not None:
            out["last_seq"] = c["last_seq"]
    out["dropped_by_reason"] = reasons
    return out


@dataclass
class Line:
    """One connection slot of a feed; its id is the engine's line id."""

    feed: FeedRuntime
    line_id: int
    endpoint: str
    conn: protocols.Connection
    state: str = "idle"
    reconnects: int = 0
    connected_at: float = 0.0
    listener: FeedListener | None = None
    transport: Any = None
    task: asyncio.Task[None] | None = None
    next_id: int = 100
    last_ping: float = 0.0
    #: make-before-break rotation: set to ask the line loop for a fresh connection
    rotate: asyncio.Event = field(default_factory=asyncio.Event)
    rotate_reason: str = ""
    rotations: int = 0
    #: win-rate rule: (wins, updates) at the start of the current period
    period_base: tuple[int, int] = (0, 0)


@dataclass
class FeedRuntime:
    """One ``[[feeds]]`` entry at run time."""

    cfg: FeedConfig
    engine: Engine
    lines: list[Line] = field(default_factory=list)
    snapshots: TokenBucket | None = None
    snapshot_errors: int = 0
    resubscribes: int = 0
    #: where the books' scales came from: "exchange" (its instrument list), "default"
    #: (the list could not be read, or ``fetch_instruments = false``), "" (not loaded yet)
    scales: str = ""
    #: start-up instrument-list fetches that failed (the feed then runs on default scales)
    instrument_fetch_failures: int = 0


class Collector:
    """Run the feeds of ``cfg`` until :meth:`stop`."""

    def __init__(self, cfg: Config, *, listener_cls: Any = FeedListener,
                 on_snapshot: Callable[[str, bytes], None] | None = None) -> None:
        """:param listener_cls: the per-connection listener (``xcol record`` passes one
        that also writes each frame); :param on_snapshot: called with the symbol and body
        of every REST snapshot fetched."""
        self.cfg = cfg
        self._listener_cls = listener_cls
        self._on_snapshot = on_snapshot
        self.feeds: list[FeedRuntime] = []
        self.fanout = FanOut(pause_reading=self._pause, resume_reading=self._resume)
        self.http: ObsServer | None = None
        self._stopping = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._paused = False
        self.started = time.time()
        rt = cfg.runtime
        for fc in cfg.feeds:
            # instruments are registered in start(), once their scales are known
            eng = Engine(fc.exchange, rt.max_frame_bytes)
            eng.set_reorder_window(int(rt.reorder_window_ms * 1e6))
            eng.set_top(rt.top_levels, int(rt.top_interval_ms * 1e6))
            eng.book_ladder = rt.book_ladder
            eng.stage_timing = rt.stage_latency
            fr = FeedRuntime(fc, eng, snapshots=TokenBucket(rt.resync.rate_per_s,
                                                            rt.resync.burst))
            n = 0
            for ep in fc.endpoints:
                for conn in protocols.connections(fc.exchange, ep, fc.symbols, fc.channels):
                    if n >= 16:
                        raise ValueError(f"feed {fc.name or fc.exchange}: more than 16 lines")
                    fr.lines.append(Line(fr, n, ep, conn))
                    n += 1
            self.feeds.append(fr)

    # ---------------------------------------------------------- lifecycle

    async def load_instruments(self) -> None:
        """Register every feed's instruments with its engine, at the scales of the
        exchange's instrument list (fetched concurrently for all feeds).

        A symbol the exchange does not list stops start-up with a :class:`ConfigError`
        naming it.  When the list cannot be read (REST down, timeout, HTTP error, a body
        that is not an instrument list), the feed warns, counts it and keeps the default
        scales (8 decimals: a price or size with more decimals is refused, loudly).
        Idempotent; :meth:`start` calls it before any line connects.
        """
        todo = [(i, fr) for i, fr in enumerate(self.feeds) if not fr.scales]
        # every fetch runs to its end (none is left running unawaited), then the
        # first error, if any, stops start-up
        results = await asyncio.gather(*(self._fetch_scales(i, fr) for i, fr in todo),
                                       return_exceptions=True)
        found: list[dict[str, tuple[int, int, int]]] = []
        for res in results:
            if isinstance(res, BaseException):
                raise res
            found.append(res)
        for (_, fr), scales in zip(todo, found, strict=True):
            for sym in fr.cfg.symbols:
                ps, qs, grid = scales.get(sym, (-1, -1, 0))
                fr.engine.add_instrument(sym, ps, qs, grid)
            fr.scales = "exchange" if scales else "default"

    async def _fetch_scales(self, index: int,
                            fr: FeedRuntime) -> dict[str, tuple[int, int, int]]:
        fc = fr.cfg
        if not fc.fetch_instruments:
            return {}
        try:
            listed, asked = await fetch_instruments(fc.exchange, fc.rest, fc.symbols,
                                                    INSTRUMENTS_TIMEOUT_S)
        except (RestError, MetadataError) as exc:
            fr.instrument_fetch_failures += 1
            log.warning("%s: cannot read the instrument list (%s); books of %s use the "
                        "default scales (%d price / %d size decimals): a price or size "
                        "with more decimals will be refused", fc.name, exc,
                        ", ".join(fc.symbols), fr.engine.default_price_scale,
                        fr.engine.default_qty_scale)
            return {}
        missing = [s for s in fc.symbols if s not in listed]
        if missing:
            raise ConfigError(
                f"feeds.{index}.symbols",
                f"{fc.exchange} does not list {', '.join(map(repr, missing))} "
                f"(instrument list from {', '.join(asked)}; {len(listed)} instruments)")
        scales = {s: (listed[s].price_scale, listed[s].qty_scale, listed[s].grid)
                  for s in fc.symbols}
        log.info("%s: scales from the instrument list: %s", fc.name,
                 ", ".join(f"{s} {p}/{q}" for s, (p, q, _) in scales.items()))
        return scales

    async def start(self) -> None:
        """Load the instruments' scales, then open sinks, the HTTP server and every line.

        :raises ConfigError: a configured symbol is not in the exchange's instrument list
            (nothing has been opened yet).
        """
        await self.load_instruments()
        for sink, spec in build_sinks(self.cfg.sinks):
            self.fanout.add_sink(sink, spec)
        await self.fanout.start()
        if self.cfg.runtime.http is not None:
            self.http = ObsServer(self.stats, self.ready)
            await self.http.start(self.cfg.runtime.http.host, self.cfg.runtime.http.port)
            log.info("http on %s", self.http.url)
        for fr in self.feeds:
            for ln in fr.lines:
                ln.task = asyncio.create_task(self._line_loop(ln), name=f"line-{ln.line_id}")
                self._tasks.append(ln.task)
            self._tasks.append(asyncio.create_task(self._snapshot_loop(fr)))
            self._tasks.append(asyncio.create_task(self._resubscribe_loop(fr)))
        self._tasks.append(asyncio.create_task(self._tick_loop()))

    def request_stop(self) -> None:
        """Ask :meth:`run` to shut down (signal handlers call this)."""
        self._stopping.set()

    async def run(self) -> DrainReport:
        """Start, run until SIGTERM/SIGINT (or :meth:`request_stop`), then stop."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, self.request_stop)
        await self.start()
        await self._stopping.wait()
        return await self.stop()

    async def stop(self) -> DrainReport:
        """Stop reading, publish what the engines hold, drain and close every sink."""
        t0 = time.monotonic()
        self._stopping.set()
        for task in self._tasks:
            task.cancel()
        for fr in self.feeds:
            for ln in fr.lines:
                if ln.transport is not None:
                    ln.transport.disconnect(False)
                if ln.listener is not None:
                    ln.listener.flush()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for fr in self.feeds:
            # no frame comes any more: what the books still hold (ahead of a hole, or
            # waiting for a snapshot) is dropped, counted with reason "shutdown"
            n = fr.engine.discard_pending()
            if n:
                log.info("%s: %d held updates dropped at shutdown", fr.cfg.exchange, n)
        report = await self.fanout.drain_and_close(self.cfg.runtime.shutdown_deadline_s)
        if self.http is not None:
            await self.http.stop()
        log.info("shutdown in %.3f s (deadline %.1f s): %s", time.monotonic() - t0,
                 self.cfg.runtime.shutdown_deadline_s,
                 "complete" if report.complete else f"incomplete, left {report.left}")
        c = self.stats()["counters"]
        log.info("final counters: received %d published %d (in snapshots %d) duplicates %d "
                 "dropped %d pending %d %s", c["received"], c["published"], c["in_snapshot"],
                 c["duplicates"], c["dropped"], c["pending"], c["dropped_by_reason"])
        for sk in self.fanout.stats().values():
            log.info("final sink %s: offered %d published %d dropped %d queued %d", sk.name,
                     sk.offered, sk.published, sk.dropped_total, sk.queued)
        return report

    # ---------------------------------------------------------- lines

    def _on_control(self, ln: Line) -> Any:
        def handle(line_id: int, payload: bytes) -> None:
            if b'"serverShutdown"' in payload:
                self.request_rotation(ln, "serverShutdown")
                return
            if not ln.conn.heartbeat:
                return
            ln.next_id += 1
            reply = protocols.heartbeat_reply(payload, ln.next_id)
            if reply is not None and ln.transport is not None:
                ln.transport.send(WSMsgType.TEXT, reply.encode())
        return handle

    def _factory(self, ln: Line, eng: Engine) -> Callable[[], FeedListener]:
        def make() -> Any:
            lst = self._listener_cls(eng, ln.line_id, self.fanout.offer,
                                     self._on_control(ln))
            ln.listener = lst
            return lst
        return make

    def request_rotation(self, ln: Line, reason: str) -> None:
        """Replace ``ln``'s connection make-before-break: a new connection is opened and
        subscribed, and the old one is closed once the new one delivers data."""
        if ln.transport is not None and not ln.rotate.is_set():
            ln.rotate_reason = reason
            ln.rotate.set()

    async def _connect(self, ln: Line, eng: Engine) -> Any:
        # the listener answers pings itself (see FeedListener.on_ws_frame)
        transport, _ = await ws_connect(
            self._factory(ln, eng), ln.conn.url, max_frame_size=self.cfg.runtime.max_frame_bytes,
            websocket_handshake_timeout=10, enable_auto_pong=False)
        for msg in ln.conn.subscribe:
            transport.send(WSMsgType.TEXT, msg.encode())
        if self._paused:
            transport.underlying_transport.pause_reading()
        return transport

    async def _make_before_break(self, ln: Line, eng: Engine, old: Any) -> Any:
        """Open the replacement of ``old``; returns it (``old`` closed) or ``old`` when
        the replacement could not be made (the old connection then stays)."""
        reason = ln.rotate_reason
        old_listener = ln.listener
        try:
            new = await self._connect(ln, eng)
        except Exception as exc:  # noqa: BLE001 - keep the old connection
            ln.listener = old_listener
            log.warning("line %d %s: rotation (%s) failed to connect (%s); keeping the "
                        "current connection", ln.line_id, ln.conn.url, reason, exc)
            return old
        lst = ln.listener
        deadline = time.monotonic() + 10.0
        while (lst is not None and lst.last_rx == 0 and time.monotonic() < deadline
               and not self._stopping.is_set()):
            await asyncio.sleep(0.005)
        ln.transport = new
        ln.connected_at = time.monotonic()
        ln.rotations += 1
        old.disconnect(False)
        log.info("line %d %s: rotated (%s), make-before-break", ln.line_id, ln.conn.url,
                 reason)
        return new

    async def _line_loop(self, ln: Line) -> None:
        rt = self.cfg.runtime
        backoff = Backoff(rt.backoff.base_s, rt.backoff.cap_s, rt.backoff.reset_after_s)
        eng = ln.feed.engine
        while not self._stopping.is_set():
            ln.state = "connecting"
            try:
                transport = await self._connect(ln, eng)
            except Exception as exc:  # noqa: BLE001 - any failure means: back off, retry
                ln.state = "backoff"
                ln.reconnects += 1
                delay = backoff.next_delay()
                log.warning("line %d %s: connect failed (%s); retry in %.2f s",
                            ln.line_id, ln.conn.url, exc, delay)
                await self._sleep(delay)
                continue
            ln.transport = transport
            ln.state = "connected"
            ln.connected_at = time.monotonic()
            ln.rotate.clear()
            backoff.connected()
            while True:
                closed = asyncio.ensure_future(transport.wait_disconnected())
                rotate = asyncio.ensure_future(ln.rotate.wait())
                await asyncio.wait({closed, rotate}, return_when=asyncio.FIRST_COMPLETED)
                rotate.cancel()
                if closed.done():
                    break
                closed.cancel()
                transport = await self._make_before_break(ln, eng, transport)
                ln.rotate.clear()
            ln.transport = None
            if self._stopping.is_set():
                break
            ln.state = "backoff"
            ln.reconnects += 1
            delay = backoff.next_delay()
            log.warning("line %d %s: disconnected; reconnect in %.2f s", ln.line_id,
                        ln.conn.url, delay)
            await self._sleep(delay)
        ln.state = "closed"

    async def _sleep(self, s: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), s)

    def _pause(self) -> None:
        self._paused = True
        for fr in self.feeds:
            for ln in fr.lines:
                if ln.transport is not None:
                    ln.transport.underlying_transport.pause_reading()

    def _resume(self) -> None:
        self._paused = False
        for fr in self.feeds:
            for ln in fr.lines:
                if ln.transport is not None:
                    ln.transport.underlying_transport.resume_reading()

    # ---------------------------------------------------------- periodic work

    async def _tick_loop(self) -> None:
        """Reorder-window expiry, heartbeats and the stale-stream watchdog."""
        rt = self.cfg.runtime
        next_period = time.monotonic() + rt.rotation.period_s
        while not self._stopping.is_set():
            await asyncio.sleep(0.001)
            now = monotonic_ns()
            for fr in self.feeds:
                fr.engine.poll(now)
                for ln in fr.lines:
                    lst, tr = ln.listener, ln.transport
                    if tr is None or lst is None:
                        continue
                    quiet = (now - lst.last_rx) / 1e9 if lst.last_rx else (
                        time.monotonic() - ln.connected_at)
                    if (ln.conn.ping_text and quiet > ln.conn.ping_after_s
                            and time.monotonic() - ln.last_ping > ln.conn.ping_after_s):
                        tr.send(WSMsgType.TEXT, ln.conn.ping_text.encode())
                        ln.last_ping = time.monotonic()
                    elif quiet > rt.stale_timeout_s and not self._paused:
                        log.warning("line %d %s: no data for %.1f s; reconnecting",
                                    ln.line_id, ln.conn.url, quiet)
                        tr.disconnect(False)
                    elif time.monotonic() - ln.connected_at > rt.rotation.max_age_s:
                        self.request_rotation(ln, f"age over {rt.rotation.max_age_s:.0f} s")
            if time.monotonic() >= next_period:
                next_period = time.monotonic() + rt.rotation.period_s
                self._rotate_losers()

    def _rotate_losers(self) -> None:
        """Win-rate rule: in a feed with several lines, the line that won the smallest
        share of the updates it carried over the last period is reconnected when that
        share is below ``rotation.min_win_rate`` (one line per feed per period)."""
        floor = self.cfg.runtime.rotation.min_win_rate
        for fr in self.feeds:
            worst: tuple[float, Line] | None = None
            for ln in fr.lines:
                st = fr.engine.line_stats(ln.line_id)
                wins, updates = int(st["wins"]), int(st["updates"])
                dw, du = wins - ln.period_base[0], updates - ln.period_base[1]
                ln.period_base = (wins, updates)
                if floor <= 0 or len(fr.lines) < 2 or ln.transport is None or du < 100:
                    continue
                rate = dw / du
                if rate < floor and (worst is None or rate < worst[0]):
                    worst = (rate, ln)
            if worst is not None:
                self.request_rotation(worst[1], f"win rate {worst[0]:.1%} below {floor:.0%} "
                                      f"over {self.cfg.runtime.rotation.period_s:g} s")

    async def _snapshot_loop(self, fr: FeedRuntime) -> None:
        """Binance: load a REST snapshot into every book that waits for one (rate-limited
        per feed, ``runtime.resync``)."""
        if not fr.cfg.exchange.startswith("binance") or "depth" not in fr.cfg.channels:
            return
        eng = fr.engine
        while not self._stopping.is_set():
            await asyncio.sleep(0.02)
            for sym in fr.cfg.symbols:
                book = eng.book(sym)
                if book.synced or book.pending == 0:
                    continue
                assert fr.snapshots is not None
                if not fr.snapshots.try_acquire(1):
                    continue
                req = protocols.snapshot_request(fr.cfg.exchange, fr.cfg.rest, sym)
                assert req is not None
                try:
                    body = await get(req.url, timeout=10.0)
                except RestError as exc:
                    fr.snapshot_errors += 1
                    log.warning("%s %s: snapshot failed: %s", fr.cfg.exchange, sym, exc)
                    continue
                if self._on_snapshot is not None:
                    self._on_snapshot(sym, body)
                code = eng.feed_snapshot(sym, body)
                if code not in (7, 2):
                    log.info("%s %s: snapshot result %s; will retry", fr.cfg.exchange, sym,
                             code)
                for ln in fr.lines:
                    if ln.listener is not None:
                        ln.listener.flush()
                        break

    async def _resubscribe_loop(self, fr: FeedRuntime) -> None:
        """OKX/Deribit: resync a book that lost sync by resubscribing its channel on the
        line that wins most (the fastest), so the new in-stream snapshot arrives ahead of
        that line's later updates.  Rate-limited like Binance snapshots; asked again after
        ``RESUBSCRIBE_RETRY_S`` if the book is still out of sync."""
        if fr.cfg.exchange not in ("okx", "deribit") or "depth" not in fr.cfg.channels:
            return
        eng = fr.engine
        asked: dict[str, float] = {}
        while not self._stopping.is_set():
            await asyncio.sleep(0.02)
            for sym in fr.cfg.symbols:
                book = eng.book(sym)
                if book.synced or not book.resync_requested:
                    asked.pop(sym, None)
                    continue
                if time.monotonic() - asked.get(sym, -RESUBSCRIBE_RETRY_S) < RESUBSCRIBE_RETRY_S:
                    continue
                live = [ln for ln in fr.lines if ln.transport is not None]
                if not live:
                    continue
                assert fr.snapshots is not None
                if not fr.snapshots.try_acquire(1):
                    continue
                ln = max(live, key=lambda x: eng.line_stats(x.line_id)["wins"])
                msgs = protocols.resubscribe_book(fr.cfg.exchange, sym, ln.next_id + 1)
                ln.next_id += len(msgs)
                for msg in msgs:
                    ln.transport.send(WSMsgType.TEXT, msg.encode())
                asked[sym] = time.monotonic()
                fr.resubscribes += 1
                log.warning("%s %s: book lost sync; resubscribing on line %d",
                            fr.cfg.exchange, sym, ln.line_id)

    # ---------------------------------------------------------- observability

    def stats(self) -> dict[str, Any]:
        """The ``/stats`` document (see docs/observability.md)."""
        conns: list[dict[str, Any]] = []
        streams: list[dict[str, Any]] = []
        code = HdrHistogram(1, 60_000_000_000, 3)
        exch = HdrHistogram(1, 3_600_000_000, 3)
        stages = {k: HdrHistogram(1, 60_000_000_000, 3) for k in ("decode", "book", "encode")}
        totals = {"received": 0, "published": 0, "in_snapshot": 0, "duplicates": 0,
                  "dropped": 0, "pending": 0}
        reasons: dict[str, int] = {}
        for fr in self.feeds:
            eng = fr.engine
            code.merge(eng.code_ns)
            exch.merge(eng.exch_us)
            stages["decode"].merge(eng.decode_ns)
            stages["book"].merge(eng.book_ns)
            stages["encode"].merge(eng.encode_ns)
            # measured per stream by the engine: received = published + duplicates +
            # dropped + pending (held by a book) for every stream, hence for the sums
            ac = eng.arbiter_counters()
            for k in totals:
                totals[k] += ac[k]
            for k, v in ac["dropped_by_reason"].items():
                reasons[k] = reasons.get(k, 0) + v
            for ln in fr.lines:
                st = eng.line_stats(ln.line_id)
                lag = eng.lag_histogram(ln.line_id)
                p50, p99 = lag.percentiles([50.0, 99.0]) if lag.total_count else (0, 0)
                conns.append({
                    "id": ln.line_id, "exchange": fr.cfg.exchange, "endpoint": ln.conn.url,
                    "state": ln.state, "frames": st["frames"], "wins": st["wins"],
                    "duplicates": st["duplicates"], "win_rate": st["win_rate"],
                    "lag_us": {"p50": p50 / 1000, "p99": p99 / 1000,
                               "max": (lag.max() if lag.total_count else 0) / 1000,
                               "count": lag.total_count},
                    "reconnects": ln.reconnects, "rotations": ln.rotations,
                    "gaps": st["gaps"], "errors": st["errors"],
                })
            for sym in fr.cfg.symbols if fr.scales else ():
                for ch in fr.cfg.channels:
                    entry: dict[str, Any] = {"exchange": fr.cfg.exchange, "instrument": sym,
                                             "channel": ch}
                    if ch == "depth":
                        b = eng.book(sym)
                        entry.update(synced=b.synced, last_seq=b.last_seq, gaps=b.gaps,
                                     resyncs=max(0, b.snapshots - 1), levels=list(b.depth()))
                    else:
                        # quotes and trades need no book to be exact; last_seq: the
                        # last quote's update id / the newest trade id
                        entry.update(synced=True, last_seq=None, gaps=0, resyncs=0)
                    entry.update(_stream_counters(eng, sym, ch))
                    streams.append(entry)
        sinks = []
        by_name = {sk.name: sk for sk in self.fanout.sinks}
        for s in self.fanout.stats().values():
            own: dict[str, Any] = {}
            sk = by_name.get(s.name)
            if sk is not None:
                try:
                    own = sk.stats()
                except Exception as exc:  # noqa: BLE001 - a broken stats() must not break /stats
                    own = {"stats_error": f"{type(exc).__name__}: {exc}"}
            sinks.append({"name": s.name, "policy": s.policy, "queued": s.queued,
                          "high_water": s.high_water, "published": s.published,
                          "dropped": s.dropped_total, "drops_by_reason": dict(s.dropped),
                          "paused_s": s.paused_s, "healthy": s.healthy,
                          "failures": s.failures, "last_error": s.last_error, "sink": own})
        return {
            "connections": conns, "streams": streams,
            # code histograms are in ns and exchange ones in us: both shown 1000x coarser
            "latency": {"code_us": latency_summary(code, 1000.0),
                        "exchange_ms": latency_summary(exch, 1000.0),
                        # code latency by stage: frame -> decoded -> book -> queued
                        "stages_us": {k: latency_summary(h, 1000.0)
                                      for k, h in stages.items()}},
            "sinks": sinks,
            "counters": {**totals, "dropped_by_reason": reasons},
            # where each feed's scales came from (docs/configuration.md, fetch_instruments)
            "instruments": [{"feed": fr.cfg.name, "exchange": fr.cfg.exchange,
                             "scales": fr.scales or "pending",
                             "fetch_failures": fr.instrument_fetch_failures}
                            for fr in self.feeds],
            "uptime_s": time.time() - self.started,
        }

    def ready(self) -> list[str]:
        """Why the collector is not ready (empty: ready)."""
        reasons = []
        now = monotonic_ns()
        for fr in self.feeds:
            if not fr.scales:
                reasons.append(f"{fr.cfg.exchange}: instruments not loaded")
                continue
            if "depth" in fr.cfg.channels:
                for sym in fr.cfg.symbols:
                    if not fr.engine.book(sym).synced:
                        reasons.append(f"{fr.cfg.exchange} {sym} depth not synced")
            fresh = [ln for ln in fr.lines if ln.listener is not None
                     and ln.listener.last_rx and now - ln.listener.last_rx
                     < self.cfg.runtime.stale_timeout_s * 1e9]
            if not fresh:
                reasons.append(f"{fr.cfg.exchange}: no line has fresh data")
        for s in self.fanout.stats().values():
            if not s.healthy:
                reasons.append(f"sink {s.name} unhealthy: {s.last_error}")
        return reasons
