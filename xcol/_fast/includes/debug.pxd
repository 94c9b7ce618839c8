cdef extern from "debug.h":
    # 1 in debug builds; checks written ``if XCOL_DEBUG:`` vanish otherwise.
    cdef int XCOL_DEBUG
