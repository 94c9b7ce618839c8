"""Bad input never raises: it is refused with code -1, counted by kind, explained.

Each case feeds one bad frame to a fresh engine that already holds a synced
book, then checks: the return code, which ``counters()["errors"]`` entry
moved (and only that one), that ``last_error()`` names the field, that the
book did not change, and that the next good frame is applied as usual.
"""

from __future__ import annotations

from typing import Any

import pytest

from xcol._fast.decode import Decoder
from xcol._fast.engine import Engine

ERROR_KINDS = ("json", "shape", "number", "unknown_message", "too_large", "no_memory")

# A synced USD-M book: snapshot at 100, then events chained with pu.
SNAP = (b'{"lastUpdateId":100,"E":1,"T":1,"bids":[["61800.20","1.000"]],'
        b'"asks":[["61800.30","2.000"]]}')


def depth(first: int, last: int, prev: int, bids: bytes = b'[["61800.10","0.500"]]',
          asks: bytes = b'[["61800.40","0.700"]]') -> bytes:
    return (
        b'{"stream":"btcusdt@depth@0ms","data":{"e":"depthUpdate","E":1723161256299,'
        b'"T":1723161256298,"s":"BTCUSDT","U":%d,"u":%d,"pu":%d,"b":%s,"a":%s}}'
        % (first, last, prev, bids, asks)
    )


GOOD = depth(101, 105, 100)
NEXT = depth(106, 110, 105, b'[["61800.00","0.100"]]', b"[]")
# What the bad frames are made from: the frame that would come next, had it been good.
BASE = depth(106, 110, 105)


def synced_engine(max_frame: int = 16 * 1024 * 1024) -> Engine:
    e = Engine("binance-usdm", max_frame=max_frame)
    e.add_instrument("BTCUSDT", 2, 3)
    assert e.feed_snapshot("BTCUSDT", SNAP) == 7
    assert e.feed(GOOD) == 0
    return e


def error_counts(e: Engine) -> dict[str, int]:
    errors: dict[str, int] = e.counters()["errors"]
    return errors


def assert_refused(e: Engine, frame: bytes, kind: str, *names: str) -> str:
    """Feed ``frame``: -1, exactly the ``kind`` counter +1, an error naming ``names``."""
    book = e.book("BTCUSDT")
    levels = book.levels_raw()
    before = error_counts(e)
    total = e.errors_total
    code = e.feed(frame)
    after = error_counts(e)
    moved = {k: after[k] - before[k] for k in after if after[k] != before[k]}
    err = e.last_error()
    assert code == -1, f"{frame[:120]!r} gave {code}, expected -1"
    assert moved == {kind: 1}, f"counters moved {moved}, expected {{{kind!r}: 1}} ({err})"
    assert e.errors_total == total + 1
    assert isinstance(err, str) and err, "no readable error"
    for name in names:
        assert name in err, f"error {err!r} does not name {name!r}"
    assert book.levels_raw() == levels, "a refused frame changed the book"
    assert book.synced
    return err


def assert_still_works(e: Engine) -> None:
    assert e.feed(NEXT) == 0, e.last_error()
    assert e.last_error() is None
    assert e.book("BTCUSDT").last_seq == 110
    assert e.book("BTCUSDT").best_bid() == ("61800.20", "1.000")


# ------------------------------------------------------------- broken JSON


@pytest.mark.parametrize(
    "frame",
    [
        b'{"stream":"btcusdt@depth@0ms","data":{"e":"depthUpdate",',
        b'{"stream":"btcusdt@depth@0ms" "data":{}}',
        b'{"stream":"btcusdt@depth@0ms","data":{"e":"depthUpdate","U":1,,}}',
        b"{'stream':'btcusdt@depth@0ms'}",
        b'{"stream":"btcusdt@depth@0ms","data":{"b":[["1","2"]}}',
        b"\x00\x00\x00",
        b"{\xff\xfe}",
        b"   ",
        b"",
    ],
    ids=["unterminated", "missing-comma", "double-comma", "single-quotes", "unbalanced",
         "nul-bytes", "bad-utf8", "blank", "empty"],
)
def test_broken_json_is_a_json_error(frame: bytes) -> None:
    e = synced_engine()
    assert_refused(e, frame, "json")
    assert_still_works(e)


def test_trailing_garbage_after_the_document_is_a_json_error() -> None:
    e = synced_engine()
    assert_refused(e, BASE + b"xx", "json")
    assert_still_works(e)


def test_two_documents_in_one_frame_are_a_json_error() -> None:
    # A frame is one JSON document; two glued together must not count as the first.
    e = synced_engine()
    assert_refused(e, NEXT + NEXT, "json")
    assert_still_works(e)


@pytest.mark.parametrize("venue, frame", [
    ("binance", GOOD),
    ("okx", b'{"arg":{"channel":"books","instId":"BTC-USDT"},"action":"update","data":[{'
            b'"asks":[["30243.5","0","0","0"]],"bids":[["30182.6","452","0","1"]],'
            b'"ts":"1652459225564","checksum":12,"prevSeqId":3,"seqId":4}]}'),
    ("deribit", b'{"jsonrpc":"2.0","method":"subscription","params":{"channel":'
                b'"book.BTC-PERPETUAL.raw","data":{"type":"change","timestamp":1,'
                b'"prev_change_id":1,"instrument_name":"BTC-PERPETUAL","change_id":2,'
                b'"bids":[["change",30250.5,10.0]],"asks":[["delete",1e-05,0.0]]}}}'),
], ids=["binance", "okx", "deribit"])
def test_every_truncation_is_refused(venue: str, frame: bytes) -> None:
    d = Decoder(venue)
    accepted = [n for n in range(len(frame)) if d.decode_frame(frame[:n]) != -1]
    assert accepted == [], f"prefixes of length {accepted[:5]} decoded"
    assert d.decode_frame(frame) >= 0


@pytest.mark.parametrize("venue, frame", [
    ("binance", GOOD),
    ("okx", b'{"arg":{"channel":"books","instId":"BTC-USDT"},"action":"snapshot","data":[{'
            b'"asks":[["30243.5","1","0","1"]],"bids":[],"ts":"1","checksum":0}]}'),
    ("deribit", b'{"jsonrpc":"2.0","method":"heartbeat","params":{"type":"test_request"}}'),
], ids=["binance", "okx", "deribit"])
def test_every_truncation_counts_as_invalid_json(venue: str, frame: bytes) -> None:
    d = Decoder(venue)
    wrong = []
    for n in range(len(frame)):
        assert d.decode_frame(frame[:n]) == -1
        if d.error_code != 1:  # DE_JSON
            wrong.append((n, frame[:n][-20:], d.error()))
    assert wrong == [], f"{len(wrong)} of {len(frame)} prefixes not counted as json: {wrong[:3]}"


def test_every_truncation_of_a_real_depth_message_keeps_the_engine_working() -> None:
    frame = depth(106, 110, 105, b'[["61800.00","0.100"],["61799.90","1.234"]]',
                  b'[["61800.40","0"]]')
    e = synced_engine()
    for n in range(len(frame)):
        before = e.errors_total
        assert e.feed(frame[:n]) == -1
        assert e.errors_total == before + 1
        assert e.last_error()
    assert e.counters()["messages"] == 2 + len(frame)
    assert e.book("BTCUSDT").last_seq == 105
    assert_still_works(e)


# ------------------------------------------------------ missing / mistyped


@pytest.mark.parametrize(
    "frame, names",
    [
        (BASE.replace(b'"U":106,', b""), ["U"]),
        (BASE.replace(b'"u":110,', b""), ["u"]),
        (BASE.replace(b'"s":"BTCUSDT",', b""), ["s"]),
        (BASE.replace(b'"b":[["61800.10","0.500"]],', b""), ["b"]),
        (BASE.replace(b',"a":[["61800.40","0.700"]]', b""), ["a"]),
        (BASE.replace(b'"b":[["61800.10","0.500"]],', b"").replace(
            b',"a":[["61800.40","0.700"]]', b""), ["b"]),
    ],
    ids=["no-U", "no-u", "no-s", "no-b", "no-a", "no-levels"],
)
def test_depth_update_missing_field(frame: bytes, names: list[str]) -> None:
    e = synced_engine()
    assert_refused(e, frame, "shape", *names)
    assert_still_works(e)


@pytest.mark.parametrize(
    "frame, names",
    [
        (BASE.replace(b'"u":110', b'"u":"abc"'), ["u"]),
        (BASE.replace(b'"u":110', b'"u":"105"'), ["u"]),
        (BASE.replace(b'"U":106', b'"U":1.5'), ["U"]),
        (BASE.replace(b'"pu":105', b'"pu":"100"'), ["pu"]),
        (BASE.replace(b'"pu":105', b'"pu":null'), ["pu"]),
        (BASE.replace(b'"E":1723161256299', b'"E":"x"'), ["E"]),
        (BASE.replace(b'[["61800.10","0.500"]]', b'{"61800.10":"0.500"}'), ["b"]),
        (BASE.replace(b'[["61800.10","0.500"]]', b"7"), ["b"]),
        (BASE.replace(b'[["61800.10","0.500"]]', b'"61800.10"'), ["b"]),
        (BASE.replace(b'[["61800.10","0.500"]]', b'["61800.10","0.500"]'), ["level"]),
        (BASE.replace(b'[["61800.10","0.500"]]', b'[["61800.10"]]'), ["size"]),
        (BASE.replace(b'[["61800.10","0.500"]]', b"[[]]"), ["price"]),
        (BASE.replace(b'"s":"BTCUSDT"', b'"s":""'), ["s"]),
        (BASE.replace(b'"s":"BTCUSDT"', b'"s":5'), ["s"]),
        (BASE.replace(b'"data":{', b'"data":[{').replace(b"}}", b"}]}"), ["data"]),
    ],
    ids=["u-word", "u-string", "U-float", "pu-string", "pu-null", "E-string", "b-object",
         "b-number", "b-string", "level-not-array", "level-short", "level-empty", "s-empty",
         "s-number", "data-array"],
)
def test_depth_update_mistyped_field(frame: bytes, names: list[str]) -> None:
    e = synced_engine()
    assert_refused(e, frame, "shape", *names)
    assert_still_works(e)


@pytest.mark.parametrize(
    "frame, names, detail",
    [
        (BASE.replace(b'"61800.10"', b'"6180012345678901234567890.1"'), ["price"], "digits"),
        (BASE.replace(b'"0.500"', b'"0.5000000000000000000000001"'), ["size"], "digits"),
        (BASE.replace(b'"0.500"', b'"1234567890123456789012345"'), ["size"], "digits"),
        (BASE.replace(b'"0.500"', b'"-0.500"'), ["size"], "negative"),
        (BASE.replace(b'"61800.40"', b'"-61800.40"'), ["price"], "negative"),
        (BASE.replace(b'"61800.10"', b'"abc"'), ["price"], "not a decimal"),
        (BASE.replace(b'"61800.10"', b'"NaN"'), ["price"], "not a decimal"),
        (BASE.replace(b'"61800.10"', b'"Infinity"'), ["price"], "not a decimal"),
        (BASE.replace(b'"61800.10"', b'"61,800.10"'), ["price"], "not a decimal"),
        (BASE.replace(b'"61800.10"', b'"61800.1.0"'), ["price"], "not a decimal"),
        (BASE.replace(b'"61800.10"', b'""'), ["price"], "not a decimal"),
        (BASE.replace(b'"61800.10"', b'"0x10"'), ["price"], "not a decimal"),
        (BASE.replace(b'"0.500"', b'"1e"'), ["size"], "not a decimal"),
        (BASE.replace(b'"0.500"', b'"1e999"'), ["size"], "too large"),
        (BASE.replace(b'"0.700"', b'{"q":1}'), ["size"], "not a decimal"),
    ],
    ids=["px-25-digits", "qty-25-digits", "qty-25-int-digits", "negative-size",
         "negative-price", "px-word", "px-nan", "px-inf", "px-comma", "px-two-points",
         "px-empty", "px-hex", "qty-bare-exponent", "qty-huge-exponent",
         "size-object"],
)
def test_depth_update_bad_number(frame: bytes, names: list[str], detail: str) -> None:
    e = synced_engine()
    err = assert_refused(e, frame, "number", *names)
    assert detail in err


def test_bad_numbers_elsewhere() -> None:
    e = synced_engine()
    bbo = b'{"stream":"btcusdt@bookTicker","data":{"e":"bookTicker","u":1,"s":"BTCUSDT",' \
        b'"b":"61800.20","B":"2.507","a":"61800.30","A":"2.510","T":1,"E":1}}'
    assert e.feed(bbo) == 10
    assert_refused(e, bbo.replace(b'"61800.20"', b'"x"'), "number", "bookTicker", "price")
    assert_refused(e, bbo.replace(b'"2.510"', b'"-2.510"'), "number", "bookTicker", "size")
    trade = b'{"stream":"btcusdt@trade","data":{"e":"trade","E":1,"T":1,"s":"BTCUSDT",' \
        b'"t":5266583935,"p":"61800.30","q":"0.006","X":"MARKET","m":false}}'
    assert e.feed(trade) == 11
    assert_refused(e, trade.replace(b'"0.006"', b'"1e"'), "number", "trade")
    assert_refused(e, trade.replace(b'"t":5266583935', b'"t":"x"'), "shape", "t")
    assert_refused(e, trade.replace(b'"m":false', b'"m":"no"'), "shape", "m")
    assert_still_works(e)


def test_numbers_that_do_not_fit_the_instrument_scale_are_counted() -> None:
    # Valid text, but 3 price decimals at a 2-decimal instrument: code 6, book untouched.
    e = synced_engine()
    levels = e.book("BTCUSDT").levels_raw()
    assert e.feed(depth(106, 110, 105, b'[["61800.005","1.000"]]', b"[]")) == 6
    assert e.counters()["bad_numbers"] == 1
    assert e.counters()["book"]["bad_number"] == 1
    assert e.book("BTCUSDT").levels_raw() == levels
    assert e.feed(depth(106, 110, 105, b'[["0","1.000"]]', b"[]")) == 6
    assert e.feed(b'{"u":1,"s":"BTCUSDT","b":"1.001","B":"1","a":"2","A":"1"}') == 16
    assert_still_works(e)


# ---------------------------------------------------- unknown / oversize


@pytest.mark.parametrize(
    "frame",
    [b"{}", b'{"foo":1}', b'{"stream":"x"}', b"[1,2,3]", b'"text"', b"42", b"null"],
    ids=["empty-object", "unknown-key", "stream-without-data", "array", "string",
         "number", "null"],
)
def test_valid_json_that_is_no_message(frame: bytes) -> None:
    e = synced_engine()
    before = e.errors_total
    assert e.feed(frame) == -1
    moved = {k: v for k, v in error_counts(e).items() if v}
    assert e.errors_total == before + 1
    assert set(moved) <= {"unknown_message", "shape"}, moved
    assert e.last_error()
    assert_still_works(e)


def test_unknown_message_counter() -> None:
    e = synced_engine()
    assert_refused(e, b'{"foo":1}', "unknown_message", "message")
    assert_still_works(e)


def test_frame_over_max_frame() -> None:
    e = synced_engine(max_frame=1024)
    huge = depth(106, 110, 105, b"[" + b",".join([b'["61800.00","0.100"]'] * 60) + b"]", b"[]")
    assert len(huge) > 1024
    err = assert_refused(e, huge, "too_large", "1024")
    assert "frame" in err
    assert_refused(e, b" " * 5000, "too_large")
    exact = NEXT + b" " * (1024 - len(NEXT))
    assert len(exact) == 1024
    assert e.feed(exact) == 0, e.last_error()


def quote(fields: bytes) -> bytes:
    """A Deribit ``quote.BTC-PERPETUAL`` notification with these data fields."""
    return (b'{"jsonrpc":"2.0","method":"subscription","params":{"channel":'
            b'"quote.BTC-PERPETUAL","data":{' + fields + b"}}}")


@pytest.mark.parametrize(
    "venue, frame, kind, names",
    [
        ("okx", b'{"arg":{"channel":"books","instId":"BTC-USDT"},"data":[{"asks":[],"bids":[]}]}',
         "shape", ["action"]),
        ("okx", b'{"arg":{"channel":"books"},"action":"snapshot","data":[{"asks":[],"bids":[]}]}',
         "shape", ["instId"]),
        ("okx", b'{"arg":{"channel":"books","instId":"BTC-USDT"},"action":"snapshot",'
                b'"data":[{"asks":[["1","x","0","1"]],"bids":[]}]}', "number", ["size"]),
        ("okx", b'{"arg":{"channel":"books","instId":"BTC-USDT"},"action":"snapshot",'
                b'"data":[{"asks":[],"bids":[],"checksum":"12"}]}', "shape", ["checksum"]),
        ("okx", b'{"arg":{"channel":"books","instId":"BTC-USDT"},"action":"snapshot",'
                b'"data":[{"asks":[],"bids":[],"checksum":4294967296}]}', "shape", ["checksum"]),
        ("okx", b'{"arg":{"channel":"books","instId":"BTC-USDT"},"action":"update",'
                b'"data":[{"asks":[],"bids":[],"seqId":"7"}]}', "shape", ["seqId"]),
        ("okx", b'{"arg":{"channel":"books","instId":"BTC-USDT"},"action":"merge",'
                b'"data":[]}', "shape", ["action"]),
        ("okx", b'{"arg":{"channel":"trades","instId":"BTC-USDT"},"data":[{"tradeId":"1",'
                b'"px":"-1","sz":"1","side":"buy","ts":"1"}]}', "number", ["px"]),
        ("okx", b"ping", "json", []),
        ("deribit", b'{"jsonrpc":"2.0","method":"subscription","params":{"channel":'
                    b'"book.BTC-PERPETUAL.raw","data":{"type":"change","instrument_name":'
                    b'"BTC-PERPETUAL","prev_change_id":1,"bids":[],"asks":[]}}}',
         "shape", ["change_id"]),
        ("deribit", b'{"jsonrpc":"2.0","method":"subscription","params":{"channel":'
                    b'"book.BTC-PERPETUAL.raw","data":{"type":"change","instrument_name":'
                    b'"BTC-PERPETUAL","change_id":2,"prev_change_id":1,'
                    b'"bids":[["modify",1.0,2.0]],"asks":[]}}}', "shape", ["action"]),
        ("deribit", b'{"jsonrpc":"2.0","method":"subscription","params":{"channel":'
                    b'"book.BTC-PERPETUAL.raw","data":{"type":"change","instrument_name":'
                    b'"BTC-PERPETUAL","change_id":2,"prev_change_id":1,'
                    b'"bids":[["new","1.0x",2.0]],"asks":[]}}}', "number", ["price"]),
        ("deribit", b'{"jsonrpc":"2.0","method":"subscription","params":{"channel":'
                    b'"book.BTC-PERPETUAL.raw","data":{"type":"change","instrument_name":'
                    b'"BTC-PERPETUAL","change_id":2,"prev_change_id":1,'
                    b'"bids":[["new",1.0,-2.0]],"asks":[]}}}', "number", ["size"]),
        ("deribit", b'{"jsonrpc":"2.0","method":"subscription","params":{"channel":'
                    b'"book.BTC-PERPETUAL.raw","data":{"type":"change","instrument_name":'
                    b'"BTC-PERPETUAL","change_id":2,"prev_change_id":1,'
                    b'"bids":[["new",1.0,2.0]],"asks":[["new",1.0]]}}}', "shape", ["size"]),
        ("deribit", b'{"jsonrpc":"2.0","method":"subscription","params":{"channel":'
                    b'"trades.BTC-PERPETUAL.raw","data":[{"trade_seq":1,"timestamp":1,'
                    b'"instrument_name":"BTC-PERPETUAL","amount":1.0}]}}', "shape", ["price"]),
        ("deribit", b'{"jsonrpc":"2.0","method":"subscription","params":{"channel":'
                    b'"book.BTC-PERPETUAL.raw","data":{"type":"change","instrument_name":'
                    b'"BTC-PERPETUAL","change_id":"2","bids":[],"asks":[]}}}',
         "shape", ["change_id"]),
        ("deribit", quote(b'"instrument_name":"BTC-PERPETUAL","best_bid_price":1,'
                          b'"best_bid_amount":2,"best_ask_price":3,"best_ask_amount":4'),
         "shape", ["timestamp"]),
        ("deribit", quote(b'"timestamp":"1","best_bid_price":1,"best_bid_amount":2,'
                          b'"best_ask_price":3,"best_ask_amount":4'), "shape", ["timestamp"]),
        ("deribit", quote(b'"timestamp":-1,"best_bid_price":1,"best_bid_amount":2,'
                          b'"best_ask_price":3,"best_ask_amount":4'), "shape", ["timestamp"]),
        ("deribit", quote(b'"timestamp":1,"best_bid_price":1,"best_bid_amount":2,'
                          b'"best_ask_price":3'), "shape", ["best_ask_amount"]),
        ("deribit", quote(b'"timestamp":1,"best_bid_price":"1.0x","best_bid_amount":2,'
                          b'"best_ask_price":3,"best_ask_amount":4'),
         "number", ["best_bid_price"]),
        ("deribit", quote(b'"timestamp":1,"best_bid_price":1,"best_bid_amount":2,'
                          b'"best_ask_price":true,"best_ask_amount":4'),
         "number", ["best_ask_price"]),
        ("deribit", quote(b'"timestamp":1,"best_bid_price":1,"best_bid_amount":[2],'
                          b'"best_ask_price":3,"best_ask_amount":4'),
         "number", ["best_bid_amount"]),
        ("deribit", quote(b'"timestamp":1,"best_bid_price":1,"best_bid_amount":2,'
                          b'"best_ask_price":3,"best_ask_amount":-4'),
         "number", ["best_ask_amount"]),
        ("deribit", quote(b'"timestamp":1,"best_bid_price":1,"best_bid_amount":2,'
                          b'"best_ask_price":3,"best_ask_amount":4,"instrument_name":7'),
         "shape", ["instrument_name"]),
        ("deribit", b'{"jsonrpc":"2.0","method":"subscription","params":{"channel":'
                    b'"quote.BTC-PERPETUAL","data":[1]}}', "shape", ["quote data"]),
    ],
    ids=["okx-no-action", "okx-no-instId", "okx-bad-size", "okx-checksum-string",
         "okx-checksum-33-bits", "okx-seqId-string", "okx-unknown-action",
         "okx-negative-trade-px", "okx-ping-text", "deribit-no-change-id",
         "deribit-unknown-action", "deribit-price-string", "deribit-negative-amount",
         "deribit-short-level", "deribit-trade-without-price", "deribit-change-id-string",
         "deribit-quote-no-timestamp", "deribit-quote-timestamp-string",
         "deribit-quote-negative-timestamp", "deribit-quote-no-ask-amount",
         "deribit-quote-price-string", "deribit-quote-price-bool",
         "deribit-quote-amount-array", "deribit-quote-negative-amount",
         "deribit-quote-instrument-number", "deribit-quote-data-array"],
)
def test_other_venues_refuse_bad_frames(venue: str, frame: bytes, kind: str,
                                        names: list[str]) -> None:
    market = {"okx": "okx", "deribit": "deribit"}[venue]
    e = Engine(market)
    for sym in ("BTC-USDT", "BTC-PERPETUAL"):
        e.add_instrument(sym)
    before = error_counts(e)
    assert e.feed(frame) == -1
    after = error_counts(e)
    moved = {k: after[k] - before[k] for k in after if after[k] != before[k]}
    assert moved == {kind: 1}, (moved, e.last_error())
    err = e.last_error()
    assert err
    for name in names:
        assert name in err, err


def test_nothing_raises_on_any_single_byte_frame() -> None:
    for market in ("binance-spot", "binance-usdm", "okx", "deribit"):
        e = Engine(market)
        e.add_instrument("BTCUSDT")
        outcomes: dict[int, int] = {}
        for b in range(256):
            code = e.feed(bytes([b]))
            outcomes[code] = outcomes.get(code, 0) + 1
        assert outcomes == {-1: 256}, (market, outcomes)
        assert e.errors_total == 256


def test_errors_do_not_leak_into_the_next_frame() -> None:
    e = synced_engine()
    assert e.feed(b"{") == -1
    assert e.last_error()
    assert e.feed(NEXT) == 0
    assert e.last_error() is None
    ev: dict[str, Any] = e.last_event()
    assert ev["seq"] == 110 and ev["bids"] == [(6180000, 2, 100, 3, 0)]


@pytest.mark.parametrize("extra", [b',"b":"0"', b',"a":"61800.40"', b',"B":"0.000000001"',
                                   b',"A":"99999999999999"'])
def test_a_depth_update_with_a_quoted_b_a_B_or_A_is_refused(extra: bytes) -> None:
    """A depthUpdate that has, besides its level arrays, a bookTicker-like quoted "b",
    "a", "B" or "A": that value would be written over the first level unchecked, so the
    frame is refused as malformed and the book is untouched."""
    e = synced_engine()
    frame = BASE[:-2] + extra + b"}}"
    assert_refused(e, frame, "shape", "depthUpdate", "level arrays")
    assert_still_works(e)
