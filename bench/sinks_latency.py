"""Does turning every sink on change the hot path's code latency?

The simulator (its own process, core 1) sends real USD-M depth frames at a fixed offered
rate (``xcol sim --blast --blast-rate``); the collector (this process, core 0) runs
twice per round on fresh connections, side by side:

* ``baseline``: one JSONL sink;
* ``all_sinks``: JSONL plus Redis, Kafka (tansu), PostgreSQL, QuestDB line protocol
  (InfluxDB 1.x over HTTP), Parquet and the shared-memory ring, each against its real
  local server, started here on 127.0.0.1 (the same helpers as the tests).

Code latency is the engine's own histogram (frame read from the socket → record queued
to the sinks, monotonic clock), reset after a warm-up.  The issue's target: within ±10%
of the baseline with every sink on.  It prints, per percentile, the median of the
rounds' ratios with their range, and the ratio of the pooled histograms (each mode's
rounds merged; the rounds alternate, so the machine's drift weighs on both modes).
``--json PATH`` writes both runs of every round and both ratios.

    python bench/sinks_latency.py --rate 20000 --seconds 10 --rounds 3 --json out.json
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path[:0] = [str(REPO), str(HERE), str(REPO / "tests")]


async def _collect(port: int, sinks: list[str], warmup_s: float, seconds: float,
                   extra_env: dict[str, str]) -> dict[str, Any]:
    from xcol.app import Collector
    from xcol.config import load_config

    cfg = load_config(None, env={}, overrides=[
        "feeds.0.exchange=binance-usdm", "feeds.0.symbols=BTCUSDT",
        "feeds.0.channels=depth", f"feeds.0.endpoints=ws://127.0.0.1:{port}",
        f"feeds.0.rest=http://127.0.0.1:{port}", "runtime.http=", *sinks])
    os.environ.update(extra_env)
    col = Collector(cfg)
    eng = col.feeds[0].engine
    gc.collect()
    gc.freeze()
    await col.start()
    t0 = time.monotonic()
    while not eng.book("BTCUSDT").synced and time.monotonic() - t0 < 20:
        await asyncio.sleep(0.01)
    await asyncio.sleep(warmup_s)
    eng.code_ns.reset()
    pub0 = eng.published
    await asyncio.sleep(seconds)
    h = eng.code_ns
    p50, p90, p99, p999 = h.percentiles([50.0, 90.0, 99.0, 99.9])
    res = {"updates": eng.published - pub0, "count": h.total_count,
           "code_us": {"p50": p50 / 1e3, "p90": p90 / 1e3, "p99": p99 / 1e3,
                       "p999": p999 / 1e3, "max": h.max() / 1e3},
           "hist": h.encode().decode("ascii")}
    stats = col.stats()
    report = await col.stop()
    gc.unfreeze()
    res["sinks"] = {s["name"]: {"published": s["published"], "dropped": s["dropped"],
                                "healthy": s["healthy"]} for s in stats["sinks"]}
    res["shutdown_complete"] = report.complete
    return res


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rate", type=float, default=20_000.0, help="offered frames/s")
    ap.add_argument("--seconds", type=float, default=10.0, help="measured seconds per run")
    ap.add_argument("--warmup", type=float, default=2.0)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--json", metavar="PATH")
    ap.add_argument("--without", action="append", default=[], metavar="SINK",
                    help="leave this sink out of the all-sinks run (repeatable): to find "
                         "which sink costs latency")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="sets",
                    help="a config override for both runs, e.g. runtime.book_ladder=0")
    ap.add_argument("--servers-core", type=int, default=1,
                    help="pin the local servers to this core (-1: leave them unpinned)")
    args = ap.parse_args(argv)
    if args.servers_core is not None and args.servers_core < 0:
        args.servers_core = None

    import importlib

    import e2e
    import hotpath
    import uvloop

    # the test suite's server launchers (tests/ is not a package)
    srv: dict[str, Any] = {n: importlib.import_module(f"srv_{n}")
                           for n in ("ilp", "kafka", "postgres", "redis")}
    Influxd, Tansu = srv["ilp"].Influxd, srv["kafka"].Tansu
    PgCluster, find_pg_bin = srv["postgres"].PgCluster, srv["postgres"].find_pg_bin
    RedisServer = srv["redis"].RedisServer

    capture = e2e.corpus_dir() / e2e.USDM_FILE
    if not capture.is_file():
        print(f"sinks_latency: {capture} not found (set XCOL_CORPUS)", file=sys.stderr)
        return 2
    from xcol.runtime import pin_cpus

    core = 0 if 0 in os.sched_getaffinity(0) else None
    if core is not None:
        pin_cpus([core])  # as runtime.cpu_affinity = [0]: sink threads go elsewhere
    if os.environ.get("XCOL_SWITCH_US"):
        sys.setswitchinterval(int(os.environ["XCOL_SWITCH_US"]) / 1e6)
    with contextlib.ExitStack() as stack, tempfile.TemporaryDirectory() as tmp:
        t = Path(tmp)
        redis = RedisServer().start()
        stack.callback(redis.close)
        kafka = Tansu().start()
        stack.callback(kafka.stop)
        pg_bin = find_pg_bin()
        if pg_bin is None:
            raise SystemExit("PostgreSQL binaries not found (make sysdeps)")
        pg = PgCluster(pg_bin)
        stack.callback(pg.remove)
        pg.init()
        pg.start()
        influx = Influxd(t / "influx")
        influx.start()
        stack.callback(influx.stop)
        if args.servers_core is not None:
            # keep the servers off the collector's core (all their threads)
            for proc in (redis.proc, kafka.proc, influx.proc):
                if proc is not None:
                    subprocess.run(["taskset", "-a", "-p", "-c", str(args.servers_core),
                                    str(proc.pid)], capture_output=True, check=False)
            pids = subprocess.run(["pgrep", "-f", str(pg.data)], capture_output=True,
                                  text=True).stdout.split()
            for pid in pids:
                subprocess.run(["taskset", "-a", "-p", "-c", str(args.servers_core), pid],
                               capture_output=True, check=False)
        req = urllib.request.Request(influx.url + "/query", data=b"q=CREATE DATABASE xcol",
                                     method="POST")
        urllib.request.urlopen(req, timeout=10).read()
        base = [f"sinks.jsonl.path={t / 'base.jsonl'}", *args.sets]
        everything = [
            f"sinks.jsonl.path={t / 'all.jsonl'}",
            f"sinks.redis.url=redis://127.0.0.1:{redis.port}/0",
            f"sinks.kafka.bootstrap={kafka.bootstrap}",
            f"sinks.postgres.dsn={pg.dsn}",
            f"sinks.ilp.url={influx.url}/write?db=xcol",
            f"sinks.parquet.dir={t / 'parquet'}",
            f"sinks.shm.name=xcol-bench-{os.getpid()}", f"sinks.shm.dir={t}",
        ]
        everything = [x for x in everything
                      if not any(x.startswith(f"sinks.{w}.") for w in args.without)]
        everything += args.sets
        runs: list[dict[str, Any]] = []
        frames = int(args.rate * (args.seconds + args.warmup + 30))
        for r in range(args.rounds):
            for mode, sinks in (("baseline", base), ("all_sinks", everything)):
                sim = e2e.Sim(capture, lines=1, frames=frames, rate=args.rate)
                try:
                    res = uvloop.run(_collect(sim.port, sinks, args.warmup, args.seconds, {}))
                finally:
                    sim.close()
                res.update(round=r + 1, mode=mode)
                runs.append(res)
                c = res["code_us"]
                print(f"round {r + 1} {mode:10} p50 {c['p50']:.2f} us  p99 {c['p99']:.2f} us"
                      f"  p99.9 {c['p999']:.2f} us  ({res['updates']:,} updates)",
                      file=sys.stderr)
    ratios: dict[str, float] = {}
    spread: dict[str, list[float]] = {}
    for q in ("p50", "p90", "p99", "p999"):
        per_round = []
        for r in range(args.rounds):
            b = next(x for x in runs if x["round"] == r + 1 and x["mode"] == "baseline")
            a = next(x for x in runs if x["round"] == r + 1 and x["mode"] == "all_sinks")
            per_round.append(a["code_us"][q] / b["code_us"][q])
        ratios[q] = statistics.median(per_round)
        spread[q] = [min(per_round), max(per_round)]
    # Every round's samples pooled per mode: the rounds alternate, so drift of the
    # machine weighs on both modes alike, and a tail percentile rests on rounds x more
    # samples than one round's.
    from xcol._fast.hdr import HdrHistogram

    pooled: dict[str, dict[str, float]] = {}
    for mode in ("baseline", "all_sinks"):
        hs = [HdrHistogram.decode(x.pop("hist")) for x in runs if x["mode"] == mode]
        total = hs[0]
        for h in hs[1:]:
            total.merge(h)
        pooled[mode] = dict(zip(("p50", "p90", "p99", "p999"),
                                (v / 1e3 for v in total.percentiles([50.0, 90.0, 99.0, 99.9])),
                                strict=True))
        pooled[mode]["count"] = total.total_count
    pooled_ratio = {q: pooled["all_sinks"][q] / pooled["baseline"][q]
                    for q in ("p50", "p90", "p99", "p999")}
    out = {"benchmark": "sinks_latency", "date": datetime.now(UTC).isoformat(timespec="seconds"),
           "command": " ".join([Path(sys.executable).name, *sys.argv]),
           "machine": hotpath.machine(), "collector_core": core,
           "offered_frames_per_s": args.rate, "seconds": args.seconds, "runs": runs,
           "ratio_all_sinks_vs_baseline": ratios, "ratio_range_over_rounds": spread,
           "pooled_us": pooled, "pooled_ratio_all_sinks_vs_baseline": pooled_ratio,
           "without": args.without,
           "overrides": args.sets,
           "target": "code latency within +-10% of the baseline with every sink on"}
    print("median ratio all sinks / baseline over rounds: "
          + ", ".join(f"{q} {v:.2f}x ({spread[q][0]:.2f}-{spread[q][1]:.2f})"
                      for q, v in ratios.items()))
    print("pooled rounds, ratio all sinks / baseline: "
          + ", ".join(f"{q} {v:.2f}x" for q, v in pooled_ratio.items()))
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
