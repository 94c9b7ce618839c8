/* Searching a block of the book's sorted keys (book.pyx blk_lb, find_blk).
 *
 * A binary search over a block that is not in the cache waits for one miss per step,
 * each step's address depending on the last compare.  Counting the keys below the
 * one sought with vector compares reads every line of the block at once: the misses
 * overlap, and there is no branch on the keys. */
#ifndef XCOL_SEARCH_H
#define XCOL_SEARCH_H
#include <stdint.h>

#if defined(__AVX2__)
#include <immintrin.h>
/* How many of the n keys k[0..n) are below key (k ascending: the lower bound). */
static inline int xcol_count_below(const int64_t *k, int n, int64_t key) {
    const __m256i kk = _mm256_set1_epi64x(key);
    int cnt = 0, i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m256i a = _mm256_cmpgt_epi64(kk, _mm256_loadu_si256((const __m256i *)(k + i)));
        const __m256i b =
            _mm256_cmpgt_epi64(kk, _mm256_loadu_si256((const __m256i *)(k + i + 4)));
        cnt += __builtin_popcount((unsigned)_mm256_movemask_pd(_mm256_castsi256_pd(a)) |
                                  ((unsigned)_mm256_movemask_pd(_mm256_castsi256_pd(b)) << 4));
    }
    for (; i < n; i++)
        cnt += k[i] < key;
    return cnt;
}

/* How many of the n keys k[0..n) are at most key (k ascending). */
static inline int xcol_count_upto(const int64_t *k, int n, int64_t key) {
    const __m256i kk = _mm256_set1_epi64x(key);
    int above = 0, i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m256i a = _mm256_cmpgt_epi64(_mm256_loadu_si256((const __m256i *)(k + i)), kk);
        const __m256i b =
            _mm256_cmpgt_epi64(_mm256_loadu_si256((const __m256i *)(k + i + 4)), kk);
        above += __builtin_popcount((unsigned)_mm256_movemask_pd(_mm256_castsi256_pd(a)) |
                                    ((unsigned)_mm256_movemask_pd(_mm256_castsi256_pd(b)) << 4));
    }
    for (; i < n; i++)
        above += k[i] > key;
    return n - above;
}
#else
static inline int xcol_count_below(const int64_t *k, int n, int64_t key) {
    int cnt = 0;
    for (int i = 0; i < n; i++)
        cnt += k[i] < key;
    return cnt;
}
static inline int xcol_count_upto(const int64_t *k, int n, int64_t key) {
    int cnt = 0;
    for (int i = 0; i < n; i++)
        cnt += k[i] <= key;
    return cnt;
}
#endif
#endif
