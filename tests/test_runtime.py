"""Runtime policy: GC settings, the real-time fallback, the applied-state report."""

from __future__ import annotations

import asyncio
import gc
import logging
import os
from collections.abc import Iterator

import pytest

from xcol import runtime
from xcol.config import ConfigError, load_config


@pytest.fixture
def restore_gc() -> Iterator[None]:
    th = gc.get_threshold()
    enabled = gc.isenabled()
    yield
    gc.unfreeze()
    gc.set_threshold(*th)
    if enabled:
        gc.enable()


def test_apply_runtime_reports_what_was_applied(restore_gc: None,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object) -> None:
        raise PermissionError(1, "Operation not permitted")

    # Never really switch the test process to SCHED_FIFO (it may run as root).
    monkeypatch.setattr(os, "sched_setscheduler", refuse)
    monkeypatch.setattr(runtime, "_realtime_warned", False)
    cfg = load_config(None, {}, ["feeds.0.exchange=okx", "feeds.0.symbols=BTC-USDT",
                                 "runtime.realtime=true", "runtime.gc.warmup_s=0.01",
                                 "runtime.gc.thresholds=1234,5,6"])

    async def main() -> dict[str, object]:
        state = runtime.apply_runtime(cfg.runtime, asyncio.get_running_loop())
        await asyncio.sleep(0.1)
        return state.report()

    report = asyncio.run(main())
    gc_report = report["gc"]
    assert isinstance(gc_report, dict)
    assert gc_report.pop("frozen_objects") > 0
    assert gc_report == {"mode": "freeze", "enabled": True, "thresholds": [1234, 5, 6],
                         "frozen": True}
    assert report["realtime"] == {"requested": True, "applied": False, "priority": 0}
    assert report["warnings"] and "not applied" in str(report["warnings"])


def test_realtime_refusal_warns_once(monkeypatch: pytest.MonkeyPatch,
                                     caplog: pytest.LogCaptureFixture) -> None:
    def refuse(*args: object) -> None:
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(os, "sched_setscheduler", refuse)
    monkeypatch.setattr(runtime, "_realtime_warned", False)
    with caplog.at_level(logging.WARNING, "xcol.runtime"):
        assert runtime.set_realtime(10) is False
        assert runtime.set_realtime(10) is False
    assert len([r for r in caplog.records if "SCHED_FIFO" in r.getMessage()]) == 1


def test_gc_disable_mode(restore_gc: None) -> None:
    cfg = load_config(None, {}, ["feeds.0.exchange=okx", "feeds.0.symbols=BTC-USDT",
                                 "runtime.gc.mode=disable"])
    runtime.apply_gc_policy(cfg.runtime.gc)
    assert not gc.isenabled() and gc.get_threshold() == (50_000, 20, 100)


def test_pin_to_current_cpus_and_reject_missing() -> None:
    current = sorted(os.sched_getaffinity(0))
    assert runtime.pin_cpus([]) == tuple(current)
    assert runtime.pin_cpus(current) == tuple(current)
    with pytest.raises(ConfigError, match="runtime.cpu_affinity"):
        runtime.pin_cpus([max(current) + 1000])


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs two CPUs")
def test_helper_threads_start_off_the_pinned_cpu() -> None:
    """After pinning the loop thread to one CPU, threads started under off_hot_cpus() and
    sink writer threads run on the other CPUs; the pinned thread keeps its CPU."""
    import threading

    from xcol.sinks.jsonl import JsonlSink

    before = set(os.sched_getaffinity(0))
    hot = min(before)
    seen: dict[str, set[int]] = {}

    def probe(name: str) -> None:
        seen[name] = set(os.sched_getaffinity(0))

    def in_thread(name: str) -> None:
        t = threading.Thread(target=probe, args=(name,))
        t.start()
        t.join()

    # run in a thread of its own so the test process keeps its CPUs
    def body() -> None:
        runtime.pin_cpus([hot])
        try:
            assert runtime.helper_cpus() == before - {hot}
            with runtime.off_hot_cpus():
                in_thread("library")
            in_thread("plain")
            assert set(os.sched_getaffinity(0)) == {hot}

            async def sink_thread() -> None:
                sink = JsonlSink(os.devnull)
                await sink._call(lambda: probe("sink"))
                sink._shutdown_executor()

            asyncio.run(sink_thread())
        finally:
            os.sched_setaffinity(0, before)
            runtime.pin_cpus(before)

    t = threading.Thread(target=body)
    t.start()
    t.join()
    assert seen["library"] == before - {hot}
    assert seen["sink"] == before - {hot}
    assert seen["plain"] == {hot}
