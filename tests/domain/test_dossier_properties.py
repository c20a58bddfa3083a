"""Property tests of the dossier validator: it never crashes, and valid dossiers survive
a round trip through the portal's JSON form unchanged."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import example, given
from hypothesis import strategies as st

from app.domain import Dossier, RecordInvalid, format_portal_datetime, parse_dossier

from .factories import (
    ABSENT,
    ALL_STATUSES,
    CONDITIONAL_REQUIRED,
    DOSSIER_FIELDS,
    FUZZ,
    ITEM_FIELDS,
    MA_TTHC,
    PROPERTY,
    full_dossier,
)

# --- arbitrary JSON ------------------------------------------------------------------------

FIELD_NAMES = sorted(set(DOSSIER_FIELDS) | {f for fields in ITEM_FIELDS.values() for f in fields})
KEYS = st.sampled_from(FIELD_NAMES) | st.text(max_size=12)
JSON_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(max_size=20)
    | st.sampled_from(["20240125083000", "20240230083000", "2", "10", "000.00.53.H26-1", " "])
)
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(KEYS, inner, max_size=6),
    max_leaves=25,
)


def _outcome(raw: object, procedures: frozenset[str] | None) -> Dossier | RecordInvalid:
    try:
        return parse_dossier(raw, procedures=procedures)
    except RecordInvalid as error:
        return error


def _check_outcome(raw: object, procedures: frozenset[str] | None = None) -> Dossier | None:
    """Parse; anything but a Dossier or RecordInvalid propagates and fails the test."""
    result = _outcome(raw, procedures)
    if isinstance(result, RecordInvalid):
        assert result.issues
        for issue in result.issues:
            assert issue.code
            assert issue.message
            assert issue.describe("data[0]").startswith("data[0]")
        unknown = [i for i in result.issues if i.code == "unknown_field"]
        assert result.issues[: len(unknown)] == tuple(unknown), "unknown fields come first"
        return None
    assert parse_dossier(result.to_portal()) == result
    return result


@FUZZ
@given(JSON_VALUES)
def test_arbitrary_json_is_a_dossier_or_record_invalid(raw: object) -> None:
    _check_outcome(raw)


@FUZZ
@given(
    st.sampled_from(ALL_STATUSES),
    st.dictionaries(KEYS, JSON_VALUES | st.just(ABSENT), max_size=8),
    st.none() | st.just(frozenset({MA_TTHC})),
)
# A generated key named like the factory's own parameter once crashed the test itself.
@example("1", {"status": 1}, None)
def test_mutated_dossier_is_a_dossier_or_record_invalid(
    status: str, changes: dict[str, object], procedures: frozenset[str] | None
) -> None:
    raw = full_dossier(status, **changes)
    dossier = _check_outcome(raw, procedures)
    if dossier is None:
        return
    # Accepted: then no key was unknown and the status rules hold.
    assert set(raw) <= set(DOSSIER_FIELDS)
    portal = dossier.to_portal()
    for field, required_at in CONDITIONAL_REQUIRED.items():
        if portal["TrangThaiHoSo"] in required_at:
            assert portal.get(field) not in (None, [])


@FUZZ
@given(
    st.sampled_from(list(ITEM_FIELDS)),
    st.lists(
        st.dictionaries(KEYS, JSON_SCALARS | st.lists(JSON_SCALARS, max_size=2), max_size=8),
        min_size=1,
        max_size=3,
    ),
)
def test_arbitrary_list_items_are_a_dossier_or_record_invalid(
    item_list: str, items: list[dict[str, Any]]
) -> None:
    _check_outcome(full_dossier("10", **{item_list: items}))


# --- valid dossiers ------------------------------------------------------------------------

NON_BLANK = st.text(max_size=30).filter(str.strip)
MA_HO_SO = st.from_regex(r"[0-9]{3}\.[0-9]{2}\.[0-9]{2}\.[GH][0-9]{2}-[!-~]{1,36}", fullmatch=True)
ID_NUMBER = st.from_regex(r"[0-9]{9}|[0-9]{10}|[0-9]{12}|[0-9]{10}-[0-9]{3}", fullmatch=True)
PHONE = st.from_regex(r"\+?[0-9]{8,15}", fullmatch=True)
EMAIL = st.from_regex(
    r"[a-z0-9]{1,10}(\.[a-z0-9]{1,5})?@[a-z]{2,10}\.(vn|com|org|gov\.vn)", fullmatch=True
)
FLAG = st.sampled_from([0, 1])
SECONDS = st.integers(0, 60 * 86400).map(lambda s: timedelta(seconds=s))
START = st.datetimes(
    min_value=datetime(2000, 1, 1),  # noqa: DTZ001 - hypothesis takes naive bounds
    max_value=datetime(2090, 1, 1),  # noqa: DTZ001
).map(lambda d: d.replace(microsecond=0, tzinfo=UTC))


def _date(value: datetime) -> str:
    return format_portal_datetime(value)


@st.composite
def optional(draw: st.DrawFn, value: st.SearchStrategy[Any]) -> Any:
    """A value, an explicit null, or ABSENT (the key left out)."""
    return draw(st.one_of(value, st.none(), st.just(ABSENT)))


@st.composite
def items(
    draw: st.DrawFn, fields: dict[str, st.SearchStrategy[Any]], required: set[str]
) -> dict[str, Any]:
    item: dict[str, Any] = {}
    for name, strategy in fields.items():
        value = draw(strategy) if name in required else draw(optional(strategy))
        if value is not ABSENT:
            item[name] = value
    return item


@st.composite
def valid_dossiers(draw: st.DrawFn) -> dict[str, Any]:
    status = draw(st.sampled_from(ALL_STATUSES))
    submitted = draw(START)
    received = submitted + draw(SECONDS)
    dates = {
        "NgayNopHoSo": submitted,
        "NgayTiepNhan": received,
        "NgayHenTra": received + draw(SECONDS),
        "NgayKetThucXuLy": received + draw(SECONDS),
        "NgayTuChoi": submitted + draw(SECONDS),
        "NgayTra": received + draw(SECONDS),
    }
    record: dict[str, Any] = {
        "MaHoSo": draw(MA_HO_SO),
        "MaTTHC": draw(NON_BLANK),
        "TenTTHC": draw(st.text(max_size=500).filter(str.strip)),
        "MaLinhVuc": draw(NON_BLANK),
        "TenLinhVuc": draw(NON_BLANK),
        "KenhThucHien": draw(st.sampled_from([1, 2, 3])),
        "ChuHoSo": draw(st.text(max_size=200).filter(str.strip)),
        "LoaiDoiTuong": draw(st.sampled_from([1, 2, 3, 4])),
        "TrangThaiHoSo": status,
        "DonViXuLy": draw(NON_BLANK),
    }
    texts = st.text(max_size=40)
    doc_fields = {
        "TepDinhKemId": texts,
        "TenTepDinhKem": NON_BLANK,
        "MaThanhPhanHoSo": texts,
        "DuongDanTaiTepTin": texts,
        "IsDeleted": FLAG,
        "DuocSoHoa": FLAG,
        "DuocTaiSuDung": FLAG,
        "DuocLayTuKhoDMQG": FLAG,
    }
    fee_fields = {
        "MaPhiLePhi": texts,
        "TenPhiLePhi": NON_BLANK,
        "HinhThucThu": st.integers(0, 5),
        "Gia": st.integers(0, 10**12),
        "LoaiPhiLePhi": st.integers(0, 5),
    }
    day = st.builds(_date, START)
    supplement_fields = {
        "HoSoBoSungId": texts,
        "NguoiYeuCauBoSung": texts,
        "NoiDungBoSung": texts,
        "NgayBoSung": day,
        "NgayTiepNhanBoSung": day,
        "TrangThaiBoSung": st.integers(0, 5),
        "NgayHenTraTruoc": day,
        "NgayHenTraMoi": day,
    }
    result_fields = {
        "GiayToId": texts,
        "TenGiayTo": NON_BLANK,
        "MaThanhPhanHoSo": texts,
        "MaGiayToKetQua": texts,
        "DuongDanTepTinKetQua": texts,
    }
    results_needed = status in CONDITIONAL_REQUIRED["DanhSachGiayToKetQua"]
    optional_values: dict[str, st.SearchStrategy[Any]] = {
        "MaDoiTuong": texts,
        "SoGiayToChuHoSo": ID_NUMBER,
        "SoDienThoai": PHONE,
        "Email": EMAIL,
        "Fax": PHONE,
        "TrichYeuHoSo": texts,
        "ThongTinKhac": texts,
        "GhiChu": texts,
        "SoBienNhan": texts,
        **{name: st.just(_date(value)) for name, value in dates.items()},
        "HinhThuc": FLAG,
        "ThongTinTra": texts,
        "HoSoCoThanhPhanSoHoa": FLAG,
        "TaiKhoanDuocXacThucVoiVNeID": FLAG,
        "DuocThanhToanTrucTuyen": st.sampled_from([0, 1, 2]),
        "TaiLieuNop": st.lists(items(doc_fields, {"TenTepDinhKem"}), max_size=3),
        "DanhSachLePhi": st.lists(items(fee_fields, {"TenPhiLePhi", "Gia"}), max_size=3),
        "DanhSachHoSoBoSung": st.lists(items(supplement_fields, {"NgayBoSung"}), max_size=3),
        "DanhSachGiayToKetQua": st.lists(
            items(result_fields, {"TenGiayTo"}), min_size=1 if results_needed else 0, max_size=3
        ),
    }
    for name, strategy in optional_values.items():
        required = status in CONDITIONAL_REQUIRED.get(name, ())
        value = draw(strategy) if required else draw(optional(strategy))
        if value is not ABSENT:
            record[name] = value
    # Shuffle the key order: it must not matter.
    keys = draw(st.permutations(list(record)))
    return {key: record[key] for key in keys}


def _without_nulls(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_without_nulls(v) for v in value]
    return value


@PROPERTY
@given(valid_dossiers())
def test_valid_dossier_round_trips(raw: dict[str, Any]) -> None:
    dossier = parse_dossier(raw)
    portal = dossier.to_portal()
    assert portal == _without_nulls(raw)
    assert parse_dossier(portal) == dossier
    assert parse_dossier(json.loads(json.dumps(portal))) == dossier
    assert dossier.content_hash() == parse_dossier(portal).content_hash()
    assert dossier.content_hash() == dossier.content_hash()


@PROPERTY
@given(valid_dossiers())
def test_null_and_absent_optional_fields_are_the_same_dossier(raw: dict[str, Any]) -> None:
    with_nulls = parse_dossier(raw)
    without = parse_dossier(_without_nulls(raw))
    assert with_nulls == without
    assert with_nulls.content_hash() == without.content_hash()


@PROPERTY
@given(valid_dossiers(), st.text(min_size=1, max_size=10).filter(lambda k: k not in DOSSIER_FIELDS))
def test_any_extra_key_makes_a_valid_dossier_invalid(raw: dict[str, Any], key: str) -> None:
    raw[key] = None
    result = _outcome(raw, None)
    assert isinstance(result, RecordInvalid), f"unknown field {key!r} accepted"
    assert (result.first.render_path(), result.first.code) == (key, "unknown_field")
