"""Quarantined source records: kept with their reason until they change or are fixed."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, func, or_, select, update

from app.domain.dossier import canonical_hash
from app.domain.storable import storable
from app.models import DossierRow, QuarantineEntry, Source
from app.models.base import table_of
from app.repositories.base import Repository


@dataclass(frozen=True, slots=True)
class QuarantineItem:
    source_id: int
    record_key: str
    kind: str  # dossier | progress
    raw: dict[str, Any]
    reason_code: str
    reason: str
    errors: list[dict[str, str]]
    ma_ho_so: str | None = None
    unit: str | None = None
    agency: str | None = None


@dataclass(frozen=True, slots=True)
class QuarantineFilter:
    """Which open entries a listing covers (all given conditions hold). ``unit`` or
    ``agency``: entries of that unit's (agency's) dossiers; ``unknown_from``: also the
    entries whose unit could not be read, from these sources."""

    unit: str | None = None
    agency: str | None = None
    unknown_from: tuple[int, ...] = ()
    source_ids: tuple[int, ...] | None = None
    reason_code: str | None = None
    kind: str | None = None


class QuarantineRepository(Repository):
    async def put(self, item: QuarantineItem, now: datetime) -> QuarantineEntry:
        """Quarantine a record, or note that it was seen again.

        The same source record keeps one row: ``first_seen_at`` stays, ``last_seen_at``
        and ``seen_count`` move, and a new raw form or reason replaces the old (and reopens
        an entry that had been resolved).
        """
        table = table_of(QuarantineEntry)
        statement = self.insert(QuarantineEntry)
        excluded = statement.excluded
        # A record is often quarantined *because* its text is unfit to store (NUL): keep
        # it anyway, with such characters replaced, rather than fail the whole page.
        raw = storable(item.raw)
        await self.session.execute(
            statement.values(
                source_id=item.source_id,
                record_key=storable(item.record_key),
                kind=item.kind,
                ma_ho_so=storable(item.ma_ho_so),
                unit=item.unit,
                agency=item.agency,
                raw=raw,
                raw_hash=canonical_hash(raw),
                reason_code=item.reason_code,
                reason=storable(item.reason),
                errors=storable(item.errors),
                first_seen_at=now,
                last_seen_at=now,
                seen_count=1,
                resolved_at=None,
            ).on_conflict_do_update(
                index_elements=["source_id", "record_key"],
                set_={
                    "kind": excluded.kind,
                    "ma_ho_so": excluded.ma_ho_so,
                    "unit": excluded.unit,
                    "agency": excluded.agency,
                    "raw": excluded.raw,
                    "raw_hash": excluded.raw_hash,
                    "reason_code": excluded.reason_code,
                    "reason": excluded.reason,
                    "errors": excluded.errors,
                    "last_seen_at": now,
                    "seen_count": table.c.seen_count + 1,
                    "resolved_at": None,
                },
            )
        )
        entry = await self.get(item.source_id, item.record_key)
        assert entry is not None  # noqa: S101 - just upserted
        return entry

    async def get(self, source_id: int, record_key: str) -> QuarantineEntry | None:
        return await self.session.scalar(
            select(QuarantineEntry)
            .where(QuarantineEntry.source_id == source_id, QuarantineEntry.record_key == record_key)
            .execution_options(populate_existing=True)
        )

    async def resolve(self, source_id: int, record_keys: Sequence[str], now: datetime) -> int:
        """The records became valid (changed at the source, or the mapping was fixed)."""
        if not record_keys:
            return 0
        result = await self.session.execute(
            update(QuarantineEntry)
            .where(
                QuarantineEntry.source_id == source_id,
                self.one_of(QuarantineEntry.record_key, record_keys),
                QuarantineEntry.resolved_at.is_(None),
            )
            .values(resolved_at=now)
            .execution_options(synchronize_session=False)
        )
        return int(result.rowcount)  # type: ignore[attr-defined]

    async def list_open(
        self,
        *,
        unit: str | None = None,
        source_id: int | None = None,
        reason_code: str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> Sequence[QuarantineEntry]:
        query = select(QuarantineEntry).where(QuarantineEntry.resolved_at.is_(None))
        if unit is not None:
            query = query.where(QuarantineEntry.unit == unit)
        if source_id is not None:
            query = query.where(QuarantineEntry.source_id == source_id)
        if reason_code is not None:
            query = query.where(QuarantineEntry.reason_code == reason_code)
        query = query.order_by(QuarantineEntry.last_seen_at.desc(), QuarantineEntry.id)
        return (await self.session.scalars(query.limit(limit).offset(offset))).all()

    async def open_counts(self) -> dict[tuple[str | None, str], int]:
        """Open entries per (unit, reason code): the "top reasons" of reports and metrics."""
        rows = await self.session.execute(
            select(QuarantineEntry.unit, QuarantineEntry.reason_code, func.count())
            .where(QuarantineEntry.resolved_at.is_(None))
            .group_by(QuarantineEntry.unit, QuarantineEntry.reason_code)
        )
        return {(unit, reason): count for unit, reason, count in rows.all()}

    async def open_counts_by_source(self) -> dict[tuple[str, str], int]:
        """Open entries per (source name, reason code): ``dossier_sync_quarantined``. By
        source rather than unit because a record whose unit could not be read still has
        the source that sent it, and fixing a mapping is done per source."""
        rows = await self.session.execute(
            select(Source.name, QuarantineEntry.reason_code, func.count())
            .join(Source, Source.id == QuarantineEntry.source_id)
            .where(QuarantineEntry.resolved_at.is_(None))
            .group_by(Source.name, QuarantineEntry.reason_code)
        )
        return {(source, reason): int(count) for source, reason, count in rows.all()}

    async def open_dossier_counts(self) -> dict[str | None, int]:
        """Open entries of kind ``dossier`` per unit (``None``: the unit could not be
        read from the record): the ``quarantined`` state of the dossier counts."""
        rows = await self.session.execute(
            select(QuarantineEntry.unit, func.count())
            .where(QuarantineEntry.resolved_at.is_(None), QuarantineEntry.kind == "dossier")
            .group_by(QuarantineEntry.unit)
        )
        return {unit: int(count) for unit, count in rows.all()}

    def _open(self, where: QuarantineFilter) -> list[Any]:
        conditions: list[Any] = [QuarantineEntry.resolved_at.is_(None)]
        reach: list[Any] = []
        if where.agency is not None:
            reach.append(QuarantineEntry.agency == where.agency)
        elif where.unit is not None:
            reach.append(QuarantineEntry.unit == where.unit)
        if reach and where.unknown_from:
            reach.append(
                and_(
                    QuarantineEntry.unit.is_(None),
                    QuarantineEntry.source_id.in_(list(where.unknown_from)),
                )
            )
        if reach:
            conditions.append(or_(*reach))
        if where.source_ids is not None:
            conditions.append(QuarantineEntry.source_id.in_(list(where.source_ids)))
        if where.reason_code is not None:
            conditions.append(QuarantineEntry.reason_code == where.reason_code)
        if where.kind is not None:
            conditions.append(QuarantineEntry.kind == where.kind)
        return conditions

    async def page_open(
        self, where: QuarantineFilter, *, limit: int = 100, offset: int = 0
    ) -> tuple[Sequence[QuarantineEntry], int]:
        """One page of the matching open entries (most recently seen first) and how many
        match in all."""
        conditions = self._open(where)
        total = await self.session.scalar(
            select(func.count()).select_from(QuarantineEntry).where(*conditions)
        )
        entries = await self.session.scalars(
            select(QuarantineEntry)
            .where(*conditions)
            .order_by(QuarantineEntry.last_seen_at.desc(), QuarantineEntry.id)
            .limit(limit)
            .offset(offset)
        )
        return entries.all(), int(total or 0)

    async def open_for_dossier(self, ma_ho_so: str) -> Sequence[QuarantineEntry]:
        """The open entries of one dossier (its record and its steps, from any source)."""
        return (
            await self.session.scalars(
                select(QuarantineEntry)
                .where(QuarantineEntry.ma_ho_so == ma_ho_so, QuarantineEntry.resolved_at.is_(None))
                .order_by(QuarantineEntry.kind, QuarantineEntry.last_seen_at.desc())
            )
        ).all()

    async def count_never_stored(self, *, unit: str, agency: str | None = None) -> int:
        """Dossiers of ``unit`` (or ``agency``) held in quarantine that were never stored
        valid: their source records exist, but no version of them could be read."""
        stored = select(DossierRow.id).where(DossierRow.ma_ho_so == QuarantineEntry.ma_ho_so)
        query = select(func.count(func.distinct(QuarantineEntry.ma_ho_so))).where(
            QuarantineEntry.resolved_at.is_(None),
            QuarantineEntry.kind == "dossier",
            QuarantineEntry.unit == unit,
            ~stored.exists(),
        )
        if agency is not None:
            query = query.where(QuarantineEntry.agency == agency)
        return int(await self.session.scalar(query) or 0)
