"""What the read API tells (scope ``read``): one dossier and where it stands, and a unit's
sync figures for a month.

Both speak the four states of service-interface.md — ``pending``, ``synced``,
``quarantined``, ``dead`` — decided by one rule:

* **quarantined**: the source's latest record of the dossier sits in quarantine (open
  entry of kind ``dossier`` from the source that stores it), or the dossier was never
  stored valid at all. Whatever an older stored version's outbox says, the portal cannot
  hold the source's latest state, so it is not synced (766 indicator 1.4 counts a
  dossier whose *latest* source status is at the portal);
* otherwise the outbox row decides: ``synced`` only when read-back confirmed the latest
  version; ``pending`` for work to push **and** for an acknowledgement not yet confirmed
  by read-back (internal status ``acked``, reported separately as ``acknowledged``);
  ``dead`` for a dead letter waiting for a redrive.

Nothing here commits; reads use a plain session.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from enum import StrEnum

from sqlalchemy.ext.asyncio import AsyncSession

from app.auth import Principal
from app.domain.agency import agency_of_dossier, is_dossier_code
from app.domain.indicators import IndicatorValue, UnitReport
from app.domain.periods import Period
from app.models import DeadLetter, DossierRow, ProgressRow, QuarantineEntry, SyncState, SyncStatus
from app.repositories.dead_letters import DeadLetterRepository
from app.repositories.dossiers import AgencyPeriodCount, DossierRepository
from app.repositories.outbox import OutboxRepository
from app.repositories.quarantine import QuarantineRepository
from app.repositories.sources import SourceRepository
from app.sync.reports import unit_report


class DossierState(StrEnum):
    PENDING = "pending"
    SYNCED = "synced"
    QUARANTINED = "quarantined"
    DEAD = "dead"


_STATE_OF_STATUS = {
    SyncStatus.PENDING.value: DossierState.PENDING,
    SyncStatus.ACKED.value: DossierState.PENDING,  # acknowledged is not proof
    SyncStatus.SYNCED.value: DossierState.SYNCED,
    SyncStatus.DEAD.value: DossierState.DEAD,
}


@dataclass(frozen=True, slots=True)
class DossierView:
    """A dossier as the service knows it: its stored state (``row`` None when it was
    never stored valid), outbox row, steps, open dead letter and open quarantine."""

    ma_ho_so: str
    state: DossierState
    row: DossierRow | None
    sync: SyncState | None
    progress: Sequence[ProgressRow]
    dead_letter: DeadLetter | None
    quarantine: Sequence[QuarantineEntry]
    source_names: dict[int, str] = field(default_factory=dict)


async def dossier_view(
    session: AsyncSession, caller: Principal, ma_ho_so: str
) -> DossierView | None:
    """The dossier, or None when it does not exist **or is outside the caller's reach**
    (decided from the code alone, before any lookup: the caller cannot tell the two
    apart, not even by timing a query)."""
    if not is_dossier_code(ma_ho_so) or not caller.covers(agency_of_dossier(ma_ho_so)):
        return None
    dossiers = DossierRepository(session)
    row = await dossiers.get_by_code(ma_ho_so)
    entries = await QuarantineRepository(session).open_for_dossier(ma_ho_so)
    if row is None and not entries:
        return None
    sync = await OutboxRepository(session).get(row.id) if row is not None else None
    progress = await dossiers.progress_of(row.id) if row is not None else ()
    letter = await DeadLetterRepository(session).open_for_dossier(row.id) if row else None
    source_ids = {e.source_id for e in entries}
    if row is not None and row.source_id is not None:
        source_ids.add(row.source_id)
    return DossierView(
        ma_ho_so=ma_ho_so,
        state=_state(row, sync, entries),
        row=row,
        sync=sync,
        progress=progress,
        dead_letter=letter,
        quarantine=entries,
        source_names=await SourceRepository(session).names(source_ids) if source_ids else {},
    )


def _state(
    row: DossierRow | None, sync: SyncState | None, entries: Sequence[QuarantineEntry]
) -> DossierState:
    if row is None:
        return DossierState.QUARANTINED  # only its quarantined records exist
    if any(e.kind == "dossier" and e.source_id == row.source_id for e in entries):
        return DossierState.QUARANTINED
    if sync is None:  # not reachable: the store writes both in one transaction
        return DossierState.PENDING
    return _STATE_OF_STATUS.get(sync.status, DossierState.PENDING)


# --- a unit's figures ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Figures:
    received: int = 0
    synced: int = 0
    pending: int = 0
    acknowledged: int = 0
    quarantined: int = 0
    dead: int = 0
    oldest_pending_since: datetime | None = None
    # 766 indicator 1.4 over the same dossiers, from the 766 report (it counts fewer
    # dossiers than ``received``: statuses 1 and 3 are left out, and the portal's own
    # count may be the denominator). A sum of figures has none: a ratio of sums is the
    # report's total, not a sum of ratios.
    sync: IndicatorValue | None = None

    @property
    def rate(self) -> float | None:
        """766 indicator 1.4 (the report's, so the same number as ``dossier_sync_ratio``
        and ``GET /api/v1/reports/766``); None when nothing counts (not 0, not 1)."""
        return None if self.sync is None else self.sync.value

    def __add__(self, other: Figures) -> Figures:
        oldest = [t for t in (self.oldest_pending_since, other.oldest_pending_since) if t]
        return Figures(
            self.received + other.received,
            self.synced + other.synced,
            self.pending + other.pending,
            self.acknowledged + other.acknowledged,
            self.quarantined + other.quarantined,
            self.dead + other.dead,
            min(oldest) if oldest else None,
        )

    @classmethod
    def of(cls, count: AgencyPeriodCount, sync: IndicatorValue | None) -> Figures:
        return cls(
            count.received,
            count.synced,
            count.pending,
            count.acknowledged,
            count.quarantined,
            count.dead,
            count.oldest_pending_since,
            sync,
        )


@dataclass(frozen=True, slots=True)
class UnitSync:
    unit: str
    agency: str | None  # set when the figures are one agency's (an agency key)
    period: Period
    since: datetime
    until: datetime
    total: Figures
    agencies: dict[str, Figures]
    never_stored: int  # quarantined dossiers with no stored version, any period
    now: datetime
    report: UnitReport  # the period's 766 report the sync rates come from

    @property
    def oldest_pending_age_s(self) -> float | None:
        oldest = self.total.oldest_pending_since
        return None if oldest is None else max(0.0, (self.now - oldest).total_seconds())


async def unit_sync(
    session: AsyncSession,
    *,
    unit: str,
    agency: str | None,
    period: Period,
    now: datetime | None = None,
) -> UnitSync:
    """The unit's (or one of its agencies') dossiers received in ``period``, by state,
    with each one's sync rate taken from the period's 766 report (indicator 1.4, the
    number behind the ``dossier_sync_ratio`` gauge). The caller checks the reach."""
    now = now or datetime.now(UTC)
    since, until = period.bounds()
    counts = await DossierRepository(session).received_by_agency(
        since, until, unit=unit, agency=agency
    )
    report = await unit_report(session, unit=unit, period=period, now=now, agency=agency)
    rates = {entry.agency: entry.indicator("1.4") for entry in report.agencies}
    agencies = {c.agency: Figures.of(c, rates.get(c.agency)) for c in counts}
    total = Figures()
    for figures in agencies.values():
        total += figures
    total = replace(total, sync=report.total.indicator("1.4"))  # an agency's own, for one
    never_stored = await QuarantineRepository(session).count_never_stored(unit=unit, agency=agency)
    return UnitSync(unit, agency, period, since, until, total, agencies, never_stored, now, report)
