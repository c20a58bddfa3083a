"""Push stage: outbox → portal, in order per dossier, batched per unit, retried.

A round claims due outbox rows under a lease (one push in flight per dossier), pushes
each dossier's *latest* state (superseded versions are never sent), creating or updating
as the portal is known to hold it, then delivers the dossier's undelivered progress
records in the order they happened — only once the dossier exists at the portal. Each
item's answer is handled as portal-contract.md §6 says; transient failures are retried
later with exponential back-off (Retry-After as a floor) within an attempt budget, and
anything permanent or out of attempts becomes a dead letter with its reason.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.config import SyncSettings
from app.db import transaction
from app.domain.codes import ErrorCode
from app.logs import get_logger
from app.models import DossierRow, ProgressRow, SyncState
from app.repositories.dead_letters import DeadLetterRepository
from app.repositories.dossiers import DossierRepository
from app.repositories.outbox import Acknowledgement, OutboxRepository
from app.repositories.push_log import PushAttemptRecord, PushLogRepository
from app.sync.observe import NullObserver, Observer
from app.sync.portal import (
    ItemOutcome,
    NotSent,
    PortalClient,
    PortalRefused,
    PortalUnavailable,
)

log = get_logger("dossier_sync.push")

SYNC_SERVICE = "DongBoHoSoMC"
PROGRESS_SERVICE = "CapNhatTienDoHoSoMC"
PERMANENT = frozenset(
    {
        ErrorCode.VALIDATION_FAILED,
        ErrorCode.TRANSITION_REFUSED,
        ErrorCode.UNKNOWN_SERVICE,
        ErrorCode.UNIT_MISMATCH,
        ErrorCode.BAD_CREDENTIALS,
    }
)


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(slots=True)
class Failure:
    code: int | None
    message: str
    permanent: bool
    service: str = SYNC_SERVICE
    retry_after: float | None = None
    # False when no call was made: the open circuit breaker refused it (perhaps for
    # another unit's failures), a Retry-After still had long to run, or the shared one
    # could not be read. That is not an attempt of this dossier's budget.
    counted: bool = True


@dataclass(slots=True)
class Work:
    """One claimed dossier and what happened to it this round."""

    state: SyncState
    dossier: DossierRow
    progress: list[ProgressRow]
    exists: bool | None
    state_done: bool = False  # the portal holds this version
    delivered: list[int] = field(default_factory=list)  # progress ids acknowledged
    failure: Failure | None = None
    attempts: list[PushAttemptRecord] = field(default_factory=list)
    requeue: bool = False  # the portal lost the dossier: push it again from scratch
    # Its lease ran out and another worker holds the row now: nothing more is sent for
    # it this round and nothing is recorded on its row (that worker's to decide).
    lost: bool = False
    # Refused for good and recorded (dead letter, push log) as soon as the refusal came,
    # not at the round's end: a worker killed meanwhile must not leave it to be sent
    # again, unchanged, by the worker that takes the row over.
    recorded: bool = False

    @property
    def needs_state(self) -> bool:
        return self.state.acked_version is None or self.state.acked_version < self.dossier.version

    @property
    def code(self) -> str:
        return self.dossier.ma_ho_so


@dataclass(slots=True)
class PushReport:
    claimed: int = 0
    acked: int = 0
    progress_delivered: int = 0
    retried: int = 0
    dead: int = 0
    lags: list[tuple[str, float]] = field(default_factory=list)  # (unit, seconds)


class Pusher:
    """Pushes due outbox rows. Several pushers (threads of work, processes) may run at
    once: the lease of each claimed row keeps one push per dossier in flight."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        portal: PortalClient,
        settings: SyncSettings,
        *,
        owner: str | None = None,
        max_batch: int = 100,
        clock: Callable[[], datetime] = utcnow,
        observer: Observer | None = None,
    ) -> None:
        self.sessions = sessions
        self.portal = portal
        self.settings = settings
        self.owner = owner or f"pusher-{uuid.uuid4().hex[:12]}"
        self.max_batch = max_batch
        self.clock = clock
        # Lanes (batches of one unit's dossiers, each with its own calls) in flight at once.
        self._lanes = asyncio.Semaphore(settings.push_concurrency)
        self.observer: Observer = observer or NullObserver()
        # Event-loop time until which every lease of the current round is surely this
        # pusher's (set at the claim, moved on by each renewal): before it, a portal call
        # needs no look at the database; past it, the rows are checked first.
        self._held_until = 0.0
        # The rows this pusher holds as of its last claim or renewal: a renewal that finds
        # some taken over (the process stalled past its lease) drops them here, so that
        # the calls after it, which trust ``_held_until``, do not send them.
        self._held: set[int] = set()

    @property
    def _lease(self) -> timedelta:
        return timedelta(seconds=self.settings.lease_s)

    async def renew_leases(self) -> None:
        """Extend the leases of every row this pusher holds (the engine calls this while
        a round runs, every third of a lease)."""
        started = asyncio.get_running_loop().time()
        before = set(self._held)
        async with transaction(self.sessions) as session:
            held = await OutboxRepository(session).extend_leases(
                self.owner, self.clock(), self._lease
            )
        self._held -= before - held
        self._held_until = started + self.settings.lease_s

    async def push_once(self, limit: int | None = None) -> PushReport:
        """Claim up to ``limit`` due rows and push them; returns what happened."""
        report = PushReport()
        now = self.clock()
        started = asyncio.get_running_loop().time()
        async with transaction(self.sessions) as session:
            outbox = OutboxRepository(session)
            claimed = await outbox.claim(
                self.owner,
                now,
                self._lease,
                limit or self.max_batch * self.settings.push_concurrency,
            )
            if not claimed:
                return report
            repository = DossierRepository(session)
            dossiers = await repository.get_many(row.dossier_id for row in claimed)
            progress = await repository.undelivered_progress(row.dossier_id for row in claimed)
        self._held_until = started + self.settings.lease_s
        claimed_ids = {row.dossier_id for row in claimed}
        self._held |= claimed_ids
        report.claimed = len(claimed)
        units: dict[str, list[Work]] = {}
        for row in claimed:
            work = Work(
                row,
                dossiers[row.dossier_id],
                progress.get(row.dossier_id, []),
                row.exists_at_portal,
            )
            units.setdefault(row.unit, []).append(work)
        lanes = [
            (unit, list(lane))
            for unit, works in units.items()
            for lane in _chunks(works, self.max_batch)
        ]
        try:
            await asyncio.gather(*(self._lane(unit, lane, report) for unit, lane in lanes))
            await self._record([w for works in units.values() for w in works], report)
        except (Exception, asyncio.CancelledError):
            # Shutdown ran out of time, or the round failed (the database away, a
            # deadlock): hand the rows back now rather than when their lease expires (a
            # push that did reach the portal is repeated: -3 → update).
            with contextlib.suppress(Exception):
                async with transaction(self.sessions) as session:
                    await OutboxRepository(session).release(sorted(claimed_ids), self.owner)
            raise
        finally:
            self._held -= claimed_ids
        return report

    # --- one lane: a batch of one unit's dossiers ----------------------------------------

    async def _lane(self, unit: str, works: list[Work], report: PushReport) -> None:
        """One batch of a unit's dossiers: their states, then their progress. A round's
        lanes run side by side, several of one unit if it has more than a batch.

        A dossier is in one lane only, and its lane sends its state before its progress,
        in order, so per-dossier order holds whatever the lanes' interleaving; between
        different dossiers the portal imposes none. One after another, a busy unit's
        round would wait out a portal round trip per batch (most rounds hold one unit:
        the claim takes the oldest changes, which come from one source at a time).
        """
        async with self._lanes:
            await self._push_states(unit, works, report)
            await self._deliver_progress(unit, works, report)

    async def _push_states(self, unit: str, works: list[Work], report: PushReport) -> None:
        for w in works:
            w.state_done = not w.needs_state
        pending = [w for w in works if w.needs_state]
        creates = [w for w in pending if w.exists is not True]
        updates = [w for w in pending if w.exists is True]
        switched: set[int] = set()
        # A create answered -3 goes again as an update, an update answered -4 as a create
        # (what the portal holds was not what we believed); once each.
        while creates or updates:
            again: list[Work] = []
            for updating, batch in ((False, creates), (True, updates)):
                for chunk in _chunks(batch, self.max_batch):
                    outcomes = await self._send(
                        unit, chunk, SYNC_SERVICE, [w.dossier.state for w in chunk], updating
                    )
                    again += [
                        w
                        for w, outcome in zip(chunk, outcomes, strict=True)
                        if outcome is not None and _switch(w, outcome, updating, switched)
                    ]
                    await self._record_refusals(chunk, report)
            creates = [w for w in again if not w.exists]
            updates = [w for w in again if w.exists]

    async def _deliver_progress(self, unit: str, works: list[Work], report: PushReport) -> None:
        ready = [w for w in works if w.state_done and w.failure is None and w.progress]
        queue = [(w, record) for w in ready for record in w.progress]  # in time order
        # A dossier whose record failed sends none of its later ones (they would reach
        # the portal before the one that failed): the next attempt resumes.
        while queue := [(w, record) for w, record in queue if w.failure is None]:
            chunk, queue = queue[: self.max_batch], queue[self.max_batch :]
            outcomes = await self._send(
                unit,
                [w for w, _ in chunk],
                PROGRESS_SERVICE,
                [record.record for _, record in chunk],
                None,
            )
            for (w, record), outcome in zip(chunk, outcomes, strict=True):
                if outcome is None or w.failure is not None:
                    continue
                if outcome.code == ErrorCode.SUCCESS:
                    w.delivered.append(record.id)
                elif outcome.code == ErrorCode.NOT_FOUND:
                    # The portal acknowledged the dossier earlier but does not hold it
                    # (ack-then-lose): start again from a create.
                    w.requeue, w.exists = True, False
                    w.failure = Failure(outcome.code, outcome.message, False, PROGRESS_SERVICE)
                else:
                    w.failure = _failure(outcome, PROGRESS_SERVICE)
            await self._record_refusals([w for w, _ in chunk], report)

    async def _send(
        self,
        unit: str,
        works: Sequence[Work],
        service: str,
        payload: list[dict[str, Any]],
        updating: bool | None,
    ) -> list[ItemOutcome | None]:
        """One call for ``works`` (``updating`` None: progress). Per-item outcomes, or
        ``None`` for items that the whole call's failure was recorded on, or that were
        not sent because their lease is lost."""
        kept = await self._keep_leases(works)
        outcomes: list[ItemOutcome | None] = [None] * len(works)
        if not kept:
            return outcomes
        sending = [works[i] for i in kept]
        attempt = _Attempt(unit, service, uuid.uuid4().hex, self.clock(), self.clock)
        try:
            if updating is None:
                answered = await self.portal.update_progress(unit, [payload[i] for i in kept])
            else:
                answered = await self.portal.sync_dossiers(
                    unit, [payload[i] for i in kept], updating=updating
                )
        except PortalUnavailable as error:
            for w in sending:
                w.failure = w.failure or Failure(
                    None,
                    str(error),
                    False,
                    service,
                    error.retry_after,
                    counted=not isinstance(error, NotSent),
                )
                w.attempts.append(attempt.record(w, "unavailable", None, str(error)))
                self.observer.push_item(service, None)
            return outcomes
        except PortalRefused as refused:
            for w in sending:
                w.failure = w.failure or Failure(refused.code, refused.message, True, service)
                w.attempts.append(attempt.record(w, "refused", refused.code, refused.message))
                self.observer.push_item(service, refused.code)
            return outcomes
        for i, w, outcome in zip(kept, sending, answered, strict=True):
            status = "ok" if outcome.code == ErrorCode.SUCCESS else "rejected"
            w.attempts.append(attempt.record(w, status, outcome.code, outcome.message or None))
            self.observer.push_item(service, outcome.code)
            outcomes[i] = outcome
        return outcomes

    async def _keep_leases(self, works: Sequence[Work]) -> list[int]:
        """Indexes of ``works`` whose rows this pusher still holds; the others are marked
        lost. The renewals keep leases alive, but a process stalled past its renewals
        (paused, starved of CPU) may find its rows taken, and must not push them
        alongside the worker that took them: when the last claim or renewal is more
        than half a lease old, the rows are checked (and renewed) first; before that,
        what the last renewal found (``_held``) stands."""
        # Half a lease of margin: the call must reach the portal (through a loaded event
        # loop and a loaded portal) well before another worker may claim its rows.
        margin = self.settings.lease_s / 2
        if asyncio.get_running_loop().time() < self._held_until - margin:
            held = self._held
        else:
            ids = {w.state.dossier_id for w in works if not w.lost}
            async with transaction(self.sessions) as session:
                held = await OutboxRepository(session).extend_leases(
                    self.owner, self.clock(), self._lease, sorted(ids)
                )
            self._held -= ids - held
        kept: list[int] = []
        for i, w in enumerate(works):
            if not w.lost and w.state.dossier_id in held:
                kept.append(i)
            elif not w.lost:
                w.lost = True
                w.failure = w.failure or Failure(
                    None, "lease taken over by another worker", False, counted=False
                )
                log.warning("lease lost before a push; left to its new holder", ma_ho_so=w.code)
        return kept

    # --- recording what happened ------------------------------------------------------

    async def _record_refusals(self, works: Sequence[Work], report: PushReport) -> None:
        """Record at once, after the call that brought it, what the portal refused for
        good (rare: one small transaction, the round's own :meth:`_record`); the round's
        end then leaves these works alone."""
        refused = [
            w
            for w in {id(w): w for w in works}.values()
            if w.failure is not None and w.failure.permanent and not (w.lost or w.recorded)
        ]
        if not refused:
            return
        await self._record(refused, report)
        for w in refused:
            w.recorded, w.attempts = True, []  # their calls are in the push log now

    async def _record(self, works: list[Work], report: PushReport) -> None:
        now = self.clock()
        async with transaction(self.sessions) as session:
            outbox = OutboxRepository(session)
            repository = DossierRepository(session)
            letters = DeadLetterRepository(session)
            # Calls made before a lease was lost did happen: they stay in the log.
            await PushLogRepository(session).append([a for w in works for a in w.attempts])
            works = [w for w in works if not (w.lost or w.recorded)]
            # Successes are recorded set-wise (one statement for the round, not one per
            # dossier): in a healthy round they are nearly all the work.
            delivered: list[int] = []
            acknowledged: list[Acknowledgement] = []
            for w in works:
                if w.requeue:
                    # The portal does not hold the dossier, so it holds none of its steps
                    # (not even those "acknowledged" with it): all go again, in order.
                    await repository.reset_progress_delivery(w.state.dossier_id)
                elif w.delivered:
                    delivered += w.delivered
                if w.failure is None:
                    acknowledged.append(
                        Acknowledgement(
                            w.state.dossier_id,
                            w.dossier.version,
                            w.dossier.status,
                            w.state.change_seq,
                        )
                    )
                    if w.needs_state:
                        seconds = (now - w.state.changed_at).total_seconds()
                        report.lags.append((w.state.unit, seconds))
                        self.observer.lag(w.state.unit, seconds)
                    continue
                await self._failed(outbox, letters, w, now, report)
            if delivered:
                await repository.mark_progress_acked(delivered, now)
            await outbox.record_acked_many(acknowledged, self.owner, now)
            report.progress_delivered += len(delivered)
            report.acked += len(acknowledged)

    async def _failed(
        self,
        outbox: OutboxRepository,
        letters: DeadLetterRepository,
        w: Work,
        now: datetime,
        report: PushReport,
    ) -> None:
        failure = w.failure
        assert failure is not None  # noqa: S101 - only called for failed work
        attempts = w.state.attempts + int(failure.counted)
        # The state may have gone through although its progress did not: remember it, so
        # the next attempt only delivers the progress.
        state_went_through = w.state_done and w.needs_state and not w.requeue
        acked_version = w.dossier.version if state_went_through else None
        acked_status = w.dossier.status if state_went_through else None
        if w.requeue:
            # Start again from a create (what the portal acknowledged is forgotten), yet
            # as a failed attempt, with back-off and within the budget: a portal that
            # keeps losing the dossier must not be sent it again and again at once.
            await outbox.requeue(
                [w.state.dossier_id],
                now,
                failure.message,
                exists_at_portal=False,
                attempts=w.state.attempts,
            )
        if failure.permanent or attempts >= self.settings.max_attempts:
            reason = (
                failure.message
                if failure.permanent
                else (f"gave up after {attempts} attempts: {failure.message}")
            )
            if not await outbox.mark_dead(
                w.state.dossier_id,
                self.owner,
                error_code=failure.code,
                message=reason,
                acked_version=acked_version,
                acked_status=acked_status,
            ):
                # The lease ran out and another engine holds the row now: its fate is that
                # engine's to decide. A letter here would name a row that is not dead.
                log.info("refusal not recorded: the row is another engine's", ma_ho_so=w.code)
                return
            await letters.add(
                dossier_id=w.state.dossier_id,
                ma_ho_so=w.dossier.ma_ho_so,
                unit=w.dossier.unit,
                agency=w.dossier.agency,
                service=failure.service,
                version=w.dossier.version,
                error_code=failure.code,
                reason=reason,
                attempts=attempts,
                now=now,
            )
            report.dead += 1
            log.warning(
                "dead letter",
                ma_ho_so=w.code,
                service=failure.service,
                error_code=failure.code,
                attempts=attempts,
            )
            return
        await outbox.record_failure(
            w.state.dossier_id,
            self.owner,
            error_code=failure.code,
            message=failure.message,
            retry_at=now + self.backoff(attempts, failure.retry_after),
            exists_at_portal=w.exists,
            acked_version=acked_version,
            acked_status=acked_status,
            count_attempt=failure.counted,
        )
        report.retried += 1

    def backoff(self, attempts: int, retry_after: float | None = None) -> timedelta:
        """Exponential with full jitter above half, capped; Retry-After is a floor."""
        base = min(
            self.settings.backoff_max_s,
            self.settings.backoff_initial_s * (2 ** max(0, attempts - 1)),
        )
        seconds = base / 2 + random.uniform(0, base / 2)  # noqa: S311 - jitter, not secrets
        return timedelta(seconds=max(seconds, retry_after or 0.0))


@dataclass(frozen=True, slots=True)
class _Attempt:
    """One call's entries for the push log."""

    unit: str
    service: str
    batch_id: str
    started: datetime
    clock: Callable[[], datetime]

    def record(
        self, w: Work, outcome: str, code: int | None, message: str | None
    ) -> PushAttemptRecord:
        return PushAttemptRecord(
            attempted_at=self.started,
            unit=self.unit,
            service=self.service,
            batch_id=self.batch_id,
            outcome=outcome,
            dossier_id=w.state.dossier_id,
            version=w.dossier.version if self.service == SYNC_SERVICE else None,
            error_code=code,
            message=message,
            duration_ms=int((self.clock() - self.started).total_seconds() * 1000),
        )


def _switch(w: Work, outcome: ItemOutcome, updating: bool, switched: set[int]) -> bool:
    """Apply a DongBoHoSoMC answer to ``w``; True when it must be sent again the other way
    (a create answered -3 → update; an update answered -4 → create; once each)."""
    if outcome.code == ErrorCode.SUCCESS:
        w.state_done, w.exists = True, True
        return False
    wrong_way = (outcome.code == ErrorCode.ALREADY_EXISTS and not updating) or (
        outcome.code == ErrorCode.NOT_FOUND and updating
    )
    if not wrong_way:
        w.failure = _failure(outcome, SYNC_SERVICE)
        return False
    w.exists = outcome.code == ErrorCode.ALREADY_EXISTS
    if w.state.dossier_id in switched:
        w.failure = Failure(outcome.code, outcome.message, False)
        return False
    switched.add(w.state.dossier_id)
    return True


def _failure(outcome: ItemOutcome, service: str) -> Failure:
    code = outcome.code
    permanent = code in PERMANENT
    return Failure(code, outcome.message or f"error_code {code}", permanent, service)


def _chunks(items: Sequence[Any], size: int) -> list[Sequence[Any]]:
    return [items[i : i + size] for i in range(0, len(items), size)]
