"""The whole pipeline in one process: simulators → poll → store → push → the mock portal
→ read-back, over real HTTP, on the database of the test (SQLite or PostgreSQL).

A :class:`Harness` owns an :class:`~app.sync.engine.Engine` built from ordinary
:class:`~app.config.Settings` (one portal account per unit, the simulators as sources,
short back-offs) and drives it round by round. The assertion helpers compare three
views: the source's truth, the store, and what the portal holds and was sent (its
journal and conformance report).
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.config import PortalAccount, PortalSettings, Settings, SourceSettings, SyncSettings
from app.db import transaction
from app.domain.progress import parse_progress
from app.domain.status import DossierStatus, is_transition_allowed
from app.mockportal.journal import journal_digest
from app.mockportal.testing import MockPortalControl, MockPortalHandle
from app.models import DeadLetter, DossierRow, ProgressRow, SyncState, SyncStatus
from app.repositories.dead_letters import DeadLetterFilter, DeadLetterRepository
from app.sync.deadletters import redrive
from app.sync.engine import Engine, RoundReport
from app.sync.holds import DatabaseHolds
from app.sync.normalise.common import Catalogue, Context, StatusMap
from app.sync.portal import CircuitBreaker, PortalClient
from app.sync.push import PushReport
from app.sync.reconcile import ReconcileReport
from tests.sync.polling import expected_from_truth

UNITS = ("000.00.00.H26", "000.00.00.H29", "000.00.00.G05")
H26, H29, G05 = UNITS
PASSWORD = "demo"
SYNC = "DongBoHoSoMC"
PROGRESS = "CapNhatTienDoHoSoMC"

CRITERIA = (
    "retries_only_retryable",
    "backs_off",
    "honours_retry_after",
    "reauthenticates_on_session_expiry",
    "no_regressions_pushed",
    "no_unchanged_resend_of_refused_items",
    "keeps_per_dossier_order",
    "stays_under_rate_limit",
)


def e2e_settings(
    database_url: str,
    portal_url: str,
    sources: Sequence[SourceSettings],
    *,
    timeout_s: float = 5.0,
    max_batch: int = 4,
    max_attempts: int = 12,
    backoff_initial_s: float = 0.2,
    backoff_max_s: float = 0.8,
    push_concurrency: int = 4,
) -> Settings:
    """Settings as an operator would write them, scaled down for a test: an account per
    unit at the mock (username = unit code, password ``demo``), small batches so that a
    small world still makes several requests, short back-offs."""
    return Settings(
        database_url=database_url,
        portal=PortalSettings(
            base_url=portal_url,  # type: ignore[arg-type]  # pydantic parses the URL
            timeout_s=timeout_s,
            max_batch=max_batch,
            accounts=[
                PortalAccount(unit=unit, username=unit, password=PASSWORD)  # type: ignore[arg-type]
                for unit in UNITS
            ],
        ),
        sources=list(sources),
        sync=SyncSettings(
            max_attempts=max_attempts,
            backoff_initial_s=backoff_initial_s,
            backoff_max_s=backoff_max_s,
            lease_s=60.0,
            push_concurrency=push_concurrency,
        ),
    )


@dataclass(frozen=True, slots=True)
class Stored:
    """A dossier as the store holds it, with its outbox row and progress (time order)."""

    code: str
    dossier_id: int
    unit: str
    version: int
    status: str  # TrangThaiHoSo
    state: dict[str, Any]
    sync: str  # pending | acked | synced | dead
    acked_version: int | None
    confirmed_version: int | None
    pending: bool
    attempts: int
    last_error: str | None
    last_error_code: int | None
    progress: tuple[dict[str, Any], ...]
    progress_acked: tuple[bool, ...]


@dataclass(slots=True)
class Harness:
    engine: Engine
    sessions: async_sessionmaker[AsyncSession]
    mock: MockPortalHandle
    rounds: list[RoundReport] = field(default_factory=list)

    @property
    def control(self) -> MockPortalControl:
        return self.mock.control

    # --- driving the pipeline ----------------------------------------------------------

    async def poll(self, source: str | None = None) -> int:
        """Poll every source (or the one named) once, no push; returns the records read."""
        records = 0
        for poller in self.engine.pollers:
            if source is not None and poller.settings.name != source:
                continue
            report = await poller.poll_once()
            assert report.error is None, report.error
            records += report.records
        return records

    async def poll_until_quiet(self, source: str | None = None, limit: int = 20) -> None:
        for _ in range(limit):
            if await self.poll(source) == 0:
                return
        raise AssertionError("the sources never became quiet")

    async def push(self) -> list[PushReport]:
        """Push until nothing is due now (what one round's push phase does)."""
        assert self.engine.pusher is not None
        reports = []
        while True:
            report = await self.engine.pusher.push_once()
            reports.append(report)
            if report.claimed == 0:
                return reports

    async def reconcile(self) -> ReconcileReport:
        assert self.engine.reconciler is not None
        return await self.engine.reconciler.reconcile_once()

    async def settle(self, *, max_rounds: int = 120, timeout_s: float = 45.0) -> int:
        """``run_round`` until a round read nothing new from the sources and every
        dossier is synced or dead (nothing pending, nothing awaiting read-back).
        Returns the rounds it took; fails, naming what is stuck, when bounded out."""
        deadline = time.monotonic() + timeout_s
        for count in range(1, max_rounds + 1):
            report = await self.engine.run_round()
            self.rounds.append(report)
            for poll in report.polls:
                assert poll.error is None, poll.error
            quiet = all(p.records == 0 for p in report.polls)
            waiting = await self._waiting()
            if quiet and not waiting:
                return count
            if time.monotonic() > deadline:
                break
            await asyncio.sleep(await self._pause())
        stuck = {s.code: (s.sync, s.attempts, s.last_error) for s in await self._waiting()}
        raise AssertionError(f"not settled after {len(self.rounds)} rounds: {stuck}")

    async def _waiting(self) -> list[Stored]:
        return [
            s
            for s in (await self.stored()).values()
            if s.pending or s.sync in (SyncStatus.ACKED.value, SyncStatus.PENDING.value)
        ]

    async def _pause(self) -> float:
        """Until the earliest scheduled retry (bounded), so back-offs are honoured."""
        async with self.sessions() as session:
            due = await session.scalar(
                select(SyncState.next_attempt_at)
                .where(SyncState.pending_since.is_not(None))
                .order_by(SyncState.next_attempt_at)
                .limit(1)
            )
        if due is None:
            return 0.02
        return min(1.0, max(0.02, (due - datetime.now(UTC)).total_seconds()))

    async def redrive(self, where: DeadLetterFilter) -> list[int]:
        async with transaction(self.sessions) as session:
            return await redrive(session, where, datetime.now(UTC))

    # --- reading the store ---------------------------------------------------------------

    async def stored(self) -> dict[str, Stored]:
        return await read_stored(self.sessions)

    async def dead_letters(
        self, where: DeadLetterFilter | None = None, *, open_only: bool = True
    ) -> list[DeadLetter]:
        """Open dead letters (``where`` filters them as a redrive would), or all."""
        async with self.sessions() as session:
            if where is not None:
                assert open_only
                return list(await DeadLetterRepository(session).list_open(where, limit=10_000))
            query = select(DeadLetter).order_by(DeadLetter.id)
            if open_only:
                query = query.where(DeadLetter.redriven_at.is_(None))
            return list(await session.scalars(query))


async def read_stored(sessions: async_sessionmaker[AsyncSession]) -> dict[str, Stored]:
    """Every stored dossier with its outbox row and progress (time order), by MaHoSo."""
    async with sessions() as session:
        rows = (await session.execute(select(DossierRow, SyncState).join(SyncState))).all()
        steps: dict[int, list[ProgressRow]] = {}
        for step in await session.scalars(
            select(ProgressRow).order_by(ProgressRow.occurred_at, ProgressRow.id)
        ):
            steps.setdefault(step.dossier_id, []).append(step)
    out: dict[str, Stored] = {}
    for dossier, state in rows:
        mine = steps.get(dossier.id, [])
        out[dossier.ma_ho_so] = Stored(
            code=dossier.ma_ho_so,
            dossier_id=dossier.id,
            unit=dossier.unit,
            version=dossier.version,
            status=dossier.status,
            state=dict(dossier.state),
            sync=state.status,
            acked_version=state.acked_version,
            confirmed_version=state.confirmed_version,
            pending=state.pending_since is not None,
            attempts=state.attempts,
            last_error=state.last_error,
            last_error_code=state.last_error_code,
            progress=tuple(dict(p.record) for p in mine),
            progress_acked=tuple(p.acked_at is not None for p in mine),
        )
    return out


@asynccontextmanager
async def running(
    settings: Settings,
    sessions: async_sessionmaker[AsyncSession],
    mock: MockPortalHandle,
    *,
    breaker_cooldown_s: float = 0.3,
    client_max_wait_s: float | None = None,
) -> AsyncIterator[Harness]:
    """An engine for ``settings`` and its harness; closed afterwards. The portal
    client's circuit breaker (not part of the settings) cools down quickly, as the
    back-offs do; ``client_max_wait_s`` caps its waits between the tries of one call
    (default: the client's own)."""
    breaker = CircuitBreaker(cooldown_s=breaker_cooldown_s)
    holds = DatabaseHolds(sessions)  # as the engine's own client has
    portal = (
        PortalClient(settings.portal, breaker=breaker, holds=holds)
        if client_max_wait_s is None
        else PortalClient(
            settings.portal, breaker=breaker, holds=holds, max_wait_s=client_max_wait_s
        )
    )
    engine = Engine(settings, sessions, owner="e2e-engine", portal=portal)
    try:
        yield Harness(engine, sessions, mock)
    finally:
        await engine.aclose()


async def assert_store_matches_sources(
    harness: Harness, catalogue: Catalogue, truths: Sequence[tuple[str, dict[str, Any]]]
) -> set[str]:
    """Every dossier valid at its source is stored in its latest state with exactly its
    steps, and nothing else is stored; returns the codes of the valid dossiers."""
    return assert_stored_matches_sources(await harness.stored(), catalogue, truths)


def assert_stored_matches_sources(
    stored: dict[str, Stored], catalogue: Catalogue, truths: Sequence[tuple[str, dict[str, Any]]]
) -> set[str]:
    """:func:`assert_store_matches_sources` on what :func:`read_stored` read."""
    valid: set[str] = set()
    known: set[str] = set()
    for dialect, truth in truths:
        context = Context(StatusMap(dialect), catalogue, UNITS, truth.get("agency_map") or {})
        for entry in truth["dossiers"]:
            known.add(entry["ma_ho_so"])
            expected = expected_from_truth(dialect, entry, context)
            if expected.dossier is None:
                continue  # refused now: quarantined (tests/sync covers that)
            code = expected.dossier.MaHoSo
            assert code in stored, f"{code}: not stored"
            assert stored[code].state == expected.dossier.to_portal(), f"{code}: not latest"
            steps = {parse_progress(p).identity_hash() for p in stored[code].progress}
            assert steps == {p.identity_hash() for p in expected.progress}, f"{code}: steps"
            valid.add(code)
    assert set(stored) <= known, "dossiers that no source has"
    return valid


# --- what the portal holds ---------------------------------------------------------------


def portal_copy(control: MockPortalControl, code: str) -> tuple[dict[str, Any], list[Any]] | None:
    """The portal's dossier without ``QuaTrinhXuLy``, and its ``QuaTrinhXuLy``."""
    held = control.dossier(code)
    if held is None:
        return None
    steps = held.pop("QuaTrinhXuLy")
    return held, steps


def assert_portal_holds(control: MockPortalControl, stored: Iterable[Stored]) -> None:
    """Each dossier is at the portal in its latest stored state, with every progress
    record once, oldest first, and nothing else."""
    for s in stored:
        copy = portal_copy(control, s.code)
        assert copy is not None, f"{s.code}: not at the portal"
        form, steps = copy
        assert form == s.state, f"{s.code}: the portal holds another state"
        identities = [parse_progress(step).identity_hash() for step in steps]
        assert len(identities) == len(set(identities)), f"{s.code}: a step held twice"
        times = [step["ThoiDiemXuLy"] for step in steps]
        assert times == sorted(times), f"{s.code}: steps out of time order"
        expected = sorted(parse_progress(p).identity_hash() for p in s.progress)
        assert sorted(identities) == expected, f"{s.code}: steps missing or extra"
        assert _by_identity(steps) == _by_identity(s.progress), f"{s.code}: steps differ"


def _by_identity(records: Iterable[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {parse_progress(r).identity_hash(): r for r in records}


def assert_all_synced(stored: dict[str, Stored], codes: Iterable[str] | None = None) -> None:
    chosen = stored.values() if codes is None else [stored[c] for c in codes]
    wrong = {
        s.code: (s.sync, s.last_error)
        for s in chosen
        if s.sync != SyncStatus.SYNCED.value
        or s.pending
        or s.confirmed_version != s.version
        or not all(s.progress_acked)
    }
    assert not wrong, f"not synced: {wrong}"


# --- what the portal was sent --------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Sent:
    """One item of one contract request, as the journal keeps it."""

    entry: int
    at: str
    service: str
    is_updating: str | None
    http_status: int | None
    fault: str | None
    code: str
    status: str | None
    content_hash: str | None
    occurred_at: str | None
    error_code: int | None
    stored: bool


def journal(control: MockPortalControl, **filters: Any) -> list[dict[str, Any]]:
    answer = control.journal(limit=100_000, **filters)
    assert answer["dropped"] == 0, "the journal dropped entries: the checks would be blind"
    entries: list[dict[str, Any]] = answer["entries"]
    return entries


def sent_items(control: MockPortalControl, service: str | None = None) -> list[Sent]:
    """Every item of every integration request, in arrival order."""
    out = []
    for entry in journal(control):
        if entry["endpoint"] != "integration" or (service and entry["service"] != service):
            continue
        fault = entry["fault"]["action"] if entry["fault"] else None
        out += [
            Sent(
                entry=entry["id"],
                at=entry["at"],
                service=entry["service"],
                is_updating=entry["is_updating"],
                http_status=entry["http_status"],
                fault=fault,
                code=item["ma_ho_so"],
                status=item["status"],
                content_hash=item["content_hash"],
                occurred_at=item["occurred_at"],
                error_code=item["error_code"],
                stored=item["stored"],
            )
            for item in entry["items"]
            if item["ma_ho_so"] is not None
        ]
    return out


def per_dossier(items: Iterable[Sent]) -> dict[str, list[Sent]]:
    out: dict[str, list[Sent]] = {}
    for item in items:
        out.setdefault(item.code, []).append(item)
    return out


def digest(state: dict[str, Any]) -> str:
    """The journal's content hash of an item sent as ``state`` (the mock runs in this
    process, so its per-process key is ours too)."""
    return journal_digest(state)


def assert_statuses_never_go_back(items: Iterable[Sent]) -> None:
    """Per dossier, each status sent is reachable from the one sent before it."""
    for code, sent in per_dossier(i for i in items if i.service == SYNC).items():
        statuses = [DossierStatus(s.status) for s in sent if s.status is not None]
        for earlier, later in itertools.pairwise(statuses):
            assert is_transition_allowed(earlier, later), (
                f"{code}: sent {later.value} after {earlier.value}"
            )


def criteria(control: MockPortalControl, unit: str) -> dict[str, dict[str, Any]]:
    report = control.conformance(unit)
    assert report["journal_dropped"] == 0
    return {c["name"]: c for c in report["criteria"]}


def assert_conformant(
    control: MockPortalControl,
    units: Iterable[str] = UNITS,
    names: Iterable[str] = CRITERIA,
) -> None:
    for unit in units:
        found = criteria(control, unit)
        failed = {n: found[n]["evidence"] for n in names if not found[n]["passed"]}
        assert not failed, f"{unit}: {failed}"


def refusals(items: Iterable[Sent], codes: Iterable[int] = (-5, -6, -10)) -> list[Sent]:
    wanted = set(codes)
    return [i for i in items if i.error_code in wanted]
