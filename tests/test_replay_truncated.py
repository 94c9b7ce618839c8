"""``xcol replay`` of gzip captures that were cut off (``xcol record`` killed with SIGKILL).

A copy of a real capture is re-compressed in ``tmp_path`` and cut in the middle of its
compressed bytes: the replay must apply every complete line before the cut (the message
count equals those lines; the oracle holds on them; the result equals replaying exactly
those lines from an intact file), report the truncation on stderr and in ``--json``, and
fail only under ``--strict``.  A file with no complete line is still bad input (exit 2).
"""

from __future__ import annotations

import gzip
import json
import zlib
from pathlib import Path
from typing import Any

import pytest
from capture import need, read_gz_lines, write_gz_lines

from xcol.cli import main
from xcol.replay import ReplayError, TruncatedCapture, read_hftbacktest, replay


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, dict[str, Any], str]:
    capsys.readouterr()
    code = main(["replay", *args, "--json"])
    out, err = capsys.readouterr()
    return code, json.loads(out) if out.strip() else {}, err


def complete_lines(data: bytes) -> int:
    """Line feeds in everything zlib can decompress from ``data`` (the oracle of how many
    lines a reader can recover: an independent single-shot decompression)."""
    out = b""
    while data:
        d = zlib.decompressobj(31)
        out += d.decompress(data)
        data = d.unused_data if d.eof else b""
    return out.count(b"\n")


@pytest.fixture(scope="module")
def usdm_lines() -> list[bytes]:
    return read_gz_lines(need("usdm").path)


def cut_copy(tmp: Path, lines: list[bytes], fraction: float) -> tuple[Path, int]:
    """The capture re-compressed in one gzip member and cut at ``fraction`` of its bytes;
    returns the file and the number of complete lines it still holds."""
    whole = tmp / "whole.gz"
    write_gz_lines(whole, lines)
    data = whole.read_bytes()
    cut = data[: int(len(data) * fraction)]
    path = tmp / "cut.gz"
    path.write_bytes(cut)
    return path, complete_lines(cut)


# --------------------------------------------------------------------- real capture


@pytest.mark.corpus
def test_cut_capture_replays_every_complete_line(
        tmp_path: Path, usdm_lines: list[bytes], capsys: pytest.CaptureFixture[str]) -> None:
    path, n = cut_copy(tmp_path, usdm_lines, 0.5)
    assert 1000 < n < len(usdm_lines)
    code, rep, err = cli(capsys, str(path))
    assert code == 0, err  # not --strict: the readable part is a successful replay
    assert rep["messages"] == n
    assert rep["truncated"] == [{"file": str(path), "lines": n,
                                 "reason": rep["truncated"][0]["reason"]}]
    assert "end-of-stream marker" in rep["truncated"][0]["reason"]
    assert rep["errors"] == 1
    assert str(path) in err and "truncated" in err and f"{n:,} complete lines" in err
    # the oracle holds on everything read
    assert rep["oracle"]["kind"] == "binance-bookticker"
    assert rep["oracle"]["checked"] > 100 and rep["oracle"]["mismatched"] == 0
    assert rep["gaps"] == 0 and rep["unsynced"] == []
    # ... and the books are exactly those of an intact file holding the same lines
    prefix = tmp_path / "prefix.gz"
    write_gz_lines(prefix, usdm_lines[:n])
    _, whole, _ = cli(capsys, str(prefix))
    assert whole["truncated"] == [] and whole["errors"] == 0
    assert rep["instruments"] == whole["instruments"]
    assert (rep["oracle"], rep["book_updates"]) == (whole["oracle"], whole["book_updates"])
    # --strict fails it, and says why
    capsys.readouterr()
    assert main(["replay", str(path), "--strict"]) == 1
    out = capsys.readouterr().out
    assert f"strict: FAILED (truncated: {path})" in out


@pytest.mark.corpus
def test_recording_restarted_after_a_kill(tmp_path: Path, usdm_lines: list[bytes]) -> None:
    """``xcol record`` appends one gzip member per run: intact members are read whole, a
    killed last member up to its cut; a file of intact members is not truncated."""
    half = len(usdm_lines) // 2
    first = gzip.compress(b"".join(x + b"\n" for x in usdm_lines[:half]))
    second = gzip.compress(b"".join(x + b"\n" for x in usdm_lines[half:]))
    intact = tmp_path / "intact.gz"
    intact.write_bytes(first + second + b"\0" * 16)  # gzip(1) tolerates zero padding
    rep = replay([str(intact)])
    assert rep.truncated == [] and rep.messages == len(usdm_lines)
    assert rep.oracle.mismatched == 0
    killed = tmp_path / "killed.gz"
    killed.write_bytes(first + second[: len(second) // 3])
    n = complete_lines(first + second[: len(second) // 3])
    assert half < n < len(usdm_lines)
    rep = replay([str(killed)])
    assert rep.messages == n and [t["lines"] for t in rep.truncated] == [n]
    assert rep.oracle.checked > 0 and rep.oracle.mismatched == 0


@pytest.mark.corpus
def test_corrupt_bytes_stop_the_file_where_they_start(
        tmp_path: Path, usdm_lines: list[bytes], capsys: pytest.CaptureFixture[str]) -> None:
    whole = tmp_path / "whole.gz"
    write_gz_lines(whole, usdm_lines)
    data = bytearray(whole.read_bytes())
    at = len(data) // 2
    data[at: at + 64] = b"\xff" * 64
    bad = tmp_path / "bad.gz"
    bad.write_bytes(bytes(data))
    code, rep, err = cli(capsys, str(bad))
    assert code == 0 and "truncated" in err
    (t,) = rep["truncated"]
    assert t["reason"].startswith("corrupt gzip data")
    # deflate turns the damaged bytes into garbage for a while before zlib notices: those
    # lines are refused one by one as errors (never applied), the rest are replayed
    assert 1000 < rep["messages"] < t["lines"]
    assert rep["errors"] >= 1 + t["lines"] - rep["messages"]
    assert rep["oracle"]["checked"] > 100 and rep["oracle"]["mismatched"] == 0


@pytest.mark.corpus
def test_a_file_cut_before_its_first_line_is_bad_input(
        tmp_path: Path, usdm_lines: list[bytes], capsys: pytest.CaptureFixture[str]) -> None:
    path, n = cut_copy(tmp_path, usdm_lines, 0.0001)
    assert n == 0
    capsys.readouterr()
    assert main(["replay", str(path), "--json"]) == 2
    err = capsys.readouterr().err
    assert str(path) in err and "truncated before its first complete line" in err


# --------------------------------------------------------------------- the reader


def test_reader_yields_complete_lines_then_raises(tmp_path: Path) -> None:
    lines = [b"%d {\"n\":%d,\"pad\":\"%s\"}" % (i, i, b"x" * (i % 50)) for i in range(5000)]
    data = gzip.compress(b"\n".join(lines) + b"\n")
    path = tmp_path / "cut.gz"
    path.write_bytes(data[: len(data) * 2 // 3])
    got: list[bytes] = []
    with pytest.raises(TruncatedCapture) as info:
        for ln in read_hftbacktest(path):
            assert ln.error is None
            got.append(b"%d %s" % (round(ln.ts * 1e9), ln.data))
    assert 0 < len(got) < len(lines) and got == lines[: len(got)]
    assert info.value.lines == len(got) and info.value.path == str(path)
    assert "incomplete last line" in info.value.reason
    # intact, without a final line feed: every line, no error
    path.write_bytes(gzip.compress(b"\n".join(lines)))
    assert len(list(read_hftbacktest(path))) == len(lines)
    # nothing complete at all: the replay refuses the file as bad input
    path.write_bytes(data[:12])
    with pytest.raises(ReplayError, match="truncated before its first complete line"):
        replay([str(path)])


@pytest.mark.corpus
def test_cut_cryptofeed_capture_feeds_each_rest_snapshot_once(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A cryptofeed ws capture (gzip) cut in the middle, beside its REST companion: every
    snapshot is fed once, exactly as when replaying the same complete lines from an intact
    file (the snapshots fed before the cut used to be fed again after it)."""
    cap = need("cf-usdm")
    src = cap.path
    base = src.name[: -len(".ws.1.0")]
    raw = src.read_bytes()
    data = gzip.compress(raw)
    cut = data[: len(data) // 2]
    n = complete_lines(cut)
    assert 0 < n < raw.count(b"\n")
    results = []
    for kind, body in (("cut", cut), ("whole", gzip.compress(b"".join(
            line + b"\n" for line in raw.split(b"\n")[:n])))):
        d = tmp_path / kind
        d.mkdir()
        for companion in (".http.0.0", ".0"):
            (d / (base + companion)).write_bytes((src.parent / (base + companion)).read_bytes())
        (d / src.name).write_bytes(body)
        code, out, _err = cli(capsys, str(d / src.name))
        results.append(out)
    cut_out, whole_out = results
    assert cut_out["truncated"] and not whole_out.get("truncated")
    assert cut_out["messages"] == whole_out["messages"]
    assert cut_out["instruments"] == whole_out["instruments"]
    assert cut_out["oracle"] == whole_out["oracle"]
