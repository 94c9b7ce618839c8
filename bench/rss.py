"""Resident memory of ``xcol run`` with N books on 2 lines (issue target: ≤ 60 MB, 30 books).

The simulator (synthetic Binance USD-M, ``--symbols N``, two lines) and the collector
(``xcol run``, depth + bbo + trades on both lines, a JSONL sink) run as separate
processes; the collector's VmRSS and VmHWM are read from /proc after it has synced every
book and run for ``--seconds``.

    python bench/rss.py --symbols 30 --seconds 20 --json out.json
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ENV = dict(os.environ, PYTHONPATH=str(REPO))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _status(pid: int) -> dict[str, int]:
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(("VmRSS:", "VmHWM:")):
            k, v = line.split(":", 1)
            out[k] = int(v.split()[0]) * 1024
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--symbols", type=int, default=30)
    ap.add_argument("--rate", type=float, default=3000.0, help="book updates/s, all symbols")
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--json", metavar="PATH")
    args = ap.parse_args(argv)
    port = _free_port()
    http = _free_port()
    with tempfile.TemporaryDirectory() as tmp:
        sim = subprocess.Popen(
            [sys.executable, "-m", "xcol", "sim", "--exchange", "binance-usdm", "--synthetic",
             "--symbols", str(args.symbols), "--rate", str(args.rate), "--lines", "2",
             "--delay-ms", "0,1", "--port", str(port), "--stats-every", "0"],
            env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            time.sleep(2.0)
            from xcol.sim.server import SimConfig, Simulator

            names = Simulator(SimConfig(exchange="binance-usdm", source=[],
                                        symbols=args.symbols)).instruments
            col = subprocess.Popen(
                [sys.executable, "-m", "xcol", "run",
                 "--set", "feeds.0.exchange=binance-usdm",
                 "--set", f"feeds.0.symbols={','.join(names)}",
                 "--set", f"feeds.0.endpoints=ws://127.0.0.1:{port},ws://127.0.0.1:{port + 1}",
                 "--set", f"feeds.0.rest=http://127.0.0.1:{port}",
                 "--set", f"runtime.http=127.0.0.1:{http}",
                 "--set", f"sinks.jsonl.path={tmp}/out.jsonl",
                 "--set", "runtime.resync.rate_per_s=50", "--set", "runtime.resync.burst=50"],
                env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            try:
                synced = 0
                deadline = time.monotonic() + 60
                while time.monotonic() < deadline:
                    time.sleep(0.5)
                    try:
                        with urllib.request.urlopen(f"http://127.0.0.1:{http}/stats",
                                                    timeout=2) as r:
                            st = json.loads(r.read())
                    except OSError:
                        continue
                    books = [s for s in st["streams"] if s["channel"] == "depth"]
                    synced = sum(1 for s in books if s["synced"])
                    if synced == args.symbols:
                        break
                time.sleep(args.seconds)
                mem = _status(col.pid)
                with urllib.request.urlopen(f"http://127.0.0.1:{http}/stats", timeout=2) as r:
                    st = json.loads(r.read())
            finally:
                col.terminate()
                col.wait(30)
        finally:
            sim.terminate()
            sim.wait(30)
    res = {"benchmark": "rss", "date": datetime.now(UTC).isoformat(timespec="seconds"),
           "books": args.symbols, "lines": 2, "connections": len(st["connections"]),
           "books_synced": synced, "rss_bytes": mem["VmRSS"], "peak_rss_bytes": mem["VmHWM"],
           "published": st["counters"]["published"], "target_bytes": 60 * 1024 * 1024}
    print(f"{args.symbols} books on 2 lines ({res['connections']} connections, "
          f"{synced} synced): RSS {mem['VmRSS'] / 2**20:.1f} MiB, peak "
          f"{mem['VmHWM'] / 2**20:.1f} MiB (target 60 MB)")
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
