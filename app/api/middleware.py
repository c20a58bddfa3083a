"""Request ids and one log line per request.

Every request gets an id — the caller's ``X-Request-ID`` when it sent a sane one, else a
new one — bound into the log context for everything logged while it is handled, and
returned in the answer's ``X-Request-ID``.
"""

from __future__ import annotations

import re
import time
import uuid

import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.logs import get_logger

log = get_logger("dossier_sync.api")

_SANE_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")
QUIET_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})  # probed every few seconds


class RequestContext:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        sent = ""
        for name, value in scope.get("headers", []):
            if name == b"x-request-id":
                sent = value.decode("latin-1")
        request_id = sent if _SANE_ID.fullmatch(sent) else uuid.uuid4().hex
        status = 500
        started = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [
                    *message.get("headers", []),
                    (b"x-request-id", request_id.encode()),
                ]
            await send(message)

        with structlog.contextvars.bound_contextvars(request_id=request_id):
            try:
                await self.app(scope, receive, send_with_id)
            finally:
                if scope.get("path") not in QUIET_PATHS or status >= 500:
                    route = scope.get("route")
                    log.info(
                        "request",
                        method=scope.get("method"),
                        path=getattr(route, "path", scope.get("path")),
                        status=status,
                        duration_ms=round((time.perf_counter() - started) * 1000, 1),
                    )
