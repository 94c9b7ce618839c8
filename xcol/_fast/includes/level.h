/* One book level as a decoder writes it (event.pxd declares it as ``Level``): defined
 * here so that the C level readers (levels.h) can fill it directly. */
#ifndef XCOL_LEVEL_H
#define XCOL_LEVEL_H
#include <stddef.h>
#include <stdint.h>

typedef struct {
    int64_t px;           /* mantissa exactly as written */
    int64_t qty;
    const char *ptxt;     /* the exchange's own texts (inside the frame) */
    const char *qtxt;
    int8_t pdec;          /* decimals as written */
    int8_t qdec;
    int8_t flag;          /* LevelFlag */
    uint8_t plen;         /* lengths of ptxt / qtxt */
    uint8_t qlen;
} xcol_level;

/* levels.h writes the five small fields with one 8-byte store */
#ifdef __cplusplus
static_assert(offsetof(xcol_level, pdec) + 8 <= sizeof(xcol_level),
              "xcol_level: no room for the 8-byte store of its small fields");
#else
_Static_assert(offsetof(xcol_level, pdec) + 8 <= sizeof(xcol_level),
               "xcol_level: no room for the 8-byte store of its small fields");
#endif
#endif
