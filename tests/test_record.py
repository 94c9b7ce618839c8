"""``xcol record`` against the simulator, then ``xcol replay --strict`` on what it wrote:
the capture must replay exact (oracle checked, 0 gaps, every instrument synced)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ENV = dict(os.environ, PYTHONPATH=str(ROOT))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_port(port: int, timeout: float = 15.0) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            with socket.create_connection(("127.0.0.1", port), 0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise AssertionError(f"port {port} never opened")


@pytest.mark.parametrize(("exchange", "symbols", "oracle"), [
    ("binance-usdm", ["BTCUSDT", "ETHUSDT"], "binance-bookticker"),
    ("okx", ["BTC-USDT"], "okx-checksum"),
    ("deribit", ["BTC-PERPETUAL"], "deribit-change-id"),
])
def test_record_then_replay_is_exact(tmp_path: Path, exchange: str, symbols: list[str],
                                     oracle: str) -> None:
    port = _free_port()
    sim = subprocess.Popen(
        [sys.executable, "-m", "xcol", "sim", "--exchange", exchange, "--synthetic",
         "--symbols", str(len(symbols)), "--rate", "300", "--port", str(port),
         "--stats-every", "0", "--duration", "20"],
        env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        _wait_port(port)
        out = tmp_path / "cap.gz"
        rec = subprocess.run(
            [sys.executable, "-m", "xcol", "record", "-o", str(out), "--duration", "3",
             "--set", f"feeds.0.exchange={exchange}",
             "--set", f"feeds.0.symbols={','.join(symbols)}",
             "--set", f"feeds.0.endpoints=ws://127.0.0.1:{port},ws://127.0.0.1:{port}",
             "--set", f"feeds.0.rest=http://127.0.0.1:{port}", "--set", "runtime.http="],
            env=ENV, capture_output=True, text=True, timeout=60)
        assert rec.returncode == 0, rec.stderr[-2000:]
    finally:
        sim.terminate()
        sim.wait(10)
    files = sorted(tmp_path.glob("cap*.gz"))
    if len(symbols) == 1:
        assert files == [out]
    else:
        assert [f.name for f in files] == [f"cap-{s}.gz" for s in sorted(symbols)]
    for f in files:
        rep = subprocess.run([sys.executable, "-m", "xcol", "replay", str(f), "--json",
                              "--strict"], env=ENV, capture_output=True, text=True,
                             timeout=60)
        assert rep.returncode == 0, rep.stdout[-2000:] + rep.stderr[-2000:]
        d = json.loads(rep.stdout)
        assert d["gaps"] == 0 and d["errors"] == 0 and d["unsynced"] == []
        assert d["oracle"]["kind"] == oracle and d["oracle"]["mismatched"] == 0
        if oracle == "binance-bookticker":
            assert d["oracle"]["checked"] > 50
        assert d["book_updates"] > 100
        # one line per feed is recorded: the capture has no duplicate updates
        (inst,) = d["instruments"].values()
        assert inst["synced"]
