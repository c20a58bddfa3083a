"""The portal client (app/sync/portal.py) against the mock portal over real HTTP.

Contract references: §1 transport (Retry-After as seconds or an HTTP-date), §2 sessions,
§3/§4 calls, §6 error codes and what a client does about each, §7 rate limit, §8
personal data. Retries here use the client's real back-off (0.5 s, then 1 s, plus
jitter), so the tests that retry take a second or two each.
"""

from __future__ import annotations

import asyncio
import email.utils
import io
import itertools
import json
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import httpx
import pytest
from pydantic import SecretStr

import app.sync.portal as portal_module
from app.config import PortalAccount
from app.domain.codes import ErrorCode
from app.mockportal.core import PortalError as MockPortalError
from app.mockportal.testing import MockPortalControl, MockPortalHandle
from app.sync.portal import (
    CircuitBreaker,
    CircuitOpen,
    PortalClient,
    PortalRefused,
    PortalUnavailable,
    parse_retry_after,
)
from tests.factories import PERSONAL, dossier_json, make_progress
from tests.sync.portal_helpers import (
    DEMO_UNITS,
    G05,
    H26,
    H29,
    RecordingObserver,
    arrived,
    assert_passes,
    entries,
    portal_settings,
)

NEW = "000.00.53.H26-240125-00001"
EXISTING = "000.00.53.H26-240125-00002"
OTHER = "000.00.53.H26-240125-00003"
MISSING = "000.00.53.H26-240125-00099"
FOREIGN = "000.00.53.H29-240125-00001"  # a dossier of H29, not H26's to send


# --- helpers ----------------------------------------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class MakeClient(Protocol):
    def __call__(
        self,
        *,
        units: tuple[str, ...] = ...,
        password: str = ...,
        timeout_s: float = ...,
        max_batch: int = ...,
        breaker: CircuitBreaker | None = ...,
        observer: RecordingObserver | None = ...,
        http: httpx.AsyncClient | None = ...,
        url: str | None = ...,
        max_wait_s: float = ...,
        rate_limit_per_s: float = ...,
        rate_limit_burst: int = ...,
    ) -> PortalClient: ...


@pytest.fixture
def control(mock_portal: MockPortalHandle) -> MockPortalControl:
    return mock_portal.control


@pytest.fixture
async def new_client(mock_portal: MockPortalHandle) -> AsyncIterator[MakeClient]:
    """Make portal clients (of the mock unless ``url``/``http`` say otherwise); every one
    is closed after the test."""
    made: list[PortalClient] = []

    def make(
        *,
        units: tuple[str, ...] = DEMO_UNITS,
        password: str = "demo",
        timeout_s: float = 10.0,
        max_batch: int = 100,
        breaker: CircuitBreaker | None = None,
        observer: RecordingObserver | None = None,
        http: httpx.AsyncClient | None = None,
        url: str | None = None,
        max_wait_s: float = 10.0,
        rate_limit_per_s: float = 50.0,
        rate_limit_burst: int = 20,
    ) -> PortalClient:
        settings = portal_settings(
            url or mock_portal.url,
            units=units,
            password=password,
            timeout_s=timeout_s,
            max_batch=max_batch,
            rate_limit_per_s=rate_limit_per_s,
            rate_limit_burst=rate_limit_burst,
        )
        made.append(
            PortalClient(
                settings, http=http, breaker=breaker, observer=observer, max_wait_s=max_wait_s
            )
        )
        return made[-1]

    yield make
    for client in made:
        await client.aclose()


@pytest.fixture
async def client(new_client: MakeClient) -> PortalClient:
    return new_client()


async def entries_when(
    control: MockPortalControl, count: int, **filters: Any
) -> list[dict[str, Any]]:
    """The journal once it holds ``count`` matching entries (a hung or dropped request is
    journaled only when the mock notices the connection is gone)."""
    deadline = time.monotonic() + 3.0
    while True:
        found = entries(control, **filters)
        if len(found) >= count or time.monotonic() > deadline:
            return found
        await asyncio.sleep(0.05)


def gaps(found: list[dict[str, Any]]) -> list[float]:
    times = [arrived(e) for e in found]
    return [(b - a).total_seconds() for a, b in itertools.pairwise(times)]


def codes(outcomes: list[Any]) -> list[int]:
    return [o.code for o in outcomes]


# --- login (§2) -------------------------------------------------------------------------


async def test_login_is_lazy_and_once_per_unit(
    client: PortalClient, control: MockPortalControl
) -> None:
    assert entries(control) == []  # constructing the client sends nothing

    await client.procedures(H26)
    await client.agencies(H26)
    await client.procedures(H29)

    journal = entries(control)
    assert [(e["endpoint"], e["unit"]) for e in journal] == [
        ("auth", H26),
        ("share", H26),
        ("share", H26),
        ("auth", H29),
        ("share", H29),
    ]
    h26_session, h29_session = journal[0]["session"], journal[3]["session"]
    assert h26_session != h29_session
    assert [e["session"] for e in journal[1:3]] == [h26_session, h26_session]
    assert journal[4]["session"] == h29_session
    assert all(e["madonvi"] == e["unit"] for e in journal if e["endpoint"] == "share")


async def test_a_unit_without_an_account_is_refused_without_sending(
    new_client: MakeClient, control: MockPortalControl
) -> None:
    client = new_client(units=(H26,))
    with pytest.raises(PortalRefused) as refused:
        await client.procedures(G05)
    assert refused.value.code == -1
    assert entries(control) == []


async def test_a_bad_password_is_refused_once_without_a_retry_storm(
    new_client: MakeClient, control: MockPortalControl
) -> None:
    observer = RecordingObserver()
    client = new_client(password="wrong", observer=observer)
    with pytest.raises(PortalRefused) as refused:
        await client.sync_dossiers(H26, [dossier_json(NEW)], updating=False)
    assert refused.value.code == -1
    [auth] = entries(control, unit=H26)
    assert (auth["endpoint"], auth["http_status"], auth["error_code"]) == ("auth", 401, -1)
    assert observer.requests == [("auth", "error_-1")]
    assert client.breaker.state == "closed"  # a refusal is an answer, not an outage
    assert_passes(control.conformance(H26), "retries_only_retryable")


# --- the calls (§3, §4) -----------------------------------------------------------------


async def test_create_answers_per_item_codes_in_order(
    client: PortalClient, control: MockPortalControl
) -> None:
    assert codes(await client.sync_dossiers(H26, [dossier_json(EXISTING)], updating=False)) == [0]

    outcomes = await client.sync_dossiers(
        H26,
        [
            dossier_json(NEW, "2"),
            dossier_json(EXISTING, "4"),
            dossier_json(OTHER, "2", Foo="x"),
            dossier_json(FOREIGN, "2"),
        ],
        updating=False,
    )

    assert [o.ma_ho_so for o in outcomes] == [NEW, EXISTING, OTHER, FOREIGN]
    assert codes(outcomes) == [0, -3, -5, -10]
    assert outcomes[2].message.startswith("data[2].Foo"), outcomes[2].message
    assert control.dossier(NEW) is not None
    assert control.dossier(OTHER) is None
    assert control.dossier(FOREIGN) is None
    [partial] = entries(control, service="DongBoHoSoMC", outcome="partial")
    assert partial["is_updating"] == "False"


async def test_update_answers_per_item_codes_in_order(
    client: PortalClient, control: MockPortalControl
) -> None:
    stored = [dossier_json(code, "4") for code in (NEW, EXISTING, OTHER)]
    assert codes(await client.sync_dossiers(H26, stored, updating=False)) == [0, 0, 0]

    outcomes = await client.sync_dossiers(
        H26,
        [
            dossier_json(NEW, "9"),
            dossier_json(MISSING, "4"),
            dossier_json(EXISTING, "4", NgayHenTra="20240101000000"),
            dossier_json(OTHER, "2"),
            dossier_json(FOREIGN, "4"),
        ],
        updating=True,
    )

    assert [o.ma_ho_so for o in outcomes] == [NEW, MISSING, EXISTING, OTHER, FOREIGN]
    assert codes(outcomes) == [0, -4, -5, -6, -10]
    assert outcomes[2].message.startswith("data[2].NgayHenTra"), outcomes[2].message
    assert outcomes[3].message.startswith("data[3].TrangThaiHoSo"), outcomes[3].message
    assert "4" in outcomes[3].message  # names both codes
    assert "2" in outcomes[3].message.removeprefix("data[3]")
    assert (control.dossier(NEW) or {})["TrangThaiHoSo"] == "9"
    assert (control.dossier(OTHER) or {})["TrangThaiHoSo"] == "4"  # -6: kept as stored
    [partial] = entries(control, service="DongBoHoSoMC", outcome="partial")
    assert partial["is_updating"] == "True"


async def test_update_progress(client: PortalClient, control: MockPortalControl) -> None:
    await client.sync_dossiers(H26, [dossier_json(NEW, "2")], updating=False)
    records = [
        make_progress(NEW, "4").to_portal(),
        make_progress(MISSING, "4").to_portal(),
    ]
    outcomes = await client.update_progress(H26, records)
    assert [(o.ma_ho_so, o.code) for o in outcomes] == [(NEW, 0), (MISSING, -4)]
    [stored] = (control.dossier(NEW) or {})["QuaTrinhXuLy"]
    assert stored["TrangThai"] == "4"


async def test_lookup_over_100_codes_is_sent_in_chunks_of_100(
    client: PortalClient, control: MockPortalControl
) -> None:
    await client.sync_dossiers(H26, [dossier_json(NEW), dossier_json(EXISTING)], updating=False)
    await client.update_progress(H26, [make_progress(NEW, "4").to_portal()])
    unknown = [f"000.00.53.H26-240125-{n:05d}" for n in range(100, 247)]
    asked = [NEW, *unknown[:120], EXISTING, FOREIGN, *unknown[120:]]
    assert len(asked) == 150

    result = await client.lookup(H26, asked)

    assert set(result.found) == {NEW, EXISTING}
    assert result.found[NEW]["TrangThaiHoSo"] == "4"
    assert [p["TrangThai"] for p in result.found[NEW]["QuaTrinhXuLy"]] == ["4"]
    assert result.missing == [c for c in asked if c not in (NEW, EXISTING)]
    calls = entries(control, service="TraCuuHoSo")
    assert [e["item_count"] for e in calls] == [100, 50]


async def test_procedures_and_agencies(client: PortalClient) -> None:
    procedures = await client.procedures(H26)
    assert len(procedures) >= 50
    [birth] = [p for p in procedures if p["MaTTHC"] == "1.000656"]
    assert birth["TenTTHC"] == "Đăng ký khai sinh"

    agencies = await client.agencies(G05)
    by_code = {a["MaCoQuan"]: a for a in agencies}
    assert by_code[H26]["Cap"] == "TINH"
    assert by_code[G05]["Cap"] == "BO"


# --- -2: session expired (§2) -----------------------------------------------------------


async def test_after_the_session_expires_the_client_logs_in_again_once(
    client: PortalClient, control: MockPortalControl
) -> None:
    await client.procedures(H26)
    assert control.expire_sessions(H26) == 1

    assert len(await client.agencies(H26)) > 0

    journal = entries(control, unit=H26)
    assert [(e["endpoint"], e["service"], e["error_code"]) for e in journal] == [
        ("auth", "auth", 0),
        ("share", "LayDanhSachTTHC", 0),
        ("share", "LayDanhMucCoQuan", -2),
        ("auth", "auth", 0),
        ("share", "LayDanhMucCoQuan", 0),
    ]
    first, second = journal[0]["session"], journal[3]["session"]
    assert first != second
    assert [e["session"] for e in journal] == [first, first, first, second, second]
    assert journal[2]["http_status"] == 401
    report = control.conformance(H26)
    assert_passes(report, "reauthenticates_on_session_expiry")
    assert report["passed"], report


async def test_concurrent_calls_after_expiry_share_one_new_login(
    client: PortalClient, control: MockPortalControl
) -> None:
    await client.procedures(H26)
    control.expire_sessions(H26)

    await asyncio.gather(*(client.agencies(H26) for _ in range(5)))

    journal = entries(control, unit=H26)
    auths = [e for e in journal if e["endpoint"] == "auth"]
    assert len(auths) == 2, [e["session"] for e in auths]  # the first login and one more
    old, new = auths[0]["session"], auths[1]["session"]
    calls = [e for e in journal if e["service"] == "LayDanhMucCoQuan"]
    assert [(e["session"], e["error_code"]) for e in calls] == [(old, -2)] * 5 + [(new, 0)] * 5
    # Each call used the old session once, then the shared new one. Not asserted: the
    # report's reauthenticates_on_session_expiry, which judges by arrival time, so the
    # requests still in flight with the old session when the first -2 was answered count
    # as "reused after -2" although the client could not have known.


async def test_calls_waiting_for_a_login_answered_503_do_not_log_in_again_at_once(
    client: PortalClient, control: MockPortalControl
) -> None:
    """Calls queued behind a login share its failure too, not only its success: each
    waiting call sending the same login the moment the first one failed is a hot loop
    from the portal's side (the chaos suite caught two logins 3 ms apart)."""
    control.add_fault(selector={"service": "auth"}, schedule={"kind": "sequence", "steps": ["503"]})

    await asyncio.gather(*(client.agencies(H26) for _ in range(5)))

    auths = entries(control, service="auth")
    assert [e["http_status"] for e in auths] == [503, 200]
    assert gaps(auths)[0] >= 0.5
    assert_passes(control.conformance(H26), "backs_off")


async def test_logins_that_keep_failing_wait_longer_each_time(
    client: PortalClient, control: MockPortalControl
) -> None:
    control.add_fault(
        selector={"service": "auth"}, schedule={"kind": "sequence", "steps": ["503", "503"]}
    )

    await asyncio.gather(*(client.agencies(H26) for _ in range(3)))

    auths = entries(control, service="auth")
    assert [e["http_status"] for e in auths] == [503, 503, 200]
    first, second = gaps(auths)
    assert first >= 0.5
    assert second > first
    assert_passes(control.conformance(H26), "backs_off")


async def test_an_expire_session_fault_mid_push_is_survived(
    client: PortalClient, control: MockPortalControl
) -> None:
    await client.procedures(H26)
    control.add_fault(
        selector={"service": "DongBoHoSoMC"},
        schedule={"kind": "sequence", "steps": ["expire_session"]},
    )
    assert codes(await client.sync_dossiers(H26, [dossier_json(NEW)], updating=False)) == [0]
    pushes = entries(control, service="DongBoHoSoMC")
    assert [e["error_code"] for e in pushes] == [-2, 0]
    assert pushes[0]["session"] != pushes[1]["session"]
    assert control.conformance(H26)["passed"]


# --- transient failures (§1, §6, §7) ----------------------------------------------------


async def test_two_503s_then_success_with_growing_waits(
    client: PortalClient, control: MockPortalControl
) -> None:
    control.add_fault(
        selector={"service": "DongBoHoSoMC"},
        schedule={"kind": "sequence", "steps": ["503", "503", "ok"]},
    )
    outcomes = await client.sync_dossiers(H26, [dossier_json(NEW)], updating=False)
    assert codes(outcomes) == [0]

    pushes = entries(control, service="DongBoHoSoMC")
    assert [e["http_status"] for e in pushes] == [503, 503, 200]
    assert len({e["request_hash"] for e in pushes}) == 1  # the same request, repeated
    first, second = gaps(pushes)
    assert first >= 0.5  # exponential back-off: 0.5 s (+ jitter), then 1 s (+ jitter)
    assert second >= 1.0
    assert second > first
    report = control.conformance(H26)
    assert_passes(report, "backs_off", "retries_only_retryable")
    assert report["passed"], report


@pytest.mark.parametrize("step", ["drop", "504", "502"])
async def test_a_dropped_connection_or_gateway_error_is_retried(
    client: PortalClient, control: MockPortalControl, step: str
) -> None:
    control.add_fault(
        selector={"service": "DongBoHoSoMC"}, schedule={"kind": "sequence", "steps": [step, "ok"]}
    )
    outcomes = await client.sync_dossiers(H26, [dossier_json(NEW)], updating=False)
    assert codes(outcomes) == [0]
    pushes = await entries_when(control, 2, service="DongBoHoSoMC")
    expected = None if step == "drop" else int(step)
    assert [e["http_status"] for e in pushes] == [expected, 200]
    assert gaps(pushes)[0] >= 0.5
    assert (control.dossier(NEW) or {})["TrangThaiHoSo"] == "4"
    assert control.conformance(H26)["passed"]


async def test_a_create_stored_before_the_connection_dropped_comes_back_as_minus_3(
    client: PortalClient, control: MockPortalControl
) -> None:
    """commit-then-drop: the client cannot know it was stored; the retry answers -3 and
    the caller resends it as an update (§3.1)."""
    control.add_fault(
        selector={"service": "DongBoHoSoMC"},
        schedule={"kind": "sequence", "steps": ["commit_then_drop"]},
    )
    [outcome] = await client.sync_dossiers(H26, [dossier_json(NEW)], updating=False)
    assert outcome.code == -3
    assert codes(await client.sync_dossiers(H26, [dossier_json(NEW)], updating=True)) == [0]


async def test_a_portal_that_keeps_failing_is_unavailable_after_the_attempts(
    client: PortalClient, control: MockPortalControl
) -> None:
    control.add_fault(
        selector={"service": "DongBoHoSoMC"},
        action={"type": "http_error", "status": 503},
        schedule={"kind": "always"},
    )
    with pytest.raises(PortalUnavailable) as unavailable:
        await client.sync_dossiers(H26, [dossier_json(NEW)], updating=False)
    assert not isinstance(unavailable.value, CircuitOpen)
    pushes = entries(control, service="DongBoHoSoMC")
    assert len(pushes) == PortalClient.attempts == 3
    assert {e["http_status"] for e in pushes} == {503}
    assert control.dossier(NEW) is None
    assert_passes(control.conformance(H26), "backs_off")


async def test_a_hanging_portal_times_out_is_retried_then_unavailable(
    new_client: MakeClient, control: MockPortalControl
) -> None:
    client = new_client(timeout_s=0.3)
    control.add_fault(
        selector={"service": "LayDanhSachTTHC"},
        action={"type": "hang"},
        schedule={"kind": "always"},
    )
    started = time.monotonic()
    with pytest.raises(PortalUnavailable):
        await client.procedures(H26)
    assert time.monotonic() - started >= 3 * 0.3 + 0.5 + 1.0  # 3 timeouts + 2 back-offs
    hung = await entries_when(control, 3, service="LayDanhSachTTHC")
    assert len(hung) == 3
    assert {e["http_status"] for e in hung} == {None}
    assert gaps(hung)[0] >= 0.3 + 0.5
    assert_passes(control.conformance(H26), "backs_off")


async def test_a_hang_then_success_recovers(
    new_client: MakeClient, control: MockPortalControl
) -> None:
    client = new_client(timeout_s=0.3)
    control.add_fault(
        selector={"service": "LayDanhSachTTHC"}, schedule={"kind": "sequence", "steps": ["hang"]}
    )
    assert len(await client.procedures(H26)) > 0


async def test_an_internal_error_minus_99_is_retried(
    mock_portal: MockPortalHandle,
    client: PortalClient,
    control: MockPortalControl,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    core = mock_portal.portal.core
    working = core.procedure_list
    failures = [RuntimeError("simulated bug")]

    def broken_once(*args: Any) -> dict[str, Any]:
        if failures:
            raise failures.pop()
        result: dict[str, Any] = working(*args)
        return result

    monkeypatch.setattr(core, "procedure_list", broken_once)
    assert len(await client.procedures(H26)) > 0
    calls = entries(control, service="LayDanhSachTTHC")
    assert [(e["http_status"], e["error_code"]) for e in calls] == [(500, -99), (200, 0)]
    assert gaps(calls)[0] >= 0.5
    assert control.conformance(H26)["passed"]


# --- 429 and Retry-After (§1, §6, §7) ---------------------------------------------------


async def test_a_429_is_waited_out_before_anything_is_sent_again(
    client: PortalClient, control: MockPortalControl
) -> None:
    await client.agencies(H26)  # logged in
    control.add_fault(
        selector={"agency": H26, "service": "LayDanhSachTTHC"},
        action={"type": "rate_limit", "retry_after_s": 1},
        schedule={"kind": "first_n", "n": 1},
    )
    assert len(await client.procedures(H26)) > 0

    calls = entries(control, service="LayDanhSachTTHC")
    assert [e["http_status"] for e in calls] == [429, 200]
    assert calls[0]["retry_after_s"] == 1
    assert gaps(calls)[0] >= 1.0
    report = control.conformance(H26)
    assert_passes(report, "honours_retry_after", "backs_off")


async def test_the_client_paces_each_unit_under_the_portals_rate_limit(
    new_client: MakeClient, control: MockPortalControl
) -> None:
    """§7: sent no faster than the unit's bucket refills, the calls are never answered
    429 by the portal's limiter; a client allowed more than the portal is."""
    control.settings(rate_per_s=10, burst=5)

    async def burst(client: PortalClient, unit: str) -> list[dict[str, Any]]:
        await asyncio.gather(*(client.lookup(unit, [MISSING]) for _ in range(14)))
        return entries(control, agency=unit)

    paced = await burst(new_client(rate_limit_per_s=10, rate_limit_burst=3), H26)
    assert [e for e in paced if e["rate_limited"]] == []
    assert len(paced) == 15  # the login and fourteen lookups, each answered the first time
    # Three at once, then one every tenth of a second: 12 more take at least 1.2 s.
    assert (arrived(paced[-1]) - arrived(paced[0])).total_seconds() >= 1.1
    assert_passes(control.conformance(H26), "stays_under_rate_limit")

    # The same calls from a client allowed five times the portal's rate, for another unit
    # (a bucket of its own at the portal): the portal's limiter refuses some.
    eager = await burst(new_client(rate_limit_per_s=50, rate_limit_burst=20), H29)
    assert any(e["rate_limited"] for e in eager)


async def test_calls_the_open_breaker_stops_fail_at_once_without_waiting_for_a_turn(
    new_client: MakeClient, control: MockPortalControl
) -> None:
    """A call that will not be sent (breaker open) fails at once, even when the unit's
    turns are spent: it does not sit out the pace first."""
    clock = FakeClock()
    client = new_client(
        breaker=CircuitBreaker(threshold=1, cooldown_s=30, clock=clock),
        rate_limit_per_s=0.2,  # a turn every five seconds
        rate_limit_burst=2,
    )
    await client.agencies(H26)  # the login: one turn of two
    control.add_fault(
        selector={"service": "LayDanhSachTTHC"},
        action={"type": "http_error", "status": 503},
        schedule={"kind": "first_n", "n": 1},
    )
    with pytest.raises(CircuitOpen):
        await client.procedures(H26)  # the second turn: answered 503, the breaker opens
    started = time.monotonic()
    for _ in range(3):
        with pytest.raises(CircuitOpen):
            await client.lookup(H26, [NEW])
    # In line for a turn before finding the breaker open: five seconds each.
    assert time.monotonic() - started < 1.0
    assert len(entries(control, service="TraCuuHoSo")) == 0


async def test_a_call_cancelled_while_it_waits_its_turn_gives_the_turn_back(
    new_client: MakeClient,
) -> None:
    client = new_client(rate_limit_per_s=1, rate_limit_burst=1)
    await client.agencies(H26)  # the login takes the one turn; the next is a second away
    waiting = asyncio.create_task(client.agencies(H26))
    await asyncio.sleep(0.1)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    await asyncio.sleep(1.0)  # the turn the cancelled call had reserved is due now
    started = time.monotonic()
    assert len(await client.agencies(H26)) > 0
    # Kept by the cancelled call, the turn would leave this one a second to wait.
    assert time.monotonic() - started < 0.5


async def test_the_retry_after_gate_holds_every_call_of_that_unit_only(
    new_client: MakeClient, control: MockPortalControl
) -> None:
    observer = RecordingObserver()
    client = new_client(observer=observer)
    await client.agencies(H26)
    await client.agencies(H29)  # both logged in
    control.add_fault(
        selector={"agency": H26, "service": "LayDanhSachTTHC"},
        action={"type": "rate_limit", "retry_after_s": 1},
        schedule={"kind": "first_n", "n": 1},
    )
    limited = asyncio.create_task(client.procedures(H26))
    await asyncio.wait_for(observer.seen("http_429").wait(), 2)

    started = time.monotonic()
    await client.agencies(H29)  # another unit: not held
    assert time.monotonic() - started < 0.5
    other = asyncio.create_task(client.lookup(H26, [NEW]))  # same unit: held
    await asyncio.gather(limited, other)

    [rate_limited] = entries(control, unit=H26, outcome="http_error")
    after = [e for e in entries(control, unit=H26) if arrived(e) > arrived(rate_limited)]
    assert {e["service"] for e in after} == {"LayDanhSachTTHC", "TraCuuHoSo"}
    for entry in after:
        assert (arrived(entry) - arrived(rate_limited)).total_seconds() >= 1.0, entry
    h29_calls = [e for e in entries(control, unit=H29) if arrived(e) > arrived(rate_limited)]
    assert len(h29_calls) == 1
    assert (arrived(h29_calls[0]) - arrived(rate_limited)).total_seconds() < 0.5
    assert_passes(control.conformance(H26), "honours_retry_after")


NOW = 1_700_000_000.0


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("5", 5.0),
        (" 7 ", 7.0),
        ("0", 0.0),
        (email.utils.formatdate(NOW + 30, usegmt=True), 30.0),
        (email.utils.formatdate(NOW - 30, usegmt=True), 0.0),
        (email.utils.formatdate(NOW + 30), 30.0),  # numeric zone "-0000"
        ("Wed, 21 Oct 2015 07:28:00 GMT", 0.0),
        (None, None),
        ("", None),
        ("soon", None),
        ("-5", None),
        ("1.5", None),
        ("Mon, 99 Foo 2024 00:00:00 GMT", None),
        ("²", None),  # a digit to str.isdigit(), not to float(); Latin-1 byte 0xB2
    ],
)
def test_parse_retry_after(header: str | None, expected: float | None) -> None:
    result = parse_retry_after(header, now=NOW)
    if expected is None:
        assert result is None
    else:
        assert result == pytest.approx(expected)


def test_parse_retry_after_of_a_date_defaults_to_the_current_time() -> None:
    later = email.utils.format_datetime(datetime.now(UTC) + timedelta(seconds=60), usegmt=True)
    result = parse_retry_after(later)
    assert result is not None
    assert 58 <= result <= 60


# --- several 429s: the gate is the latest time any of them names (MockTransport) -------


@pytest.mark.parametrize(("first", "second"), [(1, 2), (2, 1)])
async def test_every_429s_retry_after_holds_even_when_several_overlap(
    new_client: MakeClient, first: int, second: int
) -> None:
    """Two requests in flight are answered 429 one after the other with different
    Retry-After; a third call waits in the gate meanwhile. Nothing may reach the portal
    before either named time. (The mock cannot hold a request in flight and then answer
    429, so a scripted transport plays the portal here.)"""
    arrivals: list[tuple[float, str]] = []
    answered_429: list[tuple[float, int]] = []
    agencies_arrived, release_agencies = asyncio.Event(), asyncio.Event()
    first_429 = asyncio.Event()
    limited = {"TraCuuHoSo"}  # services answered 429 once already (the look-ups: never)
    ok: dict[str, Any] = {"error_code": 0, "data": [], "khongtimthay": []}

    async def portal(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        service = body.get("service", "auth")
        arrivals.append((time.monotonic(), service))
        if service == "auth":
            return httpx.Response(200, json={"error_code": 0, "session": "s", "expires_in": 1800})
        if service in limited:
            return httpx.Response(200, json=ok)
        limited.add(service)
        if service == "LayDanhMucCoQuan":
            agencies_arrived.set()
            await release_agencies.wait()
            retry_after = second
        else:
            retry_after = first
        answered_429.append((time.monotonic(), retry_after))
        first_429.set()
        return httpx.Response(429, headers={"Retry-After": str(retry_after)}, json={})

    url = "http://portal.invalid"
    client = new_client(
        url=url, http=httpx.AsyncClient(transport=httpx.MockTransport(portal), base_url=url)
    )
    await client.lookup(H26, ["x"])  # logged in
    arrivals.clear()

    in_flight = asyncio.create_task(client.agencies(H26))
    await agencies_arrived.wait()
    rate_limited = asyncio.create_task(client.procedures(H26))
    await first_429.wait()
    await asyncio.sleep(0.05)
    held = asyncio.create_task(client.lookup(H26, ["y"]))
    await asyncio.sleep(0.2)
    release_agencies.set()
    await asyncio.wait_for(asyncio.gather(in_flight, rate_limited, held), 10)

    assert len(answered_429) == 2
    for at, retry_after in answered_429:
        early = [(t - at, s) for t, s in arrivals if at < t < at + retry_after]
        assert early == [], f"sent within a Retry-After of {retry_after}s: {early}"


# --- -8: a batch too large (§3.1, §6) ---------------------------------------------------


def batch(count: int) -> list[dict[str, Any]]:
    return [dossier_json(f"000.00.53.H26-240125-{n:05d}", "2") for n in range(1, count + 1)]


async def test_batches_never_exceed_max_batch(
    new_client: MakeClient, control: MockPortalControl
) -> None:
    client = new_client()
    outcomes = await client.sync_dossiers(H26, batch(250), updating=False)
    assert codes(outcomes) == [0] * 250
    assert [e["item_count"] for e in entries(control, service="DongBoHoSoMC")] == [100, 100, 50]

    small = new_client(max_batch=40)
    outcomes = await small.sync_dossiers(H26, batch(90), updating=True)
    assert codes(outcomes) == [0] * 90
    later = entries(control, service="DongBoHoSoMC")[3:]
    assert [e["item_count"] for e in later] == [40, 40, 10]


async def test_minus_8_splits_the_batch(
    client: PortalClient, control: MockPortalControl, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With max_batch ≤ 100 (enforced by PortalSettings) the public API never sends more
    than 100 items, so -8 cannot happen; here the client's own cap is lifted by hand to
    reach the split path of ``_items``."""
    monkeypatch.setattr(portal_module, "MAX_BATCH_ITEMS", 1000)
    client.settings = client.settings.model_copy(update={"max_batch": 150})

    outcomes = await client.sync_dossiers(H26, batch(150), updating=False)

    assert codes(outcomes) == [0] * 150
    assert [o.ma_ho_so for o in outcomes] == [d["MaHoSo"] for d in batch(150)]
    pushes = entries(control, service="DongBoHoSoMC")
    assert [(e["item_count"], e["error_code"]) for e in pushes] == [(150, -8), (75, 0), (75, 0)]
    assert_passes(control.conformance(H26), "retries_only_retryable")


async def test_minus_8_on_a_single_item_is_raised(
    mock_portal: MockPortalHandle,
    client: PortalClient,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A portal answering -8 even for one item: nothing left to split, so it is refused
    rather than recursing."""

    def always_too_large(*_: Any, **__: Any) -> Any:
        raise MockPortalError(ErrorCode.BATCH_TOO_LARGE, "Quá 100 hồ sơ")

    monkeypatch.setattr(mock_portal.portal.core, "sync_dossiers", always_too_large)
    with pytest.raises(PortalRefused) as refused:
        await client.sync_dossiers(H26, batch(2), updating=False)
    assert refused.value.code == -8


# --- the circuit breaker ----------------------------------------------------------------


def test_breaker_opens_after_threshold_consecutive_failures() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(threshold=3, cooldown_s=10, clock=clock)
    assert breaker.state == "closed"
    breaker.before_call()
    breaker.failure()
    breaker.failure()
    breaker.success()  # not consecutive: starts again
    breaker.failure()
    breaker.failure()
    assert breaker.state == "closed"
    breaker.failure()
    assert breaker.state == "open"
    assert breaker.is_open

    clock.now += 4
    with pytest.raises(CircuitOpen) as opened:
        breaker.before_call()
    assert opened.value.retry_after == pytest.approx(6)
    assert isinstance(opened.value, PortalUnavailable)


def test_breaker_half_open_allows_one_trial_and_success_closes() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(threshold=2, cooldown_s=10, clock=clock)
    breaker.failure()
    breaker.failure()
    clock.now += 10
    assert breaker.state == "half_open"

    breaker.before_call()  # the trial
    with pytest.raises(CircuitOpen):
        breaker.before_call()  # a second call while the trial is out
    breaker.success()
    assert breaker.state == "closed"
    assert not breaker.is_open
    breaker.before_call()
    breaker.before_call()


def test_breaker_half_open_trial_failure_reopens_for_a_full_cooldown() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(threshold=2, cooldown_s=10, clock=clock)
    breaker.failure()
    breaker.failure()
    clock.now += 15
    breaker.before_call()
    breaker.failure()
    assert breaker.state == "open"
    with pytest.raises(CircuitOpen) as opened:
        breaker.before_call()
    assert opened.value.retry_after == pytest.approx(10)
    clock.now += 10
    assert breaker.state == "half_open"
    breaker.before_call()  # a new trial


async def test_after_repeated_503s_the_client_raises_circuit_open_without_sending(
    new_client: MakeClient, control: MockPortalControl
) -> None:
    clock = FakeClock()
    client = new_client(breaker=CircuitBreaker(threshold=2, cooldown_s=30, clock=clock))
    await client.agencies(H26)  # logged in
    control.add_fault(
        selector={"service": "LayDanhSachTTHC"},
        action={"type": "http_error", "status": 503},
        schedule={"kind": "always"},
    )
    with pytest.raises(CircuitOpen) as opened:
        await client.procedures(H26)  # 503, 503: open; the third attempt is not sent

    assert opened.value.retry_after == pytest.approx(30)
    assert client.breaker.state == "open"
    calls = entries(control, service="LayDanhSachTTHC")
    assert [e["http_status"] for e in calls] == [503, 503]
    assert len(entries(control)) == 4  # login, agencies and the two 503s

    clock.now += 30  # cool-down over: one trial decides
    control.clear_faults()
    assert len(await client.procedures(H26)) > 0
    assert client.breaker.state == "closed"


async def test_a_call_meeting_an_open_breaker_fails_fast_and_says_when_to_come_back(
    new_client: MakeClient, control: MockPortalControl
) -> None:
    """Nothing is sent while the breaker is open, and the call does not sit out the
    cool-down (a pusher would hold its leases idle): it ends at once, and its
    ``retry_after`` is the rest of the cool-down, which the pusher uses as a floor."""
    clock = FakeClock()
    client = new_client(breaker=CircuitBreaker(threshold=2, cooldown_s=30, clock=clock))
    await client.agencies(H26)
    control.add_fault(
        selector={"service": "LayDanhSachTTHC"},
        action={"type": "http_error", "status": 503},
        schedule={"kind": "first_n", "n": 2},
    )
    with pytest.raises(CircuitOpen):
        await client.procedures(H26)
    sent = len(entries(control))

    clock.now += 10
    started = time.monotonic()
    with pytest.raises(CircuitOpen) as refused:
        await client.lookup(H29, [NEW])  # another unit: the breaker is per portal
    assert time.monotonic() - started < 0.5
    assert refused.value.retry_after == pytest.approx(20)
    assert len(entries(control)) == sent

    clock.now += 20  # cool-down over: the next call is the trial, and it closes it
    assert len(await client.procedures(H26)) > 0
    assert client.breaker.state == "closed"
    calls = entries(control, service="LayDanhSachTTHC")
    assert [e["http_status"] for e in calls] == [503, 503, 200]


async def test_429s_neither_open_nor_close_the_breaker(
    new_client: MakeClient, control: MockPortalControl
) -> None:
    """A 429 says the portal is up and this unit must slow down: counted as a failure,
    two of them would open a breaker of threshold 2 and pause every unit."""
    client = new_client(breaker=CircuitBreaker(threshold=2, cooldown_s=30))
    await client.agencies(H26)
    client.breaker.failure()  # one real failure before: a 429 does not wipe it either
    control.add_fault(
        selector={"service": "LayDanhSachTTHC"},
        action={"type": "rate_limit", "retry_after_s": 1},
        schedule={"kind": "first_n", "n": 2},
    )
    assert len(await client.procedures(H26)) > 0

    calls = entries(control, service="LayDanhSachTTHC")
    assert [e["http_status"] for e in calls] == [429, 429, 200]
    assert client.breaker.state == "closed"
    client.breaker.failure()
    client.breaker.failure()
    assert client.breaker.state == "open"  # 429s are not failures, nor successes


async def test_a_retry_after_longer_than_the_client_waits_ends_the_call_with_it(
    new_client: MakeClient, control: MockPortalControl
) -> None:
    """A Retry-After of 30 s is not slept through inside the call: the call fails at once
    with ``retry_after`` ≈ 30, and until then nothing more is sent for that unit — other
    units go on."""
    client = new_client(max_wait_s=5.0)
    await client.agencies(H26)
    await client.agencies(H29)
    control.add_fault(
        selector={"agency": H26, "service": "LayDanhSachTTHC"},
        action={"type": "rate_limit", "retry_after_s": 30},
        schedule={"kind": "first_n", "n": 1},
    )
    started = time.monotonic()
    with pytest.raises(PortalUnavailable) as limited:
        await client.procedures(H26)
    assert time.monotonic() - started < 1.0
    assert limited.value.retry_after == pytest.approx(30)
    sent = len(entries(control, unit=H26))

    with pytest.raises(PortalUnavailable) as held:
        await client.lookup(H26, [NEW])
    assert held.value.retry_after is not None
    assert 28 < held.value.retry_after <= 30
    assert len(entries(control, unit=H26)) == sent  # nothing sent inside the Retry-After
    assert len(await client.agencies(H29)) > 0
    assert_passes(control.conformance(H26), "honours_retry_after")


async def test_any_request_error_is_a_transient_failure(new_client: MakeClient) -> None:
    """Not only transport errors: a body that cannot be decoded (or too many redirects)
    is raised by httpx as another RequestError, and must not escape as a crash."""
    calls = 0

    def portal(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        body = json.loads(request.content)
        if body.get("service", "auth") == "auth":
            return httpx.Response(200, json={"error_code": 0, "session": "s", "expires_in": 1})
        raise httpx.DecodingError("broken gzip", request=request)

    url = "http://portal.invalid"
    client = new_client(
        url=url, http=httpx.AsyncClient(transport=httpx.MockTransport(portal), base_url=url)
    )
    with pytest.raises(PortalUnavailable, match="DecodingError"):
        await client.procedures(H26)
    assert calls == 1 + PortalClient.attempts  # login, then every attempt
    assert client.breaker.failures == PortalClient.attempts


async def test_a_cancelled_trial_call_does_not_block_the_breaker_forever(
    new_client: MakeClient, control: MockPortalControl
) -> None:
    clock = FakeClock()
    client = new_client(breaker=CircuitBreaker(threshold=1, cooldown_s=30, clock=clock))
    await client.agencies(H26)  # logged in
    client.breaker.failure()
    clock.now += 30
    assert client.breaker.state == "half_open"
    control.add_fault(
        selector={"service": "LayDanhSachTTHC"},
        action={"type": "hang"},
        schedule={"kind": "always"},
    )
    trial = asyncio.create_task(client.procedures(H26))
    await asyncio.sleep(0.3)
    trial.cancel()
    with pytest.raises(asyncio.CancelledError):
        await trial

    assert len(await client.agencies(H26)) > 0  # the next call is the trial
    assert client.breaker.state == "closed"


# --- the observer and the logs ----------------------------------------------------------


async def test_the_observer_sees_every_exchange(
    new_client: MakeClient, control: MockPortalControl
) -> None:
    observer = RecordingObserver()
    client = new_client(observer=observer)
    control.add_fault(
        selector={"service": "LayDanhSachTTHC"},
        schedule={"kind": "sequence", "steps": ["503", "drop", "ok"]},
    )
    await client.procedures(H26)
    control.expire_sessions(H26)
    await client.agencies(H26)
    await client.sync_dossiers(H26, [dossier_json(NEW), dossier_json(OTHER, Foo=1)], updating=False)

    assert observer.requests == [
        ("auth", "ok"),
        ("LayDanhSachTTHC", "http_503"),
        ("LayDanhSachTTHC", "transport_error"),
        ("LayDanhSachTTHC", "ok"),
        ("LayDanhMucCoQuan", "error_-2"),
        ("auth", "ok"),
        ("LayDanhMucCoQuan", "ok"),
        ("DongBoHoSoMC", "ok"),  # a partial answer is an answer
    ]


def _spellings(value: str) -> set[str]:
    return {value, json.dumps(value)[1:-1], json.dumps(value, ensure_ascii=False)[1:-1]}


async def test_no_personal_data_in_the_logs_of_a_run_with_failures(
    captured_logs: io.StringIO, client: PortalClient, control: MockPortalControl
) -> None:
    control.add_fault(
        selector={"service": "DongBoHoSoMC"},
        schedule={"kind": "sequence", "steps": ["503", "drop", "ok"]},
    )
    sent = [
        dossier_json(NEW),
        dossier_json(OTHER, SoGiayToChuHoSo="12345", Email="not-an-address"),
        dossier_json(FOREIGN),
    ]
    outcomes = await client.sync_dossiers(H26, sent, updating=False)
    assert codes(outcomes) == [0, -5, -10]
    control.expire_sessions(H26)
    await client.update_progress(H26, [make_progress(NEW, "4").to_portal()])
    with pytest.raises(PortalRefused):
        await new_refused_login(client)
    await client.lookup(H26, [NEW])

    logs = captured_logs.getvalue()
    assert logs  # something was logged (the mock's requests, at least)
    secrets = [
        sent[0]["ChuHoSo"],
        *PERSONAL.values(),
        "12345",
        "not-an-address",
        *client._sessions.values(),
    ]
    for secret in secrets:
        for spelling in _spellings(secret):
            assert spelling not in logs, secret


async def new_refused_login(client: PortalClient) -> None:
    """A login with a bad password on a fresh client of the same portal."""
    settings = client.settings.model_copy(
        update={"accounts": [PortalAccount(unit=H29, username=H29, password=SecretStr("x"))]}
    )
    other = PortalClient(settings)
    try:
        await other.procedures(H29)
    finally:
        await other.aclose()
