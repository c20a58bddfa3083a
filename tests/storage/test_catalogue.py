"""CatalogueRepository: the portal's procedure and agency lists, replaced on refresh."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncSession

from app.repositories.catalogue import CatalogueAgency, CatalogueRepository

NOW = datetime(2024, 3, 1, 0, 0, tzinfo=UTC)


def procedure(code: str) -> dict[str, object]:
    return {
        "MaTTHC": code,
        "TenTTHC": f"Thủ tục {code}",
        "MaLinhVuc": "XD",
        "TenLinhVuc": "Xây dựng",
        "ThoiHanGiaiQuyet": 15,
        "CoPhiLePhi": 1,
        "DuDieuKienTrucTuyenToanTrinh": 0,
    }


async def test_refresh_replaces_the_procedure_list(session: AsyncSession) -> None:
    repo = CatalogueRepository(session)
    await repo.replace_procedures([procedure("1.000656"), procedure("1.001612")], NOW)
    assert await repo.procedure_codes() == {"1.000656", "1.001612"}
    await repo.replace_procedures([procedure("2.002154")], NOW)
    assert await repo.procedure_codes() == {"2.002154"}
    stored = await repo.procedure("2.002154")
    assert stored is not None and stored.data["ThoiHanGiaiQuyet"] == 15


async def test_refresh_replaces_the_agency_list(session: AsyncSession) -> None:
    repo = CatalogueRepository(session)
    await repo.replace_agencies(
        [
            CatalogueAgency("000.00.00.H26", "UBND tỉnh Vĩnh Phúc", "TINH"),
            CatalogueAgency("000.00.00.G05", "Bộ Tư pháp", "BO"),
        ],
        NOW,
    )
    assert [(a.code, a.level) for a in await repo.agencies()] == [
        ("000.00.00.G05", "BO"),
        ("000.00.00.H26", "TINH"),
    ]
