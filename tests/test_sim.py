"""The exchange simulator over real sockets: protocols, chaining, REST sync, lines, blast.

Every test starts a :class:`~xcol.sim.Simulator` on free 127.0.0.1 ports and talks to it
with a real picows WebSocket client.  Book checks go through the collector's own
:class:`~xcol._fast.engine.Engine`.  Corpus-based tests skip when the corpus is absent.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import math
import re
import time
from collections.abc import Awaitable, Callable, Coroutine
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

import pytest
from capture import need
from picows import WSListener, WSMsgType, WSTransport, ws_connect

from xcol._fast.engine import Engine
from xcol.exchanges.meta import parse_binance_exchange_info
from xcol.sim import SimConfig, Simulator, line_configs

T = TypeVar("T")

R_APPLIED, R_BUFFERED, R_DUPLICATE, R_GAP = 0, 1, 2, 3


def run(coro: Coroutine[Any, Any, T], timeout: float = 30.0) -> T:
    """Run one async test body with a hard timeout."""
    return asyncio.run(asyncio.wait_for(coro, timeout))


class Client(WSListener):
    """Collects every text frame with its monotonic arrival time."""

    def __init__(self) -> None:
        super().__init__()
        self.frames: list[tuple[float, bytes]] = []
        self.pings = 0

    def on_ws_frame(self, transport: WSTransport, frame: Any) -> None:
        if frame.msg_type == WSMsgType.TEXT:
            self.frames.append((time.monotonic(), frame.get_payload_as_bytes()))
        elif frame.msg_type == WSMsgType.PING:
            self.pings += 1

    def json(self) -> list[Any]:
        out = []
        for _t, b in self.frames:
            try:
                out.append(json.loads(b))
            except ValueError:
                continue
        return out

    def text(self, data: Any) -> None:
        self.transport.send(WSMsgType.TEXT, json.dumps(data).encode())

    def on_ws_connected(self, transport: WSTransport) -> None:
        self.transport = transport


async def connect(sim: Simulator, path: str, line: int = 0, **kw: Any) -> Client:
    _tr, client = await ws_connect(Client, sim.url(line, path), **kw)
    assert isinstance(client, Client)
    return client


async def http_get(port: int, path: str) -> tuple[int, bytes]:
    """One plain HTTP/1.1 GET; returns (status, body)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
    await writer.drain()
    raw = await reader.read()
    writer.close()
    head, _, body = raw.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), body


async def until(cond: Callable[[], bool], timeout: float = 5.0) -> None:
    end = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > end:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)


async def with_sim(cfg: SimConfig, body: Callable[[Simulator], Awaitable[None]]) -> None:
    sim = Simulator(cfg)
    await sim.start()
    try:
        await body(sim)
    finally:
        await sim.stop()


def depth_data(frames: list[Any]) -> list[dict[str, Any]]:
    return [m["data"] for m in frames if "data" in m and m["data"].get("e") == "depthUpdate"]


def cut_capture(src: Path, dst: Path, after_snapshot: int) -> Path:
    """A shorter copy of a binance/*.gz capture: up to ``after_snapshot`` lines past the
    snapshot (written to a temporary directory; the corpus is never modified)."""
    out: list[bytes] = []
    seen = -1
    with gzip.open(src, "rb") as fh:
        for line in fh:
            out.append(line)
            if b' {"lastUpdateId"' in line[:40]:
                seen = 0
            elif seen >= 0:
                seen += 1
                if seen >= after_snapshot:
                    break
    with gzip.open(dst, "wb") as fh:
        fh.writelines(out)
    return dst


async def binance_sync_check(sim: Simulator, market: str, path_prefix: str, rest: str,
                             symbol: str, wait: float = 0.4) -> tuple[Engine, int]:
    """Subscribe depth, fetch REST mid-stream, feed both to an Engine: returns the engine
    and the instrument id once the feed is paused and drained."""
    stream = f"{symbol.lower()}@depth@0ms"
    client = await connect(sim, f"{path_prefix}/stream?streams={stream}")
    status, info = await http_get(sim.ports[0], f"{rest}/exchangeInfo")
    assert status == 200
    meta = parse_binance_exchange_info(info)[symbol]
    await asyncio.sleep(wait)
    status, snap = await http_get(sim.ports[0], f"{rest}/depth?symbol={symbol}&limit=1000")
    assert status == 200, snap
    n_before = len(client.frames)
    await asyncio.sleep(wait)
    sim.pause()
    await sim.settle()
    e = Engine(market)
    inst = e.add_instrument(symbol, meta.price_scale, meta.qty_scale)
    frames = [b for _t, b in client.frames]
    for f in frames[:n_before]:
        assert e.feed(f) in (R_BUFFERED, R_DUPLICATE, R_APPLIED), e.last_error()
    e.feed_snapshot(inst, snap)
    codes = [e.feed(f) for f in frames[n_before:]]
    assert R_GAP not in codes
    datas = depth_data([json.loads(f) for f in frames])
    assert len(datas) > 5
    for a, b in zip(datas, datas[1:], strict=False):
        if "pu" in b:
            assert b["pu"] == a["u"]
        else:
            assert b["U"] == a["u"] + 1
    return e, inst


def assert_book_matches(e: Engine, inst: int, sim: Simulator, symbol: str) -> None:
    book = e.book(inst)
    assert book.synced
    assert book.gaps == 0
    assert book.last_seq == sim.last_seq(symbol)
    truth = sim.book(symbol)
    bids, asks = book.top(20)
    assert bids == [tuple(lv[:2]) for lv in truth.bids.top(20)]
    assert asks == [tuple(lv[:2]) for lv in truth.asks.top(20)]


# ======================================================================= Binance replay


@pytest.mark.corpus
def test_usdm_replay_rest_depth_syncs_the_engine() -> None:
    cap = need("usdm")

    async def body(sim: Simulator) -> None:
        e, inst = await binance_sync_check(sim, "binance-usdm", "/public", "/fapi/v1",
                                           "BTCUSDT")
        assert_book_matches(e, inst, sim, "BTCUSDT")

    run(with_sim(SimConfig("binance-usdm", source=[str(cap.path)], speed=20), body))


def _prices_in(path: Path) -> list[str]:
    """Every depth and bookTicker price of an hftbacktest-style capture, as written."""
    out: list[str] = []
    with gzip.open(path, "rt") as fh:
        for line in fh:
            obj = json.loads(line.split(" ", 1)[1])
            d = obj.get("data", obj)
            for side in ("b", "a", "bids", "asks"):
                v = d.get(side)
                if isinstance(v, list):
                    out.extend(lv[0] for lv in v)
                elif isinstance(v, str):
                    out.append(v)
    return out


@pytest.mark.corpus
@pytest.mark.parametrize("name,market,rest,symbol", [
    ("spot", "binance-spot", "/api/v3", "BTCUSDT"),
    ("coinm", "binance-coinm", "/dapi/v1", "BTCUSD_PERP"),
    ("usdm", "binance-usdm", "/fapi/v1", "BTCUSDT"),
])
def test_replay_exchange_info_tick_is_the_captures_price_step(name: str, market: str,
                                                                rest: str, symbol: str) -> None:
    """Without an instrument list the simulator reports as tick the step every price of
    the capture sits on (BTCUSDT futures: 0.10, though prices are written with two
    decimals): every price is a multiple of it and of no coarser step."""
    from decimal import Decimal

    cap = need(name)
    prices = [Decimal(p) for p in _prices_in(cap.path)]
    assert len(prices) > 10_000

    async def body(sim: Simulator) -> None:
        status, info = await http_get(sim.ports[0], f"{rest}/exchangeInfo")
        assert status == 200
        tick_text = json.loads(info)["symbols"][0]["filters"][0]["tickSize"]
        tick = Decimal(tick_text)
        assert all(p % tick == 0 for p in prices)
        # no coarser step divides them all
        assert math.gcd(*(int(p / tick) for p in prices)) == 1, tick_text
        # written with the capture's decimals, so the scales stay those of the prices
        assert len(tick_text.partition(".")[2]) == max(
            len(str(p).partition(".")[2]) for p in prices)

    run(with_sim(SimConfig(market, source=[str(cap.path)], loop=True, speed=0), body))


@pytest.mark.corpus
@pytest.mark.parametrize("name,market,rest,symbol", [
    ("spot", "binance-spot", "/api/v3", "BTCUSDT"),
    ("coinm", "binance-coinm", "/dapi/v1", "BTCUSD_PERP"),
    ("usdm", "binance-usdm", "/fapi/v1", "BTCUSDT"),
])
def test_binance_replay_loops_with_chained_ids(name: str, market: str, rest: str,
                                               symbol: str, tmp_path: Path) -> None:
    short = cut_capture(need(name).path, tmp_path / f"{name}.gz", 400)

    async def body(sim: Simulator) -> None:
        stream = f"{symbol.lower()}@depth@100ms"
        client = await connect(sim, f"/stream?streams={stream}")
        status, snap = await http_get(sim.ports[0], f"{rest}/depth?symbol={symbol}")
        assert status == 200
        await until(lambda: sim.feed.passes >= 3, 15)
        sim.pause()
        await sim.settle()
        e = Engine(market)
        inst = e.add_instrument(symbol)
        frames = [b for _t, b in client.frames]
        e.feed_snapshot(inst, snap)
        codes = [e.feed(f) for f in frames]
        assert R_GAP not in codes
        assert codes.count(R_APPLIED) > 10
        assert all(json.loads(f)["stream"] == stream for f in frames)
        assert_book_matches(e, inst, sim, symbol)

    run(with_sim(SimConfig(market, source=[str(short)], speed=0), body))


# ========================================================================= Binance misc


def test_binance_subscribe_unsubscribe_and_routes() -> None:
    async def body(sim: Simulator) -> None:
        raw = await connect(sim, "/ws")
        raw.text({"method": "SUBSCRIBE", "params": ["btcusdt@depth", "btcusdt@trade"], "id": 7})
        await until(lambda: any(b'"depthUpdate"' in b for _t, b in raw.frames))
        acks = [m for m in raw.json() if "id" in m]
        assert acks[0] == {"result": None, "id": 7}
        assert b'"stream"' not in raw.frames[-1][1]  # /ws: raw payloads
        raw.text({"method": "LIST_SUBSCRIPTIONS", "id": 8})
        raw.text({"method": "UNSUBSCRIBE", "params": ["btcusdt@depth", "btcusdt@trade"],
                  "id": 9})
        await until(lambda: {"result": None, "id": 9} in raw.json())
        listed = next(m for m in raw.json() if m.get("id") == 8)["result"]
        assert listed == ["btcusdt@depth", "btcusdt@trade"]
        await sim.settle(0.1)
        n = len(raw.frames)
        await asyncio.sleep(0.2)
        assert len(raw.frames) == n  # unsubscribed: nothing more
        raw.text({"method": "SUBSCRIBE", "params": ["btcusdt@nope"], "id": 10})
        await until(lambda: any(m.get("id") == 10 for m in raw.json()))
        assert "error" in next(m for m in raw.json() if m.get("id") == 10)

        # USD-M routed paths: depth on /public, trades on /market; a wrong route is silent
        pub = await connect(sim, "/public/stream?streams=btcusdt@depth@0ms/btcusdt@trade")
        mkt = await connect(sim, "/market/stream?streams=btcusdt@aggTrade/btcusdt@depth")
        await asyncio.sleep(0.6)
        assert {json.loads(b)["stream"] for _t, b in pub.frames} == {"btcusdt@depth@0ms"}
        assert {json.loads(b)["stream"] for _t, b in mkt.frames} == {"btcusdt@aggTrade"}

    run(with_sim(SimConfig("binance-usdm", rate=300), body))


def test_binance_rest_errors_and_exchange_info() -> None:
    async def body(sim: Simulator) -> None:
        port = sim.ports[0]
        status, info = await http_get(port, "/api/v3/exchangeInfo")
        assert status == 200
        meta = parse_binance_exchange_info(info)
        assert set(meta) == set(sim.instruments)
        assert (await http_get(port, "/api/v3/depth?symbol=NOPE"))[0] == 400
        assert (await http_get(port, "/api/v3/depth"))[0] == 400
        assert (await http_get(port, "/fapi/v1/depth?symbol=BTCUSDT"))[0] == 404
        status, snap = await http_get(port, "/api/v3/depth?symbol=ETHUSDT&limit=5")
        obj = json.loads(snap)
        assert len(obj["bids"]) == len(obj["asks"]) == 5 and "lastUpdateId" in obj

    run(with_sim(SimConfig("binance-spot", symbols=3, rate=50), body))


def test_binance_server_ping_pong_and_unanswered_ping() -> None:
    async def body(sim: Simulator) -> None:
        good = await connect(sim, "/ws/btcusdt@depth")
        bad = await connect(sim, "/ws/btcusdt@depth", enable_auto_pong=False)
        await until(lambda: sim.line_stats(0).pongs >= 2, 5)
        await asyncio.wait_for(bad.transport.wait_disconnected(), 5)
        assert not good.transport.is_disconnected

    run(with_sim(SimConfig("binance-spot", rate=20, ping_interval=0.1, pong_timeout=0.25),
                 body))


def test_forced_disconnect_and_server_shutdown() -> None:
    async def body(sim: Simulator) -> None:
        a = await connect(sim, "/stream?streams=btcusdt@depth", line=0)
        b = await connect(sim, "/stream?streams=btcusdt@depth", line=1)
        await until(lambda: sim.line_stats(0).connections == 1
                    and sim.line_stats(1).connections == 1)
        assert sim.disconnect(0) == 1
        await asyncio.wait_for(a.transport.wait_disconnected(), 5)
        assert not b.transport.is_disconnected
        assert sim.server_shutdown(1, grace=0.1) == 1
        await asyncio.wait_for(b.transport.wait_disconnected(), 5)
        events = [m for m in b.json() if m.get("e") == "serverShutdown"]
        assert len(events) == 1 and isinstance(events[0]["E"], int)
        assert sim.line_stats(1).shutdowns == 1

    run(with_sim(SimConfig("binance-spot", rate=50, lines=line_configs(2)), body))


def test_disconnect_schedule() -> None:
    async def body(sim: Simulator) -> None:
        c = await connect(sim, "/stream?streams=btcusdt@depth")
        await asyncio.wait_for(c.transport.wait_disconnected(), 5)
        assert sim.line_stats(0).disconnects >= 1

    run(with_sim(SimConfig("binance-usdm", rate=50,
                           lines=line_configs(1, disconnect_every="0.3")), body))


# ========================================================================== lines


def test_two_lines_delay_difference_and_identical_bytes() -> None:
    async def body(sim: Simulator) -> None:
        a = await connect(sim, "/stream?streams=btcusdt@depth@0ms", line=0)
        b = await connect(sim, "/stream?streams=btcusdt@depth@0ms", line=1)
        await asyncio.sleep(1.0)
        sim.pause()
        await sim.settle()
        arr_a = {body: t for t, body in a.frames}
        arr_b = {body: t for t, body in b.frames}
        common = [k for k in arr_a if k in arr_b]
        assert len(common) > 50
        diffs = sorted((arr_b[k] - arr_a[k]) * 1000 for k in common)
        median = diffs[len(diffs) // 2]
        assert 17.0 < median < 25.0, median
        assert diffs[len(diffs) // 10] > 15.0

    run(with_sim(SimConfig("binance-usdm", rate=200, lines=line_configs(2, delay_ms="0,20")),
                 body))


def test_drop_rate_and_malformed_injection_counts() -> None:
    async def body(sim: Simulator) -> None:
        c = await connect(sim, "/stream?streams=btcusdt@depth@0ms")
        await asyncio.sleep(1.0)
        sim.pause()
        await sim.settle()
        st = sim.line_stats(0)
        bad = 0
        good: list[dict[str, Any]] = []
        for _t, b in c.frames:
            try:
                good.append(json.loads(b)["data"])
            except (ValueError, KeyError, TypeError):
                bad += 1
        assert bad == st.malformed > 0
        assert len(good) == st.frames_sent
        assert st.dropped > 0
        breaks = sum(1 for x, y in zip(good, good[1:], strict=False) if y["pu"] != x["u"])
        assert breaks > 0  # drops on this line show up as breaks in its chain

    run(with_sim(SimConfig("binance-usdm", rate=300,
                           lines=line_configs(1, drop_rate="0.1", malformed_rate="0.1")), body))


def test_drop_next_update_on_all_lines_is_a_real_gap() -> None:
    async def body(sim: Simulator) -> None:
        a = await connect(sim, "/stream?streams=btcusdt@depth@0ms", line=0)
        b = await connect(sim, "/stream?streams=btcusdt@depth@0ms", line=1)
        status, snap = await http_get(sim.ports[0], "/fapi/v1/depth?symbol=BTCUSDT")
        await asyncio.sleep(0.3)
        sim.drop_next_update()
        await asyncio.sleep(0.3)
        sim.pause()
        await sim.settle()
        assert len(sim.dropped_updates) == 1
        _inst, seq = sim.dropped_updates[0]
        for c in (a, b):
            datas = depth_data(c.json())
            us = [d["u"] for d in datas]
            assert seq not in us
            breaks = [y for x, y in zip(datas, datas[1:], strict=False) if y["pu"] != x["u"]]
            assert [y["pu"] for y in breaks] == [seq]
        e = Engine("binance-usdm")
        inst = e.add_instrument("BTCUSDT")
        e.feed_snapshot(inst, snap)
        codes = [e.feed(f) for _t, f in a.frames]
        assert R_GAP in codes

    run(with_sim(SimConfig("binance-usdm", rate=200, lines=line_configs(2, delay_ms="0,2")),
                 body))


def test_synthetic_many_instruments_chain_and_sync() -> None:
    n = 120

    async def body(sim: Simulator) -> None:
        names = sim.instruments
        assert len(names) == n
        watch = names[:40]
        streams = "/".join(f"{s.lower()}@depth" for s in watch)
        c = await connect(sim, f"/stream?streams={streams}")
        snaps = {}
        for s in watch[:5]:
            status, snaps[s] = await http_get(sim.ports[0], f"/fapi/v1/depth?symbol={s}")
            assert status == 200
        await asyncio.sleep(0.8)
        sim.pause()
        await sim.settle()
        per: dict[str, list[dict[str, Any]]] = {}
        for d in depth_data(c.json()):
            per.setdefault(d["s"], []).append(d)
        assert len(per) >= 30
        for datas in per.values():
            assert all(y["pu"] == x["u"] for x, y in zip(datas, datas[1:], strict=False))
        e = Engine("binance-usdm")
        ids = {s: e.add_instrument(s, 2, 3) for s in watch}
        for s in watch[:5]:
            e.feed_snapshot(ids[s], snaps[s])
        codes = [e.feed(f) for _t, f in c.frames]
        assert R_GAP not in codes
        for s in watch[:5]:
            assert_book_matches(e, ids[s], sim, s)

    run(with_sim(SimConfig("binance-usdm", symbols=n, rate=2000), body))


# ============================================================================== OKX


@pytest.mark.corpus
def test_okx_replay_books_checksums_and_seq_chain() -> None:
    cap = need("okx")

    async def body(sim: Simulator) -> None:
        c = await connect(sim, "/ws/v5/public")
        args = [{"channel": "books", "instId": i} for i in sim.instruments]
        c.text({"op": "subscribe", "args": args + [{"channel": "books", "instId": "NOPE-X"}]})
        c.transport.send(WSMsgType.TEXT, b"ping")
        await until(lambda: sim.feed.passes >= 2, 15)
        sim.pause()
        await sim.settle()
        msgs = c.json()
        assert sum(1 for m in msgs if m.get("event") == "subscribe") == 3
        assert any(m.get("event") == "error" and m["code"] == "60018" for m in msgs)
        assert any(b == b"pong" for _t, b in c.frames)
        last: dict[str, int] = {}
        for m in msgs:
            if "data" not in m:
                continue
            d, inst = m["data"][0], m["arg"]["instId"]
            if m["action"] == "snapshot":
                assert d["prevSeqId"] == -1
            else:
                assert d["prevSeqId"] == last[inst]
            last[inst] = d["seqId"]
        e = Engine("okx")
        for _t, f in c.frames:
            if f == b"pong" or b'"event"' in f[:12]:
                continue
            code = e.feed(f)
            if code == 14 and e.last_symbol:
                e.add_instrument(e.last_symbol)
                code = e.feed(f)
            assert code in (R_APPLIED, 7), (code, e.last_error())
        books = [b for b in e.books_list() if b.mode != 4]
        assert sum(b.checksums_checked for b in books) > 300
        assert sum(b.checksums_failed for b in books) == 0
        assert sum(b.gaps for b in books) == 0
        for b in books:
            assert b.last_seq == sim.last_seq(b.symbol)
            assert b.best_bid() == tuple(sim.book(b.symbol).bids.best()[:2])  # type: ignore[index]

    run(with_sim(SimConfig("okx", source=[str(cap.path)], speed=40), body))


@pytest.mark.parametrize("mode", ["compute", "zero"])
def test_okx_synthetic_checksum_modes_and_heartbeat(mode: str) -> None:
    async def body(sim: Simulator) -> None:
        c = await connect(sim, "/ws/v5/public")
        c.text({"op": "subscribe", "args": [{"channel": "books", "instId": "BTC-USDT"},
                                            {"channel": "trades", "instId": "BTC-USDT"}]})
        await asyncio.sleep(0.5)
        sim.emit_heartbeat("BTC-USDT")
        await asyncio.sleep(0.2)
        c.text({"op": "unsubscribe", "args": [{"channel": "books", "instId": "BTC-USDT"}]})
        sim.pause()
        await sim.settle()
        msgs = [m for m in c.json() if m.get("arg", {}).get("channel") == "books"
                and "data" in m]
        beats = [m["data"][0] for m in msgs if m["data"][0]["seqId"] == m["data"][0]["prevSeqId"]]
        assert len(beats) == 1 and beats[0]["asks"] == beats[0]["bids"] == []
        cks = {m["data"][0]["checksum"] for m in msgs}
        assert (cks == {0}) if mode == "zero" else (0 not in cks)
        assert any(m.get("event") == "unsubscribe" for m in c.json())
        assert any(m.get("arg", {}).get("channel") == "trades" for m in c.json())
        e = Engine("okx")
        e.add_instrument("BTC-USDT", 1, 8)
        codes = [e.feed(f) for _t, f in c.frames if b'"channel":"books"' in f
                 and b'"action"' in f]
        assert set(codes) <= {R_APPLIED, 7}, codes
        book = e.book("BTC-USDT")
        assert book.gaps == 0
        assert book.checksums_failed == 0
        assert (book.checksums_checked > 0) == (mode == "compute")

    run(with_sim(SimConfig("okx", symbols=3, rate=150, okx_checksum=mode), body))


# ========================================================================== Deribit


@pytest.mark.corpus
def test_deribit_replay_book_chain() -> None:
    cap = need("deribit")

    async def body(sim: Simulator) -> None:
        c = await connect(sim, "/ws/api/v2")
        chans = [f"book.{i}.raw" for i in sim.instruments] + ["book.NOPE.raw"]
        c.text({"jsonrpc": "2.0", "id": 3, "method": "public/subscribe",
                "params": {"channels": chans}})
        await until(lambda: sim.feed.passes >= 3, 15)
        sim.pause()
        await sim.settle()
        msgs = c.json()
        reply = next(m for m in msgs if m.get("id") == 3)
        assert sorted(reply["result"]) == sorted(chans[:-1])
        e = Engine("deribit")
        last: dict[str, int] = {}
        snaps = changes = 0
        for _t, f in c.frames:
            m = json.loads(f)
            if m.get("method") != "subscription":
                continue
            d = m["params"]["data"]
            if d["type"] == "snapshot":
                snaps += 1
            else:
                changes += 1
                assert d["prev_change_id"] == last[d["instrument_name"]]
            last[d["instrument_name"]] = d["change_id"]
            code = e.feed(f)
            if code == 14 and e.last_symbol:
                e.add_instrument(e.last_symbol)
                code = e.feed(f)
            assert code in (R_APPLIED, 7), (code, e.last_error())
        assert snaps == len(sim.instruments) and changes > 36
        for inst, cid in last.items():
            assert cid == sim.last_seq(inst)

    run(with_sim(SimConfig("deribit", source=[str(cap.path)], speed=100), body))


def test_deribit_heartbeat_unanswered_closes_answered_stays() -> None:
    async def body(sim: Simulator) -> None:
        lazy = await connect(sim, "/ws/api/v2")
        good = await connect(sim, "/ws/api/v2")
        for c in (lazy, good):
            c.text({"jsonrpc": "2.0", "id": 1, "method": "public/set_heartbeat",
                    "params": {"interval": 0.15}})
            c.text({"jsonrpc": "2.0", "id": 2, "method": "public/subscribe",
                    "params": {"channels": ["book.BTC-PERPETUAL.100ms",
                                            "trades.BTC-PERPETUAL.raw"]}})
        answered = 0
        end = time.monotonic() + 1.0
        while time.monotonic() < end:
            reqs = sum(1 for _t, b in good.frames if b'"test_request"' in b)
            while answered < reqs:
                answered += 1
                good.text({"jsonrpc": "2.0", "id": 100 + answered, "method": "public/test"})
            await asyncio.sleep(0.01)
        await asyncio.wait_for(lazy.transport.wait_disconnected(), 2)
        assert not good.transport.is_disconnected
        assert answered >= 3
        assert {"jsonrpc", "id", "result"} <= set(
            next(m for m in good.json() if m.get("id") == 1))
        data = [m["params"]["data"] for m in good.json() if m.get("method") == "subscription"
                and m["params"]["channel"].startswith("book.")]
        assert data[0]["type"] == "snapshot"
        assert all(y["prev_change_id"] == x["change_id"]
                   for x, y in zip(data, data[1:], strict=False))

    run(with_sim(SimConfig("deribit", symbols=2, rate=100, deribit_min_heartbeat=0.0), body))


def test_deribit_quote_follows_the_top_of_the_book() -> None:
    """``quote.{inst}`` sends the best bid and ask whenever the book's top changes, and only
    then: replaying the book channel on the same connection, each change that moves the top
    (price or amount, either side) is followed by a quote of exactly that top."""
    async def body(sim: Simulator) -> None:
        c = await connect(sim, "/ws/api/v2")
        chans = [f"book.{i}.raw" for i in sim.instruments] + [
            f"quote.{i}" for i in sim.instruments] + ["quote.NOPE"]
        c.text({"jsonrpc": "2.0", "id": 3, "method": "public/subscribe",
                "params": {"channels": chans}})
        await asyncio.sleep(1.0)
        sim.pause()
        await sim.settle()
        msgs = [json.loads(b, parse_float=Decimal) for _t, b in c.frames]
        reply = next(m for m in msgs if m.get("id") == 3)
        assert sorted(reply["result"]) == sorted(chans[:-1])
        books: dict[str, tuple[dict[Decimal, Decimal], dict[Decimal, Decimal]]] = {}
        owed: dict[str, tuple[Any, ...] | None] = {}  # the quote a top change calls for
        quotes = moves = 0
        for m in msgs:
            if m.get("method") != "subscription":
                continue
            ch, d = m["params"]["channel"], m["params"]["data"]
            inst = d["instrument_name"]
            if ch.startswith("quote."):
                assert ch == f"quote.{inst}" and isinstance(d["timestamp"], int)
                got = (d["best_bid_price"], d["best_bid_amount"], d["best_ask_price"],
                       d["best_ask_amount"])
                assert owed.get(inst) == got, (inst, owed.get(inst), got)
                owed[inst] = None
                quotes += 1
                continue
            assert owed.get(inst) is None, f"{inst}: the top moved and no quote followed"
            if d["type"] == "snapshot":
                books[inst] = ({}, {})
            bids, asks = books[inst]
            before = _best(bids, asks)
            for side, lv in ((bids, d["bids"]), (asks, d["asks"])):
                for action, px, amt in lv:
                    if action == "delete":
                        side.pop(px, None)
                    else:
                        side[px] = amt
            if d["type"] == "change" and _best(bids, asks) != before:
                owed[inst] = _best(bids, asks)
                moves += 1
        assert quotes == moves > 20
        for inst in sim.instruments:
            top = sim.top(inst)
            assert owed.get(inst) is None and top is not None
            assert _best(*books[inst]) == tuple(Decimal(str(x)) for x in top)

    run(with_sim(SimConfig("deribit", symbols=2, rate=200), body))


def _best(bids: dict[Decimal, Decimal], asks: dict[Decimal, Decimal]) -> tuple[Any, ...]:
    """A Deribit quote's four numbers for this book (an empty side: null price, 0)."""
    b = max(bids) if bids else None
    a = min(asks) if asks else None
    return (b, bids[b] if b is not None else 0, a, asks[a] if a is not None else 0)


def test_deribit_rejects_short_heartbeat_by_default() -> None:
    async def body(sim: Simulator) -> None:
        c = await connect(sim, "/ws/api/v2")
        c.text({"jsonrpc": "2.0", "id": 5, "method": "public/set_heartbeat",
                "params": {"interval": 1}})
        c.text({"jsonrpc": "2.0", "id": 6, "method": "public/nope"})
        await until(lambda: len(c.json()) >= 2)
        by_id = {m["id"]: m for m in c.json()}
        assert by_id[5]["error"]["code"] == -32602
        assert by_id[6]["error"]["code"] == -32601

    run(with_sim(SimConfig("deribit", rate=10), body))


# ============================================================================ blast


_RE_IDS = re.compile(rb'"U":(\d+),"u":(\d+),"pu":(\d+)')


@pytest.mark.corpus
def test_blast_delivers_n_chained_frames() -> None:
    cap = need("usdm")
    n = 20_000

    async def body(sim: Simulator) -> None:
        status, snap = await http_get(sim.ports[0], "/fapi/v1/depth?symbol=BTCUSDT&limit=1000")
        assert status == 200
        t0 = time.monotonic()
        c = await connect(sim, "/public/stream?streams=btcusdt@depth@0ms")
        await until(lambda: len(c.frames) >= n, 20)
        elapsed = time.monotonic() - t0
        await asyncio.sleep(0.1)
        assert len(c.frames) == n and sim.blast_frames == n
        prev_u = None
        for _t, f in c.frames:
            m = _RE_IDS.search(f)
            assert m is not None
            if prev_u is not None:
                assert int(m.group(3)) == prev_u
            prev_u = int(m.group(2))
        e = Engine("binance-usdm")
        inst = e.add_instrument("BTCUSDT", 2, 3)
        e.feed_snapshot(inst, snap)
        codes = [e.feed(f) for _t, f in c.frames]
        assert R_GAP not in codes and codes.count(R_APPLIED) > n - 10
        assert json.loads(c.frames[-1][1])["data"]["e"] == "depthUpdate"
        print(f"blast: {n} frames received in {elapsed:.2f}s")

    run(with_sim(SimConfig("binance-usdm", source=[str(cap.path)], blast=True,
                           blast_count=n), body))


@pytest.mark.corpus
def test_blast_small_frames_rechained() -> None:
    cap = need("usdm")
    n = 3000

    async def body(sim: Simulator) -> None:
        c = await connect(sim, "/stream?streams=btcusdt@depth@0ms")
        await until(lambda: len(c.frames) >= 1, 5)
        await asyncio.sleep(0.2)
        assert len(c.frames) == 1, "the flood waits for the snapshot request"
        status, _snap = await http_get(sim.ports[0], "/fapi/v1/depth?symbol=BTCUSDT")
        assert status == 200
        await until(lambda: len(c.frames) >= n, 20)
        await asyncio.sleep(0.05)
        assert len(c.frames) == n
        lens = sorted(len(f) for _t, f in c.frames)
        assert lens[len(lens) * 9 // 10] <= 700  # only each chunk's first message may be big
        ids = [tuple(int(x) for x in m.groups()) for _t, f in c.frames
               if (m := _RE_IDS.search(f))]
        assert all(b[2] == a[1] and b[1] > a[1] for a, b in zip(ids, ids[1:], strict=False))

    run(with_sim(SimConfig("binance-usdm", source=[str(cap.path)], blast=True,
                           blast_count=n, blast_max_bytes=700), body))


@pytest.mark.corpus
def test_blast_rate_paces_frames() -> None:
    """``blast_rate`` spreads the frames over time (3,000 at 10,000/s take >= 0.3 s) and
    keeps the chain."""
    cap = need("usdm")
    n = 3000

    async def body(sim: Simulator) -> None:
        status, _ = await http_get(sim.ports[0], "/fapi/v1/depth?symbol=BTCUSDT&limit=1000")
        assert status == 200
        t0 = time.monotonic()
        c = await connect(sim, "/public/stream?streams=btcusdt@depth@0ms")
        await until(lambda: len(c.frames) >= n, 20)
        elapsed = time.monotonic() - t0
        assert elapsed >= 0.25
        await asyncio.sleep(0.05)
        assert len(c.frames) == n
        ids = [tuple(int(x) for x in m.groups()) for _t, f in c.frames
               if (m := _RE_IDS.search(f))]
        assert len(ids) == n
        assert all(b[2] == a[1] for a, b in zip(ids, ids[1:], strict=False))

    run(with_sim(SimConfig("binance-usdm", source=[str(cap.path)], blast=True,
                           blast_count=n, blast_rate=10_000), body))


def test_tls_serves_wss_and_https(tmp_path: Path) -> None:
    """With a certificate the simulator speaks wss:// and https:// on the same ports."""
    import ssl
    import subprocess

    cert, key = tmp_path / "c.pem", tmp_path / "k.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    ctx = ssl.create_default_context(cafile=str(cert))

    async def body(sim: Simulator) -> None:
        assert sim.url(0).startswith("wss://")
        c = await connect(sim, "/public/stream?streams=" + sim.instruments[0].lower()
                          + "@depth@0ms", ssl_context=ctx)
        await until(lambda: len(c.frames) >= 3, 10)
        reader, writer = await asyncio.open_connection("127.0.0.1", sim.ports[0], ssl=ctx)
        writer.write(f"GET /fapi/v1/depth?symbol={sim.instruments[0]} HTTP/1.1\r\n"
                     "Host: 127.0.0.1\r\nConnection: close\r\n\r\n".encode())
        await writer.drain()
        raw = await reader.read()
        writer.close()
        assert raw.startswith(b"HTTP/1.1 200") and b'"lastUpdateId"' in raw

    run(with_sim(SimConfig("binance-usdm", source=[], symbols=1, rate=200.0,
                           tls_cert=str(cert), tls_key=str(key)), body))


# ============================================================================== CLI


def test_cli_runs_synthetic_for_a_moment(capsys: pytest.CaptureFixture[str]) -> None:
    from xcol.cli import main

    code = main(["sim", "--exchange", "okx", "--synthetic", "--symbols", "3", "--rate", "50",
                 "--lines", "2", "--delay-ms", "0,3", "--duration", "0.3"])
    assert code == 0
    out = capsys.readouterr().out
    assert "okx" in out and "line 1" in out


def test_cli_without_corpus_falls_back_to_synthetic(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    from xcol.cli import main

    monkeypatch.setenv("XCOL_CORPUS", str(tmp_path / "absent"))
    assert main(["sim", "--exchange", "binance-spot", "--duration", "0.2"]) == 0
    assert "synthetic" in capsys.readouterr().out
    assert main(["sim", "--exchange", "okx", "--source", str(tmp_path / "nope.gz")]) == 2


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _cli_sim(*argv: str) -> tuple[asyncio.subprocess.Process, int]:
    """``xcol sim ARGV`` in its own process on a free port, once it prints its lines."""
    import os
    import sys

    port = _free_port()
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "xcol", "sim", *argv, "--port", str(port), "--stats-every",
        "0", "--duration", "60", env=env, stdout=asyncio.subprocess.PIPE)
    assert proc.stdout is not None
    while f":{port}".encode() not in await asyncio.wait_for(proc.stdout.readline(), 20):
        pass
    return proc, port


async def _cli_line(proc: asyncio.subprocess.Process, prefix: str) -> str:
    """The next line of the sim's output that starts with ``prefix`` (after indentation)."""
    assert proc.stdout is not None
    while True:
        line = (await asyncio.wait_for(proc.stdout.readline(), 10)).decode()
        assert line, f"sim exited before printing {prefix!r}"
        if line.strip().startswith(prefix):
            return line.strip()


def test_cli_signals_force_disconnect_and_server_shutdown() -> None:
    """``kill -USR1`` drops every client of a running ``xcol sim`` at once and
    ``kill -USR2`` sends them Binance's serverShutdown, then disconnects them; the sim
    keeps serving (a client reconnects) and still stops cleanly on SIGTERM."""
    import signal

    async def body() -> None:
        proc, port = await _cli_sim("--exchange", "binance-usdm", "--synthetic", "--rate",
                                     "50", "--lines", "2", "--shutdown-grace", "0.2")
        try:
            path = "/public/stream?streams=btcusdt@depth@0ms"
            clients = []
            for p in (port, port + 1):
                _tr, c = await ws_connect(Client, f"ws://127.0.0.1:{p}{path}")
                assert isinstance(c, Client)
                clients.append(c)
            await until(lambda: all(len(c.frames) >= 2 for c in clients), 10)
            proc.send_signal(signal.SIGUSR1)
            assert await _cli_line(proc, "SIGUSR1") == "SIGUSR1: dropped 2 clients"
            for c in clients:
                await asyncio.wait_for(c.transport.wait_disconnected(), 5)
                assert not any(m.get("e") == "serverShutdown" for m in c.json())

            _tr, c = await ws_connect(Client, f"ws://127.0.0.1:{port}{path}")
            assert isinstance(c, Client)
            await until(lambda: len(c.frames) >= 2, 10)
            t0 = time.monotonic()
            proc.send_signal(signal.SIGUSR2)
            assert (await _cli_line(proc, "SIGUSR2")).startswith(
                "SIGUSR2: serverShutdown sent to 1 clients")
            await until(lambda: any(m.get("e") == "serverShutdown" for m in c.json()), 5)
            assert not c.transport.is_disconnected      # the grace period comes first
            await asyncio.wait_for(c.transport.wait_disconnected(), 5)
            assert time.monotonic() - t0 >= 0.15
        finally:
            proc.send_signal(signal.SIGTERM)
            out, _ = await asyncio.wait_for(proc.communicate(), 20)
        assert proc.returncode == 0
        # line 0: the SIGUSR1 drop and the serverShutdown's disconnect; line 1: SIGUSR1
        counts = re.findall(r"line (\d): frames .* disconnects (\d+)", out.decode())
        assert counts == [("0", "2"), ("1", "1")], out.decode()

    run(body(), 60)


def test_cli_server_shutdown_signal_is_ignored_where_there_is_none() -> None:
    """OKX has no serverShutdown event: SIGUSR2 says so and the sim keeps running."""
    import signal

    async def body() -> None:
        proc, _port = await _cli_sim("--exchange", "okx", "--synthetic")
        try:
            proc.send_signal(signal.SIGUSR2)
            assert "ignored" in await _cli_line(proc, "SIGUSR2")
            assert proc.returncode is None
        finally:
            proc.send_signal(signal.SIGTERM)
            await asyncio.wait_for(proc.communicate(), 20)
        assert proc.returncode == 0

    run(body(), 60)


@pytest.mark.corpus
def test_blast_of_the_mix_and_of_a_kind_subscribed_later() -> None:
    """A /public connection subscribed to depth and bookTicker gets both, in the capture's
    order, with the depth chain intact and bookTicker ids growing; a kind subscribed by a
    later SUBSCRIBE gets a blast of its own; /market gets the trades."""
    cap = need("usdm")
    n = 30_000

    async def body(sim: Simulator) -> None:
        status, _snap = await http_get(sim.ports[0], "/fapi/v1/depth?symbol=BTCUSDT")
        assert status == 200
        pub = await connect(sim, "/public/stream?streams=btcusdt@depth@0ms/btcusdt@bookTicker")
        mkt = await connect(sim, "/market/stream?streams=btcusdt@trade")
        late = await connect(sim, "/public/stream?streams=btcusdt@depth@0ms")
        await until(lambda: len(late.frames) > 10, 10)
        late.text({"method": "SUBSCRIBE", "params": ["btcusdt@bookTicker"], "id": 3})
        await until(lambda: any(b"@bookTicker" in b[:40] for _t, b in late.frames), 10)
        await until(lambda: len(pub.frames) + len(mkt.frames) >= n - 2, 20)
        kinds = [json.loads(b)["stream"].split("@")[1] for _t, b in pub.frames]
        assert set(kinds) == {"depth", "bookTicker"} and kinds.count("bookTicker") > n // 2
        assert {json.loads(b)["stream"] for _t, b in mkt.frames} == {"btcusdt@trade"}
        # the whole line (both connections) carries n frames, in the capture's shares
        assert len(pub.frames) + len(mkt.frames) in (n - 1, n, n + 1)
        prev_u = None
        bbo_u = []
        for _t, f in pub.frames:
            d = json.loads(f)["data"]
            if d["e"] == "depthUpdate":
                if prev_u is not None:
                    assert d["pu"] == prev_u
                prev_u = d["u"]
            else:
                bbo_u.append(d["u"])
        assert bbo_u == sorted(bbo_u) and bbo_u[-1] > bbo_u[0]
        tids = [json.loads(b)["data"]["t"] for _t, b in mkt.frames]
        assert all(a < b for a, b in zip(tids, tids[1:], strict=False))

    run(with_sim(SimConfig("binance-usdm", source=[str(cap.path)], blast=True,
                           blast_count=n), body))
