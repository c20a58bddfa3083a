"""``opencps``: OpenCPS v2 as source-dialects.md §1 describes it.

HTTP Basic plus a ``groupId`` header; a list with ``start``/``end`` row offsets, sorted
by ``modifiedDate`` and filtered by whole days only; files and actions per dossier.
"""

from __future__ import annotations

import base64
import binascii
import secrets
from datetime import date, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request

from app.simulators.core import (
    BAD_DMY,
    SourceError,
    bad_email,
    bad_phone,
    dmy,
    expected,
    route_name,
    simulator_of,
)
from app.simulators.statuses import OPENCPS_STATUS_TEXT
from app.simulators.world import SimDossier, SimFile, World

FILE_BASE_URL = "https://opencps.example.gov.vn/documents"


def _unauthorised(message: str) -> SourceError:
    return SourceError(
        401, {"message": message}, {"WWW-Authenticate": 'Basic realm="opencps", charset="UTF-8"'}
    )


async def _authorise(request: Request) -> None:
    """HTTP Basic with the configured credentials and the site's ``groupId`` header."""
    simulator = simulator_of(request)
    simulator.count(route_name(request))
    settings = simulator.settings
    scheme, _, encoded = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "basic":
        raise _unauthorised("Authentication required")
    try:
        username, _, password = base64.b64decode(encoded, validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        raise _unauthorised("Malformed Basic credentials") from None
    good_user = secrets.compare_digest(username.encode(), settings.username.encode())
    good_password = secrets.compare_digest(password.encode(), settings.password.encode())
    if not (good_user and good_password):
        raise _unauthorised("Invalid username or password")
    if request.headers.get("groupId") != settings.group_id:
        raise _unauthorised("Missing or unknown groupId")


router = APIRouter(prefix="/o/rest/v2", tags=["opencps"], dependencies=[Depends(_authorise)])


# --- rendering -------------------------------------------------------------------------------


def record(dossier: SimDossier) -> dict[str, Any]:
    """A dossier as the list endpoint returns it."""
    applicant, procedure, bad = dossier.applicant, dossier.procedure, dossier.bad
    status = str(dossier.status)
    return {
        "dossierId": dossier.opencps_id,
        "dossierNo": dossier.ma_ho_so,
        "referenceUid": dossier.reference_uid,
        "serviceCode": procedure.code,
        "serviceName": procedure.name,
        "domainCode": procedure.domain_code,
        "domainName": procedure.domain_name,
        "govAgencyCode": dossier.agency.code,
        "govAgencyName": dossier.agency.name,
        "applicantName": applicant.name,
        "applicantIdType": "business" if applicant.business else "citizen",
        "applicantIdNo": applicant.id_no,
        "contactName": applicant.contact.full_name,
        "contactTelNo": bad_phone(applicant.phone) if bad == "phone" else applicant.phone,
        # OpenCPS writes "" for an empty text field, including a missing e-mail.
        "contactEmail": bad_email(applicant.email) if bad == "email" else applicant.email or "",
        "dossierNote": dossier.note,
        "submitDate": dmy(dossier.submitted_at),
        "receiveDate": BAD_DMY if bad == "date" else dmy(dossier.received_at),
        "dueDate": dmy(dossier.due_at),
        "finishDate": dmy(dossier.finished_at),
        "releaseDate": dmy(dossier.released_at),
        "modifiedDate": dmy(dossier.modified_at),
        "dossierStatus": status,
        "dossierSubStatus": _sub_status(dossier),
        "dossierStatusText": OPENCPS_STATUS_TEXT[status],
        "online": dossier.online,
        "viaPostal": dossier.via_postal,
        "feeAmount": dossier.fee_amount,
        "paymentMethod": dossier.payment_method if dossier.fee_paid else None,
        "digitized": dossier.digitized,
    }


def _sub_status(dossier: SimDossier) -> str:
    # Sub-statuses are site-specific in OpenCPS and carry no mapping; a few realistic ones.
    if dossier.status == "processing" and dossier.state.value == "RECEIVED":
        return "received"
    if dossier.status == "pausing":
        return "waiting_other_agency"
    return ""


def file_entry(dossier: SimDossier, file: SimFile) -> dict[str, Any]:
    return {
        "dossierFileId": file.file_id,
        "fileTemplateNo": file.template_no,
        "displayName": file.name,
        "dossierPartType": 2 if file.result else 1,
        "fileUrl": f"{FILE_BASE_URL}/{dossier.reference_uid}/{file.file_id}.pdf",
        "removed": file.removed,
        "reused": file.reused,
    }


def files(dossier: SimDossier) -> list[dict[str, Any]]:
    return [file_entry(dossier, f) for f in dossier.files]


def actions(dossier: SimDossier) -> list[dict[str, Any]]:
    """Every action, oldest first, each with the status it led to."""
    return [
        {
            "dossierActionId": entry.seq,
            "createDate": dmy(entry.at),
            "actionCode": entry.action_code,
            "actionName": entry.action_name,
            "actionUser": entry.officer,
            "actionNote": entry.note,
            "stepCode": entry.department_code,
            "stepName": entry.department,
            "dossierStatus": str(entry.status),
        }
        for entry in dossier.history
    ]


def truth_entry(world: World, dossier: SimDossier) -> dict[str, Any]:
    return {
        "key": dossier.opencps_id,
        "ma_ho_so": dossier.ma_ho_so,
        "record": record(dossier),
        "files": files(dossier),
        "actions": actions(dossier),
        "expected": expected(
            "opencps",
            dossier,
            current=dossier.status,
            history=[e.status for e in dossier.history],
            valid=dossier.bad is None,
        ),
    }


# --- endpoints -------------------------------------------------------------------------------


def _day(value: str | None, name: str) -> date | None:
    if value is None or value == "":
        return None
    try:
        return datetime.strptime(value, "%d/%m/%Y").date()  # noqa: DTZ007 - a calendar day
    except ValueError:
        raise SourceError(400, {"message": f"{name} phải có dạng dd/MM/yyyy"}) from None


def _descending(order: str) -> bool:
    if order.lower() not in {"true", "false"}:
        raise SourceError(400, {"message": "order phải là true hoặc false"})
    return order.lower() == "true"


def _rows(start: int, end: int | None) -> slice:
    """Rows [start, end); `end` absent or 0 means every row from `start`."""
    return slice(start, None if not end else max(start, end))


NonNegative = Annotated[int, Query(ge=0)]
DossierId = Annotated[int, Path(alias="dossierId")]


@router.get("/dossiers")
async def list_dossiers(
    request: Request,
    *,
    start: NonNegative = 0,
    end: Annotated[int | None, Query(ge=0)] = None,
    sort: str = "modifiedDate",
    order: str = "false",
    from_modified: Annotated[str | None, Query(alias="fromModifiedDate")] = None,
    to_modified: Annotated[str | None, Query(alias="toModifiedDate")] = None,
) -> dict[str, Any]:
    """Dossiers sorted by `modifiedDate` (`order=true` newest first, `false` oldest
    first; equal `modifiedDate`s by ascending `dossierId`), filtered by whole days
    (`fromModifiedDate`/`toModifiedDate`, `dd/MM/yyyy`, both inclusive), rows
    `[start, end)` of that set; `end` absent or 0 returns every row. `total` counts the
    filtered set."""
    if sort != "modifiedDate":
        raise SourceError(400, {"message": "sort chỉ hỗ trợ modifiedDate"})
    descending = _descending(order)
    first, last = _day(from_modified, "fromModifiedDate"), _day(to_modified, "toModifiedDate")
    simulator = simulator_of(request)
    simulator.before_list()
    world = simulator.world
    with world.lock:
        chosen = [
            d
            for d in world.dossiers
            if (first is None or d.modified_at.date() >= first)
            and (last is None or d.modified_at.date() <= last)
        ]
        # modifiedDate has whole seconds: rows equal to the second are ties, ordered by
        # dossierId whichever the direction (simulator policy).
        sign = -1 if descending else 1
        chosen.sort(key=lambda d: (sign * int(d.modified_at.timestamp()), d.opencps_id))
        page = chosen[_rows(start, end)]
        return {"total": len(chosen), "data": [record(d) for d in page]}


def _dossier(request: Request, dossier_id: int) -> SimDossier:
    dossier = simulator_of(request).world.get(dossier_id)
    if dossier is None:
        raise SourceError(404, {"message": f"Không tìm thấy hồ sơ {dossier_id}"})
    return dossier


@router.get("/dossiers/{dossierId}/files")
async def list_files(request: Request, dossier_id: DossierId) -> dict[str, Any]:
    """Every file of the dossier (`dossierPartType` 1 input, 2 result; removed files are
    listed with `removed: true`)."""
    world = simulator_of(request).world
    with world.lock:
        data = files(_dossier(request, dossier_id))
        return {"total": len(data), "data": data}


@router.get("/dossiers/{dossierId}/actions")
async def list_actions(
    request: Request,
    dossier_id: DossierId,
    *,
    start: NonNegative = 0,
    end: Annotated[int | None, Query(ge=0)] = None,
) -> dict[str, Any]:
    """The dossier's actions, oldest first, rows `[start, end)` (`end` absent or 0: all),
    each with the `dossierStatus` it led to."""
    world = simulator_of(request).world
    with world.lock:
        data = actions(_dossier(request, dossier_id))
        return {"total": len(data), "data": data[_rows(start, end)]}
