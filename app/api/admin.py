"""Operator actions: sources, quarantine, dead letters, read-back (scope `admin`).

Every route is limited to the key's unit (or agency); how each action reaches an engine
that may run in another process is ``app.sync.admin``'s business (documented there).
Writes run in one transaction per request (``app.db.transaction``), reads in a plain
session.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel, ConfigDict, Field, JsonValue, StrictBool, StrictInt

from app.api.deps import ServiceDep
from app.api.errors import ERROR_RESPONSES, ApiError, ErrorBody, IsoDateTime
from app.api.security import Admin
from app.db import transaction
from app.domain.dates import VN_TZ
from app.models import DeadLetter, QuarantineEntry
from app.sync import admin
from app.sync.admin import Conflict, Forbidden, NotFound, SourceInfo

router = APIRouter(prefix="/api/v1/admin", tags=["admin"])

MAX_PAGE = 500


def utcnow() -> datetime:
    return datetime.now(UTC)


@contextmanager
def _answers() -> Iterator[None]:
    """The service's refusals as HTTP answers."""
    try:
        yield
    except NotFound as error:
        raise ApiError(404, "not_found", str(error)) from None
    except Forbidden as error:
        raise ApiError(403, "forbidden", str(error)) from None
    except Conflict as error:
        raise ApiError(409, "conflict", str(error)) from None


def _responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    described = {
        404: "Not found within the key's reach.",
        409: "Not applicable now (for example: the source is paused).",
    }
    return {
        **ERROR_RESPONSES,
        **{code: {"model": ErrorBody, "description": described[code]} for code in codes},
    }


def _local(value: datetime | None) -> datetime | None:
    """A time without a zone is Vietnamese local time, as operators read them."""
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=VN_TZ)


# --- sources -------------------------------------------------------------------------------


class SourceAnswer(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "name": "h26-igate",
                    "dialect": "igate",
                    "agencies": ["000.00.00.H26"],
                    "poll_interval_s": 2.0,
                    "paused": False,
                    "controllable": True,
                    "last_poll_at": "2024-05-20T03:00:00Z",
                    "last_success_at": "2024-05-20T03:00:00Z",
                    "consecutive_failures": 0,
                    "last_error": None,
                    "lease_owner": "worker-host-4711-a1b2c3",
                    "lease_expires_at": "2024-05-20T03:00:30Z",
                    "poll_requested_at": None,
                }
            ]
        }
    )

    name: str
    dialect: str = Field(description="opencps, igate, dvclt, or push (records sent to the API).")
    agencies: list[str] = Field(description="The units or agencies it serves.")
    poll_interval_s: float | None = Field(description="Null for a push source.")
    paused: bool
    controllable: bool = Field(
        description="Whether this key may pause and resume it: every agency it serves is "
        "within the key's reach."
    )
    last_poll_at: datetime | None
    last_success_at: datetime | None
    consecutive_failures: int
    last_error: str | None
    lease_owner: str | None = Field(description="The process polling it now.")
    lease_expires_at: datetime | None
    poll_requested_at: datetime | None = Field(
        description="A poll-now request not yet taken up by a poll."
    )


def _source_answer(source: SourceInfo) -> SourceAnswer:
    row = source.row
    return SourceAnswer(
        name=source.name,
        dialect=source.dialect,
        agencies=list(source.agencies),
        poll_interval_s=source.poll_interval_s,
        paused=row.paused if row else False,
        controllable=source.controllable,
        last_poll_at=row.last_poll_at if row else None,
        last_success_at=row.last_success_at if row else None,
        consecutive_failures=row.consecutive_failures if row else 0,
        last_error=row.last_error if row else None,
        lease_owner=row.lease_owner if row else None,
        lease_expires_at=row.lease_expires_at if row else None,
        poll_requested_at=row.poll_requested_at if row else None,
    )


SourceName = Annotated[str, Path(description="The source's configured name, or `push:<unit>`.")]


@router.get("/sources", response_model=list[SourceAnswer], responses=ERROR_RESPONSES)
async def list_sources(caller: Admin, service: ServiceDep) -> list[SourceAnswer]:
    """The sources serving the key's unit (for an agency key: listing its agency or its
    whole unit), and the unit's push source, with their health: paused, last poll, last
    success, consecutive failures, last error, and which process holds the poll lease."""
    async with service.sessions() as session:
        found = await admin.visible_sources(session, service.settings, caller)
    return [_source_answer(s) for s in found]


@router.post("/sources/{name}/pause", response_model=SourceAnswer, responses=_responses(404))
async def pause_source(name: SourceName, caller: Admin, service: ServiceDep) -> SourceAnswer:
    """Stop polling the source (or, for a push source, refuse what is pushed with 503)
    until it is resumed. Takes effect at the source's next poll, in whichever process
    polls it; a poll in flight finishes its pages. Needs a key that covers every agency
    the source serves (403 otherwise: it would stop other units' dossiers too)."""
    with _answers():
        async with transaction(service.sessions) as session:
            found = await admin.set_paused(
                session, service.settings, caller, name, paused=True, now=utcnow()
            )
    return _source_answer(found)


@router.post("/sources/{name}/resume", response_model=SourceAnswer, responses=_responses(404))
async def resume_source(name: SourceName, caller: Admin, service: ServiceDep) -> SourceAnswer:
    """Poll the source again, starting with a poll now (it catches up from where it
    stopped: its cursor did not move while paused). Same reach rule as pause."""
    with _answers():
        async with transaction(service.sessions) as session:
            found = await admin.set_paused(
                session, service.settings, caller, name, paused=False, now=utcnow()
            )
    return _source_answer(found)


@router.post(
    "/sources/{name}/poll",
    status_code=202,
    response_model=SourceAnswer,
    responses=_responses(404, 409),
)
async def poll_source(name: SourceName, caller: Admin, service: ServiceDep) -> SourceAnswer:
    """Ask for a poll now instead of at the end of the poll interval (or of a failure
    back-off). The engine polling the source — in this process or a worker — notices the
    request within about a second and polls; `poll_requested_at` is cleared when that poll
    starts. 409 for a paused source or a push source."""
    with _answers():
        async with transaction(service.sessions) as session:
            found = await admin.request_poll(session, service.settings, caller, name, utcnow())
    return _source_answer(found)


# --- quarantine ----------------------------------------------------------------------------


class QuarantineItem(BaseModel):
    id: int
    source: str | None
    record_key: str = Field(
        description="The record's key at its source.", examples=["dossier:4711"]
    )
    kind: Literal["dossier", "progress"]
    MaHoSo: str | None = Field(description="Null when the record's code could not be read.")
    unit: str | None
    agency: str | None
    reason_code: str = Field(examples=["unmapped_status"])
    reason: str
    errors: list[dict[str, Any]] = Field(description="Per field: path, code, message.")
    first_seen_at: datetime
    last_seen_at: datetime
    seen_count: int


class QuarantineList(BaseModel):
    total: int = Field(description="Open entries matching the filters.")
    page: int
    limit: int
    items: list[QuarantineItem]


def _quarantine_item(entry: QuarantineEntry, names: dict[int, str]) -> QuarantineItem:
    return QuarantineItem(
        id=entry.id,
        source=names.get(entry.source_id),
        record_key=entry.record_key,
        kind="progress" if entry.kind == "progress" else "dossier",
        MaHoSo=entry.ma_ho_so,
        unit=entry.unit,
        agency=entry.agency,
        reason_code=entry.reason_code,
        reason=entry.reason,
        errors=list(entry.errors),
        first_seen_at=entry.first_seen_at,
        last_seen_at=entry.last_seen_at,
        seen_count=entry.seen_count,
    )


Page = Annotated[int, Query(ge=1, description="1 for the first page.")]
Limit = Annotated[int, Query(ge=1, le=MAX_PAGE, description=f"Items a page, ≤ {MAX_PAGE}.")]


@router.get("/quarantine", response_model=QuarantineList, responses=_responses(404))
async def list_quarantine(
    *,
    caller: Admin,
    service: ServiceDep,
    source: Annotated[str | None, Query(description="Only this source's records.")] = None,
    reason: Annotated[
        str | None, Query(description="Only this reason code.", examples=["unmapped_status"])
    ] = None,
    page: Page = 1,
    limit: Limit = 100,
) -> QuarantineList:
    """Open quarantine entries of the key's dossiers (its unit's, or its agency's), most
    recently seen first: the records that could not become valid portal records, with the
    reason and each offending field. The raw records are not shown (personal data); the
    errors name the fields. A unit key also sees records whose code could not be read,
    from the sources that serve only its unit. A `source` outside the key's reach: 403."""
    with _answers():
        async with service.sessions() as session:
            found = await admin.list_quarantine(
                session,
                service.settings,
                caller,
                source=source,
                reason=reason,
                limit=limit,
                offset=(page - 1) * limit,
            )
    return QuarantineList(
        total=found.total,
        page=page,
        limit=limit,
        items=[_quarantine_item(e, found.source_names) for e in found.entries],
    )


class RetryBody(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"source": None}]})

    source: str | None = Field(
        default=None, description="Only this source (default: every source of the key)."
    )


class RetryAnswer(BaseModel):
    scheduled: list[str] = Field(
        description="Sources whose next poll (asked for now) re-evaluates their quarantine."
    )
    waiting: list[str] = Field(
        description="Paused sources: re-evaluated at the first poll after resume."
    )


@router.post(
    "/quarantine/retry",
    status_code=202,
    response_model=RetryAnswer,
    responses=_responses(404, 409),
)
async def retry_quarantine(
    caller: Admin, service: ServiceDep, body: RetryBody | None = None
) -> RetryAnswer:
    """Re-evaluate quarantined records: the next poll of each of the key's polled
    sources (or the one named) runs its open entries through normalisation again — with
    the current status mapping, procedure catalogue and configuration — exactly as after
    a status-map change, and asks for that poll now. What is valid now is stored and
    synced, and its entry resolved; the rest stays quarantined. It runs inside the
    source's poll, under its lease, so it never races the poller writing the same
    records. Records of a push source are not re-read: send them again."""
    with _answers():
        async with transaction(service.sessions) as session:
            found = await admin.retry_quarantine(
                session, service.settings, caller, body.source if body else None, utcnow()
            )
    return RetryAnswer(scheduled=found.scheduled, waiting=found.waiting)


# --- dead letters --------------------------------------------------------------------------


class DeadLetterItem(BaseModel):
    id: int
    MaHoSo: str
    unit: str
    agency: str
    service: str = Field(examples=["DongBoHoSoMC"])
    version: int | None
    error_code: int | None = Field(description="The portal's code; null: no portal answer.")
    reason: str
    attempts: int
    created_at: datetime


class DeadLetterList(BaseModel):
    total: int = Field(description="Open dead letters matching the filters.")
    page: int
    limit: int
    items: list[DeadLetterItem]


def _letter(letter: DeadLetter) -> DeadLetterItem:
    return DeadLetterItem(
        id=letter.id,
        MaHoSo=letter.ma_ho_so,
        unit=letter.unit,
        agency=letter.agency,
        service=letter.service,
        version=letter.version,
        error_code=letter.error_code,
        reason=letter.reason,
        attempts=letter.attempts,
        created_at=letter.created_at,
    )


TIME_HELP = "ISO 8601; a time without a zone is Vietnamese local time."


class DeadLetterFilters(BaseModel):
    """Which open dead letters: every given condition holds, always within the key."""

    model_config = ConfigDict(extra="forbid")

    unit: str | None = Field(
        default=None, description="Must be the key's unit (another unit: 403)."
    )
    agency: str | None = Field(default=None, description="An agency within the key (outside: 403).")
    error_code: StrictInt | None = Field(default=None, description="The portal's error code.")
    since: IsoDateTime | None = Field(
        default=None, description=f"Given up at or after. {TIME_HELP}"
    )
    until: IsoDateTime | None = Field(default=None, description=f"Given up before. {TIME_HELP}")


# At least one filter, or all: true — so that the schema says what the endpoint refuses,
# and clients (and schemathesis) know it up front.
ANY_FILTER_OR_ALL: list[JsonValue] = [
    {"required": [name], "properties": {name: {"type": kind}}}
    for name, kind in (
        ("unit", "string"),
        ("agency", "string"),
        ("error_code", "integer"),
        ("since", "string"),
        ("until", "string"),
    )
]
ANY_FILTER_OR_ALL.append({"required": ["all"], "properties": {"all": {"const": True}}})


class RedriveBody(DeadLetterFilters):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"error_code": -5}, {"all": True}],
            "anyOf": ANY_FILTER_OR_ALL,
        },
    )

    all: StrictBool = Field(
        default=False,
        description="Redrive every open dead letter of the key: needed when no filter is "
        "given, so that an empty body cannot redrive everything by accident.",
    )


class RedriveAnswer(BaseModel):
    redriven: int = Field(description="Dossiers queued again.")
    dossiers: list[str] = Field(description="Their codes.")


@router.get("/dead-letters", response_model=DeadLetterList, responses=ERROR_RESPONSES)
async def list_dead_letters(
    *,
    caller: Admin,
    service: ServiceDep,
    unit: Annotated[str | None, Query(description="Must be the key's unit.")] = None,
    agency: Annotated[str | None, Query(description="An agency within the key.")] = None,
    error_code: Annotated[int | None, Query(description="The portal's error code.")] = None,
    since: Annotated[
        IsoDateTime | None, Query(description=f"Given up at or after. {TIME_HELP}")
    ] = None,
    until: Annotated[IsoDateTime | None, Query(description=f"Given up before. {TIME_HELP}")] = None,
    page: Page = 1,
    limit: Limit = 100,
) -> DeadLetterList:
    """Open dead letters of the key's unit (or agency), newest first: pushes given up
    on, with the portal's error code and the reason. A filter naming another unit, or an
    agency outside the key, is refused with 403 rather than answered empty."""
    with _answers():
        where = admin.dead_letter_filter(
            caller,
            unit=unit,
            agency=agency,
            error_code=error_code,
            since=_local(since),
            until=_local(until),
        )
    async with service.sessions() as session:
        letters, total = await admin.list_dead_letters(
            session, where, limit=limit, offset=(page - 1) * limit
        )
    return DeadLetterList(
        total=total, page=page, limit=limit, items=[_letter(letter) for letter in letters]
    )


@router.post("/dead-letters/redrive", response_model=RedriveAnswer, responses=ERROR_RESPONSES)
async def redrive_dead_letters(
    body: RedriveBody, caller: Admin, service: ServiceDep
) -> RedriveAnswer:
    """Close the matching open dead letters (same filters as the list) and queue their
    dossiers again with a fresh attempt budget and no assumption about what the portal
    holds; a pusher in any process takes them at its next round. Limited to the key's
    unit or agency; a filter naming another unit, or an agency outside the key: 403. With
    no filter at all, `"all": true` is required (422 otherwise)."""
    filters = (body.unit, body.agency, body.error_code, body.since, body.until)
    if all(value is None for value in filters) and not body.all:
        raise ApiError(
            422,
            "validation_error",
            "invalid request: all",
            [
                {
                    "field": "all",
                    "message": "give a filter (unit, agency, error_code, since, "
                    "until) or all: true",
                }
            ],
        )
    with _answers():
        where = admin.dead_letter_filter(
            caller,
            unit=body.unit,
            agency=body.agency,
            error_code=body.error_code,
            since=_local(body.since),
            until=_local(body.until),
        )
    async with transaction(service.sessions) as session:
        codes = await admin.redrive_dead_letters(session, where, utcnow())
    if codes and service.engine is not None:
        service.engine.wake()  # this process's pusher takes them now
    return RedriveAnswer(redriven=len(codes), dossiers=codes)


# --- read-back -----------------------------------------------------------------------------


class ReconcileAnswer(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "unit": "000.00.00.H26",
                    "checked": 40,
                    "confirmed": 38,
                    "requeued": 2,
                    "conflicts": 0,
                    "errors": 0,
                }
            ]
        }
    )

    unit: str
    checked: int = Field(description="Acknowledged dossiers read back.")
    confirmed: int = Field(description="Found as pushed: now synced.")
    requeued: int = Field(description="Missing or different at the portal: pushed again.")
    conflicts: int = Field(description="The portal ahead of the source: dead letters.")
    errors: int = Field(description="Portal calls that failed (try again later).")


@router.post("/reconcile", response_model=ReconcileAnswer, responses=_responses(409))
async def reconcile(caller: Admin, service: ServiceDep) -> ReconcileAnswer:
    """Read back the unit's acknowledged dossiers from the portal now (oldest first, up
    to `sync.reconcile_batch`), rather than at the engine's next read-back round, and
    answer what was found. Runs in this process, with its engine's portal client in
    `serve` (or a client of the configured portal otherwise); workers elsewhere keep their
    own schedule, and reading a dossier back twice is harmless. The synced dossiers'
    rolling re-check stays with the engines. Needs a unit-wide key (read-back runs per
    unit): an agency key gets 403; 409 when the unit has no portal account."""
    with _answers():
        report = await admin.read_back(service.sessions, service.settings, service.engine, caller)
    return ReconcileAnswer(
        unit=caller.unit,
        checked=report.checked,
        confirmed=report.confirmed,
        requeued=report.requeued,
        conflicts=report.conflicts,
        errors=report.errors,
    )
