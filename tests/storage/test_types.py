"""Column types behave the same on both backends."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import select
from sqlalchemy.exc import StatementError
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import Source


async def test_datetimes_come_back_aware_in_utc(session: AsyncSession) -> None:
    hanoi = timezone(timedelta(hours=7))
    written = datetime(2024, 1, 25, 8, 30, 15, 123456, tzinfo=hanoi)
    session.add(Source(name="s", dialect="igate", created_at=written))
    await session.flush()
    session.expunge_all()
    read = await session.scalar(select(Source.created_at).where(Source.name == "s"))
    assert read == written
    assert read is not None and read.utcoffset() == timedelta(0)
    assert read.tzinfo is not None


async def test_naive_datetimes_are_refused(session: AsyncSession) -> None:
    session.add(Source(name="s", dialect="igate", created_at=datetime(2024, 1, 1)))  # noqa: DTZ001
    with pytest.raises(StatementError, match="naive datetime"):
        await session.flush()


async def test_datetime_comparisons_order_instants_not_strings(session: AsyncSession) -> None:
    """Times written from different zones still compare as instants (SQLite stores text)."""
    early = datetime(2024, 1, 25, 1, 0, tzinfo=UTC)
    late_in_hanoi = datetime(2024, 1, 25, 8, 30, tzinfo=timezone(timedelta(hours=7)))  # 01:30Z
    session.add_all(
        [
            Source(name="early", dialect="igate", created_at=early),
            Source(name="late", dialect="igate", created_at=late_in_hanoi),
        ]
    )
    await session.flush()
    names = (
        await session.scalars(
            select(Source.name).where(Source.created_at > datetime(2024, 1, 25, 1, 15, tzinfo=UTC))
        )
    ).all()
    assert names == ["late"]
