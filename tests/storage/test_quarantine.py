"""QuarantineRepository: one row per source record, first/last seen, reopen on change."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from app.repositories.quarantine import QuarantineItem, QuarantineRepository
from app.repositories.sources import SourceRepository

NOW = datetime(2024, 1, 26, 3, 0, tzinfo=UTC)


@pytest.fixture
async def source_id(session: AsyncSession) -> int:
    return (await SourceRepository(session).ensure("h26-igate", "igate", NOW)).id


def item(
    source_id: int,
    key: str = "dossier:65a1",
    status: str = "11",
    reason_code: str = "unmapped_status",
    unit: str | None = "000.00.00.H26",
) -> QuarantineItem:
    return QuarantineItem(
        source_id=source_id,
        record_key=key,
        kind="dossier",
        raw={"id": key, "dossierStatus": {"id": status}},
        reason_code=reason_code,
        reason=f"dossierStatus.id {status} has no TrangThaiHoSo mapping",
        errors=[{"path": "dossierStatus.id", "code": reason_code, "message": "unmapped"}],
        ma_ho_so="000.00.53.H26-240125-00001",
        unit=unit,
        agency="000.00.53.H26",
    )


async def test_first_sight_keeps_the_raw_record_and_reason(
    session: AsyncSession, source_id: int
) -> None:
    entry = await QuarantineRepository(session).put(item(source_id), NOW)
    assert entry.raw == {"id": "dossier:65a1", "dossierStatus": {"id": "11"}}
    assert (entry.reason_code, entry.seen_count) == ("unmapped_status", 1)
    assert entry.first_seen_at == entry.last_seen_at == NOW
    assert entry.errors[0]["path"] == "dossierStatus.id"
    assert entry.resolved_at is None


async def test_seeing_it_again_moves_last_seen_only(session: AsyncSession, source_id: int) -> None:
    repo = QuarantineRepository(session)
    await repo.put(item(source_id), NOW)
    entry = await repo.put(item(source_id), NOW + timedelta(minutes=5))
    assert (entry.first_seen_at, entry.last_seen_at) == (NOW, NOW + timedelta(minutes=5))
    assert entry.seen_count == 2


async def test_a_changed_record_replaces_raw_and_reason(
    session: AsyncSession, source_id: int
) -> None:
    repo = QuarantineRepository(session)
    first = await repo.put(item(source_id), NOW)
    first_id, first_hash = first.id, first.raw_hash
    changed = await repo.put(
        item(source_id, status="x", reason_code="invalid"), NOW + timedelta(minutes=1)
    )
    assert changed.id == first_id
    assert changed.raw["dossierStatus"] == {"id": "x"}
    assert changed.reason_code == "invalid"
    assert changed.raw_hash != first_hash


async def test_resolve_and_reopen(session: AsyncSession, source_id: int) -> None:
    repo = QuarantineRepository(session)
    await repo.put(item(source_id), NOW)
    assert await repo.resolve(source_id, ["dossier:65a1", "dossier:other"], NOW) == 1
    assert await repo.list_open() == []
    reopened = await repo.put(item(source_id), NOW + timedelta(hours=1))
    assert reopened.resolved_at is None
    assert [e.record_key for e in await repo.list_open()] == ["dossier:65a1"]


async def test_lists_and_counts_by_unit_and_reason(session: AsyncSession, source_id: int) -> None:
    repo = QuarantineRepository(session)
    await repo.put(item(source_id, "dossier:1"), NOW)
    await repo.put(item(source_id, "dossier:2"), NOW)
    await repo.put(item(source_id, "dossier:3", reason_code="unparsable_date"), NOW)
    await repo.put(item(source_id, "dossier:4", unit="000.00.00.H29"), NOW)
    await repo.put(item(source_id, "dossier:5", unit=None, reason_code="invalid"), NOW)
    assert await repo.open_counts() == {
        ("000.00.00.H26", "unmapped_status"): 2,
        ("000.00.00.H26", "unparsable_date"): 1,
        ("000.00.00.H29", "unmapped_status"): 1,
        (None, "invalid"): 1,
    }
    h26 = await repo.list_open(unit="000.00.00.H26", reason_code="unmapped_status")
    assert sorted(e.record_key for e in h26) == ["dossier:1", "dossier:2"]
    assert len(await repo.list_open(source_id=source_id, limit=2)) == 2
