"""``xcol sim``: run the exchange simulator from the command line.

Examples::

    xcol sim --exchange binance-usdm --source usdm.gz --lines 2 --delay-ms 0,3 --speed 20
    xcol sim --exchange okx --synthetic --symbols 500 --rate 20000
    xcol sim --exchange binance-usdm --source usdm.gz --blast --blast-count 10000000

SIGINT/SIGTERM stop it cleanly (exit 0).  Exit 2 on bad input.  On demand, while it runs:
SIGUSR1 drops every client of every line at once (TCP close, no close frame) and SIGUSR2
sends Binance's ``serverShutdown`` event to every client, who are disconnected
``--shutdown-grace`` seconds later (``kill -USR1 <pid>``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

EXIT_OK = 0
EXIT_BAD_INPUT = 2

_EXCHANGES = ("binance-spot", "binance-usdm", "binance-coinm", "okx", "deribit")
_DEFAULT_CAPTURE = {
    "binance-usdm": "binance/usdm-btcusdt-20240808.gz",
    "binance-spot": "binance/spot-btcusdt-20240808.gz",
    "binance-coinm": "binance/coinm-btcusd_perp-20240808.gz",
    "okx": "cryptofeed/OKX.ws.1.0",
    "deribit": "cryptofeed/DERIBIT.ws.1.0",
}


def corpus_root() -> Path:
    """``$XCOL_CORPUS`` or ``<repo>/../shared/corpus``."""
    env = os.environ.get("XCOL_CORPUS")
    return Path(env) if env else Path(__file__).resolve().parents[2].parent / "shared" / "corpus"


#: on-demand faults: what ``kill -USR1`` / ``kill -USR2`` do to a running ``xcol sim``
EPILOG = """on demand, while it runs:
  kill -USR1 PID   drop every client of every line now (TCP close, no close frame)
  kill -USR2 PID   Binance: send serverShutdown to every client now, disconnect them
                   --shutdown-grace seconds later (other exchanges: ignored)"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``sim`` options to ``parser``."""
    parser.add_argument("--exchange", choices=_EXCHANGES, default="binance-usdm")
    src = parser.add_argument_group("source")
    src.add_argument("--source", action="append", metavar="FILE", default=[],
                     help="capture to replay (repeat for consecutive files); default: the "
                          "corpus capture of the exchange if present, else synthetic")
    src.add_argument("--synthetic", action="store_true", help="synthetic streams")
    src.add_argument("--symbols", type=int, default=1, help="synthetic instruments")
    src.add_argument("--rate", type=float, default=100.0,
                     help="synthetic book updates per second, all instruments together")
    src.add_argument("--speed", type=float, default=1.0,
                     help="replay speed factor (0: as fast as flow control allows)")
    src.add_argument("--no-loop", action="store_true", help="stop the replay at its end")
    src.add_argument("--seed", type=int, default=1)
    net = parser.add_argument_group("lines")
    net.add_argument("--host", default="127.0.0.1")
    net.add_argument("--port", type=int, default=0,
                     help="first port (line i listens on PORT+i; 0: free ports)")
    net.add_argument("--lines", type=int, default=1, help="independent copies of the feed")
    net.add_argument("--delay-ms", default="0", metavar="A,B,...", help="per-line delay")
    net.add_argument("--jitter-ms", default="0", metavar="A,B,...", help="per-line jitter")
    net.add_argument("--drop-rate", default="0", metavar="A,B,...",
                     help="per-line probability of not sending an update")
    net.add_argument("--malformed-rate", default="0", metavar="A,B,...",
                     help="per-line probability of injecting a malformed frame")
    net.add_argument("--disconnect-every", default="0", metavar="S,...",
                     help="per-line seconds between forced disconnects (0: never)")
    proto = parser.add_argument_group("protocol")
    proto.add_argument("--ping-interval", type=float, default=None,
                       help="Binance server ping period (default: spot 20 s, futures 180 s)")
    proto.add_argument("--pong-timeout", type=float, default=None)
    proto.add_argument("--shutdown-grace", type=float, default=1.0)
    proto.add_argument("--okx-checksum", choices=("auto", "recorded", "compute", "zero"),
                       default="auto")
    proto.add_argument("--okx-heartbeat", type=float, default=0.0,
                       help="seconds without change before OKX's empty update (0: off)")
    proto.add_argument("--deribit-min-heartbeat", type=float, default=10.0)
    proto.add_argument("--rest-reject", type=int, default=0, metavar="N",
                       help="Binance: answer the first N REST depth requests with "
                            "--rest-reject-status instead of a snapshot")
    proto.add_argument("--rest-reject-status", type=int, choices=(429, 418), default=429)
    proto.add_argument("--rest-retry-after", default="1", metavar="S",
                       help="Retry-After header of the rejected depth requests "
                            "(empty: none)")
    bl = parser.add_argument_group("blast")
    bl.add_argument("--blast", action="store_true",
                    help="pre-framed USD-M frames of the capture as fast as flow control "
                         "allows: the depth, bookTicker and trade messages a connection "
                         "subscribes, in the capture's order")
    bl.add_argument("--blast-count", type=int, default=0,
                    help="frames per connection (0: unlimited); a connection carrying part of "
                         "the capture's mix (e.g. /public or /market) takes its share")
    bl.add_argument("--blast-max-bytes", type=int, default=0,
                    help="blast only depth messages up to this size (0: all), re-chained")
    bl.add_argument("--blast-rate", type=float, default=0.0,
                    help="frames per second per connection, its share of it for part of "
                         "the capture's mix (0: as fast as possible)")
    net.add_argument("--tls-cert", default=None, help="PEM certificate: serve wss:// and https://")
    net.add_argument("--tls-key", default=None, help="PEM private key for --tls-cert")
    net.add_argument("--timer-spin-ms", type=float, default=1.0,
                     help="delayed lines wake this early and poll until due (0: off)")
    parser.add_argument("--duration", type=float, default=0.0,
                        help="stop after this many seconds (0: until SIGINT/SIGTERM)")
    parser.add_argument("--stats-every", type=float, default=5.0,
                        help="print counters every N seconds (0: never)")


def _config(args: argparse.Namespace) -> object:
    from xcol.sim.server import SimConfig, line_configs

    source = [str(p) for p in args.source]
    if not source and not args.synthetic:
        default = corpus_root() / _DEFAULT_CAPTURE[args.exchange]
        if default.is_file():
            source = [str(default)]
    if args.lines < 1:
        raise ValueError("--lines must be at least 1")
    if args.rest_reject < 0:
        raise ValueError("--rest-reject must be >= 0")
    lines = line_configs(args.lines, delay_ms=args.delay_ms, jitter_ms=args.jitter_ms,
                         drop_rate=args.drop_rate, malformed_rate=args.malformed_rate,
                         disconnect_every=args.disconnect_every)
    return SimConfig(
        exchange=args.exchange, source=source, symbols=args.symbols, rate=args.rate,
        speed=args.speed, loop=not args.no_loop, lines=lines, host=args.host, port=args.port,
        ping_interval=args.ping_interval, pong_timeout=args.pong_timeout,
        shutdown_grace=args.shutdown_grace, okx_checksum=args.okx_checksum,
        okx_heartbeat=args.okx_heartbeat, deribit_min_heartbeat=args.deribit_min_heartbeat,
        blast=args.blast, blast_count=args.blast_count,
        blast_max_bytes=args.blast_max_bytes, blast_rate=args.blast_rate,
        tls_cert=args.tls_cert, tls_key=args.tls_key, timer_spin_ms=args.timer_spin_ms,
        rest_reject=args.rest_reject, rest_reject_status=args.rest_reject_status,
        rest_retry_after=args.rest_retry_after, seed=args.seed)


def _on_demand(sim: Any) -> dict[signal.Signals, Callable[[], None]]:
    """The SIGUSR1 (forced disconnect) and SIGUSR2 (``serverShutdown``) handlers of
    ``sim``; each prints what it did, so a script driving the sim can wait for it."""
    n_lines = len(sim.config.lines)

    def disconnect() -> None:
        n = sum(sim.disconnect(i) for i in range(n_lines))
        print(f"  SIGUSR1: dropped {n} clients", flush=True)

    def server_shutdown() -> None:
        if not sim.config.exchange.startswith("binance"):
            print(f"  SIGUSR2: ignored ({sim.config.exchange} has no serverShutdown event)",
                  flush=True)
            return
        n = sum(sim.server_shutdown(i) for i in range(n_lines))
        print(f"  SIGUSR2: serverShutdown sent to {n} clients, disconnect in "
              f"{sim.config.shutdown_grace:g} s", flush=True)

    return {signal.SIGUSR1: disconnect, signal.SIGUSR2: server_shutdown}


async def _serve(args: argparse.Namespace, cfg: object) -> int:
    from xcol.sim.server import SimConfig, Simulator

    assert isinstance(cfg, SimConfig)
    sim = Simulator(cfg)
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    handlers = _on_demand(sim)
    handlers[signal.SIGINT] = handlers[signal.SIGTERM] = stop.set
    # installed before the ports open: a client that sees the port may signal at once
    # (SIGUSR1's default action would kill the process)
    for sig, fn in handlers.items():
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(sig, fn)
    try:
        await sim.start()
    except BaseException:
        for sig in handlers:
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.remove_signal_handler(sig)
        raise
    src = ", ".join(cfg.source) if cfg.source else f"synthetic {len(sim.instruments)} instruments"
    mode = "blast" if cfg.blast else f"speed {cfg.speed:g}"
    print(f"xcol sim {cfg.exchange}: {src} ({mode})", flush=True)
    for i, ln in enumerate(cfg.lines):
        print(f"  line {i}: {cfg.host}:{sim.ports[i]}  delay {ln.delay_ms:g} ms  jitter "
              f"{ln.jitter_ms:g} ms  drop {ln.drop_rate:g}  malformed {ln.malformed_rate:g}  "
              f"disconnect every {ln.disconnect_every:g} s", flush=True)
    t_start = time.monotonic()
    last_t, last_frames = t_start, 0
    try:
        while not stop.is_set():
            wait = args.stats_every if args.stats_every > 0 else 3600.0
            if args.duration > 0:
                wait = min(wait, max(0.0, t_start + args.duration - time.monotonic()))
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(stop.wait(), wait)
            now = time.monotonic()
            if args.stats_every > 0 and not stop.is_set():
                st = sim.stats()
                frames = sum(x["frames_sent"] + x["blast_frames"] for x in st["lines"])
                rate = (frames - last_frames) / max(now - last_t, 1e-9)
                last_t, last_frames = now, frames
                print(f"  {now - t_start:7.1f}s updates {st['updates']:,} frames {frames:,} "
                      f"({rate:,.0f}/s) passes {st['passes']}", flush=True)
            if args.duration > 0 and now - t_start >= args.duration:
                break
    finally:
        await sim.stop()
        for sig in handlers:
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.remove_signal_handler(sig)
    st = sim.stats()
    for i, x in enumerate(st["lines"]):
        print(f"  line {i}: frames {x['frames_sent'] + x['blast_frames']:,} dropped "
              f"{x['dropped']:,} malformed {x['malformed']:,} disconnects {x['disconnects']:,}",
              flush=True)
    return EXIT_OK


def run(args: argparse.Namespace) -> int:
    """Run the simulator until SIGINT/SIGTERM or ``--duration``; returns the exit status."""
    from xcol.replay import ReplayError

    try:
        cfg = _config(args)
    except (ValueError, ReplayError) as exc:
        print(f"xcol sim: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    runner: Callable[[Coroutine[Any, Any, int]], int] = asyncio.run
    with contextlib.suppress(ImportError):
        import uvloop

        runner = uvloop.run
    try:
        status = runner(_serve(args, cfg))
    except (ValueError, ReplayError, OSError) as exc:
        print(f"xcol sim: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    return status
