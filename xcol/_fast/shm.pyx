# cython: language_level=3
# distutils: language=c++
"""Shared-memory ring: the writer behind the ``shm`` sink and the reader behind
:class:`xcol.shm.Reader`.

One writer process appends records to a file under ``/dev/shm``; any number of reader
processes map the same file read-only and follow it, each at its own position.  The
writer never waits for readers: a reader that falls more than a ring behind is lapped,
notices it (every slot carries a sequence number that is unique for the life of the
file), counts an overrun and jumps forward.  A reader never returns a torn record: it
copies a slot, then checks that the slot's sequence number did not move while it copied
(a seqlock per slot).

Layout (native byte order, little-endian on x86-64 and aarch64; docs/sinks.md has the
table): a 4096-byte header, then ``slot_count`` slots of ``slot_size`` bytes.  A slot is
``seq u64 | record u64 | length u32 | part u32 | payload``.  Global slot index ``i``
lives at slot ``i % slot_count`` with ``seq = 2*i + 1`` while written and ``2*i + 2``
once complete.  A record of ``length`` bytes takes ``ceil(length / payload)`` consecutive
indices, each stamped with the record number, the total length and its part index.
"""

cimport cython
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_GET_SIZE, PyBytes_FromStringAndSize
from libc.stdint cimport UINT32_MAX, int64_t, uint32_t, uint64_t
from libc.errno cimport errno
from libc.string cimport memchr, memcpy, strerror
from posix.mman cimport MAP_FAILED, MAP_POPULATE, MAP_SHARED, PROT_READ, PROT_WRITE, mmap, munmap

from xcol._fast.clock cimport wall_ns

import fcntl
import os
import struct

cdef extern from *:
    """
    #include <stdint.h>
    /* The seqlock's memory ordering, written with the GCC/Clang __atomic builtins so it
       holds on weakly ordered CPUs too (on x86-64 the fences are compiler barriers and
       the 8-byte aligned loads and stores are plain moves). */
    static inline uint64_t xr_ld_acq(const char *p) {
        return __atomic_load_n((const uint64_t *)p, __ATOMIC_ACQUIRE); }
    static inline uint64_t xr_ld(const char *p) {
        return __atomic_load_n((const uint64_t *)p, __ATOMIC_RELAXED); }
    static inline uint32_t xr_ld32(const char *p) {
        return __atomic_load_n((const uint32_t *)p, __ATOMIC_RELAXED); }
    static inline void xr_st_rel(char *p, uint64_t v) {
        __atomic_store_n((uint64_t *)p, v, __ATOMIC_RELEASE); }
    static inline void xr_st(char *p, uint64_t v) {
        __atomic_store_n((uint64_t *)p, v, __ATOMIC_RELAXED); }
    static inline void xr_st32(char *p, uint32_t v) {
        __atomic_store_n((uint32_t *)p, v, __ATOMIC_RELAXED); }
    static inline void xr_fence_rel(void) { __atomic_thread_fence(__ATOMIC_RELEASE); }
    static inline void xr_fence_acq(void) { __atomic_thread_fence(__ATOMIC_ACQUIRE); }
    """
    uint64_t xr_ld_acq(const char *p) noexcept nogil
    uint64_t xr_ld(const char *p) noexcept nogil
    uint32_t xr_ld32(const char *p) noexcept nogil
    void xr_st_rel(char *p, uint64_t v) noexcept nogil
    void xr_st(char *p, uint64_t v) noexcept nogil
    void xr_st32(char *p, uint32_t v) noexcept nogil
    void xr_fence_rel() noexcept nogil
    void xr_fence_acq() noexcept nogil

MAGIC = b"XCOLRING"
VERSION = RING_VERSION
HEADER_SIZE = RING_HEADER_SIZE
SLOT_HEADER = RING_SLOT_HEADER
STATE_NAMES = ("init", "open", "closed", "replaced")

# Header offsets (docs/sinks.md).  0-127: fixed at creation (plus state, generation,
# pid and start time, rewritten when a writer attaches); 128-191: the writer's counters,
# on their own cache line.
cdef enum:
    H_STATE = 28
    H_GENERATION = 32
    H_PID = 40
    H_STARTED = 48
    H_CREATED = 56
    H_MAX_RECORD = 64
    H_CURSOR = 128
    H_RECORDS = 136
    H_TOO_LARGE = 144
    H_BYTES = 152

# magic, version, header size, slot size, slot count, slot header, state,
# generation, writer pid, writer start (wall ns), created (wall ns), max record
cdef object _FIXED = struct.Struct("<8sIIIIIIQQQQQ")
cdef object _COUNTERS = struct.Struct("<QQQQ")   # cursor, records, too_large, bytes

MIN_SLOTS = 16
MAX_SLOTS = 1 << 24
MIN_SLOT_SIZE = 64
MAX_SLOT_SIZE = 65536


class RingError(Exception):
    """A ring file that cannot be attached or created; the message names the file and why."""


class RingNotFoundError(RingError, FileNotFoundError):
    """No ring file at the path (the writer has not created it, or it was removed)."""


def check_geometry(slot_size: int, slots: int) -> None:
    """Raise :class:`ValueError` unless ``slot_size`` is a multiple of 64 in
    [64, 65536] and ``slots`` a power of two in [16, 2**24]."""
    if not (MIN_SLOT_SIZE <= slot_size <= MAX_SLOT_SIZE) or slot_size % 64:
        raise ValueError(f"slot_size must be a multiple of 64 in {MIN_SLOT_SIZE}-"
                         f"{MAX_SLOT_SIZE}, got {slot_size}")
    if not (MIN_SLOTS <= slots <= MAX_SLOTS) or slots & (slots - 1):
        raise ValueError(f"slots must be a power of two in {MIN_SLOTS}-{MAX_SLOTS}, "
                         f"got {slots}")


def parse_header(path: str, data: bytes, file_size: int) -> dict:
    """The header fields of a ring file as a dict, or :class:`RingError` naming what is
    wrong: too small, wrong magic, another format version, bad geometry, wrong size."""
    if file_size < RING_HEADER_SIZE or len(data) < _FIXED.size + _COUNTERS.size:
        raise RingError(f"{path}: {file_size} bytes, too small to be an xcol shm ring "
                        f"(the header alone is {RING_HEADER_SIZE})")
    (magic, version, header_size, slot_size, slots, slot_header, state, generation, pid,
     started, created, max_record) = _FIXED.unpack_from(data, 0)
    if magic != MAGIC:
        raise RingError(f"{path}: not an xcol shm ring (magic {magic!r}, expected {MAGIC!r})")
    if version != RING_VERSION:
        raise RingError(f"{path}: ring format version {version}, this xcol reads version "
                        f"{RING_VERSION}")
    if header_size != RING_HEADER_SIZE or slot_header != RING_SLOT_HEADER:
        raise RingError(f"{path}: corrupt header (header size {header_size}, slot header "
                        f"{slot_header})")
    try:
        check_geometry(slot_size, slots)
    except ValueError as exc:
        raise RingError(f"{path}: corrupt header ({exc})") from None
    expected = RING_HEADER_SIZE + slots * slot_size
    if file_size != expected:
        raise RingError(f"{path}: file is {file_size} bytes, its header says {expected} "
                        f"({slots} slots of {slot_size})")
    cursor, records, too_large, nbytes = _COUNTERS.unpack_from(data, H_CURSOR)
    return {
        "path": path, "version": version, "slot_size": slot_size, "slots": slots,
        "payload": slot_size - RING_SLOT_HEADER, "max_record": max_record,
        "state": STATE_NAMES[state] if state < len(STATE_NAMES) else str(state),
        "generation": generation, "writer_pid": pid, "writer_started_ns": started,
        "created_ns": created, "cursor": cursor, "records": records,
        "too_large": too_large, "bytes": nbytes,
    }


def ring_info(path: str) -> dict:
    """:func:`parse_header` of the file at ``path`` (a snapshot: the counters move)."""
    path = os.fspath(path)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        raise RingNotFoundError(f"{path}: no shm ring here") from None
    try:
        return parse_header(path, os.pread(fd, RING_HEADER_SIZE, 0), os.fstat(fd).st_size)
    finally:
        os.close(fd)


cdef inline const char *_slot_at(const char *base, uint64_t idx, uint64_t mask,
                                 uint32_t slot_size) noexcept nogil:
    return base + RING_HEADER_SIZE + (idx & mask) * slot_size


cdef inline uint64_t _max_parts(uint64_t slots) noexcept nogil:
    return slots // 4


cdef inline uint64_t _max_record(uint64_t slots, uint32_t payload) noexcept nogil:
    cdef uint64_t m = _max_parts(slots) * payload
    return m if m < <uint64_t>UINT32_MAX else <uint64_t>UINT32_MAX


# --------------------------------------------------------------------------- writer


@cython.final
cdef class RingWriter:
    """The single writer of a ring file.

    Creates ``path`` (or re-attaches to a compatible ring left there by an earlier writer,
    continuing its sequence so that readers keep their place) and holds an exclusive
    ``flock`` on it while open: a second writer on the same file is refused.  A file of
    another geometry or format version is replaced (its header is marked ``replaced`` for
    readers still mapping it); a file that is not an xcol ring is left alone (error).

    :param path: the ring file (``/dev/shm/<name>``).
    :param slot_size: bytes per slot, header included (multiple of 64).
    :param slots: slot count (power of two).
    :param unlink_on_close: remove the file on :meth:`close`.
    """

    def __cinit__(self):
        self._fd = -1
        self._base = NULL

    def __init__(self, path, uint32_t slot_size=512, uint64_t slots=65536,
                 bint unlink_on_close=False):
        check_geometry(slot_size, slots)
        self.path = os.fspath(path)
        self.slot_size = slot_size
        self.slots = slots
        self.payload = slot_size - RING_SLOT_HEADER
        self._mask = slots - 1
        self._max_parts = _max_parts(slots)
        self.max_record = _max_record(slots, self.payload)
        self.unlink_on_close = unlink_on_close
        self._size = RING_HEADER_SIZE + slots * slot_size
        folder = os.path.dirname(self.path) or "."
        if not os.path.isdir(folder):
            raise RingNotFoundError(f"{self.path}: directory {folder} does not exist")
        if not self._reattach():
            self._create()

    cdef char *_map(self) except NULL:
        cdef void *p = mmap(NULL, self._size, PROT_READ | PROT_WRITE,
                            MAP_SHARED | MAP_POPULATE, self._fd, 0)
        if p == MAP_FAILED:
            raise RingError(f"{self.path}: mmap of {self._size} bytes failed "
                            f"({strerror(errno).decode()})")
        return <char *>p

    def _lock(self, fd: int) -> None:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pid = "?"
            try:
                pid = str(_FIXED.unpack_from(os.pread(fd, _FIXED.size, 0), 0)[8])
            except (OSError, struct.error):
                pass
            os.close(fd)
            raise RingError(f"{self.path}: another writer holds this ring "
                            f"(pid {pid}); one writer per ring") from None

    def _reattach(self) -> bool:
        # A compatible ring already there: continue it (readers keep their place).
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CLOEXEC)
        except FileNotFoundError:
            return False
        self._lock(fd)
        try:
            info = parse_header(self.path, os.pread(fd, RING_HEADER_SIZE, 0),
                                os.fstat(fd).st_size)
        except RingError:
            info = None
        if info is None or info["slot_size"] != self.slot_size or info["slots"] != self.slots:
            try:
                data = os.pread(fd, _FIXED.size, 0)
                if len(data) < _FIXED.size or data[:8] != MAGIC:
                    raise RingError(f"{self.path} exists and is not an xcol shm ring; "
                                    "remove it or choose another [sinks.shm] name")
                # An xcol ring of another geometry or version: tell readers still mapping
                # it that it is gone for good, then put a new file in its place.
                os.pwrite(fd, struct.pack("<I", RING_REPLACED), H_STATE)
            finally:
                os.close(fd)
            return False
        self._fd = fd
        try:
            self._base = self._map()
        except BaseException:
            os.close(fd)
            self._fd = -1
            raise
        self._resume(info["generation"], info["cursor"], info["records"])
        return True

    cdef int _resume(self, uint64_t generation, uint64_t cursor, uint64_t records) except -1:
        # Never reuse a sequence number: start after the highest slot index ever begun
        # (a writer that died mid-slot left an odd seq there) and after the highest record.
        cdef uint64_t i, s, top = 0, rec_top = 0, rec
        cdef bint seen = False
        cdef const char *slot
        for i in range(self.slots):
            slot = self._base + RING_HEADER_SIZE + i * self.slot_size
            s = xr_ld(slot)
            if s == 0:
                continue
            if (s - 1) // 2 + 1 > top:
                top = (s - 1) // 2 + 1
            rec = xr_ld(slot + 8)
            if not seen or rec >= rec_top:
                rec_top = rec + 1
                seen = True
        self.cursor = top if top > cursor else cursor
        self.records = rec_top if rec_top > records else records
        self.too_large = xr_ld(self._base + H_TOO_LARGE)
        self.bytes_written = xr_ld(self._base + H_BYTES)
        self.generation = generation + 1
        self._publish()
        self._stamp_writer()
        return 0

    cdef int _stamp_writer(self) except -1:
        xr_st(self._base + H_PID, <uint64_t>os.getpid())
        xr_st(self._base + H_STARTED, <uint64_t>wall_ns())
        xr_st_rel(self._base + H_GENERATION, self.generation)
        xr_st32(self._base + H_STATE, RING_OPEN)
        xr_fence_rel()
        return 0

    def _create(self) -> None:
        cdef bytes fixed
        # Build the whole file under a temporary name, then rename it into place, so a
        # reader never maps a half-initialised ring.
        tmp = f"{self.path}.{os.getpid()}.tmp"
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
        try:
            self._lock(fd)
            os.ftruncate(fd, self._size)
            # Reserve the memory now: a full tmpfs is an error here, not a SIGBUS later.
            os.posix_fallocate(fd, 0, self._size)
            self._fd = fd
            self._base = self._map()
        except BaseException:
            self._fd = -1
            try:
                os.close(fd)
            except OSError:
                pass
            os.unlink(tmp)
            raise
        fixed = _FIXED.pack(
            MAGIC, RING_VERSION, RING_HEADER_SIZE, self.slot_size, self.slots,
            RING_SLOT_HEADER, RING_INIT, 0, 0, 0, wall_ns(), self.max_record)
        memcpy(self._base, PyBytes_AS_STRING(fixed), <size_t>PyBytes_GET_SIZE(fixed))
        self.cursor = 0
        self.records = 0
        self.generation = 1
        self._publish()
        self._stamp_writer()
        os.rename(tmp, self.path)

    @property
    def is_open(self) -> bool:
        """Whether the ring is mapped and writable."""
        return self._base != NULL

    @cython.nonecheck(False)   # self is never None here; a check needs the GIL
    cdef void _publish(self) noexcept nogil:
        # Records before cursor: a reader that sees the cursor sees its records count.
        xr_st_rel(self._base + H_RECORDS, self.records)
        xr_st_rel(self._base + H_BYTES, self.bytes_written)
        xr_st_rel(self._base + H_CURSOR, self.cursor)

    @cython.nonecheck(False)   # self is never None here; a check needs the GIL
    cdef bint _put(self, const char *rec, uint64_t length) noexcept nogil:
        cdef uint64_t cap = self.payload
        cdef uint64_t parts = 1 if length <= cap else (length + cap - 1) // cap
        cdef uint64_t idx = self.cursor, j, seq, off = 0, chunk
        cdef uint32_t part
        cdef char *slot
        if parts > self._max_parts:
            self.too_large += 1
            xr_st_rel(self._base + H_TOO_LARGE, self.too_large)
            return False
        for j in range(parts):
            slot = self._base + RING_HEADER_SIZE + ((idx + j) & self._mask) * self.slot_size
            seq = 2 * (idx + j) + 1
            # Odd first, and visible before any byte of the payload changes.
            xr_st(slot, seq)
            xr_fence_rel()
            xr_st(slot + 8, self.records)
            xr_st32(slot + 16, <uint32_t>length)
            xr_st32(slot + 20, <uint32_t>j)
            chunk = length - off if length - off < cap else cap
            memcpy(slot + RING_SLOT_HEADER, rec + off, chunk)
            off += chunk
            # Even last: a reader that sees it sees the whole slot.
            xr_st_rel(slot, seq + 1)
        self.cursor = idx + parts
        self.records += 1
        self.bytes_written += length
        self._publish()
        return True

    @cython.nonecheck(False)   # self is never None here; a check needs the GIL
    cdef uint64_t _write(self, const char *buf, Py_ssize_t n) noexcept nogil:
        cdef Py_ssize_t pos = 0, end
        cdef const char *nl
        cdef uint64_t written = 0
        while pos < n:
            nl = <const char *>memchr(buf + pos, b'\n', <size_t>(n - pos))
            end = (nl - buf) if nl != NULL else n
            if end > pos and self._put(buf + pos, <uint64_t>(end - pos)):
                written += 1
            pos = end + 1
        return written

    def write(self, bytes batch not None) -> int:
        """Append every newline-terminated record of ``batch`` (a last record without a
        newline counts too; empty lines are skipped); returns the records written.
        Records longer than :attr:`max_record` are dropped and counted in
        :attr:`too_large`.  Never blocks: slow readers are overwritten."""
        cdef const char *p = PyBytes_AS_STRING(batch)
        cdef Py_ssize_t n = PyBytes_GET_SIZE(batch)
        cdef uint64_t k
        if self._base == NULL:
            raise RingError(f"{self.path}: ring writer is closed")
        with nogil:
            k = self._write(p, n)
        self.batches += 1
        return k

    def close(self) -> None:
        """Mark the ring closed for readers, unmap it and release the writer lock.  The
        file stays (readers may still drain it) unless ``unlink_on_close``.  Idempotent."""
        if self._base == NULL:
            return
        xr_st32(self._base + H_STATE, RING_CLOSED)
        xr_fence_rel()
        ino = os.fstat(self._fd).st_ino
        self._release()
        if self.unlink_on_close:
            try:
                if os.stat(self.path).st_ino == ino:
                    os.unlink(self.path)
            except FileNotFoundError:
                pass

    cdef void _release(self) noexcept:
        if self._base != NULL:
            munmap(self._base, self._size)
            self._base = NULL
        if self._fd >= 0:
            try:
                os.close(self._fd)
            except OSError:
                pass
            self._fd = -1

    def _test_write_torn(self, bytes rec not None, int complete_parts, bint leave_odd) -> None:
        """Test hook: write the first ``complete_parts`` slots of ``rec`` (and, with
        ``leave_odd``, start the next one) without publishing anything, as a writer that
        dies in the middle of a record would."""
        cdef uint64_t idx = self.cursor, j
        cdef uint64_t length = <uint64_t>len(rec)
        cdef char *slot
        cdef const char *src = PyBytes_AS_STRING(rec)
        for j in range(<uint64_t>complete_parts + (1 if leave_odd else 0)):
            slot = self._base + RING_HEADER_SIZE + ((idx + j) & self._mask) * self.slot_size
            xr_st(slot, 2 * (idx + j) + 1)
            xr_fence_rel()
            if j == <uint64_t>complete_parts:
                break
            xr_st(slot + 8, self.records)
            xr_st32(slot + 16, <uint32_t>length)
            xr_st32(slot + 20, <uint32_t>j)
            memcpy(slot + RING_SLOT_HEADER, src + j * self.payload,
                   min(self.payload, length - j * self.payload))
            xr_st_rel(slot, 2 * (idx + j) + 2)

    def _test_die(self) -> None:
        """Test hook: drop the mapping and the lock without marking the ring closed."""
        self._release()

    def __dealloc__(self):
        if self._base != NULL:
            xr_st32(self._base + H_STATE, RING_CLOSED)
            munmap(self._base, self._size)
        if self._fd >= 0:
            os.close(self._fd)

    def __repr__(self) -> str:
        return (f"<RingWriter {self.path} {self.slots}x{self.slot_size} "
                f"cursor={self.cursor} records={self.records}>")


# --------------------------------------------------------------------------- reader


cdef class RingReader:
    """A reader's view of a ring file, at its own position.

    ``start="latest"`` reads the records written after attaching; ``start="oldest"``
    begins with the oldest records still safely in the ring.  Use it through
    :class:`xcol.shm.Reader`.
    """

    def __cinit__(self, *args, **kwargs):
        self._fd = -1
        self._base = NULL
        self._expect = -1
        self.last_record = -1

    def __init__(self, path, str start="latest"):
        self._attach(path, start)

    def _attach(self, path, str start="latest") -> None:
        """Map ``path`` read-only and place the reader at ``start``; attaching again
        (a new file under the same name) counts as a writer restart."""
        cdef void *p
        cdef uint64_t c
        if start not in ("latest", "oldest"):
            raise ValueError(f"start must be 'latest' or 'oldest', got {start!r}")
        again = self.path is not None
        path = os.fspath(path)
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            raise RingNotFoundError(
                f"{path}: no shm ring here (is the writer running with this [sinks.shm] "
                f"name and dir?)") from None
        try:
            st = os.fstat(fd)
            info = parse_header(path, os.pread(fd, RING_HEADER_SIZE, 0), st.st_size)
            if info["state"] == "init":
                raise RingError(f"{path}: ring is still being created")
            p = mmap(NULL, <size_t>st.st_size, PROT_READ, MAP_SHARED, fd, 0)
            if p == MAP_FAILED:
                raise RingError(f"{path}: mmap of {st.st_size} bytes failed")
        except BaseException:
            os.close(fd)
            raise
        self._detach()   # the previous file, if any: only once the new one is mapped
        self._fd = fd
        self._base = <const char *>p
        self._size = <size_t>st.st_size
        self.path = path
        self.inode = st.st_ino
        self.slot_size = info["slot_size"]
        self.slots = info["slots"]
        self.payload = self.slot_size - RING_SLOT_HEADER
        self.max_record = _max_record(self.slots, self.payload)
        self._mask = self.slots - 1
        self.slack = self.slots // 8 if self.slots >= 8 else 1
        self.generation = xr_ld_acq(self._base + H_GENERATION)
        if again:
            self.restarts += 1      # a new file under the same name
        c = xr_ld_acq(self._base + H_CURSOR)
        if start == "latest":
            self.position = c
            self._expect = self._expect_at(c)
        else:
            self.position = c + self.slack - self.slots if c + self.slack > self.slots else 0
            self._expect = -1

    @cython.nonecheck(False)   # self is never None here; a check needs the GIL
    cdef int64_t _expect_at(self, uint64_t c) noexcept nogil:
        # The record number that will be written at index c: one past the record that
        # ends at c - 1 (read under its seqlock), or the writer's count for an empty ring.
        cdef const char *slot
        cdef uint64_t s, rec
        if c == 0:
            return <int64_t>xr_ld_acq(self._base + H_RECORDS)
        slot = self._slot(c - 1)
        s = xr_ld_acq(slot)
        if s != 2 * (c - 1) + 2:
            return -1
        rec = xr_ld(slot + 8)
        xr_fence_acq()
        if xr_ld(slot) != s:
            return -1
        return <int64_t>rec + 1

    @cython.nonecheck(False)   # self is never None here; a check needs the GIL
    cdef const char *_slot(self, uint64_t idx) noexcept nogil:
        return _slot_at(self._base, idx, self._mask, self.slot_size)

    @cython.nonecheck(False)   # self is never None here; a check needs the GIL
    cdef int _gap(self, uint64_t idx) noexcept nogil:
        # Slot idx is not (yet) what we expect.  0: the writer has not reached it;
        # 1: the writer published past it, so it will never be written (a writer that
        # died mid-record, then a new one that started after it); 2: it changed, retry.
        cdef uint64_t c = xr_ld_acq(self._base + H_CURSOR)
        if c <= idx:
            return 0
        if xr_ld_acq(self._slot(idx)) >= 2 * idx + 2:
            return 2
        return 1

    @cython.nonecheck(False)   # self is never None here; a check needs the GIL
    cdef void _resync(self, uint64_t seen) noexcept nogil:
        # Lapped: jump to the oldest slot that is still safe, leaving ``slack`` slots of
        # room so the writer does not lap us again at once, then skip to a record start.
        cdef uint64_t newest = (seen - 1) // 2 + 1
        cdef uint64_t c = xr_ld_acq(self._base + H_CURSOR)
        cdef uint64_t np
        if c > newest:
            newest = c
        np = newest + self.slack - self.slots if newest + self.slack > self.slots else 0
        if np <= self.position:
            np = self.position + 1
        self.position = np
        self.overruns += 1

    @cython.nonecheck(False)   # self is never None here; a check needs the GIL
    cdef void _check_generation(self) noexcept nogil:
        cdef uint64_t g = xr_ld_acq(self._base + H_GENERATION)
        if g != self.generation:
            self.restarts += 1
            self.generation = g

    cdef object _take(self):
        cdef uint64_t p, idx, s, s2, e, rec, k, j, off, chunk, cap = self.payload
        cdef uint32_t length, part
        cdef const char *slot
        cdef const char *sj
        cdef bytes out
        cdef char *dst
        cdef int g
        cdef bint again
        if self._base == NULL:
            raise RingError(f"{self.path}: reader is closed")
        while True:
            p = self.position
            slot = _slot_at(self._base, p, self._mask, self.slot_size)
            e = 2 * p + 2
            s = xr_ld_acq(slot)
            if s != e:
                if s > e:
                    self._resync(s)
                    continue
                g = self._gap(p)
                if g == 1:
                    self.position = p + 1
                    continue
                if g == 2:
                    continue
                self._check_generation()
                return None
            rec = xr_ld(slot + 8)
            length = xr_ld32(slot + 16)
            part = xr_ld32(slot + 20)
            if part != 0 or length > self.max_record:
                xr_fence_acq()
                s2 = xr_ld(slot)
                if s2 != s:
                    self._resync(s2)
                else:
                    self.position = p + 1   # inside a record (after a jump): skip to a start
                continue
            k = 1 if length <= cap else (length + cap - 1) // cap
            out = PyBytes_FromStringAndSize(NULL, length)
            dst = PyBytes_AS_STRING(out)
            chunk = length if length < cap else cap
            memcpy(dst, slot + RING_SLOT_HEADER, chunk)
            xr_fence_acq()
            s2 = xr_ld(slot)
            if s2 != s:
                self._resync(s2)
                continue
            off = chunk
            again = False
            j = 1
            while j < k:
                idx = p + j
                sj = _slot_at(self._base, idx, self._mask, self.slot_size)
                e = 2 * idx + 2
                s = xr_ld_acq(sj)
                if s != e:
                    if s > e:
                        self._resync(s)
                        again = True
                        break
                    g = self._gap(idx)
                    if g == 0:          # the writer is still writing this record
                        self._check_generation()
                        return None
                    if g == 2:
                        continue
                    self.abandoned += 1     # its writer died after part j - 1
                    self.position = idx
                    again = True
                    break
                if xr_ld(sj + 8) != rec or xr_ld32(sj + 20) != j:
                    xr_fence_acq()
                    if xr_ld(sj) == s:
                        # A new writer began a record here: the one at p never finished.
                        self.abandoned += 1
                        self.position = idx
                    again = True
                    break
                chunk = length - off if length - off < cap else cap
                memcpy(dst + off, sj + RING_SLOT_HEADER, chunk)
                xr_fence_acq()
                s2 = xr_ld(sj)
                if s2 != s:
                    self._resync(s2)
                    again = True
                    break
                off += chunk
                j += 1
            if again:
                continue
            self.position = p + k
            if self._expect >= 0 and <int64_t>rec > self._expect:
                self.lost += <uint64_t>(<int64_t>rec - self._expect)
            self._expect = <int64_t>rec + 1
            self.last_record = <int64_t>rec
            self.records += 1
            self.bytes_read += length
            return out

    def next(self) -> bytes | None:
        """The next record (without its newline), or ``None`` when the reader has caught
        up with the writer.  Never returns a torn record; never blocks."""
        return self._take()

    def read_batch(self, Py_ssize_t max_records=1024) -> list:
        """Up to ``max_records`` records, in order; empty when caught up."""
        cdef list out = []
        cdef object rec
        while len(out) < max_records:
            rec = self._take()
            if rec is None:
                break
            out.append(rec)
        return out

    def read_numbered(self, Py_ssize_t max_records=1024) -> list:
        """Like :meth:`read_batch`, as ``(record number, record)`` pairs: record numbers
        are consecutive in the writer's order, so a gap shows what was lost."""
        cdef list out = []
        cdef object rec
        while len(out) < max_records:
            rec = self._take()
            if rec is None:
                break
            out.append((self.last_record, rec))
        return out

    def _require(self) -> None:
        if self._base == NULL:
            raise RingError(f"{self.path}: reader is closed")

    @property
    def cursor(self) -> int:
        """The writer's published cursor (next global slot index)."""
        self._require()
        return xr_ld_acq(self._base + H_CURSOR)

    @property
    def lag(self) -> int:
        """Slots between this reader and the writer."""
        self._require()
        cdef uint64_t c = xr_ld_acq(self._base + H_CURSOR)
        return c - self.position if c > self.position else 0

    @property
    def writer_records(self) -> int:
        """Records the writer has put in the ring over the file's life."""
        self._require()
        return xr_ld_acq(self._base + H_RECORDS)

    @property
    def writer_state(self) -> str:
        """``open``, ``closed`` (the writer closed it; it may come back) or ``replaced``
        (a new ring of another geometry took the name: attach again)."""
        self._require()
        cdef uint32_t st = xr_ld32(self._base + H_STATE)
        return STATE_NAMES[st] if st < 4 else str(st)

    @property
    def writer_pid(self) -> int:
        """Process id of the last writer attached to the ring."""
        self._require()
        return xr_ld_acq(self._base + H_PID)

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._base == NULL

    def stats(self) -> dict:
        """Counters of this reader (``records``, ``lost``, ``overruns``...)."""
        return {
            "path": self.path, "position": self.position, "records": self.records,
            "bytes": self.bytes_read, "overruns": self.overruns, "lost": self.lost,
            "abandoned": self.abandoned, "restarts": self.restarts,
            "last_record": self.last_record,
            "lag": self.lag if self._base != NULL else 0,
        }

    cdef void _detach(self) noexcept:
        if self._base != NULL:
            munmap(<void *>self._base, self._size)
            self._base = NULL
        if self._fd >= 0:
            try:
                os.close(self._fd)
            except OSError:
                pass
            self._fd = -1

    def close(self) -> None:
        """Unmap the ring.  Idempotent."""
        self._detach()

    def __dealloc__(self):
        if self._base != NULL:
            munmap(<void *>self._base, self._size)
        if self._fd >= 0:
            os.close(self._fd)
