"""Fixtures of the end-to-end tests: a migrated database of each backend with the
portal's demo catalogue, as a catalogue refresh would have left it."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.db import create_session_factory
from app.sync.normalise.common import Catalogue
from tests.conftest import IsolatedDatabase
from tests.sync.polling import seed_catalogue


@dataclass(frozen=True, slots=True)
class Store:
    url: str
    sessions: async_sessionmaker[AsyncSession]
    catalogue: Catalogue


@pytest.fixture
async def store(migrated_database: IsolatedDatabase) -> Store:
    sessions = create_session_factory(migrated_database.engine)
    return Store(migrated_database.url, sessions, await seed_catalogue(sessions))
