"""Contract §1: every date is Asia/Ho_Chi_Minh local time written ``yyyyMMddHHmmss``."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from app.domain import (
    VN_TZ,
    RecordInvalid,
    format_portal_datetime,
    parse_dossier,
    parse_portal_datetime,
)
from app.domain.dates import (
    EARLIEST_YEAR,
    LATEST_YEAR,
    PORTAL_DATE_FORMAT,
    PortalDateError,
)

from .factories import FUZZ, PROPERTY, issue_summary, valid_dossier, valid_progress

NEW_YORK = ZoneInfo("America/New_York")


def test_parse_gives_an_aware_vietnam_datetime() -> None:
    parsed = parse_portal_datetime("20240125083000")
    assert parsed == datetime(2024, 1, 25, 8, 30, tzinfo=VN_TZ)
    assert parsed.tzinfo is VN_TZ
    assert parsed.utcoffset() == timedelta(hours=7)
    assert parsed.astimezone(UTC) == datetime(2024, 1, 25, 1, 30, tzinfo=UTC)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (datetime(2024, 1, 25, 8, 30, tzinfo=VN_TZ), "20240125083000"),
        (datetime(2024, 1, 25, 1, 30, tzinfo=UTC), "20240125083000"),
        (datetime(2024, 1, 24, 20, 30, tzinfo=NEW_YORK), "20240125083000"),
        (datetime(2024, 1, 25, 10, 30, tzinfo=timezone(timedelta(hours=9))), "20240125083000"),
        (datetime(2024, 12, 31, 17, 0, tzinfo=UTC), "20250101000000"),
        (datetime(2024, 1, 25, 8, 30, 59, 999999, tzinfo=VN_TZ), "20240125083059"),
    ],
    ids=["vietnam", "utc", "new-york", "plus-9", "new-year-in-vietnam", "microseconds-dropped"],
)
def test_format_writes_vietnam_local_time(value: datetime, expected: str) -> None:
    assert format_portal_datetime(value) == expected


def test_format_refuses_a_naive_datetime() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        format_portal_datetime(datetime(2024, 1, 25, 8, 30))  # noqa: DTZ001 - the point


@pytest.mark.parametrize(
    "text", ["20240125083000", "20240229235959", "19000101000000", "20991231235959"]
)
def test_round_trip(text: str) -> None:
    assert format_portal_datetime(parse_portal_datetime(text)) == text


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("2024012508300", "phải có dạng yyyyMMddHHmmss (14 chữ số)"),
        ("202401250830000", "phải có dạng yyyyMMddHHmmss (14 chữ số)"),
        ("20240125083000\n", "phải có dạng yyyyMMddHHmmss (14 chữ số)"),
        ("٢٠٢٤٠١٢٥٠٨٣٠٠٠", "phải có dạng yyyyMMddHHmmss (14 chữ số)"),
        ("2024-01-25T08:3", "phải có dạng yyyyMMddHHmmss (14 chữ số)"),
        ("20240230083000", "không phải ngày giờ hợp lệ: '20240230083000'"),
        ("20240125083060", "không phải ngày giờ hợp lệ: '20240125083060'"),
        ("00000101000000", "không phải ngày giờ hợp lệ: '00000101000000'"),
        ("18991231235959", "năm phải trong khoảng 1900–2099"),
        ("21000101000000", "năm phải trong khoảng 1900–2099"),
    ],
    ids=repr,
)
def test_parse_rejects_with_a_message(text: str, message: str) -> None:
    with pytest.raises(PortalDateError) as info:
        parse_portal_datetime(text)
    assert str(info.value) == message


def test_ambiguous_local_time_parses_to_the_first_occurrence() -> None:
    # On 1975-06-13 Vietnam went from UTC+8 to UTC+7: 23:30 on the 12th happened twice.
    # A 14-digit local time cannot tell the two apart; parsing picks the earlier one.
    first = datetime(1975, 6, 12, 15, 30, tzinfo=UTC)
    second = datetime(1975, 6, 12, 16, 30, tzinfo=UTC)
    assert format_portal_datetime(first) == format_portal_datetime(second) == "19750612233000"
    assert parse_portal_datetime("19750612233000").astimezone(UTC) == first


# --- properties ----------------------------------------------------------------------------

# Wall-clock bounds one day inside the window, so that any offset keeps the Vietnamese
# local time within 1900..2099.
AWARE_DATETIMES = st.datetimes(
    min_value=datetime(1900, 1, 2),  # noqa: DTZ001 - hypothesis takes naive bounds
    max_value=datetime(2099, 12, 30),  # noqa: DTZ001
    timezones=st.timezones(),
).map(lambda value: value.replace(microsecond=0))


def _is_ambiguous_in_vietnam(instant: datetime) -> bool:
    local = instant.astimezone(VN_TZ)
    return local.replace(fold=0).utcoffset() != local.replace(fold=1).utcoffset()


@PROPERTY
@given(AWARE_DATETIMES)
def test_format_then_parse_gives_the_same_instant(value: datetime) -> None:
    text = format_portal_datetime(value)
    assert len(text) == 14
    assert text.isdigit()
    parsed = parse_portal_datetime(text)
    assert parsed.tzinfo is VN_TZ
    assert format_portal_datetime(parsed) == text
    if not _is_ambiguous_in_vietnam(value):
        assert parsed.astimezone(UTC) == value.astimezone(UTC)


@PROPERTY
@given(st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2099, 12, 30)))  # noqa: DTZ001
def test_format_then_parse_is_exact_since_1976(naive: datetime) -> None:
    # No clock changes in Vietnam after 1975: the instant always survives.
    value = naive.replace(microsecond=0, tzinfo=UTC)
    assert parse_portal_datetime(format_portal_datetime(value)) == value


DIGITS_14 = st.from_regex(r"[0-9]{14}", fullmatch=True)
CALENDAR_LIKE = st.builds(
    "{:04d}{:02d}{:02d}{:02d}{:02d}{:02d}".format,
    st.integers(1890, 2110),
    st.integers(0, 13),
    st.integers(0, 32),
    st.integers(0, 24),
    st.integers(0, 60),
    st.integers(0, 60),
)


@FUZZ
@given(DIGITS_14 | CALENDAR_LIKE)
def test_parse_then_format_gives_the_same_text(text: str) -> None:
    try:
        parsed = parse_portal_datetime(text)
    except PortalDateError:
        return
    assert format_portal_datetime(parsed) == text


@FUZZ
@given(DIGITS_14 | CALENDAR_LIKE)
def test_parse_reads_fourteen_digits_as_strptime_does(text: str) -> None:
    """The sliced parse names the same moment as ``strptime`` with the portal's format,
    and refuses what it refuses."""
    try:
        expected: datetime | None = datetime.strptime(text, PORTAL_DATE_FORMAT).replace(
            tzinfo=VN_TZ
        )
    except ValueError:
        expected = None
    try:
        parsed: datetime | None = parse_portal_datetime(text)
    except PortalDateError:
        parsed = None
    if expected is not None and not EARLIEST_YEAR <= expected.year <= LATEST_YEAR:
        expected = None  # outside the contract's year window: refused on purpose
    assert parsed == expected
    if parsed is not None:
        assert parsed.tzinfo is VN_TZ


@FUZZ
@given(
    st.text()
    | st.text(alphabet="0123456789\n -:T+٠١٢٣")
    | DIGITS_14.map(lambda s: s + "\n")
    | st.from_regex(r"[0-9]{12,16}", fullmatch=True)
)
def test_parse_raises_only_portal_date_error(text: str) -> None:
    try:
        parsed = parse_portal_datetime(text)
    except PortalDateError:
        return
    assert len(text) == 14
    assert text.isascii()
    assert text.isdigit()
    assert parsed.tzinfo is VN_TZ


# --- dates given as datetimes from code ----------------------------------------------------


def test_dossier_serialises_a_utc_datetime_as_vietnam_local_time() -> None:
    utc = datetime(2024, 1, 25, 1, 30, tzinfo=UTC)
    dossier = parse_dossier(valid_dossier("1", NgayNopHoSo=utc))
    assert dossier.NgayNopHoSo == utc
    assert dossier.to_portal()["NgayNopHoSo"] == "20240125083000"
    assert '"NgayNopHoSo":"20240125083000"' in dossier.model_dump_json()
    assert parse_dossier(dossier.to_portal()) == dossier


def test_dossier_copy_with_a_utc_datetime_still_serialises_local_time() -> None:
    dossier = parse_dossier(valid_dossier("1"))
    changed = dossier.model_copy(update={"NgayNopHoSo": datetime(2024, 1, 25, 1, 30, tzinfo=UTC)})
    assert changed.to_portal()["NgayNopHoSo"] == "20240125083000"


def test_progress_serialises_a_utc_datetime_as_vietnam_local_time() -> None:
    from app.domain import parse_progress  # noqa: PLC0415 - local to keep the import list short

    record = parse_progress(valid_progress(ThoiDiemXuLy=datetime(2024, 1, 25, 1, 30, tzinfo=UTC)))
    assert record.to_portal()["ThoiDiemXuLy"] == "20240125083000"
    assert record.identity().ThoiDiemXuLy == "20240125083000"


def test_naive_datetime_from_code_is_rejected() -> None:
    naive = datetime(2024, 1, 25, 8, 30)  # noqa: DTZ001 - the point
    with pytest.raises(RecordInvalid) as info:
        parse_dossier(valid_dossier("1", NgayNopHoSo=naive))
    assert issue_summary(info.value) == [("NgayNopHoSo", "portal_date")]


@pytest.mark.parametrize(
    "value",
    [
        pytest.param(datetime(1899, 12, 31, 16, 0, tzinfo=UTC), id="1899-in-vietnam"),
        pytest.param(datetime(2100, 1, 1, tzinfo=VN_TZ), id="2100"),
        pytest.param(datetime.max.replace(tzinfo=UTC), id="datetime-max"),
        pytest.param(datetime.min.replace(tzinfo=UTC), id="datetime-min"),
    ],
)
def test_datetime_from_code_outside_the_year_window_is_rejected(value: datetime) -> None:
    with pytest.raises(RecordInvalid) as info:
        parse_dossier(valid_dossier("1", NgayNopHoSo=value))
    assert issue_summary(info.value) == [("NgayNopHoSo", "portal_date")]


def test_datetime_from_code_is_held_at_portal_precision() -> None:
    value = datetime(2024, 1, 25, 1, 30, 0, 999999, tzinfo=UTC)
    dossier = parse_dossier(valid_dossier("1", NgayNopHoSo=value))
    assert dossier.NgayNopHoSo == datetime(2024, 1, 25, 8, 30, tzinfo=VN_TZ)
    assert parse_dossier(dossier.to_portal()) == dossier


def test_datetimes_from_code_are_checked_for_order() -> None:
    record = valid_dossier(
        "2",
        NgayTiepNhan=datetime(2024, 2, 1, tzinfo=UTC),
        NgayHenTra=datetime(2024, 1, 1, tzinfo=UTC),
    )
    with pytest.raises(RecordInvalid) as info:
        parse_dossier(record)
    assert issue_summary(info.value) == [("NgayHenTra", "date_order")]


def test_datetime_order_is_compared_at_portal_precision() -> None:
    # Both are 08:30:00 to the portal: equal dates are in order.
    record = valid_dossier(
        "2",
        NgayTiepNhan=datetime(2024, 1, 25, 1, 30, 0, 900000, tzinfo=UTC),
        NgayHenTra=datetime(2024, 1, 25, 1, 30, 0, 100000, tzinfo=UTC),
    )
    dossier = parse_dossier(record)
    assert dossier.NgayHenTra == dossier.NgayTiepNhan


@PROPERTY
@given(AWARE_DATETIMES, st.sampled_from(["1", "2", "9"]))
def test_dossier_built_from_any_datetime_round_trips(value: datetime, status: str) -> None:
    fields = {"NgayNopHoSo": value, "NgayTiepNhan": value, "NgayHenTra": value}
    fields["NgayKetThucXuLy"] = value
    dossier = parse_dossier(valid_dossier(status, **fields))
    portal = dossier.to_portal()
    assert portal["NgayNopHoSo"] == format_portal_datetime(value)
    assert parse_dossier(portal) == dossier
    assume(not _is_ambiguous_in_vietnam(value))
    assert dossier.NgayNopHoSo is not None
    assert dossier.NgayNopHoSo.astimezone(UTC) == value.astimezone(UTC)
