"""The canonical dossier: the portal's ``DongBoHoSoMC`` item (contract §3.1).

Field names stay as the contract spells them, in the contract's order — the order also
decides which offending field a ``-5`` message names first.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Container, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, Strict, ValidationError

from app.domain.agency import MA_HO_SO_MAX_LENGTH, MA_HO_SO_PATTERN, agency_of_dossier
from app.domain.codes import ApplicantType, Channel, OnlinePayment, ReturnMethod, YesNo
from app.domain.dates import (
    PortalDateError,
    PortalDateTime,
    normalise_portal_datetime,
    parse_portal_datetime,
)
from app.domain.fields import (
    ApplicantIdNumber,
    EmailAddress,
    NonNegativeInt,
    PhoneNumber,
    RequiredText,
    StrictText,
    Text200,
    Text500,
    matching,
    strict_member,
)
from app.domain.status import (
    PROCESSING_ENDED_AT,
    RECEPTION_REQUIRED_AT,
    RESULT_REQUIRED_AT,
    DossierStatus,
)
from app.domain.validation import (
    FieldIssue,
    FieldOrder,
    RecordInvalid,
    field_order,
    issue_sort_key,
    issues_from_pydantic,
    sorted_issues,
)

DossierCode = Annotated[
    str,
    Strict(),
    Field(max_length=MA_HO_SO_MAX_LENGTH, json_schema_extra={"pattern": MA_HO_SO_PATTERN}),
    matching(
        MA_HO_SO_PATTERN[1:-1],
        "phải có dạng <mã định danh cơ quan>-<số hồ sơ>, ví dụ 000.00.53.H26-240125-00012",
    ),
]
ChannelCode = Annotated[Channel, BeforeValidator(strict_member(Channel))]
ApplicantTypeCode = Annotated[ApplicantType, BeforeValidator(strict_member(ApplicantType))]
ReturnMethodCode = Annotated[ReturnMethod, BeforeValidator(strict_member(ReturnMethod))]
OnlinePaymentCode = Annotated[OnlinePayment, BeforeValidator(strict_member(OnlinePayment))]
Flag = Annotated[YesNo, BeforeValidator(strict_member(YesNo))]
StatusCode = Annotated[DossierStatus, BeforeValidator(strict_member(DossierStatus))]

_RECORD = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=False)


class SubmittedDocument(BaseModel):
    """``TaiLieuNop[]``: a document the applicant submitted."""

    model_config = _RECORD

    TepDinhKemId: StrictText | None = None
    TenTepDinhKem: RequiredText
    MaThanhPhanHoSo: StrictText | None = None
    DuongDanTaiTepTin: StrictText | None = None
    IsDeleted: Flag | None = None
    DuocSoHoa: Flag | None = None
    DuocTaiSuDung: Flag | None = None
    DuocLayTuKhoDMQG: Flag | None = None


class Fee(BaseModel):
    """``DanhSachLePhi[]``: a fee or charge; ``Gia`` in VND."""

    model_config = _RECORD

    MaPhiLePhi: StrictText | None = None
    TenPhiLePhi: RequiredText
    HinhThucThu: NonNegativeInt | None = None
    Gia: NonNegativeInt
    LoaiPhiLePhi: NonNegativeInt | None = None


class SupplementRequest(BaseModel):
    """``DanhSachHoSoBoSung[]``: a request for supplementary documents and its answer."""

    model_config = _RECORD

    HoSoBoSungId: StrictText | None = None
    NguoiYeuCauBoSung: StrictText | None = None
    NoiDungBoSung: StrictText | None = None
    NgayBoSung: PortalDateTime
    NgayTiepNhanBoSung: PortalDateTime | None = None
    TrangThaiBoSung: NonNegativeInt | None = None
    NgayHenTraTruoc: PortalDateTime | None = None
    NgayHenTraMoi: PortalDateTime | None = None


class ResultDocument(BaseModel):
    """``DanhSachGiayToKetQua[]``: a result document (required at status 9 and 10)."""

    model_config = _RECORD

    GiayToId: StrictText | None = None
    TenGiayTo: RequiredText
    MaThanhPhanHoSo: StrictText | None = None
    MaGiayToKetQua: StrictText | None = None
    DuongDanTepTinKetQua: StrictText | None = None


class Dossier(BaseModel):
    """A dossier in the portal's format. Build it with :func:`parse_dossier`, which applies
    the contract's cross-field rules as well as the per-field ones."""

    model_config = _RECORD

    MaHoSo: DossierCode
    MaTTHC: RequiredText
    TenTTHC: Text500
    MaLinhVuc: RequiredText
    TenLinhVuc: RequiredText
    KenhThucHien: ChannelCode
    ChuHoSo: Text200
    LoaiDoiTuong: ApplicantTypeCode
    MaDoiTuong: StrictText | None = None
    SoGiayToChuHoSo: ApplicantIdNumber | None = None
    SoDienThoai: PhoneNumber | None = None
    Email: EmailAddress | None = None
    Fax: PhoneNumber | None = None
    TrichYeuHoSo: StrictText | None = None
    ThongTinKhac: StrictText | None = None
    GhiChu: StrictText | None = None
    SoBienNhan: StrictText | None = None
    NgayNopHoSo: PortalDateTime | None = None
    NgayTiepNhan: PortalDateTime | None = None
    NgayHenTra: PortalDateTime | None = None
    TrangThaiHoSo: StatusCode
    NgayKetThucXuLy: PortalDateTime | None = None
    NgayTuChoi: PortalDateTime | None = None
    NgayTra: PortalDateTime | None = None
    HinhThuc: ReturnMethodCode | None = None
    ThongTinTra: StrictText | None = None
    DonViXuLy: RequiredText
    HoSoCoThanhPhanSoHoa: Flag | None = None
    TaiKhoanDuocXacThucVoiVNeID: Flag | None = None
    DuocThanhToanTrucTuyen: OnlinePaymentCode | None = None
    TaiLieuNop: list[SubmittedDocument] | None = None
    DanhSachLePhi: list[Fee] | None = None
    DanhSachHoSoBoSung: list[SupplementRequest] | None = None
    DanhSachGiayToKetQua: list[ResultDocument] | None = None

    @property
    def agency(self) -> str:
        """The owning agency: the code that prefixes ``MaHoSo``."""
        return agency_of_dossier(self.MaHoSo)

    @property
    def status(self) -> DossierStatus:
        return self.TrangThaiHoSo

    def to_portal(self) -> dict[str, Any]:
        """The JSON object sent to the portal: contract names, 14-digit dates, no nulls."""
        return self.model_dump(mode="json", exclude_none=True)

    def content_hash(self) -> str:
        """SHA-256 of the canonical JSON form: equal hashes mean the portal would see no
        change (absent and null are the same to it)."""
        return canonical_hash(self.to_portal())


def canonical_json(value: Any) -> bytes:
    """A JSON value in canonical form: sorted keys, no spaces, UTF-8."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def canonical_hash(portal_json: Mapping[str, Any]) -> str:
    """SHA-256 of a JSON object in canonical form."""
    return hashlib.sha256(canonical_json(portal_json)).hexdigest()


DOSSIER_FIELD_ORDER: FieldOrder = field_order(Dossier)

NOT_AN_OBJECT = "phải là một đối tượng JSON"


def parse_dossier(raw: object, *, procedures: Container[str] | None = None) -> Dossier:
    """Validate a portal-format dossier and return it, or raise :class:`RecordInvalid`
    listing every broken rule, first the one the portal's ``-5`` message would name.

    ``procedures``, when given, is the catalogue of known ``MaTTHC`` codes (contract §4);
    without it the code is only checked for presence.
    """
    if not isinstance(raw, Mapping):
        raise RecordInvalid([FieldIssue((), "type", NOT_AN_OBJECT)])
    issues: list[FieldIssue] = []
    dossier: Dossier | None = None
    try:
        dossier = Dossier.model_validate(raw)
    except ValidationError as exc:
        issues.extend(issues_from_pydantic(exc, DOSSIER_FIELD_ORDER, raw))
    issues.extend(_cross_field_issues(raw, procedures))
    if issues:
        raise RecordInvalid(sorted_issues(issues))
    assert dossier is not None  # noqa: S101 - no issues means pydantic accepted the record
    return dossier


# --- cross-field rules --------------------------------------------------------------------
# They read the raw mapping so that they run even when some other field is broken: the
# message must name the *first* offending field, which may be one these rules check.


class _Unparsable:
    """A date field that is present but not a valid date (its own error is reported)."""


_UNPARSABLE = _Unparsable()


@dataclass(frozen=True, slots=True)
class _Conditional:
    field: str
    required_at: frozenset[DossierStatus]


_CONDITIONAL_DATES = (
    _Conditional("NgayNopHoSo", frozenset({DossierStatus.NEWLY_REGISTERED})),
    _Conditional("NgayTiepNhan", RECEPTION_REQUIRED_AT),
    _Conditional("NgayHenTra", RECEPTION_REQUIRED_AT),
    _Conditional("NgayKetThucXuLy", PROCESSING_ENDED_AT),
    _Conditional("NgayTuChoi", frozenset({DossierStatus.NOT_RECEIVED})),
    _Conditional("NgayTra", frozenset({DossierStatus.RESULT_RETURNED})),
    _Conditional("HinhThuc", frozenset({DossierStatus.RESULT_RETURNED})),
)

# (later, earlier): `later` must not be before `earlier` when both are set.
_DATE_ORDER = (
    ("NgayHenTra", "NgayTiepNhan"),
    ("NgayKetThucXuLy", "NgayTiepNhan"),
)


def _present(raw: Mapping[str, Any], name: str) -> bool:
    # Contract §3.1: an optional field sent as null is treated as absent.
    return raw.get(name) is not None


def _date(raw: Mapping[str, Any], name: str) -> datetime | _Unparsable | None:
    value = raw.get(name)
    if value is None:
        return None
    try:
        if isinstance(value, datetime):  # an aware datetime passed from code
            return normalise_portal_datetime(value)
        if isinstance(value, str):
            return parse_portal_datetime(value)
    except PortalDateError:
        return _UNPARSABLE
    return _UNPARSABLE


def _status(raw: Mapping[str, Any]) -> DossierStatus | None:
    value = raw.get("TrangThaiHoSo")
    if not isinstance(value, str):
        return None
    try:
        return DossierStatus(value)
    except ValueError:
        return None


def _issue(name: str, code: str, message: str) -> FieldIssue:
    return FieldIssue((name,), code, message, issue_sort_key((name,), code, DOSSIER_FIELD_ORDER))


def _cross_field_issues(
    raw: Mapping[str, Any], procedures: Container[str] | None
) -> list[FieldIssue]:
    issues: list[FieldIssue] = []
    code = raw.get("MaTTHC")
    if procedures is not None and isinstance(code, str) and code.strip() and code not in procedures:
        issues.append(
            _issue("MaTTHC", "unknown_procedure", "không có trong danh mục thủ tục hành chính")
        )

    status = _status(raw)
    if status is not None:
        issues.extend(
            _issue(rule.field, "required", f"bắt buộc khi TrangThaiHoSo = {status.value}")
            for rule in _CONDITIONAL_DATES
            if status in rule.required_at and not _present(raw, rule.field)
        )
        if status in RESULT_REQUIRED_AT:
            results = raw.get("DanhSachGiayToKetQua")
            if results is None or (isinstance(results, list) and not results):
                issues.append(
                    _issue(
                        "DanhSachGiayToKetQua",
                        "required",
                        f"cần ít nhất một giấy tờ kết quả khi TrangThaiHoSo = {status.value}",
                    )
                )

    for later, earlier in _DATE_ORDER:
        later_at, earlier_at = _date(raw, later), _date(raw, earlier)
        if (
            isinstance(later_at, datetime)
            and isinstance(earlier_at, datetime)
            and later_at < earlier_at
        ):
            issues.append(_issue(later, "date_order", f"phải ≥ {earlier}"))
    return issues
