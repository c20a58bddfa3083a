"""Reads: a dossier and its sync state, a unit's sync summary (scope `read`).

The handlers are thin: what a dossier's state is and how a unit's figures are counted
is ``app.sync.status``'s business (one rule for both, documented there). Reads run in a
plain session — nothing to commit.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel, ConfigDict, Field

from app.api.deps import ServiceDep
from app.api.errors import ERROR_RESPONSES, ApiError, ErrorBody
from app.api.reports import parse_period
from app.api.security import Reader
from app.domain.periods import MONTH_PATTERN
from app.models import SyncStatus
from app.sync.status import DossierView, Figures, UnitSync, dossier_view, unit_sync

router = APIRouter(prefix="/api/v1", tags=["read"])

PERIOD_PATTERN = MONTH_PATTERN  # years 1900–2099, as every period
NOT_FOUND_MESSAGE = "no such dossier within this key's reach"

State = Literal["pending", "synced", "quarantined", "dead"]
OutboxStatus = Literal["pending", "acknowledged", "synced", "dead"]
# The outbox's own statuses, with `acked` spelled out.
_SYNC_STATUS: dict[str, OutboxStatus] = {
    SyncStatus.PENDING.value: "pending",
    SyncStatus.ACKED.value: "acknowledged",
    SyncStatus.SYNCED.value: "synced",
    SyncStatus.DEAD.value: "dead",
}


# --- GET /api/v1/dossiers/{MaHoSo} ---------------------------------------------------------


class ProgressView(BaseModel):
    record: dict[str, Any] = Field(
        description="The step in the portal's `CapNhatTienDoHoSoMC` item format."
    )
    delivered: bool = Field(description="Whether the portal has acknowledged this step.")
    delivered_at: datetime | None = None


class SyncView(BaseModel):
    status: OutboxStatus = Field(
        description="The outbox's own status, finer than `state`: `acknowledged` means the "
        "portal accepted the latest version but read-back has not confirmed it yet "
        "(reported as `state: pending`, since an acknowledgement is not proof)."
    )
    portal_status: str | None = Field(
        description="`TrangThaiHoSo` of the version the portal last acknowledged.",
        examples=["4"],
    )
    pending_version: int = Field(description="The version the portal should end up holding.")
    acknowledged_version: int | None = None
    confirmed_version: int | None = Field(
        default=None, description="The version read-back found at the portal."
    )
    exists_at_portal: bool | None = Field(
        default=None, description="Whether the portal is known to hold it (null: unknown)."
    )
    attempts: int = Field(description="Push attempts since the last success or change.")
    last_error_code: int | None = Field(default=None, description="The portal's error code.")
    last_error: str | None = None
    pending_since: datetime | None = Field(
        default=None, description="Since when a change has waited for the portal."
    )
    next_attempt_at: datetime | None = None
    acknowledged_at: datetime | None = None
    confirmed_at: datetime | None = None


class DeadLetterView(BaseModel):
    service: str = Field(examples=["DongBoHoSoMC"])
    error_code: int | None = Field(examples=[-5])
    reason: str
    attempts: int
    created_at: datetime


class QuarantineView(BaseModel):
    source: str | None = Field(description="The source whose record was refused.")
    kind: Literal["dossier", "progress"] = Field(
        description="`dossier`: the dossier's record; `progress`: one of its steps."
    )
    reason_code: str = Field(examples=["unmapped_status"])
    reason: str
    errors: list[dict[str, Any]] = Field(description="Per field: path, code, message.")
    first_seen_at: datetime
    last_seen_at: datetime
    seen_count: int


class DossierAnswer(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "MaHoSo": "000.00.53.H26-240125-00012",
                    "state": "pending",
                    "portal_status": "4",
                    "attempts": 0,
                    "last_error": None,
                    "version": 2,
                    "source": "h26-igate",
                    "read_at": "2024-01-25T02:00:00Z",
                    "dossier": {"MaHoSo": "000.00.53.H26-240125-00012", "TrangThaiHoSo": "4"},
                    "progress": [],
                    "sync": {
                        "status": "acknowledged",
                        "portal_status": "4",
                        "pending_version": 2,
                        "acknowledged_version": 2,
                        "confirmed_version": 1,
                        "exists_at_portal": True,
                        "attempts": 0,
                        "last_error_code": None,
                        "last_error": None,
                        "pending_since": None,
                        "next_attempt_at": "2024-01-25T02:00:03Z",
                        "acknowledged_at": "2024-01-25T02:00:03Z",
                        "confirmed_at": "2024-01-25T01:10:00Z",
                    },
                    "dead_letter": None,
                    "quarantine": [],
                }
            ]
        }
    )

    MaHoSo: str
    state: State = Field(
        description="`synced`: read-back confirmed the latest version at the portal. "
        "`pending`: work to push, or acknowledged and not yet read back. `quarantined`: "
        "the source's latest record of it could not be made a valid portal record "
        "(see `quarantine`). `dead`: given up until a redrive (see `dead_letter`)."
    )
    portal_status: str | None = Field(
        description="`TrangThaiHoSo` the portal last acknowledged (null: none yet)."
    )
    attempts: int = Field(description="Push attempts of the current change.")
    last_error: str | None = Field(description="Why the last push or read-back failed.")
    version: int | None = Field(
        description="The stored version (bumped on each content change); null when the "
        "dossier was never stored valid."
    )
    source: str | None = Field(description="The source it was last read from.")
    read_at: datetime | None = Field(description="When the stored version was read.")
    dossier: dict[str, Any] | None = Field(
        description="The dossier as last known valid from its source, in the portal's "
        "`DongBoHoSoMC` format; null when only its quarantined records exist."
    )
    progress: list[ProgressView] = Field(description="Its steps, oldest first.")
    sync: SyncView | None = Field(description="The outbox row (null: never stored).")
    dead_letter: DeadLetterView | None = Field(description="The open dead letter, if dead.")
    quarantine: list[QuarantineView] = Field(
        description="Open quarantine entries of the dossier and its steps."
    )


NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {
        "model": ErrorBody,
        "description": "No such dossier within the key's reach — the same answer whether "
        "it does not exist or belongs to another unit or agency.",
    }
}


@router.get(
    "/dossiers/{MaHoSo:path}",
    response_model=DossierAnswer,
    responses={**ERROR_RESPONSES, **NOT_FOUND},
    summary="A dossier and its sync state",
)
async def get_dossier(
    ma_ho_so: Annotated[
        str, Path(alias="MaHoSo", description="The dossier's code (agency code, `-`, number).")
    ],
    caller: Reader,
    service: ServiceDep,
) -> DossierAnswer:
    """The dossier as last known from its source, its progress records, and where it
    stands with the portal: `state` (`pending`, `synced`, `quarantined`, `dead`), the
    status the portal acknowledged, attempts and the last error, with the outbox's
    detail under `sync`.

    Only read-back-confirmed counts as `synced`: a dossier the portal acknowledged but
    that read-back has not checked yet is `pending` (`sync.status: acknowledged`). A
    stored dossier whose newer record at the source was refused is `quarantined`, with
    the older stored version still shown. A dossier never stored valid is found too, as
    `quarantined` with its reasons.

    A dossier outside the key's unit (or agency) is answered exactly as one that does not
    exist: 404 with the same body.
    """
    async with service.sessions() as session:
        found = await dossier_view(session, caller, ma_ho_so)
    if found is None:
        raise ApiError(404, "not_found", NOT_FOUND_MESSAGE)
    return _dossier_answer(found)


def _dossier_answer(view: DossierView) -> DossierAnswer:
    row, sync = view.row, view.sync
    letter = view.dead_letter
    return DossierAnswer(
        MaHoSo=view.ma_ho_so,
        state=view.state.value,
        portal_status=sync.acked_status if sync else None,
        attempts=sync.attempts if sync else 0,
        last_error=sync.last_error if sync else None,
        version=row.version if row else None,
        source=view.source_names.get(row.source_id) if row and row.source_id else None,
        read_at=row.changed_at if row else None,
        dossier=dict(row.state) if row else None,
        progress=[
            ProgressView(
                record=dict(step.record),
                delivered=step.acked_at is not None,
                delivered_at=step.acked_at,
            )
            for step in view.progress
        ],
        sync=None
        if sync is None
        else SyncView(
            status=_SYNC_STATUS.get(sync.status, "pending"),
            portal_status=sync.acked_status,
            pending_version=sync.pending_version,
            acknowledged_version=sync.acked_version,
            confirmed_version=sync.confirmed_version,
            exists_at_portal=sync.exists_at_portal,
            attempts=sync.attempts,
            last_error_code=sync.last_error_code,
            last_error=sync.last_error,
            pending_since=sync.pending_since,
            next_attempt_at=sync.next_attempt_at if sync.pending_since else None,
            acknowledged_at=sync.acked_at,
            confirmed_at=sync.confirmed_at,
        ),
        dead_letter=None
        if letter is None
        else DeadLetterView(
            service=letter.service,
            error_code=letter.error_code,
            reason=letter.reason,
            attempts=letter.attempts,
            created_at=letter.created_at,
        ),
        quarantine=[
            QuarantineView(
                source=view.source_names.get(entry.source_id),
                kind="progress" if entry.kind == "progress" else "dossier",
                reason_code=entry.reason_code,
                reason=entry.reason,
                errors=list(entry.errors),
                first_seen_at=entry.first_seen_at,
                last_seen_at=entry.last_seen_at,
                seen_count=entry.seen_count,
            )
            for entry in view.quarantine
        ],
    )


# --- GET /api/v1/units/{code}/sync ---------------------------------------------------------


class SyncFigures(BaseModel):
    received: int = Field(
        description="Dossiers received (`NgayTiepNhan`) in the period and stored; the "
        "sum of the four states below."
    )
    synced: int = Field(description="Of those, confirmed at the portal by read-back.")
    pending: int = Field(description="Work to push, or acknowledged awaiting read-back.")
    acknowledged: int = Field(
        description="Of `pending`, acknowledged by the portal and awaiting read-back."
    )
    quarantined: int = Field(description="Of those, the source's latest record refused.")
    dead: int = Field(description="Of those, given up until a redrive.")
    sync_rate: float | None = Field(
        description="766 indicator 1.4, as the 766 report computes it: "
        "`sync_rate_numerator / sync_rate_denominator`; null when the denominator is 0 "
        "(not 0, not 1).",
        examples=[0.97],
    )
    sync_rate_numerator: int = Field(
        description="1.4's numerator: dossiers received in the period (statuses 1 and 3 "
        "left out, as the indicator says) whose latest status and result the portal "
        "holds, confirmed by read-back. At most `synced`."
    )
    sync_rate_denominator: int = Field(
        description="1.4's denominator: the larger of the dossiers received in the "
        "period at the source (statuses 1 and 3 left out) and those the portal holds."
    )
    oldest_pending_age_s: float | None = Field(
        description="Age in seconds of the oldest change not yet acknowledged by the "
        "portal among the period's pending dossiers; null when there is none.",
        examples=[42.5],
    )


class AgencySyncFigures(SyncFigures):
    agency: str = Field(examples=["000.00.53.H26"])


class UnitSyncAnswer(SyncFigures):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "unit": "000.00.00.H26",
                    "agency": None,
                    "period": "2024-05",
                    "since": "2024-04-30T17:00:00Z",
                    "until": "2024-05-31T17:00:00Z",
                    "as_of": "2024-05-20T03:00:00Z",
                    "received": 120,
                    "synced": 110,
                    "pending": 6,
                    "acknowledged": 2,
                    "quarantined": 3,
                    "dead": 1,
                    "sync_rate": 0.9244,
                    "sync_rate_numerator": 110,
                    "sync_rate_denominator": 119,
                    "oldest_pending_age_s": 42.5,
                    "quarantined_never_stored": 2,
                    "agencies": [],
                }
            ]
        }
    )

    unit: str
    agency: str | None = Field(
        description="Set when the key is one agency's: the figures are that agency's only."
    )
    period: str = Field(description="The month, Asia/Ho_Chi_Minh time.", examples=["2024-05"])
    since: datetime = Field(description="Start of the period (local midnight), in UTC.")
    until: datetime = Field(description="End of the period (exclusive), in UTC.")
    as_of: datetime = Field(description="When the figures were read.")
    quarantined_never_stored: int = Field(
        description="Dossiers held in quarantine with no valid version ever stored, "
        "whatever the period: their `NgayTiepNhan` could not be trusted, so they are in "
        "no period's `received`."
    )
    agencies: list[AgencySyncFigures] = Field(description="The same figures per agency.")


PERIOD_DESCRIPTION = (
    "A calendar month `YYYY-MM` in Asia/Ho_Chi_Minh time (default: the current one). A "
    "dossier counts in the month of its `NgayTiepNhan`: 00:00 on the 1st, Vietnamese "
    "time, starts a month."
)


@router.get(
    "/units/{code}/sync",
    response_model=UnitSyncAnswer,
    responses=ERROR_RESPONSES,
    summary="A unit's sync figures for a month",
)
async def get_unit_sync(
    code: Annotated[
        str,
        Path(
            description="The top-level unit's code.",
            pattern=r"^000\.00\.00\.[GH]\d{2}$",
            examples=["000.00.00.H26"],
        ),
    ],
    caller: Reader,
    service: ServiceDep,
    period: Annotated[
        str | None,
        Query(pattern=PERIOD_PATTERN, description=PERIOD_DESCRIPTION, examples=["2024-05"]),
    ] = None,
) -> UnitSyncAnswer:
    """Of the unit's dossiers received (`NgayTiepNhan`) in the period: how many are
    synced, pending, quarantined and dead, the sync rate (766 indicator 1.4 exactly as
    `GET /api/v1/reports/766` computes it, the same number as the `dossier_sync_ratio`
    gauge for the current month) and the age of the oldest change still waiting for the
    portal, for the unit and per agency.

    A dossier counts as synced only when read-back confirmed its latest version and its
    latest source record is not in quarantine. The rate follows the indicator, so it
    counts fewer dossiers than `received`: statuses 1 and 3 are left out, and the
    portal's own count of the period's dossiers is the denominator when it is larger;
    its numerator and denominator are given.

    Needs a key of the unit. An agency's key gets its agency's figures only (`agency`
    says so); another unit's key gets 403.
    """
    if code != caller.unit:
        raise ApiError(403, "forbidden", f"unit {code} is outside this key's reach")
    now = datetime.now(UTC)
    chosen = parse_period(period, now)
    async with service.sessions() as session:
        figures = await unit_sync(session, unit=code, agency=caller.agency, period=chosen, now=now)
    return _unit_answer(figures)


def _figures(figures: Figures, now: datetime) -> dict[str, Any]:
    oldest = figures.oldest_pending_since
    return {
        "received": figures.received,
        "synced": figures.synced,
        "pending": figures.pending,
        "acknowledged": figures.acknowledged,
        "quarantined": figures.quarantined,
        "dead": figures.dead,
        "sync_rate": figures.rate,
        "sync_rate_numerator": 0 if figures.sync is None else figures.sync.numerator,
        "sync_rate_denominator": 0 if figures.sync is None else figures.sync.denominator,
        "oldest_pending_age_s": None
        if oldest is None
        else max(0.0, (now - oldest).total_seconds()),
    }


def _unit_answer(found: UnitSync) -> UnitSyncAnswer:
    return UnitSyncAnswer(
        unit=found.unit,
        agency=found.agency,
        period=str(found.period),
        since=found.since,
        until=found.until,
        as_of=found.now,
        quarantined_never_stored=found.never_stored,
        agencies=[
            AgencySyncFigures(agency=agency, **_figures(figures, found.now))
            for agency, figures in sorted(found.agencies.items())
        ],
        **_figures(found.total, found.now),
    )
