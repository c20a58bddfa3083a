"""The portal's token bucket (contract §7), as the mock refuses by it and the client
paces itself by it."""

from __future__ import annotations

import pytest

from app.domain.ratelimit import RateLimiter


def test_acquire_allows_a_burst_then_refuses_until_a_token_has_dripped_in() -> None:
    limiter = RateLimiter(rate=10, burst=3)
    assert [limiter.acquire("u", 0.0) for _ in range(3)] == [None, None, None]
    assert limiter.acquire("u", 0.0) == pytest.approx(0.1)
    assert limiter.acquire("u", 0.05) == pytest.approx(0.05)  # a refusal takes nothing
    assert limiter.acquire("u", 0.1) is None
    assert limiter.acquire("other", 0.1) is None  # a bucket per key


def test_reserve_queues_callers_one_interval_apart_once_the_burst_is_spent() -> None:
    limiter = RateLimiter(rate=10, burst=2)
    waits = [limiter.reserve("u", 0.0) for _ in range(5)]
    assert waits == pytest.approx([0.0, 0.0, 0.1, 0.2, 0.3])
    # Sent at their reserved times (a nanosecond for the floats' rounding), none of them
    # would be refused by the same bucket.
    portal = RateLimiter(rate=10, burst=2)
    assert [portal.acquire("u", w + 1e-9) for w in waits] == [None] * 5


def test_reserve_refills_with_time_up_to_the_burst_only() -> None:
    limiter = RateLimiter(rate=10, burst=2)
    assert limiter.reserve("u", 0.0) == 0.0
    assert limiter.reserve("u", 100.0) == 0.0  # a long pause refills to 2, not to 1,000
    assert limiter.reserve("u", 100.0) == 0.0
    assert limiter.reserve("u", 100.0) == pytest.approx(0.1)


def test_refund_gives_a_reserved_token_back_up_to_the_burst() -> None:
    limiter = RateLimiter(rate=10, burst=2)
    assert [limiter.reserve("u", 0.0) for _ in range(3)] == pytest.approx([0.0, 0.0, 0.1])
    limiter.refund("u")  # the third was not sent after all
    assert limiter.reserve("u", 0.0) == pytest.approx(0.1)  # next in line, not 0.2
    for _ in range(5):
        limiter.refund("u")
    assert [limiter.reserve("u", 0.0) for _ in range(3)] == pytest.approx([0.0, 0.0, 0.1])
    limiter.refund("never-used")  # a key with no bucket: nothing to give back
    assert limiter.reserve("never-used", 0.0) == 0.0
