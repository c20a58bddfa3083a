"""One running service process: the database, the metrics and (in ``serve`` and
``worker``) the sync engine, started together and stopped in order.

:func:`running_service` is shared by the API app's lifespan (``serve``) and by the
``worker`` command, so both behave the same way on start and on SIGTERM: the engine stops
taking work, the round in flight finishes (bounded by ``stop_timeout_s``, then it is
cancelled and its claimed rows handed back), leases are released, connections closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import signal
import socket
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from app import migrate
from app.config import Settings
from app.db import create_engine, create_session_factory
from app.logs import get_logger
from app.metrics import DEFAULT_REFRESH_S, Metrics
from app.sync.engine import Engine

log = get_logger("dossier_sync.runtime")

STOP_TIMEOUT_S = 30.0  # how long the round in flight may take to finish on SIGTERM
DATABASE_CHECK_TIMEOUT_S = 5.0
UPGRADE_HINT = "run `dossier-sync db upgrade`"


def settle_heap() -> None:
    """Collect the start-up garbage, then move every object still alive — modules,
    classes, schemas, the engine just built — out of the cyclic garbage collector's
    reach (``gc.freeze``).

    The pipeline allocates many short-lived objects with reference cycles (HTTP
    requests, retry states, ORM rows), so full collections run often, and each one
    walked the whole start-up heap again: a tenth to a fifth of the engine's CPU
    (docs/benchmarks.md, 2026-12-07). What is frozen is never freed, which is what
    start-up objects are for anyway; later garbage is collected as before. Only for a
    process's own start (``serve``, ``worker``, ``demo``): called in a test process it
    would keep every test's objects alive."""
    gc.collect()
    gc.freeze()
    log.info("heap settled", frozen_objects=gc.get_freeze_count())


def owner_name(role: str) -> str:
    """A lease owner that tells operators which process holds what."""
    return f"{role}-{socket.gethostname()[:40]}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


async def database_problem(engine: AsyncEngine) -> str | None:
    """Why the service cannot work on this database (unreachable, not at the migrations'
    head), or ``None`` when it can. Never contains the URL or its credentials."""
    head = migrate.head_revision()
    try:
        async with asyncio.timeout(DATABASE_CHECK_TIMEOUT_S):
            current = await migrate.current_revision(engine)
    except TimeoutError:
        return f"the database did not answer within {DATABASE_CHECK_TIMEOUT_S:g} s"
    except Exception as error:  # any driver error means "not usable now"
        return f"the database is not reachable ({type(error).__name__})"
    if current != head:
        at = "not migrated" if current is None else f"at revision {current}"
        return f"the database is {at}, this version needs {head}: {UPGRADE_HINT}"
    return None


async def check_database(url: str) -> str | None:
    """:func:`database_problem` for a URL (the commands' start-up check)."""
    engine = create_engine(url)
    try:
        return await database_problem(engine)
    finally:
        await engine.dispose()


@dataclass
class Service:
    """What a running process holds; the HTTP endpoints read it from ``app.state``."""

    settings: Settings
    db: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    metrics: Metrics
    refresh_interval_s: float = DEFAULT_REFRESH_S  # of the database gauges
    engine: Engine | None = None
    engine_task: asyncio.Task[None] | None = None
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    @property
    def pipeline_problem(self) -> str | None:
        """Why the sync engine of this process is not running (None: it is, or there is
        none by design)."""
        task = self.engine_task
        if task is None or not task.done():
            return None
        if task.cancelled():
            return "the sync engine was cancelled"
        error = task.exception()
        return f"the sync engine stopped ({type(error).__name__ if error else 'finished'})"


@contextlib.asynccontextmanager
async def running_service(
    settings: Settings,
    *,
    pipeline: bool,
    role: str = "serve",
    metrics: Metrics | None = None,
    refresh_interval_s: float = DEFAULT_REFRESH_S,
    stop_timeout_s: float = STOP_TIMEOUT_S,
    database: AsyncEngine | None = None,
    exposed: bool = True,
    settle: bool = False,
) -> AsyncIterator[Service]:
    """Open the database, start the metrics refresh and (``pipeline``) the engine; on
    exit stop them in order (see the module docstring). ``database``: an engine the
    caller owns (tests, embedding) instead of one on ``settings.database_url``.
    ``exposed=False``: nobody scrapes this process (a worker without a metrics port), so
    it reads no database gauges — the 766 reports among them are not free.
    ``settle``: the process is this service's own (a command, not a test): once started,
    :func:`settle_heap`."""
    db = database or create_engine(settings.database_url)
    sessions = create_session_factory(db)
    service = Service(settings, db, sessions, metrics or Metrics(), refresh_interval_s)
    stop = asyncio.Event()
    try:
        if pipeline:
            engine = Engine(
                settings,
                sessions,
                owner=owner_name(role),
                observer=service.metrics.observer(),
            )
            service.engine = engine
            service.metrics.circuits.watch(engine.portal)
            service.metrics.prime(settings)
            service.engine_task = asyncio.create_task(_run_engine(engine, stop), name="engine")
            service.tasks.append(service.engine_task)
            log.info(
                "engine started",
                owner=engine.owner,
                sources=[s.name for s in settings.sources],
                units=[a.unit for a in settings.portal.accounts],
            )
        if exposed:
            service.tasks.append(
                asyncio.create_task(
                    service.metrics.refresh_forever(sessions, stop, refresh_interval_s),
                    name="metrics-refresh",
                )
            )
        if settle:
            settle_heap()
        yield service
    finally:
        stop.set()
        await _finish(service.tasks, stop_timeout_s)
        if service.engine is not None:
            await service.engine.aclose()
        if database is None:
            await db.dispose()
        log.info("service stopped", role=role)


async def _run_engine(engine: Engine, stop: asyncio.Event) -> None:
    try:
        await engine.run(stop)
    except asyncio.CancelledError:
        raise
    except Exception:
        log.exception("the sync engine crashed", owner=engine.owner)
        raise


async def _finish(tasks: list[asyncio.Task[None]], timeout_s: float) -> None:
    """Wait for the tasks to end by themselves (their stop event is set), cancel any
    still running after ``timeout_s``, and wait for the cancellation to land."""
    if not tasks:
        return
    _done, pending = await asyncio.wait(tasks, timeout=timeout_s)
    for task in pending:
        log.warning("still running at shutdown; cancelling", task=task.get_name())
        task.cancel()
    if pending:
        await asyncio.wait(pending, timeout=10.0)
    for task in tasks:
        if task.done() and not task.cancelled():
            task.exception()  # marks it retrieved; logged where it happened


async def run_worker(settings: Settings, *, stop_timeout_s: float = STOP_TIMEOUT_S) -> int:
    """``dossier-sync worker`` without a metrics port: the engine until SIGTERM/SIGINT.
    Returns the exit status (0 after a signal, 1 if the engine died)."""
    stop = _stop_on_signals()
    async with running_service(
        settings,
        pipeline=True,
        role="worker",
        stop_timeout_s=stop_timeout_s,
        exposed=False,
        settle=True,
    ) as service:
        assert service.engine_task is not None  # noqa: S101 - pipeline=True
        await _first(stop, service.engine_task)
        crashed = service.engine_task.done()
    return 1 if crashed else 0


async def run_worker_with_metrics(
    settings: Settings, host: str, port: int, *, stop_timeout_s: float = STOP_TIMEOUT_S
) -> int:
    """``dossier-sync worker --metrics-port P``: the engine, and ``/metrics``,
    ``/healthz`` and ``/readyz`` on ``host:port`` (no API)."""
    import uvicorn  # noqa: PLC0415 - only this command needs it

    from app.api.app import create_ops_app  # noqa: PLC0415
    from app.servers import EmbeddedServer, listening_socket  # noqa: PLC0415

    try:  # before anything starts: a taken port is a configuration error
        sock = listening_socket(host, port)
    except OSError as error:
        log.error("cannot listen for metrics", host=host, port=port, error=str(error))  # noqa: TRY400 - the reason is enough
        return 2
    stop = _stop_on_signals()
    async with running_service(
        settings, pipeline=True, role="worker", stop_timeout_s=stop_timeout_s, settle=True
    ) as service:
        assert service.engine_task is not None  # noqa: S101 - pipeline=True
        server = EmbeddedServer(
            uvicorn.Config(
                create_ops_app(service),
                host=host,
                port=port,
                log_config=None,
                log_level=settings.logging.level.lower(),
                lifespan="off",
                timeout_graceful_shutdown=5,
            )
        )
        http = asyncio.create_task(server.serve(sockets=[sock]), name="metrics-server")
        await _first(stop, service.engine_task, http)
        crashed = service.engine_task.done()
        failed_to_listen = http.done() and not stop.is_set()
        server.should_exit = True
        with contextlib.suppress(Exception):
            await http
        sock.close()
    if failed_to_listen:
        log.error("the metrics server stopped", host=host, port=port)
    return 1 if crashed or failed_to_listen else 0


def _stop_on_signals() -> asyncio.Event:
    """An event set by SIGTERM or SIGINT (a second one changes nothing: the shutdown is
    already bounded)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, _on_signal, stop, sig)
    return stop


def _on_signal(stop: asyncio.Event, sig: signal.Signals) -> None:
    if not stop.is_set():
        log.info("stopping", signal=sig.name)
    stop.set()


async def _first(stop: asyncio.Event, *tasks: asyncio.Task[None]) -> None:
    waiter = asyncio.create_task(stop.wait())
    try:
        await asyncio.wait([waiter, *tasks], return_when=asyncio.FIRST_COMPLETED)
    finally:
        waiter.cancel()
