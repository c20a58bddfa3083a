"""Contract §3.1: every data rule of a ``DongBoHoSoMC`` dossier, one test case per rule."""

from __future__ import annotations

from itertools import pairwise
from typing import Any

import pytest

from app.domain import Dossier, RecordInvalid, parse_dossier
from app.domain.dossier import Fee, ResultDocument, SubmittedDocument, SupplementRequest

from .factories import (
    ABSENT,
    ALL_STATUSES,
    ALWAYS_REQUIRED,
    CONDITIONAL_REQUIRED,
    DOSSIER_FIELDS,
    ITEM_FIELDS,
    MA_TTHC,
    NGAY_TIEP_NHAN,
    OPTIONAL_FIELDS,
    fee,
    full_dossier,
    issue_summary,
    result_document,
    submitted_document,
    supplement_request,
    valid_dossier,
)

AGENCY = "000.00.53.H26"


def rejected(record: object, **kwargs: Any) -> RecordInvalid:
    with pytest.raises(RecordInvalid) as info:
        parse_dossier(record, **kwargs)
    return info.value


def only_issue(record: object, **kwargs: Any) -> tuple[str, str]:
    """The single (path, code) a record breaks; fails if it breaks more or fewer rules."""
    summary = issue_summary(rejected(record, **kwargs))
    assert len(summary) == 1, summary
    return summary[0]


# --- valid records -------------------------------------------------------------------------


@pytest.mark.parametrize("status", ALL_STATUSES)
def test_minimal_dossier_is_accepted_at_every_status(status: str) -> None:
    dossier = parse_dossier(valid_dossier(status))
    assert dossier.TrangThaiHoSo.value == status
    assert dossier.to_portal() == valid_dossier(status)


@pytest.mark.parametrize("status", ALL_STATUSES)
def test_dossier_with_every_field_is_accepted_at_every_status(status: str) -> None:
    dossier = parse_dossier(full_dossier(status))
    assert dossier.to_portal() == full_dossier(status)


def test_model_fields_follow_the_contract_table() -> None:
    # The -5 message order is derived from the declaration order, so it must be the table's.
    assert tuple(Dossier.model_fields) == DOSSIER_FIELDS
    assert tuple(SubmittedDocument.model_fields) == ITEM_FIELDS["TaiLieuNop"]
    assert tuple(Fee.model_fields) == ITEM_FIELDS["DanhSachLePhi"]
    assert tuple(SupplementRequest.model_fields) == ITEM_FIELDS["DanhSachHoSoBoSung"]
    assert tuple(ResultDocument.model_fields) == ITEM_FIELDS["DanhSachGiayToKetQua"]


def test_dossier_exposes_agency_and_status() -> None:
    dossier = parse_dossier(valid_dossier("4"))
    assert dossier.agency == AGENCY
    assert dossier.status.value == "4"


@pytest.mark.parametrize(
    "raw",
    [None, [], ["x"], "MaHoSo", 1, 1.5, True],
    ids=["null", "empty-list", "list", "string", "int", "float", "bool"],
)
def test_non_object_is_rejected_as_a_whole(raw: object) -> None:
    error = rejected(raw)
    assert issue_summary(error) == [("", "type")]
    assert error.message("data[2]") == "data[2]: phải là một đối tượng JSON"


# --- always-required fields ----------------------------------------------------------------


@pytest.mark.parametrize("field", ALWAYS_REQUIRED)
def test_missing_required_field(field: str) -> None:
    assert only_issue(valid_dossier("5", **{field: ABSENT})) == (field, "required")


@pytest.mark.parametrize("field", ALWAYS_REQUIRED)
def test_null_required_field_is_reported_as_required(field: str) -> None:
    assert only_issue(valid_dossier("5", **{field: None})) == (field, "required")


@pytest.mark.parametrize(
    "field", ["MaTTHC", "TenTTHC", "MaLinhVuc", "TenLinhVuc", "ChuHoSo", "DonViXuLy"]
)
@pytest.mark.parametrize("blank", ["", "   "], ids=["empty", "spaces"])
def test_blank_required_text_is_reported_as_required(field: str, blank: str) -> None:
    assert only_issue(valid_dossier("5", **{field: blank})) == (field, "required")


@pytest.mark.parametrize(
    ("item_list", "field"),
    [
        ("TaiLieuNop", "TenTepDinhKem"),
        ("DanhSachLePhi", "TenPhiLePhi"),
        ("DanhSachLePhi", "Gia"),
        ("DanhSachHoSoBoSung", "NgayBoSung"),
        ("DanhSachGiayToKetQua", "TenGiayTo"),
    ],
)
@pytest.mark.parametrize("how", ["missing", "null"])
def test_required_field_of_a_list_item(item_list: str, field: str, how: str) -> None:
    item = full_dossier("10")[item_list][0]
    if how == "missing":
        del item[field]
    else:
        item[field] = None
    record = full_dossier("10", **{item_list: [item]})
    assert only_issue(record) == (f"{item_list}[0].{field}", "required")


# --- requirements that depend on TrangThaiHoSo --------------------------------------------

CONDITIONAL_CASES = [
    (field, status, status in required_at)
    for field, required_at in CONDITIONAL_REQUIRED.items()
    for status in ALL_STATUSES
]


def _case_id(field: str, status: str, required: bool) -> str:
    return f"{field}-{'required' if required else 'optional'}-at-{status}"


@pytest.mark.parametrize(
    ("field", "status", "required"),
    CONDITIONAL_CASES,
    ids=[_case_id(*case) for case in CONDITIONAL_CASES],
)
@pytest.mark.parametrize("how", ["missing", "null"])
def test_conditional_requirement(field: str, status: str, required: bool, how: str) -> None:
    record = full_dossier(status, **{field: ABSENT if how == "missing" else None})
    if required:
        assert only_issue(record) == (field, "required")
    else:
        dossier = parse_dossier(record)
        assert field not in dossier.to_portal()


@pytest.mark.parametrize("status", ALL_STATUSES)
def test_empty_result_list(status: str) -> None:
    record = full_dossier(status, DanhSachGiayToKetQua=[])
    if status in {"9", "10"}:
        assert only_issue(record) == ("DanhSachGiayToKetQua", "required")
    else:
        assert parse_dossier(record).DanhSachGiayToKetQua == []


@pytest.mark.parametrize("status", ["9", "10"])
def test_one_result_document_is_enough(status: str) -> None:
    record = valid_dossier(status, DanhSachGiayToKetQua=[result_document()])
    assert parse_dossier(record).DanhSachGiayToKetQua is not None


def test_conditional_message_names_the_status() -> None:
    error = rejected(valid_dossier("2", NgayTiepNhan=ABSENT))
    assert error.message() == "NgayTiepNhan: bắt buộc khi TrangThaiHoSo = 2"


# --- length limits -------------------------------------------------------------------------

MA_HO_SO_50 = AGENCY + "-" + "1" * 36


@pytest.mark.parametrize(
    ("field", "limit", "at_limit"),
    [
        ("MaHoSo", 50, MA_HO_SO_50),
        ("TenTTHC", 500, "T" * 500),
        ("ChuHoSo", 200, "C" * 200),
    ],
    ids=["MaHoSo-50", "TenTTHC-500", "ChuHoSo-200"],
)
def test_length_limit(field: str, limit: int, at_limit: str) -> None:
    assert len(at_limit) == limit
    assert getattr(parse_dossier(valid_dossier(**{field: at_limit})), field) == at_limit
    assert only_issue(valid_dossier(**{field: at_limit + "9"})) == (field, "too_long")


# --- formats -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    ["000.00.53.H26-240125-00012", "000.00.00.G05-1", "123.45.67.H99-A/b_c.d~!"],
)
def test_ma_ho_so_format_accepted(value: str) -> None:
    assert parse_dossier(valid_dossier(MaHoSo=value)).MaHoSo == value


@pytest.mark.parametrize(
    "value",
    [
        pytest.param("000.00.53.H26", id="no-number"),
        pytest.param("000.00.53.H26-", id="empty-number"),
        pytest.param("000.00.53.H26_240125", id="no-dash"),
        pytest.param("000.00.53.X26-1", id="bad-letter"),
        pytest.param("000.00.53.h26-1", id="lowercase-letter"),
        pytest.param("00.00.53.H26-1", id="short-segment"),
        pytest.param("0000.00.53.H26-1", id="long-segment"),
        pytest.param("000-00-53-H26-1", id="dashes-for-dots"),
        pytest.param("000.00.53.H2-1", id="one-digit-unit"),
        pytest.param("000.00.53.H26-12 3", id="space-in-number"),
        pytest.param("000.00.53.H26-số1", id="non-ascii-number"),
        pytest.param("٠٠٠.٠٠.٥٣.H٢٦-1", id="arabic-indic-digits"),
        pytest.param("000.00.53.H26-1\n", id="trailing-newline"),
        pytest.param(" 000.00.53.H26-1", id="leading-space"),
        pytest.param("", id="empty"),
    ],
)
def test_ma_ho_so_format_rejected(value: str) -> None:
    assert only_issue(valid_dossier(MaHoSo=value)) == ("MaHoSo", "format")


@pytest.mark.parametrize(
    "value",
    [
        pytest.param("001204567", id="9-digit-id"),
        pytest.param("001204567845", id="12-digit-id"),
        pytest.param("0101234567", id="10-digit-tax-code"),
        pytest.param("0101234567-001", id="branch-tax-code"),
    ],
)
def test_applicant_id_accepted(value: str) -> None:
    assert parse_dossier(valid_dossier(SoGiayToChuHoSo=value)).SoGiayToChuHoSo == value


@pytest.mark.parametrize(
    "value",
    [
        pytest.param("00120456", id="8-digits"),
        pytest.param("00120456789", id="11-digits"),
        pytest.param("0012045678451", id="13-digits"),
        pytest.param("0101234567-01", id="branch-2-digits"),
        pytest.param("0101234567-0001", id="branch-4-digits"),
        pytest.param("010123456-001", id="9-digit-base-with-branch"),
        pytest.param("001204567845-001", id="12-digit-base-with-branch"),
        pytest.param("00120456784A", id="letter"),
        pytest.param("0012 0456 7845", id="spaces"),
        pytest.param("001204567845\n", id="trailing-newline"),
        pytest.param("٠٠١٢٠٤٥٦٧٨٤٥", id="arabic-indic-digits"),
        pytest.param("+001204567", id="plus"),
        pytest.param("", id="empty"),
    ],
)
def test_applicant_id_rejected(value: str) -> None:
    assert only_issue(valid_dossier(SoGiayToChuHoSo=value)) == ("SoGiayToChuHoSo", "format")


@pytest.mark.parametrize("field", ["SoDienThoai", "Fax"])
@pytest.mark.parametrize(
    "value",
    [
        pytest.param("02838291", id="8-digits"),
        pytest.param("0912345678", id="10-digits"),
        pytest.param("123456789012345", id="15-digits"),
        pytest.param("+84912345678", id="plus"),
        pytest.param("+12345678", id="plus-8-digits"),
    ],
)
def test_phone_accepted(field: str, value: str) -> None:
    assert getattr(parse_dossier(valid_dossier(**{field: value})), field) == value


@pytest.mark.parametrize("field", ["SoDienThoai", "Fax"])
@pytest.mark.parametrize(
    "value",
    [
        pytest.param("0283829", id="7-digits"),
        pytest.param("+1234567", id="plus-7-digits"),
        pytest.param("1234567890123456", id="16-digits"),
        pytest.param("++84912345678", id="double-plus"),
        pytest.param("84+912345678", id="inner-plus"),
        pytest.param("0912 345 678", id="spaces"),
        pytest.param("0912-345-678", id="dashes"),
        pytest.param("(028)38291234", id="parentheses"),
        pytest.param("0912345678\n", id="trailing-newline"),
        pytest.param("０９１２３４５６７８", id="fullwidth-digits"),
        pytest.param("không có", id="text"),
        pytest.param("", id="empty"),
    ],
)
def test_phone_rejected(field: str, value: str) -> None:
    assert only_issue(valid_dossier(**{field: value})) == (field, "format")


@pytest.mark.parametrize(
    "value", ["an.nguyen@example.vn", "a+tag@mail.example.com.vn", "x_y-z@sub.domain.gov.vn"]
)
def test_email_accepted(value: str) -> None:
    # Twice: the second answer comes from the validator's memo of addresses.
    for _ in range(2):
        assert parse_dossier(valid_dossier(Email=value)).Email == value


@pytest.mark.parametrize(
    "value",
    [
        pytest.param("an.nguyen", id="no-at"),
        pytest.param("@example.vn", id="no-local-part"),
        pytest.param("an@", id="no-domain"),
        pytest.param("an@example", id="no-dot-in-domain"),
        pytest.param("an@@example.vn", id="double-at"),
        pytest.param("an nguyen@example.vn", id="space"),
        pytest.param("an..nguyen@example.vn", id="double-dot"),
        pytest.param("an@example..vn", id="empty-label"),
        pytest.param("", id="empty"),
    ],
)
def test_email_rejected(value: str) -> None:
    for _ in range(2):  # the second from the memo, as above
        assert only_issue(valid_dossier(Email=value)) == ("Email", "format")


# --- dates ---------------------------------------------------------------------------------

TOP_LEVEL_DATES = ["NgayNopHoSo", "NgayTiepNhan", "NgayHenTra", "NgayKetThucXuLy", "NgayTuChoi"]
TOP_LEVEL_DATES.append("NgayTra")
SUPPLEMENT_DATES = ["NgayBoSung", "NgayTiepNhanBoSung", "NgayHenTraTruoc", "NgayHenTraMoi"]

BAD_DATES = [
    pytest.param("20240230120000", id="30-february"),
    pytest.param("20230229120000", id="29-february-non-leap"),
    pytest.param("20241301120000", id="month-13"),
    pytest.param("20240100120000", id="day-0"),
    pytest.param("20240125240000", id="hour-24"),
    pytest.param("20240125126000", id="minute-60"),
    pytest.param("20240125120060", id="second-60"),
    pytest.param("2024012512000", id="13-digits"),
    pytest.param("202401251200000", id="15-digits"),
    pytest.param("2024-01-25 12:00:00", id="iso-like"),
    pytest.param("25/01/2024 12:00:00", id="source-format"),
    pytest.param("20240125120000\n", id="trailing-newline"),
    pytest.param(" 20240125120000", id="leading-space"),
    pytest.param("٢٠٢٤٠١٢٥١٢٠٠٠٠", id="arabic-indic-digits"),
    pytest.param("", id="empty"),
    pytest.param(20240125120000, id="json-int"),
    pytest.param(True, id="json-bool"),
    pytest.param(["20240125120000"], id="json-list"),
]


@pytest.mark.parametrize("field", TOP_LEVEL_DATES)
@pytest.mark.parametrize("value", BAD_DATES)
def test_bad_date(field: str, value: object) -> None:
    assert only_issue(full_dossier("10", **{field: value})) == (field, "portal_date")


@pytest.mark.parametrize("field", SUPPLEMENT_DATES)
@pytest.mark.parametrize("value", BAD_DATES)
def test_bad_date_in_supplement_request(field: str, value: object) -> None:
    record = full_dossier("10", DanhSachHoSoBoSung=[supplement_request(**{field: value})])
    assert only_issue(record) == (f"DanhSachHoSoBoSung[0].{field}", "portal_date")


@pytest.mark.parametrize(
    "value",
    [
        pytest.param("20240229120000", id="29-february-leap"),
        pytest.param("20000229000000", id="29-february-2000"),
        pytest.param("20241231235959", id="end-of-year"),
    ],
)
def test_real_calendar_dates_are_accepted(value: str) -> None:
    dossier = parse_dossier(valid_dossier("1", NgayNopHoSo=value))
    assert dossier.to_portal()["NgayNopHoSo"] == value


@pytest.mark.parametrize(
    ("value", "accepted"),
    [
        ("18991231235959", False),
        ("19000101000000", True),
        ("20991231235959", True),
        ("21000101000000", False),
    ],
    ids=["1899", "1900", "2099", "2100"],
)
def test_date_year_window_policy(value: str, accepted: bool) -> None:
    record = valid_dossier("1", NgayNopHoSo=value)
    if accepted:
        assert parse_dossier(record).to_portal()["NgayNopHoSo"] == value
    else:
        assert only_issue(record) == ("NgayNopHoSo", "portal_date")


# --- ranges and enumerations ---------------------------------------------------------------

ENUMS: list[tuple[str, list[int], list[int]]] = [
    ("KenhThucHien", [1, 2, 3], [0, 4, -1]),
    ("LoaiDoiTuong", [1, 2, 3, 4], [0, 5]),
    ("HinhThuc", [0, 1], [2, -1]),
    ("HoSoCoThanhPhanSoHoa", [0, 1], [2, -1]),
    ("TaiKhoanDuocXacThucVoiVNeID", [0, 1], [2, -1]),
    ("DuocThanhToanTrucTuyen", [0, 1, 2], [3, -1]),
]


@pytest.mark.parametrize(
    ("field", "value"),
    [(field, v) for field, good, _ in ENUMS for v in good],
    ids=[f"{field}={v}" for field, good, _ in ENUMS for v in good],
)
def test_enumeration_value_accepted(field: str, value: int) -> None:
    dossier = parse_dossier(full_dossier("10", **{field: value}))
    assert dossier.to_portal()[field] == value


@pytest.mark.parametrize(
    ("field", "value"),
    [(field, v) for field, _, bad in ENUMS for v in bad],
    ids=[f"{field}={v}" for field, _, bad in ENUMS for v in bad],
)
def test_enumeration_value_rejected(field: str, value: int) -> None:
    assert only_issue(full_dossier("10", **{field: value})) == (field, "not_allowed")


@pytest.mark.parametrize("field", ITEM_FIELDS["TaiLieuNop"][4:])
@pytest.mark.parametrize(("value", "code"), [(0, None), (1, None), (2, "not_allowed")])
def test_document_flags(field: str, value: int, code: str | None) -> None:
    record = full_dossier("10", TaiLieuNop=[submitted_document(**{field: value})])
    if code is None:
        assert parse_dossier(record).to_portal()["TaiLieuNop"][0][field] == value
    else:
        assert only_issue(record) == (f"TaiLieuNop[0].{field}", code)


@pytest.mark.parametrize("value", ["0", "11", "01", " 1", "1 ", "", "mười"], ids=repr)
def test_status_outside_1_to_10_rejected(value: str) -> None:
    assert only_issue(full_dossier("10", TrangThaiHoSo=value)) == ("TrangThaiHoSo", "not_allowed")


@pytest.mark.parametrize("gia", [0, 1, 10**12])
def test_fee_amount_zero_or_more_accepted(gia: int) -> None:
    record = full_dossier("10", DanhSachLePhi=[fee(Gia=gia)])
    assert parse_dossier(record).to_portal()["DanhSachLePhi"][0]["Gia"] == gia


def test_negative_fee_amount_rejected() -> None:
    error = rejected(full_dossier("10", DanhSachLePhi=[fee(Gia=-1)]))
    assert issue_summary(error) == [("DanhSachLePhi[0].Gia", "out_of_range")]
    assert error.message("data[0]") == "data[0].DanhSachLePhi[0].Gia: phải ≥ 0"


@pytest.mark.parametrize(
    ("item_list", "field"),
    [
        ("DanhSachLePhi", "HinhThucThu"),
        ("DanhSachLePhi", "LoaiPhiLePhi"),
        ("DanhSachHoSoBoSung", "TrangThaiBoSung"),
    ],
)
def test_negative_item_codes_rejected_policy(item_list: str, field: str) -> None:
    item = full_dossier("10")[item_list][0]
    item[field] = -1
    record = full_dossier("10", **{item_list: [item]})
    assert only_issue(record) == (f"{item_list}[0].{field}", "out_of_range")


# --- strict JSON types ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("KenhThucHien", "2"),
        ("KenhThucHien", 2.0),
        ("KenhThucHien", True),
        ("LoaiDoiTuong", "1"),
        ("LoaiDoiTuong", 1.0),
        ("HinhThuc", False),
        ("HinhThuc", "0"),
        ("HoSoCoThanhPhanSoHoa", True),
        ("HoSoCoThanhPhanSoHoa", "1"),
        ("TaiKhoanDuocXacThucVoiVNeID", 1.0),
        ("DuocThanhToanTrucTuyen", "0"),
        ("DuocThanhToanTrucTuyen", False),
        ("TrangThaiHoSo", 4),
        ("TrangThaiHoSo", 10),
        ("TrangThaiHoSo", 4.0),
        ("MaHoSo", 12),
        ("MaTTHC", 1.000656),
        ("TenTTHC", ["Đăng ký khai sinh"]),
        ("ChuHoSo", {"ten": "An"}),
        ("DonViXuLy", 5),
        ("MaDoiTuong", 123),
        ("SoGiayToChuHoSo", 1204567845),
        ("SoDienThoai", 912345678),
        ("Email", {"email": "an@example.vn"}),
        ("GhiChu", False),
        ("TaiLieuNop", {"TenTepDinhKem": "x"}),
        ("TaiLieuNop", "x"),
        ("DanhSachLePhi", 1),
        ("DanhSachGiayToKetQua", {"TenGiayTo": "x"}),
    ],
    ids=lambda v: repr(v)[:30],
)
def test_wrong_json_type_rejected(field: str, value: object) -> None:
    assert only_issue(full_dossier("10", **{field: value})) == (field, "type")


@pytest.mark.parametrize("gia", [1.0, "1", True, None], ids=repr)
def test_fee_amount_must_be_a_json_integer(gia: object) -> None:
    code = "required" if gia is None else "type"
    record = full_dossier("10", DanhSachLePhi=[fee(Gia=gia)])
    assert only_issue(record) == ("DanhSachLePhi[0].Gia", code)


@pytest.mark.parametrize("value", [True, "1", 1.0], ids=repr)
def test_document_flag_must_be_a_json_integer(value: object) -> None:
    record = full_dossier("10", TaiLieuNop=[submitted_document(IsDeleted=value)])
    assert only_issue(record) == ("TaiLieuNop[0].IsDeleted", "type")


@pytest.mark.parametrize("item", ["x", 1, None, ["TenTepDinhKem"]], ids=repr)
def test_list_item_must_be_an_object(item: object) -> None:
    assert only_issue(full_dossier("10", TaiLieuNop=[item])) == ("TaiLieuNop[0]", "type")


# --- dates in order ------------------------------------------------------------------------


def test_due_date_before_reception_rejected() -> None:
    record = valid_dossier("2", NgayTiepNhan="20240125083000", NgayHenTra="20240125082959")
    error = rejected(record)
    assert issue_summary(error) == [("NgayHenTra", "date_order")]
    assert error.message("data[3]") == "data[3].NgayHenTra: phải ≥ NgayTiepNhan"


def test_due_date_equal_to_reception_accepted() -> None:
    record = valid_dossier("2", NgayTiepNhan=NGAY_TIEP_NHAN, NgayHenTra=NGAY_TIEP_NHAN)
    dossier = parse_dossier(record)
    assert dossier.NgayHenTra == dossier.NgayTiepNhan


def test_end_of_processing_before_reception_rejected() -> None:
    record = valid_dossier("9", NgayTiepNhan="20240125083000", NgayKetThucXuLy="20240124235959")
    error = rejected(record)
    assert issue_summary(error) == [("NgayKetThucXuLy", "date_order")]
    assert error.message() == "NgayKetThucXuLy: phải ≥ NgayTiepNhan"


def test_end_of_processing_equal_to_reception_accepted() -> None:
    record = valid_dossier("9", NgayTiepNhan=NGAY_TIEP_NHAN, NgayKetThucXuLy=NGAY_TIEP_NHAN)
    dossier = parse_dossier(record)
    assert dossier.NgayKetThucXuLy == dossier.NgayTiepNhan


@pytest.mark.parametrize("status", ["3", "8"])
def test_end_of_processing_without_reception_is_not_ordered(status: str) -> None:
    record = valid_dossier(status, NgayKetThucXuLy="19000101000000")
    assert parse_dossier(record).NgayTiepNhan is None


def test_due_date_without_reception_is_not_ordered() -> None:
    record = valid_dossier("5", NgayHenTra="19000101000000")
    assert parse_dossier(record).NgayHenTra is not None


def test_both_date_orders_reported_in_table_order() -> None:
    record = valid_dossier(
        "9",
        NgayKetThucXuLy="20240101000000",
        NgayHenTra="20240101000000",
        NgayTiepNhan="20240201000000",
    )
    assert issue_summary(rejected(record)) == [
        ("NgayHenTra", "date_order"),
        ("NgayKetThucXuLy", "date_order"),
    ]


def test_date_order_is_checked_even_when_other_fields_are_broken() -> None:
    record = valid_dossier(
        "2",
        MaTTHC=ABSENT,
        NgayHenTra="20240101000000",
        NgayTiepNhan="20240201000000",
        DonViXuLy=7,
    )
    assert issue_summary(rejected(record)) == [
        ("MaTTHC", "required"),
        ("NgayHenTra", "date_order"),
        ("DonViXuLy", "type"),
    ]


def test_unparsable_date_is_not_also_reported_as_out_of_order() -> None:
    record = valid_dossier("2", NgayTiepNhan="20240230000000", NgayHenTra="20240101000000")
    assert issue_summary(rejected(record)) == [("NgayTiepNhan", "portal_date")]


# --- unknown fields ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name", ["Foo", "QuaTrinhXuLy", "session", "maHoSo ", "NgayNopHoso"], ids=repr
)
def test_unknown_top_level_field_rejected(name: str) -> None:
    error = rejected(valid_dossier(**{name: "x"}))
    assert issue_summary(error) == [(name, "unknown_field")]
    assert error.message("data[1]").startswith(f"data[1].{name}: ")


def test_unknown_field_sent_as_null_is_still_unknown() -> None:
    assert only_issue(valid_dossier(Foo=None)) == ("Foo", "unknown_field")


def test_misspelt_required_field_is_unknown_and_the_real_one_missing() -> None:
    record = valid_dossier(MaHoSo=ABSENT, mahoso="000.00.53.H26-1")
    assert issue_summary(rejected(record)) == [
        ("mahoso", "unknown_field"),
        ("MaHoSo", "required"),
    ]


@pytest.mark.parametrize("item_list", list(ITEM_FIELDS))
def test_unknown_field_inside_a_list_item_rejected(item_list: str) -> None:
    items = full_dossier("10")[item_list]
    items.append(dict(items[0], Foo=1))
    error = rejected(full_dossier("10", **{item_list: items}))
    assert issue_summary(error) == [(f"{item_list}[1].Foo", "unknown_field")]
    assert error.message("data[0]").startswith(f"data[0].{item_list}[1].Foo: ")


def test_every_unknown_field_is_reported() -> None:
    record = valid_dossier(Zeta=1, TaiLieuNop=[submitted_document(Alpha=2)])
    assert sorted(issue_summary(rejected(record))) == [
        ("TaiLieuNop[0].Alpha", "unknown_field"),
        ("Zeta", "unknown_field"),
    ]


# --- optional fields sent as null ----------------------------------------------------------

NULLABLE_AT_5 = [f for f in OPTIONAL_FIELDS if "5" not in CONDITIONAL_REQUIRED.get(f, ())]


@pytest.mark.parametrize("field", NULLABLE_AT_5)
def test_optional_field_sent_as_null_is_treated_as_absent(field: str) -> None:
    with_null = parse_dossier(full_dossier("5", **{field: None}))
    absent = parse_dossier(full_dossier("5", **{field: ABSENT}))
    assert with_null == absent
    assert field not in with_null.to_portal()
    assert with_null.content_hash() == absent.content_hash()


OPTIONAL_ITEM_FIELDS = [
    (item_list, field)
    for item_list, fields in ITEM_FIELDS.items()
    for field in fields
    if field not in {"TenTepDinhKem", "TenPhiLePhi", "Gia", "NgayBoSung", "TenGiayTo"}
]


@pytest.mark.parametrize(
    ("item_list", "field"),
    OPTIONAL_ITEM_FIELDS,
    ids=[f"{a}.{b}" for a, b in OPTIONAL_ITEM_FIELDS],
)
def test_optional_item_field_sent_as_null_is_treated_as_absent(item_list: str, field: str) -> None:
    item_null = dict(full_dossier("10")[item_list][0], **{field: None})
    item_absent = {k: v for k, v in item_null.items() if k != field}
    with_null = parse_dossier(full_dossier("10", **{item_list: [item_null]}))
    absent = parse_dossier(full_dossier("10", **{item_list: [item_absent]}))
    assert with_null == absent
    assert with_null.content_hash() == absent.content_hash()


# --- procedure catalogue (§4) --------------------------------------------------------------


def test_known_procedure_accepted() -> None:
    dossier = parse_dossier(valid_dossier(), procedures={MA_TTHC, "2.000001"})
    assert dossier.MaTTHC == MA_TTHC


def test_unknown_procedure_rejected_against_the_catalogue() -> None:
    error = rejected(valid_dossier(MaTTHC="9.999999"), procedures={MA_TTHC})
    assert issue_summary(error) == [("MaTTHC", "unknown_procedure")]
    assert error.message("data[0]").startswith("data[0].MaTTHC: ")


def test_empty_catalogue_knows_no_procedure() -> None:
    assert only_issue(valid_dossier(), procedures=frozenset()) == ("MaTTHC", "unknown_procedure")


def test_procedure_is_not_checked_without_a_catalogue() -> None:
    assert parse_dossier(valid_dossier(MaTTHC="9.999999")).MaTTHC == "9.999999"


@pytest.mark.parametrize("value", [ABSENT, None, "", " "], ids=["absent", "null", "empty", "blank"])
def test_missing_procedure_is_required_not_unknown(value: object) -> None:
    record = valid_dossier(MaTTHC=value)
    assert only_issue(record, procedures={MA_TTHC}) == ("MaTTHC", "required")


def test_unknown_procedure_ordered_by_the_table() -> None:
    record = valid_dossier(KenhThucHien=9, MaTTHC="9.999999", MaHoSo="x")
    assert issue_summary(rejected(record, procedures={MA_TTHC})) == [
        ("MaHoSo", "format"),
        ("MaTTHC", "unknown_procedure"),
        ("KenhThucHien", "not_allowed"),
    ]


# --- the -5 message: JSON path rendering ---------------------------------------------------


def test_message_renders_the_json_path_under_a_prefix() -> None:
    error = rejected(valid_dossier("2", NgayHenTra="20240101000000"))
    assert error.message("data[3]") == "data[3].NgayHenTra: phải ≥ NgayTiepNhan"
    assert error.message() == "NgayHenTra: phải ≥ NgayTiepNhan"
    assert str(error) == "NgayHenTra: phải ≥ NgayTiepNhan"
    assert error.first is error.issues[0]
    assert error.first.to_dict("data[3]") == {
        "path": "data[3].NgayHenTra",
        "code": "date_order",
        "message": "phải ≥ NgayTiepNhan",
    }


def test_message_renders_a_nested_path() -> None:
    record = full_dossier("10", TaiLieuNop=[submitted_document(TenTepDinhKem=ABSENT)])
    error = rejected(record)
    assert error.first.path == ("TaiLieuNop", 0, "TenTepDinhKem")
    assert error.first.render_path() == "TaiLieuNop[0].TenTepDinhKem"
    assert error.message() == "TaiLieuNop[0].TenTepDinhKem: bắt buộc"
    assert error.message("data[7]") == "data[7].TaiLieuNop[0].TenTepDinhKem: bắt buộc"


def test_message_renders_a_list_item_path() -> None:
    record = full_dossier("10", DanhSachLePhi=[fee(), "x"])
    message = rejected(record).message("data[0]")
    assert message == "data[0].DanhSachLePhi[1]: phải là một đối tượng JSON"


# --- the order of issues -------------------------------------------------------------------


def test_unknown_field_first_then_table_order() -> None:
    # Insertion order deliberately differs from the expected order.
    record: dict[str, Any] = {"NgayNopHoSo": "2024", "Foo": 1}
    record.update({k: v for k, v in valid_dossier("1").items() if k != "NgayNopHoSo"})
    record["MaHoSo"] = "not a dossier code"
    error = rejected(record)
    assert issue_summary(error) == [
        ("Foo", "unknown_field"),
        ("MaHoSo", "format"),
        ("NgayNopHoSo", "portal_date"),
    ]
    assert error.message("data[0]").startswith("data[0].Foo: ")


def test_conditional_requirement_ordered_among_type_errors() -> None:
    record = valid_dossier("2", NgayTiepNhan=ABSENT, DonViXuLy=1, ChuHoSo=2)
    assert issue_summary(rejected(record)) == [
        ("ChuHoSo", "type"),
        ("NgayTiepNhan", "required"),
        ("DonViXuLy", "type"),
    ]


def test_unknown_field_in_a_list_item_comes_before_a_top_level_error() -> None:
    record = valid_dossier(MaHoSo=ABSENT, TaiLieuNop=[submitted_document(Foo=1)])
    assert issue_summary(rejected(record)) == [
        ("TaiLieuNop[0].Foo", "unknown_field"),
        ("MaHoSo", "required"),
    ]


def test_top_level_unknown_field_comes_before_a_nested_one() -> None:
    record = valid_dossier(TaiLieuNop=[submitted_document(Foo=1)])
    record["Bar"] = 2
    assert issue_summary(rejected(record)) == [
        ("Bar", "unknown_field"),
        ("TaiLieuNop[0].Foo", "unknown_field"),
    ]


# A value of the wrong JSON type for each field (0 for strings/dates/lists, "x" for ints).
WRONG_TYPE: dict[str, object] = dict.fromkeys(DOSSIER_FIELDS, 0)
INT_FIELDS = [
    "KenhThucHien",
    "LoaiDoiTuong",
    "HinhThuc",
    "HoSoCoThanhPhanSoHoa",
    "TaiKhoanDuocXacThucVoiVNeID",
    "DuocThanhToanTrucTuyen",
]
WRONG_TYPE.update(dict.fromkeys(INT_FIELDS, "x"))


def test_every_field_broken_reports_in_table_order() -> None:
    # Reversed insertion order, so only a sort by the table can give the expected order.
    record = {field: WRONG_TYPE[field] for field in reversed(DOSSIER_FIELDS)}
    paths = [path for path, _ in issue_summary(rejected(record))]
    assert paths == list(DOSSIER_FIELDS)


ADJACENT = list(pairwise(DOSSIER_FIELDS))


@pytest.mark.parametrize(("earlier", "later"), ADJACENT, ids=[f"{a}<{b}" for a, b in ADJACENT])
def test_adjacent_fields_reported_in_table_order(earlier: str, later: str) -> None:
    base = full_dossier("5")
    record = {later: WRONG_TYPE[later], earlier: WRONG_TYPE[earlier]}
    record.update({k: v for k, v in base.items() if k not in record})
    error = rejected(record)
    assert [path for path, _ in issue_summary(error)] == [earlier, later]
    assert error.message().startswith(f"{earlier}: ")


ITEM_WRONG_TYPE: dict[str, object] = {
    "IsDeleted": "x",
    "DuocSoHoa": "x",
    "DuocTaiSuDung": "x",
    "DuocLayTuKhoDMQG": "x",
    "HinhThucThu": "x",
    "Gia": "x",
    "LoaiPhiLePhi": "x",
    "TrangThaiBoSung": "x",
}


@pytest.mark.parametrize("item_list", list(ITEM_FIELDS))
def test_every_item_field_broken_reports_in_item_table_order(item_list: str) -> None:
    fields = ITEM_FIELDS[item_list]
    item = {field: ITEM_WRONG_TYPE.get(field, 0) for field in reversed(fields)}
    error = rejected(full_dossier("10", **{item_list: [item]}))
    assert [path for path, _ in issue_summary(error)] == [f"{item_list}[0].{f}" for f in fields]


def test_list_items_reported_in_index_order() -> None:
    second = {"DuocSoHoa": "x", "TenTepDinhKem": "b"}
    first = {"IsDeleted": 5}  # TenTepDinhKem missing as well
    record = valid_dossier(TaiLieuNop=[first, second])
    assert issue_summary(rejected(record)) == [
        ("TaiLieuNop[0].TenTepDinhKem", "required"),
        ("TaiLieuNop[0].IsDeleted", "not_allowed"),
        ("TaiLieuNop[1].DuocSoHoa", "type"),
    ]


def test_list_field_errors_follow_the_table_between_lists() -> None:
    record = full_dossier(
        "10",
        DanhSachGiayToKetQua=[result_document(TenGiayTo=ABSENT)],
        TaiLieuNop=[submitted_document(TenTepDinhKem=ABSENT)],
    )
    assert issue_summary(rejected(record)) == [
        ("TaiLieuNop[0].TenTepDinhKem", "required"),
        ("DanhSachGiayToKetQua[0].TenGiayTo", "required"),
    ]


# --- serialisation -------------------------------------------------------------------------


def test_to_portal_drops_nulls_and_keeps_contract_names() -> None:
    dossier = parse_dossier(full_dossier("10", GhiChu=None))
    portal = dossier.to_portal()
    assert "GhiChu" not in portal
    assert None not in portal.values()
    assert list(portal) == [f for f in DOSSIER_FIELDS if f in portal]
    assert portal["TrangThaiHoSo"] == "10"
    assert portal["KenhThucHien"] == 2
    assert type(portal["KenhThucHien"]) is int


def test_content_hash_changes_with_content() -> None:
    first = parse_dossier(valid_dossier("4"))
    second = parse_dossier(valid_dossier("4", GhiChu="khác"))
    assert first.content_hash() == parse_dossier(valid_dossier("4")).content_hash()
    assert first.content_hash() != second.content_hash()
    assert len(first.content_hash()) == 64


def test_errors_without_a_contract_message_get_a_generic_vietnamese_one() -> None:
    """Pydantic's own English texts never reach a -5 message (here: a non-string key,
    which only code can produce)."""
    record: dict[Any, Any] = valid_dossier()
    record[7] = "x"
    with pytest.raises(RecordInvalid) as caught:
        parse_dossier(record)
    [issue] = caught.value.issues
    assert (issue.code, issue.message) == ("invalid", "giá trị không hợp lệ")
