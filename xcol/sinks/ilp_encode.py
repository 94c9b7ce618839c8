"""Records → InfluxDB / QuestDB line protocol (ILP), the encoder of :mod:`xcol.sinks.ilp`.

One ILP line per trade, BBO and top-of-book record, one line per price level for level
records (book deltas, snapshots, and top-N in the ``rows`` layout); a trade::

    trades,exchange=binance-usdm,symbol=BTCUSDT,side=sell price=61800.20,qty=0.015,\
id=5266583939i,ts_exchange=1795260894153i 1795260894153907117

The measurement-and-tags prefix (``bbo,exchange=...,symbol=... ``) is escaped and encoded
once per series and cached; fields are appended as bytes taken straight from the record.
Prices and sizes are written as the exchange's own decimal text: an ILP float literal that
the server turns into the nearest double (``decimals="string"`` writes them as exact string
fields instead, ``"both"`` writes both).

Records are read with one anchored regular expression per type, written for the layout the
engine emits (:mod:`xcol._fast.engine`); a record that does not match (another field order,
escaped characters, unusual numbers) goes through ``json.loads`` and the same checks, so the
output does not depend on which path read it.  A record that cannot be written faithfully
is counted as *bad* under a reason and skipped; the rest of the batch is written.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal, TypeGuard

__all__ = [
    "DEFAULT_TYPES",
    "MEASUREMENTS",
    "EncodedBatch",
    "IlpEncoder",
    "escape_measurement",
    "escape_tag",
]

Decimals = Literal["double", "string", "both"]
TimestampSource = Literal["recv", "exchange"]
TopLayout = Literal["wide", "rows"]

#: Record type → measurement name (before the configured prefix).
MEASUREMENTS: dict[str, str] = {
    "trade": "trades",
    "bbo": "bbo",
    "top": "book_top",
    "book": "book_delta",
    "snapshot": "book_snapshot",
}
#: Record types written unless configured otherwise.
DEFAULT_TYPES: tuple[str, ...] = ("trade", "bbo", "top")

#: Bad-record reasons (``IlpEncoder.bad`` keys).
BAD_JSON = "json"  # not a JSON object
BAD_HEADER = "header"  # type/exchange/symbol/seq/timestamps missing or mistyped
BAD_VALUE = "value"  # a price, size, id or level that is not what the schema says
BAD_TAG = "tag"  # exchange/symbol/side that line protocol cannot carry (see escape_tag)

_NAME_RE = re.compile(r"[A-Za-z0-9_.\-]*")

# Decimal text accepted as an ILP float and as an exact value.  No exponent, no leading
# "+", no bare "." and at most 24 digits each side: what every ILP parser reads the same
# way and a double can hold the magnitude of.
_NUM = rb"-?+\d{1,24}+(?:\.\d{1,24}+)?+"  # possessive: nothing to backtrack into
_NUM_RE = re.compile(_NUM)
_INT = rb"-?+\d{1,19}+"
_NAME = rb"[A-Za-z0-9_.\-/]{1,64}+"  # needs no escaping anywhere in a line
_HEAD = (rb'\{"type":"(?:%s)","exchange":"(' + _NAME + rb')","symbol":"(' + _NAME
         + rb')","seq":(' + _INT + rb'),"ts_exchange":(' + _INT + rb'),"ts_recv":('
         + _INT + rb'),"line":' + _INT)
_LEVEL = rb'\["' + _NUM + rb'","' + _NUM + rb'"\]'
_LEVELS = rb"\[(?:" + _LEVEL + rb"(?:," + _LEVEL + rb")*)?\]"
_TYPE_KEY = b'{"type":"'
_TYPE_AT = {t.encode(): t for t in MEASUREMENTS}
_PAIR_RE = re.compile(rb'\["(' + _NUM + rb')","(' + _NUM + rb')"\]')

_FAST_BBO = re.compile(_HEAD % b"bbo" + rb',"bid":"(' + _NUM + rb')","bid_qty":"(' + _NUM
                       + rb')","ask":"(' + _NUM + rb')","ask_qty":"(' + _NUM + rb')"\}')
_FAST_TRADE = re.compile(_HEAD % b"trade" + rb',"id":(' + _INT + rb'),"price":"(' + _NUM
                         + rb')","qty":"(' + _NUM + rb')","side":(?:"(buy|sell)"|null)\}')
_FAST_LEVELS = {
    t: re.compile(_HEAD % t.encode() + (rb'(?:,"prev_seq":' + _INT + rb")?" if t == "book"
                                         else b"")
                  + rb',"bids":(' + _LEVELS + rb'),"asks":(' + _LEVELS + rb")\}")
    for t in ("book", "snapshot", "top")
}


class _Bad(Exception):
    """A record that cannot be written; ``args[0]`` is the reason."""


def escape_measurement(name: str) -> bytes:
    """A measurement name escaped for line protocol (commas and spaces)."""
    if not name or "\n" in name or "\r" in name or "\\" in name:
        raise ValueError(f"measurement name {name!r} cannot be written in line protocol")
    return name.replace(",", "\\,").replace(" ", "\\ ").encode()


def escape_tag(value: str) -> bytes:
    """A tag value escaped for line protocol: ``,``, ``=`` and space get a backslash.

    Values that line protocol cannot carry the same way on every server raise
    ``ValueError``: empty values, newlines and carriage returns (the line ends there), and
    backslashes (InfluxDB 1.x keeps ``\\\\`` as two characters and cannot parse a value
    ending in one, QuestDB unescapes it).  Exchange ids and configured symbols never
    contain them.
    """
    if not value or "\\" in value or "\n" in value or "\r" in value:
        raise ValueError(f"tag value {value!r} cannot be written in line protocol")
    return value.replace(",", "\\,").replace("=", "\\=").replace(" ", "\\ ").encode()


@dataclass
class EncodedBatch:
    """The outcome of :meth:`IlpEncoder.encode` for one batch.

    ``records = encoded + skipped + bad``; ``lines`` ILP lines make up ``data``.
    """

    data: bytes
    records: int
    encoded: int
    lines: int
    skipped: dict[str, int] = field(default_factory=dict)
    bad: dict[str, int] = field(default_factory=dict)

    @property
    def skipped_total(self) -> int:
        """Records of types that are not written."""
        return sum(self.skipped.values())

    @property
    def bad_total(self) -> int:
        """Records that could not be written."""
        return sum(self.bad.values())


class _Series:
    """One series (measurement + tag set): its encoded prefix and its last timestamps."""

    __slots__ = ("last_in", "last_out", "prefix")

    def __init__(self, prefix: bytes) -> None:
        self.prefix = prefix
        self.last_in = -1  # timestamp the previous record of the series asked for
        self.last_out = -1  # timestamp it was written with


class IlpEncoder:
    """Turn record batches into line-protocol bytes.

    :param types: record types to write (others are counted as skipped); see
        :data:`MEASUREMENTS`.
    :param prefix: prepended to every measurement name (``"xcol_"`` → ``xcol_trades``).
    :param timestamp: ``"recv"`` (``ts_recv``, wall-clock ns at receipt; the default) or
        ``"exchange"`` (``ts_exchange`` ms × 10⁶; ``ts_recv`` when the record has none).
        The other one is written as an integer field.
    :param decimals: ``"double"``: prices and sizes as float fields written with the
        exchange's text; ``"string"``: as string fields holding that text exactly;
        ``"both"``: float fields plus ``<name>_str`` string fields.
    :param top_layout: ``"wide"``: one line per top-N record with fields ``bid_price_0``,
        ``bid_qty_0``... ``ask_qty_<N-1>``; ``"rows"``: one line per level, like book
        deltas and snapshots.
    :param unique_timestamps: give every line of a series a distinct timestamp: a line
        whose timestamp equals (or, after such a shift, falls under) the previous line's of
        the same series is written 1 ns after it.  Servers that key points on
        series + time (InfluxDB; QuestDB tables with deduplication) would otherwise keep
        only the last of the records of one frame, or of the levels of one update.
    """

    def __init__(
        self,
        *,
        types: Iterable[str] = DEFAULT_TYPES,
        prefix: str = "",
        timestamp: TimestampSource = "recv",
        decimals: Decimals = "double",
        top_layout: TopLayout = "wide",
        unique_timestamps: bool = True,
    ) -> None:
        types = tuple(types)
        unknown = [t for t in types if t not in MEASUREMENTS]
        if unknown:
            raise ValueError(f"unknown record type(s) {unknown} (known: "
                             f"{', '.join(MEASUREMENTS)})")
        if not _NAME_RE.fullmatch(prefix):
            raise ValueError(f"measurement prefix {prefix!r}: use letters, digits, _ . -")
        if timestamp not in ("recv", "exchange"):
            raise ValueError(f"timestamp must be 'recv' or 'exchange', got {timestamp!r}")
        if decimals not in ("double", "string", "both"):
            raise ValueError(f"decimals must be 'double', 'string' or 'both', got {decimals!r}")
        if top_layout not in ("wide", "rows"):
            raise ValueError(f"top_layout must be 'wide' or 'rows', got {top_layout!r}")
        self.types = frozenset(types)
        self.prefix = prefix
        self.timestamp = timestamp
        self.decimals = decimals
        self.top_layout = top_layout
        self.unique_timestamps = unique_timestamps
        self.fast_path = True  # tests turn it off to hold both paths equal
        self._meas = {t: escape_measurement(prefix + m) for t, m in MEASUREMENTS.items()}
        self._series: dict[tuple[str, bytes, bytes, bytes | None], _Series] = {}
        self._by_exchange_ts = timestamp == "exchange"
        # "<extra>" field (the timestamp not used as the line's timestamp) and its suffix
        self._extra = b",ts_recv=" if self._by_exchange_ts else b",ts_exchange="
        twice = decimals == "both"
        self._twice = twice
        d = self._dec_template
        self._bbo_t = (d(b"bid") + b"," + d(b"bid_qty") + b"," + d(b"ask") + b","
                       + d(b"ask_qty") + b",seq=%si%s%si %d\n")
        self._trade_t = d(b"price") + b"," + d(b"qty") + b",id=%si%s%si %d\n"
        self._row_t = b"%slevel=%di," + d(b"price") + b"," + d(b"qty") + b",seq=%si%s%si %d\n"
        # prefix first, the other timestamp's name fixed (the inlined default case)
        self._bbo_inline = b"%s" + self._bbo_t.replace(b"%s%si", self._extra + b"%si")
        self._trade_inline = b"%s" + self._trade_t.replace(b"%s%si", self._extra + b"%si")
        self._wide_names: list[tuple[bytes, bytes]] = []

    # -- templates -----------------------------------------------------------------------

    def _dec_template(self, name: bytes) -> bytes:
        if self.decimals == "double":
            return name + b"=%s"
        if self.decimals == "string":
            return name + b'="%s"'
        return name + b"=%s," + name + b'_str="%s"'

    def _dec_field(self, name: bytes, v: bytes) -> bytes:
        if self.decimals == "double":
            return name + b"=" + v
        if self.decimals == "string":
            return name + b'="' + v + b'"'
        return name + b"=" + v + b"," + name + b'_str="' + v + b'"'

    def _wide(self, i: int) -> tuple[bytes, bytes, bytes, bytes]:
        while len(self._wide_names) <= i:
            k = len(self._wide_names)
            self._wide_names.append((b"bid_price_%d" % k, b"bid_qty_%d" % k))
        b_px, b_q = self._wide_names[i]
        return b_px, b_q, b"ask" + b_px[3:], b"ask" + b_q[3:]

    # -- series and timestamps ------------------------------------------------------------

    def _series_for(self, typ: str, exch: bytes, sym: bytes, extra: bytes | None,
                    key: tuple[str, bytes, bytes, bytes | None]) -> _Series:
        """Create the series ``key``; ``exch``/``sym``/``extra`` are escaped already."""
        p = self._meas[typ] + b",exchange=" + exch + b",symbol=" + sym
        if extra is not None:
            p += b",side=" + extra
        s = _Series(p + b" ")
        self._series[key] = s
        return s

    def _stamp(self, s: _Series, ts: int) -> int:
        if not self.unique_timestamps:
            return ts
        last_out = s.last_out
        out = last_out + 1 if ts == s.last_in or s.last_in < ts <= last_out else ts
        s.last_in = ts
        s.last_out = out
        return out

    def reset_series(self) -> None:
        """Forget cached prefixes and last timestamps (tests, config reloads)."""
        self._series.clear()

    # -- encoding -------------------------------------------------------------------------

    def encode(self, batch: bytes) -> EncodedBatch:
        """Encode every newline-terminated record of ``batch``."""
        out: list[bytes] = []
        skipped: dict[str, int] = {}
        bad: dict[str, int] = {}
        records = 0
        encoded = 0
        lines = 0
        types = self.types
        fast = self.fast_path
        # The default configuration's BBO and trade lines are built right here, without
        # a method call per record (about a third of the per-record cost); everything
        # else goes through _bbo/_trade/_levels, which write the same bytes.
        inline = fast and not self._twice and not self._by_exchange_ts and (
            self.unique_timestamps)
        series = self._series
        bbo_t = self._bbo_inline
        trade_t = self._trade_inline
        append = out.append
        fast_bbo = _FAST_BBO.fullmatch
        fast_trade = _FAST_TRADE.fullmatch
        for rec in batch.split(b"\n"):
            if not rec:
                continue
            records += 1
            # The type sits at a fixed offset in the engine's layout; other layouts fall
            # through to the generic path, which reads the type from the parsed record.
            typ = _TYPE_AT.get(rec[9:rec.find(b'"', 9)], "") if rec[:9] == _TYPE_KEY else ""
            if typ and typ not in types:
                skipped[typ] = skipped.get(typ, 0) + 1
                continue
            if inline and (typ == "bbo" or typ == "trade"):
                m = fast_bbo(rec) if typ == "bbo" else fast_trade(rec)
                if m is not None:
                    if typ == "bbo":
                        exch, sym, seq, ts_ex, ts_recv, v1, v2, v3, v4 = m.groups()
                        key: tuple[str, bytes, bytes, bytes | None] = ("bbo", exch, sym, None)
                    else:
                        exch, sym, _, ts_ex, ts_recv, seq, v1, v2, side = m.groups()
                        key = ("trade", exch, sym, side)
                    s = series.get(key)
                    if s is None:
                        s = self._series_for(typ, exch, sym, key[3], key)
                    ts = int(ts_recv)
                    if ts == s.last_in or s.last_in < ts <= s.last_out:  # see _stamp
                        s.last_in = ts
                        ts = s.last_out = s.last_out + 1
                    else:
                        s.last_in = s.last_out = ts
                    if typ == "bbo":
                        append(bbo_t % (s.prefix, v1, v2, v3, v4, seq, ts_ex, ts))
                    else:
                        append(trade_t % (s.prefix, v1, v2, seq, ts_ex, ts))
                    encoded += 1
                    lines += 1
                    continue
            n = -1
            if fast and typ:
                if typ == "bbo":
                    m = _FAST_BBO.fullmatch(rec)
                    if m is not None:
                        n = self._bbo(out, m.groups())
                elif typ == "trade":
                    m = _FAST_TRADE.fullmatch(rec)
                    if m is not None:
                        n = self._trade(out, m.groups())
                else:
                    m = _FAST_LEVELS[typ].fullmatch(rec)
                    if m is not None:
                        g = m.groups()
                        n = self._levels(out, typ, g[:5], _PAIR_RE.findall(g[5]),
                                         _PAIR_RE.findall(g[6]))
            if n < 0:
                try:
                    n = self._generic(out, rec, skipped)
                except _Bad as exc:
                    reason = exc.args[0]
                    bad[reason] = bad.get(reason, 0) + 1
                    continue
                if n < 0:  # a type that is not written
                    continue
            encoded += 1
            lines += n
        return EncodedBatch(b"".join(out), records, encoded, lines, skipped, bad)

    def _ts(self, s: _Series, ts_ex: bytes, ts_recv: bytes) -> tuple[bytes, int]:
        """(bytes of the other timestamp field, the line's timestamp)."""
        if self._by_exchange_ts:
            ms = int(ts_ex)
            return ts_recv, self._stamp(s, ms * 1_000_000 if ms > 0 else int(ts_recv))
        return ts_ex, self._stamp(s, int(ts_recv))

    def _bbo(self, out: list[bytes], g: tuple[Any, ...]) -> int:
        exch, sym, seq, ts_ex, ts_recv, bid, bq, ask, aq = g
        key: tuple[str, bytes, bytes, bytes | None] = ("bbo", exch, sym, None)
        s = self._series.get(key) or self._series_for("bbo", exch, sym, None, key)
        other, ts = self._ts(s, ts_ex, ts_recv)
        if self._twice:
            vals: tuple[Any, ...] = (bid, bid, bq, bq, ask, ask, aq, aq)
        else:
            vals = (bid, bq, ask, aq)
        out.append(s.prefix + self._bbo_t % (*vals, seq, self._extra, other, ts))
        return 1

    def _trade(self, out: list[bytes], g: tuple[Any, ...]) -> int:
        exch, sym, _seq, ts_ex, ts_recv, tid, px, qty, side = g
        key = ("trade", exch, sym, side)
        s = self._series.get(key) or self._series_for("trade", exch, sym, side, key)
        other, ts = self._ts(s, ts_ex, ts_recv)
        vals: tuple[Any, ...] = (px, px, qty, qty) if self._twice else (px, qty)
        out.append(s.prefix + self._trade_t % (*vals, tid, self._extra, other, ts))
        return 1

    def _levels(self, out: list[bytes], typ: str, head: tuple[Any, ...],
                bids: list[tuple[bytes, bytes]], asks: list[tuple[bytes, bytes]]) -> int:
        exch, sym, seq, ts_ex, ts_recv = head
        if typ == "top" and self.top_layout == "wide":
            tkey = ("top", exch, sym, None)
            s = self._series.get(tkey) or self._series_for("top", exch, sym, None, tkey)
            other, ts = self._ts(s, ts_ex, ts_recv)
            parts: list[bytes] = []
            for i, (px, q) in enumerate(bids):
                names = self._wide(i)
                parts.append(self._dec_field(names[0], px))
                parts.append(self._dec_field(names[1], q))
            for i, (px, q) in enumerate(asks):
                names = self._wide(i)
                parts.append(self._dec_field(names[2], px))
                parts.append(self._dec_field(names[3], q))
            parts.append(b"seq=%si%s%si %d\n" % (seq, self._extra, other, ts))
            out.append(s.prefix + b",".join(parts))
            return 1
        n = 0
        row_t = self._row_t
        twice = self._twice
        extra = self._extra
        for side, levels in ((b"bid", bids), (b"ask", asks)):
            if not levels:
                continue
            key = (typ, exch, sym, side)
            s = self._series.get(key) or self._series_for(typ, exch, sym, side, key)
            prefix = s.prefix
            for i, (px, q) in enumerate(levels):
                other, ts = self._ts(s, ts_ex, ts_recv)
                vals: tuple[Any, ...] = (px, px, q, q) if twice else (px, q)
                out.append(row_t % (prefix, i, *vals, seq, extra, other, ts))
                n += 1
        return n

    # -- the generic path -----------------------------------------------------------------

    def _generic(self, out: list[bytes], rec: bytes, skipped: dict[str, int]) -> int:
        """Parse ``rec`` fully and encode it; -1 for a type that is not written."""
        try:
            r = json.loads(rec)
        except (ValueError, UnicodeDecodeError):
            raise _Bad(BAD_JSON) from None
        if not isinstance(r, dict):
            raise _Bad(BAD_JSON)
        typ = r.get("type")
        if not isinstance(typ, str):
            raise _Bad(BAD_HEADER)
        if typ not in self.types:
            skipped[typ] = skipped.get(typ, 0) + 1
            return -1
        exch, sym = r.get("exchange"), r.get("symbol")
        if not isinstance(exch, str) or not isinstance(sym, str):
            raise _Bad(BAD_HEADER)
        seq, ts_ex, ts_recv = r.get("seq"), r.get("ts_exchange"), r.get("ts_recv")
        if not (_is_int(seq) and _is_int(ts_ex) and _is_int(ts_recv)):
            raise _Bad(BAD_HEADER)
        try:
            e_exch, e_sym = escape_tag(exch), escape_tag(sym)
        except ValueError:
            raise _Bad(BAD_TAG) from None
        head = (e_exch, e_sym, b"%d" % seq, b"%d" % ts_ex, b"%d" % ts_recv)
        if typ == "bbo":
            vals = tuple(_num(r.get(k)) for k in ("bid", "bid_qty", "ask", "ask_qty"))
            return self._bbo(out, (*head, *vals))
        if typ == "trade":
            tid, side = r.get("id"), r.get("side")
            if not _is_int(tid):
                raise _Bad(BAD_VALUE)
            if side is None:
                e_side = None
            elif isinstance(side, str):
                try:
                    e_side = escape_tag(side)
                except ValueError:
                    raise _Bad(BAD_TAG) from None
            else:
                raise _Bad(BAD_VALUE)
            return self._trade(out, (*head, b"%d" % tid, _num(r.get("price")),
                                     _num(r.get("qty")), e_side))
        if typ in ("book", "snapshot", "top"):
            return self._levels(out, typ, head, _levels(r.get("bids")), _levels(r.get("asks")))
        raise _Bad(BAD_HEADER)  # a configured type always has a branch above


def _is_int(v: object) -> TypeGuard[int]:
    return isinstance(v, int) and not isinstance(v, bool) and -(1 << 63) <= v < (1 << 63)


def _num(v: object) -> bytes:
    if not isinstance(v, str):
        raise _Bad(BAD_VALUE)
    b = v.encode()
    if not _NUM_RE.fullmatch(b):
        raise _Bad(BAD_VALUE)
    return b


def _levels(v: object) -> list[tuple[bytes, bytes]]:
    if not isinstance(v, list):
        raise _Bad(BAD_VALUE)
    out = []
    for lv in v:
        if not isinstance(lv, list) or len(lv) != 2:
            raise _Bad(BAD_VALUE)
        out.append((_num(lv[0]), _num(lv[1])))
    return out
