"""Sources of simulated market data: corpus replay and synthetic streams, per exchange.

A :class:`Feed` owns the simulator's books (the truth) and produces :class:`Event` objects
in source-time order through :meth:`Feed.steps`: each step is ``(t, produce)`` where ``t``
is seconds since the feed started (before ``--speed`` scaling) and ``produce()`` applies the
step to the books *now* and returns the events to send.  Event bodies are encoded once and
the same bytes go to every line.

Replays start at the capture's snapshot (the snapshot is the initial book, earlier events are
skipped) and loop: at the end of a pass a *bridge* update turns the current book back into
the snapshot, then the capture is replayed again with every sequence id shifted so the chain
holds (``pu``/``U``, ``prevSeqId``, ``prev_change_id`` of the first message of a pass point
at the bridge).  The books therefore repeat the recording exactly on every pass, and the
recorded OKX checksums stay valid.
"""

from __future__ import annotations

import json
import math
import random
import re
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from xcol.exchanges.meta import read_metadata_file
from xcol.replay import (
    FORMAT_HFTBACKTEST,
    ReplayError,
    detect_format,
    detect_market,
    read_cryptofeed_http,
    read_cryptofeed_ws,
    read_hftbacktest,
)
from xcol.sim.book import SimBook, is_zero, okx_checksum, zero_like

__all__ = [
    "BINANCE_MARKETS",
    "EXCHANGES",
    "BinanceFeed",
    "DeribitFeed",
    "Event",
    "Feed",
    "OkxFeed",
    "make_feed",
]

BINANCE_MARKETS = ("binance-spot", "binance-usdm", "binance-coinm")
EXCHANGES = (*BINANCE_MARKETS, "okx", "deribit")

Step = tuple[float, Callable[[], list["Event"]]]


def _dumps(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


# Level counts per USD-M depth@0ms message (quantiles 0, 10, 25, 50, 75, 90, 99, 100 %) and
# the share of zero quantities, measured on the corpus capture usdm-btcusdt-20240808.
_LEVEL_QUANTILES = ((0.0, 1), (0.1, 16), (0.25, 22), (0.5, 34), (0.75, 62), (0.9, 142),
                    (0.99, 611), (1.0, 900))
_ZERO_SHARE = 0.216


def _sample_levels(rng: random.Random, cap: int) -> int:
    """A level count drawn from the measured distribution (piecewise linear), capped."""
    x = rng.random()
    for (q0, n0), (q1, n1) in zip(_LEVEL_QUANTILES, _LEVEL_QUANTILES[1:], strict=False):
        if x <= q1:
            n = n0 + (n1 - n0) * (x - q0) / (q1 - q0)
            return max(1, min(cap, int(n)))
    return cap


@dataclass(slots=True, eq=False)
class Event:
    """One message of a stream, encoded once.

    :param inst: the instrument as the exchange spells it.
    :param topic: ``depth``/``bookTicker``/``trade``/``aggTrade`` (Binance), ``books``/
        ``bbo-tbt``/``trades`` (OKX), ``book``/``trades``/``quote`` (Deribit).
    :param seq: the exchange sequence of the update (``u``, ``seqId``, ``change_id``,
        trade id).
    :param book: True for book updates (the ones ``drop_next_update`` drops).
    """

    inst: str
    topic: str
    seq: int
    make: Callable[[], bytes] | None = None
    book: bool = False
    _body: bytes | None = None
    frames: dict[str, bytes] = field(default_factory=dict)

    @property
    def body(self) -> bytes:
        """The encoded payload (computed on first use, then shared by every line)."""
        if self._body is None:
            assert self.make is not None
            self._body = self.make()
            self.make = None
        return self._body


def _const(b: bytes) -> Callable[[], bytes]:
    return lambda: b


class Feed:
    """Base of every source: the books, the steps, and how events become frames."""

    exchange: str = ""

    def __init__(self, *, loop: bool = True) -> None:
        self.books: dict[str, SimBook] = {}
        self.meta: dict[str, dict[str, str]] = {}  # inst -> tick, lot (exchange strings)
        self.loop = loop
        self.passes = 0

    @property
    def instruments(self) -> list[str]:
        """Instrument names this feed produces."""
        return list(self.books)

    def steps(self) -> Iterator[Step]:  # pragma: no cover - abstract
        """``(t, produce)`` pairs in source-time order (seconds since start)."""
        raise NotImplementedError

    def frame(self, ev: Event, name: str) -> bytes:
        """The frame bytes of ``ev`` for a subscription named ``name`` (cached)."""
        fr = ev.frames.get(name)
        if fr is None:
            fr = self._encode(ev, name)
            ev.frames[name] = fr
        return fr

    def _encode(self, ev: Event, name: str) -> bytes:
        return ev.body


# =============================================================================== Binance


def _dec_places(s: str) -> int:
    return len(s.split(".", 1)[1]) if "." in s else 0


def _step_text(decimals: int) -> str:
    return "1" if decimals == 0 else "0." + "0" * (decimals - 1) + "1"


def _grid_text(prices: Iterable[str]) -> str:
    """The price step a capture shows: the largest step (at the capture's finest
    decimals, written with that many) that every price is a multiple of.  The
    exchange's tick divides it; a capture without its instrument list gets this as the
    simulator's tick, where one unit of the last decimal would make the tick ten times
    finer than BTCUSDT's real 0.10 when prices are written "64012.30"."""
    texts = [p for p in prices if p]
    dec = max((_dec_places(p) for p in texts), default=0)
    g = 0
    for p in texts:
        whole, _, frac = p.partition(".")
        g = math.gcd(g, int(whole + frac.ljust(dec, "0")))
        if g == 1:
            break
    if g == 0:
        return _step_text(dec)
    digits = str(g).rjust(dec + 1, "0")
    return digits[:-dec] + "." + digits[-dec:] if dec else digits


class BinanceFeed(Feed):
    """Spot, USD-M and COIN-M depth, bookTicker, trade and aggTrade streams."""

    def __init__(self, market: str, *, loop: bool = True) -> None:
        super().__init__(loop=loop)
        self.exchange = market
        self.futures = market != "binance-spot"
        self.coinm = market == "binance-coinm"
        self._zero: dict[str, str] = {}

    def _encode(self, ev: Event, name: str) -> bytes:
        if not name:  # a raw /ws stream
            return ev.body
        return b'{"stream":"' + name.encode() + b'","data":' + ev.body + b"}"

    # ------------------------------------------------------------------ messages

    def depth_body(self, inst: str, bids: list[list[Any]], asks: list[list[Any]],
                   first: int, last: int, prev: int, e_ms: int, t_ms: int) -> bytes:
        """A ``depthUpdate`` payload, field order as the exchange writes it."""
        d: dict[str, Any] = {"e": "depthUpdate", "E": e_ms}
        if self.futures:
            d["T"] = t_ms
        d["s"] = inst
        if self.coinm:
            d["ps"] = inst.split("_", 1)[0]
        d["U"] = first
        d["u"] = last
        if self.futures:
            d["pu"] = prev
        d["b"] = bids
        d["a"] = asks
        return _dumps(d)

    def book_ticker_body(self, inst: str, u: int, e_ms: int) -> bytes | None:
        """A ``bookTicker`` payload from the current top of book (None if a side is empty)."""
        top = self.books[inst].top_of_book()
        if top is None:
            return None
        b, bq, a, aq = top
        if self.futures:
            d: dict[str, Any] = {"e": "bookTicker", "u": u, "s": inst}
            if self.coinm:
                d["ps"] = inst.split("_", 1)[0]
            d.update({"b": b, "B": bq, "a": a, "A": aq, "T": e_ms, "E": e_ms})
        else:
            d = {"u": u, "s": inst, "b": b, "B": bq, "a": a, "A": aq}
        return _dumps(d)

    def rest_depth(self, inst: str, limit: int) -> bytes:
        """The REST depth snapshot of ``inst`` at the current stream position."""
        book = self.books[inst]
        d: dict[str, Any] = {"lastUpdateId": book.seq}
        if self.futures:
            now = _now_ms()
            d["E"] = now
            d["T"] = now
            if self.coinm:
                d["symbol"] = inst
                d["pair"] = inst.split("_", 1)[0]
        d["bids"] = [lv[:2] for lv in book.bids.top(limit)]
        d["asks"] = [lv[:2] for lv in book.asks.top(limit)]
        return _dumps(d)

    def exchange_info(self) -> bytes:
        """An ``exchangeInfo`` body with PRICE_FILTER and LOT_SIZE for every symbol."""
        symbols = []
        for inst, m in self.meta.items():
            row: dict[str, Any] = {"symbol": inst, "status": "TRADING"}
            if self.coinm:
                row["pair"] = inst.split("_", 1)[0]
                row["contractType"] = "PERPETUAL" if inst.endswith("_PERP") else "CURRENT_QUARTER"
                row["contractSize"] = int(m.get("contract", "100"))
            row["filters"] = [
                {"filterType": "PRICE_FILTER", "minPrice": m["tick"], "maxPrice": "1000000",
                 "tickSize": m["tick"]},
                {"filterType": "LOT_SIZE", "minQty": m["lot"], "maxQty": "100000",
                 "stepSize": m["lot"]},
            ]
            symbols.append(row)
        return _dumps({"timezone": "UTC", "serverTime": _now_ms(), "rateLimits": [],
                       "exchangeFilters": [], "symbols": symbols})

    def zero_qty(self, inst: str) -> str:
        """How this instrument writes a zero quantity (``"0.000"``)."""
        return self._zero.get(inst, "0")


class BinanceReplay(BinanceFeed):
    """Replay of a Binance capture (hftbacktest ``<ns> <json>`` or cryptofeed ``.ws``)."""

    _RE_U = re.compile(rb'"u":(\d+)')

    def __init__(self, paths: Sequence[Path], market: str, *, loop: bool = True,
                 restamp: bool = True) -> None:
        super().__init__(market, loop=loop)
        self.restamp = restamp
        # (ts, kind, inst, raw data bytes); kind: d=depth, b=bookTicker, t=trade
        self._recs: list[tuple[float, str, str, bytes]] = []
        self._snap: dict[str, tuple[int, list[list[Any]], list[list[Any]]]] = {}
        self._load(paths)
        if not self._snap:
            raise ReplayError(str(paths[0]), "no REST depth snapshot in the capture")
        for inst, (last_id, bids, asks) in self._snap.items():
            book = SimBook(inst)
            book.load(bids, asks, last_id)
            self.books[inst] = book
            lv = (bids or asks)[0]
            self._zero[inst] = zero_like(lv[1])
        self._filter()
        for inst, (_last_id, bids, asks) in self._snap.items():
            if inst not in self.meta:
                lv = (bids or asks)[0]
                self.meta[inst] = {"tick": _grid_text(self._prices(inst, bids, asks)),
                                   "lot": _step_text(_dec_places(lv[1]))}

    def _prices(self, inst: str, bids: list[list[Any]], asks: list[list[Any]]) -> Iterator[str]:
        """Every price of ``inst`` in the capture: its snapshot's, its depth events' and
        its bookTickers'."""
        for lv in bids:
            yield lv[0]
        for lv in asks:
            yield lv[0]
        for _ts, code, name, data in self._recs:
            if name != inst or code == "t":
                continue
            try:
                d = json.loads(data)
            except ValueError:
                continue
            if code == "d":
                for lv in d.get("b", ()):
                    yield str(lv[0])
                for lv in d.get("a", ()):
                    yield str(lv[0])
            else:
                yield str(d.get("b", ""))
                yield str(d.get("a", ""))

    @staticmethod
    def _split(raw: bytes) -> tuple[str, bytes] | None:
        """(stream name, data bytes) of a combined-stream message."""
        if not raw.startswith(b'{"stream":"'):
            return None
        end = raw.index(b'"', 11)
        k = raw.find(b'"data":', end)
        if k < 0:
            return None
        return raw[11:end].decode(), raw[k + 7:raw.rindex(b"}")]

    def _load(self, paths: Sequence[Path]) -> None:
        pending_snap: list[bytes] = []
        for path in paths:
            fmt = detect_format(path)
            if fmt == FORMAT_HFTBACKTEST:
                lines: Iterator[tuple[float, bytes]] = (
                    (ln.ts, ln.data) for ln in read_hftbacktest(path) if ln.error is None)
            else:
                lines = ((ln.ts, ln.data) for ln in read_cryptofeed_ws(path) if ln.error is None)
                self._load_companions(path)
            for ts, raw in lines:
                if raw.startswith(b'{"lastUpdateId"'):
                    pending_snap.append(raw)
                    continue
                sp = self._split(raw)
                if sp is None:
                    continue
                stream, data = sp
                inst = stream.split("@", 1)[0].upper()
                kind = stream.split("@", 2)[1] if "@" in stream else ""
                code = {"depth": "d", "bookTicker": "b", "trade": "t"}.get(kind)
                if code is None:
                    continue
                if pending_snap and inst not in self._snap:
                    self._add_snapshot(inst, pending_snap.pop())
                self._recs.append((ts, code, inst, data))
        if pending_snap and len({r[2] for r in self._recs}) == 1:
            self._add_snapshot(self._recs[0][2], pending_snap[-1])

    def _load_companions(self, ws: Path) -> None:
        prefix = ws.name.split(".ws.", 1)[0]
        for hp in sorted(ws.parent.glob(f"{prefix}.http.*")):
            for _n, _ts, url, body in read_cryptofeed_http(hp):
                sym = parse_qs(urlsplit(url).query).get("symbol", [""])[0]
                if urlsplit(url).path.endswith("depth") and sym and sym not in self._snap:
                    self._add_snapshot(sym, body)
        meta_path = ws.parent / f"{prefix}.0"
        if meta_path.is_file():
            for sym, m in read_metadata_file(meta_path).items():
                row = {"tick": str(m.tick), "lot": str(m.lot)}
                if m.contract_value is not None:
                    row["contract"] = str(m.contract_value)
                self.meta[sym] = row

    def _add_snapshot(self, inst: str, body: bytes) -> None:
        obj = json.loads(body)
        self._snap[inst] = (int(obj["lastUpdateId"]), obj["bids"], obj["asks"])

    def _filter(self) -> None:
        """Keep what follows each instrument's snapshot (events with ``u`` > lastUpdateId)."""
        kept: list[tuple[float, str, str, bytes]] = []
        started: set[str] = set()
        for rec in self._recs:
            _ts, kind, inst, data = rec
            if inst not in self._snap:
                continue
            if kind in "db" and inst not in started:
                m = self._RE_U.search(data)
                if m is None or int(m.group(1)) <= self._snap[inst][0]:
                    continue
                if kind == "d":
                    started.add(inst)
            kept.append(rec)
        self._recs = kept

    def steps(self) -> Iterator[Step]:
        if not self._recs:
            return
        t_first = self._recs[0][0]
        span = self._recs[-1][0] - t_first
        period = span + max(span / max(len(self._recs), 1), 0.001)
        shift = dict.fromkeys(self._snap, 0)  # id shift of the current pass, per instrument
        fix: set[str] = set()  # instruments whose first depth event of the pass needs pu/U
        trade_shift = 0
        trade_span = 1
        tids = [int(m.group(1)) for _t, k, _i, d in self._recs if k == "t"
                for m in [re.search(rb'"t":(\d+)', d)] if m]
        if tids:
            trade_span = max(tids) - min(tids) + 1
        p = 0
        while True:
            base = p * period
            if p > 0:
                for inst in self._snap:
                    yield base, self._bridge_step(inst, shift, fix)
                trade_shift = p * trade_span
            for ts, kind, inst, data in self._recs:
                yield base + (ts - t_first), self._record_step(kind, inst, data, shift, fix,
                                                               trade_shift)
            p += 1
            self.passes = p
            if not self.loop:
                return

    def _bridge_step(self, inst: str, shift: dict[str, int],
                     fix: set[str]) -> Callable[[], list[Event]]:
        def produce() -> list[Event]:
            book = self.books[inst]
            last_id, sbids, sasks = self._snap[inst]
            bids, asks = book.diff_to(sbids, sasks, self._zero[inst])
            new = book.seq + 1
            now = _now_ms()
            body = self.depth_body(inst, bids, asks, new, new, book.seq, now, now)
            book.apply(bids, asks)
            book.seq = new
            shift[inst] = new - last_id
            fix.add(inst)
            return [Event(inst, "depth", new, _const(body), book=True)]
        return produce

    def _record_step(self, kind: str, inst: str, data: bytes, shift: dict[str, int],
                     fix: set[str], trade_shift: int) -> Callable[[], list[Event]]:
        def produce() -> list[Event]:
            obj = json.loads(data)
            now = _now_ms()
            if self.restamp and "E" in obj:
                if "T" in obj:
                    obj["T"] = now - (int(obj["E"]) - int(obj["T"]))
                obj["E"] = now
            elif self.restamp and "T" in obj:
                obj["T"] = now
            book = self.books[inst]
            d = shift[inst]
            if kind == "d":
                obj["U"] += d
                obj["u"] += d
                if "pu" in obj:
                    obj["pu"] += d
                if inst in fix:
                    fix.discard(inst)
                    if "pu" in obj:
                        obj["pu"] = book.seq
                    else:
                        obj["U"] = book.seq + 1
                book.apply(obj["b"], obj["a"])
                book.seq = obj["u"]
                return [Event(inst, "depth", obj["u"], _const(_dumps(obj)), book=True)]
            if kind == "b":
                obj["u"] += d
                return [Event(inst, "bookTicker", obj["u"], _const(_dumps(obj)))]
            obj["t"] += trade_shift
            agg = {"e": "aggTrade", "E": obj.get("E", now), "a": obj["t"], "s": inst,
                   "p": obj["p"], "q": obj["q"], "f": obj["t"], "l": obj["t"],
                   "T": obj.get("T", now), "m": obj.get("m", False)}
            return [Event(inst, "trade", obj["t"], _const(_dumps(obj))),
                    Event(inst, "aggTrade", obj["t"], _const(_dumps(agg)))]
        return produce


@dataclass(slots=True)
class _SynInst:
    """State of one synthetic instrument: integer ticks and how to print them."""

    name: str
    px_dec: int
    qty_dec: int
    seq: int
    trade_id: int
    bids: dict[int, int] = field(default_factory=dict)  # price ticks -> qty lots
    asks: dict[int, int] = field(default_factory=dict)


class _Synth:
    """Shared synthetic order-flow generator: realistic level counts, uncrossed books."""

    def __init__(self, names: Sequence[str], *, seed: int, levels: int, px_dec: int,
                 qty_dec: int, max_levels: int) -> None:
        self.rng = random.Random(seed)
        self.levels = levels
        self.max_levels = max_levels
        self.insts: list[_SynInst] = []
        for i, name in enumerate(names):
            rng = self.rng
            mid = int((rng.uniform(5, 60000) if i else 60000.0) * 10**px_dec)
            tick = max(1, mid // 200_000)
            st = _SynInst(name, px_dec, qty_dec, rng.randint(10**9, 10**10), 10**6 * (i + 1))
            for k in range(1, levels + 1):
                st.bids[mid - k * tick] = self.qty()
                st.asks[mid + k * tick] = self.qty()
            self.insts.append(st)
        self.tick = {st.name: max(1, (min(st.asks) - max(st.bids)) // 2) for st in self.insts}

    def qty(self) -> int:
        return max(1, int(self.rng.lognormvariate(4.0, 1.6)))

    def update(self, st: _SynInst) -> tuple[dict[int, int], dict[int, int]]:
        """One update's changes per side (ticks → lots, 0 = delete), already applied."""
        rng = self.rng
        tick = self.tick[st.name]
        n = _sample_levels(rng, self.max_levels)
        cb: dict[int, int] = {}
        ca: dict[int, int] = {}
        bb, ba = max(st.bids), min(st.asks)
        for _ in range(n):
            bid = rng.random() < 0.5
            side, ch = (st.bids, cb) if bid else (st.asks, ca)
            off = int(rng.expovariate(1 / 12.0))
            px = bb - off * tick if bid else ba + off * tick
            if px in side and rng.random() < _ZERO_SHARE * 2.5 and len(side) > self.levels // 2:
                ch[px] = 0
            else:
                ch[px] = self.qty()
        # occasionally move the touch: a new level inside the spread
        if rng.random() < 0.05 and ba - bb > 2 * tick:
            if rng.random() < 0.5:
                cb[bb + tick] = self.qty()
            else:
                ca[ba - tick] = self.qty()
        for side, ch in ((st.bids, cb), (st.asks, ca)):
            for px, q in ch.items():
                if q:
                    side[px] = q
                else:
                    side.pop(px, None)
        return cb, ca

    @staticmethod
    def fmt(v: int, dec: int) -> str:
        if dec == 0:
            return str(v)
        s = str(v).rjust(dec + 1, "0")
        return s[:-dec] + "." + s[-dec:]


def _synthetic_names(prefix: list[str], n: int, make: Callable[[int], str]) -> list[str]:
    out = prefix[:n]
    i = 0
    while len(out) < n:
        i += 1
        out.append(make(i))
    return out


class BinanceSynthetic(BinanceFeed):
    """Synthetic Binance streams for any number of symbols at a total rate."""

    def __init__(self, market: str, *, symbols: int = 1, rate: float = 100.0,
                 seed: int = 1, levels: int = 200, book_ticker: bool = True,
                 trade_share: float = 0.2) -> None:
        super().__init__(market)
        if market == "binance-coinm":
            names = _synthetic_names(["BTCUSD_PERP", "ETHUSD_PERP"], symbols,
                                     lambda i: f"S{i:04d}USD_PERP")
            px_dec, qty_dec = 1, 0
        else:
            names = _synthetic_names(["BTCUSDT", "ETHUSDT"], symbols, lambda i: f"S{i:04d}USDT")
            px_dec, qty_dec = (2, 3) if self.futures else (8, 8)
        self.rate = rate
        self.book_ticker = book_ticker
        self.trade_share = trade_share
        self._syn = _Synth(names, seed=seed, levels=levels, px_dec=px_dec, qty_dec=qty_dec,
                           max_levels=400)
        f = _Synth.fmt
        for st in self._syn.insts:
            book = SimBook(st.name)
            book.load([[f(p, px_dec), f(q, qty_dec)] for p, q in st.bids.items()],
                      [[f(p, px_dec), f(q, qty_dec)] for p, q in st.asks.items()], st.seq)
            self.books[st.name] = book
            self._zero[st.name] = f(0, qty_dec)
            self.meta[st.name] = {"tick": _step_text(px_dec), "lot": _step_text(qty_dec)}

    def steps(self) -> Iterator[Step]:
        k = 0
        insts = self._syn.insts
        while True:
            st = insts[self._syn.rng.randrange(len(insts))]
            yield k / self.rate, self._produce(st)
            k += 1

    def _produce(self, st: _SynInst) -> Callable[[], list[Event]]:
        def produce() -> list[Event]:
            syn = self._syn
            cb, ca = syn.update(st)
            f = _Synth.fmt
            bids = [[f(p, st.px_dec), f(q, st.qty_dec)] for p, q in sorted(cb.items(),
                                                                            reverse=True)]
            asks = [[f(p, st.px_dec), f(q, st.qty_dec)] for p, q in sorted(ca.items())]
            prev = st.seq
            st.seq += syn.rng.randint(1, 40)
            book = self.books[st.name]
            book.apply(bids, asks)
            book.seq = st.seq
            now = _now_ms()
            name, first, last = st.name, prev + 1, st.seq
            evs = [Event(name, "depth", last, lambda: self.depth_body(
                name, bids, asks, first, last, prev, now, now), book=True)]
            if self.book_ticker:
                tb = self.book_ticker_body(name, last, now)
                if tb is not None:
                    evs.append(Event(name, "bookTicker", last, _const(tb)))
            if syn.rng.random() < self.trade_share:
                st.trade_id += 1
                top = book.top_of_book()
                if top is not None:
                    evs += self._trade(name, st.trade_id, top, now)
            return evs
        return produce

    def _trade(self, inst: str, tid: int, top: tuple[Any, Any, Any, Any],
               now: int) -> list[Event]:
        buy = self._syn.rng.random() < 0.5
        px = top[2] if buy else top[0]
        qty = top[3] if buy else top[1]
        t: dict[str, Any] = {"e": "trade", "E": now, "T": now, "s": inst, "t": tid, "p": px,
                             "q": qty, "X": "MARKET", "m": not buy}
        if not self.futures:
            t = {"e": "trade", "E": now, "s": inst, "t": tid, "p": px, "q": qty, "T": now,
                 "m": not buy, "M": True}
        agg = {"e": "aggTrade", "E": now, "a": tid, "s": inst, "p": px, "q": qty, "f": tid,
               "l": tid, "T": now, "m": not buy}
        return [Event(inst, "trade", tid, _const(_dumps(t))),
                Event(inst, "aggTrade", tid, _const(_dumps(agg)))]


# =================================================================================== OKX


class OkxFeed(Feed):
    """OKX v5 public ``books`` (snapshot/update, seqId/prevSeqId, checksum), ``bbo-tbt``
    (the best bid and ask, pushed whenever the book's top changes, with the book's
    ``seqId``) and ``trades``.

    ``checksum``: ``"recorded"`` (the capture's own value where the book follows the
    recording, computed elsewhere), ``"compute"`` (CRC32 of the sim's book), ``"zero"``
    (what live OKX sends now).
    """

    exchange = "okx"

    def __init__(self, *, checksum: str = "compute", loop: bool = True) -> None:
        super().__init__(loop=loop)
        if checksum not in ("recorded", "compute", "zero"):
            raise ValueError(f"okx checksum mode {checksum!r}: recorded, compute or zero")
        self.checksum = checksum
        # per instrument: the top (best bid, best ask) last pushed, its seqId and time
        self._tops: dict[str, tuple[tuple[Any, Any], int, int]] = {}

    def _top(self, inst: str) -> tuple[Any, Any]:
        book = self.books[inst]
        b, a = book.bids.best(), book.asks.best()
        return (tuple(b) if b else None, tuple(a) if a else None)

    @staticmethod
    def _bbo_body(inst: str, top: tuple[Any, Any], seq: int, ts: int) -> bytes:
        b, a = top
        d = {"asks": [list(a)] if a else [], "bids": [list(b)] if b else [],
             "ts": str(ts), "seqId": seq}
        return _dumps({"arg": {"channel": "bbo-tbt", "instId": inst}, "data": [d]})

    def bbo_msg(self, inst: str) -> bytes:
        """A ``bbo-tbt`` push of ``inst``'s current best bid and ask (an empty side is an
        empty list, as OKX sends it), stamped with the ``seqId`` and time at which the top
        became what it is: the same push a subscriber got then."""
        top = self._top(inst)
        last = self._tops.get(inst)
        if last is not None and last[0] == top:
            return self._bbo_body(inst, top, last[1], last[2])
        return self._bbo_body(inst, top, self.books[inst].seq, _now_ms())

    def bbo_events(self, inst: str) -> list[Event]:
        """A ``bbo-tbt`` event when ``inst``'s top (price, size or order count) changed
        since the last one, else nothing.  Call after applying a book change; the push is
        encoded only if a line sends it."""
        top = self._top(inst)
        last = self._tops.get(inst)
        if last is not None and last[0] == top:
            return []
        seq, ts = self.books[inst].seq, _now_ms()
        self._tops[inst] = (top, seq, ts)
        return [Event(inst, "bbo-tbt", seq, lambda: self._bbo_body(inst, top, seq, ts))]

    def _ck(self, inst: str, recorded: int | None = None) -> int:
        if self.checksum == "zero":
            return 0
        if self.checksum == "recorded" and recorded is not None:
            return recorded
        return okx_checksum(self.books[inst])

    def books_msg(self, inst: str, action: str, asks: list[list[Any]], bids: list[list[Any]],
                  checksum: int, prev: int, seq: int, ts: int | None = None) -> bytes:
        """A ``books`` push, fields in the exchange's order."""
        d = {"asks": asks, "bids": bids, "ts": str(ts if ts is not None else _now_ms()),
             "checksum": checksum, "prevSeqId": prev, "seqId": seq}
        return _dumps({"arg": {"channel": "books", "instId": inst}, "action": action,
                       "data": [d]})

    def snapshot(self, inst: str) -> bytes:
        """The snapshot a new ``books`` subscription gets (the current book, 400 levels)."""
        book = self.books[inst]
        ck = 0 if self.checksum == "zero" else okx_checksum(book)
        return self.books_msg(inst, "snapshot", [list(x) for x in book.asks.top(400)],
                              [list(x) for x in book.bids.top(400)], ck, -1, book.seq)

    def heartbeat(self, inst: str) -> Event:
        """The empty update OKX sends when a book has not changed (seqId == prevSeqId)."""
        book = self.books[inst]
        body = self.books_msg(inst, "update", [], [], self._ck(inst), book.seq, book.seq)
        return Event(inst, "books", book.seq, _const(body), book=True)


class OkxReplay(OkxFeed):
    """Replay of a cryptofeed OKX capture; seqIds are assigned (2022 captures have none)."""

    def __init__(self, paths: Sequence[Path], *, checksum: str = "recorded",
                 loop: bool = True, seed: int = 1) -> None:
        super().__init__(checksum=checksum, loop=loop)
        self._rng = random.Random(seed)
        self._snap: dict[str, tuple[list[list[Any]], list[list[Any]]]] = {}
        self._recs: list[tuple[float, str, list[list[Any]], list[list[Any]], int]] = []
        for path in paths:
            for ln in read_cryptofeed_ws(path):
                if ln.error is not None or b'"channel":"books"' not in ln.data:
                    continue
                obj = json.loads(ln.data)
                if "data" not in obj:
                    continue
                inst = obj["arg"]["instId"]
                d = obj["data"][0]
                if obj.get("action") == "snapshot":
                    if inst not in self._snap:
                        self._snap[inst] = (d["bids"], d["asks"])
                        book = SimBook(inst)
                        book.load(d["bids"], d["asks"], self._rng.randint(10**9, 10**10))
                        self.books[inst] = book
                    continue
                if inst in self._snap:
                    self._recs.append((ln.ts, inst, d["bids"], d["asks"],
                                       int(d.get("checksum", 0))))
        if not self._snap:
            raise ReplayError(str(paths[0]), "no OKX books snapshot in the capture")
        meta_path = paths[0].parent / (paths[0].name.split(".ws.", 1)[0] + ".0")
        known = read_metadata_file(meta_path) if meta_path.is_file() else {}
        for inst, (bids, asks) in self._snap.items():
            m = known.get(inst)
            lv = (bids or asks)[0]
            self.meta[inst] = ({"tick": str(m.tick), "lot": str(m.lot)} if m else
                               {"tick": _step_text(_dec_places(lv[0])),
                                "lot": _step_text(_dec_places(lv[1]))})

    def steps(self) -> Iterator[Step]:
        if not self._recs:
            return
        t_first = self._recs[0][0]
        span = self._recs[-1][0] - t_first
        period = span + max(span / len(self._recs), 0.001)
        p = 0
        while True:
            if p > 0:
                for inst in self._snap:
                    yield p * period, self._bridge(inst)
            for ts, inst, bids, asks, ck in self._recs:
                yield p * period + ts - t_first, self._update(inst, bids, asks, ck)
            p += 1
            self.passes = p
            if not self.loop:
                return

    def _bridge(self, inst: str) -> Callable[[], list[Event]]:
        def produce() -> list[Event]:
            book = self.books[inst]
            sb, sa = self._snap[inst]
            bids, asks = book.diff_to(sb, sa, "0")
            book.apply(bids, asks)
            return [self._emit(inst, bids, asks, None), *self.bbo_events(inst)]
        return produce

    def _update(self, inst: str, bids: list[list[Any]], asks: list[list[Any]],
                ck: int) -> Callable[[], list[Event]]:
        def produce() -> list[Event]:
            self.books[inst].apply(bids, asks)
            return [self._emit(inst, bids, asks, ck), *self.bbo_events(inst)]
        return produce

    def _emit(self, inst: str, bids: list[list[Any]], asks: list[list[Any]],
              recorded: int | None) -> Event:
        book = self.books[inst]
        prev = book.seq
        book.seq = prev + self._rng.randint(1, 4)
        body = self.books_msg(inst, "update", asks, bids, self._ck(inst, recorded), prev,
                              book.seq)
        return Event(inst, "books", book.seq, _const(body), book=True)


class OkxSynthetic(OkxFeed):
    """Synthetic OKX books and trades for any number of instruments at a total rate."""

    def __init__(self, *, symbols: int = 1, rate: float = 100.0, seed: int = 1,
                 levels: int = 200, checksum: str = "compute", trade_share: float = 0.2) -> None:
        super().__init__(checksum=checksum)
        names = _synthetic_names(["BTC-USDT", "ETH-USDT"], symbols, lambda i: f"S{i:04d}-USDT")
        self.rate = rate
        self.trade_share = trade_share
        self._syn = _Synth(names, seed=seed, levels=levels, px_dec=1, qty_dec=8, max_levels=200)
        for st in self._syn.insts:
            book = SimBook(st.name)
            book.load([self._lv(st, p, q) for p, q in st.bids.items()],
                      [self._lv(st, p, q) for p, q in st.asks.items()], st.seq)
            self.books[st.name] = book
            self.meta[st.name] = {"tick": "0.1", "lot": "0.00000001"}

    @staticmethod
    def _lv(st: _SynInst, p: int, q: int) -> list[Any]:
        qs = _Synth.fmt(q, st.qty_dec).rstrip("0").rstrip(".") if q else "0"
        return [_Synth.fmt(p, st.px_dec), qs, "0", str(1 + q % 7) if q else "0"]

    def steps(self) -> Iterator[Step]:
        k = 0
        insts = self._syn.insts
        while True:
            st = insts[self._syn.rng.randrange(len(insts))]
            yield k / self.rate, self._produce(st)
            k += 1

    def _produce(self, st: _SynInst) -> Callable[[], list[Event]]:
        def produce() -> list[Event]:
            syn = self._syn
            cb, ca = syn.update(st)
            bids = [self._lv(st, p, q) for p, q in sorted(cb.items(), reverse=True)]
            asks = [self._lv(st, p, q) for p, q in sorted(ca.items())]
            book = self.books[st.name]
            book.apply(bids, asks)
            prev = book.seq
            book.seq = prev + syn.rng.randint(1, 3)
            inst, seq = st.name, book.seq
            ck = self._ck(inst)
            evs = [Event(inst, "books", seq, lambda: self.books_msg(
                inst, "update", asks, bids, ck, prev, seq), book=True),
                   *self.bbo_events(inst)]
            if syn.rng.random() < self.trade_share:
                top = book.top_of_book()
                if top is not None:
                    st.trade_id += 1
                    buy = syn.rng.random() < 0.5
                    tr = {"instId": inst, "tradeId": str(st.trade_id),
                          "px": top[2] if buy else top[0], "sz": top[3] if buy else top[1],
                          "side": "buy" if buy else "sell", "ts": str(_now_ms()), "count": "1"}
                    body = _dumps({"arg": {"channel": "trades", "instId": inst}, "data": [tr]})
                    evs.append(Event(inst, "trades", st.trade_id, _const(body)))
            return evs
        return produce


# =============================================================================== Deribit


class DeribitFeed(Feed):
    """Deribit ``book.{inst}.{raw|100ms}`` (snapshot/change, change_id chain), trades and
    ``quote.{inst}`` (the best bid and ask, sent whenever the book's top changes)."""

    exchange = "deribit"

    def __init__(self, *, loop: bool = True) -> None:
        super().__init__(loop=loop)
        self._quoted: dict[str, tuple[Any, Any, Any, Any]] = {}

    def _top(self, inst: str) -> tuple[Any, Any, Any, Any]:
        """``inst``'s best bid, its amount, best ask, its amount; an empty side is a null
        price and a zero amount."""
        book = self.books[inst]
        b, a = book.bids.best(), book.asks.best()
        return (b[0] if b else None, b[1] if b else 0.0, a[0] if a else None,
                a[1] if a else 0.0)

    def start_quotes(self) -> None:
        """Take every book's current top as the last quote sent (call once the books are
        loaded): a quote is sent only when the top changes from there."""
        self._quoted = {inst: self._top(inst) for inst in self.books}

    def quote_events(self, inst: str) -> list[Event]:
        """A ``quote`` event if ``inst``'s best bid or ask (price or amount) changed since
        the last one, else nothing.  Call after applying a book change."""
        top = self._top(inst)
        if self._quoted.get(inst) == top:
            return []
        self._quoted[inst] = top
        ts = _now_ms()
        return [Event(inst, "quote", self.books[inst].seq, lambda: _dumps({
            "timestamp": ts, "instrument_name": inst, "best_bid_price": top[0],
            "best_bid_amount": top[1], "best_ask_price": top[2], "best_ask_amount": top[3]}))]

    def _encode(self, ev: Event, name: str) -> bytes:
        return (b'{"jsonrpc":"2.0","method":"subscription","params":{"channel":"'
                + name.encode() + b'","data":' + ev.body + b"}}")

    def change_body(self, inst: str, bids: list[list[Any]], asks: list[list[Any]],
                    prev: int, cid: int) -> bytes:
        """A ``change`` notification's data (levels already ``[action, price, amount]``)."""
        return _dumps({"type": "change", "timestamp": _now_ms(), "prev_change_id": prev,
                       "instrument_name": inst, "change_id": cid, "bids": bids, "asks": asks})

    def snapshot(self, inst: str) -> bytes:
        """The first notification of a book subscription: the whole current book."""
        book = self.books[inst]
        return _dumps({"type": "snapshot", "timestamp": _now_ms(), "instrument_name": inst,
                       "change_id": book.seq,
                       "bids": [["new", lv[0], lv[1]] for lv in book.bids.top()],
                       "asks": [["new", lv[0], lv[1]] for lv in book.asks.top()]})

    def _actions(self, inst: str, bids: list[list[Any]],
                 asks: list[list[Any]]) -> tuple[list[list[Any]], list[list[Any]]]:
        """``[price, amount]`` changes → Deribit ``[action, price, amount]`` (before applying)."""
        book = self.books[inst]
        out: list[list[list[Any]]] = []
        for side, lvls in ((book.bids, bids), (book.asks, asks)):
            acts = []
            for px, amt in lvls:
                if is_zero(amt):
                    acts.append(["delete", px, 0.0])
                else:
                    acts.append(["new" if side.get(px) is None else "change", px, amt])
            out.append(acts)
        return out[0], out[1]

    def _apply_actions(self, inst: str, bids: list[list[Any]], asks: list[list[Any]]) -> None:
        book = self.books[inst]
        book.apply([[p, 0.0 if a == "delete" else q] for a, p, q in bids],
                   [[p, 0.0 if a == "delete" else q] for a, p, q in asks])


class DeribitReplay(DeribitFeed):
    """Replay of a cryptofeed Deribit capture's ``book.*`` channels."""

    def __init__(self, paths: Sequence[Path], *, loop: bool = True) -> None:
        super().__init__(loop=loop)
        self._snap: dict[str, tuple[list[list[Any]], list[list[Any]], int]] = {}
        self._recs: list[tuple[float, str, list[list[Any]], list[list[Any]], int]] = []
        for path in paths:
            for ln in read_cryptofeed_ws(path):
                if ln.error is not None or b'"channel":"book.' not in ln.data:
                    continue
                d = json.loads(ln.data)["params"]["data"]
                inst = d["instrument_name"]
                if d.get("type") == "snapshot":
                    if inst not in self._snap:
                        bids = [[p, q] for _a, p, q in d["bids"]]
                        asks = [[p, q] for _a, p, q in d["asks"]]
                        self._snap[inst] = (bids, asks, int(d["change_id"]))
                        book = SimBook(inst)
                        book.load(bids, asks, int(d["change_id"]))
                        self.books[inst] = book
                    continue
                if inst in self._snap:
                    self._recs.append((ln.ts, inst, d["bids"], d["asks"], int(d["change_id"])))
        if not self._snap:
            raise ReplayError(str(paths[0]), "no Deribit book snapshot in the capture")
        meta_path = paths[0].parent / (paths[0].name.split(".ws.", 1)[0] + ".0")
        known = read_metadata_file(meta_path) if meta_path.is_file() else {}
        for inst in self._snap:
            m = known.get(inst)
            self.meta[inst] = ({"tick": str(m.tick), "lot": str(m.lot)} if m else
                               {"tick": "0.0005", "lot": "0.1"})
        self.start_quotes()

    def steps(self) -> Iterator[Step]:
        if not self._recs:
            return
        t_first = self._recs[0][0]
        span = self._recs[-1][0] - t_first
        period = span + max(span / len(self._recs), 0.001)
        shift = dict.fromkeys(self._snap, 0)
        fix: set[str] = set()
        p = 0
        while True:
            if p > 0:
                for inst in self._snap:
                    yield p * period, self._bridge(inst, shift, fix)
            for ts, inst, bids, asks, cid in self._recs:
                yield p * period + ts - t_first, self._change(inst, bids, asks, cid, shift, fix)
            p += 1
            self.passes = p
            if not self.loop:
                return

    def _bridge(self, inst: str, shift: dict[str, int],
                fix: set[str]) -> Callable[[], list[Event]]:
        def produce() -> list[Event]:
            book = self.books[inst]
            sb, sa, first_id = self._snap[inst]
            db, da = book.diff_to(sb, sa, 0.0)
            bids, asks = self._actions(inst, db, da)
            self._apply_actions(inst, bids, asks)
            prev, book.seq = book.seq, book.seq + 1
            shift[inst] = book.seq - first_id
            fix.add(inst)
            body = self.change_body(inst, bids, asks, prev, book.seq)
            return [Event(inst, "book", book.seq, _const(body), book=True),
                    *self.quote_events(inst)]
        return produce

    def _change(self, inst: str, bids: list[list[Any]], asks: list[list[Any]], cid: int,
                shift: dict[str, int], fix: set[str]) -> Callable[[], list[Event]]:
        def produce() -> list[Event]:
            book = self.books[inst]
            self._apply_actions(inst, bids, asks)
            prev = book.seq
            fix.discard(inst)
            book.seq = cid + shift[inst]
            body = self.change_body(inst, bids, asks, prev, book.seq)
            return [Event(inst, "book", book.seq, _const(body), book=True),
                    *self.quote_events(inst)]
        return produce


class DeribitSynthetic(DeribitFeed):
    """Synthetic Deribit perpetual books and trades for any number of instruments."""

    def __init__(self, *, symbols: int = 1, rate: float = 100.0, seed: int = 1,
                 levels: int = 200, trade_share: float = 0.2) -> None:
        super().__init__()
        names = _synthetic_names(["BTC-PERPETUAL", "ETH-PERPETUAL"], symbols,
                                 lambda i: f"S{i:04d}-PERPETUAL")
        self.rate = rate
        self.trade_share = trade_share
        self._syn = _Synth(names, seed=seed, levels=levels, px_dec=1, qty_dec=0, max_levels=100)
        for st in self._syn.insts:
            book = SimBook(st.name)
            book.load([[p / 10, float(q * 10)] for p, q in st.bids.items()],
                      [[p / 10, float(q * 10)] for p, q in st.asks.items()], st.seq)
            self.books[st.name] = book
            self.meta[st.name] = {"tick": "0.1", "lot": "10"}
        self.start_quotes()

    def steps(self) -> Iterator[Step]:
        k = 0
        insts = self._syn.insts
        while True:
            st = insts[self._syn.rng.randrange(len(insts))]
            yield k / self.rate, self._produce(st)
            k += 1

    def _produce(self, st: _SynInst) -> Callable[[], list[Event]]:
        def produce() -> list[Event]:
            syn = self._syn
            cb, ca = syn.update(st)
            inst = st.name
            bids, asks = self._actions(inst, [[p / 10, float(q * 10)] for p, q in
                                              sorted(cb.items(), reverse=True)],
                                       [[p / 10, float(q * 10)] for p, q in sorted(ca.items())])
            self._apply_actions(inst, bids, asks)
            book = self.books[inst]
            prev = book.seq
            book.seq = prev + syn.rng.randint(1, 5)
            cid = book.seq
            evs = [Event(inst, "book", cid, lambda: self.change_body(
                inst, bids, asks, prev, cid), book=True), *self.quote_events(inst)]
            if syn.rng.random() < self.trade_share:
                top = book.top_of_book()
                if top is not None:
                    st.trade_id += 1
                    buy = syn.rng.random() < 0.5
                    tr = [{"trade_seq": st.trade_id, "trade_id": str(st.trade_id * 7),
                           "timestamp": _now_ms(), "tick_direction": 0,
                           "price": top[2] if buy else top[0], "instrument_name": inst,
                           "direction": "buy" if buy else "sell",
                           "amount": top[3] if buy else top[1]}]
                    evs.append(Event(inst, "trades", st.trade_id, _const(_dumps(tr))))
            return evs
        return produce


# ================================================================================ factory


def make_feed(exchange: str, *, source: Sequence[str | Path] | None = None,
              symbols: int = 1, rate: float = 100.0, seed: int = 1, loop: bool = True,
              okx_checksum: str = "auto") -> Feed:
    """A replay feed of ``source`` files, or a synthetic one when ``source`` is empty.

    :raises ReplayError: a capture that is missing, unreadable or of another market.
    :raises ValueError: an unknown exchange or option.
    """
    if exchange not in EXCHANGES:
        raise ValueError(f"unknown exchange {exchange!r} (one of {', '.join(EXCHANGES)})")
    if not source:
        ck = "compute" if okx_checksum == "auto" else okx_checksum
        if exchange in BINANCE_MARKETS:
            return BinanceSynthetic(exchange, symbols=symbols, rate=rate, seed=seed)
        if exchange == "okx":
            return OkxSynthetic(symbols=symbols, rate=rate, seed=seed, checksum=ck)
        return DeribitSynthetic(symbols=symbols, rate=rate, seed=seed)
    paths = [Path(p) for p in source]
    for p in paths:
        if not p.is_file():
            raise ReplayError(str(p), "no such file")
        market = detect_market(p)
        if market != exchange:
            raise ReplayError(str(p), f"a {market} capture, not {exchange}")
    if exchange in BINANCE_MARKETS:
        return BinanceReplay(paths, exchange, loop=loop)
    if exchange == "okx":
        return OkxReplay(paths, checksum="recorded" if okx_checksum == "auto" else okx_checksum,
                         loop=loop, seed=seed)
    return DeribitReplay(paths, loop=loop)
