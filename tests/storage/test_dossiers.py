"""DossierRepository: versions, content hashes, progress de-duplication."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.domain.dossier import parse_dossier
from app.models import DossierRow, ProgressRow
from app.repositories.dossiers import (
    DossierRepository,
    IncomingDossier,
    IncomingProgress,
    StoreOutcome,
)
from tests.factories import RECEIVED_AT, make_dossier, make_progress

NOW = datetime(2024, 1, 26, 3, 0, tzinfo=UTC)
CODE = "000.00.53.H26-240125-00001"


def incoming(
    status: str = "4", at: datetime = NOW, code: str = CODE, **overrides: object
) -> IncomingDossier:
    return IncomingDossier(make_dossier(code, status, **overrides), read_at=at)


@pytest.fixture
def repo(session: AsyncSession) -> DossierRepository:
    return DossierRepository(session)


async def test_first_sight_creates_version_one(repo: DossierRepository) -> None:
    [stored] = await repo.upsert_many([incoming()])
    assert (stored.outcome, stored.version, stored.ma_ho_so) == (StoreOutcome.CREATED, 1, CODE)
    assert stored.unit == "000.00.00.H26"
    row = await repo.get_by_code(CODE)
    assert row is not None
    assert (row.id, row.agency, row.unit, row.status) == (
        stored.dossier_id,
        "000.00.53.H26",
        "000.00.00.H26",
        "4",
    )
    assert row.received_at == RECEIVED_AT
    assert row.first_seen_at == NOW and row.changed_at == NOW


async def test_stored_state_is_the_portal_form_and_parses_back(repo: DossierRepository) -> None:
    dossier = make_dossier(CODE, "10")
    await repo.upsert_many([IncomingDossier(dossier, read_at=NOW)])
    row = await repo.get_by_code(CODE)
    assert row is not None
    assert row.state == dossier.to_portal()
    assert parse_dossier(row.state) == dossier
    assert row.content_hash == dossier.content_hash()


async def test_identical_content_writes_nothing(
    repo: DossierRepository, session: AsyncSession
) -> None:
    await repo.upsert_many([incoming()])
    later = NOW + timedelta(minutes=5)
    [stored] = await repo.upsert_many([incoming(at=later)])
    assert (stored.outcome, stored.version) == (StoreOutcome.UNCHANGED, 1)
    session.expire_all()
    row = await repo.get_by_code(CODE)
    assert row is not None and row.changed_at == NOW  # untouched


async def test_null_and_absent_optional_fields_are_the_same_content(
    repo: DossierRepository,
) -> None:
    await repo.upsert_many([incoming()])
    [stored] = await repo.upsert_many([incoming(GhiChu=None, Fax=None)])
    assert stored.outcome is StoreOutcome.UNCHANGED


async def test_a_change_bumps_the_version_and_only_ever_up(repo: DossierRepository) -> None:
    versions = []
    for step, status in enumerate(["2", "4", "5", "4", "9"]):
        [stored] = await repo.upsert_many([incoming(status, NOW + timedelta(minutes=step))])
        versions.append(stored.version)
    assert versions == [1, 2, 3, 4, 5]
    row = await repo.get_by_code(CODE)
    assert row is not None and (row.version, row.status) == (5, "9")


async def test_later_item_for_the_same_code_wins_within_a_batch(repo: DossierRepository) -> None:
    stored = await repo.upsert_many([incoming("2"), incoming("4")])
    assert len(stored) == 1
    row = await repo.get_by_code(CODE)
    assert row is not None and row.status == "4" and row.version == 1


async def test_mixed_batch_reports_each_outcome(repo: DossierRepository) -> None:
    other = "000.00.53.H26-240125-00002"
    await repo.upsert_many([incoming("2")])
    stored = await repo.upsert_many([incoming("2"), incoming("4", code=other)])
    outcomes = {item.ma_ho_so: (item.outcome, item.version) for item in stored}
    assert outcomes == {CODE: (StoreOutcome.UNCHANGED, 1), other: (StoreOutcome.CREATED, 1)}
    stored = await repo.upsert_many([incoming("4"), incoming("4", code=other)])
    outcomes = {item.ma_ho_so: (item.outcome, item.version) for item in stored}
    assert outcomes == {CODE: (StoreOutcome.UPDATED, 2), other: (StoreOutcome.UNCHANGED, 1)}


async def test_codes_are_unique(repo: DossierRepository, session: AsyncSession) -> None:
    await repo.upsert_many([incoming(), incoming(code="000.00.53.H26-240125-00002")])
    assert await session.scalar(select(func.count()).select_from(DossierRow)) == 2
    assert await repo.ids_by_code([CODE, "000.00.53.H26-nope"]) == {
        CODE: (await repo.get_by_code(CODE)).id  # type: ignore[union-attr]
    }


async def _dossier_id(repo: DossierRepository) -> int:
    [stored] = await repo.upsert_many([incoming()])
    return stored.dossier_id


async def test_progress_is_stored_once_per_identity(
    repo: DossierRepository, session: AsyncSession
) -> None:
    dossier_id = await _dossier_id(repo)
    step = make_progress(CODE, "4")
    same_step_other_department = make_progress(CODE, "4", PhongBanXuLy="Phòng khác")
    added = await repo.add_progress(
        [
            IncomingProgress(dossier_id, step, NOW),
            IncomingProgress(dossier_id, same_step_other_department, NOW),
        ]
    )
    assert added == {dossier_id: 1}
    assert await repo.add_progress([IncomingProgress(dossier_id, step, NOW)]) == {}
    count = await session.scalar(select(func.count()).select_from(ProgressRow))
    assert count == 1


async def test_undelivered_progress_comes_in_the_order_it_happened(
    repo: DossierRepository,
) -> None:
    dossier_id = await _dossier_id(repo)
    base = RECEIVED_AT + timedelta(hours=2)
    late = make_progress(CODE, "9", base + timedelta(days=3), NoiDungXuLy="Có kết quả")
    early = make_progress(CODE, "4", base, NoiDungXuLy="Chuyển xử lý")
    middle = make_progress(CODE, "5", base + timedelta(days=1), NoiDungXuLy="Yêu cầu bổ sung")
    await repo.add_progress([IncomingProgress(dossier_id, r, NOW) for r in (late, early, middle)])
    pending = await repo.undelivered_progress([dossier_id])
    assert [row.status for row in pending[dossier_id]] == ["4", "5", "9"]

    await repo.mark_progress_acked([pending[dossier_id][0].id], NOW)
    pending = await repo.undelivered_progress([dossier_id])
    assert [row.status for row in pending[dossier_id]] == ["5", "9"]
    assert [row.status for row in await repo.progress_of(dossier_id)] == ["4", "5", "9"]


async def test_progress_record_keeps_the_portal_form(repo: DossierRepository) -> None:
    dossier_id = await _dossier_id(repo)
    record = make_progress(CODE, "4")
    await repo.add_progress([IncomingProgress(dossier_id, record, NOW)])
    [row] = await repo.progress_of(dossier_id)
    assert row.record == record.to_portal()
    assert row.occurred_at == record.ThoiDiemXuLy
    assert row.identity_hash == record.identity_hash()
