"""Shared-memory ring: writer records/s (target >= 5 M/s) and reader records/s.

Records are the engine's own output for the real USD-M BTCUSDT capture
(``$XCOL_CORPUS/binance/usdm-btcusdt-20240808.gz``, every frame from the REST snapshot on,
fed through ``Engine.feed_on`` / ``take_output``): snapshot, book, bbo and trade records as
the fan-out hands them to sinks.  Without the corpus, records with the same schema are
synthesized (``--synthetic`` forces it).  Everything is prepared before timing.

Workloads, each one untimed warm-up round then ``--rounds`` timed rounds (median reported):

* ``mix/256k``: all records, joined into batches of up to ``--batch-bytes`` (256 KiB, the
  ``realtime`` preset's write size), through ``RingWriter.write`` (the C copy loop);
* ``bbo/256k``: only the bbo records (about 210 bytes each), same batching;
* ``mix/frame``: the engine's per-frame batches (one or two records each) unjoined: the
  per-call floor;
* ``sink``: ``await ShmSink.write(batch, n)`` on asyncio for the 256 KiB batches (timing,
  counters, HDR record per call included);
* ``reader``: ``Reader.read_batch(4096)`` draining a ring that holds the whole round (one
  ``bytes`` object per record: this is what a Python consumer pays);
* ``concurrent``: a reader in another process follows the ring while the writer runs the
  mix rounds; it reports what it read, lost and overran (the writer never waits).

Usage::

    python bench/sink_shm.py                     # prints a table
    python bench/sink_shm.py --rounds 20 --json shm.json

The machine has 2 cores shared with other work: expect noise of 10-30 % between runs.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import gzip
import json
import multiprocessing as mp
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
try:
    import xcol
except ImportError:  # not installed: use the checkout this script lives in
    sys.path.insert(0, str(REPO))
    import xcol

from xcol._fast.engine import Engine  # noqa: E402
from xcol._fast.shm import RingWriter  # noqa: E402
from xcol.shm import Reader  # noqa: E402
from xcol.sinks.shm import ShmSink  # noqa: E402

TARGET_WRITER = 5_000_000


# --------------------------------------------------------------------------- records


from common import cpu_model  # noqa: E402


def corpus_root() -> Path:
    env = os.environ.get("XCOL_CORPUS")
    return Path(env) if env else REPO.parent / "shared" / "corpus"


def engine_batches(path: Path) -> list[tuple[bytes, int]]:
    """Per-frame record batches of the engine over one Binance USD-M capture."""
    with gzip.open(path, "rb") as fh:
        lines = [ln.rstrip(b"\n").split(b" ", 1) for ln in fh if ln.strip()]
    snap_at = next(i for i, (_, m) in enumerate(lines) if m.startswith(b'{"lastUpdateId"'))
    snap = lines[snap_at][1]
    last_id = json.loads(snap)["lastUpdateId"]
    e = Engine("binance-usdm")
    e.add_instrument("BTCUSDT", 2, 3)
    if e.feed_snapshot("BTCUSDT", snap) != 7:
        raise SystemExit("the capture's snapshot did not load")
    out: list[tuple[bytes, int]] = []
    data, n = e.take_output()
    if data:
        out.append((data, n))
    for i, (ts, msg) in enumerate(lines):
        if i == snap_at:
            continue
        if b"depthUpdate" in msg[:80]:
            if json.loads(msg)["data"]["u"] < last_id:
                continue
        elif i < snap_at:
            continue
        e.feed_on(0, msg, rx=i * 1000, rx_wall=int(ts))
        data, n = e.take_output()
        if data:
            out.append((data, n))
    return out


def synthetic_batches(n: int) -> list[tuple[bytes, int]]:
    """``n`` records with the engine's schema (70 % bbo, 20 % trade, 10 % book)."""
    out = []
    for i in range(n):
        head = (b'"exchange":"binance-usdm","symbol":"BTCUSDT","seq":%d,"ts_exchange":%d,'
                b'"ts_recv":%d,"line":0' % (5_123_107_852_948 + i, 1_723_161_256_000 + i,
                                           1_723_161_256_000_000_000 + i))
        k = i % 10
        if k < 7:
            rec = (b'{"type":"bbo",' + head + b',"bid":"61800.20","bid_qty":"2.862",'
                   b'"ask":"61800.30","ask_qty":"1.135"}')
        elif k < 9:
            rec = (b'{"type":"trade",' + head + b',"id":%d,"price":"61800.20","qty":"0.004",'
                   b'"side":"buy"}' % i)
        else:
            lv = b",".join(b'["6180%d.10","0.%03d"]' % (j % 10, j) for j in range(12))
            rec = b'{"type":"book",' + head + b',"bids":[' + lv + b'],"asks":[' + lv + b"]}"
        out.append((rec + b"\n", 1))
    return out


def join(batches: list[tuple[bytes, int]], max_bytes: int) -> list[tuple[bytes, int]]:
    """Join per-frame batches into writes of up to ``max_bytes``, as the fan-out does."""
    out: list[tuple[bytes, int]] = []
    parts: list[bytes] = []
    size = count = 0
    for data, n in batches:
        if parts and size + len(data) > max_bytes:
            out.append((b"".join(parts), count))
            parts, size, count = [], 0, 0
        parts.append(data)
        size += len(data)
        count += n
    if parts:
        out.append((b"".join(parts), count))
    return out


# --------------------------------------------------------------------------- timing


def timed_rounds(fn: Callable[[], int], rounds: int) -> dict[str, Any]:
    """One warm-up call, then ``rounds`` timed calls of ``fn`` (returns records done)."""
    fn()
    rates: list[float] = []
    ns: list[float] = []
    gc.disable()
    try:
        for _ in range(rounds):
            t0 = time.perf_counter_ns()
            n = fn()
            dt = time.perf_counter_ns() - t0
            rates.append(n / dt * 1e9)
            ns.append(dt / n)
    finally:
        gc.enable()
    return {"records_per_round": n, "records_per_s": statistics.median(rates),
            "records_per_s_min": min(rates), "records_per_s_max": max(rates),
            "ns_per_record": statistics.median(ns), "rounds": rounds}


def bench_writer(path: Path, batches: list[tuple[bytes, int]], slots: int, slot_size: int,
                 rounds: int, repeat: int) -> dict[str, Any]:
    w = RingWriter(path, slot_size=slot_size, slots=slots, unlink_on_close=True)
    write = w.write
    per_round = batches * repeat

    def one() -> int:
        n = 0
        for data, _ in per_round:
            n += write(data)
        return n

    try:
        res = timed_rounds(one, rounds)
        res["bytes_per_record"] = (sum(len(d) for d, _ in per_round)
                                   / res["records_per_round"] - 1)
        res["too_large"] = w.too_large
        return res
    finally:
        w.close()


def bench_sink(tmp: Path, batches: list[tuple[bytes, int]], slots: int, slot_size: int,
               rounds: int, repeat: int) -> dict[str, Any]:
    batches = batches * repeat
    sink = ShmSink("bench-sink", dir=tmp, slots=slots, slot_size=slot_size,
                   unlink_on_close=True)
    loop = asyncio.new_event_loop()
    loop.run_until_complete(sink.open())

    async def run() -> int:
        for data, n in batches:
            await sink.write(data, n)
        return sum(n for _, n in batches)

    try:
        res = timed_rounds(lambda: loop.run_until_complete(run()), rounds)
        res["write_ns_p50"] = sink.write_ns.value_at_percentile(50.0)
        res["write_ns_p99"] = sink.write_ns.value_at_percentile(99.0)
        return res
    finally:
        loop.run_until_complete(sink.close())
        loop.close()


def bench_reader(path: Path, batches: list[tuple[bytes, int]], slot_size: int,
                 rounds: int) -> dict[str, Any]:
    total = sum(n for _, n in batches)
    need = sum(len(d) for d, _ in batches) // (slot_size - 24) + 2 * total
    slots = 1 << max(4, (need - 1).bit_length())
    w = RingWriter(path, slot_size=slot_size, slots=slots, unlink_on_close=True)
    r = Reader(path=path)

    def one() -> float:
        # Only the reads are timed: the round's records are written before the clock.
        for data, _ in batches:
            w.write(data)
        t0 = time.perf_counter_ns()
        n = 0
        while got := r.read_batch(4096):
            n += len(got)
        return n / (time.perf_counter_ns() - t0) * 1e9

    one()
    gc.disable()
    try:
        rates = [one() for _ in range(rounds)]
    finally:
        gc.enable()
    r.close()
    w.close()
    if r.lost or r.overruns:
        raise SystemExit(f"reader bench ring too small: lost {r.lost}")
    return {"records_per_round": total, "records_per_s": statistics.median(rates),
            "records_per_s_min": min(rates), "records_per_s_max": max(rates),
            "ring_slots": slots, "rounds": rounds}


def _follow(path: str, ready: Any, stop: Any, out: Any) -> None:
    r = Reader(path=path)
    ready.set()
    t0 = time.perf_counter()
    while not stop.is_set():
        if not r.read_batch(4096):
            time.sleep(0.0001)
    while r.read_batch(4096):
        pass
    out.put({**r.stats(), "seconds": time.perf_counter() - t0})


def bench_concurrent(path: Path, batches: list[tuple[bytes, int]], slots: int,
                     slot_size: int, rounds: int, repeat: int) -> dict[str, Any]:
    batches = batches * repeat
    ctx = mp.get_context("spawn")
    w = RingWriter(path, slot_size=slot_size, slots=slots, unlink_on_close=True)
    ready, stop, out = ctx.Event(), ctx.Event(), ctx.Queue()
    proc = ctx.Process(target=_follow, args=(str(path), ready, stop, out))
    proc.start()
    try:
        if not ready.wait(60):
            raise SystemExit("reader process did not start")
        write = w.write

        def one() -> int:
            n = 0
            for data, _ in batches:
                n += write(data)
            return n

        res = timed_rounds(one, rounds)
        stop.set()
        rd = out.get(timeout=60)
        written = w.records
    finally:
        proc.join(10)
        if proc.is_alive():
            proc.kill()
        w.close()
    return {"writer": res, "written": written,
            "reader": {k: rd[k] for k in ("records", "lost", "overruns", "abandoned")},
            "reader_records_per_s": rd["records"] / rd["seconds"]}


# --------------------------------------------------------------------------- report


def _v(name: str) -> str | None:
    try:
        return version(name)
    except PackageNotFoundError:
        return None


def machine() -> dict[str, Any]:
    cpu = cpu_model()
    return {"cpu": cpu, "cores": os.cpu_count(),
            "python": f"{platform.python_implementation()} {platform.python_version()}",
            "platform": platform.platform()}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=10, help="timed rounds per workload")
    ap.add_argument("--repeat", type=int, default=3,
                    help="passes over the record set per writer round")
    ap.add_argument("--slots", type=int, default=65536)
    ap.add_argument("--slot-size", type=int, default=512)
    ap.add_argument("--batch-bytes", type=int, default=256 * 1024)
    ap.add_argument("--dir", default="/dev/shm", help="ring directory")
    ap.add_argument("--synthetic", action="store_true", help="do not use the corpus")
    ap.add_argument("--no-concurrent", action="store_true", help="skip the 2-process run")
    ap.add_argument("--json", type=Path, help="write the results here")
    args = ap.parse_args(argv)

    cap = corpus_root() / "binance" / "usdm-btcusdt-20240808.gz"
    if not args.synthetic and cap.exists():
        frames = engine_batches(cap)
        source = f"engine output over {cap.name}"
    else:
        frames = synthetic_batches(90_000)
        source = "synthetic records (engine schema)"
    recs = [r for d, _ in frames for r in d.split(b"\n") if r]
    bbo = [(r + b"\n", 1) for r in recs if r.startswith(b'{"type":"bbo"')]
    mix = join(frames, args.batch_bytes)
    bbo_j = join(bbo, args.batch_bytes)
    tmp = Path(tempfile.mkdtemp(prefix="xcol-shm-bench-", dir=args.dir))
    ring = tmp / "ring"
    results: dict[str, Any] = {}
    try:
        geo = (args.slots, args.slot_size, args.rounds, args.repeat)
        results["mix/256k"] = bench_writer(ring, mix, *geo)
        results["bbo/256k"] = bench_writer(ring, bbo_j, *geo)
        results["mix/frame"] = bench_writer(ring, frames, *geo)
        results["sink"] = bench_sink(tmp, mix, *geo)
        results["reader"] = bench_reader(ring, mix, args.slot_size, args.rounds)
        if not args.no_concurrent:
            results["concurrent"] = bench_concurrent(ring, mix, *geo)
    finally:
        for p in tmp.iterdir():
            p.unlink()
        tmp.rmdir()

    print(f"shm ring, {source}: {len(recs):,} records "
          f"({sum(len(r) for r in recs) / len(recs):.0f} B mean), {len(bbo):,} bbo; "
          f"{args.slots} slots x {args.slot_size} B; median of {args.rounds} rounds "
          f"of {args.repeat} passes")
    print(f"{'workload':<12}{'records/s':>14}{'min':>14}{'max':>14}{'ns/record':>11}")
    for name, r in results.items():
        if name == "concurrent":
            continue
        ns = f"{r['ns_per_record']:>11.1f}" if "ns_per_record" in r else f"{'':>11}"
        print(f"{name:<12}{r['records_per_s']:>14,.0f}{r['records_per_s_min']:>14,.0f}"
              f"{r['records_per_s_max']:>14,.0f}{ns}")
    if "concurrent" in results:
        c = results["concurrent"]
        print(f"concurrent: writer {c['writer']['records_per_s']:,.0f} records/s with a reader "
              f"process; reader read {c['reader']['records']:,} of {c['written']:,} "
              f"({c['reader_records_per_s']:,.0f}/s), lost {c['reader']['lost']:,}, "
              f"overruns {c['reader']['overruns']:,}")
    ok = results["mix/256k"]["records_per_s"] >= TARGET_WRITER
    print(f"target writer >= {TARGET_WRITER:,} records/s (mix/256k): "
          f"{'met' if ok else 'NOT met'}")
    if args.json:
        doc = {"bench": "sink_shm", "date": datetime.now(UTC).isoformat(timespec="seconds"),
               "command": " ".join([Path(sys.executable).name, *sys.argv]),
               "source": source, "records": len(recs), "bbo_records": len(bbo),
               "slots": args.slots, "slot_size": args.slot_size, "repeat": args.repeat,
               "batch_bytes": args.batch_bytes, "machine": machine(),
               "versions": {"xcol": xcol.__version__, "cython": _v("Cython")},
               "target_writer_records_per_s": TARGET_WRITER, "target_met": ok,
               "results": results}
        args.json.write_text(json.dumps(doc, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
