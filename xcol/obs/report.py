"""``xcol report``: fetch a running collector's ``/stats`` and print it as tables, or with
``--histograms`` its ``/histograms`` (every HDR histogram, hdrhistogram-encoded) as JSON.

Exit status: 0 printed; 2 when the URL is unreachable, answers with an HTTP error or does
not return a stats document (one line on stderr naming the URL).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from typing import Any, TextIO
from urllib.parse import urlsplit, urlunsplit

from xcol.obs.http import DEFAULT_HOST, DEFAULT_PORT

__all__ = ["DEFAULT_URL", "ReportError", "add_arguments", "fetch_histograms", "fetch_stats",
           "render", "run", "stats_url"]

DEFAULT_URL = f"http://{DEFAULT_HOST}:{DEFAULT_PORT}"
URL_ENV = "XCOL_REPORT_URL"
EXIT_OK = 0
EXIT_UNREACHABLE = 2


class ReportError(Exception):
    """The stats could not be fetched or are not a stats document."""


def stats_url(url: str, endpoint: str = "/stats") -> str:
    """The ``endpoint`` URL for a collector base URL (a URL that already ends in
    ``/stats`` or ``/histograms`` stands for its base URL).

    :raises ReportError: not an http(s) URL with a host.
    """
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ReportError(f"{url}: not an http:// URL")
    path = parts.path.rstrip("/")
    for known in ("/stats", "/histograms"):     # a URL copied from either endpoint
        if path.endswith(known):
            path = path[:-len(known)]
            break
    return urlunsplit((parts.scheme, parts.netloc, path + endpoint, parts.query, ""))


def fetch_stats(url: str, timeout: float = 5.0) -> dict[str, Any]:
    """GET ``url``'s ``/stats`` and return the decoded document.

    :raises ReportError: unreachable, HTTP error, or not a JSON object.
    """
    return _fetch(stats_url(url), timeout, "a stats object")


def fetch_histograms(url: str, timeout: float = 5.0) -> dict[str, str]:
    """GET ``url``'s ``/histograms``: every HDR histogram of the collector by name, each in
    the ``hdrhistogram`` package's encoding (``hdrh.histogram.HdrHistogram.decode``).

    :raises ReportError: unreachable, HTTP error, or not a JSON object of strings.
    """
    target = stats_url(url, "/histograms")
    doc = _fetch(target, timeout, "a histograms object")
    if not all(isinstance(v, str) for v in doc.values()):
        raise ReportError(f"{target}: the response is not a histograms object")
    return doc


def _fetch(target: str, timeout: float, what: str) -> dict[str, Any]:
    req = urllib.request.Request(target, headers={"Accept": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            body = resp.read()
    except urllib.error.HTTPError as exc:
        raise ReportError(f"{target}: HTTP {exc.code} {exc.reason}") from None
    except urllib.error.URLError as exc:
        raise ReportError(f"cannot reach {target}: {exc.reason}") from None
    except (OSError, ValueError) as exc:  # timeouts, resets, malformed responses
        raise ReportError(f"cannot reach {target}: {exc}") from None
    try:
        doc = json.loads(body)
    except ValueError:
        raise ReportError(f"{target}: the response is not JSON") from None
    if not isinstance(doc, dict):
        raise ReportError(f"{target}: the response is not {what}")
    return doc


# --------------------------------------------------------------------------------------
# formatting

def _num(v: Any, digits: int = 0) -> str:
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, int):
        return f"{v:,}"
    if isinstance(v, float):
        if v != v:  # NaN
            return "-"
        if digits == 0 and v.is_integer():
            return f"{int(v):,}"
        return f"{v:,.{digits or 1}f}"
    return "-" if v is None else str(v)


def _pct(v: Any) -> str:
    if isinstance(v, int | float) and not isinstance(v, bool) and v == v:
        return f"{100.0 * v:.1f}%"
    return "-"


def _cell(text: str) -> str:
    # Endpoints and names come from the network: keep control characters off the terminal.
    return "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in text)


def _table(rows: list[tuple[str, ...]], right: set[int], out: TextIO) -> None:
    rows = [tuple(_cell(c) for c in r) for r in rows]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        cells = [c.rjust(widths[i]) if i in right else c.ljust(widths[i])
                 for i, c in enumerate(r)]
        print("  " + "  ".join(cells).rstrip(), file=out)


def _items(doc: Mapping[str, Any], key: str) -> list[Mapping[str, Any]]:
    v = doc.get(key)
    return [x for x in v if isinstance(x, Mapping)] if isinstance(v, list) else []


def _sub(d: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    v = d.get(key)
    return v if isinstance(v, Mapping) else {}


def render(doc: Mapping[str, Any], out: TextIO, source: str = "") -> None:
    """Print a stats document as tables (tolerates missing sections and keys)."""
    head = "xcol report"
    if source:
        head += f" {source}"
    if isinstance(doc.get("version"), str):
        head += f" (xcol {doc['version']})"
    if isinstance(doc.get("uptime_s"), int | float):
        head += f", up {doc['uptime_s']:.0f} s"
    print(head, file=out)

    conns = _items(doc, "connections")
    print(f"\nconnections ({len(conns)})", file=out)
    if conns:
        rows: list[tuple[str, ...]] = [("id", "exchange", "endpoint", "state", "frames", "wins",
                                        "win rate", "dups", "lag p50 us", "lag p99 us",
                                        "lag max us", "reconnects", "gaps", "errors")]
        for c in conns:
            lag = _sub(c, "lag_us")
            rows.append((_num(c.get("id")), str(c.get("exchange", "-")),
                         str(c.get("endpoint", "-")), str(c.get("state", "-")),
                         _num(c.get("frames")), _num(c.get("wins")), _pct(c.get("win_rate")),
                         _num(c.get("duplicates")), _num(lag.get("p50")),
                         _num(lag.get("p99")), _num(lag.get("max")),
                         _num(c.get("reconnects")), _num(c.get("gaps")),
                         _num(c.get("errors"))))
        _table(rows, {0, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13}, out)
    else:
        print("  (none)", file=out)

    streams = _items(doc, "streams")
    unsynced = sum(1 for s in streams if not s.get("synced"))
    print(f"\nstreams ({len(streams)}, {unsynced} unsynced)", file=out)
    if streams:
        rows = [("exchange", "instrument", "channel", "state", "last seq", "gaps", "resyncs")]
        for s in streams:
            rows.append((str(s.get("exchange", "-")), str(s.get("instrument", "-")),
                         str(s.get("channel", "-")),
                         "synced" if s.get("synced") else "UNSYNCED",
                         _num(s.get("last_seq")), _num(s.get("gaps")),
                         _num(s.get("resyncs"))))
        _table(rows, {4, 5, 6}, out)
    else:
        print("  (none)", file=out)

    lat = _sub(doc, "latency")
    print("\nlatency", file=out)
    rows = [("", "p50", "p90", "p99", "p99.9", "max", "count")]
    for key, label, digits in (("code_us", "code (us, monotonic)", 0),
                               ("exchange_ms", "exchange (ms, wall clock)", 3)):
        s = _sub(lat, key)
        rows.append((label, *(_num(s.get(k), digits) for k in ("p50", "p90", "p99", "p999",
                                                                "max")),
                     _num(s.get("count"))))
    _table(rows, {1, 2, 3, 4, 5, 6}, out)

    sinks = _items(doc, "sinks")
    print(f"\nsinks ({len(sinks)})", file=out)
    if sinks:
        rows = [("name", "policy", "queued", "high water", "published", "dropped")]
        for k in sinks:
            rows.append((str(k.get("name", "-")), str(k.get("policy", "-")),
                         _num(k.get("queued")), _num(k.get("high_water")),
                         _num(k.get("published")), _num(k.get("dropped"))))
        _table(rows, {2, 3, 4, 5}, out)
    else:
        print("  (none)", file=out)

    cnt = _sub(doc, "counters")
    if cnt:
        # pending (held by the books) is measured by collectors that report it
        keys: tuple[str, ...] = ("received", "published", "duplicates", "dropped")
        if "pending" in cnt:
            keys += ("pending",)
        line = "  ".join(f"{k} {_num(cnt.get(k))}" for k in keys)
        vals = [cnt.get(k) for k in keys]
        ints = [v for v in vals if isinstance(v, int) and not isinstance(v, bool)]
        if len(ints) == len(keys):
            diff = ints[0] - sum(ints[1:])
            line += "  (reconciled)" if diff == 0 else f"  (in flight or unaccounted: {diff:,})"
        print(f"\ncounters\n  {line}", file=out)


# --------------------------------------------------------------------------------------
# command

def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``report``'s options to ``parser``."""
    parser.add_argument(
        "--url", default=os.environ.get(URL_ENV, DEFAULT_URL),
        help=f"the collector's HTTP address (default: ${URL_ENV} or {DEFAULT_URL}); "
             "/stats is appended unless present")
    parser.add_argument("--timeout", type=float, default=5.0, metavar="SECONDS",
                        help="give up after this long (default 5)")
    parser.add_argument("--json", action="store_true",
                        help="print the raw /stats document instead of tables")
    parser.add_argument("--histograms", action="store_true",
                        help="print /histograms instead: {name: encoded} for every HDR "
                             "histogram, in the hdrhistogram package's encoding (JSON)")


def run(args: argparse.Namespace, out: TextIO | None = None, err: TextIO | None = None) -> int:
    """Fetch and print; returns the exit status (0, or 2 when the URL fails)."""
    out = out if out is not None else sys.stdout
    err = err if err is not None else sys.stderr
    try:
        if getattr(args, "histograms", False):
            hists = fetch_histograms(args.url, timeout=args.timeout)
            out.write(json.dumps(hists, indent=2, sort_keys=True) + "\n")
            return EXIT_OK
        doc = fetch_stats(args.url, timeout=args.timeout)
    except ReportError as exc:
        print(f"xcol report: {exc}", file=err)
        return EXIT_UNREACHABLE
    if args.json:
        out.write(json.dumps(doc, indent=2) + "\n")
    else:
        render(doc, out, source=stats_url(args.url))
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m xcol.obs.report``: the same as ``xcol report``."""
    parser = argparse.ArgumentParser(prog="xcol report", description=__doc__)
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
