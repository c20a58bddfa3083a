"""Contract §1 (transport), §6 (HTTP status of each error code), §7 (rate limit) and
safety under concurrent requests, over HTTP."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.domain.codes import MAX_BODY_BYTES
from app.mockportal.app import MockPortalSettings
from app.mockportal.testing import MockPortalControl, MockPortalHandle, running_mock_portal
from tests.domain.factories import valid_progress
from tests.factories import dossier_json
from tests.mockportal.helpers import H26, H29, PortalClient, item_codes

CODE = "000.00.53.H26-240125-00001"
NewClient = Callable[..., PortalClient]

NOT_AN_OBJECT = {"error_code": -5, "message": "body: phải là một đối tượng JSON"}
TOO_MANY = {"message": "Quá nhiều yêu cầu"}


def create_body(client: PortalClient, *dossiers: dict[str, Any]) -> dict[str, Any]:
    return {
        "session": client.session,
        "madonvi": client.unit,
        "service": "DongBoHoSoMC",
        "isUpdating": "False",
        "data": list(dossiers),
    }


def post_raw(client: PortalClient, content: bytes | Iterator[bytes]) -> httpx.Response:
    return client.http.post(
        "/dvcqg/integration",
        content=content,
        headers={"dstcode": client.unit, "Content-Type": "application/json; charset=utf-8"},
    )


# --- body size (§1) ---------------------------------------------------------------------


def padded(body: dict[str, Any], size: int) -> bytes:
    """``body`` as JSON followed by spaces up to exactly ``size`` bytes (still valid JSON)."""
    encoded = json.dumps(body, ensure_ascii=False).encode()
    assert len(encoded) <= size
    return encoded + b" " * (size - len(encoded))


def test_a_body_of_exactly_5_mib_is_accepted(
    client: PortalClient, control: MockPortalControl
) -> None:
    response = post_raw(client, padded(create_body(client, dossier_json(CODE)), MAX_BODY_BYTES))
    assert response.status_code == 200, response.text
    assert item_codes(response.json()) == [0]
    assert control.dossier(CODE) is not None


def test_a_body_over_5_mib_is_413_and_nothing_is_stored(
    client: PortalClient, control: MockPortalControl
) -> None:
    body = padded(create_body(client, dossier_json(CODE)), MAX_BODY_BYTES + 1)
    response = post_raw(client, body)
    assert response.status_code == 413
    assert response.json()["error_code"] == -5
    assert control.dossier(CODE) is None
    # A dossier whose own content is that large is refused the same way.
    big = dossier_json(CODE, GhiChu="x" * MAX_BODY_BYTES)
    response = client.call("integration", "DongBoHoSoMC", isUpdating="False", data=[big])
    assert response.status_code == 413
    assert control.dossier(CODE) is None


def test_a_chunked_body_over_5_mib_is_413(client: PortalClient, control: MockPortalControl) -> None:
    """Without Content-Length the mock counts what it reads."""
    body = padded(create_body(client, dossier_json(CODE)), MAX_BODY_BYTES + 100)
    chunk = 64 * 1024

    def chunks() -> Iterator[bytes]:
        for start in range(0, len(body), chunk):
            yield body[start : start + chunk]

    response = post_raw(client, chunks())
    assert response.status_code == 413
    assert response.json()["error_code"] == -5
    assert control.dossier(CODE) is None


# --- malformed bodies -------------------------------------------------------------------


@pytest.mark.parametrize(
    "content",
    [
        b"not json",
        b"",
        b"[1, 2]",
        b'[{"service": "DongBoHoSoMC"}]',
        b'"a string"',
        b"42",
        b"null",
        b'{"session": "x",',
        b'{"x": "\xff\xfe"}',
        b'{"x": "\\ud800"}',
        b'{"x": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
    ],
    ids=[
        "text",
        "empty",
        "array",
        "array of objects",
        "string",
        "number",
        "null",
        "truncated",
        "invalid utf-8",
        "lone surrogate",
        "nested too deep",
    ],
)
@pytest.mark.parametrize("endpoint", ["auth", "integration", "share"])
def test_a_body_that_is_not_a_json_object_is_400_minus_5(
    new_client: NewClient, endpoint: str, content: bytes
) -> None:
    client = new_client()
    response = client.http.post(f"/dvcqg/{endpoint}", content=content, headers={"dstcode": H26})
    assert response.status_code == 400
    assert response.json() == NOT_AN_OBJECT


def test_a_lone_surrogate_in_a_dossier_is_refused_whole_and_stores_nothing(
    client: PortalClient, control: MockPortalControl
) -> None:
    body = json.dumps(create_body(client, dossier_json(CODE, GhiChu="\ud800"))).encode()
    response = post_raw(client, body)
    assert (response.status_code, response.json()) == (400, NOT_AN_OBJECT)
    assert control.dossier(CODE) is None
    assert control.journal(service="DongBoHoSoMC")["total"] == 0  # not a DongBoHoSoMC call
    assert control.journal(unit=H26)["entries"][-1]["http_status"] == 400


@pytest.mark.parametrize("path", ["/dvcqg/auth", "/dvcqg/integration", "/dvcqg/share"])
def test_contract_endpoints_answer_post_only(mock_portal: MockPortalHandle, path: str) -> None:
    with httpx.Client(base_url=mock_portal.url) as http:
        assert http.get(path).status_code == 405


# --- HTTP status per error code (§6) ----------------------------------------------------


def _bad_password(client: PortalClient) -> httpx.Response:
    return client.auth(password="wrong")


def _unknown_session(client: PortalClient) -> httpx.Response:
    return client.call("share", "LayDanhSachTTHC", session="unknown")


def _exists(client: PortalClient) -> httpx.Response:
    client.create(dossier_json(CODE))
    return client.call("integration", "DongBoHoSoMC", isUpdating="False", data=[dossier_json(CODE)])


def _missing(client: PortalClient) -> httpx.Response:
    return client.call("integration", "DongBoHoSoMC", isUpdating="True", data=[dossier_json(CODE)])


def _missing_lookup(client: PortalClient) -> httpx.Response:
    return client.call("share", "TraCuuHoSo", mahoso=CODE)


def _invalid_item(client: PortalClient) -> httpx.Response:
    bad = dossier_json(CODE, ChuHoSo="")
    return client.call("integration", "DongBoHoSoMC", isUpdating="False", data=[bad])


def _invalid_request(client: PortalClient) -> httpx.Response:
    return client.call("integration", "DongBoHoSoMC", isUpdating="False", data=[])


def _regression(client: PortalClient) -> httpx.Response:
    client.create(dossier_json(CODE, "9"))
    return client.call(
        "integration", "DongBoHoSoMC", isUpdating="True", data=[dossier_json(CODE, "4")]
    )


def _too_many(client: PortalClient) -> httpx.Response:
    records = [valid_progress(MaHoSo=CODE)] * 101
    return client.call("integration", "CapNhatTienDoHoSoMC", data=records)


def _unknown_service(client: PortalClient) -> httpx.Response:
    return client.call("integration", "XoaHoSo")


def _wrong_madonvi(client: PortalClient) -> httpx.Response:
    return client.call("share", "LayDanhSachTTHC", madonvi=H29)


def _other_units_dossier(client: PortalClient) -> httpx.Response:
    theirs = dossier_json("000.00.53.H29-240125-00001")
    return client.call("integration", "DongBoHoSoMC", isUpdating="False", data=[theirs])


# (error code, HTTP status, whole request or first item, scenario)
STATUS_CASES: list[tuple[int, int, str, Callable[[PortalClient], httpx.Response]]] = [
    (-1, 401, "request", _bad_password),
    (-2, 401, "request", _unknown_session),
    (-3, 200, "item", _exists),
    (-4, 200, "item", _missing),
    (-4, 200, "request", _missing_lookup),
    (-5, 200, "item", _invalid_item),
    (-5, 200, "request", _invalid_request),
    (-6, 200, "item", _regression),
    (-8, 200, "request", _too_many),
    (-9, 200, "request", _unknown_service),
    (-10, 200, "request", _wrong_madonvi),
    (-10, 200, "item", _other_units_dossier),
]


@pytest.mark.parametrize(
    ("code", "http_status", "where", "scenario"),
    STATUS_CASES,
    ids=[f"{c}-{w}-{s.__name__.strip('_')}" for c, _, w, s in STATUS_CASES],
)
def test_each_error_code_has_its_http_status(
    client: PortalClient,
    code: int,
    http_status: int,
    where: str,
    scenario: Callable[[PortalClient], httpx.Response],
) -> None:
    response = scenario(client)
    assert response.status_code == http_status
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert isinstance(body["message"], str) and body["message"]
    if where == "request":
        assert body["error_code"] == code
        assert "data" not in body
    else:
        assert body["error_code"] == 1
        assert item_codes(body) == [code]


# --- rate limit (§7) --------------------------------------------------------------------


def retry_after(response: httpx.Response) -> int:
    header = response.headers["Retry-After"]
    assert header.isdigit(), header
    return int(header)


def test_the_rate_limit_answers_429_with_retry_after(
    client: PortalClient, other_client: PortalClient, control: MockPortalControl
) -> None:
    control.settings(rate_per_s=2, burst=3)
    for _ in range(3):
        assert client.call("share", "LayDanhSachTTHC").status_code == 200
    refused = client.call("integration", "DongBoHoSoMC", isUpdating="False", data=[dossier_json()])
    assert refused.status_code == 429
    assert refused.json() == TOO_MANY
    wait = retry_after(refused)
    assert wait >= 1
    assert control.dossier(CODE) is None  # a rate-limited call stores nothing
    # Calls before Retry-After are refused too (and still store nothing).
    again = client.call("integration", "DongBoHoSoMC", isUpdating="False", data=[dossier_json()])
    assert again.status_code == 429 and retry_after(again) >= 1
    assert client.auth().status_code == 429  # auth counts against the same bucket
    assert control.dossier(CODE) is None
    # Another unit has its own bucket.
    for _ in range(3):
        assert other_client.call("share", "LayDanhSachTTHC").status_code == 200
    # After Retry-After the unit is served again.
    time.sleep(wait)
    assert item_codes(client.create(dossier_json())) == [0]
    assert control.dossier(CODE) is not None


def test_the_bucket_refills_at_the_configured_rate(
    client: PortalClient, control: MockPortalControl
) -> None:
    control.settings(rate_per_s=20, burst=1)
    assert client.call("share", "LayDanhSachTTHC").status_code == 200
    refused = client.call("share", "LayDanhSachTTHC")
    assert refused.status_code == 429
    assert retry_after(refused) == 1  # 0.05 s rounded up: never 0
    time.sleep(0.06)
    assert client.call("share", "LayDanhSachTTHC").status_code == 200


# --- concurrency ------------------------------------------------------------------------


def run_together(count: int, work: Callable[[int], httpx.Response]) -> list[httpx.Response]:
    """Run ``work(i)`` for i in 0..count-1 in as many threads, released at once."""
    barrier = threading.Barrier(count)

    def task(index: int) -> httpx.Response:
        barrier.wait(timeout=10)
        return work(index)

    with ThreadPoolExecutor(max_workers=count) as pool:
        return list(pool.map(task, range(count)))


def clients_sharing(client: PortalClient, new_client: NewClient, count: int) -> list[PortalClient]:
    """``count`` clients on their own connections, all with ``client``'s session."""
    made = [new_client() for _ in range(count)]
    for made_client in made:
        made_client.session = client.session
    return made


def test_concurrent_creates_of_one_dossier_store_it_once(
    client: PortalClient, new_client: NewClient, control: MockPortalControl
) -> None:
    clients = clients_sharing(client, new_client, 20)
    responses = run_together(
        20,
        lambda i: clients[i].call(
            "integration",
            "DongBoHoSoMC",
            isUpdating="False",
            data=[dossier_json(CODE, "4", GhiChu=f"luồng {i}")],
        ),
    )
    assert all(r.status_code == 200 for r in responses)
    codes = sorted(item_codes(r.json())[0] for r in responses)
    assert codes == [-3] * 19 + [0]
    [winner] = [i for i, r in enumerate(responses) if r.json()["error_code"] == 0]
    assert (control.dossier(CODE) or {})["GhiChu"] == f"luồng {winner}"
    assert control.stats(H26)[H26]["dossiers"] == 1


def test_concurrent_creates_of_different_dossiers_are_all_stored(
    client: PortalClient, new_client: NewClient, control: MockPortalControl
) -> None:
    clients = clients_sharing(client, new_client, 10)
    codes = [f"000.00.53.H26-240125-{n:05d}" for n in range(10)]
    responses = run_together(
        10,
        lambda i: clients[i].call(
            "integration", "DongBoHoSoMC", isUpdating="False", data=[dossier_json(codes[i])]
        ),
    )
    assert [item_codes(r.json()) for r in responses] == [[0]] * 10
    assert sorted(d["MaHoSo"] for d in control.dossiers(H26)) == codes


def test_concurrent_identical_progress_is_stored_once(
    client: PortalClient, new_client: NewClient, control: MockPortalControl
) -> None:
    client.create(dossier_json(CODE))
    clients = clients_sharing(client, new_client, 20)
    record = valid_progress(MaHoSo=CODE)
    responses = run_together(
        20, lambda i: clients[i].call("integration", "CapNhatTienDoHoSoMC", data=[record])
    )
    messages = sorted(r.json()["data"][0]["message"] for r in responses)
    assert messages == ["Thành công"] + ["Đã có bản ghi này"] * 19
    assert (control.dossier(CODE) or {})["QuaTrinhXuLy"] == [record]


def test_concurrent_updates_never_regress_a_dossier(
    client: PortalClient, new_client: NewClient, control: MockPortalControl
) -> None:
    """Whatever order concurrent updates 4 and 9 arrive in, the dossier ends at 9."""
    client.create(dossier_json(CODE, "2"))
    clients = clients_sharing(client, new_client, 10)
    statuses = ["4", "9"] * 5
    responses = run_together(
        10,
        lambda i: clients[i].call(
            "integration", "DongBoHoSoMC", isUpdating="True", data=[dossier_json(CODE, statuses[i])]
        ),
    )
    assert all(item_codes(r.json())[0] in (0, -6) for r in responses)
    assert (control.dossier(CODE) or {})["TrangThaiHoSo"] == "9"


def test_control_calls_concurrent_with_contract_calls_are_safe(tmp_path: Path) -> None:
    """The control API shares the portal's state (and its SQLite store) with the contract
    endpoints: neither may see the other half-way (no 500, nothing lost)."""
    settings = MockPortalSettings(
        admin_token="t", store_path=tmp_path / "mock.db", rate_per_s=10_000, burst=10_000
    )
    rounds, pairs = 30, 4
    with running_mock_portal(settings) as handle:
        client = PortalClient(handle.url, H26)
        session = client.login()
        client.close()

        def contract(worker: int) -> list[int]:
            statuses = []
            portal = PortalClient(handle.url, H26)
            portal.session = session
            try:
                for n in range(rounds):
                    dossier = dossier_json(f"000.00.53.H26-p{worker}-{n}")
                    response = portal.call(
                        "integration", "DongBoHoSoMC", isUpdating="False", data=[dossier]
                    )
                    statuses.append(response.status_code)
            finally:
                portal.close()
            return statuses

        def control(worker: int) -> list[int]:
            statuses = []
            with httpx.Client(
                base_url=handle.url, headers={"Authorization": "Bearer t"}, timeout=10
            ) as http:
                for n in range(rounds):
                    dossier = dossier_json(f"000.00.53.H26-c{worker}-{n}")
                    put = http.put(
                        f"/_mock/dossiers/{dossier['MaHoSo']}", json={"dossier": dossier}
                    )
                    listed = http.get("/_mock/dossiers", params={"limit": 5})
                    counted = http.get("/_mock/stats")
                    statuses += [put.status_code, listed.status_code, counted.status_code]
            return statuses

        with ThreadPoolExecutor(max_workers=2 * pairs) as pool:
            futures = [pool.submit(contract, w) for w in range(pairs)]
            futures += [pool.submit(control, w) for w in range(pairs)]
            statuses = [status for future in futures for status in future.result()]
        assert set(statuses) == {200}
        assert len(handle.control.dossiers(H26)) == 2 * pairs * rounds


def test_an_internal_error_is_500_minus_99_and_journaled(
    mock_portal: MockPortalHandle,
    client: PortalClient,
    control: MockPortalControl,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def broken(*_: Any) -> dict[str, Any]:
        raise RuntimeError("simulated bug")

    monkeypatch.setattr(mock_portal.portal.core, "procedure_list", broken)
    response = client.call("share", "LayDanhSachTTHC")
    assert response.status_code == 500
    assert response.json() == {"error_code": -99, "message": "Lỗi hệ thống"}
    [entry] = control.journal(service="LayDanhSachTTHC")["entries"]
    assert (entry["http_status"], entry["error_code"], entry["outcome"]) == (500, -99, "http_error")
    monkeypatch.undo()
    assert client.call("share", "LayDanhSachTTHC").json()["error_code"] == 0
