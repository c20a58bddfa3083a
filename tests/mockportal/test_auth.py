"""Contract §2: sessions, bound to dstcode, expiring."""

from __future__ import annotations

import time
from collections.abc import Callable

from app.mockportal.testing import MockPortalControl
from tests.factories import dossier_json
from tests.mockportal.helpers import H26, H29, PortalClient

NewClient = Callable[..., PortalClient]


def test_login_answers_a_session(new_client: NewClient) -> None:
    client = new_client()
    response = client.auth()
    assert response.status_code == 200
    body = response.json()
    assert body["error_code"] == 0 and body["expires_in"] == 1800
    assert isinstance(body["session"], str) and len(body["session"]) >= 32


def test_bad_password_is_401_minus_1(new_client: NewClient) -> None:
    response = new_client().auth(password="wrong")
    assert response.status_code == 401
    assert response.json()["error_code"] == -1


def test_unknown_user_is_401_minus_1(new_client: NewClient) -> None:
    response = new_client().auth(username="nobody")
    assert (response.status_code, response.json()["error_code"]) == (401, -1)


def test_login_with_another_units_dstcode_is_refused(new_client: NewClient) -> None:
    response = new_client().auth(dstcode=H29)
    assert (response.status_code, response.json()["error_code"]) == (401, -1)


def test_a_session_is_bound_to_its_dstcode(client: PortalClient) -> None:
    response = client.call("share", "LayDanhSachTTHC", dstcode=H29)
    assert (response.status_code, response.json()["error_code"]) == (200, -10)


def test_madonvi_must_be_the_sessions_unit(client: PortalClient) -> None:
    response = client.call("share", "LayDanhSachTTHC", madonvi=H29)
    assert response.json()["error_code"] == -10
    assert "000.00.00.H26" in response.json()["message"]


def test_unknown_session_is_401_minus_2(client: PortalClient) -> None:
    response = client.call("share", "LayDanhSachTTHC", session="not-a-session")
    assert response.status_code == 401
    assert response.json() == {"error_code": -2, "message": "Phiên làm việc hết hạn"}


def test_a_session_expires_after_its_lifetime(
    new_client: NewClient, control: MockPortalControl
) -> None:
    control.settings(session_ttl_s=0.3)
    client = new_client()
    assert client.auth().json()["expires_in"] == 0
    assert client.call("share", "LayDanhSachTTHC").json()["error_code"] == 0
    time.sleep(0.4)
    response = client.call("share", "LayDanhSachTTHC")
    assert (response.status_code, response.json()["error_code"]) == (401, -2)
    client.login()  # re-authenticate once and repeat
    assert client.call("share", "LayDanhSachTTHC").json()["error_code"] == 0


def test_expired_session_changes_nothing(client: PortalClient, control: MockPortalControl) -> None:
    control.expire_sessions(H26)
    response = client.call("integration", "DongBoHoSoMC", isUpdating="False", data=[dossier_json()])
    assert response.status_code == 401
    assert control.dossier(dossier_json()["MaHoSo"]) is None


def test_missing_dstcode_is_refused(new_client: NewClient) -> None:
    client = new_client()
    response = client.http.post("/dvcqg/auth", json={"username": H26, "password": "demo"})
    assert (response.status_code, response.json()["error_code"]) == (401, -1)
