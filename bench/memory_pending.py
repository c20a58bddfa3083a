"""Resident memory of one worker with a million dossiers pending (issue 8's target:
≤ 250 MB per worker).

A fresh PostgreSQL database gets ``--pending`` valid dossiers received this month, every
one pending in the outbox (inserted set-wise by SQL, not through the service). Then one
``dossier-sync worker --metrics-port`` runs against a real mock portal for ``--seconds``:
it claims and pushes batches, reads back, and refreshes the database gauges and the
month's 766 indicators (a report over every dossier of the month) — everything a worker
does with a backlog that size. Its resident set size is sampled from ``/proc`` the whole
time; the baseline is the same worker over an empty database, in the same run.

    .venv/bin/python bench/memory_pending.py --pending 1000000
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import httpx
from benchutil import add_database_url_argument, app_process, fresh_database, machine
from sqlalchemy.engine import make_url

from app import migrate
from app.db import create_engine
from app.domain.dates import VN_TZ
from app.servers import free_port

TARGET_MB = 250.0
UNIT = "000.00.00.H26"
AGENCIES = ("000.00.53.H26", "000.00.54.H26", "000.00.55.H26")
PASSWORD = "demo"  # noqa: S105 - the demo catalogue's public password
SAMPLE_EVERY_S = 0.25

# One valid dossier being processed (status 4), received today; the SQL below gives each
# copy its own MaHoSo (agency, today, a 7-digit sequence) and agency.
TEMPLATE = """{
  "MaTTHC": "1.000656", "TenTTHC": "Đăng ký khai sinh", "MaLinhVuc": "HT",
  "TenLinhVuc": "Hộ tịch", "KenhThucHien": 2, "ChuHoSo": "Nguyễn Văn An",
  "LoaiDoiTuong": 1, "SoGiayToChuHoSo": "001204567845", "SoDienThoai": "0912345678",
  "TrichYeuHoSo": "Đăng ký khai sinh cho con", "NgayNopHoSo": "%(day)s070000",
  "NgayTiepNhan": "%(day)s073000", "NgayHenTra": "%(due)s170000", "TrangThaiHoSo": "4",
  "DonViXuLy": "UBND phường Bến Nghé", "HoSoCoThanhPhanSoHoa": 1,
  "DuocThanhToanTrucTuyen": 0
}"""

FILL_SQL = """
insert into dossiers (ma_ho_so, unit, agency, source_record_id, status, state,
                      content_hash, version, received_at, source_modified_at,
                      first_seen_at, changed_at)
select code, $2, agency, code, '4',
       $1::jsonb || jsonb_build_object('MaHoSo', code),
       md5(code) || md5(code), 1, $3, $3, $3, $3
from (
    select n, ($4::text[])[1 + n % 3] as agency,
           ($4::text[])[1 + n % 3] || '-' || $5 || '-' || lpad(n::text, 7, '0') as code
    from generate_series(1, $6) as n
) as generated
"""
OUTBOX_SQL = """
insert into sync_state (dossier_id, unit, status, pending_version, pending_since,
                        change_seq, changed_at, attempts, next_attempt_at)
select id, unit, 'pending', 1, $1, 1, $1, 0, $1 from dossiers
"""


def rss_mb(pid: int) -> float:
    """The process's resident set size now (``VmRSS``), in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


async def fill(database_url: str, pending: int) -> float:
    """Migrate, then insert ``pending`` dossiers all pending; seconds it took."""
    started = time.perf_counter()
    engine = create_engine(database_url)
    try:
        await migrate.run_on(engine, "upgrade", "head")
    finally:
        await engine.dispose()
    now = datetime.now(UTC)
    today = now.astimezone(VN_TZ)
    day = today.strftime("%Y%m%d")
    template = TEMPLATE % {"day": day, "due": day}
    connection = await asyncpg.connect(
        make_url(database_url).set(drivername="postgresql").render_as_string(False)
    )
    try:
        received = today.replace(hour=7, minute=30, second=0, microsecond=0)
        await connection.execute(
            FILL_SQL,
            template,
            UNIT,
            received,
            list(AGENCIES),
            today.strftime("%y%m%d"),
            pending,
        )
        await connection.execute(OUTBOX_SQL, now)
        await connection.execute("analyze")
    finally:
        await connection.close()
    return time.perf_counter() - started


@contextlib.contextmanager
def mock_portal() -> Iterator[str]:
    port = free_port()
    command = ["mock-portal", "--port", str(port)]
    command += ["--rate", "1000000", "--burst", "1000000", "--log-level", "warning"]
    url = f"http://127.0.0.1:{port}"
    with app_process(command, f"{url}/openapi.json"):
        yield url


def run_worker(database_url: str, portal: str, seconds: float) -> tuple[float, float, int]:
    """One worker for ``seconds``: ``(peak RSS MB, RSS MB at the end, indicator refreshes
    seen)``."""
    with tempfile.TemporaryDirectory() as directory:
        config = Path(directory) / "worker.toml"
        config.write_text(
            f'database_url = "{database_url}"\n'
            f'[portal]\nbase_url = "{portal}"\n'
            f'[[portal.accounts]]\nunit = "{UNIT}"\nusername = "{UNIT}"\npassword = "{PASSWORD}"\n'
        )
        port = free_port()
        command = ["worker", "--config", str(config), "--metrics-port", str(port)]
        peak = 0.0
        refreshed = 0
        ready = f"http://127.0.0.1:{port}/healthz"
        with app_process(command, ready, {"DOSSIER_SYNC_LOGGING__LEVEL": "WARNING"}) as child:
            deadline = time.monotonic() + seconds
            next_scrape = time.monotonic()
            while time.monotonic() < deadline:
                if child.poll() is not None:
                    raise SystemExit(f"the worker stopped: exit {child.returncode}")
                peak = max(peak, rss_mb(child.pid))
                if time.monotonic() >= next_scrape:
                    # A scrape, as Prometheus makes: the indicators' snapshot time moves
                    # once the month's report over every dossier has been computed.
                    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=30).text
                    refreshed += int('indicator="1.4"' in text)
                    next_scrape = time.monotonic() + 5
                time.sleep(SAMPLE_EVERY_S)
            end = rss_mb(child.pid)
        return peak, end, refreshed


async def count(database_url: str, sql: str) -> int:
    connection = await asyncpg.connect(
        make_url(database_url).set(drivername="postgresql").render_as_string(False)
    )
    try:
        return int(await connection.fetchval(sql))
    finally:
        await connection.close()


async def bench(args: argparse.Namespace) -> None:
    with mock_portal() as portal:
        async with fresh_database(args.database_url, "dossier_sync_mem") as empty:
            await fill(empty, 0)
            base_peak, base_end, _ = run_worker(empty, portal, min(args.seconds, 20.0))
        async with fresh_database(args.database_url, "dossier_sync_mem") as full:
            fill_s = await fill(full, args.pending)
            peak, end, refreshed = run_worker(full, portal, args.seconds)
            pushed = await count(full, "select count(*) from sync_state where status <> 'pending'")
    print(f"dossiers pending      {args.pending:,} (inserted in {fill_s:.0f} s)")
    print(f"worker, empty database   peak {base_peak:6.0f} MB   at the end {base_end:6.0f} MB")
    print(
        f"worker, backlog          peak {peak:6.0f} MB   at the end {end:6.0f} MB   "
        f"({args.seconds:.0f} s; {pushed:,} pushed; 766 indicators exported in "
        f"{refreshed} scrapes)"
    )
    print(f"backlog / empty (peak):   {peak / base_peak:5.2f}×")
    verdict = "met" if peak <= TARGET_MB else "NOT met"
    print(f"target ≤ {TARGET_MB:.0f} MB per worker: {verdict}")
    print(machine())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pending", type=int, default=1_000_000)
    parser.add_argument("--seconds", type=float, default=90.0, help="how long the worker runs")
    add_database_url_argument(parser)
    asyncio.run(bench(parser.parse_args()))


if __name__ == "__main__":
    main()
