"""Make-before-break rotation against the simulator over real sockets: on Binance's
``serverShutdown``, by connection age and by a low win rate.  A rotated line opens its
replacement before closing the old connection, so the merged stream has no hole."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from xcol.app import Collector
from xcol.config import load_config
from xcol.sim.server import SimConfig, Simulator, line_configs


async def _collector(sim: Simulator, out: Path, *extra: str, lines: int = 2) -> Collector:
    eps = ",".join(f"ws://127.0.0.1:{p}" for p in sim.ports[:lines])
    cfg = load_config(None, env={}, overrides=[
        "feeds.0.exchange=binance-usdm", f"feeds.0.symbols={sim.instruments[0]}",
        f"feeds.0.endpoints={eps}",
        f"feeds.0.rest=http://127.0.0.1:{sim.ports[0]}", "runtime.http=",
        f"sinks.jsonl.path={out}", *extra,
    ])
    col = Collector(cfg)
    await col.start()
    return col


async def _until(cond: object, timeout: float) -> None:
    end = asyncio.get_running_loop().time() + timeout
    while not cond():  # type: ignore[operator]
        if asyncio.get_running_loop().time() > end:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)


def _check_book_records(out: Path) -> None:
    """Every book update once, chained by prev_seq."""
    recs = [json.loads(x) for x in out.read_text().splitlines()]
    book = [r for r in recs if r["type"] == "book"]
    seqs = [r["seq"] for r in book]
    assert len(seqs) == len(set(seqs)) and seqs == sorted(seqs)
    for a, b in zip(book, book[1:], strict=False):
        assert b["prev_seq"] == a["seq"]


def test_server_shutdown_rotates_make_before_break(tmp_path: Path) -> None:
    async def main() -> None:
        sim = Simulator(SimConfig(exchange="binance-usdm", source=[], symbols=1, rate=300.0,
                                  lines=line_configs(2, delay_ms="0,1"), shutdown_grace=2.0))
        await sim.start()
        out = tmp_path / "out.jsonl"
        col = await _collector(sim, out)
        try:
            eng = col.feeds[0].engine
            inst = sim.instruments[0]
            await _until(lambda: eng.book(inst).synced, 10)
            lines0 = [ln for ln in col.feeds[0].lines if ln.endpoint.endswith(str(sim.ports[0]))]
            assert sim.server_shutdown(0) >= 1
            await _until(lambda: all(ln.rotations >= 1 for ln in lines0), 5)
            await asyncio.sleep(2.5)  # past the grace: the old connections are gone
            assert all(ln.reconnects == 0 for ln in col.feeds[0].lines)
            assert all(ln.state == "connected" for ln in col.feeds[0].lines)
            sim.pause()
            await asyncio.sleep(0.3)
            assert eng.book(inst).last_seq == sim.last_seq(inst)
            assert eng.arbiter_counters()["stream_gaps"] == 0
            stats = col.stats()
            assert any(c["rotations"] >= 1 for c in stats["connections"])
        finally:
            rep = await col.stop()
            await sim.stop()
        assert rep.complete
        _check_book_records(out)

    asyncio.run(main())


def test_low_win_rate_and_age_rotate(tmp_path: Path) -> None:
    async def main() -> None:
        sim = Simulator(SimConfig(exchange="binance-usdm", source=[], symbols=1, rate=400.0,
                                  lines=line_configs(2, delay_ms="0,4")))
        await sim.start()
        out = tmp_path / "out.jsonl"
        col = await _collector(sim, out, "runtime.rotation.period_s=1.0",
                               "runtime.rotation.min_win_rate=0.3")
        try:
            eng = col.feeds[0].engine
            inst = sim.instruments[0]
            await _until(lambda: eng.book(inst).synced, 10)
            slow = [ln for ln in col.feeds[0].lines if ln.endpoint.endswith(str(sim.ports[1]))]
            fast = [ln for ln in col.feeds[0].lines if ln.endpoint.endswith(str(sim.ports[0]))]
            await _until(lambda: any(ln.rotations >= 1 for ln in slow), 8)
            assert all(ln.rotations == 0 for ln in fast), "the winning line is never rotated"
            sim.pause()
            await asyncio.sleep(0.3)
            assert eng.book(inst).last_seq == sim.last_seq(inst)
            assert eng.arbiter_counters()["stream_gaps"] == 0
        finally:
            await col.stop()
            await sim.stop()
        _check_book_records(out)

    asyncio.run(main())


def test_rotation_by_age_keeps_a_single_line_whole(tmp_path: Path) -> None:
    """With one line only, the overlap of old and new connection is all that keeps the
    stream whole: no gap, no resync, no reconnect."""

    async def main() -> None:
        sim = Simulator(SimConfig(exchange="binance-usdm", source=[], symbols=1, rate=400.0,
                                  lines=line_configs(1)))
        await sim.start()
        out = tmp_path / "out.jsonl"
        col = await _collector(sim, out, "runtime.rotation.max_age_s=1.0",
                               "runtime.rotation.min_win_rate=0", lines=1)
        try:
            eng = col.feeds[0].engine
            inst = sim.instruments[0]
            await _until(lambda: eng.book(inst).synced, 10)
            await _until(lambda: all(ln.rotations >= 2 for ln in col.feeds[0].lines), 10)
            sim.pause()
            await asyncio.sleep(0.3)
            assert eng.book(inst).last_seq == sim.last_seq(inst)
            assert eng.arbiter_counters()["stream_gaps"] == 0
            assert eng.book(inst).snapshots == 1, "never resynced"
            assert all(ln.reconnects == 0 for ln in col.feeds[0].lines)
        finally:
            await col.stop()
            await sim.stop()
        _check_book_records(out)

    asyncio.run(main())
