# cython: language_level=3
"""Exact L2 order books in sorted int64 arrays, with each exchange's sync rules.

A :class:`Book` is fed decoded events (see ``event.pxd``) by the engine and
applies the venue's sequence rules:

* Binance spot: buffer until the REST snapshot, drop ``u <= lastUpdateId``,
  the first event has ``U <= lastUpdateId+1 <= u``, then ``U == prev u + 1``.
* Binance USD-M / COIN-M: drop ``u < lastUpdateId``, the first event has
  ``U <= lastUpdateId <= u`` (or ``pu == lastUpdateId``), then ``pu == prev u``.
* OKX books: ``prevSeqId == last seqId`` (which also covers the empty
  heartbeat and the maintenance reset), CRC32 of the top 25 levels of each
  side on every message that carries a non-zero checksum.
* Deribit book.*: ``prev_change_id == last change_id``.

A gap marks the book out of sync and sets :attr:`Book.resync_requested`;
nothing is applied from it until a new snapshot is spliced in.
"""

cimport cython
from libc.stdint cimport int64_t, int32_t, int8_t, uint8_t, uint32_t, uint64_t, INT64_MIN
from libc.stdio cimport fprintf, stderr
from libc.stdlib cimport malloc, realloc, free, abort
from libc.string cimport memmove, memcpy, memset

from xcol._fast.event cimport Event, Level, EV_DEPTH, EV_SNAPSHOT, LV_DELETE
from xcol._fast.num cimport (to_scale, format_num, xcol_copy16, xcol_pow10, xcol_mulhi,
                             NUM_OK)
from xcol._fast.includes.debug cimport XCOL_DEBUG

cdef extern from *:
    int __builtin_clzll(unsigned long long x) nogil
    int __builtin_ctz(unsigned int x) nogil

# --------------------------------------------------------------------------
# CRC32 (IEEE 802.3, reflected, poly 0xEDB88320), slice-by-8.

cdef uint32_t _crc_tab[8][256]

cdef void _crc_init() noexcept:
    cdef uint32_t c
    cdef int i, j
    for i in range(256):
        c = <uint32_t>i
        for j in range(8):
            if c & 1:
                c = 0xEDB88320 ^ (c >> 1)
            else:
                c = c >> 1
        _crc_tab[0][i] = c
    for i in range(256):
        c = _crc_tab[0][i]
        for j in range(1, 8):
            c = _crc_tab[0][c & 0xFF] ^ (c >> 8)
            _crc_tab[j][i] = c

_crc_init()

DEBUG = bool(XCOL_DEBUG)
"""True in a debug build (``XCOL_DEBUG=1``): bounds checks on, and every book checks
its invariants after each change (a broken one aborts with a message)."""

cdef extern from "search.h" nogil:
    int xcol_count_below(const int64_t *k, int n, int64_t key)
    int xcol_count_upto(const int64_t *k, int n, int64_t key)

cdef extern from "crc32.h":
    int XCOL_CRC32_FOLD
    uint32_t xcol_crc32_fold(uint32_t crc, const uint8_t *p, size_t n) nogil


cdef inline uint32_t crc32_update(uint32_t crc, const uint8_t *p, size_t n) noexcept nogil:
    cdef uint32_t lo, hi
    cdef size_t whole
    crc = ~crc
    if XCOL_CRC32_FOLD and n >= 64:
        # carry-less multiply over whole 16-byte lanes, the table for the rest
        whole = n & ~(<size_t>15)
        crc = xcol_crc32_fold(crc, p, whole)
        p += whole
        n -= whole
    while n >= 8:
        lo = (<uint32_t>p[0] | (<uint32_t>p[1] << 8) | (<uint32_t>p[2] << 16)
              | (<uint32_t>p[3] << 24)) ^ crc
        hi = (<uint32_t>p[4] | (<uint32_t>p[5] << 8) | (<uint32_t>p[6] << 16)
              | (<uint32_t>p[7] << 24))
        crc = (_crc_tab[7][lo & 0xFF] ^ _crc_tab[6][(lo >> 8) & 0xFF]
               ^ _crc_tab[5][(lo >> 16) & 0xFF] ^ _crc_tab[4][lo >> 24]
               ^ _crc_tab[3][hi & 0xFF] ^ _crc_tab[2][(hi >> 8) & 0xFF]
               ^ _crc_tab[1][(hi >> 16) & 0xFF] ^ _crc_tab[0][hi >> 24])
        p += 8
        n -= 8
    while n > 0:
        crc = _crc_tab[0][(crc ^ p[0]) & 0xFF] ^ (crc >> 8)
        p += 1
        n -= 1
    return ~crc


def crc32(data: bytes) -> int:
    """CRC32 (IEEE) of ``data`` as an unsigned int; the one books use."""
    cdef const uint8_t[:] view = data
    if len(data) == 0:
        return 0
    return crc32_update(0, &view[0], len(data))


# --------------------------------------------------------------------------
# One side: blocks of ascending keys, best level last.

cdef inline Blk *blk_new(Side *s) noexcept nogil:
    cdef Blk *b = s.spare
    if b != NULL:
        s.spare = NULL
    else:
        b = <Blk *>malloc(sizeof(Blk))
        if b == NULL:
            return NULL
    b.n = 0
    return b


cdef inline void blk_release(Side *s, Blk *b) noexcept nogil:
    if s.spare == NULL:
        s.spare = b
    else:
        free(b)


cdef inline int dir_insert(Side *s, int at, Blk *b) noexcept nogil:
    cdef int cap
    cdef void *p
    if s.nb == s.bcap:
        cap = s.bcap * 2 if s.bcap else 8
        p = realloc(s.blk, <size_t>cap * sizeof(Blk *))
        if p == NULL:
            return -1
        s.blk = <Blk **>p
        p = realloc(s.first, <size_t>cap * sizeof(int64_t))
        if p == NULL:
            return -1
        s.first = <int64_t *>p
        s.bcap = cap
    memmove(s.blk + at + 1, s.blk + at, <size_t>(s.nb - at) * sizeof(Blk *))
    memmove(s.first + at + 1, s.first + at, <size_t>(s.nb - at) * sizeof(int64_t))
    s.blk[at] = b
    s.first[at] = b.k[0] if b.n else 0
    s.nb += 1
    return 0


cdef inline void dir_remove(Side *s, int at) noexcept nogil:
    blk_release(s, s.blk[at])
    memmove(s.blk + at, s.blk + at + 1, <size_t>(s.nb - at - 1) * sizeof(Blk *))
    memmove(s.first + at, s.first + at + 1, <size_t>(s.nb - at - 1) * sizeof(int64_t))
    s.nb -= 1


cdef inline void page_release(Side *s, Page *p) noexcept nogil:
    if s.pspare == NULL:
        s.pspare = p
    else:
        free(p)


cdef void side_clear(Side *s) noexcept nogil:
    """Remove every level (blocks and ladder); the directories are kept."""
    cdef int wi, pi
    cdef uint64_t m
    while s.nb > 0:
        dir_remove(s, s.nb - 1)
    for wi in range((s.lw + 4095) >> 12):
        m = s.pbits[wi]
        while m:
            pi = (wi << 6) + 63 - __builtin_clzll(m)
            page_release(s, s.pages[pi])
            s.pages[pi] = NULL
            s.lbits[pi] = 0
            m &= ~((<uint64_t>1) << (pi & 63))
        s.pbits[wi] = 0
    s.npages = 0
    s.ln = 0
    s.ltop = -1
    s.n = 0


cdef void side_free(Side *s) noexcept nogil:
    side_clear(s)
    free(s.spare)
    free(s.blk)
    free(s.first)
    free(s.pspare)
    free(s.pages)
    free(s.pbits)
    free(s.lbits)
    s.spare = NULL
    s.blk = NULL
    s.first = NULL
    s.pspare = NULL
    s.pages = NULL
    s.pbits = NULL
    s.lbits = NULL
    s.bcap = 0
    s.lw = 0
    s.lcap = 0


# --------------------------------------------------------------------------
# The ladder (see book.pxd): slots on the price grid near the best level.

cdef inline int64_t grid_round(double x) noexcept nogil:
    """The integer nearest to ``x``, or INT64_MIN when it would not fit comfortably in
    an int64 (never on the ladder)."""
    if not (-4.0e18 < x < 4.0e18):
        return INT64_MIN
    if x >= 0:
        return <int64_t>(x + 0.5)
    return -<int64_t>(0.5 - x)


cdef inline int64_t grid_index(const Side *s, int64_t key) noexcept nogil:
    """The grid index nearest to ``key`` (exact when ``key`` is on the grid), or
    INT64_MIN (see grid_round)."""
    return grid_round(<double>key * s.ginv)


cdef inline int window_slot(int64_t key, double ginv, int64_t g, int64_t lo,
                            int lw) noexcept nogil:
    """The slot holding ``key`` in a ladder window of ``lw`` slots from grid index
    ``lo`` (grid step ``g``, ``ginv`` = 1 / g), or -1 if ``key`` is not in it."""
    cdef double x = <double>key * ginv
    cdef int64_t idx, slot
    if not (-4.0e18 < x < 4.0e18):
        return -1
    idx = <int64_t>(x + 0.5) if x >= 0 else -<int64_t>(0.5 - x)    # as grid_round
    slot = idx - lo
    if slot < 0 or slot >= lw or idx * g != key:
        return -1
    return <int>slot


cdef inline int ladder_slot(const Side *s, int64_t key) noexcept nogil:
    """The ladder slot that holds ``key``, or -1 if ``key`` belongs in the blocks."""
    if s.lw == 0:
        return -1
    return window_slot(key, s.ginv, s.g, s.lo, s.lw)


cdef inline int ladder_below(const Side *s, int slot) noexcept nogil:
    """The highest occupied slot below ``slot`` (-1 if none)."""
    cdef int pi = slot >> 6
    cdef int wi
    cdef uint64_t m = 0
    m = s.lbits[pi] & (((<uint64_t>1) << (slot & 63)) - 1)
    if m:
            return (pi << 6) + 63 - __builtin_clzll(m)
    # the next page in use below
    wi = pi >> 6
    m = s.pbits[wi] & (((<uint64_t>1) << (pi & 63)) - 1)
    while m == 0:
        wi -= 1
        if wi < 0:
            return -1
        m = s.pbits[wi]
    pi = (wi << 6) + 63 - __builtin_clzll(m)
    return (pi << 6) + 63 - __builtin_clzll(s.lbits[pi])


cdef inline int ladder_put(Side *s, int slot, int64_t qty, int8_t pdec,
                           int8_t qdec) noexcept nogil:
    """Set (qty > 0) or clear (qty == 0) one ladder slot; -1 on no memory.

    Whether an update sets or deletes is as good as random, so both take the same
    straight path (bit, counts and slot by arithmetic, no branch on it); only the
    rare cases branch: a page to allocate or release, the top slot to move down."""
    cdef int pi = slot >> 6
    cdef int j = slot & 63
    cdef uint64_t bit = (<uint64_t>1) << j
    cdef uint64_t m = s.lbits[pi]
    cdef Page *p = s.pages[pi]
    cdef bint is_set = qty != 0
    cdef uint64_t nm
    cdef int delta
    if p == NULL:
        if not is_set:
            return 0              # removing an unknown level is normal
        p = s.pspare
        if p != NULL:
            s.pspare = NULL
        else:
            p = <Page *>malloc(sizeof(Page))
            if p == NULL:
                return -1
        s.pages[pi] = p
        s.pbits[pi >> 6] |= (<uint64_t>1) << (pi & 63)
        s.npages += 1
    nm = (m & ~bit) | (bit & (<uint64_t>0 - <uint64_t>is_set))
    delta = <int>is_set - <int>((m >> j) & 1)
    s.lbits[pi] = nm
    s.ln += delta
    s.n += delta
    p.s[j].q = qty
    p.s[j].pdec = pdec
    p.s[j].qdec = qdec
    if slot > s.ltop and is_set:
        s.ltop = slot
    if nm == 0:
        page_release(s, p)
        s.pages[pi] = NULL
        s.pbits[pi >> 6] &= ~((<uint64_t>1) << (pi & 63))
        s.npages -= 1
    if slot == s.ltop and not is_set:
        s.ltop = ladder_below(s, slot)
    return 0


cdef int ladder_alloc(Side *s, int w) noexcept nogil:
    """Make the page directory big enough for ``w`` slots; -1 on no memory.
    Only call it on a side whose ladder is empty (a grown directory starts zeroed)."""
    cdef void *p
    cdef int np = w >> 6
    cdef int nw = (np + 63) >> 6
    if w > s.lcap and s.ln:
        return -1
    if w > s.lcap:
        p = realloc(s.pages, <size_t>np * sizeof(Page *))
        if p == NULL:
            return -1
        s.pages = <Page **>p
        p = realloc(s.pbits, <size_t>nw * sizeof(uint64_t))
        if p == NULL:
            return -1
        s.pbits = <uint64_t *>p
        p = realloc(s.lbits, <size_t>np * sizeof(uint64_t))
        if p == NULL:
            return -1
        s.lbits = <uint64_t *>p
        memset(s.lbits, 0, <size_t>np * sizeof(uint64_t))
        memset(s.pages, 0, <size_t>np * sizeof(Page *))
        memset(s.pbits, 0, <size_t>nw * sizeof(uint64_t))
        s.lcap = w
    return 0


@cython.boundscheck(False)
@cython.wraparound(False)
cdef inline int find_blk(const Side *s, int64_t key, int hint) noexcept nogil:
    """Last block whose first key is <= key (0 if none): the hint when it is that
    block, else by counting (a directory of up to 256 blocks) or galloping from it."""
    cdef const int64_t *f = s.first
    cdef int nb = s.nb
    cdef int lo, hi, mid, step
    if hint >= nb:
        hint = nb - 1
    if hint < 0:
        hint = 0
    if f[hint] <= key and (hint + 1 >= nb or f[hint + 1] > key):
        return hint
    if nb <= 256:
        lo = xcol_count_upto(f, nb, key) - 1
        return lo if lo > 0 else 0
    if f[hint] <= key:
        lo = hint
        hi = hint + 1
        step = 1
        while hi < nb and f[hi] <= key:
            lo = hi
            hi += step
            step <<= 1
        if hi > nb:
            hi = nb
    else:
        hi = hint
        lo = hint - 1
        step = 1
        while lo >= 0 and f[lo] > key:
            hi = lo
            lo -= step
            step <<= 1
        if lo < 0:
            lo = -1
    while hi - lo > 1:
        mid = (lo + hi) >> 1
        if f[mid] <= key:
            lo = mid
        else:
            hi = mid
    return lo if lo > 0 else 0


@cython.boundscheck(False)
@cython.wraparound(False)
cdef inline int blk_lb(const Blk *b, int64_t key) noexcept nogil:
    """Index of the first key >= ``key``: the number of keys below it (search.h)."""
    return xcol_count_below(b.k, b.n, key)


cdef inline void blk_shift(Blk *b, int dst, int src, int count) noexcept nogil:
    memmove(&b.k[dst], &b.k[src], <size_t>count * sizeof(int64_t))
    memmove(&b.q[dst], &b.q[src], <size_t>count * sizeof(int64_t))
    memmove(&b.dd[dst][0], &b.dd[src][0], <size_t>count * 2)


@cython.boundscheck(False)
@cython.wraparound(False)
cdef inline int side_set(Side *s, int64_t key, int64_t qty, int8_t pdec, int8_t qdec,
                         int hint) noexcept nogil:
    """Set (qty > 0) or delete (qty == 0) a level; returns a block hint or -1."""
    cdef int bi, i, half
    cdef Blk *b
    cdef Blk *nb2
    if s.lw:
        i = ladder_slot(s, key)
        if i >= 0:
            return hint if ladder_put(s, i, qty, pdec, qdec) == 0 else -1
    if s.nb == 0:
        if qty == 0:
            return 0
        b = blk_new(s)
        if b == NULL:
            return -1
        b.k[0] = key
        b.q[0] = qty
        b.dd[0][0] = pdec
        b.dd[0][1] = qdec
        b.n = 1
        if dir_insert(s, 0, b) < 0:
            blk_release(s, b)
            return -1
        s.n += 1
        return 0
    bi = find_blk(s, key, hint)
    b = s.blk[bi]
    i = blk_lb(b, key)
    if i < b.n and b.k[i] == key:
        if qty == 0:
            blk_shift(b, i, i + 1, b.n - i - 1)
            b.n -= 1
            s.n -= 1
            if b.n == 0:
                dir_remove(s, bi)
                return bi - 1 if bi > 0 else 0
            if i == 0:
                s.first[bi] = b.k[0]
        else:
            b.q[i] = qty
            b.dd[i][0] = pdec
            b.dd[i][1] = qdec
        return bi
    if qty == 0:
        return bi                 # removing an unknown level is normal
    if b.n == BLK:
        nb2 = blk_new(s)
        if nb2 == NULL:
            return -1
        half = BLK // 2
        memcpy(&nb2.k[0], &b.k[half], <size_t>(BLK - half) * sizeof(int64_t))
        memcpy(&nb2.q[0], &b.q[half], <size_t>(BLK - half) * sizeof(int64_t))
        memcpy(&nb2.dd[0][0], &b.dd[half][0], <size_t>(BLK - half) * 2)
        nb2.n = BLK - half
        b.n = half
        if dir_insert(s, bi + 1, nb2) < 0:
            return -1
        if i > half:
            bi += 1
            b = nb2
            i -= half
    blk_shift(b, i + 1, i, b.n - i)
    b.k[i] = key
    b.q[i] = qty
    b.dd[i][0] = pdec
    b.dd[i][1] = qdec
    b.n += 1
    s.n += 1
    if i == 0:
        s.first[bi] = key
    return bi


cdef inline int64_t level_key(const Level *lv, int64_t sign, const int64_t *pm,
                              const int64_t *qm, int64_t *qty) noexcept nogil:
    """A level's key (its price, minus it for asks: ``sign`` -1) and, in ``qty``, its
    size; both rescaled by ``pm``/``qm`` (see side_apply) unless they are NULL."""
    if pm != NULL:
        qty[0] = lv.qty * qm[lv.qdec]
        return lv.px * sign * pm[lv.pdec]
    qty[0] = lv.qty
    return lv.px * sign


ctypedef struct LadderRun:
    # A side's ladder fields, held in locals while a run of levels is applied (a store
    # into a page may alias any field read through the Side, which would then be
    # reloaded after every level)
    uint64_t *lbits
    Page **pages
    double ginv
    int64_t g
    int64_t lo
    int lw
    int ltop
    int dn                    # levels added (deleted: negative) so far


cdef inline int ladder_run(LadderRun *r, const Level *lv, int i, int n, int64_t sign,
                           const int64_t *pm, const int64_t *qm) noexcept nogil:
    """Apply levels ``i``, ``i + 1``, ... while each is the ladder's common case (its
    slot's page is in use and stays so, and it does not empty the top slot); returns
    the index of the first level that is not (``n`` when all were).  With ``pm``/``qm``
    (see side_apply) each price and size is rescaled as it is read."""
    cdef uint64_t *lbits = r.lbits
    cdef Page **pages = r.pages
    cdef double ginv = r.ginv
    cdef int64_t g = r.g
    cdef int64_t lo = r.lo
    cdef int lw = r.lw
    cdef int ltop = r.ltop
    cdef int dn = r.dn
    cdef int64_t key, qty, slot
    cdef uint64_t m, bit, nm
    cdef Page *pg
    cdef int j
    cdef bint is_set
    while i < n:
        key = level_key(&lv[i], sign, pm, qm, &qty)
        slot = window_slot(key, ginv, g, lo, lw)
        if slot < 0:
            break
        is_set = qty != 0
        m = lbits[slot >> 6]
        pg = pages[slot >> 6]
        j = <int>(slot & 63)
        bit = (<uint64_t>1) << j
        # set or clear by arithmetic: whether an update sets or deletes is as good as
        # random, a branch on it would be mispredicted half the time
        nm = (m & ~bit) | (bit & (<uint64_t>0 - <uint64_t>is_set))
        if pg == NULL or nm == 0 or (slot == ltop and not is_set):
            break
        lbits[slot >> 6] = nm
        dn += <int>is_set - <int>((m >> j) & 1)
        pg.s[j].q = qty
        pg.s[j].pdec = lv[i].pdec
        pg.s[j].qdec = lv[i].qdec
        if slot > ltop and is_set:
            ltop = <int>slot
        i += 1
    r.ltop = ltop
    r.dn = dn
    return i


cdef void grid_int(Side *s, int8_t dec, const int64_t *pm) noexcept nogil:
    """Fill the side's ig_* fields for prices written with ``dec`` decimals and rescaled
    by ``pm[dec]`` (see ladder_run_int); ig_ok False when the grid step is not a whole
    number of their units."""
    cdef int64_t p = pm[dec]
    s.ig_g = s.g
    s.ig_dec = dec
    s.ig_ok = False
    if s.g <= 0 or p <= 0 or s.g % p != 0:
        return
    s.ig_gd = s.g // p
    if s.ig_gd == 1:
        s.ig_m = <uint64_t>0xFFFFFFFFFFFFFFFF
    else:
        s.ig_m = <uint64_t>0xFFFFFFFFFFFFFFFF // <uint64_t>s.ig_gd + 1
    s.ig_ok = True


cdef inline int ladder_run_int(LadderRun *r, const Side *s, const Level *lv, int i, int n,
                               int64_t sign, const int64_t *qm) noexcept nogil:
    """ladder_run for levels rescaled while they are applied whose prices have the
    side's ig_dec decimals as written: the grid index is the written price divided by
    ig_gd, as the high half of ``(px + 1) * ig_m`` (exact for every multiple of ig_gd
    below 2^63: ig_m exceeds 2^64 / ig_gd by at most 1, so the product exceeds
    idx * 2^64 by less than 2^64; the + 1 makes ig_m = 2^64 - 1 right for ig_gd 1), and
    a price off the grid fails ``idx * ig_gd == px``, so no key and no floating point.
    Stops, as ladder_run does, at the first level that is not the common case, and also
    at one with other decimals.  The slot update below is ladder_run's, written out
    again: a helper shared by both, taking the running top slot and count by pointer,
    cost 2.1 M more instructions on one copy of the USD-M workload (70.8 M)."""
    cdef uint64_t *lbits = r.lbits
    cdef Page **pages = r.pages
    cdef int64_t lo = r.lo
    cdef uint64_t lw = <uint64_t>r.lw
    cdef int ltop = r.ltop
    cdef int dn = r.dn
    cdef int8_t dec = s.ig_dec
    cdef int64_t gd = s.ig_gd
    cdef uint64_t gm = s.ig_m
    cdef int64_t px, idx, qty, slot
    cdef uint64_t m, bit, nm
    cdef Page *pg
    cdef int j
    cdef bint is_set
    while i < n:
        px = lv[i].px
        if lv[i].pdec != dec:
            break
        idx = <int64_t>xcol_mulhi(<uint64_t>px + 1, gm)
        slot = idx * sign - lo
        if <uint64_t>slot >= lw or <uint64_t>idx * <uint64_t>gd != <uint64_t>px:
            break                 # (unsigned: an off-grid price near 2^63 wraps, no UB)
        qty = lv[i].qty * qm[lv[i].qdec]
        is_set = qty != 0
        m = lbits[slot >> 6]
        pg = pages[slot >> 6]
        j = <int>(slot & 63)
        bit = (<uint64_t>1) << j
        nm = (m & ~bit) | (bit & (<uint64_t>0 - <uint64_t>is_set))
        if pg == NULL or nm == 0 or (slot == ltop and not is_set):
            break
        lbits[slot >> 6] = nm
        dn += <int>is_set - <int>((m >> j) & 1)
        pg.s[j].q = qty
        pg.s[j].pdec = dec
        pg.s[j].qdec = lv[i].qdec
        if slot > ltop and is_set:
            ltop = <int>slot
        i += 1
    r.ltop = ltop
    r.dn = dn
    return i


cdef int side_apply(Side *s, const Level *lv, int n, int64_t sign, const int64_t *pm,
                    const int64_t *qm) noexcept nogil:
    """Set or delete ``n`` levels of one side (``sign`` -1 for asks: keys are minus the
    price); 0, or -1 on no memory.  Runs of the ladder's common case go through
    ladder_run; the levels between them through ladder_put or side_set.  ``pm`` and
    ``qm`` (or NULL: the levels are at the book's scale) rescale a level written with d
    decimals: ``px * pm[d]``, ``qty * qm[d]`` (the caller made sure that fits)."""
    cdef LadderRun r
    cdef int i = 0
    cdef int slot
    cdef int hint = s.nb - 1 if s.nb else 0
    cdef int64_t key, qty
    r.lbits = s.lbits
    r.pages = s.pages
    r.ginv = s.ginv
    r.g = s.g
    r.lo = s.lo
    r.lw = s.lw
    r.ltop = s.ltop
    r.dn = 0
    cdef bint by_int = False
    if pm != NULL and r.lw and n > 0:
        # rescaled while applied: the grid as a whole number of the written prices'
        # units, for those with the first level's decimals (nearly always all)
        if s.ig_g != s.g or s.ig_dec != lv[0].pdec:
            grid_int(s, lv[0].pdec, pm)
        by_int = s.ig_ok
    while True:
        if by_int:
            # the sign as a constant: one copy of the loop a side, a register less
            if sign > 0:
                i = ladder_run_int(&r, s, lv, i, n, 1, qm)
            else:
                i = ladder_run_int(&r, s, lv, i, n, -1, qm)
        elif r.lw:
            i = ladder_run(&r, lv, i, n, sign, pm, qm)
        if i >= n:
            break
        # one level of the other cases, with the side's fields written back
        s.ltop = r.ltop
        key = level_key(&lv[i], sign, pm, qm, &qty)
        slot = ladder_slot(s, key)
        if slot >= 0:
            if ladder_put(s, slot, qty, lv[i].pdec, lv[i].qdec) < 0:
                break
        else:
            hint = side_set(s, key, qty, lv[i].pdec, lv[i].qdec, hint)
            if hint < 0:
                break
        r.ltop = s.ltop
        i += 1
    s.ltop = r.ltop
    s.ln += r.dn
    s.n += r.dn
    return 0 if i >= n else -1


cdef inline bint side_has(const Side *s, int64_t key) noexcept nogil:
    cdef int bi
    cdef int i = ladder_slot(s, key)
    if i >= 0:
        return (s.lbits[i >> 6] >> (i & 63)) & 1
    if s.nb == 0:
        return False
    bi = find_blk(s, key, s.nb - 1)
    i = blk_lb(s.blk[bi], key)
    return i < s.blk[bi].n and s.blk[bi].k[i] == key


cdef inline int side_append(Side *s, int64_t key, int64_t qty, int8_t pdec,
                            int8_t qdec) noexcept nogil:
    """Add a level whose key is above every key in the blocks (block fill BLK_FILL)."""
    cdef Blk *b = s.blk[s.nb - 1] if s.nb else NULL
    if b == NULL or b.n >= BLK_FILL:
        b = blk_new(s)
        if b == NULL:
            return -1
        b.k[0] = key
        b.n = 0
        if dir_insert(s, s.nb, b) < 0:
            blk_release(s, b)
            return -1
    b.k[b.n] = key
    b.q[b.n] = qty
    b.dd[b.n][0] = pdec
    b.dd[b.n][1] = qdec
    if b.n == 0:
        s.first[s.nb - 1] = key
    b.n += 1
    s.n += 1
    return 0


cdef inline int side_load(Side *s, Level *lv, int n, int sign) noexcept nogil:
    """Replace the side with ``n`` levels given best-first (any order works).

    Everything goes into the blocks with the ladder off; the book then places
    the ladder (``Book._place``)."""
    cdef int i
    cdef int64_t key
    side_clear(s)
    s.lw = 0
    # Walk from the worst level so keys ascend; fall back to set() if the
    # venue's order is not what it documents.
    for i in range(n - 1, -1, -1):
        if lv[i].qty == 0:
            continue
        key = sign * lv[i].px
        if s.nb == 0 or s.blk[s.nb - 1].k[s.blk[s.nb - 1].n - 1] < key:
            if side_append(s, key, lv[i].qty, lv[i].pdec, lv[i].qdec) < 0:
                return -1
        elif side_has(s, key):
            continue    # a price listed twice: the later entry (already set) wins
        elif side_set(s, key, lv[i].qty, lv[i].pdec, lv[i].qdec, s.nb - 1) < 0:
            return -1
    return 0


cdef inline bint side_best(const Side *s, int64_t *k, int64_t *q) noexcept nogil:
    cdef Blk *b
    cdef int64_t lk
    cdef bint found = False
    if s.nb:
        b = s.blk[s.nb - 1]
        k[0] = b.k[b.n - 1]
        q[0] = b.q[b.n - 1]
        found = True
    if s.ltop >= 0:
        lk = (s.lo + s.ltop) * s.g
        if not found or lk > k[0]:
            k[0] = lk
            q[0] = s.pages[s.ltop >> 6].s[s.ltop & 63].q
            found = True
    return found


cdef size_t _side_bytes(const Side *sd) noexcept nogil:
    cdef size_t total = <size_t>sd.nb * sizeof(Blk)
    total += <size_t>sd.bcap * (sizeof(Blk *) + sizeof(int64_t))
    total += <size_t>(sd.npages + (sd.pspare != NULL)) * sizeof(Page)
    total += <size_t>(sd.lcap >> 6) * (sizeof(Page *) + 8) + <size_t>((sd.lcap + 4095) >> 12) * 8
    if sd.spare != NULL:
        total += sizeof(Blk)
    return total


# Walk a side from the best level, merging the ladder and the blocks.
ctypedef struct Walk:
    int bi                # block cursor (bi < 0: blocks done)
    int i
    int ls                # ladder cursor (-1: ladder done)
    bint in_ladder        # where the current level is
    int64_t k             # the current level
    int64_t q
    int8_t pdec
    int8_t qdec

cdef inline bint walk_pick(const Side *s, Walk *w) noexcept nogil:
    cdef int64_t kb = 0
    cdef int64_t kl
    cdef Blk *b = NULL
    cdef Page *p
    if w.bi >= 0:
        b = s.blk[w.bi]
        kb = b.k[w.i]
    if w.ls >= 0:
        kl = (s.lo + w.ls) * s.g
        if b == NULL or kl > kb:
            p = s.pages[w.ls >> 6]
            w.in_ladder = True
            w.k = kl
            w.q = p.s[w.ls & 63].q
            w.pdec = p.s[w.ls & 63].pdec
            w.qdec = p.s[w.ls & 63].qdec
            return True
    if b == NULL:
        return False
    w.in_ladder = False
    w.k = kb
    w.q = b.q[w.i]
    w.pdec = b.dd[w.i][0]
    w.qdec = b.dd[w.i][1]
    return True

cdef inline bint walk_start(const Side *s, Walk *w) noexcept nogil:
    w.bi = s.nb - 1
    w.i = s.blk[w.bi].n - 1 if s.nb else 0
    w.ls = s.ltop if s.lw else -1
    return walk_pick(s, w)

cdef inline bint walk_next(const Side *s, Walk *w) noexcept nogil:
    if w.in_ladder:
        w.ls = ladder_below(s, w.ls)
    else:
        w.i -= 1
        if w.i < 0:
            w.bi -= 1
            if w.bi >= 0:
                w.i = s.blk[w.bi].n - 1
    return walk_pick(s, w)


cdef int side_recentre(Side *s, int64_t lo, int w) noexcept nogil:
    """Move the ladder window to grid index ``lo`` with ``w`` slots (0: no
    ladder) and redistribute every level.  -1 on no memory: before anything moved
    the side is unchanged; later, it holds part of its levels, still consistent,
    and every caller then drops sync (a snapshot rebuilds it)."""
    cdef Level *tmp = NULL
    cdef int m = 0
    cdef int j, slot
    cdef Walk wk
    cdef bint more
    if s.n:
        tmp = <Level *>malloc(<size_t>s.n * sizeof(Level))
        if tmp == NULL:
            return -1
        more = walk_start(s, &wk)
        while more and m < s.n:
            tmp[m].px = wk.k
            tmp[m].qty = wk.q
            tmp[m].pdec = wk.pdec
            tmp[m].qdec = wk.qdec
            m += 1
            more = walk_next(s, &wk)
    side_clear(s)                           # every level is in tmp now
    if w and ladder_alloc(s, w) < 0:
        free(tmp)
        return -1
    s.lw = w
    s.lo = lo
    for j in range(m - 1, -1, -1):          # ascending keys
        slot = ladder_slot(s, tmp[j].px)
        if slot >= 0:
            if ladder_put(s, slot, tmp[j].qty, tmp[j].pdec, tmp[j].qdec) < 0:
                free(tmp)
                return -1
        elif side_append(s, tmp[j].px, tmp[j].qty, tmp[j].pdec, tmp[j].qdec) < 0:
            free(tmp)
            return -1
    free(tmp)
    return 0


cdef inline void top_text(TopList *L, int s, int64_t px, int64_t q, int8_t pdec,
                          int8_t qdec, int ps, int qs) noexcept nogil:
    cdef TopText *t = &L.text[s]
    cdef int pos = format_num(px, ps, pdec, t.txt)
    t.txt[pos] = b':'
    pos += 1
    pos += format_num(q, qs, qdec, t.txt + pos)
    t.len = <uint8_t>pos


cdef inline bint plain_number(const char *p, int n) noexcept nogil:
    """True when ``p[:n]`` is written the way ``format_num`` writes it: digits with no
    leading zero (except a lone one before the point), then optionally a point and
    at least one digit.  Such a text can be used as it is."""
    cdef int i = 0
    cdef bint point = False
    if p == NULL or n < 1 or n > 40 or p[0] == b'.':
        return False
    if p[0] == b'0' and n > 1 and p[1] != b'.':
        return False
    for i in range(n):
        if p[i] == b'.':
            if point or i == n - 1:
                return False
            point = True
        elif p[i] < b'0' or p[i] > b'9':
            return False
    return True


cdef inline void top_level_text(TopList *L, int s, const Level *lv, int ps,
                                int qs) noexcept nogil:
    """The list text of a level: the exchange's own text when it is plain, else
    formatted from the numbers."""
    cdef TopText *t = &L.text[s]
    if plain_number(lv.ptxt, lv.plen) and plain_number(lv.qtxt, lv.qlen):
        xcol_copy16(t.txt, lv.ptxt, lv.plen)
        t.txt[lv.plen] = b':'
        xcol_copy16(t.txt + lv.plen + 1, lv.qtxt, lv.qlen)
        t.len = <uint8_t>(lv.plen + 1 + lv.qlen)
    else:
        top_text(L, s, lv.px, lv.qty, lv.pdec, lv.qdec, ps, qs)


cdef void top_build(TopList *L, const Side *s, int sign, int ps, int qs) noexcept nogil:
    """Fill the list with the side's best TOP_CAP levels, walking the book."""
    cdef Walk w
    cdef bint more = walk_start(s, &w)
    cdef int i
    L.n = 0
    for i in range(TOP_CAP):
        L.free[i] = <uint8_t>(TOP_CAP - 1 - i)
    L.nfree = TOP_CAP
    while more and L.n < TOP_CAP:
        L.nfree -= 1
        L.slot[L.n] = L.free[L.nfree]
        L.k[L.n] = w.k
        top_text(L, L.slot[L.n], sign * w.k, w.q, w.pdec, w.qdec, ps, qs)
        L.n += 1
        more = walk_next(s, &w)
    L.complete = not more


cdef inline bint top_apply(TopList *L, int64_t key, const Level *lv, int ps,
                           int qs) noexcept nogil:
    """Apply one level change (already applied to the book) to the list; True when
    the list changed or must be rebuilt."""
    cdef int i = 0
    cdef int s
    cdef int64_t q = lv.qty
    if not L.complete:
        if L.n < CRC_DEPTH:
            return True                # too short: rebuilt at the next checksum
        if key < L.k[L.n - 1]:
            return False               # below the list: not among its levels
    while i < L.n and L.k[i] > key:
        i += 1
    if i < L.n and L.k[i] == key:
        s = L.slot[i]
        if q == 0:
            L.free[L.nfree] = <uint8_t>s
            L.nfree += 1
            memmove(&L.k[i], &L.k[i + 1], <size_t>(L.n - i - 1) * sizeof(int64_t))
            memmove(&L.slot[i], &L.slot[i + 1], <size_t>(L.n - i - 1))
            L.n -= 1
        else:
            top_level_text(L, s, lv, ps, qs)
        return True
    if q == 0:
        return False                   # removing an unknown level
    if i == TOP_CAP:
        L.complete = False             # a new level below a full list
        return False
    if L.n == TOP_CAP:                 # the last level leaves the list
        L.n -= 1
        L.free[L.nfree] = L.slot[L.n]
        L.nfree += 1
        L.complete = False
    L.nfree -= 1
    s = L.free[L.nfree]
    memmove(&L.k[i + 1], &L.k[i], <size_t>(L.n - i) * sizeof(int64_t))
    memmove(&L.slot[i + 1], &L.slot[i], <size_t>(L.n - i))
    L.k[i] = key
    L.slot[i] = <uint8_t>s
    L.n += 1
    top_level_text(L, s, lv, ps, qs)
    return True


cdef inline int64_t _gcd(int64_t a, int64_t b) noexcept nogil:
    cdef int64_t t
    while b:
        t = a % b
        a = b
        b = t
    return a


cdef inline int side_follow(Side *s) noexcept nogil:
    """Re-centre the ladder when the best level has left the upper middle of its
    window; -1 on no memory.

    Moving the window rebuilds the side (tens of microseconds for thousands of
    levels), so it backs off: after a move it waits ``lgap`` updates of the side
    (16 at first), and a move that comes soon after the last one doubles that wait
    (up to 65,536 updates).  A best level that keeps jumping (a stale far level, a
    crossed book) then costs a rebuild every 65,536 updates at most, while a window
    that follows a trending price stays cheap."""
    cdef int64_t k, q, slot
    if s.lw == 0:
        return 0
    if s.lsince < 1 << 30:
        s.lsince += 1
    if s.lwait > 0:
        s.lwait -= 1
        return 0
    if not side_best(s, &k, &q) or grid_index(s, k) == INT64_MIN:
        return 0
    slot = grid_index(s, k) - s.lo
    if (s.lw >> 1) <= slot <= s.lw - (s.lw >> 4):
        return 0
    if s.lgap < 16:
        s.lgap = 16
    elif s.lsince < 64 * s.lgap:
        s.lgap = min(s.lgap * 2, 65536)
    else:
        s.lgap = 16
    s.lwait = s.lgap
    s.lsince = 0
    s.recentres += 1
    return side_recentre(s, grid_index(s, k) - (s.lw - (s.lw >> 2)), s.lw)


cdef int side_check(const Side *s) noexcept nogil:
    """0 when the side's invariants hold, else the number of the first broken one:
    1 block size, 2 directory key, 3 key order, 4 size not positive, 5 a block key
    that belongs in the ladder, 6 ladder bit, 7 ladder count, 8 ladder top,
    9 level count."""
    cdef int bi, i, pi
    cdef int npages = 0
    cdef Page *pg
    cdef int total = 0
    cdef int lcount = 0
    cdef int top = -1
    cdef bint prev_set = False
    cdef int64_t prev = 0
    cdef Blk *b
    for bi in range(s.nb):
        b = s.blk[bi]
        if b.n < 1 or b.n > BLK:
            return 1
        if s.first[bi] != b.k[0]:
            return 2
        for i in range(b.n):
            if prev_set and b.k[i] <= prev:
                return 3
            prev = b.k[i]
            prev_set = True
            if b.q[i] <= 0:
                return 4
            if ladder_slot(s, b.k[i]) >= 0:
                return 5
        total += b.n
    for pi in range(s.lw >> 6):
        pg = s.pages[pi]
        if ((s.pbits[pi >> 6] >> (pi & 63)) & 1) != (pg != NULL):
            return 6
        if pg == NULL:
            if s.lbits[pi]:
                return 6
            continue
        npages += 1
        if s.lbits[pi] == 0:
            return 6
        for i in range(64):
            if (s.lbits[pi] >> i) & 1:
                if pg.s[i].q <= 0:
                    return 4
                lcount += 1
                top = (pi << 6) + i
    if npages != s.npages:
        return 7
    if lcount != s.ln:
        return 7
    if top != s.ltop:
        return 8
    if total + s.ln != s.n:
        return 9
    return 0


# --------------------------------------------------------------------------

@cython.final
cdef class Book:
    """One instrument's L2 book on one channel, with its venue's sync rules.

    Prices and sizes are int64 at the instrument's fixed scale
    (``price_scale`` / ``qty_scale`` decimals).  The Python methods below
    are for the control plane and tests; the engine drives the book from C.
    """

    def __cinit__(self, str symbol, int mode, int price_scale=8, int qty_scale=8,
                  int max_pending=100000):
        if mode < MODE_BINANCE_SPOT or mode > MODE_SNAPSHOT:
            raise ValueError(f"unknown book mode {mode}")
        if not (0 <= price_scale <= 18 and 0 <= qty_scale <= 18):
            raise ValueError("price_scale and qty_scale must be within 0..18")
        self.symbol = symbol
        self._symb = symbol.encode("utf-8", "replace")
        self.mode = mode
        self.price_scale = price_scale
        self.qty_scale = qty_scale
        cdef int i
        for i in range(19):
            self.pmul[i] = xcol_pow10[price_scale - i] if i <= price_scale else 0
            self.qmul[i] = xcol_pow10[qty_scale - i] if i <= qty_scale else 0
        self.fuse = False
        self.max_pending = max_pending
        # books5 / bbo-tbt replace the whole book on every message: no ladder
        self.ladder = 0 if mode == MODE_SNAPSHOT else 16384
        self.grid = 0
        self.state = ST_WAIT_SNAPSHOT
        self.last_seq = -1
        self.snapshot_seq = -1
        memset(&self.bids, 0, sizeof(Side))
        memset(&self.asks, 0, sizeof(Side))
        self.bids.ltop = -1
        self.asks.ltop = -1
        self.pend = NULL
        self.pool = NULL
        self.trace = NULL

    def __dealloc__(self):
        side_free(&self.bids)
        side_free(&self.asks)
        free(self.pend)
        free(self.pool)
        free(self.trace)
        free(self.tops)

    # ---------------------------------------------------------------- C API

    cdef int _scale_levels(self, Level *lv, int n) noexcept:
        """Rescale levels in place from as-written mantissas to the book scale."""
        cdef int i
        cdef int64_t v
        for i in range(n):
            if to_scale(lv[i].px, lv[i].pdec, self.price_scale, &v) != NUM_OK or v <= 0:
                return -1
            lv[i].px = v
            if lv[i].flag == LV_DELETE:
                lv[i].qty = 0
            elif to_scale(lv[i].qty, lv[i].qdec, self.qty_scale, &v) != NUM_OK:
                return -1
            else:
                lv[i].qty = v
        return 0

    cdef bint _fusable(self, const Event *ev) noexcept:
        """Whether the event's levels can be rescaled while they are applied rather than
        checked and rescaled first: every one was read by its shape (at most 8 digits,
        decimals known, see Event.lv_shaped), none has more decimals than the scale, no
        price is 0, and 8 digits times 10 ** (scale - fewest decimals) fits an int64."""
        cdef uint32_t pm = ev.lv_pdecs
        cdef uint32_t qm = ev.lv_qdecs
        if ev.lv_shaped != ev.nbids + ev.nasks or ev.lv_shaped == 0 or ev.lv_zero_px:
            return False
        return ((pm >> (self.price_scale + 1)) == 0 and (qm >> (self.qty_scale + 1)) == 0
                and self.price_scale - <int>__builtin_ctz(pm) <= 10
                and self.qty_scale - <int>__builtin_ctz(qm) <= 10)

    cdef int _apply_levels(self, Level *bids, int nb, Level *asks, int na) noexcept:
        cdef int i
        cdef const int64_t *pm = NULL
        cdef const int64_t *qm = NULL
        if self.fuse:
            pm = &self.pmul[0]
            qm = &self.qmul[0]
        if (side_apply(&self.bids, bids, nb, 1, pm, qm) < 0
                or side_apply(&self.asks, asks, na, -1, pm, qm) < 0):
            return -1
        if self.crc_on and self.top_ok:
            for i in range(nb):
                if top_apply(&self.tops[0], bids[i].px, &bids[i], self.price_scale,
                             self.qty_scale):
                    self.crc_dirty = True
            for i in range(na):
                if top_apply(&self.tops[1], -asks[i].px, &asks[i], self.price_scale,
                             self.qty_scale):
                    self.crc_dirty = True
        if side_follow(&self.bids) < 0 or side_follow(&self.asks) < 0:
            return -1
        if XCOL_DEBUG:
            self._check()
        return 0

    cdef int _load(self, Level *bids, int nb, Level *asks, int na) noexcept:
        cdef int64_t g = self.grid
        cdef Walk w
        cdef int i, n
        cdef bint more
        if side_load(&self.bids, bids, nb, 1) < 0:
            return -1
        if side_load(&self.asks, asks, na, -1) < 0:
            return -1
        if g <= 0 and self.ladder > 0:
            # The grid is the gcd of the prices near the best (at most 64 a side);
            # a coarser guess than the real tick only makes the ladder cover less.
            g = 0
            for i in range(2):
                more = walk_start(&self.bids if i == 0 else &self.asks, &w)
                n = 0
                while more and n < 64:
                    g = _gcd(g, w.k if w.k > 0 else -w.k)
                    n += 1
                    more = walk_next(&self.bids if i == 0 else &self.asks, &w)
        self.bids.g = self.asks.g = g
        self.bids.ginv = self.asks.ginv = 1.0 / g if g > 0 else 0.0
        self.crc_dirty = True
        self.top_ok = False
        if self._place(&self.bids) < 0 or self._place(&self.asks) < 0:
            return -1
        if XCOL_DEBUG:
            self._check()
        return 0

    cdef int _place(self, Side *side) noexcept:
        """Put the ladder window around the side's best level (or switch it off)."""
        cdef int w = ((self.ladder + 63) // 64) * 64 if self.ladder > 0 else 0
        cdef int64_t k, q
        side.lwait = 0
        if (w == 0 or side.g <= 0 or not side_best(side, &k, &q)
                or grid_index(side, k) == INT64_MIN):
            return 0                # blocks only (side_load left the ladder off)
        return side_recentre(side, grid_index(side, k) - (w - (w >> 2)), w)

    cdef void _check(self) noexcept:
        """Abort with a message when a side's invariants are broken (debug builds)."""
        cdef int c = side_check(&self.bids)
        cdef int a = side_check(&self.asks)
        if c or a:
            fprintf(stderr, b"xcol: book %s: invariant broken (bids %d, asks %d)\n",
                    <const char *>self._symb, c, a)
            abort()

    cdef void _record(self) noexcept:
        cdef int64_t *p
        cdef int cap
        if self.ntrace == self.trace_cap:
            cap = self.trace_cap * 2 if self.trace_cap else 1024
            p = <int64_t *>realloc(self.trace, <size_t>cap * 5 * sizeof(int64_t))
            if p == NULL:
                return
            self.trace = p
            self.trace_cap = cap
        p = self.trace + 5 * self.ntrace
        p[0] = self.last_seq
        if not side_best(&self.bids, &p[1], &p[2]):
            p[1] = 0
            p[2] = 0
        if side_best(&self.asks, &p[3], &p[4]):
            p[3] = -p[3]
        else:
            p[3] = 0
            p[4] = 0
        self.ntrace += 1

    cdef void _lose_sync(self) noexcept:
        self.state = ST_WAIT_SNAPSHOT
        self.gaps += 1
        self.resync_requested = True

    cdef int _buffer(self, Event *ev) noexcept:
        """Hold a depth event (before the snapshot, or ahead of the book) in
        sequence order; 1 if that update is already held, 0 if stored, -1 on
        no memory.  When full, the oldest half is dropped."""
        cdef int need = ev.nbids + ev.nasks
        cdef int cap, i, j, shift, total
        cdef Pending *pp
        cdef Level *lp
        cdef Level *tmp
        # position: after every held event with a lower sequence
        i = self.npend
        while i > 0 and self.pend[i - 1].seq >= ev.seq:
            if self.pend[i - 1].seq == ev.seq:
                return 1
            i -= 1
        if self.npend >= self.max_pending and self.npend > 0:
            # Drop the oldest half: a snapshot newer than them is needed anyway.
            shift = self.npend // 2 if self.npend > 1 else 1
            memmove(self.pend, self.pend + shift, <size_t>(self.npend - shift) * sizeof(Pending))
            self.npend -= shift
            self.pending_dropped += shift
            i = i - shift if i > shift else 0
            total = 0
            for j in range(self.npend):
                total += self.pend[j].nbids + self.pend[j].nasks
            tmp = <Level *>malloc(<size_t>(total if total else 1) * sizeof(Level))
            if tmp == NULL:
                return -1
            total = 0
            for j in range(self.npend):
                pp = &self.pend[j]
                memcpy(tmp + total, self.pool + pp.off,
                       <size_t>(pp.nbids + pp.nasks) * sizeof(Level))
                pp.off = total
                total += pp.nbids + pp.nasks
            memcpy(self.pool, tmp, <size_t>total * sizeof(Level))
            free(tmp)
            self.npool = total
        if self.npend == self.pend_cap:
            cap = self.pend_cap * 2 if self.pend_cap else 64
            pp = <Pending *>realloc(self.pend, <size_t>cap * sizeof(Pending))
            if pp == NULL:
                return -1
            self.pend = pp
            self.pend_cap = cap
        if self.npool + need > self.pool_cap:
            cap = self.pool_cap * 2 if self.pool_cap else 1024
            while cap < self.npool + need:
                cap *= 2
            lp = <Level *>realloc(self.pool, <size_t>cap * sizeof(Level))
            if lp == NULL:
                return -1
            self.pool = lp
            self.pool_cap = cap
        if i < self.npend:
            memmove(self.pend + i + 1, self.pend + i, <size_t>(self.npend - i) * sizeof(Pending))
        pp = &self.pend[i]
        pp.first_seq = ev.first_seq
        pp.seq = ev.seq
        pp.prev_seq = ev.prev_seq if ev.has_prev else -1
        pp.exch_ts = ev.exch_ts
        pp.nbids = ev.nbids
        pp.nasks = ev.nasks
        pp.off = self.npool
        pp.rx = self.now
        pp.line = self.now_line
        pp.checksum = ev.checksum
        pp.has_checksum = ev.has_checksum
        if ev.nbids:
            memcpy(self.pool + self.npool, ev.bids, <size_t>ev.nbids * sizeof(Level))
        if ev.nasks:
            memcpy(self.pool + self.npool + ev.nbids, ev.asks, <size_t>ev.nasks * sizeof(Level))
        for i in range(self.npool, self.npool + ev.nbids + ev.nasks):
            # the frame the texts pointed into is gone once this returns
            self.pool[i].ptxt = NULL
            self.pool[i].qtxt = NULL
        self.npool += need
        self.npend += 1
        return 0

    cdef void _ring(self, int64_t seq, int64_t rx) noexcept:
        cdef unsigned int i = self.ring_pos & 255
        self.ring_seq[i] = seq
        self.ring_rx[i] = rx
        self.ring_pos += 1

    cdef int64_t winner_rx(self, int64_t seq) noexcept:
        """When the first copy of update ``seq`` arrived (-1 if too old)."""
        cdef unsigned int i, n = self.ring_pos if self.ring_pos < 256 else 256
        cdef unsigned int at
        for i in range(n):
            at = (self.ring_pos - 1 - i) & 255
            if self.ring_seq[at] == seq:
                return self.ring_rx[at]
            if self.ring_seq[at] < seq:
                return -1
        return -1

    cdef int drain_next(self, Event *out, int *line) noexcept:
        """Apply the oldest held event if it now chains.  AR_APPLIED fills
        ``out`` (header and levels, valid until the next event is buffered),
        AR_DUPLICATE drops it, AR_HELD leaves it (still ahead); -1 if none.
        ``line`` gets the line that delivered it first."""
        cdef Pending *pp
        cdef int r
        if self.npend == 0 or self.state != ST_SYNCED:
            return -1
        pp = &self.pend[0]
        if self.mode == MODE_BINANCE_SPOT or self.mode == MODE_BINANCE_FUTURES:
            r = self._binance(pp.first_seq, pp.seq, pp.prev_seq, self.pool + pp.off,
                              pp.nbids, self.pool + pp.off + pp.nbids, pp.nasks)
        elif pp.seq <= self.last_seq:
            self.duplicates += 1
            r = AR_DUPLICATE
        elif pp.prev_seq > self.last_seq:
            return AR_HELD
        elif pp.prev_seq < self.last_seq or self._apply_levels(
                self.pool + pp.off, pp.nbids, self.pool + pp.off + pp.nbids, pp.nasks) < 0:
            self._lose_sync()
            return AR_GAP
        else:
            self.last_seq = pp.seq
            self.updates += 1
            if self.trace_on:
                self._record()
            r = AR_APPLIED
        if r == AR_HELD:
            return AR_HELD
        if r == AR_GAP:
            return AR_GAP
        out.kind = EV_DEPTH
        out.first_seq = pp.first_seq
        out.seq = pp.seq
        out.prev_seq = pp.prev_seq
        out.has_seq = True
        out.has_prev = pp.prev_seq >= 0
        out.exch_ts = pp.exch_ts
        out.bids = self.pool + pp.off
        out.nbids = pp.nbids
        out.asks = self.pool + pp.off + pp.nbids
        out.nasks = pp.nasks
        line[0] = pp.line
        out.err_detail = 0
        if r == AR_APPLIED:
            self.held_filled += 1
            self.exch_ts = pp.exch_ts
            self._ring(pp.seq, pp.rx)
        out.has_checksum = pp.has_checksum
        out.checksum = pp.checksum
        memmove(self.pend, self.pend + 1, <size_t>(self.npend - 1) * sizeof(Pending))
        self.npend -= 1
        if self.npend == 0:
            self.npool = 0
        if r == AR_APPLIED and self.mode == MODE_OKX and self._okx_check(out) < 0:
            return AR_CHECKSUM
        return r

    cdef int depth(self, bint bids) noexcept:
        return self.bids.n if bids else self.asks.n

    cdef int export_levels(self, bint bids, Level *out, int cap) noexcept:
        """Up to ``cap`` levels of one side, best first, at the book's scales
        (``pdec``/``qdec``: the decimals the exchange wrote); returns the count."""
        cdef Side *side = &self.bids if bids else &self.asks
        cdef Walk w
        cdef int n = 0
        cdef bint more = walk_start(side, &w)
        while more and n < cap:
            out[n].px = w.k if bids else -w.k
            out[n].qty = w.q
            out[n].pdec = w.pdec
            out[n].qdec = w.qdec
            out[n].flag = 0
            out[n].ptxt = NULL
            out[n].qtxt = NULL
            n += 1
            more = walk_next(side, &w)
        return n

    cdef int expire(self, int64_t now) noexcept:
        """Turn a hole no line filled within the reorder window into a gap (1)."""
        if (self.npend == 0 or self.state != ST_SYNCED
                or now - self.pend[0].rx < self.reorder_ns):
            return 0
        self.held_expired += 1
        self._lose_sync()
        if self.mode != MODE_BINANCE_SPOT and self.mode != MODE_BINANCE_FUTURES:
            # the in-stream snapshot that resyncs OKX/Deribit replaces the chain they
            # belong to: they can never be applied (Binance keeps them for its REST
            # snapshot, which may still bridge them)
            self.pending_expired += self.npend
            self.npend = 0
            self.npool = 0
        return 1

    cdef int close_pending(self) noexcept:
        """Discard every held/buffered event (the engine is closing); returns how many."""
        cdef int n = self.npend
        self.pending_closed += n
        self.npend = 0
        self.npool = 0
        return n

    cdef int _binance(self, int64_t first, int64_t seq, int64_t prev,
                      Level *bids, int nb, Level *asks, int na) noexcept:
        """Apply one (already scaled) Binance depth event in SYNCING/SYNCED."""
        cdef int64_t last = self.last_seq
        cdef bint ok
        if self.mode == MODE_BINANCE_SPOT:
            if seq <= last:
                self.duplicates += 1
                return AR_DUPLICATE
            ok = first <= last + 1
        else:
            if self.state == ST_SYNCING:
                if seq < last:
                    self.duplicates += 1
                    return AR_DUPLICATE
                ok = first <= last or prev == last
            else:
                if seq <= last:
                    self.duplicates += 1
                    return AR_DUPLICATE
                ok = prev == last
        if not ok:
            if self.state == ST_SYNCED and self.reorder_ns > 0 and (
                    first > last + 1 if self.mode == MODE_BINANCE_SPOT else prev > last):
                return AR_HELD          # ahead: another line may fill the hole
            self._lose_sync()
            return AR_GAP
        if self._apply_levels(bids, nb, asks, na) < 0:
            self._lose_sync()
            return AR_GAP
        self.state = ST_SYNCED
        self.last_seq = seq
        self.updates += 1
        if self.trace_on:
            self._record()
        return AR_APPLIED

    cdef int apply_rest_snapshot(self, Event *ev) noexcept:
        """Load a REST depth snapshot and replay the events buffered before it."""
        cdef int i, r
        cdef Pending *pp
        cdef int result = AR_SNAPSHOT
        cdef int applied = 0
        if self.mode != MODE_BINANCE_SPOT and self.mode != MODE_BINANCE_FUTURES:
            return AR_UNSYNCED
        if self.state != ST_WAIT_SNAPSHOT and ev.seq <= self.last_seq:
            self.duplicates += 1
            return AR_DUPLICATE           # the book is already past it
        if (self._scale_levels(ev.bids, ev.nbids) < 0
                or self._scale_levels(ev.asks, ev.nasks) < 0):
            self.bad_numbers += 1
            return AR_BAD_NUMBER
        if self._load(ev.bids, ev.nbids, ev.asks, ev.nasks) < 0:
            return AR_BAD_NUMBER
        self.snapshots += 1
        self.snapshot_seq = ev.seq
        self.last_seq = ev.seq
        self.exch_ts = ev.exch_ts
        self.state = ST_SYNCING
        self.resync_requested = False
        for i in range(self.npend):
            pp = &self.pend[i]
            r = self._binance(pp.first_seq, pp.seq, pp.prev_seq,
                              self.pool + pp.off, pp.nbids,
                              self.pool + pp.off + pp.nbids, pp.nasks)
            if r == AR_GAP or r == AR_HELD:
                # AR_GAP: the snapshot is older than what the buffer still holds: keep
                # the rest buffered and wait for a newer snapshot.  AR_HELD: a hole
                # inside the buffer once synced: keep the rest held for what is left of
                # the reorder window, counted from each one's arrival (another line may
                # still fill it; a hole older than the window expires at the next poll).
                memmove(self.pend, self.pend + i, <size_t>(self.npend - i) * sizeof(Pending))
                self.npend -= i
                if r == AR_GAP:
                    result = AR_GAP
                break
            if r == AR_APPLIED:
                applied += 1
            else:
                self.pending_dups += 1        # AR_DUPLICATE: the snapshot already has it
        else:
            self.npend = 0
            self.npool = 0
        # The events applied are in the snapshot record the engine publishes; after a gap
        # that record is not published and the next snapshot supersedes them.
        if result == AR_SNAPSHOT:
            self.pending_folded += applied
        else:
            self.pending_discarded += applied
        # On a gap (or a hole) the pool is untouched, so the kept events' offsets stay valid.
        return result

    cdef int apply(self, Event *ev) noexcept:
        """Apply a depth or in-stream snapshot event; returns an ApplyResult."""
        cdef int r
        cdef int mode = self.mode
        cdef bint old
        cdef bint fuse = False
        if ((mode == MODE_BINANCE_SPOT or mode == MODE_BINANCE_FUTURES)
                and ev.kind == EV_DEPTH and self.state != ST_WAIT_SNAPSHOT
                and not self.crc_on and self._fusable(ev)):
            # (crc_on: the checksum lists take the levels' prices at the book's scale;
            # only OKX books keep them)
            # the levels are rescaled as they are applied, in one pass (_fusable)
            fuse = True
        elif (self._scale_levels(ev.bids, ev.nbids) < 0
                or self._scale_levels(ev.asks, ev.nasks) < 0):
            self.bad_numbers += 1
            return AR_BAD_NUMBER
        if mode == MODE_BINANCE_SPOT or mode == MODE_BINANCE_FUTURES:
            if ev.kind != EV_DEPTH:
                return AR_UNSYNCED
            if self.state == ST_WAIT_SNAPSHOT:
                r = self._buffer(ev)
                if r == 1:
                    self.duplicates += 1
                    return AR_DUPLICATE
                if r < 0:
                    self.pending_failed += 1
                return AR_BUFFERED
            self.fuse = fuse
            r = self._binance(ev.first_seq, ev.seq, ev.prev_seq if ev.has_prev else -2,
                              ev.bids, ev.nbids, ev.asks, ev.nasks)
            self.fuse = False
            if fuse:
                if r == AR_HELD or r == AR_GAP:
                    # kept for later: at the book's scale, as every held event (this
                    # cannot fail, see _fusable)
                    self._scale_levels(ev.bids, ev.nbids)
                    self._scale_levels(ev.asks, ev.nasks)
                else:
                    ev.lv_raw = True    # px/qty stay as written
                    if r == AR_APPLIED:
                        self.rescaled_applying += 1
            if r == AR_APPLIED:
                self.exch_ts = ev.exch_ts
                self._ring(ev.seq, self.now)
            elif r == AR_HELD:
                r = self._buffer(ev)
                if r == 1:
                    self.duplicates += 1
                    return AR_DUPLICATE
                if r < 0:
                    self.pending_failed += 1
                self.held += 1
                return AR_HELD
            elif r == AR_GAP:
                # the new snapshot will need it; AR_BUFFERED/AR_HELD/AR_GAP events are
                # the buffer's to account for (held, or counted here if not stored)
                r = self._buffer(ev)
                if r == 1:
                    self.duplicates += 1
                    self.pending_dups += 1
                elif r < 0:
                    self.pending_failed += 1
                return AR_GAP
            return r
        if ev.kind == EV_SNAPSHOT:
            # another line's (re)subscription snapshot, or (books5 and other books that
            # are whole snapshots) another line's copy of one already loaded.  In a
            # snapshot book the exchange time decides and the sequence only within one
            # millisecond: OKX may reset seqId.
            if self.state == ST_SYNCED and ev.has_seq and self.has_seq:
                if mode == MODE_SNAPSHOT and ev.exch_ts > 0 and self.exch_ts > 0:
                    old = ev.exch_ts < self.exch_ts or (ev.exch_ts == self.exch_ts
                                                        and ev.seq <= self.last_seq)
                else:
                    old = ev.seq <= self.last_seq
                if old:
                    self.duplicates += 1
                    return AR_DUPLICATE
            if self._load(ev.bids, ev.nbids, ev.asks, ev.nasks) < 0:
                return AR_BAD_NUMBER
            self.pending_discarded += self.npend
            self.npend = 0              # held updates belong to the old chain
            self.npool = 0
            self.snapshots += 1
            self.state = ST_SYNCED
            self.resync_requested = False
            self.has_seq = ev.has_seq
            self.last_seq = ev.seq if ev.has_seq else -1
            self.snapshot_seq = self.last_seq
            self.exch_ts = ev.exch_ts
            if mode == MODE_OKX and self._okx_check(ev) < 0:
                return AR_CHECKSUM
            self.updates += 1
            if self.trace_on:
                self._record()
            return AR_SNAPSHOT
        if ev.kind != EV_DEPTH or mode == MODE_SNAPSHOT:
            return AR_UNSYNCED
        if self.state != ST_SYNCED:
            self.unsynced_drops += 1
            return AR_UNSYNCED
        if ev.has_seq and ev.has_prev and self.last_seq >= 0:
            if ev.prev_seq != self.last_seq:
                if ev.seq <= self.last_seq and ev.prev_seq < self.last_seq:
                    self.duplicates += 1
                    return AR_DUPLICATE
                if self.reorder_ns > 0 and ev.prev_seq > self.last_seq:
                    # ahead: another line may fill the hole within the window
                    r = self._buffer(ev)
                    if r == 1:
                        self.duplicates += 1
                        return AR_DUPLICATE
                    if r == 0:
                        self.held += 1
                        return AR_HELD
                self._lose_sync()
                return AR_GAP
        elif mode == MODE_DERIBIT:
            # Deribit changes always carry prev_change_id.
            self._lose_sync()
            return AR_GAP
        if self._apply_levels(ev.bids, ev.nbids, ev.asks, ev.nasks) < 0:
            self._lose_sync()
            return AR_GAP
        if ev.has_seq:
            self.last_seq = ev.seq
            self._ring(ev.seq, self.now)
        self.exch_ts = ev.exch_ts
        if mode == MODE_OKX and self._okx_check(ev) < 0:
            return AR_CHECKSUM
        self.updates += 1
        if self.trace_on:
            self._record()
        return AR_APPLIED

    cdef int _okx_check(self, Event *ev) noexcept:
        """Verify OKX's checksum (skipped when absent or 0); -1 on mismatch."""
        if not ev.has_checksum or ev.checksum == 0:
            return 0
        self.checksums_checked += 1
        if <int32_t>self._crc_cached() == ev.checksum:
            return 0
        self.checksums_failed += 1
        self._lose_sync()
        return -1

    cdef uint32_t _crc_cached(self) noexcept:
        """``crc_top(CRC_DEPTH)`` from the lists of best levels (rebuilt from the book
        when a snapshot replaced it or deletions left a list too short)."""
        cdef char buf[2 * CRC_DEPTH * 96]
        cdef TopList *L
        cdef TopText *t
        cdef int side, i, pos
        cdef uint32_t crc
        if self.crc_on and not self.crc_dirty:
            self.checksums_unchanged += 1
            return self.crc_val
        if self.tops == NULL:
            self.tops = <TopList *>malloc(2 * sizeof(TopList))
            if self.tops == NULL:
                return self.crc_top(CRC_DEPTH)
            self.top_ok = False
        for side in range(2):
            L = &self.tops[side]
            if not self.top_ok or (L.n < CRC_DEPTH and not L.complete):
                top_build(L, &self.bids if side == 0 else &self.asks, 1 if side == 0 else -1,
                          self.price_scale, self.qty_scale)
        self.top_ok = True
        pos = 0
        for i in range(CRC_DEPTH):
            for side in range(2):
                L = &self.tops[side]
                if i < L.n:
                    t = &L.text[L.slot[i]]
                    if pos:
                        buf[pos] = b':'
                        pos += 1
                    xcol_copy16(buf + pos, t.txt, t.len)
                    pos += t.len
        crc = crc32_update(0, <const uint8_t *>buf, pos)
        if XCOL_DEBUG and crc != self.crc_top(CRC_DEPTH):
            fprintf(stderr, b"xcol: book %s: checksum lists differ from the book\n",
                    <const char *>self._symb)
            abort()
        self.crc_val = crc
        self.crc_on = True
        self.crc_dirty = False
        return crc

    cdef uint32_t crc_top(self, int depth) noexcept:
        """CRC32 of ``bid1px:bid1sz:ask1px:ask1sz:...`` over the top ``depth``."""
        cdef char buf[4096]
        cdef int pos = 0
        cdef int i
        cdef uint32_t crc = 0
        cdef Walk wb, wa
        cdef bint hb = walk_start(&self.bids, &wb)
        cdef bint ha = walk_start(&self.asks, &wa)
        cdef bint first = True
        for i in range(depth):
            if not hb and not ha:
                break
            if pos > 4096 - 200:
                crc = crc32_update(crc, <const uint8_t *>buf, pos)
                pos = 0
            if hb:
                if not first:
                    buf[pos] = b':'
                    pos += 1
                first = False
                pos += format_num(wb.k, self.price_scale, wb.pdec, buf + pos)
                buf[pos] = b':'
                pos += 1
                pos += format_num(wb.q, self.qty_scale, wb.qdec, buf + pos)
                hb = walk_next(&self.bids, &wb)
            if ha:
                if not first:
                    buf[pos] = b':'
                    pos += 1
                first = False
                pos += format_num(-wa.k, self.price_scale, wa.pdec, buf + pos)
                buf[pos] = b':'
                pos += 1
                pos += format_num(wa.q, self.qty_scale, wa.qdec, buf + pos)
                ha = walk_next(&self.asks, &wa)
        return crc32_update(crc, <const uint8_t *>buf, pos)

    # ---------------------------------------------------------- Python API

    @property
    def synced(self) -> bool:
        """True when the book is in sync with the exchange and may be published."""
        return self.state == ST_SYNCED

    @property
    def state_name(self) -> str:
        return ("wait_snapshot", "syncing", "synced")[self.state]

    @property
    def last_seq(self) -> int:
        """The exchange sequence of the last applied update (-1 if none)."""
        return self.last_seq

    @property
    def pending(self) -> int:
        """Events buffered while waiting for a snapshot."""
        return self.npend

    @property
    def exch_ts(self) -> int:
        return self.exch_ts

    def depth(self) -> tuple:
        """(number of bid levels, number of ask levels)."""
        return (self.bids.n, self.asks.n)

    def _fmt_px(self, int64_t v, int dec) -> str:
        cdef char buf[48]
        cdef int n = format_num(v, self.price_scale, dec, buf)
        return buf[:n].decode("ascii")

    def _fmt_qty(self, int64_t v, int dec) -> str:
        cdef char buf[48]
        cdef int n = format_num(v, self.qty_scale, dec, buf)
        return buf[:n].decode("ascii")

    cdef list _walk(self, Side *side, int sign, int n, bint raw):
        cdef Walk w
        cdef bint more = walk_start(side, &w)
        out = []
        while more and (n < 0 or len(out) < n):
            if raw:
                out.append((sign * w.k, w.q))
            else:
                out.append((self._fmt_px(sign * w.k, w.pdec), self._fmt_qty(w.q, w.qdec)))
            more = walk_next(side, &w)
        return out

    def best_bid(self):
        """(price, size) of the best bid as the exchange's strings, or None."""
        top = self._walk(&self.bids, 1, 1, False)
        return top[0] if top else None

    def best_ask(self):
        """(price, size) of the best ask as the exchange's strings, or None."""
        top = self._walk(&self.asks, -1, 1, False)
        return top[0] if top else None

    def best_raw(self):
        """(bid, bid_qty, ask, ask_qty) as int64 at the book's scales (0 if empty)."""
        cdef int64_t b = 0, bq = 0, a = 0, aq = 0
        side_best(&self.bids, &b, &bq)
        if side_best(&self.asks, &a, &aq):
            a = -a
        return (b, bq, a, aq)

    def top(self, int n=10):
        """Top ``n`` levels: ([(bid px, size), ...], [(ask px, size), ...])."""
        return self._walk(&self.bids, 1, n, False), self._walk(&self.asks, -1, n, False)

    def levels_raw(self):
        """All levels as int64 at scale, best first: (bids, asks) lists of (px, qty)."""
        return self._walk(&self.bids, 1, -1, True), self._walk(&self.asks, -1, -1, True)

    def mid(self):
        """Mid price as a Decimal, or None if a side is empty."""
        from decimal import Decimal
        b, _, a, _ = self.best_raw()
        if self.bids.n == 0 or self.asks.n == 0:
            return None
        return Decimal(b + a).scaleb(-self.price_scale) / 2

    def spread(self):
        """Best ask minus best bid as a Decimal, or None if a side is empty."""
        from decimal import Decimal
        b, _, a, _ = self.best_raw()
        if self.bids.n == 0 or self.asks.n == 0:
            return None
        return Decimal(a - b).scaleb(-self.price_scale)

    def checksum(self, int depth=25) -> int:
        """OKX-style signed CRC32 of the current top ``depth`` levels."""
        return <int32_t>self.crc_top(depth)

    def memory_bytes(self) -> int:
        """Bytes held by both sides: blocks, spare blocks, directories and ladders."""
        return _side_bytes(&self.bids) + _side_bytes(&self.asks)

    def check(self) -> tuple:
        """(bids, asks) invariant codes of the level storage; (0, 0) when sound.

        Codes: 1 block size, 2 directory key, 3 key order, 4 size not positive,
        5 a block key that belongs in the ladder, 6 ladder bit, 7 ladder count,
        8 ladder top, 9 level count.  Debug builds (``XCOL_DEBUG=1``) run this
        after every change and abort on a broken invariant."""
        return (side_check(&self.bids), side_check(&self.asks))

    @property
    def ladder_info(self) -> dict:
        """The ladders: grid step (book scale), slots, levels held, window moves."""
        return {"grid": self.bids.g, "slots": (self.bids.lw, self.asks.lw),
                "levels": (self.bids.ln, self.asks.ln),
                "recentres": self.bids.recentres + self.asks.recentres}

    def set_trace(self, bint on) -> None:
        """Record (seq, bid, bid_qty, ask, ask_qty) after each applied update."""
        self.trace_on = on
        if not on:
            self.ntrace = 0

    def drain_trace(self) -> list:
        """The recorded top-of-book trace since the last drain."""
        cdef int i
        cdef int64_t *p
        out = []
        for i in range(self.ntrace):
            p = self.trace + 5 * i
            out.append((p[0], p[1], p[2], p[3], p[4]))
        self.ntrace = 0
        return out

    def stats(self) -> dict:
        """Counters of this book."""
        return {
            "updates": self.updates, "snapshots": self.snapshots, "gaps": self.gaps,
            "duplicates": self.duplicates, "unsynced_drops": self.unsynced_drops,
            "bad_numbers": self.bad_numbers, "checksums_checked": self.checksums_checked,
            "checksums_failed": self.checksums_failed,
            "checksums_unchanged": self.checksums_unchanged, "pending": self.npend,
            "ladder_moves": self.bids.recentres + self.asks.recentres,
            "pending_dropped": self.pending_dropped, "pending_expired": self.pending_expired,
            "pending_discarded": self.pending_discarded,
            "pending_folded": self.pending_folded, "pending_dups": self.pending_dups,
            "pending_failed": self.pending_failed, "pending_closed": self.pending_closed,
            "rescaled_applying": self.rescaled_applying,
        }

    def __repr__(self) -> str:
        return (f"<Book {self.symbol} {self.state_name} seq={self.last_seq} "
                f"levels={self.bids.n}/{self.asks.n}>")
