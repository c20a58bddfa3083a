"""Contract §3.1 (DongBoHoSoMC) and §5 (status transitions), over HTTP."""

from __future__ import annotations

from typing import Any

import pytest

from app.mockportal.testing import MockPortalControl
from tests.domain.factories import ABSENT, fee, submitted_document
from tests.factories import dossier_json
from tests.mockportal.helpers import H26, H29, PortalClient, item_codes

CODE = "000.00.53.H26-240125-00001"
CODE_2 = "000.00.53.H26-240125-00002"
H29_CODE = "000.00.53.H29-240125-00001"
STATUSES = tuple(str(n) for n in range(1, 11))

OK = "Thành công"
NO_CHANGE = "Không có thay đổi"
PARTIAL = "Một số hồ sơ không được cập nhật, xem data[]"

# Contract §5, "Reachable from …" (written out from the text, not from the code).
_PROCESSING = frozenset(str(n) for n in range(4, 11))
REACHABLE: dict[str, frozenset[str]] = {
    "1": frozenset(str(n) for n in range(2, 11)),
    "2": _PROCESSING,
    "3": frozenset(),
    "4": _PROCESSING,
    "5": _PROCESSING,
    "6": _PROCESSING,
    "7": frozenset({"8"}),
    "8": frozenset(),
    "9": frozenset({"10"}),
    "10": frozenset(),
}
LABELS = {
    "1": "Mới đăng ký",
    "2": "Được tiếp nhận",
    "3": "Không được tiếp nhận",
    "4": "Đang xử lý",
    "9": "Đã xử lý xong",
}


def code(n: int) -> str:
    return f"000.00.53.H26-240125-{n:05d}"


def record(control: MockPortalControl, ma_ho_so: str) -> dict[str, Any]:
    """The control API's view of a stored dossier: unit, created_at, updated_at, dossier."""
    response = control.http.get(f"/_mock/dossiers/{ma_ho_so}")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def stats(control: MockPortalControl, unit: str = H26) -> dict[str, Any]:
    result: dict[str, Any] = control.stats(unit)[unit]
    return result


def sync(client: PortalClient, updating: str, *items: Any) -> dict[str, Any]:
    response = client.call("integration", "DongBoHoSoMC", isUpdating=updating, data=list(items))
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def answer(*items: tuple[str | None, int, str]) -> dict[str, Any]:
    """The expected DongBoHoSoMC answer for per-item (MaHoSo, error_code, message)."""
    failed = any(error != 0 for _, error, _ in items)
    return {
        "error_code": 1 if failed else 0,
        "message": PARTIAL if failed else OK,
        "data": [{"MaHoSo": c, "error_code": e, "message": m} for c, e, m in items],
    }


# --- create and update ------------------------------------------------------------------


def test_create_stores_the_dossier(client: PortalClient, control: MockPortalControl) -> None:
    dossier = dossier_json(CODE, "4")
    assert client.create(dossier) == answer((CODE, 0, OK))
    assert control.dossier(CODE) == dossier | {"QuaTrinhXuLy": []}
    assert client.lookup(CODE)["data"] == dossier | {"QuaTrinhXuLy": []}
    stored = record(control, CODE)
    assert stored["unit"] == H26
    assert stored["created_at"] == stored["updated_at"]
    assert stats(control)["dossiers_by_status"]["4"] == 1


def test_creating_an_existing_dossier_is_minus_3_even_when_identical(
    client: PortalClient, control: MockPortalControl
) -> None:
    dossier = dossier_json(CODE, "2")
    client.create(dossier)
    before = record(control, CODE)
    assert client.create(dossier) == answer((CODE, -3, "data[0].MaHoSo: hồ sơ đã tồn tại"))
    changed = dossier_json(CODE, "4")
    assert client.create(changed) == answer((CODE, -3, "data[0].MaHoSo: hồ sơ đã tồn tại"))
    assert record(control, CODE) == before
    assert stats(control)["rejected_by_error_code"] == {"-3": 2}
    # The client resends it as an update: an identical one changes nothing, a new one applies.
    assert client.update(dossier) == answer((CODE, 0, NO_CHANGE))
    assert client.update(changed) == answer((CODE, 0, OK))
    assert control.dossier(CODE) == changed | {"QuaTrinhXuLy": []}


def test_updating_a_missing_dossier_is_minus_4(
    client: PortalClient, control: MockPortalControl
) -> None:
    assert client.update(dossier_json(CODE)) == answer(
        (CODE, -4, "data[0].MaHoSo: không tìm thấy hồ sơ")
    )
    assert control.dossier(CODE) is None
    assert stats(control)["rejected_by_error_code"] == {"-4": 1}


def test_an_identical_update_succeeds_and_changes_nothing(
    client: PortalClient, control: MockPortalControl
) -> None:
    dossier = dossier_json(CODE, "4")
    client.create(dossier)
    before = record(control, CODE)
    assert stats(control)["duplicates_received"] == 0
    assert client.update(dossier) == answer((CODE, 0, NO_CHANGE))
    assert client.update(dict(reversed(dossier.items()))) == answer((CODE, 0, NO_CHANGE))
    assert record(control, CODE) == before  # updated_at unchanged
    assert stats(control)["duplicates_received"] == 2


def test_a_changed_update_is_stored(client: PortalClient, control: MockPortalControl) -> None:
    client.create(dossier_json(CODE, "4"))
    before = record(control, CODE)
    changed = dossier_json(CODE, "4", GhiChu="đã bổ sung")
    assert client.update(changed) == answer((CODE, 0, OK))
    after = record(control, CODE)
    assert after["dossier"] == changed | {"QuaTrinhXuLy": []}
    assert after["created_at"] == before["created_at"]
    assert after["updated_at"] > before["updated_at"]
    assert stats(control)["duplicates_received"] == 0


def test_an_optional_field_sent_as_null_is_treated_as_absent(
    client: PortalClient, control: MockPortalControl
) -> None:
    with_nulls = dossier_json(CODE, "4", MaDoiTuong=None, Fax=None, TaiLieuNop=None)
    assert client.create(with_nulls) == answer((CODE, 0, OK))
    stored = control.dossier(CODE)
    assert stored is not None
    assert not {"MaDoiTuong", "Fax", "TaiLieuNop"} & set(stored)
    before = record(control, CODE)
    # Identical except for null optional fields: a duplicate, nothing changes.
    plain = dossier_json(CODE, "4")
    assert client.update(plain) == answer((CODE, 0, NO_CHANGE))
    assert record(control, CODE) == before
    # Email was set: sent as null (= absent) it is removed, which is a change.
    assert client.update(plain | {"GhiChu": None, "Email": None}) == answer((CODE, 0, OK))
    assert control.dossier(CODE) == {k: v for k, v in plain.items() if k != "Email"} | {
        "QuaTrinhXuLy": []
    }
    assert record(control, CODE)["updated_at"] > before["updated_at"]


def test_null_optional_fields_on_an_unchanged_dossier_are_a_duplicate(
    client: PortalClient, control: MockPortalControl
) -> None:
    dossier = dossier_json(CODE, "4")
    client.create(dossier)
    before = record(control, CODE)
    nulls = dossier | {"Fax": None, "GhiChu": None, "NgayTuChoi": None, "DanhSachLePhi": None}
    assert client.update(nulls) == answer((CODE, 0, NO_CHANGE))
    assert record(control, CODE) == before
    assert stats(control)["duplicates_received"] == 1


def test_two_items_with_the_same_code_in_one_create_call(
    client: PortalClient, control: MockPortalControl
) -> None:
    first, second = dossier_json(CODE, "1"), dossier_json(CODE, "2")
    assert client.create(first, second) == answer(
        (CODE, 0, OK), (CODE, -3, "data[1].MaHoSo: hồ sơ đã tồn tại")
    )
    assert control.dossier(CODE) == first | {"QuaTrinhXuLy": []}


def test_items_of_one_update_call_apply_in_order(
    client: PortalClient, control: MockPortalControl
) -> None:
    client.create(dossier_json(CODE, "4"))
    nine, four = dossier_json(CODE, "9"), dossier_json(CODE, "4")
    assert client.update(nine, four) == answer(
        (CODE, 0, OK),
        (
            CODE,
            -6,
            "data[1].TrangThaiHoSo: Không cho phép chuyển trạng thái từ 9 (Đã xử lý xong) "
            "sang 4 (Đang xử lý)",
        ),
    )
    assert control.dossier(CODE) == nine | {"QuaTrinhXuLy": []}


# --- validation (-5) --------------------------------------------------------------------

INVALID: list[tuple[str, dict[str, Any], str]] = [
    (
        "date order",
        {"NgayHenTra": "20240125080000"},
        "data[1].NgayHenTra: phải ≥ NgayTiepNhan",
    ),
    ("unknown field", {"TruongLa": "x"}, "data[1].TruongLa: trường không có trong đặc tả"),
    (
        "unknown field named before a broken known one",
        {"NgayHenTra": "20240125080000", "ChuHoSo": None, "ZZZ": 1},
        "data[1].ZZZ: trường không có trong đặc tả",
    ),
    (
        "procedure not in the catalogue",
        {"MaTTHC": "9.999999"},
        "data[1].MaTTHC: không có trong danh mục thủ tục hành chính",
    ),
    ("required field missing", {"ChuHoSo": ABSENT}, "data[1].ChuHoSo: bắt buộc"),
    ("required field sent as null", {"DonViXuLy": None}, "data[1].DonViXuLy: bắt buộc"),
    (
        "first offending field in table order",
        {"DonViXuLy": ABSENT, "KenhThucHien": "2", "NgayHenTra": "20240125080000"},
        "data[1].KenhThucHien: phải là số nguyên, một trong 1, 2, 3",
    ),
    (
        "required at the status",
        {"NgayTiepNhan": ABSENT, "NgayHenTra": ABSENT},
        "data[1].NgayTiepNhan: bắt buộc khi TrangThaiHoSo = 4",
    ),
    ("bad date", {"NgayTiepNhan": "2024-01-25 08:30"}, "data[1].NgayTiepNhan: …"),
    ("bad e-mail", {"Email": "an.nguyen@"}, "data[1].Email: không phải địa chỉ e-mail hợp lệ"),
    (
        "nested path",
        {"TaiLieuNop": [submitted_document(), submitted_document(TenTepDinhKem=ABSENT)]},
        "data[1].TaiLieuNop[1].TenTepDinhKem: bắt buộc",
    ),
    ("bad status", {"TrangThaiHoSo": "11"}, "data[1].TrangThaiHoSo: phải là một trong …"),
    (
        "boolean for an int",
        {"KenhThucHien": True},
        "data[1].KenhThucHien: phải là số nguyên, một trong 1, 2, 3",
    ),
    (
        "nested unknown field first",
        {"ChuHoSo": ABSENT, "TaiLieuNop": [submitted_document(Foo=1)]},
        "data[1].TaiLieuNop[0].Foo: trường không có trong đặc tả",
    ),
    ("name too long", {"ChuHoSo": "A" * 201}, "data[1].ChuHoSo: dài quá 200 ký tự"),
    ("procedure name too long", {"TenTTHC": "A" * 501}, "data[1].TenTTHC: dài quá 500 ký tự"),
    (
        "negative fee",
        {"DanhSachLePhi": [fee(Gia=-1)]},
        "data[1].DanhSachLePhi[0].Gia: phải ≥ 0",
    ),
    ("code too long", {"MaHoSo": "000.00.53.H26-" + "1" * 37}, "data[1].MaHoSo: dài quá 50 ký tự"),
    ("malformed code", {"MaHoSo": "H26-00001"}, "data[1].MaHoSo: phải có dạng …"),
]


@pytest.mark.parametrize(
    ("overrides", "message"), [(o, m) for _, o, m in INVALID], ids=[i for i, _, _ in INVALID]
)
def test_an_invalid_item_is_minus_5_naming_the_first_field(
    client: PortalClient, control: MockPortalControl, overrides: dict[str, Any], message: str
) -> None:
    good = dossier_json(CODE, "4")
    bad = dossier_json(CODE_2, "4", **overrides)
    body = sync(client, "False", good, bad)
    assert (body["error_code"], body["message"]) == (1, PARTIAL)
    assert body["data"][0] == {"MaHoSo": CODE, "error_code": 0, "message": OK}
    assert body["data"][1]["MaHoSo"] == bad["MaHoSo"]
    assert body["data"][1]["error_code"] == -5
    answered = body["data"][1]["message"]
    if message.endswith("…"):  # the rest is the field type's own wording
        assert answered.startswith(message[:-1]), answered
    else:
        assert answered == message
    assert [d["MaHoSo"] for d in control.dossiers()] == [CODE]
    assert stats(control)["rejected_by_error_code"] == {"-5": 1}


def test_a_code_of_50_characters_is_accepted(
    client: PortalClient, control: MockPortalControl
) -> None:
    longest = "000.00.53.H26-" + "1" * 36
    assert len(longest) == 50
    assert item_codes(client.create(dossier_json(longest))) == [0]
    assert control.dossier(longest) is not None


def test_an_item_that_is_not_an_object_is_minus_5(
    client: PortalClient, control: MockPortalControl
) -> None:
    body = sync(client, "False", dossier_json(CODE), "not a dossier")
    assert body == answer((CODE, 0, OK), (None, -5, "data[1]: phải là một đối tượng JSON"))


def test_an_invalid_update_changes_nothing(
    client: PortalClient, control: MockPortalControl
) -> None:
    client.create(dossier_json(CODE, "4"))
    before = record(control, CODE)
    bad = dossier_json(CODE, "9", NgayKetThucXuLy="20240101000000")
    body = sync(client, "True", bad)
    assert body == answer((CODE, -5, "data[0].NgayKetThucXuLy: phải ≥ NgayTiepNhan"))
    assert record(control, CODE) == before


@pytest.mark.parametrize("data", [ABSENT, [], None, {}, "x", 3], ids=repr)
def test_empty_or_absent_data_is_minus_5(
    client: PortalClient, control: MockPortalControl, data: object
) -> None:
    fields: dict[str, Any] = {"isUpdating": "False"}
    if data is not ABSENT:
        fields["data"] = data
    response = client.call("integration", "DongBoHoSoMC", **fields)
    assert response.status_code == 200
    assert response.json() == {
        "error_code": -5,
        "message": "data: phải là danh sách 1..100 bản ghi",
    }


@pytest.mark.parametrize("is_updating", [True, False, "true", "false", "1", None, ABSENT], ids=repr)
def test_is_updating_must_be_the_string_true_or_false(
    client: PortalClient, control: MockPortalControl, is_updating: object
) -> None:
    fields: dict[str, Any] = {"data": [dossier_json(CODE)]}
    if is_updating is not ABSENT:
        fields["isUpdating"] = is_updating
    response = client.call("integration", "DongBoHoSoMC", **fields)
    assert response.status_code == 200
    assert response.json() == {
        "error_code": -5,
        "message": 'isUpdating: phải là chuỗi "True" hoặc "False"',
    }
    assert control.dossier(CODE) is None


# --- ownership (-10) ---------------------------------------------------------------------


def test_a_dossier_of_another_unit_is_minus_10(
    client: PortalClient, control: MockPortalControl
) -> None:
    body = sync(client, "False", dossier_json(H29_CODE), dossier_json(CODE))
    assert body == answer(
        (H29_CODE, -10, f"data[0].MaHoSo: hồ sơ không thuộc đơn vị {H26}"), (CODE, 0, OK)
    )
    assert control.dossier(H29_CODE) is None
    assert stats(control)["rejected_by_error_code"] == {"-10": 1}


def test_updating_another_units_stored_dossier_is_minus_10(
    client: PortalClient, other_client: PortalClient, control: MockPortalControl
) -> None:
    theirs = dossier_json(H29_CODE, "2")
    other_client.create(theirs)
    before = record(control, H29_CODE)
    for updating in ("True", "False"):
        body = sync(client, updating, dossier_json(H29_CODE, "4"))
        assert body == answer((H29_CODE, -10, f"data[0].MaHoSo: hồ sơ không thuộc đơn vị {H26}"))
    assert record(control, H29_CODE) == before
    assert before["unit"] == H29


# --- partial success and batch size ------------------------------------------------------


def test_partial_success_lists_every_item_in_order(
    client: PortalClient, control: MockPortalControl
) -> None:
    client.create(dossier_json(code(3), "9"))
    items = [
        dossier_json(code(1), "4"),
        dossier_json(code(2), "4", MaTTHC="0.000000"),
        dossier_json(code(3), "4"),
        dossier_json(H29_CODE, "4"),
        dossier_json(code(5), "4"),
    ]
    body = sync(client, "False", *items)
    assert body["error_code"] == 1
    assert [i["MaHoSo"] for i in body["data"]] == [i["MaHoSo"] for i in items]
    assert item_codes(body) == [0, -5, -3, -10, 0]
    stored = {d["MaHoSo"] for d in control.dossiers()}
    assert stored == {code(1), code(3), code(5)}
    assert (control.dossier(code(3)) or {})["TrangThaiHoSo"] == "9"  # the -3 changed nothing


def test_a_partial_update_changes_only_the_successful_items(
    client: PortalClient, control: MockPortalControl
) -> None:
    client.create(dossier_json(code(1), "4"), dossier_json(code(2), "9"))
    before = record(control, code(2))
    body = sync(client, "True", dossier_json(code(1), "9"), dossier_json(code(2), "4"))
    assert item_codes(body) == [0, -6]
    assert (control.dossier(code(1)) or {})["TrangThaiHoSo"] == "9"
    assert record(control, code(2)) == before


def test_exactly_100_items_are_accepted(client: PortalClient, control: MockPortalControl) -> None:
    body = client.create(*(dossier_json(code(n)) for n in range(1, 101)))
    assert body["error_code"] == 0
    assert item_codes(body) == [0] * 100
    assert stats(control)["dossiers"] == 100


@pytest.mark.parametrize("updating", ["False", "True"])
def test_101_items_is_minus_8_and_nothing_is_stored(
    client: PortalClient, control: MockPortalControl, updating: str
) -> None:
    response = client.call(
        "integration",
        "DongBoHoSoMC",
        isUpdating=updating,
        data=[dossier_json(code(n)) for n in range(1, 102)],
    )
    assert response.status_code == 200
    assert response.json() == {"error_code": -8, "message": "Số lượng bản ghi vượt quá 100"}
    assert control.dossiers() == []


# --- status transitions (§5) ------------------------------------------------------------


@pytest.mark.parametrize("stored", STATUSES)
def test_transitions_follow_the_reachability_table(
    client: PortalClient, control: MockPortalControl, stored: str
) -> None:
    outcomes: dict[str, int] = {}
    for new in STATUSES:
        control.put_dossier(dossier_json(CODE, stored))
        body = sync(client, "True", dossier_json(CODE, new, GhiChu=f"→ {new}"))
        outcomes[new] = body["data"][0]["error_code"]
    expected = {new: 0 if new == stored or new in REACHABLE[stored] else -6 for new in STATUSES}
    assert outcomes == expected


def test_skipping_intermediate_statuses_is_allowed(
    client: PortalClient, control: MockPortalControl
) -> None:
    client.create(dossier_json(CODE, "1"))
    assert client.update(dossier_json(CODE, "4")) == answer((CODE, 0, OK))
    assert (control.dossier(CODE) or {})["TrangThaiHoSo"] == "4"


def test_same_status_is_a_field_update(client: PortalClient, control: MockPortalControl) -> None:
    client.create(dossier_json(CODE, "4"))
    changed = dossier_json(CODE, "4", TrichYeuHoSo="cập nhật")
    assert client.update(changed) == answer((CODE, 0, OK))
    assert control.dossier(CODE) == changed | {"QuaTrinhXuLy": []}


@pytest.mark.parametrize(("stored", "new"), [("9", "4"), ("4", "2"), ("2", "1"), ("10", "9")])
def test_a_regression_is_minus_6_naming_both_codes(
    client: PortalClient, control: MockPortalControl, stored: str, new: str
) -> None:
    client.create(dossier_json(CODE, stored))
    before = record(control, CODE)
    body = sync(client, "True", dossier_json(CODE, new))
    assert body["error_code"] == 1
    [item] = body["data"]
    assert (item["MaHoSo"], item["error_code"]) == (CODE, -6)
    assert item["message"].startswith("data[0].TrangThaiHoSo: ")
    assert f"từ {stored} (" in item["message"] and f"sang {new} (" in item["message"]
    if stored in LABELS and new in LABELS:
        assert item["message"] == (
            f"data[0].TrangThaiHoSo: Không cho phép chuyển trạng thái từ {stored} "
            f"({LABELS[stored]}) sang {new} ({LABELS[new]})"
        )
    assert record(control, CODE) == before
    counted = stats(control)
    assert counted["regressions_refused"] == 1
    assert counted["rejected_by_error_code"] == {"-6": 1}


@pytest.mark.parametrize("final", ["3", "8", "10"])
def test_a_final_status_refuses_every_other_status(
    client: PortalClient, control: MockPortalControl, final: str
) -> None:
    client.create(dossier_json(CODE, final))
    before = record(control, CODE)
    others = [s for s in STATUSES if s != final]
    body = sync(client, "True", *(dossier_json(CODE, s) for s in others))
    assert item_codes(body) == [-6] * len(others)
    for status, item in zip(others, body["data"], strict=True):
        assert f"từ {final} (" in item["message"] and f"sang {status} (" in item["message"]
    assert record(control, CODE) == before
    assert stats(control)["regressions_refused"] == len(others)
    # A field update in the final status is still allowed.
    fixed = dossier_json(CODE, final, GhiChu="sửa ghi chú")
    assert client.update(fixed) == answer((CODE, 0, OK))
    assert control.dossier(CODE) == fixed | {"QuaTrinhXuLy": []}


def test_a_dossier_may_first_arrive_in_any_status(
    client: PortalClient, control: MockPortalControl
) -> None:
    body = client.create(*(dossier_json(code(int(s)), s) for s in STATUSES))
    assert item_codes(body) == [0] * 10
    assert stats(control)["dossiers_by_status"] == dict.fromkeys(STATUSES, 1)
