"""What reaches the portal, and in which order: only the latest state of a dossier that
changed several times between pushes, statuses that never go back, progress in the
order it happened, and "synced" only once read-back has seen it."""

from __future__ import annotations

from datetime import datetime, timedelta

from app.mockportal.testing import MockPortalControl, MockPortalHandle
from app.models import SyncStatus
from app.sync.normalise.common import Context, StatusMap
from tests.e2e.conftest import Store
from tests.e2e.helpers import (
    PROGRESS,
    SYNC,
    UNITS,
    Harness,
    Sent,
    assert_all_synced,
    assert_conformant,
    assert_portal_holds,
    assert_statuses_never_go_back,
    assert_store_matches_sources,
    digest,
    e2e_settings,
    journal,
    per_dossier,
    portal_copy,
    running,
    sent_items,
)
from tests.sync.polling import expected_from_truth, simulator, source_settings


async def versions_seen(harness: Harness, seen: dict[str, dict[str, int]]) -> None:
    """Remember the journal digest of every version stored so far (code → digest →
    version), so that whatever the journal shows can be named by its version."""
    for s in (await harness.stored()).values():
        seen.setdefault(s.code, {})[digest(s.state)] = s.version


async def test_a_dossier_changed_between_pushes_reaches_the_portal_only_in_its_latest_state(
    store: Store, mock_portal: MockPortalHandle
) -> None:
    with simulator("opencps", dossiers=14, seed=31) as (sim, sim_control):
        settings = e2e_settings(
            store.url, mock_portal.url, [source_settings("opencps", sim.url, page_size=5)]
        )
        async with running(settings, store.sessions, mock_portal) as harness:
            seen: dict[str, dict[str, int]] = {}
            await harness.settle()
            await versions_seen(harness, seen)
            pushed_first = {s.code: s.version for s in (await harness.stored()).values()}
            # Several changes, each polled (a new version stored each time), none pushed.
            for _ in range(4):
                sim_control.mutate(10)
                await harness.poll_until_quiet()
                await versions_seen(harness, seen)
            before_push = await harness.stored()
            await harness.settle()
            await assert_store_matches_sources(
                harness, store.catalogue, [("opencps", sim_control.truth())]
            )
            stored = await harness.stored()
    assert stored == {c: s for c, s in stored.items() if s.version == before_push[c].version}
    superseded = {
        code: range(pushed_first[code] + 1, s.version)
        for code, s in stored.items()
        if code in pushed_first and s.version - pushed_first[code] >= 2
    }
    assert len(superseded) >= 3, "the world must change some dossiers several times"

    control = mock_portal.control
    sent = sent_items(control, SYNC)

    def version(item: Sent) -> int:
        assert item.content_hash is not None
        return seen[item.code][item.content_hash]

    for code, items in per_dossier(sent).items():
        versions = [version(item) for item in items]
        assert versions == sorted(versions), f"{code}: an older version sent after a newer"
        assert not set(versions) & set(superseded.get(code, ())), (
            f"{code}: a superseded version was sent: {versions}"
        )
        assert versions[-1] == stored[code].version
    for code in superseded:
        assert {version(i) for i in per_dossier(sent)[code]} == {
            pushed_first[code],
            stored[code].version,
        }, code
    assert_statuses_never_go_back(sent)
    assert_all_synced(stored)
    assert_portal_holds(control, stored.values())
    assert_conformant(control)


async def test_synced_means_read_back_not_acknowledged(
    store: Store, mock_portal: MockPortalHandle
) -> None:
    control = mock_portal.control
    with simulator("igate", dossiers=12, seed=41) as (sim, sim_control):
        settings = e2e_settings(
            store.url, mock_portal.url, [source_settings("igate", sim.url, page_size=5)]
        )
        async with running(settings, store.sessions, mock_portal) as harness:
            await harness.poll_until_quiet()
            await harness.push()
            acked = await harness.stored()
            # The portal holds every one of them, yet none counts as synced yet.
            assert {s.sync for s in acked.values()} == {SyncStatus.ACKED.value}
            assert all(s.confirmed_version is None for s in acked.values())
            assert_portal_holds(control, acked.values())

            # Some change at the source after the acknowledgement: read-back must not
            # confirm them with the version the portal holds.
            sim_control.mutate(5)
            await harness.poll_until_quiet()
            changed = {c for c, s in (await harness.stored()).items() if s.pending}
            assert changed
            report = await harness.reconcile()
            after = await harness.stored()
            assert report.confirmed == len(acked) - len(changed & set(acked))
            for code, s in after.items():
                if code in changed:
                    assert s.sync == SyncStatus.PENDING.value and s.confirmed_version is None
                else:
                    assert s.sync == SyncStatus.SYNCED.value
                    assert s.confirmed_version == s.version == acked[code].version
            await harness.settle()
            assert_all_synced(await harness.stored())


async def test_progress_reaches_the_portal_in_the_order_it_happened(
    store: Store, mock_portal: MockPortalHandle
) -> None:
    """Dossiers move on between polls, so their steps arrive over several polls and are
    pushed over several calls (batches of 3): the portal gets them in history order."""
    control = mock_portal.control
    with (
        simulator("igate", dossiers=10, seed=51, units=UNITS[:2]) as (igate, igate_control),
        simulator("opencps", dossiers=10, seed=52, units=UNITS[2:]) as (opencps, opencps_control),
    ):
        settings = e2e_settings(
            store.url,
            mock_portal.url,
            [
                source_settings("igate", igate.url, page_size=4),
                source_settings("opencps", opencps.url, page_size=4),
            ],
            max_batch=3,
        )
        async with running(settings, store.sessions, mock_portal) as harness:
            await harness.settle()
            for _ in range(4):
                igate_control.mutate(8)
                opencps_control.mutate(8)
                await harness.settle()
            truths = [("igate", igate_control.truth()), ("opencps", opencps_control.truth())]
            await assert_store_matches_sources(harness, store.catalogue, truths)
            stored = await harness.stored()
    assert_all_synced(stored)
    assert_portal_holds(control, stored.values())

    delivered = per_dossier(i for i in sent_items(control, PROGRESS) if i.stored)
    several = 0
    for dialect, truth in truths:
        context = Context(StatusMap(dialect), store.catalogue, UNITS, None or {})
        for entry in truth["dossiers"]:
            expected = expected_from_truth(dialect, entry, context)
            if expected.dossier is None:
                continue
            code = expected.dossier.MaHoSo
            history = [p.to_portal() for p in expected.progress]
            copy = portal_copy(control, code)
            assert copy is not None
            assert copy[1] == history, f"{code}: the portal's steps are not the history"
            # Delivered one by one in that order, never an earlier step after a later one.
            times = [i.occurred_at or "" for i in delivered.get(code, [])]
            assert times == sorted(times), f"{code}: steps delivered out of order"
            assert len(times) == len(history), f"{code}: a step delivered twice"
            several += len({i.entry for i in delivered.get(code, [])}) > 1
    assert several >= 5, "steps of a dossier must have come over several calls"
    assert_conformant(control)


async def test_a_busy_units_batches_are_at_the_portal_side_by_side_each_dossier_in_order(
    store: Store, mock_portal: MockPortalHandle
) -> None:
    """A round's batches go out at once (lanes), several of the same unit, not each
    after the previous one's answer; never more than ``push_concurrency`` at a time; and
    every dossier still arrives whole, with its progress in order."""
    control = mock_portal.control
    latency_ms = 400.0  # long beside the client's own work: lanes overlap by far
    control.add_fault(
        selector={"service": SYNC},
        action={"type": "latency", "latency_ms": latency_ms},
        schedule={"kind": "always"},
    )
    two_units = (UNITS[0], UNITS[1])
    with simulator("igate", dossiers=24, seed=12, units=two_units) as (sim, sim_control):
        settings = e2e_settings(
            store.url,
            mock_portal.url,
            [source_settings("igate", sim.url)],
            max_batch=4,
            push_concurrency=3,
        )
        async with running(settings, store.sessions, mock_portal) as harness:
            await harness.poll_until_quiet()
            assert harness.engine.pusher is not None
            first = await harness.engine.pusher.push_once()
            assert first.claimed == 12  # max_batch × push_concurrency
            first_round = creates(control)
            await harness.settle()
            await assert_store_matches_sources(
                harness, store.catalogue, [("igate", sim_control.truth())]
            )
            stored = await harness.stored()

    # Twelve dossiers of two units in batches of four: more lanes than may run at once.
    assert len(first_round) >= 4, first_round
    spans = creates(control)
    at_once = [[other for other in spans if other[0] <= start < other[1]] for start, _, _ in spans]
    assert max(map(len, at_once)) == 3, f"not push_concurrency calls at once: {spans}"
    assert any(len({unit for _, _, unit in calls}) < len(calls) for calls in at_once), (
        f"no unit had two batches at the portal at once: {spans}"
    )
    assert {unit for _, _, unit in spans} == set(two_units)
    assert_all_synced(stored)
    assert_portal_holds(control, stored.values())
    assert_conformant(control, units=two_units)


def creates(control: MockPortalControl) -> list[tuple[datetime, datetime, str]]:
    """The ``DongBoHoSoMC`` calls in the journal: (arrived, answered, unit)."""
    spans = []
    for entry in journal(control, service=SYNC):
        if entry["endpoint"] == "integration":
            at = datetime.fromisoformat(entry["at"])
            spans.append((at, at + timedelta(milliseconds=entry["latency_ms"]), entry["unit"]))
    return sorted(spans)
