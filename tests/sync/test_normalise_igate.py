"""Normalisation of VNPT iGate records (source-dialects.md §2) into portal dossiers.

Records are built by hand in the dialect's shapes: ``{"dossier", "history"}`` as the
connector fetches them (``/pa/dossier/search`` row and ``/pa/dossier/{id}/--history``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest

from app.demodata import load_demo_catalogue
from app.domain.dates import VN_TZ
from app.domain.progress import ProgressRecord
from app.domain.status import DossierStatus
from app.sync.normalise.common import Catalogue, Context, Rejection, StatusMap
from app.sync.normalise.igate import normalise, normalise_step

CODE = "000.00.53.H29-240513-0031"
AGENCY = "000.00.53.H29"
UNIT = "000.00.00.H29"
DOSSIER_ID = "6641f0c2e4b0a1b2c3d4e5f6"
DOSSIER_KEY = f"dossier:{DOSSIER_ID}"
AGENCY_NAME = "Ủy ban nhân dân thị xã Hà Châu"
FILES = "https://dichvucong.sonha.gov.vn/fs"


# --- builders ------------------------------------------------------------------------------


def names(vietnamese: str, english: str) -> list[dict[str, Any]]:
    """An iGate name list; English first, so picking the first entry would be wrong."""
    return [{"languageId": 46, "name": english}, {"languageId": 228, "name": vietnamese}]


def attachment(**overrides: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "id": "6642a1f0c2e4b0a1b2c3d501",
        "filename": "To khai dang ky ket hon.pdf",
        "group": "input",
        "url": f"{FILES}/6642a1f0c2e4b0a1b2c3d501",
        "digitized": True,
        "reused": False,
    }
    return row | overrides


def result_attachment(**overrides: Any) -> dict[str, Any]:
    return attachment(
        **(
            {
                "id": "6642a1f0c2e4b0a1b2c3d509",
                "filename": "Giay chung nhan ket hon.pdf",
                "group": "result",
                "url": f"{FILES}/6642a1f0c2e4b0a1b2c3d509",
                "digitized": False,
            }
            | overrides
        )
    )


def igate_dossier(**overrides: Any) -> dict[str, Any]:
    """A row of ``/pa/dossier/search``: an online marriage registration being processed."""
    row: dict[str, Any] = {
        "id": DOSSIER_ID,
        "code": CODE,
        "dossierStatus": {
            "id": 3,
            "name": [{"languageId": 228, "name": "Đang xử lý"}],
            "comment": "",
        },
        "procedure": {
            "id": "5f7c2b1ae4b0c1d2e3f40011",
            "code": "1.000894",
            "translate": names("Đăng ký kết hôn", "Marriage registration"),
            "sector": {
                "id": "5f7c2b1ae4b0c1d2e3f40002",
                "code": "HT",
                "name": names("Hộ tịch", "Civil status"),
            },
        },
        "agency": {
            "id": "5f7c2b1ae4b0c1d2e3f40053",
            "code": AGENCY,
            "name": names(AGENCY_NAME, "Ha Chau Town People's Committee"),
        },
        "applicant": {
            "data": {
                "fullname": "Lê Thị Hoa",
                "identityNumber": "038190012345",
                "phoneNumber": "0987654321",
                "email": "hoa.le@example.vn",
                "address": "Tổ 5, phường Trung Sơn, thị xã Hà Châu",
            },
            "type": 1,
        },
        "applyMethod": {"id": 0, "name": "Trực tuyến"},
        "appliedDate": "2024-05-13T09:30:00.000+0700",
        "acceptedDate": "2024-05-13T03:05:00.000+0000",
        "appointmentDate": "2024-05-20T17:00:00.000+0700",
        "completedDate": None,
        "returnedDate": None,
        "updatedDate": "2024-05-13T10:05:00.123+0700",
        "attachment": [attachment()],
        "fee": {"amount": 0, "paid": False, "method": None},
    }
    return row | overrides


def status(status_id: int) -> dict[str, Any]:
    return {"id": status_id, "name": [{"languageId": 228, "name": "?"}], "comment": ""}


def history(**overrides: Any) -> dict[str, Any]:
    """An entry of ``/pa/dossier/{id}/--history``: reception."""
    row: dict[str, Any] = {
        "id": "6642a1f0c2e4b0a1b2c3d601",
        "createdDate": "2024-05-13T03:05:00.000+0000",
        "user": {"fullname": "Vũ Thị Lan"},
        "position": "Công chức tư pháp - hộ tịch",
        "groupName": "Bộ phận tiếp nhận và trả kết quả",
        "action": "Tiếp nhận hồ sơ",
        "content": "Tiếp nhận hồ sơ trực tuyến",
        "statusId": 2,
    }
    return row | overrides


def record(
    dossier: dict[str, Any] | None = None, entries: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    return {
        "dossier": dossier if dossier is not None else igate_dossier(),
        "history": entries if entries is not None else [history()],
    }


def finished_dossier(status_id: int, **overrides: Any) -> dict[str, Any]:
    """Every date and a result document: valid at any status."""
    base: dict[str, Any] = {
        "dossierStatus": status(status_id),
        "completedDate": "2024-05-15T16:00:00.000+0700",
        "returnedDate": "2024-05-16T09:00:00.000+0700",
        "attachment": [attachment(), result_attachment()],
    }
    return igate_dossier(**(base | overrides))


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
) -> Context:
    return Context(
        statuses=StatusMap("igate", overrides),
        catalogue=catalogue if catalogue is not None else demo_catalogue(),
        agencies=agencies,
    )


def portal(raw: dict[str, Any], ctx: Context | None = None) -> dict[str, Any]:
    result = normalise(raw, ctx or context())
    assert result.rejections == (), result.rejections
    assert result.dossier is not None
    return result.dossier.to_portal()


def rejected(raw: dict[str, Any], ctx: Context | None = None) -> Rejection:
    result = normalise(raw, ctx or context())
    assert (result.dossier, result.progress, result.valid_keys) == (None, (), ())
    [rejection] = result.rejections
    return rejection


# --- the whole record ----------------------------------------------------------------------


def test_a_dossier_being_processed_maps_to_the_portal_fields() -> None:
    result = normalise(record(), context())
    assert (result.key, result.record_id) == (DOSSIER_KEY, DOSSIER_ID)
    assert result.modified_at == datetime(2024, 5, 13, 10, 5, 0, 123000, tzinfo=VN_TZ)
    assert result.rejections == ()
    assert result.valid_keys == (DOSSIER_KEY, "history:6642a1f0c2e4b0a1b2c3d601")
    assert result.dossier is not None
    assert result.dossier.to_portal() == {
        "MaHoSo": CODE,
        "MaTTHC": "1.000894",
        "TenTTHC": "Đăng ký kết hôn",
        "MaLinhVuc": "HT",
        "TenLinhVuc": "Hộ tịch",
        "KenhThucHien": 2,
        "ChuHoSo": "Lê Thị Hoa",
        "LoaiDoiTuong": 1,
        "SoGiayToChuHoSo": "038190012345",
        "SoDienThoai": "0987654321",
        "Email": "hoa.le@example.vn",
        "NgayNopHoSo": "20240513093000",
        "NgayTiepNhan": "20240513100500",
        "NgayHenTra": "20240520170000",
        "TrangThaiHoSo": "4",
        "DonViXuLy": AGENCY_NAME,
        "HoSoCoThanhPhanSoHoa": 1,
        "DuocThanhToanTrucTuyen": 0,
        "TaiLieuNop": [
            {
                "TepDinhKemId": "6642a1f0c2e4b0a1b2c3d501",
                "TenTepDinhKem": "To khai dang ky ket hon.pdf",
                "DuongDanTaiTepTin": f"{FILES}/6642a1f0c2e4b0a1b2c3d501",
                "DuocSoHoa": 1,
                "DuocTaiSuDung": 0,
            }
        ],
    }
    [step] = result.progress
    assert step.to_portal() == {
        "MaHoSo": CODE,
        "NguoiXuLy": "Vũ Thị Lan",
        "ChucDanh": "Công chức tư pháp - hộ tịch",
        "PhongBanXuLy": "Bộ phận tiếp nhận và trả kết quả",
        "ThoiDiemXuLy": "20240513100500",
        "NoiDungXuLy": "Tiếp nhận hồ sơ trực tuyến",
        "TrangThai": "2",
    }


def test_a_returned_postal_dossier_maps_dates_results_fee_and_return_method() -> None:
    raw = record(
        igate_dossier(
            dossierStatus=status(5),
            applyMethod={"id": 2, "name": "Bưu chính công ích"},
            applicant={
                "data": {
                    "fullname": "Công ty TNHH Sơn Hà Xanh",
                    "identityNumber": "2801234567",
                    "phoneNumber": "02373856789",
                    "email": "vanthu@sonhaxanh.vn",
                },
                "type": 2,
            },
            completedDate="2024-05-15T09:00:00.000+0000",
            returnedDate="2024-05-16T01:30:00.000+0000",
            attachment=[attachment(digitized=False, reused=True), result_attachment()],
            fee={"amount": 25000, "paid": True, "method": "online"},
        ),
        entries=[
            history(),
            history(
                id="6642a1f0c2e4b0a1b2c3d602",
                createdDate="2024-05-15T16:00:00.000+0700",
                user={"fullname": "Hoàng Văn Nam"},
                position="Phó Chủ tịch",
                groupName="Lãnh đạo UBND",
                action="Ký duyệt",
                content="",
                statusId=4,
            ),
            history(
                id="6642a1f0c2e4b0a1b2c3d603",
                createdDate="2024-05-16T08:30:00.000+0700",
                action="Trả kết quả qua bưu chính",
                content="Đã chuyển bưu điện",
                statusId=5,
            ),
        ],
    )
    result = normalise(raw, context())
    assert result.rejections == ()
    assert result.valid_keys == (
        DOSSIER_KEY,
        "history:6642a1f0c2e4b0a1b2c3d601",
        "history:6642a1f0c2e4b0a1b2c3d602",
        "history:6642a1f0c2e4b0a1b2c3d603",
    )
    assert result.dossier is not None
    assert result.dossier.to_portal() == {
        "MaHoSo": CODE,
        "MaTTHC": "1.000894",
        "TenTTHC": "Đăng ký kết hôn",
        "MaLinhVuc": "HT",
        "TenLinhVuc": "Hộ tịch",
        "KenhThucHien": 3,
        "ChuHoSo": "Công ty TNHH Sơn Hà Xanh",
        "LoaiDoiTuong": 2,
        "SoGiayToChuHoSo": "2801234567",
        "SoDienThoai": "02373856789",
        "Email": "vanthu@sonhaxanh.vn",
        "NgayNopHoSo": "20240513093000",
        "NgayTiepNhan": "20240513100500",
        "NgayHenTra": "20240520170000",
        "TrangThaiHoSo": "10",
        "NgayKetThucXuLy": "20240515160000",
        "NgayTra": "20240516083000",
        "HinhThuc": 1,
        "DonViXuLy": AGENCY_NAME,
        "HoSoCoThanhPhanSoHoa": 0,
        "DuocThanhToanTrucTuyen": 1,
        "TaiLieuNop": [
            {
                "TepDinhKemId": "6642a1f0c2e4b0a1b2c3d501",
                "TenTepDinhKem": "To khai dang ky ket hon.pdf",
                "DuongDanTaiTepTin": f"{FILES}/6642a1f0c2e4b0a1b2c3d501",
                "DuocSoHoa": 0,
                "DuocTaiSuDung": 1,
            }
        ],
        "DanhSachLePhi": [{"TenPhiLePhi": "Phí, lệ phí", "Gia": 25000}],
        "DanhSachGiayToKetQua": [
            {
                "GiayToId": "6642a1f0c2e4b0a1b2c3d509",
                "TenGiayTo": "Giay chung nhan ket hon.pdf",
                "DuongDanTepTinKetQua": f"{FILES}/6642a1f0c2e4b0a1b2c3d509",
            }
        ],
    }
    assert [step.to_portal() for step in result.progress][1:] == [
        {
            "MaHoSo": CODE,
            "NguoiXuLy": "Hoàng Văn Nam",
            "ChucDanh": "Phó Chủ tịch",
            "PhongBanXuLy": "Lãnh đạo UBND",
            "ThoiDiemXuLy": "20240515160000",
            "NoiDungXuLy": "Ký duyệt",
            "TrangThai": "9",
        },
        {
            "MaHoSo": CODE,
            "NguoiXuLy": "Vũ Thị Lan",
            "ChucDanh": "Công chức tư pháp - hộ tịch",
            "PhongBanXuLy": "Bộ phận tiếp nhận và trả kết quả",
            "ThoiDiemXuLy": "20240516083000",
            "NoiDungXuLy": "Đã chuyển bưu điện",
            "TrangThai": "10",
        },
    ]


# --- one mapping line at a time ------------------------------------------------------------


def test_names_are_the_vietnamese_ones_whatever_their_position() -> None:
    dossier = igate_dossier()
    procedure = dossier["procedure"]
    procedure["translate"] = list(reversed(procedure["translate"]))
    procedure["sector"]["name"] = list(reversed(procedure["sector"]["name"]))
    dossier["agency"]["name"] = list(reversed(dossier["agency"]["name"]))
    form = portal(record(dossier))
    assert (form["TenTTHC"], form["TenLinhVuc"], form["DonViXuLy"]) == (
        "Đăng ký kết hôn",
        "Hộ tịch",
        AGENCY_NAME,
    )


def test_a_procedure_named_only_in_english_has_no_portal_name() -> None:
    dossier = igate_dossier()
    dossier["procedure"]["translate"] = [{"languageId": 46, "name": "Marriage registration"}]
    rejection = rejected(record(dossier))
    assert (rejection.reason_code, rejection.errors) == (
        "invalid",
        [{"path": "TenTTHC", "code": "required", "message": "bắt buộc"}],
    )


@pytest.mark.parametrize(
    ("path", "value", "portal_field", "expected"),
    [
        (("code",), "000.00.55.H29-240513-0002", "MaHoSo", "000.00.55.H29-240513-0002"),
        (("procedure", "code"), "1.001193", "MaTTHC", "1.001193"),
        (("procedure", "sector", "code"), "CT", "MaLinhVuc", "CT"),
        (("applicant", "data", "fullname"), "Trịnh Quốc Bảo", "ChuHoSo", "Trịnh Quốc Bảo"),
        (("applicant", "data", "identityNumber"), "123456789", "SoGiayToChuHoSo", "123456789"),
        (("applicant", "data", "phoneNumber"), "+84987654321", "SoDienThoai", "+84987654321"),
        (("applicant", "data", "email"), "bao.tq@sonha.gov.vn", "Email", "bao.tq@sonha.gov.vn"),
        (("applicant", "type"), 2, "LoaiDoiTuong", 2),
        (("applicant", "type"), 4, "LoaiDoiTuong", 4),
    ],
)
def test_a_source_field_maps_to_its_portal_field(
    path: tuple[str, ...], value: object, portal_field: str, expected: object
) -> None:
    dossier = igate_dossier()
    target = dossier
    for name in path[:-1]:
        target = target[name]
    target[path[-1]] = value
    assert portal(record(dossier))[portal_field] == expected


def test_a_malformed_identity_number_is_invalid_naming_the_portal_field() -> None:
    dossier = igate_dossier()
    dossier["applicant"]["data"]["identityNumber"] = "038190"
    rejection = rejected(record(dossier))
    message = "phải là số định danh 9 hoặc 12 chữ số, hoặc mã số thuế 10 chữ số hay NNNNNNNNNN-NNN"
    assert (rejection.reason_code, rejection.reason, rejection.errors) == (
        "invalid",
        f"SoGiayToChuHoSo: {message}",
        [{"path": "SoGiayToChuHoSo", "code": "format", "message": message}],
    )


@pytest.mark.parametrize(("method", "expected"), [(0, 2), (1, 1), (2, 3)])
def test_apply_method_maps_to_kenh_thuc_hien(method: int, expected: int) -> None:
    form = portal(record(igate_dossier(applyMethod={"id": method, "name": "?"})))
    assert form["KenhThucHien"] == expected


@pytest.mark.parametrize(("method", "expected"), [(0, 0), (1, 0), (2, 1)])
def test_hinh_thuc_is_1_when_applied_by_post_else_0_once_returned(
    method: int, expected: int
) -> None:
    form = portal(record(finished_dossier(5, applyMethod={"id": method, "name": "?"})))
    assert (form["TrangThaiHoSo"], form["NgayTra"], form["HinhThuc"]) == (
        "10",
        "20240516090000",
        expected,
    )


def test_hinh_thuc_and_ngay_tra_are_left_out_while_not_returned() -> None:
    form = portal(record(igate_dossier(applyMethod={"id": 2, "name": "Bưu chính công ích"})))
    assert "HinhThuc" not in form
    assert "NgayTra" not in form


def test_completed_date_is_also_the_refusal_date_at_status_3() -> None:
    raw = record(
        igate_dossier(
            dossierStatus=status(6),
            acceptedDate=None,
            appointmentDate=None,
            completedDate="2024-05-13T04:00:00.000+0000",
        )
    )
    form = portal(raw)
    assert (form["TrangThaiHoSo"], form["NgayKetThucXuLy"], form["NgayTuChoi"]) == (
        "3",
        "20240513110000",
        "20240513110000",
    )
    assert "NgayTiepNhan" not in form


@pytest.mark.parametrize("status_id", [4, 5, 10])
def test_completed_date_is_only_the_end_of_processing_at_other_statuses(status_id: int) -> None:
    form = portal(record(finished_dossier(status_id)))
    assert form["NgayKetThucXuLy"] == "20240515160000"
    assert "NgayTuChoi" not in form


def test_attachments_split_into_submitted_and_result_documents() -> None:
    attachments = [
        attachment(),
        attachment(
            id="6642a1f0c2e4b0a1b2c3d502",
            filename="CCCD ben nam.jpg",
            url=f"{FILES}/6642a1f0c2e4b0a1b2c3d502",
            digitized=False,
            reused=True,
        ),
        result_attachment(),
    ]
    form = portal(record(finished_dossier(4, attachment=attachments)))
    assert form["TaiLieuNop"] == [
        {
            "TepDinhKemId": "6642a1f0c2e4b0a1b2c3d501",
            "TenTepDinhKem": "To khai dang ky ket hon.pdf",
            "DuongDanTaiTepTin": f"{FILES}/6642a1f0c2e4b0a1b2c3d501",
            "DuocSoHoa": 1,
            "DuocTaiSuDung": 0,
        },
        {
            "TepDinhKemId": "6642a1f0c2e4b0a1b2c3d502",
            "TenTepDinhKem": "CCCD ben nam.jpg",
            "DuongDanTaiTepTin": f"{FILES}/6642a1f0c2e4b0a1b2c3d502",
            "DuocSoHoa": 0,
            "DuocTaiSuDung": 1,
        },
    ]
    assert form["DanhSachGiayToKetQua"] == [
        {
            "GiayToId": "6642a1f0c2e4b0a1b2c3d509",
            "TenGiayTo": "Giay chung nhan ket hon.pdf",
            "DuongDanTepTinKetQua": f"{FILES}/6642a1f0c2e4b0a1b2c3d509",
        }
    ]
    assert form["HoSoCoThanhPhanSoHoa"] == 1


@pytest.mark.parametrize(
    ("digitized", "expected"),
    [
        ([True], 1),
        ([False, True], 1),
        ([False], 0),
        ([False, False], 0),
        ([None], 0),
    ],
)
def test_any_digitised_input_marks_the_dossier(digitized: list[bool | None], expected: int) -> None:
    inputs = [
        attachment(id=f"6642a1f0c2e4b0a1b2c3d5{n:02}", filename=f"tep-{n}.pdf", digitized=flag)
        for n, flag in enumerate(digitized)
    ]
    form = portal(record(igate_dossier(attachment=inputs)))
    assert form["HoSoCoThanhPhanSoHoa"] == expected


@pytest.mark.parametrize(
    "attachments",
    [[], [result_attachment(digitized=True)]],
    ids=["no attachments", "only a digitised result"],
)
def test_without_inputs_the_digitised_flag_is_left_out(attachments: list[dict[str, Any]]) -> None:
    form = portal(record(finished_dossier(3, attachment=attachments)))
    assert "HoSoCoThanhPhanSoHoa" not in form
    assert "TaiLieuNop" not in form


@pytest.mark.parametrize(
    ("amount", "expected"),
    [(120000, [{"TenPhiLePhi": "Phí, lệ phí", "Gia": 120000}]), (0, None), (None, None)],
)
def test_a_positive_fee_becomes_one_fee_item(
    amount: int | None, expected: list[dict[str, Any]] | None
) -> None:
    form = portal(record(igate_dossier(fee={"amount": amount, "paid": False, "method": None})))
    assert form.get("DanhSachLePhi") == expected


@pytest.mark.parametrize(
    ("method", "expected"), [("online", 1), ("gateway", 2), ("counter", 0), (None, 0)]
)
def test_fee_method_maps_to_duoc_thanh_toan_truc_tuyen(method: str | None, expected: int) -> None:
    form = portal(record(igate_dossier(fee={"amount": 25000, "paid": True, "method": method})))
    assert form["DuocThanhToanTrucTuyen"] == expected


def test_without_a_fee_object_the_payment_flag_is_left_out() -> None:
    dossier = igate_dossier()
    del dossier["fee"]
    form = portal(record(dossier))
    assert "DuocThanhToanTrucTuyen" not in form
    assert "DanhSachLePhi" not in form


# --- dates: converted to Asia/Ho_Chi_Minh whatever their offset ------------------------------

SAME_INSTANT = [
    "2024-05-14T09:30:00.000+0700",
    "2024-05-14T02:30:00.000+0000",
    "2024-05-14T02:30:00.999+0000",
    "2024-05-14T02:30:00Z",
    "2024-05-14T09:30:00+07:00",
    "2024-05-14T11:30:00.000+0900",
    "2024-05-13T21:30:00.000-0500",
]


@pytest.mark.parametrize(
    ("field", "portal_field"),
    [
        ("appliedDate", "NgayNopHoSo"),
        ("acceptedDate", "NgayTiepNhan"),
        ("appointmentDate", "NgayHenTra"),
        ("completedDate", "NgayKetThucXuLy"),
        ("returnedDate", "NgayTra"),
    ],
)
@pytest.mark.parametrize("value", SAME_INSTANT)
def test_a_date_is_converted_to_vietnam_time(field: str, portal_field: str, value: str) -> None:
    form = portal(record(finished_dossier(5, **{field: value})))
    assert form[portal_field] == "20240514093000"


def test_the_spec_example_of_a_utc_date() -> None:
    form = portal(record(igate_dossier(appliedDate="2024-05-13T02:30:00.000+0000")))
    assert form["NgayNopHoSo"] == "20240513093000"


@pytest.mark.parametrize("value", SAME_INSTANT)
def test_a_history_date_is_converted_to_vietnam_time(value: str) -> None:
    result = normalise(record(entries=[history(createdDate=value)]), context())
    [step] = result.progress
    assert step.to_portal()["ThoiDiemXuLy"] == "20240514093000"


@pytest.mark.parametrize(
    "field", ["appliedDate", "acceptedDate", "appointmentDate", "completedDate", "returnedDate"]
)
@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("13/05/2024 09:30:00", "ngày giờ không hợp lệ: '13/05/2024 09:30:00'"),
        ("2024-13-05T09:30:00.000+0700", "ngày giờ không hợp lệ: '2024-13-05T09:30:00.000+0700'"),
        ("2024-05-13T09:30:00.000", "ngày giờ thiếu múi giờ: '2024-05-13T09:30:00.000'"),
        (1715567400000, "không phải ngày giờ: 1715567400000"),
    ],
)
def test_an_unparsable_date_rejects_the_dossier_naming_the_source_field(
    field: str, value: object, message: str
) -> None:
    raw = record(igate_dossier(**{field: value}))
    rejection = rejected(raw)
    assert rejection == Rejection(
        key=DOSSIER_KEY,
        kind="dossier",
        raw=raw,
        reason_code="unparsable_date",
        reason=f"{field}: {message}",
        errors=[{"path": field, "code": "unparsable_date", "message": message}],
        ma_ho_so=CODE,
    )
    assert (rejection.agency, rejection.unit) == (AGENCY, UNIT)


def test_an_unparsable_updated_date_gives_no_modification_time() -> None:
    result = normalise(record(igate_dossier(updatedDate="2024-05-13T10:05:00")), context())
    assert result.dossier is not None
    assert result.modified_at is None


# --- history → progress --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "expected"),
    [("Đã thẩm định", "Đã thẩm định"), ("", "Tiếp nhận hồ sơ"), (None, "Tiếp nhận hồ sơ")],
)
def test_noi_dung_xu_ly_is_the_content_else_the_action(content: str | None, expected: str) -> None:
    result = normalise(record(entries=[history(content=content)]), context())
    [step] = result.progress
    assert step.NoiDungXuLy == expected


def test_a_history_entry_without_position_or_group_leaves_them_out() -> None:
    result = normalise(record(entries=[history(position=None, groupName="")]), context())
    [step] = result.progress
    assert step.to_portal() == {
        "MaHoSo": CODE,
        "NguoiXuLy": "Vũ Thị Lan",
        "ThoiDiemXuLy": "20240513100500",
        "NoiDungXuLy": "Tiếp nhận hồ sơ trực tuyến",
        "TrangThai": "2",
    }


def test_a_history_entry_without_a_user_is_invalid() -> None:
    entry = history(id="6642a1f0c2e4b0a1b2c3d602", user=None)
    result = normalise(record(entries=[history(), entry]), context())
    assert result.dossier is not None
    assert result.valid_keys == (DOSSIER_KEY, "history:6642a1f0c2e4b0a1b2c3d601")
    [rejection] = result.rejections
    assert (rejection.key, rejection.kind, rejection.reason_code, rejection.errors) == (
        "history:6642a1f0c2e4b0a1b2c3d602",
        "progress",
        "invalid",
        [{"path": "NguoiXuLy", "code": "required", "message": "bắt buộc"}],
    )


# --- status table --------------------------------------------------------------------------

SPEC_STATUSES = [
    (0, "1"),
    (1, "1"),
    (2, "2"),
    (3, "4"),
    (4, "9"),
    (5, "10"),
    (6, "3"),
    (7, "5"),
    (8, "6"),
    (9, "7"),
    (10, "8"),
]


@pytest.mark.parametrize(("status_id", "expected"), SPEC_STATUSES)
def test_every_default_status_maps_as_the_spec_says(status_id: int, expected: str) -> None:
    raw = record(finished_dossier(status_id), entries=[history(statusId=status_id)])
    result = normalise(raw, context())
    assert result.dossier is not None
    assert result.dossier.to_portal()["TrangThaiHoSo"] == expected
    [step] = result.progress
    assert step.to_portal()["TrangThai"] == expected


def test_an_unmapped_status_rejects_the_dossier() -> None:
    raw = record(igate_dossier(dossierStatus=status(11)))
    rejection = rejected(raw)
    message = "trạng thái nguồn 11 chưa được ánh xạ sang TrangThaiHoSo"
    assert rejection == Rejection(
        key=DOSSIER_KEY,
        kind="dossier",
        raw=raw,
        reason_code="unmapped_status",
        reason=f"dossierStatus.id: {message}",
        errors=[{"path": "dossierStatus.id", "code": "unmapped_status", "message": message}],
        ma_ho_so=CODE,
    )
    assert (rejection.agency, rejection.unit) == (AGENCY, UNIT)


def test_a_dossier_without_a_status_is_unmapped() -> None:
    dossier = igate_dossier()
    del dossier["dossierStatus"]
    rejection = rejected(record(dossier))
    message = "trạng thái nguồn None chưa được ánh xạ sang TrangThaiHoSo"
    assert (rejection.reason_code, rejection.errors) == (
        "unmapped_status",
        [{"path": "dossierStatus.id", "code": "unmapped_status", "message": message}],
    )


def test_a_source_override_maps_a_status_the_defaults_leave_out() -> None:
    raw = record(igate_dossier(dossierStatus=status(11)), entries=[history(statusId=11)])
    result = normalise(raw, context({"11": "4"}))
    assert result.dossier is not None
    assert result.dossier.TrangThaiHoSo is DossierStatus.PROCESSING
    assert [step.TrangThai for step in result.progress] == [DossierStatus.PROCESSING]


def test_a_source_override_replaces_a_default() -> None:
    raw = record(igate_dossier(dossierStatus=status(2)), entries=[history(statusId=2)])
    assert portal(raw)["TrangThaiHoSo"] == "2"
    result = normalise(raw, context({"2": "4"}))
    assert result.dossier is not None
    assert result.dossier.TrangThaiHoSo is DossierStatus.PROCESSING
    assert [step.TrangThai for step in result.progress] == [DossierStatus.PROCESSING]


def test_an_unmapped_history_status_rejects_only_that_step() -> None:
    paused = history(
        id="6642a1f0c2e4b0a1b2c3d602",
        createdDate="2024-05-14T08:00:00.000+0700",
        action="Tạm dừng",
        content="Tạm dừng chờ xác minh",
        statusId=11,
    )
    resumed = history(
        id="6642a1f0c2e4b0a1b2c3d603",
        createdDate="2024-05-14T15:00:00.000+0700",
        action="Tiếp tục xử lý",
        content="",
        statusId=3,
    )
    result = normalise(record(entries=[history(), paused, resumed]), context())
    assert result.dossier is not None
    assert result.dossier.TrangThaiHoSo is DossierStatus.PROCESSING
    assert [(s.NoiDungXuLy, s.TrangThai) for s in result.progress] == [
        ("Tiếp nhận hồ sơ trực tuyến", DossierStatus.RECEIVED),
        ("Tiếp tục xử lý", DossierStatus.PROCESSING),
    ]
    assert result.valid_keys == (
        DOSSIER_KEY,
        "history:6642a1f0c2e4b0a1b2c3d601",
        "history:6642a1f0c2e4b0a1b2c3d603",
    )
    message = "trạng thái nguồn 11 chưa được ánh xạ sang TrangThaiHoSo"
    assert result.rejections == (
        Rejection(
            key="history:6642a1f0c2e4b0a1b2c3d602",
            kind="progress",
            raw={"MaHoSo": CODE, "history": paused},
            reason_code="unmapped_status",
            reason=f"statusId: {message}",
            errors=[{"path": "statusId", "code": "unmapped_status", "message": message}],
            ma_ho_so=CODE,
        ),
    )
    assert (result.rejections[0].agency, result.rejections[0].unit) == (AGENCY, UNIT)


def test_a_quarantined_history_entry_goes_through_once_its_status_is_mapped() -> None:
    paused = history(id="6642a1f0c2e4b0a1b2c3d602", statusId=11)
    [rejection] = normalise(record(entries=[paused]), context()).rejections
    assert isinstance(normalise_step(rejection.raw, context()), Rejection)
    step = normalise_step(rejection.raw, context({"11": "8"}))
    assert isinstance(step, ProgressRecord)
    assert step.to_portal() == {
        "MaHoSo": CODE,
        "NguoiXuLy": "Vũ Thị Lan",
        "ChucDanh": "Công chức tư pháp - hộ tịch",
        "PhongBanXuLy": "Bộ phận tiếp nhận và trả kết quả",
        "ThoiDiemXuLy": "20240513100500",
        "NoiDungXuLy": "Tiếp nhận hồ sơ trực tuyến",
        "TrangThai": "8",
    }


def test_an_unparsable_history_date_rejects_only_that_step() -> None:
    bad = history(id="6642a1f0c2e4b0a1b2c3d602", createdDate="2024-05-14 08:00:00")
    result = normalise(record(entries=[history(), bad]), context())
    assert result.dossier is not None
    assert result.valid_keys == (DOSSIER_KEY, "history:6642a1f0c2e4b0a1b2c3d601")
    [rejection] = result.rejections
    assert (rejection.key, rejection.reason_code, rejection.errors) == (
        "history:6642a1f0c2e4b0a1b2c3d602",
        "unparsable_date",
        [
            {
                "path": "createdDate",
                "code": "unparsable_date",
                "message": "ngày giờ thiếu múi giờ: '2024-05-14 08:00:00'",
            }
        ],
    )


# --- contract violations and scope ---------------------------------------------------------


def test_a_malformed_email_is_invalid_naming_the_portal_field() -> None:
    dossier = igate_dossier()
    dossier["applicant"]["data"]["email"] = "an@@x"
    rejection = rejected(record(dossier))
    assert (rejection.key, rejection.kind, rejection.reason_code, rejection.reason) == (
        DOSSIER_KEY,
        "dossier",
        "invalid",
        "Email: không phải địa chỉ e-mail hợp lệ",
    )
    assert rejection.errors == [
        {"path": "Email", "code": "format", "message": "không phải địa chỉ e-mail hợp lệ"}
    ]
    assert (rejection.ma_ho_so, rejection.agency, rejection.unit) == (CODE, AGENCY, UNIT)


def test_a_result_ready_dossier_without_result_attachment_is_invalid() -> None:
    rejection = rejected(record(finished_dossier(4, attachment=[attachment()])))
    assert (rejection.reason_code, rejection.errors) == (
        "invalid",
        [
            {
                "path": "DanhSachGiayToKetQua",
                "code": "required",
                "message": "cần ít nhất một giấy tờ kết quả khi TrangThaiHoSo = 9",
            }
        ],
    )


def test_a_procedure_missing_from_the_catalogue_is_unknown() -> None:
    dossier = igate_dossier()
    dossier["procedure"]["code"] = "9.999999"
    rejection = rejected(record(dossier))
    assert (rejection.reason_code, rejection.errors) == (
        "unknown_procedure",
        [
            {
                "path": "MaTTHC",
                "code": "unknown_procedure",
                "message": "không có trong danh mục thủ tục hành chính",
            }
        ],
    )
    assert portal(record(dossier), context(catalogue=Catalogue()))["MaTTHC"] == "9.999999"


@pytest.mark.parametrize("served", [(UNIT,), (AGENCY,), ("000.00.00.H26", UNIT), ()])
def test_a_dossier_of_a_served_agency_goes_through(served: tuple[str, ...]) -> None:
    assert portal(record(), context(agencies=served))["MaHoSo"] == CODE


@pytest.mark.parametrize("served", [("000.00.00.H26",), ("000.00.55.H29",)])
def test_a_dossier_of_an_agency_the_source_does_not_serve_is_rejected(
    served: tuple[str, ...],
) -> None:
    rejection = rejected(record(), context(agencies=served))
    reason = f"MaHoSo: cơ quan {AGENCY} không thuộc các đơn vị nguồn này phục vụ"
    assert (rejection.reason_code, rejection.reason, rejection.errors) == (
        "agency_not_served",
        reason,
        [{"path": "MaHoSo", "code": "agency_not_served", "message": reason}],
    )
    assert (rejection.agency, rejection.unit) == (AGENCY, UNIT)
