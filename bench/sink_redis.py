"""Sustained records/s of the Redis sink against a local redis-server.

Records are real collector output: either a JSONL file (``--records``, e.g. from
``python -m xcol demo --out run.jsonl``) or, by default, a run of the collector against the
simulator (synthetic Binance USD-M: depth, bookTicker and trades for ``--symbols``
instruments) recorded through the JSONL sink before anything is timed.

Workloads, each built once outside the timed region and cut into batches of about
``--batch-bytes`` (the realtime preset's 256 KiB writes):

* ``run``: the recorded mix as is (BBO, trades, book deltas, snapshots); BBOs and trades
  update market data, coalesced to one PUBLISH + SET per instrument per batch;
* ``run+deltas``: the same with ``publish_deltas`` (every book delta PUBLISHed too);
* ``trades``: only the trade records (one PUBLISH each plus the rolling-window update);
* ``top``: ``top`` records of 20 levels per side (from the run's snapshots, re-encoded in
  the record schema) cut to ``depth`` = 10 (one PUBLISH each);
* ``top+coalesce``: the same with ``coalesce_orderbook`` (one PUBLISH per instrument per
  batch).

Each workload: one untimed warm-up pass, then ``--rounds`` timed rounds of
``--records-per-round`` records written through ``RedisSink.write`` (one batch in flight
while the next is encoded) and a final ``flush`` (every reply received); the median round
is reported.  A fresh redis-server (``--save ''
--appendonly no``) is started on a free port unless ``--url`` is given;
``--subscribers N`` attaches N ``redis-cli psubscribe '*'`` processes so the server also
delivers every message.  The machine has 2 cores, shared: numbers are noisy.

    PYTHONPATH=. python bench/sink_redis.py --json redis.json
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.metadata
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import hiredis

from xcol.sinks.redis import RedisSink

REPO = Path(__file__).resolve().parent.parent


from common import cpu_model  # noqa: E402


def machine() -> dict[str, Any]:
    """CPU, cores, interpreter, library and server versions."""
    cpu = cpu_model()
    server = ""
    if shutil.which("redis-server"):
        server = subprocess.run(["redis-server", "--version"], capture_output=True,
                                text=True, check=False).stdout.strip()
    try:
        uv: str | None = importlib.metadata.version("uvloop")
    except importlib.metadata.PackageNotFoundError:
        uv = None
    return {"cpu": cpu, "cores": os.cpu_count(),
            "python": f"{platform.python_implementation()} {platform.python_version()}",
            "platform": platform.platform(), "hiredis": hiredis.__version__, "uvloop": uv,
            "redis_server": server}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def record_run(path: Path, seconds: float, symbols: int, rate: float) -> None:
    """Run the collector against the simulator for ``seconds``, records to ``path``."""
    from xcol.app import Collector
    from xcol.config import load_config
    from xcol.sim.server import SimConfig, Simulator, line_configs

    async def main() -> None:
        sim = Simulator(SimConfig(exchange="binance-usdm", source=[], symbols=symbols,
                                  rate=rate, lines=line_configs(1, delay_ms="0")))
        await sim.start()
        cfg = load_config(None, env={}, overrides=[
            "feeds.0.exchange=binance-usdm", f"feeds.0.symbols={','.join(sim.instruments)}",
            f"feeds.0.endpoints=ws://127.0.0.1:{sim.ports[0]}",
            f"feeds.0.rest=http://127.0.0.1:{sim.ports[0]}", "runtime.http=",
            f"sinks.jsonl.path={path}", "sinks.jsonl.fsync=false",
        ])
        col = Collector(cfg)
        await col.start()
        await asyncio.sleep(seconds)
        await col.stop()
        await sim.stop()

    asyncio.run(main())


def top_records(records: list[bytes], levels: int = 20) -> list[bytes]:
    """``top`` records of ``levels`` levels per side made from the run's snapshots, one per
    BBO (same header fields as the BBO, the snapshot's levels around its prices)."""
    snaps = [json.loads(r) for r in records if r.startswith(b'{"type":"snapshot"')]
    if not snaps:
        return []
    book = {s["symbol"]: s for s in snaps}
    out = []
    for r in records:
        if not r.startswith(b'{"type":"bbo"'):
            continue
        q = json.loads(r)
        s = book.get(q["symbol"])
        if s is None:
            continue
        top = {"type": "top", "exchange": q["exchange"], "symbol": q["symbol"],
               "seq": q["seq"], "ts_exchange": q["ts_exchange"], "ts_recv": q["ts_recv"],
               "line": q["line"], "bids": s["bids"][:levels], "asks": s["asks"][:levels]}
        out.append(json.dumps(top, separators=(",", ":")).encode())
    return out


def batches_of(records: list[bytes], batch_bytes: int, total: int) -> list[tuple[bytes, int]]:
    """``total`` records cycled from ``records``, as newline-joined batches."""
    out: list[tuple[bytes, int]] = []
    parts: list[bytes] = []
    size = n = 0
    for i in range(total):
        rec = records[i % len(records)]
        parts.append(rec + b"\n")
        size += len(rec) + 1
        n += 1
        if size >= batch_bytes:
            out.append((b"".join(parts), n))
            parts, size, n = [], 0, 0
    if parts:
        out.append((b"".join(parts), n))
    return out


async def run_workload(url: str, batches: list[tuple[bytes, int]], rounds: int,
                       opts: dict[str, bool]) -> dict[str, Any]:
    sink = RedisSink(url, name="bench", publish_deltas=opts.get("publish_deltas", False),
                     coalesce_orderbook=opts.get("coalesce_orderbook", False))
    await sink.open()
    for b, n in batches:  # warm-up: streams, routes, connection
        await sink.write(b, n)
    await sink.flush()
    rates = []
    records = sum(n for _, n in batches)
    cmd0 = sink.commands
    for _ in range(rounds):
        t0 = time.perf_counter_ns()
        for b, n in batches:
            await sink.write(b, n)
        await sink.flush()
        dt = time.perf_counter_ns() - t0
        rates.append(records / (dt / 1e9))
    cmds = (sink.commands - cmd0) / rounds
    stats = sink.stats()
    await sink.close()
    return {
        "records_per_round": records, "batches_per_round": len(batches),
        "bytes_per_batch": sum(len(b) for b, _ in batches) // len(batches),
        "commands_per_record": cmds / records,
        "records_per_s_median": statistics.median(rates),
        "records_per_s_min": min(rates), "records_per_s_max": max(rates),
        "write_us_p50": stats["write_us"]["p50"], "write_us_p99": stats["write_us"]["p99"],
        "error_replies": stats["error_replies"],
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--records", metavar="JSONL", help="records to replay (default: record "
                    "a run of the collector against the simulator)")
    ap.add_argument("--gen-seconds", type=float, default=4.0)
    ap.add_argument("--symbols", type=int, default=4)
    ap.add_argument("--rate", type=float, default=2000.0, help="simulator updates/s")
    ap.add_argument("--url", help="an existing server (default: start redis-server)")
    ap.add_argument("--subscribers", type=int, default=0,
                    help="redis-cli psubscribe '*' processes attached during the run")
    ap.add_argument("--batch-bytes", type=int, default=256 * 1024)
    ap.add_argument("--records-per-round", type=int, default=200_000)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--workloads", default="run,run+deltas,trades,top,top+coalesce")
    ap.add_argument("--uvloop", action=argparse.BooleanOptionalAction, default=True)
    ap.add_argument("--json", metavar="PATH", help="write the results as JSON")
    args = ap.parse_args(argv)

    tmp = Path(tempfile.mkdtemp(prefix="xcol-bench-redis-"))
    procs: list[subprocess.Popen[bytes]] = []
    try:
        if args.records:
            src = Path(args.records)
        else:
            src = tmp / "run.jsonl"
            print(f"recording {args.gen_seconds:g} s of collector output ...", flush=True)
            record_run(src, args.gen_seconds, args.symbols, args.rate)
        records = [r for r in src.read_bytes().splitlines() if r]
        kinds: dict[str, int] = {}
        for r in records:
            k = r[9:r.find(b'"', 9)].decode()
            kinds[k] = kinds.get(k, 0) + 1
        print(f"{len(records):,} records {kinds}")
        url = args.url
        if url is None:
            port = free_port()
            procs.append(subprocess.Popen(
                ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                 "--appendonly", "no", "--dir", str(tmp),
                 "--client-output-buffer-limit", "pubsub 0 0 0"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
            url = f"redis://127.0.0.1:{port}/0"
            deadline = time.monotonic() + 10
            while True:
                try:
                    socket.create_connection(("127.0.0.1", port), 0.5).close()
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.05)
        for _ in range(args.subscribers):
            host_port = url.split("//", 1)[1].split("/", 1)[0].rsplit("@", 1)[-1]
            host, port_s = host_port.rsplit(":", 1)
            procs.append(subprocess.Popen(["redis-cli", "-h", host, "-p", port_s,
                                           "psubscribe", "*"], stdout=subprocess.DEVNULL))
        time.sleep(0.2 if args.subscribers else 0)
        tops = top_records(records)
        work: dict[str, tuple[list[bytes], dict[str, bool]]] = {
            "run": (records, {}),
            "run+deltas": (records, {"publish_deltas": True}),
            "trades": ([r for r in records if r.startswith(b'{"type":"trade"')], {}),
            "top": (tops, {}),
            "top+coalesce": (tops, {"coalesce_orderbook": True}),
        }
        if args.uvloop:
            import uvloop
            uvloop.install()
        results: dict[str, Any] = {}
        for name in args.workloads.split(","):
            recs, opts = work[name]
            if not recs:
                print(f"{name}: no records, skipped")
                continue
            batches = batches_of(recs, args.batch_bytes, args.records_per_round)
            res = asyncio.run(run_workload(url, batches, args.rounds, opts))
            results[name] = res
            print(f"{name:>12}: {res['records_per_s_median']:>11,.0f} records/s "
                  f"(min {res['records_per_s_min']:,.0f}, max {res['records_per_s_max']:,.0f});"
                  f" {res['commands_per_record']:.3f} commands/record, "
                  f"{res['batches_per_round']} batches of ~{res['bytes_per_batch']:,} B, "
                  f"write p50 {res['write_us_p50']:,} us", flush=True)
        report = {
            "bench": "sink_redis", "date": datetime.now(UTC).isoformat(timespec="seconds"),
            "command": " ".join([sys.executable, *sys.argv]), "machine": machine(),
            "params": {k: v for k, v in vars(args).items() if k != "json"},
            "input": {"records": len(records), "kinds": kinds}, "results": results,
        }
        if args.json:
            Path(args.json).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
            print(f"wrote {args.json}")
    finally:
        for p in reversed(procs):
            p.send_signal(signal.SIGKILL)
            p.wait()
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
