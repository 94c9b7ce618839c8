"""PostgreSQL sink throughput: sustained rows/s through ``PostgresSink.write`` (batched COPY).

By default a throwaway cluster is created in a temporary directory (tests/srv_postgres.py:
initdb + pg_ctl on a free port, server defaults, fsync on) and removed afterwards; ``--dsn``
points at an existing server instead.  Records are either synthesized in the engine's exact
layout (``--mix``, default what the sink stores with its default config: BBO, trades and
``top`` books of 10 levels) or read from a JSONL file written by ``xcol demo --out``
(``--records``).  Batches are cut like the fan-out cuts them (``--batch-bytes``, default the
``realtime`` preset's 256 KiB) outside the timed region; each round writes every batch in
turn, one transaction each, as the sink's consumer task does.  Reported per round: rows/s
(wall), Python CPU per record (what the sink costs the process that also runs the hot path)
and the write latency percentiles.

``--compare`` also times the alternatives the sink's design was chosen against, into tables
of the same shape: ``json.loads`` + asyncpg ``copy_records_to_table`` (binary COPY),
``json.loads`` + text COPY rows built in Python, and raw JSON COPYed into a jsonb staging
table that the server splits with ``INSERT ... SELECT``.

    PYTHONPATH=. python bench/sink_postgres.py --rounds 5 --json pg.json
    PYTHONPATH=. python bench/sink_postgres.py --records /tmp/demo.jsonl --compare
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import os
import platform
import random
import statistics
import sys
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import AbstractContextManager, nullcontext
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
try:
    import xcol
except ImportError:  # not installed: use the checkout this script lives in
    sys.path.insert(0, str(REPO))
    import xcol

import asyncpg  # noqa: E402

from xcol.sinks.postgres import PostgresSink  # noqa: E402

TARGET_ROWS_PER_S = 100_000


# -- records ---------------------------------------------------------------------------------

from common import cpu_model, cut_batches  # noqa: E402


def _head(t: str, seq: int, line: int) -> str:
    return (f'{{"type":"{t}","exchange":"binance-usdm","symbol":"BTCUSDT","seq":{seq},'
            f'"ts_exchange":{1795260893000 + seq // 1000},'
            f'"ts_recv":{1795260893000000000 + seq * 997},"line":{line}')


def _levels(rng: random.Random, mid: int, n: int, side: int) -> str:
    return "[" + ",".join(f'["{(mid + side * (i + 1) * 10) / 100:.2f}",'
                          f'"{rng.randint(1, 30000) / 1000:.3f}"]' for i in range(n)) + "]"


def synth(n: int, mix: dict[str, int], seed: int = 1) -> list[bytes]:
    """``n`` records in the engine's layout, types drawn with weights ``mix``."""
    rng = random.Random(seed)
    kinds = rng.choices(list(mix), weights=list(mix.values()), k=n)
    out: list[bytes] = []
    mid = 6_180_020
    for i, k in enumerate(kinds):
        mid += rng.choice((-10, 0, 0, 10))
        seq = 5_123_107_856_333 + i
        if k == "bbo":
            r = (_head("bbo", seq, i & 1) + f',"bid":"{mid / 100:.2f}","bid_qty":'
                 f'"{rng.randint(1, 9000) / 1000:.3f}","ask":"{(mid + 10) / 100:.2f}",'
                 f'"ask_qty":"{rng.randint(1, 9000) / 1000:.3f}"}}')
        elif k == "trade":
            r = (_head("trade", seq, i & 1) + f',"id":{seq},"price":"{mid / 100:.2f}",'
                 f'"qty":"{rng.randint(1, 2000) / 1000:.3f}","side":'
                 f'"{rng.choice(("buy", "sell"))}"}}')
        elif k in ("top", "snapshot"):
            depth = 10 if k == "top" else 1000
            r = (_head(k, seq, 0 if k == "top" else -1) + f',"bids":{_levels(rng, mid, depth, -1)}'
                 f',"asks":{_levels(rng, mid + 10, depth, 1)}}}')
        elif k == "book":
            r = (_head("book", seq, 0) + f',"prev_seq":{seq - 1},"bids":'
                 f"{_levels(rng, mid, 30, -1)},\"asks\":{_levels(rng, mid + 10, 30, 1)}}}")
        else:
            raise ValueError(f"unknown record type {k!r} in --mix")
        out.append(r.encode() + b"\n")
    return out


def load_jsonl(path: Path, n: int) -> list[bytes]:
    """``n`` records from ``path``, repeated as needed."""
    lines = [x + b"\n" for x in path.read_bytes().splitlines() if x.strip()]
    if not lines:
        raise SystemExit(f"{path}: no records")
    return [lines[i % len(lines)] for i in range(n)]


cut = cut_batches


# -- the alternatives (--compare) --------------------------------------------------------------

_HEAD = ("exchange", "symbol", "seq", "ts_exchange", "ts_recv", "line")
_COLS = {
    "trades": (*_HEAD, "trade_id", "price", "qty", "side"),
    "bbo": (*_HEAD, "bid", "bid_qty", "ask", "ask_qty"),
    "book_snapshots": ("kind", *_HEAD, "bids", "asks"),
    "book_deltas": (*_HEAD, "prev_seq", "bids", "asks"),
}


def _parsed_rows(batch: bytes, deltas: bool) -> dict[str, list[tuple[Any, ...]]]:
    rows: dict[str, list[tuple[Any, ...]]] = {t: [] for t in _COLS}
    for rec in batch.splitlines():
        r = json.loads(rec)
        t = r["type"]
        if t == "book" and not deltas:
            continue
        h = (r["exchange"], r["symbol"], r["seq"], r["ts_exchange"], r["ts_recv"], r["line"])
        if t == "bbo":
            rows["bbo"].append((*h, r["bid"], r["bid_qty"], r["ask"], r["ask_qty"]))
        elif t == "trade":
            rows["trades"].append((*h, r["id"], r["price"], r["qty"], r["side"]))
        elif t == "book":
            rows["book_deltas"].append((*h, r.get("prev_seq"), r["bids"], r["asks"]))
        else:
            rows["book_snapshots"].append((t, *h, r["bids"], r["asks"]))
    return rows


async def alt_records(conn: Any, schema: str, batch: bytes, deltas: bool) -> None:
    """json.loads + binary COPY of Python tuples (asyncpg encodes numeric via Decimal)."""
    rows = _parsed_rows(batch, deltas)
    async with conn.transaction():
        for t, rs in rows.items():
            if rs:
                await conn.copy_records_to_table(t, schema_name=schema, columns=_COLS[t],
                                                 records=rs)


def _arr(levels: list[list[str]]) -> str:
    return "{" + ",".join(f"{{{p},{s}}}" for p, s in levels) + "}"


async def alt_text(conn: Any, schema: str, batch: bytes, deltas: bool) -> None:
    """json.loads + text COPY rows formatted in Python."""
    rows = _parsed_rows(batch, deltas)
    async with conn.transaction():
        for t, rs in rows.items():
            if not rs:
                continue
            lines = []
            for row in rs:
                cells = ["" if v is None else _arr(v) if isinstance(v, list) else str(v)
                         for v in row]
                lines.append("\t".join(cells))
            data = ("\n".join(lines) + "\n").encode()
            await conn.copy_to_table(t, schema_name=schema, columns=_COLS[t],
                                     source=memoryview(data), null="")


_H_SQL = ("v->>'exchange', v->>'symbol', (v->'seq')::bigint, (v->'ts_exchange')::bigint, "
          "(v->'ts_recv')::bigint, (v->'line')::smallint")


def _lv_sql(side: str) -> str:
    return f"translate(v->>'{side}', '[]\"', '{{}}')::numeric[]"


def staging_sql(schema: str, deltas: bool) -> str:
    """One statement that splits the staged JSON into the tables."""
    s = f'"{schema}"'
    book_type = "book" if deltas else "-"  # no record has type "-"
    return (
        f"WITH t AS (INSERT INTO {s}.trades SELECT {_H_SQL}, (v->'id')::bigint, "
        "(v->>'price')::numeric, (v->>'qty')::numeric, v->>'side' FROM stage "
        "WHERE v->>'type' = 'trade'), "
        f"b AS (INSERT INTO {s}.bbo SELECT {_H_SQL}, (v->>'bid')::numeric, "
        "(v->>'bid_qty')::numeric, (v->>'ask')::numeric, (v->>'ask_qty')::numeric FROM stage "
        "WHERE v->>'type' = 'bbo'), "
        f"n AS (INSERT INTO {s}.book_snapshots SELECT v->>'type', {_H_SQL}, {_lv_sql('bids')}, "
        f"{_lv_sql('asks')} FROM stage WHERE v->>'type' IN ('snapshot', 'top')) "
        f"INSERT INTO {s}.book_deltas SELECT {_H_SQL}, (v->'prev_seq')::bigint, "
        f"{_lv_sql('bids')}, {_lv_sql('asks')} FROM stage WHERE v->>'type' = '{book_type}'")


async def alt_staging(conn: Any, schema: str, batch: bytes, deltas: bool) -> None:
    """Raw JSON COPYed into a jsonb temp table, split by the server."""
    async with conn.transaction():
        await conn.copy_to_table("stage", source=memoryview(batch.replace(b"\\", b"\\\\")))
        await conn.execute(staging_sql(schema, deltas))


# -- running -----------------------------------------------------------------------------------

def _pct(xs: list[int], p: float) -> int:
    s = sorted(xs)
    return s[min(len(s) - 1, int(p / 100 * len(s)))] if s else 0


async def _timed(batches: list[tuple[bytes, int]],
                 write: Callable[[bytes, int], Awaitable[None]]) -> dict[str, float]:
    n = sum(k for _, k in batches)
    lat: list[int] = []
    c0, t0 = time.process_time(), time.perf_counter()
    for b, k in batches:
        w0 = time.perf_counter_ns()
        await write(b, k)
        lat.append(time.perf_counter_ns() - w0)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    return {"records": n, "batches": len(batches), "seconds": wall, "records_per_s": n / wall,
            "python_cpu_us_per_record": cpu * 1e6 / n,
            "write_ms_p50": _pct(lat, 50) / 1e6, "write_ms_p99": _pct(lat, 99) / 1e6}


async def run(args: argparse.Namespace, dsn: str) -> dict[str, Any]:
    mix = {k: int(v) for k, v in (x.split("=") for x in args.mix.split(","))}
    records = (load_jsonl(Path(args.records), args.n) if args.records
               else synth(args.n, mix, args.seed))
    batches = cut(records, args.batch_bytes)
    schema = f"bench_{os.getpid()}"
    sink = PostgresSink(dsn, schema=schema, book_deltas=args.book_deltas, name="bench")
    await sink.open()
    conn = await asyncpg.connect(dsn)
    server = await conn.fetchval("SHOW server_version")
    settings = {k: await conn.fetchval(f"SHOW {k}") for k in
                ("fsync", "synchronous_commit", "shared_buffers", "wal_level")}
    rounds: list[dict[str, float]] = []
    try:
        for i in range(args.warmup + args.rounds):
            res = await _timed(batches, sink.write)
            if i >= args.warmup:
                rounds.append(res)
                print(f"  sink round {len(rounds)}: {res['records_per_s']:>10,.0f} records/s, "
                      f"python {res['python_cpu_us_per_record']:.2f} us/record, write p50 "
                      f"{res['write_ms_p50']:.1f} ms p99 {res['write_ms_p99']:.1f} ms")
        stats = sink.stats()
        stored = sum(stats["rows"].values())
        compare: dict[str, Any] = {}
        if args.compare:
            compare = await _compare(conn, schema, batches, args)
    finally:
        await sink.close()
        await conn.execute(f'DROP SCHEMA "{schema}" CASCADE')
        await conn.close()
    med = statistics.median(r["records_per_s"] for r in rounds)
    # rows/s: records stored as rows (records skipped by config are not rows)
    row_share = stored / max(1, stats["records"])
    return {
        "bench": "sink_postgres",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "versions": {"python": platform.python_version(), "asyncpg": version("asyncpg"),
                     "postgresql": server, "xcol": getattr(xcol, "__version__", "?")},
        "server_settings": settings,
        "args": {k: v for k, v in vars(args).items() if k != "json"},
        "batches_per_round": len(batches),
        "avg_batch_records": args.n / len(batches),
        "book_deltas": args.book_deltas,
        "rounds": rounds,
        "median_records_per_s": med,
        "median_rows_per_s": med * row_share,
        "target_rows_per_s": TARGET_ROWS_PER_S,
        "sink_stats": stats,
        "compare": compare,
    }


async def _compare(conn: Any, schema: str, batches: list[tuple[bytes, int]],
                   args: argparse.Namespace) -> dict[str, Any]:
    await conn.execute("CREATE TEMP TABLE stage (v jsonb) ON COMMIT DELETE ROWS")
    alts: dict[str, Callable[[Any, str, bytes, bool], Awaitable[None]]] = {
        "copy_records_to_table": alt_records, "text_copy_parsed": alt_text,
        "jsonb_staging": alt_staging}
    out: dict[str, Any] = {}
    for name, fn in alts.items():
        async def write(b: bytes, k: int, fn: Any = fn) -> None:
            await fn(conn, schema, b, args.book_deltas)
        res = []
        for i in range(args.warmup + args.rounds):
            r = await _timed(batches, write)
            if i >= args.warmup:
                res.append(r)
        med = statistics.median(r["records_per_s"] for r in res)
        cpu = statistics.median(r["python_cpu_us_per_record"] for r in res)
        out[name] = {"median_records_per_s": med, "python_cpu_us_per_record": cpu,
                     "rounds": res}
        print(f"  {name:<22} {med:>10,.0f} records/s, python {cpu:.2f} us/record")
    return out


def machine() -> dict[str, Any]:
    """CPU, core count, interpreter and platform."""
    cpu = cpu_model()
    return {"cpu": cpu, "cores": os.cpu_count(), "python": sys.version.split()[0],
            "platform": platform.platform(),
            "loadavg": os.getloadavg() if hasattr(os, "getloadavg") else None}


def _cluster(settings: dict[str, str]) -> AbstractContextManager[Any]:
    """A throwaway cluster from tests/srv_postgres.py (loaded by path: tests/ is not a
    package)."""
    spec = importlib.util.spec_from_file_location("srv_postgres",
                                                  REPO / "tests" / "srv_postgres.py")
    if spec is None or spec.loader is None:
        raise SystemExit("tests/srv_postgres.py not found")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    bin_dir = mod.find_pg_bin()
    if bin_dir is None:
        raise SystemExit("PostgreSQL server binaries not found (/usr/lib/postgresql/*/bin, "
                         "$XCOL_PG_BIN); pass --dsn to use a running server")
    cm: AbstractContextManager[Any] = mod.pg_cluster(bin_dir, settings)
    return cm


def _iter_settings(text: str) -> Iterator[tuple[str, str]]:
    for item in filter(None, text.split(",")):
        k, _, v = item.partition("=")
        yield k.strip(), v.strip()


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    ap.add_argument("--dsn", help="use this server instead of a throwaway cluster")
    ap.add_argument("--server-settings", default="",
                    help="throwaway cluster: extra settings, e.g. synchronous_commit=off")
    ap.add_argument("--records", help="JSONL of records (xcol demo --out); default: synthesize")
    ap.add_argument("--mix", default="bbo=75,trade=20,top=5",
                    help="synthetic type weights (bbo, trade, top, snapshot, book)")
    ap.add_argument("-n", type=int, default=200_000, help="records per round")
    ap.add_argument("--batch-bytes", type=int, default=256 * 1024,
                    help="bytes per write (fan-out batch_bytes; realtime preset 256 KiB)")
    ap.add_argument("--book-deltas", action="store_true", help="store book records too")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--compare", action="store_true", help="also time the alternatives")
    ap.add_argument("--no-uvloop", action="store_true")
    ap.add_argument("--json", metavar="PATH", help="write the results as JSON")
    args = ap.parse_args(argv)

    ctx: AbstractContextManager[Any] = (nullcontext() if args.dsn
                                        else _cluster(dict(_iter_settings(args.server_settings))))
    with ctx as cluster:
        dsn = args.dsn or cluster.dsn
        coro = run(args, dsn)
        if args.no_uvloop:
            res = asyncio.run(coro)
        else:
            import uvloop
            res = uvloop.run(coro)
    ok = res["median_rows_per_s"] >= TARGET_ROWS_PER_S
    print(f"sink_postgres: median {res['median_records_per_s']:,.0f} records/s = "
          f"{res['median_rows_per_s']:,.0f} rows/s ({res['avg_batch_records']:.0f} records "
          f"per transaction; target {TARGET_ROWS_PER_S:,} rows/s: {'met' if ok else 'NOT met'})"
          f"; 2 shared cores, numbers are noisy")
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
