"""Graceful shutdown of ``xcol run -c FILE`` under load, as a real subprocess.

The simulator runs in the test process (synthetic USD-M, two lines, a few thousand records
a second); the collector is started with the public CLI and a TOML file, writes JSONL
(fsync on) and serves ``/stats``.  While data flows, the test sends SIGTERM (or SIGINT):
the collector must exit 0 within its shutdown deadline, log the drain result and its
final counters, and the JSONL file must hold every record it accepted, each once, whole,
chaining from its snapshot.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from e2ehelp import free_port, read_records, rebuild, run

from xcol.sim.server import SimConfig, Simulator, line_configs

ROOT = Path(__file__).resolve().parents[1]
DEADLINE_S = 5.0


async def http_json(port: int, path: str) -> Any:
    """GET ``path`` from 127.0.0.1:port and decode the JSON body (None if unreachable)."""
    try:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection("127.0.0.1", port), 5)
    except (OSError, TimeoutError):
        return None
    try:
        writer.write(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        raw = await asyncio.wait_for(reader.read(), 10)
    finally:
        writer.close()
    head, _, body = raw.partition(b"\r\n\r\n")
    if b" 200 " not in head.split(b"\r\n", 1)[0]:
        return None
    return json.loads(body)


def write_config(path: Path, sim: Simulator, out: Path, http_port: int, preset: str) -> None:
    eps = ", ".join(f'"ws://127.0.0.1:{p}"' for p in sim.ports)
    syms = ", ".join(f'"{s}"' for s in sim.instruments)
    path.write_text(f"""
[runtime]
http = "127.0.0.1:{http_port}"
log_level = "info"
shutdown_deadline_s = {DEADLINE_S}

[[feeds]]
exchange = "binance-usdm"
symbols = [{syms}]
channels = ["depth", "bbo", "trades"]
endpoints = [{eps}]
rest = "http://127.0.0.1:{sim.ports[0]}"

[sinks.jsonl]
path = "{out}"
policy = "blocking"
preset = "{preset}"
""")


@pytest.mark.parametrize(("sig", "preset"), [(signal.SIGTERM, "archival"),
                                             (signal.SIGINT, "realtime")],
                         ids=["SIGTERM-archival", "SIGINT-realtime"])
def test_signal_under_load_drains_every_accepted_record(tmp_path: Path, sig: signal.Signals,
                                                        preset: str) -> None:
    """``archival`` batches for seconds, so the drain has a real backlog to write."""

    async def body() -> None:
        sim = Simulator(SimConfig(exchange="binance-usdm", source=[], symbols=2, rate=1500.0,
                                  lines=line_configs(2, delay_ms="0,1")))
        await sim.start()
        out = tmp_path / "data" / "out.jsonl"
        cfg = tmp_path / "xcol.toml"
        port = free_port()
        write_config(cfg, sim, out, port, preset)
        log = tmp_path / "stderr.log"
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        env.pop("XCOL_CORPUS", None)
        proc = None
        try:
            with log.open("wb") as err:
                proc = await asyncio.create_subprocess_exec(
                    sys.executable, "-m", "xcol", "run", "-c", str(cfg), cwd=str(tmp_path),
                    env=env, stdout=asyncio.subprocess.DEVNULL, stderr=err)
            stats: dict[str, Any] = {}

            async def loaded() -> bool:
                nonlocal stats
                doc = await http_json(port, "/stats")
                if doc is not None:
                    stats = doc
                return bool(doc and all(s["synced"] for s in doc["streams"])
                            and doc["counters"]["published"] > 3000)

            end = time.monotonic() + 40
            while not await loaded():
                assert proc.returncode is None, log.read_text()
                assert time.monotonic() < end, f"collector not loaded: {stats}"
                await asyncio.sleep(0.1)
            before = stats["sinks"][0]["published"] + stats["sinks"][0]["queued"]
            await asyncio.sleep(0.3)  # data keeps flowing
            t0 = time.monotonic()
            proc.send_signal(sig)
            code = await asyncio.wait_for(proc.wait(), DEADLINE_S + 10)
            elapsed = time.monotonic() - t0
        finally:
            if proc is not None and proc.returncode is None:
                proc.kill()
                await proc.wait()
            await sim.stop()
        text = log.read_text()
        assert code == 0, text
        assert elapsed < DEADLINE_S + 5, (elapsed, text)
        m = re.search(r"shutdown in ([\d.]+) s \(deadline ([\d.]+) s\): complete", text)
        assert m, text
        assert float(m.group(1)) <= float(m.group(2)) == DEADLINE_S
        m = re.search(r"final sink jsonl: offered (\d+) published (\d+) dropped (\d+) "
                      r"queued (\d+)", text)
        assert m, text
        offered, published, dropped, queued = map(int, m.groups())
        m = re.search(r"final counters: received (\d+) published (\d+) \(in snapshots (\d+)\) "
                      r"duplicates (\d+) dropped (\d+) pending (\d+)", text)
        assert m, text
        received, updates, folded, dups, lost, pending = map(int, m.groups())
        # measured by the engine, not derived: nothing is left held after the stop
        assert pending == 0 and received == updates + dups + lost
        # every record accepted by the sink is in the file, once and whole
        assert dropped == queued == 0 and offered == published > before
        assert out.read_bytes().endswith(b"\n")
        recs = read_records(out)
        assert len(recs) == published
        # every update counted as published is a record (the REST snapshot's included),
        # but those the snapshot replayed into its own record
        assert sum(r["type"] != "top" for r in recs) == updates - folded
        keys = [(r["type"], r["symbol"], r["seq"], r.get("id")) for r in recs
                if r["type"] != "top"]
        assert len(keys) == len(set(keys))
        for inst in sim.instruments:
            rb = rebuild(recs, inst)  # chains from its snapshot to the last record
            assert rb.snapshots == 1 and rb.books > 100

    run(body(), timeout=90)


def test_sigterm_before_any_data_exits_cleanly(tmp_path: Path) -> None:
    """A collector whose exchange is unreachable still stops at once on SIGTERM."""

    async def body() -> None:
        dead = free_port()  # nothing listens here: every line is in backoff
        port = free_port()
        cfg = tmp_path / "xcol.toml"
        cfg.write_text(f"""
[runtime]
http = "127.0.0.1:{port}"
shutdown_deadline_s = {DEADLINE_S}

[[feeds]]
exchange = "okx"
symbols = ["BTC-USDT"]
channels = ["depth"]
endpoints = ["ws://127.0.0.1:{dead}"]

[sinks.jsonl]
path = "{tmp_path / 'out.jsonl'}"
""")
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "xcol", "run", "-c", str(cfg), cwd=str(tmp_path), env=env,
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
        try:
            async def up() -> bool:
                return await http_json(port, "/stats") is not None

            end = time.monotonic() + 30
            while not await up():
                assert proc.returncode is None and time.monotonic() < end
                await asyncio.sleep(0.1)
            await asyncio.sleep(0.5)
            proc.send_signal(signal.SIGTERM)
            _, err = await asyncio.wait_for(proc.communicate(), DEADLINE_S + 10)
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
        assert proc.returncode == 0, err.decode()
        assert b"complete" in err and b"connect failed" in err

    run(body(), timeout=60)
