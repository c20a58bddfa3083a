"""What the status page (``GET /status``) shows, gathered in one read: per unit the
month's sync figures (:func:`app.sync.status.unit_sync`, the same numbers as the unit
sync API and the ``dossier_sync_ratio`` gauge), the outbox backlog, open quarantine by
reason, open dead letters by portal error code and the month's 766 report
(:func:`app.sync.reports.unit_report`, as ``GET /api/v1/reports/766`` gives it), plus
the sources' health.

Only aggregates leave this module: counts per unit, agency, reason or error code, and
source names. No dossier code, no record, no quarantine or dead-letter message text
(those may quote a source's field values, personal data included), so the page built
from it can be shown to anyone who may see the ``/metrics`` figures.

Nothing here commits; the caller passes a plain session.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from app.domain.indicators import UnitReport
from app.domain.periods import Period
from app.models import SyncStatus
from app.repositories.catalogue import CatalogueRepository
from app.repositories.dead_letters import DeadLetterRepository
from app.repositories.outbox import OutboxRepository
from app.repositories.quarantine import QuarantineRepository
from app.repositories.sources import SourceRepository
from app.sync.status import UnitSync, unit_sync


@dataclass(frozen=True, slots=True)
class Backlog:
    """The unit's outbox now, whatever month its dossiers were received in."""

    pending: int = 0  # work to push
    acknowledged: int = 0  # the portal accepted it; read-back has not confirmed it yet
    dead: int = 0  # given up until a redrive
    oldest_pending_since: datetime | None = None


@dataclass(frozen=True, slots=True)
class UnitOverview:
    unit: str
    sync: UnitSync  # the period's received dossiers by state, in all and per agency
    backlog: Backlog
    quarantine: dict[str, int]  # reason code → open entries (dossiers and steps)
    dead_letters: dict[int | None, int]  # portal error code (None: no answer) → open
    report: UnitReport  # 766 indicators of the period, per agency and in all


@dataclass(frozen=True, slots=True)
class SourceHealth:
    name: str
    dialect: str
    paused: bool
    last_success_at: datetime | None
    consecutive_failures: int


@dataclass(frozen=True, slots=True)
class Overview:
    period: Period
    now: datetime
    units: list[UnitOverview]
    names: dict[str, str]  # unit or agency code → its name in the portal's catalogue
    sources: list[SourceHealth]
    # Open entries whose unit could not be read from the record, by reason: they belong
    # to no unit's row but are part of the picture.
    unassigned_quarantine: dict[str, int]


async def overview(
    session: AsyncSession, *, units: Sequence[str], period: Period, now: datetime
) -> Overview:
    """The figures of ``units`` (in that order) for ``period``, as of ``now``."""
    outbox = OutboxRepository(session)
    backlog: dict[str, dict[str, int]] = {}
    for row in await outbox.backlog():
        backlog.setdefault(row.unit, {})[row.status] = row.count
    oldest = await outbox.oldest_pending()
    quarantine: dict[str | None, dict[str, int]] = {}
    for (unit, reason), count in (await QuarantineRepository(session).open_counts()).items():
        quarantine.setdefault(unit, {})[reason] = count
    letters: dict[str, dict[int | None, int]] = {}
    for (unit, code), count in (await DeadLetterRepository(session).open_counts()).items():
        letters.setdefault(unit, {})[code] = count

    found: list[UnitOverview] = []
    for unit in units:
        figures = await unit_sync(session, unit=unit, agency=None, period=period, now=now)
        statuses = backlog.get(unit, {})
        found.append(
            UnitOverview(
                unit=unit,
                sync=figures,
                backlog=Backlog(
                    pending=statuses.get(SyncStatus.PENDING.value, 0),
                    acknowledged=statuses.get(SyncStatus.ACKED.value, 0),
                    dead=statuses.get(SyncStatus.DEAD.value, 0),
                    oldest_pending_since=oldest.get(unit),
                ),
                quarantine=quarantine.get(unit, {}),
                dead_letters=letters.get(unit, {}),
                report=figures.report,
            )
        )
    codes = set(units) | {agency for u in found for agency in u.sync.agencies}
    names = await CatalogueRepository(session).agency_names(codes) if codes else {}
    sources = [
        SourceHealth(
            name=s.name,
            dialect=s.dialect,
            paused=s.paused,
            last_success_at=s.last_success_at,
            consecutive_failures=s.consecutive_failures,
        )
        for s in await SourceRepository(session).list_all()
    ]
    return Overview(
        period=period,
        now=now,
        units=found,
        names=names,
        sources=sources,
        unassigned_quarantine=quarantine.get(None, {}),
    )
