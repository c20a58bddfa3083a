"""The 766 indicators shared through the database: the month's report is computed by one
process and read by the others (``indicator_snapshots``), on both backends."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

import app.metrics as metrics_module
from app.db import create_session_factory, transaction
from app.metrics import CLAIM_MIN_S, WAITING_LOOK_S, DatabaseCollector, IndicatorSnapshot
from app.repositories.dossiers import DossierRepository, IncomingDossier
from app.repositories.indicators import IndicatorSnapshotRepository
from tests.conftest import IsolatedDatabase
from tests.factories import RECEIVED_AT, make_dossier

INTERVAL_S = 60.0
CODES = ("000.00.53.H26-240125-00001", "000.00.12.H29-240125-00001")


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture
def computed(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Each computation of the month's report, by the process (collector) that made it."""
    made: list[str] = []
    real = metrics_module.read_indicators

    async def counting(sessions: object, now: datetime) -> IndicatorSnapshot:
        made.append("computed")
        return await real(sessions, now)  # type: ignore[arg-type]

    monkeypatch.setattr(metrics_module, "read_indicators", counting)
    return made


async def _seeded(database: IsolatedDatabase) -> tuple[async_sessionmaker[AsyncSession], Clock]:
    """Two agencies' dossiers of January 2024, and a clock a day after they arrived."""
    sessions = create_session_factory(database.engine)
    async with transaction(sessions) as session:
        await DossierRepository(session).upsert_many(
            [IncomingDossier(make_dossier(code), read_at=RECEIVED_AT) for code in CODES]
        )
    return sessions, Clock(RECEIVED_AT + timedelta(days=1))


async def test_two_processes_compute_the_months_report_once_and_export_the_same(
    migrated_database: IsolatedDatabase, computed: list[str]
) -> None:
    sessions, clock = await _seeded(migrated_database)
    serve = DatabaseCollector(clock, INTERVAL_S)
    worker = DatabaseCollector(clock, INTERVAL_S)

    first = await serve.refresh_indicators(sessions)
    clock.advance(5)
    second = await worker.refresh_indicators(sessions)

    assert computed == ["computed"]
    assert first is not None and second is not None
    assert first.values  # two agencies' indicators
    assert second.values == first.values
    assert second.points == first.points
    assert second.taken_at == first.taken_at  # when it was computed, by whichever process


async def test_a_stored_report_past_its_interval_is_computed_again(
    migrated_database: IsolatedDatabase, computed: list[str]
) -> None:
    sessions, clock = await _seeded(migrated_database)
    serve = DatabaseCollector(clock, INTERVAL_S)
    worker = DatabaseCollector(clock, INTERVAL_S)
    await serve.refresh_indicators(sessions)

    clock.advance(INTERVAL_S - 1)
    await worker.refresh_indicators(sessions)
    assert computed == ["computed"]
    clock.advance(2)
    fresh = await worker.refresh_indicators(sessions)
    assert computed == ["computed", "computed"]
    assert fresh is not None and fresh.taken_at == clock.now


async def test_a_slow_report_is_shared_for_nine_times_as_long_as_it_took(
    migrated_database: IsolatedDatabase, computed: list[str]
) -> None:
    """A report that took 20 s (a month of some 400,000 dossiers) is what every process
    exports for 180 s: the refresh loop of the process that computed it waits that long
    too (``refresh_every``), so nobody computes it more often."""
    sessions = create_session_factory(migrated_database.engine)
    clock = Clock(RECEIVED_AT + timedelta(days=1))
    async with transaction(sessions) as session:
        await IndicatorSnapshotRepository(session).save(
            "another process", clock.now, 20.0, {"values": [["u", "a", "1.4", 0.5]], "points": []}
        )
    worker = DatabaseCollector(clock, INTERVAL_S)

    clock.advance(179)
    adopted = await worker.refresh_indicators(sessions)
    assert computed == []
    assert adopted is not None and adopted.values == {("u", "a", "1.4"): 0.5}
    clock.advance(2)
    await worker.refresh_indicators(sessions)
    assert computed == ["computed"]


async def test_last_months_report_is_never_taken_for_this_months(
    migrated_database: IsolatedDatabase, computed: list[str]
) -> None:
    sessions = create_session_factory(migrated_database.engine)
    end_of_month = datetime.fromisoformat("2024-01-31T16:59:30+00:00")  # 23:59:30 in Hà Nội
    clock = Clock(end_of_month)
    await DatabaseCollector(clock, INTERVAL_S).refresh_indicators(sessions)
    clock.advance(60 - 1)  # within the interval, but February in Vietnam
    await DatabaseCollector(clock, INTERVAL_S).refresh_indicators(sessions)
    assert computed == ["computed", "computed"]


async def test_while_another_process_computes_the_others_wait_until_its_claim_expires(
    migrated_database: IsolatedDatabase, computed: list[str]
) -> None:
    """A process that claimed the computation and died holds the others off only until
    its claim runs out; meanwhile they keep exporting what they had."""
    sessions, clock = await _seeded(migrated_database)
    worker = DatabaseCollector(clock, INTERVAL_S)
    first = await worker.refresh_indicators(sessions)
    clock.advance(INTERVAL_S + 1)  # stale now
    async with transaction(sessions) as session:
        taken = await IndicatorSnapshotRepository(session).claim(
            "a process that died", clock.now, clock.now + timedelta(seconds=CLAIM_MIN_S)
        )
    assert taken

    kept = await worker.refresh_indicators(sessions)
    assert computed == ["computed"]  # only the first
    assert kept is first

    clock.advance(CLAIM_MIN_S)
    again = await worker.refresh_indicators(sessions)
    assert computed == ["computed", "computed"]
    assert again is not None and again.taken_at == clock.now


async def test_a_process_without_the_months_report_looks_again_soon_while_another_computes_it(
    migrated_database: IsolatedDatabase, computed: list[str]
) -> None:
    """A process that starts while another computes the month's report has nothing to
    export; it asks to look again in a few seconds rather than an interval, and takes
    the report as soon as it is stored."""
    sessions, clock = await _seeded(migrated_database)
    async with transaction(sessions) as session:
        assert await IndicatorSnapshotRepository(session).claim(
            "serve", clock.now, clock.now + timedelta(seconds=CLAIM_MIN_S)
        )
    worker = DatabaseCollector(clock, INTERVAL_S)
    assert worker.next_look_s() is None  # nothing asked yet

    assert await worker.refresh_indicators(sessions) is None
    assert worker.next_look_s() == WAITING_LOOK_S < INTERVAL_S
    assert computed == []

    serve = DatabaseCollector(clock, INTERVAL_S)
    serve.owner = "serve"  # the process holding the claim computes and stores it
    stored = await serve.refresh_indicators(sessions)
    assert stored is not None
    clock.advance(WAITING_LOOK_S)
    taken = await worker.refresh_indicators(sessions)
    assert taken is not None and taken.values == stored.values
    assert worker.next_look_s() is None
    assert computed == ["computed"]  # by serve only


async def test_a_claim_is_one_process_at_a_time_and_storing_gives_it_up(
    migrated_database: IsolatedDatabase,
) -> None:
    sessions = create_session_factory(migrated_database.engine)
    now = RECEIVED_AT
    until = now + timedelta(minutes=10)
    async with transaction(sessions) as session:
        repository = IndicatorSnapshotRepository(session)
        assert await repository.claim("serve", now, until)
        assert not await repository.claim("worker", now, until)
        assert await repository.claim("serve", now, until)  # its own, again
        await repository.save("serve", now, 1.0, {"values": [], "points": []})
        assert await repository.claim("worker", now, until)


async def test_a_slower_computation_stored_late_does_not_replace_a_later_one(
    migrated_database: IsolatedDatabase,
) -> None:
    sessions = create_session_factory(migrated_database.engine)
    later = {"values": [["u", "a", "1.4", 1.0]], "points": []}
    earlier = {"values": [["u", "a", "1.4", 0.0]], "points": []}
    async with transaction(sessions) as session:
        repository = IndicatorSnapshotRepository(session)
        await repository.save("worker", RECEIVED_AT + timedelta(minutes=11), 2.0, later)
        await repository.save("serve", RECEIVED_AT, 700.0, earlier)
        stored = await repository.latest()
    assert stored is not None
    assert stored.indicators == later
    assert stored.computed_at == RECEIVED_AT + timedelta(minutes=11)
