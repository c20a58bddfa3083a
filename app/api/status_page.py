"""``GET /status``: one server-rendered HTML page for a provincial officer — how far each
unit is from 100 % synced this month (with a chart), what is waiting, what is held in
quarantine or given up and why, the sources' health and this month's 766 indicators.

No front-end build and no template engine: the page is a string built here with every
value passed through :func:`html.escape`, the chart an inline SVG drawn on the server,
the CSS inline (readable on a phone, printable on A4). It works with JavaScript off.

**No API key.** The page shows only aggregates — counts per unit, agency, reason code
and portal error code, ratios, ages, source names — the same figures ``/metrics``
already serves without a key. It never shows a dossier code, a record, or the text of a
quarantine or dead-letter message (those can quote a source's field values, personal
data included); reasons appear as their codes with a fixed explanation. A browser
cannot send a bearer key from an address bar anyway; a deployment that wants the page
private puts it behind its reverse proxy like ``/metrics``.
"""

from __future__ import annotations

import asyncio
import html
import math
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse

from app.api.deps import ServiceDep
from app.api.dossiers import PERIOD_DESCRIPTION, PERIOD_PATTERN
from app.api.errors import ERROR_RESPONSES
from app.domain.codes import ErrorCode
from app.domain.dates import VN_TZ
from app.domain.indicators import (
    INDICATOR_BY_ID,
    NO_FEES,
    NO_RECEIVED,
    NO_RECEIVED_ANYWHERE,
    NO_RESULT,
    AgencyReport,
    IndicatorValue,
)
from app.domain.periods import Period, PeriodKind
from app.sync.overview import Overview, SourceHealth, UnitOverview, overview
from app.sync.status import Figures

router = APIRouter(tags=["operations"])


class PageCache:
    """Rendered pages by period, each kept ``max_age_s``.

    The page needs no key, and reading it runs the 766 report over every dossier of the
    month: without this, anyone able to reach the port could make the database work
    that hard at will. With it, a page is read at most once per ``max_age_s`` per
    period, and one read at a time (others wait for it and get its result) — the same
    bargain as the ``/metrics`` database gauges, with the same interval."""

    def __init__(self, max_age_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.max_age_s = max_age_s
        self.clock = clock
        self._pages: dict[str, tuple[float, str]] = {}
        self._lock = asyncio.Lock()

    async def get(self, key: str, read: Callable[[], Awaitable[str]]) -> str:
        async with self._lock:
            now = self.clock()
            self._pages = {
                k: (at, page) for k, (at, page) in self._pages.items() if now - at < self.max_age_s
            }
            if key in self._pages:
                return self._pages[key][1]
            page = await read()
            self._pages[key] = (self.clock(), page)
            return page


def _pages(request: Request, service: ServiceDep) -> PageCache:
    pages: PageCache | None = getattr(request.app.state, "status_pages", None)
    if pages is None:
        pages = PageCache(service.refresh_interval_s)
        request.app.state.status_pages = pages
    return pages


@router.get(
    "/status",
    response_class=HTMLResponse,
    responses={
        200: {"content": {"text/html": {}}, "description": "The status page (HTML)."},
        # Spelled out: given as a model it would be documented as text/html, the page's
        # type, while errors are JSON like everywhere else.
        422: {
            "description": ERROR_RESPONSES[422]["description"],
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}},
        },
    },
    summary="Status page for people (HTML)",
)
async def status_page(
    service: ServiceDep,
    pages: Annotated[PageCache, Depends(_pages)],
    period: Annotated[
        str | None,
        Query(pattern=PERIOD_PATTERN, description=PERIOD_DESCRIPTION, examples=["2024-05"]),
    ] = None,
) -> HTMLResponse:
    """An HTML page for people: per unit of the deployment's portal accounts, the month's
    sync progress toward 100 % (chart and table, per agency), the backlog and the oldest
    change waiting, open quarantine by reason, open dead letters by portal error code,
    the month's 766 indicators, and the sources' health.

    Needs no key: like `/metrics` it shows aggregates only — no dossier codes, no
    personal data, no message text from the sources or the portal. A page is read from
    the database at most once per metrics refresh interval (a few seconds) per month;
    its "as of" time says when."""
    now = datetime.now(UTC)
    chosen = Period.parse(period) if period is not None else Period.containing(now)
    units = [account.unit for account in service.settings.portal.accounts]

    async def read() -> str:
        read_at = datetime.now(UTC)
        async with service.sessions() as session:
            found = await overview(session, units=units, period=chosen, now=read_at)
        return render(found)

    page = await pages.get(str(chosen), read)
    return HTMLResponse(page, headers={"Cache-Control": "no-store"})


# --- words ---------------------------------------------------------------------------------

# Quarantine reason codes (app.sync.normalise, app.sync.ingest, app.sync.poll) → what an
# officer should read. The code itself is shown too (an unknown one as "other reason"):
# codes are identifiers the service sets, never source data.
REASONS: dict[str, str] = {
    "unmapped_status": "Trạng thái của hệ thống nguồn chưa có trong bảng ánh xạ "
    "(source status not mapped)",
    "unparsable_date": "Ngày giờ không đọc được (unreadable date)",
    "date_order": "Thứ tự ngày giờ không hợp lý (dates out of order)",
    "required": "Thiếu trường bắt buộc (required field missing)",
    "invalid_field": "Trường dữ liệu không hợp lệ (invalid field)",
    "invalid": "Không đúng chuẩn dữ liệu của Cổng (fails the portal contract)",
    "unknown_procedure": "Mã thủ tục không có trong danh mục (procedure not in the catalogue)",
    "unknown_agency": "Cơ quan không có trong danh mục (agency not in the catalogue)",
    "agency_not_served": "Cơ quan ngoài phạm vi cấu hình (agency not served)",
    "out_of_reach": "Ngoài phạm vi của khóa API (outside the API key's reach)",
    "dossier_not_stored": "Tiến độ của hồ sơ chưa được lưu (step of a dossier not stored)",
}

# Portal error codes (contract §6) of dead letters.
ERROR_MEANINGS: dict[int, str] = {
    ErrorCode.BAD_CREDENTIALS: "Sai tài khoản kết nối Cổng (bad portal credentials)",
    ErrorCode.SESSION_EXPIRED: "Phiên đăng nhập hết hạn (session expired)",
    ErrorCode.ALREADY_EXISTS: "Hồ sơ đã tồn tại trên Cổng (already exists)",
    ErrorCode.NOT_FOUND: "Cổng chưa có hồ sơ (not found at the portal)",
    ErrorCode.VALIDATION_FAILED: "Cổng từ chối: dữ liệu không hợp lệ (validation failed)",
    ErrorCode.TRANSITION_REFUSED: "Cổng từ chối chuyển trạng thái (transition refused)",
    ErrorCode.BATCH_TOO_LARGE: "Lô gửi quá lớn (batch too large)",
    ErrorCode.UNKNOWN_SERVICE: "Dịch vụ không tồn tại (unknown service)",
    ErrorCode.UNIT_MISMATCH: "Hồ sơ không thuộc đơn vị của tài khoản (unit mismatch)",
    ErrorCode.INTERNAL_ERROR: "Lỗi nội bộ của Cổng (portal internal error)",
}
NO_ANSWER = "Cổng không trả lời hoặc lỗi kết nối (no answer from the portal)"

# The 766 indicators computed here (indicators-766.md), as the portal's pages name them.
INDICATOR_NAMES: dict[str, str] = {
    "1.4": "Đồng bộ hồ sơ",
    "2.1": "Giải quyết đúng hạn",
    "3.3": "Hồ sơ trực tuyến",
    "4.1": "Thanh toán trực tuyến",
    "6.1": "Kết quả điện tử",
    "6.2": "Số hóa thành phần hồ sơ",
    "6.4": "Tái sử dụng dữ liệu số hóa",
}
# Why an indicator has no value (its denominator is 0), in Vietnamese.
NULL_REASONS: dict[str, str] = {
    NO_RECEIVED: "không có hồ sơ tiếp nhận trong kỳ",
    NO_RECEIVED_ANYWHERE: "không có hồ sơ tiếp nhận trong kỳ (cả nguồn và Cổng)",
    NO_FEES: "không có hồ sơ có phí, lệ phí",
    NO_RESULT: "không có hồ sơ có kết quả (trạng thái 9, 10) trong kỳ",
}

# One colour per state, in the chart and its legend.
COLOURS = {
    "synced": "#2e7d32",
    "pending": "#1565c0",
    "quarantined": "#ef6c00",
    "dead": "#c62828",
    "empty": "#bdbdbd",
}
STATE_LABELS = {
    "synced": "Đã đồng bộ (synced)",
    "pending": "Đang chờ (pending)",
    "quarantined": "Cách ly (quarantined)",
    "dead": "Gửi lỗi (dead)",
}


# --- formats -------------------------------------------------------------------------------


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def percent(value: float | None) -> str:
    """Vietnamese style, one decimal, **rounded down**: 99.96 % is not yet 100 %, and a
    page about reaching 100 % must not say so early."""
    if value is None:
        return "—"
    # The epsilon undoes binary rounding (0.29 * 1000 is 289.99999999999997), far below
    # the distance between any ratio of real counts and the next tenth of a percent.
    tenths = math.floor(value * 1000 + 1e-9)
    return f"{tenths // 10},{tenths % 10}%"


def number(value: int) -> str:
    """Thousands separated by dots, as Vietnamese writes them."""
    return f"{value:,}".replace(",", ".")


def decimal(value: float, places: int = 2) -> str:
    return f"{value:.{places}f}".replace(".", ",")


def age(since: datetime | None, now: datetime) -> str:
    """How long ago ``since`` was: ``45 giây``, ``12 phút``, ``3 giờ 5 phút``,
    ``2 ngày 4 giờ``; ``—`` for none."""
    if since is None:
        return "—"
    whole = max(0, int((now - since).total_seconds()))
    days, rest = divmod(whole, 86_400)
    hours, rest = divmod(rest, 3_600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days} ngày {hours} giờ"
    if hours:
        return f"{hours} giờ {minutes} phút"
    if minutes:
        return f"{minutes} phút"
    return f"{secs} giây"


def local_time(moment: datetime | None) -> str:
    """``HH:MM dd/mm/yyyy`` in Vietnamese time."""
    if moment is None:
        return "—"
    return moment.astimezone(VN_TZ).strftime("%H:%M %d/%m/%Y")


def month_label(period: Period) -> str:
    if period.kind is PeriodKind.YEAR:
        return f"Năm {period.year}"
    if period.kind is PeriodKind.QUARTER:
        return f"Quý {period.quarter}/{period.year}"
    return f"Tháng {period.month:02d}/{period.year}"


# --- the page ------------------------------------------------------------------------------


def render(found: Overview) -> str:
    """The whole page."""
    period = str(found.period)
    sections = [
        _cards(found),
        _progress(found),
        _backlog(found),
        _quarantine(found),
        _dead_letters(found),
        _indicators(found),
        _sources(found),
    ]
    return f"""<!doctype html>
<html lang="vi">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Tình hình đồng bộ hồ sơ — {_e(month_label(found.period))}</title>
<style>{CSS}</style>
</head>
<body>
<header>
<h1>Tình hình đồng bộ hồ sơ thủ tục hành chính lên Cổng Dịch vụ công quốc gia</h1>
<p class="en">Dossier sync status — National Public Service Portal</p>
<p class="meta">Kỳ báo cáo <span class="en">(period)</span>:
<strong id="period">{_e(month_label(found.period))}</strong> ·
Số liệu lúc <span class="en">(as of)</span>: <strong>{_e(local_time(found.now))}</strong>
(giờ Việt Nam)</p>
<form method="get" class="period-form">
<label for="period-input">Xem tháng khác <span class="en">(another month)</span></label>
<input id="period-input" type="month" name="period" value="{_e(period)}"
 pattern="[0-9]{{4}}-[0-9]{{2}}" placeholder="YYYY-MM" required>
<button type="submit">Xem</button>
</form>
</header>
<main>
{"".join(sections)}
</main>
<footer>
<p>Tỷ lệ đồng bộ = chỉ số 1.4 của Quyết định 766/QĐ-TTg: số hồ sơ tiếp nhận trong tháng
(theo <code>NgayTiepNhan</code>, giờ Việt Nam; trừ trạng thái 1 và 3) mà Cổng đã nhận
trạng thái mới nhất, được đối soát xác nhận / số lớn hơn giữa hồ sơ tiếp nhận tại hệ
thống nguồn và hồ sơ Cổng đang giữ. Tỷ lệ được làm tròn xuống.
<span class="en">Sync rate = 766 indicator 1.4, as in the 766 report, rounded down.</span></p>
<p>Trang này chỉ hiển thị số liệu tổng hợp, không có mã hồ sơ hay thông tin cá nhân.
<span class="en">Aggregates only: no dossier codes, no personal data.</span>
Số liệu máy đọc: <a href="metrics">/metrics</a>.</p>
</footer>
</body>
</html>
"""


def _unit_name(found: Overview, code: str) -> str:
    return found.names.get(code, "")


def _cards(found: Overview) -> str:
    if not found.units:
        return (
            '<section id="units"><h2>Đơn vị</h2><p class="empty">Chưa cấu hình tài khoản '
            "Cổng nào (no portal accounts configured).</p></section>"
        )
    cards = []
    for unit in found.units:
        total = unit.sync.total
        rate = total.rate
        missing = total.received - total.synced
        if rate is None:
            verdict = '<p class="verdict">Chưa có hồ sơ tiếp nhận trong tháng.</p>'
        elif missing == 0:
            verdict = '<p class="verdict done">Đạt 100% <span class="en">(all synced)</span></p>'
        else:
            verdict = (
                f'<p class="verdict">Còn <strong>{_e(number(missing))}</strong> hồ sơ chưa '
                f'đồng bộ <span class="en">({_e(number(missing))} to go)</span></p>'
            )
        cards.append(
            f"""<article class="card" data-unit="{_e(unit.unit)}">
<h3>{_e(unit.unit)}</h3>
<p class="name">{_e(_unit_name(found, unit.unit))}</p>
<p class="rate" style="color:{_rate_colour(rate)}">{_e(percent(rate))}</p>
<p>{_e(number(total.synced))} / {_e(number(total.received))} hồ sơ đã đồng bộ</p>
{verdict}
</article>"""
        )
    return (
        '<section id="units"><h2>Tổng quan theo đơn vị '
        '<span class="en">(per unit)</span></h2>'
        f'<div class="cards">{"".join(cards)}</div></section>'
    )


def _rate_colour(rate: float | None) -> str:
    if rate is None:
        return "#555"
    if rate >= 1.0:
        return COLOURS["synced"]
    return "#8d4b00" if rate >= 0.9 else COLOURS["dead"]


# --- progress: chart and table -------------------------------------------------------------

# The four states that add up to the received, in the bars' order (Figures' field names).
_SEGMENTS = ("synced", "pending", "quarantined", "dead")


def _segments(figures: Figures) -> list[tuple[str, int]]:
    return [(state, int(getattr(figures, state))) for state in _SEGMENTS]


def chart(found: Overview) -> str:
    """Horizontal bars, one per unit and one per agency under it: the received dossiers
    split by state, so the green part is the progress toward 100 % and the other
    colours are what still stands in its way."""
    rows: list[tuple[str, Figures, bool]] = []
    for unit in found.units:
        rows.append((unit.unit, unit.sync.total, True))
        rows.extend(
            (agency, figures, False) for agency, figures in sorted(unit.sync.agencies.items())
        )
    label_w, bar_w, value_w, row_h, top = 150, 620, 80, 26, 28
    width = label_w + bar_w + value_w
    height = top + row_h * max(1, len(rows)) + 8
    parts = [
        f'<svg id="progress-chart" role="img" aria-labelledby="chart-title" '
        f'viewBox="0 0 {width} {height}" width="100%" preserveAspectRatio="xMinYMin meet" '
        f'xmlns="http://www.w3.org/2000/svg" font-family="system-ui, sans-serif" font-size="13">',
        '<title id="chart-title">Tỷ lệ đồng bộ theo đơn vị và cơ quan, '
        f"{_e(month_label(found.period).lower())}</title>",
    ]
    for tick in (0, 25, 50, 75, 100):
        x = label_w + bar_w * tick / 100
        parts.append(
            f'<line x1="{x:g}" y1="{top - 6}" x2="{x:g}" y2="{height - 4}" '
            f'stroke="{"#333" if tick == 100 else "#ddd"}" '
            f'stroke-dasharray="{"4 3" if tick == 100 else "0"}"/>'
            f'<text x="{x:g}" y="{top - 10}" text-anchor="middle" fill="#555">{tick}%</text>'
        )
    if not rows:
        parts.append(
            f'<text x="{label_w}" y="{top + 18}" fill="#555">Chưa có số liệu (no data)</text>'
        )
    for index, (code, figures, is_unit) in enumerate(rows):
        y = top + index * row_h
        indent = 0 if is_unit else 14
        weight = "bold" if is_unit else "normal"
        parts.append(
            f'<g class="bar" data-code="{_e(code)}">'
            f'<text x="{indent + 2}" y="{y + 17}" font-weight="{weight}">{_e(code)}</text>'
        )
        bar_h = 18 if is_unit else 14
        bar_y = y + (row_h - bar_h) / 2
        if figures.received == 0:
            parts.append(
                f'<rect x="{label_w}" y="{bar_y:g}" width="{bar_w}" height="{bar_h}" '
                f'fill="{COLOURS["empty"]}"><title>{_e(code)}: chưa có hồ sơ</title></rect>'
            )
        else:
            x = float(label_w)
            for state, count in _segments(figures):
                if not count:
                    continue
                w = bar_w * count / figures.received
                parts.append(
                    f'<rect x="{x:.2f}" y="{bar_y:g}" width="{w:.2f}" height="{bar_h}" '
                    f'fill="{COLOURS[state]}"><title>{_e(code)}: {_e(STATE_LABELS[state])} '
                    f"{_e(number(count))}/{_e(number(figures.received))}</title></rect>"
                )
                x += w
        parts.append(
            f'<text x="{label_w + bar_w + 8}" y="{y + 17}" font-weight="{weight}">'
            f"{_e(percent(figures.rate))}</text></g>"
        )
    parts.append("</svg>")
    return "".join(parts)


def _legend() -> str:
    items = "".join(
        f'<li><span class="swatch" style="background:{COLOURS[state]}"></span>'
        f"{_e(STATE_LABELS[state])}</li>"
        for state in _SEGMENTS
    )
    return f'<ul class="legend">{items}</ul>'


def _figures_row(code: str, name: str, figures: Figures, now: datetime, *, unit: bool) -> str:
    pending = number(figures.pending)
    if figures.acknowledged:
        pending += ' <small title="Cổng đã nhận, chờ đối soát (acknowledged)">' + (
            f"({_e(number(figures.acknowledged))} chờ đối soát)</small>"
        )
    cls = ' class="unit-row"' if unit else ""
    return (
        f'<tr{cls}><th scope="row">{_e(code)}</th><td>{_e(name)}</td>'
        f'<td class="num">{_e(number(figures.received))}</td>'
        f'<td class="num">{_e(number(figures.synced))}</td>'
        f'<td class="num">{pending}</td>'
        f'<td class="num">{_e(number(figures.quarantined))}</td>'
        f'<td class="num">{_e(number(figures.dead))}</td>'
        f'<td class="num rate-cell">{_e(percent(figures.rate))}</td>'
        f'<td class="num">{_e(age(figures.oldest_pending_since, now))}</td></tr>'
    )


def _progress(found: Overview) -> str:
    rows = []
    for unit in found.units:
        rows.append(
            _figures_row(
                unit.unit, _unit_name(found, unit.unit), unit.sync.total, found.now, unit=True
            )
        )
        rows.extend(
            _figures_row(agency, found.names.get(agency, ""), figures, found.now, unit=False)
            for agency, figures in sorted(unit.sync.agencies.items())
        )
    never = [(u.unit, u.sync.never_stored) for u in found.units if u.sync.never_stored]
    note = ""
    if never:
        listed = ", ".join(f"{_e(code)}: {_e(number(count))}" for code, count in never)
        note = (
            '<p class="note">Hồ sơ bị cách ly chưa từng lưu được (không rõ ngày tiếp nhận, nên '
            f'không tính vào tháng nào) <span class="en">(never stored)</span>: {listed}.</p>'
        )
    return f"""<section id="progress">
<h2>Tiến độ đồng bộ {_e(month_label(found.period).lower())}
<span class="en">(progress toward 100%)</span></h2>
<p>Hồ sơ tiếp nhận trong tháng, theo tình trạng đồng bộ. Phần màu xanh lá là phần đã đồng
bộ; mục tiêu là 100%.</p>
{_legend()}
<div class="chart">{chart(found)}</div>
<div class="table-wrap"><table>
<caption>Số hồ sơ theo đơn vị và cơ quan <span class="en">(per unit and agency)</span></caption>
<thead><tr><th scope="col">Mã</th><th scope="col">Tên</th>
<th scope="col" class="num">Tiếp nhận<br><span class="en">received</span></th>
<th scope="col" class="num">Đã đồng bộ<br><span class="en">synced</span></th>
<th scope="col" class="num">Đang chờ<br><span class="en">pending</span></th>
<th scope="col" class="num">Cách ly<br><span class="en">quarantined</span></th>
<th scope="col" class="num">Gửi lỗi<br><span class="en">dead</span></th>
<th scope="col" class="num">Tỷ lệ<br><span class="en">sync rate</span></th>
<th scope="col" class="num">Chờ lâu nhất<br><span class="en">oldest pending</span></th>
</tr></thead>
<tbody>{"".join(rows)}</tbody>
</table></div>
{note}
</section>"""


# --- the 766 indicators ----------------------------------------------------------------


def _indicator_cell(value: IndicatorValue) -> str:
    if value.value is None or value.points is None:
        reason = value.reason or ""
        return (
            f'<td class="num null" title="{_e(reason)}">—<br>'
            f"<small>{_e(NULL_REASONS.get(reason, reason))}</small></td>"
        )
    return (
        f'<td class="num" title="{_e(number(value.numerator))}/'
        f'{_e(number(value.denominator))}">{_e(percent(value.value))}<br>'
        f"<small>{_e(decimal(value.points))} đ</small></td>"
    )


def _report_row(code: str, report: AgencyReport, *, unit: bool) -> str:
    cls = ' class="unit-row"' if unit else ""
    cells = "".join(_indicator_cell(v) for v in report.indicators)
    return (
        f'<tr{cls}><th scope="row">{_e(code)}</th>'
        f'<td class="num">{_e(number(report.counts.get("received", 0)))}</td>{cells}'
        f'<td class="num points">{_e(decimal(report.points))} / {_e(report.max_points)}</td></tr>'
    )


def _unit_indicators(found: Overview, unit: UnitOverview) -> str:
    report = unit.report
    heads = "".join(
        f'<th scope="col" class="num">{_e(v.id)} {_e(INDICATOR_NAMES.get(v.id, v.name))}<br>'
        f'<span class="en">{_e(v.name)}, {_e(INDICATOR_BY_ID[v.id].max_points)} đ</span></th>'
        for v in report.total.indicators
    )
    # Codes only: the names are in the progress table above, and seven indicators
    # already make a wide table.
    rows = [_report_row(unit.unit, report.total, unit=True)]
    rows.extend(_report_row(a.agency, a, unit=False) for a in report.agencies)
    return f"""<div class="table-wrap"><table class="indicators" data-unit="{_e(unit.unit)}">
<caption>{_e(unit.unit)} {_e(_unit_name(found, unit.unit))}</caption>
<thead><tr><th scope="col">Mã</th>
<th scope="col" class="num">Tiếp nhận<br><span class="en">received</span></th>{heads}
<th scope="col" class="num">Tổng điểm<br><span class="en">points</span></th></tr></thead>
<tbody>{"".join(rows)}</tbody>
</table></div>"""


def _indicators(found: Overview) -> str:
    tables = "".join(_unit_indicators(found, unit) for unit in found.units)
    return f"""<section id="indicators-766">
<h2>Chỉ số 766 {_e(month_label(found.period).lower())}
<span class="en">(Decision 766/QĐ-TTg indicators)</span></h2>
<p>Các chỉ số tính được từ hồ sơ dịch vụ đồng bộ (tối đa 56 trên 100 điểm); mỗi ô là giá trị
và số điểm. "—": không tính được vì mẫu số bằng 0 (không phải 0 điểm). Chỉ số 1.4 theo
công thức 766 (không tính hồ sơ trạng thái 1, 3; mẫu số là số lớn hơn giữa nguồn và Cổng)
nên có thể khác tỷ lệ đồng bộ ở trên.
<span class="en">Value and points per indicator; "—": not computable (denominator 0).</span></p>
{tables}
</section>"""


# --- backlog, quarantine, dead letters, sources --------------------------------------------


def _backlog(found: Overview) -> str:
    rows = "".join(
        f'<tr><th scope="row">{_e(u.unit)}</th>'
        f'<td class="num">{_e(number(u.backlog.pending))}</td>'
        f'<td class="num">{_e(number(u.backlog.acknowledged))}</td>'
        f'<td class="num">{_e(number(u.backlog.dead))}</td>'
        f'<td class="num">{_e(age(u.backlog.oldest_pending_since, found.now))}</td></tr>'
        for u in found.units
    )
    return f"""<section id="backlog">
<h2>Tồn đọng hiện tại <span class="en">(backlog now, all months)</span></h2>
<div class="table-wrap"><table>
<thead><tr><th scope="col">Đơn vị</th>
<th scope="col" class="num">Chờ gửi lên Cổng<br><span class="en">to push</span></th>
<th scope="col" class="num">Cổng đã nhận, chờ đối soát<br>
<span class="en">awaiting read-back</span></th>
<th scope="col" class="num">Gửi lỗi, chờ xử lý<br><span class="en">dead</span></th>
<th scope="col" class="num">Thay đổi chờ lâu nhất<br><span class="en">oldest pending</span></th>
</tr></thead>
<tbody>{rows}</tbody>
</table></div>
</section>"""


def _reason_text(code: str) -> str:
    return REASONS.get(code, "Lý do khác (other reason)")


def _quarantine(found: Overview) -> str:
    rows = []
    groups: list[tuple[str, dict[str, int]]] = [(u.unit, u.quarantine) for u in found.units]
    if found.unassigned_quarantine:
        groups.append(("(không rõ đơn vị / unknown unit)", found.unassigned_quarantine))
    for unit, reasons in groups:
        for code, count in sorted(reasons.items(), key=lambda item: (-item[1], item[0])):
            rows.append(
                f'<tr><th scope="row">{_e(unit)}</th><td><code>{_e(code)}</code></td>'
                f'<td>{_e(_reason_text(code))}</td><td class="num">{_e(number(count))}</td></tr>'
            )
    if not rows:
        body = '<p class="empty">Không có bản ghi nào bị cách ly. (Nothing in quarantine.)</p>'
    else:
        body = (
            '<div class="table-wrap"><table><thead><tr><th scope="col">Đơn vị</th>'
            '<th scope="col">Mã lý do</th><th scope="col">Lý do <span class="en">(reason)</span>'
            '</th><th scope="col" class="num">Số bản ghi</th></tr></thead>'
            f"<tbody>{''.join(rows)}</tbody></table></div>"
        )
    return f"""<section id="quarantine">
<h2>Cách ly dữ liệu <span class="en">(quarantine)</span></h2>
<p>Bản ghi từ hệ thống nguồn không thể thành bản ghi hợp lệ của Cổng. Chúng được giữ lại
và tự xử lý lại khi nguồn sửa dữ liệu hoặc khi bảng ánh xạ được cập nhật.
<span class="en">Records that cannot become valid portal records; kept until fixed.</span></p>
{body}
</section>"""


def _error_meaning(code: int | None) -> str:
    if code is None:
        return NO_ANSWER
    return ERROR_MEANINGS.get(code, "Mã lỗi khác của Cổng (other portal error)")


def _dead_letters(found: Overview) -> str:
    rows = []
    for unit in found.units:
        for code, count in sorted(
            unit.dead_letters.items(), key=lambda item: (-item[1], item[0] or 0)
        ):
            shown = "—" if code is None else str(code)
            rows.append(
                f'<tr><th scope="row">{_e(unit.unit)}</th><td class="num">{_e(shown)}</td>'
                f"<td>{_e(_error_meaning(code))}</td>"
                f'<td class="num">{_e(number(count))}</td></tr>'
            )
    if not rows:
        body = '<p class="empty">Không có hồ sơ gửi lỗi. (No dead letters.)</p>'
    else:
        body = (
            '<div class="table-wrap"><table><thead><tr><th scope="col">Đơn vị</th>'
            '<th scope="col" class="num">Mã lỗi Cổng</th><th scope="col">Ý nghĩa '
            '<span class="en">(reason)</span></th><th scope="col" class="num">Số hồ sơ</th>'
            f"</tr></thead><tbody>{''.join(rows)}</tbody></table></div>"
        )
    return f"""<section id="dead-letters">
<h2>Hồ sơ gửi lỗi <span class="en">(dead letters)</span></h2>
<p>Hồ sơ đã ngừng gửi sau khi Cổng từ chối hoặc hết số lần thử; cần quản trị viên xử lý rồi
gửi lại (<code>redrive</code>). <span class="en">Given up until an operator redrives them.</span>
</p>
{body}
</section>"""


def _source_row(source: SourceHealth, now: datetime) -> str:
    if source.paused:
        state, cls = "Tạm dừng (paused)", "warn"
    elif source.consecutive_failures:
        state, cls = f"Lỗi {source.consecutive_failures} lần liên tiếp (failing)", "bad"
    elif source.last_success_at is None:
        state, cls = "Chưa đọc được lần nào (never polled)", "warn"
    else:
        state, cls = "Bình thường (ok)", "ok"
    since = source.last_success_at
    return (
        f'<tr><th scope="row">{_e(source.name)}</th><td>{_e(source.dialect)}</td>'
        f'<td class="{cls}">{_e(state)}</td><td>{_e(local_time(since))}</td>'
        f'<td class="num">{_e(age(since, now))}</td></tr>'
    )


def _sources(found: Overview) -> str:
    if not found.sources:
        body = '<p class="empty">Chưa có nguồn nào. (No sources yet.)</p>'
    else:
        rows = "".join(_source_row(s, found.now) for s in found.sources)
        body = (
            '<div class="table-wrap"><table><thead><tr><th scope="col">Nguồn</th>'
            '<th scope="col">Loại</th><th scope="col">Tình trạng</th>'
            '<th scope="col">Đọc thành công lần cuối</th>'
            '<th scope="col" class="num">Cách đây</th></tr></thead>'
            f"<tbody>{rows}</tbody></table></div>"
        )
    return f"""<section id="sources">
<h2>Nguồn dữ liệu <span class="en">(sources)</span></h2>
{body}
</section>"""


CSS = """
:root { color-scheme: light; }
* { box-sizing: border-box; }
body { font-family: system-ui, "Segoe UI", Roboto, "Noto Sans", Arial, sans-serif;
  margin: 0 auto; max-width: 1200px; padding: 1rem; color: #1a1a1a; background: #fff;
  line-height: 1.45; font-size: 16px; }
h1 { font-size: 1.5rem; margin: 0 0 .25rem; }
h2 { font-size: 1.2rem; margin: 2rem 0 .5rem; border-bottom: 2px solid #1565c0;
  padding-bottom: .25rem; }
h3 { margin: 0; font-size: 1.05rem; }
.en { color: #555; font-weight: normal; font-size: .9em; }
.meta { margin: .5rem 0; }
.period-form { display: flex; flex-wrap: wrap; gap: .5rem; align-items: center; }
.period-form input, .period-form button { font: inherit; padding: .25rem .5rem; }
.cards { display: grid; gap: .75rem; grid-template-columns: repeat(auto-fit, minmax(220px, 1fr)); }
.card { border: 1px solid #ccc; border-radius: 6px; padding: .75rem; }
.card p { margin: .25rem 0; }
.card .name { color: #444; min-height: 1.2em; }
.card .rate { font-size: 2.2rem; font-weight: bold; margin: .25rem 0; }
.verdict.done { color: #2e7d32; font-weight: bold; }
.legend { list-style: none; padding: 0; display: flex; flex-wrap: wrap; gap: 1rem; }
.swatch { display: inline-block; width: .9em; height: .9em; margin-right: .35em;
  vertical-align: -.1em; border-radius: 2px; }
.chart { width: 100%; overflow-x: auto; }
.chart svg { min-width: 560px; max-width: 100%; height: auto; }
.table-wrap { width: 100%; overflow-x: auto; }
table { border-collapse: collapse; width: 100%; margin: .5rem 0; }
caption { text-align: left; font-weight: bold; padding: .25rem 0; }
th, td { border: 1px solid #ccc; padding: .3rem .5rem; text-align: left; vertical-align: top; }
thead th { background: #eef3fb; }
tbody tr:nth-child(even) { background: #fafafa; }
.unit-row { background: #f1f6ee !important; font-weight: bold; }
.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
.indicators { font-size: .9rem; }
.indicators th.num, .indicators td.num { white-space: normal; }
.indicators td.points { white-space: nowrap; }
.null small { display: inline-block; max-width: 9rem; }
.points { font-weight: bold; }
.ok { color: #2e7d32; } .warn { color: #8d4b00; } .bad { color: #c62828; font-weight: bold; }
.empty, .note { color: #444; }
small { color: #555; }
footer { margin-top: 2rem; border-top: 1px solid #ccc; font-size: .9rem; color: #333; }
@media (max-width: 640px) {
  body { padding: .5rem; font-size: 15px; }
  h1 { font-size: 1.2rem; }
}
@media print {
  body { max-width: none; font-size: 10.5pt; padding: 0; }
  .period-form { display: none; }
  h2 { break-after: avoid; }
  section, tr, .card { break-inside: avoid; }
  .chart svg { min-width: 0; }
  a { color: inherit; text-decoration: none; }
}
"""
