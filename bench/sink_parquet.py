"""Sustained rows/s of the Parquet sink (parse, route, journal, row groups, close).

Records: by default synthesized with the engine's exact layout and a real run's mix (what
``xcol demo`` writes for USD-M BTCUSDT: ~76 % bbo, ~15 % trades, ~8 % book deltas of
1-60 levels, one snapshot of 1,000 levels per instrument), spread over ``--instruments``
symbols with ``ts_recv`` inside one hour; or ``--records PATH``, a JSONL file from
``xcol demo --out PATH`` (its records as they are).  They are joined into batches of
``--batch-bytes`` (the fan-out's write size) outside the timed region.

A round: a fresh directory, ``open()``, every batch through ``write()``, a ``flush()``
every ``--flush-every`` batches, ``close()`` (footers, fsync, rename); rows/s is the
round's rows over its wall time, and ``cpu`` the same over the process CPU time (steadier
on a shared machine).  Meanwhile a task on the event loop sleeps 1 ms in a loop and the
lateness of its wake-ups is reported: the sink's work runs on its own thread and pyarrow
releases the GIL, so the loop (which reads the sockets) should stay responsive.  One
untimed warm-up round, then ``--rounds``; medians reported.

``--parsers`` adds the parse-only comparison that chose the parser: pyarrow.json.read_json
over a whole batch vs ``json.loads`` per record into Python columns.

    PYTHONPATH=. python bench/sink_parquet.py --rounds 5 --json /tmp/parquet.json
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import io
import json
import os
import platform
import random
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
try:
    import xcol  # noqa: F401
except ImportError:  # not installed: use the checkout this script lives in
    sys.path.insert(0, str(REPO))

import pyarrow as pa  # noqa: E402
import pyarrow.json as pj  # noqa: E402

from xcol.sinks.parquet import _PARSE_OPTIONS, ParquetSink  # noqa: E402

HOUR0 = 1_795_248_000 * 10**9


from common import cpu_model, cut_batches  # noqa: E402


def synth(n: int, instruments: int, seed: int = 1) -> list[bytes]:
    """``n`` records in the engine's layout with a real run's type mix."""
    rng = random.Random(seed)
    out: list[bytes] = []
    seq = {f"SYM{i}USDT": 5_000_000_000 + i * 10**9 for i in range(instruments)}
    syms = list(seq)
    for s in syms:
        lv = [[f"{60000 - k * 0.1:.2f}", f"{rng.random() * 5:.3f}"] for k in range(1000)]
        out.append(_rec("snapshot", s, seq[s], 0, bids=lv, asks=lv))
    tid = 1
    for i in range(n - len(syms)):
        s = syms[i % instruments]
        ts = HOUR0 + (i * 3_000_000_000_000) // max(1, n)  # spread over 50 min
        x = rng.random()
        if x < 0.76:
            seq[s] += 1
            out.append(_rec("bbo", s, seq[s], ts, bid=f"{61800 + rng.randrange(100) / 10:.2f}",
                            bid_qty=f"{rng.random() * 20:.3f}",
                            ask=f"{61800.1 + rng.randrange(100) / 10:.2f}",
                            ask_qty=f"{rng.random() * 2:.3f}"))
        elif x < 0.92:
            tid += 1
            out.append(_rec("trade", s, tid, ts, id=tid,
                            price=f"{61800 + rng.randrange(100) / 10:.2f}",
                            qty=f"{rng.random():.3f}",
                            side=rng.choice(("buy", "sell"))))
        else:
            prev = seq[s]
            seq[s] += rng.randrange(1, 50)

            def side() -> list[list[str]]:
                return [[f"{61800 + rng.randrange(-3000, 3000) / 10:.2f}",
                         f"{rng.random() * 3:.3f}" if rng.random() > 0.3 else "0.000"]
                        for _ in range(rng.randrange(1, 30))]

            out.append(_rec("book", s, seq[s], ts, prev_seq=prev, bids=side(), asks=side()))
    return out


def _rec(type_: str, symbol: str, seq: int, ts: int, **fields: Any) -> bytes:
    head: dict[str, Any] = {"type": type_, "exchange": "binance-usdm", "symbol": symbol,
                            "seq": seq, "ts_exchange": (ts or HOUR0) // 10**6,
                            "ts_recv": ts or HOUR0, "line": -1 if type_ == "snapshot" else 0}
    head.update(fields)
    return json.dumps(head, separators=(",", ":")).encode() + b"\n"


batches = cut_batches


async def one_round(work: list[tuple[bytes, int]], flush_every: int, root: Path,
                    row_group_rows: int) -> dict[str, Any]:
    sink = ParquetSink(root, row_group_rows=row_group_rows)
    lags: list[float] = []
    done = asyncio.Event()

    async def ticker() -> None:
        # How late a 1 ms sleep wakes while the sink works: the event loop must stay free.
        while not done.is_set():
            t = time.perf_counter()
            await asyncio.sleep(0.001)
            lags.append(time.perf_counter() - t - 0.001)

    tick = asyncio.create_task(ticker())
    t0 = time.perf_counter()
    c0 = time.process_time()
    await sink.open()
    for i, (b, n) in enumerate(work, 1):
        await sink.write(b, n)
        if i % flush_every == 0:
            await sink.flush()
    await sink.close()
    wall = time.perf_counter() - t0
    cpu = time.process_time() - c0
    done.set()
    await tick
    lags.sort()
    st = sink.stats()
    return {"wall_s": wall, "cpu_s": cpu, "rows": st["rows_written"],
            "files": st["files_written"], "bytes": st["bytes_written"],
            "journal_bytes": st["journal_bytes"], "bad": st["bad_records"],
            "loop_lag_ms_p99": lags[int(len(lags) * 0.99)] * 1e3 if lags else 0.0,
            "loop_lag_ms_max": lags[-1] * 1e3 if lags else 0.0}


async def idle_lag(seconds: float = 1.0) -> tuple[float, float]:
    """The same 1 ms sleep loop with nothing else running: (p99, max) lateness in ms."""
    lags: list[float] = []
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        t = time.perf_counter()
        await asyncio.sleep(0.001)
        lags.append(time.perf_counter() - t - 0.001)
    lags.sort()
    return lags[int(len(lags) * 0.99)] * 1e3, lags[-1] * 1e3


def parsers(work: list[tuple[bytes, int]], rounds: int) -> dict[str, float]:
    """Parse-only rows/s (CPU time, best of ``rounds``)."""
    def arrow() -> None:
        for b, _ in work:
            ro = pj.ReadOptions(use_threads=False, block_size=len(b) + 1)
            pj.read_json(io.BytesIO(b), read_options=ro, parse_options=_PARSE_OPTIONS)

    def loads() -> None:
        for b, _ in work:
            cols: dict[str, dict[str, list[Any]]] = {}
            for line in b.split(b"\n"):
                if not line:
                    continue
                r = json.loads(line)
                c = cols.get(r["type"])
                if c is None:
                    cols[r["type"]] = c = {k: [] for k in r}
                for k, v in c.items():
                    v.append(r.get(k))
            for c in cols.values():
                for v in c.values():
                    pa.array(v)

    n = sum(k for _, k in work)
    out = {}
    for name, fn in (("read_json_batch", arrow), ("json_loads_per_record", loads)):
        best = float("inf")
        for _ in range(rounds):
            c0 = time.process_time()
            fn()
            best = min(best, time.process_time() - c0)
        out[name] = n / best
    return out


def machine() -> dict[str, Any]:
    cpu = cpu_model()
    return {"cpu": cpu, "cores": os.cpu_count(),
            "python": f"{platform.python_implementation()} {platform.python_version()}",
            "platform": platform.platform(), "pyarrow": version("pyarrow")}


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--records", metavar="PATH", help="JSONL records (xcol demo --out)")
    ap.add_argument("-n", type=int, default=300_000, help="synthesized records per round")
    ap.add_argument("--instruments", type=int, default=4)
    ap.add_argument("--batch-bytes", type=int, default=1 << 20)
    ap.add_argument("--flush-every", type=int, default=10, help="batches between flushes")
    ap.add_argument("--row-group-rows", type=int, default=100_000)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--parsers", action="store_true", help="add the parser comparison")
    ap.add_argument("--dir", help="where rounds write (default: a temp dir)")
    ap.add_argument("--gc", action="store_true", help="do not gc.freeze() the prepared data")
    ap.add_argument("--json", metavar="PATH", help="write the results as JSON")
    args = ap.parse_args(argv)

    if args.records:
        records = Path(args.records).read_bytes().splitlines(keepends=True)
        source = args.records
    else:
        records = synth(args.n, args.instruments)
        source = f"synthetic: {args.n} records, {args.instruments} instruments"
    work = batches(records, args.batch_bytes)
    n = len(records)
    json_bytes = sum(len(r) for r in records)
    base = Path(args.dir) if args.dir else Path(tempfile.mkdtemp(prefix="xcol-bench-pq-"))
    results = []
    if not args.gc:
        # As the collector's runtime does after warm-up (runtime.gc.mode = "freeze"): the
        # prepared records are never scanned again, so a collection triggered on the sink's
        # thread does not hold the GIL for a walk over them.
        gc.collect()
        gc.freeze()
    idle_p99, idle_max = asyncio.run(idle_lag())
    try:
        for i in range(args.rounds + 1):
            root = base / f"round{i}"
            r = asyncio.run(one_round(work, args.flush_every, root, args.row_group_rows))
            shutil.rmtree(root, ignore_errors=True)
            assert r["rows"] == n and r["bad"] == 0, r
            if i:  # round 0 is the warm-up
                results.append(r)
    finally:
        if not args.dir:
            shutil.rmtree(base, ignore_errors=True)
    wall = statistics.median(r["wall_s"] for r in results)
    cpu = statistics.median(r["cpu_s"] for r in results)
    last = results[-1]
    report: dict[str, Any] = {
        "bench": "sink_parquet", "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(), "source": source, "records": n, "json_bytes": json_bytes,
        "batches": len(work), "batch_bytes": args.batch_bytes,
        "flush_every": args.flush_every, "rounds": args.rounds, "gc_freeze": not args.gc,
        "rows_per_s": n / wall, "rows_per_cpu_s": n / cpu,
        "wall_s": [r["wall_s"] for r in results], "cpu_s": [r["cpu_s"] for r in results],
        "files": last["files"], "parquet_bytes": last["bytes"],
        "journal_bytes": last["journal_bytes"],
        "parquet_bytes_per_row": last["bytes"] / n, "json_to_parquet_ratio":
            json_bytes / max(1, last["bytes"]),
        "loop_lag_ms_p99": statistics.median(r["loop_lag_ms_p99"] for r in results),
        "loop_lag_ms_max": max(r["loop_lag_ms_max"] for r in results),
        "idle_loop_lag_ms_p99": idle_p99, "idle_loop_lag_ms_max": idle_max,
    }
    if args.parsers:
        report["parse_rows_per_cpu_s"] = parsers(work, 3)
    print(f"{source}; {len(work)} batches of <= {args.batch_bytes} B, flush every "
          f"{args.flush_every}; median of {args.rounds} rounds")
    print(f"  rows/s (wall) {report['rows_per_s']:>12,.0f}")
    print(f"  rows/s (cpu)  {report['rows_per_cpu_s']:>12,.0f}")
    print(f"  files {last['files']}, parquet {last['bytes']:,} B "
          f"({report['parquet_bytes_per_row']:.1f} B/row, JSON/Parquet "
          f"{report['json_to_parquet_ratio']:.1f}x), journal {last['journal_bytes']:,} B")
    print(f"  event-loop lag of a 1 ms sleep meanwhile: p99 {report['loop_lag_ms_p99']:.2f} ms, "
          f"max {report['loop_lag_ms_max']:.2f} ms (idle loop: p99 {idle_p99:.2f} ms, "
          f"max {idle_max:.2f} ms)")
    if args.parsers:
        for k, v in report["parse_rows_per_cpu_s"].items():
            print(f"  parse only, {k:<22} {v:>12,.0f} rows/cpu-s")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
