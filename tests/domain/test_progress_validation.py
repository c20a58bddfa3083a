"""Contract §3.2: ``CapNhatTienDoHoSoMC`` progress records and their identity."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.domain import ProgressRecord, RecordInvalid, parse_progress

from .factories import (
    ABSENT,
    ALL_STATUSES,
    FUZZ,
    MA_HO_SO,
    PROGRESS_FIELDS,
    PROGRESS_REQUIRED,
    issue_summary,
    valid_progress,
)


def outcome(raw: object) -> ProgressRecord | RecordInvalid:
    try:
        return parse_progress(raw)
    except RecordInvalid as error:
        return error


def rejected(record: object) -> RecordInvalid:
    with pytest.raises(RecordInvalid) as info:
        parse_progress(record)
    return info.value


def only_issue(record: object) -> tuple[str, str]:
    summary = issue_summary(rejected(record))
    assert len(summary) == 1, summary
    return summary[0]


def test_valid_progress_record_accepted() -> None:
    record = parse_progress(valid_progress())
    assert record.to_portal() == valid_progress()
    assert record.agency == "000.00.53.H26"
    assert record.status.value == "2"


def test_progress_with_every_field_round_trips() -> None:
    raw = valid_progress(NgayBatDau="20240125083000", NgayKetThucTheoQuyDinh="20240208170000")
    record = parse_progress(raw)
    assert record.to_portal() == raw
    assert parse_progress(record.to_portal()) == record


def test_model_fields_follow_the_contract_table() -> None:
    assert tuple(ProgressRecord.model_fields) == PROGRESS_FIELDS


@pytest.mark.parametrize("status", ALL_STATUSES)
def test_every_status_accepted(status: str) -> None:
    assert parse_progress(valid_progress(TrangThai=status)).TrangThai.value == status


@pytest.mark.parametrize("field", PROGRESS_REQUIRED)
@pytest.mark.parametrize("how", ["missing", "null"])
def test_required_field(field: str, how: str) -> None:
    record = valid_progress(**{field: ABSENT if how == "missing" else None})
    assert only_issue(record) == (field, "required")


@pytest.mark.parametrize("field", ["NguoiXuLy", "NoiDungXuLy"])
@pytest.mark.parametrize("blank", ["", " \t"], ids=["empty", "blank"])
def test_blank_required_text(field: str, blank: str) -> None:
    assert only_issue(valid_progress(**{field: blank})) == (field, "required")


@pytest.mark.parametrize(
    "field", ["ChucDanh", "PhongBanXuLy", "NgayBatDau", "NgayKetThucTheoQuyDinh"]
)
@pytest.mark.parametrize("how", ["missing", "null"])
def test_optional_field(field: str, how: str) -> None:
    record = parse_progress(valid_progress(**{field: ABSENT if how == "missing" else None}))
    assert field not in record.to_portal()


def test_optional_null_and_absent_have_the_same_content_hash() -> None:
    with_null = parse_progress(valid_progress(ChucDanh=None))
    absent = parse_progress(valid_progress(ChucDanh=ABSENT))
    assert with_null == absent
    assert with_null.content_hash() == absent.content_hash()


@pytest.mark.parametrize("field", ["ThoiDiemXuLy", "NgayBatDau", "NgayKetThucTheoQuyDinh"])
@pytest.mark.parametrize(
    "value",
    [
        pytest.param("20240230120000", id="30-february"),
        pytest.param("2024012512000", id="13-digits"),
        pytest.param("202401251200000", id="15-digits"),
        pytest.param("2024-01-25T12:00:00+07:00", id="iso"),
        pytest.param("20240125120000\n", id="trailing-newline"),
        pytest.param(20240125120000, id="json-int"),
    ],
)
def test_bad_date(field: str, value: object) -> None:
    assert only_issue(valid_progress(**{field: value})) == (field, "portal_date")


@pytest.mark.parametrize(
    ("value", "code"),
    [
        ("0", "not_allowed"),
        ("11", "not_allowed"),
        ("02", "not_allowed"),
        (2, "type"),
        (True, "type"),
        (2.0, "type"),
    ],
    ids=repr,
)
def test_bad_status(value: object, code: str) -> None:
    assert only_issue(valid_progress(TrangThai=value)) == ("TrangThai", code)


@pytest.mark.parametrize(
    ("field", "value"),
    [("MaHoSo", 12), ("NguoiXuLy", 1), ("ChucDanh", ["x"]), ("NoiDungXuLy", {"x": 1})],
    ids=repr,
)
def test_wrong_json_type(field: str, value: object) -> None:
    assert only_issue(valid_progress(**{field: value})) == (field, "type")


@pytest.mark.parametrize(
    "value", ["000.00.53.H26", "H26-1", "000.00.53.H26-1\n", "000.00.53.H26-" + "1" * 37]
)
def test_bad_dossier_code(value: str) -> None:
    path, code = only_issue(valid_progress(MaHoSo=value))
    assert path == "MaHoSo"
    assert code in {"format", "too_long"}
    assert code == ("too_long" if len(value) > 50 else "format")


@pytest.mark.parametrize("name", ["Foo", "QuaTrinhXuLy", "maHoSo"])
def test_unknown_field(name: str) -> None:
    error = rejected(valid_progress(**{name: "x"}))
    assert issue_summary(error) == [(name, "unknown_field")]
    assert error.message("data[4]").startswith(f"data[4].{name}: ")


def test_issue_order_unknown_first_then_table() -> None:
    record: dict[str, Any] = {"TrangThai": "99", "Foo": 1}
    record.update({k: v for k, v in valid_progress().items() if k not in record})
    record["NguoiXuLy"] = ""
    record["ThoiDiemXuLy"] = "x"
    error = rejected(record)
    assert issue_summary(error) == [
        ("Foo", "unknown_field"),
        ("NguoiXuLy", "required"),
        ("ThoiDiemXuLy", "portal_date"),
        ("TrangThai", "not_allowed"),
    ]
    assert error.message("data[2]").startswith("data[2].Foo: ")


@pytest.mark.parametrize("raw", [None, [], "x", 3], ids=repr)
def test_non_object_rejected(raw: object) -> None:
    error = rejected(raw)
    assert issue_summary(error) == [("", "type")]
    assert error.message("data[0]") == "data[0]: phải là một đối tượng JSON"


# --- identity (§3.2: same MaHoSo, ThoiDiemXuLy, TrangThai, NguoiXuLy, NoiDungXuLy) -------


@pytest.mark.parametrize(
    "change",
    [
        {"ChucDanh": "Trưởng phòng"},
        {"ChucDanh": ABSENT},
        {"PhongBanXuLy": "Phòng Tư pháp"},
        {"PhongBanXuLy": None},
        {"NgayBatDau": "20240125083000"},
        {"NgayKetThucTheoQuyDinh": "20240208170000"},
    ],
    ids=repr,
)
def test_identity_ignores_fields_outside_it(change: dict[str, object]) -> None:
    first = parse_progress(valid_progress())
    second = parse_progress(valid_progress(**change))
    assert first.identity() == second.identity()
    assert first.identity_hash() == second.identity_hash()
    assert first.content_hash() != second.content_hash()


@pytest.mark.parametrize(
    "change",
    [
        {"ThoiDiemXuLy": "20240125083001"},
        {"TrangThai": "4"},
        {"NguoiXuLy": "Lê Văn Cường"},
        {"NoiDungXuLy": "Chuyển xử lý"},
        {"MaHoSo": "000.00.53.H26-240125-00013"},
    ],
    ids=repr,
)
def test_identity_changes_with_fields_inside_it(change: dict[str, object]) -> None:
    first = parse_progress(valid_progress())
    second = parse_progress(valid_progress(**change))
    assert first.identity() != second.identity()
    assert first.identity_hash() != second.identity_hash()


def test_identity_uses_portal_forms() -> None:
    identity = parse_progress(valid_progress()).identity()
    assert tuple(identity) == (
        MA_HO_SO,
        "20240125083000",
        "2",
        "Trần Thị Bình",
        "Tiếp nhận hồ sơ",
    )
    assert len(parse_progress(valid_progress()).identity_hash()) == 64


def test_identity_hash_does_not_collide_when_text_contains_separators() -> None:
    # Two different steps must never share a hash: the hash backs a unique index, and a
    # collision would silently drop the second record.
    first = parse_progress(valid_progress(NguoiXuLy="A\x1fB", NoiDungXuLy="C"))
    second = parse_progress(valid_progress(NguoiXuLy="A", NoiDungXuLy="B\x1fC"))
    assert first.identity() != second.identity()
    assert first.identity_hash() != second.identity_hash()


IDENTITY_TEXT = st.text(alphabet=st.sampled_from('ab\x1f\x1e,"[]\\ '), min_size=1, max_size=6)


@FUZZ
@given(
    st.tuples(IDENTITY_TEXT, IDENTITY_TEXT).filter(lambda t: t[0].strip() and t[1].strip()),
    st.tuples(IDENTITY_TEXT, IDENTITY_TEXT).filter(lambda t: t[0].strip() and t[1].strip()),
)
def test_identity_hash_equal_exactly_when_identity_equal(
    a: tuple[str, str], b: tuple[str, str]
) -> None:
    first = parse_progress(valid_progress(NguoiXuLy=a[0], NoiDungXuLy=a[1]))
    second = parse_progress(valid_progress(NguoiXuLy=b[0], NoiDungXuLy=b[1]))
    assert (first.identity() == second.identity()) == (
        first.identity_hash() == second.identity_hash()
    )


HANDLER_TEXT = st.text(alphabet=st.characters(codec="utf-8"), min_size=1, max_size=8)


@FUZZ
@given(HANDLER_TEXT, HANDLER_TEXT, HANDLER_TEXT, st.sampled_from(["\x1f", "\x00", ",", '","']))
def test_identity_hash_separates_fields_whatever_they_contain(
    x: str, y: str, z: str, sep: str
) -> None:
    # Moving text across the NguoiXuLy / NoiDungXuLy border must change the hash.
    first = parse_progress(valid_progress(NguoiXuLy="A" + x + sep + y, NoiDungXuLy=z + "B"))
    second = parse_progress(valid_progress(NguoiXuLy="A" + x, NoiDungXuLy=y + sep + z + "B"))
    assert first.identity() != second.identity()
    assert first.identity_hash() != second.identity_hash()


JSON_SCALARS = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20)
PROGRESS_KEYS = st.sampled_from(PROGRESS_FIELDS) | st.text(max_size=12)
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(PROGRESS_KEYS, inner, max_size=6),
    max_leaves=20,
)
PROGRESS_FIELD_VALUES = (
    st.sampled_from(["20240125083000", "20240230000000", "2", "10", "11", MA_HO_SO, "", " "])
    | JSON_VALUES
)


@FUZZ
@given(JSON_VALUES)
def test_arbitrary_json_is_a_record_or_record_invalid(raw: object) -> None:
    result = outcome(raw)  # anything but RecordInvalid propagates and fails the test
    if isinstance(result, RecordInvalid):
        assert result.issues
        assert all(issue.code and issue.message for issue in result.issues)
    else:
        assert parse_progress(result.to_portal()) == result


@FUZZ
@given(st.dictionaries(PROGRESS_KEYS, PROGRESS_FIELD_VALUES, max_size=12), st.booleans())
def test_mutated_progress_is_a_record_or_record_invalid(
    changes: dict[str, object], start_valid: bool
) -> None:
    raw: dict[str, Any] = valid_progress() if start_valid else {}
    raw.update(changes)
    result = outcome(raw)
    unknown = {k for k in raw if k not in PROGRESS_FIELDS}
    if isinstance(result, RecordInvalid):
        codes = {issue.code for issue in result.issues}
        assert ("unknown_field" in codes) == bool(unknown)
        if unknown:
            assert result.first.code == "unknown_field"
    else:
        assert not unknown
        assert parse_progress(result.to_portal()) == result
