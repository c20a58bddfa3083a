"""The mock's side of the rate limit (contract §7); the token bucket is the domain's
(``app.domain.ratelimit``), shared with the service's client, which paces itself by it."""

from __future__ import annotations

import math


def retry_after_header(seconds: float) -> str:
    """``Retry-After`` in whole seconds, rounded up (never 0: "now" invites a hot loop)."""
    return str(max(1, math.ceil(seconds)))
