"""The Parquet archive sink: one file per (exchange, channel, instrument, hour), zstd, written
atomically, with an Arrow IPC journal for crash safety and an optional S3 upload spool.

Channels (one fixed schema each, :data:`SCHEMAS`): ``book`` (record types ``book`` and
``snapshot``: deltas and the full books they start from, in one file so a reader replays a
book from one file), ``top`` (type ``top``), ``bbo`` and ``trades`` (type ``trade``).
Prices and sizes stay the exchange's decimal strings (exact, and what the OKX checksum is
computed over); book levels are ``list<struct<price: string, size: string>>``.

Layout: ``{dir}/{exchange}/{channel}/{symbol}/{YYYY-MM-DD}/{HH}-{first seq}.parquet``, the
hour of ``ts_recv`` in UTC (a ``-N`` suffix when the name is taken; the symbol is
percent-encoded if it holds anything but ``[A-Za-z0-9_.~-]``).

Life of a file, all on the sink's own thread:

1. ``write()`` keeps the raw batch; once ``parse_bytes`` are held (and at every flush) they
   are parsed at once with :func:`pyarrow.json.read_json`, split by channel, instrument and
   hour, and the rows buffered per file.
2. ``flush()`` appends each file's new rows to its journal, ``<name>.parquet.wal`` (an
   Arrow IPC stream, one record batch per flush) and fsyncs it.  Rows leave memory for the
   Parquet file, ``<name>.parquet.tmp``, as whole row groups of ``row_group_rows`` (or
   earlier when all files together hold more than ``buffer_bytes``).
3. The file is closed when it reaches ``max_rows`` / ``max_bytes`` (size rotation), when the
   wall clock is ``close_grace_s`` past the end of its hour and no row came for
   ``close_grace_s`` (hour rotation), and on ``close()``: last row group, footer, fsync, the
   upload marker (with S3), rename to ``<name>.parquet``, fsync the directory, delete the
   journal.

A crash loses only rows written but not yet flushed: on the next ``open()`` every journal
left behind is turned into its Parquet file (every complete record batch; a torn last
batch was never flushed).  See docs/sinks.md.

S3: a closed file is listed in ``{dir}/.spool/`` (one marker per file); an uploader thread
uploads the listed files oldest first, verifies them with ``HeadObject`` (size, our MD5 in
the object's metadata, the ETag), then deletes the local file (unless ``keep_local``) and
the marker.  Failures are retried with exponential backoff and full jitter; markers survive
restarts, so what was not uploaded is uploaded after the next start.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import io
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import quote

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.ipc as ipc
import pyarrow.json as pj
import pyarrow.parquet as pq

from xcol._fast.hdr import HdrHistogram
from xcol.net.backoff import Backoff
from xcol.sinks.base import ThreadedSink

__all__ = ["CHANNELS", "SCHEMAS", "SCHEMA_VERSION", "ParquetSink"]

log = logging.getLogger("xcol.sinks.parquet")

HOUR_NS = 3_600_000_000_000
#: Bumped when a channel schema changes; stored in every file's metadata (``xcol.schema``).
SCHEMA_VERSION = "1"

#: Record type → channel (file group).
CHANNELS: dict[str, str] = {
    "book": "book", "snapshot": "book", "top": "top", "bbo": "bbo", "trade": "trades"}

_LEVEL = pa.struct([pa.field("price", pa.string()), pa.field("size", pa.string())])
# "element" is the name Parquet readers give list items: a file reads back as SCHEMAS.
_LEVELS = pa.list_(pa.field("element", _LEVEL))
_HEADER = [
    pa.field("exchange", pa.string(), nullable=False),
    pa.field("symbol", pa.string(), nullable=False),
    pa.field("seq", pa.int64(), nullable=False),
    pa.field("ts_exchange", pa.timestamp("ms", tz="UTC"), nullable=False),
    pa.field("ts_recv", pa.timestamp("ns", tz="UTC"), nullable=False),
    pa.field("line", pa.int64(), nullable=False),
]


def _schema(channel: str, fields: list[pa.Field]) -> pa.Schema:
    return pa.schema(_HEADER + fields, metadata={
        "xcol.channel": channel, "xcol.schema": SCHEMA_VERSION})


#: The fixed schema of each channel's files (see docs/sinks.md for the meaning of fields).
SCHEMAS: dict[str, pa.Schema] = {
    "book": _schema("book", [
        pa.field("snapshot", pa.bool_(), nullable=False),
        pa.field("prev_seq", pa.int64()),
        pa.field("bids", _LEVELS),
        pa.field("asks", _LEVELS),
    ]),
    "top": _schema("top", [pa.field("bids", _LEVELS), pa.field("asks", _LEVELS)]),
    "bbo": _schema("bbo", [
        pa.field("bid", pa.string()), pa.field("bid_qty", pa.string()),
        pa.field("ask", pa.string()), pa.field("ask_qty", pa.string()),
    ]),
    "trades": _schema("trades", [
        pa.field("id", pa.int64()), pa.field("price", pa.string()),
        pa.field("qty", pa.string()), pa.field("side", pa.string()),
    ]),
}

_RAW_LEVELS = pa.list_(pa.list_(pa.string()))
# Every field of every record type: read_json with an explicit schema never infers a type
# from the data (an empty "bids" would otherwise come out as list<null>).
_PARSE_OPTIONS = pj.ParseOptions(explicit_schema=pa.schema([
    ("type", pa.string()), ("exchange", pa.string()), ("symbol", pa.string()),
    ("seq", pa.int64()), ("ts_exchange", pa.int64()), ("ts_recv", pa.int64()),
    ("line", pa.int64()), ("prev_seq", pa.int64()), ("bids", _RAW_LEVELS),
    ("asks", _RAW_LEVELS), ("bid", pa.string()), ("bid_qty", pa.string()),
    ("ask", pa.string()), ("ask_qty", pa.string()), ("id", pa.int64()),
    ("price", pa.string()), ("qty", pa.string()), ("side", pa.string()),
]), unexpected_field_behavior="ignore")
_HEADER_NAMES = ("exchange", "symbol", "seq", "ts_exchange", "ts_recv", "line")
_TYPE_NAMES = pa.array(sorted(CHANNELS))
# Uncompressed: the journal is written once and read only after a crash; lz4 tripled the
# journal's CPU cost for a third of its bytes, and CPU is what the collector is short of.
_WAL_OPTIONS = ipc.IpcWriteOptions(compression=None)
_SUFFIXES = (".parquet", ".parquet.tmp", ".parquet.wal")
_BAD_LOG_EVERY_S = 10.0
_NEVER = 1 << 62


# --------------------------------------------------------------------------- parsing


def _read(data: bytes) -> pa.Table:
    ro = pj.ReadOptions(use_threads=False, block_size=max(len(data) + 1, 1 << 16))
    return pj.read_json(io.BytesIO(data), read_options=ro, parse_options=_PARSE_OPTIONS)


def _levels(col: pa.ChunkedArray) -> pa.Array:
    """``[["price","size"], ...]`` lists → ``list<struct<price, size>>`` (vectorized)."""
    arr = col.combine_chunks()
    flat = pc.list_flatten(arr)
    lens = pc.fill_null(pc.list_value_length(arr), 0)
    offsets = pa.concat_arrays([pa.array([0], pa.int32()),
                                pc.cumulative_sum(lens).cast(pa.int32())])
    st = pa.StructArray.from_arrays([pc.list_element(flat, 0), pc.list_element(flat, 1)],
                                    fields=list(_LEVEL))
    return pa.ListArray.from_arrays(offsets, st, type=_LEVELS, mask=arr.is_null())


def _bad_level_rows(col: pa.ChunkedArray) -> pa.Array | None:
    """Row indices whose levels are not all ``[string, string]`` (None if all are)."""
    arr = col.combine_chunks()
    flat = pc.list_flatten(arr)  # one [price, size] list per level
    if len(flat) == 0:
        return None
    bad = pc.fill_null(pc.not_equal(pc.list_value_length(flat), 2), True)
    values = pc.list_flatten(flat)
    if values.null_count:
        null_levels = pc.list_parent_indices(flat).filter(pc.is_null(values))
        bad = pc.or_(bad, pc.is_in(pa.array(range(len(flat)), pa.int64()),
                                   value_set=null_levels.cast(pa.int64())))
    if not pc.any(bad).as_py():
        return None
    return pc.unique(pc.list_parent_indices(arr).filter(bad))


def _channel_table(channel: str, sub: pa.Table) -> pa.Table:
    cols: list[Any] = [
        sub["exchange"], sub["symbol"], sub["seq"],
        sub["ts_exchange"].cast(pa.timestamp("ms", tz="UTC")),
        sub["ts_recv"].cast(pa.timestamp("ns", tz="UTC")), sub["line"],
    ]
    if channel == "book":
        cols += [pc.equal(sub["type"], "snapshot"), sub["prev_seq"],
                 _levels(sub["bids"]), _levels(sub["asks"])]
    elif channel == "top":
        cols += [_levels(sub["bids"]), _levels(sub["asks"])]
    elif channel == "bbo":
        cols += [sub["bid"], sub["bid_qty"], sub["ask"], sub["ask_qty"]]
    else:
        cols += [sub["id"], sub["price"], sub["qty"], sub["side"]]
    return pa.Table.from_arrays(cols, schema=SCHEMAS[channel])


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _journal_batches(path: Path) -> Iterator[pa.RecordBatch]:
    """Every complete record batch of a journal, in order; stops at a torn tail (raises
    :class:`_Torn` after the last complete batch)."""
    try:
        reader = ipc.open_stream(pa.memory_map(str(path)))
    except (OSError, pa.ArrowInvalid) as exc:  # not even a whole schema: nothing flushed
        raise _Torn(str(exc)) from None
    while True:
        try:
            batch = reader.read_next_batch()
        except StopIteration:
            return
        except (OSError, pa.ArrowInvalid) as exc:
            raise _Torn(str(exc)) from None
        yield batch


class _Torn(Exception):
    """A journal ends in the middle of a message (the crash hit a write)."""


# --------------------------------------------------------------------------- files


@dataclass(eq=False)
class _File:
    """One open output file and the rows it holds in memory."""

    key: tuple[str, str, str, int]  # channel, exchange, symbol, hour (ns // HOUR_NS)
    final: Path
    rel: str
    wal_file: BinaryIO
    wal: ipc.RecordBatchStreamWriter
    pending: list[pa.Table] = field(default_factory=list)  # not yet journaled
    pending_bytes: int = 0
    group: list[pa.Table] = field(default_factory=list)  # journaled, not yet a row group
    group_rows: int = 0
    group_bytes: int = 0
    rows: int = 0
    nbytes: int = 0
    row_groups: int = 0
    last_append_ns: int = 0
    dirty: bool = False  # journal written since its last fsync
    size: int = 0  # Parquet bytes, once renamed to the final name
    dir_synced: bool = False  # the journal's directory entry is durable
    pq_file: BinaryIO | None = None
    writer: pq.ParquetWriter | None = None

    @property
    def tmp(self) -> Path:
        return self.final.with_name(self.final.name + ".tmp")

    @property
    def wal_path(self) -> Path:
        return self.final.with_name(self.final.name + ".wal")

    @property
    def held(self) -> int:
        return self.pending_bytes + self.group_bytes


class _Spool:
    """``{dir}/.spool/``: one JSON marker per closed file not yet uploaded."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.dir = root / ".spool"

    def add(self, rel: str, size: int, rows: int) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        marker = self.dir / (quote(rel, safe="") + ".json")
        tmp = marker.with_name(marker.name + ".tmp")
        with open(tmp, "wb") as fh:
            fh.write(json.dumps({"path": rel, "size": size, "rows": rows}).encode())
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, marker)
        _fsync_dir(self.dir)

    def pending(self) -> list[Path]:
        """Markers, oldest first."""
        try:
            entries = [e for e in os.scandir(self.dir)
                       if e.name.endswith(".json") and e.is_file()]
        except FileNotFoundError:
            return []
        keyed = []
        for e in entries:
            try:
                keyed.append((e.stat().st_mtime_ns, e.name, Path(e.path)))
            except FileNotFoundError:  # uploaded meanwhile
                continue
        keyed.sort()
        return [p for _, _, p in keyed]

    def count(self) -> int:
        try:
            return sum(1 for n in os.listdir(self.dir) if n.endswith(".json"))
        except FileNotFoundError:
            return 0


# --------------------------------------------------------------------------- S3


class UploadError(RuntimeError):
    """An uploaded object did not verify (size, checksum or ETag)."""


@dataclass(eq=False)
class _UploadStats:
    """Upload counters, kept by the sink across uploader threads."""

    ok: int = 0
    failed: int = 0
    bytes: int = 0
    already: int = 0
    failing: bool = False
    last_error: str = ""
    upload_ns: HdrHistogram = field(
        default_factory=lambda: HdrHistogram(1_000, 3_600_000_000_000, 3))


class _Uploader:
    """The upload thread: spool markers → S3 objects, retried with backoff + jitter."""

    def __init__(self, spool: _Spool, stats: _UploadStats, *, bucket: str, endpoint: str,
                 prefix: str, region: str, keep_local: bool, verify_etag: bool,
                 backoff: Backoff, multipart_threshold: int, multipart_chunk: int,
                 name: str) -> None:
        self.spool = spool
        self.stats = stats
        self.bucket = bucket
        self.endpoint = endpoint
        self.prefix = prefix
        self.region = region
        self.keep_local = keep_local
        self.verify_etag = verify_etag
        self.backoff = backoff
        self.multipart_threshold = multipart_threshold
        self.multipart_chunk = multipart_chunk
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._drain = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"xcol-{name}-s3", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def alive(self) -> bool:
        return self._thread.is_alive()

    def notify(self) -> None:
        """A marker was added."""
        self._wake.set()

    def stop(self, timeout: float) -> None:
        """Upload what is spooled for up to ``timeout`` seconds (not at all while S3 is
        failing), then stop; the rest stays in the spool for the next start."""
        self._drain.set()
        self._wake.set()
        self._thread.join(max(0.0, timeout))
        self._stop.set()
        self._wake.set()

    # -- thread ---------------------------------------------------------------------------

    def _client(self) -> Any:
        import boto3
        from botocore.config import Config as BotoConfig

        cfg = BotoConfig(connect_timeout=5, read_timeout=60,
                         retries={"max_attempts": 2, "mode": "standard"})
        return boto3.session.Session().client(
            "s3", endpoint_url=self.endpoint or None, region_name=self.region or None,
            config=cfg)

    def _run(self) -> None:
        client: Any = None
        while not self._stop.is_set():
            self._wake.clear()
            try:
                markers = self.spool.pending()
            except OSError as exc:  # the spool directory itself is unreadable
                self._failed(exc)
                self._drain.wait(self.backoff.next_delay())
                if self._drain.is_set():
                    return
                continue
            if not markers:
                if self._drain.is_set():
                    return
                self._wake.wait(5.0)  # a rescan now and then, besides notify()
                continue
            progressed = failed = False
            for marker in markers:
                if self._stop.is_set():
                    return
                t0 = time.monotonic_ns()
                try:
                    if client is None:
                        client = self._client()
                    done = self._upload(client, marker)
                except Exception as exc:
                    self._failed(exc)
                    failed = True
                    break
                if done:
                    progressed = True
                    self.stats.upload_ns.record(max(1_000, time.monotonic_ns() - t0))
                    if self.stats.failing:
                        self.stats.failing = False
                        log.warning("parquet upload to s3://%s recovered", self.bucket)
                    self.backoff.connected()
            if failed:
                if self._drain.is_set():
                    return  # S3 is down: what is left waits in the spool for the next start
                # Sleep the backoff; a close() cuts it short for one last attempt.
                self._drain.wait(self.backoff.next_delay())
            elif not progressed:
                if self._drain.is_set():
                    return
                self._wake.wait(0.2)  # markers whose files are being renamed right now

    def _failed(self, exc: Exception) -> None:
        st = self.stats
        st.failed += 1
        st.last_error = f"{type(exc).__name__}: {exc}"
        if not st.failing:
            log.warning("parquet upload to s3://%s failed (%s); retrying with backoff, "
                        "the files stay in the spool", self.bucket, st.last_error)
        st.failing = True

    def _key(self, rel: str, n: int) -> str:
        if n:
            stem, dot, ext = rel.rpartition(".")
            rel = f"{stem}~{n}.{ext}" if dot else f"{rel}~{n}"
        return self.prefix + rel

    def _upload(self, client: Any, marker: Path) -> bool:
        """Upload one spooled file; False when it is not ready or gone."""
        try:
            info = json.loads(marker.read_bytes())
        except FileNotFoundError:
            return False  # done by another uploader of this directory meanwhile
        rel: str = info["path"]
        local = self.spool.root / rel
        if not local.exists():
            wal = local.with_name(local.name + ".wal")
            tmp = local.with_name(local.name + ".tmp")
            if wal.exists() or tmp.exists():
                return False  # being closed (marker precedes the rename)
            if not local.exists():
                log.warning("spooled file %s is gone; dropping its upload marker", rel)
                marker.unlink(missing_ok=True)
                return False
        size = local.stat().st_size
        md5, etag = self._digests(local, size)
        # The key may already hold this very file (a crash after the upload) or, with
        # keep_local off, an older file of the same name: then take the next free name.
        n = 0
        while True:
            key = self._key(rel, n)
            head = self._head(client, key)
            if head is None:
                break
            if self._matches(head, size, md5, etag):
                self.stats.already += 1
                self._finish(local, marker, size)
                return True
            n += 1
        if size > self.multipart_threshold:
            self._put_multipart(client, key, local, md5)
        else:
            body = local.read_bytes()
            client.put_object(Bucket=self.bucket, Key=key, Body=body,
                              ContentMD5=base64.b64encode(hashlib.md5(body).digest()).decode(),
                              ContentType="application/vnd.apache.parquet",
                              Metadata={"xcol-md5": md5})
        head = self._head(client, key)
        if head is None or not self._matches(head, size, md5, etag):
            got = None if head is None else (head.get("ContentLength"), head.get("ETag"))
            raise UploadError(f"s3://{self.bucket}/{key} did not verify after upload: "
                              f"expected size {size} etag {etag}, got {got}")
        self._finish(local, marker, size)
        return True

    def _finish(self, local: Path, marker: Path, size: int) -> None:
        if not self.keep_local:
            local.unlink(missing_ok=True)
        marker.unlink(missing_ok=True)
        self.stats.ok += 1
        self.stats.bytes += size

    def _digests(self, local: Path, size: int) -> tuple[str, str]:
        """(MD5 of the file, the ETag S3 will report for our upload of it)."""
        whole = hashlib.md5()
        parts: list[bytes] = []
        with open(local, "rb") as fh:
            while chunk := fh.read(self.multipart_chunk):
                whole.update(chunk)
                parts.append(hashlib.md5(chunk).digest())
        md5 = whole.hexdigest()
        if size > self.multipart_threshold:
            return md5, f"{hashlib.md5(b''.join(parts)).hexdigest()}-{len(parts)}"
        return md5, md5

    def _matches(self, head: dict[str, Any], size: int, md5: str, etag: str) -> bool:
        if head.get("ContentLength") != size:
            return False
        if head.get("Metadata", {}).get("xcol-md5") != md5:
            return False
        return not self.verify_etag or str(head.get("ETag", "")).strip('"') == etag

    def _head(self, client: Any, key: str) -> dict[str, Any] | None:
        from botocore.exceptions import ClientError

        try:
            head: dict[str, Any] = client.head_object(Bucket=self.bucket, Key=key)
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            if code in ("404", "NoSuchKey", "NotFound"):
                return None
            raise
        return head

    def _put_multipart(self, client: Any, key: str, local: Path, md5: str) -> None:
        up = client.create_multipart_upload(
            Bucket=self.bucket, Key=key, ContentType="application/vnd.apache.parquet",
            Metadata={"xcol-md5": md5})
        uid = up["UploadId"]
        try:
            parts = []
            with open(local, "rb") as fh:
                n = 0
                while chunk := fh.read(self.multipart_chunk):
                    n += 1
                    r = client.upload_part(
                        Bucket=self.bucket, Key=key, UploadId=uid, PartNumber=n, Body=chunk,
                        ContentMD5=base64.b64encode(hashlib.md5(chunk).digest()).decode())
                    parts.append({"ETag": r["ETag"], "PartNumber": n})
            client.complete_multipart_upload(Bucket=self.bucket, Key=key, UploadId=uid,
                                             MultipartUpload={"Parts": parts})
        except BaseException:
            with contextlib.suppress(Exception):
                client.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=uid)
            raise


# --------------------------------------------------------------------------- the sink


class ParquetSink(ThreadedSink):
    """Archive records to hourly Parquet files per (exchange, channel, instrument).

    :param dir: root directory (created on open).
    :param max_rows: rotate a file at this many rows (0: no row limit).
    :param max_bytes: rotate a file once its rows hold this many bytes of Arrow data, the
        uncompressed in-memory size (0: no byte limit); the Parquet file is several times
        smaller.
    :param row_group_rows: rows per Parquet row group.
    :param buffer_bytes: Arrow bytes all open files may hold in memory before the largest
        are written out as (smaller) row groups.
    :param compression_level: zstd level.
    :param close_grace_s: a file of hour H is closed once the wall clock is this far past
        the end of H and it got no row for this long.
    :param s3_bucket: upload closed files to this bucket ("" : no upload).
    :param s3_endpoint: S3 endpoint URL ("" : AWS's, from the region).
    :param s3_prefix: key prefix; the key is the prefix plus the path under ``dir``.
    :param s3_region: region ("" : boto's configuration).
    :param keep_local: keep a file after its upload verified.
    :param s3_verify_etag: also compare the ETag with the MD5 (multipart: MD5 of part
        MD5s); turn off for buckets whose ETags are not MD5s (SSE-KMS, SSE-C).
    :param s3_close_timeout_s: at close, keep uploading the spool for up to this long.
    :param s3_backoff: upload retry backoff (default: 0.5 s doubling up to 60 s, full
        jitter, reset by a verified upload).
    :param multipart_threshold: files larger than this are uploaded in parts.
    :param multipart_chunk: part size.
    :param parse_bytes: parse the held raw records once this many bytes are held.
    :param name: metrics label.
    :param clock: wall clock in ns (hour rotation of quiet files).
    """

    def __init__(
        self,
        dir: str | os.PathLike[str],
        *,
        max_rows: int = 10_000_000,
        max_bytes: int = 1024 * 1024 * 1024,
        row_group_rows: int = 100_000,
        buffer_bytes: int = 128 * 1024 * 1024,
        compression_level: int = 3,
        close_grace_s: float = 10.0,
        s3_bucket: str = "",
        s3_endpoint: str = "",
        s3_prefix: str = "",
        s3_region: str = "",
        keep_local: bool = False,
        s3_verify_etag: bool = True,
        s3_close_timeout_s: float = 5.0,
        s3_backoff: Backoff | None = None,
        multipart_threshold: int = 64 * 1024 * 1024,
        multipart_chunk: int = 16 * 1024 * 1024,
        parse_bytes: int = 4 * 1024 * 1024,
        name: str = "parquet",
        clock: Callable[[], int] = time.time_ns,
    ) -> None:
        super().__init__(name)
        if multipart_chunk < 5 * 1024 * 1024:
            raise ValueError("multipart_chunk must be >= 5 MiB (S3's smallest part)")
        self.dir = Path(dir)
        self.max_rows = max_rows
        self.max_bytes = max_bytes
        self.row_group_rows = max(1, row_group_rows)
        self.buffer_bytes = buffer_bytes
        self.compression_level = compression_level
        self.close_grace_ns = int(close_grace_s * 1e9)
        self.s3_bucket = s3_bucket
        self.s3_endpoint = s3_endpoint
        self.s3_prefix = (s3_prefix.strip("/") + "/") if s3_prefix.strip("/") else ""
        self.s3_region = s3_region
        self.keep_local = keep_local
        self.s3_verify_etag = s3_verify_etag
        self.s3_close_timeout_s = s3_close_timeout_s
        self._s3_backoff = s3_backoff
        self.multipart_threshold = multipart_threshold
        self.multipart_chunk = multipart_chunk
        self.parse_bytes = parse_bytes
        self._clock = clock
        self._spool = _Spool(self.dir)
        self._uploader: _Uploader | None = None
        #: Upload counters (all uploader threads of this sink).
        self.uploads = _UploadStats()
        self._files: dict[tuple[str, str, str, int], _File] = {}
        self._raw: list[bytes] = []
        self._raw_bytes = 0
        self._held = 0  # Arrow bytes in memory over all files
        self._next_expiry = _NEVER  # no open file can expire before this (ns)
        self._opened = False
        self._bad_logged_at = 0.0
        self._bad_unlogged = 0
        # counters (see stats())
        self.records = 0
        self.rows = 0
        self.bad_records = 0
        self.last_bad = ""
        self.files_written = 0
        self.rows_written = 0
        self.bytes_written = 0
        self.row_groups = 0
        self.journal_bytes = 0
        self.flushes = 0
        self.recovered_files = 0
        self.recovered_rows = 0
        self.orphan_tmp = 0
        #: Final paths of the files this sink closed, in order.
        self.closed: list[Path] = []
        self.flush_ns = HdrHistogram(1_000, 3_600_000_000_000, 3)

    # -- state ----------------------------------------------------------------------------

    @property
    def healthy(self) -> bool:
        """Open, the last local operation succeeded and none has been running for too
        long (:attr:`stuck`), and the uploader (if any) is not failing."""
        return self._opened and self._ok and not self.stuck and not self.uploads.failing

    @property
    def open_files(self) -> int:
        return len(self._files)

    def histograms(self) -> dict[str, HdrHistogram]:
        """Flush durations (ns), and upload durations (ns) when uploading to S3."""
        out = {"flush_ns": self.flush_ns}
        if self.s3_bucket:
            out["upload_ns"] = self.uploads.upload_ns
        return out

    def stats(self) -> dict[str, Any]:
        """Counters for /metrics: records in, rows routed and bad, files, uploads."""
        p50, p99 = (self.flush_ns.percentiles([50.0, 99.0]) if self.flush_ns.total_count
                    else (0, 0))
        out: dict[str, Any] = {
            "records": self.records, "rows": self.rows, "bad_records": self.bad_records,
            # list() copies the values atomically: the sink thread may be adding files
            "rows_open": sum(f.rows for f in list(self._files.values())),
            "files_open": len(self._files), "files_written": self.files_written,
            "rows_written": self.rows_written, "bytes_written": self.bytes_written,
            "row_groups": self.row_groups, "journal_bytes": self.journal_bytes,
            "held_bytes": self._held, "flushes": self.flushes,
            "flush_ns_p50": p50, "flush_ns_p99": p99,
            "flush_ns_max": self.flush_ns.max() if self.flush_ns.total_count else 0,
            "recovered_files": self.recovered_files, "recovered_rows": self.recovered_rows,
            "orphan_tmp": self.orphan_tmp,
        }
        if self.s3_bucket:
            up = self.uploads
            out.update({
                "uploads_ok": up.ok, "uploads_failed": up.failed,
                "uploads_already_present": up.already, "upload_bytes": up.bytes,
                "uploads_pending": self._spool.count(), "upload_failing": up.failing,
                "last_upload_error": up.last_error,
                "upload_ns_p50": up.upload_ns.value_at_percentile(50.0)
                if up.upload_ns.total_count else 0,
            })
        return out

    # -- async API ------------------------------------------------------------------------

    async def open(self) -> None:
        await self._guard(self._open_sync)
        if self.s3_bucket and (self._uploader is None or not self._uploader.alive()):
            self._uploader = _Uploader(
                self._spool, self.uploads, bucket=self.s3_bucket, endpoint=self.s3_endpoint,
                prefix=self.s3_prefix, region=self.s3_region, keep_local=self.keep_local,
                verify_etag=self.s3_verify_etag,
                # reset_after_s=0: one verified upload starts the next outage from 0.5 s
                backoff=self._s3_backoff or Backoff(0.5, 60.0, 0.0),
                multipart_threshold=self.multipart_threshold,
                multipart_chunk=self.multipart_chunk, name=self.name)
            self._uploader.start()

    async def write(self, batch: bytes, n_records: int) -> None:
        await self._guard(lambda: self._write_sync(batch, n_records))

    async def flush(self) -> None:
        await self._guard(self._flush_sync)

    async def close(self) -> None:
        try:
            if self._opened:
                await self._guard(self._close_sync)
        finally:
            up, self._uploader = self._uploader, None
            if up is not None:
                timeout = self.s3_close_timeout_s
                await self._call(lambda: up.stop(timeout))
            self._shutdown_executor()


    # -- sink thread ----------------------------------------------------------------------

    def _open_sync(self) -> None:
        if self._opened:
            return  # reopened after a failure: the open files carry on
        self.dir.mkdir(parents=True, exist_ok=True)
        self._recover()
        self._opened = True

    def _write_sync(self, batch: bytes, n_records: int) -> None:
        if not self._opened:
            raise RuntimeError(f"parquet sink {self.dir} is not open")
        self._raw.append(batch)
        self._raw_bytes += len(batch)
        if self._raw_bytes >= self.parse_bytes:
            try:
                self._ingest()
            except BaseException:
                # Not taken: the fan-out retries this batch (the held ones stay held).
                if self._raw and self._raw[-1] is batch:
                    self._raw.pop()
                    self._raw_bytes -= len(batch)
                raise
        self.records += n_records
        self._housekeep()

    def _flush_sync(self) -> None:
        if not self._opened:
            return
        t0 = time.monotonic_ns()
        self._ingest()
        for f in self._files.values():
            self._journal(f)
        synced: set[Path] = set()
        for f in self._files.values():
            if f.dirty:
                os.fsync(f.wal_file.fileno())
                f.dirty = False
            if not f.dir_synced:
                # A new journal's name (and the directories made for it) must survive a
                # power loss too: fsync each directory up to the root, once per flush.
                d = f.wal_path.parent
                while d not in synced:
                    _fsync_dir(d)
                    synced.add(d)
                    if d == self.dir or self.dir not in d.parents:
                        break
                    d = d.parent
                f.dir_synced = True
        self._housekeep()
        self.flushes += 1
        self.flush_ns.record(max(1_000, time.monotonic_ns() - t0))

    def _close_sync(self) -> None:
        self._ingest()
        for f in list(self._files.values()):
            self._finish(f)
        self._opened = False

    # -- parsing and routing ----------------------------------------------------------------

    def _ingest(self) -> None:
        if not self._raw:
            return
        data = self._raw[0] if len(self._raw) == 1 else b"".join(self._raw)
        try:
            table = _read(data)
        except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
            table = self._read_slowly(data)
        if table.num_rows:
            # An OSError here leaves the raw records held: the retry routes them again
            # (some rows twice, never none).
            self._route(self._valid(table))
        self._raw.clear()
        self._raw_bytes = 0

    def _bad(self, n: int, why: str) -> None:
        self.bad_records += n
        self.last_bad = why
        now = time.monotonic()
        if now - self._bad_logged_at >= _BAD_LOG_EVERY_S:
            more = f" (+{self._bad_unlogged} more since the last report)" if (
                self._bad_unlogged) else ""
            log.warning("parquet sink %s: skipped %d bad record(s): %s%s", self.name, n,
                        why, more)
            self._bad_logged_at = now
            self._bad_unlogged = 0
        else:
            self._bad_unlogged += n

    def _read_slowly(self, data: bytes) -> pa.Table:
        """Parse a batch that failed as a whole: bisect down to the bad records."""
        lines = [x for x in data.split(b"\n") if x.strip()]
        tables: list[pa.Table] = []

        def parse(part: list[bytes]) -> None:
            try:
                tables.append(_read(b"\n".join(part) + b"\n"))
                return
            except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as exc:
                if len(part) == 1:
                    self._bad(1, f"{str(exc).splitlines()[0]}: {part[0][:120]!r}")
                    return
            mid = len(part) // 2
            parse(part[:mid])
            parse(part[mid:])

        parse(lines)
        if not tables:
            return _PARSE_OPTIONS.explicit_schema.empty_table()
        return pa.concat_tables(tables)

    def _valid(self, t: pa.Table) -> pa.Table:
        ok = pc.is_in(t["type"], value_set=_TYPE_NAMES)
        for name in _HEADER_NAMES:
            ok = pc.and_(ok, pc.is_valid(t[name]))
        ok = pc.fill_null(ok, False)
        good = pc.sum(ok.cast(pa.int64())).as_py() or 0
        if good < t.num_rows:
            first = t.filter(pc.invert(ok)).slice(0, 1).to_pylist()[0]
            shown = {k: v for k, v in first.items() if v is not None}
            self._bad(t.num_rows - good,
                      f"record without a known type or a complete header: {shown}")
            t = t.filter(ok)
        return t

    def _route(self, t: pa.Table) -> None:
        if not t.num_rows:
            return
        enc = pc.dictionary_encode(t["type"]).combine_chunks()
        names: list[str] = enc.dictionary.to_pylist()
        by_channel: dict[str, list[int]] = {}
        for i, nm in enumerate(names):
            by_channel.setdefault(CHANNELS[nm], []).append(i)
        for channel, ids in by_channel.items():
            if len(by_channel) == 1:
                sub = t
            elif len(ids) == 1:
                sub = t.filter(pc.equal(enc.indices, ids[0]))
            else:
                sub = t.filter(pc.is_in(enc.indices, value_set=pa.array(ids, enc.indices.type)))
            if channel in ("book", "top"):
                sub = self._drop_bad_levels(sub)
                if not sub.num_rows:
                    continue
            ct = _channel_table(channel, sub)
            for key, part in self._split(channel, ct, sub["ts_recv"]):
                self._append(key, part)

    def _drop_bad_levels(self, sub: pa.Table) -> pa.Table:
        bad: pa.Array | None = None
        for side in ("bids", "asks"):
            rows = _bad_level_rows(sub[side])
            if rows is not None:
                bad = rows if bad is None else pa.concat_arrays([bad, rows])
        if bad is None:
            return sub
        bad = pc.unique(bad)
        keep = pc.invert(pc.is_in(pa.array(range(sub.num_rows), pa.int64()),
                                  value_set=bad.cast(pa.int64())))
        first = sub.take([bad[0].as_py()]).select(["type", "exchange", "symbol", "seq"])
        self._bad(len(bad), f"malformed book levels: {first.to_pylist()[0]}")
        return sub.filter(keep)

    def _split(self, channel: str, ct: pa.Table, ts_recv: pa.ChunkedArray
               ) -> Iterator[tuple[tuple[str, str, str, int], pa.Table]]:
        """Yield ((channel, exchange, symbol, hour), rows) in record order per key."""
        hour = pc.divide(ts_recv.combine_chunks(), HOUR_NS)  # int64 floor for ts >= 0
        h0 = pc.min(hour).as_py()
        h1 = pc.max(hour).as_py()
        ex = pc.dictionary_encode(ct["exchange"]).combine_chunks()
        sy = pc.dictionary_encode(ct["symbol"]).combine_chunks()
        exs: list[str] = ex.dictionary.to_pylist()
        sys_: list[str] = sy.dictionary.to_pylist()
        if h0 == h1 and len(exs) == 1 and len(sys_) == 1:
            yield (channel, exs[0], sys_[0], h0), ct
            return
        span = h1 - h0 + 1
        key = pc.add(pc.multiply(pc.add(pc.multiply(ex.indices.cast(pa.int64()), len(sys_)),
                                        sy.indices.cast(pa.int64())), span),
                     pc.subtract(hour, h0))
        order = pc.sort_indices(key)  # stable: record order within a key
        skey = key.take(order)
        st = ct.take(order)
        counts = pc.value_counts(skey)  # first-appearance order == sorted order
        start = 0
        for k, n in zip(counts.field("values").to_pylist(), counts.field("counts").to_pylist(),
                        strict=True):
            h = k % span + h0
            es, s_i = divmod(k // span, len(sys_))
            yield (channel, exs[es], sys_[s_i], h), st.slice(start, n)
            start += n

    def _append(self, key: tuple[str, str, str, int], part: pa.Table) -> None:
        now = self._clock()
        f = self._files.get(key)
        while part.num_rows:
            if f is not None and ((self.max_rows and f.rows >= self.max_rows)
                                  or (self.max_bytes and f.nbytes >= self.max_bytes)):
                self._finish(f)
                f = None
            if f is None:
                f = self._new_file(key, part["seq"][0].as_py())
            room = self.max_rows - f.rows if self.max_rows else part.num_rows
            take = part if part.num_rows <= room else part.slice(0, room)
            part = part.slice(take.num_rows)
            nb = take.nbytes
            f.pending.append(take)
            f.pending_bytes += nb
            f.rows += take.num_rows
            f.nbytes += nb
            f.last_append_ns = now
            self.rows += take.num_rows
            self._held += nb

    # -- files ------------------------------------------------------------------------------

    def _new_file(self, key: tuple[str, str, str, int], first_seq: int) -> _File:
        channel, exchange, symbol, hour = key
        when = datetime.fromtimestamp(hour * 3600, UTC)
        rel_dir = (f"{exchange}/{channel}/{quote(symbol, safe='')}/"
                   f"{when:%Y-%m-%d}")
        d = self.dir / rel_dir
        d.mkdir(parents=True, exist_ok=True)
        stem = f"{when:%H}-{first_seq}"
        n = 0
        while True:
            name = stem if n == 0 else f"{stem}-{n}"
            if not any((d / (name + s)).exists() for s in _SUFFIXES):
                try:
                    wal_file = open(d / (name + ".parquet.wal"), "xb", buffering=0)  # noqa: SIM115
                except FileExistsError:
                    n += 1
                    continue
                break
            n += 1
        schema = SCHEMAS[channel]
        try:
            wal = ipc.new_stream(wal_file, schema, options=_WAL_OPTIONS)
        except BaseException:
            wal_file.close()
            raise
        f = _File(key=key, final=d / (name + ".parquet"), rel=f"{rel_dir}/{name}.parquet",
                  wal_file=wal_file, wal=wal)
        f.dirty = True
        self._files[key] = f
        self._next_expiry = min(self._next_expiry, self._expiry(f))
        return f

    def _expiry(self, f: _File) -> int:
        return (f.key[3] + 1) * HOUR_NS + self.close_grace_ns

    def _journal(self, f: _File) -> None:
        """Pending rows → one record batch in the journal, then kept for the row group."""
        if not f.pending:
            return
        t = f.pending[0] if len(f.pending) == 1 else pa.concat_tables(f.pending)
        t = t.combine_chunks()
        before = f.wal_file.tell()
        f.wal.write_table(t)
        self.journal_bytes += f.wal_file.tell() - before
        f.dirty = True
        f.group.append(t)
        f.group_rows += t.num_rows
        f.group_bytes += f.pending_bytes
        f.pending = []
        f.pending_bytes = 0
        if f.group_rows >= self.row_group_rows:
            self._write_group(f)

    def _write_group(self, f: _File) -> None:
        tables = f.group + f.pending
        if not tables:
            return
        if f.writer is None:
            f.pq_file = open(f.tmp, "wb")  # noqa: SIM115
            f.writer = pq.ParquetWriter(
                f.pq_file, SCHEMAS[f.key[0]], compression="zstd",
                compression_level=self.compression_level)
        t = tables[0] if len(tables) == 1 else pa.concat_tables(tables)
        f.writer.write_table(t, row_group_size=self.row_group_rows)
        f.row_groups += -(-t.num_rows // self.row_group_rows)
        self._held -= f.held
        f.group, f.pending = [], []
        f.group_rows = f.group_bytes = f.pending_bytes = 0

    def _finish(self, f: _File) -> None:
        """Close one file: last row group, footer, fsync, marker, rename, drop journal.
        Each step is skipped when a previous, failed attempt already did it."""
        self._write_group(f)
        if f.writer is not None and f.pq_file is not None:
            f.writer.close()
            f.pq_file.flush()
            os.fsync(f.pq_file.fileno())
            f.pq_file.close()
            f.writer = f.pq_file = None
        if not f.size:
            size = f.tmp.stat().st_size
            if self.s3_bucket:
                self._spool.add(f.rel, size, f.rows)
            os.rename(f.tmp, f.final)
            f.size = size
            _fsync_dir(f.final.parent)
        with contextlib.suppress(Exception):
            f.wal.close()
        f.wal_file.close()
        f.wal_path.unlink(missing_ok=True)
        del self._files[f.key]
        self.files_written += 1
        self.rows_written += f.rows
        self.bytes_written += f.size
        self.row_groups += f.row_groups
        self.closed.append(f.final)
        if self._uploader is not None:
            self._uploader.notify()

    def _housekeep(self) -> None:
        if self._held > self.buffer_bytes:
            # Over the memory budget: write the biggest holders out as row groups.
            for f in sorted(self._files.values(), key=lambda x: x.held, reverse=True):
                self._journal(f)
                self._write_group(f)
                if self._held <= self.buffer_bytes // 2:
                    break
        if not self._files:
            return
        now = self._clock()
        if now < self._next_expiry:
            return
        nxt = _NEVER
        for f in list(self._files.values()):
            exp = self._expiry(f)
            if now >= exp and now - f.last_append_ns >= self.close_grace_ns:
                self._finish(f)
            else:
                nxt = min(nxt, max(exp, f.last_append_ns + self.close_grace_ns))
        self._next_expiry = nxt

    # -- recovery ---------------------------------------------------------------------------

    def _recover(self) -> None:
        """Turn the journals a crash left behind into Parquet files (every complete
        batch); remove stale temporaries."""
        live = {f.wal_path for f in self._files.values()}
        for wal in sorted(self.dir.rglob("*.parquet.wal")):
            if wal in live:
                continue
            final = wal.with_name(wal.name[: -len(".wal")])
            tmp = final.with_name(final.name + ".tmp")
            if final.exists():  # crashed after the rename: the file is complete
                tmp.unlink(missing_ok=True)
                wal.unlink()
                continue
            rows, torn = self._rebuild(wal, tmp)
            if rows == 0:
                tmp.unlink(missing_ok=True)
                wal.unlink()
                continue
            size = tmp.stat().st_size
            if self.s3_bucket:
                self._spool.add(final.relative_to(self.dir).as_posix(), size, rows)
            os.rename(tmp, final)
            _fsync_dir(final.parent)
            wal.unlink()
            self.recovered_files += 1
            self.recovered_rows += rows
            log.warning("parquet sink %s: recovered %d rows of %s from its journal%s",
                        self.name, rows, final, " (torn tail dropped)" if torn else "")
        for tmp in self.dir.rglob("*.parquet.tmp"):
            if tmp.with_name(tmp.name[: -len(".tmp")] + ".wal") in live:
                continue
            final = tmp.with_name(tmp.name[: -len(".tmp")])
            if final.exists():
                tmp.unlink()
            else:
                self.orphan_tmp += 1
                log.warning("parquet sink %s: %s has no journal; left in place", self.name,
                            tmp)

    def _rebuild(self, wal: Path, tmp: Path) -> tuple[int, bool]:
        """Write a journal's complete batches to ``tmp`` as Parquet (fsynced); returns
        (rows, torn).  Streams: at most one row group is held in memory."""
        rows = 0
        torn = False
        held: list[pa.RecordBatch] = []
        held_rows = 0
        fh: BinaryIO | None = None
        writer: pq.ParquetWriter | None = None
        batches = _journal_batches(wal)
        try:
            while True:
                try:
                    batch = next(batches)
                except StopIteration:
                    batch = None
                except _Torn:
                    torn, batch = True, None
                if batch is not None and batch.num_rows:
                    held.append(batch)
                    held_rows += batch.num_rows
                if held and (batch is None or held_rows >= self.row_group_rows):
                    if writer is None:
                        fh = open(tmp, "wb")  # noqa: SIM115
                        writer = pq.ParquetWriter(fh, held[0].schema, compression="zstd",
                                                  compression_level=self.compression_level)
                    writer.write_table(pa.Table.from_batches(held),
                                       row_group_size=self.row_group_rows)
                    rows += held_rows
                    held, held_rows = [], 0
                if batch is None:
                    break
            if writer is not None and fh is not None:
                writer.close()
                writer = None
                fh.flush()
                os.fsync(fh.fileno())
        finally:
            if writer is not None:
                with contextlib.suppress(Exception):
                    writer.close()
            if fh is not None:
                fh.close()
        return rows, torn
