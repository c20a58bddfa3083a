"""The 766 report of a unit (or one agency) for a period (indicators-766.md).

The repository reads the dossiers that may count in the period; the formulas are pure
(``app.domain.indicators``). Nothing here commits. Used by ``GET /api/v1/reports/766``
and the per-indicator gauges.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from app.domain.indicators import DossierFacts, ReportBuilder, UnitReport, facts_from_state
from app.domain.periods import Period
from app.domain.status import DossierStatus
from app.repositories.reports import ReportRepository, ReportRow


async def unit_report(
    session: AsyncSession,
    *,
    unit: str,
    period: Period,
    now: datetime,
    agency: str | None = None,
) -> UnitReport:
    """The report of ``unit`` for ``period`` as of ``now``: one entry per agency with
    dossiers in the period and the unit's total over all of them. With ``agency``, only
    that agency's dossiers (it is then the only entry, even without dossiers, and the
    total is its own). The caller checks that the agency belongs to the unit."""
    since, until = period.bounds()
    # Dossier by dossier into the tallies: a month may hold millions of them, and a
    # worker computes this report every minute for its gauges.
    builder = ReportBuilder(unit, period, now, agencies=[agency] if agency else ())
    async for row in ReportRepository(session).period_dossiers(
        since, until, unit=unit, agency=agency
    ):
        builder.add(_facts(row))
    return builder.report()


def _facts(row: ReportRow) -> DossierFacts:
    return facts_from_state(
        row.state,
        first_reached={DossierStatus(s): at for s, at in row.first_reached.items()},
        synced=row.synced,
        portal_status=DossierStatus(row.portal_status) if row.portal_status else None,
    )
