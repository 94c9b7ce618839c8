"""Per-message hot-path latency of xcol against cryptofeed and a plain-Python reference.

Everything runs in ONE interpreter so the ratios compare like with like.  cryptofeed is
optional: without it its column is ``null``.  To get the ratio, run under an interpreter
that has cryptofeed 2.4.1 (xcol is imported from this checkout when it is not installed;
the built extensions must match the interpreter), e.g.::

    /tmp/probe/bin/python bench/hotpath.py --market usdm --memory
    /tmp/probe/bin/python bench/hotpath.py --market okx --json okx.json

Workloads (loaded and prepared outside every timed region):

* ``usdm``: the real USD-M BTCUSDT ``depth@0ms`` stream of
  ``$XCOL_CORPUS/binance/usdm-btcusdt-20240808.gz``, from the REST snapshot and the
  depth event that bridges it on (6,547 events).  ``--copies`` R builds R back-to-back
  copies with ``U``, ``u`` and ``pu`` shifted by ``k * (last u - first pu)``, so copy k+1
  chains on copy k and every book keeps syncing; messages are re-serialized with
  ``json.dumps(..., separators=(",", ":"))``, prices and sizes staying the exchange's
  strings.  Every round starts from the snapshot on fresh engines / handlers.
* ``okx``: the 290 OKX v5 ``books`` messages (snapshot + updates with CRC32 ``checksum``,
  3 instruments) of ``cryptofeed/OKX.ws.1.0``.  Shifted copies would break the checksums,
  so a round replays the same messages ``--copies`` times, each time on fresh books.
  xcol and cryptofeed (``checksum_validation=True``) and the Python reference all verify
  every checksum; xcol's verified count is reported.

How it is measured:

* xcol: ``Engine.time_frames(frames, out, decode_only)`` reads CLOCK_MONOTONIC in C around
  each frame.  Stage ``decode`` is ``decode_only=True`` (JSON decode only), ``total`` is
  decode + route + book (``decode_only=False``), and ``book`` is total - decode (difference
  of the p50s and of the means; percentiles do not subtract, so only those two).  Each
  sample includes one clock read; ``timer`` reports the floor (``time_frames`` on empty
  frames, which fail in simdjson at once) so it can be judged.  ``total_received`` is the
  total again with each frame first copied, untimed, into a receive buffer, as a socket
  read leaves a live frame (in the cache); the round's frames (52 MB for 5 copies) are
  otherwise read from memory.  It is shown beside the target's measure, not instead of
  it.  ``run_ns_per_msg_mean`` is
  ``Engine.run`` timed as a whole with ``perf_counter_ns``: no per-message clock at all.
* Peers: a Python loop calling ``handle(msg, ts)`` over the round, timed as a whole with
  ``time.perf_counter_ns`` (mean ns/msg); then the same rounds again with
  ``perf_counter_ns`` around each call for p50/p90/p99 (``--no-peer-percentiles`` skips).
  Peers get ``str`` messages (what a websocket client hands them); xcol gets ``bytes``.
* One untimed warm-up pass per implementation and stage, then ``--rounds`` timed rounds;
  every statistic is the median over rounds.  Engines and handlers are built and given the
  snapshot outside the timed region.  The cyclic GC is off inside timed regions (``--gc``
  leaves it on), as ``timeit`` does.  Every round is checked afterwards (all applied, no
  gap, no reset or REST read, every checksum verified) and a failure aborts the run.

``--memory`` adds the size of a book holding 1,000 bid and 1,000 ask levels, loaded from a
synthetic REST snapshot (``Book.memory_bytes()``: the level storage, both sides).
"""

from __future__ import annotations

import argparse
import array
import gc
import hashlib
import json
import os
import platform
import re
import shlex
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import peers

REPO = Path(__file__).resolve().parents[1]
try:
    import xcol
except ImportError:  # not installed: use the checkout this script lives in
    sys.path.insert(0, str(REPO))
    import xcol

from xcol._fast.decode import simdjson_implementation  # noqa: E402
from xcol._fast.engine import Engine  # noqa: E402

Stats = dict[str, float]
Handler = Callable[[str, float], None]

R_APPLIED, R_SNAPSHOT = 0, 7
USDM_FILE = Path("binance") / "usdm-btcusdt-20240808.gz"
# The scales (decimals kept) of the USD-M BTCUSDT book.  The default is what the
# collector uses live (xcol.exchanges.meta: min(max(decimals of tick/lot, 8), 12) for
# tick 0.10 and lot 0.001), so every price and size is rescaled by a multiply;
# ``--scales 2,3`` keeps them as written (no rescaling).
SCALES: tuple[int, int] = (8, 8)
OKX_FILE = Path("cryptofeed") / "OKX.ws.1.0"
OKX_INSTRUMENTS_FILE = Path("cryptofeed") / "OKX.0"
RECEIVED_METHOD = (
    "decode + book with each frame first copied (untimed) into a receive buffer, as a "
    "socket read leaves it: in the cache, not fetched from among all the round's frames"
)
TARGETS = {
    "usdm_total_p50_ns_max": 500,
    "usdm_ratio_vs_cryptofeed_min": 25,
    "okx_ratio_vs_cryptofeed_min": 30,
    "book_1000_levels_bytes_max": 64 * 1024,
}


class CheckFailed(Exception):
    """A timed round did not process the workload the way a correct book must."""


from common import cpu_model  # noqa: E402


def _require(ok: bool, what: str) -> None:
    if not ok:
        raise CheckFailed(what)


# ------------------------------------------------------------------------------ workloads


@dataclass
class Workload:
    """One market's messages plus how to build and check each implementation on them."""

    market: str
    description: str
    msgs: list[tuple[str, float]]  # one repetition, as the peers get it
    frames: list[bytes]  # the same messages as xcol gets them
    reps: int  # fresh-instance repetitions per round
    make_xcol: Callable[[], Any]
    check_xcol: Callable[[Any], dict[str, int]]
    make_ref: Callable[[], Handler]
    check_ref: Callable[[Any], None]
    make_cf: Callable[[], Handler] | None
    check_cf: Callable[[Any], None]

    @property
    def messages(self) -> int:
        """Messages per round."""
        return len(self.msgs) * self.reps


def shifted_copies(msgs: Sequence[tuple[str, float]], copies: int) -> list[tuple[str, float]]:
    """``copies`` back-to-back copies of a USD-M depth sequence with chained update ids.

    Copy k adds ``k * (last u - first pu)`` to ``U``, ``u`` and ``pu`` (and the copy's time
    span to the receive time), so the first event of copy k+1 has ``pu`` equal to the last
    ``u`` of copy k.  Every message is re-serialized compactly; strings stay strings.
    """
    objs = [json.loads(m) for m, _ in msgs]
    first, last = objs[0]["data"], objs[-1]["data"]
    delta = last["u"] - first["pu"]
    span = msgs[-1][1] - msgs[0][1]
    out: list[tuple[str, float]] = []
    prev_u: int | None = None
    for k in range(copies):
        shift = k * delta
        for obj, (_, ts) in zip(objs, msgs, strict=True):
            d = obj["data"]
            data = {**d, "U": d["U"] + shift, "u": d["u"] + shift, "pu": d["pu"] + shift}
            if prev_u is not None:
                _require(data["pu"] == prev_u, f"copy {k}: pu {data['pu']} != prev u {prev_u}")
            prev_u = data["u"]
            out.append((json.dumps({**obj, "data": data}, separators=(",", ":")), ts + k * span))
    return out


def usdm_workload(corpus: Path, copies: int, with_cryptofeed: bool) -> Workload:
    """USD-M BTCUSDT depth from the snapshot on, ``copies`` chained copies in one round."""
    snapshot, msgs, _tickers = peers.load_binance_usdm(corpus / USDM_FILE)
    seq = shifted_copies(msgs, copies)
    n = len(seq)
    last_u = json.loads(seq[-1][0])["data"]["u"]
    snap_bytes = snapshot.encode()
    same = sum(a == b for (a, _), (b, _) in zip(msgs, seq, strict=False))

    def make_xcol() -> Any:
        e = Engine("binance-usdm")
        e.add_instrument("BTCUSDT", *SCALES)
        r = e.feed_snapshot("BTCUSDT", snap_bytes)
        _require(r == R_SNAPSHOT, f"xcol feed_snapshot returned {r}")
        return e

    def check_xcol(e: Any) -> dict[str, int]:
        c = e.counters()
        book = e.book("BTCUSDT")
        _require(c["book"]["applied"] == n, f"xcol applied {c['book']['applied']} of {n}")
        _require(e.errors_total == 0 and book.gaps == 0, f"xcol errors/gaps: {c}")
        _require(book.synced and book.last_seq == last_u, f"xcol book ended at {book!r}")
        return {"applied": c["book"]["applied"]}

    def check_ref(h: Any) -> None:
        _require(h.applied == n, f"reference applied {h.applied} of {n}")

    def make_cf() -> Handler:
        return peers.cryptofeed_binance_futures(snapshot, "BTCUSDT")

    def check_cf(h: Any) -> None:
        st = h.stats
        _require(
            st["book_callbacks"] == n and st["resets"] == 0 and st["rest_reads"] == 0,
            f"cryptofeed stats {st} (want {n} callbacks, 0 resets, 0 REST reads)",
        )

    return Workload(
        market="usdm",
        description=(
            f"binance-usdm BTCUSDT depth@0ms: {copies} chained copies x {len(msgs):,} events "
            f"(copy 0 re-serialized byte-identical for {same:,}/{len(msgs):,})"
        ),
        msgs=seq,
        frames=[m.encode() for m, _ in seq],
        reps=1,
        make_xcol=make_xcol,
        check_xcol=check_xcol,
        make_ref=lambda: peers.python_reference_binance(snapshot),
        check_ref=check_ref,
        make_cf=make_cf if with_cryptofeed else None,
        check_cf=check_cf,
    )


def _okx_recorded_instruments(path: Path) -> list[str] | None:
    """The five instrument REST bodies cryptofeed requests, as recorded in ``OKX.0``."""
    if not path.exists():
        return None
    with open(path, encoding="utf-8") as fp:
        bodies = [line.split(": ", 1)[1] for line in fp if line.startswith("http")]
    return bodies[:5]


def okx_workload(corpus: Path, copies: int, with_cryptofeed: bool) -> Workload:
    """OKX ``books`` snapshot+updates, replayed ``copies`` times per round on fresh books."""
    msgs = peers.load_okx_books(corpus / OKX_FILE)
    n = len(msgs)
    insts = list(dict.fromkeys(json.loads(m)["arg"]["instId"] for m, _ in msgs))
    recorded = _okx_recorded_instruments(corpus / OKX_INSTRUMENTS_FILE)

    def make_xcol() -> Any:
        e = Engine("okx")
        for inst in insts:
            e.add_instrument(inst)
        return e

    def check_xcol(e: Any) -> dict[str, int]:
        c = e.counters()
        stats = [e.book(inst).stats() for inst in insts]
        checked = sum(s["checksums_checked"] for s in stats)
        failed = sum(s["checksums_failed"] for s in stats)
        done = c["book"]["applied"] + c["book"]["snapshot"]
        _require(done == n and e.errors_total == 0, f"xcol OKX counters {c}")
        _require(checked == n and failed == 0, f"xcol checksums {checked} ok, {failed} failed")
        return {"applied": done, "checksums_checked": checked}

    def check_ref(h: Any) -> None:
        _require(h.validated == n, f"reference validated {h.validated} of {n}")

    def make_cf() -> Handler:
        return peers.cryptofeed_okx(insts, instruments=recorded, checksum_validation=True)

    def check_cf(h: Any) -> None:
        _require(h.feed.checksum_validation is True, "cryptofeed checksum_validation is off")
        _require(h.stats["book_callbacks"] == n, f"cryptofeed validated {h.stats} of {n}")

    return Workload(
        market="okx",
        description=(
            f"okx books (checksum on): {n} msgs x {copies} replays on fresh books, "
            f"instruments {', '.join(insts)}"
        ),
        msgs=msgs,
        frames=[m.encode() for m, _ in msgs],
        reps=copies,
        make_xcol=make_xcol,
        check_xcol=check_xcol,
        make_ref=peers.python_reference_okx,
        check_ref=check_ref,
        make_cf=make_cf if with_cryptofeed else None,
        check_cf=check_cf,
    )


# ------------------------------------------------------------------------------ timing


class _Timed:
    """Context manager for a timed region: GC collected, then off unless asked to stay."""

    def __init__(self, keep_gc: bool) -> None:
        self.keep_gc = keep_gc
        self.was_enabled = gc.isenabled()

    def __enter__(self) -> None:
        gc.collect()
        if not self.keep_gc:
            gc.disable()

    def __exit__(self, *exc: object) -> None:
        if self.was_enabled:
            gc.enable()


def summarize(samples: Sequence[int]) -> Stats:
    """p50/p90/p99 (nearest rank) and mean of per-message nanoseconds."""
    s = sorted(samples)
    n = len(s)

    def rank(pct: int) -> float:
        return float(s[max(0, (pct * n + 99) // 100 - 1)])

    return {"p50": rank(50), "p90": rank(90), "p99": rank(99), "mean": sum(s) / n}


def median_of(rounds: Sequence[Stats]) -> Stats:
    """Per-key median over rounds."""
    return {k: statistics.median(r[k] for r in rounds) for k in rounds[0]}


def xcol_round(
    wl: Workload, decode_only: bool, keep_gc: bool, received: bool = False
) -> tuple[list[int], dict[str, int]]:
    """One round of ``time_frames``: per-message ns, and the summed post-round checks.
    ``received``: each frame copied into a receive buffer before its clock starts."""
    samples: list[int] = []
    info: dict[str, int] = {}
    n = len(wl.frames)
    for _ in range(wl.reps):
        e = wl.make_xcol()
        out = array.array("q", bytes(8 * n))
        with _Timed(keep_gc):
            e.time_frames(wl.frames, out, decode_only, received)
        if not decode_only:
            for k, v in wl.check_xcol(e).items():
                info[k] = info.get(k, 0) + v
        samples.extend(out)
    return samples, info


def xcol_run_round(wl: Workload, keep_gc: bool) -> int:
    """One round of ``Engine.run`` timed as a whole (no per-message clock); total ns."""
    total = 0
    for _ in range(wl.reps):
        e = wl.make_xcol()
        with _Timed(keep_gc):
            t0 = time.perf_counter_ns()
            e.run(wl.frames)
            total += time.perf_counter_ns() - t0
        wl.check_xcol(e)
    return total


def peer_round(
    wl: Workload,
    make: Callable[[], Handler],
    check: Callable[[Any], None],
    per_message: bool,
    keep_gc: bool,
) -> tuple[int, list[int]]:
    """One peer round: whole-loop ns, or per-call ns samples when ``per_message``."""
    clock = time.perf_counter_ns
    total = 0
    samples: list[int] = []
    for _ in range(wl.reps):
        handle = make()
        msgs = wl.msgs
        if per_message:
            out = array.array("q", bytes(8 * len(msgs)))
            with _Timed(keep_gc):
                for i, (msg, ts) in enumerate(msgs):
                    t0 = clock()
                    handle(msg, ts)
                    out[i] = clock() - t0
            samples.extend(out)
        else:
            with _Timed(keep_gc):
                t0 = clock()
                for msg, ts in msgs:
                    handle(msg, ts)
                total += clock() - t0
        check(handle)
    return total, samples


def bench_xcol(wl: Workload, rounds: int, keep_gc: bool) -> dict[str, Any]:
    """Warm-up, then ``rounds`` of decode-only, total and whole-run timing for xcol."""
    n = wl.messages
    xcol_round(wl, True, keep_gc)  # warm-up, untimed
    xcol_round(wl, False, keep_gc)
    decode, total, runs, received = [], [], [], []
    info: dict[str, int] = {}
    for _ in range(rounds):
        decode.append(summarize(xcol_round(wl, True, keep_gc)[0]))
        samples, info = xcol_round(wl, False, keep_gc)
        total.append(summarize(samples))
        runs.append(xcol_run_round(wl, keep_gc) / n)
        received.append(summarize(xcol_round(wl, False, keep_gc, received=True)[0]))
    dec, tot = median_of(decode), median_of(total)
    stages: dict[str, Any] = {
        "decode": {**dec, "msgs_per_s": 1e9 / dec["mean"]},
        "book": {
            "p50": tot["p50"] - dec["p50"],
            "mean": tot["mean"] - dec["mean"],
            "method": "total - decode (difference of the p50s and of the means)",
        },
        "total": {**tot, "msgs_per_s": 1e9 / tot["mean"]},
        # not the target's measure: each frame first copied into a receive buffer,
        # untimed, so that it is in the cache as after a socket read
        "total_received": {**median_of(received), "method": RECEIVED_METHOD},
    }
    result: dict[str, Any] = {
        "ns_per_msg_p50": tot["p50"],
        "ns_per_msg_mean": tot["mean"],
        "msgs_per_s": 1e9 / tot["mean"],
        "stages": stages,
        "run_ns_per_msg_mean": statistics.median(runs),
        "rounds": {"decode": decode, "total": total, "run_ns_per_msg_mean": runs},
        "per_round_checks": info,
        "timer": timer_floor(),
    }
    if "checksums_checked" in info:
        result["checksums_verified_per_round"] = info["checksums_checked"]
    return result


def bench_peer(
    wl: Workload,
    make: Callable[[], Handler],
    check: Callable[[Any], None],
    rounds: int,
    percentiles: bool,
    keep_gc: bool,
) -> dict[str, Any]:
    """Warm-up, then whole-round mean timing and optional per-message percentiles."""
    n = wl.messages
    peer_round(wl, make, check, False, keep_gc)  # warm-up, untimed
    means = [peer_round(wl, make, check, False, keep_gc)[0] / n for _ in range(rounds)]
    mean = statistics.median(means)
    result: dict[str, Any] = {
        "ns_per_msg_mean": mean,
        "msgs_per_s": 1e9 / mean,
        "rounds_ns_per_msg_mean": means,
    }
    if percentiles:
        per = [summarize(peer_round(wl, make, check, True, keep_gc)[1]) for _ in range(rounds)]
        med = median_of(per)
        result.update(
            ns_per_msg_p50=med["p50"],
            ns_per_msg_p90=med["p90"],
            ns_per_msg_p99=med["p99"],
            per_message_timed_mean=med["mean"],
        )
    return result


def timer_floor(n: int = 20_000) -> dict[str, Any]:
    """What one per-message sample costs with nothing (much) inside it."""
    e = Engine("binance-usdm")
    frames = [b""] * n
    out = array.array("q", bytes(8 * n))
    e.time_frames(frames, out, True)
    e.time_frames(frames, out, True)
    clock = time.perf_counter_ns
    back = array.array("q", bytes(8 * n))
    for i in range(n):
        t0 = clock()
        back[i] = clock() - t0
    return {
        "time_frames_empty_frame_p50_ns": summarize(out)["p50"],
        "perf_counter_ns_back_to_back_p50_ns": summarize(back)["p50"],
        "method": (
            "time_frames(decode_only=True) on empty frames (two CLOCK_MONOTONIC reads plus a "
            "decode call that fails at once): an upper bound of the overhead in each xcol "
            "sample; perf_counter_ns back to back for the peers' per-message samples"
        ),
    }


def memory_check() -> dict[str, Any]:
    """Book.memory_bytes() of a USD-M book loaded with 1,000 bid and 1,000 ask levels."""
    bids = [[f"{60000 - i * 0.1:.2f}", f"{1 + i % 7:.3f}"] for i in range(1000)]
    asks = [[f"{60000.1 + i * 0.1:.2f}", f"{1 + i % 5:.3f}"] for i in range(1000)]
    body = json.dumps({"lastUpdateId": 1, "E": 1, "T": 1, "bids": bids, "asks": asks})
    e = Engine("binance-usdm")
    e.add_instrument("BTCUSDT", *SCALES)
    r = e.feed_snapshot("BTCUSDT", body.encode())
    _require(r == R_SNAPSHOT, f"synthetic snapshot returned {r}")
    book = e.book("BTCUSDT")
    depth = tuple(book.depth())
    _require(depth == (1000, 1000), f"book depth {depth}, want (1000, 1000)")
    mem = int(book.memory_bytes())
    return {
        "levels": {"bids": depth[0], "asks": depth[1]},
        "memory_bytes": mem,
        "bytes_per_level": mem / 2000,
        "target_bytes_max": TARGETS["book_1000_levels_bytes_max"],
        "met": mem <= TARGETS["book_1000_levels_bytes_max"],
        "method": "Book.memory_bytes() after a synthetic 1000+1000-level REST snapshot",
    }


# ------------------------------------------------------------------------------ report


def _dist_version(name: str) -> str | None:
    try:
        return version(name)
    except PackageNotFoundError:
        return None


def _file_version(path: Path, pattern: bytes) -> str | None:
    try:
        m = re.search(pattern, path.read_bytes())
    except OSError:
        return None
    return ".".join(g.decode() for g in m.groups()) if m else None


def versions() -> dict[str, Any]:
    """Versions of everything on the measured path, plus the identity of the built .so."""
    fast = Path(xcol.__file__).parent / "_fast"
    build = {}
    cython_built = None
    for so in sorted(fast.glob("*.so")):
        data = so.read_bytes()
        build[so.name] = {
            "sha256": hashlib.sha256(data).hexdigest()[:16],
            "mtime": datetime.fromtimestamp(so.stat().st_mtime, UTC).isoformat(timespec="seconds"),
        }
        m = re.search(rb"_cython_(\d+)_(\d+)_(\d+)", data)
        if m and cython_built is None:
            cython_built = ".".join(g.decode() for g in m.groups())
    simdjson_src = None
    try:
        import simdjson

        simdjson_src = _file_version(
            Path(simdjson.__file__).parent / "simdjson.h",
            rb'#define SIMDJSON_VERSION "?([0-9]+)\.([0-9]+)\.([0-9]+)',
        )
    except ImportError:
        pass
    return {
        "xcol": xcol.__version__,
        "xcol_path": str(Path(xcol.__file__).parent),
        "cython": cython_built or _dist_version("Cython"),
        "cython_installed": _dist_version("Cython"),
        "pysimdjson": _dist_version("pysimdjson"),
        "simdjson": simdjson_src,
        "simdjson_kernel": simdjson_implementation(),
        "cryptofeed": peers.cryptofeed_version(),
        "build": build,
    }


def machine() -> dict[str, Any]:
    """CPU, core count, interpreter and platform."""
    cpu = cpu_model()
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "cores_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "executable": sys.executable,
        "platform": platform.platform(),
    }


def _fmt(v: float | None, width: int = 10) -> str:
    return f"{'-':>{width}}" if v is None else f"{v:>{width},.0f}"


def print_table(res: dict[str, Any]) -> None:
    """Human-readable summary of one run."""
    x = res["xcol"]
    st = x["stages"]
    print(f"\n{res['workload']}")
    print(
        f"{res['messages']:,} msgs/round, {res['rounds']} rounds (median), "
        f"{res['machine']['python']} {res['machine']['executable']}, "
        f"kernel {res['versions']['simdjson_kernel']}, cryptofeed {res['versions']['cryptofeed']}"
    )
    head = f"{'implementation / stage':34} {'p50 ns':>10} {'p90 ns':>10} {'p99 ns':>10}"
    print(f"{head} {'mean ns':>10} {'msgs/s':>12}")
    rows: list[tuple[str, Any, Any, Any, Any]] = [
        (
            "xcol decode",
            st["decode"]["p50"],
            st["decode"]["p90"],
            st["decode"]["p99"],
            st["decode"]["mean"],
        ),
        ("xcol book (total - decode)", st["book"]["p50"], None, None, st["book"]["mean"]),
        (
            "xcol total (decode + book)",
            st["total"]["p50"],
            st["total"]["p90"],
            st["total"]["p99"],
            st["total"]["mean"],
        ),
        ("xcol total via run(), no clocks", None, None, None, x["run_ns_per_msg_mean"]),
    ]
    if "total_received" in st:
        r = st["total_received"]
        rows.append(("xcol total, frame just received *", r["p50"], r["p90"], r["p99"],
                     r["mean"]))
    for name in ("reference_python", "cryptofeed"):
        p = res[name]
        label = "cryptofeed" if name == "cryptofeed" else "python reference"
        if p is None:
            rows.append((f"{label} (not importable)", None, None, None, None))
        else:
            rows.append(
                (
                    label,
                    p.get("ns_per_msg_p50"),
                    p.get("ns_per_msg_p90"),
                    p.get("ns_per_msg_p99"),
                    p["ns_per_msg_mean"],
                )
            )
    for name, p50, p90, p99, mean in rows:
        rate = _fmt(1e9 / mean, 12) if mean and not name.startswith("xcol book") else " " * 12
        print(f"{name:34} {_fmt(p50)} {_fmt(p90)} {_fmt(p99)} {_fmt(mean)} {rate}")
    if "total_received" in st:
        print("* not the target's measure: each frame first copied, untimed, into a receive"
              " buffer (in the cache, as a socket read leaves it)")
    if "checksums_verified_per_round" in x:
        print(f"xcol checksums verified per round: {x['checksums_verified_per_round']:,}")
    t = x["timer"]
    print(
        f"timer floor: xcol sample on an empty frame p50 {t['time_frames_empty_frame_p50_ns']:.0f}"
        f" ns; perf_counter_ns back-to-back p50 {t['perf_counter_ns_back_to_back_p50_ns']:.0f} ns"
    )
    r, rp = res["ratio_vs_cryptofeed"], res.get("ratio_vs_cryptofeed_p50")
    print(
        "ratio vs cryptofeed: "
        + ("n/a" if r is None else f"{r:.1f}x (mean)")
        + ("" if rp is None else f", {rp:.1f}x (p50)")
        + f"; vs python reference {res['ratio_vs_reference_python']:.1f}x (mean)"
    )
    for name, t in res["targets"].items():
        verdict = "not measured" if t["met"] is None else "MET" if t["met"] else "NOT MET"
        print(f"target {name}: {t['value']} vs {t['limit']} -> {verdict}")
    if "memory" in res:
        m = res["memory"]
        print(
            f"memory: 1000+1000-level book = {m['memory_bytes']:,} bytes "
            f"({m['bytes_per_level']:.1f} B/level) -> {'MET' if m['met'] else 'NOT MET'} "
            f"(<= {m['target_bytes_max']:,})"
        )


def targets(market: str, x: dict[str, Any], ratio: float | None) -> dict[str, Any]:
    """The issue's targets that this run can judge."""
    out: dict[str, Any] = {}
    if market == "usdm":
        p50 = x["ns_per_msg_p50"]
        out["decode_plus_book_p50_ns"] = {
            "value": p50,
            "limit": f"<= {TARGETS['usdm_total_p50_ns_max']}",
            "met": p50 <= TARGETS["usdm_total_p50_ns_max"],
        }
        floor = TARGETS["usdm_ratio_vs_cryptofeed_min"]
    else:
        floor = TARGETS["okx_ratio_vs_cryptofeed_min"]
    out["ratio_vs_cryptofeed"] = {
        "value": None if ratio is None else round(ratio, 1),
        "limit": f">= {floor}",
        "met": None if ratio is None else ratio >= floor,
    }
    return out


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Build the workload, time every implementation, and assemble the report."""
    global SCALES
    SCALES = args.scales
    vers = versions()  # before timing: identifies the .so files this process loaded
    with_cf = peers.cryptofeed_version() is not None
    corpus = Path(args.corpus)
    build = usdm_workload if args.market == "usdm" else okx_workload
    wl = build(corpus, args.copies, with_cf)
    print(wl.description, file=sys.stderr)
    print("timing xcol ...", file=sys.stderr)
    x = bench_xcol(wl, args.rounds, args.gc)
    print("timing python reference ...", file=sys.stderr)
    ref = bench_peer(wl, wl.make_ref, wl.check_ref, args.rounds, args.peer_percentiles, args.gc)
    cf = None
    if wl.make_cf is not None:
        print("timing cryptofeed ...", file=sys.stderr)
        cf = bench_peer(wl, wl.make_cf, wl.check_cf, args.rounds, args.peer_percentiles, args.gc)
    ratio = None if cf is None else cf["ns_per_msg_mean"] / x["ns_per_msg_mean"]
    ratio_p50 = None
    if cf is not None and "ns_per_msg_p50" in cf:
        ratio_p50 = cf["ns_per_msg_p50"] / x["ns_per_msg_p50"]
    res: dict[str, Any] = {
        "market": args.market,
        "workload": wl.description,
        "messages": wl.messages,
        "rounds": args.rounds,
        "copies": args.copies,
        "usdm_scales": list(SCALES) if args.market == "usdm" else None,
        "machine": machine(),
        "versions": vers,
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": shlex.join([sys.executable, *sys.argv]),
        "pythonpath": os.environ.get("PYTHONPATH"),
        "gc_in_timed_regions": args.gc,
        "xcol": x,
        "reference_python": ref,
        "cryptofeed": cf,
        "ratio_vs_cryptofeed": ratio,
        "ratio_vs_cryptofeed_p50": ratio_p50,
        "ratio_vs_reference_python": ref["ns_per_msg_mean"] / x["ns_per_msg_mean"],
        "targets": targets(args.market, x, ratio),
    }
    if args.memory:
        res["memory"] = memory_check()
    return res


def _scales(text: str) -> tuple[int, int]:
    try:
        p, q = (int(x) for x in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"want P,Q (two integers), got {text!r}") from None
    if not (0 <= p <= 18 and 0 <= q <= 18):
        raise argparse.ArgumentTypeError("scales must be within 0..18")
    return p, q


def _default_corpus() -> str:
    return os.environ.get("XCOL_CORPUS") or str(REPO.parent / "shared" / "corpus")


def usdm_inputs(copies: int, prog: str) -> tuple[Workload, str] | None:
    """The USD-M depth workload (``copies`` chained copies) and the capture's REST
    snapshot, for the benchmarks that replay it; None, after saying so on stderr as
    ``prog``, when the capture is not in the corpus."""
    corpus = Path(_default_corpus())
    path = corpus / USDM_FILE
    if not path.is_file():
        print(f"{prog}: {path} not found (set XCOL_CORPUS)", file=sys.stderr)
        return None
    snapshot, _msgs, _tickers = peers.load_binance_usdm(path)
    return usdm_workload(corpus, copies, False), snapshot


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--market", choices=("usdm", "okx"), default="usdm")
    ap.add_argument(
        "--corpus",
        default=_default_corpus(),
        help="corpus directory (default $XCOL_CORPUS or <repo>/../shared/corpus)",
    )
    ap.add_argument(
        "--copies",
        type=int,
        default=5,
        help="usdm: chained copies per round; okx: replays on fresh books per round",
    )
    ap.add_argument("--rounds", type=int, default=5, help="timed rounds (median reported)")
    ap.add_argument(
        "--scales", type=_scales, default=SCALES, metavar="P,Q",
        help="USD-M book price,size scales (default 8,8 as live; 2,3 = as written)",
    )
    ap.add_argument(
        "--peer-percentiles",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also time peers per message for p50/p90/p99 (extra rounds)",
    )
    ap.add_argument("--gc", action="store_true", help="leave the cyclic GC on while timing")
    ap.add_argument("--memory", action="store_true", help="add the 1000-level book size check")
    ap.add_argument("--cpu", type=int, help="pin the process to this CPU")
    ap.add_argument("--json", metavar="PATH", help="write the full report as JSON")
    args = ap.parse_args(argv)
    if args.copies < 1 or args.rounds < 1:
        ap.error("--copies and --rounds must be >= 1")
    if args.cpu is not None:
        os.sched_setaffinity(0, {args.cpu})
    try:
        res = run(args)
    except CheckFailed as exc:
        print(f"check failed: {exc}", file=sys.stderr)
        return 1
    print_table(res)
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=2) + "\n", encoding="utf-8")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
