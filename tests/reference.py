"""A plain-Python reference for L2 books and the exchanges' sync rules.

Written from the exchanges' documented rules (see ../shared/PROTOCOLS.md and
the corpus README), not from the Cython code, so the two can be compared:

* prices and sizes are :class:`~decimal.Decimal` read from the exchange's own
  text, and the text is kept for checksums;
* each side is a ``dict`` price → level; ordering happens only when asked;
* :class:`BinanceBook` buffers until the REST snapshot, then applies the
  spot rule (first event ``U <= lastUpdateId+1 <= u``, then ``U == prev u + 1``)
  or the futures rule (first event ``U <= lastUpdateId <= u``, then
  ``pu == prev u``);
* :class:`OkxBook` chains ``prevSeqId`` on the last ``seqId`` and checks the
  CRC32 of the top 25 levels with :func:`zlib.crc32`;
* :class:`DeribitBook` chains ``prev_change_id`` on the last ``change_id``.

Every ``on_*`` method returns the outcome as a word: ``applied``,
``buffered``, ``duplicate``, ``gap``, ``checksum``, ``unsynced``, ``snapshot``.
"""

from __future__ import annotations

import json
import zlib
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

Side = dict[Decimal, "Level"]
TextLevel = tuple[str, str]  # (price text, size text) exactly as the exchange wrote them

OUTCOME_CODES = {
    "applied": 0, "buffered": 1, "duplicate": 2, "gap": 3, "checksum": 4, "unsynced": 5,
    "snapshot": 7,
}


def dec(text: str | int | Decimal) -> Decimal:
    """The exact value of an exchange number (string, JSON token or int)."""
    return text if isinstance(text, Decimal) else Decimal(str(text))


def to_units(value: Decimal, scale: int) -> int:
    """``value`` as an integer count of ``10**-scale``; refuses to round."""
    scaled = value.scaleb(scale)
    if scaled != scaled.to_integral_value():
        raise ValueError(f"{value} has more than {scale} decimals")
    return int(scaled)


def mantissa_decimals(text: str) -> tuple[int, int]:
    """``"61800.20"`` → (6180020, 2): the number as written, trailing zeros kept."""
    sign, digits, exponent = Decimal(text).as_tuple()
    assert sign == 0 and isinstance(exponent, int)
    m = int("".join(map(str, digits)))
    if exponent >= 0:
        return m * 10**exponent, 0
    return m, -exponent


def signed32(x: int) -> int:
    return x - (1 << 32) if x & 0x80000000 else x


@dataclass
class Level:
    price: Decimal
    size: Decimal
    price_text: str
    size_text: str


@dataclass
class L2Book:
    """Both sides of a price-level book; a size of zero removes the level."""

    bids: Side = field(default_factory=dict)
    asks: Side = field(default_factory=dict)

    def clear(self) -> None:
        self.bids.clear()
        self.asks.clear()

    def set_level(self, side: Side, price_text: str, size_text: str) -> None:
        price, size = dec(price_text), dec(size_text)
        if size == 0:
            side.pop(price, None)  # removing an unknown level is normal
        else:
            side[price] = Level(price, size, price_text, size_text)

    def update(self, bids: list[TextLevel], asks: list[TextLevel]) -> None:
        for px, sz in bids:
            self.set_level(self.bids, px, sz)
        for px, sz in asks:
            self.set_level(self.asks, px, sz)

    def load(self, bids: list[TextLevel], asks: list[TextLevel]) -> None:
        self.clear()
        self.update(bids, asks)

    def sorted_bids(self) -> list[Level]:
        return [self.bids[p] for p in sorted(self.bids, reverse=True)]

    def sorted_asks(self) -> list[Level]:
        return [self.asks[p] for p in sorted(self.asks)]

    def levels(self, price_scale: int, qty_scale: int) -> tuple[list[tuple[int, int]], ...]:
        """Every level as integers at the given scales, best first (like ``levels_raw``)."""
        return (
            [(to_units(lv.price, price_scale), to_units(lv.size, qty_scale))
             for lv in self.sorted_bids()],
            [(to_units(lv.price, price_scale), to_units(lv.size, qty_scale))
             for lv in self.sorted_asks()],
        )

    def best(self) -> tuple[Level | None, Level | None]:
        bid = self.bids[max(self.bids)] if self.bids else None
        ask = self.asks[min(self.asks)] if self.asks else None
        return bid, ask

    def best_units(self, price_scale: int, qty_scale: int) -> tuple[int, int, int, int]:
        """(bid, bid size, ask, ask size) at scale, 0 for an empty side."""
        bid, ask = self.best()
        return (
            to_units(bid.price, price_scale) if bid else 0,
            to_units(bid.size, qty_scale) if bid else 0,
            to_units(ask.price, price_scale) if ask else 0,
            to_units(ask.size, qty_scale) if ask else 0,
        )

    def checksum_text(self, depth: int = 25) -> str:
        """``bid1px:bid1sz:ask1px:ask1sz:bid2px:...`` over the top ``depth`` of each side."""
        bids, asks = self.sorted_bids()[:depth], self.sorted_asks()[:depth]
        parts: list[str] = []
        for i in range(max(len(bids), len(asks))):
            if i < len(bids):
                parts += [bids[i].price_text, bids[i].size_text]
            if i < len(asks):
                parts += [asks[i].price_text, asks[i].size_text]
        return ":".join(parts)

    def checksum(self, depth: int = 25) -> int:
        """OKX's signed CRC32 of :meth:`checksum_text`."""
        return signed32(zlib.crc32(self.checksum_text(depth).encode()))


# ------------------------------------------------------------------ Binance


@dataclass(frozen=True)
class DepthEvent:
    """A Binance ``depthUpdate``: ``U`` first, ``u`` last, ``pu`` previous (futures)."""

    first: int
    last: int
    prev: int | None
    bids: list[TextLevel]
    asks: list[TextLevel]

    @classmethod
    def from_json(cls, frame: bytes | str | dict[str, Any]) -> DepthEvent:
        obj = json.loads(frame) if isinstance(frame, bytes | str) else frame
        data = obj.get("data", obj)
        return cls(
            int(data["U"]), int(data["u"]), data.get("pu"),
            [(p, q) for p, q, *_ in data["b"]], [(p, q) for p, q, *_ in data["a"]],
        )


class BinanceBook(L2Book):
    """A Binance local book with the snapshot + buffered-diff procedure."""

    def __init__(self, futures: bool) -> None:
        super().__init__()
        self.futures = futures
        self.state = "wait"  # wait → syncing (snapshot loaded) → synced
        self.last_id = -1
        self.buffer: list[DepthEvent] = []
        self.gaps = 0
        self.applied = 0

    @property
    def synced(self) -> bool:
        return self.state == "synced"

    def on_snapshot(self, last_update_id: int, bids: list[TextLevel],
                    asks: list[TextLevel]) -> str:
        """Load a REST snapshot and replay what was buffered; ``snapshot`` or ``gap``."""
        self.load(bids, asks)
        self.last_id = last_update_id
        self.state = "syncing"
        pending, self.buffer = self.buffer, []
        for i, ev in enumerate(pending):
            if self._step(ev) == "gap":
                # The snapshot is older than what is buffered: wait for a newer one.
                self.buffer = pending[i:]
                return "gap"
        return "snapshot"

    def on_snapshot_json(self, body: bytes | str) -> str:
        obj = json.loads(body)
        return self.on_snapshot(
            int(obj["lastUpdateId"]),
            [(p, q) for p, q, *_ in obj["bids"]], [(p, q) for p, q, *_ in obj["asks"]],
        )

    def on_depth(self, ev: DepthEvent) -> str:
        if self.state == "wait":
            self.buffer.append(ev)
            return "buffered"
        out = self._step(ev)
        if out == "gap":
            self.buffer.append(ev)  # the next snapshot may still need it
        return out

    def _step(self, ev: DepthEvent) -> str:
        last = self.last_id
        if self.state == "syncing":
            if self.futures:
                # Drop u < lastUpdateId; the first event spans lastUpdateId (or chains on it).
                if ev.last < last:
                    return "duplicate"
                ok = ev.first <= last <= ev.last or ev.prev == last
            else:
                # Drop u <= lastUpdateId; the first event spans lastUpdateId + 1.
                if ev.last <= last:
                    return "duplicate"
                ok = ev.first <= last + 1 <= ev.last
        else:
            if ev.last <= last:
                return "duplicate"
            ok = ev.prev == last if self.futures else ev.first == last + 1
        if not ok:
            self.state = "wait"
            self.gaps += 1
            return "gap"
        self.update(ev.bids, ev.asks)
        self.last_id = ev.last
        self.state = "synced"
        self.applied += 1
        return "applied"


# ---------------------------------------------------------------------- OKX


class OkxBook(L2Book):
    """An OKX ``books`` book: ``prevSeqId`` chaining and the top-25 CRC32."""

    def __init__(self) -> None:
        super().__init__()
        self.synced = False
        self.seq: int | None = None
        self.checked = 0
        self.failed = 0

    def on_message(self, action: str, bids: list[TextLevel], asks: list[TextLevel],
                   seq: int | None = None, prev: int | None = None,
                   checksum: int | None = None) -> str:
        if action == "snapshot":
            self.load(bids, asks)
            self.synced = True
            self.seq = seq
            return "checksum" if not self._check(checksum) else "snapshot"
        if not self.synced:
            return "unsynced"
        if seq is not None and prev is not None and prev >= 0 and self.seq is not None \
                and prev != self.seq:
            self.synced = False
            return "gap"
        self.update(bids, asks)
        if seq is not None:
            self.seq = seq
        return "checksum" if not self._check(checksum) else "applied"

    def on_json(self, frame: bytes | str) -> str:
        obj = json.loads(frame)
        out = ""
        for item in obj["data"]:
            out = self.on_message(
                obj["action"],
                [(p, q) for p, q, *_ in item.get("bids", [])],
                [(p, q) for p, q, *_ in item.get("asks", [])],
                item.get("seqId"), item.get("prevSeqId"), item.get("checksum"),
            )
        return out

    def _check(self, checksum: int | None) -> bool:
        if not checksum:  # absent, or 0 on feeds where OKX retired it
            return True
        self.checked += 1
        if self.checksum(25) == checksum:
            return True
        self.failed += 1
        self.synced = False
        return False


# ------------------------------------------------------------------ Deribit


def deribit_levels(raw: list[list[Any]]) -> list[TextLevel]:
    """``[[action, price, amount], ...]`` (tokens as text) → (price, size) with delete = 0."""
    return [(str(px), "0" if action == "delete" else str(amount)) for action, px, amount in raw]


class DeribitBook(L2Book):
    """A Deribit ``book.*.raw`` book: each change chains on the last ``change_id``."""

    def __init__(self) -> None:
        super().__init__()
        self.synced = False
        self.change_id: int | None = None

    def on_data(self, data: dict[str, Any]) -> str:
        bids, asks = deribit_levels(data["bids"]), deribit_levels(data["asks"])
        if data.get("type") == "snapshot":
            self.load(bids, asks)
            self.change_id = int(data["change_id"])
            self.synced = True
            return "snapshot"
        if not self.synced:
            return "unsynced"
        if int(data["prev_change_id"]) != self.change_id:
            self.synced = False
            return "gap"
        self.update(bids, asks)
        self.change_id = int(data["change_id"])
        return "applied"

    def on_json(self, frame: bytes | str) -> str:
        # Keep every number token as written: 0.0005 stays "0.0005", 10.0 stays "10.0".
        obj = json.loads(frame, parse_float=str, parse_int=str)
        return self.on_data(obj["params"]["data"])
