"""Exchange-specific control-plane code: instrument metadata, URLs, snapshots."""

from xcol.exchanges.meta import (
    InstrumentMeta,
    MetadataError,
    decimals,
    parse_binance_exchange_info,
    parse_deribit_instruments,
    parse_instruments,
    parse_okx_instruments,
    read_metadata_file,
)

__all__ = [
    "InstrumentMeta",
    "MetadataError",
    "decimals",
    "parse_binance_exchange_info",
    "parse_deribit_instruments",
    "parse_instruments",
    "parse_okx_instruments",
    "read_metadata_file",
]
