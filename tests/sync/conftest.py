"""Fixtures of the poll-stage tests."""

from __future__ import annotations

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.db import create_session_factory
from app.sync.normalise.common import Catalogue
from tests.conftest import IsolatedDatabase
from tests.sync.polling import seed_catalogue


@pytest.fixture
async def sessions(
    migrated_database: IsolatedDatabase,
) -> tuple[async_sessionmaker[AsyncSession], Catalogue]:
    """A session factory on a migrated database (each backend) holding the portal's demo
    catalogue, and that catalogue."""
    factory = create_session_factory(migrated_database.engine)
    return factory, await seed_catalogue(factory)
