"""Contract §9, faults: every action, every schedule, the selectors, rule order and
rule validation — over real HTTP, since some faults cut the TCP connection."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import httpx
import pytest

from app.mockportal.testing import MockPortalControl
from tests.factories import dossier_json
from tests.mockportal.helpers import H26, H29, PortalClient, item_codes

NewClient = Callable[..., PortalClient]

CODE = dossier_json()["MaHoSo"]
SYNC = {"service": "DongBoHoSoMC"}
READ = {"service": "LayThuTuc"}
# What a dropped connection looks like to httpx (RST or FIN without an answer).
CONNECTION_CUT = (httpx.RemoteProtocolError, httpx.ReadError, httpx.ConnectError)


def code(number: int, agency: str = "000.00.53.H26", day: str = "240125") -> str:
    return f"{agency}-{day}-{number:05d}"


def create(client: PortalClient, *codes: str) -> httpx.Response:
    data = [dossier_json(c) for c in codes or (CODE,)]
    return client.call("integration", "DongBoHoSoMC", isUpdating="False", data=data)


def update(client: PortalClient, *codes: str) -> httpx.Response:
    data = [dossier_json(c) for c in codes or (CODE,)]
    return client.call("integration", "DongBoHoSoMC", isUpdating="True", data=data)


def read(client: PortalClient) -> httpx.Response:
    """A cheap look-up, to drive schedules."""
    return client.call("share", "LayThuTuc", maTTHC="1.000656")


def statuses(client: PortalClient, count: int) -> list[int]:
    return [read(client).status_code for _ in range(count)]


def rule_state(control: MockPortalControl, rule_id: int) -> dict[str, Any]:
    [rule] = [r for r in control.faults() if r["id"] == rule_id]
    return rule


def stored_codes(control: MockPortalControl) -> list[str]:
    return [d["MaHoSo"] for d in control.dossiers()]


def last_entry(control: MockPortalControl, **filters: Any) -> dict[str, Any]:
    entries: list[dict[str, Any]] = control.journal(**filters)["entries"]
    assert entries, filters
    return entries[-1]


def wait_for_entry(control: MockPortalControl, **filters: Any) -> dict[str, Any]:
    """The journal entry of a request whose client gave up (written a little later)."""
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        entries: list[dict[str, Any]] = control.journal(**filters)["entries"]
        if entries:
            return entries[-1]
        time.sleep(0.05)
    raise AssertionError(f"no journal entry for {filters}")


def window(start: timedelta, end: timedelta) -> dict[str, Any]:
    now = datetime.now(UTC)
    return {"kind": "window", "start": (now + start).isoformat(), "end": (now + end).isoformat()}


@pytest.fixture
def fast(control: MockPortalControl) -> None:
    """A rate limit that many quick requests in a row do not reach."""
    control.settings(rate_per_s=10_000, burst=10_000)


# --- actions ------------------------------------------------------------------------------


def test_fixed_latency_delays_then_answers_normally(
    client: PortalClient, control: MockPortalControl
) -> None:
    rule = control.add_fault(selector=SYNC, action={"type": "latency", "latency_ms": 150})
    started = time.perf_counter()
    response = create(client)
    elapsed = time.perf_counter() - started
    assert elapsed >= 0.15
    assert response.status_code == 200 and item_codes(response.json()) == [0]
    assert stored_codes(control) == [CODE]
    entry = last_entry(control, service="DongBoHoSoMC")
    assert entry["fault"] == {"rule": rule["id"], "action": "latency", "latency_ms": 150}
    assert entry["latency_ms"] >= 150 and entry["outcome"] == "ok"


def test_random_latency_is_within_bounds_and_replays_with_its_seed(
    client: PortalClient, control: MockPortalControl
) -> None:
    spec: dict[str, Any] = {
        "selector": READ,
        "action": {"type": "latency", "latency_ms": 50, "latency_max_ms": 200},
        "schedule": {"kind": "always", "seed": 11},
    }

    def delays() -> list[float]:
        rule = control.add_fault(**spec)
        control.reset("journal")
        for _ in range(4):
            started = time.perf_counter()
            assert read(client).json()["error_code"] == 0
            elapsed_ms = (time.perf_counter() - started) * 1000
            delay = last_entry(control)["fault"]["latency_ms"]
            assert 50 <= delay <= 200
            assert elapsed_ms >= delay - 1  # the answer waited the delay it chose
        control.remove_fault(rule["id"])
        return [e["fault"]["latency_ms"] for e in control.journal()["entries"]]

    first = delays()
    assert len(set(first)) == 4  # random, not fixed
    assert delays() == first  # a fresh rule with the same seed replays the same delays


@pytest.mark.parametrize("status", [502, 503, 504])
def test_http_error_answers_the_status_and_stores_nothing(
    client: PortalClient, control: MockPortalControl, status: int
) -> None:
    rule = control.add_fault(selector=SYNC, action={"type": "http_error", "status": status})
    response = create(client)
    assert response.status_code == status
    assert "error_code" not in response.json()
    assert stored_codes(control) == []
    entry = last_entry(control, service="DongBoHoSoMC")
    assert entry["http_status"] == status and entry["outcome"] == "http_error"
    assert entry["fault"] == {"rule": rule["id"], "action": "http_error"}
    assert [(i["ma_ho_so"], i["error_code"], i["stored"]) for i in entry["items"]] == [
        (CODE, None, False)
    ]


def test_http_error_defaults_to_503(client: PortalClient, control: MockPortalControl) -> None:
    control.add_fault(selector=SYNC, action={"type": "http_error"})
    assert create(client).status_code == 503


def test_rate_limit_answers_429_with_the_configured_retry_after(
    client: PortalClient, control: MockPortalControl
) -> None:
    control.add_fault(selector=SYNC, action={"type": "rate_limit", "retry_after_s": 3})
    response = create(client)
    assert response.status_code == 429
    assert response.headers["Retry-After"] == "3"
    assert stored_codes(control) == []
    entry = last_entry(control, service="DongBoHoSoMC")
    assert entry["retry_after_s"] == 3 and entry["rate_limited"] is False
    assert entry["fault"]["action"] == "rate_limit"


def test_expire_session_answers_minus_2_and_the_token_stays_dead(
    client: PortalClient, control: MockPortalControl
) -> None:
    control.add_fault(selector=SYNC, action={"type": "expire_session"}, max_uses=1)
    old_token = client.session
    response = create(client)
    assert (response.status_code, response.json()["error_code"]) == (401, -2)
    assert stored_codes(control) == []
    # The rule is used up, yet the old token is still refused.
    again = read(client)
    assert (again.status_code, again.json()["error_code"]) == (401, -2)
    assert client.login() != old_token
    assert item_codes(create(client).json()) == [0]
    assert stored_codes(control) == [CODE]


def test_hang_never_answers_and_the_server_keeps_serving(
    new_client: NewClient, other_client: PortalClient, control: MockPortalControl
) -> None:
    impatient = new_client(timeout=0.5)
    impatient.login()
    rule = control.add_fault(
        selector={"service": "DongBoHoSoMC", "agency": H26}, action={"type": "hang"}
    )
    raised: list[BaseException] = []

    def push() -> None:
        try:
            create(impatient)
        except Exception as error:  # handed to the test thread
            raised.append(error)

    hung = threading.Thread(target=push)
    hung.start()
    time.sleep(0.1)
    # Meanwhile another client is answered at once.
    started = time.perf_counter()
    assert other_client.lookup_many([code(1, "000.00.53.H29")])["error_code"] == 0
    assert time.perf_counter() - started < 0.3
    assert hung.is_alive()
    hung.join(timeout=5)
    assert [type(e) for e in raised] == [httpx.ReadTimeout]
    entry = wait_for_entry(control, service="DongBoHoSoMC")
    assert entry["outcome"] == "dropped" and entry["http_status"] is None
    assert entry["fault"] == {"rule": rule["id"], "action": "hang"}
    assert entry["latency_ms"] >= 500
    assert stored_codes(control) == []


def test_drop_cuts_the_connection_before_answering(
    client: PortalClient, control: MockPortalControl
) -> None:
    rule = control.add_fault(selector=SYNC, action={"type": "drop"})
    with pytest.raises(CONNECTION_CUT):
        create(client)
    assert stored_codes(control) == []
    entry = last_entry(control, service="DongBoHoSoMC")
    assert entry["outcome"] == "dropped" and entry["http_status"] is None
    assert entry["fault"] == {"rule": rule["id"], "action": "drop"}
    assert entry["items"][0]["stored"] is False
    # The portal is still up: the same client, on a new connection, is answered.
    assert read(client).json()["error_code"] == 0


def test_commit_then_drop_stores_but_never_answers(
    client: PortalClient, control: MockPortalControl
) -> None:
    control.add_fault(selector=SYNC, action={"type": "commit_then_drop"}, max_uses=1)
    with pytest.raises(CONNECTION_CUT):
        create(client)
    stored = control.dossier(CODE)
    assert stored is not None and stored["TrangThaiHoSo"] == "4"
    entry = last_entry(control, service="DongBoHoSoMC")
    assert entry["outcome"] == "dropped" and entry["http_status"] is None
    assert [(i["error_code"], i["stored"]) for i in entry["items"]] == [(0, True)]
    # The client does not know: a resend as create is -3, as update a success.
    assert item_codes(create(client).json()) == [-3]
    assert client.update(dossier_json()) == {
        "error_code": 0,
        "message": "Thành công",
        "data": [{"MaHoSo": CODE, "error_code": 0, "message": "Không có thay đổi"}],
    }


def test_ack_then_lose_answers_success_for_every_item_and_stores_nothing(
    client: PortalClient, control: MockPortalControl
) -> None:
    control.add_fault(selector=SYNC, action={"type": "ack_then_lose"})
    valid, invalid = dossier_json(code(1)), dossier_json(code(2), Email="not-an-address")
    response = client.call("integration", "DongBoHoSoMC", isUpdating="False", data=[valid, invalid])
    assert response.status_code == 200
    answer = response.json()
    assert answer["error_code"] == 0
    assert [(i["MaHoSo"], i["error_code"]) for i in answer["data"]] == [
        (code(1), 0),
        (code(2), 0),
    ]
    assert stored_codes(control) == []
    entry = last_entry(control, service="DongBoHoSoMC")
    assert entry["outcome"] == "ok" and entry["fault"]["action"] == "ack_then_lose"
    assert [(i["ma_ho_so"], i["error_code"], i["stored"]) for i in entry["items"]] == [
        (code(1), 0, False),
        (code(2), 0, False),
    ]
    # What the portal answered as a success is not counted as a rejection.
    stats = control.stats(H26)[H26]
    assert stats["rejected_by_error_code"] == {} and stats["dossiers"] == 0


def test_ack_then_lose_on_progress_stores_no_record(
    client: PortalClient, control: MockPortalControl
) -> None:
    client.create(dossier_json())
    control.add_fault(selector={"service": "CapNhatTienDoHoSoMC"}, action={"type": "ack_then_lose"})
    record = {
        "MaHoSo": CODE,
        "NguoiXuLy": "Trần Thị Bình",
        "ThoiDiemXuLy": "20240125090000",
        "NoiDungXuLy": "Thụ lý",
        "TrangThai": "4",
    }
    assert item_codes(client.progress(record)) == [0]
    stored = control.dossier(CODE)
    assert stored is not None and stored["QuaTrinhXuLy"] == []


def test_reject_refuses_the_items_of_its_prefix_and_processes_the_others(
    client: PortalClient, control: MockPortalControl
) -> None:
    rule = control.add_fault(
        selector={"ma_ho_so_prefix": code(2)}, action={"type": "reject", "error_code": -10}
    )
    answer = create(client, code(1), code(2), code(3)).json()
    assert answer["error_code"] == 1
    assert [(i["MaHoSo"], i["error_code"]) for i in answer["data"]] == [
        (code(1), 0),
        (code(2), -10),
        (code(3), 0),
    ]
    assert answer["data"][1]["message"].startswith("data[1].MaHoSo: ")
    assert sorted(stored_codes(control)) == [code(1), code(3)]
    entry = last_entry(control, service="DongBoHoSoMC")
    assert entry["outcome"] == "partial" and entry["fault"]["action"] == "reject"
    assert [(i["error_code"], i["stored"]) for i in entry["items"]] == [
        (0, True),
        (-10, False),
        (0, True),
    ]
    assert control.stats(H26)[H26]["rejected_by_error_code"] == {"-10": 1}
    # Progress of that dossier is refused too; look-ups are never selected by it.
    record = {
        "MaHoSo": code(2),
        "NguoiXuLy": "Trần Thị Bình",
        "ThoiDiemXuLy": "20240125090000",
        "NoiDungXuLy": "Thụ lý",
        "TrangThai": "4",
    }
    refused = client.call("integration", "CapNhatTienDoHoSoMC", data=[record]).json()
    assert item_codes(refused) == [-10]
    assert client.lookup_many([code(1), code(2)])["khongtimthay"] == [code(2)]
    assert rule_state(control, rule["id"])["fired"] == 2


def test_reject_without_a_prefix_refuses_every_item_with_minus_5_by_default(
    client: PortalClient, control: MockPortalControl
) -> None:
    control.add_fault(selector=SYNC, action={"type": "reject"}, max_uses=1)
    answer = create(client, code(1), code(2)).json()
    assert (answer["error_code"], item_codes(answer)) == (1, [-5, -5])
    assert stored_codes(control) == []
    assert item_codes(create(client, code(1)).json()) == [0]  # the rule is spent


# --- schedules ----------------------------------------------------------------------------


def test_always_fires_on_every_selected_request(
    client: PortalClient, control: MockPortalControl
) -> None:
    rule = control.add_fault(selector=READ, action={"type": "http_error", "status": 503})
    assert statuses(client, 3) == [503, 503, 503]
    state = rule_state(control, rule["id"])
    assert (state["selected"], state["fired"], state["expired"]) == (3, 3, False)


@pytest.mark.usefixtures("fast")
def test_probability_with_a_seed_replays_the_same_pattern(
    client: PortalClient, control: MockPortalControl
) -> None:
    spec: dict[str, Any] = {
        "selector": READ,
        "action": {"type": "http_error", "status": 503},
        "schedule": {"kind": "probability", "probability": 0.3, "seed": 42},
    }

    def pattern(seed: int) -> list[int]:
        rule = control.add_fault(**spec | {"schedule": spec["schedule"] | {"seed": seed}})
        seen = statuses(client, 50)
        state = rule_state(control, rule["id"])
        assert (state["selected"], state["fired"]) == (50, seen.count(503))
        control.remove_fault(rule["id"])
        return seen

    first = pattern(42)
    assert set(first) == {200, 503}
    assert 5 <= first.count(503) <= 25
    assert pattern(42) == first  # a fresh rule, the same seed: the same requests fail
    assert pattern(43) != first


def test_probability_zero_and_one(client: PortalClient, control: MockPortalControl) -> None:
    never = control.add_fault(
        selector=READ,
        action={"type": "http_error", "status": 502},
        schedule={"kind": "probability", "probability": 0},
    )
    control.add_fault(
        selector=READ,
        action={"type": "http_error", "status": 503},
        schedule={"kind": "probability", "probability": 1},
    )
    assert statuses(client, 3) == [503, 503, 503]
    assert rule_state(control, never["id"])["fired"] == 0


def test_first_n_fires_on_the_first_n_selected_requests(
    client: PortalClient, control: MockPortalControl
) -> None:
    rule = control.add_fault(
        selector=READ,
        action={"type": "http_error", "status": 503},
        schedule={"kind": "first_n", "n": 2},
    )
    assert statuses(client, 4) == [503, 503, 200, 200]
    state = rule_state(control, rule["id"])
    assert (state["selected"], state["fired"], state["expired"]) == (4, 2, False)


def test_every_nth_fires_on_each_nth_selected_request(
    client: PortalClient, control: MockPortalControl
) -> None:
    control.add_fault(
        selector=READ,
        action={"type": "http_error", "status": 504},
        schedule={"kind": "every_nth", "n": 3},
    )
    assert statuses(client, 7) == [200, 200, 504, 200, 200, 504, 200]


def test_sequence_503_503_ok(client: PortalClient, control: MockPortalControl) -> None:
    rule = control.add_fault(
        selector=READ, schedule={"kind": "sequence", "steps": ["503", "503", "ok"]}
    )
    assert "action" not in rule
    # After its last step a sequence answers ok.
    assert statuses(client, 5) == [503, 503, 200, 200, 200]
    state = rule_state(control, rule["id"])
    assert (state["selected"], state["fired"]) == (5, 2)


def test_sequence_steps_with_arguments(client: PortalClient, control: MockPortalControl) -> None:
    control.add_fault(
        selector=READ,
        schedule={
            "kind": "sequence",
            "steps": ["429:3", "latency:150", "drop", "502", "504", "ok"],
        },
    )
    limited = read(client)
    assert limited.status_code == 429 and limited.headers["Retry-After"] == "3"
    started = time.perf_counter()
    assert read(client).status_code == 200
    assert time.perf_counter() - started >= 0.15
    with pytest.raises(CONNECTION_CUT):
        read(client)
    assert statuses(client, 3) == [502, 504, 200]
    actions = [
        e["fault"] and e["fault"]["action"] for e in control.journal(service="LayThuTuc")["entries"]
    ]
    assert actions == ["rate_limit", "latency", "drop", "http_error", "http_error", None]


def test_an_active_window_fires(client: PortalClient, control: MockPortalControl) -> None:
    rule = control.add_fault(
        selector=READ,
        action={"type": "http_error", "status": 503},
        schedule=window(-timedelta(hours=1), timedelta(hours=1)),
    )
    assert statuses(client, 2) == [503, 503]
    assert rule_state(control, rule["id"])["fired"] == 2


@pytest.mark.parametrize(
    ("start", "end"),
    [
        (-timedelta(hours=2), -timedelta(hours=1)),  # over
        (timedelta(hours=1), timedelta(hours=2)),  # not yet
    ],
    ids=["past", "future"],
)
def test_a_window_elsewhere_in_time_never_fires(
    client: PortalClient, control: MockPortalControl, start: timedelta, end: timedelta
) -> None:
    rule = control.add_fault(
        selector=READ, action={"type": "http_error", "status": 503}, schedule=window(start, end)
    )
    assert statuses(client, 3) == [200, 200, 200]
    state = rule_state(control, rule["id"])
    assert (state["selected"], state["fired"]) == (3, 0)


def test_a_window_in_another_time_zone(client: PortalClient, control: MockPortalControl) -> None:
    """Start and end are instants: +07:00 (the portal's local time) works as well as UTC."""
    local = datetime.now(UTC).astimezone(timezone(timedelta(hours=7)))
    control.add_fault(
        selector=READ,
        action={"type": "http_error", "status": 503},
        schedule={
            "kind": "window",
            "start": (local - timedelta(minutes=5)).isoformat(),
            "end": (local + timedelta(minutes=5)).isoformat(),
        },
    )
    assert read(client).status_code == 503


def test_max_uses_expires_the_rule(client: PortalClient, control: MockPortalControl) -> None:
    rule = control.add_fault(
        selector=READ, action={"type": "http_error", "status": 503}, max_uses=2
    )
    assert rule["expired"] is False and rule["max_uses"] == 2
    assert statuses(client, 4) == [503, 503, 200, 200]
    state = rule_state(control, rule["id"])
    # An expired rule is no longer evaluated: it selects nothing more.
    assert (state["expired"], state["fired"], state["selected"]) == (True, 2, 2)


# --- selectors ----------------------------------------------------------------------------


def test_agency_selector_matches_the_calling_unit(
    client: PortalClient, other_client: PortalClient, control: MockPortalControl
) -> None:
    rule = control.add_fault(selector={"agency": H29}, action={"type": "http_error"})
    assert read(client).status_code == 200
    assert read(other_client).status_code == 503
    state = rule_state(control, rule["id"])
    assert (state["selected"], state["fired"]) == (1, 1)


def test_agency_selector_matches_the_agency_owning_a_dossier(
    client: PortalClient, control: MockPortalControl
) -> None:
    control.add_fault(selector={"agency": "000.00.53.H26"}, action={"type": "http_error"})
    assert create(client, code(1, "000.00.53.H26")).status_code == 503
    assert item_codes(create(client, code(2, "000.00.54.H26")).json()) == [0]
    # One matching item is enough to select the whole request.
    assert create(client, code(3, "000.00.54.H26"), code(4, "000.00.53.H26")).status_code == 503
    assert stored_codes(control) == [code(2, "000.00.54.H26")]


def test_service_selector(client: PortalClient, control: MockPortalControl) -> None:
    rule = control.add_fault(selector=SYNC, action={"type": "http_error"})
    assert read(client).status_code == 200
    assert create(client).status_code == 503
    assert rule_state(control, rule["id"])["selected"] == 1


def test_service_selector_for_auth(new_client: NewClient, control: MockPortalControl) -> None:
    control.add_fault(selector={"service": "auth"}, action={"type": "http_error", "status": 502})
    assert new_client().auth().status_code == 502


def test_ma_ho_so_prefix_selector(client: PortalClient, control: MockPortalControl) -> None:
    prefix = "000.00.53.H26-2402"
    rule = control.add_fault(selector={"ma_ho_so_prefix": prefix}, action={"type": "http_error"})
    january, february = code(1, day="240125"), code(1, day="240201")
    assert item_codes(create(client, january).json()) == [0]
    assert create(client, february).status_code == 503
    # Look-ups carry codes too.
    assert client.call("share", "TraCuuHoSo", mahoso=february).status_code == 503
    assert client.call("share", "TraCuuHoSo", dsmahoso=[january, february]).status_code == 503
    assert client.call("share", "TraCuuHoSo", mahoso=january).status_code == 200
    assert rule_state(control, rule["id"])["selected"] == 3
    assert stored_codes(control) == [january]


def test_all_selector_conditions_must_hold(
    client: PortalClient, control: MockPortalControl
) -> None:
    control.add_fault(
        selector={"agency": H26, "service": "DongBoHoSoMC", "ma_ho_so_prefix": code(2)},
        action={"type": "http_error"},
    )
    assert item_codes(create(client, code(1)).json()) == [0]
    assert read(client).status_code == 200
    assert create(client, code(2)).status_code == 503


@pytest.mark.parametrize(
    "selector",
    [
        {"agency": H29},
        {"agency": "000.00.54.H26"},
        {"service": "CapNhatTienDoHoSoMC"},
        {"ma_ho_so_prefix": "000.00.53.H29-"},
    ],
)
def test_a_rule_that_does_not_match_neither_fires_nor_counts(
    client: PortalClient, control: MockPortalControl, selector: dict[str, str]
) -> None:
    rule = control.add_fault(selector=selector, action={"type": "http_error"})
    assert item_codes(create(client).json()) == [0]
    assert read(client).status_code == 200
    state = rule_state(control, rule["id"])
    assert (state["selected"], state["fired"]) == (0, 0)
    assert last_entry(control)["fault"] is None


def test_rules_apply_in_order_and_the_first_that_fires_wins(
    client: PortalClient, control: MockPortalControl
) -> None:
    every_second = control.add_fault(
        selector=READ,
        action={"type": "http_error", "status": 502},
        schedule={"kind": "every_nth", "n": 2},
    )
    always = control.add_fault(selector=READ, action={"type": "http_error", "status": 503})
    # 1st: the first rule is selected but does not fire, so the second decides.
    # 2nd: the first rule fires; the second is not even consulted.
    assert statuses(client, 4) == [503, 502, 503, 502]
    first, second = rule_state(control, every_second["id"]), rule_state(control, always["id"])
    assert (first["selected"], first["fired"]) == (4, 2)
    assert (second["selected"], second["fired"]) == (2, 2)
    faults = [e["fault"]["rule"] for e in control.journal(service="LayThuTuc")["entries"]]
    assert faults == [always["id"], every_second["id"], always["id"], every_second["id"]]


# --- rule management and validation -------------------------------------------------------


@pytest.mark.parametrize(
    "rule",
    [
        {"action": {"type": "latency"}},
        {"action": {"type": "latency", "latency_ms": 200, "latency_max_ms": 100}},
        {"action": {"type": "latency", "latency_ms": -1}},
        {"action": {"type": "teleport"}},
        {"action": {"type": "http_error", "status": 500}},
        {"action": {"type": "http_error"}, "schedule": {"kind": "probability"}},
        {"action": {"type": "http_error"}, "schedule": {"kind": "probability", "probability": 2}},
        {"action": {"type": "http_error"}, "schedule": {"kind": "first_n"}},
        {"action": {"type": "http_error"}, "schedule": {"kind": "every_nth", "n": 0}},
        {"schedule": {"kind": "sequence", "steps": ["503", "teapot"]}},
        {"schedule": {"kind": "sequence", "steps": ["latency:soon"]}},
        {"schedule": {"kind": "sequence", "steps": ["ok:1"]}},
        {"schedule": {"kind": "sequence"}},
        {"action": {"type": "http_error"}, "schedule": {"kind": "sometimes"}},
        {},
        {"schedule": {"kind": "always"}},
        {
            "action": {"type": "http_error"},
            "schedule": {
                "kind": "window",
                "start": "2024-01-25T08:00:00",
                "end": "2099-01-25T08:00:00",
            },
        },
        {"action": {"type": "http_error"}, "schedule": {"kind": "window"}},
        {"action": {"type": "http_error"}, "max_uses": 0},
        {"action": {"type": "http_error"}, "selector": {"unit": H26}},
        {"action": {"type": "http_error"}, "priority": 1},
        {"action": {"type": "reject", "error_code": -3}},
        {"action": {"type": "http_error", "error_code": -5}},
    ],
    ids=[
        "latency-without-latency_ms",
        "latency-max-below-min",
        "negative-latency",
        "unknown-action",
        "http-error-500",
        "probability-without-probability",
        "probability-above-1",
        "first_n-without-n",
        "every_nth-zero",
        "unknown-sequence-step",
        "bad-latency-step",
        "ok-with-argument",
        "sequence-without-steps",
        "unknown-schedule",
        "no-action",
        "no-action-always",
        "window-without-tz",
        "window-without-bounds",
        "max_uses-zero",
        "unknown-selector-field",
        "unknown-rule-field",
        "reject-with-a-retryable-code",
        "error_code-without-reject",
    ],
)
def test_a_bad_rule_is_422_and_not_added(control: MockPortalControl, rule: dict[str, Any]) -> None:
    response = control.http.post("/_mock/faults", json=rule)
    assert response.status_code == 422, response.text
    assert control.faults() == []


def test_a_rule_is_described_as_posted(control: MockPortalControl) -> None:
    rule = control.add_fault(
        selector={"agency": H26, "service": "DongBoHoSoMC"},
        action={"type": "http_error", "status": 503},
        schedule={"kind": "probability", "probability": 0.2, "seed": 7},
        max_uses=3,
    )
    assert rule == {
        "id": rule["id"],
        "selector": {"agency": H26, "service": "DongBoHoSoMC"},
        "action": {"type": "http_error", "status": 503},
        "schedule": {"kind": "probability", "probability": 0.2, "seed": 7},
        "max_uses": 3,
        "selected": 0,
        "fired": 0,
        "expired": False,
    }
    assert control.faults() == [rule]


def test_remove_one_rule(client: PortalClient, control: MockPortalControl) -> None:
    first = control.add_fault(selector=READ, action={"type": "http_error", "status": 502})
    second = control.add_fault(selector=READ, action={"type": "http_error", "status": 503})
    assert read(client).status_code == 502
    control.remove_fault(first["id"])
    assert [r["id"] for r in control.faults()] == [second["id"]]
    assert read(client).status_code == 503
    assert control.http.delete(f"/_mock/faults/{first['id']}").status_code == 404


def test_clear_all_rules(client: PortalClient, control: MockPortalControl) -> None:
    for status in (502, 503, 504):
        control.add_fault(selector=READ, action={"type": "http_error", "status": status})
    control.clear_faults()
    assert control.faults() == []
    assert read(client).status_code == 200


def test_a_window_that_ends_before_it_starts_is_422(control: MockPortalControl) -> None:
    now = datetime.now(UTC)
    response = control.http.post(
        "/_mock/faults",
        json={
            "action": {"type": "drop"},
            "schedule": {
                "kind": "window",
                "start": now.isoformat(),
                "end": (now - timedelta(seconds=1)).isoformat(),
            },
        },
    )
    assert response.status_code == 422
    assert control.faults() == []
