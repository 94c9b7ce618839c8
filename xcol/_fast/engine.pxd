# distutils: language=c++
# The per-venue pipeline: frame -> decoder -> instrument -> book.

from libc.stdint cimport int64_t, uint64_t

from xcol._fast.decode cimport Decoder, N_DECODE_ERRORS
from xcol._fast.event cimport Event, Level, N_CHANNELS
from xcol._fast.book cimport Book
from xcol._fast.includes.symtab cimport SymTab
from xcol._fast.num cimport xcol_hi_cache
from xcol._fast.hdr cimport HdrHistogram

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
    R_DUPLICATE_COPY = 17       # a later copy of a BBO/trade another line delivered first

cdef enum:
    MAX_LINES = 16
    TRADE_WORDS = 64            # trade dedup ring: 64 words of 64 bits
    TRADE_WINDOW_C = 4096       # = 64 * TRADE_WORDS trade ids

# Why an update that reached the arbiter was not published (nor a duplicate).  The
# engine counts the first five as it sees them; the book counts how its held/buffered
# events left the buffer (the rest), and Engine.stream_counters adds the two.
cdef enum DropReason:
    DR_UNSYNCED = 0        # the book waited for a snapshot and did not keep it
    DR_GAP = 1             # it broke the sequence (the book lost sync) and was not kept
    DR_CHECKSUM = 2        # applied, but the exchange's checksum disagreed: not published
    DR_BAD_NUMBER = 3      # a price or size that does not fit the instrument's scale
    DR_STALE_SNAPSHOT = 4  # a REST snapshot older than the updates buffered before it
    DR_EXPIRED = 5         # held for the reorder window; no line filled the hole (book)
    DR_RESYNC = 6          # held/buffered, then a snapshot replaced its chain (book)
    DR_OVERFLOW = 7        # the book's buffer was full (book)
    DR_NO_MEMORY = 8       # the book could not hold it (book)
    DR_SHUTDOWN = 9        # still held when the engine was closed (book)
    N_DROP = 10

# Per stream (instrument x channel) outcome of every update that reached the arbiter:
# received = published + duplicates + sum(dropped) + the book's held events.
ctypedef struct StreamStat:
    int64_t received
    int64_t published            # records written (a REST snapshot is one update)
    int64_t duplicates           # later copies, or older than the book
    int64_t dropped[10]          # N_DROP, by DropReason

# Per connection ("line") counters; the arbiter keeps the first copy of each
# update and counts the rest against the line that brought them.
ctypedef struct LineStat:
    int64_t frames               # frames received
    int64_t updates              # book/BBO/trade frames (the arbitrated kinds)
    int64_t wins                 # first copies (published)
    int64_t dups                 # later copies (dropped)
    int64_t errors               # frames refused by the decoder
    int64_t gaps                 # holes in this line's own sequence
    int64_t last_rx              # monotonic ns of its last frame

# Per instrument dedup state for the streams without a book.
ctypedef struct InstState:
    int64_t bbo_seq
    int64_t bbo_rx
    int64_t bbo_ts               # exchange time of the last quote published
    int64_t trade_id
    int64_t trade_rx
    int64_t line_seq[16]         # MAX_LINES: last depth sequence seen per line
    int64_t last_top             # monotonic ns of the last "top" record
    int64_t hb_seq               # OKX: seqId of the last empty heartbeat update published
    int64_t quote_seq[16]        # MAX_LINES; Deribit quote: the last key derived per line
    int64_t bbo_last[4]          # Deribit quote: the last one published, at scale
    uint64_t trade_seen[64]      # TRADE_WORDS: bit (id % 4096) set: trade id was published
                                 # (last: 512 bytes, after the fields read per frame)

cdef class Engine:
    cdef readonly str market
    cdef readonly Decoder decoder
    cdef int venue
    cdef int spot
    cdef SymTab syms
    cdef list symbols            # list[str], by instrument id
    cdef list grids              # list[int]: price grid (tick at the price scale), 0 = auto
    cdef int *scales             # 2 per instrument: price, qty
    cdef int ninst
    cdef int scale_cap
    cdef list books              # list[Book | None], inst * N_CHANNELS + channel
    cdef public int default_price_scale
    cdef public int default_qty_scale
    cdef public int book_ladder             # ladder slots of new depth books (0: blocks only)
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
    cdef int64_t results[9]
    # arbitration and output
    cdef LineStat lines[16]
    cdef InstState *ist
    cdef int ist_cap
    cdef int64_t now             # receive time of the current frame (monotonic ns)
    cdef int64_t now_wall        # and on the wall clock (ns since the epoch)
    # the leading digits of the records' sequence numbers, exchange and receive times
    cdef xcol_hi_cache hc_seq
    cdef xcol_hi_cache hc_ts
    cdef xcol_hi_cache hc_wall
    cdef int cur_line
    cdef public int64_t reorder_default
    cdef Event held_ev
    cdef list lag_hists          # HdrHistogram per line: lag behind the winner, ns
    cdef readonly HdrHistogram code_ns     # frame received -> record queued, ns
    cdef readonly HdrHistogram exch_us     # exchange event time -> received, us
    cdef public bint stage_timing          # also time the stages (two clock reads more)
    cdef readonly HdrHistogram decode_ns   # frame received -> decoded, ns
    cdef readonly HdrHistogram book_ns     # decoded -> book applied (arbitrated), ns
    cdef readonly HdrHistogram encode_ns   # applied -> record queued, ns
    cdef int64_t t_decoded
    cdef int64_t t_book
    cdef int64_t t_end           # when the last frame's records were queued (0: not timed)
    cdef public bint publish                # encode records (else only count)
    cdef readonly int top_n                 # levels per side in "top" records (0: none)
    cdef readonly int64_t top_interval_ns   # at most one "top" per book per interval
    cdef Level *top_buf                     # 2 * top_n levels
    cdef list heads              # bytes per instrument and record kind: '{"type":..,"seq":'
    cdef char *out
    cdef size_t out_len
    cdef size_t out_cap
    cdef readonly int64_t out_records
    cdef StreamStat *sst         # per stream, inst * N_CHANNELS + channel (ist_cap rows)
    cdef readonly int64_t early_duplicates  # duplicates recognised from the header alone
    cdef unsigned int depth_lines         # bit per line that delivered a depth update
    cdef unsigned int bbo_lines           # bit per line that delivered a bookTicker
    cdef readonly int64_t stream_gaps     # holes no line filled (post-merge)

    cdef int feed_ptr(self, const char *data, size_t n) noexcept
    cdef int _peek_dup(self, int line, const char *d, size_t n, int64_t rx) noexcept
    cdef int _peek_bbo(self, int line, const char *d, size_t n, int64_t rx) noexcept
    cdef int feed_line(self, int line, const char *data, size_t n, int64_t rx,
                       int64_t rx_wall) noexcept
    cdef int _ensure(self, size_t extra) noexcept
    cdef void _put(self, const char *s, size_t n) noexcept
    cdef void _put_int(self, int64_t v) noexcept
    cdef void _put_num(self, int64_t v, int scale, int dec) noexcept
    cdef void _head(self, int kind, int inst, int line, int64_t seq,
                    int64_t exch_ts) noexcept
    cdef void _levels(self, Event *ev, int inst, bint bids) noexcept
    cdef void _enc_book(self, Event *ev, int inst, int line, Book b) noexcept
    cdef void _enc_snapshot(self, int inst, int line, Book b) noexcept
    cdef int _enc_top(self, int inst, int line, Book b) noexcept
    cdef void _done(self, int n, int64_t exch_ts) noexcept
    cdef void _drain(self, Book b, int inst, StreamStat *ss) noexcept
    cdef int _inst_of(self, object inst_or_symbol) except -1
    cdef Book _book(self, int inst, int channel)
