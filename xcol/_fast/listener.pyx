# cython: language_level=3
# distutils: language=c++
"""The WebSocket listener that feeds frames to an engine with no Python call
per frame.

picows calls :meth:`FeedListener.on_ws_frame` (a ``cpdef`` method, dispatched
in C) for every frame; the frame's payload pointer goes straight into
:meth:`Engine.feed_line` with both receive clocks.  Python is called only per
*read* (to hand the batch of encoded records to the fan-out, when the frame is
the last one of a socket read) and for the rare frames that need an answer
(control messages such as Deribit's test_request).
"""

cimport cython
from libc.stdint cimport int64_t

from picows.picows cimport WSListener, WSTransport, WSFrame, WSMsgType
from xcol._fast.clock cimport mono_ns, wall_ns
from xcol._fast.engine cimport Engine, R_CONTROL, R_ERROR


def monotonic_ns() -> int:
    """CLOCK_MONOTONIC in ns, the clock every receive time is taken on."""
    return mono_ns()


@cython.final
cdef class FeedListener(WSListener):
    """Feeds one connection ("line") of one engine.

    :param engine: the market's :class:`~xcol._fast.engine.Engine`.
    :param line: this connection's line id (0..15) for arbitration.
    :param on_batch: ``on_batch(data: bytes, n_records: int)`` gets the records
        encoded during a socket read.
    :param on_control: ``on_control(line, payload: bytes)`` for control frames
        (acks, pongs, heartbeats) when ``want_control`` is true.
    :param on_event: ``on_event(line, what: str)`` for connected/disconnected.
    """

    cdef Engine engine
    cdef readonly int line
    cdef object on_batch
    cdef object on_control
    cdef object on_event
    cdef public bint want_control
    cdef readonly WSTransport transport
    cdef readonly long long frames
    cdef readonly long long errors
    cdef readonly long long other_frames
    cdef readonly long long last_rx
    cdef int64_t wall_off           # wall - monotonic, read at the first frame of a read
    cdef bint new_read

    def __init__(self, Engine engine, int line, on_batch, on_control=None, on_event=None):
        self.engine = engine
        self.line = line
        self.on_batch = on_batch
        self.on_control = on_control
        self.on_event = on_event
        self.want_control = on_control is not None
        self.transport = None
        self.new_read = True

    cpdef on_ws_connected(self, WSTransport transport):
        self.transport = transport
        self.new_read = True
        if self.on_event is not None:
            self.on_event(self.line, "connected")

    cpdef on_ws_disconnected(self, WSTransport transport):
        self.flush()
        if self.on_event is not None:
            self.on_event(self.line, "disconnected")

    cpdef on_ws_frame(self, WSTransport transport, WSFrame frame):
        cdef int64_t rx
        cdef int r
        cdef WSMsgType t = frame.msg_type
        # A frame of the same socket read as the last one starts when the last one's
        # records were queued (the engine read the clock there): one clock read per
        # frame.  That start is earlier than this call, so the latency includes picows
        # cutting this frame out of the buffer.
        rx = self.engine.t_end if not self.new_read and self.engine.t_end else mono_ns()
        self.last_rx = rx
        if self.new_read:
            # The frames of one socket read arrived together: the wall clock is read
            # once per read and each frame's receive wall time is its monotonic time
            # plus that offset (one clock read per frame instead of two).
            self.wall_off = wall_ns() - rx
            self.new_read = False
        if t == WSMsgType.TEXT or t == WSMsgType.BINARY:
            self.frames += 1
            if not frame.fin:
                self.errors += 1        # fragmented data frames are not used by the venues
            else:
                r = self.engine.feed_line(self.line, frame.payload_ptr,
                                          <size_t>frame.payload_size, rx, rx + self.wall_off)
                if r == R_CONTROL and self.want_control:
                    self.on_control(self.line, frame.get_payload_as_bytes())
                elif r == R_ERROR:
                    self.errors += 1
        elif t == WSMsgType.CLOSE:
            transport.send_close(frame.get_close_code(), frame.get_close_message())
            transport.disconnect()
        elif t == WSMsgType.PING:
            # Answered here, not by picows's auto pong (which never calls this): a read
            # that ends with a ping must still end here with last_in_buffer, or the next
            # read's first frame would take its start from this read.
            transport.send_pong(frame.get_payload_as_bytes())
            self.other_frames += 1
        else:
            self.other_frames += 1
        if frame.last_in_buffer:
            self.new_read = True
            if self.engine.out_len:
                self.flush()

    cpdef flush(self):
        """Hand the records encoded so far to ``on_batch``."""
        data, n = self.engine.take_output()
        if data is not None:
            self.on_batch(data, n)
