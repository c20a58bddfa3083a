"""Running the mock portal: in the foreground (the CLI) or in a background thread (tests)."""

from __future__ import annotations

import uvicorn

from app.mockportal.app import MockPortal, MockPortalSettings, create_app, portal_of
from app.servers import BackgroundServer, GracefulServer, free_port

__all__ = ["BackgroundMockPortal", "GracefulServer", "free_port", "serve"]


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


class BackgroundMockPortal(BackgroundServer):
    """The mock on a free local port in a thread of this process, for tests::

    with BackgroundMockPortal(MockPortalSettings(admin_token="t")) as mock:
        httpx.post(mock.url + "/dvcqg/auth", ...)
    """

    name = "mock portal"

    def __init__(self, settings: MockPortalSettings | None = None, host: str = "127.0.0.1"):
        self.settings = settings or MockPortalSettings()
        super().__init__(create_app(self.settings), host)

    @property
    def portal(self) -> MockPortal:
        """The live state (for assertions that the control API does not cover)."""
        return portal_of(self.app)

    def stop(self) -> None:
        super().stop()
        if self.portal.core.persistence is not None:
            self.portal.core.persistence.close()
