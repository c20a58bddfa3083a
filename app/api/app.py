"""The service's HTTP application.

:func:`create_app` is what ``serve`` runs: a FastAPI app whose lifespan owns the process
(database engine and sessions, metrics, and with ``pipeline=True`` the sync engine; see
``app.runtime``). :func:`create_ops_app` serves only the operations endpoints of a
service run elsewhere (``worker --metrics-port``).

Endpoints live in one module per concern (``health``, ``metrics``); the provincial API
(``/api/v1``) joins them the same way.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncEngine

from app.api import admin, dossiers, health, ingest, metrics, reports, status_page
from app.api.errors import install_error_handlers
from app.api.middleware import RequestContext
from app.config import Settings
from app.metrics import DEFAULT_REFRESH_S
from app.runtime import STOP_TIMEOUT_S, Service, running_service

TITLE = "dossier-sync"
DESCRIPTION = (
    "Synchronises administrative-procedure dossiers (TTHC) from source systems to the "
    "National Public Service Portal (DVCQG)."
)


TAGS = [
    {"name": "ingest", "description": "Push mode: provincial systems send dossiers and steps."},
    {"name": "read", "description": "Dossiers and sync progress, within the key's unit."},
    {"name": "admin", "description": "Sources, quarantine, dead letters, read-back."},
    {"name": "operations", "description": "Probes and Prometheus metrics (no key)."},
]


def create_app(
    settings: Settings,
    *,
    pipeline: bool = False,
    refresh_interval_s: float = DEFAULT_REFRESH_S,
    stop_timeout_s: float = STOP_TIMEOUT_S,
    database: AsyncEngine | None = None,
    settle: bool = False,
) -> FastAPI:
    """The API app. ``pipeline``: run the sync engine (pollers, pushers, read-back) in
    the lifespan too, as ``serve`` does. ``database``: an engine the caller owns (tests)
    instead of one on ``settings.database_url``. ``settle``: the process is ``serve``'s
    own (see :func:`app.runtime.settle_heap`)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with running_service(
            settings,
            pipeline=pipeline,
            role="serve",
            refresh_interval_s=refresh_interval_s,
            stop_timeout_s=stop_timeout_s,
            database=database,
            settle=settle,
        ) as service:
            app.state.service = service
            yield

    app = FastAPI(
        title=TITLE,
        description=DESCRIPTION,
        version=_version(),
        lifespan=lifespan,
        openapi_tags=TAGS,
    )
    _include_routers(app)
    _include_api(app)
    return app


def create_ops_app(service: Service) -> FastAPI:
    """``/healthz``, ``/readyz`` and ``/metrics`` of an already running service."""
    app = FastAPI(
        title=f"{TITLE} worker",
        description="Operations endpoints of a dossier-sync worker.",
        version=_version(),
    )
    app.state.service = service
    _include_routers(app)
    return app


def _include_routers(app: FastAPI) -> None:
    install_error_handlers(app)
    app.add_middleware(RequestContext)
    app.include_router(health.router)
    app.include_router(metrics.router)


def _include_api(app: FastAPI) -> None:
    """The provincial API (``/api/v1``): only where the service runs its own API."""
    app.include_router(ingest.router)
    app.include_router(dossiers.router)
    app.include_router(reports.router)
    app.include_router(admin.router)
    app.include_router(status_page.router)


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version  # noqa: PLC0415

    try:
        return version("dossier-sync")
    except PackageNotFoundError:  # pragma: no cover - running from a bare checkout
        return "0"
