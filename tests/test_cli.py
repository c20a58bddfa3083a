"""The command line, run as a newcomer would: as a real process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import httpx
import pytest
from sqlalchemy import inspect
from sqlalchemy.engine import make_url

from app import migrate
from app.db import create_engine
from app.mockportal.server import free_port
from app.models import Base


def run(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("DOSSIER_SYNC_")}
    return subprocess.run(  # noqa: S603 - our own CLI, fixed arguments
        [sys.executable, "-m", "app", *args],
        env=clean | (env or {}),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


SECRET = "not-echoed-pw"


def test_help_lists_the_commands() -> None:
    result = run("--help")
    assert result.returncode == 0
    assert "db" in result.stdout


@pytest.fixture
async def empty_database_url(backend: str, database_url: str, tmp_path: Path) -> AsyncIterator[str]:
    """A URL to a database nobody has migrated (a new file, or a new PostgreSQL database)."""
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path / 'cli.db'}"
        return
    name = f"dossier_sync_cli_{uuid.uuid4().hex[:10]}"
    dsn = database_url.replace("postgresql+asyncpg://", "postgresql://", 1)
    admin = await asyncpg.connect(dsn)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        # The server trusts local connections; the password is there to check it is
        # never echoed.
        url = make_url(database_url).set(database=name, password=SECRET)
        yield url.render_as_string(hide_password=False)
        await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
    finally:
        await admin.close()


async def _tables(url: str) -> set[str]:
    engine = create_engine(
        url.replace("sqlite:///", "sqlite+aiosqlite:///", 1)
        if url.startswith("sqlite:///")
        else url
    )
    try:
        async with engine.connect() as connection:
            names: list[str] = await connection.run_sync(lambda c: inspect(c).get_table_names())
        return set(names)
    finally:
        await engine.dispose()


async def test_db_upgrade_and_downgrade_from_the_environment(empty_database_url: str) -> None:
    env = {"DOSSIER_SYNC_DATABASE_URL": empty_database_url}
    up = run("db", "upgrade", env=env)
    assert up.returncode == 0, up.stderr
    assert "upgraded to head" in up.stderr
    assert await _tables(empty_database_url) == set(Base.metadata.tables) | {"alembic_version"}

    down = run("db", "downgrade", "base", env=env)
    assert down.returncode == 0, down.stderr
    assert SECRET not in up.stdout + up.stderr + down.stdout + down.stderr
    assert await _tables(empty_database_url) == {"alembic_version"}


async def test_db_upgrade_reads_the_config_file(tmp_path: Path) -> None:
    database = tmp_path / "from-file.db"
    config = tmp_path / "service.toml"
    config.write_text(f'database_url = "sqlite+aiosqlite:///{database}"\n', encoding="utf-8")
    result = run("db", "upgrade", "--config", str(config))
    assert result.returncode == 0, result.stderr
    engine = create_engine(f"sqlite+aiosqlite:///{database}")
    try:
        assert await migrate.current_revision(engine) == migrate.head_revision()
    finally:
        await engine.dispose()


def test_default_database_is_sqlite_in_the_working_directory(tmp_path: Path) -> None:
    result = run("db", "upgrade", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "dossier-sync.db").is_file()


def test_bad_configuration_stops_with_the_key_named(tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text("[portal]\ntimeout_s = -1\n", encoding="utf-8")
    result = run("db", "upgrade", "--config", str(config), cwd=tmp_path)
    assert result.returncode == 2
    assert "portal.timeout_s" in result.stderr
    assert not (tmp_path / "dossier-sync.db").exists()  # nothing was touched


def test_redacted_url_hides_only_the_password() -> None:
    from app.cli import _redacted  # noqa: PLC0415

    assert _redacted("postgresql+asyncpg://sync:s3cret@db:5432/x") == (
        "postgresql+asyncpg://sync:***@db:5432/x"
    )
    assert _redacted("postgresql+asyncpg://sync@db/x") == "postgresql+asyncpg://sync@db/x"
    assert _redacted("sqlite+aiosqlite:///./a.db") == "sqlite+aiosqlite:///./a.db"


def test_mock_portal_serves_a_seed_file_and_stops_on_sigterm(tmp_path: Path) -> None:
    seed = tmp_path / "seed.json"
    seed.write_text(
        '{"procedures": [], "agencies": [{"MaCoQuan": "000.00.00.H01", "TenCoQuan": "Tỉnh A",'
        ' "Cap": "TINH"}], "accounts": [{"unit": "000.00.00.H01", "username": "a01",'
        ' "password": "pw"}]}',
        encoding="utf-8",
    )
    port = str(free_port())
    clean = {k: v for k, v in os.environ.items() if not k.startswith("DOSSIER_SYNC_")}
    process = subprocess.Popen(  # noqa: S603 - our own CLI
        [sys.executable, "-m", "app", "mock-portal", "--port", port, "--seed", str(seed)],
        env=clean,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        url = f"http://127.0.0.1:{port}/dvcqg/auth"
        answer = None
        for _ in range(100):
            try:
                answer = httpx.post(
                    url,
                    json={"username": "a01", "password": "pw"},
                    headers={"dstcode": "000.00.00.H01"},
                )
                break
            except httpx.TransportError:
                time.sleep(0.1)
        assert answer is not None and answer.json()["error_code"] == 0
        demo = httpx.post(
            url,
            json={"username": "000.00.00.H26", "password": "demo"},
            headers={"dstcode": "000.00.00.H26"},
        )
        assert demo.json()["error_code"] == -1  # the seed replaced the demo accounts
    finally:
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=15)
    assert process.returncode == 0, stderr
    assert "pw" not in stderr.replace("password", "")


def test_mock_portal_refuses_a_bad_seed_file(tmp_path: Path) -> None:
    seed = tmp_path / "seed.json"
    seed.write_text('{"procedures": [{"MaTTHC": 1}]}', encoding="utf-8")
    result = run("mock-portal", "--port", str(free_port()), "--seed", str(seed))
    assert result.returncode == 2
    assert "seed file" in result.stderr and "MaTTHC" in result.stderr
