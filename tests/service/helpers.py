"""Configuration and waiting helpers for the service tests."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from app.config import Settings
from tests.sync.polling import AUTH, UNITS

PORTAL_PASSWORD = "demo"  # the mock's demo accounts: username = unit code


def settings_values(
    *,
    database_url: str,
    portal_url: str,
    sources: list[tuple[str, str, str]],  # (name, dialect, base_url)
    api_port: int = 8000,
    max_batch: int = 100,
    sync: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A configuration for the mock portal and simulators started by a test."""
    return {
        "database_url": database_url,
        "api": {"host": "127.0.0.1", "port": api_port},
        "portal": {
            "base_url": portal_url,
            "timeout_s": 5.0,
            "max_batch": max_batch,
            "accounts": [
                {"unit": unit, "username": unit, "password": PORTAL_PASSWORD} for unit in UNITS
            ],
        },
        "sources": [
            {
                "name": name,
                "dialect": dialect,
                "base_url": url,
                "agencies": list(UNITS),
                "poll_interval_s": 0.2,
                "page_size": 50,
                "auth": AUTH[dialect],
            }
            for name, dialect, url in sources
        ],
        "sync": {"reconcile_interval_s": 1.0, "backoff_initial_s": 0.2, "backoff_max_s": 2.0}
        | (sync or {}),
        "logging": {"level": "INFO", "format": "json"},
    }


def settings_from(values: dict[str, Any]) -> Settings:
    return Settings(**values)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        escaped = value.replace("\\", "\\\\").replace('"', '\\"')
        return f'"{escaped}"'
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise TypeError(f"no TOML for {value!r}")


def _toml_table(prefix: str, table: dict[str, Any], lines: list[str]) -> None:
    tables = []
    for key, value in table.items():
        if isinstance(value, dict) or (
            isinstance(value, list) and value and isinstance(value[0], dict)
        ):
            tables.append((key, value))
        else:
            lines.append(f"{key} = {_toml_value(value)}")
    for key, value in tables:
        name = f"{prefix}.{key}" if prefix else key
        if isinstance(value, dict):
            lines.append(f"\n[{name}]")
            _toml_table(name, value, lines)
        else:
            for item in value:
                lines.append(f"\n[[{name}]]")
                _toml_table(name, item, lines)


def to_toml(values: dict[str, Any]) -> str:
    """The few TOML shapes a configuration uses (tables, arrays of tables, scalars)."""
    lines: list[str] = []
    _toml_table("", values, lines)
    return "\n".join(lines) + "\n"


def write_config(path: Path, values: dict[str, Any]) -> Path:
    path.write_text(to_toml(values), encoding="utf-8")
    return path


async def eventually(condition: Callable[[], Any], what: str, within: float = 30.0) -> Any:
    """Poll ``condition`` (sync or async) until it returns something truthy."""
    deadline = time.monotonic() + within
    while True:
        result = condition()
        if isinstance(result, Awaitable):
            result = await result
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within:g} s waiting for {what}")
        await asyncio.sleep(0.1)
