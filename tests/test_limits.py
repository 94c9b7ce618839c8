"""The exchanges' connection and message limits: connection attempts per exchange host and
client → server messages per connection are paced by token buckets, heartbeat answers go
ahead of queued subscribe traffic, and every wait is counted.

The collector tests measure from the simulator's side (when it accepted each connection,
when it received each text message), with high rates (5/s, burst 1) to stay short.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest
from e2ehelp import run, until

from xcol.app import Collector
from xcol.config import EXCHANGES, ConfigError, load_config
from xcol.net.pacing import ConnectLimit, Outbox, WaitStats
from xcol.obs.metrics import render_stats
from xcol.sim.server import SimConfig, Simulator, line_configs

RATE = 5.0
#: timers and loopback scheduling: a spacing of 1/RATE may be seen this much shorter
SLACK = 0.05


def _gaps(times: list[float]) -> list[float]:
    return [b - a for a, b in zip(times, times[1:], strict=False)]


# ------------------------------------------------------------------------------ units


def test_outbox_spaces_messages_at_its_rate_and_counts_the_waits() -> None:
    async def main() -> None:
        sent: list[tuple[float, bytes]] = []
        stats = WaitStats()
        box = Outbox(20.0, stats)
        box.attach(lambda m: sent.append((time.monotonic(), m)))
        for i in range(5):
            box.put(b"m%d" % i)
        assert [m for _, m in sent] == [b"m0"], "the first goes at once, the rest queue"
        assert box.queued == 4
        await until(lambda: len(sent) == 5, 2.0, "all sent")
        assert [m for _, m in sent] == [b"m0", b"m1", b"m2", b"m3", b"m4"]
        assert min(_gaps([t for t, _ in sent])) >= 1 / 20.0 - 0.01
        assert stats.waits == 4 and 0.4 < stats.waited_s < 0.8  # 0.05+0.10+0.15+0.20
        assert box.sent == 5 and box.queued == 0
    run(main(), 10)


def test_urgent_message_jumps_the_queue_and_keeps_the_rate() -> None:
    async def main() -> None:
        sent: list[tuple[float, bytes]] = []
        box = Outbox(10.0)
        box.attach(lambda m: sent.append((time.monotonic(), m)))
        for i in range(8):
            box.put(b"sub%d" % i)
        await asyncio.sleep(0.15)
        t0 = time.monotonic()
        box.put(b"answer", urgent=True)
        await until(lambda: any(m == b"answer" for _, m in sent), 1.0, "answer sent")
        t_answer = next(t for t, m in sent if m == b"answer")
        assert t_answer - t0 <= 1 / 10.0 + SLACK, "waits for one token at most"
        order = [m for _, m in sent]
        assert order.index(b"answer") < 4, order  # ahead of most of the queue
        await until(lambda: len(sent) == 9, 3.0, "queue drained")
        assert min(_gaps([t for t, _ in sent])) >= 1 / 10.0 - 0.01, "never over the rate"
    run(main(), 10)


def test_outbox_window_limits_normal_messages_not_urgent_ones() -> None:
    async def main() -> None:
        sent: list[bytes] = []
        box = Outbox(100.0, window=(2, 0.5))
        box.attach(sent.append)
        for i in range(3):
            box.put(b"sub%d" % i)
        await asyncio.sleep(0.1)
        assert sent == [b"sub0", b"sub1"], "the third waits for the window"
        box.put(b"ping", urgent=True)
        await until(lambda: b"ping" in sent, 0.2, "urgent not held by the window")
        assert b"sub2" not in sent
        await until(lambda: b"sub2" in sent, 1.0, "window reopens")
    run(main(), 10)


def test_outbox_backlog_counts_the_window() -> None:
    """``backlog_s`` (what the resubscribe loop waits before asking again) includes the
    window cap: at 100 messages/s with 2 allowed per 0.5 s, a third message waits for
    the window, not 10 ms."""
    async def main() -> None:
        sent: list[bytes] = []
        box = Outbox(100.0, window=(2, 0.5))
        box.attach(sent.append)
        for i in range(3):
            box.put(b"sub%d" % i)     # sub0 goes now, sub1 soon, sub2 after the window
        assert box.backlog_s > 0.4
        box.close()
    run(main(), 10)


def test_outbox_close_drops_and_counts_queued_messages() -> None:
    async def main() -> None:
        sent: list[bytes] = []
        box = Outbox(5.0)
        box.put(b"early")  # before the connection is open: queued
        box.attach(sent.append)
        box.put(b"a")
        box.put(b"b")
        box.close()
        box.put(b"late")
        await asyncio.sleep(0.3)
        assert sent == [b"early"] and box.dropped == 3 and box.queued == 0
    run(main(), 10)


def test_connect_limit_serves_waiters_in_order_at_its_rate() -> None:
    async def main() -> None:
        lim = ConnectLimit("okx", "h", 10.0, 2)
        done: list[float] = []

        async def attempt() -> None:
            await lim.acquire()
            done.append(time.monotonic())

        await asyncio.gather(*(attempt() for _ in range(5)))
        gaps = _gaps(done)
        assert gaps[0] < 0.02, "burst of 2"
        assert all(g >= 0.1 - 0.01 for g in gaps[1:]), gaps
        assert lim.stats.waits == 3 and lim.stats.waited_s == pytest.approx(0.6, abs=0.05)
    run(main(), 10)


# ------------------------------------------------------------------------------ config


def test_limits_default_to_the_exchange_and_can_be_set(tmp_path: Path) -> None:
    base = ["feeds.0.exchange=okx", "feeds.0.symbols=BTC-USDT", "runtime.http="]
    feed = load_config(None, env={}, overrides=base).feeds[0]
    spec = EXCHANGES["okx"]
    assert (feed.connect_rate_per_s, feed.connect_burst, feed.inbound_msgs_per_s) == (
        spec.connect_rate_per_s, spec.connect_burst, spec.inbound_msgs_per_s)
    feed = load_config(None, env={}, overrides=[
        *base, "feeds.0.connect_rate_per_s=5", "feeds.0.connect_burst=1",
        "feeds.0.inbound_msgs_per_s=2.5"]).feeds[0]
    assert (feed.connect_rate_per_s, feed.connect_burst, feed.inbound_msgs_per_s) == (
        5.0, 1, 2.5)
    with pytest.raises(ConfigError, match=r"feeds\.0\.connect_rate_per_s.*>= 0"):
        load_config(None, env={}, overrides=[*base, "feeds.0.connect_rate_per_s=-1"])


@pytest.mark.parametrize("exchange", sorted(EXCHANGES))
def test_connect_bucket_never_exceeds_the_published_window(exchange: str) -> None:
    """A bucket admits ``burst + rate * window`` attempts in a window: Binance allows 300
    in 5 minutes, OKX 3 in a second."""
    spec = EXCHANGES[exchange]
    if exchange.startswith("binance"):
        assert spec.connect_burst + spec.connect_rate_per_s * 300 <= 300
        assert spec.inbound_msgs_per_s < (5 if exchange == "binance-spot" else 10)
    if exchange == "okx":
        assert spec.connect_burst == 1 and spec.connect_rate_per_s <= 3
        assert spec.subscribes_per_hour == 480


# ------------------------------------------------------------------------------ e2e


def _collector(sim: Simulator, exchange: str, symbols: list[str], tmp_path: Path,
               *extra: str) -> Collector:
    eps = ",".join(f"ws://127.0.0.1:{p}" for p in sim.ports)
    cfg = load_config(None, env={}, overrides=[
        f"feeds.0.exchange={exchange}", f"feeds.0.symbols={','.join(symbols)}",
        "feeds.0.channels=depth", f"feeds.0.endpoints={eps}",
        f"feeds.0.rest=http://127.0.0.1:{sim.ports[0]}", "runtime.http=",
        f"sinks.jsonl.path={tmp_path / 'out.jsonl'}", "sinks.jsonl.fsync=false", *extra])
    return Collector(cfg)


def test_connection_attempts_stay_within_the_host_rate(tmp_path: Path) -> None:
    """Four OKX lines to one host, 5 attempts/s with burst 1: the simulator accepts them
    at least 0.2 s apart, at start-up and when every line reconnects at once."""
    async def main() -> None:
        sim = Simulator(SimConfig(exchange="okx", source=[], symbols=1, rate=50.0,
                                  lines=line_configs(4)))
        await sim.start()
        col = _collector(sim, "okx", sim.instruments[:1], tmp_path,
                         f"feeds.0.connect_rate_per_s={RATE}", "feeds.0.connect_burst=1",
                         "runtime.backoff.base_s=0.01")
        await col.start()
        try:
            lines = col.feeds[0].lines
            await until(lambda: all(ln.state == "connected" for ln in lines), 10,
                        "all lines connected")
            first = sim.accept_times()
            assert len(first) == 4
            assert min(_gaps(first)) >= 1 / RATE - SLACK, _gaps(first)
            for i in range(4):
                sim.disconnect(i)
            await until(lambda: len(sim.accept_times()) == 8
                        and all(ln.state == "connected" for ln in lines), 10,
                        "all lines reconnected")
            times = sim.accept_times()
            assert min(_gaps(times)) >= 1 / RATE - SLACK, _gaps(times)
            (lim,) = col.stats()["connect_limits"]
            assert lim["host"] == "127.0.0.1" and lim["rate_per_s"] == RATE
            assert lim["rate_limited_waits"] >= 6 and lim["rate_limited_s"] > 1.0
            text = render_stats(col.stats())
            assert 'xcol_connect_rate_limited_waits_total{exchange="okx",host="127.0.0.1"}' \
                in text
        finally:
            await col.stop()
            await sim.stop()
    run(main(), 60)


async def _lose_sync(sim: Simulator, col: Collector, until_true: Any) -> None:
    # drop the next book update (all lines: a real gap) until the collector has asked
    # for enough resubscribes; a drop may hit a book already resyncing
    for _ in range(20):
        if until_true():
            return
        sim.drop_next_update(all_lines=True)
        await asyncio.sleep(0.05)
    await until(until_true, 5, "books lost sync")


def test_resubscribe_burst_is_paced(tmp_path: Path) -> None:
    """OKX books that lose sync are resubscribed (unsubscribe + subscribe each): the
    messages reach the exchange at most 5 a second, and the books resync."""
    async def main() -> None:
        sim = Simulator(SimConfig(exchange="okx", source=[], symbols=4, rate=400.0,
                                  lines=line_configs(1)))
        await sim.start()
        col = _collector(sim, "okx", sim.instruments, tmp_path,
                         f"feeds.0.inbound_msgs_per_s={RATE}", "runtime.resync.burst=20",
                         "runtime.resync.rate_per_s=20")
        await col.start()
        try:
            books = [col.feeds[0].engine.book(s) for s in sim.instruments]
            await until(lambda: all(b.synced for b in books), 10, "books synced")
            await _lose_sync(sim, col, lambda: col.feeds[0].resubscribes >= 3)
            await until(lambda: all(b.synced for b in books)
                        and col.feeds[0].lines[0].outbox is not None
                        and col.feeds[0].lines[0].outbox.queued == 0, 15, "books resynced")
            msgs = sim.client_messages()
            resubs = [(t, m) for t, m in msgs if '"unsubscribe"' in m]
            assert len(resubs) >= 2, msgs
            paced = [t for t, m in msgs if m != "ping"]
            assert min(_gaps(paced)) >= 1 / RATE - SLACK, _gaps(paced)
            conn = col.stats()["connections"][0]
            assert conn["rate_limited_waits"] >= 2 and conn["rate_limited_s"] > 0
        finally:
            await col.stop()
            await sim.stop()
    run(main(), 60)


def test_deribit_test_request_is_answered_while_resubscribes_are_paced(
        tmp_path: Path) -> None:
    """With resubscribe messages queued behind the message limit, a ``test_request`` is
    answered within one token interval, ahead of the queue."""
    async def main() -> None:
        sim = Simulator(SimConfig(exchange="deribit", source=[], symbols=6, rate=600.0,
                                  lines=line_configs(1)))
        await sim.start()
        col = _collector(sim, "deribit", sim.instruments, tmp_path,
                         f"feeds.0.inbound_msgs_per_s={RATE}", "runtime.resync.burst=20",
                         "runtime.resync.rate_per_s=20")
        await col.start()
        try:
            ln = col.feeds[0].lines[0]
            books = [col.feeds[0].engine.book(s) for s in sim.instruments]
            await until(lambda: all(b.synced for b in books), 10, "books synced")
            queued: Any = lambda: ln.outbox.queued if ln.outbox is not None else 0  # noqa: E731
            await _lose_sync(sim, col, lambda: queued() >= 3)
            await until(lambda: queued() >= 3, 5, "resubscribes queued")
            t0 = time.monotonic()
            assert sim.send_test_request(0) == 1
            await until(lambda: any('"public/test"' in m for _, m in sim.client_messages()),
                        2, "test_request answered")
            t_answer = next(t for t, m in sim.client_messages() if '"public/test"' in m)
            assert t_answer - t0 <= 1 / RATE + SLACK, t_answer - t0
            await until(lambda: all(b.synced for b in books) and queued() == 0, 15,
                        "books resynced")
            later = [t for t, m in sim.client_messages()
                     if t > t_answer and "subscribe" in m]
            assert len(later) >= 2, "the answer went ahead of the queued resubscribes"
            times = [t for t, _ in sim.client_messages()]
            assert min(_gaps(times)) >= 1 / RATE - SLACK, _gaps(times)
            assert ln.transport is not None and ln.reconnects == 0
        finally:
            await col.stop()
            await sim.stop()
    run(main(), 60)
