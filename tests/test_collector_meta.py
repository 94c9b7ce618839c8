"""The collector reads its books' scales from the exchange's instrument list at start-up.

Against ``xcol sim`` (every venue): the simulator's instrument endpoint is changed to list
ticks and lots with 10 and 11 decimals, so the scales the collector uses can only come
from there (the defaults are 8); the books then sync and the output is exact at those
scales.  A dead instrument endpoint gives a warning, a counted failure and the default
scales, and the feed still runs; a symbol the exchange does not list stops start-up
with an error naming it, before any line connects.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from decimal import Decimal
from pathlib import Path

import pytest
from e2ehelp import Rig, assert_output_exact, free_port, run

from xcol.config import ConfigError
from xcol.sim.server import SimConfig, Simulator, line_configs

TICK = "0.0000000001"    # 10 decimals: price scale 10
LOT = "0.00000000001"    # 11 decimals: size scale 11


def sim_cfg(exchange: str) -> SimConfig:
    return SimConfig(exchange=exchange, source=[], symbols=2, rate=300.0,
                     lines=line_configs(2, delay_ms="0,2"), okx_checksum="compute")


@pytest.fixture
def listed(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make every simulator started in the test list the first instrument with
    :data:`TICK` and the second with :data:`LOT` on its instrument endpoint."""
    start = Simulator.start

    async def patched(self: Simulator) -> None:
        await start(self)
        first, second = self.instruments[:2]
        self.feed.meta[first]["tick"] = TICK
        self.feed.meta[second]["lot"] = LOT

    monkeypatch.setattr(Simulator, "start", patched)


@pytest.mark.parametrize("exchange", ["binance-spot", "binance-usdm", "binance-coinm",
                                      "okx", "deribit"])
def test_scales_come_from_the_instrument_endpoint(tmp_path: Path, exchange: str,
                                                  listed: None) -> None:
    async def body() -> None:
        async with Rig(sim_cfg(exchange), tmp_path) as rig:
            first, second = rig.sim.instruments[:2]
            eng = rig.col.feeds[0].engine
            assert eng.scales_of(eng.instrument_id(first)) == (10, 8)
            assert eng.scales_of(eng.instrument_id(second)) == (8, 11)
            assert rig.col.feeds[0].scales == "exchange"
            assert rig.col.stats()["instruments"] == [
                {"feed": exchange, "exchange": exchange, "scales": "exchange",
                 "fetch_failures": 0}]
            await rig.wait_synced()
            # the books' ladder grid is the listed tick at the price scale
            assert eng.book(first).grid == 1     # TICK at scale 10
            tick = Decimal(rig.sim.feed.meta[second]["tick"])
            assert eng.book(second).grid == int(tick.scaleb(8))
            await asyncio.sleep(0.5)
            await rig.stop()
            rbs = assert_output_exact(rig, once=exchange != "okx")
            assert all(rb.books > 10 for rb in rbs.values())

    run(body())


def test_dead_instrument_endpoint_warns_and_uses_default_scales(
        tmp_path: Path, caplog: pytest.LogCaptureFixture, listed: None) -> None:
    dead = f"http://127.0.0.1:{free_port()}"

    async def body() -> None:
        async with Rig(sim_cfg("okx"), tmp_path, overrides=[f"feeds.0.rest={dead}"]) as rig:
            fr = rig.col.feeds[0]
            assert fr.scales == "default" and fr.instrument_fetch_failures == 1
            for inst in rig.sim.instruments:
                assert fr.engine.scales_of(fr.engine.instrument_id(inst)) == (8, 8)
            assert rig.col.stats()["instruments"][0]["fetch_failures"] == 1
            await rig.wait_synced()      # OKX books come from the stream: the feed runs
            await rig.stop()

    with caplog.at_level(logging.WARNING, logger="xcol"):
        run(body())
    warned = [r.getMessage() for r in caplog.records if "instrument list" in r.getMessage()]
    assert warned and "default scales" in warned[0] and dead in warned[0], warned


def test_unlisted_symbol_stops_start_up(tmp_path: Path) -> None:
    async def body() -> None:
        sim = sim_cfg("binance-usdm")
        rig = Rig(sim, tmp_path, overrides=["feeds.0.symbols=NOPEUSDT"])
        with pytest.raises(ConfigError, match=r"feeds\.0\.symbols: binance-usdm does not "
                           r"list 'NOPEUSDT' \(instrument list from http://127\.0\.0\.1:\d+"
                           r"/fapi/v1/exchangeInfo; 2 instruments\)"):
            async with rig:
                pass
        assert all(ln.transport is None and ln.task is None for ln in rig.col.feeds[0].lines)

    run(body())


def test_fetch_instruments_off_keeps_default_scales(tmp_path: Path, listed: None) -> None:
    async def body() -> None:
        async with Rig(sim_cfg("deribit"), tmp_path,
                       overrides=["feeds.0.fetch_instruments=false"]) as rig:
            fr = rig.col.feeds[0]
            assert fr.scales == "default" and fr.instrument_fetch_failures == 0
            for inst in rig.sim.instruments:
                assert fr.engine.scales_of(fr.engine.instrument_id(inst)) == (8, 8)
            await rig.wait_synced()
            await rig.stop()

    run(body())


def test_xcol_run_with_an_unlisted_symbol_exits_2_naming_it(tmp_path: Path) -> None:
    """``xcol run`` as a subprocess: a clear one-line error and exit status 2, no traceback."""

    async def body() -> None:
        sim = Simulator(sim_cfg("binance-usdm"))
        await sim.start()
        try:
            cfg = tmp_path / "xcol.toml"
            cfg.write_text(f"""
[[feeds]]
exchange = "binance-usdm"
symbols = ["NOPEUSDT"]
endpoints = ["ws://127.0.0.1:{sim.ports[0]}"]
rest = "http://127.0.0.1:{sim.ports[0]}"

[sinks.jsonl]
path = "{tmp_path / 'out.jsonl'}"
""")
            env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]))
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "xcol", "run", "-c", str(cfg), cwd=str(tmp_path),
                env=env, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
            _, err = await asyncio.wait_for(proc.communicate(), 60)
        finally:
            await sim.stop()
        text = err.decode()
        assert proc.returncode == 2, text
        assert "xcol run: feeds.0.symbols: binance-usdm does not list 'NOPEUSDT'" in text
        assert "Traceback" not in text

    run(body())
