"""The PostgreSQL sink against a real server: a throwaway cluster in a temporary directory.

1. A collector run against the simulator writes JSONL and PostgreSQL side by side: row
   counts per table reconcile with the records offered and the sink's counters, and every
   price, size and book level reads back as the exchange's exact text.
2. A table held in ACCESS EXCLUSIVE mode for 5 s from another connection: the sink's COPY
   waits on the lock, the small blocking queue fills and pauses reading, nothing is dropped
   and every row is there after the release.
3. Migrations: idempotent on reopen, safe when two sinks open at once, and a newer schema
   version is refused with a clear error.
4. The server stopped: the sink turns unhealthy, the fan-out retries it, and after the
   restart every record is stored once.
Plus: every record type and malformed records (careful path, ``rejects``), and a COMMIT whose
acknowledgement was lost is not written twice on retry.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from srv_postgres import PgCluster, find_pg_bin, pg_cluster

from xcol.app import Collector
from xcol.config import load_config
from xcol.fanout import FanOut, QueueSpec
from xcol.net.backoff import Backoff
from xcol.sim.server import SimConfig, Simulator, line_configs
from xcol.sinks import build_sinks
from xcol.sinks.postgres import LATEST_VERSION, PostgresSink, SchemaVersionError

PG_BIN = find_pg_bin()
pytestmark = pytest.mark.skipif(
    PG_BIN is None, reason="PostgreSQL server binaries (initdb, pg_ctl) not found under "
    "/usr/lib/postgresql/*/bin (Debian package postgresql) or $XCOL_PG_BIN")


@pytest.fixture(scope="module")
def pg() -> Iterator[PgCluster]:
    assert PG_BIN is not None
    # fsync off: the tests check behaviour, not durability, and it keeps them quick
    with pg_cluster(PG_BIN, {"fsync": "off"}) as c:
        yield c


# -- records in the engine's exact layout ---------------------------------------------------

def _head(t: str, seq: int, line: int = 0, sym: str = "BTCUSDT") -> str:
    return (f'{{"type":"{t}","exchange":"binance-usdm","symbol":"{sym}","seq":{seq},'
            f'"ts_exchange":{1795260893000 + seq},"ts_recv":{1795260893000000000 + seq},'
            f'"line":{line}')


def _lv(levels: list[tuple[str, str]]) -> str:
    return "[" + ",".join(f'["{p}","{s}"]' for p, s in levels) + "]"


def bbo(seq: int) -> bytes:
    return (_head("bbo", seq) + f',"bid":"61800.{seq % 100:02d}","bid_qty":"2.900",'
            f'"ask":"61800.30","ask_qty":"0.001"}}\n').encode()


def trade(seq: int, side: str | None = "buy") -> bytes:
    s = "null" if side is None else f'"{side}"'
    return (_head("trade", seq) + f',"id":{seq},"price":"61800.10","qty":"0.{seq:03d}",'
            f'"side":{s}}}\n').encode()


def book(t: str, seq: int, n: int = 3, prev: int | None = None) -> bytes:
    bids = [(f"6180{i}.10", f"{i}.000") for i in range(n)]
    asks = [(f"6190{i}.00", "0.000") for i in range(n)]
    p = f',"prev_seq":{prev}' if prev is not None else ""
    line = -1 if t == "snapshot" else 0
    return (_head(t, seq, line) + p + f',"bids":{_lv(bids)},"asks":{_lv(asks)}}}\n').encode()


def mixed(start: int, n: int) -> bytes:
    out = []
    for i in range(start, start + n):
        k = i % 10
        out.append(trade(i) if k < 3 else book("top", i, 10) if k == 3 else bbo(i))
    return b"".join(out)


async def count_rows(dsn: str, schema: str) -> dict[str, int]:
    conn = await asyncpg.connect(dsn)
    try:
        return {t: await conn.fetchval(f'SELECT count(*) FROM "{schema}"."{t}"')
                for t in ("trades", "bbo", "book_snapshots", "book_deltas", "rejects")}
    finally:
        await conn.close()


def _levels_text(levels: list[list[str]]) -> str:
    return "{" + ",".join(f"{{{p},{s}}}" for p, s in levels) + "}"


def fast_backoff() -> Backoff:
    return Backoff(base_s=0.05, cap_s=0.3, reset_after_s=60.0)


# -- 1. a collector run: counts reconcile, prices exact ------------------------------------

async def _collector_run(tmp: Path, dsn: str, schema: str, extra: list[str],
                         during: Any = None, seconds: float = 3.0) -> tuple[Collector, Path]:
    sim = Simulator(SimConfig(exchange="binance-usdm", source=[], symbols=1, rate=400.0,
                              lines=line_configs(2, delay_ms="0,3")))
    await sim.start()
    out = tmp / "out.jsonl"
    cfg = load_config(None, env={}, overrides=[
        "feeds.0.exchange=binance-usdm", f"feeds.0.symbols={sim.instruments[0]}",
        f"feeds.0.endpoints=ws://127.0.0.1:{sim.ports[0]},ws://127.0.0.1:{sim.ports[1]}",
        f"feeds.0.rest=http://127.0.0.1:{sim.ports[0]}", "runtime.http=",
        f"sinks.jsonl.path={out}", "sinks.jsonl.policy=blocking",
        f"sinks.postgres.dsn={dsn}", f"sinks.postgres.schema={schema}",
        "sinks.postgres.policy=blocking", *extra,
    ])
    col = Collector(cfg)
    try:
        await col.start()
        if during is not None:
            await during(col)
        await asyncio.sleep(seconds)
        sim.pause()
        await asyncio.sleep(0.3)
        report = await col.stop()
        assert report.complete, report
    finally:
        await sim.stop()
    return col, out


def _pg_sink(col: Collector) -> PostgresSink:
    (sink,) = [s for s in col.fanout.sinks if isinstance(s, PostgresSink)]
    return sink


def test_collector_run_reconciles_and_prices_are_exact(pg: PgCluster, tmp_path: Path) -> None:
    col, out = asyncio.run(_collector_run(tmp_path, pg.dsn, "run1",
                                          ["sinks.postgres.book_deltas=true"]))
    recs = [json.loads(x) for x in out.read_text().splitlines()]
    by_type = Counter(r["type"] for r in recs)
    assert by_type["bbo"] > 100 and by_type["trade"] > 10 and by_type["book"] > 10
    assert by_type["snapshot"] >= 1

    st = col.fanout.stats()["postgres"]
    assert st.dropped_total == 0 and st.queued == 0
    assert st.offered == st.published == len(recs)
    sink = _pg_sink(col)
    assert sink.records == len(recs) and sink.skipped == 0 and sink.rejected == 0
    assert sink.rows == {"trades": by_type["trade"], "bbo": by_type["bbo"],
                         "book_snapshots": by_type["snapshot"] + by_type["top"],
                         "book_deltas": by_type["book"]}
    assert sink.failures == 0 and sink.write_ns.total_count == sink.batches > 0
    rows = asyncio.run(count_rows(pg.dsn, "run1"))
    assert rows == {**sink.rows, "rejects": 0}

    async def fetch() -> dict[str, list[Any]]:
        conn = await asyncpg.connect(pg.dsn)
        try:
            return {
                "bbo": await conn.fetch(
                    "SELECT exchange, symbol, seq, ts_exchange, ts_recv, line, bid::text, "
                    "bid_qty::text, ask::text, ask_qty::text FROM run1.bbo"),
                "trades": await conn.fetch(
                    "SELECT trade_id, seq, price::text, qty::text, side, line FROM run1.trades"),
                "snap": await conn.fetch(
                    "SELECT kind, seq, line, bids::text, asks::text FROM run1.book_snapshots"),
                "deltas": await conn.fetch(
                    "SELECT seq, prev_seq, bids::text, asks::text FROM run1.book_deltas"),
            }
        finally:
            await conn.close()

    db = asyncio.run(fetch())
    want_bbo = {r["seq"]: r for r in recs if r["type"] == "bbo"}
    assert len(db["bbo"]) == len(want_bbo)
    for row in db["bbo"]:
        r = want_bbo[row["seq"]]
        assert tuple(row) == (r["exchange"], r["symbol"], r["seq"], r["ts_exchange"],
                              r["ts_recv"], r["line"], r["bid"], r["bid_qty"], r["ask"],
                              r["ask_qty"])
    want_tr = {r["id"]: r for r in recs if r["type"] == "trade"}
    for row in db["trades"]:
        r = want_tr[row["trade_id"]]
        assert tuple(row) == (r["id"], r["seq"], r["price"], r["qty"], r["side"], r["line"])
    want_snap = {(r["type"], r["seq"]): r for r in recs if r["type"] in ("snapshot", "top")}
    assert len(db["snap"]) == len(want_snap)
    for row in db["snap"]:
        r = want_snap[(row["kind"], row["seq"])]
        assert row["line"] == r["line"]
        assert row["bids"] == _levels_text(r["bids"]) and row["asks"] == _levels_text(r["asks"])
    want_delta = {r["seq"]: r for r in recs if r["type"] == "book"}
    for row in db["deltas"]:
        r = want_delta[row["seq"]]
        assert row["prev_seq"] == r.get("prev_seq")
        assert row["bids"] == _levels_text(r["bids"]) and row["asks"] == _levels_text(r["asks"])


# -- 2. a locked table: backpressure, nothing lost ---------------------------------------------

def test_locked_table_backpressures_without_loss(pg: PgCluster, tmp_path: Path) -> None:
    seen: dict[str, Any] = {}

    async def lock_bbo(col: Collector) -> None:
        await asyncio.sleep(0.8)  # records flowing
        locker = await asyncpg.connect(pg.dsn)
        watcher = await asyncpg.connect(pg.dsn)
        try:
            tr = locker.transaction()
            await tr.start()
            await locker.execute("LOCK TABLE lock1.bbo IN ACCESS EXCLUSIVE MODE")
            t0 = time.monotonic()
            published_at_lock = col.fanout.stats()["postgres"].published
            waited = paused = False
            while time.monotonic() - t0 < 5.0:
                await asyncio.sleep(0.1)
                paused = paused or col.fanout.paused
                waiting = await watcher.fetchval(
                    "SELECT count(*) FROM pg_stat_activity WHERE application_name = "
                    "'xcol-postgres' AND wait_event_type = 'Lock'")
                waited = waited or waiting > 0
            st = col.fanout.stats()["postgres"]
            seen.update(waited=waited, paused=paused, holding=st.holding_pause,
                        queued=st.queued, progress=st.published - published_at_lock,
                        healthy=st.healthy)
            await tr.commit()
            await asyncio.sleep(1.0)
            seen["resumed"] = not col.fanout.paused
        finally:
            await locker.close()
            await watcher.close()

    col, out = asyncio.run(_collector_run(
        tmp_path, pg.dsn, "lock1",
        ["sinks.postgres.queue_capacity=100", "sinks.postgres.low_watermark=20"],
        during=lock_bbo, seconds=0.5))
    assert seen["waited"], "the sink's COPY never waited on the lock"
    assert seen["paused"] and seen["holding"], seen
    assert seen["queued"] >= 100 and seen["healthy"], seen  # a slow database is not a failure
    assert seen["progress"] <= 2 * 100, seen  # at most the write in flight got through
    assert seen["resumed"], seen
    st = col.fanout.stats()["postgres"]
    assert st.pauses >= 1 and st.paused_s >= 3.0
    assert st.dropped_total == 0 and st.queued == 0 and st.offered == st.published
    recs = [json.loads(x) for x in out.read_text().splitlines()]
    assert st.published == len(recs)
    by_type = Counter(r["type"] for r in recs)
    sink = _pg_sink(col)
    assert sink.failures == 0 and sink.skipped == by_type["book"]
    rows = asyncio.run(count_rows(pg.dsn, "lock1"))
    assert rows == {"trades": by_type["trade"], "bbo": by_type["bbo"],
                    "book_snapshots": by_type["snapshot"] + by_type["top"],
                    "book_deltas": 0, "rejects": 0}
    assert sink.write_ns.max() >= 3_000_000_000  # one write waited out the lock


# -- 3. migrations -------------------------------------------------------------------------------

def test_migration_idempotent_concurrent_and_refuses_newer(pg: PgCluster) -> None:
    async def main() -> None:
        a = PostgresSink(pg.dsn, schema="mig", table_prefix="x_")
        b = PostgresSink(pg.dsn, schema="mig", table_prefix="x_")
        await asyncio.gather(a.open(), b.open())  # racing: the advisory lock serialises
        assert a.schema_version == b.schema_version == LATEST_VERSION
        await a.write(mixed(0, 50), 50)
        await a.close()
        await b.close()
        for _ in range(2):  # reopen: nothing to do, data untouched
            c = PostgresSink(pg.dsn, schema="mig", table_prefix="x_")
            await c.open()
            assert c.schema_version == LATEST_VERSION
            await c.close()
        conn = await asyncpg.connect(pg.dsn)
        try:
            versions = await conn.fetch('SELECT version FROM mig."x_xcol_schema_version"')
            assert [v["version"] for v in versions] == list(range(1, LATEST_VERSION + 1))
            assert await conn.fetchval('SELECT count(*) FROM mig."x_trades"') == 15
            await conn.execute('INSERT INTO mig."x_xcol_schema_version" (version, description)'
                               " VALUES ($1, 'from the future')", LATEST_VERSION + 1)
        finally:
            await conn.close()
        d = PostgresSink(pg.dsn, schema="mig", table_prefix="x_")
        with pytest.raises(SchemaVersionError, match=rf"schema 'mig' \(table prefix 'x_'\) is "
                           rf"at version {LATEST_VERSION + 1}, newer than this xcol build "
                           rf"writes \({LATEST_VERSION}\)"):
            await d.open()
        assert not d.healthy and d.last_error and "SchemaVersionError" in d.last_error
        # another prefix in the same schema is a separate set of tables and versions
        e = PostgresSink(pg.dsn, schema="mig")
        await e.open()
        assert e.schema_version == LATEST_VERSION
        await e.close()

    asyncio.run(main())


# -- 4. server down: unhealthy, retried, recovers -------------------------------------------------

def test_server_down_unhealthy_retried_then_recovers(pg: PgCluster) -> None:
    async def main() -> None:
        sink = PostgresSink(pg.dsn, schema="outage", connect_timeout_s=2.0)
        fan = FanOut(backoff=fast_backoff)
        fan.add_sink(sink, QueueSpec(policy="blocking", capacity=100_000))
        await fan.start()
        assert sink.healthy
        n = 0
        for _ in range(5):
            fan.offer(mixed(n, 100), 100)
            n += 100
        while fan.stats()["postgres"].published < n:
            await asyncio.sleep(0.02)
        await asyncio.to_thread(pg.stop)
        try:
            for _ in range(20):  # accepted while the server is down
                fan.offer(mixed(n, 100), 100)
                n += 100
                await asyncio.sleep(0.05)
            t0 = time.monotonic()
            while fan.stats()["postgres"].failures < 3 and time.monotonic() - t0 < 10:
                await asyncio.sleep(0.05)
            st = fan.stats()["postgres"]
            assert st.failures >= 3 and not st.healthy and not sink.healthy
            assert st.queued > 0 and st.dropped_total == 0
            assert sink.last_error is not None
        finally:
            await asyncio.to_thread(pg.start)
        t0 = time.monotonic()
        while fan.stats()["postgres"].published < n and time.monotonic() - t0 < 20:
            await asyncio.sleep(0.05)
        st = fan.stats()["postgres"]
        assert st.published == st.offered == n and st.healthy and sink.healthy
        report = await fan.drain_and_close(5.0)
        assert report.complete
        assert sink.records == n and sink.retries >= 1 and sink.duplicates_avoided == 0
        rows = await count_rows(pg.dsn, "outage")
        assert rows == {"trades": 3 * n // 10, "bbo": 6 * n // 10, "book_snapshots": n // 10,
                        "book_deltas": 0, "rejects": 0}

    asyncio.run(main())


# -- every record type, malformed records, lost COMMIT acknowledgement ----------------------------

def test_every_type_and_malformed_records(pg: PgCluster) -> None:
    good = [bbo(1), trade(2, None), trade(3, "sell"), book("snapshot", 4, 0),
            book("top", 5, 10), book("book", 6, 2, prev=5), book("book", 7, 1)]
    bad = [b'{"type":"bbo","exchange":"binance-usdm","symbol":"BTCUSDT","seq":8,'
           b'"ts_exchange":1,"ts_recv":2,"line":0,"bid":"NaN","bid_qty":"1","ask":"2",'
           b'"ask_qty":"3"}\n',
           b'{"type":"funding","exchange":"x","symbol":"y"}\n',
           b'not json at all\n',
           b'{"type":"trade","exchange":"binance-usdm","symbol":"BTCUSDT","seq":9,'
           b'"ts_exchange":1,"ts_recv":2,"line":0,"id":99999999999999999999,"price":"1",'
           b'"qty":"1","side":"buy"}\n']

    async def main() -> None:
        sink = PostgresSink(pg.dsn, schema="types", book_deltas=True)
        await sink.open()
        try:
            batch = b"".join(good)
            await sink.write(batch, len(good))
            assert sink.careful_batches == 0  # the canonical layout takes the fast path
            await sink.write(b"".join(good[:3] + bad), 3 + len(bad))
            assert sink.careful_batches == 1 and sink.rejected == len(bad)
            # a value the fast path lets through but the server refuses: careful path
            huge = trade(10).replace(b'"seq":10', b'"seq":9999999999999999999')
            await sink.write(huge, 1)
            assert sink.careful_batches == 2 and sink.rejected == len(bad) + 1
            assert sink.records == sum(sink.rows.values()) + sink.skipped + sink.rejected
            assert sink.rows == {"trades": 4, "bbo": 2, "book_snapshots": 2, "book_deltas": 2}
            conn = sink._conn
            snap = await conn.fetchrow("SELECT bids::text, asks::text, line FROM "
                                       "types.book_snapshots WHERE kind = 'snapshot'")
            assert tuple(snap) == ("{}", "{}", -1)
            top = await conn.fetchrow("SELECT bids[1][1]::text AS p, bids[10][2]::text AS q "
                                      "FROM types.book_snapshots WHERE kind = 'top'")
            assert (top["p"], top["q"]) == ("61800.10", "9.000")
            sides = await conn.fetch("SELECT side FROM types.trades ORDER BY seq")
            assert [r["side"] for r in sides] == [None, None, "sell", "sell"]
            prev = await conn.fetch("SELECT prev_seq FROM types.book_deltas ORDER BY seq")
            assert [r["prev_seq"] for r in prev] == [5, None]
            rej = await conn.fetch("SELECT reason, record FROM types.rejects ORDER BY at")
            reasons = " | ".join(r["reason"] for r in rej)
            assert "bad bid: 'NaN'" in reasons and "unknown record type 'funding'" in reasons
            assert "not JSON" in reasons and "bad id" in reasons and "bad seq" in reasons
            assert {bytes(r["record"]) + b"\n" for r in rej} == {*bad, huge}

            # COMMIT reached the server, its acknowledgement did not: the retry finds the
            # batch's marker and does not write it twice.
            real = sink._commit

            async def commit_then_lose_ack(conn: Any, batch: bytes, plan: Any,
                                           batch_no: int) -> None:
                await real(conn, batch, plan, batch_no)
                raise ConnectionResetError("connection lost after COMMIT")

            sink._commit = commit_then_lose_ack  # type: ignore[method-assign]
            again = mixed(100, 20)
            with pytest.raises(ConnectionResetError):
                await sink.write(again, 20)
            sink._commit = real  # type: ignore[method-assign]
            before = dict(sink.rows)
            await sink.write(again, 20)
            assert sink.retries == 1 and sink.duplicates_avoided == 1
            assert sink.rows["trades"] == before["trades"] + 6
            assert await conn.fetchval("SELECT count(*) FROM types.trades") == 10
        finally:
            await sink.close()

    asyncio.run(main())


def test_book_deltas_off_are_skipped_and_counted(pg: PgCluster) -> None:
    async def main() -> None:
        sink = PostgresSink(pg.dsn, schema="nodelta")
        await sink.open()
        batch = b"".join([bbo(1), book("book", 2, 5, prev=1), book("book", 3, 5, prev=2)])
        await sink.write(batch, 3)
        await sink.close()
        assert (sink.rows["bbo"], sink.rows["book_deltas"], sink.skipped) == (1, 0, 2)
        assert sink.careful_batches == 0
        rows = await count_rows(pg.dsn, "nodelta")
        assert rows["bbo"] == 1 and rows["book_deltas"] == 0

    asyncio.run(main())


def test_config_builds_the_sink(tmp_path: Path) -> None:
    cfg = load_config(None, env={}, overrides=[
        "feeds.0.exchange=binance-usdm", "feeds.0.symbols=BTCUSDT",
        "sinks.postgres.dsn=postgresql://u:secret@db.example:5433/md",
        "sinks.postgres.schema=md", "sinks.postgres.table_prefix=bn_",
        "sinks.postgres.statement_timeout_s=5", "sinks.postgres.book_deltas=true",
        "sinks.postgres.queue_capacity=1000", "sinks.postgres.preset=archival"])
    ((sink, spec),) = build_sinks(cfg.sinks)
    assert isinstance(sink, PostgresSink)
    assert (sink.dsn, sink.schema, sink.table_prefix, sink.statement_timeout_s,
            sink.book_deltas) == ("postgresql://u:secret@db.example:5433/md", "md", "bn_",
                                  5.0, True)
    assert sink.table("trades") == '"md"."bn_trades"'
    assert spec.capacity == 1000 and spec.linger_s == 2.0
    assert not sink.healthy


def test_large_batch_is_parsed_in_pieces(pg: PgCluster) -> None:
    async def main() -> None:
        sink = PostgresSink(pg.dsn, schema="large")
        await sink.open()
        try:
            big = mixed(0, 5000)
            assert len(big) > 4 * 256 * 1024
            await sink.write(big, 5000)
            assert sink.careful_batches == 0
            assert sink.rows == {"trades": 1500, "bbo": 3000, "book_snapshots": 500,
                                 "book_deltas": 0}
            # one bad record in the middle: its piece is parsed the careful way
            bad = mixed(5000, 2500) + b'{"type":"bbo","broken":true}\n' + mixed(7500, 2500)
            await sink.write(bad, 5001)
            assert sink.careful_batches == 1 and sink.rejected == 1
            assert sink.rows == {"trades": 3000, "bbo": 6000, "book_snapshots": 1000,
                                 "book_deltas": 0}
            assert sink.records == 10001
        finally:
            await sink.close()
        rows = await count_rows(pg.dsn, "large")
        assert rows == {"trades": 3000, "bbo": 6000, "book_snapshots": 1000, "book_deltas": 0,
                        "rejects": 1}

    asyncio.run(main())


def test_batch_the_server_refuses_twice_is_quarantined(pg: PgCluster,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    import re

    import xcol.sinks.postgres as pgmod

    # A validation gap (simulated: any text passes as a number) must not wedge the sink.
    monkeypatch.setattr(pgmod, "_NUM_RE", re.compile(r".+"))
    odd = bbo(2).replace(b'"ask":"61800.30"', b'"ask":"1.2.3"')

    async def main() -> None:
        sink = PostgresSink(pg.dsn, schema="quarantine")
        await sink.open()
        try:
            await sink.write(bbo(1) + odd + trade(3), 3)
            assert (sink.quarantined_batches, sink.careful_batches, sink.rejected) == (1, 1, 3)
            assert sink.records == 3 and sum(sink.rows.values()) == 0
            rej = await sink._conn.fetch("SELECT reason, record FROM quarantine.rejects")
            assert len(rej) == 3
            assert all(r["reason"].startswith("batch refused by the server: "
                                              "InvalidTextRepresentationError") for r in rej)
            assert {bytes(r["record"]) + b"\n" for r in rej} == {bbo(1), odd, trade(3)}
        finally:
            await sink.close()

    asyncio.run(main())
