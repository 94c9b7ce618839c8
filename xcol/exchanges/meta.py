"""Instrument metadata → the fixed-point scales books keep prices and sizes at.

xcol parses every price and size straight into an int64 mantissa at a fixed number of
decimals per instrument (its *scale*).  A scale must never be smaller than the decimals the
exchange actually writes, or a level would not fit and be refused as a bad number.  The
rule used here, for every venue:

* ``price_scale = min(max(decimals(tick), 8), 12)``
* ``qty_scale   = min(max(decimals(lot), 8), 12)``

where ``decimals`` counts the decimal digits of the tick/lot *as written* by the exchange
(``"0.10"`` → 2, ``"0.01000000"`` → 8, ``"1"`` → 0; Deribit sends JSON numbers, whose text
is read exactly through :class:`decimal.Decimal`, so ``0.0005`` → 4).  The floor of 8 covers
exchanges that write more decimals than the tick needs (Binance pads to 8; USD-M writes
``"0.010"`` quantities for a ``"0.001"`` lot), the cap of 12 keeps a BTC price times
``10**scale`` far inside int64.  An instrument whose tick or lot has more than 12 decimals
keeps scale 12; values it writes beyond that are refused by the engine, loudly.

Sources:

* Binance ``exchangeInfo`` (spot ``/api/v3``, USD-M ``/fapi/v1``, COIN-M ``/dapi/v1``):
  ``symbols[].filters``: ``PRICE_FILTER.tickSize`` and ``LOT_SIZE.stepSize``;
  ``contractSize`` (COIN-M) is the contract value.
* OKX ``/api/v5/public/instruments``: ``data[]``: ``instId``, ``tickSz``, ``lotSz``,
  ``ctVal`` (empty for spot).
* Deribit ``public/get_instruments``: ``result[]``: ``instrument_name``, ``tick_size``,
  ``min_trade_amount`` (the lot), ``contract_size``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

__all__ = [
    "MAX_SCALE",
    "MIN_SCALE",
    "InstrumentMeta",
    "MetadataError",
    "decimals",
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


class MetadataError(ValueError):
    """An instrument list that cannot be read (not JSON, or not a known shape)."""


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


def _make(symbol: str, tick: object, lot: object, contract_value: object) -> InstrumentMeta:
    t = _to_decimal(tick)
    lt = _to_decimal(lot)
    cv: Decimal | None = None
    if contract_value not in (None, ""):
        cv = _to_decimal(contract_value)
    return InstrumentMeta(
        symbol=symbol,
        price_scale=scale_for(t),
        qty_scale=scale_for(lt),
        tick=t,
        lot=lt,
        contract_value=cv,
    )


def _load(body: str | bytes | Mapping[str, Any]) -> Mapping[str, Any]:
    if isinstance(body, Mapping):
        return body
    try:
        obj = json.loads(body, parse_float=Decimal)
    except (ValueError, UnicodeDecodeError) as exc:
        raise MetadataError(f"instrument list is not valid JSON: {exc}") from None
    if not isinstance(obj, dict):
        raise MetadataError("instrument list is not a JSON object")
    return obj


def _rows(obj: Mapping[str, Any], key: str, what: str) -> list[Mapping[str, Any]]:
    rows = obj.get(key)
    if not isinstance(rows, list):
        raise MetadataError(f"{what}: no {key!r} list")
    return [r for r in rows if isinstance(r, Mapping)]


def parse_binance_exchange_info(
    body: str | bytes | Mapping[str, Any],
) -> dict[str, InstrumentMeta]:
    """Scales of every symbol in a Binance ``exchangeInfo`` body (spot, USD-M, COIN-M).

    Symbols without a PRICE_FILTER tick or a LOT_SIZE step are left out.
    """
    out: dict[str, InstrumentMeta] = {}
    for row in _rows(_load(body), "symbols", "Binance exchangeInfo"):
        symbol = row.get("symbol")
        filters = row.get("filters")
        if not isinstance(symbol, str) or not isinstance(filters, list):
            continue
        tick = lot = None
        for f in filters:
            if not isinstance(f, Mapping):
                continue
            if f.get("filterType") == "PRICE_FILTER":
                tick = f.get("tickSize")
            elif f.get("filterType") == "LOT_SIZE":
                lot = f.get("stepSize")
        if tick is None or lot is None:
            continue
        out[symbol] = _make(symbol, tick, lot, row.get("contractSize"))
    return out


def parse_okx_instruments(body: str | bytes | Mapping[str, Any]) -> dict[str, InstrumentMeta]:
    """Scales of every instrument in an OKX ``/api/v5/public/instruments`` body."""
    obj = _load(body)
    code = obj.get("code")
    if code not in (None, "0", 0):
        raise MetadataError(f"OKX instruments: error response code={code!r} {obj.get('msg')!r}")
    out: dict[str, InstrumentMeta] = {}
    for row in _rows(obj, "data", "OKX instruments"):
        inst = row.get("instId")
        tick, lot = row.get("tickSz"), row.get("lotSz")
        if not isinstance(inst, str) or tick in (None, "") or lot in (None, ""):
            continue
        out[inst] = _make(inst, tick, lot, row.get("ctVal"))
    return out


def parse_deribit_instruments(
    body: str | bytes | Mapping[str, Any],
) -> dict[str, InstrumentMeta]:
    """Scales of every instrument in a Deribit ``public/get_instruments`` body.

    Deribit writes ticks and amounts as JSON numbers; they are read as exact Decimals.
    """
    out: dict[str, InstrumentMeta] = {}
    for row in _rows(_load(body), "result", "Deribit instruments"):
        name = row.get("instrument_name")
        tick, lot = row.get("tick_size"), row.get("min_trade_amount")
        if not isinstance(name, str) or tick is None or lot is None:
            continue
        out[name] = _make(name, tick, lot, row.get("contract_size"))
    return out


def parse_instruments(body: str | bytes | Mapping[str, Any]) -> dict[str, InstrumentMeta]:
    """Scales from any of the three instrument lists, recognised by shape."""
    obj = _load(body)
    if isinstance(obj.get("symbols"), list):
        return parse_binance_exchange_info(obj)
    if isinstance(obj.get("data"), list):
        return parse_okx_instruments(obj)
    if isinstance(obj.get("result"), list):
        return parse_deribit_instruments(obj)
    raise MetadataError("not a Binance exchangeInfo, OKX instruments or Deribit instruments body")


def read_metadata_file(path: str | Path) -> dict[str, InstrumentMeta]:
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
    out: dict[str, InstrumentMeta] = {}
    for body in latest.values():
        try:
            out.update(parse_instruments(body))
        except MetadataError:
            continue
    return out
