# Exact decimal text <-> int64 fixed point, shared (inlined) by every
# module that touches a price or a size.
#
# A number is first read exactly as the exchange wrote it: the digits become
# a mantissa and the count of fraction digits is kept (``"61800.20"`` ->
# 6180020, 2).  Books then rescale to the instrument's fixed scale with
# ``to_scale`` and keep the digit count, so ``format_num`` can give back the
# exchange's own string (OKX checksums depend on it).  No float, ever.

from libc.stdint cimport int64_t, int8_t, uint64_t

cdef extern from "includes/num.h":
    const int64_t xcol_pow10[19]
    int xcol_mul_overflow(int64_t a, int64_t b, int64_t *r) nogil
    void xcol_copy16(char *dst, const char *src, int n) nogil
    int xcol_write_u64(uint64_t u, char *out) nogil
    uint64_t xcol_mulhi(uint64_t a, uint64_t b) nogil
    ctypedef struct xcol_hi_cache:
        uint64_t hi
        int len
    int xcol_write_u64_hi(uint64_t u, char *out, xcol_hi_cache *c) nogil
    int xcol_write_fixed(uint64_t u, int scale, int dec, char *out) nogil

cdef enum NumErr:
    NUM_OK = 0
    NUM_SYNTAX = 1      # not a decimal number
    NUM_OVERFLOW = 2    # more than 18 significant digits, or too large at scale
    NUM_NEGATIVE = 3    # a price or size below zero
    NUM_PRECISION = 4   # more decimals than the instrument's scale (non-zero)

cdef enum:
    MAX_DEC = 18

# Parse a number token.  ``p`` .. ``end`` is the raw JSON token: a quoted
# string ("61800.20") or a bare number (61800.2, 5e-05); trailing blanks are
# allowed.  Negative values are refused (prices and sizes only).
cdef inline int parse_num(const char *p, const char *end, int64_t *mant,
                          int8_t *dec) noexcept nogil:
    cdef bint quoted = False
    cdef int64_t m = 0
    cdef int nd = 0          # significant digits accumulated
    cdef int frac = 0        # digits after the point
    cdef int ex = 0
    cdef int exsign = 1
    cdef int any_digit = 0
    cdef int d
    cdef char c
    if p < end and p[0] == b'"':
        quoted = True
        p += 1
    if p < end and p[0] == b'-':
        return NUM_NEGATIVE
    while p < end:
        c = p[0]
        if c < b'0' or c > b'9':
            break
        any_digit = 1
        if m != 0 or c != b'0':
            nd += 1
            if nd > 18:
                return NUM_OVERFLOW
            m = m * 10 + (c - 48)
        p += 1
    if p < end and p[0] == b'.':
        p += 1
        while p < end:
            c = p[0]
            if c < b'0' or c > b'9':
                break
            any_digit = 1
            frac += 1
            if m != 0 or c != b'0':
                nd += 1
                if nd > 18:
                    return NUM_OVERFLOW
            m = m * 10 + (c - 48)
            p += 1
    if not any_digit:
        return NUM_SYNTAX
    if p < end and (p[0] == b'e' or p[0] == b'E'):
        p += 1
        if p < end and (p[0] == b'+' or p[0] == b'-'):
            if p[0] == b'-':
                exsign = -1
            p += 1
        if p >= end or p[0] < b'0' or p[0] > b'9':
            return NUM_SYNTAX
        while p < end and p[0] >= b'0' and p[0] <= b'9':
            ex = ex * 10 + (p[0] - 48)
            if ex > 40:
                return NUM_OVERFLOW
            p += 1
    if quoted:
        if p >= end or p[0] != b'"':
            return NUM_SYNTAX
        p += 1
    while p < end:
        c = p[0]
        if c != b' ' and c != b'\t' and c != b'\n' and c != b'\r':
            return NUM_SYNTAX
        p += 1
    d = frac - exsign * ex
    if d < 0:
        if m != 0:
            if -d > 18 or nd - d > 18:
                return NUM_OVERFLOW
            m = m * xcol_pow10[-d]
        d = 0
    elif d > MAX_DEC:
        # Only trailing zeros may lie beyond 18 decimals.
        while d > MAX_DEC and m % 10 == 0 and m != 0:
            m //= 10
            d -= 1
        if m == 0:
            d = 0
        elif d > MAX_DEC:
            return NUM_OVERFLOW
    mant[0] = m
    dec[0] = <int8_t>d
    return NUM_OK


# Parse a signed integer token, quoted ("1652459225464") or bare.
cdef inline int parse_int(const char *p, const char *end, int64_t *out) noexcept nogil:
    cdef bint quoted = False
    cdef bint neg = False
    cdef int64_t v = 0
    cdef int n = 0
    if p < end and p[0] == b'"':
        quoted = True
        p += 1
    if p < end and p[0] == b'-':
        neg = True
        p += 1
    while p < end and p[0] >= b'0' and p[0] <= b'9':
        n += 1
        if n > 18:
            return NUM_OVERFLOW
        v = v * 10 + (p[0] - 48)
        p += 1
    if n == 0:
        return NUM_SYNTAX
    if quoted:
        if p >= end or p[0] != b'"':
            return NUM_SYNTAX
        p += 1
    while p < end:
        if p[0] != b' ' and p[0] != b'\t' and p[0] != b'\n' and p[0] != b'\r':
            return NUM_SYNTAX
        p += 1
    out[0] = -v if neg else v
    return NUM_OK


# Rescale an exactly-read mantissa with ``dec`` decimals to ``scale`` decimals.
cdef inline int to_scale(int64_t mant, int dec, int scale, int64_t *out) noexcept nogil:
    cdef int64_t f
    if dec == scale:
        out[0] = mant
        return NUM_OK
    if dec < scale:
        if xcol_mul_overflow(mant, xcol_pow10[scale - dec], out):
            return NUM_OVERFLOW
        return NUM_OK
    f = xcol_pow10[dec - scale]
    if mant % f != 0:
        return NUM_PRECISION
    out[0] = mant // f
    return NUM_OK


# ``|v|``, writing the minus sign of a negative ``v`` at ``out`` (``pos[0]`` is set to
# the bytes written).
cdef inline uint64_t sign_abs(int64_t v, char *out, int *pos) noexcept nogil:
    if v < 0:
        out[0] = b'-'
        pos[0] = 1
        return <uint64_t>0 - <uint64_t>v
    pos[0] = 0
    return <uint64_t>v


# Write the integer ``v`` into ``out`` (at least 24 bytes); returns the length.
# Eight digits at a time (num.h).
cdef inline int format_int(int64_t v, char *out) noexcept nogil:
    cdef int pos
    cdef uint64_t u = sign_abs(v, out, &pos)
    return pos + xcol_write_u64(u, out + pos)


# format_int for a number written over and over with the same leading digits (times,
# ids): those above the last eight are kept in ``c`` (num.h).
cdef inline int format_int_hi(int64_t v, char *out, xcol_hi_cache *c) noexcept nogil:
    cdef int pos
    cdef uint64_t u = sign_abs(v, out, &pos)
    return pos + xcol_write_u64_hi(u, out + pos, c)


# Write ``v`` (fixed point at ``scale``, 0-18) with exactly ``dec`` decimals
# (0-24; every decimal count xcol reads is at most 18, see parse_num) into
# ``out`` (at least 48 bytes, of which any may be overwritten); returns the
# length.  Decimals beyond the scale are written as zeros.  Eight digits at a
# time (num.h).
cdef inline int format_num(int64_t v, int scale, int dec, char *out) noexcept nogil:
    cdef int pos
    cdef uint64_t u = sign_abs(v, out, &pos)
    return pos + xcol_write_fixed(u, scale, dec, out + pos)
