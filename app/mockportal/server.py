"""Running the mock portal: in the foreground (the CLI) or in a background thread (tests)."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from types import TracebackType
from typing import Self

import uvicorn

from app.mockportal.app import MockPortal, MockPortalSettings, create_app, portal_of


def free_port(host: str = "127.0.0.1") -> int:
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


def serve(settings: MockPortalSettings, host: str, port: int, log_level: str = "info") -> None:
    """Run in the foreground until SIGINT/SIGTERM, then exit with status 0."""
    config = uvicorn.Config(
        create_app(settings),
        host=host,
        port=port,
        log_level=log_level,
        log_config=None,
        timeout_graceful_shutdown=5,
    )
    GracefulServer(config).run()


class BackgroundMockPortal:
    """The mock on a free local port in a thread of this process, for tests::

    with BackgroundMockPortal(MockPortalSettings(admin_token="t")) as mock:
        httpx.post(mock.url + "/dvcqg/auth", ...)
    """

    def __init__(self, settings: MockPortalSettings | None = None, host: str = "127.0.0.1"):
        self.settings = settings or MockPortalSettings()
        self.host = host
        self.port = free_port(host)
        self.app = create_app(self.settings)
        self._server = uvicorn.Server(
            uvicorn.Config(
                self.app,
                host=host,
                port=self.port,
                log_level="warning",
                log_config=None,
                lifespan="off",
            )
        )
        self._thread = threading.Thread(target=self._run, name="mock-portal", daemon=True)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def portal(self) -> MockPortal:
        """The live state (for assertions that the control API does not cover)."""
        return portal_of(self.app)

    def _run(self) -> None:
        asyncio.run(self._server.serve())

    def start(self) -> Self:
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the mock portal did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)
        if self.portal.core.persistence is not None:
            self.portal.core.persistence.close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
