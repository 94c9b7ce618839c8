"""The line-protocol sink: records → QuestDB / InfluxDB over TCP or HTTP.

``tcp://host:9009`` streams lines over one asyncio TCP connection (QuestDB's ILP/TCP
receiver); ``http://host:port/write?db=...`` POSTs each write as one request (QuestDB's
``/write`` on its HTTP port, InfluxDB 1.x ``/write``) with a small HTTP/1.1 client on
asyncio streams, keep-alive.  The record → line mapping is :mod:`xcol.sinks.ilp_encode`;
docs/sinks.md has the schema, the delivery guarantees and the metrics.

Delivery:

* HTTP: :meth:`IlpSink.write` returns once the server answered 2xx (204): the lines are
  stored.  ``400`` means the server refused the data itself (a line it cannot parse, a
  field whose type conflicts with the column): sending it again cannot succeed, so the
  batch is dropped, its records counted as ``rejected`` and the server's message logged
  and kept in ``last_rejection`` (InfluxDB 1.x stores the valid lines of such a request;
  QuestDB refuses the request whole).  Any other status (401/403/404 database not
  found, 413, 5xx) and any network error raises: the fan-out retries the same batch with
  backoff while its queue holds the rest.
* TCP: the protocol has no acknowledgements.  :meth:`IlpSink.write` returns once the
  lines are in the transport (waiting for it to drain below ``tcp_buffer_bytes``: a
  server that reads slowly pushes back on the fan-out).  Everything sent since the last
  flush is kept; :meth:`IlpSink.flush` waits until the server's TCP stack acknowledged
  every byte (the socket's send queue is empty, ``TIOCOUTQ``) and only then forgets it.
  When the connection breaks, the next :meth:`IlpSink.open` sends the unacknowledged
  bytes again first: at-least-once up to the server's kernel (a server that dies with
  acknowledged but unprocessed lines loses them; use HTTP for stored-on-success).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import fcntl
import json
import logging
import socket
import struct
import termios
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, cast
from urllib.parse import urlsplit, urlunsplit

from xcol._fast.hdr import HdrHistogram
from xcol.obs.schema import latency_summary
from xcol.sinks.base import Sink
from xcol.sinks.ilp_encode import (
    DEFAULT_TYPES,
    Decimals,
    EncodedBatch,
    IlpEncoder,
    TimestampSource,
    TopLayout,
)

__all__ = ["IlpHttpError", "IlpSink", "parse_ilp_url"]

log = logging.getLogger("xcol.sinks.ilp")

_LOG_EVERY_S = 10.0
_HIST_MAX_NS = 600_000_000_000  # 10 min


class IlpHttpError(ConnectionError):
    """The HTTP endpoint answered with a status that is worth retrying (not 2xx, not 400).

    :param status: the HTTP status code.
    :param message: the server's error message (``error`` / ``message`` of a JSON body).
    """

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"HTTP {status}: {message}")
        self.status = status
        self.message = message


@dataclass(frozen=True)
class _Endpoint:
    scheme: str
    host: str
    port: int
    target: str  # HTTP request target: path + query
    auth: str | None  # "Basic ..." header value
    display: str  # the URL without a password


def parse_ilp_url(url: str) -> _Endpoint:
    """Split a sink URL: ``tcp://host[:9009]`` or ``http://[user:pass@]host[:80]/path?q``
    (path ``/write`` when empty).  Raises ``ValueError`` naming the problem."""
    parts = urlsplit(url)
    if parts.scheme not in ("tcp", "http"):
        raise ValueError(f"ILP URL {url!r} must start with tcp:// or http://")
    try:
        port = parts.port
    except ValueError as exc:
        raise ValueError(f"bad ILP URL {url!r}: {exc}") from None
    host = parts.hostname
    if not host:
        raise ValueError(f"ILP URL {url!r} has no host")
    if port == 0:
        raise ValueError(f"ILP URL {url!r} has port 0")
    netloc = f"[{host}]" if ":" in host else host
    if parts.port:
        netloc += f":{parts.port}"
    display = urlunsplit((parts.scheme, netloc, parts.path, parts.query, ""))
    if parts.scheme == "tcp":
        if parts.path not in ("", "/") or parts.query:
            raise ValueError(f"ILP URL {url!r}: a tcp:// URL takes no path or query")
        return _Endpoint("tcp", host, port or 9009, "", None, display)
    auth = None
    if parts.username is not None:
        cred = f"{parts.username}:{parts.password or ''}".encode()
        auth = "Basic " + base64.b64encode(cred).decode()
    target = parts.path if parts.path not in ("", "/") else "/write"
    if parts.query:
        target += "?" + parts.query
    return _Endpoint("http", host, port or 80, target, auth, display)


# --------------------------------------------------------------------------- TCP


class _TcpProtocol(asyncio.Protocol):
    """Connection state for the TCP transport; the server sends nothing we need."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.lost: BaseException | None = None
        self.can_write = asyncio.Event()
        self.can_write.set()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it
        self.transport = cast(asyncio.Transport, transport)

    def pause_writing(self) -> None:
        self.can_write.clear()

    def resume_writing(self) -> None:
        self.can_write.set()

    def data_received(self, data: bytes) -> None:
        pass  # QuestDB's ILP/TCP receiver never answers; ignore anything that comes

    def eof_received(self) -> bool:
        self.lost = ConnectionResetError("the ILP server closed the connection")
        self.can_write.set()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        if self.lost is None:
            self.lost = exc or ConnectionResetError("ILP connection closed")
        self.can_write.set()


def _unsent_in_kernel(fd: int) -> int:
    """Bytes of the socket's send queue the peer has not acknowledged (Linux TIOCOUTQ)."""
    buf = fcntl.ioctl(fd, termios.TIOCOUTQ, b"\0\0\0\0")
    n: int = struct.unpack("i", buf)[0]
    return n


_TCP_ESTABLISHED = 1  # tcp_info.tcpi_state (linux/tcp_states.h)


def _established(sock: Any) -> bool:
    """Whether the socket is still ESTABLISHED (Linux TCP_INFO; True where unknown)."""
    try:
        info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 8)
    except (OSError, AttributeError):
        return True
    return bool(info[0] == _TCP_ESTABLISHED)


class _TcpLink:
    """One TCP connection at a time, plus the bytes sent but not yet acknowledged."""

    def __init__(self, ep: _Endpoint, timeout_s: float, buffer_bytes: int,
                 replay_bytes: int) -> None:
        self.ep = ep
        self.timeout_s = timeout_s
        self.buffer_bytes = buffer_bytes
        self.replay_bytes = replay_bytes
        self.proto: _TcpProtocol | None = None
        self.unacked: list[bytes] = []
        self.unacked_bytes = 0
        self.connects = 0
        self.replayed_bytes = 0
        self.ack_supported = True

    @property
    def connected(self) -> bool:
        return self.proto is not None and self.proto.lost is None

    async def connect(self) -> None:
        if self.connected:
            return
        self.abort()
        loop = asyncio.get_running_loop()
        async with asyncio.timeout(self.timeout_s):
            transport, proto = await loop.create_connection(
                _TcpProtocol, self.ep.host, self.ep.port)
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        transport.set_write_buffer_limits(high=self.buffer_bytes,
                                          low=self.buffer_bytes // 4)
        self.proto = proto
        self.connects += 1
        if self.unacked:
            # What the previous connection may not have delivered goes first, in order.
            log.info("ilp: resending %d unacknowledged bytes to %s", self.unacked_bytes,
                     self.ep.display)
            transport.write(b"".join(self.unacked))
            self.replayed_bytes += self.unacked_bytes

    def _live(self) -> tuple[_TcpProtocol, asyncio.Transport]:
        p = self.proto
        if p is None or p.transport is None:
            raise ConnectionError(f"ILP TCP {self.ep.display}: not connected")
        if p.lost is not None:
            raise ConnectionError(f"ILP TCP {self.ep.display}: {p.lost}")
        return p, p.transport

    async def send(self, data: bytes, queued: bool) -> None:
        """Hand ``data`` to the transport (unless ``queued``: it is in the replay buffer
        and was resent on connect) and wait until the transport drained below its limit."""
        p, tr = self._live()
        if not queued:
            self.unacked.append(data)
            self.unacked_bytes += len(data)
            tr.write(data)
        await self._drain(p, tr)
        if self.unacked_bytes > self.replay_bytes:
            await self.wait_acked()

    async def _drain(self, p: _TcpProtocol, tr: asyncio.Transport) -> None:
        while not p.can_write.is_set():
            before = tr.get_write_buffer_size()
            try:
                async with asyncio.timeout(self.timeout_s):
                    await p.can_write.wait()
            except TimeoutError:
                if tr.get_write_buffer_size() < before:
                    continue  # slow but moving: keep waiting
                raise TimeoutError(f"ILP TCP {self.ep.display}: the server took no data "
                                   f"for {self.timeout_s} s") from None
        self._live()

    def _pending_bytes(self, tr: asyncio.Transport) -> int:
        n = tr.get_write_buffer_size()
        if self.ack_supported:
            sock = tr.get_extra_info("socket")
            try:
                n += _unsent_in_kernel(sock.fileno())
            except (OSError, AttributeError, ValueError):
                self.ack_supported = False  # then "delivered" means "left the process"
        return n

    async def wait_acked(self) -> None:
        """Wait until every byte sent was acknowledged by the server, then forget it."""
        p, tr = self._live()
        left = self._pending_bytes(tr)
        deadline = time.monotonic() + self.timeout_s
        delay = 0.0002
        while left > 0:
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.01)
            p, tr = self._live()
            if not _established(tr.get_extra_info("socket")):
                raise ConnectionResetError(f"ILP TCP {self.ep.display}: connection closed "
                                           f"with {left} bytes not acknowledged")
            now_left = self._pending_bytes(tr)
            now = time.monotonic()
            if now_left < left:
                deadline = now + self.timeout_s
            elif now >= deadline:
                raise TimeoutError(f"ILP TCP {self.ep.display}: {now_left} bytes not "
                                   f"acknowledged for {self.timeout_s} s")
            left = now_left
        # An empty send queue also follows a reset (the kernel drops what it held): only
        # an established connection means the peer acknowledged it.
        p, tr = self._live()
        if not _established(tr.get_extra_info("socket")):
            raise ConnectionResetError(f"ILP TCP {self.ep.display}: connection reset")
        self.unacked.clear()
        self.unacked_bytes = 0

    def abort(self) -> None:
        p, self.proto = self.proto, None
        if p is not None and p.transport is not None:
            p.transport.abort()

    async def close(self, wait: bool = True) -> None:
        """Close, first waiting for the acknowledgement of what was sent (``wait``, when
        the connection still looks healthy); what is not acknowledged is kept."""
        if wait and self.connected:
            try:
                await self.wait_acked()
            except (OSError, TimeoutError) as exc:
                log.warning("ilp: closing %s with %d bytes not acknowledged (%s); they are "
                            "sent again on the next open", self.ep.display,
                            self.unacked_bytes, exc)
        p, self.proto = self.proto, None
        if p is not None and p.transport is not None:
            p.transport.close()


# --------------------------------------------------------------------------- HTTP


class _HttpLink:
    """A keep-alive HTTP/1.1 connection that POSTs bodies to one target."""

    def __init__(self, ep: _Endpoint, timeout_s: float) -> None:
        self.ep = ep
        self.timeout_s = timeout_s
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.connects = 0
        host = f"[{ep.host}]" if ":" in ep.host else ep.host
        head = (f"POST {ep.target} HTTP/1.1\r\nHost: {host}:{ep.port}\r\n"
                "User-Agent: xcol-ilp\r\nContent-Type: text/plain; charset=utf-8\r\n")
        if ep.auth:
            head += f"Authorization: {ep.auth}\r\n"
        self._head = head.encode("latin-1") + b"Content-Length: %d\r\n\r\n"

    @property
    def connected(self) -> bool:
        return self.writer is not None and not self.writer.is_closing()

    async def connect(self) -> None:
        if self.connected:
            return
        self.abort()
        async with asyncio.timeout(self.timeout_s):
            self.reader, self.writer = await asyncio.open_connection(self.ep.host,
                                                                     self.ep.port)
        self.connects += 1

    async def post(self, body: bytes) -> tuple[int, str]:
        """POST ``body``; (status, server message).  A keep-alive connection the server
        closed while idle is replaced once, at once; other failures raise."""
        for attempt in (0, 1):
            reused = self.connected
            await self.connect()
            r, w = self.reader, self.writer
            assert r is not None and w is not None
            started = False
            try:
                async with asyncio.timeout(self.timeout_s):
                    w.writelines((self._head % len(body), body))
                    await w.drain()
                    line = await r.readline()
                    if not line:
                        raise ConnectionResetError("connection closed before the response")
                    started = True
                    return await self._response(line, r)
            except (OSError, asyncio.IncompleteReadError, TimeoutError) as exc:
                self.abort()
                if attempt == 0 and reused and not started and not isinstance(
                        exc, TimeoutError):
                    continue
                if isinstance(exc, TimeoutError):
                    raise TimeoutError(f"ILP HTTP {self.ep.display}: no response in "
                                       f"{self.timeout_s} s") from None
                raise ConnectionError(f"ILP HTTP {self.ep.display}: "
                                      f"{type(exc).__name__}: {exc}") from exc
        raise AssertionError("unreachable")

    async def _response(self, status_line: bytes, r: asyncio.StreamReader) -> tuple[int, str]:
        parts = status_line.split(None, 2)
        if len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or not parts[1].isdigit():
            raise ConnectionError(f"bad HTTP status line {status_line[:80]!r}")
        status = int(parts[1])
        headers: dict[bytes, bytes] = {}
        while True:
            h = await r.readline()
            if not h:
                raise asyncio.IncompleteReadError(b"", None)
            if h in (b"\r\n", b"\n"):
                break
            k, _, v = h.partition(b":")
            headers[k.strip().lower()] = v.strip()
        body = b""
        close = (headers.get(b"connection", b"").lower() == b"close"
                 or parts[0] == b"HTTP/1.0")
        if status in (204, 304) or 100 <= status < 200:
            pass
        elif headers.get(b"transfer-encoding", b"").lower() == b"chunked":
            chunks = []
            while True:
                size = int((await r.readline()).split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while (await r.readline()) not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    break
                chunks.append(await r.readexactly(size))
                await r.readexactly(2)
            body = b"".join(chunks)
        elif b"content-length" in headers:
            body = await r.readexactly(int(headers[b"content-length"]))
        else:
            body = await r.read()
            close = True
        if close:
            self.abort()
        return status, _server_message(body)

    def abort(self) -> None:
        w, self.writer, self.reader = self.writer, None, None
        if w is not None:
            w.transport.abort()

    async def close(self) -> None:
        w, self.writer, self.reader = self.writer, None, None
        if w is not None:
            w.close()
            with contextlib.suppress(OSError, TimeoutError):
                async with asyncio.timeout(1.0):
                    await w.wait_closed()


def _server_message(body: bytes) -> str:
    text = body.decode("utf-8", "replace").strip()
    try:
        doc = json.loads(text)
    except ValueError:
        return text[:500]
    if isinstance(doc, dict):
        for k in ("error", "message"):
            if isinstance(doc.get(k), str):
                extra = f" (line {doc['line']})" if "line" in doc else ""
                return str(doc[k])[:500] + extra
    return text[:500]


# --------------------------------------------------------------------------- the sink


class _Pending:
    """The batch being written; kept across a failure so the retry is not re-encoded."""

    __slots__ = ("batch", "enc", "queued")

    def __init__(self, batch: bytes, enc: EncodedBatch) -> None:
        self.batch = batch
        self.enc = enc
        self.queued = False  # TCP: its lines are in the replay buffer


class IlpSink(Sink):
    """Write records as InfluxDB line protocol to QuestDB or InfluxDB.

    :param url: ``tcp://host:9009`` or ``http://[user:pass@]host:port/write?db=NAME``.
    :param name: metrics label.
    :param types: record types written (default trades, BBO, top-N); the rest are
        counted as skipped.
    :param prefix: measurement name prefix.
    :param timestamp: ``"recv"`` (default) or ``"exchange"``: see
        :class:`~xcol.sinks.ilp_encode.IlpEncoder`.
    :param decimals: ``"double"``, ``"string"`` or ``"both"``.
    :param top_layout: ``"wide"`` or ``"rows"``.
    :param unique_timestamps: shift colliding timestamps of a series by 1 ns.
    :param timeout_s: connect timeout; HTTP response timeout; TCP: how long the server may
        take no data (or acknowledge nothing) before the connection counts as failed.
    :param tcp_buffer_bytes: TCP transport write-buffer high-water mark: a write waits
        until the buffer drains below it.
    :param replay_bytes: TCP: once this much was sent without a flush, a write waits for
        the server's acknowledgement (bounds the replay buffer).
    """

    def __init__(
        self,
        url: str,
        *,
        name: str = "ilp",
        types: Iterable[str] = DEFAULT_TYPES,
        prefix: str = "",
        timestamp: TimestampSource = "recv",
        decimals: Decimals = "double",
        top_layout: TopLayout = "wide",
        unique_timestamps: bool = True,
        timeout_s: float = 10.0,
        tcp_buffer_bytes: int = 4 * 1024 * 1024,
        replay_bytes: int = 64 * 1024 * 1024,
    ) -> None:
        super().__init__(name)
        if timeout_s <= 0:
            raise ValueError(f"timeout_s must be > 0, got {timeout_s}")
        if tcp_buffer_bytes <= 0 or replay_bytes <= 0:
            raise ValueError("tcp_buffer_bytes and replay_bytes must be > 0")
        self.endpoint = parse_ilp_url(url)
        self.encoder = IlpEncoder(types=types, prefix=prefix, timestamp=timestamp,
                                  decimals=decimals, top_layout=top_layout,
                                  unique_timestamps=unique_timestamps)
        self._tcp: _TcpLink | None = None
        self._http: _HttpLink | None = None
        if self.endpoint.scheme == "tcp":
            self._tcp = _TcpLink(self.endpoint, timeout_s, tcp_buffer_bytes, replay_bytes)
        else:
            self._http = _HttpLink(self.endpoint, timeout_s)
        self._pending: _Pending | None = None
        self._open = False
        self._ok = False
        self._last_reject_log = -1e18
        #: Records received (each batch counted once, retries not again).
        self.records = 0
        #: Records whose lines the server took (TCP: the transport took).
        self.written = 0
        #: Lines and bytes of line protocol delivered, and the writes that carried them.
        self.lines = 0
        self.bytes = 0
        self.batches = 0
        #: Records of types not written, by type.
        self.skipped: dict[str, int] = {}
        #: Records that could not be encoded, by reason (json, header, value, tag).
        self.bad: dict[str, int] = {}
        #: HTTP 400: records (and writes) the server refused; its last message.
        self.rejected = 0
        self.rejected_batches = 0
        self.last_rejection: str | None = None
        #: Operations that raised (the fan-out retries them), and writes that were retries.
        self.failures = 0
        self.retries = 0
        self.last_error: str | None = None
        #: Time of each successful write (to the server's answer, or the transport) and
        #: each flush, ns.
        self.write_ns = HdrHistogram(1, _HIST_MAX_NS, 3)
        self.flush_ns = HdrHistogram(1, _HIST_MAX_NS, 3)

    # -- state ---------------------------------------------------------------------------

    @property
    def transport(self) -> str:
        """``"tcp"`` or ``"http"``."""
        return self.endpoint.scheme

    @property
    def healthy(self) -> bool:
        if not (self._open and self._ok):
            return False
        return self._tcp.connected if self._tcp is not None else True

    @property
    def pending(self) -> int:
        """Records received but neither delivered nor counted as skipped, bad or rejected
        (the batch being written or retried)."""
        return (self.records - self.written - self.rejected - sum(self.skipped.values())
                - sum(self.bad.values()))

    def histograms(self) -> dict[str, HdrHistogram]:
        """Batch write and flush durations (ns)."""
        return {"write_ns": self.write_ns, "flush_ns": self.flush_ns}

    def stats(self) -> dict[str, Any]:
        """Counters for ``/metrics``; ``records = written + skipped + bad + rejected +
        pending`` at all times."""
        out: dict[str, Any] = {
            "transport": self.transport, "url": self.endpoint.display,
            "healthy": self.healthy, "records": self.records, "written": self.written,
            "lines": self.lines, "bytes": self.bytes, "batches": self.batches,
            "skipped": dict(self.skipped), "bad": dict(self.bad),
            "rejected": self.rejected, "rejected_batches": self.rejected_batches,
            "last_rejection": self.last_rejection, "pending": self.pending,
            "failures": self.failures, "retries": self.retries,
            "last_error": self.last_error,
            "write_ns": latency_summary(self.write_ns),
            "flush_ns": latency_summary(self.flush_ns),
        }
        if self._tcp is not None:
            out.update(connects=self._tcp.connects, unacked_bytes=self._tcp.unacked_bytes,
                       replayed_bytes=self._tcp.replayed_bytes,
                       ack_supported=self._tcp.ack_supported)
        elif self._http is not None:
            out["connects"] = self._http.connects
        return out

    def _failed(self, op: str, exc: BaseException) -> None:
        self._ok = False
        self.failures += 1
        self.last_error = f"{op}: {type(exc).__name__}: {exc}"

    # -- Sink API ------------------------------------------------------------------------

    async def open(self) -> None:
        try:
            if self._tcp is not None:
                await self._tcp.connect()  # resends what was not acknowledged
            else:
                assert self._http is not None
                await self._http.connect()
        except Exception as exc:
            self._failed("open", exc)
            raise
        self._open = True
        self._ok = True

    async def write(self, batch: bytes, n_records: int) -> None:
        p = self._pending
        if p is None or p.batch is not batch:
            enc = self.encoder.encode(batch)
            self.records += enc.records
            for k, v in enc.skipped.items():
                self.skipped[k] = self.skipped.get(k, 0) + v
            for k, v in enc.bad.items():
                self.bad[k] = self.bad.get(k, 0) + v
            if enc.bad:
                log.debug("ilp: %d bad record(s) skipped: %s", enc.bad_total, enc.bad)
            p = _Pending(batch, enc)
            self._pending = p
        else:
            self.retries += 1
        enc = p.enc
        if not enc.data:
            self.written += enc.encoded  # level records with no levels: nothing to send
            self._pending = None
            return
        t0 = time.monotonic_ns()
        try:
            if self._tcp is not None:
                await self._tcp.send(enc.data, p.queued)
                p.queued = True
                status, message = 204, ""
            else:
                assert self._http is not None
                status, message = await self._http.post(enc.data)
                if not 200 <= status < 300 and status != 400:
                    raise IlpHttpError(status, message)
        except Exception as exc:
            if self._tcp is not None and self._tcp.unacked and self._tcp.unacked[-1] is enc.data:
                p.queued = True  # it is in the replay buffer: the reconnect resends it
            self._failed("write", exc)
            raise
        self._pending = None
        self._ok = True
        if status == 400:
            self.rejected += enc.encoded
            self.rejected_batches += 1
            self.last_rejection = message
            now = time.monotonic()
            if now - self._last_reject_log >= _LOG_EVERY_S:
                self._last_reject_log = now
                log.error("ilp sink %s: %s rejected %d record(s) (%d lines) with 400: %s; "
                          "dropped (%d rejected so far)", self.name, self.endpoint.display,
                          enc.encoded, enc.lines, message, self.rejected)
            return
        self.write_ns.record(max(1, time.monotonic_ns() - t0))
        self.written += enc.encoded
        self.lines += enc.lines
        self.bytes += len(enc.data)
        self.batches += 1

    async def flush(self) -> None:
        if self._tcp is None:
            return  # every HTTP write was answered: nothing is in flight
        t0 = time.monotonic_ns()
        try:
            await self._tcp.wait_acked()
        except Exception as exc:
            self._failed("flush", exc)
            raise
        self.flush_ns.record(max(1, time.monotonic_ns() - t0))

    async def close(self) -> None:
        ok = self._ok
        self._open = False
        self._ok = False
        if self._tcp is not None:
            await self._tcp.close(wait=ok)  # after a failure: close at once, keep the bytes
        elif self._http is not None:
            await self._http.close()
