"""The poll interval runs from the start of one poll to the start of the next: a busy
source, whose polls take a good part of the interval, is not polled less often (every
change there would wait a poll's length more than the interval), and a poll longer than
the interval is followed at once."""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

import pytest

from app.db import create_session_factory
from app.mockportal.testing import MockPortalHandle
from app.sync.engine import Engine
from app.sync.poll import PollReport
from tests.conftest import IsolatedDatabase
from tests.service.helpers import settings_from, settings_values
from tests.sync.polling import simulator

pytestmark = pytest.mark.postgresql_only  # the engine's loop, not the storage, is under test

INTERVAL_S = 0.8
SLOW_S = 0.5  # what each poll takes on top of its requests: a slow, busy source


async def poll_starts(
    migrated_database: IsolatedDatabase,
    portal: MockPortalHandle,
    interval_s: float,
    slow_s: float,
    run_s: float,
) -> list[float]:
    """Event-loop times at which an engine started its polls of a real simulator, each
    poll held up ``slow_s`` more, over ``run_s`` seconds."""
    sessions = create_session_factory(migrated_database.engine)
    with simulator("igate", dossiers=5, seed=5) as (sim, _control):
        values = settings_values(
            database_url=migrated_database.url,
            portal_url=portal.url,
            sources=[("sim-igate", "igate", sim.url)],
        )
        values["sources"][0]["poll_interval_s"] = interval_s
        engine = Engine(settings_from(values), sessions, owner="a", pushers=False, reconciler=False)
        [poller] = engine.pollers
        real_poll = poller.poll_once
        loop = asyncio.get_running_loop()
        starts: list[float] = []

        async def slow_poll(*args: Any, **kwargs: Any) -> PollReport:
            starts.append(loop.time())
            report = await real_poll(*args, **kwargs)
            await asyncio.sleep(slow_s)
            return report

        poller.poll_once = slow_poll  # type: ignore[method-assign]
        stop = asyncio.Event()
        running = asyncio.create_task(engine.run(stop))
        try:
            await asyncio.sleep(run_s)
        finally:
            stop.set()
            await asyncio.wait_for(running, timeout=15)
            await engine.aclose()
    return starts


def between(starts: list[float]) -> list[float]:
    return [later - earlier for earlier, later in itertools.pairwise(starts)]


async def test_polls_start_every_interval_however_long_they_take(
    migrated_database: IsolatedDatabase, mock_portal: MockPortalHandle
) -> None:
    starts = await poll_starts(migrated_database, mock_portal, INTERVAL_S, SLOW_S, run_s=4.5)
    gaps = between(starts)
    assert len(gaps) >= 3, starts
    # Counted from each poll's end, every gap would be at least INTERVAL_S + SLOW_S.
    assert all(INTERVAL_S - 0.05 <= gap < INTERVAL_S + SLOW_S - 0.2 for gap in gaps), gaps


async def test_a_poll_longer_than_the_interval_is_followed_at_once(
    migrated_database: IsolatedDatabase, mock_portal: MockPortalHandle
) -> None:
    starts = await poll_starts(migrated_database, mock_portal, 0.5, slow_s=0.8, run_s=4.0)
    gaps = between(starts)
    assert len(gaps) >= 2, starts
    # After each poll's end, the interval again would make every gap at least 1.3 s.
    assert all(0.8 <= gap < 0.8 + 0.35 for gap in gaps), gaps
