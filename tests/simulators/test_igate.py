"""The iGate simulator speaks source-dialects.md §2 exactly."""

from __future__ import annotations

import time
from collections import Counter
from datetime import timedelta
from typing import Any

import httpx

from app.simulators.statuses import IGATE_STATUS_NAMES
from tests.simulators.conftest import Clients, StartSimulator
from tests.simulators.helpers import ISO_MS_RE, SEARCH, TOKEN_IGATE, IGate, parse_iso

RECORD_FIELDS = {
    "id", "code", "dossierStatus", "procedure", "agency", "applicant", "applyMethod",
    "appliedDate", "acceptedDate", "appointmentDate", "completedDate", "returnedDate",
    "updatedDate", "attachment", "fee",
}  # fmt: skip
DATE_FIELDS = (
    "appliedDate",
    "acceptedDate",
    "appointmentDate",
    "completedDate",
    "returnedDate",
    "updatedDate",
)


def _all_rows(api: IGate, size: int = 500, **params: Any) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    page = 0
    while True:
        answer = api.search(page=page, size=size, **params)
        rows += answer["content"]
        page += 1
        if page >= answer["totalPages"]:
            return rows


def _vietnamese(names: list[dict[str, Any]]) -> str:
    found = [n["name"] for n in names if n["languageId"] == 228]
    assert len(found) == 1
    name: str = found[0]
    return name


def test_token_grants_and_refusals(start: StartSimulator, clients: Clients) -> None:
    simulator = start("igate", dossiers=3)
    api = clients.igate(simulator)
    granted = api.token()
    assert granted.status_code == 200
    body = granted.json()
    assert set(body) == {"access_token", "expires_in", "token_type"}
    assert body["expires_in"] == 300 and body["token_type"] == "Bearer"
    assert api.token(secret="wrong").status_code == 401
    assert api.token(client_id="other").status_code == 401
    wrong_grant = api.http.post(
        TOKEN_IGATE, data={"grant_type": "password", "client_id": "demo", "client_secret": "demo"}
    )
    assert wrong_grant.status_code == 400
    assert wrong_grant.json()["error"] == "unsupported_grant_type"
    basic = api.http.post(
        TOKEN_IGATE, data={"grant_type": "client_credentials"}, auth=("demo", "demo")
    )
    assert basic.status_code == 200  # client_secret_basic works too

    with httpx.Client(base_url=simulator.url) as anonymous:
        assert anonymous.get(SEARCH).status_code == 401
        unknown = anonymous.get(SEARCH, headers={"Authorization": "Bearer not-a-token"})
        assert unknown.status_code == 401 and "Bearer" in unknown.headers["www-authenticate"]
        good = anonymous.get(SEARCH, headers={"Authorization": f"Bearer {body['access_token']}"})
        assert good.status_code == 200


def test_tokens_expire_after_their_ttl_and_on_demand(
    start: StartSimulator, clients: Clients
) -> None:
    simulator = start("igate", dossiers=3, token_ttl_s=0.5)
    api, control = clients.igate(simulator), clients.control(simulator)
    assert api.token().json()["expires_in"] == 1  # whole seconds, rounded up
    api.login()
    assert api.http.get(SEARCH).status_code == 200
    time.sleep(0.6)
    assert api.http.get(SEARCH).status_code == 401
    control.settings(token_ttl_s=None)
    assert api.token().json()["expires_in"] == 300
    api.login()
    assert api.http.get(SEARCH).status_code == 200
    assert control.expire_tokens() >= 1
    assert api.http.get(SEARCH).status_code == 401
    api.login()
    assert api.http.get(SEARCH).status_code == 200


def test_pages_sizes_and_the_500_cap(start: StartSimulator, clients: Clients) -> None:
    simulator = start("igate", dossiers=620)
    api = clients.igate(simulator).login()
    capped = api.search(page=0, size=1000)
    assert capped["size"] == 500 and len(capped["content"]) == 500
    assert capped["totalElements"] == 620 and capped["totalPages"] == 2 and capped["number"] == 0
    rest = api.search(page=1, size=1000)
    assert len(rest["content"]) == 120 and rest["number"] == 1
    everything = capped["content"] + rest["content"]
    for page, size in ((0, 7), (3, 7), (88, 7), (89, 7), (2, 250)):
        answer = api.search(page=page, size=size)
        assert answer["content"] == everything[page * size : (page + 1) * size]
        assert answer["totalPages"] == -(-620 // size) and answer["size"] == size
    assert api.search()["size"] == 20  # Spring's default
    assert api.http.get(SEARCH, params={"size": 0}).status_code == 400
    assert api.http.get(SEARCH, params={"sort": "appliedDate,asc"}).status_code == 400


def test_sorted_by_updated_date_then_id_and_ties_straddle_pages(
    start: StartSimulator, clients: Clients
) -> None:
    simulator = start("igate", dossiers=90, ties=True)
    api = clients.igate(simulator).login()
    rows = _all_rows(api, size=10)
    keys = [(parse_iso(r["updatedDate"]), r["id"]) for r in rows]
    assert keys == sorted(keys)
    tied_date, count = Counter(r["updatedDate"] for r in rows).most_common(1)[0]
    assert count >= 20
    positions = [i for i, r in enumerate(rows) if r["updatedDate"] == tied_date]
    assert len({i // 10 for i in positions}) >= 2
    newest_first = _all_rows(api, size=10, sort="updatedDate,desc")
    assert [r["updatedDate"] for r in newest_first] == [r["updatedDate"] for r in reversed(rows)]


def test_updated_from_is_inclusive_to_the_millisecond(
    start: StartSimulator, clients: Clients
) -> None:
    simulator = start("igate", dossiers=50)
    api = clients.igate(simulator).login()
    rows = _all_rows(api)
    pivot = rows[20]
    instant = parse_iso(pivot["updatedDate"])
    since = api.search(size=500, **{"updated-from": pivot["updatedDate"]})["content"]
    assert since == [r for r in rows if parse_iso(r["updatedDate"]) >= instant]
    assert since[0] == pivot
    later = (instant + timedelta(milliseconds=1)).isoformat(timespec="milliseconds")
    after = api.search(size=500, **{"updated-from": later})["content"]
    assert pivot not in after and after == since[1:]
    # Another offset, same instant: the filter compares instants.
    utc = instant.astimezone(parse_iso("2024-01-01T00:00:00.000+0000").tzinfo)
    assert (
        api.search(size=500, **{"updated-from": utc.isoformat(timespec="milliseconds")})["content"]
        == since
    )
    # A '+' that was not URL-encoded arrives as a space and is understood.
    raw = api.http.get(f"{SEARCH}?size=500&updated-from={pivot['updatedDate']}")
    assert raw.status_code == 200 and raw.json()["content"] == since
    for bad in ("yesterday", "2024-05-13T09:30:00.000"):
        assert api.http.get(SEARCH, params={"updated-from": bad}).status_code == 400


def test_records_have_the_spec_shape(start: StartSimulator, clients: Clients) -> None:
    simulator = start("igate", dossiers=60)
    api = clients.igate(simulator).login()
    rows = _all_rows(api)
    for row in rows:
        assert set(row) == RECORD_FIELDS
        assert len(row["id"]) == 24 and int(row["id"], 16) >= 0
        for name in DATE_FIELDS:
            assert row[name] is None or ISO_MS_RE.match(row[name]), (name, row[name])
        status = row["dossierStatus"]
        assert set(status) == {"id", "name", "comment"}
        assert _vietnamese(status["name"]) == IGATE_STATUS_NAMES[status["id"]][0]
        assert {n["languageId"] for n in status["name"]} == {228, 46}
        procedure = row["procedure"]
        assert set(procedure) == {"id", "code", "translate", "sector"}
        assert set(procedure["sector"]) == {"id", "code", "name"}
        assert _vietnamese(procedure["translate"]) and _vietnamese(procedure["sector"]["name"])
        assert set(row["agency"]) == {"id", "code", "name"}
        assert row["code"].startswith(row["agency"]["code"] + "-")
        applicant = row["applicant"]
        assert set(applicant) == {"data", "type"} and applicant["type"] in {1, 2}
        assert set(applicant["data"]) == {
            "fullname",
            "identityNumber",
            "phoneNumber",
            "email",
            "address",
        }
        assert row["applyMethod"]["id"] in {0, 1, 2}
        for attachment in row["attachment"]:
            assert set(attachment) == {"id", "filename", "group", "url", "digitized", "reused"}
            assert attachment["group"] in {"input", "result"}
        assert set(row["fee"]) == {"amount", "paid", "method"}
        assert row["fee"]["method"] in {None, "online", "gateway", "counter"}
        if status["id"] in {4, 5}:
            assert any(a["group"] == "result" for a in row["attachment"])
    assert {r["dossierStatus"]["id"] for r in rows} >= {0, 2, 3, 5}


def test_history_matches_the_truth(start: StartSimulator, clients: Clients) -> None:
    simulator = start("igate", dossiers=25)
    api, control = clients.igate(simulator).login(), clients.control(simulator)
    truth = control.truth()["dossiers"]
    listed = {r["id"]: r for r in _all_rows(api)}
    for dossier in truth:
        assert listed[dossier["key"]] == dossier["record"]
        history = api.http.get(f"/pa/dossier/{dossier['key']}/--history").json()
        assert history == dossier["history"]
        for entry in history:
            assert set(entry) == {
                "id",
                "createdDate",
                "user",
                "position",
                "groupName",
                "action",
                "content",
                "statusId",
            }
        times = [parse_iso(e["createdDate"]) for e in history]
        assert times == sorted(times)
        assert history[-1]["statusId"] == dossier["record"]["dossierStatus"]["id"]
    assert api.http.get("/pa/dossier/000000000000000000000000/--history").status_code == 404


def test_at_most_500_dossiers_share_one_updated_date(
    start: StartSimulator, clients: Clients
) -> None:
    simulator = start("igate", dossiers=1300, ties=True)
    api, control = clients.igate(simulator).login(), clients.control(simulator)
    changed = control.mutate(1200, bulk=1200)  # split into instants of 500, 500 and 200
    assert 500 < len(changed) <= 1200  # a dossier may move in more than one of them
    counts = Counter(r["updatedDate"] for r in _all_rows(api))
    assert counts.most_common(1)[0][1] <= 500
    # Each instant of the bulk changed 500 dossiers at once: 500 history entries share it.
    changes = Counter(
        entry["createdDate"] for d in control.truth()["dossiers"] for entry in d["history"]
    )
    assert changes.most_common(1)[0][1] == 500


def test_moves_unmapped_and_bad_data(start: StartSimulator, clients: Clients) -> None:
    simulator = start(
        "igate", dossiers=80, unmapped_share=0.4, bad_data_share=0.3, moves_per_list_request=2
    )
    api, control = clients.igate(simulator).login(), clients.control(simulator)
    first = api.search(size=500)["content"]
    again = api.search(size=500)["content"]
    assert first != again  # two changes landed between the two reads
    assert again[-1] not in first  # and the last changed row now ends the list
    truth = control.truth()["dossiers"]
    parked = [d for d in truth if d["record"]["dossierStatus"]["id"] == 11]
    assert parked and all(d["expected"]["TrangThaiHoSo"] is None for d in parked)
    bad = [d for d in truth if not d["expected"]["valid"]]
    assert bad
    for dossier in bad:
        record = dossier["record"]
        data = record["applicant"]["data"]
        assert (
            record["acceptedDate"] == "2024-02-31T25:61:00.000+0700"
            or "@@" in (data["email"] or "")
            or len(data["phoneNumber"]) == 7
        )
