"""The header peeks read the raw frame (not a padded copy): every read must stay inside it.

Each prefix of a later bookTicker / depth copy is placed so that it ends right before a
page the process may not read (``mprotect(PROT_NONE)``), then fed on a second line.  A
read past the frame's end faults, so the feeding runs in a child process and the test
checks that it finished.  The frame is handed over as a bytes object built in that memory
(CPython 3 layout: refcount, type, size, hash, data, NUL).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

CHILD = r'''
import ctypes, mmap, sys
from xcol._fast.engine import Engine

PAGE = mmap.PAGESIZE
libc = ctypes.CDLL(None)
libc.mmap.restype = ctypes.c_void_p
libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int,
                      ctypes.c_int, ctypes.c_long]
libc.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
base = libc.mmap(None, 2 * PAGE, 3, 0x22, -1, 0)
assert libc.mprotect(base + PAGE, PAGE, 0) == 0
HEAD = 32  # ob_refcnt, ob_type, ob_size, ob_shash

def at_page_end(payload):
    """A bytes object whose data (and its NUL) end at the guard page."""
    n = len(payload)
    start = base + PAGE - (n + 1) - HEAD
    ctypes.memmove(start, ctypes.byref(ctypes.c_ssize_t(1 << 40)), 8)
    ctypes.memmove(start + 8, ctypes.byref(ctypes.c_void_p(id(bytes))), 8)
    ctypes.memmove(start + 16, ctypes.byref(ctypes.c_ssize_t(n)), 8)
    ctypes.memmove(start + 24, ctypes.byref(ctypes.c_ssize_t(-1)), 8)
    ctypes.memmove(start + 32, payload + b"\0", n + 1)
    obj = ctypes.cast(start, ctypes.py_object).value
    assert obj == payload
    return obj

bt = (b'{"stream":"btcusdt@bookTicker","data":{"e":"bookTicker","u":%d,"s":"BTCUSDT",'
      b'"b":"100.10","B":"1.000","a":"100.20","A":"2.000","T":1,"E":2}}')
e = Engine("binance-usdm")
e.add_instrument("BTCUSDT", 2, 3)
for line in (0, 1):              # two lines have delivered bookTickers: peeking is on
    assert e.feed_on(line, bt % 5, 1, 1) >= 0
full = bt % 5
fed = 0
for k in range(1, len(full) + 1):
    for tail in (b"", b"}}", b'"}}'):
        frame = full[:k] + tail
        e.feed_on(1, at_page_end(frame), 2, 2)
        fed += 1
print("fed", fed, flush=True)
'''


@pytest.mark.skipif(sys.platform != "linux", reason="uses mmap/mprotect through libc")
def test_bbo_peek_never_reads_past_the_frame() -> None:
    out = subprocess.run([sys.executable, "-c", CHILD], cwd=ROOT, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, (out.returncode, out.stderr[-2000:])
    assert out.stdout.startswith("fed ")
