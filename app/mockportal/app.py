"""The mock portal over HTTP: the contract's three endpoints, faults, journal, control API.

``create_app`` returns a plain ASGI application. Run it under uvicorn (``dossier-sync
mock-portal``): the "drop the connection" faults reach into uvicorn's transport to cut
the TCP connection without an answer, which is what a client must survive.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from app.domain.codes import MAX_BODY_BYTES, ErrorCode
from app.domain.ratelimit import RateLimiter
from app.logs import get_logger
from app.mockportal import openapi
from app.mockportal.core import (
    INTEGRATION_SERVICES,
    MESSAGES,
    SHARE_SERVICES,
    ItemResult,
    PortalCore,
    PortalError,
    Rejection,
    owning_agency,
    session_fingerprint,
    utcnow,
)
from app.mockportal.faults import Fault, FaultEngine, RequestFacts
from app.mockportal.journal import (
    Journal,
    JournalEntry,
    JournalItem,
    journal_digest,
    outcome_of,
)
from app.mockportal.persistence import Persistence
from app.mockportal.ratelimit import retry_after_header

log = get_logger("mockportal")

_TRANSPORT_KEY = "mockportal.transport"


@dataclass(frozen=True, slots=True)
class MockPortalSettings:
    admin_token: str | None = None
    session_ttl_s: float = 1800.0
    rate_per_s: float = 50.0
    burst: int = 100
    journal_capacity: int = 10_000
    store_path: Path | None = None
    catalogue: dict[str, Any] | None = None  # None: the built-in demo data
    max_hang_s: float = 600.0  # a hung request is dropped after this, at the latest


@dataclass(slots=True)
class MockPortal:
    """Everything a running mock holds; ``app.state.portal``."""

    settings: MockPortalSettings
    core: PortalCore
    faults: FaultEngine = field(default_factory=FaultEngine)
    journal: Journal = field(default_factory=Journal)
    limiter: RateLimiter = field(default_factory=RateLimiter)


class _ConnectionControl:
    """Outermost ASGI layer: remembers the connection's transport so that a fault can
    cut it. Under uvicorn, ``send`` is bound to the request cycle, which holds it."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            cycle = getattr(send, "__self__", None)
            scope[_TRANSPORT_KEY] = getattr(cycle, "transport", None)
        await self.app(scope, receive, send)


class _Dropped(Exception):  # noqa: N818 - a way of answering, not an error
    """The connection was cut on purpose: nothing is answered."""


async def _drop(request: Request) -> None:
    transport = request.scope.get(_TRANSPORT_KEY)
    if transport is None:
        raise RuntimeError("connection faults need the mock to run under uvicorn")
    transport.abort()
    await asyncio.sleep(0)  # let the server notice before anything tries to write
    raise _Dropped


async def _hang(request: Request, limit_s: float) -> None:
    """Answer nothing until the client gives up (or the limit passes, then cut)."""
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        if await request.is_disconnected():
            raise _Dropped
        await asyncio.sleep(0.05)
    await _drop(request)


class _BodyTooLargeError(Exception):
    pass


async def _read_body(request: Request) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise _BodyTooLargeError
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise _BodyTooLargeError
        chunks.append(chunk)
    return b"".join(chunks)


@dataclass(slots=True)
class _Call:
    """One contract request as it goes through the pipeline, and its journal entry."""

    endpoint: str
    at: Any
    started: float
    body: dict[str, Any] = field(default_factory=dict)
    dstcode: str | None = None
    http_status: int | None = None
    answer: dict[str, Any] | None = None
    headers: dict[str, str] = field(default_factory=dict)
    items: list[JournalItem] = field(default_factory=list)
    session: str | None = None
    fault: Fault | None = None
    retry_after_s: float | None = None
    rate_limited: bool = False

    @property
    def service(self) -> str | None:
        if self.endpoint == "auth":
            return "auth"
        service = self.body.get("service")
        return service if isinstance(service, str) else None

    def respond(self, status: int, answer: dict[str, Any], **headers: str) -> None:
        self.http_status, self.answer = status, answer
        self.headers.update(headers)

    def facts(self) -> RequestFacts:
        codes = _codes_in(self.body)
        madonvi = self.body.get("madonvi")
        unit = self.dstcode or (madonvi if isinstance(madonvi, str) else None)
        agencies = [a for a in (owning_agency(code) for code in codes) if a is not None]
        return RequestFacts(self.service or "", unit, codes, agencies)


def _codes_in(body: dict[str, Any]) -> list[str]:
    codes: list[str] = []
    data = body.get("data")
    if isinstance(data, list):
        codes += [
            i["MaHoSo"] for i in data if isinstance(i, dict) and isinstance(i.get("MaHoSo"), str)
        ]
    if isinstance(body.get("mahoso"), str):
        codes.append(body["mahoso"])
    listed = body.get("dsmahoso")
    if isinstance(listed, list):
        codes += [c for c in listed if isinstance(c, str)]
    return codes


def _request_digest(body: dict[str, Any]) -> str:
    """Equal for two requests that differ only by session: a repeat of the same call."""
    return journal_digest({k: v for k, v in body.items() if k != "session"})


class _Pipeline:
    def __init__(self, portal: MockPortal) -> None:
        self.portal = portal

    async def run(self, request: Request, endpoint: str) -> Response:
        call = _Call(endpoint, utcnow(), time.perf_counter())
        call.dstcode = request.headers.get("dstcode")
        try:
            await self._answer(request, call)
        except _Dropped:
            call.http_status, call.answer = None, None
        except Exception:
            # A bug of the mock is still an answer of the contract: -99, HTTP 500, retry.
            log.exception("internal error", endpoint=endpoint, service=call.service)
            call.headers.clear()
            call.respond(
                500,
                {
                    "error_code": int(ErrorCode.INTERNAL_ERROR),
                    "message": MESSAGES[ErrorCode.INTERNAL_ERROR],
                },
            )
        finally:
            self._journal(call)
        if call.http_status is None or call.answer is None:
            return Response(status_code=499)  # never sent: the connection is gone
        return JSONResponse(call.answer, status_code=call.http_status, headers=call.headers)

    async def _answer(self, request: Request, call: _Call) -> None:
        try:
            raw = await _read_body(request)
        except _BodyTooLargeError:
            call.respond(
                413,
                {
                    "error_code": int(ErrorCode.VALIDATION_FAILED),
                    "message": "Dữ liệu gửi lên vượt quá 5 MiB",
                },
            )
            return
        try:
            body = json.loads(raw)
            # A lone surrogate (``"\ud800"``) is valid JSON but not text: nothing could
            # hash, journal or echo it. Nesting too deep for the decoder is refused too.
            json.dumps(body, ensure_ascii=False).encode()
        except (ValueError, RecursionError):  # UnicodeError is a ValueError
            body = None
        if not isinstance(body, dict):
            call.respond(
                400,
                {
                    "error_code": int(ErrorCode.VALIDATION_FAILED),
                    "message": "body: phải là một đối tượng JSON",
                },
            )
            return
        call.body = body
        wait = self.portal.limiter.acquire(call.dstcode or "", time.monotonic())
        if wait is not None:
            header = retry_after_header(wait)
            call.retry_after_s, call.rate_limited = float(header), True
            call.respond(429, {"message": "Quá nhiều yêu cầu"}, **{"Retry-After": header})
            return
        call.fault = self.portal.faults.decide(call.facts(), call.at)
        commit = True
        if call.fault is not None:
            commit = await self._apply_fault(request, call, call.fault)
            if call.answer is not None:
                return
        self._process(call, commit=commit)
        if call.fault is not None and call.fault.action.type == "commit_then_drop":
            await _drop(request)
        if call.fault is not None and call.fault.action.type == "ack_then_lose":
            _pretend_success(call)

    async def _apply_fault(self, request: Request, call: _Call, fault: Fault) -> bool:
        """Act out a fault before processing; False when processing must store nothing."""
        action = fault.action
        match action.type:
            case "latency":
                await asyncio.sleep(fault.latency_s)
            case "http_error":
                call.respond(action.status or 503, {"message": "Dịch vụ tạm thời không sẵn sàng"})
            case "rate_limit":
                header = retry_after_header(
                    1.0 if action.retry_after_s is None else action.retry_after_s
                )
                call.retry_after_s = float(header)
                call.respond(429, {"message": "Quá nhiều yêu cầu"}, **{"Retry-After": header})
            case "expire_session":
                self.portal.core.expire_session(call.body.get("session"))
            case "hang":
                await _hang(request, self.portal.settings.max_hang_s)
            case "drop":
                await _drop(request)
            case "ack_then_lose":
                return False
            case "commit_then_drop" | "reject":  # act after (reject: while) processing
                pass
        return True

    def _process(self, call: _Call, *, commit: bool) -> None:
        core = self.portal.core
        body = call.body
        try:
            if call.endpoint == "auth":
                session = core.authenticate(
                    body.get("username"), body.get("password"), call.dstcode, call.at
                )
                if not commit:  # ack_then_lose: a token the portal does not keep
                    core.expire_session(session.token)
                call.session = session.fingerprint
                call.respond(
                    200,
                    {
                        "error_code": 0,
                        "session": session.token,
                        "expires_in": int(core.session_ttl_s),
                    },
                )
                return
            token = body.get("session")
            session = core.session_for(token, call.dstcode, body.get("madonvi"), call.at)
            call.session = session.fingerprint
            call.respond(200, self._service(call, session.unit, commit=commit))
        except PortalError as error:
            if isinstance(body.get("session"), str):
                call.session = session_fingerprint(body["session"])
            call.respond(error.http_status, error.body())

    def _service(self, call: _Call, unit: str, *, commit: bool) -> dict[str, Any]:
        core, body, service = self.portal.core, call.body, call.service
        known = INTEGRATION_SERVICES if call.endpoint == "integration" else SHARE_SERVICES
        if service not in known:
            raise PortalError(ErrorCode.UNKNOWN_SERVICE, f"Dịch vụ không tồn tại: {service!r}")
        reject = _rejection(call.fault)
        if service == "DongBoHoSoMC":
            results = core.sync_dossiers(
                unit,
                body.get("isUpdating"),
                body.get("data"),
                call.at,
                commit=commit,
                reject=reject,
            )
            return self._item_answer(call, results, stored=commit)
        if service == "CapNhatTienDoHoSoMC":
            results = core.update_progress(
                unit, body.get("data"), call.at, commit=commit, reject=reject
            )
            return self._item_answer(call, results, stored=commit)
        if service == "TraCuuHoSo":
            return core.lookup(unit, body)
        if service == "LayThuTuc":
            return core.procedure(body)
        if service == "LayDanhSachTTHC":
            return core.procedure_list()
        return core.agency_list()

    @staticmethod
    def _item_answer(call: _Call, results: list[ItemResult], *, stored: bool) -> dict[str, Any]:
        call.items = [
            JournalItem(
                r.ma_ho_so,
                r.error_code,
                r.status,
                r.content_hash,
                r.occurred_at,
                stored=stored and r.error_code == 0 and not r.duplicate,
            )
            for r in results
        ]
        failed = any(r.error_code != 0 for r in results)
        code = ErrorCode.PARTIAL if failed else ErrorCode.SUCCESS
        return {
            "error_code": int(code),
            "message": MESSAGES[code],
            "data": [r.answer() for r in results],
        }

    def _journal(self, call: _Call) -> None:
        journal = self.portal.journal
        error_code = call.answer.get("error_code") if call.answer is not None else None
        madonvi = call.body.get("madonvi")
        is_updating = call.body.get("isUpdating")
        items = call.items or [JournalItem(code, None) for code in _codes_in(call.body)]
        entry = JournalEntry(
            id=journal.next_id(),
            at=call.at,
            endpoint=call.endpoint,  # type: ignore[arg-type]
            service=call.service,
            unit=call.dstcode,
            madonvi=madonvi if isinstance(madonvi, str) else None,
            session=call.session,
            http_status=call.http_status,
            error_code=error_code if isinstance(error_code, int) else None,
            message=(call.answer or {}).get("message"),
            latency_ms=round((time.perf_counter() - call.started) * 1000, 3),
            outcome=outcome_of(
                call.http_status, error_code if isinstance(error_code, int) else None
            ),
            is_updating=is_updating if isinstance(is_updating, str) else None,
            request_hash=_request_digest(call.body) if call.body else None,
            items=items,
            fault=call.fault.describe() if call.fault is not None else None,
            retry_after_s=call.retry_after_s,
            rate_limited=call.rate_limited,
        )
        journal.append(entry)
        log.info(
            "request",
            endpoint=call.endpoint,
            service=call.service,
            unit=call.dstcode,
            status=call.http_status,
            error_code=entry.error_code,
            items=len(items),
            fault=entry.fault,
            latency_ms=entry.latency_ms,
        )


def _rejection(fault: Fault | None) -> Rejection | None:
    """A ``reject`` fault as the core applies it: the code for each item it names."""
    if fault is None or fault.action.type != "reject":
        return None
    code = ErrorCode(fault.action.error_code or ErrorCode.VALIDATION_FAILED)
    return lambda ma_ho_so: code if fault.rejects(ma_ho_so) else None


def _pretend_success(call: _Call) -> None:
    """ack_then_lose: whatever would have been answered, answer success."""
    if call.answer is None or call.http_status != 200 or call.endpoint != "integration":
        return
    if "data" in call.answer and isinstance(call.answer["data"], list):
        call.answer = {
            "error_code": 0,
            "message": MESSAGES[ErrorCode.SUCCESS],
            "data": [
                {"MaHoSo": i.get("MaHoSo"), "error_code": 0, "message": MESSAGES[ErrorCode.SUCCESS]}
                for i in call.answer["data"]
            ],
        }
        call.items = [
            JournalItem(i.ma_ho_so, 0, i.status, i.content_hash, i.occurred_at, stored=False)
            for i in call.items
        ]


def create_app(settings: MockPortalSettings | None = None) -> ASGIApp:
    """The mock portal as an ASGI application."""
    from app.demodata import load_demo_catalogue  # noqa: PLC0415 - only the mock needs it
    from app.mockportal.control import router as control_router  # noqa: PLC0415 - a cycle

    settings = settings or MockPortalSettings()
    persistence = Persistence(settings.store_path) if settings.store_path else None
    core = PortalCore(persistence, settings.session_ttl_s)
    if not core.accounts:  # a persisted catalogue wins over the built-in one
        core.seed(settings.catalogue if settings.catalogue is not None else load_demo_catalogue())
    portal = MockPortal(
        settings,
        core,
        journal=Journal(settings.journal_capacity),
        limiter=RateLimiter(settings.rate_per_s, settings.burst),
    )
    pipeline = _Pipeline(portal)

    api = FastAPI(
        title="Mock National Public Service Portal (DVCQG)",
        version="1",
        description=openapi.DESCRIPTION,
        openapi_tags=openapi.TAGS,
    )
    api.state.portal = portal

    def route(endpoint: str) -> Callable[[Request], Awaitable[Response]]:
        async def handler(request: Request) -> Response:
            return await pipeline.run(request, endpoint)

        return handler

    for path, endpoint, doc in openapi.CONTRACT_ROUTES:
        api.add_api_route(
            path,
            route(endpoint),
            methods=["POST"],
            tags=["contract"],
            summary=doc.summary,
            description=doc.description,
            openapi_extra=doc.openapi_extra,
            responses=doc.responses,
            response_model=None,
        )
    api.include_router(control_router)
    openapi.install(api)
    return _ConnectionControl(api)


def portal_of(app: ASGIApp) -> MockPortal:
    """The running state behind an app made by :func:`create_app` (for tests)."""
    inner: Any = app.app if isinstance(app, _ConnectionControl) else app
    portal: MockPortal = inner.state.portal
    return portal
