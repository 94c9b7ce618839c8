# cython: language_level=3
"""HDR histogram with int64 counters in a C array.

Values are integers (xcol records microseconds or nanoseconds).  The value
range is split into buckets that double in width; each bucket holds enough
linear sub-buckets to keep ``significant_figures`` decimal digits, so any
recorded value is represented within a relative error of
``10 ** -significant_figures``.  The layout (and therefore every percentile)
is the one HdrHistogram uses in Java, C and the ``hdrhistogram`` package, so a
histogram can be shipped as a V2 "HISTF..." string and read by any of them.

Recording is ``h.record(v)`` from Python or from Cython (where it compiles in
place and needs no GIL; see ``hdr.pxd``).  Queries walk the counts array and
are meant for reporting, not for the hot path.
"""

cimport cython
from cpython.mem cimport PyMem_Malloc, PyMem_Free
from libc.math cimport isnan
from libc.stdint cimport INT64_MAX, int32_t, int64_t, uint32_t, uint64_t
from libc.stdlib cimport calloc, free
from libc.string cimport memset

import base64
import binascii
import struct
import sys
import zlib

# V2 cookies; the low nibble's 0x10 is the word size the Java encoder writes.
cdef uint32_t _ENCODING_COOKIE = 0x1c849313
cdef uint32_t _COMPRESSION_COOKIE = 0x1c849314
cdef uint32_t _ENCODING_COOKIE_BASE = 0x1c849303
cdef uint32_t _COMPRESSION_COOKIE_BASE = 0x1c849304
# cookie, payload length, normalizing index offset, significant figures,
# lowest and highest trackable value, integer-to-double conversion ratio.
cdef object _PAYLOAD_HEADER = struct.Struct(">IIIIQQd")
cdef object _OUTER_HEADER = struct.Struct(">II")
cdef Py_ssize_t _PAYLOAD_HEADER_SIZE = 40
cdef object _b64encode = base64.b64encode
cdef object _b64decode = base64.b64decode
cdef object _compress = zlib.compress
cdef object _decompress = zlib.decompress

DEFAULT_HIGHEST = 60_000_000


cdef inline Py_ssize_t _put_zigzag(unsigned char *p, int64_t value) noexcept nogil:
    # ZigZag, then LEB128 over at most 9 bytes: the 9th carries the last 8 bits whole.
    cdef uint64_t v = (<uint64_t>value << 1) ^ <uint64_t>(value >> 63)
    cdef Py_ssize_t n = 0
    while n < 8:
        if v < 0x80:
            p[n] = <unsigned char>v
            return n + 1
        p[n] = <unsigned char>((v & 0x7F) | 0x80)
        v >>= 7
        n += 1
    p[8] = <unsigned char>v
    return 9


cdef inline Py_ssize_t _get_zigzag(const unsigned char *p, Py_ssize_t pos, Py_ssize_t end,
                                   int64_t *out) noexcept nogil:
    # Returns the position after the value, or -1 when the buffer ends inside it.
    cdef uint64_t v = 0
    cdef int shift = 0
    cdef unsigned char b
    while shift < 56:
        if pos >= end:
            return -1
        b = p[pos]
        pos += 1
        v |= <uint64_t>(b & 0x7F) << shift
        if b < 0x80:
            out[0] = <int64_t>(v >> 1) ^ -<int64_t>(v & 1)
            return pos
        shift += 7
    if pos >= end:
        return -1
    v |= <uint64_t>p[pos] << 56
    out[0] = <int64_t>(v >> 1) ^ -<int64_t>(v & 1)
    return pos + 1


def _layout(lowest: int, highest: int, figures: int):
    """(unit magnitude, half-count magnitude, bucket count) for a configuration."""
    if figures < 1 or figures > 5:
        raise ValueError(f"significant_figures must be 1..5, got {figures}")
    if lowest < 1:
        raise ValueError(f"lowest_trackable_value must be >= 1, got {lowest}")
    if highest < 2 * lowest:
        raise ValueError(
            f"highest_trackable_value must be >= 2 * lowest_trackable_value "
            f"({2 * lowest}), got {highest}")
    unit_mag = lowest.bit_length() - 1
    # Sub-buckets needed for single-unit resolution up to 2 * 10**figures.
    sub_mag = (2 * 10 ** figures - 1).bit_length()
    half_mag = sub_mag - 1
    if unit_mag + half_mag > 61:
        raise ValueError("lowest_trackable_value too large for that many significant figures")
    smallest_untrackable = (1 << sub_mag) << unit_mag
    buckets = 1
    while smallest_untrackable <= highest:
        if smallest_untrackable > sys.maxsize // 2:
            buckets += 1
            break
        smallest_untrackable <<= 1
        buckets += 1
    return unit_mag, half_mag, buckets


def _restore(bytes blob, int64_t saturated, int64_t negative):
    """Unpickle: the histogram from its encoding plus the clamp counters."""
    cdef HdrHistogram h = HdrHistogram.decode(blob)
    h.saturated = saturated
    h.negative = negative
    return h


@cython.final
cdef class HdrHistogram:
    """Counts of integer values between ``lowest_trackable_value`` and
    ``highest_trackable_value`` at ``significant_figures`` decimal digits.

    :param lowest_trackable_value: smallest value told apart from 0 (>= 1;
        effectively rounded down to a power of two).
    :param highest_trackable_value: largest value tracked; larger samples are
        recorded as this value and counted in :attr:`saturated`.
    :param significant_figures: 1..5.
    """

    def __cinit__(self, int64_t lowest_trackable_value=1,
                  int64_t highest_trackable_value=DEFAULT_HIGHEST,
                  int significant_figures=3):
        unit_mag, half_mag, buckets = _layout(
            lowest_trackable_value, highest_trackable_value, significant_figures)
        self.lowest_trackable_value = lowest_trackable_value
        self.highest_trackable_value = highest_trackable_value
        self.significant_figures = significant_figures
        self._unit_magnitude = unit_mag
        self._half_mag = half_mag
        self._half_count = 1 << half_mag
        self._bucket_count = buckets
        self._sub_mask = ((<int64_t>2 << half_mag) - 1) << unit_mag
        self.counts_len = (buckets + 1) * self._half_count
        self._counts = <int64_t *>calloc(<size_t>self.counts_len, sizeof(int64_t))
        if self._counts == NULL:
            raise MemoryError()
        self._min = INT64_MAX
        self._max = 0

    def __dealloc__(self):
        free(self._counts)
        self._counts = NULL

    def __reduce__(self):
        # The encoding holds every count; min/max come back at bucket precision,
        # which is all min() and max() report anyway.
        return (_restore, (self.encode(), self.saturated, self.negative))

    def __repr__(self) -> str:
        return (f"HdrHistogram({self.lowest_trackable_value}, {self.highest_trackable_value}, "
                f"{self.significant_figures}, total_count={self.total_count})")

    # ------------------------------------------------------------------ layout

    cdef int64_t _value_at_index(self, int32_t i) noexcept nogil:
        cdef int bucket = (i >> self._half_mag) - 1
        cdef int64_t sub = (i & (self._half_count - 1)) + self._half_count
        if bucket < 0:
            sub -= self._half_count
            bucket = 0
        return sub << (bucket + self._unit_magnitude)

    cdef int64_t _lowest_equivalent(self, int64_t v) noexcept nogil:
        cdef int bucket = (64 - __builtin_clzll(<uint64_t>(v | self._sub_mask))
                           - self._unit_magnitude - self._half_mag - 1)
        cdef int64_t sub = v >> (bucket + self._unit_magnitude)
        return sub << (bucket + self._unit_magnitude)

    cdef int64_t _highest_equivalent(self, int64_t v) noexcept nogil:
        cdef int bucket = (64 - __builtin_clzll(<uint64_t>(v | self._sub_mask))
                           - self._unit_magnitude - self._half_mag - 1)
        cdef int64_t sub = v >> (bucket + self._unit_magnitude)
        cdef int64_t low = sub << (bucket + self._unit_magnitude)
        if sub >= 2 * self._half_count:
            bucket += 1
        return low + ((<int64_t>1) << (self._unit_magnitude + bucket)) - 1

    cdef int64_t _target_count(self, double p) noexcept nogil:
        # Same rounding as the reference implementations: nearest count, at least 1.
        if p > 100.0:
            p = 100.0
        cdef int64_t c = <int64_t>((p * <double>self.total_count) / 100.0 + 0.5)
        return c if c > 1 else 1

    cdef bint _same_layout(self, HdrHistogram other) noexcept:
        return (self._unit_magnitude == other._unit_magnitude
                and self._half_mag == other._half_mag
                and self.counts_len == other.counts_len)

    # ------------------------------------------------------------------ queries

    def value_at_percentile(self, double percentile) -> int:
        """The value below or at which ``percentile`` % of samples fall (0 if empty).

        The answer is the highest value equivalent to the bucket reached (the
        lowest one for percentile 0), as HdrHistogram reports it.
        """
        if isnan(percentile) or percentile < 0.0:
            raise ValueError(f"percentile must be in [0, 100], got {percentile}")
        cdef int64_t target = self._target_count(percentile)
        cdef int64_t running = 0
        cdef int32_t i
        if self.total_count == 0:
            return 0
        for i in range(self.counts_len):
            running += self._counts[i]
            if running >= target:
                if percentile == 0.0:
                    return self._lowest_equivalent(self._value_at_index(i))
                return self._highest_equivalent(self._value_at_index(i))
        return 0

    def percentiles(self, percentiles) -> list:
        """Values at several percentiles in one pass, in the order given."""
        cdef list ps = [float(p) for p in percentiles]
        cdef list out = [0] * len(ps)
        cdef int32_t idx = -1
        cdef int64_t running = 0
        cdef int64_t target
        cdef double p
        for k in sorted(range(len(ps)), key=ps.__getitem__):
            p = ps[k]
            if isnan(p) or p < 0.0:
                raise ValueError(f"percentile must be in [0, 100], got {p}")
            if self.total_count == 0:
                continue
            target = self._target_count(p)
            while running < target and idx + 1 < self.counts_len:
                idx += 1
                running += self._counts[idx]
            if running >= target:
                if p == 0.0:
                    out[k] = self._lowest_equivalent(self._value_at_index(idx))
                else:
                    out[k] = self._highest_equivalent(self._value_at_index(idx))
        return out

    def min(self) -> int:
        """Lowest value equivalent to the smallest sample (0 if empty)."""
        if self.total_count == 0 or self._counts[0] > 0:
            return 0
        return self._lowest_equivalent(self._min)

    def max(self) -> int:
        """Highest value equivalent to the largest sample (0 if empty)."""
        if self._max == 0:
            return 0
        return self._highest_equivalent(self._max)

    def mean(self) -> float:
        """Mean of the samples, each taken at the middle of its bucket (0.0 if empty)."""
        cdef long double acc = 0
        cdef int32_t i
        cdef int64_t low, c
        if self.total_count == 0:
            return 0.0
        for i in range(self._index(self._max) + 1):
            c = self._counts[i]
            if c:
                low = self._value_at_index(i)
                acc += <long double>c * (low + ((self._highest_equivalent(low) - low + 1) >> 1))
        return <double>(acc / self.total_count)

    def count_at(self, int64_t value) -> int:
        """Samples recorded in the bucket that holds ``value`` (clamped like a record)."""
        if value > self.highest_trackable_value:
            value = self.highest_trackable_value
        elif value < 0:
            value = 0
        return self._counts[self._index(value)]

    # ---------------------------------------------------------------- updates

    def reset(self) -> None:
        """Forget every sample (the layout stays)."""
        memset(self._counts, 0, <size_t>self.counts_len * sizeof(int64_t))
        self.total_count = 0
        self.saturated = 0
        self.negative = 0
        self._min = INT64_MAX
        self._max = 0

    def merge(self, HdrHistogram other not None) -> None:
        """Add ``other``'s samples to this histogram.

        With the same layout the counters are added one to one; otherwise each
        of ``other``'s buckets is recorded at its lowest value (clamped to this
        histogram's range).
        """
        cdef int32_t i
        cdef int64_t c
        if self._same_layout(other):
            for i in range(self.counts_len):
                self._counts[i] += other._counts[i]
            self.total_count += other.total_count
            if other._min < self._min:
                self._min = other._min
            if other._max > self._max:
                self._max = other._max
            self.saturated += other.saturated
            self.negative += other.negative
            return
        for i in range(other.counts_len):
            c = other._counts[i]
            if c:
                self.record_n(other._value_at_index(i), c)
        # Clamped samples sit in other's top bucket; count them once more only
        # where this histogram did not clamp that bucket itself.
        if other._lowest_equivalent(other.highest_trackable_value) <= self.highest_trackable_value:
            self.saturated += other.saturated
        self.negative += other.negative

    # --------------------------------------------------------------- encoding

    def encode(self) -> bytes:
        """The V2 compressed encoding (base64 ``b"HISTF..."``) of the counts.

        Byte for byte what the ``hdrhistogram`` package's ``encode()`` gives
        for the same samples; any HdrHistogram implementation decodes it.
        Zero runs are written as negative counts.
        """
        cdef Py_ssize_t limit = (self._index(self._max) + 1) if self.total_count else 0
        cdef Py_ssize_t cap = _PAYLOAD_HEADER_SIZE + limit * 9
        cdef unsigned char *buf = <unsigned char *>PyMem_Malloc(<size_t>cap)
        cdef Py_ssize_t pos = _PAYLOAD_HEADER_SIZE
        cdef Py_ssize_t i = 0
        cdef Py_ssize_t run
        if buf == NULL:
            raise MemoryError()
        try:
            with nogil:
                while i < limit:
                    if self._counts[i] == 0:
                        run = 1
                        while i + run < limit and self._counts[i + run] == 0:
                            run += 1
                        pos += _put_zigzag(buf + pos, -<int64_t>run)
                        i += run
                    else:
                        pos += _put_zigzag(buf + pos, self._counts[i])
                        i += 1
            header = _PAYLOAD_HEADER.pack(
                _ENCODING_COOKIE, <uint32_t>(pos - _PAYLOAD_HEADER_SIZE), 0,
                self.significant_figures, self.lowest_trackable_value,
                self.highest_trackable_value, 1.0)
            body = header + (<char *>buf)[_PAYLOAD_HEADER_SIZE:pos]
        finally:
            PyMem_Free(buf)
        packed = _compress(body)
        return _b64encode(_OUTER_HEADER.pack(_COMPRESSION_COOKIE, len(packed)) + packed)

    @staticmethod
    def decode(data) -> HdrHistogram:
        """A histogram from a V2 compressed encoding (``bytes`` or ``str``), such as
        :meth:`encode` or the ``hdrhistogram`` package produce.

        :raises ValueError: the data is not a valid V2 compressed histogram.
        """
        cdef const unsigned char[:] view
        cdef Py_ssize_t pos, end
        cdef int32_t i = 0
        cdef int32_t lo = -1
        cdef int32_t hi = -1
        cdef int64_t value, total = 0
        cdef HdrHistogram h
        if isinstance(data, str):
            data = data.encode("ascii")
        try:
            raw = _b64decode(data, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise ValueError(f"histogram: bad base64 ({exc})") from None
        if len(raw) < _OUTER_HEADER.size:
            raise ValueError("histogram: shorter than its header")
        cookie, length = _OUTER_HEADER.unpack_from(raw)
        if cookie & ~0xF0 != _COMPRESSION_COOKIE_BASE:
            raise ValueError(f"histogram: not a V2 compressed histogram (cookie {cookie:#x})")
        if length != len(raw) - _OUTER_HEADER.size:
            raise ValueError(
                f"histogram: header says {length} bytes, {len(raw) - _OUTER_HEADER.size} follow")
        try:
            payload = _decompress(raw[_OUTER_HEADER.size:])
        except zlib.error as exc:
            raise ValueError(f"histogram: bad deflate stream ({exc})") from None
        if len(payload) < _PAYLOAD_HEADER_SIZE:
            raise ValueError("histogram: payload shorter than its header")
        cookie, plen, offset, figures, lowest, highest, _ratio = \
            _PAYLOAD_HEADER.unpack_from(payload)
        if cookie & ~0xF0 != _ENCODING_COOKIE_BASE:
            raise ValueError(f"histogram: bad payload cookie {cookie:#x}")
        if offset != 0:
            raise ValueError("histogram: normalizing index offsets are not supported")
        if plen > len(payload) - _PAYLOAD_HEADER_SIZE:
            raise ValueError("histogram: counts are shorter than the header says")
        if highest > INT64_MAX:
            raise ValueError("histogram: highest trackable value exceeds int64")
        h = HdrHistogram(lowest, highest, figures)
        view = payload
        pos = _PAYLOAD_HEADER_SIZE
        end = pos + plen
        while pos < end:
            pos = _get_zigzag(&view[0], pos, end, &value)
            if pos < 0:
                raise ValueError("histogram: truncated count")
            if value < 0:
                if value < -<int64_t>(h.counts_len - i):
                    raise ValueError("histogram: more counts than the layout holds")
                i += <int32_t>(-value)
                continue
            if i >= h.counts_len:
                raise ValueError("histogram: more counts than the layout holds")
            if value:
                h._counts[i] = value
                total += value
                if lo < 0:
                    lo = i
                hi = i
            i += 1
        h.total_count = total
        if hi >= 0:
            h._min = h._value_at_index(lo)
            h._max = h._value_at_index(hi)
        return h
