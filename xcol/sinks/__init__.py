"""Sinks: where serialized records go (see docs/sinks.md)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from xcol.sinks.base import Sink, ThreadedSink
from xcol.sinks.jsonl import JsonlSink
from xcol.sinks.stdout import StdoutSink

if TYPE_CHECKING:
    from xcol.config import SinksConfig
    from xcol.fanout import QueueSpec

__all__ = ["JsonlSink", "Sink", "StdoutSink", "ThreadedSink", "build_sinks"]


def build_sinks(cfg: SinksConfig) -> list[tuple[Sink, QueueSpec]]:
    """The enabled sinks of ``[sinks]`` with their queue specs, ready for
    :meth:`xcol.fanout.FanOut.add_sink`."""
    from xcol.config import JsonlSinkConfig, ParquetSinkConfig

    out: list[tuple[Sink, QueueSpec]] = []
    for name, sc in cfg.enabled():
        spec = sc.queue_spec()
        sink: Sink
        if isinstance(sc, JsonlSinkConfig):
            sink = JsonlSink(sc.path, max_bytes=sc.max_bytes, max_age_s=sc.max_age_s,
                             keep=sc.keep, naming=sc.naming, fsync=sc.fsync, name=name)
        elif isinstance(sc, ParquetSinkConfig):
            from xcol.sinks.parquet import ParquetSink  # pyarrow only when configured

            sink = ParquetSink(
                sc.dir, max_rows=sc.max_rows, max_bytes=sc.max_bytes,
                row_group_rows=sc.row_group_rows, buffer_bytes=sc.buffer_bytes,
                compression_level=sc.compression_level, close_grace_s=sc.close_grace_s,
                s3_bucket=sc.s3_bucket, s3_endpoint=sc.s3_endpoint, s3_prefix=sc.s3_prefix,
                s3_region=sc.s3_region, keep_local=sc.keep_local,
                s3_verify_etag=sc.s3_verify_etag, s3_close_timeout_s=sc.s3_close_timeout_s,
                name=name)
        else:
            sink = StdoutSink(name=name)
        out.append((sink, spec))
    return out
