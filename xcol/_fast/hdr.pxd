# distutils: language=c++
# HDR histogram: int64 counts in one C array, recordable from any Cython module.
#
# Other modules cimport the class and call ``h.record(v)`` / ``h.record_n(v, n)``
# directly: both are ``cpdef inline`` with their bodies here, on a final class,
# so a cimporting module compiles them in place (no vtable, no Python call, no
# GIL needed).  The same names are Python methods for everybody else.
#
#     from xcol._fast.hdr cimport HdrHistogram
#     cdef HdrHistogram lat = HdrHistogram(1, 60_000_000, 3)
#     with nogil:
#         lat.record(elapsed_us)
#
# Bucket layout and the wire encoding follow the HdrHistogram V2 format, so
# ``encode()`` is read by the ``hdrhistogram`` package (and Java/C HdrHistogram).
#
# One writer at a time: recording is plain loads and stores, not atomics, so a
# histogram belongs to one thread (merge per-thread histograms to report).

cimport cython
from libc.stdint cimport int64_t, int32_t, uint64_t

cdef extern from *:
    # GCC/Clang builtin; the argument is never 0 here (the sub-bucket mask is or-ed in).
    int __builtin_clzll(unsigned long long x) nogil


@cython.final
cdef class HdrHistogram:
    cdef readonly int64_t lowest_trackable_value
    cdef readonly int64_t highest_trackable_value
    cdef readonly int significant_figures
    cdef readonly int32_t counts_len
    cdef readonly int64_t total_count
    cdef readonly int64_t saturated     # samples above highest_trackable_value, clamped
    cdef readonly int64_t negative      # samples below 0, recorded as 0
    cdef int _unit_magnitude
    cdef int _half_mag                  # log2(sub-bucket count) - 1
    cdef int32_t _half_count            # sub-bucket count / 2
    cdef int32_t _bucket_count
    cdef int64_t _sub_mask              # (sub-bucket count - 1) << unit magnitude
    cdef int64_t _min                   # smallest raw value recorded (INT64_MAX if none)
    cdef int64_t _max                   # largest raw value recorded (0 if none)
    cdef int64_t *_counts               # counts_len counters, owned

    @cython.nonecheck(False)
    cdef inline int32_t _index(self, int64_t v) noexcept nogil:
        # Bucket = how far v's top bit sits above the first bucket's range;
        # sub-bucket = v's top (half_mag + 1) bits at that bucket's resolution.
        cdef int bucket = (64 - __builtin_clzll(<uint64_t>(v | self._sub_mask))
                           - self._unit_magnitude - self._half_mag - 1)
        cdef int32_t sub = <int32_t>(v >> (bucket + self._unit_magnitude))
        return ((bucket + 1) << self._half_mag) + sub - self._half_count

    @cython.nonecheck(False)     # self is never None here; a check would need the GIL
    cpdef inline void record_n(self, int64_t v, int64_t n) noexcept nogil:
        """Record ``n`` samples of value ``v``.

        Values above ``highest_trackable_value`` are recorded as that value and
        counted in ``saturated``; negative values are recorded as 0 and counted
        in ``negative``.  ``n < 1`` records nothing.
        """
        if n < 1:
            return
        if v > self.highest_trackable_value:
            v = self.highest_trackable_value
            self.saturated += n
        elif v < 0:
            v = 0
            self.negative += n
        self._counts[self._index(v)] += n
        self.total_count += n
        if v < self._min:
            self._min = v
        if v > self._max:
            self._max = v

    @cython.nonecheck(False)
    cpdef inline void record(self, int64_t v) noexcept nogil:
        """Record one sample of value ``v`` (clamped like :meth:`record_n`)."""
        self.record_n(v, 1)

    cdef int64_t _value_at_index(self, int32_t i) noexcept nogil
    cdef int64_t _lowest_equivalent(self, int64_t v) noexcept nogil
    cdef int64_t _highest_equivalent(self, int64_t v) noexcept nogil
    cdef int64_t _target_count(self, double p) noexcept nogil
    cdef bint _same_layout(self, HdrHistogram other) noexcept
