/* Powers of ten for xcol's fixed-point numbers (see num.pxd). */
#ifndef XCOL_NUM_H
#define XCOL_NUM_H
#include <stdint.h>
static const int64_t xcol_pow10[19] = {
    1LL, 10LL, 100LL, 1000LL, 10000LL, 100000LL, 1000000LL, 10000000LL,
    100000000LL, 1000000000LL, 10000000000LL, 100000000000LL,
    1000000000000LL, 10000000000000LL, 100000000000000LL,
    1000000000000000LL, 10000000000000000LL, 100000000000000000LL,
    1000000000000000000LL};

/* "00" "01" ... "99": two digits at a time when writing numbers. */
static const char xcol_digits2[201] =
    "00010203040506070809101112131415161718192021222324252627282930313233343536373839"
    "40414243444546474849505152535455565758596061626364656667686970717273747576777879"
    "8081828384858687888990919293949596979899";

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

/* a * b into *r; nonzero when it does not fit (one multiply, no division). */
static inline int xcol_mul_overflow(int64_t a, int64_t b, int64_t *r) {
    return __builtin_mul_overflow(a, b, r);
}
#endif
