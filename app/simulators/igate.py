"""``igate``: VNPT iGate as source-dialects.md §2 describes it.

An OpenID Connect client-credentials token, then a Spring-style paged search sorted by
``updatedDate`` with an inclusive, millisecond ``updated-from``, and a history per
dossier. Names come as lists of translations; Vietnamese is language 228, English 46.
"""

from __future__ import annotations

import base64
import binascii
import math
import re
import secrets
from datetime import datetime
from typing import Annotated, Any
from urllib.parse import parse_qs, unquote

from fastapi import APIRouter, Depends, Path, Query, Request

from app.simulators.catalogue import hex_id, sector_english
from app.simulators.core import (
    BAD_ISO,
    SourceError,
    bad_email,
    bad_phone,
    expected,
    iso_ms,
    route_name,
    simulator_of,
)
from app.simulators.statuses import IGATE_STATUS_NAMES
from app.simulators.world import SimDossier, World

VIETNAMESE, ENGLISH = 228, 46
MAX_PAGE_SIZE = 500
DEFAULT_PAGE_SIZE = 20  # Spring's default
FILE_BASE_URL = "https://igate.example.gov.vn/fi/file"
APPLY_METHODS = {
    "online": (0, "Trực tuyến"),
    "in_person": (1, "Trực tiếp"),
    "postal": (2, "Qua dịch vụ bưu chính công ích"),
}


def names(vietnamese: str, english: str) -> list[dict[str, Any]]:
    """A translation list. English comes first on purpose: a client must pick language
    228, not the first entry."""
    return [
        {"languageId": ENGLISH, "name": english},
        {"languageId": VIETNAMESE, "name": vietnamese},
    ]


# --- rendering -------------------------------------------------------------------------------


def record(dossier: SimDossier) -> dict[str, Any]:
    """A dossier as the search returns it."""
    applicant, procedure, agency, bad = (
        dossier.applicant,
        dossier.procedure,
        dossier.agency,
        dossier.bad,
    )
    status = int(dossier.status)
    vietnamese, english = IGATE_STATUS_NAMES[status]
    method_id, method_name = APPLY_METHODS[dossier.channel]
    return {
        "id": dossier.igate_id,
        "code": dossier.ma_ho_so,
        "dossierStatus": {
            "id": status,
            "name": names(vietnamese, english),
            "comment": dossier.history[-1].note,
        },
        "procedure": {
            "id": hex_id("procedure", procedure.code),
            "code": procedure.code,
            "translate": names(procedure.name, procedure.english_name),
            "sector": {
                "id": hex_id("sector", procedure.domain_code),
                "code": procedure.domain_code,
                "name": names(procedure.domain_name, sector_english(procedure.domain_code)),
            },
        },
        "agency": {
            "id": hex_id("agency", agency.code),
            "code": agency.code,
            "name": names(agency.name, agency.english_name),
        },
        "applicant": {
            "data": {
                "fullname": applicant.name,
                "identityNumber": applicant.id_no,
                "phoneNumber": bad_phone(applicant.phone) if bad == "phone" else applicant.phone,
                "email": bad_email(applicant.email) if bad == "email" else applicant.email,
                "address": applicant.address,
            },
            "type": 2 if applicant.business else 1,
        },
        "applyMethod": {"id": method_id, "name": method_name},
        "appliedDate": iso_ms(dossier.submitted_at),
        "acceptedDate": BAD_ISO if bad == "date" else iso_ms(dossier.received_at),
        "appointmentDate": iso_ms(dossier.due_at),
        "completedDate": iso_ms(dossier.released_at),
        "returnedDate": iso_ms(dossier.finished_at),
        "updatedDate": iso_ms(dossier.modified_at),
        "attachment": [
            {
                "id": f.hex_id,
                "filename": f.filename,
                "group": "result" if f.result else "input",
                "url": f"{FILE_BASE_URL}/{f.hex_id}",
                "digitized": f.digitized,
                "reused": f.reused,
            }
            for f in dossier.files
            if not f.removed  # iGate drops a replaced upload
        ],
        "fee": {
            "amount": dossier.fee_amount,
            "paid": dossier.fee_paid,
            "method": dossier.payment_method if dossier.fee_paid else None,
        },
    }


def history(dossier: SimDossier) -> list[dict[str, Any]]:
    """The dossier's history, oldest first."""
    return [
        {
            "id": entry.hex_id,
            "createdDate": iso_ms(entry.at),
            "user": {"fullname": entry.officer},
            "position": entry.position,
            "groupName": entry.department,
            "action": entry.action_name,
            "content": entry.note,
            "statusId": int(entry.status),
        }
        for entry in dossier.history
    ]


def truth_entry(world: World, dossier: SimDossier) -> dict[str, Any]:
    return {
        "key": dossier.igate_id,
        "ma_ho_so": dossier.ma_ho_so,
        "record": record(dossier),
        "history": history(dossier),
        "expected": expected(
            "igate",
            dossier,
            current=dossier.status,
            history=[e.status for e in dossier.history],
            valid=dossier.bad is None,
        ),
    }


# --- auth ------------------------------------------------------------------------------------

token_router = APIRouter(tags=["igate"])


def _oauth_error(status: int, error: str, description: str) -> SourceError:
    return SourceError(status, {"error": error, "error_description": description})


@token_router.post("/auth/realms/digo/protocol/openid-connect/token")
async def token(request: Request) -> dict[str, Any]:
    """Client-credentials grant: form fields `grant_type=client_credentials`, `client_id`,
    `client_secret` (or the client as HTTP Basic). Answers `{"access_token",
    "expires_in", "token_type": "Bearer"}`; `expires_in` is 300 unless `token_ttl_s`
    is set."""
    simulator = simulator_of(request)
    simulator.count(route_name(request))
    form = {k: v[0] for k, v in parse_qs((await request.body()).decode("utf-8", "replace")).items()}
    client_id, client_secret = form.get("client_id"), form.get("client_secret")
    scheme, _, encoded = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "basic" and client_id is None:
        try:
            decoded = base64.b64decode(encoded, validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            raise _oauth_error(401, "invalid_client", "Malformed client credentials") from None
        client_id, _, secret = decoded.partition(":")
        client_id, client_secret = unquote(client_id), unquote(secret)
    if form.get("grant_type") != "client_credentials":
        raise _oauth_error(400, "unsupported_grant_type", "Only client_credentials is supported")
    settings = simulator.settings
    good = secrets.compare_digest(
        f"{client_id}:{client_secret}".encode(), f"{settings.username}:{settings.password}".encode()
    )
    if client_id is None or client_secret is None or not good:
        raise _oauth_error(401, "invalid_client", "Invalid client or Invalid client credentials")
    ttl = simulator.token_ttl_s
    return {
        "access_token": simulator.tokens.issue(ttl),
        "expires_in": max(1, math.ceil(ttl)),
        "token_type": "Bearer",
    }


async def _bearer(request: Request) -> None:
    simulator = simulator_of(request)
    simulator.count(route_name(request))
    scheme, _, token_value = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not simulator.tokens.valid(token_value.strip()):
        raise SourceError(
            401,
            {"error": "invalid_token", "error_description": "Token is missing, invalid or expired"},
            {"WWW-Authenticate": 'Bearer error="invalid_token"'},
        )


router = APIRouter(prefix="/pa/dossier", tags=["igate"], dependencies=[Depends(_bearer)])


# --- search and history ----------------------------------------------------------------------


_SPACED_OFFSET = re.compile(r" ([0-9]{2}:?[0-9]{2})$")


def _instant(value: str) -> datetime:
    # A '+' left unencoded in a query string arrives as a space; put it back.
    text = _SPACED_OFFSET.sub(r"+\1", value.strip())
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise SourceError(
            400, {"error": "Bad Request", "message": "updated-from: not an ISO-8601 date-time"}
        ) from None
    if parsed.tzinfo is None:
        raise SourceError(
            400, {"error": "Bad Request", "message": "updated-from needs an offset (e.g. +0700)"}
        )
    return parsed


@router.get("/search")
async def search(
    request: Request,
    *,
    page: Annotated[int, Query(ge=0)] = 0,
    size: Annotated[int, Query(ge=1)] = DEFAULT_PAGE_SIZE,
    sort: str = "updatedDate,asc",
    updated_from: Annotated[str | None, Query(alias="updated-from")] = None,
) -> dict[str, Any]:
    """Dossiers with `updatedDate` ≥ `updated-from` (inclusive, ISO-8601 with
    milliseconds and offset), sorted by `updatedDate` (`asc` or `desc`; equal dates by
    ascending `id`), as Spring page `page` (from 0) of `size` rows (above 500: 500)."""
    field, _, direction = sort.partition(",")
    direction = direction.strip().lower() or "asc"
    if field.strip() != "updatedDate" or direction not in {"asc", "desc"}:
        raise SourceError(
            400, {"error": "Bad Request", "message": "sort: only updatedDate,asc|desc"}
        )
    since = _instant(updated_from) if updated_from else None
    size = min(size, MAX_PAGE_SIZE)
    simulator = simulator_of(request)
    simulator.before_list()
    world = simulator.world
    with world.lock:
        if direction == "asc":
            content, total = world.modified_since(since, page * size, (page + 1) * size)
        else:
            chosen = [d for d in world.dossiers if since is None or d.modified_at >= since]
            chosen.sort(key=lambda d: d.igate_id)
            chosen.sort(key=lambda d: d.modified_at, reverse=True)  # stable: ids stay asc
            content, total = chosen[page * size : (page + 1) * size], len(chosen)
        return {
            "content": [record(d) for d in content],
            "totalElements": total,
            "totalPages": math.ceil(total / size),
            "number": page,
            "size": size,
        }


@router.get("/{dossierId}/--history")
async def dossier_history(
    request: Request, dossier_id: Annotated[str, Path(alias="dossierId")]
) -> list[dict[str, Any]]:
    """The dossier's history, oldest first: who did what, in which department, and the
    status id it led to."""
    world = simulator_of(request).world
    with world.lock:
        dossier = world.get(dossier_id)
        if dossier is None:
            raise SourceError(
                404, {"error": "Not Found", "message": f"dossier {dossier_id} not found"}
            )
        return history(dossier)
