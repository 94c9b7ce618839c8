"""The collector's HTTP endpoints, on a small HTTP/1.1 server over ``asyncio.start_server``.

=============== ==================================================================
``/health``     200 ``{"status": "ok"}`` while the event loop answers.
``/ready``      200 ``{"ready": true, "reasons": []}`` when the readiness callback returns
                no reasons, else 503 with ``{"ready": false, "reasons": [...]}``.
``/metrics``    Prometheus text (``text/plain; version=0.0.4``), see
                :mod:`xcol.obs.metrics`.
``/stats``      the JSON document described in :mod:`xcol.obs.schema`.
``/histograms`` ``{name: encoded}``: every HDR histogram the collector keeps, each in the
                ``hdrhistogram`` package's compressed base64 encoding
                (``HdrHistogram.decode`` reads it back).  404 when the server was given
                no histograms callback.
=============== ==================================================================

GET and HEAD only; bodies are not accepted.  Connections are kept alive (HTTP/1.1 default,
or ``Connection: keep-alive`` from HTTP/1.0) until the client closes, asks to close, goes
idle past ``idle_timeout`` or sends something the server cannot parse (400 then close).
A callback that raises gives a 500 and a logged traceback; the server keeps serving.

It binds 127.0.0.1 by default: the stats name internal endpoints and nothing here is
authenticated, so expose it further only behind something that is.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import logging
import math
import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from xcol.obs.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from xcol.obs.metrics import render_stats

__all__ = ["DEFAULT_HOST", "DEFAULT_PORT", "HistogramsFn", "ObsServer", "ReadyFn", "StatsFn"]

log = logging.getLogger("xcol.obs.http")

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 9090  # config's runtime.http default

StatsFn = Callable[[], Mapping[str, Any] | Awaitable[Mapping[str, Any]]]
ReadyFn = Callable[[], Sequence[str] | Awaitable[Sequence[str]]]
#: returns the histograms by name (objects with ``encode() -> bytes``, e.g.
#: :class:`xcol._fast.hdr.HdrHistogram`)
HistogramsFn = Callable[[], Mapping[str, Any] | Awaitable[Mapping[str, Any]]]

_JSON = "application/json"
_TEXT = "text/plain; charset=utf-8"
_REASONS = {
    200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed",
    408: "Request Timeout", 413: "Content Too Large", 431: "Request Header Fields Too Large",
    500: "Internal Server Error", 501: "Not Implemented", 503: "Service Unavailable",
    505: "HTTP Version Not Supported",
}
_PATHS = ("/health", "/ready", "/metrics", "/stats", "/histograms")
_VERSION_RE = re.compile(r"HTTP/[0-9]\.[0-9]\Z")
_TOKEN_RE = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+\Z")


@dataclass(slots=True)
class _Request:
    method: str
    path: str
    keep_alive: bool
    headers: dict[str, str]


class _BadRequest(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _finite(obj: Any) -> Any:
    """``obj`` with NaN and infinities replaced by None (JSON has no such numbers)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, Mapping):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_finite(v) for v in obj]
    return obj


def _json_body(obj: Any) -> bytes:
    try:
        text = json.dumps(obj, allow_nan=False, separators=(",", ":"))
    except ValueError:
        text = json.dumps(_finite(obj), allow_nan=False, separators=(",", ":"))
    return text.encode() + b"\n"


async def _call(fn: Callable[[], Any]) -> Any:
    result = fn()
    if inspect.isawaitable(result):
        result = await result
    return result


class ObsServer:
    """Serves ``/health``, ``/ready``, ``/metrics``, ``/stats`` and ``/histograms`` from
    callbacks.

    :param stats: returns the ``/stats`` document (a :class:`~xcol.obs.schema.Stats`);
        may be a coroutine function.  Called once per ``/stats`` or ``/metrics`` request.
    :param ready: returns the reasons the collector is not ready (empty when ready);
        may be a coroutine function.  ``None`` means always ready.
    :param histograms: returns the HDR histograms by name for ``/histograms``; may be a
        coroutine function.  ``None``: ``/histograms`` is 404.
    :param idle_timeout: seconds a kept-alive connection may sit between requests.
    :param max_header_bytes: the largest request head accepted (431 beyond).

    Use ``await server.start(host, port)`` (port 0 picks a free port, see :attr:`port`)
    and ``await server.stop()``, or ``async with``.
    """

    def __init__(self, stats: StatsFn, ready: ReadyFn | None = None, *,
                 histograms: HistogramsFn | None = None, idle_timeout: float = 30.0,
                 max_header_bytes: int = 16384) -> None:
        self._stats = stats
        self._ready = ready
        self._histograms = histograms
        self.idle_timeout = idle_timeout
        self.max_header_bytes = max_header_bytes
        self._server: asyncio.Server | None = None
        self._clients: set[asyncio.Task[None]] = set()
        self._host = DEFAULT_HOST
        self._port = 0
        self.requests = 0
        self.errors = 0

    # ------------------------------------------------------------------- lifecycle

    async def start(self, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT) -> None:
        """Bind and start serving; ``port=0`` picks a free port (see :attr:`port`)."""
        if self._server is not None:
            raise RuntimeError("server already started")
        self._server = await asyncio.start_server(
            self._client, host, port, limit=self.max_header_bytes, reuse_address=True)
        sock = self._server.sockets[0].getsockname()
        self._host, self._port = sock[0], sock[1]
        log.info("observability HTTP on %s", self.url)

    async def stop(self) -> None:
        """Stop listening and close every connection (in-flight responses are cut)."""
        server, self._server = self._server, None
        if server is None:
            return
        server.close()
        for task in list(self._clients):
            task.cancel()
        if self._clients:
            await asyncio.gather(*self._clients, return_exceptions=True)
        await server.wait_closed()

    async def __aenter__(self) -> ObsServer:
        if self._server is None:
            await self.start(port=0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def host(self) -> str:
        """The address bound."""
        return self._host

    @property
    def port(self) -> int:
        """The port bound (the real one when started with port 0)."""
        return self._port

    @property
    def url(self) -> str:
        """``http://host:port`` of the running server."""
        host = f"[{self._host}]" if ":" in self._host else self._host
        return f"http://{host}:{self._port}"

    # ------------------------------------------------------------------ connection

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._clients.add(task)
        try:
            await self._serve(reader, writer)
        except (ConnectionError, asyncio.CancelledError):
            pass
        except Exception:  # a bug here must not take the listener down
            log.exception("HTTP connection handler failed")
        finally:
            self._clients.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            try:
                head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), self.idle_timeout)
            except asyncio.IncompleteReadError as exc:
                if exc.partial.strip():
                    await self._respond(writer, 400, _TEXT, b"incomplete request\n",
                                        keep_alive=False)
                return
            except asyncio.LimitOverrunError:
                await self._respond(writer, 431, _TEXT, b"request head too large\n",
                                    keep_alive=False)
                return
            except TimeoutError:
                return
            try:
                req = self._parse(head)
                await self._discard_body(reader, req)
            except _BadRequest as bad:
                await self._respond(writer, bad.status, _TEXT, bad.message.encode() + b"\n",
                                    keep_alive=False)
                return
            status, ctype, body, extra = await self._dispatch(req.method, req.path)
            await self._respond(writer, status, ctype, body, keep_alive=req.keep_alive,
                                head_only=req.method == "HEAD", extra=extra)
            if not req.keep_alive:
                return

    @staticmethod
    def _parse(head: bytes) -> _Request:
        lines = head.decode("latin-1").split("\r\n")
        # RFC 9112 2.2: ignore empty lines before the request line.
        while lines and lines[0] == "":
            lines.pop(0)
        if not lines:
            raise _BadRequest(400, "empty request")
        parts = lines[0].split(" ")
        if len(parts) != 3 or not _TOKEN_RE.match(parts[0]) or not parts[1]:
            raise _BadRequest(400, "malformed request line")
        method, target, version = parts
        if not _VERSION_RE.match(version):
            raise _BadRequest(400, "malformed request line")
        if version not in ("HTTP/1.0", "HTTP/1.1"):
            raise _BadRequest(505, "only HTTP/1.0 and HTTP/1.1 are served")
        headers: dict[str, str] = {}
        for line in lines[1:]:
            if not line:
                continue
            name, sep, value = line.partition(":")
            if not sep or not _TOKEN_RE.match(name):
                raise _BadRequest(400, "malformed header line")
            headers[name.lower()] = value.strip()
        if "transfer-encoding" in headers:
            raise _BadRequest(501, "request bodies are not accepted")
        conn = {t.strip().lower() for t in headers.get("connection", "").split(",")}
        # HTTP/1.1 keeps the connection unless told otherwise; HTTP/1.0 closes unless asked.
        keep_alive = "close" not in conn if version == "HTTP/1.1" else "keep-alive" in conn
        if target.startswith("/"):
            path = urlsplit(target).path
        elif target.startswith(("http://", "https://")):
            path = urlsplit(target).path or "/"
        elif target == "*":
            path = "*"
        else:
            raise _BadRequest(400, "malformed request target")
        return _Request(method, path, keep_alive, headers)

    async def _discard_body(self, reader: asyncio.StreamReader, req: _Request) -> None:
        raw = req.headers.get("content-length")
        if raw is None:
            return
        if not raw.isdigit():
            raise _BadRequest(400, "bad Content-Length")
        n = int(raw)
        if n > self.max_header_bytes:
            raise _BadRequest(413, "request body too large")
        if n:
            try:
                await reader.readexactly(n)
            except asyncio.IncompleteReadError:
                raise _BadRequest(400, "request body shorter than Content-Length") from None

    async def _dispatch(self, method: str, path: str
                        ) -> tuple[int, str, bytes, dict[str, str] | None]:
        self.requests += 1
        if path not in _PATHS or (path == "/histograms" and self._histograms is None):
            return 404, _JSON, _json_body({"error": "not found", "path": path}), None
        if method not in ("GET", "HEAD"):
            return (405, _JSON, _json_body({"error": "method not allowed", "method": method}),
                    {"Allow": "GET, HEAD"})
        try:
            if path == "/health":
                return 200, _JSON, _json_body({"status": "ok"}), None
            if path == "/ready":
                reasons = [] if self._ready is None else list(await _call(self._ready))
                reasons = [str(r) for r in reasons]
                status = 503 if reasons else 200
                return status, _JSON, _json_body({"ready": not reasons, "reasons": reasons}), None
            if path == "/histograms":
                assert self._histograms is not None
                hists = await _call(self._histograms)
                encoded: dict[str, str] = {}
                for name, h in hists.items():
                    # ~0.2 ms a full histogram: let the loop read its sockets in between
                    # rather than hold it for all of them at once
                    encoded[str(name)] = h.encode().decode("ascii")
                    await asyncio.sleep(0)
                return 200, _JSON, _json_body(encoded), None
            stats = await _call(self._stats)
            if path == "/metrics":
                return 200, METRICS_CONTENT_TYPE, render_stats(stats).encode(), None
            return 200, _JSON, _json_body(stats), None
        except Exception:
            self.errors += 1
            log.exception("HTTP %s %s failed", method, path)
            return 500, _JSON, _json_body({"error": "internal error"}), None

    async def _respond(self, writer: asyncio.StreamWriter, status: int, ctype: str, body: bytes,
                       *, keep_alive: bool, head_only: bool = False,
                       extra: dict[str, str] | None = None) -> None:
        lines = [
            f"HTTP/1.1 {status} {_REASONS.get(status, 'Unknown')}",
            f"Content-Type: {ctype}",
            f"Content-Length: {len(body)}",
            "Cache-Control: no-store",
            f"Connection: {'keep-alive' if keep_alive else 'close'}",
        ]
        if extra:
            lines.extend(f"{k}: {v}" for k, v in extra.items())
        data = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        writer.write(data if head_only else data + body)
        await writer.drain()
