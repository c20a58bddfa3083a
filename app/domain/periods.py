"""Reporting periods: a calendar month, quarter or year in Asia/Ho_Chi_Minh time
(indicators-766.md, "Period P").

A period is written ``YYYY-MM`` (month), ``YYYY-Qn`` (quarter) or ``YYYY`` (year). Its
bounds are local midnights turned into UTC instants, ``[start, end)``: the first second
of the 1st of May in Vietnam (``2024-04-30T17:00:00Z``) is in May, the second before it
is in April. Vietnam has kept UTC+7 without daylight saving since 1975, so every period
is a whole number of days long.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

from app.domain.dates import EARLIEST_YEAR, LATEST_YEAR, VN_TZ

PERIOD_PATTERN = r"^(19|20)[0-9]{2}(-(0[1-9]|1[0-2])|-Q[1-4])?$"
"""``YYYY-MM``, ``YYYY-Qn`` or ``YYYY``, years 1900–2099 (the API validates query
parameters with it, so that every period its schema admits is one it can answer)."""
MONTH_PATTERN = r"^(19|20)[0-9]{2}-(0[1-9]|1[0-2])$"
"""``YYYY-MM`` only, years 1900–2099."""

_PERIOD_RE = re.compile(PERIOD_PATTERN)


class PeriodKind(StrEnum):
    MONTH = "month"
    QUARTER = "quarter"
    YEAR = "year"


_MONTHS = {PeriodKind.MONTH: 1, PeriodKind.QUARTER: 3, PeriodKind.YEAR: 12}
_KIND_OF_LENGTH = {length: kind for kind, length in _MONTHS.items()}


@dataclass(frozen=True, slots=True)
class Period:
    """``months`` calendar months from the 1st of ``month`` of ``year``, Vietnamese time.

    ``Period(2024, 5)`` is May 2024; quarters and years start on their first month
    (:meth:`of_quarter`, :meth:`of_year`), so that one shape — a first month and a
    length — serves the three kinds.
    """

    year: int
    month: int
    months: int = 1

    def __post_init__(self) -> None:
        if self.months not in _KIND_OF_LENGTH:
            raise ValueError(f"a period is 1, 3 or 12 months long, not {self.months}")
        if not 1 <= self.month <= 12:
            raise ValueError(f"no month {self.month}")
        if (self.month - 1) % self.months:
            raise ValueError(f"a {self.kind.value} cannot start in month {self.month}")
        # The dossiers' own date window (a date outside it is refused on the way in), which
        # also keeps the end bound of the last period a representable datetime.
        if not EARLIEST_YEAR <= self.year <= LATEST_YEAR:
            raise ValueError(f"year must be within {EARLIEST_YEAR}–{LATEST_YEAR}")

    @classmethod
    def of_month(cls, year: int, month: int) -> Period:
        return cls(year, month)

    @classmethod
    def of_quarter(cls, year: int, quarter: int) -> Period:
        if not 1 <= quarter <= 4:
            raise ValueError(f"no quarter {quarter}")
        return cls(year, 3 * quarter - 2, 3)

    @classmethod
    def of_year(cls, year: int) -> Period:
        return cls(year, 1, 12)

    @classmethod
    def parse(cls, text: str) -> Period:
        """``YYYY-MM``, ``YYYY-Qn`` or ``YYYY``; :class:`ValueError` for anything else."""
        if not _PERIOD_RE.fullmatch(text):
            raise ValueError(f"a period is YYYY-MM, YYYY-Qn or YYYY, not {text!r}")
        year, _, rest = text.partition("-")
        if not rest:
            return cls.of_year(int(year))
        if rest.startswith("Q"):
            return cls.of_quarter(int(year), int(rest[1:]))
        return cls.of_month(int(year), int(rest))

    @classmethod
    def containing(cls, moment: datetime) -> Period:
        """The month (Vietnamese time) that contains ``moment``."""
        local = moment.astimezone(VN_TZ)
        return cls(local.year, local.month)

    @property
    def kind(self) -> PeriodKind:
        return _KIND_OF_LENGTH[self.months]

    @property
    def quarter(self) -> int:
        """The quarter the period starts in (1–4)."""
        return (self.month - 1) // 3 + 1

    def bounds(self) -> tuple[datetime, datetime]:
        """``[start, end)`` in UTC: local midnight of the first day to that of the day
        after the last."""
        start = datetime(self.year, self.month, 1, tzinfo=VN_TZ)
        following = self.month - 1 + self.months
        end = datetime(self.year + following // 12, following % 12 + 1, 1, tzinfo=VN_TZ)
        return start.astimezone(UTC), end.astimezone(UTC)

    def __contains__(self, moment: datetime) -> bool:
        start, end = self.bounds()
        return start <= moment < end

    def __str__(self) -> str:
        if self.kind is PeriodKind.YEAR:
            return f"{self.year:04d}"
        if self.kind is PeriodKind.QUARTER:
            return f"{self.year:04d}-Q{self.quarter}"
        return f"{self.year:04d}-{self.month:02d}"
