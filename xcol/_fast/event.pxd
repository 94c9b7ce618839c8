# The decoded event: one reusable C struct that a decoder fills per frame and
# a book consumes.  Nothing in it is a Python object.

from libc.stdint cimport int64_t, int32_t, int8_t, uint8_t, uint32_t

cdef enum EventKind:
    EV_NONE = 0
    EV_DEPTH = 1         # incremental book update
    EV_SNAPSHOT = 2      # full book in the stream (OKX snapshot/books5/bbo-tbt, Deribit)
    EV_BBO = 3           # best bid/offer (Binance bookTicker, Deribit quote)
    EV_TRADE = 4         # one or more trades
    EV_REST_SNAPSHOT = 5 # REST depth snapshot (Binance)
    EV_CONTROL = 6       # acks, pongs, heartbeats: liveness, not data
    EV_IGNORED = 7       # a channel xcol does not normalize (kline, ticker)

cdef enum Channel:
    CH_NONE = 0
    CH_BOOK = 1          # incremental L2 (Binance depth, OKX books, Deribit book.*)
    CH_BOOK_TOP = 2      # snapshot-only top of book (OKX books5)
    CH_BBO = 3           # Binance bookTicker, OKX bbo-tbt, Deribit quote
    CH_TRADES = 4        # Binance trade, OKX trades, Deribit trades
    CH_AGG_TRADES = 5    # Binance aggTrade
    N_CHANNELS = 6

cdef enum LevelFlag:
    LV_SET = 0
    LV_DELETE = 1        # Deribit "delete" (size forced to zero)

cdef extern from "level.h" nogil:
    ctypedef struct Level "xcol_level":
        int64_t px           # mantissa exactly as written
        int64_t qty
        const char *ptxt     # the exchange's own price text (inside the frame, valid while
        const char *qtxt     # the frame is being fed; NULL when not available or copied)
        int8_t pdec          # decimals as written
        int8_t qdec
        int8_t flag
        uint8_t plen         # lengths of ptxt / qtxt
        uint8_t qlen

ctypedef struct Trade:
    int64_t id
    int64_t px
    int64_t qty
    int64_t ts           # exchange time, ms
    int8_t pdec
    int8_t qdec
    int8_t side          # 1 buy (taker bought), -1 sell, 0 unknown
    int8_t dup           # set by the engine: another line already published this trade

ctypedef struct Event:
    int kind             # EventKind
    int channel          # Channel
    int inst             # instrument id, -1 until resolved
    const char *sym      # symbol text inside the frame (valid during decode)
    int sym_len
    int64_t first_seq    # Binance U; else = seq
    int64_t seq          # Binance u, OKX seqId, Deribit change_id, bookTicker u (Deribit
                         # quote: none, has_seq False; the engine derives one)
    int64_t prev_seq     # Binance pu, OKX prevSeqId, Deribit prev_change_id
    bint has_seq
    bint has_prev
    int64_t exch_ts      # exchange event time, ms (0 if absent)
    int32_t checksum
    bint has_checksum
    int nbids
    int nasks
    int ntrades
    Level *bids          # decoder-owned arrays, valid until the next decode
    Level *asks
    Trade *trades
    # Of the levels: how many were read by their shape (levels.h), the decimals those
    # had (bit d: a price / size with d decimals) and whether a price among them was 0.
    # When every level was, a book may rescale them while it applies them (Book.apply).
    int lv_shaped
    uint32_t lv_pdecs
    uint32_t lv_qdecs
    bint lv_zero_px
    bint lv_raw          # set by a book that applied the levels as written (rescaling
                         # each as it went): their px/qty are the exchange's mantissas
    bint bbo_text        # a quote's four numbers are plain (no leading zero, as
                         # format_num writes them) and bids[0]/asks[0] hold their texts
                         # (ptxt/plen, qtxt/qlen), which a record may copy as they are
    int err              # decode error code (DecodeErr), 0 if none
    int err_detail       # simdjson or NumErr code behind err
    const char *err_what # static text naming the field that failed
