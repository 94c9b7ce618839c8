"""The compact-layout scanners and the simdjson walk must decode identically.

Binance frames and OKX book frames first go through a validating single-pass
scanner (``Decoder.fast``); anything it does not accept goes to simdjson On-Demand.
These tests decode every kind of real message, seeded mutations of them and
hand-made edge cases twice, once with the scanner and once without, and
require the same result code, the same event, the same level texts and the same
error text.  They also check that the scanner really takes the real messages
(otherwise the comparison would be vacuous).  The reference decoder also reads
levels with the byte loop alone (``Decoder.shapes`` off: no level read by its
shape, see levels.h), since simdjson's walk hands level arrays to that loop too.
"""

from __future__ import annotations

import random
import re
from typing import Any

import pytest
from capture import frames, need
from hypothesis import given, settings
from hypothesis import strategies as st
from test_fuzz import mutate

from xcol._fast.decode import SHAPE_LEVELS, Decoder, _parse_number, _scan_int, _scan_number

#: event kinds whose levels keep the exchange's text: depth, snapshot, REST snapshot
BOOK_KINDS = (1, 2, 5)
#: event kind of a quote (bookTicker)
EV_BBO = 3


def texts(dec: Decoder, kind: int) -> Any:
    """The level texts of a book event (records and checksums use them), else None."""
    return dec.level_texts() if kind in BOOK_KINDS else None


def both(frame: bytes, venue: str = "binance",
         ) -> tuple[tuple[Any, ...], tuple[Any, ...], bool]:
    """Decode ``frame`` with and without the scanner; also whether the scanner took it."""
    fast, slow = Decoder(venue), Decoder(venue)
    slow.fast = False
    slow.shapes = False
    rf = fast.decode_frame(frame)
    rs = slow.decode_frame(frame)
    out_f = (rf, fast.event() if rf >= 0 else None, fast.error(), texts(fast, rf))
    out_s = (rs, slow.event() if rs >= 0 else None, slow.error(), texts(slow, rs))
    return out_f, out_s, fast.fast_frames == 1


def check(frame: bytes, venue: str = "binance") -> bool:
    f, s, took = both(frame, venue)
    assert f == s, f"scanner and simdjson disagree on {frame[:200]!r}"
    return took


@pytest.mark.corpus
@pytest.mark.parametrize("name", ["usdm", "spot", "coinm", "cf-usdm", "cf-spot"])
def test_real_messages_decode_identically(name: str) -> None:
    cap = need(name)
    bodies = [f.body for f in frames(cap.path)]
    # every depth event and a stride of everything else (bookTicker, trades, snapshots)
    picked = [b for i, b in enumerate(bodies) if b"depthUpdate" in b[:120] or i % 7 == 0]
    market_data = (b"@depth", b"@bookTicker", b"@trade", b"@aggTrade")
    missed = []
    for body in picked:
        took = check(body)
        if not took and any(m in body[:60] for m in market_data):
            missed.append(body[:120])
    assert sum(b"depthUpdate" in b[:120] for b in picked) > 0, "no depth events found"
    # the scanner must carry the real market data, not leave it to the fallback
    assert not missed, f"{len(missed)} market-data frames fell back, e.g. {missed[:3]}"


@pytest.mark.corpus
@pytest.mark.parametrize("name", ["usdm", "spot", "coinm"])
def test_mutated_messages_decode_identically(name: str) -> None:
    cap = need(name)
    bodies = [f.body for f in frames(cap.path)]
    rnd = random.Random(8080)
    sample = rnd.sample(bodies, 400)
    for body in sample:
        for _ in range(4):
            _, mutated = mutate(rnd, body)
            check(mutated)


DEPTH = (
    b'{"stream":"btcusdt@depth@0ms","data":{"e":"depthUpdate","E":1723161256299,'
    b'"T":1723161256298,"s":"BTCUSDT","U":5123107832006,"u":5123107837557,'
    b'"pu":5123107831937,"b":[["58710.20","0.014"],["61496.50","0.000"]],'
    b'"a":[["61800.30","1.5"]]}}'
)

EDGE_CASES = [
    DEPTH,
    DEPTH + b" ",  # trailing blank: valid JSON, left to simdjson
    DEPTH + b"x",
    DEPTH[:-1],
    DEPTH.replace(b'"U":5123107832006', b'"U":05123107832006'),  # leading zero
    DEPTH.replace(b'"U":5123107832006', b'"U":5123107832006.0'),
    DEPTH.replace(b'"U":5123107832006', b'"U":5e12'),
    DEPTH.replace(b'"U":5123107832006', b'"U":-5123107832006'),
    DEPTH.replace(b'"U":5123107832006', b'"U":9223372036854775807'),
    DEPTH.replace(b'"U":5123107832006', b'"U":"5123107832006"'),
    DEPTH.replace(b'"s":"BTCUSDT"', b'"s":"BTC\\u0055SDT"'),  # escape: simdjson path
    DEPTH.replace(b'"s":"BTCUSDT"', b'"s":""'),
    DEPTH.replace(b'"s":"BTCUSDT"', b'"s":"BTC\xc3\xa9"'),  # non-ASCII
    DEPTH.replace(b'"s":"BTCUSDT"', b'"s":null'),
    DEPTH.replace(b'"pu":5123107831937,', b""),
    DEPTH.replace(b'"pu":5123107831937,', b'"pu":5123107831937,"pu":7,'),
    DEPTH.replace(b'"e":"depthUpdate",', b'"e":"depthUpdate","x":{"y":1},'),
    DEPTH.replace(b'"e":"depthUpdate",', b'"e":"depthUpdate","x":[1,2],'),
    DEPTH.replace(b'"e":"depthUpdate",', b'"e":"depthUpdate","x":true,"y":null,"z":false,'),
    DEPTH.replace(b'"b":[["58710.20","0.014"],["61496.50","0.000"]]', b'"b":[]'),
    DEPTH.replace(b'"b":[["58710.20","0.014"],', b'"b":[[58710.20,"0.014"],'),
    DEPTH.replace(b'["58710.20","0.014"]', b'["58710.20","0.014","9"]'),
    DEPTH.replace(b'["58710.20","0.014"]', b'["5.8e4","0.014"]'),
    DEPTH.replace(b'["58710.20","0.014"]', b'["-1","0.014"]'),
    DEPTH.replace(b'["58710.20","0.014"]', b'["1234567890123456789","0.014"]'),
    DEPTH.replace(b',"a":[["61800.30","1.5"]]', b""),
    DEPTH.replace(b'"data":{', b'"data": {'),
    DEPTH.replace(b'{"stream":"btcusdt@depth@0ms","data":', b"")[:-1],  # bare event
    b'{"stream":"btcusdt@bookTicker","data":{"e":"bookTicker","u":5123107839020,'
    b'"s":"BTCUSDT","b":"61800.20","B":"2.507","a":"61800.30","A":"2.510",'
    b'"T":1723161256313,"E":1723161256313}}',
    b'{"stream":"btcusdt@bookTicker","data":{"u":1,"s":"BTCUSDT","b":"1","B":"2","a":"3"}}',
    b'{"stream":"btcusdt@bookTicker","data":{"u":1,"s":"BTCUSDT","b":1,"B":"2","a":"3","A":4}}',
    b'{"stream":"btcusdt@trade","data":{"e":"trade","E":1723161256322,"T":1723161256322,'
    b'"s":"BTCUSDT","t":5266583935,"p":"61800.30","q":"0.006","X":"MARKET","m":false}}',
    b'{"stream":"btcusdt@trade","data":{"e":"trade","s":"BTCUSDT","t":5,"p":"1","q":"2",'
    b'"m":null}}',
    b'{"stream":"btcusdt@aggTrade","data":{"e":"aggTrade","E":1,"s":"BTCUSDT","a":26129,'
    b'"p":"0.01633102","q":"4.70443515","f":27781,"l":27781,"T":1498793709153,"m":true}}',
    b'{"stream":"btcusdt@aggTrade","data":{"e":"aggTrade","s":"BTCUSDT","a":-3,"p":"1",'
    b'"q":"2"}}',
    b'{"stream":"btcusdt@kline_1m","data":{"e":"kline","E":1,"s":"BTCUSDT"}}',
    b'{"result":null,"id":1}',
    b'{"lastUpdateId":1,"bids":[["1.0","2"]],"asks":[]}',
    b"{}",
    b"[]",
    b"",
    b'{"e":"serverShutdown","E":1723161256322}',
]


@pytest.mark.parametrize("frame", EDGE_CASES, ids=range(len(EDGE_CASES)))
def test_edge_cases_decode_identically(frame: bytes) -> None:
    check(frame)


#: bookTicker in the layouts Binance writes: USD-M, COIN-M (with the pair) and spot
BBO_USDM = (
    b'{"stream":"btcusdt@bookTicker","data":{"e":"bookTicker","u":5123107839020,'
    b'"s":"BTCUSDT","b":"61800.20","B":"2.507","a":"61800.30","A":"2.510",'
    b'"T":1723161256313,"E":1723161256314}}'
)
BBO_COINM = (
    b'{"stream":"btcusd_perp@bookTicker","data":{"e":"bookTicker","u":878181,'
    b'"s":"BTCUSD_PERP","ps":"BTCUSD","b":"61800.2","B":"120","a":"61800.3","A":"7",'
    b'"T":1723161256313,"E":1723161256314}}'
)
BBO_SPOT = (
    b'{"stream":"btcusdt@bookTicker","data":{"u":400900217,"s":"BTCUSDT",'
    b'"b":"61800.20000000","B":"0.31000000","a":"61800.21000000","A":"0.00040000"}}'
)
BBO_LAYOUTS = [
    BBO_USDM,
    BBO_COINM,
    BBO_SPOT,
    BBO_USDM.replace(b'{"stream":"btcusdt@bookTicker","data":', b"")[:-1],   # bare
    BBO_SPOT.replace(b'{"stream":"btcusdt@bookTicker","data":', b"")[:-1],
]
BBO_EDGE_CASES = [
    BBO_USDM.replace(b'"b":"61800.20"', b'"b":"061800.20"'),     # leading zero
    BBO_USDM.replace(b'"B":"2.507"', b'"B":"00.507"'),
    BBO_USDM.replace(b'"A":"2.510"', b'"A":"0.510"'),            # plain
    BBO_USDM.replace(b'"b":"61800.20"', b'"b":"6.18e4"'),
    BBO_USDM.replace(b'"b":"61800.20"', b'"b":61800.20'),
    BBO_USDM.replace(b'"b":"61800.20"', b'"b":"-1"'),
    BBO_USDM.replace(b'"b":"61800.20"', b'"b":"1234567890123456789"'),
    BBO_USDM.replace(b'"b":"61800.20"', b'"b":"61800."'),
    BBO_USDM.replace(b'"b":"61800.20"', b'"b":""'),
    BBO_USDM.replace(b'"s":"BTCUSDT"', b'"s":""'),
    BBO_USDM.replace(b'"u":5123107839020', b'"u":"5123107839020"'),
    BBO_USDM.replace(b'"u":5123107839020', b'"u":-5123107839020'),
    BBO_USDM.replace(b',"A":"2.510"', b""),                           # a member missing
    BBO_USDM.replace(b',"E":1723161256314', b""),
    BBO_USDM.replace(b',"T":1723161256313', b""),
    BBO_USDM.replace(b'"T":1723161256313,"E":1723161256314', b'"E":1723161256314,"T":1'),
    BBO_USDM.replace(b'"B":"2.507","a":"61800.30"', b'"a":"61800.30","B":"2.507"'),
    BBO_USDM.replace(b'"u":5123107839020,', b'"u":5123107839020,"x":1,'),
    BBO_USDM.replace(b'"A":"2.510"', b'"A":"2.510","A":"3"'),          # repeated member
    BBO_USDM.replace(b'@bookTicker', b"@trade"),                       # the stream decides
    BBO_USDM.replace(b'"e":"bookTicker"', b'"e":"trade"'),
    BBO_USDM + b" ",
    BBO_USDM[:-1],
    BBO_USDM[:-2] + b"}",
]


@pytest.mark.parametrize("frame", BBO_LAYOUTS + BBO_EDGE_CASES,
                         ids=range(len(BBO_LAYOUTS) + len(BBO_EDGE_CASES)))
def test_bookticker_edge_cases_decode_identically(frame: bytes) -> None:
    check(frame)


def test_bookticker_layouts_are_read_as_literals() -> None:
    """The three bookTicker layouts (wrapped or bare) go through the literal matcher
    (_bn_bbo); a reordered one is still read by the scanner, not by the matcher."""
    for frame in BBO_LAYOUTS:
        dec = Decoder("binance")
        assert dec.decode_frame(frame) == EV_BBO and dec.literal_frames == 1, frame
    dec = Decoder("binance")
    assert dec.decode_frame(BBO_EDGE_CASES[16]) == EV_BBO      # B after a
    assert dec.literal_frames == 0 and dec.fast_frames == 1




def test_scanner_takes_the_compact_layout() -> None:
    assert check(DEPTH)
    assert not check(DEPTH + b" ")
    assert not check(DEPTH.replace(b'"s":"BTCUSDT"', b'"s":"BTC\\u0055SDT"'))


@settings(max_examples=3000, deadline=None)
@given(st.text(alphabet="0123456789.", min_size=1, max_size=24))
def test_level_number_reader_agrees_with_the_exact_parser(text: str) -> None:
    raw = text.encode()
    got = _scan_number(raw + b'"')
    if got is None:
        return  # declined: the exact slow path decides
    mant, dec, used = got
    if used == len(raw):
        assert _parse_number(b'"' + raw + b'"') == (mant, dec)


def _decimal_reference(data: bytes) -> tuple[int, int, int] | None:
    """What the level number reader must return on ``data``: digits, then optionally a
    dot and at least one digit, 1-18 digits in all (leading zeros allowed); (mantissa,
    decimals, bytes used), or None."""
    m = re.match(rb"(\d+)(\.(\d*))?", data)
    if m is None:
        return None
    whole, frac = m.group(1), m.group(3)
    if frac is not None and not frac:
        return None                       # "12." is not a plain number
    digits = whole + (frac or b"")
    if len(digits) > 18:
        return None
    return (int(digits), len(frac or b""), m.end())


@settings(max_examples=4000, deadline=None)
@given(st.text(alphabet="0123456789.", min_size=1, max_size=22),
       st.sampled_from([b'"', b",", b"x", b"", b"e5", b".5"]))
def test_decimal_reader_matches_a_plain_reading(text: str, tail: bytes) -> None:
    """The number reader (one 16-byte load up to 15 digits, else the byte loop) against a
    plain-Python reading of the same bytes, including where it stops."""
    data = text.encode() + tail
    assert _scan_number(data) == _decimal_reference(data)


def _int_reference(data: bytes) -> tuple[int, int] | None:
    """What the integer reader must return: a JSON integer of 1-18 digits (optional
    '-', no leading zero) not followed by a fraction or an exponent, else None."""
    neg = data[:1] == b"-"
    body = data[1:] if neg else data
    n = 0
    while n < len(body) and 48 <= body[n] <= 57:
        n += 1
    if n == 0 or n > 18 or (body[0] == 48 and n > 1) or body[n:n + 1] in (b".", b"e", b"E"):
        return None
    v = int(body[:n])
    return (-v if neg else v, n + neg)


@settings(max_examples=400, deadline=None)
@given(st.one_of(
    st.integers(0, 10**18 - 1).map(lambda v: str(v).encode()),
    st.integers(-(10**18) + 1, -1).map(lambda v: str(v).encode()),
    st.text("0123456789", min_size=1, max_size=20).map(str.encode),
    st.binary(max_size=24),
), st.sampled_from([b"", b",", b"}", b".5", b"e3", b"E", b'"', b"x", b"0" * 8]))
def test_integer_reader_agrees_with_a_plain_reading(number: bytes, tail: bytes) -> None:
    """The scanners' integer reader (16-byte SIMD read for up to 15 digits in AVX2
    builds, SWAR otherwise, the byte loop beyond) against a plain-Python reading."""
    data = number + tail
    assert _scan_int(data) == _int_reference(data), data


def test_level_number_reader_takes_real_shapes() -> None:
    for text, want in [(b"61496.50", (6149650, 2)), (b"0.014", (14, 3)),
                       (b"61737.63000000", (6173763000000, 8)), (b"1001", (1001, 0))]:
        assert _scan_number(text + b'"') == (*want, len(text))
        assert _parse_number(b'"' + text + b'"') == want
    assert _scan_number(b'1234567890.123456789"') is None  # 19 digits
    assert _scan_number(b'1."') is None


@settings(max_examples=150, deadline=None)
@given(st.data())
def test_levels_of_repeating_shapes_decode_identically(data: st.DataObject) -> None:
    """The decoder reads a level of a shape it has seen by comparing it with that shape
    (levels.h) and every other level byte by byte, learning its shape.  Frames whose
    numbers come in a few shapes, with now and then one byte changed (a letter, a second
    dot, a minus sign...), decoded by one decoder in a row, must give exactly what the
    byte loop alone gives under simdjson's walk."""
    # mostly shapes the reader can learn (1-6 integer, no or 1-4 fraction digits), some
    # it cannot (no integer digit, a bare dot, more than 8 digits)
    shape = st.one_of(st.tuples(st.integers(1, 6), st.sampled_from([-1, 1, 2, 3, 4])),
                      st.tuples(st.integers(0, 10), st.integers(-1, 9)))
    shapes = data.draw(st.lists(shape, min_size=1, max_size=3))

    def num() -> str:
        ni, nf = data.draw(st.sampled_from(shapes))
        n = ni + max(nf, 0)
        digits = data.draw(st.text("0123456789", min_size=n, max_size=n))
        text = digits[:ni] + ("." + digits[ni:] if nf >= 0 else "")
        if data.draw(st.integers(0, 15)) == 0:
            at = data.draw(st.integers(0, len(text)))
            text = text[:at] + data.draw(st.sampled_from('x."-e0,] ')) + text[at + 1:]
        return text

    def side() -> bytes:
        k = data.draw(st.integers(0, 40) | st.integers(8, 40))
        return b",".join(b'["%s","%s"]' % (num().encode(), num().encode()) for _ in range(k))

    fast, slow = Decoder("binance"), Decoder("binance")
    slow.fast = False
    slow.shapes = False             # the byte loop alone (simdjson's walk uses it too)
    for _ in range(3):
        frame = DEPTH.replace(b'[["58710.20","0.014"],["61496.50","0.000"]]',
                              b"[" + side() + b"]").replace(b'[["61800.30","1.5"]]',
                                                            b"[" + side() + b"]")
        rf, rs = fast.decode_frame(frame), slow.decode_frame(frame)
        assert (rf, fast.event() if rf >= 0 else None, fast.error(), texts(fast, rf)) == (
            rs, slow.event() if rs >= 0 else None, slow.error(), texts(slow, rs)), frame[:300]


def test_every_learnable_shape_reads_like_the_byte_loop() -> None:
    """Every shape the reader can learn (1-8 integer digits, none or some fraction
    digits, 8 digits at most), as price and as size: frames of levels of one shape pair
    with random digits decode exactly as with the byte loop alone, and in an AVX2 build
    all bid levels after each frame's first are read by their shape."""
    rnd = random.Random(77)
    shapes = [(i, f) for i in range(1, 9) for f in [0, *range(1, 9 - i)]]

    def num(i: int, f: int) -> bytes:
        d = "".join(rnd.choice("0123456789") for _ in range(i + f))
        return (d[:i] + ("." + d[i:] if f else "")).encode()

    fast, slow = Decoder("binance"), Decoder("binance")
    slow.fast = False
    slow.shapes = False
    n = 0
    for ps in shapes:
        for qs in shapes:
            levels = [(num(*ps), num(*qs)) for _ in range(3)]
            frame = _bids_frame(levels)
            rf, rs = fast.decode_frame(frame), slow.decode_frame(frame)
            assert rf == rs == 1, frame
            assert fast.event() == slow.event() and texts(fast, rf) == texts(slow, rs), frame
            n += 3
    # at least the second and third bid level of every frame (the asks' one level, of
    # a fixed shape, competes with the bids' shape for the two slots)
    if SHAPE_LEVELS:
        assert 2 * len(shapes) ** 2 <= fast.shape_levels <= n + len(shapes) ** 2
    else:
        assert fast.shape_levels == 0


def _bids_frame(levels: list[tuple[bytes, bytes]]) -> bytes:
    body = b",".join(b'["%s","%s"]' % lv for lv in levels)
    return DEPTH.replace(b'[["58710.20","0.014"],["61496.50","0.000"]]', b"[" + body + b"]")


def _want(levels: list[tuple[bytes, bytes]]) -> list[tuple[int, int, int, int]]:
    return [(int(p.replace(b".", b"")), len(p.split(b".")[1]), int(q.replace(b".", b"")),
             len(q.split(b".")[1])) for p, q in levels]


USUAL = [(b"61789.70", b"0.123"), (b"61789.80", b"0.000"), (b"61790.10", b"2.500")]
OTHER = [(b"61791.00", b"12.345"), (b"61791.10", b"10.000")]


@pytest.mark.parametrize("levels", [
    # the usual shape with now and then another: both kept, neither relearnt
    (USUAL * 3 + OTHER[:1] + USUAL * 2 + OTHER[1:]) * 4,
    # a run of the other shape long enough to swap the two, then the usual again
    USUAL * 4 + OTHER * 5 + USUAL * 4 + OTHER + USUAL,
], ids=["now-and-then", "runs"])
def test_level_shapes_are_learnt_and_both_kept(levels: list[tuple[bytes, bytes]]) -> None:
    """Levels of two shapes: every value and text right, and (in an AVX2 build) all but
    the first level of each shape read by its shape, whatever the order."""
    frame = _bids_frame(levels)
    assert check(frame)
    dec = Decoder("binance")
    assert dec.decode_frame(frame) >= 0
    assert [b[:4] for b in dec.event()["bids"]] == _want(levels)
    assert dec.level_texts()[0] == levels
    # the bids' first level of each shape is read byte by byte, as is the asks' one
    # level, of a third shape, which takes a third slot
    n = len(levels)
    assert dec.shape_levels == (n - 2 if SHAPE_LEVELS else 0)
    # the shapes outlive the frame: the next time every level is read by its shape
    assert dec.decode_frame(frame) >= 0
    assert dec.shape_levels == ((n - 2) + (n + 1) if SHAPE_LEVELS else 0)


def test_a_stream_of_many_level_shapes_learns_each_once() -> None:
    """Six shape pairs interleaved at random, as in a real stream's prices and sizes
    (``ddddd.dd``/``dddd.dd`` with ``d.ddd``/``dd.ddd``/``ddd.ddd``): each is read byte
    by byte once, then always by its shape, and the values are the byte loop's."""
    rnd = random.Random(5)
    pairs = [((5, 2), (1, 3)), ((5, 2), (2, 3)), ((4, 2), (1, 3)), ((4, 2), (3, 3)),
             ((5, 2), (3, 3)), ((3, 2), (2, 3))]

    def num(i: int, f: int) -> bytes:
        d = "".join(rnd.choice("123456789") for _ in range(i + f))
        return (d[:i] + "." + d[i:]).encode()

    fast, slow = Decoder("binance"), Decoder("binance")
    slow.fast = False
    slow.shapes = False
    total = 0
    for _ in range(20):
        levels = [(num(*p), num(*q)) for p, q in (rnd.choice(pairs) for _ in range(40))]
        frame = _bids_frame(levels)
        rf, rs = fast.decode_frame(frame), slow.decode_frame(frame)
        assert rf == rs == 1, frame
        assert fast.event() == slow.event() and texts(fast, rf) == texts(slow, rs)
        total += len(levels) + 1        # and the asks' one level
    # the asks' level is a seventh shape; every shape is read byte by byte once
    if SHAPE_LEVELS:
        assert fast.shape_levels == total - 7
    else:
        assert fast.shape_levels == 0


# ------------------------------------------------------------------------------ OKX


@pytest.mark.corpus
def test_real_okx_messages_decode_identically_and_books_take_the_scanner() -> None:
    cap = need("okx")
    bodies = [f.body for f in frames(cap.path)]
    took = [check(b, "okx") for b in bodies]

    def is_book(b: bytes) -> bool:
        return b'"channel":"books"' in b[:60] and b'"action"' in b
    books = [t for b, t in zip(bodies, took, strict=True) if is_book(b)]
    assert len(books) == 290
    assert all(books), f"{books.count(False)} OKX book frames fell back to simdjson"
    # trades, tickers and subscription events are left to simdjson
    assert not any(t for b, t in zip(bodies, took, strict=True) if not is_book(b))


@pytest.mark.corpus
def test_mutated_okx_messages_decode_identically() -> None:
    cap = need("okx")
    bodies = [f.body for f in frames(cap.path)]
    rnd = random.Random(4242)
    for body in rnd.sample(bodies, min(300, len(bodies))):
        for _ in range(6):
            _, mutated = mutate(rnd, body)
            check(mutated, "okx")


OKX_BOOK = (
    b'{"arg":{"channel":"books","instId":"BTC-USDT"},"action":"update","data":[{"asks":'
    b'[["41006.8","0.6","0","3"],["41007.5","0","0","0"]],"bids":[["41006.3","0.04","0","1"]],'
    b'"ts":"1640995200104","checksum":-1250392421,"prevSeqId":123456,"seqId":123457}]}'
)

OKX_EDGE_CASES = [
    OKX_BOOK,
    OKX_BOOK.replace(b'"action":"update"', b'"action":"snapshot"'),
    OKX_BOOK.replace(b'"action":"update",', b""),
    OKX_BOOK.replace(b'"action":"update"', b'"action":"replace"'),
    OKX_BOOK.replace(b'"channel":"books"', b'"channel":"books5"').replace(
        b'"action":"update",', b""),
    OKX_BOOK.replace(b'"channel":"books"', b'"channel":"bbo-tbt"'),
    OKX_BOOK.replace(b'"channel":"books"', b'"channel":"books-l2-tbt"'),
    OKX_BOOK.replace(b'"channel":"books"', b'"channel":"trades"'),
    OKX_BOOK.replace(b'"channel":"books"', b'"channel":"tickers"'),
    OKX_BOOK.replace(b'"instId":"BTC-USDT"', b'"instId":""'),
    OKX_BOOK.replace(b',"instId":"BTC-USDT"', b""),
    OKX_BOOK.replace(b'"ts":"1640995200104"', b'"ts":"01640995200104"'),
    OKX_BOOK.replace(b'"ts":"1640995200104"', b'"ts":1640995200104'),
    OKX_BOOK.replace(b'"ts":"1640995200104"', b'"ts":"16409.95"'),
    OKX_BOOK.replace(b'"ts":"1640995200104"', b'"ts":""'),
    OKX_BOOK.replace(b'"checksum":-1250392421', b'"checksum":0'),
    OKX_BOOK.replace(b'"checksum":-1250392421', b'"checksum":4294967296'),
    OKX_BOOK.replace(b'"checksum":-1250392421', b'"checksum":"-1250392421"'),
    OKX_BOOK.replace(b'"checksum":-1250392421', b'"checksum":-1.5'),
    OKX_BOOK.replace(b'"prevSeqId":123456', b'"prevSeqId":-1'),
    OKX_BOOK.replace(b'"prevSeqId":123456,', b""),
    OKX_BOOK.replace(b'"seqId":123457', b'"seqId":0123457'),
    OKX_BOOK.replace(b'"data":[{', b'"data":[{"instId":"BTC-USDT",'),
    OKX_BOOK.replace(b'}]}', b'},{"asks":[],"bids":[]}]}'),
    OKX_BOOK.replace(b'"data":[{', b'"data": [{'),
    OKX_BOOK.replace(b'["41006.3","0.04","0","1"]', b'["4.1e4","0.04","0","1"]'),
    OKX_BOOK.replace(b'["41006.3","0.04","0","1"]', b'[41006.3,"0.04","0","1"]'),
    OKX_BOOK.replace(b'"bids":[["41006.3","0.04","0","1"]]', b'"bids":[]'),
    OKX_BOOK.replace(b'"asks":', b'"asks":[],"asks":'),
    OKX_BOOK + b" ",
    OKX_BOOK[:-1],
    OKX_BOOK.replace(b'{"arg":', b'{"event":"error","arg":'),
    b'{"arg":{"channel":"books","instId":"BTC-USDT"},"action":"update","data":[]}',
    b'{"event":"subscribe","arg":{"channel":"books","instId":"BTC-USDT"}}',
    b'{"data":[{"asks":[],"bids":[],"seqId":1}],"action":"snapshot",'
    b'"arg":{"instId":"BTC-USDT","channel":"books"}}',
    b"pong",
]


@pytest.mark.parametrize("frame", OKX_EDGE_CASES, ids=range(len(OKX_EDGE_CASES)))
def test_okx_edge_cases_decode_identically(frame: bytes) -> None:
    check(frame, "okx")


def test_okx_scanner_takes_the_compact_layout() -> None:
    assert check(OKX_BOOK, "okx")
    assert check(OKX_EDGE_CASES[-2], "okx")          # keys in another order
    assert not check(OKX_BOOK + b" ", "okx")
    assert not check(OKX_BOOK.replace(b'"channel":"books"', b'"channel":"trades"'), "okx")
