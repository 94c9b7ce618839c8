"""Instrument metadata → the fixed-point scales books keep prices and sizes at.

xcol parses every price and size straight into an int64 mantissa at a fixed number of
decimals per instrument (its *scale*).  A scale must never be smaller than the decimals the
exchange actually writes, or a level would not fit and be refused as a bad number.  The
rule used here, for every venue:

* ``price_scale = min(max(decimals(tick), 8), 12)``
* ``qty_scale   = min(max(decimals(lot), 8), 12)``

where ``decimals`` counts the decimal digits of the tick/lot *as written* by the exchange
(``"0.10"`` → 2, ``"0.01000000"`` → 8, ``"1"`` → 0; Deribit sends JSON numbers, whose raw
text is read exactly, so ``0.0005`` → 4 and ``5e-05`` → 5).  The floor of 8 covers
exchanges that write more decimals than the tick needs (Binance pads to 8; USD-M writes
``"0.010"`` quantities for a ``"0.001"`` lot), the cap of 12 keeps a BTC price times
``10**scale`` far inside int64.  An instrument whose tick or lot has more than 12 decimals
keeps scale 12; values it writes beyond that are refused by the engine, loudly.

The bodies are parsed by the Cython module :mod:`xcol._fast.meta` (simdjson On-Demand): the
decimals and scales are counted on the exchange's own text in C, never through a float or a
Decimal.  ``tick``/``lot``/``contract_value`` of :class:`InstrumentMeta` are Decimals built
from that exact text, for the Python API.  The plain-Python reference the Cython parser is
tested against lives in ``tests/meta_reference.py``.

Bad input: a body that is not JSON, an error answer (OKX ``code`` not 0, Deribit ``error``,
Binance ``code``/``msg``), a row that is not an object or a field of the wrong type (a tick
that is not a non-negative decimal number, a symbol that is not a string) raise
:class:`MetadataError` naming the list, the row and the field.  A row that lacks a symbol,
a tick or a lot (absent, null or ``""``) is skipped and counted in
:attr:`Instruments.skipped`.

Sources (:func:`instrument_urls` builds the requests the collector sends at start-up):

* Binance ``exchangeInfo`` (spot ``/api/v3``, USD-M ``/fapi/v1``, COIN-M ``/dapi/v1``):
  ``symbols[].filters``: ``PRICE_FILTER.tickSize`` and ``LOT_SIZE.stepSize``;
  ``contractSize`` (COIN-M) is the contract value.  Spot is asked for the configured
  symbols only (``?symbols=[...]``); the futures lists are small and come whole.
* OKX ``/api/v5/public/instruments?instType=...`` (``&instFamily=...`` for options):
  ``data[]``: ``instId``, ``tickSz``, ``lotSz``, ``ctVal`` (empty for spot).
* Deribit ``/api/v2/public/get_instruments?currency=any&expired=false``: ``result[]``:
  ``instrument_name``, ``tick_size``, ``min_trade_amount`` (the lot), ``contract_size``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from urllib.parse import quote

from xcol._fast import meta as _fast
from xcol._fast.meta import MetadataError
from xcol.net.rest import RestError, get

__all__ = [
    "MAX_SCALE",
    "MIN_SCALE",
    "InstrumentMeta",
    "Instruments",
    "MetadataError",
    "decimals",
    "fetch_instruments",
    "instrument_urls",
    "parse_binance_exchange_info",
    "parse_deribit_instruments",
    "parse_instruments",
    "parse_okx_instruments",
    "read_metadata_file",
    "scale_for",
]

MIN_SCALE = 8
"""Scales are never below this: Binance writes up to 8 decimals whatever the tick."""

MAX_SCALE = 12
"""Scales are capped here so that prices times ``10**scale`` stay far inside int64."""

assert (_fast.MIN_SCALE, _fast.MAX_SCALE) == (MIN_SCALE, MAX_SCALE)

Body = str | bytes | bytearray | memoryview
"""A REST answer as received (or decoded to text)."""


@dataclass(frozen=True, slots=True)
class InstrumentMeta:
    """What xcol needs to know about one instrument before it can keep its book.

    :param symbol: the exchange's own spelling (``BTCUSDT``, ``BTC-USDT``,
        ``BTC-24SEP21-40000-P``).
    :param price_scale: decimals prices are kept at (see the module rule).
    :param qty_scale: decimals sizes are kept at.
    :param tick: price increment, exactly as the exchange wrote it.
    :param lot: size increment (Deribit: ``min_trade_amount``).
    :param contract_value: value of one contract (OKX ``ctVal``, Binance COIN-M
        ``contractSize``, Deribit ``contract_size``), or None for spot.
    """

    symbol: str
    price_scale: int
    qty_scale: int
    tick: Decimal
    lot: Decimal
    contract_value: Decimal | None = None

    @property
    def grid(self) -> int:
        """The tick in units of ``price_scale`` (the book's price grid), or 0 when the
        tick is zero or finer than the scale."""
        units = self.tick.scaleb(self.price_scale)
        return int(units) if units > 0 and units == units.to_integral_value() else 0


class Instruments(dict[str, InstrumentMeta]):
    """Symbol → :class:`InstrumentMeta` of one or more instrument lists.

    :ivar venue: ``"binance"``, ``"okx"`` or ``"deribit"`` (``""`` when empty or mixed).
    :ivar skipped: rows left out because they lack a symbol, a tick or a lot.
    """

    venue: str
    skipped: int

    def __init__(self, venue: str = "", skipped: int = 0) -> None:
        super().__init__()
        self.venue = venue
        self.skipped = skipped

    def merge(self, other: Instruments) -> None:
        """Add ``other``'s instruments (they win on a shared symbol) and skip count."""
        self.update(other)
        self.skipped += other.skipped
        if not self.venue:
            self.venue = other.venue
        elif other.venue and other.venue != self.venue:
            self.venue = ""


def _to_decimal(value: object) -> Decimal:
    """An exact Decimal of a string/number as written; raises MetadataError."""
    if isinstance(value, Decimal):
        d = value
    elif isinstance(value, bool):
        raise MetadataError(f"not a number: {value!r}")
    elif isinstance(value, int):
        d = Decimal(value)
    elif isinstance(value, float):
        d = Decimal(repr(value))  # the shortest text that round-trips, as JSON wrote it
    elif isinstance(value, str):
        try:
            d = Decimal(value.strip())
        except InvalidOperation:
            raise MetadataError(f"not a number: {value!r}") from None
    else:
        raise MetadataError(f"not a number: {value!r}")
    if not d.is_finite() or d < 0:
        raise MetadataError(f"not a finite non-negative number: {value!r}")
    return d


def decimals(value: str | int | float | Decimal) -> int:
    """Number of decimal digits of ``value`` as written (``"0.10"`` → 2, ``"1"`` → 0).

    Strings and Decimals keep their trailing zeros; a float is read through its
    shortest round-trip text.  Raises :class:`MetadataError` if it is not a number.
    """
    exp = _to_decimal(value).as_tuple().exponent
    assert isinstance(exp, int)  # finite numbers have an int exponent
    return max(0, -exp)


def scale_for(step: str | int | float | Decimal) -> int:
    """The scale (decimals kept) for a tick or lot: ``min(max(decimals, 8), 12)``."""
    return min(max(decimals(step), MIN_SCALE), MAX_SCALE)


def _parse(body: Body, venue: str) -> Instruments:
    name, rows, skipped = _fast.parse_body(body, venue)
    out = Instruments(name, skipped)
    for sym, ps, qs, tick, lot, cv in rows:
        # the texts passed the C number check, so Decimal reads them exactly
        out[sym] = InstrumentMeta(sym, ps, qs, Decimal(tick), Decimal(lot),
                                  None if cv is None else Decimal(cv))
    return out


def parse_binance_exchange_info(body: Body) -> Instruments:
    """Scales of every symbol in a Binance ``exchangeInfo`` body (spot, USD-M, COIN-M).

    Symbols without a PRICE_FILTER tick or a LOT_SIZE step are skipped and counted.
    Raises :class:`MetadataError` (see the module docstring).
    """
    return _parse(body, "binance")


def parse_okx_instruments(body: Body) -> Instruments:
    """Scales of every instrument in an OKX ``/api/v5/public/instruments`` body.

    Raises :class:`MetadataError`, also for an error answer (``code`` not 0).
    """
    return _parse(body, "okx")


def parse_deribit_instruments(body: Body) -> Instruments:
    """Scales of every instrument in a Deribit ``public/get_instruments`` body.

    Deribit writes ticks and amounts as JSON numbers; their raw text is read exactly.
    Raises :class:`MetadataError`, also for an error answer (``"error"``).
    """
    return _parse(body, "deribit")


def parse_instruments(body: Body) -> Instruments:
    """Scales from any of the three instrument lists, recognised by shape (a
    ``symbols``, ``data`` or ``result`` list, in that order of preference)."""
    return _parse(body, "auto")


def read_metadata_file(path: str | Path) -> Instruments:
    """Every instrument in a cryptofeed metadata capture (``X.0``).

    Lines are ``<url> -> <ts>: <body>``; other lines (``configuration: ...``) and bodies
    that are not instrument lists are skipped.  Only the last body of each URL is read;
    later URLs override earlier ones.
    Raises :class:`OSError` if the file cannot be read.
    """
    latest: dict[bytes, bytes] = {}  # url -> its last body (captures repeat requests)
    with open(path, "rb") as fh:
        for raw in fh:
            head, sep, body = raw.partition(b": ")
            url, arrow, _ts = head.partition(b" -> ")
            if not sep or not arrow or not url.startswith((b"http://", b"https://")):
                continue
            latest.pop(url, None)
            latest[url] = body
    out = Instruments()
    for body in latest.values():
        try:
            out.merge(parse_instruments(body))
        except MetadataError:
            continue
    return out


def _okx_query(symbol: str) -> str:
    """The ``instruments`` query that lists ``symbol`` (OKX requires ``instType``)."""
    parts = symbol.split("-")
    if len(parts) == 5:  # BTC-USD-220514-22000-C: options are listed per family
        return f"instType=OPTION&instFamily={quote('-'.join(parts[:2]))}"
    if parts[-1] == "SWAP":
        return "instType=SWAP"
    if len(parts) == 3 and parts[-1].isdigit():  # BTC-USD-220520
        return "instType=FUTURES"
    return "instType=SPOT"


def instrument_urls(market: str, rest: str, symbols: Sequence[str]) -> list[tuple[str, str]]:
    """The REST requests that list ``symbols`` on ``market``: ``[(url, venue), ...]``
    where ``venue`` is the parser (``parse_body``'s ``"binance"``, ``"okx"``,
    ``"deribit"``) for that answer.  ``rest`` is the feed's REST base URL."""
    base = rest.rstrip("/")
    if market == "binance-spot":
        wanted = quote(json.dumps(sorted(symbols), separators=(",", ":")), safe="")
        return [(f"{base}/api/v3/exchangeInfo?symbols={wanted}", "binance")]
    if market == "binance-usdm":
        return [(f"{base}/fapi/v1/exchangeInfo", "binance")]
    if market == "binance-coinm":
        return [(f"{base}/dapi/v1/exchangeInfo", "binance")]
    if market == "okx":
        queries = sorted({_okx_query(s) for s in symbols})
        return [(f"{base}/api/v5/public/instruments?{q}", "okx") for q in queries]
    if market == "deribit":
        return [(f"{base}/api/v2/public/get_instruments?currency=any&expired=false",
                 "deribit")]
    raise ValueError(f"unknown market {market!r}")


async def fetch_instruments(market: str, rest: str, symbols: Sequence[str],
                            timeout: float = 10.0) -> tuple[Instruments, list[str]]:
    """Ask ``market``'s REST API (base URL ``rest``) for the instrument lists that hold
    ``symbols``; returns the merged lists and the URLs asked.

    Binance spot answers HTTP 400 to a ``symbols`` filter naming a symbol it does not
    know; the whole list is then fetched instead, so the caller can name that symbol.
    :raises RestError: a request failed (unreachable, timeout, HTTP error).
    :raises MetadataError: an answer is not an instrument list (or an error answer).
    """
    out = Instruments()
    asked: list[str] = []
    for url, venue in instrument_urls(market, rest, symbols):
        asked.append(url)
        try:
            body = await get(url, timeout=timeout)
        except RestError as exc:
            if not (market == "binance-spot" and exc.status == 400):
                raise
            url = url.split("?", 1)[0]
            asked.append(url)
            body = await get(url, timeout=timeout)
        out.merge(_parse(body, venue))
    return out, asked
