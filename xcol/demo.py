"""``xcol demo``: the simulator on two lines with different delays, the collector
against it, and a live table of win rates and latency percentiles.

The simulator replays the real USD-M capture when the corpus is present
(``XCOL_CORPUS``, default ``../shared/corpus``) and a synthetic stream
otherwise.  Line 0 is delayed 0 ms and line 1 3 ms, so line 0 should win
nearly every update and line 1's lag should sit near 3 ms.  Records go to a
JSONL file; ``/stats`` and ``/metrics`` are served while it runs.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import socket
import sys
import time
from pathlib import Path
from typing import Any, TextIO

from xcol.app import Collector
from xcol.config import load_config


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The ``demo`` options."""
    p.add_argument("--duration", type=float, default=20.0,
                   help="seconds to run (0: until Ctrl-C); default 20")
    p.add_argument("--every", type=float, default=2.0, help="seconds between tables")
    p.add_argument("--speed", type=float, default=5.0, help="replay speed factor (default 5)")
    p.add_argument("--delay-ms", default="0,3", help="per-line simulator delays (default 0,3)")
    p.add_argument("--out", default="data/demo.jsonl", help="JSONL output file")
    p.add_argument("--http", default="127.0.0.1:0", help="HTTP address (port 0: any free)")
    p.add_argument("--corpus", default=None, help="corpus directory (default $XCOL_CORPUS)")


def _table(stats: dict[str, Any], out: TextIO) -> None:
    lat = stats["latency"]["code_us"]
    c = stats["counters"]
    print(f"-- {time.strftime('%H:%M:%S')}  received {c['received']:,}  published "
          f"{c['published']:,}  duplicates {c['duplicates']:,}  dropped {c['dropped']:,}",
          file=out)
    print(f"   code latency us: p50 {lat['p50']:.2f}  p99 {lat['p99']:.2f}  "
          f"p99.9 {lat['p999']:.2f}  max {lat['max']:.1f}  ({lat['count']:,} records)",
          file=out)
    print(f"   {'line':>4} {'state':<10} {'frames':>9} {'wins':>9} {'dups':>9} "
          f"{'win rate':>8} {'lag p50 ms':>10} {'lag p99 ms':>10} {'gaps':>5}", file=out)
    for cn in stats["connections"]:
        lag = cn["lag_us"]
        print(f"   {cn['id']:>4} {cn['state']:<10} {cn['frames']:>9,} {cn['wins']:>9,} "
              f"{cn['duplicates']:>9,} {cn['win_rate']:>8.1%} {lag['p50'] / 1000:>10.3f} "
              f"{lag['p99'] / 1000:>10.3f} {cn['gaps']:>5}", file=out)
    for st in stats["streams"]:
        name = f"{st['channel']:<6} {st['instrument']}"
        counts = (f"published {st.get('published', 0):,}  duplicates "
                  f"{st.get('duplicates', 0):,}  dropped {st.get('dropped', 0):,}")
        if st["channel"] == "depth":
            print(f"   {name}: {'synced' if st['synced'] else 'NOT synced'} seq "
                  f"{st['last_seq']} gaps {st['gaps']} resyncs {st['resyncs']}  {counts}",
                  file=out)
        else:
            print(f"   {name}: {counts}", file=out)
    out.flush()


async def _demo(args: argparse.Namespace) -> int:
    from xcol.sim.cli import _DEFAULT_CAPTURE, corpus_root
    from xcol.sim.server import SimConfig, Simulator, line_configs

    root = Path(args.corpus) if args.corpus else corpus_root()
    capture = root / _DEFAULT_CAPTURE["binance-usdm"]
    source = [str(capture)] if capture.is_file() else []
    print(f"xcol demo: simulator replaying {capture}" if source else
          f"xcol demo: no capture at {capture}; the simulator runs a synthetic stream")
    n = len(args.delay_ms.split(","))
    sim = Simulator(SimConfig(exchange="binance-usdm", source=source, speed=args.speed,
                              rate=200.0, lines=line_configs(n, delay_ms=args.delay_ms)))
    await sim.start()
    eps = [f"ws://127.0.0.1:{p}" for p in sim.ports]
    http = args.http
    if http.endswith(":0"):
        with socket.socket() as sk:
            sk.bind(("127.0.0.1", 0))
            http = f"127.0.0.1:{sk.getsockname()[1]}"
    overrides = [
        "feeds.0.exchange=binance-usdm", "feeds.0.symbols=BTCUSDT",
        f"feeds.0.endpoints={','.join(eps)}", f"feeds.0.rest=http://127.0.0.1:{sim.ports[0]}",
        f"runtime.http={http}", f"sinks.jsonl.path={args.out}",
        "sinks.jsonl.policy=blocking",
    ]
    cfg = load_config(None, env={}, overrides=overrides)
    col = Collector(cfg)
    await col.start()
    if col.http is not None:
        print(f"xcol demo: /stats and /metrics on {col.http.url}; records to {args.out}")
    t_end = time.monotonic() + args.duration if args.duration > 0 else float("inf")
    try:
        while time.monotonic() < t_end:
            await asyncio.sleep(min(args.every, max(0.0, t_end - time.monotonic())))
            _table(col.stats(), sys.stdout)
    except asyncio.CancelledError:
        pass
    report = await col.stop()
    await sim.stop()
    final = col.stats()
    print(json.dumps({"counters": final["counters"], "shutdown_complete": report.complete}))
    ok = report.complete and all(s["synced"] for s in final["streams"])
    return 0 if ok else 1


def run(args: argparse.Namespace) -> int:
    """Entry point of ``xcol demo``."""
    from xcol.runtime import run as run_loop

    try:
        return run_loop(_demo(args))
    except KeyboardInterrupt:
        return 0


async def _run(cfg: Any) -> int:
    col = Collector(cfg)
    report = await col.run()
    return 0 if report.complete else 1


def run_collector(args: argparse.Namespace) -> int:
    """Entry point of ``xcol run -c FILE``."""
    from xcol.config import ConfigError, config_from_args
    from xcol.runtime import apply_runtime
    from xcol.runtime import run as run_loop

    try:
        cfg = config_from_args(args)
        apply_runtime(cfg.runtime)
    except ConfigError as exc:
        print(f"xcol run: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(level=cfg.runtime.log_level.upper(), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        return run_loop(_run(cfg))
    except ConfigError as exc:    # found at start-up, e.g. a symbol the exchange lacks
        print(f"xcol run: {exc}", file=sys.stderr)
        return 2
