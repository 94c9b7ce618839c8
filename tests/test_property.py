"""Property tests: the Cython engine against the plain-Python reference.

Random Binance streams (snapshot + chained depth events with insertions,
deletions, re-adds, far levels and deletes of unknown levels) must leave the
Cython book equal to ``reference.BinanceBook`` after every single event, with
the same result code.  Random OKX books must give the reference CRC32.
Random number texts must decode to Decimal's own digits and exponent.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from decimal import Decimal

import hypothesis.strategies as st
from hypothesis import HealthCheck, given, settings
from reference import (
    OUTCOME_CODES,
    BinanceBook,
    DepthEvent,
    DeribitBook,
    OkxBook,
    TextLevel,
    mantissa_decimals,
)

from xcol._fast.decode import Decoder
from xcol._fast.engine import Engine

SETTINGS = settings(max_examples=200, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])

PRICE_SCALE, QTY_SCALE = 2, 3
SYMBOL = "BTCUSDT"


# ------------------------------------------------------------------ texts


def price_text(ticks: int, strip: bool) -> str:
    """Ticks of 0.01 as Binance writes them (``"61800.20"``), or minimal (``"61800.2"``)."""
    text = f"{ticks // 100}.{ticks % 100:02d}"
    return text.rstrip("0").rstrip(".") if strip else text


def qty_text(units: int, strip: bool) -> str:
    text = f"{units // 1000}.{units % 1000:03d}"
    return text.rstrip("0").rstrip(".") if strip and units else text


# Most activity near the top (so levels are deleted and re-added), some far away.
NEAR = st.integers(6_180_000, 6_180_040)
FAR = st.integers(1, 10**13)
PRICE = st.one_of(NEAR, NEAR, NEAR, FAR)
QTY = st.one_of(st.just(0), st.just(0), st.integers(1, 10**9))  # 0 deletes
SIDE = st.lists(st.tuples(PRICE, QTY, st.booleans()), max_size=8)
SNAP_SIDE = st.dictionaries(PRICE, st.integers(1, 10**9), max_size=30)


def texts(side: list[tuple[int, int, bool]]) -> list[TextLevel]:
    return [(price_text(p, s), qty_text(q, s)) for p, q, s in side]


def levels_json(levels: list[TextLevel]) -> str:
    return "[" + ",".join(f'["{p}","{q}"]' for p, q in levels) + "]"


@dataclass(frozen=True)
class Ev:
    first: int
    last: int
    prev: int
    bids: list[TextLevel]
    asks: list[TextLevel]

    def frame(self, futures: bool) -> bytes:
        if futures:
            head = (f'{{"stream":"btcusdt@depth@0ms","data":{{"e":"depthUpdate","E":1,"T":1,'
                    f'"s":"{SYMBOL}","U":{self.first},"u":{self.last},"pu":{self.prev},')
        else:
            head = (f'{{"stream":"btcusdt@depth@100ms","data":{{"e":"depthUpdate","E":1,'
                    f'"s":"{SYMBOL}","U":{self.first},"u":{self.last},')
        return (head + f'"b":{levels_json(self.bids)},"a":{levels_json(self.asks)}}}}}').encode()

    def ref(self, futures: bool) -> DepthEvent:
        return DepthEvent(self.first, self.last, self.prev if futures else None,
                          self.bids, self.asks)


def snapshot_frame(lid: int, bids: list[TextLevel], asks: list[TextLevel]) -> bytes:
    return (f'{{"lastUpdateId":{lid},"bids":{levels_json(bids)},'
            f'"asks":{levels_json(asks)}}}').encode()


@st.composite
def chains(draw: st.DrawFn, min_size: int = 1, max_size: int = 25) -> list[Ev]:
    """Depth events chained without holes: U = previous u + 1, pu = previous u."""
    bodies = draw(st.lists(st.tuples(SIDE, SIDE, st.integers(0, 3)),
                           min_size=min_size, max_size=max_size))
    start = draw(st.integers(1_000, 10**12))
    out, u = [], start
    for bids, asks, extra in bodies:
        first = u + 1
        out.append(Ev(first, first + extra, u, texts(bids), texts(asks)))
        u = first + extra
    return out


@st.composite
def snapshots(draw: st.DrawFn) -> tuple[list[TextLevel], list[TextLevel]]:
    bids = draw(SNAP_SIDE)
    asks = draw(SNAP_SIDE)
    strip = draw(st.booleans())
    best_first_b = sorted(bids.items(), reverse=True)
    best_first_a = sorted(asks.items())
    return ([(price_text(p, strip), qty_text(q, strip)) for p, q in best_first_b],
            [(price_text(p, strip), qty_text(q, strip)) for p, q in best_first_a])


# Ladder slots per side: the default, a narrow window that the best level keeps
# leaving (so the window moves and levels migrate between ladder and blocks), and none.
LADDERS = st.sampled_from([65536, 64, 0])


def new_engine(futures: bool, ladder: int = 65536) -> Engine:
    e = Engine("binance-usdm" if futures else "binance-spot")
    e.add_instrument(SYMBOL, PRICE_SCALE, QTY_SCALE)
    e.book(SYMBOL).ladder = ladder
    return e


def assert_same(e: Engine, ref: BinanceBook, where: str) -> None:
    book = e.book(SYMBOL)
    assert book.check() == (0, 0), where
    assert book.levels_raw() == ref.levels(PRICE_SCALE, QTY_SCALE), where
    assert book.top(10) == (
        [(lv.price_text, lv.size_text) for lv in ref.sorted_bids()[:10]],
        [(lv.price_text, lv.size_text) for lv in ref.sorted_asks()[:10]]), where
    assert book.synced == ref.synced, where
    if ref.state != "wait":
        assert book.last_seq == ref.last_id, where


def feed_both(e: Engine, ref: BinanceBook, ev: Ev, futures: bool, where: str) -> int:
    code = e.feed(ev.frame(futures))
    expected = OUTCOME_CODES[ref.on_depth(ev.ref(futures))]
    assert code == expected, f"{where}: engine {code}, reference {expected} ({e.last_error()})"
    assert_same(e, ref, where)
    return code


# ------------------------------------------------------- Binance sequences


@SETTINGS
@given(futures=st.booleans(), events=chains(), snap=snapshots(), ladder=LADDERS,
       data=st.data())
def test_random_stream_matches_reference_after_every_event(
    futures: bool, events: list[Ev], snap: tuple[list[TextLevel], list[TextLevel]],
    ladder: int, data: st.DataObject,
) -> None:
    # The snapshot lands anywhere in the chain; events before it are buffered,
    # those it already contains are dropped, the one that spans it syncs.
    lid = data.draw(st.integers(events[0].first - 1, events[-1].last), label="lastUpdateId")
    before = data.draw(st.integers(0, len(events)), label="buffered events")
    e, ref = new_engine(futures, ladder), BinanceBook(futures)
    for i, ev in enumerate(events[:before]):
        assert feed_both(e, ref, ev, futures, f"buffered #{i}") == 1
    code = e.feed_snapshot(SYMBOL, snapshot_frame(lid, *snap))
    assert code == OUTCOME_CODES[ref.on_snapshot(lid, *snap)] == 7
    assert_same(e, ref, "after snapshot")
    for i, ev in enumerate(events[before:], before):
        assert feed_both(e, ref, ev, futures, f"event #{i}") in (0, 2)
    assert e.book(SYMBOL).synced == (events[-1].last >= lid + (0 if futures else 1))
    assert e.counters()["book"]["gap"] == 0


@st.composite
def drifting(draw: st.DrawFn) -> tuple[list[TextLevel], list[TextLevel], list[Ev]]:
    """A snapshot and a chain whose prices follow a random walk of the mid price,
    far enough for a narrow ladder window to have to move, with far levels too."""
    mid = 6_180_000
    offsets = st.integers(0, 120)

    def side(sign: int, base: int, n: int) -> list[tuple[int, int, bool]]:
        lv = draw(st.lists(st.tuples(offsets, QTY, st.booleans()), max_size=n))
        out = [(base + sign * off, q, strip) for off, q, strip in lv]
        if draw(st.integers(0, 9)) == 0:     # now and then a level far away
            out.append((draw(FAR), draw(QTY), False))
        return out

    snap_b = {mid - draw(offsets): q for q in draw(st.lists(st.integers(1, 10**6), max_size=40))}
    snap_a = {mid + 1 + draw(offsets): q for q in draw(st.lists(st.integers(1, 10**6),
                                                                max_size=40))}
    events, u = [], 1000
    for _ in range(draw(st.integers(20, 120))):
        mid += draw(st.integers(-60, 60))
        events.append(Ev(u + 1, u + 1, u, texts(side(-1, mid, 6)), texts(side(1, mid + 1, 6))))
        u += 1
    return ([(price_text(p, False), qty_text(q, False)) for p, q in sorted(snap_b.items(),
                                                                         reverse=True)],
            [(price_text(p, False), qty_text(q, False)) for p, q in sorted(snap_a.items())],
            events)


@SETTINGS
@given(futures=st.booleans(), case=drifting(), ladder=st.sampled_from([64, 128, 65536]))
def test_book_follows_a_drifting_price_exactly(
    futures: bool, case: tuple[list[TextLevel], list[TextLevel], list[Ev]], ladder: int,
) -> None:
    # The ladder window re-centres on the best level as the price walks away; every
    # level must survive each move exactly (same levels, same texts as the reference).
    bids, asks, events = case
    e, ref = new_engine(futures, ladder), BinanceBook(futures)
    assert e.feed_snapshot(SYMBOL, snapshot_frame(1000, bids, asks)) == 7
    ref.on_snapshot(1000, bids, asks)
    assert_same(e, ref, "after snapshot")
    for i, ev in enumerate(events):
        assert feed_both(e, ref, ev, futures, f"event #{i}") == 0


@SETTINGS
@given(futures=st.booleans(), events=chains(min_size=3), snap=snapshots(), data=st.data())
def test_random_gap_is_detected_and_stops_the_book(
    futures: bool, events: list[Ev], snap: tuple[list[TextLevel], list[TextLevel]],
    data: st.DataObject,
) -> None:
    # Snapshot spans the first event; drop one event after the first applied one.
    lid = events[0].first if futures else events[0].first - 1
    drop = data.draw(st.integers(1, len(events) - 2), label="dropped event")
    e, ref = new_engine(futures), BinanceBook(futures)
    assert e.feed_snapshot(SYMBOL, snapshot_frame(lid, *snap)) == 7
    ref.on_snapshot(lid, *snap)
    for i, ev in enumerate(events[:drop]):
        assert feed_both(e, ref, ev, futures, f"event #{i}") == 0
    levels = e.book(SYMBOL).levels_raw()
    assert feed_both(e, ref, events[drop + 1], futures, "after the hole") == 3
    book = e.book(SYMBOL)
    assert not book.synced
    assert book.resync_requested
    assert book.levels_raw() == levels, "the event after a hole must not be applied"
    assert book.stats()["gaps"] == 1
    for i, ev in enumerate(events[drop + 2:], drop + 2):
        assert feed_both(e, ref, ev, futures, f"event #{i} while unsynced") == 1
    assert not e.book(SYMBOL).synced
    # A fresh snapshot taken after the hole resyncs from what was buffered since.
    lid2 = data.draw(st.integers(events[drop + 1].first - 1, events[-1].last), label="resync")
    snap2 = data.draw(snapshots(), label="second snapshot")
    code = e.feed_snapshot(SYMBOL, snapshot_frame(lid2, *snap2))
    assert code == OUTCOME_CODES[ref.on_snapshot(lid2, *snap2)] == 7
    assert_same(e, ref, "after the resync")
    assert not e.book(SYMBOL).resync_requested
    assert e.book(SYMBOL).synced == (events[-1].last >= lid2 + (0 if futures else 1))


@SETTINGS
@given(futures=st.booleans(), events=chains(min_size=2), snap=snapshots(), data=st.data())
def test_repeated_event_is_a_duplicate_and_changes_nothing(
    futures: bool, events: list[Ev], snap: tuple[list[TextLevel], list[TextLevel]],
    data: st.DataObject,
) -> None:
    lid = events[0].first if futures else events[0].first - 1
    upto = data.draw(st.integers(1, len(events) - 1), label="applied events")
    again = data.draw(st.integers(0, upto - 1), label="repeated event")
    e, ref = new_engine(futures), BinanceBook(futures)
    assert e.feed_snapshot(SYMBOL, snapshot_frame(lid, *snap)) == 7
    ref.on_snapshot(lid, *snap)
    for i, ev in enumerate(events[:upto]):
        assert feed_both(e, ref, ev, futures, f"event #{i}") == 0
    levels, seq = e.book(SYMBOL).levels_raw(), e.book(SYMBOL).last_seq
    assert feed_both(e, ref, events[again], futures, "repeat") == 2
    assert e.book(SYMBOL).levels_raw() == levels
    assert e.book(SYMBOL).last_seq == seq
    assert e.book(SYMBOL).synced
    for i, ev in enumerate(events[upto:], upto):
        assert feed_both(e, ref, ev, futures, f"event #{i} after the repeat") == 0


@SETTINGS
@given(futures=st.booleans(), events=chains(min_size=2, max_size=10), data=st.data())
def test_snapshot_newer_than_the_buffer_start_replays_only_what_follows(
    futures: bool, events: list[Ev], data: st.DataObject,
) -> None:
    # Everything arrives before the snapshot: the replay keeps exactly the
    # events after lastUpdateId, so the book equals a book loaded at the end.
    lid = data.draw(st.integers(events[0].first - 1, events[-1].last))
    e, ref = new_engine(futures), BinanceBook(futures)
    for ev in events:
        assert e.feed(ev.frame(futures)) == 1
        ref.on_depth(ev.ref(futures))
    assert e.book(SYMBOL).pending == len(events)
    assert e.feed_snapshot(SYMBOL, snapshot_frame(lid, [], [])) == 7
    assert ref.on_snapshot(lid, [], []) == "snapshot"
    assert_same(e, ref, "after replay")
    assert e.book(SYMBOL).pending == 0
    assert e.book(SYMBOL).last_seq == max(lid, events[-1].last)


@SETTINGS
@given(futures=st.booleans(), events=chains(min_size=1, max_size=10),
       older=st.integers(1, 1000), snap=snapshots())
def test_snapshot_older_than_every_buffered_event_is_a_gap(
    futures: bool, events: list[Ev], older: int,
    snap: tuple[list[TextLevel], list[TextLevel]],
) -> None:
    # The bridging event is missing: the book must wait for a newer snapshot.
    lid = events[0].first - 1 - older
    e, ref = new_engine(futures), BinanceBook(futures)
    for ev in events:
        assert e.feed(ev.frame(futures)) == 1
        ref.on_depth(ev.ref(futures))
    assert e.feed_snapshot(SYMBOL, snapshot_frame(lid, *snap)) == 3
    assert ref.on_snapshot(lid, *snap) == "gap"
    assert not e.book(SYMBOL).synced
    lid2 = events[-1].last
    assert e.feed_snapshot(SYMBOL, snapshot_frame(lid2, *snap)) == 7
    assert ref.on_snapshot(lid2, *snap) == "snapshot"
    assert e.book(SYMBOL).last_seq == lid2
    assert e.book(SYMBOL).levels_raw() == ref.levels(PRICE_SCALE, QTY_SCALE)


# --------------------------------------------------------------- checksum

OKX_NUM = st.tuples(st.integers(1, 10**8), st.integers(0, 8))  # mantissa, decimals


def okx_text(mant: int, decimals: int) -> str:
    return format(Decimal(mant).scaleb(-decimals), "f") if decimals else str(mant)


@st.composite
def okx_sides(draw: st.DrawFn, max_size: int = 40) -> list[TextLevel]:
    raw = draw(st.lists(st.tuples(OKX_NUM, OKX_NUM), max_size=max_size))
    seen, out = set(), []
    for (pm, pd), (qm, qd) in raw:
        price = okx_text(pm, pd)
        if Decimal(price) in seen:
            continue  # a snapshot lists each price once
        seen.add(Decimal(price))
        out.append((price, okx_text(qm, qd)))
    return out


def okx_frame(action: str, bids: list[TextLevel], asks: list[TextLevel], checksum: int) -> bytes:
    def side(levels: list[TextLevel]) -> str:
        return "[" + ",".join(f'["{p}","{q}","0","1"]' for p, q in levels) + "]"
    return (f'{{"arg":{{"channel":"books","instId":"BTC-USDT"}},"action":"{action}",'
            f'"data":[{{"asks":{side(asks)},"bids":{side(bids)},"ts":"1",'
            f'"checksum":{checksum}}}]}}').encode()


@SETTINGS
@given(bids=okx_sides(), asks=okx_sides(), order=st.sampled_from(["best-first", "shuffled"]),
       updates=st.lists(st.tuples(st.lists(st.tuples(OKX_NUM, OKX_NUM | st.just((0, 0))),
                                           max_size=6),
                                  st.lists(st.tuples(OKX_NUM, OKX_NUM | st.just((0, 0))),
                                           max_size=6)),
                        max_size=8),
       rnd=st.randoms(use_true_random=False))
def test_checksum_matches_zlib_reference(
    bids: list[TextLevel], asks: list[TextLevel], order: str,
    updates: list[tuple[list[tuple[tuple[int, int], tuple[int, int]]], ...]],
    rnd: object,
) -> None:
    ref = OkxBook()
    ref.load(bids, asks)
    if order == "best-first":
        bids = [(lv.price_text, lv.size_text) for lv in ref.sorted_bids()]
        asks = [(lv.price_text, lv.size_text) for lv in ref.sorted_asks()]
    else:
        rnd.shuffle(bids)  # type: ignore[attr-defined]
        rnd.shuffle(asks)  # type: ignore[attr-defined]
    e = Engine("okx")
    e.add_instrument("BTC-USDT", 8, 8)
    crc = ref.checksum()
    assert e.feed(okx_frame("snapshot", bids, asks, crc)) == 7, ref.checksum_text()
    book = e.book("BTC-USDT")
    assert book.checksum(25) == crc
    assert book.levels_raw() == ref.levels(8, 8)
    for depth in (1, 5, 400):
        assert book.checksum(depth) == ref.checksum(depth)
    for ub, ua in updates:
        tb = [(okx_text(*p), okx_text(*q) if q != (0, 0) else "0") for p, q in ub]
        ta = [(okx_text(*p), okx_text(*q) if q != (0, 0) else "0") for p, q in ua]
        ref.update(tb, ta)
        crc = ref.checksum()
        assert e.feed(okx_frame("update", tb, ta, crc)) == 0, ref.checksum_text()
        assert book.checksum() == crc
        assert book.levels_raw() == ref.levels(8, 8)
        assert [(p, q) for p, q in book.top(25)[0]] == \
            [(lv.price_text, lv.size_text) for lv in ref.sorted_bids()[:25]]


@SETTINGS
@given(bids=okx_sides(), asks=okx_sides())
def test_wrong_checksum_is_detected(bids: list[TextLevel], asks: list[TextLevel]) -> None:
    ref = OkxBook()
    ref.load(bids, asks)
    wrong = ref.checksum() ^ 0x10
    e = Engine("okx")
    e.add_instrument("BTC-USDT", 8, 8)
    assert e.feed(okx_frame("snapshot", bids, asks, wrong)) == 4
    assert not e.book("BTC-USDT").synced
    assert e.book("BTC-USDT").stats()["checksums_failed"] == 1


# ---------------------------------------------------------------- numbers


def expected_number(text: str) -> tuple[int, int] | None:
    """What the decoders must make of ``text``: Decimal's digits and exponent, or None.

    The contract (num.pxd): at most 18 significant digits as written, at most
    18 decimals (only trailing zeros may lie beyond), exponents within 40.
    """
    sign, digits, exponent = Decimal(text).as_tuple()
    assert isinstance(exponent, int) and sign == 0
    lower = text.lower()
    if "e" in lower and abs(int(lower.split("e")[1])) > 40:
        return None
    m = int("".join(map(str, digits)))
    if m == 0:
        return (0, -exponent) if 0 <= -exponent <= 18 else (0, 0)
    if len(digits) > 18:
        return None
    if exponent > 0:
        return (m * 10**exponent, 0) if len(digits) + exponent <= 18 else None
    d = -exponent
    while d > 18 and m % 10 == 0:
        m //= 10
        d -= 1
    return (m, d) if d <= 18 else None


@st.composite
def decimal_strings(draw: st.DrawFn) -> str:
    """Plain decimals as exchanges quote them: ``"61800.20"``, ``"0.00000000"``, ``"7"``."""
    whole = draw(st.integers(0, 10**draw(st.integers(0, 19))))
    frac = draw(st.text("0123456789", max_size=draw(st.integers(0, 20))))
    return f"{whole}.{frac}" if frac else str(whole)


@st.composite
def json_numbers(draw: st.DrawFn) -> str:
    """JSON number tokens as Deribit sends them: ``0.0005``, ``1e-05``, ``30250.5``, ``10.0``."""
    text = draw(decimal_strings())
    if draw(st.booleans()):
        text += draw(st.sampled_from(["e", "E"])) + draw(st.sampled_from(["", "+", "-"]))
        text += str(draw(st.integers(0, 45))).zfill(draw(st.integers(1, 2)))
    return text


@SETTINGS
@given(text=decimal_strings())
def test_quoted_decimal_mantissa_and_decimals_equal_decimals(text: str) -> None:
    d = Decoder("binance")
    frame = f'{{"u":1,"s":"X","b":"{text}","B":"{text}","a":"1","A":"1"}}'.encode()
    kind = d.decode_frame(frame)
    want = expected_number(text)
    if want is None:
        assert kind == -1 and "bookTicker" in (d.error() or "")
        return
    assert kind == 3, d.error()
    px, pdec, qty, qdec, _flag = d.event()["bids"][0]
    assert (px, pdec) == (qty, qdec) == want
    assert Decimal(px).scaleb(-pdec) == Decimal(text)
    if len(text) < 30:
        assert (px, pdec) == mantissa_decimals(text)


@SETTINGS
@given(text=json_numbers())
def test_json_number_mantissa_and_decimals_equal_decimals(text: str) -> None:
    d = Decoder("deribit")
    frame = (
        '{"jsonrpc":"2.0","method":"subscription","params":{"channel":"book.X.raw",'
        f'"data":{{"type":"change","instrument_name":"X","change_id":2,"prev_change_id":1,'
        f'"bids":[["new",{text},{text}]],"asks":[]}}}}}}'
    ).encode()
    kind = d.decode_frame(frame)
    want = expected_number(text)
    if want is None:
        assert kind == -1, f"{text} decoded as {d.event()['bids']}"
        return
    assert kind == 1, f"{text}: {d.error()}"
    px, pdec, qty, qdec, _flag = d.event()["bids"][0]
    assert (px, pdec) == (qty, qdec) == want
    assert Decimal(px).scaleb(-pdec) == Decimal(text)


# ------------------------------------------------- OKX and Deribit sequences


def okx_seq_frame(action: str, bids: list[TextLevel], asks: list[TextLevel], seq: int,
                  prev: int, checksum: int) -> bytes:
    def side(levels: list[TextLevel]) -> str:
        return "[" + ",".join(f'["{p}","{q}","0","1"]' for p, q in levels) + "]"
    return (f'{{"arg":{{"channel":"books","instId":"BTC-USDT"}},"action":"{action}",'
            f'"data":[{{"asks":{side(asks)},"bids":{side(bids)},"ts":"1",'
            f'"checksum":{checksum},"prevSeqId":{prev},"seqId":{seq}}}]}}').encode()


OKX_STEP = st.sampled_from(["next", "next", "next", "heartbeat", "reset", "gap"])


@SETTINGS
@given(bids=okx_sides(max_size=10), asks=okx_sides(max_size=10),
       steps=st.lists(st.tuples(OKX_STEP, okx_sides(max_size=4), okx_sides(max_size=4),
                                st.integers(1, 50), st.booleans()), max_size=15))
def test_okx_seq_chain_matches_reference(
    bids: list[TextLevel], asks: list[TextLevel],
    steps: list[tuple[str, list[TextLevel], list[TextLevel], int, bool]],
) -> None:
    # prevSeqId must equal the last seqId; empty heartbeats (seqId == prevSeqId)
    # and maintenance resets (seqId < prevSeqId) chain like any other message.
    ref = OkxBook()
    e = Engine("okx")
    e.add_instrument("BTC-USDT", 8, 8)
    seq = 1000
    ref.on_message("snapshot", bids, asks, seq, -1, None)
    assert e.feed(okx_seq_frame("snapshot", bids, asks, seq, -1, ref.checksum())) == 7
    for i, (step, ub, ua, jump, with_crc) in enumerate(steps):
        prev = seq
        if step == "heartbeat":
            ub, ua, new = [], [], seq
        elif step == "reset":
            new = max(0, seq - jump * 7)
        elif step == "gap":
            prev, new = seq + jump, seq + 2 * jump  # messages were missed
        else:
            new = seq + jump
        # Compute the checksum the exchange would send for the book after this message.
        probe = OkxBook()
        probe.load([(lv.price_text, lv.size_text) for lv in ref.sorted_bids()],
                   [(lv.price_text, lv.size_text) for lv in ref.sorted_asks()])
        probe.update(ub, ua)
        crc = probe.checksum() if with_crc else 0
        out = ref.on_message("update", ub, ua, new, prev, crc)
        code = e.feed(okx_seq_frame("update", ub, ua, new, prev, crc))
        assert code == OUTCOME_CODES[out], f"step {i} {step}: engine {code}, reference {out}"
        book = e.book("BTC-USDT")
        assert book.synced == ref.synced
        if not ref.synced:
            assert book.resync_requested
            break
        seq = new
        assert book.last_seq == seq
        assert book.levels_raw() == ref.levels(8, 8)
        assert book.checksum() == ref.checksum()


DERIBIT_NUM = st.tuples(st.integers(1, 10**6), st.integers(0, 4))


@st.composite
def deribit_levels(draw: st.DrawFn, max_size: int = 6) -> list[tuple[str, str, str]]:
    raw = draw(st.lists(st.tuples(st.sampled_from(["new", "change", "delete"]), DERIBIT_NUM,
                                  DERIBIT_NUM), max_size=max_size))
    out = []
    for action, (pm, pd), (qm, qd) in raw:
        amount = "0.0" if action == "delete" else okx_text(qm, qd)
        out.append((action, okx_text(pm, pd), amount))
    return out


def deribit_frame(kind: str, levels: tuple[list[tuple[str, str, str]], ...], change_id: int,
                  prev: int | None) -> bytes:
    def side(lv: list[tuple[str, str, str]]) -> str:
        return "[" + ",".join(f'["{a}",{p},{q}]' for a, p, q in lv) + "]"
    prev_part = f'"prev_change_id":{prev},' if prev is not None else ""
    return (
        '{"jsonrpc":"2.0","method":"subscription","params":{"channel":"book.BTC-PERPETUAL.raw",'
        f'"data":{{"type":"{kind}","timestamp":1,{prev_part}"instrument_name":"BTC-PERPETUAL",'
        f'"change_id":{change_id},"bids":{side(levels[0])},"asks":{side(levels[1])}}}}}}}'
    ).encode()


@SETTINGS
@given(snap=st.tuples(deribit_levels(12), deribit_levels(12)),
       changes=st.lists(st.tuples(deribit_levels(), deribit_levels(), st.integers(1, 9)),
                        min_size=1, max_size=12),
       hole=st.integers(0, 12))
def test_deribit_change_chain_matches_reference(
    snap: tuple[list[tuple[str, str, str]], ...],
    changes: list[tuple[list[tuple[str, str, str]], list[tuple[str, str, str]], int]],
    hole: int,
) -> None:
    # Snapshot levels are all "new"; changes chain prev_change_id on change_id,
    # a missing change is a gap, and the next snapshot resyncs.
    # A price listed twice in a snapshot: the later entry wins, as if applied in order.
    snap = tuple([("new", p, q) for _, p, q in lv if q != "0.0"] for lv in snap)
    ref = DeribitBook()
    e = Engine("deribit")
    e.add_instrument("BTC-PERPETUAL", 8, 8)
    cid = 500
    frame = deribit_frame("snapshot", snap, cid, None)
    assert e.feed(frame) == OUTCOME_CODES[ref.on_json(frame)] == 7
    for i, (b, a, step) in enumerate(changes):
        prev, cid = cid, cid + step
        if i == hole:
            continue  # this change is lost on the way
        frame = deribit_frame("change", (b, a), cid, prev)
        code = e.feed(frame)
        out = ref.on_json(frame)
        assert code == OUTCOME_CODES[out], f"change {i}: engine {code}, reference {out}"
        assert e.book("BTC-PERPETUAL").synced == ref.synced
        if not ref.synced:
            break
        assert e.book("BTC-PERPETUAL").levels_raw() == ref.levels(8, 8)
    assert (hole < len(changes) - 1) == (not ref.synced)
    frame = deribit_frame("snapshot", snap, cid + 100, None)
    assert e.feed(frame) == OUTCOME_CODES[ref.on_json(frame)] == 7
    assert e.book("BTC-PERPETUAL").synced
    assert e.book("BTC-PERPETUAL").levels_raw() == ref.levels(8, 8)


@SETTINGS
@given(data=st.binary(max_size=3000), prefix=st.binary(max_size=40))
def test_crc32_equals_zlib_on_any_bytes(data: bytes, prefix: bytes) -> None:
    # Lengths below and above the 64 bytes where the carry-less multiply path starts,
    # whole and partial 16-byte lanes (the prefix moves the lane boundaries).
    from xcol._fast.book import crc32
    assert crc32(data) == zlib.crc32(data)
    assert crc32(prefix + data) == zlib.crc32(prefix + data)


@st.composite
def okx_long_streams(draw: st.DrawFn) -> tuple[list[TextLevel], list[TextLevel],
                                               list[tuple[list[TextLevel], list[TextLevel]]]]:
    """A deep OKX snapshot near one price, then many updates: the top levels are
    deleted, re-added, resized and pushed down by new ones, so the lists of best
    levels the checksum is built from fill up, run short and are rebuilt."""
    def px(tick: int) -> str:
        return okx_text(4_000_000 + tick, 1)      # 400000.0 + tick * 0.1

    def qty() -> str:
        return okx_text(draw(st.integers(1, 10**6)), draw(st.integers(0, 4)))

    # Around 64 levels a side (the lists hold 64): a growing phase fills the lists and
    # pushes levels out of them, a shrinking phase runs them short.
    bid_ticks = draw(st.sets(st.integers(-90, -1), min_size=40, max_size=70))
    ask_ticks = draw(st.sets(st.integers(0, 89), min_size=40, max_size=70))
    bids = [(px(t), qty()) for t in sorted(bid_ticks, reverse=True)]
    asks = [(px(t), qty()) for t in sorted(ask_ticks)]
    updates = []
    for phase_deletes, n in ((1, draw(st.integers(0, 30))), (3, draw(st.integers(10, 90)))):
        delete = st.integers(0, 3).map(lambda r, d=phase_deletes: r < d)
        for _ in range(n):
            ub = [(px(draw(st.integers(-90, -1))), "0" if draw(delete) else qty())
                  for _ in range(draw(st.integers(0, 6)))]
            ua = [(px(draw(st.integers(0, 89))), "0" if draw(delete) else qty())
                  for _ in range(draw(st.integers(0, 6)))]
            updates.append((ub, ua))
    return bids, asks, updates


@SETTINGS
@given(case=okx_long_streams())
def test_long_okx_stream_every_checksum_verifies(
    case: tuple[list[TextLevel], list[TextLevel], list[tuple[list[TextLevel],
                                                              list[TextLevel]]]],
) -> None:
    # Every update carries the reference checksum of the book after it; the engine
    # (its incrementally kept lists of best levels) must verify each one.
    bids, asks, updates = case
    ref = OkxBook()
    ref.load(bids, asks)
    e = Engine("okx")
    e.add_instrument("BTC-USDT", 8, 8)
    assert e.feed(okx_frame("snapshot", bids, asks, ref.checksum())) == 7
    for i, (ub, ua) in enumerate(updates):
        # one price once per side and message, as OKX sends them
        ub = list(dict(ub).items())
        ua = list(dict(ua).items())
        ref.update(ub, ua)
        assert e.feed(okx_frame("update", ub, ua, ref.checksum())) == 0, \
            f"update #{i}: {ref.checksum_text()}"
    book = e.book("BTC-USDT")
    assert book.stats()["checksums_failed"] == 0
    assert book.levels_raw() == ref.levels(8, 8)
