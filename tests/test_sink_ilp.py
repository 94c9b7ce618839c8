"""The line-protocol sink against real parsers: InfluxDB 1.x ``influxd`` over HTTP, and a
local TCP server that parses every line strictly.

* HTTP: a collector run against the simulator writes through ``[sinks.ilp]`` into influxd;
  counts queried back reconcile with the records offered and the sink's counters, values
  (and the exact price text) match the JSONL copy of the same run.
* TCP: synthetic records of every type, in every encoding mode, through the fan-out to
  :class:`srv_ilp.LineServer`; every line parses strictly and maps back to its record.
* Escaping: exchange/symbol/side values with line-protocol specials round-trip through
  influxd; values no server can carry are counted as bad, the rest of the batch lands.
* Outages: influxd killed and restarted, its database missing, a field-type conflict (400);
  the TCP server stopped and restarted: failures are counted, nothing accepted is lost.
"""

from __future__ import annotations

import asyncio
import json
import random
import socket
import time
from collections import Counter
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any

import pytest
from srv_ilp import (
    INFLUXD,
    Field,
    Influxd,
    Line,
    LineServer,
    free_port,
    influxd,
    parse_lines,
)

from xcol.app import Collector
from xcol.config import load_config
from xcol.fanout import FanOut, QueueSpec
from xcol.net.backoff import Backoff
from xcol.sim.server import SimConfig, Simulator, line_configs
from xcol.sinks.ilp import IlpSink, parse_ilp_url
from xcol.sinks.ilp_encode import MEASUREMENTS, IlpEncoder, escape_tag

Runner = Callable[[Coroutine[Any, Any, None]], None]

needs_influxd = pytest.mark.skipif(not Path(INFLUXD).exists(),
                                   reason=f"influxd (Debian influxdb) not found at {INFLUXD}")
ALL_TYPES = ("trade", "bbo", "top", "book", "snapshot")


@pytest.fixture(params=["asyncio", "uvloop"])
def run(request: pytest.FixtureRequest) -> Runner:
    """Run a coroutine on the default loop and on uvloop."""
    if request.param == "uvloop":
        uvloop = pytest.importorskip("uvloop")
        return uvloop.run  # type: ignore[no-any-return]
    return asyncio.run


@pytest.fixture(scope="module")
def influx(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Influxd]:
    if not Path(INFLUXD).exists():
        pytest.skip(f"influxd (Debian influxdb) not found at {INFLUXD}")
    with influxd(tmp_path_factory.mktemp("influxd")) as srv:
        yield srv


def fast_backoff() -> Backoff:
    return Backoff(base_s=0.02, cap_s=0.2)


# --------------------------------------------------------------------------- records

def _head(typ: str, ex: str, sym: str, seq: int, ts_ex: int, ts_recv: int, line: int) -> bytes:
    return (b'{"type":"%s","exchange":"%s","symbol":"%s","seq":%d,"ts_exchange":%d,'
            b'"ts_recv":%d,"line":%d' % (typ.encode(), ex.encode(), sym.encode(), seq, ts_ex,
                                         ts_recv, line))


def _lv(levels: list[tuple[str, str]]) -> bytes:
    return b"[" + b",".join(b'["%s","%s"]' % (p.encode(), q.encode()) for p, q in levels) + b"]"


def synth(n: int, seed: int = 1, symbols: tuple[str, ...] = ("BTCUSDT", "ETHUSDT")) -> bytes:
    """``n`` records in the engine's exact layout, every type, with colliding receive
    times (several records of one frame), null sides, empty sides and top-N levels."""
    rnd = random.Random(seed)
    out = []
    ts = 1_795_260_894_000_000_000 + seed * 100_000_000_000  # seeds 100 s apart
    seq = 5_000_000
    tid = 900_000
    for _ in range(n):
        if rnd.random() < 0.6:
            ts += rnd.randrange(1, 2_000_000)  # else: same frame, same receive time
        seq += 1
        ex = rnd.choice(("binance-usdm", "okx"))
        sym = rnd.choice(symbols)
        ts_ex = ts // 1_000_000 - 3  # exchange time in ms: many records share one

        def px() -> str:
            return f"{rnd.randrange(6_000_000, 6_200_000) / 100:.2f}"

        def qty() -> str:
            return f"{rnd.randrange(0, 50_000) / 1000:.3f}"

        k = rnd.random()
        if k < 0.4:
            out.append(_head("bbo", ex, sym, seq, ts_ex, ts, rnd.randrange(3))
                       + b',"bid":"%s","bid_qty":"%s","ask":"%s","ask_qty":"%s"}\n'
                       % (px().encode(), qty().encode(), px().encode(), qty().encode()))
        elif k < 0.7:
            tid += 1
            side = rnd.choice((b'"buy"', b'"sell"', b"null"))
            out.append(_head("trade", ex, sym, tid, ts_ex, ts, rnd.randrange(3))
                       + b',"id":%d,"price":"%s","qty":"%s","side":%s}\n'
                       % (tid, px().encode(), qty().encode(), side))
        else:
            typ = "book" if k < 0.85 else "top" if k < 0.97 else "snapshot"
            nb = {"book": rnd.randrange(0, 6), "top": 5, "snapshot": 20}[typ]
            na = {"book": rnd.randrange(0, 6), "top": 5, "snapshot": 20}[typ]
            if typ == "top" and rnd.random() < 0.2:
                na = 2  # a thin book
            bids = [(px(), qty()) for _ in range(nb)]
            asks = [(px(), qty()) for _ in range(na)]
            prev = b',"prev_seq":%d' % (seq - 1) if typ == "book" and rnd.random() < 0.7 else b""
            out.append(_head(typ, ex, sym, seq, ts_ex, ts, -1 if typ == "snapshot" else 0)
                       + prev + b',"bids":' + _lv(bids) + b',"asks":' + _lv(asks) + b"}\n")
    return b"".join(out)


Want = list[tuple[str, dict[str, str], dict[str, tuple[str, str]], int]]


def expected(records: list[dict[str, Any]], *, types: tuple[str, ...] = ("trade", "bbo", "top"),
             timestamp: str = "recv", decimals: str = "double",
             top_layout: str = "wide") -> Want:
    """What the sink must write for ``records``, worked out independently of the encoder:
    (measurement, tags, {field: (kind, text)}, timestamp before de-duplication)."""
    out = []

    def dec(fields: dict[str, tuple[str, str]], name: str, v: str) -> None:
        if decimals in ("double", "both"):
            fields[name] = ("float", v)
        if decimals == "string":
            fields[name] = ("str", v)
        if decimals == "both":
            fields[name + "_str"] = ("str", v)

    for r in records:
        t = r["type"]
        if t not in types:
            continue
        tags = {"exchange": r["exchange"], "symbol": r["symbol"]}
        if timestamp == "recv":
            ts = r["ts_recv"]
            other = ("ts_exchange", ("int", str(r["ts_exchange"])))
        else:
            ts = r["ts_exchange"] * 1_000_000 if r["ts_exchange"] > 0 else r["ts_recv"]
            other = ("ts_recv", ("int", str(r["ts_recv"])))
        meas = MEASUREMENTS[t]
        if t == "bbo":
            f: dict[str, tuple[str, str]] = {}
            for k in ("bid", "bid_qty", "ask", "ask_qty"):
                dec(f, k, r[k])
            f["seq"] = ("int", str(r["seq"]))
            f[other[0]] = other[1]
            out.append((meas, tags, f, ts))
        elif t == "trade":
            f = {}
            dec(f, "price", r["price"])
            dec(f, "qty", r["qty"])
            f["id"] = ("int", str(r["id"]))
            f[other[0]] = other[1]
            tg = dict(tags)
            if r["side"] is not None:
                tg["side"] = r["side"]
            out.append((meas, tg, f, ts))
        elif t == "top" and top_layout == "wide":
            f = {}
            for i, (p, q) in enumerate(r["bids"]):
                dec(f, f"bid_price_{i}", p)
                dec(f, f"bid_qty_{i}", q)
            for i, (p, q) in enumerate(r["asks"]):
                dec(f, f"ask_price_{i}", p)
                dec(f, f"ask_qty_{i}", q)
            f["seq"] = ("int", str(r["seq"]))
            f[other[0]] = other[1]
            out.append((meas, tags, f, ts))
        else:
            for side, levels in (("bid", r["bids"]), ("ask", r["asks"])):
                for i, (p, q) in enumerate(levels):
                    f = {"level": ("int", str(i))}
                    dec(f, "price", p)
                    dec(f, "qty", q)
                    f["seq"] = ("int", str(r["seq"]))
                    f[other[0]] = other[1]
                    out.append((meas, {**tags, "side": side}, f, ts))
    return out


def norm(f: Field) -> tuple[str, str]:
    """A parsed field as (kind, text): integers without the ``i``, strings unescaped."""
    return f.kind, (str(f.value) if f.kind in ("int", "str") else f.raw)


def check_lines(got: list[Line], want: Want) -> None:
    """``got`` is ``want`` line by line; timestamps are the record's, or shifted up by a few
    ns to keep each series' timestamps distinct (and then they are)."""
    assert len(got) == len(want)
    seen: set[tuple[str, tuple[tuple[str, str], ...], int]] = set()
    for g, (meas, tags, fields, ts) in zip(got, want, strict=True):
        assert g.measurement == meas
        assert g.tags == tags
        assert {k: norm(v) for k, v in g.fields.items()} == fields
        assert ts <= g.timestamp < ts + 10_000, (g, ts)
        key = (meas, tuple(sorted(tags.items())), g.timestamp)
        assert key not in seen, f"duplicate timestamp in a series: {key}"
        seen.add(key)


def records_of(data: bytes) -> list[dict[str, Any]]:
    return [json.loads(x) for x in data.splitlines()]


# --------------------------------------------------------------------------- encoder

@pytest.mark.parametrize("mode", [
    {},
    {"types": ALL_TYPES},
    {"types": ALL_TYPES, "decimals": "string", "top_layout": "rows"},
    {"types": ALL_TYPES, "decimals": "both", "timestamp": "exchange"},
])
def test_encoder_lines_are_strict_line_protocol_and_match_records(mode: dict[str, Any]) -> None:
    batch = synth(3000, seed=7)
    enc = IlpEncoder(**mode)
    res = enc.encode(batch)
    recs = records_of(batch)
    want = expected(recs, **mode)
    check_lines(parse_lines(res.data), want)
    types = mode.get("types", ("trade", "bbo", "top"))
    assert res.records == len(recs) == res.encoded + res.skipped_total
    assert res.skipped == dict(Counter(r["type"] for r in recs if r["type"] not in types))
    assert res.lines == len(want) and not res.bad
    # the generic path (json.loads) writes exactly the same bytes
    slow = IlpEncoder(**mode)
    slow.fast_path = False
    assert slow.encode(batch).data == res.data


def test_encoder_counts_bad_records_and_keeps_the_rest() -> None:
    good = synth(20, seed=3)
    bad = [
        b"not json",
        b"[1,2]",
        b'{"type":"bbo","exchange":"x","symbol":"Y","seq":"1","ts_exchange":1,"ts_recv":1}',
        b'{"type":"bbo","exchange":"x","symbol":"Y","seq":1,"ts_exchange":1,"ts_recv":1,'
        b'"bid":"1e5","bid_qty":"1","ask":"2","ask_qty":"1"}',
        b'{"type":"trade","exchange":"x","symbol":"Y","seq":1,"ts_exchange":1,"ts_recv":1,'
        b'"id":1,"price":"NaN","qty":"1","side":"buy"}',
        b'{"type":"book","exchange":"x","symbol":"Y","seq":1,"ts_exchange":1,"ts_recv":1,'
        b'"bids":[["1","2","3"]],"asks":[]}',
        b'{"type":"bbo","exchange":"x","symbol":"back\\\\slash","seq":1,"ts_exchange":1,'
        b'"ts_recv":1,"bid":"1","bid_qty":"1","ask":"2","ask_qty":"1"}',
        b'{"type":"bbo","exchange":"x","symbol":"new\\nline","seq":1,"ts_exchange":1,'
        b'"ts_recv":1,"bid":"1","bid_qty":"1","ask":"2","ask_qty":"1"}',
        b'{"type":"bbo","exchange":"","symbol":"Y","seq":1,"ts_exchange":1,'
        b'"ts_recv":1,"bid":"1","bid_qty":"1","ask":"2","ask_qty":"1"}',
        b'{"type":"funding","exchange":"x","symbol":"Y","seq":1}',
    ]
    batch = good + b"\n".join(bad) + b"\n"
    enc = IlpEncoder(types=ALL_TYPES)
    res = enc.encode(batch)
    assert res.bad == {"json": 2, "header": 1, "value": 3, "tag": 3}
    assert res.skipped == {"funding": 1}
    assert res.encoded == 20 and res.records == 30
    assert parse_lines(res.data) == parse_lines(IlpEncoder(types=ALL_TYPES).encode(good).data)


def test_prefixes_are_cached_per_series_and_timestamps_unique() -> None:
    recs = [_head("trade", "okx", "BTC-USDT", i, 5, 1000, 0)
            + b',"id":%d,"price":"1.5","qty":"2","side":"buy"}\n' % i for i in range(5)]
    recs.append(_head("trade", "okx", "BTC-USDT", 9, 5, 1002, 0)
                + b',"id":9,"price":"1.5","qty":"2","side":"buy"}\n')
    recs.append(_head("trade", "okx", "BTC-USDT", 10, 5, 1000, 0)  # a step back: kept
                + b',"id":10,"price":"1.5","qty":"2","side":null}\n')
    enc = IlpEncoder(prefix="xcol_")
    lines = parse_lines(enc.encode(b"".join(recs)).data)
    assert [x.timestamp for x in lines] == [1000, 1001, 1002, 1003, 1004, 1005, 1000]
    assert {x.measurement for x in lines} == {"xcol_trades"}
    assert len(enc._series) == 2  # (okx, BTC-USDT, buy) and (..., no side)
    p1 = next(iter(enc._series.values())).prefix
    enc.encode(recs[0])
    assert next(iter(enc._series.values())).prefix is p1  # encoded once, reused
    off = IlpEncoder(unique_timestamps=False)
    assert [x.timestamp for x in parse_lines(off.encode(b"".join(recs)).data)] == [
        1000] * 5 + [1002, 1000]


def test_escape_rules() -> None:
    assert escape_tag("a b,c=d") == b"a\\ b\\,c\\=d"
    assert escape_tag('q"uote#€') == 'q"uote#€'.encode()
    for bad in ("", "a\\b", "a\nb", "a\rb"):
        with pytest.raises(ValueError):
            escape_tag(bad)
    with pytest.raises(ValueError):
        IlpEncoder(prefix="a b")
    with pytest.raises(ValueError):
        IlpEncoder(types=("trade", "quotes"))
    ep = parse_ilp_url("http://u:p%40ss@127.0.0.1:8086/write?db=x")
    assert (ep.host, ep.port, ep.target) == ("127.0.0.1", 8086, "/write?db=x")
    assert ep.auth == "Basic dTpwJTQwc3M=" and "p%40ss" not in ep.display
    assert parse_ilp_url("tcp://localhost").port == 9009
    assert parse_ilp_url("http://h:9000").target == "/write"
    for bad in ("udp://h:1", "tcp://h:1/path", "http://:80/write", "tcp://h:0"):
        with pytest.raises(ValueError):
            parse_ilp_url(bad)


# --------------------------------------------------------------------------- HTTP / influxd

async def _collector_run(tmp: Path, url: str,
                         seconds: float) -> tuple[Collector, Path, dict[str, Any]]:
    sim = Simulator(SimConfig(exchange="binance-usdm", source=[], symbols=1, rate=400.0,
                              lines=line_configs(2, delay_ms="0,3")))
    await sim.start()
    out = tmp / "out.jsonl"
    cfg = load_config(None, env={}, overrides=[
        "feeds.0.exchange=binance-usdm", f"feeds.0.symbols={sim.instruments[0]}",
        f"feeds.0.endpoints=ws://127.0.0.1:{sim.ports[0]},ws://127.0.0.1:{sim.ports[1]}",
        f"feeds.0.rest=http://127.0.0.1:{sim.ports[0]}", "runtime.http=",
        f"sinks.jsonl.path={out}", "sinks.jsonl.fsync=false",
        f"sinks.ilp.url={url}", "sinks.ilp.types=trade,bbo,top,book,snapshot",
        "sinks.ilp.decimals=both", "sinks.ilp.measurement_prefix=xcol_",
    ])
    col = Collector(cfg)
    try:
        await col.start()
        await asyncio.sleep(seconds)
        sim.pause()
        await asyncio.sleep(0.3)
        report = await col.stop()
    finally:
        await sim.stop()
    assert report.complete, report
    return col, out, col.fanout.stats_json()


@needs_influxd
def test_http_collector_run_reconciles_in_influxd(influx: Influxd, tmp_path: Path) -> None:
    influx.create_db("run")
    col, out, fan = asyncio.run(_collector_run(tmp_path, f"{influx.url}/write?db=run", 2.5))
    sink = next(s for s in col.fanout.sinks if isinstance(s, IlpSink))
    data = out.read_bytes()
    recs = records_of(data)
    st = sink.stats()
    # the fan-out offered the ILP sink exactly what the JSONL sink wrote
    assert fan["sinks"]["ilp"]["offered"] == fan["sinks"]["ilp"]["published"] == len(recs)
    assert fan["sinks"]["ilp"]["dropped_total"] == 0
    assert st["records"] == st["written"] == len(recs) > 500
    assert st["bad"] == {} and st["skipped"] == {} and st["rejected"] == 0
    assert st["pending"] == 0 and st["failures"] == 0 and st["batches"] > 0
    by_type = Counter(r["type"] for r in recs)
    assert by_type["bbo"] > 100 and by_type["trade"] > 10 and by_type["book"] > 10
    assert by_type["snapshot"] >= 1
    want = expected(recs, types=ALL_TYPES, decimals="both")
    assert st["lines"] == len(want)
    per_meas = Counter(w[0] for w in want)
    # counts queried back: every line is a point (unique timestamps per series)
    for meas, n in per_meas.items():
        field = "id" if meas == "trades" else "seq"
        assert influx.count("xcol_" + meas, field, "run") == n, meas
    # values: every trade by id, exact price text from the string field
    rows = influx.rows('SELECT "id", "price", "price_str", "qty", "qty_str", "side", '
                       '"ts_exchange", "symbol", "exchange" FROM "xcol_trades"', "run")
    trades = {r["id"]: r for r in recs if r["type"] == "trade"}
    assert len(rows) == len(trades)
    for row in rows:
        r = trades[row["id"]]
        assert row["price_str"] == r["price"] and row["qty_str"] == r["qty"]
        assert row["price"] == float(r["price"]) and row["qty"] == float(r["qty"])
        assert row["side"] == r["side"] and row["ts_exchange"] == r["ts_exchange"]
        assert (row["exchange"], row["symbol"]) == (r["exchange"], r["symbol"])
        assert r["ts_recv"] <= row["time"] < r["ts_recv"] + 1000
    bbo_rows = influx.rows('SELECT "seq", "bid_str", "ask_qty_str" FROM "xcol_bbo"', "run")
    bbos = {r["seq"]: r for r in recs if r["type"] == "bbo"}
    assert len(bbo_rows) == len(bbos)
    for row in bbo_rows:
        assert (row["bid_str"], row["ask_qty_str"]) == (bbos[row["seq"]]["bid"],
                                                        bbos[row["seq"]]["ask_qty"])


@needs_influxd
def test_http_special_characters_round_trip_through_influxd(influx: Influxd) -> None:
    influx.create_db("esc")
    names = ["A B", "x,y", "k=v", 'q"uote', "sp ace,co=mma", "ünï€ode", "#hash", "it's", "a/b"]
    lines = []
    for i, sym in enumerate(names):
        lines.append(json.dumps({
            "type": "trade", "exchange": "ex ch,=", "symbol": sym, "seq": i,
            "ts_exchange": 1_700_000_000_000 + i, "ts_recv": 1_700_000_000_000_000_000 + i,
            "line": 0, "id": i, "price": "0.000000012345678901", "qty": "123456789012.5",
            "side": "sell" if i % 2 else "odd side=,",
        }, separators=(",", ":"), ensure_ascii=bool(i % 2)).encode())
    bad = json.dumps({"type": "trade", "exchange": "x", "symbol": "back\\slash", "seq": 1,
                      "ts_exchange": 1, "ts_recv": 1, "line": 0, "id": 1, "price": "1",
                      "qty": "1", "side": None}, separators=(",", ":")).encode()
    batch = b"\n".join([*lines[:4], bad, *lines[4:]]) + b"\n"

    async def main() -> IlpSink:
        sink = IlpSink(f"{influx.url}/write?db=esc", decimals="both")
        await sink.open()
        await sink.write(batch, 10)
        await sink.flush()
        await sink.close()
        return sink

    sink = asyncio.run(main())
    assert sink.stats()["bad"] == {"tag": 1} and sink.written == len(names)
    tags = influx.rows('SHOW TAG VALUES FROM "trades" WITH KEY = "symbol"', "esc")
    assert sorted(t["value"] for t in tags) == sorted(names)
    rows = influx.rows('SELECT * FROM "trades"', "esc")
    assert len(rows) == len(names)
    for row in rows:
        i = row["id"]
        assert row["symbol"] == names[i] and row["exchange"] == "ex ch,="
        assert row["side"] == ("sell" if i % 2 else "odd side=,")
        assert row["price_str"] == "0.000000012345678901" and row["qty_str"] == "123456789012.5"
        assert row["price"] == 0.000000012345678901
    # selecting by an escaped tag works too
    q = "SELECT count(\"id\") FROM \"trades\" WHERE \"symbol\" = 'sp ace,co=mma'"
    assert influx.rows(q, "esc")[0]["count"] == 1


@needs_influxd
def test_http_404_is_retried_until_the_database_exists(influx: Influxd) -> None:
    batch = synth(400, seed=11)
    want = expected(records_of(batch))

    async def main() -> tuple[IlpSink, dict[str, Any]]:
        sink = IlpSink(f"{influx.url}/write?db=late", name="ilp")
        fan = FanOut(backoff=fast_backoff)
        fan.add_sink(sink, QueueSpec(max_write_bytes=16_384))
        await fan.start()
        fan.offer(batch, 400)
        t0 = time.monotonic()
        while sink.failures < 3:  # 404 database not found: raised, retried
            assert time.monotonic() - t0 < 10
            await asyncio.sleep(0.02)
        assert not sink.healthy and sink.written == 0 and fan.stats()["ilp"].queued == 400
        assert "404" in (sink.last_error or "") and "database not found" in (sink.last_error or "")
        await asyncio.to_thread(influx.create_db, "late")
        report = await fan.drain_and_close(20.0)
        assert report.complete, report
        return sink, fan.stats_json()

    sink, fan = asyncio.run(main())
    st = sink.stats()
    assert st["retries"] >= 3 and fan["sinks"]["ilp"]["failures"] >= 3
    assert st["records"] == 400 == st["written"] + sum(st["skipped"].values())
    assert fan["sinks"]["ilp"]["published"] == 400 and st["pending"] == 0
    for meas, n in Counter(w[0] for w in want).items():
        assert influx.count(meas, "id" if meas == "trades" else "seq", "late") == n


@needs_influxd
def test_http_400_drops_the_batch_counts_it_and_keeps_going(influx: Influxd) -> None:
    influx.create_db("conflict")
    batch = synth(300, seed=12)
    # "seq" is a float in this measurement (in the shard of the batch's time range): the
    # sink's integer seq conflicts
    t = records_of(batch)[0]["ts_recv"]
    assert influx.write("conflict", b"p_bbo,exchange=okx,symbol=Z seq=1.5 %d\n" % t)[0] == 204
    trades_only = b"".join(x for x in synth(600, seed=13).splitlines(keepends=True)
                           if x.startswith(b'{"type":"trade"'))
    n2 = trades_only.count(b"\n")
    recs = records_of(batch)

    async def main() -> IlpSink:
        sink = IlpSink(f"{influx.url}/write?db=conflict", prefix="p_")
        await sink.open()
        await sink.write(batch, 300)  # refused (400): not raised
        assert sink.healthy and sink.rejected_batches == 1
        await sink.write(trades_only, n2)
        await sink.close()
        return sink

    sink = asyncio.run(main())
    st = sink.stats()
    n_encoded = sum(1 for r in recs if r["type"] in ("trade", "bbo", "top"))
    assert st["rejected"] == n_encoded and st["rejected_batches"] == 1
    assert "conflict" in st["last_rejection"] and st["failures"] == 0
    assert st["written"] == n2 and st["records"] == 300 + n2 and st["pending"] == 0
    assert st["records"] == st["written"] + st["rejected"] + sum(st["skipped"].values())
    # InfluxDB 1.x stored the valid lines of the refused request (a partial write)
    n_trades = sum(1 for r in recs + records_of(trades_only) if r["type"] == "trade")
    assert influx.count("p_trades", "id", "conflict") == n_trades


@needs_influxd
def test_http_influxd_killed_and_restarted_nothing_lost(tmp_path: Path) -> None:
    batches = [synth(200, seed=100 + k, symbols=(f"S{k % 3}",)) for k in range(30)]
    n_total = 30 * 200
    with influxd(tmp_path / "influx") as srv:
        srv.create_db("xcol")

        async def main() -> tuple[IlpSink, dict[str, Any], int]:
            sink = IlpSink(f"{srv.url}/write?db=xcol", types=ALL_TYPES, timeout_s=2.0)
            fan = FanOut(backoff=fast_backoff)
            fan.add_sink(sink, QueueSpec(policy="blocking", capacity=100_000,
                                         max_write_bytes=32_768))
            await fan.start()
            for b in batches[:10]:
                fan.offer(b, 200)
            while fan.stats()["ilp"].queued:
                await asyncio.sleep(0.01)
            await asyncio.to_thread(srv.kill)
            for b in batches[10:20]:
                fan.offer(b, 200)
            t0 = time.monotonic()
            while sink.failures < 2:
                assert time.monotonic() - t0 < 10
                await asyncio.sleep(0.02)
            down = fan.stats()["ilp"]
            assert not down.healthy and down.queued > 0
            failures_while_down = sink.failures
            await asyncio.sleep(1.0)  # stays down a while: retried with backoff
            await asyncio.to_thread(srv.start)
            for b in batches[20:]:
                fan.offer(b, 200)
            report = await fan.drain_and_close(30.0)
            assert report.complete, report
            return sink, fan.stats_json(), failures_while_down

        sink, fan, failures = asyncio.run(main())
        st = sink.stats()
        assert failures >= 2 and st["failures"] >= failures and st["retries"] >= 1
        assert fan["sinks"]["ilp"]["published"] == n_total
        assert fan["sinks"]["ilp"]["dropped_total"] == 0
        assert st["records"] == st["written"] == n_total and st["pending"] == 0
        want = expected(records_of(b"".join(batches)), types=ALL_TYPES)
        for meas, n in Counter(w[0] for w in want).items():
            assert srv.count(meas, "id" if meas == "trades" else "seq", "xcol") == n, meas


# --------------------------------------------------------------------------- TCP

@pytest.mark.parametrize("mode", [
    {"types": ALL_TYPES},
    {"types": ALL_TYPES, "decimals": "string", "top_layout": "rows", "timestamp": "exchange"},
])
def test_tcp_strict_server_gets_every_line(run: Runner, mode: dict[str, Any]) -> None:
    batches = [synth(400, seed=200 + k) for k in range(10)]

    async def main() -> None:
        srv = LineServer()
        await srv.start()
        sink = IlpSink(f"tcp://127.0.0.1:{srv.port}", tcp_buffer_bytes=64 * 1024, **mode)
        fan = FanOut(backoff=fast_backoff)
        fan.add_sink(sink, QueueSpec(max_write_bytes=65_536, flush_interval_s=0.01))
        await fan.start()
        for b in batches:
            fan.offer(b, 400)
            await asyncio.sleep(0)
        report = await fan.drain_and_close(20.0)
        assert report.complete, report
        t0 = time.monotonic()
        while len(srv.lines) < sink.lines and time.monotonic() - t0 < 10:
            await asyncio.sleep(0.01)
        await srv.stop()
        assert srv.errors == []
        st = sink.stats()
        want = expected(records_of(b"".join(batches)), **mode)
        check_lines(srv.lines, want)
        assert st["lines"] == len(srv.lines) == len(want)
        assert st["bytes"] == srv.bytes and srv.connections == 1
        assert st["records"] == st["written"] == 4000 and st["unacked_bytes"] == 0
        assert st["failures"] == 0 and st["flush_ns"]["count"] > 0
        assert not sink.healthy  # closed

    run(main())


def test_tcp_backpressure_slow_server(run: Runner) -> None:
    """A server that stops reading holds the write until it reads again: the fan-out's
    blocking queue fills and pauses reading instead of the transport growing."""
    batch = synth(500, seed=5, symbols=("X",))

    async def main() -> None:
        srv = LineServer(rcvbuf=16_384)
        await srv.start()
        srv.paused.set()
        paused: list[bool] = []
        sink = IlpSink(f"tcp://127.0.0.1:{srv.port}", types=ALL_TYPES,
                       tcp_buffer_bytes=16 * 1024, timeout_s=30.0)
        fan = FanOut(backoff=fast_backoff, pause_reading=lambda: paused.append(True),
                     resume_reading=lambda: paused.append(False))
        fan.add_sink(sink, QueueSpec(policy="blocking", capacity=5000,
                                     max_write_bytes=65_536))
        await fan.start()
        # small kernel buffers on both ends, so a few hundred KB fill them (the test is
        # about the sink's own buffer and the fan-out, not about the kernel's autotuning)
        assert sink._tcp is not None and sink._tcp.proto is not None
        tr = sink._tcp.proto.transport
        assert tr is not None
        tr.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 16_384)
        for _ in range(20):
            fan.offer(batch, 500)
        await asyncio.sleep(0.5)
        st = fan.stats()["ilp"]
        assert st.queued > 0 and paused == [True]  # stuck behind the server
        assert sink.stats()["failures"] == 0
        srv.paused.clear()
        t0 = time.monotonic()
        while paused != [True, False]:  # drained to the low watermark: reading resumes
            assert time.monotonic() - t0 < 20
            await asyncio.sleep(0.01)
        report = await fan.drain_and_close(30.0)
        assert report.complete, report
        while len(srv.lines) < sink.lines and time.monotonic() - t0 < 20:
            await asyncio.sleep(0.01)
        await srv.stop()
        assert srv.errors == [] and len(srv.lines) == sink.lines
        assert sink.written == 10_000

    run(main())


def test_tcp_server_down_counts_failures_then_resends(run: Runner) -> None:
    batches = [synth(300, seed=300 + k, symbols=(f"S{k}",)) for k in range(12)]

    async def main() -> None:
        port = free_port()
        srv = LineServer(port)
        await srv.start()
        sink = IlpSink(f"tcp://127.0.0.1:{port}", types=ALL_TYPES, timeout_s=2.0)
        fan = FanOut(backoff=fast_backoff)
        fan.add_sink(sink, QueueSpec(policy="blocking", max_write_bytes=32_768,
                                     flush_interval_s=0.02))
        await fan.start()
        for b in batches[:4]:
            fan.offer(b, 300)
        t0 = time.monotonic()
        while (fan.stats()["ilp"].queued or sink.stats()["unacked_bytes"]
               or len(srv.lines) < sink.lines):
            assert time.monotonic() - t0 < 10
            await asyncio.sleep(0.01)
        first = len(srv.lines)
        await srv.stop()  # the server goes away with everything it was sent processed
        for b in batches[4:8]:
            fan.offer(b, 300)
        while sink.failures < 3:
            assert time.monotonic() - t0 < 15
            await asyncio.sleep(0.01)
        assert not fan.stats()["ilp"].healthy
        await asyncio.sleep(0.5)
        await srv.start()  # same port
        for b in batches[8:]:
            fan.offer(b, 300)
        report = await fan.drain_and_close(20.0)
        assert report.complete, report
        while len(srv.lines) < first + 1 and time.monotonic() - t0 < 20:
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.2)
        await srv.stop()
        st = sink.stats()
        assert srv.errors == []
        assert st["failures"] >= 3 and st["retries"] >= 1 and st["connects"] >= 2
        assert st["records"] == st["written"] == 3600 and st["unacked_bytes"] == 0
        # every line reached the server at least once (a resend may repeat some)
        want = expected(records_of(b"".join(batches)), types=ALL_TYPES)
        got = Counter((x.measurement, tuple(sorted(x.tags.items())),
                       tuple(sorted((k, norm(v)) for k, v in x.fields.items())))
                      for x in srv.lines)
        for meas, tags, fields, _ts in want:
            key = (meas, tuple(sorted(tags.items())), tuple(sorted(fields.items())))
            assert got[key] >= 1, key
        assert len(srv.lines) >= len(want)

    run(main())


def test_tcp_reset_keeps_unacknowledged_bytes(run: Runner) -> None:
    """Lines written into a connection the server has just dropped are not taken as
    delivered by a flush; the reconnect sends them again, once."""
    batch = synth(200, seed=400)

    async def main() -> None:
        port = free_port()
        srv = LineServer(port)
        await srv.start()
        sink = IlpSink(f"tcp://127.0.0.1:{port}", types=ALL_TYPES, timeout_s=2.0)
        await sink.open()
        assert sink._tcp is not None and sink._tcp.proto is not None
        tr = sink._tcp.proto.transport
        assert tr is not None
        tr.pause_reading()  # the client does not see the reset coming: its write "succeeds"
        await srv.stop()  # aborts the connection: the next bytes meet a reset
        await sink.write(batch, 200)
        with pytest.raises((ConnectionError, TimeoutError)):
            await sink.flush()
        assert sink.stats()["unacked_bytes"] > 0 and not sink.healthy
        await sink.close()
        await srv.start()
        await sink.open()  # resends what was not acknowledged
        await sink.flush()  # the fan-out retries the flush that failed
        await sink.close()
        t0 = time.monotonic()
        while len(srv.lines) < sink.lines and time.monotonic() - t0 < 10:
            await asyncio.sleep(0.01)
        await srv.stop()
        st = sink.stats()
        assert srv.errors == [] and st["unacked_bytes"] == 0
        assert st["records"] == st["written"] == 200 and st["failures"] >= 1
        check_lines(srv.lines, expected(records_of(batch), types=ALL_TYPES))  # once each

    run(main())
