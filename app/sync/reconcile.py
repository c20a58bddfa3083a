"""Reconcile stage: read back what the portal holds and compare it with what we pushed.

An acknowledgement is not proof: the portal may have acknowledged and lost a dossier, an
answer may have been lost after the portal stored it, or someone may have changed it by
hand. Read-back (``TraCuuHoSo``, bulk) settles it. A dossier found exactly as pushed, with
every delivered step, becomes *synced* — the only state that counts in the sync rate.
One missing or different is pushed again; one the portal holds in a later status than
the source (pushing ours would be a refused regression) becomes a dead letter.

Each cycle is bounded: acknowledged rows oldest first, then a rolling sweep through the
synced ones, so a change at the portal is eventually noticed however large the backlog.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.db import transaction
from app.domain.dossier import canonical_hash
from app.domain.progress import parse_progress
from app.domain.status import DossierStatus, is_transition_allowed
from app.domain.validation import RecordInvalid
from app.logs import get_logger
from app.models import DossierRow, SyncState
from app.repositories.dead_letters import DeadLetterRepository
from app.repositories.dossiers import DossierRepository
from app.repositories.outbox import OutboxRepository
from app.sync.portal import PortalClient, PortalError

log = get_logger("dossier_sync.reconcile")


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(slots=True)
class ReconcileReport:
    checked: int = 0
    confirmed: int = 0
    requeued: int = 0
    conflicts: int = 0
    errors: int = 0


@dataclass(frozen=True, slots=True)
class Verdict:
    kind: str  # confirmed | missing | different | conflict
    detail: str = ""
    steps_at_portal: frozenset[str] = frozenset()


def judge(row: DossierRow, delivered: set[str], held: dict[str, Any] | None) -> Verdict:
    """Compare the portal's copy with the stored dossier and its delivered steps."""
    if held is None:
        return Verdict("missing", "the portal does not hold the dossier")
    form = {k: v for k, v in held.items() if k != "QuaTrinhXuLy"}
    steps: set[str] = set()
    for raw in held.get("QuaTrinhXuLy") or []:
        try:
            steps.add(parse_progress(raw).identity_hash())
        except RecordInvalid:
            continue
    status = form.get("TrangThaiHoSo")
    if canonical_hash(form) != row.content_hash:
        portal_status = DossierStatus(status) if status in _STATUSES else None
        if portal_status is not None and not is_transition_allowed(
            portal_status, DossierStatus(row.status)
        ):
            return Verdict(
                "conflict",
                f"the portal holds status {portal_status.value}, the source {row.status}: "
                "pushing the source's state would be a regression",
            )
        return Verdict("different", "the portal's copy differs", frozenset(steps))
    if not delivered <= steps:
        return Verdict(
            "different",
            f"{len(delivered - steps)} delivered step(s) missing at the portal",
            frozenset(steps),
        )
    return Verdict("confirmed", steps_at_portal=frozenset(steps))


_STATUSES = frozenset(s.value for s in DossierStatus)


class Reconciler:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        portal: PortalClient,
        *,
        batch: int = 1000,
        sweep: int = 200,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.sessions = sessions
        self.portal = portal
        self.batch = batch
        self.sweep = sweep
        self.clock = clock
        self._sweep_after = 0  # rolling position through the synced rows

    async def reconcile_once(self) -> ReconcileReport:
        """Read back the oldest acknowledgements and the next slice of synced rows."""
        report = ReconcileReport()
        async with self.sessions() as session:
            outbox = OutboxRepository(session)
            rows = list(await outbox.acked_for_readback(self.batch))
            swept = list(await outbox.synced_after(self._sweep_after, self.sweep))
        self._sweep_after = swept[-1].dossier_id if len(swept) == self.sweep else 0
        rows += swept
        if not rows:
            return report
        units: dict[str, list[SyncState]] = {}
        for row in rows:
            units.setdefault(row.unit, []).append(row)
        for unit, states in units.items():
            try:
                await self._unit(unit, states, report)
            except PortalError as error:
                report.errors += 1
                log.warning("read-back failed", unit=unit, error=str(error))
        return report

    async def reconcile_unit(self, unit: str) -> ReconcileReport:
        """Read back one unit's acknowledged rows now, oldest first, up to ``batch`` (an
        operator's "read back now"). The rolling sweep of synced rows stays with
        :meth:`reconcile_once`, whose position it leaves alone."""
        report = ReconcileReport()
        async with self.sessions() as session:
            rows = list(await OutboxRepository(session).acked_for_readback(self.batch, unit=unit))
        if rows:
            try:
                await self._unit(unit, rows, report)
            except PortalError as error:
                report.errors += 1
                log.warning("read-back failed", unit=unit, error=str(error))
        return report

    async def _unit(self, unit: str, states: Sequence[SyncState], report: ReconcileReport) -> None:
        async with self.sessions() as session:
            repository = DossierRepository(session)
            dossiers = await repository.get_many(s.dossier_id for s in states)
            delivered = await repository.delivered_identities(s.dossier_id for s in states)
        lookup = await self.portal.lookup(unit, [d.ma_ho_so for d in dossiers.values()])
        now = self.clock()
        async with transaction(self.sessions) as session:
            outbox = OutboxRepository(session)
            repository = DossierRepository(session)
            letters = DeadLetterRepository(session)
            confirmed: list[tuple[int, int]] = []
            for state in states:
                row = dossiers[state.dossier_id]
                report.checked += 1
                verdict = judge(row, delivered.get(row.id, set()), lookup.found.get(row.ma_ho_so))
                if verdict.kind == "confirmed":
                    if state.status == "acked":
                        confirmed.append((row.id, row.version))
                    continue
                # The verdict is on what was read before the look-up; a row changed since
                # (a newer version stored, maybe pushed already by another worker) is
                # judged afresh next time, not on this stale reading.
                if verdict.kind == "conflict":
                    if not await outbox.give_up(
                        row.id, verdict.detail, change_seq=state.change_seq
                    ):
                        continue
                    report.conflicts += 1
                    await letters.add(
                        dossier_id=row.id,
                        ma_ho_so=row.ma_ho_so,
                        unit=row.unit,
                        agency=row.agency,
                        service="TraCuuHoSo",
                        version=row.version,
                        error_code=None,
                        reason=verdict.detail,
                        attempts=0,
                        now=now,
                    )
                    continue
                if not await outbox.requeue(
                    [row.id],
                    now,
                    f"read-back: {verdict.detail}",
                    exists_at_portal=verdict.kind != "missing",
                    change_seq=state.change_seq,
                ):
                    continue
                report.requeued += 1
                await repository.reset_progress_delivery(row.id, verdict.steps_at_portal)
                log.info("read-back mismatch", ma_ho_so=row.ma_ho_so, verdict=verdict.kind)
            report.confirmed += await outbox.mark_confirmed_many(confirmed, now)
