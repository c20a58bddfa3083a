"""Field types of the portal contract: strict JSON types with the contract's messages.

The contract's types are JSON types. ``"2"`` is not an int and ``true`` is not ``1``:
the portal is strict, so these types never coerce.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from enum import Enum
from functools import lru_cache
from typing import Annotated, Any, TypeVar

from email_validator import EmailNotValidError, validate_email
from pydantic import AfterValidator, Field, Strict, WithJsonSchema
from pydantic_core import PydanticCustomError

E = TypeVar("E", bound=Enum)


def strict_member(enum: type[E]) -> Callable[[Any], E]:
    """A before-validator that accepts only the enum's exact JSON values.

    Int enums take JSON integers (not booleans, not strings); str enums take strings.
    """
    values = [member.value for member in enum]
    value_type = type(values[0])
    allowed = ", ".join(str(v) if value_type is int else f'"{v}"' for v in values)

    def check(value: Any) -> E:
        if isinstance(value, enum):
            return value
        if type(value) is not value_type:
            kind = "số nguyên" if value_type is int else "chuỗi"
            raise PydanticCustomError("type", f"phải là {kind}, một trong {allowed}")
        try:
            return enum(value)
        except ValueError:
            raise PydanticCustomError("not_allowed", f"phải là một trong {allowed}") from None

    return check


def _not_blank(value: str) -> str:
    if not value.strip():
        raise PydanticCustomError("required", "không được để trống")
    return value


def matching(pattern: str, message: str) -> AfterValidator:
    """A format check with the contract's own wording (``pattern`` is fully matched, ASCII)."""
    compiled = re.compile(pattern, re.ASCII)

    def check(value: str) -> str:
        if not compiled.fullmatch(value):
            raise PydanticCustomError("format", message)
        return value

    return AfterValidator(check)


@lru_cache(maxsize=4096)
def _is_email(value: str) -> bool:
    # email-validator costs ~80 µs an address, and a dossier brings the same applicant's
    # address back with every change polled; the answer depends on the text alone.
    try:
        validate_email(value, check_deliverability=False)
    except EmailNotValidError:
        return False
    return True


def _email(value: str) -> str:
    if not _is_email(value):
        raise PydanticCustomError("format", "không phải địa chỉ e-mail hợp lệ")
    return value


StrictText = Annotated[str, Strict()]
"""Any JSON string."""

RequiredText = Annotated[str, Strict(), AfterValidator(_not_blank)]
"""A JSON string that is not empty or blank: required fields carry a value."""


Text200 = Annotated[str, Strict(), Field(max_length=200), AfterValidator(_not_blank)]
Text500 = Annotated[str, Strict(), Field(max_length=500), AfterValidator(_not_blank)]


PHONE_PATTERN = r"\+?[0-9]{8,15}"
PERSONAL_ID_PATTERN = r"[0-9]{9}|[0-9]{12}|[0-9]{10}|[0-9]{10}-[0-9]{3}"

PhoneNumber = Annotated[
    str,
    Strict(),
    matching(PHONE_PATTERN, "phải gồm 8–15 chữ số, có thể bắt đầu bằng +"),
    WithJsonSchema({"type": "string", "pattern": f"^{PHONE_PATTERN}$"}),
]

EmailAddress = Annotated[
    str,
    Strict(),
    AfterValidator(_email),
    WithJsonSchema({"type": "string", "format": "email"}),
]

ApplicantIdNumber = Annotated[
    str,
    Strict(),
    matching(
        PERSONAL_ID_PATTERN,
        "phải là số định danh 9 hoặc 12 chữ số, hoặc mã số thuế 10 chữ số hay NNNNNNNNNN-NNN",
    ),
    WithJsonSchema({"type": "string", "pattern": f"^(?:{PERSONAL_ID_PATTERN})$"}),
]

NonNegativeInt = Annotated[int, Strict(), Field(ge=0)]
