"""The simulator's own order books: the truth a collector's books are compared with.

Levels keep the exchange's own representation (Binance/OKX strings, Deribit JSON numbers)
so snapshots and checksums reproduce exactly what the exchange would send.  Each side keeps
a sorted key list (best first) next to a dict, so top-N queries are cheap.
"""

from __future__ import annotations

import zlib
from bisect import bisect_left, insort
from collections.abc import Sequence
from typing import Any

__all__ = ["SimBook", "SimSide", "is_zero", "okx_checksum", "zero_like"]

Level = list[Any]


def is_zero(qty: Any) -> bool:
    """True when an exchange quantity (string or number) is zero."""
    return float(qty) == 0.0


def zero_like(qty: Any) -> Any:
    """A zero written the way ``qty`` is written (``"0.001"`` → ``"0.000"``, 2.5 → 0.0)."""
    if isinstance(qty, str):
        return "".join("0" if c.isdigit() else c for c in qty)
    return 0.0 if isinstance(qty, float) else 0


class SimSide:
    """One side of a book: price key → level, plus the keys sorted best first."""

    __slots__ = ("bid", "keys", "levels")

    def __init__(self, bid: bool) -> None:
        self.bid = bid
        self.levels: dict[float, Level] = {}
        self.keys: list[float] = []  # ascending; bids store -price so index 0 is the best

    def _key(self, price: Any) -> float:
        p = float(price)
        return -p if self.bid else p

    def set(self, level: Level) -> None:
        """Apply one level ``[price, qty, ...]``; a zero quantity deletes it."""
        k = self._key(level[0])
        if is_zero(level[1]):
            if self.levels.pop(k, None) is not None:
                del self.keys[bisect_left(self.keys, k)]
            return
        if k not in self.levels:
            insort(self.keys, k)
        self.levels[k] = list(level)

    def get(self, price: Any) -> Level | None:
        """The level at ``price`` or None."""
        return self.levels.get(self._key(price))

    def top(self, n: int | None = None) -> list[Level]:
        """The best ``n`` levels (all if None), best first."""
        keys = self.keys if n is None else self.keys[:n]
        lv = self.levels
        return [lv[k] for k in keys]

    def best(self) -> Level | None:
        """The best level or None when the side is empty."""
        return self.levels[self.keys[0]] if self.keys else None

    def __len__(self) -> int:
        return len(self.keys)

    def clear(self) -> None:
        """Remove every level."""
        self.levels.clear()
        self.keys.clear()


class SimBook:
    """A full L2 book of one instrument and the last sequence id applied to it."""

    __slots__ = ("asks", "bids", "seq", "symbol")

    def __init__(self, symbol: str) -> None:
        self.symbol = symbol
        self.bids = SimSide(True)
        self.asks = SimSide(False)
        self.seq = -1

    def load(self, bids: Sequence[Level], asks: Sequence[Level], seq: int) -> None:
        """Replace the book by a snapshot."""
        self.bids.clear()
        self.asks.clear()
        for lv in bids:
            self.bids.set(lv)
        for lv in asks:
            self.asks.set(lv)
        self.seq = seq

    def apply(self, bids: Sequence[Level], asks: Sequence[Level]) -> None:
        """Apply incremental levels (absolute quantities; zero deletes)."""
        for lv in bids:
            self.bids.set(lv)
        for lv in asks:
            self.asks.set(lv)

    def copy_levels(self) -> tuple[list[Level], list[Level]]:
        """Copies of every level, bids and asks, best first."""
        return [list(x) for x in self.bids.top()], [list(x) for x in self.asks.top()]

    def diff_to(self, bids: Sequence[Level], asks: Sequence[Level],
                zero: Any) -> tuple[list[Level], list[Level]]:
        """The incremental levels that turn this book into the given one.

        ``zero`` writes a deleted level's quantity (``"0.000"``, ``"0"``, 0.0).
        """
        out: list[list[Level]] = []
        for side, target in ((self.bids, bids), (self.asks, asks)):
            want = {side._key(lv[0]): lv for lv in target}
            changes: list[Level] = []
            for k, lv in side.levels.items():
                if k not in want:
                    changes.append([lv[0], zero, *(["0"] * (len(lv) - 2))])
            for k, lv in want.items():
                if side.levels.get(k) != lv:
                    changes.append(list(lv))
            out.append(changes)
        return out[0], out[1]

    def top_of_book(self) -> tuple[Any, Any, Any, Any] | None:
        """``(bid, bid_qty, ask, ask_qty)`` in the exchange's own representation, or None."""
        b, a = self.bids.best(), self.asks.best()
        if b is None or a is None:
            return None
        return b[0], b[1], a[0], a[1]


def okx_checksum(book: SimBook, depth: int = 25) -> int:
    """OKX's books checksum: signed CRC32 of ``bid1px:bid1sz:ask1px:ask1sz:...`` over
    the top ``depth`` levels of each side, from the exchange's own strings."""
    bids, asks = book.bids.top(depth), book.asks.top(depth)
    parts: list[str] = []
    for i in range(max(len(bids), len(asks))):
        if i < len(bids):
            parts += (bids[i][0], bids[i][1])
        if i < len(asks):
            parts += (asks[i][0], asks[i][1])
    crc = zlib.crc32(":".join(parts).encode())
    return crc - (1 << 32) if crc >= 1 << 31 else crc
