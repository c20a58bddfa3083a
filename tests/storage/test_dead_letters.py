"""DeadLetterRepository: add, list and redrive by unit, error code and time window."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from app.repositories.dead_letters import DeadLetterFilter, DeadLetterRepository
from app.repositories.dossiers import DossierRepository, IncomingDossier
from tests.factories import make_dossier

NOW = datetime(2024, 1, 26, 3, 0, tzinfo=UTC)


async def _letters(session: AsyncSession) -> dict[str, int]:
    codes = {
        "h26-a": ("000.00.53.H26-240125-00001", -6, NOW),
        "h26-b": ("000.00.53.H26-240125-00002", -5, NOW + timedelta(hours=1)),
        "h26-c": ("000.00.53.H26-240125-00003", -6, NOW + timedelta(hours=2)),
        "h29-a": ("000.00.12.H29-240125-00001", -6, NOW + timedelta(hours=1)),
    }
    stored = await DossierRepository(session).upsert_many(
        [IncomingDossier(make_dossier(code), read_at=NOW) for code, _, _ in codes.values()]
    )
    ids = {s.ma_ho_so: s.dossier_id for s in stored}
    repo = DeadLetterRepository(session)
    out = {}
    for name, (code, error, at) in codes.items():
        await repo.add(
            dossier_id=ids[code],
            ma_ho_so=code,
            unit=f"000.00.00.{code[10:13]}",
            agency=code.split("-")[0],
            service="DongBoHoSoMC",
            version=1,
            error_code=error,
            reason=f"error {error}",
            attempts=3,
            now=at,
        )
        out[name] = ids[code]
    return out


async def test_list_filters_combine(session: AsyncSession) -> None:
    await _letters(session)
    repo = DeadLetterRepository(session)
    everything = await repo.list_open(DeadLetterFilter())
    assert len(everything) == 4
    h26 = await repo.list_open(DeadLetterFilter(unit="000.00.00.H26"))
    assert {d.ma_ho_so[-5:] for d in h26} == {"00001", "00002", "00003"}
    refused = await repo.list_open(DeadLetterFilter(unit="000.00.00.H26", error_code=-6))
    assert {d.ma_ho_so[-5:] for d in refused} == {"00001", "00003"}
    recent = await repo.list_open(
        DeadLetterFilter(
            error_code=-6, since=NOW + timedelta(minutes=30), until=NOW + timedelta(hours=2)
        )
    )
    assert [d.unit for d in recent] == ["000.00.00.H29"]


async def test_redrive_closes_only_the_matching_letters(session: AsyncSession) -> None:
    ids = await _letters(session)
    repo = DeadLetterRepository(session)
    redriven = await repo.mark_redriven(
        DeadLetterFilter(unit="000.00.00.H26", error_code=-6), NOW + timedelta(days=1)
    )
    assert redriven == sorted([ids["h26-a"], ids["h26-c"]])
    assert {d.error_code for d in await repo.list_open(DeadLetterFilter(unit="000.00.00.H26"))} == {
        -5
    }
    assert (
        await repo.mark_redriven(
            DeadLetterFilter(unit="000.00.00.H26", error_code=-6), NOW + timedelta(days=2)
        )
        == []
    )  # already redriven
    assert await repo.open_counts() == {("000.00.00.H26", -5): 1, ("000.00.00.H29", -6): 1}
