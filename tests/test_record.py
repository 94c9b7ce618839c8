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
        assert [f.name for f in files] == [f"cap-{exchange}-{s}.gz" for s in sorted(symbols)]
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


def _sim(exchange: str, port: int) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "xcol", "sim", "--exchange", exchange, "--synthetic",
         "--symbols", "1", "--rate", "300", "--port", str(port), "--stats-every", "0",
         "--duration", "20"],
        env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def test_record_same_symbol_on_two_markets_writes_two_files(tmp_path: Path) -> None:
    """USD-M and spot both have BTCUSDT: each gets its own file, named by market, and
    each replays exact as its own market (a shared file would mix two streams and two
    REST snapshots into one book)."""
    ports = {"binance-usdm": _free_port(), "binance-spot": _free_port()}
    sims = [_sim(ex, port) for ex, port in ports.items()]
    conf = tmp_path / "rec.toml"
    conf.write_text('[runtime]\nhttp = ""\n' + "".join(
        f'[[feeds]]\nexchange = "{ex}"\nsymbols = ["BTCUSDT"]\n'
        f'endpoints = ["ws://127.0.0.1:{port}"]\nrest = "http://127.0.0.1:{port}"\n'
        for ex, port in ports.items()))
    try:
        for port in ports.values():
            _wait_port(port)
        rec = subprocess.run(
            [sys.executable, "-m", "xcol", "record", "-c", str(conf), "-o",
             str(tmp_path / "cap.gz"), "--duration", "3"],
            env=ENV, capture_output=True, text=True, timeout=60)
        assert rec.returncode == 0, rec.stderr[-2000:]
    finally:
        for sim in sims:
            sim.terminate()
            sim.wait(10)
    files = sorted(f.name for f in tmp_path.glob("cap*.gz"))
    assert files == ["cap-binance-spot-BTCUSDT.gz", "cap-binance-usdm-BTCUSDT.gz"]
    for ex in ports:
        rep = subprocess.run([sys.executable, "-m", "xcol", "replay",
                              str(tmp_path / f"cap-{ex}-BTCUSDT.gz"), "--json", "--strict"],
                             env=ENV, capture_output=True, text=True, timeout=60)
        assert rep.returncode == 0, rep.stdout[-2000:] + rep.stderr[-2000:]
        d = json.loads(rep.stdout)
        assert d["market"] == ex
        assert d["gaps"] == 0 and d["errors"] == 0 and d["unsynced"] == []
        assert d["oracle"]["kind"] == "binance-bookticker"
        assert d["oracle"]["checked"] > 50 and d["oracle"]["mismatched"] == 0
        assert d["book_updates"] > 100
        assert d["instruments"]["BTCUSDT"]["synced"]


def test_record_refuses_two_feeds_writing_one_file(tmp_path: Path) -> None:
    """The same instrument of the same market in two feeds (depth in one, trades in the
    other) would share a file: refused before connecting, naming both feeds."""
    conf = tmp_path / "rec.toml"
    conf.write_text(
        '[runtime]\nhttp = ""\n'
        '[[feeds]]\nexchange = "binance-usdm"\nsymbols = ["BTCUSDT", "ETHUSDT"]\n'
        'channels = ["depth"]\nendpoints = ["ws://127.0.0.1:9"]\n'
        '[[feeds]]\nexchange = "binance-usdm"\nsymbols = ["BTCUSDT"]\n'
        'channels = ["trades"]\nendpoints = ["ws://127.0.0.1:9"]\n')
    rec = subprocess.run(
        [sys.executable, "-m", "xcol", "record", "-c", str(conf), "-o",
         str(tmp_path / "cap.gz"), "--duration", "1"],
        env=ENV, capture_output=True, text=True, timeout=30)
    assert rec.returncode == 2, rec.stderr[-2000:]
    err = rec.stderr.strip().splitlines()[-1]
    assert "feeds.1.symbols" in err and "feeds.0" in err
    assert "cap-binance-usdm-BTCUSDT.gz" in err
    assert not list(tmp_path.glob("cap*"))
