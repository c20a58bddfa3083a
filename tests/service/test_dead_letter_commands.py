"""``dossier-sync dead-letters list|redrive`` as real processes on a migrated database:
filters by unit, error code and time window (local time), and a redrive queues exactly
the matching dossiers again."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select

from app import migrate
from app.db import create_engine, create_session_factory, transaction
from app.models import SyncState
from app.repositories.dead_letters import DeadLetterFilter, DeadLetterRepository
from app.repositories.outbox import OutboxRepository, PendingChange
from tests.service.conftest import run_cli
from tests.service.helpers import write_config
from tests.storage.test_dead_letters import NOW, _letters

H26 = "000.00.00.H26"


@pytest.fixture
async def letters(fresh_database_url: str, tmp_path: Path) -> tuple[Path, dict[str, int]]:
    """Four dead letters (three of H26: -6 at 03:00Z, -5 at 04:00Z, -6 at 05:00Z; one of
    H29: -6 at 04:00Z) whose dossiers are dead in the outbox; and a config file."""
    engine = create_engine(fresh_database_url)
    await migrate.run_on(engine, "upgrade", "head")
    async with transaction(create_session_factory(engine)) as session:
        ids = await _letters(session)
        outbox = OutboxRepository(session)
        await outbox.mark_pending([PendingChange(i, "u", 1, NOW) for i in ids.values()], NOW)
        for dossier_id in ids.values():
            await outbox.give_up(dossier_id, "given up")
    await engine.dispose()
    return write_config(tmp_path / "config.toml", {"database_url": fresh_database_url}), ids


async def _status(url: str) -> dict[int, str]:
    engine = create_engine(url)
    try:
        async with transaction(create_session_factory(engine)) as session:
            rows = await session.execute(select(SyncState.dossier_id, SyncState.status))
            return {row.dossier_id: row.status for row in rows}
    finally:
        await engine.dispose()


async def _open(url: str) -> set[int]:
    engine = create_engine(url)
    try:
        async with transaction(create_session_factory(engine)) as session:
            found = await DeadLetterRepository(session).list_open(DeadLetterFilter())
            return {letter.dossier_id for letter in found}
    finally:
        await engine.dispose()


async def test_list_shows_the_matching_letters_with_their_reasons(
    letters: tuple[Path, dict[str, int]],
) -> None:
    config, _ = letters
    result = run_cli(
        "dead-letters", "list", "--config", str(config), "--unit", H26, "--error-code", "-6"
    )
    assert result.returncode == 0, result.stderr
    assert "000.00.53.H26-240125-00001" in result.stdout
    assert "000.00.53.H26-240125-00003" in result.stdout
    assert "-240125-00002" not in result.stdout  # -5
    assert "000.00.12.H29" not in result.stdout  # another unit
    assert "error -6" in result.stdout
    assert "2 open dead letter(s)" in result.stdout


async def test_redrive_by_unit_and_code_queues_exactly_those_dossiers(
    letters: tuple[Path, dict[str, int]], fresh_database_url: str
) -> None:
    config, ids = letters
    result = run_cli(
        "dead-letters", "redrive", "--config", str(config), "--unit", H26, "--error-code", "-6"
    )
    assert result.returncode == 0, result.stderr
    assert "2 dossier(s) queued again" in result.stdout
    status = await _status(fresh_database_url)
    assert {i for i, s in status.items() if s == "pending"} == {ids["h26-a"], ids["h26-c"]}
    assert await _open(fresh_database_url) == {ids["h26-b"], ids["h29-a"]}


async def test_a_time_window_without_a_zone_is_vietnamese_local_time(
    letters: tuple[Path, dict[str, int]], fresh_database_url: str
) -> None:
    """10:30 to 12:00 in Hanoi is 03:30Z to 05:00Z: the two letters given up at 04:00Z."""
    config, ids = letters
    window = ("--since", "2024-01-26T10:30:00", "--until", "2024-01-26T12:00:00")
    result = run_cli("dead-letters", "redrive", "--config", str(config), *window)
    assert result.returncode == 0, result.stderr
    assert "2 dossier(s) queued again" in result.stdout
    assert await _open(fresh_database_url) == {ids["h26-a"], ids["h26-c"]}


async def test_redrive_without_a_filter_needs_all(
    letters: tuple[Path, dict[str, int]], fresh_database_url: str
) -> None:
    config, ids = letters
    refused = run_cli("dead-letters", "redrive", "--config", str(config))
    assert refused.returncode == 2
    assert "--all" in refused.stderr
    assert await _open(fresh_database_url) == set(ids.values())

    everything = run_cli("dead-letters", "redrive", "--config", str(config), "--all")
    assert everything.returncode == 0, everything.stderr
    assert "4 dossier(s) queued again" in everything.stdout
    assert await _open(fresh_database_url) == set()
