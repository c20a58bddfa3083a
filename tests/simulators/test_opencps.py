"""The OpenCPS simulator speaks source-dialects.md §1 exactly."""

from __future__ import annotations

import base64
import itertools
from collections import Counter
from datetime import date, timedelta
from typing import Any

import httpx
import pytest

from app.simulators.statuses import OPENCPS_DEFAULT_MAPPING
from tests.simulators.conftest import Clients, StartSimulator
from tests.simulators.helpers import DMY_RE, DOSSIERS, parse_dmy

RECORD_FIELDS = {
    "dossierId", "dossierNo", "referenceUid", "serviceCode", "serviceName", "domainCode",
    "domainName", "govAgencyCode", "govAgencyName", "applicantName", "applicantIdType",
    "applicantIdNo", "contactName", "contactTelNo", "contactEmail", "dossierNote",
    "submitDate", "receiveDate", "dueDate", "finishDate", "releaseDate", "modifiedDate",
    "dossierStatus", "dossierSubStatus", "dossierStatusText", "online", "viaPostal",
    "feeAmount", "paymentMethod", "digitized",
}  # fmt: skip
DATE_FIELDS = ("submitDate", "receiveDate", "dueDate", "finishDate", "releaseDate", "modifiedDate")
STATUS_WORDS = set(OPENCPS_DEFAULT_MAPPING) | {"collecting", "pausing"}


def _order_key(row: dict[str, Any]) -> tuple[float, int]:
    return (parse_dmy(row["modifiedDate"]).timestamp(), row["dossierId"])


def test_auth_needs_basic_credentials_and_group_id(start: StartSimulator) -> None:
    simulator = start("opencps", dossiers=3)
    good = base64.b64encode(b"demo:demo").decode()
    cases = {
        "good": ({"Authorization": f"Basic {good}", "groupId": "1"}, 200),
        "no credentials": ({"groupId": "1"}, 401),
        "bad password": (
            {"Authorization": "Basic " + base64.b64encode(b"demo:nope").decode(), "groupId": "1"},
            401,
        ),
        "no groupId": ({"Authorization": f"Basic {good}"}, 401),
        "other groupId": ({"Authorization": f"Basic {good}", "groupId": "2"}, 401),
        "bearer": ({"Authorization": "Bearer demo", "groupId": "1"}, 401),
    }
    with httpx.Client(base_url=simulator.url) as http:
        for name, (headers, status) in cases.items():
            answer = http.get(DOSSIERS, headers=headers)
            assert answer.status_code == status, name
            if status == 401:
                assert answer.headers["www-authenticate"].startswith("Basic")
        files = http.get(f"{DOSSIERS}/240001/files", headers={"groupId": "1"})
        assert files.status_code == 401


def test_start_end_slice_the_sorted_set_and_end_absent_or_zero_is_everything(
    start: StartSimulator, clients: Clients
) -> None:
    simulator = start("opencps", dossiers=40)
    api = clients.opencps(simulator)
    everything = api.page(order="false")
    assert everything["total"] == 40 and len(everything["data"]) == 40
    assert api.page(order="false", start=0, end=0)["data"] == everything["data"]
    assert api.rows(order="false", start=35) == everything["data"][35:]
    for first, last in ((0, 10), (10, 20), (37, 50), (45, 60), (5, 5)):
        page = api.page(order="false", start=first, end=last)
        assert page["total"] == 40
        assert page["data"] == everything["data"][first:last]


@pytest.mark.parametrize("ties", [False, True])
def test_order_and_ties_by_dossier_id(start: StartSimulator, clients: Clients, ties: bool) -> None:
    simulator = start("opencps", dossiers=60, ties=ties)
    api = clients.opencps(simulator)
    oldest_first = api.rows(order="false")
    newest_first = api.rows(order="true")
    assert [_order_key(r) for r in oldest_first] == sorted(_order_key(r) for r in oldest_first)
    assert [r["modifiedDate"] for r in newest_first] == [
        r["modifiedDate"] for r in reversed(oldest_first)
    ]
    # Equal modifiedDates: ascending dossierId in both directions (simulator policy).
    for rows in (oldest_first, newest_first):
        for before, after in itertools.pairwise(rows):
            if before["modifiedDate"] == after["modifiedDate"]:
                assert before["dossierId"] < after["dossierId"]
    ties_seen = Counter(r["modifiedDate"] for r in oldest_first).most_common(1)[0][1]
    if ties:
        assert ties_seen >= 20  # the initial bulk action: a third of the dossiers
    else:
        assert ties_seen == 1  # a clean world has no ties, even at whole seconds


def test_ties_straddle_page_borders(start: StartSimulator, clients: Clients) -> None:
    simulator = start("opencps", dossiers=60, ties=True)
    api = clients.opencps(simulator)
    rows = api.rows(order="false")
    tied = Counter(r["modifiedDate"] for r in rows).most_common(1)[0][0]
    positions = [i for i, r in enumerate(rows) if r["modifiedDate"] == tied]
    assert positions == list(range(positions[0], positions[-1] + 1))
    pages = {i // 10 for i in positions}
    assert len(pages) >= 2  # reading pages of 10, the tie group crosses a border


def test_modified_date_filters_are_whole_days_inclusive(
    start: StartSimulator, clients: Clients
) -> None:
    simulator = start("opencps", dossiers=80)
    api = clients.opencps(simulator)
    rows = api.rows(order="false")
    days = sorted({parse_dmy(r["modifiedDate"]).date() for r in rows})
    assert len(days) >= 4
    first, last = days[1], days[-2]

    def day(value: date) -> str:
        return value.strftime("%d/%m/%Y")

    def modified_on(row: dict[str, Any]) -> date:
        return parse_dmy(row["modifiedDate"]).date()

    between = api.page(order="false", fromModifiedDate=day(first), toModifiedDate=day(last))
    expected = [r for r in rows if first <= modified_on(r) <= last]
    assert between["data"] == expected and between["total"] == len(expected)
    one_day = api.rows(order="false", fromModifiedDate=day(first), toModifiedDate=day(first))
    assert one_day and all(modified_on(r) == first for r in one_day)
    assert one_day == [r for r in rows if modified_on(r) == first]
    assert api.rows(order="false", fromModifiedDate=day(last)) == [
        r for r in rows if modified_on(r) >= last
    ]
    assert api.page(fromModifiedDate=day(days[-1] + timedelta(days=1)))["total"] == 0


def test_bad_parameters_are_400(start: StartSimulator, clients: Clients) -> None:
    simulator = start("opencps", dossiers=3)
    api = clients.opencps(simulator)
    for params in (
        {"order": "newest"},
        {"fromModifiedDate": "2024-05-13"},
        {"toModifiedDate": "32/05/2024"},
        {"start": "x"},
        {"start": -1},
        {"sort": "submitDate"},
    ):
        assert api.http.get(DOSSIERS, params=params).status_code == 400, params
    assert api.http.get(f"{DOSSIERS}/1/files").status_code == 404
    assert api.http.get(f"{DOSSIERS}/1/actions").status_code == 404


def test_records_have_the_spec_fields_and_formats(start: StartSimulator, clients: Clients) -> None:
    simulator = start("opencps", dossiers=60)
    api = clients.opencps(simulator)
    rows = api.rows()
    for row in rows:
        assert set(row) == RECORD_FIELDS
        assert isinstance(row["dossierId"], int)
        for name in DATE_FIELDS:
            assert row[name] == "" or DMY_RE.match(row[name]), (name, row[name])
        assert row["submitDate"] and row["modifiedDate"]
        assert row["dossierStatus"] in STATUS_WORDS
        assert row["applicantIdType"] in {"citizen", "business"}
        assert isinstance(row["online"], bool) and isinstance(row["digitized"], bool)
        assert row["viaPostal"] in {0, 1, 2}
        assert isinstance(row["feeAmount"], int) and row["feeAmount"] >= 0
        assert row["paymentMethod"] in {None, "online", "gateway", "counter"}
        assert row["dossierNo"].startswith(row["govAgencyCode"] + "-")
        if row["receiveDate"]:
            due = parse_dmy(row["dueDate"]) - parse_dmy(row["receiveDate"])
            assert due.days >= 1 and due.seconds == 0
    assert {r["dossierStatus"] for r in rows} >= {"new", "processing", "done"}


def test_files_and_actions_match_the_truth(start: StartSimulator, clients: Clients) -> None:
    simulator = start("opencps", dossiers=30)
    api, control = clients.opencps(simulator), clients.control(simulator)
    truth = control.truth()
    listed = {r["dossierId"]: r for r in api.rows()}
    for dossier in truth["dossiers"]:
        key = dossier["key"]
        assert listed[key] == dossier["record"]
        files = api.http.get(f"{DOSSIERS}/{key}/files").json()
        assert files == {"total": len(dossier["files"]), "data": dossier["files"]}
        actions = api.http.get(f"{DOSSIERS}/{key}/actions").json()
        assert actions == {"total": len(dossier["actions"]), "data": dossier["actions"]}
        times = [parse_dmy(a["createDate"]) for a in actions["data"]]
        assert times == sorted(times)  # oldest first
        assert actions["data"][-1]["dossierStatus"] == dossier["record"]["dossierStatus"]
        for file in files["data"]:
            assert file["dossierPartType"] in {1, 2}
        if dossier["record"]["dossierStatus"] in {"releasing", "posting", "done"}:
            assert any(f["dossierPartType"] == 2 for f in files["data"])
    # actions page like the list: [start, end), end absent or 0 = all
    key = max(truth["dossiers"], key=lambda d: len(d["actions"]))["key"]
    everything = api.http.get(f"{DOSSIERS}/{key}/actions").json()["data"]
    assert len(everything) >= 3
    page = api.http.get(f"{DOSSIERS}/{key}/actions", params={"start": 1, "end": 3}).json()
    assert page["data"] == everything[1:3] and page["total"] == len(everything)
    assert api.http.get(f"{DOSSIERS}/{key}/actions", params={"end": 0}).json()["data"] == everything


def test_rows_move_between_pages_during_a_poll(start: StartSimulator, clients: Clients) -> None:
    simulator = start("opencps", dossiers=40, moves_per_list_request=1)
    api, control = clients.opencps(simulator), clients.control(simulator)
    before = control.stats()["mutations"]
    api.rows(order="false", start=0, end=10)
    api.rows(order="false", start=10, end=20)
    assert control.stats()["mutations"] - before == 2  # one change before each page
    # A dossier read early in one pass sits at the end of the next: it moved while the
    # client was paging, and every row behind its old place shifted up by one.
    previous = api.rows(order="false")
    for _ in range(5):
        current = api.rows(order="false")
        old_place = {r["dossierId"]: i for i, r in enumerate(previous)}
        last = current[-1]
        if last["dossierId"] in old_place and old_place[last["dossierId"]] < len(previous) - 1:
            assert last != previous[old_place[last["dossierId"]]]
            break
        previous = current
    else:
        pytest.fail("no row moved during five polls")


def test_unmapped_statuses_and_bad_data_appear_when_switched_on(
    start: StartSimulator, clients: Clients
) -> None:
    simulator = start("opencps", dossiers=80, unmapped_share=0.4, bad_data_share=0.3)
    control = clients.control(simulator)
    control.mutate(60)
    truth = control.truth()["dossiers"]
    unmapped = [d for d in truth if d["record"]["dossierStatus"] in {"collecting", "pausing"}]
    assert unmapped and all(d["expected"]["TrangThaiHoSo"] is None for d in unmapped)
    assert {d["record"]["dossierStatus"] for d in unmapped} == {"collecting", "pausing"}
    bad = [d for d in truth if not d["expected"]["valid"]]
    assert bad
    for dossier in bad:
        record = dossier["record"]
        assert (
            record["receiveDate"] == "31/02/2024 25:61:00"
            or "@@" in record["contactEmail"]
            or len(record["contactTelNo"]) == 7
        )
    for dossier in truth:
        if dossier["expected"]["valid"]:
            assert DMY_RE.match(dossier["record"]["receiveDate"] or "01/01/2024 00:00:00")
            assert "@@" not in dossier["record"]["contactEmail"]
