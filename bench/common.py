"""Helpers the benchmarks share: the CPU model and cutting records into batches."""

from __future__ import annotations

import platform

__all__ = ["cpu_model", "cut_batches"]


def cpu_model() -> str:
    """The CPU's model name (/proc/cpuinfo), else what ``platform`` knows."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fp:
            for line in fp:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return cpu


def cut_batches(records: list[bytes], batch_bytes: int) -> list[tuple[bytes, int]]:
    """Join newline-terminated records into ``(batch, n_records)`` of up to
    ``batch_bytes`` (at least one record each), as the fan-out hands them to sinks."""
    out: list[tuple[bytes, int]] = []
    cur: list[bytes] = []
    size = 0
    for r in records:
        if cur and size + len(r) > batch_bytes:
            out.append((b"".join(cur), len(cur)))
            cur, size = [], 0
        cur.append(r)
        size += len(r)
    if cur:
        out.append((b"".join(cur), len(cur)))
    return out
