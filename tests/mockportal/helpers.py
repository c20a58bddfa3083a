"""A plain contract client for the mock portal tests (what an integrator would write)."""

from __future__ import annotations

from typing import Any

import httpx

H26 = "000.00.00.H26"
H29 = "000.00.00.H29"
G05 = "000.00.00.G05"


class PortalClient:
    """Speaks portal-contract.md for one unit; keeps its session token."""

    def __init__(self, url: str, unit: str = H26, password: str = "demo", timeout: float = 10):
        self.unit = unit
        self.password = password
        self.http = httpx.Client(base_url=url, timeout=timeout)
        self.session: str | None = None

    def close(self) -> None:
        self.http.close()

    def auth(
        self, username: str | None = None, password: str | None = None, dstcode: str | None = None
    ) -> httpx.Response:
        response = self.http.post(
            "/dvcqg/auth",
            json={"username": username or self.unit, "password": password or self.password},
            headers={"dstcode": dstcode or self.unit},
        )
        if response.status_code == 200:
            self.session = response.json()["session"]
        return response

    def login(self) -> str:
        response = self.auth()
        assert response.status_code == 200, response.text
        assert self.session is not None
        return self.session

    def call(
        self, endpoint: str, service: str, *, dstcode: str | None = None, **fields: Any
    ) -> httpx.Response:
        """POST a contract call; ``session`` and ``madonvi`` default to this client's."""
        if self.session is None and "session" not in fields:
            self.login()
        body = {"session": self.session, "madonvi": self.unit, "service": service} | fields
        return self.http.post(
            f"/dvcqg/{endpoint}", json=body, headers={"dstcode": dstcode or self.unit}
        )

    def create(self, *dossiers: dict[str, Any]) -> dict[str, Any]:
        return self._ok(
            self.call("integration", "DongBoHoSoMC", isUpdating="False", data=list(dossiers))
        )

    def update(self, *dossiers: dict[str, Any]) -> dict[str, Any]:
        return self._ok(
            self.call("integration", "DongBoHoSoMC", isUpdating="True", data=list(dossiers))
        )

    def progress(self, *records: dict[str, Any]) -> dict[str, Any]:
        return self._ok(self.call("integration", "CapNhatTienDoHoSoMC", data=list(records)))

    def lookup(self, code: str) -> dict[str, Any]:
        return self._ok(self.call("share", "TraCuuHoSo", mahoso=code))

    def lookup_many(self, codes: list[str]) -> dict[str, Any]:
        return self._ok(self.call("share", "TraCuuHoSo", dsmahoso=codes))

    @staticmethod
    def _ok(response: httpx.Response) -> dict[str, Any]:
        assert response.status_code == 200, (response.status_code, response.text)
        body: dict[str, Any] = response.json()
        return body


def item_codes(answer: dict[str, Any]) -> list[int]:
    """The per-item error codes of a DongBoHoSoMC / CapNhatTienDoHoSoMC answer."""
    return [item["error_code"] for item in answer["data"]]
