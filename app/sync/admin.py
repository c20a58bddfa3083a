"""Operator actions (scope ``admin``), each limited to the caller's unit or agency.

Everything acts **through the database**, because the engine that polls, pushes and
reads back may run in another process (``dossier-sync worker``) than the API:

* **pause / resume** set ``sources.paused``; the poller reads it at the start of every
  poll (a poll in flight finishes its pages), the push API refuses a paused push source.
  Resume also asks for a poll now.
* **poll now** sets ``sources.poll_requested_at``; the engine holding the source's lease
  looks for it about every second while it waits between polls
  (``Engine._wait_for_poll``), and the poll that starts clears it.
* **quarantine retry** invalidates the source's stored status-map fingerprint
  (:func:`app.sync.poll.request_reevaluation`): its next poll runs every open entry of
  the source through normalisation again, exactly as after a mapping change, under the
  source's lease — so it cannot race the poller's own writes of the same records — and
  with the current catalogue and configuration. What is valid now is stored and its
  entry resolved; the rest stays, seen once more. It also asks for a poll now.
* **dead-letter redrive** closes the letters and requeues their dossiers
  (:func:`app.sync.deadletters.redrive`); any pusher takes them at its next round.

Read-back is the exception: it is a call to the portal, made here at once (see
:func:`read_back`).

Which sources a key sees: those whose configured ``agencies`` reach into the key's unit
(for an agency key: list its agency, or its whole unit), and the unit's push source
(``push:<unit>``). Pausing or resuming changes what other units or agencies get, so it
needs a key that covers *every* agency the source serves; listing, poll-now and retry
only need the source to serve the key (they change nothing another unit would notice
but timing). Nothing here commits.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.auth import Principal
from app.config import Settings
from app.domain.agency import unit_of
from app.models import DeadLetter, QuarantineEntry, Source
from app.repositories.dead_letters import DeadLetterFilter, DeadLetterRepository
from app.repositories.dossiers import DossierRepository
from app.repositories.quarantine import QuarantineFilter, QuarantineRepository
from app.repositories.sources import SourceRepository
from app.sync.deadletters import redrive
from app.sync.engine import Engine
from app.sync.holds import DatabaseHolds
from app.sync.ingest import PUSH_DIALECT, push_source_name
from app.sync.poll import request_reevaluation
from app.sync.portal import PortalClient
from app.sync.reconcile import Reconciler, ReconcileReport


class NotFound(Exception):  # noqa: N818 - the answer it stands for
    """No such thing within the caller's reach (404, whether it exists elsewhere or not)."""


class Forbidden(Exception):  # noqa: N818
    """The caller's key does not reach that far (403)."""


class Conflict(Exception):  # noqa: N818
    """The action does not apply in the current state (409)."""


# --- which sources a key reaches ---------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SourceInfo:
    """A source as configured (or the unit's push source) and its run-time row (None:
    not seen by any process yet)."""

    name: str
    dialect: str
    agencies: tuple[str, ...]
    poll_interval_s: float | None  # None: not polled (push)
    row: Source | None
    controllable: bool  # the caller may pause and resume it

    @property
    def polled(self) -> bool:
        return self.dialect != PUSH_DIALECT


def serves(caller: Principal, agencies: Sequence[str]) -> bool:
    """Whether a source serving ``agencies`` (agency codes, or a unit code for all its
    agencies) holds dossiers the caller may see."""
    if caller.agency is None:
        return any(unit_of(a) == caller.unit for a in agencies)
    return any(a in (caller.agency, caller.unit) for a in agencies)


def controls(caller: Principal, agencies: Sequence[str]) -> bool:
    """Whether every dossier of a source serving ``agencies`` is within the caller's reach."""
    if caller.agency is None:
        return all(unit_of(a) == caller.unit for a in agencies)
    return all(a == caller.agency for a in agencies)


async def visible_sources(
    session: AsyncSession, settings: Settings, caller: Principal
) -> list[SourceInfo]:
    """The configured sources serving the caller, and its unit's push source, by name."""
    configured = [s for s in settings.sources if serves(caller, s.agencies)]
    push = push_source_name(caller.unit)
    rows = await SourceRepository(session).by_names([s.name for s in configured] + [push])
    found = [
        SourceInfo(
            s.name,
            s.dialect,
            tuple(s.agencies),
            s.poll_interval_s,
            rows.get(s.name),
            controls(caller, s.agencies),
        )
        for s in configured
    ]
    found.append(
        SourceInfo(push, PUSH_DIALECT, (caller.unit,), None, rows.get(push), caller.agency is None)
    )
    return sorted(found, key=lambda s: s.name)


async def _source(
    session: AsyncSession, settings: Settings, caller: Principal, name: str
) -> SourceInfo:
    for source in await visible_sources(session, settings, caller):
        if source.name == name:
            return source
    raise NotFound(f"no source {name!r} serves this key")


async def _row(session: AsyncSession, source: SourceInfo, now: datetime) -> Source:
    """The source's row, created if no process has used the source yet."""
    if source.row is not None:
        return source.row
    return await SourceRepository(session).ensure(source.name, source.dialect, now)


async def set_paused(
    session: AsyncSession,
    settings: Settings,
    caller: Principal,
    name: str,
    *,
    paused: bool,
    now: datetime,
) -> SourceInfo:
    """Pause or resume a source the caller controls entirely; resuming asks for a poll
    now, so the source catches up at once instead of after its interval."""
    source = await _source(session, settings, caller, name)
    if not source.controllable:
        raise Forbidden(f"{name} also serves dossiers outside this key's reach")
    row = await _row(session, source, now)
    sources = SourceRepository(session)
    await sources.set_paused(row.id, paused)
    if not paused and source.polled:
        await sources.request_poll(row.id, now)
    return await _source(session, settings, caller, name)


async def request_poll(
    session: AsyncSession, settings: Settings, caller: Principal, name: str, now: datetime
) -> SourceInfo:
    """Ask for a poll now (noticed by the engine polling the source within a second or
    so of its next check)."""
    source = await _source(session, settings, caller, name)
    if not source.polled:
        raise Conflict(f"{name} is a push source: it is not polled")
    if source.row is not None and source.row.paused:
        raise Conflict(f"{name} is paused: resume it first")
    row = await _row(session, source, now)
    await SourceRepository(session).request_poll(row.id, now)
    return await _source(session, settings, caller, name)


# --- quarantine ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class QuarantinePage:
    entries: Sequence[QuarantineEntry]
    total: int
    source_names: dict[int, str]


async def _filter_sources(
    session: AsyncSession, settings: Settings, caller: Principal, source: str | None
) -> list[SourceInfo]:
    """The caller's sources, or the one a filter names (refused outside the reach)."""
    visible = await visible_sources(session, settings, caller)
    if source is None:
        return visible
    chosen = [s for s in visible if s.name == source]
    if chosen:
        return chosen
    if any(s.name == source for s in settings.sources):
        raise Forbidden(f"source {source} does not serve this key's unit or agency")
    raise NotFound(f"no source {source!r}")


async def list_quarantine(
    session: AsyncSession,
    settings: Settings,
    caller: Principal,
    *,
    source: str | None,
    reason: str | None,
    limit: int,
    offset: int,
) -> QuarantinePage:
    """Open entries of the caller's dossiers (unit, or agency), most recently seen first.
    A unit key also sees the entries whose unit could not be read, from the sources it
    controls entirely (they can only be its own)."""
    sources = await _filter_sources(session, settings, caller, source)
    ids = tuple(s.row.id for s in sources if s.row is not None)
    where = QuarantineFilter(
        unit=caller.unit,
        agency=caller.agency,
        unknown_from=tuple(
            s.row.id for s in sources if s.row is not None and s.controllable and not caller.agency
        ),
        source_ids=ids if source is not None else None,
        reason_code=reason,
    )
    entries, total = await QuarantineRepository(session).page_open(
        where, limit=limit, offset=offset
    )
    names = await SourceRepository(session).names({e.source_id for e in entries})
    return QuarantinePage(entries, total, names)


@dataclass(frozen=True, slots=True)
class RetryRequest:
    scheduled: list[str]  # re-evaluated at their next poll (asked for now)
    waiting: list[str]  # paused: re-evaluated at the first poll after resume


async def retry_quarantine(
    session: AsyncSession, settings: Settings, caller: Principal, source: str | None, now: datetime
) -> RetryRequest:
    """Have the next poll of each of the caller's polled sources (or the one named)
    re-evaluate its open quarantine, and ask for that poll now. Push sources are not
    re-read (their callers send again; a valid resend resolves the entry)."""
    chosen = await _filter_sources(session, settings, caller, source)
    if source is not None and not chosen[0].polled:
        raise Conflict(f"{source} is a push source: send the records again instead")
    result = RetryRequest([], [])
    sources = SourceRepository(session)
    for info in chosen:
        if not info.polled or info.row is None:  # never polled: nothing quarantined yet
            continue
        await request_reevaluation(session, info.row.id, now)
        if info.row.paused:
            result.waiting.append(info.name)
        else:
            await sources.request_poll(info.row.id, now)
            result.scheduled.append(info.name)
    return result


# --- dead letters --------------------------------------------------------------------------


def dead_letter_filter(
    caller: Principal,
    *,
    unit: str | None = None,
    agency: str | None = None,
    error_code: int | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> DeadLetterFilter:
    """The caller's filter, always limited to its reach; a filter naming another unit or
    an agency outside the key is refused, not silently narrowed."""
    if unit is not None and unit != caller.unit:
        raise Forbidden(f"unit {unit} is outside this key's reach")
    if agency is not None and not caller.covers(agency):
        raise Forbidden(f"agency {agency} is outside this key's reach")
    return DeadLetterFilter(
        unit=caller.unit,
        agency=agency if agency is not None else caller.agency,
        error_code=error_code,
        since=since,
        until=until,
    )


async def list_dead_letters(
    session: AsyncSession, where: DeadLetterFilter, *, limit: int, offset: int
) -> tuple[Sequence[DeadLetter], int]:
    letters = DeadLetterRepository(session)
    return (
        await letters.list_open(where, limit=limit, offset=offset),
        await letters.count_open(where),
    )


async def redrive_dead_letters(
    session: AsyncSession, where: DeadLetterFilter, now: datetime
) -> list[str]:
    """Redrive the matching letters; returns the requeued dossiers' codes."""
    ids = await redrive(session, where, now)
    rows = await DossierRepository(session).get_many(ids)
    return sorted(row.ma_ho_so for row in rows.values())


# --- read-back -----------------------------------------------------------------------------


async def read_back(
    sessions: async_sessionmaker[AsyncSession],
    settings: Settings,
    engine: Engine | None,
    caller: Principal,
) -> ReconcileReport:
    """Read back the caller's unit's acknowledged dossiers now (oldest first, up to
    ``sync.reconcile_batch``) and settle each: confirmed → synced, missing or different →
    pushed again, portal ahead of the source → dead letter.

    With an engine in this process (``serve``) its portal client is used (its sessions,
    its circuit breaker); without one, a client of the configured portal for this call.
    Workers elsewhere keep their own read-back schedule: reading a dossier back twice is
    harmless (a confirmation only applies to the version it found). Like the engine's
    stages, the reconciler commits its own units of work."""
    if caller.agency is not None:
        raise Forbidden("read-back runs per unit (one portal session): use a unit-wide key")
    if caller.unit not in {a.unit for a in settings.portal.accounts}:
        raise Conflict(f"no portal account is configured for unit {caller.unit}")
    own = engine is None or engine.reconciler is None
    portal = (
        PortalClient(settings.portal, holds=DatabaseHolds(sessions))
        if own or engine is None
        else engine.portal
    )
    try:
        reconciler = Reconciler(sessions, portal, batch=settings.sync.reconcile_batch)
        return await reconciler.reconcile_unit(caller.unit)
    finally:
        if own:
            await portal.aclose()
