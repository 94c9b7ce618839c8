"""xcol.obs.http over real sockets on 127.0.0.1, and xcol.obs.metrics' text format."""

from __future__ import annotations

import asyncio
import json
import logging
import math
import socket
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from obshelp import Backend, PromError, ServerThread, loop_factories, parse_prometheus

from xcol.obs.http import ObsServer
from xcol.obs.metrics import Registry, format_value, render_stats
from xcol.obs.schema import empty_stats

LOOPS = loop_factories()


@pytest.fixture(params=LOOPS, ids=[name for name, _ in LOOPS])
def loop_factory(request: pytest.FixtureRequest) -> Callable[[], asyncio.AbstractEventLoop]:
    factory: Callable[[], asyncio.AbstractEventLoop] = request.param[1]
    return factory


@pytest.fixture
def backend() -> Backend:
    return Backend()


@pytest.fixture
def srv(backend: Backend,
        loop_factory: Callable[[], asyncio.AbstractEventLoop]) -> Iterator[ServerThread]:
    st = ServerThread(ObsServer(backend.get_stats, backend.get_ready, idle_timeout=60),
                      loop_factory).start()
    yield st
    st.stop()


def get(url: str, method: str = "GET") -> tuple[int, dict[str, str], bytes]:
    req = urllib.request.Request(url, method=method)
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, dict(resp.headers.items()), resp.read()
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, dict(exc.headers.items()), exc.read()


def connect(st: ServerThread) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", st.server.port), timeout=30)
    return s


def read_response(sock: socket.socket, buf: bytearray,
                  head_only: bool = False) -> tuple[int, dict[str, str], bytes]:
    """One response from ``sock`` (``buf`` carries bytes read past it)."""
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"closed mid-response: {bytes(buf)!r}")
        buf += chunk
    head, _, rest = bytes(buf).partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    version, status, _reason = lines[0].split(" ", 2)
    assert version == "HTTP/1.1"
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    n = 0 if head_only else int(headers["content-length"])
    body = bytearray(rest)
    while len(body) < n:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed mid-body")
        body += chunk
    buf[:] = body[n:]
    return int(status), headers, bytes(body[:n])


def closed_by_peer(sock: socket.socket) -> bool:
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True


# ------------------------------------------------------------------------- endpoints


def test_health(srv: ServerThread) -> None:
    status, headers, body = get(srv.url + "/health")
    assert status == 200
    assert headers["Content-Type"] == "application/json"
    assert json.loads(body) == {"status": "ok"}


def test_ready_and_not_ready(srv: ServerThread, backend: Backend) -> None:
    status, headers, body = get(srv.url + "/ready")
    assert status == 200
    assert json.loads(body) == {"ready": True, "reasons": []}
    backend.reasons = ["binance-usdm BTCUSDT: waiting for snapshot", "sink redis: down"]
    status, headers, body = get(srv.url + "/ready")
    assert status == 503
    assert headers["Content-Type"] == "application/json"
    assert json.loads(body) == {"ready": False, "reasons": backend.reasons}


def test_stats_json(srv: ServerThread, backend: Backend) -> None:
    status, headers, body = get(srv.url + "/stats?pretty=0")
    assert status == 200
    assert headers["Content-Type"] == "application/json"
    assert headers["Cache-Control"] == "no-store"
    assert json.loads(body) == json.loads(json.dumps(backend.stats))


def test_stats_non_finite_numbers_become_null(srv: ServerThread, backend: Backend) -> None:
    doc = empty_stats()
    doc["latency"]["code_us"]["p99"] = math.nan
    backend.stats = doc
    status, _, body = get(srv.url + "/stats")
    assert status == 200
    assert json.loads(body)["latency"]["code_us"]["p99"] is None


def test_metrics_parse_strictly(srv: ServerThread) -> None:
    status, headers, body = get(srv.url + "/metrics")
    assert status == 200
    assert headers["Content-Type"].startswith("text/plain; version=0.0.4")
    fams = parse_prometheus(body.decode("utf-8"))
    for fam in fams.values():
        assert fam.help, fam.name
        assert fam.name.startswith("xcol_")
        if fam.type == "counter":
            assert fam.name.endswith("_total")
    assert fams["xcol_received_total"].samples == [("xcol_received_total", {}, 1500.0)]
    assert fams["xcol_connection_win_rate"].type == "gauge"
    wins = {s[1]["conn"]: s[2] for s in fams["xcol_connection_wins_total"].samples}
    assert wins == {"1": 900.0, "2": 0.0}
    # The awkward endpoint survives escaping and unescaping.
    endpoints = {s[1]["endpoint"] for s in fams["xcol_connection_frames_total"].samples}
    assert 'wss://odd\\host/"q"\nx' in endpoints
    code = fams["xcol_code_latency_microseconds"]
    assert code.type == "summary"
    quantiles = {s[1]["quantile"]: s[2] for s in code.samples if s[0] == code.name}
    assert set(quantiles) == {"0.5", "0.9", "0.99", "0.999"}
    assert quantiles["0.5"] <= quantiles["0.9"] <= quantiles["0.99"] <= quantiles["0.999"]
    count = [s[2] for s in code.samples if s[0].endswith("_count")]
    assert count == [2000.0]
    assert fams["xcol_exchange_latency_milliseconds"].type == "summary"
    states = {(s[1]["conn"], s[1]["state"]) for s in fams["xcol_connection_state"].samples}
    assert states == {("1", "open"), ("2", "backoff")}
    synced = {s[1]["instrument"]: s[2] for s in fams["xcol_stream_synced"].samples}
    assert synced == {"BTCUSDT": 1.0, "ETH-USDT": 0.0}
    assert [s[2] for s in fams["xcol_stream_last_seq"].samples] == [9_876_543_210.0]
    drops = fams["xcol_sink_drops_total"].samples
    assert drops == [("xcol_sink_drops_total",
                      {"sink": "redis", "policy": "lossy", "reason": "queue_full"}, 2.0)]
    # a sink's own counters: numbers and mappings of numbers, nothing else
    assert fams["xcol_sink_delivered"].samples == [
        ("xcol_sink_delivered", {"sink": "kafka", "policy": "blocking"}, 1190.0)]
    flush = {s[1]["stat"]: s[2] for s in fams["xcol_sink_flush_ns"].samples}
    assert flush == {"p50": 1500.0, "p99": 9000.0}
    assert "xcol_sink_path" not in fams and "xcol_sink_ok" not in fams
    assert fams["xcol_sink_healthy"].samples[0][2] == 1.0
    # the fan-out's counters for every sink: completed writes, failures, retries, durations
    kafka = {"sink": "kafka", "policy": "blocking"}
    for what, v in (("batches", 40.0), ("failures", 2.0), ("retries", 3.0)):
        name = f"xcol_sink_fanout_{what}_total"
        assert fams[name].samples == [(name, kafka, v)]
    # the sink's own "failures" (another meaning) stays a gauge of its own name, and no
    # counter shares a family name with a gauge (OpenMetrics drops the _total suffix)
    assert fams["xcol_sink_failures"].samples == [("xcol_sink_failures", kafka, 5.0)]
    bases = [n[:-len("_total")] if n.endswith("_total") else n for n in fams]
    assert len(bases) == len(set(bases))
    write = fams["xcol_sink_fanout_write_duration_microseconds"]
    assert write.type == "summary"
    wq = {s[1]["quantile"]: s[2] for s in write.samples if s[0] == write.name}
    assert wq == {"0.5": 120.0, "0.9": 200.0, "0.99": 900.0, "0.999": 1500.0}
    assert all(s[1]["sink"] == "kafka" for s in write.samples)


def test_head(srv: ServerThread) -> None:
    with connect(srv) as s:
        s.sendall(b"HEAD /health HTTP/1.1\r\nHost: x\r\n\r\n")
        buf = bytearray()
        status, headers, body = read_response(s, buf, head_only=True)
        assert status == 200
        assert int(headers["content-length"]) > 0
        s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        status, headers, body = read_response(s, buf)
        # Nothing of the HEAD's body was sent before the second response.
        assert status == 200
        assert json.loads(body) == {"status": "ok"}


# ------------------------------------------------------------------------ protocol


def test_not_found_and_method_not_allowed(srv: ServerThread) -> None:
    status, headers, body = get(srv.url + "/nope")
    assert status == 404
    assert json.loads(body)["path"] == "/nope"
    status, headers, body = get(srv.url + "/stats", method="POST")
    assert status == 405
    assert headers["Allow"] == "GET, HEAD"
    status, headers, body = get(srv.url + "/metrics", method="DELETE")
    assert status == 405


def test_keep_alive_and_pipelining(srv: ServerThread) -> None:
    with connect(srv) as s:
        buf = bytearray()
        for path in ("/health", "/ready", "/stats"):
            s.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            status, headers, _ = read_response(s, buf)
            assert status == 200
            assert headers["connection"] == "keep-alive"
        # Three requests in one write: three responses, in order, then close.
        s.sendall(b"GET /health HTTP/1.1\r\n\r\nGET /nope HTTP/1.1\r\n\r\n"
                  b"GET /ready HTTP/1.1\r\nConnection: close\r\n\r\n")
        got = [read_response(s, buf)[0] for _ in range(3)]
        assert got == [200, 404, 200]
        assert closed_by_peer(s)


def test_http10_closes_unless_keep_alive(srv: ServerThread) -> None:
    with connect(srv) as s:
        buf = bytearray()
        s.sendall(b"GET /health HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        status, headers, _ = read_response(s, buf)
        assert (status, headers["connection"]) == (200, "keep-alive")
        s.sendall(b"GET /health HTTP/1.0\r\n\r\n")
        status, headers, _ = read_response(s, buf)
        assert (status, headers["connection"]) == (200, "close")
        assert closed_by_peer(s)


@pytest.mark.parametrize(
    "raw,want",
    [
        (b"GARBAGE\r\n\r\n", 400),
        (b"GET /health\r\n\r\n", 400),
        (b"GET /health HTTP/1.1\r\nno colon here\r\n\r\n", 400),
        (b"GET /health HTTP/1.1\r\nBad Name: x\r\n\r\n", 400),
        (b"GET health HTTP/1.1\r\n\r\n", 400),
        (b"GET /health HTTP/2.0\r\n\r\n", 505),
        (b"GET /health FTP/1.0\r\n\r\n", 400),
        (b"POST /stats HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", 501),
        (b"GET /stats HTTP/1.1\r\nContent-Length: x\r\n\r\n", 400),
        (b"GET /stats HTTP/1.1\r\nContent-Length: 99999999\r\n\r\n", 413),
        (b"GET /" + b"a" * 20000 + b" HTTP/1.1\r\n\r\n", 431),
    ],
)
def test_bad_requests_get_4xx_and_close(srv: ServerThread, raw: bytes, want: int) -> None:
    with connect(srv) as s:
        s.sendall(raw)
        status, headers, _ = read_response(s, bytearray())
        assert status == want
        assert headers["connection"] == "close"
        assert closed_by_peer(s)
    assert get(srv.url + "/health")[0] == 200


def test_request_body_is_skipped(srv: ServerThread) -> None:
    with connect(srv) as s:
        buf = bytearray()
        s.sendall(b"POST /health HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello"
                  b"GET /health HTTP/1.1\r\n\r\n")
        assert read_response(s, buf)[0] == 405
        assert read_response(s, buf)[0] == 200


def test_client_disconnect_mid_request(srv: ServerThread) -> None:
    with connect(srv) as s:
        s.sendall(b"GET /health HTTP/1.1\r\nHost:")
    with connect(srv) as s:
        s.sendall(b"GET /stats HTTP/1.1\r\nContent-Length: 10\r\n\r\nabc")
    assert get(srv.url + "/health")[0] == 200


def test_handler_exception_is_500_and_server_keeps_serving(
        srv: ServerThread, backend: Backend, caplog: pytest.LogCaptureFixture) -> None:
    backend.fail_stats = True
    backend.fail_ready = True
    with caplog.at_level(logging.ERROR, logger="xcol.obs.http"):
        for path in ("/stats", "/metrics", "/ready"):
            status, headers, body = get(srv.url + path)
            assert status == 500
            assert json.loads(body) == {"error": "internal error"}
    assert any("exploded" in (r.exc_text or "") or r.exc_info for r in caplog.records)
    assert srv.server.errors == 3
    # The same keep-alive connection goes on after a 500.
    with connect(srv) as s:
        buf = bytearray()
        s.sendall(b"GET /stats HTTP/1.1\r\n\r\n")
        assert read_response(s, buf)[0] == 500
        backend.fail_stats = False
        backend.fail_ready = False
        s.sendall(b"GET /stats HTTP/1.1\r\n\r\n")
        assert read_response(s, buf)[0] == 200
    assert get(srv.url + "/ready")[0] == 200


def test_bad_stats_document_is_500(srv: ServerThread, backend: Backend) -> None:
    backend.stats = {"counters": object()}
    assert get(srv.url + "/stats")[0] == 500
    assert get(srv.url + "/health")[0] == 200


# ------------------------------------------------------------------------ lifecycle


def test_async_callbacks_and_port_zero(
        loop_factory: Callable[[], asyncio.AbstractEventLoop]) -> None:
    async def stats() -> dict[str, Any]:
        await asyncio.sleep(0)
        return dict(empty_stats())

    async def ready() -> list[str]:
        await asyncio.sleep(0)
        return ["warming up"]

    server = ObsServer(stats, ready)
    st = ServerThread(server, loop_factory).start()
    try:
        assert server.port > 0
        assert server.host == "127.0.0.1"
        assert server.url == f"http://127.0.0.1:{server.port}"
        assert get(st.url + "/stats")[0] == 200
        status, _, body = get(st.url + "/ready")
        assert (status, json.loads(body)["reasons"]) == (503, ["warming up"])
        assert parse_prometheus(get(st.url + "/metrics")[2].decode())
    finally:
        st.stop()


def test_no_ready_callback_means_ready() -> None:
    st = ServerThread(ObsServer(empty_stats)).start()
    try:
        assert get(st.url + "/ready")[0] == 200
    finally:
        st.stop()


def test_histograms_are_encoded_and_absent_without_a_callback() -> None:
    """``/histograms`` encodes each histogram the callback returns (read back here with
    xcol's own decoder; the collector test checks the hdrhistogram package reads it);
    a server without the callback answers 404."""
    from xcol._fast.hdr import HdrHistogram

    h = HdrHistogram(1, 60_000_000, 3)
    for v in (5, 500, 50_000):
        h.record(v)

    async def hists() -> dict[str, HdrHistogram]:
        await asyncio.sleep(0)
        return {"code_ns": h, "empty_us": HdrHistogram(1, 1000, 2)}

    st = ServerThread(ObsServer(empty_stats, histograms=hists)).start()
    try:
        status, headers, body = get(st.url + "/histograms")
        assert status == 200 and headers["Content-Type"] == "application/json"
        doc = json.loads(body)
        assert set(doc) == {"code_ns", "empty_us"}
        back = HdrHistogram.decode(doc["code_ns"])
        assert back.total_count == 3 and back.max() == h.max()
        assert HdrHistogram.decode(doc["empty_us"]).total_count == 0
    finally:
        st.stop()
    st = ServerThread(ObsServer(empty_stats)).start()
    try:
        assert get(st.url + "/histograms")[0] == 404
    finally:
        st.stop()


def test_stop_closes_idle_connections_and_listener(
        loop_factory: Callable[[], asyncio.AbstractEventLoop]) -> None:
    server = ObsServer(empty_stats)
    st = ServerThread(server, loop_factory).start()
    port = server.port
    idle = socket.create_connection(("127.0.0.1", port), timeout=30)
    try:
        buf = bytearray()
        idle.sendall(b"GET /health HTTP/1.1\r\n\r\n")
        assert read_response(idle, buf)[0] == 200
        st.stop()
        assert closed_by_peer(idle)
    finally:
        idle.close()
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=30).close()


def test_start_twice_is_an_error() -> None:
    st = ServerThread(ObsServer(empty_stats)).start()
    try:
        with pytest.raises(RuntimeError):
            st.run(st.server.start("127.0.0.1", 0))
    finally:
        st.stop()


# -------------------------------------------------------------------------- metrics


def test_registry_rules() -> None:
    reg = Registry()
    reg.counter("xcol_things", "Things.", 3)
    reg.counter("xcol_things_total", "Things.", 4, {"k": "v"})
    with pytest.raises(ValueError):
        reg.gauge("xcol_things_total", "Now a gauge.", 1)
    with pytest.raises(ValueError):
        reg.counter("xcol_things_total", "Same sample again.", 1)
    with pytest.raises(ValueError):
        reg.gauge("9bad", "Bad name.", 1)
    with pytest.raises(ValueError):
        reg.gauge("xcol_ok", "Bad label.", 1, {"bad-label": 1})
    reg.summary("xcol_lat", "Latency.", {0.5: 1.0, 0.99: 2.5}, count=3, total=4.5)
    with pytest.raises(ValueError):
        reg.gauge("xcol_lat_count", "Collides with the summary.", 1)
    with pytest.raises(ValueError):
        reg.summary("xcol_lat2", "Bad quantile.", {1.5: 1.0})
    reg.gauge("xcol_help", 'Help with \\ backslash\nand "quotes".', math.nan)
    text = reg.render()
    fams = parse_prometheus(text)
    assert fams["xcol_things_total"].samples == [
        ("xcol_things_total", {}, 3.0), ("xcol_things_total", {"k": "v"}, 4.0)]
    assert fams["xcol_help"].help == 'Help with \\ backslash\nand "quotes".'
    assert math.isnan(fams["xcol_help"].samples[0][2])
    assert 'xcol_lat{quantile="0.99"} 2.5' in text.splitlines()
    assert "xcol_lat_sum 4.5" in text.splitlines()


def test_format_value() -> None:
    assert [format_value(v) for v in (3, 2.0, 0.25, math.inf, -math.inf, math.nan, True)] == [
        "3", "2", "0.25", "+Inf", "-Inf", "NaN", "1"]


def test_render_partial_documents() -> None:
    assert render_stats({}) == ""
    text = render_stats({"counters": {"received": 1}, "connections": [{"id": 7}],
                         "latency": {"code_us": {"p50": 3}}, "sinks": "nonsense"})
    fams = parse_prometheus(text)
    assert fams["xcol_received_total"].samples[0][2] == 1.0
    frames = fams["xcol_connection_frames_total"].samples[0]
    assert frames[1] == {"conn": "7", "exchange": "", "endpoint": ""}
    assert math.isnan(frames[2])
    assert "xcol_published_total" not in fams


def test_render_stream_counters() -> None:
    """The measured per-stream buckets and the pending gauge reach /metrics."""
    st = {"exchange": "okx", "instrument": "BTC-USDT", "channel": "depth", "synced": True,
          "last_seq": 5, "gaps": 1, "resyncs": 1, "received": 10, "published": 6,
          "duplicates": 2, "dropped": 1, "pending": 1, "dropped_by_reason": {"expired": 1}}
    text = render_stats({"streams": [st], "counters": {
        "received": 10, "published": 6, "duplicates": 2, "dropped": 1, "pending": 1,
        "dropped_by_reason": {"expired": 1}}})
    fams = parse_prometheus(text)
    lab = {"exchange": "okx", "instrument": "BTC-USDT", "channel": "depth"}
    for key, v in (("received", 10), ("published", 6), ("duplicates", 2), ("dropped", 1)):
        assert fams[f"xcol_stream_{key}_total"].samples == [
            (f"xcol_stream_{key}_total", lab, float(v))]
    assert fams["xcol_stream_pending"].samples == [("xcol_stream_pending", lab, 1.0)]
    assert fams["xcol_stream_drops_total"].samples == [
        ("xcol_stream_drops_total", {**lab, "reason": "expired"}, 1.0)]
    assert fams["xcol_pending"].samples == [("xcol_pending", {}, 1.0)]
    assert fams["xcol_drops_total"].samples == [("xcol_drops_total", {"reason": "expired"}, 1.0)]


def test_strict_parser_rejects_bad_text() -> None:
    bad = [
        "xcol_x 1",  # no trailing line feed
        "# TYPE xcol_x counter\nxcol_x 1\n",  # counter without _total
        "# TYPE xcol_x gauge\nxcol_x{a=\"1} 1\n",
        "# TYPE xcol_x gauge\nxcol_x{a=\"\\t\"} 1\n",
        "# TYPE xcol_x gauge\nxcol_x 1\nxcol_x 2\n",
        "# TYPE xcol_x gauge\nxcol_y 1\n",
        "# TYPE xcol_x summary\nxcol_x 1\n",
        "# TYPE xcol_x gauge\nxcol_x one\n",
    ]
    for text in bad:
        with pytest.raises(PromError):
            parse_prometheus(text)
