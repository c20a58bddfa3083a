"""VNPT iGate → portal (source-dialects.md §2)."""

from __future__ import annotations

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
    parse_iso,
)

VIETNAMESE = 228
_CHANNEL = {0: 2, 1: 1, 2: 3}  # applyMethod.id → KenhThucHien
_PAYMENT = {"online": 1, "gateway": 2}


def record_key(dossier_id: object) -> str:
    return f"dossier:{dossier_id}"


def vietnamese(names: Any) -> str | None:
    """The language-228 entry of an iGate name list."""
    if isinstance(names, list):
        for entry in names:
            if isinstance(entry, dict) and entry.get("languageId") == VIETNAMESE:
                name = entry.get("name")
                return name if isinstance(name, str) else None
    return None


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def normalise(raw: dict[str, Any], context: Context) -> Normalised:
    """``raw`` = ``{"dossier": {…}, "history": [...]}`` as fetched."""
    d = _dict(raw.get("dossier"))
    key = record_key(d.get("id"))
    procedure = _dict(d.get("procedure"))
    sector = _dict(procedure.get("sector"))
    applicant = _dict(d.get("applicant"))
    person = _dict(applicant.get("data"))
    method = _dict(d.get("applyMethod")).get("id")
    form = FormBuilder()
    form.put("MaHoSo", d.get("code"))
    form.put("MaTTHC", procedure.get("code"))
    form.put("TenTTHC", vietnamese(procedure.get("translate")))
    form.put("MaLinhVuc", sector.get("code"))
    form.put("TenLinhVuc", vietnamese(sector.get("name")))
    form.put("KenhThucHien", _CHANNEL.get(method) if isinstance(method, int) else None)
    form.put("ChuHoSo", person.get("fullname"))
    form.put("LoaiDoiTuong", applicant.get("type"))
    form.put("SoGiayToChuHoSo", person.get("identityNumber"))
    form.put("SoDienThoai", person.get("phoneNumber"))
    form.put("Email", person.get("email"))
    form.date("NgayNopHoSo", d.get("appliedDate"), "appliedDate", parse_iso)
    form.date("NgayTiepNhan", d.get("acceptedDate"), "acceptedDate", parse_iso)
    form.date("NgayHenTra", d.get("appointmentDate"), "appointmentDate", parse_iso)
    status_id = _dict(d.get("dossierStatus")).get("id")
    status = form.status(status_id, "dossierStatus.id", context.statuses)
    if status is not None:
        form.put("TrangThaiHoSo", status.value)
    form.date("NgayKetThucXuLy", d.get("completedDate"), "completedDate", parse_iso)
    if status is DossierStatus.NOT_RECEIVED:
        form.date("NgayTuChoi", d.get("completedDate"), "completedDate", parse_iso)
    returned = form.date("NgayTra", d.get("returnedDate"), "returnedDate", parse_iso)
    if returned is not None or status is DossierStatus.RESULT_RETURNED:
        form.put("HinhThuc", 1 if method == 2 else 0)
    form.put("DonViXuLy", vietnamese(_dict(d.get("agency")).get("name")))
    attachments = [a for a in d.get("attachment") or [] if isinstance(a, dict)]
    inputs = [a for a in attachments if a.get("group") == "input"]
    form.put("TaiLieuNop", [_submitted(a) for a in inputs])
    if inputs:
        form.put("HoSoCoThanhPhanSoHoa", int(any(a.get("digitized") is True for a in inputs)))
    form.put(
        "DanhSachGiayToKetQua",
        [_result(a) for a in attachments if a.get("group") == "result"],
    )
    fee = _dict(d.get("fee"))
    amount = fee.get("amount")
    if isinstance(amount, int) and not isinstance(amount, bool) and amount > 0:
        form.put("DanhSachLePhi", [{"TenPhiLePhi": "Phí, lệ phí", "Gia": amount}])
    if fee:
        form.put("DuocThanhToanTrucTuyen", _PAYMENT.get(fee.get("method") or "", 0))
    dossier = finish_dossier(form, key, raw, context)
    steps = [
        _step(entry, d.get("code"), context)
        for entry in raw.get("history") or []
        if isinstance(entry, dict)
    ]
    return assemble(key, str(d.get("id")), updated_at(d), dossier, steps)


def updated_at(d: dict[str, Any]) -> datetime | None:
    """The row's ``updatedDate`` (``None`` when it does not parse)."""
    try:
        return parse_iso(d.get("updatedDate"))
    except Problem:
        return None


def _flag(value: Any) -> int | None:
    return int(value) if isinstance(value, bool) else None


def _submitted(a: dict[str, Any]) -> dict[str, Any]:
    item = {
        "TepDinhKemId": a.get("id"),
        "TenTepDinhKem": a.get("filename"),
        "DuongDanTaiTepTin": a.get("url"),
        "DuocSoHoa": _flag(a.get("digitized")),
        "DuocTaiSuDung": _flag(a.get("reused")),
    }
    return {k: v for k, v in item.items() if v not in (None, "")}


def _result(a: dict[str, Any]) -> dict[str, Any]:
    item = {
        "GiayToId": a.get("id"),
        "TenGiayTo": a.get("filename"),
        "DuongDanTepTinKetQua": a.get("url"),
    }
    return {k: v for k, v in item.items() if v not in (None, "")}


def _step(
    entry: dict[str, Any], code: object, context: Context
) -> tuple[str, ProgressRecord | Rejection]:
    key = f"history:{entry.get('id')}"
    form = FormBuilder()
    form.put("MaHoSo", code)
    form.put("NguoiXuLy", _dict(entry.get("user")).get("fullname"))
    form.put("ChucDanh", entry.get("position"))
    form.put("PhongBanXuLy", entry.get("groupName"))
    form.date("ThoiDiemXuLy", entry.get("createdDate"), "createdDate", parse_iso)
    form.put("NoiDungXuLy", entry.get("content") or entry.get("action"))
    status = form.status(entry.get("statusId"), "statusId", context.statuses)
    if status is not None:
        form.put("TrangThai", status.value)
    return key, finish_progress(form, key, {"MaHoSo": code, "history": entry})


def normalise_step(raw: dict[str, Any], context: Context) -> ProgressRecord | Rejection:
    """A quarantined history entry again (``raw``: ``{"MaHoSo", "history"}``)."""
    return _step(raw.get("history") or {}, raw.get("MaHoSo"), context)[1]
