"""Networking control plane: connections, reconnect policy, rate limits."""

from xcol.net.backoff import Backoff, TokenBucket, WindowLimiter
from xcol.net.pacing import ConnectLimit, Outbox, WaitStats

__all__ = ["Backoff", "ConnectLimit", "Outbox", "TokenBucket", "WaitStats", "WindowLimiter"]
