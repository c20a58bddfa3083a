"""What the databases can hold of a record's text.

PostgreSQL refuses NUL characters in text and JSON (and lone surrogates and non-finite
numbers in JSON), although JSON parsers, the portal contract and SQLite let them through.
One such value must not fail the whole page or batch that carries it: the record is
refused for it (:func:`nul_issues`), and its raw form is kept in quarantine with those
characters replaced (:func:`storable`)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from app.domain.validation import FieldIssue

INVALID = "invalid"
NUL_MESSAGE = "chứa ký tự NUL (\\u0000), không lưu được"


def nul_issues(value: object) -> list[FieldIssue]:
    """An issue for each text (value or key) of ``value`` that holds a NUL character."""
    issues: list[FieldIssue] = []

    def walk(item: object, path: tuple[str | int, ...]) -> None:
        if isinstance(item, str):
            if "\x00" in item:
                issues.append(FieldIssue(path, INVALID, NUL_MESSAGE))
        elif isinstance(item, Mapping):
            for name, inner in item.items():
                walk(inner, (*path, str(name)))
        elif isinstance(item, list | tuple):
            for position, inner in enumerate(item):
                walk(inner, (*path, position))

    walk(value, ())
    return issues


def storable(value: object) -> Any:
    """``value`` with what the databases refuse replaced: lone surrogates and NUL in text
    (by U+FFFD) and non-finite numbers (by their name)."""
    if isinstance(value, str):
        if value.isascii() and "\x00" not in value:
            return value
        text = value.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
        return text.replace("\x00", "\ufffd")
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, Mapping):
        return {storable(str(k)): storable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [storable(v) for v in value]
    return value
