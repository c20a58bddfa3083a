"""Authentication (``Authorization: Bearer <key>``), scopes and the per-key rate limit.

401 for a missing, unknown or revoked key; 403 for a key used outside its scope or its unit —
and callers that check a dossier's unit answer 404 for another unit's dossier exactly as
for one that does not exist, so that no answer reveals it. The rate limit is a token
bucket per key in this process (``api.rate_limit_per_s``, ``api.rate_limit_burst``);
with several API processes each enforces it separately.
"""

from __future__ import annotations

import math
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from app.api.deps import ServiceDep
from app.api.errors import ApiError
from app.auth import Principal, Scope, authenticate
from app.db import transaction

bearer = HTTPBearer(auto_error=False, description="An API key from `dossier-sync keys create`.")


class TokenBuckets:
    """One bucket per key: ``rate`` tokens a second up to ``burst``."""

    def __init__(
        self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.rate = rate
        self.burst = burst
        self.clock = clock
        self._buckets: dict[int, tuple[float, float]] = {}  # key id → (tokens, at)

    def take(self, key_id: int) -> float | None:
        """None when a token was taken; else the seconds until one is available."""
        now = self.clock()
        tokens, at = self._buckets.get(key_id, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - at) * self.rate)
        if tokens >= 1.0:
            self._buckets[key_id] = (tokens - 1.0, now)
            return None
        self._buckets[key_id] = (tokens, now)
        return (1.0 - tokens) / self.rate


def _buckets(request: Request, service: ServiceDep) -> TokenBuckets:
    buckets: TokenBuckets | None = getattr(request.app.state, "rate_limits", None)
    if buckets is None:
        api = service.settings.api
        buckets = TokenBuckets(api.rate_limit_per_s, api.rate_limit_burst)
        request.app.state.rate_limits = buckets
    return buckets


async def principal(
    service: ServiceDep,
    buckets: Annotated[TokenBuckets, Depends(_buckets)],
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Principal:
    """The caller, from its key; rate-limited per key."""
    if credentials is None or credentials.scheme.lower() != "bearer" or not credentials.credentials:
        raise ApiError(
            401, "unauthorized", "missing API key", headers={"WWW-Authenticate": "Bearer"}
        )
    async with transaction(service.sessions) as session:
        found = await authenticate(session, credentials.credentials, datetime.now(UTC))
    if found is None:
        raise ApiError(
            401, "unauthorized", "unknown API key", headers={"WWW-Authenticate": "Bearer"}
        )
    wait = buckets.take(found.key_id)
    if wait is not None:
        raise ApiError(
            429,
            "rate_limited",
            "too many requests for this key",
            headers={"Retry-After": str(max(1, math.ceil(wait)))},
        )
    return found


def require(scope: Scope) -> Callable[..., Awaitable[Principal]]:
    """A dependency: the caller, who must hold ``scope``."""

    async def scoped(caller: Annotated[Principal, Depends(principal)]) -> Principal:
        if scope not in caller.scopes:
            raise ApiError(403, "forbidden", f"this key lacks the {scope.value!r} scope")
        return caller

    return scoped


Ingest = Annotated[Principal, Depends(require(Scope.INGEST))]
Reader = Annotated[Principal, Depends(require(Scope.READ))]
Admin = Annotated[Principal, Depends(require(Scope.ADMIN))]
