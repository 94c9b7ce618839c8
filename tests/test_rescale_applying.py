"""A Binance depth event whose levels the decoder read by their shape is rescaled by
the book while it applies it, in one pass (``Book.apply``, ``Book._fusable``), rather
than rescaled first and then applied.  These tests hold that path to the other one:
the same events through a decoder that reads no level by its shape (``shapes`` off)
take the two-pass path, and both books must be the same level for level."""

from __future__ import annotations

import random

import pytest
from capture import frames, need

from xcol._fast.decode import SHAPE_LEVELS
from xcol._fast.engine import Engine

MARKETS = {"usdm": "binance-usdm", "spot": "binance-spot", "coinm": "binance-coinm"}
SYMBOLS = {"usdm": "BTCUSDT", "spot": "BTCUSDT", "coinm": "BTCUSD_PERP"}


def _engine(market: str, symbol: str, scales: tuple[int, int], shapes: bool) -> Engine:
    e = Engine(market)
    e.add_instrument(symbol, *scales)
    e.decoder.shapes = shapes
    return e


#: the scales the exchange writes (no rescaling) for each capture
AS_WRITTEN = {"usdm": (2, 3), "spot": (8, 8), "coinm": (1, 0)}


@pytest.mark.corpus
@pytest.mark.parametrize("scales", ["live", "as-written", "wide"])
@pytest.mark.parametrize("name", ["usdm", "spot", "coinm"])
def test_a_capture_builds_the_same_book_either_way(name: str, scales: str) -> None:
    cap = need(name)
    symbol = SYMBOLS[name]
    ps, qs = {"live": (8, 8), "as-written": AS_WRITTEN[name], "wide": (10, 9)}[scales]
    one = _engine(MARKETS[name], symbol, (ps, qs), True)
    two = _engine(MARKETS[name], symbol, (ps, qs), False)
    depth = 0
    for f in frames(cap.path):
        if f.rest:
            assert one.feed_snapshot(symbol, f.body) == two.feed_snapshot(symbol, f.body)
            continue
        assert one.feed(f.body) == two.feed(f.body)
        if b"depthUpdate" in f.body[:120]:
            depth += 1
            if depth % 250 == 0:
                assert one.book(symbol).levels_raw() == two.book(symbol).levels_raw()
    a, b = one.book(symbol), two.book(symbol)
    assert a.levels_raw() == b.levels_raw() and a.last_seq == b.last_seq and a.synced
    assert a.gaps == b.gaps == 0
    # the one-pass path carried (nearly) every futures update, the other none.  Spot
    # writes 8 decimals (``61234.01000000``): 13 digits, more than a shape reads
    # (levels.h), so its levels take the byte loop and the two-pass path either way.
    assert b.stats()["rescaled_applying"] == 0
    # A build without AVX2 reads no level by its shape (SHAPE_LEVELS): two-pass always.
    share = a.stats()["rescaled_applying"] / a.stats()["updates"]
    assert share >= 0.95 if name != "spot" and SHAPE_LEVELS else share == 0


SNAP = (b'{"lastUpdateId":100,"E":1,"T":1,"bids":[["61800.20","1.000"],["61700.00","2.000"]],'
        b'"asks":[["61800.30","1.000"],["61900.00","2.000"]]}')


def _depth(first: int, last: int, prev: int, bids: list[tuple[str, str]],
           asks: list[tuple[str, str]]) -> bytes:
    def side(levels: list[tuple[str, str]]) -> bytes:
        return b"[" + b",".join(b'["%s","%s"]' % (p.encode(), q.encode())
                                for p, q in levels) + b"]"
    return (b'{"stream":"btcusdt@depth@0ms","data":{"e":"depthUpdate","E":1,"T":1,'
            b'"s":"BTCUSDT","U":%d,"u":%d,"pu":%d,"b":%s,"a":%s}}'
            % (first, last, prev, side(bids), side(asks)))


def _random_events(rnd: random.Random, n: int) -> list[bytes]:
    out = []
    last = 100
    for _ in range(n):
        def lv(base: int, sign: int) -> tuple[str, str]:
            px = base + sign * rnd.choice([rnd.randint(0, 40), rnd.randint(0, 30000)])
            qty = rnd.choice([0, 0, rnd.randint(1, 99999)])
            return f"{px // 10}.{px % 10}0", f"{qty // 1000}.{qty % 1000:03d}"
        bids = [lv(618002, -1) for _ in range(rnd.randint(0, 12))]
        asks = [lv(618003, 1) for _ in range(rnd.randint(0, 12))]
        out.append(_depth(last + 1, last + 3, last, bids, asks))
        last += 3
    return out


@pytest.mark.parametrize("seed", range(4))
def test_held_and_replayed_events_are_rescaled_once(seed: int) -> None:
    """Events that arrive ahead of the book are held (reorder window) and applied when
    the hole is filled: held ones are kept at the book's scale, so whether an event was
    rescaled while applied, or rescaled then held, the books end the same."""
    rnd = random.Random(seed)
    events = _random_events(rnd, 60)
    # swap neighbours here and there: the later one arrives first and is held
    shuffled = list(events)
    for i in range(1, len(shuffled) - 1, 3):
        if rnd.random() < 0.6:
            shuffled[i], shuffled[i + 1] = shuffled[i + 1], shuffled[i]
    books = []
    for order, shapes in ((events, False), (shuffled, True), (shuffled, False)):
        e = Engine("binance-usdm")
        e.add_instrument("BTCUSDT", 8, 8)
        e.decoder.shapes = shapes
        e.set_reorder_window(10**9)
        assert e.feed_snapshot("BTCUSDT", SNAP) == 7
        for t, f in enumerate(order, 1):
            e.feed_on(0, f, rx=t * 1_000_000, rx_wall=1)   # held ones drain on fill
        b = e.book("BTCUSDT")
        assert b.synced and b.gaps == 0 and b.last_seq == 100 + 3 * len(events)
        books.append(b.levels_raw())
    assert books[0] == books[1] == books[2]


def _mixed_events(rnd: random.Random, n: int) -> list[bytes]:
    """Depth events whose prices are written with 1, 2 or 3 decimals, some between the
    grid's steps (those live in the blocks), with a side's first level of any of them."""
    out = []
    last = 100
    for _ in range(n):
        def lv(base: int, sign: int) -> tuple[str, str]:
            # base and px in thousandths of a unit
            px = base + sign * 100 * rnd.choice([rnd.randint(0, 40), rnd.randint(0, 3000)])
            if rnd.random() < 0.15:
                px += rnd.choice([50, 10, 5])               # off the 0.1 grid
            dec = rnd.choice([1, 2, 3]) if px % 100 == 0 else (2 if px % 10 == 0 else 3)
            qty = rnd.choice([0, 0, rnd.randint(1, 99999)])
            text = f"{px // 1000}.{px % 1000:03d}"[: len(str(px // 1000)) + 1 + dec]
            return text, f"{qty // 1000}.{qty % 1000:03d}"
        bids = [lv(61_800_200, -1) for _ in range(rnd.randint(0, 12))]
        asks = [lv(61_800_300, 1) for _ in range(rnd.randint(0, 12))]
        out.append(_depth(last + 1, last + 3, last, bids, asks))
        last += 3
    return out


@pytest.mark.skipif(not SHAPE_LEVELS, reason="this build reads no level by its shape")
@pytest.mark.parametrize("grid", ["0.1", "0.05"])
@pytest.mark.parametrize("seed", range(3))
def test_mixed_decimals_and_off_grid_prices_build_the_same_book(grid: str, seed: int) -> None:
    """The ladder's integer grid (ladder_run_int) serves levels with the first level's
    decimals; levels with others, prices between the steps, and a grid that is not a
    whole number of the written prices' units (0.05 against prices with one decimal) all
    take the other paths.  The books must be the two-pass path's, level for level."""
    rnd = random.Random(seed)
    events = _mixed_events(rnd, 300)
    snap = SNAP if grid == "0.1" else SNAP.replace(b'"61700.00"', b'"61799.95"')
    books, fused = [], 0
    for shapes in (True, False):
        e = Engine("binance-usdm")
        e.add_instrument("BTCUSDT", 8, 8)
        e.decoder.shapes = shapes
        assert e.feed_snapshot("BTCUSDT", snap) == 7
        for f in events:
            assert e.feed(f) == 0
        b = e.book("BTCUSDT")
        assert b.synced and b.gaps == 0
        books.append(b.levels_raw())
        fused += b.stats()["rescaled_applying"]
    assert books[0] == books[1]
    assert fused > 50


@pytest.mark.parametrize("price", ["00000.00", "0.00", "000.0"])
def test_a_zero_price_read_by_its_shape_is_refused_and_the_book_untouched(price: str) -> None:
    e = Engine("binance-usdm")
    e.add_instrument("BTCUSDT", 8, 8)
    assert e.feed_snapshot("BTCUSDT", SNAP) == 7
    good = [("61800.10", "0.500"), ("61800.00", "0.700"), ("61799.90", "0.100")]
    assert e.feed(_depth(99, 101, 98, good, [])) == 0
    before = e.book("BTCUSDT").levels_raw()
    # the same shape as the levels before it, so it is read by its shape
    assert e.feed(_depth(102, 103, 101, good + [(price, "1.000")], [])) == 6
    assert e.book("BTCUSDT").levels_raw() == before
    assert e.counters()["book"]["bad_number"] == 1


def test_the_benchmarks_receive_buffer_feeds_the_same_frames() -> None:
    """``Engine.time_frames(received=True)`` (bench/hotpath.py) copies each frame into a
    receive buffer before timing it: the books and counters are those of feeding the
    frames themselves, and every frame gets a time."""
    import array

    rnd = random.Random(9)
    events = _random_events(rnd, 40)
    # a large frame in the middle makes the receive buffer grow
    events[20:21] = [_depth(161, 163, 160, [("61000.10", "1.000")] * 300, [])]
    engines = []
    for received in (False, True):
        e = Engine("binance-usdm")
        e.add_instrument("BTCUSDT", 8, 8)
        assert e.feed_snapshot("BTCUSDT", SNAP) == 7
        out = array.array("q", bytes(8 * len(events)))
        assert e.time_frames(events, out, False, received) == len(events)
        assert all(t > 0 for t in out)
        engines.append(e)
    a, b = (e.book("BTCUSDT") for e in engines)
    assert a.levels_raw() == b.levels_raw() and a.last_seq == b.last_seq
    assert engines[0].counters() == engines[1].counters()


def test_an_event_says_whether_its_levels_stayed_as_written() -> None:
    """After a book rescaled the levels as it applied them, the event's levels are the
    exchange's mantissas and say so; applied the two-pass way, they are at the book's
    scale."""
    seen = []
    for shapes in (True, False):
        e = Engine("binance-usdm")
        e.add_instrument("BTCUSDT", 8, 8)
        e.decoder.shapes = shapes
        assert e.feed_snapshot("BTCUSDT", SNAP) == 7
        lv = [("61800.10", "0.500"), ("61800.00", "0.700"), ("61799.90", "0.100")]
        assert e.feed(_depth(99, 101, 98, lv, [])) == 0
        assert e.feed(_depth(102, 104, 101, lv, [])) == 0
        ev = e.last_event()
        seen.append((ev["levels_as_written"], ev["bids"][0][:4]))
        # a second copy is a duplicate
        assert e.feed(_depth(102, 104, 101, lv, [])) == 2
    as_written, at_scale = (True, (6180010, 2, 500, 3)), (False, (6180010000000, 2, 50000000, 3))
    # (a build without AVX2 reads no level by its shape: two-pass either way)
    assert seen == [as_written if SHAPE_LEVELS else at_scale, at_scale]
