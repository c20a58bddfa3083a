"""With a store file the mock keeps dossiers, progress and the catalogue across restarts;
sessions, journal and faults are memory only. Without one a restart is empty."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from app.mockportal.app import MockPortalSettings
from app.mockportal.testing import MockPortalHandle, running_mock_portal
from tests.domain.factories import valid_progress
from tests.factories import dossier_json
from tests.mockportal.helpers import H26, H29, PortalClient, item_codes

CODE = "000.00.53.H26-240125-00001"
CODE_2 = "000.00.02.H26-240125-00002"
H29_CODE = "000.00.53.H29-240125-00001"
TOKEN = "t"

PROCEDURE = {
    "MaTTHC": "2.000001",
    "TenTTHC": "Thủ tục thử nghiệm",
    "MaLinhVuc": "TN",
    "TenLinhVuc": "Thử nghiệm",
    "ThoiHanGiaiQuyet": 5,
    "CoPhiLePhi": 1,
    "DuDieuKienTrucTuyenToanTrinh": 0,
}
CATALOGUE = {
    "procedures": [PROCEDURE],
    "agencies": [
        {"MaCoQuan": H26, "TenCoQuan": "UBND tỉnh thử", "Cap": "TINH"},
        {"MaCoQuan": H29, "TenCoQuan": "UBND tỉnh khác", "Cap": "TINH"},
    ],
    "accounts": [
        {"unit": H26, "username": "h26", "password": "bi-mat"},
        {"unit": H29, "username": "h29", "password": "bi-mat"},
    ],
}


@contextmanager
def mock(store: Path | None) -> Iterator[MockPortalHandle]:
    with running_mock_portal(MockPortalSettings(admin_token=TOKEN, store_path=store)) as handle:
        yield handle


@contextmanager
def portal_client(
    handle: MockPortalHandle, unit: str = H26, username: str | None = None, password: str = "demo"
) -> Iterator[PortalClient]:
    client = PortalClient(handle.url, unit, password)
    try:
        response = client.auth(username=username)
        assert response.status_code == 200, response.text
        yield client
    finally:
        client.close()


def dossier_record(handle: MockPortalHandle, code: str) -> dict[str, Any]:
    response = handle.control.http.get(f"/_mock/dossiers/{code}")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


@pytest.fixture
def store(tmp_path: Path) -> Path:
    return tmp_path / "mock.db"


def test_dossiers_and_progress_survive_a_restart(store: Path) -> None:
    first = dossier_json(CODE, "4")
    second = dossier_json(CODE_2, "9")
    late = valid_progress(MaHoSo=CODE, ThoiDiemXuLy="20240126090000", TrangThai="4")
    early = valid_progress(MaHoSo=CODE, ThoiDiemXuLy="20240125083000", TrangThai="2")
    with mock(store) as handle, portal_client(handle) as client:
        assert item_codes(client.create(first, dossier_json(CODE_2, "4"))) == [0, 0]
        assert item_codes(client.update(second)) == [0]  # an update is persisted too
        assert item_codes(client.progress(late, early)) == [0, 0]
        before = {code: dossier_record(handle, code) for code in (CODE, CODE_2)}
        stats_before = handle.control.stats(H26)[H26]
    with mock(store) as handle, portal_client(handle) as client:
        assert {code: dossier_record(handle, code) for code in (CODE, CODE_2)} == before
        assert client.lookup(CODE)["data"] == first | {"QuaTrinhXuLy": [early, late]}
        assert client.lookup(CODE_2)["data"] == second | {"QuaTrinhXuLy": []}
        after = handle.control.stats(H26)[H26]
        for key in ("dossiers", "dossiers_by_status", "progress_records"):
            assert after[key] == stats_before[key]
        # The rules apply to the restored state: -3 on create, duplicates, regressions.
        assert item_codes(client.create(first)) == [-3]
        assert client.update(first)["data"][0]["message"] == "Không có thay đổi"
        assert client.progress(early)["data"][0]["message"] == "Đã có bản ghi này"
        assert item_codes(client.update(dossier_json(CODE_2, "4"))) == [-6]
        # New progress after a restart goes to the end of the arrival order.
        middle = valid_progress(MaHoSo=CODE, ThoiDiemXuLy="20240125120000", TrangThai="4")
        client.progress(middle)
    with mock(store) as handle, portal_client(handle) as client:
        assert client.lookup(CODE)["data"]["QuaTrinhXuLy"] == [early, middle, late]


def test_sessions_do_not_survive_a_restart(store: Path) -> None:
    with mock(store) as handle, portal_client(handle) as client:
        token = client.session
        client.create(dossier_json(CODE))
    with mock(store) as handle, portal_client(handle) as client:
        response = client.call("share", "TraCuuHoSo", session=token, mahoso=CODE)
        assert response.status_code == 401
        assert response.json() == {"error_code": -2, "message": "Phiên làm việc hết hạn"}
        client.login()
        assert client.lookup(CODE)["error_code"] == 0


def test_a_seeded_catalogue_survives_a_restart(store: Path) -> None:
    with mock(store) as handle:
        handle.control.seed(CATALOGUE)
        with portal_client(handle, H26, "h26", "bi-mat") as client:
            dossier = dossier_json(CODE, MaTTHC="2.000001")
            assert item_codes(client.create(dossier)) == [0]
    with mock(store) as handle:
        assert handle.control.catalogue() == CATALOGUE
        # The demo accounts are gone: the seed replaced them, and it was kept.
        demo = PortalClient(handle.url, H26, "demo")
        try:
            assert demo.auth().status_code == 401
        finally:
            demo.close()
        with portal_client(handle, H26, "h26", "bi-mat") as client:
            assert client.call("share", "LayDanhSachTTHC").json()["data"] == [PROCEDURE]
            assert client.call("share", "LayThuTuc", maTTHC="1.000656").json()["error_code"] == -4
            other = dossier_json(CODE_2, MaTTHC="2.000001")
            assert item_codes(client.create(other)) == [0]
            unknown = dossier_json("000.00.53.H26-240125-00003", MaTTHC="1.000656")
            assert item_codes(client.create(unknown)) == [-5]


def test_a_unit_reset_survives_a_restart(store: Path) -> None:
    with mock(store) as handle:
        with portal_client(handle, H26) as client:
            client.create(dossier_json(CODE), dossier_json(CODE_2))
            client.progress(valid_progress(MaHoSo=CODE))
        with portal_client(handle, H29) as other:
            other.create(dossier_json(H29_CODE))
        handle.control.reset("unit", H26)
        assert handle.control.dossiers(H26) == []
    with mock(store) as handle:
        assert handle.control.dossiers(H26) == []
        assert [d["MaHoSo"] for d in handle.control.dossiers()] == [H29_CODE]
        with portal_client(handle, H26) as client:
            # Gone for good: it can be created again, without its old progress.
            assert item_codes(client.create(dossier_json(CODE))) == [0]
            assert client.lookup(CODE)["data"]["QuaTrinhXuLy"] == []


def test_a_full_reset_survives_a_restart_and_keeps_the_catalogue(store: Path) -> None:
    with mock(store) as handle:
        handle.control.seed(CATALOGUE)
        with portal_client(handle, H26, "h26", "bi-mat") as client:
            client.create(dossier_json(CODE, MaTTHC="2.000001"))
        handle.control.reset("all")
    with mock(store) as handle:
        assert handle.control.dossiers() == []
        assert handle.control.catalogue() == CATALOGUE


def test_a_deleted_dossier_stays_deleted(store: Path) -> None:
    with mock(store) as handle:
        with portal_client(handle) as client:
            client.create(dossier_json(CODE), dossier_json(CODE_2))
            client.progress(valid_progress(MaHoSo=CODE))
        handle.control.delete_dossier(CODE)
    with mock(store) as handle:
        assert [d["MaHoSo"] for d in handle.control.dossiers()] == [CODE_2]
        assert handle.control.dossier(CODE) is None
        with portal_client(handle) as client:
            assert client.lookup(CODE) == {"error_code": -4, "message": "Không tìm thấy hồ sơ"}


def test_a_dossier_set_through_the_control_api_survives_a_restart(store: Path) -> None:
    progress = [
        valid_progress(MaHoSo=CODE, ThoiDiemXuLy="20240125083000", TrangThai="2"),
        valid_progress(MaHoSo=CODE, ThoiDiemXuLy="20240125100000", TrangThai="4"),
    ]
    with mock(store) as handle:
        with portal_client(handle) as client:
            client.create(dossier_json(CODE, "2"))
            client.progress(valid_progress(MaHoSo=CODE, NoiDungXuLy="sẽ bị thay"))
        handle.control.put_dossier(dossier_json(CODE, "9"), progress)
        before = dossier_record(handle, CODE)
    with mock(store) as handle:
        assert dossier_record(handle, CODE) == before
        assert before["dossier"] == dossier_json(CODE, "9") | {"QuaTrinhXuLy": progress}


def test_without_a_store_a_restart_is_empty() -> None:
    for _ in range(2):
        with mock(None) as handle:
            assert handle.control.dossiers() == []
            with portal_client(handle) as client:
                assert item_codes(client.create(dossier_json(CODE))) == [0]
            assert handle.portal.core.persistence is None


def test_progress_keeps_its_arrival_order_across_a_restart(store: Path) -> None:
    """Records with the same ThoiDiemXuLy are listed in arrival order, before and after."""
    same_time = [
        valid_progress(MaHoSo=CODE, ThoiDiemXuLy="20240125090000", NoiDungXuLy=f"bước {n}")
        for n in (5, 2, 7, 1, 9, 4, 8, 3)
    ]
    with mock(store) as handle, portal_client(handle) as client:
        client.create(dossier_json(CODE))
        client.progress(*same_time[:4])
        client.progress(*same_time[4:])
        assert client.lookup(CODE)["data"]["QuaTrinhXuLy"] == same_time
    with mock(store) as handle, portal_client(handle) as client:
        assert client.lookup(CODE)["data"]["QuaTrinhXuLy"] == same_time
