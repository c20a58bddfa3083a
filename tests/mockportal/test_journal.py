"""Contract §9, the journal: what each request leaves, the filters, the ring buffer,
the NDJSON export, and no personal data (§8)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from app.mockportal.testing import MockPortalControl
from tests.factories import PERSONAL, dossier_json
from tests.mockportal.helpers import H26, H29, PortalClient, item_codes

NewClient = Callable[..., PortalClient]

A = "000.00.53.H26-240125-00001"
B = "000.00.54.H26-240125-00002"
C = "000.00.53.H29-240125-00003"


def entries(control: MockPortalControl, **filters: Any) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = control.journal(**filters)["entries"]
    return found


def ids(control: MockPortalControl, **filters: Any) -> list[int]:
    return [entry["id"] for entry in entries(control, **filters)]


# --- what an entry holds -------------------------------------------------------------------


def test_a_sync_request_is_journaled_with_its_facts(
    client: PortalClient, control: MockPortalControl
) -> None:
    control.reset("journal")
    before = datetime.now(UTC)
    answer = client.create(dossier_json(A), dossier_json(B, Email="không phải e-mail"))
    after = datetime.now(UTC)
    assert item_codes(answer) == [0, -5]
    [entry] = entries(control)
    assert before <= datetime.fromisoformat(entry["at"]) <= after
    assert 0 < entry["latency_ms"] < (after - before).total_seconds() * 1000
    assert {k: entry[k] for k in entry if k not in ("at", "latency_ms", "items")} == {
        "id": entry["id"],
        "endpoint": "integration",
        "service": "DongBoHoSoMC",
        "unit": H26,
        "madonvi": H26,
        "session": entry["session"],
        "http_status": 200,
        "error_code": 1,
        "message": answer["message"],
        "outcome": "partial",
        "is_updating": "False",
        "request_hash": entry["request_hash"],
        "fault": None,
        "retry_after_s": None,
        "rate_limited": False,
        "item_count": 2,
    }
    items = [(i["ma_ho_so"], i["error_code"], i["status"], i["stored"]) for i in entry["items"]]
    assert items == [(A, 0, "4", True), (B, -5, "4", False)]


def test_auth_progress_and_look_ups_are_journaled(
    new_client: NewClient, control: MockPortalControl
) -> None:
    client = new_client()
    client.login()
    client.create(dossier_json(A))
    record = {
        "MaHoSo": A,
        "NguoiXuLy": "Trần Thị Bình",
        "ThoiDiemXuLy": "20240125090000",
        "NoiDungXuLy": "Thụ lý",
        "TrangThai": "4",
    }
    client.progress(record)
    client.lookup_many([A, B])
    client.call("share", "LayDanhMucCoQuan")
    journal = entries(control)
    assert [(e["endpoint"], e["service"], e["item_count"]) for e in journal] == [
        ("auth", "auth", 0),
        ("integration", "DongBoHoSoMC", 1),
        ("integration", "CapNhatTienDoHoSoMC", 1),
        ("share", "TraCuuHoSo", 2),
        ("share", "LayDanhMucCoQuan", 0),
    ]
    assert all(e["outcome"] == "ok" and e["http_status"] == 200 for e in journal)
    # One session from login on: the same fingerprint correlates the calls.
    assert len({e["session"] for e in journal}) == 1
    progress = journal[2]["items"][0]
    assert (progress["ma_ho_so"], progress["status"], progress["occurred_at"]) == (
        A,
        "4",
        "20240125090000",
    )
    assert [(i["ma_ho_so"], i["error_code"]) for i in journal[3]["items"]] == [(A, None), (B, None)]
    assert [e["id"] for e in journal] == sorted(e["id"] for e in journal)


def test_the_fault_applied_is_journaled(client: PortalClient, control: MockPortalControl) -> None:
    rule = control.add_fault(
        selector={"service": "LayThuTuc"},
        schedule={"kind": "sequence", "steps": ["504", "latency:100", "ok"]},
    )
    for _ in range(3):
        client.call("share", "LayThuTuc", maTTHC="1.000656")
    journal = entries(control, service="LayThuTuc")
    assert [(e["http_status"], e["fault"]) for e in journal] == [
        (504, {"rule": rule["id"], "action": "http_error"}),
        (200, {"rule": rule["id"], "action": "latency", "latency_ms": 100}),
        (200, None),
    ]
    assert journal[1]["latency_ms"] >= 100


def test_a_rate_limited_request_is_journaled(
    client: PortalClient, control: MockPortalControl
) -> None:
    control.settings(rate_per_s=0.5, burst=1)
    client.call("share", "LayDanhMucCoQuan")
    assert client.call("share", "LayDanhMucCoQuan").status_code == 429
    entry = entries(control)[-1]
    assert (entry["http_status"], entry["outcome"], entry["fault"]) == (429, "http_error", None)
    assert (entry["rate_limited"], entry["retry_after_s"]) == (True, 2)


# --- filters ------------------------------------------------------------------------------


@dataclass
class Scene:
    """Requests of both units with every outcome; ``middle`` separates two halves."""

    middle: datetime
    first_half: list[int]
    second_half: list[int]


@pytest.fixture
def scene(client: PortalClient, other_client: PortalClient, control: MockPortalControl) -> Scene:
    control.add_fault(selector={"service": "LayThuTuc"}, action={"type": "http_error"})
    control.add_fault(selector={"service": "LayDanhSachTTHC"}, action={"type": "drop"})
    client.create(dossier_json(A))  # 3 ok
    client.create(dossier_json(A))  # 4 partial (-3)
    other_client.create(dossier_json(C))  # 5 ok, H29
    time.sleep(0.01)
    middle = datetime.now(UTC)
    time.sleep(0.01)
    client.call("integration", "KhongCoDichVu")  # 6 rejected (-9)
    client.call("share", "LayThuTuc", maTTHC="1.000656")  # 7 http_error (fault)
    with pytest.raises(httpx.TransportError):
        client.call("share", "LayDanhSachTTHC")  # 8 dropped (fault)
    client.lookup(A)  # 9 ok
    journal = entries(control)
    assert len(journal) == 9  # with the two logins
    return Scene(middle, [e["id"] for e in journal[:5]], [e["id"] for e in journal[5:]])


def test_filter_by_unit(scene: Scene, control: MockPortalControl) -> None:
    every = scene.first_half + scene.second_half
    assert ids(control, unit=H29) == [every[1], every[4]]
    assert ids(control, unit=H26) == [i for i in every if i not in (every[1], every[4])]
    assert ids(control, unit="000.00.00.G05") == []


def test_filter_by_ma_ho_so(scene: Scene, control: MockPortalControl) -> None:
    every = scene.first_half + scene.second_half
    assert ids(control, ma_ho_so=A) == [every[2], every[3], every[8]]
    assert ids(control, ma_ho_so=C) == [every[4]]
    assert ids(control, ma_ho_so=B) == []


@pytest.mark.parametrize(
    ("outcome", "positions"),
    [
        ("ok", [0, 1, 2, 4, 8]),
        ("partial", [3]),
        ("rejected", [5]),
        ("http_error", [6]),
        ("dropped", [7]),
    ],
)
def test_filter_by_outcome(
    scene: Scene, control: MockPortalControl, outcome: str, positions: list[int]
) -> None:
    every = scene.first_half + scene.second_half
    assert ids(control, outcome=outcome) == [every[p] for p in positions]


def test_an_unknown_outcome_is_422(scene: Scene, control: MockPortalControl) -> None:
    assert control.http.get("/_mock/journal", params={"outcome": "fine"}).status_code == 422


def test_filter_by_service_and_fault(scene: Scene, control: MockPortalControl) -> None:
    every = scene.first_half + scene.second_half
    assert ids(control, service="DongBoHoSoMC") == every[2:5]
    assert ids(control, service="auth") == every[:2]
    assert ids(control, faulted=True) == [every[6], every[7]]
    assert ids(control, faulted=False) == [*every[:6], every[8]]
    assert ids(control, service="LayThuTuc", faulted=False) == []


def test_filter_by_time(scene: Scene, control: MockPortalControl) -> None:
    assert ids(control, since=scene.middle) == scene.second_half
    assert ids(control, until=scene.middle) == scene.first_half
    # A window in the portal's local time zone is the same instant.
    local = scene.middle.astimezone(datetime.now().astimezone().tzinfo)
    assert ids(control, since=local) == scene.second_half
    later = scene.middle + timedelta(hours=1)
    assert ids(control, since=scene.middle - timedelta(hours=1), until=later) == (
        scene.first_half + scene.second_half
    )
    assert ids(control, since=later) == []


def test_a_time_without_a_time_zone_is_422(scene: Scene, control: MockPortalControl) -> None:
    response = control.http.get("/_mock/journal", params={"since": "2024-01-25T08:00:00"})
    assert response.status_code == 422
    response = control.http.get("/_mock/journal.ndjson", params={"until": "2024-01-25T08:00:00"})
    assert response.status_code == 422
    assert control.journal()["total"] == 9  # the mock is still fine


def test_limit_and_offset(scene: Scene, control: MockPortalControl) -> None:
    every = scene.first_half + scene.second_half
    page = control.journal(limit=3, offset=2)
    assert page["total"] == 9  # all matches, not the page
    assert [e["id"] for e in page["entries"]] == every[2:5]
    assert ids(control, unit=H26, limit=2, offset=5) == [every[7], every[8]]
    assert ids(control, offset=20) == []
    assert control.http.get("/_mock/journal", params={"limit": 0}).status_code == 422


# --- ring buffer and NDJSON -----------------------------------------------------------------


def test_the_journal_is_a_ring_buffer(client: PortalClient, control: MockPortalControl) -> None:
    control.settings(journal_capacity=5)
    control.reset("journal")
    for number in range(1, 9):
        client.call("share", "TraCuuHoSo", mahoso=f"000.00.53.H26-240125-{number:05d}")
    journal = control.journal()
    assert (journal["total"], journal["dropped"], journal["capacity"]) == (5, 3, 5)
    kept = [e["items"][0]["ma_ho_so"][-1] for e in journal["entries"]]
    assert kept == ["4", "5", "6", "7", "8"]
    lines, dropped = control.journal_ndjson()
    assert dropped == 3
    assert [json.loads(line) for line in lines] == journal["entries"]


@pytest.mark.parametrize(
    "filters",
    [
        {},
        {"unit": H26},
        {"unit": H29},
        {"ma_ho_so": A},
        {"outcome": "ok"},
        {"outcome": "dropped"},
        {"service": "DongBoHoSoMC"},
        {"faulted": True},
        {"limit": 3},
        {"limit": 2, "offset": 4},
        {"unit": H26, "offset": 3},
    ],
)
def test_ndjson_is_the_same_entries_as_json(
    scene: Scene, control: MockPortalControl, filters: dict[str, Any]
) -> None:
    lines, dropped = control.journal_ndjson(**filters)
    assert dropped == 0
    assert all(line.startswith("{") and line.endswith("}") for line in lines)
    assert [json.loads(line) for line in lines] == entries(control, **filters)


def test_ndjson_time_filters(scene: Scene, control: MockPortalControl) -> None:
    lines, _ = control.journal_ndjson(since=scene.middle)
    assert [json.loads(line)["id"] for line in lines] == scene.second_half


def test_ndjson_media_type(scene: Scene, control: MockPortalControl) -> None:
    response = control.http.get("/_mock/journal.ndjson")
    assert response.headers["content-type"].startswith("application/x-ndjson")
    assert response.text.endswith("\n") and response.text.count("\n") == 9


# --- personal data --------------------------------------------------------------------------


def test_the_journal_never_holds_personal_data_or_tokens(
    new_client: NewClient, control: MockPortalControl
) -> None:
    client = new_client()
    token = client.login()
    personal = PERSONAL | {"ChuHoSo": "Nguyễn Văn An", "Fax": "+842838291234"}
    client.create(dossier_json(A, **personal))
    client.update(dossier_json(A, **personal | {"Email": "an.nguyen@@example.vn"}))  # -5
    client.create(dossier_json(B, **personal | {"SoGiayToChuHoSo": "00120456784"}))  # -5
    client.lookup(A)
    control.add_fault(selector={"service": "DongBoHoSoMC"}, action={"type": "ack_then_lose"})
    client.create(dossier_json(C.replace("H29", "H26"), **personal))
    control.expire_sessions(H26)
    assert client.call("share", "TraCuuHoSo", mahoso=A).status_code == 401  # -2
    second = client.login()
    client.lookup(A)

    as_json = json.dumps(control.journal(), ensure_ascii=False)
    lines, _ = control.journal_ndjson()
    as_ndjson = "\n".join(json.dumps(json.loads(line), ensure_ascii=False) for line in lines)
    secrets = [
        "Nguyễn Văn An",
        "Nguyen Van An",
        "001204567845",
        "00120456784",
        "0912345678",
        "an.nguyen@example.vn",
        "an.nguyen@@example.vn",
        "an.nguyen",
        "842838291234",
        token,
        second,
    ]
    for text in (as_json, as_ndjson):
        for secret in secrets:
            assert secret not in text, secret
    assert len(control.journal()["entries"]) == 9


def test_the_unit_filter_is_the_caller_not_the_madonvi_it_claimed(
    client: PortalClient, control: MockPortalControl
) -> None:
    """H26 sending madonvi H29 is H26's mistake: it must not be booked against H29."""
    answer = client.call("share", "LayDanhSachTTHC", madonvi=H29).json()
    assert answer["error_code"] == -10
    assert control.journal(unit=H29)["total"] == 0
    assert [e["madonvi"] for e in control.journal(unit=H26)["entries"]][-1] == H29


def test_the_agency_filter_finds_requests_about_an_agencys_dossiers(
    client: PortalClient, control: MockPortalControl
) -> None:
    client.create(dossier_json("000.00.53.H26-240125-00001"))
    client.create(dossier_json("000.00.54.H26-240125-00001"))
    about_53 = control.journal(agency="000.00.53.H26")["entries"]
    assert [[i["ma_ho_so"] for i in e["items"]] for e in about_53] == [
        ["000.00.53.H26-240125-00001"]
    ]
    assert control.journal(agency=H26)["total"] == len(control.journal(unit=H26)["entries"])


def test_hashes_in_the_journal_are_keyed(client: PortalClient, control: MockPortalControl) -> None:
    """Equal for a repeat, but not the plain SHA-256 anyone could recompute from a guess."""
    from app.domain.dossier import canonical_hash  # noqa: PLC0415

    record = dossier_json()
    client.create(record)
    client.create(record)
    first, second = control.journal(service="DongBoHoSoMC")["entries"]
    assert first["items"][0]["content_hash"] == second["items"][0]["content_hash"]
    assert first["request_hash"] == second["request_hash"]
    assert first["items"][0]["content_hash"] != canonical_hash(record)
    assert canonical_hash(record)[:32] != first["items"][0]["content_hash"]
