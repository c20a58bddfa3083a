"""The month's 766 report over a large unit, on PostgreSQL (what a worker computes once a
minute for the indicator gauges, and ``GET /api/v1/reports/766`` on demand).

A fresh database gets ``--dossiers`` valid dossiers of one unit received this month
(inserted set-wise by SQL, as ``bench/memory_pending.py`` does). Then, in the same
process, ``--runs`` times each:

* the baseline: reading the same rows the report reads (every dossier of the period with
  its sync state, in the report's keyset pages), without judging them;
* the report itself (``app.sync.reports.unit_report``).

It prints both, the time per dossier and the ratio report ÷ baseline: what the
judgement costs beyond reading.

    .venv/bin/python bench/report_766.py --dossiers 100000
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from datetime import UTC, datetime

from benchutil import add_database_url_argument, fresh_database, machine
from memory_pending import UNIT, fill
from sqlalchemy import select

from app.db import create_engine, create_session_factory
from app.domain.periods import Period
from app.models import DossierRow, SyncState
from app.sync.reports import unit_report

PAGE = 1000


async def read_rows(database_url: str) -> tuple[float, int]:
    """Seconds to read every dossier of the unit with its sync state, in keyset pages."""
    engine = create_engine(database_url)
    sessions = create_session_factory(engine)
    started = time.perf_counter()
    read = 0
    try:
        async with sessions() as session:
            after = 0
            while True:
                page = (
                    await session.execute(
                        select(DossierRow.id, DossierRow.agency, DossierRow.state, SyncState.status)
                        .outerjoin(SyncState, SyncState.dossier_id == DossierRow.id)
                        .where(DossierRow.unit == UNIT, DossierRow.id > after)
                        .order_by(DossierRow.id)
                        .limit(PAGE)
                    )
                ).all()
                if not page:
                    break
                read += len(page)
                after = page[-1][0]
    finally:
        await engine.dispose()
    return time.perf_counter() - started, read


async def run_report(database_url: str) -> tuple[float, int]:
    """Seconds for the unit's report of this month, and how many dossiers it counted."""
    engine = create_engine(database_url)
    sessions = create_session_factory(engine)
    now = datetime.now(UTC)
    started = time.perf_counter()
    try:
        async with sessions() as session:
            report = await unit_report(session, unit=UNIT, period=Period.containing(now), now=now)
    finally:
        await engine.dispose()
    counted = report.total.counts["received"]
    return time.perf_counter() - started, counted


async def bench(args: argparse.Namespace) -> None:
    async with fresh_database(args.database_url, "dossier_sync_766") as url:
        fill_s = await fill(url, args.dossiers)
        baseline: list[float] = []
        report: list[float] = []
        for _ in range(args.runs):
            seconds, read = await read_rows(url)
            baseline.append(seconds)
            seconds, counted = await run_report(url)
            report.append(seconds)
    assert read == args.dossiers, (read, args.dossiers)  # noqa: S101 - a broken fill
    assert counted == args.dossiers, (counted, args.dossiers)  # noqa: S101 - a broken report
    base, full = statistics.median(baseline), statistics.median(report)
    print(f"dossiers of the month {args.dossiers:,} (inserted in {fill_s:.0f} s)")
    print(
        f"baseline: reading them  {base:7.2f} s  ({base / args.dossiers * 1e6:5.0f} µs a dossier)"
    )
    print(
        f"766 report              {full:7.2f} s  ({full / args.dossiers * 1e6:5.0f} µs a dossier)"
        f"  [runs: {', '.join(f'{s:.2f}' for s in report)}]"
    )
    print(f"report / baseline:      {full / base:5.2f}×")
    print(machine())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dossiers", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=3, help="medians are printed")
    add_database_url_argument(parser)
    asyncio.run(bench(parser.parse_args()))


if __name__ == "__main__":
    main()
