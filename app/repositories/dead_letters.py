"""Dead letters: pushes given up on, until someone redrives them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, update

from app.models import DeadLetter
from app.repositories.base import Repository


@dataclass(frozen=True, slots=True)
class DeadLetterFilter:
    """Which open dead letters a list or a redrive covers (all given conditions hold)."""

    unit: str | None = None
    agency: str | None = None
    error_code: int | None = None
    since: datetime | None = None
    until: datetime | None = None


class DeadLetterRepository(Repository):
    async def add(
        self,
        *,
        dossier_id: int,
        ma_ho_so: str,
        unit: str,
        agency: str,
        service: str,
        version: int | None,
        error_code: int | None,
        reason: str,
        attempts: int,
        now: datetime,
        detail: dict[str, Any] | None = None,
    ) -> DeadLetter:
        letter = DeadLetter(
            dossier_id=dossier_id,
            ma_ho_so=ma_ho_so,
            unit=unit,
            agency=agency,
            service=service,
            version=version,
            error_code=error_code,
            reason=reason,
            attempts=attempts,
            detail=detail,
            created_at=now,
        )
        self.session.add(letter)
        await self.session.flush()
        return letter

    def _open(self, where: DeadLetterFilter) -> list[Any]:
        conditions: list[Any] = [DeadLetter.redriven_at.is_(None)]
        if where.unit is not None:
            conditions.append(DeadLetter.unit == where.unit)
        if where.agency is not None:
            conditions.append(DeadLetter.agency == where.agency)
        if where.error_code is not None:
            conditions.append(DeadLetter.error_code == where.error_code)
        if where.since is not None:
            conditions.append(DeadLetter.created_at >= where.since)
        if where.until is not None:
            conditions.append(DeadLetter.created_at < where.until)
        return conditions

    async def list_open(
        self, where: DeadLetterFilter, *, limit: int = 100, offset: int = 0
    ) -> Sequence[DeadLetter]:
        return (
            await self.session.scalars(
                select(DeadLetter)
                .where(*self._open(where))
                .order_by(DeadLetter.created_at.desc(), DeadLetter.id)
                .limit(limit)
                .offset(offset)
            )
        ).all()

    async def mark_redriven(self, where: DeadLetterFilter, now: datetime) -> list[int]:
        """Close the matching dead letters; returns their dossier ids, for requeueing in
        the same transaction."""
        result = await self.session.execute(
            update(DeadLetter)
            .where(*self._open(where))
            .values(redriven_at=now)
            .returning(DeadLetter.dossier_id)
            .execution_options(synchronize_session=False)
        )
        return sorted(set(result.scalars().all()))

    async def open_counts(self) -> dict[tuple[str, int | None], int]:
        """Open dead letters per (unit, error code)."""
        rows = await self.session.execute(
            select(DeadLetter.unit, DeadLetter.error_code, func.count())
            .where(DeadLetter.redriven_at.is_(None))
            .group_by(DeadLetter.unit, DeadLetter.error_code)
        )
        return {(unit, code): count for unit, code, count in rows.all()}

    async def count_open(self, where: DeadLetterFilter) -> int:
        """How many open dead letters match (a listing's total)."""
        total = await self.session.scalar(
            select(func.count()).select_from(DeadLetter).where(*self._open(where))
        )
        return int(total or 0)

    async def open_for_dossier(self, dossier_id: int) -> DeadLetter | None:
        """The dossier's newest open dead letter (why it is dead), if any."""
        return await self.session.scalar(
            select(DeadLetter)
            .where(DeadLetter.dossier_id == dossier_id, DeadLetter.redriven_at.is_(None))
            .order_by(DeadLetter.created_at.desc(), DeadLetter.id.desc())
            .limit(1)
        )
