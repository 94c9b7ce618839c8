"""Process runtime: event loop, CPU pinning, GC policy, real-time scheduling.

Everything here runs once at start-up (and once after the warm-up, for ``gc.freeze()``),
never per message.  :class:`RuntimeState` records what was actually applied so ``/stats``
can show it: a requested setting that the OS refused is reported, not hidden.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import sys
from collections.abc import Coroutine, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

from xcol.config import ConfigError, GcConfig, RuntimeConfig

__all__ = [
    "RuntimeState",
    "apply_gc_policy",
    "apply_runtime",
    "freeze_gc",
    "install_uvloop",
    "pin_cpus",
    "run",
    "set_realtime",
]

log = logging.getLogger("xcol.runtime")

T = TypeVar("T")


@dataclass
class RuntimeState:
    """What :func:`apply_runtime` (and the later warm-up) applied."""

    loop: str = "asyncio"
    cpu_affinity_requested: tuple[int, ...] = ()
    cpu_affinity: tuple[int, ...] = ()
    gc_mode: str = "default"
    gc_thresholds: tuple[int, int, int] = (0, 0, 0)
    gc_enabled: bool = True
    gc_frozen_objects: int = 0
    gc_frozen: bool = False
    realtime_requested: bool = False
    realtime: bool = False
    realtime_priority: int = 0
    warnings: list[str] = field(default_factory=list)

    def report(self) -> dict[str, Any]:
        """JSON-ready summary for ``/stats``."""
        th = gc.get_threshold()
        return {
            "python": sys.version.split()[0],
            "loop": self.loop,
            "cpu_affinity": {"requested": list(self.cpu_affinity_requested),
                             "applied": list(self.cpu_affinity)},
            "gc": {"mode": self.gc_mode, "enabled": gc.isenabled(),
                   "thresholds": [th[0], th[1], th[2]], "frozen": self.gc_frozen,
                   "frozen_objects": gc.get_freeze_count()},
            "realtime": {"requested": self.realtime_requested, "applied": self.realtime,
                         "priority": self.realtime_priority},
            "warnings": list(self.warnings),
        }


def install_uvloop() -> bool:
    """Make uvloop the event loop policy; ``False`` (with a warning) if unavailable."""
    try:
        import uvloop
    except ImportError:
        log.warning("uvloop is not installed; using the default asyncio loop")
        return False
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    return True


def run(main: Coroutine[Any, Any, T], *, use_uvloop: bool = True) -> T:
    """Run ``main`` to completion on uvloop (when available and asked for)."""
    if use_uvloop:
        try:
            import uvloop
        except ImportError:
            log.warning("uvloop is not installed; using the default asyncio loop")
        else:
            return uvloop.run(main)
    return asyncio.run(main)


def _available_cpus() -> set[int]:
    try:
        return set(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return set(range(os.cpu_count() or 1))


#: CPUs the process could use before pinning, and the ones the collector was pinned to
_ALL_CPUS: set[int] = set()
_HOT_CPUS: set[int] = set()


def helper_cpus() -> set[int] | None:
    """CPUs for helper threads (sink writers, client libraries' threads): the CPUs the
    process could use minus the collector's pinned ones; None when nothing was pinned or
    nothing is left (then helpers share the collector's CPUs)."""
    rest = _ALL_CPUS - _HOT_CPUS
    return rest if _HOT_CPUS and rest else None


@contextlib.contextmanager
def off_hot_cpus() -> Iterator[None]:
    """Threads started inside this block (a client library's, a thread pool's) start on
    :func:`helper_cpus`, so they do not preempt the pinned event-loop thread."""
    cpus = helper_cpus()
    if cpus is None or not hasattr(os, "sched_setaffinity"):
        yield
        return
    old = os.sched_getaffinity(0)
    os.sched_setaffinity(0, cpus)
    try:
        yield
    finally:
        os.sched_setaffinity(0, old)


def move_thread_off_hot_cpus() -> None:
    """Move the calling thread to :func:`helper_cpus` (a thread pool initializer)."""
    cpus = helper_cpus()
    if cpus is not None and hasattr(os, "sched_setaffinity"):
        with contextlib.suppress(OSError):
            os.sched_setaffinity(0, cpus)


def pin_cpus(cpus: Iterable[int]) -> tuple[int, ...]:
    """Pin this process to ``cpus`` (no-op when empty); returns the resulting affinity.

    :raises ConfigError: (``runtime.cpu_affinity``) when a CPU id does not exist or is not
        available to this process (cgroups, taskset).
    """
    want = tuple(cpus)
    if not want:
        return tuple(sorted(_available_cpus()))
    have = _available_cpus()
    missing = [c for c in want if c not in have]
    if missing:
        raise ConfigError("runtime.cpu_affinity", f"CPU {missing[0]} is not available "
                          f"(this process may use CPUs {_ranges(sorted(have))})")
    if not hasattr(os, "sched_setaffinity"):
        raise ConfigError("runtime.cpu_affinity", "CPU pinning is not supported on this OS")
    try:
        os.sched_setaffinity(0, set(want))
    except OSError as exc:
        raise ConfigError("runtime.cpu_affinity", f"sched_setaffinity failed: {exc}") from None
    _ALL_CPUS.clear()
    _ALL_CPUS.update(have)
    _HOT_CPUS.clear()
    _HOT_CPUS.update(want)
    return tuple(sorted(os.sched_getaffinity(0)))


def _ranges(ids: list[int]) -> str:
    out: list[str] = []
    i = 0
    while i < len(ids):
        j = i
        while j + 1 < len(ids) and ids[j + 1] == ids[j] + 1:
            j += 1
        out.append(str(ids[i]) if i == j else f"{ids[i]}-{ids[j]}")
        i = j + 1
    return ",".join(out) or "none"


def apply_gc_policy(cfg: GcConfig) -> None:
    """Apply thresholds (and ``gc.disable()`` in mode ``disable``); freezing comes later,
    from :func:`freeze_gc`, once start-up garbage is gone."""
    if cfg.mode == "default":
        return
    gc.set_threshold(*cfg.thresholds)
    if cfg.mode == "disable":
        gc.disable()


def freeze_gc(state: RuntimeState | None = None) -> int:
    """Collect, then move every surviving object to the permanent generation, so later
    collections never scan start-up state (config, metadata, books).  Returns the frozen
    object count."""
    gc.collect()
    gc.freeze()
    n = gc.get_freeze_count()
    if state is not None:
        state.gc_frozen = True
        state.gc_frozen_objects = n
    log.info("gc: froze %d objects after warm-up", n)
    return n


_realtime_warned = False


def set_realtime(priority: int, state: RuntimeState | None = None) -> bool:
    """Switch this process to SCHED_FIFO at ``priority``.  Without the privilege
    (CAP_SYS_NICE / RLIMIT_RTPRIO) a warning is logged once and ``False`` returned."""
    global _realtime_warned
    try:
        param = os.sched_param(priority)
        os.sched_setscheduler(0, os.SCHED_FIFO, param)
    except (PermissionError, AttributeError, OSError) as exc:
        msg = f"real-time scheduling (SCHED_FIFO {priority}) not applied: {exc}"
        if state is not None and msg not in state.warnings:
            state.warnings.append(msg)
        if not _realtime_warned:
            _realtime_warned = True
            log.warning("%s", msg)
        return False
    if state is not None:
        state.realtime = True
        state.realtime_priority = priority
    return True


def apply_runtime(
    cfg: RuntimeConfig,
    loop: asyncio.AbstractEventLoop | None = None,
    *,
    uvloop: bool = True,
) -> RuntimeState:
    """Apply ``[runtime]``: uvloop policy (when no ``loop`` is given yet), CPU pinning, GC
    thresholds, SCHED_FIFO.  With a running ``loop``, ``gc.freeze()`` is scheduled after
    ``gc.warmup_s``.  Call it before creating the loop so the policy applies.

    :raises ConfigError: for a CPU id that does not exist.
    """
    state = RuntimeState(cpu_affinity_requested=cfg.cpu_affinity,
                         realtime_requested=cfg.realtime, gc_mode=cfg.gc.mode)
    if loop is None and uvloop:
        state.loop = "uvloop" if install_uvloop() else "asyncio"
    elif loop is not None:
        state.loop = type(loop).__module__.split(".")[0]
    state.cpu_affinity = pin_cpus(cfg.cpu_affinity)
    apply_gc_policy(cfg.gc)
    th = gc.get_threshold()
    state.gc_thresholds = (th[0], th[1], th[2])
    state.gc_enabled = gc.isenabled()
    if cfg.realtime:
        set_realtime(cfg.realtime_priority, state)
    if loop is not None and cfg.gc.mode != "default":
        loop.call_later(cfg.gc.warmup_s, freeze_gc, state)
    return state
