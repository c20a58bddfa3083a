"""Engine and session factory. The process's entry point (lifespan, worker, CLI) owns them;
request and task boundaries commit, services and repositories never do."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import Connection, event
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from sqlalchemy.ext.asyncio import create_async_engine as _create_async_engine
from sqlalchemy.pool import ConnectionPoolEntry


def is_sqlite(url: str) -> bool:
    return url.startswith("sqlite")


def create_engine(url: str, **options: Any) -> AsyncEngine:
    """An async engine with the settings each backend needs to behave as the service
    expects (foreign keys and WAL on SQLite; pre-ping and a sane pool on PostgreSQL).

    Statement parameters are the records themselves, personal data included: they are
    kept out of exception messages, which end up in logs (contract §8)."""
    options.setdefault("hide_parameters", True)
    if is_sqlite(url):
        engine = _create_async_engine(url, **options)
        event.listen(engine.sync_engine, "connect", _sqlite_on_connect)
        event.listen(engine.sync_engine, "begin", _sqlite_on_begin)
        return engine
    options.setdefault("pool_pre_ping", True)
    options.setdefault("pool_size", 10)
    options.setdefault("max_overflow", 10)
    return _create_async_engine(url, **options)


def _sqlite_on_connect(dbapi_connection: DBAPIConnection, _record: ConnectionPoolEntry) -> None:
    # The sqlite3 module's own transaction handling breaks SAVEPOINT and transactional
    # DDL; hand transactions to SQLAlchemy instead (its documented recipe).
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    # Foreign keys are off by default in SQLite; WAL lets readers (the API, metrics) run
    # while a worker writes; a busy timeout turns short write contention into waiting.
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()


# Execution option marking a connection that runs a unit of work (see `transaction`).
UNIT_OF_WORK = "dossier_sync_unit_of_work"


def _sqlite_on_begin(connection: Connection) -> None:
    # A unit of work takes the write lock when it begins (IMMEDIATE, waiting up to the
    # busy timeout for it). A deferred transaction that has read and then writes after
    # another connection committed fails at once with "database is locked" (SQLite cannot
    # wait there without risking a deadlock), which the engine's concurrent pollers,
    # pusher and read-back would hit all the time. Read-only sessions stay deferred, so
    # that readers never wait for writers (WAL).
    immediate = connection.get_execution_options().get(UNIT_OF_WORK, False)
    connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def create_session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False, autoflush=False)


@asynccontextmanager
async def transaction(
    factory: async_sessionmaker[AsyncSession],
) -> AsyncIterator[AsyncSession]:
    """A unit of work: commits when the block ends normally, rolls back when it raises.
    The one place outside request handlers where the service commits."""
    async with factory() as session, session.begin():
        # Procures the connection now, marked, so that SQLite begins it IMMEDIATE.
        await session.connection(execution_options={UNIT_OF_WORK: True})
        yield session
