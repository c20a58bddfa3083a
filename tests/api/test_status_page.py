"""``GET /status``: the HTML status page, on both backends, with data written by the
pipeline's own stages and repositories (store, push outcomes, quarantine, dead letters).

The page is read back with an HTML parser — tables per section, the chart's bars — so
the assertions are about what an officer sees, not about markup details."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta

import httpx

from app.api.app import create_app
from app.api.status_page import decimal, number, percent
from app.db import create_session_factory, transaction
from app.domain.dates import VN_TZ, format_portal_datetime
from app.domain.indicators import AgencyReport
from app.domain.periods import Period
from app.repositories.catalogue import CatalogueAgency, CatalogueRepository
from app.sync.reports import unit_report
from tests.api.conftest import G05, H26, H29, Api, api_settings
from tests.api.seeding import (
    Refused,
    push_outcomes,
    quarantine,
    received_dossier,
    source_id,
    store_dossiers,
)
from tests.api.status_html import StatusPage, read_status_page
from tests.conftest import IsolatedDatabase
from tests.factories import PERSONAL

NOW = datetime.now(UTC)
A53, A54 = "000.00.53.H26", "000.00.54.H26"
GREEN, BLUE, ORANGE, RED = "#2e7d32", "#1565c0", "#ef6c00", "#c62828"


def code(agency: str, number: int, day: str) -> str:
    return f"{agency}-{day}-{number:05d}"


# Received in May 2024 (Vietnamese time) unless said otherwise, and what the push did.
SYNCED_1, SYNCED_2 = code(A53, 1, "240501"), code(A53, 2, "240502")
ACKED = code(A53, 3, "240503")
DEAD = code(A53, 4, "240504")
SYNCED_3 = code(A54, 5, "240505")
FAILED = code(A54, 6, "240506")
REFUSED_LATER = code(A54, 7, "240507")  # stored and synced, then its newer record refused
NEVER_STORED = code(A53, 8, "240508")  # only ever refused
APRIL = code(A53, 9, "240430")  # not in May; still waiting
H29_SYNCED = code("000.00.53.H29", 10, "240510")
RECEIVED = {
    SYNCED_1: "20240501000000",  # the first second of May
    SYNCED_2: "20240502080000",
    ACKED: "20240503080000",
    DEAD: "20240504080000",
    SYNCED_3: "20240505080000",
    FAILED: "20240506080000",
    REFUSED_LATER: "20240507080000",
    APRIL: "20240430235959",  # the last second of April
    H29_SYNCED: "20240510080000",
}
EVERY_CODE = (*RECEIVED, NEVER_STORED)
DEAD_REASON = "MaTTHC: unknown"  # the portal's message, as push_outcomes records it
QUARANTINE_REASON = Refused(None).reason  # the normaliser's message


async def _may(api: Api) -> None:
    source = await source_id(api.sessions, "h26-opencps", NOW)
    read_at = NOW - timedelta(hours=2)
    await store_dossiers(
        api.sessions, source, [received_dossier(c, r) for c, r in RECEIVED.items()], read_at
    )
    await push_outcomes(
        api.sessions,
        {
            SYNCED_1: "synced",
            SYNCED_2: "synced",
            ACKED: "acked",
            DEAD: "dead",
            SYNCED_3: "synced",
            FAILED: "failed",
            REFUSED_LATER: "synced",
            H29_SYNCED: "synced",
        },
        NOW - timedelta(hours=1),
    )
    await quarantine(
        api.sessions,
        source,
        [
            Refused(REFUSED_LATER),
            Refused(NEVER_STORED, reason_code="unparsable_date", reason="NgayTiepNhan: 31/02"),
            Refused(None, reason_code="required", record_key="dossier:no-code"),
        ],
        NOW,
    )
    async with transaction(api.sessions) as session:
        await CatalogueRepository(session).replace_agencies(
            [
                CatalogueAgency(H26, "UBND tỉnh Thử nghiệm", "TINH"),
                CatalogueAgency(A53, "Sở <Tư pháp> & Hộ tịch", "TINH"),
            ],
            NOW,
        )


async def _page(api: Api, period: str | None = "2024-05") -> StatusPage:
    answer = await api.client.get("/status", params={} if period is None else {"period": period})
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"] == "text/html; charset=utf-8"
    return read_status_page(answer.text)


async def test_the_page_shows_each_units_progress_toward_100_percent(api: Api) -> None:
    await _may(api)
    page = await _page(api)  # no key: aggregates only, like /metrics

    assert "Tháng 05/2024" in page.title
    # H26 in May: 7 received (the April one and the never-stored one are not), 3 synced.
    # 3/7 = 42.857…%: rounded down, never up toward 100.
    progress = page.rows("progress")
    assert progress[H26] == [
        "UBND tỉnh Thử nghiệm",
        "7",
        "3",
        "2 (1 chờ đối soát)",
        "1",
        "1",
        "42,8%",
        progress[H26][-1],
    ]
    assert progress[H26][-1] != "—"  # the failed one still waits (read two hours ago)
    assert progress[A53][:7] == [
        "Sở <Tư pháp> & Hộ tịch",
        "4",
        "2",
        "1 (1 chờ đối soát)",
        "0",
        "1",
        "50,0%",
    ]
    assert progress[A54][1:7] == ["3", "1", "1", "1", "0", "33,3%"]
    assert progress[H29][1:7] == ["1", "1", "0", "0", "0", "100,0%"]
    assert progress[G05][1:7] == ["0", "0", "0", "0", "0", "—"]

    assert "42,8%" in page.cards[H26]
    assert "Còn 4 hồ sơ chưa đồng bộ" in page.cards[H26]
    assert "Đạt 100%" in page.cards[H29]
    assert "Chưa có hồ sơ" in page.cards[G05]
    assert "Hồ sơ bị cách ly chưa từng lưu được" in page.text
    assert f"{H26}: 1" in page.text  # the never-stored one, counted apart


async def test_the_chart_draws_each_bar_in_proportion(api: Api) -> None:
    await _may(api)
    page = await _page(api)
    assert set(page.bars) == {H26, A53, A54, H29, G05, "000.00.53.H29"}
    full = 620.0  # the bar's width at 100 %
    h26 = page.bars[H26]
    assert [fill for fill, _ in h26.segments] == [GREEN, BLUE, ORANGE, RED]
    widths = [width for _, width in h26.segments]
    assert widths == [
        round(full * 3 / 7, 2),
        round(full * 2 / 7, 2),
        round(full * 1 / 7, 2),
        round(full * 1 / 7, 2),
    ]
    assert h26.label == "42,8%"
    assert page.bars[H29].segments == [(GREEN, full)]
    assert page.bars[H29].label == "100,0%"
    assert [fill for fill, _ in page.bars[G05].segments] == ["#bdbdbd"]  # nothing received
    assert page.bars[G05].label == "—"


async def test_backlog_quarantine_and_dead_letters_with_their_reasons(api: Api) -> None:
    await _may(api)
    page = await _page(api)

    # The outbox now, whatever the month: the failed one and April's wait to be pushed.
    backlog = page.rows("backlog")
    assert backlog[H26][:3] == ["2", "1", "1"]
    assert backlog[H26][3] != "—"
    assert backlog[H29] == ["0", "0", "0", "—"]

    quarantined = page.tables["quarantine"]
    assert [quarantined[0][i] for i in (0, 1, 3)] == [H26, "unmapped_status", "1"]
    assert "ánh xạ" in quarantined[0][2]
    assert [quarantined[1][i] for i in (0, 1, 3)] == [H26, "unparsable_date", "1"]
    assert "Ngày giờ không đọc được" in quarantined[1][2]
    assert quarantined[2][0] == "(không rõ đơn vị / unknown unit)"
    assert quarantined[2][1:2] + quarantined[2][3:] == ["required", "1"]
    assert len(quarantined) == 3

    assert page.tables["dead-letters"] == [
        [H26, "-5", "Cổng từ chối: dữ liệu không hợp lệ (validation failed)", "1"]
    ]
    assert page.rows("sources")["h26-opencps"][0] == "opencps"


async def test_the_page_shows_no_dossier_code_no_message_and_no_personal_data(
    api: Api,
) -> None:
    await _may(api)
    answer = await api.client.get("/status", params={"period": "2024-05"})
    markup = answer.text
    for value in (*EVERY_CODE, DEAD_REASON, QUARANTINE_REASON, "31/02", *PERSONAL.values()):
        assert value not in markup, value
    # A name from the portal's catalogue is text, never markup.
    assert "Sở &lt;Tư pháp&gt; &amp; Hộ tịch" in markup
    assert "<Tư pháp>" not in markup


async def test_another_month_and_the_default_month(api: Api) -> None:
    await _may(api)
    april = await _page(api, "2024-04")
    assert april.rows("progress")[H26][1:3] == ["1", "0"]  # APRIL, still waiting
    assert "Tháng 04/2024" in april.title

    # Without a period: this month in Vietnamese time, with a dossier received today.
    source = await source_id(api.sessions, "h29-igate", NOW)
    today = NOW.astimezone(VN_TZ)
    fresh = f"000.00.53.H29-{today:%y%m%d}-00042"
    await store_dossiers(
        api.sessions, source, [received_dossier(fresh, format_portal_datetime(today))], NOW
    )
    await push_outcomes(api.sessions, {fresh: "synced"}, NOW)
    current = await _page(api, None)
    assert f"Tháng {today:%m/%Y}" in current.title
    assert current.rows("progress")[H29][1:7] == ["1", "1", "0", "0", "0", "100,0%"]
    # Everything of May stays in May.
    assert current.rows("progress")[H26][1] == "0"


async def test_an_empty_service_renders_a_page_with_nothing_to_show(api: Api) -> None:
    page = await _page(api)
    assert set(page.cards) == {H26, H29, G05}
    assert "Không có bản ghi nào bị cách ly" in page.text
    assert "Không có hồ sơ gửi lỗi" in page.text
    assert "Chưa có nguồn nào" in page.text


async def test_a_malformed_period_is_a_422_naming_it(api: Api) -> None:
    for period in ("2024-13", "May", "2024-5"):
        answer = await api.client.get("/status", params={"period": period})
        assert answer.status_code == 422, period
        assert [d["field"] for d in answer.json()["error"]["details"]] == ["period"]


async def test_the_766_indicators_are_the_reports_own(api: Api) -> None:
    await _may(api)
    page = await _page(api)
    rows = page.rows("indicators-766")
    # One anchor computed by hand: 1.4 for H26 is 3 synced of 7 received, 6 points × 3/7.
    assert rows[H26][1] == "42,8% 2,57 đ"
    # Every cell is what the 766 report (GET /api/v1/reports/766) says, for every unit.
    async with api.sessions() as session:
        reports = [
            await unit_report(session, unit=unit, period=Period(2024, 5), now=NOW)
            for unit in (H26, H29, G05)
        ]

    def cells(report: AgencyReport) -> list[str]:
        shown = [number(report.counts["received"])]
        for value in report.indicators:
            if value.value is None or value.points is None:
                assert rows[report.agency][len(shown)].startswith("— "), value
                shown.append(rows[report.agency][len(shown)])
            else:
                shown.append(f"{percent(value.value)} {decimal(value.points)} đ")
        return [*shown, f"{decimal(report.points)} / 56"]

    shown_rows = 0
    for report in reports:
        for agency_report in (report.total, *report.agencies):
            assert rows[agency_report.agency] == cells(agency_report), agency_report.agency
            shown_rows += 1
    assert shown_rows == len(rows) == 6  # H26 and its two agencies, H29 and one, G05
    # Nothing received: no value, and the reason instead of a 0.
    assert rows[G05][1] == "— không có hồ sơ tiếp nhận trong kỳ (cả nguồn và Cổng)"
    assert rows[G05][-1] == "0,00 / 56"


@asynccontextmanager
async def client_with(
    database: IsolatedDatabase, refresh_interval_s: float
) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(
        api_settings(database.url), database=database.engine, refresh_interval_s=refresh_interval_s
    )
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://service") as client:
            yield client


async def test_a_page_is_read_once_per_refresh_interval(
    migrated_database: IsolatedDatabase,
) -> None:
    """Anyone may load the page: a burst of loads reads the database once."""
    sessions = create_session_factory(migrated_database.engine)
    source = await source_id(sessions, "h29-igate", NOW)
    first, second = code("000.00.53.H29", 1, "240510"), code("000.00.53.H29", 2, "240511")

    async def h29_received(client: httpx.AsyncClient, period: str = "2024-05") -> tuple[str, str]:
        page = read_status_page((await client.get("/status", params={"period": period})).text)
        return page.rows("progress")[H29][1], page.text

    await store_dossiers(sessions, source, [received_dossier(first, "20240510080000")], NOW)
    async with client_with(migrated_database, refresh_interval_s=3600) as client:
        before, before_text = await h29_received(client)
        await store_dossiers(sessions, source, [received_dossier(second, "20240511080000")], NOW)
        after, after_text = await h29_received(client)
        assert (before, after) == ("1", "1")
        assert after_text == before_text  # the same reading, "as of" time included
        assert (await h29_received(client, "2024-04"))[0] == "0"  # another month, another page
    async with client_with(migrated_database, refresh_interval_s=0) as client:
        assert (await h29_received(client))[0] == "2"
