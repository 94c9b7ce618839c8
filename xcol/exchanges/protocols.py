"""What each exchange's WebSocket and REST protocol needs from a connection.

For a feed (exchange, symbols, channels) and one endpoint this module builds
the connections to open (URL plus the messages to send once connected), the
REST snapshot request, and the heartbeat rules.  It holds no state; the
collector (:mod:`xcol.app`) drives it.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from urllib.parse import quote

MARKETS = ("binance-spot", "binance-usdm", "binance-coinm", "okx", "deribit")


@dataclass(frozen=True)
class Connection:
    """One WebSocket connection of a line: where to connect, what to send.

    ``route`` names the stream group (Binance USD-M splits depth/bookTicker on
    ``/public`` from trades on ``/market``); connections of different routes
    are different lines for arbitration.
    """

    url: str
    route: str
    subscribe: tuple[str, ...] = ()
    ping_text: str | None = None        # OKX: "ping" after silence
    ping_after_s: float = 0.0
    heartbeat: bool = False             # Deribit: answer test_request


@dataclass(frozen=True)
class SnapshotRequest:
    """A REST depth snapshot request (Binance)."""

    url: str
    weight: int = field(default=20)


def _binance_stream_names(market: str, symbol: str,
                          channels: Sequence[str]) -> dict[str, list[str]]:
    s = symbol.lower()
    routes: dict[str, list[str]] = {}
    futures = market != "binance-spot"
    for ch in channels:
        if ch == "depth":
            speed = "0ms" if futures else "100ms"
            routes.setdefault("public", []).append(f"{s}@depth@{speed}")
        elif ch == "bbo":
            routes.setdefault("public", []).append(f"{s}@bookTicker")
        elif ch == "trades":
            routes.setdefault("market", []).append(f"{s}@trade")
    return routes


def _with_path(base: str, path: str) -> str:
    """``base`` + the venue's WebSocket path, unless the endpoint already ends with it
    (``wss://ws.okx.com:8443/ws/v5/public`` is how OKX documents its address)."""
    return base if base.endswith(path) else base + path


def route_channels(market: str, route: str, channels: Sequence[str]) -> list[str]:
    """The channels among ``channels`` whose streams travel on ``route`` (every one for
    a market with a single route)."""
    if not market.startswith("binance"):
        return list(channels)
    got = _binance_stream_names(market, "x", channels)
    if route not in got:
        return list(channels) if route == "all" else []
    return [ch for ch in channels if _binance_stream_names(market, "x", [ch]).get(route)]


def connections(market: str, endpoint: str, symbols: Sequence[str],
                channels: Sequence[str]) -> list[Connection]:
    """The connections one line needs on ``endpoint`` for these symbols/channels."""
    base = endpoint.rstrip("/")
    if market.startswith("binance"):
        per_route: dict[str, list[str]] = {}
        for sym in symbols:
            for route, names in _binance_stream_names(market, sym, channels).items():
                per_route.setdefault(route, []).extend(names)
        out = []
        for route, names in sorted(per_route.items(), key=lambda kv: kv[0] != "public"):
            streams = "/".join(names)
            if market == "binance-usdm":
                url = f"{base}/{route}/stream?streams={streams}"
            else:
                url = f"{base}/stream?streams={streams}"
                route = "all"
            out.append(Connection(url=url, route=route))
        if market != "binance-usdm" and len(out) > 1:
            # spot and COIN-M serve every stream on one path: one connection
            names = [n for r in per_route.values() for n in r]
            out = [Connection(url=f"{base}/stream?streams={'/'.join(names)}", route="all")]
        return out
    if market == "okx":
        args = []
        for sym in symbols:
            for ch in channels:
                name = {"depth": "books", "bbo": "bbo-tbt", "trades": "trades"}[ch]
                args.append({"channel": name, "instId": sym})
        sub = json.dumps({"op": "subscribe", "args": args}, separators=(",", ":"))
        return [Connection(url=_with_path(base, "/ws/v5/public"), route="public",
                           subscribe=(sub,),
                           ping_text="ping", ping_after_s=20.0)]
    if market == "deribit":
        chans = []
        for sym in symbols:
            for ch in channels:
                if ch == "depth":
                    chans.append(f"book.{sym}.raw")
                elif ch == "trades":
                    chans.append(f"trades.{sym}.raw")
                elif ch == "bbo":
                    chans.append(f"quote.{sym}")
        hb = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "public/set_heartbeat",
                         "params": {"interval": 10}}, separators=(",", ":"))
        sub = json.dumps({"jsonrpc": "2.0", "id": 2, "method": "public/subscribe",
                          "params": {"channels": chans}}, separators=(",", ":"))
        return [Connection(url=_with_path(base, "/ws/api/v2"), route="api",
                           subscribe=(hb, sub),
                           heartbeat=True)]
    raise ValueError(f"unknown market {market!r}")


def snapshot_request(market: str, rest: str, symbol: str) -> SnapshotRequest | None:
    """The REST depth snapshot request for a Binance book (None elsewhere: OKX and
    Deribit send their snapshot in the stream)."""
    base = rest.rstrip("/")
    sym = quote(symbol)
    if market == "binance-spot":
        return SnapshotRequest(f"{base}/api/v3/depth?symbol={sym}&limit=1000", 50)
    if market == "binance-usdm":
        return SnapshotRequest(f"{base}/fapi/v1/depth?symbol={sym}&limit=1000", 20)
    if market == "binance-coinm":
        return SnapshotRequest(f"{base}/dapi/v1/depth?symbol={sym}&limit=1000", 20)
    return None


#: REST request weight each market allows one IP per minute (Binance ``REQUEST_WEIGHT``,
#: as ``exchangeInfo`` ``rateLimits`` states it: spot 6000, USD-M and COIN-M futures 2400)
REST_WEIGHT_PER_MINUTE = {"binance-spot": 6000, "binance-usdm": 2400, "binance-coinm": 2400}


def rest_weight_limit(market: str) -> int:
    """The REST weight ``market`` allows one IP per minute (0: no weight limit known)."""
    return REST_WEIGHT_PER_MINUTE.get(market, 0)


def resubscribe_book(market: str, symbol: str, next_id: int) -> tuple[str, ...]:
    """OKX/Deribit: the messages that make a line send a fresh in-stream snapshot of
    ``symbol``'s book (unsubscribe, then subscribe again); empty for Binance, whose books
    resync from a REST snapshot.  Deribit requests use ids ``next_id`` and ``next_id + 1``."""
    if market == "okx":
        arg = [{"channel": "books", "instId": symbol}]
        return tuple(json.dumps({"op": op, "args": arg}, separators=(",", ":"))
                     for op in ("unsubscribe", "subscribe"))
    if market == "deribit":
        params = {"channels": [f"book.{symbol}.raw"]}
        return tuple(json.dumps({"jsonrpc": "2.0", "id": next_id + i, "method": method,
                                 "params": params}, separators=(",", ":"))
                     for i, method in enumerate(("public/unsubscribe", "public/subscribe")))
    return ()


TEST_REQUEST = b'"test_request"'


def heartbeat_reply(payload: bytes, next_id: int) -> str | None:
    """Deribit: the ``public/test`` answer a ``test_request`` heartbeat demands."""
    if TEST_REQUEST not in payload:
        return None
    return json.dumps({"jsonrpc": "2.0", "id": next_id, "method": "public/test", "params": {}},
                      separators=(",", ":"))
