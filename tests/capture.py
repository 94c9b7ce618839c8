"""Read the real captures of the shared corpus and drive an Engine over them.

The corpus lives outside the repository (``XCOL_CORPUS``, default
``<repo>/../shared/corpus``); nothing here copies it into the project.  Two
formats exist (see the corpus README):

* ``binance/*.gz``: ``<ns> <message>`` per line, one line of which is the REST
  depth snapshot;
* ``cryptofeed/*.ws.1.0``: a header line, client lines (`` <- ``) and
  ``<seconds>: <message>`` lines, with the REST snapshots of the Binance
  captures in the sibling ``*.http.0.0`` file (``<url> -> <seconds>: <body>``).

:func:`frames` turns both into one time-ordered list of :class:`Frame`, and
:func:`replay` feeds them to an :class:`~xcol._fast.engine.Engine` the way a
collector would, checking each capture's oracle on the way.
"""

from __future__ import annotations

import gzip
import os
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from xcol._fast.engine import Engine

REPO = Path(__file__).resolve().parent.parent
CORPUS_ENV = "XCOL_CORPUS"

SNAPSHOT_PREFIX = b'{"lastUpdateId"'


def corpus_root() -> Path:
    """Where the corpus is expected (it may be absent)."""
    env = os.environ.get(CORPUS_ENV)
    return Path(env) if env else REPO.parent / "shared" / "corpus"


@dataclass(frozen=True)
class Capture:
    """One capture of the corpus and what its README promises."""

    name: str
    rel: str  # path below the corpus root
    market: str
    oracle: str  # bookTicker | checksum | change_id
    checked: int  # oracle pairs / checksums / chained changes the README counts

    @property
    def path(self) -> Path:
        return corpus_root() / self.rel

    @property
    def gz(self) -> bool:
        return self.rel.endswith(".gz")


CAPTURES: tuple[Capture, ...] = (
    Capture("usdm", "binance/usdm-btcusdt-20240808.gz", "binance-usdm", "bookTicker", 629),
    Capture("spot", "binance/spot-btcusdt-20240808.gz", "binance-spot", "bookTicker", 564),
    Capture("coinm", "binance/coinm-btcusd_perp-20240808.gz", "binance-coinm", "bookTicker", 1124),
    Capture("cf-usdm", "cryptofeed/BINANCE_FUTURES.ws.1.0", "binance-usdm", "bookTicker", 50),
    Capture("cf-spot", "cryptofeed/BINANCE.ws.1.0", "binance-spot", "bookTicker", 26),
    Capture("okx", "cryptofeed/OKX.ws.1.0", "okx", "checksum", 290),
    Capture("deribit", "cryptofeed/DERIBIT.ws.1.0", "deribit", "change_id", 36),
)
CAPTURE_BY_NAME = {c.name: c for c in CAPTURES}


def need(name: str) -> Capture:
    """A capture by short name (``usdm``, ``okx``...); skips the test if its file is absent."""
    cap = CAPTURE_BY_NAME[name]
    if not cap.path.exists():
        pytest.skip(
            f"capture {cap.rel} not found at {cap.path} (set {CORPUS_ENV} to the shared corpus)"
        )
    return cap


@dataclass(frozen=True)
class Frame:
    """One received message; ``rest`` frames are REST depth snapshots of ``symbol``."""

    ts: float
    body: bytes
    rest: bool = False
    symbol: str | None = None


# ----------------------------------------------------------------- raw lines


def read_gz_lines(path: Path) -> list[bytes]:
    """The lines of a ``binance/*.gz`` capture (``<ns> <message>``), newline stripped."""
    with gzip.open(path, "rb") as fh:
        return [line.rstrip(b"\n") for line in fh if line.strip()]


def write_gz_lines(path: Path, lines: Iterable[bytes]) -> None:
    with gzip.open(path, "wb") as fh:
        for line in lines:
            fh.write(line + b"\n")


def read_text_lines(path: Path) -> list[bytes]:
    with open(path, "rb") as fh:
        return [line.rstrip(b"\n") for line in fh if line.strip()]


def write_text_lines(path: Path, lines: Iterable[bytes]) -> None:
    with open(path, "wb") as fh:
        for line in lines:
            fh.write(line + b"\n")


def split_gz_line(line: bytes) -> tuple[int, bytes]:
    ts, msg = line.split(b" ", 1)
    return int(ts), msg


def split_ws_line(line: bytes) -> tuple[float, bytes] | None:
    """``<seconds>: <message>`` → (seconds, message); None for header/client lines."""
    if not line[:1].isdigit():  # the header and the client's own messages start with a url
        return None
    ts, msg = line.split(b": ", 1)
    return float(ts), msg


def split_http_line(line: bytes) -> tuple[str, float, bytes]:
    """``<url> -> <seconds>: <body>`` → (url, seconds, body)."""
    url, rest = line.split(b" -> ", 1)
    ts, body = rest.split(b": ", 1)
    return url.decode(), float(ts), body


# -------------------------------------------------------------------- frames


def gz_frames(paths: Iterable[Path]) -> list[Frame]:
    """Frames of one or more consecutive ``binance/*.gz`` files."""
    out: list[Frame] = []
    symbol: str | None = None
    for path in paths:
        for line in read_gz_lines(path):
            ts, msg = split_gz_line(line)
            if msg.startswith(SNAPSHOT_PREFIX):
                out.append(Frame(ts / 1e9, msg, rest=True, symbol=symbol))
                continue
            if symbol is None and b'"s":"' in msg:
                start = msg.index(b'"s":"') + 5
                symbol = msg[start : msg.index(b'"', start)].decode()
            out.append(Frame(ts / 1e9, msg))
    return out


def http_sibling(ws_path: Path) -> Path:
    """``X.ws.1.0`` → ``X.http.0.0``."""
    return ws_path.with_name(ws_path.name.split(".ws.")[0] + ".http.0.0")


def cryptofeed_frames(path: Path, with_http: bool = True) -> list[Frame]:
    """Received frames of a cryptofeed capture, merged with its REST snapshots by time."""
    out = [Frame(*parsed) for line in read_text_lines(path) if (parsed := split_ws_line(line))]
    http = http_sibling(path)
    if with_http and http.exists():
        for line in read_text_lines(http):
            url, ts, body = split_http_line(line)
            symbol = parse_qs(urlsplit(url).query)["symbol"][0]
            out.append(Frame(ts, body, rest=True, symbol=symbol))
        out.sort(key=lambda f: f.ts)  # stable: equal times keep file order
    return out


def frames(path: Path) -> list[Frame]:
    return gz_frames([path]) if path.name.endswith(".gz") else cryptofeed_frames(path)


# -------------------------------------------------------------------- replay


@dataclass
class ReplayResult:
    engine: Engine
    codes: Counter[int] = field(default_factory=Counter)  # result code → frames
    snapshot_codes: Counter[int] = field(default_factory=Counter)
    frames: int = 0
    checked: int = 0
    mismatched: int = 0
    mismatches: list[tuple[int, int, tuple[int, ...], tuple[int, ...]]] = field(
        default_factory=list
    )

    @property
    def gaps(self) -> int:
        return self.codes[3] + self.snapshot_codes[3]

    def unsynced(self) -> list[str]:
        e = self.engine
        return sorted(s for s in e.instruments if _has_book(e, s) and not e.book(s).synced)


def _has_book(e: Engine, symbol: str) -> bool:
    # Only instruments that carried book data have a channel-1 book worth judging.
    return any(b.symbol == symbol and b.mode != 4 for b in e.books_list())


def replay(
    items: Iterable[Frame],
    market: str,
    scales: dict[str, tuple[int, int]] | None = None,
    on_frame: Callable[[ReplayResult, int, Frame, int], None] | None = None,
) -> ReplayResult:
    """Feed frames to a new Engine, registering instruments as they appear.

    Binance: every bookTicker is compared with the top of the book after the
    depth event with the same ``u`` (in either arrival order).  OKX: the books
    verify every checksum themselves.  Deribit: each applied change chained on
    its predecessor.  ``on_frame(result, index, frame, code)`` runs after each frame.
    """
    e = Engine(market)
    res = ReplayResult(e)
    scales = scales or {}
    tops: dict[tuple[int, int], tuple[int, ...]] = {}
    waiting: dict[tuple[int, int], list[tuple[int, ...]]] = defaultdict(list)
    binance = market.startswith("binance")

    def register(symbol: str) -> int:
        ps, qs = scales.get(symbol, (-1, -1))
        inst: int = e.add_instrument(symbol, ps, qs)
        if binance:
            e.book(inst).set_trace(True)
        return inst

    def drain(inst: int) -> None:
        for seq, *top in e.book(inst).drain_trace():
            key = (inst, seq)
            tops[key] = tuple(top)
            for bbo in waiting.pop(key, ()):
                _judge(res, key, bbo, tops[key])

    for i, f in enumerate(items):
        res.frames += 1
        if f.rest:
            assert f.symbol is not None, "REST snapshot before any stream message"
            inst = register(f.symbol)
            code = e.feed_snapshot(inst, f.body)
            res.snapshot_codes[code] += 1
            if binance:
                drain(inst)
        else:
            code = e.feed(f.body)
            if code == 14 and e.last_symbol:
                register(e.last_symbol)
                code = e.feed(f.body)
            res.codes[code] += 1
            if binance and code in (0, 3, 7):
                drain(e.last_inst)
            elif binance and code == 10:
                seq, *bbo = e.last_bbo()
                key = (e.last_inst, seq)
                if key in tops:
                    _judge(res, key, tuple(bbo), tops[key])
                else:
                    waiting[key].append(tuple(bbo))
        if on_frame is not None:
            on_frame(res, i, f, code)
    if market == "okx":
        res.checked = sum(b.checksums_checked for b in e.books_list())
        res.mismatched = sum(b.checksums_failed for b in e.books_list())
    elif market == "deribit":
        res.checked = res.codes[0]
        res.mismatched = res.codes[3]
    return res


def _judge(
    res: ReplayResult, key: tuple[int, int], bbo: tuple[int, ...], top: tuple[int, ...]
) -> None:
    res.checked += 1
    if bbo != top:
        res.mismatched += 1
        res.mismatches.append((key[0], key[1], bbo, top))


def iter_depth_json(items: Iterable[Frame]) -> Iterator[Frame]:
    """Only the depth-update frames (combined-stream ``@depth``) of a Binance capture."""
    for f in items:
        if not f.rest and b"@depth" in f.body[:60]:
            yield f
