"""SourceRepository: rows for configured sources, health, poll leases, checkpoints."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from app.repositories.sources import SourceRepository

NOW = datetime(2024, 1, 26, 3, 0, tzinfo=UTC)
TTL = timedelta(seconds=30)


@pytest.fixture
def repo(session: AsyncSession) -> SourceRepository:
    return SourceRepository(session)


async def test_ensure_is_idempotent_and_follows_the_dialect(repo: SourceRepository) -> None:
    first = await repo.ensure("h26-igate", "igate", NOW)
    again = await repo.ensure("h26-igate", "opencps", NOW + timedelta(days=1))
    assert again.id == first.id
    assert again.dialect == "opencps"
    assert again.created_at == NOW
    assert [s.name for s in await repo.list_all()] == ["h26-igate"]


async def test_poll_outcomes_track_health(repo: SourceRepository) -> None:
    source = await repo.ensure("s", "igate", NOW)
    await repo.record_poll(source.id, NOW, error="HTTP 503")
    await repo.record_poll(source.id, NOW + timedelta(seconds=2), error="timeout")
    source = await repo.get_by_name("s")  # type: ignore[assignment]
    assert source is not None
    assert (source.consecutive_failures, source.last_error, source.last_success_at) == (
        2,
        "timeout",
        None,
    )
    await repo.record_poll(source.id, NOW + timedelta(seconds=4))
    source = await repo.get_by_name("s")  # type: ignore[assignment]
    assert source is not None
    assert (source.consecutive_failures, source.last_error) == (0, None)
    assert source.last_success_at == source.last_poll_at == NOW + timedelta(seconds=4)


async def test_pause_switch(repo: SourceRepository) -> None:
    source = await repo.ensure("s", "igate", NOW)
    await repo.set_paused(source.id, True)
    assert (await repo.get_by_name("s")).paused is True  # type: ignore[union-attr]
    await repo.set_paused(source.id, False)
    assert (await repo.get_by_name("s")).paused is False  # type: ignore[union-attr]


async def test_one_poller_at_a_time_and_takeover_after_expiry(repo: SourceRepository) -> None:
    source = await repo.ensure("s", "igate", NOW)
    assert await repo.acquire_poll_lease(source.id, "w1", NOW, TTL)
    assert not await repo.acquire_poll_lease(source.id, "w2", NOW + timedelta(seconds=10), TTL)
    assert await repo.acquire_poll_lease(source.id, "w1", NOW + timedelta(seconds=10), TTL)
    # w1 renewed until NOW+40s; w2 gets it only after that.
    assert not await repo.acquire_poll_lease(source.id, "w2", NOW + timedelta(seconds=35), TTL)
    assert await repo.acquire_poll_lease(source.id, "w2", NOW + timedelta(seconds=40), TTL)
    await repo.release_poll_lease(source.id, "w1")  # not w1's any more: no effect
    assert not await repo.acquire_poll_lease(source.id, "w1", NOW + timedelta(seconds=41), TTL)
    await repo.release_poll_lease(source.id, "w2")
    assert await repo.acquire_poll_lease(source.id, "w1", NOW + timedelta(seconds=41), TTL)


async def test_checkpoints_per_stream(repo: SourceRepository) -> None:
    source = await repo.ensure("s", "igate", NOW)
    assert await repo.get_checkpoint(source.id) is None
    cursor = {"updated": "2024-05-13T09:30:00.000+0700", "ids_at_updated": ["a1", "b2"]}
    await repo.save_checkpoint(source.id, cursor, NOW)
    await repo.save_checkpoint(source.id, {"day": "13/05/2024"}, NOW, stream="000.00.53.H26")
    assert await repo.get_checkpoint(source.id) == cursor
    moved = {"updated": "2024-05-13T09:31:00.000+0700", "ids_at_updated": []}
    await repo.save_checkpoint(source.id, moved, NOW + timedelta(seconds=1))
    assert await repo.get_checkpoint(source.id) == moved
    assert await repo.get_checkpoint(source.id, "000.00.53.H26") == {"day": "13/05/2024"}
