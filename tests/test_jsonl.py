"""The JSONL sink on real files: appends, rotation by size and age, keep N, numbered names."""

from __future__ import annotations

import asyncio
import io
import re
from pathlib import Path

from xcol.sinks.jsonl import JsonlSink
from xcol.sinks.stdout import StdoutSink


def lines(n: int, start: int = 0) -> bytes:
    return b"".join(b'{"i":%05d}\n' % i for i in range(start, start + n))  # 12 bytes each


def all_records(sink: JsonlSink) -> list[bytes]:
    out: list[bytes] = []
    for p in [*sink.rotated_files(), sink.path]:
        out += p.read_bytes().splitlines()
    return out


def test_creates_parents_and_appends(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "xcol.jsonl"

    async def main() -> None:
        for start in (0, 10):  # a second run appends to the same file
            sink = JsonlSink(path)
            await sink.open()
            assert sink.healthy
            await sink.write(lines(10, start), 10)
            await sink.flush()
            await sink.close()
            assert not sink.healthy

    asyncio.run(main())
    assert path.read_bytes() == lines(20)


def test_rotation_by_size_keeps_every_record(tmp_path: Path) -> None:
    path = tmp_path / "xcol.jsonl"

    async def main() -> JsonlSink:
        sink = JsonlSink(path, max_bytes=120, keep=0)
        await sink.open()
        for k in range(50):
            await sink.write(lines(3, 3 * k), 3)  # 36 bytes: 3 batches fit in 120
        await sink.close()
        return sink

    sink = asyncio.run(main())
    rotated = sink.rotated_files()
    assert len(rotated) == 16 == len(sink.rotated)
    assert all(re.fullmatch(r"xcol\.jsonl\.\d{8}T\d{6}\.\d{6}Z(-\d+)?", p.name)
               for p in rotated)
    for p in rotated:
        assert p.stat().st_size == 108  # never past max_bytes, never split a batch
    assert all_records(sink) == lines(150).splitlines()


def test_keep_n_prunes_oldest(tmp_path: Path) -> None:
    path = tmp_path / "xcol.jsonl"

    async def main() -> JsonlSink:
        sink = JsonlSink(path, max_bytes=24, keep=3)
        await sink.open()
        for k in range(10):
            await sink.write(lines(2, 2 * k), 2)
        await sink.close()
        return sink

    sink = asyncio.run(main())
    rotated = sink.rotated_files()
    assert len(rotated) == 3
    assert rotated == sink.rotated[-3:]  # the newest three survive, oldest first
    assert all_records(sink) == lines(8, 12).splitlines()


def test_numbered_rotation(tmp_path: Path) -> None:
    path = tmp_path / "xcol.jsonl"

    async def main() -> JsonlSink:
        sink = JsonlSink(path, max_bytes=12, keep=2, naming="numbered")
        await sink.open()
        for i in range(5):
            await sink.write(lines(1, i), 1)
        await sink.close()
        return sink

    sink = asyncio.run(main())
    assert [p.name for p in sink.rotated_files()] == ["xcol.jsonl.2", "xcol.jsonl.1"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "xcol.jsonl", "xcol.jsonl.1", "xcol.jsonl.2"]
    assert (tmp_path / "xcol.jsonl.1").read_bytes() == lines(1, 3)  # .1 is the newest
    assert (tmp_path / "xcol.jsonl.2").read_bytes() == lines(1, 2)
    assert path.read_bytes() == lines(1, 4)


def test_rotation_by_age(tmp_path: Path) -> None:
    path = tmp_path / "xcol.jsonl"
    now = [0.0]

    async def main() -> JsonlSink:
        sink = JsonlSink(path, max_age_s=60.0, clock=lambda: now[0])
        await sink.open()
        await sink.write(lines(2), 2)
        now[0] = 59.0
        await sink.write(lines(2, 2), 2)
        assert sink.rotated == []
        now[0] = 61.0
        await sink.flush()  # a quiet sink still rotates on its flush tick
        assert len(sink.rotated) == 1
        await sink.flush()  # the new file is empty: nothing to rotate
        await sink.write(lines(1, 4), 1)
        await sink.close()
        return sink

    sink = asyncio.run(main())
    assert sink.rotated[0].read_bytes() == lines(4)
    assert path.read_bytes() == lines(1, 4)


def test_stdout_sink_writes_to_stream() -> None:
    buf = io.BytesIO()

    async def main() -> None:
        sink = StdoutSink(buf)
        await sink.open()
        await sink.write(lines(3), 3)
        await sink.close()

    asyncio.run(main())
    assert buf.getvalue() == lines(3)


def test_healthy_during_writes_and_unhealthy_when_a_write_hangs(tmp_path: Path) -> None:
    """A write in flight does not make the sink unhealthy (``/ready`` used to flap to 503
    under load), but one that hangs longer than ``stuck_after_s`` does: here the file is a
    FIFO whose reader stops reading, so the write blocks on a full pipe.  Once the reader
    drains it, the write completes and the sink is healthy again."""
    import os

    fifo = tmp_path / "pipe.jsonl"
    os.mkfifo(fifo)
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)   # lets the sink's open succeed

    async def main() -> None:
        sink = JsonlSink(fifo, fsync=False)
        sink.stuck_after_s = 0.3
        await sink.open()
        assert sink.healthy
        small = asyncio.create_task(sink.write(b'{"a":1}\n', 1))
        assert sink.healthy                       # in flight, not failed
        await small
        big = asyncio.create_task(sink.write(b"x" * (4 << 20) + b"\n", 1))  # > the pipe
        await asyncio.sleep(0.1)
        assert not big.done() and sink.healthy   # blocked, but not for long yet
        await asyncio.sleep(0.4)
        assert not big.done() and not sink.healthy and sink.stuck
        got = 0
        while not big.done():
            try:
                got += len(os.read(reader, 1 << 20))
            except BlockingIOError:
                await asyncio.sleep(0.005)
        await big
        assert sink.healthy and not sink.stuck
        await sink.close()

    try:
        asyncio.run(asyncio.wait_for(main(), 30))
    finally:
        os.close(reader)
