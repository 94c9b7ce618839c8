"""Latency arbitration in the engine, on real USD-M traffic merged from two lines.

Each test builds two copies of a real capture's stream ("lines"), delays,
drops or repeats frames on them, merges them by arrival time and feeds the
merged sequence to ``Engine.feed_on``.  The book must end exactly where a
single clean replay ends, every update must be published once, and the per
line counters must say who won.  The socket-level version of these checks
runs against the simulator in the integration tests.
"""

from __future__ import annotations

import json
import random

import pytest
from capture import Frame, frames, need
from hypothesis import given, settings
from hypothesis import strategies as st

from xcol._fast.engine import TRADE_WINDOW, Engine

MS = 1_000_000


def usdm_stream() -> tuple[bytes, list[bytes]]:
    """The REST snapshot and the depth + bookTicker + trade frames after it."""
    cap = need("usdm")
    items: list[Frame] = frames(cap.path)
    snap_at = next(i for i, f in enumerate(items) if f.rest)
    body = items[snap_at].body
    last_id = json.loads(body)["lastUpdateId"]
    out = []
    for i, f in enumerate(items):
        if f.rest:
            continue
        if b"depthUpdate" in f.body[:80]:
            # depth from the bridging event on (it may have arrived before the snapshot)
            if json.loads(f.body)["data"]["u"] < last_id:
                continue
        elif i < snap_at:
            continue
        out.append(f.body)
    return body, out[:20000]


def engine(snapshot: bytes, window_ms: float = 0.0) -> Engine:
    e = Engine("binance-usdm")
    e.add_instrument("BTCUSDT", 2, 3)
    e.set_reorder_window(int(window_ms * MS))
    assert e.feed_snapshot("BTCUSDT", snapshot) == 7
    return e


def merged(lines: list[list[tuple[int, bytes]]]) -> list[tuple[int, int, bytes]]:
    """(arrival ns, line, frame) of every copy, in arrival order (ties: lower line)."""
    allf = [(t, ln, f) for ln, seq in enumerate(lines) for t, f in seq]
    allf.sort(key=lambda x: (x[0], x[1]))
    return allf


def reference(snapshot: bytes, stream: list[bytes]) -> Engine:
    e = engine(snapshot)
    for i, f in enumerate(stream):
        e.feed_on(0, f, rx=(i + 1) * MS, rx_wall=1)
    return e


def top(e: Engine) -> tuple[int, int, int, int]:
    return e.book("BTCUSDT").best_raw()  # type: ignore[no-any-return]


@pytest.mark.corpus
def test_faster_line_wins_and_lag_is_the_delay() -> None:
    snap, stream = usdm_stream()
    ref = reference(snap, stream)
    e = engine(snap)
    fast = [((i + 1) * MS, f) for i, f in enumerate(stream)]
    slow = [((i + 1) * MS + 3 * MS, f) for i, f in enumerate(stream)]
    for t, ln, f in merged([fast, slow]):
        e.feed_on(ln, f, rx=t, rx_wall=1)
    s0, s1 = e.line_stats(0), e.line_stats(1)
    assert s0["wins"] == s0["updates"] and s1["wins"] == 0
    assert s0["win_rate"] == 1.0
    assert s1["duplicates"] == s1["updates"]
    assert s1["win_rate"] == 0.0
    lag = e.lag_histogram(1)
    # every later copy of a book/BBO/trade update sits exactly 3 ms behind
    assert abs(lag.value_at_percentile(50) - 3 * MS) <= 3 * MS // 1000
    assert e.arbiter_counters()["published"] == ref.arbiter_counters()["published"]
    assert top(e) == top(ref)
    assert e.book("BTCUSDT").gaps == 0
    # the slow line's depth and bookTicker copies were recognised from their headers,
    # not decoded (all but the first few of each)
    n_depth = sum(1 for f in stream if b"depthUpdate" in f[:80])
    n_bbo = sum(1 for f in stream if b"@bookTicker" in f[:40])
    assert n_bbo > 1000
    assert n_depth + n_bbo - 5 <= e.early_duplicates <= n_depth + n_bbo
    assert s1["gaps"] == 0


@pytest.mark.corpus
def test_early_duplicates_keep_per_line_gap_counting() -> None:
    """A line that misses an update and then sends copies the book already has still
    has its own gap counted, from the header of the next copy."""
    snap, stream = usdm_stream()
    depth = [f for f in stream if b"depthUpdate" in f[:80]][:400]
    e = engine(snap)
    fast = [((i + 1) * MS, f) for i, f in enumerate(depth)]
    slow = [((i + 1) * MS + 3 * MS, f) for i, f in enumerate(depth) if i != 200]
    for t, ln, f in merged([fast, slow]):
        e.feed_on(ln, f, rx=t, rx_wall=1)
    assert e.line_stats(1)["gaps"] == 1 and e.line_stats(0)["gaps"] == 0
    assert e.early_duplicates >= len(slow) - 5
    assert e.arbiter_counters()["stream_gaps"] == 0


@pytest.mark.corpus
@pytest.mark.parametrize("window_ms", [5.0])
def test_one_line_dropping_frames_leaves_no_post_merge_gap(window_ms: float) -> None:
    snap, stream = usdm_stream()
    ref = reference(snap, stream)
    rnd = random.Random(7)
    e = engine(snap, window_ms)
    a = [((i + 1) * MS, f) for i, f in enumerate(stream) if rnd.random() > 0.01]
    b = [((i + 1) * MS + 200_000, f) for i, f in enumerate(stream)]
    for t, ln, f in merged([a, b]):
        e.feed_on(ln, f, rx=t, rx_wall=1)
        e.poll(t)
    c = e.arbiter_counters()
    book = e.book("BTCUSDT")
    assert book.gaps == 0 and c["stream_gaps"] == 0
    assert e.line_stats(0)["gaps"] > 0  # line 0's own sequence had holes
    assert top(e) == top(ref) and book.last_seq == ref.book("BTCUSDT").last_seq
    assert c["published"] == ref.arbiter_counters()["published"]
    # measured: every copy received is published (the REST snapshot too) or a duplicate
    assert c["received"] == c["published"] + c["duplicates"] + c["dropped"] + c["pending"]
    assert c["dropped"] == c["pending"] == 0


@pytest.mark.corpus
def test_lines_that_drop_different_frames_fill_each_other_out_of_order() -> None:
    snap, stream = usdm_stream()
    ref = reference(snap, stream)
    rnd = random.Random(11)
    e = engine(snap, 10.0)
    # line 1 is faster but drops 5%; line 0 drops a different 5% (every update
    # reaches at least one line)
    lines: list[list[tuple[int, bytes]]] = [[], []]
    for i, f in enumerate(stream):
        t = (i + 1) * MS
        r = rnd.random()
        if not 0.05 <= r < 0.10:
            lines[0].append((t + 2_500_000, f))
        if r >= 0.05:
            lines[1].append((t, f))
    for t, ln, f in merged(lines):
        e.feed_on(ln, f, rx=t, rx_wall=1)
        e.poll(t)
    book = e.book("BTCUSDT")
    assert book.gaps == 0
    assert book.held > 0 and book.held_filled > 0
    assert top(e) == top(ref) and book.last_seq == ref.book("BTCUSDT").last_seq
    s0, s1 = e.line_stats(0), e.line_stats(1)
    assert s1["wins"] > s0["wins"] > 0


@pytest.mark.corpus
def test_an_update_every_line_lost_is_a_gap_after_the_window() -> None:
    snap, stream = usdm_stream()
    e = engine(snap, 5.0)
    depth_at = [i for i, f in enumerate(stream) if b"depthUpdate" in f[:80]]
    lost = depth_at[len(depth_at) // 2]
    lines = [[((i + 1) * MS + d, f) for i, f in enumerate(stream) if i != lost]
             for d in (0, 1000)]
    lost_gap_at = None
    for t, ln, f in merged(lines):
        e.feed_on(ln, f, rx=t, rx_wall=1)
        if e.poll(t) and lost_gap_at is None:
            lost_gap_at = t
    book = e.book("BTCUSDT")
    assert book.gaps == 1 and book.resync_requested
    assert lost_gap_at is not None and lost_gap_at >= (lost + 1) * MS + 5 * MS
    assert e.arbiter_counters()["stream_gaps"] == 1


@pytest.mark.corpus
def test_output_records_are_json_and_published_once() -> None:
    snap, stream = usdm_stream()
    e = engine(snap)
    for i, f in enumerate(stream[:3000]):
        e.feed_on(0, f, rx=(i + 1) * MS, rx_wall=1_723_161_256_000_000_000)
        e.feed_on(1, f, rx=(i + 1) * MS + 1000, rx_wall=1_723_161_256_000_000_000)
    data, n = e.take_output()
    recs = [json.loads(line) for line in data.splitlines()]
    assert len(recs) == n == e.arbiter_counters()["published"]
    kinds = {r["type"] for r in recs}
    assert kinds == {"snapshot", "book", "bbo", "trade"}
    assert all(r["line"] in (0, -1) and r["exchange"] == "binance-usdm" for r in recs)
    seqs = [(r["type"], r["seq"]) for r in recs if r["type"] != "trade"]
    assert len(seqs) == len(set(seqs))
    # a book record carries the exchange's own strings
    first_book = next(r for r in recs if r["type"] == "book")
    src = next(json.loads(f)["data"] for f in stream if b"depthUpdate" in f[:80])
    assert first_book["seq"] == src["u"] and first_book["bids"] == src["b"]
    assert e.take_output() == (None, 0)


def _records(e: Engine) -> list[dict[str, object]]:
    data, n = e.take_output()
    recs = [json.loads(x) for x in data.splitlines()] if data else []
    assert len(recs) == n
    return recs


def _apply(side: dict[str, str], levels: list[list[str]]) -> None:
    from decimal import Decimal
    for px, qty in levels:
        if Decimal(qty) == 0:
            side.pop(px, None)
        else:
            side[px] = qty


@pytest.mark.corpus
def test_top_records_match_a_book_rebuilt_from_the_deltas() -> None:
    """Every "top" record equals the best N levels of a plain-dict book rebuilt from the
    published snapshot and deltas, and the interval limits how often they come."""
    from decimal import Decimal
    snap, stream = usdm_stream()
    e = Engine("binance-usdm")
    e.add_instrument("BTCUSDT", 2, 3)
    e.set_top(5, 0)
    assert e.feed_snapshot("BTCUSDT", snap) == 7
    bids: dict[str, str] = {}
    asks: dict[str, str] = {}
    tops = deltas = 0
    last_type = ""
    for i, f in enumerate(stream[:4000]):
        e.feed_on(0, f, rx=(i + 1) * MS, rx_wall=1)
        for r in _records(e):
            t = r["type"]
            if t == "snapshot":
                bids, asks = {}, {}
                _apply(bids, r["bids"])  # type: ignore[arg-type]
                _apply(asks, r["asks"])  # type: ignore[arg-type]
            elif t == "book":
                _apply(bids, r["bids"])  # type: ignore[arg-type]
                _apply(asks, r["asks"])  # type: ignore[arg-type]
                deltas += 1
            elif t == "top":
                assert last_type == "book", "a top record follows the update it shows"
                want_b = sorted(bids.items(), key=lambda kv: -Decimal(kv[0]))[:5]
                want_a = sorted(asks.items(), key=lambda kv: Decimal(kv[0]))[:5]
                assert [tuple(x) for x in r["bids"]] == want_b  # type: ignore[union-attr]
                assert [tuple(x) for x in r["asks"]] == want_a  # type: ignore[union-attr]
                tops += 1
            last_type = str(t)
    assert deltas > 200 and tops == deltas
    # At most one top record per 5 ms of receive time (frames arrive 1 ms apart).
    e.set_top(3, 5 * MS)
    e.take_output()
    seen: list[int] = []
    for i, f in enumerate(stream[4000:6000]):
        e.feed_on(0, f, rx=(4001 + i) * MS, rx_wall=1)
        seen += [i for r in _records(e) if r["type"] == "top"]
    assert seen and all(b - a >= 5 for a, b in zip(seen, seen[1:], strict=False))
    with pytest.raises(ValueError, match="top levels"):
        e.set_top(-1)


@pytest.mark.parametrize("fast", [True, False])
@pytest.mark.corpus
def test_bbo_and_trade_records_repeat_the_source(fast: bool) -> None:
    """Every bookTicker and trade of the capture comes out as a record whose numbers and
    ids are the source message's, field by field (the record writers against the JSON)."""
    snap, stream = usdm_stream()
    e = engine(snap)
    e.decoder.fast = fast
    wall = 1_723_161_256_123_456_789
    src: dict[tuple[str, int], dict[str, object]] = {}
    for i, f in enumerate(stream[:20_000]):
        d = json.loads(f)["data"]
        if d["e"] == "bookTicker":
            src[("bbo", d["u"])] = d
        elif d["e"] == "trade":
            src[("trade", d["t"])] = d
        e.feed_on(0, f, rx=(i + 1) * MS, rx_wall=wall + i)
    data, _n = e.take_output()
    checked = {"bbo": 0, "trade": 0}
    for line in data.splitlines():
        r = json.loads(line)
        if r["type"] == "bbo":
            d = src.pop(("bbo", r["seq"]))
            assert (r["bid"], r["bid_qty"], r["ask"], r["ask_qty"]) == (
                d["b"], d["B"], d["a"], d["A"])
            assert r["ts_exchange"] == d["E"] and r["symbol"] == d["s"]
        elif r["type"] == "trade":
            d = src.pop(("trade", r["id"]))
            assert (r["price"], r["qty"]) == (d["p"], d["q"])
            assert r["side"] == ("sell" if d["m"] else "buy")
            assert r["seq"] == d["t"] and r["ts_exchange"] == d["E"]
        else:
            continue
        assert wall <= r["ts_recv"] < wall + 20_000 and r["line"] == 0
        checked[r["type"]] += 1
    # every one was published (a bookTicker older than the latest would not be)
    assert not src and checked["bbo"] > 10_000 and checked["trade"] > 2_000, checked


@pytest.mark.parametrize("variant", [
    b"",                                              # as Binance writes it
    b'"b":"061800.20"',                               # leading zeros: not plain texts
    b'"B":"00.507"',
    b'"a":"0061800.30"',
    b'"A":"0002.510"',
])
def test_bbo_record_texts_are_the_general_writers(variant: bytes) -> None:
    """A bookTicker read by the literal matcher has its record's numbers copied from the
    frame; they must be exactly what the number writer makes of the values (the
    simdjson path's record), also when a text is not plain (a leading zero)."""
    frame = (b'{"stream":"btcusdt@bookTicker","data":{"e":"bookTicker","u":5123107839020,'
             b'"s":"BTCUSDT","b":"61800.20","B":"2.507","a":"61800.30","A":"2.510",'
             b'"T":1723161256313,"E":1723161256314}}')
    if variant:
        key = variant.split(b":")[0] + b":"
        start = frame.index(key)
        frame = frame[:start] + variant + frame[frame.index(b",", start):]
    out = []
    for fast in (True, False):
        e = Engine("binance-usdm")
        e.add_instrument("BTCUSDT", 2, 3)
        e.decoder.fast = fast
        assert e.feed_on(0, frame, rx=MS, rx_wall=1) >= 0
        assert e.decoder.literal_frames == (1 if fast else 0)
        data, n = e.take_output()
        assert n == 1
        out.append(json.loads(data))
    assert out[0] == out[1]

    def plain(text: str) -> str:
        whole, dot, frac = text.partition(".")
        return (whole.lstrip("0") or "0") + dot + frac

    src = json.loads(frame)["data"]
    assert (out[0]["bid"], out[0]["bid_qty"], out[0]["ask"], out[0]["ask_qty"]) == tuple(
        plain(src[k]) for k in "bBaA")


@pytest.mark.parametrize("fast, spaced", [(True, False), (False, False), (True, True)],
                         ids=["scanner", "simdjson", "spaced"])
@pytest.mark.corpus
def test_book_records_carry_the_exchange_text(fast: bool, spaced: bool) -> None:
    """Book records repeat each level's price and size exactly as the frame wrote them,
    whether copied from the frame (fast scanner, simdjson; a compact level in one piece,
    a level with blanks, ``spaced``, text by text) or re-formatted from the mantissa
    after being held for reordering."""
    snap, stream = usdm_stream()
    depth = [f for f in stream if b"depthUpdate" in f[:80]][:1500]
    if spaced:
        depth = [json.dumps(json.loads(f)).encode() for f in depth]
    e = Engine("binance-usdm")
    e.add_instrument("BTCUSDT", 2, 3)
    e.decoder.fast = fast
    e.set_reorder_window(50 * MS)
    assert e.feed_snapshot("BTCUSDT", snap) == 7
    e.take_output()
    want = {}
    for f in depth:
        d = json.loads(f)["data"]
        want[d["u"]] = (d["b"], d["a"])
    # swap every 10th pair of frames so the later one is held, then drained
    order = list(depth)
    for i in range(5, len(order) - 1, 10):
        order[i], order[i + 1] = order[i + 1], order[i]
    got = 0
    for i, f in enumerate(order):
        e.feed_on(0, f, rx=(i + 1) * MS, rx_wall=1)
        for r in _records(e):
            if r["type"] == "book" and r["seq"] in want:
                b, a = want[r["seq"]]
                assert r["bids"] == b and r["asks"] == a, r["seq"]
                got += 1
    assert e.arbiter_counters()["stream_gaps"] == 0
    assert got >= len(depth) - 2


def _trade(tid: int) -> bytes:
    return (b'{"stream":"btcusdt@trade","data":{"e":"trade","E":1,"T":1,"s":"BTCUSDT",'
            b'"t":%d,"p":"61800.10","q":"0.001","X":"MARKET","m":true}}' % tid)


@given(ids=st.lists(st.integers(1, 3 * TRADE_WINDOW), min_size=1, max_size=300),
       lines=st.lists(st.integers(0, 2), min_size=300, max_size=300),
       near=st.lists(st.integers(-70, 70), min_size=300, max_size=300))
@settings(max_examples=150, deadline=None)
def test_trades_published_once_in_any_arrival_order(ids: list[int], lines: list[int],
                                                    near: list[int]) -> None:
    """Trade copies arriving in any order on several lines: each id is published once,
    the first time it arrives, unless it is ``TRADE_WINDOW`` or more ids behind the newest
    (then it is taken for a copy), exactly as a plain-Python model says.  Every other
    trade is drawn close to the one before, so the ring's word boundaries and small
    steps are exercised as much as its long jumps."""
    e = Engine("binance-usdm")
    e.add_instrument("BTCUSDT", 2, 3)
    seen: set[int] = set()
    newest = -1
    want: list[int] = []
    w = TRADE_WINDOW
    for k, tid in enumerate(ids):
        if k % 2 and k > 0:
            tid = max(1, ids[k - 1] + near[k])
        if newest < 0 or tid - newest >= w:
            seen, newest, fresh = {tid}, tid, True
        elif tid > newest:
            seen.add(tid)
            newest, fresh = tid, True
        elif newest - tid >= w or tid in seen:
            fresh = False
        else:
            seen.add(tid)
            fresh = True
        if fresh:
            want.append(tid)
        e.feed_on(lines[k], _trade(tid), rx=(k + 1) * MS, rx_wall=1)
    got = [r["id"] for r in _records(e) if r["type"] == "trade"]
    assert got == want
    c = e.arbiter_counters()
    assert c["received"] == c["published"] + c["duplicates"] == len(ids)


def test_trade_ids_at_the_top_of_int64() -> None:
    """Trade ids next to the int64 maximum advance the dedup ring like any others (a
    running id there once overflowed and the engine spun forever)."""
    e = Engine("binance-usdm")
    e.add_instrument("BTCUSDT", 2, 3)
    top = 2**63 - 1
    ids = [top - 200, top - 70, top - 3, top - 70, top]
    for k, tid in enumerate(ids):
        e.feed_on(k % 2, _trade(tid), rx=(k + 1) * MS, rx_wall=1)
    assert [r["id"] for r in _records(e) if r["type"] == "trade"] == [
        top - 200, top - 70, top - 3, top]


def test_a_lagging_line_fills_in_trades_a_reconnected_line_skipped() -> None:
    """The fast line 0 drops out after trade 1000 and comes back at trade 1500; line 1,
    300 trades behind, still has 1001-1499 to deliver.  Every one of them is published
    (with a 256-id window, 1001-1343 were taken for copies and lost)."""
    e = Engine("binance-usdm")
    e.add_instrument("BTCUSDT", 2, 3)
    k = 0

    def feed(line: int, tid: int) -> None:
        nonlocal k
        k += 1
        e.feed_on(line, _trade(tid), rx=k * MS, rx_wall=1)

    for tid in range(1, 1001):          # line 0 leads by 300 trades
        feed(0, tid)
        if tid > 300:
            feed(1, tid - 300)
    for tid in range(1500, 1600):       # line 0 back, line 1 still catching up
        feed(0, tid)
        feed(1, tid - 800)
    for tid in range(800, 1600):
        feed(1, tid)
    got = [r["id"] for r in _records(e) if r["type"] == "trade"]
    assert len(got) == len(set(got)), "a trade was published twice"
    assert set(got) == set(range(1, 1600)), sorted(set(range(1, 1600)) - set(got))[:5]


@settings(max_examples=3000, deadline=None)
@given(st.one_of(st.integers(-(2**63), 2**63 - 1),
                 st.integers(-(10**9), 10**9),
                 st.sampled_from([0, 9, 10, 99, 100, 10**8 - 1, 10**8, 10**8 + 1, 10**16 - 1,
                                  10**16, 10**16 + 7, -(2**63), 2**63 - 1, -1, -(10**8)])))
def test_record_integers_match_str(v: int) -> None:
    """The records' integer writer (8-digit pieces) writes what ``str`` writes."""
    from xcol._fast.engine import _format_int

    assert _format_int(v) == str(v).encode()


@settings(max_examples=1500, deadline=None)
@given(st.lists(st.one_of(st.integers(-(2**63), 2**63 - 1),
                          st.integers(10**8 - 3, 10**8 + 3),
                          st.integers(1_723_161_256_000, 1_723_161_256_999),
                          st.integers(1_795_326_383_149_246_000, 1_795_326_383_349_246_000)),
                min_size=1, max_size=40))
def test_record_times_and_ids_match_str_one_after_another(values: list[int]) -> None:
    """The head writer keeps a number's digits above its last eight from one record to
    the next: each text must still be ``str`` of its own value, whatever came before."""
    from xcol._fast.engine import _format_ints_hi

    assert _format_ints_hi(values) == [str(v).encode() for v in values]


def _fixed_text(v: int, scale: int, dec: int) -> bytes:
    """Plain-Python reference: ``v`` / 10**scale with exactly ``dec`` decimals, the
    decimals past the scale written as zeros (cut, never rounded)."""
    sign = "-" if v < 0 else ""
    digits = str(abs(v)).rjust(scale + 1, "0")
    whole, frac = digits[: len(digits) - scale], digits[len(digits) - scale:]
    frac = (frac + "0" * dec)[:dec]
    return (sign + whole + ("." + frac if dec else "")).encode()


@settings(max_examples=4000, deadline=None)
@given(st.one_of(st.integers(-(2**63), 2**63 - 1), st.integers(-(10**9), 10**9),
                 st.sampled_from([0, 1, 9, 10, 99, 100, 10**8 - 1, 10**8, 10**16 - 1, 10**16,
                                  10**18, -(2**63), 2**63 - 1])),
       st.integers(0, 18), st.integers(0, 24))
def test_record_numbers_match_a_plain_formatting(v: int, scale: int, dec: int) -> None:
    """The records' number writer (eight digits at a time; scales up to 18, up to 24
    decimals) writes what a plain-Python formatting writes."""
    from xcol._fast.engine import _format_num

    assert _format_num(v, scale, dec) == _fixed_text(v, scale, dec)


# ------------------------------------------------------- Deribit quote (no sequence)

#: (timestamp ms, bid, bid amount, ask, ask amount) as Deribit writes them; quotes 0-2
#: share a millisecond and quote 2 repeats quote 0 (the top went away and came back)
QUOTES = [(1000, b"100.5", b"10.0", b"101", b"20"),
          (1000, b"100.5", b"10.0", b"101.5", b"5"),
          (1000, b"100.5", b"10.0", b"101", b"20"),
          (1001, b"null", b"null", b"101", b"20"),
          (1002, b"100", b"1", b"3996.61", b"50.0"),
          (1002, b"3914.97", b"40.0", b"3996.61", b"50.0")]


def _quote(i: int) -> bytes:
    ts, b, bq, a, aq = QUOTES[i]
    return (b'{"jsonrpc":"2.0","method":"subscription","params":{"channel":'
            b'"quote.BTC-PERPETUAL","data":{"timestamp":%d,"instrument_name":"BTC-PERPETUAL",'
            b'"best_bid_price":%s,"best_bid_amount":%s,"best_ask_price":%s,'
            b'"best_ask_amount":%s}}}' % (ts, b, bq, a, aq))


@pytest.mark.parametrize("arrivals, want", [
    # both lines complete, line 1 always 3 ms later
    ([(10 * i + d, ln, i) for i in range(6) for ln, d in ((0, 0), (1, 3))],
     [(i, 0) for i in range(6)]),
    # line 0 leads the first three, line 1 the rest; line 1 never got quote 1
    ([(10 * i + (0 if i < 3 else 5), 0, i) for i in range(6)]
     + [(10 * i + (3 if i < 3 else 0), 1, i) for i in range(6) if i != 1],
     [(0, 0), (1, 0), (2, 0), (3, 1), (4, 1), (5, 1)]),
    # the fast line 0 never got quote 1: quote 2 (equal to quote 0) changes nothing there,
    # and line 1 then brings quotes 1 and 2 in order
    ([(0, 0, 0), (5, 0, 2)] + [(10 * i, 0, i) for i in range(3, 6)]
     + [(10 * i + 3, 1, i) for i in range(3)],
     [(0, 0), (1, 1), (2, 1), (3, 0), (4, 0), (5, 0)]),
], ids=["line-1-slower", "lead-changes-and-a-hole", "fast-line-hole"])
def test_deribit_quotes_published_once_in_order(arrivals: list[tuple[int, int, int]],
                                                 want: list[tuple[int, int]]) -> None:
    """Deribit quotes carry no sequence: two lines delivering the same quotes publish each
    once, in the exchange's order, from the line that brought it first; the record's
    ``seq`` is ``timestamp * 1000 +`` the quote's position within its millisecond."""
    e = Engine("deribit")
    e.add_instrument("BTC-PERPETUAL")
    for t, ln, i in sorted(arrivals):
        assert e.feed_on(ln, _quote(i), rx=(t + 1) * MS, rx_wall=1) in (10, 17), e.last_error()
    recs = [r for r in _records(e) if r["type"] == "bbo"]
    pos = {0: 0, 1: 1, 2: 2, 3: 0, 4: 0, 5: 1}
    assert [(r["seq"], r["line"]) for r in recs] == [
        (QUOTES[i][0] * 1000 + pos[i], ln) for i, ln in want]
    for r, (i, _ln) in zip(recs, want, strict=True):
        ts, b, bq, a, aq = QUOTES[i]
        empty = b == b"null"
        assert r["ts_exchange"] == ts and r["symbol"] == "BTC-PERPETUAL"
        assert (r["bid"], r["bid_qty"], r["ask"], r["ask_qty"]) == (
            "0" if empty else b.decode(), "0" if empty else bq.decode(), a.decode(),
            aq.decode())
    c = e.arbiter_counters()
    assert c["received"] == len(arrivals)
    assert c["published"] == len(want) and c["duplicates"] == len(arrivals) - len(want)


def _okx_top(channel: bytes, seq: int, ts: int, bid: bytes, ask: bytes) -> bytes:
    return (b'{"arg":{"channel":"%s","instId":"BTC-USDT"},"data":[{"asks":[["%s","1.5","0",'
            b'"2"]],"bids":[["%s","0.25","0","1"]],"ts":"%d","seqId":%d}]}'
            % (channel, ask, bid, ts, seq))


#: (seqId, ts ms, bid, ask): the venue reset its sequence after the third push
OKX_TOPS = [(500, 1_000, b"100.1", b"100.2"), (510, 1_010, b"100.2", b"100.3"),
            (530, 1_020, b"100.1", b"100.3"), (3, 1_030, b"100.0", b"100.1"),
            (9, 1_040, b"99.9", b"100.1")]


@pytest.mark.parametrize("channel, rtype", [(b"bbo-tbt", "bbo"), (b"books5", "snapshot")])
def test_okx_top_of_book_published_once_across_lines(channel: bytes, rtype: str) -> None:
    """OKX bbo-tbt (a quote) and books5 (whole snapshots) from two lines: each push is
    published once, from the line that brought it first; the slower line's copies are
    duplicates, and so is a push older than the last one published.  After the venue
    resets its seqId (lower sequence, later exchange time) pushes are published again,
    not taken as old copies."""
    e = Engine("okx")
    e.add_instrument("BTC-USDT")
    frames = [_okx_top(channel, q, ts, b, a) for q, ts, b, a in OKX_TOPS]
    t = 0
    for i, f in enumerate(frames):
        for ln in ((0, 1) if i % 2 == 0 else (1, 0)):       # the lead alternates
            t += 1
            assert e.feed_on(ln, f, rx=t * MS, rx_wall=1) >= 0, e.last_error()
    t += 1
    assert e.feed_on(0, frames[1], rx=t * MS, rx_wall=1) >= 0      # an old push again
    recs = [r for r in _records(e) if r["type"] == rtype]
    assert [(r["seq"], r["line"]) for r in recs] == [
        (q, 0 if i % 2 == 0 else 1) for i, (q, *_rest) in enumerate(OKX_TOPS)]
    for r, (_q, ts, b, a) in zip(recs, OKX_TOPS, strict=True):
        assert r["ts_exchange"] == ts
        if rtype == "bbo":
            assert (r["bid"], r["bid_qty"], r["ask"], r["ask_qty"]) == (
                b.decode(), "0.25", a.decode(), "1.5")
        else:
            assert r["bids"] == [[b.decode(), "0.25"]] and r["asks"] == [[a.decode(), "1.5"]]
    c = e.arbiter_counters()
    assert c["received"] == 2 * len(frames) + 1
    assert c["published"] == len(frames) and c["duplicates"] == len(frames) + 1


def _okx_trades(ids: list[int]) -> bytes:
    items = b",".join(
        b'{"instId":"UNI-USD-SWAP","tradeId":"%d","px":"5.%03d","sz":"%d","side":"buy",'
        b'"ts":"%d"}' % (t, t % 1000, t % 7 + 1, 1_652_459_215_000 + t) for t in ids)
    return b'{"arg":{"channel":"trades","instId":"UNI-USD-SWAP"},"data":[' + items + b"]}"


def test_trades_batched_differently_by_two_lines_are_published_once() -> None:
    """Lines may batch the same trades into different frames: each trade is published
    once, as its own record with its own id as ``seq``, from the first frame that carried
    it; a frame that is partly new publishes only its new trades."""
    e = Engine("okx")
    e.add_instrument("UNI-USD-SWAP")
    arrivals = [(0, [101, 102]), (1, [101]), (1, [102, 103]), (0, [103]),
                (0, [104, 105, 106]), (1, [104]), (1, [105, 106, 107])]
    for t, (ln, ids) in enumerate(arrivals):
        assert e.feed_on(ln, _okx_trades(ids), rx=(t + 1) * MS, rx_wall=1) >= 0, e.last_error()
    recs = [r for r in _records(e) if r["type"] == "trade"]
    assert [(r["seq"], r["id"], r["line"]) for r in recs] == [
        (101, 101, 0), (102, 102, 0), (103, 103, 1), (104, 104, 0), (105, 105, 0),
        (106, 106, 0), (107, 107, 1)]
    assert [r["price"] for r in recs] == [f"5.{t % 1000:03d}" for t in range(101, 108)]
    c = e.arbiter_counters()
    sent = sum(len(ids) for _ln, ids in arrivals)
    assert c["received"] == sent and c["published"] == 7
    assert c["duplicates"] == sent - 7 and c["dropped"] == 0


def test_win_rate_is_the_share_of_first_copies() -> None:
    """A line's win rate is wins / (wins + duplicates) as a fraction: the lead changes
    half way, so each line wins about half (it used to come out 0 for any line that had
    lost even one update: an integer division)."""
    snap, stream = usdm_stream()
    e = engine(snap)
    half = len(stream) // 2
    for t, ln, f in merged([[((i + 1) * 10 * MS + (0 if i < half else 3 * MS), f)
                             for i, f in enumerate(stream)],
                            [((i + 1) * 10 * MS + (3 * MS if i < half else 0), f)
                             for i, f in enumerate(stream)]]):
        e.feed_on(ln, f, rx=t, rx_wall=1)
    for ln in (0, 1):
        st = e.line_stats(ln)
        assert st["wins"] > 0 and st["duplicates"] > 0
        assert st["win_rate"] == pytest.approx(st["wins"] / (st["wins"] + st["duplicates"]))
        assert 0.3 < st["win_rate"] < 0.7
