"""Each dialect polled from its simulator over HTTP, into SQLite and PostgreSQL: the
stored state equals the source's truth under every awkward case."""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.db import transaction
from app.models import DossierRow, ProgressRow, QuarantineEntry, Source, SourceMessage, SyncState
from app.repositories.sources import SourceRepository
from app.simulators import Dialect
from app.sync.connectors.base import Page, SourceUnavailable
from app.sync.normalise.common import Catalogue
from app.sync.poll import Poller, backoff_delay
from tests.sync.polling import (
    assert_matches_truth,
    poll_until_quiet,
    poller_for,
    simulator,
    source_settings,
)

DIALECTS: list[Dialect] = ["opencps", "igate", "dvclt"]


async def count(factory: async_sessionmaker[AsyncSession], model: type[Any]) -> int:
    async with factory() as session:
        return int(await session.scalar(select(func.count()).select_from(model)) or 0)


@pytest.mark.parametrize("dialect", DIALECTS)
async def test_a_clean_source_is_stored_completely(
    dialect: Dialect, sessions: tuple[async_sessionmaker[AsyncSession], Catalogue]
) -> None:
    factory, catalogue = sessions
    with simulator(dialect, dossiers=40, seed=3) as (sim, control):
        truth = control.truth()
        poller = poller_for(dialect, sim.url, factory, truth, page_size=7)
        try:
            await poll_until_quiet(poller)
        finally:
            await poller.aclose()
        counts = await assert_matches_truth(factory, dialect, truth, catalogue)
    assert counts["valid"] == 40 and counts["quarantined"] == 0
    assert await count(factory, SyncState) == 40  # every stored dossier has outbox work
    assert await count(factory, QuarantineEntry) == 0


@pytest.mark.parametrize("dialect", DIALECTS)
async def test_every_awkward_case_at_once(
    dialect: Dialect, sessions: tuple[async_sessionmaker[AsyncSession], Catalogue]
) -> None:
    """Ties across page borders, rows moving mid-poll, unmapped statuses, bad data, DVCLT
    duplicates and out-of-order messages: after the moves stop, storage equals truth."""
    factory, catalogue = sessions
    awkward = {
        "ties": True,
        "moves_per_list_request": 2,
        "unmapped_share": 0.1,
        "bad_data_share": 0.1,
        "duplicates_share": 0.2,
        "out_of_order_share": 0.2,
    }
    with simulator(dialect, dossiers=60, seed=11, **awkward) as (sim, control):
        poller = poller_for(dialect, sim.url, factory, control.truth(), page_size=5)
        try:
            for _ in range(3):
                await poller.poll_once()
                control.mutate(10, bulk=4)
            control.settings(moves_per_list_request=0)
            await poll_until_quiet(poller)
            truth = control.truth()
        finally:
            await poller.aclose()
        counts = await assert_matches_truth(factory, dialect, truth, catalogue)
    assert counts["valid"] > 0
    if dialect != "dvclt":
        assert counts["quarantined"] > 0  # the bad and unmapped records were kept aside


@pytest.mark.parametrize("dialect", ["opencps", "igate"])
async def test_ties_across_page_borders_are_exact(
    dialect: Dialect, sessions: tuple[async_sessionmaker[AsyncSession], Catalogue]
) -> None:
    factory, catalogue = sessions
    with simulator(dialect, dossiers=30, seed=5) as (sim, control):
        poller = poller_for(dialect, sim.url, factory, control.truth(), page_size=4)
        try:
            await poll_until_quiet(poller)
            changed = control.mutate(23, bulk=23)  # one bulk action: 23 share a time
            assert len(changed) >= 20
            await poll_until_quiet(poller)
            await assert_matches_truth(factory, dialect, control.truth(), catalogue)
        finally:
            await poller.aclose()


async def test_an_igate_tie_group_of_500_is_read_past(
    sessions: tuple[async_sessionmaker[AsyncSession], Catalogue],
) -> None:
    """500 rows share one updatedDate and a page holds 500: the connector must see that
    the whole group is read and resume 1 ms later, neither stopping nor looping."""
    factory, catalogue = sessions
    with simulator("igate", dossiers=520, seed=2) as (sim, control):
        poller = poller_for("igate", sim.url, factory, control.truth(), page_size=500)
        try:
            await poll_until_quiet(poller)
            control.mutate(500, bulk=500)
            control.mutate(3)
            await poll_until_quiet(poller)
            await assert_matches_truth(factory, "igate", control.truth(), catalogue)
        finally:
            await poller.aclose()


@pytest.mark.parametrize("dialect", DIALECTS)
async def test_rows_moving_during_a_poll_are_not_lost(
    dialect: Dialect, sessions: tuple[async_sessionmaker[AsyncSession], Catalogue]
) -> None:
    factory, catalogue = sessions
    with simulator(dialect, dossiers=50, seed=8, moves_per_list_request=3) as (sim, control):
        poller = poller_for(dialect, sim.url, factory, control.truth(), page_size=6)
        try:
            report = await poller.poll_once()
            assert report.error is None
            control.settings(moves_per_list_request=0)
            await poll_until_quiet(poller)
            assert control.stats()["mutations"] > 10
            await assert_matches_truth(factory, dialect, control.truth(), catalogue)
        finally:
            await poller.aclose()


async def test_an_unchanged_record_writes_nothing(
    sessions: tuple[async_sessionmaker[AsyncSession], Catalogue],
) -> None:
    factory, _ = sessions
    with simulator("igate", dossiers=10, seed=4) as (sim, control):
        poller = poller_for("igate", sim.url, factory, control.truth())
        try:
            await poll_until_quiet(poller)
            async with factory() as session:
                before = {
                    r.ma_ho_so: (r.version, r.changed_at)
                    for r in await session.scalars(select(DossierRow))
                }
            # Forget the cursor: everything is read again, nothing is written again.
            async with transaction(factory) as session:
                source = await SourceRepository(session).get_by_name("sim-igate")
                assert source is not None
                await SourceRepository(session).save_checkpoint(source.id, {}, source.created_at)
            report = await poller.poll_once()
            assert report.records == 10 and report.changed == 0 and report.unchanged == 10
            async with factory() as session:
                after = {
                    r.ma_ho_so: (r.version, r.changed_at)
                    for r in await session.scalars(select(DossierRow))
                }
            assert after == before
        finally:
            await poller.aclose()


async def test_the_checkpoint_moves_with_the_records_it_covers(
    sessions: tuple[async_sessionmaker[AsyncSession], Catalogue],
) -> None:
    """A poll that dies after its first page resumes where that page's commit left it:
    nothing lost, nothing stored twice."""
    factory, catalogue = sessions
    with simulator("opencps", dossiers=30, seed=9) as (sim, control):
        truth = control.truth()
        poller = poller_for("opencps", sim.url, factory, truth, page_size=5)
        original = poller.connector.pages

        async def dies_after_one_page(checkpoint: dict[str, Any] | None) -> AsyncIterator[Page]:
            async for page in original(checkpoint):
                yield page
                raise SourceUnavailable("connection lost mid-poll")

        poller.connector.pages = dies_after_one_page  # type: ignore[method-assign]
        try:
            report = await poller.poll_once()
            assert report.pages == 1 and report.error == "connection lost mid-poll"
            assert await count(factory, DossierRow) == 5
            poller.connector.pages = original  # type: ignore[method-assign]
            await poll_until_quiet(poller)
            await assert_matches_truth(factory, "opencps", truth, catalogue)
        finally:
            await poller.aclose()


async def test_dvclt_messages_are_acknowledged_only_after_they_are_stored(
    sessions: tuple[async_sessionmaker[AsyncSession], Catalogue],
) -> None:
    """A crash between the commit and the acknowledgement: the queue delivers the
    messages again; storing them again changes nothing and loses nothing."""
    factory, catalogue = sessions
    with simulator("dvclt", dossiers=15, seed=6, duplicates_share=0.3) as (sim, control):
        truth = control.truth()
        poller = poller_for("dvclt", sim.url, factory, truth, page_size=20)
        acknowledge = poller.connector.acknowledge

        async def crash(page: Page) -> None:
            raise SourceUnavailable("crashed before acknowledging")

        poller.connector.acknowledge = crash  # type: ignore[method-assign]
        try:
            report = await poller.poll_once()
            assert report.error == "crashed before acknowledging" and report.pages == 0
            pending = control.stats()["unacknowledged"]
            assert pending > 0
            stored_messages = await count(factory, SourceMessage)
            steps = await count(factory, ProgressRow)
            assert stored_messages == 20  # the first page is durably stored

            poller.connector.acknowledge = acknowledge  # type: ignore[method-assign]
            await poll_until_quiet(poller)
            assert control.stats()["unacknowledged"] == 0
            assert await count(factory, ProgressRow) >= steps
            await assert_matches_truth(factory, "dvclt", control.truth(), catalogue)
            async with factory() as session:
                ids = list(await session.scalars(select(SourceMessage.message_id)))
            assert len(ids) == len(set(ids)) == pending
        finally:
            await poller.aclose()


@pytest.mark.parametrize("dialect", ["igate", "dvclt"])
async def test_expired_tokens_are_renewed(
    dialect: Dialect, sessions: tuple[async_sessionmaker[AsyncSession], Catalogue]
) -> None:
    factory, catalogue = sessions
    with simulator(dialect, dossiers=10, seed=1) as (sim, control):
        poller = poller_for(dialect, sim.url, factory, control.truth())
        try:
            await poll_until_quiet(poller)
            assert control.expire_tokens() >= 1
            control.mutate(5)
            await poll_until_quiet(poller)
            await assert_matches_truth(factory, dialect, control.truth(), catalogue)
        finally:
            await poller.aclose()


async def test_a_status_mapping_fix_releases_the_quarantine(
    sessions: tuple[async_sessionmaker[AsyncSession], Catalogue],
) -> None:
    factory, _ = sessions
    with simulator("igate", dossiers=40, seed=7, unmapped_share=0.3) as (sim, control):
        truth = control.truth()
        parked = [d for d in truth["dossiers"] if d["expected"]["TrangThaiHoSo"] is None]
        assert parked, "the simulator parked no dossier in status 11"
        poller = poller_for("igate", sim.url, factory, truth)
        try:
            await poll_until_quiet(poller)
        finally:
            await poller.aclose()
        async with factory() as session:
            reasons = list(
                await session.scalars(
                    select(QuarantineEntry.reason_code).where(QuarantineEntry.resolved_at.is_(None))
                )
            )
        assert reasons.count("unmapped_status") >= len(parked)

        fixed = poller_for("igate", sim.url, factory, truth, status_map={"11": "4"})
        try:
            report = await fixed.poll_once()  # nothing new at the source: the map changed
            assert report.resolved >= len(parked)
        finally:
            await fixed.aclose()
        async with factory() as session:
            for dossier in parked:
                row = await session.scalar(
                    select(DossierRow).where(DossierRow.ma_ho_so == dossier["ma_ho_so"])
                )
                assert row is not None and row.status == "4"


async def test_a_fixed_record_leaves_the_quarantine(
    sessions: tuple[async_sessionmaker[AsyncSession], Catalogue],
) -> None:
    factory, catalogue = sessions
    with simulator("opencps", dossiers=30, seed=12, bad_data_share=0.3) as (sim, control):
        poller = poller_for("opencps", sim.url, factory, control.truth())
        try:
            await poll_until_quiet(poller)
            control.settings(bad_data_share=0.0)
            for _ in range(6):  # later changes repair the broken fields
                control.mutate(30)
            await poll_until_quiet(poller)
            truth = control.truth()
            await assert_matches_truth(factory, "opencps", truth, catalogue)
        finally:
            await poller.aclose()
        async with factory() as session:
            resolved = await session.scalar(
                select(func.count())
                .select_from(QuarantineEntry)
                .where(QuarantineEntry.resolved_at.is_not(None))
            )
        assert resolved and resolved > 0


async def test_a_source_that_is_down_is_reported_and_backed_off(
    sessions: tuple[async_sessionmaker[AsyncSession], Catalogue],
) -> None:
    factory, _ = sessions
    settings = source_settings("igate", "http://127.0.0.1:9")  # nothing listens there
    poller = Poller(settings, factory)
    poller.connector.attempts = 2
    try:
        first = await poller.poll_once()
        second = await poller.poll_once()
    finally:
        await poller.aclose()
    assert first.error is not None and "failed" in first.error
    assert second.error is not None
    async with factory() as session:
        source = await session.scalar(select(Source))
    assert source is not None and source.consecutive_failures == 2
    assert source.last_success_at is None and source.last_error == second.error
    assert backoff_delay(settings, 1) < backoff_delay(settings, 2) <= backoff_delay(settings, 30)
    assert backoff_delay(settings, 30).total_seconds() == 300


async def test_a_paused_source_is_not_polled(
    sessions: tuple[async_sessionmaker[AsyncSession], Catalogue],
) -> None:
    factory, _ = sessions
    with simulator("igate", dossiers=5) as (sim, control):
        poller = poller_for("igate", sim.url, factory, control.truth())
        try:
            async with transaction(factory) as session:
                source = await SourceRepository(session).ensure(
                    "sim-igate", "igate", control_time()
                )
                await SourceRepository(session).set_paused(source.id, True)
            report = await poller.poll_once()
        finally:
            await poller.aclose()
    assert report.paused and report.records == 0
    assert await count(factory, DossierRow) == 0


def control_time() -> Any:
    from datetime import UTC, datetime  # noqa: PLC0415

    return datetime.now(UTC)


async def test_personal_data_never_reaches_the_logs(
    sessions: tuple[async_sessionmaker[AsyncSession], Catalogue], captured_logs: io.StringIO
) -> None:
    factory, _ = sessions
    with simulator("igate", dossiers=15, seed=13, bad_data_share=0.3) as (sim, control):
        truth = control.truth()
        poller = poller_for("igate", sim.url, factory, truth)
        try:
            await poll_until_quiet(poller)
        finally:
            await poller.aclose()
    text = captured_logs.getvalue()
    assert '"event": "poll"' in text
    for entry in truth["dossiers"]:
        person = entry["record"]["applicant"]["data"]
        for value in (person["fullname"], person["identityNumber"], person["phoneNumber"]):
            assert value not in text
        if person["email"]:
            assert person["email"].split("@")[0] not in text


async def test_polling_concurrently_with_changes_in_the_background(
    sessions: tuple[async_sessionmaker[AsyncSession], Catalogue],
) -> None:
    """The simulator changes on its own while polls run; once it stops, one more round
    of polls brings storage level with the truth."""
    factory, catalogue = sessions
    with simulator("igate", dossiers=30, seed=14, ties=True, changes_per_second=40) as (
        sim,
        control,
    ):
        poller = poller_for("igate", sim.url, factory, control.truth(), page_size=8)
        try:
            for _ in range(4):
                await poller.poll_once()
                await asyncio.sleep(0.1)
            control.settings(changes_per_second=0)
            await poll_until_quiet(poller)
            await assert_matches_truth(factory, "igate", control.truth(), catalogue)
        finally:
            await poller.aclose()
