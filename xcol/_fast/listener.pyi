"""Type stubs for xcol._fast.listener (Cython)."""

from collections.abc import Callable
from typing import Any

from picows import WSListener

from xcol._fast.engine import Engine

def monotonic_ns() -> int: ...

class FeedListener(WSListener):
    line: int
    want_control: bool
    transport: Any
    frames: int
    errors: int
    other_frames: int
    last_rx: int
    def __init__(
        self,
        engine: Engine,
        line: int,
        on_batch: Callable[[bytes, int], None],
        on_control: Callable[[int, bytes], None] | None = ...,
        on_event: Callable[[int, str], None] | None = ...,
    ) -> None: ...
    def flush(self) -> None: ...
