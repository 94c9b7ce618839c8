"""Every update that reaches the arbiter lands in exactly one bucket, per stream.

Crafted sequences are fed to an :class:`Engine` on one or two lines; after each step
``received == published + duplicates + dropped + pending`` must hold for every stream,
and the buckets must be exactly what the sequence implies: holes filled within the
reorder window, holes that expire, copies across lines, frames before the snapshot,
numbers that do not fit the scale, a full buffer, a resync, a checksum mismatch.
"""

from __future__ import annotations

from typing import Any

from xcol._fast.engine import Engine

MS = 1_000_000
CH_BOOK, CH_BBO, CH_TRADES = 1, 3, 4


def usdm(window_ms: int = 5) -> Engine:
    e = Engine("binance-usdm")
    e.add_instrument("BTCUSDT", 2, 3)
    e.set_reorder_window(window_ms * MS)
    return e


def depth(u: int, pu: int, price: str = "") -> bytes:
    """A USD-M depth update U=pu+1..u chaining on ``pu``."""
    px = price or f"{100 + u % 50}.00"
    return (b'{"stream":"btcusdt@depth@0ms","data":{"e":"depthUpdate","E":1,"T":1,'
            b'"s":"BTCUSDT","U":%d,"u":%d,"pu":%d,"b":[["%s","1.000"]],"a":[]}}'
            % (pu + 1, u, pu, px.encode()))


def snapshot(last: int) -> bytes:
    return (b'{"lastUpdateId":%d,"E":1,"T":1,"bids":[["99.00","1.000"]],'
            b'"asks":[["200.00","1.000"]]}' % last)


def bbo(u: int, bid: str = "100.00") -> bytes:
    return (b'{"stream":"btcusdt@bookTicker","data":{"e":"bookTicker","u":%d,'
            b'"s":"BTCUSDT","b":"%s","B":"1.000","a":"101.00","A":"1.000","T":1,"E":1}}'
            % (u, bid.encode()))


def trade(tid: int, price: str = "61800.10") -> bytes:
    return (b'{"stream":"btcusdt@trade","data":{"e":"trade","E":1,"T":1,"s":"BTCUSDT",'
            b'"t":%d,"p":"%s","q":"0.001","X":"MARKET","m":true}}' % (tid, price.encode()))


def okx_book(action: str, seq: int, prev: int, checksum: int = 0) -> bytes:
    """OKX books message; checksum 0 is not checked."""
    return (b'{"arg":{"channel":"books","instId":"BTC-USDT"},"action":"%s","data":[{'
            b'"asks":[["30243.5","1.2","0","4"]],"bids":[["%d.1","0.5","0","1"]],'
            b'"ts":"1652459225464","checksum":%d,"prevSeqId":%d,"seqId":%d}]}'
            % (action.encode(), 30000 + seq % 100, checksum, prev, seq))


def counts(e: Engine, sym: str, channel: int = CH_BOOK) -> dict[str, Any]:
    """The stream's counters, after checking that they balance."""
    c: dict[str, Any] = e.stream_counters(sym, channel)
    assert c["received"] == c["published"] + c["duplicates"] + c["dropped"] + c["pending"], c
    assert c["dropped"] == sum(c["dropped_by_reason"].values()), c
    return c


def buckets(c: dict[str, Any]) -> tuple[int, int, int, dict[str, int], int]:
    return (c["received"], c["published"], c["duplicates"], c["dropped_by_reason"],
            c["pending"])


def test_buffered_before_snapshot_copies_and_a_hole_filled_in_the_window() -> None:
    e = usdm()
    t = 0

    def feed(line: int, frame: bytes) -> int:
        nonlocal t
        t += MS
        return e.feed_on(line, frame, rx=t, rx_wall=1)

    # three updates before the snapshot are held; a copy of one is a duplicate
    assert [feed(0, depth(u, u - 10)) for u in (10, 20, 30)] == [1, 1, 1]
    assert feed(1, depth(20, 10)) == 2
    assert buckets(counts(e, "BTCUSDT")) == (4, 0, 1, {}, 3)
    # the snapshot (one update, published) replays them: u=10 is older than it (a
    # duplicate), 20 and 30 are applied into the snapshot record
    assert e.feed_snapshot("BTCUSDT", snapshot(15)) == 7
    c = counts(e, "BTCUSDT")
    assert buckets(c) == (5, 3, 2, {}, 0) and c["in_snapshot"] == 2
    # copies on two lines: the first is published, the second a duplicate
    assert feed(0, depth(40, 30)) == 0
    assert feed(1, depth(40, 30)) == 17          # recognised from its header
    # a hole on line 0 filled by line 1 within the window: held, then published
    assert feed(0, depth(60, 50)) == 8
    assert buckets(counts(e, "BTCUSDT")) == (8, 4, 3, {}, 1)
    assert feed(1, depth(50, 40)) == 0
    assert feed(0, depth(50, 40)) == 17
    assert feed(1, depth(60, 50)) == 17
    e.poll(t + 10 * MS)                          # nothing left to expire
    assert buckets(counts(e, "BTCUSDT")) == (11, 6, 5, {}, 0)
    # a depth number that does not fit the scale is received and dropped
    assert feed(0, depth(70, 60, "100.001")) == 6
    assert buckets(counts(e, "BTCUSDT")) == (12, 6, 5, {"bad_number": 1}, 0)
    data, n = e.take_output()
    assert data is not None
    # records: the snapshot and the book updates 40, 50 and 60 (held, then drained);
    # the updates replayed into the snapshot have none of their own
    c = counts(e, "BTCUSDT")
    assert n == 4 == c["published"] - c["in_snapshot"]
    assert e.arbiter_counters()["stream_gaps"] == 0

    # bookTicker: first copy published, the second line's copy and an older quote are
    # duplicates, a quote with an unfit number is dropped
    assert feed(0, bbo(100)) == 10
    assert feed(1, bbo(100)) == 17
    assert feed(0, bbo(99)) == 17
    assert feed(0, bbo(101, "100.001")) == 16
    assert buckets(counts(e, "BTCUSDT", CH_BBO)) == (4, 1, 2, {"bad_number": 1}, 0)
    # trades: the same on their own stream
    assert feed(0, trade(1)) == 11
    assert feed(1, trade(1)) == 17
    assert feed(0, trade(2, "61800.101")) == 16
    assert buckets(counts(e, "BTCUSDT", CH_TRADES)) == (3, 1, 1, {"bad_number": 1}, 0)

    tot = e.arbiter_counters()
    assert (tot["received"], tot["published"], tot["duplicates"], tot["dropped"],
            tot["pending"]) == (19, 8, 8, 3, 0)
    assert tot["dropped_by_reason"] == {"bad_number": 3}
    assert [(s, ch) for s, ch, _ in e.streams()] == [
        ("BTCUSDT", "depth"), ("BTCUSDT", "bbo"), ("BTCUSDT", "trades")]


def test_binance_hole_that_expires_waits_for_the_next_snapshot() -> None:
    """The audit's case: after a hole expires, the held updates are neither published
    nor lost until a snapshot decides; the next snapshot replays them."""
    e = usdm()
    assert e.feed_snapshot("BTCUSDT", snapshot(15)) == 7
    assert e.feed_on(0, depth(20, 10), rx=1 * MS, rx_wall=1) == 0
    assert e.feed_on(0, depth(40, 30), rx=2 * MS, rx_wall=1) == 8      # 30 never comes
    assert e.feed_on(0, depth(50, 40), rx=3 * MS, rx_wall=1) == 8
    assert e.poll(2 * MS + 5 * MS) == 1
    assert e.feed_on(0, depth(60, 50), rx=8 * MS, rx_wall=1) == 1      # buffered
    assert buckets(counts(e, "BTCUSDT")) == (5, 2, 0, {}, 3)
    assert e.arbiter_counters()["stream_gaps"] == 1
    # a snapshot newer than 40: 40 is in it, 50 and 60 are replayed into it
    assert e.feed_snapshot("BTCUSDT", snapshot(45)) == 7
    c = counts(e, "BTCUSDT")
    assert buckets(c) == (6, 5, 1, {}, 0) and c["in_snapshot"] == 2
    # a snapshot older than the buffer is stale: dropped, the buffer waits for the next
    assert e.feed_on(0, depth(80, 70), rx=9 * MS, rx_wall=1) == 8
    assert e.poll(20 * MS) == 1
    assert e.feed_snapshot("BTCUSDT", snapshot(65)) == 3
    assert buckets(counts(e, "BTCUSDT")) == (8, 5, 1, {"stale_snapshot": 1}, 1)
    # shutdown: what is still held is dropped with its reason, pending ends at 0
    assert e.discard_pending() == 1
    assert buckets(counts(e, "BTCUSDT")) == (8, 5, 1, {"stale_snapshot": 1,
                                                      "shutdown": 1}, 0)


def test_a_full_buffer_drops_the_oldest_half() -> None:
    e = usdm()
    e.book("BTCUSDT").max_pending = 4
    for u in range(10, 70, 10):
        assert e.feed_on(0, depth(u, u - 10), rx=u * MS, rx_wall=1) == 1
    assert buckets(counts(e, "BTCUSDT")) == (6, 0, 0, {"overflow": 2}, 4)


def test_a_snapshot_with_a_hole_in_its_buffer_keeps_the_rest_held() -> None:
    """Updates buffered before the snapshot with a hole among them: those before the hole
    go into the snapshot, those after it are held for the window like live ones."""
    e = usdm()
    for i, u in enumerate((20, 30, 50, 60)):                  # 40 is missing
        e.feed_on(0, depth(u, u - 10), rx=(i + 1) * MS, rx_wall=1)
    assert e.feed_snapshot("BTCUSDT", snapshot(15)) == 7
    c = counts(e, "BTCUSDT")
    assert buckets(c) == (5, 3, 0, {}, 2) and c["in_snapshot"] == 2
    assert e.feed_on(1, depth(40, 30), rx=6 * MS, rx_wall=1) == 0  # filled: 50, 60 drain
    assert buckets(counts(e, "BTCUSDT")) == (6, 6, 0, {}, 0)
    assert e.book("BTCUSDT").last_seq == 60


def test_okx_expiry_resync_checksum_and_gap() -> None:
    e = Engine("okx")
    e.add_instrument("BTC-USDT", 1, 4)
    e.set_reorder_window(5 * MS)
    assert e.feed_on(0, okx_book("update", 99, 98), rx=1 * MS, rx_wall=1) == 5  # unsynced
    assert e.feed_on(0, okx_book("snapshot", 100, -1), rx=2 * MS, rx_wall=1) == 7
    assert e.feed_on(0, okx_book("update", 101, 100), rx=3 * MS, rx_wall=1) == 0
    assert e.feed_on(1, okx_book("update", 101, 100), rx=4 * MS, rx_wall=1) == 2
    assert e.feed_on(0, okx_book("update", 103, 102), rx=5 * MS, rx_wall=1) == 8
    assert e.feed_on(0, okx_book("update", 104, 103), rx=6 * MS, rx_wall=1) == 8
    assert buckets(counts(e, "BTC-USDT")) == (6, 2, 1, {"unsynced": 1}, 2)
    # no line filled 102: both held updates expire, later ones wait for the snapshot
    assert e.poll(5 * MS + 5 * MS) == 1
    assert e.feed_on(0, okx_book("update", 105, 104), rx=11 * MS, rx_wall=1) == 5
    assert buckets(counts(e, "BTC-USDT")) == (7, 2, 1, {"unsynced": 2, "expired": 2}, 0)
    # resubscribed: a snapshot replaces the chain a held update belonged to
    assert e.feed_on(0, okx_book("snapshot", 200, -1), rx=12 * MS, rx_wall=1) == 7
    assert e.feed_on(0, okx_book("update", 203, 202), rx=13 * MS, rx_wall=1) == 8
    assert e.feed_on(0, okx_book("snapshot", 300, -1), rx=14 * MS, rx_wall=1) == 7
    assert buckets(counts(e, "BTC-USDT")) == (
        10, 4, 1, {"unsynced": 2, "expired": 2, "resync": 1}, 0)
    # a checksum that disagrees: applied, not published
    assert e.feed_on(0, okx_book("update", 301, 300, checksum=12345), rx=15 * MS,
                     rx_wall=1) == 4
    # without a reorder window a hole is a gap at once: the update is dropped
    assert e.feed_on(0, okx_book("snapshot", 400, -1), rx=16 * MS, rx_wall=1) == 7
    e.set_reorder_window(0)
    assert e.feed_on(0, okx_book("update", 402, 401), rx=17 * MS, rx_wall=1) == 3
    assert buckets(counts(e, "BTC-USDT")) == (
        13, 5, 1, {"unsynced": 2, "expired": 2, "resync": 1, "checksum": 1, "gap": 1}, 0)
    assert e.discard_pending() == 0
