"""The running simulator: its world, its tokens, what it has served, and the background
changes; plus the date formats and pieces that the three dialects share."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import threading
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import datetime
from typing import Any

from fastapi import FastAPI, Request

from app.logs import get_logger
from app.simulators.settings import Dialect, SimulatorSettings
from app.simulators.statuses import SourceStatus, default_portal_status
from app.simulators.world import Key, SimDossier, World

log = get_logger("simulators")

TruthEntry = Callable[[World, SimDossier], dict[str, Any]]

# Token lifetimes the dialects document: iGate's token endpoint says 300 s, DVCLT's
# tokens last 15 minutes. `token_ttl_s` overrides both (to force expiry in tests).
DEFAULT_TOKEN_TTL_S: dict[Dialect, float] = {"opencps": 0.0, "igate": 300.0, "dvclt": 900.0}

# How often the background task wakes up; at high rates it applies a batch per wake-up.
BACKGROUND_TICK_S = 0.05
# With ties on, the share of background batches that become one bulk action.
BACKGROUND_BULK_SHARE = 0.05


def dmy(value: datetime | None) -> str:
    """OpenCPS and DVCLT dates: ``dd/MM/yyyy HH:mm:ss``, local time; "" when unset."""
    return value.strftime("%d/%m/%Y %H:%M:%S") if value is not None else ""


def iso_ms(value: datetime | None) -> str | None:
    """iGate dates: ISO-8601 with milliseconds and offset (``2024-05-13T09:30:00.000+0700``);
    null when unset."""
    if value is None:
        return None
    return (
        value.strftime("%Y-%m-%dT%H:%M:%S.")
        + f"{value.microsecond // 1000:03d}"
        + (value.strftime("%z"))
    )


# Deliberately broken values (bad_data_share): a date that does not exist, an e-mail
# with two @, a phone one digit short of the portal's minimum of eight.
BAD_DMY = "31/02/2024 25:61:00"
BAD_ISO = "2024-02-31T25:61:00.000+0700"


def bad_email(good: str | None) -> str:
    local = (good or "an.nguyen@x").split("@", 1)[0]
    return f"{local}@@x"


def bad_phone(good: str) -> str:
    return good[:7]


def expected(
    dialect: Dialect,
    dossier: SimDossier,
    *,
    current: SourceStatus,
    history: Sequence[SourceStatus],
    valid: bool,
) -> dict[str, Any]:
    """What a correct connector makes of a dossier under the spec's default mapping."""
    status = default_portal_status(dialect, current)
    mapped = [default_portal_status(dialect, s) for s in history]
    return {
        "MaHoSo": dossier.ma_ho_so,
        "TrangThaiHoSo": status.value if status is not None else None,
        "valid": valid,
        "history_statuses": [s.value if s is not None else None for s in mapped],
    }


class TokenStore:
    """Bearer tokens and when they expire (wall-clock seconds, whatever the world clock)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._expiry: dict[str, float] = {}

    def issue(self, ttl_s: float) -> str:
        token = secrets.token_urlsafe(32)
        now = time.monotonic()
        with self._lock:
            self._expiry = {t: e for t, e in self._expiry.items() if e > now}
            self._expiry[token] = now + ttl_s
        return token

    def valid(self, token: str | None) -> bool:
        if not token:
            return False
        with self._lock:
            expiry = self._expiry.get(token)
        return expiry is not None and expiry > time.monotonic()

    def expire_all(self) -> int:
        with self._lock:
            count = len(self._expiry)
            self._expiry.clear()
        return count


class Simulator:
    """One simulated source system: ``app.state.simulator``."""

    def __init__(
        self, dialect: Dialect, settings: SimulatorSettings, truth_entry: TruthEntry
    ) -> None:
        self.dialect: Dialect = dialect
        self.world = World(dialect, settings)
        self.tokens = TokenStore()
        self.truth_entry = truth_entry
        self.requests: Counter[str] = Counter()
        self._requests_lock = threading.Lock()

    @property
    def settings(self) -> SimulatorSettings:
        return self.world.settings

    def update_settings(self, changes: dict[str, Any]) -> SimulatorSettings:
        with self.world.lock:
            merged = self.world.settings.model_dump() | changes
            self.world.settings = SimulatorSettings.model_validate(merged)
            return self.world.settings

    @property
    def token_ttl_s(self) -> float:
        return self.settings.token_ttl_s or DEFAULT_TOKEN_TTL_S[self.dialect]

    def count(self, endpoint: str) -> None:
        with self._requests_lock:
            self.requests[endpoint] += 1

    def before_list(self) -> None:
        """moves_per_list_request: change dossiers while a poll is under way, so rows
        move between the pages a client is reading."""
        moves = self.settings.moves_per_list_request
        if moves:
            self.world.mutate(moves)

    def truth(self) -> dict[str, Any]:
        world = self.world
        with world.lock:
            return {
                "dialect": self.dialect,
                "now": world.now().isoformat(timespec="milliseconds"),
                "agency_map": (
                    {str(k): v for k, v in world.agency_map.items()}
                    if self.dialect == "dvclt"
                    else None
                ),
                "dossiers": [self.truth_entry(world, d) for d in world.dossiers],
            }

    def stats(self) -> dict[str, Any]:
        world = self.world
        with world.lock:
            states = Counter(d.state.value for d in world.dossiers)
            unmapped = sum(1 for d in world.dossiers if d.unmapped)
            dossiers, mutations = len(world.dossiers), world.mutations
            unacknowledged = world.unacknowledged() if self.dialect == "dvclt" else None
        with self._requests_lock:
            requests = dict(sorted(self.requests.items()))
        return {
            "dialect": self.dialect,
            "dossiers": dossiers,
            "states": dict(sorted(states.items())),
            "unmapped": unmapped,
            "mutations": mutations,
            "requests": requests,
            "unacknowledged": unacknowledged,
        }

    def mutate(self, count: int, bulk: int = 1) -> list[Key]:
        return self.world.mutate(count, bulk)

    # --- background changes --------------------------------------------------------------

    async def _background(self) -> None:
        """Apply ``changes_per_second`` mutations per second (read afresh on every tick, so
        a PATCH takes effect at once), batched per tick when the rate is high."""
        carry, last = 0.0, time.monotonic()
        while True:
            await asyncio.sleep(BACKGROUND_TICK_S)
            now = time.monotonic()
            rate = self.settings.changes_per_second
            carry = carry + rate * (now - last) if rate > 0 else 0.0
            last = now
            due = int(carry)
            if due <= 0:
                continue
            world = self.world
            with world.lock:
                bulk = (
                    world.rng.randint(2, 10)
                    if world.settings.ties and world.rng.random() < BACKGROUND_BULK_SHARE
                    else 0
                )
                # A bulk action may run ahead of the rate; the carry goes negative and
                # the next ticks make up for it.
                applied = bulk or due
                world.mutate(applied, bulk=bulk or 1)
            carry -= applied

    @contextlib.asynccontextmanager
    async def lifespan(self, _app: FastAPI) -> AsyncIterator[None]:
        task = asyncio.create_task(self._background(), name=f"{self.dialect}-changes")
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


class SourceError(Exception):
    """An error answer in the dialect's own shape (a JSON object or plain text)."""

    def __init__(
        self, status: int, body: dict[str, Any] | str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(status)
        self.status = status
        self.body = body
        self.headers = headers or {}


def simulator_of(request: Request) -> Simulator:
    simulator: Simulator = request.app.state.simulator
    return simulator


def route_name(request: Request) -> str:
    """``GET /o/rest/v2/dossiers/{dossierId}/files``: the endpoint, not the URL."""
    route = request.scope.get("route")
    path = getattr(route, "path", request.url.path)
    return f"{request.method} {path}"
