"""Poll stage: one connector per dialect behind :class:`Connector`."""

from __future__ import annotations

from app.config import SourceSettings
from app.sync.connectors import dvclt, igate, opencps
from app.sync.connectors.base import (
    Connector,
    Page,
    SourceAuthError,
    SourceRecord,
    SourceUnavailable,
    read_ahead,
)
from app.sync.connectors.http import Authenticator, SourceClient

CONNECTORS: dict[str, type[Connector]] = {
    "opencps": opencps.OpenCPSConnector,
    "igate": igate.IGateConnector,
    "dvclt": dvclt.DVCLTConnector,
}


def http_client(settings: SourceSettings, timeout_s: float = 30.0) -> SourceClient:
    """An HTTP client for a source, with its dialect's authentication."""
    auth: Authenticator
    if settings.dialect == "opencps":
        auth = opencps.auth(settings)
    elif settings.dialect == "igate":
        auth = igate.auth(settings)
    else:
        auth = dvclt.auth(settings)
    return SourceClient(
        str(settings.base_url),
        auth,
        connections=settings.concurrency + 2,
        timeout_s=timeout_s,
    )


def make_connector(settings: SourceSettings, http: SourceClient) -> Connector:
    return CONNECTORS[settings.dialect](settings, http)


__all__ = [
    "CONNECTORS",
    "Connector",
    "Page",
    "SourceAuthError",
    "SourceClient",
    "SourceRecord",
    "SourceUnavailable",
    "http_client",
    "make_connector",
    "read_ahead",
]
