/* Reading ASCII digits eight at a time in a 64-bit register (SWAR), for the
 * decoders' integer fields (Binance's 13- to 16-digit times and update ids).
 *
 * A byte loop over a 13-digit number runs a 13-step multiply-add chain and
 * mispredicts where the digits end; here the count of leading digits comes from
 * one subtract, one add and a count of trailing zeros, and the value of up to
 * eight digits from three multiplies.  Loads read 8 bytes at p: the caller's
 * buffer must be padded (the decoder's frame copy is). */
#ifndef XCOL_SWAR_H
#define XCOL_SWAR_H
#include <stdint.h>
#include <string.h>

static inline uint64_t xcol_load8(const char *p) {
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}

/* v - '0' in every byte, and how many of the first bytes (lowest first) are digits.
 * A non-digit byte flags itself: its t is above 9, so t or t + 0x76 has the top bit
 * set; borrows and carries only move to later bytes, past the first flagged one. */
static inline uint64_t xcol_digit_t(uint64_t v, int *count) {
    const uint64_t t = v - 0x3030303030303030ULL;
    const uint64_t bad = (t | (t + 0x7676767676767676ULL)) & 0x8080808080808080ULL;
    *count = bad ? (__builtin_ctzll(bad) >> 3) : 8;
    return t;
}

/* The value of the first n (1..8) digits of t (from xcol_digit_t). */
static inline uint64_t xcol_digits_value(uint64_t t, int n) {
    t <<= 8 * (8 - n);  /* the n digits to the top bytes, zeros (leading) below */
    t = t * 10 + (t >> 8);
    t = (((t & 0x000000FF000000FFULL) * (100 + (1000000ULL << 32))) +
         (((t >> 16) & 0x000000FF000000FFULL) * (1 + (10000ULL << 32)))) >> 32;
    return t;
}

/* A JSON integer of 1..15 digits without a leading zero at p (p[0] a digit): its
 * end, or 0 when it has more digits or is followed by '.', 'e' or 'E' (the caller
 * then uses its exact loop).  Writes the value to *out. */
static inline const char *xcol_uint15(const char *p, uint64_t *out) {
    int n1, n2;
    const uint64_t t1 = xcol_digit_t(xcol_load8(p), &n1);
    uint64_t v;
    const char *e;
    if (n1 < 8) {
        if (n1 == 0)
            return 0;
        v = xcol_digits_value(t1, n1);
        e = p + n1;
    } else {
        const uint64_t t2 = xcol_digit_t(xcol_load8(p + 8), &n2);
        if (n2 == 8)
            return 0;
        v = xcol_digits_value(t1, 8);
        if (n2) {
            static const uint64_t pow10[8] = {1, 10, 100, 1000, 10000, 100000, 1000000,
                                              10000000};
            v = v * pow10[n2] + xcol_digits_value(t2, n2);
        }
        e = p + 8 + n2;
    }
    if ((p[0] == '0' && e - p > 1) || e[0] == '.' || e[0] == 'e' || e[0] == 'E')
        return 0;
    *out = v;
    return e;
}

#if defined(__AVX2__)
#include <immintrin.h>
/* Two numbers of up to 8 decimal digits, their digit values (0-9, one a byte)
 * right-aligned in bytes 0-7 and 8-15 of x (zeros before them): the first number in
 * the low 32 bits of the result, the second in the high 32.  Three multiply-adds and a
 * pack: digit pairs, then groups of four, then of eight. */
static inline uint64_t xcol_sum8x2(__m128i x) {
    x = _mm_maddubs_epi16(x, _mm_setr_epi8(10, 1, 10, 1, 10, 1, 10, 1, 10, 1, 10, 1, 10, 1,
                                           10, 1));
    x = _mm_madd_epi16(x, _mm_setr_epi16(100, 1, 100, 1, 100, 1, 100, 1));
    x = _mm_packus_epi32(x, x);
    x = _mm_madd_epi16(x, _mm_setr_epi16(10000, 1, 10000, 1, 10000, 1, 10000, 1));
    return (uint64_t)_mm_cvtsi128_si64(x);
}

/* A JSON integer of 1..15 digits without a leading zero at p, read with one 16-byte
 * load: the digits are counted from a compare, moved to the end of the register by a
 * pshufb whose indices are 0..15 minus (16 - count) (negative ones clear their byte),
 * and summed by three multiply-adds and a pack.  Its end, or 0 for anything else (the
 * caller then uses xcol_uint15).  Writes the value to *out. */
static inline const char *xcol_uint15_simd(const char *p, uint64_t *out) {
    const __m128i v = _mm_loadu_si128((const __m128i *)p);
    const __m128i t = _mm_sub_epi8(v, _mm_set1_epi8('0'));
    const __m128i dig = _mm_cmpeq_epi8(_mm_min_epu8(t, _mm_set1_epi8(9)), t);
    const unsigned nd = (unsigned)__builtin_ctz(~(unsigned)_mm_movemask_epi8(dig) | 0x10000u);
    const char *e = p + nd;
    if (nd == 0 || nd > 15 || (p[0] == '0' && nd > 1) || e[0] == '.' || e[0] == 'e' ||
        e[0] == 'E')
        return 0;
    const __m128i ctl = _mm_add_epi8(
        _mm_setr_epi8(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
        _mm_set1_epi8((char)((int)nd - 16)));
    /* the high 8 digits are the first "number", the low 8 the second */
    const uint64_t r = xcol_sum8x2(_mm_shuffle_epi8(t, ctl));
    *out = (r & 0xFFFFFFFFu) * 100000000ULL + (r >> 32);
    return e;
}
#define XCOL_UINT15_SIMD 1
#else
#define XCOL_UINT15_SIMD 0
static inline const char *xcol_uint15_simd(const char *p, uint64_t *out) {
    return xcol_uint15(p, out);
}
#endif

#if defined(__SSE2__)
#include <emmintrin.h>
/* p at an opening quote: the byte after the closing quote, or 0 when an escape, a
 * control or a non-ASCII byte comes first (the exact path decides those), 16 bytes a
 * step.  The zeroed padding after the frame stops it (a zero byte is a control). */
static inline const char *xcol_str16(const char *p) {
    const __m128i quote = _mm_set1_epi8('"');
    const __m128i slash = _mm_set1_epi8('\\');
    const __m128i space = _mm_set1_epi8(0x20);
    p += 1;
    for (;;) {
        const __m128i v = _mm_loadu_si128((const __m128i *)p);
        const unsigned q = (unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(v, quote));
        /* signed: bytes >= 0x80 are negative, so below 0x20 too */
        const unsigned bad = (unsigned)_mm_movemask_epi8(
            _mm_or_si128(_mm_cmpeq_epi8(v, slash), _mm_cmpgt_epi8(space, v)));
        if (q) {
            const unsigned at = (unsigned)__builtin_ctz(q);
            if (bad & ((1u << at) - 1u))
                return 0;
            return p + at + 1;
        }
        if (bad)
            return 0;
        p += 16;
    }
}
#else
/* the same, a byte a step */
static inline const char *xcol_str16(const char *p) {
    for (p += 1;; p++) {
        const unsigned char c = (unsigned char)*p;
        if (c == '"')
            return p + 1;
        if (c == '\\' || c < 0x20 || c >= 0x80)
            return 0;
    }
}
#endif
#endif
