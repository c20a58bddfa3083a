"""``dvclt``: the inter-agency service queue (liên thông) of source-dialects.md §3.

No cursor: every status change of a dossier is a message that stays in the queue until
the client acknowledges it. Dossiers are birth (LTKS) and death (LTKT) registrations.
"""

from __future__ import annotations

import json
import secrets
from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import PlainTextResponse

from app.domain.dates import VN_TZ
from app.simulators.core import (
    BAD_DMY,
    SourceError,
    bad_phone,
    dmy,
    expected,
    route_name,
    simulator_of,
)
from app.simulators.world import Message, SimDossier, World

MAX_LIMIT = 200
DEFAULT_LIMIT = 100
ACKNOWLEDGED = "Cập nhật thành công"
RESULT_STATUSES = frozenset({4, 5})
FILE_BASE_URL = "https://dvclt.example.gov.vn/api/files"


# --- rendering -------------------------------------------------------------------------------


def summary(world: World, message: Message) -> dict[str, Any]:
    """A message as the unacknowledged list shows it."""
    dossier = world.get(message.ma_ho_so)
    assert dossier is not None  # noqa: S101 - messages are only made for known dossiers
    return {
        "id": message.id,
        "maDonVi": dossier.ma_don_vi,
        "maTTHC": dossier.procedure.code,
        "module": dossier.module,
        "maHoSo": message.ma_ho_so,
        "ngayTiepNhan": dmy(message.received_at),
        "techId": message.tech_id,
    }


def detail(world: World, message: Message) -> dict[str, Any]:
    """A message as the detail endpoint shows it: the state change, the due date, the
    results (a JSON string), the application form (a JSON string) and the attachments,
    as they were when the message was sent."""
    dossier = world.get(message.ma_ho_so)
    assert dossier is not None  # noqa: S101 - messages are only made for known dossiers
    entry, status = message.entry, int(message.entry.status)
    results = [
        {
            "giayToId": str(f.file_id),
            "tenGiayTo": f.name,
            "maGiayToKetQua": f.result_code,
            "duongDan": f"{FILE_BASE_URL}/{f.file_id}",
        }
        for f in message.files
        if f.result and status in RESULT_STATUSES
    ]
    form = dict(message.form)
    if message.bad == "phone":
        form["soDienThoai"] = bad_phone(form["soDienThoai"])
    due = BAD_DMY if message.bad == "date" else dmy(message.due_at) or None
    return {
        "id": message.id,
        "maHoSo": message.ma_ho_so,
        "maTTHC": dossier.procedure.code,
        "trangThai": status,
        "thoiGianThucHien": dmy(entry.at),
        "nguoiXuLy": entry.officer,
        "chucDanh": entry.position,
        "phongBanXuLy": entry.department,
        "noiDungXuLy": entry.note,
        "ngayHenTra": due,
        "ketQuaXuLy": json.dumps(results, ensure_ascii=False),
        "data": json.dumps(form, ensure_ascii=False),
        "fileDinhKem": [
            {
                "id": f.file_id,
                "loaiGiayTo": f.template_no,
                "tenGiayTo": f.name,
                "tenTepDinhKem": f.filename,
                "huyGiayTo": f.removed,
            }
            for f in message.files
            if not f.result
        ],
    }


def truth_entry(world: World, dossier: SimDossier) -> dict[str, Any]:
    messages = world.messages_in_time_order(dossier)
    originals = [m for m in messages if m.duplicate_of is None]
    latest = originals[-1]
    return {
        "key": dossier.ma_ho_so,
        "ma_ho_so": dossier.ma_ho_so,
        "record": detail(world, latest),
        "messages": [
            {
                "id": m.id,
                "summary": summary(world, m),
                "detail": detail(world, m),
                "acknowledged": m.acknowledged,
                "duplicate_of": m.duplicate_of,
                "valid": m.bad is None,
            }
            for m in messages
        ],
        "expected": expected(
            "dvclt",
            dossier,
            current=latest.entry.status,
            history=[m.entry.status for m in originals],
            valid=latest.bad is None,
        ),
    }


# --- auth ------------------------------------------------------------------------------------

token_router = APIRouter(tags=["dvclt"])


@token_router.post("/api/auth/token")
async def token(request: Request) -> dict[str, Any]:
    """`{"userName", "password"}` → `{"token", "refreshToken", "refreshTokenExpiryTime"}`.
    The token is valid 15 minutes (or `token_ttl_s`); send it as `Authorization: Bearer`."""
    simulator = simulator_of(request)
    simulator.count(route_name(request))
    try:
        body = json.loads(await request.body())
    except (ValueError, UnicodeDecodeError):
        raise SourceError(400, {"message": "Dữ liệu không hợp lệ"}) from None
    if not isinstance(body, dict):
        raise SourceError(400, {"message": "Dữ liệu không hợp lệ"})
    settings = simulator.settings
    given = f"{body.get('userName')}:{body.get('password')}"
    if not secrets.compare_digest(
        given.encode(), f"{settings.username}:{settings.password}".encode()
    ):
        raise SourceError(401, {"message": "Tên đăng nhập hoặc mật khẩu không đúng"})
    refresh_expiry = simulator.world.now().astimezone(VN_TZ) + timedelta(days=7)
    return {
        "token": simulator.tokens.issue(simulator.token_ttl_s),
        "refreshToken": secrets.token_urlsafe(32),
        "refreshTokenExpiryTime": refresh_expiry.isoformat(timespec="seconds"),
    }


async def _bearer(request: Request) -> None:
    simulator = simulator_of(request)
    simulator.count(route_name(request))
    scheme, _, token_value = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not simulator.tokens.valid(token_value.strip()):
        raise SourceError(
            401, {"message": "Unauthorized"}, {"WWW-Authenticate": 'Bearer error="invalid_token"'}
        )


router = APIRouter(
    prefix="/api/lienthongdvclt/hosolienthong", tags=["dvclt"], dependencies=[Depends(_bearer)]
)


# --- queue -----------------------------------------------------------------------------------


# Declared before "/{id}" so that the path is not taken for a message id.
@router.get("/chua-nhan")
async def unacknowledged(
    request: Request, limit: Annotated[int, Query(ge=1)] = DEFAULT_LIMIT
) -> dict[str, Any]:
    """Up to `limit` (at most 200) unacknowledged messages, oldest first. A message is
    delivered again on every call until it is acknowledged."""
    simulator = simulator_of(request)
    simulator.before_list()
    world = simulator.world
    with world.lock:
        return {"data": [summary(world, m) for m in world.pending(min(limit, MAX_LIMIT))]}


@router.put("/da-nhan", response_class=PlainTextResponse)
async def acknowledge(request: Request) -> PlainTextResponse:
    """`{"maHoSo", "id", "daNhan": true}`: the message is received and leaves the queue.
    Answers the plain text `Cập nhật thành công` (also for a repeated acknowledgement)."""
    try:
        body = json.loads(await request.body())
    except (ValueError, UnicodeDecodeError):
        raise SourceError(400, "Dữ liệu không hợp lệ") from None
    if not isinstance(body, dict) or body.get("daNhan") is not True:
        raise SourceError(400, "Thiếu daNhan: true")
    raw_id = body.get("id")
    if isinstance(raw_id, str) and raw_id.isdigit():
        raw_id = int(raw_id)
    if not isinstance(raw_id, int) or isinstance(raw_id, bool):
        raise SourceError(400, "id không hợp lệ")
    world = simulator_of(request).world
    with world.lock:
        message = world.message(raw_id)
        if message is None:
            raise SourceError(404, "Không tìm thấy hồ sơ liên thông")
        if body.get("maHoSo") != message.ma_ho_so:
            raise SourceError(400, "maHoSo không khớp với id")
        world.acknowledge(raw_id)
    return PlainTextResponse(ACKNOWLEDGED)


@router.get("/{id}")
async def message_detail(
    request: Request, message_id: Annotated[int, Path(alias="id")]
) -> dict[str, Any]:
    """One message in full (acknowledged or not): status code, when and by whom, the due
    date, results and application form as JSON strings, the attachments."""
    world = simulator_of(request).world
    with world.lock:
        message = world.message(message_id)
        if message is None:
            raise SourceError(404, {"message": f"Không tìm thấy hồ sơ liên thông {message_id}"})
        return {"data": detail(world, message)}
