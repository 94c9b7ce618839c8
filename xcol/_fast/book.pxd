# Exact L2 order book: sorted int64 arrays, exchange sync rules.

from libc.stdint cimport int64_t, int32_t, int8_t, uint8_t, uint32_t, uint64_t

from xcol._fast.event cimport Event, Level

cdef enum BookMode:
    MODE_BINANCE_SPOT = 0      # U <= lastUpdateId+1 <= u, then U == prev u + 1
    MODE_BINANCE_FUTURES = 1   # U <= lastUpdateId <= u, then pu == prev u
    MODE_OKX = 2               # prevSeqId == last seqId; CRC32 of the top 25 levels
    MODE_DERIBIT = 3           # prev_change_id == last change_id
    MODE_SNAPSHOT = 4          # each message replaces the book (books5, bbo-tbt)

cdef enum BookState:
    ST_WAIT_SNAPSHOT = 0       # no snapshot yet (or lost sync): buffering
    ST_SYNCING = 1             # snapshot loaded, waiting for the bridging event
    ST_SYNCED = 2

cdef enum ApplyResult:
    AR_APPLIED = 0
    AR_BUFFERED = 1            # held until the snapshot arrives
    AR_DUPLICATE = 2           # already applied (or older than the book)
    AR_GAP = 3                 # sequence hole: out of sync, resync requested
    AR_CHECKSUM = 4            # exchange checksum mismatch: out of sync
    AR_UNSYNCED = 5            # dropped: the book waits for a (re)snapshot
    AR_BAD_NUMBER = 6          # a price/size does not fit the instrument scale
    AR_SNAPSHOT = 7            # a snapshot was loaded
    AR_HELD = 8                # ahead of the book: held for the reorder window

# One side of the book is a sorted sequence of fixed-size blocks (an unrolled
# B-tree of height 2).  ``k`` is the sort key: the price for bids, minus the
# price for asks, so both sides ascend with the best level last.  Inserting
# or deleting moves at most one block's tail (<= 64 levels), however deep
# the book is; a directory of block first-keys finds the block.
cdef enum:
    BLK = 64                  # levels per block
    BLK_FILL = 48             # levels per block when loading a snapshot

ctypedef struct Blk:
    int n
    int64_t k[64]
    int64_t q[64]
    int8_t dd[64][2]          # decimals the exchange wrote: [price, size] (its strings)

# Near the best level a side also keeps a *ladder*: one slot per step of the
# price grid ``g`` (in key units), slot j holding key (lo + j) * g.  Setting a
# level there is an index computation, with no search and no shifting.  A key
# lives in the ladder exactly when it is on the grid and inside the window;
# every other key lives in the blocks.  Slots come in pages of 64, allocated
# only while they hold a level, so a wide window costs memory only where the
# book has levels.  The window follows the best level (re-centred when the
# best leaves its upper middle part).
ctypedef packed struct PSlot:
    int64_t q                 # size (valid when the slot's bit is set)
    int8_t pdec               # decimals the exchange wrote: price, size
    int8_t qdec

ctypedef struct Page:
    PSlot s[64]               # 10 bytes each: a slot is (almost always) one cache line

ctypedef struct Side:
    Blk **blk                 # blocks in key order
    int64_t *first            # first key of each block
    int nb                    # blocks in use
    int bcap                  # directory capacity
    int n                     # levels (blocks + ladder)
    Blk *spare                # one cached free block
    Page **pages              # ladder pages (NULL: no level there)
    uint64_t *lbits           # occupied slots of each page, beside the page pointers so
                              # that testing a slot does not wait for its page
    uint64_t *pbits           # pages in use, one bit per page
    Page *pspare              # one cached free page
    int64_t lo                # grid index of slot 0
    int64_t g                 # grid step in key units (0: no ladder)
    double ginv               # 1.0 / g
    int lw                    # ladder slots (multiple of 64; 0: no ladder)
    int lcap                  # slots the page directory has room for
    int ln                    # levels in the ladder
    int npages                # pages allocated (in use)
    int ltop                  # highest occupied slot (-1: none)
    int lwait                 # updates before the window may move again
    int lgap                  # the wait after a move (doubles when moves come fast)
    int lsince                # updates since the last move
    int64_t recentres         # window moves
    # The grid in units of the prices as written with ig_dec decimals, for updates
    # rescaled while they are applied (see ladder_run_int): valid while g == ig_g
    int64_t ig_g              # the grid step these were computed for (0: none)
    int64_t ig_gd             # g / 10 ** (scale - ig_dec): one grid step as written
    uint64_t ig_m             # floor((2^64 - 1) / ig_gd) + 1 (2^64 - 1 when ig_gd is 1)
    int8_t ig_dec
    bint ig_ok                # the grid is a whole number of steps as written

# The best levels of one side as OKX's checksum string writes them ("px:size"),
# kept up to date level by level as updates are applied, so that a checksum
# neither walks the book nor re-formats levels that did not change.
cdef enum:
    CRC_DEPTH = 25            # levels a side in OKX's checksum
    TOP_CAP = 64              # levels a side's list keeps (room for deletions)

ctypedef struct TopText:
    uint8_t len
    char txt[95]              # 16-byte chunks are copied: room for len + 31

ctypedef struct TopList:
    int n                     # levels held, best first
    bint complete             # every level of the side is held
    int nfree
    int64_t k[64]             # keys (see Side), descending
    uint8_t slot[64]          # the text slot of each level
    uint8_t free[64]          # unused text slots
    TopText text[64]

# Events held before the snapshot: headers plus their levels.
ctypedef struct Pending:
    int64_t first_seq
    int64_t seq
    int64_t prev_seq
    int64_t exch_ts
    int nbids
    int nasks
    int off                   # index of the first level in the level pool
    int64_t rx                # receive time (monotonic ns) of the first copy
    int line                  # the line that delivered it
    int32_t checksum          # OKX checksum of the event (when has_checksum)
    bint has_checksum

cdef class Book:
    cdef readonly str symbol
    cdef bytes _symb                # the symbol for C messages
    cdef readonly int mode
    cdef readonly int price_scale
    cdef readonly int qty_scale
    cdef int64_t pmul[19]           # 10 ** (price_scale - d) for d decimals (d <= scale)
    cdef int64_t qmul[19]
    cdef bint fuse                  # _apply_levels rescales levels written as is (apply)
    cdef public int max_pending     # events buffered before a snapshot, at most
    cdef public int ladder          # ladder slots per side (0: blocks only)
    cdef public int64_t grid        # price grid at the book scale (0: from snapshots)
    cdef int state
    cdef Side bids
    cdef Side asks
    cdef int64_t last_seq
    cdef int64_t snapshot_seq
    cdef int64_t exch_ts
    cdef bint has_seq
    cdef public bint resync_requested
    # arbitration: how long a skip-ahead event waits for another line to fill
    # the hole (0: a hole is a gap at once), and when each applied update
    # first arrived (for the lag of later copies)
    cdef public int64_t reorder_ns
    cdef int64_t now                 # receive time of the event being applied
    cdef int now_line                # the line it came on
    cdef int64_t ring_seq[256]
    cdef int64_t ring_rx[256]
    cdef unsigned int ring_pos
    cdef readonly int64_t held
    cdef readonly int64_t held_filled
    cdef readonly int64_t held_expired
    # counters
    cdef readonly int64_t updates
    cdef readonly int64_t rescaled_applying  # updates rescaled as they were applied
    cdef readonly int64_t snapshots
    cdef readonly int64_t gaps
    cdef readonly int64_t duplicates
    cdef readonly int64_t unsynced_drops
    cdef readonly int64_t bad_numbers
    cdef readonly int64_t checksums_checked
    cdef readonly int64_t checksums_failed
    cdef readonly int64_t checksums_unchanged   # checked without recomputing (top unchanged)
    # how held/buffered events left the buffer other than through drain_next (the
    # engine's per-stream counters add these; see Engine.stream_counters)
    cdef readonly int64_t pending_dropped     # the buffer was full: oldest half dropped
    cdef readonly int64_t pending_expired     # the hole never filled (OKX/Deribit expiry)
    cdef readonly int64_t pending_discarded   # a snapshot replaced their chain
    cdef readonly int64_t pending_folded      # replayed into a REST snapshot's record
    cdef readonly int64_t pending_dups        # copies of held events / older than the snapshot
    cdef readonly int64_t pending_failed      # could not be stored (no memory)
    cdef readonly int64_t pending_closed      # still held when the engine was closed
    # pre-snapshot buffer
    cdef Pending *pend
    cdef int npend
    cdef int pend_cap
    cdef Level *pool
    cdef int npool
    cdef int pool_cap
    # oracle trace: (seq, bid, bid_qty, ask, ask_qty) after each applied event
    cdef bint trace_on
    cdef int64_t *trace
    cdef int ntrace
    cdef int trace_cap
    # OKX checksum of the top CRC_DEPTH levels, from lists of the best levels
    # kept as updates are applied; recomputed only when a list changed
    cdef bint crc_on                   # the lists are being kept
    cdef bint crc_dirty
    cdef bint top_ok                   # the lists match the book
    cdef uint32_t crc_val
    cdef TopList *tops                 # [2]: bids, asks

    cdef int apply(self, Event *ev) noexcept
    cdef int drain_next(self, Event *out, int *line) noexcept
    cdef int export_levels(self, bint bids, Level *out, int cap) noexcept
    cdef int depth(self, bint bids) noexcept
    cdef int expire(self, int64_t now) noexcept
    cdef int close_pending(self) noexcept
    cdef int64_t winner_rx(self, int64_t seq) noexcept
    cdef void _ring(self, int64_t seq, int64_t rx) noexcept
    cdef int apply_rest_snapshot(self, Event *ev) noexcept
    cdef int _binance(self, int64_t first, int64_t seq, int64_t prev,
                      Level *bids, int nb, Level *asks, int na) noexcept
    cdef int _apply_levels(self, Level *bids, int nb, Level *asks, int na) noexcept
    cdef int _scale_levels(self, Level *lv, int n) noexcept
    cdef bint _fusable(self, const Event *ev) noexcept
    cdef int _load(self, Level *bids, int nb, Level *asks, int na) noexcept
    cdef int _place(self, Side *side) noexcept
    cdef void _check(self) noexcept
    cdef int _buffer(self, Event *ev) noexcept
    cdef void _lose_sync(self) noexcept
    cdef void _record(self) noexcept
    cdef int _okx_check(self, Event *ev) noexcept
    cdef uint32_t crc_top(self, int depth) noexcept
    cdef uint32_t _crc_cached(self) noexcept
    cdef list _walk(self, Side *side, int sign, int n, bint raw)
