"""Poll stage: one connector per dialect behind :class:`Connector`."""

from __future__ import annotations

import httpx
from httpx_aiohttp import AiohttpTransport

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

CONNECTORS: dict[str, type[Connector]] = {
    "opencps": opencps.OpenCPSConnector,
    "igate": igate.IGateConnector,
    "dvclt": dvclt.DVCLTConnector,
}


def http_client(settings: SourceSettings, timeout_s: float = 30.0) -> httpx.AsyncClient:
    """An HTTP client for a source, with its dialect's authentication.

    httpx's API over aiohttp's connection pool: reading a source takes about three
    requests a dossier (the dialects fetch files, actions or history one dossier at a
    time), and httpcore's pool spends most of a request's CPU scanning its connections
    (quadratic in their number, each with a socket-readable check). The aiohttp pool
    costs about a third as much per request (docs/benchmarks.md); the connectors, their
    auth flows and error handling stay plain httpx."""
    base_url = str(settings.base_url)
    limits = httpx.Limits(max_connections=settings.concurrency + 2)
    transport = AiohttpTransport(limits=limits)
    timeout = httpx.Timeout(timeout_s)
    if settings.dialect == "opencps":
        basic, headers = opencps.auth(settings)
        return httpx.AsyncClient(
            base_url=base_url, auth=basic, headers=headers, transport=transport, timeout=timeout
        )
    token = (
        igate.auth(settings, base_url)
        if settings.dialect == "igate"
        else dvclt.auth(settings, base_url)
    )
    return httpx.AsyncClient(base_url=base_url, auth=token, transport=transport, timeout=timeout)


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
    "read_ahead",
]
