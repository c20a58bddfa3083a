"""Prometheus metrics (service-interface.md, "Metrics"; prefix ``dossier_sync_``).

Three kinds of numbers, each from where it is true:

- **What this process did** — counters of polls, records, portal requests and item
  answers, and the lag histogram — are updated by :class:`PrometheusObserver`, which the
  pipeline stages call (``app.sync.observe.Observer``).
- **What the database holds** — dossiers per state, the oldest pending change, source
  health, quarantine and dead letters — is read from the database by
  :class:`DatabaseCollector`, so every worker and the API report the same numbers
  however many processes run. The collector never does I/O while Prometheus collects: it
  serves the last :class:`DatabaseSnapshot`, which an async :meth:`DatabaseCollector.refresh`
  replaces (a background task every few seconds in ``serve`` and ``worker``, and
  ``/metrics`` when the snapshot is stale). Queries on a scrape path would stall the event
  loop's other work behind a slow database, and N scrapers would mean N query sets.
- **The month's 766 indicators** per agency, the sync rate ``dossier_sync_ratio``
  (indicator 1.4) among them, come from the 766 report itself
  (``app.sync.reports.unit_report``), so that the gauges, the unit sync API and
  ``GET /api/v1/reports/766`` never disagree. A report reads every dossier of the month,
  so it is an :class:`IndicatorSnapshot` of its own, recomputed in the background once a minute
  (:data:`INDICATORS_REFRESH_S`) and never on a scrape: a monthly figure loses nothing to
  a minute's delay, and a slow report cannot hold back the gauges that alerts read.
- **The portal circuit breaker** (``dossier_sync_circuit_open``) is the one in-process
  gauge: each process has its own breaker, and that is what it reports.

Every process uses a :class:`Metrics` with its own ``CollectorRegistry`` (never the
global one), so tests can run several side by side.

Several processes are exposed **per process**, not through prometheus-client's
multiprocess mode: ``serve`` answers ``/metrics`` on its API port, each ``worker`` on its
``--metrics-port``, Prometheus scrapes every one, and queries sum counters across
instances (``sum without (instance, job) (rate(...))``) and deduplicate the database
gauges (``max without (instance, job) (...)``). Multiprocess mode shares counter files
between processes of one host only — workers scaling out against one PostgreSQL run on
several — needs its directory wiped at every start, and bypasses custom collectors such as
the database snapshot. ``docs/observability.md`` has the whole argument.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import Collector
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.config import Settings
from app.db import transaction
from app.domain.dates import month_bounds as month_bounds  # noqa: PLC0414 - re-exported
from app.domain.periods import Period
from app.logs import get_logger
from app.models import SyncStatus
from app.repositories.dead_letters import DeadLetterRepository
from app.repositories.dossiers import DossierRepository
from app.repositories.indicators import IndicatorSnapshotRepository, StoredIndicators
from app.repositories.outbox import OutboxRepository
from app.repositories.portal_holds import PortalHoldRepository
from app.repositories.quarantine import QuarantineRepository
from app.repositories.sources import SourceRepository
from app.sync.ingest import PUSH_DIALECT
from app.sync.reports import unit_report

log = get_logger("dossier_sync.metrics")

PREFIX = "dossier_sync_"
# From a fast round trip (tens of milliseconds) to an hour behind.
LAG_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1200, 1800, 3600)
DOSSIER_STATES = ("pending", "synced", "quarantined", "dead")
# sync_state.status → the `state` label (acknowledged but not yet read back is pending).
_STATE_OF_STATUS = {
    SyncStatus.PENDING.value: "pending",
    SyncStatus.ACKED.value: "pending",
    SyncStatus.SYNCED.value: "synced",
    SyncStatus.DEAD.value: "dead",
}
UNKNOWN = "unknown"  # a quarantined record whose unit could not be read
NO_CODE = "none"  # an item without a portal answer, a dead letter without a portal code
DEFAULT_REFRESH_S = 5.0
INDICATORS_REFRESH_S = 60.0
REFRESH_MAX_SHARE = 0.1
"""The most of a process's time a background refresh may take: one that runs long (the
766 report of a month of a million dossiers takes about a minute on two cores) waits
proportionally longer before the next, so it never crowds out the process's own work."""
CLAIM_MIN_S = 600.0
"""The shortest claim on computing the shared 766 indicators: a process that dies while
computing them holds the others off this long at most (longer after slow reports)."""
WAITING_LOOK_S = 5.0
"""How often a process with none of this month's 766 indicators looks for the report
another process is computing, instead of its interval: a process started while another
computes the report exports it a few seconds after it is stored, not an interval later."""
SYNC_RATE_INDICATOR = "1.4"  # dossier_sync_ratio is this indicator under its own name


def utcnow() -> datetime:
    return datetime.now(UTC)


# --- what the database holds --------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DatabaseSnapshot:
    """The database-derived gauges at ``taken_at`` (label values → value)."""

    taken_at: datetime
    dossiers: Mapping[tuple[str, str], int] = field(default_factory=dict)  # (unit, state)
    oldest_pending_seconds: Mapping[str, float] = field(default_factory=dict)  # unit
    source_last_success: Mapping[str, float] = field(default_factory=dict)  # source → epoch s
    source_lag_seconds: Mapping[str, float] = field(default_factory=dict)  # polled source
    source_paused: Mapping[str, bool] = field(default_factory=dict)  # polled source
    quarantined: Mapping[tuple[str, str], int] = field(default_factory=dict)  # (source, reason)
    dead_letters: Mapping[tuple[str, str], int] = field(default_factory=dict)  # (unit, code)
    portal_hold_seconds: Mapping[str, float] = field(default_factory=dict)  # unit


async def read_snapshot(
    sessions: async_sessionmaker[AsyncSession], now: datetime
) -> DatabaseSnapshot:
    """Run the repository queries behind the database gauges (one read-only session)."""
    async with sessions() as session:
        outbox = OutboxRepository(session)
        backlog = await outbox.backlog()
        oldest = await outbox.oldest_pending()
        quarantine = QuarantineRepository(session)
        quarantined_dossiers = await quarantine.open_dossier_counts()
        quarantined = await quarantine.open_counts_by_source()
        dead_letters = await DeadLetterRepository(session).open_counts()
        sources = await SourceRepository(session).list_all()
        holds = await PortalHoldRepository(session).all()

    dossiers: dict[tuple[str, str], int] = {}
    for row in backlog:
        state = _STATE_OF_STATUS.get(row.status)
        if state is not None:
            dossiers[(row.unit, state)] = dossiers.get((row.unit, state), 0) + row.count
    for unit, count in quarantined_dossiers.items():
        dossiers[(unit or UNKNOWN, "quarantined")] = count
    units = {unit for unit, _ in dossiers} | set(oldest)
    for unit in units:  # every known unit shows every state, 0 when empty
        for state in DOSSIER_STATES:
            dossiers.setdefault((unit, state), 0)

    return DatabaseSnapshot(
        taken_at=now,
        dossiers=dossiers,
        oldest_pending_seconds={
            unit: max(0.0, (now - oldest[unit]).total_seconds()) if unit in oldest else 0.0
            for unit in units
        },
        source_last_success={
            s.name: s.last_success_at.timestamp() if s.last_success_at is not None else 0.0
            for s in sources
        },
        # A source never polled successfully has been without a success since the service
        # first knew it (its row's creation), so that one that never works alerts too.
        # Push-mode sources are never polled: no lag to speak of.
        source_lag_seconds={
            s.name: max(0.0, (now - (s.last_success_at or s.created_at)).total_seconds())
            for s in sources
            if s.dialect != PUSH_DIALECT
        },
        source_paused={s.name: s.paused for s in sources if s.dialect != PUSH_DIALECT},
        quarantined=quarantined,
        dead_letters={
            (unit, NO_CODE if code is None else str(code)): count
            for (unit, code), count in dead_letters.items()
        },
        portal_hold_seconds={
            unit: max(0.0, (holds[unit] - now).total_seconds()) if unit in holds else 0.0
            for unit in units | set(holds)
        },
    )


@dataclass(frozen=True, slots=True)
class IndicatorSnapshot:
    """The computed 766 indicators of every agency for the month of ``taken_at``:
    (unit, agency, indicator id) → value (0..1) and points; an indicator whose value is
    null (nothing to count yet) has no entry."""

    taken_at: datetime
    values: Mapping[tuple[str, str, str], float] = field(default_factory=dict)
    points: Mapping[tuple[str, str, str], float] = field(default_factory=dict)


async def read_indicators(
    sessions: async_sessionmaker[AsyncSession], now: datetime
) -> IndicatorSnapshot:
    """The 766 report of every unit with stored dossiers, for the month of ``now``."""
    period = Period.containing(now)
    values: dict[tuple[str, str, str], float] = {}
    points: dict[tuple[str, str, str], float] = {}
    async with sessions() as session:
        for unit in await DossierRepository(session).units():
            report = await unit_report(session, unit=unit, period=period, now=now)
            for agency in report.agencies:
                for indicator in agency.indicators:
                    key = (unit, agency.agency, indicator.id)
                    if indicator.value is not None:
                        values[key] = indicator.value
                    if indicator.points is not None:
                        points[key] = indicator.points
    return IndicatorSnapshot(now, values, points)


def _same_month(at: datetime, now: datetime) -> bool:
    return Period.containing(at) == Period.containing(now)


def _encode(snapshot: IndicatorSnapshot) -> dict[str, Any]:
    return {
        "values": [[*key, number] for key, number in snapshot.values.items()],
        "points": [[*key, number] for key, number in snapshot.points.items()],
    }


def _decode(stored: StoredIndicators) -> IndicatorSnapshot:
    def table(name: str) -> dict[tuple[str, str, str], float]:
        return {
            (str(unit), str(agency), str(indicator)): float(number)
            for unit, agency, indicator, number in stored.indicators.get(name) or []
        }

    return IndicatorSnapshot(stored.computed_at, table("values"), table("points"))


class DatabaseCollector(Collector):
    """The database gauges, served from the last snapshot (no I/O in :meth:`collect`).

    The 766 indicators are shared through the database (``indicator_snapshots``): a
    snapshot any process computed is taken while it is fresh; when none is, one process
    claims the computation and the others keep what they have until it is stored."""

    def __init__(
        self,
        clock: Callable[[], datetime] = utcnow,
        indicators_interval_s: float = INDICATORS_REFRESH_S,
    ) -> None:
        self.clock = clock
        self.indicators_interval_s = indicators_interval_s
        self.owner = f"metrics-{socket.gethostname()[:40]}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.snapshot: DatabaseSnapshot | None = None
        self.indicators: IndicatorSnapshot | None = None
        # Another process computes the report and this one has none of the month's.
        self._waiting = False
        self._lock: asyncio.Lock | None = None
        # Its own lock: a report in progress never holds back the other gauges.
        self._indicators_lock: asyncio.Lock | None = None

    async def refresh(self, sessions: async_sessionmaker[AsyncSession]) -> DatabaseSnapshot:
        """Read the database and replace the snapshot (concurrent calls queue up)."""
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            snapshot = await read_snapshot(sessions, self.clock())
            self.snapshot = snapshot  # one reference swap: collect() sees old or new
            return snapshot

    async def refresh_indicators(
        self, sessions: async_sessionmaker[AsyncSession], *, shared: bool = True
    ) -> IndicatorSnapshot | None:
        """Replace the indicators by the month's 766 report of every unit: the one stored
        by any process while it is fresh, else computed here (and stored) if no other
        process is computing it; ``shared=False`` computes it here in any case."""
        if self._indicators_lock is None:
            self._indicators_lock = asyncio.Lock()
        async with self._indicators_lock:
            now = self.clock()
            self._waiting = False
            if shared:
                async with sessions() as session:
                    stored = await IndicatorSnapshotRepository(session).latest()
                if stored is not None and self._fresh(stored, now):
                    self.indicators = _decode(stored)
                    return self.indicators
                async with transaction(sessions) as session:
                    claimed = await IndicatorSnapshotRepository(session).claim(
                        self.owner, now, now + timedelta(seconds=self._claim_s(stored))
                    )
                if not claimed:  # another process is computing it: the best known meanwhile
                    if stored is not None and _same_month(stored.computed_at, now):
                        known = self.indicators
                        if known is None or known.taken_at < stored.computed_at:
                            self.indicators = _decode(stored)
                    known = self.indicators
                    self._waiting = known is None or not _same_month(known.taken_at, now)
                    return self.indicators
            started = time.monotonic()
            indicators = await read_indicators(sessions, now)
            took = time.monotonic() - started
            async with transaction(sessions) as session:
                await IndicatorSnapshotRepository(session).save(
                    self.owner, now, took, _encode(indicators)
                )
            self.indicators = indicators
            return indicators

    def next_look_s(self) -> float | None:
        """How soon the indicators' refresh should look again, when sooner than its
        interval: while another process computes the report and this one has none of
        the month's (:data:`WAITING_LOOK_S`)."""
        return WAITING_LOOK_S if self._waiting else None

    def _fresh(self, stored: StoredIndicators, now: datetime) -> bool:
        """Computed this month, within the interval — or, after a slow computation,
        within the wait the refresh loop would keep after it (``refresh_every``)."""
        lasts = timedelta(seconds=wait_after(stored.took_s, self.indicators_interval_s))
        return _same_month(stored.computed_at, now) and now < stored.computed_at + lasts

    def _claim_s(self, stored: StoredIndicators | None) -> float:
        """How long a claim holds the others off: well past the last computation's
        length, so that only a process that died leaves one to expire."""
        took = stored.took_s if stored is not None else 0.0
        return max(CLAIM_MIN_S, 3 * took)

    def age_s(self) -> float | None:
        """Seconds since the snapshot was taken (None: never)."""
        snapshot = self.snapshot
        if snapshot is None:
            return None
        return (self.clock() - snapshot.taken_at).total_seconds()

    def describe(self) -> Iterable[Metric]:
        return [*self._families(None), *self._indicator_families(None)]

    def collect(self) -> Iterable[Metric]:
        return [*self._families(self.snapshot), *self._indicator_families(self.indicators)]

    @staticmethod
    def _indicator_families(snapshot: IndicatorSnapshot | None) -> Iterator[Metric]:
        ratio = GaugeMetricFamily(
            f"{PREFIX}ratio",
            "Current month's sync rate: 766 indicator 1.4 of the agency as the 766 report "
            "computes it (NgayTiepNhan in the month, Asia/Ho_Chi_Minh; statuses 1 and 3 "
            "left out; the portal's count when larger). Recomputed every minute (less often "
            "when one computation takes over six seconds: at most a tenth of the time).",
            labels=["unit", "agency"],
        )
        value = GaugeMetricFamily(
            f"{PREFIX}indicator_766",
            "The agency's 766 indicator (indicators-766.md; id as in the spec: 1.4, 2.1, "
            "3.3, 4.1, 6.1, 6.2, 6.4) for the current month, 0..1; no sample while the "
            "indicator has nothing to count. Recomputed as dossier_sync_ratio.",
            labels=["unit", "agency", "indicator"],
        )
        points = GaugeMetricFamily(
            f"{PREFIX}indicator_766_points",
            "The points the agency's 766 indicator scores this month (the seven computed "
            "here give at most 56 of the portal's 100); no sample while it has no value.",
            labels=["unit", "agency", "indicator"],
        )
        computed = GaugeMetricFamily(
            f"{PREFIX}indicators_timestamp_seconds",
            "When the exported 766 indicators were computed (Unix time), by whichever "
            "process computed them: they are shared through the database.",
        )
        if snapshot is not None:
            computed.add_metric([], snapshot.taken_at.timestamp())
            for key, number in sorted(snapshot.values.items()):
                value.add_metric(list(key), number)
                unit, agency, indicator = key
                if indicator == SYNC_RATE_INDICATOR:
                    ratio.add_metric([unit, agency], number)
            for key, number in sorted(snapshot.points.items()):
                points.add_metric(list(key), number)
        yield from (ratio, value, points, computed)

    def _families(self, snapshot: DatabaseSnapshot | None) -> Iterator[Metric]:
        dossiers = GaugeMetricFamily(
            f"{PREFIX}dossiers",
            "Dossiers per unit and sync state (pending includes acknowledged ones not yet "
            "read back; quarantined: open quarantine entries of dossiers).",
            labels=["unit", "state"],
        )
        oldest = GaugeMetricFamily(
            f"{PREFIX}oldest_pending_seconds",
            "Age of the unit's oldest change not yet acknowledged by the portal (0: none).",
            labels=["unit"],
        )
        last_success = GaugeMetricFamily(
            f"{PREFIX}source_last_success_timestamp_seconds",
            "When the source was last polled successfully (Unix time; 0: never).",
            labels=["source"],
        )
        source_lag = GaugeMetricFamily(
            f"{PREFIX}source_lag_seconds",
            "Seconds since the source's last successful poll, as the database says when "
            "read (since it was first seen if it never succeeded; push-mode sources: none).",
            labels=["source"],
        )
        paused = GaugeMetricFamily(
            f"{PREFIX}source_paused",
            "1 while an operator has paused the polled source (its lag then grows on "
            "purpose), else 0.",
            labels=["source"],
        )
        quarantined = GaugeMetricFamily(
            f"{PREFIX}quarantined",
            "Open quarantine entries (dossiers and progress records) per source and reason.",
            labels=["source", "reason"],
        )
        dead = GaugeMetricFamily(
            f"{PREFIX}dead_letters",
            "Open dead letters per unit and portal error code (none: no portal answer).",
            labels=["unit", "error_code"],
        )
        held = GaugeMetricFamily(
            f"{PREFIX}portal_hold_seconds",
            "Seconds the unit must still send the portal nothing: what is left of the "
            "latest 429's Retry-After, which holds every process of the unit (0: none).",
            labels=["unit"],
        )
        taken = GaugeMetricFamily(
            f"{PREFIX}database_snapshot_timestamp_seconds",
            "When the database gauges were read (Unix time).",
        )
        if snapshot is not None:
            for (unit, state), count in sorted(snapshot.dossiers.items()):
                dossiers.add_metric([unit, state], count)
            for unit, seconds in sorted(snapshot.oldest_pending_seconds.items()):
                oldest.add_metric([unit], seconds)
            for source, timestamp in sorted(snapshot.source_last_success.items()):
                last_success.add_metric([source], timestamp)
            for source, seconds in sorted(snapshot.source_lag_seconds.items()):
                source_lag.add_metric([source], seconds)
            for source, is_paused in sorted(snapshot.source_paused.items()):
                paused.add_metric([source], 1.0 if is_paused else 0.0)
            for (source, reason), count in sorted(snapshot.quarantined.items()):
                quarantined.add_metric([source, reason], count)
            for (unit, code), count in sorted(snapshot.dead_letters.items()):
                dead.add_metric([unit, code], count)
            for unit, seconds in sorted(snapshot.portal_hold_seconds.items()):
                held.add_metric([unit], seconds)
            taken.add_metric([], snapshot.taken_at.timestamp())
        yield from (
            dossiers,
            oldest,
            last_success,
            source_lag,
            paused,
            quarantined,
            dead,
            held,
            taken,
        )


# --- the circuit breaker of this process ------------------------------------------------


class _Breaker(Protocol):
    @property
    def state(self) -> str: ...


class _HasBreaker(Protocol):
    @property
    def target(self) -> str: ...

    @property
    def breaker(self) -> _Breaker: ...


class CircuitCollector(Collector):
    """``dossier_sync_circuit_open{target}``: 1 while this process's breaker for the
    portal is not closed (open, or half-open waiting for its trial call), else 0."""

    def __init__(self) -> None:
        self._clients: dict[str, _HasBreaker] = {}

    def watch(self, client: _HasBreaker) -> None:
        self._clients[_without_userinfo(client.target)] = client

    def describe(self) -> Iterable[Metric]:
        return [self._family()]

    def collect(self) -> Iterable[Metric]:
        family = self._family()
        for target, client in sorted(self._clients.items()):
            family.add_metric([target], 0.0 if client.breaker.state == "closed" else 1.0)
        return [family]

    @staticmethod
    def _family() -> GaugeMetricFamily:
        return GaugeMetricFamily(
            f"{PREFIX}circuit_open",
            "1 while this process's circuit breaker for the target is open or half-open.",
            labels=["target"],
        )


def _without_userinfo(url: str) -> str:
    scheme, sep, rest = url.partition("://")
    host = rest.rpartition("@")[2]
    return f"{scheme}{sep}{host}"


# --- the process's metrics -------------------------------------------------------------


class Metrics:
    """Every metric of one process, on a registry of its own."""

    def __init__(
        self,
        registry: CollectorRegistry | None = None,
        clock: Callable[[], datetime] = utcnow,
        indicators_interval_s: float = INDICATORS_REFRESH_S,
    ) -> None:
        self.registry = registry or CollectorRegistry()
        self.indicators_interval_s = indicators_interval_s
        self.push_requests = Counter(
            f"{PREFIX}push_requests",
            "HTTP exchanges with the portal by service and outcome (ok, error_<code>, "
            "http_<status>, transport_error, bad_answer).",
            ["service", "outcome"],
            registry=self.registry,
        )
        self.push_items = Counter(
            f"{PREFIX}push_items",
            "Per-item answers of the portal by service and error code (none: the whole "
            "call failed without per-item answers).",
            ["service", "error_code"],
            registry=self.registry,
        )
        self.source_polls = Counter(
            f"{PREFIX}source_polls",
            "Polls of a source by outcome (ok, error).",
            ["source", "outcome"],
            registry=self.registry,
        )
        self.source_records = Counter(
            f"{PREFIX}source_records",
            "Records read from a source.",
            ["source"],
            registry=self.registry,
        )
        self.lag = Histogram(
            f"{PREFIX}lag_seconds",
            "From reading a change at its source to the portal's acknowledgement of it.",
            ["unit"],
            buckets=LAG_BUCKETS,
            registry=self.registry,
        )
        self.database = DatabaseCollector(clock, indicators_interval_s)
        self.circuits = CircuitCollector()
        self.registry.register(self.database)
        self.registry.register(self.circuits)

    def observer(self) -> PrometheusObserver:
        return PrometheusObserver(self)

    def prime(self, settings: Settings) -> None:
        """Start the configured sources' series at 0, so rates exist from the first
        scrape rather than from the first failure."""
        for source in settings.sources:
            for outcome in ("ok", "error"):
                self.source_polls.labels(source.name, outcome)
            self.source_records.labels(source.name)

    async def refresh(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        """Read every database-derived gauge now, the 766 indicators included."""
        await self.database.refresh(sessions)
        await self.database.refresh_indicators(sessions, shared=False)

    async def refresh_forever(
        self,
        sessions: async_sessionmaker[AsyncSession],
        stop: asyncio.Event,
        interval_s: float = DEFAULT_REFRESH_S,
    ) -> None:
        """Refresh the database snapshot every ``interval_s`` and the 766 indicators
        every ``indicators_interval_s``, each on its own, until ``stop`` is set; a failing
        read leaves the last values in place (the snapshot's timestamp tells)."""
        database = self.database
        await asyncio.gather(
            refresh_every(interval_s, stop, lambda: database.refresh(sessions), "metrics refresh"),
            refresh_every(
                self.indicators_interval_s,
                stop,
                lambda: database.refresh_indicators(sessions),
                "766 indicators refresh",
                sooner=database.next_look_s,
            ),
        )

    def exposition(self) -> bytes:
        """The Prometheus text format (0.0.4) of everything in the registry."""
        return generate_latest(self.registry)

    def render(self, accept: str | None) -> tuple[bytes, str]:
        """The registry in the format the scraper's ``Accept`` header asks for (text
        0.0.4 unless it asks for OpenMetrics or text 1.0.0), and its content type."""
        encoder, content_type = choose_encoder(accept or "")
        return encoder(self.registry), content_type


def wait_after(took_s: float, interval_s: float, max_share: float = REFRESH_MAX_SHARE) -> float:
    """The wait after a refresh that ran ``took_s``: the interval, or long enough that
    refreshing takes at most ``max_share`` of the time."""
    return max(interval_s, took_s * (1 - max_share) / max_share)


async def refresh_every(
    interval_s: float,
    stop: asyncio.Event,
    refresh: Callable[[], Awaitable[object]],
    what: str,
    *,
    max_share: float = REFRESH_MAX_SHARE,
    sooner: Callable[[], float | None] | None = None,
) -> None:
    """Run ``refresh`` until ``stop`` is set, waiting :func:`wait_after` after each run,
    or what ``sooner`` answers after it when that is shorter."""
    while not stop.is_set():
        started = time.monotonic()
        try:
            await refresh()
        except Exception as error:  # the database is down or not migrated: try again
            log.warning(f"{what} failed", error=type(error).__name__)
        took = time.monotonic() - started
        wait = wait_after(took, interval_s, max_share)
        if wait > interval_s:
            log.debug(f"{what} slow: next one later", took_s=round(took, 2), wait_s=round(wait, 1))
        early = sooner() if sooner is not None else None
        if early is not None:
            wait = min(wait, early)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=wait)


class PrometheusObserver:
    """The pipeline's :class:`~app.sync.observe.Observer` that counts into :class:`Metrics`."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    def source_poll(self, source: str, outcome: str, records: int) -> None:
        self.metrics.source_polls.labels(source, outcome).inc()
        if records:
            self.metrics.source_records.labels(source).inc(records)

    def push_request(self, service: str, outcome: str) -> None:
        self.metrics.push_requests.labels(service, outcome).inc()

    def push_item(self, service: str, error_code: int | None) -> None:
        code = NO_CODE if error_code is None else str(error_code)
        self.metrics.push_items.labels(service, code).inc()

    def lag(self, unit: str, seconds: float) -> None:
        self.metrics.lag.labels(unit).observe(max(0.0, seconds))
