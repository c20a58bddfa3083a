"""Push-mode ingest throughput: dossiers per second through ``POST /api/v1/dossiers``.

Creates a throwaway PostgreSQL database (migrated, the portal's demo catalogue stored
as a catalogue refresh leaves it, one ``ingest`` key of unit 000.00.00.H26), starts the
service's API app in one uvicorn server process of its own — the app ``serve`` runs,
without the sync engine: there is no portal here, and the pusher's work is measured by
``e2e_throughput.py`` — and from this process, with ``--concurrency`` calls in flight:

1. baseline: authenticated calls with an empty batch, the fixed cost of a call on this
   path (key check, rate limit, push source, catalogue, transaction) with no item;
2. the measured run: batches of 500 new, valid dossiers (personal data included), each
   stored as version 1 with its outbox row — the dossiers/s figure;
3. the same batches again: every item ``unchanged`` (the idempotent resend);
4. validation only: the domain's ``parse_dossier`` and content hash of the same dossiers
   in this process, no HTTP, no database — what one core does with nothing else.

Bodies are encoded before the clock starts, so the client costs little of the two
cores the server and PostgreSQL share with it. CPU seconds per party are printed for
the measured run. ``--profile FILE`` writes a cProfile of the server process. Usage::

    .venv/bin/python bench/ingest_throughput.py [--dossiers 60000] [--concurrency 4]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from benchutil import store_demo_catalogue
from sqlalchemy.engine import make_url

from app import migrate
from app.auth import Scope, create_key
from app.db import create_engine, create_session_factory, transaction
from app.domain.dossier import parse_dossier
from app.servers import free_port

UNIT = "000.00.00.H26"
AGENCIES = ["000.00.53.H26", "000.00.54.H26", "000.00.02.H26", "000.00.05.H26"]
BATCH = 500
TARGET = 3000
DEFAULT_ADMIN_URL = "postgresql://127.0.0.1:5432/postgres"


def dossier(n: int) -> dict[str, Any]:
    """A valid dossier being processed (status 4), with the fields a real one carries."""
    agency = AGENCIES[n % len(AGENCIES)]
    return {
        "MaHoSo": f"{agency}-261127-{n:07d}",
        "MaTTHC": "1.000656",
        "TenTTHC": "Đăng ký khai sinh",
        "MaLinhVuc": "HT",
        "TenLinhVuc": "Hộ tịch",
        "KenhThucHien": 2,
        "ChuHoSo": "Nguyễn Văn An",
        "LoaiDoiTuong": 1,
        "SoGiayToChuHoSo": "001204567845",
        "SoDienThoai": "0912345678",
        "Email": "an.nguyen@example.vn",
        "TrichYeuHoSo": "Đăng ký khai sinh cho con",
        "NgayNopHoSo": "20261127080000",
        "NgayTiepNhan": "20261127083000",
        "NgayHenTra": "20261128170000",
        "TrangThaiHoSo": "4",
        "DonViXuLy": "UBND phường Bến Nghé",
        "HoSoCoThanhPhanSoHoa": 1,
        "DuocThanhToanTrucTuyen": 0,
        "TaiLieuNop": [{"TepDinhKemId": f"f-{n}", "TenTepDinhKem": "Tờ khai.pdf", "DuocSoHoa": 1}],
    }


# --- the server process ----------------------------------------------------------------------


def serve(database_url: str, port: int, profile: str | None) -> None:
    """The API app in uvicorn, as ``serve`` configures it (logs at INFO, discarded)."""
    import uvicorn  # noqa: PLC0415 - only the server process needs it

    from app.api.app import create_app  # noqa: PLC0415
    from app.config import ApiSettings, Settings  # noqa: PLC0415
    from app.logs import configure_logging  # noqa: PLC0415
    from app.servers import GracefulServer  # noqa: PLC0415

    # A rate limit no benchmark client reaches: the measured thing is the ingest path.
    settings = Settings(
        database_url=database_url,
        api=ApiSettings(port=port, rate_limit_per_s=1e6, rate_limit_burst=1_000_000),
    )
    configure_logging("INFO", "json")
    config = uvicorn.Config(
        create_app(settings),
        host="127.0.0.1",
        port=port,
        log_config=None,
        log_level="info",
        lifespan="on",
    )
    profiler = cProfile.Profile() if profile else None
    if profiler is not None:
        profiler.enable()
    GracefulServer(config).run()  # as `serve`: exits 0 on SIGINT, so the profile is written
    if profiler is not None and profile:
        profiler.disable()
        profiler.dump_stats(profile)


@contextmanager
def server(database_url: str, profile: str | None) -> Iterator[tuple[str, int]]:
    port = free_port()
    command = [sys.executable, __file__, "--serve", database_url, "--port", str(port)]
    if profile:
        command += ["--profile", profile]
    child = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            if child.poll() is not None:
                raise RuntimeError(f"the server exited with status {child.returncode}")
            try:
                if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("the server did not become ready")
            time.sleep(0.1)
        yield url, child.pid
    finally:
        child.send_signal(signal.SIGINT)
        try:
            child.wait(timeout=30)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


# --- the database --------------------------------------------------------------------------


def _dsn(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


@contextlib.asynccontextmanager
async def database(admin_url: str) -> Any:
    """A fresh database (dropped afterwards), migrated, with the catalogue and a key:
    yields ``(SQLAlchemy URL, API key)``."""
    name = f"bench_ingest_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(_dsn(admin_url))
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        url = (
            make_url(admin_url)
            .set(drivername="postgresql+asyncpg", database=name)
            .render_as_string(hide_password=False)
        )
        engine = create_engine(url)
        try:
            await migrate.run_on(engine, "upgrade", "head")
            sessions = create_session_factory(engine)
            now = datetime.now(UTC)
            async with transaction(sessions) as session:
                await store_demo_catalogue(session, now)
                key = await create_key(
                    session, unit=UNIT, agency=None, scopes=[Scope.INGEST], now=now
                )
        finally:
            await engine.dispose()
        yield url, key.key
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


async def stored_counts(url: str) -> tuple[int, int]:
    connection = await asyncpg.connect(_dsn(url))
    try:
        dossiers = await connection.fetchval("select count(*) from dossiers")
        pending = await connection.fetchval(
            "select count(*) from sync_state where status = 'pending'"
        )
    finally:
        await connection.close()
    return int(dossiers), int(pending)


# --- where the CPU went ----------------------------------------------------------------------


def _cpu_s(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return sum(int(f) for f in fields[11:15]) / os.sysconf("SC_CLK_TCK")


def _postgres_cpu_s() -> float:
    total = 0.0
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if (entry / "comm").read_text().startswith("postgres"):
                    total += _cpu_s(int(entry.name))
    return total


def cpu_now(server_pid: int) -> dict[str, float]:
    return {
        "server": _cpu_s(server_pid),
        "PostgreSQL": _postgres_cpu_s(),
        "client": time.process_time(),
    }


# --- the client ------------------------------------------------------------------------------


async def in_flight(concurrency: int, calls: list[Callable[[], Awaitable[None]]]) -> float:
    """Seconds to make ``calls`` with ``concurrency`` in flight."""
    queue = list(reversed(calls))

    async def worker() -> None:
        while queue:
            await queue.pop()()

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return time.perf_counter() - started


def encoded_batches(start: int, count: int) -> list[bytes]:
    return [
        json.dumps(
            {"dossiers": [dossier(n) for n in range(first, min(first + BATCH, start + count))]},
            ensure_ascii=False,
        ).encode()
        for first in range(start, start + count, BATCH)
    ]


async def bench(args: argparse.Namespace) -> None:
    total = args.dossiers - args.dossiers % BATCH or BATCH
    load_before = os.getloadavg()[0]
    async with database(args.admin_url) as (url, key):
        with server(url, args.profile) as (base_url, pid):
            headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
            limits = httpx.Limits(
                max_connections=args.concurrency, max_keepalive_connections=args.concurrency
            )
            async with httpx.AsyncClient(
                base_url=base_url, limits=limits, timeout=120, headers=headers
            ) as http:
                counted: dict[str, int] = {}

                def call(body: bytes) -> Callable[[], Awaitable[None]]:
                    async def run() -> None:
                        response = await http.post("/api/v1/dossiers", content=body)
                        if response.status_code != 202:
                            raise RuntimeError(f"{response.status_code}: {response.text[:500]}")
                        answer = response.json()
                        for status in ("accepted", "unchanged", "rejected"):
                            counted[status] = counted.get(status, 0) + answer[status]

                    return run

                empty = b'{"dossiers": []}'
                warm_up = encoded_batches(10_000_000, 4 * BATCH)  # codes the run never uses
                batches = encoded_batches(0, total)
                await in_flight(args.concurrency, [call(b) for b in [empty] * 50 + warm_up])

                baseline_calls = max(len(batches), 100)
                baseline_s = await in_flight(args.concurrency, [call(empty)] * baseline_calls)

                counted.clear()
                before = cpu_now(pid)
                run_s = await in_flight(args.concurrency, [call(b) for b in batches])
                after = cpu_now(pid)
                accepted = counted.get("accepted", 0)

                counted.clear()
                again_s = await in_flight(args.concurrency, [call(b) for b in batches])
                unchanged = counted.get("unchanged", 0)
        rows, pending = await stored_counts(url)

    validation = [dossier(n) for n in range(5000)]
    codes = {"1.000656"}
    started = time.perf_counter()
    for raw in validation:
        parse_dossier(raw, procedures=codes).content_hash()
    validation_s = time.perf_counter() - started

    rate = accepted / run_s
    baseline_rate = baseline_calls / baseline_s
    print(
        f"dossiers            {total} new, in {len(batches)} batches of {BATCH}, "
        f"concurrency {args.concurrency}, one server process, PostgreSQL"
    )
    print(f"baseline            {baseline_rate:8.0f} empty authenticated calls/s")
    print(
        f"ingest              {len(batches) / run_s:8.1f} batches/s  "
        f"({run_s / len(batches) * 1000:.0f} ms a batch, "
        f"{run_s / len(batches) * baseline_rate:.1f} empty calls' worth)"
    )
    print(
        f"accepted dossiers/s {rate:8.0f}   (target ≥ {TARGET}: "
        f"{'met' if rate >= TARGET else 'NOT met'})   accepted {accepted}/{total}"
    )
    print(
        f"resend (unchanged)  {unchanged / again_s:8.0f} dossiers/s   unchanged {unchanged}/{total}"
    )
    print(
        f"validation only     {len(validation) / validation_s:8.0f} dossiers/s on one core "
        f"(ingest ÷ validation = {rate / (len(validation) / validation_s):.2f})"
    )
    spent = {name: after[name] - before[name] for name in after}
    print(
        "CPU during ingest   "
        + ", ".join(
            f"{name} {seconds:.1f} s ({seconds / run_s * 100:.0f}%)"
            for name, seconds in spent.items()
        )
        + f"  over {run_s:.1f} s wall"
    )
    print(
        f"stored              {rows} dossiers, {pending} pending in the outbox "
        f"(the run's {total} and {4 * BATCH} of the warm-up)"
    )
    # Two cores run the server, PostgreSQL and this client: anything else running on
    # the machine shows here, and makes the figures above worth little.
    print(
        f"load average        {load_before:.2f} before, {os.getloadavg()[0]:.2f} after "
        f"(on {os.cpu_count()} cores)"
    )
    if accepted != total or rows != pending or rows != total + 4 * BATCH:
        raise SystemExit(f"only {accepted} of {total} dossiers were accepted")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--dossiers", type=int, default=60_000)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument(
        "--admin-url",
        default=os.environ.get("DOSSIER_SYNC_BENCH_POSTGRES_ADMIN_URL", DEFAULT_ADMIN_URL),
    )
    parser.add_argument("--profile", help="write a cProfile of the server process here")
    parser.add_argument("--serve", metavar="DATABASE_URL", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, args.port, args.profile)
        return
    asyncio.run(bench(args))


if __name__ == "__main__":
    main()
