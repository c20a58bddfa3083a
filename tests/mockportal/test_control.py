"""Contract §9, the control API: admin token, reset, seed, catalogue, dossiers, stats,
sessions and settings."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.demodata import load_demo_catalogue
from app.mockportal.app import MockPortalSettings
from app.mockportal.server import BackgroundMockPortal
from app.mockportal.testing import MockPortalControl, MockPortalHandle
from tests.factories import dossier_json
from tests.mockportal.helpers import G05, H26, H29, PortalClient, item_codes

NewClient = Callable[..., PortalClient]

CODE = dossier_json()["MaHoSo"]
H29_CODE = "000.00.53.H29-240125-00001"

NEW_CATALOGUE: dict[str, Any] = {
    "procedures": [
        {
            "MaTTHC": "9.000001",
            "TenTTHC": "Thủ tục thử",
            "MaLinhVuc": "TT",
            "TenLinhVuc": "Thử nghiệm",
            "ThoiHanGiaiQuyet": 5,
            "CoPhiLePhi": 1,
            "DuDieuKienTrucTuyenToanTrinh": 0,
        }
    ],
    "agencies": [
        {"MaCoQuan": "000.00.00.H26", "TenCoQuan": "UBND tỉnh thử", "Cap": "TINH"},
        {"MaCoQuan": "000.00.53.H26", "TenCoQuan": "Sở thử", "Cap": "TINH"},
    ],
    "accounts": [{"unit": H26, "username": "h26-new", "password": "s3cret"}],
}


def progress_record(at: str = "20240125090000", **overrides: Any) -> dict[str, Any]:
    return {
        "MaHoSo": CODE,
        "NguoiXuLy": "Trần Thị Bình",
        "ThoiDiemXuLy": at,
        "NoiDungXuLy": "Thụ lý hồ sơ",
        "TrangThai": "4",
    } | overrides


@pytest.fixture
def anonymous(mock_portal: MockPortalHandle) -> Iterator[httpx.Client]:
    """An HTTP client of the mock without the admin token."""
    with httpx.Client(base_url=mock_portal.url, timeout=10) as http:
        yield http


# --- access -------------------------------------------------------------------------------


def test_the_control_api_is_off_without_an_admin_token() -> None:
    with (
        BackgroundMockPortal(MockPortalSettings()) as mock,
        httpx.Client(base_url=mock.url, timeout=10) as http,
    ):
        for method, path in [
            ("GET", "/_mock/faults"),
            ("GET", "/_mock/journal"),
            ("POST", "/_mock/reset"),
            ("GET", "/_mock/catalogue"),
        ]:
            response = http.request(
                method, path, headers={"Authorization": "Bearer mock-admin"}, json={}
            )
            assert response.status_code == 404, (method, path)
        # The contract itself is served.
        login = http.post(
            "/dvcqg/auth", json={"username": H26, "password": "demo"}, headers={"dstcode": H26}
        )
        assert login.status_code == 200


@pytest.mark.parametrize(
    "authorization",
    [None, "Bearer wrong", "mock-admin", "Basic bW9jay1hZG1pbg==", "Bearer mock-admin2", "Bearer"],
)
@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/_mock/faults"),
        ("POST", "/_mock/reset"),
        ("GET", "/_mock/journal.ndjson"),
        ("PATCH", "/_mock/settings"),
    ],
)
def test_a_missing_or_wrong_admin_token_is_401(
    anonymous: httpx.Client, authorization: str | None, method: str, path: str
) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}
    response = anonymous.request(method, path, headers=headers, json={"scope": "all"})
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "Bearer"


def test_a_token_with_non_ascii_characters_is_401(anonymous: httpx.Client) -> None:
    response = anonymous.get(
        "/_mock/faults", headers={b"Authorization": "Bearer mock-admïn".encode("latin-1")}
    )
    assert response.status_code == 401


def test_a_refused_admin_call_changes_nothing(
    anonymous: httpx.Client, client: PortalClient, control: MockPortalControl
) -> None:
    client.create(dossier_json())
    assert anonymous.post("/_mock/reset", json={"scope": "all"}).status_code == 401
    assert control.dossier(CODE) is not None


# --- reset --------------------------------------------------------------------------------


@pytest.fixture
def busy(
    client: PortalClient, other_client: PortalClient, control: MockPortalControl
) -> tuple[PortalClient, PortalClient]:
    """Both units have a dossier, a session and stats; a rule and journal entries exist."""
    client.create(dossier_json())
    client.update(dossier_json())  # a duplicate, for the stats
    other_client.create(dossier_json(H29_CODE))
    control.add_fault(selector={"service": "LayThuTuc"}, action={"type": "http_error"})
    return client, other_client


def lookup_code(client: PortalClient) -> int:
    """The error code of a look-up with the client's current session."""
    code: int = client.call("share", "LayDanhMucCoQuan").json()["error_code"]
    return code


def test_reset_all(busy: tuple[PortalClient, PortalClient], control: MockPortalControl) -> None:
    h26, h29 = busy
    result = control.reset("all")
    assert result == {
        "reset": "all",
        "removed": {"dossiers": 2, "sessions": 2, "journal": 5, "faults": 1},
    }
    assert control.dossiers() == []
    assert control.faults() == []
    assert control.journal()["entries"] == []
    assert control.stats(H26)[H26]["duplicates_received"] == 0
    assert (lookup_code(h26), lookup_code(h29)) == (-2, -2)
    # The catalogue stays.
    assert control.catalogue() == load_demo_catalogue()
    h26.login()
    assert lookup_code(h26) == 0


def test_reset_all_refills_the_rate_limit_buckets(
    client: PortalClient, control: MockPortalControl
) -> None:
    control.settings(rate_per_s=0.01, burst=1)
    assert lookup_code(client) == 0
    assert client.call("share", "LayDanhMucCoQuan").status_code == 429
    control.reset("all")
    response = client.http.post(
        "/dvcqg/auth", json={"username": H26, "password": "demo"}, headers={"dstcode": H26}
    )
    assert response.status_code == 200


def test_reset_one_unit(
    busy: tuple[PortalClient, PortalClient], control: MockPortalControl
) -> None:
    h26, h29 = busy
    result = control.reset("unit", H26)
    assert result == {"reset": "unit", "removed": {"dossiers": 1, "sessions": 1}}
    assert [d["MaHoSo"] for d in control.dossiers()] == [H29_CODE]
    assert (lookup_code(h26), lookup_code(h29)) == (-2, 0)
    assert control.stats(H26)[H26]["duplicates_received"] == 0
    # The journal and the faults stay.
    assert control.journal()["total"] == 7
    assert len(control.faults()) == 1


def test_reset_unit_needs_a_unit(control: MockPortalControl) -> None:
    response = control.http.post("/_mock/reset", json={"scope": "unit"})
    assert response.status_code == 422


def test_reset_journal(busy: tuple[PortalClient, PortalClient], control: MockPortalControl) -> None:
    h26, _ = busy
    control.settings(journal_capacity=2)
    assert control.journal()["dropped"] == 3
    assert control.reset("journal") == {"reset": "journal", "removed": {"journal": 2}}
    assert control.journal() == {"total": 0, "dropped": 0, "capacity": 2, "entries": []}
    assert len(control.dossiers()) == 2 and len(control.faults()) == 1
    assert lookup_code(h26) == 0


def test_reset_faults(busy: tuple[PortalClient, PortalClient], control: MockPortalControl) -> None:
    h26, _ = busy
    assert control.reset("faults") == {"reset": "faults", "removed": {"faults": 1}}
    assert control.faults() == []
    assert h26.call("share", "LayThuTuc", maTTHC="1.000656").status_code == 200
    assert len(control.dossiers()) == 2 and control.journal()["total"] == 6


def test_reset_sessions(
    busy: tuple[PortalClient, PortalClient], control: MockPortalControl
) -> None:
    h26, h29 = busy
    assert control.reset("sessions") == {"reset": "sessions", "removed": {"sessions": 2}}
    assert (lookup_code(h26), lookup_code(h29)) == (-2, -2)
    assert len(control.dossiers()) == 2 and len(control.faults()) == 1


def test_reset_unknown_scope_is_422(control: MockPortalControl) -> None:
    assert control.http.post("/_mock/reset", json={"scope": "everything"}).status_code == 422


# --- seed and catalogue -------------------------------------------------------------------


def test_catalogue_is_the_demo_data(control: MockPortalControl) -> None:
    catalogue = control.catalogue()
    assert catalogue == load_demo_catalogue()
    agencies = [a["MaCoQuan"] for a in catalogue["agencies"]]
    for unit in (H26, H29, G05):
        assert unit in agencies
        assert sum(a.endswith(unit[-4:]) for a in agencies) >= 3
        assert {"unit": unit, "username": unit, "password": "demo"} in catalogue["accounts"]
    assert any(p["MaTTHC"] == "1.000656" for p in catalogue["procedures"])


def check_seeded(new_client: NewClient, control: MockPortalControl) -> None:
    assert control.catalogue() == NEW_CATALOGUE
    # The old account is gone, the new one works.
    refused = new_client().auth()
    assert (refused.status_code, refused.json()["error_code"]) == (401, -1)
    h29 = new_client(H29)
    assert h29.auth().json()["error_code"] == -1
    new = new_client(H26, "s3cret")
    assert new.auth(username="h26-new").status_code == 200
    # A procedure no longer in the catalogue is -5; the new one is accepted.
    answer = new.create(dossier_json())
    assert item_codes(answer) == [-5]
    assert answer["data"][0]["message"].startswith("data[0].MaTTHC")
    new_dossier = dossier_json(
        "000.00.53.H26-240125-00002",
        MaTTHC="9.000001",
        TenTTHC="Thủ tục thử",
        MaLinhVuc="TT",
        TenLinhVuc="Thử nghiệm",
    )
    assert item_codes(new.create(new_dossier)) == [0]
    procedures = new.call("share", "LayDanhSachTTHC").json()["data"]
    assert procedures == NEW_CATALOGUE["procedures"]
    agencies = new.call("share", "LayDanhMucCoQuan").json()["data"]
    assert agencies == NEW_CATALOGUE["agencies"]


def test_seed_from_a_json_body_replaces_the_catalogue(
    new_client: NewClient, control: MockPortalControl
) -> None:
    assert control.seed(NEW_CATALOGUE) == {"procedures": 1, "agencies": 2, "accounts": 1}
    check_seeded(new_client, control)


def test_seed_from_a_file_replaces_the_catalogue(
    new_client: NewClient, control: MockPortalControl, tmp_path: Path
) -> None:
    seed_file = tmp_path / "seed.json"
    seed_file.write_text(json.dumps(NEW_CATALOGUE, ensure_ascii=False), encoding="utf-8")
    assert control.seed(file=seed_file) == {"procedures": 1, "agencies": 2, "accounts": 1}
    check_seeded(new_client, control)


def test_seed_ends_the_sessions(client: PortalClient, control: MockPortalControl) -> None:
    control.seed(load_demo_catalogue())
    assert lookup_code(client) == -2


def test_passwords_are_compared_whatever_their_characters(
    new_client: NewClient, control: MockPortalControl
) -> None:
    account = {"unit": H26, "username": "h26-new", "password": "mật khẩu"}
    control.seed(NEW_CATALOGUE | {"accounts": [account]})
    assert new_client(H26, "mật khẩu").auth(username="h26-new").status_code == 200
    for password in ("mật khẩu sai", "mat khau"):
        response = new_client(H26, password).auth(username="h26-new")
        assert (response.status_code, response.json()["error_code"]) == (401, -1)


def bad_seed_bodies(tmp_path: Path) -> list[dict[str, Any]]:
    malformed = tmp_path / "malformed.json"
    malformed.write_text("{not json", encoding="utf-8")
    invalid = tmp_path / "invalid.json"
    invalid.write_text(json.dumps({"accounts": [{"unit": H26}]}), encoding="utf-8")
    procedure = NEW_CATALOGUE["procedures"][0]
    return [
        {},
        {"catalogue": NEW_CATALOGUE, "file": str(invalid)},
        {"file": str(tmp_path / "missing.json")},
        {"file": str(malformed)},
        {"file": str(invalid)},
        {"catalogue": {"agencies": [{"MaCoQuan": "H26", "TenCoQuan": "x", "Cap": "TINH"}]}},
        {"catalogue": {"agencies": [{"MaCoQuan": H26, "TenCoQuan": "x", "Cap": "HUYEN"}]}},
        {"catalogue": {"accounts": [{"unit": "000.00.53.H26", "username": "a", "password": "b"}]}},
        {"catalogue": {"accounts": [{"unit": H26, "username": "", "password": "b"}]}},
        {"catalogue": {"procedures": [procedure | {"CoPhiLePhi": 2}]}},
        {"catalogue": {"procedures": [{"MaTTHC": "9.1"}]}},
        {"catalogue": {"services": []}},
    ]


def test_a_bad_seed_is_422_and_changes_nothing(control: MockPortalControl, tmp_path: Path) -> None:
    for body in bad_seed_bodies(tmp_path):
        response = control.http.post("/_mock/seed", json=body)
        assert response.status_code == 422, (body, response.text)
    assert control.catalogue() == load_demo_catalogue()


# --- dossiers -----------------------------------------------------------------------------


def test_list_dossiers_with_a_unit_filter(
    client: PortalClient, other_client: PortalClient, control: MockPortalControl
) -> None:
    client.create(dossier_json(), dossier_json("000.00.54.H26-240125-00002", "9"))
    client.progress(progress_record())
    other_client.create(dossier_json(H29_CODE, "2"))
    everything = control.http.get("/_mock/dossiers").json()
    assert everything["total"] == 3
    rows = {row["MaHoSo"]: row for row in everything["dossiers"]}
    assert {k: v for k, v in rows[CODE].items() if k != "updated_at"} == {
        "MaHoSo": CODE,
        "unit": H26,
        "TrangThaiHoSo": "4",
        "progress": 1,
    }
    assert [(d["MaHoSo"], d["TrangThaiHoSo"]) for d in control.dossiers(H29)] == [(H29_CODE, "2")]
    assert [d["MaHoSo"] for d in control.dossiers(H26)] == [CODE, "000.00.54.H26-240125-00002"]
    assert control.dossiers(G05) == []
    page = control.http.get("/_mock/dossiers", params={"limit": 1, "offset": 1}).json()
    assert page["total"] == 3 and len(page["dossiers"]) == 1


def test_get_one_dossier_with_its_progress(
    client: PortalClient, control: MockPortalControl
) -> None:
    sent = dossier_json()
    client.create(sent)
    client.progress(progress_record("20240125100000"), progress_record("20240125090000"))
    response = control.http.get(f"/_mock/dossiers/{CODE}")
    assert response.status_code == 200
    body = response.json()
    assert body["unit"] == H26
    assert body["dossier"] == client.lookup(CODE)["data"]
    assert [p["ThoiDiemXuLy"] for p in body["dossier"]["QuaTrinhXuLy"]] == [
        "20240125090000",
        "20240125100000",
    ]
    assert body["dossier"]["ChuHoSo"] == sent["ChuHoSo"]


def test_get_an_unknown_dossier_is_404(control: MockPortalControl) -> None:
    assert control.http.get(f"/_mock/dossiers/{CODE}").status_code == 404
    assert control.dossier(CODE) is None


def test_put_stores_a_dossier_without_the_transition_rules(
    client: PortalClient, control: MockPortalControl
) -> None:
    client.create(dossier_json(status="9"))
    client.progress(progress_record())
    assert item_codes(client.update(dossier_json(status="4"))) == [-6]
    result = control.put_dossier(dossier_json(status="4"))
    assert result["unit"] == H26 and result["dossier"]["TrangThaiHoSo"] == "4"
    stored = client.lookup(CODE)["data"]
    assert stored["TrangThaiHoSo"] == "4"
    assert len(stored["QuaTrinhXuLy"]) == 1  # progress omitted: kept
    # The client now sees 4 as the stored status.
    assert item_codes(client.update(dossier_json(status="9"))) == [0]


def test_put_creates_a_dossier_with_progress(
    client: PortalClient, control: MockPortalControl
) -> None:
    control.put_dossier(dossier_json(), [progress_record()])
    stored = control.dossier(CODE)
    assert stored is not None
    assert [p["TrangThai"] for p in stored["QuaTrinhXuLy"]] == ["4"]
    assert item_codes(client.create(dossier_json())) == [-3]
    # An empty progress list replaces the stored records.
    control.put_dossier(dossier_json(), [])
    assert client.lookup(CODE)["data"]["QuaTrinhXuLy"] == []


def test_put_with_a_code_other_than_the_path_is_422(control: MockPortalControl) -> None:
    response = control.http.put(
        "/_mock/dossiers/000.00.53.H26-240125-00099", json={"dossier": dossier_json()}
    )
    assert response.status_code == 422
    assert "MaHoSo" in response.text
    assert control.dossiers() == []


@pytest.mark.parametrize(
    ("overrides", "path"),
    [
        ({"NgayHenTra": "20240101000000"}, "NgayHenTra"),
        ({"Email": "not-an-address"}, "Email"),
        ({"TrangThaiHoSo": "11"}, "TrangThaiHoSo"),
        ({"Unknown": 1}, "Unknown"),
    ],
)
def test_put_an_invalid_dossier_is_422_naming_the_field(
    control: MockPortalControl, overrides: dict[str, Any], path: str
) -> None:
    response = control.http.put(
        f"/_mock/dossiers/{CODE}", json={"dossier": dossier_json(**overrides)}
    )
    assert response.status_code == 422
    assert path in [issue["path"] for issue in response.json()["detail"]]
    assert control.dossiers() == []


def test_put_progress_of_another_dossier_is_422(control: MockPortalControl) -> None:
    body = {"dossier": dossier_json(), "progress": [progress_record(MaHoSo=H29_CODE)]}
    response = control.http.put(f"/_mock/dossiers/{CODE}", json=body)
    assert response.status_code == 422
    assert response.json()["detail"][0]["path"] == "QuaTrinhXuLy[0].MaHoSo"
    assert control.dossiers() == []


def test_delete_a_dossier(client: PortalClient, control: MockPortalControl) -> None:
    client.create(dossier_json())
    control.delete_dossier(CODE)
    assert control.dossier(CODE) is None
    assert item_codes(client.update(dossier_json())) == [-4]
    assert client.call("share", "TraCuuHoSo", mahoso=CODE).json()["error_code"] == -4
    assert control.http.delete(f"/_mock/dossiers/{CODE}").status_code == 404


# --- stats --------------------------------------------------------------------------------


def test_stats_per_unit(
    client: PortalClient, other_client: PortalClient, control: MockPortalControl
) -> None:
    nine = "000.00.54.H26-240125-00002"
    client.create(dossier_json(), dossier_json(nine, "9"))
    client.update(dossier_json())  # duplicate
    client.create(dossier_json())  # -3
    client.create(dossier_json("000.00.53.H26-240125-00003", Email="x"))  # -5
    client.update(dossier_json(nine, "4"))  # -6, a regression
    client.update(dossier_json(nine, "2"))  # -6 again
    client.progress(progress_record(), progress_record("20240125100000"))
    client.progress(progress_record())  # duplicate
    client.progress(progress_record(MaHoSo="000.00.53.H26-240125-00077"))  # -4
    client.create(dossier_json(H29_CODE))  # -10
    other_client.create(dossier_json(H29_CODE, "1"))
    stats = control.stats()
    assert set(stats) >= {H26, H29, G05}
    assert stats[H26] == {
        "dossiers": 2,
        "dossiers_by_status": {str(s): int(s in (4, 9)) for s in range(1, 11)},
        "progress_records": 2,
        "rejected_by_error_code": {"-10": 1, "-6": 2, "-5": 1, "-4": 1, "-3": 1},
        "duplicates_received": 2,
        "regressions_refused": 2,
    }
    assert stats[H29]["dossiers_by_status"]["1"] == 1 and stats[H29]["dossiers"] == 1
    assert stats[H29]["rejected_by_error_code"] == {}
    assert stats[G05]["dossiers"] == 0
    assert control.stats(H29) == {H29: stats[H29]}


# --- sessions and settings ----------------------------------------------------------------


def test_expire_the_sessions_of_one_unit(
    client: PortalClient,
    other_client: PortalClient,
    new_client: NewClient,
    control: MockPortalControl,
) -> None:
    new_client().login()
    assert control.expire_sessions(H26) == 2
    response = client.call("share", "LayDanhMucCoQuan")
    assert (response.status_code, response.json()["error_code"]) == (401, -2)
    assert lookup_code(other_client) == 0
    assert control.expire_sessions(H26) == 0
    assert control.http.post("/_mock/sessions/expire").status_code == 422


def test_settings_defaults(control: MockPortalControl) -> None:
    assert control.settings() == {
        "session_ttl_s": 1800,
        "rate_per_s": 50,
        "burst": 100,
        "journal_capacity": 10_000,
    }


def test_session_ttl_applies_to_new_sessions(
    client: PortalClient, new_client: NewClient, control: MockPortalControl
) -> None:
    assert control.settings(session_ttl_s=0.3)["session_ttl_s"] == 0.3
    short = new_client()
    assert short.auth().json()["expires_in"] == 0
    time.sleep(0.4)
    assert lookup_code(short) == -2
    assert lookup_code(client) == 0  # issued before the change


def test_rate_and_burst(
    client: PortalClient, other_client: PortalClient, control: MockPortalControl
) -> None:
    assert control.settings(rate_per_s=0.5, burst=2) == {
        "session_ttl_s": 1800,
        "rate_per_s": 0.5,
        "burst": 2,
        "journal_capacity": 10_000,
    }
    assert [client.call("share", "LayDanhMucCoQuan").status_code for _ in range(3)] == [
        200,
        200,
        429,
    ]
    limited = client.call("share", "LayDanhMucCoQuan")
    assert limited.headers["Retry-After"] == "2"
    assert lookup_code(other_client) == 0  # a bucket per dstcode


def test_journal_capacity_setting(client: PortalClient, control: MockPortalControl) -> None:
    for _ in range(4):
        client.call("share", "LayDanhMucCoQuan")
    assert control.settings(journal_capacity=3)["journal_capacity"] == 3
    journal = control.journal()
    assert (journal["total"], journal["dropped"], journal["capacity"]) == (3, 2, 3)


@pytest.mark.parametrize(
    "change",
    [
        {"session_ttl_s": 0},
        {"rate_per_s": -1},
        {"burst": 0},
        {"journal_capacity": 0},
        {"admin_token": "x"},
    ],
)
def test_bad_settings_are_422(control: MockPortalControl, change: dict[str, Any]) -> None:
    before = control.settings()
    assert control.http.patch("/_mock/settings", json=change).status_code == 422
    assert control.settings() == before


def test_the_bearer_scheme_name_is_case_insensitive(anonymous: httpx.Client) -> None:
    token = "mock-admin"
    for scheme in ("bearer", "BEARER", "Bearer"):
        response = anonymous.get("/_mock/settings", headers={"Authorization": f"{scheme} {token}"})
        assert response.status_code == 200, scheme
    wrong = anonymous.get("/_mock/settings", headers={"Authorization": f"Basic {token}"})
    assert wrong.status_code == 401


def test_reset_one_agency(client: PortalClient, control: MockPortalControl) -> None:
    kept = "000.00.54.H26-240125-00001"
    gone = "000.00.53.H26-240125-00001"
    client.create(dossier_json(gone), dossier_json(kept))
    result = control.reset("agency", agency="000.00.53.H26")
    assert result["removed"] == {"dossiers": 1}
    assert control.dossier(gone) is None
    assert control.dossier(kept) is not None


def test_reset_agency_needs_an_agency(control: MockPortalControl) -> None:
    response = control.http.post("/_mock/reset", json={"scope": "agency"})
    assert response.status_code == 422
