"""The shared 766 indicators: the last computed snapshot, and the claim of the process
computing the next one."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.engine import CursorResult

from app.models import IndicatorSnapshotRow
from app.repositories.base import Repository

REPORT = "766"


@dataclass(frozen=True, slots=True)
class StoredIndicators:
    computed_at: datetime
    took_s: float
    indicators: dict[str, Any]


class IndicatorSnapshotRepository(Repository):
    async def latest(self) -> StoredIndicators | None:
        """The last snapshot any process stored, or None before the first."""
        row = (
            await self.session.execute(
                select(
                    IndicatorSnapshotRow.computed_at,
                    IndicatorSnapshotRow.took_s,
                    IndicatorSnapshotRow.indicators,
                ).where(IndicatorSnapshotRow.name == REPORT)
            )
        ).one_or_none()
        if row is None or row.computed_at is None or row.indicators is None:
            return None
        return StoredIndicators(row.computed_at, row.took_s or 0.0, row.indicators)

    async def claim(self, owner: str, now: datetime, until: datetime) -> bool:
        """Take the right to compute the next snapshot until ``until``, unless another
        process holds it (a claim past its time was left by a process that died)."""
        await self.session.execute(
            self.insert(IndicatorSnapshotRow).values(name=REPORT).on_conflict_do_nothing()
        )
        row = IndicatorSnapshotRow
        result: CursorResult[Any] = await self.session.execute(  # type: ignore[assignment]
            update(row)
            .where(
                row.name == REPORT,
                or_(
                    row.claimed_until.is_(None),
                    row.claimed_until <= now,
                    row.claimed_by == owner,
                ),
            )
            .values(claimed_by=owner, claimed_until=until)
        )
        return result.rowcount == 1

    async def save(
        self, owner: str, computed_at: datetime, took_s: float, indicators: dict[str, Any]
    ) -> None:
        """Store a computed snapshot (unless a later one is stored already) and give up
        ``owner``'s claim."""
        row = IndicatorSnapshotRow
        statement = self.insert(row).values(
            name=REPORT, computed_at=computed_at, took_s=took_s, indicators=indicators
        )
        await self.session.execute(
            statement.on_conflict_do_update(
                index_elements=["name"],
                set_={
                    "computed_at": statement.excluded.computed_at,
                    "took_s": statement.excluded.took_s,
                    "indicators": statement.excluded.indicators,
                },
                # A slow computation finishing after a later one keeps the later.
                where=or_(
                    row.computed_at.is_(None), row.computed_at < statement.excluded.computed_at
                ),
            )
        )
        await self.session.execute(
            update(row)
            .where(row.name == REPORT, row.claimed_by == owner)
            .values(claimed_by=None, claimed_until=None)
        )
