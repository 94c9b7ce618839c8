"""The PostgreSQL sink: each batch becomes one transaction of ``COPY``s into typed tables.

Records are routed by type into ``trades``, ``bbo``, ``book_snapshots`` (``snapshot`` and
``top`` records) and, when ``book_deltas`` is on, ``book_deltas``; the tables live in one
schema, are created by the versioned migrations below and carry a configurable name prefix.
Prices and sizes are ``numeric``, taken from the exchange's own decimal text (never a float);
book levels are two-dimensional ``numeric[]`` arrays (``bids[i][1]`` price, ``bids[i][2]``
size); ``ts_exchange`` is the exchange's time in ms (``bigint``, 0 when the exchange gave
none) and ``ts_recv`` the receive time in ns.  See docs/sinks.md for the schema.

**Turning records into COPY rows.**  Measured on this machine (bench/sink_postgres.py
``--compare``): parsing every record with ``json.loads`` and handing tuples to asyncpg's
binary ``copy_records_to_table`` is the slowest (a ``Decimal`` per price); building
tab-separated text rows from parsed records is faster; COPYing the raw JSON into a staging
table and letting the server split it costs the least Python but the most server time.  The
sink does what wins on both counts: one compiled regular expression per record type runs over
the whole batch (``findall``, in C) and yields the fields as they are in the record; rows are
joined with ``\\t`` and sent as text ``COPY``, so the server parses each ``numeric`` from the
exchange's exact text (and refuses anything that is not a number).  The expressions accept
only the engine's canonical layout, and a batch is taken this way only if their matches
account for every line of it.  Anything else (a record of an unknown type, a field out of
place, text that would need escaping, or a value the server refuses) sends the batch down a
careful path: every record is parsed and validated, bad ones go to the ``rejects`` table (raw
bytes and the reason) and are counted, never silently lost.

**One transaction per write.**  All COPYs of a batch and a marker row ``(writer, batch_no)``
in ``xcol_batches`` commit together.  A write that raises leaves nothing behind (the
transaction is rolled back), so the fan-out's retry of the same batch writes it once.  The
one ambiguous failure is a connection lost after COMMIT was sent: the retry first reads this
writer's marker, and a batch already committed is not written again.  Batches are therefore
stored exactly once while the process lives; a crash loses only what the fan-out still held
in memory, and nothing is replayed twice.

A slow or locked database simply makes :meth:`PostgresSink.write` wait (asyncpg awaits the
socket, the event loop keeps running); the fan-out's queue fills and its policy applies
(``blocking`` pauses reading).  ``statement_timeout_s`` bounds each statement: a wait longer
than that fails the write, which the fan-out retries with backoff.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import re
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from xcol._fast.hdr import HdrHistogram
from xcol.sinks.base import Sink

__all__ = [
    "LATEST_VERSION",
    "MIGRATIONS",
    "Migration",
    "PostgresSink",
    "SchemaVersionError",
]

log = logging.getLogger("xcol.sinks.postgres")

_IDENT_RE = re.compile(r"[a-z_][a-z0-9_]*")
_PREFIX_RE = re.compile(r"[a-z0-9_]*")
#: Longest table name the migrations create, without the prefix (``xcol_schema_version``).
_LONGEST_TABLE = 19
_PG_NAME_MAX = 63
_I64_MAX = (1 << 63) - 1
_I16_MAX = (1 << 15) - 1
_WARN_EVERY_S = 10.0


@dataclass(frozen=True)
class Migration:
    """One schema step: ``sql`` is run once, in order, with ``{s}`` the quoted schema and
    ``{p}`` the table prefix substituted."""

    version: int
    description: str
    sql: str


# Data tables have no primary key: they are append-only, written by COPY, and exactly-once is
# kept per batch by xcol_batches.  A BRIN index on ts_recv (monotonic per writer) makes time
# ranges cheap at almost no cost to ingest.
_V1 = """
CREATE TABLE {s}."{p}trades" (
    exchange    text     NOT NULL,
    symbol      text     NOT NULL,
    seq         bigint   NOT NULL,
    ts_exchange bigint   NOT NULL,
    ts_recv     bigint   NOT NULL,
    line        smallint NOT NULL,
    trade_id    bigint   NOT NULL,
    price       numeric  NOT NULL,
    qty         numeric  NOT NULL,
    side        text     CHECK (side IN ('buy', 'sell'))
);
CREATE TABLE {s}."{p}bbo" (
    exchange    text     NOT NULL,
    symbol      text     NOT NULL,
    seq         bigint   NOT NULL,
    ts_exchange bigint   NOT NULL,
    ts_recv     bigint   NOT NULL,
    line        smallint NOT NULL,
    bid         numeric,
    bid_qty     numeric,
    ask         numeric,
    ask_qty     numeric
);
CREATE TABLE {s}."{p}book_snapshots" (
    kind        text      NOT NULL CHECK (kind IN ('snapshot', 'top')),
    exchange    text      NOT NULL,
    symbol      text      NOT NULL,
    seq         bigint    NOT NULL,
    ts_exchange bigint    NOT NULL,
    ts_recv     bigint    NOT NULL,
    line        smallint  NOT NULL,
    bids        numeric[] NOT NULL,
    asks        numeric[] NOT NULL
);
CREATE TABLE {s}."{p}book_deltas" (
    exchange    text      NOT NULL,
    symbol      text      NOT NULL,
    seq         bigint    NOT NULL,
    ts_exchange bigint    NOT NULL,
    ts_recv     bigint    NOT NULL,
    line        smallint  NOT NULL,
    prev_seq    bigint,
    bids        numeric[] NOT NULL,
    asks        numeric[] NOT NULL
);
CREATE TABLE {s}."{p}rejects" (
    at          timestamptz NOT NULL DEFAULT now(),
    reason      text        NOT NULL,
    record      bytea       NOT NULL
);
CREATE TABLE {s}."{p}xcol_batches" (
    writer       uuid        PRIMARY KEY,
    batch_no     bigint      NOT NULL,
    committed_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX ON {s}."{p}trades" USING brin (ts_recv);
CREATE INDEX ON {s}."{p}bbo" USING brin (ts_recv);
CREATE INDEX ON {s}."{p}book_snapshots" USING brin (ts_recv);
CREATE INDEX ON {s}."{p}book_deltas" USING brin (ts_recv);
COMMENT ON COLUMN {s}."{p}trades".ts_exchange IS
    'exchange event time, ms since the epoch (0: the exchange gave none)';
COMMENT ON COLUMN {s}."{p}trades".ts_recv IS 'receive time, wall clock, ns since the epoch';
COMMENT ON COLUMN {s}."{p}book_snapshots".bids IS
    '{{{{price,size}},...}} best first: bids[i][1] price, bids[i][2] size';
COMMENT ON TABLE {s}."{p}xcol_batches" IS
    'last batch committed by each writer (sink instance): exactly-once retries';
"""

#: Schema migrations, in order.  Never edit a released one: append a new version.
MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "trades, bbo, book_snapshots, book_deltas, rejects, xcol_batches", _V1),
)
#: The schema version this build writes.
LATEST_VERSION = MIGRATIONS[-1].version


class SchemaVersionError(RuntimeError):
    """The database holds a newer schema than this build knows: refuse to write into it."""


# -- the fast path: one expression per record type over the whole batch -------------------

# The expressions take each field's text as it is and only keep out what would need escaping
# in COPY text or could break a row; the server parses every number and refuses what is not
# one (or is out of range), which sends the batch down the careful path.
_S = rb'([^"\\\x00-\x1f\[\]]+)'  # exchange, symbol: nothing to escape for COPY text
_I = rb"([0-9]+)"
_N = rb'"(-?[0-9][0-9.eE+-]*)"'
_LV = rb'(\[[-+0-9.eE",\[\]]*\])'  # "[" "]" and quotes translated into an array literal


def _head(kind: bytes) -> bytes:
    return (rb'\{"type":"' + kind + rb'","exchange":"' + _S + rb'","symbol":"' + _S
            + rb'","seq":' + _I + rb',"ts_exchange":' + _I + rb',"ts_recv":' + _I
            + rb',"line":(-?[0-9]+)')


_RX_TRADE = re.compile(_head(b"trade") + rb',"id":' + _I + rb',"price":' + _N + rb',"qty":'
                       + _N + rb',"side":(?:"(buy|sell)"|null)\}\n')
_RX_BBO = re.compile(_head(b"bbo") + rb',"bid":' + _N + rb',"bid_qty":' + _N + rb',"ask":'
                     + _N + rb',"ask_qty":' + _N + rb'\}\n')
_RX_SNAP = re.compile(_head(b"(snapshot|top)") + rb',"bids":' + _LV + rb',"asks":' + _LV
                      + rb'\}\n')
_RX_DELTA = re.compile(_head(b"book") + rb'(?:,"prev_seq":' + _I + rb')?,"bids":' + _LV
                       + rb',"asks":' + _LV + rb'\}\n')
# JSON level arrays → array literals: [["1.5","2"]] → {{1.5,2}}
_TO_ARRAY = bytes.maketrans(b"[]", b"{}")

_HEAD_COLS = ("exchange", "symbol", "seq", "ts_exchange", "ts_recv", "line")
_TRADE_COLS = (*_HEAD_COLS, "trade_id", "price", "qty", "side")
_BBO_COLS = (*_HEAD_COLS, "bid", "bid_qty", "ask", "ask_qty")
_SNAP_COLS = ("kind", *_HEAD_COLS, "bids", "asks")
_DELTA_COLS = (*_HEAD_COLS, "prev_seq", "bids", "asks")
_REJECT_COLS = ("reason", "record")

# (table, columns, expression, level arrays to translate)
_ROUTES: tuple[tuple[str, tuple[str, ...], re.Pattern[bytes], bool], ...] = (
    ("trades", _TRADE_COLS, _RX_TRADE, False),
    ("bbo", _BBO_COLS, _RX_BBO, False),
    ("book_snapshots", _SNAP_COLS, _RX_SNAP, True),
    ("book_deltas", _DELTA_COLS, _RX_DELTA, True),
)
_TABLES = ("trades", "bbo", "book_snapshots", "book_deltas")
_RECORD_START = b'{"type":"'
_NL_RECORD_START = b"\n" + _RECORD_START
_BOOK_START = b'{"type":"book",'
_NL_BOOK_START = b"\n" + _BOOK_START


def _count_starts(batch: bytes, nl_marker: bytes) -> int:
    """Lines of ``batch`` that start with ``nl_marker`` (without its newline)."""
    return batch.count(nl_marker) + batch.startswith(nl_marker[1:])


# -- the careful path: parse, validate, escape ---------------------------------------------

_NUM_RE = re.compile(r"-?\d+(?:\.\d+)?(?:[eE][-+]?\d{1,4})?")
_BAD_TEXT_RE = re.compile(r"[\x00-\x1f\\\[\]\"]")


class _Bad(ValueError):
    """A record the sink cannot store; the message is the reason kept in ``rejects``."""


def _text(r: dict[str, Any], key: str) -> str:
    v = r.get(key)
    if not isinstance(v, str) or not v or len(v) > 256 or _BAD_TEXT_RE.search(v):
        raise _Bad(f"bad {key}: {v!r:.80}")
    return v


def _int(r: dict[str, Any], key: str, lo: int, hi: int) -> str:
    v = r.get(key)
    if type(v) is not int or not lo <= v <= hi:
        raise _Bad(f"bad {key}: {v!r:.80}")
    return str(v)


def _num(v: Any, key: str) -> str:
    if not isinstance(v, str) or not _NUM_RE.fullmatch(v):
        raise _Bad(f"bad {key}: {v!r:.80}")
    return v


def _opt_num(r: dict[str, Any], key: str) -> str:
    v = r.get(key)
    return "" if v is None else _num(v, key)


def _levels(r: dict[str, Any], key: str) -> str:
    v = r.get(key)
    if not isinstance(v, list):
        raise _Bad(f"bad {key}: not a list")
    out = []
    for lv in v:
        if not isinstance(lv, list) or len(lv) != 2:
            raise _Bad(f"bad {key}: level {lv!r:.80}")
        out.append(f"{{{_num(lv[0], key)},{_num(lv[1], key)}}}")
    return "{" + ",".join(out) + "}"


def _careful_row(r: Any, book_deltas: bool) -> tuple[str, str | None]:
    """``(table, tab-separated row)`` for one parsed record; row ``None``: skipped by
    configuration.  Raises :class:`_Bad`."""
    if not isinstance(r, dict):
        raise _Bad("not a JSON object")
    t = r.get("type")
    if t == "book" and not book_deltas:
        return "book_deltas", None
    if t not in ("trade", "bbo", "snapshot", "top", "book"):
        raise _Bad(f"unknown record type {t!r:.40}")
    head = [_text(r, "exchange"), _text(r, "symbol"), _int(r, "seq", 0, _I64_MAX),
            _int(r, "ts_exchange", 0, _I64_MAX), _int(r, "ts_recv", 0, _I64_MAX),
            _int(r, "line", -_I16_MAX - 1, _I16_MAX)]
    if t == "trade":
        side = r.get("side")
        if side not in ("buy", "sell", None):
            raise _Bad(f"bad side: {side!r:.40}")
        cols = [*head, _int(r, "id", 0, _I64_MAX), _num(r.get("price"), "price"),
                _num(r.get("qty"), "qty"), side or ""]
        return "trades", "\t".join(cols)
    if t == "bbo":
        cols = [*head, _opt_num(r, "bid"), _opt_num(r, "bid_qty"), _opt_num(r, "ask"),
                _opt_num(r, "ask_qty")]
        return "bbo", "\t".join(cols)
    if t == "book":
        prev = "" if r.get("prev_seq") is None else _int(r, "prev_seq", 0, _I64_MAX)
        return "book_deltas", "\t".join([*head, prev, _levels(r, "bids"), _levels(r, "asks")])
    return "book_snapshots", "\t".join([t, *head, _levels(r, "bids"), _levels(r, "asks")])


def _escape_copy(s: str) -> str:
    return (s.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n")
            .replace("\r", "\\r"))


def _reject_rows(rejects: list[tuple[str, bytes]]) -> bytes:
    # bytea in COPY text: the hex form \x..., its backslash doubled for COPY's own escaping.
    return b"".join(b"%s\t\\\\x%s\n" % (_escape_copy(reason).encode(), rec.hex().encode())
                    for reason, rec in rejects)


@dataclass
class _Plan:
    """What one batch becomes: COPY payloads per table and how records were accounted."""

    parts: list[tuple[str, tuple[str, ...], bytes]]
    rows: dict[str, int]
    skipped: int
    rejected: int
    careful: bool = False
    quarantined: bool = False


_CHUNK_BYTES = 64 * 1024  # about 0.4 ms of parsing: the longest the event loop waits
_CAREFUL_CHUNK_BYTES = 8 * 1024  # json.loads and checks: ~10x the cost per byte


def _chunks(batch: bytes, size: int) -> Iterator[bytes]:
    """``batch`` cut after a newline into pieces of about ``size`` bytes."""
    start, n = 0, len(batch)
    while n - start > size:
        nl = batch.find(b"\n", start + size - 1)
        if nl < 0 or nl + 1 >= n:
            break
        yield batch[start:nl + 1]
        start = nl + 1
    yield batch[start:] if start else batch


def _merge(plans: list[_Plan]) -> _Plan:
    """One plan from the plans of consecutive pieces (one COPY per table)."""
    data: dict[tuple[str, tuple[str, ...]], list[bytes]] = {}
    for p in plans:
        for table, cols, d in p.parts:
            data.setdefault((table, cols), []).append(d)
    rows = dict.fromkeys(_TABLES, 0)
    for p in plans:
        for t, k in p.rows.items():
            rows[t] += k
    return _Plan([(t, c, b"".join(ds)) for (t, c), ds in data.items()], rows,
                 sum(p.skipped for p in plans), sum(p.rejected for p in plans),
                 careful=any(p.careful for p in plans))


def _redact(dsn: str) -> str:
    """``dsn`` without its password, for logs."""
    try:
        parts = urlsplit(dsn)
        if parts.password is None:
            return dsn
        netloc = parts.netloc.rsplit("@", 1)
        user = netloc[0].split(":", 1)[0]
        return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc[1]}"))
    except ValueError:
        return "<unparsable dsn>"


class PostgresSink(Sink):
    """Batched ``COPY`` into PostgreSQL through asyncpg, one transaction per batch.

    :param dsn: ``postgresql://user:password@host:port/database`` (libpq URL syntax; a
        unix socket directory as ``?host=/path``).
    :param schema: schema holding the tables; created if missing.
    :param table_prefix: prepended to every table name (``""``: ``trades``, ``bbo`` ...).
    :param statement_timeout_s: server-side limit per statement, lock waits included
        (0: none).  A write that hits it fails and is retried by the fan-out.
    :param connect_timeout_s: limit for connecting (and authenticating).
    :param book_deltas: also store ``book`` records in ``book_deltas`` (off: they are
        counted as skipped; the table exists either way).
    :param name: metrics label.
    """

    def __init__(
        self,
        dsn: str,
        *,
        schema: str = "xcol",
        table_prefix: str = "",
        statement_timeout_s: float = 60.0,
        connect_timeout_s: float = 10.0,
        book_deltas: bool = False,
        name: str = "postgres",
    ) -> None:
        super().__init__(name)
        check_names(schema, table_prefix)
        if statement_timeout_s < 0:
            raise ValueError(f"statement_timeout_s must be >= 0, got {statement_timeout_s}")
        if connect_timeout_s <= 0:
            raise ValueError(f"connect_timeout_s must be > 0, got {connect_timeout_s}")
        self.dsn = dsn
        self.schema = schema
        self.table_prefix = table_prefix
        self.statement_timeout_s = statement_timeout_s
        self.connect_timeout_s = connect_timeout_s
        self.book_deltas = book_deltas
        self._conn: Any = None  # asyncpg.Connection
        self._ok = False
        self._writer = uuid.uuid4()
        self._batch_no = 0
        #: the batch being written (or whose write failed), its number and the plan of its
        #: last COMMIT attempt (None: none was sent): what a retry needs to know whether
        #: the batch is stored already
        self._pending: tuple[bytes, int, _Plan | None] | None = None
        q = f'"{schema}"'
        self._q_schema = q
        self._tables = {t: f"{table_prefix}{t}" for t in (*_TABLES, "rejects")}
        self._sql_mark = (f'INSERT INTO {q}."{table_prefix}xcol_batches" (writer, batch_no) '
                          "VALUES ($1, $2) ON CONFLICT (writer) DO UPDATE "
                          "SET batch_no = EXCLUDED.batch_no, committed_at = now()")
        self._sql_committed = (f'SELECT batch_no FROM {q}."{table_prefix}xcol_batches" '
                               "WHERE writer = $1")
        self._last_warn = -1e18
        #: Schema version found (and brought up to date) by the last open().
        self.schema_version = 0
        #: Records of committed batches (rows + skipped + rejected).
        self.records = 0
        #: Rows written, by table.
        self.rows: dict[str, int] = dict.fromkeys(_TABLES, 0)
        #: Records not stored by configuration (``book`` with book_deltas off).
        self.skipped = 0
        #: Records stored in ``rejects`` instead of their table.
        self.rejected = 0
        #: Committed batches (transactions).
        self.batches = 0
        #: open() / write() calls that raised.
        self.failures = 0
        #: write() calls that were a retry of a batch that failed.
        self.retries = 0
        #: Retries that found their batch already committed (not written twice).
        self.duplicates_avoided = 0
        #: Batches that needed the careful path; of those, refused whole by the server.
        self.careful_batches = 0
        self.quarantined_batches = 0
        #: Duration of each committed write (COPYs and commit, lock waits included), ns.
        self.write_ns = HdrHistogram(1, 3_600_000_000_000, 3)
        self.last_error: str | None = None

    # -- state --------------------------------------------------------------------------

    @property
    def healthy(self) -> bool:
        conn = self._conn
        return conn is not None and not conn.is_closed() and self._ok

    def histograms(self) -> dict[str, HdrHistogram]:
        """Batch write (transaction) durations (ns)."""
        return {"write_ns": self.write_ns}

    def stats(self) -> dict[str, Any]:
        """Counters for ``/stats`` and ``/metrics`` (``records = sum(rows) + skipped +
        rejected``)."""
        h = self.write_ns
        return {
            "healthy": self.healthy,
            "schema_version": self.schema_version,
            "records": self.records,
            "rows": dict(self.rows),
            "skipped": self.skipped,
            "rejected": self.rejected,
            "batches": self.batches,
            "failures": self.failures,
            "retries": self.retries,
            "duplicates_avoided": self.duplicates_avoided,
            "careful_batches": self.careful_batches,
            "quarantined_batches": self.quarantined_batches,
            "write_ns": {"count": h.total_count,
                         "p50": h.value_at_percentile(50.0) if h.total_count else 0,
                         "p99": h.value_at_percentile(99.0) if h.total_count else 0,
                         "max": h.max() if h.total_count else 0},
            "last_error": self.last_error,
        }

    def table(self, kind: str) -> str:
        """Qualified, quoted name of table ``kind`` (``"trades"``, ``"bbo"``, ...)."""
        return f'{self._q_schema}."{self.table_prefix}{kind}"'

    # -- Sink API -----------------------------------------------------------------------

    async def open(self) -> None:
        if self._conn is not None and not self._conn.is_closed():
            return
        self._conn = None
        settings = {"application_name": f"xcol-{self.name}"[:63],
                    "statement_timeout": str(int(self.statement_timeout_s * 1000))}
        try:
            conn = await asyncpg.connect(self.dsn, timeout=self.connect_timeout_s,
                                         server_settings=settings)
        except Exception as exc:
            self._failed("connect", exc)
            raise
        try:
            self.schema_version = await self._migrate(conn)
        except BaseException as exc:
            conn.terminate()
            if isinstance(exc, Exception):
                self._failed("migrate", exc)
            raise
        conn.add_termination_listener(self._on_lost)
        self._conn = conn
        self._ok = True
        log.info("sink %s: connected to %s, schema %s at version %d", self.name,
                 _redact(self.dsn), self.schema, self.schema_version)

    async def write(self, batch: bytes, n_records: int) -> None:
        if n_records <= 0:
            return
        t0 = time.perf_counter_ns()
        pending = self._pending
        if pending is not None and pending[0] is batch:
            self.retries += 1  # the fan-out retries the very batch that failed
        else:
            self._batch_no += 1
            pending = self._pending = (batch, self._batch_no, None)
        try:
            plan = await self._store(*pending)
        except Exception as exc:
            self._failed("write", exc)
            raise
        self._pending = None
        self._account(plan, n_records, t0)

    async def flush(self) -> None:
        # Every write committed its own transaction: nothing is buffered here.  A connection
        # the server closed meanwhile is reported so the fan-out reconnects early.
        if self._conn is None or self._conn.is_closed():
            raise ConnectionError(f"postgres sink {self.name} lost its connection")

    async def close(self) -> None:
        conn, self._conn = self._conn, None
        self._ok = False
        if conn is None or conn.is_closed():
            return
        try:
            await conn.close(timeout=5.0)
        except Exception:
            conn.terminate()
        except asyncio.CancelledError:
            conn.terminate()
            raise

    # -- internals ----------------------------------------------------------------------

    def _on_lost(self, conn: Any) -> None:
        if conn is self._conn:
            self._ok = False

    def _failed(self, op: str, exc: BaseException) -> None:
        self.failures += 1
        self._ok = False
        self.last_error = f"{op}: {type(exc).__name__}: {exc}"

    def _account(self, plan: _Plan, n_records: int, t0: int) -> None:
        total = sum(plan.rows.values()) + plan.skipped + plan.rejected
        if total != n_records:
            log.warning("sink %s: a batch said %d records but held %d", self.name, n_records,
                        total)
        self.records += total
        for table, k in plan.rows.items():
            self.rows[table] += k
        self.skipped += plan.skipped
        self.rejected += plan.rejected
        self.batches += 1
        self.careful_batches += plan.careful
        self.quarantined_batches += plan.quarantined
        self.write_ns.record(max(1, time.perf_counter_ns() - t0))
        self._ok = True
        if plan.rejected:
            now = time.monotonic()
            if now - self._last_warn >= _WARN_EVERY_S:
                self._last_warn = now
                log.warning("sink %s: %d record(s) of a batch stored in %s instead of their "
                            "table (%d rejected so far)", self.name, plan.rejected,
                            self.table("rejects"), self.rejected)

    async def _store(self, batch: bytes, batch_no: int, tried: _Plan | None) -> _Plan:
        conn = self._conn
        if conn is None or conn.is_closed():
            raise ConnectionError(f"postgres sink {self.name} is not connected")
        if tried is not None:
            # A COMMIT of this batch was sent before the failure: if it went through (only
            # the acknowledgement was lost), the batch is stored already.
            done = await conn.fetchval(self._sql_committed, self._writer)
            if done is not None and done >= batch_no:
                self.duplicates_avoided += 1
                return tried
        return await self._write_plans(conn, batch, batch_no)

    async def _write_plans(self, conn: Any, batch: bytes, batch_no: int) -> _Plan:
        """Write ``batch`` in one transaction; on a data error, again the careful way, and
        as a last resort into ``rejects`` whole."""
        plan = await self._plan(batch, careful=False)
        try:
            await self._commit(conn, batch, plan, batch_no)
            return plan
        except (asyncpg.DataError, asyncpg.IntegrityConstraintViolationError) as exc:
            log.info("sink %s: server refused a batch (%s); validating record by record",
                     self.name, exc)
        plan = await self._plan(batch, careful=True)
        try:
            await self._commit(conn, batch, plan, batch_no)
            return plan
        except (asyncpg.DataError, asyncpg.IntegrityConstraintViolationError) as exc:
            reason = f"batch refused by the server: {type(exc).__name__}: {exc}"
            log.error("sink %s: %s; the whole batch goes to %s", self.name, reason,
                      self.table("rejects"))
        recs = [r for r in batch.split(b"\n") if r]
        plan = _Plan([(self._tables["rejects"], _REJECT_COLS,
                       _reject_rows([(reason, r) for r in recs]))],
                     dict.fromkeys(_TABLES, 0), 0, len(recs), careful=True, quarantined=True)
        await self._commit(conn, batch, plan, batch_no)
        return plan

    async def _commit(self, conn: Any, batch: bytes, plan: _Plan, batch_no: int) -> None:
        self._pending = (batch, batch_no, plan)
        async with conn.transaction():
            for table, cols, data in plan.parts:
                # memoryview: asyncpg sends a buffer as is (bytes would be taken for a path)
                await conn.copy_to_table(table, schema_name=self.schema, columns=cols,
                                         source=memoryview(data), null="")
            await conn.execute(self._sql_mark, self._writer, batch_no)

    async def _plan(self, batch: bytes, careful: bool) -> _Plan:
        """The batch's plan, built a piece at a time: a large (archival) batch must not hold
        the event loop, which also runs the hot path, for the whole of its parsing."""
        plans: list[_Plan] = []
        size = _CAREFUL_CHUNK_BYTES if careful else _CHUNK_BYTES
        for i, chunk in enumerate(_chunks(batch, size)):
            if i:
                await asyncio.sleep(0)
            plan = None if careful else self._fast_plan(chunk)
            plans.append(plan if plan is not None else self._careful_plan(chunk))
        return plans[0] if len(plans) == 1 else _merge(plans)

    def _fast_plan(self, batch: bytes) -> _Plan | None:
        """COPY payloads straight from the batch, or ``None`` when any record is not in the
        canonical layout."""
        lines = batch.count(b"\n")
        if (not batch.endswith(b"\n")
                or _count_starts(batch, _NL_RECORD_START) != lines):
            return None
        parts: list[tuple[str, tuple[str, ...], bytes]] = []
        rows = dict.fromkeys(_TABLES, 0)
        skipped = 0
        for table, cols, rx, levels in _ROUTES:
            if table == "book_deltas" and not self.book_deltas:
                skipped = _count_starts(batch, _NL_BOOK_START)
                continue
            found = rx.findall(batch)
            if not found:
                continue
            data = b"\n".join(map(b"\t".join, found)) + b"\n"
            if levels:
                data = data.translate(_TO_ARRAY, b'"')
            parts.append((self._tables[table], cols, data))
            rows[table] = len(found)
        # Every line starts a record and no expression crosses a newline: if the matches
        # add up to the lines, every record was taken whole.
        if sum(rows.values()) + skipped != lines:
            return None
        return _Plan(parts, rows, skipped, 0)

    def _careful_plan(self, batch: bytes) -> _Plan:
        """Parse and validate every record; bad ones become ``rejects`` rows."""
        out: dict[str, list[str]] = {t: [] for t in _TABLES}
        rejects: list[tuple[str, bytes]] = []
        skipped = 0
        for rec in batch.split(b"\n"):
            if not rec.strip():
                continue
            try:
                table, row = _careful_row(json.loads(rec), self.book_deltas)
            except _Bad as exc:
                rejects.append((str(exc), rec))
                continue
            except ValueError as exc:  # JSON syntax, invalid UTF-8
                rejects.append((f"not JSON: {exc}", rec))
                continue
            if row is None:
                skipped += 1
            else:
                out[table].append(row)
        cols = {t: c for t, c, _, _ in _ROUTES}
        parts = [(self._tables[t], cols[t], ("\n".join(rows) + "\n").encode())
                 for t, rows in out.items() if rows]
        if rejects:
            parts.append((self._tables["rejects"], _REJECT_COLS, _reject_rows(rejects)))
        return _Plan(parts, {t: len(r) for t, r in out.items()}, skipped, len(rejects),
                     careful=True)

    async def _migrate(self, conn: Any) -> int:
        """Bring the schema to :data:`LATEST_VERSION` under an advisory lock, in one
        transaction; return the version.  Raises :class:`SchemaVersionError` for a newer
        schema."""
        version_table = f'{self._q_schema}."{self.table_prefix}xcol_schema_version"'
        async with conn.transaction():
            # Two collectors starting together: the second waits here, then finds the work
            # done.  Transaction-scoped, so it is released by COMMIT/ROLLBACK.
            await conn.execute("SELECT pg_advisory_xact_lock($1)", self._lock_key())
            await conn.execute(f"CREATE SCHEMA IF NOT EXISTS {self._q_schema}")
            await conn.execute(
                f"CREATE TABLE IF NOT EXISTS {version_table} ("
                "version integer PRIMARY KEY, description text NOT NULL, "
                "applied_at timestamptz NOT NULL DEFAULT now())")
            current = await conn.fetchval(f"SELECT coalesce(max(version), 0) FROM {version_table}")
            if current > LATEST_VERSION:
                raise SchemaVersionError(
                    f"schema {self.schema!r} (table prefix {self.table_prefix!r}) is at "
                    f"version {current}, newer than this xcol build writes "
                    f"({LATEST_VERSION}); upgrade xcol or use another schema")
            for m in MIGRATIONS:
                if m.version <= current:
                    continue
                await conn.execute(m.sql.format(s=self._q_schema, p=self.table_prefix))
                await conn.execute(f"INSERT INTO {version_table} (version, description) "
                                   "VALUES ($1, $2)", m.version, m.description)
                log.info("sink %s: schema %s migrated to version %d (%s)", self.name,
                         self.schema, m.version, m.description)
                current = m.version
            # Markers of writers that are long gone.
            await conn.execute(f'DELETE FROM {self._q_schema}."{self.table_prefix}xcol_batches"'
                               " WHERE committed_at < now() - interval '7 days'")
        return int(current)

    def _lock_key(self) -> int:
        h = hashlib.blake2b(f"xcol-migrate:{self.schema}:{self.table_prefix}".encode(),
                            digest_size=8)
        return int.from_bytes(h.digest(), "big", signed=True)


def check_names(schema: str, table_prefix: str) -> None:
    """Raise :class:`ValueError` unless ``schema`` is a lower-case SQL identifier and
    ``table_prefix`` keeps every table name within PostgreSQL's 63 bytes."""
    if not _IDENT_RE.fullmatch(schema) or len(schema) > _PG_NAME_MAX:
        raise ValueError(f"schema must be a lower-case identifier ([a-z_][a-z0-9_]*, at most "
                         f"{_PG_NAME_MAX} characters), got {schema!r}")
    if not _PREFIX_RE.fullmatch(table_prefix):
        raise ValueError(f"table_prefix may hold only a-z, 0-9 and _, got {table_prefix!r}")
    if len(table_prefix) + _LONGEST_TABLE > _PG_NAME_MAX:
        raise ValueError(f"table_prefix is too long ({len(table_prefix)} characters, at most "
                         f"{_PG_NAME_MAX - _LONGEST_TABLE})")
