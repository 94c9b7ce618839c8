"""Sustained records/s of the line-protocol sink: encode, and encode + send over TCP.

Workload (built outside every timed region): the real USD-M BTCUSDT capture
``$XCOL_CORPUS/binance/usdm-btcusdt-20240808.gz`` (depth, bookTicker and trade streams)
fed through :class:`xcol._fast.engine.Engine`, which writes the records every sink
receives (66k BBO, 21k trades, 6.5k book deltas, 1 snapshot); or ``--input`` a JSONL file
of records (``xcol demo --out``).  The records are cut into batches of ``--batch-bytes``
(the ``realtime`` preset's 256 KiB writes by default), the way the fan-out joins them.

Stages, each with one untimed warm-up pass and ``--rounds`` timed passes over all records
(medians reported):

* ``encode``: :meth:`IlpEncoder.encode` per batch (records → line-protocol bytes);
* ``tcp``: :meth:`IlpSink.write` per batch then one :meth:`IlpSink.flush` (every byte
  acknowledged by the receiver's TCP stack), to a discard server in another process
  (``tcp://127.0.0.1:<port>``), which counts the bytes and checks they all arrived.

The sink's record types are ``--types`` (default: the sink's default, trade,bbo,top;
``all`` adds book deltas and snapshots as one line per level).  The machine has 2 cores
shared with other work: numbers are noisy.

    PYTHONPATH=. python bench/sink_ilp.py --rounds 5 --json ilp.json
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import time
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
from xcol.sinks.ilp import IlpSink  # noqa: E402
from xcol.sinks.ilp_encode import MEASUREMENTS, IlpEncoder  # noqa: E402

CAPTURE = "binance/usdm-btcusdt-20240808.gz"


from common import cpu_model  # noqa: E402


def corpus_root() -> Path:
    env = os.environ.get("XCOL_CORPUS")
    return Path(env) if env else REPO.parent / "shared" / "corpus"


def engine_records(path: Path) -> list[bytes]:
    """The records the engine writes for a Binance USD-M capture, one bytes per frame."""
    e = Engine("binance-usdm")
    e.add_instrument("BTCUSDT")
    out: list[bytes] = []
    with gzip.open(path, "rb") as f:
        for line in f:
            ts, _, msg = line.rstrip(b"\n").partition(b" ")
            if msg.startswith(b'{"lastUpdateId"'):
                e.feed_snapshot("BTCUSDT", msg)
            else:
                e.feed_on(0, msg, 0, int(ts))
            data, _n = e.take_output()
            if data:
                out.append(data)
    return out


def batches_of(chunks: list[bytes], batch_bytes: int) -> list[tuple[bytes, int]]:
    out: list[tuple[bytes, int]] = []
    cur: list[bytes] = []
    size = 0
    for c in chunks:
        if cur and size + len(c) > batch_bytes:
            b = b"".join(cur)
            out.append((b, b.count(b"\n")))
            cur, size = [], 0
        cur.append(c)
        size += len(c)
    if cur:
        b = b"".join(cur)
        out.append((b, b.count(b"\n")))
    return out


# --------------------------------------------------------------------------- discard server

def discard_server(port_file: str) -> None:
    """Accept connections one at a time, read and count everything; the count of each
    connection is printed when it closes.  Runs until killed."""
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)
    Path(port_file).write_text(str(srv.getsockname()[1]))
    buf = bytearray(1 << 20)
    while True:
        conn, _ = srv.accept()
        total = 0
        with conn:
            while True:
                n = conn.recv_into(buf)
                if not n:
                    break
                total += n
        print(total, flush=True)


def start_discard(tmp: Path) -> tuple[subprocess.Popen[str], int]:
    port_file = tmp / "discard.port"
    port_file.unlink(missing_ok=True)
    proc = subprocess.Popen([sys.executable, __file__, "--discard-server", str(port_file)],
                            stdout=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 10
    while not port_file.exists() or not port_file.read_text():
        if time.monotonic() > deadline or proc.poll() is not None:
            proc.kill()
            raise RuntimeError("discard server did not start")
        time.sleep(0.01)
    return proc, int(port_file.read_text())


# --------------------------------------------------------------------------- stages

def bench_encode(batches: list[tuple[bytes, int]], kw: dict[str, Any],
                 rounds: int) -> dict[str, Any]:
    enc = IlpEncoder(**kw)
    total = sum(n for _, n in batches)
    for b, _ in batches:  # warm-up
        enc.encode(b)
    times = []
    lines = out_bytes = 0
    for _ in range(rounds):
        enc.reset_series()
        lines = out_bytes = 0
        t0 = time.perf_counter_ns()
        for b, _ in batches:
            r = enc.encode(b)
            lines += r.lines
            out_bytes += len(r.data)
        times.append(time.perf_counter_ns() - t0)
    med = statistics.median(times)
    return {"records": total, "lines": lines, "ilp_bytes": out_bytes,
            "records_per_s": total / (med / 1e9), "lines_per_s": lines / (med / 1e9),
            "ns_per_record": med / total, "round_s": [t / 1e9 for t in times]}


async def _tcp_rounds(batches: list[tuple[bytes, int]], kw: dict[str, Any], rounds: int,
                      port: int) -> tuple[list[int], IlpSink]:
    sink = IlpSink(f"tcp://127.0.0.1:{port}", **kw)
    await sink.open()
    times = []
    for r in range(rounds + 1):  # round 0 is the warm-up
        sink.encoder.reset_series()
        t0 = time.perf_counter_ns()
        for b, n in batches:
            await sink.write(b, n)
        await sink.flush()
        if r:
            times.append(time.perf_counter_ns() - t0)
    await sink.close()
    return times, sink


def bench_tcp(batches: list[tuple[bytes, int]], kw: dict[str, Any], rounds: int,
              loop: str, tmp: Path) -> dict[str, Any]:
    proc, port = start_discard(tmp)
    try:
        coro = _tcp_rounds(batches, kw, rounds, port)
        if loop == "uvloop":
            import uvloop
            times, sink = uvloop.run(coro)
        else:
            times, sink = asyncio.run(coro)
        # the server prints the byte count when the connection closes
        assert proc.stdout is not None
        received = int(proc.stdout.readline())
    finally:
        proc.kill()
        proc.wait()
    st = sink.stats()
    if received != st["bytes"]:
        raise RuntimeError(f"discard server got {received} bytes, the sink sent {st['bytes']}")
    total = sum(n for _, n in batches)
    med = statistics.median(times)
    return {"records": total, "records_per_s": total / (med / 1e9),
            "lines_per_s": st["lines"] / (rounds + 1) / (med / 1e9),
            "mb_per_s": st["bytes"] / (rounds + 1) / (med / 1e9) / 1e6,
            "ns_per_record": med / total, "round_s": [t / 1e9 for t in times],
            "write_ns_p50": st["write_ns"]["p50"], "write_ns_p99": st["write_ns"]["p99"],
            "flush_ns_p50": st["flush_ns"]["p50"], "received_bytes": received,
            "failures": st["failures"]}


def machine() -> dict[str, Any]:
    cpu = cpu_model()

    def ver(name: str) -> str | None:
        try:
            return version(name)
        except PackageNotFoundError:
            return None

    return {"cpu": cpu, "cores": os.cpu_count(),
            "python": f"{platform.python_implementation()} {platform.python_version()}",
            "uvloop": ver("uvloop"), "xcol": getattr(xcol, "__version__", None),
            "platform": platform.platform(), "load_avg": os.getloadavg()}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--input", type=Path, help="JSONL records (default: engine over the corpus)")
    ap.add_argument("--corpus", type=Path, default=None, help="corpus root ($XCOL_CORPUS)")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--batch-bytes", type=int, default=256 * 1024)
    ap.add_argument("--types", default="trade,bbo,top", help="record types, or 'all'")
    ap.add_argument("--decimals", choices=["double", "string", "both"], default="double")
    ap.add_argument("--loop", choices=["uvloop", "asyncio"], default="uvloop")
    ap.add_argument("--json", type=Path, help="write the results here")
    ap.add_argument("--discard-server", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.discard_server:
        discard_server(args.discard_server)
        return 0
    if args.input:
        chunks = [line + b"\n" for line in args.input.read_bytes().splitlines() if line]
        source = str(args.input)
    else:
        path = (args.corpus or corpus_root()) / CAPTURE
        if not path.exists():
            print(f"capture not found: {path} (set XCOL_CORPUS or --input)", file=sys.stderr)
            return 2
        chunks = engine_records(path)
        source = f"engine over {CAPTURE}"
    batches = batches_of(chunks, args.batch_bytes)
    types = tuple(MEASUREMENTS) if args.types == "all" else tuple(args.types.split(","))
    kw: dict[str, Any] = {"types": types, "decimals": args.decimals}
    n = sum(k for _, k in batches)
    print(f"{n:,} records in {len(batches)} batches of <= {args.batch_bytes:,} bytes "
          f"({source}); types {','.join(types)}, decimals {args.decimals}, loop {args.loop}")
    tmp = Path(os.environ.get("TMPDIR", "/tmp"))
    enc = bench_encode(batches, kw, args.rounds)
    print(f"encode      {enc['records_per_s']:>12,.0f} records/s  {enc['lines_per_s']:>12,.0f} "
          f"lines/s  {enc['ns_per_record']:>7,.0f} ns/record")
    tcp = bench_tcp(batches, kw, args.rounds, args.loop, tmp)
    print(f"tcp send    {tcp['records_per_s']:>12,.0f} records/s  {tcp['lines_per_s']:>12,.0f} "
          f"lines/s  {tcp['ns_per_record']:>7,.0f} ns/record  {tcp['mb_per_s']:,.1f} MB/s  "
          f"(write p50 {tcp['write_ns_p50'] / 1e6:.2f} ms, flush p50 "
          f"{tcp['flush_ns_p50'] / 1e6:.2f} ms)")
    if args.json:
        doc = {"bench": "sink_ilp", "date": datetime.now(UTC).isoformat(timespec="seconds"),
               "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
               "machine": machine(), "source": source, "types": list(types),
               "decimals": args.decimals, "loop": args.loop, "rounds": args.rounds,
               "batch_bytes": args.batch_bytes, "batches": len(batches),
               "encode": enc, "tcp": tcp}
        args.json.write_text(json.dumps(doc, indent=2) + "\n")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
