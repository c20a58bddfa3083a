"""What the portal client's tests share: portal settings for the mock, an observer that
records the client's requests, and readings of the mock's journal and conformance report."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any

from pydantic import AnyHttpUrl, SecretStr

from app.config import PortalAccount, PortalSettings
from app.mockportal.testing import MockPortalControl
from app.sync.observe import NullObserver

H26, H29, G05 = "000.00.00.H26", "000.00.00.H29", "000.00.00.G05"
DEMO_UNITS = (H26, H29, G05)


class RecordingObserver(NullObserver):
    """Keeps every ``push_request`` outcome; wakes waiters on an outcome."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str]] = []
        self._waiters: list[tuple[str, asyncio.Event]] = []

    def push_request(self, service: str, outcome: str) -> None:
        self.requests.append((service, outcome))
        for wanted, event in self._waiters:
            if wanted == outcome:
                event.set()

    def seen(self, outcome: str) -> asyncio.Event:
        event = asyncio.Event()
        if any(o == outcome for _, o in self.requests):
            event.set()
        self._waiters.append((outcome, event))
        return event


def portal_settings(
    url: str,
    *,
    units: tuple[str, ...] = DEMO_UNITS,
    password: str = "demo",
    timeout_s: float = 10.0,
    max_batch: int = 100,
    rate_limit_per_s: float = 50.0,
    rate_limit_burst: int = 20,
) -> PortalSettings:
    return PortalSettings(
        base_url=AnyHttpUrl(url),
        timeout_s=timeout_s,
        max_batch=max_batch,
        rate_limit_per_s=rate_limit_per_s,
        rate_limit_burst=rate_limit_burst,
        accounts=[
            PortalAccount(unit=unit, username=unit, password=SecretStr(password)) for unit in units
        ],
    )


def entries(control: MockPortalControl, **filters: Any) -> list[dict[str, Any]]:
    """Journal entries in arrival order."""
    found: list[dict[str, Any]] = control.journal(**filters)["entries"]
    return sorted(found, key=lambda e: (e["at"], e["id"]))


def arrived(entry: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(entry["at"])


def criterion(report: dict[str, Any], name: str) -> dict[str, Any]:
    found: list[dict[str, Any]] = [c for c in report["criteria"] if c["name"] == name]
    [the_one] = found
    return the_one


def assert_passes(report: dict[str, Any], *names: str) -> None:
    for name in names:
        assert criterion(report, name)["passed"], criterion(report, name)
