"""The metrics of service-interface.md after real pipeline work, and database gauges that
agree with the database (and so with every other process)."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from app.db import create_engine, create_session_factory, transaction
from app.domain.periods import Period
from app.metrics import Metrics, PrometheusObserver, month_bounds, refresh_every
from app.mockportal.testing import MockPortalHandle
from app.models import DossierRow
from app.repositories.dossiers import DossierRepository, IncomingDossier
from app.repositories.portal_holds import PortalHoldRepository
from app.repositories.quarantine import QuarantineItem, QuarantineRepository
from app.repositories.sources import SourceRepository
from app.sync.engine import Engine
from app.sync.observe import Observer
from app.sync.poll import Poller, PollReport
from app.sync.reports import unit_report
from tests.conftest import IsolatedDatabase
from tests.factories import RECEIVED_AT, make_dossier
from tests.service.exposition import (
    CATALOGUE,
    by,
    database_gauges,
    expected_gauges,
    samples,
)
from tests.service.helpers import eventually, settings_from, settings_values
from tests.sync.polling import poller_for, seed_catalogue, simulator

G05, H26, H29 = "000.00.00.G05", "000.00.00.H26", "000.00.00.H29"


def test_the_prometheus_observer_is_an_observer() -> None:
    observer: Observer = Metrics().observer()
    assert isinstance(observer, PrometheusObserver)


def test_month_bounds_are_vietnamese_calendar_months() -> None:
    # 2024-05-31 20:00 UTC is already 1 June in Hà Nội.
    since, until = month_bounds(datetime(2024, 5, 31, 20, 0, tzinfo=UTC))
    assert since == datetime(2024, 5, 31, 17, 0, tzinfo=UTC)
    assert until == datetime(2024, 6, 30, 17, 0, tzinfo=UTC)
    since, until = month_bounds(datetime(2024, 12, 10, tzinfo=UTC))
    assert (since, until) == (
        datetime(2024, 11, 30, 17, 0, tzinfo=UTC),
        datetime(2024, 12, 31, 17, 0, tzinfo=UTC),
    )


def test_registries_are_per_process_objects() -> None:
    first, second = Metrics(), Metrics()
    first.observer().push_request("DongBoHoSoMC", "ok")
    assert b'outcome="ok"' in first.exposition()
    assert b'outcome="ok"' not in second.exposition()


async def test_every_catalogue_metric_after_a_real_round(
    migrated_database: IsolatedDatabase, mock_portal: MockPortalHandle
) -> None:
    sessions = create_session_factory(migrated_database.engine)
    now = [datetime.now(UTC)]
    metrics = Metrics(clock=lambda: now[0])
    with simulator("igate", dossiers=40, bad_data_share=0.15, unmapped_share=0.15) as (
        sim,
        control,
    ):
        settings = settings_from(
            settings_values(
                database_url=migrated_database.url,
                portal_url=mock_portal.url,
                sources=[("sim-igate", "igate", sim.url)],
                sync={"max_attempts": 1},
            )
        )
        # G05's first push fails as a whole: with one attempt allowed its dossiers die.
        mock_portal.control.add_fault(
            selector={"agency": G05, "service": "DongBoHoSoMC"},
            action={"type": "http_error", "status": 503},
            max_uses=1,
        )
        metrics.prime(settings)
        engine = Engine(settings, sessions, observer=metrics.observer())
        engine.portal.attempts = 1
        metrics.circuits.watch(engine.portal)
        try:
            assert await engine.refresh_catalogue()
            report = await engine.run_round()
            assert report.reconcile is not None
            assert report.reconcile.confirmed > 0
            control.mutate(5)  # read, not pushed: pending
            await engine.pollers[0].poll_once()
        finally:
            await engine.aclose()

    async with sessions() as session:
        latest = await session.scalar(select(func.max(DossierRow.received_at)))
    assert latest is not None
    now[0] = latest  # the simulated world's month, so that the ratio has series
    await metrics.refresh(sessions)
    text = metrics.exposition().decode()
    found = samples(text)

    for name, labels in CATALOGUE.items():
        assert found.get(name), f"{name}: no series"
        for series in found[name]:
            assert {key for key, _ in series} == labels, (name, series)

    # Database gauges: exactly what the tables say.
    assert database_gauges(text) == await expected_gauges(sessions, now[0])
    dossiers = by(found["dossier_sync_dossiers"], "unit", "state")
    for state in ("pending", "synced", "quarantined", "dead"):
        assert sum(v for (_, s), v in dossiers.items() if s == state) > 0, state
    assert dossiers[(G05, "dead")] > 0
    assert by(found["dossier_sync_dead_letters"], "unit", "error_code")[(G05, "none")] > 0
    assert 0 <= min(by(found["dossier_sync_ratio"], "agency").values()) < 1
    assert max(by(found["dossier_sync_ratio"], "agency").values()) == 1.0

    # On the wall clock: the changes read a moment ago are waiting.
    now[0] = datetime.now(UTC)
    await metrics.refresh(sessions)
    text = metrics.exposition().decode()
    assert database_gauges(text) == await expected_gauges(sessions, now[0])
    oldest = by(samples(text)["dossier_sync_oldest_pending_seconds"], "unit")
    assert 0 < max(oldest.values()) < 60

    # What this process did.
    assert by(found["dossier_sync_source_polls_total"], "source", "outcome") == {
        ("sim-igate", "ok"): 2.0,
        ("sim-igate", "error"): 0.0,
    }
    assert found["dossier_sync_source_records_total"][(("source", "sim-igate"),)] >= 40
    requests = by(found["dossier_sync_push_requests_total"], "service", "outcome")
    assert requests[("DongBoHoSoMC", "http_503")] == 1
    assert requests[("DongBoHoSoMC", "ok")] >= 2
    assert requests[("TraCuuHoSo", "ok")] >= 1
    items = by(found["dossier_sync_push_items_total"], "service", "error_code")
    assert items[("DongBoHoSoMC", "none")] == dossiers[(G05, "dead")]
    assert items[("DongBoHoSoMC", "0")] > 0
    lag_counts = by(found["dossier_sync_lag_seconds_count"], "unit")
    assert sum(lag_counts.values()) == items[("DongBoHoSoMC", "0")]
    assert G05 not in {unit for (unit,) in lag_counts}
    assert by(found["dossier_sync_circuit_open"], "target") == {(mock_portal.url,): 0.0}


async def test_two_collectors_over_one_database_report_the_same_numbers(
    migrated_database: IsolatedDatabase,
) -> None:
    """What two processes (two engines, two registries) would scrape: equal."""
    first_sessions = create_session_factory(migrated_database.engine)
    catalogue = await seed_catalogue(first_sessions)
    assert catalogue.procedures
    with simulator("opencps", dossiers=30, bad_data_share=0.2) as (sim, control):
        poller = poller_for("opencps", sim.url, first_sessions, control.truth())
        try:
            await poller.poll_once()
        finally:
            await poller.aclose()
    async with first_sessions() as session:
        latest = await session.scalar(select(func.max(DossierRow.received_at)))
    assert latest is not None
    at = latest  # the simulated world's month, so that the 766 indicators have series
    one, two = Metrics(clock=lambda: at), Metrics(clock=lambda: at)
    await one.refresh(first_sessions)
    await two.refresh(create_session_factory(migrated_database.engine))
    first, second = (
        database_gauges(one.exposition().decode()),
        database_gauges(two.exposition().decode()),
    )
    assert first == second
    assert first == await expected_gauges(first_sessions, at)
    assert sum(first["dossier_sync_dossiers"].values()) > 0
    assert first["dossier_sync_quarantined"]
    assert first["dossier_sync_indicator_766"]
    assert first["dossier_sync_indicator_766_points"]


def test_the_collector_serves_its_snapshot_without_touching_the_database() -> None:
    metrics = Metrics()
    text = metrics.exposition().decode()  # no snapshot yet: described, no samples
    assert "# TYPE dossier_sync_dossiers gauge" in text
    assert "dossier_sync_dossiers{" not in text
    assert metrics.database.age_s() is None


@pytest.mark.parametrize("code", [None, -5])
def test_item_error_codes_are_labels(code: int | None) -> None:
    metrics = Metrics()
    metrics.observer().push_item("CapNhatTienDoHoSoMC", code)
    found = samples(metrics.exposition().decode())
    expected = "none" if code is None else str(code)
    assert by(found["dossier_sync_push_items_total"], "error_code") == {(expected,): 1.0}


async def test_a_crashed_poll_counts_as_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = settings_from(
        settings_values(
            database_url="sqlite+aiosqlite://",
            portal_url="http://127.0.0.1:9",
            sources=[("sim-igate", "igate", "http://127.0.0.1:9")],
        )
    )
    database = create_engine(settings.database_url)
    metrics = Metrics()
    engine = Engine(
        settings,
        create_session_factory(database),
        observer=metrics.observer(),
        pushers=False,
        reconciler=False,
    )
    stop = asyncio.Event()

    async def crash(_poller: Poller) -> PollReport | None:
        stop.set()
        raise RuntimeError("a bug in a stage")

    monkeypatch.setattr(engine, "_poll", crash)
    try:
        await engine._poll_loop(engine.pollers[0], stop)
    finally:
        await engine.aclose()
        await database.dispose()
    polls = by(samples(metrics.exposition().decode())["dossier_sync_source_polls_total"], "outcome")
    assert polls == {("error",): 1.0}


async def test_source_lag_and_quarantine_are_per_source(
    migrated_database: IsolatedDatabase,
) -> None:
    """Lag since the last success (since first seen when none; none for push mode), and
    open quarantine entries by the source that sent them, whether or not their unit
    could be read."""
    sessions = create_session_factory(migrated_database.engine)
    created = datetime(2024, 5, 20, 8, 0, tzinfo=UTC)
    async with transaction(sessions) as session:
        sources = SourceRepository(session)
        polled = await sources.ensure("h26-igate", "igate", created)
        broken = await sources.ensure("h29-opencps", "opencps", created)
        push = await sources.ensure("push:000.00.00.H26", "push", created)
        await sources.record_poll(polled.id, created + timedelta(minutes=3))
        await sources.record_poll(broken.id, created + timedelta(minutes=4), error="HTTP 503")
        await sources.set_paused(broken.id, True)
        quarantine = QuarantineRepository(session)
        entries = [
            (polled.id, "dossier:1", "000.00.00.H26", "unmapped_status"),
            (polled.id, "dossier:2", None, "unmapped_status"),
            (polled.id, "action:3", "000.00.00.H26", "invalid"),
            (broken.id, "dossier:4", "000.00.00.H29", "unmapped_status"),
            (push.id, "dossier:5", "000.00.00.H26", "invalid"),
        ]
        for source_id, key, unit, reason in entries:
            await quarantine.put(
                QuarantineItem(
                    source_id=source_id,
                    record_key=key,
                    kind="progress" if key.startswith("action") else "dossier",
                    raw={"id": key},
                    reason_code=reason,
                    reason="…",
                    errors=[],
                    unit=unit,
                ),
                created,
            )
        await quarantine.resolve(broken.id, ["dossier:4"], created + timedelta(minutes=1))

    at = created + timedelta(minutes=10)
    metrics = Metrics(clock=lambda: at)
    await metrics.refresh(sessions)
    text = metrics.exposition().decode()
    found = samples(text)
    assert by(found["dossier_sync_source_lag_seconds"], "source") == {
        ("h26-igate",): 7 * 60.0,
        ("h29-opencps",): 10 * 60.0,  # failed polls only: since it was first seen
    }
    # Paused on purpose (the not-polled alert stays silent for it); push mode: no series.
    assert by(found["dossier_sync_source_paused"], "source") == {
        ("h26-igate",): 0.0,
        ("h29-opencps",): 1.0,
    }
    assert by(found["dossier_sync_quarantined"], "source", "reason") == {
        ("h26-igate", "unmapped_status"): 2.0,
        ("h26-igate", "invalid"): 1.0,
        ("push:000.00.00.H26", "invalid"): 1.0,
    }
    assert database_gauges(text) == await expected_gauges(sessions, at)


async def test_the_766_indicators_are_each_agencys_report_for_the_month(
    migrated_database: IsolatedDatabase,
) -> None:
    """One series per computed indicator and agency, for the month of the clock: the
    report's value and points, no sample where the report has none (null)."""
    sessions = create_session_factory(migrated_database.engine)
    codes = [
        "000.00.53.H26-240125-00001",
        "000.00.53.H26-240125-00002",
        "000.00.12.H26-240125-00001",
        "000.00.12.H29-240125-00001",
    ]
    async with transaction(sessions) as session:
        await DossierRepository(session).upsert_many(
            [IncomingDossier(make_dossier(code), read_at=RECEIVED_AT) for code in codes]
        )
    at = RECEIVED_AT + timedelta(days=2)  # the same month (Vietnamese time)
    metrics = Metrics(clock=lambda: at)
    await metrics.refresh(sessions)
    found = samples(metrics.exposition().decode())
    values = by(found["dossier_sync_indicator_766"], "unit", "agency", "indicator")
    points = by(found["dossier_sync_indicator_766_points"], "unit", "agency", "indicator")

    expected_values: dict[tuple[str, ...], float] = {}
    expected_points: dict[tuple[str, ...], float] = {}
    nulls = []
    async with sessions() as session:
        for unit in ("000.00.00.H26", "000.00.00.H29"):
            report = await unit_report(session, unit=unit, period=Period.containing(at), now=at)
            for agency in report.agencies:
                for indicator in agency.indicators:
                    key = (unit, agency.agency, indicator.id)
                    if indicator.value is None:
                        nulls.append(key)
                        continue
                    expected_values[key] = indicator.value
                    assert indicator.points is not None
                    expected_points[key] = indicator.points
    assert values == expected_values
    assert points == expected_points
    assert {agency for _, agency, _ in values} == {
        "000.00.53.H26",
        "000.00.12.H26",
        "000.00.12.H29",
    }
    assert {indicator for _, _, indicator in values} <= {
        "1.4", "2.1", "3.3", "4.1", "6.1", "6.2", "6.4"
    }  # fmt: skip
    assert nulls, "a null indicator (nothing to count) to leave out"
    assert not set(nulls) & set(values)
    # Nothing is synced yet: 1.4 is a real 0, not left out.
    assert values[("000.00.00.H26", "000.00.53.H26", "1.4")] == 0.0
    assert found["dossier_sync_indicators_timestamp_seconds"] == {(): at.timestamp()}

    # Next month has no dossiers yet: no series.
    at = RECEIVED_AT + timedelta(days=40)
    await metrics.refresh(sessions)
    found = samples(metrics.exposition().decode())
    assert not found.get("dossier_sync_indicator_766")
    assert not found.get("dossier_sync_indicator_766_points")


async def test_the_indicators_refresh_on_their_own_slower_schedule(
    migrated_database: IsolatedDatabase,
) -> None:
    """The background refresh reads the cheap gauges every interval and the 766 reports
    every ``indicators_interval_s``: what one transaction adds (a source and a dossier)
    shows in the cheap gauges at once, in the indicators only at their next computation."""
    sessions = create_session_factory(migrated_database.engine)
    metrics = Metrics(clock=lambda: RECEIVED_AT + timedelta(days=1), indicators_interval_s=3600)
    stop = asyncio.Event()
    task = asyncio.create_task(metrics.refresh_forever(sessions, stop, interval_s=0.02))
    try:
        first = await eventually(lambda: metrics.database.indicators, "the first indicators")
        assert not first.values  # an empty database
        async with transaction(sessions) as session:
            await DossierRepository(session).upsert_many(
                [IncomingDossier(make_dossier(), read_at=RECEIVED_AT)]
            )
            await SourceRepository(session).ensure("h26-igate", "igate", RECEIVED_AT)

        def seen() -> bool:
            snapshot = metrics.database.snapshot
            return snapshot is not None and "h26-igate" in snapshot.source_last_success

        await eventually(seen, "the new source in the cheap gauges")
        assert metrics.database.indicators is first
    finally:
        stop.set()
        await task
    await metrics.database.refresh_indicators(sessions, shared=False)  # computed now
    assert metrics.database.indicators is not first
    assert metrics.database.indicators.values


async def test_a_slow_refresh_waits_nine_times_as_long_as_it_took() -> None:
    """The 766 report of a month of a million dossiers takes about a minute: rerun every
    minute it would keep a process busy. A refresh taking 0.1 s with a 0.01 s interval
    runs again only after 0.9 s, so at most a tenth of the time goes to refreshing."""
    started: list[float] = []

    async def slow() -> None:
        started.append(time.monotonic())
        await asyncio.sleep(0.1)

    stop = asyncio.Event()
    task = asyncio.create_task(refresh_every(0.01, stop, slow, "slow refresh"))
    await asyncio.sleep(1.5)
    stop.set()
    await task
    assert len(started) == 2, started
    assert started[1] - started[0] >= 1.0  # 0.1 s running + 0.9 s waiting


async def test_a_quick_refresh_keeps_its_interval() -> None:
    calls = 0

    async def quick() -> None:
        nonlocal calls
        calls += 1

    stop = asyncio.Event()
    task = asyncio.create_task(refresh_every(0.05, stop, quick, "quick refresh"))
    await asyncio.sleep(0.52)
    stop.set()
    await task
    assert 8 <= calls <= 11


async def test_a_refresh_that_asks_to_look_again_sooner_does_so_until_it_stops_asking() -> None:
    """The 766 refresh looks again after a few seconds, not its interval, while another
    process computes the report this one lacks; once it has one, the interval again."""
    calls = 0

    async def refresh() -> None:
        nonlocal calls
        calls += 1

    stop = asyncio.Event()
    task = asyncio.create_task(
        refresh_every(
            10.0,
            stop,
            refresh,
            "766 indicators refresh",
            sooner=lambda: 0.05 if calls < 4 else None,
        )
    )
    await asyncio.sleep(0.6)
    stop.set()
    await task
    assert calls == 4  # three early looks, then the 10 s interval


async def test_the_portal_hold_gauge_shows_what_is_left_of_each_units_wait(
    migrated_database: IsolatedDatabase,
) -> None:
    """A unit the portal answered 429 shows how long every process must still wait; a
    unit whose wait has passed shows 0."""
    sessions = create_session_factory(migrated_database.engine)
    now = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
    async with transaction(sessions) as session:
        holds = PortalHoldRepository(session)
        await holds.extend(H26, now + timedelta(seconds=30))
        await holds.extend(H29, now - timedelta(seconds=5))
    metrics = Metrics(clock=lambda: now)
    await metrics.refresh(sessions)
    text = metrics.exposition().decode()
    assert by(samples(text)["dossier_sync_portal_hold_seconds"], "unit") == {
        (H26,): 30.0,
        (H29,): 0.0,
    }
    assert database_gauges(text) == await expected_gauges(sessions, now)
