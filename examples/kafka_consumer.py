"""Live top of book from xcol's Kafka ``bbo`` topic, printed like a trader's terminal.

Reads every partition of the topic with ``assign()`` (no consumer group, so it starts at
once and commits nothing), keeps the latest best bid/ask per instrument and redraws a
table: bid size, bid, ask, ask size, spread (in ticks of the last digit and in basis
points), mid, the exchange-to-now age of the quote and the updates per second.

    python examples/kafka_consumer.py --bootstrap 127.0.0.1:9092
    python examples/kafka_consumer.py --topic xcol.bbo --from-beginning --duration 10

Records are the JSON lines xcol writes (docs/sinks.md): keys ``exchange:symbol``,
values ``{"type":"bbo","exchange":...,"symbol":...,"ts_exchange":ms,"bid":"...",
"bid_qty":"...","ask":"...","ask_qty":"..."}``; prices stay decimal strings.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation

from confluent_kafka import Consumer, TopicPartition

OFFSET_BEGINNING = -2
OFFSET_END = -1


@dataclass
class Quote:
    """The latest best bid/ask of one instrument."""

    exchange: str
    symbol: str
    bid: str = ""
    bid_qty: str = ""
    ask: str = ""
    ask_qty: str = ""
    ts_exchange: int = 0
    updates: int = 0
    window: list[float] = field(default_factory=list)


def spread(q: Quote) -> tuple[str, str, str]:
    """(spread, spread in bp, mid) as text, '-' when a side is missing."""
    try:
        bid, ask = Decimal(q.bid), Decimal(q.ask)
    except InvalidOperation:
        return "-", "-", "-"
    mid = (bid + ask) / 2
    s = ask - bid
    bp = s / mid * 10_000 if mid else Decimal(0)
    return f"{s:f}", f"{bp:.2f}", f"{mid:f}"


def render(quotes: dict[str, Quote], now_ms: int, received: int, clear: bool) -> str:
    """The table as one string."""
    lines = [f"{'exchange':<14} {'symbol':<16} {'bid qty':>12} {'bid':>12}  {'ask':<12} "
             f"{'ask qty':<12} {'spread':>10} {'bp':>6} {'mid':>14} {'age ms':>7} "
             f"{'upd/s':>6}"]
    cut = time.monotonic() - 1.0
    for key in sorted(quotes):
        q = quotes[key]
        q.window[:] = [t for t in q.window if t >= cut]
        s, bp, mid = spread(q)
        age = now_ms - q.ts_exchange if q.ts_exchange else 0
        lines.append(f"{q.exchange:<14} {q.symbol:<16} {q.bid_qty:>12} {q.bid:>12}  "
                     f"{q.ask:<12} {q.ask_qty:<12} {s:>10} {bp:>6} {mid:>14} {age:>7} "
                     f"{len(q.window):>6}")
    lines.append(f"\n{len(quotes)} instruments, {received:,} bbo records received")
    text = "\n".join(lines)
    return ("\x1b[H\x1b[2J" + text) if clear else text + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    """Command line entry point."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bootstrap", default="127.0.0.1:9092", help="host:port[,host:port]")
    ap.add_argument("--topic", default="xcol.bbo", help="the bbo topic (default xcol.bbo)")
    ap.add_argument("--from-beginning", action="store_true",
                    help="replay the topic from its start (default: new records only)")
    ap.add_argument("--symbols", default="", help="comma-separated symbols to show (default all)")
    ap.add_argument("--every", type=float, default=0.5, help="seconds between redraws")
    ap.add_argument("--duration", type=float, default=0.0, help="seconds to run (0: forever)")
    args = ap.parse_args(argv)
    wanted = {s.strip() for s in args.symbols.split(",") if s.strip()}

    consumer = Consumer({"bootstrap.servers": args.bootstrap, "group.id": "xcol-example",
                         "enable.auto.commit": False, "log_level": 3})
    try:
        md = consumer.list_topics(args.topic, timeout=10)
        tm = md.topics.get(args.topic)
        if tm is None or tm.error is not None or not tm.partitions:
            print(f"topic {args.topic!r} not found on {args.bootstrap} "
                  f"({tm.error if tm is not None else 'no metadata'})", file=sys.stderr)
            return 1
        start = OFFSET_BEGINNING if args.from_beginning else OFFSET_END
        consumer.assign([TopicPartition(args.topic, p, start) for p in sorted(tm.partitions)])
        quotes: dict[str, Quote] = {}
        received = 0
        clear = sys.stdout.isatty()
        t_end = time.monotonic() + args.duration if args.duration > 0 else float("inf")
        next_draw = time.monotonic()
        while time.monotonic() < t_end:
            for m in consumer.consume(10_000, 0.1):
                if m.error() is not None or m.value() is None:
                    continue
                try:
                    d = json.loads(m.value() or b"")
                except ValueError:
                    continue
                if d.get("type") != "bbo" or (wanted and d.get("symbol") not in wanted):
                    continue
                key = f"{d['exchange']}:{d['symbol']}"
                q = quotes.get(key)
                if q is None:
                    q = quotes[key] = Quote(d["exchange"], d["symbol"])
                q.bid, q.bid_qty = d.get("bid") or "", d.get("bid_qty") or ""
                q.ask, q.ask_qty = d.get("ask") or "", d.get("ask_qty") or ""
                q.ts_exchange = int(d.get("ts_exchange") or 0)
                q.updates += 1
                q.window.append(time.monotonic())
                received += 1
            if time.monotonic() >= next_draw:
                next_draw = time.monotonic() + args.every
                sys.stdout.write(render(quotes, int(time.time() * 1000), received, clear))
                sys.stdout.flush()
    except KeyboardInterrupt:
        pass
    finally:
        consumer.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
