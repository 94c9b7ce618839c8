"""The exchange simulator: Binance, OKX and Deribit WebSocket (+ Binance REST) on loopback.

One :class:`Simulator` runs one feed (a replay or a synthetic source) and serves it on
``lines`` independent ports.  Every line carries byte-identical frames for the same update;
each line has its own delay, jitter, drop rate, malformed-frame rate and disconnect
schedule.  A line sends an update at ``source_time + delay (+ jitter)``, scheduled from the
moment the source produced it (never by sleeping per message), in order.

Subscriptions (and the snapshot OKX/Deribit send on subscribe) travel through the same
per-line pipeline as the data, so a subscriber on a delayed line gets its snapshot at the
stream position it was taken at and the chain continues exactly after it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import ssl
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from picows import (
    WSCloseCode,
    WSFrame,
    WSListener,
    WSMsgType,
    WSTransport,
    WSUpgradeRequest,
    WSUpgradeResponse,
    WSUpgradeResponseWithListener,
    ws_create_server,
)

from xcol.sim.blast import KINDS as BLAST_KINDS
from xcol.sim.blast import BlastChunks
from xcol.sim.book import SimBook
from xcol.sim.feed import (
    BINANCE_MARKETS,
    BinanceFeed,
    DeribitFeed,
    Event,
    Feed,
    OkxFeed,
    make_feed,
)

__all__ = ["LineConfig", "LineStats", "SimConfig", "Simulator"]

Key = tuple[str, str]  # (topic, instrument)

_BINANCE_KINDS = {"depth": "depth", "bookTicker": "bookTicker", "trade": "trade",
                  "aggTrade": "aggTrade"}
_USDM_ROUTES = {"public": {"depth", "bookTicker"}, "market": {"trade", "aggTrade"}}
_REST_PREFIX = {"binance-spot": "/api/v3/", "binance-usdm": "/fapi/v1/",
                "binance-coinm": "/dapi/v1/"}
_DEPTH_LIMIT = {"binance-spot": (100, 5000), "binance-usdm": (500, 1000),
                "binance-coinm": (500, 1000)}
_DEFAULT_PING = {"binance-spot": (20.0, 60.0), "binance-usdm": (180.0, 600.0),
                 "binance-coinm": (180.0, 600.0)}


@dataclass(slots=True)
class LineConfig:
    """Impairments of one line (one port).

    :param delay_ms: fixed delay added to every frame.
    :param jitter_ms: extra uniform delay in ``[0, jitter_ms]`` (order is kept).
    :param drop_rate: probability that an update is not sent on this line.
    :param malformed_rate: probability that a malformed frame is injected before a frame.
    :param disconnect_every: seconds between forced disconnects of the line's clients
        (0: never); staggered across lines.
    """

    delay_ms: float = 0.0
    jitter_ms: float = 0.0
    drop_rate: float = 0.0
    malformed_rate: float = 0.0
    disconnect_every: float = 0.0


@dataclass(slots=True)
class LineStats:
    """Counters of one line."""

    frames_sent: int = 0
    updates_sent: int = 0
    dropped: int = 0
    malformed: int = 0
    connections: int = 0
    accepted: int = 0
    disconnects: int = 0
    shutdowns: int = 0
    pings: int = 0
    pongs: int = 0
    rest_requests: int = 0
    blast_frames: int = 0

    def to_json(self) -> dict[str, int]:
        """The counters as a dict."""
        return {k: getattr(self, k) for k in self.__slots__}


@dataclass(slots=True)
class SimConfig:
    """Everything a :class:`Simulator` needs.

    :param exchange: ``binance-spot``, ``binance-usdm``, ``binance-coinm``, ``okx`` or
        ``deribit``.
    :param source: capture files replayed in order as one stream; empty: synthetic.
    :param symbols: synthetic instruments.
    :param rate: synthetic book updates per second (all instruments together).
    :param speed: replay speed factor; 0 = as fast as flow control allows.
    :param loop: replays loop (ids shifted so the chain holds) when the capture ends.
    :param lines: one :class:`LineConfig` per line (port ``port + i``, or a free port each
        when ``port`` is 0).
    :param ping_interval: Binance server ping period (default per market: spot 20 s,
        futures 180 s); ``pong_timeout`` closes a client that did not answer.
    :param shutdown_grace: seconds between a ``serverShutdown`` event and the disconnect.
    :param okx_checksum: ``auto`` (recorded in replays, computed for synthetic), ``recorded``,
        ``compute`` or ``zero``.
    :param okx_heartbeat: seconds without a change after which an instrument gets OKX's
        empty update (seqId == prevSeqId); 0 disables.
    :param deribit_min_heartbeat: smallest ``public/set_heartbeat`` interval accepted.
    :param blast: serve pre-framed USD-M frames as fast as flow control allows: the depth,
        bookTicker and trade messages of the capture that a connection subscribes, in the
        capture's order (see :mod:`xcol.sim.blast`).
    :param blast_count: frames per blast connection (0: unlimited); a connection carrying
        part of the capture's mix (USD-M ``/public`` or ``/market``) takes that share of it.
    :param blast_max_bytes: blast only depth messages up to this size (0: all), re-chained.
    :param blast_rate: frames per second per blast connection, its share of it for part of
        the mix (0: as fast as flow control allows); paced in slices of at most 1 ms.
    :param tls_cert: PEM certificate chain: serve ``wss://``/``https://`` (with ``tls_key``).
    :param tls_key: PEM private key for ``tls_cert``.
    :param timer_spin_ms: delayed lines wake this early and poll the clock on each event-loop
        turn until a frame is due (sub-millisecond delays; costs CPU while waiting; 0: off).
    :param rest_reject: Binance: answer the first N REST depth requests with
        ``rest_reject_status`` instead of a snapshot (as an exchange over its rate limit).
    :param rest_reject_status: 429 (rate limited) or 418 (IP banned).
    :param rest_retry_after: the ``Retry-After`` header of those answers, as sent (empty:
        no header).
    """

    exchange: str = "binance-usdm"
    source: list[str] = field(default_factory=list)
    symbols: int = 1
    rate: float = 100.0
    speed: float = 1.0
    loop: bool = True
    lines: list[LineConfig] = field(default_factory=lambda: [LineConfig()])
    host: str = "127.0.0.1"
    port: int = 0
    ping_interval: float | None = None
    pong_timeout: float | None = None
    shutdown_grace: float = 1.0
    okx_checksum: str = "auto"
    okx_heartbeat: float = 0.0
    deribit_min_heartbeat: float = 10.0
    blast: bool = False
    blast_count: int = 0
    blast_max_bytes: int = 0
    blast_rate: float = 0.0
    tls_cert: str | None = None
    tls_key: str | None = None
    timer_spin_ms: float = 1.0
    rest_reject: int = 0
    rest_reject_status: int = 429
    rest_retry_after: str = "1"
    seed: int = 1


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def _json(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


# ================================================================================= lines


class _Line:
    """One port: its clients, subscriptions, delay pipeline and counters."""

    def __init__(self, sim: Simulator, index: int, cfg: LineConfig) -> None:
        self.sim = sim
        self.index = index
        self.cfg = cfg
        self.delay = cfg.delay_ms / 1000.0
        self.jitter = cfg.jitter_ms / 1000.0
        self.rng = random.Random(sim.config.seed * 1000 + index)
        self.stats = LineStats()
        self.port = 0
        self.server: asyncio.Server | None = None
        self.sessions: set[_Session] = set()
        self.subs: dict[Key, dict[_Session, list[str]]] = {}
        self.queue: deque[tuple[float, Event | Callable[[], None]]] = deque()
        self.last_due = 0.0
        self.timer: asyncio.Handle | None = None
        self.tasks: list[asyncio.Task[None]] = []
        self._malformed_kind = 0
        # what clients did, for tests of their pacing: when each connection was accepted,
        # and every text message received (monotonic time, text); the latest 4096 each
        self.accepted_at: deque[float] = deque(maxlen=4096)
        self.received: deque[tuple[float, str]] = deque(maxlen=4096)

    # --------------------------------------------------------------- pipeline

    def push(self, item: Event | Callable[[], None], now: float) -> None:
        """Send ``item`` at ``now + delay (+ jitter)``, after everything queued before it."""
        if self.delay <= 0 and self.jitter <= 0 and not self.queue:
            self._run(item)
            return
        due = now + self.delay
        if self.jitter > 0:
            due += self.rng.uniform(0.0, self.jitter)
        due = max(due, self.last_due)
        self.last_due = due
        self.queue.append((due, item))
        if self.timer is None:
            self._arm(time.monotonic())

    def _arm(self, now: float) -> None:
        # Event-loop timers are millisecond-grained (and may fire up to ~1 ms late): wake
        # ``spin`` early, then re-check on every loop turn until the frame is due.
        wait = self.queue[0][0] - now - self.sim.spin
        loop = asyncio.get_running_loop()
        if wait > 0:
            self.timer = loop.call_later(wait, self._fire)
        else:
            self.timer = loop.call_soon(self._fire)

    def _fire(self) -> None:
        self.timer = None
        now = time.monotonic()
        q = self.queue
        while q and q[0][0] <= now + 0.00005:
            self._run(q.popleft()[1])
        if q:
            self._arm(now)

    def _run(self, item: Event | Callable[[], None]) -> None:
        if isinstance(item, Event):
            self.deliver(item)
        else:
            item()

    def deliver(self, ev: Event) -> None:
        """Write ``ev`` to every client of this line subscribed to it."""
        subs = self.subs.get((ev.topic, ev.inst))
        if not subs:
            return
        feed = self.sim.feed
        mal = self.cfg.malformed_rate
        sent = 0
        for sess, names in list(subs.items()):
            for name in names:
                fr = feed.frame(ev, name)
                if mal > 0 and self.rng.random() < mal:
                    sess.send(self._malformed(fr))
                    self.stats.malformed += 1
                sess.send(fr)
                sent += 1
        self.stats.frames_sent += sent
        self.stats.updates_sent += 1

    def _malformed(self, fr: bytes) -> bytes:
        self._malformed_kind = (self._malformed_kind + 1) % 3
        if self._malformed_kind == 0:
            return fr[: max(1, len(fr) // 2)]  # truncated JSON
        if self._malformed_kind == 1:
            return b'{"stream":' + b"\x00garbage"
        return b"[1,2,"

    # ------------------------------------------------------------ subscribers

    def subscribe(self, sess: _Session, key: Key, name: str) -> None:
        names = self.subs.setdefault(key, {}).setdefault(sess, [])
        if name not in names:
            names.append(name)
        sess.keys.add(key)

    def unsubscribe(self, sess: _Session, key: Key, name: str | None = None) -> bool:
        subs = self.subs.get(key)
        if not subs or sess not in subs:
            return False
        if name is None:
            del subs[sess]
        else:
            names = subs[sess]
            if name not in names:
                return False
            names.remove(name)
            if not names:
                del subs[sess]
        if sess not in subs:
            sess.keys.discard(key)
        return True

    def forget(self, sess: _Session) -> None:
        for key in list(sess.keys):
            self.unsubscribe(sess, key)
        self.sessions.discard(sess)

    def close_all(self, graceful: bool = False) -> int:
        n = 0
        for sess in list(self.sessions):
            sess.transport.disconnect(graceful)
            n += 1
        return n


# =============================================================================== sessions


class _Session(WSListener):
    """One client connection: the exchange's protocol over picows."""

    def __init__(self, line: _Line, path: str, query: dict[str, list[str]],
                 route: str | None, combined: bool, streams: list[str]) -> None:
        super().__init__()
        self.line = line
        self.sim = line.sim
        self.path = path
        self.query = query
        self.route = route
        self.combined = combined
        self.url_streams = streams
        self.keys: set[Key] = set()
        self.stream_names: set[str] = set()  # Binance streams as subscribed (LIST_SUBSCRIPTIONS)
        self.transport: WSTransport = None  # type: ignore[assignment]
        self.ping_since = 0.0
        self.hb_task: asyncio.Task[None] | None = None
        self.hb_waiting = False
        self.paused = False
        self.resumed = asyncio.Event()
        self.resumed.set()
        self.blast_tasks: list[asyncio.Task[None]] = []
        self.blast_kinds: set[str] = set()      # subscribed, not yet blasting
        self.blast_served: set[str] = set()     # blasting
        self.conn_id = f"{random.getrandbits(32):08x}"
        self.closed = False

    # ------------------------------------------------------------- picows

    def on_ws_connected(self, transport: WSTransport) -> None:
        self.transport = transport
        line = self.line
        line.sessions.add(self)
        line.stats.connections += 1
        line.stats.accepted += 1
        line.accepted_at.append(time.monotonic())
        for s in self.url_streams:
            self._binance_sub(s)

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        self.closed = True
        self.line.forget(self)
        self.line.stats.connections -= 1
        for task in (self.hb_task, *self.blast_tasks):
            if task is not None:
                task.cancel()
        self.resumed.set()
        self.sim._on_writable(self)

    def pause_writing(self) -> None:
        self.paused = True
        self.resumed.clear()
        self.sim._paused.add(self)

    def resume_writing(self) -> None:
        self.paused = False
        self.resumed.set()
        self.sim._on_writable(self)

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        t = frame.msg_type
        if t == WSMsgType.TEXT:
            text = frame.get_payload_as_utf8_text()
            self.line.received.append((time.monotonic(), text))
            ex = self.sim.config.exchange
            if ex in BINANCE_MARKETS:
                self._binance_text(text)
            elif ex == "okx":
                self._okx_text(text)
            else:
                self._deribit_text(text)
        elif t == WSMsgType.PONG:
            self.ping_since = 0.0
            self.line.stats.pongs += 1
        elif t == WSMsgType.CLOSE:
            transport.send_close(frame.get_close_code(), frame.get_close_message())
            transport.disconnect()

    def send(self, data: bytes) -> None:
        """Send one text frame (nothing once closed)."""
        if not self.closed:
            self.transport.send(WSMsgType.TEXT, data)

    # ------------------------------------------------------------ binance

    def _binance_stream(self, stream: str) -> Key | None:
        sym, _, kind = stream.partition("@")
        kind = kind.split("@", 1)[0]
        if kind not in _BINANCE_KINDS or not sym:
            return None
        return (_BINANCE_KINDS[kind], sym.upper())

    def _binance_sub(self, stream: str) -> bool:
        key = self._binance_stream(stream)
        if key is None:
            return False
        self.stream_names.add(stream)
        if self.route is not None and key[0] not in _USDM_ROUTES[self.route]:
            return True  # a wrong route fails silently, as on the real USD-M endpoints
        name = stream if self.combined else ""
        sim = self.sim
        if sim.config.blast and key[0] in BLAST_KINDS:
            # the blast starts after this subscription's other streams are known
            if key[0] not in self.blast_served and key[0] not in self.blast_kinds:
                if not self.blast_kinds:
                    # one blast for the kinds of this subscription (and any sent with it);
                    # kinds subscribed later get a blast of their own
                    self.blast_tasks.append(
                        asyncio.get_running_loop().create_task(sim._blast(self)))
                self.blast_kinds.add(key[0])
            return True
        self.line.push(self._activator(key, name, None), time.monotonic())
        return True

    def _binance_text(self, text: str) -> None:
        try:
            msg = json.loads(text)
            method = msg["method"]
            rid = msg.get("id")
        except (ValueError, KeyError, TypeError):
            self.send(_json({"error": {"code": 3, "msg": "Invalid JSON: expected a method "
                                       "request"}, "id": None}))
            return
        params = msg.get("params") or []
        if method == "SUBSCRIBE":
            if not isinstance(params, list) or not all(self._binance_stream(str(p))
                                                       for p in params):
                self.send(_json({"error": {"code": 2, "msg": "Invalid request: unknown "
                                           "stream name"}, "id": rid}))
                return
            for p in params:
                self._binance_sub(str(p))
            self.send(_json({"result": None, "id": rid}))
        elif method == "UNSUBSCRIBE":
            for p in params if isinstance(params, list) else []:
                key = self._binance_stream(str(p))
                self.stream_names.discard(str(p))
                if key is not None:
                    self.line.unsubscribe(self, key, str(p) if self.combined else "")
            self.send(_json({"result": None, "id": rid}))
        elif method == "LIST_SUBSCRIPTIONS":
            self.send(_json({"result": sorted(self.stream_names), "id": rid}))
        elif method in ("SET_PROPERTY", "GET_PROPERTY"):
            self.send(_json({"result": self.combined if method == "GET_PROPERTY" else None,
                             "id": rid}))
        else:
            self.send(_json({"error": {"code": 2, "msg": f"Invalid request: unknown method "
                                       f"{method!r}"}, "id": rid}))

    # ---------------------------------------------------------------- okx

    def _okx_text(self, text: str) -> None:
        if text == "ping":
            self.send(b"pong")
            return
        try:
            msg = json.loads(text)
            op = msg["op"]
            args = msg["args"]
            if not isinstance(args, list):
                raise TypeError
        except (ValueError, KeyError, TypeError):
            self.send(_json({"event": "error", "code": "60012",
                             "msg": f"Invalid request: {text[:200]}", "connId": self.conn_id}))
            return
        feed = self.sim.feed
        assert isinstance(feed, OkxFeed)
        for arg in args:
            ch = arg.get("channel") if isinstance(arg, dict) else None
            inst = arg.get("instId") if isinstance(arg, dict) else None
            if op not in ("subscribe", "unsubscribe"):
                self.send(_json({"event": "error", "code": "60012",
                                 "msg": f"Invalid request: {text[:200]}",
                                 "connId": self.conn_id}))
                return
            if ch not in ("books", "bbo-tbt", "trades") or inst not in feed.books:
                self.send(_json({"event": "error", "code": "60018",
                                 "msg": f"Wrong URL or channel:{ch},instId:{inst} doesn't exist.",
                                 "connId": self.conn_id}))
                continue
            assert isinstance(inst, str) and isinstance(ch, str)
            reply = _json({"event": op, "arg": {"channel": ch, "instId": inst},
                           "connId": self.conn_id})
            key = (ch, inst)
            if op == "unsubscribe":
                self.line.unsubscribe(self, key)
                self.send(reply)
                continue
            self.send(reply)
            # books start with a snapshot, bbo-tbt with the current top
            snap = (feed.snapshot(inst) if ch == "books"
                    else feed.bbo_msg(inst) if ch == "bbo-tbt" else None)
            self.line.push(self._activator(key, "", snap), time.monotonic())

    def _activator(self, key: Key, name: str, first: bytes | None) -> Callable[[], None]:
        def activate() -> None:
            if self.closed:
                return
            if first is not None:
                self.send(first)
            self.line.subscribe(self, key, name)
        return activate

    # ------------------------------------------------------------ deribit

    def _rpc(self, rid: Any, result: Any = None, error: tuple[int, str] | None = None) -> None:
        us = time.time_ns() // 1000
        out: dict[str, Any] = {"jsonrpc": "2.0", "id": rid}
        if error is not None:
            out["error"] = {"message": error[1], "code": error[0]}
        else:
            out["result"] = result
        out.update({"usIn": us, "usOut": us, "usDiff": 0, "testnet": False})
        self.send(_json(out))

    def _deribit_channel(self, ch: str) -> tuple[Key, str] | None:
        parts = ch.split(".")
        if len(parts) == 2 and parts[0] == "quote" and parts[1] in self.sim.feed.books:
            return (parts[0], parts[1]), ch
        if len(parts) != 3 or parts[0] not in ("book", "trades"):
            return None
        if parts[2] not in ("raw", "100ms") or parts[1] not in self.sim.feed.books:
            return None
        return (parts[0], parts[1]), ch

    def _deribit_text(self, text: str) -> None:
        try:
            msg = json.loads(text)
            method = msg["method"]
            rid = msg.get("id")
            params = msg.get("params") or {}
            if not isinstance(params, dict):
                raise TypeError
        except (ValueError, KeyError, TypeError):
            self._rpc(None, error=(11050, "bad_request"))
            return
        feed = self.sim.feed
        assert isinstance(feed, DeribitFeed)
        if method in ("public/subscribe", "public/unsubscribe"):
            chans = params.get("channels")
            if not isinstance(chans, list):
                self._rpc(rid, error=(-32602, "Invalid params"))
                return
            done: list[str] = []
            later: list[Callable[[], None]] = []
            for ch in chans:
                parsed = self._deribit_channel(str(ch))
                if parsed is None:
                    continue
                key, name = parsed
                done.append(name)
                if method == "public/unsubscribe":
                    self.line.unsubscribe(self, key, name)
                    continue
                first = None
                if key[0] == "book":
                    snap = feed.snapshot(key[1])
                    first = (b'{"jsonrpc":"2.0","method":"subscription","params":{"channel":"'
                             + name.encode() + b'","data":' + snap + b"}}")
                later.append(self._activator(key, name, first))
            self._rpc(rid, done)
            now = time.monotonic()
            for act in later:
                self.line.push(act, now)
        elif method == "public/set_heartbeat":
            iv = params.get("interval")
            if not isinstance(iv, (int, float)) or iv < self.sim.config.deribit_min_heartbeat:
                self._rpc(rid, error=(-32602, "Invalid params"))
                return
            if self.hb_task is not None:
                self.hb_task.cancel()
            self.hb_waiting = False
            self.hb_task = asyncio.get_running_loop().create_task(self._heartbeat(float(iv)))
            self._rpc(rid, "ok")
        elif method == "public/disable_heartbeat":
            if self.hb_task is not None:
                self.hb_task.cancel()
                self.hb_task = None
            self._rpc(rid, "ok")
        elif method == "public/test":
            self.hb_waiting = False
            self._rpc(rid, {"version": "1.2.26"})
        elif method == "public/hello":
            self._rpc(rid, {"version": "1.2.26"})
        elif method == "public/get_time":
            self._rpc(rid, _now_ms())
        else:
            self._rpc(rid, error=(-32601, "Method not found"))

    def test_request(self) -> None:
        """Deribit: send a ``test_request`` heartbeat now."""
        self.hb_waiting = True
        self.send(_TEST_REQUEST)

    async def _heartbeat(self, interval: float) -> None:
        while not self.closed:
            await asyncio.sleep(interval)
            if self.hb_waiting:  # the last test_request was not answered: close at once
                self.line.stats.disconnects += 1
                self.transport.disconnect(False)
                return
            self.test_request()


_TEST_REQUEST = _json({"jsonrpc": "2.0", "method": "heartbeat",
                       "params": {"type": "test_request"}})


# ============================================================================== simulator


class Simulator:
    """The exchange simulator: start it, point clients at :attr:`ports`, inspect the truth.

    :param config: what to serve and how; see :class:`SimConfig`.
    :param feed: a ready :class:`~xcol.sim.feed.Feed` (else built from ``config``).
    """

    def __init__(self, config: SimConfig, feed: Feed | None = None) -> None:
        self.config = config
        self.feed: Feed = feed if feed is not None else make_feed(
            config.exchange, source=config.source, symbols=config.symbols, rate=config.rate,
            seed=config.seed, loop=config.loop, okx_checksum=config.okx_checksum)
        self._blast_chunks: BlastChunks | None = None
        #: set when a blast REST snapshot was served: blasts start with one frame and wait
        #: for it (up to 5 s), so a client can sync before the flood fills its buffer
        self._snapshot_served = asyncio.Event()
        if config.blast:
            if config.exchange != "binance-usdm" or len(config.source) != 1:
                raise ValueError("blast mode needs --exchange binance-usdm and one --source "
                                 "capture (hftbacktest format)")
            self._blast_chunks = BlastChunks(Path(config.source[0]),
                                             max_bytes=config.blast_max_bytes)
        #: pre-framed chunks per set of kinds (the depth-only one, built up front, checks
        #: the capture and answers REST depth)
        self._blast_sets: dict[tuple[str, ...], BlastChunks] = (
            {self._blast_chunks.kinds: self._blast_chunks} if self._blast_chunks else {})
        self.spin = max(0.0, config.timer_spin_ms / 1000.0)
        self.lines = [_Line(self, i, lc) for i, lc in enumerate(config.lines or [LineConfig()])]
        self._paused: set[_Session] = set()
        self._writable = asyncio.Event()
        self._writable.set()
        self._tasks: list[asyncio.Task[None]] = []
        self._drop_next: set[int] = set()
        self._last_book_t: dict[str, float] = {}
        self.dropped_updates: list[tuple[str, int]] = []
        """(instrument, seq) of every update ``drop_next_update`` removed from all lines."""
        self.updates = 0
        self.blast_frames = 0
        self.feed_done = asyncio.Event()
        self._running = asyncio.Event()
        self._running.set()
        self._started = False
        if config.rest_reject < 0:
            raise ValueError(f"rest_reject must be >= 0, got {config.rest_reject}")
        if config.rest_reject_status not in (418, 429):
            raise ValueError(f"rest_reject_status must be 418 or 429, got "
                             f"{config.rest_reject_status}")
        self._rest_reject = (config.rest_reject, config.rest_reject_status,
                             config.rest_retry_after)
        self.depth_requests: list[tuple[float, int]] = []
        """(``time.monotonic()``, HTTP status answered) of every REST depth request."""

    # --------------------------------------------------------------- lifecycle

    @property
    def ports(self) -> list[int]:
        """The port of each line (known after :meth:`start`)."""
        return [ln.port for ln in self.lines]

    def url(self, line: int = 0, path: str = "/") -> str:
        """``ws://host:port/path`` of a line (``wss://`` with TLS)."""
        scheme = "wss" if self.config.tls_cert else "ws"
        return f"{scheme}://{self.config.host}:{self.lines[line].port}{path}"

    async def start(self) -> None:
        """Listen on every line's port and start the feed."""
        cfg = self.config
        ssl_ctx: ssl.SSLContext | None = None
        if cfg.tls_cert:
            ssl_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ssl_ctx.load_cert_chain(cfg.tls_cert, cfg.tls_key)
        for ln in self.lines:
            port = cfg.port + ln.index if cfg.port else 0
            ln.server = await ws_create_server(self._factory(ln), cfg.host, port,
                                               ssl=ssl_ctx)
            ln.port = ln.server.sockets[0].getsockname()[1]
        loop = asyncio.get_running_loop()
        if not cfg.blast:
            self._tasks.append(loop.create_task(self._produce()))
        ping, pong = _DEFAULT_PING.get(cfg.exchange, (0.0, 0.0))
        ping = cfg.ping_interval if cfg.ping_interval is not None else ping
        pong = cfg.pong_timeout if cfg.pong_timeout is not None else pong
        for ln in self.lines:
            if ln.cfg.disconnect_every > 0:
                ln.tasks.append(loop.create_task(self._disconnector(ln)))
            if ping > 0 and cfg.exchange in BINANCE_MARKETS:
                ln.tasks.append(loop.create_task(self._pinger(ln, ping, pong)))
        if cfg.okx_heartbeat > 0 and isinstance(self.feed, OkxFeed):
            self._tasks.append(loop.create_task(self._okx_idle(cfg.okx_heartbeat)))
        self._started = True

    async def stop(self) -> None:
        """Stop the feed, close every client and every listening socket."""
        for task in self._tasks + [t for ln in self.lines for t in ln.tasks]:
            task.cancel()
        for task in self._tasks + [t for ln in self.lines for t in ln.tasks]:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks.clear()
        for ln in self.lines:
            ln.tasks.clear()
            if ln.timer is not None:
                ln.timer.cancel()
                ln.timer = None
            ln.queue.clear()
            if ln.server is not None:
                ln.server.close()
            for sess in list(ln.sessions):
                sess.transport.send_close(WSCloseCode.GOING_AWAY)
                sess.transport.disconnect()
        for ln in self.lines:
            if ln.server is not None:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(ln.server.wait_closed(), 2.0)
                ln.server = None
        self._started = False

    async def __aenter__(self) -> Simulator:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # ---------------------------------------------------------------- control

    def disconnect(self, line: int) -> int:
        """Drop every client of ``line`` at once (TCP close, no close frame); returns how
        many."""
        ln = self.lines[line]
        n = ln.close_all(graceful=False)
        ln.stats.disconnects += n
        return n

    def server_shutdown(self, line: int, grace: float | None = None) -> int:
        """Send Binance's ``serverShutdown`` event to every client of ``line``, then
        disconnect them after ``grace`` seconds (default ``config.shutdown_grace``)."""
        ln = self.lines[line]
        msg = _json({"e": "serverShutdown", "E": _now_ms()})
        sessions = list(ln.sessions)
        for sess in sessions:
            sess.send(msg)
        ln.stats.shutdowns += len(sessions)
        wait = self.config.shutdown_grace if grace is None else grace

        def close() -> None:
            for sess in sessions:
                if not sess.closed:
                    ln.stats.disconnects += 1
                    sess.transport.send_close(WSCloseCode.GOING_AWAY)
                    sess.transport.disconnect()

        asyncio.get_running_loop().call_later(max(wait, 0.0), close)
        return len(sessions)

    def send_test_request(self, line: int) -> int:
        """Deribit: send a ``test_request`` heartbeat to every client of ``line`` now
        (whatever interval they set); returns how many.  A client that has not answered
        by its next heartbeat is disconnected, as on the real exchange."""
        if self.config.exchange != "deribit":
            raise TypeError("test_request is a Deribit feature")
        sessions = list(self.lines[line].sessions)
        for sess in sessions:
            sess.test_request()
        return len(sessions)

    def accept_times(self, line: int | None = None) -> list[float]:
        """When connections were accepted on ``line`` (or on all lines), monotonic seconds,
        oldest first (the latest 4096 per line)."""
        lines = self.lines if line is None else [self.lines[line]]
        return sorted(t for ln in lines for t in ln.accepted_at)

    def client_messages(self, line: int | None = None) -> list[tuple[float, str]]:
        """The text messages clients sent on ``line`` (or on all lines) as
        ``(monotonic seconds, text)``, oldest first (the latest 4096 per line)."""
        lines = self.lines if line is None else [self.lines[line]]
        return sorted(m for ln in lines for m in ln.received)

    def drop_next_update(self, all_lines: bool = True, line: int | None = None) -> None:
        """Do not send the next book update on any line (``all_lines``) or on ``line``:
        the books still apply it, so a client sees a real gap."""
        if all_lines:
            self._drop_next = {ln.index for ln in self.lines}
        elif line is not None:
            self._drop_next = {line}

    def reject_depth(self, n: int, status: int = 429, retry_after: str = "1") -> None:
        """Answer the next ``n`` REST depth requests with ``status`` (429 or 418) and
        ``Retry-After: retry_after`` (empty: no header) instead of a snapshot."""
        if n < 0 or status not in (418, 429):
            raise ValueError(f"reject_depth needs n >= 0 and status 418 or 429, got {n}, "
                             f"{status}")
        self._rest_reject = (n, status, retry_after)

    def emit_heartbeat(self, inst: str) -> None:
        """OKX: send the empty update (seqId == prevSeqId) of ``inst`` now."""
        if not isinstance(self.feed, OkxFeed):
            raise TypeError("heartbeat updates are an OKX feature")
        self._dispatch(self.feed.heartbeat(inst), time.monotonic())

    def pause(self) -> None:
        """Hold the feed at its current position (clients stay connected)."""
        self._running.clear()

    def resume(self) -> None:
        """Continue a paused feed (replay timing restarts from here)."""
        self._running.set()

    async def settle(self, extra: float = 0.05) -> None:
        """Wait until every line has sent what it queued, plus ``extra`` seconds."""
        while any(ln.queue for ln in self.lines):
            await asyncio.sleep(0.005)
        await asyncio.sleep(extra)

    def line_stats(self, line: int) -> LineStats:
        """The counters of ``line``."""
        return self.lines[line].stats

    def stats(self) -> dict[str, Any]:
        """All counters: per line, updates produced, blast frames."""
        return {"updates": self.updates, "blast_frames": self.blast_frames,
                "passes": self.feed.passes,
                "lines": [ln.stats.to_json() | {"port": ln.port} for ln in self.lines]}

    # ----------------------------------------------------------------- truth

    @property
    def instruments(self) -> list[str]:
        """The instruments served."""
        return self.feed.instruments

    def book(self, inst: str) -> SimBook:
        """The simulator's own book of ``inst`` at the current stream position."""
        return self.feed.books[inst]

    def top(self, inst: str) -> tuple[Any, Any, Any, Any] | None:
        """``(bid, bid_qty, ask, ask_qty)`` of ``inst`` as the exchange writes them."""
        return self.feed.books[inst].top_of_book()

    def last_seq(self, inst: str) -> int:
        """The last sequence id applied to ``inst`` (``u``, ``seqId``, ``change_id``)."""
        return self.feed.books[inst].seq

    def subscribers(self, line: int | None = None) -> int:
        """Active (client, topic, instrument) subscriptions on a line or on all."""
        lines = self.lines if line is None else [self.lines[line]]
        return sum(len(s) for ln in lines for s in ln.subs.values())

    # ---------------------------------------------------------------- feed

    def _dispatch(self, ev: Event, now: float) -> None:
        self.updates += 1
        drop: set[int] = set()
        if ev.book:
            self._last_book_t[ev.inst] = now
            if self._drop_next:
                drop, self._drop_next = self._drop_next, set()
                if len(drop) == len(self.lines):
                    self.dropped_updates.append((ev.inst, ev.seq))
        for ln in self.lines:
            if ln.index in drop or (ln.cfg.drop_rate > 0
                                    and ln.rng.random() < ln.cfg.drop_rate):
                ln.stats.dropped += 1
                continue
            ln.push(ev, now)

    async def _produce(self) -> None:
        speed = self.config.speed
        t0 = time.monotonic()
        n = 0
        try:
            for t_src, produce in self.feed.steps():
                if not self._running.is_set():
                    paused_at = time.monotonic()
                    await self._running.wait()
                    t0 += time.monotonic() - paused_at
                if speed > 0:
                    wait = t0 + t_src / speed - time.monotonic()
                    if wait > 0.0005:
                        await asyncio.sleep(wait)
                    elif n % 256 == 255:
                        await asyncio.sleep(0)
                else:
                    if n % 64 == 63:
                        await asyncio.sleep(0)
                    if self._paused:
                        await self._wait_writable()
                n += 1
                now = time.monotonic()
                for ev in produce():
                    self._dispatch(ev, now)
        finally:
            self.feed_done.set()

    async def _wait_writable(self) -> None:
        while self._paused:
            self._writable.clear()
            await self._writable.wait()

    def _on_writable(self, sess: _Session) -> None:
        self._paused.discard(sess)
        if not self._paused:
            self._writable.set()

    async def _okx_idle(self, idle: float) -> None:
        feed = self.feed
        assert isinstance(feed, OkxFeed)
        while True:
            await asyncio.sleep(idle / 4)
            now = time.monotonic()
            for inst in feed.instruments:
                if now - self._last_book_t.get(inst, now - idle) >= idle:
                    self._dispatch(feed.heartbeat(inst), now)

    async def _disconnector(self, ln: _Line) -> None:
        every = ln.cfg.disconnect_every
        await asyncio.sleep(every * (1 + ln.index / max(1, len(self.lines))))
        while True:
            self.disconnect(ln.index)
            await asyncio.sleep(every)

    async def _pinger(self, ln: _Line, interval: float, timeout: float) -> None:
        while True:
            await asyncio.sleep(interval)
            now = time.monotonic()
            for sess in list(ln.sessions):
                if sess.ping_since and now - sess.ping_since > timeout:
                    ln.stats.disconnects += 1
                    sess.transport.disconnect(False)
                elif not sess.ping_since:
                    sess.ping_since = now
                    sess.transport.send_ping(str(_now_ms()).encode())
                    ln.stats.pings += 1

    def _blast_for(self, kinds: set[str]) -> BlastChunks:
        """The pre-framed chunk carrying ``kinds`` (built once per set of kinds)."""
        key = tuple(k for k in BLAST_KINDS if k in kinds)
        got = self._blast_sets.get(key)
        if got is None:
            got = BlastChunks(Path(self.config.source[0]),
                              max_bytes=self.config.blast_max_bytes, kinds=key)
            self._blast_sets[key] = got
        return got

    async def _blast(self, sess: _Session) -> None:
        await asyncio.sleep(0)  # let the subscribe ack (and the other streams) go first
        kinds = set(sess.blast_kinds)
        sess.blast_served |= kinds
        sess.blast_kinds.clear()
        chunks = self._blast_for(kinds)
        tr = sess.transport.underlying_transport
        tr.set_write_buffer_limits(high=8 << 20, low=2 << 20)
        # a connection carrying part of the capture's mix takes that part of the count
        limit = int(round(self.config.blast_count * chunks.share))
        if self.config.blast_count and limit < 1:
            limit = 1
        stats = sess.line.stats
        per = chunks.frames_per_chunk
        chunk_bytes = chunks.frame_ends[-1]
        first = chunks.chunk(1)
        # Up to the first depth frame, then wait for the client's snapshot request
        # before the flood (a connection without depth does not wait).
        k0 = chunks.first_depth + 1 if chunks.first_depth >= 0 else 1
        if limit:
            k0 = min(k0, limit)
        tr.write(first[:chunks.frame_ends[k0 - 1]])
        stats.blast_frames += k0
        self.blast_frames += k0
        if chunks.first_depth >= 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._snapshot_served.wait(), 5.0)
        if self.config.blast_rate > 0:
            await self._blast_paced(sess, chunks, limit, k0)
            return
        if limit and limit <= per:
            tr.write(first[chunks.frame_ends[k0 - 1]:chunks.frame_ends[limit - 1]])
            stats.blast_frames += limit - k0
            self.blast_frames += limit - k0
            return
        tr.write(first[chunks.frame_ends[k0 - 1]:])
        sent = per
        stats.blast_frames += per - k0
        self.blast_frames += per - k0
        r = 2
        while not sess.closed:
            written = 0
            while written < (4 << 20):  # several small chunks per turn of the loop
                if limit and sent + per >= limit:
                    k = limit - sent
                    if k > 0:
                        tr.write(chunks.chunk(r)[: chunks.frame_ends[k - 1]])
                        sent += k
                        stats.blast_frames += k
                        self.blast_frames += k
                    return
                tr.writelines(chunks.chunk_parts(r))
                written += chunk_bytes
                sent += per
                stats.blast_frames += per
                self.blast_frames += per
                r += 1
                if sess.paused:
                    break
            if sess.paused:
                await sess.resumed.wait()
            else:
                await asyncio.sleep(0)

    async def _blast_paced(self, sess: _Session, chunks: BlastChunks, limit: int,
                           k0: int) -> None:
        """Blast at ``blast_rate`` frames/s (this connection's share of it): every loop
        turn (at most 1 ms apart) writes the frames that are due by the clock, in order,
        across chunk boundaries.  The first ``k0`` frames are already sent."""
        tr = sess.transport.underlying_transport
        stats = sess.line.stats
        rate = self.config.blast_rate * chunks.share
        per = chunks.frames_per_chunk
        ends = chunks.frame_ends
        r, k = 1, k0           # next frame: repetition r, index k within it
        cur = chunks.chunk(r)
        sent = k0
        if k == per:
            r, k = 2, 0
            cur = chunks.chunk(r)
        t0 = time.monotonic()
        while not sess.closed and not (limit and sent >= limit):
            due = int((time.monotonic() - t0) * rate)
            if limit:
                due = min(due, limit)
            while sent < due and not sess.paused:
                take = min(due - sent, per - k)
                start = ends[k - 1] if k else 0
                tr.write(cur[start:ends[k + take - 1]])
                sent += take
                stats.blast_frames += take
                self.blast_frames += take
                k += take
                if k == per:
                    r, k = r + 1, 0
                    cur = chunks.chunk(r)
            if sess.paused:
                await sess.resumed.wait()
            else:
                await asyncio.sleep(0.001)

    # ------------------------------------------------------------ http / routing

    def _factory(self, ln: _Line) -> Callable[[WSUpgradeRequest], Any]:
        def factory(request: WSUpgradeRequest) -> Any:
            raw = request.path.decode("latin-1")
            parts = urlsplit(raw)
            path = unquote(parts.path)
            query = parse_qs(parts.query)
            upgrade = (request.headers.get("Upgrade") or "").lower()
            if upgrade != "websocket":
                ln.stats.rest_requests += 1
                headers = {"Content-Type": "application/json"}
                status, body = self._rest(path, query, headers)
                if status == 200:
                    resp = WSUpgradeResponse.create_ok_response(body, headers)
                else:
                    resp = WSUpgradeResponse.create_error_response(status, body, headers)
                return WSUpgradeResponseWithListener(resp, None)
            return self._ws_route(ln, path, query)
        return factory

    def _ws_route(self, ln: _Line, path: str, query: dict[str, list[str]]) -> _Session | None:
        ex = self.config.exchange
        if ex == "okx":
            return _Session(ln, path, query, None, False, []) if path in (
                "/ws/v5/public", "/ws/v5/business") else None
        if ex == "deribit":
            return _Session(ln, path, query, None, False, []) if path == "/ws/api/v2" else None
        route: str | None = None
        p = path
        if ex == "binance-usdm":
            for r in _USDM_ROUTES:
                if p.startswith(f"/{r}/"):
                    route, p = r, p[len(r) + 1:]
                    break
        if p == "/stream" or p == "/stream/":
            streams = [s for v in query.get("streams", []) for s in v.split("/") if s]
            return _Session(ln, path, query, route, True, streams)
        if p == "/ws" or p == "/ws/":
            return _Session(ln, path, query, route, False, [])
        if p.startswith("/ws/"):
            streams = [s for s in p[4:].split("/") if s]
            return _Session(ln, path, query, route, False, streams)
        return None

    def _rest(self, path: str, query: dict[str, list[str]],
              headers: dict[str, str]) -> tuple[int, bytes]:
        ex = self.config.exchange
        feed = self.feed
        if isinstance(feed, BinanceFeed):
            prefix = _REST_PREFIX[ex]
            if path == prefix + "exchangeInfo":
                return 200, feed.exchange_info()
            if path == prefix + "ping":
                return 200, b"{}"
            if path == prefix + "time":
                return 200, _json({"serverTime": _now_ms()})
            if path == prefix + "depth":
                status, body = self._rest_depth(ex, feed, query, headers)
                self.depth_requests.append((time.monotonic(), status))
                return status, body
            return 404, _json({"code": -1, "msg": f"unknown endpoint {path}"})
        if ex == "okx" and path == "/api/v5/public/instruments":
            rows = [{"instId": i, "tickSz": m["tick"], "lotSz": m["lot"], "ctVal": ""}
                    for i, m in feed.meta.items()]
            return 200, _json({"code": "0", "msg": "", "data": rows})
        if ex == "deribit" and path == "/api/v2/public/get_instruments":
            rows2 = [{"instrument_name": i, "tick_size": float(m["tick"]),
                      "min_trade_amount": float(m["lot"]), "contract_size": float(m["lot"])}
                     for i, m in feed.meta.items()]
            return 200, _json({"jsonrpc": "2.0", "result": rows2})
        return 404, _json({"error": f"unknown endpoint {path}"})

    def _rest_depth(self, ex: str, feed: BinanceFeed, query: dict[str, list[str]],
                    headers: dict[str, str]) -> tuple[int, bytes]:
        left, status, retry_after = self._rest_reject
        if left > 0:
            self._rest_reject = (left - 1, status, retry_after)
            if retry_after:
                headers["Retry-After"] = retry_after
            if status == 418:
                return 418, _json({"code": -1003, "msg": "Way too much request weight used; "
                                   "IP banned until further notice (simulated)."})
            return 429, _json({"code": -1003, "msg": "Too much request weight used; "
                               "current limit is 2400 request weight per 1 MINUTE "
                               "(simulated)."})
        sym = (query.get("symbol") or [""])[0].upper()
        if not sym:
            return 400, _json({"code": -1102, "msg": "Mandatory parameter 'symbol' was "
                               "not sent, was empty/null, or malformed."})
        dflt, top = _DEPTH_LIMIT[ex]
        try:
            limit = int((query.get("limit") or [str(dflt)])[0])
        except ValueError:
            return 400, _json({"code": -1100, "msg": "Illegal characters found in "
                               "parameter 'limit'."})
        limit = max(1, min(limit, top))
        if self._blast_chunks is not None and sym == self._blast_chunks.symbol:
            self._snapshot_served.set()
            return 200, self._blast_chunks.snapshot(limit)
        if sym not in feed.books:
            return 400, _json({"code": -1121, "msg": "Invalid symbol."})
        return 200, feed.rest_depth(sym, limit)


def parse_line_values(text: str | None, n: int, default: float = 0.0) -> list[float]:
    """``"0,3"`` → one value per line (the last value repeats; empty → ``default``)."""
    if not text:
        return [default] * n
    vals = [float(x) for x in text.split(",") if x.strip()]
    if not vals:
        return [default] * n
    return [vals[min(i, len(vals) - 1)] for i in range(n)]


def line_configs(n: int, *, delay_ms: str | None = None, jitter_ms: str | None = None,
                 drop_rate: str | None = None, malformed_rate: str | None = None,
                 disconnect_every: str | None = None) -> list[LineConfig]:
    """``n`` line configs from comma-separated per-line values (CLI style)."""
    d = parse_line_values(delay_ms, n)
    j = parse_line_values(jitter_ms, n)
    dr = parse_line_values(drop_rate, n)
    mr = parse_line_values(malformed_rate, n)
    de = parse_line_values(disconnect_every, n)
    return [LineConfig(d[i], j[i], dr[i], mr[i], de[i]) for i in range(n)]
