"""What the 766 report reads: the dossiers relevant to a period, with the first time
their history reached each ending status and where they stand with the portal."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, func, or_, select

from app.domain.dates import format_portal_datetime
from app.domain.status import DossierStatus
from app.models import DossierRow, ProgressRow, QuarantineEntry, SyncState, SyncStatus
from app.repositories.base import Repository

# The statuses whose first time in a dossier's history the indicators need: a result
# (9, 10) ends a dossier and counts it in 6.1; 3, 7, 8 end it without one.
HISTORY_STATUSES = ("3", "7", "8", "9", "10")
_RESULT = [DossierStatus.RESULT_READY.value, DossierStatus.RESULT_RETURNED.value]
_BATCH = 1000


@dataclass(frozen=True, slots=True)
class ReportRow:
    """One stored dossier as the report needs it.

    ``synced``: read-back confirmed its latest version and the source's latest record
    of it is not in quarantine (the rule of ``app.sync.status``). ``portal_status``: the
    ``TrangThaiHoSo`` the portal acknowledged, given only when read-back has confirmed
    some version of it at the portal (None: not known to hold it).
    ``first_reached``: status → first ``ThoiDiemXuLy`` of a step leading to it."""

    agency: str
    state: Mapping[str, Any]
    synced: bool
    portal_status: str | None
    first_reached: Mapping[str, datetime]


class ReportRepository(Repository):
    async def period_dossiers(
        self, since: datetime, until: datetime, *, unit: str, agency: str | None = None
    ) -> AsyncIterator[ReportRow]:
        """The dossiers of ``unit`` (or of one ``agency``) that a report of ``[since,
        until)`` may count: received (``NgayTiepNhan``) in it, whatever their status, or
        reaching status 9 or 10 in it — by a step of their history, or, at 9 or 10,
        by ``NgayKetThucXuLy``. A superset: which of them count where is the domain's
        business (``app.domain.indicators``). Rows come in batches, never all at once."""
        # Open quarantine of a dossier's latest record from the source that stores it.
        held = (
            select(QuarantineEntry.source_id, QuarantineEntry.ma_ho_so)
            .where(QuarantineEntry.resolved_at.is_(None), QuarantineEntry.kind == "dossier")
            .distinct()
            .subquery()
        )
        query = (
            select(
                DossierRow.id,
                DossierRow.agency,
                DossierRow.state,
                SyncState.status,
                SyncState.confirmed_version,
                SyncState.acked_status,
                held.c.ma_ho_so,
            )
            .outerjoin(SyncState, SyncState.dossier_id == DossierRow.id)
            .outerjoin(
                held,
                and_(
                    held.c.ma_ho_so == DossierRow.ma_ho_so,
                    held.c.source_id == DossierRow.source_id,
                ),
            )
            .where(self._relevant(since, until, unit=unit, agency=agency))
            .order_by(DossierRow.id)
            .limit(_BATCH)
        )
        # Keyset pages of the period's dossiers, then the history of each page by primary
        # key: memory stays one page whatever the period's size (never the whole id list).
        after = 0
        while True:
            page = (await self.session.execute(query.where(DossierRow.id > after))).all()
            if not page:
                return
            after = page[-1][0]
            history = await self._first_reached([row[0] for row in page])
            for row_id, row_agency, state, status, confirmed, acked_status, quarantined in page:
                yield ReportRow(
                    agency=row_agency,
                    state=state,
                    synced=status == SyncStatus.SYNCED.value and quarantined is None,
                    portal_status=acked_status if confirmed is not None else None,
                    first_reached=history.get(row_id, {}),
                )
            if len(page) < _BATCH:
                return

    def _relevant(
        self, since: datetime, until: datetime, *, unit: str, agency: str | None
    ) -> ColumnElement[bool]:
        reached_result = select(ProgressRow.dossier_id).where(
            ProgressRow.status.in_(_RESULT),
            ProgressRow.occurred_at >= since,
            ProgressRow.occurred_at < until,
        )
        # `NgayKetThucXuLy` lives in the JSON state only, as yyyyMMddHHmmss local time:
        # fixed-width digits, so comparing the strings compares the times.
        closed = DossierRow.state["NgayKetThucXuLy"].as_string()
        relevant = and_(
            DossierRow.unit == unit,
            or_(
                and_(DossierRow.received_at >= since, DossierRow.received_at < until),
                DossierRow.id.in_(reached_result),
                and_(
                    DossierRow.status.in_(_RESULT),
                    closed >= format_portal_datetime(since),
                    closed < format_portal_datetime(until),
                ),
            ),
        )
        return relevant if agency is None else and_(relevant, DossierRow.agency == agency)

    async def _first_reached(self, ids: list[int]) -> dict[int, dict[str, datetime]]:
        rows = await self.session.execute(
            select(ProgressRow.dossier_id, ProgressRow.status, func.min(ProgressRow.occurred_at))
            .where(
                self.one_of(ProgressRow.dossier_id, ids),
                ProgressRow.status.in_(HISTORY_STATUSES),
            )
            .group_by(ProgressRow.dossier_id, ProgressRow.status)
        )
        history: dict[int, dict[str, datetime]] = {}
        for dossier_id, status, first in rows.all():
            history.setdefault(dossier_id, {})[status] = first
        return history
