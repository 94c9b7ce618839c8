"""Networking control plane: connections, reconnect policy, rate limits."""

from xcol.net.backoff import Backoff, TokenBucket, WindowLimiter

__all__ = ["Backoff", "TokenBucket", "WindowLimiter"]
