"""PushLogRepository: append, per-dossier history, retention."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import PushAttempt
from app.repositories.dossiers import DossierRepository, IncomingDossier
from app.repositories.push_log import PushAttemptRecord, PushLogRepository
from tests.factories import make_dossier

NOW = datetime(2024, 3, 1, 0, 0, tzinfo=UTC)


async def test_history_newest_first_and_retention(session: AsyncSession) -> None:
    [stored] = await DossierRepository(session).upsert_many(
        [IncomingDossier(make_dossier(), read_at=NOW)]
    )
    repo = PushLogRepository(session)
    await repo.append(
        [
            PushAttemptRecord(
                NOW - timedelta(days=40),
                "000.00.00.H26",
                "DongBoHoSoMC",
                "b1",
                "http_error",
                stored.dossier_id,
                1,
                http_status=503,
            ),
            PushAttemptRecord(
                NOW - timedelta(days=2),
                "000.00.00.H26",
                "DongBoHoSoMC",
                "b2",
                "ok",
                stored.dossier_id,
                1,
                http_status=200,
                error_code=0,
            ),
            PushAttemptRecord(
                NOW - timedelta(days=1),
                "000.00.00.H26",
                "CapNhatTienDoHoSoMC",
                "b3",
                "ok",
                stored.dossier_id,
                None,
                200,
                0,
                duration_ms=41,
            ),
        ]
    )
    history = await repo.for_dossier(stored.dossier_id)
    assert [a.batch_id for a in history] == ["b3", "b2", "b1"]
    assert await repo.purge_before(NOW - timedelta(days=30)) == 1
    assert await session.scalar(select(func.count()).select_from(PushAttempt)) == 2
    assert await repo.purge_before(NOW - timedelta(days=30)) == 0
