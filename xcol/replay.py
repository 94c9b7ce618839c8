"""Replay recorded exchange captures through the engine and check the books against oracles.

Two capture formats are read (see ``corpus/README.md``):

* **hftbacktest** (``*.gz`` or plain text): one message per line, ``<ns> <json>``.  Exactly
  one line per capture is a bare REST depth snapshot (``{"lastUpdateId": ...}``) that names
  no symbol: it belongs to the single instrument of its file (if it comes before any stream
  message, it is held until the first message says which instrument that is).
* **cryptofeed** (``X.ws.1.0``): a header ``<url> <-> <ts>``, client-sent lines
  ``<url> <- <ts>: <json>`` (skipped) and received lines ``<ts>: <message>``.  Companions
  next to it: ``X.http.*`` (REST depth snapshots, ``<url> -> <ts>: <body>``, the symbol in
  the URL's ``symbol=``), fed to the book at the time they arrived, interleaved with the
  stream by timestamp; and ``X.0`` (instrument metadata, for the scales).

Several files are replayed in order as ONE continuous capture, through one engine.

A gzip capture that was cut off (``xcol record`` killed, a disk that filled up) is read up
to its last complete line: every line before the cut is replayed, and the report lists
the file under ``truncated`` (and counts it as an error) instead of refusing the whole
capture.  Only a file with no complete line at all is bad input.

Oracles:

* Binance: a ``bookTicker`` carries the best bid/ask at update id ``u``; whenever a depth
  event ending at the same ``u`` is applied, the book's top must equal it exactly (in
  either arrival order).
* OKX: the CRC32 checksum every ``books`` message carries, verified by the book.
* Deribit: the ``prev_change_id`` → ``change_id`` chain of ``book.*.raw`` after each
  snapshot; ``checked`` is the number of changes applied, ``mismatched`` the gaps.
"""

from __future__ import annotations

import json
import re
import zlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, NamedTuple
from urllib.parse import parse_qs, urlsplit

from xcol._fast.book import Book
from xcol._fast.engine import Engine
from xcol.exchanges.meta import InstrumentMeta, read_metadata_file

__all__ = [
    "FORMAT_CRYPTOFEED",
    "FORMAT_HFTBACKTEST",
    "InstrumentState",
    "Line",
    "OracleResult",
    "ReplayError",
    "ReplayReport",
    "TruncatedCapture",
    "detect_format",
    "detect_market",
    "read_cryptofeed_http",
    "read_cryptofeed_ws",
    "read_hftbacktest",
    "replay",
]

FORMAT_HFTBACKTEST = "hftbacktest"
FORMAT_CRYPTOFEED = "cryptofeed"

# Engine result codes (xcol._fast.engine.RESULT_NAMES).
_R_ERROR = -1
_R_APPLIED = 0
_R_BAD_NUMBER = 6
_R_SNAPSHOT = 7
_R_BBO = 10
_R_TRADE = 11
_R_UNKNOWN_INSTRUMENT = 14
_R_REST_SNAPSHOT = 15
_R_BAD_NUMBER_MSG = 16

_MODE_BINANCE_SPOT = 0
_MODE_BINANCE_FUTURES = 1
_CH_BOOK = 1

_MAX_SAMPLES = 5
_APPLIED_KEEP = 1 << 16  # top-of-book history kept per instrument for late bookTickers
_PENDING_KEEP = 1 << 16  # bookTickers kept waiting for their depth event

_GZIP_MAGIC = b"\x1f\x8b"
_GZIP_WBITS = 31  # zlib: a gzip header and trailer (CRC-32, size) around deflate data
_READ_CHUNK = 1 << 20
_RE_CF_HEADER = re.compile(rb"^\S+ <-> \S+\s*$")
_RE_CF_SENT = re.compile(rb"^\S+ <- [0-9.]+: ")
_RE_CF_MSG = re.compile(rb"^[0-9]+(\.[0-9]*)?: ")
_RE_CF_HTTP = re.compile(rb"^https?://\S+ -> [0-9.]+: ")
_RE_HFT = re.compile(rb"^[0-9]+ [\[{]")
_RE_CF_NAME = re.compile(r"^(?P<prefix>.+)\.ws\.\d+\.\d+$")


class ReplayError(Exception):
    """Bad input: a file that is missing, unreadable, of unknown format or market.

    ``str(err)`` is one line naming the file and the problem.
    """

    def __init__(self, path: str, problem: str) -> None:
        super().__init__(f"{path}: {problem}")
        self.path = path
        self.problem = problem


class TruncatedCapture(Exception):
    """A gzip capture stops before its end: cut off (no end-of-stream marker) or corrupt
    from some point on.  Raised by the readers after they yielded every complete line
    before that point.

    :ivar path: the file.
    :ivar lines: complete lines read before the cut.
    :ivar reason: what is wrong, in words.
    """

    def __init__(self, path: str, lines: int, reason: str) -> None:
        super().__init__(f"{path}: truncated after {lines} complete lines ({reason})")
        self.path = path
        self.lines = lines
        self.reason = reason


class Line(NamedTuple):
    """One record of a capture: where it was, when it arrived, and the message bytes.

    ``ts`` is the local receive time in seconds.  ``error`` is set (and ``data`` is the
    raw line) when the line does not have the format's shape.
    """

    lineno: int
    ts: float
    data: bytes
    error: str | None = None


@dataclass(frozen=True, slots=True)
class OracleResult:
    """What the exchange's own oracle said about the books."""

    kind: str
    checked: int
    mismatched: int


@dataclass(frozen=True, slots=True)
class InstrumentState:
    """An instrument's incremental book at the end of the replay.

    Prices and sizes are the exchange's own decimal strings (None when the side is empty).
    """

    symbol: str
    bid: str | None
    bid_qty: str | None
    ask: str | None
    ask_qty: str | None
    levels: tuple[int, int]
    last_seq: int | None
    synced: bool

    def to_json(self) -> dict[str, Any]:
        """The JSON object of this instrument (without its name)."""
        return {
            "bid": self.bid,
            "bid_qty": self.bid_qty,
            "ask": self.ask,
            "ask_qty": self.ask_qty,
            "levels": [self.levels[0], self.levels[1]],
            "last_seq": self.last_seq,
            "synced": self.synced,
        }


@dataclass(slots=True)
class ReplayReport:
    """The outcome of a replay.

    ``to_json()`` holds the stable, documented fields; ``counters`` (engine counters),
    ``mismatch_samples`` and ``companions`` are extra detail for humans.
    """

    market: str
    files: list[str]
    messages: int
    book_updates: int
    gaps: int
    resyncs: int
    errors: int
    error_samples: list[str]
    unsynced: list[str]
    oracle: OracleResult
    instruments: dict[str, InstrumentState]
    counters: dict[str, Any] = field(default_factory=dict)
    mismatch_samples: list[str] = field(default_factory=list)
    companions: list[str] = field(default_factory=list)
    #: files that were cut off: ``{"file", "lines", "reason"}`` each (``lines``: the
    #: complete lines read before the cut, all of them replayed)
    truncated: list[dict[str, Any]] = field(default_factory=list)

    def strict_failures(self) -> list[str]:
        """Why ``--strict`` fails: oracle mismatches, gaps, unsynced books, truncated
        files (empty if none)."""
        out: list[str] = []
        if self.truncated:
            out.append(f"truncated: {', '.join(t['file'] for t in self.truncated)}")
        if self.oracle.mismatched:
            out.append(f"{self.oracle.mismatched} oracle mismatches ({self.oracle.kind})")
        if self.gaps:
            out.append(f"{self.gaps} sequence gaps")
        if self.unsynced:
            out.append(f"unsynced: {', '.join(self.unsynced)}")
        return out

    def to_json(self) -> dict[str, Any]:
        """The report as a JSON-ready dict (``json.dumps`` it to print)."""
        return {
            "market": self.market,
            "files": list(self.files),
            "messages": self.messages,
            "book_updates": self.book_updates,
            "gaps": self.gaps,
            "resyncs": self.resyncs,
            "errors": self.errors,
            "error_samples": list(self.error_samples),
            "unsynced": list(self.unsynced),
            "oracle": {
                "kind": self.oracle.kind,
                "checked": self.oracle.checked,
                "mismatched": self.oracle.mismatched,
            },
            "instruments": {name: st.to_json() for name, st in self.instruments.items()},
            "truncated": [dict(t) for t in self.truncated],
        }


# ----------------------------------------------------------------------------- readers


def _lines(path: Path) -> Iterator[bytes]:
    """The lines of a capture (with their line feed), gunzipped if it starts with gzip
    magic.  A gzip file that stops early yields its complete lines, then raises
    :class:`TruncatedCapture`."""
    with open(path, "rb") as fh:
        magic = fh.read(2)
        fh.seek(0)
        if magic == _GZIP_MAGIC:
            yield from _gzip_lines(fh, str(path))
        else:
            yield from fh


def _gzip_lines(fh: IO[bytes], name: str) -> Iterator[bytes]:
    """The lines of a gzip stream of one or more members (``xcol record`` appends a member
    per run), decompressed incrementally so that a cut-off stream still gives every line
    before the cut; :mod:`gzip` raises at the cut and loses the lines it had buffered."""
    dec = zlib.decompressobj(_GZIP_WBITS)
    in_member = False  # bytes of an unfinished member were fed to ``dec``
    tail = b""  # decompressed bytes after the last line feed
    lines = 0
    reason: str | None = None
    while reason is None:
        chunk = fh.read(_READ_CHUNK)
        if not chunk:
            if in_member:
                reason = "the gzip stream ends before its end-of-stream marker"
            break
        while chunk:
            if not in_member and not chunk.strip(b"\0"):
                break  # zero padding after the last member, as gzip(1) allows
            try:
                out = dec.decompress(chunk)
            except zlib.error as exc:
                # deflate may have turned the damage into garbage lines before this:
                # they were yielded, and the readers refuse them as malformed
                reason = f"corrupt gzip data: {exc}"
                break
            in_member = True
            chunk = b""
            if dec.eof:  # the member is complete (CRC checked); another may follow
                chunk = dec.unused_data
                dec = zlib.decompressobj(_GZIP_WBITS)
                in_member = False
            if out:
                parts = (tail + out).split(b"\n")
                tail = parts.pop()
                lines += len(parts)
                for part in parts:
                    yield part + b"\n"
    if reason is None:
        if tail:
            yield tail  # a complete stream whose last line has no line feed
        return
    if tail:
        reason += f"; an incomplete last line of {len(tail)} bytes was dropped"
    raise TruncatedCapture(name, lines, reason)


def _until_truncated(lines: Iterable[bytes]) -> Iterator[bytes]:
    """``lines`` up to a :class:`TruncatedCapture` (which ends them quietly)."""
    try:
        yield from lines
    except TruncatedCapture:
        return


def _first_line(path: Path) -> bytes:
    """The first non-blank line (its first 4 KiB), or b"" for an empty file."""
    for line in _lines(path):
        if line.strip():
            return line[:4096]
    return b""


def detect_format(path: str | Path) -> str:
    """``"hftbacktest"`` or ``"cryptofeed"`` from the first line of ``path``.

    Raises :class:`ReplayError` if the file is unreadable, empty, a cryptofeed REST or
    metadata companion, or of no known format.
    """
    p = Path(path)
    try:
        first = _first_line(p)
    except TruncatedCapture as exc:
        raise ReplayError(str(path), f"truncated before its first complete line "
                                     f"({exc.reason})") from None
    except (OSError, EOFError, zlib.error) as exc:
        raise ReplayError(str(path), f"cannot read: {_oserror_text(exc)}") from None
    if not first:
        raise ReplayError(str(path), "empty file")
    if _RE_HFT.match(first):
        return FORMAT_HFTBACKTEST
    if _RE_CF_HEADER.match(first) or _RE_CF_SENT.match(first) or _RE_CF_MSG.match(first):
        return FORMAT_CRYPTOFEED
    if _RE_CF_HTTP.match(first) or first.startswith(b"configuration: "):
        raise ReplayError(
            str(path),
            "a cryptofeed REST/metadata companion, not a stream capture "
            "(pass the matching .ws file; its companions are found next to it)",
        )
    raise ReplayError(
        str(path),
        "unknown capture format (expected '<ns> <json>' lines or a cryptofeed .ws capture)",
    )


def read_hftbacktest(path: str | Path) -> Iterator[Line]:
    """Lines of an hftbacktest-style capture: ``<ns> <json>`` (gzip or plain).

    :raises TruncatedCapture: after the last complete line of a cut-off gzip file.
    """
    for lineno, raw in enumerate(_lines(Path(path)), 1):
        sp = raw.find(b" ")
        if sp <= 0:
            if raw.strip():
                yield Line(lineno, 0.0, raw, "expected '<ns> <json>'")
            continue
        head = raw[:sp]
        if not head.isdigit():
            yield Line(lineno, 0.0, raw, "expected '<ns> <json>' (bad timestamp)")
            continue
        yield Line(lineno, int(head) / 1e9, raw[sp + 1 :].rstrip(b"\r\n"))


def read_cryptofeed_ws(path: str | Path) -> Iterator[Line]:
    """Received messages of a cryptofeed ``X.ws.N.M`` capture (header and sent lines
    skipped).

    :raises TruncatedCapture: after the last complete line of a cut-off gzip file.
    """
    for lineno, raw in enumerate(_lines(Path(path)), 1):
        head, sep, data = raw.partition(b": ")
        if not sep:
            if lineno == 1 and _RE_CF_HEADER.match(raw):
                continue
            if raw.strip():
                yield Line(lineno, 0.0, raw, "expected '<ts>: <message>'")
            continue
        try:
            ts = float(head)
        except ValueError:
            if b" <- " in head:
                continue  # a message the client sent
            yield Line(lineno, 0.0, raw, "expected '<ts>: <message>'")
            continue
        yield Line(lineno, ts, data.rstrip(b"\r\n"))


class _HttpRecord(NamedTuple):
    ts: float
    url: str
    body: bytes
    where: str


def read_cryptofeed_http(path: str | Path) -> Iterator[tuple[int, float, str, bytes]]:
    """``(lineno, ts, url, body)`` of each ``<url> -> <ts>: <body>`` line of a companion."""
    for lineno, raw in enumerate(_lines(Path(path)), 1):
        head, sep, body = raw.partition(b": ")
        url, arrow, ts = head.partition(b" -> ")
        if not sep or not arrow:
            continue
        try:
            t = float(ts)
        except ValueError:
            continue
        yield lineno, t, url.decode("utf-8", "replace"), body.rstrip(b"\r\n")


# ------------------------------------------------------------------ market detection


def _market_from_url(url: str) -> str | None:
    host = (urlsplit(url).hostname or "").lower()
    if host.startswith("fstream"):
        return "binance-usdm"
    if host.startswith("dstream"):
        return "binance-coinm"
    if "binancefuture" in host:
        return "binance-usdm"
    if "binance" in host:
        return "binance-spot"
    if "okx" in host or "okex" in host:
        return "okx"
    if "deribit" in host:
        return "deribit"
    return None


def _is_coinm(data: dict[str, Any]) -> bool:
    """COIN-M messages carry ``ps`` (the pair); its symbols are ``<BASE>USD_<PERP|date>``."""
    if "ps" in data:
        return True
    sym = data.get("s")
    return isinstance(sym, str) and "_" in sym and sym.split("_", 1)[0].endswith("USD")


_SNIFF_MARKERS = (b"depthUpdate", b"lastUpdateId", b"bookTicker", b'"arg"', b'"event"',
                  b"jsonrpc")


def _sniff_market(messages: Iterable[bytes], limit: int = 200_000) -> str | None:
    """The market of a stream from its messages: decisive on the first depth/OKX/Deribit
    message, else from weaker hints (bookTicker and REST snapshot shapes)."""
    hint: str | None = None
    for i, data in enumerate(messages):
        if i >= limit:
            break
        if not any(m in data for m in _SNIFF_MARKERS):
            continue
        try:
            obj = json.loads(data)
        except ValueError:
            continue
        if not isinstance(obj, dict):
            continue
        if "jsonrpc" in obj:
            return "deribit"
        if "arg" in obj or ("event" in obj and "stream" not in obj):
            return "okx"
        body = obj.get("data") if "stream" in obj else obj
        if not isinstance(body, dict):
            continue
        e = body.get("e")
        if e == "depthUpdate":
            if "pu" in body:
                return "binance-coinm" if _is_coinm(body) else "binance-usdm"
            return "binance-spot"
        if "lastUpdateId" in body:
            if "pair" in body:
                hint = "binance-coinm"
            elif "E" in body or "T" in body:
                hint = hint if hint in ("binance-usdm", "binance-coinm") else "binance-usdm"
            else:
                hint = "binance-spot"
        elif e == "bookTicker":
            hint = "binance-coinm" if _is_coinm(body) else "binance-usdm"
        elif "u" in body and "b" in body and "B" in body and e is None:
            hint = "binance-spot"
    return hint


def detect_market(path: str | Path, fmt: str | None = None) -> str:
    """The market of a capture: from a cryptofeed stream URL, else from its messages.

    Binance depth events with ``pu`` are futures (COIN-M if they carry ``ps`` or the
    symbol is ``<BASE>USD_...``, else USD-M); without ``pu`` spot.  OKX (``{"arg": ...}``)
    and Deribit (``{"jsonrpc": ...}``) are recognised by shape.  Raises
    :class:`ReplayError` if it cannot tell.
    """
    fmt = fmt or detect_format(path)
    try:
        if fmt == FORMAT_CRYPTOFEED:
            first = _first_line(Path(path))
            if _RE_CF_HEADER.match(first) or _RE_CF_SENT.match(first):
                url = first.split(b" ", 1)[0].decode("utf-8", "replace")
                market = _market_from_url(url)
                if market is not None:
                    return market
            found = _sniff_market(_until_truncated(
                ln.data for ln in read_cryptofeed_ws(path) if not ln.error))
        else:
            found = _sniff_market(_until_truncated(
                ln.data for ln in read_hftbacktest(path) if not ln.error))
    except (OSError, EOFError, zlib.error) as exc:
        raise ReplayError(str(path), f"cannot read: {_oserror_text(exc)}") from None
    if found is None:
        raise ReplayError(str(path), "cannot tell the exchange/market from its content")
    return found


def _oserror_text(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror.lower() if exc.strerror[:1].isupper() else exc.strerror
    return str(exc) or type(exc).__name__


def _companions(path: Path) -> tuple[list[Path], list[Path]]:
    """(REST snapshot files, metadata files) next to a cryptofeed ``X.ws.N.M`` capture."""
    m = _RE_CF_NAME.match(path.name)
    if not m:
        return [], []
    prefix = m.group("prefix")
    http = sorted(p for p in path.parent.glob(f"{_glob_escape(prefix)}.http.*") if p.is_file())
    meta = [p for p in [path.parent / f"{prefix}.0"] if p.is_file()]
    return http, meta


def _glob_escape(text: str) -> str:
    """``text`` with glob metacharacters escaped."""
    return re.sub(r"([*?\[])", r"[\1]", text)


# ----------------------------------------------------------------------------- replay


class _Replayer:
    """One engine fed a continuous capture, with the oracle bookkeeping around it."""

    def __init__(self, market: str, meta: dict[str, InstrumentMeta]) -> None:
        self.market = market
        self.engine = Engine(market)
        self.binance = market.startswith("binance")
        self.meta = meta
        self.messages = 0
        #: REST snapshots fed so far (cryptofeed captures: the position in their list)
        self.snap_pos = 0
        self.errors = 0
        self.error_samples: list[str] = []
        self.book_insts: set[int] = set()
        # Binance bookTicker oracle, per instrument id
        self.books: dict[int, Book] = {}
        self.applied: dict[int, dict[int, tuple[int, int, int, int]]] = {}
        self.pending: dict[int, dict[int, tuple[int, int, int, int]]] = {}
        self.last_applied: dict[int, int] = {}
        self.checked = 0
        self.mismatched = 0
        self.mismatch_samples: list[str] = []
        self.truncated: list[dict[str, Any]] = []

    # -------------------------------------------------------------- helpers

    def error(self, where: str, message: str) -> None:
        self.errors += 1
        if len(self.error_samples) < _MAX_SAMPLES:
            self.error_samples.append(f"{where}: {message}")

    def truncation(self, name: str, exc: TruncatedCapture) -> None:
        """Record that ``name`` was cut off after ``exc.lines`` complete lines."""
        self.truncated.append({"file": name, "lines": exc.lines, "reason": exc.reason})
        self.error(name, f"truncated after {exc.lines} complete lines ({exc.reason})")

    def register(self, symbol: str) -> int:
        """Register ``symbol`` with its metadata scales (engine default if unknown)."""
        m = self.meta.get(symbol)
        if m is not None:
            inst = self.engine.add_instrument(symbol, m.price_scale, m.qty_scale, m.grid)
        else:
            inst = self.engine.add_instrument(symbol)
        if self.binance and inst not in self.books:
            book = self.engine.book(inst, _CH_BOOK)
            book.set_trace(True)
            self.books[inst] = book
            self.applied[inst] = {}
            self.pending[inst] = {}
            self.last_applied[inst] = -1
        return inst

    def _fmt_top(self, inst: int, top: tuple[int, int, int, int]) -> str:
        ps, qs = self.engine.scales_of(inst)
        b, bq, a, aq = top

        def f(v: int, s: int) -> str:
            return f"{v / 10**s:.{s}f}" if s else str(v)

        return f"{f(b, ps)}x{f(bq, qs)} / {f(a, ps)}x{f(aq, qs)}"

    def _compare(self, inst: int, seq: int, book_top: tuple[int, int, int, int],
                 ticker: tuple[int, int, int, int]) -> None:
        self.checked += 1
        if book_top != ticker:
            self.mismatched += 1
            if len(self.mismatch_samples) < _MAX_SAMPLES:
                sym = self.engine.instruments[inst]
                self.mismatch_samples.append(
                    f"{sym} u={seq}: book {self._fmt_top(inst, book_top)} "
                    f"!= bookTicker {self._fmt_top(inst, ticker)}"
                )

    def _bbo(self) -> None:
        seq, b, bq, a, aq = self.engine.last_bbo()
        inst = self.engine.last_inst
        applied = self.applied.get(inst)
        if applied is None:
            return
        ticker = (b, bq, a, aq)
        top = applied.get(seq)
        if top is not None:
            self._compare(inst, seq, top, ticker)
        elif seq > self.last_applied[inst]:
            pending = self.pending[inst]
            pending[seq] = ticker
            if len(pending) > _PENDING_KEEP:
                for k in list(pending)[: _PENDING_KEEP // 2]:
                    del pending[k]

    def _drain(self, inst: int) -> None:
        book = self.books.get(inst)
        if book is None:
            return
        trace = book.drain_trace()
        if not trace:
            return
        applied = self.applied[inst]
        pending = self.pending[inst]
        seq = -1
        for seq, b, bq, a, aq in trace:
            top = (b, bq, a, aq)
            applied[seq] = top
            if pending:
                ticker = pending.pop(seq, None)
                if ticker is not None:
                    self._compare(inst, seq, top, ticker)
        self.last_applied[inst] = seq
        if len(applied) > _APPLIED_KEEP:
            for k in list(applied)[: _APPLIED_KEEP // 2]:
                del applied[k]
        if len(pending) > 1024:
            self.pending[inst] = {k: v for k, v in pending.items() if k > seq}

    # ------------------------------------------------------------ feeding

    def feed(self, data: bytes, file: str, lineno: int) -> int:
        """Feed one stream message; returns the engine's result code."""
        engine = self.engine
        r: int = engine.feed(data)
        if r == _R_UNKNOWN_INSTRUMENT:
            sym = engine.last_symbol
            if sym is None:
                self.error(f"{file}:{lineno}", "message names no instrument")
                return r
            self.register(sym)
            r = engine.feed(data)
        if r == _R_BBO:
            if self.binance:
                self._bbo()
        elif r == _R_APPLIED:
            inst = engine.last_inst
            self.book_insts.add(inst)
            if self.binance:
                self._drain(inst)
        elif 0 < r <= _R_SNAPSHOT:
            self.book_insts.add(engine.last_inst)
            if r == _R_BAD_NUMBER:
                self.error(f"{file}:{lineno}", self._bad_number_text())
        elif r == _R_ERROR:
            self.error(f"{file}:{lineno}", engine.last_error() or "decode error")
        elif r == _R_BAD_NUMBER_MSG:
            self.error(f"{file}:{lineno}", self._bad_number_text())
        return r

    def _bad_number_text(self) -> str:
        sym = self.engine.last_symbol or "?"
        return f"{sym}: a price or size does not fit the instrument's scale"

    def snapshot(self, symbol: str, body: bytes, where: str) -> int:
        """Load a REST depth snapshot into ``symbol``'s book (registering it if needed)."""
        inst = self.engine.instrument_id(symbol)
        if inst < 0:
            inst = self.register(symbol)
        r: int = self.engine.feed_snapshot(inst, body)
        self.book_insts.add(inst)
        if r == _R_ERROR:
            self.error(where, f"REST snapshot for {symbol}: "
                       f"{self.engine.last_error() or 'not a depth snapshot'}")
        elif r == _R_BAD_NUMBER:
            self.error(where, f"REST snapshot for {symbol}: "
                       "a price or size does not fit the instrument's scale")
        if self.binance:
            self._drain(inst)
        return r

    def peek_symbol(self, data: bytes) -> str | None:
        """The instrument a message names, without applying it."""
        self.engine.decoder.decode_frame(data)
        sym: str | None = self.engine.last_symbol
        return sym

    # --------------------------------------------------------------- files

    def run_hftbacktest(self, path: Path, name: str) -> None:
        held: tuple[bytes, int] | None = None
        file_insts: set[int] = set()
        engine = self.engine
        cut: TruncatedCapture | None = None
        try:
            for lineno, _ts, data, err in read_hftbacktest(path):
                if err is not None:
                    self.error(f"{name}:{lineno}", err)
                    continue
                self.messages += 1
                if held is not None:
                    sym = self.peek_symbol(data)
                    if sym is not None:
                        self.snapshot(sym, held[0], f"{name}:{held[1]}")
                        file_insts.add(engine.instrument_id(sym))
                        held = None
                r = self.feed(data, name, lineno)
                if r == _R_REST_SNAPSHOT:
                    if len(file_insts) == 1:
                        inst = next(iter(file_insts))
                        self.snapshot(engine.instruments[inst], data, f"{name}:{lineno}")
                    elif not file_insts:
                        held = (data, lineno)
                    else:
                        self.error(f"{name}:{lineno}", "a REST snapshot without a symbol in a "
                                   "file with several instruments: cannot tell whose it is")
                elif 0 <= r <= _R_TRADE and len(file_insts) < 2:
                    file_insts.add(engine.last_inst)
        except TruncatedCapture as exc:
            cut = exc  # what was read still settles a held snapshot below
        if held is not None:
            symbols = engine.instruments
            if len(symbols) == 1:
                self.snapshot(symbols[0], held[0], f"{name}:{held[1]}")
            else:
                self.error(f"{name}:{held[1]}", "a REST snapshot without a symbol and no "
                           "stream message to tell whose it is")
        if cut is not None:
            raise cut

    def run_cryptofeed(self, path: Path, name: str, snaps: list[_HttpRecord],
                       pos: int) -> int:
        """Replay one ws capture, feeding REST snapshots ``snaps[pos:]`` as they arrived;
        returns the new position in ``snaps``."""
        nsnaps = len(snaps)
        self.snap_pos = pos
        for lineno, ts, data, err in read_cryptofeed_ws(path):
            if err is not None:
                self.error(f"{name}:{lineno}", err)
                continue
            while pos < nsnaps and snaps[pos].ts <= ts:
                self.feed_http(snaps[pos])
                pos += 1
                # kept here too: when the file turns out to be cut off, the caller
                # goes on from here (no snapshot may be fed twice)
                self.snap_pos = pos
            self.messages += 1
            r = self.feed(data, name, lineno)
            if r == _R_REST_SNAPSHOT:
                self.error(f"{name}:{lineno}", "a REST snapshot body inside a stream capture")
        return pos

    def feed_http(self, rec: _HttpRecord) -> None:
        parts = urlsplit(rec.url)
        symbol = parse_qs(parts.query).get("symbol", [None])[0]
        if not parts.path.rstrip("/").endswith("depth") or not symbol:
            return
        self.messages += 1
        self.snapshot(symbol, rec.body, rec.where)

    # -------------------------------------------------------------- report

    def report(self, files: list[str], companions: list[str]) -> ReplayReport:
        engine = self.engine
        symbols: list[str] = engine.instruments
        book_updates = gaps = resyncs = 0
        ck_checked = ck_failed = changes = book_gaps = 0
        for book in engine.books_list():
            st = book.stats()
            snapshots = int(st["snapshots"])
            updates = int(st["updates"])
            # In-stream snapshots (OKX, Deribit) count in "updates"; REST ones do not.
            if book.mode not in (_MODE_BINANCE_SPOT, _MODE_BINANCE_FUTURES):
                updates -= snapshots
            book_updates += updates + snapshots
            resyncs += int(st["gaps"])
            gaps += int(st["gaps"]) - int(st["checksums_failed"])
            ck_checked += int(st["checksums_checked"])
            ck_failed += int(st["checksums_failed"])
        instruments: dict[str, InstrumentState] = {}
        for inst in sorted(self.book_insts, key=lambda i: symbols[i]):
            book = engine.book(inst, _CH_BOOK)
            bid = book.best_bid()
            ask = book.best_ask()
            nb, na = book.depth()
            seq = int(book.last_seq)
            instruments[symbols[inst]] = InstrumentState(
                symbol=symbols[inst],
                bid=bid[0] if bid else None,
                bid_qty=bid[1] if bid else None,
                ask=ask[0] if ask else None,
                ask_qty=ask[1] if ask else None,
                levels=(int(nb), int(na)),
                last_seq=seq if seq >= 0 else None,
                synced=bool(book.synced),
            )
            if self.market == "deribit":
                st = book.stats()
                changes += int(st["updates"]) - int(st["snapshots"])
                book_gaps += int(st["gaps"])
        if self.binance:
            oracle = OracleResult("binance-bookticker", self.checked, self.mismatched)
        elif self.market == "okx":
            oracle = OracleResult("okx-checksum", ck_checked, ck_failed)
        else:
            oracle = OracleResult("deribit-change-id", changes, book_gaps)
        return ReplayReport(
            market=self.market,
            files=files,
            messages=self.messages,
            book_updates=book_updates,
            gaps=gaps,
            resyncs=resyncs,
            errors=self.errors,
            error_samples=list(self.error_samples),
            unsynced=[name for name, s in instruments.items() if not s.synced],
            oracle=oracle,
            instruments=instruments,
            counters=dict(engine.counters()),
            mismatch_samples=list(self.mismatch_samples),
            companions=companions,
            truncated=list(self.truncated),
        )


def _resolve(path: str, corpus_root: str | Path | None) -> Path:
    p = Path(path)
    if corpus_root is not None and not p.is_absolute():
        p = Path(corpus_root) / p
    return p


def _check_readable(p: Path, name: str) -> None:
    if not p.exists():
        raise ReplayError(name, "no such file")
    if not p.is_file():
        raise ReplayError(name, "not a regular file")
    try:
        with open(p, "rb") as fh:
            fh.read(1)
    except OSError as exc:
        raise ReplayError(name, f"cannot read: {_oserror_text(exc)}") from None


def replay(paths: Sequence[str], *, corpus_root: str | Path | None = None) -> ReplayReport:
    """Replay ``paths`` in order as one continuous capture and check the books.

    :param paths: capture files (hftbacktest ``<ns> <json>`` lines, gzip or plain, or
        cryptofeed ``X.ws.N.M``); all must be of the same market.
    :param corpus_root: directory relative ``paths`` are looked up under (default: the
        current directory).
    A gzip file cut off part-way (``xcol record`` killed) is replayed up to its last
    complete line and listed in the report's ``truncated``; the replay goes on with the
    next file.

    :raises ReplayError: a file is missing, unreadable, of unknown format (including a
        gzip file cut off before its first complete line), of an undetectable market, or
        of a different market than the others.
    """
    if not paths:
        raise ReplayError("-", "no capture files given")
    plan: list[tuple[str, Path, str, str]] = []
    for name in paths:
        p = _resolve(name, corpus_root)
        _check_readable(p, name)
        fmt = detect_format(p)
        market = detect_market(p, fmt)
        if plan and market != plan[0][3]:
            raise ReplayError(name, f"market {market} differs from {plan[0][3]} "
                                    f"of {plan[0][0]} (one replay is one market)")
        plan.append((name, p, fmt, market))
    market = plan[0][3]

    http_files: list[Path] = []
    meta_files: list[Path] = []
    for _name, p, fmt, _m in plan:
        if fmt == FORMAT_CRYPTOFEED:
            h, m = _companions(p)
            http_files += [x for x in h if x not in http_files]
            meta_files += [x for x in m if x not in meta_files]

    meta: dict[str, InstrumentMeta] = {}
    for mp in meta_files:
        try:
            meta.update(read_metadata_file(mp))
        except OSError as exc:
            raise ReplayError(str(mp), f"cannot read: {_oserror_text(exc)}") from None

    rp = _Replayer(market, meta)
    snaps: list[_HttpRecord] = []
    for hp in http_files:
        try:
            for lineno, ts, url, body in read_cryptofeed_http(hp):
                snaps.append(_HttpRecord(ts, url, body, f"{hp}:{lineno}"))
        except TruncatedCapture as exc:
            rp.truncation(str(hp), exc)
        except (OSError, EOFError, zlib.error) as exc:
            raise ReplayError(str(hp), f"cannot read: {_oserror_text(exc)}") from None
    snaps.sort(key=lambda s: s.ts)  # stable: same-time snapshots keep file order

    pos = 0
    for name, p, fmt, _m in plan:
        try:
            if fmt == FORMAT_HFTBACKTEST:
                rp.run_hftbacktest(p, name)
            else:
                pos = rp.run_cryptofeed(p, name, snaps, pos)
        except TruncatedCapture as exc:
            # every complete line before the cut was replayed; the next file continues,
            # with the snapshots not fed yet
            rp.truncation(name, exc)
            if fmt != FORMAT_HFTBACKTEST:
                pos = rp.snap_pos
        except (OSError, EOFError, zlib.error) as exc:
            raise ReplayError(name, f"cannot read: {_oserror_text(exc)}") from None
    for rec in snaps[pos:]:
        rp.feed_http(rec)
    return rp.report([name for name, *_ in plan], [str(x) for x in http_files + meta_files])
