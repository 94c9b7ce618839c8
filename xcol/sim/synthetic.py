"""Synthetic, correctly chained Binance USD-M captures.

Used by ``xcol demo`` when the real captures are absent: the file has the same
hftbacktest-style format as the corpus (``<ns> <json>`` lines, one REST
snapshot line, combined-stream depth and bookTicker events), so it goes
through exactly the same replay path and oracle.
"""

from __future__ import annotations

import json
import random
from pathlib import Path


def _fmt(ticks: int, decimals: int) -> str:
    return f"{ticks / 10**decimals:.{decimals}f}"


def write_binance_usdm(path: str | Path, *, events: int = 2000, seed: int = 7) -> Path:
    """Write a synthetic BTCUSDT USD-M capture with ``events`` depth events.

    Prices move on a 0.10 tick grid, sizes on 0.001; the update ids chain with
    ``pu == previous u``, a snapshot arrives after a few buffered events, and a
    bookTicker follows every depth event with the resulting top of book.
    """
    rng = random.Random(seed)
    out = Path(path)
    bids = {600000 + 10 * i: rng.randint(1, 5000) for i in range(-200, 0)}
    asks = {600000 + 10 * i: rng.randint(1, 5000) for i in range(1, 201)}
    u = 1_000_000
    ts = 1_700_000_000_000_000_000
    lines: list[str] = []
    pending_snapshot: str | None = None

    def level(px: int, qty: int) -> list[str]:
        return [_fmt(px, 2 - 1) + "0", _fmt(qty, 3)]

    for n in range(events):
        if n == 5:
            pending_snapshot = json.dumps({
                "lastUpdateId": u, "E": 0, "T": 0,
                "bids": [level(p, q) for p, q in sorted(bids.items(), reverse=True)],
                "asks": [level(p, q) for p, q in sorted(asks.items())],
            }, separators=(",", ":"))
        best_bid, best_ask = max(bids), min(asks)
        changes_b: dict[int, int] = {}
        changes_a: dict[int, int] = {}
        for _ in range(rng.randint(1, 12)):
            side_bid = rng.random() < 0.5
            if side_bid:
                px = best_bid - 10 * rng.randint(0, 30)
                qty = 0 if rng.random() < 0.3 and px in bids and len(bids) > 20 else rng.randint(
                    1, 5000)
                changes_b[px] = qty
            else:
                px = best_ask + 10 * rng.randint(0, 30)
                qty = 0 if rng.random() < 0.3 and px in asks and len(asks) > 20 else rng.randint(
                    1, 5000)
                changes_a[px] = qty
        for px, qty in changes_b.items():
            if qty:
                bids[px] = qty
            else:
                bids.pop(px, None)
        for px, qty in changes_a.items():
            if qty:
                asks[px] = qty
            else:
                asks.pop(px, None)
        # keep the book uncrossed
        while max(bids) >= min(asks):
            bids.pop(max(bids))
        pu, first = u, u + 1
        u += rng.randint(1, 40)
        ts += 1_000_000
        data = {
            "e": "depthUpdate", "E": ts // 1_000_000, "T": ts // 1_000_000, "s": "BTCUSDT",
            "U": first, "u": u, "pu": pu,
            "b": [level(p, q) for p, q in sorted(changes_b.items())],
            "a": [level(p, q) for p, q in sorted(changes_a.items())],
        }
        lines.append(f"{ts} " + json.dumps({"stream": "btcusdt@depth@0ms", "data": data},
                                           separators=(",", ":")))
        bb, ba = max(bids), min(asks)
        tick = {"e": "bookTicker", "u": u, "s": "BTCUSDT", "b": level(bb, 0)[0],
                "B": _fmt(bids[bb], 3), "a": level(ba, 0)[0], "A": _fmt(asks[ba], 3)}
        lines.append(f"{ts + 1000} " + json.dumps({"stream": "btcusdt@bookTicker",
                                                   "data": tick}, separators=(",", ":")))
        if pending_snapshot is not None and n == 8:
            lines.append(f"{ts + 2000} {pending_snapshot}")
            pending_snapshot = None
    out.write_text("\n".join(lines) + "\n")
    return out
