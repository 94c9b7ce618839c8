"""A small asyncio HTTP/1.1 GET client for REST snapshots and metadata.

One request per connection (``Connection: close``), TLS with certificate
verification for ``https://``, Content-Length and chunked bodies, a timeout,
and errors that name the URL.  Snapshots are rare (start-up and resyncs), so
simplicity beats connection reuse here.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from email.utils import parsedate_to_datetime
from urllib.parse import urlsplit


class RestError(Exception):
    """A REST request failed; the message names the URL and the reason.

    ``status`` is the HTTP status (0: no answer); ``retry_after`` the seconds the server
    asked the client to wait (its ``Retry-After`` header; None when absent or unreadable).
    """

    def __init__(self, url: str, reason: str, status: int = 0,
                 retry_after: float | None = None) -> None:
        super().__init__(f"GET {url}: {reason}")
        self.url = url
        self.status = status
        self.retry_after = retry_after


def parse_retry_after(value: bytes | str, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` value: delay-seconds (Binance sends these)
    or an HTTP-date (RFC 9110); None when it is neither.  A date in the past is 0.

    :param now: the wall-clock time a date is measured from (default: now).
    """
    text = value.decode("latin-1") if isinstance(value, bytes) else value
    text = text.strip()
    if not text:
        return None
    try:
        secs = float(text)
    except ValueError:
        pass
    else:
        # nan/inf or a negative delay are not delays; refuse them rather than sleep forever
        return secs if 0.0 <= secs < float("inf") else None
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        return None  # RFC 9110 dates are GMT; one without a zone is not one
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def _dechunk(body: bytes, url: str) -> bytes:
    out = bytearray()
    pos = 0
    while True:
        eol = body.find(b"\r\n", pos)
        if eol < 0:
            raise RestError(url, "truncated chunked body")
        size = int(body[pos:eol].split(b";")[0], 16)
        if size == 0:
            return bytes(out)
        start = eol + 2
        out += body[start:start + size]
        pos = start + size + 2


async def get(url: str, timeout: float = 10.0, max_bytes: int = 64 * 1024 * 1024) -> bytes:
    """GET ``url``; the body of a 200 answer, else :class:`RestError`."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise RestError(url, "not an http(s) URL")
    secure = parts.scheme == "https"
    port = parts.port or (443 if secure else 80)
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    ctx = ssl.create_default_context() if secure else None
    try:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(parts.hostname, port, ssl=ctx), timeout)
    except (TimeoutError, OSError) as exc:
        raise RestError(url, f"cannot connect ({exc or 'timeout'})") from exc
    try:
        host = parts.hostname if parts.port is None else f"{parts.hostname}:{parts.port}"
        writer.write(
            f"GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: xcol\r\n"
            "Accept: application/json\r\nConnection: close\r\n\r\n".encode())
        try:
            raw = await asyncio.wait_for(reader.read(max_bytes + 65536), timeout)
            while not reader.at_eof() and len(raw) < max_bytes:
                more = await asyncio.wait_for(reader.read(1 << 20), timeout)
                if not more:
                    break
                raw += more
        except TimeoutError as exc:
            raise RestError(url, f"no complete answer within {timeout} s") from exc
    finally:
        writer.close()
    head, sep, body = raw.partition(b"\r\n\r\n")
    if not sep:
        raise RestError(url, "malformed HTTP answer")
    lines = head.split(b"\r\n")
    try:
        status = int(lines[0].split()[1])
    except (IndexError, ValueError) as exc:
        raise RestError(url, f"malformed status line {lines[0][:80]!r}") from exc
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(b":")
        headers[k.strip().lower()] = v.strip()
    if headers.get(b"transfer-encoding", b"").lower() == b"chunked":
        body = _dechunk(body, url)
    elif b"content-length" in headers:
        body = body[:int(headers[b"content-length"])]
    if status != 200:
        raw_retry = headers.get(b"retry-after", b"")
        retry = raw_retry.decode("latin-1") or "-"
        raise RestError(url, f"HTTP {status} (Retry-After {retry}): {body[:200]!r}", status,
                        parse_retry_after(raw_retry) if raw_retry else None)
    return body
