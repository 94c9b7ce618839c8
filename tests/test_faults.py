"""Faults injected into copies of real captures are detected, not absorbed.

Each test derives a copy of a capture in ``tmp_path`` (the corpus itself is
never touched), then checks the Engine directly and the ``xcol replay`` CLI:

* a depth event removed → a gap (code 3), the instrument ends unsynced;
* an event repeated → a duplicate (code 2), the oracle still holds 100%;
* an OKX size tampered → a checksum mismatch (code 4);
* a Deribit change removed → a gap (code 3).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from capture import (
    Capture,
    Frame,
    ReplayResult,
    frames,
    http_sibling,
    need,
    read_gz_lines,
    read_text_lines,
    replay,
    write_gz_lines,
    write_text_lines,
)
from reference import OkxBook

pytestmark = pytest.mark.corpus


def derive(cap: Capture, tmp: Path, edit: Callable[[list[bytes]], list[bytes]]) -> Path:
    """A copy of ``cap`` with its lines edited (companion files copied unchanged)."""
    src = cap.path
    dst = tmp / src.name
    if cap.gz:
        write_gz_lines(dst, edit(read_gz_lines(src)))
    else:
        write_text_lines(dst, edit(read_text_lines(src)))
        stem = src.name.split(".ws.")[0]
        for companion in (http_sibling(src), src.with_name(stem + ".0")):
            if companion.exists():
                shutil.copy(companion, tmp / companion.name)
    return dst


def run_cli(capsys: pytest.CaptureFixture[str], path: Path) -> tuple[int, dict[str, Any]]:
    try:
        from xcol.cli import main
    except ImportError as exc:
        pytest.fail(f"xcol.cli is not importable yet ({exc})")
    capsys.readouterr()
    try:
        code = main(["replay", str(path), "--json", "--strict"])
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 2
    report: dict[str, Any] = json.loads(capsys.readouterr().out)
    return code, report


def message(line: bytes) -> bytes:
    """The message part of a capture line (either format)."""
    if line[:1].isdigit() and b": " in line[:40]:
        return line.split(b": ", 1)[1]
    return line.split(b" ", 1)[1]


def depth_lines(lines: list[bytes], symbol: bytes | None = None) -> list[int]:
    """Indexes of the depth-update lines (of ``symbol``) after that symbol's REST snapshot."""
    out = []
    seen_snapshot = False
    for i, line in enumerate(lines):
        msg = message(line) if line[:1].isdigit() else b""
        if msg.startswith(b'{"lastUpdateId"'):
            seen_snapshot = True
        elif b"@depth" in msg[:60] and (symbol is None or b'"s":"%s"' % symbol in msg):
            out.append(i)
    assert seen_snapshot or symbol is not None
    return out


def codes_after(res_frames: list[Frame], market: str) -> tuple[ReplayResult, list[int]]:
    codes: list[int] = []
    res = replay(res_frames, market, on_frame=lambda r, i, f, code: codes.append(code))
    return res, codes


# ------------------------------------------------------------ removed depth


@pytest.mark.parametrize("name", ["usdm", "spot", "coinm"])
def test_removed_depth_event_is_a_gap(
    name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    cap = need(name)
    lines = read_gz_lines(cap.path)
    snap = next(i for i, x in enumerate(lines) if b'{"lastUpdateId"' in x[:60])
    candidates = [i for i in depth_lines(lines) if i > snap]
    victim = candidates[len(candidates) // 2]
    path = derive(cap, tmp_path, lambda ls: ls[:victim] + ls[victim + 1:])

    res, codes = codes_after(frames(path), cap.market)
    nxt = next(i for i in candidates if i > victim) - 1  # its index once the victim is gone
    assert codes[nxt] == 3, f"the depth event after the hole gave {codes[nxt]}"
    assert res.gaps >= 1
    book = res.engine.book(res.engine.instruments[0])
    assert not book.synced and book.resync_requested
    assert res.unsynced() == res.engine.instruments
    assert res.mismatched == 0, "no bookTicker may be judged against a book past a hole"

    code, report = run_cli(capsys, path)
    assert code == 1, report
    assert report["gaps"] >= 1
    assert report["unsynced"] == res.engine.instruments
    assert report["oracle"]["mismatched"] == 0


def test_removed_depth_event_of_one_symbol_leaves_the_others_synced(
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    cap = need("cf-usdm")
    lines = read_text_lines(cap.path)
    victim = depth_lines(lines, b"SUSHIUSDT")[-5]
    path = derive(cap, tmp_path, lambda ls: ls[:victim] + ls[victim + 1:])
    res, _ = codes_after(frames(path), cap.market)
    assert res.gaps >= 1
    assert res.unsynced() == ["SUSHIUSDT"]
    assert res.mismatched == 0
    code, report = run_cli(capsys, path)
    assert code == 1
    assert report["gaps"] >= 1 and report["unsynced"] == ["SUSHIUSDT"]


def test_missing_snapshot_leaves_the_book_unsynced(
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    cap = need("spot")
    path = derive(cap, tmp_path,
                  lambda ls: [x for x in ls if b'{"lastUpdateId"' not in x[:60]])
    res, codes = codes_after(frames(path), cap.market)
    assert 0 not in codes, "nothing may be applied without a snapshot"
    assert res.unsynced() == ["BTCUSDT"]
    assert res.checked == 0
    code, report = run_cli(capsys, path)
    assert code == 1
    assert report["unsynced"] == ["BTCUSDT"]


# ----------------------------------------------------------- repeated event


@pytest.mark.parametrize("name, later", [("usdm", 0), ("usdm", 7), ("spot", 3), ("coinm", 0)])
def test_repeated_depth_event_is_a_duplicate(
    name: str, later: int, tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    cap = need(name)
    lines = read_gz_lines(cap.path)
    snap = next(i for i, x in enumerate(lines) if b'{"lastUpdateId"' in x[:60])
    candidates = [i for i in depth_lines(lines) if i > snap + 50]
    picks = candidates[:: max(1, len(candidates) // 25)][:25]  # ~25 repeats over the file

    def edit(ls: list[bytes]) -> list[bytes]:
        out = list(ls)
        for i in reversed(picks):
            at = candidates[min(candidates.index(i) + later, len(candidates) - 1)] + 1
            out.insert(at, ls[i])  # the same line again, right away or a few events later
        return out

    path = derive(cap, tmp_path, edit)
    res, codes = codes_after(frames(path), cap.market)
    assert res.codes[2] >= len(picks)
    assert res.gaps == 0
    assert (res.checked, res.mismatched) == (cap.checked, 0)
    assert res.unsynced() == []
    code, report = run_cli(capsys, path)
    assert code == 0, report
    assert report["gaps"] == 0
    assert (report["oracle"]["checked"], report["oracle"]["mismatched"]) == (cap.checked, 0)


def test_repeated_deribit_change_is_a_duplicate(
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    cap = need("deribit")
    lines = read_text_lines(cap.path)
    changes = [i for i, x in enumerate(lines) if b'"type":"change"' in x]
    victim = changes[len(changes) // 2]
    path = derive(cap, tmp_path, lambda ls: ls[:victim + 1] + [ls[victim]] + ls[victim + 1:])
    res, _ = codes_after(frames(path), cap.market)
    assert res.codes[2] == 1, dict(res.codes)
    assert res.gaps == 0 and res.unsynced() == []
    code, report = run_cli(capsys, path)
    assert code == 0, report
    assert report["oracle"]["mismatched"] == 0


# ----------------------------------------------------------- OKX tampering


def okx_books(line: bytes) -> dict[str, Any] | None:
    if b'"channel":"books"' not in line or b'"data"' not in line or not line[:1].isdigit():
        return None
    obj: dict[str, Any] = json.loads(message(line))
    return obj


def pick_okx_tamper(lines: list[bytes], skip: int = 40) -> tuple[int, bytes, bytes]:
    """(line index, old level text, new level text): a size inside the top 25 after applying."""
    refs: dict[str, OkxBook] = {}
    seen = 0
    for i, line in enumerate(lines):
        obj = okx_books(line)
        if obj is None:
            continue
        inst = obj["arg"]["instId"]
        ref = refs.setdefault(inst, OkxBook())
        ref.on_json(message(line))
        seen += 1
        if seen < skip or obj["action"] != "update":
            continue
        top = {lv.price_text for lv in ref.sorted_bids()[:25] + ref.sorted_asks()[:25]}
        for side in ("bids", "asks"):
            for px, sz, *_ in obj["data"][0][side]:
                if px in top and sz != "0":
                    last = sz[-1]
                    new_sz = sz[:-1] + (str(int(last) + 1) if last != "9" else "8")
                    old = f'["{px}","{sz}",'.encode()
                    assert line.count(old) == 1
                    return i, old, f'["{px}","{new_sz}",'.encode()
    raise AssertionError("no OKX update touches the top 25")


def test_tampered_okx_size_is_a_checksum_mismatch(
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    cap = need("okx")
    lines = read_text_lines(cap.path)
    victim, old, new = pick_okx_tamper(lines)
    inst = json.loads(message(lines[victim]))["arg"]["instId"]

    def edit(ls: list[bytes]) -> list[bytes]:
        out = list(ls)
        out[victim] = ls[victim].replace(old, new)
        return out

    path = derive(cap, tmp_path, edit)
    items = frames(path)
    res, codes = codes_after(items, cap.market)
    at = next(i for i, f in enumerate(items) if new in f.body)
    assert codes[at] == 4, f"tampered frame gave {codes[at]}"
    assert res.mismatched >= 1
    book = res.engine.book(inst)
    assert book.stats()["checksums_failed"] >= 1
    assert not book.synced and book.resync_requested
    assert inst in res.unsynced()
    code, report = run_cli(capsys, path)
    assert code == 1, report
    assert report["oracle"]["mismatched"] >= 1
    assert inst in report["unsynced"]


# -------------------------------------------------------- Deribit removal


def test_removed_deribit_change_is_a_gap(
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    cap = need("deribit")
    lines = read_text_lines(cap.path)
    by_inst: dict[str, list[int]] = {}
    for i, line in enumerate(lines):
        if b'"type":"change"' in line:
            inst = json.loads(message(line))["params"]["data"]["instrument_name"]
            by_inst.setdefault(inst, []).append(i)
    inst, idx = max(by_inst.items(), key=lambda kv: len(kv[1]))
    assert len(idx) >= 2
    victim = idx[0]
    path = derive(cap, tmp_path, lambda ls: ls[:victim] + ls[victim + 1:])
    items = frames(path)
    res, codes = codes_after(items, cap.market)
    nxt_body = message(lines[idx[1]])
    at = next(i for i, f in enumerate(items) if f.body == nxt_body)
    assert codes[at] == 3, f"the change after the hole gave {codes[at]}"
    assert res.gaps >= 1
    assert res.unsynced() == [inst]
    assert res.engine.book(inst).resync_requested
    code, report = run_cli(capsys, path)
    assert code == 1, report
    assert report["gaps"] >= 1
    assert report["unsynced"] == [inst]
