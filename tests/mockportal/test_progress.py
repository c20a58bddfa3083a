"""Contract §3.2 (CapNhatTienDoHoSoMC), over HTTP."""

from __future__ import annotations

from typing import Any

import pytest

from app.mockportal.testing import MockPortalControl
from tests.domain.factories import ABSENT, valid_progress
from tests.factories import dossier_json
from tests.mockportal.helpers import H26, PortalClient, item_codes

CODE = "000.00.53.H26-240125-00001"
CODE_2 = "000.00.53.H26-240125-00002"
H29_CODE = "000.00.53.H29-240125-00001"

OK = "Thành công"
DUPLICATE = "Đã có bản ghi này"
PARTIAL = "Một số hồ sơ không được cập nhật, xem data[]"


def step(ma_ho_so: str = CODE, at: str = "20240125090000", **overrides: Any) -> dict[str, Any]:
    """A valid progress record of ``ma_ho_so`` at ``at`` (yyyyMMddHHmmss)."""
    return valid_progress(**({"MaHoSo": ma_ho_so, "ThoiDiemXuLy": at} | overrides))


def push(client: PortalClient, *records: Any) -> dict[str, Any]:
    response = client.call("integration", "CapNhatTienDoHoSoMC", data=list(records))
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def history(control: MockPortalControl, ma_ho_so: str = CODE) -> list[dict[str, Any]]:
    stored = control.dossier(ma_ho_so)
    assert stored is not None
    records: list[dict[str, Any]] = stored["QuaTrinhXuLy"]
    return records


def unit_stats(control: MockPortalControl) -> dict[str, Any]:
    result: dict[str, Any] = control.stats(H26)[H26]
    return result


@pytest.fixture
def dossier(client: PortalClient) -> dict[str, Any]:
    """Dossier CODE, already at the portal."""
    created = dossier_json(CODE, "4")
    client.create(created)
    return created


def test_progress_is_stored_and_returned_oldest_first(
    client: PortalClient, control: MockPortalControl, dossier: dict[str, Any]
) -> None:
    first = step(at="20240125083000", TrangThai="2", NoiDungXuLy="Tiếp nhận")
    second = step(at="20240125090000", TrangThai="4", NoiDungXuLy="Chuyển xử lý")
    third = step(at="20240126100000", TrangThai="4", NoiDungXuLy="Thẩm định")
    body = client.progress(third, first, second)  # newest first
    assert body == {
        "error_code": 0,
        "message": OK,
        "data": [{"MaHoSo": CODE, "error_code": 0, "message": OK}] * 3,
    }
    assert history(control) == [first, second, third]
    assert client.lookup(CODE)["data"] == dossier | {"QuaTrinhXuLy": [first, second, third]}
    # A later call with an older step still sorts by ThoiDiemXuLy.
    earliest = step(at="20240125080000", TrangThai="1", NoiDungXuLy="Nộp hồ sơ")
    client.progress(earliest)
    assert history(control) == [earliest, first, second, third]
    assert unit_stats(control)["progress_records"] == 4


def test_progress_keeps_the_optional_fields(
    client: PortalClient, control: MockPortalControl, dossier: dict[str, Any]
) -> None:
    full = step(NgayBatDau="20240125083000", NgayKetThucTheoQuyDinh="20240208170000")
    client.progress(full)
    assert history(control) == [full]


def test_progress_for_a_missing_dossier_is_minus_4(
    client: PortalClient, control: MockPortalControl
) -> None:
    assert push(client, step()) == {
        "error_code": 1,
        "message": PARTIAL,
        "data": [
            {"MaHoSo": CODE, "error_code": -4, "message": "data[0].MaHoSo: hồ sơ chưa có trên Cổng"}
        ],
    }
    assert control.dossier(CODE) is None
    assert unit_stats(control)["rejected_by_error_code"] == {"-4": 1}


def test_an_identical_record_is_a_success_stored_once(
    client: PortalClient, control: MockPortalControl, dossier: dict[str, Any]
) -> None:
    record = step()
    assert item_codes(client.progress(record)) == [0]
    again = client.progress(record)
    assert again == {
        "error_code": 0,
        "message": OK,
        "data": [{"MaHoSo": CODE, "error_code": 0, "message": DUPLICATE}],
    }
    assert history(control) == [record]
    assert unit_stats(control)["duplicates_received"] == 1
    assert unit_stats(control)["progress_records"] == 1


@pytest.mark.parametrize(
    "change",
    [
        {"ChucDanh": "Trưởng phòng"},
        {"ChucDanh": ABSENT},
        {"PhongBanXuLy": "Phòng khác"},
        {"NgayBatDau": "20240125083000"},
        {"NgayKetThucTheoQuyDinh": "20240208170000"},
    ],
    ids=lambda c: next(iter(c)),
)
def test_a_record_differing_only_outside_its_identity_is_a_duplicate(
    client: PortalClient,
    control: MockPortalControl,
    dossier: dict[str, Any],
    change: dict[str, Any],
) -> None:
    record = step()
    client.progress(record)
    variant = step(**change)
    assert client.progress(variant)["data"][0] == {
        "MaHoSo": CODE,
        "error_code": 0,
        "message": DUPLICATE,
    }
    assert history(control) == [record]  # the first one is kept


@pytest.mark.parametrize(
    "change",
    [
        {"ThoiDiemXuLy": "20240125090001"},
        {"TrangThai": "5"},
        {"NguoiXuLy": "Lê Văn Cường"},
        {"NoiDungXuLy": "Nội dung khác"},
    ],
    ids=lambda c: next(iter(c)),
)
def test_a_record_differing_in_its_identity_is_stored_too(
    client: PortalClient,
    control: MockPortalControl,
    dossier: dict[str, Any],
    change: dict[str, Any],
) -> None:
    record = step()
    client.progress(record)
    variant = step(**change)
    assert client.progress(variant)["data"][0]["message"] == OK
    assert len(history(control)) == 2
    assert variant in history(control)


def test_a_duplicate_within_one_call_is_stored_once(
    client: PortalClient, control: MockPortalControl, dossier: dict[str, Any]
) -> None:
    record = step()
    body = client.progress(record, record | {"ChucDanh": "Khác"})
    assert [i["message"] for i in body["data"]] == [OK, DUPLICATE]
    assert history(control) == [record]


INVALID: list[tuple[str, dict[str, Any], str]] = [
    ("missing handler", {"NguoiXuLy": ABSENT}, "data[1].NguoiXuLy: bắt buộc"),
    ("null handler", {"NguoiXuLy": None}, "data[1].NguoiXuLy: bắt buộc"),
    ("blank content", {"NoiDungXuLy": "  "}, "data[1].NoiDungXuLy: không được để trống"),
    ("unknown field", {"GhiChu": "x"}, "data[1].GhiChu: trường không có trong đặc tả"),
    (
        "unknown field first",
        {"NguoiXuLy": ABSENT, "Extra": 1},
        "data[1].Extra: trường không có trong đặc tả",
    ),
    ("bad date", {"ThoiDiemXuLy": "2024-01-25"}, "data[1].ThoiDiemXuLy: …"),
    (
        "bad status",
        {"TrangThai": 4},
        'data[1].TrangThai: phải là chuỗi, một trong "1", "2", "3", "4", "5", "6", "7", '
        '"8", "9", "10"',
    ),
    (
        "table order",
        {"TrangThai": "0", "ThoiDiemXuLy": ABSENT, "NoiDungXuLy": ABSENT},
        "data[1].ThoiDiemXuLy: bắt buộc",
    ),
    ("bad code", {"MaHoSo": "H26-1"}, "data[1].MaHoSo: phải có dạng …"),
]


@pytest.mark.parametrize(
    ("overrides", "message"), [(o, m) for _, o, m in INVALID], ids=[i for i, _, _ in INVALID]
)
def test_an_invalid_record_is_minus_5_naming_the_field(
    client: PortalClient,
    control: MockPortalControl,
    dossier: dict[str, Any],
    overrides: dict[str, Any],
    message: str,
) -> None:
    good = step()
    body = push(client, good, step(at="20240126090000", **overrides))
    assert (body["error_code"], body["message"]) == (1, PARTIAL)
    assert item_codes(body) == [0, -5]
    answered = body["data"][1]["message"]
    if message.endswith("…"):  # the rest is the field type's own wording
        assert answered.startswith(message[:-1]), answered
    else:
        assert answered == message
    assert history(control) == [good]


def test_a_record_that_is_not_an_object_is_minus_5(
    client: PortalClient, dossier: dict[str, Any]
) -> None:
    body = push(client, ["not", "an", "object"])
    assert body["data"] == [
        {"MaHoSo": None, "error_code": -5, "message": "data[0]: phải là một đối tượng JSON"}
    ]


def test_progress_of_another_units_dossier_is_minus_10(
    client: PortalClient, other_client: PortalClient, control: MockPortalControl
) -> None:
    other_client.create(dossier_json(H29_CODE, "4"))
    body = push(client, step(H29_CODE))
    assert body["data"] == [
        {
            "MaHoSo": H29_CODE,
            "error_code": -10,
            "message": f"data[0].MaHoSo: hồ sơ không thuộc đơn vị {H26}",
        }
    ]
    assert history(control, H29_CODE) == []
    # A code of another unit that does not exist is -10 as well: nothing is revealed.
    missing = push(client, step("000.00.02.H29-1"))
    assert item_codes(missing) == [-10]


def test_more_than_100_records_is_minus_8_and_nothing_is_stored(
    client: PortalClient, control: MockPortalControl, dossier: dict[str, Any]
) -> None:
    records = [step(at=f"202401251{n // 60:01d}{n % 60:02d}00") for n in range(101)]
    response = client.call("integration", "CapNhatTienDoHoSoMC", data=records)
    assert response.status_code == 200
    assert response.json() == {"error_code": -8, "message": "Số lượng bản ghi vượt quá 100"}
    assert history(control) == []
    assert item_codes(client.progress(*records[:100])) == [0] * 100
    assert len(history(control)) == 100


@pytest.mark.parametrize("data", [ABSENT, [], None, {"MaHoSo": CODE}], ids=repr)
def test_empty_or_absent_data_is_minus_5(
    client: PortalClient, dossier: dict[str, Any], data: object
) -> None:
    fields: dict[str, Any] = {} if data is ABSENT else {"data": data}
    response = client.call("integration", "CapNhatTienDoHoSoMC", **fields)
    assert response.status_code == 200
    assert response.json() == {
        "error_code": -5,
        "message": "data: phải là danh sách 1..100 bản ghi",
    }


def test_partial_answer_lists_each_record_in_order(
    client: PortalClient, other_client: PortalClient, control: MockPortalControl
) -> None:
    client.create(dossier_json(CODE, "4"))
    records = [
        step(CODE, "20240125090000"),
        step(CODE_2),
        step(CODE, "20240125100000", NguoiXuLy=""),
        step(H29_CODE),
        step(CODE, "20240125110000"),
        step(CODE, "20240125090000"),
    ]
    body = push(client, *records)
    assert body["error_code"] == 1
    assert [i["MaHoSo"] for i in body["data"]] == [r["MaHoSo"] for r in records]
    assert item_codes(body) == [0, -4, -5, -10, 0, 0]
    assert [i["message"] for i in body["data"]][-1] == DUPLICATE
    assert history(control) == [records[0], records[4]]
    counted = unit_stats(control)
    assert counted["rejected_by_error_code"] == {"-4": 1, "-5": 1, "-10": 1}
    assert counted["duplicates_received"] == 1
    assert counted["progress_records"] == 2


def test_an_update_of_the_dossier_keeps_its_progress(
    client: PortalClient, control: MockPortalControl, dossier: dict[str, Any]
) -> None:
    record = step()
    client.progress(record)
    client.update(dossier_json(CODE, "9"))
    assert history(control) == [record]
    assert (control.dossier(CODE) or {})["TrangThaiHoSo"] == "9"
