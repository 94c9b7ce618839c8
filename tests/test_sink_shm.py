"""The shared-memory ring sink and its reader: readers in other processes get every record
intact and in order, a lapped reader counts overruns and lost records instead of returning
torn data, records span slots, a plain-Python model agrees with the Cython ring on random
histories (including writers that die mid-record), and bad rings fail with clear errors."""

from __future__ import annotations

import asyncio
import functools
import json
import multiprocessing as mp
import os
import queue
import struct
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from xcol._fast.shm import RingWriter
from xcol.config import ConfigError, ShmSinkConfig, load_config
from xcol.fanout import FanOut, QueueSpec
from xcol.shm import Reader, RingError, RingNotFoundError, ring_path
from xcol.sinks import ShmSink, build_sinks

SPAWN = mp.get_context("spawn")
MS = 1_000_000


# --------------------------------------------------------------------------- records


def synth_record(i: int) -> bytes:
    """Record ``i`` with the engine's schema: bbo, trade or book (1-60 levels a side),
    carrying ``i`` as its seq so every record is distinct."""
    head = (b'"exchange":"binance-usdm","symbol":"BTCUSDT","seq":%d,'
            b'"ts_exchange":%d,"ts_recv":%d,"line":%d' % (
                i, 1_723_161_256_000 + i, 1_723_161_256_000_000_000 + i * 1000, i % 2))
    kind = i % 7
    if kind < 4:
        return (b'{"type":"bbo",' + head + b',"bid":"6%04d.10","bid_qty":"%d.001",'
                b'"ask":"6%04d.20","ask_qty":"0.%03d"}' % (i % 10000, i % 50, i % 10000,
                                                          i % 1000))
    if kind < 6:
        side = b'"buy"' if i % 2 else b'"sell"'
        return (b'{"type":"trade",' + head + b',"id":%d,"price":"61800.%02d","qty":"0.%03d",'
                b'"side":%s}' % (i * 3, i % 100, i % 1000, side))
    n = 1 + (i * 37) % 60
    bids = b",".join(b'["%d.10","%d.%03d"]' % (61800 - k, k, i % 1000) for k in range(n))
    asks = b",".join(b'["%d.20","0.%03d"]' % (61801 + k, (k * i) % 1000) for k in range(n))
    return (b'{"type":"book",' + head + b',"prev_seq":%d,"bids":[' % (i - 1) + bids
            + b'],"asks":[' + asks + b"]}")


@functools.cache
def synth_records(total: int) -> list[bytes]:
    return [synth_record(i) for i in range(total)]


def synth_batches(total: int, per_batch: int) -> Iterator[bytes]:
    recs = synth_records(total)
    for start in range(0, total, per_batch):
        yield b"".join(r + b"\n" for r in recs[start:start + per_batch])


def engine_batches() -> list[tuple[bytes, int]]:
    """Record batches the engine writes for the USD-M capture (one per frame)."""
    from test_arbiter import engine, usdm_stream

    snap, stream = usdm_stream()
    e = engine(snap)
    out = []
    for i, f in enumerate(stream):
        e.feed_on(0, f, rx=(i + 1) * MS, rx_wall=1_723_161_256_000_000_000 + i * MS)
        data, n = e.take_output()
        if data:
            out.append((data, n))
    return out


# --------------------------------------------------------------------------- another process


def big_record(i: int) -> bytes:
    """A 60 kB record whose every byte depends on ``i``: any mix of two is caught."""
    return b'{"type":"pad","seq":%d,"pad":"' % i + b"%08d" % i * 7500 + b'"}'


def reader_process(path: str, expected_file: str | None, total: int, slow: bool,
                   progress: Any, ready: Any, out: Any) -> None:
    """Follow the ring from another process until record ``total - 1``; check every
    record against the expected sequence by its record number (``big_record(n)``
    without an expected file)."""
    expected = Path(expected_file).read_bytes().split(b"\n") if expected_file else None
    res: dict[str, Any] = {"got": 0, "bad": 0, "out_of_order": 0, "first_bad": None}
    last = -1
    try:
        r = Reader(path=path, start="latest")
        ready.set()
        deadline = time.monotonic() + 60
        while last < total - 1 and time.monotonic() < deadline:
            batch = r.read_numbered(32 if slow else 4096)
            for n, rec in batch:
                res["got"] += 1
                if n <= last:
                    res["out_of_order"] += 1
                last = n
                if n >= total or rec != (expected[n] if expected else big_record(n)):
                    res["bad"] += 1
                    if res["first_bad"] is None:
                        res["first_bad"] = (n, rec[:120].decode(errors="replace"))
            progress[0] = r.records
            progress[1] = r.bytes_read
            if slow:
                time.sleep(0.002)
            elif not batch:
                time.sleep(0.0002)
        res.update(r.stats())
        res["last"] = last
    except BaseException as exc:  # report, never hang the parent
        res["error"] = repr(exc)
        ready.set()
    out.put(res)


class Child:
    """A reader process and its channels; killed on exit whatever happened."""

    def __init__(self, path: Path, expected: list[bytes] | int, tmp: Path, *,
                 slow: bool) -> None:
        exp: str | None = None
        if isinstance(expected, list):
            exp = str(tmp / "expected.jsonl")
            Path(exp).write_bytes(b"\n".join(expected))
        total = len(expected) if isinstance(expected, list) else expected
        self.progress = SPAWN.RawArray("Q", 2)
        self.ready = SPAWN.Event()
        self.out: Any = SPAWN.Queue()
        self.proc = SPAWN.Process(target=reader_process, args=(
            str(path), exp, total, slow, self.progress, self.ready, self.out))

    def __enter__(self) -> Child:
        self.proc.start()
        assert self.ready.wait(60), "reader process did not start"
        return self

    def result(self) -> dict[str, Any]:
        try:
            res: dict[str, Any] = self.out.get(timeout=90)
        except queue.Empty:
            pytest.fail("reader process did not report")
        assert "error" not in res, res["error"]
        return res

    def __exit__(self, *exc: object) -> None:
        self.proc.join(5)
        if self.proc.is_alive():
            self.proc.kill()
            self.proc.join(5)


@pytest.mark.corpus
def test_reader_in_another_process_gets_every_engine_record_through_the_fanout(
        tmp_path: Path) -> None:
    batches = engine_batches()
    expected = [r for data, _ in batches for r in data.split(b"\n") if r]
    assert max(len(r) for r in expected) > 10 * 488  # book records span many slots
    slots = 8192
    sink = ShmSink("ring", dir=tmp_path, slots=slots)

    async def main(child: Child) -> None:
        fan = FanOut()
        fan.add_sink(sink, QueueSpec(policy="blocking", flush_interval_s=0.01,
                                     max_write_bytes=64 * 1024))
        await fan.start()
        off_records = off_bytes = 0
        for data, n in batches:
            # Test-only flow control: at most half a ring between the reader and us (the
            # real writer never waits; this is how "a reader that keeps up" is arranged).
            while ((off_bytes - child.progress[1]) // 488
                   + off_records - child.progress[0]) > slots // 2:
                await asyncio.sleep(0.0005)
            fan.offer(data, n)
            off_records += n
            off_bytes += len(data) - n
        report = await fan.drain_and_close(30.0)
        assert report.complete and report.published["shm"] == len(expected)

    # The ring must exist before the reader attaches; a closed sink leaves the file.
    asyncio.run(sink.open())
    with Child(sink.path, expected, tmp_path, slow=False) as child:
        asyncio.run(main(child))
        res = child.result()
    assert res["first_bad"] is None and res["bad"] == 0 and res["out_of_order"] == 0
    assert res["got"] == res["records"] == len(expected) and res["last"] == len(expected) - 1
    assert res["overruns"] == 0 and res["lost"] == 0 and res["abandoned"] == 0
    assert sink.records == sink.accepted == len(expected) and sink.too_large == 0
    assert sink.path.exists() and not sink.healthy


@pytest.mark.parametrize("kind", ["sleeping", "racing", "big"])
def test_lapped_reader_counts_overruns_and_never_returns_a_torn_record(
        tmp_path: Path, kind: str) -> None:
    # sleeping: reads 32 records, sleeps 2 ms, so it is lapped again and again;
    # racing: never sleeps, on a ring of 64 slots;
    # big: 60 kB records in 64 kB slots, so copies take microseconds and the writer
    # often rewrites the very slot being copied (the seqlock must catch every one).
    slow = kind == "sleeping"
    slots, slot_size = {"sleeping": (256, 256), "racing": (64, 256),
                        "big": (16, 65536)}[kind]
    total = 200_000 if kind != "big" else 10_000
    expected: list[bytes] | int = synth_records(total) if kind != "big" else total
    sink = ShmSink("lapped", dir=tmp_path, slots=slots, slot_size=slot_size)

    def batches() -> Iterator[bytes]:
        if kind != "big":
            yield from synth_batches(total, 300)
        else:
            for start in range(0, total, 10):
                yield b"".join(big_record(i) + b"\n" for i in range(start, start + 10))

    async def main() -> None:
        await sink.open()
        with Child(sink.path, expected, tmp_path, slow=slow) as child:
            for b in batches():
                await sink.write(b, b.count(b"\n"))
            await sink.close()
            res = child.result()
        assert res["bad"] == 0, res["first_bad"]
        assert res["out_of_order"] == 0 and res["last"] == total - 1
        if slow:
            assert res["overruns"] > 0 and res["lost"] > 0
        assert res["got"] + res["lost"] == total   # every record read or counted lost
        assert res["abandoned"] == 0

    asyncio.run(main())
    assert sink.records == total and sink.too_large == 0


# --------------------------------------------------------------------------- in process


def test_records_longer_than_a_slot_span_slots_and_wrap(tmp_path: Path) -> None:
    # payload 40 bytes per slot, 64 slots: records up to 16 slots (640 bytes).
    w = RingWriter(tmp_path / "span", slot_size=64, slots=64)
    assert (w.payload, w.max_record) == (40, 640)
    r = Reader(path=tmp_path / "span")
    got: list[bytes] = []
    want: list[bytes] = []
    for length in [*range(1, 642), 39, 40, 41, 79, 80, 81, 640]:
        rec = bytes((length + k) % 26 + 97 for k in range(length))
        k = w.write(rec + b"\n")
        if length <= 640:
            assert k == 1
            want.append(rec)
        else:
            assert k == 0
        got += r.read_batch()  # read as we go: spanning records cross the ring's end
    assert got == want and r.lost == 0 and r.overruns == 0
    assert w.too_large == 1
    w.close()


def test_sink_counters_reconcile_with_too_large_records(tmp_path: Path) -> None:
    sink = ShmSink("tl", dir=tmp_path, slots=16, slot_size=64)

    async def main() -> None:
        await sink.open()
        r = Reader("tl", dir=tmp_path)
        await sink.write(b"a" * 160 + b"\n" + b"b" * 161 + b"\n" + b"c\n", 3)
        await sink.flush()
        assert r.read_batch() == [b"a" * 160, b"c"]
        await sink.close()
        await sink.close()  # idempotent

    asyncio.run(main())
    s = sink.stats()
    assert (s["accepted"], s["records"], s["too_large"], s["batches"]) == (3, 2, 1, 1)
    assert s["write_ns"]["count"] == 1


def test_writer_restart_continues_the_ring_and_readers_keep_their_place(
        tmp_path: Path) -> None:
    path = tmp_path / "again"
    w = RingWriter(path, slot_size=128, slots=32)
    r = Reader(path=path)
    w.write(b"one\ntwo\n")
    w.close()
    assert r.writer_state == "closed" and path.exists()
    assert r.read_numbered() == [(0, b"one"), (1, b"two")]
    w = RingWriter(path, slot_size=128, slots=32)
    assert (w.generation, w.cursor, w.records) == (2, 2, 2)
    w.write(b"three\n")
    assert r.read_numbered() == [(2, b"three")]
    assert r.read_batch() == [] and r.restarts == 1 and r.lost == 0
    assert r.writer_state == "open" and r.writer_pid == os.getpid()
    with pytest.raises(RingError, match="another writer holds this ring"):
        RingWriter(path, slot_size=128, slots=32)
    w.close()


def test_writer_that_dies_mid_record_leaves_nothing_torn(tmp_path: Path) -> None:
    path = tmp_path / "crash"
    w = RingWriter(path, slot_size=64, slots=64)
    r = Reader(path=path)
    w.write(b"first\n")
    w._test_write_torn(b"x" * 100, 2, True)  # 3 parts: two written, the third begun
    w._test_die()
    assert r.read_batch() == [b"first"]
    assert r.read_batch() == []  # the partial record is never returned
    w = RingWriter(path, slot_size=64, slots=64)
    assert w.cursor == 4 and w.records == 2  # past the odd slot and the dead record's number
    w.write(b"second\n")
    assert r.read_numbered() == [(2, b"second")]
    assert (r.abandoned, r.lost, r.restarts) == (1, 1, 1)
    w.close()


def test_a_ring_of_another_geometry_is_replaced_and_old_readers_are_told(
        tmp_path: Path) -> None:
    path = tmp_path / "geo"
    w = RingWriter(path, slot_size=64, slots=16)
    w.write(b"old\n")
    w.close()
    r = Reader(path=path, start="oldest")
    w = RingWriter(path, slot_size=128, slots=32)
    w.write(b"new\n")
    assert r.writer_state == "replaced" and r.replaced()
    assert r.read_batch() == [b"old"]
    r.reattach()
    assert (r.slot_size, r.slots, r.restarts) == (128, 32, 1)
    assert r.read_batch() == [b"new"]
    w.close()
    path.unlink()
    assert not r.replaced()  # nothing there yet: keep the old mapping
    with pytest.raises(RingNotFoundError):
        r.reattach()
    assert not r.closed and r.read_batch() == [] and r.writer_state == "closed"


def test_close_keeps_the_file_unless_asked(tmp_path: Path) -> None:
    async def cycle(unlink: bool) -> Path:
        sink = ShmSink("k", dir=tmp_path, slots=16, slot_size=64, unlink_on_close=unlink)
        await sink.open()
        await sink.write(b"x\n", 1)
        await sink.close()
        return sink.path

    assert asyncio.run(cycle(False)).exists()
    assert not asyncio.run(cycle(True)).exists()


def test_follow_yields_records_and_stops_on_request(tmp_path: Path) -> None:
    w = RingWriter(tmp_path / "f", slot_size=64, slots=16)
    with Reader(path=tmp_path / "f", start="latest") as r:
        w.write(b"a\nb\n")
        assert list(r) == [b"a", b"b"]
        w.write(b"c\n")
        assert list(r.follow(stop=lambda: True)) == [b"c"]
    assert r.closed
    w.close()


# --------------------------------------------------------------------------- bad attach


def test_bad_rings_fail_with_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(RingNotFoundError, match="no shm ring here") as ei:
        Reader("missing", dir=tmp_path)
    assert isinstance(ei.value, FileNotFoundError) and str(tmp_path / "missing") in str(ei.value)

    (tmp_path / "tiny").write_bytes(b"XCOLRING")
    with pytest.raises(RingError, match="too small to be an xcol shm ring"):
        Reader(path=tmp_path / "tiny")

    (tmp_path / "other").write_bytes(b"\x7fELF" + bytes(8188))
    with pytest.raises(RingError, match=r"not an xcol shm ring \(magic b'\\x7fELF"):
        Reader(path=tmp_path / "other")

    RingWriter(tmp_path / "v2", slot_size=64, slots=16).close()
    with open(tmp_path / "v2", "r+b") as f:
        f.seek(8)
        f.write(struct.pack("<I", 2))
    with pytest.raises(RingError, match="ring format version 2, this xcol reads version 1"):
        Reader(path=tmp_path / "v2")

    RingWriter(tmp_path / "cut", slot_size=64, slots=16).close()
    os.truncate(tmp_path / "cut", 4096 + 64 * 8)
    with pytest.raises(RingError, match="file is 4608 bytes, its header says 5120"):
        Reader(path=tmp_path / "cut")

    with pytest.raises(ValueError, match="start must be"):
        Reader(path=tmp_path / "cut", start="middle")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="ring name"):
        ring_path("../etc")
    with pytest.raises(ValueError, match="slots must be a power of two"):
        RingWriter(tmp_path / "g", slot_size=64, slots=100)
    with pytest.raises(RingNotFoundError, match="does not exist"):
        RingWriter(tmp_path / "no" / "such", slot_size=64, slots=16)
    with pytest.raises(RingError, match="exists and is not an xcol shm ring"):
        RingWriter(tmp_path / "other", slot_size=64, slots=16)
    assert (tmp_path / "other").read_bytes()[:4] == b"\x7fELF"  # left alone


@pytest.mark.parametrize(("toml", "message"), [
    ('[sinks.shm]\nslots = 1000\n', "sinks.shm.slots: must be a power of two"),
    ('[sinks.shm]\nslot_size = 100\n', "sinks.shm.slot_size: must be a multiple of 64"),
    ('[sinks.shm]\nname = "a/b"\n', "sinks.shm.name: ring name 'a/b' must be"),
])
def test_config_rejects_bad_rings(tmp_path: Path, toml: str, message: str) -> None:
    f = tmp_path / "x.toml"
    f.write_text('[[feeds]]\nexchange = "binance-usdm"\nsymbols = ["BTCUSDT"]\n' + toml)
    with pytest.raises(ConfigError, match=message):
        load_config(f)


def test_build_sinks_makes_the_shm_sink(tmp_path: Path) -> None:
    f = tmp_path / "x.toml"
    f.write_text('[[feeds]]\nexchange = "binance-usdm"\nsymbols = ["BTCUSDT"]\n'
                 f'[sinks.shm]\nname = "md"\ndir = "{tmp_path}"\nslots = 1024\n'
                 'slot_size = 256\npolicy = "lossy"\n')
    cfg = load_config(f)
    assert isinstance(cfg.sinks.shm, ShmSinkConfig)
    ((sink, spec),) = build_sinks(cfg.sinks)
    assert isinstance(sink, ShmSink) and sink.name == "shm"
    assert (sink.path, sink.slots, sink.slot_size) == (tmp_path / "md", 1024, 256)
    assert spec.policy == "lossy"


# --------------------------------------------------------------------------- the model


class ModelRing:
    """The ring in plain Python: the same slots, sequence numbers and restart rule."""

    def __init__(self, slots: int, slot_size: int) -> None:
        self.n = slots
        self.cap = slot_size - 24
        self.max_parts = slots // 4
        self.seq = [0] * slots
        self.rec = [0] * slots
        self.len = [0] * slots
        self.part = [0] * slots
        self.data = [b""] * slots
        self.cursor = self.records = self.too_large = 0
        self.generation = 1

    def parts(self, length: int) -> int:
        return max(1, -(-length // self.cap))

    def _slot(self, i: int, rec: bytes, j: int, seq: int) -> None:
        s = i % self.n
        self.seq[s], self.rec[s], self.len[s], self.part[s] = seq, self.records, len(rec), j
        self.data[s] = rec[j * self.cap:(j + 1) * self.cap]

    def write(self, rec: bytes) -> None:
        k = self.parts(len(rec))
        if k > self.max_parts:
            self.too_large += 1
            return
        for j in range(k):
            self._slot(self.cursor + j, rec, j, 2 * (self.cursor + j) + 2)
        self.cursor += k
        self.records += 1

    def die_and_restart(self, rec: bytes, complete: int, odd: bool) -> None:
        for j in range(complete):
            self._slot(self.cursor + j, rec, j, 2 * (self.cursor + j) + 2)
        if odd:
            self.seq[(self.cursor + complete) % self.n] = 2 * (self.cursor + complete) + 1
        used = [(s, r) for s, r in zip(self.seq, self.rec, strict=True) if s]
        if used:
            self.cursor = max(self.cursor, max((s - 1) // 2 + 1 for s, _ in used))
            self.records = max(self.records, max(r for _, r in used) + 1)
        self.generation += 1


class ModelReader:
    """The reader protocol of docs/sinks.md, step by step."""

    def __init__(self, ring: ModelRing, start: str) -> None:
        self.ring = ring
        self.slack = max(1, ring.n // 8)
        c = ring.cursor
        self.generation = ring.generation
        self.lost = self.overruns = self.abandoned = self.restarts = 0
        if start == "latest":
            self.pos = c
            if c == 0:
                self.expect = ring.records
            else:
                s = (c - 1) % ring.n
                self.expect = ring.rec[s] + 1 if ring.seq[s] == 2 * (c - 1) + 2 else -1
        else:
            self.pos = max(0, c + self.slack - ring.n)
            self.expect = -1

    def _check_generation(self) -> None:
        if self.ring.generation != self.generation:
            self.restarts += 1
            self.generation = self.ring.generation

    def _gap(self, i: int) -> int:
        if self.ring.cursor <= i:
            return 0
        return 2 if self.ring.seq[i % self.ring.n] >= 2 * i + 2 else 1

    def _resync(self, seen: int) -> None:
        newest = max(self.ring.cursor, (seen - 1) // 2 + 1)
        self.pos = max(self.pos + 1, max(0, newest + self.slack - self.ring.n))
        self.overruns += 1

    def take(self) -> tuple[int, bytes] | None:
        ring = self.ring
        while True:
            p = self.pos
            s = ring.seq[p % ring.n]
            if s != 2 * p + 2:
                if s > 2 * p + 2:
                    self._resync(s)
                    continue
                if self._gap(p) == 1:
                    self.pos += 1
                    continue
                self._check_generation()
                return None
            sl = p % ring.n
            rec, length = ring.rec[sl], ring.len[sl]
            if ring.part[sl] != 0:
                self.pos += 1
                continue
            out = [ring.data[sl]]
            nxt: int | None = None
            for j in range(1, ring.parts(length)):
                i = p + j
                sj = ring.seq[i % ring.n]
                if sj > 2 * i + 2:
                    self._resync(sj)
                    break
                if sj != 2 * i + 2:
                    if self._gap(i) == 0:
                        self._check_generation()
                        return None
                    nxt = i
                    break
                if ring.rec[i % ring.n] != rec or ring.part[i % ring.n] != j:
                    nxt = i
                    break
                out.append(ring.data[i % ring.n])
            if nxt is not None:
                self.abandoned += 1
                self.pos = nxt
            if len(out) < ring.parts(length):
                continue
            self.pos = p + ring.parts(length)
            if self.expect >= 0 and rec > self.expect:
                self.lost += rec - self.expect
            self.expect = rec + 1
            return rec, b"".join(out)


def _rec(i: int, length: int) -> bytes:
    return (b"%d:" % i + bytes(97 + (i + k) % 26 for k in range(length)))[:max(1, length)]


ops = st.lists(st.one_of(
    st.tuples(st.just("write"), st.lists(st.integers(1, 400), min_size=1, max_size=40)),
    st.tuples(st.just("read"), st.integers(1, 50)),
    st.tuples(st.just("die"), st.integers(0, 3), st.booleans()),
), min_size=1, max_size=40)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(geometry=st.sampled_from([(16, 64), (32, 64), (16, 128), (64, 64)]),
       start=st.sampled_from(["latest", "oldest"]), history=ops)
def test_ring_matches_the_python_model(tmp_path_factory: pytest.TempPathFactory,
                                       geometry: tuple[int, int], start: str,
                                       history: list[tuple[Any, ...]]) -> None:
    slots, slot_size = geometry
    path = tmp_path_factory.mktemp("model") / "ring"
    w = RingWriter(path, slot_size=slot_size, slots=slots)
    model = ModelRing(slots, slot_size)
    w.write(b"pre\n")   # something before the readers attach
    model.write(b"pre")
    r = Reader(path=path, start=start)  # type: ignore[arg-type]
    mr = ModelReader(model, start)
    written: dict[int, bytes] = {0: b"pre"}
    serial = 0
    for op in history:
        if op[0] == "write":
            recs = [_rec(serial + k, n) for k, n in enumerate(op[1])]
            serial += len(recs)
            for rec in recs:
                if model.parts(len(rec)) <= model.max_parts:
                    written[model.records] = rec
                model.write(rec)
            w.write(b"".join(x + b"\n" for x in recs))
        elif op[0] == "read":
            got = r.read_numbered(op[1])
            want: list[tuple[int, bytes]] = []
            while len(want) < op[1]:
                x = mr.take()
                if x is None:
                    break
                want.append(x)
            assert got == want
            assert all(written[n] == rec for n, rec in got)
        else:
            complete, odd = op[1], op[2]
            rec = _rec(serial, model.cap * (complete + 1) + 1)  # needs complete + 2 parts
            serial += 1
            if model.parts(len(rec)) > model.max_parts:
                continue
            w._test_write_torn(rec, complete, odd)
            w._test_die()
            model.die_and_restart(rec, complete, odd)
            w = RingWriter(path, slot_size=slot_size, slots=slots)
            assert (w.cursor, w.records) == (model.cursor, model.records)
        assert (w.cursor, w.records, w.too_large) == (model.cursor, model.records,
                                                      model.too_large)
    tail = r.read_numbered(1 << 20)
    want = []
    while (x := mr.take()) is not None:
        want.append(x)
    assert tail == want
    assert (r.lost, r.overruns, r.abandoned, r.restarts, r.position) == (
        mr.lost, mr.overruns, mr.abandoned, mr.restarts, mr.pos)
    for what in ("lost", "overruns", "abandoned", "restarts"):
        if getattr(r, what):
            event(what)
    w.close()
    r.close()


def test_json_records_survive_the_ring_byte_for_byte(tmp_path: Path) -> None:
    w = RingWriter(tmp_path / "j", slot_size=512, slots=1024)
    r = Reader(path=tmp_path / "j")
    got: list[bytes] = []
    for b in synth_batches(3000, 100):
        w.write(b)
        got += r.read_batch(200)
    assert got == [synth_record(i) for i in range(3000)]
    assert {json.loads(rec)["type"] for rec in got} == {"bbo", "trade", "book"}
    assert r.records == 3000 and r.lost == 0 and r.last_record == 2999
    w.close()
