"""Polling one source on PostgreSQL: records a second through one poller, against reading
the same pages with nothing done with them, in the same process.

The end-to-end and latency runs share two cores among five processes, and their noise
hides a change of a tenth in the polling path; this isolates that path. A simulator
(``--dialect``, clean, still) in a process of its own holds ``--dossiers`` dossiers of
one unit; a fresh PostgreSQL database, migrated, holds the portal's demo catalogue as a
catalogue refresh leaves it. Then, from this process, each timed by the wall clock and
by this process's CPU:

1. reading: the connector reads the source from the start, every page with what it
   fetches per record (iGate's history, OpenCPS's files and actions), and drops it —
   the baseline, what any poll pays;
2. first sync: :meth:`Poller.poll_once` on the empty database — every dossier new
   (normalised, inserted with its progress records and outbox rows, a transaction and
   the cursor a page);
3. the simulator applies ``--changes`` life-cycle steps (to random unfinished dossiers,
   about one in five a new dossier instead); the connector reads them from the cursor
   the first sync left (the baseline again), then one poll stores them: changed
   dossiers, new progress records.

The start-up heap is settled first, as ``serve`` and ``worker`` do. It prints records,
seconds, records a second, CPU µs a record and the share of that CPU spent in the cyclic
garbage collector for each, and the ratio of each poll's CPU to its reading's: what
normalising and storing add. ``--profile FILE`` writes a cProfile of the last poll. (DVCLT is
left out: its queue lists a message until it is acknowledged, so it cannot be read
without being stored.)

    .venv/bin/python bench/poll_throughput.py [--dialect igate] [--dossiers 5000] [--changes 5000]
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from benchutil import (
    SOURCE_AUTH,
    add_database_url_argument,
    app_process,
    fresh_database,
    machine,
    store_demo_catalogue,
)
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app import migrate
from app.config import SourceSettings
from app.db import create_engine, create_session_factory, transaction
from app.logs import configure_logging
from app.repositories.sources import SourceRepository
from app.runtime import settle_heap
from app.servers import free_port
from app.sync.connectors import http_client, make_connector
from app.sync.poll import CURSOR_STREAM, Poller

UNIT = "000.00.00.H26"


def settings_for(dialect: str, url: str, page_size: int) -> SourceSettings:
    return SourceSettings.model_validate(
        {
            "name": f"bench-{dialect}",
            "dialect": dialect,
            "base_url": url,
            "agencies": [UNIT],
            "page_size": page_size,
            "auth": SOURCE_AUTH[dialect],
        }
    )


async def read_only(settings: SourceSettings, checkpoint: dict[str, Any] | None) -> int:
    """Every record the source lists after ``checkpoint``, fetched and dropped."""
    http = http_client(settings)
    try:
        records = 0
        async for page in make_connector(settings, http).pages(checkpoint):
            records += len(page.records)
        return records
    finally:
        await http.aclose()


class CollectorClock:
    """Seconds spent in the cyclic garbage collector, from ``gc.callbacks``."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self._started = 0.0

    def __call__(self, phase: str, _info: dict[str, Any]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self.seconds += time.perf_counter() - self._started


Step = tuple[int, float, float, float]  # records, wall s, CPU s, garbage collector s


async def timed(step: Callable[[], Awaitable[int]], profile: Path | None = None) -> Step:
    """(records, wall seconds, CPU seconds of this process, seconds in the garbage
    collector) of one step; with ``profile``, a cProfile of the step written there."""
    collector = CollectorClock()
    gc.callbacks.append(collector)
    profiler = cProfile.Profile() if profile else None
    wall, cpu = time.perf_counter(), time.process_time()
    try:
        if profiler:
            profiler.enable()
        records = await step()
        if profiler:
            profiler.disable()
    finally:
        gc.callbacks.remove(collector)
    result = records, time.perf_counter() - wall, time.process_time() - cpu, collector.seconds
    if profiler and profile:
        profiler.dump_stats(profile)
    return result


def row(name: str, step: Step) -> str:
    records, wall, cpu, collecting = step
    per_s = records / wall if wall else 0.0
    cpu_us = cpu / records * 1e6 if records else 0.0
    share = collecting / cpu if cpu else 0.0
    return (
        f"| {name} | {records:,} | {wall:.2f} s | {per_s:,.0f}/s | {cpu_us:,.0f} µs | {share:.0%} |"
    )


async def measure(
    args: argparse.Namespace,
    settings: SourceSettings,
    sessions: async_sessionmaker[AsyncSession],
) -> list[tuple[str, Step]]:
    """The four steps against the running simulator, in order."""
    poller = Poller(settings, sessions)

    async def poll() -> int:
        report = await poller.poll_once()
        if report.error:
            raise SystemExit(f"poll failed: {report.error}")
        return report.records

    async def cursor() -> dict[str, Any] | None:
        async with transaction(sessions) as session:
            sources = SourceRepository(session)
            source = await sources.ensure(settings.name, settings.dialect, datetime.now(UTC))
            return await sources.get_checkpoint(source.id, CURSOR_STREAM)

    # As `serve` and `worker` do once started: the start-up heap out of the collector's way.
    settle_heap()
    try:
        steps = [
            ("reading from the start (baseline)", await timed(lambda: read_only(settings, None)))
        ]
        steps.append(("first sync: one poll, every dossier new", await timed(poll)))
        start = await cursor()
        async with httpx.AsyncClient(base_url=str(settings.base_url), timeout=60) as control:
            answer = await control.post("/_sim/mutate", json={"count": args.changes})
            answer.raise_for_status()
        steps.append(
            ("reading the changes (baseline)", await timed(lambda: read_only(settings, start)))
        )
        steps.append(("one poll of the changes", await timed(poll, args.profile)))
        return steps
    finally:
        await poller.aclose()


async def run(args: argparse.Namespace) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    command = ["simulate", args.dialect, "--port", str(port), "--clean", "--unit", UNIT]
    command += ["--dossiers", str(args.dossiers), "--changes-per-second", "0"]
    command += ["--log-level", "warning"]
    settings = settings_for(args.dialect, url, args.page_size)
    async with fresh_database(args.database_url, "bench_poll") as database_url:
        engine = create_engine(database_url)
        try:
            await migrate.run_on(engine, "upgrade", "head")
            sessions = create_session_factory(engine)
            async with transaction(sessions) as session:
                await store_demo_catalogue(session, datetime.now(UTC))
            with app_process(command, f"{url}/_sim/stats"):
                steps = await measure(args, settings, sessions)
        finally:
            await engine.dispose()
    print(
        f"{args.dialect}: {args.dossiers:,} dossiers, then {args.changes:,} changes; "
        f"pages of {args.page_size}"
    )
    print("| step | records | wall | records/s | CPU a record (this process) | of it GC |")
    print("|---|---|---|---|---|---|")
    for name, step in steps:
        print(row(name, step))
    (_, first_read), (_, first_poll), (_, changes_read), (_, changes_poll) = steps
    print(
        f"poll CPU ÷ reading CPU: first sync {first_poll[2] / first_read[2]:.1f}×, "
        f"changes {changes_poll[2] / changes_read[2]:.1f}×"
    )
    print(machine())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dialect", choices=["igate", "opencps"], default="igate")
    parser.add_argument("--dossiers", type=int, default=5000)
    parser.add_argument("--changes", type=int, default=5000)
    parser.add_argument("--page-size", type=int, default=200)
    parser.add_argument("--profile", type=Path, help="cProfile of the poll of the changes")
    add_database_url_argument(parser)
    configure_logging("WARNING")  # the figures only, not a line a poll
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
