"""Migrations go up, down and up again cleanly on both backends, and match the models."""

from __future__ import annotations

from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection, inspect

from app import migrate
from app.models import Base
from tests.conftest import IsolatedDatabase

APP_TABLES = set(Base.metadata.tables)


async def _tables(db: IsolatedDatabase) -> set[str]:
    async with db.engine.connect() as connection:
        names: list[str] = await connection.run_sync(lambda c: inspect(c).get_table_names())
    return set(names) - {"alembic_version"}


async def test_upgrade_creates_every_table_at_head(isolated_database: IsolatedDatabase) -> None:
    await migrate.run_on(isolated_database.engine, "upgrade", "head")
    assert await _tables(isolated_database) == APP_TABLES
    assert await migrate.current_revision(isolated_database.engine) == migrate.head_revision()


async def test_upgrade_downgrade_upgrade_round_trip(isolated_database: IsolatedDatabase) -> None:
    db = isolated_database
    await migrate.run_on(db.engine, "upgrade", "head")
    await migrate.run_on(db.engine, "downgrade", "base")
    assert await _tables(db) == set()
    assert await migrate.current_revision(db.engine) is None
    await migrate.run_on(db.engine, "upgrade", "head")
    assert await _tables(db) == APP_TABLES


async def test_migrated_schema_matches_the_models(migrated_database: IsolatedDatabase) -> None:
    """What autogenerate would write next is nothing: models and migrations agree
    (columns, types, nullability, indexes including partial ones, constraints)."""

    def diff(connection: Connection) -> list[Any]:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        return list(compare_metadata(context, Base.metadata))

    async with migrated_database.engine.connect() as connection:
        differences = await connection.run_sync(diff)
    assert differences == []


async def test_claim_indexes_exist(migrated_database: IsolatedDatabase) -> None:
    """The outbox claim and oldest-pending queries have their partial indexes."""

    def indexes(connection: Connection) -> dict[str, list[str | None]]:
        return {
            index["name"]: list(index["column_names"])
            for index in inspect(connection).get_indexes("sync_state")
            if index["name"]
        }

    async with migrated_database.engine.connect() as connection:
        found = await connection.run_sync(indexes)
    assert found["ix_sync_state_due"] == ["next_attempt_at"]
    assert found["ix_sync_state_unit_due"] == ["unit", "next_attempt_at"]
    assert found["ix_sync_state_unit_pending_since"] == ["unit", "pending_since"]


async def test_claim_indexes_are_partial(migrated_database: IsolatedDatabase) -> None:
    """Only due rows are indexed, so the claim scan stays small however many dossiers
    are already synced."""
    engine = migrated_database.engine
    if engine.dialect.name == "postgresql":
        query = (
            "SELECT indexdef FROM pg_indexes WHERE indexname = 'ix_sync_state_due' "
            "AND schemaname = current_schema()"
        )
    else:
        query = "SELECT sql FROM sqlite_master WHERE name = 'ix_sync_state_due'"
    async with engine.connect() as connection:
        definition = (await connection.exec_driver_sql(query)).scalar_one()
    assert "pending_since is not null" in definition.lower().replace("(", "").replace(")", "")
