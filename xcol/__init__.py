"""xcol: a low-latency crypto market-data collector."""
__version__ = "0.1.0"
__all__ = ["__version__"]
