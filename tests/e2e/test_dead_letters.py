"""Dead letters: a refusal that retrying cannot fix, an attempt budget spent on a unit
that is down, and redrives by unit, error code and time window once the cause is gone."""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

from app.db import create_engine, create_session_factory, transaction
from app.demodata import load_demo_catalogue
from app.mockportal.testing import MockPortalControl, MockPortalHandle
from app.models import SyncStatus
from app.repositories.dead_letters import DeadLetterFilter
from app.repositories.outbox import OutboxRepository
from app.repositories.portal_holds import PortalHoldRepository
from app.sync.holds import DatabaseHolds
from app.sync.portal import CircuitBreaker, PortalClient
from tests.e2e.conftest import Store
from tests.e2e.helpers import (
    G05,
    H26,
    H29,
    SYNC,
    Harness,
    Stored,
    assert_all_synced,
    assert_portal_holds,
    assert_store_matches_sources,
    criteria,
    e2e_settings,
    per_dossier,
    portal_copy,
    running,
    sent_items,
)
from tests.sync.polling import simulator, source_settings


async def test_dead_letters_and_their_redrives(store: Store, mock_portal: MockPortalHandle) -> None:
    control = mock_portal.control
    with simulator("opencps", dossiers=30, seed=61) as (sim, sim_control):
        settings = e2e_settings(
            store.url,
            mock_portal.url,
            [source_settings("opencps", sim.url, page_size=10)],
            max_attempts=3,
            max_batch=10,  # the first push claims every dossier (4 units of work × 10)
        )
        # The unit that is down costs the client's waits three times over: keep them short.
        async with running(settings, store.sessions, mock_portal, client_max_wait_s=0.3) as harness:
            await harness.poll_until_quiet()
            stored = await harness.stored()
            # Procedures that the portal will not know (our catalogue still does): one
            # used in H26 and one in H29, none used in G05.
            units_of: dict[str, set[str]] = {}
            for s in stored.values():
                units_of.setdefault(s.state["MaTTHC"], set()).add(s.unit)
            free = {p: u for p, u in units_of.items() if G05 not in u}
            dropped = {
                min(p for p, u in free.items() if H26 in u),
                min(p for p, u in free.items() if H29 in u),
            }
            refused = {c for c, s in stored.items() if s.state["MaTTHC"] in dropped}
            down = {c for c, s in stored.items() if s.unit == G05}
            assert {stored[c].unit for c in refused} == {H26, H29} and down
            catalogue = load_demo_catalogue()
            control.seed(
                catalogue
                | {"procedures": [p for p in catalogue["procedures"] if p["MaTTHC"] not in dropped]}
            )
            outage = control.add_fault(
                selector={"agency": G05, "service": SYNC},
                action={"type": "http_error", "status": 503},
            )

            await harness.settle()
            after = await harness.stored()
            letters = {letter.ma_ho_so: letter for letter in await harness.dead_letters()}
            assert set(letters) == refused | down
            assert {
                c for c, s in after.items() if s.sync == SyncStatus.DEAD.value
            } == refused | down
            assert_all_synced({c: s for c, s in after.items() if c not in refused | down})
            for code in refused:  # refused at once, for a reason retrying cannot fix
                letter = letters[code]
                assert (letter.error_code, letter.attempts, letter.service) == (-5, 1, SYNC)
                assert "MaTTHC" in letter.reason
                assert portal_copy(control, code) is None
            for code in down:  # retried until the budget was spent
                letter = letters[code]
                assert (letter.error_code, letter.attempts) == (None, 3)
                assert letter.reason.startswith("gave up after 3 attempts: ")
                assert "503" in letter.reason
                tries = len(per_dossier(sent_items(control, SYNC))[code])
                assert 3 <= tries <= 3 * PortalClient.attempts
            split = min(letters[c].created_at for c in down)
            assert max(letters[c].created_at for c in refused) < split
            start = min(letter.created_at for letter in letters.values()) - timedelta(seconds=1)
            window = DeadLetterFilter(since=start, until=split)
            assert {letter.ma_ho_so for letter in await harness.dead_letters(window)} == refused
            later = DeadLetterFilter(since=split)
            assert {letter.ma_ho_so for letter in await harness.dead_letters(later)} == down

            # The unit is back. Redriving its letters leaves the other units' alone.
            control.remove_fault(outage["id"])
            sent_before = Counter(i.code for i in sent_items(control))
            ids = await harness.redrive(DeadLetterFilter(unit=G05))
            assert sorted(ids) == sorted(after[c].dossier_id for c in down)
            await harness.settle()
            now = await harness.stored()
            assert_all_synced(now, down)
            assert {now[c].sync for c in refused} == {SyncStatus.DEAD.value}
            assert {letter.ma_ho_so for letter in await harness.dead_letters()} == refused
            sent_after = Counter(i.code for i in sent_items(control))
            assert all(sent_after[c] == sent_before[c] for c in refused)

            # The portal's catalogue is fixed: redrive H26's -5 letters, then the rest by
            # the time window they were written in (before the outage's letters).
            control.seed(catalogue)
            h26 = {c for c in refused if after[c].unit == H26}
            ids = await harness.redrive(DeadLetterFilter(unit=H26, error_code=-5))
            assert sorted(ids) == sorted(after[c].dossier_id for c in h26)
            await harness.settle()
            assert {letter.ma_ho_so for letter in await harness.dead_letters()} == refused - h26
            ids = await harness.redrive(window)
            assert sorted(ids) == sorted(after[c].dossier_id for c in refused - h26)
            await harness.settle()

            assert not await harness.dead_letters()
            assert len(await harness.dead_letters(open_only=False)) == len(refused | down)
            await assert_store_matches_sources(
                harness, store.catalogue, [("opencps", sim_control.truth())]
            )
            final = await harness.stored()
    assert_all_synced(final)
    assert_portal_holds(control, final.values())
    for unit in (H26, H29, G05):
        found = criteria(control, unit)
        assert found["no_regressions_pushed"]["passed"]
        assert found["retries_only_retryable"]["passed"]
        assert found["keeps_per_dossier_order"]["passed"]
        # Redriven after the catalogue was fixed, the refused dossiers went again as they
        # were: the report cannot know that the portal changed, and flags exactly those.
        resent = found["no_unchanged_resend_of_refused_items"]
        flagged = {e["detail"].split(" ")[0] for e in resent["evidence"]}
        assert flagged == {c for c in refused if final[c].unit == unit}, (unit, resent)


async def test_one_units_outage_does_not_spend_the_other_units_attempts(
    store: Store, mock_portal: MockPortalHandle
) -> None:
    """The circuit breaker is one per portal, so a unit that is down opens it for all.
    A push that the open breaker refused never reached the portal: it is rescheduled
    for when the breaker lets calls through, and is not an attempt of the budget — else
    a healthy unit's dossiers would be dead-lettered for another unit's outage."""
    control = mock_portal.control
    with (
        simulator("igate", dossiers=6, seed=71, units=(G05,)) as (down_sim, _down),
        simulator("opencps", dossiers=8, seed=72, units=(H26, H29)) as (up_sim, _up),
    ):
        settings = e2e_settings(
            store.url,
            mock_portal.url,
            [
                source_settings("igate", down_sim.url, name="down"),
                source_settings("opencps", up_sim.url, name="up"),
            ],
            max_attempts=1,  # one attempt: whatever is counted, dies
        )
        async with running(settings, store.sessions, mock_portal) as harness:
            portal = harness.engine.portal
            portal.attempts = 1  # one try per call: what the breaker decides, decides
            portal.breaker = CircuitBreaker(threshold=2, cooldown_s=1.5)
            control.add_fault(
                selector={"agency": G05, "service": SYNC},
                action={"type": "http_error", "status": 503},
            )
            await harness.poll_until_quiet("down")
            await harness.push()  # two calls (4 + 2 dossiers), two 503s: the breaker opens
            assert portal.breaker.state == "open"
            down = set(await harness.stored())
            assert len(down) == 6 == len({i.code for i in sent_items(control, SYNC)})
            assert {letter.ma_ho_so for letter in await harness.dead_letters()} == down

            await harness.poll_until_quiet("up")
            await harness.push()  # refused by the open breaker: no call is made
            assert portal.breaker.state == "open"
            up = {c: s for c, s in (await harness.stored()).items() if c not in down}
            assert up and not {i.code for i in sent_items(control)} & set(up)
            for s in up.values():
                assert (s.sync, s.attempts) == ("pending", 0), (s.code, s.sync, s.attempts)
                assert "paused" in (s.last_error or "")
            assert {letter.ma_ho_so for letter in await harness.dead_letters()} == down

            control.clear_faults()
            await harness.settle()
            final = await harness.stored()
            letters = await harness.dead_letters()
    assert_all_synced({c: s for c, s in final.items() if c not in down})
    assert_portal_holds(control, [s for c, s in final.items() if c not in down])
    assert {letter.ma_ho_so for letter in letters} == down
    for letter in letters:
        assert letter.reason == "gave up after 1 attempts: DongBoHoSoMC: HTTP 503"


@contextlib.asynccontextmanager
async def one_attempt_each(
    store: Store, mock_portal: MockPortalHandle, seed: int
) -> AsyncIterator[Harness]:
    """An engine whose dossiers die at their first counted attempt, its source (five
    dossiers of H26) read and nothing pushed yet."""
    with simulator("opencps", dossiers=5, seed=seed, units=(H26,)) as (sim, _control):
        settings = e2e_settings(
            store.url,
            mock_portal.url,
            [source_settings("opencps", sim.url, name="src")],
            max_attempts=1,  # one attempt: whatever is counted, dies
        )
        async with running(settings, store.sessions, mock_portal) as harness:
            await harness.poll_until_quiet("src")
            yield harness


async def assert_waiting_unsent(
    harness: Harness, control: MockPortalControl, error: str
) -> dict[str, Stored]:
    """Nothing reached the portal, and every dossier still waits with no attempt spent,
    ``error`` saying why."""
    waiting = await harness.stored()
    assert waiting and not sent_items(control)
    for s in waiting.values():
        assert (s.sync, s.attempts) == ("pending", 0), (s.code, s.sync, s.attempts)
        assert error in (s.last_error or ""), s.last_error
    assert not await harness.dead_letters()
    return waiting


async def test_a_push_that_could_not_read_the_shared_retry_after_is_not_an_attempt(
    store: Store, mock_portal: MockPortalHandle, tmp_path: Path
) -> None:
    """While the Retry-After the processes share cannot be read (the database away),
    nothing is sent — it might break a wait the portal named to another process — and,
    as with an open breaker, that is not an attempt of the dossiers' budget."""
    control = mock_portal.control
    unreachable = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'no' / 'such.db'}")
    async with one_attempt_each(store, mock_portal, seed=73) as harness:
        portal = harness.engine.portal
        shared, portal.holds = portal.holds, DatabaseHolds(create_session_factory(unreachable))
        try:
            await harness.push()
        finally:
            portal.holds = shared
            await unreachable.dispose()
        await assert_waiting_unsent(harness, control, "could not be read")

        await harness.settle()
        final = await harness.stored()
    assert_all_synced(final)
    assert_portal_holds(control, final.values())


async def test_a_push_held_back_by_another_process_s_long_wait_is_not_an_attempt(
    store: Store, mock_portal: MockPortalHandle
) -> None:
    """Another process was answered a 429 with a Retry-After longer than a call may
    wait: this one sends nothing to that unit until then, reschedules its pushes for
    then, and — nothing having been sent — spends none of the dossiers' attempts."""
    async with one_attempt_each(store, mock_portal, seed=74) as harness:
        held_until = datetime.now(UTC) + timedelta(seconds=60)
        async with transaction(store.sessions) as session:
            await PortalHoldRepository(session).extend(H26, held_until)
        await harness.push()
        waiting = await assert_waiting_unsent(harness, mock_portal.control, "rate limited")
        async with store.sessions() as session:
            outbox = OutboxRepository(session)
            for s in waiting.values():
                state = await outbox.get(s.dossier_id)
                assert state is not None and state.next_attempt_at is not None
                assert state.next_attempt_at >= held_until - timedelta(seconds=1), s.code
