"""Shared fixtures: every database test runs on SQLite and on PostgreSQL.

PostgreSQL comes from ``DOSSIER_SYNC_TEST_POSTGRES_URL`` (``.ci/run`` creates a fresh
database and sets it); when that is set, failing to connect is an error, never a skip.
Without it, the suite creates a throwaway database on the local server
(``DOSSIER_SYNC_TEST_POSTGRES_ADMIN_URL``, default ``postgresql://127.0.0.1:5432/postgres``)
and drops it afterwards; only if no local server answers are the PostgreSQL cases skipped,
with a reason that says so (and ``.ci/run`` fails on such a skip).
"""

from __future__ import annotations

import io
import logging
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import pytest
from hypothesis import settings
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from app import migrate
from app.db import create_engine
from app.logs import configure_logging

# Locally, every run explores new examples. In CI (`.ci/run` sets DOSSIER_SYNC_TEST_CI=1)
# the examples are derandomized, so that a landing cannot hinge on the luck of the draw;
# a property that fails locally is investigated from its printed example.
settings.register_profile("ci", derandomize=True)
if os.environ.get("DOSSIER_SYNC_TEST_CI") == "1":
    settings.load_profile("ci")

POSTGRES_URL_ENV = "DOSSIER_SYNC_TEST_POSTGRES_URL"
POSTGRES_ADMIN_ENV = "DOSSIER_SYNC_TEST_POSTGRES_ADMIN_URL"
DEFAULT_ADMIN_URL = "postgresql://127.0.0.1:5432/postgres"
BACKENDS = ("sqlite", "postgresql")


def _asyncpg_dsn(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://", 1)


def _sqlalchemy_url(url: str) -> str:
    for prefix in ("postgresql+asyncpg://", "postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+asyncpg://" + url[len(prefix) :]
    raise ValueError(f"{POSTGRES_URL_ENV} must be a postgresql:// URL, got {url!r}")


@dataclass
class PostgresServer:
    url: str | None  # SQLAlchemy URL of the test database, None when unavailable
    reason: str = ""
    created: str | None = None  # name of a database this run created (and drops)
    admin_dsn: str | None = None


@pytest.fixture(scope="session")
async def postgres_server() -> AsyncIterator[PostgresServer]:
    configured = os.environ.get(POSTGRES_URL_ENV)
    if configured:
        url = _sqlalchemy_url(configured)
        connection = await asyncpg.connect(_asyncpg_dsn(url), timeout=10)  # errors, never skips
        await connection.close()
        yield PostgresServer(url)
        return
    admin = os.environ.get(POSTGRES_ADMIN_ENV, DEFAULT_ADMIN_URL)
    try:
        connection = await asyncpg.connect(_asyncpg_dsn(admin), timeout=5)
    except (OSError, asyncpg.PostgresError) as exc:
        yield PostgresServer(None, f"no PostgreSQL at {admin} ({exc}); set {POSTGRES_URL_ENV}")
        return
    name = f"dossier_sync_test_{uuid.uuid4().hex[:12]}"
    try:
        await connection.execute(f'CREATE DATABASE "{name}"')
    finally:
        await connection.close()
    test_url = make_url(_sqlalchemy_url(admin)).set(database=name)
    server = PostgresServer(
        test_url.render_as_string(hide_password=False), created=name, admin_dsn=_asyncpg_dsn(admin)
    )
    yield server
    connection = await asyncpg.connect(server.admin_dsn)
    try:
        await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await connection.close()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked ``postgresql_only`` exercise what SQLite does not have (row locks,
    SKIP LOCKED); their SQLite variants are deselected, not skipped."""
    keep: list[pytest.Item] = []
    dropped: list[pytest.Item] = []
    for item in items:
        callspec = getattr(item, "callspec", None)
        on_sqlite = callspec is not None and callspec.params.get("backend") == "sqlite"
        if on_sqlite and item.get_closest_marker("postgresql_only"):
            dropped.append(item)
        else:
            keep.append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = keep


@pytest.fixture(scope="session", params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


@pytest.fixture(scope="session")
def database_url(
    backend: str, request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> str:
    if backend == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('db') / 'test.db'}"
    # Looked up only here, so that SQLite cases run even when PostgreSQL is broken.
    postgres_server: PostgresServer = request.getfixturevalue("postgres_server")
    if postgres_server.url is None:
        pytest.skip(f"PostgreSQL unavailable: {postgres_server.reason}")
    return postgres_server.url


@pytest.fixture(scope="session")
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    """The backend's test database, migrated to head once per run."""
    engine = create_engine(database_url)
    await migrate.run_on(engine, "upgrade", "head")
    yield engine
    await engine.dispose()


@pytest.fixture
async def session(engine: AsyncEngine) -> AsyncIterator[AsyncSession]:
    """A session inside a transaction that is rolled back after the test: code under
    test may flush and even commit (savepoints); nothing outlives the test."""
    async with engine.connect() as connection:
        transaction = await connection.begin()
        session = AsyncSession(
            bind=connection, join_transaction_mode="create_savepoint", expire_on_commit=False
        )
        try:
            yield session
        finally:
            await session.close()
            await transaction.rollback()


@dataclass
class IsolatedDatabase:
    """An empty database of its own (a schema on PostgreSQL, a file on SQLite), for tests
    that need real commits between concurrent transactions, or run migrations."""

    url: str
    engine: AsyncEngine


@pytest.fixture
async def isolated_database(
    backend: str, database_url: str, tmp_path: Path
) -> AsyncIterator[IsolatedDatabase]:
    if backend == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path / 'isolated.db'}"
        engine = create_engine(url)
        yield IsolatedDatabase(url, engine)
        await engine.dispose()
        return
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(_asyncpg_dsn(database_url))
    try:
        await admin.execute(f'CREATE SCHEMA "{schema}"')
        engine = create_engine(
            database_url, connect_args={"server_settings": {"search_path": schema}}
        )
        try:
            yield IsolatedDatabase(database_url, engine)
        finally:
            await engine.dispose()
            await admin.execute(f'DROP SCHEMA "{schema}" CASCADE')
    finally:
        await admin.close()


@pytest.fixture
async def migrated_database(isolated_database: IsolatedDatabase) -> IsolatedDatabase:
    await migrate.run_on(isolated_database.engine, "upgrade", "head")
    return isolated_database


@pytest.fixture
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No ``DOSSIER_SYNC_*`` settings leak in from the shell running the tests."""
    for name in list(os.environ):
        if name.startswith("DOSSIER_SYNC_") and not name.startswith("DOSSIER_SYNC_TEST_"):
            monkeypatch.delenv(name)


@pytest.fixture
def captured_logs() -> Iterator[io.StringIO]:
    """Every log line of the process (structlog and stdlib, as configured for production)
    captured in JSON while the test runs."""
    stream = io.StringIO()
    root = logging.getLogger()
    saved_handlers, saved_level = root.handlers[:], root.level
    configure_logging("DEBUG", "json", stream)
    yield stream
    root.handlers[:] = saved_handlers
    root.setLevel(saved_level)
