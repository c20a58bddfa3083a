"""When the portal does not hold what we believe: a dossier already there, one lost, one
changed by hand, one moved ahead by hand, acknowledgements that were lies."""

from __future__ import annotations

import asyncio
import itertools
from datetime import UTC, datetime
from typing import Any

import pytest

from app.db import transaction
from app.domain.dossier import parse_dossier
from app.domain.status import DossierStatus, is_transition_allowed
from app.mockportal.testing import MockPortalHandle
from app.models import SyncStatus
from app.repositories.outbox import OutboxRepository, PendingChange
from tests.e2e.conftest import Store
from tests.e2e.helpers import (
    G05,
    H26,
    PROGRESS,
    SYNC,
    Stored,
    assert_all_synced,
    assert_conformant,
    assert_portal_holds,
    assert_store_matches_sources,
    e2e_settings,
    per_dossier,
    portal_copy,
    refusals,
    running,
    sent_items,
)
from tests.sync.polling import simulator, source_settings


def by_hand(s: Stored, **changes: Any) -> dict[str, Any]:
    """The stored state changed as someone at the portal would; checked to be valid."""
    form = s.state | changes
    parse_dossier(form)
    return form


def pick(stored: dict[str, Stored], status: str, exclude: set[str]) -> Stored:
    for s in stored.values():
        if s.status == status and s.code not in exclude and s.progress:
            exclude.add(s.code)
            return s
    raise AssertionError(f"the world has no more dossiers at status {status}")


async def test_the_portal_is_brought_back_to_the_source_and_never_pushed_back(
    store: Store, mock_portal: MockPortalHandle
) -> None:
    control = mock_portal.control
    with simulator("opencps", dossiers=24, seed=1) as (sim, sim_control):
        settings = e2e_settings(
            store.url, mock_portal.url, [source_settings("opencps", sim.url, page_size=8)]
        )
        async with running(settings, store.sessions, mock_portal) as harness:
            await harness.poll_until_quiet()
            stored = await harness.stored()
            used: set[str] = set()

            # 1. Already at the portal before our first push (identical, and not).
            there_same = pick(stored, "4", used)
            there_other = pick(stored, "10", used)
            control.put_dossier(there_same.state)
            control.put_dossier(by_hand(there_other, TrichYeuHoSo="nhập tay trên Cổng"))
            await harness.settle()
            for s in (there_same, there_other):
                sync = [
                    (i.is_updating, i.error_code)
                    for i in per_dossier(sent_items(control, SYNC))[s.code]
                ]
                assert sync == [("False", -3), ("True", 0)], (s.code, sync)

            # 2. Lost by the portal after it was synced; 3. changed by hand: in the same
            # status, back to an earlier one, or on to one from which ours is reachable;
            # 4. moved by hand to a later status that ours cannot follow (final 8 "Dừng
            # xử lý" where the source says 4).
            lost = pick(stored, "10", used)
            same_status = pick(stored, "1", used)
            earlier = pick(stored, "4", used)
            sideways = pick(stored, "4", used)
            ahead = pick(stored, "4", used)
            control.delete_dossier(lost.code)
            control.put_dossier(by_hand(same_status, TrichYeuHoSo="sửa tay"))
            control.put_dossier(by_hand(earlier, TrangThaiHoSo="2"))
            # 5 "Yêu cầu bổ sung" is after 4, yet 4 is reachable from it (4, 5, 6 loop).
            control.put_dossier(by_hand(sideways, TrangThaiHoSo="5"))
            ahead_form = by_hand(
                ahead, TrangThaiHoSo="8", NgayKetThucXuLy=ahead.state["NgayHenTra"]
            )
            control.put_dossier(ahead_form)
            assert not is_transition_allowed(DossierStatus("8"), DossierStatus(ahead.status))
            before = len(sent_items(control))

            report = await harness.reconcile()
            assert (report.requeued, report.conflicts) == (4, 1)
            after = await harness.stored()
            changed = (lost, same_status, earlier, sideways)
            assert {after[s.code].sync for s in changed} == {"pending"}
            assert after[ahead.code].sync == SyncStatus.DEAD.value
            await harness.settle()
            await assert_store_matches_sources(
                harness, store.catalogue, [("opencps", sim_control.truth())]
            )
            final = await harness.stored()
            letters = await harness.dead_letters()

    sent = sent_items(control)
    later = per_dossier(sent[before:])
    # The lost one is created again, with every step.
    first = later[lost.code][0]
    assert (first.service, first.is_updating, first.error_code) == (SYNC, "False", 0)
    assert len([i for i in later[lost.code] if i.service == PROGRESS]) == len(lost.progress)
    # The changed ones are overwritten with the source's state.
    for s in (same_status, earlier, sideways):
        assert [(i.service, i.is_updating, i.error_code) for i in later[s.code]] == [
            (SYNC, "True", 0)
        ], s.code
    # The one ahead is left alone, as a dead letter naming the conflict; nothing is sent.
    assert ahead.code not in later
    copy = portal_copy(control, ahead.code)
    assert copy is not None and copy[0] == ahead_form
    assert final[ahead.code].sync == SyncStatus.DEAD.value
    [letter] = letters
    assert (letter.ma_ho_so, letter.error_code, letter.service) == (ahead.code, None, "TraCuuHoSo")
    assert "regression" in letter.reason and "status 8" in letter.reason
    rest = [s for c, s in final.items() if c != ahead.code]
    assert_all_synced({s.code: s for s in rest})
    assert_portal_holds(control, rest)
    assert not refusals(sent)
    assert_conformant(control)


async def test_a_read_back_verdict_is_dropped_when_the_dossier_changed_during_the_look_up(
    store: Store, mock_portal: MockPortalHandle, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Read-back judges what it read before its look-up, which may be slow (a portal that
    hangs, retries). When the dossier changed meanwhile — a newer version stored and
    pushed by another worker, so that the portal is ahead of what was read — the verdict
    is stale: no conflict, no dead letter; the row is judged afresh next time."""
    control = mock_portal.control
    with simulator("opencps", dossiers=12, seed=3) as (sim, _sim_control):
        settings = e2e_settings(
            store.url, mock_portal.url, [source_settings("opencps", sim.url, page_size=8)]
        )
        async with running(settings, store.sessions, mock_portal) as harness:
            await harness.settle()
            moved = pick(await harness.stored(), "4", set())
            portal = harness.engine.portal
            look_up = portal.lookup

            async def racing_look_up(unit: str, codes: list[str]) -> Any:
                if moved.code in codes:  # another worker, while this read-back waits
                    ahead = by_hand(
                        moved, TrangThaiHoSo="8", NgayKetThucXuLy=moved.state["NgayHenTra"]
                    )
                    control.put_dossier(ahead)
                    async with transaction(store.sessions) as session:
                        change = PendingChange(
                            moved.dossier_id, moved.unit, moved.version, datetime.now(UTC)
                        )
                        await OutboxRepository(session).mark_pending([change], datetime.now(UTC))
                return await look_up(unit, codes)

            monkeypatch.setattr(portal, "lookup", racing_look_up)
            report = await harness.reconcile()
            after = await harness.stored()
            letters = await harness.dead_letters()
    assert report.checked == len(after)
    assert (report.conflicts, letters) == (0, [])
    assert after[moved.code].sync == SyncStatus.PENDING.value  # its newer change waits


async def test_acknowledged_but_lost_creates_and_progress_are_found_and_sent_again(
    store: Store, mock_portal: MockPortalHandle
) -> None:
    """ack_then_lose: the portal answers success and stores nothing. A lost create is
    noticed by the -4 of its progress, or, when the progress was lost too (or the
    dossier has none), only by read-back; a lost progress call only by read-back."""
    control = mock_portal.control
    control.add_fault(
        selector={"agency": H26, "service": SYNC},
        action={"type": "ack_then_lose"},
        schedule={"kind": "first_n", "n": 2},
    )
    control.add_fault(
        selector={"agency": H26, "service": PROGRESS},
        action={"type": "ack_then_lose"},
        schedule={"kind": "first_n", "n": 1},
    )
    control.add_fault(
        selector={"agency": G05, "service": PROGRESS},
        action={"type": "ack_then_lose"},
        schedule={"kind": "every_nth", "n": 2},
    )
    with simulator("opencps", dossiers=24, seed=2) as (sim, sim_control):
        settings = e2e_settings(
            store.url, mock_portal.url, [source_settings("opencps", sim.url, page_size=8)]
        )
        async with running(settings, store.sessions, mock_portal) as harness:
            await harness.poll_until_quiet()
            await harness.push()
            await asyncio.sleep(settings.sync.backoff_max_s)  # a -4 is retried after back-off
            await harness.push()
            pushed = await harness.stored()
            sent = sent_items(control)
            lost_creates = {i.code for i in sent if i.service == SYNC and not i.stored}
            lost_steps = {i.code for i in sent if i.service == PROGRESS and i.fault}
            minus_four = {i.code for i in sent if i.service == PROGRESS and i.error_code == -4}
            assert lost_creates and lost_steps and minus_four
            # The -4 told the pusher that the portal lacks the dossier, so it lacks every
            # step too: created again, with all its steps (also those whose call was
            # "acknowledged" with it), without waiting for read-back.
            assert minus_four <= lost_creates
            assert_portal_holds(control, [pushed[c] for c in minus_four])
            # The others look fine to the pusher: acknowledged, yet not at the portal, or
            # without some steps. Only read-back can tell.
            blind = {
                c
                for c, s in pushed.items()
                if s.sync == SyncStatus.ACKED.value
                and c in (lost_creates | lost_steps) - minus_four
            }
            assert blind & lost_creates and blind - lost_creates
            for code in blind & lost_creates:
                assert portal_copy(control, code) is None
            for code in blind - lost_creates:
                copy = portal_copy(control, code)
                assert copy is not None and len(copy[1]) < len(pushed[code].progress)

            report = await harness.reconcile()
            assert report.requeued == len(blind)
            await harness.settle()
            await assert_store_matches_sources(
                harness, store.catalogue, [("opencps", sim_control.truth())]
            )
            final = await harness.stored()
    assert_all_synced(final)
    assert_portal_holds(control, final.values())
    for code in lost_creates:  # created for real in the end
        assert any(
            i.stored for i in per_dossier(sent_items(control, SYNC))[code] if i.error_code == 0
        ), code
    assert not refusals(sent_items(control))
    assert_conformant(control)


async def test_a_portal_that_keeps_losing_a_dossier_is_not_hammered(
    store: Store, mock_portal: MockPortalHandle
) -> None:
    """Every create of one dossier is acknowledged and lost; each time its progress
    answers -4. The pusher must back off and, after its attempt budget, give up with a
    dead letter — not re-create it in a tight loop for ever."""
    control = mock_portal.control
    with simulator("opencps", dossiers=8, seed=3) as (sim, _sim_control):
        settings = e2e_settings(
            store.url,
            mock_portal.url,
            [source_settings("opencps", sim.url)],
            max_batch=1,  # the lost dossier alone in its requests
            max_attempts=4,
        )
        async with running(settings, store.sessions, mock_portal) as harness:
            await harness.poll_until_quiet()
            victim = next(s for s in (await harness.stored()).values() if s.progress)
            control.add_fault(
                selector={"ma_ho_so_prefix": victim.code, "service": SYNC},
                action={"type": "ack_then_lose"},
            )
            await asyncio.wait_for(harness.settle(), timeout=20)
            final = await harness.stored()
            [letter] = await harness.dead_letters()
    creates = per_dossier(sent_items(control, SYNC))[victim.code]
    assert [(i.is_updating, i.error_code, i.stored) for i in creates] == [("False", 0, False)] * 4
    times = [datetime.fromisoformat(i.at) for i in creates]
    gaps = [(later - earlier).total_seconds() for earlier, later in itertools.pairwise(times)]
    assert min(gaps) >= settings.sync.backoff_initial_s / 2, gaps  # backed off each time
    assert final[victim.code].sync == SyncStatus.DEAD.value
    assert (letter.ma_ho_so, letter.error_code, letter.attempts) == (victim.code, -4, 4)
    assert letter.service == PROGRESS and letter.reason.startswith("gave up after 4 attempts")
    assert_all_synced({c: s for c, s in final.items() if c != victim.code})
