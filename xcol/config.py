"""Configuration: a TOML file, ``XCOL_*`` environment overrides and command-line overrides,
resolved into one validated, frozen :class:`Config`.

Precedence, lowest to highest: built-in defaults < the TOML file < ``XCOL_*`` environment
variables < command-line shortcut flags (``--http``, ``--jsonl``...) < ``--set KEY=VALUE``
overrides, applied in the order given (the last one wins).

Environment mapping: a variable ``XCOL_<A>__<B>__<C>`` sets key ``a.b.c``: the prefix is
dropped, a double underscore separates levels, single underscores stay part of the key, and
names are lower-cased.  Array elements are addressed by index (``XCOL_FEEDS__0__SYMBOLS``);
the index one past the end appends a new table.  Variables starting with ``XCOL_`` but
containing no ``__`` (``XCOL_CORPUS``, ``XCOL_DEBUG``...) belong to other tools and are
ignored.  Examples::

    XCOL_RUNTIME__HTTP=127.0.0.1:9191
    XCOL_SINKS__JSONL__POLICY=lossy
    XCOL_FEEDS__0__SYMBOLS=BTCUSDT,ETHUSDT

``--set`` overrides use dotted paths with the same indices: ``--set feeds.0.symbols=BTCUSDT``.
Override values are text and are converted by the type of the key they set: lists are
comma-separated (or a TOML array such as ``[0, 1]``), booleans are ``true/false/1/0/yes/no/
on/off``.  Values from the TOML file are type-checked strictly (``port = "1"`` is an error
where an integer is expected).

Every error is a :class:`ConfigError` whose message starts with the key path
(``feeds.0.channels.1``) and, for overridden values, names the variable or flag it came from.
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import ipaddress
import json
import math
import os
import re
import sys
import tomllib
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Union, get_args, get_origin
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from xcol.fanout import QueueSpec

__all__ = [
    "EXCHANGES",
    "SINK_NAMES",
    "BackoffConfig",
    "Config",
    "ConfigError",
    "ExchangeSpec",
    "FeedConfig",
    "GcConfig",
    "HostPort",
    "IlpSinkConfig",
    "JsonlSinkConfig",
    "ParquetSinkConfig",
    "KafkaSinkConfig",
    "PostgresSinkConfig",
    "RedisSinkConfig",
    "ResyncConfig",
    "RotationConfig",
    "RuntimeConfig",
    "ShmSinkConfig",
    "SinksConfig",
    "StdoutSinkConfig",
    "add_config_arguments",
    "add_check_config_command",
    "cmd_check_config",
    "config_from_args",
    "config_to_dict",
    "env_overrides",
    "load_config",
]

ENV_PREFIX = "XCOL_"


class ConfigError(ValueError):
    """A configuration problem; the message names the key path and the reason."""

    def __init__(self, path: str, reason: str, source: str | None = None) -> None:
        self.path = path
        self.reason = reason
        self.source = source
        where = path
        if source:
            where = f"{where} (from {source})" if where else f"{source}"
        super().__init__(f"{where}: {reason}" if where else reason)


# --------------------------------------------------------------------------- exchanges


@dataclass(frozen=True)
class ExchangeSpec:
    """Per-exchange defaults and the published connection limits (PROTOCOLS.md §1).

    The rates are what xcol paces itself to (a token bucket per exchange host for
    connection attempts, one per connection for messages), chosen so that no window the
    exchange counts over can hold more than it allows.

    :param endpoint: default WebSocket base URL.
    :param rest: default REST base URL.
    :param max_streams_per_connection: streams (symbol × channel) one connection may carry.
    :param connect_rate_per_s: sustained connection attempts a second per IP.
    :param connect_burst: connection attempts allowed at once.
    :param inbound_msgs_per_s: client → server text messages a second per connection
        (sent evenly spaced).
    :param max_connections: simultaneous connections per IP (0: not published).
    :param subscribes_per_hour: subscribe/unsubscribe messages an hour per connection
        (0: not published).
    """

    endpoint: str
    rest: str
    max_streams_per_connection: int
    connect_rate_per_s: float
    connect_burst: int
    inbound_msgs_per_s: float
    max_connections: int = 0
    subscribes_per_hour: int = 0


EXCHANGES: Mapping[str, ExchangeSpec] = types.MappingProxyType({
    # Binance spot (binance-spot-api-docs web-socket-streams.md, "WebSocket Limits"): 300
    # connection attempts every 5 minutes per IP; 5 incoming messages a second per
    # connection, pings, pongs and JSON control messages alike; 1024 streams a connection.
    # A bucket of burst b at rate r admits b + 300 r attempts in 5 minutes: 5 + 294 = 299.
    # Text is paced at 4/s: the pong frames the listener writes unpaced keep the fifth.
    "binance-spot": ExchangeSpec(
        "wss://stream.binance.com:9443", "https://api.binance.com", 1024, 0.98, 5, 4.0),
    # Binance USD-M and COIN-M (developers.binance.com, "Websocket Market Streams"): 10
    # incoming messages a second per connection; 1024 streams a connection.  No connection
    # attempt limit is published there: spot's is applied.  Text paced at 9/s (see spot).
    "binance-usdm": ExchangeSpec(
        "wss://fstream.binance.com", "https://fapi.binance.com", 1024, 0.98, 5, 9.0),
    "binance-coinm": ExchangeSpec(
        "wss://dstream.binance.com", "https://dapi.binance.com", 1024, 0.98, 5, 9.0),
    # OKX (docs-v5 "WebSocket", connect): 3 connection requests a second per IP (burst 1
    # keeps every one-second window at 3); 480 subscribe/unsubscribe/login requests an hour
    # per connection.  No per-second message limit is published: 3/s assumed.
    "okx": ExchangeSpec("wss://ws.okx.com:8443", "https://www.okx.com", 1024, 3.0, 1, 3.0,
                        subscribes_per_hour=480),
    # Deribit (docs.deribit.com connection-management-best-practices): 32 simultaneous
    # connections per IP, HTTP and WebSocket together; no connection rate is published
    # (3/s assumed).  Subscribe costs 3,000 of a 30,000-credit pool (articles/rate-limits;
    # ~3.3/s sustained per Nautilus, citing Deribit support).
    "deribit": ExchangeSpec(
        "wss://www.deribit.com", "https://www.deribit.com", 1024, 3.0, 3, 3.3, 32),
})

Exchange = Literal["binance-spot", "binance-usdm", "binance-coinm", "okx", "deribit"]
Channel = Literal["depth", "bbo", "trades"]
Policy = Literal["blocking", "lossy"]
GcMode = Literal["freeze", "default", "disable"]
LogLevel = Literal["debug", "info", "warning", "error"]
Naming = Literal["timestamp", "numbered"]
Preset = Literal["realtime", "archival"]

#: Sink batching presets: (write size in bytes, linger in s, flush interval in s).
PRESETS: dict[str, tuple[int, float, float]] = {
    "realtime": (256 * 1024, 0.0, 0.05),
    "archival": (8 * 1024 * 1024, 2.0, 10.0),
}

#: Sink tables this build implements.
SINK_NAMES = ("stdout", "jsonl", "shm", "ilp", "parquet", "kafka", "postgres", "redis")

# --------------------------------------------------------------------------- schema


@dataclass(frozen=True)
class HostPort:
    """A ``host:port`` listen address (IPv6 hosts in brackets: ``[::1]:9090``)."""

    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    @classmethod
    def parse(cls, text: str) -> HostPort:
        """Parse ``host:port``; raises :class:`ValueError` with the reason."""
        m = re.fullmatch(r"\[([0-9A-Fa-f:.]+)\]:(\d{1,5})|([^:\[\]\s]+):(\d{1,5})", text)
        if m is None:
            raise ValueError(f"expected host:port, got {text!r}")
        host = m.group(1) or m.group(3)
        port = int(m.group(2) or m.group(4))
        if not 0 < port < 65536:
            raise ValueError(f"port {port} out of range 1-65535 in {text!r}")
        if m.group(1):
            try:
                ipaddress.IPv6Address(host)
            except ValueError:
                raise ValueError(f"bad IPv6 address {host!r} in {text!r}") from None
        elif not re.fullmatch(r"[A-Za-z0-9.\-]+", host) or host.startswith(("-", ".")):
            raise ValueError(f"bad host {host!r} in {text!r}")
        return cls(host, port)


def _meta(doc: str, check: Callable[[Any], str | None] | None = None,
          secret: Literal["value", "url"] | None = None) -> dict[str, Any]:
    # secret: masked by config_to_dict (the whole value, or a URL's password)
    return {"doc": doc, "check": check, "secret": secret}


def _positive(v: Any) -> str | None:
    return None if v > 0 else "must be > 0"


def _non_negative(v: Any) -> str | None:
    return None if v >= 0 else "must be >= 0"


def _weight_budget(v: Any) -> str | None:
    # 50 is the heaviest snapshot request (spot depth, limit 1000): a smaller budget could
    # never let one through, and the books would never resync
    return None if v == 0 or v >= 50 else "must be 0 (the exchange's limit) or >= 50"


def _ratio(v: Any) -> str | None:
    return None if 0.0 < v <= 1.0 else "must be in (0, 1]"


def _unit_interval(v: Any) -> str | None:
    return None if 0.0 <= v <= 1.0 else "must be in [0, 1]"


@dataclass(frozen=True)
class GcConfig:
    """Garbage-collector policy (applied by :mod:`xcol.runtime`)."""

    mode: GcMode = field(default="freeze", metadata=_meta(
        "freeze: tune thresholds, gc.freeze() after warm-up; disable: also gc.disable(); "
        "default: leave the interpreter alone"))
    warmup_s: float = field(default=10.0, metadata=_meta(
        "seconds after start-up before gc.freeze()", _non_negative))
    thresholds: tuple[int, int, int] = field(default=(50_000, 20, 100), metadata=_meta(
        "gc.set_threshold(gen0, gen1, gen2)",
        lambda v: None if all(x >= 0 for x in v) else "thresholds must be >= 0"))


@dataclass(frozen=True)
class BackoffConfig:
    """Reconnect / retry backoff: ``uniform(0, min(cap, base * 2**attempt))``."""

    base_s: float = field(default=0.25, metadata=_meta("first delay ceiling", _positive))
    cap_s: float = field(default=30.0, metadata=_meta("largest delay", _positive))
    reset_after_s: float = field(default=60.0, metadata=_meta(
        "a connection healthy this long resets the attempt count", _non_negative))


@dataclass(frozen=True)
class RotationConfig:
    """Connection rotation: by age (exchanges cut at 24 h) and by losing arbitration."""

    max_age_s: float = field(default=84_600.0, metadata=_meta(
        "make-before-break rotation after this age (23.5 h)", _positive))
    min_win_rate: float = field(default=0.05, metadata=_meta(
        "rotate a line whose win rate over one period is below this (0: never)",
        _unit_interval))
    period_s: float = field(default=600.0, metadata=_meta(
        "window for the win-rate rule", _positive))
    backoff_max_s: float = field(default=21_600.0, metadata=_meta(
        "a line rotated for its win rate that stays below it waits 1, 3, 7... periods "
        "before the next win-rate rotation, at most this long (under one period: no "
        "waiting, every period)", _non_negative))


@dataclass(frozen=True)
class ResyncConfig:
    """Snapshot-storm protection: REST snapshot requests per feed (token bucket), and per
    REST host (a weight budget per minute; 429/418 pause the host until Retry-After)."""

    rate_per_s: float = field(default=1.0, metadata=_meta("sustained snapshots/s", _positive))
    burst: int = field(default=5, metadata=_meta("snapshots allowed at once", _positive))
    weight_per_minute: int = field(default=0, metadata=_meta(
        "REST weight the snapshots of all feeds may spend per host per minute (0: the "
        "exchange's IP limit: Binance spot 6000, futures 2400)", _weight_budget))


@dataclass(frozen=True)
class RuntimeConfig:
    """Process-wide settings (table ``[runtime]``)."""

    http: HostPort | None = field(default=HostPort("127.0.0.1", 9090), metadata=_meta(
        "stats/health HTTP listen address; \"off\" disables it"))
    cpu_affinity: tuple[int, ...] = field(default=(), metadata=_meta(
        "CPU ids to pin the process to (empty: no pinning)",
        lambda v: "CPU ids must be >= 0" if any(x < 0 for x in v) else (
            "duplicate CPU id" if len(set(v)) != len(v) else None)))
    realtime: bool = field(default=False, metadata=_meta("SCHED_FIFO when permitted"))
    busy_poll: bool = field(default=False, metadata=_meta(
        "the event loop never sleeps: it polls its sockets continuously, so the core and "
        "its caches stay the collector's (one core at 100%; for a dedicated, pinned core)"))
    realtime_priority: int = field(default=10, metadata=_meta(
        "SCHED_FIFO priority", lambda v: None if 1 <= v <= 99 else "must be in 1-99"))
    log_level: LogLevel = field(default="info", metadata=_meta("logging level"))
    shutdown_deadline_s: float = field(default=10.0, metadata=_meta(
        "drain + flush deadline on SIGTERM/SIGINT", _positive))
    reorder_window_ms: float = field(default=20.0, metadata=_meta(
        "wait for another line to fill a gap before it counts as one", _non_negative))
    stale_timeout_s: float = field(default=30.0, metadata=_meta(
        "a line with no data this long is reconnected", _positive))
    stage_latency: bool = field(default=True, metadata=_meta(
        "time each stage (decoded, book, queued) too: two more clock reads per update"))
    top_levels: int = field(default=10, metadata=_meta(
        "levels per side in \"top\" book records (0: no top records)",
        lambda v: None if 0 <= v <= 1000 else "must be in [0, 1000]"))
    top_interval_ms: float = field(default=100.0, metadata=_meta(
        "at most one \"top\" record per book per interval (0: after every update)",
        _non_negative))
    book_ladder: int = field(default=16384, metadata=_meta(
        "price-grid slots per book side kept around the best level (0: sorted blocks "
        "only; more: faster far updates, more memory)",
        lambda v: None if v == 0 or (64 <= v <= 1 << 22 and v % 64 == 0)
        else "must be 0 or a multiple of 64 in [64, 4194304]"))
    max_frame_bytes: int = field(default=16 * 1024 * 1024, metadata=_meta(
        "largest WebSocket frame accepted", _positive))
    gc: GcConfig = field(default_factory=GcConfig)
    backoff: BackoffConfig = field(default_factory=BackoffConfig)
    rotation: RotationConfig = field(default_factory=RotationConfig)
    resync: ResyncConfig = field(default_factory=ResyncConfig)


@dataclass(frozen=True)
class FeedConfig:
    """One ``[[feeds]]`` table: an exchange, its instruments and channels, its lines."""

    exchange: Exchange = field(metadata=_meta("exchange id"))
    symbols: tuple[str, ...] = field(metadata=_meta("exchange instrument names"))
    channels: tuple[Channel, ...] = field(default=("depth", "bbo", "trades"), metadata=_meta(
        "normalized channels"))
    endpoints: tuple[str, ...] = field(default=(), metadata=_meta(
        "WebSocket URLs, one redundant line each (default: the exchange's URL twice)"))
    rest: str = field(default="", metadata=_meta("REST base URL (default: the exchange's)"))
    name: str = field(default="", metadata=_meta("label in metrics (default: exchange)"))
    fetch_instruments: bool = field(default=True, metadata=_meta(
        "at start-up, read tick and lot sizes from the exchange's instrument list on the "
        "REST base URL and keep each book at those scales (false: default scales, 8 "
        "decimals)"))
    connect_rate_per_s: float = field(default=0.0, metadata=_meta(
        "connection attempts a second to this feed's hosts, shared with every feed of the "
        "exchange on the same host (0: the exchange's limit)", _non_negative))
    connect_burst: int = field(default=0, metadata=_meta(
        "connection attempts allowed at once (0: the exchange's limit)", _non_negative))
    inbound_msgs_per_s: float = field(default=0.0, metadata=_meta(
        "text messages a second xcol sends on one connection: subscribes, resubscribes, "
        "heartbeat answers, pings (0: the exchange's limit)", _non_negative))


@dataclass(frozen=True)
class _SinkCommon:
    enabled: bool = field(default=True, metadata=_meta("false: sink table kept but unused"))
    policy: Policy = field(default="blocking", metadata=_meta(
        "blocking: pause reading when full; lossy: drop and count"))
    queue_capacity: int = field(default=200_000, metadata=_meta(
        "queue capacity, in records", _positive))
    low_watermark: int | None = field(default=None, metadata=_meta(
        "resume reading at or below this many records (default: capacity / 2)", _non_negative))
    warn_ratio: float = field(default=0.8, metadata=_meta(
        "log a warning when the queue passes this fraction", _ratio))
    preset: Preset = field(default="realtime", metadata=_meta(
        "batching defaults: realtime (small writes, flushed within ~50 ms) or archival "
        "(large batches, written every few seconds)"))
    batch_bytes: int | None = field(default=None, metadata=_meta(
        "join queued records into writes of up to this many bytes (default: preset's)",
        _positive))
    linger_s: float | None = field(default=None, metadata=_meta(
        "batching by time: wait up to this long for a write to fill (default: preset's)",
        _non_negative))
    flush_interval_s: float | None = field(default=None, metadata=_meta(
        "flush (fsync, producer flush) at most this long after a write (default: preset's)",
        _positive))

    def queue_spec(self) -> QueueSpec:
        """The fan-out queue for this sink, preset defaults applied."""
        from xcol.fanout import QueueSpec

        batch, linger, flush = PRESETS[self.preset]
        return QueueSpec(
            policy=self.policy, capacity=self.queue_capacity,
            low_watermark=self.resolved_low_watermark, warn_ratio=self.warn_ratio,
            max_write_bytes=self.batch_bytes if self.batch_bytes is not None else batch,
            linger_s=self.linger_s if self.linger_s is not None else linger,
            flush_interval_s=self.flush_interval_s if self.flush_interval_s is not None
            else flush)

    @property
    def resolved_low_watermark(self) -> int:
        """The low watermark with its default applied."""
        if self.low_watermark is None:
            return self.queue_capacity // 2
        return self.low_watermark


@dataclass(frozen=True)
class StdoutSinkConfig(_SinkCommon):
    """``[sinks.stdout]``: newline-delimited JSON on standard output."""


@dataclass(frozen=True)
class JsonlSinkConfig(_SinkCommon):
    """``[sinks.jsonl]``: newline-delimited JSON files with rotation."""

    path: str = field(default="data/xcol.jsonl", metadata=_meta(
        "file to append to (parent directories are created)",
        lambda v: "must not be empty" if not v.strip() else None))
    max_bytes: int = field(default=256 * 1024 * 1024, metadata=_meta(
        "rotate before the file would pass this size (0: no size rotation)", _non_negative))
    max_age_s: float = field(default=3600.0, metadata=_meta(
        "rotate a file this old (0: no age rotation)", _non_negative))
    keep: int = field(default=48, metadata=_meta(
        "rotated files kept (0: keep all)", _non_negative))
    naming: Naming = field(default="timestamp", metadata=_meta(
        "rotated names: <path>.<UTC timestamp> or <path>.<n> (1 newest)"))
    fsync: bool = field(default=True, metadata=_meta("fsync on flush, rotation and close"))


def _ring_name(v: Any) -> str | None:
    from xcol.shm import check_ring_name

    return check_ring_name(v)


@dataclass(frozen=True)
class ShmSinkConfig(_SinkCommon):
    """``[sinks.shm]``: a shared-memory ring ``<dir>/<name>`` that local processes follow
    with :class:`xcol.shm.Reader`; lossy for readers that fall a whole ring behind."""

    name: str = field(default="xcol", metadata=_meta(
        "ring name: the file <dir>/<name> readers attach to", _ring_name))
    dir: str = field(default="/dev/shm", metadata=_meta(
        "directory of the ring file (a tmpfs)",
        lambda v: "must not be empty" if not v.strip() else None))
    slots: int = field(default=65536, metadata=_meta(
        "slots in the ring, a power of two in 16-16777216",
        lambda v: None if 16 <= v <= 1 << 24 and v & (v - 1) == 0
        else "must be a power of two in 16-16777216"))
    slot_size: int = field(default=512, metadata=_meta(
        "bytes per slot including its 24-byte header, a multiple of 64 in 64-65536; "
        "longer records span slots",
        lambda v: None if 64 <= v <= 65536 and v % 64 == 0
        else "must be a multiple of 64 in 64-65536"))
    unlink_on_close: bool = field(default=False, metadata=_meta(
        "remove the ring file on shutdown (default: keep it for readers and restarts)"))


IlpRecordType = Literal["trade", "bbo", "top", "book", "snapshot"]


def _ilp_url(v: str) -> str | None:
    from xcol.sinks.ilp import parse_ilp_url

    try:
        parse_ilp_url(v)
    except ValueError as exc:
        return str(exc)
    return None


def _s3_endpoint(v: Any) -> str | None:
    if not v:
        return None
    parts = urlsplit(v)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return f"expected an http:// or https:// URL with a host, got {v!r}"
    return None


@dataclass(frozen=True)
class IlpSinkConfig(_SinkCommon):
    """``[sinks.ilp]``: InfluxDB line protocol to QuestDB (TCP or HTTP) or InfluxDB (HTTP)."""

    url: str = field(default="tcp://127.0.0.1:9009", metadata=_meta(
        "tcp://host[:9009] (QuestDB ILP/TCP) or http://[user:pass@]host[:port]/write?db=NAME "
        "(QuestDB or InfluxDB /write)", _ilp_url))
    types: tuple[IlpRecordType, ...] = field(default=("trade", "bbo", "top"), metadata=_meta(
        "record types written (trade, bbo, top, book, snapshot); others are counted as "
        "skipped", lambda v: "must list at least one type" if not v else (
            "duplicate type" if len(set(v)) != len(v) else None)))
    measurement_prefix: str = field(default="", metadata=_meta(
        "prepended to the measurement names (trades, bbo, book_top, book_delta, "
        "book_snapshot)", lambda v: None if re.fullmatch(r"[A-Za-z0-9_.\-]*", v)
        else "use letters, digits, _ . - only"))
    timestamp: Literal["recv", "exchange"] = field(default="recv", metadata=_meta(
        "line timestamp: recv (ts_recv, ns) or exchange (ts_exchange ms as ns); the other "
        "is written as a field"))
    decimals: Literal["double", "string", "both"] = field(default="double", metadata=_meta(
        "prices/sizes as float fields written with the exchange's text, as exact string "
        "fields, or both (<name>_str)"))
    top_layout: Literal["wide", "rows"] = field(default="wide", metadata=_meta(
        "top-N records: one line with bid_price_0.. fields, or one line per level"))
    unique_timestamps: bool = field(default=True, metadata=_meta(
        "shift a line whose timestamp collides with the previous line of its series by 1 ns"))
    timeout_s: float = field(default=10.0, metadata=_meta(
        "connect / HTTP response timeout; TCP: longest time the server may take no data",
        _positive))
    tcp_buffer_bytes: int = field(default=4 * 1024 * 1024, metadata=_meta(
        "TCP: transport write-buffer high-water mark (a write waits below it)", _positive))
    replay_bytes: int = field(default=64 * 1024 * 1024, metadata=_meta(
        "TCP: unacknowledged bytes kept for resending before a write waits for the ack",
        _positive))


@dataclass(frozen=True)
class ParquetSinkConfig(_SinkCommon):
    """``[sinks.parquet]``: hourly Parquet files per (exchange, channel, instrument), zstd,
    written atomically, optionally uploaded to S3 through a local spool."""

    preset: Preset = field(default="archival", metadata=_meta(
        "batching defaults: archival (large batches, flushed every 10 s) or realtime"))
    dir: str = field(default="data/parquet", metadata=_meta(
        "root directory of the archive (created)",
        lambda v: "must not be empty" if not v.strip() else None))
    max_rows: int = field(default=10_000_000, metadata=_meta(
        "rotate a file at this many rows (0: no row limit)", _non_negative))
    max_bytes: int = field(default=1024 * 1024 * 1024, metadata=_meta(
        "rotate a file once its rows hold this many bytes of uncompressed Arrow data "
        "(0: no byte limit)", _non_negative))
    row_group_rows: int = field(default=100_000, metadata=_meta(
        "rows per Parquet row group", _positive))
    buffer_bytes: int = field(default=128 * 1024 * 1024, metadata=_meta(
        "memory for rows not yet in a row group, over all open files", _positive))
    compression_level: int = field(default=3, metadata=_meta(
        "zstd level", lambda v: None if 1 <= v <= 22 else "must be in 1-22"))
    close_grace_s: float = field(default=10.0, metadata=_meta(
        "close a file this long after its hour ended (and after its last row)",
        _non_negative))
    s3_bucket: str = field(default="", metadata=_meta(
        "upload closed files to this bucket (empty: no upload)"))
    s3_endpoint: str = field(default="", metadata=_meta(
        "S3 endpoint URL (empty: AWS's, from the region)", _s3_endpoint))
    s3_prefix: str = field(default="", metadata=_meta(
        "key prefix; the key is the prefix plus the path under dir"))
    s3_region: str = field(default="", metadata=_meta(
        "region (empty: from the AWS environment / config)"))
    keep_local: bool = field(default=False, metadata=_meta(
        "keep a file after its upload verified"))
    s3_verify_etag: bool = field(default=True, metadata=_meta(
        "compare the ETag with the file's MD5 (false for SSE-KMS / SSE-C buckets)"))
    s3_close_timeout_s: float = field(default=5.0, metadata=_meta(
        "at shutdown, keep uploading the spool this long", _non_negative))


def _kafka_template(what: str) -> Callable[[Any], str | None]:
    def check(v: Any) -> str | None:
        from xcol.sinks.kafka import check_template

        try:
            check_template(v, what)
        except ValueError as exc:
            return str(exc)
        return None
    return check


@dataclass(frozen=True)
class KafkaSinkConfig(_SinkCommon):
    """``[sinks.kafka]``: one Kafka message per record through confluent-kafka (librdkafka).

    ``properties`` are raw librdkafka producer properties; they override the sink's
    defaults (see docs/sinks.md).  Nested TOML keys are joined with dots, so
    ``linger.ms = 5`` and ``"linger.ms" = 5`` are the same property.
    """

    bootstrap: str = field(default="127.0.0.1:9092", metadata=_meta(
        "bootstrap brokers, comma-separated host:port",
        lambda v: "must not be empty" if not v.strip() else None))
    topic: str = field(default="xcol.{channel}", metadata=_meta(
        "topic template: {channel} (book, bbo, trades), {exchange}, {symbol}",
        _kafka_template("topic")))
    key: str = field(default="{exchange}:{symbol}", metadata=_meta(
        "message key template (same fields; \"\": no key)", _kafka_template("key")))
    properties: dict[str, str] = field(default_factory=dict, metadata=_meta(
        "raw librdkafka producer properties, overriding the sink's defaults"))
    flush_timeout_s: float = field(default=10.0, metadata=_meta(
        "a flush that still has undelivered records after this long fails", _positive))
    queue_full_timeout_s: float = field(default=1.0, metadata=_meta(
        "how long a write waits for room in librdkafka's queue before failing",
        _non_negative))


def _pg_dsn(v: Any) -> str | None:
    scheme = v.split("://", 1)[0] if "://" in v else ""
    return None if scheme in ("postgresql", "postgres") else (
        "must be a postgresql:// URL (postgresql://user:password@host:port/database)")


def _pg_schema(v: Any) -> str | None:
    if re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", v):
        return None
    return "must be a lower-case SQL identifier ([a-z_][a-z0-9_]*, at most 63 characters)"


def _pg_prefix(v: Any) -> str | None:
    if not re.fullmatch(r"[a-z0-9_]*", v):
        return "may hold only a-z, 0-9 and _"
    return None if len(v) <= 44 else "at most 44 characters (table names stay within 63)"


@dataclass(frozen=True)
class PostgresSinkConfig(_SinkCommon):
    """``[sinks.postgres]``: batched COPY into PostgreSQL tables, one transaction per batch
    (trades, bbo, book_snapshots; book_deltas optional)."""

    dsn: str = field(default="postgresql://127.0.0.1:5432/xcol", metadata=_meta(
        "connection URL (postgresql://user:password@host:port/database)", _pg_dsn))
    schema: str = field(default="xcol", metadata=_meta(
        "schema holding the tables (created, with the tables, by versioned migrations)",
        _pg_schema))
    table_prefix: str = field(default="", metadata=_meta(
        "prepended to every table name", _pg_prefix))
    statement_timeout_s: float = field(default=60.0, metadata=_meta(
        "server-side limit per statement, lock waits included (0: none); a write that hits "
        "it is retried", _non_negative))
    connect_timeout_s: float = field(default=10.0, metadata=_meta(
        "limit for connecting and authenticating", _positive))
    book_deltas: bool = field(default=False, metadata=_meta(
        "also store incremental book records in book_deltas (off: counted as skipped)"))


def _redis_template(v: Any) -> str | None:
    from xcol.sinks.redis import check_template

    return check_template(v)


@dataclass(frozen=True)
class RedisSinkConfig(_SinkCommon):
    """``[sinks.redis]``: pub/sub channels and market-data keys in Redis (docs/sinks.md).

    Channel and key templates take ``{exchange}`` and ``{symbol}``.
    """

    url: str = field(default="redis://127.0.0.1:6379/0", metadata=_meta(
        "redis://[[user]:password@]host[:port][/db], or rediss:// for TLS", secret="url"))
    username: str = field(default="", metadata=_meta("ACL user for AUTH (overrides the URL's)"))
    password: str = field(default="", metadata=_meta(
        "password for AUTH (overrides the URL's)", secret="value"))
    tls_verify: bool = field(default=True, metadata=_meta(
        "rediss://: verify the server certificate and host name"))
    tls_ca_file: str = field(default="", metadata=_meta(
        "rediss://: CA bundle to verify against (default: the system's)"))
    connect_timeout_s: float = field(default=5.0, metadata=_meta(
        "connect + TLS + AUTH/SELECT deadline", _positive))
    timeout_s: float = field(default=10.0, metadata=_meta(
        "deadline for the replies of one batch (then reconnect and retry)", _positive))
    depth: int = field(default=10, metadata=_meta(
        "levels per side in orderbook payloads", _positive))
    publish_deltas: bool = field(default=False, metadata=_meta(
        "also publish book deltas on book_channel"))
    coalesce_orderbook: bool = field(default=False, metadata=_meta(
        "publish only the latest book per instrument per batch"))
    orderbook_channel: str = field(default="orderbook:{exchange}:{symbol}", metadata=_meta(
        "channel of top-N books (top and snapshot records)", _redis_template))
    market_data_channel: str = field(default="market_data:{symbol}", metadata=_meta(
        "channel of market-data updates", _redis_template))
    market_data_key: str = field(default="market_data:{symbol}", metadata=_meta(
        "key holding the latest market data", _redis_template))
    trades_channel: str = field(default="trades:{symbol}", metadata=_meta(
        "channel of trade records", _redis_template))
    book_channel: str = field(default="book:{exchange}:{symbol}", metadata=_meta(
        "channel of book deltas (with publish_deltas)", _redis_template))
    ttl_s: int = field(default=300, metadata=_meta(
        "expiry of the market-data keys, seconds (0: none)", _non_negative))


@dataclass(frozen=True)
class SinksConfig:
    """Table ``[sinks]``: one sub-table per sink; absent tables are ``None``."""

    stdout: StdoutSinkConfig | None = None
    jsonl: JsonlSinkConfig | None = None
    shm: ShmSinkConfig | None = None
    ilp: IlpSinkConfig | None = None
    parquet: ParquetSinkConfig | None = None
    kafka: KafkaSinkConfig | None = None
    postgres: PostgresSinkConfig | None = None
    redis: RedisSinkConfig | None = None

    def enabled(self) -> list[tuple[str, _SinkCommon]]:
        """``(name, config)`` of every configured, enabled sink."""
        out: list[tuple[str, _SinkCommon]] = []
        for name in SINK_NAMES:
            cfg = getattr(self, name)
            if cfg is not None and cfg.enabled:
                out.append((name, cfg))
        return out


@dataclass(frozen=True)
class Config:
    """The whole resolved configuration."""

    feeds: tuple[FeedConfig, ...]
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig)
    sinks: SinksConfig = field(default_factory=SinksConfig)


# --------------------------------------------------------------------------- overrides


@dataclass(frozen=True)
class _Text:
    """An override value: text to be converted by the type of the key it lands on."""

    text: str
    source: str


_Path = tuple[str | int, ...]


def _fmt(path: _Path) -> str:
    return ".".join(str(p) for p in path)


def _split_key(key: str, source: str) -> _Path:
    parts: list[str | int] = []
    for raw in key.split("."):
        if not raw:
            raise ConfigError(key, "empty key segment", source)
        parts.append(int(raw) if raw.isdigit() else raw.lower())
    return tuple(parts)


def env_overrides(env: Mapping[str, str]) -> list[tuple[_Path, str, str]]:
    """The ``XCOL_*__*`` variables of ``env`` as ``(path, value, source)``, sorted by name."""
    out = []
    for name in sorted(env):
        if not name.startswith(ENV_PREFIX) or "__" not in name:
            continue
        segs = name[len(ENV_PREFIX):].split("__")
        source = f"env {name}"
        if any(not s for s in segs):
            raise ConfigError(name, "empty key segment in environment variable name", source)
        out.append((_split_key(".".join(segs), source), env[name], source))
    return out


def _set_path(tree: dict[str, Any], path: _Path, value: _Text) -> None:
    node: Any = tree
    for i, seg in enumerate(path):
        last = i == len(path) - 1
        here = path[:i]
        if isinstance(seg, int):
            if not isinstance(node, list):
                raise ConfigError(_fmt(path[: i + 1]), f"{_fmt(here) or 'top level'} is not "
                                  "an array", value.source)
            if seg > len(node):
                raise ConfigError(_fmt(path[: i + 1]), f"index {seg} out of range (array has "
                                  f"{len(node)} element(s); index {len(node)} appends)",
                                  value.source)
            if last:
                if seg == len(node):
                    node.append(value)
                else:
                    node[seg] = value
                return
            if seg == len(node):
                node.append({})
            node = node[seg]
        else:
            if not isinstance(node, dict):
                raise ConfigError(_fmt(path[: i + 1]), f"{_fmt(here) or 'top level'} is not "
                                  "a table", value.source)
            if last:
                node[seg] = value
                return
            nxt_is_index = isinstance(path[i + 1], int)
            if seg not in node or isinstance(node[seg], _Text):
                node[seg] = [] if nxt_is_index else {}
            node = node[seg]


# --------------------------------------------------------------------------- validation

_BOOL_TEXT = {"true": True, "1": True, "yes": True, "on": True,
              "false": False, "0": False, "no": False, "off": False}


def _type_name(v: Any) -> str:
    if isinstance(v, bool):
        return "boolean"
    if isinstance(v, int):
        return "integer"
    if isinstance(v, float):
        return "float"
    if isinstance(v, str):
        return "string"
    if isinstance(v, list):
        return "array"
    if isinstance(v, dict):
        return "table"
    return type(v).__name__


def _suggest(word: str, choices: Sequence[str]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


class _Builder:
    def __init__(self) -> None:
        self._hints: dict[type, dict[str, Any]] = {}

    def hints(self, cls: type) -> dict[str, Any]:
        if cls not in self._hints:
            self._hints[cls] = typing.get_type_hints(cls)
        return self._hints[cls]

    def value(self, tp: Any, v: Any, path: _Path, source: str | None) -> Any:
        if isinstance(v, _Text):
            return self.text(tp, v.text, path, v.source)
        where = _fmt(path)
        origin = get_origin(tp)
        if origin in (Union, types.UnionType):
            members = [a for a in get_args(tp) if a is not type(None)]
            return self.value(members[0], v, path, source)
        if tp is HostPort:
            if not isinstance(v, str):
                raise ConfigError(where, f"expected a \"host:port\" string, got {_type_name(v)}",
                                  source)
            if v.strip().lower() in ("", "off"):
                return None
            try:
                return HostPort.parse(v)
            except ValueError as exc:
                raise ConfigError(where, str(exc), source) from None
        if origin is Literal:
            choices = [str(c) for c in get_args(tp)]
            if not isinstance(v, str):
                raise ConfigError(where, f"expected one of {', '.join(choices)}, got "
                                  f"{_type_name(v)}", source)
            if v not in choices:
                raise ConfigError(where, f"unknown value {v!r} (expected one of "
                                  f"{', '.join(choices)}){_suggest(v, choices)}", source)
            return v
        if origin is tuple:
            args = get_args(tp)
            if not isinstance(v, list):
                raise ConfigError(where, f"expected an array, got {_type_name(v)}", source)
            if len(args) == 2 and args[1] is Ellipsis:
                return tuple(self.value(args[0], x, (*path, i), source) for i, x in enumerate(v))
            if len(v) != len(args):
                raise ConfigError(where, f"expected an array of {len(args)} elements, got "
                                  f"{len(v)}", source)
            return tuple(self.value(a, x, (*path, i), source)
                         for i, (a, x) in enumerate(zip(args, v, strict=True)))
        if dataclasses.is_dataclass(tp) and isinstance(tp, type):
            if not isinstance(v, dict):
                raise ConfigError(where, f"expected a table, got {_type_name(v)}", source)
            return self.table(tp, v, path)
        if origin is dict:
            if not isinstance(v, dict):
                raise ConfigError(where, f"expected a table, got {_type_name(v)}", source)
            return self.properties(v, path)
        if tp is bool:
            if not isinstance(v, bool):
                raise ConfigError(where, f"expected a boolean, got {_type_name(v)}", source)
            return v
        if tp is int:
            if isinstance(v, bool) or not isinstance(v, int):
                raise ConfigError(where, f"expected an integer, got {_type_name(v)}", source)
            return v
        if tp is float:
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                raise ConfigError(where, f"expected a number, got {_type_name(v)}", source)
            if not math.isfinite(v):
                # TOML and float() accept inf and nan; no setting means anything by them
                raise ConfigError(where, f"expected a finite number, got {v}", source)
            return float(v)
        if tp is str:
            if not isinstance(v, str):
                raise ConfigError(where, f"expected a string, got {_type_name(v)}", source)
            return v
        raise TypeError(f"unsupported config type {tp!r}")  # a schema bug, not user input

    def text(self, tp: Any, text: str, path: _Path, source: str) -> Any:
        """Convert override text by the target type, then validate as if from TOML."""
        where = _fmt(path)
        origin = get_origin(tp)
        if origin in (Union, types.UnionType):
            tp = [a for a in get_args(tp) if a is not type(None)][0]
            origin = get_origin(tp)
        s = text.strip()
        conv: Any
        if origin is tuple:
            if s.startswith("["):
                try:
                    conv = tomllib.loads(f"v = {s}")["v"]
                except tomllib.TOMLDecodeError as exc:
                    raise ConfigError(where, f"bad array {s!r}: {exc}", source) from None
            else:
                item = get_args(tp)[0]
                parts = [p.strip() for p in s.split(",")] if s else []
                conv = [self._scalar_text(item, p, (*path, i), source)
                        for i, p in enumerate(parts)]
        elif dataclasses.is_dataclass(tp) and tp is not HostPort:
            raise ConfigError(where, "is a table; set one of its keys instead", source)
        else:
            conv = self._scalar_text(tp, s, path, source)
        return self.value(tp, conv, path, source)

    def _scalar_text(self, tp: Any, s: str, path: _Path, source: str) -> Any:
        where = _fmt(path)
        if tp is bool:
            if s.lower() not in _BOOL_TEXT:
                raise ConfigError(where, f"expected a boolean (true/false), got {s!r}", source)
            return _BOOL_TEXT[s.lower()]
        if tp is int:
            try:
                return int(s.replace("_", ""), 0)
            except ValueError:
                raise ConfigError(where, f"expected an integer, got {s!r}", source) from None
        if tp is float:
            try:
                return float(s)
            except ValueError:
                raise ConfigError(where, f"expected a number, got {s!r}", source) from None
        return s

    def properties(self, raw: dict[str, Any], path: _Path) -> dict[str, str]:
        """A table of raw ``name = value`` properties (librdkafka's): nested tables are
        joined with dots (``linger.ms = 5`` in TOML, ``--set ...properties.linger.ms=5``),
        scalar values become strings (booleans ``true``/``false``)."""
        out: dict[str, str] = {}
        for key, v in raw.items():
            where = _fmt((*path, key))
            if isinstance(v, dict):
                for sub, sv in self.properties(v, (*path, key)).items():
                    out[f"{key}.{sub}"] = sv
            elif isinstance(v, _Text):
                out[key] = v.text.strip()
            elif isinstance(v, bool):
                out[key] = "true" if v else "false"
            elif isinstance(v, (int, float, str)):
                out[key] = str(v)
            else:
                raise ConfigError(where, f"expected a string, number or boolean, got "
                                  f"{_type_name(v)}", _source_of(v))
        return out

    def table(self, cls: type, raw: dict[str, Any], path: _Path) -> Any:
        hints = self.hints(cls)
        fields = {f.name: f for f in dataclasses.fields(cls)}
        for key in raw:
            if key not in fields:
                src = _source_of(raw[key])
                where = _fmt((*path, key))
                what = "sink" if cls is SinksConfig else "key"
                raise ConfigError(where, f"unknown {what} {key!r}"
                                  f"{_suggest(key, list(fields))}", src)
        kwargs: dict[str, Any] = {}
        for name, f in fields.items():
            fpath = (*path, name)
            if name not in raw:
                if (f.default is dataclasses.MISSING
                        and f.default_factory is dataclasses.MISSING):
                    raise ConfigError(_fmt(fpath), "required key is missing")
                continue
            rv = raw[name]
            source = rv.source if isinstance(rv, _Text) else None
            val = self.value(hints[name], rv, fpath, source)
            check = f.metadata.get("check")
            if check is not None and val is not None:
                reason = check(val)
                if reason:
                    raise ConfigError(_fmt(fpath), reason, _source_of(rv))
            kwargs[name] = val
        hook = _HOOKS.get(cls)
        if hook is not None:
            hook(kwargs, raw, path)
        return cls(**kwargs)


def _source_of(rv: Any) -> str | None:
    """The override a value (or anything inside it) came from, if any."""
    if isinstance(rv, _Text):
        return rv.source
    items = rv.values() if isinstance(rv, dict) else rv if isinstance(rv, list) else ()
    for x in items:
        src = _source_of(x)
        if src is not None:
            return src
    return None


def _src(raw: Mapping[str, Any], key: str) -> str | None:
    return _source_of(raw.get(key))


_SYMBOL_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_\-./]*")


def _check_url(url: str, schemes: tuple[str, ...], where: str, source: str | None) -> None:
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise ConfigError(where, f"bad URL {url!r}: {exc}", source) from None
    if parts.scheme not in schemes:
        raise ConfigError(where, f"URL {url!r} must start with "
                          f"{' or '.join(s + '://' for s in schemes)}", source)
    if not parts.hostname:
        raise ConfigError(where, f"URL {url!r} has no host", source)
    if port == 0:
        raise ConfigError(where, f"URL {url!r} has port 0", source)


def _feed_hook(kw: dict[str, Any], raw: dict[str, Any], path: _Path) -> None:
    spec = EXCHANGES[kw["exchange"]]
    symbols: tuple[str, ...] = kw["symbols"]
    if not symbols:
        raise ConfigError(_fmt((*path, "symbols")), "must list at least one symbol",
                          _src(raw, "symbols"))
    seen: set[str] = set()
    for i, s in enumerate(symbols):
        if not _SYMBOL_RE.fullmatch(s):
            raise ConfigError(_fmt((*path, "symbols", i)), f"bad symbol {s!r}",
                              _src(raw, "symbols"))
        if s in seen:
            raise ConfigError(_fmt((*path, "symbols", i)), f"duplicate symbol {s!r}",
                              _src(raw, "symbols"))
        seen.add(s)
    channels = kw.get("channels", ("depth", "bbo", "trades"))
    if not channels:
        raise ConfigError(_fmt((*path, "channels")), "must list at least one channel",
                          _src(raw, "channels"))
    if len(set(channels)) != len(channels):
        raise ConfigError(_fmt((*path, "channels")), "duplicate channel",
                          _src(raw, "channels"))
    streams = len(symbols) * len(channels)
    if streams > spec.max_streams_per_connection:
        raise ConfigError(_fmt((*path, "symbols")), f"{len(symbols)} symbols x "
                          f"{len(channels)} channels = {streams} streams per connection, over "
                          f"{kw['exchange']}'s limit of {spec.max_streams_per_connection}; "
                          "split them over several [[feeds]]", _src(raw, "symbols"))
    endpoints: tuple[str, ...] = kw.get("endpoints", ())
    if "endpoints" in kw and not endpoints:
        raise ConfigError(_fmt((*path, "endpoints")), "must list at least one URL "
                          "(omit the key for the exchange's default)", _src(raw, "endpoints"))
    if not endpoints:
        endpoints = (spec.endpoint, spec.endpoint)
    for i, url in enumerate(endpoints):
        _check_url(url, ("ws", "wss"), _fmt((*path, "endpoints", i)), _src(raw, "endpoints"))
    kw["endpoints"] = endpoints
    rest = kw.get("rest") or spec.rest
    _check_url(rest, ("http", "https"), _fmt((*path, "rest")), _src(raw, "rest"))
    kw["rest"] = rest.rstrip("/")
    kw["name"] = kw.get("name") or kw["exchange"]
    # 0 (the default) means the exchange's published limit
    kw["connect_rate_per_s"] = kw.get("connect_rate_per_s") or spec.connect_rate_per_s
    kw["connect_burst"] = kw.get("connect_burst") or spec.connect_burst
    kw["inbound_msgs_per_s"] = kw.get("inbound_msgs_per_s") or spec.inbound_msgs_per_s


def _sink_hook(kw: dict[str, Any], raw: dict[str, Any], path: _Path) -> None:
    cap = kw.get("queue_capacity", 200_000)
    low = kw.get("low_watermark")
    if low is not None and low >= cap:
        raise ConfigError(_fmt((*path, "low_watermark")), f"must be below queue_capacity "
                          f"({low} >= {cap})", _src(raw, "low_watermark"))


def _parquet_hook(kw: dict[str, Any], raw: dict[str, Any], path: _Path) -> None:
    _sink_hook(kw, raw, path)
    if not kw.get("s3_bucket"):
        for key in ("s3_endpoint", "s3_prefix", "s3_region"):
            if kw.get(key):
                raise ConfigError(_fmt((*path, key)), "needs s3_bucket", _src(raw, key))


def _kafka_hook(kw: dict[str, Any], raw: dict[str, Any], path: _Path) -> None:
    from xcol.sinks.kafka import PropertyError, check_bootstrap, producer_config

    _sink_hook(kw, raw, path)
    try:
        check_bootstrap(kw.get("bootstrap", "127.0.0.1:9092"))
    except ValueError as exc:
        raise ConfigError(_fmt((*path, "bootstrap")), str(exc), _src(raw, "bootstrap")) from None
    try:
        producer_config("127.0.0.1:9092", kw.get("properties", {}))
    except PropertyError as exc:
        props = raw.get("properties")
        src = _source_of(props.get(exc.key.split(".")[0])) if isinstance(props, dict) else None
        raise ConfigError(_fmt((*path, "properties", exc.key)), str(exc), src) from None


def _redis_hook(kw: dict[str, Any], raw: dict[str, Any], path: _Path) -> None:
    from xcol.sinks.redis import parse_url

    _sink_hook(kw, raw, path)
    try:
        parse_url(kw.get("url", "redis://127.0.0.1:6379/0"))
    except ValueError as exc:
        raise ConfigError(_fmt((*path, "url")), str(exc), _src(raw, "url")) from None


def _backoff_hook(kw: dict[str, Any], raw: dict[str, Any], path: _Path) -> None:
    base = kw.get("base_s", 0.25)
    cap = kw.get("cap_s", 30.0)
    if cap < base:
        raise ConfigError(_fmt((*path, "cap_s")), f"must be >= base_s ({cap} < {base})",
                          _src(raw, "cap_s"))


def _config_hook(kw: dict[str, Any], raw: dict[str, Any], path: _Path) -> None:
    feeds: tuple[FeedConfig, ...] = kw["feeds"]
    if not feeds:
        raise ConfigError("feeds", "at least one [[feeds]] table is required")
    # Default names are the exchange id, numbered when an exchange has several feeds.
    by_exchange: dict[str, int] = {}
    for f in feeds:
        by_exchange[f.exchange] = by_exchange.get(f.exchange, 0) + 1
    named: list[FeedConfig] = []
    names: dict[str, int] = {}
    streams: dict[tuple[str, str, str], int] = {}
    per_ip: dict[str, int] = {}
    for i, f in enumerate(feeds):
        explicit = isinstance(raw["feeds"][i], dict) and "name" in raw["feeds"][i]
        if not explicit and by_exchange[f.exchange] > 1:
            f = dataclasses.replace(f, name=f"{f.exchange}-{i}")
        if f.name in names:
            raise ConfigError(f"feeds.{i}.name", f"duplicate feed name {f.name!r} "
                              f"(also feeds.{names[f.name]})")
        names[f.name] = i
        named.append(f)
        for s in f.symbols:
            for c in f.channels:
                key = (f.exchange, s, c)
                if key in streams:
                    raise ConfigError(f"feeds.{i}.symbols", f"{f.exchange} {s} {c} is already "
                                      f"collected by feeds.{streams[key]}; list it once and "
                                      "add endpoints for redundancy")
                streams[key] = i
        per_ip[f.exchange] = per_ip.get(f.exchange, 0) + len(f.endpoints)
    for exch, n in per_ip.items():
        limit = EXCHANGES[exch].max_connections
        if limit and n > limit:
            raise ConfigError("feeds", f"{n} {exch} connections configured, over its limit "
                              f"of {limit} per IP")
    kw["feeds"] = tuple(named)


_HOOKS: dict[type, Callable[[dict[str, Any], dict[str, Any], _Path], None]] = {
    FeedConfig: _feed_hook,
    StdoutSinkConfig: _sink_hook,
    JsonlSinkConfig: _sink_hook,
    ShmSinkConfig: _sink_hook,
    IlpSinkConfig: _sink_hook,
    ParquetSinkConfig: _parquet_hook,
    KafkaSinkConfig: _kafka_hook,
    PostgresSinkConfig: _sink_hook,
    RedisSinkConfig: _redis_hook,
    BackoffConfig: _backoff_hook,
    Config: _config_hook,
}


# --------------------------------------------------------------------------- loading


def _read_toml(path: str | os.PathLike[str]) -> dict[str, Any]:
    p = Path(path)
    try:
        data = p.read_bytes()
    except OSError as exc:
        raise ConfigError("", f"cannot read config file {str(p)!r}: "
                          f"{exc.strerror or exc}") from None
    try:
        return tomllib.loads(data.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise ConfigError("", f"{p}: not UTF-8 text ({exc.reason})") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError("", f"{p}: TOML syntax error: {exc}") from None


def load_config(
    path: str | os.PathLike[str] | None,
    env: Mapping[str, str] | None = None,
    overrides: Sequence[str] = (),
) -> Config:
    """Load and validate the configuration.

    :param path: TOML file, or ``None`` to start from an empty document (everything then
        comes from the environment and the overrides).
    :param env: environment to read ``XCOL_*__*`` overrides from (default ``os.environ``;
        pass ``{}`` to ignore the environment).
    :param overrides: ``"dotted.key=value"`` strings, applied in order after ``env``.
    :raises ConfigError: naming the key path and the reason.
    """
    tree: dict[str, Any] = _read_toml(path) if path is not None else {}
    for p, value, source in env_overrides(os.environ if env is None else env):
        _set_path(tree, p, _Text(value, source))
    for item in overrides:
        key, sep, value = item.partition("=")
        source = f"override {item!r}"
        if not sep or not key.strip():
            raise ConfigError(key.strip(), "override must look like key=value", source)
        _set_path(tree, _split_key(key.strip(), source), _Text(value, source))
    tree.setdefault("feeds", [])
    cfg: Config = _Builder().table(Config, tree, ())
    return cfg


def config_to_dict(cfg: Any) -> Any:
    """The resolved configuration as JSON-ready data (addresses as ``"host:port"``)."""
    if isinstance(cfg, HostPort):
        return str(cfg)
    if dataclasses.is_dataclass(cfg) and not isinstance(cfg, type):
        out = {f.name: _masked(f, config_to_dict(getattr(cfg, f.name)))
               for f in dataclasses.fields(cfg)}
        if isinstance(cfg, _SinkCommon):
            out["low_watermark"] = cfg.resolved_low_watermark
        return out
    if isinstance(cfg, tuple):
        return [config_to_dict(x) for x in cfg]
    return cfg


def _masked(f: dataclasses.Field[Any], v: Any) -> Any:
    secret = f.metadata.get("secret")
    if not secret or not v:
        return v
    if secret == "url":
        parts = urlsplit(v)
        if parts.password:
            host = parts.netloc.rpartition("@")[2]
            return parts._replace(netloc=f"{parts.username or ''}:***@{host}").geturl()
        return v
    return "***"


# --------------------------------------------------------------------------- CLI pieces


def add_config_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``-c/--config``, ``--set`` and the shortcut flags to a subcommand parser."""
    parser.add_argument("-c", "--config", metavar="FILE", default=None,
                        help="TOML configuration file")
    parser.add_argument("--set", dest="overrides", metavar="KEY=VALUE", action="append",
                        default=[], help="override a key (dotted path, e.g. "
                        "sinks.jsonl.policy=lossy); repeatable, last wins")
    parser.add_argument("--http", metavar="HOST:PORT", default=None,
                        help="runtime.http (\"off\" disables the HTTP server)")
    parser.add_argument("--cpu-affinity", metavar="CPUS", default=None,
                        help="runtime.cpu_affinity, comma-separated CPU ids")
    parser.add_argument("--jsonl", metavar="PATH", default=None,
                        help="enable the JSONL sink writing to PATH")
    parser.add_argument("--stdout", action="store_true",
                        help="enable the stdout sink")
    parser.add_argument("--log-level", choices=["debug", "info", "warning", "error"],
                        default=None, help="runtime.log_level")


def config_from_args(args: argparse.Namespace, env: Mapping[str, str] | None = None) -> Config:
    """Resolve the configuration from parsed :func:`add_config_arguments` flags."""
    flags: list[str] = []
    if args.http is not None:
        flags.append(f"runtime.http={args.http}")
    if args.cpu_affinity is not None:
        flags.append(f"runtime.cpu_affinity={args.cpu_affinity}")
    if args.jsonl is not None:
        flags += [f"sinks.jsonl.path={args.jsonl}", "sinks.jsonl.enabled=true"]
    if args.stdout:
        flags.append("sinks.stdout.enabled=true")
    if args.log_level is not None:
        flags.append(f"runtime.log_level={args.log_level}")
    return load_config(args.config, env, [*flags, *args.overrides])


def cmd_check_config(args: argparse.Namespace) -> int:
    """``xcol check-config``: print the resolved config as JSON (0) or the error (2)."""
    try:
        cfg = config_from_args(args)
    except ConfigError as exc:
        print(f"xcol check-config: {exc}", file=sys.stderr)
        return 2
    sys.stdout.write(json.dumps(config_to_dict(cfg), indent=2) + "\n")
    return 0


def add_check_config_command(sub: Any) -> None:
    """Register ``check-config`` on an argparse subparsers object."""
    p = sub.add_parser("check-config", help="validate a config and print it resolved, as JSON",
                       description="Load the config file, apply XCOL_* environment and "
                       "command-line overrides, validate, and print the result as JSON. "
                       "Exit 0 when valid, 2 with the offending key on stderr otherwise.")
    add_config_arguments(p)
    p.set_defaults(func=cmd_check_config)
