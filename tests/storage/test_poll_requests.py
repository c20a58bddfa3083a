"""Poll-now requests on the source row: who should answer one, and when it is cleared."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from app.repositories.sources import SourceRepository

NOW = datetime(2024, 1, 26, 3, 0, tzinfo=UTC)
TTL = timedelta(seconds=30)


async def test_a_request_is_for_the_lease_holder_of_an_unpaused_source(
    session: AsyncSession,
) -> None:
    repo = SourceRepository(session)
    source = await repo.ensure("s", "igate", NOW)
    assert not await repo.poll_requested(source.id, "w1", NOW)  # nothing asked
    await repo.request_poll(source.id, NOW)
    assert await repo.poll_requested(source.id, "w1", NOW)  # lease free: anyone may
    assert await repo.acquire_poll_lease(source.id, "w1", NOW, TTL)
    assert await repo.poll_requested(source.id, "w1", NOW)
    # Another engine leaves it to the holder, until the holder's lease expires.
    assert not await repo.poll_requested(source.id, "w2", NOW + TTL - timedelta(seconds=1))
    assert await repo.poll_requested(source.id, "w2", NOW + TTL)
    await repo.set_paused(source.id, True)
    assert not await repo.poll_requested(source.id, "w1", NOW)  # paused: kept, not answered
    await repo.set_paused(source.id, False)
    assert await repo.poll_requested(source.id, "w1", NOW)


async def test_the_poll_that_starts_clears_the_request(session: AsyncSession) -> None:
    repo = SourceRepository(session)
    source = await repo.ensure("s", "igate", NOW)
    other = await repo.ensure("t", "igate", NOW)
    await repo.request_poll(source.id, NOW)
    await repo.request_poll(other.id, NOW)
    await repo.clear_poll_request(source.id)
    assert not await repo.poll_requested(source.id, "w1", NOW)
    assert await repo.poll_requested(other.id, "w1", NOW)  # only its own source
    rows = await repo.by_names(["s", "t"])
    assert (rows["s"].poll_requested_at, rows["t"].poll_requested_at) == (None, NOW)
    assert await repo.names([source.id, other.id]) == {source.id: "s", other.id: "t"}
