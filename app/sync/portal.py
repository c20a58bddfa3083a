"""The portal client (portal-contract.md): sessions per unit, the contract's calls, and
what a well-behaved client does when the portal misbehaves.

- A session per top-level unit, logged in lazily; on ``-2`` it logs in again once and
  repeats the call.
- Transient failures (HTTP 429, 502/503/504, 500/-99, timeouts, dropped connections) are
  retried with exponential back-off with jitter and a cap; a 429's ``Retry-After`` is a
  floor, and nothing at all is sent for that unit before it has passed — by any process
  sharing the client's :class:`HoldBoard` (``app/sync/holds.py``), not only this one.
- A circuit breaker per portal: after repeated failures of the portal (5xx, timeouts,
  dropped connections — not 429s, which say it is up) it opens and calls fail fast until
  a cool-down has passed; then one trial call decides.
- A call never waits longer than ``max_wait_s`` in one go: a longer Retry-After or an
  open breaker ends it with :class:`PortalUnavailable` whose ``retry_after`` tells the
  caller when to try again.
- ``-8`` splits the batch; per-item answers are returned for the caller to act on.
"""

from __future__ import annotations

import asyncio
import email.utils
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

import httpx
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    stop_after_attempt,
    stop_any,
    wait_exponential_jitter,
)
from tenacity.stop import stop_base

from app.config import PortalAccount, PortalSettings
from app.domain.codes import MAX_BATCH_ITEMS, ErrorCode
from app.domain.ratelimit import RateLimiter
from app.logs import get_logger
from app.sync.observe import NullObserver, Observer

log = get_logger("dossier_sync.portal")

BACKOFF_S = 0.5
"""The wait before a call's second attempt (and after a first failed login), doubling
with each failure in a row, plus up to as much again of jitter."""


class PortalError(Exception):
    """The portal did not accept a call."""


class PortalUnavailable(PortalError):  # noqa: N818 - a state of the portal
    """Nothing is known to be stored: try again later (``retry_after`` is a floor)."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class NotSent(PortalUnavailable):
    """No request left for the portal: not an attempt of the dossiers' budget."""


class CircuitOpen(NotSent):
    """The breaker is open: the portal failed repeatedly; no call was made."""


class RateLimited(NotSent):
    """The unit must still wait out a Retry-After (answered to this process or another)
    longer than one call may wait: nothing was sent; ``retry_after`` says until when."""


class HoldsUnknown(NotSent):
    """The Retry-After the processes share could not be read: sending now might break a
    wait the portal named to another of them, so nothing was sent."""


class PortalRefused(PortalError):  # noqa: N818 - an answer of the portal
    """A whole-request business error that repeating cannot fix (-1, -5, -9, -10)."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


@dataclass(frozen=True, slots=True)
class ItemOutcome:
    ma_ho_so: str | None
    code: int
    message: str


@dataclass(frozen=True, slots=True)
class Lookup:
    found: dict[str, dict[str, Any]]  # MaHoSo → the stored dossier with QuaTrinhXuLy
    missing: list[str]


class CircuitBreaker:
    """Closed → open after ``threshold`` consecutive transient failures → half-open after
    ``cooldown_s`` (one trial call) → closed on success, open again on failure."""

    def __init__(
        self,
        threshold: int = 5,
        cooldown_s: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.threshold = threshold
        self.cooldown_s = cooldown_s
        self.clock = clock
        self.failures = 0
        self.opened_at: float | None = None
        self._trial = False

    @property
    def state(self) -> str:
        if self.opened_at is None:
            return "closed"
        return "half_open" if self.clock() - self.opened_at >= self.cooldown_s else "open"

    @property
    def is_open(self) -> bool:
        return self.state != "closed"

    def retry_at(self) -> float:
        """Monotonic time when a trial call will be allowed."""
        return (self.opened_at or self.clock()) + self.cooldown_s

    def before_call(self) -> None:
        state = self.state
        if state == "open" or (state == "half_open" and self._trial):
            raise CircuitOpen(
                "the portal failed repeatedly; calls are paused",
                retry_after=max(0.0, self.retry_at() - self.clock()),
            )
        self._trial = state == "half_open"

    def success(self) -> None:
        self.failures, self.opened_at, self._trial = 0, None, False

    def abandon(self) -> None:
        """A call ended without an answer that says anything (it was cancelled): if it
        was the half-open trial, the next call may be the trial instead."""
        self._trial = False

    def failure(self) -> None:
        self.failures += 1
        if self._trial or self.failures >= self.threshold:
            self.opened_at = self.clock()
        self._trial = False


class stop_if(stop_base):  # noqa: N801 - named like tenacity's own stop conditions
    """A tenacity stop condition from a predicate."""

    def __init__(self, predicate: Callable[[RetryCallState], bool]) -> None:
        self.predicate = predicate

    def __call__(self, retry_state: RetryCallState) -> bool:
        return self.predicate(retry_state)


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """``Retry-After`` as seconds from now: delta-seconds or an HTTP-date."""
    if value is None:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():  # "²" is a digit to isdigit(), not to float()
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    current = datetime.now(UTC).timestamp() if now is None else now
    return max(0.0, when.timestamp() - current)


class HoldBoard(Protocol):
    """Where the processes that talk to the portal as one unit share its Retry-After."""

    async def hold(self, unit: str, seconds: float) -> None:
        """The portal asked ``unit`` to send nothing for ``seconds``."""

    async def wait_s(self, unit: str) -> float:
        """Seconds from now before ``unit`` may send (0: now); raises
        :class:`HoldsUnknown` when that cannot be known."""


class PortalClient:
    """One client per portal target (base URL), shared by every pusher of the process."""

    attempts = 3  # tries of one call before the caller reschedules it

    def __init__(
        self,
        settings: PortalSettings,
        http: httpx.AsyncClient | None = None,
        breaker: CircuitBreaker | None = None,
        *,
        max_wait_s: float = 10.0,
        observer: Observer | None = None,
        holds: HoldBoard | None = None,
    ) -> None:
        self.settings = settings
        self.target = str(settings.base_url).rstrip("/")
        self.http = http or httpx.AsyncClient(
            base_url=self.target,
            timeout=httpx.Timeout(settings.timeout_s),
            limits=httpx.Limits(max_connections=32, max_keepalive_connections=32),
        )
        self.breaker = breaker or CircuitBreaker()
        self.max_wait_s = max_wait_s
        self._accounts = {a.unit: a for a in settings.accounts}
        self._sessions: dict[str, str] = {}
        self._not_before: dict[str, float] = {}  # unit → monotonic time (Retry-After)
        # unit → the requests this process sends it, paced under the portal's bucket.
        self._pace = RateLimiter(settings.rate_limit_per_s, settings.rate_limit_burst)
        self._login_locks: dict[str, asyncio.Lock] = {}
        # unit → (logins failed in a row, monotonic time before which none is sent again)
        self._login_backoff: dict[str, tuple[int, float]] = {}
        self.observer: Observer = observer or NullObserver()
        self.holds = holds

    async def aclose(self) -> None:
        await self.http.aclose()

    # --- the contract's calls ------------------------------------------------------

    async def sync_dossiers(
        self, unit: str, dossiers: Sequence[dict[str, Any]], *, updating: bool
    ) -> list[ItemOutcome]:
        """``DongBoHoSoMC``: create (``updating=False``) or update dossiers."""
        return await self._items(
            unit,
            "DongBoHoSoMC",
            list(dossiers),
            {"isUpdating": "True" if updating else "False"},
        )

    async def update_progress(
        self, unit: str, records: Sequence[dict[str, Any]]
    ) -> list[ItemOutcome]:
        """``CapNhatTienDoHoSoMC``."""
        return await self._items(unit, "CapNhatTienDoHoSoMC", list(records), {})

    async def lookup(self, unit: str, codes: Sequence[str]) -> Lookup:
        """``TraCuuHoSo`` for up to 100 codes a call (bulk, policy of contract §4)."""
        found: dict[str, dict[str, Any]] = {}
        missing: list[str] = []
        for start in range(0, len(codes), MAX_BATCH_ITEMS):
            chunk = list(codes[start : start + MAX_BATCH_ITEMS])
            body = await self._call(unit, "share", "TraCuuHoSo", {"dsmahoso": chunk})
            for dossier in body.get("data") or []:
                if isinstance(dossier, dict) and isinstance(dossier.get("MaHoSo"), str):
                    found[dossier["MaHoSo"]] = dossier
            missing += [c for c in body.get("khongtimthay") or [] if isinstance(c, str)]
        return Lookup(found, missing)

    async def procedures(self, unit: str) -> list[dict[str, Any]]:
        """``LayDanhSachTTHC``: the portal's procedures."""
        body = await self._call(unit, "share", "LayDanhSachTTHC", {})
        return [p for p in body.get("data") or [] if isinstance(p, dict)]

    async def agencies(self, unit: str) -> list[dict[str, Any]]:
        """``LayDanhMucCoQuan``: the portal's agencies."""
        body = await self._call(unit, "share", "LayDanhMucCoQuan", {})
        return [a for a in body.get("data") or [] if isinstance(a, dict)]

    # --- mechanics ------------------------------------------------------------------

    async def _items(
        self, unit: str, service: str, items: list[dict[str, Any]], fields: dict[str, Any]
    ) -> list[ItemOutcome]:
        outcomes: list[ItemOutcome] = []
        size = min(self.settings.max_batch, MAX_BATCH_ITEMS)
        for start in range(0, len(items), size):
            chunk = items[start : start + size]
            try:
                body = await self._call(unit, "integration", service, fields | {"data": chunk})
            except PortalRefused as refused:
                if refused.code != ErrorCode.BATCH_TOO_LARGE or len(chunk) == 1:
                    raise
                half = len(chunk) // 2  # -8: split and send the halves
                outcomes += await self._items(unit, service, chunk[:half], fields)
                outcomes += await self._items(unit, service, chunk[half:], fields)
                continue
            answers = body.get("data") or []
            for index, item in enumerate(chunk):
                answer = answers[index] if index < len(answers) else {}
                code = answer.get("error_code")
                outcomes.append(
                    ItemOutcome(
                        item.get("MaHoSo"),
                        code if isinstance(code, int) else int(ErrorCode.INTERNAL_ERROR),
                        str(answer.get("message") or ""),
                    )
                )
        return outcomes

    async def _call(
        self, unit: str, endpoint: str, service: str, fields: dict[str, Any]
    ) -> dict[str, Any]:
        """One contract call with retries; returns the answer of error_code 0 or 1."""

        def wait(state: RetryCallState) -> float:
            backoff = wait_exponential_jitter(
                multiplier=BACKOFF_S, max=self.max_wait_s, jitter=BACKOFF_S
            )(state)
            error = state.outcome.exception() if state.outcome else None
            floor = getattr(error, "retry_after", None) or 0.0
            return max(backoff, floor)

        def too_long(state: RetryCallState) -> bool:
            # Waiting out an open breaker or a long Retry-After inside the call would hold
            # a pusher (and its leases) idle; the caller reschedules the work instead,
            # with the same floor, and sends nothing before it.
            error = state.outcome.exception() if state.outcome else None
            floor = getattr(error, "retry_after", None) or 0.0
            return isinstance(error, CircuitOpen) or floor > self.max_wait_s

        async for attempt in AsyncRetrying(
            retry=retry_if_exception_type(PortalUnavailable),
            stop=stop_any(stop_after_attempt(self.attempts), stop_if(too_long)),
            wait=wait,
            reraise=True,
        ):
            with attempt:
                return await self._once(unit, endpoint, service, fields)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _once(
        self, unit: str, endpoint: str, service: str, fields: dict[str, Any]
    ) -> dict[str, Any]:
        for _ in range(2):  # the second time after -2, with the session that replaced it
            session = await self._session(unit)
            body = {"session": session, "madonvi": unit, "service": service} | fields
            status, answer = await self._post(unit, f"/dvcqg/{endpoint}", body, service)
            code = answer.get("error_code")
            if status == 401 and code == ErrorCode.SESSION_EXPIRED:
                if self._sessions.get(unit) == session:
                    del self._sessions[unit]
                continue  # log in again once, then repeat the call
            if status == 200 and code in (ErrorCode.SUCCESS, ErrorCode.PARTIAL):
                return answer
            if code == ErrorCode.INTERNAL_ERROR or status >= 500:
                raise PortalUnavailable(f"{service}: portal error {status}/{code}")
            raise PortalRefused(
                int(code) if isinstance(code, int) else status, str(answer.get("message"))
            )
        raise PortalUnavailable(f"{service}: session expired again right after logging in")

    async def _session(self, unit: str) -> str:
        """The unit's session, logging in if it has none. After -2 the expired token was
        dropped (``_once``), so concurrent callers share one new login.

        A login that failed for a transient reason holds the next one back, longer after
        each failure in a row: the callers queued behind it would otherwise each send the
        same login the moment it failed, a hot loop from the portal's side."""
        lock = self._login_locks.setdefault(unit, asyncio.Lock())
        async with lock:
            if unit in self._sessions:
                return self._sessions[unit]
            account = self._accounts.get(unit)
            if account is None:
                raise PortalRefused(int(ErrorCode.BAD_CREDENTIALS), f"no account for {unit}")
            await self._wait_login(unit)
            try:
                session = await self._log_in(unit, account)
            except PortalUnavailable as error:
                if not isinstance(error, NotSent):
                    self._login_failed(unit)
                raise
            self._login_backoff.pop(unit, None)
            self._sessions[unit] = session
            return session

    async def _log_in(self, unit: str, account: PortalAccount) -> str:
        status, answer = await self._post(
            unit,
            "/dvcqg/auth",
            {"username": account.username, "password": account.password.get_secret_value()},
            "auth",
        )
        if status != 200 or answer.get("error_code") != 0:
            if status == 401:
                raise PortalRefused(int(ErrorCode.BAD_CREDENTIALS), "login refused")
            raise PortalUnavailable(f"login failed ({status})")
        return str(answer["session"])

    async def _wait_login(self, unit: str) -> None:
        delay = self._login_backoff.get(unit, (0, 0.0))[1] - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)

    def _login_failed(self, unit: str) -> None:
        failures = self._login_backoff.get(unit, (0, 0.0))[0] + 1
        # The calls' own back-off (``_call``), at most max_wait_s (what one call may wait).
        jitter = random.uniform(0.0, BACKOFF_S)  # noqa: S311 - jitter, not secrets
        hold = BACKOFF_S * 2 ** (failures - 1) + jitter
        self._login_backoff[unit] = (failures, time.monotonic() + min(hold, self.max_wait_s))

    async def _wait_turn(self, unit: str, service: str) -> None:
        """Until ``unit`` may send. The portal asked it to send nothing before then; a
        429 answered meanwhile (here or to another process) may have moved the time
        later, so look again after each sleep."""
        while True:
            if self.holds is not None:
                self._hold_locally(unit, await self.holds.wait_s(unit))
            delay = self._not_before.get(unit, 0.0) - time.monotonic()
            if delay <= 0:
                return
            if delay > self.max_wait_s:
                raise RateLimited(f"{service}: rate limited", retry_after=delay)
            await asyncio.sleep(delay)

    async def _pace_turn(self, unit: str, service: str) -> None:
        """Until the unit's pace lets a request go: sent no faster than the portal's
        bucket refills (§7), rather than answered 429, which holds the whole unit for at
        least a second. Only calls that will be sent take a turn (the gate and the
        breaker were asked first), and one that is not sent after all gives it back."""
        delay = self._pace.reserve(unit, time.monotonic())
        if delay <= 0:
            return
        try:
            await asyncio.sleep(delay)
            await self._wait_turn(unit, service)  # a 429 answered meanwhile holds it too
        except BaseException:
            self._pace.refund(unit)
            raise

    async def _hold(self, unit: str, seconds: float) -> None:
        self._hold_locally(unit, seconds)
        if self.holds is not None:
            await self.holds.hold(unit, seconds)

    def _hold_locally(self, unit: str, seconds: float) -> None:
        # Every 429's time holds: a later, shorter one does not shorten an earlier.
        if seconds > 0:
            until = time.monotonic() + seconds
            self._not_before[unit] = max(self._not_before.get(unit, 0.0), until)

    async def _post(
        self, unit: str, path: str, body: dict[str, Any], service: str
    ) -> tuple[int, dict[str, Any]]:
        """One HTTP exchange through the unit's Retry-After gate and the breaker, paced
        under the unit's rate limit."""
        await self._wait_turn(unit, service)
        self.breaker.before_call()
        try:
            await self._pace_turn(unit, service)
        except BaseException:  # nothing was sent: a half-open trial is not under way
            self.breaker.abandon()
            raise
        try:
            response = await self.http.post(path, json=body, headers={"dstcode": unit})
        except httpx.RequestError as error:  # timeouts, refused and dropped connections, …
            self.breaker.failure()
            self.observer.push_request(service, "transport_error")
            raise PortalUnavailable(f"{service}: {type(error).__name__}") from None
        except BaseException:  # cancelled: else a half-open breaker waits for it forever
            self.breaker.abandon()
            raise
        if response.status_code == 429 or response.status_code >= 500:
            retry_after = parse_retry_after(response.headers.get("Retry-After"))
            if response.status_code == 429:
                # The portal answered: it is up, only asking this unit to slow down. The
                # breaker is for a portal that is down; a 429 neither opens nor closes it.
                self.breaker.abandon()
                await self._hold(unit, retry_after or 1.0)
            else:
                self.breaker.failure()
            self.observer.push_request(service, f"http_{response.status_code}")
            raise PortalUnavailable(f"{service}: HTTP {response.status_code}", retry_after)
        self.breaker.success()
        try:
            answer = response.json()
        except ValueError:
            self.observer.push_request(service, "bad_answer")
            raise PortalUnavailable(f"{service}: answer is not JSON") from None
        if not isinstance(answer, dict):
            self.observer.push_request(service, "bad_answer")
            raise PortalUnavailable(f"{service}: answer is not an object")
        code = answer.get("error_code")
        self.observer.push_request(service, "ok" if code in (0, 1) else f"error_{code}")
        return response.status_code, answer
