"""Sustained records/s of the Kafka sink into a local tansu broker (target >= 300k/s).

Records: ``--jsonl PATH`` replays real records (a file written by ``xcol demo --out``);
without it the benchmark synthesizes records in the engine's exact schema with the mix of
a demo run (75% bbo, 15% trade, 8% book, 2% top; ~300 bytes each; 4 instruments on 2
exchanges).  Records are cut into batches of ``--batch-bytes`` (the realtime preset's write
size, 256 KiB) before any timing.

A round produces ``--records`` records and ends when librdkafka has a delivery report for
every one of them:

* ``sink``: ``KafkaSink.write`` for each batch, then ``flush()`` (the sink alone);
* ``fanout``: every batch offered to a :class:`~xcol.fanout.FanOut` (blocking, the
  realtime preset: flush every 50 ms), then ``drain_and_close`` (what ``xcol run`` does).

One untimed warm-up round per mode, then ``--rounds`` timed rounds on a fresh broker
topic set each time (the topic template carries the round number); the median is
reported with min/max, the process CPU time per record and the broker's CPU time.  The
broker runs on the same 2 shared cores: numbers are noisy; compare medians.

    PYTHONPATH=. python bench/sink_kafka.py --rounds 5 --json /tmp/xcol-bench/kafka.json
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import importlib
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

import confluent_kafka  # noqa: E402

from xcol.fanout import FanOut, QueueSpec  # noqa: E402
from xcol.sinks.kafka import KafkaSink  # noqa: E402

srv: Any = importlib.import_module("srv_kafka")  # tests/srv_kafka.py: the tansu launcher

_INSTRUMENTS = (("binance-usdm", "BTCUSDT"), ("binance-usdm", "ETHUSDT"),
                ("okx", "BTC-USDT-SWAP"), ("okx", "ETH-USDT-SWAP"))


from common import cpu_model, cut_batches  # noqa: E402


def synth_records(n: int) -> list[bytes]:
    """``n`` records in the engine's schema, demo-like mix and sizes."""
    out: list[bytes] = []
    for i in range(n):
        exch, sym = _INSTRUMENTS[i % 4]
        k = i % 100
        head = (f'{{"type":"%s","exchange":"{exch}","symbol":"{sym}","seq":{5123107939436 + i},'
                f'"ts_exchange":{1795261324491 + i // 50},'
                f'"ts_recv":{1795261324492589407 + i * 20011},"line":{i % 2}')
        if k < 75:
            rec = (head % "bbo" + ',"bid":"61800.00","bid_qty":"16.910","ask":"61800.10",'
                   '"ask_qty":"4.667"}')
        elif k < 90:
            rec = (head % "trade" + f',"id":{6012345678 + i},"price":"61800.10",'
                   '"qty":"0.004","side":"buy"}')
        elif k < 98:
            rec = (head % "book" + f',"prev_seq":{5123107939435 + i},"bids":[["61800.00",'
                   '"16.910"],["61799.90","0.512"],["61795.00","0.000"]],"asks":[['
                   '"61800.10","4.667"],["61801.30","1.204"]]}')
        else:
            rec = (head % "top" + ',"bids":[["61800.00","16.910"],["61799.90","0.512"],'
                   '["61799.50","2.000"],["61799.00","0.750"],["61798.80","0.100"]],'
                   '"asks":[["61800.10","4.667"],["61800.20","0.050"],["61801.30","1.204"],'
                   '["61802.00","3.300"],["61803.10","0.900"]]}')
        out.append(rec.encode() + b"\n")
    return out


def load_records(path: Path, n: int) -> list[bytes]:
    """The first ``n`` records of a JSONL file, repeated as needed."""
    recs = [line + b"\n" for line in path.read_bytes().splitlines() if line.strip()]
    if not recs:
        raise SystemExit(f"{path}: no records")
    out: list[bytes] = []
    while len(out) < n:
        out += recs[: n - len(out)]
    return out


cut = cut_batches


def proc_cpu_s(pid: int) -> float:
    """utime + stime of a process, seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def one_round(mode: str, bootstrap: str, batches: list[tuple[bytes, int]], tag: str,
                    properties: dict[str, str]) -> tuple[float, KafkaSink]:
    sink = KafkaSink(bootstrap, topic=f"bench{tag}.{{channel}}", properties=properties)
    n = sum(k for _, k in batches)
    if mode == "sink":
        await sink.open()
        t0 = time.perf_counter()
        for b, k in batches:
            await sink.write(b, k)
        await sink.flush()
        elapsed = time.perf_counter() - t0
        await sink.close()
    else:
        fan = FanOut()
        fan.add_sink(sink, QueueSpec(policy="blocking", capacity=n + 1, warn_ratio=1.0,
                                     max_write_bytes=256 * 1024, flush_interval_s=0.05))
        await fan.start()
        t0 = time.perf_counter()
        for b, k in batches:
            fan.offer(b, k)
        report = await fan.drain_and_close(120.0)
        elapsed = time.perf_counter() - t0
        if not report.complete:
            raise SystemExit(f"round {tag}: drain incomplete: {report}")
    if sink.delivered != n or sink.failed_total:
        raise SystemExit(f"round {tag}: delivered {sink.delivered} of {n}, failed "
                         f"{sink.failed}")
    return elapsed, sink


def machine() -> dict[str, Any]:
    """CPU, cores, interpreter, library versions."""
    cpu = cpu_model()
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True,
                                text=True, check=False).stdout.strip()
    except OSError:
        commit = ""
    tansu = srv.tansu_binary()
    tansu_version = ""
    if tansu is not None:
        tansu_version = subprocess.run([str(tansu), "--version"], capture_output=True,
                                       text=True, check=False).stdout.strip()
    return {
        "cpu": cpu, "cores": os.cpu_count(),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "platform": platform.platform(),
        "confluent_kafka": confluent_kafka.version()[0],
        "librdkafka": confluent_kafka.libversion()[0],
        "tansu": tansu_version, "commit": commit,
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    records = (load_records(Path(args.jsonl), args.records) if args.jsonl
               else synth_records(args.records))
    batches = cut(records, args.batch_bytes)
    n = len(records)
    nbytes = sum(len(r) for r in records)
    props = dict(p.split("=", 1) for p in args.property)
    loop_run: Any = asyncio.run
    if args.loop == "uvloop":
        import uvloop

        loop_run = uvloop.run
    results: dict[str, Any] = {}
    broker = srv.Tansu().start()
    try:
        for mode in args.modes:
            rates: list[float] = []
            cpu_us: list[float] = []
            broker_cpu: list[float] = []
            for r in range(args.rounds + 1):  # round 0: warm-up
                c0, b0 = time.process_time(), proc_cpu_s(broker.proc.pid)
                elapsed, sink = loop_run(one_round(mode, broker.bootstrap, batches,
                                                   f"{mode}{r}", props))
                c1, b1 = time.process_time(), proc_cpu_s(broker.proc.pid)
                if r == 0:
                    continue
                rates.append(n / elapsed)
                cpu_us.append((c1 - c0) / n * 1e6)
                broker_cpu.append(b1 - b0)
                print(f"  {mode} round {r}: {n / elapsed:>10,.0f} records/s "
                      f"({nbytes / elapsed / 1e6:,.1f} MB/s), {elapsed:.3f} s, "
                      f"process CPU {(c1 - c0) / n * 1e6:.2f} us/record, broker CPU "
                      f"{b1 - b0:.2f} s, flush p50 "
                      f"{sink.flush_ns.value_at_percentile(50) / 1e6:.1f} ms", flush=True)
            results[mode] = {
                "records_per_s_median": statistics.median(rates),
                "records_per_s_min": min(rates), "records_per_s_max": max(rates),
                "mb_per_s_median": statistics.median(rates) * nbytes / n / 1e6,
                "process_cpu_us_per_record_median": statistics.median(cpu_us),
                "broker_cpu_s_median": statistics.median(broker_cpu),
                "rounds": rates,
            }
    finally:
        broker.stop()
    return {
        "benchmark": "sink_kafka", "records": n, "bytes_per_record": nbytes / n,
        "batches": len(batches), "batch_bytes": args.batch_bytes,
        "source": args.jsonl or "synthetic", "loop": args.loop, "properties": props,
        "machine": machine(), "results": results,
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Command line entry point."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--records", type=int, default=300_000, help="records per round")
    ap.add_argument("--rounds", type=int, default=5, help="timed rounds (median reported)")
    ap.add_argument("--batch-bytes", type=int, default=256 * 1024,
                    help="bytes per write (the realtime preset's)")
    ap.add_argument("--jsonl", metavar="PATH", help="real records (xcol demo --out PATH)")
    ap.add_argument("--modes", nargs="+", choices=("sink", "fanout"),
                    default=["sink", "fanout"])
    ap.add_argument("--loop", choices=("uvloop", "asyncio"), default="uvloop")
    ap.add_argument("--property", "-X", action="append", default=[], metavar="NAME=VALUE",
                    help="extra librdkafka property (repeatable)")
    ap.add_argument("--json", metavar="PATH", help="write the results as JSON")
    args = ap.parse_args(argv)
    print(f"kafka sink -> tansu: {args.records:,} records/round, {args.rounds} rounds "
          f"(+1 warm-up), loop {args.loop}", flush=True)
    res = run(args)
    for mode, r in res["results"].items():
        print(f"{mode:>7}: median {r['records_per_s_median']:>10,.0f} records/s "
              f"(min {r['records_per_s_min']:,.0f}, max {r['records_per_s_max']:,.0f}); "
              f"{r['mb_per_s_median']:.1f} MB/s; "
              f"{r['process_cpu_us_per_record_median']:.2f} us CPU/record; target 300,000: "
              f"{'MET' if r['records_per_s_median'] >= 300_000 else 'NOT MET'}")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(res, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
