"""Validation results shared by every record type: an issue names its JSON path.

The portal answers ``-5`` naming *the first* offending field, unknown fields first, then
the fields in the order of the contract's table (contract §3.1). Validators therefore
collect every issue, tag it with a sort key derived from the table, and sort once.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ValidationError

PathItem = str | int
Path = tuple[PathItem, ...]


@dataclass(frozen=True, slots=True)
class FieldIssue:
    """One broken rule: where (JSON path inside the record), which rule, and why."""

    path: Path
    code: str  # stable, machine-readable: "required", "unknown_field", "date_order", …
    message: str  # for people, in the portal's language
    # Ordering: unknown fields first, then the contract's field order (see module doc).
    sort_key: tuple[Any, ...] = field(default=(), compare=False, repr=False)

    def render_path(self, prefix: str = "") -> str:
        """``TaiLieuNop[0].TenTepDinhKem``, optionally under a prefix such as ``data[3]``."""
        return render_path(self.path, prefix)

    def describe(self, prefix: str = "") -> str:
        """``data[3].NgayHenTra: phải ≥ NgayTiepNhan`` — the contract's message shape."""
        where = self.render_path(prefix)
        return f"{where}: {self.message}" if where else self.message

    def to_dict(self, prefix: str = "") -> dict[str, str]:
        return {"path": self.render_path(prefix), "code": self.code, "message": self.message}


def render_path(path: Sequence[PathItem], prefix: str = "") -> str:
    out = prefix
    for item in path:
        if isinstance(item, int):
            out += f"[{item}]"
        else:
            out = f"{out}.{item}" if out else item
    return out


class RecordInvalid(ValueError):  # noqa: N818 - reads as the domain says it: "the record is invalid"
    """A record broke one or more contract rules. ``issues`` are sorted, first = most important."""

    def __init__(self, issues: Sequence[FieldIssue]) -> None:
        if not issues:
            raise ValueError("RecordInvalid needs at least one issue")
        self.issues: tuple[FieldIssue, ...] = tuple(issues)
        super().__init__(self.issues[0].describe())

    @property
    def first(self) -> FieldIssue:
        return self.issues[0]

    def message(self, prefix: str = "") -> str:
        """The ``-5`` message: the first offending field by JSON path."""
        return self.first.describe(prefix)


FieldOrder = Mapping[str, tuple[int, "FieldOrder"]]
"""Field name → (position in the contract's table, the order of its nested record)."""


def field_order(model: type[BaseModel]) -> FieldOrder:
    """A model's field order — its declaration order, which mirrors the contract's tables —
    with the order of nested record types (``list[Item]`` or ``Item``) under each field."""
    order: dict[str, tuple[int, FieldOrder]] = {}
    for index, (name, info) in enumerate(model.model_fields.items()):
        order[name] = (index, _nested_order(info.annotation))
    return order


def _nested_order(annotation: Any) -> FieldOrder:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return field_order(annotation)
    for arg in getattr(annotation, "__args__", ()):
        nested = _nested_order(arg)
        if nested:
            return nested
    return {}


_PYDANTIC_MESSAGES: Mapping[str, str] = {
    "missing": "bắt buộc",
    "string_type": "phải là chuỗi",
    "int_type": "phải là số nguyên",
    "int_parsing": "phải là số nguyên",
    "list_type": "phải là danh sách",
    "model_type": "phải là một đối tượng JSON",
    "model_attributes_type": "phải là một đối tượng JSON",
    "dict_type": "phải là một đối tượng JSON",
    "extra_forbidden": "trường không có trong đặc tả",
    "string_too_long": "dài quá {max_length} ký tự",
    "string_too_short": "không được để trống",
    "greater_than_equal": "phải ≥ {ge}",
    "less_than_equal": "phải ≤ {le}",
    "enum": "phải là một trong {expected}",
    "literal_error": "phải là một trong {expected}",
    "string_pattern_mismatch": "sai định dạng",
}

# Error types raised with PydanticCustomError by app.domain's field types.
CONTRACT_ERROR_TYPES = frozenset({"portal_date", "type", "not_allowed", "required", "format"})

_CODES: Mapping[str, str] = {
    "missing": "required",
    "extra_forbidden": "unknown_field",
    "string_too_long": "too_long",
    "string_too_short": "required",
    "greater_than_equal": "out_of_range",
    "less_than_equal": "out_of_range",
    "enum": "not_allowed",
    "literal_error": "not_allowed",
    "string_pattern_mismatch": "format",
}


def issues_from_pydantic(
    error: ValidationError, order: FieldOrder, raw: Mapping[str, Any]
) -> list[FieldIssue]:
    """Translate pydantic's errors into contract issues with contract messages.

    ``order`` maps a top-level field name to its position; nested positions come from the
    path itself. ``raw`` is the input, used to tell "missing" from "sent as null" for
    required fields (both are "required" to the client).
    """
    issues: list[FieldIssue] = []
    for err in error.errors(include_url=False):
        path: Path = tuple(err["loc"])
        kind = err["type"]
        ctx = err.get("ctx") or {}
        if kind == "extra_forbidden":
            code, message = "unknown_field", _PYDANTIC_MESSAGES[kind]
        elif _is_null_required(path, raw, err.get("input")):
            code, message = "required", "bắt buộc"
        elif kind in _PYDANTIC_MESSAGES:
            code = _CODES.get(kind, "type")
            message = _PYDANTIC_MESSAGES[kind].format(**{k: _ctx_text(v) for k, v in ctx.items()})
        elif kind in CONTRACT_ERROR_TYPES:
            # Raised by the contract's own field types: the message is already the portal's.
            code = kind
            message = err["msg"]
        else:
            # Anything else pydantic can say (a lone surrogate in a string, …): never leak
            # its English text into a -5 message.
            code, message = "invalid", "giá trị không hợp lệ"
        issues.append(FieldIssue(path, code, message, issue_sort_key(path, code, order)))
    return issues


def _is_null_required(path: Path, raw: Mapping[str, Any], value: Any) -> bool:
    """Whether the error is about a field that was sent as ``null`` (at any depth: a list
    item's required field sent as null is "required" too, like a top-level one)."""
    if value is not None or not path or not isinstance(path[-1], str):
        return False
    container: Any = raw
    try:
        for item in path[:-1]:
            container = container[item]
    except (KeyError, IndexError, TypeError):
        return False
    return isinstance(container, Mapping) and path[-1] in container


def _ctx_text(value: Any) -> str:
    return str(value)


_UNKNOWN_POSITION = -1  # unknown names sort before the known ones at their level


def issue_sort_key(path: Path, code: str, order: FieldOrder) -> tuple[Any, ...]:
    """Unknown fields first (anywhere in the record), then by the contract's field order,
    list items by index. Issues with equal keys keep their emission order (stable sort)."""
    positions: list[int] = []
    current = order
    for item in path:
        if isinstance(item, int):
            positions.append(item)
            continue
        position, nested = current.get(item, (_UNKNOWN_POSITION, {}))
        positions.append(position)
        current = nested
    return (0 if code == "unknown_field" else 1, tuple(positions))


def sorted_issues(issues: Iterable[FieldIssue]) -> list[FieldIssue]:
    return sorted(issues, key=lambda issue: issue.sort_key)
