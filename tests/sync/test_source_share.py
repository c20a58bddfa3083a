"""Several engines share the sources out: each polls about its share of them (by the
live engines' heartbeats), an engine holding more hands sources over, and a dead
engine's sources go to the others once its heartbeat and leases expire."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.config import Settings
from app.db import create_session_factory
from app.repositories.sources import SourceRepository
from app.sync.engine import Engine
from app.sync.poll import Poller, PollReport
from tests.conftest import IsolatedDatabase
from tests.sync.polling import AUTH

H26 = "000.00.00.H26"
SOURCES = ["s1", "s2", "s3"]
LEASE_S = 30.0


class InstantPoller(Poller):
    """A poll that finds nothing at once (the leases are the subject here)."""

    async def poll_once(self) -> PollReport:
        return PollReport(self.settings.name)


def settings(url: str) -> Settings:
    return Settings.model_validate(
        {
            "database_url": url,
            "portal": {
                "base_url": "http://127.0.0.1:9",
                "accounts": [{"unit": H26, "username": H26, "password": "demo"}],
            },
            "sources": [
                {
                    "name": name,
                    "dialect": "igate",
                    "base_url": "http://127.0.0.1:9",
                    "agencies": [H26],
                    "poll_interval_s": 1.0,
                    "auth": AUTH["igate"],
                }
                for name in SOURCES
            ],
            "sync": {"poll_lease_s": LEASE_S},
        }
    )


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2024, 5, 20, 8, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


def engine(
    owner: str, url: str, sessions: async_sessionmaker[AsyncSession], clock: Clock
) -> Engine:
    made = Engine(
        settings(url), sessions, owner=owner, pushers=False, reconciler=False, clock=clock
    )
    made.pollers = [InstantPoller(s, sessions) for s in made.settings.sources]
    return made


async def poll_all(made: Engine) -> list[str]:
    """One poll attempt of every source; the names it polled."""
    polled = [await made._poll(poller) for poller in made.pollers]
    return [report.source for report in polled if report is not None]


async def owners(sessions: async_sessionmaker[AsyncSession]) -> dict[str, str]:
    """Source → the engine holding its poll lease ("" when none)."""
    async with sessions() as session:
        rows = await SourceRepository(session).list_all()
        return {row.name: row.lease_owner or "" for row in rows}


async def test_engines_share_the_sources_and_take_over_a_dead_ones(
    migrated_database: IsolatedDatabase,
) -> None:
    sessions = create_session_factory(migrated_database.engine)
    clock = Clock()
    a, b, c = (engine(o, migrated_database.url, sessions, clock) for o in "abc")
    try:
        # Alone, the first engine polls everything.
        assert await poll_all(a) == SOURCES
        # Two more start: the sources are A's, so they poll nothing yet…
        assert await poll_all(b) == []
        assert await poll_all(c) == []
        # …until A, now one of three, keeps its share (one) and hands the rest over.
        assert await poll_all(a) == ["s3"]
        assert await poll_all(b) == ["s1"]
        assert await poll_all(c) == ["s2"]
        assert await owners(sessions) == {"s1": "b", "s2": "c", "s3": "a"}
        for made in (a, b, c):  # stable: each keeps its own, takes nobody else's
            assert len(await poll_all(made)) == 1
        assert await owners(sessions) == {"s1": "b", "s2": "c", "s3": "a"}

        # C dies: its heartbeat and its lease run out; A and B poll meanwhile.
        clock.now += timedelta(seconds=LEASE_S / 2)
        await poll_all(a)
        await poll_all(b)
        clock.now += timedelta(seconds=LEASE_S / 2 + 1)
        polled = await poll_all(a) + await poll_all(b)
        assert sorted(polled) == SOURCES
        taken = await owners(sessions)
        assert taken["s2"] in {"a", "b"}
        assert sorted(taken.values()) in (["a", "a", "b"], ["a", "b", "b"])
    finally:
        for made in (a, b, c):
            await made.aclose()


async def test_a_stopping_engine_leaves_its_share_to_the_others_at_once(
    migrated_database: IsolatedDatabase,
) -> None:
    sessions = create_session_factory(migrated_database.engine)
    clock = Clock()
    a, b = (engine(o, migrated_database.url, sessions, clock) for o in "ab")
    try:
        await poll_all(a)
        await poll_all(b)
        await poll_all(a)
        await poll_all(b)
        assert sorted((await owners(sessions)).values()) == ["a", "a", "b"]
        await a._release_sources()  # what a clean stop does
        assert await poll_all(b) == SOURCES  # no wait for A's heartbeat to expire
    finally:
        await a.aclose()
        await b.aclose()
