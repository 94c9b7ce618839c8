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

/* a * b into *r; nonzero when it does not fit (one multiply, no division). */
static inline int xcol_mul_overflow(int64_t a, int64_t b, int64_t *r) {
    return __builtin_mul_overflow(a, b, r);
}
#endif
