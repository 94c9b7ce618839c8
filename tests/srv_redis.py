"""A real ``redis-server`` for tests, and two small blocking clients built on hiredis.

:class:`RedisServer` runs Debian's ``redis-server`` on 127.0.0.1 on a free port with no
persistence (``--save '' --appendonly no``) in a temporary directory; it can be killed
(SIGKILL) and started again on the same port.  Pub/sub output buffers are unlimited so a
subscriber that falls behind during a burst is not disconnected by the server.

:class:`Client` sends one command at a time; :class:`Subscriber` runs ``PSUBSCRIBE`` on
its own thread and keeps every message it receives.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import hiredis
import pytest

REDIS_SERVER = shutil.which("redis-server")


def need_redis() -> str:
    """The redis-server binary, or skip the test."""
    if REDIS_SERVER is None:
        pytest.skip("redis-server not installed (Debian package redis-server)")
    return REDIS_SERVER


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class RedisServer:
    """One redis-server process (start, kill, start again on the same port)."""

    def __init__(self, port: int | None = None, args: Sequence[str] = ()) -> None:
        self.binary = need_redis()
        self.port = port or free_port()
        self.args = list(args)
        self.dir = Path(tempfile.mkdtemp(prefix="xcol-redis-"))
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = self.dir / "redis.log"
        self.tls_port = 0

    def start(self, extra: Sequence[str] = (), password: str | None = None,
              timeout: float = 10.0) -> RedisServer:
        if self.proc is not None:
            raise RuntimeError("already running")
        cmd = [self.binary, "--port", str(self.port), "--bind", "127.0.0.1",
               "--save", "", "--appendonly", "no", "--dir", str(self.dir),
               "--logfile", str(self.log), "--client-output-buffer-limit", "pubsub 0 0 0",
               *self.args, *extra]
        if "--tls-port" in cmd:
            self.tls_port = int(cmd[cmd.index("--tls-port") + 1])
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"redis-server exited: {self.log.read_text()[-2000:]}")
            try:
                with Client(self.port, password=password, timeout=1.0) as c:
                    if c.command("PING") == b"PONG":
                        return self
            except (OSError, hiredis.ReplyError):
                pass
            if time.monotonic() > deadline:
                self.kill()
                raise RuntimeError("redis-server did not start")
            time.sleep(0.02)

    def kill(self) -> None:
        """SIGKILL, like a crash: no shutdown, connections reset."""
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)
        self.proc = None

    def close(self) -> None:
        self.kill()
        shutil.rmtree(self.dir, ignore_errors=True)

    def client(self, **kw: Any) -> Client:
        return Client(self.port, **kw)


class Client:
    """A blocking one-command-at-a-time client."""

    def __init__(self, port: int, *, password: str | None = None, username: str | None = None,
                 db: int = 0, timeout: float = 5.0) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.reader = hiredis.Reader()
        if password is not None:
            self.check(*(["AUTH", username] if username else ["AUTH"]), password)
        if db:
            self.check("SELECT", str(db))

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.sock.close()

    def command(self, *args: str | bytes) -> Any:
        """Send one command; the reply (errors are returned as ``hiredis.ReplyError``)."""
        self.sock.sendall(hiredis.pack_command(args))  # type: ignore[arg-type]
        while True:
            reply = self.reader.gets()
            if reply is not False:
                return reply
            data = self.sock.recv(1 << 16)
            if not data:
                raise ConnectionError("redis closed the connection")
            self.reader.feed(data)

    def check(self, *args: str | bytes) -> Any:
        """Like :meth:`command`, raising the error reply."""
        reply = self.command(*args)
        if isinstance(reply, hiredis.ReplyError):
            raise reply
        return reply


class Subscriber:
    """``PSUBSCRIBE patterns`` on a thread; ``messages`` collects ``(channel, payload)``."""

    def __init__(self, port: int, patterns: Sequence[str] = ("*",), *,
                 password: str | None = None) -> None:
        self.client = Client(port, password=password)
        self.client.sock.settimeout(None)
        self.messages: list[tuple[str, bytes]] = []
        self.error: BaseException | None = None
        self.client.sock.sendall(hiredis.pack_command(("PSUBSCRIBE", *patterns)))
        confirmed = 0
        while confirmed < len(patterns):  # subscribed before the constructor returns
            reply = self.client.reader.gets()
            if reply is False:
                self.client.reader.feed(self.client.sock.recv(1 << 16))
            elif isinstance(reply, list) and reply[0] == b"psubscribe":
                confirmed += 1
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        reader = self.client.reader
        try:
            while True:
                reply = reader.gets()
                if reply is False:
                    data = self.client.sock.recv(1 << 20)
                    if not data:
                        return
                    reader.feed(data)
                elif isinstance(reply, list) and reply[0] == b"pmessage":
                    self.messages.append((reply[2].decode(), reply[3]))
        except OSError as exc:
            self.error = exc

    def wait_count(self, n: int, timeout: float = 10.0) -> int:
        """Wait until at least ``n`` messages arrived (or the timeout); the count."""
        deadline = time.monotonic() + timeout
        while len(self.messages) < n and time.monotonic() < deadline:
            time.sleep(0.01)
        return len(self.messages)

    def wait_quiet(self, quiet: float = 0.3, timeout: float = 10.0) -> int:
        """Wait until no message arrived for ``quiet`` seconds; the count."""
        deadline = time.monotonic() + timeout
        last, since = -1, time.monotonic()
        while time.monotonic() < deadline:
            n = len(self.messages)
            if n != last:
                last, since = n, time.monotonic()
            elif time.monotonic() - since >= quiet:
                break
            time.sleep(0.02)
        return len(self.messages)

    def by_channel(self) -> dict[str, list[bytes]]:
        out: dict[str, list[bytes]] = {}
        for ch, payload in list(self.messages):
            out.setdefault(ch, []).append(payload)
        return out

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.client.sock.shutdown(socket.SHUT_RDWR)
        self.client.close()
        self._thread.join(5)
