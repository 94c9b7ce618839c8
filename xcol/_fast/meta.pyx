# cython: language_level=3
# distutils: language=c++
"""Instrument lists (Binance ``exchangeInfo``, OKX and Deribit instruments) over
simdjson On-Demand.

:func:`parse_body` walks one REST body once and returns, per instrument, its
symbol, its price and size scales and the exact text of its tick, lot and
contract value.  Decimals are counted on the text as the exchange wrote it
(``"0.10"`` -> 2, Deribit's bare ``5e-05`` -> 5) and the scales computed here in
C: no float, no Decimal.  The scale rule is :mod:`xcol.exchanges.meta`'s:
``min(max(decimals, 8), 12)``.

This is control plane (a body at start-up), so one Python tuple per instrument
is fine; :mod:`xcol.exchanges.meta` turns them into ``InstrumentMeta``.

Errors: a body that is not JSON, not an object, an error answer (OKX ``code``
not 0, Deribit ``error``, Binance ``code``/``msg`` without ``symbols``), a row
that is not an object, or a field of the wrong type (a tick that is not a
non-negative decimal number, a symbol that is not a string) raise
:class:`MetadataError` with a message that names the list, the row and the
field.  A row without a symbol, tick or lot (absent, null or ``""``) is
skipped and counted.
"""

cimport cython
from libc.stdlib cimport realloc, free
from libc.string cimport memcpy, memcmp, memset

from xcol._fast.includes.simdjson cimport (
    Parser, Document, Value, ObjCursor, ArrCursor, PADDING, error_message,
    iterate, doc_object, val_object, val_array, obj_next, arr_next, val_raw,
    val_str, doc_at_end,
)

MIN_SCALE = 8
MAX_SCALE = 12

cdef int _MIN_SCALE = 8
cdef int _MAX_SCALE = 12
# Saturation point of a parsed exponent: far beyond any scale, far inside int.
cdef int _EXP_CAP = 100000000

VENUE_NAMES = {MV_BINANCE: "binance", MV_OKX: "okx", MV_DERIBIT: "deribit"}
_VENUES = {"auto": MV_AUTO, "binance": MV_BINANCE, "okx": MV_OKX, "deribit": MV_DERIBIT}
_LISTS = {MV_BINANCE: ("Binance exchangeInfo", "symbols"),
          MV_OKX: ("OKX instruments", "data"),
          MV_DERIBIT: ("Deribit instruments", "result")}


class MetadataError(ValueError):
    """An instrument list that cannot be read: not JSON, an error answer, or a
    field of the wrong type.  The message names the list, the row and the field."""


class _Broken(Exception):
    """The JSON itself is broken (raised inside the walk, reported as MetadataError)."""


cdef inline bint keq(const char *k, size_t n, const char *lit, size_t ln) noexcept nogil:
    return n == ln and memcmp(k, lit, n) == 0


cdef inline bint literal(const char *p, const char *lit, size_t n) noexcept nogil:
    """``p`` (padded with zeros) holds the JSON literal ``lit`` and nothing glued to it."""
    cdef char c
    if memcmp(p, lit, n) != 0:
        return False
    c = p[n]
    return c == 0 or c == b' ' or c == b'\t' or c == b'\r' or c == b'\n'


cdef int count_decimals(const char *p, size_t n, int *dec) noexcept nogil:
    cdef const char *end = p + n
    cdef int frac = 0
    cdef long ex = 0
    cdef int exsign = 1
    cdef int nint = 0
    cdef long d
    if n == 0:
        return DEC_SYNTAX
    if p[0] == b'-':
        return DEC_NEGATIVE
    while p < end and b'0' <= p[0] <= b'9':
        nint += 1
        p += 1
    if nint == 0:
        return DEC_SYNTAX
    if p < end and p[0] == b'.':
        p += 1
        while p < end and b'0' <= p[0] <= b'9':
            if frac < _EXP_CAP:
                frac += 1
            p += 1
        if frac == 0:
            return DEC_SYNTAX
    if p < end and (p[0] == b'e' or p[0] == b'E'):
        p += 1
        if p < end and (p[0] == b'+' or p[0] == b'-'):
            if p[0] == b'-':
                exsign = -1
            p += 1
        if p >= end or not (b'0' <= p[0] <= b'9'):
            return DEC_SYNTAX
        while p < end and b'0' <= p[0] <= b'9':
            if ex < _EXP_CAP:
                ex = ex * 10 + (p[0] - 48)
            p += 1
    if p != end:
        return DEC_SYNTAX
    d = frac - exsign * ex
    if d < 0:
        d = 0
    elif d > _EXP_CAP:
        d = _EXP_CAP
    dec[0] = <int>d
    return DEC_OK


cdef inline int scale_of(int dec) noexcept nogil:
    if dec < _MIN_SCALE:
        return _MIN_SCALE
    if dec > _MAX_SCALE:
        return _MAX_SCALE
    return dec


cdef inline void slot_clear(Slot *s) noexcept nogil:
    s.p = NULL
    s.n = 0
    s.kind = SL_ABSENT


cdef inline int opened(int r) except -1:
    """Raise :class:`_Broken` for simdjson's error code ``r`` of an opening call."""
    if r != 0:
        raise _Broken(error_message(r).decode())
    return 0


cdef inline bint more(int r) except -1:
    """``obj_next``/``arr_next``'s result: True for another item, False at the end;
    an error raises :class:`_Broken`."""
    if r < 0:
        raise _Broken(error_message(-r).decode())
    return r != 0


cdef int fill(Value &v, Slot *s) except -1:
    """Remember ``v``: a string's unescaped content, a bare number's raw text,
    or just its kind.  Containers are left for the parent cursor to skip."""
    cdef const char *p = NULL
    cdef size_t n = 0
    val_raw(v, &p, &n)
    if n == 0:
        raise _Broken("empty value")
    if p[0] == b'"':
        opened(val_str(v, &p, &n))
        s.kind = SL_STR
    elif p[0] == b'-' or b'0' <= p[0] <= b'9':
        while n > 0 and (p[n - 1] == b' ' or p[n - 1] == b'\n' or p[n - 1] == b'\r'
                         or p[n - 1] == b'\t'):
            n -= 1
        s.kind = SL_NUM
    elif p[0] == b'n':
        s.kind = SL_NULL
    else:
        s.kind = SL_OTHER
    s.p = p
    s.n = n
    return 0


cdef inline bint slot_missing(Slot *s) noexcept nogil:
    """Absent, null or the empty string: the row lacks this field."""
    return s.kind == SL_ABSENT or s.kind == SL_NULL or (s.kind == SL_STR and s.n == 0)


cdef str slot_repr(Slot *s):
    cdef bytes b = s.p[:min(s.n, <size_t>40)] if s.p != NULL else b""
    text = b.decode("utf-8", "replace")
    if s.kind == SL_STR:
        return repr(text)
    if s.kind == SL_OTHER:
        return {b"t": "true", b"f": "false", b"{": "an object", b"[": "an array"}.get(
            b[:1], text)
    return text


cdef object number(Slot *s, str where, str field, int *dec):
    """The exact text of a tick/lot/contract value, its decimals in ``dec``."""
    cdef int r
    if s.kind != SL_STR and s.kind != SL_NUM:
        raise MetadataError(f"{where}: {field} is {slot_repr(s)}, not a number")
    r = count_decimals(s.p, s.n, dec)
    if r == DEC_OK and s.kind == SL_NUM and s.n > 1 and s.p[0] == b'0' and (
            b'0' <= s.p[1] <= b'9'):
        r = DEC_SYNTAX          # a bare JSON number has no leading zero
    if r == DEC_NEGATIVE:
        raise MetadataError(f"{where}: {field} {slot_repr(s)} is negative")
    if r != DEC_OK:
        raise MetadataError(f"{where}: {field} {slot_repr(s)} is not a decimal number")
    return s.p[:s.n].decode("ascii")


cdef object symbol_of(Slot *s, str where, str field):
    """The symbol text, None when missing; a symbol that is not a string is an error."""
    if slot_missing(s):
        return None
    if s.kind != SL_STR:
        raise MetadataError(f"{where}: {field} is {slot_repr(s)}, not a string")
    return s.p[:s.n].decode("utf-8")


cdef object make_row(object sym, Slot *tick, Slot *lot, Slot *cv, str where,
                     str tick_name, str lot_name, str cv_name):
    cdef int tdec = 0
    cdef int ldec = 0
    cdef int cdec = 0
    t = number(tick, where, tick_name, &tdec)
    lt = number(lot, where, lot_name, &ldec)
    c = None if slot_missing(cv) else number(cv, where, cv_name, &cdec)
    return (sym, scale_of(tdec), scale_of(ldec), t, lt, c)


@cython.final
cdef class _Walk:
    """One walk over one body (holds the simdjson parser and the padded copy)."""

    def __cinit__(self, int want):
        self.buf = NULL
        self.cap = 0
        self.want = want
        self.rows_b = self.rows_o = self.rows_d = None
        self.skipped_b = self.skipped_o = self.skipped_d = 0
        self.row_err_b = self.row_err_o = self.row_err_d = None
        slot_clear(&self.code)
        slot_clear(&self.msg)
        slot_clear(&self.error)

    def __dealloc__(self):
        free(self.buf)

    cdef int walk(self, const char *data, size_t n) except -1:
        cdef ObjCursor root
        cdef Value v
        cdef const char *key = NULL
        cdef size_t klen = 0
        cdef int r
        cdef const char *q
        cdef char *p = <char *>realloc(self.buf, n + PADDING)
        if p == NULL:
            raise MemoryError()
        self.buf = p
        self.cap = n + PADDING
        memcpy(self.buf, data, n)
        memset(self.buf + n, 0, PADDING)
        opened(iterate(self.parser, self.buf, n, self.doc))
        r = doc_object(self.doc, root)
        if r != 0:
            q = self.buf
            while q[0] == b' ' or q[0] == b'\t' or q[0] == b'\r' or q[0] == b'\n':
                q += 1
            if (q[0] == b'[' or q[0] == b'"' or q[0] == b'-' or b'0' <= q[0] <= b'9'
                    or literal(q, b"true", 4) or literal(q, b"false", 5)
                    or literal(q, b"null", 4)):
                raise MetadataError("instrument list is not a JSON object")
            raise _Broken(error_message(r).decode())
        while more(obj_next(root, &key, &klen, v)):
            if keq(key, klen, b"symbols", 7):
                if self.want in (MV_AUTO, MV_BINANCE):
                    self._rows(v, MV_BINANCE)
            elif keq(key, klen, b"data", 4):
                if self.want in (MV_AUTO, MV_OKX):
                    self._rows(v, MV_OKX)
            elif keq(key, klen, b"result", 6):
                if self.want in (MV_AUTO, MV_DERIBIT):
                    self._rows(v, MV_DERIBIT)
            elif keq(key, klen, b"code", 4):
                fill(v, &self.code)
            elif keq(key, klen, b"msg", 3):
                fill(v, &self.msg)
            elif keq(key, klen, b"error", 5):
                fill(v, &self.error)
                if self.error.kind == SL_OTHER and self.error.p[0] == b'{':
                    self._error_object(v)
        if not doc_at_end(self.doc):
            raise _Broken("content after the document")
        return 0

    cdef _error_object(self, Value &v):
        """Deribit ``"error": {"code": ..., "message": ...}``: keep code and message."""
        cdef ObjCursor c
        cdef Value w
        cdef const char *key = NULL
        cdef size_t klen = 0
        opened(val_object(v, c))
        while more(obj_next(c, &key, &klen, w)):
            if keq(key, klen, b"code", 4):
                fill(w, &self.code)
            elif keq(key, klen, b"message", 7):
                fill(w, &self.msg)

    cdef int _rows(self, Value &v, int venue) except -1:
        cdef ArrCursor arr
        cdef Value row
        cdef Py_ssize_t i = 0
        cdef Py_ssize_t skipped = 0
        cdef const char *p = NULL
        cdef size_t n = 0
        val_raw(v, &p, &n)
        if n == 0 or p[0] != b'[':
            return 0            # not a list: judged at the end ("no 'symbols' list")
        opened(val_array(v, arr))
        out = []
        err = None
        while more(arr_next(arr, row)):
            if err is None:
                try:
                    if venue == MV_BINANCE:
                        t = self._binance_row(row, i)
                    else:
                        t = self._plain_row(row, i, venue)
                except MetadataError as exc:
                    # keep walking: an error answer elsewhere in the body is the better news
                    err = str(exc)
                    t = None
                if t is None:
                    skipped += 1
                else:
                    out.append(t)
            i += 1
        if venue == MV_BINANCE:
            self.rows_b, self.skipped_b, self.row_err_b = out, skipped, err
        elif venue == MV_OKX:
            self.rows_o, self.skipped_o, self.row_err_o = out, skipped, err
        else:
            self.rows_d, self.skipped_d, self.row_err_d = out, skipped, err
        return 0

    cdef object _binance_row(self, Value &row, Py_ssize_t i):
        cdef ObjCursor obj
        cdef ObjCursor fo
        cdef ArrCursor fa
        cdef Value v
        cdef Value f
        cdef Value w
        cdef Slot sym, tick, lot, cv, ftype, fval, filters, ts, ss
        cdef const char *key = NULL
        cdef size_t klen = 0
        cdef Py_ssize_t j
        cdef int which
        where = f"Binance exchangeInfo: symbols[{i}]"
        slot_clear(&sym)
        slot_clear(&tick)
        slot_clear(&lot)
        slot_clear(&cv)
        slot_clear(&filters)
        fill(row, &fval)
        if fval.kind != SL_OTHER or fval.p[0] != b'{':
            raise MetadataError(f"{where} is {slot_repr(&fval)}, not an object")
        opened(val_object(row, obj))
        while more(obj_next(obj, &key, &klen, v)):
            if keq(key, klen, b"symbol", 6):
                fill(v, &sym)
            elif keq(key, klen, b"contractSize", 12):
                fill(v, &cv)
            elif keq(key, klen, b"filters", 7):
                fill(v, &filters)
                if filters.kind != SL_OTHER or filters.p[0] != b'[':
                    continue
                opened(val_array(v, fa))
                j = 0
                while more(arr_next(fa, f)):
                    fill(f, &fval)
                    j += 1
                    if fval.kind != SL_OTHER or fval.p[0] != b'{':
                        continue        # the reference ignores non-object filters too
                    opened(val_object(f, fo))
                    slot_clear(&ftype)
                    which = 0           # 1: PRICE_FILTER, 2: LOT_SIZE
                    slot_clear(&ts)
                    slot_clear(&ss)
                    while more(obj_next(fo, &key, &klen, w)):
                        if keq(key, klen, b"filterType", 10):
                            fill(w, &ftype)
                        elif keq(key, klen, b"tickSize", 8):
                            fill(w, &ts)
                        elif keq(key, klen, b"stepSize", 8):
                            fill(w, &ss)
                    if ftype.kind == SL_STR:
                        if keq(ftype.p, ftype.n, b"PRICE_FILTER", 12):
                            tick = ts
                        elif keq(ftype.p, ftype.n, b"LOT_SIZE", 8):
                            lot = ss
        s = symbol_of(&sym, where, "symbol")
        if s is None:
            return None
        where = f"{where} {s}"
        if filters.kind != SL_OTHER or filters.p[0] != b'[':
            if slot_missing(&filters):
                return None
            raise MetadataError(f"{where}: filters is {slot_repr(&filters)}, not a list")
        if slot_missing(&tick) or slot_missing(&lot):
            return None
        return make_row(s, &tick, &lot, &cv, where, "PRICE_FILTER tickSize",
                        "LOT_SIZE stepSize", "contractSize")

    cdef object _plain_row(self, Value &row, Py_ssize_t i, int venue):
        cdef ObjCursor obj
        cdef Value v
        cdef Slot sym, tick, lot, cv, first
        cdef const char *key = NULL
        cdef size_t klen = 0
        cdef bint okx = venue == MV_OKX
        where = f"OKX instruments: data[{i}]" if okx else f"Deribit instruments: result[{i}]"
        slot_clear(&sym)
        slot_clear(&tick)
        slot_clear(&lot)
        slot_clear(&cv)
        fill(row, &first)
        if first.kind != SL_OTHER or first.p[0] != b'{':
            raise MetadataError(f"{where} is {slot_repr(&first)}, not an object")
        opened(val_object(row, obj))
        while more(obj_next(obj, &key, &klen, v)):
            if okx:
                if keq(key, klen, b"instId", 6):
                    fill(v, &sym)
                elif keq(key, klen, b"tickSz", 6):
                    fill(v, &tick)
                elif keq(key, klen, b"lotSz", 5):
                    fill(v, &lot)
                elif keq(key, klen, b"ctVal", 5):
                    fill(v, &cv)
            else:
                if keq(key, klen, b"instrument_name", 15):
                    fill(v, &sym)
                elif keq(key, klen, b"tick_size", 9):
                    fill(v, &tick)
                elif keq(key, klen, b"min_trade_amount", 16):
                    fill(v, &lot)
                elif keq(key, klen, b"contract_size", 13):
                    fill(v, &cv)
        s = symbol_of(&sym, where, "instId" if okx else "instrument_name")
        if s is None:
            return None
        where = f"{where} {s}"
        if slot_missing(&tick) or slot_missing(&lot):
            return None
        if okx:
            return make_row(s, &tick, &lot, &cv, where, "tickSz", "lotSz", "ctVal")
        return make_row(s, &tick, &lot, &cv, where, "tick_size", "min_trade_amount",
                        "contract_size")

    cdef str _answer_error(self, int venue):
        """The error an answer carries (OKX code != 0, Deribit error), or None."""
        cdef Slot *c = &self.code
        if venue == MV_OKX:
            if slot_missing(c) or (c.kind in (SL_STR, SL_NUM) and keq(c.p, c.n, b"0", 1)):
                return None
            return (f"OKX instruments: error answer code={slot_repr(c)}"
                    f" msg={slot_repr(&self.msg) if not slot_missing(&self.msg) else '-'}")
        if venue == MV_DERIBIT:
            if slot_missing(&self.error):
                return None
            if self.error.kind == SL_OTHER and self.error.p[0] == b'{':
                return (f"Deribit instruments: error answer code={slot_repr(c)}"
                        f" message={slot_repr(&self.msg)}")
            return f"Deribit instruments: error answer {slot_repr(&self.error)}"
        return None

    def result(self):
        """``(venue name, rows, skipped)``: the list the body holds (see parse_body)."""
        cdef int venue = self.want
        cdef Slot *c = &self.code
        if venue == MV_AUTO:
            if self.rows_b is not None:
                venue = MV_BINANCE
            elif self.rows_o is not None:
                venue = MV_OKX
            elif self.rows_d is not None:
                venue = MV_DERIBIT
        if venue == MV_AUTO:
            if not slot_missing(c) or not slot_missing(&self.error):
                raise MetadataError(
                    "not an instrument list but an error answer: "
                    + (f"code={slot_repr(c)} msg={slot_repr(&self.msg)}" if not slot_missing(c)
                       else slot_repr(&self.error)))
            raise MetadataError("not a Binance exchangeInfo, OKX instruments or Deribit "
                                "instruments body")
        what, key = _LISTS[venue]
        msg = self._answer_error(venue)
        if msg is not None:
            raise MetadataError(msg)
        if venue == MV_BINANCE:
            rows, skipped, err = self.rows_b, self.skipped_b, self.row_err_b
        elif venue == MV_OKX:
            rows, skipped, err = self.rows_o, self.skipped_o, self.row_err_o
        else:
            rows, skipped, err = self.rows_d, self.skipped_d, self.row_err_d
        if rows is None:
            if venue == MV_BINANCE and not slot_missing(c):
                raise MetadataError(f"{what}: error answer code={slot_repr(c)} "
                                    f"msg={slot_repr(&self.msg)}")
            raise MetadataError(f"{what}: no {key!r} list")
        if err is not None:
            raise MetadataError(err)
        return VENUE_NAMES[venue], rows, skipped


def parse_body(body, str venue="auto"):
    """Parse one instrument-list body.

    :param body: the REST answer (``bytes``, ``bytearray``, ``memoryview`` or ``str``).
    :param venue: ``"binance"`` (``exchangeInfo`` of spot, USD-M or COIN-M), ``"okx"``,
        ``"deribit"``, or ``"auto"`` to recognise the list by its key (``symbols``,
        ``data``, ``result``, in that order of preference).
    :returns: ``(venue, rows, skipped)``: the venue name; one tuple
        ``(symbol, price_scale, qty_scale, tick, lot, contract_value)`` per instrument in
        body order (tick, lot and contract value are the exact text the exchange wrote;
        contract value None when absent, null or empty); the number of rows skipped
        because they lack a symbol, a tick or a lot.
    :raises MetadataError: the body is not JSON, not an object, an error answer, or a
        row or field has the wrong type.
    """
    cdef int want
    cdef const unsigned char[::1] view
    cdef _Walk w
    if venue not in _VENUES:
        raise ValueError(f"unknown venue {venue!r}; expected one of {sorted(_VENUES)}")
    want = _VENUES[venue]
    if isinstance(body, str):
        body = body.encode("utf-8", "surrogatepass")
    view = memoryview(body).cast("B") if not isinstance(body, bytes) else body
    w = _Walk(want)
    try:
        if view.shape[0] == 0:
            raise _Broken("empty body")
        w.walk(<const char *>&view[0], <size_t>view.shape[0])
    except _Broken as exc:
        what = _LISTS[want][0] if want != MV_AUTO else "instrument list"
        raise MetadataError(f"{what} is not valid JSON: {exc}") from None
    return w.result()


def _decimals(text: bytes) -> int:
    """Test hook: the decimals the parser counts in ``text`` (ValueError if refused)."""
    cdef int dec = 0
    cdef const char *p = text
    cdef int r = count_decimals(p, len(text), &dec)
    if r == DEC_NEGATIVE:
        raise ValueError(f"negative: {text!r}")
    if r != DEC_OK:
        raise ValueError(f"not a decimal number: {text!r}")
    return dec
