"""Small helpers shared by the project's HTTP servers (the mock portal, the source
simulators, the service): a uvicorn server that exits 0 on SIGTERM, one that runs as a
task of a process handling signals itself, a free-port probe, and a server in a
background thread for tests."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from types import TracebackType
from typing import Literal, Self

import uvicorn
from starlette.types import ASGIApp


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free a moment ago (for tests and background servers)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        port: int = probe.getsockname()[1]
        return port


class GracefulServer(uvicorn.Server):
    """uvicorn, except that a SIGTERM/SIGINT shutdown ends the process with status 0
    (service-interface.md) instead of re-raising the signal after shutting down."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        with super().capture_signals():
            yield
            self._captured_signals.clear()


class EmbeddedServer(uvicorn.Server):
    """uvicorn as one task of a process that handles SIGTERM/SIGINT itself (the worker's
    metrics endpoint): it installs no signal handlers; stop it with ``should_exit``."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def listening_socket(host: str, port: int) -> socket.socket:
    """A socket bound to ``host:port`` and listening (raises OSError when taken), for
    ``uvicorn.Server.serve(sockets=[...])``."""
    family, kind, proto, _name, address = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(128)
    except OSError:
        sock.close()
        raise
    return sock


class BackgroundServer:
    """An ASGI app under uvicorn on a free local port, in a thread of this process: what
    tests (and integrators' tests) run the mock portal and the simulators with."""

    name = "server"

    def __init__(
        self,
        app: ASGIApp,
        host: str = "127.0.0.1",
        *,
        lifespan: Literal["auto", "on", "off"] = "off",
    ) -> None:
        self.app = app
        self.host = host
        self.port = free_port(host)
        self._server = uvicorn.Server(
            uvicorn.Config(
                app,
                host=host,
                port=self.port,
                log_level="warning",
                log_config=None,
                lifespan=lifespan,
            )
        )
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def _run(self) -> None:
        asyncio.run(self._server.serve())

    def start(self) -> Self:
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the {self.name} did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
