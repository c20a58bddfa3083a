"""A 429's Retry-After holds every process that talks to the portal as that unit
(contract §6: "a client sends nothing to that unit before the time it names"), shared
through the database (app/sync/holds.py). Each test's clients are separate processes to
the portal: separate connection pools and sessions, one database between them. Both
backends; the portal is the real mock over HTTP.
"""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app import migrate
from app.db import create_engine, create_session_factory, transaction
from app.mockportal.testing import MockPortalControl, MockPortalHandle
from app.repositories.portal_holds import PortalHoldRepository
from app.sync.holds import DatabaseHolds
from app.sync.portal import HoldBoard, HoldsUnknown, PortalClient
from tests.conftest import IsolatedDatabase
from tests.sync.portal_helpers import (
    H26,
    H29,
    RecordingObserver,
    arrived,
    criterion,
    entries,
    portal_settings,
)

Sessions = async_sessionmaker[AsyncSession]
MakeClient = Callable[..., PortalClient]  # (holds, observer=None)


@pytest.fixture
def sessions(migrated_database: IsolatedDatabase) -> Sessions:
    return create_session_factory(migrated_database.engine)


@pytest.fixture
async def new_client(mock_portal: MockPortalHandle) -> AsyncIterator[MakeClient]:
    made: list[PortalClient] = []
    settings = portal_settings(mock_portal.url)

    def make(holds: HoldBoard | None, observer: RecordingObserver | None = None) -> PortalClient:
        made.append(PortalClient(settings, holds=holds, observer=observer))
        return made[-1]

    yield make
    for client in made:
        await client.aclose()


def rate_limit_once(control: MockPortalControl, service: str, seconds: int = 1) -> None:
    control.add_fault(
        selector={"agency": H26, "service": service},
        action={"type": "rate_limit", "retry_after_s": seconds},
        schedule={"kind": "first_n", "n": 1},
    )


def seconds_after(entry: dict[str, Any], earlier: dict[str, Any]) -> float:
    return (arrived(entry) - arrived(earlier)).total_seconds()


def honours_retry_after(control: MockPortalControl) -> bool:
    return bool(criterion(control.conformance(H26), "honours_retry_after")["passed"])


async def test_a_429_answered_to_one_process_holds_the_others(
    new_client: MakeClient, sessions: Sessions, mock_portal: MockPortalHandle
) -> None:
    control = mock_portal.control
    seen = RecordingObserver()
    first = new_client(DatabaseHolds(sessions), seen)
    second = new_client(DatabaseHolds(sessions))
    await first.agencies(H26)
    await second.agencies(H26)
    await second.agencies(H29)  # all logged in
    rate_limit_once(control, "LayDanhSachTTHC")

    limited = asyncio.create_task(first.procedures(H26))
    await asyncio.wait_for(seen.seen("http_429").wait(), 5)
    loop = asyncio.get_running_loop()
    started = loop.time()
    await second.agencies(H29)  # another unit: not held
    assert loop.time() - started < 0.5
    await second.lookup(H26, ["000.00.53.H26-240125-00001"])  # the same unit: held
    await limited

    journal = entries(control, unit=H26)
    [answered_429] = [e for e in journal if e["http_status"] == 429]
    after = [e for e in journal if e["at"] > answered_429["at"]]
    assert {e["service"] for e in after} == {"LayDanhSachTTHC", "TraCuuHoSo"}
    for entry in after:
        assert seconds_after(entry, answered_429) >= 1.0, entry
    assert honours_retry_after(control)


async def test_a_process_that_starts_during_the_hold_waits_it_out(
    new_client: MakeClient, sessions: Sessions, mock_portal: MockPortalHandle
) -> None:
    """The hold outlives the request that was answered 429: a worker started afterwards
    (not logged in yet) sends not even its login before the time."""
    control = mock_portal.control
    first = new_client(DatabaseHolds(sessions))
    await first.agencies(H26)
    rate_limit_once(control, "LayDanhSachTTHC", seconds=2)
    limited = asyncio.create_task(first.procedures(H26))
    await asyncio.sleep(0.3)  # answered 429 by now; the first client waits

    late = new_client(DatabaseHolds(sessions))
    await late.agencies(H26)
    await limited

    journal = entries(control, unit=H26)
    [answered_429] = [e for e in journal if e["http_status"] == 429]
    [login] = [e for e in journal if e["service"] == "auth" and e["at"] > answered_429["at"]]
    assert seconds_after(login, answered_429) >= 2.0
    assert honours_retry_after(control)


async def test_without_a_shared_hold_another_process_sends_within_the_wait(
    new_client: MakeClient, mock_portal: MockPortalHandle
) -> None:
    """What the shared hold prevents, and that the portal's report catches it: two
    clients each with only a hold of their own."""
    control = mock_portal.control
    seen = RecordingObserver()
    first, second = new_client(None, seen), new_client(None)
    await first.agencies(H26)
    await second.agencies(H26)
    rate_limit_once(control, "LayDanhSachTTHC")
    limited = asyncio.create_task(first.procedures(H26))
    await asyncio.wait_for(seen.seen("http_429").wait(), 5)
    await asyncio.sleep(0.2)  # beyond the in-flight tolerance of the report
    await second.agencies(H26)
    await limited
    assert not honours_retry_after(control)


async def test_a_hold_is_only_ever_lengthened(sessions: Sessions) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    for seconds in (2, 1, 3):
        async with transaction(sessions) as session:
            await PortalHoldRepository(session).extend(H26, now + timedelta(seconds=seconds))
    async with transaction(sessions) as session:
        await PortalHoldRepository(session).extend(H29, now + timedelta(seconds=1))
    async with sessions() as session:
        repository = PortalHoldRepository(session)
        assert await repository.until(H26) == now + timedelta(seconds=3)
        assert await repository.until(H29) == now + timedelta(seconds=1)
        assert await repository.until("000.00.00.G05") is None


async def test_the_wait_counts_down_on_the_wall_clock(sessions: Sessions) -> None:
    now = datetime(2026, 12, 7, 12, 0, 0, tzinfo=UTC)
    clock = {"now": now}
    holds = DatabaseHolds(sessions, clock=lambda: clock["now"])
    assert await holds.wait_s(H26) == 0.0
    await holds.hold(H26, 5.0)
    await holds.hold(H26, 2.0)  # shorter: the 5 s stand
    assert await holds.wait_s(H26) == 5.0
    clock["now"] = now + timedelta(seconds=4.5)
    assert await holds.wait_s(H26) == 0.5
    clock["now"] = now + timedelta(seconds=6)
    assert await holds.wait_s(H26) == 0.0
    assert await holds.wait_s(H29) == 0.0


async def test_while_the_database_is_out_of_reach_nothing_is_sent(
    new_client: MakeClient,
    mock_portal: MockPortalHandle,
    tmp_path: Path,
    captured_logs: io.StringIO,
) -> None:
    """A process that cannot read the shared wait cannot know whether another process
    was told to wait: it sends nothing (the call fails as unavailable, not sent), and
    says so in its log."""
    control = mock_portal.control
    missing = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'no' / 'such.db'}")
    try:
        client = new_client(DatabaseHolds(create_session_factory(missing)))
        with pytest.raises(HoldsUnknown, match="could not be read"):
            await client.procedures(H26)
    finally:
        await missing.dispose()
    assert entries(control, unit=H26) == []
    events = [json.loads(line)["event"] for line in captured_logs.getvalue().splitlines()]
    assert "could not read the shared Retry-After; sending nothing meanwhile" in events


async def test_a_wait_answered_while_the_database_was_away_is_shared_once_it_is_back(
    tmp_path: Path, captured_logs: io.StringIO
) -> None:
    """A 429 answered while the database is away (the request left before it went) is
    kept, and written before anything else once the database is back."""
    folder = tmp_path / "later"
    engine = create_engine(f"sqlite+aiosqlite:///{folder / 'holds.db'}")
    try:
        sessions = create_session_factory(engine)
        answered, other = DatabaseHolds(sessions), DatabaseHolds(sessions)
        await answered.hold(H26, 30.0)
        with pytest.raises(HoldsUnknown):
            await answered.wait_s(H29)

        folder.mkdir()  # the database is back
        await migrate.run_on(engine, "upgrade", "head")
        assert await other.wait_s(H26) == 0.0  # not written yet: nothing has run since
        assert await answered.wait_s(H29) == 0.0  # its first look writes what it kept
        assert 29.0 < await other.wait_s(H26) <= 30.0
    finally:
        await engine.dispose()
    events = [json.loads(line)["event"] for line in captured_logs.getvalue().splitlines()]
    assert "could not share the portal's Retry-After yet; kept to share later" in events
