"""DVCLT inter-agency queue → portal (source-dialects.md §3).

A dossier is the fold of all its messages in ``thoiGianThucHien`` order: the latest
message gives its status and details, earlier ones the dates of the steps they brought
(result available → NgayKetThucXuLy, returned → NgayTra, refused → NgayTuChoi). Each
message is also one progress record. Folding every stored message again when one
arrives makes late, duplicate and out-of-order messages harmless.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from app.domain.progress import ProgressRecord
from app.domain.status import DossierStatus
from app.sync.normalise.common import (
    Context,
    FormBuilder,
    Normalised,
    Problem,
    Rejection,
    assemble,
    finish_dossier,
    finish_progress,
    parse_dmy,
)

# DVCLT codes whose message time dates a step of the dossier.
RESULT_AVAILABLE, RESULT_RETURNED, REFUSED = 4, 5, 6


def record_key(ma_ho_so: str) -> str:
    return f"dossier:{ma_ho_so}"


def message_key(message_id: object) -> str:
    return f"message:{message_id}"


def _queue_order(key: str) -> tuple[int, int, str]:
    """Messages of one time in the order the queue numbered them: ``message:10`` after
    ``message:9`` (as text it sorts first, and a tie of times was folded wrongly)."""
    _, _, raw = key.partition(":")
    return (0, int(raw), "") if raw.isascii() and raw.isdigit() else (1, 0, raw)


@dataclass(frozen=True, slots=True)
class _Message:
    key: str
    at: datetime
    code: int
    status: DossierStatus
    item: dict[str, Any]
    detail: dict[str, Any]


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _json(value: Any, path: str, form: FormBuilder) -> Any:
    """DVCLT sends the form and the results as JSON *strings*."""
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        return value
    try:
        return json.loads(value)
    except ValueError:
        form.problem(path, "invalid_field", "không phải chuỗi JSON hợp lệ")
        return None


def normalise(ma_ho_so: str, messages: list[dict[str, Any]], context: Context) -> Normalised:
    """``messages``: every stored message of the dossier, ``{"item": <list entry>,
    "detail": <detail data>}``, in any order."""
    key = record_key(ma_ho_so)
    raw = {"messages": messages}
    steps: list[tuple[str, ProgressRecord | Rejection]] = []
    timeline: list[_Message] = []
    for message in messages:
        item, detail = _dict(message.get("item")), _dict(message.get("detail"))
        step_key = message_key(detail.get("id", item.get("id")))
        outcome = _step(ma_ho_so, detail, context, step_key, message)
        steps.append((step_key, outcome))
        if isinstance(outcome, ProgressRecord):
            timeline.append(
                _Message(
                    step_key,
                    outcome.ThoiDiemXuLy,
                    int(detail["trangThai"]),
                    outcome.TrangThai,
                    item,
                    detail,
                )
            )
    if not timeline:
        problems = [
            issue for _, step in steps if isinstance(step, Rejection) for issue in step.errors
        ]
        problems = problems or [{"path": "messages", "code": "invalid", "message": "trống"}]
        first = problems[0]
        rejection = Rejection(
            key,
            "dossier",
            raw,
            first["code"],
            f"{first['path']}: {first['message']}",
            problems,
            ma_ho_so,
        )
        return Normalised(key, ma_ho_so, None, None, rejections=(rejection,))
    timeline.sort(key=lambda m: (m.at, _queue_order(m.key)))
    dossier = finish_dossier(_form(ma_ho_so, timeline, context), key, raw, context)
    return assemble(key, ma_ho_so, timeline[-1].at, dossier, steps)


def _form(ma_ho_so: str, timeline: list[_Message], context: Context) -> FormBuilder:
    latest = timeline[-1]
    form = FormBuilder()
    form.put("MaHoSo", ma_ho_so)
    procedure_code = latest.detail.get("maTTHC") or latest.item.get("maTTHC")
    procedure = context.catalogue.procedures.get(str(procedure_code))
    form.put("MaTTHC", procedure_code)
    if procedure is None:
        form.problem(
            "maTTHC",
            "unknown_procedure",
            f"thủ tục {procedure_code!r} không có trong danh mục của Cổng",
        )
    else:
        form.put("TenTTHC", procedure.get("TenTTHC"))
        form.put("MaLinhVuc", procedure.get("MaLinhVuc"))
        form.put("TenLinhVuc", procedure.get("TenLinhVuc"))
    form.put("KenhThucHien", 2)  # the inter-agency services are online
    applicant = None
    for message in reversed(timeline):
        applicant = _json(message.detail.get("data"), "data", form)
        if isinstance(applicant, dict):
            break
    applicant = _dict(applicant)
    form.put("ChuHoSo", applicant.get("hoTen"))
    form.put("LoaiDoiTuong", 1)  # birth and death registration: citizens
    form.put("SoGiayToChuHoSo", applicant.get("soDinhDanh"))
    form.put("SoDienThoai", applicant.get("soDienThoai"))
    received = next(
        (m.item.get("ngayTiepNhan") for m in reversed(timeline) if m.item.get("ngayTiepNhan")), None
    )
    form.date("NgayTiepNhan", received, "ngayTiepNhan", parse_dmy)
    due = next(
        (m.detail.get("ngayHenTra") for m in reversed(timeline) if m.detail.get("ngayHenTra")), None
    )
    form.date("NgayHenTra", due, "ngayHenTra", parse_dmy)
    form.put("TrangThaiHoSo", latest.status.value)
    brought = {
        code: next((m.at for m in timeline if m.code == code), None)
        for code in (RESULT_AVAILABLE, RESULT_RETURNED, REFUSED)
    }
    finished = brought[RESULT_AVAILABLE] or brought[REFUSED]
    if finished is not None:
        form.put("NgayKetThucXuLy", finished)
    refused, returned = brought[REFUSED], brought[RESULT_RETURNED]
    if refused is not None and latest.status is DossierStatus.NOT_RECEIVED:
        form.put("NgayTuChoi", refused)
    if returned is not None:
        form.put("NgayTra", returned)
    if brought[RESULT_RETURNED] is not None or latest.status is DossierStatus.RESULT_RETURNED:
        form.put("HinhThuc", 0)  # the queue says nothing of how; in person (policy)
    agency = _agency(latest, ma_ho_so, context, form)
    form.put(
        "DonViXuLy",
        context.catalogue.agencies.get(agency or "") or latest.detail.get("phongBanXuLy"),
    )
    files = latest.detail.get("fileDinhKem")
    form.put(
        "TaiLieuNop",
        [
            {
                k: v
                for k, v in {
                    "TepDinhKemId": str(f.get("id")),
                    "TenTepDinhKem": f.get("tenTepDinhKem") or f.get("tenGiayTo"),
                    "MaThanhPhanHoSo": f.get("loaiGiayTo"),
                }.items()
                if v not in (None, "")
            }
            for f in files or []
            if isinstance(f, dict) and not f.get("huyGiayTo")
        ],
    )
    for message in reversed(timeline):
        results = _json(message.detail.get("ketQuaXuLy"), "ketQuaXuLy", form)
        if isinstance(results, list) and results:
            form.put("DanhSachGiayToKetQua", [_result(r) for r in results if isinstance(r, dict)])
            break
    return form


def _agency(latest: _Message, ma_ho_so: str, context: Context, form: FormBuilder) -> str | None:
    """``maDonVi`` through the source's map; it must agree with the MaHoSo prefix."""
    unit_number = latest.item.get("maDonVi")
    agency = context.agency_map.get(str(unit_number))
    if agency is None:
        form.problem(
            "maDonVi",
            "unknown_agency",
            f"maDonVi {unit_number!r} chưa được ánh xạ sang mã định danh cơ quan",
        )
        return None
    if not ma_ho_so.startswith(agency + "-"):
        form.problem(
            "maDonVi",
            "agency_mismatch",
            f"maDonVi {unit_number!r} ({agency}) không khớp với mã hồ sơ",
        )
    return agency


def _result(r: dict[str, Any]) -> dict[str, Any]:
    item = {
        "GiayToId": r.get("giayToId"),
        "TenGiayTo": r.get("tenGiayTo"),
        "MaGiayToKetQua": r.get("maGiayToKetQua"),
        "DuongDanTepTinKetQua": r.get("duongDan"),
    }
    return {k: str(v) for k, v in item.items() if v not in (None, "")}


def _step(
    ma_ho_so: str,
    detail: dict[str, Any],
    context: Context,
    key: str,
    message: dict[str, Any],
) -> ProgressRecord | Rejection:
    form = FormBuilder()
    form.put("MaHoSo", ma_ho_so)
    form.put("NguoiXuLy", detail.get("nguoiXuLy"))
    form.put("ChucDanh", detail.get("chucDanh"))
    form.put("PhongBanXuLy", detail.get("phongBanXuLy"))
    form.date("ThoiDiemXuLy", detail.get("thoiGianThucHien"), "thoiGianThucHien", parse_dmy)
    form.put("NoiDungXuLy", detail.get("noiDungXuLy"))
    code = detail.get("trangThai")
    if not isinstance(code, int) or isinstance(code, bool):
        form.problem("trangThai", "invalid_field", "phải là số nguyên")
    else:
        status = form.status(code, "trangThai", context.statuses)
        if status is not None:
            form.put("TrangThai", status.value)
    return finish_progress(form, key, message)


def message_time(detail: dict[str, Any]) -> datetime | None:
    try:
        return parse_dmy(detail.get("thoiGianThucHien"))
    except Problem:
        return None
