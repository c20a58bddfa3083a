"""The portal's token bucket per unit (contract §7), shared by the two sides of it: the
mock portal refuses what exceeds it, the service's portal client paces itself under it.
Time is passed in (monotonic seconds), so the buckets are deterministic under test."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class _Bucket:
    tokens: float
    updated: float


class RateLimiter:
    """``rate`` requests per second with bursts of ``burst``, one bucket per key."""

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

    def _refilled(self, key: str, now: float) -> _Bucket:
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = _Bucket(float(self.burst), now)
        bucket.tokens = min(self.burst, bucket.tokens + (now - bucket.updated) * self.rate)
        bucket.updated = now
        return bucket

    def acquire(self, key: str, now: float) -> float | None:
        """Take a token; ``None`` when allowed, else the seconds until one is available
        (nothing is taken then: the portal's side, which refuses the request)."""
        bucket = self._refilled(key, now)
        if bucket.tokens >= 1:
            bucket.tokens -= 1
            return None
        return (1 - bucket.tokens) / self.rate

    def reserve(self, key: str, now: float) -> float:
        """Take a token, in advance if there is none: the seconds to wait before sending
        (0: at once). The client's side: callers that come while the bucket is empty
        queue up in the order they came, each ``1 / rate`` after the one before."""
        bucket = self._refilled(key, now)
        bucket.tokens -= 1
        return 0.0 if bucket.tokens >= 0 else -bucket.tokens / self.rate

    def refund(self, key: str) -> None:
        """Give back a token :meth:`reserve` took for a request that was not sent after
        all (never above the burst)."""
        bucket = self._buckets.get(key)
        if bucket is not None:
            bucket.tokens = min(self.burst, bucket.tokens + 1)
