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
from libc.stdlib cimport realloc, free
from posix.time cimport clock_gettime, timespec, CLOCK_MONOTONIC

from xcol._fast.decode cimport (
    Decoder, VENUE_BINANCE, VENUE_OKX, VENUE_DERIBIT, N_DECODE_ERRORS,
)
from xcol._fast.event cimport (
    Event, EV_DEPTH, EV_SNAPSHOT, EV_BBO, EV_TRADE, EV_REST_SNAPSHOT, EV_CONTROL,
    EV_IGNORED, CH_BOOK, CH_BOOK_TOP, CH_BBO, N_CHANNELS,
)
from xcol._fast.book cimport (
    Book, MODE_BINANCE_SPOT, MODE_BINANCE_FUTURES, MODE_OKX, MODE_DERIBIT, MODE_SNAPSHOT,
    AR_BAD_NUMBER,
)
from xcol._fast.num cimport to_scale, NUM_OK

MARKETS = ("binance-spot", "binance-usdm", "binance-coinm", "okx", "deribit")

RESULT_NAMES = {
    -1: "error", 0: "applied", 1: "buffered", 2: "duplicate", 3: "gap", 4: "checksum",
    5: "unsynced", 6: "bad_number", 7: "snapshot", 10: "bbo", 11: "trade", 12: "control",
    13: "ignored", 14: "unknown_instrument", 15: "rest_snapshot", 16: "bad_number",
}

ERROR_NAMES = ("ok", "json", "shape", "number", "unknown_message", "too_large", "no_memory")


cdef inline int64_t _now_ns() noexcept nogil:
    cdef timespec ts
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return <int64_t>ts.tv_sec * 1000000000 + ts.tv_nsec


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
        self.books = []
        self.scales = NULL
        self.ninst = 0
        self.scale_cap = 0
        self.default_price_scale = 8
        self.default_qty_scale = 8
        self.last_inst = -1
        self.last_result = 0

    def __dealloc__(self):
        free(self.scales)

    # ------------------------------------------------------- control plane

    def add_instrument(self, str symbol, int price_scale=-1, int qty_scale=-1) -> int:
        """Register ``symbol`` (exchange spelling) with its scales; returns its id.

        A scale is the number of decimals prices (sizes) are kept at; -1 takes
        the engine default (8).  Registering a known symbol returns its id.
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
        self.syms.add(b, len(b), i)
        self.symbols.append(symbol)
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
        self.books[idx] = b
        return <Book>b

    def book(self, inst_or_symbol, int channel=CH_BOOK):
        """The book of an instrument (id or symbol) on ``channel`` (created if needed)."""
        cdef int inst
        if isinstance(inst_or_symbol, str):
            inst = self.instrument_id(inst_or_symbol)
            if inst < 0:
                raise KeyError(inst_or_symbol)
        else:
            inst = inst_or_symbol
        if not 0 <= inst < self.ninst:
            raise IndexError(inst)
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
        r = (<Book>bp).apply(ev)
        self.results[r] += 1
        if r == AR_BAD_NUMBER:
            self.bad_numbers += 1
        self.book_events += 1
        self.last_result = r
        return r

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
        self.messages += 1
        if kind < 0:
            self.errors[dec.ev.err] += 1
            return R_ERROR
        if kind != EV_REST_SNAPSHOT:
            self.errors[2] += 1
            return R_ERROR
        r = b.apply_rest_snapshot(&dec.ev)
        self.results[r] += 1
        if r == AR_BAD_NUMBER:
            self.bad_numbers += 1
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
        out["book"] = {RESULT_NAMES[i]: self.results[i] for i in range(8)}
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

    def time_frames(self, list frames, int64_t[:] out, bint decode_only=False) -> int:
        """Feed (or only decode) frames, writing each one's monotonic ns to ``out``."""
        cdef Py_ssize_t i, n = len(frames)
        cdef int64_t t0, t1
        cdef bytes f
        cdef Decoder dec = self.decoder
        if out.shape[0] < n:
            raise ValueError("out is shorter than frames")
        for i in range(n):
            f = <bytes>PyList_GET_ITEM(frames, i)
            t0 = _now_ns()
            if decode_only:
                dec.decode(<const char *>f, len(f))
            else:
                self.feed_ptr(<const char *>f, len(f))
            t1 = _now_ns()
            out[i] = t1 - t0
        return n
