"""Poll stage: one connector per dialect behind :class:`Connector`."""

from __future__ import annotations

import httpx

from app.config import SourceSettings
from app.sync.connectors import dvclt, igate, opencps
from app.sync.connectors.base import (
    Connector,
    Page,
    SourceAuthError,
    SourceRecord,
    SourceUnavailable,
)

CONNECTORS: dict[str, type[Connector]] = {
    "opencps": opencps.OpenCPSConnector,
    "igate": igate.IGateConnector,
    "dvclt": dvclt.DVCLTConnector,
}


def http_client(settings: SourceSettings, timeout_s: float = 30.0) -> httpx.AsyncClient:
    """An HTTP client for a source, with its dialect's authentication."""
    base_url = str(settings.base_url)
    limits = httpx.Limits(max_connections=settings.concurrency + 2)
    timeout = httpx.Timeout(timeout_s)
    if settings.dialect == "opencps":
        basic, headers = opencps.auth(settings)
        return httpx.AsyncClient(
            base_url=base_url, auth=basic, headers=headers, limits=limits, timeout=timeout
        )
    token = (
        igate.auth(settings, base_url)
        if settings.dialect == "igate"
        else dvclt.auth(settings, base_url)
    )
    return httpx.AsyncClient(base_url=base_url, auth=token, limits=limits, timeout=timeout)


def make_connector(settings: SourceSettings, http: httpx.AsyncClient) -> Connector:
    return CONNECTORS[settings.dialect](settings, http)


__all__ = [
    "CONNECTORS",
    "Connector",
    "Page",
    "SourceAuthError",
    "SourceRecord",
    "SourceUnavailable",
    "http_client",
    "make_connector",
]
