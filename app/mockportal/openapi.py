"""OpenAPI text for the contract endpoints: request and answer schemas with examples.

The contract endpoints read their bodies themselves (a malformed body must get the
portal's own error codes, not FastAPI's 422), so their schemas are documented here and
added to the OpenAPI document by :func:`install`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel, ConfigDict, Field
from pydantic.json_schema import models_json_schema

from app.domain.dossier import Dossier
from app.domain.progress import ProgressRecord

DESCRIPTION = """\
A strict, stateful stand-in for the National Public Service Portal (Cổng Dịch vụ công
quốc gia) integration API, as specified in `portal-contract.md`: sessions bound to
`dstcode`, `DongBoHoSoMC` / `CapNhatTienDoHoSoMC` with per-item results, the status
transition policy, unit ownership, look-ups, a token bucket per unit and the 5 MiB body
limit.

The **control** endpoints (`/_mock/…`, enabled with `--admin-token`, called with
`Authorization: Bearer <token>`) reset and seed it, read and set dossiers, read the
journal, inject faults and grade a client with the conformance report.
"""

TAGS = [
    {"name": "contract", "description": "The portal's integration API (portal-contract.md)."},
    {"name": "control", "description": "Mock-only control API (portal-contract.md §9)."},
]

_DOC = ConfigDict(extra="forbid")
UNIT = "000.00.00.H26"
CODE = "000.00.53.H26-240125-00012"


class AuthRequest(BaseModel):
    """``POST /dvcqg/auth`` with header ``dstcode: <unit>``."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"username": UNIT, "password": "demo"}]},
    )

    username: str
    password: str


class _Call(BaseModel):
    model_config = _DOC

    session: str = Field(description="The token from /dvcqg/auth")
    madonvi: str = Field(description="The calling unit; must equal dstcode and the session's")


class DongBoHoSoMCRequest(_Call):
    """Create (``isUpdating: "False"``) or update (``"True"``) up to 100 dossiers."""

    service: Literal["DongBoHoSoMC"]
    isUpdating: Literal["True", "False"]  # noqa: N815 - the contract's name
    data: list[Dossier] = Field(min_length=1, max_length=100)


class CapNhatTienDoHoSoMCRequest(_Call):
    """Add up to 100 progress records to dossiers already at the portal."""

    service: Literal["CapNhatTienDoHoSoMC"]
    data: list[ProgressRecord] = Field(min_length=1, max_length=100)


class TraCuuHoSoRequest(_Call):
    """Read one dossier (``mahoso``) or up to 100 (``dsmahoso``) of the caller's unit."""

    service: Literal["TraCuuHoSo"]
    mahoso: str | None = None
    dsmahoso: list[str] | None = Field(default=None, max_length=100)


class LayThuTucRequest(_Call):
    service: Literal["LayThuTuc"]
    maTTHC: str  # noqa: N815 - the contract's name


class CatalogueRequest(_Call):
    service: Literal["LayDanhSachTTHC", "LayDanhMucCoQuan"]


class ItemResult(BaseModel):
    MaHoSo: str | None
    error_code: int
    message: str


class BatchAnswer(BaseModel):
    """``error_code`` 0 when every item succeeded, 1 (partial) otherwise."""

    error_code: Literal[0, 1]
    message: str
    data: list[ItemResult]


class AuthAnswer(BaseModel):
    error_code: Literal[0]
    session: str
    expires_in: int


class ErrorAnswer(BaseModel):
    """A whole-request failure; ``error_code`` as in contract §6."""

    error_code: int
    message: str


_SCHEMAS: list[type[BaseModel]] = [
    AuthRequest,
    DongBoHoSoMCRequest,
    CapNhatTienDoHoSoMCRequest,
    TraCuuHoSoRequest,
    LayThuTucRequest,
    CatalogueRequest,
    BatchAnswer,
    AuthAnswer,
    ErrorAnswer,
]


def _ref(model: type[BaseModel]) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{model.__name__}"}


def _json(schema: dict[str, Any], examples: dict[str, Any]) -> dict[str, Any]:
    return {
        "application/json": {
            "schema": schema,
            "examples": {name: {"value": value} for name, value in examples.items()},
        }
    }


DOSSIER_EXAMPLE = {
    "MaHoSo": CODE,
    "MaTTHC": "1.000656",
    "TenTTHC": "Đăng ký khai sinh",
    "MaLinhVuc": "HT",
    "TenLinhVuc": "Hộ tịch",
    "KenhThucHien": 2,
    "ChuHoSo": "Nguyễn Văn An",
    "LoaiDoiTuong": 1,
    "NgayTiepNhan": "20240125083000",
    "NgayHenTra": "20240126170000",
    "TrangThaiHoSo": "2",
    "DonViXuLy": "UBND phường",
}
PROGRESS_EXAMPLE = {
    "MaHoSo": CODE,
    "NguoiXuLy": "Trần Thị Bình",
    "ThoiDiemXuLy": "20240125083000",
    "NoiDungXuLy": "Tiếp nhận hồ sơ",
    "TrangThai": "2",
}
REGRESSION_MESSAGE = (
    "data[0].TrangThaiHoSo: Không cho phép chuyển trạng thái từ 9 (Đã xử lý xong) "
    "sang 4 (Đang xử lý)"
)
_ERRORS: dict[int | str, dict[str, Any]] = {
    "401": {
        "description": "-1 bad credentials (auth) or -2 session expired or unknown",
        "content": _json(
            _ref(ErrorAnswer),
            {"session_expired": {"error_code": -2, "message": "Phiên làm việc hết hạn"}},
        ),
    },
    "400": {
        "description": "The body is not a JSON object (-5)",
        "content": _json(
            _ref(ErrorAnswer),
            {"not_json": {"error_code": -5, "message": "body: phải là một đối tượng JSON"}},
        ),
    },
    "413": {"description": "Body larger than 5 MiB"},
    "429": {
        "description": "Rate limit (token bucket per dstcode); Retry-After says when",
        "headers": {"Retry-After": {"schema": {"type": "string"}, "description": "seconds"}},
    },
    "502": {"description": "Injected fault: nothing stored, retry"},
    "503": {"description": "Injected fault: nothing stored, retry"},
    "504": {"description": "Injected fault: nothing stored, retry"},
}


@dataclass(frozen=True, slots=True)
class RouteDoc:
    summary: str
    description: str
    openapi_extra: dict[str, Any] = field(default_factory=dict)
    responses: dict[int | str, dict[str, Any]] = field(default_factory=dict)


def _body(schema: dict[str, Any], examples: dict[str, Any]) -> dict[str, Any]:
    return {"requestBody": {"required": True, "content": _json(schema, examples)}}


_CALL = {"session": "<token>", "madonvi": UNIT}

CONTRACT_ROUTES: list[tuple[str, str, RouteDoc]] = [
    (
        "/dvcqg/auth",
        "auth",
        RouteDoc(
            "Log in (contract §2)",
            "Header `dstcode: <unit>`. Answers a session token bound to that unit.",
            _body(_ref(AuthRequest), {"demo": {"username": UNIT, "password": "demo"}}),
            {
                200: {
                    "description": "Logged in",
                    "content": _json(
                        _ref(AuthAnswer),
                        {"ok": {"error_code": 0, "session": "q3T…", "expires_in": 1800}},
                    ),
                },
                **_ERRORS,
            },
        ),
    ),
    (
        "/dvcqg/integration",
        "integration",
        RouteDoc(
            "DongBoHoSoMC / CapNhatTienDoHoSoMC (contract §3)",
            "Each item is validated and applied on its own; failed items change nothing. "
            "Whole-request errors: -2, -5 (bad isUpdating or data), -8 (> 100 items), "
            "-9, -10. Item errors: -3, -4, -5 (naming the field by JSON path), -6, -10.",
            _body(
                {"oneOf": [_ref(DongBoHoSoMCRequest), _ref(CapNhatTienDoHoSoMCRequest)]},
                {
                    "create": _CALL
                    | {"service": "DongBoHoSoMC", "isUpdating": "False", "data": [DOSSIER_EXAMPLE]},
                    "update": _CALL
                    | {
                        "service": "DongBoHoSoMC",
                        "isUpdating": "True",
                        "data": [DOSSIER_EXAMPLE | {"TrangThaiHoSo": "4"}],
                    },
                    "progress": _CALL
                    | {"service": "CapNhatTienDoHoSoMC", "data": [PROGRESS_EXAMPLE]},
                },
            ),
            {
                200: {
                    "description": "Per-item results (or a whole-request error_code)",
                    "content": _json(
                        {"oneOf": [_ref(BatchAnswer), _ref(ErrorAnswer)]},
                        {
                            "all_ok": {
                                "error_code": 0,
                                "message": "Thành công",
                                "data": [
                                    {"MaHoSo": CODE, "error_code": 0, "message": "Thành công"}
                                ],
                            },
                            "partial": {
                                "error_code": 1,
                                "message": "Một số hồ sơ không được cập nhật, xem data[]",
                                "data": [
                                    {
                                        "MaHoSo": CODE,
                                        "error_code": -5,
                                        "message": "data[0].NgayHenTra: phải ≥ NgayTiepNhan",
                                    }
                                ],
                            },
                            "regression": {
                                "error_code": 1,
                                "message": "…",
                                "data": [
                                    {
                                        "MaHoSo": CODE,
                                        "error_code": -6,
                                        "message": REGRESSION_MESSAGE,
                                    }
                                ],
                            },
                            "too_many": {
                                "error_code": -8,
                                "message": "Số lượng bản ghi vượt quá 100",
                            },
                        },
                    ),
                },
                **_ERRORS,
            },
        ),
    ),
    (
        "/dvcqg/share",
        "share",
        RouteDoc(
            "TraCuuHoSo, LayThuTuc, LayDanhSachTTHC, LayDanhMucCoQuan (contract §4)",
            "Reads. `TraCuuHoSo` finds only the caller's unit's dossiers: another unit's "
            "code is not found (-4, or listed in `khongtimthay`).",
            _body(
                {
                    "oneOf": [
                        _ref(TraCuuHoSoRequest),
                        _ref(LayThuTucRequest),
                        _ref(CatalogueRequest),
                    ]
                },
                {
                    "one": _CALL | {"service": "TraCuuHoSo", "mahoso": CODE},
                    "bulk": _CALL | {"service": "TraCuuHoSo", "dsmahoso": [CODE]},
                    "procedure": _CALL | {"service": "LayThuTuc", "maTTHC": "1.000656"},
                    "procedures": _CALL | {"service": "LayDanhSachTTHC"},
                    "agencies": _CALL | {"service": "LayDanhMucCoQuan"},
                },
            ),
            {
                200: {
                    "description": "The data asked for, or -4 / -5 / -8 / -9 / -10",
                    "content": _json(
                        {"type": "object"},
                        {
                            "bulk": {
                                "error_code": 0,
                                "message": "Thành công",
                                "data": [DOSSIER_EXAMPLE | {"QuaTrinhXuLy": [PROGRESS_EXAMPLE]}],
                                "khongtimthay": ["000.00.53.H26-240125-99999"],
                            },
                            "not_found": {"error_code": -4, "message": "Không tìm thấy hồ sơ"},
                        },
                    ),
                },
                **_ERRORS,
            },
        ),
    ),
]


def install(api: FastAPI) -> None:
    """Generate the OpenAPI document once, with the contract schemas in its components."""
    _, definitions = models_json_schema(
        [(model, "validation") for model in _SCHEMAS],
        ref_template="#/components/schemas/{model}",
    )

    def openapi() -> dict[str, Any]:
        if api.openapi_schema is None:
            schema = get_openapi(
                title=api.title,
                version=api.version,
                description=api.description,
                routes=api.routes,
                tags=api.openapi_tags,
            )
            schema.setdefault("components", {}).setdefault("schemas", {}).update(
                definitions.get("$defs", {})
            )
            api.openapi_schema = schema
        return api.openapi_schema

    api.openapi = openapi  # type: ignore[method-assign]
