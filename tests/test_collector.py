"""The collector end to end against the simulator, over real sockets.

The simulator serves Binance USD-M on two lines (0 ms and 3 ms); the collector
connects both (the USD-M routes make that four connections: depth+bookTicker
and trades per line), syncs its book from the simulator's REST depth, writes
JSONL and shuts down by draining.  Checks: the fast line wins, the slow line's
lag is the injected delay, the book equals the simulator's own book, the JSONL
file holds exactly the published records, and the counters reconcile.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from xcol.app import Collector
from xcol.config import load_config
from xcol.sim.server import SimConfig, Simulator, line_configs


async def _run(tmp: Path, seconds: float) -> tuple[dict, Simulator, Collector, Path]:  # type: ignore[type-arg]
    sim = Simulator(SimConfig(exchange="binance-usdm", source=[], symbols=1, rate=400.0,
                              lines=line_configs(2, delay_ms="0,3")))
    await sim.start()
    out = tmp / "out.jsonl"
    cfg = load_config(None, env={}, overrides=[
        "feeds.0.exchange=binance-usdm", f"feeds.0.symbols={sim.instruments[0]}",
        f"feeds.0.endpoints=ws://127.0.0.1:{sim.ports[0]},ws://127.0.0.1:{sim.ports[1]}",
        f"feeds.0.rest=http://127.0.0.1:{sim.ports[0]}", "runtime.http=",
        f"sinks.jsonl.path={out}", "sinks.jsonl.policy=blocking",
    ])
    col = Collector(cfg)
    await col.start()
    await asyncio.sleep(seconds)
    sim.pause()
    await asyncio.sleep(0.3)  # let the slow line's copies arrive
    stats = col.stats()
    report = await col.stop()
    assert report.complete
    await sim.stop()
    return stats, sim, col, out


def test_two_lines_against_the_simulator(tmp_path: Path) -> None:
    stats, sim, col, out = asyncio.run(_run(tmp_path, 3.0))
    fast = [c for c in stats["connections"] if c["id"] in (0, 1)]
    slow = [c for c in stats["connections"] if c["id"] in (2, 3)]
    wins_fast = sum(c["wins"] for c in fast)
    wins_slow = sum(c["wins"] for c in slow)
    assert wins_fast > 100
    assert wins_fast / (wins_fast + wins_slow) >= 0.9
    depth_slow = slow[0]
    assert abs(depth_slow["lag_us"]["p50"] - 3000) < 1500  # injected 3 ms
    (stream,) = [s for s in stats["streams"] if s["channel"] == "depth"]
    assert stream["synced"] and stream["gaps"] == 0
    # the collector's book is the simulator's book
    inst = sim.instruments[0]
    book = col.feeds[0].engine.book(inst)
    assert book.last_seq == sim.last_seq(inst)
    # measured per stream: every update received is published, a duplicate, dropped or
    # (before the stop) still held by the book
    for st in stats["streams"]:
        assert st["received"] == (st["published"] + st["duplicates"] + st["dropped"]
                                  + st["pending"]) and st["received"] > 0, st
    c = stats["counters"]
    assert c["received"] == c["published"] + c["duplicates"] + c["dropped"] + c["pending"]
    assert c["duplicates"] > 0 and set(c["dropped_by_reason"]) <= {"unsynced"}, c
    # every update from a frame is also timed by stage (the REST snapshot is not a
    # frame), and the stages add up to the whole
    lat = stats["latency"]
    code_n = lat["code_us"]["count"]
    assert code_n > 100
    stages = lat["stages_us"]
    assert set(stages) == {"decode", "book", "encode"}
    assert all(code_n - 2 <= v["count"] <= code_n for v in stages.values())
    assert sum(v["p50"] for v in stages.values()) <= lat["code_us"]["p99"]
    assert stages["decode"]["max"] <= lat["code_us"]["max"]
    # every published record reached the JSONL file, once
    lines = out.read_text().splitlines()
    recs = [json.loads(x) for x in lines]
    ac = col.feeds[0].engine.arbiter_counters()
    assert ac["pending"] == 0  # stop() dropped (counted) what the book still held
    engine_pub = ac["published"] - ac["in_snapshot"]  # replayed into the snapshot record
    # "top" records are derived views of the book (at most one per 100 ms), not updates
    tops = [r for r in recs if r["type"] == "top"]
    assert len(recs) - len(tops) == engine_pub
    book_seqs = {r["seq"] for r in recs if r["type"] == "book"}
    assert tops and all(t["seq"] in book_seqs for t in tops)
    keys = [(r["type"], r["seq"]) for r in recs if r["type"] in ("book", "bbo")]
    assert len(keys) == len(set(keys))


def test_server_pings_are_answered_and_keep_the_connections(tmp_path: Path) -> None:
    """The simulator pings every 0.1 s and drops a connection whose pong is late by 0.25 s
    (Binance's rule, shortened): the collector's listeners answer every ping themselves,
    so over 2 s no connection is dropped and the stream stays exact."""
    async def main() -> None:
        sim = Simulator(SimConfig(exchange="binance-usdm", source=[], symbols=1, rate=400.0,
                                  ping_interval=0.1, pong_timeout=0.25))
        await sim.start()
        cfg = load_config(None, env={}, overrides=[
            "feeds.0.exchange=binance-usdm", f"feeds.0.symbols={sim.instruments[0]}",
            f"feeds.0.endpoints=ws://127.0.0.1:{sim.ports[0]}",
            f"feeds.0.rest=http://127.0.0.1:{sim.ports[0]}", "runtime.http=",
            f"sinks.jsonl.path={tmp_path / 'out.jsonl'}",
        ])
        col = Collector(cfg)
        await col.start()
        await asyncio.sleep(2.0)
        stats = col.stats()
        report = await col.stop()
        st = sim.line_stats(0)
        await sim.stop()
        assert report.complete
        assert st.pings >= 20 and st.pongs >= st.pings - 2 * st.connections
        assert len(stats["connections"]) == 2  # /public and /market
        assert all(c["reconnects"] == 0 and c["state"] == "connected"
                   for c in stats["connections"])
        (stream,) = [s for s in stats["streams"] if s["channel"] == "depth"]
        assert stream["synced"] and stream["gaps"] == 0

    asyncio.run(main())


def test_histograms_endpoint_decodes_to_the_stats_numbers(tmp_path: Path) -> None:
    """``/histograms`` of a running collector holds every HDR histogram it keeps, in the
    hdrhistogram package's encoding: each decodes (with that package) to the count and
    percentiles ``/stats`` reports for the same histogram.  The feed is paused first, so
    both documents describe the same moment."""
    import socket
    import urllib.request
    from typing import Any

    from hdrh.histogram import HdrHistogram as RefHistogram

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]

    def get(path: str) -> dict[str, Any]:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as resp:
            doc: dict[str, Any] = json.load(resp)
            return doc

    async def main() -> tuple[dict[str, Any], dict[str, Any]]:
        sim = Simulator(SimConfig(exchange="binance-usdm", source=[], symbols=1, rate=400.0,
                                  lines=line_configs(2, delay_ms="0,3")))
        await sim.start()
        cfg = load_config(None, env={}, overrides=[
            "feeds.0.exchange=binance-usdm", f"feeds.0.symbols={sim.instruments[0]}",
            f"feeds.0.endpoints=ws://127.0.0.1:{sim.ports[0]},ws://127.0.0.1:{sim.ports[1]}",
            f"feeds.0.rest=http://127.0.0.1:{sim.ports[0]}", f"runtime.http=127.0.0.1:{port}",
            "sinks.shm.name=hist", f"sinks.shm.dir={tmp_path}", "sinks.shm.slots=1024",
        ])
        col = Collector(cfg)
        await col.start()
        try:
            await asyncio.sleep(2.0)
            sim.pause()
            await asyncio.sleep(0.5)  # the slow line's copies arrive, the sink drains
            loop = asyncio.get_running_loop()
            stats = await loop.run_in_executor(None, get, "/stats")
            hists = await loop.run_in_executor(None, get, "/histograms")
        finally:
            assert (await col.stop()).complete
            await sim.stop()
        return stats, hists

    stats, hists = asyncio.run(main())
    ref = {name: RefHistogram.decode(blob) for name, blob in hists.items()}
    lat = stats["latency"]

    def same(h: RefHistogram, summary: dict[str, Any], scale: float,
             pcts: tuple[tuple[str, float], ...] = (("p50", 50.0), ("p99", 99.0))) -> None:
        assert h.get_total_count() == summary["count"] > 0
        for key, pct in pcts:
            assert h.get_value_at_percentile(pct) / scale == summary[key], key
        assert h.get_max_value() / scale == summary["max"]

    all_pcts = (("p50", 50.0), ("p90", 90.0), ("p99", 99.0), ("p999", 99.9))
    same(ref["code_ns"], lat["code_us"], 1000.0, all_pcts)
    same(ref["exchange_us"], lat["exchange_ms"], 1000.0, all_pcts)
    for stage in ("decode", "book", "encode"):
        same(ref[f"stage.{stage}_ns"], lat["stages_us"][stage], 1000.0, all_pcts)
    # per line: lag behind the winner; the 3 ms line's connections lag by ~3 ms
    for conn in stats["connections"]:
        (name,) = [n for n in ref if n.startswith("lag_ns.") and n.endswith(f".{conn['id']}")]
        if conn["lag_us"]["count"]:
            same(ref[name], conn["lag_us"], 1000.0)
        else:
            assert ref[name].get_total_count() == 0
    assert any(c["lag_us"]["count"] > 100 for c in stats["connections"])
    (shm,) = [s for s in stats["sinks"] if s["name"] == "shm"]
    same(ref["sink.shm.write_ns"], shm["sink"]["write_ns"], 1.0)
    # the fan-out times every sink's writes and flushes (µs in /stats)
    for sk in stats["sinks"]:
        same(ref[f"fanout.{sk['name']}.write_ns"], sk["write_us"], 1000.0)
        assert sk["write_us"]["count"] == sk["batches"]
    assert len(ref) == 5 + len(stats["connections"]) + 1 + 2 * len(stats["sinks"])


def test_ready_names_a_route_without_fresh_data(tmp_path: Path) -> None:
    """USD-M sends trades on /market and depth on /public.  Replaying a capture that has
    no ``@trade`` stream (cryptofeed's has aggTrade only), the /market connection never
    gets data: ``ready()`` must say so although /public is fresh and the book synced."""
    import sys

    sys.path.insert(0, str(Path(__file__).parent))
    from capture import need
    from e2ehelp import Rig, run, until

    cap = need("cf-usdm")

    async def body() -> None:
        sim_cfg = SimConfig(exchange="binance-usdm", source=[cap.path], speed=1.0,
                            loop=True, lines=line_configs(1))
        async with Rig(sim_cfg, tmp_path, overrides=[
                "feeds.0.channels=depth,trades", "runtime.stale_timeout_s=1.0"]) as rig:
            await rig.wait_synced()
            await asyncio.sleep(1.3)
            await until(lambda: rig.col.ready() != [], 5.0, "not ready")
            reasons = rig.col.ready()
            assert reasons == ["binance-usdm: no market connection has fresh data (trades)"]
            assert rig.book(rig.sim.instruments[0]).synced

    run(body())


def test_busy_poll_spins_the_loop_until_the_collector_stops(tmp_path: Path) -> None:
    """``runtime.busy_poll``: the loop thread polls without sleeping (it takes a core even
    at 400 frames/s), the collector works as usual, and the spinning ends with stop()."""
    import time

    async def main() -> tuple[float, float, bool]:
        sim = Simulator(SimConfig(exchange="binance-usdm", source=[], symbols=1, rate=400.0,
                                  lines=line_configs(1)))
        await sim.start()
        cfg = load_config(None, env={}, overrides=[
            "feeds.0.exchange=binance-usdm", f"feeds.0.symbols={sim.instruments[0]}",
            f"feeds.0.endpoints=ws://127.0.0.1:{sim.ports[0]}",
            f"feeds.0.rest=http://127.0.0.1:{sim.ports[0]}", "runtime.http=",
            f"sinks.jsonl.path={tmp_path / 'out.jsonl'}", "runtime.busy_poll=true"])
        col = Collector(cfg)
        await col.start()
        try:
            t_end = time.monotonic() + 10
            while not col.feeds[0].engine.book(sim.instruments[0]).synced:
                assert time.monotonic() < t_end, "book never synced"
                await asyncio.sleep(0.05)
            c0 = time.process_time()
            await asyncio.sleep(0.5)
            spinning = time.process_time() - c0
            synced = col.feeds[0].engine.book(sim.instruments[0]).synced
        finally:
            assert (await col.stop()).complete
            await sim.stop()
        c0 = time.process_time()
        await asyncio.sleep(0.5)
        return spinning, time.process_time() - c0, synced

    spinning, after, synced = asyncio.run(main())
    assert synced
    # an idle loop at 400 frames/s uses a few ms of CPU in 0.5 s; a spinning one most of it
    assert spinning > 0.2, f"the loop slept: {spinning:.2f} s CPU in 0.5 s"
    assert after < 0.15, f"still spinning after stop: {after:.2f} s CPU in 0.5 s"
