"""Plain-Python reference of the instrument-list parsers (``xcol._fast.meta``).

``json`` + :class:`decimal.Decimal`, written for clarity, not speed: the property and
corpus tests compare the Cython parser (through :mod:`xcol.exchanges.meta`) with it.
It is the pure-Python parser xcol used before the Cython one, tightened to the same
contract (see :mod:`xcol.exchanges.meta`):

* not JSON, not an object, an error answer, a row that is not an object, a symbol that
  is not a string, or a tick/lot/contract value that is not a non-negative decimal
  number (``digits[.digits][e[+-]digits]``, as a string or a bare JSON number)
  → :class:`~xcol.exchanges.meta.MetadataError`;
* a row without a symbol, tick or lot (absent, null or ``""``) → skipped and counted;
* decimals are counted on the text as written; scale ``min(max(decimals, 8), 12)``.

Bare JSON numbers are kept as their exact text (:class:`Raw`) so Deribit's ``5e-05``
is read as written.
"""

from __future__ import annotations

import json
import re
from decimal import Decimal
from typing import Any

from xcol.exchanges.meta import MAX_SCALE, MIN_SCALE, InstrumentMeta, MetadataError

_NUM = re.compile(r"[0-9]+(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")
_ABSENT = object()
_LISTS = {"binance": "symbols", "okx": "data", "deribit": "result"}


class Raw:
    """A bare JSON number, as its exact text."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text

    def __repr__(self) -> str:
        return self.text


def _missing(v: object) -> bool:
    return v is _ABSENT or v is None or v == ""


def _number(v: object, where: str) -> Decimal:
    if isinstance(v, Raw):
        text = v.text
    elif isinstance(v, str):
        text = v
    else:
        raise MetadataError(f"{where}: {v!r} is not a number")
    if text.startswith("-"):
        raise MetadataError(f"{where}: {text!r} is negative")
    if not _NUM.fullmatch(text):
        raise MetadataError(f"{where}: {text!r} is not a decimal number")
    return Decimal(text)


def _scale(d: Decimal) -> int:
    exp = d.as_tuple().exponent
    assert isinstance(exp, int)
    return min(max(max(0, -exp), MIN_SCALE), MAX_SCALE)


def _make(sym: str, tick: object, lot: object, cv: object, where: str) -> InstrumentMeta:
    t = _number(tick, f"{where} tick")
    lt = _number(lot, f"{where} lot")
    c = None if _missing(cv) else _number(cv, f"{where} contract value")
    return InstrumentMeta(sym, _scale(t), _scale(lt), t, lt, c)


def _symbol(v: object, where: str) -> str | None:
    if _missing(v):
        return None
    if not isinstance(v, str):
        raise MetadataError(f"{where}: symbol {v!r} is not a string")
    return v


def _binance_row(row: dict[str, Any], where: str) -> InstrumentMeta | None:
    sym = _symbol(row.get("symbol", _ABSENT), where)
    if sym is None:
        return None
    filters = row.get("filters", _ABSENT)
    if not isinstance(filters, list):
        if _missing(filters):
            return None
        raise MetadataError(f"{where}: filters is not a list")
    tick: object = _ABSENT
    lot: object = _ABSENT
    for f in filters:
        if not isinstance(f, dict):
            continue
        if f.get("filterType") == "PRICE_FILTER":
            tick = f.get("tickSize", _ABSENT)
        elif f.get("filterType") == "LOT_SIZE":
            lot = f.get("stepSize", _ABSENT)
    if _missing(tick) or _missing(lot):
        return None
    return _make(sym, tick, lot, row.get("contractSize", _ABSENT), where)


def _plain_row(row: dict[str, Any], where: str, keys: tuple[str, str, str, str]
               ) -> InstrumentMeta | None:
    sym = _symbol(row.get(keys[0], _ABSENT), where)
    if sym is None:
        return None
    tick, lot = row.get(keys[1], _ABSENT), row.get(keys[2], _ABSENT)
    if _missing(tick) or _missing(lot):
        return None
    return _make(sym, tick, lot, row.get(keys[3], _ABSENT), where)


_KEYS = {"okx": ("instId", "tickSz", "lotSz", "ctVal"),
         "deribit": ("instrument_name", "tick_size", "min_trade_amount", "contract_size")}


def ref_parse(body: str | bytes, venue: str = "auto"
              ) -> tuple[str, dict[str, InstrumentMeta], int]:
    """``(venue, {symbol: InstrumentMeta}, skipped)`` like ``xcol._fast.meta.parse_body``
    (later rows win on a repeated symbol); raises MetadataError."""
    try:
        obj = json.loads(body, parse_float=Raw, parse_int=Raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise MetadataError(f"not valid JSON: {exc}") from None
    if not isinstance(obj, dict):
        raise MetadataError("not a JSON object")
    if venue == "auto":
        for v, key in _LISTS.items():
            if isinstance(obj.get(key), list):
                venue = v
                break
        else:
            raise MetadataError("not an instrument list")
    code = obj.get("code", _ABSENT)
    if venue == "okx" and not _missing(code) and not (
            code == "0" or (isinstance(code, Raw) and code.text == "0")):
        raise MetadataError(f"OKX error answer {code!r}")
    if venue == "deribit" and not _missing(obj.get("error", _ABSENT)):
        raise MetadataError(f"Deribit error answer {obj['error']!r}")
    key = _LISTS[venue]
    rows = obj.get(key)
    if not isinstance(rows, list):
        raise MetadataError(f"no {key!r} list")
    out: dict[str, InstrumentMeta] = {}
    skipped = 0
    for i, row in enumerate(rows):
        where = f"{key}[{i}]"
        if not isinstance(row, dict):
            raise MetadataError(f"{where} is not an object")
        m = (_binance_row(row, where) if venue == "binance"
             else _plain_row(row, where, _KEYS[venue]))
        if m is None:
            skipped += 1
        else:
            out[m.symbol] = m
    return venue, out, skipped


def exact(m: InstrumentMeta) -> tuple[object, ...]:
    """An instrument with its numbers as (sign, digits, exponent): ``0.10`` != ``0.1``."""
    return (m.symbol, m.price_scale, m.qty_scale, m.tick.as_tuple(), m.lot.as_tuple(),
            None if m.contract_value is None else m.contract_value.as_tuple())
