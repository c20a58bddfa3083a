"""The conformance report grades a client: a well-behaved one passes every criterion
under a mix of faults; each deliberately bad one fails the criterion it breaks."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from app.mockportal.conformance import IN_FLIGHT_TOLERANCE_S
from app.mockportal.testing import MockPortalControl, MockPortalHandle
from tests.factories import dossier_json, make_progress
from tests.mockportal.helpers import H26, PortalClient, item_codes

CRITERIA = {
    "retries_only_retryable",
    "backs_off",
    "honours_retry_after",
    "reauthenticates_on_session_expiry",
    "no_regressions_pushed",
    "no_unchanged_resend_of_refused_items",
    "keeps_per_dossier_order",
    "stays_under_rate_limit",
}


def failed(report: dict[str, Any]) -> set[str]:
    return {c["name"] for c in report["criteria"] if not c["passed"]}


def evidence(report: dict[str, Any], name: str) -> list[dict[str, Any]]:
    [criterion] = [c for c in report["criteria"] if c["name"] == name]
    found: list[dict[str, Any]] = criterion["evidence"]
    return found


class WellBehavedClient(PortalClient):
    """What the contract asks of a client: back off exponentially on transient failures,
    honour Retry-After, re-authenticate once on -2, resend -3 as an update, never resend
    a refused item, keep each dossier's statuses in order."""

    def send(self, endpoint: str, service: str, **fields: Any) -> dict[str, Any]:
        delay = 0.1
        reauthenticated = False
        for _ in range(10):
            try:
                response = self.call(endpoint, service, **fields)
            except httpx.TransportError:
                time.sleep(delay)
                delay *= 2
                continue
            if response.status_code == 429:
                time.sleep(max(float(response.headers["Retry-After"]), delay))
                delay *= 2
                continue
            if response.status_code >= 500:
                time.sleep(delay)
                delay *= 2
                continue
            body: dict[str, Any] = response.json()
            if body["error_code"] == -2 and not reauthenticated:
                self.login()
                reauthenticated = True
                continue
            return body
        raise AssertionError(f"{service} did not get through")

    def push(self, dossier: dict[str, Any], *, exists: bool) -> None:
        answer = self.send(
            "integration", "DongBoHoSoMC", isUpdating="True" if exists else "False", data=[dossier]
        )
        if item_codes(answer) == [-3]:  # stored by an earlier try whose answer was lost
            answer = self.send("integration", "DongBoHoSoMC", isUpdating="True", data=[dossier])
        assert item_codes(answer) == [0], answer


@pytest.fixture
def good_client(mock_portal: MockPortalHandle) -> Iterator[WellBehavedClient]:
    client = WellBehavedClient(mock_portal.url, H26, timeout=2)
    client.login()
    yield client
    client.close()


def test_a_well_behaved_client_passes_under_a_fault_mix(
    good_client: WellBehavedClient, control: MockPortalControl
) -> None:
    control.add_fault(
        selector={"service": "DongBoHoSoMC"},
        schedule={"kind": "sequence", "steps": ["503", "503", "ok", "drop"]},
    )
    control.add_fault(
        selector={"service": "CapNhatTienDoHoSoMC"},
        schedule={"kind": "sequence", "steps": ["429:1", "expire_session"]},
    )
    control.add_fault(
        selector={"service": "DongBoHoSoMC"},
        action={"type": "commit_then_drop"},
        schedule={"kind": "every_nth", "n": 5},
    )
    codes = [f"000.00.53.H26-240125-{n:05d}" for n in range(1, 4)]
    for code in codes:
        for position, status in enumerate(["2", "4", "9"]):
            good_client.push(dossier_json(code, status), exists=position > 0)
        good_client.send(
            "integration", "CapNhatTienDoHoSoMC", data=[make_progress(code, "9").to_portal()]
        )

    report = control.conformance(H26)
    assert failed(report) == set(), report
    assert report["passed"] is True
    assert {c["name"] for c in report["criteria"]} == CRITERIA
    assert report["entries_examined"] >= 12
    for code in codes:
        stored = control.dossier(code)
        assert stored is not None and stored["TrangThaiHoSo"] == "9"
    journal = control.journal(unit=H26, faulted=True)
    assert journal["total"] >= 5  # the faults really happened


def test_resending_a_refused_item_unchanged_is_caught(
    client: PortalClient, control: MockPortalControl
) -> None:
    invalid = dossier_json(NgayHenTra="20000101000000")
    for _ in range(2):
        answer = client.create(invalid)
        assert item_codes(answer) == [-5]
    report = control.conformance(H26)
    assert failed(report) == {"no_unchanged_resend_of_refused_items"}
    [shown] = evidence(report, "no_unchanged_resend_of_refused_items")
    assert len(shown["entries"]) == 2 and "-5" in shown["detail"]


def test_a_fixed_item_may_be_sent_again(client: PortalClient, control: MockPortalControl) -> None:
    assert item_codes(client.create(dossier_json(NgayHenTra="20000101000000"))) == [-5]
    assert item_codes(client.create(dossier_json())) == [0]
    assert control.conformance(H26)["passed"] is True


def test_ignoring_retry_after_is_caught(client: PortalClient, control: MockPortalControl) -> None:
    control.add_fault(
        action={"type": "rate_limit", "retry_after_s": 2}, schedule={"kind": "first_n", "n": 1}
    )
    first = client.call("share", "LayDanhSachTTHC")
    assert (first.status_code, first.headers["Retry-After"]) == (429, "2")
    time.sleep(0.2)  # some wait, but not the 2 s the portal asked for
    assert client.call("share", "LayDanhSachTTHC").status_code == 200
    report = control.conformance(H26)
    assert failed(report) == {"honours_retry_after"}


def test_a_request_that_may_have_been_in_flight_at_a_429_is_not_counted(
    client: PortalClient, control: MockPortalControl
) -> None:
    """A request arriving right after a 429's answer may have left the client (another
    of its calls, or another process of it) before the client read the 429; one arriving
    later than the in-flight tolerance could not have."""
    control.add_fault(
        action={"type": "rate_limit", "retry_after_s": 2}, schedule={"kind": "first_n", "n": 1}
    )
    assert client.call("share", "LayDanhSachTTHC").status_code == 429
    assert client.call("share", "LayDanhMucCoQuan").status_code == 200  # at once
    time.sleep(IN_FLIGHT_TOLERANCE_S + 0.1)
    assert client.call("share", "LayDanhSachTTHC").status_code == 200
    report = control.conformance(H26)
    assert failed(report) == {"honours_retry_after"}
    [limited, at_once, later] = control.journal(unit=H26)["entries"][-3:]
    assert [e["http_status"] for e in (limited, at_once, later)] == [429, 200, 200]
    [shown] = evidence(report, "honours_retry_after")
    assert shown["entries"] == [limited["id"], later["id"]]


def test_waiting_out_retry_after_passes(client: PortalClient, control: MockPortalControl) -> None:
    control.add_fault(
        action={"type": "rate_limit", "retry_after_s": 1}, schedule={"kind": "first_n", "n": 1}
    )
    assert client.call("share", "LayDanhSachTTHC").status_code == 429
    time.sleep(1.05)
    assert client.call("share", "LayDanhSachTTHC").status_code == 200
    assert control.conformance(H26)["passed"] is True


def test_pushing_9_then_4_is_caught(client: PortalClient, control: MockPortalControl) -> None:
    client.create(dossier_json(status="2"))
    client.update(dossier_json(status="9"))
    assert item_codes(client.update(dossier_json(status="4"))) == [-6]
    report = control.conformance(H26)
    assert failed(report) == {"no_regressions_pushed", "keeps_per_dossier_order"}
    [shown] = evidence(report, "keeps_per_dossier_order")
    assert "sent status 4 after 9" in shown["detail"]


def test_retrying_in_a_hot_loop_is_caught(client: PortalClient, control: MockPortalControl) -> None:
    control.add_fault(
        selector={"service": "DongBoHoSoMC"},
        schedule={"kind": "sequence", "steps": ["503", "503", "ok"]},
    )
    for _ in range(3):
        response = client.call(
            "integration", "DongBoHoSoMC", isUpdating="False", data=[dossier_json()]
        )
    assert response.status_code == 200
    assert failed(control.conformance(H26)) == {"backs_off"}


def test_retrying_without_growing_waits_is_caught(
    client: PortalClient, control: MockPortalControl
) -> None:
    control.add_fault(
        selector={"service": "DongBoHoSoMC"}, schedule={"kind": "sequence", "steps": ["503"] * 4}
    )
    for _ in range(5):
        client.call("integration", "DongBoHoSoMC", isUpdating="False", data=[dossier_json()])
        time.sleep(0.08)  # above the minimum gap, but never longer
    report = control.conformance(H26)
    assert failed(report) == {"backs_off"}
    assert "without growing waits" in evidence(report, "backs_off")[0]["detail"]


def test_reusing_an_expired_session_is_caught(
    client: PortalClient, control: MockPortalControl
) -> None:
    control.expire_sessions(H26)
    for _ in range(2):
        response = client.call("share", "LayDanhSachTTHC")
        assert response.json()["error_code"] == -2
        time.sleep(IN_FLIGHT_TOLERANCE_S + 0.05)  # the answer was surely read
    assert failed(control.conformance(H26)) == {"reauthenticates_on_session_expiry"}


def test_a_call_in_flight_when_the_session_expired_is_not_a_reuse(
    client: PortalClient, control: MockPortalControl
) -> None:
    """Two calls of a concurrent client on the same session: the second reaches the
    portal just after the first was answered -2, before the client could have read it."""
    control.expire_sessions(H26)
    for _ in range(2):
        assert client.call("share", "LayDanhSachTTHC").json()["error_code"] == -2
    client.login()
    assert client.call("share", "LayDanhSachTTHC").json()["error_code"] == 0
    assert control.conformance(H26)["passed"] is True


def test_logging_in_again_after_minus_2_passes(
    client: PortalClient, control: MockPortalControl
) -> None:
    control.expire_sessions(H26)
    assert client.call("share", "LayDanhSachTTHC").json()["error_code"] == -2
    client.login()
    assert client.call("share", "LayDanhSachTTHC").json()["error_code"] == 0
    assert control.conformance(H26)["passed"] is True


def test_progress_before_its_dossier_is_caught(
    client: PortalClient, control: MockPortalControl
) -> None:
    answer = client.progress(make_progress().to_portal())
    assert item_codes(answer) == [-4]
    assert failed(control.conformance(H26)) == {"keeps_per_dossier_order"}


def test_repeating_a_batch_that_is_too_large_is_caught(
    client: PortalClient, control: MockPortalControl
) -> None:
    too_many = [dossier_json(f"000.00.53.H26-240125-{n:05d}") for n in range(101)]
    for _ in range(2):
        response = client.call("integration", "DongBoHoSoMC", isUpdating="False", data=too_many)
        assert response.json()["error_code"] == -8
    assert failed(control.conformance(H26)) == {"retries_only_retryable"}


def test_exceeding_the_rate_limit_is_caught(
    client: PortalClient, control: MockPortalControl
) -> None:
    control.settings(rate_per_s=1, burst=2)
    statuses = [client.call("share", "LayDanhSachTTHC").status_code for _ in range(4)]
    assert statuses.count(429) >= 1
    report = control.conformance(H26)
    assert "stays_under_rate_limit" in failed(report)
    ids = [i for e in evidence(report, "stays_under_rate_limit") for i in e["entries"]]
    limited = control.journal(unit=H26, outcome="http_error")["entries"]
    assert set(ids) == {e["id"] for e in limited if e["rate_limited"]}


def test_the_window_limits_what_is_judged(client: PortalClient, control: MockPortalControl) -> None:
    control.expire_sessions(H26)
    for _ in range(2):
        client.call("share", "LayDanhSachTTHC")
        time.sleep(IN_FLIGHT_TOLERANCE_S + 0.05)
    since = datetime.now(UTC)
    client.login()
    client.call("share", "LayDanhSachTTHC")
    assert not control.conformance(H26)["passed"]
    windowed = control.conformance(H26, since=since)
    assert windowed["passed"] is True
    assert windowed["entries_examined"] == 2
    assert windowed["since"] == since.isoformat()


def test_other_units_do_not_count(
    client: PortalClient,
    new_client: Callable[..., PortalClient],
    control: MockPortalControl,
) -> None:
    other = new_client("000.00.00.H29")
    other.login()
    for _ in range(2):
        other.create(dossier_json("000.00.53.H29-240125-00001", NgayHenTra="20000101000000"))
    assert failed(control.conformance("000.00.00.H29")) == {"no_unchanged_resend_of_refused_items"}
    client.call("share", "LayDanhSachTTHC")
    assert control.conformance(H26)["passed"] is True


def test_evidence_names_real_journal_entries(
    client: PortalClient, control: MockPortalControl
) -> None:
    for _ in range(2):
        client.create(dossier_json(NgayHenTra="20000101000000"))
    report = control.conformance(H26)
    ids = evidence(report, "no_unchanged_resend_of_refused_items")[0]["entries"]
    journal_ids = {e["id"] for e in control.journal(unit=H26)["entries"]}
    assert set(ids) <= journal_ids


def test_waiting_the_same_retry_after_each_time_is_not_a_missing_back_off(
    client: PortalClient, control: MockPortalControl
) -> None:
    """The portal named the wait: a client that keeps honouring it is well behaved."""
    control.add_fault(
        selector={"service": "LayDanhSachTTHC"},
        schedule={"kind": "sequence", "steps": ["429:1"] * 3},
    )
    for _ in range(3):
        assert client.call("share", "LayDanhSachTTHC").status_code == 429
        time.sleep(1.05)
    assert client.call("share", "LayDanhSachTTHC").status_code == 200
    assert control.conformance(H26)["passed"] is True


def test_progress_after_a_create_the_portal_lost_is_not_the_clients_fault(
    client: PortalClient, control: MockPortalControl
) -> None:
    """ack_then_lose: the portal answered success and forgot; the client's progress then
    gets -4 through no fault of its own."""
    control.add_fault(
        selector={"service": "DongBoHoSoMC"},
        action={"type": "ack_then_lose"},
        schedule={"kind": "first_n", "n": 1},
    )
    assert item_codes(client.create(dossier_json())) == [0]
    assert item_codes(client.progress(make_progress().to_portal())) == [-4]
    assert control.conformance(H26)["passed"] is True
