"""The service tests' process fixtures, for tests that run the service next to Prometheus."""

from __future__ import annotations

from tests.service.conftest import fresh_database_url, processes

__all__ = ["fresh_database_url", "processes"]
