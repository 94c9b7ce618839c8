"""Line-protocol test servers: a real InfluxDB 1.x (``influxd``) in a temporary directory,
and a local asyncio TCP server that parses every line strictly.

Neither mocks anything the sink does: influxd is the Debian package's server (its own
line-protocol parser, HTTP ``/write`` and ``/query``), and :class:`LineServer` is a plain
TCP listener like QuestDB's ILP receiver, with a parser written from the line-protocol
grammar that rejects anything it does not fully understand.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

INFLUXD = shutil.which("influxd") or "/usr/bin/influxd"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


# --------------------------------------------------------------------------- strict parser


class LineError(ValueError):
    """A line that is not valid line protocol."""


@dataclass(frozen=True)
class Field:
    """A parsed field value: ``kind`` is int, float, str or bool; ``raw`` its text."""

    kind: str
    value: Any
    raw: str


@dataclass(frozen=True)
class Line:
    measurement: str
    tags: dict[str, str]
    fields: dict[str, Field]
    timestamp: int


_FLOAT_RE = re.compile(r"-?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")
_INT_RE = re.compile(r"-?\d+i")
_TS_RE = re.compile(r"-?\d+")
_KEY_SPECIAL = ",= "


def _unescaped(s: str, i: int, stops: str, what: str) -> tuple[str, int]:
    """Read an unquoted token from ``s[i:]`` up to an unescaped char of ``stops``.
    A backslash escapes only a char of ``_KEY_SPECIAL``; a backslash before anything else
    is rejected (its meaning differs between servers)."""
    out = []
    while i < len(s):
        c = s[i]
        if c == "\\":
            if i + 1 >= len(s) or s[i + 1] not in _KEY_SPECIAL:
                raise LineError(f"{what}: bad escape at {i}")
            out.append(s[i + 1])
            i += 2
            continue
        if c in stops:
            break
        if c in "\n\r":
            raise LineError(f"{what}: raw line break at {i}")
        out.append(c)
        i += 1
    if not out:
        raise LineError(f"{what}: empty at {i}")
    return "".join(out), i


def parse_line(raw: bytes) -> Line:
    """Parse one line (without its newline) strictly; raises :class:`LineError`."""
    try:
        s = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise LineError(f"not UTF-8: {exc}") from None
    # measurement: commas and spaces escaped
    out = []
    i = 0
    while i < len(s) and s[i] not in ", ":
        if s[i] == "\\":
            if i + 1 >= len(s) or s[i + 1] not in ", ":
                raise LineError("measurement: bad escape")
            out.append(s[i + 1])
            i += 2
        else:
            out.append(s[i])
            i += 1
    if not out:
        raise LineError("empty measurement")
    measurement = "".join(out)
    tags: dict[str, str] = {}
    while i < len(s) and s[i] == ",":
        k, i = _unescaped(s, i + 1, "=, ", "tag key")
        if i >= len(s) or s[i] != "=":
            raise LineError(f"tag {k!r}: no '='")
        v, i = _unescaped(s, i + 1, ", ", "tag value")
        if k in tags:
            raise LineError(f"duplicate tag {k!r}")
        tags[k] = v
    if i >= len(s) or s[i] != " ":
        raise LineError("no field set")
    i += 1
    fields: dict[str, Field] = {}
    while True:
        k, i = _unescaped(s, i, "=, ", "field key")
        if i >= len(s) or s[i] != "=":
            raise LineError(f"field {k!r}: no '='")
        i += 1
        if i < len(s) and s[i] == '"':
            j = i + 1
            buf = []
            while True:
                if j >= len(s):
                    raise LineError(f"field {k!r}: unterminated string")
                c = s[j]
                if c == "\\" and j + 1 < len(s) and s[j + 1] in '"\\':
                    buf.append(s[j + 1])
                    j += 2
                    continue
                if c == '"':
                    break
                if c in "\n\r":
                    raise LineError(f"field {k!r}: raw line break in string")
                buf.append(c)
                j += 1
            text = s[i + 1:j]
            f = Field("str", "".join(buf), text)
            i = j + 1
        else:
            j = i
            while j < len(s) and s[j] not in ", ":
                j += 1
            text = s[i:j]
            if _INT_RE.fullmatch(text):
                iv = int(text[:-1])
                if not -(1 << 63) <= iv < (1 << 63):
                    raise LineError(f"field {k!r}: integer out of range")
                f = Field("int", iv, text)
            elif _FLOAT_RE.fullmatch(text):
                f = Field("float", float(text), text)
            elif text in ("t", "T", "true", "True", "TRUE", "f", "F", "false", "False",
                          "FALSE"):
                f = Field("bool", text[0] in "tT", text)
            else:
                raise LineError(f"field {k!r}: bad value {text!r}")
            i = j
        if k in fields:
            raise LineError(f"duplicate field {k!r}")
        fields[k] = f
        if i < len(s) and s[i] == ",":
            i += 1
            continue
        break
    if i >= len(s) or s[i] != " ":
        raise LineError("no timestamp (xcol always writes one)")
    ts_text = s[i + 1:]
    if not _TS_RE.fullmatch(ts_text):
        raise LineError(f"bad timestamp {ts_text!r}")
    return Line(measurement, tags, fields, int(ts_text))


def parse_lines(data: bytes) -> list[Line]:
    """Every line of ``data``, which must end with a newline."""
    if data and not data.endswith(b"\n"):
        raise LineError("data does not end with a newline")
    return [parse_line(x) for x in data.split(b"\n")[:-1]] if data else []


# --------------------------------------------------------------------------- TCP server


class LineServer:
    """A TCP line-protocol receiver: parses every line strictly, keeps them in order.

    A line that fails to parse is recorded in :attr:`errors` and its connection closed
    (what QuestDB does).  While :attr:`paused` is set, connections stop reading.
    :meth:`stop` closes the listener and every connection; :meth:`start` again listens on
    the same port.
    """

    def __init__(self, port: int = 0, rcvbuf: int = 0) -> None:
        self.port = port
        self.rcvbuf = rcvbuf  # SO_RCVBUF of accepted connections (0: the kernel's)
        self.lines: list[Line] = []
        self.errors: list[str] = []
        self.bytes = 0
        self.connections = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self.paused = asyncio.Event()  # set: connections stop reading (backpressure)

    async def start(self) -> None:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if self.rcvbuf:  # set before listen() so the window is small from the handshake on
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self.rcvbuf)
        sock.bind(("127.0.0.1", self.port))
        self._server = await asyncio.start_server(self._serve, sock=sock)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _serve(self, r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self._writers.add(w)
        self.connections += 1
        try:
            while True:
                while self.paused.is_set():
                    await asyncio.sleep(0.01)
                try:
                    raw = await r.readuntil(b"\n")
                except asyncio.IncompleteReadError as exc:
                    if exc.partial:
                        self.errors.append(f"partial line at EOF: {exc.partial[:80]!r}")
                    return
                self.bytes += len(raw)
                try:
                    self.lines.append(parse_line(raw[:-1]))
                except LineError as exc:
                    self.errors.append(f"{exc}: {raw[:200]!r}")
                    return
        except (ConnectionError, asyncio.CancelledError):
            return
        finally:
            self._writers.discard(w)
            w.close()
            self._tasks.discard(task)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        for w in list(self._writers):
            w.transport.abort()
        for t in list(self._tasks):
            t.cancel()
        await asyncio.sleep(0.05)


# --------------------------------------------------------------------------- influxd

_CONF = """reporting-disabled = true
bind-address = "127.0.0.1:{rpc}"
[meta]
  dir = "{dir}/meta"
  logging-enabled = false
[data]
  dir = "{dir}/data"
  wal-dir = "{dir}/wal"
  query-log-enabled = false
[monitor]
  store-enabled = false
[subscriber]
  enabled = false
[retention]
  enabled = false
[shard-precreation]
  enabled = false
[continuous_queries]
  enabled = false
[http]
  bind-address = "127.0.0.1:{http}"
  log-enabled = false
  pprof-enabled = false
[logging]
  level = "warn"
  suppress-logo = true
"""


class Influxd:
    """An ``influxd`` (InfluxDB 1.x) in ``root``, HTTP on a free 127.0.0.1 port, nothing
    else listening but its RPC port (also 127.0.0.1)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self.http_port = free_port()
        self.rpc_port = free_port()
        self.conf = root / "influxdb.conf"
        self.conf.write_text(_CONF.format(dir=root, rpc=self.rpc_port, http=self.http_port))
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def start(self, timeout: float = 30.0) -> None:
        log = open(self.root / "influxd.log", "ab")  # noqa: SIM115 - owned by the process
        self.proc = subprocess.Popen([INFLUXD, "run", "-config", str(self.conf)],
                                     stdout=log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"influxd exited ({self.proc.returncode}): "
                                   f"{(self.root / 'influxd.log').read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(self.url + "/ping", timeout=1) as r:
                    if r.status == 204:
                        return
            except OSError:
                pass
            time.sleep(0.05)
        self.stop()
        raise RuntimeError("influxd did not answer /ping in time")

    def kill(self) -> None:
        """SIGKILL: no goodbye, acknowledged writes are in the WAL."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
        self.proc = None

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        self.proc = None

    def query(self, q: str, db: str | None = None, method: str = "GET") -> Any:
        """Run InfluxQL; returns the first result (raises on an error in it)."""
        params = {"q": q, "epoch": "ns"}
        if db:
            params["db"] = db
        data = urllib.parse.urlencode(params).encode()
        if method == "GET":
            req = urllib.request.Request(self.url + "/query?" + data.decode())
        else:
            req = urllib.request.Request(self.url + "/query", data=data, method="POST")
        with urllib.request.urlopen(req, timeout=30) as r:
            doc = json.loads(r.read())
        res = doc["results"][0]
        if "error" in res:
            raise RuntimeError(f"{q}: {res['error']}")
        return res

    def create_db(self, name: str) -> None:
        self.query(f'CREATE DATABASE "{name}"', method="POST")

    def write(self, db: str, body: bytes) -> tuple[int, bytes]:
        req = urllib.request.Request(f"{self.url}/write?db={db}", data=body, method="POST")
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.read()

    def rows(self, q: str, db: str) -> list[dict[str, Any]]:
        """The rows of a query, as dicts (all series concatenated)."""
        out: list[dict[str, Any]] = []
        for series in self.query(q, db).get("series", []):
            cols = series["columns"]
            tags = series.get("tags", {})
            for v in series["values"]:
                out.append({**tags, **dict(zip(cols, v, strict=True))})
        return out

    def count(self, measurement: str, field: str, db: str) -> int:
        rows = self.rows(f'SELECT count("{field}") FROM "{measurement}"', db)
        return int(rows[0]["count"]) if rows else 0


@contextlib.contextmanager
def influxd(root: Path) -> Any:
    """A running :class:`Influxd` in ``root``; stopped (killed at worst) on exit."""
    srv = Influxd(root)
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()
