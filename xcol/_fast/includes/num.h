/* xcol's fixed-point numbers (see num.pxd): powers of ten, and writing numbers as text. */
#ifndef XCOL_NUM_H
#define XCOL_NUM_H
#include <stdint.h>
static const int64_t xcol_pow10[19] = {
    1LL, 10LL, 100LL, 1000LL, 10000LL, 100000LL, 1000000LL, 10000000LL,
    100000000LL, 1000000000LL, 10000000000LL, 100000000000LL,
    1000000000000LL, 10000000000000LL, 100000000000000LL,
    1000000000000000LL, 10000000000000000LL, 100000000000000000LL,
    1000000000000000000LL};

/* Copy n bytes (n small): both buffers must have room for at least 32 bytes.  Up
 * to 32 bytes take two unaligned vector moves and no loop (a copy loop is turned
 * into "rep movs", whose start-up costs more than these short texts). */
#include <string.h>
#if defined(__SSE2__)
#include <emmintrin.h>
static inline void xcol_copy16(char *dst, const char *src, int n) {
    _mm_storeu_si128((__m128i *)dst, _mm_loadu_si128((const __m128i *)src));
    _mm_storeu_si128((__m128i *)(dst + 16), _mm_loadu_si128((const __m128i *)(src + 16)));
    if (n > 32)
        memcpy(dst + 32, src + 32, (size_t)(n - 32));
}
#else
static inline void xcol_copy16(char *dst, const char *src, int n) {
    memcpy(dst, src, (size_t)n);
}
#endif

/* Writing numbers: eight digits at a time.
 *
 * xcol_digits8 turns v < 10^8 into its eight ASCII digits, most significant first, as
 * the bytes of a little-endian uint64: the number is split into two halves of four
 * digits (32-bit lanes), each half into two of two digits (16-bit lanes), each of those
 * into tens and ones (bytes), every split being a multiply and a shift that divide all
 * lanes at once (10486 / 2^20 is 1/100 for n < 10^4, 103 / 2^10 is 1/10 for n < 100).
 * No loop and no dependency from one digit pair to the next. */
static inline uint64_t xcol_digits8(uint32_t v) {
    uint64_t x = (uint64_t)(v / 10000u) | ((uint64_t)(v % 10000u) << 32);
    uint64_t h = ((x * 10486u) >> 20) & 0x0000007F0000007FULL;
    x = h | ((x - h * 100u) << 16);
    h = ((x * 103u) >> 10) & 0x000F000F000F000FULL;
    x = h | ((x - h * 10u) << 8);
    return x | 0x3030303030303030ULL;
}

static const uint64_t xcol_pow10u[20] = {
    1ULL, 10ULL, 100ULL, 1000ULL, 10000ULL, 100000ULL, 1000000ULL, 10000000ULL,
    100000000ULL, 1000000000ULL, 10000000000ULL, 100000000000ULL, 1000000000000ULL,
    10000000000000ULL, 100000000000000ULL, 1000000000000000ULL, 10000000000000000ULL,
    100000000000000000ULL, 1000000000000000000ULL, 10000000000000000000ULL};

/* The number of decimal digits of u (1 for 0). */
static inline int xcol_ndigits(uint64_t u) {
    const int bits = 64 - __builtin_clzll(u | 1);
    const int t = (bits * 1233) >> 12;        /* bits * log10(2), rounded down */
    return t + ((u | 1) >= xcol_pow10u[t]);   /* u | 1: 0 has one digit */
}

/* The digits of u at out (at least 24 bytes of room; bytes past the digits, up to the
 * eighth, are overwritten); returns how many. */
static inline int xcol_write_u64(uint64_t u, char *out) {
    const int nd = xcol_ndigits(u);
    uint64_t a, b, c;
    if (nd <= 8) {
        a = xcol_digits8((uint32_t)u) >> (8 * (8 - nd));
        memcpy(out, &a, 8);
    } else if (nd <= 16) {
        a = xcol_digits8((uint32_t)(u / 100000000u)) >> (8 * (16 - nd));
        b = xcol_digits8((uint32_t)(u % 100000000u));
        memcpy(out, &a, 8);
        memcpy(out + nd - 8, &b, 8);
    } else {
        const uint64_t rest = u % 10000000000000000ULL;
        a = xcol_digits8((uint32_t)(u / 10000000000000000ULL)) >> (8 * (24 - nd));
        b = xcol_digits8((uint32_t)(rest / 100000000u));
        c = xcol_digits8((uint32_t)(rest % 100000000u));
        memcpy(out, &a, 8);
        memcpy(out + nd - 16, &b, 8);
        memcpy(out + nd - 8, &c, 8);
    }
    return nd;
}

/* The text of a number's digits above its last eight, kept from one call of
 * xcol_write_u64_hi to the next: a time or an id written record after record changes
 * in its last eight digits, so only those are converted again. */
typedef struct {
    uint64_t hi;        /* u / 10^8 the text is of */
    int len;            /* 0: nothing kept */
    char txt[24];
} xcol_hi_cache;

/* As xcol_write_u64 (at least 24 bytes of room at out), with the digits above the last
 * eight taken from *c when they are the same as the last time. */
static inline int xcol_write_u64_hi(uint64_t u, char *out, xcol_hi_cache *c) {
    uint64_t hi, d;
    if (u < 100000000u)
        return xcol_write_u64(u, out);
    hi = u / 100000000u;
    if (hi != c->hi || c->len == 0) {
        c->len = xcol_write_u64(hi, c->txt);
        c->hi = hi;
    }
    memcpy(out, c->txt, 16);              /* hi has at most 12 digits */
    d = xcol_digits8((uint32_t)(u - hi * 100000000u));
    memcpy(out + c->len, &d, 8);
    return c->len + 8;
}

/* u, a fixed-point number with ``scale`` decimals (0-18), written with exactly ``dec``
 * decimals (0-24; those beyond the scale are zeros) at out, which needs 48 bytes of
 * room (up to 46 are overwritten); returns the length.  All 24 digits go into a buffer
 * followed by zeros, from which the integer part (at least one digit) and the decimals
 * are copied as two fixed-size blocks. */
static inline int xcol_write_fixed(uint64_t u, int scale, int dec, char *out) {
    char tmp[64];
    const uint64_t rest = u % 10000000000000000ULL;
    const uint64_t a = xcol_digits8((uint32_t)(u / 10000000000000000ULL));
    const uint64_t b = xcol_digits8((uint32_t)(rest / 100000000u));
    const uint64_t c = xcol_digits8((uint32_t)(rest % 100000000u));
    const int nd = xcol_ndigits(u);
    const int ni = nd > scale ? nd - scale : 1;
    memcpy(tmp, &a, 8);
    memcpy(tmp + 8, &b, 8);
    memcpy(tmp + 16, &c, 8);
    memset(tmp + 24, '0', 40);
    memcpy(out, tmp + 24 - scale - ni, 24);
    if (dec <= 0)
        return ni;
    out[ni] = '.';
    memcpy(out + ni + 1, tmp + 24 - scale, 24);
    return ni + 1 + dec;
}

/* The high 64 bits of a * b. */
static inline uint64_t xcol_mulhi(uint64_t a, uint64_t b) {
    return (uint64_t)(((unsigned __int128)a * b) >> 64);
}

/* a * b into *r; nonzero when it does not fit (one multiply, no division). */
static inline int xcol_mul_overflow(int64_t a, int64_t b, int64_t *r) {
    return __builtin_mul_overflow(a, b, r);
}
#endif
