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
from app.sync.poll import Poller, PollReport
from tests.conftest import IsolatedDatabase
from tests.service.helpers import settings_from, settings_values
from tests.sync.polling import simulator

pytestmark = pytest.mark.postgresql_only  # the engine's loop, not the storage, is under test

INTERVAL_S = 0.8
SLOW_S = 0.5  # what each poll takes on top of its requests: a slow, busy source


async def poll_times(
    migrated_database: IsolatedDatabase,
    portal: MockPortalHandle,
    interval_s: float,
    slow_s: float,
    run_s: float,
) -> list[tuple[float, float]]:
    """Event-loop times at which an engine started and ended its poll cycles (lease and
    poll) of a real simulator, each poll held up ``slow_s`` more, over ``run_s`` seconds."""
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
        real_poll, real_cycle = poller.poll_once, engine._poll
        loop = asyncio.get_running_loop()
        polls: list[tuple[float, float]] = []

        async def slow_poll(*args: Any, **kwargs: Any) -> PollReport:
            report = await real_poll(*args, **kwargs)
            await asyncio.sleep(slow_s)
            return report

        async def timed_cycle(polled: Poller) -> PollReport | None:
            # Timed where the engine's own clock for the interval runs: around the whole
            # cycle, the source's lease included (slower the first time, on a new pool).
            started = loop.time()
            try:
                return await real_cycle(polled)
            finally:
                polls.append((started, loop.time()))

        poller.poll_once = slow_poll  # type: ignore[method-assign]
        engine._poll = timed_cycle  # type: ignore[method-assign,assignment]
        stop = asyncio.Event()
        running = asyncio.create_task(engine.run(stop))
        try:
            await asyncio.sleep(run_s)
        finally:
            stop.set()
            await asyncio.wait_for(running, timeout=15)
            await engine.aclose()
    return polls


def cadence(polls: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """For each poll after the first: (seconds since the previous poll started, how long
    the previous poll took). How long a poll takes is measured, not assumed: on a loaded
    machine the first one (login, first sync) can take as long as the interval."""
    return [
        (later_start - start, end - start)
        for (start, end), (later_start, _) in itertools.pairwise(polls)
    ]


async def test_polls_start_every_interval_however_long_they_take(
    migrated_database: IsolatedDatabase, mock_portal: MockPortalHandle
) -> None:
    polls = await poll_times(migrated_database, mock_portal, INTERVAL_S, SLOW_S, run_s=4.5)
    gaps = cadence(polls)
    assert len(gaps) >= 3, polls
    # From each poll's start: the interval, or the poll's length when it ran longer.
    # Counted from each poll's end instead, every gap would be a poll's length (at least
    # SLOW_S) longer than that.
    assert all(
        max(INTERVAL_S, took) - 0.05 <= gap < max(INTERVAL_S, took) + 0.3 for gap, took in gaps
    ), gaps
    assert any(took < INTERVAL_S - 0.1 for _, took in gaps), gaps  # the case in the name


async def test_a_poll_longer_than_the_interval_is_followed_at_once(
    migrated_database: IsolatedDatabase, mock_portal: MockPortalHandle
) -> None:
    polls = await poll_times(migrated_database, mock_portal, 0.5, slow_s=0.8, run_s=4.0)
    gaps = cadence(polls)
    assert len(gaps) >= 2, polls
    # Each poll (at least 0.8 s) outlasts the 0.5 s interval: the next starts as it ends,
    # where waiting the interval again after its end would add 0.5 s to every gap.
    assert all(took <= gap < took + 0.3 for gap, took in gaps), gaps
