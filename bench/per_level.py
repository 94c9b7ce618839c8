"""How the hot path's cost grows with the number of levels in a depth message.

Replays the same USD-M BTCUSDT workload as ``hotpath.py --market usdm`` (the capture's
depth stream from its snapshot on, ``--copies`` chained copies) through
``Engine.time_frames``: once decoding only, once decoding and applying to the book.  A
warm-up pass, then ``--rounds`` rounds on fresh engines; each message's time is its
minimum over the rounds (the least disturbed).  Prints, per level count, the median
decode and total ns and their difference (the book stage), and a least-squares line
``fixed + per_level * levels`` for each stage over messages of 5-60 levels (the bulk of
the stream).  Every sample includes one clock read.

    python bench/per_level.py --rounds 3
"""

from __future__ import annotations

import argparse
import array
import gc
import json
import statistics
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE)]

import hotpath  # noqa: E402

from xcol._fast.engine import Engine  # noqa: E402


def _times(frames: list[bytes], snapshot: bytes, decode_only: bool, rounds: int) -> list[int]:
    best: list[int] | None = None
    n = len(frames)
    for r in range(rounds + 1):
        e = Engine("binance-usdm")
        e.add_instrument("BTCUSDT", *hotpath.SCALES)
        if e.feed_snapshot("BTCUSDT", snapshot) != hotpath.R_SNAPSHOT:
            raise SystemExit("per_level: the snapshot did not load")
        out = array.array("q", bytes(8 * n))
        e.time_frames(frames, memoryview(out), decode_only)
        if r == 0:
            continue                    # warm-up
        best = list(out) if best is None else [min(a, b) for a, b in zip(best, out, strict=True)]
    assert best is not None
    return best


#: level-count ranges for --buckets: the bulk, then the large messages of the tail
BUCKETS = ((0, 20), (20, 60), (60, 128), (128, 256), (256, 400), (400, 600), (600, 2000))


def _fit(xs: list[int], ys: list[int]) -> tuple[float, float]:
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    sxx = sum((x - mx) ** 2 for x in xs)
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sxx
    return my - slope * mx, slope


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--copies", type=int, default=5)
    ap.add_argument("--buckets", action="store_true",
                    help="also print medians over level-count ranges up to the largest")
    args = ap.parse_args(argv)
    inputs = hotpath.usdm_inputs(args.copies, "per_level")
    if inputs is None:
        return 2
    w, snapshot = inputs
    levels = []
    for f in w.frames:
        d = json.loads(f)["data"]
        levels.append(len(d["b"]) + len(d["a"]))
    gc.disable()
    dec = _times(w.frames, snapshot.encode(), True, args.rounds)
    tot = _times(w.frames, snapshot.encode(), False, args.rounds)
    gc.enable()
    by: dict[int, list[int]] = {}
    for i, lv in enumerate(levels):
        by.setdefault(lv, []).append(i)
    print(f"{len(levels)} messages, median {statistics.median(levels)} levels")
    print(f"{'levels':>6} {'msgs':>6} {'decode':>7} {'total':>7} {'book':>6}")
    for lv in sorted(by):
        ix = by[lv]
        if len(ix) < 50:
            continue
        d = statistics.median(dec[i] for i in ix)
        t = statistics.median(tot[i] for i in ix)
        print(f"{lv:>6} {len(ix):>6} {d:>7.0f} {t:>7.0f} {t - d:>6.0f}")
    if args.buckets:
        print(f"{'levels':>10} {'msgs':>6} {'median':>6} {'decode':>7} {'/level':>6} "
              f"{'book':>6} {'/level':>6}")
        for lo, hi in BUCKETS:
            ix = [i for i, lv in enumerate(levels) if lo <= lv < hi]
            if not ix:
                continue
            m = statistics.median(levels[i] for i in ix)
            d = statistics.median(dec[i] for i in ix)
            b = statistics.median(tot[i] - dec[i] for i in ix)
            print(f"{f'{lo}-{hi}':>10} {len(ix):>6} {m:>6.0f} {d:>7.0f} {d / m:>6.1f} "
                  f"{b:>6.0f} {b / m:>6.1f}")
    sel = [i for i, lv in enumerate(levels) if 5 <= lv <= 60]
    xs = [levels[i] for i in sel]
    for name, ys in (("decode", [dec[i] for i in sel]), ("total", [tot[i] for i in sel]),
                     ("book", [tot[i] - dec[i] for i in sel])):
        a, b = _fit(xs, ys)
        print(f"{name:>6}: {a:6.0f} ns + {b:5.1f} ns a level  (5-60 levels, least squares)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
