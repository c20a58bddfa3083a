"""``dossier-sync keys list|revoke`` as real processes on a migrated database of either
backend: the list shows every key's reach, scopes and dates but never the key or its
hash, and a revoked key stops authenticating — the rotation an operator runs."""

from __future__ import annotations

from pathlib import Path

import pytest

from app import migrate
from app.auth import Scope, authenticate, hash_key
from app.config import load_settings
from app.db import create_engine, create_session_factory, transaction
from app.operations import create_api_key
from tests.service.conftest import run_cli
from tests.service.helpers import write_config

H26, H29 = "000.00.00.H26", "000.00.00.H29"


@pytest.fixture
async def config(fresh_database_url: str, tmp_path: Path) -> Path:
    engine = create_engine(fresh_database_url)
    await migrate.run_on(engine, "upgrade", "head")
    await engine.dispose()
    return write_config(tmp_path / "config.toml", {"database_url": fresh_database_url})


async def create(config: Path, unit: str, scopes: str, name: str, agency: str | None = None) -> str:
    """A key made as ``keys create`` makes it (that command has its own tests), in this
    process: each CLI start costs seconds on a slow machine."""
    settings = load_settings(config)
    made = await create_api_key(
        settings,
        unit=unit,
        agency=agency,
        scopes=[Scope(s) for s in scopes.split(",")],
        name=name,
    )
    return made.key


async def active(url: str, key: str) -> bool:
    engine = create_engine(url)
    try:
        async with transaction(create_session_factory(engine)) as session:
            return await authenticate(session, key) is not None
    finally:
        await engine.dispose()


async def test_list_shows_each_key_but_never_the_key_or_its_hash(config: Path) -> None:
    ops = await create(config, H26, "admin,read", "ops-h26")
    igate = await create(config, H29, "ingest", "igate", agency="000.00.12.H29")
    listed = run_cli("keys", "list", "--config", str(config))
    assert listed.returncode == 0, listed.stderr
    for expected in ("ops-h26", "admin,read", H26, "igate", "ingest", "000.00.12.H29"):
        assert expected in listed.stdout
    assert ops[:10] in listed.stdout  # the display prefix tells them apart
    for key in (ops, igate):
        assert key not in listed.stdout + listed.stderr
        assert hash_key(key) not in listed.stdout + listed.stderr
    assert "2 key(s), 2 active" in listed.stdout

    only_h26 = run_cli("keys", "list", "--config", str(config), "--unit", H26)
    assert only_h26.returncode == 0, only_h26.stderr
    assert "ops-h26" in only_h26.stdout and "igate" not in only_h26.stdout
    assert "1 key(s), 1 active" in only_h26.stdout

    refused = run_cli("keys", "list", "--config", str(config), "--unit", "000.00.12.H29")
    assert refused.returncode == 2 and "--unit" in refused.stderr


async def test_rotation_revoke_the_old_key_by_name(config: Path, fresh_database_url: str) -> None:
    old = await create(config, H26, "ingest", "igate-2025")
    new = await create(config, H26, "ingest", "igate-2026")

    revoked = run_cli("keys", "revoke", "--config", str(config), "igate-2025")
    assert revoked.returncode == 0, revoked.stderr
    assert "revoked" in revoked.stdout and "igate-2025" in revoked.stdout
    assert not await active(fresh_database_url, old)
    assert await active(fresh_database_url, new)

    again = run_cli("keys", "revoke", "--config", str(config), "igate-2025")
    assert again.returncode == 0, again.stderr
    assert "already revoked" in again.stdout

    listed = run_cli("keys", "list", "--config", str(config))
    assert "2 key(s), 1 active" in listed.stdout


async def test_revoke_refuses_an_unknown_or_ambiguous_key(
    config: Path, fresh_database_url: str
) -> None:
    first = await create(config, H26, "read", "dashboard")
    second = await create(config, H29, "read", "dashboard")

    unknown = run_cli("keys", "revoke", "--config", str(config), "no-such-key")
    assert unknown.returncode == 1
    assert "no-such-key" in unknown.stderr

    ambiguous = run_cli("keys", "revoke", "--config", str(config), "dashboard")
    assert ambiguous.returncode == 1
    assert "nothing revoked" in ambiguous.stderr and "by id" in ambiguous.stderr
    assert await active(fresh_database_url, first)
    assert await active(fresh_database_url, second)

    by_prefix = run_cli("keys", "revoke", "--config", str(config), second[:10])
    assert by_prefix.returncode == 0, by_prefix.stderr
    assert await active(fresh_database_url, first)
    assert not await active(fresh_database_url, second)
