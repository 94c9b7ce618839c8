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
    from xcol.config import JsonlSinkConfig, RedisSinkConfig

    out: list[tuple[Sink, QueueSpec]] = []
    for name, sc in cfg.enabled():
        spec = sc.queue_spec()
        sink: Sink
        if isinstance(sc, JsonlSinkConfig):
            sink = JsonlSink(sc.path, max_bytes=sc.max_bytes, max_age_s=sc.max_age_s,
                             keep=sc.keep, naming=sc.naming, fsync=sc.fsync, name=name)
        elif isinstance(sc, RedisSinkConfig):
            from xcol.sinks.redis import RedisSink

            sink = RedisSink.from_config(sc, name)
        else:
            sink = StdoutSink(name=name)
        out.append((sink, spec))
    return out
