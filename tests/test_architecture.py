"""The boundaries docs/architecture.md states: the service reaches the mock portal and the
simulators over HTTP only, as it reaches the real portal and sources, so no module of
the service imports them; only the commands that start them do."""

from __future__ import annotations

import ast
from pathlib import Path

APP = Path(__file__).resolve().parents[1] / "app"
SEPARATE = ("app.mockportal", "app.simulators", "app.demodata")
# `dossier-sync mock-portal`, `simulate` and `demo` start them; nothing else may.
STARTERS = {"app/cli.py", "app/demo.py"}


def imported(path: Path) -> set[str]:
    """Every module ``path`` imports, wherever in the file (function-local too)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def owner(path: Path) -> str:
    """The separate application ``path`` belongs to, or "" for the service."""
    module = ".".join(path.relative_to(APP.parent).with_suffix("").parts)
    return next((p for p in SEPARATE if module == p or module.startswith(p + ".")), "")


def test_the_service_never_imports_the_mock_portal_or_the_simulators() -> None:
    offending: list[str] = []
    for path in sorted(APP.rglob("*.py")):
        relative = path.relative_to(APP.parent).as_posix()
        if owner(path) or relative in STARTERS:
            continue
        offending += [f"{relative} imports {n}" for n in imported(path) if n.startswith(SEPARATE)]
    assert not offending, offending


def test_the_mock_portal_and_the_simulators_do_not_import_each_other() -> None:
    """They share only the demo catalogue and the pure domain code."""
    offending: list[str] = []
    for path in sorted(APP.rglob("*.py")):
        mine = owner(path)
        if mine not in {"app.mockportal", "app.simulators"}:
            continue
        other = "app.simulators" if mine == "app.mockportal" else "app.mockportal"
        offending += [f"{path.name} imports {n}" for n in imported(path) if n.startswith(other)]
    assert not offending, offending


def test_the_check_sees_imports() -> None:
    assert "app.mockportal.server" in imported(APP / "cli.py")
    assert owner(APP / "mockportal" / "core.py") == "app.mockportal"
    assert owner(APP / "sync" / "engine.py") == ""
