"""pytest fixtures for testing a client against the mock portal.

Enable with ``pytest -p app.mockportal.pytest_plugin`` (or in ``addopts``). One server
runs for the whole session; ``mock_portal`` hands it out clean for each test: no
dossiers, sessions, journal or faults, the demo catalogue, default settings.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from app.demodata import load_demo_catalogue
from app.mockportal.testing import MockPortalHandle, running_mock_portal


@pytest.fixture(scope="session")
def mock_portal_server() -> Iterator[MockPortalHandle]:
    with running_mock_portal() as handle:
        yield handle


@pytest.fixture
def mock_portal(mock_portal_server: MockPortalHandle) -> MockPortalHandle:
    control = mock_portal_server.control
    control.reset("all")
    control.seed(load_demo_catalogue())
    control.settings(session_ttl_s=1800, rate_per_s=50, burst=100, journal_capacity=10_000)
    return mock_portal_server
