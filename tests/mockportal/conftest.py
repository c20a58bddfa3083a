"""Fixtures for the mock portal tests: a clean mock per test and contract clients."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from app.mockportal.testing import MockPortalControl, MockPortalHandle
from tests.mockportal.helpers import H26, H29, PortalClient


@pytest.fixture
def control(mock_portal: MockPortalHandle) -> MockPortalControl:
    return mock_portal.control


@pytest.fixture
def client(mock_portal: MockPortalHandle) -> Iterator[PortalClient]:
    """A logged-in client of unit H26."""
    portal = PortalClient(mock_portal.url, H26)
    portal.login()
    yield portal
    portal.close()


@pytest.fixture
def other_client(mock_portal: MockPortalHandle) -> Iterator[PortalClient]:
    """A logged-in client of unit H29."""
    portal = PortalClient(mock_portal.url, H29)
    portal.login()
    yield portal
    portal.close()


@pytest.fixture
def new_client(mock_portal: MockPortalHandle) -> Iterator[Callable[..., PortalClient]]:
    """Make clients (not logged in) that are closed after the test."""
    made: list[PortalClient] = []

    def make(unit: str = H26, password: str = "demo", timeout: float = 10) -> PortalClient:
        made.append(PortalClient(mock_portal.url, unit, password, timeout))
        return made[-1]

    yield make
    for portal in made:
        portal.close()
