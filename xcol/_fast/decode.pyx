# cython: language_level=3
# distutils: language=c++
"""Frame decoders for Binance, OKX and Deribit over simdjson On-Demand.

A :class:`Decoder` turns one WebSocket frame (or REST body) into the reusable
C :c:type:`Event`.  Prices and sizes are read straight from the exchange's
text into int64 mantissas with their decimal count (see ``num.pxd``); no
Python object is created per frame.  Errors never raise: the event's ``err``
says what was wrong and which field, and the caller counts it.
"""

cimport cython
from libc.stdint cimport int64_t, int32_t, int8_t, uint8_t, uint32_t, uint64_t
from libc.stdlib cimport malloc, realloc, free
from libc.string cimport memcpy, memcmp, memset
from libcpp cimport bool as cbool

from xcol._fast.event cimport (
    Event, Level, Trade, EV_NONE, EV_DEPTH, EV_SNAPSHOT, EV_BBO, EV_TRADE,
    EV_REST_SNAPSHOT, EV_CONTROL, EV_IGNORED, CH_NONE, CH_BOOK, CH_BOOK_TOP,
    CH_BBO, CH_TRADES, CH_AGG_TRADES, LV_SET, LV_DELETE,
)
from xcol._fast.num cimport parse_num, parse_int, NUM_OK
from xcol._fast.includes.simdjson cimport (
    Parser, Document, Value, ObjCursor, ArrCursor, PADDING, error_message,
    implementation_name, iterate, doc_object, val_object, val_array, obj_next,
    arr_next, val_raw, val_str, val_int64, val_bool, doc_at_end, is_type_error,
)

cdef extern from "swar.h" nogil:
    const char *xcol_uint15(const char *p, uint64_t *out)
    const char *xcol_uint15_simd(const char *p, uint64_t *out)
    const char *xcol_str16(const char *p)

cdef extern from "levels.h" nogil:
    const int XCOL_SHAPE_LEVELS
    void xcol_shape_learn(xcol_shape *s, int pi, int pf, int qi, int qf)
    bint xcol_shape_learnable(int pi, int pf, int qi, int qf)
    const char *xcol_shape_level(const xcol_shape *s, const char *p, int64_t *px,
                                 int64_t *qty)
    int xcol_shape_run(const xcol_shape *s, const char *p, const char **end, Level *out,
                       int room, int *zero)


DEFAULT_MAX_FRAME = 16 * 1024 * 1024

#: True when levels are read by their shape (an AVX2 build, levels.h)
SHAPE_LEVELS = bool(XCOL_SHAPE_LEVELS)

_ERR_NAMES = ("ok", "invalid JSON", "unexpected shape", "bad number",
              "unknown message", "frame too large", "out of memory")
_NUM_ERR_NAMES = ("ok", "not a decimal number", "too many digits or too large",
                  "negative value", "more decimals than the instrument scale")

VENUES = {"binance": VENUE_BINANCE, "okx": VENUE_OKX, "deribit": VENUE_DERIBIT}


def simdjson_implementation() -> str:
    """The simdjson kernel compiled into the decoders (icelake, haswell, ...)."""
    return implementation_name().decode()


cdef inline bint keq(const char *k, size_t n, const char *lit, size_t ln) noexcept nogil:
    return n == ln and memcmp(k, lit, n) == 0


cdef inline const char *strip_quotes(const char *p, size_t *n) noexcept nogil:
    """Reduce a raw string token ``"abc"`` (maybe with trailing blanks) to abc."""
    cdef size_t m = n[0]
    while m > 0 and p[m - 1] != b'"':
        m -= 1
    if m >= 2 and p[0] == b'"':
        n[0] = m - 2
        return p + 1
    n[0] = 0
    return p


cdef inline const char *quoted_text(const char *p, size_t n, uint8_t *len_out) noexcept nogil:
    """The text inside a quoted JSON token (a number the exchange wrote as a string),
    or NULL (unquoted numbers, e.g. Deribit's, are re-formatted from the mantissa)."""
    if n < 3 or n > 257 or p[0] != b'"' or p[n - 1] != b'"':
        return NULL
    len_out[0] = <uint8_t>(n - 2)
    return p + 1


cdef inline const char *fast_num(const char *p, int64_t *out, int8_t *dec) noexcept nogil:
    """Digits[.digits] up to 18 digits; NULL if anything else (the exact
    slow path then decides).  Relies on the frame's padding for look-ahead."""
    cdef const char *s = p
    cdef const char *f
    cdef uint64_t m = 0
    cdef unsigned int c = <unsigned int>(<uint8_t>p[0]) - 48
    cdef Py_ssize_t nd, d
    if c > 9:
        return NULL
    while c <= 9:
        m = m * 10 + c
        p += 1
        c = <unsigned int>(<uint8_t>p[0]) - 48
    if p[0] == b'.':
        p += 1
        f = p
        c = <unsigned int>(<uint8_t>p[0]) - 48
        while c <= 9:
            m = m * 10 + c
            p += 1
            c = <unsigned int>(<uint8_t>p[0]) - 48
        d = p - f
        if d == 0:
            return NULL
        nd = p - s - 1
    else:
        d = 0
        nd = p - s
    if nd > 18:
        return NULL
    out[0] = <int64_t>m
    dec[0] = <int8_t>d
    return p


cdef inline int quoted_num(const char *p, const char *q, int64_t *out,
                           int8_t *dec) noexcept nogil:
    """The number in the quoted token ``p``..``q``: by :func:`fast_num` when it is plain
    digits[.digits], else by the exact ``parse_num`` (same result where both accept)."""
    cdef const char *e = fast_num(p + 1, out, dec)
    if e != NULL and e == q - 1:
        return NUM_OK
    return parse_num(p, q, out, dec)


cdef inline const char *fast_str(const char *p) noexcept nogil:
    """``p`` at an opening quote: the end of a plain ASCII string token, or NULL
    (escapes, control or non-ASCII bytes: the exact slow path decides).  The
    zeroed frame padding stops the scan at the end of the frame."""
    cdef uint8_t c
    p += 1
    while True:
        c = <uint8_t>p[0]
        if c == 34:
            return p + 1
        if c == 92 or c < 0x20 or c >= 0x80:
            return NULL
        p += 1


cdef inline const char *fast_key(const char *p, const char **k, size_t *kn) noexcept nogil:
    """``p`` at a key's opening quote: ``k``/``kn`` get the key's text and the result is
    where its value starts (past the colon); NULL unless it is a plain ``"key":``."""
    cdef const char *q = fast_str(p)
    if q == NULL or q[0] != b':':
        return NULL
    k[0] = p + 1
    kn[0] = <size_t>(q - p - 2)
    return q + 1


cdef inline const char *fast_after(const char *p, bint *more) noexcept nogil:
    """``p`` just after a member's value: at ``,"`` sets ``more`` and returns the next
    key's quote; at ``}`` clears ``more`` and returns past the object; else NULL."""
    if p == NULL:
        return NULL
    if p[0] == b',' and p[1] == b'"':
        more[0] = True
        return p + 1
    if p[0] == b'}':
        more[0] = False
        return p + 1
    return NULL


cdef inline const char *fast_int(const char *p, int64_t *out) noexcept nogil:
    """A JSON integer of at most 18 digits at ``p``; NULL for anything else
    (a fraction or exponent, a leading zero, more digits).  Up to 15 digits are read
    with one 16-byte load (``swar.h``, AVX2 builds; else eight at a time); longer ones,
    and every refusal, by the byte loop."""
    cdef bint neg = p[0] == b'-'
    cdef const char *s
    cdef uint64_t v = 0
    cdef unsigned int c
    if neg:
        p += 1
    s = xcol_uint15_simd(p, &v)
    if s != NULL:
        out[0] = -<int64_t>v if neg else <int64_t>v
        return s
    s = p
    v = 0
    c = <unsigned int>(<uint8_t>p[0]) - 48
    while c <= 9:
        v = v * 10 + c
        p += 1
        c = <unsigned int>(<uint8_t>p[0]) - 48
    if p == s or p - s > 18 or (s[0] == b'0' and p - s > 1):
        return NULL
    if p[0] == b'.' or p[0] == b'e' or p[0] == b'E':
        return NULL
    out[0] = -<int64_t>v if neg else <int64_t>v
    return p


# Binance stream kinds, from the stream name suffix or the "e" field.
cdef enum:
    BK_NONE = 0
    BK_DEPTH = 1
    BK_BBO = 2
    BK_TRADE = 3
    BK_AGG = 4
    BK_OTHER = 5
    BK_SHUTDOWN = 6     # "serverShutdown": the server will close this connection soon

# Scratch state while walking a Binance object (kept off the Python heap).
cdef struct BnState:
    int stream_kind
    int e_kind
    bint has_snapshot_id
    bint has_result
    bint bbo_b
    bint bbo_a
    bint bbo_bq
    bint bbo_aq
    bint has_trade_id
    bint has_p
    bint has_q
    int64_t trade_time
    bint has_levels
    bint has_b
    bint has_a

cdef BnState _bn


cdef inline int stream_kind(const char *p, size_t n) noexcept nogil:
    """Kind of a combined-stream name (``btcusdt@depth@0ms`` -> BK_DEPTH)."""
    cdef size_t i = 0
    while i < n and p[i] != b'@':
        i += 1
    if i >= n:
        return BK_NONE
    i += 1
    if n - i >= 5 and memcmp(p + i, b"depth", 5) == 0:
        return BK_DEPTH
    if keq(p + i, n - i, b"bookTicker", 10):
        return BK_BBO
    if keq(p + i, n - i, b"trade", 5):
        return BK_TRADE
    if keq(p + i, n - i, b"aggTrade", 8):
        return BK_AGG
    return BK_OTHER


cdef inline int event_kind(const char *p, size_t n) noexcept nogil:
    """Kind named by a Binance ``"e"`` field."""
    if keq(p, n, b"depthUpdate", 11):
        return BK_DEPTH
    if keq(p, n, b"bookTicker", 10):
        return BK_BBO
    if keq(p, n, b"trade", 5):
        return BK_TRADE
    if keq(p, n, b"aggTrade", 8):
        return BK_AGG
    if keq(p, n, b"serverShutdown", 14):
        return BK_SHUTDOWN
    return BK_OTHER


@cython.final
cdef class Decoder:
    """Decode one exchange's frames into a reusable C event.

    ``venue`` is ``"binance"`` (spot, USD-M and COIN-M share one format),
    ``"okx"`` or ``"deribit"``.  Frames larger than ``max_frame`` bytes are
    refused with a counted error.
    """

    def __cinit__(self, str venue, size_t max_frame=DEFAULT_MAX_FRAME):
        if venue not in VENUES:
            raise ValueError(f"unknown venue {venue!r}; expected one of {sorted(VENUES)}")
        self.venue = VENUES[venue]
        self.max_frame = max_frame
        self.cap = 0
        self.buf = NULL
        self.bid_buf = NULL
        self.ask_buf = NULL
        self.trade_buf = NULL
        self.bid_cap = 0
        self.ask_cap = 0
        self.trade_cap = 0
        self.fast = True
        self.shapes = True
        self.fast_frames = 0
        self.literal_frames = 0
        if self._grow(0) < 0 or self._grow(1) < 0 or self._grow(2) < 0:
            raise MemoryError()

    def __dealloc__(self):
        free(self.buf)
        free(self.bid_buf)
        free(self.ask_buf)
        free(self.trade_buf)

    cdef int _grow(self, int which) noexcept:
        cdef int cap
        cdef void *p
        if which == 0:
            cap = self.bid_cap * 2 if self.bid_cap else 256
            p = realloc(self.bid_buf, <size_t>cap * sizeof(Level))
            if p == NULL:
                return -1
            self.bid_buf = <Level *>p
            self.bid_cap = cap
            self.ev.bids = self.bid_buf
        elif which == 1:
            cap = self.ask_cap * 2 if self.ask_cap else 256
            p = realloc(self.ask_buf, <size_t>cap * sizeof(Level))
            if p == NULL:
                return -1
            self.ask_buf = <Level *>p
            self.ask_cap = cap
            self.ev.asks = self.ask_buf
        else:
            cap = self.trade_cap * 2 if self.trade_cap else 16
            p = realloc(self.trade_buf, <size_t>cap * sizeof(Trade))
            if p == NULL:
                return -1
            self.trade_buf = <Trade *>p
            self.trade_cap = cap
            self.ev.trades = self.trade_buf
        return 0

    cdef int _fail(self, int err, int detail, const char *what) noexcept:
        cdef const char *p = self.buf
        if err == DE_SHAPE and detail != 0:
            if not is_type_error(detail):
                err = DE_JSON       # simdjson found the JSON itself broken
            elif memcmp(what, b"message", 7) == 0:  # the root: any JSON value?
                while p[0] == b' ' or p[0] == b'\n' or p[0] == b'\r' or p[0] == b'\t':
                    p += 1
                if not (p[0] == b'[' or p[0] == b'"' or p[0] == b'-' or p[0] == b't'
                        or p[0] == b'f' or p[0] == b'n' or (p[0] >= b'0' and p[0] <= b'9')):
                    err = DE_JSON
        self.ev.err = err
        self.ev.err_detail = detail
        self.ev.err_what = what
        return -1

    cdef void _reset_event(self) noexcept:
        cdef Event *ev = &self.ev
        ev.kind = EV_NONE
        ev.channel = CH_NONE
        ev.inst = -1
        ev.sym = NULL
        ev.sym_len = 0
        ev.first_seq = 0
        ev.seq = 0
        ev.prev_seq = 0
        ev.has_seq = False
        ev.has_prev = False
        ev.exch_ts = 0
        ev.checksum = 0
        ev.has_checksum = False
        ev.nbids = 0
        ev.nasks = 0
        ev.ntrades = 0
        ev.lv_shaped = 0
        ev.lv_pdecs = 0
        ev.lv_qdecs = 0
        ev.lv_zero_px = False
        ev.lv_raw = False
        ev.bbo_text = False
        ev.err = 0
        ev.err_detail = 0
        ev.err_what = b""

    cdef int decode(self, const char *data, size_t n) noexcept:
        """Decode one frame; returns the EventKind, or -1 with ev.err set."""
        cdef Event *ev = &self.ev
        cdef size_t need
        cdef char *p
        self._reset_event()
        if n > self.max_frame:
            return self._fail(DE_TOO_LARGE, 0, b"frame")
        if self.venue == VENUE_OKX and n == 4 and memcmp(data, b"pong", 4) == 0:
            ev.kind = EV_CONTROL
            return EV_CONTROL
        need = n + PADDING
        if need > self.cap:
            p = <char *>realloc(self.buf, need)
            if p == NULL:
                return self._fail(DE_NO_MEMORY, 0, b"frame")
            self.buf = p
            self.cap = need
        memcpy(self.buf, data, n)
        # Zero the padding: nothing of an earlier, longer frame may be read
        # past the end of this one (the level scanner looks ahead into it).
        memset(self.buf + n, 0, PADDING)
        cdef int r
        if self.venue == VENUE_OKX and self.fast:
            if self._okx_fast(n):
                self.fast_frames += 1
                if ev.channel == CH_BBO:
                    return self._okx_bbo()
                return ev.kind
            self._reset_event()
        if self.venue == VENUE_BINANCE and self.fast:
            if self._bn_literal(n):
                self.fast_frames += 1
                self.literal_frames += 1
                return ev.kind
            self._reset_event()
            if self._bn_fast(n):
                self.fast_frames += 1
                if ev.kind == EV_CONTROL or ev.kind == EV_IGNORED:
                    ev.nbids = 0
                    ev.nasks = 0
                    ev.ntrades = 0
                return ev.kind
            self._reset_event()
        r = iterate(self.parser, self.buf, n, self.doc)
        if r != 0:
            return self._fail(DE_JSON, r, b"frame")
        if self.venue == VENUE_BINANCE:
            r = self._binance()
        elif self.venue == VENUE_OKX:
            r = self._okx()
        else:
            r = self._deribit()
        if r < 0:
            return -1
        if not doc_at_end(self.doc):
            return self._fail(DE_JSON, 0, b"end of frame (content after the document)")
        if self.venue == VENUE_OKX and ev.channel == CH_BBO and ev.kind == EV_SNAPSHOT:
            return self._okx_bbo()
        if ev.kind == EV_CONTROL or ev.kind == EV_IGNORED:
            # nothing to normalize: drop whatever look-alike fields were read
            ev.nbids = 0
            ev.nasks = 0
            ev.ntrades = 0
        return ev.kind

    cdef int _okx_bbo(self) noexcept:
        """An OKX ``bbo-tbt`` push, read as a one-level book, becomes a quote (EV_BBO), so
        the engine publishes it once across lines like the other venues' quotes (by
        ``seqId``; by ``ts`` when the push has none).  An empty side reads as price and
        size 0, as a Deribit quote's does."""
        cdef Event *ev = &self.ev
        if ev.nbids > 1 or ev.nasks > 1:
            return self._fail(DE_SHAPE, 0, b"bbo-tbt data (more than one level a side)")
        if ev.nbids == 0:
            memset(&self.bid_buf[0], 0, sizeof(Level))
        if ev.nasks == 0:
            memset(&self.ask_buf[0], 0, sizeof(Level))
        ev.nbids = 1
        ev.nasks = 1
        ev.first_seq = ev.seq
        ev.kind = EV_BBO
        return EV_BBO

    # ------------------------------------------------------------- levels

    cdef const char *_scan_levels(self, const char *p, bint is_bid) noexcept:
        """Parse ``[["px","qty"(,"x")*],...]`` at ``p``; NULL if not that form.

        The level count, buffer and capacity are kept in locals and stored once at
        the end: the 1-byte stores into each level may alias any memory, so fields
        read through ``self`` would be reloaded after every level, and the count would
        pass from one level to the next through memory."""
        cdef Event *ev = &self.ev
        cdef Level *lv
        cdef Level *buf = self.bid_buf if is_bid else self.ask_buf
        cdef int cap = self.bid_cap if is_bid else self.ask_cap
        cdef int cnt = ev.nbids if is_bid else ev.nasks
        cdef xcol_shape *sh = &self.shape[0]
        cdef xcol_shape *hit
        cdef xcol_shape tmp
        cdef int j, k
        cdef int nsh = self.nshapes
        cdef int last_j = 0
        cdef int run = 0
        cdef long long hits = 0
        cdef uint32_t pdecs = 0
        cdef uint32_t qdecs = 0
        cdef int zero = 0
        cdef bint ok = False        # the array ended well
        cdef bint use_shapes = self.shapes
        cdef const char *q
        cdef bint extra
        p += 1
        if p[0] == b']':
            return p + 1
        while True:
            if use_shapes:
                # a run of levels of the usual shape, read in one C loop (levels.h)
                k = xcol_shape_run(sh, p, &p, &buf[cnt], cap - cnt, &zero)
                if k:
                    cnt += k
                    hits += k
                    run = 0
                    pdecs |= (<uint32_t>1) << sh.pdec
                    qdecs |= (<uint32_t>1) << sh.qdec
                    if (p - 1)[0] == b']':
                        # stopped after a level: at its separator
                        if p[0] == b',':
                            p += 1
                            continue        # no room was left: grown below
                        ok = p[0] == b']'
                        break
                # else at the '[' of a level of another shape
            if p[0] != b'[' or p[1] != b'"':
                break
            if cnt == cap:
                if is_bid:
                    ev.nbids = cnt
                    if self._grow(0) < 0:
                        return NULL
                    buf = self.bid_buf
                    cap = self.bid_cap
                else:
                    ev.nasks = cnt
                    if self._grow(1) < 0:
                        return NULL
                    buf = self.ask_buf
                    cap = self.ask_cap
            lv = &buf[cnt]
            hit = sh
            q = xcol_shape_level(sh, p, &lv.px, &lv.qty) if use_shapes else NULL
            if q == NULL and use_shapes:
                # the other shapes, the more frequent ones first: a shape that hits
                # moves one place up, and one that hits 4 times running becomes the
                # usual one
                for j in range(1, nsh):
                    q = xcol_shape_level(&self.shape[j], p, &lv.px, &lv.qty)
                    if q != NULL:
                        run = run + 1 if j == last_j else 1
                        k = 0 if run >= 4 else (j - 1 if j > 1 else j)
                        if k != j:
                            tmp = self.shape[j]
                            self.shape[j] = self.shape[k]
                            self.shape[k] = tmp
                        hit = &self.shape[k]
                        last_j = k
                        if k == 0:
                            run = 0
                        break
            else:
                run = 0
            if q != NULL:
                # a level of a shape the byte loop below read before (levels.h)
                hits += 1
                pdecs |= (<uint32_t>1) << hit.pdec
                qdecs |= (<uint32_t>1) << hit.qdec
                zero |= lv.px == 0
                lv.ptxt = p + 2
                lv.qtxt = p + hit.qoff
                lv.pdec = hit.pdec
                lv.qdec = hit.qdec
                lv.plen = hit.plen
                lv.qlen = hit.qlen
                p = q
            else:
                lv.ptxt = p + 2
                p = fast_num(p + 2, &lv.px, &lv.pdec)
                if p == NULL or p[0] != b'"' or p[1] != b',' or p[2] != b'"':
                    break
                lv.plen = <uint8_t>(p - lv.ptxt)
                lv.qtxt = p + 3
                p = fast_num(p + 3, &lv.qty, &lv.qdec)
                if p == NULL or p[0] != b'"':
                    break
                lv.qlen = <uint8_t>(p - lv.qtxt)
                p += 1
                extra = p[0] == b','
                while p[0] == b',':
                    # extra fields (OKX: liquidated orders, order count)
                    if p[1] != b'"':
                        p = NULL
                        break
                    p += 2
                    while p[0] != b'"':
                        # plain ASCII only, as in fast_str: simdjson checks the rest
                        if p[0] == b'\\' or <uint8_t>p[0] < 0x20 or <uint8_t>p[0] >= 0x80:
                            p = NULL
                            break
                        p += 1
                    if p == NULL:
                        break
                    p += 1
                if p == NULL or p[0] != b']':
                    break
                p += 1
                if (XCOL_SHAPE_LEVELS and use_shapes and not extra
                        and xcol_shape_learnable(lv.plen - lv.pdec - (lv.pdec > 0), lv.pdec,
                                                 lv.qlen - lv.qdec - (lv.qdec > 0), lv.qdec)):
                    # a shape none knows: it takes a free slot, or the last (least
                    # used) one when all are taken
                    run = 0
                    j = nsh if nsh < SHAPE_SLOTS else SHAPE_SLOTS - 1
                    xcol_shape_learn(&self.shape[j],
                                     lv.plen - lv.pdec - (lv.pdec > 0), lv.pdec,
                                     lv.qlen - lv.qdec - (lv.qdec > 0), lv.qdec)
                    if j == nsh and self.shape[j].len:
                        nsh += 1
                        self.nshapes = nsh
            lv.flag = LV_SET
            cnt += 1
            if p[0] == b',':
                p += 1
            else:
                ok = p[0] == b']'
                break
        if is_bid:
            ev.nbids = cnt
        else:
            ev.nasks = cnt
        self.shape_levels += hits
        if not ok:
            return NULL
        ev.lv_shaped += <int>hits
        ev.lv_pdecs |= pdecs
        ev.lv_qdecs |= qdecs
        ev.lv_zero_px |= zero != 0
        return p + 1

    cdef int _levels(self, Value &v, bint is_bid, bint with_action) noexcept:
        """Append ``[[px, qty, ...], ...]`` (Deribit: ``[[action, px, qty]]``)."""
        cdef ArrCursor outer
        cdef ArrCursor inner
        cdef Value item
        cdef Value x
        cdef const char *p
        cdef size_t n
        cdef int r
        cdef Level *lv
        cdef Event *ev = &self.ev
        cdef int saved
        if not with_action and val_raw(v, &p, &n) == 0 and n > 0 and p[0] == b'[':
            # Fast path for the compact ["px","qty",...] form every venue
            # sends; anything unusual falls through to the exact slow path.
            saved = ev.nbids if is_bid else ev.nasks
            if self._scan_levels(p, is_bid) != NULL:
                return 0
            if is_bid:
                ev.nbids = saved
            else:
                ev.nasks = saved
        r = val_array(v, outer)
        if r != 0:
            return self._fail(DE_SHAPE, r, b"levels (expected an array)")
        while True:
            r = arr_next(outer, item)
            if r == 0:
                return 0
            if r < 0:
                return self._fail(DE_JSON, -r, b"levels")
            r = val_array(item, inner)
            if r != 0:
                return self._fail(DE_SHAPE, r, b"level (expected [price, size])")
            if is_bid:
                if ev.nbids == self.bid_cap and self._grow(0) < 0:
                    return self._fail(DE_NO_MEMORY, 0, b"levels")
                lv = &self.bid_buf[ev.nbids]
            else:
                if ev.nasks == self.ask_cap and self._grow(1) < 0:
                    return self._fail(DE_NO_MEMORY, 0, b"levels")
                lv = &self.ask_buf[ev.nasks]
            lv.flag = LV_SET
            if with_action:
                if arr_next(inner, x) != 1 or val_str(x, &p, &n) != 0:
                    return self._fail(DE_SHAPE, 0, b"level action")
                if keq(p, n, b"delete", 6):
                    lv.flag = LV_DELETE
                elif not (keq(p, n, b"new", 3) or keq(p, n, b"change", 6)):
                    return self._fail(DE_SHAPE, 0, b"level action (new/change/delete)")
            if arr_next(inner, x) != 1 or val_raw(x, &p, &n) != 0:
                return self._fail(DE_SHAPE, 0, b"level price")
            r = parse_num(p, p + n, &lv.px, &lv.pdec)
            if r != NUM_OK:
                return self._fail(DE_NUMBER, r, b"level price")
            lv.ptxt = quoted_text(p, n, &lv.plen)
            if arr_next(inner, x) != 1 or val_raw(x, &p, &n) != 0:
                return self._fail(DE_SHAPE, 0, b"level size")
            r = parse_num(p, p + n, &lv.qty, &lv.qdec)
            if r != NUM_OK:
                return self._fail(DE_NUMBER, r, b"level size")
            lv.qtxt = quoted_text(p, n, &lv.qlen)
            if is_bid:
                ev.nbids += 1
            else:
                ev.nasks += 1

    # ------------------------------------------------------------ Binance

    cdef int _binance(self) noexcept:
        cdef ObjCursor root
        cdef ObjCursor sub
        cdef Value v
        cdef Value w
        cdef const char *k
        cdef size_t kn
        cdef const char *p
        cdef size_t n
        cdef int r
        cdef Event *ev = &self.ev
        self._bn_init()
        r = doc_object(self.doc, root)
        if r != 0:
            return self._fail(DE_SHAPE if is_type_error(r) else DE_JSON, r,
                              b"message (expected an object)")
        while True:
            r = obj_next(root, &k, &kn, v)
            if r == 0:
                break
            if r < 0:
                return self._fail(DE_JSON, -r, b"message")
            if keq(k, kn, b"stream", 6):
                if val_raw(v, &p, &n) != 0:
                    return self._fail(DE_SHAPE, 0, b"stream")
                p = strip_quotes(p, &n)
                _bn.stream_kind = stream_kind(p, n)
            elif keq(k, kn, b"data", 4):
                r = val_object(v, sub)
                if r != 0:
                    return self._fail(DE_SHAPE, r, b"data (expected an object)")
                while True:
                    r = obj_next(sub, &k, &kn, w)
                    if r == 0:
                        break
                    if r < 0:
                        return self._fail(DE_JSON, -r, b"data")
                    if self._binance_field(k, kn, w) < 0:
                        return -1
            elif keq(k, kn, b"result", 6) or keq(k, kn, b"id", 2):
                _bn.has_result = True
            elif self._binance_field(k, kn, v) < 0:
                return -1
        return self._binance_finish()

    cdef void _bn_init(self) noexcept:
        _bn.stream_kind = BK_NONE
        _bn.e_kind = BK_NONE
        _bn.has_snapshot_id = False
        _bn.has_result = False
        _bn.bbo_b = _bn.bbo_a = _bn.bbo_bq = _bn.bbo_aq = False
        _bn.has_trade_id = False
        _bn.trade_time = 0
        _bn.has_levels = False
        _bn.has_b = False
        _bn.has_a = False
        _bn.has_p = False
        _bn.has_q = False
        memset(self.trade_buf, 0, sizeof(Trade))

    cdef int _binance_finish(self) noexcept:
        """Decide what the walked message was: the stream name wins, then
        ``"e"``, then the shape; fill the event or fail naming what is missing."""
        cdef Event *ev = &self.ev
        cdef int kind = _bn.stream_kind
        if kind == BK_NONE or kind == BK_OTHER:
            if _bn.e_kind != BK_NONE:
                kind = _bn.e_kind
        if kind == BK_DEPTH:
            if not (ev.has_seq and _bn.has_b and _bn.has_a) or ev.sym_len == 0 \
                    or ev.first_seq == 0:
                return self._fail(DE_SHAPE, 0, b"depthUpdate (needs s, U, u, b, a)")
            if _bn.bbo_b or _bn.bbo_a or _bn.bbo_bq or _bn.bbo_aq:
                # a quoted "b"/"a" (or "B"/"A") as well as the level arrays: it was
                # written over the first level, which the level readers did not check
                return self._fail(DE_SHAPE, 0, b"depthUpdate (b/a/B/A must be level arrays)")
            ev.kind = EV_DEPTH
            ev.channel = CH_BOOK
            ev.ntrades = 0
        elif kind == BK_BBO or (kind == BK_NONE and _bn.bbo_b and _bn.bbo_a):
            if not (_bn.bbo_b and _bn.bbo_a and _bn.bbo_bq and _bn.bbo_aq) or ev.sym_len == 0:
                return self._fail(DE_SHAPE, 0, b"bookTicker (needs s, b, B, a, A)")
            ev.nbids = 1
            ev.nasks = 1
            ev.ntrades = 0
            ev.kind = EV_BBO
            ev.channel = CH_BBO
        elif kind == BK_TRADE or kind == BK_AGG:
            if not (_bn.has_trade_id and _bn.has_p and _bn.has_q) or ev.sym_len == 0:
                return self._fail(DE_SHAPE, 0, b"trade (needs s, t/a, p, q)")
            ev.ntrades = 1
            ev.nbids = 0
            ev.nasks = 0
            if _bn.trade_time:
                self.trade_buf[0].ts = _bn.trade_time
            ev.kind = EV_TRADE
            ev.channel = CH_TRADES if kind == BK_TRADE else CH_AGG_TRADES
            ev.seq = self.trade_buf[0].id
            ev.first_seq = ev.seq
            ev.has_seq = True
        elif _bn.has_snapshot_id:
            if not _bn.has_levels:
                return self._fail(DE_SHAPE, 0, b"depth snapshot (needs bids, asks)")
            ev.kind = EV_REST_SNAPSHOT
            ev.channel = CH_BOOK
            ev.first_seq = ev.seq
            ev.ntrades = 0
        elif kind == BK_SHUTDOWN:
            ev.kind = EV_CONTROL      # the runtime rotates the connection
        elif kind == BK_OTHER:
            ev.kind = EV_IGNORED
        elif _bn.has_result:
            ev.kind = EV_CONTROL
        else:
            return self._fail(DE_UNKNOWN, 0, b"message")
        return 0

    # Validating single-pass scanner for the exchange's compact layout.  It
    # accepts a strict subset of JSON (ASCII, no blanks, no escapes, flat
    # objects, integers of <= 18 digits, level arrays of quoted numbers) and
    # fills the event exactly as the simdjson walk above would.  Anything else,
    # including every error, returns 0 and the frame goes to the simdjson
    # path, which decides; tests/test_fastpath.py holds the two paths equal.

    cdef int _okx_fast(self, size_t n) noexcept:
        """1 if an OKX book frame in the exchange's compact layout was decoded by the
        scanner, 0 to use simdjson (which decides everything else, errors included):
        ``{"arg":{"channel":..,"instId":..},"action":..,"data":[{one item}]}`` with
        keys in any order and no other key."""
        cdef const char *p = self.buf
        cdef const char *q
        cdef const char *k
        cdef size_t kn
        cdef int channel = -1
        cdef int action = 0
        cdef bint has_data = False
        cdef bint more = True
        cdef bint more_arg
        cdef Event *ev = &self.ev
        if p[0] != b'{' or p[1] != b'"':
            return 0
        p += 1
        while more:
            p = fast_key(p, &k, &kn)
            if p == NULL:
                return 0
            if kn == 3 and memcmp(k, b"arg", 3) == 0:
                if p[0] != b'{' or p[1] != b'"':
                    return 0
                p += 1
                more_arg = True
                while more_arg:
                    p = fast_key(p, &k, &kn)
                    if p == NULL or p[0] != b'"':
                        return 0
                    q = fast_str(p)
                    if q == NULL:
                        return 0
                    if kn == 7 and memcmp(k, b"channel", 7) == 0:
                        kn = <size_t>(q - p - 2)
                        if ((kn == 5 and memcmp(p + 1, b"books", 5) == 0)
                                or (kn == 12 and memcmp(p + 1, b"books-l2-tbt", 12) == 0)
                                or (kn == 14 and memcmp(p + 1, b"books50-l2-tbt", 14) == 0)):
                            channel = CH_BOOK
                        elif kn == 6 and memcmp(p + 1, b"books5", 6) == 0:
                            channel = CH_BOOK_TOP
                        elif kn == 7 and memcmp(p + 1, b"bbo-tbt", 7) == 0:
                            channel = CH_BBO
                        else:
                            return 0       # trades and the rest: simdjson
                    elif kn == 6 and memcmp(k, b"instId", 6) == 0:
                        if q - p <= 2:
                            return 0
                        ev.sym = p + 1
                        ev.sym_len = <int>(q - p - 2)
                    else:
                        return 0
                    p = fast_after(q, &more_arg)
                    if p == NULL:
                        return 0
            elif kn == 6 and memcmp(k, b"action", 6) == 0:
                q = fast_str(p) if p[0] == b'"' else NULL
                if q == NULL:
                    return 0
                if q - p == 10 and memcmp(p + 1, b"snapshot", 8) == 0:
                    action = 1
                elif q - p == 8 and memcmp(p + 1, b"update", 6) == 0:
                    action = 2
                else:
                    return 0
                p = q
            elif kn == 4 and memcmp(k, b"data", 4) == 0:
                if has_data or p[0] != b'[':
                    return 0
                p = self._okx_fast_item(p + 1)
                if p == NULL or p[0] != b']':
                    return 0
                p += 1
                has_data = True
            else:
                return 0                   # "event" and anything unexpected
            p = fast_after(p, &more)
            if p == NULL:
                return 0
        if p != self.buf + n or not has_data or channel < 0 or ev.sym_len == 0:
            return 0
        if channel == CH_BOOK and action == 0:
            return 0
        ev.channel = channel
        ev.kind = EV_DEPTH if channel == CH_BOOK and action == 2 else EV_SNAPSHOT
        ev.first_seq = ev.seq
        return 1

    cdef const char *_okx_fast_item(self, const char *p) noexcept:
        """The one object of an OKX book frame's ``data``; its end, or NULL."""
        cdef Event *ev = &self.ev
        cdef const char *q
        cdef const char *k
        cdef size_t kn
        cdef int64_t x
        cdef int8_t d
        cdef bint more = True
        if p[0] != b'{' or p[1] != b'"':
            return NULL
        p += 1
        while more:
            p = fast_key(p, &k, &kn)
            if p == NULL:
                return NULL
            if kn == 4 and (memcmp(k, b"asks", 4) == 0 or memcmp(k, b"bids", 4) == 0):
                if p[0] != b'[':
                    return NULL
                p = self._scan_levels(p, k[0] == b'b')
            elif kn == 2 and k[0] == b't' and k[1] == b's':
                # a quoted integer
                if p[0] != b'"':
                    return NULL
                q = fast_num(p + 1, &x, &d)
                if q == NULL or d != 0 or q[0] != b'"' or q - p > 19:
                    return NULL
                ev.exch_ts = x
                p = q + 1
            elif kn == 8 and memcmp(k, b"checksum", 8) == 0:
                p = fast_int(p, &x)
                if p == NULL or x < -2147483648 or x > 2147483647:
                    return NULL
                ev.checksum = <int32_t>x
                ev.has_checksum = True
            elif kn == 5 and memcmp(k, b"seqId", 5) == 0:
                p = fast_int(p, &x)
                if p == NULL:
                    return NULL
                ev.seq = x
                ev.has_seq = True
            elif kn == 9 and memcmp(k, b"prevSeqId", 9) == 0:
                p = fast_int(p, &x)
                if p == NULL:
                    return NULL
                ev.prev_seq = x
                ev.has_prev = x >= 0
            else:
                return NULL
            p = fast_after(p, &more)
            if p == NULL:
                return NULL
        return p

    cdef int _bn_literal(self, size_t n) noexcept:
        """1 if the frame was read by one of the literal matchers (_bn_depth, _bn_bbo);
        0 to let the general scanner read it.  A combined-stream wrapper is matched here
        once, and its stream name picks the matcher; a bare event tries both."""
        cdef const char *p = self.buf
        cdef const char *q
        cdef int kind
        if memcmp(p, b'{"stream":"', 11) == 0:
            q = xcol_str16(p + 10)
            if q == NULL or memcmp(q, b',"data":{', 9) != 0:
                return 0
            kind = stream_kind(p + 11, <size_t>(q - p - 12))
            if kind == BK_DEPTH:
                return self._bn_depth(n, q + 9, True)
            if kind == BK_BBO:
                return self._bn_bbo(n, q + 9, True)
            return 0
        if p[0] != b'{':
            return 0
        if self._bn_depth(n, p + 1, False):
            return 1
        self._reset_event()
        return self._bn_bbo(n, p + 1, False)

    cdef bint _bn_closed(self, const char *p, bint wrapped, size_t n) noexcept:
        """Whether the event's object closes at ``p`` (and the combined-stream wrapper
        right after it, when ``wrapped``) and the frame ends there."""
        if p[0] != b'}':
            return False
        p += 1
        if wrapped:
            if p[0] != b'}':
                return False
            p += 1
        return p == self.buf + n

    cdef const char *_bn_symbol(self, const char *p) noexcept:
        """``,"s":"SYMBOL"`` at ``p`` (a non-empty symbol, kept in the event), then
        COIN-M's ``,"ps":"PAIR"`` if there; the byte after them, or NULL."""
        cdef const char *q
        if memcmp(p, b',"s":"', 6) != 0:
            return NULL
        q = xcol_str16(p + 5)
        if q == NULL or q - p <= 7:
            return NULL
        self.ev.sym = p + 6
        self.ev.sym_len = <int>(q - p - 7)
        if memcmp(q, b',"ps":"', 7) == 0:
            q = xcol_str16(q + 6)
        return q

    cdef int _bn_depth(self, size_t n, const char *p, bint wrapped) noexcept:
        """1 if the frame is a ``depthUpdate`` with its members in the order Binance
        writes them (spot, USD-M and COIN-M; ``p`` at its first member, inside the
        combined-stream wrapper when ``wrapped``) and was read; 0 to let the general
        scanner read it (any other layout, message or byte).

        Each member's key and punctuation is matched as one literal, so the header
        costs a handful of compares and the integer reads rather than a walk of
        keys; the values are read by the same scanners as in the general walk."""
        cdef Event *ev = &self.ev
        cdef int64_t x
        if memcmp(p, b'"e":"depthUpdate","E":', 22) != 0:
            return 0
        p = fast_int(p + 22, &ev.exch_ts)
        if p == NULL:
            return 0
        if memcmp(p, b',"T":', 5) == 0:       # futures: the transaction time
            p = fast_int(p + 5, &x)
            if p == NULL:
                return 0
        p = self._bn_symbol(p)
        if p == NULL or memcmp(p, b',"U":', 5) != 0:
            return 0
        p = fast_int(p + 5, &ev.first_seq)
        if p == NULL or ev.first_seq == 0 or memcmp(p, b',"u":', 5) != 0:
            return 0
        p = fast_int(p + 5, &ev.seq)
        if p == NULL:
            return 0
        ev.has_seq = True
        if memcmp(p, b',"pu":', 6) == 0:      # futures: the previous update's u
            p = fast_int(p + 6, &ev.prev_seq)
            if p == NULL:
                return 0
            ev.has_prev = True
        if memcmp(p, b',"b":[', 6) != 0:
            return 0
        p = self._scan_levels(p + 5, True)
        if p == NULL or memcmp(p, b',"a":[', 6) != 0:
            return 0
        p = self._scan_levels(p + 5, False)
        if p == NULL or not self._bn_closed(p, wrapped, n):
            return 0
        ev.kind = EV_DEPTH
        ev.channel = CH_BOOK
        return 1

    cdef const char *_bn_quote_num(self, const char *p, const char *lit, int64_t *mant,
                                   int8_t *dec, const char **txt, uint8_t *tlen) noexcept:
        """One ``,"X":"number"`` member of a bookTicker (``lit`` is its 6-byte opening):
        the plain number read into ``mant``/``dec`` and its text into ``txt``/``tlen``;
        the byte after its closing quote, or NULL if it is not that."""
        cdef const char *q
        if memcmp(p, lit, 6) != 0:
            return NULL
        p += 6
        q = fast_num(p, mant, dec)
        if q == NULL or q[0] != b'"':
            return NULL
        if p[0] == b'0' and q - p > 1 and p[1] != b'.':
            self.ev.bbo_text = False          # a leading zero: the text is not plain
        txt[0] = p
        tlen[0] = <uint8_t>(q - p)
        return q + 1

    cdef int _bn_bbo(self, size_t n, const char *p, bint wrapped) noexcept:
        """1 if the frame is a ``bookTicker`` with its members in the order Binance writes
        them (spot ``u,s,b,B,a,A``; USD-M ``e,u,s,b,B,a,A,T,E``; COIN-M with ``ps`` after
        ``s``; ``p`` and ``wrapped`` as for _bn_depth) and was read; 0 to let the general
        scanner read it (any other layout, message or byte).  As _bn_depth, each
        member's key is matched as one literal; the four numbers must be plain
        digits[.digits], and their texts are kept for the record (``Event.bbo_text``)."""
        cdef Event *ev = &self.ev
        cdef Level *b = &self.bid_buf[0]
        cdef Level *a = &self.ask_buf[0]
        cdef int64_t x
        if memcmp(p, b'"e":"bookTicker",', 17) == 0:     # futures
            p += 17
        if memcmp(p, b'"u":', 4) != 0:
            return 0
        p = fast_int(p + 4, &ev.seq)
        if p == NULL:
            return 0
        p = self._bn_symbol(p)
        if p == NULL:
            return 0
        ev.has_seq = True
        ev.bbo_text = True
        p = self._bn_quote_num(p, b',"b":"', &b.px, &b.pdec, &b.ptxt, &b.plen)
        if p == NULL:
            return 0
        p = self._bn_quote_num(p, b',"B":"', &b.qty, &b.qdec, &b.qtxt, &b.qlen)
        if p == NULL:
            return 0
        p = self._bn_quote_num(p, b',"a":"', &a.px, &a.pdec, &a.ptxt, &a.plen)
        if p == NULL:
            return 0
        p = self._bn_quote_num(p, b',"A":"', &a.qty, &a.qdec, &a.qtxt, &a.qlen)
        if p == NULL:
            return 0
        if memcmp(p, b',"T":', 5) == 0:                 # futures: the transaction time
            p = fast_int(p + 5, &x)
            if p == NULL:
                return 0
        if memcmp(p, b',"E":', 5) == 0:
            p = fast_int(p + 5, &ev.exch_ts)
            if p == NULL:
                return 0
        if not self._bn_closed(p, wrapped, n):
            return 0
        b.flag = LV_SET
        a.flag = LV_SET
        ev.nbids = 1
        ev.nasks = 1
        ev.ntrades = 0
        ev.kind = EV_BBO
        ev.channel = CH_BBO
        return 1

    cdef int _bn_fast(self, size_t n) noexcept:
        """1 if the frame was decoded by the scanner, 0 to use simdjson."""
        cdef const char *p = self.buf
        self._bn_init()
        p = self._bn_fast_obj(p, True)
        if p == NULL or p != self.buf + n:
            return 0
        if self._binance_finish() < 0:
            return 0
        return 1

    cdef const char *_bn_fast_obj(self, const char *p, bint top) noexcept:
        cdef const char *k
        cdef size_t kn
        cdef const char *q
        cdef bint more = True
        if p[0] != b'{' or p[1] != b'"':
            return NULL
        p += 1
        while more:
            p = fast_key(p, &k, &kn)
            if p == NULL:
                return NULL
            if top and kn == 4 and memcmp(k, b"data", 4) == 0:
                p = self._bn_fast_obj(p, False)
            elif top and kn == 6 and memcmp(k, b"stream", 6) == 0:
                if p[0] != b'"':
                    return NULL
                q = xcol_str16(p)
                if q == NULL:
                    return NULL
                _bn.stream_kind = stream_kind(p + 1, <size_t>(q - p - 2))
                p = q
            elif top and ((kn == 6 and memcmp(k, b"result", 6) == 0)
                          or (kn == 2 and memcmp(k, b"id", 2) == 0)):
                return NULL
            else:
                p = self._bn_fast_field(k, kn, p)
            p = fast_after(p, &more)
            if p == NULL:
                return NULL
        return p

    cdef const char *_bn_fast_field(self, const char *k, size_t kn, const char *p) noexcept:
        """Value of key ``k`` at ``p``; the end of the value, or NULL."""
        cdef Event *ev = &self.ev
        cdef Trade *t = self.trade_buf
        cdef const char *q
        cdef int64_t x = 0
        cdef char c = p[0]
        cdef char kc = k[0]
        cdef int r
        cdef int64_t *num_out = NULL
        cdef int8_t *dec_out = NULL
        if c == b'"' and kn == 1:
            # A quoted number (bookTicker b/B/a/A, trade p/q): read in one pass by
            # fast_num when plain; anything else takes the general path below.
            if kc == b'b':
                num_out, dec_out = &self.bid_buf[0].px, &self.bid_buf[0].pdec
            elif kc == b'a':
                num_out, dec_out = &self.ask_buf[0].px, &self.ask_buf[0].pdec
            elif kc == b'B':
                num_out, dec_out = &self.bid_buf[0].qty, &self.bid_buf[0].qdec
            elif kc == b'A':
                num_out, dec_out = &self.ask_buf[0].qty, &self.ask_buf[0].qdec
            elif kc == b'p':
                num_out, dec_out = &t.px, &t.pdec
            elif kc == b'q':
                num_out, dec_out = &t.qty, &t.qdec
            if num_out != NULL:
                q = fast_num(p + 1, num_out, dec_out)
                if q != NULL and q[0] == b'"':
                    if kc == b'b':
                        self.bid_buf[0].flag = LV_SET
                        _bn.bbo_b = True
                    elif kc == b'a':
                        self.ask_buf[0].flag = LV_SET
                        _bn.bbo_a = True
                    elif kc == b'B':
                        _bn.bbo_bq = True
                    elif kc == b'A':
                        _bn.bbo_aq = True
                    elif kc == b'p':
                        _bn.has_p = True
                    else:
                        _bn.has_q = True
                    return q + 1
        # the value's extent and type
        if c == b'"':
            q = xcol_str16(p)
        elif c == b'-' or (c >= b'0' and c <= b'9'):
            q = fast_int(p, &x)
        elif c == b't' and memcmp(p, b"true", 4) == 0:
            q = p + 4
        elif c == b'f' and memcmp(p, b"false", 5) == 0:
            q = p + 5
        elif c == b'n' and memcmp(p, b"null", 4) == 0:
            q = p + 4
        elif c == b'[' and kn == 1 and (kc == b'b' or kc == b'a'):
            q = self._scan_levels(p, kc == b'b')
            if q != NULL:
                _bn.has_levels = True
                if kc == b'b':
                    _bn.has_b = True
                else:
                    _bn.has_a = True
            return q
        else:
            return NULL
        if q == NULL:
            return NULL
        if kn == 1:
            if kc == b'b' or kc == b'a':
                if c == b'"':
                    if kc == b'b':
                        r = quoted_num(p, q, &self.bid_buf[0].px, &self.bid_buf[0].pdec)
                        self.bid_buf[0].flag = LV_SET
                        _bn.bbo_b = True
                    else:
                        r = quoted_num(p, q, &self.ask_buf[0].px, &self.ask_buf[0].pdec)
                        self.ask_buf[0].flag = LV_SET
                        _bn.bbo_a = True
                    return q if r == NUM_OK else NULL
                if kc == b'a' and c != b't' and c != b'f' and c != b'n':
                    if x < 0:
                        return NULL
                    t.id = x
                    _bn.has_trade_id = True
                    return q
                return NULL
            if kc == b'B' or kc == b'A':
                if c != b'"':
                    return NULL
                if kc == b'B':
                    r = quoted_num(p, q, &self.bid_buf[0].qty, &self.bid_buf[0].qdec)
                    _bn.bbo_bq = True
                else:
                    r = quoted_num(p, q, &self.ask_buf[0].qty, &self.ask_buf[0].qdec)
                    _bn.bbo_aq = True
                return q if r == NUM_OK else NULL
            if kc == b'e':
                if c != b'"':
                    return NULL
                _bn.e_kind = event_kind(p + 1, <size_t>(q - p - 2))
                return q
            if kc == b's':
                if c != b'"' or q - p <= 2:
                    return NULL
                ev.sym = p + 1
                ev.sym_len = <int>(q - p - 2)
                return q
            if kc == b'E' or kc == b'T' or kc == b'U' or kc == b'u' or kc == b't':
                if not (c == b'-' or (c >= b'0' and c <= b'9')):
                    return NULL
                if kc == b'E':
                    ev.exch_ts = x
                elif kc == b'T':
                    _bn.trade_time = x
                elif kc == b'U':
                    ev.first_seq = x
                elif kc == b'u':
                    ev.seq = x
                    ev.has_seq = True
                else:
                    t.id = x
                    _bn.has_trade_id = True
                return q
            if kc == b'p' or kc == b'q':
                if c != b'"':
                    return NULL
                if kc == b'p':
                    r = quoted_num(p, q, &t.px, &t.pdec)
                    _bn.has_p = True
                else:
                    r = quoted_num(p, q, &t.qty, &t.qdec)
                    _bn.has_q = True
                if r != NUM_OK:
                    return NULL
                return q
            if kc == b'm':
                if c == b't':
                    t.side = -1
                elif c == b'f':
                    t.side = 1
                else:
                    return NULL
            return q
        if kn == 2 and k[0] == b'p' and k[1] == b'u':
            if not (c == b'-' or (c >= b'0' and c <= b'9')):
                return NULL
            ev.prev_seq = x
            ev.has_prev = True
            return q
        if (kn == 12 and memcmp(k, b"lastUpdateId", 12) == 0) or (kn == 4 and (
                memcmp(k, b"bids", 4) == 0 or memcmp(k, b"asks", 4) == 0)):
            return NULL
        return q

    cdef int _binance_field(self, const char *k, size_t kn, Value &v) noexcept:
        cdef Event *ev = &self.ev
        cdef const char *p
        cdef size_t n
        cdef int r
        cdef int64_t x
        cdef cbool b
        cdef Trade *t = self.trade_buf
        if kn == 1:
            if k[0] == b'b' or k[0] == b'a':
                if val_raw(v, &p, &n) != 0:
                    return self._fail(DE_SHAPE, 0, b"b/a")
                if n > 0 and p[0] == b'[':
                    _bn.has_levels = True
                    if k[0] == b'b':
                        _bn.has_b = True
                    else:
                        _bn.has_a = True
                    return self._levels(v, k[0] == b'b', False)
                if n > 0 and p[0] == b'"':
                    # bookTicker best price
                    if k[0] == b'b':
                        r = parse_num(p, p + n, &self.bid_buf[0].px, &self.bid_buf[0].pdec)
                        self.bid_buf[0].flag = LV_SET
                        _bn.bbo_b = True
                    else:
                        r = parse_num(p, p + n, &self.ask_buf[0].px, &self.ask_buf[0].pdec)
                        self.ask_buf[0].flag = LV_SET
                        _bn.bbo_a = True
                    if r != NUM_OK:
                        return self._fail(DE_NUMBER, r, b"bookTicker price")
                    return 0
                if k[0] == b'a':
                    # aggTrade id
                    r = parse_int(p, p + n, &x)
                    if r != NUM_OK:
                        return self._fail(DE_NUMBER, r, b"aggTrade a")
                    t.id = x
                    _bn.has_trade_id = True
                    return 0
                return self._fail(DE_SHAPE, 0, b"b/a")
            if k[0] == b'B' or k[0] == b'A':
                if val_raw(v, &p, &n) != 0:
                    return self._fail(DE_SHAPE, 0, b"B/A")
                if k[0] == b'B':
                    r = parse_num(p, p + n, &self.bid_buf[0].qty, &self.bid_buf[0].qdec)
                    _bn.bbo_bq = True
                else:
                    r = parse_num(p, p + n, &self.ask_buf[0].qty, &self.ask_buf[0].qdec)
                    _bn.bbo_aq = True
                if r != NUM_OK:
                    return self._fail(DE_NUMBER, r, b"bookTicker size")
                return 0
            if k[0] == b'e':
                if val_raw(v, &p, &n) != 0:
                    return self._fail(DE_SHAPE, 0, b"e")
                p = strip_quotes(p, &n)
                _bn.e_kind = event_kind(p, n)
                return 0
            if k[0] == b's':
                if val_raw(v, &p, &n) != 0:
                    return self._fail(DE_SHAPE, 0, b"s")
                p = strip_quotes(p, &n)
                if n == 0:
                    return self._fail(DE_SHAPE, 0, b"s (symbol)")
                ev.sym = p
                ev.sym_len = <int>n
                return 0
            if k[0] == b'E' or k[0] == b'T' or k[0] == b'U' or k[0] == b'u' or k[0] == b't':
                r = val_int64(v, &x)
                if r != 0:
                    return self._fail(DE_SHAPE, r, b"E/T/U/u/t (expected an integer)")
                if k[0] == b'E':
                    ev.exch_ts = x
                elif k[0] == b'T':
                    _bn.trade_time = x
                elif k[0] == b'U':
                    ev.first_seq = x
                elif k[0] == b'u':
                    ev.seq = x
                    ev.has_seq = True
                else:
                    t.id = x
                    _bn.has_trade_id = True
                return 0
            if k[0] == b'p' or k[0] == b'q':
                if val_raw(v, &p, &n) != 0:
                    return self._fail(DE_SHAPE, 0, b"p/q")
                if k[0] == b'p':
                    r = parse_num(p, p + n, &t.px, &t.pdec)
                    _bn.has_p = True
                else:
                    r = parse_num(p, p + n, &t.qty, &t.qdec)
                    _bn.has_q = True
                if r != NUM_OK:
                    return self._fail(DE_NUMBER, r, b"trade price/size")
                return 0
            if k[0] == b'm':
                r = val_bool(v, &b)
                if r != 0:
                    return self._fail(DE_SHAPE, r, b"m (expected a boolean)")
                t.side = -1 if b else 1
                return 0
            return 0
        if keq(k, kn, b"pu", 2):
            r = val_int64(v, &x)
            if r != 0:
                return self._fail(DE_SHAPE, r, b"pu (expected an integer)")
            ev.prev_seq = x
            ev.has_prev = True
            return 0
        if keq(k, kn, b"lastUpdateId", 12):
            r = val_int64(v, &x)
            if r != 0:
                return self._fail(DE_SHAPE, r, b"lastUpdateId (expected an integer)")
            ev.seq = x
            ev.has_seq = True
            _bn.has_snapshot_id = True
            return 0
        if keq(k, kn, b"bids", 4) or keq(k, kn, b"asks", 4):
            _bn.has_levels = True
            return self._levels(v, k[0] == b'b', False)
        return 0

    # ---------------------------------------------------------------- OKX

    cdef int _okx(self) noexcept:
        cdef ObjCursor root
        cdef ObjCursor sub
        cdef ArrCursor arr
        cdef Value v
        cdef Value w
        cdef const char *k
        cdef size_t kn
        cdef const char *p
        cdef size_t n
        cdef int r
        cdef int action = 0        # 1 snapshot, 2 update
        cdef bint is_event = False
        cdef bint has_data = False
        cdef int channel = -1      # -1 unknown, CH_NONE ignored channel
        cdef Event *ev = &self.ev
        r = doc_object(self.doc, root)
        if r != 0:
            return self._fail(DE_SHAPE if is_type_error(r) else DE_JSON, r,
                              b"message (expected an object)")
        while True:
            r = obj_next(root, &k, &kn, v)
            if r == 0:
                break
            if r < 0:
                return self._fail(DE_JSON, -r, b"message")
            if keq(k, kn, b"arg", 3):
                r = val_object(v, sub)
                if r != 0:
                    return self._fail(DE_SHAPE, r, b"arg (expected an object)")
                while True:
                    r = obj_next(sub, &k, &kn, w)
                    if r == 0:
                        break
                    if r < 0:
                        return self._fail(DE_JSON, -r, b"arg")
                    if keq(k, kn, b"channel", 7):
                        if val_str(w, &p, &n) != 0:
                            return self._fail(DE_SHAPE, 0, b"arg.channel")
                        if keq(p, n, b"books", 5) or keq(p, n, b"books-l2-tbt", 12) \
                                or keq(p, n, b"books50-l2-tbt", 14):
                            channel = CH_BOOK
                        elif keq(p, n, b"books5", 6):
                            channel = CH_BOOK_TOP
                        elif keq(p, n, b"bbo-tbt", 7):
                            channel = CH_BBO
                        elif keq(p, n, b"trades", 6) or keq(p, n, b"trades-all", 10):
                            channel = CH_TRADES
                        else:
                            channel = CH_NONE
                    elif keq(k, kn, b"instId", 6):
                        if val_str(w, &p, &n) != 0 or n == 0:
                            return self._fail(DE_SHAPE, 0, b"arg.instId")
                        ev.sym = p
                        ev.sym_len = <int>n
            elif keq(k, kn, b"action", 6):
                if val_str(v, &p, &n) != 0:
                    return self._fail(DE_SHAPE, 0, b"action")
                if keq(p, n, b"snapshot", 8):
                    action = 1
                elif keq(p, n, b"update", 6):
                    action = 2
                else:
                    return self._fail(DE_SHAPE, 0, b"action (snapshot/update)")
            elif keq(k, kn, b"data", 4):
                has_data = True
                if channel == CH_NONE:
                    continue
                r = val_array(v, arr)
                if r != 0:
                    return self._fail(DE_SHAPE, r, b"data (expected an array)")
                while True:
                    r = arr_next(arr, w)
                    if r == 0:
                        break
                    if r < 0:
                        return self._fail(DE_JSON, -r, b"data")
                    if self._okx_item(w) < 0:
                        return -1
            elif keq(k, kn, b"event", 5):
                is_event = True
        if is_event:
            ev.kind = EV_CONTROL
            return 0
        if not has_data:
            return self._fail(DE_UNKNOWN, 0, b"message (no data, no event)")
        if channel == CH_NONE:
            ev.kind = EV_IGNORED
            return 0
        if channel < 0:
            return self._fail(DE_SHAPE, 0, b"arg.channel (missing)")
        if ev.sym_len == 0:
            return self._fail(DE_SHAPE, 0, b"arg.instId (missing)")
        ev.channel = channel
        if channel == CH_TRADES:
            if ev.ntrades == 0:
                return self._fail(DE_SHAPE, 0, b"trades data (empty)")
            ev.kind = EV_TRADE
            ev.seq = self.trade_buf[ev.ntrades - 1].id
            ev.first_seq = self.trade_buf[0].id
            ev.has_seq = True
            ev.has_prev = False
            return 0
        if channel == CH_BOOK:
            if action == 0:
                return self._fail(DE_SHAPE, 0, b"action (missing)")
            ev.kind = EV_SNAPSHOT if action == 1 else EV_DEPTH
        else:
            ev.kind = EV_SNAPSHOT
        ev.first_seq = ev.seq
        return 0

    cdef int _okx_item(self, Value &v) noexcept:
        cdef ObjCursor o
        cdef Value w
        cdef const char *k
        cdef size_t kn
        cdef const char *p
        cdef size_t n
        cdef int r
        cdef int64_t x
        cdef Event *ev = &self.ev
        cdef Trade *t
        cdef bint is_trade = False
        r = val_object(v, o)
        if r != 0:
            return self._fail(DE_SHAPE, r, b"data[] (expected an object)")
        if ev.ntrades == self.trade_cap and self._grow(2) < 0:
            return self._fail(DE_NO_MEMORY, 0, b"trades")
        t = &self.trade_buf[ev.ntrades]
        t.side = 0
        t.ts = 0
        t.px = -1
        t.qty = -1
        t.pdec = 0
        t.qdec = 0
        while True:
            r = obj_next(o, &k, &kn, w)
            if r == 0:
                break
            if r < 0:
                return self._fail(DE_JSON, -r, b"data[]")
            if keq(k, kn, b"asks", 4) or keq(k, kn, b"bids", 4):
                if self._levels(w, k[0] == b'b', False) < 0:
                    return -1
            elif keq(k, kn, b"ts", 2):
                if val_raw(w, &p, &n) != 0 or parse_int(p, p + n, &x) != NUM_OK:
                    return self._fail(DE_SHAPE, 0, b"ts (expected an integer)")
                ev.exch_ts = x
                t.ts = x
            elif keq(k, kn, b"checksum", 8):
                if val_int64(w, &x) != 0 or x < -2147483648 or x > 2147483647:
                    return self._fail(DE_SHAPE, 0, b"checksum (expected a 32-bit integer)")
                ev.checksum = <int32_t>x
                ev.has_checksum = True
            elif keq(k, kn, b"seqId", 5):
                if val_int64(w, &x) != 0:
                    return self._fail(DE_SHAPE, 0, b"seqId (expected an integer)")
                ev.seq = x
                ev.has_seq = True
            elif keq(k, kn, b"prevSeqId", 9):
                if val_int64(w, &x) != 0:
                    return self._fail(DE_SHAPE, 0, b"prevSeqId (expected an integer)")
                ev.prev_seq = x
                ev.has_prev = x >= 0
            elif keq(k, kn, b"tradeId", 7):
                if val_raw(w, &p, &n) != 0 or parse_int(p, p + n, &x) != NUM_OK:
                    return self._fail(DE_SHAPE, 0, b"tradeId (expected an integer)")
                t.id = x
                is_trade = True
            elif keq(k, kn, b"px", 2):
                if val_raw(w, &p, &n) != 0:
                    return self._fail(DE_SHAPE, 0, b"px")
                r = parse_num(p, p + n, &t.px, &t.pdec)
                if r != NUM_OK:
                    return self._fail(DE_NUMBER, r, b"px")
            elif keq(k, kn, b"sz", 2):
                if val_raw(w, &p, &n) != 0:
                    return self._fail(DE_SHAPE, 0, b"sz")
                r = parse_num(p, p + n, &t.qty, &t.qdec)
                if r != NUM_OK:
                    return self._fail(DE_NUMBER, r, b"sz")
            elif keq(k, kn, b"side", 4):
                if val_str(w, &p, &n) != 0:
                    return self._fail(DE_SHAPE, 0, b"side")
                t.side = 1 if keq(p, n, b"buy", 3) else (-1 if keq(p, n, b"sell", 4) else 0)
            elif keq(k, kn, b"instId", 6) and ev.sym_len == 0:
                if val_str(w, &p, &n) != 0:
                    return self._fail(DE_SHAPE, 0, b"instId")
                ev.sym = p
                ev.sym_len = <int>n
        if is_trade:
            if t.px < 0 or t.qty < 0:
                return self._fail(DE_SHAPE, 0, b"trade (needs tradeId, px and sz)")
            ev.ntrades += 1
        return 0

    # ------------------------------------------------------------ Deribit

    cdef int _deribit(self) noexcept:
        cdef ObjCursor root
        cdef Value v
        cdef const char *k
        cdef size_t kn
        cdef int r
        cdef bint control = False
        cdef bint has_params = False
        r = doc_object(self.doc, root)
        if r != 0:
            return self._fail(DE_SHAPE if is_type_error(r) else DE_JSON, r,
                              b"message (expected an object)")
        while True:
            r = obj_next(root, &k, &kn, v)
            if r == 0:
                break
            if r < 0:
                return self._fail(DE_JSON, -r, b"message")
            if keq(k, kn, b"params", 6):
                has_params = True
                if self._deribit_params(v) < 0:
                    return -1
            elif keq(k, kn, b"result", 6) or keq(k, kn, b"error", 5) or keq(k, kn, b"id", 2):
                control = True
        if self.ev.kind != EV_NONE:
            return 0
        if control or has_params:
            # responses, heartbeats and test_requests
            self.ev.kind = EV_CONTROL
            return 0
        return self._fail(DE_UNKNOWN, 0, b"message")

    cdef int _deribit_params(self, Value &v) noexcept:
        cdef ObjCursor o
        cdef Value w
        cdef const char *k
        cdef size_t kn
        cdef const char *p
        cdef size_t n
        cdef size_t i, j
        cdef int r
        cdef int channel = -1
        cdef int dots
        cdef Event *ev = &self.ev
        r = val_object(v, o)
        if r != 0:
            return self._fail(DE_SHAPE, r, b"params (expected an object)")
        while True:
            r = obj_next(o, &k, &kn, w)
            if r == 0:
                break
            if r < 0:
                return self._fail(DE_JSON, -r, b"params")
            if keq(k, kn, b"channel", 7):
                if val_str(w, &p, &n) != 0:
                    return self._fail(DE_SHAPE, 0, b"params.channel")
                dots = 0
                for i in range(n):
                    if p[i] == b'.':
                        dots += 1
                if n > 5 and memcmp(p, b"book.", 5) == 0:
                    channel = CH_BOOK if dots <= 2 else CH_BOOK_TOP
                elif n > 7 and memcmp(p, b"trades.", 7) == 0:
                    channel = CH_TRADES
                elif n > 6 and memcmp(p, b"quote.", 6) == 0:
                    channel = CH_BBO
                else:
                    channel = CH_NONE
                # instrument: between the first and the second dot
                i = 0
                while i < n and p[i] != b'.':
                    i += 1
                j = i + 1
                while j < n and p[j] != b'.':
                    j += 1
                if i < n and channel != CH_TRADES and channel != CH_NONE:
                    ev.sym = p + i + 1
                    ev.sym_len = <int>(j - i - 1)
            elif keq(k, kn, b"data", 4):
                if channel == CH_NONE:
                    ev.kind = EV_IGNORED
                    continue
                if channel == CH_TRADES:
                    if self._deribit_trades(w) < 0:
                        return -1
                elif channel == CH_BOOK or channel == CH_BOOK_TOP:
                    if self._deribit_book(w, channel == CH_BOOK_TOP) < 0:
                        return -1
                    if channel == CH_BOOK_TOP:
                        ev.kind = EV_SNAPSHOT
                        ev.channel = CH_BOOK_TOP
                elif channel == CH_BBO:
                    if self._deribit_quote(w) < 0:
                        return -1
                else:
                    return self._fail(DE_SHAPE, 0, b"params.channel (must precede data)")
        return 0

    cdef int _deribit_book(self, Value &v, bint grouped) noexcept:
        cdef ObjCursor o
        cdef Value w
        cdef const char *k
        cdef size_t kn
        cdef const char *p
        cdef size_t n
        cdef int r
        cdef int64_t x
        cdef int typ = 0           # 1 snapshot, 2 change
        cdef Event *ev = &self.ev
        r = val_object(v, o)
        if r != 0:
            return self._fail(DE_SHAPE, r, b"book data (expected an object)")
        while True:
            r = obj_next(o, &k, &kn, w)
            if r == 0:
                break
            if r < 0:
                return self._fail(DE_JSON, -r, b"book data")
            if keq(k, kn, b"bids", 4) or keq(k, kn, b"asks", 4):
                # grouped books send [price, amount]; raw/100ms send [action, price, amount]
                if self._levels(w, k[0] == b'b', not grouped) < 0:
                    return -1
            elif keq(k, kn, b"change_id", 9):
                if val_int64(w, &x) != 0:
                    return self._fail(DE_SHAPE, 0, b"change_id (expected an integer)")
                ev.seq = x
                ev.has_seq = True
            elif keq(k, kn, b"prev_change_id", 14):
                if val_int64(w, &x) != 0:
                    return self._fail(DE_SHAPE, 0, b"prev_change_id (expected an integer)")
                ev.prev_seq = x
                ev.has_prev = True
            elif keq(k, kn, b"timestamp", 9):
                if val_int64(w, &x) != 0:
                    return self._fail(DE_SHAPE, 0, b"timestamp (expected an integer)")
                ev.exch_ts = x
            elif keq(k, kn, b"type", 4):
                if val_str(w, &p, &n) != 0:
                    return self._fail(DE_SHAPE, 0, b"type")
                typ = 1 if keq(p, n, b"snapshot", 8) else 2
            elif keq(k, kn, b"instrument_name", 15):
                if val_str(w, &p, &n) != 0 or n == 0:
                    return self._fail(DE_SHAPE, 0, b"instrument_name")
                ev.sym = p
                ev.sym_len = <int>n
        if not ev.has_seq:
            return self._fail(DE_SHAPE, 0, b"change_id (missing)")
        if ev.sym_len == 0:
            return self._fail(DE_SHAPE, 0, b"instrument_name (missing)")
        if typ == 0:
            typ = 2 if ev.has_prev else 1
        ev.kind = EV_SNAPSHOT if typ == 1 else EV_DEPTH
        ev.channel = CH_BOOK
        ev.first_seq = ev.seq
        return 0

    cdef int _deribit_quote(self, Value &v) noexcept:
        """A ``quote.{instrument}`` notification: the best bid and ask as one EV_BBO.

        The four numbers are JSON numbers, read exactly as the book's levels are.  A side
        without orders (Deribit writes a null or zero price or amount) becomes price 0 and
        amount 0, as Binance writes an empty bookTicker side.  Deribit's quote carries no
        sequence: ``seq`` is left unset and the engine derives one from ``timestamp``."""
        cdef ObjCursor o
        cdef Value w
        cdef const char *k
        cdef size_t kn
        cdef const char *p
        cdef size_t n
        cdef int r
        cdef int64_t x
        cdef int seen = 0          # bit per field: timestamp, bid px, bid amount, ask px, ask amount
        cdef Level *bid = self.bid_buf
        cdef Level *ask = self.ask_buf
        cdef Event *ev = &self.ev
        memset(bid, 0, sizeof(Level))
        memset(ask, 0, sizeof(Level))
        r = val_object(v, o)
        if r != 0:
            return self._fail(DE_SHAPE, r, b"quote data (expected an object)")
        while True:
            r = obj_next(o, &k, &kn, w)
            if r == 0:
                break
            if r < 0:
                return self._fail(DE_JSON, -r, b"quote data")
            if keq(k, kn, b"timestamp", 9):
                # the engine keys quotes on timestamp * 1000 (+ position): keep it in range
                if val_int64(w, &x) != 0 or x < 0 or x >= 1000000000000000:
                    return self._fail(DE_SHAPE, 0,
                                      b"timestamp (expected milliseconds since the epoch)")
                ev.exch_ts = x
                seen |= 1
            elif keq(k, kn, b"instrument_name", 15):
                if val_str(w, &p, &n) != 0 or n == 0:
                    return self._fail(DE_SHAPE, 0, b"instrument_name")
                ev.sym = p
                ev.sym_len = <int>n
            elif keq(k, kn, b"best_bid_price", 14):
                if self._quote_num(w, &bid.px, &bid.pdec, b"best_bid_price") < 0:
                    return -1
                seen |= 2
            elif keq(k, kn, b"best_bid_amount", 15):
                if self._quote_num(w, &bid.qty, &bid.qdec, b"best_bid_amount") < 0:
                    return -1
                seen |= 4
            elif keq(k, kn, b"best_ask_price", 14):
                if self._quote_num(w, &ask.px, &ask.pdec, b"best_ask_price") < 0:
                    return -1
                seen |= 8
            elif keq(k, kn, b"best_ask_amount", 15):
                if self._quote_num(w, &ask.qty, &ask.qdec, b"best_ask_amount") < 0:
                    return -1
                seen |= 16
        if seen != 31 or ev.sym_len == 0:
            return self._fail(DE_SHAPE, 0, b"quote (needs instrument_name, timestamp, "
                              b"best_bid_price, best_bid_amount, best_ask_price, "
                              b"best_ask_amount)")
        if bid.px == 0 or bid.qty == 0:
            memset(bid, 0, sizeof(Level))
        if ask.px == 0 or ask.qty == 0:
            memset(ask, 0, sizeof(Level))
        ev.nbids = 1
        ev.nasks = 1
        ev.kind = EV_BBO
        ev.channel = CH_BBO
        return 0

    cdef int _quote_num(self, Value &v, int64_t *m, int8_t *d, const char *what) noexcept:
        """One number of a Deribit quote into ``m``/``d``; null reads as 0."""
        cdef const char *p
        cdef size_t n
        cdef int r
        if val_raw(v, &p, &n) != 0:
            return self._fail(DE_SHAPE, 0, what)
        while n > 0 and (p[n - 1] == b' ' or p[n - 1] == b'\n' or p[n - 1] == b'\r'
                         or p[n - 1] == b'\t'):
            n -= 1
        if keq(p, n, b"null", 4):
            m[0] = 0
            d[0] = 0
            return 0
        r = parse_num(p, p + n, m, d)
        if r != NUM_OK:
            return self._fail(DE_NUMBER, r, what)
        return 0

    cdef int _deribit_trades(self, Value &v) noexcept:
        cdef ArrCursor a
        cdef ObjCursor o
        cdef Value item
        cdef Value w
        cdef const char *k
        cdef size_t kn
        cdef const char *p
        cdef size_t n
        cdef int r
        cdef int64_t x
        cdef Trade *t
        cdef Event *ev = &self.ev
        r = val_array(v, a)
        if r != 0:
            return self._fail(DE_SHAPE, r, b"trades data (expected an array)")
        while True:
            r = arr_next(a, item)
            if r == 0:
                break
            if r < 0:
                return self._fail(DE_JSON, -r, b"trades data")
            r = val_object(item, o)
            if r != 0:
                return self._fail(DE_SHAPE, r, b"trade (expected an object)")
            if ev.ntrades == self.trade_cap and self._grow(2) < 0:
                return self._fail(DE_NO_MEMORY, 0, b"trades")
            t = &self.trade_buf[ev.ntrades]
            t.side = 0
            t.ts = 0
            t.id = -1
            t.qty = -1
            t.px = -1
            while True:
                r = obj_next(o, &k, &kn, w)
                if r == 0:
                    break
                if r < 0:
                    return self._fail(DE_JSON, -r, b"trade")
                if keq(k, kn, b"trade_seq", 9):
                    if val_int64(w, &x) != 0:
                        return self._fail(DE_SHAPE, 0, b"trade_seq (expected an integer)")
                    t.id = x
                elif keq(k, kn, b"timestamp", 9):
                    if val_int64(w, &x) != 0:
                        return self._fail(DE_SHAPE, 0, b"timestamp (expected an integer)")
                    t.ts = x
                    ev.exch_ts = x
                elif keq(k, kn, b"price", 5):
                    if val_raw(w, &p, &n) != 0:
                        return self._fail(DE_SHAPE, 0, b"price")
                    r = parse_num(p, p + n, &t.px, &t.pdec)
                    if r != NUM_OK:
                        return self._fail(DE_NUMBER, r, b"price")
                elif keq(k, kn, b"amount", 6):
                    if val_raw(w, &p, &n) != 0:
                        return self._fail(DE_SHAPE, 0, b"amount")
                    r = parse_num(p, p + n, &t.qty, &t.qdec)
                    if r != NUM_OK:
                        return self._fail(DE_NUMBER, r, b"amount")
                elif keq(k, kn, b"direction", 9):
                    if val_str(w, &p, &n) != 0:
                        return self._fail(DE_SHAPE, 0, b"direction")
                    t.side = 1 if keq(p, n, b"buy", 3) else (-1 if keq(p, n, b"sell", 4) else 0)
                elif keq(k, kn, b"instrument_name", 15) and ev.sym_len == 0:
                    if val_str(w, &p, &n) != 0:
                        return self._fail(DE_SHAPE, 0, b"instrument_name")
                    ev.sym = p
                    ev.sym_len = <int>n
            if t.id < 0 or t.px < 0 or t.qty < 0:
                return self._fail(DE_SHAPE, 0, b"trade (needs trade_seq, price, amount)")
            ev.ntrades += 1
        if ev.ntrades == 0 or ev.sym_len == 0:
            return self._fail(DE_SHAPE, 0, b"trades (empty or no instrument_name)")
        ev.kind = EV_TRADE
        ev.channel = CH_TRADES
        ev.first_seq = self.trade_buf[0].id
        ev.seq = self.trade_buf[ev.ntrades - 1].id
        ev.has_seq = True
        return 0

    # ---------------------------------------------------------- Python API

    def decode_frame(self, data: bytes) -> int:
        """Decode ``data``; returns the event kind (>= 0) or -1 on error."""
        cdef const unsigned char[:] view = data
        if len(data) == 0:
            return self.decode(b"", 0)
        return self.decode(<const char *>&view[0], len(data))

    def error(self) -> str | None:
        """A sentence naming what the last frame got wrong, or None."""
        cdef Event *ev = &self.ev
        if ev.err == 0:
            return None
        msg = f"{_ERR_NAMES[ev.err]} at {ev.err_what.decode()}"
        if ev.err == DE_JSON and ev.err_detail != 0:
            msg += f": {error_message(ev.err_detail).decode()}"
        elif ev.err == DE_NUMBER and 0 < ev.err_detail < len(_NUM_ERR_NAMES):
            msg += f": {_NUM_ERR_NAMES[ev.err_detail]}"
        elif ev.err == DE_TOO_LARGE:
            msg += f" (limit {self.max_frame} bytes)"
        return msg

    @property
    def error_code(self) -> int:
        return self.ev.err

    def event(self) -> dict:
        """The last decoded event as a dict of Python values (tests, tools)."""
        cdef Event *ev = &self.ev
        cdef int i
        out = {
            "kind": ev.kind, "channel": ev.channel,
            "symbol": ev.sym[:ev.sym_len].decode() if ev.sym_len else None,
            "first_seq": ev.first_seq, "seq": ev.seq if ev.has_seq else None,
            "prev_seq": ev.prev_seq if ev.has_prev else None,
            "exch_ts": ev.exch_ts,
            "checksum": ev.checksum if ev.has_checksum else None,
            # True once a book applied the levels rescaling each as it went (their px
            # and qty then stay as written); False: as written before a book took
            # them, at the book's scale after
            "levels_as_written": bool(ev.lv_raw),
            "bids": [(ev.bids[i].px, ev.bids[i].pdec, ev.bids[i].qty, ev.bids[i].qdec,
                      ev.bids[i].flag) for i in range(ev.nbids)],
            "asks": [(ev.asks[i].px, ev.asks[i].pdec, ev.asks[i].qty, ev.asks[i].qdec,
                      ev.asks[i].flag) for i in range(ev.nasks)],
            "trades": [(ev.trades[i].id, ev.trades[i].px, ev.trades[i].pdec,
                        ev.trades[i].qty, ev.trades[i].qdec, ev.trades[i].side,
                        ev.trades[i].ts) for i in range(ev.ntrades)],
        }
        return out

    def level_summary(self) -> tuple:
        """What the last event says of its levels for a book to rescale them as it
        applies them: ``(levels read by their shape, bit mask of their price decimals,
        of their size decimals, whether one of their prices is 0)`` (tests)."""
        cdef Event *ev = &self.ev
        return (ev.lv_shaped, ev.lv_pdecs, ev.lv_qdecs, bool(ev.lv_zero_px))

    def level_texts(self) -> tuple:
        """The last event's levels as the exchange wrote them: ``(bids, asks)``, each a
        list of ``(price text, size text)`` (None where the decoder keeps no text);
        valid until the next decode (tests)."""
        cdef Event *ev = &self.ev
        cdef Level *lv
        cdef int i, side
        out = ([], [])
        for side in range(2):
            for i in range(ev.nbids if side == 0 else ev.nasks):
                lv = &ev.bids[i] if side == 0 else &ev.asks[i]
                out[side].append((lv.ptxt[:lv.plen] if lv.ptxt != NULL else None,
                                  lv.qtxt[:lv.qlen] if lv.qtxt != NULL else None))
        return out


def _scan_number(data: bytes):
    """Test hook: the level scanner's number reader on ``data`` (padded here);
    ``(mantissa, decimals, bytes consumed)`` or None when it declines."""
    cdef bytes buf = data + b"\0" * 16
    cdef const char *p = buf
    cdef int64_t m = 0
    cdef int8_t d = 0
    cdef const char *q = fast_num(p, &m, &d)
    if q == NULL:
        return None
    return (m, d, <Py_ssize_t>(q - p))


def _scan_int(data: bytes):
    """Test hook: the scanners' integer reader on ``data`` (padded here with zeros);
    ``(value, bytes consumed)`` or None when it declines."""
    cdef bytes buf = data + b"\0" * 64
    cdef const char *p = buf
    cdef int64_t v = 0
    cdef const char *q = fast_int(p, &v)
    if q == NULL:
        return None
    return (v, <Py_ssize_t>(q - p))


def _parse_number(data: bytes):
    """Test hook: the exact parser on the whole of ``data``; ``(mantissa,
    decimals)`` or the NumErr code."""
    cdef const char *p = data
    cdef int64_t m = 0
    cdef int8_t d = 0
    cdef int r = parse_num(p, p + len(data), &m, &d)
    if r != NUM_OK:
        return r
    return (m, d)
