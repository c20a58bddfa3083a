"""What every dialect's normalisation shares: status maps, source dates, the scope check,
the form builder and the outcome types (app/sync/normalise/common.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import assume, example, given
from hypothesis import strategies as st

from app.domain.dates import VN_TZ
from app.domain.dossier import Dossier
from app.domain.progress import ProgressRecord
from app.domain.status import DossierStatus
from app.sync.normalise.common import (
    DEFAULT_STATUS_MAPS,
    Catalogue,
    Context,
    FormBuilder,
    Normalised,
    Problem,
    Rejection,
    StatusMap,
    assemble,
    finish_dossier,
    finish_progress,
    parse_dmy,
    parse_iso,
)
from tests.domain.factories import MA_HO_SO, PROPERTY, valid_dossier, valid_progress

S = DossierStatus

# The spec's default tables (source-dialects.md §1, §2, §3), written out again by hand.
SPEC_TABLES: dict[str, dict[str, DossierStatus]] = {
    "opencps": {
        "new": S.NEWLY_REGISTERED,
        "receiving": S.NEWLY_REGISTERED,
        "processing": S.PROCESSING,
        "handover": S.PROCESSING,
        "interoperating": S.PROCESSING,
        "waiting": S.SUPPLEMENT_REQUESTED,
        "correcting": S.SUPPLEMENT_REQUESTED,
        "paying": S.PAYMENT_REQUESTED,
        "cancelling": S.WITHDRAWN,
        "cancelled": S.WITHDRAWN,
        "unresolved": S.STOPPED,
        "denied": S.NOT_RECEIVED,
        "releasing": S.RESULT_READY,
        "posting": S.RESULT_READY,
        "done": S.RESULT_RETURNED,
    },
    "igate": {
        "0": S.NEWLY_REGISTERED,
        "1": S.NEWLY_REGISTERED,
        "2": S.RECEIVED,
        "3": S.PROCESSING,
        "4": S.RESULT_READY,
        "5": S.RESULT_RETURNED,
        "6": S.NOT_RECEIVED,
        "7": S.SUPPLEMENT_REQUESTED,
        "8": S.PAYMENT_REQUESTED,
        "9": S.WITHDRAWN,
        "10": S.STOPPED,
    },
    "dvclt": {
        "2": S.SUPPLEMENT_REQUESTED,
        "3": S.RECEIVED,
        "4": S.RESULT_READY,
        "5": S.RESULT_RETURNED,
        "6": S.NOT_RECEIVED,
        "7": S.PROCESSING,
    },
}
UNMAPPED = {"opencps": ["collecting", "pausing"], "igate": ["11"], "dvclt": ["1", "8", "99"]}


# --- status maps ---------------------------------------------------------------------------


@pytest.mark.parametrize("dialect", ["opencps", "igate", "dvclt"])
def test_the_default_maps_are_the_spec_tables(dialect: str) -> None:
    assert StatusMap(dialect).table == SPEC_TABLES[dialect]
    assert {code: DossierStatus(v) for code, v in DEFAULT_STATUS_MAPS[dialect].items()} == (
        SPEC_TABLES[dialect]
    )


@pytest.mark.parametrize(
    ("dialect", "code", "expected"),
    [(d, code, status) for d, table in SPEC_TABLES.items() for code, status in table.items()],
)
def test_every_default_status_maps_as_the_spec_says(
    dialect: str, code: str, expected: DossierStatus
) -> None:
    assert StatusMap(dialect).get(code) is expected


@pytest.mark.parametrize(
    ("dialect", "code"), [(d, code) for d, codes in UNMAPPED.items() for code in codes]
)
def test_the_spec_gaps_are_unmapped(dialect: str, code: str) -> None:
    assert StatusMap(dialect).get(code) is None


@pytest.mark.parametrize(
    ("dialect", "code", "expected"),
    [("igate", 3, S.PROCESSING), ("igate", 0, S.NEWLY_REGISTERED), ("dvclt", 7, S.PROCESSING)],
)
def test_numeric_source_codes_are_looked_up_as_text(
    dialect: str, code: int, expected: DossierStatus
) -> None:
    assert StatusMap(dialect).get(code) is expected


def test_no_status_is_unmapped() -> None:
    assert StatusMap("igate").get(None) is None


def test_an_override_adds_a_status_and_replaces_a_default() -> None:
    statuses = StatusMap("igate", {"11": "4", "2": "4"})
    assert (statuses.get(11), statuses.get(2), statuses.get(3)) == (
        S.PROCESSING,
        S.PROCESSING,
        S.PROCESSING,
    )
    assert statuses.table == SPEC_TABLES["igate"] | {"11": S.PROCESSING, "2": S.PROCESSING}


def test_overrides_are_per_map() -> None:
    StatusMap("opencps", {"pausing": "4"})
    assert StatusMap("opencps").get("pausing") is None
    assert DEFAULT_STATUS_MAPS["opencps"].get("pausing") is None


def test_the_fingerprint_is_stable() -> None:
    assert StatusMap("opencps").fingerprint() == StatusMap("opencps", {}).fingerprint()
    assert StatusMap("opencps").fingerprint() == StatusMap("opencps", None).fingerprint()
    assert (
        StatusMap("igate", {"11": "4", "12": "8"}).fingerprint()
        == StatusMap("igate", {"12": "8", "11": "4"}).fingerprint()
    )


def test_an_override_equal_to_the_default_keeps_the_fingerprint() -> None:
    assert StatusMap("igate", {"3": "4"}).fingerprint() == StatusMap("igate").fingerprint()


@pytest.mark.parametrize(
    "overrides",
    [{"11": "4"}, {"3": "2"}, {"10": "7"}],
    ids=["adds a code", "changes a default", "changes another default"],
)
def test_a_changed_map_changes_the_fingerprint(overrides: dict[str, str]) -> None:
    assert StatusMap("igate", overrides).fingerprint() != StatusMap("igate").fingerprint()


def test_the_fingerprint_depends_on_the_dialect() -> None:
    assert StatusMap("igate").fingerprint() != StatusMap("dvclt").fingerprint()


_CODES = st.sampled_from(["pausing", "collecting", "done", "new", "x", "y", "x=4,y", "a,b=1"])
_OVERRIDES = st.dictionaries(_CODES, st.sampled_from([s.value for s in DossierStatus]))


@PROPERTY
@given(_OVERRIDES, _OVERRIDES)
@example({"x": "4", "y": "4"}, {"x=4,y": "4"})
@example({"pausing": "4"}, {"pausing": "4", "done": "10"})
def test_the_fingerprint_changes_exactly_when_the_effective_map_changes(
    first: dict[str, str], second: dict[str, str]
) -> None:
    a, b = StatusMap("opencps", first), StatusMap("opencps", second)
    assert (a.fingerprint() == b.fingerprint()) == (a.table == b.table)


# --- catalogue and scope -------------------------------------------------------------------


def test_an_empty_catalogue_checks_no_procedure_codes() -> None:
    assert Catalogue().procedure_codes() is None
    catalogue = Catalogue(procedures={"1.000656": {"TenTTHC": "Đăng ký khai sinh"}})
    assert catalogue.procedure_codes() == {"1.000656"}


@pytest.mark.parametrize(
    ("served", "agency", "expected"),
    [
        ((), "000.00.53.H26", True),
        ((), "000.00.00.G05", True),
        (("000.00.00.H26",), "000.00.53.H26", True),
        (("000.00.00.H26",), "000.00.00.H26", True),
        (("000.00.00.H26",), "000.00.53.H29", False),
        (("000.00.00.H26",), "000.00.03.G05", False),
        (("000.00.53.H26",), "000.00.53.H26", True),
        (("000.00.53.H26",), "000.00.54.H26", False),
        (("000.00.53.H26",), "000.00.00.H26", False),
        (("000.00.00.H29", "000.00.00.G05"), "000.00.03.G05", True),
        (("000.00.00.H29", "000.00.53.H26"), "000.00.53.H26", True),
        (("000.00.00.H29", "000.00.53.H26"), "000.00.54.H26", False),
    ],
)
def test_context_serves_its_units_agencies_and_only_the_listed_agencies(
    served: tuple[str, ...], agency: str, expected: bool
) -> None:
    assert Context(StatusMap("igate"), agencies=served).serves(agency) is expected


# --- source dates --------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["", None])
def test_parse_dmy_reads_an_empty_value_as_unset(value: str | None) -> None:
    assert parse_dmy(value) is None


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("25/01/2024 08:30:00", datetime(2024, 1, 25, 8, 30, tzinfo=VN_TZ)),
        ("29/02/2024 23:59:59", datetime(2024, 2, 29, 23, 59, 59, tzinfo=VN_TZ)),
        (" 01/12/2023 00:00:00 ", datetime(2023, 12, 1, tzinfo=VN_TZ)),
    ],
)
def test_parse_dmy_reads_local_time(value: str, expected: datetime) -> None:
    parsed = parse_dmy(value)
    assert parsed == expected
    assert parsed is not None
    assert parsed.utcoffset() == timedelta(hours=7)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("2024-01-25 08:30:00", "ngày giờ không hợp lệ: '2024-01-25 08:30:00'"),
        ("25/01/2024", "ngày giờ không hợp lệ: '25/01/2024'"),
        ("31/02/2024 08:00:00", "ngày giờ không hợp lệ: '31/02/2024 08:00:00'"),
        ("25/13/2024 08:00:00", "ngày giờ không hợp lệ: '25/13/2024 08:00:00'"),
        ("25/01/2024 24:00:00", "ngày giờ không hợp lệ: '25/01/2024 24:00:00'"),
        (20240125083000, "không phải ngày giờ: 20240125083000"),
        (True, "không phải ngày giờ: True"),
    ],
)
def test_parse_dmy_refuses_anything_else(value: object, message: str) -> None:
    with pytest.raises(Problem) as raised:
        parse_dmy(value)
    assert raised.value.issue == {"path": "", "code": "unparsable_date", "message": message}


DMY_TEXT = st.builds(
    "{:02d}/{:02d}/{:04d} {:02d}:{:02d}:{:02d}".format,
    st.integers(0, 32),
    st.integers(0, 13),
    st.integers(0, 9999),
    st.integers(0, 24),
    st.integers(0, 60),
    st.integers(0, 61),
)
DMY_LOOSE = st.from_regex(r" ?[0-9]{1,3}/[0-9]{1,2}/[0-9]{3,5} [0-9]{1,2}:[0-9]{1,2}:[0-9]{1,2} ?")


@PROPERTY
@given(DMY_TEXT | DMY_LOOSE | st.text(max_size=24))
@example("١٣/٠٥/٢٠٢٤ ٠٩:٣٠:٠٠")  # Arabic-Indic digits: strptime's \d takes them too
@example("13/05/2024 09:30:00")
def test_parse_dmy_reads_what_strptime_reads_and_refuses_what_it_refuses(text: str) -> None:
    """The sliced reading of the usual two-digit form names the same moment as ``strptime``
    with the sources' format, and every other text still goes through ``strptime``."""
    assume(text != "")  # unset, not a date (the test above)
    try:
        expected: datetime | None = datetime.strptime(text.strip(), "%d/%m/%Y %H:%M:%S").replace(
            tzinfo=VN_TZ
        )
    except ValueError:
        expected = None
    if expected is None:
        with pytest.raises(Problem):
            parse_dmy(text)
        return
    parsed = parse_dmy(text)
    assert parsed == expected
    assert parsed is not None
    assert parsed.tzinfo is VN_TZ


@pytest.mark.parametrize("value", ["", None])
def test_parse_iso_reads_an_empty_value_as_unset(value: str | None) -> None:
    assert parse_iso(value) is None


@pytest.mark.parametrize(
    "value",
    [
        "2024-05-13T09:30:00.000+0700",
        "2024-05-13T09:30:00+07:00",
        "2024-05-13T02:30:00Z",
        "2024-05-13T02:30:00.000Z",
        "2024-05-13T02:30:00.000+0000",
        "2024-05-13T02:30:00+00:00",
        "2024-05-13T04:30:00.000+0200",
        "2024-05-12T21:30:00.000-0500",
        "2024-05-13T12:00:00.000+0930",
    ],
)
def test_parse_iso_converts_any_offset_to_vietnam_time(value: str) -> None:
    parsed = parse_iso(value)
    assert parsed == datetime(2024, 5, 13, 2, 30, tzinfo=UTC)
    assert parsed is not None
    assert parsed.tzinfo is VN_TZ
    assert (parsed.hour, parsed.minute, parsed.utcoffset()) == (9, 30, timedelta(hours=7))


def test_parse_iso_keeps_milliseconds() -> None:
    assert parse_iso("2024-05-13T10:05:00.123+0700") == datetime(
        2024, 5, 13, 10, 5, 0, 123000, tzinfo=timezone(timedelta(hours=7))
    )


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("2024-05-13T09:30:00.000", "ngày giờ thiếu múi giờ: '2024-05-13T09:30:00.000'"),
        ("2024-05-13T09:30:00", "ngày giờ thiếu múi giờ: '2024-05-13T09:30:00'"),
        ("2024-05-13", "ngày giờ thiếu múi giờ: '2024-05-13'"),
        ("13/05/2024 09:30:00", "ngày giờ không hợp lệ: '13/05/2024 09:30:00'"),
        ("2024-02-30T09:30:00+0700", "ngày giờ không hợp lệ: '2024-02-30T09:30:00+0700'"),
        ("hôm qua", "ngày giờ không hợp lệ: 'hôm qua'"),
        (1715567400000, "không phải ngày giờ: 1715567400000"),
    ],
)
def test_parse_iso_refuses_dates_without_offset_and_garbage(value: object, message: str) -> None:
    with pytest.raises(Problem) as raised:
        parse_iso(value)
    assert raised.value.issue == {"path": "", "code": "unparsable_date", "message": message}


# --- the form builder ----------------------------------------------------------------------


def test_put_leaves_out_empty_values_and_keeps_zeroes() -> None:
    form = FormBuilder()
    for name, value in [("A", None), ("B", ""), ("C", []), ("D", 0), ("E", "x"), ("F", [1])]:
        form.put(name, value)
    assert form.form == {"D": 0, "E": "x", "F": [1]}
    assert form.problems == []


def test_date_puts_a_parsed_date_and_notes_a_bad_one_against_the_source_path() -> None:
    form = FormBuilder()
    assert form.date("NgayTiepNhan", "25/01/2024 08:30:00", "receiveDate", parse_dmy) == (
        datetime(2024, 1, 25, 8, 30, tzinfo=VN_TZ)
    )
    assert form.date("NgayTra", "", "finishDate", parse_dmy) is None
    assert form.date("NgayHenTra", "26-01-2024", "dueDate", parse_dmy) is None
    assert form.form == {"NgayTiepNhan": datetime(2024, 1, 25, 8, 30, tzinfo=VN_TZ)}
    assert form.problems == [
        {
            "path": "dueDate",
            "code": "unparsable_date",
            "message": "ngày giờ không hợp lệ: '26-01-2024'",
        }
    ]


def test_status_notes_an_unmapped_status_against_the_source_path() -> None:
    form = FormBuilder()
    statuses = StatusMap("igate")
    assert form.status(3, "dossierStatus.id", statuses) is S.PROCESSING
    assert form.status(11, "dossierStatus.id", statuses) is None
    assert form.problems == [
        {
            "path": "dossierStatus.id",
            "code": "unmapped_status",
            "message": "trạng thái nguồn 11 chưa được ánh xạ sang TrangThaiHoSo",
        }
    ]


# --- outcomes ------------------------------------------------------------------------------


def builder(form: dict[str, Any]) -> FormBuilder:
    built = FormBuilder()
    for name, value in form.items():
        built.put(name, value)
    return built


def context(**kwargs: Any) -> Context:
    return Context(StatusMap("opencps"), **kwargs)


def test_a_valid_form_finishes_as_a_dossier() -> None:
    dossier = finish_dossier(builder(valid_dossier("4")), "dossier:1", {}, context())
    assert isinstance(dossier, Dossier)
    assert dossier.to_portal() == valid_dossier("4")


def test_mapping_problems_come_before_the_contract() -> None:
    form = builder(valid_dossier("4", Email="an@@x"))
    form.problem("dossierStatus", "unmapped_status", "chưa ánh xạ")
    raw = {"dossier": {"dossierId": 1}}
    rejection = finish_dossier(form, "dossier:1", raw, context())
    assert rejection == Rejection(
        key="dossier:1",
        kind="dossier",
        raw=raw,
        reason_code="unmapped_status",
        reason="dossierStatus: chưa ánh xạ",
        errors=[{"path": "dossierStatus", "code": "unmapped_status", "message": "chưa ánh xạ"}],
        ma_ho_so=MA_HO_SO,
    )


def test_a_contract_violation_names_the_portal_field() -> None:
    rejection = finish_dossier(
        builder(valid_dossier("4", Email="an@@x")), "dossier:1", {}, context()
    )
    assert isinstance(rejection, Rejection)
    assert (rejection.reason_code, rejection.reason, rejection.errors) == (
        "invalid",
        "Email: không phải địa chỉ e-mail hợp lệ",
        [{"path": "Email", "code": "format", "message": "không phải địa chỉ e-mail hợp lệ"}],
    )


def test_an_unknown_procedure_first_is_its_own_reason() -> None:
    catalogue = Catalogue(procedures={"1.001193": {"TenTTHC": "Đăng ký khai tử"}})
    rejection = finish_dossier(
        builder(valid_dossier("4")), "dossier:1", {}, context(catalogue=catalogue)
    )
    assert isinstance(rejection, Rejection)
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


def test_an_earlier_contract_violation_outranks_an_unknown_procedure() -> None:
    catalogue = Catalogue(procedures={"1.001193": {"TenTTHC": "Đăng ký khai tử"}})
    form = builder(valid_dossier("4", MaHoSo="HS-00012"))
    rejection = finish_dossier(form, "dossier:1", {}, context(catalogue=catalogue))
    assert isinstance(rejection, Rejection)
    assert rejection.reason_code == "invalid"
    assert [e["path"] for e in rejection.errors] == ["MaHoSo", "MaTTHC"]
    assert (rejection.ma_ho_so, rejection.agency, rejection.unit) == ("HS-00012", None, None)


def test_a_dossier_of_an_agency_not_served_is_rejected() -> None:
    rejection = finish_dossier(
        builder(valid_dossier("4")), "dossier:1", {}, context(agencies=("000.00.00.H29",))
    )
    reason = "MaHoSo: cơ quan 000.00.53.H26 không thuộc các đơn vị nguồn này phục vụ"
    assert rejection == Rejection(
        key="dossier:1",
        kind="dossier",
        raw={},
        reason_code="agency_not_served",
        reason=reason,
        errors=[{"path": "MaHoSo", "code": "agency_not_served", "message": reason}],
        ma_ho_so=MA_HO_SO,
    )


@pytest.mark.parametrize(
    ("ma_ho_so", "agency", "unit"),
    [
        ("000.00.53.H26-240125-00012", "000.00.53.H26", "000.00.00.H26"),
        ("000.00.03.G05-2024-7", "000.00.03.G05", "000.00.00.G05"),
        ("HS-2024-7", None, None),
        (None, None, None),
    ],
)
def test_a_rejection_knows_its_agency_and_unit_from_ma_ho_so(
    ma_ho_so: str | None, agency: str | None, unit: str | None
) -> None:
    rejection = Rejection("dossier:1", "dossier", {}, "invalid", "x", [], ma_ho_so)
    assert (rejection.agency, rejection.unit) == (agency, unit)


def test_a_valid_step_finishes_as_a_progress_record() -> None:
    step = finish_progress(builder(valid_progress()), "history:1", {})
    assert isinstance(step, ProgressRecord)
    assert step.to_portal() == valid_progress()


def test_an_invalid_step_is_rejected_on_its_own() -> None:
    raw = {"MaHoSo": MA_HO_SO, "history": {"id": "1"}}
    form = builder(valid_progress(NguoiXuLy=""))
    rejection = finish_progress(form, "history:1", raw)
    assert rejection == Rejection(
        key="history:1",
        kind="progress",
        raw=raw,
        reason_code="invalid",
        reason="NguoiXuLy: bắt buộc",
        errors=[{"path": "NguoiXuLy", "code": "required", "message": "bắt buộc"}],
        ma_ho_so=MA_HO_SO,
    )


def _progress(n: int) -> ProgressRecord:
    step = finish_progress(builder(valid_progress(NoiDungXuLy=f"bước {n}")), f"history:{n}", {})
    assert isinstance(step, ProgressRecord)
    return step


def test_assemble_lists_the_dossier_and_each_valid_step_as_valid_keys() -> None:
    dossier = finish_dossier(builder(valid_dossier("4")), "dossier:1", {}, context())
    assert isinstance(dossier, Dossier)
    bad = Rejection("history:2", "progress", {}, "unmapped_status", "x", [], MA_HO_SO)
    when = datetime(2024, 1, 25, 9, 0, tzinfo=VN_TZ)
    result = assemble(
        "dossier:1",
        "1",
        when,
        dossier,
        [("history:1", _progress(1)), ("history:2", bad), ("history:3", _progress(3))],
    )
    assert result == Normalised(
        key="dossier:1",
        record_id="1",
        modified_at=when,
        dossier=dossier,
        progress=(_progress(1), _progress(3)),
        rejections=(bad,),
        valid_keys=("dossier:1", "history:1", "history:3"),
    )


def test_assemble_drops_the_steps_of_a_rejected_dossier() -> None:
    rejected = Rejection("dossier:1", "dossier", {}, "invalid", "x", [], MA_HO_SO)
    bad = Rejection("history:2", "progress", {}, "unmapped_status", "x", [], MA_HO_SO)
    result = assemble(
        "dossier:1", "1", None, rejected, [("history:1", _progress(1)), ("history:2", bad)]
    )
    assert result == Normalised("dossier:1", "1", None, None, rejections=(rejected,))
