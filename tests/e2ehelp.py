"""Helpers for the end-to-end tests: the collector against the simulator over loopback.

* :class:`Rig` starts a :class:`~xcol.sim.Simulator` and a :class:`~xcol.app.Collector`
  pointed at it (every line a real WebSocket connection on 127.0.0.1), and always stops
  both, even when the test fails.
* :func:`rebuild` reads the collector's JSONL output back, checks the book chain record by
  record (snapshot, then deltas whose ``prev_seq`` is the previous ``seq``) and rebuilds
  each book, so the test can compare *what was published* with the simulator's own book.
* :class:`Outage` is a TCP forwarder in front of a simulator line that a test can take
  down (connections refused) and bring back on the same port.
* :class:`GatedSink` is a real JSONL sink whose writes wait for a gate: a stalled
  downstream.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import time
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

from xcol.app import Collector
from xcol.config import load_config
from xcol.fanout import DrainReport, QueueSpec
from xcol.sim.server import SimConfig, Simulator
from xcol.sinks.base import Sink
from xcol.sinks.jsonl import JsonlSink

T = TypeVar("T")
Record = dict[str, Any]
Side = dict[Decimal, Decimal]

#: channels the collector subscribes in these tests: all of them, on every exchange
CHANNELS = {"binance-spot": "depth,bbo,trades", "binance-usdm": "depth,bbo,trades",
            "binance-coinm": "depth,bbo,trades", "okx": "depth,bbo,trades",
            "deribit": "depth,bbo,trades"}


def run(coro: Coroutine[Any, Any, T], timeout: float = 90.0) -> T:
    """Run one async test body with a hard timeout."""
    return asyncio.run(asyncio.wait_for(coro, timeout))


async def until(cond: Callable[[], bool], timeout: float = 20.0, what: str = "condition",
                every: float = 0.02) -> None:
    """Wait until ``cond()`` holds; fail with ``what`` after ``timeout`` seconds."""
    end = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > end:
            raise AssertionError(f"{what}: not met within {timeout} s")
        await asyncio.sleep(every)


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


# ------------------------------------------------------------------------------ sinks


class GatedSink(JsonlSink):
    """A JSONL sink whose writes wait until :attr:`gate` is set (a stalled downstream).

    The gate starts open; ``gate.clear()`` stalls every later write, ``gate.set()``
    releases it."""

    def __init__(self, path: Path, name: str = "gated") -> None:
        super().__init__(path, fsync=False, name=name)
        self.gate = asyncio.Event()
        self.gate.set()
        self.writes = 0

    async def write(self, batch: bytes, n_records: int) -> None:
        await self.gate.wait()
        self.writes += 1
        await super().write(batch, n_records)


# ------------------------------------------------------------------------------ outage


class Outage:
    """A TCP forwarder to ``127.0.0.1:target``; :meth:`down` closes the listener and every
    forwarded connection (new connections are refused), :meth:`up` listens again on the
    same port."""

    def __init__(self, target: int) -> None:
        self.target = target
        self.port = 0
        self.accepted = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    async def up(self) -> int:
        """Listen (on the same port as before, if any); returns the port."""
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        return self.port

    async def down(self) -> None:
        """Stop listening and cut every forwarded connection."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        for w in list(self._writers):
            w.transport.abort()
        self._writers.clear()
        await asyncio.sleep(0)

    async def close(self) -> None:
        """:meth:`down`, then wait for the forwarding tasks."""
        await self.down()
        for t in list(self._tasks):
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        try:
            ureader, uwriter = await asyncio.open_connection("127.0.0.1", self.target)
        except OSError:
            writer.transport.abort()
            return
        self._writers |= {writer, uwriter}
        for src, dst in ((reader, uwriter), (ureader, writer)):
            task = asyncio.get_running_loop().create_task(self._pipe(src, dst))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _pipe(self, src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
        try:
            while data := await src.read(65536):
                dst.write(data)
                await dst.drain()
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            dst.transport.abort()  # one side gone: cut the other (as a dropped TCP path)
            self._writers.discard(dst)


# ------------------------------------------------------------------------------ the rig


@dataclass
class Rig:
    """A simulator and a collector against it.

    :param sim_cfg: the simulator's configuration (lines, impairments, source).
    :param tmp: where the JSONL output goes (``tmp / "out.jsonl"``).
    :param overrides: extra ``key=value`` config overrides for the collector.
    :param jsonl: configure the JSONL sink (policy ``blocking``, no fsync).
    :param sinks: extra sinks added to the collector's fan-out before it starts.
    :param via: line index → :class:`Outage` forwarder to put in front of that line.
    """

    sim_cfg: SimConfig
    tmp: Path
    overrides: Sequence[str] = ()
    jsonl: bool = True
    sinks: Sequence[tuple[Sink, QueueSpec]] = ()
    via: Sequence[int] = ()
    sim: Simulator = field(init=False)
    col: Collector = field(init=False)
    outages: dict[int, Outage] = field(default_factory=dict, init=False)
    report: DrainReport | None = field(default=None, init=False)

    @property
    def out(self) -> Path:
        """The JSONL output file."""
        return self.tmp / "out.jsonl"

    @property
    def exchange(self) -> str:
        """The exchange simulated and collected."""
        return self.sim_cfg.exchange

    async def __aenter__(self) -> Rig:
        self.sim = Simulator(self.sim_cfg)
        await self.sim.start()
        try:
            ports = list(self.sim.ports)
            for i in self.via:
                self.outages[i] = Outage(ports[i])
                ports[i] = await self.outages[i].up()
            ex = self.exchange
            ov = [f"feeds.0.exchange={ex}", f"feeds.0.symbols={','.join(self.sim.instruments)}",
                  f"feeds.0.channels={CHANNELS[ex]}",
                  "feeds.0.endpoints=" + ",".join(f"ws://127.0.0.1:{p}" for p in ports),
                  f"feeds.0.rest=http://127.0.0.1:{self.sim.ports[0]}", "runtime.http=",
                  # every line connects at once, as the tests' timing assumes: the
                  # exchanges' connection limits have their own tests (test_limits.py)
                  "feeds.0.connect_rate_per_s=1000", "feeds.0.connect_burst=64"]
            if self.jsonl:
                ov += [f"sinks.jsonl.path={self.out}", "sinks.jsonl.policy=blocking",
                       "sinks.jsonl.fsync=false"]
            cfg = load_config(None, env={}, overrides=ov + list(self.overrides))
            self.col = Collector(cfg)
            for sink, spec in self.sinks:
                self.col.fanout.add_sink(sink, spec)
            await self.col.start()
        except BaseException:
            await self._cleanup()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._cleanup()

    async def _cleanup(self) -> None:
        if self.report is None and hasattr(self, "col"):
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.col.stop(), 15)
        for o in self.outages.values():
            await o.close()
        await self.sim.stop()

    # -- helpers -----------------------------------------------------------------------

    def book(self, inst: str) -> Any:
        """The collector's book of ``inst``."""
        return self.col.feeds[0].engine.book(inst)

    def synced(self) -> bool:
        """Every book of the feed is synced."""
        return all(self.book(i).synced for i in self.sim.instruments)

    async def wait_synced(self, timeout: float = 20.0) -> None:
        """Until every book is synced and records were published."""
        eng = self.col.feeds[0].engine
        await until(lambda: self.synced() and eng.published > 0, timeout, "books synced")

    async def settle(self, extra: float = 0.5) -> None:
        """Freeze the feed and let every line deliver what it queued."""
        self.sim.pause()
        await self.sim.settle(extra)

    async def stop(self) -> DrainReport:
        """Freeze the feed, let the lines drain, then stop the collector (drain sinks)."""
        await self.settle()
        self.report = await self.col.stop()
        return self.report

    def line_ids(self, endpoint: int) -> list[int]:
        """The collector's line ids connected to simulator line ``endpoint``."""
        ep = self.col.cfg.feeds[0].endpoints[endpoint]
        return [ln.line_id for ln in self.col.feeds[0].lines if ln.endpoint == ep]


# ------------------------------------------------------------------------------ output


def read_records(path: Path) -> list[Record]:
    """Every JSONL record of ``path`` (each line must be one JSON object)."""
    return [json.loads(line) for line in path.read_text().splitlines()]


def _apply(side: Side, levels: list[list[str]]) -> None:
    for px, qty in levels:
        q = Decimal(qty)
        if q == 0:
            side.pop(Decimal(px), None)
        else:
            side[Decimal(px)] = q


@dataclass
class Rebuilt:
    """One instrument's book rebuilt from the published records."""

    symbol: str
    bids: Side = field(default_factory=dict)
    asks: Side = field(default_factory=dict)
    last_seq: int = -1
    snapshots: int = 0
    books: int = 0
    seqs: list[int] = field(default_factory=list)
    #: (seq, prev_seq) keys of book records published more than once
    repeated: list[tuple[int, int | None]] = field(default_factory=list)
    trade_ids: list[int] = field(default_factory=list)
    #: first deltas after a snapshot that straddle it (see :func:`rebuild`)
    straddles: int = 0


def rebuild(records: list[Record], symbol: str) -> Rebuilt:
    """Rebuild ``symbol``'s book from ``records`` in file order, checking the chain.

    A ``snapshot`` replaces the book; a ``book`` delta must follow a snapshot and chain on
    the previous record: ``prev_seq == previous seq`` when the venue sends one (Binance
    futures, OKX, Deribit), else a strictly larger ``seq`` (Binance spot).  The one
    exception is the first delta after a snapshot, which may straddle it
    (``prev_seq < snapshot seq <= seq``): Binance futures' sync rule applies the event
    with ``U <= lastUpdateId <= u``, even when ``u == lastUpdateId`` (its absolute sizes
    are already in the snapshot, so applying it again changes nothing).  Fails with the
    offending record otherwise."""
    rb = Rebuilt(symbol)
    keys: set[tuple[int, int | None]] = set()
    after_snapshot = False
    for r in records:
        if r["symbol"] != symbol:
            continue
        kind = r["type"]
        if kind == "snapshot":
            rb.bids, rb.asks = {}, {}
            _apply(rb.bids, r["bids"])
            _apply(rb.asks, r["asks"])
            rb.last_seq = r["seq"]
            rb.snapshots += 1
            after_snapshot = True
        elif kind == "book":
            assert rb.snapshots, f"book delta before any snapshot: {r['seq']}"
            if "prev_seq" in r and after_snapshot and r["prev_seq"] != rb.last_seq:
                assert r["prev_seq"] < rb.last_seq <= r["seq"], (
                    f"{symbol}: seq {r['seq']} (prev_seq {r['prev_seq']}) does not follow "
                    f"the snapshot at {rb.last_seq}")
                rb.straddles += 1
            elif "prev_seq" in r:
                assert r["prev_seq"] == rb.last_seq, (
                    f"{symbol}: chain broken at seq {r['seq']}: prev_seq {r['prev_seq']}, "
                    f"previous record {rb.last_seq}")
            else:
                assert r["seq"] > rb.last_seq, f"{symbol}: seq {r['seq']} after {rb.last_seq}"
            key = (r["seq"], r.get("prev_seq"))
            if key in keys:
                rb.repeated.append(key)
            keys.add(key)
            _apply(rb.bids, r["bids"])
            _apply(rb.asks, r["asks"])
            rb.last_seq = r["seq"]
            rb.books += 1
            after_snapshot = False
            rb.seqs.append(r["seq"])
        elif kind == "trade":
            rb.trade_ids.append(r["id"])
    return rb


def truth(sim: Simulator, inst: str) -> tuple[Side, Side]:
    """The simulator's own book of ``inst`` as price → size maps."""
    b = sim.book(inst)
    return ({Decimal(str(lv[0])): Decimal(str(lv[1])) for lv in b.bids.top()},
            {Decimal(str(lv[0])): Decimal(str(lv[1])) for lv in b.asks.top()})


def assert_exact(rig: Rig, inst: str, rb: Rebuilt | None = None) -> None:
    """The collector's book of ``inst`` (and ``rb``, the book rebuilt from its output)
    equal the simulator's book: same last sequence, every level."""
    sim = rig.sim
    bids, asks = truth(sim, inst)
    book = rig.book(inst)
    assert book.synced, f"{inst}: collector book not synced ({book!r})"
    assert book.last_seq == sim.last_seq(inst), (inst, book.last_seq, sim.last_seq(inst))
    top_b, top_a = book.top(100_000)
    assert {Decimal(p): Decimal(q) for p, q in top_b} == bids, f"{inst}: bids differ"
    assert {Decimal(p): Decimal(q) for p, q in top_a} == asks, f"{inst}: asks differ"
    if rb is not None:
        assert rb.last_seq == sim.last_seq(inst), (inst, rb.last_seq, sim.last_seq(inst))
        assert rb.bids == bids, f"{inst}: bids rebuilt from the output differ"
        assert rb.asks == asks, f"{inst}: asks rebuilt from the output differ"


def assert_output_exact(rig: Rig, path: Path | None = None, sink: str = "jsonl",
                        once: bool = True) -> dict[str, Rebuilt]:
    """For every instrument: the output of ``sink`` (file ``path``, default
    :attr:`Rig.out`) chains, holds no book record twice (unless ``once`` is false), and
    rebuilds the simulator's book; the collector's own book is exact too.  Also checks that
    the file holds exactly what the fan-out published to that sink and that no trade was
    published twice."""
    recs = read_records(rig.out if path is None else path)
    pub = {s.name: s.published for s in rig.col.fanout.stats().values()}
    assert len(recs) == pub[sink], (len(recs), pub)
    out = {}
    for inst in rig.sim.instruments:
        rb = rebuild(recs, inst)
        assert not once or rb.repeated == [], (
            f"{inst}: book records published twice: {rb.repeated[:5]}")
        assert len(set(rb.trade_ids)) == len(rb.trade_ids), f"{inst}: a trade published twice"
        if rig.exchange in ("okx", "deribit"):
            assert rb.straddles == 0, f"{inst}: a delta does not chain on its snapshot"
        assert_exact(rig, inst, rb)
        out[inst] = rb
    return out


def assert_contiguous(ids: list[int]) -> None:
    """Trade ids (one instrument) run without a hole or a repeat."""
    assert ids, "no trades"
    assert sorted(ids) == list(range(min(ids), max(ids) + 1)), (
        f"{max(ids) - min(ids) + 1 - len(set(ids))} trade ids missing, "
        f"{len(ids) - len(set(ids))} repeated")


def assert_counters(rig: Rig) -> dict[str, Any]:
    """After ``rig.stop()``: the engine's measured counters balance for every stream and
    in total with nothing left pending, and every update counted as published is a record
    in the JSONL output (but those replayed into a snapshot record); returns the totals."""
    stats = rig.col.stats()
    for st in stats["streams"]:
        assert st["received"] == (st["published"] + st["duplicates"] + st["dropped"]
                                  + st["pending"]), st
        assert st["pending"] == 0, st
    c: dict[str, Any] = stats["counters"]
    assert c["received"] == c["published"] + c["duplicates"] + c["dropped"], c
    assert c["pending"] == 0 and c["dropped"] == sum(c["dropped_by_reason"].values()), c
    assert c["published"] > 0, c
    if rig.jsonl:
        recs = read_records(rig.out)
        assert sum(r["type"] != "top" for r in recs) == c["published"] - c["in_snapshot"], c
    return c


def conn_stats(rig: Rig, line_ids: Sequence[int]) -> list[dict[str, Any]]:
    """The ``/stats`` connection entries of these collector line ids."""
    return [c for c in rig.col.stats()["connections"] if c["id"] in line_ids]
