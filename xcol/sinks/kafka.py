"""The Kafka sink: one Kafka message per record, produced with confluent-kafka (librdkafka).

Routing, per record, from its header only (the record is never parsed or re-encoded):

* topic: the ``topic`` template (default ``xcol.{channel}``) with ``{channel}`` = ``book``
  for ``book``/``snapshot``/``top`` records, ``bbo`` for ``bbo``, ``trades`` for ``trade``
  (another type is its own channel), plus ``{exchange}`` and ``{symbol}``; characters Kafka
  does not allow in topic names become ``_``;
* key: the ``key`` template (default ``{exchange}:{symbol}``), so every record of one
  instrument lands on one partition, in order; an empty template produces no key;
* value: the record's bytes exactly as the engine serialized them, without the newline.

Delivery: :meth:`KafkaSink.write` hands every record to librdkafka (or raises);
:meth:`KafkaSink.flush` waits until librdkafka has a delivery report for each of them and
raises when some failed, or are still missing although the brokers are reachable, so
nothing is lost silently.  While every broker is down, librdkafka's buffer (no local
timeout) absorbs the outage: flush neither waits nor fails, the sink reports unhealthy, and
once the buffer is full ``write`` raises and the fan-out's queue and policy take over.  The
producer is polled from the event loop (``poll(0)``/``flush(0)``, never blocking), also while
a flush waits.  Delivery reports are counted (``delivered``, ``failed`` by
reason) and reconcile: ``records = delivered + failed + pending``.

Idempotence: librdkafka refuses ``acks=1`` with ``enable.idempotence=true`` (the idempotent
producer needs ``acks=all``), so the defaults are ``acks=all`` + idempotence, which keeps
per-partition order across retries.  A broker that lost its state (a restarted broker with
empty storage) no longer knows the producer id: librdkafka bumps the epoch and retries
forever.  The sink watches the producer epoch in librdkafka's statistics; when it keeps
climbing while nothing is delivered, the sink purges the producer, collects the purged
records (their delivery reports carry the payloads, in order), creates a new producer (a
new producer id from the new broker) and produces them again before anything newer.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import string
import time
from collections.abc import Callable, Mapping
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Message, Producer

from xcol._fast.hdr import HdrHistogram
from xcol.obs.schema import LatencySummary, latency_summary
from xcol.sinks.base import Sink

__all__ = [
    "CHANNELS",
    "DEFAULT_PROPERTIES",
    "KafkaSink",
    "KafkaSinkError",
    "PropertyError",
    "check_bootstrap",
    "check_template",
    "producer_config",
]

log = logging.getLogger("xcol.sinks.kafka")
#: librdkafka's own log lines (connection failures, ...).
_rdlog = logging.getLogger("xcol.sinks.kafka.librdkafka")

#: Record type → ``{channel}`` of the topic template.
CHANNELS: Mapping[str, str] = {
    "book": "book", "snapshot": "book", "top": "book", "bbo": "bbo", "trade": "trades",
}

#: Producer defaults (librdkafka property names); ``[sinks.kafka.properties]`` overrides.
DEFAULT_PROPERTIES: Mapping[str, str] = {
    "client.id": "xcol",
    "linger.ms": "10",
    "batch.size": "65536",
    "compression.type": "lz4",
    # The idempotent producer requires acks=all (librdkafka rejects acks=1 with it).
    "acks": "all",
    "enable.idempotence": "true",
    # 0 = no local timeout: a record waits in librdkafka until it is delivered or fails
    # for good, however long the broker is away (bounded by the queue limits below).
    "message.timeout.ms": "0",
    "queue.buffering.max.messages": "1000000",
    # Statistics drive health and the lost-producer-id watchdog; 0 disables both.
    "statistics.interval.ms": "1000",
    # Reconnect within a second of a broker coming back (librdkafka's default: 10 s).
    "reconnect.backoff.max.ms": "1000",
    # Idle connections closed by the broker are normal; librdkafka reconnects silently.
    "log.connection.close": "false",
}

# Properties the sink owns.
_RESERVED: Mapping[str, str] = {
    "bootstrap.servers": "use sinks.kafka.bootstrap",
    "metadata.broker.list": "use sinks.kafka.bootstrap",
    "delivery.report.only.error": "the sink counts every delivery report",
    "on_delivery": "the sink installs its own delivery callback",
    "dr_cb": "the sink installs its own delivery callback",
    "dr_msg_cb": "the sink installs its own delivery callback",
    "error_cb": "the sink installs its own error callback",
    "stats_cb": "the sink installs its own statistics callback",
    "logger": "librdkafka logs go to the xcol.sinks.kafka logger",
}

_TEMPLATE_FIELDS = ("channel", "exchange", "symbol")
_TRUE = ("true", "t", "1", "yes", "on")
_TOPIC_BAD = re.compile(r"[^A-Za-z0-9._-]")
_BOOTSTRAP = re.compile(r"(?:[A-Za-z][A-Za-z0-9_]*://)?(?:\[[0-9A-Fa-f:.]+\]|[^\s,:/\[\]]+)"
                        r":\d{1,5}")

_TYPE = b'{"type":"'
_EXCH = b'","exchange":"'
_SYM = b'","symbol":"'
_SEQ = b'","seq":'
_BAD_RECORD = "bad_record"
_TS_RECV = re.compile(rb'"ts_recv":(\d+)')


def _recv_time(item: tuple[str, bytes | None, bytes | None]) -> int:
    """A record's receive time (ns), from its header; 0 when it has none."""
    m = _TS_RECV.search(item[2] or b"", 0, 400)
    return int(m.group(1)) if m else 0


_RESEND = (KafkaError._PURGE_QUEUE, KafkaError._PURGE_INFLIGHT, KafkaError._FATAL)
# Epoch bumps without a single delivery that mean "the broker lost our producer id".
_EPOCH_STORM = 5
_ROUTES_MAX = 65536
# Records produced between two yields to the event loop inside one write (~1 ms).
_YIELD_EVERY = 512
# Longest sleep between two polls while a flush waits for delivery reports.
_DRAIN_POLL_MAX_S = 0.005


class KafkaSinkError(RuntimeError):
    """A write, flush or open that did not complete; the fan-out retries it."""


class PropertyError(ValueError):
    """A librdkafka property the sink cannot accept; :attr:`key` names it."""

    def __init__(self, key: str, reason: str) -> None:
        super().__init__(reason)
        self.key = key


def check_template(template: str, what: str = "topic") -> None:
    """Raise :class:`ValueError` unless ``template`` only uses ``{channel}``,
    ``{exchange}`` and ``{symbol}`` (no format specs); a topic template must not be empty."""
    if what == "topic" and not template.strip():
        raise ValueError("must not be empty")
    try:
        parts = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise ValueError(f"bad template {template!r}: {exc}") from None
    for _, fname, spec, conv in parts:
        if fname is None:
            continue
        if fname not in _TEMPLATE_FIELDS:
            raise ValueError(f"unknown field {{{fname}}} in {template!r} (fields: "
                             f"{', '.join('{' + f + '}' for f in _TEMPLATE_FIELDS)})")
        if spec or conv:
            raise ValueError(f"no format spec or conversion allowed in {template!r}")


def check_bootstrap(bootstrap: str) -> None:
    """Raise :class:`ValueError` unless ``bootstrap`` is a comma-separated ``host:port``
    list (optionally ``proto://host:port``)."""
    items = [b.strip() for b in bootstrap.split(",")]
    if not any(items):
        raise ValueError("must list at least one host:port")
    for b in items:
        if not _BOOTSTRAP.fullmatch(b):
            raise ValueError(f"expected host:port, got {b!r}")
        port = int(b.rsplit(":", 1)[1])
        if not 0 < port < 65536:
            raise ValueError(f"port {port} out of range 1-65535 in {b!r}")


def producer_config(bootstrap: str, properties: Mapping[str, str]) -> dict[str, str]:
    """The librdkafka configuration: :data:`DEFAULT_PROPERTIES`, then ``properties``.

    Setting ``acks`` to anything but ``all``/``-1`` without setting ``enable.idempotence``
    turns idempotence off and, to keep per-key order across retries, defaults
    ``max.in.flight.requests.per.connection`` to 1.  Raises :class:`PropertyError` for a
    reserved property or for ``acks`` other than ``all`` with idempotence explicitly on.
    """
    for k in properties:
        why = _RESERVED.get(k)
        if why is not None:
            raise PropertyError(k, f"set by the sink ({why})")
    conf = dict(DEFAULT_PROPERTIES)
    conf["bootstrap.servers"] = bootstrap
    acks = properties.get("acks", "all").strip().lower()
    weak_acks = acks not in ("all", "-1")
    if weak_acks and "enable.idempotence" not in properties:
        conf["enable.idempotence"] = "false"
        if "max.in.flight.requests.per.connection" not in properties:
            conf["max.in.flight.requests.per.connection"] = "1"
    conf.update(properties)
    if weak_acks and conf["enable.idempotence"].strip().lower() in _TRUE:
        raise PropertyError("acks", f"acks={acks} cannot be combined with "
                            "enable.idempotence=true: librdkafka's idempotent producer "
                            "requires acks=all; set enable.idempotence=false as well, or "
                            "keep acks=all")
    return conf


def _topic_name(text: str) -> str:
    return _TOPIC_BAD.sub("_", text)[:249]


class KafkaSink(Sink):
    """Produce every record as one Kafka message (see the module docstring).

    :param bootstrap: ``host:port[,host:port...]``.
    :param topic: topic template (``{channel}``, ``{exchange}``, ``{symbol}``).
    :param key: key template (same fields; ``""``: no key).
    :param properties: raw librdkafka properties overriding :data:`DEFAULT_PROPERTIES`.
    :param flush_timeout_s: :meth:`flush` raises when records are still undelivered after
        this long.
    :param queue_full_timeout_s: :meth:`write` waits this long for room in librdkafka's
        queue (``queue.buffering.max.messages`` / ``.kbytes``) before raising, so the
        fan-out's queue and policy take over.
    :param poll_interval_s: how often an idle sink serves delivery reports.
    :param name: metrics label.
    :param clock: monotonic clock, seconds.
    """

    def __init__(
        self,
        bootstrap: str = "127.0.0.1:9092",
        *,
        topic: str = "xcol.{channel}",
        key: str = "{exchange}:{symbol}",
        properties: Mapping[str, str] | None = None,
        flush_timeout_s: float = 10.0,
        queue_full_timeout_s: float = 1.0,
        poll_interval_s: float = 0.05,
        name: str = "kafka",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(name)
        check_bootstrap(bootstrap)
        check_template(topic, "topic")
        check_template(key, "key")
        self.bootstrap = bootstrap
        self.topic_template = topic
        self.key_template = key
        #: The effective librdkafka configuration (without callbacks).
        self.config = producer_config(bootstrap, properties or {})
        self.flush_timeout_s = flush_timeout_s
        self.queue_full_timeout_s = queue_full_timeout_s
        self.poll_interval_s = poll_interval_s
        self._clock = clock
        self._producer: Producer | None = None
        self._poller: asyncio.Task[None] | None = None
        self._routes: dict[bytes, tuple[str, bytes | None]] = {}
        self._partial: tuple[bytes, int] | None = None  # (batch, next record index)
        self._resend: list[tuple[str, bytes | None, bytes | None]] = []
        self._collect = False
        self._need_rebuild = False
        self._fatal: str | None = None
        self._up = True  # optimistic until librdkafka says otherwise
        self._seen_delivered = 0
        self._mark: tuple[int, int, int] = (0, -1, -1)  # (delivered, pid, epoch)
        self._reported_failed = 0
        self._failing = False  # the last write or flush raised
        # -- counters (see stats()) --
        #: records accepted by write() (handed to librdkafka, or failed at once).
        self.records = 0
        #: write() calls completed.
        self.batches = 0
        #: records with a successful delivery report.
        self.delivered = 0
        #: records that failed for good, by reason (librdkafka error name, ``bad_record``).
        self.failed: dict[str, int] = {}
        #: times librdkafka's queue was full when a record was produced.
        self.queue_full = 0
        #: producer rebuilds (lost producer id, fatal error) and records produced again.
        self.rebuilds = 0
        self.resent = 0
        self.flushes = 0
        self.flush_failures = 0
        #: errors librdkafka reported through error_cb, by name (_TRANSPORT, ...).
        self.broker_errors: dict[str, int] = {}
        #: successful flush durations, ns.
        self.flush_ns = HdrHistogram(1, 600_000_000_000, 3)
        #: a few fields of librdkafka's last statistics (msg_cnt, msg_size, txmsgs, ...).
        self.librdkafka: dict[str, Any] = {}

    # -- state --------------------------------------------------------------------------

    @property
    def healthy(self) -> bool:
        """Open, brokers reachable (no ALL_BROKERS_DOWN since the last sign of life) and
        no fatal producer error pending."""
        return self._producer is not None and self._up and self._fatal is None

    @property
    def failed_total(self) -> int:
        """Records that failed for good, all reasons."""
        return sum(self.failed.values())

    @property
    def pending(self) -> int:
        """Records accepted but without a final delivery report yet."""
        return self.records - self.delivered - self.failed_total

    def histograms(self) -> dict[str, HdrHistogram]:
        """Producer flush durations (ns)."""
        return {"flush_ns": self.flush_ns}

    def stats(self) -> dict[str, Any]:
        """Counters, JSON-ready (``records = delivered + failed_total + pending``)."""
        summary: LatencySummary = latency_summary(self.flush_ns)
        return {
            "records": self.records, "batches": self.batches, "delivered": self.delivered,
            "failed": dict(self.failed), "failed_total": self.failed_total,
            "pending": self.pending, "queue_full": self.queue_full,
            "rebuilds": self.rebuilds, "resent": self.resent, "flushes": self.flushes,
            "flush_failures": self.flush_failures, "flush_ns": summary,
            "broker_errors": dict(self.broker_errors), "brokers_up": self._up,
            "healthy": self.healthy, "librdkafka": dict(self.librdkafka),
        }

    # -- librdkafka callbacks (run inside poll/flush) ---------------------------------------

    def _on_delivery(self, err: KafkaError | None, msg: Message) -> None:
        if err is None:
            self.delivered += 1
            return
        if err.code() in _RESEND and (self._collect or err.code() == KafkaError._FATAL):
            self._resend.append((msg.topic() or "", msg.key(), msg.value()))
            return
        self._count_failed(err.name(), msg.topic(), err.str())

    def _count_failed(self, reason: str, topic: str | None, text: str) -> None:
        n = self.failed.get(reason, 0)
        self.failed[reason] = n + 1
        if n == 0 or n & (n - 1) == 0:  # 1st, 2nd, 4th, 8th... of each reason
            log.warning("kafka sink %s: a record for %s failed for good (%s, %d so far): %s",
                        self.name, topic, reason, n + 1, text)

    def _on_error(self, err: KafkaError) -> None:
        name = err.name()
        self.broker_errors[name] = self.broker_errors.get(name, 0) + 1
        if err.fatal():
            self._fatal = err.str()
            self._need_rebuild = True
            log.error("kafka sink %s: fatal producer error, rebuilding the producer: %s",
                      self.name, err.str())
        elif err.code() == KafkaError._ALL_BROKERS_DOWN:
            if self._up:
                log.warning("kafka sink %s: all brokers down (%s); librdkafka buffers "
                            "records until they return", self.name, err.str())
            self._up = False
        else:
            log.debug("kafka sink %s: %s", self.name, err.str())

    def _on_stats(self, text: str) -> None:
        try:
            st = json.loads(text)
        except ValueError:
            return
        brokers = st.get("brokers") or {}
        up = any(b.get("state") == "UP" for b in brokers.values())
        if up and not self._up:
            log.warning("kafka sink %s: broker reachable again", self.name)
        self._up = up
        self.librdkafka = {k: st.get(k) for k in ("msg_cnt", "msg_size", "txmsgs", "tx",
                                                  "txretries", "txerrs") if k in st}
        eos = st.get("eos")
        if not eos:
            return
        pid = int(eos.get("producer_id", -1))
        epoch = int(eos.get("producer_epoch", -1))
        self.librdkafka["producer_id"] = pid
        self.librdkafka["producer_epoch"] = epoch
        delivered, mpid, mepoch = self._mark
        if self.delivered != delivered or pid != mpid or epoch < mepoch:
            self._mark = (self.delivered, pid, epoch)
        elif epoch - mepoch >= _EPOCH_STORM and self.pending > 0 and not self._need_rebuild:
            log.warning("kafka sink %s: producer epoch bumped %d times without a delivery "
                        "(the broker does not know producer id %d: restarted with empty "
                        "storage?); rebuilding the producer", self.name, epoch - mepoch, pid)
            self._need_rebuild = True

    # -- producer lifecycle ---------------------------------------------------------------

    def _new_producer(self) -> Producer:
        conf: dict[str, Any] = dict(self.config)
        conf["on_delivery"] = self._on_delivery
        conf["error_cb"] = self._on_error
        if int(conf.get("statistics.interval.ms", "0")) > 0:
            conf["stats_cb"] = self._on_stats
        conf["logger"] = _rdlog
        from xcol.runtime import off_hot_cpus

        try:
            with off_hot_cpus():  # librdkafka's threads start off the collector's CPU
                p = Producer(conf)
        except KafkaException as exc:
            raise KafkaSinkError(f"kafka sink {self.name}: cannot create producer: "
                                 f"{exc.args[0].str() if exc.args else exc}") from None
        self._fatal = None
        self._mark = (self.delivered, -1, -1)
        return p

    async def _rebuild(self) -> None:
        """Replace the producer: purge it, collect its records, produce them again."""
        old = self._producer
        if old is not None:
            # Purged records come back as delivery reports; collect them (the mode stays on
            # until every one is back, also across a retry of an interrupted rebuild).
            self._collect = True
            old.purge(True, True)
            deadline = self._clock() + max(5.0, self.flush_timeout_s)
            while self.pending > len(self._resend):
                old.poll(0)
                if self.pending <= len(self._resend):
                    break
                if self._clock() >= deadline:
                    raise KafkaSinkError(
                        f"kafka sink {self.name}: producer rebuild: "
                        f"{self.pending - len(self._resend)} purged records not reported yet")
                await asyncio.sleep(0.002)
            self._collect = False
            self._producer = None
            del old  # librdkafka's handle is destroyed here (nothing left in it)
        self._producer = self._new_producer()
        self._need_rebuild = False
        self.rebuilds += 1
        # Purge reports come back queued records first, in-flight (older) ones later:
        # restore the order records were produced in (receive time, stable for ties) so
        # each key keeps its order on the new producer.
        self._resend.sort(key=_recv_time)
        n = len(self._resend)
        if n:
            log.warning("kafka sink %s: producing %d undelivered records again on a new "
                        "producer", self.name, n)
        await self._produce_resend()

    async def _produce_resend(self) -> None:
        p = self._producer
        assert p is not None
        items = self._resend
        i = 0
        try:
            while i < len(items):
                topic, key, value = items[i]
                try:
                    p.produce(topic, value, key)
                except BufferError:
                    self.queue_full += 1
                    p.poll(0)
                    await asyncio.sleep(0.005)
                    continue
                i += 1
                self.resent += 1
        finally:
            del items[:i]

    # -- Sink API -----------------------------------------------------------------------

    async def open(self) -> None:
        """Create the producer (librdkafka connects in the background; records are
        buffered while the brokers are away) and start polling it.  A producer kept by
        :meth:`close` with undelivered records is reused."""
        if self._need_rebuild:
            await self._rebuild()
        elif self._producer is None:
            self._producer = self._new_producer()
            self._up = True
        if self._poller is None or self._poller.done():
            self._poller = asyncio.create_task(self._poll_loop(),
                                               name=f"xcol-kafka-poll-{self.name}")

    async def _poll_loop(self) -> None:
        while True:
            p = self._producer
            if p is not None:
                p.poll(0)
                if self.delivered != self._seen_delivered:
                    self._seen_delivered = self.delivered
                    self._up = True
            await asyncio.sleep(self.poll_interval_s)

    def _route(self, rec: bytes) -> tuple[str, bytes | None] | None:
        """Topic and key of a record from its header (cached by header bytes)."""
        t_end = rec.find(_EXCH, 9)
        e = rec.find(_SYM, t_end)
        s = rec.find(_SEQ, e)
        if not rec.startswith(_TYPE) or t_end < 0 or e < 0 or s < 0:
            return None
        try:
            rtype = rec[9:t_end].decode()
            fields = {"channel": CHANNELS.get(rtype, rtype),
                      "exchange": rec[t_end + 14:e].decode(), "symbol": rec[e + 12:s].decode()}
        except UnicodeDecodeError:
            return None
        if any(not v or '"' in v or "\\" in v for v in fields.values()):
            return None
        topic = _topic_name(self.topic_template.format(**fields))
        key = self.key_template.format(**fields).encode() if self.key_template else None
        if len(self._routes) >= _ROUTES_MAX:
            self._routes.clear()
        route = (topic, key)
        self._routes[rec[:s]] = route
        return route

    async def write(self, batch: bytes, n_records: int) -> None:
        """Produce every record of ``batch``.  Raises :class:`KafkaSinkError` when
        librdkafka's queue stays full for ``queue_full_timeout_s`` (the brokers are away
        and its buffer is exhausted); a retry of the same batch resumes after the records
        already handed over, so none is produced twice."""
        if self._producer is None:
            raise KafkaSinkError(f"kafka sink {self.name} is not open")
        self._failing = True
        if self._need_rebuild:
            await self._rebuild()
        recs = batch.split(b"\n")
        if recs and not recs[-1]:
            recs.pop()
        start = 0
        partial = self._partial
        if partial is not None and partial[0] is batch:
            start = partial[1]
        self._partial = None
        p = self._producer
        assert p is not None
        produce = p.produce
        get = self._routes.get
        done = 0  # produced by this call and not yet added to self.records
        try:
            for i in range(start, len(recs)):
                rec = recs[i]
                s = rec.find(_SEQ, 20)
                route = get(rec[:s]) if s > 0 else None
                if route is None:
                    route = self._route(rec)
                    if route is None:
                        if rec:
                            self._bad_record(rec)
                        continue
                try:
                    produce(route[0], rec, route[1])
                except (BufferError, KafkaException) as exc:
                    self.records += done
                    done = 0
                    self._partial = (batch, i)
                    await self._produce_slow(exc, route, rec)
                    self._partial = None
                    p = self._producer
                    assert p is not None
                    produce = p.produce
                    continue
                done += 1
                if done >= _YIELD_EVERY:
                    # A big batch must not hold the event loop (it reads the sockets).
                    self.records += done
                    done = 0
                    self._partial = (batch, i + 1)
                    p.poll(0)
                    await asyncio.sleep(0)
                    if self._need_rebuild:
                        await self._rebuild()
                        p = self._producer
                        assert p is not None
                        produce = p.produce
                    self._partial = None
        finally:
            self.records += done
        p.poll(0)
        self.batches += 1
        self._failing = False

    async def _produce_slow(self, exc: Exception, route: tuple[str, bytes | None],
                            rec: bytes) -> None:
        """Produce one record that ``produce()`` refused with ``exc``.

        A full queue (``BufferError``) is retried while delivery reports are served and
        the loop keeps running, up to ``queue_full_timeout_s``; then
        :class:`KafkaSinkError` lets the fan-out's queue and policy take over.  A record
        librdkafka refuses outright (too large...) is counted as failed and skipped; a
        fatal error asks for a new producer and raises."""
        topic, key = route
        err: Exception = exc
        stalled = self._clock()
        delay = 0.001
        self.queue_full += isinstance(exc, BufferError)
        while True:
            if isinstance(err, KafkaException):
                kerr = err.args[0] if err.args else None
                if isinstance(kerr, KafkaError) and not kerr.fatal():
                    self.records += 1
                    self._count_failed(kerr.name(), topic, kerr.str())
                    return
                self._need_rebuild = True
                raise KafkaSinkError(f"kafka sink {self.name}: produce failed: {err}") from None
            p = self._producer
            assert p is not None
            p.poll(0)
            if self._clock() - stalled >= self.queue_full_timeout_s:
                raise KafkaSinkError(
                    f"kafka sink {self.name}: librdkafka queue full ({len(p)} messages) for "
                    f"{self.queue_full_timeout_s} s; brokers "
                    f"{'reachable' if self._up else 'down'}") from None
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.05)
            if self._need_rebuild:
                await self._rebuild()
            p = self._producer
            assert p is not None
            try:
                p.produce(topic, rec, key)
            except (BufferError, KafkaException) as again:
                err = again
                continue
            self.records += 1
            return

    def _bad_record(self, rec: bytes) -> None:
        self.records += 1
        self._count_failed(_BAD_RECORD, None, f"record without the standard header: "
                           f"{rec[:80]!r}")

    async def _drain(self, timeout: float, *, while_up: bool = False) -> bool:
        """Wait up to ``timeout`` until every record has a final delivery report; with
        ``while_up``, stop waiting as soon as the brokers are reported down.  True when
        nothing is pending.

        Polls from the loop: ``flush(0)`` serves delivery reports without blocking and
        makes librdkafka send what lingers now; short sleeps in between."""
        deadline = self._clock() + timeout
        delay = 0.0005
        while True:
            if self._need_rebuild:
                await self._rebuild()
            if self._resend:
                await self._produce_resend()
            p = self._producer
            if p is None:
                return self.pending == 0
            p.flush(0)
            if (self.pending == 0 or self._clock() >= deadline
                    or (while_up and not self._up)):
                return self.pending == 0
            await asyncio.sleep(delay)
            delay = min(delay * 2, _DRAIN_POLL_MAX_S)

    async def flush(self) -> None:
        """Wait until every record written so far is delivered.

        Raises :class:`KafkaSinkError` when records failed for good since the previous
        flush (counted in ``failed``), or when the brokers are reachable and records are
        still pending after ``flush_timeout_s`` (they stay in librdkafka; the next flush
        waits for them again).  While librdkafka reports every broker down, a flush does
        not wait and does not fail: the records wait in librdkafka's buffer (no local
        timeout), writes keep filling it until it is full, and only then do the fan-out's
        queue and policy take over; :attr:`healthy` is false meanwhile.
        """
        if self._producer is None:
            return
        self._failing = True
        self.flushes += 1
        t0 = time.perf_counter_ns()
        done = await self._drain(self.flush_timeout_s, while_up=True)
        if done and self.delivered != self._seen_delivered:
            self._seen_delivered = self.delivered
            self._up = True
        failed = self.failed_total
        if failed != self._reported_failed:
            new = failed - self._reported_failed
            self._reported_failed = failed
            self.flush_failures += 1
            raise KafkaSinkError(f"kafka sink {self.name}: {new} records failed delivery "
                                 f"(so far: {self.failed})")
        if not done and self._up:
            self.flush_failures += 1
            raise KafkaSinkError(
                f"kafka sink {self.name}: {self.pending} records not delivered after "
                f"{self.flush_timeout_s} s with the brokers reachable; librdkafka keeps them")
        if done:
            self.flush_ns.record(max(1, time.perf_counter_ns() - t0))
        self._failing = False

    async def close(self) -> None:
        """Flush (up to ``flush_timeout_s``), then destroy the producer.

        When records are still undelivered the producer is kept, with everything
        librdkafka buffers, for the next :meth:`open`, and :class:`KafkaSinkError` says
        how many records are pending: the fan-out closes a failing sink before it retries,
        and at shutdown the error reports what the process would lose.  Right after a
        failed write or flush (the fan-out's retry path) close does not wait.
        """
        if self._producer is None:
            return
        try:
            # After a failed write/flush this is the fan-out's retry path: do not wait.  At
            # shutdown wait, even for brokers that are down: they may be back in time.
            wait = 0.0 if self._failing else self.flush_timeout_s
            done = await self._drain(wait)
        finally:
            poller, self._poller = self._poller, None
            if poller is not None:
                poller.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await poller
        if not done:
            raise KafkaSinkError(f"kafka sink {self.name}: closed with {self.pending} "
                                 "records undelivered; the producer keeps them for the next "
                                 "open()")
        # Nothing pending: dropping the last reference destroys librdkafka's handle.
        self._producer = None
