"""Store stage: a change and its outbox entry land in one transaction, or neither does."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.db import create_session_factory, transaction
from app.models import DossierRow, ProgressRow, SyncState
from app.repositories.dossiers import IncomingDossier, StoreOutcome
from app.repositories.outbox import OutboxRepository
from app.sync.store import ProgressIn, store
from tests.conftest import IsolatedDatabase
from tests.factories import make_dossier, make_progress

NOW = datetime(2024, 1, 26, 3, 0, tzinfo=UTC)
CODE = "000.00.53.H26-240125-00001"


def dossier(status: str = "4", code: str = CODE) -> IncomingDossier:
    return IncomingDossier(make_dossier(code, status), read_at=NOW)


async def test_a_new_dossier_gets_an_outbox_entry(session: AsyncSession) -> None:
    report = await store(session, [dossier()], [ProgressIn(make_progress(CODE), NOW)], NOW)
    [stored] = report.dossiers
    state = await OutboxRepository(session).get(stored.dossier_id)
    assert state is not None
    assert (state.status, state.pending_version, state.unit) == ("pending", 1, "000.00.00.H26")
    assert report.progress_added == {CODE: 1}


async def test_an_unchanged_dossier_creates_no_work(session: AsyncSession) -> None:
    step = ProgressIn(make_progress(CODE), NOW)
    [stored] = (await store(session, [dossier()], [step], NOW)).dossiers
    outbox = OutboxRepository(session)
    [row] = await outbox.claim("w", NOW, timedelta(seconds=30), limit=1)
    await outbox.record_acked(
        stored.dossier_id, "w", version=1, portal_status="4", claimed_seq=row.change_seq, now=NOW
    )
    report = await store(session, [dossier()], [step], NOW)
    assert report.dossiers[0].outcome is StoreOutcome.UNCHANGED
    assert report.progress_added == {}
    state = await outbox.get(stored.dossier_id)
    assert state is not None and (state.status, state.change_seq) == ("acked", row.change_seq)


async def test_progress_of_an_unknown_dossier_is_handed_back(session: AsyncSession) -> None:
    orphan = make_progress("000.00.53.H26-240125-09999")
    report = await store(session, [], [ProgressIn(orphan, NOW)], NOW)
    assert [p.record for p in report.orphan_progress] == [orphan]
    assert await session.scalar(select(func.count()).select_from(ProgressRow)) == 0


async def test_progress_alone_makes_a_stored_dossier_due(session: AsyncSession) -> None:
    await store(session, [dossier()], [], NOW)
    later = NOW + timedelta(minutes=1)
    step = make_progress(CODE, "5", NoiDungXuLy="Yêu cầu bổ sung")
    report = await store(session, [], [ProgressIn(step, later)], later)
    assert report.progress_added == {CODE: 1}
    state = await session.scalar(select(SyncState))
    assert state is not None and state.change_seq == 2


async def _count(session: AsyncSession, model: type[object]) -> int:
    return int(await session.scalar(select(func.count()).select_from(model)) or 0)


async def test_a_failed_transaction_stores_neither_change_nor_outbox_entry(
    migrated_database: IsolatedDatabase,
) -> None:
    factory = create_session_factory(migrated_database.engine)

    class CrashError(Exception):
        pass

    async def store_then_crash() -> None:
        async with transaction(factory) as session:
            await store(session, [dossier()], [ProgressIn(make_progress(CODE), NOW)], NOW)
            raise CrashError

    with pytest.raises(CrashError):
        await store_then_crash()
    async with factory() as session:
        counts = [await _count(session, m) for m in (DossierRow, SyncState, ProgressRow)]
    assert counts == [0, 0, 0]

    async with transaction(factory) as session:
        await store(session, [dossier()], [ProgressIn(make_progress(CODE), NOW)], NOW)
    async with factory() as session:
        counts = [await _count(session, m) for m in (DossierRow, SyncState, ProgressRow)]
    assert counts == [1, 1, 1]


@pytest.mark.postgresql_only
async def test_concurrent_writers_never_hand_out_a_version_twice(
    migrated_database: IsolatedDatabase,
) -> None:
    factory = create_session_factory(migrated_database.engine)
    async with transaction(factory) as session:
        await store(session, [dossier("2")], [], NOW)

    async def write(status: str) -> int:
        async with transaction(factory) as session:
            [stored] = (await store(session, [dossier(status)], [], NOW)).dossiers
            await asyncio.sleep(0.05)  # hold the row lock while the other writer waits
            return stored.version

    versions = await asyncio.gather(write("4"), write("5"))
    assert sorted(versions) == [2, 3]
    async with factory() as session:
        row = await session.scalar(select(DossierRow))
        state = await session.scalar(select(SyncState))
    assert row is not None and state is not None
    assert row.version == 3 and state.pending_version == 3
