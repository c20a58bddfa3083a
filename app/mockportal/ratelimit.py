"""A token bucket per ``dstcode`` (contract §7)."""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(slots=True)
class _Bucket:
    tokens: float
    updated: float


class RateLimiter:
    """``rate`` requests per second with bursts of ``burst``. Time is passed in (monotonic
    seconds) so that the limiter is deterministic under test."""

    def __init__(self, rate: float = 50.0, burst: int = 100) -> None:
        self.configure(rate, burst)
        self._buckets: dict[str, _Bucket] = {}

    def configure(self, rate: float, burst: int) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("rate must be > 0 and burst ≥ 1")
        self.rate = rate
        self.burst = burst

    def reset(self) -> None:
        self._buckets.clear()

    def acquire(self, key: str, now: float) -> float | None:
        """Take a token; ``None`` when allowed, else the seconds until one is available."""
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = _Bucket(float(self.burst), now)
        bucket.tokens = min(self.burst, bucket.tokens + (now - bucket.updated) * self.rate)
        bucket.updated = now
        if bucket.tokens >= 1:
            bucket.tokens -= 1
            return None
        return (1 - bucket.tokens) / self.rate


def retry_after_header(seconds: float) -> str:
    """``Retry-After`` in whole seconds, rounded up (never 0: "now" invites a hot loop)."""
    return str(max(1, math.ceil(seconds)))
