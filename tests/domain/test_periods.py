"""Reporting periods: months, quarters and years bounded by Vietnamese midnights."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.domain.dates import VN_TZ
from app.domain.periods import Period, PeriodKind

from .factories import PROPERTY


@pytest.mark.parametrize(
    ("text", "period", "since", "until"),
    [
        ("2024-05", Period(2024, 5), "2024-04-30T17:00:00", "2024-05-31T17:00:00"),
        ("2024-12", Period(2024, 12), "2024-11-30T17:00:00", "2024-12-31T17:00:00"),
        ("2024-02", Period(2024, 2), "2024-01-31T17:00:00", "2024-02-29T17:00:00"),
        ("2024-Q1", Period(2024, 1, 3), "2023-12-31T17:00:00", "2024-03-31T17:00:00"),
        ("2024-Q2", Period(2024, 4, 3), "2024-03-31T17:00:00", "2024-06-30T17:00:00"),
        ("2024-Q4", Period(2024, 10, 3), "2024-09-30T17:00:00", "2024-12-31T17:00:00"),
        ("2024", Period(2024, 1, 12), "2023-12-31T17:00:00", "2024-12-31T17:00:00"),
    ],
)
def test_parse_and_bounds_at_vietnamese_midnight(
    text: str, period: Period, since: str, until: str
) -> None:
    parsed = Period.parse(text)
    assert parsed == period
    assert str(parsed) == text
    start, end = parsed.bounds()
    assert start == datetime.fromisoformat(since).replace(tzinfo=UTC)
    assert end == datetime.fromisoformat(until).replace(tzinfo=UTC)


def test_kinds_and_constructors() -> None:
    assert Period.of_month(2024, 5).kind is PeriodKind.MONTH
    assert Period.of_quarter(2024, 3) == Period(2024, 7, 3)
    assert Period.of_quarter(2024, 3).kind is PeriodKind.QUARTER
    assert Period.of_quarter(2024, 3).quarter == 3
    assert Period.of_year(2024) == Period(2024, 1, 12)
    assert Period.of_year(2024).kind is PeriodKind.YEAR


def test_the_first_and_last_second_of_a_month() -> None:
    may = Period(2024, 5)
    assert datetime(2024, 5, 1, 0, 0, 0, tzinfo=VN_TZ) in may
    assert datetime(2024, 5, 31, 23, 59, 59, tzinfo=VN_TZ) in may
    assert datetime(2024, 4, 30, 23, 59, 59, tzinfo=VN_TZ) not in may
    assert datetime(2024, 6, 1, 0, 0, 0, tzinfo=VN_TZ) not in may
    # 20:00 UTC on May 31 is already June 1 in Vietnam.
    assert datetime(2024, 5, 31, 20, 0, tzinfo=UTC) not in may


def test_containing_takes_the_vietnamese_month() -> None:
    assert Period.containing(datetime(2024, 4, 30, 17, 0, tzinfo=UTC)) == Period(2024, 5)
    assert Period.containing(datetime(2024, 4, 30, 16, 59, 59, tzinfo=UTC)) == Period(2024, 4)


@pytest.mark.parametrize(
    "text",
    [
        "2024-5",
        "2024-13",
        "2024-00",
        "2024-Q0",
        "2024-Q5",
        "2024-q2",
        "24",
        "",
        "2024-05-01",
        "1899",
        "2100-01",
        "0000-Q1",
    ],
)
def test_parse_refuses(text: str) -> None:
    with pytest.raises(ValueError, match=r"."):
        Period.parse(text)


@pytest.mark.parametrize(
    ("year", "month", "months"), [(2024, 13, 1), (2024, 2, 3), (2024, 4, 12), (2024, 1, 2)]
)
def test_construction_refuses_misaligned_periods(year: int, month: int, months: int) -> None:
    with pytest.raises(ValueError, match=r"."):
        Period(year, month, months)


@PROPERTY
@given(
    st.integers(1900, 2099),
    st.sampled_from([(1, m) for m in range(1, 13)] + [(3, m) for m in (1, 4, 7, 10)] + [(12, 1)]),
)
def test_periods_tile_time(year: int, shape: tuple[int, int]) -> None:
    """A period ends where the next one of its kind starts, at a Vietnamese midnight, and
    round-trips through its text."""
    months, month = shape
    period = Period(year, month, months)
    start, end = period.bounds()
    assert Period.parse(str(period)) == period
    local = start.astimezone(VN_TZ)
    assert (local.day, local.hour, local.minute, local.second) == (1, 0, 0, 0)
    assert end - start >= timedelta(days=28 * months)
    if year < 2099 or month + months <= 12:
        following = month - 1 + months
        successor = Period(year + following // 12, following % 12 + 1, months)
        assert successor.bounds()[0] == end
