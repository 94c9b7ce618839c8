# distutils: language=c++
# Per-exchange frame decoders over simdjson On-Demand.

from libc.stdint cimport int64_t, int8_t, uint8_t

from xcol._fast.event cimport Event, Level, Trade
from xcol._fast.includes.simdjson cimport Parser, Document, Value

cdef extern from "levels.h" nogil:
    ctypedef struct xcol_shape:     # a level shape the byte loop read
        int len
        int qoff
        int8_t pdec
        int8_t qdec
        uint8_t plen
        uint8_t qlen

cdef enum DecodeErr:
    DE_OK = 0
    DE_JSON = 1          # not valid JSON (simdjson's error code in err_detail)
    DE_SHAPE = 2         # a field is missing or of the wrong type
    DE_NUMBER = 3        # a price/size/id is not a valid number (NumErr in err_detail)
    DE_UNKNOWN = 4       # valid JSON, but no message xcol knows
    DE_TOO_LARGE = 5     # frame above the configured maximum size
    DE_NO_MEMORY = 6
    N_DECODE_ERRORS = 7

cdef enum:
    SHAPE_SLOTS = 8      # level shapes a decoder keeps (levels.h)

cdef enum Venue:
    VENUE_BINANCE = 0
    VENUE_OKX = 1
    VENUE_DERIBIT = 2

cdef class Decoder:
    cdef Parser parser
    cdef Document doc
    cdef char *buf              # padded copy of the frame being decoded
    cdef size_t cap
    cdef readonly size_t max_frame
    cdef readonly int venue     # Venue
    cdef Event ev
    cdef Level *bid_buf
    cdef Level *ask_buf
    cdef Trade *trade_buf
    cdef int bid_cap
    cdef int ask_cap
    cdef int trade_cap
    cdef public bint fast          # try the compact-layout scanner first (Binance, OKX books)
    cdef readonly long long fast_frames
    cdef readonly long long literal_frames   # of those, read by _bn_depth or _bn_bbo
    cdef public bint shapes     # read levels of a known shape by comparison (levels.h)
    cdef readonly long long shape_levels   # levels read that way
    cdef xcol_shape shape[SHAPE_SLOTS]  # level shapes the byte loop read, the usual one first
    cdef int nshapes            # slots of shape[] in use

    cdef int decode(self, const char *data, size_t n) noexcept
    cdef void _reset_event(self) noexcept
    cdef int _fail(self, int err, int detail, const char *what) noexcept
    cdef int _grow(self, int which) noexcept
    cdef const char *_scan_levels(self, const char *p, bint is_bid) noexcept
    cdef int _levels(self, Value &v, bint is_bid, bint with_action) noexcept
    cdef int _binance(self) noexcept
    cdef void _bn_init(self) noexcept
    cdef int _binance_finish(self) noexcept
    cdef int _bn_literal(self, size_t n) noexcept
    cdef bint _bn_closed(self, const char *p, bint wrapped, size_t n) noexcept
    cdef const char *_bn_symbol(self, const char *p) noexcept
    cdef int _bn_depth(self, size_t n, const char *p, bint wrapped) noexcept
    cdef const char *_bn_quote_num(self, const char *p, const char *lit, int64_t *mant,
                                   int8_t *dec, const char **txt, uint8_t *tlen) noexcept
    cdef int _bn_bbo(self, size_t n, const char *p, bint wrapped) noexcept
    cdef int _bn_fast(self, size_t n) noexcept
    cdef int _okx_fast(self, size_t n) noexcept
    cdef const char *_okx_fast_item(self, const char *p) noexcept
    cdef const char *_bn_fast_obj(self, const char *p, bint top) noexcept
    cdef const char *_bn_fast_field(self, const char *k, size_t kn, const char *p) noexcept
    cdef int _binance_field(self, const char *k, size_t kn, Value &v) noexcept
    cdef int _okx(self) noexcept
    cdef int _okx_bbo(self) noexcept
    cdef int _okx_item(self, Value &v) noexcept
    cdef int _deribit(self) noexcept
    cdef int _deribit_params(self, Value &v) noexcept
    cdef int _deribit_book(self, Value &v, bint grouped) noexcept
    cdef int _deribit_trades(self, Value &v) noexcept
    cdef int _deribit_quote(self, Value &v) noexcept
    cdef int _quote_num(self, Value &v, int64_t *m, int8_t *d, const char *what) noexcept
