"""OKX and Deribit books that lose sync are resynced by resubscribing their book channel
(the exchange then sends a fresh snapshot), against the simulator over real sockets."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from xcol.app import Collector
from xcol.config import load_config
from xcol.exchanges import protocols
from xcol.sim.server import SimConfig, Simulator, line_configs


async def _until(cond: object, timeout: float) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not cond():  # type: ignore[operator]
        if loop.time() > end:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)


@pytest.mark.parametrize("exchange", ["okx", "deribit"])
def test_gap_on_every_line_resubscribes_and_resyncs(exchange: str, tmp_path: Path) -> None:
    async def main() -> None:
        sim = Simulator(SimConfig(exchange=exchange, source=[], symbols=1, rate=200.0,
                                  lines=line_configs(2, delay_ms="0,1"),
                                  deribit_min_heartbeat=1.0))
        await sim.start()
        inst = sim.instruments[0]
        cfg = load_config(None, env={}, overrides=[
            f"feeds.0.exchange={exchange}", f"feeds.0.symbols={inst}",
            f"feeds.0.endpoints=ws://127.0.0.1:{sim.ports[0]},ws://127.0.0.1:{sim.ports[1]}",
            f"feeds.0.rest=http://127.0.0.1:{sim.ports[0]}", "runtime.http=",
            f"sinks.jsonl.path={tmp_path / 'out.jsonl'}",
        ])
        col = Collector(cfg)
        await col.start()
        try:
            eng = col.feeds[0].engine
            book = eng.book(inst)
            await _until(lambda: book.synced, 10)
            assert book.snapshots >= 1
            first = book.snapshots
            sim.drop_next_update(all_lines=True)
            await _until(lambda: eng.arbiter_counters()["stream_gaps"] >= 1, 10)
            await _until(lambda: book.synced and book.snapshots > first, 10)
            assert col.feeds[0].resubscribes >= 1
            sim.pause()
            await asyncio.sleep(0.3)
            assert book.synced and book.last_seq == sim.last_seq(inst)
            assert all(ln.reconnects == 0 for ln in col.feeds[0].lines), "resync without reconnect"
        finally:
            await col.stop()
            await sim.stop()

    asyncio.run(main())


def test_resubscribe_messages() -> None:
    okx = protocols.resubscribe_book("okx", "BTC-USDT-SWAP", 1)
    assert okx == ('{"op":"unsubscribe","args":[{"channel":"books","instId":"BTC-USDT-SWAP"}]}',
                   '{"op":"subscribe","args":[{"channel":"books","instId":"BTC-USDT-SWAP"}]}')
    der = protocols.resubscribe_book("deribit", "BTC-PERPETUAL", 7)
    assert '"method":"public/unsubscribe"' in der[0] and '"id":7' in der[0]
    assert '"method":"public/subscribe"' in der[1] and '"book.BTC-PERPETUAL.raw"' in der[1]
    assert protocols.resubscribe_book("binance-usdm", "BTCUSDT", 1) == ()


@pytest.mark.parametrize("market, path", [("okx", "/ws/v5/public"), ("deribit", "/ws/api/v2")])
def test_endpoint_given_with_the_venue_path_is_used_as_is(market: str, path: str) -> None:
    """OKX documents its address with the path (wss://ws.okx.com:8443/ws/v5/public): an
    endpoint that already ends with it is not given the path twice (it was, and every
    connection then got HTTP 404 forever)."""
    from xcol.exchanges import protocols

    for endpoint in ("wss://h.example:8443", "wss://h.example:8443/",
                     f"wss://h.example:8443{path}", f"wss://h.example:8443{path}/"):
        (conn,) = protocols.connections(market, endpoint, ["X"], ["depth"])
        assert conn.url == f"wss://h.example:8443{path}", (endpoint, conn.url)
