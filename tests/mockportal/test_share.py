"""Contract §4 (look-ups on /dvcqg/share) and unknown services, over HTTP."""

from __future__ import annotations

from typing import Any

import pytest

from app.demodata import load_demo_catalogue
from app.mockportal.testing import MockPortalControl
from tests.domain.factories import valid_progress
from tests.factories import dossier_json
from tests.mockportal.helpers import H26, H29, PortalClient

CODE = "000.00.53.H26-240125-00001"
CODE_2 = "000.00.02.H26-240125-00002"
UNKNOWN = "000.00.53.H26-240125-99999"
H29_CODE = "000.00.53.H29-240125-00001"

OK = "Thành công"
NOT_FOUND = {"error_code": -4, "message": "Không tìm thấy hồ sơ"}
PROCEDURE_FIELDS = {
    "MaTTHC",
    "TenTTHC",
    "MaLinhVuc",
    "TenLinhVuc",
    "ThoiHanGiaiQuyet",
    "CoPhiLePhi",
    "DuDieuKienTrucTuyenToanTrinh",
}


def share(client: PortalClient, service: str, **fields: Any) -> tuple[int, dict[str, Any]]:
    response = client.call("share", service, **fields)
    body: dict[str, Any] = response.json()
    return response.status_code, body


# --- TraCuuHoSo -------------------------------------------------------------------------


def test_lookup_of_one_stored_dossier(client: PortalClient) -> None:
    dossier = dossier_json(CODE, "4")
    client.create(dossier)
    progress = valid_progress(MaHoSo=CODE)
    client.progress(progress)
    assert share(client, "TraCuuHoSo", mahoso=CODE) == (
        200,
        {"error_code": 0, "message": OK, "data": dossier | {"QuaTrinhXuLy": [progress]}},
    )


def test_lookup_of_an_unknown_dossier_is_minus_4(client: PortalClient) -> None:
    assert share(client, "TraCuuHoSo", mahoso=UNKNOWN) == (200, NOT_FOUND)


def test_bulk_lookup_lists_the_unknown_codes(client: PortalClient) -> None:
    first, second = dossier_json(CODE, "2"), dossier_json(CODE_2, "9")
    client.create(first, second)
    status, body = share(client, "TraCuuHoSo", dsmahoso=[CODE_2, UNKNOWN, CODE, CODE_2])
    assert status == 200
    assert body == {
        "error_code": 0,
        "message": OK,
        "data": [second | {"QuaTrinhXuLy": []}, first | {"QuaTrinhXuLy": []}],
        "khongtimthay": [UNKNOWN],
    }


def test_bulk_lookup_of_only_unknown_codes_is_still_a_success(client: PortalClient) -> None:
    assert share(client, "TraCuuHoSo", dsmahoso=[UNKNOWN]) == (
        200,
        {"error_code": 0, "message": OK, "data": [], "khongtimthay": [UNKNOWN]},
    )


def test_another_units_dossier_is_never_revealed(
    client: PortalClient, other_client: PortalClient, control: MockPortalControl
) -> None:
    other_client.create(dossier_json(H29_CODE, "4"))
    assert control.dossier(H29_CODE) is not None
    # Exactly the answer for a code that does not exist anywhere.
    assert share(client, "TraCuuHoSo", mahoso=H29_CODE) == (200, NOT_FOUND)
    assert share(client, "TraCuuHoSo", dsmahoso=[H29_CODE, "000.00.53.H29-240125-09999"]) == (
        200,
        {
            "error_code": 0,
            "message": OK,
            "data": [],
            "khongtimthay": [H29_CODE, "000.00.53.H29-240125-09999"],
        },
    )
    # Its own unit does find it.
    assert share(other_client, "TraCuuHoSo", mahoso=H29_CODE)[1]["error_code"] == 0


def test_bulk_lookup_of_100_codes_is_allowed_101_is_minus_8(client: PortalClient) -> None:
    client.create(dossier_json(CODE))
    codes = [CODE] + [f"000.00.53.H26-240125-1{n:04d}" for n in range(99)]
    status, body = share(client, "TraCuuHoSo", dsmahoso=codes)
    assert (status, body["error_code"], len(body["data"]), len(body["khongtimthay"])) == (
        200,
        0,
        1,
        99,
    )
    assert share(client, "TraCuuHoSo", dsmahoso=[*codes, UNKNOWN]) == (
        200,
        {"error_code": -8, "message": "Số lượng bản ghi vượt quá 100"},
    )


@pytest.mark.parametrize(
    "fields",
    [{}, {"mahoso": ""}, {"mahoso": None}, {"mahoso": 12}, {"dsmahoso": None}],
    ids=repr,
)
def test_lookup_without_a_code_is_minus_5(client: PortalClient, fields: dict[str, Any]) -> None:
    assert share(client, "TraCuuHoSo", **fields) == (
        200,
        {"error_code": -5, "message": "mahoso: bắt buộc (hoặc dsmahoso)"},
    )


@pytest.mark.parametrize("codes", ["x", [1, 2], {"a": 1}], ids=repr)
def test_bulk_lookup_needs_a_list_of_codes(client: PortalClient, codes: object) -> None:
    assert share(client, "TraCuuHoSo", dsmahoso=codes) == (
        200,
        {"error_code": -5, "message": "dsmahoso: phải là danh sách mã"},
    )


# --- catalogue look-ups ------------------------------------------------------------------


def test_lay_thu_tuc_answers_one_procedure(client: PortalClient) -> None:
    status, body = share(client, "LayThuTuc", maTTHC="1.000656")
    assert (status, body["error_code"], body["message"]) == (200, 0, OK)
    procedure = body["data"]
    assert set(procedure) == PROCEDURE_FIELDS
    assert procedure["MaTTHC"] == "1.000656"
    assert procedure["TenTTHC"] == "Đăng ký khai sinh"
    assert isinstance(procedure["ThoiHanGiaiQuyet"], int)
    assert procedure["CoPhiLePhi"] in (0, 1)
    assert procedure["DuDieuKienTrucTuyenToanTrinh"] in (0, 1)
    [expected] = [p for p in load_demo_catalogue()["procedures"] if p["MaTTHC"] == "1.000656"]
    assert procedure == expected


def test_lay_thu_tuc_of_an_unknown_procedure_is_minus_4(client: PortalClient) -> None:
    assert share(client, "LayThuTuc", maTTHC="9.999999") == (
        200,
        {"error_code": -4, "message": "Không tìm thấy thủ tục 9.999999"},
    )


def test_lay_thu_tuc_without_a_code_is_minus_5(client: PortalClient) -> None:
    assert share(client, "LayThuTuc") == (200, {"error_code": -5, "message": "maTTHC: bắt buộc"})


def test_lay_danh_sach_tthc_answers_every_procedure(
    client: PortalClient, control: MockPortalControl
) -> None:
    status, body = share(client, "LayDanhSachTTHC")
    assert (status, body["error_code"]) == (200, 0)
    procedures = body["data"]
    assert procedures == control.catalogue()["procedures"]
    assert len(procedures) == len(load_demo_catalogue()["procedures"]) == 75
    assert all(set(p) == PROCEDURE_FIELDS for p in procedures)


def test_lay_danh_muc_co_quan_answers_the_agencies(
    client: PortalClient, control: MockPortalControl
) -> None:
    status, body = share(client, "LayDanhMucCoQuan")
    assert (status, body["error_code"]) == (200, 0)
    agencies = body["data"]
    assert agencies == control.catalogue()["agencies"]
    assert all(set(a) == {"MaCoQuan", "TenCoQuan", "Cap"} for a in agencies)
    by_code = {a["MaCoQuan"]: a["Cap"] for a in agencies}
    assert by_code[H26] == "TINH" and by_code[H29] == "TINH"
    assert by_code["000.00.00.G05"] == "BO"
    assert {a["Cap"] for a in agencies} == {"BO", "TINH"}


def test_a_seeded_catalogue_is_what_the_look_ups_answer(
    client: PortalClient, control: MockPortalControl
) -> None:
    procedure = {
        "MaTTHC": "2.000001",
        "TenTTHC": "Thủ tục thử",
        "MaLinhVuc": "TT",
        "TenLinhVuc": "Thử",
        "ThoiHanGiaiQuyet": 3,
        "CoPhiLePhi": 1,
        "DuDieuKienTrucTuyenToanTrinh": 0,
    }
    agency = {"MaCoQuan": H26, "TenCoQuan": "UBND", "Cap": "TINH"}
    account = {"unit": H26, "username": H26, "password": "demo"}
    control.seed({"procedures": [procedure], "agencies": [agency], "accounts": [account]})
    client.login()  # a seed ends the sessions
    assert share(client, "LayDanhSachTTHC")[1]["data"] == [procedure]
    assert share(client, "LayDanhMucCoQuan")[1]["data"] == [agency]
    assert share(client, "LayThuTuc", maTTHC="1.000656")[1]["error_code"] == -4


# --- services, sessions and units --------------------------------------------------------


@pytest.mark.parametrize(
    ("endpoint", "service"),
    [
        ("share", "KhongCo"),
        ("integration", "KhongCo"),
        ("integration", "TraCuuHoSo"),
        ("integration", "LayDanhSachTTHC"),
        ("share", "DongBoHoSoMC"),
        ("share", "CapNhatTienDoHoSoMC"),
        ("share", "tracuuhoso"),
    ],
)
def test_an_unknown_service_is_minus_9(
    client: PortalClient, control: MockPortalControl, endpoint: str, service: str
) -> None:
    response = client.call(
        endpoint, service, isUpdating="False", data=[dossier_json(CODE)], mahoso=CODE
    )
    assert response.status_code == 200
    assert response.json() == {
        "error_code": -9,
        "message": f"Dịch vụ không tồn tại: {service!r}",
    }
    assert control.dossier(CODE) is None


@pytest.mark.parametrize("service", ["absent", None, 7])
def test_a_missing_service_is_minus_9(client: PortalClient, service: object) -> None:
    body: dict[str, Any] = {"session": client.session, "madonvi": H26}
    if service != "absent":
        body["service"] = service
    response = client.http.post("/dvcqg/share", json=body, headers={"dstcode": H26})
    assert response.status_code == 200
    assert response.json() == {
        "error_code": -9,
        "message": "Dịch vụ không tồn tại: None",  # not a service name at all
    }


@pytest.mark.parametrize(
    ("service", "fields"),
    [
        ("TraCuuHoSo", {"mahoso": CODE}),
        ("LayThuTuc", {"maTTHC": "1.000656"}),
        ("LayDanhSachTTHC", {}),
        ("LayDanhMucCoQuan", {}),
    ],
)
def test_look_ups_need_a_valid_session(
    client: PortalClient, control: MockPortalControl, service: str, fields: dict[str, Any]
) -> None:
    expired = {"error_code": -2, "message": "Phiên làm việc hết hạn"}
    assert share(client, service, session="unknown", **fields) == (401, expired)
    assert share(client, service, session=None, **fields) == (401, expired)
    control.expire_sessions(H26)
    assert share(client, service, **fields) == (401, expired)


@pytest.mark.parametrize(
    ("service", "fields"),
    [
        ("TraCuuHoSo", {"mahoso": CODE}),
        ("LayThuTuc", {"maTTHC": "1.000656"}),
        ("LayDanhSachTTHC", {}),
        ("LayDanhMucCoQuan", {}),
    ],
)
def test_look_ups_need_madonvi_of_the_session(
    client: PortalClient, service: str, fields: dict[str, Any]
) -> None:
    client.create(dossier_json(CODE))
    for madonvi in (H29, "000.00.53.H26", None):
        status, body = share(client, service, madonvi=madonvi, **fields)
        assert (status, body["error_code"]) == (200, -10)
        assert H26 in body["message"]
        assert "data" not in body
    status, body = share(client, service, dstcode=H29, **fields)
    assert (status, body["error_code"]) == (200, -10)


def test_a_call_without_dstcode_is_minus_10(client: PortalClient) -> None:
    body = {"session": client.session, "madonvi": H26, "service": "LayDanhSachTTHC"}
    response = client.http.post("/dvcqg/share", json=body)
    assert (response.status_code, response.json()["error_code"]) == (200, -10)
