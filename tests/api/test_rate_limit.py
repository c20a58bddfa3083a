"""The rate limit per key, through the real app: a burst, then 429 with Retry-After and
the error shape; each key has its own bucket."""

from __future__ import annotations

from typing import Any

import pytest

from tests.api.conftest import H26, H29, Api

SUMMARY = f"/api/v1/units/{H26}/sync"


@pytest.fixture
def api_options() -> dict[str, Any]:
    return {"rate_limit_per_s": 0.5, "rate_limit_burst": 3}  # a token every 2 s


async def test_a_key_past_its_burst_gets_429_with_retry_after(api: Api) -> None:
    busy = await api.key(H26, ["read"])
    statuses = [
        (await api.client.get(SUMMARY, headers=api.auth(busy))).status_code for _ in range(3)
    ]
    assert statuses == [200, 200, 200]

    limited = await api.client.get(SUMMARY, headers=api.auth(busy))
    assert limited.status_code == 429
    assert limited.json()["error"]["code"] == "rate_limited"
    assert limited.headers["Retry-After"] == "2"

    other = await api.key(H26, ["read"])  # another key of the same unit: its own bucket
    assert (await api.client.get(SUMMARY, headers=api.auth(other))).status_code == 200
    elsewhere = await api.key(H29, ["read"])
    answer = await api.client.get(f"/api/v1/units/{H29}/sync", headers=api.auth(elsewhere))
    assert answer.status_code == 200


async def test_unknown_keys_are_refused_before_any_bucket(api: Api) -> None:
    for _ in range(5):
        answer = await api.client.get(SUMMARY, headers=api.auth("dsk_not-a-key"))
        assert answer.status_code == 401
        assert answer.headers["WWW-Authenticate"] == "Bearer"
        assert answer.json()["error"]["code"] == "unauthorized"
