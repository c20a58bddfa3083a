"""Liveness and readiness probes."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from app import migrate
from app.api.deps import ServiceDep
from app.runtime import database_problem

router = APIRouter(tags=["operations"])


class Health(BaseModel):
    status: Literal["ok"] = "ok"


class Readiness(BaseModel):
    status: Literal["ready", "not_ready"]
    revision: str | None = Field(
        default=None, description="The migration revision the service runs on (when ready)."
    )
    reason: str | None = Field(default=None, description="Why the service is not ready.")


@router.get("/healthz", response_model=Health)
async def healthz() -> Health:
    """Liveness: the process is up and answering. Checks nothing else, so that a
    database outage does not get the process restarted in a loop."""
    return Health()


@router.get(
    "/readyz",
    response_model=Readiness,
    response_model_exclude_none=True,
    responses={503: {"model": Readiness, "description": "Not ready; `reason` says why."}},
)
async def readyz(service: ServiceDep) -> Readiness | JSONResponse:
    """Readiness: 200 when the database answers and its migrations are at the head this
    version needs (and, in a process that syncs, the sync engine is running); otherwise
    503 with the reason."""
    problem = await database_problem(service.db) or service.pipeline_problem
    if problem is not None:
        body = Readiness(status="not_ready", reason=problem)
        return JSONResponse(body.model_dump(exclude_none=True), status_code=503)
    return Readiness(status="ready", revision=migrate.head_revision())
