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
import functools
import logging
import signal
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from picows import WSMsgType, ws_connect

from xcol._fast.engine import Engine
from xcol._fast.hdr import HdrHistogram
from xcol._fast.listener import FeedListener, monotonic_ns
from xcol.config import EXCHANGES, Config, ConfigError, FeedConfig
from xcol.exchanges import protocols
from xcol.exchanges.meta import MetadataError, fetch_instruments
from xcol.fanout import DrainReport, FanOut
from xcol.net.backoff import Backoff, TokenBucket
from xcol.net.pacing import ConnectLimit, Outbox, WaitStats
from xcol.net.rest import RestError, get
from xcol.net.restgate import RestGate
from xcol.obs.http import ObsServer
from xcol.obs.schema import latency_summary
from xcol.sinks import build_sinks

log = logging.getLogger("xcol")

CHANNEL_NAMES = {1: "depth", 3: "bbo", 4: "trades"}
#: the engine's channels (xcol._fast.event Channel) each configured channel feeds
ENGINE_CHANNELS = {"depth": (1, 2), "bbo": (3,), "trades": (4, 5)}
#: OKX/Deribit: seconds before a book still out of sync is resubscribed again.
RESUBSCRIBE_RETRY_S = 2.0
#: the longest wait between resubscribes of a book that keeps not syncing
RESUBSCRIBE_MAX_S = 60.0
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
    #: the paced sender of the current connection (None while not connected)
    outbox: Outbox | None = None
    #: the connection-attempt limit of the line's exchange host (shared)
    connect_limit: ConnectLimit | None = None
    #: messages that waited for the per-connection rate limit, over all connections
    send_waits: WaitStats = field(default_factory=WaitStats)
    task: asyncio.Task[None] | None = None
    next_id: int = 100
    last_ping: float = 0.0
    #: make-before-break rotation: set to ask the line loop for a fresh connection
    rotate: asyncio.Event = field(default_factory=asyncio.Event)
    rotate_reason: str = ""
    rotations: int = 0
    #: win-rate rule: (wins, updates) at the start of the current period
    period_base: tuple[int, int] = (0, 0)
    #: win-rate rotations in a row that left the line below the floor, and the periods it
    #: still waits before the next one (back-off for a line that is slow by design)
    rate_strikes: int = 0
    rate_wait: int = 0
    #: malformed frames already reported in the log, when last reported, last checked
    errors_logged: int = 0
    errors_logged_at: float = float("-inf")
    errors_checked_at: float = float("-inf")


@dataclass
class FeedRuntime:
    """One ``[[feeds]]`` entry at run time."""

    cfg: FeedConfig
    engine: Engine
    lines: list[Line] = field(default_factory=list)
    snapshots: TokenBucket | None = None
    snapshot_errors: int = 0
    #: the budget of the REST host the snapshots go to (shared with the other feeds on it)
    rest_gate: RestGate | None = None
    resubscribes: int = 0
    #: where the books' scales came from: "exchange" (its instrument list), "default"
    #: (the list could not be read, or ``fetch_instruments = false``), "" (not loaded yet)
    scales: str = ""
    #: start-up instrument-list fetches that failed (the feed then runs on default scales)
    instrument_fetch_failures: int = 0


class Collector:
    """Run the feeds of ``cfg`` until :meth:`stop`."""

    def __init__(self, cfg: Config, *, listener_cls: Any = FeedListener,
                 on_snapshot: Callable[[str, str, bytes], None] | None = None) -> None:
        """:param listener_cls: the per-connection listener (``xcol record`` passes one
        that also writes each frame); :param on_snapshot: called with the market (the
        feed's exchange id), the symbol and the body of every REST snapshot fetched."""
        self.cfg = cfg
        self._listener_cls = listener_cls
        self._on_snapshot = on_snapshot
        self.feeds: list[FeedRuntime] = []
        self.fanout = FanOut(pause_reading=self._pause, resume_reading=self._resume)
        self.http: ObsServer | None = None
        self._stopping = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        #: control-plane loops started again after a failure (see _supervised)
        self.loop_restarts = 0
        self._paused = False
        self.started = time.time()
        #: one request budget per REST host (``scheme://host:port``), whatever feeds use it:
        #: Binance counts weight and bans per IP, so a 429 for one feed pauses them all
        self.rest_gates: dict[str, RestGate] = {}
        #: connection-attempt limits, one per (exchange, host) whatever the feed
        self.connect_limits: dict[tuple[str, str], ConnectLimit] = {}
        rt = cfg.runtime
        for fc in cfg.feeds:
            # instruments are registered in start(), once their scales are known
            eng = Engine(fc.exchange, rt.max_frame_bytes)
            eng.set_reorder_window(int(rt.reorder_window_ms * 1e6))
            eng.set_top(rt.top_levels, int(rt.top_interval_ms * 1e6))
            eng.book_ladder = rt.book_ladder
            eng.stage_timing = rt.stage_latency
            fr = FeedRuntime(fc, eng, snapshots=TokenBucket(rt.resync.rate_per_s,
                                                            rt.resync.burst),
                             rest_gate=self._rest_gate(fc))
            n = 0
            for ep in fc.endpoints:
                for conn in protocols.connections(fc.exchange, ep, fc.symbols, fc.channels):
                    if n >= 16:
                        raise ValueError(f"feed {fc.name or fc.exchange}: more than 16 lines")
                    fr.lines.append(Line(fr, n, ep, conn))
                    n += 1
            self.feeds.append(fr)
        self._share_connect_limits()

    def _share_connect_limits(self) -> None:
        # Limits are per IP at the exchange: every line to one host shares one bucket.
        # Feeds that set different limits for one host get the strictest of them.
        wanted: dict[tuple[str, str], tuple[float, int]] = {}
        for fr in self.feeds:
            for ln in fr.lines:
                key: tuple[str, str] = (fr.cfg.exchange, urlsplit(ln.conn.url).hostname or "")
                rate, burst = wanted.get(key, (fr.cfg.connect_rate_per_s, fr.cfg.connect_burst))
                wanted[key] = (min(rate, fr.cfg.connect_rate_per_s),
                               min(burst, fr.cfg.connect_burst))
        for (exchange, host), (rate, burst) in wanted.items():
            self.connect_limits[(exchange, host)] = ConnectLimit(exchange, host, rate, burst)
        for fr in self.feeds:
            for ln in fr.lines:
                ln.connect_limit = self.connect_limits[
                    (fr.cfg.exchange, urlsplit(ln.conn.url).hostname or "")]

    def _rest_gate(self, fc: FeedConfig) -> RestGate | None:
        """The shared :class:`RestGate` of ``fc``'s REST host (None: no REST snapshots)."""
        if not fc.exchange.startswith("binance"):
            return None  # OKX and Deribit resync in the stream
        parts = urlsplit(fc.rest)
        port = parts.port or (443 if parts.scheme == "https" else 80)
        host = f"{parts.scheme}://{parts.hostname}:{port}"
        budget = self.cfg.runtime.resync.weight_per_minute or protocols.rest_weight_limit(
            fc.exchange)
        gate = self.rest_gates.get(host)
        if gate is None:
            gate = self.rest_gates[host] = RestGate(host, budget)
        elif budget and (not gate.weight_per_minute or budget < gate.weight_per_minute):
            # feeds of different markets on one host: the tighter budget holds for all
            gate.weight_per_minute = budget
        return gate

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
            self.http = ObsServer(self.stats, self.ready, histograms=self.histograms)
            await self.http.start(self.cfg.runtime.http.host, self.cfg.runtime.http.port)
            log.info("http on %s", self.http.url)
        for fr in self.feeds:
            for ln in fr.lines:
                ln.task = asyncio.create_task(self._line_loop(ln), name=f"line-{ln.line_id}")
                self._tasks.append(ln.task)
            self._tasks.append(asyncio.create_task(self._supervised(
                f"{fr.cfg.exchange} snapshot loop", functools.partial(self._snapshot_loop, fr))))
            self._tasks.append(asyncio.create_task(self._supervised(
                f"{fr.cfg.exchange} resubscribe loop",
                functools.partial(self._resubscribe_loop, fr))))
        self._tasks.append(asyncio.create_task(self._supervised("tick loop", self._tick_loop)))
        if self.cfg.runtime.busy_poll:
            self._start_busy_poll()

    def _start_busy_poll(self) -> None:
        """``runtime.busy_poll``: keep one callback always ready, so that every loop
        iteration polls the sockets with a zero timeout instead of sleeping in the kernel.
        An idle core is halted and, on a shared host, its caches go to other work: the
        next frame then starts cold (measured at 100 k frames/s: p99.9 code latency
        17-23 µs with it against 20-25 without, bench/RESULTS.md)."""
        loop = asyncio.get_running_loop()
        stopping = self._stopping

        def spin() -> None:
            if not stopping.is_set():
                loop.call_soon(spin)

        log.info("busy polling: the event loop does not sleep (one core at 100%%)")
        if not self.cfg.runtime.cpu_affinity:
            log.warning("runtime.busy_poll without runtime.cpu_affinity: the spinning loop "
                        "competes with every other thread and process for the CPUs")
        loop.call_soon(spin)

    async def _supervised(self, name: str,
                          factory: Callable[[], Coroutine[Any, Any, None]]) -> None:
        """Run a control-plane loop and start it again when it fails: a loop that died
        would silently stop resyncs, heartbeats or the stale-data watchdog for the rest
        of the run.  Each failure is logged with its traceback and counted."""
        while not self._stopping.is_set():
            try:
                await factory()
                return
            except asyncio.CancelledError:
                raise
            except Exception:
                self.loop_restarts += 1
                log.exception("%s failed; starting it again in 1 s", name)
                await asyncio.sleep(1.0)

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
                if ln.outbox is not None:
                    ln.outbox.close()
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

    def _on_control(self, ln: Line, outbox: Outbox) -> Any:
        # bound to one connection's outbox: during a make-before-break rotation the
        # heartbeat of the new connection is answered on the new connection
        def handle(line_id: int, payload: bytes) -> None:
            if b'"serverShutdown"' in payload:
                self.request_rotation(ln, "serverShutdown")
                return
            if not ln.conn.heartbeat:
                return
            ln.next_id += 1
            reply = protocols.heartbeat_reply(payload, ln.next_id)
            if reply is not None:
                # urgent: Deribit closes a connection whose test_request goes unanswered,
                # so the answer goes ahead of any queued (re)subscribe messages
                outbox.put(reply.encode(), urgent=True)
        return handle

    def _factory(self, ln: Line, eng: Engine, outbox: Outbox) -> Callable[[], FeedListener]:
        def make() -> Any:
            lst = self._listener_cls(eng, ln.line_id, self.fanout.offer,
                                     self._on_control(ln, outbox))
            ln.listener = lst
            return lst
        return make

    def request_rotation(self, ln: Line, reason: str) -> None:
        """Replace ``ln``'s connection make-before-break: a new connection is opened and
        subscribed, and the old one is closed once the new one delivers data."""
        if ln.transport is not None and not ln.rotate.is_set():
            ln.rotate_reason = reason
            ln.rotate.set()

    def _outbox(self, ln: Line) -> Outbox:
        fc = ln.feed.cfg
        per_hour = EXCHANGES[fc.exchange].subscribes_per_hour
        return Outbox(fc.inbound_msgs_per_s, ln.send_waits,
                      window=(per_hour, 3600.0) if per_hour else None)

    async def _connect(self, ln: Line, eng: Engine) -> tuple[Any, Outbox]:
        """Open one connection of ``ln`` (after a slot of its host's connection limit)
        and queue its subscribe messages; returns the transport and its outbox."""
        assert ln.connect_limit is not None
        waited = await ln.connect_limit.acquire()
        if waited > 0:
            log.info("line %d %s: waited %.2f s for the %s connection limit", ln.line_id,
                     ln.conn.url, waited, ln.connect_limit.host)
        outbox = self._outbox(ln)
        # the listener answers pings itself (see FeedListener.on_ws_frame)
        transport, _ = await ws_connect(
            self._factory(ln, eng, outbox), ln.conn.url,
            max_frame_size=self.cfg.runtime.max_frame_bytes,
            websocket_handshake_timeout=10, enable_auto_pong=False)
        outbox.attach(lambda msg: transport.send(WSMsgType.TEXT, msg))
        for msg in ln.conn.subscribe:
            outbox.put(msg.encode())
        if self._paused:
            transport.underlying_transport.pause_reading()
        return transport, outbox

    async def _make_before_break(self, ln: Line, eng: Engine, old: Any) -> Any:
        """Open the replacement of ``old``; returns it (``old`` closed) or ``old`` when
        the replacement could not be made (the old connection then stays)."""
        reason = ln.rotate_reason
        old_listener = ln.listener
        try:
            new, outbox = await self._connect(ln, eng)
        except Exception as exc:  # noqa: BLE001 - keep the old connection
            ln.listener = old_listener
            log.warning("line %d %s: rotation (%s) failed to connect (%s); keeping the "
                        "current connection", ln.line_id, ln.conn.url, reason, exc)
            return old
        lst = ln.listener
        deadline = time.monotonic() + 10.0
        try:
            while (lst is not None and lst.last_rx == 0 and time.monotonic() < deadline
                   and not self._stopping.is_set()):
                await asyncio.sleep(0.005)
        except BaseException:
            # cancelled (shutdown) before the switch: the new connection is nobody's yet,
            # so close it here or it would stay open with its pacing task
            outbox.close()
            new.disconnect(False)
            raise
        ln.transport = new
        if ln.outbox is not None:
            ln.outbox.close()
        ln.outbox = outbox
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
                transport, outbox = await self._connect(ln, eng)
            except Exception as exc:  # noqa: BLE001 - any failure means: back off, retry
                ln.state = "backoff"
                ln.reconnects += 1
                delay = backoff.next_delay()
                log.warning("line %d %s: connect failed (%s); retry in %.2f s",
                            ln.line_id, ln.conn.url, exc, delay)
                await self._sleep(delay)
                continue
            ln.transport = transport
            ln.outbox = outbox
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
            if ln.outbox is not None:
                ln.outbox.close()
                ln.outbox = None
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
                    lst, tr, ob = ln.listener, ln.transport, ln.outbox
                    if tr is None or lst is None or ob is None:
                        continue
                    quiet = (now - lst.last_rx) / 1e9 if lst.last_rx else (
                        time.monotonic() - ln.connected_at)
                    if (ln.conn.ping_text and quiet > ln.conn.ping_after_s
                            and time.monotonic() - ln.last_ping > ln.conn.ping_after_s):
                        # urgent: OKX drops a connection silent for 30 s
                        ob.put(ln.conn.ping_text.encode(), urgent=True)
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
            self._log_refused_frames()

    def _log_refused_frames(self, every_s: float = 10.0) -> None:
        """Say in the log how many frames a line's decoder refused since it last said so:
        checked every second, said at most every ``every_s`` per line (the hot path
        counts them and never logs)."""
        now = time.monotonic()
        for fr in self.feeds:
            for ln in fr.lines:
                if now - ln.errors_checked_at < 1.0 or now - ln.errors_logged_at < every_s:
                    continue
                ln.errors_checked_at = now
                n = int(fr.engine.line_stats(ln.line_id)["errors"])
                if n > ln.errors_logged:
                    log.warning("line %d %s: %d malformed frame(s) refused since the last "
                                "report (%d in all; /stats connections[].errors)",
                                ln.line_id, ln.conn.url, n - ln.errors_logged, n)
                    ln.errors_logged = n
                    ln.errors_logged_at = now

    def _rotate_losers(self) -> None:
        """Win-rate rule: in a feed with several lines, the line that won the smallest
        share of the updates it carried over the last period is reconnected when that
        share is below ``rotation.min_win_rate`` (one line per feed per period)."""
        rot = self.cfg.runtime.rotation
        floor = rot.min_win_rate
        # periods a slow line may wait between win-rate rotations (clamped: any huge
        # setting must not overflow the int)
        max_wait = int(min(rot.backoff_max_s // rot.period_s, 1 << 30))
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
                if rate >= floor:
                    ln.rate_strikes = ln.rate_wait = 0
                elif ln.rate_wait > 0:
                    ln.rate_wait -= 1     # rotated before and still slow: backing off
                elif worst is None or rate < worst[0]:
                    worst = (rate, ln)
            if worst is not None:
                rate, ln = worst
                self.request_rotation(ln, f"win rate {rate:.1%} below {floor:.0%} "
                                      f"over {rot.period_s:g} s")
                ln.rate_strikes += 1
                ln.rate_wait = min((1 << min(ln.rate_strikes, 30)) - 1, max_wait)
                if ln.rate_strikes > 1 and ln.rate_wait:
                    log.warning("line %d %s: win rate still below %.0f%% after %d rotation(s); "
                                "the next win-rate rotation waits %d period(s) of %g s",
                                ln.line_id, ln.conn.url, floor * 100, ln.rate_strikes - 1,
                                ln.rate_wait, rot.period_s)

    async def _snapshot_loop(self, fr: FeedRuntime) -> None:
        """Binance: load a REST snapshot into every book that waits for one (rate-limited
        per feed, ``runtime.resync``, and per REST host: a weight budget per minute, and
        no request at all while the host is paused after a 429/418)."""
        if not fr.cfg.exchange.startswith("binance") or "depth" not in fr.cfg.channels:
            return
        eng = fr.engine
        gate = fr.rest_gate
        assert gate is not None and fr.snapshots is not None
        while not self._stopping.is_set():
            await asyncio.sleep(0.02)
            for sym in fr.cfg.symbols:
                book = eng.book(sym)
                if book.synced or book.pending == 0:
                    continue
                req = protocols.snapshot_request(fr.cfg.exchange, fr.cfg.rest, sym)
                assert req is not None
                # the host's pause and weight first: a refused try must not eat a token
                if gate.delay_for(req.weight) > 0:
                    break
                if not fr.snapshots.try_acquire(1):
                    continue
                gate.spend(req.weight)
                try:
                    body = await get(req.url, timeout=10.0)
                except RestError as exc:
                    fr.snapshot_errors += 1
                    if exc.status in (418, 429):
                        self._rest_rejected(fr, gate, exc)
                        break
                    log.warning("%s %s: snapshot failed: %s", fr.cfg.exchange, sym, exc)
                    continue
                except (OSError, EOFError, ValueError) as exc:
                    # a reset connection, a cut reply: this loop must outlive any one
                    # request, or the books would never resync again
                    fr.snapshot_errors += 1
                    log.warning("%s %s: snapshot failed: %s: %s", fr.cfg.exchange, sym,
                                type(exc).__name__, exc)
                    continue
                if self._on_snapshot is not None:
                    self._on_snapshot(fr.cfg.exchange, sym, body)
                code = eng.feed_snapshot(sym, body)
                if code not in (7, 2):
                    log.info("%s %s: snapshot result %s; will retry", fr.cfg.exchange, sym,
                             code)
                for ln in fr.lines:
                    if ln.listener is not None:
                        ln.listener.flush()
                        break

    def _rest_rejected(self, fr: FeedRuntime, gate: RestGate, exc: RestError) -> None:
        """A snapshot request got 429/418: pause every snapshot to that host until its
        Retry-After (a default when absent), and say so once per pause."""
        pause, new = gate.reject(exc.status, exc.retry_after)
        if not new:
            return
        what = "IP banned (HTTP 418)" if exc.status == 418 else "rate limited (HTTP 429)"
        after = ("Retry-After absent or unreadable, default pause" if exc.retry_after is None
                 else f"Retry-After {exc.retry_after:g} s")
        log.warning("%s: REST %s on a %s snapshot; no snapshot request to that host for "
                    "%.1f s (%s)", gate.host, what, fr.cfg.exchange, pause, after)

    async def _resubscribe_loop(self, fr: FeedRuntime) -> None:
        """OKX/Deribit: resync a book that lost sync by resubscribing its channel on the
        line that wins most (the fastest), so the new in-stream snapshot arrives ahead of
        that line's later updates.  Rate-limited like Binance snapshots; asked again after
        ``RESUBSCRIBE_RETRY_S`` if the book is still out of sync, then after twice that
        and so on up to ``RESUBSCRIBE_MAX_S``."""
        if fr.cfg.exchange not in ("okx", "deribit") or "depth" not in fr.cfg.channels:
            return
        eng = fr.engine
        asked: dict[str, float] = {}     # symbol -> when it may be asked again
        tries: dict[str, int] = {}       # symbol -> resubscribes since it was last synced
        while not self._stopping.is_set():
            await asyncio.sleep(0.02)
            for sym in fr.cfg.symbols:
                book = eng.book(sym)
                if book.synced or not book.resync_requested:
                    asked.pop(sym, None)
                    tries.pop(sym, None)
                    continue
                if time.monotonic() < asked.get(sym, 0.0):
                    continue
                # a line with a second's worth of messages already waiting for its message
                # limit gets no more: resubscribes must not pile up behind it (OKX also
                # allows only 480 an hour)
                live = [ln for ln in fr.lines if ln.outbox is not None
                        and ln.outbox.queued < max(2, int(ln.outbox.rate_per_s))]
                if not live:
                    continue
                assert fr.snapshots is not None
                if not fr.snapshots.try_acquire(1):
                    continue
                ln = max(live, key=lambda x: eng.line_stats(x.line_id)["wins"])
                outbox = ln.outbox
                assert outbox is not None
                msgs = protocols.resubscribe_book(fr.cfg.exchange, sym, ln.next_id + 1)
                ln.next_id += len(msgs)
                # paced by the line's message limit: the retry clock starts when the
                # messages are expected to leave, not when they are queued; a book that
                # still does not sync is asked less and less often (2 s, 4 s, ... 60 s)
                n = tries.get(sym, 0)
                tries[sym] = n + 1
                asked[sym] = (time.monotonic() + outbox.backlog_s
                              + min(RESUBSCRIBE_RETRY_S * 2 ** min(n, 5), RESUBSCRIBE_MAX_S))
                for msg in msgs:
                    outbox.put(msg.encode())
                fr.resubscribes += 1
                log.warning("%s %s: book lost sync; resubscribing on line %d",
                            fr.cfg.exchange, sym, ln.line_id)

    # ---------------------------------------------------------- observability

    def _latency(self) -> tuple[HdrHistogram, HdrHistogram, dict[str, HdrHistogram]]:
        """Code latency (ns), exchange latency (µs) and code latency by stage (ns), each
        merged over the feeds: what ``/stats`` summarizes and ``/histograms`` encodes."""
        code = HdrHistogram(1, 60_000_000_000, 3)
        exch = HdrHistogram(1, 3_600_000_000, 3)
        stages = {k: HdrHistogram(1, 60_000_000_000, 3) for k in ("decode", "book", "encode")}
        for fr in self.feeds:
            eng = fr.engine
            code.merge(eng.code_ns)
            exch.merge(eng.exch_us)
            stages["decode"].merge(eng.decode_ns)
            stages["book"].merge(eng.book_ns)
            stages["encode"].merge(eng.encode_ns)
        return code, exch, stages

    def histograms(self) -> dict[str, HdrHistogram]:
        """Every HDR histogram the collector keeps, by name (the unit is the suffix):
        ``code_ns``, ``exchange_us``, ``stage.{decode,book,encode}_ns`` (merged over the
        feeds, as in ``/stats``), ``lag_ns.<feed>.<line id>`` (lag behind the winner per
        line; ``<feed>`` is the feed's name, else its exchange) and
        ``sink.<sink>.<name>`` (each sink's own, e.g. ``sink.kafka.flush_ns``) and
        ``fanout.<sink>.{write,flush}_ns`` (every sink's write and flush calls, timed by
        the fan-out)."""
        code, exch, stages = self._latency()
        out: dict[str, HdrHistogram] = {"code_ns": code, "exchange_us": exch}
        out.update((f"stage.{k}_ns", h) for k, h in stages.items())
        for fr in self.feeds:
            label = fr.cfg.name or fr.cfg.exchange
            for ln in fr.lines:
                out[f"lag_ns.{label}.{ln.line_id}"] = fr.engine.lag_histogram(ln.line_id)
        for sk in self.fanout.sinks:
            out.update((f"sink.{sk.name}.{k}", h) for k, h in sk.histograms().items())
        out.update((f"fanout.{k}", h) for k, h in self.fanout.histograms().items())
        return out

    def stats(self) -> dict[str, Any]:
        """The ``/stats`` document (see docs/observability.md)."""
        conns: list[dict[str, Any]] = []
        streams: list[dict[str, Any]] = []
        code, exch, stages = self._latency()
        totals = {"received": 0, "published": 0, "in_snapshot": 0, "duplicates": 0,
                  "dropped": 0, "pending": 0}
        reasons: dict[str, int] = {}
        for fr in self.feeds:
            eng = fr.engine
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
                    # messages held back by the per-connection message limit
                    "rate_limited_waits": ln.send_waits.waits,
                    "rate_limited_s": ln.send_waits.waited_s,
                    "send_queued": ln.outbox.queued if ln.outbox is not None else 0,
                })
            for sym in fr.cfg.symbols if fr.scales else ():
                for ch in fr.cfg.channels:
                    entry: dict[str, Any] = {"exchange": fr.cfg.exchange, "instrument": sym,
                                             "channel": ch}
                    if ch == "depth":
                        b = eng.book(sym)
                        # null until an update was applied (the book's -1 is internal)
                        entry.update(synced=b.synced,
                                     last_seq=b.last_seq if b.last_seq >= 0 else None,
                                     gaps=b.gaps,
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
                          "failures": s.failures, "retries": s.retries,
                          "batches": s.batches, "write_us": s.write_us,
                          "flush_us": s.flush_us, "last_error": s.last_error, "sink": own})
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
            # per REST host: snapshot requests, weight spent, 429/418 and their pauses
            "rest": [g.stats() for g in self.rest_gates.values()],
            # connection attempts held back by each exchange host's connection limit
            "connect_limits": [{"exchange": lim.exchange, "host": lim.host,
                                "rate_per_s": lim.bucket.rate_per_s,
                                "burst": int(lim.bucket.burst),
                                "rate_limited_waits": lim.stats.waits,
                                "rate_limited_s": lim.stats.waited_s}
                               for lim in self.connect_limits.values()],
            "uptime_s": time.time() - self.started,
            "loop_restarts": self.loop_restarts,
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
            # Fresh per route: a route's connections carry their own streams (Binance
            # USD-M: depth and bookTicker on /public, trades on /market), so data on one
            # route says nothing of the other's.  Per stream would be stricter, but a
            # quiet instrument's trades or depth may rightly say nothing for minutes.
            routes: dict[str, bool] = {}
            for ln in fr.lines:
                lst = ln.listener
                routes[ln.conn.route] = routes.get(ln.conn.route, False) or bool(
                    lst is not None and lst.last_rx
                    and now - lst.last_rx < self.cfg.runtime.stale_timeout_s * 1e9)
            for route, fresh in routes.items():
                if fresh:
                    continue
                if len(routes) == 1:
                    reasons.append(f"{fr.cfg.exchange}: no line has fresh data")
                else:
                    chans = ", ".join(protocols.route_channels(fr.cfg.exchange, route,
                                                               fr.cfg.channels))
                    reasons.append(f"{fr.cfg.exchange}: no {route} connection has fresh "
                                   f"data ({chans})")
        for s in self.fanout.stats().values():
            if not s.healthy:
                reasons.append(f"sink {s.name} unhealthy: {s.last_error}")
        return reasons
