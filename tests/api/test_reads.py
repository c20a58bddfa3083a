"""The read API (scope `read`): a dossier and its sync state, a unit's sync figures —
on both backends, with data written by the pipeline's own stages and repositories."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from app.domain.dates import VN_TZ, format_portal_datetime
from app.metrics import Metrics
from tests.api.conftest import H26, H29, Api
from tests.api.seeding import (
    Refused,
    push_outcomes,
    quarantine,
    received_dossier,
    source_id,
    step,
    store_dossiers,
)
from tests.service.exposition import by, samples

A53, A54 = "000.00.53.H26", "000.00.54.H26"


def code(agency: str, number: int, day: str = "240125") -> str:
    return f"{agency}-{day}-{number:05d}"


# --- GET /api/v1/dossiers/{MaHoSo} -----------------------------------------------------------

PENDING, ACKED, SYNCED, DEAD = (code(A53, n) for n in (1, 2, 3, 4))
REFUSED_LATER = code(A53, 5)  # stored and synced, then its newer record was refused
NEVER_STORED = code(A53, 6)  # only ever refused
OTHER_AGENCY = code(A54, 7)
OTHER_UNIT = code("000.00.53.H29", 8)
MISSING = code(A53, 99)


async def _dossiers(api: Api) -> None:
    now = datetime.now(UTC)  # per test: a module-level time ages while others run
    source = await source_id(api.sessions, "h26-opencps", now)
    received = "20240125083000"
    read_at = now - timedelta(minutes=30)
    await store_dossiers(
        api.sessions,
        source,
        [
            received_dossier(c, received)
            for c in (PENDING, ACKED, SYNCED, DEAD, REFUSED_LATER, OTHER_AGENCY, OTHER_UNIT)
        ],
        read_at,
        progress=[step(PENDING, read_at - timedelta(hours=1)), step(SYNCED, read_at)],
    )
    await push_outcomes(
        api.sessions,
        {
            PENDING: "failed",
            ACKED: "acked",
            SYNCED: "synced",
            DEAD: "dead",
            REFUSED_LATER: "synced",
            OTHER_AGENCY: "synced",
            OTHER_UNIT: "synced",
        },
        now - timedelta(minutes=20),
    )
    await quarantine(api.sessions, source, [Refused(REFUSED_LATER), Refused(NEVER_STORED)], now)


async def _get(api: Api, key: str, ma_ho_so: str) -> Any:
    return await api.client.get(f"/api/v1/dossiers/{ma_ho_so}", headers=api.auth(key))


async def test_a_dossier_with_each_sync_state(api: Api) -> None:
    await _dossiers(api)
    key = await api.key(H26, ["read"])

    answer = await _get(api, key, PENDING)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["MaHoSo"] == PENDING
    assert body["dossier"]["MaHoSo"] == PENDING and body["dossier"]["TrangThaiHoSo"] == "4"
    assert (body["state"], body["portal_status"], body["attempts"]) == ("pending", None, 1)
    assert body["last_error"] == "the portal is busy"
    assert body["version"] == 1 and body["source"] == "h26-opencps"
    assert body["sync"]["status"] == "pending" and body["sync"]["last_error_code"] == -99
    assert body["sync"]["next_attempt_at"] is not None
    assert [p["delivered"] for p in body["progress"]] == [False]
    assert body["progress"][0]["record"]["MaHoSo"] == PENDING
    assert body["dead_letter"] is None and body["quarantine"] == []

    # Acknowledged is not proof: pending until read-back confirms it.
    body = (await _get(api, key, ACKED)).json()
    assert (body["state"], body["sync"]["status"], body["portal_status"]) == (
        "pending",
        "acknowledged",
        "4",
    )
    assert body["sync"]["acknowledged_version"] == 1 and body["sync"]["confirmed_version"] is None

    body = (await _get(api, key, SYNCED)).json()
    assert (body["state"], body["sync"]["status"], body["sync"]["confirmed_version"]) == (
        "synced",
        "synced",
        1,
    )
    assert [p["delivered"] for p in body["progress"]] == [True]
    assert body["attempts"] == 0 and body["last_error"] is None

    body = (await _get(api, key, DEAD)).json()
    assert body["state"] == "dead"
    assert body["dead_letter"]["error_code"] == -5
    assert body["dead_letter"]["service"] == "DongBoHoSoMC"
    assert body["last_error"] == "MaTTHC: unknown"

    # Synced once, but the source's newer record is refused: the portal cannot hold it.
    body = (await _get(api, key, REFUSED_LATER)).json()
    assert (body["state"], body["sync"]["status"]) == ("quarantined", "synced")
    assert body["dossier"] is not None
    [entry] = body["quarantine"]
    assert (entry["kind"], entry["reason_code"], entry["source"]) == (
        "dossier",
        "unmapped_status",
        "h26-opencps",
    )

    body = (await _get(api, key, NEVER_STORED)).json()
    assert body["state"] == "quarantined"
    assert (body["dossier"], body["sync"], body["version"]) == (None, None, None)
    assert body["quarantine"][0]["reason"].startswith("TrangThai")


async def test_another_units_dossier_is_answered_like_a_missing_one(api: Api) -> None:
    await _dossiers(api)
    h26 = await api.key(H26, ["read"])
    missing = await _get(api, h26, MISSING)
    other = await _get(api, h26, OTHER_UNIT)
    malformed = await _get(api, h26, "not-a-code")
    assert missing.status_code == other.status_code == malformed.status_code == 404
    assert missing.json() == other.json() == malformed.json()
    assert missing.json()["error"]["code"] == "not_found"
    assert (await _get(api, await api.key(H29, ["read"]), OTHER_UNIT)).status_code == 200


async def test_an_agency_key_reads_only_its_agencys_dossiers(api: Api) -> None:
    await _dossiers(api)
    a53 = await api.key(H26, ["read"], agency=A53)
    a54 = await api.key(H26, ["read"], agency=A54)
    assert (await _get(api, a53, SYNCED)).status_code == 200
    assert (await _get(api, a53, NEVER_STORED)).status_code == 200
    hidden = [await _get(api, a54, c) for c in (SYNCED, NEVER_STORED, MISSING)]
    assert {a.status_code for a in hidden} == {404}
    assert hidden[0].json() == hidden[1].json() == hidden[2].json()
    assert (await _get(api, a54, OTHER_AGENCY)).status_code == 200
    assert (await _get(api, a53, OTHER_AGENCY)).status_code == 404


@pytest.mark.parametrize("path", [f"/api/v1/dossiers/{SYNCED}", f"/api/v1/units/{H26}/sync"])
async def test_reads_need_a_known_key_with_the_read_scope(api: Api, path: str) -> None:
    await _dossiers(api)
    missing = await api.client.get(path)
    assert missing.status_code == 401 and missing.json()["error"]["code"] == "unauthorized"
    unknown = await api.client.get(path, headers=api.auth("dsk_not-a-key"))
    assert unknown.status_code == 401
    for scopes in (["ingest"], ["admin"], ["ingest", "admin"]):
        answer = await api.client.get(path, headers=api.auth(await api.key(H26, scopes)))
        assert answer.status_code == 403, scopes
        assert answer.json()["error"]["code"] == "forbidden"
    ok = await api.client.get(path, headers=api.auth(await api.key(H26, ["read"])))
    assert ok.status_code == 200


# --- GET /api/v1/units/{code}/sync ---------------------------------------------------------

# Received (NgayTiepNhan, Vietnamese time) around May 2024, and what the push did.
MAY: dict[str, tuple[str, str]] = {
    code(A53, 1, "240501"): ("20240501000000", "synced"),  # the first second of May
    code(A53, 2, "240515"): ("20240515100000", "acked"),
    code(A53, 3, "240531"): ("20240531235959", "old-pending"),  # the last second of May
    code(A53, 4, "240520"): ("20240520090000", "dead"),
    code(A53, 5, "240510"): ("20240510090000", "synced"),  # then its record is refused
    code(A53, 6, "240430"): ("20240430235959", "synced"),  # April, one second before May
    code(A53, 7, "240601"): ("20240601000000", "pending"),  # June
    code(A54, 8, "240502"): ("20240502080000", "synced"),
    code(A54, 9, "240503"): ("20240503080000", "pending"),
    code(A54, 12, "240506"): ("20240506080000", "synced"),  # refused at reception (3)
    code("000.00.53.H29", 10, "240505"): ("20240505080000", "synced"),  # another unit
}
REFUSED = code(A53, 5, "240510")
# Stored with status 3 (refused at reception): received in May and synced, but no dossier
# of indicator 1.4 (statuses 1 and 3 are left out of its received count).
NOT_RECEIVED = {code(A54, 12, "240506"): "3"}
UNSTORED = code(A53, 11, "240512")  # quarantined, never stored


async def _may(api: Api) -> None:
    now = datetime.now(UTC)  # per test: a module-level time ages while others run
    source = await source_id(api.sessions, "h26-opencps", now)
    # The oldest unacknowledged change of May was read two hours ago, the others one.
    older = {c for c, (_, kind) in MAY.items() if kind == "old-pending"}
    for read_at, codes in (
        (now - timedelta(hours=2), older),
        (now - timedelta(hours=1), set(MAY) - older),
    ):
        await store_dossiers(
            api.sessions,
            source,
            [received_dossier(c, MAY[c][0], NOT_RECEIVED.get(c, "4")) for c in sorted(codes)],
            read_at,
        )
    outcomes: Any = {c: kind for c, (_, kind) in MAY.items() if kind != "old-pending"}
    await push_outcomes(api.sessions, outcomes, now - timedelta(minutes=30))
    await quarantine(api.sessions, source, [Refused(REFUSED), Refused(UNSTORED)], now)


async def _sync(api: Api, key: str, unit: str = H26, period: str | None = "2024-05") -> Any:
    query = {} if period is None else {"period": period}
    return await api.client.get(f"/api/v1/units/{unit}/sync", params=query, headers=api.auth(key))


def _figures(body: dict[str, Any]) -> tuple[int, ...]:
    return tuple(
        body[k] for k in ("received", "synced", "pending", "acknowledged", "quarantined", "dead")
    )


async def test_unit_figures_for_a_month_in_vietnamese_time(api: Api) -> None:
    await _may(api)
    key = await api.key(H26, ["read"])
    answer = await _sync(api, key)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    # May (local): 1 2 3 4 5 of agency 53 and 8 9 12 of agency 54; not 6 (April 30,
    # 23:59:59), not 7 (June 1, 00:00:00), not 10 (H29). Synced 1, 8 and 12; 5 was synced,
    # but its latest record is in quarantine. Pending 2 (acknowledged), 3, 9. Dead 4.
    assert (body["unit"], body["agency"], body["period"]) == (H26, None, "2024-05")
    assert body["since"] == "2024-04-30T17:00:00Z" and body["until"] == "2024-05-31T17:00:00Z"
    assert _figures(body) == (8, 3, 3, 1, 1, 1)
    # Indicator 1.4 leaves 12 (status 3) out: synced 1 and 8 over the 7 others received.
    # The portal holds 1, 5 and 8 of them (fewer), so the source's count divides.
    assert (body["sync_rate_numerator"], body["sync_rate_denominator"]) == (2, 7)
    assert body["sync_rate"] == pytest.approx(2 / 7)
    # The oldest change the portal has not acknowledged is 3's, read two hours ago.
    assert 2 * 3600 <= body["oldest_pending_age_s"] < 2 * 3600 + 120
    assert body["quarantined_never_stored"] == 1
    agencies = {a["agency"]: a for a in body["agencies"]}
    assert set(agencies) == {A53, A54}
    assert _figures(agencies[A53]) == (5, 1, 2, 1, 1, 1)
    assert agencies[A53]["sync_rate"] == pytest.approx(1 / 5)
    assert _figures(agencies[A54]) == (3, 2, 1, 0, 0, 0)
    assert agencies[A54]["sync_rate"] == pytest.approx(1 / 2)  # not 2/3: 12 is no 1.4 dossier
    assert 3600 <= agencies[A54]["oldest_pending_age_s"] < 3600 + 120

    april = (await _sync(api, key, period="2024-04")).json()
    assert _figures(april) == (1, 1, 0, 0, 0, 0) and april["sync_rate"] == 1.0
    assert april["oldest_pending_age_s"] is None
    june = (await _sync(api, key, period="2024-06")).json()
    assert _figures(june) == (1, 0, 1, 0, 0, 0) and june["sync_rate"] == 0.0
    march = (await _sync(api, key, period="2024-03")).json()
    assert _figures(march) == (0, 0, 0, 0, 0, 0)
    assert (march["sync_rate"], march["oldest_pending_age_s"], march["agencies"]) == (
        None,
        None,
        [],
    )


async def test_an_agency_key_gets_its_agencys_figures_only(api: Api) -> None:
    await _may(api)
    a53 = (await _sync(api, await api.key(H26, ["read"], agency=A53))).json()
    assert a53["agency"] == A53 and _figures(a53) == (5, 1, 2, 1, 1, 1)
    assert [a["agency"] for a in a53["agencies"]] == [A53]
    assert a53["quarantined_never_stored"] == 1
    a54 = (await _sync(api, await api.key(H26, ["read"], agency=A54))).json()
    assert a54["agency"] == A54 and _figures(a54) == (3, 2, 1, 0, 0, 0)
    assert a54["sync_rate"] == pytest.approx(1 / 2)
    assert a54["quarantined_never_stored"] == 0


async def test_another_units_figures_are_refused(api: Api) -> None:
    await _may(api)
    h29 = await api.key(H29, ["read"])
    refused = await _sync(api, h29, unit=H26)
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "forbidden"
    own = (await _sync(api, h29, unit=H29)).json()
    assert _figures(own) == (1, 1, 0, 0, 0, 0)
    agency_key = await api.key(H29, ["read"], agency="000.00.53.H29")
    assert (await _sync(api, agency_key, unit=H26)).status_code == 403


@pytest.mark.parametrize("period", ["2024-5", "2024-13", "2024-00", "May", "2024-05-01", ""])
async def test_a_malformed_period_is_a_422_naming_it(api: Api, period: str) -> None:
    answer = await _sync(api, await api.key(H26, ["read"]), period=period)
    assert answer.status_code == 422
    error = answer.json()["error"]
    assert error["code"] == "validation_error"
    assert [d["field"] for d in error["details"]] == ["period"]


@pytest.mark.parametrize("unit", ["H26", "000.00.53.H26"])
async def test_the_unit_must_be_a_top_level_unit_code(api: Api, unit: str) -> None:
    answer = await _sync(api, await api.key(H26, ["read"]), unit=unit)
    assert answer.status_code == 422
    assert [d["field"] for d in answer.json()["error"]["details"]] == ["code"]


async def test_the_default_period_is_this_month_and_matches_the_ratio_gauge(api: Api) -> None:
    now = datetime.now(UTC)
    today = datetime.now(VN_TZ)
    received = format_portal_datetime(today.replace(hour=0, minute=0, second=1))
    day = today.strftime("%y%m%d")
    codes = [code(a, n, day) for a, n in ((A53, 1), (A53, 2), (A54, 3), (A54, 4))]
    statuses = {codes[3]: "3"}  # refused at reception: received, but no 1.4 dossier
    source = await source_id(api.sessions, "h26-opencps", now)
    await store_dossiers(
        api.sessions,
        source,
        [received_dossier(c, received, statuses.get(c, "4")) for c in codes],
        now,
    )
    await push_outcomes(api.sessions, dict.fromkeys((codes[0], codes[2], codes[3]), "synced"), now)
    body = (await _sync(api, await api.key(H26, ["read"]), period=None)).json()
    assert body["period"] == today.strftime("%Y-%m")
    assert _figures(body) == (4, 3, 1, 0, 0, 0)
    rates = {a["agency"]: a["sync_rate"] for a in body["agencies"]}
    assert rates == {A53: pytest.approx(1 / 2), A54: 1.0}
    # The gauge is the same number (indicator 1.4), as a scrape of the service shows it.
    metrics = Metrics()
    await metrics.refresh(api.sessions)
    gauge = by(samples(metrics.exposition().decode())["dossier_sync_ratio"], "unit", "agency")
    assert gauge == {(H26, agency): rate for agency, rate in rates.items()}
