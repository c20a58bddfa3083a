"""The push-attempt log: what was sent, what came back; purged after its retention."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from datetime import datetime

from sqlalchemy import delete, select

from app.models import PushAttempt
from app.models.base import table_of
from app.repositories.base import Repository


@dataclass(frozen=True, slots=True)
class PushAttemptRecord:
    attempted_at: datetime
    unit: str
    service: str
    batch_id: str
    outcome: str
    dossier_id: int | None = None
    version: int | None = None
    http_status: int | None = None
    error_code: int | None = None
    message: str | None = None
    duration_ms: int | None = None


_COLUMNS = tuple(f.name for f in fields(PushAttemptRecord))


class PushLogRepository(Repository):
    async def append(self, records: Sequence[PushAttemptRecord]) -> None:
        if records:
            # Not dataclasses.asdict: it deep-copies every value, and a push round logs
            # one row per item sent (a tenth of the pusher's own time went there).
            await self.session.execute(
                table_of(PushAttempt).insert(),
                [{name: getattr(record, name) for name in _COLUMNS} for record in records],
            )

    async def for_dossier(self, dossier_id: int, limit: int = 50) -> Sequence[PushAttempt]:
        return (
            await self.session.scalars(
                select(PushAttempt)
                .where(PushAttempt.dossier_id == dossier_id)
                .order_by(PushAttempt.attempted_at.desc(), PushAttempt.id.desc())
                .limit(limit)
            )
        ).all()

    async def purge_before(self, cutoff: datetime) -> int:
        """Delete attempts older than ``cutoff`` (the retention window); returns how many."""
        result = await self.session.execute(
            delete(PushAttempt)
            .where(PushAttempt.attempted_at < cutoff)
            .execution_options(synchronize_session=False)
        )
        return int(result.rowcount)  # type: ignore[attr-defined]
