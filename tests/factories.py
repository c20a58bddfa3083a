"""Records for service-level tests, built on the contract-mirroring builders of
``tests.domain.factories`` (one timeline, one set of field values)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from app.domain.dates import format_portal_datetime, parse_portal_datetime
from app.domain.dossier import Dossier, parse_dossier
from app.domain.progress import ProgressRecord, parse_progress
from tests.domain.factories import NGAY_TIEP_NHAN, valid_dossier, valid_progress

CODE = "000.00.53.H26-240125-00001"
RECEIVED_AT = parse_portal_datetime(NGAY_TIEP_NHAN)
"""``NgayTiepNhan`` of every built dossier that has one."""

# Personal data on purpose: tests check that it is masked wherever it could leak.
PERSONAL = {
    "SoGiayToChuHoSo": "001204567845",
    "SoDienThoai": "0912345678",
    "Email": "an.nguyen@example.vn",
}


def dossier_json(ma_ho_so: str = CODE, status: str = "4", **overrides: Any) -> dict[str, Any]:
    """A valid dossier at ``status`` (with the fields that status requires) and personal
    data filled in."""
    return valid_dossier(status, **({"MaHoSo": ma_ho_so} | PERSONAL | overrides))


def make_dossier(ma_ho_so: str = CODE, status: str = "4", **overrides: Any) -> Dossier:
    return parse_dossier(dossier_json(ma_ho_so, status, **overrides))


def make_progress(
    ma_ho_so: str = CODE,
    status: str = "4",
    at: datetime = RECEIVED_AT + timedelta(hours=1),
    **overrides: Any,
) -> ProgressRecord:
    """A valid progress record of ``ma_ho_so`` leading to ``status`` at ``at``."""
    fields = {"MaHoSo": ma_ho_so, "TrangThai": status, "ThoiDiemXuLy": format_portal_datetime(at)}
    return parse_progress(valid_progress(**(fields | overrides)))
