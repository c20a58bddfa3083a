"""The mock-only control API (contract §9), under ``/_mock``.

Off unless the mock was started with an admin token; then every call needs
``Authorization: Bearer <admin token>``.
"""

import json
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

from fastapi import APIRouter, Depends, Header, HTTPException, Query, Request, Response
from fastapi.responses import StreamingResponse
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from app.domain.validation import RecordInvalid
from app.mockportal.conformance import conformance_report
from app.mockportal.core import utcnow
from app.mockportal.faults import FaultRuleIn
from app.mockportal.journal import JournalFilter, Outcome, to_ndjson

if TYPE_CHECKING:  # the app module imports this one
    from app.mockportal.app import MockPortal

_STRICT = ConfigDict(extra="forbid")


class ResetRequest(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"scope": "all"},
                {"scope": "unit", "unit": "000.00.00.H26"},
                {"scope": "agency", "agency": "000.00.53.H26"},
            ]
        },
    )

    scope: Literal["all", "unit", "agency", "journal", "faults", "sessions"] = Field(
        description="all: dossiers, stats, sessions, journal, faults and rate-limit buckets "
        "(the catalogue stays); unit: one unit's dossiers, stats and sessions; agency: the "
        "dossiers of one agency (MaHoSo prefix); journal; faults; sessions"
    )
    unit: str | None = Field(default=None, description="Required with scope unit.")
    agency: str | None = Field(default=None, description="Required with scope agency.")


class Procedure(BaseModel):
    model_config = _STRICT

    MaTTHC: str
    TenTTHC: str
    MaLinhVuc: str
    TenLinhVuc: str
    ThoiHanGiaiQuyet: int = Field(ge=0, description="working days")
    CoPhiLePhi: Literal[0, 1]
    DuDieuKienTrucTuyenToanTrinh: Literal[0, 1]


class Agency(BaseModel):
    model_config = _STRICT

    MaCoQuan: str = Field(pattern=r"^\d{3}\.\d{2}\.\d{2}\.[GH]\d{2}$")
    TenCoQuan: str
    Cap: Literal["BO", "TINH"]


class Account(BaseModel):
    model_config = _STRICT

    unit: str = Field(pattern=r"^000\.00\.00\.[GH]\d{2}$")
    username: str = Field(min_length=1)
    password: str = Field(min_length=1)


class Catalogue(BaseModel):
    """Procedures, agencies and accounts; a seed replaces all three."""

    model_config = _STRICT

    procedures: list[Procedure] = Field(default_factory=list)
    agencies: list[Agency] = Field(default_factory=list)
    accounts: list[Account] = Field(default_factory=list)


class SeedRequest(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"file": "/srv/mock/seed.json"},
                {
                    "catalogue": {
                        "procedures": [
                            {
                                "MaTTHC": "1.000656",
                                "TenTTHC": "Đăng ký khai sinh",
                                "MaLinhVuc": "HT",
                                "TenLinhVuc": "Hộ tịch",
                                "ThoiHanGiaiQuyet": 1,
                                "CoPhiLePhi": 0,
                                "DuDieuKienTrucTuyenToanTrinh": 1,
                            }
                        ],
                        "agencies": [
                            {"MaCoQuan": "000.00.00.H26", "TenCoQuan": "UBND tỉnh", "Cap": "TINH"}
                        ],
                        "accounts": [
                            {"unit": "000.00.00.H26", "username": "h26", "password": "secret"}
                        ],
                    }
                },
            ]
        },
    )

    file: Path | None = Field(default=None, description="A JSON seed file on the mock's host.")
    catalogue: Catalogue | None = None


class DossierWrite(BaseModel):
    model_config = _STRICT

    dossier: dict[str, Any] = Field(description="The dossier in portal format (validated).")
    progress: list[dict[str, Any]] | None = Field(
        default=None,
        description="Progress records to store with it; omitted: keep the stored ones.",
    )


class SettingsUpdate(BaseModel):
    model_config = _STRICT

    session_ttl_s: float | None = Field(default=None, gt=0)
    rate_per_s: float | None = Field(default=None, gt=0)
    burst: int | None = Field(default=None, ge=1)
    journal_capacity: int | None = Field(default=None, ge=1)


def load_seed_file(path: Path) -> dict[str, Any]:
    """Read and check a seed file (the same shape as ``Catalogue``)."""
    data = json.loads(path.read_text(encoding="utf-8"))
    return Catalogue.model_validate(data).model_dump(mode="json")


def _portal(request: Request) -> "MockPortal":
    portal: MockPortal = request.app.state.portal
    return portal


Portal = Annotated["MockPortal", Depends(_portal)]


def _admin(portal: Portal, authorization: Annotated[str | None, Header()] = None) -> None:
    token = portal.settings.admin_token
    if token is None:
        raise HTTPException(404, "control API is off: start the mock with --admin-token")
    scheme, _, given = (authorization or "").partition(" ")
    # Compared as bytes: compare_digest refuses non-ASCII str (a 500 instead of a 401).
    # The scheme name is case-insensitive (RFC 9110 §11.1).
    if scheme.lower() != "bearer" or not secrets.compare_digest(given.encode(), token.encode()):
        raise HTTPException(
            401,
            "Authorization: Bearer <admin token> required",
            headers={"WWW-Authenticate": "Bearer"},
        )


# Every handler is ``async def``: it then runs on the event loop, atomically with respect
# to the contract requests (a plain ``def`` would run in a worker thread and race them:
# a dict changing size mid-iteration, two SQLite transactions on one connection).
router = APIRouter(
    prefix="/_mock",
    tags=["control"],
    dependencies=[Depends(_admin)],
    responses={
        401: {"description": "Missing or wrong admin token"},
        404: {"description": "Control API off (no --admin-token), or no such object"},
    },
)


class JournalQuery(BaseModel):
    """Journal filters; every given one must hold."""

    model_config = _STRICT

    unit: str | None = Field(default=None, description="the calling unit (dstcode)")
    agency: str | None = Field(
        default=None, description="a unit or agency: the caller, or owning any item"
    )
    ma_ho_so: str | None = None
    outcome: Outcome | None = None
    service: str | None = None
    faulted: bool | None = None
    # Aware only: a naive time cannot be compared with the journal's (UTC) times.
    since: AwareDatetime | None = None
    until: AwareDatetime | None = None
    limit: int = Field(default=1000, ge=1, le=100_000)
    offset: int = Field(default=0, ge=0)

    def filter(self) -> JournalFilter:
        return JournalFilter(
            self.unit,
            self.agency,
            self.ma_ho_so,
            self.outcome,
            self.service,
            self.faulted,
            self.since,
            self.until,
        )


@router.post("/reset")
async def reset(portal: Portal, request: ResetRequest) -> dict[str, Any]:
    """Reset everything, one unit's or one agency's data, the journal, the fault rules or
    the sessions."""
    core = portal.core
    removed: dict[str, int] = {}
    if request.scope == "unit":
        if request.unit is None:
            raise HTTPException(422, "unit is required with scope unit")
        removed["dossiers"] = core.reset_dossiers(request.unit)
        removed["sessions"] = core.expire_sessions_of(request.unit)
    if request.scope == "agency":
        if request.agency is None:
            raise HTTPException(422, "agency is required with scope agency")
        removed["dossiers"] = core.reset_dossiers(agency=request.agency)
    if request.scope == "all":
        removed["dossiers"] = core.reset_dossiers()
        removed["sessions"] = len(core.sessions)
        core.sessions.clear()
        portal.limiter.reset()
    if request.scope in ("all", "journal"):
        removed["journal"] = len(portal.journal)
        portal.journal.clear()
    if request.scope in ("all", "faults"):
        removed["faults"] = len(portal.faults.rules)
        portal.faults.clear()
    if request.scope == "sessions":
        removed["sessions"] = len(core.sessions)
        core.sessions.clear()
    return {"reset": request.scope, "removed": removed}


@router.post("/seed")
async def seed(portal: Portal, request: SeedRequest) -> dict[str, int]:
    """Replace procedures, agencies and accounts from a file or the request body."""
    if (request.file is None) == (request.catalogue is None):
        raise HTTPException(422, "give exactly one of file and catalogue")
    if request.file is not None:
        try:
            catalogue = load_seed_file(request.file)
        except (OSError, ValueError) as exc:
            raise HTTPException(422, f"seed file {request.file}: {exc}") from None
    else:
        assert request.catalogue is not None  # noqa: S101 - checked above
        catalogue = request.catalogue.model_dump(mode="json")
    portal.core.seed(catalogue)
    return {k: len(v) for k, v in catalogue.items()}


@router.get("/catalogue")
async def catalogue(portal: Portal) -> dict[str, Any]:
    """The procedures, agencies and accounts in use."""
    return portal.core.catalogue()


@router.get("/dossiers")
async def list_dossiers(
    portal: Portal,
    unit: str | None = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> dict[str, Any]:
    """Stored dossiers (code, unit, status, progress count), optionally of one unit."""
    rows = [d for d in portal.core.dossiers.values() if unit is None or d.unit == unit]
    return {
        "total": len(rows),
        "dossiers": [
            {
                "MaHoSo": d.ma_ho_so,
                "unit": d.unit,
                "TrangThaiHoSo": d.status.value,
                "progress": len(d.progress),
                "updated_at": d.updated_at.isoformat(),
            }
            for d in rows[offset : offset + limit]
        ],
    }


@router.get("/dossiers/{ma_ho_so}")
async def get_dossier(portal: Portal, ma_ho_so: str) -> dict[str, Any]:
    """A stored dossier with its progress (``QuaTrinhXuLy``), as ``TraCuuHoSo`` shows it."""
    stored = portal.core.dossiers.get(ma_ho_so)
    if stored is None:
        raise HTTPException(404, f"no dossier {ma_ho_so}")
    return {
        "unit": stored.unit,
        "created_at": stored.created_at.isoformat(),
        "updated_at": stored.updated_at.isoformat(),
        "dossier": stored.with_progress(),
    }


@router.put("/dossiers/{ma_ho_so}")
async def put_dossier(portal: Portal, ma_ho_so: str, request: DossierWrite) -> dict[str, Any]:
    """Store a dossier directly — validated, but without the create/update and
    transition rules (a change made by hand at the portal)."""
    if request.dossier.get("MaHoSo") != ma_ho_so:
        raise HTTPException(422, "dossier.MaHoSo must equal the path")
    try:
        stored = portal.core.set_dossier(request.dossier, request.progress, utcnow())
    except RecordInvalid as invalid:
        raise HTTPException(422, [i.to_dict() for i in invalid.issues]) from None
    return {"unit": stored.unit, "dossier": stored.with_progress()}


@router.delete("/dossiers/{ma_ho_so}", status_code=204)
async def delete_dossier(portal: Portal, ma_ho_so: str) -> Response:
    """Forget a dossier (a portal that lost data)."""
    if not portal.core.delete_dossier(ma_ho_so):
        raise HTTPException(404, f"no dossier {ma_ho_so}")
    return Response(status_code=204)


@router.get("/journal")
async def journal(portal: Portal, query: Annotated[JournalQuery, Query()]) -> dict[str, Any]:
    """Journal entries, oldest first, filtered by unit, MaHoSo, outcome
    (ok, partial, rejected, http_error, dropped), service, fault and time."""
    entries = list(portal.journal.select(query.filter()))
    return {
        "total": len(entries),
        "dropped": portal.journal.dropped,
        "capacity": portal.journal.capacity,
        "entries": [e.to_json() for e in entries[query.offset : query.offset + query.limit]],
    }


@router.get(
    "/journal.ndjson",
    response_class=StreamingResponse,
    responses={200: {"content": {"application/x-ndjson": {}}}},
)
async def journal_ndjson(
    portal: Portal, query: Annotated[JournalQuery, Query()]
) -> StreamingResponse:
    """The filtered journal as NDJSON, one entry a line; ``X-Journal-Dropped`` tells
    how many older entries the ring buffer no longer holds. Without ``limit``, every
    matching entry from ``offset`` on (an export is not cut at the JSON page size)."""
    selected = list(portal.journal.select(query.filter()))[query.offset :]
    if "limit" in query.model_fields_set:
        selected = selected[: query.limit]
    lines: Iterator[str] = to_ndjson(iter(selected))
    return StreamingResponse(
        lines,
        media_type="application/x-ndjson",
        headers={"X-Journal-Dropped": str(portal.journal.dropped)},
    )


@router.get("/faults")
async def faults(portal: Portal) -> dict[str, Any]:
    """Fault rules in evaluation order, with how often each was selected and fired."""
    return {"rules": [rule.describe() for rule in portal.faults.rules]}


@router.post("/faults", status_code=201)
async def add_fault(portal: Portal, rule: FaultRuleIn) -> dict[str, Any]:
    """Add a fault rule (evaluated after the existing ones)."""
    return portal.faults.add(rule).describe()


@router.delete("/faults/{rule_id}", status_code=204)
async def delete_fault(portal: Portal, rule_id: int) -> Response:
    """Remove one fault rule."""
    if not portal.faults.remove(rule_id):
        raise HTTPException(404, f"no fault rule {rule_id}")
    return Response(status_code=204)


@router.delete("/faults", status_code=204)
async def clear_faults(portal: Portal) -> Response:
    """Remove every fault rule."""
    portal.faults.clear()
    return Response(status_code=204)


@router.post("/sessions/expire")
async def expire_sessions(portal: Portal, unit: str) -> dict[str, int]:
    """End every session of a unit now (its next call gets -2)."""
    return {"expired": portal.core.expire_sessions_of(unit)}


@router.get("/stats")
async def stats(portal: Portal, unit: str | None = None) -> dict[str, Any]:
    """Per unit: dossiers by status, progress records, rejected items by error code,
    duplicates received, status regressions refused."""
    units = [unit] if unit is not None else portal.core.known_units()
    return {"units": portal.core.unit_stats(units)}


@router.get("/conformance")
async def conformance(
    portal: Portal,
    unit: str,
    since: AwareDatetime | None = None,
    until: AwareDatetime | None = None,
) -> dict[str, Any]:
    """Did the unit's client behave? Retries, back-off, Retry-After, re-authentication,
    regressions, unchanged resends, per-dossier order, rate limit — each with the
    journal entries that show a failure."""
    entries = list(portal.journal.select(JournalFilter(unit=unit, since=since, until=until)))
    return conformance_report(
        unit, entries, since=since, until=until, journal_dropped=portal.journal.dropped
    )


@router.get("/settings")
async def get_settings(portal: Portal) -> dict[str, Any]:
    """Session lifetime, rate limit and journal size in force."""
    return {
        "session_ttl_s": portal.core.session_ttl_s,
        "rate_per_s": portal.limiter.rate,
        "burst": portal.limiter.burst,
        "journal_capacity": portal.journal.capacity,
    }


@router.patch("/settings")
async def patch_settings(portal: Portal, update: SettingsUpdate) -> dict[str, Any]:
    """Change session lifetime (new sessions), rate limit or journal size."""
    if update.session_ttl_s is not None:
        portal.core.session_ttl_s = update.session_ttl_s
    if update.rate_per_s is not None or update.burst is not None:
        portal.limiter.configure(
            update.rate_per_s or portal.limiter.rate, update.burst or portal.limiter.burst
        )
        portal.limiter.reset()
    if update.journal_capacity is not None:
        portal.journal.resize(update.journal_capacity)
    return await get_settings(portal)
