/* Reading book levels ``["px","qty"]`` by their shape.
 *
 * An exchange writes a stream's levels in very few shapes: in the USD-M BTCUSDT capture
 * 98% of prices have 5 integer and 2 fraction digits and 97% of sizes 1 and 3, so most
 * levels are byte for byte ``["ddddd.dd","d.ddd"]``.  The decoder's byte loop reads a
 * level a byte at a time (about a hundred instructions); xcol_shape_level instead checks
 * a whole level against the shape of the last one the loop read, with one 32-byte
 * compare (every digit position a digit, every other byte exactly the shape's), and
 * then gathers both numbers' digits into one 16-byte register and sums them with three
 * multiply-adds and a pack: about thirty instructions and no branch on the digits.  A level
 * of another shape is refused (0) and read by the byte loop, which then teaches its
 * shape here (xcol_shape_learn), so the values are always the byte loop's.  The decoder
 * keeps up to eight shapes, the usual one first and the others in order of use (the
 * capture has six price/size pairs: ``ddddd.dd`` or ``dddd.dd`` with ``d.ddd``,
 * ``dd.ddd`` or ``ddd.ddd``), so each is learnt once rather than after every change.
 *
 * Shapes are learnt only for numbers of 1-8 integer and 0-8 fraction digits, at most 8
 * digits in all, so a level has at most 2 + 9 + 3 + 9 + 2 = 25 bytes.  Loads read 32
 * bytes from the level's '[' and 16 from each number: the buffer must be padded (the
 * decoder's frame copy is).
 * Without AVX2 nothing is learnt and every level goes to the byte loop. */
#ifndef XCOL_LEVELS_H
#define XCOL_LEVELS_H
#include <stdint.h>
#include <string.h>
#include "level.h"
#include "swar.h"

typedef struct {
    uint8_t tmpl[32];   /* the level with every digit written as '0' */
    uint8_t ctl[16];    /* pshufb: price digits into bytes 0-7, right-aligned */
    uint8_t ctlq[16];   /* pshufb: size digits into bytes 8-15, right-aligned */
    uint32_t mask;      /* the bytes of the level: (1 << len) - 1 */
    int len;            /* 0: no shape learnt */
    int qoff;           /* where the size's text starts, from '[' */
    int8_t pdec, qdec;
    uint8_t plen, qlen;
} xcol_shape;


#if defined(__AVX2__)
#include <immintrin.h>
#define XCOL_SHAPE_LEVELS 1

/* pshufb indices putting the nd digits of a number (ni before the dot) right-aligned
 * into output bytes [lo, lo + 8) and zeros everywhere else. */
static inline void xcol__gather(uint8_t *ctl, int lo, int ni, int nf) {
    const int nd = ni + nf;
    for (int k = 0; k < 16; k++) {
        const int i = k - lo - (8 - nd);          /* digit index for output byte k */
        if (k < lo || k >= lo + 8 || i < 0)
            ctl[k] = 0x80;
        else
            ctl[k] = (uint8_t)(i < ni ? i : i + 1);   /* past the dot */
    }
}

/* A number's place in a template: ni digits ('0'), then the dot and nf digits when nf
 * is not 0; returns where the template goes on. */
static inline int xcol__digits(uint8_t *t, int at, int ni, int nf) {
    const int n = ni + (nf ? nf + 1 : 0);
    memset(t + at, '0', (size_t)n);
    if (nf)
        t[at + ni] = '.';
    return at + n;
}

/* Whether xcol_shape_learn can take a shape of these integer and fraction digits. */
static inline int xcol_shape_learnable(int pi, int pf, int qi, int qf) {
    return pi >= 1 && qi >= 1 && pi + pf <= 8 && qi + qf <= 8;
}

/* Remember the shape of a level the byte loop read: its numbers' integer and fraction
 * digits.  A shape that xcol_shape_level cannot take is forgotten instead. */
static inline void xcol_shape_learn(xcol_shape *s, int pi, int pf, int qi, int qf) {
    const int pl = pi + (pf ? pf + 1 : 0), ql = qi + (qf ? qf + 1 : 0);
    const int len = 2 + pl + 3 + ql + 2;
    int at;
    if (pi < 1 || qi < 1 || pi + pf > 8 || qi + qf > 8) {
        s->len = 0;
        return;
    }
    memset(s->tmpl, 0, sizeof(s->tmpl));
    memcpy(s->tmpl, "[\"", 2);
    at = xcol__digits(s->tmpl, 2, pi, pf);
    memcpy(s->tmpl + at, "\",\"", 3);
    s->qoff = at + 3;
    at = xcol__digits(s->tmpl, at + 3, qi, qf);
    memcpy(s->tmpl + at, "\"]", 2);
    xcol__gather(s->ctl, 0, pi, pf);
    xcol__gather(s->ctlq, 8, qi, qf);
    s->len = len;
    s->mask = (1u << len) - 1u;          /* len <= 25 */
    s->pdec = (int8_t)pf;
    s->qdec = (int8_t)qf;
    s->plen = (uint8_t)pl;
    s->qlen = (uint8_t)ql;
}

/* p at a level's '[': when the level has the learnt shape, its price and size
 * mantissas and the byte after its ']'; else 0. */
static inline const char *xcol_shape_level(const xcol_shape *s, const char *p, int64_t *px,
                                           int64_t *qty) {
    if (s->len == 0)
        return 0;
    const __m256i zero = _mm256_set1_epi8('0');
    const __m256i v = _mm256_loadu_si256((const __m256i *)p);
    const __m256i t = _mm256_sub_epi8(v, zero);
    const __m256i dig = _mm256_cmpeq_epi8(_mm256_min_epu8(t, _mm256_set1_epi8(9)), t);
    const __m256i c = _mm256_blendv_epi8(v, zero, dig);
    const uint32_t eq = (uint32_t)_mm256_movemask_epi8(
        _mm256_cmpeq_epi8(c, _mm256_loadu_si256((const __m256i *)s->tmpl)));
    if ((eq & s->mask) != s->mask)
        return 0;
    const __m128i z = _mm_set1_epi8('0');
    const uint64_t r = xcol_sum8x2(_mm_or_si128(
        _mm_shuffle_epi8(_mm_sub_epi8(_mm_loadu_si128((const __m128i *)(p + 2)), z),
                         _mm_loadu_si128((const __m128i *)s->ctl)),
        _mm_shuffle_epi8(_mm_sub_epi8(_mm_loadu_si128((const __m128i *)(p + s->qoff)), z),
                         _mm_loadu_si128((const __m128i *)s->ctlq))));
    *px = (int64_t)(r & 0xFFFFFFFFu);
    *qty = (int64_t)(r >> 32);
    return p + s->len;
}

/* Levels of shape s one after another from p (at a level's '['), into out (room for
 * ``room``): stops at the first level of another shape, or after a level not followed
 * by ','.  Returns how many were read (and sets *zero_px when a price was 0); *end is
 * where it stopped: just after a level's ']' (then (*end)[-1] == ']') or at the '['
 * of a level not read.  The shape is held in registers for the whole run, and the
 * small fields of a level are written with one store. */
static inline int xcol_shape_run(const xcol_shape *s, const char *p, const char **end,
                                 xcol_level *out, int room, int *zero_px) {
    int k = 0;
    uint64_t zeros = 0;
    if (s->len == 0 || room <= 0) {
        *end = p;
        return 0;
    }
    const __m256i tmpl = _mm256_loadu_si256((const __m256i *)s->tmpl);
    const __m128i ctl = _mm_loadu_si128((const __m128i *)s->ctl);
    const __m128i ctlq = _mm_loadu_si128((const __m128i *)s->ctlq);
    const __m256i zero = _mm256_set1_epi8('0');
    const __m256i nine = _mm256_set1_epi8(9);
    const __m128i z = _mm_set1_epi8('0');
    const uint32_t mask = s->mask;
    const int len = s->len, qoff = s->qoff;
    uint64_t meta = 0;
    {
        const int8_t small[5] = {s->pdec, s->qdec, 0 /* LV_SET */, (int8_t)s->plen,
                                 (int8_t)s->qlen};
        memcpy(&meta, small, 5);
    }
    for (;;) {
        const __m256i v = _mm256_loadu_si256((const __m256i *)p);
        const __m256i t = _mm256_sub_epi8(v, zero);
        const __m256i dig = _mm256_cmpeq_epi8(_mm256_min_epu8(t, nine), t);
        const __m256i c = _mm256_blendv_epi8(v, zero, dig);
        const uint32_t eq = (uint32_t)_mm256_movemask_epi8(_mm256_cmpeq_epi8(c, tmpl));
        if ((eq & mask) != mask)
            break;
        const uint64_t r = xcol_sum8x2(_mm_or_si128(
            _mm_shuffle_epi8(_mm_sub_epi8(_mm_loadu_si128((const __m128i *)(p + 2)), z), ctl),
            _mm_shuffle_epi8(_mm_sub_epi8(_mm_loadu_si128((const __m128i *)(p + qoff)), z),
                             ctlq)));
        xcol_level *lv = out + k;
        lv->px = (int64_t)(r & 0xFFFFFFFFu);
        lv->qty = (int64_t)(r >> 32);
        zeros |= (r & 0xFFFFFFFFu) == 0;
        lv->ptxt = p + 2;
        lv->qtxt = p + qoff;
        memcpy(&lv->pdec, &meta, 8);
        k++;
        p += len;
        if (*p != ',' || k == room)
            break;
        p++;
    }
    *end = p;
    *zero_px |= (int)zeros;
    return k;
}
#else
#define XCOL_SHAPE_LEVELS 0
static inline int xcol_shape_learnable(int pi, int pf, int qi, int qf) {
    (void)pi; (void)pf; (void)qi; (void)qf;
    return 0;
}
static inline void xcol_shape_learn(xcol_shape *s, int pi, int pf, int qi, int qf) {
    (void)pi; (void)pf; (void)qi; (void)qf;
    s->len = 0;
}
static inline const char *xcol_shape_level(const xcol_shape *s, const char *p, int64_t *px,
                                           int64_t *qty) {
    (void)s; (void)p; (void)px; (void)qty;
    return 0;
}
static inline int xcol_shape_run(const xcol_shape *s, const char *p, const char **end,
                                 xcol_level *out, int room, int *zero_px) {
    (void)s; (void)out; (void)room; (void)zero_px;
    *end = p;
    return 0;
}
#endif
#endif
