"""Sinks: where serialized records go (see docs/sinks.md).

Sinks with heavy client libraries (Kafka, Parquet, PostgreSQL...) are imported only when
configured: ``build_sinks`` imports each sink module on first use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from xcol.sinks.base import Sink, ThreadedSink
from xcol.sinks.jsonl import JsonlSink
from xcol.sinks.stdout import StdoutSink

if TYPE_CHECKING:
    from xcol.config import SinksConfig
    from xcol.fanout import QueueSpec

__all__ = ["IlpSink", "JsonlSink", "KafkaSink", "ParquetSink", "PostgresSink", "RedisSink",
           "ShmSink", "Sink",
           "StdoutSink", "ThreadedSink", "build_sinks"]

#: class name -> module, for the sinks imported lazily
_LAZY = {"IlpSink": "xcol.sinks.ilp", "ShmSink": "xcol.sinks.shm",
         "ParquetSink": "xcol.sinks.parquet", "KafkaSink": "xcol.sinks.kafka",
         "PostgresSink": "xcol.sinks.postgres", "RedisSink": "xcol.sinks.redis"}


def __getattr__(name: str) -> Any:
    mod = _LAZY.get(name)
    if mod is None:
        raise AttributeError(f"module 'xcol.sinks' has no attribute {name!r}")
    return getattr(importlib.import_module(mod), name)


def build_sinks(cfg: SinksConfig) -> list[tuple[Sink, QueueSpec]]:
    """The enabled sinks of ``[sinks]`` with their queue specs, ready for
    :meth:`xcol.fanout.FanOut.add_sink`."""
    from xcol import config as c

    out: list[tuple[Sink, QueueSpec]] = []
    for name, sc in cfg.enabled():
        spec = sc.queue_spec()
        sink: Sink
        if isinstance(sc, c.JsonlSinkConfig):
            sink = JsonlSink(sc.path, max_bytes=sc.max_bytes, max_age_s=sc.max_age_s,
                             keep=sc.keep, naming=sc.naming, fsync=sc.fsync, name=name)
        elif isinstance(sc, c.ShmSinkConfig):
            from xcol.sinks.shm import ShmSink

            sink = ShmSink(sc.name, dir=sc.dir, slots=sc.slots, slot_size=sc.slot_size,
                           unlink_on_close=sc.unlink_on_close, name=name)
        elif isinstance(sc, c.IlpSinkConfig):
            from xcol.sinks.ilp import IlpSink

            sink = IlpSink(sc.url, name=name, types=sc.types, prefix=sc.measurement_prefix,
                           timestamp=sc.timestamp, decimals=sc.decimals,
                           top_layout=sc.top_layout, unique_timestamps=sc.unique_timestamps,
                           timeout_s=sc.timeout_s, tcp_buffer_bytes=sc.tcp_buffer_bytes,
                           replay_bytes=sc.replay_bytes)
        elif isinstance(sc, c.ParquetSinkConfig):
            from xcol.sinks.parquet import ParquetSink  # pyarrow only when configured

            sink = ParquetSink(
                sc.dir, max_rows=sc.max_rows, max_bytes=sc.max_bytes,
                row_group_rows=sc.row_group_rows, buffer_bytes=sc.buffer_bytes,
                compression_level=sc.compression_level, close_grace_s=sc.close_grace_s,
                s3_bucket=sc.s3_bucket, s3_endpoint=sc.s3_endpoint, s3_prefix=sc.s3_prefix,
                s3_region=sc.s3_region, keep_local=sc.keep_local,
                s3_verify_etag=sc.s3_verify_etag, s3_close_timeout_s=sc.s3_close_timeout_s,
                name=name)
        elif isinstance(sc, c.KafkaSinkConfig):
            from xcol.sinks.kafka import KafkaSink  # confluent-kafka only when configured

            sink = KafkaSink(sc.bootstrap, topic=sc.topic, key=sc.key,
                             properties=sc.properties, flush_timeout_s=sc.flush_timeout_s,
                             queue_full_timeout_s=sc.queue_full_timeout_s, name=name)
        elif isinstance(sc, c.PostgresSinkConfig):
            from xcol.sinks.postgres import PostgresSink

            sink = PostgresSink(sc.dsn, schema=sc.schema, table_prefix=sc.table_prefix,
                                statement_timeout_s=sc.statement_timeout_s,
                                connect_timeout_s=sc.connect_timeout_s,
                                book_deltas=sc.book_deltas, name=name)
        elif isinstance(sc, c.RedisSinkConfig):
            from xcol.sinks.redis import RedisSink

            sink = RedisSink.from_config(sc, name)
        elif isinstance(sc, c.StdoutSinkConfig):
            sink = StdoutSink(name=name)
        else:
            raise ValueError(f"sinks.{name}: no sink implements {type(sc).__name__}")
        out.append((sink, spec))
    return out
