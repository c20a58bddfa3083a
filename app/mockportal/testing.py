"""Test support for integrators: run the mock on a free port and drive its control API.

With pytest, add ``-p app.mockportal.pytest_plugin`` (or ``pytest_plugins = [...]`` in
your root ``conftest.py``) and take the ``mock_portal`` fixture::

    def test_my_client_survives_503(mock_portal):
        mock_portal.control.add_fault(
            selector={"service": "DongBoHoSoMC"},
            schedule={"kind": "sequence", "steps": ["503", "503", "ok"]},
        )
        run_my_client(base_url=mock_portal.url, unit="000.00.00.H26", password="demo")
        report = mock_portal.control.conformance("000.00.00.H26")
        assert report["passed"], report
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

from app.mockportal.app import MockPortal, MockPortalSettings
from app.mockportal.server import BackgroundMockPortal

DEFAULT_ADMIN_TOKEN = "mock-admin"  # noqa: S105 - a test token for a local mock


class MockPortalControl:
    """A small client of the ``/_mock`` control API (raises on any non-2xx answer)."""

    def __init__(self, base_url: str, admin_token: str, timeout: float = 10.0) -> None:
        self.http = httpx.Client(
            base_url=base_url,
            headers={"Authorization": f"Bearer {admin_token}"},
            timeout=timeout,
        )

    def close(self) -> None:
        self.http.close()

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self.http.request(method, f"/_mock{path}", **kwargs)
        response.raise_for_status()
        return None if response.status_code == 204 else response.json()

    def reset(
        self, scope: str = "all", unit: str | None = None, agency: str | None = None
    ) -> dict[str, Any]:
        """scope: all, unit (give ``unit``), agency (give ``agency``), journal, faults,
        sessions."""
        body = {"scope": scope} | ({"unit": unit} if unit else {})
        body |= {"agency": agency} if agency else {}
        result: dict[str, Any] = self._call("POST", "/reset", json=body)
        return result

    def seed(
        self, catalogue: dict[str, Any] | None = None, *, file: Path | None = None
    ) -> dict[str, int]:
        body = {"catalogue": catalogue} if catalogue is not None else {"file": str(file)}
        result: dict[str, int] = self._call("POST", "/seed", json=body)
        return result

    def catalogue(self) -> dict[str, Any]:
        result: dict[str, Any] = self._call("GET", "/catalogue")
        return result

    def dossiers(self, unit: str | None = None) -> list[dict[str, Any]]:
        params = {"unit": unit} if unit else {}
        result: list[dict[str, Any]] = self._call("GET", "/dossiers", params=params)["dossiers"]
        return result

    def dossier(self, ma_ho_so: str) -> dict[str, Any] | None:
        """The stored dossier with ``QuaTrinhXuLy``, or None when the portal has none."""
        response = self.http.get(f"/_mock/dossiers/{ma_ho_so}")
        if response.status_code == 404:
            return None
        response.raise_for_status()
        dossier: dict[str, Any] = response.json()["dossier"]
        return dossier

    def put_dossier(
        self, dossier: dict[str, Any], progress: list[dict[str, Any]] | None = None
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"dossier": dossier}
        if progress is not None:
            body["progress"] = progress
        result: dict[str, Any] = self._call("PUT", f"/dossiers/{dossier['MaHoSo']}", json=body)
        return result

    def delete_dossier(self, ma_ho_so: str) -> None:
        self._call("DELETE", f"/dossiers/{ma_ho_so}")

    def journal(self, **filters: Any) -> dict[str, Any]:
        """``{"total", "dropped", "capacity", "entries"}``; filters: unit, ma_ho_so,
        outcome, service, faulted, since, until, limit, offset."""
        result: dict[str, Any] = self._call("GET", "/journal", params=_params(filters))
        return result

    def journal_ndjson(self, **filters: Any) -> tuple[list[str], int]:
        """The NDJSON lines and the dropped count from ``X-Journal-Dropped``."""
        response = self.http.get("/_mock/journal.ndjson", params=_params(filters))
        response.raise_for_status()
        return response.text.splitlines(), int(response.headers["X-Journal-Dropped"])

    def add_fault(
        self,
        *,
        selector: dict[str, Any] | None = None,
        action: dict[str, Any] | None = None,
        schedule: dict[str, Any] | None = None,
        max_uses: int | None = None,
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"selector": selector or {}}
        if action is not None:
            body["action"] = action
        if schedule is not None:
            body["schedule"] = schedule
        if max_uses is not None:
            body["max_uses"] = max_uses
        result: dict[str, Any] = self._call("POST", "/faults", json=body)
        return result

    def faults(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self._call("GET", "/faults")["rules"]
        return result

    def remove_fault(self, rule_id: int) -> None:
        self._call("DELETE", f"/faults/{rule_id}")

    def clear_faults(self) -> None:
        self._call("DELETE", "/faults")

    def expire_sessions(self, unit: str) -> int:
        result: int = self._call("POST", "/sessions/expire", params={"unit": unit})["expired"]
        return result

    def stats(self, unit: str | None = None) -> dict[str, Any]:
        params = {"unit": unit} if unit else {}
        result: dict[str, Any] = self._call("GET", "/stats", params=params)["units"]
        return result

    def conformance(
        self, unit: str, since: datetime | None = None, until: datetime | None = None
    ) -> dict[str, Any]:
        params = _params({"unit": unit, "since": since, "until": until})
        result: dict[str, Any] = self._call("GET", "/conformance", params=params)
        return result

    def settings(self, **changes: Any) -> dict[str, Any]:
        """Read the settings, or change some (session_ttl_s, rate_per_s, burst,
        journal_capacity) and read them back."""
        if changes:
            result: dict[str, Any] = self._call("PATCH", "/settings", json=changes)
        else:
            result = self._call("GET", "/settings")
        return result


def _params(values: dict[str, Any]) -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in values.items():
        if value is None:
            continue
        if isinstance(value, datetime):
            out[key] = value.isoformat()
        elif isinstance(value, bool):
            out[key] = "true" if value else "false"
        else:
            out[key] = str(value)
    return out


@dataclass
class MockPortalHandle:
    """A running mock: its URL, a control client and (same process) its live state."""

    url: str
    control: MockPortalControl
    server: BackgroundMockPortal

    @property
    def portal(self) -> MockPortal:
        return self.server.portal


@contextmanager
def running_mock_portal(
    settings: MockPortalSettings | None = None,
) -> Iterator[MockPortalHandle]:
    """Start the mock on a free port (admin token ``mock-admin`` unless given)."""
    settings = settings or MockPortalSettings(admin_token=DEFAULT_ADMIN_TOKEN)
    if settings.admin_token is None:
        raise ValueError("the handle's control client needs an admin token")
    with BackgroundMockPortal(settings) as server:
        control = MockPortalControl(server.url, settings.admin_token)
        try:
            yield MockPortalHandle(server.url, control, server)
        finally:
            control.close()
