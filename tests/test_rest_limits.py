"""REST snapshots against the exchange's limits: Retry-After pauses and the weight budget.

Unit tests drive :class:`~xcol.net.restgate.RestGate` on a fake clock; the end-to-end test
runs the collector against a simulator that answers the first depth request with 429 and
``Retry-After: 1``, and checks on the simulator's side that nothing else reached it within
that second, that the book then syncs, and that ``/stats`` and ``/metrics`` count it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from email.utils import format_datetime

import pytest
from e2ehelp import until

from xcol.app import Collector
from xcol.config import ConfigError, load_config
from xcol.exchanges import protocols
from xcol.net.rest import RestError, get, parse_retry_after
from xcol.net.restgate import BAN_PAUSE_S, RATE_LIMIT_PAUSE_S, RestGate
from xcol.obs.metrics import render_stats
from xcol.sim.cli import _config, add_arguments
from xcol.sim.server import SimConfig, Simulator


class FakeClock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


# ------------------------------------------------------------------------- Retry-After


def test_retry_after_seconds_dates_and_junk() -> None:
    assert parse_retry_after(b"1") == 1.0
    assert parse_retry_after(" 120 ") == 120.0
    assert parse_retry_after(b"0.5") == 0.5
    now = 1_700_000_000.0
    date = format_datetime(datetime.fromtimestamp(now + 30, UTC), usegmt=True)
    assert parse_retry_after(date, now=now) == pytest.approx(30.0)
    past = format_datetime(datetime.fromtimestamp(now - 30, UTC), usegmt=True)
    assert parse_retry_after(past, now=now) == 0.0
    for bad in (b"", b"soon", b"-5", b"nan", b"inf", b"Mon, 32 Foo 2024"):
        assert parse_retry_after(bad) is None, bad


# ------------------------------------------------------------------------- the gate


def test_a_429_pauses_the_host_for_its_retry_after() -> None:
    clock = FakeClock()
    gate = RestGate("https://fapi.binance.com:443", 0, clock=clock)
    assert gate.delay_for(20) == 0.0
    gate.spend(20)
    pause, new = gate.reject(429, 1.5)
    assert (pause, new) == (1.5, True)
    assert gate.delay_for(20) == pytest.approx(1.5)
    clock.t += 1.0
    assert gate.delay_for(20) == pytest.approx(0.5)
    # a second rejection during the pause (a request already in flight) extends it but is
    # the same pause: counted as a 429, not as a new pause, and not logged again
    pause, new = gate.reject(429, 2.0)
    assert new is False and pause == pytest.approx(2.0)
    assert gate.delay_for(20) == pytest.approx(2.0)
    clock.t += 2.0
    assert gate.delay_for(20) == 0.0
    st = gate.stats()
    assert (st["requests"], st["rate_limited"], st["banned"], st["pauses"]) == (1, 2, 0, 1)
    assert st["paused_s"] == pytest.approx(3.0)  # 1.5 s, then extended by 1.5 s
    assert st["paused_for_s"] == 0.0


def test_without_a_usable_retry_after_the_pause_is_the_default() -> None:
    clock = FakeClock()
    gate = RestGate("h", 0, clock=clock)
    assert gate.reject(429, None) == (RATE_LIMIT_PAUSE_S, True)
    clock.t += RATE_LIMIT_PAUSE_S
    assert gate.delay_for(1) == 0.0
    # a ban without the header waits at least Binance's shortest ban
    assert gate.reject(418, None) == (BAN_PAUSE_S, True)
    assert gate.paused_for == BAN_PAUSE_S
    clock.t += BAN_PAUSE_S - 1
    assert gate.delay_for(1) == pytest.approx(1.0)
    # a ban with the header waits what the server says
    clock.t += 1
    assert gate.reject(418, 300.0) == (300.0, True)
    st = gate.stats()
    assert (st["rate_limited"], st["banned"], st["pauses"]) == (1, 2, 3)


def test_the_weight_budget_is_a_sliding_minute() -> None:
    clock = FakeClock()
    gate = RestGate("h", 100, clock=clock)
    for _ in range(5):  # 5 x 20 = the whole budget
        assert gate.delay_for(20) == 0.0
        gate.spend(20)
        clock.t += 1.0
    assert gate.weight_used == 100
    # the first 20 was spent 5 s ago: it leaves the window 55 s from now
    assert gate.delay_for(20) == pytest.approx(55.0)
    assert gate.delay_for(40) == pytest.approx(56.0)  # needs the first two to leave
    clock.t += 55.0
    assert gate.delay_for(20) == 0.0 and gate.weight_used == 80
    with pytest.raises(ValueError, match="weight 101 can never fit a budget of 100"):
        gate.delay_for(101)
    with pytest.raises(ValueError, match="weight_per_minute"):
        RestGate("h", -1)


def test_weight_limits_per_market_and_the_config_override() -> None:
    assert protocols.rest_weight_limit("binance-spot") == 6000
    assert protocols.rest_weight_limit("binance-usdm") == 2400
    assert protocols.rest_weight_limit("binance-coinm") == 2400
    assert protocols.rest_weight_limit("okx") == 0
    # two feeds on one REST host share one gate, at the tighter budget; another host has
    # its own; OKX has none
    cfg = load_config(None, env={}, overrides=[
        "feeds.0.exchange=binance-spot", "feeds.0.symbols=BTCUSDT",
        "feeds.0.rest=http://127.0.0.1:1",
        "feeds.1.exchange=binance-usdm", "feeds.1.symbols=BTCUSDT",
        "feeds.1.rest=http://127.0.0.1:1/",
        "feeds.2.exchange=binance-usdm", "feeds.2.symbols=ETHUSDT",
        "feeds.2.rest=https://fapi.binance.com",
        "feeds.3.exchange=okx", "feeds.3.symbols=BTC-USDT", "runtime.http="])
    col = Collector(cfg)
    assert sorted(col.rest_gates) == ["http://127.0.0.1:1", "https://fapi.binance.com:443"]
    assert col.feeds[0].rest_gate is col.feeds[1].rest_gate
    assert col.rest_gates["http://127.0.0.1:1"].weight_per_minute == 2400
    assert col.feeds[3].rest_gate is None
    cfg = load_config(None, env={}, overrides=[
        "feeds.0.exchange=binance-usdm", "feeds.0.symbols=BTCUSDT",
        "runtime.resync.weight_per_minute=600", "runtime.http="])
    assert Collector(cfg).feeds[0].rest_gate.weight_per_minute == 600  # type: ignore[union-attr]
    with pytest.raises(ConfigError, match="weight_per_minute"):
        load_config(None, env={}, overrides=[
            "feeds.0.exchange=binance-usdm", "feeds.0.symbols=BTCUSDT",
            "runtime.resync.weight_per_minute=-1"])


# ------------------------------------------------------------------------- the simulator


def test_the_simulator_rejects_depth_requests_on_demand() -> None:
    async def main() -> None:
        sim = Simulator(SimConfig("binance-usdm", symbols=1, rate=50, rest_reject=1,
                                  rest_retry_after="7"))
        await sim.start()
        try:
            base = f"http://127.0.0.1:{sim.ports[0]}/fapi/v1/depth?symbol="
            sym = sim.instruments[0]
            with pytest.raises(RestError) as err:
                await get(base + sym)
            assert err.value.status == 429 and err.value.retry_after == 7.0
            assert "Retry-After 7" in str(err.value)
            assert b"lastUpdateId" in await get(base + sym)  # only the first one
            sim.reject_depth(1, 418, "")
            with pytest.raises(RestError) as err:
                await get(base + sym)
            assert err.value.status == 418 and err.value.retry_after is None
            assert [s for _, s in sim.depth_requests] == [429, 200, 418]
            with pytest.raises(ValueError, match="418 or 429"):
                sim.reject_depth(1, 500)
        finally:
            await sim.stop()

    asyncio.run(asyncio.wait_for(main(), 30))


def test_sim_cli_rest_reject_flags() -> None:
    import argparse

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    cfg = _config(parser.parse_args(["--synthetic", "--rest-reject", "3",
                                     "--rest-reject-status", "418",
                                     "--rest-retry-after", ""]))
    assert isinstance(cfg, SimConfig)
    assert (cfg.rest_reject, cfg.rest_reject_status, cfg.rest_retry_after) == (3, 418, "")
    with pytest.raises(ValueError, match="--rest-reject must be >= 0"):
        _config(parser.parse_args(["--synthetic", "--rest-reject", "-1"]))


# ------------------------------------------------------------------------- end to end


@contextlib.asynccontextmanager
async def _synced_usdm(sim_cfg: SimConfig, what: str) -> AsyncIterator[tuple[Simulator, Collector]]:
    """The simulator and a collector of its first USD-M instrument (depth only, no HTTP),
    started, once the book has synced (``what`` names the wait); both stopped after."""
    sim = Simulator(sim_cfg)
    await sim.start()
    col: Collector | None = None
    try:
        cfg = load_config(None, env={}, overrides=[
            "feeds.0.exchange=binance-usdm", f"feeds.0.symbols={sim.instruments[0]}",
            "feeds.0.channels=depth", f"feeds.0.endpoints=ws://127.0.0.1:{sim.ports[0]}",
            f"feeds.0.rest=http://127.0.0.1:{sim.ports[0]}", "runtime.http="])
        col = Collector(cfg)
        await col.start()
        book = col.feeds[0].engine.book(sim.instruments[0])
        await until(lambda: book.synced, 15, what)
        yield sim, col
    finally:
        if col is not None:
            await col.stop()
        await sim.stop()


def test_collector_honours_retry_after_then_syncs(caplog: pytest.LogCaptureFixture) -> None:
    """The first depth request gets 429 with Retry-After: 1.  Before the change the
    snapshot loop retried 20 ms later (its token bucket allows a burst of 5); now no
    request reaches the simulator within that second, then the book syncs."""
    async def main() -> None:
        async with _synced_usdm(SimConfig("binance-usdm", symbols=1, rate=200, rest_reject=1,
                                          rest_retry_after="1"),
                                "book synced after the pause") as (sim, col):
            reqs = sim.depth_requests
            assert [s for _, s in reqs] == [429, 200], reqs
            assert reqs[1][0] - reqs[0][0] >= 1.0, "a request came inside Retry-After"
            (rest,) = col.stats()["rest"]
            assert rest["host"] == f"http://127.0.0.1:{sim.ports[0]}"
            assert (rest["requests"], rest["rate_limited"], rest["banned"],
                    rest["pauses"]) == (2, 1, 0, 1)
            assert rest["paused_s"] == 1.0 and rest["paused_for_s"] == 0.0
            assert (rest["weight_used_1m"], rest["weight_limit_1m"]) == (40, 2400)
            text = render_stats(col.stats())
            host = rest["host"]
            assert f'xcol_rest_rejected_total{{host="{host}",status="429"}} 1' in text
            assert f'xcol_rest_pauses_total{{host="{host}"}} 1' in text
            assert f'xcol_rest_requests_total{{host="{host}"}} 2' in text

    with caplog.at_level(logging.WARNING, logger="xcol"):
        asyncio.run(asyncio.wait_for(main(), 60))
    pauses = [r.getMessage() for r in caplog.records if "rate limited (HTTP 429)" in
              r.getMessage()]
    assert len(pauses) == 1, pauses
    assert "Retry-After 1 s" in pauses[0] and "1.0 s" in pauses[0]


def test_retry_after_is_bounded() -> None:
    """Retry-After 0 (or a date already past) would let requests go on at once after a
    429, the road to a ban: the pause is at least MIN_PAUSE_S.  An absurd value is cut to
    MAX_PAUSE_S instead of stopping snapshots for good."""
    from xcol.net.restgate import MAX_PAUSE_S, MIN_PAUSE_S

    clock = FakeClock()
    gate = RestGate("h", 0, clock=clock)
    assert gate.reject(429, 0.0) == (MIN_PAUSE_S, True)
    assert gate.delay_for(1) == pytest.approx(MIN_PAUSE_S)
    clock.t += MIN_PAUSE_S
    assert gate.reject(418, 1e12) == (MAX_PAUSE_S, True)


def test_weight_budget_below_a_snapshot_is_refused() -> None:
    """A budget smaller than a snapshot request's weight (spot 50, futures 20) could never
    let one through: refused at configuration time, naming the key."""
    for bad in ("1", "19", "49"):
        with pytest.raises(ConfigError, match="weight_per_minute.*>= 50"):
            load_config(None, env={}, overrides=[
                "feeds.0.exchange=binance-usdm", "feeds.0.symbols=BTCUSDT",
                f"runtime.resync.weight_per_minute={bad}"])
    load_config(None, env={}, overrides=[
        "feeds.0.exchange=binance-spot", "feeds.0.symbols=BTCUSDT",
        "runtime.resync.weight_per_minute=50"])


def test_snapshot_loop_survives_a_reset_connection(monkeypatch: pytest.MonkeyPatch) -> None:
    """A REST request that fails with something other than an HTTP error (here the first
    one's connection is reset) must not end the snapshot loop: the next request syncs the
    book."""
    import xcol.app

    calls: list[str] = []

    async def flaky_get(url: str, timeout: float = 10.0) -> bytes:
        calls.append(url)
        if len(calls) == 1:
            raise ConnectionResetError(104, "Connection reset by peer")
        return await get(url, timeout=timeout)

    monkeypatch.setattr(xcol.app, "get", flaky_get)

    async def main() -> None:
        async with _synced_usdm(SimConfig("binance-usdm", symbols=1, rate=200),
                                "book synced after a reset request") as (_sim, col):
            assert len(calls) >= 2 and col.feeds[0].snapshot_errors == 1

    asyncio.run(asyncio.wait_for(main(), 60))
