"""Store stage: validated dossiers and progress in, versions and outbox entries out.

Everything one call writes — new versions, progress records, outbox entries — shares the
caller's transaction, so a change is never stored without the work to push it, nor the
other way round. The caller commits (together with its poll checkpoint).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from app.domain.progress import ProgressRecord
from app.repositories.dossiers import (
    DossierRepository,
    IncomingDossier,
    IncomingProgress,
    StoredDossier,
    StoreOutcome,
)
from app.repositories.outbox import OutboxRepository, PendingChange


@dataclass(frozen=True, slots=True)
class ProgressIn:
    record: ProgressRecord
    read_at: datetime


@dataclass(slots=True)
class StoreReport:
    dossiers: list[StoredDossier] = field(default_factory=list)
    progress_added: dict[str, int] = field(default_factory=dict)  # MaHoSo → new records
    # Progress for dossiers the service has not stored (yet): not written, handed back.
    orphan_progress: list[ProgressIn] = field(default_factory=list)


async def store(
    session: AsyncSession,
    dossiers: Sequence[IncomingDossier],
    progress: Sequence[ProgressIn],
    now: datetime,
) -> StoreReport:
    repository = DossierRepository(session)
    outbox = OutboxRepository(session)
    report = StoreReport(dossiers=await repository.upsert_many(dossiers))
    await outbox.mark_pending(
        [
            PendingChange(item.dossier_id, item.unit, item.version, item.read_at)
            for item in report.dossiers
            if item.outcome is not StoreOutcome.UNCHANGED
        ],
        now,
    )
    if not progress:
        return report
    ids = {item.ma_ho_so: item.dossier_id for item in report.dossiers}
    unknown = {p.record.MaHoSo for p in progress} - ids.keys()
    if unknown:
        ids |= await repository.ids_by_code(unknown)
    incoming: list[IncomingProgress] = []
    for item in progress:
        dossier_id = ids.get(item.record.MaHoSo)
        if dossier_id is None:
            report.orphan_progress.append(item)
        else:
            incoming.append(IncomingProgress(dossier_id, item.record, item.read_at))
    added = await repository.add_progress(incoming)
    await outbox.mark_progress_pending(added, now)
    code_of = {dossier_id: code for code, dossier_id in ids.items()}
    report.progress_added = {code_of[dossier_id]: n for dossier_id, n in added.items()}
    return report
