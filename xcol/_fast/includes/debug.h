/* Compile-time switch for invariant checks; setup.py defines XCOL_DEBUG=1
 * in debug builds (XCOL_DEBUG=1 in the environment). */
#ifndef XCOL_DEBUG
#define XCOL_DEBUG 0
#endif
