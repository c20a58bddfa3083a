"""The pipeline of one process: pollers, pushers, read-back, catalogue refresh.

``serve`` and ``worker`` run an :class:`Engine` until SIGTERM; the demo and tests drive
it too. Several engines (processes) may share one PostgreSQL: each source is polled by
one engine at a time (a lease on its row, taken before every poll and handed over when an
engine dies), and outbox rows are claimed under leases (``SKIP LOCKED``).
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.config import Settings, SourceSettings
from app.db import transaction
from app.logs import get_logger
from app.repositories.catalogue import CatalogueAgency, CatalogueRepository
from app.repositories.push_log import PushLogRepository
from app.repositories.sources import SourceRepository
from app.sync.observe import NullObserver, Observer
from app.sync.poll import Poller, PollReport, backoff_delay
from app.sync.portal import PortalClient, PortalError
from app.sync.push import Pusher, PushReport
from app.sync.reconcile import Reconciler, ReconcileReport

log = get_logger("dossier_sync.engine")

IDLE_PUSH_WAIT_S = 0.5  # with nothing due, look again this often (or when woken)
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
        self.portal = portal or PortalClient(settings.portal, observer=self.observer)
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

    def wake(self) -> None:
        """Push now rather than at the next idle check: changes were stored outside the
        pollers (records pushed to the API)."""
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
        await self.refresh_catalogue()
        loops: list[Awaitable[None]] = [self._poll_loop(p, stop) for p in self.pollers]
        if self.pusher is not None:
            loops.append(self._push_loop(stop))
        if self.reconciler is not None:
            loops.append(self._reconcile_loop(stop))
        loops.append(self._housekeeping_loop(stop))
        try:
            await asyncio.gather(*loops)
        finally:
            await self._release_sources()
        log.info("engine stopped", owner=self.owner)

    async def _poll(self, poller: Poller) -> PollReport | None:
        """Poll if this engine holds the source's lease (taken or renewed now)."""
        settings = poller.settings
        ttl = timedelta(seconds=max(30.0, settings.poll_interval_s * 5))
        async with transaction(self.sessions) as session:
            sources = SourceRepository(session)
            source = await sources.ensure(settings.name, settings.dialect, self.clock())
            if not await sources.acquire_poll_lease(source.id, self.owner, self.clock(), ttl):
                return None
        report = await poller.poll_once()
        if report.changed or report.progress_added:
            self._wake.set()
        return report

    async def _poll_loop(self, poller: Poller, stop: asyncio.Event) -> None:
        failures = 0
        while not stop.is_set():
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
            delay = _poll_delay(poller.settings, failures)
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
        assert self.pusher is not None  # noqa: S101 - only started with a pusher
        while not stop.is_set():
            try:
                pushed = await self.pusher.push_once()
            except Exception:
                log.exception("push round crashed")
                await _sleep(stop, 1.0)
                continue
            if pushed.claimed == 0:
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(_first(stop, self._wake), IDLE_PUSH_WAIT_S)

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
            await self.refresh_catalogue()
            cutoff = self.clock() - timedelta(days=self.settings.sync.push_log_retention_days)
            async with transaction(self.sessions) as session:
                await PushLogRepository(session).purge_before(cutoff)

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


def _poll_delay(settings: SourceSettings, failures: int) -> float:
    if failures:
        return backoff_delay(settings, failures).total_seconds()
    return settings.poll_interval_s


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
