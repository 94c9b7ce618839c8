# distutils: language=c++
# Shared-memory ring: one writer process, any number of reader processes.
#
# The file is a 4096-byte header followed by ``slot_count`` slots of ``slot_size`` bytes.
# Every slot starts with a 24-byte header stamped with a sequence number (a seqlock per
# slot): odd while the writer fills it, even once it is complete, and unique for the
# life of the file, so a reader that copied a slot and finds the same even number
# afterwards knows the copy is whole.  A record longer than one slot's payload spans
# consecutive slots (``part`` 0, 1, ...).  docs/sinks.md describes the layout byte by
# byte.

cimport cython
from libc.stdint cimport uint8_t, uint32_t, uint64_t, int64_t

cdef enum:
    RING_HEADER_SIZE = 4096
    RING_SLOT_HEADER = 24       # seq u64, record u64, length u32, part u32
    RING_VERSION = 1

cdef enum RingState:
    RING_INIT = 0               # being created (never seen by readers: renamed in after)
    RING_OPEN = 1               # a writer is attached
    RING_CLOSED = 2             # the writer closed it cleanly (it may come back)
    RING_REPLACED = 3           # a writer replaced the file with one of another geometry


@cython.final
cdef class RingWriter:
    # The writer's mapping of the whole file (PROT_READ|PROT_WRITE, MAP_SHARED).
    cdef char *_base
    cdef size_t _size
    cdef int _fd
    cdef readonly object path          # str: the ring file
    cdef readonly uint32_t slot_size
    cdef readonly uint64_t slots
    cdef readonly uint32_t payload     # payload bytes per slot: slot_size - 24
    cdef readonly uint64_t max_record  # longest record accepted (spans slots / 4)
    cdef readonly uint64_t generation
    cdef readonly bint unlink_on_close
    cdef uint64_t _mask
    cdef uint64_t _max_parts
    # The writer's own copies of the published counters (the header holds the same).
    cdef readonly uint64_t cursor      # next global slot index
    cdef readonly uint64_t records     # next record number
    cdef readonly uint64_t too_large   # records dropped: longer than max_record
    cdef readonly uint64_t bytes_written
    cdef readonly uint64_t batches

    cdef char *_map(self) except NULL
    cdef int _resume(self, uint64_t generation, uint64_t cursor, uint64_t records) except -1
    cdef int _stamp_writer(self) except -1
    cdef void _release(self) noexcept
    cdef bint _put(self, const char *rec, uint64_t length) noexcept nogil
    cdef uint64_t _write(self, const char *buf, Py_ssize_t n) noexcept nogil
    cdef void _publish(self) noexcept nogil


cdef class RingReader:
    # The reader's mapping (PROT_READ, MAP_SHARED).
    cdef const char *_base
    cdef size_t _size
    cdef int _fd
    cdef readonly object path          # str: the ring file
    cdef readonly uint32_t slot_size
    cdef readonly uint64_t slots
    cdef readonly uint32_t payload
    cdef readonly uint64_t max_record
    cdef readonly uint64_t generation  # the writer generation last seen
    cdef readonly uint64_t inode       # st_ino of the mapped file (detects replacement)
    cdef uint64_t _mask
    cdef readonly uint64_t slack       # slots a resync leaves between reader and writer
    cdef readonly uint64_t position    # next global slot index to read
    cdef int64_t _expect               # next record number expected (-1: not known yet)
    cdef readonly int64_t last_record  # record number of the last record returned
    cdef readonly uint64_t records     # records returned
    cdef readonly uint64_t bytes_read
    cdef readonly uint64_t overruns    # times the writer lapped this reader
    cdef readonly uint64_t lost        # records skipped (record-number gaps)
    cdef readonly uint64_t abandoned   # partial records left by a writer that died
    cdef readonly uint64_t restarts    # writer generation changes seen

    cdef int64_t _expect_at(self, uint64_t c) noexcept nogil
    cdef const char *_slot(self, uint64_t idx) noexcept nogil
    cdef void _detach(self) noexcept
    cdef object _take(self)
    cdef int _gap(self, uint64_t idx) noexcept nogil
    cdef void _resync(self, uint64_t seen) noexcept nogil
    cdef void _check_generation(self) noexcept nogil
