"""The pipeline of one process: pollers, pushers, read-back, catalogue refresh.

``serve`` and ``worker`` run an :class:`Engine` until SIGTERM; the demo and tests drive
it too. Several engines (processes) may share one PostgreSQL: each source is polled by
one engine at a time (a lease on its row, taken before every poll, renewed while the poll
runs and handed over when an engine dies), and outbox rows are claimed under leases
(``SKIP LOCKED``) renewed while their push is in flight, so a short lease hands a dead
engine's work over quickly without a slow round being pushed twice. On PostgreSQL each
engine's pusher is woken by a NOTIFY when any process stores a change (``wakeup.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import uuid
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.config import Settings, SourceSettings
from app.db import transaction
from app.logs import get_logger
from app.models import Source
from app.repositories.catalogue import CatalogueAgency, CatalogueRepository
from app.repositories.push_log import PushLogRepository
from app.repositories.sources import SourceRepository
from app.sync.holds import DatabaseHolds
from app.sync.observe import NullObserver, Observer
from app.sync.poll import Poller, PollReport, backoff_delay
from app.sync.portal import PortalClient, PortalError
from app.sync.push import Pusher, PushReport
from app.sync.reconcile import Reconciler, ReconcileReport
from app.sync.wakeup import WakeupListener, listener_for

log = get_logger("dossier_sync.engine")

T = TypeVar("T")

POLL_REQUEST_CHECK_S = 1.0  # between polls, look for an operator's poll-now this often
PURGE_EVERY_S = 3600.0


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(slots=True)
class RoundReport:
    polls: list[PollReport] = field(default_factory=list)
    pushes: list[PushReport] = field(default_factory=list)
    reconcile: ReconcileReport | None = None


class Engine:
    def __init__(
        self,
        settings: Settings,
        sessions: async_sessionmaker[AsyncSession],
        *,
        owner: str | None = None,
        observer: Observer | None = None,
        portal: PortalClient | None = None,
        clock: Callable[[], datetime] = utcnow,
        pollers: bool = True,
        pushers: bool = True,
        reconciler: bool = True,
    ) -> None:
        self.settings = settings
        self.sessions = sessions
        self.owner = owner or f"engine-{uuid.uuid4().hex[:12]}"
        self.observer: Observer = observer or NullObserver()
        self.clock = clock
        self.portal = portal or PortalClient(
            settings.portal, observer=self.observer, holds=DatabaseHolds(sessions)
        )
        self.pollers = (
            [Poller(s, sessions, clock=clock, observer=self.observer) for s in settings.sources]
            if pollers
            else []
        )
        self.pusher = (
            Pusher(
                sessions,
                self.portal,
                settings.sync,
                owner=self.owner,
                max_batch=settings.portal.max_batch,
                clock=clock,
                observer=self.observer,
            )
            if pushers
            else None
        )
        self.reconciler = (
            Reconciler(sessions, self.portal, batch=settings.sync.reconcile_batch, clock=clock)
            if reconciler
            else None
        )
        self._wake = asyncio.Event()  # set when a poll stored changes: push now
        self.wakeup: WakeupListener | None = (
            listener_for(sessions.kw.get("bind"), self.wake) if self.pusher is not None else None
        )

    def wake(self) -> None:
        """Push now rather than at the next idle check: changes were stored outside the
        pollers (records pushed to the API, or another process's NOTIFY)."""
        self._wake.set()

    async def aclose(self) -> None:
        for poller in self.pollers:
            await poller.aclose()
        await self.portal.aclose()

    # --- one round (demo, tests) ----------------------------------------------------

    async def run_round(self) -> RoundReport:
        """Poll every source once, push until nothing is due, read back once."""
        report = RoundReport()
        for poller in self.pollers:
            polled = await self._poll(poller)
            if polled is not None:
                report.polls.append(polled)
        if self.pusher is not None:
            while True:
                pushed = await self.pusher.push_once()
                report.pushes.append(pushed)
                if pushed.claimed == 0:
                    break
        if self.reconciler is not None:
            report.reconcile = await self.reconciler.reconcile_once()
        return report

    # --- forever (serve, worker) -------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Run every loop until ``stop`` is set; each loop finishes its current round
        (a push in flight completes and records its outcome), then leases are released."""
        await self._refresh_catalogue_or_log()
        loops: list[Awaitable[None]] = [self._poll_loop(p, stop) for p in self.pollers]
        if self.pusher is not None:
            loops.append(self._push_loop(stop))
        if self.reconciler is not None:
            loops.append(self._reconcile_loop(stop))
        loops.append(self._housekeeping_loop(stop))
        if self.wakeup is not None:
            loops.append(self.wakeup.run(stop))
        try:
            await asyncio.gather(*loops)
        finally:
            await self._release_sources()
        log.info("engine stopped", owner=self.owner)

    async def _poll(self, poller: Poller) -> PollReport | None:
        """Poll if this engine holds the source's lease (taken or renewed now, and while
        the poll runs). None: another engine holds it, or took it during the poll."""
        settings = poller.settings
        ttl = timedelta(
            seconds=self.settings.sync.poll_lease_s or max(30.0, settings.poll_interval_s * 5)
        )
        async with transaction(self.sessions) as session:
            sources = SourceRepository(session)
            now = self.clock()
            source = await sources.ensure(settings.name, settings.dialect, now)
            if not await self._my_share(sources, source, now, ttl):
                return None
            if not await sources.acquire_poll_lease(source.id, self.owner, now, ttl):
                return None
        source_id = poller.source_id = source.id  # known now, so a stop releases it

        async def renew() -> bool:
            async with transaction(self.sessions) as session:
                return await SourceRepository(session).acquire_poll_lease(
                    source_id, self.owner, self.clock(), ttl
                )

        report = await _renewing(poller.poll_once(), renew, ttl.total_seconds() / 3, settings.name)
        if report is not None and (report.changed or report.progress_added):
            self._wake.set()
        return report

    async def _my_share(
        self, sources: SourceRepository, source: Source, now: datetime, ttl: timedelta
    ) -> bool:
        """Whether this engine may poll ``source`` now. The sources are shared out among
        the live polling engines (heartbeats): each holds at most ``ceil(sources / live
        engines)``. One holding more hands this source over (its lease released, another
        engine takes it at its next poll); one holding its share leaves a free source to
        the others. Without this the first engine to start would poll every source —
        the heaviest part of a sync — while the others idled."""
        await sources.heartbeat(self.owner, now, ttl)
        polled = max(1, len(self.pollers))  # every engine is configured with the same sources
        share = math.ceil(polled / max(1, await sources.live_workers(now)))
        held = await sources.held_by(self.owner, now)
        expires = source.lease_expires_at
        if source.lease_owner == self.owner and expires is not None and expires > now:
            if held > share:
                await sources.release_poll_lease(source.id, self.owner)
                log.info("source handed over", source=source.name, held=held, share=share)
                return False
            return True
        return held < share

    async def _poll_loop(self, poller: Poller, stop: asyncio.Event) -> None:
        failures = 0
        loop = asyncio.get_running_loop()
        while not stop.is_set():
            began = loop.time()
            try:
                report = await self._poll(poller)
            except Exception:  # a bug must not stop the other sources
                log.exception("poll crashed", source=poller.settings.name)
                # poll_once reports only the failures it handles; count this one too.
                self.observer.source_poll(poller.settings.name, "error", 0)
                report = None
                failures += 1
            else:
                failures = failures + 1 if report is not None and report.error else 0
            delay = _poll_delay(poller.settings, failures, loop.time() - began)
            await self._wait_for_poll(poller, stop, delay)

    async def _wait_for_poll(self, poller: Poller, stop: asyncio.Event, delay: float) -> None:
        """Sleep ``delay`` (the poll interval or the failure back-off), but return as soon
        as an operator asks for a poll now. The request is a column of the source's row
        (the API may run in another process than this engine), looked at every
        ``POLL_REQUEST_CHECK_S``: one primary-key read per source and engine."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + delay
        while not stop.is_set():
            remaining = deadline - loop.time()
            if remaining <= 0:
                return
            await _sleep(stop, min(remaining, POLL_REQUEST_CHECK_S))
            if stop.is_set() or poller.source_id is None:
                continue
            try:
                async with self.sessions() as session:
                    requested = await SourceRepository(session).poll_requested(
                        poller.source_id, self.owner, self.clock()
                    )
            except Exception as error:  # the database is down: the poll will say so
                log.warning("poll request check failed", error=type(error).__name__)
                continue
            if requested:
                return

    async def _push_loop(self, stop: asyncio.Event) -> None:
        idle_s = self.settings.sync.idle_push_wait_s
        while not stop.is_set():
            # Cleared before the round, not after: a change committed while the round ran
            # may have come after its claim, and its wake-up must not be lost.
            self._wake.clear()
            try:
                pushed = await self._push_round()
            except Exception:
                log.exception("push round crashed")
                await _sleep(stop, 1.0)
                continue
            if pushed is not None and pushed.claimed == 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(_first(stop, self._wake), idle_s)

    async def _push_round(self) -> PushReport | None:
        """One push round, its claims' leases renewed while it runs."""
        pusher = self.pusher
        assert pusher is not None  # noqa: S101 - only called with a pusher

        async def renew() -> bool:
            await pusher.renew_leases()
            return True  # rows taken over meanwhile: the pusher sends them no more

        every_s = self.settings.sync.lease_s / 3
        return await _renewing(pusher.push_once(), renew, every_s, "push")

    async def _reconcile_loop(self, stop: asyncio.Event) -> None:
        assert self.reconciler is not None  # noqa: S101 - only started with a reconciler
        while not stop.is_set():
            try:
                await self.reconciler.reconcile_once()
            except Exception:
                log.exception("read-back crashed")
            await _sleep(stop, self.settings.sync.reconcile_interval_s)

    async def _housekeeping_loop(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await _sleep(stop, min(PURGE_EVERY_S, self.settings.portal.catalogue_refresh_s))
            if stop.is_set():
                return
            await self._refresh_catalogue_or_log()
            cutoff = self.clock() - timedelta(days=self.settings.sync.push_log_retention_days)
            try:
                async with transaction(self.sessions) as session:
                    await PushLogRepository(session).purge_before(cutoff)
            except Exception:  # the next purge catches up
                log.exception("push log purge failed")

    async def _refresh_catalogue_or_log(self) -> None:
        """A refresh that fails (the database away a moment) must not stop the engine:
        the catalogue of the last refresh stays, and the next one tries again."""
        try:
            await self.refresh_catalogue()
        except Exception:
            log.exception("catalogue refresh crashed")

    async def refresh_catalogue(self) -> bool:
        """Fetch the portal's procedures and agencies (normalisation checks MaTTHC and
        names DVCLT dossiers with them). False when the portal could not be asked."""
        accounts = self.settings.portal.accounts
        if not accounts:
            return False
        unit = accounts[0].unit
        try:
            procedures = await self.portal.procedures(unit)
            agencies = await self.portal.agencies(unit)
        except PortalError as error:
            log.warning("catalogue refresh failed", error=str(error))
            return False
        now = self.clock()
        async with transaction(self.sessions) as session:
            catalogue = CatalogueRepository(session)
            await catalogue.replace_procedures(
                [p for p in procedures if isinstance(p.get("MaTTHC"), str)], now
            )
            await catalogue.replace_agencies(
                [
                    CatalogueAgency(
                        str(a["MaCoQuan"]), str(a.get("TenCoQuan", "")), str(a.get("Cap", ""))
                    )
                    for a in agencies
                    if isinstance(a.get("MaCoQuan"), str)
                ],
                now,
            )
        return True

    async def _release_sources(self) -> None:
        async with transaction(self.sessions) as session:
            sources = SourceRepository(session)
            for poller in self.pollers:
                if poller.source_id is not None:
                    await sources.release_poll_lease(poller.source_id, self.owner)
            if self.pollers:
                await sources.forget_worker(self.owner)


async def _renewing(
    work: Coroutine[Any, Any, T],
    renew: Callable[[], Awaitable[bool]],
    every_s: float,
    what: str,
) -> T | None:
    """Run ``work`` while renewing the lease it runs under every ``every_s`` seconds.
    None when a renewal finds the lease taken by another engine (this one's renewals
    failed for a whole lease): the work is cancelled, since that engine does it now."""
    task = asyncio.create_task(work)
    try:
        while True:
            done, _ = await asyncio.wait({task}, timeout=every_s)
            if done:
                return task.result()
            try:
                kept = await renew()
            except Exception as error:  # the database is away: the work itself will say so
                log.warning("lease renewal failed", work=what, error=type(error).__name__)
                continue
            if not kept:
                log.warning("lease lost to another engine; work abandoned", work=what)
                return None
    finally:
        if not task.done():
            task.cancel()
            await asyncio.wait({task})


def _poll_delay(settings: SourceSettings, failures: int, took: float) -> float:
    """Seconds until the next poll. Polls start every ``poll_interval_s`` (a poll that
    took longer is followed at once): counted from the end of a busy source's long
    polls instead, every change would wait a poll's length more than the interval.
    After failures, the back-off counts from the failure."""
    if failures:
        return backoff_delay(settings, failures).total_seconds()
    return max(0.0, settings.poll_interval_s - took)


async def _sleep(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=seconds)


async def _first(*events: asyncio.Event) -> None:
    waiters = [asyncio.ensure_future(event.wait()) for event in events]
    try:
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
