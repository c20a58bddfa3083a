"""The DVCLT simulator speaks source-dialects.md §3 exactly."""

from __future__ import annotations

import json
import time
from collections import defaultdict
from typing import Any

import httpx

from app.demodata import load_demo_catalogue
from app.domain.agency import unit_of
from tests.simulators.conftest import Clients, StartSimulator
from tests.simulators.helpers import DMY_RE, QUEUE, TOKEN_DVCLT, parse_dmy

SUMMARY_FIELDS = {"id", "maDonVi", "maTTHC", "module", "maHoSo", "ngayTiepNhan", "techId"}
DETAIL_FIELDS = {
    "id", "maHoSo", "maTTHC", "trangThai", "thoiGianThucHien", "nguoiXuLy", "chucDanh",
    "phongBanXuLy", "noiDungXuLy", "ngayHenTra", "ketQuaXuLy", "data", "fileDinhKem",
}  # fmt: skip
UNITS = {"000.00.00.H26", "000.00.00.H29", "000.00.00.G05"}


def _content(detail: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in detail.items() if k != "id"}


def test_token_and_bearer(start: StartSimulator, clients: Clients) -> None:
    simulator = start("dvclt", dossiers=3)
    api, control = clients.dvclt(simulator), clients.control(simulator)
    granted = api.token()
    assert granted.status_code == 200
    assert set(granted.json()) == {"token", "refreshToken", "refreshTokenExpiryTime"}
    assert api.token(password="nope").status_code == 401
    assert api.token(user="other").status_code == 401
    assert api.http.post(TOKEN_DVCLT, content=b"not json").status_code == 400
    with httpx.Client(base_url=simulator.url) as anonymous:
        assert anonymous.get(f"{QUEUE}/chua-nhan").status_code == 401
        assert anonymous.get(f"{QUEUE}/1").status_code == 401
        bad = anonymous.get(f"{QUEUE}/chua-nhan", headers={"Authorization": "Bearer x"})
        assert bad.status_code == 401
    api.login()
    assert api.pending(1)
    control.expire_tokens()
    assert api.http.get(f"{QUEUE}/chua-nhan").status_code == 401
    control.settings(token_ttl_s=0.3)
    api.login()
    assert api.pending(1)
    time.sleep(0.4)
    assert api.http.get(f"{QUEUE}/chua-nhan").status_code == 401


def test_limit_is_capped_at_200_and_the_queue_is_oldest_first(
    start: StartSimulator, clients: Clients
) -> None:
    simulator = start("dvclt", dossiers=80)
    api, control = clients.dvclt(simulator).login(), clients.control(simulator)
    assert len(api.pending(500)) == 200
    assert len(api.pending(7)) == 7
    assert api.http.get(f"{QUEUE}/chua-nhan", params={"limit": 0}).status_code == 400
    # Oldest first: without out-of-order delivery the queue follows the time of change.
    truth = control.truth()["dossiers"]
    time_of = {
        m["id"]: parse_dmy(m["detail"]["thoiGianThucHien"]) for d in truth for m in d["messages"]
    }
    queue = api.pending(200)
    times = [time_of[m["id"]] for m in queue]
    assert times == sorted(times)
    assert [m["id"] for m in queue] == sorted(m["id"] for m in queue)


def test_messages_are_redelivered_until_acknowledged(
    start: StartSimulator, clients: Clients
) -> None:
    simulator = start("dvclt", dossiers=20)
    api, control = clients.dvclt(simulator).login(), clients.control(simulator)
    first = api.pending(5)
    assert api.pending(5) == first  # nothing acknowledged: the same messages again
    answer = api.ack(first[0])
    assert answer.status_code == 200
    assert answer.text == "Cập nhật thành công"
    assert answer.headers["content-type"].startswith("text/plain")
    assert api.ack(first[0]).text == "Cập nhật thành công"  # twice is harmless
    assert api.pending(4) == first[1:]
    assert first[0]["id"] not in {m["id"] for m in api.pending(200)}
    # Still readable, and still in the truth, marked acknowledged.
    assert api.detail(first[0]["id"])["maHoSo"] == first[0]["maHoSo"]
    messages = {m["id"]: m for d in control.truth()["dossiers"] for m in d["messages"]}
    assert messages[first[0]["id"]]["acknowledged"] is True
    assert messages[first[1]["id"]]["acknowledged"] is False
    assert control.stats()["unacknowledged"] == len(messages) - 1
    # Refusals
    wrong = {"maHoSo": "000.00.00.H26-x", "id": first[1]["id"], "daNhan": True}
    assert api.http.put(f"{QUEUE}/da-nhan", json=wrong).status_code == 400
    unknown = {"maHoSo": first[1]["maHoSo"], "id": 999_999, "daNhan": True}
    assert api.http.put(f"{QUEUE}/da-nhan", json=unknown).status_code == 404
    not_yes = {"maHoSo": first[1]["maHoSo"], "id": first[1]["id"], "daNhan": False}
    assert api.http.put(f"{QUEUE}/da-nhan", json=not_yes).status_code == 400
    assert api.http.get(f"{QUEUE}/999999").status_code == 404


def test_summaries_and_details_have_the_spec_shape(start: StartSimulator, clients: Clients) -> None:
    simulator = start("dvclt", dossiers=40)
    api, control = clients.dvclt(simulator).login(), clients.control(simulator)
    truth = control.truth()
    agency_map = truth["agency_map"]
    assert agency_map and all(unit_of(code) in UNITS for code in agency_map.values())
    procedures = {p["MaTTHC"]: p["TenTTHC"] for p in load_demo_catalogue()["procedures"]}
    statuses = set()
    for summary in api.pending(200):
        assert set(summary) == SUMMARY_FIELDS
        assert isinstance(summary["id"], int) and isinstance(summary["maDonVi"], int)
        assert summary["maHoSo"].startswith(agency_map[str(summary["maDonVi"])] + "-")
        assert summary["module"] in {"LTKS", "LTKT"}
        expected_name = "Đăng ký khai sinh" if summary["module"] == "LTKS" else "Đăng ký khai tử"
        assert procedures[summary["maTTHC"]] == expected_name
        assert DMY_RE.match(summary["ngayTiepNhan"])
        detail = api.detail(summary["id"])
        assert set(detail) == DETAIL_FIELDS
        assert detail["id"] == summary["id"] and detail["maHoSo"] == summary["maHoSo"]
        assert detail["trangThai"] in {2, 3, 4, 5, 6, 7}
        statuses.add(detail["trangThai"])
        assert DMY_RE.match(detail["thoiGianThucHien"])
        assert detail["ngayHenTra"] is None or DMY_RE.match(detail["ngayHenTra"])
        results = json.loads(detail["ketQuaXuLy"])
        assert isinstance(results, list)
        for item in results:
            assert set(item) == {"giayToId", "tenGiayTo", "maGiayToKetQua", "duongDan"}
        assert bool(results) == (detail["trangThai"] in {4, 5})
        form = json.loads(detail["data"])
        assert {"hoTen", "soDinhDanh", "soDienThoai"} <= set(form)
        assert len(form) > 3  # and a few fields of the registration itself
        for file in detail["fileDinhKem"]:
            assert set(file) == {"id", "loaiGiayTo", "tenGiayTo", "tenTepDinhKem", "huyGiayTo"}
    assert statuses >= {3, 4, 5, 7}


def test_truth_lists_every_message_in_time_order(start: StartSimulator, clients: Clients) -> None:
    simulator = start("dvclt", dossiers=30)
    api, control = clients.dvclt(simulator).login(), clients.control(simulator)
    for message in api.pending(30):
        api.ack(message)
    control.mutate(20)
    truth = control.truth()["dossiers"]
    pending = {m["id"] for m in api.pending(200)}
    for dossier in truth:
        messages = dossier["messages"]
        assert messages
        times = [parse_dmy(m["detail"]["thoiGianThucHien"]) for m in messages]
        assert times == sorted(times)
        for message in messages:
            assert message["acknowledged"] == (message["id"] not in pending)
            assert api.detail(message["id"]) == message["detail"]
        assert dossier["record"] == messages[-1]["detail"]
        assert dossier["key"] == dossier["ma_ho_so"] == dossier["record"]["maHoSo"]


def test_duplicates_and_out_of_order_messages(start: StartSimulator, clients: Clients) -> None:
    simulator = start("dvclt", dossiers=30, duplicates_share=0.3, out_of_order_share=1.0)
    api, control = clients.dvclt(simulator).login(), clients.control(simulator)
    control.mutate(80)
    queue = api.pending(200)
    details = {m["id"]: api.detail(m["id"]) for m in queue}
    # Duplicates: two ids, the same content.
    by_content: dict[str, list[int]] = defaultdict(list)
    for message_id, detail in details.items():
        by_content[json.dumps(_content(detail), sort_keys=True)].append(message_id)
    assert any(len(ids) == 2 for ids in by_content.values())
    truth = control.truth()["dossiers"]
    twins = [m for d in truth for m in d["messages"] if m["duplicate_of"] is not None]
    assert twins
    # Out of order: a dossier's newer change listed before its older one.
    seen: dict[str, Any] = {}
    swapped = 0
    for message in queue:
        at = parse_dmy(details[message["id"]]["thoiGianThucHien"])
        if message["maHoSo"] in seen and at < seen[message["maHoSo"]]:
            swapped += 1
        seen[message["maHoSo"]] = max(at, seen.get(message["maHoSo"], at))
    assert swapped


def test_bad_data_in_messages(start: StartSimulator, clients: Clients) -> None:
    simulator = start("dvclt", dossiers=40, bad_data_share=0.3)
    control = clients.control(simulator)
    messages = [m for d in control.truth()["dossiers"] for m in d["messages"]]
    bad = [m for m in messages if not m["valid"]]
    assert bad
    for message in bad:
        detail = message["detail"]
        form = json.loads(detail["data"])
        assert detail["ngayHenTra"] == "31/02/2024 25:61:00" or len(form["soDienThoai"]) == 7
    for message in messages:
        if message["valid"]:
            assert len(json.loads(message["detail"]["data"])["soDienThoai"]) == 10
