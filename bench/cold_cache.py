"""How much slower is the hot path when its caches are cold?

Feeds the USD-M BTCUSDT depth workload of ``hotpath.py`` (``--copies`` chained copies)
through an engine one frame at a time (``Engine.feed_on``: the listener's path with
records written), with the stage clocks on, alternately:

* ``warm``: frame after frame, as at saturation;
* ``cold``: before every frame, ``--evict-mb`` of memory is written (one byte per 64-byte
  line), which pushes the engine's buffers, books and code out of L1/L2 and much of L3,
  as an idle core that the host lent to other work finds them.

Prints the code latency and its stages (decode, book, encode) at p50 / p99 / p99.9 per
mode, ``--rounds`` rounds each, alternating.  This is the in-process side of the e2e
fixed-rate runs, where the collector's core is ~90% idle (see ``runtime.busy_poll``).

    python bench/cold_cache.py --rounds 2
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE)]

import hotpath  # noqa: E402

from xcol._fast.engine import Engine  # noqa: E402

PCTS = (50.0, 99.0, 99.9)


def _run(frames: list[bytes], snapshot: bytes, evict: bytearray | None) -> dict[str, list[float]]:
    e = Engine("binance-usdm")
    e.add_instrument("BTCUSDT", *hotpath.SCALES)
    e.stage_timing = True
    if e.feed_snapshot("BTCUSDT", snapshot) != hotpath.R_SNAPSHOT:
        raise SystemExit("cold_cache: the snapshot did not load")
    hists = {"code": e.code_ns, "decode": e.decode_ns, "book": e.book_ns,
             "encode": e.encode_ns}
    for h in hists.values():
        h.reset()
    zeros = bytes(len(evict) // 64) if evict is not None else b""
    gc.disable()
    try:
        for f in frames:
            if evict is not None:
                evict[::64] = zeros
            e.feed_on(0, f)
            e.take_output()
    finally:
        gc.enable()
    return {name: [v / 1e3 for v in h.percentiles(PCTS)] for name, h in hists.items()}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--copies", type=int, default=2)
    ap.add_argument("--evict-mb", type=int, default=8)
    ap.add_argument("--json", metavar="PATH")
    args = ap.parse_args(argv)
    inputs = hotpath.usdm_inputs(args.copies, "cold_cache")
    if inputs is None:
        return 2
    w, snapshot = inputs
    buf = bytearray(args.evict_mb << 20)
    runs: list[dict[str, Any]] = []
    for r in range(args.rounds):
        for mode in ("warm", "cold"):
            res = _run(w.frames, snapshot.encode(), buf if mode == "cold" else None)
            runs.append({"round": r + 1, "mode": mode, "us": res})
            print(f"round {r + 1} {mode}: " + "  ".join(
                f"{k} " + "/".join(f"{v:.2f}" for v in vals) for k, vals in res.items())
                + "  (p50/p99/p99.9 us)")
    if args.json:
        out = {"benchmark": "cold_cache", "date": datetime.now(UTC).isoformat(timespec="seconds"),
               "machine": hotpath.machine(), "messages": len(w.frames),
               "evict_mb": args.evict_mb, "percentiles": list(PCTS), "runs": runs}
        Path(args.json).write_text(json.dumps(out, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
