"""Reading a Prometheus exposition, and computing what its database gauges should say
straight from the tables (independently of the repositories the collector uses) — except
the 766 indicators and the sync rate (indicator 1.4), whose definitions live in the
report (``unit_report``, tested on hand-computed cases of its own): here, that each
agency's report is what is exported."""

from __future__ import annotations

from collections import Counter
from datetime import datetime

from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.domain.periods import Period
from app.models import DeadLetter, DossierRow, PortalHold, QuarantineEntry, Source, SyncState
from app.sync.reports import unit_report

Labels = tuple[tuple[str, str], ...]

# service-interface.md, "Metrics", and the gauges docs/observability.md adds: sample name →
# label names (histograms add `le`).
CATALOGUE: dict[str, frozenset[str]] = {
    "dossier_sync_ratio": frozenset({"unit", "agency"}),
    "dossier_sync_dossiers": frozenset({"unit", "state"}),
    "dossier_sync_oldest_pending_seconds": frozenset({"unit"}),
    "dossier_sync_lag_seconds_bucket": frozenset({"unit", "le"}),
    "dossier_sync_lag_seconds_count": frozenset({"unit"}),
    "dossier_sync_lag_seconds_sum": frozenset({"unit"}),
    "dossier_sync_push_requests_total": frozenset({"service", "outcome"}),
    "dossier_sync_push_items_total": frozenset({"service", "error_code"}),
    "dossier_sync_source_polls_total": frozenset({"source", "outcome"}),
    "dossier_sync_source_records_total": frozenset({"source"}),
    "dossier_sync_source_last_success_timestamp_seconds": frozenset({"source"}),
    "dossier_sync_circuit_open": frozenset({"target"}),
    "dossier_sync_quarantined": frozenset({"source", "reason"}),
    "dossier_sync_dead_letters": frozenset({"unit", "error_code"}),
    "dossier_sync_portal_hold_seconds": frozenset({"unit"}),
    "dossier_sync_source_lag_seconds": frozenset({"source"}),
    "dossier_sync_source_paused": frozenset({"source"}),
    "dossier_sync_indicator_766": frozenset({"unit", "agency", "indicator"}),
    "dossier_sync_indicator_766_points": frozenset({"unit", "agency", "indicator"}),
}
DATABASE_GAUGES = (
    "dossier_sync_ratio",
    "dossier_sync_dossiers",
    "dossier_sync_oldest_pending_seconds",
    "dossier_sync_source_last_success_timestamp_seconds",
    "dossier_sync_source_lag_seconds",
    "dossier_sync_source_paused",
    "dossier_sync_quarantined",
    "dossier_sync_dead_letters",
    "dossier_sync_portal_hold_seconds",
    "dossier_sync_indicator_766",
    "dossier_sync_indicator_766_points",
)


def samples(text: str) -> dict[str, dict[Labels, float]]:
    """Sample name → {sorted label pairs → value}."""
    out: dict[str, dict[Labels, float]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return out


def by(series: dict[Labels, float], *names: str) -> dict[tuple[str, ...], float]:
    """A metric's series keyed by the values of ``names``."""
    return {tuple(dict(labels)[n] for n in names): value for labels, value in series.items()}


async def expected_gauges(
    sessions: async_sessionmaker[AsyncSession], now: datetime
) -> dict[str, dict[tuple[str, ...], float]]:
    """What the database gauges must be at ``now``, computed in Python from whole rows."""
    async with sessions() as session:
        dossiers = (await session.scalars(select(DossierRow))).all()
        states = {s.dossier_id: s for s in (await session.scalars(select(SyncState))).all()}
        quarantine = (
            await session.scalars(
                select(QuarantineEntry).where(QuarantineEntry.resolved_at.is_(None))
            )
        ).all()
        letters = (
            await session.scalars(select(DeadLetter).where(DeadLetter.redriven_at.is_(None)))
        ).all()
        sources = (await session.scalars(select(Source))).all()
        holds = {h.unit: h.until for h in (await session.scalars(select(PortalHold))).all()}
        source_names = {s.id: s.name for s in sources}
        indicators, points = await _reported_indicators(
            session, sorted({row.unit for row in dossiers}), now
        )

    label = {"pending": "pending", "acked": "pending", "synced": "synced", "dead": "dead"}
    counts: Counter[tuple[str, str]] = Counter()
    oldest: dict[str, datetime] = {}
    for state in states.values():
        counts[(state.unit, label[state.status])] += 1
        if state.pending_since is not None:
            since = oldest.get(state.unit)
            oldest[state.unit] = min(since, state.pending_since) if since else state.pending_since
    for entry in quarantine:
        if entry.kind == "dossier":
            counts[(entry.unit or "unknown", "quarantined")] += 1
    units = {unit for unit, _ in counts} | set(oldest)
    for unit in units:
        for name in ("pending", "synced", "quarantined", "dead"):
            counts.setdefault((unit, name), 0)

    return {
        # The sync rate is indicator 1.4 of the month's report, under its own name.
        "dossier_sync_ratio": {
            (unit, agency): value
            for (unit, agency, indicator), value in indicators.items()
            if indicator == "1.4"
        },
        "dossier_sync_dossiers": {k: float(v) for k, v in counts.items()},
        "dossier_sync_oldest_pending_seconds": {
            (unit,): max(0.0, (now - oldest[unit]).total_seconds()) if unit in oldest else 0.0
            for unit in units
        },
        "dossier_sync_source_last_success_timestamp_seconds": {
            (s.name,): s.last_success_at.timestamp() if s.last_success_at else 0.0 for s in sources
        },
        "dossier_sync_source_lag_seconds": {
            (s.name,): max(0.0, (now - (s.last_success_at or s.created_at)).total_seconds())
            for s in sources
            if s.dialect != "push"
        },
        "dossier_sync_source_paused": {
            (s.name,): 1.0 if s.paused else 0.0 for s in sources if s.dialect != "push"
        },
        "dossier_sync_quarantined": {
            k: float(v)
            for k, v in Counter(
                (source_names[e.source_id], e.reason_code) for e in quarantine
            ).items()
        },
        "dossier_sync_dead_letters": {
            k: float(v)
            for k, v in Counter(
                (d.unit, "none" if d.error_code is None else str(d.error_code)) for d in letters
            ).items()
        },
        "dossier_sync_portal_hold_seconds": {
            (unit,): max(0.0, (holds[unit] - now).total_seconds()) if unit in holds else 0.0
            for unit in units | set(holds)
        },
        "dossier_sync_indicator_766": indicators,
        "dossier_sync_indicator_766_points": points,
    }


async def _reported_indicators(
    session: AsyncSession, units: list[str], now: datetime
) -> tuple[dict[tuple[str, ...], float], dict[tuple[str, ...], float]]:
    """(unit, agency, indicator id) → value and → points of the month's 766 reports,
    null values left out."""
    values: dict[tuple[str, ...], float] = {}
    points: dict[tuple[str, ...], float] = {}
    for unit in units:
        report = await unit_report(session, unit=unit, period=Period.containing(now), now=now)
        for agency in report.agencies:
            for indicator in agency.indicators:
                key = (unit, agency.agency, indicator.id)
                if indicator.value is not None:
                    values[key] = indicator.value
                if indicator.points is not None:
                    points[key] = indicator.points
    return values, points


GAUGE_LABELS = {
    "dossier_sync_ratio": ("unit", "agency"),
    "dossier_sync_dossiers": ("unit", "state"),
    "dossier_sync_oldest_pending_seconds": ("unit",),
    "dossier_sync_source_last_success_timestamp_seconds": ("source",),
    "dossier_sync_source_lag_seconds": ("source",),
    "dossier_sync_source_paused": ("source",),
    "dossier_sync_quarantined": ("source", "reason"),
    "dossier_sync_dead_letters": ("unit", "error_code"),
    "dossier_sync_portal_hold_seconds": ("unit",),
    "dossier_sync_indicator_766": ("unit", "agency", "indicator"),
    "dossier_sync_indicator_766_points": ("unit", "agency", "indicator"),
}


def database_gauges(text: str) -> dict[str, dict[tuple[str, ...], float]]:
    found = samples(text)
    return {name: by(found.get(name, {}), *GAUGE_LABELS[name]) for name in DATABASE_GAUGES}
