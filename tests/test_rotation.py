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


def test_win_rate_rotation_backs_off_for_a_line_that_stays_slow() -> None:
    """A line slow by design (a backup far away) is rotated after 0, 2, 6, 14... periods,
    not every period; a period at or above the floor clears its back-off.  Drives the
    win-rate rule period by period with chosen counters (no sockets, no timing)."""
    from types import SimpleNamespace

    feed = ["feeds.0.exchange=binance-usdm", "feeds.0.symbols=BTCUSDT"]
    cfg = load_config(None, env={}, overrides=[
        *feed, "runtime.rotation.period_s=60", "runtime.rotation.min_win_rate=0.1",
        "runtime.rotation.backoff_max_s=600"])   # at most 10 periods apart
    counters = {0: [0, 0], 1: [0, 0]}            # line id -> [wins, updates]
    rate = {0: 0.9, 1: 0.02}                      # this period's win rate per line

    def line_stats(i: int) -> dict[str, int]:
        return {"wins": counters[i][0], "updates": counters[i][1]}

    lines = [SimpleNamespace(line_id=i, transport=object(), period_base=(0, 0),
                             rate_strikes=0, rate_wait=0,
                             conn=SimpleNamespace(url=f"ws://line{i}")) for i in (0, 1)]
    rotated: list[int] = []
    now = [0]                                     # the period being closed
    col = SimpleNamespace(cfg=cfg, feeds=[SimpleNamespace(
        lines=lines, engine=SimpleNamespace(line_stats=line_stats))],
        request_rotation=lambda ln, reason: rotated.append(now[0]))

    def run_period(period: int) -> None:
        now[0] = period
        for i in (0, 1):
            counters[i][0] += int(1000 * rate[i])
            counters[i][1] += 1000
        Collector._rotate_losers(col)  # type: ignore[arg-type]

    for period in range(40):
        run_period(period)
    # rotations after 1, 3, 7 periods of waiting, then every 11 periods (the 600 s cap)
    assert rotated == [0, 2, 6, 14, 25, 36]
    assert lines[0].rate_strikes == 0

    # a good period clears the back-off: the next slow period rotates at once
    rate[1] = 0.5
    run_period(40)
    assert lines[1].rate_strikes == 0 and lines[1].rate_wait == 0
    rate[1] = 0.02
    for period in range(41, 44):
        run_period(period)
    assert rotated[-2:] == [41, 43]

    # backoff_max_s = 0: every period, as before
    cfg0 = load_config(None, env={}, overrides=[*feed, "runtime.rotation.backoff_max_s=0",
                                                "runtime.rotation.min_win_rate=0.1"])
    col.cfg = cfg0
    rotated.clear()
    for ln in lines:
        ln.rate_strikes = ln.rate_wait = 0
    for period in range(5):
        run_period(period)
    assert rotated == [0, 1, 2, 3, 4]


def test_stop_during_a_rotation_closes_the_connection_it_was_opening(tmp_path: Path) -> None:
    """A rotation waits for the replacement connection's first frame before switching;
    a collector stopped in that wait leaves no connection open (the replacement belonged
    to no line yet, so closing the lines' connections did not reach it)."""
    async def main() -> None:
        sim = Simulator(SimConfig(exchange="binance-usdm", source=[], symbols=1, rate=300.0,
                                  lines=line_configs(1)))
        await sim.start()
        col = await _collector(sim, tmp_path / "out.jsonl", lines=1)
        stopped = False
        try:
            eng = col.feeds[0].engine
            lines = col.feeds[0].lines
            sessions = sim.lines[0].sessions
            await _until(lambda: eng.book(sim.instruments[0]).synced
                         and all(ln.state == "connected" for ln in lines)
                         and len(sessions) == len(lines), 10)
            before = len(sessions)
            sim.pause()                 # the replacement gets no frame: the rotation waits
            await sim.settle(0.2)       # (once what the lines had queued is out)
            col.request_rotation(lines[0], "test")
            await _until(lambda: len(sessions) == before + 1, 5)
            await asyncio.sleep(0.2)
            assert lines[0].rotations == 0      # still waiting to switch
            await col.stop()
            stopped = True
            await _until(lambda: not sessions, 5)
        finally:
            if not stopped:
                await col.stop()
            await sim.stop()

    asyncio.run(main())
