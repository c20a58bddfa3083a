"""The 766 report (scope `read`): a unit's Decision 766 indicators for a month, quarter
or year, per agency and for the unit, as JSON or CSV.

The handler is thin: which dossiers count and how is ``app.domain.indicators``'s
business (see ``docs/indicators-766.md``); ``app.sync.reports`` reads them. A plain
session — nothing to commit.
"""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field

from app.api.deps import ServiceDep
from app.api.errors import ERROR_RESPONSES, ApiError
from app.api.security import Reader
from app.domain.indicators import (
    INDICATOR_BY_ID,
    MAX_POINTS,
    AgencyReport,
    IndicatorValue,
    UnitReport,
)
from app.domain.periods import PERIOD_PATTERN, Period
from app.sync.reports import unit_report

router = APIRouter(prefix="/api/v1", tags=["read"])

UNIT_PATTERN = r"^000\.00\.00\.[GH]\d{2}$"
CSV_COLUMNS = (
    "unit",
    "period",
    "level",
    "agency",
    "indicator",
    "name",
    "value",
    "points",
    "max_points",
    "numerator",
    "denominator",
    "reason",
)

PERIOD_DESCRIPTION = (
    "`YYYY-MM` (a month), `YYYY-Qn` (a quarter, n = 1–4) or `YYYY` (a year), in "
    "Asia/Ho_Chi_Minh time; default: the current month. A period starts at 00:00 "
    "Vietnamese time on its first day (17:00 UTC the day before). Years 1900–2099."
)


class IndicatorView(BaseModel):
    id: str = Field(description="The indicator's number in Decision 766.", examples=["2.1"])
    name: str = Field(examples=["on_time"])
    value: float | None = Field(
        description="The ratio, 0–1; null when its denominator is 0 (see `reason`).",
        examples=[0.85],
    )
    points: float | None = Field(description="Points earned; null with `value`.", examples=[17])
    max_points: int = Field(examples=[20])
    numerator: int = Field(description="Dossiers counted in the ratio's numerator.")
    denominator: int = Field(description="Dossiers counted in its denominator.")
    reason: str | None = Field(
        description="Why `value` is null (never set otherwise).",
        examples=[None],
    )


class AgencyReportView(BaseModel):
    agency: str = Field(
        description="The agency's code (for `total`: the unit's code).", examples=["000.00.53.H26"]
    )
    points: float = Field(
        description="The sum of the computed indicators' points, out of `max_points`."
    )
    max_points: int = Field(description="56: the indicators computed here.", examples=[56])
    groups: dict[str, float | None] = Field(
        description="Per group of the portal's evaluation (`transparency`, `progress`, "
        "`online_service`, `online_payment`, `digitisation`, `satisfaction`): the points "
        "of its indicators computed here; null when none is."
    )
    indicators: list[IndicatorView] = Field(description="1.4, 2.1, 3.3, 4.1, 6.1, 6.2, 6.4.")
    counts: dict[str, int] = Field(
        description="`received`, `on_time`, `early`, `late`, `open`, `synced`, "
        "`received_portal`, `reached_result`, and `status_1` … `status_10` (dossiers "
        "with `NgayTiepNhan` in the period by latest status)."
    )
    overdue_rate: float | None = Field(
        description="Late over received; null when nothing was received.", examples=[0.15]
    )


_EXAMPLE_AGENCY: dict[str, Any] = {
    "agency": "000.00.53.H26",
    "points": 40.0,
    "max_points": 56,
    "groups": {
        "transparency": 6.0,
        "progress": 16.0,
        "online_service": 12.0,
        "online_payment": None,
        "digitisation": 6.0,
        "satisfaction": None,
    },
    "indicators": [
        {
            "id": "1.4",
            "name": "dossier_sync",
            "value": 1.0,
            "points": 6.0,
            "max_points": 6,
            "numerator": 10,
            "denominator": 10,
            "reason": None,
        },
        {
            "id": "4.1",
            "name": "online_payment",
            "value": None,
            "points": None,
            "max_points": 6,
            "numerator": 0,
            "denominator": 0,
            "reason": "no dossier received in the period has fees to pay",
        },
    ],
    "counts": {"received": 10, "on_time": 8, "early": 3, "late": 2, "open": 1},
    "overdue_rate": 0.2,
}


class ReportAnswer(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "unit": "000.00.00.H26",
                    "agency": None,
                    "period": "2024-05",
                    "kind": "month",
                    "since": "2024-04-30T17:00:00Z",
                    "until": "2024-05-31T17:00:00Z",
                    "as_of": "2024-06-03T02:00:00Z",
                    "max_points": 56,
                    "total": _EXAMPLE_AGENCY | {"agency": "000.00.00.H26"},
                    "agencies": [_EXAMPLE_AGENCY],
                }
            ]
        }
    )

    unit: str
    agency: str | None = Field(
        description="Set when the key is one agency's: the report is that agency's only."
    )
    period: str = Field(examples=["2024-05", "2024-Q2", "2024"])
    kind: Literal["month", "quarter", "year"]
    since: datetime = Field(description="Start of the period (local midnight), in UTC.")
    until: datetime = Field(description="End of the period (exclusive), in UTC.")
    as_of: datetime = Field(
        description="When the report was computed; open dossiers of a period not yet over "
        "are judged at this time."
    )
    max_points: int = Field(examples=[MAX_POINTS])
    total: AgencyReportView = Field(
        description="The unit's figures over all its dossiers at once (ratios of sums, "
        "not averages of the agencies' ratios)."
    )
    agencies: list[AgencyReportView] = Field(description="One entry per agency with dossiers.")


CSV_DESCRIPTION = (
    "With `format=csv`: UTF-8, a header row, then one row per agency per indicator and "
    "one per indicator for the unit's total. Columns: " + ", ".join(f"`{c}`" for c in CSV_COLUMNS)
)


@router.get(
    "/reports/766",
    response_model=ReportAnswer,
    responses={
        **ERROR_RESPONSES,
        200: {
            "description": "The report (JSON, or CSV with `format=csv`).",
            "content": {
                "text/csv": {
                    "schema": {"type": "string", "description": CSV_DESCRIPTION},
                    "example": ",".join(CSV_COLUMNS)
                    + "\n000.00.00.H26,2024-05,agency,000.00.53.H26,2.1,on_time,0.8,16.0,20,"
                    "8,10,\n000.00.00.H26,2024-05,unit,,4.1,online_payment,,,6,0,0,"
                    "no dossier received in the period has fees to pay\n",
                }
            },
        },
    },
    summary="A unit's Decision 766 indicators for a period",
)
async def get_report(
    caller: Reader,
    service: ServiceDep,
    unit: Annotated[
        str,
        Query(
            description="The top-level unit's code.",
            pattern=UNIT_PATTERN,
            examples=["000.00.00.H26"],
        ),
    ],
    period: Annotated[
        str | None,
        Query(pattern=PERIOD_PATTERN, description=PERIOD_DESCRIPTION, examples=["2024-05"]),
    ] = None,
    format: Annotated[
        Literal["json", "csv"],
        Query(description="`json` (default) or `csv` (`text/csv`, columns below)."),
    ] = "json",
) -> ReportAnswer | Response:
    """The Decision 766 indicators this service can compute from the dossiers it syncs
    (`indicators-766.md`): 1.4 dossier sync, 2.1 on time, 3.3 online share, 4.1 online
    payment, 6.1 electronic result, 6.2 digitised components, 6.4 reused data — 56 of
    the portal's 100 points — per agency of the unit and for the unit as a whole, each
    with its value, points and the counts it came from, the six group totals
    (computable part) and the total out of 56.

    A dossier counts in the period of its `NgayTiepNhan` (received: status neither 1
    nor 3); 6.1 counts dossiers in the period they first reached status 9 or 10. A ratio
    whose denominator is 0 is null, with the reason — never 0, never 1. Open dossiers
    are judged at the end of the period, or now while it is not over.

    `format=csv` answers `text/csv`: a header, then one row per agency per indicator,
    then the unit total's rows (`level` = `unit`, `agency` empty). Columns: `unit`,
    `period`, `level` (`agency` or `unit`), `agency`, `indicator` (id), `name`, `value`,
    `points`, `max_points`, `numerator`, `denominator`, `reason`; a null is an empty cell.

    Needs a key of the unit with the `read` scope: another unit's key gets 403, an
    agency's key gets its agency only (`agency` says so, and `total` is the agency's).
    """
    if unit != caller.unit:
        raise ApiError(403, "forbidden", f"unit {unit} is outside this key's reach")
    now = datetime.now(UTC)
    chosen = parse_period(period, now)
    async with service.sessions() as session:
        report = await unit_report(session, unit=unit, period=chosen, now=now, agency=caller.agency)
    if format == "csv":
        filename = f"766-{unit}-{chosen}.csv"
        return Response(
            report_csv(report),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="{filename}"'},
        )
    return _answer(report, caller.agency, now)


def parse_period(text: str | None, now: datetime) -> Period:
    """The period a query asks for (default: the month of ``now``); a period the API's
    pattern lets through but that is out of range is a 422 naming ``period``."""
    if text is None:
        return Period.containing(now)
    try:
        return Period.parse(text)
    except ValueError as exc:
        raise ApiError(
            422,
            "validation_error",
            "invalid request: period",
            [{"field": "period", "message": str(exc)}],
        ) from None


def _indicator_view(value: IndicatorValue) -> IndicatorView:
    return IndicatorView(
        id=value.id,
        name=value.name,
        value=value.value,
        points=value.points,
        max_points=INDICATOR_BY_ID[value.id].max_points,
        numerator=value.numerator,
        denominator=value.denominator,
        reason=value.reason,
    )


def _agency_view(report: AgencyReport) -> AgencyReportView:
    return AgencyReportView(
        agency=report.agency,
        points=report.points,
        max_points=report.max_points,
        groups=report.groups,
        indicators=[_indicator_view(v) for v in report.indicators],
        counts=report.counts,
        overdue_rate=report.overdue_rate,
    )


def _answer(report: UnitReport, agency: str | None, now: datetime) -> ReportAnswer:
    since, until = report.period.bounds()
    return ReportAnswer(
        unit=report.unit,
        agency=agency,
        period=str(report.period),
        kind=report.period.kind.value,
        since=since,
        until=until,
        as_of=now,
        max_points=MAX_POINTS,
        total=_agency_view(report.total),
        agencies=[_agency_view(a) for a in report.agencies],
    )


def report_csv(report: UnitReport) -> str:
    """The report as CSV (columns :data:`CSV_COLUMNS`): every agency's rows, then the
    unit total's (``level`` = ``unit``, ``agency`` empty)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    levels = [("agency", a.agency, a) for a in report.agencies]
    for level, agency, figures in [*levels, ("unit", "", report.total)]:
        for value in figures.indicators:
            writer.writerow(
                [
                    report.unit,
                    str(report.period),
                    level,
                    agency,
                    value.id,
                    value.name,
                    _cell(value.value),
                    _cell(value.points),
                    INDICATOR_BY_ID[value.id].max_points,
                    value.numerator,
                    value.denominator,
                    value.reason or "",
                ]
            )
    return out.getvalue()


def _cell(number: float | None) -> str:
    return "" if number is None else repr(number)
