"""Type stubs for xcol._fast.shm (Cython)."""

import os
from typing import Any, final

MAGIC: bytes
VERSION: int
HEADER_SIZE: int
SLOT_HEADER: int
STATE_NAMES: tuple[str, ...]
MIN_SLOTS: int
MAX_SLOTS: int
MIN_SLOT_SIZE: int
MAX_SLOT_SIZE: int

class RingError(Exception): ...
class RingNotFoundError(RingError, FileNotFoundError): ...

def check_geometry(slot_size: int, slots: int) -> None: ...
def parse_header(path: str, data: bytes, file_size: int) -> dict[str, Any]: ...
def ring_info(path: str | os.PathLike[str]) -> dict[str, Any]: ...

@final
class RingWriter:
    path: str
    slot_size: int
    slots: int
    payload: int
    max_record: int
    generation: int
    unlink_on_close: bool
    cursor: int
    records: int
    too_large: int
    bytes_written: int
    batches: int
    def __init__(
        self,
        path: str | os.PathLike[str],
        slot_size: int = 512,
        slots: int = 65536,
        unlink_on_close: bool = False,
    ) -> None: ...
    @property
    def is_open(self) -> bool: ...
    def write(self, batch: bytes) -> int: ...
    def close(self) -> None: ...
    def _test_write_torn(self, rec: bytes, complete_parts: int, leave_odd: bool) -> None: ...
    def _test_die(self) -> None: ...

class RingReader:
    path: str
    slot_size: int
    slots: int
    payload: int
    max_record: int
    generation: int
    inode: int
    slack: int
    position: int
    last_record: int
    records: int
    bytes_read: int
    overruns: int
    lost: int
    abandoned: int
    restarts: int
    def __init__(self, path: str | os.PathLike[str], start: str = "latest") -> None: ...
    def _attach(self, path: str | os.PathLike[str], start: str = "latest") -> None: ...
    def next(self) -> bytes | None: ...
    def read_batch(self, max_records: int = 1024) -> list[bytes]: ...
    def read_numbered(self, max_records: int = 1024) -> list[tuple[int, bytes]]: ...
    @property
    def cursor(self) -> int: ...
    @property
    def lag(self) -> int: ...
    @property
    def writer_records(self) -> int: ...
    @property
    def writer_state(self) -> str: ...
    @property
    def writer_pid(self) -> int: ...
    @property
    def closed(self) -> bool: ...
    def stats(self) -> dict[str, Any]: ...
    def close(self) -> None: ...
