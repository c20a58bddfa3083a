"""GET /api/v1/reports/766: the Decision 766 report per agency and for the unit, as JSON
and CSV, on both backends, with dossiers written by the pipeline's own store stage and
repositories. Every expected number is worked out by hand in the comments."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from app.domain.dates import VN_TZ, format_portal_datetime, parse_portal_datetime
from app.domain.indicators import NO_FEES, NO_RECEIVED, NO_RECEIVED_ANYWHERE, NO_RESULT
from app.domain.progress import ProgressRecord
from tests.api.conftest import H26, H29, Api
from tests.api.seeding import push_outcomes, source_id, step, store_dossiers
from tests.domain.factories import fee, result_document, submitted_document, supplement_request
from tests.factories import make_dossier

NOW = datetime.now(UTC)
A53, A54 = "000.00.53.H26", "000.00.54.H26"
LINK = "https://files.example.vn/kq"


def code(agency: str, number: int) -> str:
    return f"{agency}-2024-{number:05d}"


def at(text: str) -> datetime:
    return parse_portal_datetime(text)


def dossier(number: int, agency: str, status: str, received: str, due: str, **fields: Any) -> Any:
    """A dossier received (``NgayTiepNhan``) and due (``NgayHenTra``) at these local times;
    submitted online (the factory's ``KenhThucHien`` is 2) unless ``fields`` say otherwise."""
    return make_dossier(
        code(agency, number),
        status,
        NgayNopHoSo=received,
        NgayTiepNhan=received,
        NgayHenTra=due,
        **fields,
    )


D1, D2, D3, D4, D5, D7, D8 = (code(A53, n) for n in (1, 2, 3, 4, 5, 7, 8))
D9, D10, D11 = (code(A54, n) for n in (9, 10, 11))
OTHER_UNIT = "000.00.53.H29-2024-00012"

DOSSIERS = [
    # Agency 53 — the first second of May (local): result at 9 on May 10, due May 15:
    # on time and early; fees paid online, digitised, reused data, electronic result.
    dossier(
        1,
        A53,
        "10",
        "20240501000000",
        "20240515170000",
        NgayKetThucXuLy="20240510100000",
        NgayTra="20240511090000",
        DanhSachLePhi=[fee(Gia=50000)],
        DuocThanhToanTrucTuyen=1,
        HoSoCoThanhPhanSoHoa=1,
        TaiLieuNop=[submitted_document(DuocTaiSuDung=1)],
        DanhSachGiayToKetQua=[result_document(DuongDanTepTinKetQua=LINK)],
    ),
    # The last second of May, at the counter, still open: judged at the end of May, before
    # its due date of June 14 — on time (not early: it has not ended).
    dossier(2, A53, "4", "20240531235959", "20240614170000", KenhThucHien=1),
    # One second before May, and the first second of June: in neither report of May.
    dossier(3, A53, "4", "20240430235959", "20240514170000"),
    dossier(4, A53, "4", "20240601000000", "20240615170000"),
    # Refused at the counter (status 3): not received, counted in status_3 only.
    dossier(
        5,
        A53,
        "3",
        "20240510090000",
        "20240520170000",
        NgayTuChoi="20240510100000",
        NgayKetThucXuLy="20240510100000",
    ),
    # Due May 16 08:00; waited 3 days for the applicant's supplement (May 8 → 11), so due
    # May 19 08:00: the result on May 18 is on time (not early: after May 15 08:00).
    dossier(
        7,
        A53,
        "9",
        "20240506080000",
        "20240516080000",
        NgayKetThucXuLy="20240518080000",
        DanhSachHoSoBoSung=[
            supplement_request(NgayBoSung="20240508080000", NgayTiepNhanBoSung="20240511080000")
        ],
    ),
    # Two supplement requests: late although its result came long before the due date.
    dossier(
        8,
        A53,
        "9",
        "20240507080000",
        "20240520170000",
        NgayKetThucXuLy="20240509080000",
        DanhSachLePhi=[fee(Gia=20000)],
        DuocThanhToanTrucTuyen=0,
        DanhSachHoSoBoSung=[
            supplement_request(NgayBoSung="20240507090000", NgayTiepNhanBoSung="20240507100000"),
            supplement_request(
                HoSoBoSungId="bs-2", NgayBoSung="20240508090000", NgayTiepNhanBoSung=None
            ),
        ],
        DanhSachGiayToKetQua=[result_document(DuongDanTepTinKetQua=LINK)],
    ),
    # Agency 54 — open and past its due date of May 12 at the end of May: late.
    dossier(9, A54, "4", "20240502080000", "20240512170000"),
    # Received in March (late: due March 24), its result (electronic) on May 3: in May's
    # 6.1 only.
    dossier(
        10,
        A54,
        "10",
        "20240310080000",
        "20240324170000",
        NgayKetThucXuLy="20240503080000",
        NgayTra="20240503090000",
        DanhSachGiayToKetQua=[result_document(DuongDanTepTinKetQua=LINK)],
    ),
    # Another unit's dossier of May: in no report of H26.
    make_dossier(
        OTHER_UNIT,
        "4",
        NgayNopHoSo="20240505080000",
        NgayTiepNhan="20240505080000",
        NgayHenTra="20240510080000",
    ),
]
# D11: received May 4 and synced at status 2; its source then refused it (status 3),
# not yet pushed. The portal still holds it as received: received_portal, not received.
D11_AT_2 = dossier(11, A54, "2", "20240504080000", "20240514170000")
D11_AT_3 = dossier(
    11,
    A54,
    "3",
    "20240504080000",
    "20240514170000",
    NgayTuChoi="20240505080000",
    NgayKetThucXuLy="20240505080000",
)
PROGRESS: list[ProgressRecord] = [
    step(D1, at("20240510100000"), "9"),
    step(D7, at("20240518080000"), "9"),
    step(D8, at("20240509080000"), "9"),
    step(D10, at("20240503080000"), "9"),
]


async def _seed(api: Api) -> None:
    source = await source_id(api.sessions, "h26-opencps", NOW)
    read_at = NOW - timedelta(hours=2)
    await store_dossiers(api.sessions, source, [*DOSSIERS, D11_AT_2], read_at, PROGRESS)
    await push_outcomes(
        api.sessions,
        {D1: "synced", D7: "acked", D8: "dead", D9: "synced", D10: "synced", D11: "synced"},
        NOW - timedelta(hours=1),
    )
    await store_dossiers(api.sessions, source, [D11_AT_3], NOW - timedelta(minutes=30))


async def _report(api: Api, key: str, **params: str) -> Any:
    query = {"unit": H26, "period": "2024-05"} | params
    return await api.client.get("/api/v1/reports/766", params=query, headers=api.auth(key))


def _values(report: dict[str, Any]) -> dict[str, tuple[Any, ...]]:
    return {
        i["id"]: (i["value"], i["points"], i["numerator"], i["denominator"])
        for i in report["indicators"]
    }


def _agencies(body: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {a["agency"]: a for a in body["agencies"]}


def _approx(expected: dict[str, tuple[Any, ...]]) -> dict[str, tuple[Any, ...]]:
    return {
        k: tuple(pytest.approx(x) if isinstance(x, float) else x for x in v)
        for k, v in expected.items()
    }


async def test_may_report_per_agency_and_for_the_unit(api: Api) -> None:
    await _seed(api)
    answer = await _report(api, await api.key(H26, ["read"]))
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert (body["unit"], body["agency"], body["period"], body["kind"]) == (
        H26,
        None,
        "2024-05",
        "month",
    )
    # Vietnamese midnight of May 1 and of June 1, in UTC.
    assert (body["since"], body["until"]) == ("2024-04-30T17:00:00Z", "2024-05-31T17:00:00Z")
    assert body["max_points"] == 56
    agencies = _agencies(body)
    assert list(agencies) == [A53, A54]

    # Agency 53: received D1 D2 D7 D8 (not D3, D4: other months; not D5: status 3).
    # On time D1 D2 D7; early D1; late D8 (two requests); open D2.
    a53 = agencies[A53]
    assert {k: a53["counts"][k] for k in ("received", "on_time", "early", "late", "open")} == {
        "received": 4,
        "on_time": 3,
        "early": 1,
        "late": 1,
        "open": 1,
    }
    # By latest status, of those with NgayTiepNhan in May: D1 10, D2 4, D5 3, D7 9, D8 9.
    assert {k: v for k, v in a53["counts"].items() if k.startswith("status_") and v} == {
        "status_10": 1,
        "status_4": 1,
        "status_3": 1,
        "status_9": 2,
    }
    assert _values(a53) == _approx(
        {
            # Synced D1 of 4 received; the portal holds D1 only (D7 is acknowledged,
            # not read back): 1 / max(4, 1) → 6 × 0.25.
            "1.4": (0.25, 1.5, 1, 4),
            "2.1": (0.75, 15.0, 3, 4),
            # Online D1 D7 D8 of 4 = 0.75, × 0.25 = 0.1875; 12 × min(1, 0.1875 / 0.5).
            "3.3": (0.1875, 4.5, 3, 4),
            # With fees D1 (paid online) and D8 (not): 1 / 2 → 6 × 0.5.
            "4.1": (0.5, 3.0, 1, 2),
            # Results in May: D1 (May 10), D7, D8 (May 9); electronic D1, D8:
            # 2/3, 6 × min(1, (2/3) / 0.8) = 5.
            "6.1": (2 / 3, 5.0, 2, 3),
            # D1 only: 0.25 → 4 × 0.3125 and 2 × 0.3125.
            "6.2": (0.25, 1.25, 1, 4),
            "6.4": (0.25, 0.625, 1, 4),
        }
    )
    assert a53["groups"] == {
        "transparency": pytest.approx(1.5),
        "progress": pytest.approx(15.0),
        "online_service": pytest.approx(4.5),
        "online_payment": pytest.approx(3.0),
        "digitisation": pytest.approx(5.0 + 1.25 + 0.625),
        "satisfaction": None,
    }
    assert a53["points"] == pytest.approx(30.875)
    assert a53["overdue_rate"] == pytest.approx(0.25)

    # Agency 54: received D9 only (late and open); D10 is March's; D11 is status 3 at the
    # source but the portal holds it at status 2: 1.4 = 1 / max(1, 2).
    a54 = agencies[A54]
    assert (a54["counts"]["received"], a54["counts"]["received_portal"]) == (1, 2)
    assert (a54["counts"]["late"], a54["counts"]["open"], a54["counts"]["on_time"]) == (1, 1, 0)
    assert _values(a54) == _approx(
        {
            "1.4": (0.5, 3.0, 1, 2),
            "2.1": (0.0, 0.0, 0, 1),
            # Online 1/1, × 0.5 = 0.5: full marks from 0.5.
            "3.3": (0.5, 12.0, 1, 1),
            "4.1": (None, None, 0, 0),
            # D10's result, electronic, came on May 3.
            "6.1": (1.0, 6.0, 1, 1),
            "6.2": (0.0, 0.0, 0, 1),
            "6.4": (0.0, 0.0, 0, 1),
        }
    )
    assert a54["indicators"][3]["reason"] == NO_FEES
    assert a54["groups"]["online_payment"] is None and a54["groups"]["progress"] == 0.0
    assert a54["points"] == pytest.approx(21.0)
    assert a54["overdue_rate"] == 1.0

    # The unit over all five received at once (not an average of the agencies): synced
    # D1 D9, held by the portal D1 D9 D11 → 2 / max(5, 3) = 0.4; on time 3/5; online
    # D1 D7 D8 D9 = 0.8 × 0.4 = 0.32 → 12 × 0.64; fees 1/2; results D1 D7 D8 D10 with
    # links D1 D8 D10 = 0.75 → 6 × 0.9375; 6.2 and 6.4 1/5 → 4 × 0.25 and 2 × 0.25.
    total = body["total"]
    assert total["agency"] == H26
    assert _values(total) == _approx(
        {
            "1.4": (0.4, 2.4, 2, 5),
            "2.1": (0.6, 12.0, 3, 5),
            "3.3": (0.32, 7.68, 4, 5),
            "4.1": (0.5, 3.0, 1, 2),
            "6.1": (0.75, 5.625, 3, 4),
            "6.2": (0.2, 1.0, 1, 5),
            "6.4": (0.2, 0.5, 1, 5),
        }
    )
    assert total["points"] == pytest.approx(2.4 + 12 + 7.68 + 3 + 5.625 + 1 + 0.5)
    assert {k: total["counts"][k] for k in ("received", "on_time", "early", "late", "open")} == {
        "received": 5,
        "on_time": 3,
        "early": 1,
        "late": 2,
        "open": 2,
    }
    assert total["overdue_rate"] == pytest.approx(0.4)
    assert [i["max_points"] for i in total["indicators"]] == [6, 20, 12, 6, 6, 4, 2]


async def test_quarter_and_year_judge_open_dossiers_at_their_own_end(api: Api) -> None:
    await _seed(api)
    key = await api.key(H26, ["read"])
    body = (await _report(api, key, period="2024-Q2")).json()
    assert (body["period"], body["kind"]) == ("2024-Q2", "quarter")
    assert (body["since"], body["until"]) == ("2024-03-31T17:00:00Z", "2024-06-30T17:00:00Z")
    # April to June: agency 53 received D1 D2 D3 D4 D7 D8. The open D2 (due June 14) and
    # D4 (due June 15) are now judged on July 1: late, like D3 and D8.
    a53 = _agencies(body)[A53]
    assert _values(a53)["2.1"] == (pytest.approx(2 / 6), pytest.approx(20 * 2 / 6), 2, 6)
    assert (a53["counts"]["late"], a53["counts"]["open"]) == (4, 3)
    assert body["total"]["counts"]["received"] == 7

    year = (await _report(api, key, period="2024")).json()
    assert (year["period"], year["kind"]) == ("2024", "year")
    assert (year["since"], year["until"]) == ("2023-12-31T17:00:00Z", "2024-12-31T17:00:00Z")
    # The year adds D10 (March, late) to agency 54: D9 D10, none on time.
    a54 = _agencies(year)[A54]
    assert _values(a54)["2.1"] == (0.0, 0.0, 0, 2)
    assert _values(year["total"])["2.1"] == (pytest.approx(2 / 8), pytest.approx(5.0), 2, 8)
    assert _values(year["total"])["6.1"] == (pytest.approx(0.75), pytest.approx(5.625), 3, 4)


async def test_april_and_june_hold_the_dossiers_of_the_seconds_around_may(api: Api) -> None:
    await _seed(api)
    key = await api.key(H26, ["read"])
    april = (await _report(api, key, period="2024-04")).json()
    june = (await _report(api, key, period="2024-06")).json()
    assert april["total"]["counts"]["received"] == 1  # D3, 23:59:59 on April 30
    assert june["total"]["counts"]["received"] == 1  # D4, 00:00:00 on June 1
    assert [a["agency"] for a in april["agencies"]] == [A53]


async def test_an_empty_period_is_null_with_reasons_never_zero(api: Api) -> None:
    await _seed(api)
    body = (await _report(api, await api.key(H26, ["read"]), period="2023-11")).json()
    assert body["agencies"] == []
    total = body["total"]
    reasons = {i["id"]: (i["value"], i["points"], i["reason"]) for i in total["indicators"]}
    assert reasons == {
        "1.4": (None, None, NO_RECEIVED_ANYWHERE),
        "2.1": (None, None, NO_RECEIVED),
        "3.3": (None, None, NO_RECEIVED),
        "4.1": (None, None, NO_FEES),
        "6.1": (None, None, NO_RESULT),
        "6.2": (None, None, NO_RECEIVED),
        "6.4": (None, None, NO_RECEIVED),
    }
    assert total["points"] == 0 and total["overdue_rate"] is None
    assert set(total["groups"].values()) == {None}


async def test_the_default_period_is_the_current_month(api: Api) -> None:
    today = datetime.now(VN_TZ)
    received = format_portal_datetime(today.replace(hour=0, minute=0, second=1))
    due = format_portal_datetime(today + timedelta(days=30))
    source = await source_id(api.sessions, "h26-opencps", NOW)
    await store_dossiers(
        api.sessions,
        source,
        [make_dossier(code(A53, 1), "4", NgayTiepNhan=received, NgayHenTra=due)],
        NOW,
    )
    answer = await api.client.get(
        "/api/v1/reports/766", params={"unit": H26}, headers=api.auth(await api.key(H26, ["read"]))
    )
    body = answer.json()
    assert body["period"] == today.strftime("%Y-%m")
    # Open and not yet due: on time as of now (judged now, the month not being over).
    assert _values(body["total"])["2.1"] == (1.0, 20.0, 1, 1)
    assert _values(body["total"])["1.4"] == (0.0, 0.0, 0, 1)


async def test_csv_has_a_row_per_agency_per_indicator_and_the_unit_total(api: Api) -> None:
    await _seed(api)
    answer = await _report(api, await api.key(H26, ["read"]), format="csv")
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"] == "text/csv; charset=utf-8"
    assert answer.headers["content-disposition"] == (
        f'attachment; filename="766-{H26}-2024-05.csv"'
    )
    rows = list(csv.DictReader(io.StringIO(answer.text)))
    assert list(rows[0]) == [
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
    ]
    assert len(rows) == 3 * 7
    assert [(r["level"], r["agency"]) for r in rows[::7]] == [
        ("agency", A53),
        ("agency", A54),
        ("unit", ""),
    ]
    assert {r["unit"] for r in rows} == {H26} and {r["period"] for r in rows} == {"2024-05"}
    by_key = {(r["agency"], r["indicator"]): r for r in rows}
    payment = by_key[(A54, "4.1")]
    assert (payment["value"], payment["points"], payment["reason"]) == ("", "", NO_FEES)
    sync = by_key[("", "1.4")]
    assert sync["name"] == "dossier_sync"
    assert float(sync["value"]) == 0.4
    assert float(sync["points"]) == pytest.approx(2.4)
    assert (sync["max_points"], sync["numerator"], sync["denominator"], sync["reason"]) == (
        "6",
        "2",
        "5",
        "",
    )
    # The same numbers as the JSON answer.
    body = (await _report(api, await api.key(H26, ["read"]))).json()
    for agency in body["agencies"]:
        for indicator in agency["indicators"]:
            row = by_key[(agency["agency"], indicator["id"])]
            value = None if row["value"] == "" else float(row["value"])
            assert value == indicator["value"]


async def test_an_agency_key_gets_its_agency_only(api: Api) -> None:
    await _seed(api)
    body = (await _report(api, await api.key(H26, ["read"], agency=A54))).json()
    assert body["agency"] == A54
    assert [a["agency"] for a in body["agencies"]] == [A54]
    # The total is the agency's own figures.
    assert _values(body["total"]) == _values(body["agencies"][0])
    assert body["total"]["counts"]["received"] == 1
    rows = list(
        csv.DictReader(
            io.StringIO(
                (await _report(api, await api.key(H26, ["read"], agency=A54), format="csv")).text
            )
        )
    )
    assert {r["agency"] for r in rows} == {A54, ""}
    # An agency without dossiers in the period still gets its (null) entry.
    empty = (await _report(api, await api.key(H26, ["read"], agency="000.00.60.H26"))).json()
    assert [a["agency"] for a in empty["agencies"]] == ["000.00.60.H26"]
    assert empty["agencies"][0]["indicators"][1]["reason"] == NO_RECEIVED


async def test_another_units_report_is_refused(api: Api) -> None:
    await _seed(api)
    for key in (await api.key(H29, ["read"]), await api.key(H29, ["read"], agency="000.00.53.H29")):
        refused = await _report(api, key)
        assert refused.status_code == 403 and refused.json()["error"]["code"] == "forbidden"
    own = (await _report(api, await api.key(H29, ["read"]), unit=H29)).json()
    assert own["total"]["counts"]["received"] == 1


async def test_the_report_needs_a_known_key_with_the_read_scope(api: Api) -> None:
    path, query = "/api/v1/reports/766", {"unit": H26, "period": "2024-05"}
    missing = await api.client.get(path, params=query)
    assert missing.status_code == 401 and missing.json()["error"]["code"] == "unauthorized"
    unknown = await api.client.get(path, params=query, headers=api.auth("dsk_not-a-key"))
    assert unknown.status_code == 401
    for scopes in (["ingest"], ["admin"]):
        answer = await api.client.get(
            path, params=query, headers=api.auth(await api.key(H26, scopes))
        )
        assert answer.status_code == 403, scopes


@pytest.mark.parametrize(
    "period",
    [
        "2024-5",
        "2024-13",
        "2024-00",
        "2024-Q0",
        "2024-Q5",
        "2024-q2",
        "24",
        "May",
        "2024-05-01",
        "",
        "1899",
        "2100-Q1",
        "0000-01",
    ],
)
async def test_a_malformed_period_is_a_422_naming_it(api: Api, period: str) -> None:
    answer = await _report(api, await api.key(H26, ["read"]), period=period)
    assert answer.status_code == 422, answer.text
    error = answer.json()["error"]
    assert error["code"] == "validation_error"
    assert [d["field"] for d in error["details"]] == ["period"]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"unit": "000.00.53.H26"}, "unit"),
        ({"unit": "H26"}, "unit"),
        ({"format": "xml"}, "format"),
    ],
)
async def test_unit_and_format_are_validated(api: Api, params: dict[str, str], field: str) -> None:
    answer = await _report(api, await api.key(H26, ["read"]), **params)
    assert answer.status_code == 422
    assert [d["field"] for d in answer.json()["error"]["details"]] == [field]


async def test_a_missing_unit_is_a_422(api: Api) -> None:
    answer = await api.client.get(
        "/api/v1/reports/766", headers=api.auth(await api.key(H26, ["read"]))
    )
    assert answer.status_code == 422
    assert [d["field"] for d in answer.json()["error"]["details"]] == ["unit"]


async def test_the_report_reads_the_period_in_pages_and_tells_the_same(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The period's dossiers are read in keyset pages (a month can hold millions): pages
    of two — page borders inside each agency, history and quarantine per page — give the
    very report one page gives."""
    await _seed(api)
    key = await api.key(H26, ["read"])
    whole = (await _report(api, key)).json()
    monkeypatch.setattr("app.repositories.reports._BATCH", 2)
    paged = (await _report(api, key)).json()
    for body in (whole, paged):
        del body["as_of"]
    assert paged == whole
    assert whole["total"]["counts"]["received"] >= 5  # so that there are several pages
