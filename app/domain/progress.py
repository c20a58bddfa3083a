"""A processing-progress record: the portal's ``CapNhatTienDoHoSoMC`` item (contract §3.2)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import NamedTuple

from pydantic import BaseModel, ConfigDict, ValidationError

from app.domain.agency import agency_of_dossier
from app.domain.dates import PortalDateTime, format_portal_datetime
from app.domain.dossier import NOT_AN_OBJECT, DossierCode, StatusCode, canonical_hash
from app.domain.fields import RequiredText, StrictText
from app.domain.status import DossierStatus
from app.domain.validation import (
    FieldIssue,
    FieldOrder,
    RecordInvalid,
    field_order,
    issues_from_pydantic,
    sorted_issues,
)


class ProgressRecord(BaseModel):
    """One processing step of a dossier; ``TrangThai`` is the status the step led to."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    MaHoSo: DossierCode
    NguoiXuLy: RequiredText
    ChucDanh: StrictText | None = None
    PhongBanXuLy: StrictText | None = None
    ThoiDiemXuLy: PortalDateTime
    NoiDungXuLy: RequiredText
    TrangThai: StatusCode
    NgayBatDau: PortalDateTime | None = None
    NgayKetThucTheoQuyDinh: PortalDateTime | None = None

    @property
    def agency(self) -> str:
        return agency_of_dossier(self.MaHoSo)

    @property
    def status(self) -> DossierStatus:
        return self.TrangThai

    def identity(self) -> ProgressIdentity:
        """What makes two records "the same step" to the portal (contract §3.2, policy):
        the same dossier, time, status, handler and content."""
        return ProgressIdentity(
            self.MaHoSo,
            format_portal_datetime(self.ThoiDiemXuLy),
            self.TrangThai.value,
            self.NguoiXuLy,
            self.NoiDungXuLy,
        )

    def identity_hash(self) -> str:
        """A fixed-size digest of :meth:`identity`, for unique indexes.

        The identity is encoded as a JSON array, so no text inside a field (a separator
        character included) can make two different identities hash alike."""
        encoded = json.dumps(list(self.identity()), separators=(",", ":"))
        return hashlib.sha256(encoded.encode()).hexdigest()

    def to_portal(self) -> dict[str, object]:
        return self.model_dump(mode="json", exclude_none=True)

    def content_hash(self) -> str:
        return canonical_hash(self.to_portal())


class ProgressIdentity(NamedTuple):
    MaHoSo: str
    ThoiDiemXuLy: str
    TrangThai: str
    NguoiXuLy: str
    NoiDungXuLy: str


PROGRESS_FIELD_ORDER: FieldOrder = field_order(ProgressRecord)


def parse_progress(raw: object) -> ProgressRecord:
    """Validate a portal-format progress record or raise :class:`RecordInvalid`."""
    if not isinstance(raw, Mapping):
        raise RecordInvalid([FieldIssue((), "type", NOT_AN_OBJECT)])
    try:
        return ProgressRecord.model_validate(raw)
    except ValidationError as exc:
        raise RecordInvalid(
            sorted_issues(issues_from_pydantic(exc, PROGRESS_FIELD_ORDER, raw))
        ) from None
