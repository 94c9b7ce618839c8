"""The ``xcol`` command line.

``xcol report [--url URL]`` prints a running collector's ``/stats`` (see
:mod:`xcol.obs.report`).

``xcol replay FILE... [--json] [--strict]`` replays captures through the engine and checks
the books against the exchanges' own oracles.  A gzip capture that was cut off is replayed
up to its last complete line and named on stderr as truncated.  Exit status: 0 success;
1 with ``--strict`` when an oracle mismatched, a sequence gap occurred, a book ended
unsynced or a file was truncated; 2 on bad input (missing or unreadable file, unknown
format, a gzip file cut off before its first complete line, mixed markets), with one line
on stderr.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from xcol import __version__
from xcol.config import add_check_config_command

if TYPE_CHECKING:
    from xcol.replay import ReplayReport

EXIT_OK = 0
EXIT_STRICT = 1
EXIT_BAD_INPUT = 2


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="xcol", description="Low-latency crypto market-data collector."
    )
    parser.add_argument("--version", action="version", version=f"xcol {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    rp = sub.add_parser(
        "replay",
        help="replay captures and check the books against the exchange oracles",
        description=(
            "Replay exchange captures (hftbacktest '<ns> <json>' files, gzip or plain, or "
            "cryptofeed X.ws.N.M files with their X.http.* and X.0 companions) in order, as "
            "one continuous capture, and check every book against the exchange's oracle."
        ),
    )
    rp.add_argument("files", nargs="+", metavar="FILE", help="capture files, in order")
    rp.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    rp.add_argument(
        "--strict",
        action="store_true",
        help="exit 1 on any oracle mismatch, sequence gap, unsynced book or truncated file",
    )
    rp.add_argument(
        "--corpus-root", metavar="DIR", default=None,
        help="look relative FILE paths up under DIR",
    )
    rp.set_defaults(func=_cmd_replay)
    from xcol import demo as live_demo
    from xcol.config import add_config_arguments

    dp = sub.add_parser(
        "demo",
        help="live demo: the simulator on two delayed lines, the collector, a win-rate table",
    )
    live_demo.add_arguments(dp)
    dp.set_defaults(func=live_demo.run)
    rdp = sub.add_parser(
        "replay-demo",
        help="replay every real capture found (or a synthetic one) and print the summaries",
    )
    rdp.add_argument("--corpus", metavar="DIR", default=None,
                     help="captures folder (default: $XCOL_CORPUS or ../shared/corpus)")
    rdp.set_defaults(func=_cmd_demo)
    runp = sub.add_parser("run", help="run the collector from a TOML config (-c FILE)")
    add_config_arguments(runp)
    runp.set_defaults(func=live_demo.run_collector)
    from xcol import record

    recp = sub.add_parser(
        "record", help="record raw frames with receive times to a file xcol replay reads",
        description="Connect like 'xcol run' (first endpoint of each feed) and append every "
                    "frame and REST snapshot as '<ns> <json>' lines.")
    record.add_arguments(recp)
    recp.set_defaults(func=record.run)
    add_check_config_command(sub)
    from xcol.obs import report

    rep = sub.add_parser(
        "report", help="print a running collector's /stats as tables",
        description="Fetch /stats from a running collector and print connections, streams, "
                    "latency percentiles and sinks.",
    )
    report.add_arguments(rep)
    rep.set_defaults(func=report.run)
    from xcol.sim import cli as sim_cli

    sp = sub.add_parser(
        "sim", help="serve Binance/OKX/Deribit protocols on loopback from captures or "
        "synthetic streams",
        epilog=sim_cli.EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sim_cli.add_arguments(sp)
    sp.set_defaults(func=sim_cli.run)
    return parser


def _n(v: int) -> str:
    return f"{v:,}"


def _print_human(report: ReplayReport, out: TextIO) -> None:
    nfiles = len(report.files)
    print(
        f"replay {report.market}: {nfiles} file{'s' if nfiles != 1 else ''}, "
        f"{_n(report.messages)} messages",
        file=out,
    )
    header = ("instrument", "bid", "bid qty", "ask", "ask qty", "levels", "last seq", "state")
    rows: list[tuple[str, ...]] = [header]
    for name, st in report.instruments.items():
        rows.append((
            name,
            st.bid or "-",
            st.bid_qty or "-",
            st.ask or "-",
            st.ask_qty or "-",
            f"{st.levels[0]}/{st.levels[1]}",
            str(st.last_seq) if st.last_seq is not None else "-",
            "synced" if st.synced else "UNSYNCED (not exact)",
        ))
    if len(rows) > 1:
        widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
        right = {1, 2, 3, 4, 5, 6}
        for r in rows:
            cells = [
                c.rjust(widths[i]) if i in right else c.ljust(widths[i]) for i, c in enumerate(r)
            ]
            print("  " + "  ".join(cells).rstrip(), file=out)
    else:
        print("  (no order books)", file=out)
    o = report.oracle
    verdict = "OK" if o.mismatched == 0 else "MISMATCH"
    print(
        f"oracle {o.kind}: {_n(o.checked)} checked, {_n(o.mismatched)} mismatched  {verdict}",
        file=out,
    )
    for s in report.mismatch_samples:
        print(f"  mismatch: {s}", file=out)
    print(
        f"book updates {_n(report.book_updates)}  gaps {_n(report.gaps)}  "
        f"resyncs {_n(report.resyncs)}  errors {_n(report.errors)}",
        file=out,
    )
    for s in report.error_samples:
        print(f"  error: {s}", file=out)
    if report.unsynced:
        print(f"unsynced (not exact): {', '.join(report.unsynced)}", file=out)


def _cmd_replay(args: argparse.Namespace) -> int:
    from xcol.replay import ReplayError, replay

    try:
        report = replay(list(args.files), corpus_root=args.corpus_root)
    except ReplayError as exc:
        print(f"xcol replay: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    if args.json:
        sys.stdout.write(json.dumps(report.to_json()) + "\n")
    else:
        _print_human(report, sys.stdout)
    for t in report.truncated:
        print(f"xcol replay: {t['file']}: truncated after {t['lines']:,} complete lines "
              f"({t['reason']}); the lines before the cut were replayed", file=sys.stderr)
    failures = report.strict_failures()
    if args.strict and failures:
        if not args.json:
            print(f"strict: FAILED ({'; '.join(failures)})", file=sys.stdout)
        return EXIT_STRICT
    return EXIT_OK


def _demo_captures(root: Path) -> list[list[str]]:
    """The replayable captures under a corpus folder, each as one replay's file list."""
    runs: list[list[str]] = []
    for p in sorted((root / "binance").glob("*.gz")):
        runs.append([str(p)])
    for p in sorted((root / "cryptofeed").glob("*.ws.*")):
        runs.append([str(p)])
    return runs


def _cmd_demo(args: argparse.Namespace) -> int:
    import tempfile

    from xcol.replay import ReplayError, replay
    from xcol.sim.cli import corpus_root
    from xcol.sim.synthetic import write_binance_usdm

    # the same default as `xcol sim` and `xcol demo`: beside the checkout, wherever the
    # command runs from
    root = Path(args.corpus) if args.corpus else corpus_root()
    runs = _demo_captures(root) if root.is_dir() else []
    tmp = None
    if not runs:
        print(f"xcol demo: no captures under {root}; replaying a synthetic USD-M stream")
        tmp = tempfile.TemporaryDirectory()
        runs = [[str(write_binance_usdm(Path(tmp.name) / "synthetic-usdm.txt"))]]
    status = EXIT_OK
    for files in runs:
        print(f"== xcol replay {' '.join(files)}")
        try:
            report = replay(files)
        except ReplayError as exc:
            print(f"xcol demo: {exc}", file=sys.stderr)
            status = EXIT_BAD_INPUT
            continue
        _print_human(report, sys.stdout)
        if report.strict_failures():
            status = EXIT_STRICT
        print()
    if tmp is not None:
        tmp.cleanup()
    return status


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``xcol`` command line with ``argv`` (default ``sys.argv[1:]``); returns
    the exit status."""
    parser = _build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version, usage errors
        return exc.code if isinstance(exc.code, int) else EXIT_BAD_INPUT
    if getattr(args, "func", None) is None:
        parser.print_help(sys.stderr)
        return EXIT_BAD_INPUT
    try:
        status: int = args.func(args)
    except BrokenPipeError:
        # the reader went away (`xcol report | head`): not an error of ours.  Point
        # stdout at /dev/null so the interpreter's own flush at exit stays quiet too.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_OK
    return status


if __name__ == "__main__":
    sys.exit(main())
