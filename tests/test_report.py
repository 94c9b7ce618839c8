"""``xcol report`` against a real server on 127.0.0.1."""

from __future__ import annotations

import io
import json
import socket
from collections.abc import Iterator

import pytest
from obshelp import Backend, ServerThread

from xcol.cli import main
from xcol.obs.http import ObsServer
from xcol.obs.report import ReportError, fetch_histograms, render, stats_url


@pytest.fixture
def backend() -> Backend:
    return Backend()


@pytest.fixture
def srv(backend: Backend) -> Iterator[ServerThread]:
    st = ServerThread(ObsServer(backend.get_stats, backend.get_ready)).start()
    yield st
    st.stop()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def test_report_tables(srv: ServerThread, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", "--url", srv.url]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0].startswith(f"xcol report {srv.url}/stats")
    assert "connections (2)" in out
    conn1 = next(line for line in lines if "fstream.binance.com" in line)
    assert "75.0%" in conn1 and "1,200" in conn1 and "open" in conn1
    # Control characters from the network are shown escaped, never raw.
    assert any('wss://odd\\host/"q"\\nx' in line for line in lines)
    assert "streams (2, 1 unsynced)" in out
    eth = next(line for line in lines if "ETH-USDT" in line)
    assert "UNSYNCED" in eth
    btc = next(line for line in lines if "BTCUSDT" in line)
    assert "synced" in btc and "9,876,543,210" in btc
    code = next(line for line in lines if line.strip().startswith("code (us"))
    assert code.split()[-6:] == ["1,000", "1,800", "1,980", "1,998", "2,000", "2,000"]
    assert any(line.strip().startswith("exchange (ms") for line in lines)
    redis = next(line for line in lines if line.strip().startswith("redis"))
    assert redis.split() == ["redis", "lossy", "3", "512", "1,195", "2"]
    assert "received 1,500  published 1,197  duplicates 300  dropped 3  (reconciled)" in out


def test_report_json(srv: ServerThread, backend: Backend,
                     capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", "--url", srv.url + "/stats/", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == json.loads(json.dumps(backend.stats))


def test_unreachable_url_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    assert main(["report", "--url", url]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith(f"xcol report: cannot reach {url}/stats")
    assert len(captured.err.splitlines()) == 1


def test_http_error_exits_2(srv: ServerThread, backend: Backend,
                            capsys: pytest.CaptureFixture[str]) -> None:
    backend.fail_stats = True
    assert main(["report", "--url", srv.url]) == 2
    err = capsys.readouterr().err
    assert f"{srv.url}/stats: HTTP 500" in err


def test_not_a_stats_url_exits_2(srv: ServerThread, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", "--url", srv.url + "/health/x"]) == 2
    assert "HTTP 404" in capsys.readouterr().err
    assert main(["report", "--url", "ftp://127.0.0.1:1"]) == 2
    assert "ftp://127.0.0.1:1: not an http:// URL" in capsys.readouterr().err


def test_stats_url() -> None:
    assert stats_url("http://127.0.0.1:9090") == "http://127.0.0.1:9090/stats"
    assert stats_url("http://h:1/") == "http://h:1/stats"
    assert stats_url("http://h:1/stats") == "http://h:1/stats"
    assert stats_url("http://h:1/x/") == "http://h:1/x/stats"
    with pytest.raises(ReportError):
        stats_url("127.0.0.1:9090")
    assert stats_url("http://h:1", "/histograms") == "http://h:1/histograms"
    assert stats_url("http://h:1/stats", "/histograms") == "http://h:1/histograms"
    assert stats_url("http://h:1/x/histograms/") == "http://h:1/x/stats"


def test_report_histograms(capsys: pytest.CaptureFixture[str]) -> None:
    """``--histograms`` prints /histograms as JSON, each value readable by the
    hdrhistogram package; a collector without the endpoint is an error (exit 2)."""
    from hdrh.histogram import HdrHistogram as RefHistogram

    from xcol._fast.hdr import HdrHistogram

    h = HdrHistogram(1, 60_000_000, 3)
    for v in range(1, 1001):
        h.record(v)
    st = ServerThread(ObsServer(dict, histograms=lambda: {"code_ns": h})).start()
    try:
        assert main(["report", "--url", st.url + "/stats", "--histograms"]) == 0
        doc = json.loads(capsys.readouterr().out)
        assert list(doc) == ["code_ns"]
        ref = RefHistogram.decode(doc["code_ns"])
        assert ref.get_total_count() == 1000
        assert ref.get_value_at_percentile(50.0) == h.value_at_percentile(50.0)
        assert fetch_histograms(st.url) == doc
    finally:
        st.stop()
    st = ServerThread(ObsServer(dict)).start()
    try:
        assert main(["report", "--url", st.url, "--histograms"]) == 2
        assert f"{st.url}/histograms: HTTP 404" in capsys.readouterr().err
    finally:
        st.stop()


def test_render_tolerates_partial_documents() -> None:
    out = io.StringIO()
    render({}, out)
    text = out.getvalue()
    assert "connections (0)" in text and "(none)" in text
    out = io.StringIO()
    render({"connections": [{"id": 3, "win_rate": None}], "streams": "x",
            "counters": {"received": 5}}, out)
    text = out.getvalue()
    assert "connections (1)" in text
    assert "received 5" in text and "reconciled" not in text


def test_render_reconciles_with_pending() -> None:
    """Updates a book still holds are part of the identity when the document has them."""
    def text(pending: int) -> str:
        out = io.StringIO()
        render({"counters": {"received": 10, "published": 6, "duplicates": 2, "dropped": 1,
                             "pending": pending}}, out)
        return out.getvalue()

    assert "dropped 1  pending 1  (reconciled)" in text(1)
    assert "(in flight or unaccounted: -1)" in text(2)
