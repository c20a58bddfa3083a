"""The service app's operations endpoints, in process (httpx over ASGI)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
from fastapi import FastAPI
from prometheus_client.parser import text_string_to_metric_families

from app import migrate
from app.api.app import create_app
from app.config import Settings
from app.db import create_session_factory
from tests.conftest import IsolatedDatabase
from tests.service.exposition import database_gauges
from tests.sync.polling import poller_for, seed_catalogue, simulator


@asynccontextmanager
async def client_of(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """The app with its lifespan running, and a client talking to it in process."""
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://service") as client:
            yield client


async def test_health_and_readiness_follow_the_migrations(
    isolated_database: IsolatedDatabase,
) -> None:
    app = create_app(
        Settings(database_url=isolated_database.url), database=isolated_database.engine
    )
    async with client_of(app) as client:
        live = await client.get("/healthz")
        assert (live.status_code, live.json()) == (200, {"status": "ok"})

        unmigrated = await client.get("/readyz")
        assert unmigrated.status_code == 503
        body = unmigrated.json()
        assert body["status"] == "not_ready"
        assert "not migrated" in body["reason"]
        assert "dossier-sync db upgrade" in body["reason"]

        # Metrics still answer: the process's own numbers; no database gauges yet.
        scraped = await client.get("/metrics")
        assert scraped.status_code == 200

        await migrate.run_on(isolated_database.engine, "upgrade", "head")
        ready = await client.get("/readyz")
        assert ready.status_code == 200
        assert ready.json() == {"status": "ready", "revision": migrate.head_revision()}


async def test_readiness_names_an_unreachable_database(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'missing-dir' / 'x.db'}"
    async with client_of(create_app(Settings(database_url=url))) as client:
        assert (await client.get("/healthz")).status_code == 200
        answer = await client.get("/readyz")
    assert answer.status_code == 503
    assert answer.json()["reason"].startswith("the database is not reachable")
    assert "missing-dir" not in answer.text  # no URL in the answer


async def test_metrics_expose_the_database(migrated_database: IsolatedDatabase) -> None:
    sessions = create_session_factory(migrated_database.engine)
    await seed_catalogue(sessions)
    with simulator("igate", dossiers=20, bad_data_share=0.2) as (sim, control):
        poller = poller_for("igate", sim.url, sessions, control.truth())
        try:
            await poller.poll_once()
        finally:
            await poller.aclose()
    app = create_app(
        Settings(database_url=migrated_database.url), database=migrated_database.engine
    )
    async with client_of(app) as client:
        answer = await client.get("/metrics")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/plain; version=0.0.4")
    names = {family.name for family in text_string_to_metric_families(answer.text)}
    assert {"dossier_sync_dossiers", "dossier_sync_push_requests", "dossier_sync_ratio"} <= names
    gauges = database_gauges(answer.text)
    pending = sum(
        v for (_, state), v in gauges["dossier_sync_dossiers"].items() if state == "pending"
    )
    assert pending > 0
    assert gauges["dossier_sync_quarantined"]
    assert gauges["dossier_sync_source_last_success_timestamp_seconds"][("sim-igate",)] > 0


async def test_openapi_describes_the_operations_endpoints(tmp_path: Path) -> None:
    app = create_app(Settings(database_url=f"sqlite+aiosqlite:///{tmp_path / 'o.db'}"))
    async with client_of(app) as client:
        spec = (await client.get("/openapi.json")).json()
    for path in ("/healthz", "/readyz", "/metrics"):
        assert spec["paths"][path]["get"]["description"], path
    assert "503" in spec["paths"]["/readyz"]["get"]["responses"]
