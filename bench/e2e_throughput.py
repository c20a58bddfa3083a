"""End-to-end sync throughput on PostgreSQL, against a raw push and a sequential sync.

Starts the mock portal (``dossier-sync mock-portal``, rate limit off) and the three source
simulators (OpenCPS, iGate, DVCLT: clean, still, one unit each as in the demo) in
processes of their own, as the service finds them in production, and migrates a schema
of its own in a PostgreSQL database (dropped afterwards). Then, from this process:

1. end to end: the sync :class:`~app.sync.engine.Engine` (pollers, pushers, read-back;
   the service's default settings) takes every dossier of the simulators through the
   whole path: connector poll → normalise → store (with its outbox row, in one
   transaction) → claim → push → the portal's acknowledgement. The clock runs from the
   engine's start until every dossier is acknowledged at its latest version with all
   its progress records (``sync_state``, ``progress_records``). A change is one dossier
   brought to the portal with its history (a DVCLT dossier is several queue messages:
   counted once).
2. raw push: the very dossiers and progress records that run stored, sent straight to
   the portal (reset first), in batches of 100 with ``--concurrency`` requests in flight
   and no database: what this portal takes on this machine.
3. sequential: an OpenCPS-style sync (portal reset again) of the first ``--sequential``
   of them, one dossier at a time: ``TraCuuHoSo``, ``DongBoHoSoMC`` (create, or update
   when found), then one ``CapNhatTienDoHoSoMC`` with its progress records.

4. pushed end to end: the same dossiers and progress records sent by their "sources" (this
   process) to the service's push API instead of being polled — a batch of 500 dossiers
   of one unit, then their progress records, ``--concurrency`` such sequences at once —
   to one ``dossier-sync serve`` (and ``--push-workers`` worker processes) on a database
   of its own, clocked from the first call to the last acknowledgement. The same
   pipeline from the store on, without the reading of the sources: so its ratio to the
   raw push shows what the pipeline itself costs.

Each prints changes (dossiers) per second, and the ratios of the end-to-end runs to the
raw push and the sequential sync (targets: ≥ 0.7× the raw push, ≥ 30× the sequential
sync). It also prints the CPU time
each party used during the end-to-end run and the requests the connectors made to the
sources, which is where that run's time goes. ``--latency-ms`` delays every portal
answer (a mock-portal fault rule, the same for all three runs) as a network would;
``--source-latency-ms`` does the same to every answer of the sources (the simulators'
``latency_ms``), which only the end-to-end run reads.
Usage::

    .venv/bin/python bench/e2e_throughput.py [--dossiers 3000] [--database-url URL]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import json
import multiprocessing
import os
import secrets
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from multiprocessing.synchronize import Event
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
import httpx
from benchutil import (
    DEFAULT_DATABASE_URL,
    SOURCE_AUTH,
    app_process,
    ingest_key,
    machine,
    service_env,
    start_service,
)
from sqlalchemy import select
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app import migrate
from app.config import Settings
from app.db import create_engine, create_session_factory
from app.domain.agency import unit_of_dossier
from app.logs import configure_logging
from app.mockportal.testing import MockPortalControl
from app.models import DossierRow, ProgressRow
from app.runtime import settle_heap
from app.servers import free_port
from app.simulators import BackgroundSimulator, SimulatorSettings
from app.simulators.settings import DEFAULT_UNITS, DIALECTS, Dialect
from app.sync.engine import Engine

PASSWORD = "demo"  # noqa: S105 - the demo catalogue's public password
# One unit per simulator, as in the demo: two simulators serving the same agencies
# would hand out the same MaHoSo for different dossiers.
UNITS = dict(zip(DIALECTS, DEFAULT_UNITS, strict=True))
BATCH = 100
CHECK_EVERY_S = 0.1
TIMEOUT_S = 600.0
APPLICATION = "dossier-sync-bench"  # the engine's connections, to find their backends
T = TypeVar("T")


# --- the servers ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Source:
    name: str
    dialect: Dialect
    url: str
    agency_map: dict[str, str]


@dataclass(frozen=True, slots=True)
class Servers:
    portal: str
    sources: list[Source]
    portal_pid: int
    sources_pid: int


@contextmanager
def mock_portal(admin_token: str) -> Iterator[tuple[str, int]]:
    """``dossier-sync mock-portal`` with the token bucket out of the way (it would
    decide every figure): ``(url, pid)``."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    command = ["mock-portal", "--port", str(port), "--admin-token", admin_token]
    command += ["--rate", "1000000", "--burst", "1000000", "--log-level", "warning"]
    with app_process(command, f"{url}/openapi.json") as child:
        yield url, child.pid


def _serve_sources(
    per_source: int, seed: int, latency_ms: float, ready: Connection, stop: Event
) -> None:
    """The simulators' process: ``BackgroundSimulator`` threads until ``stop``."""
    configure_logging("WARNING", "console")
    with contextlib.ExitStack() as stack:
        sources: list[Source] = []
        for index, dialect in enumerate(DIALECTS):
            settings = SimulatorSettings(
                seed=seed + index,
                dossiers=per_source,
                units=(UNITS[dialect],),
                latency_ms=latency_ms,
            )
            simulator = stack.enter_context(BackgroundSimulator(dialect, settings))
            agency_map = {str(k): v for k, v in simulator.world.agency_map.items()}
            sources.append(Source(f"bench-{dialect}", dialect, simulator.url, agency_map))
        ready.send(sources)
        stop.wait()


@contextmanager
def servers(
    per_source: int, seed: int, admin_token: str, source_latency_ms: float = 0.0
) -> Iterator[Servers]:
    with contextlib.ExitStack() as stack:
        portal, portal_pid = stack.enter_context(mock_portal(admin_token))
        # Not threads of this process: serving the connectors' requests would then take
        # the engine's interpreter lock, which a real source system never does.
        context = multiprocessing.get_context("spawn")
        receive, send = context.Pipe(duplex=False)
        stop = context.Event()
        child = context.Process(
            target=_serve_sources,
            args=(per_source, seed, source_latency_ms, send, stop),
            name="simulators",
        )
        child.start()
        stack.callback(child.join, 10)
        stack.callback(stop.set)
        if not receive.poll(120) or child.pid is None:
            raise RuntimeError("the simulators did not start")
        sources: list[Source] = receive.recv()
        yield Servers(portal, sources, portal_pid, child.pid)


def settings_for(database_url: str, portal_url: str, sources: Sequence[Source]) -> Settings:
    """The service's configuration: defaults for everything but the endpoints."""
    return Settings.model_validate(configuration(database_url, portal_url, sources))


def configuration(database_url: str, portal_url: str, sources: Sequence[Source]) -> dict[str, Any]:
    """What :func:`settings_for` validates, secrets in clear: the workers' configuration
    file is written from this (a dump of the settings would mask the passwords)."""
    configured: list[dict[str, Any]] = []
    for source in sources:
        entry: dict[str, Any] = {
            "name": source.name,
            "dialect": source.dialect,
            "base_url": source.url,
            "agencies": [UNITS[source.dialect]],
            "auth": SOURCE_AUTH[source.dialect],
        }
        if source.agency_map:
            entry["agency_map"] = source.agency_map
        configured.append(entry)
    return {
        "database_url": database_url,
        "portal": {
            "base_url": portal_url,
            "accounts": [
                {"unit": unit, "username": unit, "password": PASSWORD} for unit in UNITS.values()
            ],
        },
        "sources": configured,
        "logging": {"level": "WARNING", "format": "console"},
    }


# --- where the CPU went ----------------------------------------------------------------


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process and its reaped children (Linux /proc)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    ticks = sum(int(f) for f in fields[11:15])  # utime, stime, cutime, cstime
    return ticks / os.sysconf("SC_CLK_TCK")


@dataclass(slots=True)
class CpuMeter:
    """CPU seconds each party used over a measurement. PostgreSQL is the server
    processes of the engine's own connections (``APPLICATION``), whoever else uses the
    server meanwhile."""

    parties: dict[str, list[int]]
    checker: Any  # an asyncpg connection to the server
    database: str | None = None  # count every backend of this database instead
    start: dict[str, float] = field(default_factory=dict)
    backends: dict[int, float] = field(default_factory=dict)

    async def _backends(self) -> dict[int, float]:
        if self.database is not None:
            rows = await self.checker.fetch(
                "select pid from pg_stat_activity where datname = $1 and pid <> pg_backend_pid()",
                self.database,
            )
        else:
            rows = await self.checker.fetch(
                "select pid from pg_stat_activity where application_name = $1", APPLICATION
            )
        return {row["pid"]: _cpu_s(row["pid"]) for row in rows}

    async def begin(self) -> None:
        self.start = {name: sum(map(_cpu_s, pids)) for name, pids in self.parties.items()}
        self.backends = await self._backends()

    async def end(self) -> dict[str, float]:
        used = {
            name: sum(map(_cpu_s, pids)) - self.start[name] for name, pids in self.parties.items()
        }
        backends = await self._backends()
        used["PostgreSQL"] = sum(cpu - self.backends.get(pid, 0.0) for pid, cpu in backends.items())
        return used


# --- 1. end to end -------------------------------------------------------------------


@asynccontextmanager
async def bench_schema(database_url: str) -> AsyncIterator[tuple[URL, str]]:
    """A schema of its own in the database, dropped afterwards: ``(url, schema)``."""
    url = make_url(database_url)
    dsn = url.set(drivername="postgresql").render_as_string(hide_password=False)
    schema = f"bench_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(dsn)
    try:
        await admin.execute(f'CREATE SCHEMA "{schema}"')
        try:
            yield url.set(drivername="postgresql+asyncpg"), schema
        finally:
            await admin.execute(f'DROP SCHEMA "{schema}" CASCADE')
    finally:
        await admin.close()


# Every dossier acknowledged at its latest version (nothing newer pending), and no
# progress record waiting for delivery.
DONE_SQL = """
select (select count(*) from dossiers d join sync_state s on s.dossier_id = d.id
        where s.acked_version = d.version and s.pending_since is null) as acked,
       (select count(*) from progress_records where acked_at is null) as undelivered
"""


@dataclass(slots=True)
class Payload:
    """What the pipeline stored for one dossier: its state and its progress in time
    order, exactly as pushed."""

    unit: str
    dossier: dict[str, Any]
    progress: list[dict[str, Any]]


@dataclass(slots=True)
class EndToEnd:
    dossiers: int
    seconds: float
    payloads: list[Payload]
    cpu: dict[str, float]
    source_requests: int
    sent_s: float | None = None  # pushed: until the last call to the push API was answered

    @property
    def progress(self) -> int:
        return sum(len(p.progress) for p in self.payloads)


async def _source_stats(sources: Sequence[Source]) -> tuple[int, int]:
    """``(dossiers, requests served so far)`` over every simulator."""
    dossiers = requests = 0
    async with httpx.AsyncClient(timeout=60) as http:
        for source in sources:
            stats = (await http.get(f"{source.url}/_sim/stats")).json()
            dossiers += stats["dossiers"]
            requests += sum(
                n for endpoint, n in stats["requests"].items() if " /_sim/" not in endpoint
            )
    return dossiers, requests


async def _wait_done(checker: Any, expected: int, engine: asyncio.Task[None]) -> None:
    deadline = time.monotonic() + TIMEOUT_S
    while True:
        row = await checker.fetchrow(DONE_SQL)
        if row["acked"] >= expected and row["undelivered"] == 0:
            return
        if engine.done():
            raise SystemExit(f"end to end: the engine stopped: {engine.exception()!r}")
        if time.monotonic() > deadline:
            states = await checker.fetch(
                "select status, count(*), min(last_error) from sync_state group by 1"
            )
            quarantined = await checker.fetch(
                "select reason_code, count(*) from quarantine group by 1"
            )
            raise SystemExit(
                f"end to end: not done after {TIMEOUT_S:.0f} s: {dict(row)} of {expected}; "
                f"sync states {[tuple(r) for r in states]}, "
                f"quarantined {[tuple(r) for r in quarantined]}"
            )
        await asyncio.sleep(CHECK_EVERY_S)


async def _payloads(sessions: async_sessionmaker[AsyncSession]) -> list[Payload]:
    async with sessions() as session:
        states = (await session.execute(select(DossierRow.id, DossierRow.state))).all()
        steps: dict[int, list[dict[str, Any]]] = {}
        for dossier_id, record in (
            await session.execute(
                select(ProgressRow.dossier_id, ProgressRow.record).order_by(
                    ProgressRow.dossier_id, ProgressRow.occurred_at, ProgressRow.id
                )
            )
        ).all():
            steps.setdefault(dossier_id, []).append(record)
    return [
        Payload(unit_of_dossier(state["MaHoSo"]), state, steps.get(dossier_id, []))
        for dossier_id, state in states
    ]


async def end_to_end(database_url: str, running: Servers, profile: Path | None) -> EndToEnd:
    async with bench_schema(database_url) as (url, schema):
        database = create_engine(
            url.render_as_string(hide_password=False),
            connect_args={
                "server_settings": {"search_path": schema, "application_name": APPLICATION}
            },
        )
        try:
            await migrate.run_on(database, "upgrade", "head")
            sessions = create_session_factory(database)
            settings = settings_for(
                url.render_as_string(hide_password=False), running.portal, running.sources
            )
            expected, requests_before = await _source_stats(running.sources)
            checker = await asyncpg.connect(
                url.set(drivername="postgresql").render_as_string(hide_password=False),
                server_settings={"search_path": schema},
            )
            meter = CpuMeter(
                {
                    "sync engine (this process)": [os.getpid()],
                    "simulators": [running.sources_pid],
                    "mock portal": [running.portal_pid],
                },
                checker,
            )
            engine = Engine(settings, sessions, owner="bench")
            settle_heap()  # as the service's commands do once started
            stop = asyncio.Event()
            profiler = cProfile.Profile() if profile else None
            await meter.begin()
            if profiler:
                profiler.enable()
            started = time.perf_counter()
            task = asyncio.create_task(engine.run(stop), name="bench-engine")
            try:
                await _wait_done(checker, expected, task)
                seconds = time.perf_counter() - started
                if profiler:
                    profiler.disable()
                cpu = await meter.end()
                _, requests_after = await _source_stats(running.sources)
            finally:
                stop.set()
                await task
                await engine.aclose()
                await checker.close()
            if profiler and profile:
                profiler.dump_stats(profile)
            payloads = await _payloads(sessions)
        finally:
            await database.dispose()
    return EndToEnd(expected, seconds, payloads, cpu, requests_after - requests_before)


# --- 1b. end to end, with worker processes ------------------------------------------


def _toml(settings: dict[str, Any]) -> str:
    """The configuration file of the workers (the shapes ``settings_for`` uses)."""

    def scalar(value: Any) -> str:
        return json.dumps(value, ensure_ascii=False)  # a TOML basic string / number / array

    lines = [f"database_url = {scalar(settings['database_url'])}", ""]
    if "api" in settings:
        lines += ["[api]"] + [f"{k} = {scalar(v)}" for k, v in settings["api"].items()] + [""]
    lines += ["[portal]", f"base_url = {scalar(settings['portal']['base_url'])}"]
    for account in settings["portal"]["accounts"]:
        lines += ["", "[[portal.accounts]]"] + [f"{k} = {scalar(v)}" for k, v in account.items()]
    for source in settings["sources"]:
        lines += ["", "[[sources]]"]
        lines += [f"{k} = {scalar(v)}" for k, v in source.items() if not isinstance(v, dict)]
        for name, table in source.items():
            if isinstance(table, dict):
                lines += [f"[sources.{name}]"] + [
                    f"{scalar(k)} = {scalar(v)}" for k, v in table.items()
                ]
    lines += ["", "[logging]", 'level = "WARNING"', ""]
    return "\n".join(lines)


@asynccontextmanager
async def bench_database(database_url: str) -> AsyncIterator[tuple[URL, str]]:
    """A database of its own on the server (worker processes cannot be given a schema's
    search path), dropped afterwards: ``(url, name)``."""
    url = make_url(database_url)
    name = f"dossier_sync_bench_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(url.set(drivername="postgresql").render_as_string(False))
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        try:
            yield url.set(drivername="postgresql+asyncpg", database=name), name
        finally:
            await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
    finally:
        await admin.close()


async def end_to_end_workers(database_url: str, running: Servers, workers: int) -> EndToEnd:
    """As :func:`end_to_end`, with ``workers`` ``dossier-sync worker`` processes sharing
    the database instead of an engine in this process. The clock starts when the
    processes are started (their start-up, about a second, is inside it)."""
    async with bench_database(database_url) as (url, name):
        plain = url.render_as_string(hide_password=False)
        database = create_engine(plain)
        try:
            await migrate.run_on(database, "upgrade", "head")
            values = configuration(plain, running.portal, running.sources)
            expected, requests_before = await _source_stats(running.sources)
            checker = await asyncpg.connect(
                url.set(drivername="postgresql").render_as_string(hide_password=False)
            )
            with tempfile.TemporaryDirectory() as directory:
                config = Path(directory) / "workers.toml"
                config.write_text(_toml(values))
                env = service_env()
                command = [sys.executable, "-m", "app", "worker", "--config", str(config)]
                children: list[subprocess.Popen[bytes]] = []
                meter: CpuMeter | None = None
                try:
                    started = time.perf_counter()
                    children = _spawn(command, env, workers)
                    meter = CpuMeter(
                        {
                            f"{workers} workers": [c.pid for c in children],
                            "simulators": [running.sources_pid],
                            "mock portal": [running.portal_pid],
                        },
                        checker,
                        database=name,
                    )
                    await meter.begin()
                    await _wait_done_processes(checker, expected, children)
                    seconds = time.perf_counter() - started
                    cpu = await meter.end()
                    _, requests_after = await _source_stats(running.sources)
                finally:
                    for child in children:
                        child.terminate()
                    for child in children:
                        child.wait(timeout=60)
                    await checker.close()
            payloads = await _payloads(create_session_factory(database))
        finally:
            await database.dispose()
    return EndToEnd(expected, seconds, payloads, cpu, requests_after - requests_before)


def _spawn(command: list[str], env: dict[str, str], count: int) -> list[subprocess.Popen[bytes]]:
    return [subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL) for _ in range(count)]


async def _wait_done_processes(
    checker: Any, expected: int, children: Sequence[subprocess.Popen[bytes]]
) -> None:
    deadline = time.monotonic() + TIMEOUT_S
    while True:
        row = await checker.fetchrow(DONE_SQL)
        if row["acked"] >= expected and row["undelivered"] == 0:
            return
        stopped = [c.returncode for c in children if c.poll() is not None]
        if stopped:
            raise SystemExit(f"end to end: a worker stopped (exit {stopped[0]})")
        if time.monotonic() > deadline:
            raise SystemExit(f"end to end: not done after {TIMEOUT_S:g} s: {dict(row)}")
        await asyncio.sleep(CHECK_EVERY_S)


# --- 1c. end to end, the sources pushing ---------------------------------------------


INGEST_BATCH = 500  # the API's most items a call


async def _ingest(
    base: str, keys: dict[str, str], payloads: Sequence[Payload], concurrency: int
) -> None:
    """``payloads`` to the service's push API as their sources would send them: a batch
    of :data:`INGEST_BATCH` dossiers of one unit, then those dossiers' progress records
    (a step is refused before its dossier is stored), ``concurrency`` such sequences at
    once; exits unless every item is accepted."""
    by_unit: dict[str, list[Payload]] = {}
    for payload in payloads:
        by_unit.setdefault(payload.unit, []).append(payload)
    async with _client(base, concurrency) as http:

        async def send(unit: str, path: str, body: dict[str, list[dict[str, Any]]]) -> int:
            (items,) = body.values()
            answer = await http.post(
                path, json=body, headers={"Authorization": f"Bearer {keys[unit]}"}
            )
            if answer.status_code != 202 or answer.json()["accepted"] != len(items):
                raise SystemExit(f"ingest {path}: {answer.status_code} {answer.text[:500]}")
            return len(items)

        def job(unit: str, chunk: Sequence[Payload]) -> Callable[[], Awaitable[int]]:
            async def run() -> int:
                sent = await send(
                    unit, "/api/v1/dossiers", {"dossiers": [p.dossier for p in chunk]}
                )
                for records in _chunks([r for p in chunk for r in p.progress], INGEST_BATCH):
                    sent += await send(unit, "/api/v1/progress", {"records": list(records)})
                return sent

            return run

        await _in_flight(
            concurrency,
            [
                job(unit, chunk)
                for unit, items in by_unit.items()
                for chunk in _chunks(items, INGEST_BATCH)
            ],
        )


def _chunks(items: Sequence[T], size: int) -> list[Sequence[T]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


async def end_to_end_pushed(
    database_url: str, running: Servers, payloads: Sequence[Payload], workers: int, concurrency: int
) -> EndToEnd:
    """The same dossiers and progress records, this time sent by their sources to the
    service's push API (``POST /api/v1/dossiers``, then ``/api/v1/progress``) instead of
    polled: one ``dossier-sync serve`` (API, pushers, read-back) and ``workers`` worker
    processes on a database of their own. The clock runs from the first call sent until
    every dossier is acknowledged at the portal with all its progress."""
    async with bench_database(database_url) as (url, name):
        plain = url.render_as_string(hide_password=False)
        database = create_engine(plain)
        try:
            await migrate.run_on(database, "upgrade", "head")
        finally:
            await database.dispose()
        port = free_port()
        values = configuration(plain, running.portal, []) | {"api": {"port": port}}
        with tempfile.TemporaryDirectory() as directory, contextlib.ExitStack() as stack:
            config = Path(directory) / "serve.toml"
            config.write_text(_toml(values))
            keys = {unit: ingest_key(config, unit) for unit in UNITS.values()}
            base = f"http://127.0.0.1:{port}"
            children = start_service(stack, config, base, workers)
            checker = await asyncpg.connect(
                url.set(drivername="postgresql").render_as_string(hide_password=False)
            )
            try:
                processes = "serve" + (f" + {workers} workers" if workers else "")
                meter = CpuMeter(
                    {
                        processes: [c.pid for c in children],
                        "this process (the sources)": [os.getpid()],
                        "mock portal": [running.portal_pid],
                    },
                    checker,
                    database=name,
                )
                await meter.begin()
                started = time.perf_counter()
                await _ingest(base, keys, payloads, concurrency)
                sent_s = time.perf_counter() - started
                await _wait_done_processes(checker, len(payloads), children)
                seconds = time.perf_counter() - started
                cpu = await meter.end()
            finally:
                await checker.close()
    return EndToEnd(len(payloads), seconds, list(payloads), cpu, 0, sent_s)


# --- 2. and 3.: straight to the portal -----------------------------------------------


class Portal:
    """A bare client of the portal contract: one session per unit, no retries (the
    portal is told to be reliable)."""

    def __init__(self, http: httpx.AsyncClient) -> None:
        self.http = http
        self.sessions: dict[str, str] = {}

    async def login(self) -> None:
        for unit in UNITS.values():
            answer = await self.http.post(
                "/dvcqg/auth",
                json={"username": unit, "password": PASSWORD},
                headers={"dstcode": unit},
            )
            self.sessions[unit] = answer.json()["session"]

    async def call(
        self, unit: str, endpoint: str, service: str, fields: dict[str, Any]
    ) -> dict[str, Any]:
        body = {"session": self.sessions[unit], "madonvi": unit, "service": service} | fields
        response = await self.http.post(f"/dvcqg/{endpoint}", json=body, headers={"dstcode": unit})
        answer: dict[str, Any] = response.json()
        return answer

    async def items(
        self, unit: str, service: str, data: Sequence[dict[str, Any]], **fields: Any
    ) -> int:
        """One integration call; how many of ``data`` the portal accepted."""
        answer = await self.call(unit, "integration", service, fields | {"data": list(data)})
        if answer.get("error_code") not in (0, 1):
            raise SystemExit(f"{service}: {answer.get('error_code')} {answer.get('message')}")
        return sum(1 for item in answer["data"] if item["error_code"] == 0)


def _client(portal_url: str, connections: int) -> httpx.AsyncClient:
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    return httpx.AsyncClient(base_url=portal_url, limits=limits, timeout=60)


async def _in_flight(concurrency: int, jobs: Sequence[Callable[[], Awaitable[int]]]) -> int:
    """Runs ``jobs`` with ``concurrency`` at a time; the sum of what they return."""
    queue = list(reversed(jobs))
    done = 0

    async def worker() -> None:
        nonlocal done
        while queue:
            count = await queue.pop()()
            done += count

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return done


async def raw_push(portal_url: str, payloads: Sequence[Payload], concurrency: int) -> float:
    """Seconds to create every dossier and then deliver every progress record, in
    batches of 100 of one unit each."""
    by_unit: dict[str, list[Payload]] = {}
    for payload in payloads:
        by_unit.setdefault(payload.unit, []).append(payload)
    async with _client(portal_url, concurrency) as http:
        portal = Portal(http)
        await portal.login()

        def job(unit: str, service: str, data: Sequence[dict[str, Any]], **fields: Any) -> Any:
            return lambda: portal.items(unit, service, data, **fields)

        creates = [
            job(unit, "DongBoHoSoMC", [p.dossier for p in items[i : i + BATCH]], isUpdating="False")
            for unit, items in by_unit.items()
            for i in range(0, len(items), BATCH)
        ]
        progress = [
            job(unit, "CapNhatTienDoHoSoMC", records[i : i + BATCH])
            for unit, items in by_unit.items()
            for records in [[r for p in items for r in p.progress]]
            for i in range(0, len(records), BATCH)
        ]
        started = time.perf_counter()
        accepted = await _in_flight(concurrency, creates)
        accepted += await _in_flight(concurrency, progress)
        seconds = time.perf_counter() - started
    expected = len(payloads) + sum(len(p.progress) for p in payloads)
    if accepted != expected:
        raise SystemExit(f"raw push: {accepted} of {expected} items accepted")
    return seconds


async def sequential(portal_url: str, payloads: Sequence[Payload]) -> float:
    """Seconds for the OpenCPS-style sync of ``payloads``, one dossier at a time."""
    async with _client(portal_url, 1) as http:
        portal = Portal(http)
        await portal.login()
        started = time.perf_counter()
        for payload in payloads:
            unit, dossier = payload.unit, payload.dossier
            found = await portal.call(unit, "share", "TraCuuHoSo", {"mahoso": dossier["MaHoSo"]})
            updating = "True" if found.get("error_code") == 0 else "False"
            if await portal.items(unit, "DongBoHoSoMC", [dossier], isUpdating=updating) != 1:
                raise SystemExit(f"sequential: {dossier['MaHoSo']} refused")
            if payload.progress:
                accepted = await portal.items(unit, "CapNhatTienDoHoSoMC", payload.progress)
                if accepted != len(payload.progress):
                    raise SystemExit(f"sequential: progress of {dossier['MaHoSo']} refused")
        return time.perf_counter() - started


# --- the run -------------------------------------------------------------------------


def _reset(control: MockPortalControl, latency_ms: float) -> None:
    control.reset("all")
    if latency_ms:
        control.add_fault(
            action={"type": "latency", "latency_ms": latency_ms}, schedule={"kind": "always"}
        )


async def bench(args: argparse.Namespace) -> None:
    admin_token = secrets.token_urlsafe(16)
    per_source = max(1, args.dossiers // len(DIALECTS))
    with servers(per_source, args.seed, admin_token, args.source_latency_ms) as running:
        control = MockPortalControl(running.portal, admin_token)
        try:
            _reset(control, args.latency_ms)
            if args.workers:
                e2e = await end_to_end_workers(args.database_url, running, args.workers)
            else:
                e2e = await end_to_end(args.database_url, running, args.profile)
            portal_calls = Counter(
                json.loads(line)["service"] for line in control.journal_ndjson()[0] if line
            )
            _reset(control, args.latency_ms)
            raw_s = await raw_push(running.portal, e2e.payloads, args.concurrency)
            _reset(control, args.latency_ms)
            pushed = await end_to_end_pushed(
                args.database_url, running, e2e.payloads, args.push_workers, args.concurrency
            )
            _reset(control, args.latency_ms)
            one_by_one = e2e.payloads[: args.sequential]
            sequential_s = await sequential(running.portal, one_by_one)
        finally:
            control.close()
    e2e_rate = e2e.dossiers / e2e.seconds
    raw_rate = len(e2e.payloads) / raw_s
    sequential_rate = len(one_by_one) / sequential_s
    latency = f", portal latency {args.latency_ms:g} ms" if args.latency_ms else ""
    if args.source_latency_ms:
        latency += f", source latency {args.source_latency_ms:g} ms"
    print(
        f"dossiers             {e2e.dossiers} ({per_source} per source × {len(DIALECTS)}), "
        f"{e2e.progress} progress records{latency}"
    )
    print(f"end to end           {e2e_rate:8.0f} changes/s   ({e2e.seconds:.2f} s)")
    print(
        f"raw batched push     {raw_rate:8.0f} changes/s   ({raw_s:.2f} s, "
        f"concurrency {args.concurrency})"
    )
    print(
        f"sequential sync      {sequential_rate:8.1f} changes/s   "
        f"({sequential_s:.2f} s for {len(one_by_one)})"
    )
    pushed_rate = pushed.dossiers / pushed.seconds
    print(
        f"end to end, pushed   {pushed_rate:8.0f} changes/s   ({pushed.seconds:.2f} s, all sent "
        f"and stored after {pushed.sent_s or 0:.2f} s: the sources sending to the push API)"
    )
    print(f"end to end / raw push:     {e2e_rate / raw_rate:6.2f}×   (target ≥ 0.7×)")
    print(f"end to end / sequential:   {e2e_rate / sequential_rate:6.1f}×   (target ≥ 30×)")
    print(f"pushed end to end / raw push: {pushed_rate / raw_rate:6.2f}×")
    print(f"pushed end to end / sequential: {pushed_rate / sequential_rate:6.1f}×")
    print("end-to-end CPU time: " + ", ".join(f"{n} {s:.1f} s" for n, s in e2e.cpu.items()))
    print("pushed, CPU time: " + ", ".join(f"{n} {s:.1f} s" for n, s in pushed.cpu.items()))
    print(
        f"requests to the sources: {e2e.source_requests} "
        f"({e2e.source_requests / e2e.dossiers:.1f} per dossier)"
    )
    print(
        f"requests to the portal: {sum(portal_calls.values())} ("
        + ", ".join(f"{service} {n}" for service, n in portal_calls.most_common())
        + ")"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dossiers", type=int, default=3000, help="in all, split per source")
    parser.add_argument(
        "--database-url",
        default=DEFAULT_DATABASE_URL,
        help="a PostgreSQL database to make a throwaway schema in",
    )
    parser.add_argument("--concurrency", type=int, default=4, help="raw push: requests in flight")
    parser.add_argument("--sequential", type=int, default=300, help="dossiers synced one by one")
    parser.add_argument("--latency-ms", type=float, default=0.0, help="delay of each portal answer")
    parser.add_argument(
        "--source-latency-ms",
        type=float,
        default=0.0,
        help="delay of each answer of the sources (end-to-end run only)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--profile", type=Path, help="cProfile of this process, end-to-end run")
    parser.add_argument(
        "--workers",
        type=int,
        default=0,
        help="end to end in this many `dossier-sync worker` processes (0: in this process)",
    )
    parser.add_argument(
        "--push-workers",
        type=int,
        default=0,
        help="the pushed end-to-end run: this many `dossier-sync worker` processes beside serve",
    )
    parser.add_argument(
        "--loop", choices=["asyncio", "uvloop"], default="asyncio", help="the engine's event loop"
    )
    args = parser.parse_args()
    configure_logging("WARNING", "console")
    if args.loop == "uvloop":
        import uvloop  # noqa: PLC0415 - only when asked for

        uvloop.run(bench(args))
    else:
        asyncio.run(bench(args))
    print(machine())


if __name__ == "__main__":
    main()
