"""Running pollers against the simulators, and checking the database against their truth."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from app.config import SourceSettings
from app.db import transaction
from app.demodata import load_demo_catalogue
from app.models import (
    DossierRow,
    PollCheckpoint,
    ProgressRow,
    QuarantineEntry,
    Source,
    SourceMessage,
    SyncState,
)
from app.repositories.catalogue import CatalogueAgency, CatalogueRepository
from app.simulators import BackgroundSimulator, Dialect, SimulatorSettings
from app.sync.connectors import Connector, http_client, make_connector
from app.sync.normalise import dvclt, igate, opencps
from app.sync.normalise.common import Catalogue, Context, Normalised, StatusMap
from app.sync.poll import Poller
from tests.simulators.helpers import Control

UNITS = ["000.00.00.H26", "000.00.00.H29", "000.00.00.G05"]
AUTH = {
    "opencps": {"username": "demo", "password": "demo", "group_id": "1"},
    "igate": {"client_id": "demo", "client_secret": "demo"},
    "dvclt": {"username": "demo", "password": "demo"},
}


def source_settings(
    dialect: str,
    url: str,
    *,
    page_size: int = 50,
    status_map: dict[str, str] | None = None,
    agency_map: dict[str, str] | None = None,
    name: str | None = None,
) -> SourceSettings:
    return SourceSettings.model_validate(
        {
            "name": name or f"sim-{dialect}",
            "dialect": dialect,
            "base_url": url,
            "agencies": UNITS,
            "page_size": page_size,
            "concurrency": 4,
            "auth": AUTH[dialect],
            "status_map": status_map or {},
            "agency_map": agency_map or {},
        }
    )


@contextlib.asynccontextmanager
async def connector_for(dialect: str, url: str, **auth: str) -> AsyncIterator[Connector]:
    """A dialect's connector for the source at ``url`` with its own HTTP client (the test
    credentials, or these ``auth`` keys instead), closed at the end."""
    settings = source_settings(dialect, url)
    if auth:
        settings = SourceSettings.model_validate(
            {**settings.model_dump(), "auth": {**AUTH[dialect], **auth}}
        )
    http = http_client(settings)
    try:
        yield make_connector(settings, http)
    finally:
        await http.aclose()


async def seed_catalogue(factory: async_sessionmaker[AsyncSession]) -> Catalogue:
    """The portal's demo catalogue in the database, as a catalogue refresh would leave it."""
    demo = load_demo_catalogue()
    now = datetime.now(UTC)
    async with transaction(factory) as session:
        repository = CatalogueRepository(session)
        await repository.replace_procedures(demo["procedures"], now)
        await repository.replace_agencies(
            [CatalogueAgency(a["MaCoQuan"], a["TenCoQuan"], a["Cap"]) for a in demo["agencies"]],
            now,
        )
    return Catalogue(
        {p["MaTTHC"]: p for p in demo["procedures"]},
        {a["MaCoQuan"]: a["TenCoQuan"] for a in demo["agencies"]},
    )


_TABLES = [
    SourceMessage,
    SyncState,
    ProgressRow,
    QuarantineEntry,
    DossierRow,
    PollCheckpoint,
    Source,
]


async def wipe(engine: AsyncEngine) -> None:
    """Empty the pipeline's tables (between hypothesis examples); the catalogue stays."""
    async with engine.begin() as connection:
        for model in _TABLES:
            await connection.execute(delete(model))


@contextmanager
def simulator(dialect: Dialect, **settings: Any) -> Iterator[tuple[BackgroundSimulator, Control]]:
    with BackgroundSimulator(dialect, SimulatorSettings(**settings)) as running:
        control = Control(running.url)
        try:
            yield running, control
        finally:
            control.close()


def poller_for(
    dialect: str,
    url: str,
    factory: async_sessionmaker[AsyncSession],
    truth: dict[str, Any],
    **options: Any,
) -> Poller:
    agency_map = truth.get("agency_map") or {}
    return Poller(source_settings(dialect, url, agency_map=agency_map, **options), factory)


async def poll_until_quiet(poller: Poller, limit: int = 20, interval_s: float = 0.0) -> int:
    """Poll until a poll finds nothing new; returns how many polls it took. ``interval_s``
    between polls, as a real poller waits (a wall-clock source settles with time)."""
    for count in range(1, limit + 1):
        if count > 1 and interval_s:
            await asyncio.sleep(interval_s)
        report = await poller.poll_once()
        assert report.error is None, report.error
        if report.records == 0:
            return count
    raise AssertionError("the source never became quiet")


# --- the oracle ------------------------------------------------------------------------


def expected_from_truth(dialect: str, entry: dict[str, Any], context: Context) -> Normalised:
    """What the database should hold for a truth entry: its current record, normalised."""
    if dialect == "opencps":
        raw = {"dossier": entry["record"], "files": entry["files"], "actions": entry["actions"]}
        return opencps.normalise(raw, context)
    if dialect == "igate":
        return igate.normalise({"dossier": entry["record"], "history": entry["history"]}, context)
    messages = [{"item": m["summary"], "detail": m["detail"]} for m in entry["messages"]]
    return dvclt.normalise(entry["ma_ho_so"], messages, context)


async def assert_matches_truth(
    factory: async_sessionmaker[AsyncSession],
    dialect: str,
    truth: dict[str, Any],
    catalogue: Catalogue,
) -> dict[str, int]:
    """The stored state is exactly the source's current state: every valid dossier at its
    latest content with every step once, every invalid one quarantined, nothing else."""
    context = Context(StatusMap(dialect), catalogue, tuple(UNITS), truth.get("agency_map") or {})
    async with factory() as session:
        stored = {row.ma_ho_so: row for row in await session.scalars(select(DossierRow))}
        progress: dict[int, list[ProgressRow]] = {}
        for step in await session.scalars(select(ProgressRow)):
            progress.setdefault(step.dossier_id, []).append(step)
        open_entries = list(
            await session.scalars(
                select(QuarantineEntry).where(QuarantineEntry.resolved_at.is_(None))
            )
        )
    quarantined_codes = {e.ma_ho_so for e in open_entries}
    open_keys = {e.record_key for e in open_entries}
    counts = {"valid": 0, "quarantined": 0, "steps": 0}
    for entry in truth["dossiers"]:
        code = entry["ma_ho_so"]
        expected = expected_from_truth(dialect, entry, context)
        if expected.dossier is None:
            # Refused now: quarantined (an older valid version may still be stored).
            assert code in quarantined_codes, f"{code}: not quarantined"
            counts["quarantined"] += 1
            continue
        assert entry["expected"]["TrangThaiHoSo"] == expected.dossier.TrangThaiHoSo.value, code
        row = stored.get(code)
        assert row is not None, f"{code}: lost"
        assert row.state == expected.dossier.to_portal(), f"{code}: not the latest state"
        steps = progress.get(row.id, [])
        identities = [r.identity_hash for r in steps]
        assert len(identities) == len(set(identities)), f"{code}: a step stored twice"
        assert set(identities) == {p.identity_hash() for p in expected.progress}, (
            f"{code}: steps differ"
        )
        for rejection in expected.rejections:
            assert rejection.key in open_keys, f"{code}: refused step {rejection.key} not kept"
        assert expected.key not in open_keys, f"{code}: valid now, still quarantined"
        counts["valid"] += 1
        counts["steps"] += len(steps)
    truth_codes = {entry["ma_ho_so"] for entry in truth["dossiers"]}
    assert set(stored) <= truth_codes, "dossiers that the source does not have"
    return counts
