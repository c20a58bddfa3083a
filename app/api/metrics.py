"""The Prometheus exposition of the process."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Request, Response
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4

from app.api.deps import ServiceDep
from app.logs import get_logger

router = APIRouter(tags=["operations"])
log = get_logger("dossier_sync.api.metrics")

REFRESH_TIMEOUT_S = 5.0  # a scrape answers with the last reading rather than hang


@router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE_PLAIN_0_0_4: {}}, "description": "Prometheus text"}},
)
async def metrics(service: ServiceDep, request: Request) -> Response:
    """Prometheus exposition of this process's registry: counters and the lag histogram
    of what this process did, the portal circuit breaker, and gauges read from the
    database (the same in every process; refreshed in the background every few seconds,
    and here when the last reading is older than that; the month's 766 indicators once a
    minute, in the background only). Text format 0.0.4, or OpenMetrics / text 1.0.0 when
    the scraper's `Accept` header asks for them."""
    collector = service.metrics.database
    age = collector.age_s()
    if age is None or age > service.refresh_interval_s:
        try:
            async with asyncio.timeout(REFRESH_TIMEOUT_S):
                await collector.refresh(service.sessions)
        except Exception as error:  # serve the last reading; its timestamp tells its age
            log.warning("metrics refresh failed", error=type(error).__name__)
    body, content_type = service.metrics.render(request.headers.get("accept"))
    return Response(body, headers={"Content-Type": content_type})
