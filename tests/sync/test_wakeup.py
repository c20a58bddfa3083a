"""The LISTEN/NOTIFY wake-up hint: outbox changes notify on commit (PostgreSQL), and the
listener of an engine survives its connection dropping or the database being away."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import asyncpg
import pytest

from app.config import Settings
from app.db import create_session_factory, transaction
from app.repositories.dossiers import DossierRepository, IncomingDossier
from app.repositories.outbox import OutboxRepository, PendingChange
from app.sync.engine import Engine
from app.sync.wakeup import WakeupListener, connector_for
from tests.conftest import IsolatedDatabase
from tests.factories import make_dossier
from tests.service.helpers import eventually

NOW = datetime(2024, 1, 26, 3, 0, tzinfo=UTC)


class Counter:
    def __init__(self) -> None:
        self.calls = 0

    def __call__(self) -> None:
        self.calls += 1


@asynccontextmanager
async def listening(listener: WakeupListener) -> AsyncIterator[asyncio.Task[None]]:
    stop = asyncio.Event()
    task = asyncio.create_task(listener.run(stop))
    try:
        yield task
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=10)


class _RollBackError(Exception):
    pass


async def store_change(database: IsolatedDatabase, code: str, *, commit: bool) -> None:
    """A new dossier and its outbox row, committed or rolled back."""
    sessions = create_session_factory(database.engine)
    with contextlib.suppress(_RollBackError):
        async with transaction(sessions) as session:
            [stored] = await DossierRepository(session).upsert_many(
                [IncomingDossier(make_dossier(code), read_at=NOW)]
            )
            await OutboxRepository(session).mark_pending(
                [PendingChange(stored.dossier_id, stored.unit, stored.version, NOW)], NOW
            )
            if not commit:
                raise _RollBackError


@pytest.mark.postgresql_only
async def test_a_committed_change_notifies_and_a_rolled_back_one_does_not(
    migrated_database: IsolatedDatabase,
) -> None:
    connect = connector_for(migrated_database.engine)
    assert connect is not None
    woken = Counter()
    listener = WakeupListener(connect, woken)
    async with listening(listener):
        await asyncio.wait_for(listener.listening.wait(), timeout=10)
        await eventually(lambda: woken.calls == 1, "the wake-up on listening")
        await store_change(migrated_database, "000.00.53.H26-240125-00001", commit=False)
        await asyncio.sleep(0.3)
        assert woken.calls == 1
        await store_change(migrated_database, "000.00.53.H26-240125-00002", commit=True)
        await eventually(lambda: woken.calls == 2, "the notification of the commit")


@pytest.mark.postgresql_only
async def test_the_listener_reconnects_when_its_connection_is_killed(
    migrated_database: IsolatedDatabase, database_url: str
) -> None:
    connect = connector_for(migrated_database.engine)
    assert connect is not None
    woken = Counter()
    listener = WakeupListener(connect, woken, backoff_initial_s=0.05)
    async with listening(listener) as task:
        await asyncio.wait_for(listener.listening.wait(), timeout=10)
        first = listener.server_pid
        admin = await asyncpg.connect(database_url.replace("postgresql+asyncpg", "postgresql"))
        try:
            assert await admin.fetchval("SELECT pg_terminate_backend($1)", first)
        finally:
            await admin.close()
        await eventually(
            lambda: listener.server_pid not in (None, first), "a new listening connection"
        )
        assert not task.done()
        calls = woken.calls
        assert calls >= 2  # woken on listening again: notifications may have been missed
        await store_change(migrated_database, "000.00.53.H26-240125-00003", commit=True)
        await eventually(lambda: woken.calls > calls, "a notification on the new connection")


async def test_an_unreachable_database_is_retried_without_stopping() -> None:
    attempts = Counter()

    async def refused() -> Any:
        attempts()
        raise ConnectionRefusedError

    listener = WakeupListener(refused, Counter(), backoff_initial_s=0.01, backoff_max_s=0.04)
    async with listening(listener) as task:
        await eventually(lambda: attempts.calls >= 4, "several attempts")
        assert not task.done()
    assert not listener.listening.is_set()


async def test_only_a_pusher_on_postgresql_listens(
    backend: str, migrated_database: IsolatedDatabase
) -> None:
    sessions = create_session_factory(migrated_database.engine)
    settings = Settings(database_url=migrated_database.url)
    pusher = Engine(settings, sessions)
    without = Engine(settings, sessions, pushers=False)
    try:
        assert (pusher.wakeup is not None) is (backend == "postgresql")
        assert without.wakeup is None
    finally:
        await pusher.aclose()
        await without.aclose()
