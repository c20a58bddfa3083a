"""One error shape for every failure: ``{"error": {"code", "message", "details"}}``
(service-interface.md). Validation errors name each field by its path."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, BeforeValidator, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from app.logs import get_logger

log = get_logger("dossier_sync.api")


class ErrorDetail(BaseModel):
    code: str = Field(description="A stable, machine-readable code.", examples=["forbidden"])
    message: str = Field(description="What went wrong, for a person.")
    details: Any = Field(
        default=None,
        description="For validation errors: a list of {field, message} with the field's path.",
    )


class ErrorBody(BaseModel):
    error: ErrorDetail


def _no_bare_number(value: Any) -> Any:
    # pydantic would read 0.5 or "1700000000" as a Unix time; a caller who sent a number
    # where a date-time belongs made a mistake, which must be answered, not guessed.
    if isinstance(value, int | float) or (
        isinstance(value, str) and re.fullmatch(r"\s*[+-]?\d+(\.\d*)?\s*", value)
    ):
        raise ValueError("expected an ISO 8601 date-time, e.g. 2026-11-27T10:30:00+07:00")
    return value


IsoDateTime = Annotated[datetime, BeforeValidator(_no_bare_number)]
"""A date-time in ISO 8601 only (query parameters and bodies)."""


class ApiError(Exception):
    """An error answer with its HTTP status and code."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        details: Any = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details
        self.headers = headers


def error_response(
    status: int, code: str, message: str, details: Any = None, headers: dict[str, str] | None = None
) -> JSONResponse:
    body = ErrorBody(error=ErrorDetail(code=code, message=message, details=details))
    return JSONResponse(body.model_dump(mode="json"), status_code=status, headers=headers)


def field_path(location: tuple[Any, ...] | list[Any]) -> str:
    """``("body", "dossiers", 3, "MaHoSo")`` → ``dossiers[3].MaHoSo``."""
    path = ""
    for part in location[1:] if location and location[0] in ("body", "query", "path") else location:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path or "body"


_STATUS_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_error",
    429: "rate_limited",
}


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def api_error(_request: Request, error: ApiError) -> JSONResponse:
        return error_response(error.status, error.code, error.message, error.details, error.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(_request: Request, error: RequestValidationError) -> JSONResponse:
        details = [
            # A body that is not JSON is located by its character offset, ("body", 12):
            # the field at fault is the body itself, and the offset goes in the message.
            {"field": "body", "message": f"not valid JSON (at character {e['loc'][-1]})"}
            if e.get("type") == "json_invalid"
            else {"field": field_path(tuple(e.get("loc", ()))), "message": str(e.get("msg", ""))}
            for e in error.errors()
        ]
        first = details[0]["field"] if details else "body"
        return error_response(422, "validation_error", f"invalid request: {first}", details)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_request: Request, error: StarletteHTTPException) -> JSONResponse:
        code = _STATUS_CODES.get(error.status_code, "error")
        headers = dict(error.headers) if error.headers else None
        return error_response(error.status_code, code, str(error.detail), None, headers)

    @app.exception_handler(Exception)
    async def crashed(_request: Request, error: Exception) -> JSONResponse:
        log.exception("request crashed", error_type=type(error).__name__)
        return error_response(500, "internal_error", "internal error; see the service's log")


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorBody, "description": "The body cannot be read (not JSON, bad encoding)."},
    401: {"model": ErrorBody, "description": "Missing or unknown API key."},
    403: {"model": ErrorBody, "description": "The key lacks the scope, or the unit or agency."},
    422: {"model": ErrorBody, "description": "Invalid request; `details` names each field."},
    429: {"model": ErrorBody, "description": "Rate limit of the key; see `Retry-After`."},
}
