"""Prometheus text exposition (format 0.0.4) from a ``/stats`` document.

:class:`Registry` collects metric families and renders them; :func:`render_stats` fills one
from a :class:`~xcol.obs.schema.Stats` document.  Everything here runs on a scrape, off the
hot path: the collector keeps its counters in C and only builds the document on request.

Conventions: every name starts with ``xcol_``; counters end in ``_total``; units are in the
name (``_microseconds``, ``_milliseconds``, ``_seconds``); latencies are summaries with
``quantile`` labels (from HDR histograms, so they cover the process lifetime, not a window).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = [
    "CONTENT_TYPE",
    "MetricFamily",
    "Registry",
    "Sample",
    "escape_help",
    "escape_label_value",
    "format_value",
    "render_stats",
]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

MetricType = Literal["counter", "gauge", "summary", "untyped"]

_NAME_RE = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*\Z")
_LABEL_RE = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*\Z")


def escape_help(text: str) -> str:
    """Escape a HELP docstring: backslash and line feed."""
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def escape_label_value(value: str) -> str:
    """Escape a label value: backslash, double quote and line feed."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def format_value(value: float) -> str:
    """A sample value as Prometheus writes it (integers without a fraction)."""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        return str(value)
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if value.is_integer() and abs(value) < 2**53:
        return str(int(value))
    return repr(value)


Labels = tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True)
class Sample:
    """One line: a sample name (the family name plus an optional suffix), labels, value."""

    name: str
    labels: Labels
    value: float

    def render(self) -> str:
        """The exposition line, without the line feed."""
        if not self.labels:
            return f"{self.name} {format_value(self.value)}"
        body = ",".join(f'{k}="{escape_label_value(v)}"' for k, v in self.labels)
        return f"{self.name}{{{body}}} {format_value(self.value)}"


@dataclass(slots=True)
class MetricFamily:
    """A named metric with its type, help text and samples."""

    name: str
    type: MetricType
    help: str
    samples: list[Sample] = field(default_factory=list)


def _labels(labels: Mapping[str, object] | None) -> Labels:
    if not labels:
        return ()
    out = []
    for k, v in labels.items():
        if not _LABEL_RE.match(k) or k.startswith("__"):
            raise ValueError(f"invalid label name {k!r}")
        out.append((k, "" if v is None else str(v)))
    return tuple(out)


class Registry:
    """Metric families in insertion order, rendered as one exposition.

    Adding to an existing name appends a sample (the type must agree); the same name and
    label set twice is an error, since Prometheus would reject the scrape.
    """

    def __init__(self) -> None:
        self._families: dict[str, MetricFamily] = {}
        self._seen: set[tuple[str, Labels]] = set()
        # Sample names other families reserve (a summary's _sum and _count).
        self._reserved: dict[str, str] = {}

    def _family(self, name: str, mtype: MetricType, help_text: str) -> MetricFamily:
        if not _NAME_RE.match(name):
            raise ValueError(f"invalid metric name {name!r}")
        fam = self._families.get(name)
        if fam is None:
            owner = self._reserved.get(name)
            if owner is not None:
                raise ValueError(f"metric name {name!r} collides with summary {owner!r}")
            fam = MetricFamily(name, mtype, help_text)
            self._families[name] = fam
            if mtype == "summary":
                for suffix in ("_sum", "_count"):
                    if name + suffix in self._families:
                        raise ValueError(f"summary {name!r} collides with {name + suffix!r}")
                    self._reserved[name + suffix] = name
        elif fam.type != mtype:
            raise ValueError(f"metric {name!r} is a {fam.type}, not a {mtype}")
        return fam

    def _add(self, fam: MetricFamily, name: str, labels: Labels, value: float) -> None:
        key = (name, labels)
        if key in self._seen:
            raise ValueError(f"duplicate sample {name}{dict(labels)}")
        self._seen.add(key)
        fam.samples.append(Sample(name, labels, value))

    def counter(self, name: str, help_text: str, value: float,
                labels: Mapping[str, object] | None = None) -> None:
        """Add a counter sample; ``_total`` is appended to ``name`` if missing."""
        if not name.endswith("_total"):
            name += "_total"
        fam = self._family(name, "counter", help_text)
        self._add(fam, name, _labels(labels), value)

    def gauge(self, name: str, help_text: str, value: float,
              labels: Mapping[str, object] | None = None) -> None:
        """Add a gauge sample."""
        fam = self._family(name, "gauge", help_text)
        self._add(fam, name, _labels(labels), value)

    def summary(self, name: str, help_text: str, quantiles: Mapping[float, float],
                count: int | None = None, total: float | None = None,
                labels: Mapping[str, object] | None = None) -> None:
        """Add a summary: one sample per quantile (``quantile`` label, 0..1), then
        ``name_sum`` and ``name_count`` when ``total`` / ``count`` are known."""
        fam = self._family(name, "summary", help_text)
        base = _labels(labels)
        if any(k == "quantile" for k, _ in base):
            raise ValueError("summary labels may not include 'quantile'")
        for q, v in quantiles.items():
            if not 0.0 <= q <= 1.0:
                raise ValueError(f"quantile {q} is outside 0..1")
            self._add(fam, name, (*base, ("quantile", format_value(float(q)))), v)
        if total is not None:
            self._add(fam, name + "_sum", base, total)
        if count is not None:
            self._add(fam, name + "_count", base, count)

    @property
    def families(self) -> list[MetricFamily]:
        """The families, in the order they were first added."""
        return list(self._families.values())

    def render(self) -> str:
        """The whole exposition; families without samples are left out."""
        lines: list[str] = []
        for fam in self._families.values():
            if not fam.samples:
                continue
            lines.append(f"# HELP {fam.name} {escape_help(fam.help)}")
            lines.append(f"# TYPE {fam.name} {fam.type}")
            lines.extend(s.render() for s in fam.samples)
        return "\n".join(lines) + "\n" if lines else ""


# --------------------------------------------------------------------------------------
# /stats → metrics

_QUANTILES = (("p50", 0.5), ("p90", 0.9), ("p99", 0.99), ("p999", 0.999))


def _num(v: Any) -> float:
    """A number from the document; missing or non-numeric values become NaN."""
    if isinstance(v, bool):
        return int(v)
    if isinstance(v, int | float):
        return v
    return math.nan


def _latency(reg: Registry, name: str, help_text: str, summ: Mapping[str, Any],
             labels: Mapping[str, object] | None = None) -> None:
    quantiles = {q: _num(summ.get(key)) for key, q in _QUANTILES if key in summ}
    count = summ.get("count")
    mean = summ.get("mean")
    total = None
    if isinstance(mean, int | float) and isinstance(count, int):
        total = mean * count
    reg.summary(name, help_text, quantiles,
                count=count if isinstance(count, int) else None, total=total, labels=labels)
    if "max" in summ:
        reg.gauge(name + "_max", help_text.rstrip(".") + ": the largest sample.",
                  _num(summ["max"]), labels)


def _each(items: Any) -> Iterable[Mapping[str, Any]]:
    if isinstance(items, list):
        yield from (x for x in items if isinstance(x, Mapping))


def render_stats(stats: Mapping[str, Any], registry: Registry | None = None) -> str:
    """Prometheus text for a ``/stats`` document (see :class:`~xcol.obs.schema.Stats`).

    Missing sections are skipped and missing numbers render as ``NaN``, so a partial
    document still scrapes.  Pass ``registry`` to append the collector's metrics to
    families of your own.
    """
    reg = registry if registry is not None else Registry()

    counters = stats.get("counters")
    if isinstance(counters, Mapping):
        for key, what in (("received", "Updates received from all connections, copies "
                                       "included."),
                          ("published", "Updates published (first copies)."),
                          ("duplicates", "Later copies of updates already published."),
                          ("dropped", "Updates dropped, for any reason.")):
            if key in counters:
                reg.counter(f"xcol_{key}_total", what, _num(counters[key]))
        if "pending" in counters:
            reg.gauge("xcol_pending", "Updates held by the books (ahead of a hole, or "
                      "waiting for a snapshot).", _num(counters["pending"]))
        reasons = counters.get("dropped_by_reason")
        if isinstance(reasons, Mapping):
            for reason, n in reasons.items():
                reg.counter("xcol_drops_total", "Updates dropped, by reason.", _num(n),
                            {"reason": reason})

    for c in _each(stats.get("connections")):
        lab = {"conn": c.get("id"), "exchange": c.get("exchange"),
               "endpoint": c.get("endpoint")}
        reg.gauge("xcol_connection_state", "Connection state (1 for the current state).", 1,
                  {**lab, "state": c.get("state")})
        reg.counter("xcol_connection_frames_total", "Frames received on the connection.",
                    _num(c.get("frames")), lab)
        reg.counter("xcol_connection_wins_total",
                    "Updates this connection delivered first.", _num(c.get("wins")), lab)
        reg.counter("xcol_connection_duplicates_total",
                    "Copies that arrived after another connection's.",
                    _num(c.get("duplicates")), lab)
        reg.gauge("xcol_connection_win_rate", "Wins over wins plus duplicates (0..1).",
                  _num(c.get("win_rate")), lab)
        reg.counter("xcol_connection_errors_total",
                    "Frames refused as malformed (bad JSON, missing or mistyped fields, "
                    "numbers that do not fit).", _num(c.get("errors")), lab)
        reg.counter("xcol_connection_reconnects_total", "Reconnects of the connection.",
                    _num(c.get("reconnects")), lab)
        reg.counter("xcol_connection_rotations_total",
                    "Make-before-break replacements of the connection.",
                    _num(c.get("rotations")), lab)
        reg.counter("xcol_connection_gaps_total", "Sequence gaps seen on the connection.",
                    _num(c.get("gaps")), lab)
        if "rate_limited_waits" in c:
            reg.counter("xcol_connection_rate_limited_waits_total",
                        "Messages sent on the line that waited for its message limit.",
                        _num(c["rate_limited_waits"]), lab)
            reg.counter("xcol_connection_rate_limited_seconds_total",
                        "Time those messages waited.", _num(c.get("rate_limited_s")), lab)
            reg.gauge("xcol_connection_send_queued",
                      "Messages waiting for the line's message limit.",
                      _num(c.get("send_queued")), lab)
        lag = c.get("lag_us")
        if isinstance(lag, Mapping):
            q = {0.5: _num(lag.get("p50")), 0.99: _num(lag.get("p99")),
                 1.0: _num(lag.get("max"))}
            count = lag.get("count")
            reg.summary("xcol_connection_lag_microseconds",
                        "Lag behind the winning copy, for copies that lost (monotonic clock).",
                        q, count=count if isinstance(count, int) else None, labels=lab)

    for s in _each(stats.get("streams")):
        lab = {"exchange": s.get("exchange"), "instrument": s.get("instrument"),
               "channel": s.get("channel")}
        reg.gauge("xcol_stream_synced", "1 when the stream's book is in sync.",
                  1 if s.get("synced") else 0, lab)
        seq = s.get("last_seq")
        if isinstance(seq, int) and not isinstance(seq, bool):
            reg.gauge("xcol_stream_last_seq", "Exchange sequence of the last applied update.",
                      seq, lab)
        reg.counter("xcol_stream_gaps_total", "Sequence gaps no connection could fill.",
                    _num(s.get("gaps")), lab)
        reg.counter("xcol_stream_resyncs_total", "Snapshots taken to resynchronize.",
                    _num(s.get("resyncs")), lab)
        for key, what in (("received", "Updates of the stream received, copies included."),
                          ("published", "Updates of the stream published."),
                          ("duplicates", "Later copies of the stream's updates."),
                          ("dropped", "Updates of the stream dropped, for any reason.")):
            if key in s:
                reg.counter(f"xcol_stream_{key}_total", what, _num(s[key]), lab)
        if "pending" in s:
            reg.gauge("xcol_stream_pending", "Updates of the stream held by its book.",
                      _num(s["pending"]), lab)
        reasons = s.get("dropped_by_reason")
        if isinstance(reasons, Mapping):
            for reason, n in reasons.items():
                reg.counter("xcol_stream_drops_total", "Updates of the stream dropped, by "
                            "reason.", _num(n), {**lab, "reason": reason})

    latency = stats.get("latency")
    if isinstance(latency, Mapping):
        code = latency.get("code_us")
        if isinstance(code, Mapping):
            _latency(reg, "xcol_code_latency_microseconds",
                     "Frame received to queued to sinks (monotonic clock).", code)
        stages = latency.get("stages_us")
        if isinstance(stages, Mapping):
            for stage, summ in stages.items():
                if isinstance(summ, Mapping):
                    _latency(reg, f"xcol_stage_{stage}_latency_microseconds",
                             f"Code latency of the {stage} stage (monotonic clock).", summ)
        exch = latency.get("exchange_ms")
        if isinstance(exch, Mapping):
            _latency(reg, "xcol_exchange_latency_milliseconds",
                     "Exchange event time to local receive (wall clock).", exch)

    for k in _each(stats.get("sinks")):
        lab = {"sink": k.get("name"), "policy": k.get("policy")}
        reg.gauge("xcol_sink_queued", "Items in the sink's queue.", _num(k.get("queued")), lab)
        reg.gauge("xcol_sink_high_water", "Most items ever in the sink's queue.",
                  _num(k.get("high_water")), lab)
        reg.counter("xcol_sink_published_total", "Items the sink accepted.",
                    _num(k.get("published")), lab)
        reg.counter("xcol_sink_dropped_total", "Items the sink dropped.",
                    _num(k.get("dropped")), lab)
        reasons = k.get("drops_by_reason")
        if isinstance(reasons, Mapping):
            for reason, n in reasons.items():
                reg.counter("xcol_sink_drops_total", "Items the sink dropped, by reason.",
                            _num(n), {**lab, "reason": reason})
        if "paused_s" in k:
            reg.counter("xcol_sink_paused_seconds_total",
                        "Time socket reading was paused for this sink (blocking policy).",
                        _num(k["paused_s"]), lab)
        if "healthy" in k:
            reg.gauge("xcol_sink_healthy", "1 when the sink is open and working.",
                      1.0 if k["healthy"] else 0.0, lab)
        # counted by the fan-out for every sink alike ("fanout" keeps them apart from the
        # sink's own counters below, some of which have the same names and other meanings)
        if "batches" in k:
            reg.counter("xcol_sink_fanout_batches_total",
                        "Writes the sink completed (queued batches joined into one count once).",
                        _num(k["batches"]), lab)
        if "failures" in k:
            reg.counter("xcol_sink_fanout_failures_total",
                        "Sink operations (open, write, flush) that failed.",
                        _num(k["failures"]), lab)
        if "retries" in k:
            reg.counter("xcol_sink_fanout_retries_total",
                        "Sink operations attempted again after a failure (with backoff).",
                        _num(k["retries"]), lab)
        for key, what in (("write_us", "write"), ("flush_us", "flush")):
            summ = k.get(key)
            if isinstance(summ, Mapping):
                _latency(reg, f"xcol_sink_fanout_{what}_duration_microseconds",
                         f"Duration of each successful {what} call of the sink.", summ,
                         lab)
        own = k.get("sink")
        if isinstance(own, Mapping):
            # the sink's own counters (records, batches, failures, retries, flush times...)
            for key, v in own.items():
                name = "xcol_sink_" + re.sub(r"[^a-zA-Z0-9_]", "_", str(key))
                if isinstance(v, bool):
                    continue
                if isinstance(v, int | float):
                    reg.gauge(name, f"Sink statistic {key!r} (see docs/sinks.md).",
                              float(v), lab)
                elif isinstance(v, Mapping):
                    for sub, x in v.items():
                        if isinstance(x, int | float) and not isinstance(x, bool):
                            reg.gauge(name, f"Sink statistic {key!r} (see docs/sinks.md).",
                                      float(x), {**lab, "stat": sub})

    for r in _each(stats.get("rest")):
        lab = {"host": r.get("host")}
        reg.counter("xcol_rest_requests_total", "REST snapshot requests sent to the host.",
                    _num(r.get("requests")), lab)
        for status, key in (("429", "rate_limited"), ("418", "banned")):
            reg.counter("xcol_rest_rejected_total",
                        "REST answers 429 (rate limited) and 418 (IP banned), by status.",
                        _num(r.get(key)), {**lab, "status": status})
        reg.counter("xcol_rest_pauses_total",
                    "Pauses of every snapshot request to the host after a 429/418.",
                    _num(r.get("pauses")), lab)
        reg.counter("xcol_rest_paused_seconds_total",
                    "Seconds of pause imposed on the host (Retry-After, or the default).",
                    _num(r.get("paused_s")), lab)
        reg.gauge("xcol_rest_paused_for_seconds",
                  "Seconds left in the host's current pause (0: requests allowed).",
                  _num(r.get("paused_for_s")), lab)
        reg.gauge("xcol_rest_weight_used", "REST weight spent on the host in the last 60 s.",
                  _num(r.get("weight_used_1m")), lab)
        reg.gauge("xcol_rest_weight_limit", "REST weight budget per minute (0: none).",
                  _num(r.get("weight_limit_1m")), lab)
    for lim in _each(stats.get("connect_limits")):
        lab = {"exchange": lim.get("exchange"), "host": lim.get("host")}
        reg.counter("xcol_connect_rate_limited_waits_total",
                    "Connection attempts that waited for the host's connection limit.",
                    _num(lim.get("rate_limited_waits")), lab)
        reg.counter("xcol_connect_rate_limited_seconds_total",
                    "Time those connection attempts waited.",
                    _num(lim.get("rate_limited_s")), lab)

    if "uptime_s" in stats:
        reg.gauge("xcol_uptime_seconds", "Seconds since the collector started.",
                  _num(stats["uptime_s"]))
    return reg.render()
