"""The provincial HTTP API in process: the real app (lifespan included) on a migrated
database of either backend, an httpx client over ASGI, and API keys made on demand."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from pydantic import SecretStr
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.api.app import create_app
from app.auth import Scope, create_key
from app.config import ApiSettings, PortalAccount, PortalSettings, Settings
from app.db import create_session_factory, transaction
from tests.conftest import IsolatedDatabase

H26, H29, G05 = "000.00.00.H26", "000.00.00.H29", "000.00.00.G05"
UNITS = (H26, H29, G05)


@dataclass
class Api:
    client: httpx.AsyncClient
    sessions: async_sessionmaker[AsyncSession]
    settings: Settings

    async def key(
        self, unit: str, scopes: Iterable[str | Scope], *, agency: str | None = None
    ) -> str:
        """A new API key (its plain text) for ``unit`` (or one ``agency``)."""
        async with transaction(self.sessions) as session:
            created = await create_key(
                session,
                unit=unit,
                agency=agency,
                scopes=[Scope(s) for s in scopes],
                now=datetime.now(UTC),
            )
        return created.key

    @staticmethod
    def auth(key: str) -> dict[str, str]:
        """Headers that send ``key``."""
        return {"Authorization": f"Bearer {key}"}


def api_settings(url: str, **api: Any) -> Settings:
    return Settings(
        database_url=url,
        api=ApiSettings(**api),
        portal=PortalSettings(
            accounts=[PortalAccount(unit=u, username=u, password=SecretStr("demo")) for u in UNITS]
        ),
    )


@pytest.fixture
def api_options() -> dict[str, Any]:
    """Overrides of the ``[api]`` settings (a test module may override this fixture)."""
    return {}


@asynccontextmanager
async def serving(database: IsolatedDatabase, settings: Settings) -> AsyncIterator[Api]:
    """The app for ``settings`` on ``database`` (no sync engine in it, as when the
    engine runs in a worker process), lifespan included."""
    app = create_app(settings, database=database.engine)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://service") as client:
            yield Api(client, create_session_factory(database.engine), settings)


@pytest.fixture
async def api(
    migrated_database: IsolatedDatabase, api_options: dict[str, Any]
) -> AsyncIterator[Api]:
    async with serving(
        migrated_database, api_settings(migrated_database.url, **api_options)
    ) as api:
        yield api
