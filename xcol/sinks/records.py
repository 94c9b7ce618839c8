"""Reading the serialized records sinks receive.

Every record the engine writes is one line of JSON that starts with the same header, in
this order::

    {"type":"book","exchange":"binance-usdm","symbol":"BTCUSDT","seq":...,
     "ts_exchange":...,"ts_recv":...,"line":...,  <type-specific fields>}

``type`` is one of :data:`RECORD_TYPES`.  Sinks that route by type and instrument (Redis
channels, Kafka keys, Parquet files) read the header with :func:`split_records` without
parsing the whole record; sinks that need the fields call :func:`parse_record`.
See docs/sinks.md for the schema of each type.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

__all__ = ["RECORD_TYPES", "RecordError", "parse_record", "split_records"]

#: Record types the engine writes.
RECORD_TYPES = ("book", "snapshot", "top", "bbo", "trade")

_TYPE = b'{"type":"'
_EXCH = b'","exchange":"'
_SYM = b'","symbol":"'


class RecordError(ValueError):
    """A record that does not start with the standard header."""


def split_records(batch: bytes) -> Iterator[tuple[str, str, str, bytes]]:
    """Yield ``(type, exchange, symbol, record)`` for each newline-terminated record of
    ``batch``; ``record`` excludes the newline.  Raises :class:`RecordError` naming the
    record when a line lacks the standard header."""
    cache: dict[bytes, tuple[str, str, str]] = {}
    for rec in batch.split(b"\n"):
        if not rec:
            continue
        e = rec.find(_SYM, 9)
        if e < 0:
            raise RecordError(f"record without the standard header: {rec[:80]!r}")
        s_end = rec.find(b'"', e + 12)
        head = rec[:s_end]
        hit = cache.get(head)
        if hit is None:
            t_end = rec.find(_EXCH, 9)
            if not rec.startswith(_TYPE) or t_end < 0 or t_end > e or s_end < 0:
                raise RecordError(f"record without the standard header: {rec[:80]!r}")
            hit = (rec[9:t_end].decode(), rec[t_end + 14:e].decode(),
                   rec[e + 12:s_end].decode())
            cache[head] = hit
        yield hit[0], hit[1], hit[2], rec


def parse_record(rec: bytes) -> dict[str, Any]:
    """The record as a dict (prices and sizes stay decimal strings)."""
    out: dict[str, Any] = json.loads(rec)
    return out
