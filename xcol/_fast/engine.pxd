# distutils: language=c++
# The per-venue pipeline: frame -> decoder -> instrument -> book.

from libc.stdint cimport int64_t

from xcol._fast.decode cimport Decoder, N_DECODE_ERRORS
from xcol._fast.event cimport Event, N_CHANNELS
from xcol._fast.book cimport Book
from xcol._fast.includes.symtab cimport SymTab

cdef enum FeedResult:
    R_ERROR = -1
    # 0..7 are the book's ApplyResult values
    R_BBO = 10
    R_TRADE = 11
    R_CONTROL = 12
    R_IGNORED = 13
    R_UNKNOWN_INSTRUMENT = 14
    R_REST_SNAPSHOT = 15        # a REST body fed as a frame: use feed_snapshot()
    R_BAD_NUMBER = 16           # a BBO/trade number that does not fit the scale

cdef class Engine:
    cdef readonly str market
    cdef readonly Decoder decoder
    cdef int venue
    cdef int spot
    cdef SymTab syms
    cdef list symbols            # list[str], by instrument id
    cdef int *scales             # 2 per instrument: price, qty
    cdef int ninst
    cdef int scale_cap
    cdef list books              # list[Book | None], inst * N_CHANNELS + channel
    cdef public int default_price_scale
    cdef public int default_qty_scale
    cdef int last_inst
    cdef int last_result
    cdef int64_t bbo[4]          # last BBO (bid, bid qty, ask, ask qty) at scale
    # counters
    cdef readonly int64_t messages
    cdef int64_t errors[N_DECODE_ERRORS]
    cdef readonly int64_t book_events
    cdef readonly int64_t bbos
    cdef readonly int64_t trades
    cdef readonly int64_t trade_frames
    cdef readonly int64_t rest_frames
    cdef readonly int64_t controls
    cdef readonly int64_t ignored
    cdef readonly int64_t unknown_instrument
    cdef readonly int64_t bad_numbers
    cdef int64_t results[8]

    cdef int feed_ptr(self, const char *data, size_t n) noexcept
    cdef Book _book(self, int inst, int channel)
