"""Building and running a simulator: the ASGI app, a background server for tests, and the
foreground server of ``dossier-sync simulate``."""

from __future__ import annotations

import asyncio

import uvicorn
from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, Response

from app.servers import BackgroundServer, GracefulServer
from app.simulators import control, dvclt, igate, opencps
from app.simulators.core import Simulator, SourceError, TruthEntry, simulator_of
from app.simulators.settings import DIALECTS, Dialect, SimulatorSettings
from app.simulators.world import World

_TRUTH: dict[Dialect, TruthEntry] = {
    "opencps": opencps.truth_entry,
    "igate": igate.truth_entry,
    "dvclt": dvclt.truth_entry,
}

_TITLES: dict[Dialect, str] = {
    "opencps": "OpenCPS v2 simulator",
    "igate": "VNPT iGate simulator",
    "dvclt": "DVCLT inter-agency queue simulator",
}


async def _source_error(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, SourceError)  # noqa: S101 - registered for SourceError only
    if isinstance(exc.body, str):
        return PlainTextResponse(exc.body, exc.status, headers=exc.headers)
    return JSONResponse(exc.body, exc.status, headers=exc.headers)


async def _bad_parameters(_request: Request, exc: Exception) -> Response:
    # The real systems answer 400 to a malformed parameter, not FastAPI's 422.
    assert isinstance(exc, RequestValidationError)  # noqa: S101 - registered for it only
    problems = [
        f"{'.'.join(str(p) for p in error['loc'][1:])}: {error['msg']}" for error in exc.errors()
    ]
    return JSONResponse({"message": "; ".join(problems)}, 400)


async def _latency(request: Request) -> None:
    """The configured network delay, before the dialect's endpoint answers."""
    delay_ms = simulator_of(request).settings.latency_ms
    if delay_ms:
        await asyncio.sleep(delay_ms / 1000)


def create_simulator_app(dialect: Dialect, settings: SimulatorSettings | None = None) -> FastAPI:
    """The simulator of ``dialect`` as an ASGI application (``app.state.simulator``)."""
    if dialect not in DIALECTS:
        raise ValueError(f"unknown dialect {dialect!r}; expected one of {', '.join(DIALECTS)}")
    simulator = Simulator(dialect, settings or SimulatorSettings(), _TRUTH[dialect])
    app = FastAPI(
        title=_TITLES[dialect],
        description="A source-system simulator (source-dialects.md); `/_sim` is its "
        "control API, which the real system does not have.",
        lifespan=simulator.lifespan,
    )
    app.state.simulator = simulator
    app.add_exception_handler(SourceError, _source_error)
    app.add_exception_handler(RequestValidationError, _bad_parameters)
    delayed = [Depends(_latency)]
    if dialect == "opencps":
        app.include_router(opencps.router, dependencies=delayed)
    elif dialect == "igate":
        app.include_router(igate.token_router, dependencies=delayed)
        app.include_router(igate.router, dependencies=delayed)
    else:
        app.include_router(dvclt.token_router, dependencies=delayed)
        app.include_router(dvclt.router, dependencies=delayed)
    app.include_router(control.router)
    return app


def serve(
    dialect: Dialect, settings: SimulatorSettings, host: str, port: int, log_level: str = "info"
) -> None:
    """Run in the foreground until SIGINT/SIGTERM, then exit with status 0."""
    config = uvicorn.Config(
        create_simulator_app(dialect, settings),
        host=host,
        port=port,
        log_level=log_level,
        log_config=None,
        lifespan="on",
        timeout_graceful_shutdown=5,
    )
    GracefulServer(config).run()


class BackgroundSimulator(BackgroundServer):
    """A simulator on a free local port in a thread of this process, for tests::

    with BackgroundSimulator("igate", SimulatorSettings(dossiers=50)) as sim:
        httpx.get(sim.url + "/_sim/truth")
    """

    def __init__(
        self,
        dialect: Dialect,
        settings: SimulatorSettings | None = None,
        host: str = "127.0.0.1",
    ) -> None:
        self.dialect: Dialect = dialect
        self.name = f"{dialect} simulator"
        self.api = create_simulator_app(dialect, settings)
        # The lifespan runs the background changes.
        super().__init__(self.api, host, lifespan="on")

    @property
    def simulator(self) -> Simulator:
        simulator: Simulator = self.api.state.simulator
        return simulator

    @property
    def world(self) -> World:
        """The live world (take ``world.lock`` to read several things consistently)."""
        return self.simulator.world
