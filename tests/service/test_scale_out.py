"""Scale-out on PostgreSQL: several ``dossier-sync worker`` processes on one database.

Three workers share the pushes (claims under leases, ``SKIP LOCKED``), each source is
polled by one worker at a time, and a worker killed with SIGKILL hands its sources and
its claimed rows to the others within a lease; nothing is pushed twice at once and
every dossier ends synced in its source's latest state. A NOTIFY from whichever process
stored a change wakes an idle worker's pusher at once.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import signal
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import ExitStack, asynccontextmanager, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app import migrate
from app.db import create_engine, create_session_factory, transaction
from app.domain.codes import ErrorCode
from app.mockportal.testing import MockPortalHandle
from app.models import DossierRow, Source, SyncState
from app.repositories.sources import SourceRepository
from app.simulators import Dialect
from tests.service.conftest import Processes
from tests.service.helpers import eventually, settings_values, write_config
from tests.simulators.helpers import Control
from tests.sync.polling import UNITS, poller_for, simulator

pytestmark = pytest.mark.postgresql_only

H26, H29, G05 = UNITS
WORKERS = 3
LEASE_S = 2.0  # sync.lease_s and sync.poll_lease_s: how long a dead worker's work waits
SLACK_S = 3.0  # a survivor's next look, plus a push round of its own before the claim
SYNC = "DongBoHoSoMC"
PROGRESS = "CapNhatTienDoHoSoMC"
# One simulator per unit, so that their dossier codes never collide.
SOURCES: tuple[tuple[str, Dialect, str, int], ...] = (
    ("sim-opencps-h26", "opencps", H26, 81),
    ("sim-igate-h29", "igate", H29, 82),
    ("sim-igate-g05", "igate", G05, 83),
)


@asynccontextmanager
async def migrated(url: str) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = create_engine(url)
    try:
        await migrate.run_on(engine, "upgrade", "head")
        yield create_session_factory(engine)
    finally:
        await engine.dispose()


@dataclass(frozen=True)
class Sim:
    name: str
    dialect: Dialect
    url: str
    control: Control


@contextmanager
def simulators(dossiers: int) -> Iterator[list[Sim]]:
    with ExitStack() as stack:
        sims = []
        for name, dialect, unit, seed in SOURCES:
            running, control = stack.enter_context(
                simulator(dialect, dossiers=dossiers, seed=seed, units=(unit,))
            )
            sims.append(Sim(name, dialect, running.url, control))
        yield sims


def expected_at_portal(sims: list[Sim]) -> dict[str, str]:
    """MaHoSo → TrangThaiHoSo of every valid dossier of the simulators, as they are now."""
    return {
        d["ma_ho_so"]: d["expected"]["TrangThaiHoSo"]
        for sim in sims
        for d in sim.control.truth()["dossiers"]
        if d["expected"]["valid"]
    }


def at_portal(mock: MockPortalHandle) -> dict[str, str]:
    return {d["MaHoSo"]: d["TrangThaiHoSo"] for d in mock.control.dossiers()}


def pid_of(owner: str) -> int:
    """The process of a lease owner (``worker-<host>-<pid>-<hex>``, runtime.owner_name)."""
    return int(owner.rsplit("-", 2)[-2])


def log_events(path: Path, event: str) -> Iterator[dict[str, Any]]:
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        if line.startswith("{"):
            record = json.loads(line)
            if record.get("event") == event:
                yield record


def logged(processes: Processes, event: str) -> int:
    """How many of the processes' logs have ``event``."""
    return sum(any(log_events(path, event)) for path in processes.logs)


def at(record: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(record["timestamp"])


async def held(
    sessions: async_sessionmaker[AsyncSession],
) -> tuple[dict[str, str | None], dict[int, str]]:
    """Who holds what now: source name → poll lease owner; dossier id → claim owner."""
    async with sessions() as session:
        sources = {s.name: s.lease_owner for s in await session.scalars(select(Source))}
        claims = await session.execute(
            select(SyncState.dossier_id, SyncState.lease_owner).where(
                SyncState.lease_owner.is_not(None)
            )
        )
        return sources, {dossier_id: owner for dossier_id, owner in claims.all() if owner}


async def statuses(sessions: async_sessionmaker[AsyncSession]) -> dict[str, int]:
    async with sessions() as session:
        rows = await session.execute(
            select(SyncState.status, func.count()).group_by(SyncState.status)
        )
        return {status: int(count) for status, count in rows.all()}


async def set_paused(sessions: async_sessionmaker[AsyncSession], paused: bool) -> None:
    now = datetime.now(UTC)
    async with transaction(sessions) as session:
        sources = SourceRepository(session)
        for name, dialect, _unit, _seed in SOURCES:
            source = await sources.ensure(name, dialect, now)
            await sources.set_paused(source.id, paused)


async def kill_while_holding_work(
    process: subprocess.Popen[bytes],
    owner: str,
    sessions: async_sessionmaker[AsyncSession],
    sims: list[Sim],
) -> tuple[datetime, set[str], set[int]]:
    """SIGKILL ``process`` at a moment it holds a source lease and claimed rows; returns
    when, and what it left. The process is frozen (SIGSTOP) while the database is read,
    so that what it holds cannot change between the look and the kill; while it holds
    no rows, the sources change, so that there is work to claim."""
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        process.send_signal(signal.SIGSTOP)
        sources, claims = await held(sessions)
        mine = {name for name, holder in sources.items() if holder == owner}
        claimed = {dossier_id for dossier_id, holder in claims.items() if holder == owner}
        if mine and claimed:
            process.send_signal(signal.SIGKILL)
            process.wait(timeout=10)
            return datetime.now(UTC), mine, claimed
        process.send_signal(signal.SIGCONT)
        if not claimed:
            for sim in sims:
                if sim.name in mine:
                    sim.control.mutate(2)
        await asyncio.sleep(0.2)
    raise AssertionError(f"{owner} never held a source and claims at once")


async def codes_of(sessions: async_sessionmaker[AsyncSession], ids: set[int]) -> set[str]:
    async with sessions() as session:
        return set(await session.scalars(select(DossierRow.ma_ho_so).where(DossierRow.id.in_(ids))))


def assert_one_poller_at_a_time(
    processes: Processes, started: datetime, killed_at: datetime, victim: int, orphans: set[str]
) -> None:
    """Each source was polled by one worker at a time: in time order its polls form one
    run per worker (a source handed over to share the sources out never comes back, and
    two workers never take turns at it); the victim's sources were its until the kill
    (no one polled them after it), and one survivor's after it."""
    polls: dict[str, list[tuple[datetime, int]]] = {}
    for process, path in zip(processes.started, processes.logs, strict=True):
        for record in log_events(path, "poll"):
            polls.setdefault(record["source"], []).append((at(record), process.pid))
    assert set(polls) == {name for name, *_ in SOURCES}
    for name, seen in polls.items():
        before = [pid for when, pid in sorted(seen) if started <= when < killed_at]
        runs = [pid for pid, _ in itertools.groupby(before)]
        assert len(runs) == len(set(runs)), (name, runs)
        after = {pid for when, pid in seen if when > killed_at}
        assert len(after) == 1, (name, after)
        if name in orphans:
            # A poll is logged when it ends: the victim may have died in its first poll
            # of a source just handed to it (then it has no run here).
            assert victim not in runs or runs[-1] == victim, (name, runs)
            assert victim not in after, name
        elif runs:
            assert after == {runs[-1]}, (name, runs, after)


def assert_no_double_push(mock: MockPortalHandle, cut_short: set[str]) -> None:
    """No dossier was in two requests at once, no state went backwards, and each
    version was acknowledged once, but those of the rows whose push the kill cut short
    (``cut_short``: they go again, as an update)."""
    entries = mock.control.journal(limit=100_000)
    assert entries["dropped"] == 0
    spans: dict[str, list[tuple[float, float, str]]] = {}
    acknowledged: dict[tuple[str, str], int] = {}
    for entry in entries["entries"]:
        if entry["endpoint"] != "integration" or entry["service"] not in (SYNC, PROGRESS):
            continue
        begin = datetime.fromisoformat(entry["at"]).timestamp()
        seen = f"{entry['id']} {entry['service']} session {entry['session']}"
        for code in {item["ma_ho_so"] for item in entry["items"]}:
            spans.setdefault(code, []).append((begin, begin + entry["latency_ms"] / 1000, seen))
        for item in entry["items"]:
            assert item["error_code"] != ErrorCode.TRANSITION_REFUSED, item
            code = item["ma_ho_so"]
            if entry["service"] == SYNC and item["error_code"] == ErrorCode.SUCCESS:
                key = (code, item["content_hash"])
                acknowledged[key] = acknowledged.get(key, 0) + 1
    for code, requests in spans.items():
        for (_, end, one), (begin, _, other) in itertools.pairwise(sorted(requests)):
            assert begin >= end, f"{code}: in two requests at once ({one}; {other})"
    repeated = {code for (code, _), count in acknowledged.items() if count > 1}
    assert repeated <= cut_short, repeated - cut_short
    for unit in UNITS:
        criteria = {c["name"]: c for c in mock.control.conformance(unit)["criteria"]}
        for name in ("no_regressions_pushed", "keeps_per_dossier_order"):
            assert criteria[name]["passed"], criteria[name]


async def test_three_workers_share_the_work_and_take_over_from_a_killed_one(
    tmp_path: Path,
    mock_portal: MockPortalHandle,
    processes: Processes,
    fresh_database_url: str,
) -> None:
    # Slow portal calls in small batches: the backlog lasts long enough for every worker
    # to take part, and a kill lands while rows are claimed.
    for service in (SYNC, PROGRESS):
        mock_portal.control.add_fault(
            selector={"service": service}, action={"type": "latency", "latency_ms": 100}
        )
    with simulators(dossiers=24) as sims:
        async with migrated(fresh_database_url) as sessions:
            # Sources paused until every worker runs, so that the work is there for all.
            await set_paused(sessions, True)
            values = settings_values(
                database_url=fresh_database_url,
                portal_url=mock_portal.url,
                sources=[(sim.name, sim.dialect, sim.url) for sim in sims],
                max_batch=5,
                sync={"lease_s": LEASE_S, "poll_lease_s": LEASE_S},
            )
            config = str(write_config(tmp_path / "service.toml", values))
            workers = [
                processes.start("worker", "worker", "--config", config) for _ in range(WORKERS)
            ]
            await eventually(
                lambda: logged(processes, "wake-up listener ready") == WORKERS,
                "every worker to listen",
            )
            started = datetime.now(UTC)
            await set_paused(sessions, False)

            # (a) The pushes spread: every worker claims rows.
            claimers: set[str] = set()

            async def every_worker_claimed() -> bool:
                _sources, claims = await held(sessions)
                claimers.update(claims.values())
                return len(claimers) == WORKERS

            await eventually(every_worker_claimed, "every worker to claim rows", within=20)

            # The sources spread too: one each, whoever started first.
            async def one_source_each() -> bool:
                sources, _claims = await held(sessions)
                owners = list(sources.values())
                return None not in owners and len(set(owners)) == WORKERS

            await eventually(one_source_each, "the sources to be shared out", within=20)
            by_pid = {pid_of(owner): owner for owner in claimers}
            assert set(by_pid) == {process.pid for process in workers}

            # (c) Kill the worker holding the most sources, while it holds claims too.
            sources, _claims = await held(sessions)
            holders = [owner for owner in sources.values() if owner is not None]
            victim = max(set(holders), key=holders.count)
            [process] = [p for p in workers if p.pid == pid_of(victim)]
            killed_at, orphan_sources, orphan_rows = await kill_while_holding_work(
                process, victim, sessions, sims
            )
            survivors = claimers - {victim}

            async def sources_taken_over() -> bool:
                now_held, _ = await held(sessions)
                return all(now_held[name] in survivors for name in orphan_sources)

            await eventually(sources_taken_over, "the survivors to take the sources", within=20)
            sources_after = (datetime.now(UTC) - killed_at).total_seconds()

            async def rows_taken_over() -> bool:
                async with sessions() as session:
                    rows = await session.scalars(
                        select(SyncState).where(SyncState.dossier_id.in_(orphan_rows))
                    )
                    return all(
                        row.lease_owner in survivors
                        or (row.acked_at is not None and row.acked_at > killed_at)
                        for row in rows
                    )

            await eventually(rows_taken_over, "the survivors to take the claimed rows", within=20)
            rows_after = (datetime.now(UTC) - killed_at).total_seconds()
            assert sources_after < LEASE_S + SLACK_S, sources_after
            assert rows_after < LEASE_S + SLACK_S, rows_after
            for sim in sims:
                if sim.name in orphan_sources:
                    sim.control.mutate(4)  # new work that only the new pollers can find

            # Every dossier reaches the portal in its latest state and is read back.
            expected = expected_at_portal(sims)
            await eventually(
                lambda: at_portal(mock_portal) == expected, "every dossier at the portal", within=30
            )

            async def all_synced() -> bool:
                return await statuses(sessions) == {"synced": len(expected)}

            await eventually(all_synced, "read-back to confirm every dossier", within=20)
            cut_short = await codes_of(sessions, orphan_rows)
            async with sessions() as session:
                acked = await session.scalars(
                    select(SyncState.acked_at).where(SyncState.dossier_id.in_(orphan_rows))
                )
                # The victim died before recording them: the survivors pushed them.
                assert all(when is not None and when > killed_at for when in acked)

    assert_one_poller_at_a_time(processes, started, killed_at, process.pid, orphan_sources)
    # (b)
    assert_no_double_push(mock_portal, cut_short)


async def test_a_notify_wakes_an_idle_worker_at_once(
    tmp_path: Path,
    mock_portal: MockPortalHandle,
    processes: Processes,
    fresh_database_url: str,
) -> None:
    """A worker that would look for work only once a minute pushes a change stored by
    another process within seconds: the NOTIFY of the storing transaction woke it."""
    idle_s = 60.0
    async with migrated(fresh_database_url) as sessions:
        with simulator("igate", dossiers=5, seed=84) as (sim, control):
            values = settings_values(
                database_url=fresh_database_url,
                portal_url=mock_portal.url,
                sources=[],
                sync={"idle_push_wait_s": idle_s},
            )
            config = str(write_config(tmp_path / "service.toml", values))
            processes.start("worker", "worker", "--config", config)
            await eventually(
                lambda: logged(processes, "wake-up listener ready") == 1, "the worker to listen"
            )
            await asyncio.sleep(1.0)  # its first rounds found nothing: it is idle now
            expected = {
                d["ma_ho_so"]: d["expected"]["TrangThaiHoSo"] for d in control.truth()["dossiers"]
            }
            # This process stores the dossiers, as the API's ingest or another worker's
            # poller would.
            poller = poller_for("igate", sim.url, sessions, control.truth())
            try:
                report = await poller.poll_once()
            finally:
                await poller.aclose()
            assert report.changed == len(expected)
            stored = time.monotonic()
            await eventually(
                lambda: at_portal(mock_portal) == expected,
                "the NOTIFY to wake the worker (its own look is a minute away)",
                within=10,
            )
            took = time.monotonic() - stored
    assert took < 5.0, f"pushed after {took:.1f} s: the idle look, not the NOTIFY"
