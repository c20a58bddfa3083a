"""What the pipeline reports as it works (for metrics), without depending on how.

The stages call an :class:`Observer`; ``app.metrics`` provides the Prometheus one and
tests may pass their own. Everything here is called on hot paths: keep it cheap.
"""

from __future__ import annotations

from typing import Protocol


class Observer(Protocol):
    def source_poll(self, source: str, outcome: str, records: int) -> None:
        """A poll ended (``outcome``: ok or error) after reading ``records`` records."""

    def push_request(self, service: str, outcome: str) -> None:
        """One HTTP exchange with the portal (``outcome``: ok, error_<code>, http_<status>,
        transport_error, …)."""

    def push_item(self, service: str, error_code: int | None) -> None:
        """One item's answer (``None``: the whole call failed, no per-item answer)."""

    def lag(self, unit: str, seconds: float) -> None:
        """From reading a change at its source to the portal's acknowledgement of it."""


class NullObserver:
    def source_poll(self, source: str, outcome: str, records: int) -> None:
        pass

    def push_request(self, service: str, outcome: str) -> None:
        pass

    def push_item(self, service: str, error_code: int | None) -> None:
        pass

    def lag(self, unit: str, seconds: float) -> None:
        pass
