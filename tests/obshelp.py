"""Test helpers for xcol.obs: a server on its own event-loop thread, a sample /stats
document, and a strict parser for Prometheus text format 0.0.4."""

from __future__ import annotations

import asyncio
import math
import re
import threading
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, TypeVar

from xcol._fast.hdr import HdrHistogram
from xcol.obs.http import ObsServer
from xcol.obs.schema import Stats, empty_stats, lag_summary, latency_summary

T = TypeVar("T")


def loop_factories() -> list[tuple[str, Callable[[], asyncio.AbstractEventLoop]]]:
    """asyncio, and uvloop when installed."""
    out: list[tuple[str, Callable[[], asyncio.AbstractEventLoop]]] = [
        ("asyncio", asyncio.new_event_loop)]
    try:
        import uvloop
    except ImportError:  # pragma: no cover
        return out
    out.append(("uvloop", uvloop.new_event_loop))
    return out


def sample_stats() -> Stats:
    """A /stats document with a bit of everything, including awkward label values."""
    code = HdrHistogram(1, 10_000_000, 3)
    for v in range(1, 2001):
        code.record(v)
    lag = HdrHistogram(1, 10_000_000, 3)
    for v in (5, 10, 200, 3000):
        lag.record(v)
    s = empty_stats()
    s["latency"] = {"code_us": latency_summary(code), "exchange_ms": latency_summary(code, 1e3)}
    s["connections"] = [
        {"id": 1, "exchange": "binance-usdm", "endpoint": "wss://fstream.binance.com/ws",
         "state": "open", "frames": 1200, "wins": 900, "duplicates": 300, "win_rate": 0.75,
         "lag_us": lag_summary(lag), "reconnects": 1, "gaps": 0},
        {"id": 2, "exchange": "binance-usdm", "endpoint": 'wss://odd\\host/"q"\nx',
         "state": "backoff", "frames": 0, "wins": 0, "duplicates": 0, "win_rate": 0.0,
         "lag_us": lag_summary(None), "reconnects": 4, "gaps": 2},
    ]
    s["streams"] = [
        {"exchange": "binance-usdm", "instrument": "BTCUSDT", "channel": "depth",
         "synced": True, "last_seq": 9_876_543_210, "gaps": 0, "resyncs": 1},
        {"exchange": "okx", "instrument": "ETH-USDT", "channel": "depth", "synced": False,
         "last_seq": None, "gaps": 3, "resyncs": 2},
    ]
    s["sinks"] = [
        {"name": "redis", "policy": "lossy", "queued": 3, "high_water": 512,
         "published": 1195, "dropped": 2, "drops_by_reason": {"queue_full": 2}},
        {"name": "kafka", "policy": "blocking", "queued": 0, "high_water": 64,
         "published": 1197, "dropped": 0, "paused_s": 0.25, "healthy": True,
         "failures": 2, "retries": 3, "batches": 40,
         "write_us": {"p50": 120.0, "p90": 200.0, "p99": 900.0, "p999": 1500.0,
                      "max": 2000.0, "count": 40, "mean": 150.0},
         "sink": {"delivered": 1190, "failures": 5, "path": "ignored", "ok": True,
                  "flush_ns": {"p50": 1500, "p99": 9000}}},
    ]
    s["counters"] = {"received": 1500, "published": 1197, "duplicates": 300, "dropped": 3}
    s["uptime_s"] = 12.5
    return s


@dataclass
class Backend:
    """What the callbacks answer; tests change it between requests."""

    stats: Any = field(default_factory=sample_stats)
    reasons: list[str] = field(default_factory=list)
    fail_stats: bool = False
    fail_ready: bool = False
    calls: int = 0

    def get_stats(self) -> Any:
        self.calls += 1
        if self.fail_stats:
            raise RuntimeError("stats callback exploded")
        return self.stats

    def get_ready(self) -> list[str]:
        if self.fail_ready:
            raise RuntimeError("ready callback exploded")
        return list(self.reasons)


class ServerThread:
    """An :class:`ObsServer` on 127.0.0.1:0 in an event loop on its own thread, so tests
    can use blocking clients."""

    def __init__(self, server: ObsServer,
                 loop_factory: Callable[[], asyncio.AbstractEventLoop] = asyncio.new_event_loop
                 ) -> None:
        self.server = server
        self.loop = loop_factory()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=30)

    def start(self) -> ServerThread:
        self._thread.start()
        self.run(self.server.start("127.0.0.1", 0))
        return self

    def stop(self) -> None:
        self.run(self.server.stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=30)
        self.loop.close()

    @property
    def url(self) -> str:
        return self.server.url


# --------------------------------------------------------------------------------------
# Prometheus text format 0.0.4, strictly.

_NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
_SAMPLE_RE = re.compile(rf"({_NAME})(\{{.*\}})? (\S+)( -?[0-9]+)?\Z")
_LABEL_NAME_RE = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
_TYPES = {"counter", "gauge", "summary", "histogram", "untyped"}


class PromError(AssertionError):
    pass


@dataclass
class Family:
    name: str
    type: str = "untyped"
    help: str | None = None
    samples: list[tuple[str, dict[str, str], float]] = field(default_factory=list)


def _unescape(text: str, allowed: str) -> str:
    out = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == "\\":
            if i + 1 >= len(text) or text[i + 1] not in allowed:
                raise PromError(f"bad escape in {text!r}")
            nxt = text[i + 1]
            out.append("\n" if nxt == "n" else nxt)
            i += 2
            continue
        out.append(ch)
        i += 1
    return "".join(out)


def _parse_labels(body: str) -> dict[str, str]:
    labels: dict[str, str] = {}
    i = 0
    while i < len(body):
        m = _LABEL_NAME_RE.match(body, i)
        if not m or body[m.end():m.end() + 2] != '="':
            raise PromError(f"bad label set {body!r}")
        name = m.group(0)
        i = m.end() + 2
        raw = []
        while True:
            if i >= len(body):
                raise PromError(f"unterminated label value in {body!r}")
            ch = body[i]
            if ch == "\\":
                raw.append(body[i:i + 2])
                i += 2
                continue
            if ch == '"':
                i += 1
                break
            if ch == "\n":
                raise PromError("raw line feed in a label value")
            raw.append(ch)
            i += 1
        if name in labels:
            raise PromError(f"label {name} repeated")
        labels[name] = _unescape("".join(raw), '\\"n')
        if i < len(body):
            if body[i] != ",":
                raise PromError(f"expected ',' in {body!r}")
            i += 1
    return labels


def _value(text: str) -> float:
    if text in ("+Inf", "-Inf", "NaN"):
        return float(text.replace("Inf", "inf").replace("NaN", "nan"))
    if not re.fullmatch(r"[-+]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][-+]?[0-9]+)?", text):
        raise PromError(f"bad value {text!r}")
    return float(text)


def parse_prometheus(text: str) -> dict[str, Family]:
    """Families by name; raises :class:`PromError` on anything a strict scraper rejects."""
    if text and not text.endswith("\n"):
        raise PromError("the exposition must end with a line feed")
    families: dict[str, Family] = {}
    current: Family | None = None
    seen: set[tuple[str, tuple[tuple[str, str], ...]]] = set()
    for line in text.split("\n")[:-1]:
        if line.startswith("# HELP ") or line.startswith("# TYPE "):
            kind, rest = line[2:6], line[7:]
            name, _, arg = rest.partition(" ")
            if not re.fullmatch(_NAME, name):
                raise PromError(f"bad metric name {name!r}")
            fam = families.get(name)
            if fam is None:
                fam = families[name] = Family(name)
            elif fam.samples or fam is not current:
                raise PromError(f"{kind} for {name} after its samples")
            if kind == "HELP":
                if fam.help is not None:
                    raise PromError(f"second HELP for {name}")
                fam.help = _unescape(arg, "\\n")
            else:
                if arg not in _TYPES:
                    raise PromError(f"unknown type {arg!r}")
                fam.type = arg
            current = fam
            continue
        if line.startswith("#"):
            continue
        if not line:
            raise PromError("empty line")
        m = _SAMPLE_RE.match(line)
        if not m:
            raise PromError(f"bad sample line {line!r}")
        name, lbody, vtext = m.group(1), m.group(2), m.group(3)
        labels = _parse_labels(lbody[1:-1]) if lbody else {}
        value = _value(vtext)
        owner = current
        if owner is None or not (
            name == owner.name
            or (owner.type == "summary" and name in (owner.name + "_sum", owner.name + "_count"))
        ):
            raise PromError(f"sample {name} outside its family block")
        key = (name, tuple(sorted(labels.items())))
        if key in seen:
            raise PromError(f"duplicate sample {line!r}")
        seen.add(key)
        if owner.type == "counter":
            if not name.endswith("_total"):
                raise PromError(f"counter {name} does not end in _total")
            if not (value >= 0 or math.isnan(value)):
                raise PromError(f"negative counter {line!r}")
        if owner.type == "summary" and name == owner.name:
            q = labels.get("quantile")
            if q is None or not 0.0 <= float(q) <= 1.0:
                raise PromError(f"summary sample without a valid quantile: {line!r}")
        owner.samples.append((name, labels, value))
    return families
