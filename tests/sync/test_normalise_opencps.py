"""Normalisation of OpenCPS v2 records (source-dialects.md §1) into portal dossiers.

Records are built by hand in the dialect's own shapes: ``{"dossier", "files", "actions"}``
as the connector fetches them. Expected portal values are computed by hand.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest

from app.demodata import load_demo_catalogue
from app.domain.dates import VN_TZ
from app.domain.progress import ProgressRecord
from app.domain.status import DossierStatus
from app.sync.normalise.common import Catalogue, Context, Normalised, Rejection, StatusMap
from app.sync.normalise.opencps import normalise, normalise_step

CODE = "000.00.53.H26-240125-00012"
AGENCY = "000.00.53.H26"
UNIT = "000.00.00.H26"
AGENCY_NAME = "Ủy ban nhân dân thành phố An Bình"
DOSSIER_KEY = "dossier:4711"


# --- builders ------------------------------------------------------------------------------


def opencps_dossier(**overrides: Any) -> dict[str, Any]:
    """A dossier row as ``GET /o/rest/v2/dossiers`` returns it: being processed, online."""
    row: dict[str, Any] = {
        "dossierId": 4711,
        "dossierNo": CODE,
        "referenceUid": "3f1c9a52-6d0e-4b7a-9f11-0c2d8e5b7a10",
        "serviceCode": "1.000656",
        "serviceName": "Đăng ký khai sinh",
        "domainCode": "HT",
        "domainName": "Hộ tịch",
        "govAgencyCode": AGENCY,
        "govAgencyName": AGENCY_NAME,
        "applicantName": "Nguyễn Văn An",
        "applicantIdType": "citizen",
        "applicantIdNo": "001204567845",
        "contactName": "Nguyễn Thị Bình",
        "contactTelNo": "0912345678",
        "contactEmail": "binh.nguyen@example.vn",
        "dossierNote": "Đăng ký khai sinh cho con Nguyễn Minh Khang",
        "submitDate": "25/01/2024 08:05:11",
        "receiveDate": "25/01/2024 08:30:00",
        "dueDate": "26/01/2024 17:00:00",
        "finishDate": "",
        "releaseDate": "",
        "modifiedDate": "25/01/2024 09:15:42",
        "dossierStatus": "processing",
        "dossierSubStatus": "",
        "dossierStatusText": "Đang xử lý",
        "online": True,
        "viaPostal": 0,
        "feeAmount": 0,
        "paymentMethod": None,
        "digitized": False,
    }
    return row | overrides


def opencps_file(**overrides: Any) -> dict[str, Any]:
    """A row of ``GET /o/rest/v2/dossiers/{id}/files``: the submitted application form."""
    row: dict[str, Any] = {
        "dossierFileId": 9001,
        "fileTemplateNo": "TP01",
        "displayName": "Tờ khai đăng ký khai sinh.pdf",
        "dossierPartType": 1,
        "fileUrl": "https://dvc.anbinh.gov.vn/documents/9001",
        "removed": False,
        "reused": False,
    }
    return row | overrides


def result_file(**overrides: Any) -> dict[str, Any]:
    return opencps_file(
        **(
            {
                "dossierFileId": 9005,
                "fileTemplateNo": "KQ01",
                "displayName": "Giấy khai sinh bản chính.pdf",
                "dossierPartType": 2,
                "fileUrl": "https://dvc.anbinh.gov.vn/documents/9005",
            }
            | overrides
        )
    )


def opencps_action(**overrides: Any) -> dict[str, Any]:
    """A row of ``GET /o/rest/v2/dossiers/{id}/actions``: intake at the one-stop desk."""
    row: dict[str, Any] = {
        "dossierActionId": 301,
        "createDate": "25/01/2024 08:30:00",
        "actionCode": "1100",
        "actionName": "Tiếp nhận hồ sơ",
        "actionUser": "Trần Văn Cường",
        "actionNote": "Hồ sơ đầy đủ, chuyển phòng Tư pháp",
        "stepCode": "200",
        "stepName": "Bộ phận tiếp nhận và trả kết quả",
        "dossierStatus": "processing",
    }
    return row | overrides


def record(
    dossier: dict[str, Any] | None = None,
    files: list[dict[str, Any]] | None = None,
    actions: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    return {
        "dossier": dossier if dossier is not None else opencps_dossier(),
        "files": files if files is not None else [opencps_file()],
        "actions": actions if actions is not None else [opencps_action()],
    }


def finished_dossier(status: str, **overrides: Any) -> dict[str, Any]:
    """A dossier carrying every date, so it is valid at any status."""
    dates = {"releaseDate": "26/01/2024 10:20:00", "finishDate": "26/01/2024 15:45:00"}
    return opencps_dossier(**({"dossierStatus": status} | dates | overrides))


def finished_record(status: str, **overrides: Any) -> dict[str, Any]:
    return record(finished_dossier(status, **overrides), files=[opencps_file(), result_file()])


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
        statuses=StatusMap("opencps", overrides),
        catalogue=catalogue if catalogue is not None else demo_catalogue(),
        agencies=agencies,
    )


def portal(raw: dict[str, Any], ctx: Context | None = None) -> dict[str, Any]:
    """The dossier's portal JSON; fails the test when it was rejected."""
    result = normalise(raw, ctx or context())
    assert result.rejections == (), result.rejections
    assert result.dossier is not None
    return result.dossier.to_portal()


def rejected(raw: dict[str, Any], ctx: Context | None = None) -> Rejection:
    result = normalise(raw, ctx or context())
    assert result.dossier is None
    assert result.progress == ()
    assert result.valid_keys == ()
    [rejection] = result.rejections
    return rejection


# --- the whole record ----------------------------------------------------------------------


def test_a_dossier_being_processed_maps_to_the_portal_fields() -> None:
    result = normalise(record(), context())
    assert result.key == DOSSIER_KEY
    assert result.record_id == "4711"
    assert result.modified_at == datetime(2024, 1, 25, 9, 15, 42, tzinfo=VN_TZ)
    assert result.rejections == ()
    assert result.valid_keys == (DOSSIER_KEY, "action:301")
    assert result.dossier is not None
    assert result.dossier.to_portal() == {
        "MaHoSo": CODE,
        "MaTTHC": "1.000656",
        "TenTTHC": "Đăng ký khai sinh",
        "MaLinhVuc": "HT",
        "TenLinhVuc": "Hộ tịch",
        "KenhThucHien": 2,
        "ChuHoSo": "Nguyễn Thị Bình",
        "LoaiDoiTuong": 1,
        "SoGiayToChuHoSo": "001204567845",
        "SoDienThoai": "0912345678",
        "Email": "binh.nguyen@example.vn",
        "TrichYeuHoSo": "Đăng ký khai sinh cho con Nguyễn Minh Khang",
        "NgayNopHoSo": "20240125080511",
        "NgayTiepNhan": "20240125083000",
        "NgayHenTra": "20240126170000",
        "TrangThaiHoSo": "4",
        "DonViXuLy": AGENCY_NAME,
        "HoSoCoThanhPhanSoHoa": 0,
        "DuocThanhToanTrucTuyen": 0,
        "TaiLieuNop": [
            {
                "TepDinhKemId": "9001",
                "TenTepDinhKem": "Tờ khai đăng ký khai sinh.pdf",
                "MaThanhPhanHoSo": "TP01",
                "DuongDanTaiTepTin": "https://dvc.anbinh.gov.vn/documents/9001",
                "DuocTaiSuDung": 0,
            }
        ],
    }
    [step] = result.progress
    assert step.to_portal() == {
        "MaHoSo": CODE,
        "NguoiXuLy": "Trần Văn Cường",
        "PhongBanXuLy": "Bộ phận tiếp nhận và trả kết quả",
        "ThoiDiemXuLy": "20240125083000",
        "NoiDungXuLy": "Hồ sơ đầy đủ, chuyển phòng Tư pháp",
        "TrangThai": "4",
    }


def test_a_returned_dossier_maps_dates_results_and_return_method() -> None:
    raw = record(
        opencps_dossier(
            dossierStatus="done",
            dossierStatusText="Đã trả kết quả",
            online=False,
            viaPostal=2,
            releaseDate="26/01/2024 10:20:00",
            finishDate="26/01/2024 15:45:00",
            feeAmount=8000,
            paymentMethod="gateway",
            digitized=True,
        ),
        files=[opencps_file(reused=True), result_file()],
        actions=[
            opencps_action(),
            opencps_action(
                dossierActionId=302,
                createDate="26/01/2024 10:20:00",
                actionCode="5000",
                actionName="Ký duyệt kết quả",
                actionUser="Phạm Thu Hà",
                actionNote="",
                stepCode="300",
                stepName="Phòng Tư pháp",
                dossierStatus="releasing",
            ),
            opencps_action(
                dossierActionId=303,
                createDate="26/01/2024 15:45:00",
                actionCode="6000",
                actionName="Trả kết quả qua bưu chính",
                actionUser="Trần Văn Cường",
                actionNote="Đã gửi bưu điện, mã vận đơn EB123456789VN",
                stepCode="400",
                dossierStatus="done",
            ),
        ],
    )
    result = normalise(raw, context())
    assert result.rejections == ()
    assert result.valid_keys == (DOSSIER_KEY, "action:301", "action:302", "action:303")
    assert result.dossier is not None
    form = result.dossier.to_portal()
    assert form == {
        "MaHoSo": CODE,
        "MaTTHC": "1.000656",
        "TenTTHC": "Đăng ký khai sinh",
        "MaLinhVuc": "HT",
        "TenLinhVuc": "Hộ tịch",
        "KenhThucHien": 3,
        "ChuHoSo": "Nguyễn Thị Bình",
        "LoaiDoiTuong": 1,
        "SoGiayToChuHoSo": "001204567845",
        "SoDienThoai": "0912345678",
        "Email": "binh.nguyen@example.vn",
        "TrichYeuHoSo": "Đăng ký khai sinh cho con Nguyễn Minh Khang",
        "NgayNopHoSo": "20240125080511",
        "NgayTiepNhan": "20240125083000",
        "NgayHenTra": "20240126170000",
        "TrangThaiHoSo": "10",
        "NgayKetThucXuLy": "20240126102000",
        "NgayTra": "20240126154500",
        "HinhThuc": 1,
        "DonViXuLy": AGENCY_NAME,
        "HoSoCoThanhPhanSoHoa": 1,
        "DuocThanhToanTrucTuyen": 2,
        "DanhSachLePhi": [{"TenPhiLePhi": "Phí, lệ phí", "Gia": 8000}],
        "TaiLieuNop": [
            {
                "TepDinhKemId": "9001",
                "TenTepDinhKem": "Tờ khai đăng ký khai sinh.pdf",
                "MaThanhPhanHoSo": "TP01",
                "DuongDanTaiTepTin": "https://dvc.anbinh.gov.vn/documents/9001",
                "DuocTaiSuDung": 1,
            }
        ],
        "DanhSachGiayToKetQua": [
            {
                "GiayToId": "9005",
                "TenGiayTo": "Giấy khai sinh bản chính.pdf",
                "MaThanhPhanHoSo": "KQ01",
                "DuongDanTepTinKetQua": "https://dvc.anbinh.gov.vn/documents/9005",
            }
        ],
    }
    assert "NgayTuChoi" not in form
    assert [step.to_portal() for step in result.progress] == [
        {
            "MaHoSo": CODE,
            "NguoiXuLy": "Trần Văn Cường",
            "PhongBanXuLy": "Bộ phận tiếp nhận và trả kết quả",
            "ThoiDiemXuLy": "20240125083000",
            "NoiDungXuLy": "Hồ sơ đầy đủ, chuyển phòng Tư pháp",
            "TrangThai": "4",
        },
        {
            "MaHoSo": CODE,
            "NguoiXuLy": "Phạm Thu Hà",
            "PhongBanXuLy": "Phòng Tư pháp",
            "ThoiDiemXuLy": "20240126102000",
            "NoiDungXuLy": "Ký duyệt kết quả",
            "TrangThai": "9",
        },
        {
            "MaHoSo": CODE,
            "NguoiXuLy": "Trần Văn Cường",
            "PhongBanXuLy": "Bộ phận tiếp nhận và trả kết quả",
            "ThoiDiemXuLy": "20240126154500",
            "NoiDungXuLy": "Đã gửi bưu điện, mã vận đơn EB123456789VN",
            "TrangThai": "10",
        },
    ]


# --- one mapping line at a time ------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value", "portal_field", "expected"),
    [
        ("dossierNo", "000.00.54.H26-240125-00007", "MaHoSo", "000.00.54.H26-240125-00007"),
        ("serviceCode", "1.001193", "MaTTHC", "1.001193"),
        ("serviceName", "Đăng ký khai tử", "TenTTHC", "Đăng ký khai tử"),
        ("domainCode", "CT", "MaLinhVuc", "CT"),
        ("domainName", "Chứng thực", "TenLinhVuc", "Chứng thực"),
        ("applicantIdNo", "0101234567-001", "SoGiayToChuHoSo", "0101234567-001"),
        ("contactTelNo", "+84912345678", "SoDienThoai", "+84912345678"),
        ("contactEmail", "lienhe@congty-anbinh.vn", "Email", "lienhe@congty-anbinh.vn"),
        ("dossierNote", "Xin cấp lại", "TrichYeuHoSo", "Xin cấp lại"),
        ("submitDate", "24/01/2024 23:59:59", "NgayNopHoSo", "20240124235959"),
        ("receiveDate", "25/01/2024 07:00:01", "NgayTiepNhan", "20240125070001"),
        ("dueDate", "31/01/2024 16:30:00", "NgayHenTra", "20240131163000"),
        ("govAgencyName", "UBND thành phố An Bình", "DonViXuLy", "UBND thành phố An Bình"),
    ],
)
def test_a_source_field_maps_to_its_portal_field(
    field: str, value: str, portal_field: str, expected: str
) -> None:
    assert portal(record(opencps_dossier(**{field: value})))[portal_field] == expected


@pytest.mark.parametrize(
    ("contact_name", "expected"),
    [
        ("Nguyễn Thị Bình", "Nguyễn Thị Bình"),
        ("", "Nguyễn Văn An"),
        (None, "Nguyễn Văn An"),
    ],
)
def test_chu_ho_so_is_the_contact_name_else_the_applicant_name(
    contact_name: str | None, expected: str
) -> None:
    assert portal(record(opencps_dossier(contactName=contact_name)))["ChuHoSo"] == expected


@pytest.mark.parametrize(
    ("id_type", "expected"), [("business", 2), ("citizen", 1), ("", 1), (None, 1)]
)
def test_loai_doi_tuong_is_2_for_a_business_else_1(id_type: str | None, expected: int) -> None:
    overrides: dict[str, Any] = {"applicantIdType": id_type}
    if id_type == "business":
        overrides["applicantIdNo"] = "0101234567"
    assert portal(record(opencps_dossier(**overrides)))["LoaiDoiTuong"] == expected


@pytest.mark.parametrize(
    ("online", "via_postal", "expected"),
    [
        (True, 0, 2),
        (True, 1, 2),
        (True, 2, 2),
        (False, 2, 3),
        (False, 1, 1),
        (False, 0, 1),
    ],
)
def test_kenh_thuc_hien_online_else_postal_else_in_person(
    online: bool, via_postal: int, expected: int
) -> None:
    raw = record(opencps_dossier(online=online, viaPostal=via_postal))
    assert portal(raw)["KenhThucHien"] == expected


@pytest.mark.parametrize(("via_postal", "expected"), [(2, 1), (1, 0), (0, 0)])
def test_hinh_thuc_is_1_by_post_else_0_once_returned(via_postal: int, expected: int) -> None:
    form = portal(finished_record("done", viaPostal=via_postal))
    assert (form["TrangThaiHoSo"], form["NgayTra"], form["HinhThuc"]) == (
        "10",
        "20240126154500",
        expected,
    )


@pytest.mark.parametrize("via_postal", [0, 1, 2])
def test_hinh_thuc_is_left_out_while_not_returned(via_postal: int) -> None:
    form = portal(record(opencps_dossier(viaPostal=via_postal)))
    assert "HinhThuc" not in form
    assert "NgayTra" not in form


def test_release_date_is_also_the_refusal_date_when_denied() -> None:
    raw = record(
        opencps_dossier(
            dossierStatus="denied",
            dossierStatusText="Từ chối tiếp nhận",
            releaseDate="25/01/2024 09:00:00",
        )
    )
    form = portal(raw)
    assert (form["TrangThaiHoSo"], form["NgayKetThucXuLy"], form["NgayTuChoi"]) == (
        "3",
        "20240125090000",
        "20240125090000",
    )
    assert "NgayTra" not in form
    assert "HinhThuc" not in form


@pytest.mark.parametrize("status", ["unresolved", "releasing"])
def test_release_date_is_only_the_end_of_processing_when_not_denied(status: str) -> None:
    form = portal(finished_record(status))
    assert form["NgayKetThucXuLy"] == "20240126102000"
    assert "NgayTuChoi" not in form


def test_finish_date_is_the_return_date() -> None:
    form = portal(finished_record("done", finishDate="27/01/2024 08:00:00"))
    assert form["NgayTra"] == "20240127080000"


@pytest.mark.parametrize(
    ("amount", "expected"),
    [
        (50000, [{"TenPhiLePhi": "Phí, lệ phí", "Gia": 50000}]),
        (1, [{"TenPhiLePhi": "Phí, lệ phí", "Gia": 1}]),
        (0, None),
        (None, None),
    ],
)
def test_a_positive_fee_becomes_one_fee_item(
    amount: int | None, expected: list[dict[str, Any]] | None
) -> None:
    form = portal(record(opencps_dossier(feeAmount=amount)))
    assert form.get("DanhSachLePhi") == expected


@pytest.mark.parametrize(
    ("method", "expected"), [("online", 1), ("gateway", 2), ("counter", 0), (None, 0)]
)
def test_payment_method_maps_to_duoc_thanh_toan_truc_tuyen(
    method: str | None, expected: int
) -> None:
    form = portal(record(opencps_dossier(feeAmount=50000, paymentMethod=method)))
    assert form["DuocThanhToanTrucTuyen"] == expected


@pytest.mark.parametrize(("digitized", "expected"), [(True, 1), (False, 0)])
def test_digitized_maps_to_ho_so_co_thanh_phan_so_hoa(digitized: bool, expected: int) -> None:
    form = portal(record(opencps_dossier(digitized=digitized)))
    assert form["HoSoCoThanhPhanSoHoa"] == expected


def test_files_split_into_submitted_and_result_documents_and_removed_ones_are_left_out() -> None:
    files = [
        opencps_file(),
        opencps_file(
            dossierFileId=9002,
            fileTemplateNo="TP02",
            displayName="Giấy chứng sinh.pdf",
            fileUrl="https://dvc.anbinh.gov.vn/documents/9002",
            reused=True,
        ),
        opencps_file(
            dossierFileId=9003,
            fileTemplateNo="TP03",
            displayName="Giấy chứng sinh (bản cũ).pdf",
            fileUrl="https://dvc.anbinh.gov.vn/documents/9003",
            removed=True,
        ),
        result_file(),
        result_file(
            dossierFileId=9006,
            fileTemplateNo="KQ02",
            displayName="Giấy khai sinh (sai tên).pdf",
            fileUrl="https://dvc.anbinh.gov.vn/documents/9006",
            removed=True,
        ),
    ]
    form = portal(record(finished_dossier("releasing"), files=files))
    assert form["TaiLieuNop"] == [
        {
            "TepDinhKemId": "9001",
            "TenTepDinhKem": "Tờ khai đăng ký khai sinh.pdf",
            "MaThanhPhanHoSo": "TP01",
            "DuongDanTaiTepTin": "https://dvc.anbinh.gov.vn/documents/9001",
            "DuocTaiSuDung": 0,
        },
        {
            "TepDinhKemId": "9002",
            "TenTepDinhKem": "Giấy chứng sinh.pdf",
            "MaThanhPhanHoSo": "TP02",
            "DuongDanTaiTepTin": "https://dvc.anbinh.gov.vn/documents/9002",
            "DuocTaiSuDung": 1,
        },
    ]
    assert form["DanhSachGiayToKetQua"] == [
        {
            "GiayToId": "9005",
            "TenGiayTo": "Giấy khai sinh bản chính.pdf",
            "MaThanhPhanHoSo": "KQ01",
            "DuongDanTepTinKetQua": "https://dvc.anbinh.gov.vn/documents/9005",
        }
    ]


def test_without_files_there_are_no_document_lists() -> None:
    form = portal(record(files=[]))
    assert "TaiLieuNop" not in form
    assert "DanhSachGiayToKetQua" not in form


def test_a_result_ready_dossier_whose_only_result_was_removed_is_invalid() -> None:
    raw = record(finished_dossier("releasing"), files=[result_file(removed=True)])
    rejection = rejected(raw)
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


# --- actions → progress --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("note", "expected"),
    [
        ("Chuyển xử lý", "Chuyển xử lý"),
        ("", "Tiếp nhận hồ sơ"),
        (None, "Tiếp nhận hồ sơ"),
    ],
)
def test_noi_dung_xu_ly_is_the_action_note_else_its_name(note: str | None, expected: str) -> None:
    result = normalise(record(actions=[opencps_action(actionNote=note)]), context())
    [step] = result.progress
    assert step.NoiDungXuLy == expected


def test_an_action_maps_each_field_to_the_progress_record() -> None:
    action = opencps_action(
        dossierActionId=305,
        createDate="29/02/2024 13:07:09",
        actionUser="Đỗ Minh Tuấn",
        actionNote="Yêu cầu bổ sung giấy chứng sinh",
        stepName="Phòng Tư pháp",
        dossierStatus="waiting",
    )
    result = normalise(record(actions=[action]), context())
    assert result.valid_keys == (DOSSIER_KEY, "action:305")
    [step] = result.progress
    assert step.to_portal() == {
        "MaHoSo": CODE,
        "NguoiXuLy": "Đỗ Minh Tuấn",
        "PhongBanXuLy": "Phòng Tư pháp",
        "ThoiDiemXuLy": "20240229130709",
        "NoiDungXuLy": "Yêu cầu bổ sung giấy chứng sinh",
        "TrangThai": "5",
    }


def test_without_actions_there_is_no_progress() -> None:
    result = normalise(record(actions=[]), context())
    assert (result.progress, result.valid_keys) == ((), (DOSSIER_KEY,))


# --- status table --------------------------------------------------------------------------

SPEC_STATUSES = [
    ("new", "1"),
    ("receiving", "1"),
    ("processing", "4"),
    ("handover", "4"),
    ("interoperating", "4"),
    ("waiting", "5"),
    ("correcting", "5"),
    ("paying", "6"),
    ("cancelling", "7"),
    ("cancelled", "7"),
    ("unresolved", "8"),
    ("denied", "3"),
    ("releasing", "9"),
    ("posting", "9"),
    ("done", "10"),
]


@pytest.mark.parametrize(("source_status", "expected"), SPEC_STATUSES)
def test_every_default_status_maps_as_the_spec_says(source_status: str, expected: str) -> None:
    raw = finished_record(source_status)
    raw["actions"] = [opencps_action(dossierStatus=source_status)]
    result = normalise(raw, context())
    assert result.dossier is not None
    assert result.dossier.to_portal()["TrangThaiHoSo"] == expected
    [step] = result.progress
    assert step.to_portal()["TrangThai"] == expected
    assert result.valid_keys == (DOSSIER_KEY, "action:301")


@pytest.mark.parametrize("source_status", ["collecting", "pausing", "archived", ""])
def test_an_unmapped_status_rejects_the_dossier(source_status: str) -> None:
    raw = record(opencps_dossier(dossierStatus=source_status))
    rejection = rejected(raw)
    message = f"trạng thái nguồn {source_status!r} chưa được ánh xạ sang TrangThaiHoSo"
    assert rejection == Rejection(
        key=DOSSIER_KEY,
        kind="dossier",
        raw=raw,
        reason_code="unmapped_status",
        reason=f"dossierStatus: {message}",
        errors=[{"path": "dossierStatus", "code": "unmapped_status", "message": message}],
        ma_ho_so=CODE,
    )
    assert (rejection.agency, rejection.unit) == (AGENCY, UNIT)


def test_a_source_override_maps_a_status_the_defaults_leave_out() -> None:
    raw = record(
        opencps_dossier(dossierStatus="pausing"),
        actions=[opencps_action(dossierStatus="pausing")],
    )
    result = normalise(raw, context({"pausing": "4"}))
    assert result.dossier is not None
    assert result.dossier.TrangThaiHoSo is DossierStatus.PROCESSING
    assert [step.TrangThai for step in result.progress] == [DossierStatus.PROCESSING]


def test_a_source_override_replaces_a_default() -> None:
    raw = record(
        opencps_dossier(dossierStatus="correcting"),
        actions=[opencps_action(dossierStatus="correcting")],
    )
    assert portal(raw)["TrangThaiHoSo"] == "5"
    result = normalise(raw, context({"correcting": "4"}))
    assert result.dossier is not None
    assert result.dossier.TrangThaiHoSo is DossierStatus.PROCESSING
    assert [step.TrangThai for step in result.progress] == [DossierStatus.PROCESSING]


def test_an_unmapped_action_status_rejects_only_that_step() -> None:
    paused = opencps_action(
        dossierActionId=302,
        createDate="25/01/2024 10:00:00",
        actionName="Tạm dừng xử lý",
        actionNote="",
        dossierStatus="pausing",
    )
    resumed = opencps_action(
        dossierActionId=303,
        createDate="25/01/2024 14:00:00",
        actionName="Tiếp tục xử lý",
        actionNote="",
        dossierStatus="processing",
    )
    raw = record(actions=[opencps_action(), paused, resumed])
    result = normalise(raw, context())
    assert result.dossier is not None
    assert result.dossier.TrangThaiHoSo is DossierStatus.PROCESSING
    assert [(s.NoiDungXuLy, s.ThoiDiemXuLy.hour) for s in result.progress] == [
        ("Hồ sơ đầy đủ, chuyển phòng Tư pháp", 8),
        ("Tiếp tục xử lý", 14),
    ]
    assert result.valid_keys == (DOSSIER_KEY, "action:301", "action:303")
    message = "trạng thái nguồn 'pausing' chưa được ánh xạ sang TrangThaiHoSo"
    assert result.rejections == (
        Rejection(
            key="action:302",
            kind="progress",
            raw={"MaHoSo": CODE, "action": paused},
            reason_code="unmapped_status",
            reason=f"dossierStatus: {message}",
            errors=[{"path": "dossierStatus", "code": "unmapped_status", "message": message}],
            ma_ho_so=CODE,
        ),
    )
    assert (result.rejections[0].agency, result.rejections[0].unit) == (AGENCY, UNIT)


def test_a_quarantined_action_goes_through_once_its_status_is_mapped() -> None:
    paused = opencps_action(dossierActionId=302, actionNote="", dossierStatus="pausing")
    result = normalise(record(actions=[paused]), context())
    [rejection] = result.rejections
    assert normalise_step(rejection.raw, context()) == Rejection(
        key="action:302",
        kind="progress",
        raw=rejection.raw,
        reason_code="unmapped_status",
        reason=rejection.reason,
        errors=rejection.errors,
        ma_ho_so=CODE,
    )
    step = normalise_step(rejection.raw, context({"pausing": "4"}))
    assert isinstance(step, ProgressRecord)
    assert step.to_portal() == {
        "MaHoSo": CODE,
        "NguoiXuLy": "Trần Văn Cường",
        "PhongBanXuLy": "Bộ phận tiếp nhận và trả kết quả",
        "ThoiDiemXuLy": "20240125083000",
        "NoiDungXuLy": "Tiếp nhận hồ sơ",
        "TrangThai": "4",
    }


def test_a_rejected_dossier_takes_its_steps_with_it() -> None:
    raw = record(
        opencps_dossier(dossierStatus="collecting"),
        actions=[opencps_action(), opencps_action(dossierActionId=302, dossierStatus="pausing")],
    )
    result = normalise(raw, context())
    assert result == Normalised(
        key=DOSSIER_KEY,
        record_id="4711",
        modified_at=datetime(2024, 1, 25, 9, 15, 42, tzinfo=VN_TZ),
        dossier=None,
        rejections=result.rejections,
    )
    assert [r.key for r in result.rejections] == [DOSSIER_KEY]


# --- dates ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "field", ["submitDate", "receiveDate", "dueDate", "releaseDate", "finishDate"]
)
@pytest.mark.parametrize("value", ["2024-01-25 08:30:00", "25/01/2024", "31/02/2024 08:00:00"])
def test_an_unparsable_date_rejects_the_dossier_naming_the_source_field(
    field: str, value: str
) -> None:
    raw = record(opencps_dossier(**{field: value}))
    rejection = rejected(raw)
    message = f"ngày giờ không hợp lệ: {value!r}"
    assert (rejection.key, rejection.kind, rejection.reason_code, rejection.reason) == (
        DOSSIER_KEY,
        "dossier",
        "unparsable_date",
        f"{field}: {message}",
    )
    assert rejection.errors == [{"path": field, "code": "unparsable_date", "message": message}]
    assert rejection.ma_ho_so == CODE


def test_a_date_of_the_wrong_type_is_unparsable() -> None:
    rejection = rejected(record(opencps_dossier(dueDate=1706259600000)))
    assert rejection.errors == [
        {
            "path": "dueDate",
            "code": "unparsable_date",
            "message": "không phải ngày giờ: 1706259600000",
        }
    ]


def test_an_unparsable_action_date_rejects_only_that_step() -> None:
    bad = opencps_action(dossierActionId=302, createDate="25-01-2024 10:00")
    result = normalise(record(actions=[opencps_action(), bad]), context())
    assert result.dossier is not None
    assert result.valid_keys == (DOSSIER_KEY, "action:301")
    [rejection] = result.rejections
    assert (rejection.key, rejection.kind, rejection.reason_code, rejection.errors) == (
        "action:302",
        "progress",
        "unparsable_date",
        [
            {
                "path": "createDate",
                "code": "unparsable_date",
                "message": "ngày giờ không hợp lệ: '25-01-2024 10:00'",
            }
        ],
    )


def test_an_unparsable_modified_date_gives_no_modification_time() -> None:
    result = normalise(record(opencps_dossier(modifiedDate="hôm nay")), context())
    assert result.dossier is not None
    assert result.modified_at is None


# --- contract violations and scope ---------------------------------------------------------


def test_a_malformed_email_is_invalid_naming_the_portal_field() -> None:
    rejection = rejected(record(opencps_dossier(contactEmail="an@@x")))
    assert (rejection.reason_code, rejection.reason, rejection.errors) == (
        "invalid",
        "Email: không phải địa chỉ e-mail hợp lệ",
        [{"path": "Email", "code": "format", "message": "không phải địa chỉ e-mail hợp lệ"}],
    )
    assert (rejection.key, rejection.kind, rejection.ma_ho_so) == (DOSSIER_KEY, "dossier", CODE)
    assert (rejection.agency, rejection.unit) == (AGENCY, UNIT)


def test_a_due_date_before_reception_is_invalid() -> None:
    rejection = rejected(record(opencps_dossier(dueDate="24/01/2024 17:00:00")))
    assert (rejection.reason_code, rejection.errors) == (
        "invalid",
        [{"path": "NgayHenTra", "code": "date_order", "message": "phải ≥ NgayTiepNhan"}],
    )


def test_a_returned_dossier_without_finish_date_is_invalid() -> None:
    raw = finished_record("done", finishDate="")
    rejection = rejected(raw)
    assert (rejection.reason_code, rejection.errors) == (
        "invalid",
        [
            {"path": "NgayTra", "code": "required", "message": "bắt buộc khi TrangThaiHoSo = 10"},
        ],
    )


def test_a_malformed_dossier_number_has_no_agency() -> None:
    rejection = rejected(record(opencps_dossier(dossierNo="HS-2024-00012")))
    assert (rejection.reason_code, rejection.ma_ho_so) == ("invalid", "HS-2024-00012")
    message = "phải có dạng <mã định danh cơ quan>-<số hồ sơ>, ví dụ 000.00.53.H26-240125-00012"
    assert rejection.errors == [{"path": "MaHoSo", "code": "format", "message": message}]
    assert (rejection.agency, rejection.unit) == (None, None)


def test_a_procedure_missing_from_the_catalogue_is_unknown() -> None:
    rejection = rejected(record(opencps_dossier(serviceCode="9.999999")))
    assert (rejection.reason_code, rejection.reason, rejection.errors) == (
        "unknown_procedure",
        "MaTTHC: không có trong danh mục thủ tục hành chính",
        [
            {
                "path": "MaTTHC",
                "code": "unknown_procedure",
                "message": "không có trong danh mục thủ tục hành chính",
            }
        ],
    )


def test_without_a_catalogue_any_procedure_code_is_accepted() -> None:
    raw = record(opencps_dossier(serviceCode="9.999999"))
    assert portal(raw, context(catalogue=Catalogue()))["MaTTHC"] == "9.999999"


@pytest.mark.parametrize("served", [(UNIT,), (AGENCY,), ("000.00.00.H29", UNIT), ()])
def test_a_dossier_of_a_served_agency_goes_through(served: tuple[str, ...]) -> None:
    assert portal(record(), context(agencies=served))["MaHoSo"] == CODE


@pytest.mark.parametrize("served", [("000.00.00.H29",), ("000.00.54.H26",), ("000.00.00.G05",)])
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
