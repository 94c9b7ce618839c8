"""Type stubs for xcol._fast.meta (Cython)."""

MIN_SCALE: int
MAX_SCALE: int
VENUE_NAMES: dict[int, str]

#: ``(symbol, price_scale, qty_scale, tick, lot, contract_value)``; tick, lot and
#: contract value are the exchange's exact text.
MetaRow = tuple[str, int, int, str, str, str | None]

class MetadataError(ValueError): ...

def parse_body(
    body: bytes | bytearray | memoryview | str, venue: str = ...
) -> tuple[str, list[MetaRow], int]: ...
def _decimals(text: bytes) -> int: ...
