"""OutboxRepository: pending marks, coalescing, leased claims, acks, failures, dead rows."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from app.db import create_session_factory, transaction
from app.models import SyncStatus
from app.repositories.dossiers import DossierRepository, IncomingDossier
from app.repositories.outbox import Acknowledgement, OutboxRepository, PendingChange
from tests.conftest import IsolatedDatabase
from tests.factories import make_dossier

NOW = datetime(2024, 1, 26, 3, 0, tzinfo=UTC)
LEASE = timedelta(seconds=30)
H26 = "000.00.00.H26"
H29 = "000.00.00.H29"


async def _dossiers(session: AsyncSession, count: int, unit_suffix: str = "H26") -> list[int]:
    stored = await DossierRepository(session).upsert_many(
        [
            IncomingDossier(make_dossier(f"000.00.53.{unit_suffix}-240125-{n:05d}"), read_at=NOW)
            for n in range(count)
        ]
    )
    return [item.dossier_id for item in sorted(stored, key=lambda s: s.ma_ho_so)]


@pytest.fixture
def outbox(session: AsyncSession) -> OutboxRepository:
    return OutboxRepository(session)


async def _pending(
    outbox: OutboxRepository, ids: list[int], version: int = 1, unit: str = H26, at: datetime = NOW
) -> None:
    await outbox.mark_pending([PendingChange(i, unit, version, at) for i in ids], at)


async def test_a_new_version_is_pending_and_due_now(
    session: AsyncSession, outbox: OutboxRepository
) -> None:
    [dossier_id] = await _dossiers(session, 1)
    await _pending(outbox, [dossier_id])
    state = await outbox.get(dossier_id)
    assert state is not None
    assert (state.status, state.pending_version, state.acked_version) == ("pending", 1, None)
    assert state.pending_since == NOW and state.next_attempt_at == NOW
    assert state.exists_at_portal is None


async def test_versions_coalesce_to_the_newest(
    session: AsyncSession, outbox: OutboxRepository
) -> None:
    [dossier_id] = await _dossiers(session, 1)
    await _pending(outbox, [dossier_id], version=1)
    await _pending(outbox, [dossier_id], version=3, at=NOW + timedelta(seconds=5))
    await _pending(outbox, [dossier_id], version=2, at=NOW + timedelta(seconds=9))  # late echo
    state = await outbox.get(dossier_id)
    assert state is not None
    assert state.pending_version == 3
    assert state.pending_since == NOW  # the oldest unpushed change still counts


async def test_claim_takes_due_rows_under_a_lease(
    session: AsyncSession, outbox: OutboxRepository
) -> None:
    ids = await _dossiers(session, 3)
    await _pending(outbox, ids)
    claimed = await outbox.claim("w1", NOW, LEASE, limit=2)
    assert len(claimed) == 2
    assert all(row.lease_owner == "w1" and row.lease_expires_at == NOW + LEASE for row in claimed)
    rest = await outbox.claim("w2", NOW, LEASE, limit=10)
    assert [row.dossier_id for row in rest] == sorted(set(ids) - {r.dossier_id for r in claimed})
    assert await outbox.claim("w3", NOW + LEASE - timedelta(seconds=1), LEASE, limit=10) == []


async def test_an_expired_lease_is_taken_over(
    session: AsyncSession, outbox: OutboxRepository
) -> None:
    [dossier_id] = await _dossiers(session, 1)
    await _pending(outbox, [dossier_id])
    [first] = await outbox.claim("crashed", NOW, LEASE, limit=1)
    [second] = await outbox.claim("rescuer", NOW + LEASE, LEASE, limit=1)
    assert first.dossier_id == second.dossier_id
    assert second.lease_owner == "rescuer"
    # The crashed worker's late answer no longer counts.
    ok = await outbox.record_acked(
        dossier_id,
        "crashed",
        version=1,
        portal_status="4",
        claimed_seq=first.change_seq,
        now=NOW + LEASE,
    )
    assert ok is False


async def test_claim_honours_next_attempt_time_order_and_unit(
    session: AsyncSession, outbox: OutboxRepository
) -> None:
    h26 = await _dossiers(session, 2, "H26")
    h29 = await _dossiers(session, 1, "H29")
    await _pending(outbox, h26[:1], at=NOW)
    await _pending(outbox, h29, unit=H29, at=NOW + timedelta(seconds=1))
    await _pending(outbox, h26[1:], at=NOW + timedelta(seconds=2))
    assert await outbox.claim("w", NOW - timedelta(seconds=1), LEASE, limit=10) == []
    only_h26 = await outbox.claim("w", NOW + timedelta(seconds=5), LEASE, limit=10, unit=H26)
    assert [row.dossier_id for row in only_h26] == h26
    [h29_row] = await outbox.claim("w", NOW + timedelta(seconds=5), LEASE, limit=10)
    assert h29_row.unit == H29


async def test_ack_when_caught_up_leaves_the_pending_set(
    session: AsyncSession, outbox: OutboxRepository
) -> None:
    [dossier_id] = await _dossiers(session, 1)
    await _pending(outbox, [dossier_id])
    [row] = await outbox.claim("w", NOW, LEASE, limit=1)
    acked_at = NOW + timedelta(seconds=2)
    assert await outbox.record_acked(
        dossier_id, "w", version=1, portal_status="4", claimed_seq=row.change_seq, now=acked_at
    )
    state = await outbox.get(dossier_id)
    assert state is not None
    assert (state.status, state.acked_version, state.acked_status) == ("acked", 1, "4")
    assert state.pending_since is None and state.lease_owner is None
    assert state.exists_at_portal is True and state.acked_at == acked_at
    assert await outbox.claim("w", NOW + timedelta(hours=1), LEASE, limit=10) == []


async def test_a_change_during_the_push_is_not_lost(
    session: AsyncSession, outbox: OutboxRepository
) -> None:
    """Version 2 arrives while version 1 is in flight: the ack of 1 must keep the row due."""
    [dossier_id] = await _dossiers(session, 1)
    await _pending(outbox, [dossier_id], version=1)
    [row] = await outbox.claim("w", NOW, LEASE, limit=1)
    await _pending(outbox, [dossier_id], version=2, at=NOW + timedelta(seconds=1))
    await outbox.record_acked(
        dossier_id,
        "w",
        version=1,
        portal_status="4",
        claimed_seq=row.change_seq,
        now=NOW + timedelta(seconds=2),
    )
    state = await outbox.get(dossier_id)
    assert state is not None
    assert (state.status, state.acked_version, state.pending_version) == ("pending", 1, 2)
    assert state.pending_since == NOW
    [again] = await outbox.claim("w", NOW + timedelta(seconds=2), LEASE, limit=1)
    assert again.pending_version == 2


async def test_a_round_of_acks_in_one_call_is_recorded_as_one_by_one(
    session: AsyncSession, outbox: OutboxRepository
) -> None:
    """``record_acked_many`` leaves every row as ``record_acked`` would: caught-up rows
    acked, a row changed during the push still due, a row whose lease was lost alone."""
    later = NOW + timedelta(seconds=2)
    states = []
    for batched in (False, True):
        suffix = "H29" if batched else "H26"
        done, changed, lost = await _dossiers(session, 3, suffix)
        await _pending(outbox, [done, changed, lost], unit=f"000.00.00.{suffix}")
        claimed = {
            row.dossier_id: row
            for row in await outbox.claim("w", NOW, LEASE, limit=3, unit=f"000.00.00.{suffix}")
        }
        await _pending(outbox, [changed], version=2, at=NOW + timedelta(seconds=1))
        await outbox.release([lost], "w")
        [taken] = await outbox.claim("other", NOW, LEASE, limit=1, unit=f"000.00.00.{suffix}")
        assert taken.dossier_id == lost
        acks = [Acknowledgement(i, 1, "4", claimed[i].change_seq) for i in (done, changed, lost)]
        if batched:
            await outbox.record_acked_many(acks, "w", later)
        else:
            for ack in acks:
                await outbox.record_acked(
                    ack.dossier_id,
                    "w",
                    version=ack.version,
                    portal_status=ack.portal_status,
                    claimed_seq=ack.claimed_seq,
                    now=later,
                )
        rows = [await outbox.get(i) for i in (done, changed, lost)]
        states.append(
            [
                (
                    r.status,
                    r.acked_version,
                    r.acked_status,
                    r.pending_version,
                    r.pending_since,
                    r.lease_owner,
                    r.exists_at_portal,
                    r.acked_at,
                    r.next_attempt_at,
                )
                for r in rows
                if r is not None
            ]
        )
    one_by_one, batched_states = states
    assert batched_states == one_by_one
    assert [s[0] for s in batched_states] == ["acked", "pending", "pending"]
    assert batched_states[2][5] == "other" and batched_states[2][1] is None


async def test_progress_arriving_during_the_push_is_not_lost(
    session: AsyncSession, outbox: OutboxRepository
) -> None:
    [dossier_id] = await _dossiers(session, 1)
    await _pending(outbox, [dossier_id])
    [row] = await outbox.claim("w", NOW, LEASE, limit=1)
    await outbox.mark_progress_pending([dossier_id], NOW + timedelta(seconds=1))
    await outbox.record_acked(
        dossier_id,
        "w",
        version=1,
        portal_status="4",
        claimed_seq=row.change_seq,
        now=NOW + timedelta(seconds=2),
    )
    state = await outbox.get(dossier_id)
    assert state is not None and state.status == "pending" and state.pending_since is not None


async def test_progress_on_an_idle_row_makes_it_due(
    session: AsyncSession, outbox: OutboxRepository
) -> None:
    [dossier_id] = await _dossiers(session, 1)
    await _pending(outbox, [dossier_id])
    [row] = await outbox.claim("w", NOW, LEASE, limit=1)
    await outbox.record_acked(
        dossier_id, "w", version=1, portal_status="4", claimed_seq=row.change_seq, now=NOW
    )
    later = NOW + timedelta(minutes=3)
    await outbox.mark_progress_pending([dossier_id], later)
    state = await outbox.get(dossier_id)
    assert state is not None
    assert (state.status, state.pending_since, state.next_attempt_at) == ("pending", later, later)


async def test_failure_counts_the_attempt_and_schedules_a_retry(
    session: AsyncSession, outbox: OutboxRepository
) -> None:
    [dossier_id] = await _dossiers(session, 1)
    await _pending(outbox, [dossier_id])
    await outbox.claim("w", NOW, LEASE, limit=1)
    retry_at = NOW + timedelta(seconds=40)
    assert await outbox.record_failure(
        dossier_id,
        "w",
        error_code=-99,
        message="portal down",
        retry_at=retry_at,
        exists_at_portal=False,
    )
    state = await outbox.get(dossier_id)
    assert state is not None
    assert (state.attempts, state.last_error_code, state.last_error) == (1, -99, "portal down")
    assert state.lease_owner is None and state.exists_at_portal is False
    assert await outbox.claim("w", retry_at - timedelta(seconds=1), LEASE, limit=1) == []
    assert len(await outbox.claim("w", retry_at, LEASE, limit=1)) == 1


async def test_dead_rows_are_not_claimed_until_they_change(
    session: AsyncSession, outbox: OutboxRepository
) -> None:
    [dossier_id] = await _dossiers(session, 1)
    await _pending(outbox, [dossier_id])
    await outbox.claim("w", NOW, LEASE, limit=1)
    assert await outbox.mark_dead(dossier_id, "w", error_code=-6, message="transition refused")
    await outbox.mark_progress_pending([dossier_id], NOW)  # progress does not revive it
    state = await outbox.get(dossier_id)
    assert state is not None and (state.status, state.pending_since) == ("dead", None)
    assert await outbox.claim("w", NOW + timedelta(days=1), LEASE, limit=1) == []

    await _pending(outbox, [dossier_id], version=2, at=NOW + timedelta(days=1))
    state = await outbox.get(dossier_id)
    assert state is not None and (state.status, state.attempts) == ("pending", 0)
    assert state.last_error is None


async def test_requeue_forgets_what_the_portal_was_believed_to_hold(
    session: AsyncSession, outbox: OutboxRepository
) -> None:
    [dossier_id] = await _dossiers(session, 1)
    await _pending(outbox, [dossier_id])
    [row] = await outbox.claim("w", NOW, LEASE, limit=1)
    await outbox.record_acked(
        dossier_id, "w", version=1, portal_status="4", claimed_seq=row.change_seq, now=NOW
    )
    await outbox.requeue([dossier_id], NOW + timedelta(minutes=1), "read-back: missing")
    state = await outbox.get(dossier_id)
    assert state is not None
    assert (state.status, state.acked_version, state.exists_at_portal) == ("pending", None, None)
    assert state.last_error == "read-back: missing"
    assert len(await outbox.claim("w", NOW + timedelta(minutes=1), LEASE, limit=1)) == 1


async def test_only_read_back_of_the_latest_version_makes_it_synced(
    session: AsyncSession, outbox: OutboxRepository
) -> None:
    [dossier_id] = await _dossiers(session, 1)
    await _pending(outbox, [dossier_id], version=1)
    assert await outbox.mark_confirmed(dossier_id, 1, NOW) is False  # not acknowledged yet
    [row] = await outbox.claim("w", NOW, LEASE, limit=1)
    await outbox.record_acked(
        dossier_id, "w", version=1, portal_status="4", claimed_seq=row.change_seq, now=NOW
    )
    assert [r.dossier_id for r in await outbox.acked_for_readback(10)] == [dossier_id]
    assert await outbox.mark_confirmed(dossier_id, 0, NOW) is False  # an older version
    assert await outbox.mark_confirmed(dossier_id, 1, NOW + timedelta(seconds=3))
    state = await outbox.get(dossier_id)
    assert state is not None
    assert (state.status, state.confirmed_version) == (SyncStatus.SYNCED.value, 1)
    assert await outbox.acked_for_readback(10) == []


async def test_read_back_confirms_many_rows_in_one_statement_only_at_their_latest_version(
    session: AsyncSession, outbox: OutboxRepository
) -> None:
    ids = await _dossiers(session, 4)
    await _pending(outbox, ids, version=1)
    claimed = {r.dossier_id: r for r in await outbox.claim("w", NOW, LEASE, limit=4)}
    for dossier_id in ids[:3]:  # the fourth is never acknowledged
        await outbox.record_acked(
            dossier_id,
            "w",
            version=1,
            portal_status="4",
            claimed_seq=claimed[dossier_id].change_seq,
            now=NOW,
        )
    found = [(ids[0], 1), (ids[1], 1), (ids[2], 0), (ids[3], 1)]  # ids[2]: an old version
    assert await outbox.mark_confirmed_many(found, NOW) == 2
    assert await outbox.mark_confirmed_many([], NOW) == 0
    statuses = {i: (await outbox.get(i)) for i in ids}
    assert {i: s.status for i, s in statuses.items() if s is not None} == {
        ids[0]: SyncStatus.SYNCED.value,
        ids[1]: SyncStatus.SYNCED.value,
        ids[2]: SyncStatus.ACKED.value,
        ids[3]: SyncStatus.PENDING.value,
    }
    assert [statuses[i].confirmed_version for i in ids[:2]] == [1, 1]  # type: ignore[union-attr]


async def test_backlog_and_oldest_pending_per_unit(
    session: AsyncSession, outbox: OutboxRepository
) -> None:
    h26 = await _dossiers(session, 3, "H26")
    h29 = await _dossiers(session, 1, "H29")
    await _pending(outbox, h26[:1], at=NOW)
    await _pending(outbox, h26[1:], at=NOW + timedelta(minutes=1))
    await _pending(outbox, h29, unit=H29, at=NOW + timedelta(minutes=2))
    [row] = await outbox.claim("w", NOW, LEASE, limit=1, unit=H26)
    await outbox.record_acked(
        row.dossier_id, "w", version=1, portal_status="4", claimed_seq=row.change_seq, now=NOW
    )
    backlog = {(b.unit, b.status): b.count for b in await outbox.backlog()}
    assert backlog == {(H26, "acked"): 1, (H26, "pending"): 2, (H29, "pending"): 1}
    assert await outbox.oldest_pending() == {
        H26: NOW + timedelta(minutes=1),
        H29: NOW + timedelta(minutes=2),
    }


async def test_release_hands_claims_back(session: AsyncSession, outbox: OutboxRepository) -> None:
    ids = await _dossiers(session, 2)
    await _pending(outbox, ids)
    claimed = await outbox.claim("w", NOW, LEASE, limit=2)
    await outbox.release([row.dossier_id for row in claimed], "someone-else")
    assert await outbox.claim("w2", NOW, LEASE, limit=2) == []
    await outbox.release([row.dossier_id for row in claimed], "w")
    assert len(await outbox.claim("w2", NOW, LEASE, limit=2)) == 2


@pytest.mark.postgresql_only
async def test_concurrent_claims_skip_each_others_rows(
    migrated_database: IsolatedDatabase,
) -> None:
    """Workers claiming at once on PostgreSQL get disjoint sets covering every due row,
    without waiting on each other's locks (FOR UPDATE SKIP LOCKED)."""
    factory = create_session_factory(migrated_database.engine)
    async with transaction(factory) as session:
        ids = await _dossiers(session, 60)
        await OutboxRepository(session).mark_pending(
            [PendingChange(i, H26, 1, NOW) for i in ids], NOW
        )

    hold = asyncio.Event()
    first_claimed = asyncio.Event()

    async def slow_worker() -> list[int]:
        async with transaction(factory) as session:
            rows = await OutboxRepository(session).claim("slow", NOW, LEASE, limit=25)
            first_claimed.set()
            await hold.wait()  # keep the row locks while the others claim
            return [row.dossier_id for row in rows]

    async def fast_worker(name: str) -> list[int]:
        await first_claimed.wait()
        async with transaction(factory) as session:
            rows = await OutboxRepository(session).claim(name, NOW, LEASE, limit=25)
            return [row.dossier_id for row in rows]

    slow = asyncio.create_task(slow_worker())
    fast = await asyncio.wait_for(asyncio.gather(fast_worker("a"), fast_worker("b")), timeout=10)
    hold.set()
    batches = [await slow, *fast]
    claimed = [dossier_id for batch in batches for dossier_id in batch]
    assert len(claimed) == len(set(claimed)) == 60
    assert set(claimed) == set(ids)
    assert all(len(batch) > 0 for batch in batches)
