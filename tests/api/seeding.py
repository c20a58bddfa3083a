"""Data for the read and admin API tests, written the way the pipeline writes it: the
store stage stores dossiers (and their outbox rows), the pusher's own repository calls
move them to acknowledged, synced or dead, normalisation's quarantine call files the
refused records."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.db import transaction
from app.domain.agency import agency_of_dossier, unit_of
from app.domain.dates import format_portal_datetime, parse_portal_datetime
from app.domain.dossier import Dossier
from app.domain.progress import ProgressRecord
from app.repositories.dead_letters import DeadLetterRepository
from app.repositories.dossiers import DossierRepository, IncomingDossier
from app.repositories.outbox import OutboxRepository
from app.repositories.quarantine import QuarantineItem, QuarantineRepository
from app.repositories.sources import SourceRepository
from app.sync.store import ProgressIn, store
from tests.domain.factories import CONDITIONAL_REQUIRED
from tests.factories import make_dossier, make_progress

Outcome = Literal["pending", "failed", "acked", "synced", "dead"]
PUSHER = "test-pusher"


def received_dossier(code: str, received: str, status: str = "4") -> Dossier:
    """A valid dossier of ``code`` received (``NgayTiepNhan``) at ``received``
    (``yyyyMMddHHmmss``, Vietnamese time), due two weeks later; a status that ends it
    (3, 8, 9, 10) ended it an hour after reception."""
    at = parse_portal_datetime(received)
    due = format_portal_datetime(at + timedelta(days=14))
    dates = {"NgayNopHoSo": received, "NgayTiepNhan": received, "NgayHenTra": due}
    if status in CONDITIONAL_REQUIRED["NgayKetThucXuLy"]:
        dates["NgayKetThucXuLy"] = format_portal_datetime(at + timedelta(hours=1))
    if status in CONDITIONAL_REQUIRED["NgayTuChoi"]:
        dates["NgayTuChoi"] = dates["NgayKetThucXuLy"]
    return make_dossier(code, status, **dates)


async def source_id(sessions: async_sessionmaker[AsyncSession], name: str, now: datetime) -> int:
    async with transaction(sessions) as session:
        return (await SourceRepository(session).ensure(name, "opencps", now)).id


async def store_dossiers(
    sessions: async_sessionmaker[AsyncSession],
    source: int,
    dossiers: Iterable[Dossier],
    read_at: datetime,
    progress: Iterable[ProgressRecord] = (),
) -> None:
    """The store stage, as a poll of ``source`` at ``read_at`` runs it."""
    async with transaction(sessions) as session:
        await store(
            session,
            [
                IncomingDossier(d, read_at=read_at, source_id=source, source_record_id=d.MaHoSo)
                for d in dossiers
            ],
            [ProgressIn(p, read_at) for p in progress],
            read_at,
        )


async def push_outcomes(
    sessions: async_sessionmaker[AsyncSession],
    outcomes: Mapping[str, Outcome],
    now: datetime,
    *,
    error_code: int = -5,
) -> None:
    """One push round: claim every due row and record for each dossier the outcome
    named (``failed``: a transient refusal, retried in an hour; ``dead``: refused with
    ``error_code``; ``pending`` or absent: handed back untouched), with the pusher's and
    read-back's own repository calls."""
    async with transaction(sessions) as session:
        outbox = OutboxRepository(session)
        dossiers = DossierRepository(session)
        claimed = await outbox.claim(PUSHER, now, timedelta(minutes=5), limit=10_000)
        rows = await dossiers.get_many(state.dossier_id for state in claimed)
        untouched: list[int] = []
        for state in claimed:
            row = rows[state.dossier_id]
            outcome = outcomes.get(row.ma_ho_so, "pending")
            if outcome == "pending":
                untouched.append(row.id)
            elif outcome == "failed":
                await outbox.record_failure(
                    row.id,
                    PUSHER,
                    error_code=-99,
                    message="the portal is busy",
                    retry_at=now + timedelta(hours=1),
                )
            elif outcome == "dead":
                await outbox.mark_dead(
                    row.id, PUSHER, error_code=error_code, message="MaTTHC: unknown"
                )
                await DeadLetterRepository(session).add(
                    dossier_id=row.id,
                    ma_ho_so=row.ma_ho_so,
                    unit=row.unit,
                    agency=row.agency,
                    service="DongBoHoSoMC",
                    version=row.version,
                    error_code=error_code,
                    reason="MaTTHC: unknown",
                    attempts=state.attempts + 1,
                    now=now,
                )
            else:
                await outbox.record_acked(
                    row.id,
                    PUSHER,
                    version=row.version,
                    portal_status=row.status,
                    claimed_seq=state.change_seq,
                    now=now,
                )
                undelivered = await dossiers.undelivered_progress([row.id])
                await dossiers.mark_progress_acked([p.id for p in undelivered.get(row.id, [])], now)
                if outcome == "synced":
                    await outbox.mark_confirmed(row.id, row.version, now)
        await outbox.release(untouched, PUSHER)


@dataclass(frozen=True, slots=True)
class Refused:
    """A source record normalisation refused."""

    code: str | None
    reason_code: str = "unmapped_status"
    reason: str = "TrangThai: trạng thái 11 không có trong bảng ánh xạ"
    kind: str = "dossier"
    record_key: str | None = None


async def quarantine(
    sessions: async_sessionmaker[AsyncSession],
    source: int,
    refused: Iterable[Refused],
    now: datetime,
) -> None:
    async with transaction(sessions) as session:
        repository = QuarantineRepository(session)
        for item in refused:
            agency = agency_of_dossier(item.code) if item.code else None
            await repository.put(
                QuarantineItem(
                    source_id=source,
                    record_key=item.record_key or f"{item.kind}:{item.code}",
                    kind=item.kind,
                    raw={"MaHoSo": item.code, "TrangThai": "11"},
                    reason_code=item.reason_code,
                    reason=item.reason,
                    errors=[{"path": "TrangThai", "code": item.reason_code, "message": "11"}],
                    ma_ho_so=item.code,
                    unit=unit_of(agency) if agency else None,
                    agency=agency,
                ),
                now,
            )


def step(code: str, at: datetime, status: str = "4") -> ProgressRecord:
    return make_progress(code, status, at=at)
