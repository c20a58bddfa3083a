"""A source record whose text PostgreSQL cannot hold (a NUL character, valid JSON and
valid by the contract) is quarantined with the field named, its raw form kept with the
character replaced — and the rest of its page is stored. Before, the whole page failed
on PostgreSQL and the poll stopped there for good."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import DossierRow, QuarantineEntry
from app.repositories.sources import SourceRepository
from app.sync.normalise.opencps import normalise
from app.sync.poll import ingest
from tests.sync.test_normalise_opencps import context, opencps_action, opencps_dossier, record

NOW = datetime(2024, 1, 26, 3, 0, tzinfo=UTC)
BROKEN = "000.00.53.H26-240125-00007"
FINE = "000.00.53.H26-240125-00008"


async def test_a_nul_in_a_polled_record_quarantines_it_and_not_the_page(
    session: AsyncSession,
) -> None:
    source = await SourceRepository(session).ensure("h26-opencps", "opencps", NOW)
    raw_broken = record(
        opencps_dossier(dossierId=7, dossierNo=BROKEN, dossierNote="Đăng ký\x00 khai sinh")
    )
    raw_fine = record(opencps_dossier(dossierId=8, dossierNo=FINE))
    page = [normalise(raw, context()) for raw in (raw_broken, raw_fine)]

    report = await ingest(session, source.id, page, NOW)

    assert (report.changed, report.quarantined) == (1, 1)
    stored = (await session.scalars(select(DossierRow.ma_ho_so))).all()
    assert list(stored) == [FINE]
    [entry] = (await session.scalars(select(QuarantineEntry))).all()
    assert entry.ma_ho_so == BROKEN
    assert entry.reason_code == "invalid"
    assert entry.reason.startswith("TrichYeuHoSo: ")
    assert "NUL" in entry.reason
    assert entry.raw["dossier"]["dossierNote"] == "Đăng ký\ufffd khai sinh"


async def test_a_nul_in_a_processing_step_quarantines_that_step_only(
    session: AsyncSession,
) -> None:
    source = await SourceRepository(session).ensure("h26-opencps", "opencps", NOW)
    raw = record(
        opencps_dossier(dossierId=8, dossierNo=FINE),
        actions=[opencps_action(actionNote="chuyển\x00 phòng")],
    )
    report = await ingest(session, source.id, [normalise(raw, context())], NOW)

    assert (report.changed, report.quarantined, report.progress_added) == (1, 1, 0)
    [entry] = (await session.scalars(select(QuarantineEntry))).all()
    assert entry.kind == "progress"
    assert "NUL" in entry.reason
