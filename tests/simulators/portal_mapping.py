"""The spec's field mappings (source-dialects.md §1, §2), written out plainly so that a
test can check that what the simulators call valid is a valid portal dossier."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from app.domain.dates import VN_TZ


class UnparsableError(ValueError):
    """A source date that does not parse: a connector quarantines the record."""


def _dmy(value: str) -> str | None:
    if not value:
        return None
    try:
        parsed = datetime.strptime(value, "%d/%m/%Y %H:%M:%S")  # noqa: DTZ007 - local time
    except ValueError:
        raise UnparsableError(value) from None
    return parsed.strftime("%Y%m%d%H%M%S")


def _iso(value: str | None) -> str | None:
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise UnparsableError(value) from None
    return parsed.astimezone(VN_TZ).strftime("%Y%m%d%H%M%S")


def _without_nulls(dossier: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in dossier.items() if v is not None}


def opencps_dossier(
    record: dict[str, Any], files: list[dict[str, Any]], status: str
) -> dict[str, Any]:
    kept = [f for f in files if not f["removed"]]
    results = [
        {
            "GiayToId": str(f["dossierFileId"]),
            "TenGiayTo": f["displayName"],
            "MaThanhPhanHoSo": f["fileTemplateNo"],
            "DuongDanTepTinKetQua": f["fileUrl"],
        }
        for f in kept
        if f["dossierPartType"] == 2
    ]
    inputs = [
        {"TenTepDinhKem": f["displayName"], "MaThanhPhanHoSo": f["fileTemplateNo"]}
        for f in kept
        if f["dossierPartType"] == 1
    ]
    channel = 2 if record["online"] else 3 if record["viaPostal"] == 2 else 1
    payment = {"online": 1, "gateway": 2}.get(record["paymentMethod"] or "", 0)
    return _without_nulls(
        {
            "MaHoSo": record["dossierNo"],
            "MaTTHC": record["serviceCode"],
            "TenTTHC": record["serviceName"],
            "MaLinhVuc": record["domainCode"],
            "TenLinhVuc": record["domainName"],
            "KenhThucHien": channel,
            "ChuHoSo": record["contactName"] or record["applicantName"],
            "LoaiDoiTuong": 2 if record["applicantIdType"] == "business" else 1,
            "SoGiayToChuHoSo": record["applicantIdNo"] or None,
            "SoDienThoai": record["contactTelNo"] or None,
            "Email": record["contactEmail"] or None,
            "TrichYeuHoSo": record["dossierNote"] or None,
            "NgayNopHoSo": _dmy(record["submitDate"]),
            "NgayTiepNhan": _dmy(record["receiveDate"]),
            "NgayHenTra": _dmy(record["dueDate"]),
            "TrangThaiHoSo": status,
            "NgayKetThucXuLy": _dmy(record["releaseDate"]),
            "NgayTuChoi": _dmy(record["releaseDate"]) if status == "3" else None,
            "NgayTra": _dmy(record["finishDate"]),
            "HinhThuc": 1 if record["viaPostal"] == 2 else 0,
            "DonViXuLy": record["govAgencyName"],
            "HoSoCoThanhPhanSoHoa": 1 if record["digitized"] else 0,
            "DuocThanhToanTrucTuyen": payment,
            "TaiLieuNop": inputs or None,
            "DanhSachLePhi": (
                [{"TenPhiLePhi": "Phí, lệ phí", "Gia": record["feeAmount"]}]
                if record["feeAmount"] > 0
                else None
            ),
            "DanhSachGiayToKetQua": results or None,
        }
    )


def _vietnamese(names: list[dict[str, Any]]) -> str:
    name: str = next(n["name"] for n in names if n["languageId"] == 228)
    return name


def igate_dossier(record: dict[str, Any], status: str) -> dict[str, Any]:
    method = record["applyMethod"]["id"]
    data = record["applicant"]["data"]
    attachments = record["attachment"]
    results = [
        {"GiayToId": a["id"], "TenGiayTo": a["filename"], "DuongDanTepTinKetQua": a["url"]}
        for a in attachments
        if a["group"] == "result"
    ]
    inputs = [
        {
            "TenTepDinhKem": a["filename"],
            "DuocSoHoa": 1 if a["digitized"] else 0,
            "DuocTaiSuDung": 1 if a["reused"] else 0,
        }
        for a in attachments
        if a["group"] == "input"
    ]
    fee = record["fee"]
    return _without_nulls(
        {
            "MaHoSo": record["code"],
            "MaTTHC": record["procedure"]["code"],
            "TenTTHC": _vietnamese(record["procedure"]["translate"]),
            "MaLinhVuc": record["procedure"]["sector"]["code"],
            "TenLinhVuc": _vietnamese(record["procedure"]["sector"]["name"]),
            "KenhThucHien": {0: 2, 1: 1, 2: 3}[method],
            "ChuHoSo": data["fullname"],
            "LoaiDoiTuong": record["applicant"]["type"],
            "SoGiayToChuHoSo": data["identityNumber"],
            "SoDienThoai": data["phoneNumber"],
            "Email": data["email"],
            "NgayNopHoSo": _iso(record["appliedDate"]),
            "NgayTiepNhan": _iso(record["acceptedDate"]),
            "NgayHenTra": _iso(record["appointmentDate"]),
            "TrangThaiHoSo": status,
            "NgayKetThucXuLy": _iso(record["completedDate"]),
            "NgayTuChoi": _iso(record["completedDate"]) if status == "3" else None,
            "NgayTra": _iso(record["returnedDate"]),
            "HinhThuc": 1 if method == 2 else 0,
            "DonViXuLy": _vietnamese(record["agency"]["name"]),
            "HoSoCoThanhPhanSoHoa": 1 if any(a["DuocSoHoa"] for a in inputs) else 0,
            "DuocThanhToanTrucTuyen": {"online": 1, "gateway": 2}.get(fee["method"] or "", 0),
            "TaiLieuNop": inputs or None,
            "DanhSachLePhi": (
                [{"TenPhiLePhi": "Phí, lệ phí", "Gia": fee["amount"]}]
                if fee["amount"] > 0
                else None
            ),
            "DanhSachGiayToKetQua": results or None,
        }
    )
