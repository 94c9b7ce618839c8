"""Instrument lists: the Cython parser (``xcol._fast.meta``) against the plain-Python
reference (``tests/meta_reference.py``) on the real metadata captures and on generated
bodies; malformed bodies give :class:`MetadataError`, never a crash."""

from __future__ import annotations

import contextlib
import json
import random
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from meta_reference import Raw, exact, ref_parse

from xcol._fast import meta as fast
from xcol.exchanges.meta import (
    Instruments,
    MetadataError,
    instrument_urls,
    parse_binance_exchange_info,
    parse_deribit_instruments,
    parse_instruments,
    parse_okx_instruments,
    read_metadata_file,
)

METADATA_FILES = ["BINANCE.0", "BINANCE_FUTURES.0", "OKX.0", "DERIBIT.0"]
PARSERS = {"binance": parse_binance_exchange_info, "okx": parse_okx_instruments,
           "deribit": parse_deribit_instruments, "auto": parse_instruments}


def bodies(path: Path) -> list[tuple[str, bytes]]:
    """``(url, body)`` of every instrument-list line of a cryptofeed ``X.0`` capture."""
    out = []
    for raw in path.read_bytes().splitlines():
        head, sep, body = raw.partition(b": ")
        url, arrow, _ts = head.partition(b" -> ")
        if sep and arrow and url.startswith(b"https://"):
            out.append((url.decode(), body))
    return out


def both(body: str | bytes, venue: str = "auto") -> tuple[Any, Any]:
    """The Cython and the reference outcome: ``("ok", venue, {sym: exact}, skipped)`` or
    ``("error",)``."""
    try:
        got = PARSERS[venue](body)
        c: tuple[Any, ...] = ("ok", got.venue, {s: exact(m) for s, m in got.items()},
                              got.skipped)
    except MetadataError:
        c = ("error",)
    try:
        v, ref, skipped = ref_parse(body, venue)
        r: tuple[Any, ...] = ("ok", v, {s: exact(m) for s, m in ref.items()}, skipped)
    except MetadataError:
        r = ("error",)
    return c, r


# ------------------------------------------------------------------------- corpus


@pytest.mark.corpus
@pytest.mark.parametrize("name", METADATA_FILES)
def test_corpus_bodies_equal_reference(corpus: Path, name: str) -> None:
    path = corpus / "cryptofeed" / name
    seen = 0
    for url, body in bodies(path):
        c, r = both(body)
        assert c[0] == "ok", url
        assert c == r, url
        seen += len(c[2])
    assert seen > 100


@pytest.mark.corpus
@pytest.mark.parametrize("name", METADATA_FILES)
def test_read_metadata_file_equals_reference(corpus: Path, name: str) -> None:
    path = corpus / "cryptofeed" / name
    got = read_metadata_file(path)
    want: dict[str, Any] = {}
    for _url, body in bodies(path):
        want.update({s: exact(m) for s, m in ref_parse(body)[1].items()})
    assert {s: exact(m) for s, m in got.items()} == want
    assert isinstance(got, Instruments) and got.skipped == 0


@pytest.mark.corpus
def test_corpus_known_instruments(corpus: Path) -> None:
    cf = corpus / "cryptofeed"
    okx = read_metadata_file(cf / "OKX.0")
    swap = okx["BTC-USD-SWAP"]
    assert (str(swap.tick), str(swap.lot), str(swap.contract_value)) == ("0.1", "1", "100")
    assert f"{okx['BTC-USDT'].lot:f}" == "0.00000001" and okx["BTC-USDT"].contract_value is None
    der = read_metadata_file(cf / "DERIBIT.0")
    opt = der["BTC-24SEP21-40000-P"]
    assert (str(opt.tick), str(opt.lot), str(opt.contract_value)) == ("0.0005", "0.1", "1.0")
    usdm = read_metadata_file(cf / "BINANCE_FUTURES.0")["BTCUSDT"]
    assert (str(usdm.tick), str(usdm.lot), usdm.price_scale, usdm.qty_scale) == (
        "0.01", "0.001", 8, 8)
    spot = read_metadata_file(cf / "BINANCE.0")["ETHBTC"]
    assert f"{spot.tick:f}" == "0.00000100" and (spot.price_scale, spot.qty_scale) == (8, 8)


@pytest.mark.corpus
def test_truncated_corpus_bodies_are_errors(corpus: Path) -> None:
    """Every cut of a real body (at 300 random points and near both ends) is refused."""
    rnd = random.Random(7)
    for name in METADATA_FILES:
        _url, body = bodies(corpus / "cryptofeed" / name)[0]
        cuts = {0, 1, 2, len(body) - 1, len(body) - 2}
        cuts |= {rnd.randrange(1, len(body)) for _ in range(75)}
        for cut in sorted(cuts):
            with pytest.raises(MetadataError):
                parse_instruments(body[:cut])


# ------------------------------------------------------------------------- units


def test_decimals_as_written() -> None:
    assert fast._decimals(b"0.10") == 2
    assert fast._decimals(b"0.01000000") == 8
    assert fast._decimals(b"1") == 0
    assert fast._decimals(b"5e-05") == 5
    assert fast._decimals(b"1.5E+1") == 0
    assert fast._decimals(b"1.50e1") == 1
    assert fast._decimals(b"1e-999999999999") == 100_000_000   # saturates
    for bad in (b"", b".5", b"1.", b"1e", b"1e+", b"0x10", b"1 ", b"NaN", b"1,5"):
        with pytest.raises(ValueError):
            fast._decimals(bad)
    with pytest.raises(ValueError, match="negative"):
        fast._decimals(b"-0.1")


def test_scales_floor_and_cap() -> None:
    body = {"code": "0", "data": [
        {"instId": "A-B", "tickSz": "0.1", "lotSz": "1"},
        {"instId": "C-D", "tickSz": "0.0000000001", "lotSz": "0.000000000000001"},
        {"instId": "E-F", "tickSz": "0.10000000000", "lotSz": "10", "ctVal": "0.01"}]}
    got = parse_okx_instruments(json.dumps(body))
    assert [(m.price_scale, m.qty_scale) for m in got.values()] == [(8, 8), (10, 12), (11, 8)]
    assert str(got["E-F"].tick) == "0.10000000000" and str(got["E-F"].contract_value) == "0.01"


def test_deribit_numbers_read_exactly() -> None:
    body = (b'{"jsonrpc":"2.0","result":[{"instrument_name":"X-PERPETUAL","tick_size":5e-05,'
            b'"min_trade_amount":1E-10,"contract_size":10.0},'
            b'{"instrument_name":"Y","tick_size":0.0005 ,"min_trade_amount":1}]}')
    got = parse_deribit_instruments(body)
    x = got["X-PERPETUAL"]
    assert (x.price_scale, x.qty_scale, str(x.tick), str(x.lot)) == (8, 10, "0.00005", "1E-10")
    assert x.tick.as_tuple().exponent == -5 and str(x.contract_value) == "10.0"
    assert (got["Y"].price_scale, str(got["Y"].tick)) == (8, "0.0005")


def test_binance_filters_in_any_order_and_skips_counted() -> None:
    body = {"symbols": [
        {"filters": [{"tickSize": "0.001000000000", "filterType": "PRICE_FILTER"},
                     {"stepSize": "0.1", "filterType": "LOT_SIZE", "minQty": "0.1"}],
         "symbol": "AB", "contractSize": 100},
        {"symbol": "NOLOT", "filters": [{"filterType": "PRICE_FILTER", "tickSize": "1"}]},
        {"symbol": "NOFILTERS"},
        {"filters": []},
        {"symbol": "EMPTYTICK", "filters": [{"filterType": "PRICE_FILTER", "tickSize": ""},
                                            {"filterType": "LOT_SIZE", "stepSize": "1"}]}]}
    got = parse_binance_exchange_info(json.dumps(body).encode())
    assert list(got) == ["AB"] and got.skipped == 4 and got.venue == "binance"
    assert (got["AB"].price_scale, got["AB"].qty_scale, str(got["AB"].contract_value)) == (
        12, 8, "100")


def test_error_answers_name_the_problem() -> None:
    with pytest.raises(MetadataError, match="code='51001'.*Instrument ID does not exist"):
        parse_okx_instruments('{"code":"51001","msg":"Instrument ID does not exist","data":[]}')
    with pytest.raises(MetadataError, match="Deribit.*code=10044.*bad currency"):
        parse_deribit_instruments('{"jsonrpc":"2.0","error":{"code":10044,'
                                  '"message":"bad currency"},"testnet":false}')
    with pytest.raises(MetadataError, match="code=-1121.*Invalid symbol"):
        parse_binance_exchange_info('{"code":-1121,"msg":"Invalid symbol."}')
    with pytest.raises(MetadataError, match="error answer"):
        parse_instruments('{"code":-1121,"msg":"Invalid symbol."}')
    with pytest.raises(MetadataError, match="Binance exchangeInfo: no 'symbols' list"):
        parse_binance_exchange_info('{"symbols": 3, "data": []}')


@pytest.mark.parametrize("body,match", [
    (b"", "not valid JSON"),
    (b"not json", "not valid JSON"),
    (b"[1, 2]", "not a JSON object"),
    (b'"text"', "not a JSON object"),
    (b'{"symbols": [] } x', "not valid JSON"),
    (b'{"symbols": 3}', "not a Binance exchangeInfo"),
    (b'{"symbols": [1]}', r"symbols\[0\] is 1, not an object"),
    (b'{"symbols": [{"symbol": 7, "filters": []}]}', "symbol is 7, not a string"),
    (b'{"symbols": [{"symbol": "A", "filters": {}}]}', "A: filters is an object"),
    (b'{"symbols": [{"symbol": "A", "filters": [{"filterType": "PRICE_FILTER", '
     b'"tickSize": true}, {"filterType": "LOT_SIZE", "stepSize": "1"}]}]}',
     "A: PRICE_FILTER tickSize is true, not a number"),
    (b'{"data": [{"instId": "A", "tickSz": "abc", "lotSz": "1"}]}',
     r"data\[0\] A: tickSz 'abc' is not a decimal number"),
    (b'{"data": [{"instId": "A", "tickSz": "0.1", "lotSz": "-1"}]}', "lotSz '-1' is negative"),
    (b'{"data": [{"instId": "A", "tickSz": "0.1", "lotSz": "1", "ctVal": [1]}]}',
     "ctVal is an array"),
    (b'{"result": [{"instrument_name": "A", "tick_size": -0.5, "min_trade_amount": 1}]}',
     "tick_size -0.5 is negative"),
    (b'{"result": [{"instrument_name": "A", "tick_size": 0.5, "min_trade_amount": 1}',
     "not valid JSON"),
    (b'{"result": [{"instrument_name": "A", "tick_size": 00, "min_trade_amount": 1}]}',
     "tick_size 00 is not a decimal number"),
    (b'{"x": 1}', "not a Binance exchangeInfo, OKX instruments or Deribit"),
    (b'\xff\xfe{}', "not valid JSON"),
])
def test_malformed_bodies(body: bytes, match: str) -> None:
    with pytest.raises(MetadataError, match=match):
        parse_instruments(body)
    assert both(body) == (("error",), ("error",))


def test_input_types() -> None:
    body = '{"data":[{"instId":"BTC-USDT","tickSz":"0.1","lotSz":"0.00000001"}]}'
    for b in (body, body.encode(), bytearray(body.encode()), memoryview(body.encode())):
        assert parse_okx_instruments(b)["BTC-USDT"].price_scale == 8
    with pytest.raises(ValueError, match="unknown venue"):
        fast.parse_body(body, "kraken")


def test_instrument_urls() -> None:
    spot = instrument_urls("binance-spot", "https://api.binance.com/", ["ETHUSDT", "BTCUSDT"])
    assert spot == [("https://api.binance.com/api/v3/exchangeInfo?symbols="
                     "%5B%22BTCUSDT%22%2C%22ETHUSDT%22%5D", "binance")]
    assert instrument_urls("binance-coinm", "http://h", ["BTCUSD_PERP"]) == [
        ("http://h/dapi/v1/exchangeInfo", "binance")]
    okx = [u for u, _ in instrument_urls("okx", "http://h", [
        "BTC-USDT", "ETH-USDT", "BTC-USDT-SWAP", "BTC-USD-220520", "BTC-USD-220514-22000-C"])]
    assert okx == ["http://h/api/v5/public/instruments?instType=FUTURES",
                   "http://h/api/v5/public/instruments?instType=OPTION&instFamily=BTC-USD",
                   "http://h/api/v5/public/instruments?instType=SPOT",
                   "http://h/api/v5/public/instruments?instType=SWAP"]
    assert instrument_urls("deribit", "http://h", ["BTC-PERPETUAL"]) == [
        ("http://h/api/v2/public/get_instruments?currency=any&expired=false", "deribit")]
    with pytest.raises(ValueError):
        instrument_urls("kraken", "http://h", ["X"])


# ------------------------------------------------------------------------- property

_ABSENT = object()


def dump(v: Any) -> str:
    """JSON text of ``v`` where :class:`Raw` numbers are written exactly as given."""
    if isinstance(v, Raw):
        return v.text
    if isinstance(v, dict):
        return "{" + ",".join(f"{json.dumps(k)}:{dump(x)}" for k, x in v.items()) + "}"
    if isinstance(v, list):
        return "[" + ",".join(dump(x) for x in v) + "]"
    return json.dumps(v)


digits = st.text("0123456789", min_size=1, max_size=6)
fraction = st.text("0123456789", min_size=1, max_size=16)   # trailing zeros included
exponent = st.builds(lambda e, s, n: f"{e}{s}{n}", st.sampled_from("eE"),
                     st.sampled_from(["", "+", "-"]), st.integers(0, 30))
plain_text = st.builds(lambda i, f: i + ("." + f if f else ""), digits,
                       st.one_of(st.just(""), fraction))
number_text = st.builds(lambda p, e: p + e, plain_text, st.one_of(st.just(""), exponent))
json_number = st.builds(lambda i, f, e: str(i) + ("." + f if f else "") + e,
                        st.one_of(st.integers(0, 9), st.integers(0, 10**6)),
                        st.one_of(st.just(""), fraction), st.one_of(st.just(""), exponent))
bad_value = st.sampled_from([True, False, [], {}, "abc", "-1", "1.", ".5", "1e", "0x1",
                             Raw("-0.5"), " 1", "1 "])
missing_value = st.sampled_from([_ABSENT, None, ""])


def pick(good: st.SearchStrategy[Any], missing: st.SearchStrategy[Any],
         bad: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Mostly ``good``; missing about 1 in 13, bad about 1 in 40 (so that most bodies
    parse and most rows count)."""
    return st.integers(0, 39).flatmap(
        lambda r: good if r < 34 else missing if r < 39 else bad)


def field_value(kind: str) -> st.SearchStrategy[Any]:
    """A tick/lot: strings (Deribit: bare JSON numbers), sometimes missing or bad."""
    good = (st.builds(Raw, json_number) if kind == "deribit"
            else st.one_of(plain_text, number_text))
    return pick(good, missing_value, bad_value)


symbols = st.text("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_", min_size=1, max_size=8)
symbol_value = pick(symbols, missing_value, st.sampled_from([7, True, Raw("1.5")]))


def put(row: dict[str, Any], key: str, v: Any) -> None:
    if v is not _ABSENT:
        row[key] = v


@st.composite
def plain_row(draw: st.DrawFn, kind: str) -> Any:
    if draw(st.integers(0, 150)) == 0:
        return draw(st.sampled_from([1, "x", None, [], Raw("2.5")]))
    keys = (("instId", "tickSz", "lotSz", "ctVal") if kind == "okx" else
            ("instrument_name", "tick_size", "min_trade_amount", "contract_size"))
    row: dict[str, Any] = {"other": draw(st.sampled_from(["", "x", Raw("1"), None]))}
    put(row, keys[0], draw(symbol_value))
    put(row, keys[1], draw(field_value(kind)))
    put(row, keys[2], draw(field_value(kind)))
    put(row, keys[3], draw(st.one_of(missing_value, field_value(kind))))
    items = list(row.items())
    draw(st.randoms()).shuffle(items)
    return dict(items)


@st.composite
def binance_row(draw: st.DrawFn) -> Any:
    if draw(st.integers(0, 150)) == 0:
        return draw(st.sampled_from([1, "x", None, []]))
    row: dict[str, Any] = {"status": "TRADING"}
    put(row, "symbol", draw(symbol_value))
    filters: list[Any] = []
    for ftype, key in (("PRICE_FILTER", "tickSize"), ("LOT_SIZE", "stepSize"),
                       ("MIN_NOTIONAL", "minNotional")):
        if draw(st.integers(0, 9)) == 0:
            continue
        f: dict[str, Any] = {"filterType": ftype}
        put(f, key, draw(field_value("binance")))
        f["minPrice"] = "0.00000100"
        items = list(f.items())
        draw(st.randoms()).shuffle(items)
        filters.append(dict(items))
    if draw(st.integers(0, 15)) == 0:
        filters.append(draw(st.sampled_from([1, "x", None])))
    draw(st.randoms()).shuffle(filters)
    put(row, "filters", draw(st.sampled_from([filters] * 40 + [_ABSENT, None, "", {}, "x"])))
    put(row, "contractSize", draw(st.one_of(missing_value, st.integers(1, 100).map(
        lambda n: Raw(str(n))), field_value("binance"))))
    return row


@st.composite
def body(draw: st.DrawFn) -> tuple[str, str]:
    kind = draw(st.sampled_from(["binance", "okx", "deribit"]))
    n = draw(st.integers(0, 8))
    if kind == "binance":
        rows = [draw(binance_row()) for _ in range(n)]
        obj: dict[str, Any] = {"timezone": "UTC", "serverTime": Raw("1"), "symbols": rows}
    elif kind == "okx":
        rows = [draw(plain_row("okx")) for _ in range(n)]
        obj = {"code": draw(st.sampled_from(["0"] * 8 + [Raw("0"), "51001", Raw("5"), None])),
               "msg": "", "data": rows}
    else:
        rows = [draw(plain_row("deribit")) for _ in range(n)]
        obj = {"jsonrpc": "2.0", "result": rows}
        if draw(st.integers(0, 10)) == 0:
            obj["error"] = {"code": Raw("10044"), "message": "x"}
    items = list(obj.items())
    draw(st.randoms()).shuffle(items)
    return kind, dump(dict(items))


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body())
def test_generated_bodies_equal_reference(kb: tuple[str, str]) -> None:
    kind, text = kb
    for venue in (kind, "auto"):
        c, r = both(text, venue)
        assert c == r, text


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_random_bytes_never_crash(data: bytes) -> None:
    with contextlib.suppress(MetadataError):
        parse_instruments(data)


@settings(max_examples=300, deadline=None)
@given(body(), st.data())
def test_mutated_bodies_never_crash(kb: tuple[str, str], data: st.DataObject) -> None:
    text = kb[1].encode()
    i = data.draw(st.integers(0, max(0, len(text) - 1)))
    b = data.draw(st.integers(0, 255))
    mutated = text[:i] + bytes([b]) + text[i + 1:]
    for m in (mutated, text[:i]):
        with contextlib.suppress(MetadataError):
            parse_instruments(m)
