#!/usr/bin/env python3
"""A live top-of-book terminal fed by xcol's Redis sink (standard library + hiredis only).

Subscribes to ``market_data:*`` and ``orderbook:*`` (PSUBSCRIBE), fills the table from the
``market_data:*`` keys first (SCAN + GET on a second connection), then redraws about four
times a second: one row per instrument (best bid/ask, spread, last trade, 24 h stats, age
of the data) and a price ladder of the top levels per instrument.

    python examples/redis_consumer.py --url redis://127.0.0.1:6379/0
    python examples/redis_consumer.py --symbol BTCUSDT --levels 5
    python examples/redis_consumer.py --plain --duration 5      # no screen control, for logs

Channels and keys are the sink's defaults; pass ``--patterns`` when the templates differ.
Ctrl-C quits.
"""

from __future__ import annotations

import argparse
import json
import os
import select
import socket
import ssl
import sys
import time
from typing import Any
from urllib.parse import unquote, urlsplit

import hiredis

RESET, BOLD, DIM, RED, GREEN = "\033[0m", "\033[1m", "\033[2m", "\033[31m", "\033[32m"


def pack(*args: str) -> bytes:
    """One RESP command."""
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        b = a.encode()
        out.append(b"$%d\r\n%s\r\n" % (len(b), b))
    return b"".join(out)


class Conn:
    """A blocking Redis connection (AUTH/SELECT from the URL, TLS for rediss://)."""

    def __init__(self, url: str, insecure: bool = False) -> None:
        u = urlsplit(url)
        if u.scheme not in ("redis", "rediss") or not u.hostname:
            raise SystemExit(f"bad --url {url!r}: expected redis://[[user]:password@]host"
                             "[:port][/db]")
        sock: socket.socket = socket.create_connection((u.hostname, u.port or 6379), 5.0)
        if u.scheme == "rediss":
            ctx = ssl.create_default_context()
            if insecure:
                ctx.check_hostname = False
                ctx.verify_mode = ssl.CERT_NONE
            sock = ctx.wrap_socket(sock, server_hostname=u.hostname)
        self.sock = sock
        self.reader = hiredis.Reader()
        if u.password is not None:
            user = [unquote(u.username)] if u.username else []
            self.call("AUTH", *user, unquote(u.password))
        db = u.path.strip("/")
        if db and db != "0":
            self.call("SELECT", db)

    def send(self, *args: str) -> None:
        self.sock.sendall(pack(*args))

    def read(self) -> Any:
        """The next reply (blocking); raises on an error reply or a closed connection."""
        while True:
            reply = self.reader.gets()
            if reply is not False:
                if isinstance(reply, hiredis.ReplyError):
                    raise reply
                return reply
            data = self.sock.recv(1 << 20)
            if not data:
                raise ConnectionError("redis closed the connection")
            self.reader.feed(data)

    def call(self, *args: str) -> Any:
        self.send(*args)
        return self.read()

    def pending(self) -> Any:
        """A reply already received, or False."""
        return self.reader.gets()


class Board:
    """Latest market data and books, by (exchange, symbol)."""

    def __init__(self, symbols: set[str], levels: int) -> None:
        self.symbols = symbols
        self.levels = levels
        self.md: dict[tuple[str, str], dict[str, Any]] = {}
        self.books: dict[tuple[str, str], dict[str, Any]] = {}
        self.messages = 0

    def on_message(self, channel: bytes, payload: bytes) -> None:
        try:
            d = json.loads(payload)
            key = (d["exchange"], d["symbol"])
        except (ValueError, KeyError, TypeError):
            return
        if self.symbols and key[1] not in self.symbols:
            return
        self.messages += 1
        if channel.startswith(b"orderbook:"):
            self.books[key] = d
        else:
            self.md[key] = d

    def render(self, color: bool, url: str) -> str:
        c = (lambda code, s: f"{code}{s}{RESET}") if color else (lambda code, s: s)
        now_ms = time.time() * 1000
        lines = [c(BOLD, f"xcol top of book  {url}  {time.strftime('%H:%M:%S')}  "
                         f"{self.messages} updates")]
        head = (f"{'SYMBOL':<16}{'EXCHANGE':<15}{'BID QTY':>11}{'BID':>13}{'ASK':>13}"
                f"{'ASK QTY':>11}{'SPREAD':>10}{'LAST':>13} {'SIDE':<5}{'VOL 24H':>13}"
                f"{'HIGH 24H':>13}{'LOW 24H':>13}{'AGE':>8}")
        lines += ["", c(DIM, head)]
        for (exch, sym), d in sorted(self.md.items(), key=lambda kv: (kv[0][1], kv[0][0])):
            v = {k: "-" if d.get(k) is None else str(d[k]) for k in (
                "bid", "bid_qty", "ask", "ask_qty", "spread", "last", "volume_24h", "high_24h",
                "low_24h")}
            age = f"{(now_ms - d['updated_at']) / 1000:.1f}s" if d.get("updated_at") else "-"
            side = d.get("last_side") or ""
            last = f"{v['last']:>13}"
            last = c(GREEN if side == "buy" else RED, last) if side else last
            bid, ask = c(GREEN, f"{v['bid']:>13}"), c(RED, f"{v['ask']:>13}")
            lines.append(
                f"{sym:<16}{exch:<15}{v['bid_qty']:>11}{bid}{ask}{v['ask_qty']:>11}"
                f"{v['spread']:>10}{last} {side:<5}{v['volume_24h']:>13}{v['high_24h']:>13}"
                f"{v['low_24h']:>13}{age:>8}")
        if not self.md:
            lines.append(c(DIM, "(waiting for market_data ...)"))
        for (exch, sym), b in sorted(self.books.items(), key=lambda kv: (kv[0][1], kv[0][0])):
            lines += ["", c(BOLD, f"{sym} {exch}  seq {b.get('seq')}")]
            for p, q in reversed(b.get("asks", [])[: self.levels]):
                lines.append(" " * 14 + c(RED, f"{p:>14}") + f"  {q}")
            lines.append(c(DIM, " " * 10 + "-" * 22))
            for p, q in b.get("bids", [])[: self.levels]:
                lines.append(f"{q:>12}  " + c(GREEN, f"{p:>14}"))
        return "\n".join(lines)


def prefill(url: str, board: Board, insecure: bool) -> None:
    """The market_data keys as they are now (SCAN + GET)."""
    conn = Conn(url, insecure)
    cursor = "0"
    while True:
        cursor_b, keys = conn.call("SCAN", cursor, "MATCH", "market_data:*", "COUNT", "1000")
        for k in keys:
            value = conn.call("GET", k.decode())
            if value:
                board.on_message(k, value)
        cursor = cursor_b.decode()
        if cursor == "0":
            break
    conn.sock.close()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--url", default=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"))
    ap.add_argument("--patterns", nargs="+", default=["market_data:*", "orderbook:*"])
    ap.add_argument("--symbol", action="append", default=[], help="only this symbol "
                    "(repeatable)")
    ap.add_argument("--levels", type=int, default=5, help="ladder levels per side")
    ap.add_argument("--refresh", type=float, default=0.25, help="seconds between redraws")
    ap.add_argument("--duration", type=float, default=0.0, help="quit after this many "
                    "seconds (0: run until Ctrl-C)")
    ap.add_argument("--plain", action="store_true", help="no colors or screen clearing")
    ap.add_argument("--insecure", action="store_true", help="rediss://: skip certificate "
                    "verification")
    args = ap.parse_args(argv)
    shown = args.url.split("@")[-1]
    board = Board(set(args.symbol), args.levels)
    color = not args.plain and sys.stdout.isatty()
    end = time.monotonic() + args.duration if args.duration > 0 else float("inf")
    conn: Conn | None = None
    next_draw = 0.0
    try:
        while time.monotonic() < end:
            if conn is None:
                try:
                    prefill(args.url, board, args.insecure)
                    conn = Conn(args.url, args.insecure)
                    conn.send("PSUBSCRIBE", *args.patterns)
                except (OSError, hiredis.ReplyError) as exc:
                    print(f"redis {shown}: {exc}; retrying in 1 s", file=sys.stderr)
                    time.sleep(1.0)
                    continue
            now = time.monotonic()
            if now >= next_draw:
                screen = board.render(color, shown)
                sys.stdout.write(("\033[H\033[2J" + screen) if color else screen + "\n\n")
                sys.stdout.flush()
                next_draw = now + args.refresh
            try:
                buffered = isinstance(conn.sock, ssl.SSLSocket) and conn.sock.pending() > 0
                if not buffered:
                    ready, _, _ = select.select([conn.sock], [], [], max(0.0, next_draw - now))
                    if not ready:
                        continue
                data = conn.sock.recv(1 << 20)
                if not data:
                    raise ConnectionError("redis closed the connection")
                conn.reader.feed(data)
                while (msg := conn.pending()) is not False:
                    if isinstance(msg, list) and msg[0] == b"pmessage":
                        board.on_message(msg[2], msg[3])
            except (OSError, hiredis.ProtocolError) as exc:
                print(f"redis {shown}: {exc}; reconnecting", file=sys.stderr)
                conn.sock.close()
                conn = None
    except KeyboardInterrupt:
        pass
    if color:
        sys.stdout.write(RESET + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
