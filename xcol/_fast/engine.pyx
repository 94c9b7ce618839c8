# cython: language_level=3
# distutils: language=c++
"""The per-venue pipeline that runs for every frame: decode, route, book.

An :class:`Engine` owns one :class:`~xcol._fast.decode.Decoder` and the books
of every instrument it has been told about.  ``feed_ptr`` is the hot path: it
touches no Python object it allocates, logs nothing and never raises; what
went wrong is counted and can be read back from Python.
"""

cimport cython
from cpython.list cimport PyList_GET_ITEM
from cpython.ref cimport PyObject
from libc.stdint cimport int64_t
from libc.stdlib cimport malloc, realloc, free
from libc.string cimport strlen
from libc.stdint cimport uint64_t

from xcol._fast.decode cimport (
    Decoder, VENUE_BINANCE, VENUE_OKX, VENUE_DERIBIT, N_DECODE_ERRORS,
)
from xcol._fast.event cimport (
    Event, EV_DEPTH, EV_SNAPSHOT, EV_BBO, EV_TRADE, EV_REST_SNAPSHOT, EV_CONTROL,
    EV_IGNORED, CH_BOOK, CH_BOOK_TOP, CH_BBO, N_CHANNELS,
)
from xcol._fast.book cimport (
    Book, ST_SYNCED, MODE_BINANCE_SPOT, MODE_BINANCE_FUTURES, MODE_OKX, MODE_DERIBIT, MODE_SNAPSHOT,
    AR_APPLIED, AR_BUFFERED, AR_DUPLICATE, AR_GAP, AR_CHECKSUM, AR_UNSYNCED, AR_BAD_NUMBER,
    AR_SNAPSHOT, AR_HELD,
)
from xcol._fast.event cimport Level, CH_TRADES, CH_AGG_TRADES
from xcol._fast.hdr cimport HdrHistogram
from xcol._fast.num cimport (to_scale, format_num, format_int, format_int_hi,
                             xcol_copy16, NUM_OK)
from libc.string cimport memcpy, memset, memchr, memcmp

cdef extern from "string.h" nogil:
    void *memmem(const void *hay, size_t hn, const void *needle, size_t nn)


cdef inline const char *_after(const char *p, const char *end, const char *key,
                               size_t kn) noexcept nogil:
    """The byte after the first ``key`` in ``[p, end)``, or NULL."""
    if p == NULL or p >= end:
        return NULL
    cdef const char *q = <const char *>memmem(p, <size_t>(end - p), key, kn)
    if q == NULL:
        return NULL
    return q + kn


cdef inline bint _trade_seen(InstState *st, int64_t tid) noexcept nogil:
    """Mark trade ``tid`` seen; True if it already was (or is too old to tell: at least
    ``TRADE_WINDOW`` ids behind the newest).

    ``trade_seen`` is a ring of ``TRADE_WINDOW`` bits, one per id (bit ``id % window``),
    valid for the ids ``(trade_id - window, trade_id]``.  Moving the newest id forward
    clears the bits of the ids it passes, a word at a time, so a trade costs O(1)
    however far a lagging line is behind."""
    cdef int64_t d, a, b, w0
    cdef int lo, hi, i, nw
    cdef uint64_t mask
    if st.trade_id < 0 or tid - st.trade_id >= TRADE_WINDOW_C:
        memset(st.trade_seen, 0, sizeof(st.trade_seen))
    elif tid > st.trade_id:
        # clear the ids trade_id+1 .. tid: nw + 1 words (a count, so ids near the top of
        # int64 cannot overflow a running id)
        a = st.trade_id + 1
        b = tid
        w0 = a >> 6
        nw = <int>((b >> 6) - w0)
        for i in range(nw + 1):
            lo = <int>(a & 63) if i == 0 else 0
            hi = <int>(b & 63) if i == nw else 63
            mask = ((~(<uint64_t>0)) >> (63 - hi)) & ((~(<uint64_t>0)) << lo)
            st.trade_seen[(w0 + i) & (TRADE_WORDS - 1)] &= ~mask
    else:
        d = st.trade_id - tid
        if d >= TRADE_WINDOW_C:
            return True
        if (st.trade_seen[(tid >> 6) & (TRADE_WORDS - 1)] >> (tid & 63)) & 1:
            return True
        st.trade_seen[(tid >> 6) & (TRADE_WORDS - 1)] |= (<uint64_t>1) << (tid & 63)
        return False
    st.trade_seen[(tid >> 6) & (TRADE_WORDS - 1)] |= (<uint64_t>1) << (tid & 63)
    st.trade_id = tid
    return False


cdef inline int64_t _quote_key(InstState *st, int line, int64_t ts) noexcept nogil:
    """The sequence a Deribit quote lacks, as ``line`` sees it: ``ts * 1000 + k`` for the
    k-th quote stamped ``ts`` (ms) on that line.  Deribit delivers an instrument's quotes in
    order, so every line gives the same quote the same key (k stops at 999)."""
    cdef int64_t key = ts * 1000
    cdef int64_t last = st.quote_seq[line]
    if key <= last < key + 1000:
        key = last + 1 if last < key + 999 else last
    st.quote_seq[line] = key
    return key


cdef inline const char *_uint(const char *p, const char *end, int64_t *out) noexcept nogil:
    """Up to 18 digits at ``p``; the byte after them, or NULL."""
    cdef int64_t v = 0
    cdef const char *s = p
    if p == NULL:
        return NULL
    while p < end and p - s < 18 and <unsigned char>(p[0] - 48) <= 9:
        v = v * 10 + (p[0] - 48)
        p += 1
    if p == s or p >= end:
        return NULL
    out[0] = v
    return p
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_GET_SIZE, PyBytes_FromStringAndSize
from xcol._fast.clock cimport mono_ns, wall_ns

#: How many trade ids behind the newest one a trade can arrive and still be told apart
#: from a copy; an older one is counted as a duplicate.
TRADE_WINDOW = TRADE_WINDOW_C

MARKETS = ("binance-spot", "binance-usdm", "binance-coinm", "okx", "deribit")

RESULT_NAMES = {
    -1: "error", 0: "applied", 1: "buffered", 2: "duplicate", 3: "gap", 4: "checksum",
    5: "unsynced", 6: "bad_number", 7: "snapshot", 8: "held", 10: "bbo", 11: "trade", 12: "control",
    13: "ignored", 14: "unknown_instrument", 15: "rest_snapshot", 16: "bad_number",
    17: "duplicate_copy",
}

ERROR_NAMES = ("ok", "json", "shape", "number", "unknown_message", "too_large", "no_memory")

#: why an update was dropped, by DropReason (engine.pxd)
DROP_REASONS = ("unsynced", "gap", "checksum", "bad_number", "stale_snapshot", "expired",
                "resync", "overflow", "no_memory", "shutdown")

#: stream channels by number (event.pxd Channel)
CHANNEL_NAMES = ("none", "depth", "depth_top", "bbo", "trades", "agg_trades")


def _format_int(int64_t v) -> bytes:
    """The record writers' integer text (tests compare it with ``str``)."""
    cdef char buf[32]
    return buf[:format_int(v, buf)]


def _format_ints_hi(list values) -> list:
    """The records' text of each value in turn, written as _head writes times and ids
    (the leading digits kept from one to the next; tests)."""
    cdef xcol_hi_cache c
    cdef char buf[32]
    memset(&c, 0, sizeof(c))
    return [buf[:format_int_hi(<int64_t>v, buf, &c)] for v in values]


def _format_num(int64_t v, int scale, int dec) -> bytes:
    """The record writers' text of ``v`` at ``scale`` with ``dec`` decimals (tests)."""
    cdef char buf[64]
    if not (0 <= scale <= 18 and 0 <= dec <= 24):
        raise ValueError("scale must be within 0..18 and dec within 0..24")
    return buf[:format_num(v, scale, dec, buf)]


# Record kinds, in the order of their openings in Engine.heads.
cdef enum:
    HK_BOOK = 0
    HK_SNAPSHOT = 1
    HK_TOP = 2
    HK_BBO = 3
    HK_TRADE = 4
    N_HEAD_KINDS = 5

_HEAD_KINDS = ("book", "snapshot", "top", "bbo", "trade")


# Record writers: each appends at ``o`` (room made beforehand) and returns the new end.
cdef inline char *w_lit(char *o, const char *s, size_t n) noexcept nogil:
    memcpy(o, s, n)
    return o + n


cdef inline char *w_text(char *o, const char *s, int n) noexcept nogil:
    """``n`` bytes of a text inside the decoder's padded frame buffer (16 at a time:
    both sides need 32 bytes of room)."""
    xcol_copy16(o, s, n)
    return o + n


cdef inline char *w_int(char *o, int64_t v) noexcept nogil:
    return o + format_int(v, o)


cdef inline char *w_num(char *o, int64_t v, int scale, int dec) noexcept nogil:
    return o + format_num(v, scale, dec, o)


cdef inline char *w_quote(char *o, const Level *lv, bint size, bint text) noexcept nogil:
    """A quote's price (or its size) as written: the exchange's text when ``text``
    (Event.bbo_text: plain, what w_num would write), else formatted from the mantissa."""
    if size:
        return w_text(o, lv.qtxt, lv.qlen) if text else w_num(o, lv.qty, lv.qdec, lv.qdec)
    return w_text(o, lv.ptxt, lv.plen) if text else w_num(o, lv.px, lv.pdec, lv.pdec)


@cython.final
cdef class Engine:
    """Decode frames of one market and keep its books exact.

    :param market: ``binance-spot``, ``binance-usdm``, ``binance-coinm``,
        ``okx`` or ``deribit``.
    :param max_frame: largest frame accepted, in bytes.
    """

    def __cinit__(self, str market, size_t max_frame=16 * 1024 * 1024):
        if market not in MARKETS:
            raise ValueError(f"unknown market {market!r}; expected one of {', '.join(MARKETS)}")
        self.market = market
        venue = market.split("-")[0]
        self.decoder = Decoder(venue, max_frame)
        self.venue = self.decoder.venue
        self.spot = market == "binance-spot"
        self.symbols = []
        self.grids = []
        self.books = []
        self.scales = NULL
        self.ninst = 0
        self.scale_cap = 0
        self.default_price_scale = 8
        self.default_qty_scale = 8
        self.book_ladder = 16384
        self.last_inst = -1
        self.last_result = 0
        self.ist = NULL
        self.ist_cap = 0
        self.sst = NULL
        self.out = NULL
        self.out_cap = 0
        self.out_len = 0
        self.heads = []
        self.publish = True
        self.lag_hists = [HdrHistogram(1, 60_000_000_000, 3) for _ in range(MAX_LINES)]
        self.code_ns = HdrHistogram(1, 60_000_000_000, 3)
        self.exch_us = HdrHistogram(1, 3_600_000_000, 3)
        self.decode_ns = HdrHistogram(1, 60_000_000_000, 3)
        self.book_ns = HdrHistogram(1, 60_000_000_000, 3)
        self.encode_ns = HdrHistogram(1, 60_000_000_000, 3)
        memset(self.lines, 0, sizeof(self.lines))
        memset(&self.held_ev, 0, sizeof(Event))

    def __dealloc__(self):
        free(self.scales)
        free(self.ist)
        free(self.sst)
        free(self.out)
        free(self.top_buf)

    # ------------------------------------------------------- control plane

    def add_instrument(self, str symbol, int price_scale=-1, int qty_scale=-1,
                       int64_t grid=0) -> int:
        """Register ``symbol`` (exchange spelling) with its scales; returns its id.

        A scale is the number of decimals prices (sizes) are kept at; -1 takes
        the engine default (8).  ``grid`` is the tick in units of the price scale
        (the book's ladder grid, see ``Book.grid``); 0 lets each book take the gcd
        of its snapshot prices.  Registering a known symbol returns its id.
        """
        cdef bytes b = symbol.encode()
        cdef int i = self.syms.find(b, len(b))
        if i >= 0:
            return i
        if price_scale < 0:
            price_scale = self.default_price_scale
        if qty_scale < 0:
            qty_scale = self.default_qty_scale
        if not (0 <= price_scale <= 18 and 0 <= qty_scale <= 18):
            raise ValueError(f"{symbol}: scales must be within 0..18")
        if self.ninst == self.scale_cap:
            cap = self.scale_cap * 2 if self.scale_cap else 16
            p = <int *>realloc(self.scales, cap * 2 * sizeof(int))
            if p == NULL:
                raise MemoryError()
            self.scales = p
            self.scale_cap = cap
        i = self.ninst
        self.scales[2 * i] = price_scale
        self.scales[2 * i + 1] = qty_scale
        if self.ninst >= self.ist_cap:
            cap = self.ist_cap * 2 if self.ist_cap else 16
            q = <InstState *>realloc(self.ist, cap * sizeof(InstState))
            if q == NULL:
                raise MemoryError()
            self.ist = q
            ss = <StreamStat *>realloc(self.sst, cap * N_CHANNELS * sizeof(StreamStat))
            if ss == NULL:
                raise MemoryError()
            self.sst = ss
            self.ist_cap = cap
        memset(&self.ist[i], 0, sizeof(InstState))
        memset(&self.sst[i * N_CHANNELS], 0, N_CHANNELS * sizeof(StreamStat))
        self.ist[i].bbo_seq = -1
        self.ist[i].trade_id = -1
        self.ist[i].hb_seq = -1
        self.ist[i].bbo_last[0] = -1    # no quote published yet (prices are never negative)
        for j in range(MAX_LINES):
            self.ist[i].line_seq[j] = -1
            self.ist[i].quote_seq[j] = -1
        self.syms.add(b, len(b), i)
        self.symbols.append(symbol)
        self.grids.append(grid if grid > 0 else 0)
        # every record's opening up to its sequence number, one per record kind
        for kind in _HEAD_KINDS:
            self.heads.append(('{"type":"%s","exchange":"%s","symbol":"%s","seq":'
                               % (kind, self.market, symbol)).encode())
        self.books.extend([None] * N_CHANNELS)
        self.ninst += 1
        return i

    def instrument_id(self, str symbol) -> int:
        """The id of ``symbol``, or -1 if it was never registered."""
        cdef bytes b = symbol.encode()
        return self.syms.find(b, len(b))

    @property
    def instruments(self) -> list:
        return list(self.symbols)

    def scales_of(self, int inst) -> tuple:
        """(price_scale, qty_scale) of instrument ``inst``."""
        if not 0 <= inst < self.ninst:
            raise IndexError(inst)
        return (self.scales[2 * inst], self.scales[2 * inst + 1])

    cdef Book _book(self, int inst, int channel):
        cdef int idx = inst * N_CHANNELS + channel
        cdef object b = self.books[idx]
        cdef int mode
        if b is not None:
            return <Book>b
        if channel == CH_BOOK:
            if self.venue == VENUE_BINANCE:
                mode = MODE_BINANCE_SPOT if self.spot else MODE_BINANCE_FUTURES
            elif self.venue == VENUE_OKX:
                mode = MODE_OKX
            else:
                mode = MODE_DERIBIT
        else:
            mode = MODE_SNAPSHOT
        b = Book(self.symbols[inst], mode, self.scales[2 * inst], self.scales[2 * inst + 1])
        (<Book>b).grid = self.grids[inst]
        if mode != MODE_SNAPSHOT:
            (<Book>b).ladder = self.book_ladder
        (<Book>b).reorder_ns = self.reorder_default
        self.books[idx] = b
        return <Book>b

    cdef int _inst_of(self, object inst_or_symbol) except -1:
        """An instrument id from an id or a symbol (KeyError: unknown symbol,
        IndexError: no such id)."""
        cdef int inst
        if isinstance(inst_or_symbol, str):
            inst = self.instrument_id(inst_or_symbol)
            if inst < 0:
                raise KeyError(inst_or_symbol)
        else:
            inst = inst_or_symbol
        if not 0 <= inst < self.ninst:
            raise IndexError(inst)
        return inst

    def book(self, inst_or_symbol, int channel=CH_BOOK):
        """The book of an instrument (id or symbol) on ``channel`` (created if needed)."""
        cdef int inst
        inst = self._inst_of(inst_or_symbol)
        return self._book(inst, channel)

    def books_list(self) -> list:
        """Every book created so far."""
        return [b for b in self.books if b is not None]

    # ------------------------------------------------------------ hot path

    cdef int feed_ptr(self, const char *data, size_t n) noexcept:
        cdef Decoder dec = self.decoder
        cdef int kind = dec.decode(data, n)
        cdef Event *ev = &dec.ev
        cdef int inst, idx, r, i
        cdef PyObject *bp
        cdef int64_t v
        if self.stage_timing:
            self.t_decoded = mono_ns()
            self.t_book = self.t_decoded
        self.messages += 1
        if kind < 0:
            self.errors[ev.err] += 1
            self.last_result = R_ERROR
            return R_ERROR
        if kind == EV_CONTROL:
            self.controls += 1
            self.last_result = R_CONTROL
            return R_CONTROL
        if kind == EV_IGNORED:
            self.ignored += 1
            self.last_result = R_IGNORED
            return R_IGNORED
        if kind == EV_REST_SNAPSHOT:
            self.rest_frames += 1
            self.last_result = R_REST_SNAPSHOT
            return R_REST_SNAPSHOT
        inst = self.syms.find(ev.sym, <size_t>ev.sym_len)
        self.last_inst = inst
        if inst < 0:
            self.unknown_instrument += 1
            self.last_result = R_UNKNOWN_INSTRUMENT
            return R_UNKNOWN_INSTRUMENT
        ev.inst = inst
        if kind == EV_TRADE:
            for i in range(ev.ntrades):
                if (to_scale(ev.trades[i].px, ev.trades[i].pdec, self.scales[2 * inst], &v)
                        != NUM_OK
                        or to_scale(ev.trades[i].qty, ev.trades[i].qdec,
                                    self.scales[2 * inst + 1], &v) != NUM_OK):
                    self.bad_numbers += 1
                    self.last_result = R_BAD_NUMBER
                    return R_BAD_NUMBER
            self.trades += ev.ntrades
            self.trade_frames += 1
            self.last_result = R_TRADE
            return R_TRADE
        if kind == EV_BBO:
            if (to_scale(ev.bids[0].px, ev.bids[0].pdec, self.scales[2 * inst], &self.bbo[0])
                    != NUM_OK
                    or to_scale(ev.bids[0].qty, ev.bids[0].qdec, self.scales[2 * inst + 1],
                                &self.bbo[1]) != NUM_OK
                    or to_scale(ev.asks[0].px, ev.asks[0].pdec, self.scales[2 * inst],
                                &self.bbo[2]) != NUM_OK
                    or to_scale(ev.asks[0].qty, ev.asks[0].qdec, self.scales[2 * inst + 1],
                                &self.bbo[3]) != NUM_OK):
                self.bad_numbers += 1
                self.last_result = R_BAD_NUMBER
                return R_BAD_NUMBER
            self.bbos += 1
            self.last_result = R_BBO
            return R_BBO
        idx = inst * N_CHANNELS + ev.channel
        bp = PyList_GET_ITEM(self.books, idx)
        if <object>bp is None:
            try:
                self._book(inst, ev.channel)
            except MemoryError:
                self.errors[6] += 1
                return R_ERROR
            bp = PyList_GET_ITEM(self.books, idx)
        (<Book>bp).now = self.now
        (<Book>bp).now_line = self.cur_line
        r = (<Book>bp).apply(ev)
        if self.stage_timing:
            self.t_book = mono_ns()
        self.results[r] += 1
        if r == AR_BAD_NUMBER:
            self.bad_numbers += 1
        self.book_events += 1
        self.last_result = r
        return r

    # ------------------------------------------------- arbitration + output

    cdef int _peek_dup(self, int line, const char *d, size_t n, int64_t rx) noexcept:
        """A later copy of a Binance depth update, recognised from the frame's header
        (event type, symbol, update ids) and its closing bytes without decoding its
        levels: counted like any duplicate and returned as R_DUPLICATE_COPY.  Returns 0
        when the frame must be decoded (not a depth update, unknown symbol, book not
        synced, or new)."""
        cdef const char *end = d + (n if n < 320 else 320)
        cdef const char *p
        cdef const char *q
        cdef int inst
        cdef int64_t first = 0, seq = 0, prev = -1, last, w
        cdef PyObject *bp
        cdef Book b
        cdef InstState *st
        cdef LineStat *L
        cdef StreamStat *ss
        # a whole frame ends its last level array and its object(s): "...]}" bare,
        # "...]}}" in the combined-stream wrapper; anything else is decoded (and refused)
        if n < 48 or d[n - 1] != b'}':
            return 0
        if d[2] == b's':
            if d[n - 2] != b'}' or d[n - 3] != b']':
                return 0
        elif d[n - 2] != b']':
            return 0
        p = _after(d, end, b'"e":"depthUpdate"', 17)
        p = _after(p, end, b'"s":"', 5)
        if p == NULL:
            return 0
        q = <const char *>memchr(p, b'"', <size_t>(end - p))
        if q == NULL:
            return 0
        inst = self.syms.find(p, <size_t>(q - p))
        if inst < 0:
            return 0
        if _uint(_after(q, end, b'"U":', 4), end, &first) == NULL:
            return 0
        if _uint(_after(q, end, b'"u":', 4), end, &seq) == NULL:
            return 0
        if _uint(_after(q, end, b'"pu":', 5), end, &prev) == NULL:
            prev = -1
        bp = PyList_GET_ITEM(self.books, inst * N_CHANNELS + CH_BOOK)
        if <object>bp is None:
            return 0
        b = <Book>bp
        if b.state != ST_SYNCED or seq > b.last_seq:
            return 0
        L = &self.lines[line]
        L.updates += 1
        ss = &self.sst[inst * N_CHANNELS + CH_BOOK]
        ss.received += 1
        st = &self.ist[inst]
        last = st.line_seq[line]
        if last >= 0 and seq > last:
            if (prev != last) if prev >= 0 else (first != last + 1):
                L.gaps += 1
        if seq > last:
            st.line_seq[line] = seq
        L.dups += 1
        self.messages += 1         # as the decoded path counts it
        ss.duplicates += 1
        self.early_duplicates += 1
        b.duplicates += 1
        self.results[<int>AR_DUPLICATE] += 1
        self.book_events += 1
        w = b.winner_rx(seq)
        if w >= 0:
            (<HdrHistogram>PyList_GET_ITEM(self.lag_hists, line)).record(rx - w)
        return R_DUPLICATE_COPY

    cdef int _peek_bbo(self, int line, const char *d, size_t n, int64_t rx) noexcept:
        """A later copy of a Binance bookTicker (combined-stream wrapper) recognised from
        its update id and symbol without reading its prices: counted like a decoded
        duplicate and returned as R_DUPLICATE_COPY.  Returns 0 when the frame must be
        decoded (not a bookTicker, unknown symbol, or newer than the last quote)."""
        cdef const char *end = d + n
        cdef const char *p
        cdef const char *q
        cdef int inst
        cdef int64_t u = 0
        cdef InstState *st
        cdef LineStat *L
        cdef StreamStat *ss
        # {"stream":"<sym>@bookTicker","data":{["e":"bookTicker",]"u":N,"s":"SYM",...}}:
        # the whole object, closed twice; fixed offsets and short compares, no search
        if n < 64 or n > 1024 or d[n - 1] != b'}' or d[n - 2] != b'}' \
                or memcmp(d, b'{"stream":"', 11) != 0:
            return 0
        # n >= 64 covers the wrapper up to d + 63; every later read checks what is left
        # (the frame is not padded)
        p = <const char *>memchr(d + 11, b'@', 32)
        if p == NULL or memcmp(p, b'@bookTicker","data":{', 21) != 0:
            return 0
        p += 21
        if end - p >= 17 and memcmp(p, b'"e":"bookTicker",', 17) == 0:
            p += 17
        if end - p < 4 or memcmp(p, b'"u":', 4) != 0:
            return 0
        p = _uint(p + 4, end, &u)
        if p == NULL or end - p < 6 or memcmp(p, b',"s":"', 6) != 0:
            return 0
        p += 6
        q = <const char *>memchr(p, b'"', <size_t>(end - p) if end - p < 32 else 32)
        if q == NULL:
            return 0
        inst = self.syms.find(p, <size_t>(q - p))
        if inst < 0:
            return 0
        st = &self.ist[inst]
        if u > st.bbo_seq:
            return 0
        L = &self.lines[line]
        L.updates += 1
        self.messages += 1         # as the decoded path counts it
        self.bbos += 1
        ss = &self.sst[inst * N_CHANNELS + CH_BBO]
        ss.received += 1
        L.dups += 1
        ss.duplicates += 1
        self.early_duplicates += 1
        if u == st.bbo_seq:
            (<HdrHistogram>PyList_GET_ITEM(self.lag_hists, line)).record(rx - st.bbo_rx)
        return R_DUPLICATE_COPY

    cdef int feed_line(self, int line, const char *data, size_t n, int64_t rx,
                       int64_t rx_wall) noexcept:
        """Process one frame received on ``line`` at ``rx`` (monotonic ns) /
        ``rx_wall`` (wall ns).  The first copy of every update is applied and
        written to the output; later copies are counted against their line."""
        cdef LineStat *L
        cdef int r, inst, k, units
        cdef bint same
        cdef bint old
        cdef int fresh
        cdef Event *ev = &self.decoder.ev
        cdef InstState *st
        cdef StreamStat *ss
        cdef Book b
        cdef int64_t w, last
        cdef PyObject *bp
        cdef char *o
        if line < 0 or line >= MAX_LINES:
            line = MAX_LINES - 1
        L = &self.lines[line]
        L.frames += 1
        L.last_rx = rx
        self.t_end = 0
        self.now = rx
        self.now_wall = rx_wall
        self.cur_line = line
        # Recognising a later copy from its header only pays when a second line
        # carries depth (USD-M's /market line, trades only, does not count).
        if self.venue == VENUE_BINANCE:
            if self.bbo_lines & (self.bbo_lines - 1):
                r = self._peek_bbo(line, data, n, rx)
                if r:
                    return r
            if self.depth_lines & (self.depth_lines - 1):
                r = self._peek_dup(line, data, n, rx)
                if r:
                    return r
        r = self.feed_ptr(data, n)
        if r < 0:
            L.errors += 1
            return r
        if r >= R_BBO:
            if r == R_BAD_NUMBER:
                # a BBO or trade frame with a number that does not fit: received, dropped
                L.updates += 1
                ss = &self.sst[ev.inst * N_CHANNELS + ev.channel]
                units = ev.ntrades if ev.kind == EV_TRADE else 1
                ss.received += units
                ss.dropped[<int>DR_BAD_NUMBER] += units
                return r
            if r == R_BBO or r == R_TRADE:
                inst = ev.inst
                st = &self.ist[inst]
                ss = &self.sst[inst * N_CHANNELS + ev.channel]
                units = 1 if r == R_BBO else ev.ntrades
                L.updates += 1
                ss.received += units
                if r == R_BBO:
                    self.bbo_lines |= 1u << line
                    # a quote older than the latest is superseded: never published
                    last = st.bbo_seq
                    same = False
                    if not ev.has_seq:
                        # Deribit quote: keyed by this line's position in its timestamp's
                        # quotes; one equal to the last published changes nothing (the
                        # copy of it that a line which missed a quote shifted)
                        ev.seq = _quote_key(st, line, ev.exch_ts)
                        same = memcmp(st.bbo_last, self.bbo, sizeof(self.bbo)) == 0
                    if self.venue == VENUE_OKX and st.bbo_ts > 0 and ev.exch_ts > 0:
                        # OKX may reset bbo-tbt's seqId: the exchange time decides, the
                        # sequence only within one millisecond
                        old = ev.exch_ts < st.bbo_ts or (ev.exch_ts == st.bbo_ts
                                                         and ev.seq <= last)
                    else:
                        old = ev.seq <= last
                    if old or same:
                        L.dups += 1
                        ss.duplicates += units
                        if ev.seq == last or same:
                            (<HdrHistogram>PyList_GET_ITEM(self.lag_hists, line)).record(
                                rx - st.bbo_rx)
                        return R_DUPLICATE_COPY
                    st.bbo_seq = ev.seq
                    st.bbo_rx = rx
                    st.bbo_ts = ev.exch_ts
                    if not ev.has_seq:
                        memcpy(st.bbo_last, self.bbo, sizeof(self.bbo))
                else:
                    # every trade is published once, also one that a slower line
                    # delivers after a later trade (a hole on the faster line); each
                    # trade of a frame on its own, since lines may batch the same trades
                    # differently (OKX and Deribit send several a frame)
                    last = st.trade_id
                    fresh = 0
                    for k in range(ev.ntrades):
                        ev.trades[k].dup = _trade_seen(st, ev.trades[k].id)
                        fresh += 1 - ev.trades[k].dup
                    if fresh == 0:
                        L.dups += 1
                        ss.duplicates += units
                        if ev.seq == last:
                            (<HdrHistogram>PyList_GET_ITEM(self.lag_hists, line)).record(
                                rx - st.trade_rx)
                        return R_DUPLICATE_COPY
                    ss.duplicates += units - fresh
                    units = fresh
                    if ev.seq == st.trade_id:
                        st.trade_rx = rx
                L.wins += 1
                if self.publish:
                    if r == R_BBO:
                        self._head(HK_BBO, inst, line, ev.seq, ev.exch_ts)
                        # four numbers as written (<= 48 bytes each) and the names
                        if self.out_len + 256 <= self.out_cap or self._ensure(256) == 0:
                            o = self.out + self.out_len
                            o = w_lit(o, b',"bid":"', 8)
                            o = w_quote(o, &ev.bids[0], False, ev.bbo_text)
                            o = w_lit(o, b'","bid_qty":"', 13)
                            o = w_quote(o, &ev.bids[0], True, ev.bbo_text)
                            o = w_lit(o, b'","ask":"', 9)
                            o = w_quote(o, &ev.asks[0], False, ev.bbo_text)
                            o = w_lit(o, b'","ask_qty":"', 13)
                            o = w_quote(o, &ev.asks[0], True, ev.bbo_text)
                            o = w_lit(o, b'"}\n', 3)
                            self.out_len = <size_t>(o - self.out)
                    else:
                        for k in range(ev.ntrades):
                            if ev.trades[k].dup:
                                continue
                            self._head(HK_TRADE, inst, line, ev.trades[k].id, ev.exch_ts)
                            if self.out_len + 192 > self.out_cap and self._ensure(192) < 0:
                                break
                            o = self.out + self.out_len
                            o = w_lit(o, b',"id":', 6)
                            o = w_int(o, ev.trades[k].id)
                            o = w_lit(o, b',"price":"', 10)
                            o = w_num(o, ev.trades[k].px, ev.trades[k].pdec, ev.trades[k].pdec)
                            o = w_lit(o, b'","qty":"', 9)
                            o = w_num(o, ev.trades[k].qty, ev.trades[k].qdec,
                                      ev.trades[k].qdec)
                            if ev.trades[k].side > 0:
                                o = w_lit(o, b'","side":"buy"}\n', 16)
                            elif ev.trades[k].side < 0:
                                o = w_lit(o, b'","side":"sell"}\n', 17)
                            else:
                                o = w_lit(o, b'","side":null}\n', 15)
                            self.out_len = <size_t>(o - self.out)
                    self._done(units, ev.exch_ts)
                ss.published += units
                return r
            return r
        # a book result: ev.inst and ev.channel routed it
        inst = ev.inst
        bp = PyList_GET_ITEM(self.books, inst * N_CHANNELS + ev.channel)
        b = <Book>bp
        ss = &self.sst[inst * N_CHANNELS + ev.channel]
        L.updates += 1
        ss.received += 1
        # this line's own continuity, before merging
        if ev.kind == EV_DEPTH and ev.has_seq:
            self.depth_lines |= 1u << line
            st = &self.ist[inst]
            last = st.line_seq[line]
            if last >= 0 and ev.seq > last:
                if (ev.prev_seq != last) if ev.has_prev else (ev.first_seq != last + 1):
                    L.gaps += 1
            if ev.seq > last:
                st.line_seq[line] = ev.seq
        if (r == AR_APPLIED and self.venue == VENUE_OKX and ev.has_prev
                and ev.prev_seq == ev.seq and ev.nbids == 0 and ev.nasks == 0):
            # OKX's empty heartbeat update chains on the book on every line: publish
            # the first copy only
            st = &self.ist[inst]
            if st.hb_seq == ev.seq:
                r = AR_DUPLICATE
            else:
                st.hb_seq = ev.seq
        if r == AR_APPLIED or r == AR_SNAPSHOT:
            L.wins += 1
            if self.publish:
                if r == AR_SNAPSHOT:
                    self._enc_snapshot(inst, line, b)
                    self._done(1, ev.exch_ts)
                else:
                    self._enc_book(ev, inst, line, b)
                    self._done(1 + self._enc_top(inst, line, b), ev.exch_ts)
            ss.published += 1
            if r == AR_APPLIED and b.npend:
                self._drain(b, inst, ss)
        elif r == AR_DUPLICATE:
            L.dups += 1
            ss.duplicates += 1
            w = b.winner_rx(ev.seq)
            if w >= 0:
                (<HdrHistogram>PyList_GET_ITEM(self.lag_hists, line)).record(rx - w)
        elif r == AR_HELD:
            # first copy, now in the book's buffer: published when the hole is filled,
            # else the book counts how it left (Engine.stream_counters)
            L.wins += 1
        elif r == AR_BUFFERED:
            pass                   # before the snapshot, in the book's buffer (likewise)
        elif r == AR_GAP:
            self.stream_gaps += 1
            # Binance's book keeps it for the next REST snapshot; the others drop it
            if b.mode != MODE_BINANCE_SPOT and b.mode != MODE_BINANCE_FUTURES:
                ss.dropped[<int>DR_GAP] += 1
        elif r == AR_CHECKSUM:
            self.stream_gaps += 1
            ss.dropped[<int>DR_CHECKSUM] += 1
        elif r == AR_BAD_NUMBER:
            ss.dropped[<int>DR_BAD_NUMBER] += 1
        else:
            ss.dropped[<int>DR_UNSYNCED] += 1
        return r

    cdef void _drain(self, Book b, int inst, StreamStat *ss) noexcept:
        """Publish held events that the last update made contiguous."""
        cdef int r
        cdef Event *hv = &self.held_ev
        cdef int line
        while b.npend:
            r = b.drain_next(hv, &line)
            if r == AR_APPLIED:
                if self.publish:
                    self._enc_book(hv, inst, line, b)
                    self._done(1 + self._enc_top(inst, line, b), hv.exch_ts)
                ss.published += 1
            elif r == AR_DUPLICATE:
                ss.duplicates += 1
            else:
                # AR_HELD / AR_GAP leave it held; AR_CHECKSUM took it out, applied wrong
                if r == AR_GAP or r == AR_CHECKSUM:
                    self.stream_gaps += 1
                if r == AR_CHECKSUM:
                    ss.dropped[<int>DR_CHECKSUM] += 1
                break

    def poll(self, int64_t now) -> int:
        """Control-plane tick: holes older than the reorder window become gaps
        (and resync requests); returns how many books lost sync."""
        cdef int lost = 0
        cdef object o
        for o in self.books:
            if o is not None and (<Book>o).npend and (<Book>o).expire(now):
                lost += 1
                self.stream_gaps += 1
        return lost

    cdef int _ensure(self, size_t extra) noexcept:
        cdef size_t cap
        cdef char *p
        if self.out_len + extra <= self.out_cap:
            return 0
        cap = self.out_cap * 2 if self.out_cap else 65536
        while cap < self.out_len + extra:
            cap *= 2
        p = <char *>realloc(self.out, cap)
        if p == NULL:
            return -1
        self.out = p
        self.out_cap = cap
        return 0

    cdef void _put(self, const char *s, size_t n) noexcept:
        if self._ensure(n) == 0:
            memcpy(self.out + self.out_len, s, n)
            self.out_len += n

    cdef void _put_int(self, int64_t v) noexcept:
        if self.out_len + 24 <= self.out_cap or self._ensure(24) == 0:
            self.out_len += <size_t>format_int(v, self.out + self.out_len)

    cdef void _put_num(self, int64_t v, int scale, int dec) noexcept:
        if self._ensure(48) == 0:
            self.out_len += <size_t>format_num(v, scale, dec, self.out + self.out_len)

    cdef void _head(self, int kind, int inst, int line, int64_t seq,
                    int64_t exch_ts) noexcept:
        """A record's opening (see _HEAD_KINDS), its sequence number and times."""
        cdef object h = <object>PyList_GET_ITEM(self.heads, inst * N_HEAD_KINDS + kind)
        cdef size_t hn = <size_t>PyBytes_GET_SIZE(h)
        cdef char *o
        if self.out_len + hn + 128 > self.out_cap and self._ensure(hn + 128) < 0:
            return
        o = self.out + self.out_len
        o = w_lit(o, PyBytes_AS_STRING(h), hn)
        o += format_int_hi(seq, o, &self.hc_seq)
        o = w_lit(o, b',"ts_exchange":', 15)
        o += format_int_hi(exch_ts, o, &self.hc_ts)
        o = w_lit(o, b',"ts_recv":', 11)
        o += format_int_hi(self.now_wall, o, &self.hc_wall)
        o = w_lit(o, b',"line":', 8)
        o = w_int(o, line)
        self.out_len = <size_t>(o - self.out)

    cdef void _levels(self, Event *ev, int inst, bint bids) noexcept:
        cdef Level *lv = ev.bids if bids else ev.asks
        cdef int n = ev.nbids if bids else ev.nasks
        cdef int i
        cdef int ps = self.scales[2 * inst]
        cdef int qs = self.scales[2 * inst + 1]
        cdef size_t need
        cdef char *o
        self._put(b'[', 1)
        for i in range(n):
            if lv[i].ptxt != NULL and lv[i].qtxt != NULL:
                # The exchange's own text, copied 16 bytes at a time: it lies in the
                # decoder's frame buffer, whose padding allows reading past it, and
                # the output is made room for (the texts plus 32 bytes of slack).
                need = <size_t>lv[i].plen + lv[i].qlen + 40
                if self.out_len + need > self.out_cap and self._ensure(need) < 0:
                    return
                o = self.out + self.out_len
                if i:
                    o[0] = b','
                    o += 1
                if lv[i].qtxt == lv[i].ptxt + lv[i].plen + 3 and lv[i].ptxt[-2] == b'[':
                    # the texts sit in the frame as ``["px","qty"`` (the quotes around
                    # each are the tokens', the comma JSON's): that span, in one copy
                    o = w_text(o, lv[i].ptxt - 2, lv[i].plen + lv[i].qlen + 6)
                    o[0] = b']'
                    o += 1
                else:
                    o = w_lit(o, b'["', 2)
                    o = w_text(o, lv[i].ptxt, lv[i].plen)
                    o = w_lit(o, b'","', 3)
                    o = w_text(o, lv[i].qtxt, lv[i].qlen)
                    o = w_lit(o, b'"]', 2)
                self.out_len = <size_t>(o - self.out)
                continue
            if i:
                self._put(b',["', 3)
            else:
                self._put(b'["', 2)
            # at the book's scale, or as written when the book applied them so
            self._put_num(lv[i].px, lv[i].pdec if ev.lv_raw else ps, lv[i].pdec)
            self._put(b'","', 3)
            self._put_num(lv[i].qty, lv[i].qdec if ev.lv_raw else qs, lv[i].qdec)
            self._put(b'"]', 2)
        self._put(b']', 1)

    cdef void _enc_book(self, Event *ev, int inst, int line, Book b) noexcept:
        self._head(HK_BOOK, inst, line, ev.seq, ev.exch_ts)
        if ev.has_prev:
            self._put(b',"prev_seq":', 12)
            self._put_int(ev.prev_seq)
        self._put(b',"bids":', 8)
        self._levels(ev, inst, True)
        self._put(b',"asks":', 8)
        self._levels(ev, inst, False)
        self._put(b'}\n', 2)

    cdef void _enc_snapshot(self, int inst, int line, Book b) noexcept:
        cdef Event tmp
        cdef int nb = b.depth(True)
        cdef int na = b.depth(False)
        cdef Level *lv = <Level *>malloc(<size_t>(nb + na + 1) * sizeof(Level))
        if lv == NULL:
            return
        memset(&tmp, 0, sizeof(Event))
        tmp.bids = lv
        tmp.asks = lv + nb
        tmp.nbids = b.export_levels(True, lv, nb)
        tmp.nasks = b.export_levels(False, lv + nb, na)
        self._head(HK_SNAPSHOT, inst, line, b.last_seq, b.exch_ts)
        self._put(b',"bids":', 8)
        self._levels(&tmp, inst, True)
        self._put(b',"asks":', 8)
        self._levels(&tmp, inst, False)
        self._put(b'}\n', 2)
        free(lv)

    cdef int _enc_top(self, int inst, int line, Book b) noexcept:
        """A "top" record (the best ``top_n`` levels a side) after a book update, at most
        one per book per ``top_interval_ns``; returns the records written (0 or 1)."""
        cdef Event tmp
        cdef InstState *st
        if self.top_n <= 0:
            return 0
        st = &self.ist[inst]
        if self.top_interval_ns > 0 and self.now - st.last_top < self.top_interval_ns:
            return 0
        st.last_top = self.now
        memset(&tmp, 0, sizeof(Event))
        tmp.bids = self.top_buf
        tmp.asks = self.top_buf + self.top_n
        tmp.nbids = b.export_levels(True, tmp.bids, self.top_n)
        tmp.nasks = b.export_levels(False, tmp.asks, self.top_n)
        self._head(HK_TOP, inst, line, b.last_seq, b.exch_ts)
        self._put(b',"bids":', 8)
        self._levels(&tmp, inst, True)
        self._put(b',"asks":', 8)
        self._levels(&tmp, inst, False)
        self._put(b'}\n', 2)
        return 1

    def set_top(self, int n, int64_t interval_ns=0) -> None:
        """Publish a ``top`` record with the best ``n`` levels a side after book updates,
        at most one per book per ``interval_ns`` (0: after every update); ``n=0`` turns
        them off."""
        cdef Level *buf = NULL
        if n < 0 or n > 1000:
            raise ValueError(f"top levels must be in [0, 1000], got {n}")
        if interval_ns < 0:
            raise ValueError(f"top interval must be >= 0, got {interval_ns}")
        if n:
            buf = <Level *>malloc(<size_t>(2 * n) * sizeof(Level))
            if buf == NULL:
                raise MemoryError()
        free(self.top_buf)
        self.top_buf = buf
        self.top_n = n
        self.top_interval_ns = interval_ns

    cdef void _done(self, int n, int64_t exch_ts) noexcept:
        """``n`` records of one update are complete: count them and time them."""
        cdef int64_t t = mono_ns()
        self.t_end = t
        self.out_records += n
        self.code_ns.record(t - self.now)
        if self.stage_timing and self.t_decoded >= self.now:
            self.decode_ns.record(self.t_decoded - self.now)
            self.book_ns.record(self.t_book - self.t_decoded)
            self.encode_ns.record(t - self.t_book)
        if exch_ts > 0:
            self.exch_us.record(self.now_wall // 1000 - exch_ts * 1000)

    def take_output(self) -> tuple:
        """(bytes of newline-delimited JSON records, record count) written
        since the last call, or (None, 0); one bytes object per call."""
        cdef int64_t n = self.out_records
        if self.out_len == 0:
            return (None, 0)
        data = PyBytes_FromStringAndSize(self.out, <Py_ssize_t>self.out_len)
        self.out_len = 0
        self.out_records = 0
        return (data, n)

    def feed_on(self, int line, data: bytes, int64_t rx=0, int64_t rx_wall=0) -> int:
        """Python entry to :meth:`feed_line` (tests, tools): ``rx`` 0 reads the clocks."""
        if rx == 0:
            rx = mono_ns()
        if rx_wall == 0:
            rx_wall = wall_ns()
        return self.feed_line(line, <const char *>data, len(data), rx, rx_wall)

    def line_stats(self, int line) -> dict:
        """Counters and lag percentiles (us) of one line."""
        cdef LineStat *L
        if not 0 <= line < MAX_LINES:
            raise IndexError(line)
        L = &self.lines[line]
        h = <HdrHistogram>self.lag_hists[line]
        return {
            "frames": L.frames, "updates": L.updates, "wins": L.wins, "duplicates": L.dups,
            "errors": L.errors, "gaps": L.gaps, "last_rx": L.last_rx,
            # (a double: cdivision would make wins / total an integer division, 0 for
            # every line that lost even one update)
            "win_rate": (<double>L.wins / (L.wins + L.dups)) if (L.wins + L.dups) else 0.0,
        }

    def lag_histogram(self, int line) -> HdrHistogram:
        """Lag behind the winning line (ns) of this line's later copies."""
        return self.lag_hists[line]

    def set_reorder_window(self, int64_t ns) -> None:
        """Hold a skip-ahead depth event this long for another line to fill the hole."""
        cdef object o
        self.reorder_default = ns
        for o in self.books:
            if o is not None:
                (<Book>o).reorder_ns = ns

    def stream_counters(self, inst_or_symbol, int channel=CH_BOOK) -> dict:
        """What became of every update of one stream (an instrument, by id or symbol, on
        ``channel``; see ``CHANNEL_NAMES``) that reached the arbiter.

        ``received == published + duplicates + dropped + pending`` at any moment:
        ``pending`` are the updates the stream's book holds (ahead of a hole, or waiting
        for a snapshot).  ``dropped_by_reason`` names the non-zero reasons
        (``DROP_REASONS``).  A REST snapshot counts as one update received (and
        published as a ``snapshot`` record); updates buffered before it and replayed into
        it count as published too (``in_snapshot`` of them), without a record of their own.
        ``last_seq`` is the exchange sequence (trade id) of the last one applied or
        published, or None.
        """
        cdef int inst
        cdef StreamStat *ss
        cdef int64_t dropped[10]
        cdef int64_t published, duplicates, pending = 0, folded = 0, last = -1
        cdef int i
        cdef object o
        cdef Book b
        inst = self._inst_of(inst_or_symbol)
        if not 0 <= channel < N_CHANNELS:
            raise ValueError(f"unknown channel {channel}")
        ss = &self.sst[inst * N_CHANNELS + channel]
        memcpy(dropped, ss.dropped, sizeof(dropped))
        published = ss.published
        duplicates = ss.duplicates
        o = self.books[inst * N_CHANNELS + channel]
        if o is not None:
            # how the book's held/buffered events left its buffer, other than drained
            b = <Book>o
            folded = b.pending_folded
            published += folded
            duplicates += b.pending_dups
            dropped[<int>DR_EXPIRED] += b.pending_expired
            dropped[<int>DR_RESYNC] += b.pending_discarded
            dropped[<int>DR_OVERFLOW] += b.pending_dropped
            dropped[<int>DR_NO_MEMORY] += b.pending_failed
            dropped[<int>DR_SHUTDOWN] += b.pending_closed
            pending = b.npend
            last = b.last_seq
        elif channel == CH_BBO:
            last = self.ist[inst].bbo_seq
        elif channel == CH_TRADES or channel == CH_AGG_TRADES:
            last = self.ist[inst].trade_id
        total = 0
        for i in range(N_DROP):
            total += dropped[i]
        return {"received": ss.received, "published": published, "in_snapshot": folded,
                "duplicates": duplicates, "dropped": total, "pending": pending,
                "dropped_by_reason": {DROP_REASONS[i]: dropped[i] for i in range(N_DROP)
                                      if dropped[i]},
                "last_seq": last if last >= 0 else None}

    def streams(self) -> list:
        """``(symbol, channel name, stream_counters)`` of every stream that received an
        update or has a book."""
        cdef int inst, ch
        out = []
        for inst in range(self.ninst):
            for ch in range(1, N_CHANNELS):
                if (self.sst[inst * N_CHANNELS + ch].received
                        or self.books[inst * N_CHANNELS + ch] is not None):
                    out.append((self.symbols[inst], CHANNEL_NAMES[ch],
                                self.stream_counters(inst, ch)))
        return out

    def arbiter_counters(self) -> dict:
        """Totals of :meth:`stream_counters` over every stream, plus ``stream_gaps``
        (holes no line filled) and ``early_duplicates``."""
        cdef int inst, ch
        out = {"received": 0, "published": 0, "in_snapshot": 0, "duplicates": 0,
               "dropped": 0, "pending": 0}
        reasons = {}
        for inst in range(self.ninst):
            for ch in range(N_CHANNELS):
                c = self.stream_counters(inst, ch)
                for k in out:
                    out[k] += c[k]
                for k, v in c["dropped_by_reason"].items():
                    reasons[k] = reasons.get(k, 0) + v
        out["dropped_by_reason"] = reasons
        out["stream_gaps"] = self.stream_gaps
        out["early_duplicates"] = self.early_duplicates
        return out

    @property
    def received(self) -> int:
        """Updates received, all streams (see :meth:`arbiter_counters`)."""
        cdef int i
        cdef int64_t t = 0
        for i in range(self.ninst * N_CHANNELS):
            t += self.sst[i].received
        return t

    @property
    def published(self) -> int:
        return self.arbiter_counters()["published"]

    @property
    def duplicates(self) -> int:
        return self.arbiter_counters()["duplicates"]

    def discard_pending(self) -> int:
        """Drop every update the books still hold (counted as dropped, reason
        ``shutdown``): the collector calls it when it stops, after the last frame, so
        that ``pending`` ends at 0.  Returns how many were dropped."""
        cdef int n = 0
        cdef object o
        for o in self.books:
            if o is not None:
                n += (<Book>o).close_pending()
        return n

    # ------------------------------------------------------------ Python API

    def feed(self, data: bytes) -> int:
        """Process one frame; returns a result code (see ``RESULT_NAMES``)."""
        return self.feed_ptr(<const char *>data, len(data))

    def feed_snapshot(self, inst_or_symbol, data: bytes) -> int:
        """Load a REST depth snapshot body into an instrument's book.

        Events buffered before it are replayed by the venue's rules.  Returns
        a result code: 7 (snapshot), 3 (gap: the snapshot is older than every
        buffered event), 2 (the book is already past it) or -1 (bad body).
        """
        cdef Book b = self.book(inst_or_symbol, CH_BOOK)
        cdef Decoder dec = self.decoder
        cdef int kind = dec.decode(<const char *>data, len(data))
        cdef int inst = self.syms.find(b._symb, len(b._symb))
        cdef StreamStat *ss = &self.sst[inst * N_CHANNELS + CH_BOOK]
        self.messages += 1
        if kind < 0:
            self.errors[dec.ev.err] += 1
            return R_ERROR
        if kind != EV_REST_SNAPSHOT:
            self.errors[2] += 1
            return R_ERROR
        b.now = mono_ns()
        r = b.apply_rest_snapshot(&dec.ev)
        self.results[r] += 1
        # the snapshot is one update of the depth stream (the events it replays are the
        # book's to count: Engine.stream_counters)
        ss.received += 1
        if r == AR_SNAPSHOT:
            ss.published += 1
            if self.publish:
                self.now = b.now
                self.now_wall = wall_ns()
                self._enc_snapshot(inst, -1, b)
                self._done(1, b.exch_ts)
        elif r == AR_DUPLICATE:
            ss.duplicates += 1
        elif r == AR_GAP:
            ss.dropped[<int>DR_STALE_SNAPSHOT] += 1
        elif r == AR_BAD_NUMBER:
            self.bad_numbers += 1
            ss.dropped[<int>DR_BAD_NUMBER] += 1
        else:
            ss.dropped[<int>DR_UNSYNCED] += 1
        return r

    def last_error(self) -> str | None:
        """What the last failed frame got wrong (None if it decoded)."""
        return self.decoder.error()

    @property
    def last_symbol(self) -> str | None:
        """Symbol of the last routed frame, or None."""
        cdef Event *ev = &self.decoder.ev
        if ev.sym_len <= 0:
            return None
        return ev.sym[:ev.sym_len].decode("utf-8", "replace")

    @property
    def last_inst(self) -> int:
        return self.last_inst

    @property
    def last_kind(self) -> int:
        return self.decoder.ev.kind

    @property
    def last_seq(self) -> int:
        return self.decoder.ev.seq

    def last_bbo(self) -> tuple:
        """The last BBO frame: (seq, bid, bid_qty, ask, ask_qty) at instrument scale."""
        return (self.decoder.ev.seq, self.bbo[0], self.bbo[1], self.bbo[2], self.bbo[3])

    def last_event(self) -> dict:
        return self.decoder.event()

    def counters(self) -> dict:
        """Every engine counter, by name."""
        cdef int i
        out = {
            "messages": self.messages, "book_events": self.book_events, "bbo": self.bbos,
            "trades": self.trades, "trade_frames": self.trade_frames,
            "rest_frames": self.rest_frames, "control": self.controls, "ignored": self.ignored,
            "unknown_instrument": self.unknown_instrument, "bad_numbers": self.bad_numbers,
        }
        out["errors"] = {ERROR_NAMES[i]: self.errors[i] for i in range(1, N_DECODE_ERRORS)}
        out["book"] = {RESULT_NAMES[i]: self.results[i] for i in range(9)}
        return out

    @property
    def errors_total(self) -> int:
        cdef int i
        cdef int64_t t = 0
        for i in range(1, N_DECODE_ERRORS):
            t += self.errors[i]
        return t

    def pending_resyncs(self) -> list:
        """Books that lost sync and wait for the runtime to resync them."""
        return [b for b in self.books if b is not None and b.resync_requested]

    # ------------------------------------------------------- bench hooks

    def run(self, list frames) -> int:
        """Feed every frame (bytes) from C; returns how many were applied."""
        cdef int applied = 0
        cdef object f
        for f in frames:
            if self.feed_ptr(<const char *><bytes>f, len(<bytes>f)) == 0:
                applied += 1
        return applied

    def time_frames(self, list frames, int64_t[:] out, bint decode_only=False,
                    bint received=False) -> int:
        """Feed (or only decode) frames, writing each one's monotonic ns to ``out``.

        With ``received``, each frame is first copied, outside the timed span, into a
        receive buffer and fed from there: in the cache, as a socket read leaves a
        frame live, rather than wherever it lies among all the frames (benchmarks)."""
        cdef Py_ssize_t i, n = len(frames)
        cdef int64_t t0, t1
        cdef bytes f
        cdef Decoder dec = self.decoder
        cdef char *rx = NULL
        cdef size_t rx_cap = 0
        cdef size_t fn
        cdef const char *src
        if out.shape[0] < n:
            raise ValueError("out is shorter than frames")
        try:
            for i in range(n):
                f = <bytes>PyList_GET_ITEM(frames, i)
                src = <const char *>f
                fn = <size_t>PyBytes_GET_SIZE(f)
                if received:
                    if fn > rx_cap:
                        free(rx)
                        rx_cap = fn * 2 + 4096
                        rx = <char *>malloc(rx_cap)
                        if rx == NULL:
                            raise MemoryError()
                    memcpy(rx, src, fn)
                    src = rx
                t0 = mono_ns()
                if decode_only:
                    dec.decode(src, fn)
                else:
                    self.feed_ptr(src, fn)
                t1 = mono_ns()
                out[i] = t1 - t0
        finally:
            free(rx)
        return n

    def time_lines(self, list frames, list lines, int64_t[:] out) -> int:
        """Feed each frame on its line as a listener does (arbitration, books, records
        encoded; the receive clocks read per frame), writing each one's monotonic ns to
        ``out``.  The records are discarded whenever they pass 1 MB (benchmarks)."""
        cdef Py_ssize_t i, n = len(frames)
        cdef int64_t t0, t1
        cdef int64_t wall_off = wall_ns() - mono_ns()
        cdef bytes f
        if out.shape[0] < n or len(lines) < n:
            raise ValueError("out or lines is shorter than frames")
        cdef int ln
        for i in range(n):
            f = <bytes>PyList_GET_ITEM(frames, i)
            ln = <object>PyList_GET_ITEM(lines, i)
            t0 = mono_ns()
            self.feed_line(ln, <const char *>f, len(f), t0, t0 + wall_off)
            t1 = mono_ns()
            out[i] = t1 - t0
            if self.out_len > 1 << 20:
                self.out_len = 0
                self.out_records = 0
        return n
