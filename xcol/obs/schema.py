"""The shape of the ``/stats`` document.

The collector's parts fill these dictionaries; :mod:`xcol.obs.http` serves them as JSON,
:mod:`xcol.obs.metrics` turns them into Prometheus text and :mod:`xcol.obs.report` prints
them.  Units are in the key names: ``_us`` microseconds (monotonic clock, code latency and
lag), ``_ms`` milliseconds (wall clock, exchange latency).  Keys marked ``NotRequired`` are
optional; everything else is always present.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NotRequired, TypedDict

if TYPE_CHECKING:
    from xcol._fast.hdr import HdrHistogram

__all__ = [
    "ConnectLimitStats",
    "ConnectionStats",
    "Counters",
    "LagSummary",
    "LatencyStats",
    "LatencySummary",
    "RestHostStats",
    "SinkStats",
    "Stats",
    "StreamStats",
    "empty_stats",
    "lag_summary",
    "latency_summary",
]


class LagSummary(TypedDict):
    """How far a connection's copies trailed the winning copy, in µs (HDR percentiles)."""

    p50: float
    p99: float
    max: float
    count: NotRequired[int]  # lag samples recorded (copies that lost)


class ConnectionStats(TypedDict):
    """One WebSocket connection."""

    id: int  # conn_id, unique for the process lifetime
    exchange: str  # "binance-usdm", "okx", "deribit"...
    endpoint: str  # the URL it is connected to
    state: str  # "connecting", "open", "backoff", "closed"...
    frames: int  # frames received
    wins: int  # updates this connection delivered first
    duplicates: int  # copies that arrived after another connection's
    win_rate: float  # wins / (wins + duplicates), 0.0 before any update
    lag_us: LagSummary
    reconnects: int
    rotations: int  # make-before-break replacements (age, serverShutdown, win rate)
    gaps: int  # sequence holes seen on this connection
    rate_limited_waits: NotRequired[int]  # messages sent that waited for the message limit
    rate_limited_s: NotRequired[float]  # seconds they waited, summed
    send_queued: NotRequired[int]  # messages waiting for the message limit now


class StreamStats(TypedDict):
    """One logical stream (exchange, instrument, channel), whatever carries it."""

    exchange: str
    instrument: str
    channel: str  # "depth", "trade", "bbo"...
    synced: bool  # the book is exact (snapshot spliced, no open gap)
    last_seq: int | None  # the exchange's sequence of the last applied update
    gaps: int  # holes no connection could fill
    resyncs: int  # snapshots taken after a gap
    # what became of its updates (measured by the engine): received == published +
    # duplicates + dropped + pending
    received: NotRequired[int]
    published: NotRequired[int]
    duplicates: NotRequired[int]
    dropped: NotRequired[int]
    dropped_by_reason: NotRequired[dict[str, int]]  # "unsynced": n, "expired": n, ...
    pending: NotRequired[int]  # held by the book (ahead of a hole, before a snapshot)


class LatencySummary(TypedDict):
    """HDR percentiles of one latency, in the unit its key names."""

    p50: float
    p90: float
    p99: float
    p999: float
    max: float
    count: int
    mean: NotRequired[float]  # lets /metrics emit the summary's _sum


class LatencyStats(TypedDict):
    """Code latency (monotonic, frame received → queued to sinks) and exchange latency
    (wall clock, exchange event time → local receive) are never mixed."""

    code_us: LatencySummary
    exchange_ms: LatencySummary
    #: code latency by stage ("decode", "book", "encode"), with runtime.stage_latency
    stages_us: NotRequired[dict[str, LatencySummary]]


class SinkStats(TypedDict):
    """One sink and its bounded queue."""

    name: str
    policy: str  # "blocking" or "lossy"
    queued: int  # items in the queue now
    high_water: int  # the most items ever queued
    published: int  # items the sink accepted
    dropped: int  # items dropped (lossy policy, or shutdown past the deadline)
    drops_by_reason: NotRequired[dict[str, int]]  # "queue_full": n, ...
    paused_s: NotRequired[float]  # time the sockets were paused for this sink (blocking)
    healthy: NotRequired[bool]  # open, last operation succeeded, not stuck
    failures: NotRequired[int]  # failed operations (open, write, flush)
    retries: NotRequired[int]  # operations attempted again after a failure
    batches: NotRequired[int]  # successful writes (queued batches joined into one count once)
    write_us: NotRequired[LatencySummary]  # duration of each successful write call
    flush_us: NotRequired[LatencySummary]  # duration of each successful flush call


class Counters(TypedDict):
    """Process-wide totals of the streams' counters; received == published + duplicates +
    dropped + pending at any moment (pending is 0 after shutdown)."""

    received: int
    published: int
    duplicates: int
    dropped: int
    pending: NotRequired[int]
    dropped_by_reason: NotRequired[dict[str, int]]


class RestHostStats(TypedDict):
    """One REST host's snapshot budget (:class:`~xcol.net.restgate.RestGate`)."""

    host: str  # scheme://host:port
    requests: int  # snapshot requests sent
    weight_used_1m: int  # weight spent in the last 60 s
    weight_limit_1m: int  # the budget per minute (0: none)
    rate_limited: int  # HTTP 429 answers
    banned: int  # HTTP 418 answers
    pauses: int  # pauses started after a 429/418
    paused_s: float  # seconds of pause imposed in total
    paused_for_s: float  # seconds left in the current pause (0: not paused)


class ConnectLimitStats(TypedDict):
    """The connection-attempt limit of one exchange host, shared by its lines."""

    exchange: str
    host: str
    rate_per_s: float
    burst: int
    rate_limited_waits: int  # connection attempts that waited for a slot
    rate_limited_s: float  # seconds they waited, summed


class Stats(TypedDict):
    """The ``/stats`` document."""

    connections: list[ConnectionStats]
    streams: list[StreamStats]
    latency: LatencyStats
    sinks: list[SinkStats]
    counters: Counters
    rest: NotRequired[list[RestHostStats]]  # per REST host (Binance snapshots)
    connect_limits: NotRequired[list[ConnectLimitStats]]
    uptime_s: NotRequired[float]
    loop_restarts: NotRequired[int]  # control-plane loops started again after a failure
    version: NotRequired[str]


_PCTS = (50.0, 90.0, 99.0, 99.9)


def latency_summary(hist: HdrHistogram | None, scale: float = 1.0) -> LatencySummary:
    """Percentiles of ``hist`` divided by ``scale`` (e.g. 1000.0 for a µs histogram
    reported in ms); all zero for ``None`` or an empty histogram."""
    if hist is None or hist.total_count == 0:
        return {"p50": 0, "p90": 0, "p99": 0, "p999": 0, "max": 0, "count": 0, "mean": 0.0}
    p50, p90, p99, p999 = (v / scale if scale != 1.0 else v for v in hist.percentiles(_PCTS))
    mx = hist.max()
    return {
        "p50": p50,
        "p90": p90,
        "p99": p99,
        "p999": p999,
        "max": mx / scale if scale != 1.0 else mx,
        "count": hist.total_count,
        "mean": hist.mean() / scale,
    }


def lag_summary(hist: HdrHistogram | None) -> LagSummary:
    """The p50/p99/max of a lag-behind-winner histogram (µs)."""
    if hist is None or hist.total_count == 0:
        return {"p50": 0, "p99": 0, "max": 0, "count": 0}
    p50, p99 = hist.percentiles((50.0, 99.0))
    return {"p50": p50, "p99": p99, "max": hist.max(), "count": hist.total_count}


def empty_stats() -> Stats:
    """A valid document with nothing in it (before the collector has started)."""
    return {
        "connections": [],
        "streams": [],
        "latency": {"code_us": latency_summary(None), "exchange_ms": latency_summary(None)},
        "sinks": [],
        "counters": {"received": 0, "published": 0, "duplicates": 0, "dropped": 0,
                     "pending": 0, "dropped_by_reason": {}},
    }
