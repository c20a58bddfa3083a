"""Leases of an engine: claims and poll leases are renewed while their work runs (so that
a short lease can hand a dead worker's work over quickly without a slow round being done
twice), a poll whose lease another engine took is abandoned, and workers starting
together refresh the catalogue without colliding."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.config import ConfigError, Settings, SourceSettings, load_settings
from app.db import create_session_factory, transaction
from app.demodata import load_demo_catalogue
from app.mockportal.testing import MockPortalHandle
from app.models import Source, SyncState
from app.repositories.catalogue import CatalogueAgency, CatalogueRepository
from app.repositories.dead_letters import DeadLetterFilter, DeadLetterRepository
from app.repositories.dossiers import DossierRepository, IncomingDossier, IncomingProgress
from app.repositories.outbox import OutboxRepository, PendingChange
from app.repositories.sources import SourceRepository
from app.sync.engine import Engine
from app.sync.poll import Poller, PollReport
from app.sync.portal import PortalClient
from app.sync.push import Pusher
from tests.conftest import IsolatedDatabase
from tests.factories import make_dossier, make_progress
from tests.service.helpers import eventually
from tests.sync.polling import AUTH

NOW = datetime(2024, 1, 26, 3, 0, tzinfo=UTC)
H26 = "000.00.00.H26"
CODES = [f"000.00.53.H26-240125-{n:05d}" for n in range(1, 4)]


async def store_pending(sessions: async_sessionmaker[AsyncSession], codes: list[str]) -> list[int]:
    async with transaction(sessions) as session:
        stored = await DossierRepository(session).upsert_many(
            [IncomingDossier(make_dossier(code), read_at=NOW) for code in codes]
        )
        await OutboxRepository(session).mark_pending(
            [PendingChange(s.dossier_id, s.unit, s.version, NOW) for s in stored], NOW
        )
        return [s.dossier_id for s in stored]


async def test_extending_leases_keeps_only_the_owners_claims(
    migrated_database: IsolatedDatabase,
) -> None:
    sessions = create_session_factory(migrated_database.engine)
    ids = await store_pending(sessions, CODES)
    lease = timedelta(seconds=30)
    async with transaction(sessions) as session:
        outbox = OutboxRepository(session)
        mine = await outbox.claim("a", NOW, lease, limit=2)
        theirs = await outbox.claim("b", NOW, lease, limit=1)
        later = NOW + timedelta(seconds=20)
        assert await outbox.extend_leases("a", later, lease) == {r.dossier_id for r in mine}
        states = {i: await outbox.get(i) for i in ids}
    for row in mine:
        state = states[row.dossier_id]
        assert state is not None and state.lease_expires_at == later + lease
    [other] = theirs
    state = states[other.dossier_id]
    assert state is not None and state.lease_expires_at == NOW + lease


def engine_settings(url: str, portal_url: str, **sync: Any) -> Settings:
    return Settings.model_validate(
        {
            "database_url": url,
            "portal": {
                "base_url": portal_url,
                "accounts": [{"unit": H26, "username": H26, "password": "demo"}],
            },
            "sync": sync,
        }
    )


@pytest.mark.postgresql_only
async def test_a_push_slower_than_its_lease_is_not_pushed_again_by_another_engine(
    migrated_database: IsolatedDatabase, mock_portal: MockPortalHandle
) -> None:
    """Without the renewal, the second engine would claim the rows once the lease ran
    out and push them while the first engine's push is still in flight."""
    sessions = create_session_factory(migrated_database.engine)
    mock_portal.control.add_fault(
        selector={"service": "DongBoHoSoMC"}, action={"type": "latency", "latency_ms": 2500}
    )
    settings = engine_settings(migrated_database.url, mock_portal.url, lease_s=1.0)
    ids = await store_pending(sessions, CODES)
    first = Engine(settings, sessions, owner="first", pollers=False, reconciler=False)
    second = Engine(settings, sessions, owner="second", pollers=False, reconciler=False)
    stop = asyncio.Event()
    running = [asyncio.create_task(first.run(stop))]

    async def claimed_by_first() -> bool:
        async with sessions() as session:
            states = [await OutboxRepository(session).get(i) for i in ids]
        return all(s is not None and s.lease_owner == "first" for s in states)

    try:
        await eventually(claimed_by_first, "the first engine to claim every row")
        running.append(asyncio.create_task(second.run(stop)))

        async def acknowledged() -> bool:
            async with sessions() as session:
                states = [await OutboxRepository(session).get(i) for i in ids]
            return all(s is not None and s.status == "acked" for s in states)

        await eventually(acknowledged, "the slow push to go through", within=15)
    finally:
        stop.set()
        await asyncio.wait_for(asyncio.gather(*running), timeout=15)
        await first.aclose()
        await second.aclose()
    sent = [
        item["ma_ho_so"]
        for entry in mock_portal.control.journal(service="DongBoHoSoMC")["entries"]
        for item in entry["items"]
    ]
    assert sorted(sent) == CODES  # each once


async def taken_over_while_in_flight(
    database: IsolatedDatabase,
    mock_portal: MockPortalHandle,
    *,
    lease_s: float,
    taken_after_s: float,
    taker_ahead_s: float,
    renewal_first: bool,
) -> None:
    """A holder claims two dossiers and sends the first in a slow call; ``taken_after_s``
    into it, another worker (its clock ``taker_ahead_s`` ahead) claims both rows, and,
    with ``renewal_first``, the holder's overdue renewal runs before its next call. The
    holder must not send the second dossier, nor record anything on the rows."""
    sessions = create_session_factory(database.engine)
    mock_portal.control.add_fault(
        selector={"service": "DongBoHoSoMC"},
        action={"type": "latency", "latency_ms": 1000},
        schedule={"kind": "first_n", "n": 1},
    )
    settings = engine_settings(database.url, mock_portal.url, lease_s=lease_s, push_concurrency=1)
    first, second = await store_pending(sessions, CODES[:2])
    portal = PortalClient(settings.portal)
    holder = Pusher(sessions, portal, settings.sync, owner="holder", max_batch=1)
    try:
        pushing = asyncio.create_task(holder.push_once(limit=2))

        async def first_call_in_flight() -> bool:
            return bool(mock_portal.control.journal(service="auth")["entries"])

        await eventually(first_call_in_flight, "the holder to reach the portal")
        await asyncio.sleep(taken_after_s)
        async with transaction(sessions) as session:
            taken = await OutboxRepository(session).claim(
                "other",
                datetime.now(UTC) + timedelta(seconds=taker_ahead_s),
                timedelta(seconds=60),
                limit=10,
            )
        assert {row.dossier_id for row in taken} == {first, second}
        if renewal_first:
            await holder.renew_leases()
        report = await asyncio.wait_for(pushing, timeout=15)
    finally:
        await portal.aclose()
    assert report.claimed == 2
    sent = [
        item["ma_ho_so"]
        for entry in mock_portal.control.journal(service="DongBoHoSoMC")["entries"]
        for item in entry["items"]
    ]
    assert sent == [CODES[0]]  # the call already in flight; the second dossier is not sent
    async with sessions() as session:
        states = [await OutboxRepository(session).get(i) for i in (first, second)]
    for state in states:
        assert state is not None
        assert state.lease_owner == "other" and state.pending_since is not None


async def test_a_row_taken_over_while_its_holder_stalled_is_not_pushed_by_the_holder(
    migrated_database: IsolatedDatabase, mock_portal: MockPortalHandle
) -> None:
    """A pusher whose leases ran out while it was held up (no renewal ran: a paused or
    starved process) finds, before its next portal call, that another worker claimed
    its rows meanwhile; it sends them no more and records nothing on them. Without the
    check before each call both workers would push the second dossier at once."""
    await taken_over_while_in_flight(
        migrated_database,
        mock_portal,
        lease_s=0.3,
        taken_after_s=0.5,  # its leases run out while the slow call is in flight
        taker_ahead_s=0,
        renewal_first=False,
    )


async def test_a_renewal_that_finds_rows_taken_over_keeps_the_holder_from_sending_them(
    migrated_database: IsolatedDatabase, mock_portal: MockPortalHandle
) -> None:
    """The stalled holder's overdue renewal runs first when it wakes: it extends the
    rows still its own and learns that the others were taken. Its next call, which
    trusts that fresh renewal instead of looking at the database, must not send them
    (before the fix the renewal's answer was ignored and the second dossier went out
    alongside the worker that took it)."""
    await taken_over_while_in_flight(
        migrated_database,
        mock_portal,
        lease_s=30,
        taken_after_s=0,
        taker_ahead_s=60,  # a clock past the holder's leases: they ran out
        renewal_first=True,
    )


class CrashingPortal(PortalClient):
    """A portal client with a bug: the round crashes in the middle of its calls."""

    async def sync_dossiers(self, *args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("a bug in the round")


async def test_a_round_that_crashes_hands_its_rows_back_at_once(
    migrated_database: IsolatedDatabase, mock_portal: MockPortalHandle
) -> None:
    """Not after the lease (a minute by default): the next round, or another worker,
    takes them again at once."""
    sessions = create_session_factory(migrated_database.engine)
    ids = await store_pending(sessions, CODES)
    settings = engine_settings(migrated_database.url, mock_portal.url, lease_s=60.0)
    portal = CrashingPortal(settings.portal)
    try:
        with pytest.raises(RuntimeError, match="a bug"):
            await Pusher(sessions, portal, settings.sync, owner="crashing").push_once()
    finally:
        await portal.aclose()
    async with transaction(sessions) as session:
        taken = await OutboxRepository(session).claim(
            "next", datetime.now(UTC), timedelta(seconds=60), limit=10
        )
    assert sorted(row.dossier_id for row in taken) == sorted(ids)


@pytest.mark.postgresql_only
async def test_renewing_leases_locks_its_rows_in_key_order(
    migrated_database: IsolatedDatabase,
) -> None:
    """A renewal waiting for one row holds no lock on rows of higher key: statements
    that lock several rows in key order cannot deadlock each other. Here the lower row
    was written last (a plain scan meets it last), and another transaction holds it."""
    sessions = create_session_factory(migrated_database.engine)
    low, high = await store_pending(sessions, CODES[:2])
    lease = timedelta(seconds=60)
    async with transaction(sessions) as session:
        await OutboxRepository(session).claim("a", NOW, lease, limit=2)
    async with transaction(sessions) as session:
        await session.execute(
            update(SyncState).where(SyncState.dossier_id == low).values(last_error="moved")
        )
    async with sessions() as holder, sessions() as renewer, sessions() as other:
        await holder.execute(
            update(SyncState).where(SyncState.dossier_id == low).values(last_error="held")
        )
        renewal = asyncio.create_task(OutboxRepository(renewer).extend_leases("a", NOW, lease))
        await asyncio.sleep(0.5)
        assert not renewal.done()  # waiting for the lower row
        locked = await other.scalars(
            select(SyncState.dossier_id)
            .where(SyncState.dossier_id == high)
            .with_for_update(nowait=True)
        )
        assert locked.all() == [high]  # not held by the waiting renewal
        await other.rollback()
        await holder.rollback()
        assert await asyncio.wait_for(renewal, timeout=10) == {low, high}
        await renewer.commit()


class SlowPoller(Poller):
    """A poll that takes ``seconds`` (or is cancelled)."""

    def __init__(self, settings: SourceSettings, sessions: async_sessionmaker[AsyncSession]):
        super().__init__(settings, sessions)
        self.seconds = 30.0
        self.cancelled = False

    async def poll_once(self) -> PollReport:
        try:
            await asyncio.sleep(self.seconds)
        except asyncio.CancelledError:
            self.cancelled = True
            raise
        return PollReport(self.settings.name)


async def test_a_poll_renews_its_lease_and_stops_when_another_engine_takes_it(
    migrated_database: IsolatedDatabase,
) -> None:
    sessions = create_session_factory(migrated_database.engine)
    source = SourceSettings.model_validate(
        {
            "name": "slow",
            "dialect": "igate",
            "base_url": "http://127.0.0.1:9",
            "agencies": [H26],
            "poll_interval_s": 0.1,
            "auth": AUTH["igate"],
        }
    )
    settings = engine_settings(migrated_database.url, "http://127.0.0.1:9", poll_lease_s=0.3)
    engine = Engine(settings, sessions, owner="mine", pushers=False, reconciler=False)
    poller = SlowPoller(source, sessions)

    async def lease() -> tuple[str | None, datetime | None]:
        async with sessions() as session:
            row = await SourceRepository(session).get_by_name("slow")
            return (None, None) if row is None else (row.lease_owner, row.lease_expires_at)

    try:
        polling = asyncio.create_task(engine._poll(poller))

        async def taken() -> bool:
            owner, _ = await lease()
            return owner == "mine"

        await eventually(taken, "the lease to be taken")
        _, taken_until = await lease()
        await asyncio.sleep(0.5)  # longer than the lease: renewed meanwhile
        owner, renewed_until = await lease()
        assert owner == "mine"
        assert taken_until is not None and renewed_until is not None
        assert renewed_until > taken_until
        assert not polling.done()

        # Another engine has it now (say this one's renewals failed for a whole lease).
        async with transaction(sessions) as session:
            await session.execute(
                update(Source)
                .where(Source.name == "slow")
                .values(lease_owner="other", lease_expires_at=datetime.now(UTC) + timedelta(1))
            )
        started = time.monotonic()
        assert await asyncio.wait_for(polling, timeout=5) is None
        assert time.monotonic() - started < 1.0
        assert poller.cancelled
    finally:
        await poller.aclose()
        await engine.aclose()


@pytest.mark.postgresql_only
async def test_workers_starting_together_refresh_the_catalogue_without_colliding(
    migrated_database: IsolatedDatabase,
) -> None:
    sessions = create_session_factory(migrated_database.engine)
    demo = load_demo_catalogue()
    agencies = [CatalogueAgency(a["MaCoQuan"], a["TenCoQuan"], a["Cap"]) for a in demo["agencies"]]

    async def refresh(hold_s: float) -> None:
        async with transaction(sessions) as session:
            catalogue = CatalogueRepository(session)
            await catalogue.replace_procedures(demo["procedures"], NOW)
            await catalogue.replace_agencies(agencies, NOW)
            await asyncio.sleep(hold_s)  # the other refresh starts meanwhile

    await refresh(0)
    first = asyncio.create_task(refresh(0.3))
    await asyncio.sleep(0.1)
    await asyncio.gather(first, refresh(0))
    async with sessions() as session:
        assert len(await CatalogueRepository(session).procedures()) == len(demo["procedures"])


@pytest.mark.usefixtures("clean_environment")
def test_a_poll_lease_must_outlast_the_poll_interval(tmp_path: Path) -> None:
    path = tmp_path / "service.toml"
    path.write_text(
        '[sync]\npoll_lease_s = 2\n\n[[portal.accounts]]\nunit = "000.00.00.H26"\n'
        'username = "u"\npassword = "p"\n\n[[sources]]\nname = "s"\ndialect = "igate"\n'
        'base_url = "http://x"\nagencies = ["000.00.00.H26"]\npoll_interval_s = 5\n'
        '[sources.auth]\nclient_id = "a"\nclient_secret = "b"\n',
        encoding="utf-8",
    )
    with pytest.raises(ConfigError) as caught:
        load_settings(path)
    assert "  sync.poll_lease_s: 2 s does not outlast sources[0].poll_interval_s" in str(
        caught.value
    )


async def test_a_refusal_whose_row_another_engine_took_meanwhile_writes_no_dead_letter(
    migrated_database: IsolatedDatabase, mock_portal: MockPortalHandle
) -> None:
    """The portal refuses for good, but by the time the round records it, this engine's
    lease was gone and another engine holds the row: that engine decides its fate. A
    dead letter written anyway would name a row that is not dead (and be written again
    by every engine that meets the same refusal)."""
    sessions = create_session_factory(migrated_database.engine)
    [doomed] = await store_pending(sessions, CODES[:1])
    mock_portal.control.add_fault(  # the login is slow: the row is taken meanwhile
        selector={"service": "auth"}, action={"type": "latency", "latency_ms": 1500}
    )
    mock_portal.control.add_fault(
        selector={"service": "DongBoHoSoMC"}, action={"type": "reject", "error_code": -5}
    )
    settings = engine_settings(migrated_database.url, mock_portal.url)
    engine = Engine(settings, sessions, owner="first", pollers=False, reconciler=False)
    assert engine.pusher is not None
    try:
        pushing = asyncio.create_task(engine.pusher.push_once())

        async def claimed() -> bool:
            async with sessions() as session:
                state = await OutboxRepository(session).get(doomed)
            return state is not None and state.lease_owner == "first"

        await eventually(claimed, "the row to be claimed")
        async with transaction(sessions) as session:
            await session.execute(
                update(SyncState)
                .where(SyncState.dossier_id == doomed)
                .values(lease_owner="other", lease_expires_at=NOW + timedelta(days=1000))
            )
        await asyncio.wait_for(pushing, timeout=30)
    finally:
        await engine.aclose()
    async with sessions() as session:
        state = await OutboxRepository(session).get(doomed)
        letters = await DeadLetterRepository(session).count_open(DeadLetterFilter())
    assert state is not None and (state.status, state.lease_owner) == ("pending", "other")
    assert letters == 0
    refused = [
        item
        for entry in mock_portal.control.journal(service="DongBoHoSoMC")["entries"]
        for item in entry["items"]
    ]
    assert [item["error_code"] for item in refused] == [-5]  # it was refused, and sent once


async def test_a_refusal_is_recorded_before_the_rest_of_the_round_is_pushed(
    migrated_database: IsolatedDatabase, mock_portal: MockPortalHandle
) -> None:
    """The first dossier is refused for good while the second one's call is still to
    come (and slow): its dead letter is written already, so a worker killed during the
    slow call leaves nothing for the next worker to send again unchanged. Recorded only
    at the round's end, the refusal would be lost with the process."""
    sessions = create_session_factory(migrated_database.engine)
    refused_id, slow_id = await store_pending(sessions, CODES[:2])
    mock_portal.control.add_fault(
        selector={"ma_ho_so_prefix": CODES[0]}, action={"type": "reject", "error_code": -5}
    )
    mock_portal.control.add_fault(
        selector={"ma_ho_so_prefix": CODES[1]}, action={"type": "latency", "latency_ms": 1500}
    )
    settings = engine_settings(migrated_database.url, mock_portal.url, push_concurrency=1)
    portal = PortalClient(settings.portal)
    pusher = Pusher(sessions, portal, settings.sync, owner="first", max_batch=1)
    try:
        pushing = asyncio.create_task(pusher.push_once(limit=2))

        async def slow_call_in_flight() -> bool:
            journal = mock_portal.control.journal(service="DongBoHoSoMC")["entries"]
            return len(journal) == 1  # the refusal answered; the slow one not yet

        await eventually(slow_call_in_flight, "the refusal to come back")
        await asyncio.sleep(0.3)  # the refusal's own recording, while the slow call runs
        async with sessions() as session:
            letter = await DeadLetterRepository(session).open_for_dossier(refused_id)
            state = await OutboxRepository(session).get(refused_id)
        assert not pushing.done()
        report = await asyncio.wait_for(pushing, timeout=15)
    finally:
        await portal.aclose()
    assert letter is not None and letter.error_code == -5
    assert state is not None and state.status == "dead"
    assert (report.dead, report.acked) == (1, 1)
    async with sessions() as session:
        slow = await OutboxRepository(session).get(slow_id)
        letters = await DeadLetterRepository(session).count_open(DeadLetterFilter())
    assert slow is not None and slow.status == "acked"
    assert letters == 1  # written once, not again at the round's end


async def test_a_dossier_whose_progress_record_failed_sends_none_of_its_later_ones(
    migrated_database: IsolatedDatabase, mock_portal: MockPortalHandle
) -> None:
    """Three steps in calls of two: the first call is refused for the dossier, so its
    third step, in the next call, would reach the portal without the two before it. It
    is not sent."""
    sessions = create_session_factory(migrated_database.engine)
    [dossier_id] = await store_pending(sessions, CODES[:1])
    steps = [
        make_progress(CODES[0], "4", NOW - timedelta(hours=3 - n), NoiDungXuLy=f"bước {n}")
        for n in range(3)
    ]
    async with transaction(sessions) as session:
        await DossierRepository(session).add_progress(
            [IncomingProgress(dossier_id, step, NOW) for step in steps]
        )
    mock_portal.control.add_fault(
        selector={"service": "CapNhatTienDoHoSoMC"},
        action={"type": "reject", "error_code": -10},
        schedule={"kind": "first_n", "n": 1},
    )
    settings = engine_settings(migrated_database.url, mock_portal.url)
    portal = PortalClient(settings.portal)
    pusher = Pusher(sessions, portal, settings.sync, owner="first", max_batch=2)
    try:
        await pusher.push_once()
    finally:
        await portal.aclose()
    calls = mock_portal.control.journal(service="CapNhatTienDoHoSoMC")["entries"]
    assert [len(entry["items"]) for entry in calls] == [2]
