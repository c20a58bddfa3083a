"""OpenCPS v2 → portal (source-dialects.md §1)."""

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
    parse_dmy,
)

_PAYMENT = {"online": 1, "gateway": 2}


def record_key(dossier_id: object) -> str:
    return f"dossier:{dossier_id}"


def normalise(raw: dict[str, Any], context: Context) -> Normalised:
    """``raw`` = ``{"dossier": {…}, "files": [...], "actions": [...]}`` as fetched."""
    d: dict[str, Any] = raw.get("dossier") or {}
    key = record_key(d.get("dossierId"))
    form = FormBuilder()
    form.put("MaHoSo", d.get("dossierNo"))
    form.put("MaTTHC", d.get("serviceCode"))
    form.put("TenTTHC", d.get("serviceName"))
    form.put("MaLinhVuc", d.get("domainCode"))
    form.put("TenLinhVuc", d.get("domainName"))
    online, postal = d.get("online"), d.get("viaPostal")
    form.put("KenhThucHien", 2 if online is True else 3 if postal == 2 else 1)
    form.put("ChuHoSo", d.get("contactName") or d.get("applicantName"))
    form.put("LoaiDoiTuong", 2 if d.get("applicantIdType") == "business" else 1)
    form.put("SoGiayToChuHoSo", d.get("applicantIdNo"))
    form.put("SoDienThoai", d.get("contactTelNo"))
    form.put("Email", d.get("contactEmail"))
    form.put("TrichYeuHoSo", d.get("dossierNote"))
    form.date("NgayNopHoSo", d.get("submitDate"), "submitDate", parse_dmy)
    form.date("NgayTiepNhan", d.get("receiveDate"), "receiveDate", parse_dmy)
    form.date("NgayHenTra", d.get("dueDate"), "dueDate", parse_dmy)
    status = form.status(d.get("dossierStatus"), "dossierStatus", context.statuses)
    if status is not None:
        form.put("TrangThaiHoSo", status.value)
    form.date("NgayKetThucXuLy", d.get("releaseDate"), "releaseDate", parse_dmy)
    if status is DossierStatus.NOT_RECEIVED:
        form.date("NgayTuChoi", d.get("releaseDate"), "releaseDate", parse_dmy)
    returned = form.date("NgayTra", d.get("finishDate"), "finishDate", parse_dmy)
    if returned is not None or status is DossierStatus.RESULT_RETURNED:
        form.put("HinhThuc", 1 if postal == 2 else 0)
    form.put("DonViXuLy", d.get("govAgencyName"))
    if isinstance(d.get("digitized"), bool):
        form.put("HoSoCoThanhPhanSoHoa", int(d["digitized"]))
    fee = d.get("feeAmount")
    if isinstance(fee, int) and not isinstance(fee, bool) and fee > 0:
        form.put("DanhSachLePhi", [{"TenPhiLePhi": "Phí, lệ phí", "Gia": fee}])
    form.put("DuocThanhToanTrucTuyen", _PAYMENT.get(d.get("paymentMethod") or "", 0))
    files = [f for f in raw.get("files") or [] if isinstance(f, dict) and not f.get("removed")]
    form.put("TaiLieuNop", [_submitted(f) for f in files if f.get("dossierPartType") == 1])
    form.put("DanhSachGiayToKetQua", [_result(f) for f in files if f.get("dossierPartType") == 2])
    dossier = finish_dossier(form, key, raw, context)

    code = d.get("dossierNo")
    steps: list[tuple[str, ProgressRecord | Rejection]] = [
        _step(action, code, context)
        for action in raw.get("actions") or []
        if isinstance(action, dict)
    ]
    return assemble(key, str(d.get("dossierId")), modified_at(d), dossier, steps)


def modified_at(d: dict[str, Any]) -> datetime | None:
    """The row's ``modifiedDate`` (``None`` when it does not parse)."""
    try:
        return parse_dmy(d.get("modifiedDate"))
    except Problem:
        return None


def _submitted(f: dict[str, Any]) -> dict[str, Any]:
    item: dict[str, Any] = {
        "TepDinhKemId": str(f.get("dossierFileId")),
        "TenTepDinhKem": f.get("displayName"),
        "MaThanhPhanHoSo": f.get("fileTemplateNo"),
        "DuongDanTaiTepTin": f.get("fileUrl"),
    }
    if isinstance(f.get("reused"), bool):
        item["DuocTaiSuDung"] = int(f["reused"])
    return {k: v for k, v in item.items() if v not in (None, "")}


def _result(f: dict[str, Any]) -> dict[str, Any]:
    item = {
        "GiayToId": str(f.get("dossierFileId")),
        "TenGiayTo": f.get("displayName"),
        "MaThanhPhanHoSo": f.get("fileTemplateNo"),
        "DuongDanTepTinKetQua": f.get("fileUrl"),
    }
    return {k: v for k, v in item.items() if v not in (None, "")}


def _step(
    action: dict[str, Any], code: object, context: Context
) -> tuple[str, ProgressRecord | Rejection]:
    key = f"action:{action.get('dossierActionId')}"
    form = FormBuilder()
    form.put("MaHoSo", code)
    form.put("NguoiXuLy", action.get("actionUser"))
    form.put("PhongBanXuLy", action.get("stepName"))
    form.date("ThoiDiemXuLy", action.get("createDate"), "createDate", parse_dmy)
    form.put("NoiDungXuLy", action.get("actionNote") or action.get("actionName"))
    status = form.status(action.get("dossierStatus"), "dossierStatus", context.statuses)
    if status is not None:
        form.put("TrangThai", status.value)
    return key, finish_progress(form, key, {"MaHoSo": code, "action": action})


def normalise_step(raw: dict[str, Any], context: Context) -> ProgressRecord | Rejection:
    """A quarantined action again (``raw`` as quarantined: ``{"MaHoSo", "action"}``)."""
    return _step(raw.get("action") or {}, raw.get("MaHoSo"), context)[1]
