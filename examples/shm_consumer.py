"""A live top-of-book from the collector's shared-memory ring, like a trader's terminal.

Start the collector with the ``shm`` sink, then this consumer in another terminal::

    xcol sim --exchange binance-usdm --port 9001 --lines 2 &
    xcol run -c examples/sim.toml --set sinks.shm.name=xcol
    python examples/shm_consumer.py --name xcol

It attaches to ``/dev/shm/xcol`` (waiting for the collector if the ring is not there
yet), keeps the last bbo and trade of every instrument, and redraws a table every
``--interval`` seconds.  It never slows the collector down: if it falls a whole ring behind,
the reader skips ahead and the footer shows how many records it lost.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass
from typing import Any

from xcol.shm import DEFAULT_DIR, Reader, RingNotFoundError

_BBO = b'{"type":"bbo"'
_TRADE = b'{"type":"trade"'


@dataclass
class Quote:
    bid: str = "-"
    bid_qty: str = "-"
    ask: str = "-"
    ask_qty: str = "-"
    last: str = "-"
    last_qty: str = "-"
    side: str = ""
    ts_recv: int = 0
    updates: int = 0


def attach(args: argparse.Namespace) -> Reader:
    waited = False
    while True:
        try:
            return Reader(args.name, dir=args.dir, start="oldest" if args.oldest else "latest")
        except RingNotFoundError as exc:
            if not waited:
                print(f"{exc}; waiting for the collector...", file=sys.stderr)
                waited = True
            time.sleep(1.0)


def apply(book: dict[tuple[str, str], Quote], rec: bytes) -> None:
    # Only two record types matter here: skip the rest before parsing anything.
    if rec.startswith(_BBO):
        r: dict[str, Any] = json.loads(rec)
        q = book.setdefault((r["exchange"], r["symbol"]), Quote())
        q.bid, q.bid_qty, q.ask, q.ask_qty = r["bid"], r["bid_qty"], r["ask"], r["ask_qty"]
    elif rec.startswith(_TRADE):
        r = json.loads(rec)
        q = book.setdefault((r["exchange"], r["symbol"]), Quote())
        q.last, q.last_qty, q.side = r["price"], r["qty"], r["side"] or ""
    else:
        return
    q.ts_recv = r["ts_recv"]
    q.updates += 1


def render(book: dict[tuple[str, str], Quote], reader: Reader, clear: bool) -> str:
    now = time.time_ns()
    lines = [f"{'exchange':<15}{'symbol':<14}{'bid qty':>12}{'bid':>12}{'ask':>12}"
             f"{'ask qty':>12}{'spread':>10}{'last':>12}{'':>6}{'age ms':>10}{'updates':>10}"]
    for (exch, sym), q in sorted(book.items()):
        try:
            spread = f"{float(q.ask) - float(q.bid):.2f}"
        except ValueError:
            spread = "-"
        age = f"{(now - q.ts_recv) / 1e6:.0f}" if q.ts_recv else "-"
        lines.append(f"{exch:<15}{sym:<14}{q.bid_qty:>12}{q.bid:>12}{q.ask:>12}"
                     f"{q.ask_qty:>12}{spread:>10}{q.last:>12}{q.side:>6}{age:>10}"
                     f"{q.updates:>10}")
    lines.append(f"ring {reader.path} ({reader.writer_state}, writer pid {reader.writer_pid}):"
                 f" {reader.records:,} records read, lag {reader.lag} slots, lost "
                 f"{reader.lost:,}, overruns {reader.overruns}, restarts {reader.restarts}")
    out = "\n".join(lines)
    return ("\x1b[H\x1b[2J" + out) if clear else out + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--name", default="xcol", help="ring name ([sinks.shm] name)")
    ap.add_argument("--dir", default=DEFAULT_DIR, help="ring directory ([sinks.shm] dir)")
    ap.add_argument("--oldest", action="store_true",
                    help="start with the records still in the ring")
    ap.add_argument("--interval", type=float, default=0.5, help="seconds between redraws")
    ap.add_argument("--duration", type=float, default=0.0, help="stop after N s (0: never)")
    args = ap.parse_args(argv)

    book: dict[tuple[str, str], Quote] = {}
    clear = sys.stdout.isatty()
    start = next_draw = time.monotonic()
    with attach(args) as reader:
        try:
            while not args.duration or time.monotonic() - start < args.duration:
                batch = reader.read_batch(4096)
                for rec in batch:
                    apply(book, rec)
                now = time.monotonic()
                if now >= next_draw:
                    sys.stdout.write(render(book, reader, clear))
                    sys.stdout.flush()
                    next_draw = now + args.interval
                if not batch:
                    if reader.replaced():  # the collector came back with a new ring
                        reader.reattach()
                    time.sleep(0.001)      # caught up: poll again in a millisecond
        except KeyboardInterrupt:
            pass
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
