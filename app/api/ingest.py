"""Push mode: dossiers and progress records sent by provincial systems (scope `ingest`).

The endpoints are thin: they own the transaction (one per call, retried when a
concurrent call of the same unit won a race on the same dossier) and turn the ingest
stage's per-item results into the answer; what happens to each item is
``app.sync.ingest``'s business. The batch is refused as a whole only when the body
itself is wrong — not JSON, not the envelope, more than 500 items (422 naming the
field) or larger than :data:`MAX_BODY_BYTES` (413) — or the caller's push source is
paused (409). Otherwise it is 202 with one result per item, in request order.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Coroutine, Sequence
from datetime import UTC, datetime
from typing import Annotated, Any, Literal, Protocol

from fastapi import APIRouter, Request, Response
from fastapi.routing import APIRoute
from pydantic import BaseModel, ConfigDict, Field, PlainValidator
from pydantic.config import JsonDict
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.exceptions import HTTPException

from app.api.deps import ServiceDep
from app.api.errors import ERROR_RESPONSES, ApiError, ErrorBody
from app.api.security import Ingest
from app.auth import Principal
from app.db import transaction
from app.domain.dossier import Dossier
from app.domain.progress import ProgressRecord
from app.logs import get_logger
from app.runtime import Service
from app.sync.ingest import (
    MAX_ITEMS,
    IngestResult,
    ItemStatus,
    SourcePaused,
    ingest_dossiers,
    ingest_progress,
)

log = get_logger("dossier_sync.api.ingest")

# 500 items of ~20 KB each: far above any real dossier (a full one is ~2 KB), small
# enough that one call cannot make the process hold an unbounded body in memory.
MAX_BODY_BYTES = 10 * 1024 * 1024
# A unique-key race with a concurrent call of the same dossier, or a deadlock, rolls the
# whole batch back; running it again sees the other call's rows and answers correctly.
ATTEMPTS = 3
_RETRYABLE_SQLSTATES = frozenset({"40P01", "40001"})  # deadlock, serialization failure
PAUSED_RETRY_AFTER_S = 60


class _BoundedRequest(Request):
    """A request whose body may not exceed :data:`MAX_BODY_BYTES`: refused on its
    ``Content-Length`` before any byte is read, or as soon as a chunked body grows past
    it. (FastAPI's own ``max_body_size`` answers plain text; callers get the API's error
    shape here.)"""

    async def body(self) -> bytes:
        if not hasattr(self, "_body"):
            declared = self.headers.get("content-length", "")
            if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
                raise _too_large()
            chunks: list[bytes] = []
            size = 0
            async for chunk in self.stream():
                size += len(chunk)
                if size > MAX_BODY_BYTES:
                    raise _too_large()
                chunks.append(chunk)
            self._body = b"".join(chunks)
        return self._body


def _too_large() -> HTTPException:
    # An HTTPException, which FastAPI lets through while it reads the body (anything
    # else becomes a 400); the app's handler gives it the error shape.
    return HTTPException(413, f"the body is larger than {MAX_BODY_BYTES} bytes")


class _BoundedRoute(APIRoute):
    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def bounded(request: Request) -> Response:
            return await handler(_BoundedRequest(request.scope, request.receive))

        return bounded


router = APIRouter(prefix="/api/v1", tags=["ingest"], route_class=_BoundedRoute)


def _as_sent(value: Any) -> Any:
    # Items are judged one by one by the ingest stage (a broken item is `rejected`, not a
    # 422 for the whole batch); here they pass through untouched.
    return value


# Documented as the portal's record, validated as "anything": see _as_sent.
PushedDossier = Annotated[Any, PlainValidator(_as_sent, json_schema_input_type=Dossier)]
PushedProgress = Annotated[Any, PlainValidator(_as_sent, json_schema_input_type=ProgressRecord)]

_EXAMPLE_DOSSIER: JsonDict = {
    "MaHoSo": "000.00.53.H26-240125-00012",
    "MaTTHC": "1.000656",
    "TenTTHC": "Đăng ký khai sinh",
    "MaLinhVuc": "HT",
    "TenLinhVuc": "Hộ tịch",
    "KenhThucHien": 2,
    "ChuHoSo": "Nguyễn Văn An",
    "LoaiDoiTuong": 1,
    "TrangThaiHoSo": "4",
    "NgayNopHoSo": "20240125080000",
    "NgayTiepNhan": "20240125083000",
    "NgayHenTra": "20240208170000",
    "DonViXuLy": "UBND phường Bến Nghé",
}
_EXAMPLE_PROGRESS: JsonDict = {
    "MaHoSo": "000.00.53.H26-240125-00012",
    "NguoiXuLy": "Trần Thị Bình",
    "ChucDanh": "Chuyên viên",
    "ThoiDiemXuLy": "20240125093000",
    "NoiDungXuLy": "Chuyển xử lý",
    "TrangThai": "4",
}


class DossierBatch(BaseModel):
    """Dossiers in the portal's ``DongBoHoSoMC`` item format (portal-contract.md §3.1)."""

    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"dossiers": [_EXAMPLE_DOSSIER]}]}
    )

    dossiers: list[PushedDossier] = Field(
        max_length=MAX_ITEMS,
        description=f"At most {MAX_ITEMS} dossiers; a later item for the same MaHoSo is "
        "its newer state.",
    )


class ProgressBatch(BaseModel):
    """Progress records in the portal's ``CapNhatTienDoHoSoMC`` item format (§3.2)."""

    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"records": [_EXAMPLE_PROGRESS]}]}
    )

    records: list[PushedProgress] = Field(
        max_length=MAX_ITEMS,
        description=f"At most {MAX_ITEMS} progress records, of dossiers already sent.",
    )


class IngestFieldError(BaseModel):
    field: str = Field(
        description="Path of the offending field in the request body.",
        examples=["dossiers[2].NgayHenTra"],
    )
    code: str = Field(
        description="Stable, machine-readable: required, format, date_order, "
        "unknown_field, unknown_procedure, out_of_reach, dossier_not_stored, …",
        examples=["date_order"],
    )
    message: str = Field(description="For people, in Vietnamese.", examples=["phải ≥ NgayTiepNhan"])


class IngestItemResult(BaseModel):
    index: int = Field(description="Position of the item in the request.", examples=[0])
    status: Literal["accepted", "unchanged", "rejected"] = Field(
        description="`accepted`: stored, will be synced. `unchanged`: identical to what "
        "is stored (nothing to do). `rejected`: not stored, quarantined with `errors`."
    )
    MaHoSo: str | None = Field(
        default=None, description="The item's MaHoSo, when it has a well-formed one."
    )
    version: int | None = Field(
        default=None,
        description="Dossiers: the version now stored (on the last item of a dossier).",
    )
    errors: list[IngestFieldError] = Field(
        default_factory=list, description="Why it was rejected, most important first."
    )


class IngestAnswer(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "received": 2,
                    "accepted": 1,
                    "unchanged": 0,
                    "rejected": 1,
                    "results": [
                        {
                            "index": 0,
                            "status": "accepted",
                            "MaHoSo": "000.00.53.H26-240125-00012",
                            "version": 1,
                            "errors": [],
                        },
                        {
                            "index": 1,
                            "status": "rejected",
                            "MaHoSo": "000.00.53.H26-240125-00013",
                            "version": None,
                            "errors": [
                                {
                                    "field": "dossiers[1].NgayHenTra",
                                    "code": "date_order",
                                    "message": "phải ≥ NgayTiepNhan",
                                }
                            ],
                        },
                    ],
                }
            ]
        }
    )

    received: int
    accepted: int
    unchanged: int
    rejected: int
    results: list[IngestItemResult] = Field(description="One per item, in request order.")


RESPONSES: dict[int | str, dict[str, Any]] = {
    202: {"description": "Taken: one result per item, in request order."},
    **ERROR_RESPONSES,
    413: {"model": ErrorBody, "description": f"Body larger than {MAX_BODY_BYTES} bytes."},
    409: {
        "model": ErrorBody,
        "description": "The unit's push source is paused by an operator (a deliberate "
        "state, not a failure of the service: hence not 503); try again later.",
    },
}


@router.post(
    "/dossiers",
    status_code=202,
    response_model=IngestAnswer,
    responses=RESPONSES,
    summary=f"Push up to {MAX_ITEMS} dossiers",
)
async def push_dossiers(batch: DossierBatch, caller: Ingest, service: ServiceDep) -> IngestAnswer:
    """Store dossiers sent in the portal's format and sync them to the portal, exactly as
    if they had been polled from a source.

    Each item is answered on its own, in request order:

    - `accepted`: valid and stored as a new version; it will be pushed to the portal.
    - `unchanged`: identical to the stored state (sending again is harmless).
    - `rejected`: not stored, never pushed; `errors` name each offending field by its
      path in this body (`dossiers[3].NgayHenTra`). The item is kept in quarantine with
      its reason; sending it again valid resolves that.

    An item whose `MaHoSo` belongs to an agency outside the key's unit (or, for an
    agency key, outside its agency) is rejected with `out_of_reach`, whether or not that
    dossier exists; the other items of the batch are still taken. A later item for the
    same `MaHoSo` is that dossier's newer state.
    """
    result = await _ingest(service, caller, "dossiers", batch.dossiers, ingest_dossiers)
    return _answer(result)


@router.post(
    "/progress",
    status_code=202,
    response_model=IngestAnswer,
    responses=RESPONSES,
    summary=f"Push up to {MAX_ITEMS} progress records",
)
async def push_progress(batch: ProgressBatch, caller: Ingest, service: ServiceDep) -> IngestAnswer:
    """Store processing steps (`CapNhatTienDoHoSoMC` items) and deliver them to the
    portal after their dossier, oldest first.

    Answers as `POST /api/v1/dossiers` does, one result per record. A record is
    `unchanged` when the same step (dossier, `ThoiDiemXuLy`, `TrangThai`, `NguoiXuLy`,
    `NoiDungXuLy`) is already stored. A record of a dossier not stored here yet is
    rejected with `dossier_not_stored` (and quarantined): send the dossier first, then
    the record again.
    """
    result = await _ingest(service, caller, "records", batch.records, ingest_progress)
    return _answer(result)


class Stage(Protocol):
    """``ingest_dossiers`` or ``ingest_progress``."""

    def __call__(
        self,
        session: AsyncSession,
        caller: Principal,
        items: Sequence[object],
        now: datetime,
        *,
        field_name: str,
    ) -> Awaitable[IngestResult]: ...


async def _ingest(
    service: Service, caller: Principal, kind: str, items: Sequence[Any], stage: Stage
) -> IngestResult:
    for attempt in range(1, ATTEMPTS + 1):
        try:
            result = await _once(service.sessions, caller, kind, items, stage)
        except SourcePaused as paused:
            raise ApiError(
                409,
                "source_paused",
                f"{paused.name} is paused by an operator; nothing was stored",
                headers={"Retry-After": str(PAUSED_RETRY_AFTER_S)},
            ) from None
        except DBAPIError as error:
            if attempt == ATTEMPTS or not _lost_race(error):
                raise
            log.info("ingest retried after a concurrent write", kind=kind, attempt=attempt)
            continue
        break
    log.info(
        "ingest",
        kind=kind,
        source=result.source,
        received=len(items),
        accepted=result.count(ItemStatus.ACCEPTED),
        unchanged=result.count(ItemStatus.UNCHANGED),
        rejected=result.count(ItemStatus.REJECTED),
        reasons=result.reasons(),
    )
    # A call is to a push source what a poll is to a polled one: it counts in
    # dossier_sync_source_polls_total / _source_records_total under `push:<unit>`, and
    # (from the row's last_success_at) in _source_last_success_timestamp_seconds, which
    # is how an operator sees a provincial system that stopped sending.
    service.metrics.observer().source_poll(result.source, "ok", len(items))
    if result.changed and service.engine is not None:
        service.engine.wake()  # this process's pusher takes them now, not at its next look
    return result


async def _once(
    sessions: async_sessionmaker[AsyncSession],
    caller: Principal,
    kind: str,
    items: Sequence[Any],
    stage: Stage,
) -> IngestResult:
    async with transaction(sessions) as session:
        return await stage(session, caller, items, datetime.now(UTC), field_name=kind)


def _lost_race(error: DBAPIError) -> bool:
    if isinstance(error, IntegrityError):
        return True
    return getattr(error.orig, "pgcode", None) in _RETRYABLE_SQLSTATES


def _answer(result: IngestResult) -> IngestAnswer:
    return IngestAnswer(
        received=len(result.items),
        accepted=result.count(ItemStatus.ACCEPTED),
        unchanged=result.count(ItemStatus.UNCHANGED),
        rejected=result.count(ItemStatus.REJECTED),
        results=[
            IngestItemResult(
                index=item.index,
                status=item.status.value,
                MaHoSo=item.ma_ho_so,
                version=item.version,
                errors=[
                    IngestFieldError(field=e.field, code=e.code, message=e.message)
                    for e in item.errors
                ],
            )
            for item in result.items
        ],
    )
