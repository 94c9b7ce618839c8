"""The Cython listener on a real picows connection: receive clocks and pings.

A server writes two bookTickers and a PING in one TCP write, then, 0.3 s later, a third
bookTicker.  Frames of one socket read share the read's start: the third frame comes in a
new read, so its receive time must be taken after it was sent, not carried over from the
first read.  That holds only if the read that ended with the PING ended in the listener,
which is why the collector answers pings itself (``enable_auto_pong=False``).
"""

from __future__ import annotations

import asyncio
from typing import Any

from picows import WSListener, WSMsgType, ws_connect, ws_create_server

from xcol._fast.engine import Engine
from xcol._fast.listener import FeedListener, monotonic_ns
from xcol.sim.blast import ws_frame

BT = (b'{"stream":"btcusdt@bookTicker","data":{"e":"bookTicker","u":%d,"s":"BTCUSDT",'
      b'"b":"100.10","B":"1.000","a":"100.20","A":"2.000","T":1,"E":2}}')


def test_a_read_ending_with_a_ping_does_not_lend_its_clock_to_the_next_read() -> None:
    sent: dict[str, int] = {}
    pongs: list[bytes] = []

    class Server(WSListener):
        def on_ws_connected(self, transport: Any) -> None:
            async def go() -> None:
                raw = transport.underlying_transport
                await asyncio.sleep(0.05)
                raw.write(ws_frame(BT % 1) + ws_frame(BT % 2) + ws_frame(b"hi", 0x9))
                await asyncio.sleep(0.3)
                sent["third"] = monotonic_ns()
                raw.write(ws_frame(BT % 3))

            asyncio.get_running_loop().create_task(go())

        def on_ws_frame(self, transport: Any, frame: Any) -> None:
            if frame.msg_type == WSMsgType.PONG:
                pongs.append(frame.get_payload_as_bytes())

    async def main() -> None:
        srv = await ws_create_server(lambda _r: Server(), "127.0.0.1", 0)
        port = srv.sockets[0].getsockname()[1]
        eng = Engine("binance-usdm")
        eng.add_instrument("BTCUSDT", 2, 3)
        batches: list[tuple[int, bytes]] = []
        holder: dict[str, FeedListener] = {}

        def make() -> FeedListener:
            lst = FeedListener(eng, 0, lambda d, n: batches.append((holder["l"].last_rx, d)))
            holder["l"] = lst
            return lst

        tr, _ = await ws_connect(make, f"ws://127.0.0.1:{port}", enable_auto_pong=False)
        await asyncio.sleep(0.6)
        tr.disconnect()
        srv.close()
        assert pongs == [b"hi"]  # the listener answered the ping
        assert [d.count(b"\n") for _rx, d in batches] == [2, 1]
        assert batches[-1][0] >= sent["third"]

    asyncio.run(main())
