"""The Redis sink against a real redis-server (Debian's), started per test on a free port.

* a collector run against the simulator publishes through the sink: a subscriber sees every
  trade and book record (byte for byte), the orderbook payloads and coalesced market data;
  the ``market_data:*`` keys hold the latest state with a TTL; the counters reconcile;
* outage: redis-server is SIGKILLed for 10 s while records keep coming (``blocking``),
  started again on the same port; nothing is lost: every record accepted is published once
  the server is back (a subscriber attached before the sink reconnects sees them all);
* AUTH (password, ACL user), SELECT, TLS, error replies, reply timeouts;
* market data: coalescing, mid/spread, the rolling 24 h window (against a brute-force
  reference), orderbook cut to ``depth``, bad records;
* config: URL and template errors name the key; passwords are masked.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Coroutine, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from srv_redis import Client, RedisServer, Subscriber, free_port, need_redis

from xcol.config import ConfigError, config_to_dict, load_config
from xcol.fanout import FanOut, QueueSpec
from xcol.net.backoff import Backoff
from xcol.sinks import build_sinks
from xcol.sinks.redis import RedisError, RedisSink, RollingWindow

Runner = Callable[[Coroutine[Any, Any, Any]], Any]
PATTERNS = ("orderbook:*", "market_data:*", "trades:*", "book:*")


@pytest.fixture(params=["asyncio", "uvloop"])
def run(request: pytest.FixtureRequest) -> Runner:
    """Run a coroutine on the default loop and on uvloop."""
    if request.param == "uvloop":
        uvloop = pytest.importorskip("uvloop")
        return uvloop.run  # type: ignore[no-any-return]
    return asyncio.run


@pytest.fixture
def server() -> Iterator[RedisServer]:
    srv = RedisServer().start()
    try:
        yield srv
    finally:
        srv.close()


def url(srv: RedisServer, db: int = 0) -> str:
    return f"redis://127.0.0.1:{srv.port}/{db}"


def md_reference(records: list[dict[str, Any]]) -> dict[str, Any]:
    """Market data of one instrument computed the obvious way (all trades in 24 h)."""
    bbo = [r for r in records if r["type"] == "bbo"]
    trades = [r for r in records if r["type"] == "trade"]
    q = bbo[-1]
    bid, ask = Decimal(q["bid"]), Decimal(q["ask"])
    prices = [Decimal(t["price"]) for t in trades]
    last = trades[-1] if trades else None
    return {
        "exchange": q["exchange"], "symbol": q["symbol"], "bid": q["bid"],
        "bid_qty": q["bid_qty"], "ask": q["ask"], "ask_qty": q["ask_qty"],
        "mid": format((bid + ask) / 2, "f"), "spread": format(ask - bid, "f"),
        "last": last and last["price"], "last_qty": last and last["qty"],
        "last_side": last and last["side"],
        "volume_24h": format(sum((Decimal(t["qty"]) for t in trades), Decimal(0)), "f"),
        "high_24h": format(max(prices), "f") if prices else None,
        "low_24h": format(min(prices), "f") if prices else None,
        "trades_24h": len(trades),
        "ts_exchange": max(r["ts_exchange"] for r in bbo + trades),
    }


def orderbook_reference(rec: dict[str, Any], depth: int) -> dict[str, Any]:
    d = {k: rec[k] for k in ("exchange", "symbol", "seq", "ts_exchange", "ts_recv")}
    d["bids"] = rec["bids"][:depth]
    d["asks"] = rec["asks"][:depth]
    return d


# --------------------------------------------------------------------------- a real run


@pytest.fixture(scope="module")
def collector_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """The collector against the simulator (2 synthetic USD-M instruments: depth, BBO,
    trades) with the JSONL sink and the Redis sink (``publish_deltas``) side by side."""
    need_redis()
    from xcol.app import Collector
    from xcol.sim.server import SimConfig, Simulator, line_configs

    tmp = tmp_path_factory.mktemp("redis-run")
    srv = RedisServer().start()
    sub = Subscriber(srv.port, PATTERNS)
    out = tmp / "out.jsonl"

    async def main() -> dict[str, Any]:
        sim = Simulator(SimConfig(exchange="binance-usdm", source=[], symbols=2, rate=600.0,
                                  lines=line_configs(1, delay_ms="0")))
        await sim.start()
        cfg = load_config(None, env={}, overrides=[
            "feeds.0.exchange=binance-usdm", f"feeds.0.symbols={','.join(sim.instruments)}",
            f"feeds.0.endpoints=ws://127.0.0.1:{sim.ports[0]}",
            f"feeds.0.rest=http://127.0.0.1:{sim.ports[0]}", "runtime.http=",
            f"sinks.jsonl.path={out}", "sinks.jsonl.fsync=false",
            f"sinks.redis.url={url(srv)}", "sinks.redis.publish_deltas=true",
        ])
        col = Collector(cfg)
        await col.start()
        await asyncio.sleep(3.0)
        sim.pause()
        await asyncio.sleep(0.2)
        report = await col.stop()
        await sim.stop()
        (sink,) = [s for s in col.fanout.sinks if isinstance(s, RedisSink)]
        return {"report": report, "fanout": col.fanout.stats(), "sink": sink}

    try:
        res = asyncio.run(main())
        sub.wait_quiet(0.5)
        res["messages"] = sub.by_channel()
        res["lines"] = out.read_bytes().splitlines()
        with srv.client() as c:
            keys = sorted(k.decode() for k in c.check("KEYS", "market_data:*"))
            res["keys"] = {k: (c.check("GET", k), c.check("TTL", k)) for k in keys}
        yield res
    finally:
        sub.close()
        srv.close()


def test_a_collector_run_is_published(collector_run: dict[str, Any]) -> None:
    res = collector_run
    assert res["report"].complete
    lines: list[bytes] = res["lines"]
    recs = [json.loads(x) for x in lines]
    sink: RedisSink = res["sink"]
    msgs: dict[str, list[bytes]] = res["messages"]
    symbols = sorted({r["symbol"] for r in recs})
    assert len(symbols) == 2
    kinds = {r["type"] for r in recs}
    assert {"book", "bbo", "trade", "snapshot"} <= kinds

    # counters reconcile: everything the collector published reached Redis
    st = res["fanout"]["redis"]
    assert st.offered == st.published == len(lines) and st.dropped_total == 0
    assert sink.records == len(lines)
    assert sink.error_replies == {} and sink.bad_records == 0 and sink.skipped == 0

    seen = 0
    for sym in symbols:
        mine = [(raw, r) for raw, r in zip(lines, recs, strict=True) if r["symbol"] == sym]
        exch = mine[0][1]["exchange"]
        trades = [raw for raw, r in mine if r["type"] == "trade"]
        books = [raw for raw, r in mine if r["type"] == "book"]
        assert trades and books
        assert msgs[f"trades:{sym}"] == trades  # every trade, as is, in order
        assert msgs[f"book:{exch}:{sym}"] == books  # publish_deltas
        obs = [orderbook_reference(r, 10) for _, r in mine if r["type"] in ("top", "snapshot")]
        assert [json.loads(p) for p in msgs[f"orderbook:{exch}:{sym}"]] == obs
        # coalesced: at most one market-data update per instrument per write
        md = msgs[f"market_data:{sym}"]
        assert 1 <= len(md) <= sink.batches
        latest = json.loads(md[-1])
        ref = md_reference([r for _, r in mine])
        assert {k: latest[k] for k in ref} == ref
        recv = max(r["ts_recv"] for _, r in mine if r["type"] in ("bbo", "trade"))
        assert recv // 10**6 - 1000 <= latest["updated_at"] <= recv // 10**6
        value, ttl = res["keys"][f"market_data:{sym}"]
        assert value == md[-1] and 0 < ttl <= 300
        seen += len(trades) + len(books) + len(obs) + len(md)
    assert sum(len(v) for v in msgs.values()) == seen  # nothing else was published
    assert sink.commands == seen + sink.market_data  # + one SET per market-data update


# --------------------------------------------------------------------------- outage


def test_outage_blocking_nothing_lost(collector_run: dict[str, Any]) -> None:
    """SIGKILL redis-server for 10 s while records keep being offered; restart it on the
    same port.  The fan-out retries the sink (close, backoff, open, same batch) and every
    record it accepted is published once the server is back: ``published == offered``,
    nothing dropped, and a subscriber attached to the new server before the sink could
    reconnect receives every trade that the old server did not get."""
    base = [x for x in collector_run["lines"]
            if not x.startswith((b'{"type":"trade"', b'{"type":"snapshot"'))]
    template = next(x for x in collector_run["lines"] if x.startswith(b'{"type":"trade"'))
    symbol = json.loads(template)["symbol"]

    def trade(i: int) -> bytes:
        t = re.sub(rb'"seq":\d+', b'"seq":%d' % i, template, count=1)
        return re.sub(rb'"id":\d+', b'"id":%d' % i, t, count=1)

    srv = RedisServer().start()
    subs = [Subscriber(srv.port, PATTERNS)]
    sink = RedisSink(url(srv), timeout_s=5.0)
    fan = FanOut(backoff=lambda: Backoff(0.05, 0.5, 60.0))
    fan.add_sink(sink, QueueSpec(policy="blocking", capacity=100_000, flush_interval_s=0.05))
    marks: dict[str, Any] = {}

    async def offer(stop: asyncio.Event) -> int:
        i = 0
        while not stop.is_set():
            recs = [base[(4 * i + k) % len(base)] for k in range(4)] + [trade(i)]
            fan.offer(b"".join(r + b"\n" for r in recs), len(recs))
            i += 1
            await asyncio.sleep(0.005)
        return i

    async def main() -> None:
        await fan.start()
        stop = asyncio.Event()
        offering = asyncio.create_task(offer(stop))
        await asyncio.sleep(1.0)
        assert fan.stats()["redis"].healthy
        srv.kill()
        marks["killed_at"] = fan.stats()["redis"].offered
        await asyncio.sleep(5.0)
        marks["down_health"] = fan.stats()["redis"].healthy
        marks["down_queued"] = fan.stats()["redis"].queued
        await asyncio.sleep(5.0)
        # Back on the same port, but refusing the sink (no password) until the second
        # subscriber is attached: the restarted server gets the sink's writes only then.
        await asyncio.to_thread(srv.start, ["--requirepass", "gate"], "gate")
        subs.append(await asyncio.to_thread(Subscriber, srv.port, PATTERNS, password="gate"))
        deadline = time.monotonic() + 5  # the sink is being refused: NOAUTH
        while "NOAUTH" not in (fan.stats()["redis"].last_error or ""):
            assert time.monotonic() < deadline, fan.stats()["redis"].last_error
            await asyncio.sleep(0.05)
        with Client(srv.port, password="gate") as c:
            c.check("CONFIG", "SET", "requirepass", "")
        await asyncio.sleep(1.0)
        stop.set()
        marks["trades"] = await offering
        deadline = time.monotonic() + 30
        while fan.stats()["redis"].queued and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        report = await fan.drain_and_close(5.0)
        assert report.complete, report

    try:
        asyncio.run(main())
        for s in subs:
            s.wait_quiet(0.5)
        st = fan.stats()["redis"]
        assert st.offered == st.published and st.dropped == {} and st.queued == 0
        assert st.offered == marks["trades"] * 5
        assert marks["down_health"] is False and marks["down_queued"] > 0
        assert st.failures > 0 and sink.failures > 0 and sink.connects >= 2

        def ids(s: Subscriber) -> set[int]:
            return {json.loads(p)["id"] for p in s.by_channel().get(f"trades:{symbol}", [])}

        old, new = ids(subs[0]), ids(subs[1])
        everything = set(range(marks["trades"]))
        assert old | new == everything  # nothing lost
        killed = marks["killed_at"] // 5
        assert set(range(killed, marks["trades"])) <= new  # queued in the outage: all there
        assert len(new) > marks["trades"] // 2
        with srv.client() as c:
            assert 0 < c.check("TTL", f"market_data:{symbol}") <= 300
    finally:
        for s in subs:
            s.close()
        srv.close()


# --------------------------------------------------------------------------- auth, db, TLS


def rec_bbo(symbol: str = "BTCUSDT", bid: str = "100.0", ask: str = "100.2", ts: int = 0,
            exchange: str = "binance-usdm", seq: int = 1) -> bytes:
    return (b'{"type":"bbo","exchange":"%s","symbol":"%s","seq":%d,"ts_exchange":%d,'
            b'"ts_recv":%d,"line":0,"bid":"%s","bid_qty":"1.5","ask":"%s","ask_qty":"2.5"}'
            % (exchange.encode(), symbol.encode(), seq, ts, ts * 10**6 + 5, bid.encode(),
               ask.encode()))


def rec_trade(i: int, price: str, qty: str, ts: int, symbol: str = "BTCUSDT",
              side: str | None = "buy") -> bytes:
    s = b"null" if side is None else b'"%s"' % side.encode()
    return (b'{"type":"trade","exchange":"binance-usdm","symbol":"%s","seq":%d,'
            b'"ts_exchange":%d,"ts_recv":%d,"line":1,"id":%d,"price":"%s","qty":"%s",'
            b'"side":%s}' % (symbol.encode(), i, ts, ts * 10**6 + 7, i, price.encode(),
                             qty.encode(), s))


def rec_book(kind: str, n_bids: int, n_asks: int, symbol: str = "BTCUSDT",
             seq: int = 9) -> bytes:
    r = {"type": kind, "exchange": "binance-usdm", "symbol": symbol, "seq": seq,
         "ts_exchange": 1_700_000_000_000, "ts_recv": 1_700_000_000_000_000_123, "line": -1,
         "bids": [[f"{100 - i}.5", f"{i + 1}.000"] for i in range(n_bids)],
         "asks": [[f"{101 + i}.5", f"{i + 2}.000"] for i in range(n_asks)]}
    return json.dumps(r, separators=(",", ":")).encode()


def batch(*recs: bytes) -> tuple[bytes, int]:
    return b"".join(r + b"\n" for r in recs), len(recs)


def test_auth_acl_and_db(run: Runner) -> None:
    srv = RedisServer(args=["--requirepass", "s3cret"]).start(password="s3cret")
    try:
        with srv.client(password="s3cret") as c:
            c.check("ACL", "SETUSER", "xcol", "on", ">x@pw", "~*", "&*", "+@all")
            c.check("ACL", "SETUSER", "pubonly", "on", ">pw", "~*", "&*", "+publish",
                    "+ping", "+select")

        async def write(sink: RedisSink, *recs: bytes) -> None:
            await sink.open()
            try:
                await sink.write(*batch(*recs))
            finally:
                await sink.close()

        async def main() -> None:
            port = srv.port
            await write(RedisSink(f"redis://:s3cret@127.0.0.1:{port}/3"), rec_bbo("A"))
            await write(RedisSink(f"redis://xcol:x%40pw@127.0.0.1:{port}/2"), rec_bbo("B"))
            await write(RedisSink(f"redis://127.0.0.1:{port}/4", username="xcol",
                                  password="x@pw"), rec_bbo("C"))
            with pytest.raises(RedisError, match="AUTH failed: WRONGPASS") as e:
                await RedisSink(f"redis://:nope-secret@127.0.0.1:{port}/0").open()
            assert "nope-secret" not in str(e.value) and ":***@" in str(e.value)
            with pytest.raises(RedisError, match="PING failed: NOAUTH"):
                await RedisSink(f"redis://127.0.0.1:{port}/0").open()
            with pytest.raises(RedisError, match="SELECT failed"):
                await RedisSink(f"redis://:s3cret@127.0.0.1:{port}/99").open()

            # error replies are counted and reported, not retried: SET is not allowed
            sub = Subscriber(port, ["trades:*"], password="s3cret")
            sink = RedisSink(f"redis://pubonly:pw@127.0.0.1:{port}/0")
            await sink.open()
            await sink.write(*batch(rec_trade(1, "10", "1", 1_700_000_000_000)))
            await sink.flush()
            assert sink.error_replies == {"NOPERM": 1} and not sink.healthy
            assert "NOPERM" in (sink.last_error or "")
            assert sink.records == 1 and sink.failures == 0
            await sink.close()
            assert sub.wait_count(1) == 1
            sub.close()

        run(main())
        for db, sym in ((3, "A"), (2, "B"), (4, "C")):
            with srv.client(password="s3cret", db=db) as c:
                assert c.check("KEYS", "*") == [f"market_data:{sym}".encode()]
                assert 0 < c.check("TTL", f"market_data:{sym}") <= 300
    finally:
        srv.close()


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl CLI not installed")
def test_tls(tmp_path: Path, run: Runner) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout",
                    str(key), "-out", str(cert), "-days", "1", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"],
                   check=True, capture_output=True)
    tls_port = free_port()
    srv = RedisServer(args=["--tls-port", str(tls_port), "--tls-cert-file", str(cert),
                            "--tls-key-file", str(key), "--tls-ca-cert-file", str(cert),
                            "--tls-auth-clients", "no"]).start()
    try:
        async def main() -> None:
            tls_url = f"rediss://127.0.0.1:{tls_port}/1"
            for sink in (RedisSink(tls_url, tls_verify=False),
                         RedisSink(tls_url, tls_ca_file=str(cert))):
                await sink.open()
                await sink.write(*batch(rec_bbo("T")))
                assert sink.healthy
                await sink.close()
            with pytest.raises(ConnectionError, match="TLS.*CERTIFICATE_VERIFY_FAILED"):
                await RedisSink(tls_url).open()  # self-signed, system CAs

        run(main())
        with srv.client(db=1) as c:
            assert c.check("EXISTS", "market_data:T") == 1
    finally:
        srv.close()


def test_reply_timeout_then_retry_applies_state_once(server: RedisServer, run: Runner) -> None:
    """A server that stops answering.  ``write`` keeps one batch in flight: the first write
    returns at once, the second waits for the first's replies, times out and raises.  The
    fan-out's retry (close, open, the same batch again) re-sends both batches, whole, on
    the new connection, without applying their trades to the market data twice."""
    t0 = 1_700_000_000_000
    a = batch(rec_trade(1, "10", "1", t0), rec_trade(2, "11", "2", t0 + 1))
    b = batch(rec_trade(3, "12", "3", t0 + 2), rec_bbo(ts=t0 + 3))

    async def main() -> None:
        sink = RedisSink(url(server), timeout_s=0.5)
        await sink.open()
        assert server.proc is not None
        os.kill(server.proc.pid, signal.SIGSTOP)
        try:
            await sink.write(*a)
            with pytest.raises(TimeoutError, match="no reply within 0.5 s"):
                await sink.write(*b)
            assert not sink.healthy and sink.records == 0
        finally:
            os.kill(server.proc.pid, signal.SIGCONT)
        await sink.close()
        await sink.open()
        await sink.write(*b)  # the fan-out's retry: the same bytes object
        await sink.flush()
        assert sink.retries == 2 and sink.failures == 1 and sink.healthy
        assert sink.records == 4 and sink.batches == 2
        await sink.close()

    run(main())
    with server.client() as c:
        md = json.loads(c.check("GET", "market_data:BTCUSDT"))
    assert md["trades_24h"] == 3 and md["volume_24h"] == "6" and md["high_24h"] == "12"
    assert md["bid"] == "100.0" and md["last"] == "12"


def test_same_bytes_twice_is_published_twice(server: RedisServer, run: Runner) -> None:
    """Only a retry after a failure re-sends instead of encoding: the same bytes object
    written twice in a row is two batches."""
    sub = Subscriber(server.port, ["trades:*"])
    data, n = batch(rec_trade(1, "10", "1", 1_700_000_000_000))

    async def main() -> None:
        sink = RedisSink(url(server))
        await sink.open()
        await sink.write(data, n)
        await sink.write(data, n)
        await sink.close()  # flushes
        assert sink.records == 2 and sink.retries == 0

    run(main())
    assert sub.wait_count(2) == 2
    sub.close()


def test_connection_refused_and_lost(run: Runner) -> None:
    port = free_port()

    async def main() -> None:
        sink = RedisSink(f"redis://127.0.0.1:{port}/0", connect_timeout_s=2.0)
        with pytest.raises(ConnectionError, match=f"redis://127.0.0.1:{port}/0"):
            await sink.open()
        assert not sink.healthy
        srv = RedisServer(port=port).start()
        try:
            await sink.open()
            assert sink.healthy
            srv.kill()
            await asyncio.sleep(0.1)
            assert not sink.healthy
            with pytest.raises(ConnectionError):
                await sink.flush()
            with pytest.raises(ConnectionError):
                await sink.write(*batch(rec_bbo()))
            await sink.close()
            await sink.close()  # idempotent
        finally:
            srv.close()

    run(main())


# --------------------------------------------------------------------------- semantics


def test_market_data_coalescing_window_and_orderbook(server: RedisServer, run: Runner) -> None:
    t0 = 1_700_000_040_000  # 40 s into a minute
    hour = 3_600_000
    sub = Subscriber(server.port, PATTERNS)
    got: list[dict[str, Any]] = []

    async def main() -> None:
        sink = RedisSink(url(server), depth=3)
        await sink.open()
        # 1: many BBOs and two trades for A, one BBO for B -> one update each
        recs = [rec_bbo("A", bid=f"{100 + i}.0", ask=f"{100 + i}.5", ts=t0 + i, seq=i)
                for i in range(50)]
        recs += [rec_trade(1, "100.0", "1", t0, "A"), rec_trade(2, "105.5", "2", t0 + hour,
                                                                "A", side="sell"),
                 rec_bbo("B", bid="7", ask="9", ts=t0)]
        await sink.write(*batch(*recs))
        await sink.flush()
        assert sink.market_data == 2
        # 2: 24 h after the first trade's minute: it leaves the window
        await sink.write(*batch(rec_trade(3, "101.25", "0.5", t0 + 24 * hour + 20_000, "A")))
        # 3: an hour later the 105.5 trade leaves too: high/low recomputed
        await sink.write(*batch(rec_trade(4, "101.00", "0.25", t0 + 25 * hour + 20_000, "A",
                                          side=None),
                                rec_trade(5, "99", "1", t0, "A")))  # too old: ignored
        # orderbook payloads cut to depth 3; top-of-book for C from a top record
        await sink.write(*batch(rec_book("top", 5, 2, "C"), rec_book("snapshot", 1, 0, "C"),
                                rec_book("top", 4, 4, "C")[:-1] + b',"checksum":7}',
                                b'{"no":"header"}', rec_book("other", 1, 1, "C")))
        assert sink.bad_records == 1 and sink.skipped == 1
        await sink.close()

    run(main())
    sub.wait_quiet(0.3)
    msgs = sub.by_channel()
    got = [json.loads(p) for p in msgs["market_data:A"]]
    assert len(got) == 3 and len(msgs["market_data:B"]) == 1
    a1 = got[0]
    assert (a1["bid"], a1["ask"], a1["mid"], a1["spread"]) == ("149.0", "149.5", "149.25", "0.5")
    assert (a1["volume_24h"], a1["high_24h"], a1["low_24h"], a1["trades_24h"]) == (
        "3", "105.5", "100.0", 2)
    assert (a1["last"], a1["last_qty"], a1["last_side"]) == ("105.5", "2", "sell")
    assert a1["ts_exchange"] == t0 + hour
    a2, a3 = got[1], got[2]
    assert (a2["volume_24h"], a2["high_24h"], a2["low_24h"], a2["trades_24h"]) == (
        "2.5", "105.5", "101.25", 2)
    assert (a3["volume_24h"], a3["high_24h"], a3["low_24h"], a3["trades_24h"]) == (
        "0.75", "101.25", "101.00", 2)
    assert a3["last_side"] is None and a3["last"] == "101.00" and a3["bid"] == "149.0"
    b = json.loads(msgs["market_data:B"][0])
    assert (b["mid"], b["spread"], b["last"], b["volume_24h"], b["high_24h"]) == (
        "8", "2", None, "0", None)
    ob = [json.loads(p) for p in msgs["orderbook:binance-usdm:C"]]
    expect = [orderbook_reference(json.loads(r), 3) for r in (
        rec_book("top", 5, 2, "C"), rec_book("snapshot", 1, 0, "C"), rec_book("top", 4, 4, "C"))]
    assert ob == expect
    c = json.loads(msgs["market_data:C"][0])
    assert (c["bid"], c["bid_qty"], c["ask"], c["ask_qty"]) == ("100.5", "1.000", "101.5",
                                                                 "2.000")
    sub.close()


def test_coalesced_orderbook(server: RedisServer, run: Runner) -> None:
    """``coalesce_orderbook``: one orderbook message per instrument per batch, the latest
    book (a snapshot after tops wins, tops after a snapshot win)."""
    sub = Subscriber(server.port, ["orderbook:*"])
    first = [rec_book("top", 4, 4, "C", seq=s) for s in (1, 2)] + [
        rec_book("snapshot", 30, 30, "C", seq=3), rec_book("top", 2, 2, "D", seq=4)]
    second = [rec_book("snapshot", 30, 30, "C", seq=5), rec_book("top", 5, 5, "C", seq=6)]

    async def main() -> None:
        sink = RedisSink(url(server), depth=4, coalesce_orderbook=True)
        await sink.open()
        await sink.write(*batch(*first))
        await sink.write(*batch(*second))
        await sink.close()
        # 3 books + 3 market-data updates (C twice, D: no BBO, so from their books)
        assert sink.commands == 3 + 2 * 3 and sink.market_data == 3

    run(main())
    sub.wait_quiet(0.3)
    msgs = sub.by_channel()
    assert [json.loads(p) for p in msgs["orderbook:binance-usdm:C"]] == [
        orderbook_reference(json.loads(first[2]), 4), orderbook_reference(json.loads(second[1]), 4)]
    assert [json.loads(p) for p in msgs["orderbook:binance-usdm:D"]] == [
        orderbook_reference(json.loads(first[3]), 4)]
    sub.close()
    with server.client() as c:  # best bid/ask from the latest book, a snapshot too
        md = json.loads(c.check("GET", "market_data:C"))
    assert (md["bid"], md["ask"]) == ("100.5", "101.5")


def test_rolling_window_matches_brute_force() -> None:
    """Against a reference that keeps every trade: after each step the window holds the
    trades whose minute is among the last 60 (1 h span here) of the newest minute seen; a
    trade already outside the window when it arrives is ignored."""
    rng = random.Random(11)
    minute, n = 60_000, 60
    w = RollingWindow(span_ms=n * minute, bucket_ms=minute)
    kept: list[tuple[int, Decimal, Decimal]] = []
    head = -(1 << 62)
    late = 0
    now = 1_700_000_000_000
    for step in range(4000):
        now += rng.choice([0, 1_000, 15_000, 60_000, 600_000, 3_000_000])
        if rng.random() < 0.1:
            w.advance(now)
            head = max(head, now // minute)
        else:
            ts = now - (rng.randrange(0, 5_000_000) if rng.random() < 0.1 else 0)
            p = Decimal(rng.randrange(9_000, 11_000)) / 10
            q = Decimal(rng.randrange(1, 5_000)) / 1000
            w.add(ts, p, q)
            if ts // minute <= head - n:
                late += 1
            else:
                kept.append((ts, p, q))
                head = max(head, ts // minute)
        inside = [(p, q) for t, p, q in kept if t // minute > head - n]
        assert w.count == len(inside), step
        assert w.volume == sum((q for _, q in inside), Decimal(0)), step
        assert w.high == max((p for p, _ in inside), default=None), step
        assert w.low == min((p for p, _ in inside), default=None), step
    assert w.late == late > 0  # the scenario did exercise trades older than the window


def test_rolling_window_late_and_empty() -> None:
    w = RollingWindow()
    w.add(10 * 60_000, Decimal("5"), Decimal("1"))
    w.add(12 * 60_000, Decimal("7"), Decimal("1"))
    w.add(11 * 60_000 + 5, Decimal("9"), Decimal("2"))  # late, within the window
    assert (w.count, w.volume, w.high, w.low) == (3, Decimal("4"), Decimal("9"), Decimal("5"))
    w.add(-10 * 86_400_000, Decimal("1"), Decimal("1"))  # older than the window
    assert w.late == 1 and w.count == 3
    w.advance(12 * 60_000 + 86_400_000)
    assert (w.count, w.volume, w.high, w.low) == (0, Decimal(0), None, None)
    with pytest.raises(ValueError):
        RollingWindow(span_ms=90_000, bucket_ms=60_000)


# --------------------------------------------------------------------------- config


def cfg_error(*overrides: str) -> str:
    with pytest.raises(ConfigError) as e:
        load_config(None, env={}, overrides=["feeds.0.exchange=okx",
                                             "feeds.0.symbols=BTC-USDT-SWAP", *overrides])
    return str(e.value)


@pytest.mark.parametrize(("override", "expected"), [
    ("sinks.redis.url=http://127.0.0.1:6379",
     "sinks.redis.url (from override 'sinks.redis.url=http://127.0.0.1:6379'): URL "
     "'http://127.0.0.1:6379' must start with redis:// or rediss://"),
    ("sinks.redis.url=redis://127.0.0.1:99999/0", "sinks.redis.url (from override"),
    ("sinks.redis.url=redis://127.0.0.1:6379/zero", "the path must be a database number"),
    ("sinks.redis.url=redis:///0", "has no host"),
    ("sinks.redis.url=redis://127.0.0.1/0?ssl=true", "options after '?'"),
    ("sinks.redis.url=redis://bob@127.0.0.1/0", "a user name needs a password"),
    ("sinks.redis.trades_channel=trades:{sym}", "sinks.redis.trades_channel (from override "
     "'sinks.redis.trades_channel=trades:{sym}'): unknown placeholder {sym}"),
    ("sinks.redis.market_data_key=md:{symbol!r}", "sinks.redis.market_data_key"),
    ("sinks.redis.orderbook_channel=", "sinks.redis.orderbook_channel (from override "
     "'sinks.redis.orderbook_channel='): must not be empty"),
    ("sinks.redis.depth=0", "sinks.redis.depth (from override 'sinks.redis.depth=0'): "
     "must be > 0"),
    ("sinks.redis.ttl_s=-1", "sinks.redis.ttl_s"),
    ("sinks.redis.url=redis://:hunter2@127.0.0.1:0/0", "sinks.redis.url"),
])
def test_bad_config_names_the_key(override: str, expected: str) -> None:
    msg = cfg_error(override)
    assert msg.startswith("sinks.redis.") and expected in msg, msg
    if "hunter2" in override:
        assert "hunter2" not in msg.split("): ", 1)[1]


def test_config_builds_the_sink_and_masks_secrets(tmp_path: Path) -> None:
    path = tmp_path / "x.toml"
    path.write_text('[[feeds]]\nexchange = "okx"\nsymbols = ["BTC-USDT-SWAP"]\n'
                    '[sinks.redis]\nurl = "rediss://app:p%40ss@cache.internal:6380/2"\n'
                    'password = "override"\ndepth = 5\npublish_deltas = true\n'
                    'trades_channel = "t.{exchange}.{symbol}"\nttl_s = 60\npolicy = "lossy"\n')
    cfg = load_config(path, env={})
    assert cfg.sinks.redis is not None
    d = config_to_dict(cfg)["sinks"]["redis"]
    assert d["url"] == "rediss://app:***@cache.internal:6380/2" and d["password"] == "***"
    ((sink, spec),) = build_sinks(cfg.sinks)
    assert isinstance(sink, RedisSink) and spec.policy == "lossy"
    u = sink.url
    assert (u.host, u.port, u.db, u.username, u.password, u.tls) == (
        "cache.internal", 6380, 2, "app", "override", True)
    assert sink.depth == 5 and sink.publish_deltas and sink.ttl_s == 60
    assert sink.templates["trades_channel"] == "t.{exchange}.{symbol}"
    assert "override" not in repr(sink) and "p@ss" not in repr(u)
    env = {"XCOL_SINKS__REDIS__URL": "redis://127.0.0.1:6390/1"}
    cfg = load_config(path, env=env)
    assert cfg.sinks.redis is not None and cfg.sinks.redis.url == "redis://127.0.0.1:6390/1"


# --------------------------------------------------------------------------- the example


def test_example_consumer_prints_top_of_book(server: RedisServer) -> None:
    """examples/redis_consumer.py: the market_data key read at start, then live updates."""
    import sys

    async def publish(*recs: bytes) -> None:
        sink = RedisSink(url(server))
        await sink.open()
        await sink.write(*batch(*recs))
        await sink.close()

    asyncio.run(publish(rec_bbo("ETHUSDT", bid="3240.01", ask="3242.12", ts=1)))
    example = Path(__file__).resolve().parent.parent / "examples" / "redis_consumer.py"
    proc = subprocess.Popen([sys.executable, str(example), "--url", url(server), "--plain",
                             "--duration", "2.5", "--refresh", "0.2", "--levels", "2"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        time.sleep(1.2)
        asyncio.run(publish(rec_book("top", 3, 3, "BTCUSDT"),
                            rec_trade(1, "100.5", "0.25", 2, "BTCUSDT", side="sell")))
        out, err = proc.communicate(timeout=20)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    screens = out.decode().split("xcol top of book")
    assert "ETHUSDT" in screens[1] and "3240.01" in screens[1]  # from the key, at once
    last = screens[-1]
    eth = next(x for x in last.splitlines() if x.startswith("ETHUSDT"))
    assert eth.split()[1:7] == ["binance-usdm", "1.5", "3240.01", "3242.12", "2.5", "2.11"]
    btc = next(x for x in last.splitlines() if x.startswith("BTCUSDT "))
    assert "100.5" in btc and "sell" in btc
    assert "BTCUSDT binance-usdm  seq 9" in last
    ladder = [x.split() for x in last.split("seq 9", 1)[1].strip().splitlines()]
    assert ladder == [["102.5", "3.000"], ["101.5", "2.000"], ["-" * 22], ["1.000", "100.5"],
                      ["2.000", "99.5"]]
