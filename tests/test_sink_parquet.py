"""The Parquet archive sink on real files and a real S3 endpoint (moto server).

* a collector run against the simulator writes JSONL and Parquet side by side: every record
  of the JSONL file is a row of the right Parquet file, field for field, in order, and the
  sink's counters reconcile;
* rotation by hour (injected wall clock) and by size, row groups, late records;
* a crash (SIGKILL of a process that flushed, then wrote more) leaves complete files plus
  journals; a new sink rebuilds every flushed row from them, a torn journal tail included;
* bad records are counted and skipped, the rest is written;
* S3: uploads verified by size/MD5/ETag, multipart, and a spool written while S3 was down
  is uploaded by the next sink instance once S3 is up.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from srv_s3 import MotoS3, aws_env, free_port, have_moto

from xcol.app import Collector
from xcol.config import ConfigError, load_config
from xcol.net.backoff import Backoff
from xcol.sim.server import SimConfig, Simulator, line_configs
from xcol.sinks import build_sinks
from xcol.sinks.parquet import CHANNELS, HOUR_NS, SCHEMAS, ParquetSink

ROOT = Path(__file__).resolve().parent.parent
H0 = 1_795_248_000 * 10**9  # 2026-11-21 08:00:00 UTC, an hour boundary
TYPE_OF = {"book": "book", "top": "top", "bbo": "bbo", "trades": "trade"}

needs_moto = pytest.mark.skipif(not have_moto(), reason="moto[server] is not installed")


# --------------------------------------------------------------------------- helpers


class Clock:
    """An injectable wall clock (ns)."""

    def __init__(self, now: int) -> None:
        self.now = now

    def __call__(self) -> int:
        return self.now


def rec(type_: str, symbol: str, seq: int, ts_recv: int, exchange: str = "binance-usdm",
        **fields: Any) -> bytes:
    """One record in the engine's layout."""
    head: dict[str, Any] = {"type": type_, "exchange": exchange, "symbol": symbol, "seq": seq,
                            "ts_exchange": ts_recv // 10**6 - 1, "ts_recv": ts_recv,
                            "line": seq % 3 - 1}
    if type_ == "bbo":
        head.update(bid=f"{seq}.10", bid_qty="1.500", ask=f"{seq}.20", ask_qty="0.010")
    elif type_ == "trade":
        head.update(id=seq, price=f"{seq}.5", qty="0.001", side="buy" if seq % 2 else None)
    elif type_ in ("book", "snapshot", "top"):
        if type_ == "book":
            head["prev_seq"] = seq - 1
        head.update(bids=[[f"{seq}.00", "1.000"], ["99.90", "0.000"]],
                    asks=[[f"{seq}.10", "2.5"]])
    head.update(fields)
    return json.dumps(head, separators=(",", ":")).encode() + b"\n"


def as_records(path: Path) -> list[dict[str, Any]]:
    """A Parquet file's rows as the records they came from."""
    t = pq.read_table(path)
    channel = t.schema.metadata[b"xcol.channel"].decode()
    t = t.set_column(3, "ts_exchange", t["ts_exchange"].cast(pa.int64()))
    t = t.set_column(4, "ts_recv", t["ts_recv"].cast(pa.int64()))
    out = []
    for row in t.to_pylist():
        r: dict[str, Any] = {"type": TYPE_OF[channel]}
        if channel == "book":
            r["type"] = "snapshot" if row.pop("snapshot") else "book"
            if row["prev_seq"] is None:
                del row["prev_seq"]
        for side in ("bids", "asks"):
            if side in row:
                row[side] = [[lv["price"], lv["size"]] for lv in row[side]]
        r.update(row)
        out.append(r)
    return out


def files(root: Path, pattern: str) -> list[Path]:
    return sorted(p for p in root.rglob(pattern) if ".spool" not in p.parts)


def read_rows(paths: list[Path]) -> int:
    return sum(pq.read_metadata(p).num_rows for p in paths)


# --------------------------------------------------------------------------- a real run


async def _collect(tmp: Path) -> tuple[Collector, ParquetSink, Path]:
    sim = Simulator(SimConfig(exchange="binance-usdm", source=[], symbols=2, rate=600.0,
                              lines=line_configs(2, delay_ms="0,2")))
    await sim.start()
    try:
        out = tmp / "out.jsonl"
        syms = ",".join(sim.instruments)
        cfg = load_config(None, env={}, overrides=[
            "feeds.0.exchange=binance-usdm", f"feeds.0.symbols={syms}",
            f"feeds.0.endpoints=ws://127.0.0.1:{sim.ports[0]},ws://127.0.0.1:{sim.ports[1]}",
            f"feeds.0.rest=http://127.0.0.1:{sim.ports[0]}", "runtime.http=",
            f"sinks.jsonl.path={out}", f"sinks.parquet.dir={tmp / 'pq'}",
            "sinks.parquet.row_group_rows=500",
        ])
        col = Collector(cfg)
        await col.start()
        await asyncio.sleep(3.0)
        sim.pause()
        await asyncio.sleep(0.3)
        report = await col.stop()
        assert report.complete
        (sink,) = [s for s in col.fanout.sinks if isinstance(s, ParquetSink)]
        assert report.published["parquet"] == report.published["jsonl"]
        return col, sink, out
    finally:
        await sim.stop()


def test_collector_run_reconciles_with_jsonl(tmp_path: Path) -> None:
    col, sink, out = asyncio.run(_collect(tmp_path))
    expected: dict[tuple[str, str, str], list[dict[str, Any]]] = defaultdict(list)
    for line in out.read_bytes().splitlines():
        r = json.loads(line)
        expected[(CHANNELS[r["type"]], r["exchange"], r["symbol"])].append(r)
    assert len(expected) >= 5  # two instruments × (book, bbo, trades), at least
    root = tmp_path / "pq"
    got: dict[tuple[str, str, str], list[dict[str, Any]]] = defaultdict(list)
    per_file = []
    for p in files(root, "*.parquet"):
        exchange, channel, symbol = p.relative_to(root).parts[:3]
        assert pq.read_schema(p) == SCHEMAS[channel]
        assert pq.ParquetFile(p).metadata.row_group(0).column(0).compression == "ZSTD"
        recs = as_records(p)
        per_file.append((recs[0]["ts_recv"], (channel, exchange, symbol), recs))
    for _, key, recs in sorted(per_file, key=lambda x: x[0]):
        got[key] += recs
    assert set(got) == set(expected)
    for key in expected:
        assert len(got[key]) == len(expected[key]), key
        assert got[key] == expected[key], key  # exact values, receive order
    n = sum(len(v) for v in expected.values())
    st = sink.stats()
    assert st["records"] == st["rows"] == st["rows_written"] == n
    assert st["bad_records"] == 0
    assert st["files_written"] == len(per_file) and st["files_open"] == 0
    assert col.fanout.stats()["parquet"].published == n
    assert not files(root, "*.tmp") and not files(root, "*.wal")


# --------------------------------------------------------------------------- rotation


def test_rotation_by_hour_and_size(tmp_path: Path) -> None:
    clock = Clock(H0 + 1800 * 10**9)
    sink = ParquetSink(tmp_path, max_rows=100, row_group_rows=30, close_grace_s=5.0,
                       clock=clock)
    ts = H0 + 10**9
    batch = b"".join(rec("bbo", "AAA", 1000 + i, ts + i) for i in range(250))
    batch += b"".join(rec("trade", "AAA", 50 + i, ts + i) for i in range(10))
    batch += b"".join(rec("bbo", "BBB", 7000 + i, H0 + HOUR_NS + i) for i in range(20))

    async def main() -> None:
        await sink.open()
        await sink.write(batch, 280)
        await sink.flush()
        # size rotation: two full files of AAA bbo are closed already
        assert [read_rows([p]) for p in sink.closed] == [100, 100]
        # hour H0 is over (+ grace) and AAA got nothing since: its files close; BBB stays
        clock.now = H0 + HOUR_NS + 6 * 10**9
        await sink.flush()
        assert sink.open_files == 1
        assert len(files(tmp_path, "*.parquet.wal")) == 1
        # a late record of hour H0 opens a new file for that hour
        await sink.write(rec("bbo", "AAA", 2000, ts + 999), 1)
        await sink.close()

    asyncio.run(main())
    assert not files(tmp_path, "*.tmp") and not files(tmp_path, "*.wal")
    day = "2026-11-21"
    bbo_a = files(tmp_path / "binance-usdm" / "bbo" / "AAA" / day, "*.parquet")
    assert [p.name for p in bbo_a] == ["08-1000.parquet", "08-1100.parquet", "08-1200.parquet",
                                       "08-2000.parquet"]
    assert [read_rows([p]) for p in bbo_a] == [100, 100, 50, 1]
    assert pq.read_metadata(bbo_a[0]).num_row_groups == 4  # 30 + 30 + 30 + 10
    seqs = [r["seq"] for p in bbo_a for r in as_records(p)]
    assert seqs == [*range(1000, 1250), 2000]
    (trades,) = files(tmp_path / "binance-usdm" / "trades" / "AAA", "*.parquet")
    assert trades.name == "08-50.parquet" and read_rows([trades]) == 10
    (bbo_b,) = files(tmp_path / "binance-usdm" / "bbo" / "BBB", "*.parquet")
    assert bbo_b.relative_to(tmp_path).as_posix().endswith(f"{day}/09-7000.parquet")
    st = sink.stats()
    assert st["records"] == st["rows"] == st["rows_written"] == 281
    assert st["files_written"] == 6


def test_rotation_by_bytes(tmp_path: Path) -> None:
    sink = ParquetSink(tmp_path, max_rows=0, max_bytes=20_000)

    async def main() -> None:
        await sink.open()
        for k in range(10):
            await sink.write(b"".join(rec("book", "AAA", 100 * k + i, H0 + k * 1000 + i)
                                      for i in range(50)), 50)
            await sink.flush()
        await sink.close()

    asyncio.run(main())
    out = files(tmp_path, "*.parquet")
    assert len(out) > 2
    assert read_rows(out) == 500
    seqs = sorted(r["seq"] for p in out for r in as_records(p))
    assert seqs == sorted(100 * k + i for k in range(10) for i in range(50))


def test_top_and_snapshot_records(tmp_path: Path) -> None:
    sink = ParquetSink(tmp_path)
    batch = (rec("snapshot", "AAA", 10, H0 + 1) + rec("book", "AAA", 11, H0 + 2)
             + rec("top", "AAA", 11, H0 + 3) + rec("book", "AAA", 12, H0 + 4, bids=[]))

    async def main() -> None:
        await sink.open()
        await sink.write(batch, 4)
        await sink.close()

    asyncio.run(main())
    (book,) = files(tmp_path / "binance-usdm" / "book", "*.parquet")
    (top,) = files(tmp_path / "binance-usdm" / "top", "*.parquet")
    lines = [json.loads(x) for x in batch.splitlines()]
    assert as_records(book) == [lines[0], lines[1], lines[3]]
    assert as_records(top) == [lines[2]]


# --------------------------------------------------------------------------- crash


CRASH_SCRIPT = r"""
import asyncio, json, sys
sys.path.insert(0, sys.argv[2])
from test_sink_parquet import rec, H0
from xcol.sinks.parquet import ParquetSink

async def main():
    sink = ParquetSink(sys.argv[1], max_rows=100, row_group_rows=20)
    await sink.open()
    await sink.write(b"".join(rec("bbo", "AAA", 1000 + i, H0 + i) for i in range(250)), 250)
    await sink.write(b"".join(rec("book", "AAA", 10 + i, H0 + i) for i in range(30)), 30)
    await sink.flush()
    await sink.write(b"".join(rec("bbo", "AAA", 2000 + i, H0 + 500 + i) for i in range(40)), 40)
    print("ready", flush=True)
    await asyncio.sleep(60)

asyncio.run(main())
"""


def test_crash_leaves_complete_files_and_journals(tmp_path: Path) -> None:
    root = tmp_path / "pq"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-c", CRASH_SCRIPT, str(root),
                             str(Path(__file__).parent)], stdout=subprocess.PIPE, env=env)
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == b"ready"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    finals = files(root, "*.parquet")
    assert [read_rows([p]) for p in finals] == [100, 100]  # the size-rotated files
    wals = files(root, "*.parquet.wal")
    assert len(wals) == 2  # bbo (50 flushed rows) and book (30): detectable
    tmps = files(root, "*.parquet.tmp")  # both wrote a row group (>= 20 rows), no footer
    assert len(tmps) == 2
    for tmp in tmps:
        with pytest.raises(pa.ArrowInvalid):
            pq.read_metadata(tmp)
    # a torn tail: the crash hit a journal write
    book_wal = next(w for w in wals if "/book/" in w.as_posix())
    with open(book_wal, "ab") as fh:
        fh.write(b"\xff\xff\xff\xff\x40\x00\x00\x00garbage")

    sink = ParquetSink(root)

    async def main() -> None:
        await sink.open()
        await sink.close()

    asyncio.run(main())
    assert sink.recovered_files == 2 and sink.recovered_rows == 80
    assert not files(root, "*.tmp") and not files(root, "*.wal")
    bbo = files(root / "binance-usdm" / "bbo", "*.parquet")
    assert [r["seq"] for p in bbo for r in as_records(p)] == list(range(1000, 1250))
    (book,) = files(root / "binance-usdm" / "book", "*.parquet")
    expect = [json.loads(rec("book", "AAA", 10 + i, H0 + i)) for i in range(30)]
    assert as_records(book) == expect


# --------------------------------------------------------------------------- bad input


def test_bad_records_are_counted_and_skipped(tmp_path: Path) -> None:
    good = [rec("bbo", "AAA", 1, H0 + 1), rec("book", "AAA", 2, H0 + 2),
            rec("trade", "AAA", 3, H0 + 3)]
    bad = [b'{"type":"bbo","exchange":"x",\n',
           rec("nope", "AAA", 4, H0 + 4),
           b'{"type":"bbo","exchange":"binance-usdm","symbol":"AAA","ts_recv":5}\n',
           rec("book", "AAA", 6, H0 + 6, bids=[["1"]]),
           rec("top", "AAA", 7, H0 + 7, asks=[["1", None]]),
           rec("bbo", "AAA", 8, H0 + 8).replace(b'"seq":8', b'"seq":"eight"')]
    batch = b"".join([good[0], bad[0], bad[1], good[1], bad[2], bad[3], bad[4], bad[5],
                      good[2]])
    sink = ParquetSink(tmp_path)

    async def main() -> None:
        await sink.open()
        await sink.write(batch, 9)
        await sink.close()

    asyncio.run(main())
    st = sink.stats()
    assert st["bad_records"] == 6 and st["rows"] == 3 and st["records"] == 9
    got = [r for p in files(tmp_path, "*.parquet") for r in as_records(p)]
    assert sorted(got, key=lambda r: r["seq"]) == [json.loads(g) for g in good]


# --------------------------------------------------------------------------- config


def test_config_builds_the_sink(tmp_path: Path) -> None:
    cfg = load_config(None, env={}, overrides=[
        "feeds.0.exchange=binance-usdm", "feeds.0.symbols=BTCUSDT",
        f"sinks.parquet.dir={tmp_path}", "sinks.parquet.s3_bucket=arch",
        "sinks.parquet.s3_endpoint=http://127.0.0.1:9000", "sinks.parquet.s3_prefix=/x/y/",
        "sinks.parquet.max_rows=5"])
    ((sink, spec),) = build_sinks(cfg.sinks)
    assert isinstance(sink, ParquetSink)
    assert sink.dir == tmp_path and sink.max_rows == 5 and sink.s3_prefix == "x/y/"
    assert sink.s3_endpoint == "http://127.0.0.1:9000"
    assert spec.flush_interval_s == 10.0  # the archival preset by default
    with pytest.raises(ConfigError, match=r"^sinks\.parquet\.s3_prefix.*needs s3_bucket"):
        load_config(None, env={}, overrides=[
            "feeds.0.exchange=binance-usdm", "feeds.0.symbols=BTCUSDT",
            "sinks.parquet.s3_prefix=x"])
    with pytest.raises(ConfigError, match=r"^sinks\.parquet\.s3_endpoint"):
        load_config(None, env={}, overrides=[
            "feeds.0.exchange=binance-usdm", "feeds.0.symbols=BTCUSDT",
            "sinks.parquet.s3_bucket=a", "sinks.parquet.s3_endpoint=localhost:9000"])


# --------------------------------------------------------------------------- S3


@pytest.fixture
def aws(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for k, v in aws_env(str(tmp_path)).items():
        monkeypatch.setenv(k, v)


@pytest.fixture
def s3(aws: None) -> Any:
    if not have_moto():
        pytest.skip("moto[server] is not installed")
    with MotoS3() as srv:
        yield srv


def _records(n_per: int) -> bytes:
    out = []
    for sym in ("AAA", "BBB"):
        for i in range(n_per):
            out.append(rec("bbo", sym, 100 + i, H0 + i))
            out.append(rec("trade", sym, 500 + i, H0 + i))
    return b"".join(out)


async def _wait(cond: Any, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.05)


@needs_moto
def test_upload_to_s3(tmp_path: Path, s3: MotoS3) -> None:
    client = s3.client()
    client.create_bucket(Bucket="xcol-archive")
    root = tmp_path / "pq"
    sink = ParquetSink(root, max_rows=150, s3_bucket="xcol-archive", s3_endpoint=s3.endpoint,
                       s3_prefix="arch", keep_local=True, s3_close_timeout_s=30.0)

    async def main() -> None:
        await sink.open()
        await sink.write(_records(200), 800)
        await sink.close()

    asyncio.run(main())
    st = sink.stats()
    local = {f"arch/{p.relative_to(root).as_posix()}": p for p in files(root, "*.parquet")}
    assert len(local) == st["files_written"] == 8  # 2 symbols × 2 channels × (150 + 50)
    assert st["uploads_ok"] == 8 and st["uploads_pending"] == 0 and st["uploads_failed"] == 0
    assert st["upload_bytes"] == st["bytes_written"]
    listed = client.list_objects_v2(Bucket="xcol-archive")["Contents"]
    assert {o["Key"]: o["Size"] for o in listed} == {
        k: p.stat().st_size for k, p in local.items()}
    key, path = sorted(local.items())[0]
    body = client.get_object(Bucket="xcol-archive", Key=key)["Body"].read()
    assert body == path.read_bytes()

    # keep_local off: a second sink uploads and removes its files; re-uploading a file
    # that is already there (same bytes) is recognized, not duplicated
    root2 = tmp_path / "pq2"
    sink2 = ParquetSink(root2, s3_bucket="xcol-archive", s3_endpoint=s3.endpoint,
                        s3_prefix="two/", s3_close_timeout_s=30.0)

    async def main2() -> None:
        await sink2.open()
        await sink2.write(_records(10), 40)
        await sink2.close()

    asyncio.run(main2())
    assert not files(root2, "*.parquet") and sink2.stats()["uploads_pending"] == 0
    keys = [o["Key"] for o in client.list_objects_v2(Bucket="xcol-archive", Prefix="two/")
            ["Contents"]]
    assert sorted(keys) == sorted(f"two/{p.relative_to(root2).as_posix()}"
                                  for p in sink2.closed)


@needs_moto
def test_multipart_upload_verifies_the_etag(tmp_path: Path, s3: MotoS3) -> None:
    from xcol.sinks.parquet import _Spool

    client = s3.client()
    client.create_bucket(Bucket="xcol-archive")
    root = tmp_path / "pq"
    big = root / "x" / "big.parquet"
    big.parent.mkdir(parents=True)
    big.write_bytes(os.urandom(11 * 1024 * 1024))
    _Spool(root).add("x/big.parquet", big.stat().st_size, 0)
    mib = 1024 * 1024
    sink = ParquetSink(root, s3_bucket="xcol-archive", s3_endpoint=s3.endpoint,
                       multipart_threshold=5 * mib, multipart_chunk=5 * mib,
                       s3_close_timeout_s=30.0)

    async def main() -> None:
        await sink.open()
        await sink.close()

    asyncio.run(main())
    head = client.head_object(Bucket="xcol-archive", Key="x/big.parquet")
    assert head["ContentLength"] == 11 * mib and head["ETag"].strip('"').endswith("-3")
    assert not big.exists() and sink.stats()["uploads_ok"] == 1


@needs_moto
def test_spool_survives_restart_while_s3_is_down(tmp_path: Path, aws: None) -> None:
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    root = tmp_path / "pq"
    kw: dict[str, Any] = {"s3_bucket": "xcol-archive", "s3_endpoint": endpoint,
                          "s3_backoff": Backoff(0.05, 0.2), "s3_close_timeout_s": 30.0}
    sink = ParquetSink(root, max_rows=150, **kw)

    async def down() -> None:
        await sink.open()
        await sink.write(_records(200), 800)
        await sink.flush()
        await _wait(lambda: sink.uploads.failed >= 1)
        assert not sink.healthy  # local writes fine, uploads failing: /ready says so
        await sink.write(b"".join(rec("bbo", "CCC", i, H0 + i) for i in range(5)), 5)
        await sink.close()  # closes the rest; S3 down: returns without waiting

    t0 = time.monotonic()
    asyncio.run(down())
    assert time.monotonic() - t0 < 10
    st = sink.stats()
    assert st["uploads_ok"] == 0 and st["uploads_failed"] >= 1
    assert st["uploads_pending"] == st["files_written"] == 9
    sizes = {f"{p.relative_to(root).as_posix()}": p.stat().st_size
             for p in files(root, "*.parquet")}
    assert len(sizes) == 9

    with MotoS3(port) as srv:
        client = srv.client()
        client.create_bucket(Bucket="xcol-archive")
        sink2 = ParquetSink(root, **kw)

        async def up() -> None:
            await sink2.open()
            await _wait(lambda: sink2.stats()["uploads_pending"] == 0)
            assert sink2.healthy
            await sink2.close()

        asyncio.run(up())
        listed = client.list_objects_v2(Bucket="xcol-archive")["Contents"]
        assert {o["Key"]: o["Size"] for o in listed} == sizes
        assert sink2.stats()["uploads_ok"] == 9
        assert not files(root, "*.parquet")


@needs_moto
def test_moto_killed_mid_upload_then_back(tmp_path: Path, aws: None) -> None:
    """S3 dies (SIGKILL) in the middle of a multipart upload: the failure is counted, the
    file stays in the spool, and once a server is back the same sink uploads it whole."""
    from xcol.sinks.parquet import _Spool

    mib = 1024 * 1024
    port = free_port()
    root = tmp_path / "pq"
    big = root / "x" / "big.parquet"
    big.parent.mkdir(parents=True)
    data = os.urandom(80 * mib)
    big.write_bytes(data)
    _Spool(root).add("x/big.parquet", len(data), 0)
    sink = ParquetSink(root, s3_bucket="xcol-archive", s3_endpoint=f"http://127.0.0.1:{port}",
                       multipart_threshold=5 * mib, multipart_chunk=5 * mib,
                       s3_backoff=Backoff(0.05, 0.3), s3_close_timeout_s=60.0)
    first = MotoS3(port)
    first.start()
    second = MotoS3(port)
    try:
        client = first.client()
        client.create_bucket(Bucket="xcol-archive")

        async def main() -> None:
            await sink.open()
            await _wait(lambda: bool(client.list_multipart_uploads(
                Bucket="xcol-archive").get("Uploads")))
            assert first.proc is not None
            first.proc.kill()  # no goodbye: connections reset mid-part
            first.proc.wait()
            await _wait(lambda: sink.stats()["uploads_failed"] >= 1)
            st = sink.stats()
            assert st["uploads_ok"] == 0 and st["uploads_pending"] == 1
            assert big.exists() and not sink.healthy
            second.start()  # a fresh, empty server on the same port
            second.client().create_bucket(Bucket="xcol-archive")
            await _wait(lambda: sink.stats()["uploads_pending"] == 0, timeout=60)
            # the uploader clears its failing flag just after the last marker goes
            await _wait(lambda: sink.healthy, timeout=5)
            await sink.close()

        asyncio.run(main())
        st = sink.stats()
        assert st["uploads_ok"] == 1 and st["uploads_failed"] >= 1
        assert not big.exists()  # keep_local off: removed once verified
        c2 = second.client()
        head = c2.head_object(Bucket="xcol-archive", Key="x/big.parquet")
        assert head["ContentLength"] == len(data) and head["ETag"].strip('"').endswith("-16")
        body = c2.get_object(Bucket="xcol-archive", Key="x/big.parquet")["Body"].read()
        assert body == data
        # no half upload left behind on the server that finished it
        assert not c2.list_multipart_uploads(Bucket="xcol-archive").get("Uploads")
    finally:
        first.stop()
        second.stop()
