"""The process runtime shared by ``serve`` and ``worker``: bounded shutdown, leases
handed back, and readiness that notices a dead engine."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time

import httpx
from sqlalchemy import func, select

from app.api.app import create_ops_app
from app.config import Settings
from app.db import create_session_factory
from app.metrics import DatabaseCollector, Metrics
from app.mockportal.testing import MockPortalHandle
from app.models import Source, SyncState
from app.runtime import Service, running_service
from tests.conftest import IsolatedDatabase
from tests.service.helpers import eventually, settings_from, settings_values
from tests.sync.polling import simulator


async def test_a_stuck_push_is_cut_at_the_stop_timeout_and_its_rows_handed_back(
    migrated_database: IsolatedDatabase, mock_portal: MockPortalHandle
) -> None:
    sessions = create_session_factory(migrated_database.engine)
    mock_portal.control.add_fault(
        selector={"service": "DongBoHoSoMC"}, action={"type": "latency", "latency_ms": 4000}
    )

    async def leased() -> int:
        async with sessions() as session:
            count = await session.scalar(
                select(func.count())
                .select_from(SyncState)
                .where(SyncState.lease_owner.is_not(None))
            )
            return int(count or 0)

    with simulator("igate", dossiers=10) as (sim, _control):
        settings = settings_from(
            settings_values(
                database_url=migrated_database.url,
                portal_url=mock_portal.url,
                sources=[("sim-igate", "igate", sim.url)],
            )
        )
        async with running_service(
            settings,
            pipeline=True,
            role="test",
            stop_timeout_s=0.5,
            database=migrated_database.engine,
        ) as service:
            await eventually(leased, "a push in flight")
            stopping = time.monotonic()
        took = time.monotonic() - stopping

    assert took < 3.0
    assert service.engine_task is not None
    assert service.engine_task.cancelled()
    assert await leased() == 0
    async with sessions() as session:
        sources = (await session.scalars(select(Source))).all()
    assert [s.lease_owner for s in sources] == [None]


async def test_readiness_reports_a_dead_engine(migrated_database: IsolatedDatabase) -> None:
    async def crash() -> None:
        raise RuntimeError("boom")

    task = asyncio.create_task(crash())
    await asyncio.wait([task])
    service = Service(
        Settings(database_url=migrated_database.url),
        migrated_database.engine,
        create_session_factory(migrated_database.engine),
        Metrics(),
        engine_task=task,
    )
    app = create_ops_app(service)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://worker") as client:
        assert (await client.get("/healthz")).status_code == 200
        answer = await client.get("/readyz")
        assert (await client.get("/metrics")).status_code == 200
    assert answer.status_code == 503
    assert answer.json() == {
        "status": "not_ready",
        "reason": "the sync engine stopped (RuntimeError)",
    }


async def test_only_a_scraped_process_reads_the_database_gauges(
    migrated_database: IsolatedDatabase,
) -> None:
    """``serve`` and ``worker --metrics-port`` refresh their snapshot in the background; a
    worker without a metrics port is scraped by nobody and spends nothing on it."""
    settings = Settings(database_url=migrated_database.url)
    for exposed in (True, False):
        async with running_service(
            settings,
            pipeline=False,
            refresh_interval_s=0.05,
            database=migrated_database.engine,
            exposed=exposed,
        ) as service:
            database = service.metrics.database

            def read(database: DatabaseCollector = database) -> bool:
                return database.snapshot is not None and database.indicators is not None

            if exposed:
                await eventually(read, "the first snapshot and indicators")
            else:
                await asyncio.sleep(0.5)  # ten refresh intervals
                assert database.snapshot is None
                assert database.indicators is None


def test_a_settled_heap_still_collects_what_comes_after() -> None:
    """``settle_heap`` freezes what start-up left (in a process of its own: here it
    would keep the test session's objects alive), and cyclic garbage made later is
    still freed."""
    script = (
        "import gc, weakref\n"
        "from app.runtime import settle_heap\n"
        "settle_heap()\n"
        "assert gc.get_freeze_count() > 10_000, gc.get_freeze_count()\n"
        "class Node: pass\n"
        "node = Node(); node.itself = node; alive = weakref.ref(node); del node\n"
        "gc.collect()\n"
        "assert alive() is None\n"
        "print('collected')\n"
    )
    done = subprocess.run(  # noqa: S603 - this interpreter, a fixed script
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == "collected"
