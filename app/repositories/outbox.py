"""The outbox: per-dossier sync state, claimed by pushers under leases."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, ScalarSelect, bindparam, case, func, select, update

from app.models import SyncState, SyncStatus
from app.models.base import table_of
from app.repositories.base import Repository

_PENDING = SyncStatus.PENDING.value

# PostgreSQL channel on which a transaction that made outbox rows due says so (on commit).
# Only a hint to idle pushers: they look for due rows on their own anyway.
CHANGES_CHANNEL = "dossier_sync_outbox"


@dataclass(frozen=True, slots=True)
class PendingChange:
    """A new dossier version to push, read from its source at ``changed_at``."""

    dossier_id: int
    unit: str
    version: int
    changed_at: datetime


@dataclass(frozen=True, slots=True)
class Acknowledgement:
    """The portal accepted ``version`` of a claimed dossier (and the progress sent with
    it); ``claimed_seq`` is the row's ``change_seq`` when it was claimed."""

    dossier_id: int
    version: int
    portal_status: str
    claimed_seq: int


@dataclass(frozen=True, slots=True)
class UnitBacklog:
    unit: str
    status: str
    count: int


class OutboxRepository(Repository):
    async def mark_pending(self, changes: Sequence[PendingChange], now: datetime) -> None:
        """Record new versions to push; call it in the transaction that stored them.

        Versions coalesce: the row keeps only the newest version, so superseded states
        are never sent. A dead dossier that changes is alive again (new content may
        succeed where the old failed), and a change resets the attempt budget.
        """
        if not changes:
            return
        statement = self.insert(SyncState)
        excluded = statement.excluded
        c = table_of(SyncState).c
        await self.session.execute(
            statement.on_conflict_do_update(
                index_elements=["dossier_id"],
                set_={
                    "pending_version": case(
                        (excluded.pending_version > c.pending_version, excluded.pending_version),
                        else_=c.pending_version,
                    ),
                    "status": _PENDING,
                    "pending_since": func.coalesce(c.pending_since, excluded.pending_since),
                    "change_seq": c.change_seq + 1,
                    "changed_at": excluded.changed_at,
                    "attempts": 0,
                    "next_attempt_at": excluded.next_attempt_at,
                    "last_error": None,
                    "last_error_code": None,
                },
            ),
            [
                {
                    "dossier_id": change.dossier_id,
                    "unit": change.unit,
                    "status": _PENDING,
                    "pending_version": change.version,
                    "pending_since": change.changed_at,
                    "change_seq": 1,
                    "changed_at": change.changed_at,
                    "attempts": 0,
                    "next_attempt_at": now,
                }
                # Rows locked in key order, as by every statement here that locks several:
                # two transactions then never wait on each other in a cycle (deadlock).
                for change in sorted(changes, key=lambda change: change.dossier_id)
            ],
        )
        await self.notify_changes()

    async def mark_progress_pending(self, dossier_ids: Iterable[int], now: datetime) -> None:
        """New progress records to deliver. Dead dossiers stay dead (their progress waits
        for the redrive, as it cannot reach the portal before the dossier does)."""
        ids = list(dossier_ids)
        if not ids:
            return
        await self.session.execute(
            update(SyncState)
            .where(
                SyncState.dossier_id.in_(
                    _locked_in_order(
                        self.one_of(SyncState.dossier_id, ids),
                        SyncState.status != SyncStatus.DEAD.value,
                    )
                )
            )
            .values(
                status=_PENDING,
                next_attempt_at=case(
                    (SyncState.pending_since.is_(None), now), else_=SyncState.next_attempt_at
                ),
                pending_since=func.coalesce(SyncState.pending_since, now),
                change_seq=SyncState.change_seq + 1,
            )
            .execution_options(synchronize_session=False)
        )
        await self.notify_changes()

    async def notify_changes(self) -> None:
        """Tell idle pushers of every process that rows may be due, when this transaction
        commits (PostgreSQL folds repeats within one transaction into one notification).
        No-op on SQLite, which runs one worker and has no such channel."""
        if self.dialect == "postgresql":
            await self.session.execute(select(func.pg_notify(CHANGES_CHANNEL, "")))

    async def claim(
        self,
        owner: str,
        now: datetime,
        lease_for: timedelta,
        limit: int,
        unit: str | None = None,
    ) -> Sequence[SyncState]:
        """Take up to ``limit`` due rows (oldest next-attempt first) under a lease.

        One statement: ``UPDATE … WHERE dossier_id IN (SELECT … FOR UPDATE SKIP LOCKED)
        RETURNING``. Concurrent workers on PostgreSQL skip each other's rows instead of
        waiting; rows whose lease expired (a crashed worker) are due again. SQLite has no
        row locks and runs one worker.
        """
        due = (
            select(SyncState.dossier_id)
            .where(
                SyncState.pending_since.is_not(None),
                SyncState.next_attempt_at <= now,
                (SyncState.lease_expires_at.is_(None)) | (SyncState.lease_expires_at <= now),
            )
            .order_by(SyncState.next_attempt_at)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        if unit is not None:
            due = due.where(SyncState.unit == unit)
        claimed = await self.session.scalars(
            update(SyncState)
            .where(SyncState.dossier_id.in_(due.scalar_subquery()))
            .values(lease_owner=owner, lease_expires_at=now + lease_for)
            .returning(SyncState)
            .execution_options(synchronize_session=False, populate_existing=True)
        )
        return sorted(claimed.all(), key=lambda row: (row.next_attempt_at, row.dossier_id))

    async def extend_leases(
        self,
        owner: str,
        now: datetime,
        lease_for: timedelta,
        dossier_ids: Sequence[int] | None = None,
    ) -> set[int]:
        """Keep ``owner``'s claims (all of them, or those among ``dossier_ids``) while
        their push is in flight, so that a round slower than the lease is not pushed a
        second time by another worker; returns the ids of the rows still ``owner``'s. A
        row another worker claimed once its lease ran out (this process stalled past its
        renewals) is not among them: the row lock orders this against that claim.
        Claimed rows are pending: the partial indexes of the pending set serve the scan."""
        held = [SyncState.pending_since.is_not(None), SyncState.lease_owner == owner]
        if dossier_ids is not None:
            if not dossier_ids:
                return set()
            held.append(self.one_of(SyncState.dossier_id, dossier_ids))
        kept = await self.session.scalars(
            update(SyncState)
            .where(SyncState.dossier_id.in_(_locked_in_order(*held)))
            .values(lease_expires_at=now + lease_for)
            .returning(SyncState.dossier_id)
            .execution_options(synchronize_session=False)
        )
        return set(kept.all())

    def _owned(self, dossier_id: int, owner: str) -> tuple[ColumnElement[bool], ...]:
        return (SyncState.dossier_id == dossier_id, SyncState.lease_owner == owner)

    async def record_acked(
        self,
        dossier_id: int,
        owner: str,
        *,
        version: int,
        portal_status: str,
        claimed_seq: int,
        now: datetime,
    ) -> bool:
        """The portal accepted ``version`` (and the progress sent with it).

        The row leaves the pending set only if nothing changed since the claim
        (``change_seq`` still equals ``claimed_seq``); otherwise it stays due and the next
        push carries the newer change. Returns False when the lease was lost meanwhile.
        """
        caught_up = SyncState.change_seq == claimed_seq
        result = await self.session.execute(
            update(SyncState)
            .where(*self._owned(dossier_id, owner))
            .values(_acknowledged(version, portal_status, caught_up, now))
            .execution_options(synchronize_session=False)
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]

    async def record_acked_many(
        self, acknowledgements: Sequence[Acknowledgement], owner: str, now: datetime
    ) -> None:
        """:meth:`record_acked` for every dossier of a push round in one statement run
        for each row (one round trip, not one per dossier). Rows whose lease ``owner``
        lost meanwhile are left alone, as there."""
        if not acknowledgements:
            return
        c = table_of(SyncState).c
        version = bindparam("b_version", type_=c.acked_version.type)
        caught_up = c.change_seq == bindparam("b_seq")
        await self.session.execute(
            update(table_of(SyncState))
            .where(c.dossier_id == bindparam("b_id"), c.lease_owner == owner)
            .values(_acknowledged(version, bindparam("b_status"), caught_up, now)),
            [
                {
                    "b_id": ack.dossier_id,
                    "b_version": ack.version,
                    "b_status": ack.portal_status,
                    "b_seq": ack.claimed_seq,
                }
                for ack in sorted(acknowledgements, key=lambda ack: ack.dossier_id)
            ],
            execution_options={"synchronize_session": False},
        )

    async def record_failure(
        self,
        dossier_id: int,
        owner: str,
        *,
        error_code: int | None,
        message: str,
        retry_at: datetime,
        exists_at_portal: bool | None = None,
        acked_version: int | None = None,
        acked_status: str | None = None,
        count_attempt: bool = True,
    ) -> bool:
        """A push failed but may succeed later: count the attempt, schedule the next.
        ``acked_version``: the state itself went through (its progress did not).
        ``count_attempt`` False: no call was made (the circuit breaker was open)."""
        values: dict[str, object] = _acked_part(acked_version, acked_status) | {
            "attempts": SyncState.attempts + int(count_attempt),
            "last_error_code": error_code,
            "last_error": message,
            "next_attempt_at": retry_at,
            "lease_owner": None,
            "lease_expires_at": None,
        }
        if exists_at_portal is not None:
            values["exists_at_portal"] = exists_at_portal
        result = await self.session.execute(
            update(SyncState)
            .where(*self._owned(dossier_id, owner))
            .values(**values)
            .execution_options(synchronize_session=False)
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]

    async def mark_dead(
        self,
        dossier_id: int,
        owner: str,
        *,
        error_code: int | None,
        message: str,
        acked_version: int | None = None,
        acked_status: str | None = None,
    ) -> bool:
        """Give up on the dossier until a redrive (the dead letter is written alongside)."""
        result = await self.session.execute(
            update(SyncState)
            .where(*self._owned(dossier_id, owner))
            .values(
                **_acked_part(acked_version, acked_status),
                status=SyncStatus.DEAD.value,
                pending_since=None,
                last_error_code=error_code,
                last_error=message,
                attempts=SyncState.attempts + 1,
                lease_owner=None,
                lease_expires_at=None,
            )
            .execution_options(synchronize_session=False)
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]

    async def give_up(
        self, dossier_id: int, message: str, *, change_seq: int | None = None
    ) -> bool:
        """Dead without a push in flight (read-back found the portal ahead of the source);
        a lease held by a pusher is dropped with it. With ``change_seq``, only if the row
        is still at that change (read-back judged what it read before its look-up: a
        change stored since makes the verdict stale). Whether the row became dead."""
        result = await self.session.execute(
            update(SyncState)
            .where(SyncState.dossier_id == dossier_id, *_at_change(change_seq))
            .values(
                status=SyncStatus.DEAD.value,
                pending_since=None,
                last_error=message,
                last_error_code=None,
                lease_owner=None,
                lease_expires_at=None,
            )
            .execution_options(synchronize_session=False)
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]

    async def release(self, dossier_ids: Iterable[int], owner: str) -> None:
        """Hand claimed rows back untouched (graceful shutdown): due again at once."""
        await self.session.execute(
            update(SyncState)
            .where(
                SyncState.dossier_id.in_(
                    _locked_in_order(
                        self.one_of(SyncState.dossier_id, dossier_ids),
                        SyncState.lease_owner == owner,
                    )
                )
            )
            .values(lease_owner=None, lease_expires_at=None)
            .execution_options(synchronize_session=False)
        )

    async def requeue(
        self,
        dossier_ids: Iterable[int],
        now: datetime,
        reason: str,
        *,
        exists_at_portal: bool | None = None,
        attempts: int = 0,
        change_seq: int | None = None,
    ) -> int:
        """Push again (redrive, or read-back found the portal missing or stale): the
        portal's copy is no longer trusted, so the next push starts from what it holds
        (``exists_at_portal``: what read-back saw, ``None`` when unknown). ``attempts``:
        the budget already spent (a pusher requeueing its own failed push keeps it).
        ``change_seq``: only rows still at that change (see :meth:`give_up`). How many
        rows were queued."""
        ids = list(dossier_ids)
        if not ids:
            return 0
        result = await self.session.execute(
            update(SyncState)
            .where(self.one_of(SyncState.dossier_id, ids), *_at_change(change_seq))
            .values(
                status=_PENDING,
                pending_since=func.coalesce(SyncState.pending_since, now),
                change_seq=SyncState.change_seq + 1,
                acked_version=None,
                confirmed_version=None,
                exists_at_portal=exists_at_portal,
                attempts=attempts,
                next_attempt_at=now,
                last_error=reason,
                last_error_code=None,
            )
            .execution_options(synchronize_session=False)
        )
        await self.notify_changes()
        return int(result.rowcount)  # type: ignore[attr-defined]

    async def mark_confirmed(self, dossier_id: int, version: int, now: datetime) -> bool:
        """Read-back found ``version`` at the portal. Only an acknowledged row whose
        latest version is the one found becomes ``synced``."""
        return await self.mark_confirmed_many([(dossier_id, version)], now) == 1

    async def mark_confirmed_many(self, found: Iterable[tuple[int, int]], now: datetime) -> int:
        """:meth:`mark_confirmed` for many ``(dossier_id, version)`` pairs at once (one
        statement: a read-back round confirms up to a batch of rows); how many rows
        became ``synced``."""
        pairs = list(found)
        if not pairs:
            return 0
        result = await self.session.execute(
            update(SyncState)
            .where(
                self.pairs_of(SyncState.dossier_id, SyncState.pending_version, pairs),
                SyncState.status == SyncStatus.ACKED.value,
            )
            .values(
                status=SyncStatus.SYNCED.value,
                confirmed_version=SyncState.pending_version,
                confirmed_at=now,
            )
            .execution_options(synchronize_session=False)
        )
        return int(result.rowcount)  # type: ignore[attr-defined]

    async def acked_for_readback(self, limit: int, unit: str | None = None) -> Sequence[SyncState]:
        """Acknowledged rows awaiting read-back (of one ``unit``, or all), oldest
        acknowledgement first."""
        query = select(SyncState).where(SyncState.status == SyncStatus.ACKED.value)
        if unit is not None:
            query = query.where(SyncState.unit == unit)
        return (await self.session.scalars(query.order_by(SyncState.acked_at).limit(limit))).all()

    async def synced_after(self, dossier_id: int, limit: int) -> Sequence[SyncState]:
        """Confirmed rows in id order from ``dossier_id`` on: the rolling read-back sweep
        that catches what changed at the portal after it was confirmed."""
        return (
            await self.session.scalars(
                select(SyncState)
                .where(
                    SyncState.status == SyncStatus.SYNCED.value,
                    SyncState.dossier_id > dossier_id,
                )
                .order_by(SyncState.dossier_id)
                .limit(limit)
            )
        ).all()

    async def get(self, dossier_id: int) -> SyncState | None:
        return await self.session.scalar(
            select(SyncState)
            .where(SyncState.dossier_id == dossier_id)
            .execution_options(populate_existing=True)
        )

    async def backlog(self) -> Sequence[UnitBacklog]:
        """How many dossiers per unit are in each sync status."""
        rows = await self.session.execute(
            select(SyncState.unit, SyncState.status, func.count())
            .group_by(SyncState.unit, SyncState.status)
            .order_by(SyncState.unit, SyncState.status)
        )
        return [UnitBacklog(unit, status, count) for unit, status, count in rows.all()]

    async def oldest_pending(self) -> dict[str, datetime]:
        """Per unit, since when its oldest unpushed change has been waiting."""
        rows = await self.session.execute(
            select(SyncState.unit, func.min(SyncState.pending_since))
            .where(SyncState.pending_since.is_not(None))
            .group_by(SyncState.unit)
        )
        return {unit: since for unit, since in rows.all() if since is not None}


def _acknowledged(
    version: object, portal_status: object, caught_up: ColumnElement[bool], now: datetime
) -> dict[str, object]:
    """The columns of an acknowledged row (one or a round's, with bound parameters): it
    leaves the pending set only if nothing changed since the claim (``caught_up``)."""
    c = table_of(SyncState).c
    return {
        "acked_version": case((c.acked_version > version, c.acked_version), else_=version),
        "acked_status": portal_status,
        "exists_at_portal": True,
        "acked_at": now,
        "attempts": 0,
        "last_error": None,
        "last_error_code": None,
        "next_attempt_at": now,
        "status": case((caught_up, SyncStatus.ACKED.value), else_=_PENDING),
        "pending_since": case((caught_up, None), else_=c.pending_since),
        "lease_owner": None,
        "lease_expires_at": None,
    }


def _acked_part(version: int | None, status: str | None) -> dict[str, object]:
    """Columns recording that the portal accepted ``version`` (with ``status``)."""
    if version is None:
        return {}
    return {
        "acked_version": case(
            (SyncState.acked_version > version, SyncState.acked_version), else_=version
        ),
        "acked_status": status,
        "exists_at_portal": True,
    }


def _at_change(change_seq: int | None) -> tuple[ColumnElement[bool], ...]:
    """The row is still at ``change_seq`` (no condition when None)."""
    return () if change_seq is None else (SyncState.change_seq == change_seq,)


def _locked_in_order(*conditions: ColumnElement[bool]) -> ScalarSelect[int]:
    """The ids of the rows matching ``conditions``, locked in key order (``FOR UPDATE``
    of a sorted subquery; a plain multi-row ``UPDATE`` locks in whatever order its scan
    finds the rows, and two such statements can deadlock). SQLite has no row locks."""
    return (
        select(SyncState.dossier_id)
        .where(*conditions)
        .order_by(SyncState.dossier_id)
        .with_for_update()
        .scalar_subquery()
    )
