"""Normalisation of DVCLT queue messages (source-dialects.md §3) into portal dossiers.

A dossier is the fold of every stored message of its ``maHoSo``, ordered by
``thoiGianThucHien``; each message is ``{"item": <chua-nhan entry>, "detail": <detail>}``
and also becomes one progress record. Messages are built by hand in the dialect's shapes.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.demodata import load_demo_catalogue
from app.domain.dates import VN_TZ
from app.domain.status import DossierStatus
from app.sync.normalise.common import Catalogue, Context, Normalised, Rejection, StatusMap
from app.sync.normalise.dvclt import message_time, normalise
from tests.domain.factories import PROPERTY

CODE = "000.00.53.H26-240125-00031"
AGENCY = "000.00.53.H26"
UNIT = "000.00.00.H26"
AGENCY_NAME = "Ủy ban nhân dân thành phố An Bình"
DOSSIER_KEY = f"dossier:{CODE}"
MA_DON_VI = 26053
AGENCY_MAP = {"26053": AGENCY, "29053": "000.00.53.H29"}

# DVCLT status codes (source-dialects.md §3).
SUPPLEMENT, RECEIVED, RESULT_AVAILABLE, RETURNED, REFUSED, SENT_TO_MOJ = 2, 3, 4, 5, 6, 7

APPLICANT = {
    "hoTen": "Nguyễn Thị Mai",
    "soDinhDanh": "026190004567",
    "soDienThoai": "0978123456",
    "quanHe": "Mẹ",
    "treEm": {"hoTen": "Lê Minh Khôi", "ngaySinh": "20/01/2024", "gioiTinh": "Nam"},
}
RESULTS = [
    {
        "giayToId": "GKS-2024-000123",
        "tenGiayTo": "Giấy khai sinh",
        "maGiayToKetQua": "KQ.HT.01",
        "duongDan": "https://hotich.moj.gov.vn/files/gks-2024-000123.pdf",
    }
]
ATTACHMENTS = [
    {
        "id": 5501,
        "loaiGiayTo": "TKKS",
        "tenGiayTo": "Tờ khai đăng ký khai sinh",
        "tenTepDinhKem": "to-khai-khai-sinh.pdf",
        "huyGiayTo": False,
    },
    {
        "id": 5502,
        "loaiGiayTo": "GCS",
        "tenGiayTo": "Giấy chứng sinh",
        "tenTepDinhKem": "giay-chung-sinh.pdf",
        "huyGiayTo": False,
    },
    {
        "id": 5503,
        "loaiGiayTo": "GCS",
        "tenGiayTo": "Giấy chứng sinh",
        "tenTepDinhKem": "giay-chung-sinh-chup-mo.jpg",
        "huyGiayTo": True,
    },
]


# --- builders ------------------------------------------------------------------------------


def message(
    message_id: int,
    trang_thai: int,
    at: str,
    *,
    item: dict[str, Any] | None = None,
    **detail: Any,
) -> dict[str, Any]:
    """One queue message: its ``chua-nhan`` entry and its detail (overrides per part)."""
    entry: dict[str, Any] = {
        "id": message_id,
        "maDonVi": MA_DON_VI,
        "maTTHC": "1.000656",
        "module": "LTKS",
        "maHoSo": CODE,
        "ngayTiepNhan": "25/01/2024 08:28:45",
        "techId": f"b7e0c2a4-3f1d-4c8e-9a51-{message_id:012d}",
    }
    data: dict[str, Any] = {
        "id": message_id,
        "maHoSo": CODE,
        "maTTHC": "1.000656",
        "trangThai": trang_thai,
        "thoiGianThucHien": at,
        "nguoiXuLy": "Trần Văn Cường",
        "chucDanh": "Công chức một cửa",
        "phongBanXuLy": "Bộ phận một cửa UBND thành phố",
        "noiDungXuLy": "Tiếp nhận hồ sơ liên thông khai sinh",
        "ngayHenTra": "26/01/2024 17:00:00",
        "ketQuaXuLy": "[]",
        "data": json.dumps(APPLICANT, ensure_ascii=False),
        "fileDinhKem": ATTACHMENTS,
    }
    return {"item": entry | (item or {}), "detail": data | detail}


def received() -> dict[str, Any]:
    return message(880101, RECEIVED, "25/01/2024 08:30:00")


def sent_to_moj() -> dict[str, Any]:
    return message(
        880102,
        SENT_TO_MOJ,
        "25/01/2024 09:15:00",
        nguoiXuLy="Phạm Thu Hà",
        chucDanh="Công chức tư pháp - hộ tịch",
        phongBanXuLy="Phòng Tư pháp",
        noiDungXuLy="Chuyển hệ thống đăng ký hộ tịch của Bộ Tư pháp",
    )


def result_available(message_id: int = 880103) -> dict[str, Any]:
    return message(
        message_id,
        RESULT_AVAILABLE,
        "25/01/2024 15:40:00",
        nguoiXuLy="Phạm Thu Hà",
        chucDanh="Công chức tư pháp - hộ tịch",
        phongBanXuLy="Phòng Tư pháp",
        noiDungXuLy="Đã có Giấy khai sinh",
        ketQuaXuLy=json.dumps(RESULTS, ensure_ascii=False),
    )


def returned() -> dict[str, Any]:
    return message(
        880104,
        RETURNED,
        "26/01/2024 09:00:00",
        noiDungXuLy="Đã trả kết quả cho công dân",
        ketQuaXuLy=json.dumps(RESULTS, ensure_ascii=False),
    )


def refused() -> dict[str, Any]:
    return message(
        880106,
        REFUSED,
        "25/01/2024 10:00:00",
        nguoiXuLy="Phạm Thu Hà",
        chucDanh="Công chức tư pháp - hộ tịch",
        phongBanXuLy="Phòng Tư pháp",
        noiDungXuLy="Từ chối: giấy chứng sinh không hợp lệ",
    )


def life_cycle() -> list[dict[str, Any]]:
    """A birth registration from the one-stop desk to the returned result, oldest first."""
    return [received(), sent_to_moj(), result_available(), returned()]


def demo_catalogue() -> Catalogue:
    data = load_demo_catalogue()
    return Catalogue(
        procedures={p["MaTTHC"]: p for p in data["procedures"]},
        agencies={a["MaCoQuan"]: a["TenCoQuan"] for a in data["agencies"]},
    )


def context(
    overrides: dict[str, str] | None = None,
    *,
    catalogue: Catalogue | None = None,
    agencies: tuple[str, ...] = (UNIT,),
    agency_map: dict[str, str] | None = None,
) -> Context:
    return Context(
        statuses=StatusMap("dvclt", overrides),
        catalogue=catalogue if catalogue is not None else demo_catalogue(),
        agencies=agencies,
        agency_map=AGENCY_MAP if agency_map is None else agency_map,
    )


def portal(messages: list[dict[str, Any]], ctx: Context | None = None) -> dict[str, Any]:
    result = normalise(CODE, messages, ctx or context())
    assert result.rejections == (), result.rejections
    assert result.dossier is not None
    return result.dossier.to_portal()


def rejected(messages: list[dict[str, Any]], ctx: Context | None = None) -> Rejection:
    result = normalise(CODE, messages, ctx or context())
    assert (result.dossier, result.progress, result.valid_keys) == (None, (), ())
    [rejection] = result.rejections
    assert (rejection.key, rejection.kind, rejection.ma_ho_so) == (DOSSIER_KEY, "dossier", CODE)
    assert (rejection.agency, rejection.unit) == (AGENCY, UNIT)
    return rejection


def progress_form(at: str, status: str, who: tuple[str, str, str], content: str) -> dict[str, str]:
    """A progress record in portal JSON; ``who`` = (NguoiXuLy, ChucDanh, PhongBanXuLy)."""
    person, title, department = who
    return {
        "MaHoSo": CODE,
        "NguoiXuLy": person,
        "ChucDanh": title,
        "PhongBanXuLy": department,
        "ThoiDiemXuLy": at,
        "NoiDungXuLy": content,
        "TrangThai": status,
    }


DESK = ("Trần Văn Cường", "Công chức một cửa", "Bộ phận một cửa UBND thành phố")
JUSTICE = ("Phạm Thu Hà", "Công chức tư pháp - hộ tịch", "Phòng Tư pháp")

SUBMITTED = [
    {"TepDinhKemId": "5501", "TenTepDinhKem": "to-khai-khai-sinh.pdf", "MaThanhPhanHoSo": "TKKS"},
    {"TepDinhKemId": "5502", "TenTepDinhKem": "giay-chung-sinh.pdf", "MaThanhPhanHoSo": "GCS"},
]
RESULT_DOCUMENTS = [
    {
        "GiayToId": "GKS-2024-000123",
        "TenGiayTo": "Giấy khai sinh",
        "MaGiayToKetQua": "KQ.HT.01",
        "DuongDanTepTinKetQua": "https://hotich.moj.gov.vn/files/gks-2024-000123.pdf",
    }
]


# --- the whole life cycle ------------------------------------------------------------------


def test_a_returned_birth_registration_folds_into_one_dossier_and_four_steps() -> None:
    result = normalise(CODE, life_cycle(), context())
    assert (result.key, result.record_id) == (DOSSIER_KEY, CODE)
    assert result.modified_at == datetime(2024, 1, 26, 9, 0, tzinfo=VN_TZ)
    assert result.rejections == ()
    assert result.valid_keys == (
        DOSSIER_KEY,
        "message:880101",
        "message:880102",
        "message:880103",
        "message:880104",
    )
    assert result.dossier is not None
    assert result.dossier.to_portal() == {
        "MaHoSo": CODE,
        "MaTTHC": "1.000656",
        "TenTTHC": "Đăng ký khai sinh",
        "MaLinhVuc": "HT",
        "TenLinhVuc": "Hộ tịch",
        "KenhThucHien": 2,
        "ChuHoSo": "Nguyễn Thị Mai",
        "LoaiDoiTuong": 1,
        "SoGiayToChuHoSo": "026190004567",
        "SoDienThoai": "0978123456",
        "NgayTiepNhan": "20240125082845",
        "NgayHenTra": "20240126170000",
        "TrangThaiHoSo": "10",
        "NgayKetThucXuLy": "20240125154000",
        "NgayTra": "20240126090000",
        "HinhThuc": 0,
        "DonViXuLy": AGENCY_NAME,
        "TaiLieuNop": SUBMITTED,
        "DanhSachGiayToKetQua": RESULT_DOCUMENTS,
    }
    assert [step.to_portal() for step in result.progress] == [
        progress_form("20240125083000", "2", DESK, "Tiếp nhận hồ sơ liên thông khai sinh"),
        progress_form(
            "20240125091500", "4", JUSTICE, "Chuyển hệ thống đăng ký hộ tịch của Bộ Tư pháp"
        ),
        progress_form("20240125154000", "9", JUSTICE, "Đã có Giấy khai sinh"),
        progress_form("20240126090000", "10", DESK, "Đã trả kết quả cho công dân"),
    ]


def test_a_dossier_just_received_at_the_desk() -> None:
    assert portal([received()]) == {
        "MaHoSo": CODE,
        "MaTTHC": "1.000656",
        "TenTTHC": "Đăng ký khai sinh",
        "MaLinhVuc": "HT",
        "TenLinhVuc": "Hộ tịch",
        "KenhThucHien": 2,
        "ChuHoSo": "Nguyễn Thị Mai",
        "LoaiDoiTuong": 1,
        "SoGiayToChuHoSo": "026190004567",
        "SoDienThoai": "0978123456",
        "NgayTiepNhan": "20240125082845",
        "NgayHenTra": "20240126170000",
        "TrangThaiHoSo": "2",
        "DonViXuLy": AGENCY_NAME,
        "TaiLieuNop": SUBMITTED,
    }


def test_a_refused_dossier_is_dated_by_the_refusal_message() -> None:
    form = portal([received(), refused()])
    assert (form["TrangThaiHoSo"], form["NgayTuChoi"], form["NgayKetThucXuLy"]) == (
        "3",
        "20240125100000",
        "20240125100000",
    )
    for absent in ("NgayTra", "HinhThuc", "DanhSachGiayToKetQua"):
        assert absent not in form


def test_a_result_available_dossier_is_dated_by_the_dvclt_4_message() -> None:
    form = portal([received(), sent_to_moj(), result_available()])
    assert (form["TrangThaiHoSo"], form["NgayKetThucXuLy"]) == ("9", "20240125154000")
    assert form["DanhSachGiayToKetQua"] == RESULT_DOCUMENTS
    for absent in ("NgayTra", "HinhThuc", "NgayTuChoi"):
        assert absent not in form


def test_the_return_message_dates_ngay_tra_and_sets_hinh_thuc_0() -> None:
    form = portal(life_cycle())
    assert (form["NgayTra"], form["HinhThuc"]) == ("20240126090000", 0)


# --- one mapping line at a time ------------------------------------------------------------


@pytest.mark.parametrize(
    ("form_field", "value", "portal_field"),
    [
        ("hoTen", "Đặng Văn Hùng", "ChuHoSo"),
        ("soDinhDanh", "123456789", "SoGiayToChuHoSo"),
        ("soDienThoai", "+84978123456", "SoDienThoai"),
    ],
)
def test_the_application_form_string_gives_the_applicant(
    form_field: str, value: str, portal_field: str
) -> None:
    applicant = json.dumps(APPLICANT | {form_field: value}, ensure_ascii=False)
    assert (
        portal([message(880101, RECEIVED, "25/01/2024 08:30:00", data=applicant)])[portal_field]
        == value
    )


def test_the_applicant_comes_from_the_latest_message_carrying_a_form() -> None:
    corrected = json.dumps(APPLICANT | {"hoTen": "Nguyễn Thị Mai Anh"}, ensure_ascii=False)
    messages = [
        received(),
        message(880102, SENT_TO_MOJ, "25/01/2024 09:15:00", data=corrected),
        message(880103, SUPPLEMENT, "25/01/2024 11:00:00", data=""),
    ]
    assert portal(messages)["ChuHoSo"] == "Nguyễn Thị Mai Anh"


def test_a_form_that_is_not_json_rejects_the_dossier() -> None:
    rejection = rejected([message(880101, RECEIVED, "25/01/2024 08:30:00", data="{hoTen:")])
    assert (rejection.reason_code, rejection.reason, rejection.errors) == (
        "invalid_field",
        "data: không phải chuỗi JSON hợp lệ",
        [{"path": "data", "code": "invalid_field", "message": "không phải chuỗi JSON hợp lệ"}],
    )


def test_results_that_are_not_json_reject_the_dossier() -> None:
    bad = message(880103, RESULT_AVAILABLE, "25/01/2024 15:40:00", ketQuaXuLy="[{giayToId")
    rejection = rejected([received(), bad])
    assert (rejection.reason_code, rejection.errors) == (
        "invalid_field",
        [
            {
                "path": "ketQuaXuLy",
                "code": "invalid_field",
                "message": "không phải chuỗi JSON hợp lệ",
            }
        ],
    )


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        ("1.000656", ("Đăng ký khai sinh", "HT", "Hộ tịch")),
        ("1.001193", ("Đăng ký khai tử", "HT", "Hộ tịch")),
    ],
)
def test_procedure_names_come_from_the_catalogue(code: str, expected: tuple[str, ...]) -> None:
    form = portal([message(880101, RECEIVED, "25/01/2024 08:30:00", maTTHC=code)])
    assert (form["MaTTHC"], form["TenTTHC"], form["MaLinhVuc"], form["TenLinhVuc"]) == (
        code,
        *expected,
    )


def test_the_channel_is_online_and_the_applicant_a_citizen() -> None:
    form = portal([received()])
    assert (form["KenhThucHien"], form["LoaiDoiTuong"]) == (2, 1)


def test_ngay_tiep_nhan_comes_from_the_list_entry_not_the_message_time() -> None:
    messages = [
        message(
            880101, RECEIVED, "25/01/2024 08:30:00", item={"ngayTiepNhan": "25/01/2024 08:01:02"}
        )
    ]
    assert portal(messages)["NgayTiepNhan"] == "20240125080102"


def test_ngay_hen_tra_comes_from_the_latest_message_carrying_one() -> None:
    messages = [
        received(),
        message(880102, SENT_TO_MOJ, "25/01/2024 09:15:00", ngayHenTra="29/01/2024 17:00:00"),
        message(880103, SUPPLEMENT, "25/01/2024 11:00:00", ngayHenTra=""),
    ]
    assert portal(messages)["NgayHenTra"] == "20240129170000"


def test_don_vi_xu_ly_falls_back_to_the_department_when_the_agency_is_not_catalogued() -> None:
    catalogue = Catalogue(procedures=demo_catalogue().procedures, agencies={})
    form = portal([received(), sent_to_moj()], context(catalogue=catalogue))
    assert form["DonViXuLy"] == "Phòng Tư pháp"


def test_cancelled_attachments_are_left_out_and_names_fall_back() -> None:
    attachments = [
        *ATTACHMENTS,
        {
            "id": 5504,
            "loaiGiayTo": "CCCD",
            "tenGiayTo": "Căn cước của mẹ",
            "tenTepDinhKem": "",
            "huyGiayTo": False,
        },
    ]
    form = portal([message(880101, RECEIVED, "25/01/2024 08:30:00", fileDinhKem=attachments)])
    assert form["TaiLieuNop"] == [
        *SUBMITTED,
        {"TepDinhKemId": "5504", "TenTepDinhKem": "Căn cước của mẹ", "MaThanhPhanHoSo": "CCCD"},
    ]


@pytest.mark.parametrize("attachments", [[], None, [ATTACHMENTS[2]]])
def test_without_live_attachments_there_is_no_tai_lieu_nop(
    attachments: list[dict[str, Any]] | None,
) -> None:
    form = portal([message(880101, RECEIVED, "25/01/2024 08:30:00", fileDinhKem=attachments)])
    assert "TaiLieuNop" not in form


def test_each_message_maps_to_one_progress_record() -> None:
    step = message(
        880107,
        SUPPLEMENT,
        "25/01/2024 11:20:05",
        nguoiXuLy="Phạm Thu Hà",
        chucDanh="Công chức tư pháp - hộ tịch",
        phongBanXuLy="Phòng Tư pháp",
        noiDungXuLy="Đề nghị bổ sung bản sao giấy chứng sinh",
    )
    result = normalise(CODE, [received(), step], context())
    assert result.valid_keys == (DOSSIER_KEY, "message:880101", "message:880107")
    assert [s.to_portal() for s in result.progress][1] == progress_form(
        "20240125112005", "5", JUSTICE, "Đề nghị bổ sung bản sao giấy chứng sinh"
    )


def test_message_time_reads_thoi_gian_thuc_hien() -> None:
    assert message_time(received()["detail"]) == datetime(2024, 1, 25, 8, 30, tzinfo=VN_TZ)
    assert message_time({"thoiGianThucHien": "2024-01-25"}) is None


# --- agencies ------------------------------------------------------------------------------


def test_an_unknown_ma_don_vi_is_an_unknown_agency() -> None:
    rejection = rejected([message(880101, RECEIVED, "25/01/2024 08:30:00", item={"maDonVi": 99})])
    message_text = "maDonVi 99 chưa được ánh xạ sang mã định danh cơ quan"
    assert (rejection.reason_code, rejection.reason, rejection.errors) == (
        "unknown_agency",
        f"maDonVi: {message_text}",
        [{"path": "maDonVi", "code": "unknown_agency", "message": message_text}],
    )


def test_a_ma_don_vi_disagreeing_with_the_dossier_number_is_rejected() -> None:
    ctx = context(agency_map={"26053": "000.00.54.H26"})
    rejection = rejected([received()], ctx)
    message_text = "maDonVi 26053 (000.00.54.H26) không khớp với mã hồ sơ"
    assert (rejection.reason_code, rejection.errors) == (
        "agency_mismatch",
        [{"path": "maDonVi", "code": "agency_mismatch", "message": message_text}],
    )


def test_the_agency_comes_from_the_latest_message() -> None:
    moved = message(880102, SENT_TO_MOJ, "25/01/2024 09:15:00", item={"maDonVi": 29053})
    rejection = rejected([received(), moved])
    assert rejection.reason_code == "agency_mismatch"


@pytest.mark.parametrize("served", [("000.00.00.H29",), ("000.00.54.H26",)])
def test_a_dossier_of_an_agency_the_source_does_not_serve_is_rejected(
    served: tuple[str, ...],
) -> None:
    rejection = rejected([received()], context(agencies=served))
    reason = f"MaHoSo: cơ quan {AGENCY} không thuộc các đơn vị nguồn này phục vụ"
    assert (rejection.reason_code, rejection.errors) == (
        "agency_not_served",
        [{"path": "MaHoSo", "code": "agency_not_served", "message": reason}],
    )


@pytest.mark.parametrize("served", [(UNIT,), (AGENCY,), ()])
def test_a_dossier_of_a_served_agency_goes_through(served: tuple[str, ...]) -> None:
    assert portal([received()], context(agencies=served))["MaHoSo"] == CODE


# --- procedures and contract ---------------------------------------------------------------


def test_a_procedure_missing_from_the_catalogue_is_unknown() -> None:
    unknown = message(880101, RECEIVED, "25/01/2024 08:30:00", maTTHC="9.999999")
    rejection = rejected([unknown])
    message_text = "thủ tục '9.999999' không có trong danh mục của Cổng"
    assert (rejection.reason_code, rejection.reason, rejection.errors) == (
        "unknown_procedure",
        f"maTTHC: {message_text}",
        [{"path": "maTTHC", "code": "unknown_procedure", "message": message_text}],
    )


def test_without_a_catalogue_no_procedure_name_is_known() -> None:
    rejection = rejected([received()], context(catalogue=Catalogue()))
    message_text = "thủ tục '1.000656' không có trong danh mục của Cổng"
    assert (rejection.reason_code, rejection.errors) == (
        "unknown_procedure",
        [{"path": "maTTHC", "code": "unknown_procedure", "message": message_text}],
    )


def test_a_malformed_phone_number_is_invalid_naming_the_portal_field() -> None:
    applicant = json.dumps(APPLICANT | {"soDienThoai": "0978 123 456"}, ensure_ascii=False)
    rejection = rejected([message(880101, RECEIVED, "25/01/2024 08:30:00", data=applicant)])
    assert (rejection.reason_code, rejection.reason, rejection.errors) == (
        "invalid",
        "SoDienThoai: phải gồm 8–15 chữ số, có thể bắt đầu bằng +",
        [
            {
                "path": "SoDienThoai",
                "code": "format",
                "message": "phải gồm 8–15 chữ số, có thể bắt đầu bằng +",
            }
        ],
    )


def test_a_form_without_the_applicant_name_is_invalid() -> None:
    applicant = json.dumps({"soDinhDanh": "026190004567"})
    rejection = rejected([message(880101, RECEIVED, "25/01/2024 08:30:00", data=applicant)])
    assert (rejection.reason_code, rejection.errors) == (
        "invalid",
        [{"path": "ChuHoSo", "code": "required", "message": "bắt buộc"}],
    )


# --- dates ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("part", "field", "value"),
    [
        ("item", "ngayTiepNhan", "2024-01-25 08:28:45"),
        ("detail", "ngayHenTra", "26/01/2024"),
    ],
)
def test_an_unparsable_dossier_date_rejects_the_dossier_naming_the_source_field(
    part: str, field: str, value: str
) -> None:
    bad = received()
    bad[part][field] = value
    rejection = rejected([bad])
    message_text = f"ngày giờ không hợp lệ: {value!r}"
    assert (rejection.reason_code, rejection.reason, rejection.errors) == (
        "unparsable_date",
        f"{field}: {message_text}",
        [{"path": field, "code": "unparsable_date", "message": message_text}],
    )


def test_a_lone_message_with_an_unparsable_time_rejects_the_dossier() -> None:
    messages = [message(880101, RECEIVED, "25/01/2024 8h30")]
    result = normalise(CODE, messages, context())
    message_text = "ngày giờ không hợp lệ: '25/01/2024 8h30'"
    assert result == Normalised(
        key=DOSSIER_KEY,
        record_id=CODE,
        modified_at=None,
        dossier=None,
        rejections=(
            Rejection(
                key=DOSSIER_KEY,
                kind="dossier",
                raw={"messages": messages},
                reason_code="unparsable_date",
                reason=f"thoiGianThucHien: {message_text}",
                errors=[
                    {"path": "thoiGianThucHien", "code": "unparsable_date", "message": message_text}
                ],
                ma_ho_so=CODE,
            ),
        ),
    )


def test_a_message_with_an_unparsable_time_is_rejected_alone() -> None:
    late = message(880102, SENT_TO_MOJ, "25/01/2024")
    result = normalise(CODE, [received(), late], context())
    assert result.dossier is not None
    assert result.dossier.TrangThaiHoSo is DossierStatus.RECEIVED
    assert result.valid_keys == (DOSSIER_KEY, "message:880101")
    [rejection] = result.rejections
    assert (rejection.key, rejection.kind, rejection.reason_code, rejection.raw) == (
        "message:880102",
        "progress",
        "unparsable_date",
        late,
    )


# --- status table --------------------------------------------------------------------------

SPEC_STATUSES = [
    (SUPPLEMENT, "5"),
    (RECEIVED, "2"),
    (RESULT_AVAILABLE, "9"),
    (RETURNED, "10"),
    (REFUSED, "3"),
    (SENT_TO_MOJ, "4"),
]


@pytest.mark.parametrize(("code", "expected"), SPEC_STATUSES)
def test_every_default_status_maps_as_the_spec_says(code: int, expected: str) -> None:
    latest = message(880109, code, "26/01/2024 09:00:00", ketQuaXuLy=json.dumps(RESULTS))
    result = normalise(CODE, [received(), result_available(), latest], context())
    assert result.dossier is not None
    assert result.dossier.to_portal()["TrangThaiHoSo"] == expected
    assert result.progress[-1].to_portal()["TrangThai"] == expected
    assert result.valid_keys[-1] == "message:880109"


@pytest.mark.parametrize("code", [1, 8, 99])
def test_a_dossier_whose_only_message_has_an_unknown_code_is_rejected(code: int) -> None:
    messages = [message(880101, code, "25/01/2024 08:30:00")]
    rejection = rejected(messages)
    message_text = f"trạng thái nguồn {code} chưa được ánh xạ sang TrangThaiHoSo"
    assert rejection == Rejection(
        key=DOSSIER_KEY,
        kind="dossier",
        raw={"messages": messages},
        reason_code="unmapped_status",
        reason=f"trangThai: {message_text}",
        errors=[{"path": "trangThai", "code": "unmapped_status", "message": message_text}],
        ma_ho_so=CODE,
    )


@pytest.mark.parametrize("code", ["3", None, True])
def test_a_status_code_that_is_not_an_integer_is_invalid(code: object) -> None:
    rejection = rejected([message(880101, RECEIVED, "25/01/2024 08:30:00", trangThai=code)])
    assert (rejection.reason_code, rejection.errors) == (
        "invalid_field",
        [{"path": "trangThai", "code": "invalid_field", "message": "phải là số nguyên"}],
    )


def test_an_unknown_code_in_one_message_rejects_only_that_step() -> None:
    odd = message(880108, 99, "25/01/2024 10:00:00", noiDungXuLy="Trạng thái lạ")
    result = normalise(CODE, [received(), odd, sent_to_moj()], context())
    assert result.dossier is not None
    assert result.dossier.TrangThaiHoSo is DossierStatus.PROCESSING
    assert [s.TrangThai for s in result.progress] == [
        DossierStatus.RECEIVED,
        DossierStatus.PROCESSING,
    ]
    assert result.valid_keys == (DOSSIER_KEY, "message:880101", "message:880102")
    message_text = "trạng thái nguồn 99 chưa được ánh xạ sang TrangThaiHoSo"
    assert result.rejections == (
        Rejection(
            key="message:880108",
            kind="progress",
            raw=odd,
            reason_code="unmapped_status",
            reason=f"trangThai: {message_text}",
            errors=[{"path": "trangThai", "code": "unmapped_status", "message": message_text}],
            ma_ho_so=CODE,
        ),
    )
    assert (result.rejections[0].agency, result.rejections[0].unit) == (AGENCY, UNIT)


def test_a_latest_message_with_an_unknown_code_leaves_the_last_mapped_status() -> None:
    """The fold only uses messages it can map (implementation; the spec is silent)."""
    odd = message(880108, 99, "25/01/2024 10:00:00")
    result = normalise(CODE, [received(), odd], context())
    assert result.dossier is not None
    assert result.dossier.TrangThaiHoSo is DossierStatus.RECEIVED
    assert result.modified_at == datetime(2024, 1, 25, 8, 30, tzinfo=VN_TZ)
    assert [r.key for r in result.rejections] == ["message:880108"]


def test_a_source_override_maps_a_code_the_defaults_leave_out() -> None:
    withdrawn = message(880108, 8, "25/01/2024 10:00:00", noiDungXuLy="Công dân rút hồ sơ")
    result = normalise(CODE, [received(), withdrawn], context({"8": "7"}))
    assert result.rejections == ()
    assert result.dossier is not None
    assert result.dossier.TrangThaiHoSo is DossierStatus.WITHDRAWN
    assert [s.TrangThai for s in result.progress] == [
        DossierStatus.RECEIVED,
        DossierStatus.WITHDRAWN,
    ]


def test_a_source_override_replaces_a_default() -> None:
    messages = [received(), sent_to_moj()]
    assert portal(messages)["TrangThaiHoSo"] == "4"
    result = normalise(CODE, messages, context({"7": "2"}))
    assert result.dossier is not None
    assert result.dossier.TrangThaiHoSo is DossierStatus.RECEIVED
    assert [s.TrangThai for s in result.progress] == [DossierStatus.RECEIVED] * 2


# --- fold properties -----------------------------------------------------------------------


def canonical(result: Normalised) -> tuple[object, ...]:
    """What the store sees of a fold, independent of the order the messages were given in
    (progress records are stored one by one, by identity)."""
    return (
        result.key,
        result.record_id,
        result.modified_at,
        result.dossier,
        sorted(step.content_hash() for step in result.progress),
        sorted((r.key, r.reason_code, r.reason) for r in result.rejections),
        sorted(result.valid_keys),
    )


def redelivered() -> list[dict[str, Any]]:
    """The life cycle with a redelivered result message (same content, new id) and a
    message of an unknown code."""
    return [
        *life_cycle(),
        result_available(880105),
        message(880108, 99, "25/01/2024 12:00:00", noiDungXuLy="Trạng thái lạ"),
    ]


@PROPERTY
@given(st.permutations(redelivered()))
def test_messages_in_any_order_fold_to_the_same_result(messages: list[dict[str, Any]]) -> None:
    expected = normalise(CODE, redelivered(), context())
    result = normalise(CODE, messages, context())
    assert canonical(result) == canonical(expected)
    assert result.dossier is not None
    assert result.dossier.TrangThaiHoSo is DossierStatus.RESULT_RETURNED
    assert result.modified_at == datetime(2024, 1, 26, 9, 0, tzinfo=VN_TZ)


def test_the_fold_of_a_shuffled_life_cycle_is_the_returned_dossier() -> None:
    shuffled = [returned(), result_available(), received(), sent_to_moj()]
    assert canonical(normalise(CODE, shuffled, context())) == canonical(
        normalise(CODE, life_cycle(), context())
    )
    assert portal(shuffled)["TrangThaiHoSo"] == "10"


def test_a_duplicate_message_gives_the_same_progress_record_twice() -> None:
    result = normalise(CODE, [received(), result_available(), result_available(880105)], context())
    assert result.rejections == ()
    assert result.valid_keys == (
        DOSSIER_KEY,
        "message:880101",
        "message:880103",
        "message:880105",
    )
    first, second = result.progress[1:]
    assert first == second
    assert first.identity_hash() == second.identity_hash()
    assert first.to_portal() == progress_form(
        "20240125154000", "9", JUSTICE, "Đã có Giấy khai sinh"
    )
    assert result.dossier is not None
    assert result.dossier.to_portal()["NgayKetThucXuLy"] == "20240125154000"


def test_an_older_message_arriving_late_does_not_change_the_dossier() -> None:
    before = normalise(CODE, [received(), result_available()], context())
    after = normalise(CODE, [received(), result_available(), sent_to_moj()], context())
    assert before.dossier is not None
    assert after.dossier == before.dossier
    assert after.dossier.TrangThaiHoSo is DossierStatus.RESULT_READY
    assert after.modified_at == before.modified_at == datetime(2024, 1, 25, 15, 40, tzinfo=VN_TZ)
    assert [s.TrangThai for s in after.progress] == [
        DossierStatus.RECEIVED,
        DossierStatus.RESULT_READY,
        DossierStatus.PROCESSING,
    ]
    assert after.valid_keys == (
        DOSSIER_KEY,
        "message:880101",
        "message:880103",
        "message:880102",
    )


def test_status_10_without_the_dvclt_4_message_waits_for_it() -> None:
    without = [received(), sent_to_moj(), returned()]
    rejection = rejected(without)
    assert (rejection.reason_code, rejection.reason, rejection.errors) == (
        "invalid",
        "NgayKetThucXuLy: bắt buộc khi TrangThaiHoSo = 10",
        [
            {
                "path": "NgayKetThucXuLy",
                "code": "required",
                "message": "bắt buộc khi TrangThaiHoSo = 10",
            }
        ],
    )
    assert rejection.raw == {"messages": without}
    form = portal([*without, result_available()])
    assert (form["TrangThaiHoSo"], form["NgayKetThucXuLy"], form["NgayTra"]) == (
        "10",
        "20240125154000",
        "20240126090000",
    )


def test_no_messages_is_a_rejection() -> None:
    result = normalise(CODE, [], context())
    assert result.dossier is None
    [rejection] = result.rejections
    assert (rejection.key, rejection.reason_code, rejection.errors) == (
        DOSSIER_KEY,
        "invalid",
        [{"path": "messages", "code": "invalid", "message": "trống"}],
    )


def test_messages_of_one_time_fold_in_the_queues_numeric_order() -> None:
    """Two messages stamped in the same second: the one the queue numbered later is the
    later step. As text, "message:10" sorts before "message:9" (found by the polling
    property test)."""
    first = message(9, RECEIVED, "25/01/2024 09:15:00")
    later = message(10, SENT_TO_MOJ, "25/01/2024 09:15:00", noiDungXuLy="Chuyển Bộ Tư pháp")
    for order in ([first, later], [later, first]):
        assert portal(order)["TrangThaiHoSo"] == portal([later])["TrangThaiHoSo"]
    assert portal([first])["TrangThaiHoSo"] != portal([later])["TrangThaiHoSo"]
