"""Dossiers (latest canonical state, version, content hash) and their progress records."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import ColumnElement, and_, bindparam, case, func, null, select, update

from app.domain.agency import unit_of_dossier
from app.domain.dossier import Dossier, canonical_hash
from app.domain.progress import ProgressRecord
from app.models import DossierRow, ProgressRow, QuarantineEntry, SyncState, SyncStatus
from app.models.base import table_of
from app.repositories.base import Repository


@dataclass(frozen=True, slots=True)
class IncomingDossier:
    """A validated dossier as read from a source (or pushed to the API)."""

    dossier: Dossier
    read_at: datetime
    source_id: int | None = None
    source_record_id: str | None = None
    source_modified_at: datetime | None = None


class StoreOutcome(StrEnum):
    CREATED = "created"
    UPDATED = "updated"
    UNCHANGED = "unchanged"


@dataclass(frozen=True, slots=True)
class StoredDossier:
    dossier_id: int
    ma_ho_so: str
    unit: str
    version: int
    outcome: StoreOutcome
    read_at: datetime


@dataclass(frozen=True, slots=True)
class AgencyPeriodCount:
    """Dossiers of one agency received (``NgayTiepNhan``) in a period, split by where
    each stands: ``synced`` (read back and confirmed at the portal), ``pending`` (work
    to push, or acknowledged and awaiting read-back — ``acknowledged`` of them),
    ``dead``, or ``quarantined`` (the source's latest record of a stored dossier is in
    quarantine, so the portal cannot hold the latest state whatever the outbox says).
    The four add up to ``received``. ``oldest_pending_since``: the oldest change not yet
    acknowledged among the pending ones."""

    unit: str
    agency: str
    received: int
    synced: int
    pending: int = 0
    acknowledged: int = 0
    dead: int = 0
    quarantined: int = 0
    oldest_pending_since: datetime | None = None


@dataclass(frozen=True, slots=True)
class IncomingProgress:
    dossier_id: int
    record: ProgressRecord
    read_at: datetime
    # ``record.identity_hash()``, when the caller has it already (it is not cheap: a
    # date formatted, JSON encoded and hashed).
    identity_hash: str | None = None

    def identity(self) -> str:
        return self.identity_hash or self.record.identity_hash()


class DossierRepository(Repository):
    async def upsert_many(self, items: Sequence[IncomingDossier]) -> list[StoredDossier]:
        """Store the latest state of each dossier, set-based.

        A dossier whose content hash is unchanged is left alone (no write at all); a
        changed one gets ``version + 1``. On PostgreSQL the existing rows are locked for
        the transaction, so concurrent writers of one dossier cannot hand out a version
        twice. Within one call, a later item for the same ``MaHoSo`` wins.
        """
        latest: dict[str, IncomingDossier] = {}
        for item in items:
            latest[item.dossier.MaHoSo] = item
        if not latest:
            return []
        existing = {
            row.ma_ho_so: row
            for row in (
                await self.session.execute(
                    select(
                        DossierRow.id,
                        DossierRow.ma_ho_so,
                        DossierRow.content_hash,
                        DossierRow.version,
                    )
                    .where(self.one_of(DossierRow.ma_ho_so, latest))
                    .with_for_update()
                )
            ).all()
        }
        results: list[StoredDossier] = []
        inserts: list[dict[str, object]] = []
        updates: list[dict[str, object]] = []
        for code, item in latest.items():
            dossier = item.dossier
            # The portal form once: its hash, and the state stored if it changed.
            state = dossier.to_portal()
            content_hash = canonical_hash(state)
            unit = unit_of_dossier(code)
            row = existing.get(code)
            if row is not None and row.content_hash == content_hash:
                results.append(
                    StoredDossier(
                        row.id, code, unit, row.version, StoreOutcome.UNCHANGED, item.read_at
                    )
                )
                continue
            values: dict[str, object] = {
                "unit": unit,
                "agency": dossier.agency,
                "source_id": item.source_id,
                "source_record_id": item.source_record_id,
                "status": dossier.status.value,
                "state": state,
                "content_hash": content_hash,
                "received_at": dossier.NgayTiepNhan,
                "source_modified_at": item.source_modified_at,
                "changed_at": item.read_at,
            }
            if row is None:
                inserts.append(
                    values | {"ma_ho_so": code, "version": 1, "first_seen_at": item.read_at}
                )
            else:
                updates.append(values | {"b_id": row.id, "version": row.version + 1})
                results.append(
                    StoredDossier(
                        row.id, code, unit, row.version + 1, StoreOutcome.UPDATED, item.read_at
                    )
                )
        if updates:
            table = table_of(DossierRow)
            await self.session.execute(
                update(table).where(table.c.id == bindparam("b_id")),
                updates,
                execution_options={"synchronize_session": False},
            )
        if inserts:
            created = await self.session.execute(
                table_of(DossierRow)
                .insert()
                .returning(
                    DossierRow.id,
                    DossierRow.ma_ho_so,
                    sort_by_parameter_order=True,
                ),
                inserts,
            )
            for (new_id, new_code), values in zip(created.all(), inserts, strict=True):
                results.append(
                    StoredDossier(
                        new_id,
                        new_code,
                        str(values["unit"]),
                        1,
                        StoreOutcome.CREATED,
                        latest[new_code].read_at,
                    )
                )
        return results

    async def get_by_code(self, ma_ho_so: str) -> DossierRow | None:
        return await self.session.scalar(select(DossierRow).where(DossierRow.ma_ho_so == ma_ho_so))

    async def get_many(self, dossier_ids: Iterable[int]) -> dict[int, DossierRow]:
        rows = await self.session.scalars(
            select(DossierRow).where(self.one_of(DossierRow.id, dossier_ids))
        )
        return {row.id: row for row in rows}

    async def content_hashes(self, codes: Iterable[str]) -> dict[str, str]:
        """``MaHoSo`` → content hash of the stored state, for the codes that are stored."""
        rows = await self.session.execute(
            select(DossierRow.ma_ho_so, DossierRow.content_hash).where(
                self.one_of(DossierRow.ma_ho_so, codes)
            )
        )
        return dict(rows.all())

    async def ids_by_code(self, codes: Iterable[str]) -> dict[str, int]:
        rows = await self.session.execute(
            select(DossierRow.ma_ho_so, DossierRow.id).where(
                self.one_of(DossierRow.ma_ho_so, codes)
            )
        )
        return dict(rows.all())

    async def units(self) -> list[str]:
        """The top-level units with stored dossiers (few: one per portal account), for
        the per-unit 766 gauges."""
        rows = await self.session.scalars(
            select(DossierRow.unit).distinct().order_by(DossierRow.unit)
        )
        return list(rows.all())

    async def received_by_agency(
        self,
        since: datetime,
        until: datetime,
        *,
        unit: str | None = None,
        agency: str | None = None,
    ) -> Sequence[AgencyPeriodCount]:
        """Per agency (of one ``unit`` or one ``agency``, or all), the dossiers received
        in ``[since, until)`` by sync state: the figures behind the sync rate (766
        indicator 1.4), shared by the ``dossier_sync_ratio`` gauge and the unit sync API
        so that both always tell the same number."""
        # Open quarantine of a dossier's latest record from the source that stores it
        # (another source's refusal of the same code says nothing about this copy).
        held = (
            select(QuarantineEntry.source_id, QuarantineEntry.ma_ho_so)
            .where(QuarantineEntry.resolved_at.is_(None), QuarantineEntry.kind == "dossier")
            .distinct()
            .subquery()
        )
        quarantined = held.c.ma_ho_so.is_not(None)
        status = SyncState.status

        def count(condition: ColumnElement[bool]) -> ColumnElement[Any]:
            return func.sum(case((quarantined, 0), (condition, 1), else_=0))

        query = (
            select(
                DossierRow.unit,
                DossierRow.agency,
                func.count(),
                count(status == SyncStatus.SYNCED.value),
                count(status.in_([SyncStatus.PENDING.value, SyncStatus.ACKED.value])),
                count(status == SyncStatus.ACKED.value),
                count(status == SyncStatus.DEAD.value),
                func.sum(case((quarantined, 1), else_=0)),
                func.min(case((quarantined, null()), else_=SyncState.pending_since)),
            )
            .outerjoin(SyncState, SyncState.dossier_id == DossierRow.id)
            .outerjoin(
                held,
                and_(
                    held.c.ma_ho_so == DossierRow.ma_ho_so,
                    held.c.source_id == DossierRow.source_id,
                ),
            )
            .where(DossierRow.received_at >= since, DossierRow.received_at < until)
            .group_by(DossierRow.unit, DossierRow.agency)
            .order_by(DossierRow.unit, DossierRow.agency)
        )
        if unit is not None:
            query = query.where(DossierRow.unit == unit)
        if agency is not None:
            query = query.where(DossierRow.agency == agency)
        return [
            AgencyPeriodCount(
                row_unit,
                row_agency,
                int(received),
                int(synced or 0),
                pending=int(pending or 0),
                acknowledged=int(acknowledged or 0),
                dead=int(dead or 0),
                quarantined=int(held_count or 0),
                oldest_pending_since=oldest,
            )
            for (
                row_unit,
                row_agency,
                received,
                synced,
                pending,
                acknowledged,
                dead,
                held_count,
                oldest,
            ) in (await self.session.execute(query)).all()
        ]

    # --- progress ---------------------------------------------------------------------

    async def add_progress(self, items: Sequence[IncomingProgress]) -> Mapping[int, int]:
        """Store progress records not seen before (same identity = same step, contract
        §3.2). Returns how many new records each dossier got."""
        added: dict[int, int] = {}
        for dossier_id, _identity in await self.add_new_progress(items):
            added[dossier_id] = added.get(dossier_id, 0) + 1
        return added

    async def add_new_progress(self, items: Sequence[IncomingProgress]) -> set[tuple[int, str]]:
        """:meth:`add_progress`, answering which records were new: the ``(dossier id,
        identity hash)`` of each one stored now (push mode answers per record)."""
        fresh: dict[tuple[int, str], IncomingProgress] = {}
        for item in items:
            fresh.setdefault((item.dossier_id, item.identity()), item)
        if not fresh:
            return set()
        known = await self.session.execute(
            select(ProgressRow.dossier_id, ProgressRow.identity_hash).where(
                self.pairs_of(ProgressRow.dossier_id, ProgressRow.identity_hash, fresh)
            )
        )
        for key in known.all():
            fresh.pop((key[0], key[1]), None)
        if not fresh:
            return set()
        await self.session.execute(
            table_of(ProgressRow).insert(),
            [
                {
                    "dossier_id": dossier_id,
                    "identity_hash": identity,
                    "record": item.record.to_portal(),
                    "occurred_at": item.record.ThoiDiemXuLy,
                    "status": item.record.TrangThai.value,
                    "read_at": item.read_at,
                }
                for (dossier_id, identity), item in fresh.items()
            ],
        )
        return set(fresh)

    async def undelivered_progress(
        self, dossier_ids: Iterable[int]
    ) -> dict[int, list[ProgressRow]]:
        """Progress the portal has not acknowledged, per dossier, in the order it happened."""
        rows = await self.session.scalars(
            select(ProgressRow)
            .where(self.one_of(ProgressRow.dossier_id, dossier_ids), ProgressRow.acked_at.is_(None))
            .order_by(ProgressRow.dossier_id, ProgressRow.occurred_at, ProgressRow.id)
        )
        out: dict[int, list[ProgressRow]] = {}
        for row in rows:
            out.setdefault(row.dossier_id, []).append(row)
        return out

    async def progress_of(self, dossier_id: int) -> Sequence[ProgressRow]:
        return (
            await self.session.scalars(
                select(ProgressRow)
                .where(ProgressRow.dossier_id == dossier_id)
                .order_by(ProgressRow.occurred_at, ProgressRow.id)
            )
        ).all()

    async def delivered_identities(self, dossier_ids: Iterable[int]) -> dict[int, set[str]]:
        """Identity hashes of the steps the portal acknowledged, per dossier."""
        rows = await self.session.execute(
            select(ProgressRow.dossier_id, ProgressRow.identity_hash).where(
                self.one_of(ProgressRow.dossier_id, dossier_ids), ProgressRow.acked_at.is_not(None)
            )
        )
        out: dict[int, set[str]] = {}
        for dossier_id, identity in rows.all():
            out.setdefault(dossier_id, set()).add(identity)
        return out

    async def reset_progress_delivery(
        self, dossier_id: int, delivered_identities: Iterable[str] = ()
    ) -> int:
        """Read-back found these steps missing at the portal: deliver them again (all but
        those whose identity hash the portal does hold)."""
        keep = list(delivered_identities)
        statement = update(ProgressRow).where(
            ProgressRow.dossier_id == dossier_id, ProgressRow.acked_at.is_not(None)
        )
        if keep:
            statement = statement.where(ProgressRow.identity_hash.not_in(keep))
        result = await self.session.execute(
            statement.values(acked_at=None).execution_options(synchronize_session=False)
        )
        return int(result.rowcount)  # type: ignore[attr-defined]

    async def mark_progress_acked(self, progress_ids: Iterable[int], now: datetime) -> None:
        await self.session.execute(
            update(ProgressRow)
            .where(self.one_of(ProgressRow.id, progress_ids), ProgressRow.acked_at.is_(None))
            .values(acked_at=now)
            .execution_options(synchronize_session=False)
        )
