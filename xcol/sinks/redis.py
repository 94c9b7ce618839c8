"""The Redis sink: pub/sub channels and market-data keys for live consumers.

One TCP (or TLS) connection per sink, an :class:`asyncio.Protocol` on the running loop
(uvloop in production) with ``hiredis.Reader`` parsing the replies.  Each :meth:`RedisSink.
write` turns a whole batch into one RESP buffer and sends it in one ``transport.write``
(pipelining: one round trip per batch, not per record); it returns once the *previous*
batch is fully answered, so Redis works on one batch while the loop encodes the next.
:meth:`RedisSink.flush` waits for the last one.

What a batch becomes (channel and key names are templates, see :class:`RedisSink`):

=================  ======================================================================
record type        commands
=================  ======================================================================
``top``            ``PUBLISH orderbook:{exchange}:{symbol} <orderbook payload>``
``snapshot``       the same, the book truncated to ``depth`` levels per side
``trade``          ``PUBLISH trades:{symbol} <the record as is>``, and updates the
                   instrument's market data (last trade, rolling 24 h volume/high/low)
``bbo``            updates the instrument's market data (best bid/ask, mid, spread)
``book``           nothing, unless ``publish_deltas``: ``PUBLISH book:{exchange}:{symbol}
                   <the record as is>``
=================  ======================================================================

Market data is coalesced: an instrument whose state changed in a batch gets exactly one
``PUBLISH market_data:{symbol} <json>`` and one ``SET market_data:{symbol} <json> EX ttl``
for that batch, with its latest state, however many BBO and trade records the batch held.
That keeps Redis' load bounded by batches, not by ticks.  Payloads: docs/sinks.md.

Delivery: a batch is done when Redis answered every one of its commands.  A connection
that fails, times out or answers with a transient error (``LOADING``, ``BUSY``...) makes
``write``/``flush`` raise; the fan-out then closes the sink, reopens it with backoff and
calls it again with the same batch, and every batch not fully answered (at most the one
in flight and the current one) is re-sent byte for byte on the new connection (its
market-data state was applied once, when it was encoded).  Other error replies (``NOPERM``, ``OOM``,
``WRONGTYPE``...) are counted per code and logged; retrying them would not help.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import ssl
import time
from collections import deque
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from string import Formatter
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import unquote, urlsplit

import hiredis

from xcol._fast.hdr import HdrHistogram
from xcol.sinks.base import Sink

if TYPE_CHECKING:
    from xcol.config import RedisSinkConfig

__all__ = [
    "DEFAULT_TEMPLATES",
    "RedisError",
    "RedisSink",
    "RedisUrl",
    "RollingWindow",
    "check_template",
    "parse_url",
]

log = logging.getLogger("xcol.sinks.redis")

#: Default channel and key templates (placeholders ``{exchange}`` and ``{symbol}``).
DEFAULT_TEMPLATES: dict[str, str] = {
    "orderbook_channel": "orderbook:{exchange}:{symbol}",
    "market_data_channel": "market_data:{symbol}",
    "market_data_key": "market_data:{symbol}",
    "trades_channel": "trades:{symbol}",
    "book_channel": "book:{exchange}:{symbol}",
}

#: Error-reply codes that mean "try again later": the batch is retried, not counted lost.
RETRY_CODES = frozenset({"LOADING", "BUSY", "TRYAGAIN", "MASTERDOWN", "NOAUTH", "READONLY",
                         "CLUSTERDOWN"})

_WARN_EVERY_S = 10.0
#: Records encoded between two yields to the event loop (about 0.5 ms of work).
_CHUNK = 512
_MAX_ROUTES = 65_536

# Record kinds (see xcol.sinks.records.RECORD_TYPES).
_BOOK, _SNAPSHOT, _TOP, _BBO, _TRADE, _OTHER = range(6)
_KINDS = {b"book": _BOOK, b"snapshot": _SNAPSHOT, b"top": _TOP, b"bbo": _BBO,
          b"trade": _TRADE}

_SYM = b'","symbol":"'
_EXCH = b'","exchange":"'


class RedisError(Exception):
    """Redis refused the connection set-up (``AUTH``, ``SELECT``...) or a transient error
    reply asks for the batch to be retried.  The message never contains the password."""


# --------------------------------------------------------------------------- URL, templates


@dataclass(frozen=True)
class RedisUrl:
    """A parsed ``redis://`` / ``rediss://`` URL.

    :param host: host name or address (IPv6 without brackets).
    :param port: TCP port (default 6379).
    :param db: database index for ``SELECT`` (the URL path, default 0).
    :param username: ACL user for ``AUTH`` (empty: the default user).
    :param password: password for ``AUTH`` (empty: no ``AUTH``).
    :param tls: ``rediss://``.
    """

    host: str
    port: int = 6379
    db: int = 0
    username: str = ""
    password: str = ""
    tls: bool = False

    def __repr__(self) -> str:
        return f"RedisUrl({self.display()!r})"

    def display(self) -> str:
        """The URL with the password masked, for logs and errors."""
        user = self.username
        auth = f"{user}:***@" if self.password else ""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{'rediss' if self.tls else 'redis'}://{auth}{host}:{self.port}/{self.db}"


def _redact(url: str) -> str:
    at = url.rfind("@")
    if at < 0:
        return url
    scheme_end = url.find("://")
    start = scheme_end + 3 if 0 <= scheme_end < at else 0
    userinfo = url[start:at]
    user, sep, _ = userinfo.partition(":")
    return f"{url[:start]}{user}{':***' if sep else ''}{url[at:]}"


def parse_url(url: str) -> RedisUrl:
    """Parse ``redis://[[username]:password@]host[:port][/db]`` (``rediss://`` for TLS).

    User name and password are percent-decoded.  Raises :class:`ValueError` with the
    reason; the message shows the URL with its password masked.
    """
    shown = _redact(url)
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise ValueError(f"bad URL {shown!r}: {exc}") from None
    if parts.scheme not in ("redis", "rediss"):
        raise ValueError(f"URL {shown!r} must start with redis:// or rediss://")
    if not parts.hostname:
        raise ValueError(f"URL {shown!r} has no host")
    if port == 0:
        raise ValueError(f"URL {shown!r} has port 0")
    if parts.query or parts.fragment:
        raise ValueError(f"URL {shown!r}: options after '?' or '#' are not supported "
                         "(use the sink's keys: password, tls_verify...)")
    path = parts.path[1:] if parts.path.startswith("/") else parts.path
    if path and not (path.isascii() and path.isdigit()):
        raise ValueError(f"URL {shown!r}: the path must be a database number, got {path!r}")
    username = unquote(parts.username or "")
    password = unquote(parts.password) if parts.password is not None else ""
    if username and parts.password is None:
        raise ValueError(f"URL {shown!r}: a user name needs a password "
                         "(redis://user:password@host)")
    return RedisUrl(host=parts.hostname, port=port if port is not None else 6379,
                    db=int(path) if path else 0, username=username, password=password,
                    tls=parts.scheme == "rediss")


def check_template(template: str) -> str | None:
    """Why ``template`` is not a valid channel/key template, or ``None`` when it is.

    Templates may use ``{exchange}`` and ``{symbol}`` (``{{``/``}}`` for literal braces).
    """
    if not template:
        return "must not be empty"
    try:
        parsed = list(Formatter().parse(template))
    except ValueError as exc:
        return f"bad template {template!r}: {exc}"
    for _, field, spec, conv in parsed:
        if field is None:
            continue
        if field not in ("exchange", "symbol"):
            return (f"unknown placeholder {{{field}}} in {template!r} "
                    "(available: {exchange}, {symbol})")
        if spec or conv:
            return f"placeholder {{{field}}} in {template!r} takes no format spec"
    return None


# --------------------------------------------------------------------------- RESP


def _bulk(b: bytes) -> bytes:
    return b"$%d\r\n%s\r\n" % (len(b), b)


def encode_command(*args: bytes) -> bytes:
    """One RESP command (an array of bulk strings)."""
    return b"*%d\r\n" % len(args) + b"".join(_bulk(a) for a in args)


class _Pending:
    """Replies still expected for one pipelined send."""

    __slots__ = ("fut", "n", "left", "errors")

    def __init__(self, fut: asyncio.Future[_Pending], n: int) -> None:
        self.fut = fut
        self.n = n
        self.left = n
        #: (command index, error reply) of every error reply
        self.errors: list[tuple[int, hiredis.ReplyError]] = []


def _retrieve(fut: asyncio.Future[Any]) -> None:
    # A batch abandoned after a failure is re-sent on the next connection; its old
    # future's error is expected, not "never retrieved".
    if not fut.cancelled():
        fut.exception()


class _Batch:
    """A written batch: its RESP, and the future of its replies on the current
    connection (``None``: not sent on it yet)."""

    __slots__ = ("batch", "payload", "ncmd", "nmd", "n", "fut", "attempts", "t0")

    def __init__(self, batch: bytes, payload: bytes, ncmd: int, nmd: int, n: int) -> None:
        self.batch = batch
        self.payload = payload
        self.ncmd = ncmd
        self.nmd = nmd
        self.n = n
        self.fut: asyncio.Future[_Pending] | None = None
        self.attempts = 0
        self.t0 = 0


class _RespProtocol(asyncio.Protocol):
    """Pipelined RESP2 over a transport: sends go out whole, replies are matched in order."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.lost: ConnectionError | None = None
        self._reader = hiredis.Reader()
        self._pending: deque[_Pending] = deque()
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports do not subclass asyncio.Transport; same interface
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        reader = self._reader
        pending = self._pending
        reader.feed(data)
        try:
            while True:
                reply = reader.gets()
                if reply is False:
                    return
                if not pending:
                    raise hiredis.ProtocolError(f"unexpected reply {reply!r}")
                p = pending[0]
                if isinstance(reply, hiredis.ReplyError):
                    p.errors.append((p.n - p.left, reply))
                p.left -= 1
                if p.left == 0:
                    pending.popleft()
                    if not p.fut.done():
                        p.fut.set_result(p)
        except hiredis.ProtocolError as exc:
            self._fail(ConnectionError(f"redis protocol error: {exc}"))
            if self.transport is not None:
                self.transport.abort()

    def eof_received(self) -> bool | None:
        return None  # close our side too; connection_lost follows

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail(ConnectionResetError(
            f"redis connection lost: {exc}" if exc else "redis closed the connection"))
        if not self.closed.done():
            self.closed.set_result(None)

    def _fail(self, err: ConnectionError) -> None:
        if self.lost is None:
            self.lost = err
        while self._pending:
            p = self._pending.popleft()
            if not p.fut.done():
                p.fut.set_exception(self.lost)

    def send(self, data: bytes, n: int) -> asyncio.Future[_Pending]:
        """Write ``n`` pipelined commands; the future completes with their replies."""
        if self.lost is not None:
            raise self.lost
        tr = self.transport
        if tr is None or tr.is_closing():
            raise ConnectionResetError("redis connection is closing")
        fut: asyncio.Future[_Pending] = asyncio.get_running_loop().create_future()
        fut.add_done_callback(_retrieve)
        self._pending.append(_Pending(fut, n))
        tr.write(data)
        return fut


# --------------------------------------------------------------------------- market data


class RollingWindow:
    """Volume, high, low and trade count over a rolling time window, in O(1) amortized
    time per trade.

    Trades are summed into fixed buckets (one minute by default).  The window holds the
    buckets whose start lies within ``span_ms`` of the newest bucket: with one-minute
    buckets and 24 h that is the current minute and the 1,439 before it (23 h 59 m to
    24 h of trades).  Totals are kept running: adding a trade is a few Decimal
    operations; a bucket leaving the window subtracts its volume and count, and only
    when it held the window's high or low is the extreme recomputed over the remaining
    buckets (at most one scan of ``span_ms / bucket_ms`` buckets per bucket evicted).
    Volumes are exact decimals: nothing drifts however long the process runs.

    :param span_ms: window length (default 24 h).
    :param bucket_ms: bucket length (default 1 min); ``span_ms`` must be a multiple.
    """

    __slots__ = ("bucket_ms", "n_buckets", "_buckets", "_head", "volume", "count",
                 "high", "low", "late")

    def __init__(self, span_ms: int = 86_400_000, bucket_ms: int = 60_000) -> None:
        if bucket_ms <= 0 or span_ms < bucket_ms or span_ms % bucket_ms:
            raise ValueError("span_ms must be a positive multiple of bucket_ms")
        self.bucket_ms = bucket_ms
        self.n_buckets = span_ms // bucket_ms
        # [bucket index, volume, high, low, trades], oldest first
        self._buckets: deque[list[Any]] = deque()
        self._head = -(1 << 62)  # newest bucket index seen (trades or advance())
        #: Summed quantity of the trades in the window.
        self.volume = Decimal(0)
        #: Trades in the window.
        self.count = 0
        #: Highest / lowest trade price in the window (``None`` when empty).
        self.high: Decimal | None = None
        self.low: Decimal | None = None
        #: Trades older than the window when they arrived (ignored).
        self.late = 0

    def add(self, ts_ms: int, price: Decimal, qty: Decimal) -> None:
        """Count one trade at exchange time ``ts_ms``."""
        self.add_group(ts_ms, qty, price, price, 1)

    def add_group(self, ts_ms: int, volume: Decimal, high: Decimal, low: Decimal,
                  count: int) -> None:
        """Count ``count`` trades of the bucket of ``ts_ms`` at once (their summed
        quantity, highest and lowest price)."""
        k = ts_ms // self.bucket_ms
        b = self._buckets
        if k > self._head:
            self._evict(k)
            b.append([k, volume, high, low, count])
        elif b and k == b[-1][0]:
            last = b[-1]
            last[1] += volume
            if high > last[2]:
                last[2] = high
            if low < last[3]:
                last[3] = low
            last[4] += count
        elif k <= self._head - self.n_buckets:
            self.late += count
            return
        else:
            self._insert_late(k, volume, high, low, count)
        self.volume += volume
        self.count += count
        if self.high is None or high > self.high:
            self.high = high
        if self.low is None or low < self.low:
            self.low = low

    def advance(self, now_ms: int) -> None:
        """Move the window's end to ``now_ms`` (drops buckets that fell out of it)."""
        k = now_ms // self.bucket_ms
        if k > self._head:
            self._evict(k)

    def _insert_late(self, k: int, volume: Decimal, high: Decimal, low: Decimal,
                     count: int) -> None:
        b = self._buckets
        i = len(b) - 1
        while i >= 0 and b[i][0] > k:
            i -= 1
        if i >= 0 and b[i][0] == k:
            bk = b[i]
            bk[1] += volume
            bk[2] = max(bk[2], high)
            bk[3] = min(bk[3], low)
            bk[4] += count
        else:
            b.insert(i + 1, [k, volume, high, low, count])

    def _evict(self, k: int) -> None:
        self._head = k
        limit = k - self.n_buckets
        b = self._buckets
        rescan = False
        while b and b[0][0] <= limit:
            old = b.popleft()
            self.volume -= old[1]
            self.count -= old[4]
            if old[2] == self.high or old[3] == self.low:
                rescan = True
        if not b:
            self.volume = Decimal(0)
            self.high = self.low = None
        elif rescan:
            self.high = max(x[2] for x in b)
            self.low = min(x[3] for x in b)


class _Stream:
    """Per (exchange, symbol): pre-encoded command heads and market-data state."""

    __slots__ = ("exchange", "symbol", "ob_head", "trades_head", "book_head", "md_pub_head",
                 "md_set_head", "md_set_tail", "bbo_rec", "top_rec", "ob_rec", "trades",
                 "has_bbo",
                 "dirty",
                 "bid", "bid_qty", "ask", "ask_qty", "last", "last_qty", "last_side", "last_ts",
                 "window", "ts_exchange", "updated_at")

    def __init__(self, sink: RedisSink, exchange: str, symbol: str) -> None:
        self.exchange = exchange
        self.symbol = symbol

        def name(template: str) -> bytes:
            return template.format(exchange=exchange, symbol=symbol).encode()

        pub = b"*3\r\n$7\r\nPUBLISH\r\n"
        self.ob_head = pub + _bulk(name(sink.templates["orderbook_channel"]))
        self.trades_head = pub + _bulk(name(sink.templates["trades_channel"]))
        self.book_head = pub + _bulk(name(sink.templates["book_channel"]))
        self.md_pub_head = pub + _bulk(name(sink.templates["market_data_channel"]))
        key = _bulk(name(sink.templates["market_data_key"]))
        if sink.ttl_s > 0:
            self.md_set_head = b"*5\r\n$3\r\nSET\r\n" + key
            self.md_set_tail = b"$2\r\nEX\r\n" + _bulk(b"%d" % sink.ttl_s)
        else:
            self.md_set_head = b"*3\r\n$3\r\nSET\r\n" + key
            self.md_set_tail = b""
        self.bbo_rec: bytes | None = None  # latest BBO record of the batch being encoded
        self.top_rec: bytes | None = None  # latest top record (best bid/ask without BBO)
        self.trades: list[bytes] = []  # trade records of the batch being encoded
        self.ob_rec: bytes | None = None  # latest book of the batch (coalesce_orderbook)
        self.has_bbo = False
        self.dirty = False
        self.bid: str | None = None
        self.bid_qty: str | None = None
        self.ask: str | None = None
        self.ask_qty: str | None = None
        self.last: str | None = None
        self.last_qty: str | None = None
        self.last_side: str | None = None
        self.last_ts = 0  # ms, exchange time of the last trade
        self.window = RollingWindow()
        self.ts_exchange = 0  # ms, newest exchange time seen
        self.updated_at = 0  # ms, receive time of the latest record that changed the state


def _fmt_dec(d: Decimal | None) -> str | None:
    return None if d is None else format(d, "f")


def _levels_re(depth: int) -> re.Pattern[bytes]:
    """Matches ``depth`` levels each followed by a comma: the match ends one past where
    the cut goes, and there is no match when the array has at most ``depth`` levels
    (levels are ``["p","q"]``, which never contain ``]``)."""
    return re.compile(rb"(?:[^\]]*\],){%d}" % depth)


# The engine's trade layout, read for a whole batch at once (a record that does not match
# is read on its own with json): ts_exchange, ts_recv, price, qty, side.
_TRADE_RE = re.compile(rb'"ts_exchange":(\d+),"ts_recv":(\d+),"line":-?\d+,"id":\d+,'
                       rb'"price":"([^"\n]*)","qty":"([^"\n]*)","side":(?:"(\w*)"|null)\}')


# --------------------------------------------------------------------------- the sink


class RedisSink(Sink):
    """Publish records to Redis channels and keep market-data keys (see module doc).

    :param url: ``redis://[[user]:password@]host[:port][/db]`` or ``rediss://`` (TLS).
    :param username: ACL user (overrides the URL's).
    :param password: password (overrides the URL's).
    :param tls_verify: verify the server's certificate and host name (``rediss://``).
    :param tls_ca_file: CA bundle to verify against (default: the system's).
    :param connect_timeout_s: TCP connect + TLS handshake + AUTH/SELECT deadline.
    :param timeout_s: deadline for all replies of one batch; past it the connection is
        dropped and the batch retried on a new one.
    :param depth: levels per side in ``orderbook`` payloads.
    :param publish_deltas: also publish ``book`` records (incremental deltas).
    :param coalesce_orderbook: publish only the latest book of each instrument per batch
        (like market data) instead of one per ``top``/``snapshot`` record.
    :param ttl_s: ``EX`` of the market-data keys (0: no expiry).
    :param templates: channel/key templates by name (see :data:`DEFAULT_TEMPLATES`).
    :param name: metrics label.
    """

    def __init__(
        self,
        url: str = "redis://127.0.0.1:6379/0",
        *,
        username: str = "",
        password: str = "",
        tls_verify: bool = True,
        tls_ca_file: str = "",
        connect_timeout_s: float = 5.0,
        timeout_s: float = 10.0,
        depth: int = 10,
        publish_deltas: bool = False,
        coalesce_orderbook: bool = False,
        ttl_s: int = 300,
        templates: dict[str, str] | None = None,
        name: str = "redis",
    ) -> None:
        super().__init__(name)
        u = parse_url(url)
        if username or password:
            u = RedisUrl(u.host, u.port, u.db, username or u.username,
                         password or u.password, u.tls)
        self.url = u
        self.tls_verify = tls_verify
        self.tls_ca_file = tls_ca_file
        self.connect_timeout_s = connect_timeout_s
        self.timeout_s = timeout_s
        if depth <= 0:
            raise ValueError(f"depth must be > 0, got {depth}")
        self.depth = depth
        self._cut_re = _levels_re(depth)
        self.publish_deltas = publish_deltas
        self.coalesce_orderbook = coalesce_orderbook
        if ttl_s < 0:
            raise ValueError(f"ttl_s must be >= 0, got {ttl_s}")
        self.ttl_s = ttl_s
        self.templates = dict(DEFAULT_TEMPLATES)
        for key, tpl in (templates or {}).items():
            if key not in DEFAULT_TEMPLATES:
                raise ValueError(f"unknown template {key!r}")
            reason = check_template(tpl)
            if reason:
                raise ValueError(f"{key}: {reason}")
            self.templates[key] = tpl
        self._ssl: ssl.SSLContext | None = None
        self._conn: _RespProtocol | None = None
        self._ok = False
        self._streams: dict[tuple[str, str], _Stream] = {}
        self._routes: dict[bytes, tuple[int, _Stream, int]] = {}
        # Batches written but not yet answered, oldest first (at most two).  A retry
        # re-sends their RESP instead of encoding (and applying their state) again.
        self._unacked: deque[_Batch] = deque()
        self._retrying = False  # a call failed: the next write may repeat its batch
        self._last_warn = -1e18
        # -- metrics --
        #: Records and batches delivered (every reply received).
        self.records = 0
        self.batches = 0
        #: Commands acknowledged (PUBLISH and SET).
        self.commands = 0
        #: Market-data updates (one PUBLISH + SET each) acknowledged.
        self.market_data = 0
        #: RESP bytes sent.
        self.bytes_sent = 0
        #: Error replies by code (``NOPERM``, ``OOM``...).
        self.error_replies: dict[str, int] = {}
        #: Calls that raised (connection lost, timeout, transient error reply).
        self.failures = 0
        #: Batches sent again after a failure.
        self.retries = 0
        #: Successful connections (the first one and every reconnect).
        self.connects = 0
        #: Records skipped: no standard header, or fields that do not parse.
        self.bad_records = 0
        #: Records of a type this sink does not route.
        self.skipped = 0
        self.last_error: str | None = None
        #: Write round trip (send → last reply), microseconds.
        self.write_us = HdrHistogram(1, 60_000_000, 3)

    @classmethod
    def from_config(cls, cfg: RedisSinkConfig, name: str = "redis") -> RedisSink:
        """A sink from its ``[sinks.redis]`` table."""
        return cls(cfg.url, username=cfg.username, password=cfg.password,
                   tls_verify=cfg.tls_verify, tls_ca_file=cfg.tls_ca_file,
                   connect_timeout_s=cfg.connect_timeout_s, timeout_s=cfg.timeout_s,
                   depth=cfg.depth, publish_deltas=cfg.publish_deltas,
                   coalesce_orderbook=cfg.coalesce_orderbook, ttl_s=cfg.ttl_s,
                   templates={k: getattr(cfg, k) for k in DEFAULT_TEMPLATES}, name=name)

    def __repr__(self) -> str:
        return f"<RedisSink {self.name!r} {self.url.display()}>"

    @property
    def healthy(self) -> bool:
        return self._conn is not None and self._conn.lost is None and self._ok

    # -- connection ----------------------------------------------------------------------

    def _ssl_context(self) -> ssl.SSLContext:
        if self._ssl is None:
            ctx = ssl.create_default_context(cafile=self.tls_ca_file or None)
            if not self.tls_verify:
                ctx.check_hostname = False
                ctx.verify_mode = ssl.CERT_NONE
            self._ssl = ctx
        return self._ssl

    async def open(self) -> None:
        if self._conn is not None and self._conn.lost is None:
            return
        u = self.url
        where = u.display()
        loop = asyncio.get_running_loop()
        conn: _RespProtocol | None = None
        try:
            async with asyncio.timeout(self.connect_timeout_s):
                tls = self._ssl_context() if u.tls else None
                tr, conn = await loop.create_connection(
                    _RespProtocol, u.host, u.port, ssl=tls,
                    server_hostname=u.host if tls is not None else None)
                # uvloop may call connection_made() a loop turn later
                conn.transport = tr
                cmds: list[tuple[str, bytes]] = []
                if u.password:
                    args = (u.username.encode(),) if u.username else ()
                    cmds.append(("AUTH", encode_command(b"AUTH", *args, u.password.encode())))
                if u.db:
                    cmds.append(("SELECT", encode_command(b"SELECT", b"%d" % u.db)))
                client = "".join(c if c.isalnum() or c in "-_." else "_" for c in self.name)
                cmds.append(("CLIENT SETNAME", encode_command(
                    b"CLIENT", b"SETNAME", f"xcol-{client}".encode())))
                cmds.append(("PING", encode_command(b"PING")))
                p = await conn.send(b"".join(c[1] for c in cmds), len(cmds))
        except TimeoutError:
            self._abort(conn)
            raise TimeoutError(f"redis {where}: not connected within "
                               f"{self.connect_timeout_s:g} s") from None
        except ssl.SSLError as exc:
            self._abort(conn)
            raise ConnectionError(f"redis {where}: TLS: {exc}") from exc
        except OSError as exc:
            self._abort(conn)
            raise ConnectionError(f"redis {where}: {exc.strerror or exc}") from exc
        except BaseException:
            self._abort(conn)
            raise
        for i, err in p.errors:
            what = cmds[i][0]
            if what == "CLIENT SETNAME":
                continue  # cosmetic; an ACL user may not be allowed it
            self._abort(conn)
            raise RedisError(f"redis {where}: {what} failed: {err}")
        self._conn = conn
        self._ok = True
        self.connects += 1
        if self.connects > 1 or self.failures:
            log.info("redis sink %s connected to %s", self.name, where)

    @staticmethod
    def _abort(conn: _RespProtocol | None) -> None:
        if conn is not None and conn.transport is not None:
            conn.transport.abort()

    async def close(self) -> None:
        conn = self._conn
        if (conn is not None and conn.lost is None and self._unacked
                and conn.transport is not None and not conn.transport.is_closing()):
            with contextlib.suppress(Exception):
                await self.flush()
        self._conn = None
        self._ok = False
        if conn is None or conn.transport is None:
            return
        conn.transport.close()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(conn.closed), 1.0)
        if not conn.closed.done():
            conn.transport.abort()

    def _connected(self) -> _RespProtocol:
        conn = self._conn
        if conn is None or conn.lost is not None:
            self._ok = False
            self.failures += 1
            self.last_error = str(conn.lost) if conn is not None else "not connected"
            raise conn.lost if conn is not None and conn.lost else ConnectionResetError(
                "redis sink is not connected")
        return conn

    # -- writing --------------------------------------------------------------------------

    async def write(self, batch: bytes, n_records: int) -> None:
        """Encode and send ``batch``, then wait for the replies of the batch before it.

        One batch stays in flight while the next one is encoded (the server works on
        batch N while the loop encodes N+1); :meth:`flush` waits for it.  A batch whose
        replies did not all come is sent again, whole, on the next connection.
        """
        unacked = self._unacked
        conn = self._connected()
        if self._retrying and unacked and unacked[-1].batch is batch:
            pass  # the fan-out's retry of a batch this sink already holds
        else:
            payload, ncmd, nmd = await self._encode_yielding(batch)
            unacked.append(_Batch(batch, payload, ncmd, nmd, n_records))
        await self._settle(conn, keep=1)
        self._retrying = False

    async def flush(self) -> None:
        """Wait until Redis answered every batch written.  Also notices a dead connection
        while the queue is quiet, so the fan-out reconnects before the next batch."""
        await self._settle(self._connected(), keep=0)

    async def _settle(self, conn: _RespProtocol, keep: int) -> None:
        """Send what this connection has not carried yet, then account for the oldest
        batches until at most ``keep`` are in flight."""
        unacked = self._unacked
        try:
            for b in unacked:
                if b.fut is None and b.ncmd:
                    b.t0 = time.perf_counter_ns()
                    b.fut = conn.send(b.payload, b.ncmd)
                    if b.attempts:
                        self.retries += 1
                    b.attempts += 1
            while len(unacked) > keep:
                b = unacked[0]
                p = None
                if b.ncmd:
                    assert b.fut is not None
                    p = await asyncio.wait_for(b.fut, self.timeout_s)
                self._account(b, p)
                unacked.popleft()
        except BaseException as exc:
            # Whatever was not answered goes again, whole, on the next connection.
            for b in unacked:
                b.fut = None
            self._retrying = True
            self._abort(conn)
            self._ok = False
            if isinstance(exc, asyncio.CancelledError):
                raise
            self.failures += 1
            if isinstance(exc, TimeoutError):
                self.last_error = f"no reply within {self.timeout_s:g} s"
                raise TimeoutError(f"redis {self.url.display()}: "
                                   f"{self.last_error}") from None
            self.last_error = str(exc)
            raise

    def _account(self, b: _Batch, p: _Pending | None) -> None:
        if p is not None:
            self.write_us.record(max(1, (time.perf_counter_ns() - b.t0) // 1000))
            if p.errors:
                self._errors(p, b.ncmd)
            self.commands += b.ncmd
            self.market_data += b.nmd
            self.bytes_sent += len(b.payload)
            self._ok = not p.errors
        self.records += b.n
        self.batches += 1

    def _errors(self, p: _Pending, ncmd: int) -> None:
        """Count error replies; raise :class:`RedisError` when one is transient."""
        retry = None
        for _, err in p.errors:
            msg = str(err)
            code = msg.split(" ", 1)[0] if msg[:1].isupper() else "ERR"
            self.error_replies[code] = self.error_replies.get(code, 0) + 1
            if code in RETRY_CODES and retry is None:
                retry = msg
        self.last_error = str(p.errors[0][1])
        if retry is not None:
            raise RedisError(f"redis {self.url.display()}: {retry} "
                             f"({len(p.errors)} of {ncmd} commands failed; retrying)")
        now = time.monotonic()
        if now - self._last_warn >= _WARN_EVERY_S:
            self._last_warn = now
            log.warning("redis sink %s: %d of %d commands failed (first: %s); "
                        "error replies so far: %s", self.name, len(p.errors), ncmd,
                        self.last_error, self.error_replies)

    def _bad(self, rec: bytes, why: str) -> None:
        self.bad_records += 1
        now = time.monotonic()
        if now - self._last_warn >= _WARN_EVERY_S:
            self._last_warn = now
            log.warning("redis sink %s: skipped a record (%s): %r (%d skipped so far)",
                        self.name, why, rec[:80], self.bad_records)

    # -- encoding -------------------------------------------------------------------------

    def _route(self, rec: bytes, e: int, s_end: int) -> tuple[int, _Stream, int] | None:
        t_end = rec.find(_EXCH, 9)
        if (e < 0 or s_end < 0 or t_end < 0 or t_end > e
                or not rec.startswith(b'{"type":"')):
            self._bad(rec, "no standard header")
            return None
        try:
            exchange = rec[t_end + 14:e].decode()
            symbol = rec[e + 12:s_end].decode()
        except UnicodeDecodeError:
            self._bad(rec, "header is not UTF-8")
            return None
        st = self._streams.get((exchange, symbol))
        if st is None:
            st = self._streams[(exchange, symbol)] = _Stream(self, exchange, symbol)
        hit = (_KINDS.get(rec[9:t_end], _OTHER), st, t_end + 2)
        if len(self._routes) >= _MAX_ROUTES:
            self._routes.clear()
        self._routes[rec[:s_end]] = hit
        return hit

    def _encode(self, batch: bytes) -> tuple[bytes, int, int]:
        """The RESP commands for ``batch``, their count and the number of market-data
        updates among them; applies the batch to the market-data state."""
        out: list[bytes] = []
        dirty: list[_Stream] = []
        books: list[_Stream] = []
        ncmd = self._encode_lines(batch.split(b"\n"), out, dirty, books)
        ncmd += self._encode_latest(out, dirty, books)
        return b"".join(out), ncmd, len(dirty)

    async def _encode_yielding(self, batch: bytes) -> tuple[bytes, int, int]:
        """:meth:`_encode`, letting the event loop run every :data:`_CHUNK` records so a
        large batch does not hold up the sockets the collector reads."""
        lines = batch.split(b"\n")
        if len(lines) <= _CHUNK:
            return self._encode(batch)
        out: list[bytes] = []
        dirty: list[_Stream] = []
        books: list[_Stream] = []
        ncmd = 0
        for i in range(0, len(lines), _CHUNK):
            if i:
                await asyncio.sleep(0)
            ncmd += self._encode_lines(lines[i:i + _CHUNK], out, dirty, books)
        ncmd += self._encode_latest(out, dirty, books)
        return b"".join(out), ncmd, len(dirty)

    def _encode_lines(self, lines: list[bytes], out: list[bytes], dirty: list[_Stream],
                      books: list[_Stream]) -> int:
        """Append the commands of ``lines`` to ``out``; the instruments whose market data
        changed to ``dirty``, those with a coalesced book to ``books``.  Returns the
        number of commands."""
        ap = out.append
        ncmd = 0
        routes = self._routes
        deltas = self.publish_deltas
        coalesce = self.coalesce_orderbook
        for rec in lines:
            if not rec:
                continue
            e = rec.find(_SYM, 9)
            s_end = rec.find(b'"', e + 12) if e > 0 else -1
            hit = routes.get(rec[:s_end]) if s_end > 0 else None
            if hit is None:
                hit = self._route(rec, e, s_end)
                if hit is None:
                    continue
            kind, st, hstart = hit
            if kind == _BBO:
                st.bbo_rec = rec
                if not st.dirty:
                    st.dirty = True
                    dirty.append(st)
            elif kind == _TRADE:
                ap(st.trades_head)
                ap(b"$%d\r\n%s\r\n" % (len(rec), rec))
                ncmd += 1
                st.trades.append(rec)
                if not st.dirty:
                    st.dirty = True
                    dirty.append(st)
            elif kind == _BOOK:
                if deltas:
                    ap(st.book_head)
                    ap(b"$%d\r\n%s\r\n" % (len(rec), rec))
                    ncmd += 1
            elif coalesce and kind in (_TOP, _SNAPSHOT):
                if st.ob_rec is None:
                    books.append(st)
                st.ob_rec = rec  # the latest book of the batch is published at its end
                if not st.has_bbo:
                    st.top_rec = rec
                    if not st.dirty:
                        st.dirty = True
                        dirty.append(st)
            elif kind in (_TOP, _SNAPSHOT):
                payload = self._orderbook(rec, hstart, s_end)
                if payload is None:
                    continue
                ap(st.ob_head)
                ap(b"$%d\r\n" % len(payload))
                ap(payload)
                ap(b"\r\n")
                ncmd += 1
                if not st.has_bbo:
                    st.top_rec = rec
                    if not st.dirty:
                        st.dirty = True
                        dirty.append(st)
            else:
                self.skipped += 1
        return ncmd

    def _encode_latest(self, out: list[bytes], dirty: list[_Stream],
                       books: list[_Stream]) -> int:
        """The coalesced commands of a batch: the latest book of each instrument in
        ``books`` (with ``coalesce_orderbook``), and one market-data PUBLISH + SET per
        instrument in ``dirty``."""
        ap = out.append
        ncmd = 0
        for st in books:
            rec, st.ob_rec = st.ob_rec, None
            assert rec is not None
            e = rec.find(_SYM, 9)
            payload = self._orderbook(rec, rec.find(_EXCH, 9) + 2, rec.find(b'"', e + 12))
            if payload is not None:
                ap(st.ob_head)
                ap(b"$%d\r\n" % len(payload))
                ap(payload)
                ap(b"\r\n")
                ncmd += 1
        for st in dirty:
            if st.trades:
                self._trades(st)
            md = self._market_data(st)
            ap(st.md_pub_head)
            ap(b"$%d\r\n%s\r\n" % (len(md), md))
            ap(st.md_set_head)
            ap(b"$%d\r\n%s\r\n" % (len(md), md))
            ap(st.md_set_tail)
        return ncmd + 2 * len(dirty)

    def _orderbook(self, rec: bytes, hstart: int, s_end: int) -> bytes | None:
        """The orderbook payload of a ``top``/``snapshot`` record, cut to ``depth``."""
        depth = self.depth
        # The engine writes ...,"line":L,"bids":[[..],..],"asks":[[..],..]} (no spaces)
        i = rec.find(b',"line":', s_end)
        j = rec.find(b',"bids":[', i, i + 20)
        if i > 0 and j > 0:
            b0 = j + 9
            if rec.startswith(b'],"asks":[', b0):  # no bids
                b1 = a0 = b0
            else:
                b1 = rec.find(b']],"asks":[', b0) + 1
                a0 = b1 + 10
            if b1 > 0:
                if rec.startswith(b"]", a0):  # no asks
                    a1 = a0
                elif rec.endswith(b"]]}"):
                    a1 = len(rec) - 2
                else:
                    a1 = rec.find(b"]]", a0) + 1
                if a1 > 0 and rec.startswith(b"]}", a1) and rec.endswith(b"]}"):
                    cut = self._cut_re.match
                    m = cut(rec, b0, b1)
                    if m is not None:
                        b1 = m.end() - 1
                    m = cut(rec, a0, a1)
                    if m is not None:
                        a1 = m.end() - 1
                    return b"".join((b"{", rec[hstart:i], b',"bids":[', rec[b0:b1],
                                     b'],"asks":[', rec[a0:a1], b"]}"))
        # Not the engine's layout: do it the slow way.
        try:
            r = json.loads(rec)
            d = {k: r[k] for k in ("exchange", "symbol", "seq", "ts_exchange", "ts_recv")}
            d["bids"] = r["bids"][:depth]
            d["asks"] = r["asks"][:depth]
        except (ValueError, KeyError, TypeError):
            self._bad(rec, "book without bids/asks")
            return None
        return json.dumps(d, separators=(",", ":")).encode()

    def _trades(self, st: _Stream) -> None:
        """Apply the batch's trades of ``st`` to its market data."""
        recs, st.trades = st.trades, []
        rows: list[tuple[bytes, ...]] = _TRADE_RE.findall(b"\n".join(recs))
        if len(rows) != len(recs):
            rows = [r for r in map(self._trade_row, recs) if r is not None]
            if not rows:
                return
        ts = [int(r[0]) or int(r[1]) // 1_000_000 for r in rows]
        bucket = st.window.bucket_ms
        lo_k, hi_k = min(ts) // bucket, max(ts) // bucket
        try:
            if lo_k == hi_k:  # the common case: all in one bucket
                self._add_trades(st, ts[0], rows)
            else:
                start = 0
                for n in range(1, len(rows) + 1):
                    if n == len(rows) or ts[n] // bucket != ts[start] // bucket:
                        self._add_trades(st, ts[start], rows[start:n])
                        start = n
        except InvalidOperation:
            for t, r in zip(ts, rows, strict=True):
                try:
                    st.window.add(t, Decimal(r[2].decode()), Decimal(r[3].decode()))
                except InvalidOperation:
                    self._bad(b"".join(recs), "trade price/qty not decimal")
        newest = max(ts)
        # the last trade is the newest by exchange time (a late one does not replace it)
        i = len(ts) - 1 if ts[-1] == newest else ts.index(newest)
        if newest >= st.last_ts:
            last = rows[i]
            st.last, st.last_qty = last[2].decode(), last[3].decode()
            st.last_side = last[4].decode() or None
            st.last_ts = newest
        st.ts_exchange = max(st.ts_exchange, newest)
        st.updated_at = max(st.updated_at, int(rows[-1][1]) // 1_000_000)

    @staticmethod
    def _add_trades(st: _Stream, ts: int, rows: list[tuple[bytes, ...]]) -> None:
        prices = [Decimal(r[2].decode()) for r in rows]
        volume = sum([Decimal(r[3].decode()) for r in rows], Decimal(0))
        st.window.add_group(ts, volume, max(prices), min(prices), len(rows))

    def _trade_row(self, rec: bytes) -> tuple[bytes, ...] | None:
        """One trade's fields as :data:`_TRADE_RE` would give them, read with json."""
        try:
            r = json.loads(rec)
            side = r.get("side")
            return (b"%d" % int(r["ts_exchange"]), b"%d" % int(r["ts_recv"]),
                    str(r["price"]).encode(), str(r["qty"]).encode(),
                    side.encode() if isinstance(side, str) else b"")
        except (ValueError, KeyError, TypeError):
            self._bad(rec, "trade without price/qty")
            return None

    def _market_data(self, st: _Stream) -> bytes:
        st.dirty = False
        src = st.bbo_rec
        if src is not None:
            st.has_bbo = True
            st.top_rec = None
        elif st.top_rec is not None and not st.has_bbo:
            src = st.top_rec
        st.bbo_rec = None
        st.top_rec = None
        if src is not None:
            try:
                r = json.loads(src)
                if "bid" in r:
                    st.bid, st.bid_qty, st.ask, st.ask_qty = (
                        r["bid"], r["bid_qty"], r["ask"], r["ask_qty"])
                else:
                    b = r["bids"][0] if r["bids"] else [None, None]
                    a = r["asks"][0] if r["asks"] else [None, None]
                    st.bid, st.bid_qty, st.ask, st.ask_qty = b[0], b[1], a[0], a[1]
                ts = int(r["ts_exchange"])
                if ts > st.ts_exchange:
                    st.ts_exchange = ts
                recv = int(r["ts_recv"]) // 1_000_000
                if recv > st.updated_at:
                    st.updated_at = recv
            except (ValueError, KeyError, TypeError, IndexError):
                self._bad(src, "quote without bid/ask")
        w = st.window
        if st.ts_exchange:
            w.advance(st.ts_exchange)
        mid = spread = None
        if st.bid is not None and st.ask is not None:
            try:
                bid, ask = Decimal(st.bid), Decimal(st.ask)
                mid = _fmt_dec((bid + ask) / 2)
                spread = _fmt_dec(ask - bid)
            except InvalidOperation:
                pass
        return json.dumps({
            "exchange": st.exchange, "symbol": st.symbol,
            "bid": st.bid, "bid_qty": st.bid_qty, "ask": st.ask, "ask_qty": st.ask_qty,
            "mid": mid, "spread": spread,
            "last": st.last, "last_qty": st.last_qty, "last_side": st.last_side,
            "volume_24h": _fmt_dec(w.volume), "high_24h": _fmt_dec(w.high),
            "low_24h": _fmt_dec(w.low), "trades_24h": w.count,
            "ts_exchange": st.ts_exchange, "updated_at": st.updated_at,
        }, separators=(",", ":")).encode()

    # -- metrics --------------------------------------------------------------------------

    def histograms(self) -> dict[str, HdrHistogram]:
        """Pipeline write durations (µs)."""
        return {"write_us": self.write_us}

    def stats(self) -> dict[str, Any]:
        """Counters and the write round-trip summary (JSON-ready)."""
        h = self.write_us
        return {
            "url": self.url.display(), "healthy": self.healthy, "records": self.records,
            "batches": self.batches, "commands": self.commands,
            "market_data": self.market_data,
            "bytes_sent": self.bytes_sent, "error_replies": dict(self.error_replies),
            "failures": self.failures, "retries": self.retries, "connects": self.connects,
            "bad_records": self.bad_records, "skipped": self.skipped,
            "instruments": len(self._streams), "in_flight": len(self._unacked),
            "last_error": self.last_error,
            "write_us": {"count": h.total_count, "p50": h.value_at_percentile(50.0),
                         "p99": h.value_at_percentile(99.0), "max": h.max()},
        }
