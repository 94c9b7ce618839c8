"""Golden tests on the real captures: every oracle of the corpus README, 100%.

Two independent paths:

* the ``xcol replay FILE... --json --strict`` CLI, run in-process, whose JSON
  report must show the README's oracle counts with no mismatch, gap or
  unsynced book (these fail until ``xcol/cli.py`` lands);
* the Engine driven directly by ``capture.replay`` and, alongside it, the
  plain-Python ``reference`` books fed the same messages: same result code for
  every book message, same oracle counts, same final book at every level.
"""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from capture import (
    CAPTURES,
    Capture,
    Frame,
    ReplayResult,
    frames,
    gz_frames,
    need,
    read_gz_lines,
    replay,
    split_gz_line,
    write_gz_lines,
)
from reference import OUTCOME_CODES, BinanceBook, DepthEvent, DeribitBook, OkxBook, dec

pytestmark = pytest.mark.corpus

CLI_CONTRACT = (
    "xcol.cli.main(['replay', FILE..., '--json', '--strict']) -> int, printing one JSON "
    "object with messages, book_updates, gaps, resyncs, errors, unsynced, oracle, instruments"
)


def run_cli(capsys: pytest.CaptureFixture[str], *paths: Path) -> tuple[int, dict[str, Any]]:
    """Run the replay CLI in-process; returns (exit code, parsed JSON report)."""
    try:
        from xcol.cli import main
    except ImportError as exc:
        pytest.fail(f"xcol.cli is not importable yet ({exc}); expected {CLI_CONTRACT}")
    capsys.readouterr()
    try:
        code = main(["replay", *map(str, paths), "--json", "--strict"])
    except SystemExit as exc:  # argparse and friends
        code = exc.code if isinstance(exc.code, int) else 2
    out = capsys.readouterr().out
    try:
        report = json.loads(out)
    except json.JSONDecodeError:
        pytest.fail(f"replay did not print one JSON object (exit {code}): {out[:500]!r}")
    assert isinstance(report, dict), report
    return code, report


@pytest.fixture(scope="module")
def engine_replays() -> dict[str, ReplayResult]:
    """Engine-direct replays, shared by the tests that compare against the CLI."""
    return {}


def engine_replay(cache: dict[str, ReplayResult], cap: Capture) -> ReplayResult:
    if cap.name not in cache:
        cache[cap.name] = replay(frames(cap.path), cap.market)
    return cache[cap.name]


# ----------------------------------------------------------------- the CLI


@pytest.mark.parametrize("name", [c.name for c in CAPTURES])
def test_cli_replay_meets_the_oracle(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    cap = need(name)
    code, report = run_cli(capsys, cap.path)
    oracle = report["oracle"]
    assert oracle["mismatched"] == 0, oracle
    assert oracle["checked"] == cap.checked, oracle
    assert isinstance(oracle["kind"], str) and oracle["kind"]
    assert report["gaps"] == 0
    assert report["unsynced"] == []
    assert report["errors"] == 0
    assert code == 0, report


@pytest.mark.parametrize("name", [c.name for c in CAPTURES])
def test_cli_final_books_match_the_engine(
    name: str, capsys: pytest.CaptureFixture[str], engine_replays: dict[str, ReplayResult],
) -> None:
    cap = need(name)
    _, report = run_cli(capsys, cap.path)
    res = engine_replay(engine_replays, cap)
    items = frames(cap.path)
    n_rest = sum(f.rest for f in items)
    assert len(items) - n_rest <= report["messages"] <= len(items), report["messages"]
    assert report["book_updates"] > 0
    books = {b.symbol: b for b in res.engine.books_list() if b.mode != 4}
    assert books
    for symbol, book in books.items():
        got = report["instruments"][symbol]
        for side, best in (("bid", book.best_bid()), ("ask", book.best_ask())):
            if best is None:  # an empty side (some Deribit options)
                assert got[side] is None and got[f"{side}_qty"] is None, (symbol, got)
            else:
                # The exchange's own strings, exactly ("9.0" stays "9.0").
                assert (got[side], got[f"{side}_qty"]) == best, (symbol, side, got)
        assert list(got["levels"]) == list(book.depth()), symbol
        # OKX books of 2022 carry no seqId: the book has none (-1), the report may say null.
        assert got["last_seq"] in ((book.last_seq,) if book.last_seq >= 0 else (None, -1))
        assert got["synced"] is True


def split_capture(src: Path, tmp: Path, at: float = 0.5) -> tuple[Path, Path]:
    """Cut a ``binance/*.gz`` capture in two consecutive files (the second has no snapshot)."""
    lines = read_gz_lines(src)
    snap = next(i for i, line in enumerate(lines) if b'{"lastUpdateId"' in line[:40])
    cut = max(snap + 1, int(len(lines) * at))
    first, second = tmp / f"part1-{src.name}", tmp / f"part2-{src.name}"
    write_gz_lines(first, lines[:cut])
    write_gz_lines(second, lines[cut:])
    return first, second


@pytest.mark.parametrize("name", ["usdm", "spot"])
def test_cli_split_capture_replays_identically(
    name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    cap = need(name)
    first, second = split_capture(cap.path, tmp_path)
    code_whole, whole = run_cli(capsys, cap.path)
    code_split, split = run_cli(capsys, first, second)
    assert code_split == code_whole == 0
    split.pop("files", None), whole.pop("files", None)  # the only thing that may differ
    assert split == whole


# ------------------------------------------------- the Engine, no CLI needed


def test_usdm_engine_meets_book_ticker_oracle_and_matches_reference() -> None:
    cap = need("usdm")
    items = frames(cap.path)
    ref = BinanceBook(futures=True)
    ref_checked = ref_mismatched = 0
    tops: dict[int, tuple[Decimal, ...]] = {}
    waiting: dict[int, list[tuple[Decimal, ...]]] = {}
    compared = depth_events = 0

    def ref_top() -> tuple[Decimal, ...]:
        bid, ask = ref.best()
        assert bid and ask
        return (bid.price, bid.size, ask.price, ask.size)

    def on_frame(res: ReplayResult, i: int, f: Frame, code: int) -> None:
        nonlocal ref_checked, ref_mismatched, compared, depth_events
        if f.rest:
            assert code == OUTCOME_CODES[ref.on_snapshot_json(f.body)]
        elif b"@depth" in f.body[:60]:
            out = ref.on_depth(DepthEvent.from_json(f.body))
            assert code == OUTCOME_CODES[out], f"frame {i}: engine {code}, reference {out}"
            if out == "applied":
                tops[ref.last_id] = ref_top()
                for bbo in waiting.pop(ref.last_id, []):
                    ref_checked += 1
                    ref_mismatched += bbo != tops[ref.last_id]
            depth_events += 1
            if depth_events % 250 == 0:  # every level, now and then (all of them is slow)
                compared += 1
                assert res.engine.book("BTCUSDT").levels_raw() == ref.levels(2, 3), f"frame {i}"
        elif b"@bookTicker" in f.body[:60]:
            data = json.loads(f.body)["data"]
            bbo = (dec(data["b"]), dec(data["B"]), dec(data["a"]), dec(data["A"]))
            if data["u"] in tops:
                ref_checked += 1
                ref_mismatched += bbo != tops[data["u"]]
            else:
                waiting.setdefault(data["u"], []).append(bbo)

    res = replay(items, cap.market, {"BTCUSDT": (2, 3)}, on_frame)
    assert (res.checked, res.mismatched) == (629, 0), res.mismatches[:3]
    assert res.gaps == 0
    assert (ref_checked, ref_mismatched) == (629, 0)
    assert compared >= 25
    book = res.engine.book("BTCUSDT")
    assert book.synced
    assert book.last_seq == ref.last_id
    assert book.levels_raw() == ref.levels(2, 3)
    assert book.depth() == (len(ref.bids), len(ref.asks))
    bid, ask = ref.best()
    assert bid and ask
    assert book.best_bid() == (bid.price_text, bid.size_text)
    assert book.best_ask() == (ask.price_text, ask.size_text)
    assert book.top(50) == (
        [(lv.price_text, lv.size_text) for lv in ref.sorted_bids()[:50]],
        [(lv.price_text, lv.size_text) for lv in ref.sorted_asks()[:50]],
    )


@pytest.mark.parametrize("name", ["usdm", "spot", "coinm", "cf-usdm", "cf-spot"])
def test_binance_engine_oracle_and_final_books_match_reference(
    name: str, engine_replays: dict[str, ReplayResult],
) -> None:
    cap = need(name)
    res = engine_replay(engine_replays, cap)
    assert res.checked == cap.checked
    assert res.mismatched == 0, res.mismatches[:3]
    assert res.gaps == 0
    assert res.unsynced() == []
    assert res.engine.errors_total == 0
    refs: dict[str, BinanceBook] = {}
    futures = cap.market != "binance-spot"
    for f in frames(cap.path):
        if f.rest:
            assert f.symbol
            refs.setdefault(f.symbol, BinanceBook(futures)).on_snapshot_json(f.body)
        elif b"@depth" in f.body[:60]:
            data = json.loads(f.body)["data"]
            refs.setdefault(data["s"], BinanceBook(futures)).on_depth(DepthEvent.from_json(data))
    assert refs
    for symbol, ref in refs.items():
        book = res.engine.book(symbol)
        assert ref.synced and book.synced, symbol
        assert ref.gaps == 0
        assert book.last_seq == ref.last_id
        assert book.levels_raw() == ref.levels(8, 8), symbol


def test_okx_engine_checksums_and_final_books_match_reference(
    engine_replays: dict[str, ReplayResult],
) -> None:
    cap = need("okx")
    res = engine_replay(engine_replays, cap)
    assert (res.checked, res.mismatched, res.gaps) == (290, 0, 0)
    assert res.codes[4] == 0
    refs: dict[str, OkxBook] = {}
    for f in frames(cap.path):
        obj = json.loads(f.body) if f.body.startswith(b"{") else {}
        if obj.get("arg", {}).get("channel") == "books" and "data" in obj:
            inst = obj["arg"]["instId"]
            out = refs.setdefault(inst, OkxBook()).on_json(f.body)
            assert out in ("snapshot", "applied"), (inst, out)
    assert sum(r.checked for r in refs.values()) == 290
    assert sum(r.failed for r in refs.values()) == 0
    for inst, ref in refs.items():
        book = res.engine.book(inst)
        assert book.synced
        assert book.levels_raw() == ref.levels(8, 8), inst
        assert book.checksum(25) == ref.checksum(25)
        assert book.top(25) == ([(lv.price_text, lv.size_text) for lv in ref.sorted_bids()[:25]],
                                [(lv.price_text, lv.size_text) for lv in ref.sorted_asks()[:25]])


def test_deribit_engine_change_chain_and_final_books_match_reference(
    engine_replays: dict[str, ReplayResult],
) -> None:
    cap = need("deribit")
    res = engine_replay(engine_replays, cap)
    assert (res.checked, res.gaps) == (36, 0)
    assert res.codes[7] == 10
    refs: dict[str, DeribitBook] = {}
    outcomes: list[str] = []
    for f in frames(cap.path):
        if b'"channel":"book.' in f.body:
            data = json.loads(f.body)["params"]["data"]
            outcomes.append(refs.setdefault(data["instrument_name"], DeribitBook()).on_json(f.body))
    assert outcomes.count("snapshot") == 10 and outcomes.count("applied") == 36
    for inst, ref in refs.items():
        book = res.engine.book(inst)
        assert book.synced and ref.synced
        assert book.last_seq == ref.change_id
        assert book.levels_raw() == ref.levels(8, 8), inst


def test_split_capture_replays_identically_through_the_engine(tmp_path: Path) -> None:
    cap = need("usdm")
    first, second = split_capture(cap.path, tmp_path, at=0.37)
    whole = replay(frames(cap.path), cap.market)
    split = replay(gz_frames([first, second]), cap.market)
    assert (split.checked, split.mismatched, split.gaps) == (whole.checked, 0, 0) == (629, 0, 0)
    assert split.codes == whole.codes
    a, b = whole.engine.book("BTCUSDT"), split.engine.book("BTCUSDT")
    assert b.levels_raw() == a.levels_raw()
    assert b.last_seq == a.last_seq
    assert len(read_gz_lines(second)) > 0
    assert not any(split_gz_line(x)[1].startswith(b'{"lastUpdateId"')
                   for x in read_gz_lines(second))
