"""Backpressure end to end: a stalled sink under the ``blocking`` and ``lossy`` policies.

The simulator serves a synthetic USD-M feed on two lines; the collector's only sink is a
real JSONL sink whose writes wait on a gate (:class:`e2ehelp.GatedSink`), added to its
fan-out before it starts.  Closing the gate stalls the downstream:

* ``blocking``: the queue fills, the collector stops reading its sockets (TCP pushes back
  on the simulator), nothing is dropped; after the release every record arrives and the
  output rebuilds the simulator's books exactly.
* ``lossy``: the collector keeps reading, the records that do not fit are dropped and
  counted by reason, and the engine's code latency stays in the same range as before the
  stall (a deliberately loose bound: the machine is shared).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from e2ehelp import GatedSink, Rig, assert_exact, assert_output_exact, read_records, run, until

from xcol.fanout import DROP_QUEUE_FULL, QueueSpec
from xcol.sim.server import SimConfig, line_configs


def sim_cfg() -> SimConfig:
    return SimConfig(exchange="binance-usdm", source=[], symbols=2, rate=400.0,
                     lines=line_configs(2, delay_ms="0,2"))


def test_blocking_policy_pauses_reading_and_loses_nothing(tmp_path: Path) -> None:
    async def body() -> None:
        sink = GatedSink(tmp_path / "gated.jsonl")
        spec = QueueSpec(policy="blocking", capacity=500, flush_interval_s=0.05)
        async with Rig(sim_cfg(), tmp_path, jsonl=False, sinks=[(sink, spec)]) as rig:
            fan = rig.col.fanout
            eng = rig.col.feeds[0].engine
            await rig.wait_synced()
            await asyncio.sleep(0.3)
            sink.gate.clear()
            await until(lambda: fan.paused, 20, "reading paused")
            await asyncio.sleep(0.2)  # reads in flight land
            received = eng.received
            await asyncio.sleep(1.0)
            # paused: not one more frame read while the sink is stalled
            assert eng.received == received
            assert fan.paused and fan.pauses == 1
            (st,) = rig.col.stats()["sinks"]
            assert st["paused_s"] >= 1.0 and st["dropped"] == 0
            assert st["high_water"] >= 500
            sink.gate.set()
            await until(lambda: not fan.paused, 20, "reading resumed")
            await until(lambda: eng.received > received + 100, 20, "reading again")
            await rig.stop()
            assert rig.report is not None and rig.report.complete
            (s,) = fan.stats().values()
            assert s.dropped_total == 0 and s.queued == 0
            assert s.offered == s.published
            assert fan.paused_seconds >= 1.0
            assert_output_exact(rig, sink.path, "gated")
            for st2 in rig.col.stats()["streams"]:
                assert st2["gaps"] == 0 and st2["resyncs"] == 0, st2

    run(body())


def test_lossy_policy_drops_counted_and_reading_goes_on(tmp_path: Path) -> None:
    async def body() -> None:
        sink = GatedSink(tmp_path / "gated.jsonl")
        spec = QueueSpec(policy="lossy", capacity=300, flush_interval_s=0.05)
        async with Rig(sim_cfg(), tmp_path, jsonl=False, sinks=[(sink, spec)]) as rig:
            fan = rig.col.fanout
            eng = rig.col.feeds[0].engine
            await rig.wait_synced()
            # code latency (frame -> records queued) with a healthy sink ...
            eng.code_ns.reset()
            await until(lambda: eng.code_ns.total_count >= 500, 20, "baseline samples")
            base_p50, base_p99 = eng.code_ns.percentiles([50.0, 99.0])
            # ... and with the sink stalled and its queue overflowing
            sink.gate.clear()
            await until(lambda: fan.stats()["gated"].dropped_total > 0, 20, "drops")
            eng.code_ns.reset()
            received = eng.received
            await until(lambda: eng.code_ns.total_count >= 500, 20, "stalled samples")
            assert eng.received > received  # the collector kept reading
            p50, p99 = eng.code_ns.percentiles([50.0, 99.0])
            s = fan.stats()["gated"]
            assert not fan.paused and fan.pauses == 0
            assert set(s.dropped) == {DROP_QUEUE_FULL} and s.dropped_total > 0
            assert s.offered == s.published + s.dropped_total + s.queued
            assert s.queued <= 300
            # loose: the stall must not leak into the hot path (shared 2-core machine)
            assert p50 <= 10 * base_p50 + 200_000, (p50, base_p50)
            assert p99 <= 20 * base_p99 + 2_000_000, (p99, base_p99)
            (st,) = rig.col.stats()["sinks"]
            assert st["dropped"] == s.dropped_total
            assert st["drops_by_reason"] == {DROP_QUEUE_FULL: s.dropped_total}
            sink.gate.set()
            await rig.stop()
            for inst in rig.sim.instruments:  # the books never stopped being updated
                assert_exact(rig, inst)
            s = fan.stats()["gated"]
            assert len(read_records(sink.path)) == s.published
            assert s.offered == s.published + s.dropped_total

    run(body())
