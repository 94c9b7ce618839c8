"""Memory of a deep book: 1,000 bid and 1,000 ask levels fit in 64 KiB.

``Book.memory_bytes()`` counts what the level storage holds (capacity, both
sides).  The measured number is printed (``pytest -s`` or the -rA summary).
"""

from __future__ import annotations

import random

from xcol._fast.engine import Engine

LIMIT = 64 * 1024
LEVELS = 1000


def levels_json(levels: list[tuple[str, str]]) -> bytes:
    return ("[" + ",".join(f'["{p}","{q}"]' for p, q in levels) + "]").encode()


def deep_snapshot() -> bytes:
    bids = [(f"{61800 - i * 0.1:.2f}", "1.000") for i in range(LEVELS)]
    asks = [(f"{61800.1 + i * 0.1:.2f}", "2.000") for i in range(LEVELS)]
    return b'{"lastUpdateId":100,"bids":%s,"asks":%s}' % (levels_json(bids), levels_json(asks))


def test_snapshot_of_1000_levels_per_side_fits_64k() -> None:
    e = Engine("binance-usdm")
    e.add_instrument("BTCUSDT", 2, 3)
    assert e.feed_snapshot("BTCUSDT", deep_snapshot()) == 7
    book = e.book("BTCUSDT")
    assert book.depth() == (LEVELS, LEVELS)
    used = book.memory_bytes()
    print(f"\nBook with {LEVELS}+{LEVELS} levels (snapshot): memory_bytes() = {used} "
          f"({used / 1024:.1f} KiB, {used / (2 * LEVELS):.1f} B/level)")
    assert 0 < used <= LIMIT


def test_book_grown_by_updates_to_1000_levels_per_side_fits_64k() -> None:
    # Levels arriving one by one in random order (worst case for growth and inserts).
    e = Engine("binance-usdm")
    e.add_instrument("BTCUSDT", 2, 3)
    assert e.feed_snapshot("BTCUSDT", b'{"lastUpdateId":100,"bids":[],"asks":[]}') == 7
    rnd = random.Random(7)
    bid_px = [61800 * 10 - i for i in range(LEVELS)]
    ask_px = [61800 * 10 + 1 + i for i in range(LEVELS)]
    rnd.shuffle(bid_px)
    rnd.shuffle(ask_px)
    u = 100
    for i in range(0, LEVELS, 10):
        bids = [(f"{p / 10:.2f}", "1.000") for p in bid_px[i:i + 10]]
        asks = [(f"{p / 10:.2f}", "2.000") for p in ask_px[i:i + 10]]
        frame = (b'{"stream":"btcusdt@depth@0ms","data":{"e":"depthUpdate","E":1,"T":1,'
                 b'"s":"BTCUSDT","U":%d,"u":%d,"pu":%d,"b":%s,"a":%s}}'
                 % (u + 1, u + 1, u, levels_json(bids), levels_json(asks)))
        assert e.feed(frame) == 0, e.last_error()
        u += 1
    book = e.book("BTCUSDT")
    assert book.depth() == (LEVELS, LEVELS)
    raw_bids, raw_asks = book.levels_raw()
    assert raw_bids == sorted(raw_bids, reverse=True) and raw_asks == sorted(raw_asks)
    used = book.memory_bytes()
    print(f"\nBook with {LEVELS}+{LEVELS} levels (grown by updates): memory_bytes() = {used} "
          f"({used / 1024:.1f} KiB, {used / (2 * LEVELS):.1f} B/level)")
    assert 0 < used <= LIMIT
